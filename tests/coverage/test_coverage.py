"""The functional-coverage class (:mod:`lpaccel.sim.infra.coverage`): bins,
crosses, impossible combinations, holes, files and the merge command."""

import json

import pytest

from lpaccel.rtl.config import GemvConfig, WeightFormat
from lpaccel.rtl.dma.engine import DmaConfig, DmaError
from lpaccel.sim.infra import coverage
from lpaccel.sim.infra.coverage import Coverage


def small():
    return Coverage("toy", {"a": ["x", "y"], "b": ["0", "1", "2"]}, crosses=[("a", "b")],
                    impossible=lambda cross, combo: combo == ("y", "2"))


def test_bins_crosses_and_holes():
    cov = small()
    assert len(cov.counts["a|b"]) == 5          # 2 x 3 minus the impossible one
    cov.sample(a="x", b=0)
    cov.sample(a="y", b=1)
    cov.sample(a="x", b=0)
    assert cov.counts["a"] == {"x": 2, "y": 1}
    assert cov.counts["a|b"]["x|0"] == 2
    # Never sampled: b=2, and the crosses x|1, x|2, y|0; y|2 is impossible, not a hole.
    assert cov.holes() == {"b": ["2"], "a|b": ["x|1", "x|2", "y|0"]}
    assert "holes: 2" in cov.summary()
    for b in ("1", "2"):
        cov.sample(a="x", b=b)
    cov.sample(a="y", b="0")
    assert cov.holes() == {}


def test_unknown_values_are_errors():
    cov = small()
    with pytest.raises(ValueError, match="not one of its bins"):
        cov.sample(a="z", b="0")
    with pytest.raises(ValueError, match="declared impossible"):
        cov.sample(a="y", b="2")
    with pytest.raises(ValueError, match="unknown coverpoints"):
        Coverage("bad", {"a": ["x"]}, crosses=[("a", "c")])


def test_write_merge_and_command(tmp_path, capsys):
    one, two = small(), small()
    one.sample(a="x", b="0")
    two.sample(a="y", b="1")
    one.write("toy-1", tmp_path)
    two.write("toy-2", tmp_path)
    data = json.loads((tmp_path / "toy-1.json").read_text())
    assert data["model"] == "toy" and data["samples"] == 1
    assert "`b`: `1`, `2`" in (tmp_path / "toy-1.md").read_text()
    merged = coverage.merge_dir(tmp_path)["toy"]
    assert merged.samples == 2
    assert merged.holes() == {"b": ["2"], "a|b": ["x|1", "x|2", "y|0"]}
    assert coverage.main(["merge", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "toy: 2 samples" in out and "a|b: 2/5 bins; holes: x|1, x|2, y|0" in out
    # The merged file is written but not merged again.
    assert (tmp_path / "merged-toy.json").exists()
    assert coverage.merge_dir(tmp_path)["toy"].samples == 2
    with pytest.raises(ValueError, match="cannot merge"):
        one.merge(Coverage("other", {"a": ["x"]}))


def test_gemv_model_classes():
    cfg = GemvConfig(lanes=32, word_bits=128, max_cols=1024)
    cov = coverage.gemv_coverage(cfg)

    class W:
        def __init__(self, fmt, rows, cols, group=None):
            self.fmt, self.rows, self.cols, self.group = fmt, rows, cols, group
    coverage.gemv_sample(cov, cfg, W(WeightFormat.Q4_0, 1, 32), "none", "random")
    coverage.gemv_sample(cov, cfg, W(WeightFormat.INT8, 40, 96, 32), "random", "none")
    coverage.gemv_sample(cov, cfg, W(WeightFormat.BCQ, 32, 1024, 64), "none", "none")
    assert cov.counts["fmt|cols"]["Q4_0|one_block"] == 1
    assert cov.counts["fmt|cols"]["INT8|partial_chunk"] == 1   # 3 groups, 4 slots per beat
    assert cov.counts["fmt|cols"]["BCQ|max_cols"] == 1
    assert cov.counts["rows"] == {"one": 1, "tile": 1, "many": 1}
    assert "Q4_0|64" not in cov.counts["fmt|group"]            # impossible, not a hole
    assert "Q8_0|none" in cov.holes()["fmt|group"]


def test_dma_model_classes():
    cfg = DmaConfig(data_width=32, max_burst_beats=8, max_outstanding=2, queue_depth=2)
    cov = coverage.dma_coverage(cfg)
    coverage.dma_sample(cov, cfg, "mm2s", 4096 - 3, 5, DmaError.OK, "none", "none", "random")
    coverage.dma_sample(cov, cfg, "s2mm", 0x100, 0, DmaError.LENGTH_MISMATCH,
                        "random", "none", "none")
    assert cov.counts["direction|length|align"]["mm2s|in_burst|both"] == 1
    assert cov.counts["page4k"]["crosses"] == 1
    assert cov.counts["direction|error"]["s2mm|LENGTH_MISMATCH"] == 1
    assert "mm2s|LENGTH_MISMATCH" not in cov.counts["direction|error"]
    assert "s2mm|ABORTED" in cov.holes()["direction|error"]
