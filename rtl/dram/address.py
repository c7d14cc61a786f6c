"""Address map: which DRAM bank, row and column a burst of the AXI address space is.

The AXI byte address is cut into ``burst index | byte-in-burst``; one DRAM
burst (``config.part.bytes_per_burst`` bytes, ``beats_per_burst`` AXI beats)
is the unit the scheduler works with. :class:`AddressMap` turns a burst
index into a DRAM location (:func:`address_layout`).

The map is chosen for streaming reads::

    without bank groups (LPDDR4):  burst index = row | bank | column
    with bank groups (LPDDR5 BG):  burst index = row | bank-in-group | column | group

Without groups one 2 KiB page (64 bursts of LPDDR4) fills one bank, then
the next bank follows, so a sequential stream walks the banks in turn and
the next bank's ACT (and PRE) are issued while the current bank is still
streaming. With bank groups the group comes lowest: consecutive bursts
rotate through the groups, so a stream is spaced by the short tCCD_S, never
the same-group tCCD_L; one bank of each group is open per 8 KiB stretch.

Bank numbers are ``group | bank-in-group`` (the group in the top
``config.bg_bits`` bits), as the device model and its checker count them.
"""

from amaranth.hdl import Cat, Module, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import LpddrConfig

__all__ = ["address_layout", "burst_index_bits", "AddressMap"]


def address_layout(config):
    """A DRAM location: ``bank``, ``row`` and ``col`` (burst index within the row).

    The widths are the part's (at least 1 bit each), the same as the command
    slot's fields in :func:`~lpaccel.rtl.dram.config.command_layout`.
    """
    return data.StructLayout({
        "bank": unsigned(max(1, config.bank_bits)),
        "row": unsigned(config.row_bits),
        "col": unsigned(max(1, config.col_bits)),
    })


def burst_index_bits(config):
    """Width of a burst index: the byte address without its byte-in-burst bits."""
    beat_shift = (config.beat_bytes - 1).bit_length()       # byte in beat
    return config.addr_width - beat_shift - (config.beats_per_burst - 1).bit_length()


class AddressMap(wiring.Component):
    """Burst index → bank, row, column (combinational, no latency).

    Parameters
    ----------
    config : LpddrConfig

    Attributes
    ----------
    burst : In(burst_index_bits(config))
        Byte address ``>> log2(bytes_per_burst)``.
    location : Out(address_layout(config))
        Where that burst lives (see the module docstring for the map).
    """

    def __init__(self, config):
        if not isinstance(config, LpddrConfig):
            raise TypeError(f"config must be an LpddrConfig, not {config!r}")
        self.config = config
        super().__init__({
            "burst": In(burst_index_bits(config)),
            "location": Out(address_layout(config)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        bb, rb, cb, gb = cfg.bank_bits, cfg.row_bits, cfg.col_bits, cfg.bg_bits
        g = self.burst
        if gb:
            # row | bank-in-group | column | group: groups rotate fastest.
            col = g[gb:gb + cb]
            bank = Cat(g[gb + cb:cb + bb], g[:gb])
        else:
            col = g[:cb] if cb else 0
            bank = g[cb:cb + bb] if bb else 0
        m.d.comb += [
            self.location.col.eq(col),
            self.location.bank.eq(bank),
            self.location.row.eq(g[cb + bb:cb + bb + rb]),
        ]
        return m
