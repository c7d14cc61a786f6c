"""Block dot products, with each block's float16 scales decoded alongside.

The lane products of a segment (32 lanes, or fewer on a narrow engine) are
summed by a two-stage adder tree; a block spread over several beats (fewer
than 32 weights per beat) is summed over its beats, and the block's dot
product leaves with its last beat. Meanwhile each scale ``h`` (and Q4_1's
minimum) is decoded as ``docs/arithmetic.md`` section 2 writes it: an 11-bit
mantissa ``md``, a sign, and the shift ``sh = ed + e + ACC_FRAC``, kept as
the clamped right shift ``rsh = SH_MAX - sh`` of ``p << SH_MAX``
(``0 <= rsh <= MAX_RSH``).

F16 jobs (``docs/arithmetic.md`` section 7) skip the scale: each lane's
product ``m * (+-md)`` is shifted by its weight's ``u`` and the block's sum
``W`` (exact) leaves on ``wide`` instead of ``block``, at the same depth.

Latency: ``block`` (and ``wide``) leaves six cycles after ``side`` (four after
``products``); every stage advances on ``en``, and ``block.valid`` is high
once per block, on its last beat.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..config import ACC_FRAC, DOT_BITS, F16_WIDE_BITS, LANE_PRODUCT_BITS, MAX_RSH, SH_MAX
from ..utils import tree_reduce
from .pipeline import F16_PRODUCT_BITS, BeatFlags, EngineBlock

__all__ = ["BlockDot"]

#: float16 fields (``docs/arithmetic.md`` section 2): 10 fraction bits and
#: exponent bias 15, so that ``ed = max(E, 1) - 25``.
FP16_FRAC_BITS = 10
FP16_BIAS = 15
#: Lane products summed in the first register stage of a segment's adder tree.
PART_LANES = 8
#: Largest F16 weight shift ``u = max(E, 1) - 1``.
F16_MAX_U = 30
#: F16 products shifted and summed in the first stage of the F16 adder tree.
F16_PART_LANES = 4
#: Signed width of ``sh = ed + e + ACC_FRAC`` (``-120 <= sh <= 165``).
SH_BITS = 10

#: A float16 scale decoded, before its shift is clamped.
DecodedScale = data.StructLayout({"mant": 11, "neg": 1, "sh": signed(SH_BITS)})


class BlockDot(EngineBlock):
    """Sum lane products into block dot products and decode the block scales.

    Parameters
    ----------
    geometry : EngineGeometry
        Lanes, segments and the formats built in.

    Attributes
    ----------
    en : In(1)
        Pipeline enable.
    side : In(geometry.lane_layout)
        Scales, exponents, mantissa sums and flags of a beat.
    products : In(geometry.products_layout)
        The beat's lane products, two cycles after its ``side``.
    block : Out(geometry.block_layout)
        Per segment the block's dot product and mantissa sum, and each scale
        decoded into mantissa, sign and right shift; valid on a block's last
        beat (not of an F16 job).
    f16_products : In(geometry.f16_products_layout)
        The F16 lanes' full products, with ``products``.
    wide : Out(geometry.wide_layout)
        F16: the block's exact ``W`` and activation exponent as term 0,
        valid on the block's last beat, in the cycle ``block`` would be.
    """

    def __init__(self, geometry):
        super().__init__(geometry, {
            "side": In(geometry.lane_layout),
            "products": In(geometry.products_layout),
            "f16_products": In(geometry.f16_products_layout),
            "block": Out(geometry.block_layout),
            "wide": Out(geometry.wide_layout),
        }, pipelined=True)

    def _beat_layout(self, term):
        """A beat between the stages: flags, mantissa sums and scale terms."""
        g = self.geometry
        return data.StructLayout({
            "valid": 1,
            "flags": BeatFlags,
            "msum": data.ArrayLayout(signed(g.msum_bits), g.segments),
            "terms": data.ArrayLayout(data.ArrayLayout(term, g.segments), g.scale_terms),
        })

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        en, side = self.en, self.side
        nseg, nsc = g.segments, g.scale_terms

        def stage(*pairs):
            with m.If(en):
                m.d.sync += [dst.eq(src) for dst, src in pairs]

        # Cycle 1: the side data waits for the multipliers' input registers.
        s2r = Signal(g.lane_layout, name="side_2r")
        stage((s2r, side))

        # Cycle 2 (products ready): decode every scale; the products wait a
        # cycle so that the adder trees start from registers.
        s3r = Signal(self._beat_layout(DecodedScale), name="side_3r")
        pairs = [(s3r.valid, s2r.valid), (s3r.flags, s2r.flags)]
        for j in range(nseg):
            pairs.append((s3r.msum[j], s2r.seg[j].msum))
            for c, h in enumerate([s2r.seg[j].scale, s2r.seg[j].min][:nsc]):
                e_field = h[FP16_FRAC_BITS:15]
                ed = Cat(Mux(e_field == 0, 1, e_field), Const(0, 1)).as_signed() \
                    - (FP16_BIAS + FP16_FRAC_BITS)
                term = s3r.terms[c][j]
                pairs += [(term.mant, Cat(h[:FP16_FRAC_BITS], e_field != 0)),
                          (term.neg, h[15]),
                          (term.sh, ed + s2r.seg[j].exp + ACC_FRAC)]
        stage(*pairs)

        s3 = Signal.like(s3r, name="side_3")
        prod3 = Signal(g.products_layout, name="prod_3")
        stage((s3, s3r), (prod3, self.products))

        # Adder trees, one per segment, over two stages; the shifts are
        # clamped alongside: rsh = SH_MAX - sh within [0, MAX_RSH].
        part = min(PART_LANES, g.segment_lanes)
        nparts = g.segment_lanes // part
        part_bits = LANE_PRODUCT_BITS + exact_log2(part)
        s4 = Signal(self._beat_layout(g.shift_term_layout), name="side_4")
        psum4 = Signal(data.ArrayLayout(data.ArrayLayout(signed(part_bits), nparts), nseg),
                       name="psum_4")
        pairs = [(s4.valid, s3.valid), (s4.flags, s3.flags), (s4.msum, s3.msum)]
        for c in range(nsc):
            for j in range(nseg):
                src, dst = s3.terms[c][j], s4.terms[c][j]
                rsh = SH_MAX - src.sh
                # The sign goes into the mantissa here, where there is time,
                # not before the accumulator's multipliers.
                pairs += [(dst.mant, Mux(src.neg, -src.mant, src.mant)),
                          (dst.rsh, Mux(rsh < 0, 0, Mux(rsh > MAX_RSH, MAX_RSH, rsh)))]
        for j in range(nseg):
            for p in range(nparts):
                base = j * g.segment_lanes + p * part
                pairs.append((psum4[j][p], tree_reduce(prod3[base + i] for i in range(part))))
        stage(*pairs)

        s5 = Signal.like(s4, name="side_5")
        ssum5 = Signal(data.ArrayLayout(signed(DOT_BITS), nseg), name="ssum_5")
        stage((s5, s4), *((ssum5[j], tree_reduce(psum4[j][p] for p in range(nparts)))
                          for j in range(nseg)))

        # A block spread over several beats is summed here; its dot product
        # leaves with its last beat.
        dot_acc = Signal(data.ArrayLayout(signed(DOT_BITS), nseg), name="dot_acc")
        dot_sum = Signal(data.ArrayLayout(signed(DOT_BITS), nseg), name="dot_sum")
        for j in range(nseg):
            m.d.comb += dot_sum[j].eq(Mux(s5.flags.blk_first, 0, dot_acc[j]) + ssum5[j])
        with m.If(en & s5.valid):
            m.d.sync += dot_acc.eq(dot_sum)

        block = self.block
        stage((block.valid, s5.valid & s5.flags.blk_last & ~s5.flags.wide),
              (block.flags.row_first, s5.flags.row_first),
              (block.flags.row_last, s5.flags.row_last),
              (block.flags.final, s5.flags.final),
              (block.terms, s5.terms), (block.msum, s5.msum), (block.dot, dot_sum))
        if g.has_f16:
            self._f16(m, stage, s2r, s3, s4, s5)
        return m

    def _f16(self, m, stage, s2r, s3, s4, s5):
        """F16 blocks: ``W = sum of (m * (+-md)) << u``, exact, over the block's beats.

        Rides the same stages as the dot products (the beat's flags from
        ``s3`` to ``s5``) and leaves on ``wide`` term 0 with ``block``.
        """
        g = self.geometry
        en, nf = self.en, g.f16_lanes
        u3r = Signal(g.f16_side_layout, name="f16_u_3r")
        exp3r = Signal(signed(8), name="f16_exp_3r")
        exp3, exp4, exp5 = (Signal(signed(8), name=f"f16_exp_{k}") for k in (3, 4, 5))
        stage((u3r, s2r.u), (exp3r, s2r.seg[0].exp))

        # Each product shifted by its u (0..30) as it is registered (u mod 4
        # is already in the product: Lanes shifted the DSP operand; the rest
        # is a shift by a multiple of 4), ...
        shifted_bits = F16_PRODUCT_BITS + F16_MAX_U
        sh3 = Signal(data.ArrayLayout(signed(shifted_bits), nf), name="f16_shifted_3")
        stage((exp3, exp3r), (exp4, exp3), (exp5, exp4),
              *((sh3[i], self.f16_products[i] << Cat(Const(0, 2), u3r[i][2:]))
                for i in range(nf)))
        # ... summed in parts of four, ...
        part = min(F16_PART_LANES, nf)
        nparts = nf // part
        psum4 = Signal(data.ArrayLayout(signed(shifted_bits + exact_log2(part)), nparts),
                       name="f16_psum_4")
        stage(*((psum4[p], tree_reduce(sh3[p * part + i] for i in range(part)))
                for p in range(nparts)))
        # ... then the beat, then the block's beats (exact: |W| < 2^61).
        ssum5 = Signal(signed(F16_WIDE_BITS), name="f16_ssum_5")
        stage((ssum5, tree_reduce(psum4[p] for p in range(nparts))))
        w_acc = Signal(signed(F16_WIDE_BITS), name="f16_w_acc")
        w_sum = Signal(signed(F16_WIDE_BITS), name="f16_w_sum")
        m.d.comb += w_sum.eq(Mux(s5.flags.blk_first, 0, w_acc) + ssum5)
        with m.If(en & s5.valid):
            m.d.sync += w_acc.eq(w_sum)
        wide = self.wide
        stage((wide.valid, s5.valid & s5.flags.blk_last & s5.flags.wide),
              (wide.flags.row_first, s5.flags.row_first),
              (wide.flags.row_last, s5.flags.row_last),
              (wide.flags.final, s5.flags.final),
              (wide.terms[0].w, w_sum), (wide.terms[0].exp, exp5))
