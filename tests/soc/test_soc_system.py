# amaranth: UnusedElaboratable=no
"""System tests of the SoC in Verilator (``cocotb_soc_system.py``): the driver's view.

They share the two builds of ``test_soc_top.py`` (same parameters): on-chip RAM
and LPDDR4-3200 with its timing-checked device model. ``make test`` runs 100
random aborts/soft resets (50 per build); the slow suite (``make test-slow``) 2,000
(1,000 per build).
"""

import pytest

from lpaccel.cli.soc import SIM_TOP_NAME
from lpaccel.rtl.soc_config import SocConfig
from lpaccel.sim.infra.harness import run_cocotb
from lpaccel.sim.tops.soc import make_soc_top

BUILDS = {
    # Exactly what `lpaccel gemv`/`lpaccel demo` build for small runs (same top name,
    # same parameters): the tests, the CLI and the demo share two Verilator builds.
    "onchip": SocConfig(memory="onchip").to_dict(),
    "lpddr4": SocConfig(memory="lpddr4-3200").to_dict(),
}


def run(build, testcase, *, pauses="none", seed=1, iterations=50):
    run_cocotb(make_soc_top, name=SIM_TOP_NAME, params=BUILDS[build],
               test_module="soc.cocotb_soc_system", testcase=testcase, seed=seed,
               extra_env={"SOC_PAUSES": pauses, "SOC_SEED": str(seed),
                          "SOC_ITERATIONS": str(iterations)}, timeout_s=1800)


@pytest.mark.parametrize("build,pauses", [("onchip", "random"), ("lpddr4", "none")])
def test_system(build, pauses):
    """Every format and group as one chain (random pauses on the host ports on chip),
    every bad-descriptor code then a good job, 50 random aborts/soft resets each
    followed by an exact job (100 over both builds), and the watchdog."""
    run(build, ["formats_chain", "bad_descriptors", "abort_and_reset_at_random", "watchdog"],
        pauses=pauses)


@pytest.mark.slow
@pytest.mark.parametrize("build", ["onchip", "lpddr4"])
def test_abort_soak(build):
    """1,000 random aborts/soft resets per build, each followed by an exact job."""
    run(build, ["abort_and_reset_at_random"], seed=11, iterations=1000)
