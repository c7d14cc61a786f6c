"""Multipliers mapped onto FPGA DSP blocks with their own registers.

A DSP column sits far from the logic that feeds it; routing from fabric
registers into the multiplier and back out again costs most of a 10 ns cycle
on ECP5. Using the DSP's own input and output registers leaves only the
routing in each path. The behavioural form (simulation and other platforms)
has exactly the same two-cycle latency and enable behaviour, so the rest of
the design cannot tell the two apart.
"""

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisteredMultiplier"]


class RegisteredMultiplier(wiring.Component):
    """``p = a * b`` for signed operands, registered on both sides.

    ``p`` shows the product of the operands present two enabled cycles
    earlier; when ``en`` is low, both register stages hold.

    Parameters
    ----------
    a_width, b_width : int
        Signed operand widths, at most 18 each (one ECP5 ``MULT18X18D``).

    Attributes
    ----------
    en : In(1)
        Advances both register stages.
    a : In(signed(a_width))
    b : In(signed(b_width))
    p : Out(signed(a_width + b_width))
        The product, two enabled cycles after its operands.

    Raises
    ------
    ValueError
        If an operand width is outside 2 to 18 bits.
    """

    def __init__(self, a_width, b_width):
        if not (1 < a_width <= 18 and 1 < b_width <= 18):
            raise ValueError(f"operand widths must be 2 to 18 bits (one MULT18X18D), "
                             f"not {a_width} and {b_width}")
        super().__init__({
            "en": In(1),
            "a": In(signed(a_width)),
            "b": In(signed(b_width)),
            "p": Out(signed(a_width + b_width)),
        })

    def elaborate(self, platform):
        m = Module()
        if getattr(platform, "family", None) == "ecp5":
            a = Signal(signed(18))
            b = Signal(signed(18))
            p = Signal(len(self.p))
            m.d.comb += [a.eq(self.a), b.eq(self.b), self.p.eq(p)]
            # Only the used pins are connected: every pin tied to a constant
            # is a route from the global GND/VCC net, and with 32 DSPs those
            # routes alone can make nextpnr's router give up.
            m.submodules.mult = Instance(
                "MULT18X18D",
                p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
                p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
                p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
                p_GSR="DISABLED", p_RESETMODE="SYNC",
                i_SIGNEDA=Const(1), i_SIGNEDB=Const(1),
                i_CLK0=ClockSignal("sync"), i_CE0=self.en,
                **{f"i_A{k}": a[k] for k in range(18)},
                **{f"i_B{k}": b[k] for k in range(18)},
                **{f"o_P{k}": p[k] for k in range(len(self.p))})
        else:
            a = Signal.like(self.a)
            b = Signal.like(self.b)
            with m.If(self.en):
                m.d.sync += [a.eq(self.a), b.eq(self.b), self.p.eq(a * b)]
        return m
