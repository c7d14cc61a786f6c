"""LambdaConcept ECPIX-5 (85F): platform, DRAM self-test top, registry entry.

The ECPIX-5 carries a Lattice ECP5 LFE5UM5G-85F (speed grade 8, CABGA554), a
100 MHz oscillator and 512 MB of DDR3 (MT41K256M16). The platform is
``amaranth_boards.ecpix5.ECPIX585Platform``; this module adds:

- :data:`ECPIX5_DRAM`, the board's DDR3 as LiteDRAM generates it (module,
  PHY at 1:2, data width, clocks): the DRAM facts live here, with the board;
- :class:`Ecpix5DramSelfTestTop` (design ``dram-selftest``, the only one):
  the DDR3 through the generated LiteDRAM core, read-leveled in hardware,
  written and read back by :class:`~lpaccel.rtl.bus.memtest.AxiMemTest`. No
  PLL of ours: the 100 MHz oscillator is the core's input clock and the
  core's own PLL makes its 50 MHz controller clock;
- the :class:`~lpaccel.boards.registry.BoardEntry` registered as
  ``ecpix5-85f`` (programmer: ``openFPGALoader -b ecpix5``).

None of this has run on a board yet (see ``docs/boards.md``).
"""

from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal
from amaranth.lib import io, wiring

from .litedram import LiteDramBoard, LiteDramCore, generate_litedram_core
from .registry import BoardDesign, BoardEntry, register_board
from .toolchain import ECP5_YOSYS_OVERRIDES

__all__ = ["ECPIX5_DRAM", "Ecpix5DramSelfTestTop"]

#: The ECPIX-5's DDR3 as LiteDRAM generates it: MT41K256M16 (512 MB DDR3,
#: x16), 100 MHz oscillator into the core's own PLL; ECP5DDRPHY at 1:2.
ECPIX5_DRAM = LiteDramBoard(
    name="ecpix5",
    device="LFE5UM5G-85F-8BG554I", memtype="DDR3", module="MT41K256M16", module_bytes=2,
    phy="ECP5DDRPHY", sys_clk_hz=50e6, input_clk_hz=100e6, user_data_width=64,
    extra={"init_clk_freq": 25e6},
    description="ECPIX-5, MT41K256M16 512 MB DDR3, ECP5DDRPHY 1:2, 50 MHz")


class Ecpix5DramSelfTestTop(wiring.Component):
    """ECPIX-5 top: LiteDRAM DDR3 core + :class:`~lpaccel.rtl.bus.memtest.AxiMemTest`.

    The 100 MHz oscillator is the core's input clock (its own PLL makes the
    50 MHz controller clock and the 100 MHz DDR clock); the self-test runs
    on the core's ``user_clk``. LEDs (red/green of RGB LED 0 and 1): init
    done, pass, fail, init error (which includes a read-leveling failure).
    The wrapper levels the DDR3 reads before ``init_done``; none of this
    has run on a board yet.

    Parameters
    ----------
    words : int
        64-bit words to test.
    """

    def __init__(self, *, words=1 << 18):
        self.words = words
        super().__init__({})

    def elaborate(self, platform):
        from ..rtl.bus.memtest import AxiMemTest, AxiMemTestConfig

        m = Module()
        # The raw oscillator; the core resets itself (power-on counter, PLL lock).
        m.domains.sync = ClockDomain("sync")
        clk_buf = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
        m.submodules.clk100 = clk_buf
        m.d.comb += [ClockSignal("sync").eq(clk_buf.i), ResetSignal("sync").eq(0)]
        core = generate_litedram_core(ECPIX5_DRAM.name)
        platform.add_file("litedram_core.v", core.verilog.read_text())
        m.submodules.dram = dram = LiteDramCore(
            core, pads=platform.request("ddr3", 0, dir="-"))
        m.domains.dram = ClockDomain("dram")
        m.d.comb += [ClockSignal("dram").eq(dram.user_clk),
                     ResetSignal("dram").eq(dram.user_rst)]
        test = AxiMemTest(AxiMemTestConfig(
            addr_width=dram.axi_signature.addr_width, data_width=core.axi_data_width,
            id_width=core.axi_id_width, words=self.words, burst=16))
        m.submodules.memtest = DomainRenamer("dram")(test)
        wiring.connect(m, test.axi, dram.axi)
        m.d.comb += test.start.eq(dram.init_done)
        leds = [("rgb_led", 0, "r", dram.init_done), ("rgb_led", 0, "g", test.passed),
                ("rgb_led", 1, "r", test.done & ~test.passed),
                ("rgb_led", 1, "g", dram.init_error)]
        rgb = [platform.request("rgb_led", index, dir="-") for index in (0, 1)]
        for k, (_, index, color, value) in enumerate(leds):
            buf = io.Buffer("o", getattr(rgb[index], color))
            m.submodules[f"led{k}"] = buf
            m.d.comb += buf.o.eq(value)
        return m


def _platform():
    from amaranth_boards.ecpix5 import ECPIX585Platform
    return ECPIX585Platform


def _dram_top(core_mhz, variant):
    return Ecpix5DramSelfTestTop()


register_board("ecpix5-85f", BoardEntry(
    platform=_platform, family="ecp5",
    designs={
        # The LiteDRAM core's own PLL makes its 50 MHz clock from the
        # 100 MHz oscillator; the self-test runs on that clock.
        "dram-selftest": BoardDesign(make_top=_dram_top, core_mhz=50.0, fixed_clock=True),
    },
    yosys_overrides=ECP5_YOSYS_OVERRIDES, programmer="ecpix5",
    description="LambdaConcept ECPIX-5, Lattice ECP5 LFE5UM5G-85F-8BG554, 100 MHz "
                "oscillator, 512 MB DDR3",
    dram=ECPIX5_DRAM))
