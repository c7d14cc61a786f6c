"""k-induction proof (SymbiYosys, yices) of the read-data rules of the
generated CSR bank, with a broken variant the prover must refute."""

import pytest
from amaranth.hdl import Module
from csr_bank_harness import CsrBankHarness
from formal_harness import run_sby

from lpaccel.rtl.bus.axi import Resp

#: k-induction length; also the base case's trace length, which must reach an
#: error response (AR accepted, through the skid buffer, R valid: 3 cycles).
DEPTH = 4


class EchoingBankHarness(CsrBankHarness):
    """Broken on purpose: a read of an unmapped address returns the address
    instead of 0 (a decode default that forgot the zero)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        assert isinstance(m, Module)
        acc = m.submodules.subordinate.access
        with m.If(acc.r_resp == Resp.DECERR):
            m.d.comb += acc.r_data.eq(acc.r_addr)
        return m


def test_csr_bank_read_data_proof():
    ok, log = run_sby("csr_bank", CsrBankHarness(), depth=DEPTH)
    assert ok, log[-3000:]
    assert "successful proof by k-induction" in log


@pytest.mark.slow
def test_csr_bank_prover_finds_counterexample():
    ok, log = run_sby("csr_bank_echoing", EchoingBankHarness(), depth=DEPTH)
    assert not ok, f"the echoing bank was proved correct:\n{log[-2000:]}"
    assert "Assert failed" in log and "counterexample trace" in log
