"""Formal harness of the generated :class:`~lpaccel.rtl.csr.bank.CsrBank`.

The harness is a subclass of the bank, so every port of the bank (the
AXI4-Lite bus and the hardware side of every field) is a free input of the
proof; reset is free too. It proves the read-data rules of
``docs/regmap.md`` on the whole generated map.
"""

from amaranth.hdl import Assert, Signal
from formal_harness import reset_control

from lpaccel.rtl.bus.axi import Resp
from lpaccel.rtl.csr.bank import CsrBank


class CsrBankHarness(CsrBank):
    """Read-data properties of the generated CSR bank (``docs/regmap.md``).

    Proved, for any bus traffic, any hardware-side inputs and a reset at any
    time:

    * every error read (DECERR or SLVERR) returns RDATA = 0;
    * R (valid, data, resp) and B (valid, resp) hold while the manager stalls
      them;
    * a reset empties B and R.
    """

    def elaborate(self, platform):
        m = super().elaborate(platform)
        bus = self.bus
        after_reset = reset_control(m, free_reset=True)
        with m.If(after_reset):
            m.d.comb += [Assert(~bus.b.valid), Assert(~bus.r.valid)]
        with m.If(bus.r.valid & (bus.r.resp != Resp.OKAY)):
            m.d.comb += Assert(bus.r.data == 0)
        for ch, payload in ((bus.r, [bus.r.data, bus.r.resp]), (bus.b, [bus.b.resp])):
            stalled = Signal()
            held = [Signal.like(p) for p in payload]
            m.d.sync += stalled.eq(ch.valid & ~ch.ready)
            m.d.sync += [h.eq(p) for h, p in zip(held, payload)]
            with m.If(stalled):
                m.d.comb += [Assert(ch.valid)] + [Assert(p == h) for p, h in zip(payload, held)]
        return m
