"""cocotb: random AXI4 traffic through the arbiter into a memory.

Top: ``ArbiterSramTop`` (backend ``sram``: AxiSram behind the arbiter, the
link visible as tap ``s``) or ``ArbiterTop`` (backend ``axiram``: the
arbiter's subordinate port served by cocotbext-axi's AxiRam, with its own
pauses). Every combination of {none, periodic, random} pauses on the
managers' request channels and on their response channels; protocol
checkers on every manager port and on the subordinate link.
"""

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from lpaccel.sim.infra.axi_checker import AxiProtocolChecker
from lpaccel.sim.infra.axi_traffic import AxiTrafficGenerator
from lpaccel.sim.infra.harness import params
from lpaccel.sim.infra.streams import PAUSE_MODES

# Build parameters plus run knobs (beats, seed, backend, ...) from BUS_TEST.
P = {**params(), **json.loads(os.environ.get("BUS_TEST", "{}"))}
MANAGERS = [f"m{k}" for k in range(P["managers"])]
COMBOS = len(PAUSE_MODES) ** 2


class TB:
    """Clock, reset, checkers on every port, and (for ``axiram``) the model."""

    def __init__(self, dut, *, sub_pause="none", seed=0):
        self.dut = dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.checkers = [AxiProtocolChecker(dut.clk, dut, p, reset=dut.rst)
                         for p in MANAGERS + ["s"]]
        self.ram = None
        if P["backend"] == "axiram":
            import logging

            from cocotbext.axi import AxiBus, AxiRam
            self.ram = AxiRam(AxiBus.from_prefix(dut, "s"), dut.clk, dut.rst,
                              size=P["window"])
            for iface in (self.ram.write_if, self.ram.read_if):
                iface.log.setLevel(logging.WARNING)
            for j, (iface, ch) in enumerate([(self.ram.write_if, "aw"), (self.ram.write_if, "w"),
                                            (self.ram.write_if, "b"), (self.ram.read_if, "ar"),
                                            (self.ram.read_if, "r")]):
                channel = getattr(iface, f"{ch}_channel")
                channel.log.setLevel(logging.WARNING)
                channel.set_pause_generator(PAUSE_MODES[sub_pause](seed=seed * 7 + j))

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)


@cocotb.test()
@cocotb.parametrize(idle=list(PAUSE_MODES), backpressure=list(PAUSE_MODES))
async def random_traffic(dut, idle, backpressure):
    """Random reads/writes from every manager, checked against a reference."""
    names = list(PAUSE_MODES)
    seed = P["seed"] * 100 + 10 * names.index(idle) + names.index(backpressure)
    # Subordinate-side pauses (axiram only) cycle through the modes too.
    tb = TB(dut, sub_pause=names[(names.index(idle) + names.index(backpressure)) % 3],
            seed=seed)
    gen = AxiTrafficGenerator(dut.clk, dut, MANAGERS, reset=dut.rst,
                              window=(0, P["window"]), seed=seed, idle=idle,
                              backpressure=backpressure, workers=P["workers"],
                              max_burst=P["max_burst"])
    await tb.reset()
    stats = await gen.run(beats=P["beats"] // COMBOS)
    await ClockCycles(dut.clk, 4)
    gen.check(tb.checkers)
    link = tb.checkers[-1]
    # The link carried exactly what the managers asked for.
    assert link.beats["w"] == stats.write_beats and link.beats["r"] == stats.read_beats, (
        link.beats, stats.write_beats, stats.read_beats)
    assert link.beats["w"] == sum(c.beats["w"] for c in tb.checkers[:-1])
    assert link.beats["b"] == link.beats["aw"] and link.beats["ar"] == sum(
        c.beats["ar"] for c in tb.checkers[:-1])
    # The arbiter bounds what is in flight at the subordinate, and does let
    # several transactions overlap.
    peak = link.peak_outstanding
    assert 1 < peak["writes"] <= P["max_outstanding"], peak
    assert 1 < peak["reads"] <= P["max_outstanding"], peak
    if P.get("peak_at_limit"):
        # Behind AxiRam (which queues without limit) the bound is what binds.
        assert max(peak.values()) == P["max_outstanding"], peak
    # Reads must actually check data, not only unwritten bytes.
    wanted = P["min_compared"] * stats.read_beats * P["data_width"] // 8
    assert stats.compared_bytes >= wanted, (
        f"only {stats.compared_bytes} bytes compared in {stats.read_beats} read beats")
    for prefix, numbers in stats.per_manager.items():
        assert numbers["reads"] and numbers["writes"], f"{prefix} starved: {numbers}"
    dut._log.info(f"idle={idle} backpressure={backpressure}: {stats.beats} beats "
                  f"({stats.read_beats} R, {stats.write_beats} W) in {link.cycles} cycles, "
                  f"{stats.reads} reads, {stats.writes} writes, per manager "
                  f"{stats.per_manager}")
    print(f"TRAFFIC beats={stats.beats} cycles={link.cycles} compared={stats.compared_bytes} "
          f"peak_outstanding={peak} "
          f"idle={idle} "
          f"backpressure={backpressure}")
