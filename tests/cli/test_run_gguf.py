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
           "Q4_1, Q8_0, F16, BCQ)" in out


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
           "Q8_0, F16, BCQ)" in err


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
    assert "no 2-D Q4_0/Q4_1/Q8_0/F16/BCQ tensor to run" in err


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


# --- F16 and BCQ tensors (issue 14) ----------------------------------------------------------


MIXED = (("blk.0.attn_q.weight", "BCQ", 3, True), ("blk.0.attn_k.weight", "F16"),
         ("blk.0.attn_v.weight", "Q4_0"), ("blk.0.ffn_up.weight", "BCQ", 2, False))


def write_mixed(path, tensors=MIXED, rows=64, cols=256, seed=2, group=128):
    """A GGUF file with BCQ tensors (lpaccel.bcq's container), F16 and Q4_0 matrices and an
    F32 norm."""
    from lpaccel.bcq import quantize_bcq, write_bcq_gguf
    rng = np.random.default_rng(seed)
    bcq, extra = {}, {}
    for name, kind, *spec in tensors:
        w = rng.normal(0, 0.02, (rows, cols)).astype(np.float32)
        if kind == "BCQ":
            bcq[name] = quantize_bcq(w, spec[0], group=group, offset=spec[1])
        elif kind == "F16":
            extra[name] = w.astype(np.float16)
        else:
            qtype = gguf.GGMLQuantizationType[kind]
            extra[name] = (gguf.quants.quantize(w, qtype), qtype)
    extra["output_norm.weight"] = rng.normal(0, 1, cols).astype(np.float32)
    write_bcq_gguf(path, bcq, extra=extra, arch="llama")
    return path


@pytest.fixture
def mixed_file(tmp_path):
    return write_mixed(tmp_path / "mixed.gguf")


def test_lists_bcq_and_f16_tensors(mixed_file):
    from lpaccel.cli.gguf import read_gguf, select_tensors
    from lpaccel.rtl.config import WeightFormat
    chosen, skipped = select_tensors(read_gguf(mixed_file), None, str(mixed_file))
    # BCQ tensors take the place of their parts, in file order (write_bcq_gguf puts them
    # first); the parts are neither chosen nor skipped.
    assert [(t.name, t.label) for t in chosen] == [
        ("blk.0.attn_q.weight", "BCQ3 g128 +off"), ("blk.0.ffn_up.weight", "BCQ2 g128"),
        ("blk.0.attn_k.weight", "F16"), ("blk.0.attn_v.weight", "Q4_0")]
    assert [s["name"] for s in skipped] == ["output_norm.weight"]
    q, up, k, _ = chosen
    assert q.fmt is WeightFormat.BCQ and (q.planes, q.group, q.offset) == (3, 128, True)
    assert (q.rows, q.cols) == (64, 256) and q.weights().planes == 3
    assert (up.planes, up.offset) == (2, False)
    assert k.fmt is WeightFormat.F16 and k.planes == 0
    # The float64 references are the exact weights.
    x = np.random.default_rng(0).normal(0, 1, 256)
    want = gguf.GGUFReader(mixed_file).tensors
    f16 = next(t for t in want if t.name == "blk.0.attn_k.weight")
    assert np.array_equal(k.reference(x), np.asarray(f16.data, np.float64) @ x)
    assert np.allclose(q.reference(x), q.weights().dequantize_f64() @ x, rtol=0, atol=0)


def test_bcq_tensor_by_name(mixed_file, no_device):
    from lpaccel.cli.gguf import read_gguf, select_tensors
    (t,), skipped = select_tensors(read_gguf(mixed_file), ["blk.0.ffn_up.weight"], "m")
    assert t.label == "BCQ2 g128" and skipped == []
    with pytest.raises(ValueError, match="has no tensor blk.0.ffn_up.weight.bcq_planes"):
        select_tensors(read_gguf(mixed_file), ["blk.0.ffn_up.weight.bcq_planes"], "m")


def test_bcq_stream_layout_and_memory(mixed_file):
    from lpaccel.cli.gguf import memory_needed, read_gguf, select_tensors
    chosen, _ = select_tensors(read_gguf(mixed_file), None, "m")
    config = GemvConfig(lanes=32, max_cols=1024)
    q = chosen[0]
    layout = q.layout(config)
    # 2 chunks of 128 columns per row (spb = 8 slots, C = 1024 > 256: one short chunk):
    # q scale beats + 1 offset beat + 2 tiles x q plane beats, per row.
    assert layout.beats == 64 * (3 + 1 + 2 * 3)
    assert memory_needed(q, config) >= layout.bytes
    assert q.check_job(config) is not None


def test_malformed_bcq_container_is_refused(tmp_path, no_device, capsys):
    from lpaccel.bcq import quantize_bcq, write_bcq_gguf
    good = write_bcq_gguf(tmp_path / "good.gguf",
                          {"w": quantize_bcq(np.ones((4, 128)), 1, group=128)})
    r = gguf.GGUFReader(good)
    w = gguf.GGUFWriter(str(tmp_path / "bad.gguf"), "llama")
    w.add_uint32("lpaccel.bcq.version", 1)
    w.add_uint32("lpaccel.bcq.w.planes", 1)
    w.add_uint32("lpaccel.bcq.w.group", 128)
    w.add_bool("lpaccel.bcq.w.offset", False)
    planes = next(t for t in r.tensors if t.name == "w.bcq_planes")
    w.add_tensor("w.bcq_planes", np.asarray(planes.data))       # no w.bcq_alpha
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    err = _error(["run-gguf", str(tmp_path / "bad.gguf")], capsys)
    assert f"{tmp_path / 'bad.gguf'}: BCQ tensor w has no tensor w.bcq_alpha" in err


def test_non_finite_f16_tensor(tmp_path, no_device, capsys):
    from lpaccel.bcq import write_bcq_gguf
    w = np.zeros((4, 64), np.float16)
    w[2, 5] = np.inf
    path = write_bcq_gguf(tmp_path / "inf.gguf", {}, extra={
        "inf.weight": w, "ok.weight": np.ones((4, 64), np.float16)})
    from lpaccel.cli.gguf import read_gguf, select_tensors
    chosen, skipped = select_tensors(read_gguf(path), None, "m")
    assert [t.name for t in chosen] == ["ok.weight"]
    assert skipped[0]["name"] == "inf.weight" and "finite" in skipped[0]["reason"]
    err = _error(["run-gguf", str(path), "--tensor", "inf.weight"], capsys)
    assert "tensor inf.weight: F16 weight bits[2, 5] = 0x7c00 is not finite" in err


def test_report_row_of_a_bcq_tensor(mixed_file):
    from lpaccel.cli.gguf import read_gguf, report_text, select_tensors, tensor_report
    chosen, _ = select_tensors(read_gguf(mixed_file), None, "m")
    q = chosen[0]
    x = np.random.default_rng(3).normal(0, 1, 256).astype(np.float32)
    bits = gemv_golden(q.weights(), x).view(np.uint32)
    row = tensor_report(q, x, bits, {"busy_cycles": 100, "weight_bytes": 1600}, 64)
    assert (row["format"], row["planes"], row["group"], row["offset"]) == ("bcq", 3, 128, True)
    assert row["bit_exact"] and row["rel_error_vs_gguf_f64"] < 1e-3
    text = report_text({"file": "m", "where": "here", "tensors": [row], "skipped": [],
                        "ok": True})
    assert "BCQ3 g128 +off" in text


def test_bcq_and_f16_run_over_port(mixed_file, devices, capsys):
    # The SoC test double computes with the golden model (the RTL run is below).
    devices()
    code, out, err = _run(["--port", "fake", "run-gguf", str(mixed_file), "--json"], capsys)
    if code == 2 and "planes = None" in err:
        # Runs by itself once the driver passes BCQ's planes/offset (issue 14, H1).
        pytest.skip("the driver does not pass BCQ planes to check_job yet")
    report = json.loads(out)
    assert code == 0 and report["ok"] is True
    assert [t["format"] for t in report["tensors"]] == ["bcq", "bcq", "f16", "q4_0"]
    for t in report["tensors"]:
        assert t["bit_exact"] and t["rel_error_vs_gguf_f64"] < 1e-3


@pytest.mark.slow      # a SoC build of its own: about 3 minutes
def test_bcq_and_f16_run_in_process(mixed_file, capsys):
    code, out, _ = _run(["run-gguf", str(mixed_file), "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["ok"] is True
    assert [t["format"] for t in report["tensors"]] == ["bcq", "bcq", "f16", "q4_0"]
    for t in report["tensors"]:
        assert t["bit_exact"] and t["rel_error_vs_gguf_f64"] < 1e-3
        assert t["cycles"] > 0


# --- lpaccel quantize-bcq ------------------------------------------------------------------

def write_safetensors(path, tensors):
    """A safetensors file by hand: 8-byte header length, JSON header, raw data."""
    header, blobs, at = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        kind = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<i8"): "I64"}[a.dtype]
        header[name] = {"dtype": kind, "shape": list(a.shape),
                        "data_offsets": [at, at + a.nbytes]}
        blobs.append(a.tobytes())
        at += a.nbytes
    head = json.dumps(header).encode()
    path.write_bytes(len(head).to_bytes(8, "little") + head + b"".join(blobs))
    return path


@pytest.mark.parametrize("source", ["safetensors", "gguf"])
def test_quantize_bcq_then_list(tmp_path, capsys, source):
    from lpaccel.bcq import quantize_bcq, read_bcq_tensors
    rng = np.random.default_rng(4)
    ws = {"l0.q.weight": rng.normal(0, 0.05, (64, 128)).astype(np.float32),
          "l0.up.weight": rng.normal(0, 0.05, (96, 256)).astype(np.float16),
          "l0.norm.weight": np.ones(128, np.float32),
          "odd.weight": rng.normal(0, 1, (8, 96)).astype(np.float32)}
    if source == "safetensors":
        src = write_safetensors(tmp_path / "m.safetensors", ws)
    else:
        from lpaccel.bcq import write_bcq_gguf
        src = write_bcq_gguf(tmp_path / "m.gguf", {}, extra=ws)
    out = tmp_path / "bcq.gguf"
    code, text, _ = _run(["quantize-bcq", str(src), str(out), "--planes", "3", "--offset",
                          "--keep-others", "--json"], capsys)
    assert code == 0
    report = json.loads(text)
    assert [r["name"] for r in report["tensors"]] == ["l0.q.weight", "l0.up.weight"]
    assert report["bits_per_weight"] == 3.5 and sorted(report["copied"]) == [
        "l0.norm.weight", "odd.weight"]
    got = read_bcq_tensors(out)
    want = quantize_bcq(ws["l0.q.weight"], 3, group=128, offset=True)
    assert np.array_equal(got["l0.q.weight"].plane_bits, want.plane_bits)
    assert got["l0.up.weight"].planes == 3 and got["l0.up.weight"].offset
    # run-gguf lists them as BCQ; the copied F32 tensors are skipped.
    from lpaccel.cli.gguf import read_gguf, select_tensors
    chosen, skipped = select_tensors(read_gguf(out), None, str(out))
    assert [t.label for t in chosen] == ["BCQ3 g128 +off"] * 2
    assert {s["name"] for s in skipped} == {"l0.norm.weight", "odd.weight"}


def test_quantize_bcq_text_and_choice(tmp_path, capsys):
    ws = {"a": np.ones((4, 64), np.float32), "b": np.ones((4, 128), np.float32)}
    src = write_safetensors(tmp_path / "m.safetensors", ws)
    code, text, _ = _run(["quantize-bcq", str(src), str(tmp_path / "o.gguf"), "--planes", "1",
                          "--group", "64", "--tensor", "b"], capsys)
    assert code == 0 and "BCQ1 g64, 1.25 bits per weight" in text
    assert "left out: 1 tensors" in text


@pytest.mark.parametrize("argv, message", [
    (["--planes", "5"], "planes = 5: BCQ has 1 to 4 binary planes"),
    (["--planes", "2", "--group", "48"], "group = 48: BCQ needs a group size of 32, 64, 128"),
    (["--planes", "2", "--tensor", "nope"], "no tensor nope in the input"),
    (["--planes", "2", "--tensor", "norm"], "tensor norm is float32 [128]: quantize-bcq takes "
                                            "2-D float matrices"),
])
def test_quantize_bcq_errors(tmp_path, capsys, argv, message):
    src = write_safetensors(tmp_path / "m.safetensors",
                            {"w": np.ones((4, 128), np.float32), "norm": np.ones(128, np.float32)})
    err = _error(["quantize-bcq", str(src), str(tmp_path / "o.gguf"), *argv], capsys)
    assert message in err


def test_quantize_bcq_bad_files(tmp_path, capsys):
    err = _error(["quantize-bcq", str(tmp_path / "none.safetensors"), str(tmp_path / "o.gguf"),
                  "--planes", "2"], capsys)
    assert "no such file" in err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes((1000).to_bytes(8, "little") + b"{")
    err = _error(["quantize-bcq", str(bad), str(tmp_path / "o.gguf"), "--planes", "2"], capsys)
    assert "is not a readable safetensors file" in err
    src = write_safetensors(tmp_path / "m.safetensors", {"w": np.ones((4, 128), np.float32)})
    err = _error(["quantize-bcq", str(src), str(tmp_path / "no" / "o.gguf"), "--planes", "2"],
                 capsys)
    assert "does not exist" in err
