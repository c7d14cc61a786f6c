"""GEMV engine in Verilator (cocotb) against the golden model.

The default suite covers word = beat and words narrower than a beat on 16
and 32 lanes; the slow suite adds words wider than a beat (256 and 512 bits)
and 64 and 128 lanes.
"""

import json

import pytest

from lpaccel.sim.infra.harness import run_cocotb


def engine(lanes, word_bits, max_cols):
    from lpaccel.rtl.config import GemvConfig
    from lpaccel.rtl.gemv import GemvEngine
    return GemvEngine(GemvConfig(lanes=lanes, word_bits=word_bits, max_cols=max_cols))


CONFIGS = [
    # lanes, word bits, buffer size, largest random K
    pytest.param(16, 64, 8192, 1024, id="16lanes-64b"),
    pytest.param(32, 128, 8192, 2048, id="32lanes-128b"),
    pytest.param(32, 64, 1024, 1024, id="32lanes-64b-gather"),
    # Words split into beats: also in test_gemv_sim (Amaranth) in make test.
    pytest.param(16, 256, 1024, 512, id="16lanes-256b-split", marks=pytest.mark.slow),
    pytest.param(64, 512, 8192, 2048, id="64lanes-512b-split", marks=pytest.mark.slow),
    pytest.param(128, 512, 8192, 4096, id="128lanes-512b", marks=pytest.mark.slow),
    pytest.param(128, 128, 2048, 2048, id="128lanes-128b-gather", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("lanes,word_bits,max_cols,max_cols_test", CONFIGS)
def test_gemv_engine(lanes, word_bits, max_cols, max_cols_test):
    knobs = {"seed": lanes + word_bits, "jobs": 4, "max_cols_test": max_cols_test}
    run_cocotb(engine, name="gemv_engine",
               params={"lanes": lanes, "word_bits": word_bits, "max_cols": max_cols},
               test_module="gemv.cocotb_gemv", seed=lanes + word_bits,
               extra_env={"GEMV_TEST": json.dumps(knobs)})


@pytest.mark.slow
def test_gemv_soak():
    """At least 10^6 cycles of random pauses on every port (the three inputs and
    the result stream): random jobs, checked bit for bit, until then."""
    knobs = {"seed": 1306, "jobs": 8, "max_cols_test": 1024, "soak_cycles": 10**6}
    run_cocotb(engine, name="gemv_engine",
               params={"lanes": 16, "word_bits": 64, "max_cols": 8192},
               test_module="gemv.cocotb_gemv", seed=1306,
               testcase="random_jobs/idle=random/backpressure=random",
               extra_env={"GEMV_TEST": json.dumps(knobs)})
