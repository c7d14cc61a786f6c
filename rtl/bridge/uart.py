"""UART PHY of the host bridge: 8N1 receiver with a FIFO, and transmitter.

Both count bits with the same integer ``divisor`` (clock cycles per bit,
:attr:`BridgeConfig.divisor <lpaccel.rtl.bridge.config.BridgeConfig.divisor>`).

:class:`UartRx`::

    rx pin ─► 2-flop synchroniser ─► start/data/stop sampler ─► FIFO ─► bytes (stream)
                                           │ stop bit low            │ FIFO full
                                           ▼                         ▼
                                     framing_error              overrun (pulse)

The sampler waits for a falling edge, checks the start bit again at its
middle (a glitch shorter than half a bit is ignored), then samples each
data bit at its middle, LSB first, and the stop bit. A low stop bit is a
framing error: the byte is dropped and counted, and the receiver waits for
the line to go high again. The line cannot be paused, so the byte goes
into a FIFO; a byte that finds the FIFO full is dropped and reported on
``overrun`` for one cycle (the host bridge counts it and fails the request
it belonged to).

:class:`UartTx` sends a byte from its stream as start bit, eight data
bits LSB first and one stop bit; it takes the next byte when the stop bit
is over. The line idles high.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..utils import check_int

__all__ = ["UartRx", "UartTx"]


def _check_divisor(divisor):
    return check_int("divisor", divisor, 4, 1 << 24)


class UartRx(wiring.Component):
    """8N1 UART receiver with a receive FIFO.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4.
    fifo_depth : int
        Bytes the FIFO holds (at least 2).

    Attributes
    ----------
    rx : In(1)
        The serial line (asynchronous; synchronised here). Idles high.
    bytes : Out(stream.Signature(8))
        Received bytes, in order.
    overrun : Out(1)
        One cycle per byte dropped because the FIFO was full.
    framing_error : Out(1)
        One cycle per byte dropped because its stop bit was low.
    framing_errors : Out(32)
        Count of framing errors (wraps; cleared by reset).
    """

    rx: In(1, init=1)
    bytes: Out(stream.Signature(8))
    overrun: Out(1)
    framing_error: Out(1)
    framing_errors: Out(32)

    def __init__(self, divisor, fifo_depth=16):
        self.divisor = _check_divisor(divisor)
        self.fifo_depth = check_int("fifo_depth", fifo_depth, 2, 1 << 16)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        div = self.divisor
        # Buffered: its storage has a synchronous read port, so it maps to block RAM.
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=8, depth=self.fifo_depth)
        wiring.connect(m, fifo.r_stream, wiring.flipped(self.bytes))

        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)
        timer = Signal(range(div))
        bit = Signal(range(8))
        shift = Signal(8)
        done = Signal()  # a byte with a good stop bit, this cycle

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(line):
                        m.next = "IDLE"  # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(div - 1), bit.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), timer.eq(div - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(line):
                        m.d.comb += done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.framing_error.eq(1)
                        m.d.sync += self.framing_errors.eq(self.framing_errors + 1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                # A low stop bit: wait for the line to idle before the next start bit.
                with m.If(line):
                    m.next = "IDLE"

        m.d.comb += [
            fifo.w_stream.payload.eq(shift),
            fifo.w_stream.valid.eq(done),
            self.overrun.eq(done & ~fifo.w_stream.ready),
        ]
        return m


class UartTx(wiring.Component):
    """8N1 UART transmitter.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4.

    Attributes
    ----------
    bytes : In(stream.Signature(8))
        Bytes to send; one is taken when the previous stop bit is over.
    tx : Out(1)
        The serial line, idle high.
    idle : Out(1)
        Nothing being sent.
    """

    bytes: In(stream.Signature(8))
    tx: Out(1, init=1)
    idle: Out(1)

    def __init__(self, divisor):
        self.divisor = _check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        div = self.divisor
        timer = Signal(range(div))
        bits = Signal(range(11))
        # Start bit, 8 data bits LSB first, stop bit; shifted out LSB first.
        frame = Signal(10, init=0x3FF)

        m.d.comb += self.tx.eq(frame[0])
        with m.If(bits == 0):
            m.d.comb += [self.bytes.ready.eq(1), self.idle.eq(1)]
            with m.If(self.bytes.valid):
                m.d.sync += [frame.eq(Cat(0, self.bytes.payload, 1)), bits.eq(10),
                             timer.eq(div - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [frame.eq(Cat(frame[1:], 1)), bits.eq(bits - 1),
                             timer.eq(div - 1)]
        return m
