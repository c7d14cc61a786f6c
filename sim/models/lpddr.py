"""RTL LPDDR device model with a timing checker, for Verilator-speed simulation.

:class:`LpddrModel` sits on the far side of the controller's DFI-style
boundary (:class:`~lpaccel.rtl.dram.config.DfiSignature`). It keeps the
open/closed state and open row of every bank, stores data in a
:class:`~amaranth.lib.memory.Memory`, and contains an
:class:`LpddrTimingChecker` that watches every command slot.

Storage is sized for simulation: ``config.sim_bytes`` (a few hundred KiB)
instead of the part's gigabit. A burst's address is linearised as ``row |
bank | column`` (the controller's own mapping, so the model's storage
address equals the AXI byte address) and taken modulo ``sim_bytes``: two
rows that differ only above that size alias. Tests keep their addresses
below ``sim_bytes`` or model the aliasing.
"""

import enum
from pathlib import Path
from types import SimpleNamespace

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lpaccel.rtl.dram.config import Command, DfiSignature, LpddrConfig
from lpaccel.rtl.utils import or_reduce

__all__ = ["Rule", "LpddrTimingChecker", "LpddrModel", "STORAGE_VERILOG"]

#: The storage array of the model (a Verilog module, see the file): tops that
#: contain an :class:`LpddrModel` list it in their ``verilog_sources``.
STORAGE_VERILOG = Path(__file__).with_name("lpaccel_sim_storage.v")

# Timestamps start here so that every "earliest allowed time" initialised to
# zero is already in the past at the first command.
_EPOCH = 1 << 16
_TS_BITS = 32  # DRAM clocks: 2^32 is far beyond any simulation run


class Rule(enum.IntEnum):
    """Rule codes latched by :class:`LpddrTimingChecker` (0: no violation)."""

    NONE = 0
    tRCD = 1
    tRP = 2
    tRAS = 3
    tRC = 4
    tRRD = 5
    tFAW = 6
    tCCD = 7
    tWR = 8
    tWTR = 9
    tRTP = 10
    tRFCab = 11
    tRFCpb = 12
    tREFI = 13
    ACT_OPEN = 14
    CAS_CLOSED = 15
    REF_OPEN = 16
    tRTW = 17
    tPBR2PBR = 18
    WRDATA = 19
    tCCD_L = 20
    tWTR_L = 21
    tPBR2ACT = 22
    tRASmax = 23
    tPPD = 24
    tCCDMW = 25
    REF_BANK = 26
    CA = 27


def _first_hit(m, checks, p, bank_port):
    """The first of ``checks`` (condition, rule, bank) that holds, as signals.

    Each condition is evaluated once into its own wire, a running "an earlier
    check hit" wire makes the hits one-hot, and the rule and bank are ORed
    from the one-hot hits. (An ``If``/``Elif`` chain over ~50 conditions
    becomes a ``casez`` that Verilator expands quadratically: tens of MB of
    C++ and minutes of build; a 50-deep Mux chain is too deep for pysim.)
    """
    seen = Const(0, 1)
    rules, banks = [], []
    for k, (cond, rule, bank) in enumerate(checks):
        c = Signal(name=f"chk{k}_p{p}")
        hit = Signal(name=f"hit{k}_p{p}")
        m.d.comb += [c.eq(cond), hit.eq(c & ~seen)]
        after = Signal(name=f"seen{k}_p{p}")
        m.d.comb += after.eq(seen | c)
        seen = after
        rules.append(Mux(hit, int(rule), 0))
        banks.append(Mux(hit, bank, 0))
    v = Signal(name=f"viol_p{p}")
    r = Signal(Rule, name=f"rule_p{p}")
    bk = Signal.like(bank_port, name=f"bank_p{p}")
    m.d.comb += [v.eq(seen), r.eq(or_reduce(rules)), bk.eq(or_reduce(banks))]
    return v, r, bk


class LpddrTimingChecker(wiring.Component):
    """Checks every command on a DFI-style boundary against the part's timings.

    All spacings are checked in DRAM clocks: the command in slot ``p`` of
    controller cycle ``c`` starts at DRAM clock ``c * ratio + p``, and the
    slots of one cycle are checked in order (a command sees the state left by
    the earlier slots of its own cycle).

    CA bus: a command occupies the CA bus for ``part.ca`` clocks from its
    start (LPDDR4, JESD209-4 command truth table: ACT = ACT-1 + ACT-2, RD/WR
    = RD-1/WR-1 + CAS-2, 4 clocks each; PRE, PREA, REFab, REFpb 2 clocks).
    Rule CA: a command that starts before the previous command's last CA
    clock has passed is a violation (reported at its start clock, with its
    bank), checked before every other rule. Every timing parameter counts
    from a command's *last* CA clock (``start + ca - 1``), the convention
    of JESD209-4's timing diagrams that DRAMSys's LPDDR4 checker encodes
    (it times commands at their first clock and adds the length difference:
    ACT to PRE tRAS + 2 tCK, PRE to ACT tRPpb - 2 tCK): so tRCD, tRP,
    tRAS ... keep exactly their JEDEC values, and between commands of equal
    length (ACT to ACT, RD to WR, PRE to PRE) nothing changes; ACT to PRE
    needs 2 more clocks from start to start, PRE to ACT 2 fewer. Reported
    clocks are start clocks. Parts whose commands are one clock (the
    defaults, LPDDR5 here) check exactly as before.

    Rules (:class:`Rule`): tRCD, tRP (tRPpb after PRE, tRPab after PREA, to
    ACT and REF), tRAS, tRC, tRRD and tFAW (REFpb counts as an ACT), tCCD,
    tWR (WRITE to PRE: WL + BL/2 + 1 + tWR), tWTR (WRITE to READ), tRTP,
    tRTW (READ to WRITE), tRFCab (nothing but NOP during an all-bank
    refresh), tRFCpb (no ACT/PRE/REF to the refreshing bank, no REFab),
    tpbR2pbR, tREFI (refresh debt, counted in REFpb units, must stay within
    ``refresh_postpone`` intervals either way), REF_BANK (the same per bank:
    each bank owes one refresh per tREFI, paid by a REFpb to it or a REFab,
    and its own debt must stay within ``refresh_postpone`` either way, so a
    refresh pointer that skips banks is caught), tRASmax (a row open longer
    than 9 x tREFI), tPPD (PRE/PREA to PRE/PREA), CA (see above), tCCDMW (a masked write, a
    WRITE whose burst has a clear strobe bit, which on the device is a
    MASK-WRITE, less than tCCDMW after a WRITE to its bank; reported at the
    WRITE's clock when its last beat is seen), ACT to an open bank, READ or
    WRITE to a closed bank, REF with a bank open (all banks for REFab, the
    target for REFpb), and WRDATA (write data beats missing or unexpected).

    On a part with bank groups (LPDDR5 BG mode) tCCD and tWTR are the
    different-group spacings (tCCD_S, tWTR_S) and two more rules hold within
    a group: tCCD_L and tWTR_L. Where one REFpb refreshes a bank pair
    (``refpb_banks == 2``: banks ``b`` and ``b ^ banks/2``) the REFpb rules
    (bank closed, tRP, tRFCpb) hold for both banks and tRFCpb blocks both.
    A part with a REFpb-to-ACT time adds tPBR2ACT. Parts without these
    features elaborate exactly the logic they had before.

    The first violation is latched: ``violation`` stays high and ``rule``,
    ``bank`` and ``cycle`` (DRAM clocks since reset) keep describing it.

    Parameters
    ----------
    config : LpddrConfig

    Ports
    -----
    dfi : In(DfiSignature)
        The boundary being watched (all members are inputs here).
    wrdata_expected : In(1)
        The device model expects a write data beat this cycle.
    violation, rule, bank, cycle : Out
        The first violation.
    refresh_debt : Out(signed)
        Refresh owed, in REFpb units (``refs_per_refab`` per tREFI).
    refresh_debt_max : Out
        Largest debt seen.
    n_act, n_rd, n_wr, n_refab, n_refpb : Out(32)
        Command counters.
    """

    def __init__(self, config):
        if not isinstance(config, LpddrConfig):
            raise TypeError(f"config must be an LpddrConfig, not {config!r}")
        self.config = config
        dfi = DfiSignature(config).flip()
        super().__init__({
            "dfi": In(wiring.Signature({name: Out(m.shape)
                                        for name, m in dfi.members.items()})),
            "wrdata_expected": In(1),
            "violation": Out(1),
            "rule": Out(Rule),
            "bank": Out(max(1, config.bank_bits)),
            "cycle": Out(_TS_BITS),
            "refresh_debt": Out(signed(16)),
            "refresh_debt_max": Out(signed(16)),
            "n_act": Out(32),
            "n_rd": Out(32),
            "n_wr": Out(32),
            "n_refab": Out(32),
            "n_refpb": Out(32),
        })

    def _state_layout(self):
        """Everything the checker remembers; timestamps hold the earliest legal time."""
        cfg, ts = self.config, unsigned(_TS_BITS)
        bank = data.StructLayout({
            "open": 1,
            "act_rp": ts,     # PRE -> ACT/REF (tRPpb, tRPab)
            "act_rc": ts,     # ACT -> ACT (tRC)
            "act_rfc": ts,    # REFpb -> ACT/REFpb of this bank (tRFCpb)
            "pre_ras": ts,    # ACT -> PRE (tRAS)
            "pre_rtp": ts,    # READ -> PRE (tRTP)
            "pre_wr": ts,     # WRITE -> PRE (write recovery)
            "cas_rcd": ts,    # ACT -> READ/WRITE (tRCD)
            "ras_max": ts,    # ACT -> latest PRE (tRAS(max) = 9 tREFI)
            "wr_mw": ts,      # WRITE -> MASK-WRITE (tCCDMW)
        })
        fields = {
            "bank": data.ArrayLayout(bank, cfg.part.banks),
            "act_rrd": ts,    # ACT/REFpb -> ACT/REFpb (tRRD)
            "cas_ccd": ts,    # CAS -> CAS (tCCD, tCCD_S with bank groups)
            "rd_wtr": ts,     # WRITE -> READ (tWTR, tWTR_S)
            "wr_rtw": ts,     # READ -> WRITE
            "rfcab": ts,      # REFab -> anything (tRFCab)
            "refpb_sp": ts,   # REFpb -> REFpb (tpbR2pbR)
            "refab_pb": ts,   # REFpb -> REFab (tRFCpb)
            "pre_ppd": ts,    # PRE/PREA -> PRE/PREA (tPPD)
            "ca_free": ts,    # first clock after the last command's CA clocks
            "faw": data.ArrayLayout(ts, 4),   # the last four ACTs, oldest first
        }
        if cfg.part.bank_groups > 1:
            fields["group"] = data.ArrayLayout(
                data.StructLayout({"cas_ccdl": ts, "rd_wtrl": ts}), cfg.part.bank_groups)
        if cfg.timings.tPBR2ACT > 0:
            fields["act_pbr"] = ts          # REFpb -> ACT (tpbR2act)
        return data.StructLayout(fields)

    def _checks(self, cur, start, tp, cmd, ba):
        """The rules for one command slot, as (condition, rule, bank) in priority order.

        ``start`` is the slot's DRAM clock, ``tp`` the command's last CA clock.
        """
        cfg, t = self.config, self.config.timings
        nb, half = cfg.part.banks, cfg.part.banks // 2
        pair = cfg.part.refpb_banks == 2
        grouped = cfg.part.bank_groups > 1
        act, rd, wr = cmd[Command.ACT], cmd[Command.RD], cmd[Command.WR]
        pre, prea = cmd[Command.PRE], cmd[Command.PREA]
        refab, refpb = cmd[Command.REFAB], cmd[Command.REFPB]
        pba = ba ^ half                     # the REFpb pair's other bank
        this, other = cur.bank[ba], cur.bank[pba]
        group = cur.group[ba[cfg.ba_bits:]] if grouped else None

        def early(timestamp):
            return tp < timestamp

        any_cmd = act | rd | wr | pre | prea | refab | refpb
        checks = [
            (any_cmd & (start < cur.ca_free), Rule.CA, ba),
            (any_cmd & early(cur.rfcab), Rule.tRFCab, ba),
            (act & this.open, Rule.ACT_OPEN, ba),
            ((act | refpb) & early(this.act_rp), Rule.tRP, ba),
        ]
        if pair:
            checks += [(refpb & early(other.act_rp), Rule.tRP, pba)]
        checks += [
            (act & early(this.act_rc), Rule.tRC, ba),
            ((act | refpb | pre) & early(this.act_rfc), Rule.tRFCpb, ba),
        ]
        if pair:
            checks += [(refpb & early(other.act_rfc), Rule.tRFCpb, pba)]
        checks += [((act | refpb) & early(cur.act_rrd), Rule.tRRD, ba)]
        if t.tPBR2ACT > 0:
            checks += [(act & early(cur.act_pbr), Rule.tPBR2ACT, ba)]
        checks += [
            ((act | refpb) & early(cur.faw[0] + t.tFAW), Rule.tFAW, ba),
            ((rd | wr) & ~this.open, Rule.CAS_CLOSED, ba),
            ((rd | wr) & early(this.cas_rcd), Rule.tRCD, ba),
            ((rd | wr) & early(cur.cas_ccd), Rule.tCCD, ba),
        ]
        if grouped:
            checks += [((rd | wr) & early(group.cas_ccdl), Rule.tCCD_L, ba)]
        checks += [(rd & early(cur.rd_wtr), Rule.tWTR, ba)]
        if grouped:
            checks += [(rd & early(group.rd_wtrl), Rule.tWTR_L, ba)]
        checks += [
            (wr & early(cur.wr_rtw), Rule.tRTW, ba),
            (refpb & this.open, Rule.REF_OPEN, ba),
        ]
        if pair:
            checks += [(refpb & other.open, Rule.REF_OPEN, pba)]
        checks += [
            (refpb & early(cur.refpb_sp), Rule.tPBR2PBR, ba),
            (refab & early(cur.refab_pb), Rule.tRFCpb, ba),
            ((pre | prea) & early(cur.pre_ppd), Rule.tPPD, ba),
        ]
        # PRE checks the addressed bank, PREA every open bank, REFab every bank.
        for b in range(nb):
            hit_pre = (pre & (ba == b)) | prea
            bank = cur.bank[b]
            checks += [
                (hit_pre & bank.open & early(bank.pre_ras), Rule.tRAS, b),
                (hit_pre & bank.open & early(bank.pre_rtp), Rule.tRTP, b),
                (hit_pre & bank.open & early(bank.pre_wr), Rule.tWR, b),
                (refab & bank.open, Rule.REF_OPEN, b),
                (refab & early(bank.act_rp), Rule.tRP, b),
            ]
        # A row may stay open at most 9 x tREFI, command or not.
        checks += [(cur.bank[b].open & (tp > cur.bank[b].ras_max), Rule.tRASmax, b)
                   for b in range(nb)]
        return checks

    def _advance(self, m, cur, nxt, tp, cmd, ba):
        """``nxt``: the state after a command slot whose last CA clock is ``tp``."""
        cfg, t = self.config, self.config.timings
        half = cfg.part.banks // 2
        act, rd, wr = cmd[Command.ACT], cmd[Command.RD], cmd[Command.WR]
        pre, prea = cmd[Command.PRE], cmd[Command.PREA]
        refab, refpb = cmd[Command.REFAB], cmd[Command.REFPB]
        for b in range(cfg.part.banks):
            sel = ba == b
            ref_sel = (sel | (ba == (b ^ half))) if cfg.part.refpb_banks == 2 else sel
            was, now = cur.bank[b], nxt.bank[b]
            m.d.comb += [
                now.open.eq(Mux(act & sel, 1, Mux((pre & sel) | prea, 0, was.open))),
                now.act_rp.eq(Mux(pre & sel, tp + t.tRPpb, Mux(prea, tp + t.tRPab, was.act_rp))),
                now.act_rc.eq(Mux(act & sel, tp + t.tRC, was.act_rc)),
                now.act_rfc.eq(Mux(refpb & ref_sel, tp + t.tRFCpb, was.act_rfc)),
                now.pre_ras.eq(Mux(act & sel, tp + t.tRAS, was.pre_ras)),
                now.cas_rcd.eq(Mux(act & sel, tp + t.tRCD, was.cas_rcd)),
                now.pre_rtp.eq(Mux(rd & sel, tp + t.tRTP, was.pre_rtp)),
                now.pre_wr.eq(Mux(wr & sel, tp + t.wr_to_pre, was.pre_wr)),
                now.ras_max.eq(Mux(act & sel, tp + 9 * t.tREFI, was.ras_max)),
                now.wr_mw.eq(Mux(wr & sel, tp + t.tCCDMW, was.wr_mw)),
            ]
        m.d.comb += [
            nxt.act_rrd.eq(Mux(act | refpb, tp + t.tRRD, cur.act_rrd)),
            nxt.cas_ccd.eq(Mux(rd | wr, tp + t.tCCD, cur.cas_ccd)),
            nxt.rd_wtr.eq(Mux(wr, tp + t.wr_to_rd, cur.rd_wtr)),
            nxt.wr_rtw.eq(Mux(rd, tp + t.rd_to_wr, cur.wr_rtw)),
            nxt.rfcab.eq(Mux(refab, tp + t.tRFCab, cur.rfcab)),
            nxt.refpb_sp.eq(Mux(refpb, tp + t.tPBR2PBR, cur.refpb_sp)),
            nxt.refab_pb.eq(Mux(refpb, tp + t.tRFCpb, cur.refab_pb)),
            nxt.pre_ppd.eq(Mux(pre | prea, tp + t.tPPD, cur.pre_ppd)),
            nxt.ca_free.eq(Mux(act | rd | wr | pre | prea | refab | refpb, tp + 1,
                               cur.ca_free)),
        ]
        if cfg.part.bank_groups > 1:
            for g in range(cfg.part.bank_groups):
                in_g = ba[cfg.ba_bits:] == g
                was, now = cur.group[g], nxt.group[g]
                m.d.comb += [
                    now.cas_ccdl.eq(Mux((rd | wr) & in_g, tp + t.tCCD_L, was.cas_ccdl)),
                    now.rd_wtrl.eq(Mux(wr & in_g, tp + t.wr_to_rd_L, was.rd_wtrl)),
                ]
        if t.tPBR2ACT > 0:
            m.d.comb += nxt.act_pbr.eq(Mux(refpb, tp + t.tPBR2ACT, cur.act_pbr))
        for i in range(4):
            m.d.comb += nxt.faw[i].eq(Mux(act | refpb, cur.faw[i + 1] if i < 3 else tp,
                                          cur.faw[i]))

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        t = cfg.timings
        n = cfg.ratio
        refs = cfg.refs_per_refab

        now = Signal(_TS_BITS, init=_EPOCH)
        m.d.sync += now.eq(now + n)

        # The slots of one controller cycle are checked in order: slot p sees
        # the state left by slots 0..p-1 of the same cycle.
        layout = self._state_layout()
        state = Signal(layout)
        cur = state
        viol_p, rule_p, bank_p, pays = [], [], [], []
        nb, half = cfg.part.banks, cfg.part.banks // 2
        bank_pays = [[] for _ in range(nb)]
        mw_start = Const(0, 1)          # a WRITE in this controller cycle ...
        mw_early = Const(0, 1)          # ... less than tCCDMW after one to its bank
        mw_bank = Const(0, self.bank.shape())
        mw_time = Const(0, _TS_BITS)
        counts = {c: [] for c in (Command.ACT, Command.RD, Command.WR, Command.REFAB,
                                  Command.REFPB)}
        for p in range(n):
            slot = self.dfi.phases[p]
            start = Signal(_TS_BITS, name=f"t_p{p}")
            m.d.comb += start.eq(now + p)
            cmd = {c: Signal(name=f"is_{c.name.lower()}_p{p}") for c in Command}
            m.d.comb += [s.eq(slot.cmd == c) for c, s in cmd.items()]
            # The command's last CA clock: every timing counts from it.
            tp = Signal(_TS_BITS, name=f"t_last_p{p}")
            last = Const(0, 2)
            for c in Command:
                if cfg.ca_clocks(c) > 1:
                    last = Mux(cmd[c], cfg.ca_clocks(c) - 1, last)
            m.d.comb += tp.eq(start + last)
            for c in counts:
                counts[c].append(cmd[c])
            cur_before = cur
            v, r, bk = _first_hit(m, self._checks(cur, start, tp, cmd, slot.bank), p,
                                  self.bank)
            viol_p.append(v)
            rule_p.append(r)
            bank_p.append(bk)
            nxt = Signal(layout, name=f"state_p{p}")
            self._advance(m, cur, nxt, tp, cmd, slot.bank)
            cur = nxt
            pays.append(Mux(cmd[Command.REFAB], refs, Mux(cmd[Command.REFPB], 1, 0)))
            for b in range(nb):
                sel = slot.bank == b
                if cfg.part.refpb_banks == 2:
                    sel = sel | (slot.bank == (b ^ half))
                bank_pays[b].append(cmd[Command.REFAB] | (cmd[Command.REFPB] & sel))
            is_wr = cmd[Command.WR]
            this_early = tp < cur_before.bank[slot.bank].wr_mw
            mw_early = Mux(is_wr, this_early, mw_early)
            mw_bank = Mux(is_wr, slot.bank, mw_bank)
            mw_time = Mux(is_wr, start, mw_time)
            mw_start = mw_start | is_wr
        m.d.sync += state.eq(cur)

        # Refresh debt: +1 REFpb unit per tREFIpb, paid by REF commands.
        acc = Signal(range(t.tREFIpb + n + 1))
        tick = Signal()
        m.d.comb += tick.eq(acc + n >= t.tREFIpb)
        m.d.sync += acc.eq(Mux(tick, acc + n - t.tREFIpb, acc + n))
        debt = Signal(signed(16))
        debt_max = Signal(signed(16))
        new_debt = Signal(signed(16))
        m.d.comb += new_debt.eq(debt + tick - sum(pays))
        m.d.sync += debt.eq(new_debt)
        with m.If(new_debt > debt_max):
            m.d.sync += debt_max.eq(new_debt)
        limit = t.refresh_postpone * refs
        debt_bad = (new_debt > limit) | (new_debt < -limit)

        for c, sigs in counts.items():
            counter = getattr(self, f"n_{c.name.lower()}")
            m.d.sync += counter.eq(counter + sum(sigs))
        m.d.comb += [self.refresh_debt.eq(debt), self.refresh_debt_max.eq(debt_max)]

        wrdata_bad = self.wrdata_expected != self.dfi.wrdata_en

        # Per-bank refresh debt: every bank owes one refresh per tREFI (one
        # per ``refs`` global ticks, so the two debts never drift apart).
        post = t.refresh_postpone
        sub = Signal(range(refs))
        bank_tick = Signal()
        m.d.comb += bank_tick.eq(tick & (sub == refs - 1))
        with m.If(tick):
            m.d.sync += sub.eq(Mux(sub == refs - 1, 0, sub + 1))
        bank_bad = []
        for b in range(nb):
            bd = Signal(signed(8), name=f"bank_debt{b}")
            new_bd = Signal(signed(8), name=f"bank_debt_next{b}")
            m.d.comb += new_bd.eq(bd + bank_tick - sum(bank_pays[b]))
            m.d.sync += bd.eq(new_bd)
            bank_bad.append((new_bd > post) | (new_bd < -post))

        # Masked writes (tCCDMW): a WRITE whose burst has a clear strobe bit
        # is a MASK-WRITE; it is judged when its last beat has been seen.
        mw_bad = Const(0, 1)
        mw_bad_bank, mw_bad_time = Const(0, 1), Const(0, _TS_BITS)
        if t.tCCDMW:
            beats = cfg.beats_per_burst
            full = (1 << (cfg.data_width // 8)) - 1
            left = Signal(range(beats))
            masked = Signal()
            p_early = Signal()
            p_bank = Signal.like(self.bank)
            p_time = Signal(_TS_BITS)
            partial = self.dfi.wrdata_en & (self.dfi.wrdata_strb != full)
            acc = Mux(mw_start, partial, masked | partial)
            cur_early = Mux(mw_start, mw_early, p_early)
            last_beat = Mux(mw_start, beats == 1, left == 1)
            m.d.sync += [masked.eq(acc), left.eq(Mux(mw_start, beats - 1,
                                                     Mux(left != 0, left - 1, 0)))]
            with m.If(mw_start):
                m.d.sync += [p_early.eq(mw_early), p_bank.eq(mw_bank), p_time.eq(mw_time)]
            mw_bad = last_beat & acc & cur_early
            mw_bad_bank = Mux(mw_start, mw_bank, p_bank)
            mw_bad_time = Mux(mw_start, mw_time, p_time)

        def latch(rule, bank, slot):
            m.d.sync += [self.violation.eq(1), self.rule.eq(rule), self.bank.eq(bank),
                         self.cycle.eq(now + slot - _EPOCH)]

        # The first violation wins: the earliest command slot, then write data, then refresh.
        with m.If(~self.violation):
            with m.If(viol_p[0]):
                latch(rule_p[0], bank_p[0], 0)
            for p in range(1, n):
                with m.Elif(viol_p[p]):
                    latch(rule_p[p], bank_p[p], p)
            with m.Elif(wrdata_bad):
                latch(Rule.WRDATA, 0, 0)
            with m.Elif(mw_bad):
                m.d.sync += [self.violation.eq(1), self.rule.eq(Rule.tCCDMW),
                             self.bank.eq(mw_bad_bank), self.cycle.eq(mw_bad_time - _EPOCH)]
            with m.Elif(debt_bad):
                latch(Rule.tREFI, 0, 0)
            for b in range(nb):
                with m.Elif(bank_bad[b]):
                    latch(Rule.REF_BANK, b, 0)
        return m


class LpddrModel(wiring.Component):
    """An LPDDR channel for simulation: banks, rows, data and a timing checker.

    Parameters
    ----------
    config : LpddrConfig
    storage : str
        ``"verilog"`` (default): the data lives in a :data:`STORAGE_VERILOG`
        instance (``mem``, its array ``mem.words``), which scales to any
        ``sim_bytes``; a top that contains the model lists
        :attr:`verilog_sources` with its own sources. ``"amaranth"``: an
        Amaranth ``Memory``, for ``amaranth.sim`` (small ``sim_bytes`` only: it
        is emitted with one initial value per word).

    Ports
    -----
    dfi : In(DfiSignature(config))
        Commands and write data from the controller, read data back.
    violation, rule, bank, cycle, refresh_debt, refresh_debt_max, n_* : Out
        From the :class:`LpddrTimingChecker` inside.
    """

    def __init__(self, config, *, storage="verilog"):
        if not isinstance(config, LpddrConfig):
            raise TypeError(f"config must be an LpddrConfig, not {config!r}")
        if storage not in ("verilog", "amaranth"):
            raise ValueError(f"storage must be 'verilog' or 'amaranth', not {storage!r}")
        self.config = config
        self.storage = storage
        #: Verilog files a simulator needs besides the converted top.
        self.verilog_sources = (STORAGE_VERILOG,) if storage == "verilog" else ()
        #: ``(module, signal)`` a cocotb testbench reaches inside (backdoor loads).
        self.sim_public = (("lpaccel_sim_storage", "words"),) if storage == "verilog" else ()
        self.checker = LpddrTimingChecker(config)
        members = {"dfi": In(DfiSignature(config))}
        for name, member in self.checker.signature.members.items():
            if name not in ("dfi", "wrdata_expected"):
                members[name] = Out(member.shape)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        n = cfg.ratio
        nb = cfg.part.banks
        beats = cfg.beats_per_burst
        depth = cfg.sim_bytes // cfg.beat_bytes
        burst_bits = (depth // beats).bit_length() - 1
        beat_bits = (beats - 1).bit_length()

        m.submodules.checker = chk = self.checker
        for name in self.checker.signature.members:
            if name == "dfi":
                for f in self.dfi.signature.members:
                    m.d.comb += getattr(chk.dfi, f).eq(getattr(self.dfi, f))
            elif name != "wrdata_expected":
                m.d.comb += getattr(self, name).eq(getattr(chk, name))

        # Open row per bank (the checker tracks legality; this tracks data).
        rows = [Signal(cfg.row_bits, name=f"row{b}") for b in range(nb)]
        cas_valid = Signal()
        cas_write = Signal()
        cas_burst = Signal(burst_bits)
        for p in range(n):
            slot = self.dfi.phases[p]
            with m.If(slot.cmd == Command.ACT):
                for b in range(nb):
                    with m.If(slot.bank == b):
                        m.d.sync += rows[b].eq(slot.row)
            with m.If((slot.cmd == Command.RD) | (slot.cmd == Command.WR)):
                row = Signal(cfg.row_bits, name=f"cas_row_p{p}")
                for b in range(nb):
                    with m.If(slot.bank == b):
                        m.d.comb += row.eq(rows[b])
                bank = slot.bank[:cfg.bank_bits]
                if cfg.bg_bits:
                    # The controller's mapping, bank group lowest (controller.py).
                    linear = Cat(bank[cfg.ba_bits:], slot.col[:cfg.col_bits],
                                 bank[:cfg.ba_bits], row)
                else:
                    linear = Cat(slot.col[:cfg.col_bits], bank, row)
                m.d.comb += [cas_valid.eq(1), cas_write.eq(slot.cmd == Command.WR),
                             cas_burst.eq(linear[:burst_bits])]

        # The storage (see the class docstring).
        abits = max(1, (depth - 1).bit_length())
        if self.storage == "amaranth":
            m.submodules.mem = mem = Memory(shape=unsigned(cfg.data_width), depth=depth,
                                            init=[])
            wp = mem.write_port(granularity=8)
            rp = mem.read_port()
        else:
            wp = SimpleNamespace(addr=Signal(abits, name="mem_waddr"),
                                 data=Signal(cfg.data_width, name="mem_wdata"),
                                 en=Signal(cfg.data_width // 8, name="mem_wen"))
            rp = SimpleNamespace(addr=Signal(abits, name="mem_raddr"), en=Signal(name="mem_ren"),
                                 data=Signal(cfg.data_width, name="mem_rdata"))
            m.submodules.mem = Instance(
                "lpaccel_sim_storage",
                p_WIDTH=cfg.data_width, p_DEPTH=depth, p_ABITS=abits,
                i_clk=ClockSignal(), i_waddr=wp.addr, i_wdata=wp.data, i_wen=wp.en,
                i_raddr=rp.addr, i_ren=rp.en, o_rdata=rp.data)

        # Write beats: the WRITE's cycle and the beats - 1 cycles after it.
        wr_left = Signal(range(beats))
        wr_addr = Signal(burst_bits + beat_bits)
        start_wr = cas_valid & cas_write
        expected = start_wr | (wr_left != 0)
        addr_now = Mux(start_wr, Cat(Const(0, beat_bits), cas_burst), wr_addr)
        m.d.comb += [
            chk.wrdata_expected.eq(expected),
            wp.addr.eq(addr_now),
            wp.data.eq(self.dfi.wrdata),
            wp.en.eq(Mux(expected & self.dfi.wrdata_en, self.dfi.wrdata_strb, 0)),
        ]
        with m.If(start_wr):
            m.d.sync += [wr_left.eq(beats - 1), wr_addr.eq(addr_now + 1)]
        with m.Elif(wr_left != 0):
            m.d.sync += [wr_left.eq(wr_left - 1), wr_addr.eq(wr_addr + 1)]

        # Read bursts travel down a delay line of rd_latency cycles, then
        # stream out of the memory (one more cycle for its read port).
        lat = cfg.rd_latency
        line_v = [Signal(name=f"rdq_v{i}") for i in range(lat)]
        line_a = [Signal(burst_bits, name=f"rdq_a{i}") for i in range(lat)]
        m.d.sync += [line_v[0].eq(cas_valid & ~cas_write), line_a[0].eq(cas_burst)]
        for i in range(1, lat):
            m.d.sync += [line_v[i].eq(line_v[i - 1]), line_a[i].eq(line_a[i - 1])]
        rd_left = Signal(range(beats))
        rd_addr = Signal(burst_bits + beat_bits)
        start_rd = line_v[-1]
        reading = start_rd | (rd_left != 0)
        raddr = Mux(start_rd, Cat(Const(0, beat_bits), line_a[-1]), rd_addr)
        m.d.comb += [rp.addr.eq(raddr), rp.en.eq(1), self.dfi.rddata.eq(rp.data)]
        m.d.sync += self.dfi.rddata_valid.eq(reading)
        with m.If(start_rd):
            m.d.sync += [rd_left.eq(beats - 1), rd_addr.eq(raddr + 1)]
        with m.Elif(rd_left != 0):
            m.d.sync += [rd_left.eq(rd_left - 1), rd_addr.eq(rd_addr + 1)]
        return m
