"""One frozen configuration object per block.

The same :class:`GemvConfig` instance feeds the RTL generator, the golden
model, the repacker, the performance model and (later) the register map and
driver, so the numbers that describe an engine are written down exactly once.
"""

from dataclasses import dataclass

from amaranth.lib import enum

__all__ = ["WeightFormat", "GemvConfig", "BLOCK", "ACC_BITS", "ACC_FRAC", "GROUP_SIZES",
           "MSUM_BITS", "SH_MAX", "LANE_PRODUCT_BITS", "DOT_BITS", "SCALED_BITS", "MAX_RSH",
           "BCQ_PLANES", "WIDE_SH", "WIDE_SH_MAX", "WIDE_BITS", "F16_WIDE_BITS"]

#: Elements per activation block, and per GGUF quantization block.
BLOCK = 32
#: Width of the row accumulator, see ``docs/arithmetic.md`` section 3.
ACC_BITS = 96
#: Fraction bits of the row accumulator (``F`` in ``docs/arithmetic.md``).
ACC_FRAC = 32
#: Group sizes of the group-wise affine formats (INT4, INT8).
GROUP_SIZES = (32, 64, 128)

# Widths and limits of the block arithmetic (``docs/arithmetic.md`` section
# 3), shared by the golden model (lpaccel.sim.golden) and the GEMV engine.

#: Signed width of one block's activation-mantissa sum (Q4_1's minimum term):
#: 32 int16 mantissas, ``|msum| < 2**20``.
MSUM_BITS = 21
#: Largest left shift of a block term: ``sh = min(ed + e + ACC_FRAC, SH_MAX)``.
SH_MAX = 39
#: Signed width of one lane's product ``v * mant`` (9-bit ``v``, int16 mantissa).
LANE_PRODUCT_BITS = 25
#: Signed width of a block dot product (``|dot| < 2**29``).
DOT_BITS = 30
#: Signed width of a block dot product (or mantissa sum) times an 11-bit
#: float16 mantissa: ``DOT_BITS`` plus the mantissa as a 12-bit signed value.
SCALED_BITS = DOT_BITS + 12
#: Largest right shift the engine applies to ``p << SH_MAX``: any larger shift
#: leaves only the sign of a ``SCALED_BITS`` product, as this one does.
MAX_RSH = SCALED_BITS - 1 + SH_MAX

# F16 and BCQ (``docs/arithmetic.md`` sections 7 and 8): a block's exact sum
# ``W`` (the dot product times ``2^24``), shifted by ``e + ACC_FRAC - WIDE_SH``.

#: Plane counts of a BCQ job.
BCQ_PLANES = (1, 2, 3, 4)
#: The fixed part of a wide block term's shift: ``sh = e + ACC_FRAC - WIDE_SH``.
WIDE_SH = 24
#: Largest shift of a wide block term, ``sh = min(e + ACC_FRAC - WIDE_SH, WIDE_SH_MAX)``:
#: the host's block exponents (``e <= 1``) never reach the clamp.
WIDE_SH_MAX = 9
#: Signed width of a BCQ block sum ``W`` (four planes and the offset: ``|W| < 2^64``).
WIDE_BITS = 65
#: Signed width of an F16 block sum ``W`` (``|W| < 2^61``).
F16_WIDE_BITS = 62


class WeightFormat(enum.IntEnum, shape=3):
    """Weight format codes, as the hardware and the register map see them.

    ``Q4_0``, ``Q4_1`` and ``Q8_0`` are llama.cpp's GGUF block formats;
    ``INT4`` and ``INT8`` are group-wise affine (GPTQ/AWQ style): per group
    of 32, 64 or 128 elements one float16 scale ``s`` and an unsigned integer
    zero point ``z``, ``w = s * (q - z)`` with unsigned ``q``.

    An ``amaranth.lib.enum.IntEnum`` of shape ``unsigned(3)``: hardware
    fields declared with it carry the code, and members stay plain ints for
    host code.
    """

    Q4_0 = 0
    Q8_0 = 1
    Q4_1 = 2
    INT4 = 3
    INT8 = 4
    F16 = 5
    BCQ = 6

    @property
    def qbits(self):
        """Bits per stored element in a quant beat (one plane's bit for BCQ)."""
        return {WeightFormat.Q8_0: 8, WeightFormat.INT8: 8, WeightFormat.F16: 16,
                WeightFormat.BCQ: 1}.get(self, 4)

    @property
    def is_gguf(self):
        """True for llama.cpp's block formats (fixed 32-element blocks)."""
        return self in (WeightFormat.Q4_0, WeightFormat.Q8_0, WeightFormat.Q4_1)

    @property
    def grouped(self):
        """True for the formats that need a group size (INT4, INT8, BCQ)."""
        return self in (WeightFormat.INT4, WeightFormat.INT8, WeightFormat.BCQ)

    @property
    def wide(self):
        """True for the formats summed per block exactly before one floor (F16, BCQ)."""
        return self in (WeightFormat.F16, WeightFormat.BCQ)

    @property
    def slot_bits(self):
        """Bits of one scale slot in the hardware stream (section 6 of the docs).

        16 for a lone float16 scale (Q4_0, Q8_0, and BCQ's per-plane scale
        beats); 32 for a scale with a second field: Q4_1's float16 minimum, or
        the integer zero point. 0 for F16, which has no scale beats.
        """
        if self is WeightFormat.F16:
            return 0
        return 16 if self in (WeightFormat.Q4_0, WeightFormat.Q8_0, WeightFormat.BCQ) else 32

    @property
    def block_bytes(self):
        """Bytes per 32-element block in the GGUF layout (GGUF formats only)."""
        if not self.is_gguf:
            raise ValueError(f"{self.name} is not a GGUF block format: it has no GGUF "
                             f"block size")
        return {WeightFormat.Q4_0: 18, WeightFormat.Q8_0: 34, WeightFormat.Q4_1: 20}[self]

    @classmethod
    def parse(cls, name):
        """Look a format up by its name (``"q4_0"``, ``"INT8"``, ...) or code.

        Raises
        ------
        ValueError
            If the name is not a supported format; the message lists those.
        """
        if isinstance(name, WeightFormat):
            return name
        if isinstance(name, int) and not isinstance(name, bool):
            try:
                return cls(name)
            except ValueError:
                pass
        else:
            try:
                return cls[str(name).upper()]
            except KeyError:
                pass
        supported = ", ".join(f.name.lower() for f in cls)
        raise ValueError(f"weight format {name!r} is not supported "
                         f"(supported: {supported})")


ALL_FORMATS = tuple(WeightFormat)


@dataclass(frozen=True)
class GemvConfig:
    """Parameters of one GEMV engine.

    Parameters
    ----------
    lanes : int
        Multiply-accumulate lanes (one DSP multiplier each), a power of two
        from 8 to 128. The engine's internal *beat* is ``4 * lanes`` bits:
        ``lanes`` 4-bit weights or ``lanes / 2`` 8-bit weights per cycle.
    word_bits : int
        Width of the weight-stream port (the memory word), 64 to 512 bits;
        default ``4 * lanes``. A word narrower than a beat is gathered (one
        word per cycle, lanes partly idle); a wider one is split into
        beats, one per cycle, so the engine consumes one full word per cycle
        exactly when ``word_bits <= 4 * lanes``.
    max_cols : int
        Capacity of each of the two activation buffers in elements (the
        largest ``K``), a multiple of ``32 * blocks_per_row``; default 8192.
    max_rows : int
        Largest row count a job may ask for (at most 65535).
    formats : tuple of WeightFormat
        Formats compiled into the hardware; default all seven.
    lut_width : int
        BCQ's LUT-GEMM sharing ``μ``: activations per lookup table (4 or 8);
        a table of ``2^(μ-1)`` entries serves ``μ`` plane bits of every row
        (``docs/arithmetic.md`` section 8.3).
    """

    lanes: int = 32
    word_bits: int = None
    max_cols: int = 8192
    max_rows: int = 65535
    formats: tuple = ALL_FORMATS
    lut_width: int = 4

    #: Lane counts the engine can be built with.
    LANES = (8, 16, 32, 64, 128)
    #: Weight-port widths the engine can be built with.
    WORD_BITS = (64, 128, 256, 512)
    #: LUT-GEMM table widths (activations per table) the engine can be built with.
    LUT_WIDTHS = (4, 8)

    def __post_init__(self):
        if not isinstance(self.lanes, int) or self.lanes not in self.LANES:
            raise ValueError(f"lanes must be a power of two from {self.LANES[0]} to "
                             f"{self.LANES[-1]}, not {self.lanes!r}")
        if self.word_bits is None:
            object.__setattr__(self, "word_bits", min(self.WORD_BITS[-1],
                                                      max(self.WORD_BITS[0], 4 * self.lanes)))
        if not isinstance(self.word_bits, int) or self.word_bits not in self.WORD_BITS:
            raise ValueError(f"word_bits must be one of "
                             f"{', '.join(map(str, self.WORD_BITS))}, not {self.word_bits!r}")
        if not isinstance(self.max_cols, int) or self.max_cols <= 0 or \
                self.max_cols % (BLOCK * self.blocks_per_row) != 0:
            raise ValueError(f"max_cols must be a positive multiple of "
                             f"{BLOCK * self.blocks_per_row} for {self.lanes} lanes, "
                             f"not {self.max_cols!r}")
        if self.max_cols > 65536:
            raise ValueError(f"max_cols must be at most 65536 (the accumulator is sized "
                             f"for it), not {self.max_cols}")
        if not isinstance(self.max_rows, int) or not 1 <= self.max_rows <= 65535:
            raise ValueError(f"max_rows must be between 1 and 65535, not {self.max_rows!r}")
        try:
            formats = tuple(sorted({WeightFormat.parse(f) for f in self.formats}))
        except (TypeError, ValueError) as error:
            raise ValueError(f"formats must be weight formats ({error})") from None
        if not formats:
            raise ValueError("formats must name at least one weight format")
        object.__setattr__(self, "formats", formats)
        if self.lut_width not in self.LUT_WIDTHS:
            raise ValueError(f"lut_width must be one of "
                             f"{', '.join(map(str, self.LUT_WIDTHS))}, not {self.lut_width!r}")

    @classmethod
    def sized_for(cls, cols, *, lanes=32, word_bits=None, at_least=None, **kwargs):
        """The configuration whose activation buffers just hold ``cols`` elements.

        ``max_cols`` is ``cols`` rounded up to a whole buffer row, but at
        least ``at_least`` (rounded the same way): the command line passes
        the default buffer size so that most runs share one simulator build,
        a board self-test passes nothing and gets the smallest buffers.

        Parameters
        ----------
        cols : int
            Columns (``K``) the engine must take.
        lanes, word_bits : int
            As for :class:`GemvConfig`.
        at_least : int, optional
            Smallest ``max_cols`` to build.
        **kwargs
            Other :class:`GemvConfig` fields (``max_rows``, ``formats``).
        """
        if lanes not in cls.LANES:
            raise ValueError(f"lanes must be a power of two from {cls.LANES[0]} to "
                             f"{cls.LANES[-1]}, not {lanes!r}")
        unit = BLOCK * max(1, lanes // BLOCK)
        want = max(cols, at_least or 1)
        return cls(lanes=lanes, word_bits=word_bits, max_cols=-(-want // unit) * unit, **kwargs)

    @property
    def beat_bits(self):
        """Width of one internal beat in bits (``4 * lanes``)."""
        return 4 * self.lanes

    @property
    def beat_bytes(self):
        """Width of one internal beat in bytes."""
        return self.beat_bits // 8

    @property
    def word_bytes(self):
        """Width of one weight-stream word in bytes."""
        return self.word_bits // 8

    @property
    def blocks_per_row(self):
        """Activation blocks held in one row of the activation buffer."""
        return max(1, self.lanes // BLOCK)

    def elements_per_beat(self, fmt):
        """Weights carried by one quant beat of format ``fmt``."""
        return self.beat_bits // WeightFormat.parse(fmt).qbits

    def slots_per_beat(self, fmt):
        """Scale slots in one scale beat of format ``fmt`` (0 for F16: no scale beats)."""
        fmt = WeightFormat.parse(fmt)
        return self.beat_bits // fmt.slot_bits if fmt.slot_bits else 0

    def check_job(self, fmt, rows, cols, group=None, planes=None):
        """Validate a job against this engine; return ``(fmt, group)``.

        ``group`` is the scale group in elements: 32 for the GGUF formats
        and F16 (``None`` accepted), one of 32/64/128 for INT4/INT8/BCQ.
        ``planes`` is BCQ's plane count, 1 to 4 (``None`` for the others).

        Raises
        ------
        ValueError
            Naming the job field, the rule and the fix, for every condition
            under which the hardware would reject the job.
        """
        fmt = WeightFormat.parse(fmt)
        if fmt not in self.formats:
            raise ValueError(f"format {fmt.name} is not compiled into this engine "
                             f"(formats: {', '.join(f.name for f in self.formats)}); "
                             f"rebuild with it in GemvConfig.formats")
        if not fmt.grouped:
            if group not in (None, BLOCK):
                raise ValueError(f"group = {group!r}: {fmt.name} has fixed 32-element "
                                 f"blocks; leave the group unset")
            group = BLOCK
        elif group not in GROUP_SIZES:
            raise ValueError(f"group = {group!r}: {fmt.name} needs a group size of "
                             f"32, 64 or 128 elements")
        if fmt is WeightFormat.BCQ:
            if planes not in BCQ_PLANES:
                raise ValueError(f"planes = {planes!r}: a BCQ job needs 1 to 4 binary "
                                 f"planes; pass the plane count of the quantized tensor")
        elif planes is not None:
            raise ValueError(f"planes = {planes!r}: only BCQ weights have planes; leave "
                             f"it unset for {fmt.name}")
        if not isinstance(rows, int) or not 1 <= rows <= self.max_rows:
            raise ValueError(f"rows = {rows!r}: must be from 1 to {self.max_rows}")
        if not isinstance(cols, int) or cols < 1 or cols % group != 0:
            raise ValueError(f"cols = {cols!r}: K must be a positive multiple of the "
                             f"{group}-element group; pad the rows with zero groups")
        if cols > self.max_cols:
            raise ValueError(f"cols = {cols}: K exceeds the activation buffer of "
                             f"{self.max_cols} elements; split the GEMV along K or build "
                             f"with a larger max_cols")
        return fmt, group
