"""Numpy golden model of the GEMV engine: the hardware arithmetic, exactly.

This module implements ``docs/arithmetic.md`` sections 2 to 5, 7 and 8.1
exactly: the decode of the float16 scales (section 2), the exact integer dot
product and accumulator (section 3), the exact block sums ``W`` of the wide
formats F16 and BCQ with one floor per block (sections 7 and 8.1), and the
round-to-nearest-even conversion of the accumulator to float32 (section 4). The RTL must agree with
:func:`gemv_golden` bit for bit. The number formats themselves (BFP16
activations, quantized weights) are the host library's
(:mod:`lpaccel.quant`), since a driver needs them too.

:func:`gemv_reference_f64` is the float64 GEMV of the dequantized weights the
error bound of section 5 is measured against (:func:`rel_rms_error`).

Every integer step is exact: block dot products and their products with the
scale mantissa fit ``int64``; the shifted terms (up to ``2**77``) and their sum
are formed with Python integers, grouped by shift so that the work stays in
numpy for all but a handful of operations per row.
"""

import math

import numpy as np

from lpaccel.quant import QuantizedWeights, _check_activation_blocks, quantize_activations
from lpaccel.rtl.config import (
    ACC_BITS,
    ACC_FRAC,
    BLOCK,
    SH_MAX,
    WIDE_SH,
    WIDE_SH_MAX,
    WeightFormat,
)

__all__ = [
    "SH_MAX",
    "decode_fp16_scale",
    "gemv_golden", "gemv_golden_quantized", "acc_to_fp32",
    "gemv_reference_f64", "rel_rms_error",
]

#: Significand bits of float32, hidden bit included.
_FP32_MANT_BITS = 24


def decode_fp16_scale(bits):
    """Decode float16 bits into ``(s, md, ed)`` with ``|d| = md * 2**ed``.

    The formula of ``docs/arithmetic.md`` section 2, without special cases:
    ``s = h >> 15``, ``E = (h >> 10) & 31``,
    ``md = (h & 1023) + (1024 if E else 0)``, ``ed = max(E, 1) - 25``.
    Exponent field 31 (inf/NaN) decodes as a finite number like the hardware.

    Parameters
    ----------
    bits : int or array_like of int
        Raw float16 bits, each in ``[0, 65535]``.

    Returns
    -------
    s, md, ed : numpy.ndarray of int64, or int
        Same shape as ``bits``; Python ints for a scalar input.

    Raises
    ------
    ValueError
        If a value is not an integer in ``[0, 65535]``.
    """
    h = np.asarray(bits)
    if h.dtype.kind not in "iu":
        raise ValueError(f"scale bits have dtype {h.dtype}: pass the raw float16 bits as "
                         f"integers (e.g. d.view(np.uint16))")
    if h.size and (h.min() < 0 or h.max() > 0xFFFF):
        raise ValueError("scale bits must be in [0, 65535] (16-bit float16 patterns)")
    h = h.astype(np.int64)
    s = h >> 15
    big_e = (h >> 10) & 31
    md = (h & 1023) + np.where(big_e != 0, 1024, 0)
    ed = np.maximum(big_e, 1) - 25
    if h.ndim == 0:
        return int(s), int(md), int(ed)
    return s, md, ed


# --- Dot product and accumulator (section 3) ------------------------------------------

_DOT_CHUNK_ELEMENTS = 1 << 22     # bounds the int64 temporaries to ~32 MiB


def _block_dots(v, mant):
    """``dot[r, b] = sum_i v[r, 32 b + i] * mant[32 b + i]`` exactly (int64)."""
    rows, cols = v.shape
    nb = cols // BLOCK
    m = mant.astype(np.int64).reshape(nb, BLOCK)
    dots = np.empty((rows, nb), dtype=np.int64)
    step = max(1, _DOT_CHUNK_ELEMENTS // cols)
    for r0 in range(0, rows, step):
        qc = v[r0:r0 + step].reshape(-1, nb, BLOCK).astype(np.int64)
        dots[r0:r0 + step] = (qc * m).sum(axis=-1)
    return dots


def _accumulate(p, sh):
    """Exact ``A[r] = sum_b floor(p[r, b] * 2**sh[r, b])`` as Python ints.

    ``p`` fits int64 with plenty of headroom. Terms with a negative shift are
    ``p >> -sh`` (an arithmetic shift is floor division; shifts past 63 give
    the same 0 or -1 as shift 63) and are summed in int64. Terms with a
    non-negative shift are summed per distinct shift ``s`` in int64 first
    (``|sum p| < 2**39 * K / 32 < 2**63`` for K < 2**28) and only those
    partial sums are shifted, as Python ints.
    """
    neg = sh < 0
    low = np.where(neg, p >> np.minimum(np.where(neg, -sh, 0), 63), 0).sum(axis=1)
    acc = [int(v) for v in low]
    pos = ~neg
    for s in np.unique(sh[pos]).tolist():
        part = np.where(pos & (sh == s), p, 0).sum(axis=1)
        for r in np.flatnonzero(part).tolist():
            acc[r] += int(part[r]) << s
    return acc


def _scaled_terms(x, bits, exp):
    """``p`` and ``sh`` of section 3 for integers ``x`` scaled by float16 ``bits``."""
    s, md, ed = decode_fp16_scale(bits)
    p = x * md
    p = np.where(s != 0, -p, p)
    # The hardware clamps the shift at SH_MAX; only block exponents above 1,
    # which quantize_activations never produces, can reach the clamp.
    sh = np.minimum(ed + exp[None, :].astype(np.int64) + ACC_FRAC, SH_MAX)
    return p, sh


# --- Wide block sums: F16 and BCQ (sections 7 and 8.1) --------------------------------
#
# A block sum W can reach 2**64 (BCQ: four planes and the offset), past int64.
# It is carried as two int64 halves, W = hi * 2**32 + lo with 0 <= lo < 2**32,
# and each block term floor(W * 2**sh) is formed and summed from the halves.

_LO_BITS = 32
_LO_MASK = (1 << _LO_BITS) - 1


def _split(c):
    """``(hi, lo)`` halves of int64 ``c``: ``c = hi * 2**32 + lo``, ``0 <= lo < 2**32``."""
    return c >> _LO_BITS, c & _LO_MASK


def _scaled_wide(x, bits):
    """``(-1)^s * md * x * 2^u`` (``u = max(E, 1) - 1``) as int64 halves.

    ``|md * x| < 2**31`` and ``u <= 30`` keep the product below ``2**61``.
    """
    s, md, ed = decode_fp16_scale(bits)
    c = (md * x) << (ed + WIDE_SH)
    return _split(np.where(s != 0, -c, c))


def _f16_block_sums(weights, mant):
    """Section 7: ``W[r, b] = sum_i (-1)^s md m 2^u`` as int64 halves ``[R, K/32]``."""
    rows, cols = weights.rows, weights.cols
    nb = cols // BLOCK
    m = mant.astype(np.int64).reshape(nb, BLOCK)
    hi = np.empty((rows, nb), np.int64)
    lo = np.empty((rows, nb), np.int64)
    step = max(1, _DOT_CHUNK_ELEMENTS // cols)
    for r0 in range(0, rows, step):
        bits = weights.f16_bits[r0:r0 + step].reshape(-1, nb, BLOCK)
        s, md, ed = decode_fp16_scale(bits)
        c = (md * m) << (ed + WIDE_SH)                    # |c| < 2**56
        w = np.where(s != 0, -c, c).sum(axis=-1)          # |W| < 2**61: exact in int64
        hi[r0:r0 + step], lo[r0:r0 + step] = _split(w)
    return hi, lo


def _bcq_block_sums(weights, mant):
    """Section 8.1: ``W[r, b]`` over the planes and the offset, as int64 halves."""
    per_block = weights.group // BLOCK
    msum = mant.astype(np.int64).reshape(-1, BLOCK).sum(axis=1)       # |.| < 2**20
    bits = weights.plane_bits
    hi = np.zeros((weights.rows, weights.cols // BLOCK), np.int64)
    lo = np.zeros_like(hi)
    for p in range(weights.planes):
        # sum_i (2 b - 1) m = 2 sum_i b m - msum: the LUT-GEMM lookups' result.
        dot = 2 * _block_dots(bits[p], mant) - msum[None, :]          # |dot| < 2**20
        h, low = _scaled_wide(dot, np.repeat(weights.alpha_bits[p], per_block, axis=1))
        hi += h
        lo += low
    if weights.offset:
        h, low = _scaled_wide(np.broadcast_to(msum, hi.shape),
                              np.repeat(weights.offset_bits, per_block, axis=1))
        hi += h
        lo += low
    return hi + (lo >> _LO_BITS), lo & _LO_MASK


def _accumulate_wide(hi, lo, sh):
    """Exact ``A[r] = sum_b floor((hi * 2**32 + lo) * 2**sh)`` as Python ints.

    ``0 <= lo < 2**32`` and ``|hi| <= 2**32``. For ``sh = -k < 0`` the floored
    term is again formed as halves (``k <= 32``: ``hi * 2**(32-k)`` is exact
    and only ``lo`` is floored; ``k > 32``: ``lo`` drops out of the floor and
    the term is ``hi >> (k - 32)``) and
    the halves are summed in int64 (no overflow below 2**31 blocks). Terms with
    ``sh >= 0`` are summed per distinct shift, then shifted as Python ints.
    """
    rows = hi.shape[0]
    acc = [0] * rows
    neg = sh < 0
    if neg.any():
        k = np.where(neg, -sh, 0)
        small = neg & (k <= _LO_BITS)
        ks = np.where(small, k, 0)
        t_hi = np.where(small, hi >> ks, 0)
        # k > 32: the whole term is floor(hi / 2**(k - 32)), in units, not in 2**32s.
        t_lo = np.where(small, ((hi & ((1 << ks) - 1)) << (_LO_BITS - ks)) | (lo >> ks),
                        np.where(neg, hi >> np.clip(k - _LO_BITS, 0, 63), 0))
        sum_hi, sum_lo = t_hi.sum(axis=1), t_lo.sum(axis=1)
        acc = [(int(a) << _LO_BITS) + int(b) for a, b in zip(sum_hi, sum_lo)]
    pos = ~neg
    for s in np.unique(sh[pos]).tolist():
        sel = pos & (sh == s)
        sum_hi = np.where(sel, hi, 0).sum(axis=1)
        sum_lo = np.where(sel, lo, 0).sum(axis=1)
        for r in range(rows):
            acc[r] += ((int(sum_hi[r]) << _LO_BITS) + int(sum_lo[r])) << s
    return acc


def _wide_accumulators(weights, mant, exp):
    if weights.fmt is WeightFormat.F16:
        hi, lo = _f16_block_sums(weights, mant)
    else:
        hi, lo = _bcq_block_sums(weights, mant)
    # sh = min(e + F - 24, 9) (sections 7 and 8.1): -120..9 for host activations;
    # the clamp only defines what the hardware does with exponents above 1.
    sh = np.broadcast_to(np.minimum(exp[None, :].astype(np.int64) + ACC_FRAC - WIDE_SH,
                                    WIDE_SH_MAX), hi.shape)
    return _accumulate_wide(hi, lo, sh)


def gemv_golden_quantized(weights, mant, exp):
    """GEMV on decoded weights and BFP16 activations (sections 3 and 4).

    Parameters
    ----------
    weights : QuantizedWeights
    mant : numpy.ndarray
        ``int16 [K]`` activation mantissas.
    exp : numpy.ndarray
        ``int8 [K / 32]`` activation block exponents.

    Returns
    -------
    acc : list of int
        The exact accumulator ``A`` of every row (``y = A * 2**-32``).
    y : numpy.ndarray
        ``float32 [R]``, ``acc`` rounded to nearest, ties to even.

    Raises
    ------
    ValueError
        On mismatched shapes, out-of-range values, or an accumulator that
        does not fit the 96-bit hardware register (impossible for inputs
        from :func:`quantize_activations` with ``K <= 65536``).
    """
    if not isinstance(weights, QuantizedWeights):
        raise ValueError(f"weights is a {type(weights).__name__}: pass QuantizedWeights "
                         f"(from quantize_weights or QuantizedWeights.from_gguf)")
    mant, exp = _check_activation_blocks(mant, exp)
    cols = mant.size
    if weights.cols != cols:
        raise ValueError(f"the weights have {weights.cols} columns but there are {cols} "
                         f"activations; pass a vector of length {weights.cols}")
    if weights.fmt.wide:
        acc = _wide_accumulators(weights, mant, exp)
    else:
        per_block = weights.group // BLOCK
        scale_bits = np.repeat(weights.scale_bits, per_block, axis=1)
        p, sh = _scaled_terms(_block_dots(weights.values(), mant), scale_bits, exp)
        acc = _accumulate(p, sh)
    if weights.fmt == WeightFormat.Q4_1:
        msum = mant.astype(np.int64).reshape(-1, BLOCK).sum(axis=1)       # |.| < 2**20
        pm, shm = _scaled_terms(np.broadcast_to(msum, weights.min_bits.shape),
                                weights.min_bits, exp)
        acc = [a + b for a, b in zip(acc, _accumulate(pm, shm))]
    limit = 1 << (ACC_BITS - 1)
    for r, a in enumerate(acc):
        if not -limit <= a < limit:
            raise ValueError(f"row {r}: accumulator {a} does not fit the {ACC_BITS}-bit "
                             f"register; activations must have |x| < 65536 and K <= 65536")
    return acc, acc_to_fp32(acc)


def gemv_golden(weights, x):
    """Bit-exact model of the engine: ``y = W x`` per ``docs/arithmetic.md``.

    Parameters
    ----------
    weights : QuantizedWeights
    x : numpy.ndarray
        ``float16``/``float32 [K]`` activations, finite, ``|x| < 65536``.

    Returns
    -------
    numpy.ndarray
        ``float32 [R]``, what the hardware returns.

    Raises
    ------
    ValueError
        On bad activations (see :func:`quantize_activations`) or
        ``len(x) != K``.
    """
    mant, exp = quantize_activations(x)
    return gemv_golden_quantized(weights, mant, exp)[1]


# --- Output (section 4) ---------------------------------------------------------------

def _acc_to_fp32_scalar(a):
    a = int(a)
    if a == 0:
        return np.float32(0.0)
    limit = 1 << (ACC_BITS - 1)
    if not -limit <= a < limit:
        raise ValueError(f"accumulator {a} does not fit {ACC_BITS} signed bits")
    mag = -a if a < 0 else a
    shift = mag.bit_length() - _FP32_MANT_BITS
    if shift > 0:
        kept = mag >> shift
        rem = mag - (kept << shift)
        half = 1 << (shift - 1)
        if rem > half or (rem == half and kept & 1):
            kept += 1                 # may carry to 2**24: still exact below
        mag, exp = kept, shift - ACC_FRAC
    else:
        exp = -ACC_FRAC
    # mag has at most 25 significant bits and is even when it has 25, so the
    # float64 product is exact and so is its conversion to float32 (no
    # subnormals or overflow: |A| < 2**95 means 2**-32 <= |y| < 2**63).
    value = math.ldexp(mag, exp)
    return np.float32(-value if a < 0 else value)


def acc_to_fp32(acc):
    """Round accumulator values ``A * 2**-32`` to float32, nearest, ties to even.

    Parameters
    ----------
    acc : int or iterable of int
        Exact accumulator value(s), each fitting 96 signed bits.

    Returns
    -------
    numpy.float32 or numpy.ndarray
        A scalar for an int input, else a ``float32`` array. ``A = 0`` gives
        ``+0.0``.

    Raises
    ------
    ValueError
        If a value does not fit the 96-bit accumulator.
    """
    if isinstance(acc, (int, np.integer)):
        return _acc_to_fp32_scalar(acc)
    return np.array([_acc_to_fp32_scalar(a) for a in acc], dtype=np.float32)


# --- Float64 reference (section 5) ----------------------------------------------------

def gemv_reference_f64(weights, x):
    """Float64 GEMV of the dequantized weights: ``W_deq @ float64(x)``.

    ``W_deq`` is :meth:`QuantizedWeights.dequantize_f64`, the exact value of
    every weight (for the GGUF formats it equals ``gguf.quants.dequantize``
    except where float32 rounds ``d * q + m``).

    Parameters
    ----------
    weights : QuantizedWeights
    x : array_like
        ``[K]`` activations (any float dtype; converted to float64).

    Returns
    -------
    numpy.ndarray
        ``float64 [R]``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (weights.cols,):
        raise ValueError(f"activations have shape {x.shape}: the matrix has {weights.cols} "
                         f"columns; pass a vector of length {weights.cols}")
    return weights.dequantize_f64() @ x


def rel_rms_error(y, y_ref):
    """Relative RMS error ``||y - y_ref||_2 / ||y_ref||_2``.

    Parameters
    ----------
    y, y_ref : array_like
        Same-shape vectors; compared in float64.

    Returns
    -------
    float
        ``0.0`` if both are all zero, ``inf`` if only ``y_ref`` is.
    """
    y = np.asarray(y, dtype=np.float64)
    y_ref = np.asarray(y_ref, dtype=np.float64)
    if y.shape != y_ref.shape:
        raise ValueError(f"y has shape {y.shape} but y_ref has {y_ref.shape}: compare "
                         f"results of the same GEMV")
    err = float(np.linalg.norm(y - y_ref))
    ref = float(np.linalg.norm(y_ref))
    if ref == 0.0:
        return 0.0 if err == 0.0 else math.inf
    return err / ref
