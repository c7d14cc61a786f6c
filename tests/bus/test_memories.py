"""AxiSram and AxiSpram (behavioural SPRAM) in Verilator."""

import json

from bus_tops import MemoriesTop

from lpaccel.sim.infra.harness import run_cocotb

BUILD = {"sram_bytes": 1 << 15, "spram_bytes": 1 << 17, "data_width": 64, "id_width": 4}


def test_onchip_memories():
    knobs = {"beats": 18_000, "seed": 3}
    run_cocotb(MemoriesTop, name="memories", params=BUILD, test_module="bus.cocotb_memories",
               seed=3, extra_env={"BUS_TEST": json.dumps(knobs)})
