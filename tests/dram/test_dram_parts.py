"""DRAM part tables and the conversion to clock cycles."""

import dataclasses
import math

import pytest

from lpaccel.rtl.dram.config import LpddrConfig
from lpaccel.rtl.dram.parts import (
    LPDDR4_3200,
    LPDDR5_6400,
    PARTS,
    Timing,
    controller_cycles,
    part_by_name,
)


def test_timing_ceil_and_minimum_clocks():
    assert Timing(18, 4).cycles(0.625) == 29        # 28.8 rounds up
    assert Timing(20).cycles(1.25) == 16             # exact multiple stays
    assert Timing(7.5, 8).cycles(0.625) == 12
    assert Timing(7.5, 8).cycles(1.25) == 8          # the nCK floor wins


def test_lpddr4_3200_in_clocks():
    t = LPDDR4_3200.at_clock()
    assert (t.tRCD, t.tRPpb, t.tRPab, t.tRAS, t.tRC) == (29, 29, 34, 68, 97)
    assert (t.tRFCab, t.tRFCpb, t.tREFI, t.tREFIpb) == (448, 224, 6246, 780)
    assert LPDDR4_3200.bytes_per_burst == 32 and LPDDR4_3200.burst_ck == 8
    # All-bank refresh costs tRFCab / tREFI of the time: about 7 % on 8 Gb.
    assert 0.07 < t.tRFCab / t.tREFI < 0.075


def test_slower_clock_and_too_fast_clock():
    assert LPDDR4_3200.at_clock(1.25).tRCD == 15
    with pytest.raises(ValueError, match="shorter than the part's minimum 0.625 ns"):
        LPDDR4_3200.at_clock(0.5)


@pytest.mark.parametrize("ck,ratio,src,dst,expected", [
    (29, 1, 0, 0, 29), (29, 4, 0, 0, 8), (32, 4, 0, 0, 8), (29, 4, 0, 3, 7),
    (29, 4, 3, 0, 8), (8, 4, 3, 3, 2), (0, 4, 3, 0, 1), (0, 4, 0, 3, 0)])
def test_controller_cycles(ck, ratio, src, dst, expected):
    k = controller_cycles(ck, ratio, src, dst)
    assert k == expected
    assert k * ratio + dst - src >= ck                      # legal
    assert k == 0 or (k - 1) * ratio + dst - src < ck        # and the least such


def test_controller_cycles_validation():
    with pytest.raises(ValueError, match="ratio must be a positive integer"):
        controller_cycles(3, 0)
    with pytest.raises(ValueError, match="to_phase must be from 0 to 3"):
        controller_cycles(3, 4, 0, 4)


def test_every_part_is_consistent():
    for part in PARTS.values():
        t = part.at_clock()
        assert t.tRC >= t.tRAS + t.tRPpb
        assert part.bytes_per_burst == part.data_width * part.burst_length // 8


def test_part_validation_messages():
    with pytest.raises(ValueError, match="is 8192 Mbit, not the stated 4096 Mbit"):
        dataclasses.replace(LPDDR4_3200, density_mbit=4096)
    with pytest.raises(ValueError, match="banks must be a power of two, not 6"):
        dataclasses.replace(LPDDR4_3200, banks=6)
    with pytest.raises(ValueError, match=r"memory part 'ddr9' is not known \(known: "):
        part_by_name("ddr9")


def test_config_data_width_and_validation():
    assert LpddrConfig(ratio=1).data_width == 32
    assert LpddrConfig(ratio=4).data_width == 128
    assert LpddrConfig(part="lpddr5-6400", ratio=1).data_width == 128
    with pytest.raises(ValueError, match="board SDR/DDR3 parts are served by LiteDRAM"):
        LpddrConfig(part="is42s16160")
    assert LpddrConfig(part="lpddr5-6400", ratio=2).data_width == 256
    with pytest.raises(ValueError, match="ratio 1:4 must divide the burst.s 2 CK"):
        LpddrConfig(part="lpddr5-6400", ratio=4)
    with pytest.raises(ValueError, match="sim_bytes must be a power of two"):
        LpddrConfig(sim_bytes=1000)


def test_lpddr5_6400_bank_group_mode_in_clocks():
    # 8 Gb x16 die in BG mode at CK 800 MHz (WCK:CK 4:1): 4 groups x 4 banks,
    # BL16 = 32 bytes in 2 CK. Values as derived in parts.py's source notes.
    p = LPDDR5_6400
    assert (p.bank_groups, p.banks_per_group, p.page_bytes) == (4, 4, 2048)
    assert (p.bytes_per_burst, p.burst_ck, p.peak_bytes_per_ck) == (32, 2, 16)
    t = p.at_clock()
    assert (t.tRCD, t.tRPpb, t.tRPab, t.tRAS, t.tRC) == (15, 15, 17, 34, 49)
    assert (t.tRRD, t.tFAW, t.tWR, t.tRTP, t.RL, t.WL) == (4, 16, 28, 6, 17, 9)
    assert (t.tCCD, t.tCCD_L) == (2, 4)                 # tCCD_S, tCCD_L
    assert (t.tWTR, t.tWTR_L) == (5, 10)                # tWTR_S 6.25 ns, tWTR_L 12 ns
    # WRITE to READ: WL + BL/n + 1 + tWTR, BL/n_min = 2 across groups,
    # BL/n_max = 4 within one; READ to WRITE with BL/n_max.
    assert (t.wr_to_rd, t.wr_to_rd_L, t.rd_to_wr) == (17, 24, 15)
    assert t.wr_to_pre == 9 + 2 + 1 + 28
    # One REFpb refreshes a bank pair: 8 per tREFI, tREFIpb = 488 ns.
    assert (p.refpb_banks, p.refpb_per_refab) == (2, 8)
    assert (t.tREFI, t.tREFIpb) == (3124, 390)
    assert (t.tRFCab, t.tRFCpb, t.tPBR2PBR, t.tPBR2ACT) == (168, 96, 72, 6)


def test_parts_without_bank_groups_keep_one_spacing():
    t = LPDDR4_3200.at_clock()
    assert (t.bank_groups, t.tCCD_L, t.tWTR_L, t.wr_to_rd_L, t.tPBR2ACT, t.refpb_banks) == \
        (1, t.tCCD, t.tWTR, t.wr_to_rd, 0, 1)


def test_bank_group_validation_messages():
    with pytest.raises(ValueError, match="tCCD_L must be given exactly when the part has bank"):
        dataclasses.replace(LPDDR4_3200, tCCD_L=Timing(0, 8))
    with pytest.raises(ValueError, match="tCCD_L must be given exactly when the part has bank"):
        dataclasses.replace(LPDDR5_6400, tCCD_L=None)
    with pytest.raises(ValueError, match="bank_groups must be a power of two dividing banks"):
        dataclasses.replace(LPDDR5_6400, bank_groups=3)
    with pytest.raises(ValueError, match=r"refpb_per_refab must be 0 or banks / refpb_banks \(8\)"):
        dataclasses.replace(LPDDR5_6400, refpb_per_refab=16)


def test_idle_precharge_defaults_and_validation():
    # Idle banks are closed by default where the look-ahead window cannot
    # hide a row change, and on the bank-group part; otherwise pure open page.
    assert LpddrConfig(part="lpddr5-6400", ratio=2).idle_precharge == 32
    assert LpddrConfig(part="lpddr4-3200").idle_precharge == 0
    assert LpddrConfig(part="lpddr4x-4266").idle_precharge == 0
    assert LpddrConfig(part="lpddr5-6400", ratio=2, idle_precharge=0).idle_precharge == 0
    assert LpddrConfig(part="lpddr4x-4266", window=8, idle_precharge=0).idle_precharge == 0
    with pytest.raises(ValueError, match="idle_precharge must be an integer from 0 to 1024"):
        LpddrConfig(idle_precharge=-1)


@pytest.mark.parametrize("part, window, hides", [
    # Controller cycles at 1:4, computed here: a burst is tCCD = 8 CK = 2
    # cycles, so the window sees (window - 1) * 2 cycles ahead. The chain is
    # 1 (the request is visible the cycle after it enters) + PRE -> ACT
    # (tRPpb - 2 CK: PRE is 2 CA clocks, ACT 4) + ACT -> READ (tRCD, both 4).
    # LPDDR4-3200: tRPpb = tRCD = 18 ns = 29 nCK -> 1 + ceil(27/4) + ceil(29/4) = 16.
    # LPDDR4X-4266 (tCK 0.468 ns): 39 nCK -> 1 + ceil(37/4) + ceil(39/4) = 21.
    ("lpddr4-3200", 8, False),    # 16 > 14
    ("lpddr4-3200", 9, True),     # 16 <= 16
    ("lpddr4-3200", 16, True),    # 16 <= 30
    ("lpddr4x-4266", 8, False),   # 21 > 14
    ("lpddr4x-4266", 11, False),  # 21 > 20
    ("lpddr4x-4266", 12, True),   # 21 <= 22
    ("lpddr4x-4266", 16, True),   # 21 <= 30
])
def test_window_hides_row_change_sets_idle_precharge(part, window, hides):
    cfg = LpddrConfig(part=part, ratio=4, window=window)
    assert cfg.window_hides_row_change is hides
    # A window too short for PRE + ACT + tRCD closes idle banks instead
    # (mem-bench's 8-burst window at 4266: 0.956 -> 0.999 with the refresh
    # rule in refresh.py, docs/memory.md).
    assert cfg.idle_precharge == (0 if hides else 32)


# --- every derived LPDDR4 / LPDDR4X spacing, computed here from the table ---
# Independent of parts.py: the JESD209-4B numbers are written out below in
# ns / nCK and converted with this file's own arithmetic, then compared with
# what the controller's bank machines and the timing checker are built from.
# Sources: JESD209-4B "Core AC Timing" (tRCD, tRP, tRAS, tRRD, tFAW, tWR,
# tWTR, tRTP, tCCD, tPPD, tCCDMW), "Refresh Requirement Parameters" (8 Gb per
# channel), "Read and Write Latencies" (set A, read DBI off), the "Read to
# Write" and "Precharge and Auto Precharge clarification" formulas, and
# tDQSCK(max) = 3.5 ns, tWPRE = 2 nCK, tRPST = 0.5 nCK (static postamble).
# Cross-checked against DRAMSys: configs/memspec/JEDEC_8Gb_LPDDR4-3200_16bit
# .json gives RCD 29, RPpb 29, RPab 34, RAS 68, RCpb 97, RRD 16, FAW 64, WR
# 29, WTR 16, RTP 12, CCD 8, PPD 4, CCDMW 32, RFCab 448, RFCpb 224, REFI
# 6246, REFIpb 780, RL 28, WL 14, DQSCK 6, WPRE 2, RPST 0, and its
# CheckerLPDDR4 computes tRDWR = RL + tDQSCK + BL/2 - WL + tWPRE + tRPST =
# 30 and tWRRD = WL + 1 + BL/2 + tWTR = 39. JEDEC_512Mbx16_LPDDR4-4266.json
# (tCK 0.469 ns) gives RCD 39, RPab 45, RAS 90, RRD 22, FAW 86, WR 39, WTR
# 22, RTP 17, RFCab 599, RFCpb 300, REFI 8341, REFIpb 1042, RL 36, WL 18.
# (Ramulator 1's LPDDR4.cpp gives read-to-write 26 at 3200 with its own
# command-end convention and DRAMsim3 23 without a tDQSCK term: neither
# models the JESD209-4 formula.)

def _ck(ns, tck, min_ck=0):
    return max(math.ceil(round(ns / tck, 6)), min_ck)


def _lpddr4_spacings(tck, rl, wl):
    bl2 = 8                                   # BL16 on a DDR bus: 8 CK
    c = {
        "tRCD": _ck(18, tck, 4), "tRPpb": _ck(18, tck, 4), "tRPab": _ck(21, tck, 4),
        "tRAS": _ck(42, tck, 3), "tRRD": _ck(10, tck, 4), "tFAW": _ck(40, tck),
        "tCCD": 8, "tWR": _ck(18, tck, 6), "tWTR": _ck(10, tck, 8), "tRTP": _ck(7.5, tck, 8),
        "tPPD": 4, "tCCDMW": 32,
        "tRFCab": _ck(280, tck), "tRFCpb": _ck(140, tck), "tPBR2PBR": _ck(90, tck),
        "tREFI": math.floor(3904 / tck),
    }
    c["tRC"] = c["tRAS"] + c["tRPpb"]
    c["tREFIpb"] = c["tREFI"] // 8
    c["wr_to_pre"] = wl + bl2 + 1 + c["tWR"]
    c["wr_to_rd"] = wl + bl2 + 1 + c["tWTR"]
    # RL + RU(tDQSCK(max) / tCK) + BL/2 - WL + tWPRE + RD(tRPST)
    c["rd_to_wr"] = rl + math.ceil(3.5 / tck) + bl2 - wl + 2 + math.floor(0.5)
    return c


@pytest.mark.parametrize("name,tck,rl,wl,pinned", [
    ("lpddr4-3200", 0.625, 28, 14,
     {"tRRD": 16, "tFAW": 64, "wr_to_pre": 52, "wr_to_rd": 39, "rd_to_wr": 30}),
    ("lpddr4x-4266", 0.468, 36, 18,
     {"tRRD": 22, "tFAW": 86, "wr_to_pre": 66, "wr_to_rd": 49, "rd_to_wr": 36}),
])
def test_lpddr4_spacings_match_the_standard(name, tck, rl, wl, pinned):
    want = _lpddr4_spacings(tck, rl, wl)
    assert {k: want[k] for k in pinned} == pinned     # the arithmetic above, by hand
    t = LpddrConfig(part=name, ratio=1).timings       # what controller and checker use
    got = {k: getattr(t, k) for k in want}
    assert got == want
    assert (t.RL, t.WL, t.burst_ck) == (rl, wl, 8)
