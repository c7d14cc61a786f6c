"""Golden model and weight repacking against ``docs/arithmetic.md``.

The golden model is checked against independent implementations written
here with Python ``int``/``Fraction`` (and against ``gguf.quants`` for the
weight format), never against itself.
"""

import math
import random
from fractions import Fraction

import gguf
import gguf.quants
import numpy as np
import pytest

from lpaccel import quant, repack
from lpaccel.rtl.config import ACC_FRAC, GemvConfig, WeightFormat
from lpaccel.sim.golden import gemv as golden

GGUF_FORMATS = [WeightFormat.Q4_0, WeightFormat.Q4_1, WeightFormat.Q8_0]
GGML = {WeightFormat.Q4_0: gguf.GGMLQuantizationType.Q4_0,
        WeightFormat.Q4_1: gguf.GGMLQuantizationType.Q4_1,
        WeightFormat.Q8_0: gguf.GGMLQuantizationType.Q8_0}
#: Every format with the groups exercised here.
ALL = [(WeightFormat.Q4_0, None), (WeightFormat.Q4_1, None), (WeightFormat.Q8_0, None),
       (WeightFormat.INT4, 32), (WeightFormat.INT4, 128), (WeightFormat.INT8, 64),
       (WeightFormat.INT8, 128)]


# --- Independent reference implementations ---------------------------------------------

def ref_fraction_to_f32(v):
    """Nearest float32 (ties to even) of an exact rational, for normal results."""
    v = Fraction(v)
    if v == 0:
        return np.float32(0.0)
    sign, mag = (-1, -v) if v < 0 else (1, v)
    k = mag.numerator.bit_length() - mag.denominator.bit_length()
    if Fraction(2) ** k > mag:
        k -= 1
    assert Fraction(2) ** k <= mag < Fraction(2) ** (k + 1)
    ulp = Fraction(2) ** (k - 23)
    n = round(mag / ulp)                      # Fraction.__round__: half to even
    return np.float32(sign * float(n * ulp))  # n <= 2**24: exact


def ref_quantize_activations(x):
    """Section 1 with Python floats and Fractions, one element at a time."""
    mant, exp = [], []
    for b in range(len(x) // 32):
        blk = [Fraction(float(v)) for v in x[32 * b:32 * b + 32]]
        amax = max(abs(v) for v in blk)
        if amax == 0:
            exp.append(-128)
            mant += [0] * 32
            continue
        _, big_e = math.frexp(float(amax))
        e = max(big_e - 15, -128)
        exp.append(e)
        mant += [max(-32767, min(32767, round(v / Fraction(2) ** e))) for v in blk]
    return mant, exp


def ref_gemv(w, mant, exp):
    """Sections 3-4 with Fractions, from an independent decoding of ``w``.

    Per block: ``floor(sum_i (d (q_i - z)) m_i * 2**(e + F))``, plus for
    Q4_1 ``floor(m_blk * sum_i m_i * 2**(e + F))``. The exact scaled weights
    come from :func:`exact_weights`, not from the golden model.
    """
    scaled, mins = exact_weights(w)
    acc = []
    for r in range(w.rows):
        a = 0
        for b in range(len(exp)):
            k = Fraction(2) ** (int(exp[b]) + ACC_FRAC)
            idx = range(32 * b, 32 * b + 32)
            a += math.floor(sum(scaled[r][i] * int(mant[i]) for i in idx) * k)
            if mins is not None:
                a += math.floor(mins[r][b] * sum(int(mant[i]) for i in idx) * k)
        acc.append(a)
    y = np.array([ref_fraction_to_f32(Fraction(a, 1 << ACC_FRAC)) for a in acc],
                 dtype=np.float32)
    return acc, y


def exact_weights(w):
    """Exact ``d * (q - z)`` per element and Q4_1's exact block minimums.

    GGUF formats go through gguf's own dequantizer on the GGUF bytes (exact:
    at most 19 significant bits), with Q4_1's minimum zeroed first so that
    only ``d * q`` is left; the minimum is read as float16 from the bytes.
    INT formats: ``Fraction(float16 s) * (q - z)`` from the stored fields.
    """
    if w.fmt.is_gguf:
        raw = w.to_gguf().copy()
        mins = None
        if w.fmt == WeightFormat.Q4_1:
            blocks = raw.reshape(w.rows, -1, 20)
            mins = [[Fraction(float(v)) for v in row]
                    for row in blocks[..., 2:4].copy().view(np.float16)[..., 0]]
            blocks[..., 2:4] = 0
        deq = gguf.quants.dequantize(raw, GGML[w.fmt]).reshape(w.rows, w.cols)
        return [[Fraction(float(v)) for v in row] for row in deq], mins
    s = w.scale_bits.view(np.float16)
    return [[Fraction(float(s[r, c // w.group])) * (int(w.q[r, c]) - int(w.zero[r, c // w.group]))
             for c in range(w.cols)] for r in range(w.rows)], None


def random_weights(rng, fmt, rows, cols, group=None, scale_bits=None):
    """Random codes, zero points, minimums and finite (or given) float16 scales."""
    group = group or 32
    ng = cols // group
    if scale_bits is None:
        scale_bits = rng.integers(0, 1 << 16, size=(rows, ng)).astype(np.uint16)
        scale_bits &= ~np.uint16(0x4000)          # exponent field never 31
    scale_bits = np.broadcast_to(np.asarray(scale_bits, dtype=np.uint16), (rows, ng)).copy()
    lo, hi = (-128, 127) if fmt == WeightFormat.Q8_0 else (0, (1 << fmt.qbits) - 1)
    q = rng.integers(lo, hi + 1, size=(rows, cols))
    zero = {WeightFormat.Q4_0: np.full((rows, ng), 8), WeightFormat.Q8_0: np.zeros((rows, ng)),
            WeightFormat.Q4_1: np.zeros((rows, ng))}.get(fmt)
    if zero is None:
        zero = rng.integers(0, hi + 1, size=(rows, ng))
    mins = np.zeros((rows, cols // 32), np.uint16)
    if fmt == WeightFormat.Q4_1:
        mins = rng.integers(0, 1 << 16, size=(rows, cols // 32)).astype(np.uint16)
        mins &= ~np.uint16(0x4000)
    return quant.QuantizedWeights(fmt, rows, cols, group, q, scale_bits, zero.astype(np.int16),
                                   mins)


# --- Weights: decode and dequantize -----------------------------------------------------

@pytest.mark.parametrize("fmt", GGUF_FORMATS)
@pytest.mark.parametrize("rows,cols,seed", [(2, 32, 0), (3, 64, 1), (17, 96, 2),
                                            (8, 1024, 3), (5, 4128, 4)])
def test_quantize_and_dequantize_match_gguf(fmt, rows, cols, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.02, size=(rows, cols)).astype(np.float32)
    w[0] = 0.0                                           # an all-zero row
    w[-1, :32] = np.float32(8e4 if fmt == WeightFormat.Q8_0 else 5e4)  # huge block
    w[-1, 32:64] = np.float32(-3e-7)                     # subnormal scale
    qw = quant.quantize_weights(w, fmt)
    raw = qw.to_gguf()
    assert raw.dtype == np.uint8 and raw.shape == (rows, cols // 32 * fmt.block_bytes)
    assert np.array_equal(raw, gguf.quants.quantize(w, GGML[fmt]))
    ours = qw.dequantize()
    theirs = gguf.quants.dequantize(raw, GGML[fmt])
    assert ours.dtype == np.float32
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))
    assert not ours[0].any()


@pytest.mark.parametrize("fmt", GGUF_FORMATS)
@pytest.mark.parametrize("seed", range(3))
def test_decode_random_bytes_matches_gguf(fmt, seed):
    # Random bytes cover every nibble/int8 pattern and every finite scale class.
    rng = np.random.default_rng(100 + seed)
    rows, cols = 7, 32 * 9
    raw = rng.integers(0, 256, size=(rows, cols // 32 * fmt.block_bytes), dtype=np.uint8)
    raw.reshape(rows, -1, fmt.block_bytes)[..., 1] &= 0xBF        # no inf/NaN scales
    if fmt == WeightFormat.Q4_1:
        raw.reshape(rows, -1, fmt.block_bytes)[..., 3] &= 0xBF
    qw = quant.QuantizedWeights.from_gguf(raw.tobytes(), fmt.name.lower(), rows, cols)
    theirs = gguf.quants.dequantize(raw, GGML[fmt])
    assert np.array_equal(qw.dequantize().view(np.uint32), theirs.view(np.uint32))
    assert np.array_equal(qw.to_gguf(), raw)
    v = qw.values()
    lo, hi = {WeightFormat.Q4_0: (-8, 7), WeightFormat.Q4_1: (0, 15)}.get(fmt, (-128, 127))
    assert v.min() >= lo and v.max() <= hi


def test_decode_q4_0_nibble_order():
    # Byte j: element j in the low nibble, element j + 16 in the high nibble.
    blk = bytes([0x00, 0x3C]) + bytes((j & 0xF) | ((15 - j) << 4) for j in range(16))
    qw = quant.QuantizedWeights.from_gguf(blk, "q4_0", 1, 32)
    assert qw.scale_bits.tolist() == [[0x3C00]]
    assert qw.values()[0].tolist() == [j - 8 for j in range(16)] + [7 - j for j in range(16)]
    blk1 = bytes([0x00, 0x3C, 0x00, 0xBC]) + blk[2:]
    q1 = quant.QuantizedWeights.from_gguf(blk1, "q4_1", 1, 32)
    assert q1.min_bits.tolist() == [[0xBC00]] and q1.values()[0, 17] == 14


@pytest.mark.parametrize("fmt", [WeightFormat.INT4, WeightFormat.INT8])
@pytest.mark.parametrize("group", [32, 64, 128])
def test_int_quantizer(fmt, group):
    rng = np.random.default_rng(group)
    w = rng.normal(0, 0.02, size=(5, 256)).astype(np.float32)
    w[0] = 0.0
    w[1] = np.abs(w[1])                       # all positive: z = 0
    qw = quant.quantize_weights(w, fmt, group)
    qmax = (1 << fmt.qbits) - 1
    assert qw.q.min() >= 0 and qw.q.max() <= qmax and qw.zero.max() <= qmax
    assert not qw.dequantize()[0].any() and not qw.zero[1].any()
    # Dequantization error is at most one step per element (half a step of
    # rounding, plus the clip when the rounded zero point shifts the range).
    s = np.repeat(qw.scale_bits.view(np.float16).astype(np.float64), group, axis=1)
    err = np.abs(qw.dequantize_f64() - w)
    assert np.all(err <= s * 1.001)
    assert np.median(err / s) < 0.3
    exact = exact_weights(qw)[0]
    assert np.array_equal(np.array(exact, dtype=np.float64), qw.dequantize_f64())


# --- Activations -----------------------------------------------------------------------

def test_activation_zero_block_and_max():
    x = np.zeros(64, dtype=np.float16)
    x[32], x[33], x[34] = 65504, 1, -65504
    mant, exp = quant.quantize_activations(x)
    assert mant.dtype == np.int16 and exp.dtype == np.int8
    assert exp.tolist() == [-128, 1]
    assert not mant[:32].any()
    # 65504 = 0.99951 * 2**16 -> e = 1; 1 / 2 = 0.5 rounds to even 0.
    assert mant[32:35].tolist() == [32752, 0, -32752]


def test_activation_subnormal_float16_and_float32():
    x = np.zeros(32, dtype=np.float16)
    x[5] = np.float16(2.0 ** -24)                  # smallest float16 subnormal
    mant, exp = quant.quantize_activations(x)
    assert exp.tolist() == [-38] and mant[5] == 16384
    x32 = np.zeros(96, dtype=np.float32)
    x32[0] = np.float32(2.0 ** -149)               # E = -148: e clamps to -128
    x32[32:34] = np.float32(2.0 ** -114), np.float32(2.0 ** -149)   # E - 15 = -128
    x32[64] = np.float32(2.0 ** -120)              # clamped e: mantissa below 16384
    mant, exp = quant.quantize_activations(x32)
    assert exp.tolist() == [-128, -128, -128]
    assert mant[[0, 32, 33, 64]].tolist() == [0, 16384, 0, 256]


def test_activation_ties_to_even():
    x = np.zeros(32, dtype=np.float16)
    x[0] = 1.0                                     # frexp: 0.5 * 2**1 -> e = -14
    units = [1, 3, 5, 7, -3, -5, 2]                # x = u * 2**-15 -> u / 2
    x[1:1 + len(units)] = [u * 2.0 ** -15 for u in units]
    mant, exp = quant.quantize_activations(x)
    assert exp.tolist() == [-14]
    assert mant[:1 + len(units)].tolist() == [16384, 0, 2, 2, 4, -2, -2, 1]


def test_activation_clamp_32767():
    x = np.zeros(32, dtype=np.float32)
    x[0] = np.float32(1 - 2.0 ** -17)              # * 2**15 = 32767.75 -> rint 32768
    x[1] = -x[0]
    x[2] = np.float32(0.75)                        # E = 0 -> 24576
    mant, exp = quant.quantize_activations(x)
    assert exp.tolist() == [-15]
    assert mant[:3].tolist() == [32767, -32767, 24576]


@pytest.mark.parametrize("seed", range(3))
def test_activation_matches_reference(seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(256) * np.exp(rng.uniform(-30, 10, 256))).astype(np.float32)
    x[64:96] = 0
    x[96:128] = rng.integers(-3, 4, 32) * 2.0 ** -20   # many exact ties
    mant, exp = quant.quantize_activations(x)
    ref_m, ref_e = ref_quantize_activations(x)
    assert mant.tolist() == ref_m and exp.tolist() == ref_e
    blocks = np.abs(mant.astype(np.int64).reshape(-1, 32)).max(axis=1)
    nonzero = np.abs(x.reshape(-1, 32)).max(axis=1) > 2.0 ** -100
    assert ((blocks[nonzero] >= 16384) & (blocks[nonzero] <= 32767)).all()
    back = quant.dequantize_activations(mant, exp)
    assert back.dtype == np.float64
    amax = np.repeat(np.abs(x.astype(np.float64)).reshape(-1, 32).max(axis=1), 32)
    assert (np.abs(back - x) <= amax * 2.0 ** -15).all()


@pytest.mark.parametrize("value,index", [(np.inf, 37), (-np.inf, 0), (np.nan, 40),
                                         (65536.0, 3), (-1e6, 63)])
def test_activation_rejects_bad_values(value, index):
    x = np.zeros(64, dtype=np.float32)
    x[index] = value
    with pytest.raises(ValueError, match=rf"activations\[{index}\] = .*finite and "
                                         rf"\|x\| < 65536; rescale"):
        quant.quantize_activations(x)


@pytest.mark.parametrize("x,match", [
    (np.zeros(33, np.float32), "33 elements.*multiple of 32"),
    (np.zeros(0, np.float16), "0 elements"),
    (np.zeros((2, 32), np.float32), "1-D"),
    (np.zeros(32, np.float64), "float16 or float32"),
])
def test_activation_rejects_bad_shapes(x, match):
    with pytest.raises(ValueError, match=match):
        quant.quantize_activations(x)


# --- Accumulator to float32 --------------------------------------------------------------

def test_acc_to_fp32_random_magnitudes():
    rnd = random.Random(7)
    values = [0, 1, -1, 2 ** 24 - 1, 2 ** 24 + 1, -(2 ** 94), 2 ** 95 - 1, -(2 ** 95)]
    for bits in range(1, 96):
        for _ in range(20):
            values.append(rnd.choice([-1, 1]) * rnd.getrandbits(bits))
        if bits > 25:
            s = bits - 24
            kept = rnd.getrandbits(23) | (1 << 23)
            for k in (kept, kept | 1, kept & ~1, (1 << 24) - 1):   # exact ties
                tie = (k << s) | (1 << (s - 1))
                if tie < 2 ** 95:
                    values += [tie, -tie, tie + 1, tie - 1]
    for a in values:
        got = golden.acc_to_fp32(a)
        assert isinstance(got, np.float32)
        ref = ref_fraction_to_f32(Fraction(a, 1 << ACC_FRAC))
        assert got.view(np.uint32) == ref.view(np.uint32), a
    vec = golden.acc_to_fp32(values)
    assert vec.dtype == np.float32 and len(vec) == len(values)
    assert not np.signbit(golden.acc_to_fp32(0))


def test_acc_to_fp32_is_not_double_rounded():
    # Through float64 this value becomes an exact float32 tie and rounds down.
    a = (1 << 60) + (1 << 36) + 1
    double_rounded = np.float32(float(a) * 2.0 ** -ACC_FRAC)
    exact = ref_fraction_to_f32(Fraction(a, 1 << ACC_FRAC))
    assert double_rounded != exact                   # the reference can tell them apart
    assert golden.acc_to_fp32(a) == exact


def test_acc_to_fp32_rejects_overflow():
    with pytest.raises(ValueError, match="96"):
        golden.acc_to_fp32(2 ** 95)


# --- GEMV -------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,group", ALL)
@pytest.mark.parametrize("rows,cols,seed", [(4, 128, 0), (3, 256, 1)])
def test_gemv_matches_independent_model(fmt, group, rows, cols, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.02, size=(rows, cols)).astype(np.float32)
    w[1] = 0
    qw = quant.quantize_weights(w, fmt, group)
    x = (rng.standard_normal(cols) * np.exp(rng.uniform(-12, 9, cols))).astype(np.float32)
    x[32:64] = 0
    x = np.clip(x, -65000, 65000)
    y = golden.gemv_golden(qw, x)
    mant, exp = ref_quantize_activations(x)
    ref_acc, ref_y = ref_gemv(qw, mant, exp)
    assert y.dtype == np.float32 and y.shape == (rows,)
    assert np.array_equal(y.view(np.uint32), ref_y.view(np.uint32))
    acc, y2 = golden.gemv_golden_quantized(qw, *quant.quantize_activations(x))
    assert acc == ref_acc and all(type(a) is int for a in acc)
    assert np.array_equal(y2.view(np.uint32), y.view(np.uint32))
    if fmt != WeightFormat.Q4_1 and fmt.is_gguf:
        assert acc[1] == 0 and not np.signbit(y[1])


@pytest.mark.parametrize("fmt,group", ALL)
def test_gemv_fp16_scale_edge_cases(fmt, group):
    # Zero, signed zero, subnormal, smallest normal, negative and max scales,
    # on random codes, zero points and (Q4_1) random minimums.
    scales = [0x0000, 0x8000, 0x0001, 0x03FF, 0x8001, 0x0400, 0xBC00, 0x7BFF, 0xFBFF,
              0x3C00]
    rows, cols = len(scales), 128
    rng = np.random.default_rng(5)
    qw = random_weights(rng, fmt, rows, cols, group, scale_bits=np.array(scales)[:, None])
    x = np.zeros(cols, dtype=np.float16)
    x[:32] = rng.standard_normal(32) * 1e3
    x[0] = 65504                                   # largest activation: e = 1
    x[32:64] = rng.standard_normal(32) * 1e-6     # tiny: negative shifts, floor
    x[64:96] = -rng.uniform(0, 1, 32)
    y = golden.gemv_golden(qw, x)
    mant, exp = ref_quantize_activations(x)
    ref_acc, ref_y = ref_gemv(qw, mant, exp)
    acc, _ = golden.gemv_golden_quantized(qw, *quant.quantize_activations(x))
    assert acc == ref_acc
    assert np.array_equal(y.view(np.uint32), ref_y.view(np.uint32))
    if fmt != WeightFormat.Q4_1:
        assert acc[0] == 0 and acc[1] == 0


def test_gemv_quantized_large_exponents():
    # Exponents beyond the contract's e <= 1 reach the hardware's shift clamp
    # sh <= 39. All scales are 1.0 (ed = -10), so sh = e + 22 and the clamp
    # acts exactly like e = min(e, 17) in the Fraction reference.
    rng = np.random.default_rng(9)
    rows, cols = 3, 64
    qw = random_weights(rng, WeightFormat.Q8_0, rows, cols, scale_bits=0x3C00)
    mant = rng.integers(-32767, 32768, cols).astype(np.int16)
    exp = np.array([20, -100], dtype=np.int8)       # sh = 42 (clamped to 39) and -78
    acc, y = golden.gemv_golden_quantized(qw, mant, exp)
    ref_acc, ref_y = ref_gemv(qw, mant.tolist(), [17, -100])
    assert acc == ref_acc
    assert np.array_equal(y.view(np.uint32), ref_y.view(np.uint32))
    # The clamp also keeps the largest exponent inside the 96-bit accumulator.
    acc127, _ = golden.gemv_golden_quantized(qw, mant, np.array([127, -100], np.int8))
    assert acc127 == acc


@pytest.mark.parametrize("fmt,group", ALL)
@pytest.mark.parametrize("rows,cols", [(64, 256), (256, 4096)])
def test_gemv_error_vs_float64(fmt, group, rows, cols):
    rng = np.random.default_rng(cols + rows)
    w = rng.normal(0, 0.02, size=(rows, cols)).astype(np.float32)
    qw = quant.quantize_weights(w, fmt, group)
    x = rng.standard_normal(cols).astype(np.float32)
    y = golden.gemv_golden(qw, x)
    y_ref = golden.gemv_reference_f64(qw, x)
    err = golden.rel_rms_error(y, y_ref)
    print(f"{fmt.name} {rows}x{cols}: rel_rms_error = {err:.3e}")
    assert err <= 1e-3                             # the contract
    assert err < 1e-4                              # what docs/arithmetic.md reports


def test_rel_rms_error():
    assert golden.rel_rms_error([3.0, 4.0], [3.0, 4.0]) == 0.0
    assert golden.rel_rms_error([3.0, 5.0], [3.0, 4.0]) == pytest.approx(0.2)
    assert golden.rel_rms_error([0.0], [0.0]) == 0.0
    assert golden.rel_rms_error([1.0], [0.0]) == math.inf


# --- Negative tests --------------------------------------------------------------------

def test_weight_errors():
    raw = np.zeros((2, 36), dtype=np.uint8)
    QW = quant.QuantizedWeights
    with pytest.raises(ValueError, match=r"shape \(2, 35\).*72 bytes"):
        QW.from_gguf(raw[:, :35], "q4_0", 2, 64)
    with pytest.raises(ValueError, match="72 bytes"):
        QW.from_gguf(raw.tobytes()[:-1], "q4_0", 2, 64)
    with pytest.raises(ValueError, match=r"shape \(1, 72\)"):
        QW.from_gguf(raw.reshape(1, 72), "q4_0", 2, 64)
    with pytest.raises(ValueError, match="68 bytes"):
        QW.from_gguf(raw, "q8_0", 2, 32)
    with pytest.raises(ValueError, match="dtype int16"):
        QW.from_gguf(raw.view(np.int16), "q4_0", 2, 64)
    with pytest.raises(ValueError, match="INT4 is not a GGUF block format"):
        QW.from_gguf(raw, "int4", 2, 64)
    with pytest.raises(ValueError, match=r"not supported \(supported: q4_0, q8_0, q4_1, "
                                         r"int4, int8, f16, bcq\)"):
        quant.quantize_weights(np.zeros((2, 64), np.float32), gguf.GGMLQuantizationType.Q4_K)
    with pytest.raises(ValueError, match="cols = 48.*multiple of 32"):
        QW.from_gguf(np.zeros(54, np.uint8), "q4_0", 2, 48)
    with pytest.raises(ValueError, match="cols = 96.*multiple of 64"):
        quant.quantize_weights(np.zeros((2, 96), np.float32), "int8", 64)
    with pytest.raises(ValueError, match="group = 16: INT4 needs a group size"):
        quant.quantize_weights(np.zeros((2, 96), np.float32), "int4", 16)
    with pytest.raises(ValueError, match="group = 64: Q4_0 has fixed 32-element blocks"):
        quant.quantize_weights(np.zeros((2, 128), np.float32), "q4_0", 64)
    with pytest.raises(ValueError, match="rows = 0"):
        QW.from_gguf(b"", "q8_0", 0, 32)
    with pytest.raises(ValueError, match=r"weights\[1, 3\] = nan.*finite"):
        w = np.zeros((2, 32), np.float32)
        w[1, 3] = np.nan
        quant.quantize_weights(w, "q4_0")
    with pytest.raises(ValueError, match="overflows float16"):
        quant.quantize_weights(np.full((1, 32), 1e6, np.float32), "q4_0")
    with pytest.raises(ValueError, match="overflows float16"):
        quant.quantize_weights(np.full((1, 32), 1e9, np.float32), "int8", 32)
    with pytest.raises(ValueError, match=r"INT4 zero points\[0, 0\] = 16"):
        QW(WeightFormat.INT4, 1, 32, 32, np.zeros((1, 32), int), np.zeros((1, 1), int),
           np.full((1, 1), 16), np.zeros((1, 1), int))
    with pytest.raises(ValueError, match=r"INT8 weight codes\[0, 0\] = -1"):
        QW(WeightFormat.INT8, 1, 32, 32, np.full((1, 32), -1), np.zeros((1, 1), int),
           np.zeros((1, 1), int), np.zeros((1, 1), int))
    with pytest.raises(ValueError, match="scale_bits has shape"):
        QW(WeightFormat.INT8, 1, 64, 32, np.zeros((1, 64), int), np.zeros((1, 1), int),
           np.zeros((1, 2), int), np.zeros((1, 2), int))
    # GGMLQuantizationType is accepted where it names a supported format.
    ok = quant.quantize_weights(np.ones((1, 32), np.float32), gguf.GGMLQuantizationType.Q8_0)
    assert ok.to_gguf().shape == (1, 34)


def test_gemv_errors():
    qw = quant.quantize_weights(np.ones((2, 64), np.float32), "q8_0")
    with pytest.raises(ValueError, match="64 columns but there are 32 activations"):
        golden.gemv_golden(qw, np.ones(32, np.float32))
    with pytest.raises(ValueError, match=r"activations\[5\] = inf"):
        x = np.ones(64, np.float32)
        x[5] = np.inf
        golden.gemv_golden(qw, x)
    mant, exp = quant.quantize_activations(np.ones(64, np.float32))
    with pytest.raises(ValueError, match="activation exponents have shape"):
        golden.gemv_golden_quantized(qw, mant, exp[:1])
    with pytest.raises(ValueError, match="pass QuantizedWeights"):
        golden.gemv_golden_quantized(qw.to_gguf(), mant, exp)


# --- Weight stream repacking -------------------------------------------------------------

CONFIGS = [(8, 64), (16, 64), (16, 512), (32, 128), (32, 64), (64, 256), (128, 512),
           (128, 64)]
COLS = [32, 64, 96, 128, 160, 256, 1024, 4096, 4224]


@pytest.mark.parametrize("lanes,word_bits", CONFIGS)
@pytest.mark.parametrize("fmt,group", ALL)
def test_repack_round_trip(lanes, word_bits, fmt, group):
    config = GemvConfig(lanes=lanes, word_bits=word_bits, max_cols=8192)
    rng = np.random.default_rng(lanes + word_bits)
    for cols in COLS:
        if cols % (group or 32):
            continue
        rows = 3
        qw = random_weights(rng, fmt, rows, cols, group)
        lay = repack.stream_layout(fmt, rows, cols, config, group)
        words = repack.repack_weights(qw, config)
        assert words.dtype == np.uint8 and words.shape == (lay.words, config.word_bytes)
        stream = repack.repack_weights_bytes(qw, config)
        assert stream == words.tobytes() and len(stream) == lay.bytes
        ints = repack.stream_words(qw, config)
        assert len(ints) == lay.words and all(0 <= v < 1 << word_bits for v in ints)
        assert b"".join(v.to_bytes(config.word_bytes, "little") for v in ints) == stream
        for form in (stream, words, ints):
            back = repack.unpack_weights(form, fmt, rows, cols, config, group)
            for field in ("q", "scale_bits", "zero", "min_bits"):
                assert np.array_equal(getattr(back, field), getattr(qw, field)), field
        # Native size: scale bytes + code bytes (GGUF: exactly the GGUF tensor).
        native = rows * (cols // (group or 32) * fmt.slot_bits // 8 + cols * fmt.qbits // 8)
        if fmt.is_gguf:
            assert native == qw.to_gguf().size
        full_chunk = config.slots_per_beat(fmt) * (group or 32)
        if cols % full_chunk == 0 and lay.beats * config.beat_bytes % config.word_bytes == 0:
            assert len(stream) == native
        else:
            assert len(stream) >= native
        assert lay.ideal_cycles == max(lay.words, lay.beats)


def test_repack_layout_counts():
    # lanes=8: beat 32 bits, Q4_0 2 slots/beat, 8 elements/beat.
    c8 = GemvConfig(lanes=8, word_bits=64)
    assert repack.stream_layout("q4_0", 1, 32, c8).beats == 1 + 4
    assert repack.stream_layout("q4_0", 2, 96, c8).beats == 2 * ((1 + 8) + (1 + 4))
    assert repack.stream_layout("q8_0", 1, 64, c8).beats == 1 + 16
    # Q4_1 / INT: 32-bit slots, 1 per 32-bit beat; INT4 group 128 covers 16 beats.
    assert repack.stream_layout("q4_1", 1, 64, c8).beats == 2 * (1 + 4)
    assert repack.stream_layout("int4", 1, 256, c8, 128).beats == 2 * (1 + 16)
    lay = repack.stream_layout("q4_0", 1, 32, c8)
    assert (lay.words, lay.bytes, lay.ideal_cycles) == (3, 24, 5)   # 20 bytes -> 3 words
    # lanes=128, 512-bit words: 32 scales per beat.
    c128 = GemvConfig(lanes=128, word_bits=512)
    assert repack.stream_layout("q4_0", 1, 32, c128).beats == 2
    assert repack.stream_layout("q8_0", 1, 96, c128).beats == 1 + 2
    assert repack.stream_layout("q4_0", 1, 1024, c128).beats == 1 + 8
    c32 = GemvConfig(lanes=32)
    lay = repack.stream_layout("q4_0", 4096, 4096, c32)
    assert lay.bytes == 4096 * 128 * 18 and lay.ideal_cycles == lay.beats == lay.words
    # A word narrower than a beat: one word per cycle is the limit.
    lay = repack.stream_layout("q4_0", 4096, 4096, GemvConfig(lanes=64, word_bits=64))
    assert lay.ideal_cycles == lay.words == 4 * lay.beats


def test_repack_hand_checked_q4_0_lanes8():
    # Element k has nibble k % 16, so GGUF byte j = j | j << 4; d = 1.0.
    raw = bytes([0x00, 0x3C]) + bytes(0x11 * j for j in range(16))
    qw = quant.QuantizedWeights.from_gguf(raw, "q4_0", 1, 32)
    words = repack.stream_words(qw, GemvConfig(lanes=8, word_bits=64))
    beats = [0x00003C00, 0x76543210, 0xFEDCBA98, 0x76543210, 0xFEDCBA98, 0]
    assert words == [beats[k] | beats[k + 1] << 32 for k in range(0, 6, 2)]


def test_repack_hand_checked_q8_0_lanes8():
    # Two blocks, d = 1.0 and -2.0; element k = k - 32 as int8.
    q = bytes((k - 32) & 0xFF for k in range(64))
    raw = bytes([0x00, 0x3C]) + q[:32] + bytes([0x00, 0xC0]) + q[32:]
    qw = quant.QuantizedWeights.from_gguf(raw, "q8_0", 1, 64)
    data = repack.repack_weights_bytes(qw, GemvConfig(lanes=8, word_bits=64))
    beats = [int.from_bytes(data[4 * k:4 * k + 4], "little") for k in range(len(data) // 4)]
    assert len(beats) == 18 and beats[17] == 0      # 17 beats, padded to 9 words
    assert beats[0] == 0xC0003C00
    assert beats[1] == 0xE3E2E1E0                   # elements -32, -31, -30, -29
    assert beats[9] == 0x03020100                   # elements 32..35 = 0, 1, 2, 3
    assert beats[16] == 0x1F1E1D1C


def test_repack_hand_checked_int4_and_q4_1_slots():
    # 32-bit slots: scale in the low half, zero point (INT) or minimum (Q4_1) above.
    c = GemvConfig(lanes=8, word_bits=64)
    q = np.arange(64).reshape(1, 64) % 16
    qw = quant.QuantizedWeights.from_groups("int4", q, np.array([[1.0]], np.float16),
                                             np.array([[3]]), 64)
    data = repack.repack_weights_bytes(qw, c)
    assert int.from_bytes(data[:4], "little") == 0x0003_3C00
    assert int.from_bytes(data[4:8], "little") == 0x76543210
    raw = bytes([0x00, 0x3C, 0x00, 0xB8]) + bytes(0x11 * j for j in range(16))
    q1 = quant.QuantizedWeights.from_gguf(raw, "q4_1", 1, 32)
    data = repack.repack_weights_bytes(q1, c)
    assert int.from_bytes(data[:4], "little") == 0xB800_3C00


def test_repack_padding_lanes128():
    config = GemvConfig(lanes=128)
    rng = np.random.default_rng(3)
    qw = random_weights(rng, WeightFormat.Q4_0, 1, 32)
    words = repack.stream_words(qw, config)
    assert len(words) == 2
    assert words[0] == int(qw.scale_bits[0, 0])     # unused scale slots are 0
    assert words[1] >> 128 == 0                     # elements past the row end are 0
    assert all((words[1] >> (4 * i)) & 0xF == qw.q[0, i] for i in range(32))
    bad = list(words)
    bad[1] |= 1 << 200
    with pytest.raises(ValueError, match="element past the row's end is not zero"):
        repack.unpack_weights(bad, "q4_0", 1, 32, config)
    bad = list(words)
    bad[0] |= 1 << 16
    with pytest.raises(ValueError, match="unused scale slot is not zero"):
        repack.unpack_weights(bad, "q4_0", 1, 32, config)
    wide = GemvConfig(lanes=8, word_bits=512)
    data = bytearray(repack.repack_weights_bytes(qw, wide))
    data[-1] = 1
    with pytest.raises(ValueError, match="padding after the last beat is not zero"):
        repack.unpack_weights(bytes(data), "q4_0", 1, 32, wide)


def test_repack_errors():
    config = GemvConfig(lanes=8, word_bits=64, max_cols=64)
    qw = random_weights(np.random.default_rng(0), WeightFormat.Q4_0, 1, 32)
    with pytest.raises(ValueError, match="3 words, 24 bytes"):
        repack.unpack_weights(b"\0" * 16, "q4_0", 1, 32, config)
    with pytest.raises(ValueError, match=r"stream word 0 = .*2\*\*64"):
        repack.unpack_weights([1 << 64] * 3, "q4_0", 1, 32, config)
    with pytest.raises(ValueError, match="not supported"):
        repack.stream_layout("q5_0", 1, 32, config)
    with pytest.raises(ValueError, match="multiple of 32"):
        repack.stream_layout("q4_0", 1, 40, config)
    with pytest.raises(ValueError, match="GemvConfig"):
        repack.repack_weights(qw, 8)
    with pytest.raises(ValueError, match="pass QuantizedWeights"):
        repack.repack_weights(qw.to_gguf(), config)
    big = random_weights(np.random.default_rng(0), WeightFormat.Q4_0, 1, 96)
    with pytest.raises(ValueError, match="cols = 96: K exceeds the activation buffer of 64"):
        repack.repack_weights(big, config)
    with pytest.raises(ValueError, match="format INT8 is not compiled"):
        repack.repack_weights(random_weights(np.random.default_rng(0), WeightFormat.INT8, 1, 32,
                                             32),
                              GemvConfig(lanes=8, formats=("q4_0",)))


def test_activation_blocks():
    mant = np.zeros(64, np.int16)
    mant[0], mant[1], mant[31] = 1, -1, 32767
    mant[32], mant[63] = -32768, 5
    exp = np.array([-3, 1], np.int8)
    blocks = repack.activation_blocks(mant, exp)
    assert blocks[0] == 1 | 0xFFFF << 16 | 0x7FFF << 496 | 0xFD << 512
    assert blocks[1] == 0x8000 | 5 << 496 | 0x01 << 512
    assert repack.ACT_BLOCK_BITS == 520
    rng = np.random.default_rng(1)
    x = rng.standard_normal(256).astype(np.float32)
    mant, exp = quant.quantize_activations(x)
    for b, v in enumerate(repack.activation_blocks(mant, exp)):
        assert 0 <= v < 1 << 520
        fields = [(v >> (16 * i)) & 0xFFFF for i in range(32)]
        assert [f - (f >> 15 << 16) for f in fields] == mant[32 * b:32 * b + 32].tolist()
        e = v >> 512
        assert e - (e >> 7 << 8) == exp[b]
