"""AXI4-Lite subordinate that turns bus transactions into single-cycle register accesses."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..bus.axi import AXI4LiteSignature, Resp
from ..stream import SkidBuffer

__all__ = ["AXI4LiteSubordinate"]


class AXI4LiteSubordinate(wiring.Component):
    """AXI4-Lite subordinate port in front of a register target.

    AW, W and AR each pass a :class:`~lpaccel.rtl.stream.SkidBuffer`, so
    ``awready``/``wready``/``arready`` are flip-flop outputs; B and R are
    registers that hold their payload until the manager takes it. A write
    executes once both its address and its data have arrived (in either
    order) and the B register is free; a read executes once its address has
    arrived and the R register is free. A read and a write may execute in
    the same cycle (the read sees the value before the write).

    Checks made here, before the target sees anything: an address that is
    not a multiple of 4 (unaligned) or a write whose ``wstrb`` is not all
    ones (narrow) is answered ``SLVERR`` and not forwarded. The target
    answers everything else through ``access.w_resp``/``access.r_resp``.

    Latency with an idle bus and ``bready``/``rready`` high: the response is
    valid two cycles after the request handshake (one in the skid buffer,
    one in the response register).

    Parameters
    ----------
    addr_width : int
        Byte address width of the bus.

    Attributes
    ----------
    bus : In(AXI4LiteSignature(addr_width=addr_width, data_width=32))
        The subordinate port.
    access : Out(AXI4LiteSubordinate.Access(addr_width))
        Single-cycle accesses towards the register target.
    aw_skid, w_skid, ar_skid : SkidBuffer
        The request buffers (for formal harnesses).
    """

    class Access(wiring.Signature):
        """Single-cycle register accesses, from the bus side.

        Members
        -------
        w_en : Out(1)
            A write executes this cycle (at the next clock edge).
        w_addr, w_data : Out
            Its byte address (a multiple of 4) and 32-bit data.
        w_resp : In(2)
            The target's answer to the write in this cycle, combinationally
            (``Resp.OKAY``, ``SLVERR`` or ``DECERR``); a target must change
            nothing for a write it does not answer ``OKAY``.
        r_en : Out(1)
            A read executes this cycle.
        r_addr : Out
            Its byte address (a multiple of 4).
        r_data, r_resp : In
            The target's answer in the same cycle, combinationally.
        """

        def __init__(self, addr_width):
            self.addr_width = addr_width
            super().__init__({
                "w_en": Out(1), "w_addr": Out(addr_width), "w_data": Out(32),
                "w_resp": In(2),
                "r_en": Out(1), "r_addr": Out(addr_width),
                "r_data": In(32), "r_resp": In(2),
            })

        def __eq__(self, other):
            return type(other) is type(self) and other.addr_width == self.addr_width

        def __hash__(self):
            return hash((type(self), self.addr_width))

    def __init__(self, addr_width):
        self.addr_width = addr_width
        super().__init__({
            "bus": In(AXI4LiteSignature(addr_width=addr_width, data_width=32)),
            "access": Out(self.Access(addr_width)),
        })
        addr_layout = data.StructLayout({"addr": addr_width, "prot": 3})
        # Created here rather than in elaborate() so that formal harnesses can
        # state invariants over their occupancy.
        self.aw_skid = self.request_buffer("aw", addr_layout)
        self.w_skid = self.request_buffer("w", data.StructLayout({"data": 32, "strb": 4}))
        self.ar_skid = self.request_buffer("ar", addr_layout)

    def request_buffer(self, channel, layout):
        """The buffer in front of request channel ``channel`` (``"aw"``, ``"w"``, ``"ar"``).

        A :class:`~lpaccel.rtl.stream.SkidBuffer` of ``layout``; a formal
        harness overrides this to put a broken buffer in and show that the
        prover catches it.
        """
        return SkidBuffer(layout)

    def elaborate(self, platform):
        m = Module()
        bus, access = self.bus, self.access
        m.submodules.aw = aw = self.aw_skid
        m.submodules.w = w = self.w_skid
        m.submodules.ar = ar = self.ar_skid
        for skid, channel, fields in ((aw, bus.aw, ("addr", "prot")),
                                      (w, bus.w, ("data", "strb")),
                                      (ar, bus.ar, ("addr", "prot"))):
            m.d.comb += [skid.input.valid.eq(channel.valid), channel.ready.eq(skid.input.ready)]
            m.d.comb += [getattr(skid.input.payload, f).eq(getattr(channel, f)) for f in fields]

        b_valid = Signal()
        b_resp = Signal(2)
        r_valid = Signal()
        r_data = Signal(32)
        r_resp = Signal(2)
        m.d.comb += [bus.b.valid.eq(b_valid), bus.b.resp.eq(b_resp),
                     bus.r.valid.eq(r_valid), bus.r.data.eq(r_data), bus.r.resp.eq(r_resp)]

        # --- writes
        write = Signal()
        w_legal = Signal()
        m.d.comb += [
            write.eq(aw.output.valid & w.output.valid & (~b_valid | bus.b.ready)),
            aw.output.ready.eq(write),
            w.output.ready.eq(write),
            w_legal.eq((aw.output.payload.addr[:2] == 0) & (w.output.payload.strb == 0b1111)),
            access.w_en.eq(write & w_legal),
            access.w_addr.eq(aw.output.payload.addr),
            access.w_data.eq(w.output.payload.data),
        ]
        with m.If(write):
            m.d.sync += [b_valid.eq(1), b_resp.eq(Resp.SLVERR)]
            with m.If(w_legal):
                m.d.sync += b_resp.eq(access.w_resp)
        with m.Elif(bus.b.ready):
            m.d.sync += b_valid.eq(0)

        # --- reads
        read = Signal()
        r_legal = Signal()
        m.d.comb += [
            read.eq(ar.output.valid & (~r_valid | bus.r.ready)),
            ar.output.ready.eq(read),
            r_legal.eq(ar.output.payload.addr[:2] == 0),
            access.r_en.eq(read & r_legal),
            access.r_addr.eq(ar.output.payload.addr),
        ]
        with m.If(read):
            m.d.sync += [r_valid.eq(1), r_resp.eq(Resp.SLVERR), r_data.eq(0)]
            with m.If(r_legal):
                m.d.sync += [r_resp.eq(access.r_resp), r_data.eq(access.r_data)]
        with m.Elif(bus.r.ready):
            m.d.sync += r_valid.eq(0)
        return m
