"""Bank machines: which rows are open and which commands the timings allow now.

:class:`BankMachines` watches the command bus (the DFI command slots the
scheduler drives) and keeps, per bank, whether a row is open and which, and
a set of countdown timers. A timer is loaded by a command with the spacing
that command imposes on a later one and counts down once per controller
cycle; the later command is allowed when the timer reads 0. Every spacing
is converted to controller cycles at build time with
:meth:`~lpaccel.rtl.dram.config.LpddrConfig.cycles` for the two slots
involved: row commands (ACT, PRE, PREA, REF) go out in phase 0, column
commands (RD, WR) in phase ``ratio - 1``.

==========================  =====================================================
timer (allows)              loaded by (spacing)
==========================  =====================================================
``act_ok[b]`` (ACT, REF)    ACT b (tRC), PRE b (tRPpb), PREA (tRPab),
                            REFpb of b (tRFCpb), REFab (tRFCab)
``pre_ok[b]`` (PRE)         ACT b (tRAS), RD b (tRTP), WR b (WL + BL + tWR)
``cas_ok[b]`` (RD, WR)      ACT b (tRCD)
``rrd_ok`` (ACT, REFpb)     ACT, REFpb (tRRD); REFpb (tPBR2ACT, LPDDR5)
``faw_ok`` (ACT, REFpb)     the 4th-last ACT or REFpb (tFAW), a ring of 4 timers
``rd_ok`` / ``wr_ok``       RD or WR (tCCD, tCCD_S with groups); WR → RD
                            (WL + BL + tWTR), RD → WR (read-to-write turnaround)
``rd_group_ok[g]`` etc.     RD or WR in group g (tCCD_L), WR in g → RD (tWTR_L)
``refpb_ok`` (REFpb)        REFpb (tPBR2PBR)
``refab_ok`` (REFab)         REFab (tRFCab), REFpb (tRFCpb)
``pre_ok[b]`` also waits    PRE, PREA (tPPD, any bank: LPDDR4 4 nCK, a no-op
                            from 1:4 on, where row slots are 4 nCK apart)
``mwr_ok[b]`` (MASK-WRITE)  WR b (tCCDMW: a masked write to the bank waits)
``act_ab_ok`` (ACT)         REFab (tRFCab): every bank; after a REFpb only the
                            refreshed bank waits tRFCpb (``act_ok``), the
                            others tRRD (``rrd_ok``), as JEDEC allows
==========================  =====================================================

On LPDDR5 one REFpb refreshes a bank pair (``b`` and ``b ^ banks/2``), so it
loads both banks' ``act_ok``.

With ``config.idle_precharge`` set, each bank also counts the cycles since
its last ACT or column command while open; ``idle`` says the count reached
``idle_precharge`` (the scheduler may then close the bank in a free slot).

Latency: the outputs are registered (a command in cycle ``c`` affects them
from cycle ``c + 1``); there is no path from the command bus to an output.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import Command, LpddrConfig, command_layout

__all__ = ["bank_state_layout", "timing_layout", "BankMachines"]


def bank_state_layout(config):
    """What the scheduler and the refresh scheduler see of one bank."""
    return data.StructLayout({
        "open": 1,               # a row is open
        "row": config.row_bits,  # ... this one
        "act_ok": 1,             # ACT (or REF) allowed now
        "pre_ok": 1,             # PRE allowed now
        "cas_ok": 1,             # RD/WR allowed now (tRCD passed)
        "idle": 1,               # open and unused for idle_precharge cycles
        "mwr_ok": 1,             # a masked WRITE allowed now (tCCDMW passed)
    })


def timing_layout(config):
    """Timings that are not per bank: activate window, column spacing, refresh."""
    groups = config.part.bank_groups if config.bg_bits else 1
    return data.StructLayout({
        "rrd_ok": 1,
        "faw_ok": 1,
        "rd_ok": 1,
        "wr_ok": 1,
        "rd_group_ok": groups,  # per bank group (all ones without groups)
        "wr_group_ok": groups,
        "refpb_ok": 1,
        "refab_ok": 1,
        "act_ab_ok": 1,
    })


def _countdown(m, name, limit, loads):
    """A saturating down counter; returns the condition "it reads 0".

    ``loads`` are ``(condition, cycles)``: when ``condition`` holds in this
    cycle, the action waits ``cycles`` cycles from this one (``cycles`` 0 or
    1: allowed from the next cycle on). Loads never shorten a running wait.
    """
    count = Signal(range(max(2, limit + 1)), name=name)
    after = Mux(count == 0, 0, count - 1)
    for cond, cycles in loads:
        if cycles > 1:
            after = Mux(cond & (after < cycles - 1), cycles - 1, after)
    m.d.sync += count.eq(after)
    return count == 0


class BankMachines(wiring.Component):
    """Per-bank open rows and every command-to-command timer.

    See the module docstring for the timers and which commands load them.

    Parameters
    ----------
    config : LpddrConfig

    Attributes
    ----------
    commands : In(ArrayLayout(command_layout(config), config.ratio))
        The command slots as issued on the DFI-style boundary.
    banks : Out(ArrayLayout(bank_state_layout(config), banks))
        Per bank: open row and what it allows now.
    timing : Out(timing_layout(config))
        The timers shared by all banks.
    """

    def __init__(self, config):
        if not isinstance(config, LpddrConfig):
            raise TypeError(f"config must be an LpddrConfig, not {config!r}")
        self.config = config
        super().__init__({
            "commands": In(data.ArrayLayout(command_layout(config), config.ratio)),
            "banks": Out(data.ArrayLayout(bank_state_layout(config), config.part.banks)),
            "timing": Out(timing_layout(config)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        t = cfg.timings
        nb = cfg.part.banks
        ROW, COL = 0, cfg.ratio - 1
        half = nb // 2
        pair = cfg.part.refpb_banks == 2
        lim = max(t.tRFCab, t.tRC, t.wr_to_pre, t.tFAW, t.tRPab, t.tCCDMW) + 2

        def cyc(ck, src, dst):
            return cfg.cycles(ck, src, dst)

        row, col = self.commands[ROW], self.commands[COL]
        is_act = row.cmd == Command.ACT
        is_pre = row.cmd == Command.PRE
        is_prea = row.cmd == Command.PREA
        is_refpb = row.cmd == Command.REFPB
        is_refab = row.cmd == Command.REFAB
        is_rd = col.cmd == Command.RD
        is_wr = col.cmd == Command.WR
        is_cas = is_rd | is_wr

        # PRE/PREA to PRE/PREA (tPPD), whichever banks: gates every pre_ok.
        ppd_ok = _countdown(m, "t_ppd", lim, [(is_pre | is_prea, cyc(t.tPPD, ROW, ROW))])
        is_open = [Signal(name=f"open{b}") for b in range(nb)]
        open_row = [Signal(cfg.row_bits, name=f"open_row{b}") for b in range(nb)]
        for b in range(nb):
            here = row.bank == b
            cas_here = col.bank == b
            ref_here = (here | (row.bank == (b ^ half))) if pair else here
            with m.If(is_act & here):
                m.d.sync += [is_open[b].eq(1), open_row[b].eq(row.row)]
            with m.If((is_pre & here) | is_prea):
                m.d.sync += is_open[b].eq(0)
            state = self.banks[b]
            m.d.comb += [
                state.open.eq(is_open[b]),
                state.row.eq(open_row[b]),
                state.act_ok.eq(_countdown(m, f"t_act{b}", lim, [
                    (is_act & here, cyc(t.tRC, ROW, ROW)),
                    (is_pre & here, cyc(t.tRPpb, ROW, ROW)),
                    (is_prea, cyc(t.tRPab, ROW, ROW)),
                    (is_refpb & ref_here, cyc(t.tRFCpb, ROW, ROW)),
                    (is_refab, cyc(t.tRFCab, ROW, ROW))])),
                state.pre_ok.eq(ppd_ok & _countdown(m, f"t_pre{b}", lim, [
                    (is_act & here, cyc(t.tRAS, ROW, ROW)),
                    (is_rd & cas_here, cyc(t.tRTP, COL, ROW)),
                    (is_wr & cas_here, cyc(t.wr_to_pre, COL, ROW))])),
                state.mwr_ok.eq(_countdown(m, f"t_mwr{b}", lim, [
                    (is_wr & cas_here, cyc(t.tCCDMW, COL, COL))])),
                state.cas_ok.eq(_countdown(m, f"t_cas{b}", lim, [
                    (is_act & here, cyc(t.tRCD, ROW, COL))])),
            ]
            if cfg.idle_precharge:
                idle = Signal(range(cfg.idle_precharge + 1), name=f"idle{b}")
                with m.If((is_cas & cas_here) | (is_act & here) | ~is_open[b]):
                    m.d.sync += idle.eq(0)
                with m.Elif(idle != cfg.idle_precharge):
                    m.d.sync += idle.eq(idle + 1)
                m.d.comb += state.idle.eq(idle == cfg.idle_precharge)

        # Activate window: tRRD since the last ACT (or REFpb), tFAW since the
        # fourth-last, kept in a ring of four timers.
        row_activation = is_act | is_refpb
        rrd = [(row_activation, cyc(t.tRRD, ROW, ROW))]
        if t.tPBR2ACT:
            rrd.append((is_refpb, cyc(t.tPBR2ACT, ROW, ROW)))  # REFpb to ACT (LPDDR5)
        faw_ptr = Signal(2)
        faw_ok = [_countdown(m, f"t_faw{i}", lim, [
            (row_activation & (faw_ptr == i), cyc(t.tFAW, ROW, ROW))]) for i in range(4)]
        with m.If(row_activation):
            m.d.sync += faw_ptr.eq(faw_ptr + 1)

        timing = self.timing
        m.d.comb += [
            timing.rrd_ok.eq(_countdown(m, "t_rrd", lim, rrd)),
            timing.faw_ok.eq(Cat(*[(faw_ptr == i) & ok for i, ok in enumerate(faw_ok)]).any()),
            timing.rd_ok.eq(_countdown(m, "t_rd", lim, [
                (is_cas, cyc(t.tCCD, COL, COL)), (is_wr, cyc(t.wr_to_rd, COL, COL))])),
            timing.wr_ok.eq(_countdown(m, "t_wr", lim, [
                (is_cas, cyc(t.tCCD, COL, COL)), (is_rd, cyc(t.rd_to_wr, COL, COL))])),
            timing.refpb_ok.eq(_countdown(m, "t_refpb", lim, [
                (is_refpb, cyc(t.tPBR2PBR, ROW, ROW))])),
            timing.refab_ok.eq(_countdown(m, "t_refab", lim, [
                (is_refab, cyc(t.tRFCab, ROW, ROW)),
                (is_refpb, cyc(t.tRFCpb, ROW, ROW))])),  # REFab after REFpb
            timing.act_ab_ok.eq(_countdown(m, "t_act_ab", lim, [
                (is_refab, cyc(t.tRFCab, ROW, ROW))])),
        ]
        if cfg.bg_bits:
            # Same-group column spacing: tCCD_L, and tWTR_L for READ after WRITE.
            for g in range(cfg.part.bank_groups):
                cas_g = is_cas & (col.bank[cfg.ba_bits:] == g)
                m.d.comb += [
                    timing.rd_group_ok[g].eq(_countdown(m, f"t_rd_bg{g}", lim, [
                        (cas_g, cyc(t.tCCD_L, COL, COL)),
                        (cas_g & is_wr, cyc(t.wr_to_rd_L, COL, COL))])),
                    timing.wr_group_ok[g].eq(_countdown(m, f"t_wr_bg{g}", lim, [
                        (cas_g, cyc(t.tCCD_L, COL, COL))])),
                ]
        else:
            m.d.comb += [timing.rd_group_ok.eq(1), timing.wr_group_ok.eq(1)]
        return m
