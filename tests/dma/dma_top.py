"""Simulation top of the DMA engine for cocotb: the AXI4 port as flat ``m_axi_*`` signals.

Between the engine and the flat port sits a response rewriter: while the
input ``decerr_mode`` is high, every SLVERR answered by the memory reaches
the engine as DECERR. cocotbext-axi's ``AxiRam`` can only answer SLVERR (an
exception in its read/write hook), so this is how the tests reach DECERR.
"""

from amaranth.hdl import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from lpaccel.rtl.bus.axi import Resp
from lpaccel.rtl.dma.engine import DmaConfig, DmaEngine
from lpaccel.sim.infra.flat import flat_members

__all__ = ["DmaSimTop", "make_top"]


class DmaSimTop(wiring.Component):
    """:class:`DmaEngine` with a flat AXI4 manager port named ``m_axi_*``.

    Parameters
    ----------
    config : DmaConfig
    """

    def __init__(self, config):
        self.config = config
        self.dma = DmaEngine(config)
        members = {name: member for name, member in self.dma.signature.members.items()
                   if name != "bus"}
        members.update(flat_members(config.axi_signature, "m_axi", subordinate=False))
        members["decerr_mode"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dma = dma = self.dma
        sig = self.config.axi_signature
        for name in ("mm2s_descriptors", "mm2s_data", "mm2s_status", "s2mm_descriptors",
                     "s2mm_data", "s2mm_status"):
            inner, outer = getattr(dma, name), getattr(self, name)
            if dma.signature.members[name].flow == In:
                wiring.connect(m, wiring.flipped(outer), inner)
            else:
                wiring.connect(m, inner, wiring.flipped(outer))
        m.d.comb += [dma.window_base.eq(self.window_base), dma.window_size.eq(self.window_size),
                     dma.abort.eq(self.abort), self.idle.eq(dma.idle)]
        for ch_name, ch_member in sig.members.items():
            ch = getattr(dma.bus, ch_name)
            for f_name, f_member in ch_member.signature.members.items():
                outer = getattr(self, f"m_axi_{ch_name}{f_name}")
                inner = getattr(ch, f_name)
                if f_member.flow == Out:
                    m.d.comb += outer.eq(inner)
                elif f_name == "resp":
                    m.d.comb += inner.eq(Mux(self.decerr_mode & (outer == Resp.SLVERR),
                                             Resp.DECERR, outer))
                else:
                    m.d.comb += inner.eq(outer)
        return m


def make_top(**params):
    """Factory for :func:`lpaccel.sim.infra.harness.run_cocotb`: ``params`` are DmaConfig fields."""
    return DmaSimTop(DmaConfig(**params))
