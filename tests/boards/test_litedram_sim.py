"""The generated ULX3S LiteDRAM core in Verilator: init by the wrapper, then
random AXI4 traffic (litedram's SDRAMPHYModel stands in for the SDRAM).

The generated core's Verilog is compiled next to the Amaranth top through
``run_cocotb(verilog_sources=...)``. Marked ``synth`` like the other board
tests (the Verilator build of the core takes about 40 s of CPU).
"""

import json

import pytest

from lpaccel.boards.litedram import generate_litedram_core
from lpaccel.sim.infra.harness import run_cocotb


def make_litedram_sim_top(board):
    """Factory for run_cocotb: the wrapped simulation core of ``board``."""
    from litedram_sim_top import LiteDramSimTop
    return LiteDramSimTop(generate_litedram_core(board, sim=True))


@pytest.mark.synth
def test_litedram_sdr_core_in_verilator():
    core = generate_litedram_core("ulx3s", sim=True)
    run_cocotb(make_litedram_sim_top, name="litedram_sim", params={"board": "ulx3s"},
               test_module="boards.cocotb_litedram", seed=5,
               verilog_sources=[core.verilog],
               extra_env={"LITEDRAM_TEST": json.dumps({
                   "init_cycles": 20_000, "window": 1 << 20, "beats": 9_000, "seed": 5})})
