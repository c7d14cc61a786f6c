"""``lpaccel mem-bench --json`` end to end (small transfer)."""

import json

from lpaccel.cli import main


def test_mem_bench_json(capsys):
    assert main(["mem-bench", "--memory", "lpddr4-3200", "--pattern", "seq",
                 "--bytes", "65536", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("memory", "pattern", "bytes", "cycles", "peak_bytes_per_cycle",
                "bw_utilization", "timing_violations", "loss"):
        assert key in report
    assert report["timing_violations"] == 0
    assert report["bytes"] == 65536 and report["peak_bytes_per_cycle"] == 16
    assert set(report["loss"]) == {"refresh", "row_miss", "turnaround", "other"}
    # Delivered bytes can never beat the peak; streaming keeps it high.
    assert 0.8 < report["bw_utilization"] <= 1.0
    assert report["counters"]["data_beats"] * 16 == 65536


def test_mem_bench_rejects_unknown_memory(capsys):
    try:
        main(["mem-bench", "--memory", "ddr9"])
    except SystemExit as exit_:
        assert exit_.code == 2
    assert "invalid choice: 'ddr9'" in capsys.readouterr().err
