"""Quantization on the host: BFP16 activations and quantized weight matrices.

What a driver needs to turn float tensors into what the accelerator reads
(``docs/arithmetic.md``): the 16-bit block floating point activation format
(section 1) and the weight formats, GGUF ``Q4_0``/``Q4_1``/``Q8_0`` and
group-wise ``INT4``/``INT8``, with their float16 scales (section 2), the
uncompressed ``F16`` baseline (section 7) and binary-coding quantization
``BCQ`` (section 8).
:class:`QuantizedWeights` holds a quantized matrix as its codes and scale
bits, made from floats (:func:`quantize_weights`), from GGUF block bytes or
from explicit groups; :mod:`lpaccel.repack` turns it into the engine's
weight stream.

The arithmetic that the hardware applies to these numbers, and the golden
model the RTL is checked against bit for bit, live in
:mod:`lpaccel.sim.golden.gemv` (verification only).
"""

from dataclasses import dataclass

import gguf
import gguf.quants
import numpy as np

from lpaccel.rtl.config import BCQ_PLANES, BLOCK, GROUP_SIZES, WeightFormat

__all__ = [
    "ACT_LIMIT", "ACT_EXP_MIN", "ACT_MANT_MAX",
    "quantize_activations", "dequantize_activations",
    "parse_weight_format", "check_weight_bytes",
    "QuantizedWeights", "quantize_weights", "F16_MAX",
]

#: Activations must satisfy ``|x| < ACT_LIMIT`` (``docs/arithmetic.md`` section 1).
ACT_LIMIT = 65536.0
#: Shared exponent of an all-zero activation block, and the smallest exponent.
ACT_EXP_MIN = -128
#: Largest activation mantissa magnitude (the clip of section 1 step 4).
ACT_MANT_MAX = 32767
#: Largest finite float16 magnitude: ``quantize_weights(w, "f16")`` rejects larger weights.
F16_MAX = 65504.0

_GGML_TYPES = {
    WeightFormat.Q4_0: gguf.GGMLQuantizationType.Q4_0,
    WeightFormat.Q4_1: gguf.GGMLQuantizationType.Q4_1,
    WeightFormat.Q8_0: gguf.GGMLQuantizationType.Q8_0,
}



# --- Activations (section 1) ----------------------------------------------------------

def _check_activation_vector(x, name="activations"):
    x = np.asarray(x)
    if x.dtype not in (np.float16, np.float32):
        raise ValueError(f"{name} has dtype {x.dtype}: activations must be float16 or "
                         f"float32; convert with .astype(np.float32)")
    if x.ndim != 1:
        raise ValueError(f"{name} has shape {x.shape}: activations must be a 1-D vector; "
                         f"pass one vector at a time")
    if x.size == 0 or x.size % BLOCK != 0:
        raise ValueError(f"{name} has {x.size} elements: the length must be a positive "
                         f"multiple of {BLOCK}; pad the vector (and the weight columns) "
                         f"with zeros")
    x64 = x.astype(np.float64)
    bad = ~np.isfinite(x64) | (np.abs(x64) >= ACT_LIMIT)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{i}] = {x[i]}: activations must be finite and "
                         f"|x| < {int(ACT_LIMIT)}; rescale the vector")
    return x64


def quantize_activations(x):
    """Convert an activation vector to BFP16 blocks (``docs/arithmetic.md`` §1).

    Parameters
    ----------
    x : numpy.ndarray
        1-D float16 or float32 vector of ``K`` elements, ``K`` a positive
        multiple of 32. Every element must be finite with ``|x| < 65536``.

    Returns
    -------
    mant : numpy.ndarray
        ``int16 [K]``: mantissa ``m[b, i]`` of element ``32 b + i``.
    exp : numpy.ndarray
        ``int8 [K // 32]``: shared exponent ``e[b]`` of each block, so that
        ``x[32 b + i] ≈ mant[32 b + i] * 2**exp[b]``. All-zero blocks get
        ``-128`` and zero mantissas.

    Raises
    ------
    ValueError
        If ``x`` is not a 1-D float16/float32 vector, its length is not a
        positive multiple of 32, or an element is not finite or has
        ``|x| >= 65536``. The message names the first offending element.
    """
    x64 = _check_activation_vector(x, "activations")
    blocks = x64.reshape(-1, BLOCK)
    amax = np.abs(blocks).max(axis=1)
    _, big_e = np.frexp(amax)        # amax = f * 2**E, 0.5 <= f < 1 (E = 0 for amax = 0)
    exp = np.maximum(big_e.astype(np.int64) - 15, ACT_EXP_MIN)
    exp[amax == 0] = ACT_EXP_MIN
    # ldexp by an integer is exact here: |x| < 2**16 and -exp <= 128 keep the
    # scaled values inside the float64 normal range.
    scaled = np.ldexp(blocks, (-exp)[:, None].astype(np.int32))
    mant = np.clip(np.rint(scaled), -ACT_MANT_MAX, ACT_MANT_MAX)
    return mant.astype(np.int16).reshape(-1), exp.astype(np.int8)


def _check_activation_blocks(mant, exp):
    mant = np.asarray(mant)
    exp = np.asarray(exp)
    if mant.ndim != 1 or mant.size == 0 or mant.size % BLOCK != 0:
        raise ValueError(f"activation mantissas have shape {mant.shape}: they must be a "
                         f"1-D vector whose length is a positive multiple of {BLOCK}; "
                         f"use quantize_activations() to build them")
    if exp.shape != (mant.size // BLOCK,):
        raise ValueError(f"activation exponents have shape {exp.shape}: there must be one "
                         f"per 32-element block, shape ({mant.size // BLOCK},); use "
                         f"quantize_activations() to build them")
    _check_int_range(mant, -32768, 32767, "activation mantissas", "int16")
    _check_int_range(exp, -128, 127, "activation exponents", "int8")
    return mant.astype(np.int64), exp.astype(np.int64)


def _check_int_range(a, lo, hi, name, kind):
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} have dtype {a.dtype}: they must be integers ({kind})")
    if a.size and (a.min() < lo or a.max() > hi):
        i = int(np.flatnonzero((a < lo) | (a > hi))[0])
        idx = ", ".join(str(int(k)) for k in np.unravel_index(i, a.shape))
        raise ValueError(f"{name}[{idx}] = {a.reshape(-1)[i]}: values must fit {kind} "
                         f"[{lo}, {hi}]")


def dequantize_activations(mant, exp):
    """Value of BFP16 activation blocks, ``mant[32 b + i] * 2**exp[b]``.

    Parameters
    ----------
    mant : numpy.ndarray
        ``int16 [K]`` mantissas from :func:`quantize_activations`.
    exp : numpy.ndarray
        ``int8 [K // 32]`` shared block exponents.

    Returns
    -------
    numpy.ndarray
        ``float64 [K]``, exact.

    Raises
    ------
    ValueError
        If the shapes do not match or the values do not fit int16/int8.
    """
    mant, exp = _check_activation_blocks(mant, exp)
    blocks = mant.astype(np.float64).reshape(-1, BLOCK)
    return np.ldexp(blocks, exp[:, None].astype(np.int32)).reshape(-1)


# --- Weights (section 2) --------------------------------------------------------------

def parse_weight_format(fmt):
    """Return the :class:`~lpaccel.rtl.config.WeightFormat` for ``fmt``.

    Parameters
    ----------
    fmt : WeightFormat or str or gguf.GGMLQuantizationType
        A format, its name (``"q4_0"``) or the GGUF tensor type.

    Raises
    ------
    ValueError
        If the format is not supported; the message lists the supported ones.
    """
    if isinstance(fmt, gguf.GGMLQuantizationType):
        fmt = fmt.name
    return WeightFormat.parse(fmt)


def _check_shape(rows, cols, group=BLOCK):
    if not isinstance(rows, (int, np.integer)) or rows < 1:
        raise ValueError(f"rows = {rows!r}: the row count must be a positive integer")
    if not isinstance(cols, (int, np.integer)) or cols < 1 or cols % group != 0:
        raise ValueError(f"cols = {cols!r}: the column count K must be a positive multiple "
                         f"of {group} (one quantization group); pad the rows with zero "
                         f"groups")
    return int(rows), int(cols)


def _check_group(fmt, group):
    if not fmt.grouped:
        if group not in (None, BLOCK):
            raise ValueError(f"group = {group!r}: {fmt.name} has fixed 32-element blocks; "
                             f"leave the group unset")
        return BLOCK
    if group not in GROUP_SIZES:
        raise ValueError(f"group = {group!r}: {fmt.name} needs a group size of 32, 64 or "
                         f"128 elements (--group)")
    return int(group)


def check_weight_bytes(raw, fmt, rows, cols, name="raw"):
    """Validate GGUF-layout weight bytes and return them as ``uint8 [rows, row_bytes]``.

    Parameters
    ----------
    raw : bytes or numpy.ndarray
        The tensor's GGUF blocks: ``rows * cols / 32`` blocks of
        ``fmt.block_bytes`` bytes, row after row. A ``uint8`` array may be
        1-D or shaped ``(rows, row_bytes)``.
    fmt : WeightFormat or str
        ``Q4_0``, ``Q4_1`` or ``Q8_0``.
    rows, cols : int
        Matrix shape; ``cols`` a positive multiple of 32.
    name : str
        What to call ``raw`` in error messages.

    Returns
    -------
    fmt : WeightFormat
    raw : numpy.ndarray
        ``uint8 [rows, cols / 32 * fmt.block_bytes]`` (a view when possible).

    Raises
    ------
    ValueError
        On a format that is not a GGUF block format, a bad shape or a size
        mismatch.
    """
    fmt = parse_weight_format(fmt)
    if not fmt.is_gguf:
        raise ValueError(f"{name}: {fmt.name} is not a GGUF block format (GGUF formats: "
                         f"q4_0, q4_1, q8_0); build {fmt.name} weights with "
                         f"quantize_weights() or QuantizedWeights.from_groups()")
    rows, cols = _check_shape(rows, cols)
    row_bytes = cols // BLOCK * fmt.block_bytes
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = np.frombuffer(raw, dtype=np.uint8)
    raw = np.asarray(raw)
    if raw.dtype != np.uint8:
        raise ValueError(f"{name} has dtype {raw.dtype}: GGUF weight data must be uint8 "
                         f"bytes; pass the tensor's raw bytes (e.g. .view(np.uint8))")
    if raw.ndim not in (1, 2) or raw.size != rows * row_bytes or \
            (raw.ndim == 2 and raw.shape != (rows, row_bytes)):
        raise ValueError(f"{name} has shape {raw.shape} ({raw.size} bytes): a {rows}x{cols} "
                         f"{fmt.name} matrix is {rows} rows of {cols // BLOCK} blocks of "
                         f"{fmt.block_bytes} bytes, {rows * row_bytes} bytes, 1-D or shaped "
                         f"({rows}, {row_bytes}); check rows, cols and the format")
    return fmt, raw.reshape(rows, row_bytes)


def _nonfinite_halves(bits, what, fix):
    """Raise if any float16 pattern in ``bits`` has exponent field 31 (inf/NaN)."""
    bits = np.asarray(bits)
    bad = (bits.astype(np.int64) & 0x7C00) == 0x7C00
    if bad.any():
        idx = tuple(int(k) for k in np.argwhere(bad)[0])
        where = ", ".join(map(str, idx))
        raise ValueError(f"{what}[{where}] = {int(bits[idx]):#06x} is not finite (float16 "
                         f"exponent field 31, inf or NaN): {fix}")


def _half_bits(a, name):
    """float16 values or their uint16 bit patterns, as an integer array of the bits."""
    a = np.asarray(a)
    if a.dtype == np.float16:
        return a.view(np.uint16)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} has dtype {a.dtype}: pass float16 values or their raw "
                         f"bits as uint16 (e.g. x.astype(np.float16))")
    return a


@dataclass(frozen=True, eq=False)
class QuantizedWeights:
    """A quantized weight matrix, decoded into the fields the hardware uses.

    Build one with :func:`quantize_weights`, :meth:`from_gguf`,
    :meth:`from_groups`, :meth:`from_f16` or :meth:`from_bcq`; the
    constructor checks every field.

    Parameters
    ----------
    fmt : WeightFormat
    rows, cols : int
        Matrix shape ``R x K``.
    group : int
        Elements per scale: 32 for the GGUF formats and F16, 32/64/128 for
        INT4/INT8/BCQ.
    q : numpy.ndarray
        ``int16 [R, K]`` stored codes in element order: the int8 of Q8_0, the
        unsigned nibble (0..15) of Q4_0/Q4_1/INT4, the unsigned byte of INT8;
        for F16 the raw float16 bits (as their int16 two's complement, see
        :attr:`f16_bits`); for BCQ the plane code ``sum_p b[p] << p``
        (see :attr:`plane_bits`).
    scale_bits : numpy.ndarray
        ``uint16 [R, K / group]`` raw float16 bits of each scale ``d``/``s``;
        all zero for F16 and BCQ (BCQ's scales are :attr:`alpha_bits`).
    zero : numpy.ndarray
        ``int16 [R, K / group]`` zero points: 8 for Q4_0, 0 for Q8_0, Q4_1,
        F16 and BCQ, the stored ``z`` (0..15 / 0..255) for INT4/INT8.
    min_bits : numpy.ndarray
        ``uint16 [R, K / 32]`` raw float16 bits of Q4_1's block minimum ``m``;
        all zero for the other formats.
    alpha_bits : numpy.ndarray or None
        BCQ only: ``uint16 [planes, R, K / group]`` raw float16 bits of the
        plane scales ``alpha[p, g]`` (``docs/arithmetic.md`` section 8).
    offset_bits : numpy.ndarray or None
        BCQ only, optional: ``uint16 [R, K / group]`` raw float16 bits of the
        per-group offset ``o[g]``; ``None`` for a BCQ tensor without offset.

    Notes
    -----
    The constructor accepts float16 patterns with exponent field 31 (the
    hardware decodes them as finite numbers, which RTL tests exercise);
    :meth:`from_f16`, :meth:`from_bcq` and :func:`quantize_weights` reject
    them, and so does the driver.
    """

    fmt: WeightFormat
    rows: int
    cols: int
    group: int
    q: np.ndarray
    scale_bits: np.ndarray
    zero: np.ndarray
    min_bits: np.ndarray
    alpha_bits: np.ndarray = None
    offset_bits: np.ndarray = None

    def __post_init__(self):
        fmt = parse_weight_format(self.fmt)
        object.__setattr__(self, "fmt", fmt)
        group = _check_group(fmt, self.group)
        rows, cols = _check_shape(self.rows, self.cols, group)
        ng = cols // group
        for name, shape in (("q", (rows, cols)), ("scale_bits", (rows, ng)),
                            ("zero", (rows, ng)), ("min_bits", (rows, cols // BLOCK))):
            a = np.asarray(getattr(self, name))
            if a.shape != shape or a.dtype.kind not in "iu":
                raise ValueError(f"{fmt.name} weights: {name} has shape {a.shape} and dtype "
                                 f"{a.dtype}: it must be integers of shape {shape}")
        planes = 0
        if fmt is WeightFormat.BCQ:
            planes = self._check_bcq_scales(rows, ng)
        elif self.alpha_bits is not None or self.offset_bits is not None:
            raise ValueError(f"{fmt.name} weights have no plane scales or offsets: leave "
                             f"alpha_bits and offset_bits unset (they are BCQ's)")
        if fmt is WeightFormat.F16:
            # Raw float16 bits, given as uint16 or as their int16 view.
            qlo, qhi, what = -0x8000, 0xFFFF, "16-bit float16 pattern"
        elif fmt is WeightFormat.BCQ:
            qlo, qhi, what = 0, (1 << planes) - 1, f"{planes}-plane code"
        elif fmt == WeightFormat.Q8_0:
            qlo, qhi, what = -128, 127, "8-bit"
        else:
            qlo, qhi, what = 0, (1 << fmt.qbits) - 1, f"{fmt.qbits}-bit"
        _check_int_range(np.asarray(self.q), qlo, qhi, f"{fmt.name} weight codes", what)
        _check_int_range(np.asarray(self.scale_bits), 0, 0xFFFF, "scale bits", "uint16")
        _check_int_range(np.asarray(self.min_bits), 0, 0xFFFF, "minimum bits", "uint16")
        zlo, zhi = {WeightFormat.Q4_0: (8, 8), WeightFormat.INT4: (0, 15),
                    WeightFormat.INT8: (0, 255)}.get(fmt, (0, 0))
        _check_int_range(np.asarray(self.zero), zlo, zhi, f"{fmt.name} zero points",
                         f"[{zlo}, {zhi}]")
        if fmt != WeightFormat.Q4_1 and np.any(np.asarray(self.min_bits)):
            raise ValueError(f"{fmt.name} weights have no block minimum: min_bits must be 0")
        if fmt.wide and np.any(np.asarray(self.scale_bits)):
            raise ValueError(f"{fmt.name} weights have no per-group scale in scale_bits: it "
                             f"must be 0 (BCQ's scales are alpha_bits; build the weights "
                             f"with QuantizedWeights.from_{fmt.name.lower()})")
        q = np.asarray(self.q)
        if fmt is WeightFormat.F16:
            q = (q.astype(np.int64) & 0xFFFF).astype(np.uint16).view(np.int16)
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "cols", cols)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "q", np.ascontiguousarray(q, dtype=np.int16))
        object.__setattr__(self, "scale_bits", np.ascontiguousarray(self.scale_bits,
                                                                    dtype=np.uint16))
        object.__setattr__(self, "zero", np.ascontiguousarray(self.zero, dtype=np.int16))
        object.__setattr__(self, "min_bits", np.ascontiguousarray(self.min_bits,
                                                                  dtype=np.uint16))

    def _check_bcq_scales(self, rows, ng):
        alpha = self.alpha_bits
        if alpha is None:
            raise ValueError("BCQ weights need alpha_bits, the plane scales "
                             "[planes, rows, cols / group]; build them with "
                             "QuantizedWeights.from_bcq")
        alpha = _half_bits(alpha, "BCQ alpha_bits")
        if alpha.ndim != 3 or alpha.shape[1:] != (rows, ng):
            raise ValueError(f"BCQ alpha_bits has shape {alpha.shape}: it must be [planes, "
                             f"{rows}, {ng}], one float16 scale per plane, row and "
                             f"{self.group}-element group")
        planes = alpha.shape[0]
        if planes not in BCQ_PLANES:
            raise ValueError(f"BCQ alpha_bits has {planes} planes: BCQ weights have 1 to "
                             f"{BCQ_PLANES[-1]} binary planes; requantize with planes=1..4")
        _check_int_range(alpha, 0, 0xFFFF, "BCQ alpha bits", "uint16")
        object.__setattr__(self, "alpha_bits", np.ascontiguousarray(alpha, dtype=np.uint16))
        if self.offset_bits is not None:
            off = _half_bits(self.offset_bits, "BCQ offset_bits")
            if off.shape != (rows, ng):
                raise ValueError(f"BCQ offset_bits has shape {off.shape}: it must be "
                                 f"[{rows}, {ng}], one float16 offset per row and group, "
                                 f"or None for weights without offset")
            _check_int_range(off, 0, 0xFFFF, "BCQ offset bits", "uint16")
            object.__setattr__(self, "offset_bits", np.ascontiguousarray(off, dtype=np.uint16))
        return planes

    # -- properties of the wide formats ------------------------------------------------

    @property
    def planes(self):
        """BCQ's binary plane count (1..4); 0 for the other formats."""
        return self.alpha_bits.shape[0] if self.fmt is WeightFormat.BCQ else 0

    @property
    def offset(self):
        """True for BCQ weights with a per-group offset."""
        return self.offset_bits is not None

    @property
    def plane_bits(self):
        """BCQ: ``uint8 [planes, R, K]`` plane bits ``b[p, r, i]`` (1 is +1, 0 is -1)."""
        if self.fmt is not WeightFormat.BCQ:
            raise ValueError(f"{self.fmt.name} weights have no binary planes (BCQ only)")
        return np.stack([(self.q >> p) & 1 for p in range(self.planes)]).astype(np.uint8)

    @property
    def f16_bits(self):
        """F16: ``uint16 [R, K]`` raw float16 bits of every weight."""
        if self.fmt is not WeightFormat.F16:
            raise ValueError(f"{self.fmt.name} weights are not F16: they have no float16 "
                             f"weight bits")
        return self.q.view(np.uint16)

    def to_arrays(self):
        """The fields as a dict of arrays, e.g. for ``numpy.savez``.

        Keys ``q``, ``scale_bits``, ``zero``, ``min_bits``, and for BCQ
        ``alpha_bits`` (and ``offset_bits`` with an offset). Inverse:
        :meth:`from_arrays`.
        """
        out = {"q": self.q, "scale_bits": self.scale_bits, "zero": self.zero,
               "min_bits": self.min_bits}
        if self.alpha_bits is not None:
            out["alpha_bits"] = self.alpha_bits
        if self.offset_bits is not None:
            out["offset_bits"] = self.offset_bits
        return out

    @classmethod
    def from_arrays(cls, fmt, rows, cols, group, arrays, prefix=""):
        """Rebuild weights from :meth:`to_arrays` (keys optionally prefixed).

        Parameters
        ----------
        fmt : WeightFormat or str or int
        rows, cols, group : int
        arrays : mapping
            ``numpy.load`` result or dict holding ``prefix + key`` for every
            key of :meth:`to_arrays`.
        prefix : str
            Prefix of the keys (e.g. ``"w_"``).
        """
        def get(key):
            return arrays.get(prefix + key)

        return cls(fmt, int(rows), int(cols), int(group), get("q"), get("scale_bits"),
                   get("zero"), get("min_bits"), get("alpha_bits"), get("offset_bits"))

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_gguf(cls, raw, fmt, rows, cols):
        """Decode GGUF ``Q4_0``/``Q4_1``/``Q8_0`` bytes.

        Parameters
        ----------
        raw : bytes or numpy.ndarray
            GGUF bytes as accepted by :func:`check_weight_bytes`.
        fmt : WeightFormat or str
        rows, cols : int

        Raises
        ------
        ValueError
            On an unsupported format or a size mismatch.
        """
        fmt, raw = check_weight_bytes(raw, fmt, rows, cols)
        nb = cols // BLOCK
        blocks = raw.reshape(rows, nb, fmt.block_bytes)

        def half(k):
            return blocks[..., k].astype(np.uint16) | (blocks[..., k + 1].astype(np.uint16) << 8)

        scale_bits = half(0)
        min_bits = np.zeros((rows, nb), np.uint16)
        if fmt == WeightFormat.Q8_0:
            q = blocks[..., 2:].view(np.int8)
            zero = np.zeros((rows, nb), np.int16)
        else:
            qs = blocks[..., 4:] if fmt == WeightFormat.Q4_1 else blocks[..., 2:]
            # Byte j holds element j (low nibble) and element j + 16 (high nibble).
            q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)
            zero = np.full((rows, nb), 8 if fmt == WeightFormat.Q4_0 else 0, np.int16)
            if fmt == WeightFormat.Q4_1:
                min_bits = half(2)
        return cls(fmt, rows, cols, BLOCK, q.reshape(rows, cols), scale_bits, zero, min_bits)

    @classmethod
    def from_groups(cls, fmt, q, scales, zeros, group):
        """Group-wise affine weights (INT4/INT8) from unpacked tensors.

        Parameters
        ----------
        fmt : WeightFormat or str
            ``INT4`` or ``INT8``.
        q : array_like
            ``[R, K]`` unsigned codes (0..15 or 0..255).
        scales : array_like
            ``float16 [R, K / group]`` scales (or their ``uint16`` bits).
        zeros : array_like
            ``[R, K / group]`` zero points (0..15 or 0..255).
        group : int
            32, 64 or 128.
        """
        fmt = parse_weight_format(fmt)
        if fmt not in (WeightFormat.INT4, WeightFormat.INT8):
            maker = {WeightFormat.F16: "from_f16", WeightFormat.BCQ: "from_bcq"}.get(fmt,
                                                                                 "from_gguf")
            raise ValueError(f"{fmt.name} weights are not group-wise affine (INT4/INT8): use "
                             f"QuantizedWeights.{maker}")
        q = np.asarray(q)
        scales = np.asarray(scales)
        if scales.dtype == np.float16:
            scales = scales.view(np.uint16)
        if q.ndim != 2:
            raise ValueError(f"{fmt.name} codes have shape {q.shape}: pass [rows, cols]")
        rows, cols = q.shape
        return cls(fmt, rows, cols, group, q, scales, zeros,
                   np.zeros((rows, cols // BLOCK), np.uint16))

    @classmethod
    def from_f16(cls, bits, *, allow_nonfinite=False):
        """Uncompressed ``F16`` weights (``docs/arithmetic.md`` section 7).

        Parameters
        ----------
        bits : array_like
            ``[R, K]`` raw float16 bits (``uint16``) or float16 values; ``K``
            a positive multiple of 32.
        allow_nonfinite : bool
            Accept inf/NaN patterns (exponent field 31), which the hardware
            decodes as finite numbers; only RTL tests want this.

        Raises
        ------
        ValueError
            On a bad shape or dtype, or (unless allowed) a non-finite weight.
        """
        bits = _half_bits(bits, "F16 weight bits")
        if bits.ndim != 2:
            raise ValueError(f"F16 weight bits have shape {bits.shape}: pass a [rows, cols] "
                             f"matrix")
        _check_int_range(bits, 0, 0xFFFF, "F16 weight bits", "uint16")
        if not allow_nonfinite:
            _nonfinite_halves(bits, "F16 weight bits", "weights must be finite; fix the "
                              "source tensor")
        rows, cols = bits.shape
        _check_shape(rows, cols)
        bits = bits.astype(np.uint16)
        return cls(WeightFormat.F16, rows, cols, BLOCK, bits.view(np.int16),
                   np.zeros((rows, cols // BLOCK), np.uint16),
                   np.zeros((rows, cols // BLOCK), np.int16),
                   np.zeros((rows, cols // BLOCK), np.uint16))

    @classmethod
    def from_bcq(cls, bits, alpha_bits, group, offset_bits=None, *, allow_nonfinite=False):
        """Binary-coding quantized weights (``docs/arithmetic.md`` section 8).

        ``w[r, i] = sum_p alpha[p, r, i // group] * (2 * bits[p, r, i] - 1)``
        ``+ offset[r, i // group]`` (the offset term only when given).

        Parameters
        ----------
        bits : array_like
            ``[planes, R, K]`` plane bits, each 0 (-1) or 1 (+1); 1 to 4 planes.
        alpha_bits : array_like
            ``[planes, R, K / group]`` float16 plane scales (or their
            ``uint16`` bits).
        group : int
            32, 64 or 128 weights per scale along the row.
        offset_bits : array_like, optional
            ``[R, K / group]`` float16 offsets (or bits); ``None`` for none.
        allow_nonfinite : bool
            Accept inf/NaN scales, which the hardware decodes as finite
            numbers; only RTL tests want this.

        Raises
        ------
        ValueError
            On a bad plane count, group, shape, a plane bit that is not 0/1,
            or (unless allowed) a non-finite scale or offset. The message
            names the input and the fix.
        """
        fmt = WeightFormat.BCQ
        group = _check_group(fmt, group)
        bits = np.asarray(bits)
        if bits.dtype == np.bool_:
            bits = bits.astype(np.uint8)
        if bits.ndim != 3:
            raise ValueError(f"BCQ bits have shape {bits.shape}: pass [planes, rows, cols] "
                             f"(a single plane as bits[None])")
        planes, rows, cols = bits.shape
        if planes not in BCQ_PLANES:
            raise ValueError(f"BCQ bits have {planes} planes: BCQ weights have 1 to "
                             f"{BCQ_PLANES[-1]} binary planes; requantize with planes=1..4")
        rows, cols = _check_shape(rows, cols, group)
        if bits.dtype.kind not in "iu":
            raise ValueError(f"BCQ bits have dtype {bits.dtype}: plane bits must be integers "
                             f"0 (-1) or 1 (+1); pass (signs > 0).astype(np.uint8)")
        _check_int_range(bits, 0, 1, "BCQ bits", "0 (-1) or 1 (+1); pass "
                         "(signs > 0).astype(np.uint8)")
        alpha_bits = _half_bits(alpha_bits, "BCQ alpha_bits")
        if offset_bits is not None:
            offset_bits = _half_bits(offset_bits, "BCQ offset_bits")
        if not allow_nonfinite:
            fix = "scales must be finite; requantize or rescale the matrix"
            if alpha_bits.size:
                _nonfinite_halves(alpha_bits, "BCQ alpha_bits", fix)
            if offset_bits is not None and offset_bits.size:
                _nonfinite_halves(offset_bits, "BCQ offset_bits", fix)
        code = np.zeros((rows, cols), np.int16)
        for p in range(planes):
            code |= bits[p].astype(np.int16) << p
        ng = cols // group
        return cls(fmt, rows, cols, group, code, np.zeros((rows, ng), np.uint16),
                   np.zeros((rows, ng), np.int16), np.zeros((rows, cols // BLOCK), np.uint16),
                   alpha_bits, offset_bits)

    def to_gguf(self):
        """Encode as GGUF bytes, ``uint8 [R, K / 32 * block_bytes]`` (GGUF formats; F16:
        ``uint8 [R, 2 K]``, the float16 values little-endian)."""
        fmt, rows, nb = self.fmt, self.rows, self.cols // BLOCK
        if fmt is WeightFormat.F16:
            # GGUF type F16: the float16 values themselves, little-endian.
            return self.f16_bits.astype("<u2").view(np.uint8).reshape(rows, -1)
        if not fmt.is_gguf:
            raise ValueError(f"{fmt.name} weights have no GGUF encoding")
        q = self.q.reshape(rows, nb, BLOCK)
        parts = [self.scale_bits.astype("<u2").view(np.uint8).reshape(rows, nb, 2)]
        if fmt == WeightFormat.Q4_1:
            parts.append(self.min_bits.astype("<u2").view(np.uint8).reshape(rows, nb, 2))
        if fmt == WeightFormat.Q8_0:
            parts.append(q.astype(np.int8).view(np.uint8))
        else:
            u = q.astype(np.uint8)
            parts.append(u[..., :16] | (u[..., 16:] << 4))
        return np.concatenate(parts, axis=-1).reshape(rows, -1)

    # -- values ------------------------------------------------------------------------

    def _per_element(self, a):
        return np.repeat(a, self.group, axis=1)

    def values(self):
        """``int16 [R, K]``: ``q - z``, the integer each lane multiplies (section 3).

        Raises
        ------
        ValueError
            For F16 and BCQ, which have no integer codes of that kind (see
            :attr:`f16_bits`, :attr:`plane_bits`).
        """
        if self.fmt.wide:
            raise ValueError(f"{self.fmt.name} weights have no integer codes q - z; use "
                             f"dequantize_f64() or the format's own fields")
        return self.q - self._per_element(self.zero)

    def _bcq_f64(self):
        # Exact: a sum of at most five float16 values spans < 53 bits.
        w = np.zeros((self.rows, self.cols), np.float64)
        alpha = self.alpha_bits.view(np.float16).astype(np.float64)
        for p in range(self.planes):
            sign = ((self.q >> p) & 1).astype(np.float64) * 2.0 - 1.0
            w += self._per_element(alpha[p]) * sign
        if self.offset:
            w += self._per_element(self.offset_bits.view(np.float16).astype(np.float64))
        return w

    def dequantize(self):
        """``float32 [R, K]`` dequantized weights.

        Bit-identical to ``gguf.quants.dequantize`` for the GGUF formats
        (``d * (q - 8)``, ``d * q + m``, ``d * q`` in float32); for INT4/INT8
        ``float32(s) * float32(q - z)``; for F16 the float16 values (exact);
        for BCQ the exact sum of the planes and the offset rounded once to
        float32.
        """
        if self.fmt is WeightFormat.F16:
            return self.f16_bits.view(np.float16).astype(np.float32)
        if self.fmt is WeightFormat.BCQ:
            return self._bcq_f64().astype(np.float32)
        d = self._per_element(self.scale_bits.view(np.float16).astype(np.float32))
        w = d * self.values().astype(np.float32)
        if self.fmt == WeightFormat.Q4_1:
            w = w + np.repeat(self.min_bits.view(np.float16).astype(np.float32), BLOCK, axis=1)
        return w

    def dequantize_f64(self):
        """``float64 [R, K]``: the exact real value each weight stands for."""
        if self.fmt is WeightFormat.F16:
            return self.f16_bits.view(np.float16).astype(np.float64)
        if self.fmt is WeightFormat.BCQ:
            return self._bcq_f64()
        d = self._per_element(self.scale_bits.view(np.float16).astype(np.float64))
        w = d * self.values().astype(np.float64)
        if self.fmt == WeightFormat.Q4_1:
            w = w + np.repeat(self.min_bits.view(np.float16).astype(np.float64), BLOCK, axis=1)
        return w


def quantize_weights(w, fmt, group=None, *, planes=None, offset=False, **bcq_options):
    """Quantize a float matrix.

    GGUF formats go through ``gguf.quants.quantize`` (bit-identical to
    llama.cpp's reference quantizers); INT4/INT8 use per-group asymmetric
    min/max quantization: ``s = float16((max - min) / qmax)``,
    ``z = clip(rint(-min / s), 0, qmax)``, ``q = clip(rint(w / s) + z, 0, qmax)``
    (``s = 1`` for a constant group). F16 rounds every weight to the nearest
    float16 (from float64, ties to even). BCQ calls
    :func:`lpaccel.bcq.quantize_bcq` (greedy start, alternating least squares).

    Parameters
    ----------
    w : numpy.ndarray
        ``[R, K]`` finite floats (converted to float32; F16 rounds from
        float64 directly).
    fmt : WeightFormat or str
    group : int, optional
        32, 64 or 128 for INT4/INT8/BCQ (BCQ default 128); unset for the
        GGUF formats and F16.
    planes : int, optional
        BCQ only: binary planes, 1 to 4 (required for BCQ).
    offset : bool
        BCQ only: add a float16 offset per group.
    **bcq_options
        BCQ only: passed on to :func:`lpaccel.bcq.quantize_bcq`
        (e.g. ``iterations``).

    Returns
    -------
    QuantizedWeights

    Raises
    ------
    ValueError
        On an unsupported format, a bad shape, group or plane count,
        non-finite weights, F16 weights with ``|w| > 65504``, or weights so
        large that a scale overflows float16.
    """
    fmt = parse_weight_format(fmt)
    if fmt is not WeightFormat.BCQ and (planes is not None or offset or bcq_options):
        raise ValueError(f"planes/offset/{', '.join(bcq_options) or 'options'}: only BCQ "
                         f"weights have binary planes and offsets; leave them unset for "
                         f"{fmt.name}")
    if fmt is WeightFormat.BCQ:
        if planes not in BCQ_PLANES:
            raise ValueError(f"planes = {planes!r}: BCQ needs 1 to {BCQ_PLANES[-1]} binary "
                             f"planes (--bits)")
        from lpaccel.bcq import quantize_bcq  # lazily: the quantizer is optional here
        return quantize_bcq(w, planes, group=128 if group is None else group,
                            offset=offset, **bcq_options)
    group = _check_group(fmt, group)
    if fmt is WeightFormat.F16:
        return _quantize_f16(w)
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(f"weights have shape {w.shape}: they must be a 2-D [rows, cols] "
                         f"matrix")
    rows, cols = _check_shape(*w.shape, group)
    if not np.isfinite(w).all():
        r, c = np.argwhere(~np.isfinite(w))[0]
        raise ValueError(f"weights[{r}, {c}] = {w[r, c]}: weights must be finite; fix the "
                         f"source tensor")
    if fmt.is_gguf:
        with np.errstate(over="ignore"):          # an overflowing scale is reported below
            raw = gguf.quants.quantize(w, _GGML_TYPES[fmt])
        qw = QuantizedWeights.from_gguf(np.ascontiguousarray(raw, np.uint8).reshape(rows, -1),
                                        fmt, rows, cols)
    else:
        qmax = (1 << fmt.qbits) - 1
        g = w.reshape(rows, cols // group, group).astype(np.float64)
        lo = np.minimum(g.min(axis=-1), 0.0)
        hi = np.maximum(g.max(axis=-1), 0.0)
        with np.errstate(over="ignore"):
            s = ((hi - lo) / qmax).astype(np.float16)
        s = np.where(s == 0, np.float16(1.0), s)
        sf = s.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            z = np.clip(np.rint(-lo / sf), 0, qmax)
            q = np.clip(np.rint(g / sf[..., None]) + z[..., None], 0, qmax)
        q = np.nan_to_num(q).astype(np.int16).reshape(rows, cols)
        qw = QuantizedWeights.from_groups(fmt, q, s, np.nan_to_num(z).astype(np.int16), group)
    bad = (qw.scale_bits & 0x7C00) == 0x7C00
    bad = bad | ((qw.min_bits & 0x7C00) == 0x7C00).reshape(qw.rows, bad.shape[1], -1).any(-1)
    if bad.any():
        r, b = np.argwhere(bad)[0]
        raise ValueError(f"weights row {r} group {b}: the {fmt.name} scale overflows "
                         f"float16 (|w| too large, max {float(np.abs(w).max())}); rescale "
                         f"the matrix")
    return qw


def _quantize_f16(w):
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"weights have shape {w.shape}: they must be a 2-D [rows, cols] "
                         f"matrix")
    _check_shape(*w.shape)
    w64 = w.astype(np.float64)
    bad = ~np.isfinite(w64) | (np.abs(w64) > F16_MAX)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"weights[{r}, {c}] = {w[r, c]}: F16 weights must be finite with "
                         f"|w| <= {F16_MAX:g} (the largest float16); rescale the matrix")
    return QuantizedWeights.from_f16(w64.astype(np.float16))
