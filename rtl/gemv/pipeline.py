"""The GEMV engine's geometry and the layouts that travel between its blocks.

Every block of :class:`~lpaccel.rtl.gemv.GemvEngine` takes its sizes from
one :class:`EngineGeometry` and passes data to the next block as one
``data.StructLayout`` signal; per-segment fields are ``data.ArrayLayout``\\ s
(a *segment* is a group of 32 lanes, one activation block, one scale).

Timeline of a quant beat, in enabled cycles after the sequencer takes it
(every stage advances on the engine's one enable, see ``engine.py``)::

     0  BeatSequencer    beat taken, scale slots looked up, buffer row addressed
     1                   stage1_layout registered; buffer row read
     2  Lanes            lane_layout: v = q - z and mantissa per lane, exps, sums
     4                   lane products out of the DSP multipliers
     8  BlockDot         block_layout: block dot product, scales decoded
    12  RowAccumulator   row_layout: the row's sum in the accumulator
    19  Fp32Packer       FP32 bits
    20  GemvEngine       output register (results.valid)
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In

from ..config import (
    ACC_BITS,
    BLOCK,
    DOT_BITS,
    LANE_PRODUCT_BITS,
    MAX_RSH,
    MSUM_BITS,
    WIDE_BITS,
    GemvConfig,
    WeightFormat,
)

__all__ = ["SlotKind", "EngineGeometry", "EngineBlock", "ActivationLayout", "BeatFlags",
           "RowFlags", "WideTerm", "F16_PRODUCT_BITS"]

#: Width of an F16 lane product: a 16-bit mantissa times a signed 15-bit ``+-md << (u mod 4)``.
F16_PRODUCT_BITS = 31


class SlotKind(enum.IntEnum, shape=2):
    """How a job's scale beats are cut into slots (``docs/arithmetic.md`` section 6).

    ``F16`` slots hold a lone float16 scale (Q4_0, Q8_0); the 32-bit kinds
    hold a float16 scale and a second field (Q4_1's float16 minimum, or an
    INT zero point) for 1, 2 or 4 consecutive blocks.
    """

    F16 = 0
    PAIR_X1 = 1
    PAIR_X2 = 2
    PAIR_X4 = 3

    @property
    def slot_bits(self):
        """Bits of one slot."""
        return 16 if self is SlotKind.F16 else 32

    @property
    def blocks(self):
        """Blocks that share one slot."""
        return {SlotKind.F16: 1, SlotKind.PAIR_X1: 1, SlotKind.PAIR_X2: 2,
                SlotKind.PAIR_X4: 4}[self]


#: One BFP16 activation block: 32 int16 mantissas and a shared exponent.
ActivationLayout = data.StructLayout({
    "mant": data.ArrayLayout(signed(16), BLOCK),
    "exp": signed(8),
})

#: Where a beat sits in its block, row and job.
BeatFlags = data.StructLayout({
    "blk_first": 1,      # first beat of an activation block
    "blk_last": 1,       # last beat of an activation block
    "row_first": 1,      # first beat of a row
    "row_last": 1,       # last beat of a row
    "final": 1,          # last beat of the job
    "wide": 1,           # an F16 beat: its block leaves as a wide term, not a scaled dot
})

#: The flags that matter once blocks are summed.
RowFlags = data.StructLayout({"row_first": 1, "row_last": 1, "final": 1})

#: A block's exact sum ``W`` of an F16 or BCQ job and its activation exponent:
#: the accumulator adds ``floor(W * 2^(exp + ACC_FRAC - WIDE_SH))``
#: (``docs/arithmetic.md`` sections 7 and 8).
WideTerm = data.StructLayout({"w": signed(WIDE_BITS), "exp": signed(8)})


class EngineGeometry:
    """Sizes derived from a :class:`~lpaccel.rtl.config.GemvConfig`, and the stage layouts.

    Parameters
    ----------
    config : GemvConfig
        The engine's configuration.

    Attributes
    ----------
    lanes, beat_bits, blocks_per_row : int
        As in the config.
    row_cols : int
        Activations in one row of an activation buffer (``32 * blocks_per_row``).
    depth : int
        Rows of one activation buffer (there are two, ping-pong).
    segments : int
        32-lane segments (at least 1): one adder tree and one scale each.
    segment_lanes : int
        Lanes per segment (``min(lanes, 32)``).
    n4, n8 : int
        Weights in one quant beat of a 4-bit and of an 8-bit format.
    has4, has8, has_min, has_int : bool
        Whether 4-bit, 8-bit, Q4_1 (minimum) or INT (zero point) formats are built in.
    scale_terms : int
        Block terms per segment: 2 with Q4_1 (scale and minimum), else 1.
    msum_bits : int
        Width of a buffered block's mantissa sum (1 without Q4_1: unused).
    slot_kinds : tuple of SlotKind
        The scale-slot kinds the built-in formats use.
    has_f16, has_bcq : bool
        Whether F16 or BCQ is built in.
    n16 : int
        Weights in one F16 beat (``lanes / 4``).
    lut_width : int
        BCQ's activations per lookup table (``μ``).
    tile_blocks : int
        Activation blocks a BCQ plane beat covers (``beat_bits / 32``).
    tile_depth : int
        BCQ tiles (``beat_bits`` columns) in one activation buffer
        (``ceil(max_cols / beat_bits)``).
    wide_terms : int
        Wide block terms the accumulator adds per cycle: ``tile_blocks``
        with BCQ, 1 with F16 alone, else 0.
    """

    def __init__(self, config):
        if not isinstance(config, GemvConfig):
            raise TypeError(f"config must be a GemvConfig, not {config!r}")
        formats = set(config.formats)
        self.config = config
        self.lanes = config.lanes
        self.beat_bits = config.beat_bits
        self.blocks_per_row = config.blocks_per_row
        self.row_cols = BLOCK * self.blocks_per_row
        self.depth = config.max_cols // self.row_cols
        self.segments = max(1, self.lanes // BLOCK)
        self.segment_lanes = min(self.lanes, BLOCK)
        self.n4, self.n8 = self.lanes, self.lanes // 2
        self.has8 = bool(formats & {WeightFormat.Q8_0, WeightFormat.INT8})
        self.has4 = bool(formats & {WeightFormat.Q4_0, WeightFormat.Q4_1, WeightFormat.INT4})
        self.has_min = WeightFormat.Q4_1 in formats
        self.has_int = bool(formats & {WeightFormat.INT4, WeightFormat.INT8})
        self.scale_terms = 2 if self.has_min else 1
        self.msum_bits = MSUM_BITS if self.has_min else 1
        kinds = []
        if formats & {WeightFormat.Q4_0, WeightFormat.Q8_0}:
            kinds.append(SlotKind.F16)
        if self.has_min or self.has_int:
            kinds.append(SlotKind.PAIR_X1)
        if self.has_int:
            kinds += [SlotKind.PAIR_X2, SlotKind.PAIR_X4]
        self.slot_kinds = tuple(kinds)
        self.has_f16 = WeightFormat.F16 in formats
        self.has_bcq = WeightFormat.BCQ in formats
        self.n16 = self.lanes // 4
        self.lut_width = config.lut_width
        self.tile_blocks = self.beat_bits // BLOCK
        self.tile_depth = -(-config.max_cols // self.beat_bits)
        self.wide_terms = self.tile_blocks if self.has_bcq else (1 if self.has_f16 else 0)

    # Activation buffer ------------------------------------------------------

    @property
    def entry_layout(self):
        """One buffered activation block, with its mantissa sum (Q4_1)."""
        return data.StructLayout({
            "mant": data.ArrayLayout(signed(16), BLOCK),
            "exp": signed(8),
            "msum": signed(self.msum_bits),
        })

    @property
    def buffer_row_layout(self):
        """One row of the activation buffer: ``blocks_per_row`` entries."""
        return data.ArrayLayout(self.entry_layout, self.blocks_per_row)

    @property
    def job_params_layout(self):
        """A loaded job as the sequencer needs it.

        ``kind`` is also BCQ's group: ``kind.blocks`` blocks per scale slot.
        """
        return data.StructLayout({
            "fmt": WeightFormat,
            "rows": unsigned(16),
            "cols": unsigned(17),
            "kind": SlotKind,
            "planes": unsigned(3),
            "offset": 1,
        })

    # Pipeline stages --------------------------------------------------------

    @property
    def stage1_layout(self):
        """A quant beat leaving the sequencer (stage 1).

        ``word`` is the beat, ``sub`` its offset inside the buffer row (in
        beats), and per segment the raw ``scale`` and ``second`` field (Q4_1
        minimum or INT zero point) of the block the segment works on.
        """
        return data.StructLayout({
            "valid": 1,
            "word": unsigned(self.beat_bits),
            "fmt": WeightFormat,
            "is8": 1,
            "sub": unsigned(8),
            "flags": BeatFlags,
            "seg": data.ArrayLayout(data.StructLayout({
                "scale": unsigned(16),
                "second": unsigned(16),
            }), self.segments),
        })

    @property
    def lane_layout(self):
        """What rides beside the lane products, leaving the lanes (stage 2).

        Per segment: the float16 ``scale``, Q4_1's float16 ``min`` (else 0),
        the block's activation exponent and mantissa sum; per F16 lane the
        weight's shift ``u``.
        """
        return data.StructLayout({
            "valid": 1,
            "flags": BeatFlags,
            "u": self.f16_side_layout,
            "seg": data.ArrayLayout(data.StructLayout({
                "scale": unsigned(16),
                "min": unsigned(16),
                "exp": signed(8),
                "msum": signed(self.msum_bits),
            }), self.segments),
        })

    @property
    def products_layout(self):
        """One product per lane."""
        return data.ArrayLayout(signed(LANE_PRODUCT_BITS), self.lanes)

    @property
    def f16_lanes(self):
        """Lanes that multiply F16 weights (``n16`` with F16 built in, else 0)."""
        return self.n16 if self.has_f16 else 0

    @property
    def f16_side_layout(self):
        """Per F16 lane, the weight's shift ``u = max(E, 1) - 1`` (0..30)."""
        return data.ArrayLayout(unsigned(5), max(1, self.f16_lanes))

    @property
    def f16_products_layout(self):
        """The F16 lanes' full products ``m * (+-md << (u mod 4))`` (16 x 15 bits signed)."""
        return data.ArrayLayout(signed(F16_PRODUCT_BITS), max(1, self.f16_lanes))

    @property
    def shift_term_layout(self):
        """A decoded scale: its signed mantissa (+-m, the sign applied) and clamped right shift."""
        return data.StructLayout({
            "mant": signed(12),
            "rsh": range(MAX_RSH + 1),
        })

    @property
    def block_layout(self):
        """A finished block leaving :class:`BlockDot` (stage 6).

        ``terms[c][j]`` is scale ``c`` (0: ``d``, 1: Q4_1's ``m``) of segment
        ``j``; ``dot`` and ``msum`` are what they multiply.
        """
        return data.StructLayout({
            "valid": 1,
            "flags": RowFlags,
            "terms": data.ArrayLayout(data.ArrayLayout(self.shift_term_layout, self.segments),
                                      self.scale_terms),
            "msum": data.ArrayLayout(signed(self.msum_bits), self.segments),
            "dot": data.ArrayLayout(signed(DOT_BITS), self.segments),
        })

    @property
    def wide_layout(self):
        """Wide block terms (F16, BCQ) entering :class:`RowAccumulator`.

        Valid once per finished tile (BCQ: on its last plane) or block (F16),
        at the same pipeline depth as :attr:`block_layout`.
        """
        return data.StructLayout({
            "valid": 1,
            "flags": RowFlags,
            "terms": data.ArrayLayout(WideTerm, max(1, self.wide_terms)),
        })

    @property
    def row_layout(self):
        """A finished row leaving :class:`RowAccumulator` (stage 10)."""
        return data.StructLayout({
            "valid": 1,
            "last": 1,
            "acc": signed(ACC_BITS),
        })


class EngineBlock(wiring.Component):
    """Base of the engine's blocks: sized by one :class:`EngineGeometry`.

    Parameters
    ----------
    geometry : EngineGeometry
        The engine's sizes; kept as ``self.geometry``.
    members : dict
        The block's ports.
    pipelined : bool
        The block's registers advance on the engine's one enable: adds the
        ``en`` input.

    Raises
    ------
    TypeError
        If ``geometry`` is not an :class:`EngineGeometry`.
    """

    def __init__(self, geometry, members, *, pipelined=False):
        if not isinstance(geometry, EngineGeometry):
            raise TypeError(f"geometry must be an EngineGeometry, not {geometry!r}")
        self.geometry = geometry
        super().__init__({"en": In(1), **members} if pipelined else members)

