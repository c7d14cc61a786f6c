"""GEMV engine in Verilator (cocotb) against the golden model."""

import json

import pytest

from lpaccel.rtl.config import GemvConfig
from lpaccel.sim.harness import run_cocotb


def engine(lanes, max_cols):
    from lpaccel.rtl.gemv import GemvEngine
    return GemvEngine(GemvConfig(lanes=lanes, max_cols=max_cols))


# 8 lanes take 4-8x more cycles per row, so their random K stops at 1024;
# the 32-lane build covers K up to the buffer size of 4096.
@pytest.mark.parametrize("lanes,max_cols_test", [(8, 1024), (32, 4096)])
def test_gemv_engine(lanes, max_cols_test):
    knobs = {"seed": lanes, "jobs": 3, "max_cols_test": max_cols_test}
    run_cocotb(engine, name="gemv_engine", params={"lanes": lanes, "max_cols": 4096},
               test_module="gemv.cocotb_gemv", seed=lanes,
               extra_env={"GEMV_TEST": json.dumps(knobs)})
