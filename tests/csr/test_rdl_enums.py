# amaranth: UnusedElaboratable=no
"""The error and kind enums come from the SystemRDL file, once: names, values and texts.

``lpaccel.rtl.regmap`` builds ``GemvError``, ``DmaError`` and ``MemoryKind``
from the ``gemv_error_e``, ``dma_error_e`` and ``mem_kind_e`` enums of
``lpaccel.rdl`` with :func:`~lpaccel.rtl.regmap.rdl_enum`. These tests hold
the derived enums to the compiled RDL and show that a changed RDL changes
them (the negative test: nothing is restated by hand).
"""

import pytest
from amaranth.hdl import Shape, Signal
from amaranth.lib import enum as amaranth_enum

from lpaccel.rtl.regmap import (
    RDL_PATH,
    DmaError,
    GemvError,
    MemoryKind,
    compile_regmap,
    rdl_enum,
    register_map,
)

# Derived enum, the field that carries it, its hardware width.
DERIVED = [
    (MemoryKind, "lpaccel.CAP_MEMORY.KIND", 4),
    (GemvError, "lpaccel.ERROR.GEMV", 4),
    (GemvError, "lpaccel.JOB_STATUS.ERROR", 4),
    (DmaError, "lpaccel.ERROR.DMA", 4),
    (DmaError, "lpaccel.JOB_STATUS.DMA", 4),
]


def _rdl_members(path):
    encode = compile_regmap().find_by_path(path).get_property("encode")
    return [(m.name, m.value, m.rdl_desc.strip()) for m in encode]


@pytest.mark.parametrize("cls,path,width", DERIVED, ids=[p for _, p, _ in DERIVED])
def test_derived_enum_is_the_rdl_enum(cls, path, width):
    assert [(m.name, m.value, m.desc) for m in cls] == _rdl_members(path)
    assert isinstance(cls, amaranth_enum.EnumType) and issubclass(cls, amaranth_enum.IntEnum)
    assert Shape.cast(cls) == Shape(width)
    assert Signal(cls).shape() == Shape(width)


def test_gemv_error_codes():
    # Codes 1-5: what the GEMV engine's error port has always reported;
    # 6-11: the job sequencer's (address checks, DMA failures, abort, watchdog);
    # 12: BCQ's plane count (the engine's, found after the format and group).
    assert {m.name: m.value for m in GemvError} == {
        "NONE": 0, "BAD_FORMAT": 1, "BAD_COLS": 2, "COLS_TOO_LARGE": 3, "BAD_ROWS": 4,
        "BAD_GROUP": 5, "BAD_ADDRESS": 6, "MISALIGNED": 7, "DMA_READ": 8, "DMA_WRITE": 9,
        "ABORTED": 10, "TIMEOUT": 11, "BAD_PLANES": 12}
    assert "multiple of the group (32 for the GGUF formats)" in GemvError.BAD_COLS.desc


def test_gemv_engine_reports_these_codes():
    from lpaccel.rtl.gemv import GemvEngine
    from lpaccel.rtl.gemv import GemvError as EngineGemvError
    assert {m.name: m.value for m in EngineGemvError} == {m.name: m.value for m in GemvError}
    from lpaccel.rtl.config import GemvConfig
    # Built to read a port width, never elaborated (see the file comment).
    assert len(GemvEngine(GemvConfig()).error) == Shape.cast(GemvError).width


def test_dma_codes_and_status_layout():
    from lpaccel.rtl.dma import DmaConfig
    from lpaccel.rtl.dma import DmaError as EngineDmaError
    assert EngineDmaError is DmaError
    assert {m.name: m.value for m in DmaError} == {
        "OK": 0, "WINDOW": 1, "SLVERR": 2, "DECERR": 3, "ABORTED": 4, "LENGTH_MISMATCH": 5}
    assert DmaConfig().status_layout["error"].shape is DmaError
    regmap = register_map()
    for reg, field in (("JOB_STATUS", "DMA"), ("ERROR", "DMA")):
        assert regmap[reg].field(field).encode == {m.name: m.value for m in DmaError}


def test_describe():
    assert DmaError.describe(1).startswith("WINDOW (1): [addr, addr + length) is not inside")
    assert DmaError.describe(DmaError.ABORTED) == \
        "ABORTED (4): An abort was requested before the descriptor completed."
    assert GemvError.describe(13) == "reserved gemv_error_e code 13"
    assert GemvError.describe(6).startswith("BAD_ADDRESS (6): A buffer of the job")
    assert MemoryKind.DDR3.desc == "DDR3 through LiteDRAM."
    assert DmaError.rdl_type == "dma_error_e"
    assert "``LENGTH_MISMATCH = 5``" in DmaError.__doc__


def test_built_once():
    assert rdl_enum("dma_error_e", 4, name="DmaError") is DmaError
    assert rdl_enum("gemv_error_e", 4, name="GemvError", path=RDL_PATH) is GemvError


def test_changed_rdl_changes_the_enum(tmp_path):
    # Negative test: the Python enum follows the file it is compiled from.
    src = RDL_PATH.read_text()
    old = 'WINDOW = 1 { desc = "'
    assert src.count(old) == 1
    changed = tmp_path / "changed.rdl"
    changed.write_text(src.replace(old, 'WINDOW = 9 { desc = "Moved. '))
    moved = rdl_enum("dma_error_e", 4, name="DmaError", path=changed)
    assert moved is not DmaError
    assert moved.WINDOW == 9 and DmaError.WINDOW == 1
    assert moved.WINDOW.desc.startswith("Moved. ")
    assert [m.name for m in moved] == [m.name for m in DmaError]
    renamed = tmp_path / "renamed.rdl"
    renamed.write_text(src.replace("BAD_GROUP = 5", "BAD_GROUP_SIZE = 5"))
    assert "BAD_GROUP_SIZE" in rdl_enum("gemv_error_e", 4, path=renamed).__members__
    assert rdl_enum("gemv_error_e", 4, path=renamed).__name__ == "GemvError"


def test_rdl_enum_errors(tmp_path):
    with pytest.raises(ValueError, match=r"no field has 'encode = nope_e' \(enums used as "
                                         r"encode: dma_error_e, gemv_error_e, mem_kind_e\)"):
        rdl_enum("nope_e", 4)
    with pytest.raises(ValueError, match=r"dma_error_e.ABORTED = 4 does not fit the shape "
                                         r"unsigned\(2\); widen the shape"):
        rdl_enum("dma_error_e", 2)


def test_dma_engine_refuses_codes_that_are_not_axi_responses(tmp_path, monkeypatch):
    # The DMA passes RRESP/BRESP through as a status code: a map that
    # renumbers SLVERR must be refused, not silently miscoded.
    from lpaccel.rtl.dma import engine
    changed = tmp_path / "changed.rdl"
    changed.write_text(RDL_PATH.read_text()
                       .replace('SLVERR = 2 { desc = "A', 'SLVERR = 6 { desc = "A'))
    monkeypatch.setattr(engine, "DmaError", rdl_enum("dma_error_e", 4, path=changed))
    with pytest.raises(ValueError, match=r"dma_error_e.SLVERR is 6 in the register map but the "
                                         r"DMA engine passes the AXI response code 2 through"):
        engine._check_error_codes()


def test_docs_tables_are_the_rdl_codes():
    # docs/dma.md summarizes dma_error_e in a table: its names and values
    # must be the RDL's (the texts there are short forms of the RDL's).
    import re

    from lpaccel.paths import ROOT
    text = (ROOT / "docs" / "dma.md").read_text()
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", text, re.MULTILINE)
    assert [(name, int(value)) for value, name in rows] == [(m.name, m.value) for m in DmaError]


def test_generated_markdown_lists_the_enums(tmp_path):
    from lpaccel.regmap import generate
    markdown = (tmp_path / "regmap.md")
    generate(tmp_path)
    text = markdown.read_text()
    for cls in (GemvError, DmaError, MemoryKind):
        section = text.split(f"### {cls.rdl_type}\n", 1)[1].split("\n### ", 1)[0]
        for m in cls:
            assert f"| {m.value} | {m.name} | {m.desc} |" in section
    assert "Encodes ERROR.DMA, JOB_STATUS.DMA." in text
