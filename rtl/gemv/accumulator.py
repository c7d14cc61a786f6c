"""Row accumulator: scale each block term and add it into the fixed-point row sum.

Per segment and scale: ``p = dot * md`` (Q4_1's second term: ``msum * md'``),
signed, then shifted into the accumulator's fixed point,
``term = floor(p * 2^sh)`` computed as ``(p << SH_MAX) >> rsh`` in two steps
(coarse multiples of 16, then 0 to 15), and all terms of the block are added
into the ``ACC_BITS``-wide row accumulator (``docs/arithmetic.md`` section
3). A row's first block restarts the sum.

F16 and BCQ blocks arrive on ``wide`` instead, as exact block sums ``W``
(``docs/arithmetic.md`` sections 7 and 8.1): each of the ``wide_terms``
units forms ``floor(W * 2^(e + ACC_FRAC - WIDE_SH))`` in the same three
stages and the terms join the same sum.

Latency: a block's contribution is in ``row.acc`` four cycles after
``block``; ``row.valid`` (the row's last block) rises in the same cycle.
The accumulator may be overwritten by the next row's first block on the
edge after ``row.valid``, so a consumer takes ``row.acc`` in that cycle.
Every stage advances on ``en``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from ..config import ACC_BITS, ACC_FRAC, SCALED_BITS, SH_MAX, WIDE_BITS, WIDE_SH
from ..utils import tree_reduce
from .pipeline import EngineBlock, RowFlags

__all__ = ["RowAccumulator"]

#: Bits of the fine step of the two-step shift (0 to 15).
FINE_SHIFT_BITS = 4
#: Where the scaled-term multiply splits its operand (the low half unsigned,
#: the high half signed, each within one 18 x 18 DSP multiplier).
_SPLIT = 17

#: Left shift of a wide term before its right shift: the largest
#: ``exp + ACC_FRAC - WIDE_SH`` the host produces (``exp <= 1``).
WIDE_LSH = 9
#: Largest right shift of ``W << WIDE_LSH``: any larger leaves only the sign.
WIDE_MAX_RSH = WIDE_BITS + WIDE_LSH - 1


class RowAccumulator(EngineBlock):
    """Scale, shift and accumulate block terms into a row's fixed-point sum.

    Parameters
    ----------
    geometry : EngineGeometry
        Segments and scale terms per block.

    Attributes
    ----------
    en : In(1)
        Pipeline enable.
    block : In(geometry.block_layout)
        A finished block from :class:`~lpaccel.rtl.gemv.blockdot.BlockDot`.
    row : Out(geometry.row_layout)
        ``acc`` is the accumulator register (``A``, with ``ACC_FRAC``
        fraction bits); ``valid`` marks the cycle it holds a finished row,
        ``last`` the job's last row.
    """

    def __init__(self, geometry):
        super().__init__(geometry, {
            "block": In(geometry.block_layout),
            "wide": In(geometry.wide_layout),
            "row": Out(geometry.row_layout),
        }, pipelined=True)

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        en, block, wide_in = self.en, self.block, self.wide
        nseg, nsc = g.segments, g.scale_terms
        nwide = g.wide_terms
        nterms = nsc * nseg
        wide = ACC_BITS + SH_MAX

        def stage(*pairs):
            with m.If(en):
                m.d.sync += [dst.eq(src) for dst, src in pairs]

        def beat(terms):
            return Signal(data.StructLayout({"valid": 1, "flags": RowFlags, "terms": terms}))

        # Multiply by the scales' signed 12-bit mantissas (+-m, the sign put
        # in by BlockDot): the block dot product by d and (Q4_1) the block's
        # mantissa sum by m. The operand is split at bit _SPLIT so that each
        # half is one 18 x 18 DSP multiply;
        # the halves are registered apart and added in the next stage (a
        # carry chain after the DSP was the all-formats engine's critical path).
        blk7 = Signal()                    # s7 holds a scaled block (not a wide one)
        s7 = beat(data.ArrayLayout(data.StructLayout({
            "lo": signed(_SPLIT + 13), "hi": signed(SCALED_BITS - _SPLIT),
            "rsh": g.shift_term_layout.members["rsh"],
        }), nterms))
        # Row flags from whichever input holds a block (never both).
        pairs = [(s7.valid, block.valid | wide_in.valid),
                 (s7.flags, Mux(wide_in.valid, wide_in.flags, block.flags)),
                 (blk7, block.valid)]
        operands = [block.dot, block.msum]
        for c in range(nsc):
            for j in range(nseg):
                term, out = block.terms[c][j], s7.terms[c * nseg + j]
                op = operands[c][j]
                smant = term.mant                          # +-m, signed (BlockDot)
                pairs += [(out.lo, op[:_SPLIT] * smant),
                          (out.hi, op[_SPLIT:].as_signed() * smant if len(op) > _SPLIT
                           else 0),
                          (out.rsh, term.rsh)]
        stage(*pairs)

        # Wide terms (F16, BCQ): term = floor(W * 2^(exp + ACC_FRAC - WIDE_SH)),
        # i.e. (W << WIDE_LSH) >> (WIDE_LSH - exp - ACC_FRAC + WIDE_SH) with the
        # right shift clamped to [0, WIDE_MAX_RSH] (beyond it only the sign is left).
        w7 = Signal(data.ArrayLayout(data.StructLayout({
            "w": signed(WIDE_BITS), "rsh": range(WIDE_MAX_RSH + 1),
        }), max(1, nwide)), name="wide_7")
        w8 = Signal(data.ArrayLayout(data.StructLayout({
            "t": signed(WIDE_BITS + WIDE_LSH), "fine": FINE_SHIFT_BITS,
        }), max(1, nwide)), name="wide_8")
        # The wide terms leave S10 summed in nterms groups: a cycle holds wide
        # terms or scaled terms, never both (the other kind is zero), so group
        # t merges with scaled term t by an OR and the row sum keeps its
        # operand count.
        ngroups = min(nwide, nterms)
        per_group = -(-nwide // max(1, ngroups))
        w9 = Signal(data.ArrayLayout(signed(ACC_BITS), max(1, ngroups)), name="wide_9")
        if nwide:
            pairs = []
            for k in range(nwide):
                src = wide_in.terms[k]
                rsh = Signal(signed(10), name=f"wide_rsh_{k}")
                base = WIDE_LSH - ACC_FRAC + WIDE_SH
                m.d.comb += rsh.eq(base - src.exp)
                # The clamp compares exp with constants, beside the subtraction
                # rather than after it (one carry chain less on this path).
                pairs += [(w7[k].w, Mux(wide_in.valid, src.w, 0)),
                          (w7[k].rsh, Mux(src.exp > base, 0,
                                          Mux(src.exp < base - WIDE_MAX_RSH, WIDE_MAX_RSH,
                                              rsh)))]
            stage(*pairs)
            pairs = []
            for k in range(nwide):
                coarse = Cat(Const(0, FINE_SHIFT_BITS), w7[k].rsh[FINE_SHIFT_BITS:])
                pairs += [(w8[k].t, (w7[k].w << WIDE_LSH) >> coarse),
                          (w8[k].fine, w7[k].rsh[:FINE_SHIFT_BITS])]
            stage(*pairs)
            shifted = [(w8[k].t >> w8[k].fine)[:ACC_BITS].as_signed() for k in range(nwide)]
            stage(*((w9[t], tree_reduce(shifted[t * per_group:(t + 1) * per_group]))
                    for t in range(ngroups)))

        # Sign, then the coarse shift (multiples of 16) ...
        s8 = beat(data.ArrayLayout(data.StructLayout({
            "t": signed(wide), "fine": FINE_SHIFT_BITS,
        }), nterms))
        pairs = [(s8.valid, s7.valid), (s8.flags, s7.flags)]
        # A wide block's cycle adds no scaled terms (the dot products are not its).
        for t in range(nterms):
            src = s7.terms[t]
            signed_p = Signal(signed(SCALED_BITS + 1), name=f"scaled_{t}")
            m.d.comb += signed_p.eq((src.hi << _SPLIT) + src.lo)
            coarse = Cat(Const(0, FINE_SHIFT_BITS), src.rsh[FINE_SHIFT_BITS:])
            pairs += [(s8.terms[t].t, Mux(blk7, (signed_p.as_signed() << SH_MAX) >> coarse, 0)),
                      (s8.terms[t].fine, src.rsh[:FINE_SHIFT_BITS])]
        stage(*pairs)

        # ... and the fine shift, cut to the accumulator's width.
        s9 = beat(data.ArrayLayout(signed(ACC_BITS), nterms))
        stage((s9.valid, s8.valid), (s9.flags, s8.flags),
              *((s9.terms[t], (s8.terms[t].t >> s8.terms[t].fine)[:ACC_BITS].as_signed())
                for t in range(nterms)))

        # Add the block's terms into the row accumulator.
        acc = self.row.acc
        acc_next = Signal(signed(ACC_BITS))
        m.d.comb += acc_next.eq(Mux(s9.flags.row_first, 0, acc) +
                                tree_reduce([(s9.terms[t] | w9[t]).as_signed()
                                             if t < ngroups else s9.terms[t]
                                             for t in range(nterms)]))
        with m.If(en & s9.valid):
            m.d.sync += acc.eq(acc_next)
        stage((self.row.valid, s9.valid & s9.flags.row_last),
              (self.row.last, s9.flags.final))
        return m
