"""LpddrController + LpddrModel in Verilator (cocotb), random AXI traffic."""

import json

import pytest

from lpaccel.rtl.dram.simtop import make_sim_top
from lpaccel.sim.harness import run_cocotb


def _run(params, testcase, seed=1, **knobs):
    run_cocotb(make_sim_top, name="lpddr_top", params=params,
               test_module="dram.cocotb_lpddr", testcase=testcase, seed=seed,
               extra_env={"LPDDR_TEST": json.dumps({"seed": seed, **knobs})})


#: The regression's build: 64 KiB of simulated storage (4 rows of all 8
#: banks, enough for row misses) keeps the Verilator build small.
BASE = {"ratio": 4, "sim_bytes": 64 * 1024, "window": 8}


RANDOM_TESTS = [f"random_traffic/mode={mode}" for mode in ("none", "periodic", "random")]


def test_smoke():
    _run(BASE, "smoke")


def test_random_traffic():
    # Three pause modes (none, periodic, random on all five channels) of
    # 35k beats each: >= 10^5 AXI beats checked against the reference.
    _run(BASE, RANDOM_TESTS, beats=35000)


@pytest.mark.slow
def test_random_traffic_long():
    _run(BASE, RANDOM_TESTS, seed=2, beats=350000)


def test_refresh_under_streaming():
    _run(BASE, "refresh_under_streaming", refresh_intervals=10)
