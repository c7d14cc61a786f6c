"""Refresh scheduler: refresh debt, which bank is refreshed next, and its commands.

Policy
    ``per_bank``: every tREFIpb one REFpb is owed; it is issued to the next
    bank in round-robin order as soon as no queued request needs that bank
    nor the bank before it (a stream enters the next bank next) and
    tpbR2pbR allows the REFpb (it is precharged first if open), so it hides
    behind traffic to the other banks. ``all_bank``: every tREFI one REFab
    is owed, issued when the controller is idle or, postponed at most
    ``refresh_postpone - 2`` intervals, forced (PREA, REFab). Either way
    the debt never exceeds the JEDEC limit of 8 intervals, which the device
    model's checker enforces.
    On LPDDR5 one REFpb refreshes a bank pair (``b`` and ``b ^ banks/2``):
    both are precharged first and both are blocked.

Debt accounting
    ``owed`` goes up by one every interval and down by one per REF issued;
    it may go negative (refreshes pulled in early are credited). A refresh
    becomes *active* when something is owed and either nothing waits for its
    bank(s) (per bank) or the controller is idle (all bank), or the debt is
    urgent. While active, the bank(s) it will refresh are ``blocked``: the
    scheduler opens no row and issues no column command there, and this
    block issues PRE (or PREA) and then the REF as the timings allow.

Contract
    ``cmd``/``bank`` is a proposal for the row slot: the command scheduler
    issues it with priority over its own row commands whenever it is not
    NOP. The block sees what was issued on ``commands`` and counts a
    refresh as paid when a REFpb or REFab went out. ``cmd``, ``bank`` and
    ``blocked`` depend only on registers (no combinational path from any
    input but ``banks``/``timing``, which are registered in the bank machines).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .banks import bank_state_layout, timing_layout
from .config import Command, LpddrConfig, command_layout

__all__ = ["RefreshScheduler"]


class RefreshScheduler(wiring.Component):
    """Owes refreshes at the refresh interval and issues them (see the module docstring).

    Parameters
    ----------
    config : LpddrConfig

    Attributes
    ----------
    banks : In(ArrayLayout(bank_state_layout(config), banks))
    timing : In(timing_layout(config))
        From :class:`~lpaccel.rtl.dram.banks.BankMachines`.
    wanted : In(banks)
        Bit ``b``: a request queued in the scheduler's window needs bank ``b``.
    idle : In(1)
        Nothing queued and no AXI burst being split (all-bank refresh waits for it).
    commands : In(ArrayLayout(command_layout(config), config.ratio))
        The command slots as issued.
    cmd : Out(Command)
        Row command wanted now: PRE, PREA, REFPB, REFAB or NOP.
    bank : Out(bank_bits)
        Its bank.
    blocked : Out(banks)
        Bit ``b``: bank ``b`` belongs to the active refresh.
    """

    def __init__(self, config):
        if not isinstance(config, LpddrConfig):
            raise TypeError(f"config must be an LpddrConfig, not {config!r}")
        self.config = config
        nb = config.part.banks
        super().__init__({
            "banks": In(data.ArrayLayout(bank_state_layout(config), nb)),
            "timing": In(timing_layout(config)),
            "wanted": In(nb),
            "idle": In(1),
            "commands": In(data.ArrayLayout(command_layout(config), config.ratio)),
            "cmd": Out(Command),
            "bank": Out(unsigned(max(1, config.bank_bits))),
            "blocked": Out(nb),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        t = cfg.timings
        nb = cfg.part.banks
        half = nb // 2
        per_bank = cfg.refresh == "per_bank"
        pair = per_bank and cfg.part.refpb_banks == 2
        banks, timing = self.banks, self.timing

        # --- debt ----------------------------------------------------------
        interval = (t.tREFIpb if per_bank else t.tREFI) // cfg.ratio
        limit = t.refresh_postpone * (cfg.refs_per_refab if per_bank else 1)
        urgent_at = limit - (16 if per_bank else 2)
        ref_timer = Signal(range(interval + 1))
        owed = Signal(range(-limit - 2, limit + 3))
        ref_tick = ref_timer == interval - 1
        m.d.sync += ref_timer.eq(Mux(ref_tick, 0, ref_timer + 1))
        urgent = owed >= urgent_at

        row = self.commands[0]
        paid = (row.cmd == Command.REFPB) | (row.cmd == Command.REFAB)
        m.d.sync += owed.eq(owed + ref_tick - paid)

        # --- which bank, and when it becomes active -----------------------
        ref_bank = Signal(max(1, cfg.bank_bits))
        ref_partner = ref_bank ^ half
        ref_before = Signal.like(ref_bank)   # the bank a stream reaches ref_bank from
        m.d.comb += ref_before.eq(ref_bank - 1)
        active = Signal()
        with m.If(paid):
            m.d.sync += active.eq(0)
            if per_bank:
                m.d.sync += ref_bank.eq(ref_bank + 1 if nb > 1 else 0)
        with m.Elif(~active & (owed > 0)):
            if pair:
                m.d.sync += active.eq(~(self.wanted.bit_select(ref_bank, 1) |
                                        self.wanted.bit_select(ref_partner, 1)) | urgent)
            elif per_bank:
                # Nor while the bank before it is wanted: the address map puts
                # the next page of a stream in the next bank, so that bank is
                # about to be wanted, and a REFpb now would stall the stream
                # for tRFCpb. Refreshed after its page instead, it is not
                # needed again for banks - 1 pages. And only once tpbR2pbR
                # allows its REFpb: a bank held for a REFpb that must still
                # wait blocks any request that comes for it meanwhile.
                m.d.sync += active.eq((~(self.wanted.bit_select(ref_bank, 1) |
                                         self.wanted.bit_select(ref_before, 1)) &
                                       self.timing.refpb_ok) | urgent)
            else:
                m.d.sync += active.eq(self.idle | urgent)

        for b in range(nb):
            if pair:
                m.d.comb += self.blocked[b].eq(active & ((ref_bank == b) | (ref_bank == b ^ half)))
            elif per_bank:
                m.d.comb += self.blocked[b].eq(active & (ref_bank == b))
            else:
                m.d.comb += self.blocked[b].eq(active)

        # --- commands: close the bank(s), then refresh ----------------------
        act_window_ok = timing.rrd_ref_ok & timing.faw_ref_ok & timing.refpb_ok & timing.refab_ok
        m.d.comb += self.bank.eq(ref_bank)
        with m.If(active):
            if per_bank:
                with m.If(banks[ref_bank].open):
                    with m.If(banks[ref_bank].pre_ok):
                        m.d.comb += self.cmd.eq(Command.PRE)
                if pair:
                    # Close both banks of the pair, then refresh them together.
                    with m.Elif(banks[ref_partner].open):
                        m.d.comb += self.bank.eq(ref_partner)
                        with m.If(banks[ref_partner].pre_ok):
                            m.d.comb += self.cmd.eq(Command.PRE)
                    with m.Elif(banks[ref_bank].ref_ok & banks[ref_partner].ref_ok &
                                act_window_ok):
                        m.d.comb += self.cmd.eq(Command.REFPB)
                else:
                    with m.Elif(banks[ref_bank].ref_ok & act_window_ok):
                        m.d.comb += self.cmd.eq(Command.REFPB)
            else:
                all_closed = ~Cat(*[banks[b].open for b in range(nb)]).any()
                pre_all_ok = Cat(*[~banks[b].open | banks[b].pre_ok for b in range(nb)]).all()
                act_all_ok = Cat(*[banks[b].ref_ok for b in range(nb)]).all()
                with m.If(~all_closed):
                    with m.If(pre_all_ok):
                        m.d.comb += self.cmd.eq(Command.PREA)
                with m.Elif(act_all_ok & timing.refab_ok & timing.refpb_ok):
                    m.d.comb += self.cmd.eq(Command.REFAB)
        return m
