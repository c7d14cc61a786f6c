"""Binary-coding quantization (BCQ) of weight matrices, and its GGUF container.

A BCQ weight is a sum of ``q`` binary planes times float16 scales, one scale
per plane and group of ``G`` weights along the row, plus an optional float16
offset per group (``docs/arithmetic.md`` section 8)::

    w[r, i] = sum_p alpha[p, r, g] * (2 b[p, r, i] - 1)  (+ offset[r, g]),   g = i // G

:func:`quantize_bcq` finds planes and scales for a float matrix: a greedy
initialisation (one plane after the other fits the residual's signs) refined
by alternating least squares (scales for fixed signs, then the best signs
for fixed scales), then the scales are rounded to float16 and the signs
chosen once more for the rounded scales, so the stored tensor is the best
sign pattern for exactly the scales the hardware sees.

:func:`write_bcq_gguf` and :func:`read_bcq_tensors` keep BCQ tensors in a
GGUF file as three ordinary GGUF tensors per matrix (packed plane bits as
``I8``, scales and offsets as ``F16``) plus ``lpaccel.bcq.*`` metadata.
``docs/bcq.md`` describes both, byte for byte, and has the accuracy table.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lpaccel.rtl.config import GROUP_SIZES

__all__ = ["MAX_PLANES", "BCQ_VERSION", "quantize_bcq", "bcq_weights",
           "write_bcq_gguf", "read_bcq_tensors", "bcq_tensor_names", "bits_per_weight"]

#: Planes a BCQ tensor may have (the engine's ``JOB_FORMAT.PLANES``).
MAX_PLANES = 4
#: ``lpaccel.bcq.version`` this module writes and reads.
BCQ_VERSION = 1
#: Largest finite float16.
_F16_MAX = 65504.0


# --- the quantizer --------------------------------------------------------------------

def _check_planes(planes):
    if isinstance(planes, bool) or not isinstance(planes, (int, np.integer)) \
            or not 1 <= planes <= MAX_PLANES:
        raise ValueError(f"planes = {planes!r}: BCQ has 1 to {MAX_PLANES} binary planes; "
                         f"pass planes=1, 2, 3 or 4")
    return int(planes)


def _check_bcq_group(group):
    if isinstance(group, bool) or group not in GROUP_SIZES:
        raise ValueError(f"group = {group!r}: BCQ needs a group size of "
                         f"{', '.join(map(str, GROUP_SIZES))} elements; pass one of them")
    return int(group)


def _candidates(planes):
    """``float64 [2^q, q]``: the sign vector of every bit pattern (bit p of k: plane p, 1 = +1)."""
    k = np.arange(1 << planes)[:, None]
    return (2 * ((k >> np.arange(planes)) & 1) - 1).astype(np.float64)


def _best_signs(g, alpha, offset, cand):
    """For each weight, the bit pattern whose value is nearest (exhaustive over ``2^q``).

    ``g`` is ``[N, G]``, ``alpha`` ``[N, q]``, ``offset`` ``[N]``; returns the
    pattern indices ``int [N, G]`` and the values they stand for ``[N, G]``.
    The ``2^q`` values of a group are sorted and a weight's nearest one is
    found by counting the midpoints below it (a weight exactly between two
    values takes the lower one: both are equally good).
    """
    values = alpha @ cand.T + offset[:, None]                     # [N, 2^q]
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    mids = (ordered[:, 1:] + ordered[:, :-1]) / 2
    pos = np.zeros(g.shape, np.int64)
    for j in range(mids.shape[1]):
        pos += g > mids[:, j, None]
    return np.take_along_axis(order, pos, axis=1), np.take_along_axis(ordered, pos, axis=1)


def _least_squares(g, idx, cand, with_offset):
    """Scales (and offset) minimizing each group's squared error for fixed signs.

    The signs of a weight are one of the ``2^q`` patterns (``idx``), so the
    normal equations need only how often each pattern occurs in the group and
    the sum of the weights that have it. Singular systems (planes equal or
    opposite, constant groups) take the minimum-norm least-squares solution,
    which fits just as well.
    """
    n, size = g.shape
    nk, q = cand.shape
    a = np.concatenate([cand, np.ones((nk, 1))], axis=1) if with_offset else cand
    flat = (np.arange(n)[:, None] * nk + idx).ravel()
    counts = np.bincount(flat, minlength=n * nk).reshape(n, nk).astype(np.float64)
    sums = np.bincount(flat, weights=g.ravel(), minlength=n * nk).reshape(n, nk)
    k = a.shape[1]
    m = (counts @ (a[:, :, None] * a[:, None, :]).reshape(nk, k * k)).reshape(n, k, k)
    v = sums @ a
    # solve() where the normal matrix is regular (its entries are integers, so a
    # singular one is singular to rounding), pinv() for the rest.
    scale = np.trace(m, axis1=1, axis2=2) / k
    regular = np.abs(np.linalg.det(m)) > 1e-6 * np.maximum(scale, 1.0) ** k
    x = np.empty((n, k))
    x[regular] = np.linalg.solve(m[regular], v[regular][..., None])[..., 0]
    if not regular.all():
        x[~regular] = (np.linalg.pinv(m[~regular]) @ v[~regular][..., None])[..., 0]
    if with_offset:
        return x[:, :q], x[:, q]
    return x, np.zeros(n)


def _greedy_start(g, planes, with_offset):
    """Greedy start: each plane takes the residual's signs and its mean magnitude."""
    n = g.shape[0]
    off = g.mean(axis=1) if with_offset else np.zeros(n)
    r = g - off[:, None]
    alpha = np.empty((n, planes))
    for p in range(planes):
        sign = np.where(r >= 0, 1.0, -1.0)
        alpha[:, p] = np.abs(r).mean(axis=1)
        r = r - alpha[:, p, None] * sign
    return alpha, off


def _grid_start(g, planes, with_offset):
    """The uniform grid of ``2^q`` levels as planes: ``alpha_p = s 2^(p-1)``.

    With an offset the grid spans the group's [min, max] (``o`` the midpoint),
    else it is symmetric around 0 and spans ``max |w|``.
    """
    levels = (1 << planes) - 1
    if with_offset:
        lo, hi = g.min(axis=1), g.max(axis=1)
        s, off = (hi - lo) / levels, (hi + lo) / 2
    else:
        s, off = 2 * np.abs(g).max(axis=1) / levels, np.zeros(g.shape[0])
    return s[:, None] * 2.0 ** (np.arange(planes) - 1), off


def _alternate(g, alpha, off, with_offset, cand, iterations):
    """Signs for the start, then up to ``iterations`` rounds of scales / signs.

    Returns the scales, offsets and the squared error of every group.
    """
    idx, values = _best_signs(g, alpha, off, cand)
    err = np.sum((g - values) ** 2, axis=1)
    for _ in range(iterations):
        new_alpha, new_off = _least_squares(g, idx, cand, with_offset)
        new_off = new_off if with_offset else off
        new_idx, values = _best_signs(g, new_alpha, new_off, cand)
        new_err = np.sum((g - values) ** 2, axis=1)
        # Both steps are optimal for what they fix, so the error never grows; keep
        # the old fit where rounding says otherwise.
        better = new_err <= err
        alpha = np.where(better[:, None], new_alpha, alpha)
        off = np.where(better, new_off, off)
        idx = np.where(better[:, None], new_idx, idx)
        done = new_err.sum() >= err.sum() * (1 - 1e-12)
        err = np.minimum(err, new_err)
        if done:
            break
    return alpha, off, err


@dataclass(frozen=True)
class _BcqFields:
    """Stand-in for :class:`QuantizedWeights` until ``QuantizedWeights.from_bcq`` exists."""

    plane_bits: np.ndarray
    alpha_bits: np.ndarray
    group: int
    offset_bits: np.ndarray = None

    @property
    def planes(self):
        return self.plane_bits.shape[0]

    @property
    def rows(self):
        return self.plane_bits.shape[1]

    @property
    def cols(self):
        return self.plane_bits.shape[2]

    @property
    def offset(self):
        return self.offset_bits is not None

    def dequantize_f64(self):
        return _dequantize(self.plane_bits, self.alpha_bits, self.group, self.offset_bits)

    def dequantize(self):
        return self.dequantize_f64().astype(np.float32)


def _dequantize(plane_bits, alpha_bits, group, offset_bits=None):
    """Exact float64 weights of BCQ fields (every term is a float16 times +-1)."""
    alpha = np.repeat(alpha_bits.view(np.float16).astype(np.float64), group, axis=-1)
    w = np.sum(alpha * (2.0 * plane_bits - 1.0), axis=0)
    if offset_bits is not None:
        w = w + np.repeat(offset_bits.view(np.float16).astype(np.float64), group, axis=-1)
    return w


def bcq_weights(plane_bits, alpha_bits, group, offset_bits=None):
    """BCQ fields as :class:`lpaccel.quant.QuantizedWeights` (``from_bcq``).

    Parameters
    ----------
    plane_bits : numpy.ndarray
        ``uint8 [q, R, K]`` of 0/1 (1 = +1).
    alpha_bits : numpy.ndarray
        ``uint16 [q, R, K / group]`` float16 bits of the plane scales.
    group : int
    offset_bits : numpy.ndarray, optional
        ``uint16 [R, K / group]`` float16 bits of the group offsets.
    """
    from lpaccel.quant import QuantizedWeights
    if hasattr(QuantizedWeights, "from_bcq"):
        return QuantizedWeights.from_bcq(plane_bits, alpha_bits, group, offset_bits)
    return _BcqFields(np.ascontiguousarray(plane_bits, np.uint8),
                      np.ascontiguousarray(alpha_bits, np.uint16), int(group),
                      None if offset_bits is None
                      else np.ascontiguousarray(offset_bits, np.uint16))


def quantize_bcq(w, planes, group=128, offset=False, iterations=15):
    """Quantize a float matrix to BCQ: greedy start, alternating least squares.

    Per group of ``group`` weights along a row (all groups at once, in
    float64):

    1. greedy: residual ``r = w - o`` (``o`` the group mean with ``offset``,
       else 0); for each plane ``b = sign(r)`` (0 counts as +1),
       ``alpha = mean |r|``, ``r -= alpha b``;
    2. up to ``iterations`` rounds of: scales (and offset) by least squares
       for the current signs; then for every weight the best of the ``2^q``
       sign patterns for those scales. Both steps never increase the error;
       the loop stops when a round improves it by less than 1e-12 relative;
    3. scales made positive (a negative scale flips its plane's signs), planes
       sorted by decreasing scale within the group, scales and offset rounded
       to float16, and the best sign pattern chosen once more for the
       rounded values.

    Parameters
    ----------
    w : array_like
        ``[R, K]`` finite floats, ``K`` a multiple of ``group``.
    planes : int
        ``q``, 1 to 4.
    group : int
        32, 64 or 128.
    offset : bool
        Fit a float16 offset per group as well.
    iterations : int
        Most alternating rounds (0: greedy only, still with step 3).

    Returns
    -------
    QuantizedWeights
        Format ``BCQ`` (through ``QuantizedWeights.from_bcq``).

    Raises
    ------
    ValueError
        On a matrix that is not 2-D, non-finite weights, ``K`` not a multiple
        of the group, ``planes`` outside 1..4, a bad group or iteration count,
        or weights so large that a scale overflows float16. Each message
        names the fix.
    """
    planes = _check_planes(planes)
    group = _check_bcq_group(group)
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) \
            or iterations < 0:
        raise ValueError(f"iterations = {iterations!r}: pass a count of alternating rounds "
                         f">= 0 (0 keeps the greedy solution)")
    w = np.asarray(w)
    if w.ndim != 2 or w.dtype.kind not in "fiu":
        raise ValueError(f"weights have shape {w.shape} and dtype {w.dtype}: BCQ quantizes a "
                         f"2-D [rows, cols] float matrix; reshape or convert it")
    rows, cols = w.shape
    if rows < 1 or cols < 1 or cols % group:
        raise ValueError(f"weights have {cols} columns: K must be a positive multiple of the "
                         f"group size {group}; pad the rows with zero columns or choose a "
                         f"smaller group")
    w = w.astype(np.float64)
    if not np.isfinite(w).all():
        r, c = np.argwhere(~np.isfinite(w))[0]
        raise ValueError(f"weights[{r}, {c}] = {w[r, c]}: weights must be finite; fix the "
                         f"source tensor")
    ng = cols // group
    g = w.reshape(rows * ng, group)
    n = g.shape[0]
    cand = _candidates(planes)

    # 1. Two starts: greedy, and the uniform q-bit grid written as planes.
    best = None
    for alpha, off in (_greedy_start(g, planes, offset), _grid_start(g, planes, offset)):
        # 2. Alternating least squares from each; keep each group's better fit.
        alpha, off, err = _alternate(g, alpha, off, offset, cand, iterations)
        if best is None:
            best = alpha, off, err
        else:
            better = err < best[2]
            best = (np.where(better[:, None], alpha, best[0]),
                    np.where(better, off, best[1]), np.minimum(err, best[2]))
    alpha, off, _ = best

    # 3. Canonical form, float16 scales, final sign pass for the rounded scales.
    alpha = np.abs(alpha)                      # the sign search absorbs any flip below
    alpha = -np.sort(-alpha, axis=1)
    big = float(max(np.abs(alpha).max(initial=0.0), np.abs(off).max(initial=0.0)))
    if big > _F16_MAX:
        raise ValueError(f"a BCQ scale or offset is {big:g}, beyond float16 ({_F16_MAX:g}): "
                         f"the weights are too large (max |w| = {np.abs(w).max():g}); scale "
                         f"the matrix down")
    alpha16 = alpha.astype(np.float16)
    off16 = off.astype(np.float16) if offset else np.zeros(n, np.float16)
    idx, _ = _best_signs(g, alpha16.astype(np.float64), off16.astype(np.float64), cand)
    bits = ((idx[None] >> np.arange(planes)[:, None, None]) & 1).astype(np.uint8)  # [q, N, G]
    plane_bits = bits.reshape(planes, rows, cols)
    alpha_bits = alpha16.view(np.uint16).T.reshape(planes, rows, ng)
    offset_bits = off16.view(np.uint16).reshape(rows, ng) if offset else None
    return bcq_weights(plane_bits, alpha_bits, group, offset_bits)


def bits_per_weight(planes, group, offset=False):
    """Storage of a BCQ weight with whole chunks: ``q + 16 (q + offset) / G``."""
    return planes + 16 * (planes + int(bool(offset))) / group
