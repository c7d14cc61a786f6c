"""The firmware build for the tests (safe under pytest-xdist), and where its outputs are."""

import fcntl
import subprocess
import sys
from pathlib import Path

from lpaccel.paths import ROOT

FW_BUILD = ROOT / "build" / "firmware"
HOST_BIN = FW_BUILD / "host"
RV_DIR = FW_BUILD / "riscv32"
TOOL = HOST_BIN / "lpaccel-fw"
CODEC = HOST_BIN / "lpaccel-fw-codec"


def build_firmware():
    """Run the firmware build (``make -f firmware/firmware.mk``); return its output.

    A file lock serialises concurrent builds of xdist workers; the build is
    incremental, so the second worker's run only regenerates the headers.
    """
    FW_BUILD.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    with open(FW_BUILD / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(["make", "-f", "firmware/firmware.mk", f"BIN={bin_dir}"],
                                cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        raise AssertionError(f"the firmware build failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


def error_codes():
    """``{name: value}`` of ``enum lpaccel_err`` in firmware/include/lpaccel.h."""
    import re
    text = (ROOT / "firmware/include/lpaccel.h").read_text()
    body = text[text.index("typedef enum lpaccel_err {"):text.index("} lpaccel_err;")]
    names = re.findall(r"^\s*(LPACCEL_\w+)", body, re.M)
    assert names[0] == "LPACCEL_OK" and "= 0" in body.splitlines()[1]
    return {name: i for i, name in enumerate(names)}
