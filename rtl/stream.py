"""Stream building blocks shared by the lpaccel blocks.

- :class:`SkidBuffer`: a register slice that cuts the combinational paths of
  a stream (latency 1).
- :class:`WidthConverter`: gathers narrow words into wide beats or splits
  wide words into narrow beats, with a ``flush`` that drops the rest of a
  word (latency 1 when gathering or splitting, 0 at equal widths).
"""

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .utils import check_int, select

__all__ = ["SkidBuffer", "WidthConverter"]


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


class WidthConverter(wiring.Component):
    """Words of ``in_bits`` in, beats of ``out_bits`` out, first bits first.

    The widths are powers of two apart; the narrower one's bits sit at the
    low end of the wider one first (little-endian, like a memory word holding
    consecutive bytes).

    - Gather (``in_bits < out_bits``): ``out_bits / in_bits`` words make one
      beat, taking one word per cycle. The completed beat is registered: it
      leaves one cycle after its last word arrives. A word completing a beat
      is refused only while the previous beat still waits on ``output``.
    - Split (``in_bits > out_bits``): a word is registered and leaves as
      ``in_bits / out_bits`` beats, one per cycle, the first one cycle after
      the word arrives. The next word is taken in the cycle the last beat
      leaves, so a steady stream moves one beat per cycle.
    - Equal widths: ``input`` is wired straight to ``output`` (no register).

    ``flush`` drops what is left of the current word when splitting: high in
    a cycle where a beat transfers on ``output``, it makes that beat the
    word's last one (the engine uses it to discard the padding after a job's
    last weight beat, which shares a memory word with nothing else). It has
    no effect when gathering or at equal widths, where a word is never
    partly used.

    ``output.valid`` comes from a register (or straight from
    ``input.valid`` at equal widths); ``input.ready`` depends on
    ``output.ready``, never the other way round.

    Parameters
    ----------
    in_bits, out_bits : int
        Widths of the input words and the output beats (1 to 65536); each a
        power of two multiple of the other.

    Attributes
    ----------
    input : In(stream.Signature(unsigned(in_bits)))
        Words in.
    output : Out(stream.Signature(unsigned(out_bits)))
        Beats out.
    flush : In(1)
        Splitting only: end the current word with the beat transferred now.

    Raises
    ------
    ValueError
        If a width is not a positive integer or the larger one is not a
        power of two multiple of the smaller.
    """

    def __init__(self, in_bits, out_bits):
        check_int("in_bits", in_bits, 1, 1 << 16)
        check_int("out_bits", out_bits, 1, 1 << 16)
        big, small = max(in_bits, out_bits), min(in_bits, out_bits)
        ratio = big // small
        if big % small or ratio & (ratio - 1):
            raise ValueError(f"in_bits and out_bits must be a power of two apart, "
                             f"not {in_bits} and {out_bits}")
        self.in_bits, self.out_bits = in_bits, out_bits
        super().__init__({
            "input": In(stream.Signature(unsigned(in_bits))),
            "output": Out(stream.Signature(unsigned(out_bits))),
            "flush": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        W, B = self.in_bits, self.out_bits
        i, o = self.input, self.output
        taken = Signal()             # a word transfers on ``input``
        sent = Signal()              # a beat transfers on ``output``
        m.d.comb += [taken.eq(i.valid & i.ready), sent.eq(o.valid & o.ready)]
        if W == B:
            m.d.comb += [o.valid.eq(i.valid), o.payload.eq(i.payload), i.ready.eq(o.ready)]
        elif W > B:
            ratio = W // B
            word = Signal(W)
            have = Signal()          # ``word`` holds beats still to send
            index = Signal(range(ratio))
            done = Signal()          # the beat leaving now is the word's last
            beats = [word[k * B:(k + 1) * B] for k in range(ratio)]
            m.d.comb += [
                o.valid.eq(have),
                o.payload.eq(select(beats, index)),
                done.eq(sent & ((index == ratio - 1) | self.flush)),
                i.ready.eq(~have | done),
            ]
            with m.If(sent):
                m.d.sync += index.eq(index + 1)
            with m.If(done):
                m.d.sync += [have.eq(0), index.eq(0)]
            with m.If(taken):
                m.d.sync += [word.eq(i.payload), have.eq(1), index.eq(0)]
        else:
            ratio = B // W
            gathered = Signal(B - W)  # the words before a beat's last one
            count = Signal(range(ratio))
            beat = Signal(B)
            valid = Signal()
            completes = Signal()     # the next word is a beat's last one
            m.d.comb += [
                completes.eq(count == ratio - 1),
                o.valid.eq(valid),
                o.payload.eq(beat),
                i.ready.eq(~(completes & valid & ~sent)),
            ]
            with m.If(sent):
                m.d.sync += valid.eq(0)
            with m.If(taken):
                with m.If(completes):
                    m.d.sync += [beat.eq(Cat(gathered, i.payload)), valid.eq(1), count.eq(0)]
                with m.Else():
                    m.d.sync += [gathered.word_select(count, W).eq(i.payload),
                                 count.eq(count + 1)]
        return m
