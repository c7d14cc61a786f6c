"""Row accumulator: scale each block term and add it into the fixed-point row sum.

Per segment and scale: ``p = dot * md`` (Q4_1's second term: ``msum * md'``),
signed, then shifted into the accumulator's fixed point,
``term = floor(p * 2^sh)`` computed as ``(p << SH_MAX) >> rsh`` in two steps
(coarse multiples of 16, then 0 to 15), and all terms of the block are added
into the ``ACC_BITS``-wide row accumulator (``docs/arithmetic.md`` section
3). A row's first block restarts the sum.

Latency: a block's contribution is in ``row.acc`` four cycles after
``block``; ``row.valid`` (the row's last block) rises in the same cycle.
The accumulator may be overwritten by the next row's first block on the
edge after ``row.valid``, so a consumer takes ``row.acc`` in that cycle.
Every stage advances on ``en``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from ..config import ACC_BITS, SCALED_BITS, SH_MAX
from ..utils import tree_reduce
from .pipeline import EngineBlock, RowFlags

__all__ = ["RowAccumulator"]

#: Bits of the fine step of the two-step shift (0 to 15).
FINE_SHIFT_BITS = 4


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
            "row": Out(geometry.row_layout),
        }, pipelined=True)

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        en, block = self.en, self.block
        nseg, nsc = g.segments, g.scale_terms
        nterms = nsc * nseg
        wide = ACC_BITS + SH_MAX

        def stage(*pairs):
            with m.If(en):
                m.d.sync += [dst.eq(src) for dst, src in pairs]

        def beat(terms):
            return Signal(data.StructLayout({"valid": 1, "flags": RowFlags, "terms": terms}))

        # Multiply by the scales' 11-bit mantissas: the block dot product by
        # d and (Q4_1) the block's mantissa sum by m.
        s7 = beat(data.ArrayLayout(data.StructLayout({
            "p": signed(SCALED_BITS), "neg": 1, "rsh": g.shift_term_layout.members["rsh"],
        }), nterms))
        pairs = [(s7.valid, block.valid), (s7.flags, block.flags)]
        operands = [block.dot, block.msum]
        for c in range(nsc):
            for j in range(nseg):
                term, out = block.terms[c][j], s7.terms[c * nseg + j]
                pairs += [(out.p, operands[c][j] * term.mant), (out.neg, term.neg),
                          (out.rsh, term.rsh)]
        stage(*pairs)

        # Sign, then the coarse shift (multiples of 16) ...
        s8 = beat(data.ArrayLayout(data.StructLayout({
            "t": signed(wide), "fine": FINE_SHIFT_BITS,
        }), nterms))
        pairs = [(s8.valid, s7.valid), (s8.flags, s7.flags)]
        for t in range(nterms):
            src = s7.terms[t]
            signed_p = Mux(src.neg, -src.p, src.p)
            coarse = Cat(Const(0, FINE_SHIFT_BITS), src.rsh[FINE_SHIFT_BITS:])
            pairs += [(s8.terms[t].t, (signed_p.as_signed() << SH_MAX) >> coarse),
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
                                tree_reduce(s9.terms[t] for t in range(nterms)))
        with m.If(en & s9.valid):
            m.d.sync += acc.eq(acc_next)
        stage((self.row.valid, s9.valid & s9.flags.row_last),
              (self.row.last, s9.flags.final))
        return m
