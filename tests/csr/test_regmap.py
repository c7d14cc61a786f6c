"""The register map and everything generated from it: Python model, C header,
docs, Python table, host register layer and the CLI verb."""

import dataclasses
import importlib.util
import itertools
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lpaccel.regmap import MemoryTransport, RegisterError, Registers, generate
from lpaccel.rtl.config import GemvConfig, WeightFormat
from lpaccel.rtl.dma import DmaConfig
from lpaccel.rtl.regmap import MemoryKind, RegmapConfig, compile_regmap, register_map
from lpaccel.rtl.soc_config import SocConfig


def _big_soc():
    """An on-chip SoC with a 16 GiB window: a 64-bit CAP_MEM_SIZE value."""
    return SocConfig(memory_size=1 << 34, dma=DmaConfig(data_width=128, addr_width=40))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    # One directory per pytest(-xdist) worker: no two workers write the same files.
    out = tmp_path_factory.mktemp("regmap")
    return generate(out, RegmapConfig(_big_soc(), build_hash=0xABCD1234))


# --- the map itself -------------------------------------------------------------

def test_map_layout():
    regmap = register_map()
    spans = sorted((r.address, r.address + r.width // 8, r.name) for r in regmap)
    for (_a0, a1, n0), (b0, _, n1) in itertools.pairwise(spans):
        assert a1 <= b0, f"{n0} overlaps {n1}"
    for reg in regmap:
        assert reg.address % (reg.width // 8) == 0
        used = 0
        for f in reg.fields:
            assert used & f.mask == 0, f"{reg.name}.{f.name} overlaps another field"
            used |= f.mask
            assert f.msb < reg.width
    # What the brief asks for is there, with the access kinds it names.
    kinds = {f.access for r in regmap for f in r.fields}
    assert kinds == {"RO", "RW", "W1C", "W1S", "WO"}
    for name in ("MAGIC", "VERSION", "BUILD_HASH", "CAP_FORMATS", "CAP_ENGINE", "CAP_MEMORY",
                 "CAP_MEM_SIZE", "CONTROL", "STATUS", "ERROR", "IRQ_STATUS", "IRQ_ENABLE",
                 "JOB_WEIGHT_ADDR", "JOB_ACT_ADDR", "JOB_RESULT_ADDR", "JOB_ROWS", "JOB_COLS",
                 "JOB_FORMAT", "JOB_GROUP", "JOB_TAG", "JOB_FLAGS", "JOB_PUSH", "JOB_STATUS",
                 "JOB_POP", "JOB_LEVELS", "WATCHDOG", "CAP_JOBS", "PERF_CONTROL",
                 "PERF_BUSY_CYCLES", "PERF_WEIGHT_BYTES", "PERF_STALL_MEMORY",
                 "PERF_STALL_RESULT", "PERF_STALL_HOST", "PERF_STALL_ENGINE", "PERF_JOBS_DONE",
                 "PERF_MEM_BYTES", "PERF_MEM_IDLE", "PERF_DRAM_REFRESH", "PERF_DRAM_ROW_MISS",
                 "PERF_DRAM_TURNAROUND", "PERF_DRAM_OTHER"):
        assert name in regmap
    # The DMA belongs to the job sequencer: no host-visible DMA queue, no START.
    for name in ("DMA_PUSH", "DMA_STATUS", "DMA_POP", "DMA_LEVELS", "DMA_DESC_ADDR"):
        assert name not in regmap
    for name in ("JOB_WEIGHT_ADDR", "JOB_ACT_ADDR", "PERF_BUSY_CYCLES", "CAP_MEM_SIZE"):
        assert regmap[name].width == 64
    assert regmap["JOB_PUSH"].field("PUSH").singlepulse
    assert regmap["JOB_POP"].field("POP").singlepulse
    assert regmap["CONTROL"].field("ABORT").singlepulse
    assert regmap["IRQ_STATUS"].field("GEMV_DONE").access == "W1C"


def test_capabilities_follow_config():
    gemv = GemvConfig(lanes=16, formats=("q8_0",))
    soc = SocConfig(gemv=gemv, memory="mt41k256m16", memory_size=3 << 30,
                    dma=DmaConfig(data_width=gemv.word_bits, queue_depth=8))
    cfg = RegmapConfig(soc, build_hash=0x1234)
    regmap = register_map(cfg)
    assert regmap["CAP_ENGINE"].field("LANES").reset == 16
    assert regmap["CAP_ENGINE"].field("WORD_BITS").reset == gemv.word_bits
    assert regmap["CAP_FORMATS"].reset == 1 << WeightFormat.Q8_0
    assert regmap["CAP_MEMORY"].reset == MemoryKind.DDR3
    assert regmap["CAP_MEM_SIZE"].reset == 3 << 30
    assert regmap["BUILD_HASH"].reset == 0x1234
    assert regmap["CAP_DMA"].field("DESC_DEPTH").reset == 8
    assert regmap["CAP_DMA"].field("STATUS_DEPTH").reset == soc.dma.status_depth == 10
    assert regmap["CAP_MAX_COLS"].reset == gemv.max_cols
    assert regmap["CAP_JOBS"].field("DEPTH").reset == soc.job_depth
    default = register_map()
    assert default["CAP_FORMATS"].reset == sum(1 << f for f in GemvConfig().formats)


@pytest.mark.parametrize("kwargs,message", [
    ({"soc": {"memory": "hbm"}}, r"memory must be one of onchip, lpddr4-3200, .* not 'hbm'"),
    ({"soc": {"memory_size": -1}}, r"memory_size must be an integer from 1 to"),
    ({"build_hash": 1 << 32}, r"build_hash must be an integer from 0 to 4294967295"),
    ({"soc": {"dma": {"data_width": 128, "queue_depth": 0}}},
     r"DmaConfig.queue_depth must be an integer from 1 to 64, not 0"),
    ({"version": (1,)}, r"version must be a \(major, minor\) pair"),
    ({"soc": {"gemv": {"formats": ["q5_k"]}}}, r"weight format 'q5_k' is not supported"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        if "soc" in kwargs:
            kwargs = {**kwargs, "soc": SocConfig.from_dict(kwargs["soc"])}
        RegmapConfig(**kwargs)


def test_soc_config_round_trip():
    for memory in ("onchip", "lpddr4-3200", "lpddr5-6400", "is42s16160"):
        soc = SocConfig(memory=memory)
        assert SocConfig.from_dict(soc.to_dict()) == soc
        assert register_map(RegmapConfig(soc))["CAP_MEMORY"].reset == \
            RegmapConfig(soc).memory_kind
    with pytest.raises(ValueError, match=r"gemv: unknown field\(s\) lane \(known: .*lanes"):
        SocConfig.from_dict({"gemv": {"lane": 32}})
    with pytest.raises(ValueError, match=r"dma.data_width is 64 but the lpddr4-3200 memory"):
        SocConfig(memory="lpddr4-3200", dma=DmaConfig(data_width=64))


def test_unsupported_rdl_is_refused(tmp_path, monkeypatch):
    from lpaccel.rtl import regmap as rm
    src = rm.RDL_PATH.read_text().replace(
        "field { sw = rw; hw = na; } VALUE[31:0] = 0;",
        "field { sw = rw; hw = na; rclr; } VALUE[31:0] = 0;")
    bad = tmp_path / "bad.rdl"
    bad.write_text(src)
    monkeypatch.setattr(rm, "RDL_PATH", bad)
    rm._compile.cache_clear()
    rm.register_map.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"SCRATCH.VALUE: properties rclr are not supported"):
            rm.register_map(RegmapConfig(build_hash=7))
    finally:
        monkeypatch.undo()
        rm._compile.cache_clear()
        rm.register_map.cache_clear()


def test_bank_rejects_small_address_space():
    from lpaccel.rtl.csr import CsrBank
    with pytest.raises(ValueError, match=r"addr_width must be an integer from 12"):
        CsrBank(addr_width=8)


# --- generated artifacts --------------------------------------------------------

@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_c_header_compiles(generated, tmp_path):
    regmap = register_map(RegmapConfig(_big_soc(), build_hash=0xABCD1234))
    header = Path(generated["c_header"])
    checks = "\n".join(
        f"_Static_assert(offsetof(lpaccel_t, {r.name}) == {r.address:#x}, \"{r.name}\");"
        for r in regmap)
    fields = "\n".join(
        f"_Static_assert(LPACCEL__{r.name}__{f.name}_bp == {f.lsb} && "
        f"LPACCEL__{r.name}__{f.name}_bw == {f.width}, \"{r.name}.{f.name}\");"
        for r in regmap for f in r.fields)
    resets = "\n".join(
        f"_Static_assert(LPACCEL__{r.name}__{f.name}_reset == {f.reset:#x}ULL, "
        f"\"{r.name}.{f.name} reset\");"
        for r in regmap for f in r.fields if f.reset is not None)
    src = tmp_path / "use_header.c"
    src.write_text(f"""#include <stddef.h>
#include <stdint.h>
#include "{header.name}"
{checks}
{fields}
{resets}
_Static_assert(sizeof(lpaccel_t) == {regmap.size:#x}, "size");
uint32_t start_job(volatile lpaccel_t *regs, uint64_t weights) {{
    regs->JOB_WEIGHT_ADDR = weights;
    regs->JOB_PUSH = LPACCEL__JOB_PUSH__PUSH_bm;
    return regs->MAGIC;
}}
""")
    for c_file in (src, Path(generated["c_test"])):
        result = subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", "-fsyntax-only",
                                 f"-I{header.parent}", str(c_file)],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{c_file.name}:\n{result.stderr}"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_c_header_check_catches_a_wrong_offset(generated, tmp_path):
    src = tmp_path / "wrong.c"
    src.write_text(f'#include <stddef.h>\n#include <stdint.h>\n#include "{generated["c_header"]}"\n'
                   f'_Static_assert(offsetof(lpaccel_t, JOB_ROWS) == 0x9c, "JOB_ROWS");\n')
    result = subprocess.run(["gcc", "-std=c11", "-fsyntax-only", str(src)],
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "JOB_ROWS" in result.stderr


def test_docs_name_every_register(generated):
    regmap = register_map()
    markdown = Path(generated["markdown"]).read_text()
    html = "".join(p.read_text(errors="ignore")
                   for p in Path(generated["html"]).rglob("*") if p.is_file()
                   and p.suffix in (".html", ".js"))
    assert (Path(generated["html"]) / "index.html").exists()
    for reg in regmap:
        assert re.search(rf"\b{reg.name}\b", markdown), f"{reg.name} missing from regmap.md"
        assert reg.name in html, f"{reg.name} missing from the HTML docs"
        for f in reg.fields:
            assert f.name in markdown


def test_python_table_matches_rdl(generated):
    spec = importlib.util.spec_from_file_location("lpaccel_regs_generated", generated["python"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    regmap = register_map(RegmapConfig(_big_soc(), build_hash=0xABCD1234))
    assert {r.name: r.address for r in regmap} == module.ADDRESSES
    regs = module.registers(MemoryTransport())
    assert regs.map.registers == regmap.registers
    # Independently of our flattening: walk systemrdl's own node tree.
    root = compile_regmap(RegmapConfig(_big_soc(), build_hash=0xABCD1234))
    for node in root.top.registers():
        reg = regs.map[node.inst_name]
        assert reg.address == node.absolute_address
        assert [(f.name, f.lsb, f.width, f.reset) for f in reg.fields] == \
            [(f.inst_name, f.lsb, f.width, f.get_property("reset")) for f in node.fields()]


# --- host register layer ------------------------------------------------------------

def test_registers_by_name():
    t = MemoryTransport()
    regs = Registers(t)
    regs.write("JOB_WEIGHT_ADDR", 0x1122_3344_5566_7788)
    assert t.log == [("w", 0x80, 0x5566_7788), ("w", 0x84, 0x1122_3344)], "low word first"
    assert regs.read("JOB_WEIGHT_ADDR") == 0x1122_3344_5566_7788
    assert [a for k, a, _ in t.log[2:]] == [0x80, 0x84]
    t.words[0x50] = 0b1011
    assert regs.fields("IRQ_STATUS") == {"GEMV_DONE": 1, "GEMV_ERROR": 1, "DMA_DONE": 0,
                                          "DMA_ERROR": 1}
    # W1C neighbours are written as 0, so only the named bit is cleared.
    t.log.clear()
    regs.write_field("IRQ_STATUS.GEMV_ERROR", 1)
    assert t.log[-1] == ("w", 0x50, 0b10)
    # RW neighbours are preserved.
    t.words[0x54] = 0b1001
    regs.write_field("IRQ_ENABLE.DMA_DONE", 1)
    assert t.words[0x54] == 0b1101
    assert regs.read_field("IRQ_ENABLE.DMA_DONE") == 1


@pytest.mark.parametrize("call,message", [
    (lambda r: r.read("NOPE"), r"no register 'NOPE'"),
    (lambda r: r.write("MAGIC", 1), r"MAGIC is read-only"),
    (lambda r: r.read("JOB_PUSH"), r"JOB_PUSH is write-only"),
    (lambda r: r.write("JOB_ROWS", 1 << 32), r"does not fit 32 bits"),
    (lambda r: r.write_field("JOB_ROWS.COUNT", 1 << 16), r"does not fit 16 bits"),
    (lambda r: r.read_field("JOB_ROWS.NOPE"), r"no field 'NOPE'"),
])
def test_registers_errors(call, message):
    with pytest.raises(RegisterError, match=message):
        call(Registers(MemoryTransport()))


def test_cli_regmap(tmp_path, capsys):
    from lpaccel.cli import main
    assert main(["regmap", "--out", str(tmp_path / "out")]) == 0
    for name in ("lpaccel_regs.h", "regmap.md", "html/index.html", "lpaccel_regs.py"):
        assert (tmp_path / "out" / name).exists()
    assert "c_header" in capsys.readouterr().out


def test_field_signature_refuses_hw_write_without_we():
    from lpaccel.rtl.csr import field_signature
    reg = register_map()["ERROR"]
    field = dataclasses.replace(reg.field("GEMV"), we=False)
    with pytest.raises(ValueError, match=r"ERROR.GEMV: hardware-writable storage needs 'we'"):
        field_signature(reg, field)


def test_refused_bank_leaves_no_unused_elaboratable():
    import gc
    import warnings

    from amaranth.hdl import UnusedElaboratable

    from lpaccel.rtl.csr import CsrBank
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=r"addr_width must be an integer from 12"):
            CsrBank(addr_width=3)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, UnusedElaboratable)]
