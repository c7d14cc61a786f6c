"""``lpaccel run-gguf``: GGUF files written with gguf.GGUFWriter, run and checked.

One run on the simulated SoC in process (Verilator, the on-chip SoC build
that ``lpaccel gemv`` and tests/soc share); the rest runs the same command
over ``--port`` against the whole Python stack with no simulator (the link's
golden model in front of the driver's SoC test double, tests/driver/model.py),
or stops at the input checks before any device is touched.
"""

import json

import gguf
import gguf.quants
import numpy as np
import pytest

from lpaccel.cli import main
from lpaccel.driver import Device
from lpaccel.rtl.config import GemvConfig
from lpaccel.rtl.soc_config import SocConfig
from lpaccel.sim.golden.gemv import gemv_golden
from lpaccel.sim.golden.link import LinkDeviceModel, LoopbackPort
from lpaccel.transports import LinkTransport
from tests.driver.model import BusError as SocBusError
from tests.driver.model import SocModel

QUANTIZED = (("blk.0.attn_q.weight", "Q4_0"), ("blk.0.attn_k.weight", "Q8_0"),
             ("blk.0.ffn_up.weight", "Q4_1"))


def write_gguf(path, tensors=QUANTIZED, rows=64, cols=256, seed=1, f32=True):
    """A GGUF file: one matrix per ``(name, type[, rows])`` (default ``rows x cols``), plus
    F32 tensors."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "llama")
    for name, kind, *shape in tensors:
        qtype = gguf.GGMLQuantizationType[kind]
        r = shape[0] if shape else rows
        q = gguf.quants.quantize(rng.normal(0, 0.02, (r, cols)).astype(np.float32), qtype)
        w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)
    if f32:
        w.add_tensor("output_norm.weight", rng.normal(0, 1, cols).astype(np.float32))
        w.add_tensor("token_embd.weight", rng.normal(0, 1, (8, cols)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def model_file(tmp_path):
    return write_gguf(tmp_path / "model.gguf")


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _check_all_exact(report):
    assert report["ok"] is True
    assert [t["name"] for t in report["tensors"]] == [n for n, _ in QUANTIZED]
    for t, (_, kind) in zip(report["tensors"], QUANTIZED):
        assert t["format"] == kind.lower() and t["shape"] == [64, 256]
        assert t["bit_exact"] is True and t["mismatches"] == 0
        assert 0 < t["rel_error_vs_gguf_f64"] < 1e-3
    assert {(s["name"], s["type"]) for s in report["skipped"]} == {
        ("output_norm.weight", "F32"), ("token_embd.weight", "F32")}


# --- in process, on the RTL ----------------------------------------------------------------

def test_run_gguf_in_process(model_file, capsys):
    code, out, _ = _run(["run-gguf", str(model_file), "--json"], capsys)
    assert code == 0
    report = json.loads(out)
    _check_all_exact(report)
    for t in report["tensors"]:
        assert t["cycles"] > 0 and 0.5 < t["utilization"] <= 1.0


# --- over --port, without a simulator ------------------------------------------------------

class _ModelDevices:
    """``open_port`` for tests: the link's golden model in front of a SoC test double."""

    def __init__(self, soc=None, socmodel=SocModel):
        self.soc = socmodel(soc or SocConfig(gemv=GemvConfig(lanes=32, max_cols=1024),
                                             memory_size=1 << 18))
        self.model = LinkDeviceModel.over_transport(self.soc, bus_errors=(SocBusError,))
        self.opened = []

    def __call__(self, port, baud=None):
        self.opened.append(port)
        link = LinkTransport(LoopbackPort(self.model, clock=self.soc.wait_cycles),
                             progress=False)
        return Device(link)

    def writes(self):
        """Write requests the device executed."""
        return [e for e in self.model.executed if e[1] in (2, 4)]


@pytest.fixture
def devices(monkeypatch):
    made = {}

    def install(**kw):
        made["d"] = d = _ModelDevices(**kw)
        monkeypatch.setattr("lpaccel.cli.serve.open_port", d)
        return d
    return install


def test_over_port_every_tensor_bit_exact(model_file, devices, capsys):
    d = devices()
    code, out, _ = _run(["--port", "fake", "run-gguf", str(model_file), "--json"], capsys)
    assert code == 0 and d.opened == ["fake"]
    _check_all_exact(json.loads(out))


def test_input_and_output(model_file, devices, tmp_path, capsys):
    devices()
    x = np.random.default_rng(5).normal(0, 2, 256).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    y_path = tmp_path / "y.npy"
    code, out, _ = _run(["--port", "fake", "run-gguf", str(model_file), "--tensor",
                         "blk.0.attn_k.weight", "--input", str(tmp_path / "x.npy"),
                         "--output", str(y_path)], capsys)
    assert code == 0, out
    assert "blk.0.attn_k.weight" in out and "run-gguf: PASS (1 of 1" in out
    y = np.load(y_path)
    assert y.dtype == np.float32 and y.shape == (64,)
    t = next(t for t in gguf.GGUFReader(model_file).tensors if t.name == "blk.0.attn_k.weight")
    from lpaccel.quant import QuantizedWeights
    w = QuantizedWeights.from_gguf(np.asarray(t.data), "q8_0", 64, 256)
    assert np.array_equal(y.view(np.uint32), gemv_golden(w, x).view(np.uint32))


def test_text_table(model_file, devices, capsys):
    devices()
    code, out, _ = _run(["--port", "fake", "run-gguf", str(model_file)], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[1].split()[:4] == ["tensor", "shape", "format", "cycles"]
    for name, kind in QUANTIZED:
        row = next(line for line in lines if line.strip().startswith(name))
        assert kind in row and "yes" in row
    assert "skipped output_norm.weight (256): type F32 is not supported (supported: Q4_0, " \
           "Q4_1, Q8_0)" in out


def test_tensor_larger_than_device_memory(tmp_path, devices, capsys):
    # 512 x 256 Q8_0 is 139,264 bytes of blocks; the device has 64 KiB.
    d = devices(soc=SocConfig(memory_size=1 << 16))
    path = write_gguf(tmp_path / "big.gguf", (("big.weight", "Q8_0"),), rows=512)
    code, _, err = _run(["--port", "fake", "run-gguf", str(path)], capsys)
    assert code == 2
    assert "tensor big.weight (512 x 256 Q8_0) needs" in err and "CAP_MEM_SIZE" in err
    assert "Traceback" not in err
    assert d.writes() == [] and d.soc.preloads == []


def test_tensor_too_large_is_skipped_by_default(tmp_path, devices, capsys):
    devices(soc=SocConfig(memory_size=1 << 16))
    path = write_gguf(tmp_path / "mixed.gguf", (*QUANTIZED, ("big.weight", "Q8_0", 512)),
                      f32=False)
    # Chosen by default: the others run, the big one is listed as skipped with its reason.
    code, out, _ = _run(["--port", "fake", "run-gguf", str(path), "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and [t["name"] for t in report["tensors"]] == [n for n, _ in QUANTIZED]
    (big,) = report["skipped"]
    assert big["name"] == "big.weight" and "CAP_MEM_SIZE" in big["reason"]
    # Named: an error.
    path = write_gguf(tmp_path / "big.gguf", (("big.weight", "Q8_0"),), rows=512)
    code, _, err = _run(["--port", "fake", "run-gguf", str(path), "--tensor", "big.weight"],
                        capsys)
    assert code == 2 and "needs" in err and "CAP_MEM_SIZE" in err


# --- bad input: refused before any device or simulator is used --------------------------------

@pytest.fixture
def no_device(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the device was used before the inputs were checked")
    monkeypatch.setattr("lpaccel.cli.serve.open_port", refuse)
    monkeypatch.setattr("lpaccel.cli.serve.run_in_process", refuse)


def _error(argv, capsys):
    code, out, err = _run(argv, capsys)
    assert code == 2, (out, err)
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("port", [[], ["--port", "fake"]])
def test_malformed_gguf(tmp_path, no_device, capsys, port):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    err = _error([*port, "run-gguf", str(bad)], capsys)
    assert f"{bad} is not a readable GGUF file" in err


def test_truncated_gguf(model_file, tmp_path, no_device, capsys):
    data = model_file.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[:len(data) // 2])
    err = _error(["run-gguf", str(cut)], capsys)
    assert "is not a readable GGUF file" in err and "truncated" in err


def test_missing_file(tmp_path, no_device, capsys):
    err = _error(["run-gguf", str(tmp_path / "none.gguf")], capsys)
    assert "no such file" in err


def test_unsupported_type_is_named_with_the_supported_ones(model_file, no_device, capsys):
    err = _error(["run-gguf", str(model_file), "--tensor", "token_embd.weight"], capsys)
    assert "tensor token_embd.weight: type F32 is not supported (supported: Q4_0, Q4_1, " \
           "Q8_0)" in err


def test_unknown_tensor(model_file, no_device, capsys):
    err = _error(["run-gguf", str(model_file), "--tensor", "blk.9.nothing"], capsys)
    assert "has no tensor blk.9.nothing" in err and "blk.0.attn_q.weight" in err


def test_too_many_rows_for_the_simulated_soc(tmp_path, no_device, capsys):
    # JOB_ROWS is 16 bits: 65,536 rows never run; refused before the simulator is started.
    path = write_gguf(tmp_path / "tall.gguf", (("tall.weight", "Q4_0"),), rows=65536, cols=32,
                      f32=False)
    err = _error(["run-gguf", str(path), "--tensor", "tall.weight"], capsys)
    assert "tensor tall.weight (65536 x 32 Q4_0): rows = 65536: must be from 1 to 65535" in err


def test_nothing_to_run(tmp_path, no_device, capsys):
    path = write_gguf(tmp_path / "f32.gguf", tensors=())
    err = _error(["run-gguf", str(path)], capsys)
    assert "no 2-D Q4_0/Q4_1/Q8_0 tensor to run" in err


@pytest.mark.parametrize("x, message", [
    (np.zeros(128, np.float32), "has 128 elements but tensor blk.0.attn_q.weight has 256 "
                                "columns"),
    (np.zeros(256, np.int32), "has dtype int32"),
    (np.zeros((2, 128), np.float32), "must be a 1-D vector"),
    (np.full(256, np.inf, np.float32), "must be finite"),
])
def test_bad_input_vector(model_file, tmp_path, no_device, capsys, x, message):
    np.save(tmp_path / "x.npy", x)
    err = _error(["run-gguf", str(model_file), "--input", str(tmp_path / "x.npy")], capsys)
    assert message in err


def test_input_not_npy(model_file, tmp_path, no_device, capsys):
    (tmp_path / "x.npy").write_text("1 2 3\n")
    err = _error(["run-gguf", str(model_file), "--input", str(tmp_path / "x.npy")], capsys)
    assert "is not a .npy array" in err


def test_output_needs_one_tensor(model_file, tmp_path, no_device, capsys):
    err = _error(["run-gguf", str(model_file), "--output", str(tmp_path / "y.npy")], capsys)
    assert "3 tensors are chosen; name one with --tensor" in err
