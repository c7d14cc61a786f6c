"""Simulation top: the SoC behind the host bridge and its UART, with flat cocotb ports.

:class:`LinkSimTop` is :class:`~lpaccel.rtl.bridge.top.LinkedSoc` with flat
ports (``docs/link.md``; what :class:`~lpaccel.sim.testbenches.link.LinkTB`
and ``lpaccel serve-sim`` drive):

- ``rx_data[8] rx_valid rx_ready``: request bytes into the bridge (``use_uart = 0``);
- ``tx_data[8] tx_valid tx_ready``: response bytes out of it;
- ``uart_rx`` (in), ``uart_tx`` (out): the UART pins (``use_uart = 1``);
- ``use_uart``, ``busy``, ``irq``;
- ``bmem_*``: a read-only tap of the bridge's memory port under cocotbext-axi
  names, for :class:`~lpaccel.sim.infra.axi_checker.AxiProtocolChecker`;
- ``bcsr_*``: a read-only tap of the bridge's CSR port (AXI4-Lite);
- ``link_<counter>``: the bridge's ``LINK_INFO`` counters.

The SoC is the submodule ``soc`` of the top, as in
:class:`~lpaccel.sim.tops.soc.SocSimTop`, so the memory backdoor finds the
on-chip RAM at ``dut.soc.memory.storage``. Only on-chip memory is supported
here (the link tests and the simulated board use it).
"""

from amaranth.hdl import Module
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from lpaccel.rtl.bridge.bridge import COUNTERS
from lpaccel.rtl.bridge.config import BridgeConfig
from lpaccel.rtl.bridge.top import LinkedSoc
from lpaccel.rtl.soc_config import ONCHIP, SocConfig

from .soc import ONCHIP_STORAGE_PUBLIC, connect_tap, tap_members

__all__ = ["LinkSimTop", "make_link_top", "LINK_TOP_NAME", "SIM_BRIDGE", "link_params"]

#: Verilog name of the top (the build directory is keyed by it and the parameters).
LINK_TOP_NAME = "link_soc"

#: Bridge parameters of the simulated board: a fast UART (divisor 8) and a
#: short inter-byte timeout (1000 cycles), so fault tests run quickly.
SIM_BRIDGE = BridgeConfig(clk_hz=8_000_000, baud=1_000_000, timeout_cycles=1000).to_dict()


def link_params(soc=None, bridge=None, build_hash=0):
    """Parameters of :func:`make_link_top` (for ``run_cocotb``): one shared build.

    Parameters
    ----------
    soc : SocConfig, optional
        Default: ``SocConfig(memory="onchip")``.
    bridge : dict, optional
        :meth:`BridgeConfig.to_dict` data; default :data:`SIM_BRIDGE`.
    build_hash : int
    """
    soc = soc if soc is not None else SocConfig(memory=ONCHIP)
    params = dict(soc.to_dict())
    params["bridge"] = dict(bridge if bridge is not None else SIM_BRIDGE)
    if build_hash:
        params["build_hash"] = build_hash
    return params


class LinkSimTop(LinkedSoc):
    """:class:`LinkedSoc` with flat stream ports and bus taps for cocotb.

    Parameters
    ----------
    soc_config : SocConfig
        On-chip memory only.
    bridge_config : BridgeConfig
    build_hash : int
    """

    CSR_TAP = "bcsr"
    MEM_TAP = "bmem"

    def __init__(self, soc_config, bridge_config, *, build_hash=0):
        if soc_config.memory != ONCHIP:
            raise ValueError(f"LinkSimTop simulates on-chip memory only, not "
                             f"{soc_config.memory!r}; use SocConfig(memory='onchip')")
        super().__init__(soc_config, bridge_config, build_hash=build_hash)
        #: The on-chip RAM the testbench loads and checks by backdoor.
        self.sim_public = ONCHIP_STORAGE_PUBLIC

    def _members(self):
        members = super()._members()
        del members["rx"], members["tx"]
        members.update({
            "rx_data": In(8), "rx_valid": In(1), "rx_ready": Out(1),
            "tx_data": Out(8), "tx_valid": Out(1), "tx_ready": In(1),
        })
        members.update(tap_members(self.bridge.csr.signature, self.CSR_TAP))
        members.update(tap_members(self.bridge.mem.signature, self.MEM_TAP))
        members.update({f"link_{name}": Out(32) for name in COUNTERS})
        return members

    def elaborate(self, platform):
        m = Module()
        rx = stream.Signature(8).flip().create(path=("rx",))
        tx = stream.Signature(8).create(path=("tx",))
        m.d.comb += [
            rx.payload.eq(self.rx_data), rx.valid.eq(self.rx_valid), self.rx_ready.eq(rx.ready),
            self.tx_data.eq(tx.payload), self.tx_valid.eq(tx.valid), tx.ready.eq(self.tx_ready),
        ]
        self.build(m, rx, tx)
        bridge = self.bridge
        connect_tap(m, self, bridge.csr, bridge.csr.signature, self.CSR_TAP)
        connect_tap(m, self, bridge.mem, bridge.mem.signature, self.MEM_TAP)
        for name in COUNTERS:
            m.d.comb += getattr(self, f"link_{name}").eq(getattr(bridge, name))
        return m


def make_link_top(build_hash=0, bridge=None, **soc):
    """Factory for :func:`lpaccel.sim.infra.harness.run_cocotb`.

    Parameters
    ----------
    build_hash : int
    bridge : dict, optional
        :meth:`BridgeConfig.to_dict` data; default :data:`SIM_BRIDGE`.
    **soc
        :meth:`SocConfig.to_dict` data; default on-chip memory.
    """
    soc_config = SocConfig.from_dict(soc) if soc else SocConfig(memory=ONCHIP)
    bridge_config = BridgeConfig.from_dict(bridge if bridge is not None else SIM_BRIDGE)
    return LinkSimTop(soc_config, bridge_config, build_hash=build_hash)
