"""Simulation top: LpddrController + LpddrModel with flat AXI ports for cocotb."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from lpaccel.rtl.dram.config import LpddrConfig
from lpaccel.rtl.dram.controller import LpddrController

from ..infra.flat import connect_flat, flat_members
from ..models.lpddr import LpddrModel

__all__ = ["LpddrSimTop", "make_sim_top"]


class LpddrSimTop(wiring.Component):
    """Controller and device model joined at the DFI-style boundary.

    The AXI port is flattened as ``s_axi_*`` (cocotbext-axi's
    ``AxiBus.from_prefix(dut, "s_axi")``); the checker's verdict and the
    controller's counters are top-level outputs (``violation``, ``rule``,
    ``bank``, ``cycle``, ``refresh_debt_max``, ``n_*``, ``perf_*``).

    Parameters
    ----------
    config : LpddrConfig
    id_width : int
    """

    def __init__(self, config, *, id_width=4):
        self.config = config
        self.ctrl = LpddrController(config, id_width=id_width)
        self.model = LpddrModel(config)
        #: The model's storage module, compiled with the converted top.
        self.verilog_sources = self.model.verilog_sources
        #: The model's array, which the testbench loads and checks by backdoor.
        self.sim_public = self.model.sim_public
        self._axi_sig = self.ctrl.signature.members["axi"].signature.flip()
        members = flat_members(self._axi_sig, "s_axi", subordinate=True)
        for name, member in self.model.signature.members.items():
            if name != "dfi":
                members[name] = Out(member.shape)
        # The counters, flat as perf_<name> for cocotb.
        self._perf_sig = self.ctrl.signature.members["perf"].signature
        members.update({f"perf_{name}": Out(member.shape)
                        for name, member in self._perf_sig.members.items()})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.ctrl = ctrl = self.ctrl
        m.submodules.model = model = self.model
        wiring.connect(m, ctrl.dfi, model.dfi)
        connect_flat(m, self, ctrl.axi, self._axi_sig, "s_axi", subordinate=True)
        for name in self.model.signature.members:
            if name != "dfi":
                m.d.comb += getattr(self, name).eq(getattr(model, name))
        for name in self._perf_sig.members:
            m.d.comb += getattr(self, f"perf_{name}").eq(getattr(ctrl.perf, name))
        return m


def make_sim_top(part="lpddr4-3200", ratio=4, sim_bytes=256 * 1024, refresh="per_bank",
                 window=16, id_width=4):
    """Factory for :func:`lpaccel.sim.infra.harness.run_cocotb` (plain JSON parameters)."""
    return LpddrSimTop(LpddrConfig(part=part, ratio=ratio, sim_bytes=sim_bytes,
                                   refresh=refresh, window=window), id_width=id_width)
