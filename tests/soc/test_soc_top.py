# amaranth: UnusedElaboratable=no
"""The SoC top in Verilator through its CSR port and memory window (``cocotb_soc_top.py``).

Two builds, shared by every test here (same parameters, same build):
on-chip RAM and LPDDR4-3200 with its device model. The other LPDDR parts
are only elaborated (a Verilator build each would cost minutes).
"""

import pytest
from amaranth.back import rtlil

from lpaccel.cli.soc import SIM_TOP_NAME
from lpaccel.rtl.config import GemvConfig
from lpaccel.rtl.soc.top import Soc
from lpaccel.rtl.soc_config import SocConfig
from lpaccel.sim.infra.harness import run_cocotb
from lpaccel.sim.tops.soc import make_soc_top

BUILDS = {
    # Exactly what `lpaccel gemv`/`lpaccel demo` build for small runs (same top name,
    # same parameters): the tests, the CLI and the demo share two Verilator builds.
    "onchip": SocConfig(memory="onchip").to_dict(),
    "lpddr4": SocConfig(memory="lpddr4-3200").to_dict(),
}


def run(build, testcase, *, pauses="none", seed=1):
    run_cocotb(make_soc_top, name=SIM_TOP_NAME, params=BUILDS[build],
               test_module="soc.cocotb_soc_top", testcase=testcase, seed=seed,
               extra_env={"SOC_PAUSES": pauses}, timeout_s=600)


@pytest.mark.parametrize("build", list(BUILDS))
def test_soc_top(build):
    """Constant registers, queue overflow, counter clear, the driver transport, the memory
    backdoor (both ways against the host window; the preload rate is logged) and small
    GEMVs run by lpaccel.driver.Device through SimTransport, bit-exact. One simulator run:
    each start costs seconds."""
    run(build, ["identity", "queue_overflow", "perf_clear", "sim_transport", "backdoor",
                "driver_gemv"])


@pytest.mark.parametrize("build,pauses", [("onchip", "periodic"), ("lpddr4", "random"),
                                          ("lpddr4", "none")])
def test_host_window(build, pauses):
    """Host window round trips with AXI checkers on: pauses on every host channel
    (cocotbext-axi managers), or none (the light managers of sim/infra/axi_light.py)."""
    run(build, ["host_window"], pauses=pauses)


@pytest.mark.parametrize("memory,gemv", [
    ("lpddr4x-4266", GemvConfig()),
    # LPDDR5 at 1:2 has a 256-bit path: the engine takes 256-bit words.
    ("lpddr5-6400", GemvConfig(lanes=64, word_bits=256)),
    ("is42s16160", GemvConfig()),
])
def test_elaborates(memory, gemv):
    soc = Soc(SocConfig(memory=memory, gemv=gemv))
    rtlil.convert(soc, name="soc")
    members = soc.signature.members
    if soc.config.lpddr is not None:
        assert "dfi" in members and "memory" not in members
    else:
        assert "memory" in members and "dfi" not in members
        assert members["memory"].signature.data_width == gemv.word_bits


def test_refuses_mismatched_engine():
    with pytest.raises(ValueError, match=r"gemv.word_bits is 128 but the lpddr5-6400 memory "
                                         r"path is 256 bits wide; build the engine with "
                                         r"word_bits=256"):
        Soc(SocConfig(memory="lpddr5-6400"))
    with pytest.raises(TypeError, match=r"config must be a SocConfig"):
        Soc({"memory": "onchip"})


@pytest.mark.parametrize("memory,gemv", [
    ("lpddr4-3200", GemvConfig()), ("lpddr4x-4266", GemvConfig()),
    ("lpddr5-6400", GemvConfig(lanes=64, word_bits=256)),
])
def test_storage_word_index(memory, gemv):
    """The backdoor's address map covers the model's storage once (a bijection); today it
    is the identity on memory words (the backdoor's fast path)."""
    from lpaccel.sim.testbenches.soc import storage_word_index
    config = SocConfig(memory=memory, gemv=gemv)
    wb = config.memory_data_width // 8
    words = config.lpddr.sim_bytes // wb
    index = [storage_word_index(config, w * wb) for w in range(words)]
    assert sorted(index) == list(range(words))
    assert index == list(range(words))
    # Beyond the storage, addresses alias modulo its size (as in the model).
    assert storage_word_index(config, config.lpddr.sim_bytes + 5 * wb) == 5
