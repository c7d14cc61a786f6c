"""Formal proofs (SymbiYosys, k-induction, yices) of the skid buffer and the
AXI4-Lite subordinate, each with a broken variant the prover must refute.

The solver drives reset freely (high or low in any cycle) in every proof; the
reset-blind variants below are refuted only because of that, and are proved
"correct" when reset is assumed low, which shows the free reset matters."""

import pytest
from amaranth.hdl import Module, Signal
from formal_harness import AXI4LiteHarness, SkidBufferHarness, run_sby

from lpaccel.rtl.csr.axil import AXI4LiteSubordinate
from lpaccel.rtl.stream import SkidBuffer


class LossySkidBuffer(SkidBuffer):
    """Broken on purpose: a beat arriving while the output is stalled
    overwrites the waiting one instead of going to the skid entry."""

    def elaborate(self, platform):
        m = Module()
        out_valid = Signal()
        out_payload = Signal(self.shape)
        m.d.comb += [self.input.ready.eq(1), self.output.valid.eq(out_valid),
                     self.output.payload.eq(out_payload)]
        with m.If(self.input.valid):
            m.d.sync += [out_valid.eq(1), out_payload.eq(self.input.payload)]
        with m.Elif(self.output.ready):
            m.d.sync += out_valid.eq(0)
        return m


class ResetBlindSkidBuffer(SkidBuffer):
    """Broken on purpose: the skid entry's valid flag ignores reset, so a
    reset while it is full leaves a stale beat behind."""

    def __init__(self, shape):
        super().__init__(shape)
        self.skid_valid = Signal(name="skid_valid", reset_less=True)


class ResetBlindAXI4LiteSubordinate(AXI4LiteSubordinate):
    """Broken on purpose: its AR buffer is a :class:`ResetBlindSkidBuffer`."""

    def request_buffer(self, channel, layout):
        if channel == "ar":
            return ResetBlindSkidBuffer(layout)
        return super().request_buffer(channel, layout)


class LossyAXI4LiteSubordinate(AXI4LiteSubordinate):
    """Broken on purpose: its AW buffer is a :class:`LossySkidBuffer`."""

    def request_buffer(self, channel, layout):
        if channel == "aw":
            return LossySkidBuffer(layout)
        return super().request_buffer(channel, layout)


def test_skid_buffer_proof():
    ok, log = run_sby("skid_buffer", SkidBufferHarness(), depth=4)
    assert ok, log[-3000:]
    assert "successful proof by k-induction" in log


def test_axi4lite_subordinate_proof():
    ok, log = run_sby("axi4lite_subordinate", AXI4LiteHarness(), depth=6)
    assert ok, log[-3000:]
    assert "successful proof by k-induction" in log


@pytest.mark.parametrize("name,harness", [
    ("lossy_skid_buffer", lambda: SkidBufferHarness(dut_class=LossySkidBuffer)),
    ("lossy_axi4lite", lambda: AXI4LiteHarness(dut_class=LossyAXI4LiteSubordinate)),
    # The reset-blind variants are slow only to keep make test's budget.
    pytest.param("reset_blind_skid_buffer",
                 lambda: SkidBufferHarness(dut_class=ResetBlindSkidBuffer),
                 marks=pytest.mark.slow),
    pytest.param("reset_blind_axi4lite",
                 lambda: AXI4LiteHarness(dut_class=ResetBlindAXI4LiteSubordinate),
                 marks=pytest.mark.slow),
])
def test_prover_finds_counterexample(name, harness):
    ok, log = run_sby(name, harness(), depth=6)
    assert not ok, f"{name}: the broken design was proved correct:\n{log[-2000:]}"
    assert "Assert failed" in log and "counterexample trace" in log


@pytest.mark.slow
@pytest.mark.parametrize("name,harness", [
    ("reset_blind_skid_buffer_rst0",
     lambda: SkidBufferHarness(dut_class=ResetBlindSkidBuffer, free_reset=False)),
    ("reset_blind_axi4lite_rst0",
     lambda: AXI4LiteHarness(dut_class=ResetBlindAXI4LiteSubordinate, free_reset=False)),
])
def test_reset_blind_passes_with_reset_held_low(name, harness):
    """Control: with reset assumed low the reset-blind variants pass, so the
    refutations above come from the free reset alone."""
    ok, log = run_sby(name, harness(), depth=6)
    assert ok, log[-3000:]
