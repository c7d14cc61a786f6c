"""LpddrController + LpddrModel in Verilator (cocotb), random AXI traffic."""

import json

import pytest

from lpaccel.sim.infra.harness import run_cocotb
from lpaccel.sim.tops.lpddr import make_sim_top


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


#: A window twice the bank count: every bank stays wanted (refresh_urgent).
URGENT = {"ratio": 4, "sim_bytes": 64 * 1024, "window": 16}


@pytest.mark.slow      # its own build; 12 tREFI of one-burst reads
def test_refresh_urgent_per_bank():
    # Every bank always wanted: per-bank refresh only through its urgent path.
    _run(URGENT, "refresh_urgent", refresh_intervals=12)


#: A 1:1 controller:DRAM clock ratio (one command slot per cycle, 32-bit data
#: path, 8 beats per LPDDR4 burst) with all-bank refresh: the other corner of
#: the DFI boundary and of the refresh engine.
ONE_TO_ONE_ALL_BANK = {"ratio": 1, "sim_bytes": 64 * 1024, "window": 8,
                       "refresh": "all_bank"}


@pytest.mark.slow      # 1:1 with all-bank refresh stays in make test (refresh under streaming)
def test_random_traffic_1to1_all_bank():
    _run(ONE_TO_ONE_ALL_BANK, RANDOM_TESTS, beats=6000)


@pytest.mark.slow      # make test budget: 1:1 all-bank stays in test_random_traffic_1to1_all_bank
def test_refresh_under_streaming_1to1_all_bank():
    _run(ONE_TO_ONE_ALL_BANK, "refresh_under_streaming", refresh_intervals=10)


@pytest.mark.slow
@pytest.mark.parametrize("ratio,refresh", [(2, "per_bank"), (2, "all_bank"),
                                           (4, "all_bank"), (1, "per_bank")])
def test_random_traffic_ratio_refresh(ratio, refresh):
    params = {"ratio": ratio, "sim_bytes": 64 * 1024, "window": 8, "refresh": refresh}
    _run(params, RANDOM_TESTS, seed=3, beats=35000)
    _run(params, "refresh_under_streaming", refresh_intervals=10)


#: LPDDR5-6400 in bank-group mode: BL16 (2 CK) bursts at 1:2, a 256-bit data
#: path, bank groups rotating fastest in the address map, REFpb on bank pairs.
LPDDR5 = {"part": "lpddr5-6400", "ratio": 2, "sim_bytes": 64 * 1024, "window": 8}


@pytest.mark.slow      # a soak: 3 to 6 minutes; LPDDR4's random traffic stays in make test
def test_random_traffic_lpddr5():
    # ~10^4 AXI beats over the three pause modes, then 10 tREFI of streaming
    # reads with per-bank (pair) refresh, both against the BG-aware checker.
    _run(LPDDR5, RANDOM_TESTS, beats=3500)
    _run(LPDDR5, "refresh_under_streaming", refresh_intervals=10)
