"""Simulation top for the LiteDRAM core: flat AXI port ``s`` for cocotbext-axi."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from lpaccel.boards.litedram import LiteDramCore
from lpaccel.sim.infra.flat import connect_flat, flat_members


class LiteDramSimTop(wiring.Component):
    """The wrapped simulation core (SDRAMPHYModel) with its AXI port flattened."""

    def __init__(self, core):
        self.core = core
        # The model does not need the 80 000-cycle power-up wait of real SDRAM.
        self.wrapper = LiteDramCore(core, init_delay_cap=64)
        members = flat_members(self.wrapper.axi_signature, "s")
        members.update({"init_done": Out(1), "init_error": Out(1)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dram = dram = self.wrapper
        connect_flat(m, self, dram.axi, dram.axi_signature, "s")
        m.d.comb += [self.init_done.eq(dram.init_done), self.init_error.eq(dram.init_error)]
        return m
