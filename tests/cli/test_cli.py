"""The ``lpaccel`` command line, end to end on the RTL in Verilator."""

import json
import subprocess
import sys

import pytest

from lpaccel.cli import main

REQUIRED = {"format", "rows", "cols", "cycles", "ideal_cycles", "weight_bytes",
            "bw_utilization", "bit_exact", "rel_rms_error", "timing_violations"}


# Beats per row, counted by hand from docs/arithmetic.md section 6 for 32
# lanes (128-bit beats: 8 float16 or 4 32-bit scale slots per scale beat,
# 32 4-bit or 16 8-bit elements per quant beat).
BEATS_PER_ROW = {
    # 288 columns = 9 blocks: Q4_0 chunks of 8 blocks, Q4_1 chunks of 4.
    ("q4_0", None, 288): (1 + 8) + (1 + 1),
    ("q8_0", None, 288): (1 + 16) + (1 + 2),
    ("q4_1", None, 288): 2 * (1 + 4) + (1 + 1),
    # 384 columns: INT4 group 128 = 3 groups in one chunk; INT8 group 64 =
    # 6 groups, a chunk of 4 and one of 2.
    ("int4", 128, 384): 1 + 12,
    ("int8", 64, 384): (1 + 16) + (1 + 8),
}


@pytest.mark.parametrize("fmt,group,cols", list(BEATS_PER_ROW))
def test_gemv_json(fmt, group, cols, capsys):
    argv = ["gemv", "--engine-only", "--format", fmt, "--rows", "5", "--cols", str(cols),
            "--lanes", "32", "--seed", "3", "--json"] + (["--group", str(group)] if group else [])
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report.keys() >= REQUIRED
    assert report["bit_exact"] is True and report["mismatches"] == 0
    assert report["rel_rms_error"] < 1e-3
    assert (report["format"], report["rows"], report["cols"]) == (fmt, 5, cols)
    assert report["group"] == (group or 32)
    assert report["ideal_cycles"] == 5 * BEATS_PER_ROW[fmt, group, cols]
    assert report["stream_cycles"] == report["ideal_cycles"]   # no bubbles
    assert report["weight_bytes"] == report["ideal_cycles"] * 16


@pytest.mark.parametrize("argv,message", [
    (["gemv", "--cols", "100"], "100 is not a multiple of 32"),
    (["gemv", "--rows", "0"], "0 must be at least 1"),
    (["gemv", "--format", "q5_k"], "invalid choice: 'q5_k'"),
    (["gemv", "--lanes", "12"], "invalid choice: 12"),
    (["gemv", "--format", "int4", "--group", "48"], "invalid choice: 48"),
    (["gemv", "--word-bits", "96"], "invalid choice: 96"),
])
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["gemv", "--format", "q4_0", "--group", "64"], "--group applies to int4 and int8 only"),
    (["gemv", "--format", "int8", "--group", "128", "--cols", "96"],
     "cols must be a positive multiple of 128"),
    (["gemv", "--engine-only", "--memory", "lpddr4-3200"], "drop --engine-only"),
    (["gemv", "--word-bits", "128"], "use --engine-only to choose it"),
])
def test_rejected_jobs(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "lpaccel.cli", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for verb in ("demo", "gemv", "build"):
        assert verb in out


def test_bench_quick(tmp_path):
    assert main(["bench", "--quick", "--out", str(tmp_path)]) == 0
    reports = json.loads((tmp_path / "bench.json").read_text())
    assert [r["format"] for r in reports] == ["q4_0", "q4_1", "q8_0", "int4", "int4", "int8"]
    assert all(r["bit_exact"] and r["stream_cycles"] == r["ideal_cycles"] for r in reports)
    table = (tmp_path / "bench.md").read_text()
    assert "| q4_0 | 32 | 64 × 4096 |" in table and "| int8 | 128 | 64 × 4096 |" in table
