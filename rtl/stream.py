"""Stream building blocks shared by the lpaccel blocks."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """A two-entry register slice that cuts every combinational path of a stream.

    ``input.ready`` comes straight from a flip-flop (it is low only while the
    skid entry is full) and ``output.valid``/``output.payload`` come straight
    from flip-flops, so neither side's ``ready`` nor ``valid`` reaches the
    other in the same cycle. Throughput is one beat per cycle; latency is one
    cycle. The second ("skid") entry catches the beat that arrives in the
    cycle ``output.ready`` falls, which a single register could not hold
    without a combinational ``input.ready``.

    Guarantees (proved in ``tests/formal``): beats leave in order, none lost
    or duplicated; ``output.valid`` and ``output.payload`` hold until the
    transfer; ``output.valid`` never depends on ``output.ready``; a beat taken
    while ``output.ready`` stays high leaves on the next cycle.

    Parameters
    ----------
    shape : shape-like
        Payload shape (a ``data.Struct``, a layout, or a width).

    Attributes
    ----------
    input : In(stream.Signature(shape))
        Beats from upstream.
    output : Out(stream.Signature(shape))
        Beats towards downstream.
    skid_valid, skid_payload : Signal
        The second entry (read-only; for formal harnesses).
    """

    def __init__(self, shape):
        self.shape = shape
        super().__init__({
            "input": In(stream.Signature(shape)),
            "output": Out(stream.Signature(shape)),
        })
        # The skid entry, visible to formal harnesses (inductive invariants).
        self.skid_valid = Signal(name="skid_valid")
        self.skid_payload = Signal(shape, name="skid_payload")

    def elaborate(self, platform):
        m = Module()
        out_valid = Signal(name="out_valid")
        out_payload = Signal(self.shape, name="out_payload")
        skid_valid = self.skid_valid
        skid_payload = self.skid_payload

        m.d.comb += [
            self.input.ready.eq(~skid_valid),
            self.output.valid.eq(out_valid),
            self.output.payload.eq(out_payload),
        ]
        take = self.input.valid & ~skid_valid
        with m.If(~out_valid | self.output.ready):
            # The output register is free (or frees up this cycle): refill it,
            # oldest beat first.
            with m.If(skid_valid):
                m.d.sync += [out_payload.eq(skid_payload), out_valid.eq(1),
                             skid_valid.eq(0)]
            with m.Elif(take):
                m.d.sync += [out_payload.eq(self.input.payload), out_valid.eq(1)]
            with m.Else():
                m.d.sync += out_valid.eq(0)
        with m.Elif(take):
            # Output stalled: park the incoming beat in the skid entry.
            m.d.sync += [skid_payload.eq(self.input.payload), skid_valid.eq(1)]
        return m
