"""The ``lpaccel`` command line, end to end on the RTL in Verilator."""

import json
import subprocess
import sys

import pytest

from lpaccel.cli import main

REQUIRED = {"format", "rows", "cols", "cycles", "ideal_cycles", "weight_bytes",
            "bw_utilization", "bit_exact", "rel_rms_error", "timing_violations"}


@pytest.mark.parametrize("fmt", ["q4_0", "q8_0"])
def test_gemv_json(fmt, capsys):
    assert main(["gemv", "--format", fmt, "--rows", "5", "--cols", "288",
                 "--lanes", "32", "--seed", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert REQUIRED <= report.keys()
    assert report["bit_exact"] is True and report["mismatches"] == 0
    assert report["rel_rms_error"] < 1e-3
    assert (report["format"], report["rows"], report["cols"]) == (fmt, 5, 288)
    # 288 columns = 9 blocks = two chunks of at most 8 blocks per row.
    words_per_row = {"q4_0": (1 + 8) + (1 + 1), "q8_0": (1 + 16) + (1 + 2)}[fmt]
    assert report["ideal_cycles"] == 5 * words_per_row
    assert report["stream_cycles"] == report["ideal_cycles"]   # no bubbles
    assert report["weight_bytes"] == report["ideal_cycles"] * 16


@pytest.mark.parametrize("argv,message", [
    (["gemv", "--cols", "100"], "100 is not a multiple of 32"),
    (["gemv", "--rows", "0"], "0 must be at least 1"),
    (["gemv", "--format", "q5_k"], "invalid choice: 'q5_k'"),
    (["gemv", "--lanes", "12"], "invalid choice: 12"),
])
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "lpaccel.cli", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for verb in ("demo", "gemv", "build"):
        assert verb in out


def test_bench_quick(tmp_path):
    assert main(["bench", "--quick", "--out", str(tmp_path)]) == 0
    reports = json.loads((tmp_path / "bench.json").read_text())
    assert [r["format"] for r in reports] == ["q4_0", "q8_0"]
    assert all(r["bit_exact"] and r["stream_cycles"] == r["ideal_cycles"] for r in reports)
    table = (tmp_path / "bench.md").read_text()
    assert "| q4_0 | 64 × 4096 |" in table and "| q8_0 | 64 × 4096 |" in table
