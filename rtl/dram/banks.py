"""Bank machines: which rows are open and which commands the timings allow now.

:class:`BankMachines` watches the command bus (the DFI command slots the
scheduler drives) and keeps, per bank, whether a row is open and which, and
a set of countdown timers. A timer is loaded by a command with the spacing
that command imposes on a later one and counts down once per controller
cycle; the later command is allowed when the timer reads 0. Every spacing
is converted to controller cycles at build time with
:meth:`~lpaccel.rtl.dram.config.LpddrConfig.spacing` for the two commands
involved: their slots (row commands ACT, PRE, PREA, REF in phase 0, column
commands RD, WR in ``config.col_phase``) and their CA-bus lengths (a
spacing counts from the first command's last CA clock to the second's).
Where ACT and REF differ in CA length (LPDDR4: 4 and 2 CK) the timers that
allow them are separate (``act_ok`` / ``ref_ok``, ``rrd_ok`` /
``rrd_ref_ok``, ``faw_ok`` / ``faw_ref_ok``), each loaded with its own
conversion; with equal lengths the REF signals are the ACT ones. A timer
that allows two commands of different CA lengths takes the longer
conversion (``refab_ok``: REFab and REFpb are both 2 CK, so none does today).

==========================  =====================================================
timer (allows)              loaded by (spacing)
==========================  =====================================================
``act_ok[b]`` (ACT),        ACT b (tRC), PRE b (tRPpb), PREA (tRPab),
``ref_ok[b]`` (REF)
                            REFpb of b (tRFCpb), REFab (tRFCab)
``pre_ok[b]`` (PRE)         ACT b (tRAS), RD b (tRTP), WR b (WL + BL + tWR)
``cas_ok[b]`` (RD, WR)      ACT b (tRCD)
``rrd_ok`` (ACT)            ACT, REFpb (tRRD); REFpb (tPBR2ACT, LPDDR5)
``faw_ok`` (ACT)            the 4th-last ACT or REFpb (tFAW), a ring of 4 timers
``rrd_ref_ok``, ``faw_ref_ok``  the same two for a REFpb
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
        "act_ok": 1,             # ACT allowed now
        "ref_ok": 1,             # REFpb (of this bank) or REFab allowed now
        "pre_ok": 1,             # PRE allowed now
        "cas_ok": 1,             # RD/WR allowed now (tRCD passed)
        "idle": 1,               # open and unused for idle_precharge cycles
        "mwr_ok": 1,             # a masked WRITE allowed now (tCCDMW passed)
    })


def timing_layout(config):
    """Timings that are not per bank: activate window, column spacing, refresh."""
    groups = config.part.bank_groups if config.bg_bits else 1
    return data.StructLayout({
        "rrd_ok": 1,      # ACT allowed by tRRD / tFAW
        "faw_ok": 1,
        "rrd_ref_ok": 1,  # REFpb allowed by tRRD / tFAW
        "faw_ref_ok": 1,
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
        ROW, COL = 0, cfg.col_phase
        half = nb // 2
        pair = cfg.part.refpb_banks == 2
        lim = max(t.tRFCab, t.tRC, t.wr_to_pre, t.tFAW, t.tRPab, t.tCCDMW) + 2

        C = Command

        def cyc(ck, src, *dsts):
            # The longest of the conversions to each command the timer allows.
            return max(cfg.spacing(ck, src, dst) for dst in dsts)

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
        ppd_ok = _countdown(m, "t_ppd", lim, [(is_pre | is_prea, cyc(t.tPPD, C.PRE, C.PRE))])
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

            def act_or_ref(dst, suffix, b=b, here=here, ref_here=ref_here):
                return _countdown(m, f"t_{suffix}{b}", lim, [
                    (is_act & here, cyc(t.tRC, C.ACT, dst)),
                    (is_pre & here, cyc(t.tRPpb, C.PRE, dst)),
                    (is_prea, cyc(t.tRPab, C.PREA, dst)),
                    (is_refpb & ref_here, cyc(t.tRFCpb, C.REFPB, dst)),
                    (is_refab, cyc(t.tRFCab, C.REFAB, dst))])

            act_ok = act_or_ref(C.ACT, "act")
            ref_ok = act_or_ref(C.REFPB, "ref") if cfg.part.ca.act != cfg.part.ca.ref else act_ok
            m.d.comb += [
                state.open.eq(is_open[b]),
                state.row.eq(open_row[b]),
                state.act_ok.eq(act_ok),
                state.ref_ok.eq(ref_ok),
                state.pre_ok.eq(ppd_ok & _countdown(m, f"t_pre{b}", lim, [
                    (is_act & here, cyc(t.tRAS, C.ACT, C.PRE)),
                    (is_rd & cas_here, cyc(t.tRTP, C.RD, C.PRE)),
                    (is_wr & cas_here, cyc(t.wr_to_pre, C.WR, C.PRE))])),
                state.mwr_ok.eq(_countdown(m, f"t_mwr{b}", lim, [
                    (is_wr & cas_here, cyc(t.tCCDMW, C.WR, C.WR))])),
                state.cas_ok.eq(_countdown(m, f"t_cas{b}", lim, [
                    (is_act & here, cyc(t.tRCD, C.ACT, C.RD))])),
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
        # REFpb counts as an activation; where ACT and REFpb differ in CA
        # length, the spacing to each is converted (and timed) on its own.
        row_activation = is_act | is_refpb
        refpb_activation = row_activation & ~is_act
        faw_ptr = Signal(2)
        with m.If(row_activation):
            m.d.sync += faw_ptr.eq(faw_ptr + 1)

        def activate_window(dst, suffix):
            rrd = [(is_act, cyc(t.tRRD, C.ACT, dst)),
                   (refpb_activation, cyc(t.tRRD, C.REFPB, dst))]
            if t.tPBR2ACT and dst == C.ACT:
                rrd.append((is_refpb, cyc(t.tPBR2ACT, C.REFPB, C.ACT)))  # LPDDR5
            faw = [_countdown(m, f"t_faw{suffix}{i}", lim, [
                (is_act & (faw_ptr == i), cyc(t.tFAW, C.ACT, dst)),
                (refpb_activation & (faw_ptr == i), cyc(t.tFAW, C.REFPB, dst))])
                for i in range(4)]
            return (_countdown(m, f"t_rrd{suffix}", lim, rrd),
                    Cat(*[(faw_ptr == i) & ok for i, ok in enumerate(faw)]).any())

        timing = self.timing
        rrd_ok, faw_ok = activate_window(C.ACT, "")
        if cfg.part.ca.act != cfg.part.ca.ref:
            rrd_ref_ok, faw_ref_ok = activate_window(C.REFPB, "_ref")
        else:
            rrd_ref_ok, faw_ref_ok = rrd_ok, faw_ok
        m.d.comb += [
            timing.rrd_ok.eq(rrd_ok),
            timing.faw_ok.eq(faw_ok),
            timing.rrd_ref_ok.eq(rrd_ref_ok),
            timing.faw_ref_ok.eq(faw_ref_ok),
            timing.rd_ok.eq(_countdown(m, "t_rd", lim, [
                (is_cas, cyc(t.tCCD, C.RD, C.RD)), (is_wr, cyc(t.wr_to_rd, C.WR, C.RD))])),
            timing.wr_ok.eq(_countdown(m, "t_wr", lim, [
                (is_cas, cyc(t.tCCD, C.RD, C.WR)), (is_rd, cyc(t.rd_to_wr, C.RD, C.WR))])),
            timing.refpb_ok.eq(_countdown(m, "t_refpb", lim, [
                (is_refpb, cyc(t.tPBR2PBR, C.REFPB, C.REFPB))])),
            timing.refab_ok.eq(_countdown(m, "t_refab", lim, [
                (is_refab, cyc(t.tRFCab, C.REFAB, C.REFAB, C.REFPB)),
                (is_refpb, cyc(t.tRFCpb, C.REFPB, C.REFAB))])),  # REFab after REFpb
            timing.act_ab_ok.eq(_countdown(m, "t_act_ab", lim, [
                (is_refab, cyc(t.tRFCab, C.REFAB, C.ACT))])),
        ]
        if cfg.bg_bits:
            # Same-group column spacing: tCCD_L, and tWTR_L for READ after WRITE.
            for g in range(cfg.part.bank_groups):
                cas_g = is_cas & (col.bank[cfg.ba_bits:] == g)
                m.d.comb += [
                    timing.rd_group_ok[g].eq(_countdown(m, f"t_rd_bg{g}", lim, [
                        (cas_g, cyc(t.tCCD_L, C.RD, C.RD)),
                        (cas_g & is_wr, cyc(t.wr_to_rd_L, C.WR, C.RD))])),
                    timing.wr_group_ok[g].eq(_countdown(m, f"t_wr_bg{g}", lim, [
                        (cas_g, cyc(t.tCCD_L, C.WR, C.WR))])),
                ]
        else:
            m.d.comb += [timing.rd_group_ok.eq(1), timing.wr_group_ok.eq(1)]
        return m
