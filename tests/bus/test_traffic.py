"""Random AXI4 traffic: 3 managers through AXI4Arbiter into AxiSram / AxiRam."""

import json

import pytest
from bus_tops import ArbiterSramTop, ArbiterTop

from lpaccel.sim.infra.harness import run_cocotb

SRAM = {"managers": 3, "size_bytes": 1 << 16, "data_width": 64, "id_width": 4,
        "max_outstanding": 8}
ARB = {"managers": 3, "data_width": 64, "id_width": 4, "max_outstanding": 4}


def _run(factory, name, build, module, **knobs):
    knobs = {"managers": build["managers"], "id_width": build["id_width"],
             "data_width": build["data_width"], "window": 1 << 16, "workers": 3, "seed": 1,
             "max_burst": 256, "min_compared": 0.25, **knobs}
    run_cocotb(factory, name=name, params=build, test_module=f"bus.{module}",
               seed=knobs["seed"],
               extra_env={"BUS_TEST": json.dumps(knobs)})


def test_arbiter_sram_random_traffic():
    # 9 pause combinations, >= 10^5 data beats in total.
    _run(ArbiterSramTop, "arbiter_sram", SRAM, "cocotb_traffic", backend="sram",
         beats=108_000)


def test_arbiter_axiram_random_traffic():
    # Pauses on the subordinate side too (cocotbext-axi AxiRam behind the arbiter).
    _run(ArbiterTop, "arbiter", ARB, "cocotb_traffic", backend="axiram", beats=9_000,
         window=8192, max_burst=64, min_compared=0.02, peak_at_limit=True)


def test_arbiter_round_robin():
    _run(ArbiterSramTop, "arbiter_sram", SRAM, "cocotb_arbiter", backend="sram")


@pytest.mark.slow
def test_arbiter_sram_random_traffic_soak():
    _run(ArbiterSramTop, "arbiter_sram", SRAM, "cocotb_traffic", backend="sram",
         beats=1_080_000, seed=7)
