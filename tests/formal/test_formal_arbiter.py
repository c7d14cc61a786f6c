"""Bounded model check (SymbiYosys, yices) of the AXI4 arbiter on its smallest
configuration, with broken variants the checker must refute."""

import dataclasses
import tomllib
import types

import pytest
from amaranth.hdl import Cat, Signal
from arbiter_harness import SMALL_CONFIG, ArbiterHarness
from formal_harness import run_sby

from lpaccel.paths import ROOT
from lpaccel.rtl.bus.interconnect import _ADDR_FIELDS, AXI4Arbiter

#: Trace lengths of the bounded check (cycles from the initial state; reset is
#: free at every cycle). 6 cycles take about 3 s (make test), 12 about 70 s
#: (make test-slow); the time roughly doubles per cycle past 9.
DEPTH_QUICK = 6
DEPTH_FULL = 12


class FixedPriorityArbiter(AXI4Arbiter):
    """Broken on purpose: manager 0 always wins, so it can starve manager 1."""

    def _arbitrate(self, m, name, channels, out, allow, last):
        cfg = self.config
        winner = Signal(range(cfg.managers))
        for idx in reversed(range(cfg.managers)):
            with m.If(channels[idx].valid):
                m.d.comb += winner.eq(idx)
        grant = (~out.valid | out.ready) & allow & Cat(ch.valid for ch in channels).any()
        for idx, ch in enumerate(channels):
            m.d.comb += ch.ready.eq(grant & (winner == idx))
        with m.If(grant):
            m.d.sync += out.valid.eq(1)
            for idx, ch in enumerate(channels):
                with m.If(winner == idx):
                    m.d.sync += [getattr(out, f).eq(getattr(ch, f)) for f in _ADDR_FIELDS]
                    m.d.sync += out.id.eq(Cat(ch.id, idx))
        with m.Elif(out.ready):
            m.d.sync += out.valid.eq(0)
        return grant, winner


class WOrderBlindArbiter(AXI4Arbiter):
    """Broken on purpose: W beats are taken from any manager while some AW
    is open, not only from the manager at the head of the order queue."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        order = m.submodules.w_order
        sub = self.subordinate
        for mg in self.managers:
            m.d.comb += mg.w.ready.eq((~sub.w.valid | sub.w.ready) & order.r_stream.valid)
        return m


@pytest.mark.parametrize("depth", [
    DEPTH_QUICK,
    pytest.param(DEPTH_FULL, marks=pytest.mark.slow),
])
def test_arbiter_bmc(depth):
    ok, log = run_sby(f"axi4_arbiter_d{depth}", ArbiterHarness(), mode="bmc", depth=depth,
                      timeout_s=600)
    assert ok, log[-3000:]
    assert f"Checking assertions in step {depth - 1}" in log


@pytest.mark.parametrize("name,dut_class", [
    # Slow to keep make test's budget (about 3 s each).
    pytest.param("arbiter_fixed_priority", FixedPriorityArbiter, marks=pytest.mark.slow),
    pytest.param("arbiter_w_order_blind", WOrderBlindArbiter, marks=pytest.mark.slow),
])
def test_arbiter_checker_finds_counterexample(name, dut_class):
    ok, log = run_sby(name, ArbiterHarness(dut_class=dut_class), mode="bmc", depth=DEPTH_QUICK)
    assert not ok, f"{name}: the broken arbiter passed:\n{log[-2000:]}"
    assert "Assert failed" in log and "counterexample trace" in log


def _catalogue_arbiter_mutations():
    catalogue = ROOT / "tests" / "mutations" / "catalogue.toml"
    entries = tomllib.loads(catalogue.read_text())["mutation"]
    return [e for e in entries if e["file"] == "rtl/bus/interconnect.py"]


@pytest.mark.slow
@pytest.mark.parametrize("entry", _catalogue_arbiter_mutations(), ids=lambda e: e["id"])
def test_arbiter_checker_kills_catalogue_mutations(entry):
    """Every ``make mutate`` mutation of the arbiter, built in memory from the
    catalogue's find/replace, fails the 6-cycle check (about 2 s each)."""
    source = (ROOT / entry["file"]).read_text()
    assert source.count(entry["find"]) == 1, entry["id"]
    mutant = types.ModuleType("lpaccel.rtl.bus._formal_mutant")
    mutant.__package__ = "lpaccel.rtl.bus"
    exec(compile(source.replace(entry["find"], entry["replace"]), entry["file"], "exec"),
         mutant.__dict__)
    config = mutant.AXI4ArbiterConfig(**dataclasses.asdict(SMALL_CONFIG))
    ok, log = run_sby(f"arbiter_mutant_{entry['id']}",
                      ArbiterHarness(dut_class=mutant.AXI4Arbiter, config=config),
                      mode="bmc", depth=DEPTH_QUICK)
    assert not ok, f"mutation {entry['id']} passed the arbiter check:\n{log[-2000:]}"
    assert "Assert failed" in log
