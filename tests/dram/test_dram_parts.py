"""DRAM part tables and the conversion to clock cycles."""

import dataclasses

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
    # Only the bank-group part closes idle banks by default; LPDDR4 stays
    # pure open page (its controller is elaborated exactly as before).
    assert LpddrConfig(part="lpddr5-6400", ratio=2).idle_precharge == 32
    assert LpddrConfig(part="lpddr4-3200").idle_precharge == 0
    assert LpddrConfig(part="lpddr5-6400", ratio=2, idle_precharge=0).idle_precharge == 0
    with pytest.raises(ValueError, match="idle_precharge must be an integer from 0 to 1024"):
        LpddrConfig(idle_precharge=-1)
