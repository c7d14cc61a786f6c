"""The multiply lanes: per-lane weight decode and one DSP multiplier per lane.

For each lane, the weight code of the beat (a nibble, an int8 or a uint8) is
turned into the integer ``v = q - z`` (``z`` = 8 for Q4_0, the INT zero
point, else 0; an F16 weight into its signed 11-bit mantissa ``+-md``, on the
first ``lanes / 4`` lanes, whose multipliers take a 12-bit operand) and
paired with the activation mantissa it multiplies, taken from the buffer row
read for the beat. The products come out of
:class:`~lpaccel.rtl.dsp.RegisteredMultiplier`\\ s.

Latency: ``side`` (exponents, block sums, raw scales, flags) one cycle after
``beat``; ``products`` two cycles after ``side`` (the multipliers' own input
and output registers). Everything advances on ``en``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..config import BLOCK, WeightFormat
from ..dsp import RegisteredMultiplier
from ..utils import select
from .pipeline import EngineBlock

__all__ = ["Lanes"]


class Lanes(EngineBlock):
    """Decode each lane's weight and multiply it by its activation mantissa.

    Parameters
    ----------
    geometry : EngineGeometry
        Lanes, segments and the formats built in.

    Attributes
    ----------
    en : In(1)
        Pipeline enable.
    beat : In(geometry.stage1_layout)
        The quant beat, registered by the sequencer.
    row : In(geometry.buffer_row_layout)
        The activation buffer row of the beat (read in the same cycle).
    side : Out(geometry.lane_layout)
        Per segment: scale, Q4_1 minimum, activation exponent and mantissa
        sum; the beat's flags and valid bit. One cycle after ``beat``.
    products : Out(geometry.products_layout)
        ``v * mant`` per lane, two cycles after ``side``.
    f16_products : Out(geometry.f16_products_layout)
        The first ``n16`` lanes' full products (F16: ``mant * (+-md)``), with
        ``products``.
    """

    def __init__(self, geometry):
        super().__init__(geometry, {
            "beat": In(geometry.stage1_layout),
            "row": In(geometry.buffer_row_layout),
            "side": Out(geometry.lane_layout),
            "products": Out(geometry.products_layout),
            "f16_products": Out(geometry.f16_products_layout),
        }, pipelined=True)

    def _window(self, flat, width, count, total):
        """The ``count`` entries of ``width`` bits (of ``total``) that a beat covers."""
        if count >= total:
            return flat[:count * width]
        chunks = [flat[k * count * width:(k + 1) * count * width] for k in range(total // count)]
        return select(chunks, self.beat.sub[:exact_log2(total // count)])

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        beat, row, side = self.beat, self.row, self.side
        n4, n8 = g.n4, g.n8
        bpr = g.blocks_per_row

        # The buffer row, flattened: mantissas, exponents, block sums.
        mant_flat = Cat(row[k].mant.as_value() for k in range(bpr))
        exp_flat = Cat(row[k].exp for k in range(bpr))
        msum_flat = Cat(row[k].msum for k in range(bpr))
        msw = g.msum_bits
        mants4 = self._window(mant_flat, 16, n4, g.row_cols)
        mants8 = self._window(mant_flat, 16, n8, g.row_cols)
        exps4 = self._window(exp_flat, 8, max(1, n4 // BLOCK), bpr)
        exps8 = self._window(exp_flat, 8, max(1, n8 // BLOCK), bpr)
        msum4 = self._window(msum_flat, msw, max(1, n4 // BLOCK), bpr)
        msum8 = self._window(msum_flat, msw, max(1, n8 // BLOCK), bpr)
        if g.has_f16:
            # An F16 beat (n16 <= 32 weights) lies inside one block of the row.
            n16 = g.n16
            mants16 = self._window(mant_flat, 16, n16, g.row_cols)
            blk16 = self.beat.sub >> exact_log2(BLOCK // n16)
            exp16 = select([exp_flat[8 * k:8 * k + 8] for k in range(bpr)],
                           blk16[:exact_log2(bpr)]) if bpr > 1 else exp_flat[:8]

        # Per lane: v = q - z (z of the lane's segment), the integer the lane
        # multiplies; q is the nibble, the int8 (Q8_0) or the uint8 (INT8).
        fmt, is8, word = beat.fmt, beat.is8, beat.word
        is16 = beat.flags.wide
        q8_signed = fmt == WeightFormat.Q8_0
        zero = []
        for j in range(g.segments):
            z = Signal(9, name=f"zero_{j}")
            m.d.comb += z.eq(Mux(fmt == WeightFormat.Q4_0, 8,
                                 Mux((fmt == WeightFormat.INT4) | (fmt == WeightFormat.INT8),
                                     beat.seg[j].second[:8], 0)))
            zero.append(z)
        nf = g.f16_lanes
        v = [Signal(signed(15 if i < nf else 9), name=f"v_{i}") for i in range(g.lanes)]
        mant = [Signal(signed(16), name=f"mant_{i}") for i in range(g.lanes)]
        pairs = []
        for i in range(g.lanes):
            z = zero[i // g.segment_lanes]
            nib = Cat(word[4 * i:4 * i + 4], Const(0, 6)).as_signed()
            if i < n8 and g.has8:
                byte = word[8 * i:8 * i + 8]
                code8 = Mux(q8_signed, byte.as_signed(), Cat(byte, Const(0, 2)).as_signed())
                code = Mux(is8, code8, nib) if g.has4 else code8
                a = Mux(is8, mants8.word_select(i, 16), mants4.word_select(i, 16)) \
                    if g.has4 else mants8.word_select(i, 16)
            elif g.has4:
                code = Mux(is8, 0, nib)
                a = Mux(is8, 0, mants4.word_select(i, 16))
            else:
                code, a = Const(0, signed(2)), Const(0, signed(16))
            if i < nf:
                # F16: the lane multiplies +-md << (u mod 4) (the weight's sign
                # and 11-bit mantissa, docs/arithmetic.md section 7, with the low
                # two bits of its shift u taken into the DSP operand so that only
                # multiples of 4 are left for BlockDot); u rides beside.
                # Timing (the all-formats build's critical path): the sign is
                # applied to the 11-bit md before the shift, and u mod 4 is
                # read off the exponent's low two bits, (e - 1) mod 4, without
                # a subtractor, so one short carry chain sits on the path.
                h = word[16 * i:16 * i + 16]
                e_field = h[10:15]
                e_nz = e_field != 0
                md = Cat(h[:10], e_nz)
                u = Signal(5, name=f"f16_u_{i}")
                m.d.comb += u.eq(Mux(e_nz, e_field - 1, 0))
                u_low = Signal(2, name=f"f16_ulow_{i}")
                m.d.comb += u_low.eq(Mux(e_nz, Cat(~e_field[0], ~(e_field[0] ^ e_field[1])), 0))
                md_pm = Signal(signed(12), name=f"f16_md_{i}")
                m.d.comb += md_pm.eq(Mux(h[15], -md, md))
                signed_md = md_pm << u_low
                a16 = mants16.word_select(i, 16)
                pairs += [(v[i], Mux(is16, signed_md, code - z)),
                          (mant[i], Mux(is16, a16, a).as_signed()),
                          (side.u[i], u)]
            else:
                pairs += [(v[i], code - z), (mant[i], a.as_signed())]

        # Per segment: the block's exponent and mantissa sum, and its scales.
        def segment(flat4, flat8, width, j):
            a = flat4.word_select(j, width) if (n4 // BLOCK) > j or j == 0 else Const(0, width)
            b = flat8.word_select(j, width) if (n8 // BLOCK) > j or j == 0 else Const(0, width)
            return Mux(is8, b, a)

        is_q41 = fmt == WeightFormat.Q4_1
        for j in range(g.segments):
            out, src = side.seg[j], beat.seg[j]
            exp = segment(exps4, exps8, 8, j)
            if g.has_f16 and j == 0:
                exp = Mux(is16, exp16, exp)
            pairs += [(out.exp, exp.as_signed()),
                      (out.msum, segment(msum4, msum8, msw, j).as_signed()),
                      (out.scale, src.scale),
                      (out.min, Mux(is_q41, src.second, 0))]
        pairs += [(side.valid, beat.valid), (side.flags, beat.flags)]
        with m.If(self.en):
            m.d.sync += [dst.eq(src) for dst, src in pairs]

        # One DSP multiplier per lane, with its own input and output registers.
        for i in range(g.lanes):
            m.submodules[f"mul{i}"] = mul = RegisteredMultiplier(16, len(v[i]))
            m.d.comb += [mul.en.eq(self.en), mul.a.eq(mant[i]), mul.b.eq(v[i]),
                         self.products[i].eq(mul.p)]
            if i < nf:
                m.d.comb += self.f16_products[i].eq(mul.p)
        return m
