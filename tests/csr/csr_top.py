"""Simulation top of the CSR bank: flat AXI4-Lite ports plus every field's hardware side.

Shared by the pytest driver (``test_csr_cocotb.py``) and the cocotb module
(``cocotb_csr.py``), so both build the register map from the same parameters.
"""

import dataclasses

from amaranth.hdl import Module
from amaranth.lib import wiring

from lpaccel.rtl.bus.axi import AXI4LiteSignature
from lpaccel.rtl.regmap import RegmapConfig, register_map
from lpaccel.rtl.soc_config import SocConfig
from lpaccel.sim.infra.flat import connect_flat, flat_members

PREFIX = "s_axil"


def regmap_config(params):
    """The :class:`RegmapConfig` a test run's parameters describe."""
    return RegmapConfig(SocConfig.from_dict(params["soc"]), build_hash=params["build_hash"])


class CsrBankTop(wiring.Component):
    """A :class:`~lpaccel.rtl.csr.CsrBank` with its bus flattened for cocotbext-axi.

    Parameters
    ----------
    regmap : RegisterMap

    Attributes
    ----------
    s_axil_* : flat AXI4-Lite subordinate port (``AxiLiteBus.from_prefix(dut, "s_axil")``)
    <register>_<field> : the bank's hardware-side members, unchanged
    """

    def __init__(self, regmap, alias_bit=None):
        from lpaccel.rtl.csr import CsrBank
        self.alias_bit = alias_bit
        self.bank = CsrBank(regmap)
        self.bus_signature = AXI4LiteSignature(addr_width=self.bank.addr_width, data_width=32)
        members = flat_members(self.bus_signature, PREFIX)
        self.hw_names = [n for n in self.bank.signature.members if n != "bus"]
        members.update({n: self.bank.signature.members[n] for n in self.hw_names})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank = self.bank
        connect_flat(m, self, self.bank.bus, self.bus_signature, PREFIX)
        if self.alias_bit is not None:
            # Mutant for the negative tests: the bank ignores one address bit.
            for ch in ("aw", "ar"):
                addr = getattr(self, f"{PREFIX}_{ch}addr")
                m.d.comb += getattr(self.bank.bus, ch).addr.eq(
                    addr & ~(1 << self.alias_bit))
        for name in self.hw_names:
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(self.bank, name))
        return m


def _mutate(regmap, register, field, **changes):
    """A copy of ``regmap`` with one field changed (the hardware of a mutant)."""
    regs = []
    for reg in regmap:
        if reg.name == register:
            fields = tuple(dataclasses.replace(f, **changes) if f.name == field else f
                           for f in reg.fields)
            reg = dataclasses.replace(reg, fields=fields)
        regs.append(reg)
    return dataclasses.replace(regmap, registers=tuple(regs))


#: Deliberately broken banks; the suite must fail on each (test_csr_cocotb.py).
MUTANTS = {
    # Address bit 6 ignored: 0x040 (CONTROL) and 0x000 (MAGIC) collide, etc.
    "alias": lambda regmap: (regmap, 6),
    # Two field bugs in one build, each caught by a different test: a
    # read-only capability register accepts writes, and a W1C status bit
    # behaves as plain read/write.
    "fields": lambda regmap: (_mutate(_mutate(
        regmap, "CAP_MAX_ROWS", "VALUE", access="RW", storage=True, sw_writable=True),
        "IRQ_STATUS", "DMA_DONE", access="RW"), None),
}

#: Wrong expectations for the cocotb side (the hardware is correct): a reset
#: value that differs between what the suite expects and what the bank does.
EXPECTATION_MUTANTS = {
    "reset_value": lambda regmap: _mutate(regmap, "JOB_GROUP", "SIZE", reset=64),
}


def csr_top(mutant=None, **params):
    """Factory for :func:`lpaccel.sim.infra.harness.run_cocotb`.

    ``mutant`` names a deliberately broken bank (see :data:`MUTANTS`).
    """
    regmap = register_map(regmap_config(params))
    alias_bit = None
    if mutant is not None:
        regmap, alias_bit = MUTANTS[mutant](regmap)
    return CsrBankTop(regmap, alias_bit=alias_bit)
