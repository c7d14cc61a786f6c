"""Simulation tops for the bus tests: AXI ports flattened for cocotbext-axi."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from lpaccel.rtl.bus.axi import AXI4Signature
from lpaccel.rtl.bus.interconnect import AXI4Arbiter, AXI4ArbiterConfig
from lpaccel.rtl.mem import AxiMemoryConfig, AxiSpram, AxiSram
from lpaccel.sim.infra.flat import connect_flat, flat_members


def tap_members(signature, prefix):
    """Every signal of an internal AXI link as an output, for a checker."""
    return {name: Out(member.shape)
            for name, member in flat_members(signature, prefix).items()}


def connect_tap(m, top, iface, signature, prefix):
    for ch_name, ch_member in signature.members.items():
        ch = getattr(iface, ch_name)
        for f_name in ch_member.signature.members:
            m.d.comb += getattr(top, f"{prefix}_{ch_name}{f_name}").eq(getattr(ch, f_name))


class ArbiterSramTop(wiring.Component):
    """``managers`` flat manager ports ``m0..`` -> AXI4Arbiter -> AxiSram, with
    the internal link visible as tap ``s``."""

    def __init__(self, managers, size_bytes, data_width, id_width, max_outstanding):
        self.arb_cfg = AXI4ArbiterConfig(managers=managers, addr_width=32,
                                         data_width=data_width, id_width=id_width,
                                         max_outstanding=max_outstanding)
        self.mem_cfg = AxiMemoryConfig(size_bytes=size_bytes, data_width=data_width,
                                       addr_width=32,
                                       id_width=self.arb_cfg.subordinate_id_width)
        members = {}
        for k in range(managers):
            members.update(flat_members(self.arb_cfg.manager_signature, f"m{k}"))
        members.update(tap_members(self.arb_cfg.subordinate_signature, "s"))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.arbiter = arb = AXI4Arbiter(self.arb_cfg)
        m.submodules.sram = sram = AxiSram(self.mem_cfg)
        wiring.connect(m, arb.subordinate, sram.axi)
        for k in range(self.arb_cfg.managers):
            connect_flat(m, self, arb.managers[k], self.arb_cfg.manager_signature, f"m{k}")
        connect_tap(m, self, arb.subordinate, self.arb_cfg.subordinate_signature, "s")
        return m


class ArbiterTop(wiring.Component):
    """Flat manager ports ``m0..`` -> AXI4Arbiter -> flat manager-side port ``s``
    (served by cocotbext-axi's AxiRam in the test)."""

    def __init__(self, managers, data_width, id_width, max_outstanding):
        self.arb_cfg = AXI4ArbiterConfig(managers=managers, addr_width=32,
                                         data_width=data_width, id_width=id_width,
                                         max_outstanding=max_outstanding)
        members = {}
        for k in range(managers):
            members.update(flat_members(self.arb_cfg.manager_signature, f"m{k}"))
        members.update(flat_members(self.arb_cfg.subordinate_signature, "s",
                                    subordinate=False))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.arbiter = arb = AXI4Arbiter(self.arb_cfg)
        for k in range(self.arb_cfg.managers):
            connect_flat(m, self, arb.managers[k], self.arb_cfg.manager_signature, f"m{k}")
        connect_flat(m, self, arb.subordinate, self.arb_cfg.subordinate_signature, "s",
                     subordinate=False)
        return m


class MemoriesTop(wiring.Component):
    """AxiSram on flat port ``s`` and the behavioural AxiSpram on flat port ``p``."""

    def __init__(self, sram_bytes, spram_bytes, data_width, id_width):
        self.sram_cfg = AxiMemoryConfig(size_bytes=sram_bytes, data_width=data_width,
                                        addr_width=32, id_width=id_width)
        self.spram_cfg = AxiMemoryConfig(size_bytes=spram_bytes, data_width=data_width,
                                         addr_width=32, id_width=id_width)
        members = {}
        members.update(flat_members(self.sram_cfg.signature, "s"))
        members.update(flat_members(self.spram_cfg.signature, "p"))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.sram = sram = AxiSram(self.sram_cfg)
        m.submodules.spram = spram = AxiSpram(self.spram_cfg, primitive=False)
        connect_flat(m, self, sram.axi, self.sram_cfg.signature, "s")
        connect_flat(m, self, spram.axi, self.spram_cfg.signature, "p")
        return m


class AxiProbe(wiring.Component):
    """Every signal of an AXI4 port as an input, for driving the checker
    with hand-made (and deliberately broken) sequences."""

    def __init__(self, data_width, id_width):
        self.sig = AXI4Signature(addr_width=32, data_width=data_width, id_width=id_width)
        members = {name: In(member.shape)
                   for name, member in flat_members(self.sig, "x").items()}
        members["seen"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        # Something to compute, so the model is not empty.
        seen = Signal()
        m.d.sync += seen.eq(self.x_awvalid | self.x_rvalid)
        m.d.comb += self.seen.eq(seen)
        return m
