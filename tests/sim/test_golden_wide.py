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
from lpaccel.rtl.config import ACC_FRAC, WIDE_SH, WIDE_SH_MAX, GemvConfig, WeightFormat
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
            sh = min(int(exp[b]) + ACC_FRAC - WIDE_SH, WIDE_SH_MAX)
            a += math.floor(w * Fraction(2) ** sh)
        acc.append(a)
    y = np.array([ref_fraction_to_f32(Fraction(a, 1 << ACC_FRAC)) for a in acc], np.float32)
    return acc, y


def f16_exact(bits):
    """Exact weights of raw float16 bits, through numpy's float16 (IEEE)."""
    return [[Fraction(float(v)) for v in row] for row in bits.view(np.float16)]


def half_exact(h):
    """Exact value of float16 bits by the IEEE fields; exponent 31 read as finite."""
    h = int(h)
    e, f = (h >> 10) & 31, h & 1023
    v = Fraction(f, 1 << 24) if e == 0 else Fraction(1024 + f) * Fraction(2) ** (e - 25)
    return -v if h >> 15 else v


def bcq_exact(bits, alpha_bits, group, offset_bits=None):
    """Exact BCQ weights from the raw fields: ``sum_p alpha (2 b - 1) + o``."""
    planes, rows, cols = bits.shape
    out = []
    for r in range(rows):
        row = []
        for i in range(cols):
            g = i // group
            v = sum(half_exact(alpha_bits[p, r, g]) * (2 * int(bits[p, r, i]) - 1)
                    for p in range(planes))
            if offset_bits is not None:
                v += half_exact(offset_bits[r, g])
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
    # (floor to 0 or -1) up to the clamp at 9 (e = 20 is clamped like e = 1).
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
    for fmt, maker in (("f16", "from_f16"), ("bcq", "from_bcq"), ("q4_0", "from_gguf")):
        with pytest.raises(ValueError, match=f"not group-wise affine.*{maker}"):
            quant.QuantizedWeights.from_groups(fmt, np.zeros((1, 32)), np.zeros((1, 1)),
                                               np.zeros((1, 1)), 32)


# --- BCQ -------------------------------------------------------------------------------

BCQ_CASES = [(p, g, o) for p in (1, 2, 3, 4) for g in (32, 64, 128) for o in (False, True)]


@pytest.mark.parametrize("planes,group,offset", BCQ_CASES)
def test_bcq_fields_and_dequantize(planes, group, offset):
    rng = np.random.default_rng(planes * group + offset)
    bits, alpha, off = random_bcq(rng, planes, 3, 2 * group, group, offset)
    w = quant.QuantizedWeights.from_bcq(bits, alpha, group, off)
    assert w.fmt is BCQ and w.planes == planes and w.offset == offset and w.group == group
    assert np.array_equal(w.plane_bits, bits) and w.plane_bits.dtype == np.uint8
    assert np.array_equal(w.alpha_bits, alpha)
    assert (w.offset_bits is None) if not offset else np.array_equal(w.offset_bits, off)
    exact = bcq_exact(bits, alpha, group, off)
    assert [[Fraction(float(v)) for v in row] for row in w.dequantize_f64()] == exact
    assert np.array_equal(w.dequantize(), w.dequantize_f64().astype(np.float32))
    back = quant.QuantizedWeights.from_arrays(BCQ, 3, 2 * group, group,
                                              {f"w_{k}": v for k, v in w.to_arrays().items()},
                                              prefix="w_")
    assert np.array_equal(back.q, w.q) and np.array_equal(back.alpha_bits, w.alpha_bits)
    assert back.offset == offset
    # float16 scales are accepted as values too.
    same = quant.QuantizedWeights.from_bcq(bits.astype(bool), alpha.view(np.float16), group,
                                           None if off is None else off.view(np.float16))
    assert np.array_equal(same.q, w.q) and np.array_equal(same.alpha_bits, alpha)


@pytest.mark.parametrize("planes,group,offset", BCQ_CASES)
def test_bcq_gemv_matches_independent_model(planes, group, offset):
    rng = np.random.default_rng(10 * planes + group + offset)
    rows, cols = 3, 2 * group + (32 if group == 32 else 0)
    bits, alpha, off = random_bcq(rng, planes, rows, cols, group, offset)
    w = quant.QuantizedWeights.from_bcq(bits, alpha, group, off)
    x = hard_activations(rng, cols)
    mant, exp = ref_quantize_activations(x)
    exact = bcq_exact(bits, alpha, group, off)
    # The exact weights, independently: Fractions of the float64 dequantized weights.
    assert exact == [[Fraction(float(v)) for v in row] for row in w.dequantize_f64()]
    ref_acc, ref_y = ref_wide_gemv(exact, mant, exp)
    acc, y = golden.gemv_golden_quantized(w, *quant.quantize_activations(x))
    assert acc == ref_acc and all(type(a) is int for a in acc)
    assert np.array_equal(y.view(np.uint32), ref_y.view(np.uint32))


@pytest.mark.parametrize("seed", range(4))
def test_bcq_gemv_random_shapes(seed):
    # Random plane count, group, offset and shape (K not a multiple of any beat),
    # golden vs the Fraction model, and the stream round trip at a random lane count.
    rng = np.random.default_rng(100 + seed)
    planes, group = int(rng.integers(1, 5)), int(rng.choice([32, 64, 128]))
    offset = bool(rng.integers(0, 2))
    rows, cols = int(rng.integers(1, 4)), group * int(rng.integers(1, 5))
    bits, alpha, off = random_bcq(rng, planes, rows, cols, group, offset)
    w = quant.QuantizedWeights.from_bcq(bits, alpha, group, off)
    x = hard_activations(rng, cols)
    mant, exp = ref_quantize_activations(x)
    ref_acc, ref_y = ref_wide_gemv(bcq_exact(bits, alpha, group, off), mant, exp)
    acc, y = golden.gemv_golden_quantized(w, *quant.quantize_activations(x))
    assert acc == ref_acc
    assert np.array_equal(y.view(np.uint32), ref_y.view(np.uint32))
    config = GemvConfig(lanes=int(rng.choice(LANES)))
    back = repack.unpack_weights(repack.repack_weights(w, config), BCQ, rows, cols, config,
                                 group, planes, offset)
    assert np.array_equal(back.q, w.q) and np.array_equal(back.alpha_bits, alpha)


def test_bcq_gemv_block_sum_past_int64():
    # Four planes and the offset at the largest decodable scale (0x7FFF: exponent
    # field 31, which the hardware reads as 2047 * 2**6) with +1 bits and mantissas
    # -32768 (legal int16 inputs, never made by quantize_activations):
    # |W| = 5 * 2047 * 2**30 * 32 * 32768 > 2**63, past int64, both signs.
    planes, rows, cols = 4, 4, 96
    bits = np.ones((planes, rows, cols), np.uint8)
    bits[:, 1] = 0
    alpha = np.full((planes, rows, cols // 32), 0x7FFF, np.uint16)
    alpha[:, 2] = 0xFFFF
    alpha[:, 3, 1] = 0x0001
    off = np.full((rows, cols // 32), 0x7FFF, np.uint16)
    off[1] = 0xFFFF
    w = quant.QuantizedWeights.from_bcq(bits, alpha, 32, off, allow_nonfinite=True)
    mant = np.full(cols, -32768, np.int16)
    mant[64:] = 32767
    for exp in ([1, 1, 1], [-128, -60, -33], [-31, -1, 0], [3, -70, -20]):
        exp = np.array(exp, np.int8)
        acc, y = golden.gemv_golden_quantized(w, mant, exp)
        ref_acc, ref_y = ref_wide_gemv(bcq_exact(bits, alpha, 32, off), mant.tolist(),
                                       exp.tolist())
        assert acc == ref_acc, exp
        assert np.array_equal(y.view(np.uint32), ref_y.view(np.uint32))
    assert 5 * 2047 * 2 ** 30 * 32 * 32768 > 2 ** 63


@pytest.mark.parametrize("planes", [1, 2, 3, 4])
@pytest.mark.parametrize("group,offset", [(32, True), (128, False), (64, True)])
def test_bcq_error_vs_float64(planes, group, offset):
    # Only three error sources: activation mantissas, one floor per block, final fp32.
    rows, cols = 64, 1024
    rng = np.random.default_rng(planes + group)
    bits = rng.integers(0, 2, (planes, rows, cols)).astype(np.uint8)
    alpha = np.abs(rng.normal(0, 0.02, (planes, rows, cols // group))).astype(np.float16)
    off = rng.normal(0, 0.005, (rows, cols // group)).astype(np.float16) if offset else None
    w = quant.QuantizedWeights.from_bcq(bits, alpha, group, off)
    x = rng.standard_normal(cols).astype(np.float32)
    mant, exp = quant.quantize_activations(x)
    acc, y = golden.gemv_golden_quantized(w, mant, exp)
    err = golden.rel_rms_error(y, golden.gemv_reference_f64(w, x))
    print(f"BCQ{planes} g{group} offset={offset}: rel_rms_error = {err:.3e}")
    assert err < 1e-4
    # Against the quantized activations the error is the floors (< 1 unit of
    # 2**-32 per block) and nothing else.
    xq = quant.dequantize_activations(mant, exp)
    exact = np.array([float(Fraction(a, 1 << ACC_FRAC)) for a in acc])
    ref = w.dequantize_f64() @ xq
    assert np.all(np.abs(exact - ref) <= (cols // 32) * 2.0 ** -ACC_FRAC + 1e-12 * np.abs(ref))


def bcq_bytes(rows, cols, planes, group, offset, config):
    """Bytes of a BCQ stream, counted from section 8.2 beat by beat."""
    big_b, spb = config.beat_bits, config.beat_bits // 16
    beats = 0
    for c0 in range(0, cols, spb * group):
        chunk_cols = min(spb * group, cols - c0)
        beats += planes + offset + -(-chunk_cols // big_b) * planes
    return rows * beats * big_b // 8


@pytest.mark.parametrize("lanes,word_bits", CONFIGS)
@pytest.mark.parametrize("planes", [1, 2, 3, 4])
def test_bcq_repack_round_trip(lanes, word_bits, planes):
    config = GemvConfig(lanes=lanes, word_bits=word_bits)
    rng = np.random.default_rng(lanes + word_bits + planes)
    for group in (32, 64, 128):
        for offset in (False, True):
            for cols in (group, 96 if group == 32 else 3 * group, 1024 + group, 4096):
                rows = 3
                bits, alpha, off = random_bcq(rng, planes, rows, cols, group, offset)
                w = quant.QuantizedWeights.from_bcq(bits, alpha, group, off)
                lay = repack.stream_layout(BCQ, rows, cols, config, group, planes, offset)
                words = repack.repack_weights(w, config)
                assert words.shape == (lay.words, config.word_bytes)
                assert lay.beats * config.beat_bytes == \
                    bcq_bytes(rows, cols, planes, group, offset, config)
                assert lay.bytes == -(-lay.beats * config.beat_bytes // config.word_bytes) \
                    * config.word_bytes
                assert lay.ideal_cycles == max(lay.words, lay.beats)
                for form in (words, words.tobytes(), repack.stream_words(w, config)):
                    back = repack.unpack_weights(form, BCQ, rows, cols, config, group,
                                                 planes, offset)
                    assert np.array_equal(back.plane_bits, bits)
                    assert np.array_equal(back.alpha_bits, alpha)
                    assert back.offset == offset
                    if offset:
                        assert np.array_equal(back.offset_bits, off)


@pytest.mark.parametrize("planes,group,offset", [(2, 128, False), (3, 128, False),
                                                 (1, 64, True), (4, 32, False)])
def test_bcq_bits_per_weight(planes, group, offset):
    # Whole chunks: q + 16 (q + offset) / G bits per weight (section 8.2).
    config = GemvConfig(lanes=32)
    cols = config.beat_bits // 16 * group * 4
    lay = repack.stream_layout(BCQ, 8, cols, config, group, planes, offset)
    assert lay.bytes * 8 == 8 * cols * (planes + 16 * (planes + offset) / group)
    if (planes, group) == (2, 128):
        assert lay.bytes * 8 / (8 * cols) == 2.25


def test_bcq_repack_hand_checked_lanes8():
    # lanes 8: B = 32 bits, 2 slots per scale beat, chunk = 2 groups = 64 columns.
    # K = 96, G = 32, q = 2, offset: a whole chunk (2 groups) then a short one.
    config = GemvConfig(lanes=8, word_bits=64)
    rng = np.random.default_rng(4)
    bits, alpha, off = random_bcq(rng, 2, 1, 96, 32, True)
    w = quant.QuantizedWeights.from_bcq(bits, alpha, 32, off)
    words = repack.repack_weights(w, config).reshape(-1).view("<u4").tolist()

    def plane(p, c0):
        return sum(int(bits[p, 0, c0 + i]) << i for i in range(32))

    a, o = alpha[:, 0].astype(int), off[0].astype(int)
    expect = [a[0, 0] | a[0, 1] << 16, a[1, 0] | a[1, 1] << 16, o[0] | o[1] << 16,
              plane(0, 0), plane(1, 0), plane(0, 32), plane(1, 32),
              a[0, 2], a[1, 2], o[2], plane(0, 64), plane(1, 64)]
    assert words == expect
    assert repack.stream_layout(BCQ, 1, 96, config, 32, 2, True).beats == 12


def test_bcq_repack_short_tile_lanes32():
    # K = 96 at 32 lanes (B = 128): one short chunk, one tile, bits 96..127 zero.
    config = GemvConfig(lanes=32)
    rng = np.random.default_rng(6)
    bits, alpha, _ = random_bcq(rng, 1, 2, 96, 32, False)
    w = quant.QuantizedWeights.from_bcq(bits, alpha, 32)
    stream = repack.repack_weights(w, config).reshape(2, 2, 16)    # 2 beats per row
    for r in range(2):
        assert stream[r, 0, :6].view("<u2").tolist() == alpha[0, r].tolist()
        assert not stream[r, 0, 6:].any()
        assert np.array_equal(np.unpackbits(stream[r, 1], bitorder="little")[:96], bits[0, r])
        assert not stream[r, 1, 12:].any()


def test_bcq_unpack_rejects_nonzero_padding():
    config = GemvConfig(lanes=32)
    rng = np.random.default_rng(7)
    bits, alpha, off = random_bcq(rng, 2, 1, 96, 32, True)
    w = quant.QuantizedWeights.from_bcq(bits, alpha, 32, off)
    good = repack.repack_weights(w, config).reshape(-1)
    # beats: alpha p0, alpha p1, offset, plane p0, plane p1 (16 bytes each)
    for pos, what in ((6, "unused scale slot"), (16 + 15, "unused scale slot"),
                      (32 + 7, "unused offset slot"), (48 + 12, "past the row's end"),
                      (64 + 15, "past the row's end")):
        bad = good.copy()
        bad[pos] = 1
        with pytest.raises(ValueError, match=what):
            repack.unpack_weights(bad, BCQ, 1, 96, config, 32, 2, True)
    narrow = GemvConfig(lanes=8, word_bits=64)   # 12 beats of 4 bytes in 6 words: no pad
    words = repack.repack_weights(quant.QuantizedWeights.from_bcq(
        bits[:1], alpha[:1], 32), narrow)
    assert words.size == 4 * repack.stream_layout(BCQ, 1, 96, narrow, 32, 1).beats + 4
    bad = words.reshape(-1).copy()
    bad[-1] = 1
    with pytest.raises(ValueError, match="padding after the last beat"):
        repack.unpack_weights(bad, BCQ, 1, 96, narrow, 32, 1)
    with pytest.raises(ValueError, match="bytes"):
        repack.unpack_weights(good, BCQ, 1, 96, config, 32, 2, False)


def test_bcq_errors():
    z = np.zeros
    a2 = np.full((2, 1, 2), 0x3C00, np.uint16)
    with pytest.raises(ValueError, match="BCQ bits have 5 planes: .*1 to 4 .*planes=1..4"):
        quant.QuantizedWeights.from_bcq(z((5, 1, 64), np.uint8), z((5, 1, 2), np.uint16), 32)
    with pytest.raises(ValueError, match="BCQ bits have 0 planes"):
        quant.QuantizedWeights.from_bcq(z((0, 1, 64), np.uint8), z((0, 1, 2), np.uint16), 32)
    with pytest.raises(ValueError, match=r"shape \(1, 64\): pass \[planes, rows, cols\]"):
        quant.QuantizedWeights.from_bcq(z((1, 64), np.uint8), a2, 32)
    with pytest.raises(ValueError, match="group = 16: BCQ needs a group size of 32, 64 or 128"):
        quant.QuantizedWeights.from_bcq(z((2, 1, 64), np.uint8), a2, 16)
    with pytest.raises(ValueError, match="cols = 64.*multiple of 128"):
        quant.QuantizedWeights.from_bcq(z((2, 1, 64), np.uint8), a2, 128)
    bad = a2.copy()
    bad[1, 0, 1] = 0xFC00
    with pytest.raises(ValueError, match=r"BCQ alpha_bits\[1, 0, 1\] = 0xfc00 is not finite"
                                         r".*requantize or rescale"):
        quant.QuantizedWeights.from_bcq(z((2, 1, 64), np.uint8), bad, 32)
    assert quant.QuantizedWeights.from_bcq(z((2, 1, 64), np.uint8), bad, 32,
                                           allow_nonfinite=True).alpha_bits[1, 0, 1] == 0xFC00
    with pytest.raises(ValueError, match=r"BCQ offset_bits\[0, 0\] = 0x7e00 is not finite"):
        quant.QuantizedWeights.from_bcq(z((2, 1, 64), np.uint8), a2, 32,
                                        np.array([[0x7E00, 0]], np.uint16))
    two = z((2, 1, 64), np.uint8)
    two[1, 0, 9] = 2
    with pytest.raises(ValueError, match=r"BCQ bits\[1, 0, 9\] = 2: .*0 \(-1\) or 1 \(\+1\)"):
        quant.QuantizedWeights.from_bcq(two, a2, 32)
    with pytest.raises(ValueError, match="dtype float64: plane bits must be integers"):
        quant.QuantizedWeights.from_bcq(z((2, 1, 64)), a2, 32)
    with pytest.raises(ValueError, match=r"alpha_bits has shape \(2, 1, 1\).*\[planes, 1, 2\]"):
        quant.QuantizedWeights.from_bcq(z((2, 1, 64), np.uint8), a2[:, :, :1], 32)
    with pytest.raises(ValueError, match=r"alpha_bits has 5 planes: .*1 to 4"):
        quant.QuantizedWeights(BCQ, 1, 64, 32, z((1, 64), np.int16), z((1, 2), np.uint16),
                               z((1, 2), np.int16), z((1, 2), np.uint16),
                               z((5, 1, 2), np.uint16))
    with pytest.raises(ValueError, match=r"offset_bits has shape \(1, 1\)"):
        quant.QuantizedWeights.from_bcq(z((2, 1, 64), np.uint8), a2, 32,
                                        z((1, 1), np.uint16))
    with pytest.raises(ValueError, match="BCQ weight codes.*2-plane code"):
        quant.QuantizedWeights(BCQ, 1, 64, 32, np.full((1, 64), 4, np.int16),
                               z((1, 2), np.uint16), z((1, 2), np.int16), z((1, 2), np.uint16),
                               a2)
    with pytest.raises(ValueError, match="BCQ weights need alpha_bits"):
        quant.QuantizedWeights(BCQ, 1, 64, 32, z((1, 64), np.int16), z((1, 2), np.uint16),
                               z((1, 2), np.int16), z((1, 2), np.uint16))
    with pytest.raises(ValueError, match="INT4 weights have no plane scales"):
        quant.QuantizedWeights("int4", 1, 64, 32, z((1, 64), np.int16), z((1, 2), np.uint16),
                               z((1, 2), np.int16), z((1, 2), np.uint16), a2)
    with pytest.raises(ValueError, match="planes = None: BCQ needs 1 to 4 binary planes"):
        quant.quantize_weights(z((1, 128)), "bcq", 128)
    with pytest.raises(ValueError, match="planes = 5"):
        quant.quantize_weights(z((1, 128)), "bcq", 128, planes=5)
    with pytest.raises(ValueError, match="planes = None: a BCQ stream needs the plane count"):
        repack.stream_layout(BCQ, 1, 64, GemvConfig(), 32)
    with pytest.raises(ValueError, match="no binary planes"):
        _ = quant.QuantizedWeights.from_f16(z((1, 32), np.uint16)).plane_bits
    with pytest.raises(ValueError, match="no integer codes"):
        quant.QuantizedWeights.from_bcq(z((2, 1, 64), np.uint8), a2, 32).values()
