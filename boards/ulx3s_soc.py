"""The accelerator SoC on the ULX3S-85F, driven over the FT231X USB-UART (design ``soc``).

:class:`Ulx3sSocTop` is the bitstream a host reaches with ``lpaccel --port
/dev/ttyUSB0 --baud 3000000 selftest``::

    clk25 ─► EHXPLLL ─► sync (20.83 MHz)
                                          ┌──────────── LinkedSoc ─────────────┐
    FT231X TXD (M1) ─► uart_rx ─► UartRx ─┤                                    │
                                          │  HostBridge ─► Soc (256 KiB BRAM)  │
    FT231X RXD (L4) ◄─ uart_tx ◄─ UartTx ─┤                                    │
                                          └────────────────────────────────────┘
    led[0] heartbeat  led[1] request bytes  led[2] response bytes
    led[3] SoC or bridge busy  led[4] link error (CRC error, overrun, resync)

Clock and line rate. The FT231X makes 3 Mbaud exactly (its 48 MHz
reference over 16); the bridge's UART counts whole clock cycles per bit
(:attr:`BridgeConfig.divisor <lpaccel.rtl.bridge.config.BridgeConfig.divisor>`).
The ECP5 PLL makes ``25 MHz x feedback / input`` with an input divider of at
most 8 (phase detector at least 3.125 MHz), so 24 MHz (divisor 8) is out of
reach; 25 x 5 / 6 = 20.83 MHz with divisor 7 gives 2.976 Mbaud, 0.79 % below
the FT231X's rate (the bridge allows 2 %). At that clock the SoC has room to
spare: its slowest path (the DMA's S2MM writer) made 34.9 MHz out of
context. Other choices a caller may build (``Ulx3sSocTop(core_mhz=...,
baud=...)``): 30 MHz with 3 Mbaud (divisor 10, exact, but only 15 % below
that estimate), 20 MHz with 2 Mbaud (divisor 10, exact), 25 MHz with
1 Mbaud (divisor 25).

On-chip memory. The SoC alone takes 16 DP16KD block RAMs besides its
memory (GEMV activation buffer, DMA and job queues); each 16 Kbit of bytes
is one more. 256 KiB is 128 of the 208 on the 85F (plus one for the UART's
receive FIFO); 384 KiB would need 192 + 17 and does not fit.
"""

from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.lib import io
from amaranth.utils import ceil_log2

from ..rtl.bridge.config import MAX_BAUD_ERROR, BridgeConfig
from ..rtl.bridge.top import LinkedSoc
from ..rtl.soc_config import ONCHIP, SocConfig
from .ecp5 import Ecp5PllClock, ecp5_pll_params

__all__ = ["DEFAULT_BAUD", "DEFAULT_CORE_MHZ", "DEFAULT_MEMORY_SIZE", "FT231X_BASE_BAUD",
           "Ulx3sSocTop", "ft231x_baud"]

#: Core clock of the ``soc`` design: 25 MHz x 5 / 6 from the PLL (see module docs).
DEFAULT_CORE_MHZ = 25.0 * 5 / 6
#: Line rate of the ``soc`` design: the FT231X's fastest.
DEFAULT_BAUD = 3_000_000
#: Bytes of on-chip memory behind the SoC's memory window.
DEFAULT_MEMORY_SIZE = 256 * 1024
#: The FT231X's baud generator: 3 MHz (48 MHz / 16) over a divisor (FTDI AN232B-05).
FT231X_BASE_BAUD = 3_000_000
#: LED pulse stretch: a byte or an error lights its LED for about 1/20 s.
_STRETCH_HZ = 20


def ft231x_baud(baud):
    """The line rate the FT231X actually makes when asked for ``baud``.

    Its generator divides :data:`FT231X_BASE_BAUD` by 1 (3 Mbaud), 1.5
    (2 Mbaud) or any multiple of 1/8 from 2 to 16383.875 (FTDI AN232B-05,
    the FT231X datasheet's "sub-integer divisors"); the driver picks the
    nearest.

    Parameters
    ----------
    baud : int
        Requested rate in bit/s.

    Returns
    -------
    float
        The rate the FT231X produces.

    Raises
    ------
    ValueError
        If ``baud`` is not a positive integer or faster than 3 Mbaud.
    """
    if not isinstance(baud, int) or isinstance(baud, bool) or baud <= 0:
        raise ValueError(f"baud must be a positive integer, not {baud!r}")
    if baud > FT231X_BASE_BAUD:
        raise ValueError(f"baud {baud} is faster than the FT231X can go (at most "
                         f"{FT231X_BASE_BAUD}); choose 3000000 or a slower rate")
    want = FT231X_BASE_BAUD / baud
    if want < 2:
        divisor = min((1.0, 1.5, 2.0), key=lambda d: abs(d - want))
    else:
        divisor = min(round(want * 8) / 8, 16383.875)
    return FT231X_BASE_BAUD / divisor


class Ulx3sSocTop(Elaboratable):
    """ULX3S-85F top: PLL clock, :class:`~lpaccel.rtl.bridge.top.LinkedSoc` on the FT231X, LEDs.

    The bridge always talks over the UART pins (``use_uart`` tied high).
    LEDs: 0 heartbeat (about 1 Hz), 1 a request byte arrived, 2 a response
    byte left, 3 the SoC or the bridge is busy, 4 the bridge counted a CRC
    error, an overrun or a resync; 1, 2 and 4 are stretched to about 50 ms.

    Parameters
    ----------
    core_mhz : float
        Core clock wanted from the PLL (25 MHz reference); the bridge is
        configured for the frequency the PLL actually makes.
    baud : int
        UART line rate; the host must open the port at the same rate.
    memory_size : int
        Bytes of on-chip memory of the SoC.
    timeout_ms : float
        Inter-byte timeout of the bridge's request parser
        (:attr:`BridgeConfig.timeout_cycles`), in milliseconds.
    build_hash : int
        ``BUILD_HASH`` of the SoC.

    Attributes
    ----------
    soc_config : SocConfig
    bridge_config : BridgeConfig
    pll : dict
        The PLL's divider setting (:func:`~lpaccel.boards.ecp5.ecp5_pll_params`).

    Raises
    ------
    ValueError
        If the PLL cannot make ``core_mhz``, the FT231X cannot make ``baud``
        within 2 %, the bridge's integer divisor misses ``baud`` by more than
        2 % at the PLL's clock, or the memory does not fit the block RAM.
    """

    #: The board's oscillator in MHz.
    REFERENCE_MHZ = 25.0

    def __init__(self, *, core_mhz=DEFAULT_CORE_MHZ, baud=DEFAULT_BAUD,
                 memory_size=DEFAULT_MEMORY_SIZE, timeout_ms=1.0, build_hash=0):
        from .synth import check_memory_fits

        self.pll = ecp5_pll_params(self.REFERENCE_MHZ, core_mhz)
        self.core_mhz = self.pll["f_out_mhz"]
        clk_hz = round(self.core_mhz * 1e6)
        host = ft231x_baud(baud)
        if abs(host - baud) / baud > MAX_BAUD_ERROR:
            raise ValueError(f"baud {baud}: the FT231X makes {host:.0f} baud for it "
                             f"({100 * abs(host - baud) / baud:.1f} % off, at most "
                             f"{100 * MAX_BAUD_ERROR:g} % allowed); choose 3000000, 2000000 or "
                             f"3000000 / n for n from 2 in steps of 1/8")
        try:
            self.bridge_config = BridgeConfig(clk_hz=clk_hz, baud=baud,
                                              timeout_cycles=round(clk_hz * timeout_ms / 1000))
        except ValueError as error:
            raise ValueError(f"ULX3S soc design at core_mhz {core_mhz:g} (the PLL makes "
                             f"{self.core_mhz:.4f} MHz): {error}") from None
        self.soc_config = SocConfig(memory=ONCHIP, memory_size=memory_size)
        self.soc_config.check_soc()
        check_memory_fits(self.soc_config, "LFE5U-85F")
        self.build_hash = build_hash

    @property
    def divisor(self):
        """Clock cycles per UART bit."""
        return self.bridge_config.divisor

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.submodules.clock = Ecp5PllClock(self.REFERENCE_MHZ, self.core_mhz)
        m.submodules.soc = linked = LinkedSoc(self.soc_config, self.bridge_config,
                                              build_hash=self.build_hash)

        # The FT231X's TXD/RXD; its RTS/DTR and TXDEN stay unconnected.
        uart = platform.request("uart", 0, dir={"rx": "-", "tx": "-", "rts": "-", "dtr": "-"})
        m.submodules.uart_rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [
            linked.use_uart.eq(1),
            linked.uart_rx.eq(rx_buf.i),
            tx_buf.o.eq(linked.uart_tx),
        ]

        clk_hz = self.bridge_config.clk_hz
        beat = Signal(max(1, ceil_log2(clk_hz) - 1) + 1)
        m.d.sync += beat.eq(beat + 1)
        bridge = linked.bridge
        # A counter's bit 0 toggles on every count: an event without comparing 32 bits.
        error_bits = [getattr(bridge, name)[0] for name in ("crc_errors", "overruns", "resyncs")]
        leds = [
            beat[-1],
            self._stretch(m, "rx_seen", bridge.rx.valid & bridge.rx.ready, clk_hz),
            self._stretch(m, "tx_seen", bridge.tx.valid & bridge.tx.ready, clk_hz),
            linked.busy,
            self._stretch(m, "error_seen", self._toggled(m, error_bits), clk_hz),
        ]
        for index, value in enumerate(leds):
            buf = io.Buffer("o", platform.request("led", index, dir="-"))
            m.submodules[f"led{index}"] = buf
            m.d.comb += buf.o.eq(value)
        return m

    @staticmethod
    def _toggled(m, bits):
        # High for one cycle after any of ``bits`` changed.
        prev = [Signal(name=f"prev_{i}") for i in range(len(bits))]
        changed = Signal()
        m.d.sync += [p.eq(b) for p, b in zip(prev, bits)]
        any_change = 0
        for p, b in zip(prev, bits):
            any_change = any_change | (p ^ b)
        m.d.comb += changed.eq(any_change)
        return changed

    @staticmethod
    def _stretch(m, name, event, clk_hz):
        # ``event`` lights the result for about 1 / _STRETCH_HZ seconds.
        length = clk_hz // _STRETCH_HZ
        count = Signal(range(length + 1), name=f"{name}_count")
        with m.If(event):
            m.d.sync += count.eq(length)
        with m.Elif(count != 0):
            m.d.sync += count.eq(count - 1)
        lit = Signal(name=name)
        m.d.comb += lit.eq(count != 0)
        return lit
