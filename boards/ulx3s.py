"""Radiona ULX3S-85F: platform, clocks, tops, and its entry in the board registry.

The ULX3S carries a Lattice ECP5 LFE5U-85F (speed grade 6, CABGA381), a
25 MHz oscillator and 32 MB of SDR SDRAM (IS42S16160). The platform is
``amaranth_boards.ulx3s.ULX3S_85F_Platform``; this module adds:

- :data:`ULX3S_DRAM`, the board's SDRAM as LiteDRAM generates it (module,
  PHY, data width, clock): the DRAM facts live here, with the board;
- :class:`SelfTestTop` (design ``gemv-selftest``, the default): the
  :class:`~lpaccel.boards.ecp5.Ecp5PllClock` core clock (100 MHz from the
  25 MHz oscillator), the board-independent
  :class:`~lpaccel.boards.selftest.SelfTestCore` and LEDs (``led[0]`` PASS,
  ``led[1]`` FAIL, ``led[2]`` heartbeat while running);
- :class:`BlinkyTop` (``gemv-selftest``, variant ``blinky``): only the clock
  and a counter, to prove the clock and the toolchain;
- :class:`Ulx3sDramSelfTestTop` (design ``dram-selftest``): the SDRAM
  through the generated LiteDRAM core, written and read back by
  :class:`~lpaccel.rtl.bus.memtest.AxiMemTest`, at 50 MHz with the SDRAM
  clock pin on a 90-degree PLL output;
- :class:`~lpaccel.boards.ulx3s_soc.Ulx3sSocTop` (design ``soc``, in
  ``boards/ulx3s_soc.py``): the accelerator SoC behind the host bridge on the
  FT231X USB-UART;
- the :class:`~lpaccel.boards.registry.BoardEntry` registered as
  ``ulx3s-85f`` (programmer: ``openFPGALoader -b ulx3s``).
"""

from amaranth.hdl import ClockDomain, Const, Elaboratable, Module, Signal
from amaranth.lib import io, wiring
from amaranth.utils import ceil_log2
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from .ecp5 import Ecp5PllClock
from .litedram import LiteDramBoard, LiteDramCore, generate_litedram_core
from .registry import BoardDesign, BoardEntry, register_board
from .selftest import SelfTestCore, default_config, make_selftest_case
from .toolchain import ECP5_YOSYS_OVERRIDES

__all__ = ["BlinkyTop", "DEFAULT_CORE_MHZ", "SelfTestTop", "ULX3S_85F_Platform",
           "ULX3S_DRAM", "Ulx3sDramSelfTestTop"]

#: Core clock the ULX3S-85F build is timed for (the design card's target).
DEFAULT_CORE_MHZ = 100.0

#: The ULX3S's SDRAM as LiteDRAM generates it: one IS42S16160 (32 MB, x16
#: SDR SDRAM); the board's 25 MHz oscillator is multiplied by the top's PLL,
#: the core runs on its clock.
ULX3S_DRAM = LiteDramBoard(
    name="ulx3s",
    device="LFE5U-85F-6BG381C", memtype="SDR", module="IS42S16160", module_bytes=2,
    phy="GENSDRPHY", sys_clk_hz=50e6, input_clk_hz=50e6, user_data_width=32,
    description="ULX3S-85F, IS42S16160 32 MB SDR SDRAM, GENSDRPHY, 50 MHz")


def _led(m, platform, index):
    """Output buffer for LED ``index``; returns the signal that drives it."""
    m.submodules[f"led{index}"] = buf = io.Buffer("o", platform.request("led", index, dir="-"))
    return buf.o


def _heartbeat_bit(f_mhz):
    # Counter bit that toggles at roughly 1 Hz.
    return max(1, ceil_log2(int(f_mhz * 1e6)) - 1)


class BlinkyTop(Elaboratable):
    """Stand-in top: the PLL clock and a counter on ``led[2]``.

    It proves the clock, the reset and the toolchain plumbing without the
    GEMV engine.

    Parameters
    ----------
    core_mhz : float
        Core clock in MHz.
    """

    def __init__(self, *, core_mhz=DEFAULT_CORE_MHZ):
        self.core_mhz = core_mhz

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.submodules.clock = Ecp5PllClock(platform.default_clk_frequency / 1e6, self.core_mhz)
        counter = Signal(_heartbeat_bit(self.core_mhz) + 1)
        m.d.sync += counter.eq(counter + 1)
        m.d.comb += _led(m, platform, 2).eq(counter[-1])
        return m


class SelfTestTop(Elaboratable):
    """Bitstream top: PLL core clock, GEMV self-test and status LEDs.

    ``led[0]`` is PASS, ``led[1]`` FAIL, ``led[2]`` blinks at about 1 Hz
    while runs are in flight (steady off if the sequencer halted after a
    failure). See :class:`~lpaccel.boards.selftest.SelfTestCore` for what is checked.

    Parameters
    ----------
    seed : int
        Seed of the random case.
    config : GemvConfig or None
        Engine configuration; default 32 lanes, ``max_cols`` = ``cols``.
    rows, cols : int
        Shape of the weight matrix (default 8 x 256: ROMs of a few kbit).
    fmt : str or WeightFormat
        Weight format of the case.
    core_mhz : float
        Core clock in MHz (the PLL output and the timing constraint).
    case : SelfTestCase or None
        A precomputed case; overrides ``seed``, ``rows``, ``cols``, ``fmt``.
    """

    def __init__(self, seed=1, config=None, rows=8, cols=256, fmt="q4_0", *,
                 core_mhz=DEFAULT_CORE_MHZ, case=None):
        if config is None:
            config = default_config(cols if case is None else case.cols)
        if case is None:
            case = make_selftest_case(seed=seed, config=config, rows=rows, cols=cols, fmt=fmt)
        self.config = config
        self.case = case
        self.core_mhz = core_mhz

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.submodules.clock = Ecp5PllClock(platform.default_clk_frequency / 1e6, self.core_mhz)
        m.submodules.core = core = SelfTestCore(self.case, self.config)
        beat = Signal(_heartbeat_bit(self.core_mhz) + 1)
        m.d.sync += beat.eq(beat + 1)
        m.d.comb += [
            _led(m, platform, 0).eq(core.passed),
            _led(m, platform, 1).eq(core.failed),
            _led(m, platform, 2).eq(core.running & beat[-1]),
        ]
        return m


class Ulx3sDramSelfTestTop(wiring.Component):
    """ULX3S top: LiteDRAM SDR core + :class:`~lpaccel.rtl.bus.memtest.AxiMemTest`.

    Board bring-up for the SDRAM: the 25 MHz oscillator feeds an ECP5 PLL
    (``sync`` at ``core_mhz``), the generated core comes up through the
    wrapper's init sequencer, then the self-test writes and reads back
    ``words`` words. LEDs: 0 ``init_done``, 1 pass, 2 fail, 3 ``init_error``,
    7 heartbeat.

    Parameters
    ----------
    core_mhz : float
        Core clock; the generated core is configured for 50 MHz.
    words : int
        Words to test (32-bit words; 1 MiW = 4 MiB by default).
    sdram_clk_phase : int
        Phase of the SDRAM clock pin against ``sync``, in degrees: ``90``
        (default, as LiteX's ULX3S target: the PLL's ``CLKOS``, delayed by
        90 degrees, drives the ``sync_ps`` domain that clocks the pin's DDR
        output) or ``180`` (``sync`` inverted, ``CLKOP`` only). See
        :class:`LiteDramCore`.
    """

    def __init__(self, *, core_mhz=50.0, words=1 << 20, sdram_clk_phase=90):
        if sdram_clk_phase not in LiteDramCore.SDRAM_CLK_PHASES:
            raise ValueError(f"sdram_clk_phase must be 90 (a 90-degree PLL output, LiteX's "
                             f"choice) or 180 (the sync clock inverted), not "
                             f"{sdram_clk_phase!r}")
        self.core_mhz = core_mhz
        self.words = words
        self.sdram_clk_phase = sdram_clk_phase
        super().__init__({})

    def elaborate(self, platform):
        from ..rtl.bus.memtest import AxiMemTest, AxiMemTestConfig

        m = Module()
        m.domains.sync = ClockDomain("sync")
        if self.sdram_clk_phase == 90:
            m.domains.sync_ps = ClockDomain("sync_ps", reset_less=True)
            m.submodules.clock = Ecp5PllClock(25.0, self.core_mhz, shifted_domain="sync_ps",
                                              shifted_phase=90)
        else:
            m.submodules.clock = Ecp5PllClock(25.0, self.core_mhz)
        core = generate_litedram_core(ULX3S_DRAM.name)
        platform.add_file("litedram_core.v", core.verilog.read_text())
        m.submodules.dram = dram = LiteDramCore(
            core, pads=platform.request("sdram", 0, dir="-"),
            sdram_clk_phase=self.sdram_clk_phase)
        m.submodules.memtest = test = AxiMemTest(AxiMemTestConfig(
            addr_width=dram.axi_signature.addr_width, data_width=core.axi_data_width,
            id_width=core.axi_id_width, words=self.words, burst=16))
        wiring.connect(m, test.axi, dram.axi)
        m.d.comb += test.start.eq(dram.init_done)
        beat = Signal(27)
        m.d.sync += beat.eq(beat + 1)
        for index, value in enumerate([dram.init_done, test.passed, test.done & ~test.passed,
                                       dram.init_error, Const(0), Const(0), Const(0),
                                       beat[-1]]):
            buf = io.Buffer("o", platform.request("led", index, dir="-"))
            m.submodules[f"led{index}"] = buf
            m.d.comb += buf.o.eq(value)
        return m




def _platform():
    return ULX3S_85F_Platform


def _gemv_top(core_mhz, variant):
    if variant == "blinky":
        return BlinkyTop(core_mhz=core_mhz)
    if variant == "all-formats":
        # The self-test engine with every format compiled in (F16 and BCQ too).
        from ..rtl.config import ALL_FORMATS
        from .selftest import default_config
        return SelfTestTop(core_mhz=core_mhz, config=default_config(256, formats=ALL_FORMATS))
    return SelfTestTop(core_mhz=core_mhz)


def _dram_top(core_mhz, variant):
    return Ulx3sDramSelfTestTop(core_mhz=core_mhz)


def _soc_top(core_mhz, variant):
    # Imported here: ulx3s_soc imports the SoC and the bridge, which only this design needs.
    from .ulx3s_soc import Ulx3sSocTop
    return Ulx3sSocTop(core_mhz=core_mhz)


register_board("ulx3s-85f", BoardEntry(
    platform=_platform, family="ecp5",
    designs={
        "gemv-selftest": BoardDesign(make_top=_gemv_top, core_mhz=DEFAULT_CORE_MHZ,
                                     variants=("selftest", "blinky", "all-formats")),
        # The generated SDR core's timings are for 50 MHz.
        "dram-selftest": BoardDesign(make_top=_dram_top, core_mhz=50.0, fixed_clock=True),
        # 25 MHz x 5 / 6: UART divisor 7 at the FT231X's 3 Mbaud (boards/ulx3s_soc.py).
        "soc": BoardDesign(make_top=_soc_top, core_mhz=25.0 * 5 / 6, variants=("uart",)),
    },
    yosys_overrides=ECP5_YOSYS_OVERRIDES, programmer="ulx3s",
    description="Radiona ULX3S, Lattice ECP5 LFE5U-85F-6BG381, 25 MHz oscillator, "
                "32 MB SDR SDRAM",
    dram=ULX3S_DRAM))
