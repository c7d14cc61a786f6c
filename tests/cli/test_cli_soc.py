"""``lpaccel gemv --memory`` and ``lpaccel demo``: the host driver on the SoC in Verilator."""

import json

import pytest

from lpaccel.cli import main
from lpaccel.cli.soc import LOSS_COUNTERS

REQUIRED = {"format", "rows", "cols", "cycles", "ideal_cycles", "weight_bytes",
            "bw_utilization", "bit_exact", "rel_rms_error", "timing_violations",
            "memory", "losses", "counters"}


def _gemv(argv, capsys):
    assert main(["gemv", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _check_report(r, memory):
    assert r.keys() >= REQUIRED
    assert r["memory"] == memory
    assert r["bit_exact"] is True and r["mismatches"] == 0 and r["errors"] == []
    assert r["rel_rms_error"] < 1e-3
    assert r["idle_error"] is None
    c = r["counters"]
    assert c["jobs_done"] == 1
    assert c["weight_bytes"] == r["weight_bytes"]
    assert c["busy_cycles"] == r["cycles"] >= r["ideal_cycles"]
    assert r["bw_utilization"] == round(r["weight_bytes"] / (r["cycles"] * r["word_bits"] // 8),
                                        6)
    assert set(r["losses"]) == set(LOSS_COUNTERS)


def test_gemv_onchip(capsys):
    r = _gemv(["--format", "q8_0", "--rows", "8", "--cols", "256", "--seed", "2"], capsys)
    _check_report(r, "onchip")
    assert r["timing_violations"] is None
    assert not any(r["counters"][k] for k in ("dram_refresh", "dram_row_miss",
                                              "dram_turnaround", "dram_other"))


@pytest.mark.slow
def test_gemv_lpddr(capsys):
    r = _gemv(["--format", "int4", "--group", "64", "--rows", "24", "--cols", "512",
               "--memory", "lpddr4-3200"], capsys)
    _check_report(r, "lpddr4-3200")
    assert r["timing_violations"] == 0


@pytest.mark.slow
def test_demo(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "demo: PASS" in out and "DRAM timing violations: 0" in out
