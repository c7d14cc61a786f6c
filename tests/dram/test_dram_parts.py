"""DRAM part tables and the conversion to clock cycles."""

import dataclasses

import pytest

from lpaccel.rtl.dram.config import LpddrConfig
from lpaccel.rtl.dram.parts import (LPDDR4_3200, PARTS, Timing, controller_cycles,
                                    part_by_name)


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
    with pytest.raises(ValueError, match="ratio 1:8 must divide the burst.s 4 CK"):
        LpddrConfig(part="lpddr5-6400", ratio=8)
    with pytest.raises(ValueError, match="sim_bytes must be a power of two"):
        LpddrConfig(sim_bytes=1000)
