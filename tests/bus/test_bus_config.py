# amaranth: UnusedElaboratable=no
"""Configuration validation of the bus and memory blocks (no simulation)."""

import pytest
from amaranth.hdl import Fragment, Instance

from lpaccel.rtl.bus.interconnect import AXI4Arbiter, AXI4ArbiterConfig
from lpaccel.rtl.mem import AxiMemoryConfig, AxiSpram, AxiSram, Spram256ka


def test_arbiter_config():
    cfg = AXI4ArbiterConfig(managers=3, id_width=4)
    assert cfg.index_bits == 2 and cfg.subordinate_id_width == 6
    assert AXI4ArbiterConfig(managers=1, id_width=0).subordinate_id_width == 0
    arb = AXI4Arbiter(cfg)
    assert len(arb.managers) == 3 and arb.subordinate.signature == cfg.subordinate_signature
    with pytest.raises(ValueError, match="managers must be an integer from 1 to 16, not 0"):
        AXI4ArbiterConfig(managers=0)
    with pytest.raises(ValueError, match="max_outstanding must be a power of two"):
        AXI4ArbiterConfig(max_outstanding=6)
    with pytest.raises(ValueError, match=r"exceeds 16; use id_width <= 12"):
        AXI4ArbiterConfig(managers=9, id_width=14)
    with pytest.raises(ValueError, match="data_width must be one of"):
        AXI4ArbiterConfig(data_width=48)
    with pytest.raises(TypeError, match="config must be an AXI4ArbiterConfig"):
        AXI4Arbiter(3)


def test_memory_config():
    cfg = AxiMemoryConfig(size_bytes=4096, data_width=32)
    assert cfg.depth == 1024 and cfg.word_bytes == 4
    with pytest.raises(ValueError, match="multiple of the word size .8 bytes"):
        AxiMemoryConfig(size_bytes=100, data_width=64)
    with pytest.raises(ValueError, match="does not fit addr_width 12; use addr_width >= 16"):
        AxiMemoryConfig(size_bytes=65536, addr_width=12)
    with pytest.raises(ValueError, match="multiple of 16384 words"):
        AxiSpram(AxiMemoryConfig(size_bytes=4096, data_width=32))
    with pytest.raises(ValueError, match="data_width must be at least 16"):
        AxiSpram(AxiMemoryConfig(size_bytes=16384, data_width=8))
    with pytest.raises(TypeError, match="config must be an AxiMemoryConfig"):
        AxiSram(4096)


class _Ice40:
    family = "ice40"


def test_spram_picks_primitive_by_platform():
    def has_instance(platform):
        frag = Fragment.get(Spram256ka(), platform)
        return any(isinstance(sub, Instance) and sub.type == "SB_SPRAM256KA"
                   for sub, _, _ in frag.subfragments)
    assert has_instance(_Ice40())
    assert not has_instance(None)
