"""cocotb: the generated LiteDRAM core (SDRAMPHYModel) behind its wrapper.

The wrapper's init sequencer must bring the core up by itself (init_done,
no init_error); then random AXI4 traffic from the project's kit, checked
against the reference memory and by the protocol checker.
"""

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from lpaccel.sim.infra.axi_checker import AxiProtocolChecker
from lpaccel.sim.infra.axi_traffic import AxiTrafficGenerator
from lpaccel.sim.infra.streams import PAUSE_MODES

P = json.loads(os.environ["LITEDRAM_TEST"])


@cocotb.test()
async def init_then_random_traffic(dut):
    cocotb.start_soon(Clock(dut.clk, 20, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    checker = AxiProtocolChecker(dut.clk, dut, "s", reset=dut.rst)
    for cycle in range(P["init_cycles"]):
        await RisingEdge(dut.clk)
        if int(dut.init_error.value):
            raise AssertionError(f"init_error after {cycle} cycles")
        if int(dut.init_done.value):
            break
    else:
        raise AssertionError(f"init_done not reached in {P['init_cycles']} cycles")
    dut._log.info(f"init_done after {cycle} cycles")
    print(f"LITEDRAM init_done after {cycle} cycles")
    modes = list(PAUSE_MODES)
    gen = AxiTrafficGenerator(dut.clk, dut, ["s"], reset=dut.rst, window=(0, P["window"]),
                              seed=P["seed"], workers=2)
    for k, (idle, backpressure) in enumerate([(a, b) for a in modes for b in modes]):
        gen.set_pauses(idle, backpressure, seed=P["seed"] + k)
        start, beats = checker.cycles, gen.stats.beats
        await gen.run(beats=P["beats"] // 9)
        await ClockCycles(dut.clk, 8)
        gen.check([checker])
        print(f"LITEDRAM traffic idle={idle} backpressure={backpressure}: "
              f"{gen.stats.beats - beats} beats in {checker.cycles - start} cycles")
    print(f"LITEDRAM total {gen.stats.beats} beats, {gen.stats.reads} reads, "
          f"{gen.stats.writes} writes, zero mismatches")
    assert checker.beats["r"] > 0 and checker.beats["w"] > 0
