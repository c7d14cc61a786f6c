"""The SoC behind the host bridge in Verilator (``cocotb_link.py``).

One build (on-chip memory, the simulated board's bridge parameters), shared
with ``lpaccel serve-sim``: same top name, same parameters.
"""

import pytest

from lpaccel.sim.infra.harness import run_cocotb
from lpaccel.sim.tops.link import LINK_TOP_NAME, link_params, make_link_top


def run(testcase, env=None, seed=1, timeout_s=900):
    run_cocotb(make_link_top, name=LINK_TOP_NAME, params=link_params(),
               test_module="bridge.cocotb_link", testcase=testcase, seed=seed,
               extra_env=env, timeout_s=timeout_s)


def test_link_top():
    """Register walk, memory bursts (backdoor-checked, AXI checker), a GEMV through
    lpaccel.driver.Device over the link, the real UART PHY, and 10^3 request frames with
    faults in both directions. One simulator run: each start costs seconds."""
    run(["register_walk", "memory_bursts", "driver_gemv", "uart_phy", "faults"])


@pytest.mark.slow
def test_link_faults_slow():
    """10^4 request frames with faults in both directions."""
    run(["faults"], env={"LINK_FAULT_FRAMES": "10000", "LINK_FAULT_SEED": "11"},
        timeout_s=3600)
