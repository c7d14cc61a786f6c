"""The CSR suite in Verilator: every register and field through AXI4-Lite.

``test_csr_bank`` runs the whole cocotb suite (``cocotb_csr.py``) on the bank
generated from the register map, with three seeds (each shuffles the order
differently and draws other data and pause patterns). The mutant tests build
deliberately broken banks and check that the suite fails on each, with a
message that names the broken register.
"""

import pytest
from csr_top import csr_top

from lpaccel.rtl.dma import DmaConfig
from lpaccel.rtl.soc_config import SocConfig
from lpaccel.sim.infra.harness import run_cocotb

# An LPDDR4 SoC with a window just over 8 GiB: CAP_MEM_SIZE needs both words.
PARAMS = {"soc": SocConfig(memory="lpddr4-3200", memory_size=(1 << 33) + 0x1000,
                           dma=DmaConfig(data_width=128, addr_width=40)).to_dict(),
          "build_hash": 0x5EED_C0DE}


# Seeds 2 and 3 repeat the suite with other random traffic: the slow suite
# (make test's time budget; seed 1 runs every cocotb test of the bank).
@pytest.mark.parametrize("seed", [1, pytest.param(2, marks=pytest.mark.slow),
                                  pytest.param(3, marks=pytest.mark.slow)])
def test_csr_bank(seed):
    run_cocotb(csr_top, name="csr_top", params=PARAMS, test_module="csr.cocotb_csr",
               seed=seed, timeout_s=300)


@pytest.mark.parametrize("mutant,testcase,message", [
    ("alias", "write_read_and_aliasing", r"reads 0x[0-9a-f]+, expected"),
    ("fields", "illegal_accesses", r"write to read-only CAP_MAX_ROWS"),
    ("fields", "hardware_side", (r"IRQ_STATUS reads 0x[0-9a-f]+, expected 0x[0-9a-f]+ after "
                                 r"writing . over DMA_DONE")),
])
def test_csr_suite_catches(mutant, testcase, message):
    with pytest.raises(AssertionError, match=message):
        run_cocotb(csr_top, name=f"csr_mutant_{mutant}", params={**PARAMS, "mutant": mutant},
                   test_module="csr.cocotb_csr", testcase=f"{testcase}/delays=none", seed=1,
                   timeout_s=300)


def test_csr_suite_catches_wrong_reset_value():
    """The reset check compares against the map: a map that says 0x40 where
    the bank resets to 0x20 must fail (same build as test_csr_bank)."""
    with pytest.raises(AssertionError, match=r"JOB_GROUP reads 0x20, expected 0x40 after reset"):
        run_cocotb(csr_top, name="csr_top", params=PARAMS, test_module="csr.cocotb_csr",
                   testcase="reset_values/delays=none", seed=1, timeout_s=300,
                   extra_env={"CSR_EXPECT_MUTANT": "reset_value"})
