"""Host-side repacking of GGUF weights into the engine's weight stream.

Implements ``docs/arithmetic.md`` section 6. The stream is a sequence of
``W``-bit words (``W = config.word_bits``); a word is stored little-endian in
``W / 8`` bytes, so bit 0 of the word is bit 0 of its first byte. For each
row, the row's blocks are split into chunks of ``bpc = W / 16`` blocks; each
chunk is one scale word (the raw float16 bits of block ``j`` at bits
``[16 j, 16 j + 16)``, unused slots zero) followed by
``ceil(32 * blocks_in_chunk / n)`` quant words (``n = W / qbits`` elements per
word, element ``i`` at bits ``[qbits i, qbits (i + 1))``, padding zero).
Rows follow one another without padding.

The repacking is lossless: :func:`unpack_weights` recovers the GGUF bytes.
"""

import numpy as np

from lpaccel.rtl.config import BLOCK, GemvConfig, WeightFormat

from .golden import (_check_activation_blocks, _check_shape, check_weight_bytes,
                     parse_weight_format)

__all__ = [
    "stream_word_count", "repack_weights", "repack_weights_bytes", "stream_words",
    "unpack_weights", "activation_blocks", "ACT_BLOCK_BITS",
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


class _Layout:
    """Sizes of one row of the stream, all in bytes unless named otherwise."""

    def __init__(self, fmt, rows, cols, config):
        self.fmt = fmt
        self.rows = rows
        self.cols = cols
        self.word_bytes = config.word_bytes
        self.bpc = config.scales_per_word
        self.n = config.elements_per_word(fmt)
        self.blocks = cols // BLOCK
        self.full_chunks, self.tail_blocks = divmod(self.blocks, self.bpc)
        # Bytes of packed quants per block in element order (16 for Q4_0, 32 for Q8_0).
        self.qblock_bytes = BLOCK * fmt.qbits // 8
        self.full_chunk_words = 1 + _ceil_div(BLOCK * self.bpc, self.n)
        self.tail_words = 1 + _ceil_div(BLOCK * self.tail_blocks, self.n) \
            if self.tail_blocks else 0
        self.row_words = self.full_chunks * self.full_chunk_words + self.tail_words
        self.row_bytes = self.row_words * self.word_bytes


def stream_word_count(fmt, rows, cols, config):
    """Number of words in the weight stream (the engine's ideal cycle count).

    Parameters
    ----------
    fmt : WeightFormat or str
        ``Q4_0`` or ``Q8_0``.
    rows, cols : int
        Matrix shape; ``cols`` a positive multiple of 32.
    config : GemvConfig
        The engine; only ``word_bits`` matters.

    Returns
    -------
    int
        ``rows * sum over chunks of (1 + ceil(32 * blocks_in_chunk / n))``.

    Raises
    ------
    ValueError
        On an unsupported format or a bad shape.
    """
    fmt = parse_weight_format(fmt)
    rows, cols = _check_shape(rows, cols)
    return rows * _Layout(fmt, rows, cols, _check_config(config)).row_words


def repack_weights(raw, fmt, rows, cols, config):
    """Repack GGUF ``Q4_0``/``Q8_0`` bytes into the hardware weight stream.

    Parameters
    ----------
    raw : bytes or numpy.ndarray
        GGUF bytes of a ``rows x cols`` matrix (see
        :func:`lpaccel.sim.golden.check_weight_bytes`).
    fmt : WeightFormat or str
        ``Q4_0`` or ``Q8_0``.
    rows, cols : int
        Matrix shape; ``cols`` a positive multiple of 32.
    config : GemvConfig
        The engine the stream is for (``word_bits = 4 * lanes``).

    Returns
    -------
    numpy.ndarray
        ``uint8 [words, config.word_bytes]``: one stream word per row of the
        array, its bytes little-endian. ``.reshape(-1)`` gives the stream
        bytes in transfer order.

    Raises
    ------
    ValueError
        On an unsupported format, a bad shape or a size mismatch.
    """
    fmt, raw = check_weight_bytes(raw, fmt, rows, cols)
    config = _check_config(config)
    lay = _Layout(fmt, rows, cols, config)
    blocks = raw.reshape(rows, lay.blocks, fmt.block_bytes)
    scale_bytes = blocks[..., :2]                               # [R, nb, 2]
    qs = blocks[..., 2:]
    if fmt == WeightFormat.Q4_0:
        # GGUF byte j: element j low, element j + 16 high -> nibbles in element order.
        # Element i then sits at bits [4 i, 4 i + 4) of the packed bytes.
        nib = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)
        qbytes = nib[..., 0::2] | (nib[..., 1::2] << 4)         # [R, nb, 16]
    else:
        qbytes = qs                                             # [R, nb, 32]

    parts = []
    nfull = lay.full_chunks * lay.bpc
    if lay.full_chunks:
        # A full chunk's scale word is exactly bpc scales and its quant words
        # are exactly bpc blocks of packed elements: no padding.
        sc = scale_bytes[:, :nfull].reshape(rows, lay.full_chunks, lay.word_bytes)
        qb = qbytes[:, :nfull].reshape(rows, lay.full_chunks, lay.bpc * lay.qblock_bytes)
        parts.append(np.concatenate([sc, qb], axis=2).reshape(rows, -1))
    if lay.tail_blocks:
        tb = lay.tail_blocks
        sc = np.zeros((rows, lay.word_bytes), dtype=np.uint8)
        sc[:, :2 * tb] = scale_bytes[:, nfull:].reshape(rows, 2 * tb)
        nq = (lay.tail_words - 1) * lay.word_bytes
        qb = np.zeros((rows, nq), dtype=np.uint8)
        qb[:, :tb * lay.qblock_bytes] = qbytes[:, nfull:].reshape(rows, -1)
        parts.append(sc)
        parts.append(qb)
    stream = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    assert stream.shape == (rows, lay.row_bytes)
    return np.ascontiguousarray(stream).reshape(-1, lay.word_bytes)


def repack_weights_bytes(raw, fmt, rows, cols, config):
    """Like :func:`repack_weights`, returning the stream as ``bytes``."""
    return repack_weights(raw, fmt, rows, cols, config).tobytes()


def stream_words(raw, fmt, rows, cols, config):
    """Like :func:`repack_weights`, returning each word as a ``W``-bit Python int.

    Returns
    -------
    list of int
        ``stream_word_count(fmt, rows, cols, config)`` words, each in
        ``[0, 2**config.word_bits)``, bit 0 of a word is bit 0 of its first
        stream byte.
    """
    words = repack_weights(raw, fmt, rows, cols, config)
    if words.shape[1] in (4, 8):
        return words.view(f"<u{words.shape[1]}").reshape(-1).tolist()
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


def unpack_weights(words_or_bytes, fmt, rows, cols, config):
    """Invert :func:`repack_weights`: recover the GGUF bytes from a stream.

    Parameters
    ----------
    words_or_bytes : bytes or numpy.ndarray or list of int
        The stream as bytes, a ``uint8`` array (any shape, read in order) or
        a list of ``W``-bit words.
    fmt : WeightFormat or str
        ``Q4_0`` or ``Q8_0``.
    rows, cols : int
        Matrix shape; ``cols`` a positive multiple of 32.
    config : GemvConfig
        The engine the stream was built for.

    Returns
    -------
    numpy.ndarray
        ``uint8 [rows, cols / 32 * fmt.block_bytes]`` GGUF bytes.

    Raises
    ------
    ValueError
        If the stream has the wrong length for the shape and format, or a
        padding slot (unused scale slot, element past the row's end) is not
        zero, which means the stream was built for another shape or config.
    """
    fmt = parse_weight_format(fmt)
    rows, cols = _check_shape(rows, cols)
    config = _check_config(config)
    lay = _Layout(fmt, rows, cols, config)
    data = _stream_to_bytes(words_or_bytes, lay.word_bytes)
    if data.size != rows * lay.row_bytes:
        raise ValueError(f"weight stream has {data.size} bytes: a {rows}x{cols} {fmt.name} "
                         f"matrix at {config.word_bits}-bit words is {rows * lay.row_words} "
                         f"words, {rows * lay.row_bytes} bytes; check rows, cols, format "
                         f"and lanes")
    stream = data.reshape(rows, lay.row_bytes)
    nb = lay.blocks
    scale_bytes = np.empty((rows, nb, 2), dtype=np.uint8)
    qbytes = np.empty((rows, nb, lay.qblock_bytes), dtype=np.uint8)
    nfull = lay.full_chunks * lay.bpc
    full_len = lay.full_chunks * lay.full_chunk_words * lay.word_bytes
    if lay.full_chunks:
        chunks = stream[:, :full_len].reshape(rows, lay.full_chunks, -1)
        scale_bytes[:, :nfull] = chunks[..., :lay.word_bytes].reshape(rows, nfull, 2)
        qbytes[:, :nfull] = chunks[..., lay.word_bytes:].reshape(rows, nfull, -1)
    if lay.tail_blocks:
        tb = lay.tail_blocks
        tail = stream[:, full_len:]
        sc, qb = tail[:, :lay.word_bytes], tail[:, lay.word_bytes:]
        scale_bytes[:, nfull:] = sc[:, :2 * tb].reshape(rows, tb, 2)
        qbytes[:, nfull:] = qb[:, :tb * lay.qblock_bytes].reshape(rows, tb, -1)
        pad = [(sc[:, 2 * tb:], "unused scale slot"),
               (qb[:, tb * lay.qblock_bytes:], "element past the row's end")]
        for region, what in pad:
            if region.any():
                r = int(np.argwhere(region)[0][0])
                raise ValueError(f"weight stream row {r}: {what} is not zero; the stream "
                                 f"was not built for a {rows}x{cols} {fmt.name} matrix at "
                                 f"{config.word_bits}-bit words")
    if fmt == WeightFormat.Q4_0:
        nib = np.stack([qbytes & 0x0F, qbytes >> 4], axis=-1).reshape(rows, nb, BLOCK)
        qs = nib[..., :BLOCK // 2] | (nib[..., BLOCK // 2:] << 4)
    else:
        qs = qbytes
    return np.concatenate([scale_bytes, qs], axis=2).reshape(rows, -1)


def activation_blocks(mant, exp):
    """Pack BFP16 activation blocks as the engine's ``activations`` payloads.

    Parameters
    ----------
    mant : numpy.ndarray
        ``int16 [K]`` mantissas (see
        :func:`lpaccel.sim.golden.quantize_activations`).
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
