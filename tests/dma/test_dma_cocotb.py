"""DMA engine in Verilator (cocotb) against the behavioural model.

The default build (32-bit data, 8-beat bursts, 2 reads outstanding) makes
multi-burst descriptors, 4 KiB splits and the outstanding limit happen at
small lengths. A 64-bit build runs the throughput measurement and the
directed tests; the full sweep under every pause mix is ``slow``.
"""

import json

import pytest
from dma_top import make_top

from lpaccel.sim.infra.harness import run_cocotb

SMALL = {"data_width": 32, "max_burst_beats": 8, "max_outstanding": 2, "queue_depth": 2}
WIDE = {"data_width": 64, "max_burst_beats": 16, "max_outstanding": 4, "queue_depth": 4}


def run(config, tests, timeout_s=600, **knobs):
    # A parametrized test's name selects all its variants (see run_cocotb).
    run_cocotb(make_top, name="dma_top", params=config, test_module="dma.cocotb_dma",
               testcase=tests, seed=1, timeout_s=timeout_s,
               extra_env={"DMA_TEST": json.dumps(knobs)})


def test_sweep_all_pauses_32():
    run(SMALL, "sweep_all_pauses")


def test_directed_32():
    run(SMALL, ["window_check", "length_mismatch", "bus_errors", "abort_mid_transfer",
                "both_channels_at_once"])


def test_directed_and_throughput_64():
    # The 32-bit build runs the error tests under all three bus pause modes
    # (the coverage cross); here the wide datapath under none and random.
    run(WIDE, ["window_check/bus=random", "throughput",
               *(f"bus_errors/kind={kind}/bus={bus}" for kind in ("SLVERR", "DECERR")
                 for bus in ("none", "random")),
               *(f"abort_mid_transfer/bus={bus}" for bus in ("none", "random"))])


@pytest.mark.slow
def test_full_sweep_all_pauses_64():
    run(WIDE, "sweep_all_pauses", full=True, seed=3)


@pytest.mark.slow
def test_full_sweep_all_pauses_32():
    run(SMALL, "sweep_all_pauses", full=True, seed=5)


@pytest.mark.slow
def test_soak_random_pauses_32():
    """At least 10^6 cycles of random pauses on every port (descriptor and data
    streams, status streams, the five AXI channels): full sweeps until then."""
    run(SMALL, "sweep_all_pauses/idle=random/backpressure=random/bus=random",
        timeout_s=3600, full=True, seed=7, soak_cycles=10**6)
