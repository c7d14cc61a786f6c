"""Pipelined, exactly rounded conversion of the row accumulator to FP32.

``value = fp32(acc * 2^-ACC_FRAC)``, rounded to nearest, ties to even, ``+0.0``
for zero (``docs/arithmetic.md`` section 4). Seven register stages, all
advancing on ``en``::

    acc -> |sign, magnitude| -> |normalize 64| -> |32| -> |16, 8| -> |4, 2, 1|
        -> |kept bits, guard, sticky| -> |round, pack| -> value

Each normalization stage is one wide zero test and one 2:1 multiplexer deep
per step; a ``tag`` bit (the engine's "last row" flag) rides along.

Latency: 7 cycles from ``input`` to ``output``.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..config import ACC_BITS, ACC_FRAC

__all__ = ["Fp32Packer"]

#: Significand bits of FP32, hidden bit included.
FP32_MANT_BITS = 24
#: Exponent bias of FP32.
FP32_BIAS = 127
#: Normalization steps (left shifts by powers of two), grouped per register stage.
NORMALIZE_STAGES = ([64], [32], [16, 8], [4, 2, 1])


class Fp32Packer(wiring.Component):
    """Convert ``acc * 2^-ACC_FRAC`` to FP32 bits, exactly rounded, in seven stages.

    Attributes
    ----------
    en : In(1)
        Advances every stage.
    input : In(StructLayout)
        ``valid``, ``acc`` (``signed(ACC_BITS)``) and a ``tag`` bit.
    output : Out(StructLayout)
        ``valid``, ``value`` (FP32 bits) and ``tag``, seven enabled cycles later.
    """

    InputLayout = data.StructLayout({"valid": 1, "acc": signed(ACC_BITS), "tag": 1})
    OutputLayout = data.StructLayout({"valid": 1, "value": unsigned(32), "tag": 1})

    def __init__(self):
        super().__init__({
            "en": In(1),
            "input": In(self.InputLayout),
            "output": Out(self.OutputLayout),
        })

    def elaborate(self, platform):
        m = Module()
        w = ACC_BITS
        steps = sorted((s for group in NORMALIZE_STAGES for s in group), reverse=True)

        def stage(*pairs):
            with m.If(self.en):
                m.d.sync += [dst.eq(src) for dst, src in pairs]

        # The normalization state between stages; ``lz`` holds the decision
        # of every step taken so far (each step is taken at most once, so the
        # shift count is the decisions side by side).
        norm = data.StructLayout({
            "valid": 1, "tag": 1, "sign": 1, "zero": 1, "mag": unsigned(w),
            "lz": data.StructLayout({f"by{s}": 1 for s in steps}),
        })

        # Stage 1: sign and magnitude.
        acc = self.input.acc
        s = Signal(norm, name="sign_mag")
        stage((s.valid, self.input.valid), (s.tag, self.input.tag), (s.sign, acc[-1]),
              (s.mag, Mux(acc[-1], -acc, acc)))

        # Stages 2 to 5: shift the leading one to bit w-1 in halving steps.
        first = s
        for group in NORMALIZE_STAGES:
            x = s.mag
            decided = {}
            for step in group:
                top_zero = Signal(name=f"top_zero{step}")
                shifted = Signal(w, name=f"norm{step}")
                m.d.comb += [top_zero.eq(x[w - step:] == 0),
                             shifted.eq(Mux(top_zero, x << step, x))]
                decided[step] = top_zero
                x = shifted
            n = Signal(norm, name=f"norm_{group[0]}")
            stage((n.valid, s.valid), (n.tag, s.tag), (n.sign, s.sign),
                  (n.zero, (first.mag == 0) if s is first else s.zero), (n.mag, x),
                  *((getattr(n.lz, f"by{k}"), getattr(s.lz, f"by{k}")) for k in steps
                    if k not in decided and k > group[0]),
                  *((getattr(n.lz, f"by{k}"), decided[k]) for k in decided))
            s = n
        lz = Cat(*(getattr(s.lz, f"by{k}") for k in reversed(steps)))

        # Stage 6: kept bits, guard and sticky. The leading one sits at bit
        # w-1; its weight is 2^(w-1-lz-ACC_FRAC).
        r = Signal(data.StructLayout({
            "valid": 1, "tag": 1, "sign": 1, "zero": 1, "lz": len(lz),
            "mant": FP32_MANT_BITS, "guard": 1, "sticky": 1,
        }), name="round")
        stage((r.valid, s.valid), (r.tag, s.tag), (r.sign, s.sign), (r.zero, s.zero),
              (r.lz, lz), (r.mant, s.mag[w - FP32_MANT_BITS:]),
              (r.guard, s.mag[w - FP32_MANT_BITS - 1]),
              (r.sticky, s.mag[:w - FP32_MANT_BITS - 1] != 0))

        # Stage 7: round to nearest, ties to even, and pack.
        round_up = r.guard & (r.sticky | r.mant[0])
        rounded = Signal(FP32_MANT_BITS + 1)
        m.d.comb += rounded.eq(r.mant + round_up)
        exp = Signal(9)
        m.d.comb += exp.eq((w - 1 - ACC_FRAC + FP32_BIAS) - r.lz + rounded[FP32_MANT_BITS])
        frac = Mux(rounded[FP32_MANT_BITS], rounded[1:FP32_MANT_BITS],
                   rounded[0:FP32_MANT_BITS - 1])
        out = self.output
        stage((out.valid, r.valid), (out.tag, r.tag),
              (out.value, Mux(r.zero, 0, Cat(frac, exp[:8], r.sign))))
        return m
