"""SocConfig: one configuration, and a register map that tells the truth about the hardware.

The capability registers are derived from :class:`SocConfig`; these tests
elaborate the blocks that configuration builds and compare what the map
reports with what the gateware actually contains (FIFO depths, multiplier
count, buffer capacity, port widths), so a restated or stale number fails.
"""

import pytest
from amaranth.hdl import Fragment

from lpaccel.rtl.config import BLOCK, GemvConfig
from lpaccel.rtl.dma import DmaConfig, DmaEngine
from lpaccel.rtl.dsp import RegisteredMultiplier
from lpaccel.rtl.gemv import GemvEngine
from lpaccel.rtl.regmap import RegmapConfig, register_map
from lpaccel.rtl.soc_config import LPDDR_MEMORIES, MEMORIES, SocConfig
from lpaccel.rtl.utils import StructFIFO


def _walk(fragment, path=()):
    yield path, fragment
    for sub, name, _ in fragment.subfragments:
        yield from _walk(sub, (*path, name))


def _origins(component, kind):
    """``{path: origin}`` of every elaborated object of ``kind`` below ``component``."""
    found = {}
    for path, fragment in _walk(Fragment.get(component, None)):
        for origin in fragment.origins or ():
            if isinstance(origin, kind):
                found[path] = origin
    return found


def _queue(fifos, channel, name):
    """The one queue called ``name`` inside a DMA channel, wherever it sits."""
    found = [fifo for path, fifo in fifos.items() if path[0] == channel and path[-1] == name]
    assert len(found) == 1, f"{channel} has {len(found)} queues called {name}: {list(fifos)}"
    return found[0]


def _field(regmap, register, field=None):
    reg = regmap[register]
    return reg.field(field).reset if field else reg.reset


SOCS = [
    SocConfig(),
    SocConfig(gemv=GemvConfig(lanes=64, max_cols=4096), memory="lpddr5-6400",
              dma=None),
    SocConfig(gemv=GemvConfig(lanes=8, word_bits=64, max_cols=1024),
              dma=DmaConfig(data_width=64, queue_depth=7)),
]


@pytest.mark.parametrize("soc", SOCS, ids=lambda s: f"{s.memory}-l{s.gemv.lanes}")
def test_dma_depths_are_the_built_ones(soc):
    regmap = register_map(RegmapConfig(soc))
    fifos = _origins(DmaEngine(soc.dma), StructFIFO)
    for channel in ("mm2s", "s2mm"):
        assert _queue(fifos, channel, "cmds").depth == _field(regmap, "CAP_DMA", "DESC_DEPTH")
        assert _queue(fifos, channel, "status").depth == \
            _field(regmap, "CAP_DMA", "STATUS_DEPTH")


@pytest.mark.parametrize("soc", SOCS, ids=lambda s: f"{s.memory}-l{s.gemv.lanes}")
def test_engine_capabilities_are_the_built_ones(soc):
    regmap = register_map(RegmapConfig(soc))
    engine = GemvEngine(soc.gemv)
    # One multiplier per lane (LutGemm's scale multipliers are not lanes).
    multipliers = [path for path in _origins(engine, RegisteredMultiplier) if path[0] == "lanes"]
    assert len(multipliers) == _field(regmap, "CAP_ENGINE", "LANES")
    assert len(engine.weights.payload) == _field(regmap, "CAP_ENGINE", "WORD_BITS")
    # Two activation buffers (ping-pong) of max_cols elements, BLOCK per entry.
    # (LutGemm's table banks hold BCQ's tables, not activation blocks.)
    memories = [m for path, m in _origins(engine, object).items()
                if type(m).__name__ == "Memory" and path[0] == "buffers"]
    entries = sum(m.depth for m in memories)
    assert entries * BLOCK == 2 * _field(regmap, "CAP_MAX_COLS")
    assert _field(regmap, "CAP_MAX_ROWS") == soc.gemv.max_rows
    assert _field(regmap, "CAP_FORMATS") == sum(1 << int(f) for f in soc.gemv.formats)


def test_memory_capabilities():
    for memory in MEMORIES:
        soc = SocConfig(memory=memory)
        regmap = register_map(RegmapConfig(soc))
        assert _field(regmap, "CAP_MEM_SIZE") == soc.memory_size
        kind = regmap["CAP_MEMORY"].field("KIND").encode
        expected = "BRAM" if memory == "onchip" else soc.memory_standard
        assert _field(regmap, "CAP_MEMORY", "KIND") == kind[expected]
    for memory in LPDDR_MEMORIES:
        soc = SocConfig(memory=memory)
        assert soc.dma.data_width == soc.lpddr.data_width


def test_a_stale_depth_is_caught(monkeypatch):
    """Negative test: a register map that restates a depth instead of deriving it fails."""
    soc = SocConfig()
    monkeypatch.setattr(RegmapConfig, "dma_status_depth", property(lambda self: 4))
    regmap = register_map(RegmapConfig(soc, build_hash=0xBAD))
    fifos = _origins(DmaEngine(soc.dma), StructFIFO)
    assert _queue(fifos, "mm2s", "status").depth != _field(regmap, "CAP_DMA", "STATUS_DEPTH")


def test_round_trip_and_errors():
    for soc in SOCS:
        assert SocConfig.from_dict(soc.to_dict()) == soc
    with pytest.raises(ValueError, match=r"memory must be one of onchip, .* not 'hbm2'"):
        SocConfig(memory="hbm2")
    with pytest.raises(ValueError, match=r"lpddr is set but memory 'onchip' is not an LPDDR"):
        SocConfig(lpddr=SOCS[1].lpddr)
    with pytest.raises(ValueError, match=r"SocConfig: unknown key\(s\) lanes"):
        SocConfig.from_dict({"lanes": 32})
