"""The ``lpaccel`` command line, end to end on the RTL in Verilator."""

import json
import subprocess
import sys

import numpy as np
import pytest

from lpaccel import repack
from lpaccel.cli import main
from lpaccel.cli.gemv import engine_config_for, make_case
from lpaccel.sim.golden import gemv as golden

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


# F16 and BCQ (docs/arithmetic.md sections 7 and 8.2), 32 lanes: 8 float16 per
# beat; BCQ chunks of 8 groups, q scale beats (+ an offset beat), tiles of 128
# columns of q plane beats each.
WIDE_BEATS_PER_ROW = {
    ("f16", None, None, False, 288): 288 // 8,
    # 9 groups of 32: a whole chunk (2 + 2 tiles x 2) and a 1-group chunk (2 + 1 x 2).
    ("bcq", 32, 2, False, 288): (2 + 2 * 2) + (2 + 2),
    # 3 groups of 128 in one short chunk: 3 scale beats, an offset beat, 3 tiles x 3.
    ("bcq", 128, 3, True, 384): 3 + 1 + 3 * 3,
    ("bcq", 64, 1, False, 384): 1 + 3,
    # 16 groups of 128: two whole chunks of 4 scale beats and 8 tiles x 4.
    ("bcq", 128, 4, False, 2048): 2 * (4 + 8 * 4),
}


def _wide_argv(fmt, group, bits, offset, cols):
    return (["gemv", "--engine-only", "--format", fmt, "--rows", "5", "--cols", str(cols),
             "--lanes", "32", "--seed", "3", "--json"]
            + (["--group", str(group)] if group else [])
            + (["--bits", str(bits)] if bits else []) + (["--offset"] if offset else []))


@pytest.mark.parametrize("fmt,group,bits,offset,cols", list(WIDE_BEATS_PER_ROW))
def test_gemv_json_f16_bcq(fmt, group, bits, offset, cols, capsys):
    assert main(_wide_argv(fmt, group, bits, offset, cols)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report.keys() >= REQUIRED
    assert report["bit_exact"] is True and report["mismatches"] == 0
    assert report["rel_rms_error"] < 1e-3
    assert (report["format"], report["group"]) == (fmt, group or 32)
    assert (report["planes"], report["offset"]) == (bits or 0, offset)
    assert report["ideal_cycles"] == 5 * WIDE_BEATS_PER_ROW[fmt, group, bits, offset, cols]
    assert report["weight_bytes"] == report["ideal_cycles"] * 16


@pytest.mark.parametrize("fmt,group,bits,offset,cols", list(WIDE_BEATS_PER_ROW))
def test_gemv_case_f16_bcq_host_side(fmt, group, bits, offset, cols):
    # What `lpaccel gemv` prepares for the RTL: the case, its golden result and
    # float64 reference, and the stream the report counts.
    case = make_case(fmt, 5, cols, group=group, seed=3,
                     **({"planes": bits, "offset": offset} if fmt == "bcq" else {}))
    w = case.weights
    assert (w.fmt.name.lower(), w.group, w.planes, w.offset) == \
        (fmt, group or 32, bits or 0, offset)
    assert np.array_equal(case.expected.view(np.uint32),
                          golden.gemv_golden(w, case.x).view(np.uint32))
    assert golden.rel_rms_error(case.expected, case.reference) < 1e-4
    config = engine_config_for(32, cols)
    layout = repack.layout_of(w, config)
    assert layout.beats == 5 * WIDE_BEATS_PER_ROW[fmt, group, bits, offset, cols]
    assert len(repack.repack_weights_bytes(w, config)) == layout.bytes == 16 * layout.beats


@pytest.mark.parametrize("argv,message", [
    (["gemv", "--format", "bcq", "--bits", "5"], "argument --bits: invalid choice: 5"),
    (["gemv", "--format", "bcq", "--group", "16"], "argument --group: invalid choice: 16"),
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
    (["gemv", "--format", "q4_0", "--group", "64"],
     "--group applies to int4, int8, bcq only"),
    (["gemv", "--format", "f16", "--group", "32"], "f16 has fixed 32-element blocks"),
    (["gemv", "--format", "q8_0", "--bits", "2"],
     "--bits: q8_0 has no binary planes; --bits applies to --format bcq only"),
    (["gemv", "--format", "f16", "--offset"], "--offset applies to --format bcq only"),
    (["gemv", "--format", "bcq", "--group", "128", "--cols", "96"],
     "cols must be a positive multiple of 128"),
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


@pytest.mark.slow      # six engine runs of 64 x 4096; `lpaccel gemv` runs stay in make test
def test_bench_quick(tmp_path):
    assert main(["bench", "--quick", "--out", str(tmp_path)]) == 0
    reports = json.loads((tmp_path / "bench.json").read_text())
    assert [r["format"] for r in reports] == ["q4_0", "q4_1", "q8_0", "int4", "int4", "int8"]
    assert all(r["bit_exact"] and r["stream_cycles"] == r["ideal_cycles"] for r in reports)
    table = (tmp_path / "bench.md").read_text()
    assert "| q4_0 | 32 | 64 × 4096 |" in table and "| int8 | 128 | 64 × 4096 |" in table
