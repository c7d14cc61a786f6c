"""Simulation top: the SoC (+ the LPDDR device model) with flat ports for cocotb.

:class:`SocSimTop` is what :class:`lpaccel.sim.testbenches.soc.SocTB` drives:

- ``s_axil_*``: the CSR port (cocotbext-axi ``AxiLiteBus.from_prefix(dut, "s_axil")``);
- ``s_axi_*``: the host memory window (``AxiBus.from_prefix(dut, "s_axi")``);
- ``irq``;
- LPDDR memories: the device model's checker outputs (``violation``, ``rule``,
  ``bank``, ``cycle``, ``refresh_debt``, ``refresh_debt_max``, ``n_*``);
- read-only taps of two internal AXI4 ports, flat under the cocotbext-axi
  names so :class:`~lpaccel.sim.infra.axi_checker.AxiProtocolChecker` can
  watch them: ``dma_*`` (the DMA's manager port) and ``mem_*`` (the memory
  port, the arbiter's subordinate side).

Board memories (SDR, DDR3) have no model here: the SoC's ``memory`` port is
flat as ``m_axi_*`` for a cocotbext-axi ``AxiRam``.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from lpaccel.rtl.soc.top import Soc
from lpaccel.rtl.soc_config import SocConfig

from ..infra.flat import connect_flat, flat_members
from ..models.lpddr import LpddrModel

__all__ = ["SocSimTop", "make_soc_top", "tap_members", "connect_tap",
           "ONCHIP_STORAGE_PUBLIC"]

#: The on-chip RAM's array (``dut.soc.memory.storage``), as a ``sim_public``
#: entry: the only signal inside the SoC a testbench reaches (backdoor loads).
ONCHIP_STORAGE_PUBLIC = (("*.soc.memory", "storage"),)


def tap_members(signature, prefix):
    """Flat read-only copies of every signal of an AXI port (all ``Out``).

    Named like :func:`~lpaccel.sim.infra.flat.flat_members` (``{prefix}_arvalid``
    ...), so a monitor that finds ports by prefix finds the tap.
    """
    return {f"{prefix}_{ch}{f}": Out(member.shape)
            for ch, ch_member in signature.members.items()
            for f, member in ch_member.signature.members.items()}


def connect_tap(m, flat, iface, signature, prefix):
    """Drive the taps made by :func:`tap_members` from the port ``iface``."""
    for ch, ch_member in signature.members.items():
        for f in ch_member.signature.members:
            m.d.comb += getattr(flat, f"{prefix}_{ch}{f}").eq(getattr(getattr(iface, ch), f))


class SocSimTop(wiring.Component):
    """:class:`~lpaccel.rtl.soc.top.Soc` with its device model and flat cocotb ports.

    Parameters
    ----------
    config : SocConfig
    build_hash : int

    Attributes
    ----------
    soc : Soc
    model : LpddrModel or None
        The device model (LPDDR memories).
    """

    CSR_PREFIX = "s_axil"
    HOST_PREFIX = "s_axi"
    DMA_TAP = "dma"
    MEM_TAP = "mem"
    MEMORY_PREFIX = "m_axi"

    def __init__(self, config, *, build_hash=0):
        self.config = config
        self.soc = soc = Soc(config, build_hash=build_hash)
        self.model = LpddrModel(config.lpddr) if config.lpddr is not None else None
        #: The model's storage module, compiled with the converted top.
        self.verilog_sources = self.model.verilog_sources if self.model is not None else ()
        #: Signals the testbench reaches inside: the memory arrays it loads by backdoor.
        self.sim_public = (self.model.sim_public if self.model is not None
                           else ONCHIP_STORAGE_PUBLIC)
        sig = soc.signature.members
        # An In member's signature comes flipped; the flat helpers want the manager's view.
        self._csr_sig = sig["csr"].signature.flip()
        self._host_sig = sig["host"].signature.flip()
        members = flat_members(self._csr_sig, self.CSR_PREFIX)
        members.update(flat_members(self._host_sig, self.HOST_PREFIX))
        members["irq"] = Out(1)
        if self.model is not None:
            self._model_outputs = [n for n in self.model.signature.members if n != "dfi"]
            members.update({n: Out(self.model.signature.members[n].shape)
                            for n in self._model_outputs})
        if "memory" in sig:
            members.update(flat_members(sig["memory"].signature, self.MEMORY_PREFIX,
                                        subordinate=False))
        members.update(tap_members(config.dma.axi_signature, self.DMA_TAP))
        members.update(tap_members(soc.memory_signature, self.MEM_TAP))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        soc = self.soc
        m.submodules.soc = soc
        connect_flat(m, self, soc.csr, self._csr_sig, self.CSR_PREFIX)
        connect_flat(m, self, soc.host, self._host_sig, self.HOST_PREFIX)
        m.d.comb += self.irq.eq(soc.irq)
        if self.model is not None:
            m.submodules.model = model = self.model
            wiring.connect(m, soc.dfi, model.dfi)
            for name in self._model_outputs:
                m.d.comb += getattr(self, name).eq(getattr(model, name))
        if "memory" in soc.signature.members:
            connect_flat(m, self, soc.memory, soc.memory_signature, self.MEMORY_PREFIX,
                         subordinate=False)
        # Taps read signals inside the SoC (Amaranth lets an outer module read them).
        connect_tap(m, self, soc.dma.bus, self.config.dma.axi_signature, self.DMA_TAP)
        connect_tap(m, self, soc.arbiter.subordinate, soc.memory_signature, self.MEM_TAP)
        return m


def make_soc_top(build_hash=0, **soc):
    """Factory for :func:`lpaccel.sim.infra.harness.run_cocotb`.

    Parameters
    ----------
    build_hash : int
    **soc
        :meth:`SocConfig.to_dict` data (plain JSON), e.g.
        ``make_soc_top(**SocConfig(memory="lpddr4-3200").to_dict())``.
    """
    return SocSimTop(SocConfig.from_dict(soc), build_hash=build_hash)
