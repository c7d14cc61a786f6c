"""LpddrModel and LpddrTimingChecker in amaranth.sim, driven by raw commands.

Every rule has a negative test (the violating command one DRAM clock early,
or an illegal state) that must be caught with the right rule, bank and
cycle, and a positive twin at exactly the minimum spacing that must pass.
"""

import dataclasses

import pytest
from amaranth.sim import Simulator

from lpaccel.rtl.dram.config import Command, LpddrConfig
from lpaccel.rtl.dram.parts import LPDDR4_3200, Timing
from lpaccel.sim.models.lpddr import LpddrModel, Rule

ACT, RD, WR, PRE, PREA, REFAB, REFPB = (Command.ACT, Command.RD, Command.WR, Command.PRE,
                                        Command.PREA, Command.REFAB, Command.REFPB)


def run(config, commands, *, extra_cycles=20, wrdata=None, reads=None, strb=None):
    """Drive ``commands`` = [(dram_clock, cmd, bank, row, col)] into a model.

    Write data is supplied automatically for every WR unless ``wrdata`` maps
    a WR's index to False (omit it) or a list of beat values; ``strb`` maps a
    WR's index to the strobe of all its beats or a list of one per beat
    (default all ones). Returns the
    checker's (violation, rule, bank, cycle) and the read beats seen.
    """
    dut = LpddrModel(config, storage="amaranth")   # amaranth.sim cannot run Verilog
    n = config.ratio
    beats = config.beats_per_burst
    by_cycle = {}
    for i, (t, cmd, bank, row, col) in enumerate(commands):
        by_cycle.setdefault(t // n, []).append((t % n, i, cmd, bank, row, col))
    last = max([t for t, *_ in commands], default=0) // n + extra_cycles
    result = {}
    full = (1 << (config.data_width // 8)) - 1

    async def bench(ctx):
        wr_beats = []  # (cycle, value) planned write data
        got = []
        for c in range(last + 1):
            for p in range(n):
                ctx.set(dut.dfi.phases[p].cmd, Command.NOP)
            for p, i, cmd, bank, row, col in by_cycle.get(c, []):
                ctx.set(dut.dfi.phases[p].cmd, cmd)
                ctx.set(dut.dfi.phases[p].bank, bank)
                ctx.set(dut.dfi.phases[p].row, row)
                ctx.set(dut.dfi.phases[p].col, col)
                if cmd == WR:
                    plan = (wrdata or {}).get(i, [0x1000 * i + k for k in range(beats)])
                    if plan is not False:
                        s = (strb or {}).get(i, full)
                        s = s if isinstance(s, list) else [s] * len(plan)
                        wr_beats += [(c + k, v, s[k]) for k, v in enumerate(plan)]
            now = [(v, s) for cc, v, s in wr_beats if cc == c]
            ctx.set(dut.dfi.wrdata_en, bool(now))
            ctx.set(dut.dfi.wrdata, now[0][0] if now else 0)
            ctx.set(dut.dfi.wrdata_strb, now[0][1] if now else full)
            await ctx.tick()
            if ctx.get(dut.dfi.rddata_valid):
                got.append(ctx.get(dut.dfi.rddata))
        result.update(violation=ctx.get(dut.violation), rule=Rule(ctx.get(dut.rule)),
                      bank=ctx.get(dut.bank), cycle=ctx.get(dut.cycle), reads=got,
                      n_refpb=ctx.get(dut.n_refpb), n_refab=ctx.get(dut.n_refab),
                      debt_max=ctx.get(dut.refresh_debt_max))

    sim = Simulator(dut)
    sim.add_clock(1e-9)
    sim.add_testbench(bench)
    sim.run()
    return result


CFG1 = LpddrConfig(part="lpddr4-3200", ratio=1)
CFG4 = LpddrConfig(part="lpddr4-3200", ratio=4)
T = CFG1.timings


def gap(ck, first, second):
    """Start-to-start clocks for a spacing ``ck`` between two commands' last CA clocks.

    LPDDR4: ACT and RD/WR are 4 CA clocks, PRE/PREA/REF 2 (JESD209-4), so
    ACT to PRE is tRAS + 2 from start to start and PRE to ACT tRP - 2.
    """
    return ck + CFG1.ca_clocks(first) - CFG1.ca_clocks(second)


def _seq(rule, early):
    """A command sequence whose last command is ``early`` clocks too early for ``rule``.

    Returns (config, commands, bank of the violation).
    """
    d = 1 if early else 0
    cfg = CFG1
    if rule == Rule.tRCD:
        cmds = [(0, ACT, 2, 5, 0), (T.tRCD - d, RD, 2, 0, 0)]
        return cfg, cmds, 2
    if rule == Rule.tRP:
        p = gap(T.tRAS, ACT, PRE)
        cmds = [(0, ACT, 1, 5, 0), (p, PRE, 1, 0, 0),
                (p + gap(T.tRPpb, PRE, ACT) - d, ACT, 1, 6, 0)]
        return cfg, cmds, 1
    if rule == Rule.tRAS:
        return cfg, [(0, ACT, 3, 5, 0), (gap(T.tRAS, ACT, PRE) - d, PRE, 3, 0, 0)], 3
    if rule == Rule.tRC:
        part = dataclasses.replace(LPDDR4_3200, tRC=Timing(70))
        cfg = LpddrConfig(part=part, ratio=1)
        t = cfg.timings
        assert t.tRC > t.tRAS + t.tRPpb
        return cfg, [(0, ACT, 0, 5, 0), (gap(t.tRAS, ACT, PRE), PRE, 0, 0, 0),
                     (t.tRC - d, ACT, 0, 6, 0)], 0
    if rule == Rule.tRRD:
        return cfg, [(0, ACT, 0, 5, 0), (T.tRRD - d, ACT, 1, 5, 0)], 1
    if rule == Rule.tFAW:
        part = dataclasses.replace(LPDDR4_3200, tFAW=Timing(50))
        cfg = LpddrConfig(part=part, ratio=1)
        t = cfg.timings
        assert t.tFAW > 4 * t.tRRD
        cmds = [(i * t.tRRD, ACT, i, 5, 0) for i in range(4)] + [(t.tFAW - d, ACT, 4, 5, 0)]
        return cfg, cmds, 4
    if rule == Rule.tCCD:
        return cfg, [(0, ACT, 0, 5, 0), (T.tRRD, ACT, 1, 5, 0),
                     (T.tRRD + T.tRCD, RD, 0, 0, 0),
                     (T.tRRD + T.tRCD + T.tCCD - d, RD, 1, 0, 0)], 1
    if rule == Rule.tWR:
        return cfg, [(0, ACT, 4, 5, 0), (T.tRCD, WR, 4, 0, 0),
                     (T.tRCD + gap(T.wr_to_pre, WR, PRE) - d, PRE, 4, 0, 0)], 4
    if rule == Rule.tWTR:
        return cfg, [(0, ACT, 4, 5, 0), (T.tRCD, WR, 4, 0, 0),
                     (T.tRCD + T.wr_to_rd - d, RD, 4, 0, 1)], 4
    if rule == Rule.tRTP:
        return cfg, [(0, ACT, 5, 5, 0), (T.tRAS, RD, 5, 0, 0),
                     (T.tRAS + gap(T.tRTP, RD, PRE) - d, PRE, 5, 0, 0)], 5
    if rule == Rule.tRTW:
        return cfg, [(0, ACT, 6, 5, 0), (T.tRCD, RD, 6, 0, 0),
                     (T.tRCD + T.rd_to_wr - d, WR, 6, 0, 1)], 6
    if rule == Rule.tRFCab:
        return cfg, [(0, REFAB, 0, 0, 0), (gap(T.tRFCab, REFAB, ACT) - d, ACT, 7, 5, 0)], 7
    if rule == Rule.tRFCpb:
        return cfg, [(0, REFPB, 3, 0, 0), (gap(T.tRFCpb, REFPB, ACT) - d, ACT, 3, 5, 0)], 3
    if rule == Rule.tPBR2PBR:
        return cfg, [(0, REFPB, 3, 0, 0), (T.tPBR2PBR - d, REFPB, 4, 0, 0)], 4
    raise AssertionError(rule)


SPACING_RULES = [Rule.tRCD, Rule.tRP, Rule.tRAS, Rule.tRC, Rule.tRRD, Rule.tFAW, Rule.tCCD,
                 Rule.tWR, Rule.tWTR, Rule.tRTP, Rule.tRTW, Rule.tRFCab, Rule.tRFCpb,
                 Rule.tPBR2PBR]


@pytest.mark.parametrize("rule", SPACING_RULES, ids=lambda r: r.name)
def test_spacing_violation_caught(rule):
    cfg, cmds, bank = _seq(rule, early=True)
    r = run(cfg, cmds)
    assert r["violation"], f"{rule.name} one clock early was not caught"
    assert (r["rule"], r["bank"], r["cycle"]) == (rule, bank, cmds[-1][0])


@pytest.mark.parametrize("rule", SPACING_RULES, ids=lambda r: r.name)
def test_spacing_at_minimum_passes(rule):
    cfg, cmds, _ = _seq(rule, early=False)
    r = run(cfg, cmds)
    assert not r["violation"], f"legal {rule.name} sequence flagged as {r['rule'].name}"


@pytest.mark.parametrize("early", [True, False])
def test_phases_at_ratio_4(early):
    # ACT in phase 3, READ tRCD later lands in another phase: checked in DRAM clocks.
    t0 = 4 * 10 + 3
    cmds = [(t0, ACT, 0, 1, 0), (t0 + T.tRCD - early, RD, 0, 1, 0)]
    r = run(CFG4, cmds)
    assert r["violation"] == early
    if early:
        assert (r["rule"], r["cycle"]) == (Rule.tRCD, cmds[-1][0])


@pytest.mark.parametrize("case", ["act_open", "cas_closed", "refab_open", "refpb_open",
                                  "prea_twr"])
def test_state_rules(case):
    cmds, rule, bank = {
        "act_open": ([(0, ACT, 2, 1, 0), (200, ACT, 2, 3, 0)], Rule.ACT_OPEN, 2),
        "cas_closed": ([(0, ACT, 2, 1, 0), (100, WR, 3, 0, 0)], Rule.CAS_CLOSED, 3),
        "refab_open": ([(0, ACT, 6, 1, 0), (300, REFAB, 0, 0, 0)], Rule.REF_OPEN, 6),
        "refpb_open": ([(0, ACT, 5, 1, 0), (300, REFPB, 5, 0, 0)], Rule.REF_OPEN, 5),
        # PREA checks every open bank: bank 1 was written too recently.
        "prea_twr": ([(0, ACT, 0, 1, 0), (T.tRRD, ACT, 1, 1, 0), (T.tRRD + T.tRCD, WR, 1, 0, 0),
                      (T.tRRD + T.tRCD + gap(T.wr_to_pre, WR, PREA) - 1, PREA, 0, 0, 0)],
                     Rule.tWR, 1),
    }[case]
    r = run(CFG1, cmds)
    assert r["violation"] and (r["rule"], r["bank"], r["cycle"]) == (rule, bank, cmds[-1][0])


def test_refpb_to_other_bank_while_open_passes():
    # Per-bank refresh of a closed bank while another bank streams.
    r = gap(T.tRRD, ACT, REFPB)
    cmds = [(0, ACT, 0, 1, 0), (r, REFPB, 1, 0, 0), (T.tRCD, RD, 0, 0, 0),
            (T.tRCD + T.tCCD, RD, 0, 0, 1), (r + gap(T.tRFCpb, REFPB, ACT), ACT, 1, 4, 0)]
    assert not run(CFG1, cmds)["violation"]


def test_write_data_missing_and_unexpected():
    cmds = [(0, ACT, 0, 1, 0), (T.tRCD, WR, 0, 0, 0)]
    r = run(CFG1, cmds, wrdata={1: False})
    assert r["violation"] and (r["rule"], r["cycle"]) == (Rule.WRDATA, T.tRCD)
    # One beat short of a burst.
    r = run(CFG1, cmds, wrdata={1: list(range(CFG1.beats_per_burst - 1))})
    assert r["violation"] and r["rule"] == Rule.WRDATA
    # One beat too many.
    r = run(CFG1, cmds, wrdata={1: list(range(CFG1.beats_per_burst + 1))})
    assert r["violation"] and (r["rule"], r["cycle"]) == (Rule.WRDATA,
                                                          T.tRCD + CFG1.beats_per_burst)


def _short_refresh_config():
    # tREFI of 800 ns keeps the refresh tests short (tREFIpb = 160 clocks).
    part = dataclasses.replace(LPDDR4_3200, tREFI=Timing(800))
    return LpddrConfig(part=part, ratio=4)


def test_refresh_starvation_caught():
    cfg = _short_refresh_config()
    t = cfg.timings
    limit = t.refresh_postpone * cfg.refs_per_refab
    r = run(cfg, [], extra_cycles=(limit + 3) * t.tREFIpb // cfg.ratio)
    assert r["violation"] and r["rule"] == Rule.tREFI
    # The 65th owed REFpb interval ends at DRAM clock 65 * tREFIpb.
    assert abs(r["cycle"] - (limit + 1) * t.tREFIpb) <= cfg.ratio


def test_refresh_postponed_eight_then_paid_passes():
    cfg = _short_refresh_config()
    t = cfg.timings
    limit = t.refresh_postpone * cfg.refs_per_refab
    # Owe exactly 8 tREFI, then pay back with REFab at tRFCab spacing.
    cmds = [(limit * t.tREFIpb + 1 + k * t.tRFCab, REFAB, 0, 0, 0) for k in range(4)]
    r = run(cfg, cmds, extra_cycles=2 * t.tREFIpb // cfg.ratio)
    assert not r["violation"], r["rule"].name
    assert r["debt_max"] == limit and r["n_refab"] == 4


def test_refresh_pulled_in_too_far_caught():
    cfg = _short_refresh_config()
    t = cfg.timings
    # Back-to-back REFab pay 8 units each while fewer than 3 accrue.
    cmds = [(k * t.tRFCab + 4, REFAB, 0, 0, 0) for k in range(16)]
    r = run(cfg, cmds)
    assert r["violation"] and r["rule"] == Rule.tREFI


@pytest.mark.parametrize("ratio", [1, 4])
def test_data_written_then_read(ratio):
    cfg = LpddrConfig(part="lpddr4-3200", ratio=ratio)
    t = cfg.timings
    beats = cfg.beats_per_burst
    w = t.tRCD
    r0 = w + t.wr_to_rd + 8
    cmds = [(0, ACT, 3, 7, 0), (w, WR, 3, 0, 5), (w + t.tCCD, WR, 3, 0, 6),
            (r0, RD, 3, 0, 6), (r0 + t.tCCD, RD, 3, 0, 5)]
    data1 = [0xA000 + k for k in range(beats)]
    data2 = [0xB000 + k for k in range(beats)]
    r = run(cfg, cmds, wrdata={1: data1, 2: data2}, extra_cycles=60)
    assert not r["violation"], r["rule"].name
    assert r["reads"] == data2 + data1


# --- LPDDR5 bank-group mode ------------------------------------------------
# Banks are numbered group * 4 + bank-in-group: 0 and 1 share group 0, 4 is
# in group 1. One REFpb refreshes the pair b and b ^ 8.

CFG5 = LpddrConfig(part="lpddr5-6400", ratio=1)
T5 = CFG5.timings


def _seq5(case, early):
    """LPDDR5 sequence whose last command is ``early`` clocks too early.

    Returns (commands, rule, bank of the violation).
    """
    d = 1 if early else 0
    t0 = T5.tRRD + T5.tRCD  # both banks open
    if case == "tCCD_L":      # same group: BL/n_max
        return [(0, ACT, 0, 5, 0), (T5.tRRD, ACT, 1, 5, 0), (t0, RD, 0, 0, 0),
                (t0 + T5.tCCD_L - d, RD, 1, 0, 0)], Rule.tCCD_L, 1
    if case == "tCCD_S":      # other group: BL/n_min
        return [(0, ACT, 0, 5, 0), (T5.tRRD, ACT, 4, 5, 0), (t0, RD, 0, 0, 0),
                (t0 + T5.tCCD - d, RD, 4, 0, 0)], Rule.tCCD, 4
    if case == "tWTR_L":
        return [(0, ACT, 0, 5, 0), (T5.tRRD, ACT, 1, 5, 0), (t0, WR, 0, 0, 0),
                (t0 + T5.wr_to_rd_L - d, RD, 1, 0, 0)], Rule.tWTR_L, 1
    if case == "tWTR_S":
        return [(0, ACT, 0, 5, 0), (T5.tRRD, ACT, 4, 5, 0), (t0, WR, 0, 0, 0),
                (t0 + T5.wr_to_rd - d, RD, 4, 0, 0)], Rule.tWTR, 4
    if case == "tPBR2ACT":    # REFpb to ACT of another bank, longer than tRRD
        assert T5.tPBR2ACT - 1 >= T5.tRRD
        return [(0, REFPB, 3, 0, 0), (T5.tPBR2ACT - d, ACT, 5, 5, 0)], Rule.tPBR2ACT, 5
    if case == "tRFCpb_pair":  # REFpb 3 also refreshes bank 11
        return [(0, REFPB, 3, 0, 0), (T5.tRFCpb - d, ACT, 11, 5, 0)], Rule.tRFCpb, 11
    if case == "tRP_pair":     # ... so bank 11 must have finished its precharge
        return [(0, ACT, 11, 5, 0), (T5.tRAS, PRE, 11, 0, 0),
                (T5.tRAS + T5.tRPpb - d, REFPB, 3, 0, 0)], Rule.tRP, 11
    raise AssertionError(case)


LPDDR5_CASES = ["tCCD_L", "tCCD_S", "tWTR_L", "tWTR_S", "tPBR2ACT", "tRFCpb_pair", "tRP_pair"]


@pytest.mark.parametrize("case", LPDDR5_CASES)
def test_lpddr5_violation_caught(case):
    cmds, rule, bank = _seq5(case, early=True)
    r = run(CFG5, cmds)
    assert r["violation"], f"{case} one clock early was not caught"
    assert (r["rule"], r["bank"], r["cycle"]) == (rule, bank, cmds[-1][0])


@pytest.mark.parametrize("case", LPDDR5_CASES)
def test_lpddr5_at_minimum_passes(case):
    cmds, _, _ = _seq5(case, early=False)
    r = run(CFG5, cmds)
    assert not r["violation"], f"legal {case} sequence flagged as {r['rule'].name}"


def test_lpddr5_refpb_with_pair_bank_open_caught():
    cmds = [(0, ACT, 11, 1, 0), (300, REFPB, 3, 0, 0)]
    r = run(CFG5, cmds)
    assert r["violation"] and (r["rule"], r["bank"], r["cycle"]) == (Rule.REF_OPEN, 11, 300)
    # A bank outside the pair may stay open.
    assert not run(CFG5, [(0, ACT, 10, 1, 0), (300, REFPB, 3, 0, 0)])["violation"]


def test_lpddr5_group_rotation_at_tccd_s_passes():
    # Full-rate streaming: one READ every tCCD_S, rotating through the four
    # groups, so each group sees one every 4 * tCCD_S >= tCCD_L.
    banks = [0, 4, 8, 12]
    cmds = [(i * T5.tRRD, ACT, b, 2, 0) for i, b in enumerate(banks)]
    t0 = 3 * T5.tRRD + T5.tRCD
    cmds += [(t0 + k * T5.tCCD, RD, banks[k % 4], 0, k // 4) for k in range(16)]
    r = run(CFG5, cmds, extra_cycles=40)
    assert not r["violation"], r["rule"].name
    assert len(r["reads"]) == 16 * CFG5.beats_per_burst


@pytest.mark.parametrize("ratio", [1, 2])
def test_lpddr5_data_written_then_read(ratio):
    # Banks in two groups: the storage address includes the group bits.
    cfg = LpddrConfig(part="lpddr5-6400", ratio=ratio)
    t = cfg.timings
    beats = cfg.beats_per_burst
    w = t.tRRD + t.tRCD
    w = -(-w // ratio) * ratio + ratio - 1  # column slot of the controller cycle
    cmds = [(0, ACT, 1, 7, 0), (t.tRRD, ACT, 5, 7, 0), (w, WR, 1, 0, 5),
            (w + 4 * ratio, WR, 5, 0, 5)]
    r0 = w + 4 * ratio + t.wr_to_rd_L + 2 * ratio
    r0 = r0 - r0 % ratio + ratio - 1
    cmds += [(r0, RD, 5, 0, 5), (r0 + 4 * ratio, RD, 1, 0, 5)]
    data1 = [0xA000 + k for k in range(beats)]
    data2 = [0xB000 + k for k in range(beats)]
    r = run(cfg, cmds, wrdata={2: data1, 3: data2}, extra_cycles=60)
    assert not r["violation"], r["rule"].name
    assert r["reads"] == data2 + data1


# --- rules with more than one way in (issue 13) ----------------------------
# Each case commits its rule one DRAM clock early through a path the table
# above does not take (PREA, REF, writes, REFpb in the activate window) and
# must be caught with exactly that rule, bank and cycle; its twin at the
# exact minimum must pass.

def _faw50():
    part = dataclasses.replace(LPDDR4_3200, tFAW=Timing(50))
    cfg = LpddrConfig(part=part, ratio=1)
    assert cfg.timings.tFAW > 4 * cfg.timings.tRRD
    return cfg


def _path(case, early):
    """Returns (config, commands, rule, bank); the last command is ``early`` clocks early."""
    d = 1 if early else 0
    cfg = CFG1
    if case == "tRPab_act":        # PREA then ACT: tRPab, longer than tRPpb
        assert T.tRPab > T.tRPpb
        p = gap(T.tRAS, ACT, PREA)
        cmds = [(0, ACT, 1, 5, 0), (p, PREA, 0, 0, 0),
                (p + gap(T.tRPab, PREA, ACT) - d, ACT, 1, 6, 0)]
        return cfg, cmds, Rule.tRP, 1
    if case == "tRPab_refab":      # PREA then REFab: PREA precharged every bank, 0 first
        p = gap(T.tRAS, ACT, PREA)
        cmds = [(0, ACT, 1, 5, 0), (p, PREA, 0, 0, 0), (p + T.tRPab - d, REFAB, 0, 0, 0)]
        return cfg, cmds, Rule.tRP, 0
    if case == "tRP_refab":        # PRE then REFab: every bank's precharge checked
        p = gap(T.tRAS, ACT, PRE)
        cmds = [(0, ACT, 2, 5, 0), (p, PRE, 2, 0, 0), (p + T.tRPpb - d, REFAB, 0, 0, 0)]
        return cfg, cmds, Rule.tRP, 2
    if case == "tRP_refpb":        # PRE then REFpb of that bank
        p = gap(T.tRAS, ACT, PRE)
        cmds = [(0, ACT, 3, 5, 0), (p, PRE, 3, 0, 0), (p + T.tRPpb - d, REFPB, 3, 0, 0)]
        return cfg, cmds, Rule.tRP, 3
    if case == "tRAS_prea":
        return cfg, [(0, ACT, 3, 5, 0), (gap(T.tRAS, ACT, PREA) - d, PREA, 0, 0, 0)], Rule.tRAS, 3
    if case == "tRTP_prea":
        cmds = [(0, ACT, 5, 5, 0), (T.tRAS, RD, 5, 0, 0),
                (T.tRAS + gap(T.tRTP, RD, PREA) - d, PREA, 0, 0, 0)]
        return cfg, cmds, Rule.tRTP, 5
    if case == "tRCD_wr":
        return cfg, [(0, ACT, 2, 5, 0), (T.tRCD - d, WR, 2, 0, 0)], Rule.tRCD, 2
    if case == "tCCD_wr":
        t0 = T.tRRD + T.tRCD
        return cfg, [(0, ACT, 0, 5, 0), (T.tRRD, ACT, 1, 5, 0), (t0, WR, 0, 0, 0),
                     (t0 + T.tCCD - d, WR, 1, 0, 0)], Rule.tCCD, 1
    if case == "tRRD_refpb_act":   # REFpb counts as an activation for tRRD
        return cfg, [(0, REFPB, 0, 0, 0), (gap(T.tRRD, REFPB, ACT) - d, ACT, 1, 5, 0)], Rule.tRRD, 1
    if case == "tRRD_act_refpb":
        return cfg, [(0, ACT, 0, 5, 0), (gap(T.tRRD, ACT, REFPB) - d, REFPB, 1, 0, 0)], \
            Rule.tRRD, 1
    if case == "tFAW_refpb_first":  # a REFpb is the oldest of the four
        cfg = _faw50()
        t = cfg.timings
        cmds = [(0, REFPB, 4, 0, 0)] + [(i * t.tRRD, ACT, i - 1, 5, 0) for i in range(1, 4)]
        return cfg, cmds + [(gap(t.tFAW, REFPB, ACT) - d, ACT, 3, 5, 0)], Rule.tFAW, 3
    if case == "tFAW_refpb_fifth":  # ... or the fifth
        cfg = _faw50()
        t = cfg.timings
        cmds = [(i * t.tRRD, ACT, i, 5, 0) for i in range(4)]
        return cfg, cmds + [(gap(t.tFAW, ACT, REFPB) - d, REFPB, 4, 0, 0)], Rule.tFAW, 4
    if case == "tRFCab_refab":     # nothing but NOP during tRFCab, REF included
        return cfg, [(0, REFAB, 0, 0, 0), (T.tRFCab - d, REFAB, 0, 0, 0)], Rule.tRFCab, 0
    if case == "tRFCab_refpb":
        return cfg, [(0, REFAB, 0, 0, 0), (T.tRFCab - d, REFPB, 6, 0, 0)], Rule.tRFCab, 6
    if case == "tRFCpb_refab":     # REFab waits for a running REFpb (reports REFab's bank field)
        return cfg, [(0, REFPB, 3, 0, 0), (T.tRFCpb - d, REFAB, 0, 0, 0)], Rule.tRFCpb, 0
    raise AssertionError(case)


PATH_CASES = ["tRPab_act", "tRPab_refab", "tRP_refab", "tRP_refpb", "tRAS_prea", "tRTP_prea",
              "tRCD_wr", "tCCD_wr", "tRRD_refpb_act", "tRRD_act_refpb", "tFAW_refpb_first",
              "tFAW_refpb_fifth", "tRFCab_refab", "tRFCab_refpb", "tRFCpb_refab"]


@pytest.mark.parametrize("case", PATH_CASES)
def test_rule_path_violation_caught(case):
    cfg, cmds, rule, bank = _path(case, early=True)
    r = run(cfg, cmds)
    assert r["violation"], f"{case} one clock early was not caught"
    assert (r["rule"], r["bank"], r["cycle"]) == (rule, bank, cmds[-1][0])


@pytest.mark.parametrize("case", PATH_CASES)
def test_rule_path_at_minimum_passes(case):
    cfg, cmds, _, _ = _path(case, early=False)
    r = run(cfg, cmds)
    assert not r["violation"], f"legal {case} sequence flagged as {r['rule'].name}"


@pytest.mark.parametrize("first", [RD, WR])
def test_tccd_between_read_and_write(first):
    # Mixed CAS pairs: one clock inside tCCD is a tCCD violation (it has
    # priority); at exactly tCCD the turnaround (tRTW / tWTR) is what is left.
    second = WR if first == RD else RD
    t0 = T.tRRD + T.tRCD
    base = [(0, ACT, 0, 5, 0), (T.tRRD, ACT, 1, 5, 0), (t0, first, 0, 0, 0)]
    for d, rule in ((1, Rule.tCCD), (0, Rule.tRTW if first == RD else Rule.tWTR)):
        cmds = base + [(t0 + T.tCCD - d, second, 1, 0, 0)]
        r = run(CFG1, cmds)
        assert r["violation"] and (r["rule"], r["bank"], r["cycle"]) == (rule, 1, cmds[-1][0])


@pytest.mark.parametrize("early", [True, False])
def test_two_commands_in_one_controller_cycle(early):
    # Slot 2 sees the state slot 0 of the same controller cycle left: a PRE
    # in each (the 2-clock PREs do not overlap on the CA bus) is a tPPD
    # violation at slot 2; the same two PREs tPPD apart (slot 0 of the next
    # cycle) pass.
    t0 = 4 * 40
    cmds = [(0, ACT, 0, 1, 0), (T.tRRD, ACT, 1, 1, 0), (t0, PRE, 0, 0, 0),
            (t0 + (2 if early else T.tPPD), PRE, 1, 0, 0)]
    r = run(CFG4, cmds)
    assert r["violation"] == early
    if early:
        assert (r["rule"], r["bank"], r["cycle"]) == (Rule.tPPD, 1, t0 + 2)


def test_same_cycle_earliest_slot_wins():
    # Violations in slots 2 (tPPD, bank 1) and 3 (an ACT over the PRE's
    # second CA clock) of one controller cycle: the slot-2 one is reported.
    t0 = 4 * 40
    cmds = [(0, ACT, 0, 1, 0), (T.tRRD, ACT, 1, 1, 0), (t0, PRE, 0, 0, 0),
            (t0 + 2, PRE, 1, 0, 0), (t0 + 3, ACT, 2, 2, 0)]
    r = run(CFG4, cmds)
    assert r["violation"] and (r["rule"], r["bank"], r["cycle"]) == (Rule.tPPD, 1, t0 + 2)


# --- the CA bus: multi-clock commands (issue 13) ------------------------------
# LPDDR4 (JESD209-4): ACT and RD/WR occupy the CA bus 4 clocks, PRE/PREA/REF
# 2. A command starting one clock before the previous one's CA clocks end is
# a CA violation at its start, with its bank; at exactly the CA length it
# passes (every other rule is met by construction). The first command starts
# in the last slot of its controller cycle, so at 1:2 and 1:4 its CA clocks
# run into the next cycle.

def _ca(case, ratio, early):
    """Returns (config, commands, bank of the violation)."""
    cfg = LpddrConfig(part="lpddr4-3200", ratio=ratio)
    t0 = 4 * 20 + ratio - 1             # past tRAS + 2 of the first ACT
    assert t0 >= gap(T.tRAS, ACT, PRE)
    d = 1 if early else 0
    ca = cfg.ca_clocks
    opened = [(0, ACT, 0, 5, 0)]        # bank 0 open (and tRAS/tRCD long past)
    if case == "act_rd":
        return cfg, opened + [(t0, ACT, 1, 5, 0), (t0 + ca(ACT) - d, RD, 0, 0, 0)], 0
    if case == "rd_act":
        return cfg, opened + [(t0, RD, 0, 0, 0), (t0 + ca(RD) - d, ACT, 1, 5, 0)], 1
    if case == "wr_pre":                # PRE to a closed bank: only the CA bus
        return cfg, opened + [(t0, WR, 0, 0, 0), (t0 + ca(WR) - d, PRE, 3, 0, 0)], 3
    if case == "pre_act":
        return cfg, opened + [(t0, PRE, 0, 0, 0), (t0 + ca(PRE) - d, ACT, 1, 5, 0)], 1
    if case == "refpb_rd":
        return cfg, opened + [(t0, REFPB, 2, 0, 0), (t0 + ca(REFPB) - d, RD, 0, 0, 0)], 0
    raise AssertionError(case)


CA_CASES = [(case, 4) for case in ("act_rd", "rd_act", "wr_pre", "pre_act", "refpb_rd")] + \
    [(case, ratio) for ratio in (1, 2) for case in ("act_rd", "rd_act", "pre_act")]


def _ca_params(fast):
    # About 1 s (1:1) to 2 s (1:4) of pysim each: the ones in ``fast`` run in
    # the default suite, the rest in the slow one.
    return [pytest.param(c, r, id=f"{c}-1:{r}",
                         marks=() if (c, r) in fast else pytest.mark.slow)
            for c, r in CA_CASES]


@pytest.mark.parametrize("case,ratio", _ca_params({("act_rd", 1), ("rd_act", 2),
                                                    ("act_rd", 4)}))
def test_ca_overlap_caught(case, ratio):
    cfg, cmds, bank = _ca(case, ratio, early=True)
    r = run(cfg, cmds, extra_cycles=2)
    assert r["violation"], f"{case} one CA clock early was not caught"
    assert (r["rule"], r["bank"], r["cycle"]) == (Rule.CA, bank, cmds[-1][0])


@pytest.mark.parametrize("case,ratio", _ca_params({("act_rd", 1), ("act_rd", 4)}))
def test_ca_at_its_length_passes(case, ratio):
    cfg, cmds, _ = _ca(case, ratio, early=False)
    r = run(cfg, cmds, extra_cycles=2)
    assert not r["violation"], f"legal {case} sequence flagged as {r['rule'].name}"


@pytest.mark.slow      # 2 s
def test_ca_reported_before_trfcab():
    # REF then anything: during tRFCab every command is illegal, and one on
    # the REFab's own CA clocks is reported as CA (checked first).
    r = run(CFG1, [(0, REFAB, 0, 0, 0), (1, ACT, 1, 5, 0)])
    assert r["violation"] and (r["rule"], r["bank"], r["cycle"]) == (Rule.CA, 1, 1)
    r = run(CFG1, [(0, REFAB, 0, 0, 0), (2, ACT, 1, 5, 0)])
    assert r["violation"] and (r["rule"], r["bank"], r["cycle"]) == (Rule.tRFCab, 1, 2)


def test_timings_count_from_the_last_ca_clock():
    # tRAS counts from ACT's last CA clock (start + 3) to PRE's (start + 1):
    # a PRE starting tRAS after the ACT starts is 2 clocks early.
    r = run(CFG1, [(0, ACT, 3, 5, 0), (T.tRAS, PRE, 3, 0, 0)])
    assert r["violation"] and (r["rule"], r["bank"], r["cycle"]) == (Rule.tRAS, 3, T.tRAS)
    assert not run(CFG1, [(0, ACT, 3, 5, 0), (T.tRAS + 2, PRE, 3, 0, 0)])["violation"]


def test_first_violation_stays_latched():
    # A tRCD violation, then much later an ACT to an open bank, a WRITE to a
    # closed bank and starved refresh: rule, bank and cycle keep the first.
    cmds = [(0, ACT, 2, 5, 0), (T.tRCD - 1, RD, 2, 0, 0), (300, ACT, 2, 6, 0),
            (400, WR, 5, 0, 0)]
    r = run(CFG1, cmds, wrdata={3: False})
    assert r["violation"] and (r["rule"], r["bank"], r["cycle"]) == (Rule.tRCD, 2, T.tRCD - 1)


# --- rules added by issue 13 -----------------------------------------------

def _new_rule(case, early):
    """Returns (config, commands, rule, bank, strb); the last command is ``early`` clocks early."""
    d = 1 if early else 0
    cfg = CFG1
    if case == "tRFCab_pre":       # only NOP during tRFCab: a PRE is flagged too
        return cfg, [(0, REFAB, 0, 0, 0), (T.tRFCab - d, PRE, 3, 0, 0)], Rule.tRFCab, 3, None
    if case == "tRFCab_prea":
        return cfg, [(0, REFAB, 0, 0, 0), (T.tRFCab - d, PREA, 0, 0, 0)], Rule.tRFCab, 0, None
    if case == "tRFCpb_pre":       # ... and to the refreshing bank during tRFCpb
        return cfg, [(0, REFPB, 3, 0, 0), (T.tRFCpb - d, PRE, 3, 0, 0)], Rule.tRFCpb, 3, None
    if case == "tPPD_pre":         # PRE to PRE, different banks
        t0 = T.tRRD + gap(T.tRAS, ACT, PRE)
        return cfg, [(0, ACT, 0, 5, 0), (T.tRRD, ACT, 1, 5, 0), (t0, PRE, 1, 0, 0),
                     (t0 + T.tPPD - d, PRE, 0, 0, 0)], Rule.tPPD, 0, None
    if case == "tPPD_prea":        # PRE to PREA
        t0 = T.tRRD + gap(T.tRAS, ACT, PRE)
        return cfg, [(0, ACT, 0, 5, 0), (T.tRRD, ACT, 1, 5, 0), (t0, PRE, 1, 0, 0),
                     (t0 + T.tPPD - d, PREA, 2, 0, 0)], Rule.tPPD, 2, None
    if case in ("tCCDMW", "tCCDMW_mw"):   # WRITE (or MASK-WRITE), then MASK-WRITE, same bank
        w = T.tRCD
        first = {} if case == "tCCDMW" else {1: 0b0111}
        return cfg, [(0, ACT, 4, 5, 0), (w, WR, 4, 0, 0), (w + T.tCCDMW - d, WR, 4, 0, 1)], \
            Rule.tCCDMW, 4, {**first, 2: 0b1110}
    raise AssertionError(case)


NEW_RULE_CASES = ["tRFCab_pre", "tRFCab_prea", "tRFCpb_pre", "tPPD_pre", "tPPD_prea", "tCCDMW",
                  "tCCDMW_mw"]


@pytest.mark.parametrize("case", NEW_RULE_CASES)
def test_new_rule_violation_caught(case):
    cfg, cmds, rule, bank, strb = _new_rule(case, early=True)
    r = run(cfg, cmds, strb=strb)
    assert r["violation"], f"{case} one clock early was not caught"
    assert (r["rule"], r["bank"], r["cycle"]) == (rule, bank, cmds[-1][0])


@pytest.mark.parametrize("case", NEW_RULE_CASES)
def test_new_rule_at_minimum_passes(case):
    cfg, cmds, _, _, strb = _new_rule(case, early=False)
    r = run(cfg, cmds, strb=strb)
    assert not r["violation"], f"legal {case} sequence flagged as {r['rule'].name}"


def test_trfcab_read_reported_before_closed_bank():
    # A READ during tRFCab is a tRFCab violation first (the bank is also closed).
    rd = gap(T.tRFCab, REFAB, RD) - 1
    r = run(CFG1, [(0, REFAB, 0, 0, 0), (rd, RD, 2, 0, 0)])
    assert r["violation"] and (r["rule"], r["bank"], r["cycle"]) == (Rule.tRFCab, 2, rd)


def test_unmasked_writes_and_other_banks_need_no_tccdmw():
    # Full-strobe WRITEs at tCCD to one bank, and a masked one to another
    # bank tCCD later: no MASK-WRITE to the same bank within tCCDMW.
    t0 = T.tRRD + T.tRCD
    cmds = [(0, ACT, 0, 5, 0), (T.tRRD, ACT, 1, 5, 0), (t0, WR, 0, 0, 0),
            (t0 + T.tCCD, WR, 0, 0, 1), (t0 + 2 * T.tCCD, WR, 1, 0, 0)]
    assert not run(CFG1, cmds, strb={4: 0b0001})["violation"]


@pytest.mark.parametrize("early", [True, False])
def test_masked_write_whose_clear_strobe_is_the_last_beat(early):
    # Only the last beat of the burst is partial: still a MASK-WRITE,
    # judged at its WRITE's clock once that beat is seen.
    beats = CFG1.beats_per_burst
    full = (1 << (CFG1.data_width // 8)) - 1
    w = T.tRCD
    cmds = [(0, ACT, 4, 5, 0), (w, WR, 4, 0, 0), (w + T.tCCDMW - early, WR, 4, 0, 1)]
    r = run(CFG1, cmds, strb={2: [full] * (beats - 1) + [0b0111]})
    assert r["violation"] == early
    if early:
        assert (r["rule"], r["bank"], r["cycle"]) == (Rule.tCCDMW, 4, cmds[-1][0])


def _tras_max_config():
    part = dataclasses.replace(LPDDR4_3200, tREFI=Timing(800))
    return LpddrConfig(part=part, ratio=4)


@pytest.mark.slow      # ~10 tREFI of pysim: 40 to 60 s each
@pytest.mark.parametrize("early", [True, False])
def test_tras_max(early):
    # Bank 2 is refreshed 8 times ahead (pulled in, its own debt -8), then
    # kept open while the other seven banks are refreshed at the nominal
    # rate: the only rule left is tRAS(max) = 9 x tREFI.
    cfg = _tras_max_config()
    t = cfg.timings
    cmds = [(k * t.tRFCpb, REFPB, 2, 0, 0) for k in range(8)]
    t_act = 8 * t.tRFCpb
    cmds.append((t_act, ACT, 2, 5, 0))
    # Counted like tRAS, from ACT's last CA clock to PRE's (start to start + 2).
    t_pre = t_act + gap(9 * t.tREFI, ACT, PRE) + (1 if early else 0)
    others = [b for b in range(8) if b != 2]
    k, tr = 0, t_act + gap(t.tRRD, ACT, REFPB)
    while tr < t_pre + 40:
        cmds.append((tr, REFPB, others[k % 7], 0, 0))
        k, tr = k + 1, tr + t.tREFIpb
    cmds.append((t_pre, PRE, 2, 0, 0))
    cmds.sort(key=lambda c: c[0])
    r = run(cfg, cmds, extra_cycles=12)
    if early:
        assert r["violation"] and (r["rule"], r["bank"], r["cycle"]) == \
            (Rule.tRASmax, 2, t_pre)
    else:
        assert not r["violation"], r["rule"].name


@pytest.mark.slow      # ~10 tREFI of pysim: 40 to 60 s each
@pytest.mark.parametrize("late", [True, False])
def test_per_bank_refresh_coverage(late):
    # REFpb at the nominal rate, round robin, but bank 5 is skipped: enough
    # REFpb overall (the global debt stays ~0), yet bank 5 owes one more
    # refresh every tREFI. Its 9th owed one is a REF_BANK violation; a REFpb
    # to bank 5 just before it keeps the run legal.
    cfg = _tras_max_config()
    t = cfg.timings
    post = t.refresh_postpone
    others = [b for b in range(8) if b != 5]
    end = (post + 1) * t.tREFI + 8 * cfg.ratio
    cmds, k, tr = [], 0, 0
    rescue = ((post + 1) * t.tREFI // t.tREFIpb - 2) * t.tREFIpb
    while tr < end:
        bank = 5 if (not late and tr == rescue) else others[k % 7]
        cmds.append((tr, REFPB, bank, 0, 0))
        k, tr = k + (bank != 5), tr + t.tREFIpb
    r = run(cfg, cmds, extra_cycles=4)
    if late:
        assert r["violation"] and (r["rule"], r["bank"]) == (Rule.REF_BANK, 5)
        assert abs(r["cycle"] - (post + 1) * t.tREFI) <= cfg.ratio
    else:
        assert not r["violation"], r["rule"].name
    assert r["debt_max"] <= 2     # the global debt never noticed


def test_refresh_pointer_stuck_on_one_bank_caught():
    # Every REFpb to bank 0 (tRFCpb apart): bank 0 is refreshed far ahead of
    # its share (its own debt drops below -refresh_postpone) at the 9th
    # REFpb after its first owed tick.
    cfg = _tras_max_config()
    t = cfg.timings
    cmds = [(k * t.tRFCpb, REFPB, 0, 0, 0) for k in range(16)]
    r = run(cfg, cmds)
    assert r["violation"] and (r["rule"], r["bank"]) == (Rule.REF_BANK, 0)
    # The first REFpb after which bank 0 is more than refresh_postpone
    # refreshes ahead of the ticks it has owed (one per tREFI).
    post = t.refresh_postpone
    first = next(c for k, (c, *_) in enumerate(cmds)
                 if (k + 1) - (c + cfg.ratio) // t.tREFI > post)
    assert r["cycle"] == first
