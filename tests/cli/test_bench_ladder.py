"""``lpaccel bench --ladder``: the arithmetic and the table, on stand-in runs.

The runs themselves are RTL simulations of 4096 x 4096 GEMVs (``make bench``
territory); here each step's run is replaced by a report with known cycles
and bytes, so the speed-up, byte ratio and efficiency can be checked exactly.
"""

import json

import pytest

from lpaccel.cli import bench, gemv, main


@pytest.fixture
def fake_runs(monkeypatch):
    calls = []

    def make_case(fmt, rows, cols, group=None, seed=0, planes=None):
        calls.append((fmt, group, planes))
        return (fmt, planes)

    def run_gemv(case, lanes=32, seed=0):
        fmt, planes = case
        # Bytes per weight: F16 2, q8_0 34/32, q4_0 18/32, int4 17/32, BCQ (q + 0.125) / 8.
        bits = {"f16": 16, "q8_0": 8.5, "q4_0": 4.5, "int4": 4.25}.get(fmt) or planes + 0.125
        nbytes = int(4096 * 4096 * bits / 8)
        # Cycles: the ideal words plus a fixed 1000-cycle cost per job.
        return {"cycles": nbytes // 16 + 1000, "weight_bytes": nbytes, "bit_exact": True}

    monkeypatch.setattr(gemv, "make_case", make_case)
    monkeypatch.setattr(gemv, "run_gemv", run_gemv)
    return calls


def test_ladder_ratios_and_table(fake_runs, tmp_path):
    rows = bench.run_ladder(tmp_path, memory=None, log=lambda _: None)
    assert [r["label"] for r in rows] == [s[0] for s in bench.LADDER]
    assert fake_runs[4:] == [("bcq", 128, 3), ("bcq", 128, 2), ("bcq", 128, 1)]
    f16 = rows[0]
    for r in rows:
        assert r["speedup"] == pytest.approx(f16["cycles"] / r["cycles"])
        assert r["byte_ratio"] == pytest.approx(f16["weight_bytes"] / r["weight_bytes"])
        assert r["efficiency"] == pytest.approx(r["speedup"] / r["byte_ratio"])
    # A fixed cost per job weighs more on the shorter streams: efficiency falls.
    effs = [r["efficiency"] for r in rows]
    assert effs[0] == 1.0 and all(a > b for a, b in zip(effs[1:], effs[2:]) if a and b)
    bcq2 = rows[5]
    assert bcq2["byte_ratio"] == pytest.approx(16 / 2.125)
    md = (tmp_path / "ladder.md").read_text()
    assert "| BCQ2 g128 | 2.125 |" in md and "engine alone" in md
    assert json.loads((tmp_path / "ladder.json").read_text())[0]["label"] == "F16"


def test_ladder_unknown_step(tmp_path):
    with pytest.raises(ValueError, match="not known; choose from F16, Q8_0"):
        bench.run_ladder(tmp_path, steps=["BCQ5"])


def test_bench_options_need_ladder(capsys, tmp_path):
    assert main(["bench", "--out", str(tmp_path), "--memory", "engine"]) == 2
    assert "add --ladder" in capsys.readouterr().err
