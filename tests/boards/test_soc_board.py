# amaranth: UnusedElaboratable=no
"""The ``soc`` design of the ULX3S-85F: the SoC on the FT231X USB-UART (boards/ulx3s_soc.py).

Fast (no Yosys, no nextpnr): the registry entry, the clock, baud rate and
divisor the design documents, the FT231X's baud generator, the refusals of
clock/baud/memory combinations that cannot work, and the board files
Amaranth writes for the top (the UART on the FT231X's pins, the LEDs, the
25 MHz reference; about ten seconds to elaborate the SoC). The bitstream
build itself (place and route of the whole SoC, many minutes) is ``slow``.
"""

import json

import pytest

from lpaccel.boards import BOARDS, DESIGNS
from lpaccel.boards.build import build_board, default_out_dir
from lpaccel.boards.toolchain import ECP5_YOSYS_OVERRIDES
from lpaccel.boards.ulx3s import ULX3S_85F_Platform
from lpaccel.boards.ulx3s_soc import (
    DEFAULT_BAUD,
    DEFAULT_CORE_MHZ,
    DEFAULT_MEMORY_SIZE,
    Ulx3sSocTop,
    ft231x_baud,
)
from lpaccel.paths import ROOT, build_dir
from lpaccel.rtl.bridge.config import BridgeConfig
from lpaccel.rtl.soc_config import ONCHIP


def test_registry_entry():
    assert DESIGNS["soc"].startswith("the accelerator SoC with on-chip memory, driven over "
                                     "the FT231X USB-UART")
    spec = BOARDS["ulx3s-85f"].designs["soc"]
    assert spec.core_mhz == DEFAULT_CORE_MHZ == pytest.approx(20.8333, abs=1e-4)
    # One top: the bridge on the UART pins.
    assert not spec.fixed_clock and spec.variants == ("uart",)
    assert BOARDS["ulx3s-85f"].default_design == "gemv-selftest"
    assert default_out_dir("ulx3s-85f", "soc") == build_dir("ulx3s-85f-soc")
    # Only the ULX3S has the FT231X design.
    assert "soc" not in BOARDS["ecpix5-85f"].designs


def test_documented_clock_baud_and_divisor():
    top = Ulx3sSocTop()
    # 25 MHz x 5 / 6 from the PLL (input divider 6: a 4.17 MHz phase detector).
    assert (top.pll["clki_div"], top.pll["clkfb_div"]) == (6, 5)
    assert 400 <= top.pll["f_vco_mhz"] <= 800
    assert top.core_mhz == pytest.approx(25 * 5 / 6)
    config = top.bridge_config
    assert config == BridgeConfig(clk_hz=20_833_333, baud=3_000_000, timeout_cycles=20_833)
    assert DEFAULT_BAUD == 3_000_000
    # 7 cycles a bit: 2.976 Mbaud, 0.79 % below the FT231X's exact 3 Mbaud.
    assert top.divisor == config.divisor == 7
    assert abs(config.clk_hz / 7 - 3e6) / 3e6 == pytest.approx(0.0079, abs=1e-4)
    assert top.soc_config.memory == ONCHIP
    assert top.soc_config.memory_size == DEFAULT_MEMORY_SIZE == 256 * 1024


@pytest.mark.parametrize("core_mhz, baud, divisor", [
    (30.0, 3_000_000, 10),      # exact, less timing margin
    (20.0, 2_000_000, 10),      # exact
    (25.0, 1_000_000, 25),      # exact
])
def test_other_exact_choices(core_mhz, baud, divisor):
    top = Ulx3sSocTop(core_mhz=core_mhz, baud=baud)
    assert top.divisor == divisor
    assert top.bridge_config.clk_hz == divisor * baud


@pytest.mark.parametrize("asked, made", [
    (3_000_000, 3_000_000), (2_000_000, 2_000_000), (1_500_000, 1_500_000),
    (1_000_000, 1_000_000), (921_600, 3e6 / 3.25), (115_200, 3e6 / 26), (300, 300),
])
def test_ft231x_baud_generator(asked, made):
    assert ft231x_baud(asked) == pytest.approx(made)


def test_ft231x_refuses_impossible_rates():
    with pytest.raises(ValueError, match=r"baud 4000000 is faster than the FT231X can go "
                                         r"\(at most 3000000\)"):
        ft231x_baud(4_000_000)
    with pytest.raises(ValueError, match=r"baud must be a positive integer, not 0"):
        ft231x_baud(0)


def test_bad_combinations_are_clear_errors():
    # 3 Mbaud at 25 MHz: divisor 8 makes 3.125 Mbaud, 4.2 % fast.
    with pytest.raises(ValueError, match=r"ULX3S soc design at core_mhz 25 \(the PLL makes "
                                         r"25.0000 MHz\): baud 3000000 at clk_hz 25000000: the "
                                         r"nearest integer divisor 8 gives 3125000 baud, 4.2 % "
                                         r"off"):
        Ulx3sSocTop(core_mhz=25.0)
    # 2.5 Mbaud: the FT231X has no divisor between 1 and 1.5 (3 and 2 Mbaud).
    with pytest.raises(ValueError, match=r"baud 2500000: the FT231X makes 3000000 baud for it "
                                         r"\(20.0 % off"):
        Ulx3sSocTop(baud=2_500_000)
    with pytest.raises(ValueError, match=r"faster than the FT231X"):
        Ulx3sSocTop(core_mhz=50.0, baud=6_000_000)
    # 24 MHz needs a 1 MHz phase detector, below the ECP5's 3.125 MHz.
    with pytest.raises(ValueError, match=r"no ECP5 PLL setting makes 24.0 MHz from 25.0 MHz"):
        Ulx3sSocTop(core_mhz=24.0)
    # 512 KiB of on-chip memory is 256 block RAMs; the 85F has 208.
    with pytest.raises(ValueError, match=r"memory_size 524288 bytes of on-chip memory needs at "
                                         r"least 256 DP16KD block RAMs but the LFE5U-85F has "
                                         r"208"):
        Ulx3sSocTop(memory_size=512 * 1024)


@pytest.fixture(scope="module")
def board_files():
    """The files Amaranth writes for the ``soc`` top (elaboration only, no tools run)."""
    top = BOARDS["ulx3s-85f"].designs["soc"].make_top(DEFAULT_CORE_MHZ, "uart")
    plan = ULX3S_85F_Platform().prepare(top, name="top", **ECP5_YOSYS_OVERRIDES)

    def text(name):
        content = plan.files[name]
        return content if isinstance(content, str) else content.decode()
    return {"lpf": text("top.lpf"), "il": text("top.il")}


def _sites(lpf):
    sites = {}
    for line in lpf.splitlines():
        if line.startswith("LOCATE COMP"):
            _, _, port, _, site = line.rstrip(";").split()
            sites[port.strip('"')] = site.strip('"')
    return sites


def test_uart_on_the_ft231x_pins(board_files):
    sites = _sites(board_files["lpf"])
    # ULX3S schematic: FT231X TXD -> FPGA M1 (our receiver), FPGA L4 -> FT231X RXD.
    assert sites["uart_0__rx__io"] == "M1"
    assert sites["uart_0__tx__io"] == "L4"
    # The reference clock and five LEDs (B2 C2 C1 D2 D1), nothing else: the FT231X's
    # RTS, DTR and TXDEN (M3, N1, L3) are left alone.
    assert sites == {"clk25_0__io": "G2", "uart_0__rx__io": "M1", "uart_0__tx__io": "L4",
                     **{f"led_{i}__io": pin
                        for i, pin in enumerate(["B2", "C2", "C1", "D2", "D1"])}}
    assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ' in board_files["lpf"]


def test_top_has_pll_soc_and_bridge(board_files):
    il = board_files["il"]
    modules = {line.split()[1] for line in il.splitlines() if line.startswith("module ")}
    # The PLL, the SoC behind the bridge and its UART, the pin buffers.
    for name in ("top.clock", "top.soc", "top.soc.soc", "top.soc.soc.memory", "top.soc.bridge",
                 "top.uart_rx_buf", "top.uart_tx_buf", "top.led4"):
        assert "\\" + name in modules, name
    assert "\\top.soc.uart_receiver" in modules
    assert "\\top.soc.uart_transmitter" in modules
    assert "\\top.led5" not in modules
    assert il.count("cell \\EHXPLLL") == 1
    for param, value in (("CLKI_DIV", 6), ("CLKFB_DIV", 5), ("CLKOP_DIV", 29)):
        assert f"parameter \\{param} {value}\n" in il
    # 256 KiB of 128-bit words.
    assert "memory width 128 size 16384 \\storage" in il


@pytest.mark.slow
def test_soc_bitstream():
    report = build_board("ulx3s-85f", design="soc")
    assert report["design"] == "soc" and report["top"] == "uart"
    bitstream = ROOT / report["bitstream"]
    assert bitstream.stat().st_size > 0
    assert report["timing_met"] is True
    assert report["fmax_mhz"]["clk"] >= report["target_mhz"]["clk"] >= 20.8
    util = report["utilization"]
    # The 256 KiB memory alone is 128 block RAMs; a multiplier per engine lane.
    assert 128 < util["bram"]["used"] <= util["bram"]["available"]
    assert util["dsp"]["used"] >= 32
    with open(bitstream.parent / "report.json") as f:
        assert json.load(f)["timing_met"]
