"""The SoC reached through the host bridge: what a board and the simulated board build.

:class:`LinkedSoc`::

    uart_rx ─► UartRx ─┐ use_uart                   ┌─► csr  (AXI4-Lite) ─┐
                       ├──────────► HostBridge ─────┤                     ├─► Soc ─► irq
    rx (bytes) ────────┘              │   ▲         └─► host (AXI4)  ─────┘
                                      ▼   └ overrun
    uart_tx ◄─ UartTx ◄┐ use_uart     tx
                       ├──────────────┘
    tx (bytes) ◄───────┘

``use_uart`` selects where the bridge's bytes come from and go to: the
UART pins (a board ties it high) or the byte streams ``rx``/``tx`` (the
simulated board, one byte per clock). Both paths are in every build, so
the tests and ``lpaccel serve-sim`` share one Verilator model. The unused
side is quiet: ``rx.ready`` is low and ``uart_tx`` idles high.
"""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..soc.top import Soc
from ..soc_config import SocConfig
from .bridge import COUNTERS, HostBridge
from .config import BridgeConfig
from .uart import UartRx, UartTx

__all__ = ["LinkedSoc"]


class LinkedSoc(wiring.Component):
    """:class:`~lpaccel.rtl.soc.top.Soc` behind a :class:`HostBridge` and its UART PHY.

    Parameters
    ----------
    soc_config : SocConfig
    bridge_config : BridgeConfig
    build_hash : int
        ``BUILD_HASH`` of the SoC.

    Attributes
    ----------
    uart_rx : In(1)
        Serial line from the host (idles high).
    uart_tx : Out(1)
        Serial line to the host.
    use_uart : In(1)
        1: the bridge talks over the UART pins; 0: over ``rx``/``tx``.
    rx : In(stream.Signature(8))
        Request bytes (``use_uart = 0``).
    tx : Out(stream.Signature(8))
        Response bytes (``use_uart = 0``).
    busy : Out(1)
        The SoC has jobs (``STATUS.BUSY``) or the bridge is not idle.
    irq : Out(1)
        The SoC's interrupt.
    memory, dfi
        The SoC's board-memory or LPDDR port, when it has one.

    The blocks are attributes so a simulation top can tap them:
    :attr:`soc`, :attr:`bridge`, :attr:`uart_receiver`, :attr:`uart_transmitter`.
    """

    def __init__(self, soc_config, bridge_config, *, build_hash=0):
        if not isinstance(soc_config, SocConfig):
            raise TypeError(f"soc_config must be a SocConfig, not {soc_config!r}")
        if not isinstance(bridge_config, BridgeConfig):
            raise TypeError(f"bridge_config must be a BridgeConfig, not {bridge_config!r}")
        self.soc_config = soc_config
        self.bridge_config = bridge_config
        self.soc = Soc(soc_config, build_hash=build_hash)
        self.bridge = HostBridge(bridge_config, self.soc.arbiter_config.manager_signature,
                                 csr_addr_width=self.soc.bank.addr_width)
        self.uart_receiver = UartRx(bridge_config.divisor, bridge_config.rx_fifo_depth)
        self.uart_transmitter = UartTx(bridge_config.divisor)
        super().__init__(self._members())

    def _members(self):
        members = {
            "uart_rx": In(1, init=1),
            "uart_tx": Out(1, init=1),
            "use_uart": In(1),
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "busy": Out(1),
            "irq": Out(1),
        }
        for name in ("memory", "dfi"):
            if name in self.soc.signature.members:
                members[name] = self.soc.signature.members[name]
        return members

    def elaborate(self, platform):
        m = Module()
        self.build(m, self.rx, self.tx)
        return m

    def build(self, m, rx, tx):
        """Add the blocks to ``m`` with the byte streams ``rx`` and ``tx``.

        :meth:`elaborate` passes the component's own stream ports; a
        simulation top passes streams wired to its flat ports.
        """
        soc, bridge = self.soc, self.bridge
        urx, utx = self.uart_receiver, self.uart_transmitter
        m.submodules.soc = soc
        m.submodules.bridge = bridge
        m.submodules.uart_receiver = urx
        m.submodules.uart_transmitter = utx

        wiring.connect(m, bridge.csr, soc.csr)
        wiring.connect(m, bridge.mem, soc.host)
        m.d.comb += [
            urx.rx.eq(self.uart_rx),
            self.uart_tx.eq(utx.tx),
            bridge.overrun.eq(urx.overrun & self.use_uart),
            self.irq.eq(soc.irq),
            self.busy.eq(soc.field("STATUS", "BUSY").value | ~bridge.idle),
        ]
        with m.If(self.use_uart):
            m.d.comb += [
                bridge.rx.payload.eq(urx.bytes.payload),
                bridge.rx.valid.eq(urx.bytes.valid),
                urx.bytes.ready.eq(bridge.rx.ready),
                utx.bytes.payload.eq(bridge.tx.payload),
                utx.bytes.valid.eq(bridge.tx.valid),
                bridge.tx.ready.eq(utx.bytes.ready),
            ]
        with m.Else():
            m.d.comb += [
                bridge.rx.payload.eq(rx.payload),
                bridge.rx.valid.eq(rx.valid),
                rx.ready.eq(bridge.rx.ready),
                tx.payload.eq(bridge.tx.payload),
                tx.valid.eq(bridge.tx.valid),
                bridge.tx.ready.eq(tx.ready),
                # Bytes on the idle UART are taken and dropped.
                urx.bytes.ready.eq(1),
            ]
        for name in ("memory", "dfi"):
            if name in soc.signature.members:
                wiring.connect(m, getattr(soc, name), wiring.flipped(getattr(self, name)))
        return m

    @property
    def counters(self):
        """The bridge's counter ports by name (``LINK_INFO`` words 2..7)."""
        return {name: getattr(self.bridge, name) for name in COUNTERS}
