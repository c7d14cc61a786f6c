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

from lpaccel.rtl.config import ACC_FRAC, GemvConfig, WeightFormat
from lpaccel.sim import golden, repack

FORMATS = [WeightFormat.Q4_0, WeightFormat.Q8_0]
GGML = {WeightFormat.Q4_0: gguf.GGMLQuantizationType.Q4_0,
        WeightFormat.Q8_0: gguf.GGMLQuantizationType.Q8_0}


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


def ref_gemv(w_exact, mant, exp):
    """Sections 3-4 from exact dequantized weights ``d * q`` (Fractions).

    ``term = floor(p * 2**sh) = floor(dot * d * 2**(e + F))`` and
    ``dot * d = sum_i (d q_i) m_i``.
    """
    acc = []
    for row in w_exact:
        a = 0
        for b in range(len(exp)):
            s = sum(row[32 * b + i] * mant[32 * b + i] for i in range(32))
            a += math.floor(s * Fraction(2) ** (exp[b] + ACC_FRAC))
        acc.append(a)
    y = np.array([ref_fraction_to_f32(Fraction(a, 1 << ACC_FRAC)) for a in acc],
                 dtype=np.float32)
    return acc, y


def exact_weights(raw, fmt, rows, cols):
    """Exact ``d * q`` via gguf's own dequantizer (exact: <= 19 significant bits)."""
    w = gguf.quants.dequantize(np.asarray(raw).reshape(rows, -1), GGML[fmt])
    return [[Fraction(float(v)) for v in row] for row in w]


def random_raw(rng, fmt, rows, cols, scale_bits=None):
    """Random GGUF bytes with finite (or the given) float16 scales."""
    nb = cols // 32
    raw = rng.integers(0, 256, size=(rows, nb, fmt.block_bytes), dtype=np.uint8)
    if scale_bits is None:
        scale_bits = rng.integers(0, 1 << 16, size=(rows, nb)).astype(np.uint16)
        scale_bits &= ~np.uint16(0x4000)          # exponent field never 31
    scale_bits = np.broadcast_to(np.asarray(scale_bits, dtype=np.uint16), (rows, nb))
    raw[..., 0] = scale_bits & 0xFF
    raw[..., 1] = scale_bits >> 8
    return raw.reshape(rows, -1)


# --- Weights: decode and dequantize -----------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("rows,cols,seed", [(2, 32, 0), (3, 64, 1), (17, 96, 2),
                                            (8, 1024, 3), (5, 4128, 4)])
def test_dequantize_matches_gguf(fmt, rows, cols, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.02, size=(rows, cols)).astype(np.float32)
    w[0] = 0.0                                           # an all-zero row
    w[-1, :32] = np.float32(8e4 if fmt == WeightFormat.Q8_0 else 5e4)  # huge block
    w[-1, 32:64] = np.float32(-3e-7)                     # subnormal scale
    raw = golden.quantize_weights(w, fmt)
    assert raw.dtype == np.uint8 and raw.shape == (rows, cols // 32 * fmt.block_bytes)
    assert np.array_equal(raw, gguf.quants.quantize(w, GGML[fmt]))
    ours = golden.dequantize_weights(raw, fmt, rows, cols)
    theirs = gguf.quants.dequantize(raw, GGML[fmt])
    assert ours.dtype == np.float32
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))
    assert not ours[0].any()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("seed", range(3))
def test_decode_random_bytes_matches_gguf(fmt, seed):
    # Random bytes cover every nibble/int8 pattern and every finite scale class.
    rng = np.random.default_rng(100 + seed)
    rows, cols = 7, 32 * 9
    raw = random_raw(rng, fmt, rows, cols)
    ours = golden.dequantize_weights(raw.tobytes(), fmt.name.lower(), rows, cols)
    theirs = gguf.quants.dequantize(raw, GGML[fmt])
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))
    q, scale_bits = golden.decode_weights(raw, fmt, rows, cols)
    assert q.dtype == np.int8 and q.shape == (rows, cols)
    assert scale_bits.dtype == np.uint16 and scale_bits.shape == (rows, cols // 32)
    lo, hi = (-8, 7) if fmt == WeightFormat.Q4_0 else (-128, 127)
    assert q.min() >= lo and q.max() <= hi


def test_decode_q4_0_nibble_order():
    # Byte j: element j in the low nibble, element j + 16 in the high nibble.
    blk = bytes([0x00, 0x3C]) + bytes((j & 0xF) | ((15 - j) << 4) for j in range(16))
    q, scale_bits = golden.decode_weights(blk, "q4_0", 1, 32)
    assert scale_bits.tolist() == [[0x3C00]]
    assert q[0].tolist() == [j - 8 for j in range(16)] + [7 - j for j in range(16)]


def test_decode_fp16_scale_exhaustive():
    bits = np.arange(1 << 16, dtype=np.uint16)
    finite = (bits & 0x7C00) != 0x7C00
    s, md, ed = golden.decode_fp16_scale(bits)
    value = np.ldexp(md.astype(np.float64), ed.astype(np.int32)) * np.where(s != 0, -1, 1)
    ref = bits.view(np.float16).astype(np.float64)
    assert np.array_equal(value[finite], ref[finite])
    assert np.array_equal(np.signbit(value[finite]), np.signbit(ref[finite]))
    assert md.min() >= 0 and md.max() < 2048
    # Exponent field 31 decodes as a finite number, no special case.
    assert golden.decode_fp16_scale(0x7C00) == (0, 1024, 6)
    assert golden.decode_fp16_scale(0xFFFF) == (1, 2047, 6)
    assert golden.decode_fp16_scale(0x0001) == (0, 1, -24)
    assert golden.decode_fp16_scale(0x8000) == (1, 0, -24)


# --- Activations -----------------------------------------------------------------------

def test_activation_zero_block_and_max():
    x = np.zeros(64, dtype=np.float16)
    x[32], x[33], x[34] = 65504, 1, -65504
    mant, exp = golden.quantize_activations(x)
    assert mant.dtype == np.int16 and exp.dtype == np.int8
    assert exp.tolist() == [-128, 1]
    assert not mant[:32].any()
    # 65504 = 0.99951 * 2**16 -> e = 1; 1 / 2 = 0.5 rounds to even 0.
    assert mant[32:35].tolist() == [32752, 0, -32752]


def test_activation_subnormal_float16_and_float32():
    x = np.zeros(32, dtype=np.float16)
    x[5] = np.float16(2.0 ** -24)                  # smallest float16 subnormal
    mant, exp = golden.quantize_activations(x)
    assert exp.tolist() == [-38] and mant[5] == 16384
    x32 = np.zeros(96, dtype=np.float32)
    x32[0] = np.float32(2.0 ** -149)               # E = -148: e clamps to -128
    x32[32:34] = np.float32(2.0 ** -114), np.float32(2.0 ** -149)   # E - 15 = -128
    x32[64] = np.float32(2.0 ** -120)              # clamped e: mantissa below 16384
    mant, exp = golden.quantize_activations(x32)
    assert exp.tolist() == [-128, -128, -128]
    assert mant[[0, 32, 33, 64]].tolist() == [0, 16384, 0, 256]


def test_activation_ties_to_even():
    x = np.zeros(32, dtype=np.float16)
    x[0] = 1.0                                     # frexp: 0.5 * 2**1 -> e = -14
    units = [1, 3, 5, 7, -3, -5, 2]                # x = u * 2**-15 -> u / 2
    x[1:1 + len(units)] = [u * 2.0 ** -15 for u in units]
    mant, exp = golden.quantize_activations(x)
    assert exp.tolist() == [-14]
    assert mant[:1 + len(units)].tolist() == [16384, 0, 2, 2, 4, -2, -2, 1]


def test_activation_clamp_32767():
    x = np.zeros(32, dtype=np.float32)
    x[0] = np.float32(1 - 2.0 ** -17)              # * 2**15 = 32767.75 -> rint 32768
    x[1] = -x[0]
    x[2] = np.float32(0.75)                        # E = 0 -> 24576
    mant, exp = golden.quantize_activations(x)
    assert exp.tolist() == [-15]
    assert mant[:3].tolist() == [32767, -32767, 24576]


@pytest.mark.parametrize("seed", range(3))
def test_activation_matches_reference(seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(256) * np.exp(rng.uniform(-30, 10, 256))).astype(np.float32)
    x[64:96] = 0
    x[96:128] = rng.integers(-3, 4, 32) * 2.0 ** -20   # many exact ties
    mant, exp = golden.quantize_activations(x)
    ref_m, ref_e = ref_quantize_activations(x)
    assert mant.tolist() == ref_m and exp.tolist() == ref_e
    blocks = np.abs(mant.astype(np.int64).reshape(-1, 32)).max(axis=1)
    nonzero = np.abs(x.reshape(-1, 32)).max(axis=1) > 2.0 ** -100
    assert ((blocks[nonzero] >= 16384) & (blocks[nonzero] <= 32767)).all()
    back = golden.dequantize_activations(mant, exp)
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
        golden.quantize_activations(x)


@pytest.mark.parametrize("x,match", [
    (np.zeros(33, np.float32), "33 elements.*multiple of 32"),
    (np.zeros(0, np.float16), "0 elements"),
    (np.zeros((2, 32), np.float32), "1-D"),
    (np.zeros(32, np.float64), "float16 or float32"),
])
def test_activation_rejects_bad_shapes(x, match):
    with pytest.raises(ValueError, match=match):
        golden.quantize_activations(x)


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

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("rows,cols,seed", [(4, 32, 0), (3, 96, 1), (5, 160, 2)])
def test_gemv_matches_independent_model(fmt, rows, cols, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.02, size=(rows, cols)).astype(np.float32)
    w[1] = 0
    raw = golden.quantize_weights(w, fmt)
    x = (rng.standard_normal(cols) * np.exp(rng.uniform(-12, 9, cols))).astype(np.float32)
    x[32:64] = 0
    x = np.clip(x, -65000, 65000)
    y = golden.gemv_golden(raw, fmt, rows, cols, x)
    mant, exp = ref_quantize_activations(x)
    ref_acc, ref_y = ref_gemv(exact_weights(raw, fmt, rows, cols), mant, exp)
    assert y.dtype == np.float32 and y.shape == (rows,)
    assert np.array_equal(y.view(np.uint32), ref_y.view(np.uint32))
    q, scale_bits = golden.decode_weights(raw, fmt, rows, cols)
    acc, y2 = golden.gemv_golden_quantized(q, scale_bits, *golden.quantize_activations(x))
    assert acc == ref_acc and all(type(a) is int for a in acc)
    assert np.array_equal(y2.view(np.uint32), y.view(np.uint32))
    assert acc[1] == 0 and not np.signbit(y[1])


@pytest.mark.parametrize("fmt", FORMATS)
def test_gemv_fp16_scale_edge_cases(fmt):
    # Zero, signed zero, subnormal, smallest normal, negative and max scales.
    scales = [0x0000, 0x8000, 0x0001, 0x03FF, 0x8001, 0x0400, 0xBC00, 0x7BFF, 0xFBFF,
              0x3C00]
    rows, cols = len(scales), 96
    rng = np.random.default_rng(5)
    raw = random_raw(rng, fmt, rows, cols, scale_bits=np.array(scales)[:, None])
    x = np.zeros(cols, dtype=np.float16)
    x[:32] = rng.standard_normal(32) * 1e3
    x[0] = 65504                                   # largest activation: e = 1
    x[32:64] = rng.standard_normal(32) * 1e-6     # tiny: negative shifts, floor
    x[64:96] = -rng.uniform(0, 1, 32)
    y = golden.gemv_golden(raw, fmt, rows, cols, x)
    mant, exp = ref_quantize_activations(x)
    ref_acc, ref_y = ref_gemv(exact_weights(raw, fmt, rows, cols), mant, exp)
    q, scale_bits = golden.decode_weights(raw, fmt, rows, cols)
    acc, _ = golden.gemv_golden_quantized(q, scale_bits, *golden.quantize_activations(x))
    assert acc == ref_acc
    assert np.array_equal(y.view(np.uint32), ref_y.view(np.uint32))
    assert acc[0] == 0 and acc[1] == 0
    assert abs(acc[7]) > 2 ** 63                   # 65504 * 65504 * q: beyond int64


def test_gemv_quantized_large_exponents():
    # Exponents beyond the contract's e <= 1 reach the hardware's shift clamp
    # sh <= 39. All scales are 1.0 (ed = -10), so sh = e + 22 and the clamp
    # acts exactly like e = min(e, 17) in the Fraction reference.
    rng = np.random.default_rng(9)
    rows, cols = 3, 64
    raw = random_raw(rng, WeightFormat.Q8_0, rows, cols, scale_bits=0x3C00)
    q, scale_bits = golden.decode_weights(raw, "q8_0", rows, cols)
    mant = rng.integers(-32767, 32768, cols).astype(np.int16)
    exp = np.array([20, -100], dtype=np.int8)       # sh = 42 (clamped to 39) and -78
    acc, y = golden.gemv_golden_quantized(q, scale_bits, mant, exp)
    ref_acc, ref_y = ref_gemv(exact_weights(raw, WeightFormat.Q8_0, rows, cols),
                              mant.tolist(), [17, -100])
    assert acc == ref_acc
    assert np.array_equal(y.view(np.uint32), ref_y.view(np.uint32))
    # The clamp also keeps the largest exponent inside the 96-bit accumulator.
    acc127, _ = golden.gemv_golden_quantized(q, scale_bits, mant, np.array([127, -100], np.int8))
    assert acc127 == acc


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("rows,cols", [(64, 256), (256, 1024), (256, 4096)])
def test_gemv_error_vs_float64(fmt, rows, cols):
    rng = np.random.default_rng(cols + rows)
    w = rng.normal(0, 0.02, size=(rows, cols)).astype(np.float32)
    raw = golden.quantize_weights(w, fmt)
    x = rng.standard_normal(cols).astype(np.float32)
    y = golden.gemv_golden(raw, fmt, rows, cols, x)
    y_ref = golden.gemv_reference_f64(raw, fmt, rows, cols, x)
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
    with pytest.raises(ValueError, match=r"shape \(2, 35\).*72 bytes"):
        golden.decode_weights(raw[:, :35], "q4_0", 2, 64)
    with pytest.raises(ValueError, match="72 bytes"):
        golden.dequantize_weights(raw.tobytes()[:-1], "q4_0", 2, 64)
    with pytest.raises(ValueError, match=r"shape \(1, 72\)"):
        golden.decode_weights(raw.reshape(1, 72), "q4_0", 2, 64)
    with pytest.raises(ValueError, match="68 bytes"):
        golden.decode_weights(raw, "q8_0", 2, 32)
    with pytest.raises(ValueError, match="dtype int16"):
        golden.decode_weights(raw.view(np.int16), "q4_0", 2, 64)
    with pytest.raises(ValueError, match=r"not supported \(supported: q4_0, q8_0\)"):
        golden.decode_weights(raw, "q4_1", 2, 64)
    with pytest.raises(ValueError, match="not supported"):
        golden.quantize_weights(np.zeros((2, 64), np.float32), gguf.GGMLQuantizationType.Q4_K)
    with pytest.raises(ValueError, match="cols = 48.*multiple of 32"):
        golden.decode_weights(np.zeros(54, np.uint8), "q4_0", 2, 48)
    with pytest.raises(ValueError, match="cols = 48.*multiple of 32"):
        golden.quantize_weights(np.zeros((2, 48), np.float32), "q8_0")
    with pytest.raises(ValueError, match="rows = 0"):
        golden.decode_weights(b"", "q8_0", 0, 32)
    with pytest.raises(ValueError, match=r"weights\[1, 3\] = nan.*finite"):
        w = np.zeros((2, 32), np.float32)
        w[1, 3] = np.nan
        golden.quantize_weights(w, "q4_0")
    with pytest.raises(ValueError, match="overflows float16"):
        golden.quantize_weights(np.full((1, 32), 1e6, np.float32), "q4_0")
    # GGMLQuantizationType is accepted where it names a supported format.
    ok = golden.quantize_weights(np.ones((1, 32), np.float32), gguf.GGMLQuantizationType.Q8_0)
    assert ok.shape == (1, 34)


def test_gemv_errors():
    raw = golden.quantize_weights(np.ones((2, 64), np.float32), "q8_0")
    with pytest.raises(ValueError, match="32 elements.*64 columns"):
        golden.gemv_golden(raw, "q8_0", 2, 64, np.ones(32, np.float32))
    with pytest.raises(ValueError, match=r"activations\[5\] = inf"):
        x = np.ones(64, np.float32)
        x[5] = np.inf
        golden.gemv_golden(raw, "q8_0", 2, 64, x)
    q, sb = golden.decode_weights(raw, "q8_0", 2, 64)
    mant, exp = golden.quantize_activations(np.ones(64, np.float32))
    with pytest.raises(ValueError, match="scale bits have shape"):
        golden.gemv_golden_quantized(q, sb[:, :1], mant, exp)
    with pytest.raises(ValueError, match="activation exponents have shape"):
        golden.gemv_golden_quantized(q, sb, mant, exp[:1])
    with pytest.raises(ValueError, match=r"weight quants\[0, 0\] = 200"):
        golden.gemv_golden_quantized(np.full((2, 64), 200), sb, mant, exp)


# --- Weight stream repacking -------------------------------------------------------------

LANES = [8, 16, 32, 64, 128]
COLS = [32, 64, 96, 160, 1024, 4096, 4128]


@pytest.mark.parametrize("lanes", LANES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_repack_round_trip(lanes, fmt):
    config = GemvConfig(lanes=lanes)
    w_bits = config.word_bits
    rng = np.random.default_rng(lanes)
    for cols in COLS:
        rows = 3
        raw = random_raw(rng, fmt, rows, cols)
        words = repack.repack_weights(raw, fmt, rows, cols, config)
        assert words.dtype == np.uint8 and words.shape[1] == config.word_bytes
        count = repack.stream_word_count(fmt, rows, cols, config)
        assert words.shape[0] == count
        stream = repack.repack_weights_bytes(raw, fmt, rows, cols, config)
        assert stream == words.tobytes()
        ints = repack.stream_words(raw, fmt, rows, cols, config)
        assert len(ints) == count and all(0 <= v < 1 << w_bits for v in ints)
        assert b"".join(v.to_bytes(config.word_bytes, "little") for v in ints) == stream
        for form in (stream, words, ints):
            back = repack.unpack_weights(form, fmt, rows, cols, config)
            assert np.array_equal(back, raw)
        gguf_bytes = raw.size
        if cols % (2 * w_bits) == 0:
            assert len(stream) == gguf_bytes
        else:
            assert len(stream) > gguf_bytes
        # Rows follow one another with no padding.
        per_row = [repack.repack_weights_bytes(raw[r], fmt, 1, cols, config)
                   for r in range(rows)]
        assert b"".join(per_row) == stream


def test_repack_stream_word_count():
    # lanes=8: W=32, bpc=2; Q4_0 n=8 -> a full chunk is 1 + 8 words.
    c8 = GemvConfig(lanes=8)
    assert repack.stream_word_count("q4_0", 1, 32, c8) == 1 + 4
    assert repack.stream_word_count("q4_0", 2, 96, c8) == 2 * ((1 + 8) + (1 + 4))
    assert repack.stream_word_count("q8_0", 1, 64, c8) == 1 + 16
    # lanes=128: W=512, bpc=32; Q4_0 n=128, Q8_0 n=64.
    c128 = GemvConfig(lanes=128)
    assert repack.stream_word_count("q4_0", 1, 32, c128) == 2
    assert repack.stream_word_count("q8_0", 1, 96, c128) == 1 + 2
    assert repack.stream_word_count("q4_0", 1, 1024, c128) == 1 + 8
    c32 = GemvConfig(lanes=32)
    assert repack.stream_word_count("q4_0", 4096, 4096, c32) * 16 == 4096 * 128 * 18


def test_repack_hand_checked_q4_0_lanes8():
    # Element k has nibble k % 16, so GGUF byte j = j | j << 4; d = 1.0.
    raw = bytes([0x00, 0x3C]) + bytes(0x11 * j for j in range(16))
    words = repack.stream_words(raw, "q4_0", 1, 32, GemvConfig(lanes=8))
    assert words == [0x00003C00, 0x76543210, 0xFEDCBA98, 0x76543210, 0xFEDCBA98]


def test_repack_hand_checked_q8_0_lanes8():
    # Two blocks, d = 1.0 and -2.0; element k = k - 32 as int8.
    q = bytes((k - 32) & 0xFF for k in range(64))
    raw = bytes([0x00, 0x3C]) + q[:32] + bytes([0x00, 0xC0]) + q[32:]
    words = repack.stream_words(raw, "q8_0", 1, 64, GemvConfig(lanes=8))
    assert len(words) == 17
    assert words[0] == 0xC0003C00
    assert words[1] == 0xE3E2E1E0                   # elements -32, -31, -30, -29
    assert words[9] == 0x03020100                   # elements 32..35 = 0, 1, 2, 3
    assert words[16] == 0x1F1E1D1C


def test_repack_padding_lanes128():
    config = GemvConfig(lanes=128)
    rng = np.random.default_rng(3)
    raw = random_raw(rng, WeightFormat.Q4_0, 1, 32)
    words = repack.stream_words(raw, "q4_0", 1, 32, config)
    assert len(words) == 2
    h = int(raw[0, 0]) | int(raw[0, 1]) << 8
    assert words[0] == h                            # unused scale slots are 0
    assert words[1] >> 128 == 0                     # elements past the row end are 0
    q, _ = golden.decode_weights(raw, "q4_0", 1, 32)
    assert all((words[1] >> (4 * i)) & 0xF == q[0, i] + 8 for i in range(32))
    bad = list(words)
    bad[1] |= 1 << 200
    with pytest.raises(ValueError, match="element past the row's end is not zero"):
        repack.unpack_weights(bad, "q4_0", 1, 32, config)
    bad = list(words)
    bad[0] |= 1 << 16
    with pytest.raises(ValueError, match="unused scale slot is not zero"):
        repack.unpack_weights(bad, "q4_0", 1, 32, config)


def test_repack_errors():
    config = GemvConfig(lanes=8)
    raw = np.zeros(18, np.uint8)
    with pytest.raises(ValueError, match="5 words, 20 bytes"):
        repack.unpack_weights(b"\0" * 16, "q4_0", 1, 32, config)
    with pytest.raises(ValueError, match=r"stream word 0 = .*2\*\*32"):
        repack.unpack_weights([1 << 32] * 5, "q4_0", 1, 32, config)
    with pytest.raises(ValueError, match="18 bytes"):
        repack.repack_weights(raw[:17], "q4_0", 1, 32, config)
    with pytest.raises(ValueError, match="not supported"):
        repack.repack_weights(raw, "q5_0", 1, 32, config)
    with pytest.raises(ValueError, match="multiple of 32"):
        repack.stream_word_count("q4_0", 1, 40, config)
    with pytest.raises(ValueError, match="GemvConfig"):
        repack.repack_weights(raw, "q4_0", 1, 32, 8)


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
    mant, exp = golden.quantize_activations(x)
    for b, v in enumerate(repack.activation_blocks(mant, exp)):
        assert 0 <= v < 1 << 520
        fields = [(v >> (16 * i)) & 0xFFFF for i in range(32)]
        assert [f - (f >> 15 << 16) for f in fields] == mant[32 * b:32 * b + 32].tolist()
        e = v >> 512
        assert e - (e >> 7 << 8) == exp[b]
