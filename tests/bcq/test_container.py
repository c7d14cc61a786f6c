"""The BCQ GGUF container: write_bcq_gguf / read_bcq_tensors round trip and every malformed case."""

import gguf
import numpy as np
import pytest

from lpaccel.bcq import quantize_bcq, read_bcq_tensors, write_bcq_gguf

NAME = "blk.0.attn_q.weight"


def _weights(planes=3, offset=True, rows=8, cols=256, group=64, seed=0):
    w = np.random.default_rng(seed).normal(0, 0.05, (rows, cols))
    return quantize_bcq(w, planes, group=group, offset=offset)


def _same(a, b):
    assert (a.planes, a.group, a.offset, a.rows, a.cols) == (b.planes, b.group, b.offset,
                                                             b.rows, b.cols)
    assert np.array_equal(a.plane_bits, b.plane_bits)
    assert np.array_equal(a.alpha_bits, b.alpha_bits)
    if a.offset:
        assert np.array_equal(a.offset_bits, b.offset_bits)
    assert np.array_equal(a.dequantize_f64(), b.dequantize_f64())


@pytest.mark.parametrize("planes, offset, group", [(1, False, 32), (2, True, 128),
                                                   (3, False, 64), (4, True, 32)])
def test_round_trip(tmp_path, planes, offset, group):
    qw = _weights(planes, offset, group=group)
    other = _weights(2, False, rows=4, cols=128, group=128, seed=3)
    path = write_bcq_gguf(tmp_path / "m.gguf", {NAME: qw, "output.weight": other},
                          extra={"output_norm.weight": np.ones(256, np.float32)})
    got = read_bcq_tensors(path)
    assert list(got) == sorted([NAME, "output.weight"])
    _same(got[NAME], qw)
    _same(got["output.weight"], other)
    assert read_bcq_tensors(gguf.GGUFReader(path)).keys() == got.keys()


def test_layout_byte_for_byte(tmp_path):
    # docs/bcq.md: I8 [q, R, K/8] little-endian bits, F16 [q, R, K/G], F16 [R, K/G], keys.
    qw = _weights(2, True, rows=3, cols=64, group=32)
    path = write_bcq_gguf(tmp_path / "m.gguf", {NAME: qw})
    r = gguf.GGUFReader(path)
    t = {t.name: t for t in r.tensors}
    planes = t[NAME + ".bcq_planes"]
    assert planes.tensor_type == gguf.GGMLQuantizationType.I8
    assert [int(d) for d in planes.shape] == [8, 3, 2]                  # GGUF ne, reversed
    raw = np.asarray(planes.data).view(np.uint8)
    col = 8 * 5 + 3                                                     # byte 5, bit 3
    assert (raw[1, 2, 5] >> 3) & 1 == qw.plane_bits[1, 2, col]
    alpha = t[NAME + ".bcq_alpha"]
    assert alpha.tensor_type == gguf.GGMLQuantizationType.F16
    assert np.array_equal(np.asarray(alpha.data).view(np.uint16), qw.alpha_bits)
    assert np.array_equal(np.asarray(t[NAME + ".bcq_offset"].data).view(np.uint16),
                          qw.offset_bits)
    assert r.fields["lpaccel.bcq.version"].contents() == 1
    assert r.fields[f"lpaccel.bcq.{NAME}.planes"].contents() == 2
    assert r.fields[f"lpaccel.bcq.{NAME}.group"].contents() == 32
    assert r.fields[f"lpaccel.bcq.{NAME}.offset"].contents() is True


def test_no_bcq_tensors(tmp_path):
    w = gguf.GGUFWriter(str(tmp_path / "f.gguf"), "llama")
    w.add_tensor("a", np.ones((4, 32), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert read_bcq_tensors(tmp_path / "f.gguf") == {}


def test_writer_refuses_other_formats(tmp_path):
    from lpaccel.quant import quantize_weights
    q4 = quantize_weights(np.zeros((4, 32), np.float32), "q4_0")
    with pytest.raises(ValueError, match="tensor a is .*Q4_0.*not BCQ"):
        write_bcq_gguf(tmp_path / "m.gguf", {"a": q4})
    with pytest.raises(ValueError, match="extra tensor a.bcq_alpha has the name of a BCQ part"):
        write_bcq_gguf(tmp_path / "m.gguf", {"a": _weights()},
                       extra={"a.bcq_alpha": np.ones(4, np.float32)})


# --- malformed files: every piece altered or missing ----------------------------------

def _parts(qw=None):
    qw = qw or _weights(2, True)
    keys = {"lpaccel.bcq.version": ("u32", 1), f"lpaccel.bcq.{NAME}.planes": ("u32", 2),
            f"lpaccel.bcq.{NAME}.group": ("u32", 64), f"lpaccel.bcq.{NAME}.offset": ("bool", True)}
    tensors = {NAME + ".bcq_planes":
               np.packbits(qw.plane_bits, axis=-1, bitorder="little").view(np.int8),
               NAME + ".bcq_alpha": qw.alpha_bits.view(np.float16),
               NAME + ".bcq_offset": qw.offset_bits.view(np.float16)}
    return keys, tensors


def _write(path, keys, tensors):
    w = gguf.GGUFWriter(str(path), "llama")
    for key, (kind, value) in keys.items():
        {"u32": w.add_uint32, "bool": w.add_bool, "str": w.add_string,
         "i32": w.add_int32}[kind](key, value)
    for name, a in tensors.items():
        w.add_tensor(name, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_parts_helper_is_valid(tmp_path):
    keys, tensors = _parts()
    assert list(read_bcq_tensors(_write(tmp_path / "m.gguf", keys, tensors))) == [NAME]


def _drop(d, key):
    return {k: v for k, v in d.items() if k != key}


P, A, O = NAME + ".bcq_planes", NAME + ".bcq_alpha", NAME + ".bcq_offset"
K = f"lpaccel.bcq.{NAME}."


@pytest.mark.parametrize("alter, message", [
    (lambda k, t: (_drop(k, "lpaccel.bcq.version"), t),
     "has BCQ tensors (blk.0.attn_q.weight) but no lpaccel.bcq.version key"),
    (lambda k, t: ({**k, "lpaccel.bcq.version": ("u32", 2)}, t),
     "lpaccel.bcq.version = 2, but this lpaccel reads version 1"),
    (lambda k, t: (_drop(k, K + "planes"), t),
     f"BCQ tensor {NAME} has no key {K}planes"),
    (lambda k, t: (_drop(k, K + "group"), t), f"has no key {K}group"),
    (lambda k, t: (_drop(k, K + "offset"), t), f"has no key {K}offset"),
    (lambda k, t: ({**k, K + "planes": ("u32", 5)}, t), f"{K}planes = 5 is not one of 1, 2, 3, 4"),
    (lambda k, t: ({**k, K + "planes": ("u32", 0)}, t), f"{K}planes = 0 is not one of"),
    (lambda k, t: ({**k, K + "planes": ("u32", 3)}, t),
     f"tensor {P} has shape [2, 8, 32] but BCQ tensor {NAME} ({K}planes = 3) needs I8 [3,"),
    (lambda k, t: ({**k, K + "planes": ("str", "2")}, t), f"{K}planes = '2' must be an integer"),
    (lambda k, t: ({**k, K + "group": ("u32", 48)}, t), f"{K}group = 48 is not one of 32, 64, 128"),
    (lambda k, t: ({**k, K + "group": ("u32", 128)}, t),
     f"tensor {A} is F16 [2, 8, 4] but BCQ tensor {NAME} needs F16 [2, 8, 2]"),
    (lambda k, t: ({**k, K + "offset": ("u32", 1)}, t), f"{K}offset = 1 must be a bool"),
    (lambda k, t: ({**k, K + "offset": ("bool", False)}, t),
     f"tensor {O} exists but {K}offset is false"),
    (lambda k, t: (k, _drop(t, P)), f"BCQ tensor {NAME} has no tensor {P}"),
    (lambda k, t: (k, _drop(t, A)), f"BCQ tensor {NAME} has no tensor {A}"),
    (lambda k, t: (k, _drop(t, O)), f"BCQ tensor {NAME} has no tensor {O}"),
    (lambda k, t: (k, {**t, P: t[P].view(np.uint8).astype(np.int16)}),
     f"tensor {P} is I16 [2, 8, 32] but BCQ tensor {NAME} needs I8 [2, 8, 32]"),
    (lambda k, t: (k, {**t, P: t[P][:, :7]}),
     f"tensor {A} is F16 [2, 8, 4] but BCQ tensor {NAME} needs F16 [2, 7, 4]"),
    (lambda k, t: (k, {**t, A: t[A].astype(np.float32)}),
     f"tensor {A} is F32 [2, 8, 4] but BCQ tensor {NAME} needs F16 [2, 8, 4]"),
    (lambda k, t: (k, {**t, A: t[A][:1]}), f"tensor {A} is F16 [1, 8, 4] but"),
    (lambda k, t: (k, {**t, O: t[O][:, :3]}),
     f"tensor {O} is F16 [8, 3] but BCQ tensor {NAME} needs F16 [8, 4]"),
    (lambda k, t: (_drop(_drop(_drop(k, K + "planes"), K + "group"), K + "offset"),
                   _drop(_drop(t, P), A)),
     f"has no key {K}planes"),                    # a stray offset tensor still names NAME
])
def test_malformed(tmp_path, alter, message):
    keys, tensors = alter(*_parts())
    path = _write(tmp_path / "bad.gguf", keys, tensors)
    with pytest.raises(ValueError) as info:
        read_bcq_tensors(path)
    assert message in str(info.value)
    assert "write_bcq_gguf" in str(info.value) or "quantize-bcq" in str(info.value)


def test_non_finite_scale_is_named(tmp_path):
    keys, tensors = _parts()
    alpha = tensors[A].copy()
    alpha[1, 3, 2] = np.inf
    path = _write(tmp_path / "bad.gguf", keys, {**tensors, A: alpha})
    with pytest.raises(ValueError, match=f"BCQ tensor {NAME}: "):
        read_bcq_tensors(path)


def test_truncated_file(tmp_path):
    path = write_bcq_gguf(tmp_path / "m.gguf", {NAME: _weights()})
    data = path.read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="is not a readable GGUF file.*truncated"):
        read_bcq_tensors(tmp_path / "cut.gguf")
    with pytest.raises(ValueError, match="no such file"):
        read_bcq_tensors(tmp_path / "none.gguf")
