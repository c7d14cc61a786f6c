"""Host-side repacking of quantized weights into the engine's weight stream.

Implements ``docs/arithmetic.md`` section 6. The stream is defined in
*beats* of ``B = 4 * lanes`` bits (``config.beat_bits``), the width the MAC
lanes consume per cycle. For each row, the row's scale groups are split into
chunks of ``spb = B / S`` groups (``S``, the slot width, is 16 bits for
Q4_0/Q8_0 and 32 bits for Q4_1/INT4/INT8); each chunk is one *scale beat*
(slot ``j`` at bits ``[S j, S j + S)``: the float16 scale bits, and for
32-bit slots Q4_1's float16 minimum or the INT zero point in the upper
half; unused slots zero) followed by ``ceil(elements_in_chunk / n)``
*quant beats* (``n = B / qbits`` elements per beat, element ``i`` at bits
``[qbits i, qbits (i + 1))``, padding zero). Rows follow one another without
padding.

The beats are then cut into the memory words of the weight port
(``config.word_bits``), little-endian; when a word is wider than a beat the
job's last word is padded with zero bits, which the engine discards.

``F16`` (section 7) is each row's float16 values, ``B / 16`` per beat, with
no scale beats. ``BCQ`` (section 8.2) splits each row into chunks of ``spb =
B / 16`` groups; a chunk is ``q`` scale beats (plane 0 first, slot ``j`` the
plane's float16 scale of the chunk's group ``j``), an offset beat when the
weights have offsets, then ``ceil(chunk_cols / B)`` tiles of ``q`` plane
beats (plane 0 first, column ``t B + i`` of the chunk at bit ``i``).

The repacking is lossless: :func:`unpack_weights` recovers the weights.
"""

import numpy as np

from lpaccel.quant import (
    QuantizedWeights,
    _check_activation_blocks,
    _check_group,
    _check_shape,
    parse_weight_format,
)
from lpaccel.rtl.config import BCQ_PLANES, BLOCK, GemvConfig, WeightFormat

__all__ = [
    "StreamLayout", "stream_layout", "layout_of", "repack_weights", "repack_weights_bytes",
    "stream_words", "unpack_weights", "activation_blocks", "ACT_BLOCK_BITS",
]

#: Width of one packed activation block: 32 int16 mantissas and an int8 exponent.
ACT_BLOCK_BITS = 16 * BLOCK + 8


def _check_config(config):
    if not isinstance(config, GemvConfig):
        raise ValueError(f"config is {config!r}: pass the engine's GemvConfig "
                         f"(e.g. GemvConfig(lanes=32))")
    return config


def _ceil_div(a, b):
    return -(-a // b)


class StreamLayout:
    """Sizes of the weight stream of one job.

    Attributes
    ----------
    beats : int
        Beats in the stream (the engine's cycle count when fed one word per
        cycle and ``word_bits <= beat_bits``).
    words : int
        Memory words of ``config.word_bits`` carrying the beats.
    bytes : int
        ``words * config.word_bytes``: the bytes read from memory.
    ideal_cycles : int
        ``max(words, beats)``: the engine takes one word and one beat per
        cycle at most.
    planes : int
        BCQ's plane count (0 for the other formats).
    offset : bool
        Whether BCQ chunks carry an offset beat.
    """

    def __init__(self, fmt, rows, cols, config, group=None, planes=None, offset=False):
        fmt = parse_weight_format(fmt)
        group = _check_group(fmt, group)
        rows, cols = _check_shape(rows, cols, group)
        config = _check_config(config)
        if fmt is WeightFormat.BCQ:
            if planes not in BCQ_PLANES:
                raise ValueError(f"planes = {planes!r}: a BCQ stream needs the plane count, "
                                 f"1 to {BCQ_PLANES[-1]} (weights.planes)")
        elif planes not in (None, 0) or offset:
            raise ValueError(f"planes = {planes!r}, offset = {offset!r}: only BCQ streams "
                             f"have planes and offsets; leave them unset for {fmt.name}")
        self.fmt, self.rows, self.cols, self.group, self.config = fmt, rows, cols, group, config
        self.planes = int(planes) if fmt is WeightFormat.BCQ else 0
        self.offset = bool(offset) and fmt is WeightFormat.BCQ
        self.beat_bytes = config.beat_bytes
        self.slot_bytes = fmt.slot_bits // 8
        self.spb = config.slots_per_beat(fmt)
        self.n = config.elements_per_beat(fmt)
        self.groups = cols // group
        self.qgroup_bytes = group * fmt.qbits // 8
        if fmt is WeightFormat.F16:
            # Section 7: no scale beats; K is a multiple of 32 >= B / 16 values per beat.
            self.full_chunks, self.tail_groups = 0, 0
            self.full_chunk_beats = self.tail_beats = 0
            self.row_beats = cols * 16 // config.beat_bits
        elif fmt is WeightFormat.BCQ:
            # Section 8.2: a chunk is q scale beats, [offset beat], tiles of q plane beats.
            self.chunk_cols = self.spb * group
            self.full_chunks, self.tail_groups = divmod(self.groups, self.spb)
            self.tail_cols = self.tail_groups * group
            head = self.planes + self.offset
            self.full_chunk_beats = head + self.chunk_cols // config.beat_bits * self.planes
            self.tail_beats = head + _ceil_div(self.tail_cols, config.beat_bits) \
                * self.planes if self.tail_groups else 0
            self.row_beats = self.full_chunks * self.full_chunk_beats + self.tail_beats
        else:
            self.full_chunks, self.tail_groups = divmod(self.groups, self.spb)
            self.full_chunk_beats = 1 + _ceil_div(group * self.spb, self.n)
            self.tail_beats = 1 + _ceil_div(group * self.tail_groups, self.n) \
                if self.tail_groups else 0
            self.row_beats = self.full_chunks * self.full_chunk_beats + self.tail_beats
        self.row_bytes = self.row_beats * self.beat_bytes
        self.beats = rows * self.row_beats
        self.words = _ceil_div(self.beats * self.beat_bytes, config.word_bytes)
        self.bytes = self.words * config.word_bytes
        self.ideal_cycles = max(self.words, self.beats)


def stream_layout(fmt, rows, cols, config, group=None, planes=None, offset=False):
    """Return the :class:`StreamLayout` of a ``rows x cols`` job.

    ``planes`` and ``offset`` are BCQ's (``weights.planes``,
    ``weights.offset``) and must be left unset for the other formats.

    Raises
    ------
    ValueError
        On an unsupported format, group, plane count or shape.
    """
    return StreamLayout(fmt, rows, cols, config, group, planes, offset)


def layout_of(weights, config):
    """The :class:`StreamLayout` of ``weights`` (format, shape, group, planes, offset)."""
    return StreamLayout(weights.fmt, weights.rows, weights.cols, config, weights.group,
                        weights.planes or None, weights.offset)


def _slots(w):
    """``uint8 [R, groups, slot_bytes]``: the scale slot of every group."""
    if w.fmt.slot_bits == 16:
        return w.scale_bits.astype("<u2").view(np.uint8).reshape(w.rows, -1, 2)
    second = w.min_bits if w.fmt == WeightFormat.Q4_1 else w.zero.astype(np.uint16)
    v = w.scale_bits.astype(np.uint32) | (second.astype(np.uint32) << 16)
    return v.astype("<u4").view(np.uint8).reshape(w.rows, -1, 4)


def _qbytes(w):
    """``uint8 [R, groups, group * qbits / 8]``: packed codes in element order."""
    if w.fmt.qbits == 8:
        b = w.q.astype(np.int16).astype(np.uint8) if w.fmt == WeightFormat.Q8_0 \
            else w.q.astype(np.uint8)
    else:
        u = w.q.astype(np.uint8)
        b = u[:, 0::2] | (u[:, 1::2] << 4)
    return b.reshape(w.rows, w.cols // w.group, -1)


def repack_weights(weights, config):
    """Repack quantized weights into the hardware weight stream.

    Parameters
    ----------
    weights : QuantizedWeights
    config : GemvConfig
        The engine the stream is for.

    Returns
    -------
    numpy.ndarray
        ``uint8 [words, config.word_bytes]``: one memory word per row of the
        array, its bytes little-endian; ``.reshape(-1)`` gives the stream
        bytes in transfer order.

    Raises
    ------
    ValueError
        On weights the engine cannot take (see :meth:`GemvConfig.check_job`).
    """
    if not isinstance(weights, QuantizedWeights):
        raise ValueError(f"weights is a {type(weights).__name__}: pass QuantizedWeights "
                         f"(from lpaccel.sim.golden.gemv.quantize_weights or .from_gguf)")
    config = _check_config(config)
    config.check_job(weights.fmt, weights.rows, weights.cols, weights.group,
                     weights.planes or None)
    lay = layout_of(weights, config)
    if weights.fmt is WeightFormat.F16:
        stream = weights.f16_bits.astype("<u2").view(np.uint8).reshape(-1)
    elif weights.fmt is WeightFormat.BCQ:
        stream = _bcq_stream(weights, lay)
    else:
        stream = _int_stream(weights, lay)
    assert stream.size == lay.beats * lay.beat_bytes
    out = np.zeros(lay.bytes, dtype=np.uint8)
    out[:stream.size] = stream
    return out.reshape(lay.words, config.word_bytes)


def _half_bytes(bits):
    """``uint8 [..., 2 n]``: float16 bits ``[..., n]`` as little-endian slot bytes."""
    bits = np.ascontiguousarray(bits, dtype="<u2")
    return bits.view(np.uint8).reshape(*bits.shape[:-1], -1)


def _pack_tiles(bits, tiles, beat_bits):
    """``uint8 [R, tiles * q * beat_bytes]``: plane bits ``[q, R, tiles * B]`` as plane
    beats, tile by tile, plane 0 first; column ``t B + i`` at bit ``i`` of its beat."""
    q, rows, _ = bits.shape
    t = bits.reshape(q, rows, tiles, beat_bits).transpose(1, 2, 0, 3)
    return np.packbits(t, axis=-1, bitorder="little").reshape(rows, -1)


def _bcq_stream(w, lay):
    """Section 8.2: the BCQ chunks of every row, row after row."""
    rows, q, bb, spb, big_b = w.rows, w.planes, lay.beat_bytes, lay.spb, lay.config.beat_bits
    bits = w.plane_bits
    nfull = lay.full_chunks * spb                 # groups in whole chunks
    parts = []
    if lay.full_chunks:
        fc = lay.full_chunks
        # Whole chunks: a scale beat is exactly spb slots; a chunk is whole tiles.
        sc = _half_bytes(w.alpha_bits[:, :, :nfull]).reshape(q, rows, fc, bb)
        chunk = [sc.transpose(1, 2, 0, 3).reshape(rows, fc, q * bb)]
        if w.offset:
            chunk.append(_half_bytes(w.offset_bits[:, :nfull]).reshape(rows, fc, bb))
        cols = fc * lay.chunk_cols
        chunk.append(_pack_tiles(bits[:, :, :cols], fc * lay.chunk_cols // big_b, big_b)
                     .reshape(rows, fc, -1))
        parts.append(np.concatenate(chunk, axis=2).reshape(rows, -1))
    if lay.tail_groups:
        tg = lay.tail_groups
        sc = np.zeros((rows, q, bb), np.uint8)
        sc[:, :, :2 * tg] = _half_bytes(w.alpha_bits[:, :, nfull:]).transpose(1, 0, 2)
        parts.append(sc.reshape(rows, -1))
        if w.offset:
            off = np.zeros((rows, bb), np.uint8)
            off[:, :2 * tg] = _half_bytes(w.offset_bits[:, nfull:])
            parts.append(off)
        tiles = _ceil_div(lay.tail_cols, big_b)
        tail = np.zeros((q, rows, tiles * big_b), np.uint8)
        tail[:, :, :lay.tail_cols] = bits[:, :, nfull * w.group:]
        parts.append(_pack_tiles(tail, tiles, big_b))
    return np.concatenate(parts, axis=1).reshape(-1)


def _int_stream(weights, lay):
    """Section 6: scale beats and quant beats of the Q4_0/Q8_0/Q4_1/INT4/INT8 formats."""
    rows = lay.rows
    slots, qb = _slots(weights), _qbytes(weights)
    parts = []
    nfull = lay.full_chunks * lay.spb
    if lay.full_chunks:
        # A full chunk's scale beat is exactly spb slots and its quant beats
        # exactly spb groups of packed codes: no padding.
        sc = slots[:, :nfull].reshape(rows, lay.full_chunks, lay.beat_bytes)
        q = qb[:, :nfull].reshape(rows, lay.full_chunks, -1)
        parts.append(np.concatenate([sc, q], axis=2).reshape(rows, -1))
    if lay.tail_groups:
        tg = lay.tail_groups
        sc = np.zeros((rows, lay.beat_bytes), dtype=np.uint8)
        sc[:, :tg * lay.slot_bytes] = slots[:, nfull:].reshape(rows, -1)
        q = np.zeros((rows, (lay.tail_beats - 1) * lay.beat_bytes), dtype=np.uint8)
        q[:, :tg * lay.qgroup_bytes] = qb[:, nfull:].reshape(rows, -1)
        parts += [sc, q]
    return np.concatenate(parts, axis=1).reshape(-1)


def repack_weights_bytes(weights, config):
    """Like :func:`repack_weights`, returning the stream as ``bytes``."""
    return repack_weights(weights, config).tobytes()


def stream_words(weights, config):
    """Like :func:`repack_weights`, returning each word as a Python int.

    Returns
    -------
    list of int
        One ``config.word_bits``-bit int per memory word; bit 0 of a word
        is bit 0 of its first stream byte.
    """
    words = repack_weights(weights, config)
    if words.shape[1] == 8:
        return words.view("<u8").reshape(-1).tolist()
    return [int.from_bytes(w, "little") for w in map(bytes, words)]


def _stream_to_bytes(words_or_bytes, word_bytes):
    data = words_or_bytes
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    if isinstance(data, np.ndarray) and data.dtype == np.uint8:
        return data.reshape(-1)
    if isinstance(data, np.ndarray) and data.dtype.kind in "iuO" or \
            isinstance(data, (list, tuple)):
        out = bytearray()
        limit = 1 << (8 * word_bytes)
        for i, w in enumerate(data):
            w = int(w)
            if not 0 <= w < limit:
                raise ValueError(f"stream word {i} = {w:#x}: words must be in "
                                 f"[0, 2**{8 * word_bytes}) for this engine; pass words "
                                 f"from stream_words() with the same config")
            out += w.to_bytes(word_bytes, "little")
        return np.frombuffer(bytes(out), dtype=np.uint8)
    raise ValueError(f"weight stream is a {type(data).__name__}: pass bytes, a uint8 "
                     f"array or a list of int words")


def unpack_weights(words_or_bytes, fmt, rows, cols, config, group=None, planes=None,
                   offset=False):
    """Invert :func:`repack_weights`: recover the weights from a stream.

    Parameters
    ----------
    words_or_bytes : bytes or numpy.ndarray or list of int
        The stream as bytes, a ``uint8`` array (any shape, read in order) or
        a list of words.
    fmt : WeightFormat or str
    rows, cols : int
    config : GemvConfig
        The engine the stream was built for.
    group : int, optional
        Group size of INT4/INT8/BCQ.
    planes : int, optional
        BCQ's plane count (1 to 4).
    offset : bool
        Whether the BCQ stream carries offset beats.

    Returns
    -------
    QuantizedWeights

    Raises
    ------
    ValueError
        If the stream has the wrong length for the shape and format, or a
        padding slot (unused scale slot, element past the row's end, bits
        after the last beat) is not zero, which means the stream was built
        for another shape or config.
    """
    lay = StreamLayout(fmt, rows, cols, config, group, planes, offset)
    fmt, rows, group = lay.fmt, lay.rows, lay.group
    data = _stream_to_bytes(words_or_bytes, config.word_bytes)
    if data.size != lay.bytes:
        raise ValueError(f"weight stream has {data.size} bytes: a {rows}x{cols} {fmt.name} "
                         f"matrix at {config.word_bits}-bit words is {lay.words} words, "
                         f"{lay.bytes} bytes; check rows, cols, format, group and lanes")

    def nonzero(region, what):
        if region.any():
            raise ValueError(f"weight stream: {what} is not zero; the stream was not built "
                             f"for a {rows}x{cols} {fmt.name} matrix with this config")

    nonzero(data[lay.beats * lay.beat_bytes:], "padding after the last beat")
    stream = data[:lay.beats * lay.beat_bytes].reshape(rows, lay.row_bytes)
    if fmt is WeightFormat.F16:
        return QuantizedWeights.from_f16(stream.copy().view("<u2").astype(np.uint16),
                                         allow_nonfinite=True)
    if fmt is WeightFormat.BCQ:
        return _unpack_bcq(stream, lay, nonzero)
    ng = lay.groups
    slots = np.empty((rows, ng, lay.slot_bytes), dtype=np.uint8)
    qb = np.empty((rows, ng, lay.qgroup_bytes), dtype=np.uint8)
    nfull = lay.full_chunks * lay.spb
    full_len = lay.full_chunks * lay.full_chunk_beats * lay.beat_bytes
    if lay.full_chunks:
        chunks = stream[:, :full_len].reshape(rows, lay.full_chunks, -1)
        slots[:, :nfull] = chunks[..., :lay.beat_bytes].reshape(rows, nfull, -1)
        qb[:, :nfull] = chunks[..., lay.beat_bytes:].reshape(rows, nfull, -1)
    if lay.tail_groups:
        tg = lay.tail_groups
        tail = stream[:, full_len:]
        sc, q = tail[:, :lay.beat_bytes], tail[:, lay.beat_bytes:]
        slots[:, nfull:] = sc[:, :tg * lay.slot_bytes].reshape(rows, tg, -1)
        qb[:, nfull:] = q[:, :tg * lay.qgroup_bytes].reshape(rows, tg, -1)
        nonzero(sc[:, tg * lay.slot_bytes:], "an unused scale slot")
        nonzero(q[:, tg * lay.qgroup_bytes:], "an element past the row's end")
    if fmt.slot_bits == 16:
        scale_bits = slots.view("<u2").reshape(rows, ng)
        second = np.zeros((rows, ng), np.uint16)
    else:
        v = slots.view("<u4").reshape(rows, ng)
        scale_bits, second = (v & 0xFFFF).astype(np.uint16), (v >> 16).astype(np.uint16)
    flat = qb.reshape(rows, -1)
    if fmt.qbits == 8:
        q = flat.view(np.int8) if fmt == WeightFormat.Q8_0 else flat
    else:
        q = np.stack([flat & 0x0F, flat >> 4], axis=-1).reshape(rows, cols)
    zero = {WeightFormat.Q4_0: np.full((rows, ng), 8, np.int16)}.get(
        fmt, second.astype(np.int16) if fmt.grouped else np.zeros((rows, ng), np.int16))
    min_bits = second if fmt == WeightFormat.Q4_1 else np.zeros((rows, cols // BLOCK), np.uint16)
    return QuantizedWeights(fmt, rows, cols, group, q.astype(np.int16), scale_bits, zero,
                            min_bits)


def _unpack_bcq(stream, lay, nonzero):
    """Inverse of :func:`_bcq_stream` on ``uint8 [R, row_bytes]``."""
    rows, q, bb, spb, big_b = lay.rows, lay.planes, lay.beat_bytes, lay.spb, lay.config.beat_bits
    ng, nfull, head = lay.groups, lay.full_chunks * lay.spb, lay.planes + lay.offset
    alpha = np.empty((q, rows, ng), np.uint16)
    offset = np.empty((rows, ng), np.uint16) if lay.offset else None
    bits = np.empty((q, rows, lay.cols), np.uint8)

    def halves(b):
        return np.ascontiguousarray(b).view("<u2").astype(np.uint16)

    def tiles(b, n):           # uint8 [R, n * q * bb] -> bits [q, R, n * B]
        t = np.unpackbits(b.reshape(rows, n, q, bb), axis=-1, bitorder="little")
        return t.transpose(2, 0, 1, 3).reshape(q, rows, n * big_b)

    full_len = lay.full_chunks * lay.full_chunk_beats * bb
    if lay.full_chunks:
        fc = lay.full_chunks
        chunks = stream[:, :full_len].reshape(rows, fc, -1)
        sc = chunks[..., :q * bb].reshape(rows, fc, q, spb, 2).transpose(2, 0, 1, 3, 4)
        alpha[:, :, :nfull] = halves(sc).reshape(q, rows, nfull)
        if lay.offset:
            offset[:, :nfull] = halves(chunks[..., q * bb:head * bb]).reshape(rows, nfull)
        n = lay.chunk_cols // big_b
        planes = tiles(chunks[..., head * bb:].reshape(rows, fc * n * q * bb), fc * n)
        bits[:, :, :nfull * lay.group] = planes
    if lay.tail_groups:
        tg = lay.tail_groups
        tail = stream[:, full_len:]
        sc = tail[:, :q * bb].reshape(rows, q, bb)
        nonzero(sc[..., 2 * tg:], "an unused scale slot")
        alpha[:, :, nfull:] = halves(sc[..., :2 * tg]).reshape(rows, q, tg).transpose(1, 0, 2)
        if lay.offset:
            off = tail[:, q * bb:head * bb]
            nonzero(off[:, 2 * tg:], "an unused offset slot")
            offset[:, nfull:] = halves(off[:, :2 * tg]).reshape(rows, tg)
        n = _ceil_div(lay.tail_cols, big_b)
        planes = tiles(tail[:, head * bb:], n)
        nonzero(planes[:, :, lay.tail_cols:], "a plane bit past the row's end")
        bits[:, :, nfull * lay.group:] = planes[:, :, :lay.tail_cols]
    return QuantizedWeights.from_bcq(bits, alpha, lay.group, offset, allow_nonfinite=True)


def activation_blocks(mant, exp):
    """Pack BFP16 activation blocks as the engine's ``activations`` payloads.

    Parameters
    ----------
    mant : numpy.ndarray
        ``int16 [K]`` mantissas (see
        :func:`lpaccel.sim.golden.gemv.quantize_activations`).
    exp : numpy.ndarray
        ``int8 [K / 32]`` block exponents.

    Returns
    -------
    list of int
        One ``ACT_BLOCK_BITS`` (520) bit unsigned int per block: mantissa
        ``i`` (int16, two's complement) at bits ``[16 i, 16 i + 16)``, the
        exponent (int8, two's complement) at bits ``[512, 520)``.

    Raises
    ------
    ValueError
        On mismatched shapes or out-of-range values.
    """
    m, e = _check_activation_blocks(mant, exp)
    mb = m.astype("<i2").reshape(-1, BLOCK)
    eb = e.astype(np.int8)
    return [int.from_bytes(mb[b].tobytes() + eb[b:b + 1].tobytes(), "little")
            for b in range(eb.size)]
