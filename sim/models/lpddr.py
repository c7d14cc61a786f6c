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

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lpaccel.rtl.dram.config import Command, DfiSignature, LpddrConfig
from lpaccel.rtl.utils import or_reduce

__all__ = ["Rule", "LpddrTimingChecker", "LpddrModel"]

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
    controller cycle ``c`` happens at DRAM clock ``c * ratio + p``, and the
    slots of one cycle are checked in order (a command sees the state left by
    the earlier slots of its own cycle).

    Rules (:class:`Rule`): tRCD, tRP (tRPpb after PRE, tRPab after PREA, to
    ACT and REF), tRAS, tRC, tRRD and tFAW (REFpb counts as an ACT), tCCD,
    tWR (WRITE to PRE: WL + BL/2 + 1 + tWR), tWTR (WRITE to READ), tRTP,
    tRTW (READ to WRITE), tRFCab (nothing but NOP during an all-bank
    refresh), tRFCpb (no ACT/REF to the refreshing bank, no REFab), tpbR2pbR,
    tREFI (refresh debt, counted in REFpb units, must stay within
    ``refresh_postpone`` intervals either way), ACT to an open bank, READ or
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

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        t = cfg.timings
        nb = cfg.part.banks
        n = cfg.ratio
        refs = cfg.refs_per_refab
        ts = unsigned(_TS_BITS)

        now = Signal(ts, init=_EPOCH)
        m.d.sync += now.eq(now + n)

        # Registered state; "ready" entries hold the earliest legal time.
        def reg(name, shape=ts):
            return Signal(shape, name=name)
        state = {}
        for b in range(nb):
            state[f"open{b}"] = reg(f"open{b}", 1)
            for k in ("act_rp", "act_rc", "act_rfc", "pre_ras", "pre_rtp", "pre_wr", "cas_rcd"):
                state[f"{k}{b}"] = reg(f"{k}{b}")
        for k in ("act_rrd", "cas_ccd", "rd_wtr", "wr_rtw", "rfcab", "refpb_sp", "refab_pb"):
            state[k] = reg(k)
        ngroups = cfg.part.bank_groups
        grouped = ngroups > 1
        for g in range(ngroups if grouped else 0):
            state[f"cas_ccdl{g}"] = reg(f"cas_ccdl{g}")  # same-group CAS (tCCD_L)
            state[f"rd_wtrl{g}"] = reg(f"rd_wtrl{g}")    # same-group WRITE to READ
        pbr2act = t.tPBR2ACT > 0
        if pbr2act:
            state["act_pbr"] = reg("act_pbr")
        pair = cfg.part.refpb_banks == 2
        half = nb // 2
        for i in range(4):
            state[f"faw{i}"] = reg(f"faw{i}")  # faw0 is the oldest of the last four ACTs
        cur = dict(state)

        debt = Signal(signed(16))
        debt_max = Signal(signed(16))
        acc = Signal(range(t.tREFIpb + n + 1))
        tick = Signal()
        m.d.comb += tick.eq(acc + n >= t.tREFIpb)
        m.d.sync += acc.eq(Mux(tick, acc + n - t.tREFIpb, acc + n))

        viol_p, rule_p, bank_p = [], [], []
        pays = []
        counts = {k: [] for k in ("act", "rd", "wr", "refab", "refpb")}
        for p in range(n):
            slot = self.dfi.phases[p]
            tp = Signal(ts, name=f"t_p{p}")
            m.d.comb += tp.eq(now + p)
            cmd, ba = slot.cmd, slot.bank
            is_ = {c: Signal(name=f"is_{c.name.lower()}_p{p}") for c in Command}
            for c, s in is_.items():
                m.d.comb += s.eq(cmd == c)
            counts["act"].append(is_[Command.ACT])
            counts["rd"].append(is_[Command.RD])
            counts["wr"].append(is_[Command.WR])
            counts["refab"].append(is_[Command.REFAB])
            counts["refpb"].append(is_[Command.REFPB])

            def early(key):
                return tp < cur[key]  # noqa: B023 (called in this iteration)

            def per_bank(fn):
                # Value of fn(bank) for the addressed bank.
                out = Const(0, 1)
                for b in range(nb):
                    out = Mux(ba == b, fn(b), out)  # noqa: B023 (called in this iteration)
                return out
            def per_group(fn):
                # Value of fn(group) for the addressed bank's group.
                grp = ba[cfg.ba_bits:]  # noqa: B023 (called in this iteration)
                out = Const(0, 1)
                for g in range(ngroups):
                    out = Mux(grp == g, fn(g), out)
                return out

            def partner(fn):
                # Value of fn(bank) for the other bank of the REFpb pair.
                return per_bank(lambda b: fn(b ^ half))  # noqa: B023 (called here)
            open_b = per_bank(lambda b: cur[f"open{b}"])  # noqa: B023 (called here)
            faw_early = tp < cur["faw0"] + t.tFAW

            checks = []  # (condition, rule, bank) in priority order
            act, rd, wr = is_[Command.ACT], is_[Command.RD], is_[Command.WR]
            pre, prea = is_[Command.PRE], is_[Command.PREA]
            refab, refpb = is_[Command.REFAB], is_[Command.REFPB]
            pba = ba ^ half  # the REFpb pair's other bank
            checks += [
                (act & open_b, Rule.ACT_OPEN, ba),
                ((act | refpb | refab) & early("rfcab"), Rule.tRFCab, ba),
                ((act | refpb) & per_bank(lambda b: early(f"act_rp{b}")), Rule.tRP, ba),
            ]
            if pair:
                checks += [(refpb & partner(lambda b: early(f"act_rp{b}")), Rule.tRP, pba)]
            checks += [
                (act & per_bank(lambda b: early(f"act_rc{b}")), Rule.tRC, ba),
                ((act | refpb) & per_bank(lambda b: early(f"act_rfc{b}")), Rule.tRFCpb, ba),
            ]
            if pair:
                checks += [(refpb & partner(lambda b: early(f"act_rfc{b}")), Rule.tRFCpb, pba)]
            checks += [
                ((act | refpb) & early("act_rrd"), Rule.tRRD, ba),
            ]
            if pbr2act:
                checks += [(act & early("act_pbr"), Rule.tPBR2ACT, ba)]
            checks += [
                ((act | refpb) & faw_early, Rule.tFAW, ba),
                ((rd | wr) & ~open_b, Rule.CAS_CLOSED, ba),
                ((rd | wr) & per_bank(lambda b: early(f"cas_rcd{b}")), Rule.tRCD, ba),
                ((rd | wr) & early("cas_ccd"), Rule.tCCD, ba),
            ]
            if grouped:
                checks += [((rd | wr) & per_group(lambda g: early(f"cas_ccdl{g}")),
                            Rule.tCCD_L, ba)]
            checks += [
                (rd & early("rd_wtr"), Rule.tWTR, ba),
            ]
            if grouped:
                checks += [(rd & per_group(lambda g: early(f"rd_wtrl{g}")), Rule.tWTR_L, ba)]
            checks += [
                (wr & early("wr_rtw"), Rule.tRTW, ba),
                (refpb & open_b, Rule.REF_OPEN, ba),
            ]
            if pair:
                checks += [(refpb & partner(lambda b: cur[f"open{b}"]), Rule.REF_OPEN, pba)]
            checks += [
                (refpb & early("refpb_sp"), Rule.tPBR2PBR, ba),
                (refab & early("refab_pb"), Rule.tRFCpb, ba),
            ]
            # PRE checks the addressed bank, PREA every open bank, REFab every bank.
            for b in range(nb):
                hit_pre = (pre & (ba == b)) | prea
                opened = cur[f"open{b}"]
                checks += [
                    (hit_pre & opened & early(f"pre_ras{b}"), Rule.tRAS, b),
                    (hit_pre & opened & early(f"pre_rtp{b}"), Rule.tRTP, b),
                    (hit_pre & opened & early(f"pre_wr{b}"), Rule.tWR, b),
                    (refab & opened, Rule.REF_OPEN, b),
                    (refab & early(f"act_rp{b}"), Rule.tRP, b),
                ]
            v, r, bk = _first_hit(m, checks, p, self.bank)
            viol_p.append(v)
            rule_p.append(r)
            bank_p.append(bk)

            # State after this slot.
            nxt = {}
            for b in range(nb):
                sel = ba == b
                nxt[f"open{b}"] = Mux(act & sel, 1,
                                      Mux((pre & sel) | prea, 0, cur[f"open{b}"]))
                nxt[f"act_rp{b}"] = Mux(pre & sel, tp + t.tRPpb,
                                        Mux(prea, tp + t.tRPab, cur[f"act_rp{b}"]))
                nxt[f"act_rc{b}"] = Mux(act & sel, tp + t.tRC, cur[f"act_rc{b}"])
                ref_sel = (sel | (ba == (b ^ half))) if pair else sel
                nxt[f"act_rfc{b}"] = Mux(refpb & ref_sel, tp + t.tRFCpb, cur[f"act_rfc{b}"])
                nxt[f"pre_ras{b}"] = Mux(act & sel, tp + t.tRAS, cur[f"pre_ras{b}"])
                nxt[f"cas_rcd{b}"] = Mux(act & sel, tp + t.tRCD, cur[f"cas_rcd{b}"])
                nxt[f"pre_rtp{b}"] = Mux(rd & sel, tp + t.tRTP, cur[f"pre_rtp{b}"])
                nxt[f"pre_wr{b}"] = Mux(wr & sel, tp + t.wr_to_pre, cur[f"pre_wr{b}"])
            nxt["act_rrd"] = Mux(act | refpb, tp + t.tRRD, cur["act_rrd"])
            nxt["cas_ccd"] = Mux(rd | wr, tp + t.tCCD, cur["cas_ccd"])
            nxt["rd_wtr"] = Mux(wr, tp + t.wr_to_rd, cur["rd_wtr"])
            nxt["wr_rtw"] = Mux(rd, tp + t.rd_to_wr, cur["wr_rtw"])
            nxt["rfcab"] = Mux(refab, tp + t.tRFCab, cur["rfcab"])
            nxt["refpb_sp"] = Mux(refpb, tp + t.tPBR2PBR, cur["refpb_sp"])
            nxt["refab_pb"] = Mux(refpb, tp + t.tRFCpb, cur["refab_pb"])
            for g in range(ngroups if grouped else 0):
                in_g = ba[cfg.ba_bits:] == g
                nxt[f"cas_ccdl{g}"] = Mux((rd | wr) & in_g, tp + t.tCCD_L, cur[f"cas_ccdl{g}"])
                nxt[f"rd_wtrl{g}"] = Mux(wr & in_g, tp + t.wr_to_rd_L, cur[f"rd_wtrl{g}"])
            if pbr2act:
                nxt["act_pbr"] = Mux(refpb, tp + t.tPBR2ACT, cur["act_pbr"])
            for i in range(4):
                nxt[f"faw{i}"] = Mux(act | refpb, cur[f"faw{i + 1}"] if i < 3 else tp,
                                     cur[f"faw{i}"])
            for k, value in nxt.items():
                s = Signal.like(state[k], name=f"{k}_p{p}")
                m.d.comb += s.eq(value)
                cur[k] = s
            pays.append(Mux(refab, refs, Mux(refpb, 1, 0)))

        for k, reg_ in state.items():
            m.d.sync += reg_.eq(cur[k])

        # Refresh debt: +1 REFpb unit per tREFIpb, paid by REF commands.
        new_debt = Signal(signed(16))
        m.d.comb += new_debt.eq(debt + tick - sum(pays))
        m.d.sync += debt.eq(new_debt)
        with m.If(new_debt > debt_max):
            m.d.sync += debt_max.eq(new_debt)
        limit = cfg.timings.refresh_postpone * refs
        debt_bad = (new_debt > limit) | (new_debt < -limit)

        for key, sigs in counts.items():
            counter = getattr(self, f"n_{key}")
            m.d.sync += counter.eq(counter + sum(sigs))
        m.d.comb += [self.refresh_debt.eq(debt), self.refresh_debt_max.eq(debt_max)]

        wrdata_bad = self.wrdata_expected != self.dfi.wrdata_en

        def latch(p):
            m.d.sync += [self.violation.eq(1), self.rule.eq(rule_p[p]),
                         self.bank.eq(bank_p[p]), self.cycle.eq(now + p - _EPOCH)]

        # The first violation wins: the earliest command slot, then write data, then refresh.
        with m.If(~self.violation):
            with m.If(viol_p[0]):
                latch(0)
            for p in range(1, n):
                with m.Elif(viol_p[p]):
                    latch(p)
            with m.Elif(wrdata_bad):
                m.d.sync += [self.violation.eq(1), self.rule.eq(Rule.WRDATA),
                             self.bank.eq(0), self.cycle.eq(now - _EPOCH)]
            with m.Elif(debt_bad):
                m.d.sync += [self.violation.eq(1), self.rule.eq(Rule.tREFI),
                             self.bank.eq(0), self.cycle.eq(now - _EPOCH)]
        return m


class LpddrModel(wiring.Component):
    """An LPDDR channel for simulation: banks, rows, data and a timing checker.

    Parameters
    ----------
    config : LpddrConfig

    Ports
    -----
    dfi : In(DfiSignature(config))
        Commands and write data from the controller, read data back.
    violation, rule, bank, cycle, refresh_debt, refresh_debt_max, n_* : Out
        From the :class:`LpddrTimingChecker` inside.
    """

    def __init__(self, config):
        if not isinstance(config, LpddrConfig):
            raise TypeError(f"config must be an LpddrConfig, not {config!r}")
        self.config = config
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

        m.submodules.mem = mem = Memory(shape=unsigned(cfg.data_width), depth=depth, init=[])
        wp = mem.write_port(granularity=8)
        rp = mem.read_port()

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
