"""`make firmware`: both targets build with warnings as errors, and the riscv32
objects need nothing from outside (no libc, no compiler runtime)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lpaccel.paths import ROOT
from tests.firmware.fwbuild import CODEC, RV_DIR, TOOL

LIB_SOURCES = ("firmware/src/lpaccel.c", "firmware/src/lpaccel_link.c",
               "firmware/src/lpaccel_mmio.c", "firmware/include/lpaccel.h",
               "firmware/include/lpaccel_link.h", "firmware/include/lpaccel_mmio.h",
               "firmware/examples/soft_cpu.c")
ALLOWED_INCLUDES = {"stdint.h", "stddef.h", "stdbool.h", "lpaccel.h", "lpaccel_link.h",
                    "lpaccel_mmio.h", "lpaccel_regs.h", "lpaccel_codes.h"}
EM_RISCV = 243


def test_fresh_build(tmp_path):
    """A from-scratch build (own output folder): every compile runs, warnings are errors."""
    out = tmp_path / "fw"
    r = subprocess.run(["make", "-f", "firmware/firmware.mk", f"BIN={Path(sys.executable).parent}",
                        f"OUT={out}"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    compiles = [line for line in r.stdout.splitlines() if " -Werror " in line]
    assert sum("riscv32-freestanding" in line for line in compiles) == 4
    assert sum(line.startswith("cc ") for line in compiles) >= 3
    for path in ("host/lpaccel-fw", "host/lpaccel-fw-codec", "riscv32/lpaccel.o",
                 "riscv32/lpaccel_link.o", "riscv32/lpaccel_mmio.o", "riscv32/soft_cpu.elf",
                 "regmap/lpaccel_regs.h", "gen/lpaccel_vectors.h"):
        assert (out / path).exists(), path


def test_warnings_are_errors(tmp_path):
    """The host flags turn a warning into a failed build (the check above can fail)."""
    src = tmp_path / "warn.c"
    src.write_text("int f(int x) { int unused; return x; }\n")
    r = subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c",
                        str(src), "-o", str(tmp_path / "warn.o")], capture_output=True, text=True)
    assert r.returncode != 0 and "unused" in r.stderr


def test_build_products(firmware):
    for path in (TOOL, CODEC, RV_DIR / "lpaccel.o", RV_DIR / "lpaccel_link.o"):
        assert path.exists(), path


@pytest.mark.parametrize("obj", ["lpaccel.o", "lpaccel_link.o", "lpaccel_mmio.o",
                                 "soft_cpu.elf"])
def test_riscv32_objects_are_self_contained(firmware, obj):
    data = (RV_DIR / obj).read_bytes()
    # ELF, 32-bit class, little-endian, relocatable, machine RISC-V.
    assert data[:4] == b"\x7fELF" and data[4] == 1 and data[5] == 1
    # Relocatable objects, and the example program linked into an executable.
    assert int.from_bytes(data[16:18], "little") == (2 if obj.endswith(".elf") else 1)
    assert int.from_bytes(data[18:20], "little") == EM_RISCV
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("no nm on this machine")
    undefined = subprocess.run([nm, "-u", str(RV_DIR / obj)], capture_output=True, text=True,
                               check=True).stdout.split()
    # The HAL is reached through function pointers: no symbol may be undefined.
    assert [s for s in undefined if s != "U"] == []


def test_nm_check_catches_an_undefined_symbol(firmware, tmp_path):
    """The check above can fail: an object calling memcpy lists it."""
    src = tmp_path / "bad.c"
    src.write_text("#include <stddef.h>\nvoid *memcpy(void *, const void *, size_t);\n"
                   "void f(char *d, const char *s) { memcpy(d, s, 3); }\n")
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", "riscv32-freestanding",
                    "-O2", "-ffreestanding", "-nostdlib", "-c", str(src), "-o",
                    str(tmp_path / "bad.o")], check=True)
    out = subprocess.run(["nm", "-u", str(tmp_path / "bad.o")], capture_output=True,
                         text=True, check=True).stdout
    assert "memcpy" in out


@pytest.mark.parametrize("source", LIB_SOURCES)
def test_library_includes_only_freestanding_headers(source):
    text = (ROOT / source).read_text()
    includes = set(re.findall(r'#include\s*[<"]([^>"]+)[>"]', text))
    assert includes <= ALLOWED_INCLUDES, includes - ALLOWED_INCLUDES


def test_library_uses_generated_addresses_only():
    """No register offset is written by hand: every register access goes through REG()."""
    text = (ROOT / "firmware/src/lpaccel.c").read_text()
    assert "offsetof(lpaccel_t, name)" in text
    calls = re.findall(r"lpaccel_reg_(?:read|write)\(dev, ([^,]+),", text)
    calls += re.findall(r"(?:read|write)64\(dev, ([^,]+),", text)
    assert calls
    # The 64-bit helpers pass their own argument on (addr, addr + 4u).
    assert all(c.startswith("REG(") or c in ("addr", "addr + 4u") for c in calls), calls
    assert not re.search(r"\b0x[0-9a-fA-F]+", text), "a hexadecimal literal in lpaccel.c"


def test_tool_usage_errors(firmware):
    r = subprocess.run([str(TOOL)], capture_output=True, text=True)
    assert r.returncode == 2 and "no command given" in r.stderr
    r = subprocess.run([str(TOOL), "--port", "/nonexistent/tty", "selftest"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "cannot open port /nonexistent/tty" in r.stderr
    r = subprocess.run([str(TOOL), "--port", "/dev/null", "--baud", "12345", "selftest"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "--baud 12345" in r.stderr
    r = subprocess.run([str(TOOL), "--port", "x", "linktest"], capture_output=True, text=True)
    assert r.returncode == 2
