"""F16 and BCQ weights: fields, golden model and stream layout (``docs/arithmetic.md`` 7, 8).

The golden model is checked against an independent model written here with
Python ``Fraction``s of the dequantized weights (per block ``W`` is the exact
dot product times ``2**24``, one floor per block), against ``gguf``'s F16
decoder and against float64 math; the stream layout against hand-built beats.
"""

import math
from fractions import Fraction

import gguf
import gguf.quants
import numpy as np
import pytest

from lpaccel import quant, repack
from lpaccel.rtl.config import ACC_FRAC, WIDE_SH, GemvConfig, WeightFormat
from lpaccel.sim.golden import gemv as golden
from tests.sim.test_golden import ref_fraction_to_f32, ref_quantize_activations

F16, BCQ = WeightFormat.F16, WeightFormat.BCQ
LANES = (8, 16, 32, 64, 128)
CONFIGS = [(8, 64), (16, 64), (16, 512), (32, 128), (32, 64), (64, 256), (128, 512),
           (128, 64)]


# --- Independent reference ---------------------------------------------------------------

def ref_wide_gemv(exact, mant, exp):
    """Sections 7/8.1 from exact weights: ``floor(sum_i w_i m_i 2^24 * 2^(e + F - 24))``.

    ``exact[r][i]`` are Fractions. ``W`` must come out an integer (checked):
    that is the claim of the contract that the block sum is exact.
    """
    acc = []
    for row in exact:
        a = 0
        for b in range(len(exp)):
            w = sum(row[i] * int(mant[i]) for i in range(32 * b, 32 * b + 32)) * (1 << WIDE_SH)
            assert w.denominator == 1
            a += math.floor(w * Fraction(2) ** (int(exp[b]) + ACC_FRAC - WIDE_SH))
        acc.append(a)
    y = np.array([ref_fraction_to_f32(Fraction(a, 1 << ACC_FRAC)) for a in acc], np.float32)
    return acc, y


def f16_exact(bits):
    """Exact weights of raw float16 bits, through numpy's float16 (IEEE)."""
    return [[Fraction(float(v)) for v in row] for row in bits.view(np.float16)]


def bcq_exact(bits, alpha_bits, group, offset_bits=None):
    """Exact BCQ weights from the raw fields: ``sum_p alpha (2 b - 1) + o``."""
    planes, rows, cols = bits.shape
    alpha = alpha_bits.view(np.float16)
    out = []
    for r in range(rows):
        row = []
        for i in range(cols):
            g = i // group
            v = sum(Fraction(float(alpha[p, r, g])) * (2 * int(bits[p, r, i]) - 1)
                    for p in range(planes))
            if offset_bits is not None:
                v += Fraction(float(offset_bits.view(np.float16)[r, g]))
            row.append(v)
        out.append(row)
    return out


def random_halves(rng, shape, finite=True):
    """Random float16 bit patterns over the whole range (subnormals included)."""
    h = rng.integers(0, 1 << 16, size=shape).astype(np.uint16)
    if finite:
        h &= ~np.uint16(0x4000)                  # exponent field never 31
    return h


def random_bcq(rng, planes, rows, cols, group, offset):
    bits = rng.integers(0, 2, size=(planes, rows, cols)).astype(np.uint8)
    alpha = random_halves(rng, (planes, rows, cols // group))
    off = random_halves(rng, (rows, cols // group)) if offset else None
    return bits, alpha, off


def hard_activations(rng, cols):
    """Blocks of very different magnitudes: large, tiny (negative shifts), zero."""
    x = (rng.standard_normal(cols) * np.exp(rng.uniform(-14, 10, cols))).astype(np.float32)
    x = np.clip(x, -65000, 65000)
    if cols >= 64:
        x[32:64] = 0
    x[0] = 65504
    return x


# --- F16 -------------------------------------------------------------------------------

def test_f16_fields_and_gguf_decode():
    rng = np.random.default_rng(1)
    bits = random_halves(rng, (5, 96))
    bits[0, :6] = [0x0000, 0x8000, 0x0001, 0x83FF, 0x7BFF, 0xFBFF]
    w = quant.QuantizedWeights.from_f16(bits)
    assert w.fmt is F16 and w.group == 32 and w.planes == 0 and not w.offset
    assert w.f16_bits.dtype == np.uint16 and np.array_equal(w.f16_bits, bits)
    raw = w.to_gguf()
    assert raw.shape == (5, 192) and raw.tobytes() == bits.astype("<u2").tobytes()
    ref = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType.F16).reshape(5, 96)
    assert np.array_equal(w.dequantize().view(np.uint32), ref.astype(np.float32).view(np.uint32))
    assert np.array_equal(w.dequantize_f64(), ref.astype(np.float64))
    # From float16 values, and through the npz-style arrays.
    same = quant.QuantizedWeights.from_f16(bits.view(np.float16))
    assert np.array_equal(same.q, w.q)
    back = quant.QuantizedWeights.from_arrays(F16, 5, 96, 32, w.to_arrays())
    assert np.array_equal(back.f16_bits, bits)


def test_f16_quantize_rounds_from_float64():
    rng = np.random.default_rng(2)
    w = rng.normal(0, 3, (4, 64))
    w[0, 0] = 65504.0
    w[0, 1] = -1e-9                              # rounds to -0
    w[0, 2] = 1 + 2.0 ** -11                     # a tie: to even (1.0)
    w[0, 3] = 1 + 3 * 2.0 ** -11                 # a tie: to even (1 + 2**-9)
    qw = quant.quantize_weights(w, "f16")
    assert np.array_equal(qw.f16_bits, w.astype(np.float16).view(np.uint16))
    assert qw.f16_bits[0, 1] == 0x8000 and qw.f16_bits[0, 2] == 0x3C00
    assert qw.f16_bits[0, 3] == 0x3C02


@pytest.mark.parametrize("rows,cols,seed", [(3, 32, 0), (4, 96, 1), (2, 256, 2)])
def test_f16_gemv_matches_independent_model(rows, cols, seed):
    rng = np.random.default_rng(seed)
    bits = random_halves(rng, (rows, cols))
    bits[0] = 0x7BFF                             # every weight 65504
    bits[1, :32] = 0x0001                        # smallest subnormal
    w = quant.QuantizedWeights.from_f16(bits)
    x = hard_activations(rng, cols)
    mant, exp = ref_quantize_activations(x)
    ref_acc, ref_y = ref_wide_gemv(f16_exact(bits), mant, exp)
    acc, y = golden.gemv_golden_quantized(w, *quant.quantize_activations(x))
    assert acc == ref_acc and all(type(a) is int for a in acc)
    assert np.array_equal(y.view(np.uint32), ref_y.view(np.uint32))
    assert np.array_equal(golden.gemv_golden(w, x).view(np.uint32), y.view(np.uint32))


def test_f16_gemv_extreme_exponents():
    # Exponents beyond what quantize_activations produces: sh = e + 8 from -120
    # (floor to 0 or -1) up to large positive shifts (no clamp for wide terms).
    rng = np.random.default_rng(3)
    bits = random_halves(rng, (3, 192))
    w = quant.QuantizedWeights.from_f16(bits)
    mant = rng.integers(-32767, 32768, 192).astype(np.int16)
    exp = np.array([-128, -50, -40, -39, -8, 20], np.int8)     # sh = -120 .. 28
    acc, y = golden.gemv_golden_quantized(w, mant, exp)
    ref_acc, ref_y = ref_wide_gemv(f16_exact(bits), mant.tolist(), exp.tolist())
    assert acc == ref_acc
    assert np.array_equal(y.view(np.uint32), ref_y.view(np.uint32))


@pytest.mark.parametrize("rows,cols", [(64, 256), (256, 4096)])
def test_f16_error_vs_float64(rows, cols):
    rng = np.random.default_rng(rows + cols)
    qw = quant.quantize_weights(rng.normal(0, 0.02, (rows, cols)), "f16")
    x = rng.standard_normal(cols).astype(np.float32)
    err = golden.rel_rms_error(golden.gemv_golden(qw, x), golden.gemv_reference_f64(qw, x))
    print(f"F16 {rows}x{cols}: rel_rms_error = {err:.3e}")
    assert err < 1e-4


@pytest.mark.parametrize("lanes,word_bits", CONFIGS)
def test_f16_repack_round_trip_and_bytes(lanes, word_bits):
    config = GemvConfig(lanes=lanes, word_bits=word_bits)
    rng = np.random.default_rng(lanes * word_bits)
    for cols in (32, 96, 4096, 4128):
        w = quant.QuantizedWeights.from_f16(random_halves(rng, (3, cols)))
        lay = repack.stream_layout(F16, 3, cols, config)
        assert lay.beats == 3 * cols * 16 // config.beat_bits
        words = repack.repack_weights(w, config)
        assert words.shape == (lay.words, config.word_bytes)
        stream = words.reshape(-1)
        # 16 bits per weight: the stream is the float16 values, row after row.
        assert stream[:3 * cols * 2].tobytes() == w.f16_bits.astype("<u2").tobytes()
        assert not stream[3 * cols * 2:].any()
        assert lay.bytes == -(-3 * cols * 2 // config.word_bytes) * config.word_bytes
        for form in (words, words.tobytes(), repack.stream_words(w, config)):
            back = repack.unpack_weights(form, F16, 3, cols, config)
            assert np.array_equal(back.q, w.q)


def test_f16_errors():
    with pytest.raises(ValueError, match=r"weights\[1, 2\] = inf: F16 weights must be finite"):
        w = np.zeros((2, 32))
        w[1, 2] = np.inf
        quant.quantize_weights(w, "f16")
    with pytest.raises(ValueError, match=r"\|w\| <= 65504 .*rescale"):
        quant.quantize_weights(np.full((1, 32), 65520.0), "f16")
    with pytest.raises(ValueError, match=r"F16 weight bits\[0, 5\] = 0x7c00 is not finite"):
        b = np.zeros((1, 32), np.uint16)
        b[0, 5] = 0x7C00
        quant.QuantizedWeights.from_f16(b)
    assert quant.QuantizedWeights.from_f16(b, allow_nonfinite=True).f16_bits[0, 5] == 0x7C00
    with pytest.raises(ValueError, match="multiple of 32"):
        quant.QuantizedWeights.from_f16(np.zeros((1, 48), np.uint16))
    with pytest.raises(ValueError, match="fixed 32-element blocks"):
        quant.quantize_weights(np.zeros((1, 64)), "f16", group=64)
    with pytest.raises(ValueError, match="only BCQ"):
        quant.quantize_weights(np.zeros((1, 64)), "f16", planes=2)
    with pytest.raises(ValueError, match="no integer codes"):
        quant.QuantizedWeights.from_f16(np.zeros((1, 32), np.uint16)).values()
    with pytest.raises(ValueError, match="only BCQ streams"):
        repack.stream_layout(F16, 1, 32, GemvConfig(), planes=2)
