"""Formal checks (SymbiYosys, yices) of the AXI4 arbiter on its smallest
configuration: a k-induction proof (with the harness's inductive invariants
and a register order queue, see ``arbiter_harness``), a cover run showing the
proof's assumptions leave the interesting states reachable, a bounded check
of the arbiter as built (``lib.fifo.SyncFIFO`` order queue), and broken
variants and ``make mutate`` catalogue mutations that both the proof harness
and the bounded check must refute."""

import dataclasses
import tomllib
import types

import pytest
from amaranth.hdl import Cat, Module, Signal
from arbiter_harness import (
    SMALL_CONFIG,
    ArbiterHarness,
    QueueEquivalenceHarness,
    RegisterQueue,
)
from formal_harness import run_sby

from lpaccel.paths import ROOT
from lpaccel.rtl.bus.interconnect import _ADDR_FIELDS, AXI4Arbiter

#: Induction length of the proof: the invariants are inductive on their own
#: (a state meeting every assertion steps only to such states), so 1 suffices.
PROOF_DEPTH = 1
#: Trace length of the cover run: its deepest cover is reached at step 4.
COVER_DEPTH = 5
#: The cover statements in :class:`ArbiterHarness`.
COVERS = 8
#: Trace length of the register queue's equivalence check with SyncFIFO.
QUEUE_DEPTH = 10
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


def test_arbiter_proof():
    """k-induction: every property holds on every trace, at any length."""
    ok, log = run_sby("axi4_arbiter_proof", ArbiterHarness(), mode="prove", depth=PROOF_DEPTH)
    assert ok, log[-3000:]
    assert "successful proof by k-induction" in log


def test_arbiter_proof_is_not_vacuous():
    """Every cover statement is reached: both order queue entries and both
    outstanding limits in use, a manager-1 burst leaving after a manager-0
    burst, B and last R delivered, each manager granted after losing once on
    AW and on AR."""
    ok, log = run_sby("axi4_arbiter_cover", ArbiterHarness(), mode="cover", depth=COVER_DEPTH)
    assert ok, log[-3000:]
    assert log.count("Reached cover statement in step") == COVERS, log[-3000:]


class StuckHeadQueue(RegisterQueue):
    """Broken on purpose: a read lowers the level but leaves the entries in
    place, so the head never moves on."""

    def elaborate(self, platform):
        m = Module()
        do_read = self.r_rdy & self.r_en
        do_write = self.w_rdy & self.w_en
        m.d.comb += [self.w_rdy.eq(self.level != self.depth), self.r_rdy.eq(self.level != 0),
                     self.r_data.eq(self.entries[0])]
        for k, entry in enumerate(self.entries):
            with m.If(do_write & (self.level - do_read == k)):
                m.d.sync += entry.eq(self.w_data)
        m.d.sync += self.level.eq(self.level + do_write - do_read)
        return m


def _queue_check(name, queue_class):
    cfg = SMALL_CONFIG
    return run_sby(name, QueueEquivalenceHarness(width=max(1, cfg.index_bits),
                                                 depth=cfg.max_outstanding,
                                                 queue_class=queue_class),
                   mode="bmc", depth=QUEUE_DEPTH)


def test_register_queue_matches_sync_fifo():
    """The proof's register order queue answers like the arbiter's SyncFIFO
    (its shape in the proof: 1 bit wide, 2 deep), on every input sequence of
    up to ``QUEUE_DEPTH`` cycles with a free reset."""
    ok, log = _queue_check("arbiter_order_queue_equivalence", RegisterQueue)
    assert ok, log[-3000:]
    assert f"Checking assertions in step {QUEUE_DEPTH - 1}" in log


@pytest.mark.slow   # make test's budget: about 1.5 s
def test_queue_equivalence_finds_stuck_head():
    ok, log = _queue_check("arbiter_order_queue_stuck_head", StuckHeadQueue)
    assert not ok, f"a queue whose head never moves matched SyncFIFO:\n{log[-2000:]}"
    assert "Assert failed" in log


@pytest.mark.parametrize("depth", [
    DEPTH_QUICK,
    pytest.param(DEPTH_FULL, marks=pytest.mark.slow),
])
def test_arbiter_bmc(depth):
    """The arbiter as built, with its ``SyncFIFO`` order queue, bounded."""
    ok, log = run_sby(f"axi4_arbiter_d{depth}", ArbiterHarness(invariants=False), mode="bmc",
                      depth=depth, timeout_s=600)
    assert ok, log[-3000:]
    assert f"Checking assertions in step {depth - 1}" in log


#: Each refutation runs with the proof harness (invariants: the shortest
#: counterexample often breaks one) and without (the bug shows in a property).
HARNESSES = [pytest.param(True, id="proof_harness"), pytest.param(False, id="properties_only")]


@pytest.mark.slow   # make test's budget: about 1.5 s each
@pytest.mark.parametrize("invariants", HARNESSES)
@pytest.mark.parametrize("name,dut_class", [
    ("arbiter_fixed_priority", FixedPriorityArbiter),
    ("arbiter_w_order_blind", WOrderBlindArbiter),
])
def test_arbiter_checker_finds_counterexample(name, dut_class, invariants):
    ok, log = run_sby(f"{name}_{int(invariants)}",
                      ArbiterHarness(dut_class=dut_class, invariants=invariants),
                      mode="bmc", depth=DEPTH_QUICK)
    assert not ok, f"{name}: the broken arbiter passed:\n{log[-2000:]}"
    assert "Assert failed" in log and "counterexample trace" in log


def _catalogue_arbiter_mutations():
    catalogue = ROOT / "tests" / "mutations" / "catalogue.toml"
    entries = tomllib.loads(catalogue.read_text())["mutation"]
    return [e for e in entries if e["file"] == "rtl/bus/interconnect.py"]


@pytest.mark.slow
@pytest.mark.parametrize("invariants", HARNESSES)
@pytest.mark.parametrize("entry", _catalogue_arbiter_mutations(), ids=lambda e: e["id"])
def test_arbiter_checker_kills_catalogue_mutations(entry, invariants):
    """Every ``make mutate`` mutation of the arbiter, built in memory from the
    catalogue's find/replace, fails the 6-cycle check (about 1.5 s each)."""
    source = (ROOT / entry["file"]).read_text()
    assert source.count(entry["find"]) == 1, entry["id"]
    mutant = types.ModuleType("lpaccel.rtl.bus._formal_mutant")
    mutant.__package__ = "lpaccel.rtl.bus"
    exec(compile(source.replace(entry["find"], entry["replace"]), entry["file"], "exec"),
         mutant.__dict__)
    config = mutant.AXI4ArbiterConfig(**dataclasses.asdict(SMALL_CONFIG))
    ok, log = run_sby(f"arbiter_mutant_{entry['id']}_{int(invariants)}",
                      ArbiterHarness(dut_class=mutant.AXI4Arbiter, config=config,
                                     invariants=invariants),
                      mode="bmc", depth=DEPTH_QUICK)
    assert not ok, f"mutation {entry['id']} passed the arbiter check:\n{log[-2000:]}"
    assert "Assert failed" in log
