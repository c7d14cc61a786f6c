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

from pathlib import Path

import numpy as np

from lpaccel.rtl.config import GROUP_SIZES

__all__ = ["MAX_PLANES", "BCQ_VERSION", "PLANES_SUFFIX", "ALPHA_SUFFIX", "OFFSET_SUFFIX",
           "quantize_bcq", "bcq_weights",
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
    pos = np.zeros(g.shape, np.uint8)          # small counters: this loop is the hot spot
    for j in range(mids.shape[1]):
        pos += g > mids[:, j, None]
    flat = pos + (np.arange(g.shape[0]) * values.shape[1])[:, None]
    return order.ravel()[flat], ordered.ravel()[flat]


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
    return QuantizedWeights.from_bcq(plane_bits, alpha_bits, group, offset_bits)


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


# --- the GGUF container ---------------------------------------------------------------

#: Suffixes of the GGUF tensors that hold BCQ tensor ``NAME``.
PLANES_SUFFIX, ALPHA_SUFFIX, OFFSET_SUFFIX = ".bcq_planes", ".bcq_alpha", ".bcq_offset"
_KEY = "lpaccel.bcq."
_VERSION_KEY = "lpaccel.bcq.version"
_FIELDS = ("planes", "group", "offset")


def _is_bcq(qw):
    return getattr(qw, "planes", 0) > 0 and getattr(qw, "plane_bits", None) is not None


def write_bcq_gguf(path, tensors, extra=None, arch="lpaccel"):
    """Write BCQ tensors (and other tensors) to a GGUF file.

    For every BCQ tensor ``NAME`` (``docs/bcq.md`` has the layout byte for
    byte): ``NAME.bcq_planes`` (``I8 [q, R, K/8]``, bit ``i`` of byte ``j`` is
    column ``8 j + i``, 1 = +1), ``NAME.bcq_alpha`` (``F16 [q, R, K/G]``),
    ``NAME.bcq_offset`` (``F16 [R, K/G]``, only with an offset) and the keys
    ``lpaccel.bcq.NAME.planes``/``.group`` (uint32) and ``.offset`` (bool);
    once per file ``lpaccel.bcq.version`` = 1. Shapes are numpy order; GGUF
    stores the dimensions reversed (``ne[0]`` the fastest).

    Parameters
    ----------
    path : str or pathlib.Path
    tensors : dict
        ``{name: QuantizedWeights}`` of format BCQ.
    extra : dict, optional
        Other tensors, written as they are: ``{name: numpy.ndarray}`` (F32,
        F16, I8 ... by dtype), or ``{name: (bytes_array, ggml_type)}`` for
        GGUF block data (``uint8 [rows, row_bytes]``, e.g. from
        ``gguf.quants.quantize``), e.g. a model's norms and embeddings.
    arch : str
        ``general.architecture``.

    Raises
    ------
    ValueError
        On a tensor that is not BCQ, or a name used twice.
    """
    import gguf
    extra = dict(extra or {})
    names = set()
    for name, qw in tensors.items():
        if not _is_bcq(qw):
            kind = getattr(getattr(qw, "fmt", None), "name", type(qw).__name__)
            raise ValueError(f"tensor {name} is {kind}, not "
                             f"BCQ: write_bcq_gguf() stores BCQ tensors (quantize_bcq()); "
                             f"pass other arrays in extra")
        names |= {name + s for s in (PLANES_SUFFIX, ALPHA_SUFFIX, OFFSET_SUFFIX)}
    clash = sorted(names & set(extra))
    if clash:
        raise ValueError(f"extra tensor {clash[0]} has the name of a BCQ part; rename it")
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_uint32(_VERSION_KEY, BCQ_VERSION)
    for name, qw in tensors.items():
        writer.add_uint32(f"{_KEY}{name}.planes", int(qw.planes))
        writer.add_uint32(f"{_KEY}{name}.group", int(qw.group))
        writer.add_bool(f"{_KEY}{name}.offset", bool(qw.offset))
        packed = np.packbits(np.asarray(qw.plane_bits, np.uint8), axis=-1, bitorder="little")
        writer.add_tensor(name + PLANES_SUFFIX, packed.view(np.int8))
        writer.add_tensor(name + ALPHA_SUFFIX,
                          np.ascontiguousarray(qw.alpha_bits, np.uint16).view(np.float16))
        if qw.offset:
            writer.add_tensor(name + OFFSET_SUFFIX,
                              np.ascontiguousarray(qw.offset_bits, np.uint16).view(np.float16))
    for name, array in extra.items():
        if isinstance(array, tuple):
            data, kind = array
            data = np.ascontiguousarray(data, np.uint8)
            writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=kind)
        else:
            writer.add_tensor(name, np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def _reader(reader_or_path, where=None):
    import gguf
    if isinstance(reader_or_path, gguf.GGUFReader):
        return reader_or_path, where or "file"
    path = Path(reader_or_path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file; pass the path of a .gguf file")
    try:
        return gguf.GGUFReader(path), str(path)
    except Exception as error:      # noqa: BLE001 - the reader raises many kinds on bad files
        raise ValueError(f"{path} is not a readable GGUF file ({type(error).__name__}: "
                         f"{error}); it may be truncated: write it again") from None


def bcq_tensor_names(reader):
    """Names of the BCQ tensors a GGUF file declares (by keys or by part tensors), sorted.

    Parameters
    ----------
    reader : gguf.GGUFReader
    """
    names = set()
    for key in reader.fields:
        if key.startswith(_KEY) and key != _VERSION_KEY:
            stem, _, field = key[len(_KEY):].rpartition(".")
            if stem and field in _FIELDS:
                names.add(stem)
    for t in reader.tensors:
        for suffix in (PLANES_SUFFIX, ALPHA_SUFFIX, OFFSET_SUFFIX):
            if t.name.endswith(suffix):
                names.add(t.name[:-len(suffix)])
    return sorted(names)


def _field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def _meta(reader, name, field, where):
    key = f"{_KEY}{name}.{field}"
    value = _field(reader, key)
    fix = "write the file with lpaccel.bcq.write_bcq_gguf (or lpaccel quantize-bcq)"
    if value is None:
        raise ValueError(f"{where}: BCQ tensor {name} has no key {key}; {fix}")
    if field == "offset":
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{where}: BCQ tensor {name}: {key} = {value!r} must be a bool; "
                             f"{fix}")
        return bool(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{where}: BCQ tensor {name}: {key} = {value!r} must be an integer; "
                         f"{fix}")
    allowed = range(1, MAX_PLANES + 1) if field == "planes" else GROUP_SIZES
    if int(value) not in allowed:
        raise ValueError(f"{where}: BCQ tensor {name}: {key} = {value} is not one of "
                         f"{', '.join(map(str, allowed))}; {fix}")
    return int(value)


def _part(tensors, name, suffix, kind, shape, where):
    import gguf
    t = tensors.get(name + suffix)
    fix = "write the file with lpaccel.bcq.write_bcq_gguf (or lpaccel quantize-bcq)"
    if t is None:
        raise ValueError(f"{where}: BCQ tensor {name} has no tensor {name}{suffix}; {fix}")
    kind = gguf.GGMLQuantizationType[kind]
    data = np.asarray(t.data)
    if t.tensor_type != kind or data.shape != shape:
        ttype = getattr(t.tensor_type, "name", t.tensor_type)
        raise ValueError(f"{where}: tensor {name}{suffix} is {ttype} {list(data.shape)} but "
                         f"BCQ tensor {name} needs {kind.name} {list(shape)} (numpy order); "
                         f"{fix}")
    return data


def read_bcq_tensors(reader_or_path, where=None):
    """The BCQ tensors of a GGUF file.

    Parameters
    ----------
    reader_or_path : gguf.GGUFReader or str or pathlib.Path
    where : str, optional
        What to call the file in messages (default its path, or "file").

    Returns
    -------
    dict
        ``{name: QuantizedWeights}`` (format BCQ), in name order; empty when
        the file has none.

    Raises
    ------
    ValueError
        Naming the tensor, the key and the fix, on: a version other than 1
        or none; a missing ``planes``/``group``/``offset`` key or a bad value;
        a missing part tensor (``.bcq_planes``, ``.bcq_alpha``, and
        ``.bcq_offset`` when ``offset`` is true) or one with the wrong type or
        shape; an offset tensor without the ``offset`` key set; non-finite
        scales.
    """
    reader, where = _reader(reader_or_path, where)
    names = bcq_tensor_names(reader)
    version = _field(reader, _VERSION_KEY)
    if not names:
        return {}
    if version is None:
        raise ValueError(f"{where} has BCQ tensors ({', '.join(names[:4])}) but no "
                         f"{_VERSION_KEY} key; write the file with "
                         f"lpaccel.bcq.write_bcq_gguf")
    if isinstance(version, (bool, np.bool_)) or version != BCQ_VERSION:
        raise ValueError(f"{where}: {_VERSION_KEY} = {version!r}, but this lpaccel reads "
                         f"version {BCQ_VERSION}; convert the file with a matching lpaccel or "
                         f"quantize the model again (lpaccel quantize-bcq)")
    tensors = {t.name: t for t in reader.tensors}
    out = {}
    for name in names:
        planes, group, offset = (_meta(reader, name, f, where) for f in _FIELDS)
        packed = tensors.get(name + PLANES_SUFFIX)
        if packed is None:
            _part(tensors, name, PLANES_SUFFIX, "I8", (), where)     # raises: missing
        pshape = np.asarray(packed.data).shape
        if len(pshape) != 3 or pshape[0] != planes:
            raise ValueError(f"{where}: tensor {name}{PLANES_SUFFIX} has shape {list(pshape)} "
                             f"but BCQ tensor {name} ({_KEY}{name}.planes = {planes}) needs "
                             f"I8 [{planes}, rows, cols / 8] (numpy order); write the file "
                             f"with lpaccel.bcq.write_bcq_gguf")
        rows, cols = int(pshape[1]), 8 * int(pshape[2])
        if rows < 1 or cols < 1 or cols % group:
            raise ValueError(f"{where}: BCQ tensor {name} has {cols} columns, not a positive "
                             f"multiple of its group {group} ({_KEY}{name}.group); write the "
                             f"file with lpaccel.bcq.write_bcq_gguf")
        packed = _part(tensors, name, PLANES_SUFFIX, "I8", (planes, rows, cols // 8), where)
        alpha = _part(tensors, name, ALPHA_SUFFIX, "F16", (planes, rows, cols // group), where)
        if offset:
            off = _part(tensors, name, OFFSET_SUFFIX, "F16", (rows, cols // group), where)
            off = np.ascontiguousarray(off).view(np.uint16)
        elif name + OFFSET_SUFFIX in tensors:
            raise ValueError(f"{where}: tensor {name}{OFFSET_SUFFIX} exists but "
                             f"{_KEY}{name}.offset is false; set the key to true or drop the "
                             f"tensor (write the file with lpaccel.bcq.write_bcq_gguf)")
        else:
            off = None
        bits = np.unpackbits(np.ascontiguousarray(packed).view(np.uint8), axis=-1,
                             bitorder="little")
        try:
            out[name] = bcq_weights(bits, np.ascontiguousarray(alpha).view(np.uint16), group,
                                    off)
        except ValueError as error:
            raise ValueError(f"{where}: BCQ tensor {name}: {error}") from None
    return out
