"""cocotb tests of IncrementFifo under every idle x back-pressure pattern."""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from lpaccel.sim.infra.harness import params
from lpaccel.sim.infra.streams import PAUSE_MODES, StreamSink, StreamSource


class TB:
    def __init__(self, dut, idle_inserter, backpressure_inserter):
        self.dut = dut
        self.width = params()["width"]
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.source = StreamSource(dut.clk, dut, "operands", pause=idle_inserter)
        self.sink = StreamSink(dut.clk, dut, "results", pause=backpressure_inserter)

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)


@cocotb.test(timeout_time=200, timeout_unit="us")
@cocotb.parametrize(idle=list(PAUSE_MODES), backpressure=list(PAUSE_MODES))
async def run_test(dut, idle, backpressure):
    tb = TB(dut, PAUSE_MODES[idle](seed=cocotb.RANDOM_SEED),
            PAUSE_MODES[backpressure](seed=cocotb.RANDOM_SEED + 1))
    await tb.reset()

    mask = (1 << tb.width) - 1
    rng = random.Random(cocotb.RANDOM_SEED)
    payloads = [0, mask, 1, mask >> 1] + [rng.getrandbits(tb.width) for _ in range(150)]
    tb.source.send_all(payloads)

    received = await tb.sink.recv_n(len(payloads))
    assert received == [(value + 1) & mask for value in payloads]

    # Anything arriving now would be a duplicate.
    await ClockCycles(dut.clk, 20)
    assert tb.source.idle(), "source still holds payloads"
    assert tb.source.beats == len(payloads)
    assert tb.sink.empty(), f"{tb.sink.count()} extra payloads received"
    assert not tb.sink.errors
