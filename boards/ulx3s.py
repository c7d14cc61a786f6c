"""ULX3S-85F: platform, core clock and the on-chip GEMV self-test design.

The ULX3S carries a Lattice ECP5 LFE5U-85F (speed grade 6, CABGA381) and a
25 MHz oscillator. This module adds what the board file from
``amaranth-boards`` does not have:

- :class:`Ecp5PllClock`, an ``EHXPLLL`` that makes the core clock (100 MHz by
  default) from the 25 MHz oscillator and drives the ``sync`` domain, whose
  reset is held until the PLL reports lock;
- :class:`SelfTestCore`, the board-independent self-check: a
  :class:`~lpaccel.rtl.gemv.GemvEngine` fed from on-chip ROMs that compares
  every result with the golden model's answer, computed at elaboration time;
- :class:`SelfTestTop`, the bitstream top: clock, self-test and LEDs
  (``led[0]`` PASS, ``led[1]`` FAIL, ``led[2]`` heartbeat while running);
- :class:`BlinkyTop`, a stand-in top that only proves the clock and the
  toolchain.
"""

from dataclasses import dataclass

from amaranth.hdl import (ClockDomain, ClockSignal, Const, Elaboratable, Instance,
                          Module, Signal, unsigned)
from amaranth.lib import io, stream, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from ..rtl.config import GemvConfig, WeightFormat

__all__ = ["ULX3S_85F_Platform", "ecp5_pll_params", "Ecp5PllClock", "SelfTestCase",
           "make_selftest_case", "SelfTestCore", "SelfTestTop", "BlinkyTop",
           "DEFAULT_CORE_MHZ", "ecp5_pll_phase"]

#: Core clock the ULX3S-85F build is timed for (the design card's target).
DEFAULT_CORE_MHZ = 100.0

# ECP5 EHXPLLL operating ranges (Lattice TN1263 / FPGA-DS-02012), in MHz.
_PLL_PFD_RANGE = (3.125, 400.0)
_PLL_VCO_RANGE = (400.0, 800.0)
_PLL_OUT_RANGE = (3.125, 400.0)


def ecp5_pll_params(f_in_mhz, f_out_mhz):
    """Choose ``EHXPLLL`` dividers for one output clock.

    Searches every input, feedback and output divider for the output
    frequency closest to ``f_out_mhz`` within the ECP5's PFD and VCO ranges,
    preferring a VCO near the middle of its range (what ``ecppll`` does).
    Feedback is taken from ``CLKOP`` itself.

    Parameters
    ----------
    f_in_mhz : float
        Reference clock frequency in MHz.
    f_out_mhz : float
        Wanted ``CLKOP`` frequency in MHz.

    Returns
    -------
    dict
        ``clki_div``, ``clkfb_div``, ``clkop_div``, ``f_vco_mhz`` and
        ``f_out_mhz`` (the frequency actually produced).

    Raises
    ------
    ValueError
        If ``f_out_mhz`` is outside the ECP5 output range or no divider
        setting comes within 1% of it.
    """
    if not _PLL_OUT_RANGE[0] <= f_out_mhz <= _PLL_OUT_RANGE[1]:
        raise ValueError(f"PLL output frequency must be between {_PLL_OUT_RANGE[0]} and "
                         f"{_PLL_OUT_RANGE[1]} MHz on ECP5, not {f_out_mhz}")
    best = None
    for clki_div in range(1, 129):
        f_pfd = f_in_mhz / clki_div
        if not _PLL_PFD_RANGE[0] <= f_pfd <= _PLL_PFD_RANGE[1]:
            continue
        for clkfb_div in range(1, 81):
            f_out = f_pfd * clkfb_div
            for clkop_div in range(1, 129):
                f_vco = f_out * clkop_div
                if not _PLL_VCO_RANGE[0] <= f_vco <= _PLL_VCO_RANGE[1]:
                    continue
                key = (abs(f_out - f_out_mhz), abs(f_vco - 600.0))
                if best is None or key < best[0]:
                    best = (key, dict(clki_div=clki_div, clkfb_div=clkfb_div,
                                      clkop_div=clkop_div, f_vco_mhz=f_vco, f_out_mhz=f_out))
    if best is None or best[0][0] > 0.01 * f_out_mhz:
        raise ValueError(f"no ECP5 PLL setting makes {f_out_mhz} MHz from {f_in_mhz} MHz "
                         f"within 1%; choose another core frequency")
    return best[1]


def ecp5_pll_phase(div, phase_deg):
    """``CPHASE`` and ``FPHASE`` of an ``EHXPLLL`` output shifted by ``phase_deg``.

    An output divided by ``div`` from the VCO lasts ``div`` VCO periods, and
    the PLL delays an output in eighths of a VCO period, so one step is
    ``45 / div`` degrees of the output. The shift is rounded to the nearest
    step (``steps = round(phase_deg * div / 45)``); the coarse part goes to
    ``CPHASE`` on top of the zero-phase value ``div - 1`` and the remainder
    to ``FPHASE``: ``CPHASE = steps // 8 + div - 1``, ``FPHASE = steps % 8``
    (the relation LiteX's ``ECP5PLL`` uses). For ``div = 12`` (50 MHz from a
    600 MHz VCO) 90 degrees is 24 steps: ``CPHASE = 14``, ``FPHASE = 0``.

    Parameters
    ----------
    div : int
        The output's divider (1 to 128).
    phase_deg : float
        Wanted delay in degrees of the output clock, ``0 <= phase_deg < 360``.

    Returns
    -------
    tuple of int
        ``(cphase, fphase)``.

    Raises
    ------
    ValueError
        If ``div`` or ``phase_deg`` is out of range, or the coarse phase
        does not fit ``CPHASE`` (0 to 127).
    """
    if not (isinstance(div, int) and 1 <= div <= 128):
        raise ValueError(f"PLL output divider must be an integer from 1 to 128, not {div!r}")
    if not 0 <= phase_deg < 360:
        raise ValueError(f"PLL output phase must be at least 0 and below 360 degrees, not "
                         f"{phase_deg!r}; give the equivalent angle in that range")
    steps = round(phase_deg * div / 45)
    cphase = steps // 8 + div - 1
    if cphase > 127:
        raise ValueError(f"PLL output phase {phase_deg} at divider {div} needs CPHASE "
                         f"{cphase}, but the field holds 0 to 127; use a smaller divider "
                         f"(a higher VCO) or a smaller angle")
    return cphase, steps % 8


class Ecp5PllClock(Elaboratable):
    """Drives the ``sync`` clock domain from an ECP5 PLL and a board clock.

    The domain itself is defined by the parent (``m.domains.sync =
    ClockDomain()``), as Amaranth 0.6 requires; this block drives its clock
    and holds its reset until the PLL locks.

    Parameters
    ----------
    f_in_mhz : float
        Frequency of ``clk_in`` in MHz.
    f_out_mhz : float
        Wanted core clock in MHz; see :func:`ecp5_pll_params`.
    clk_in : Signal or None
        Reference clock. ``None`` requests the platform's default clock
        resource at elaboration time.
    domain : str
        Clock domain to drive (defined by the parent).
    shifted_domain : str or None
        If given, a second clock domain (defined by the parent) driven from
        ``CLKOS``: the same frequency as ``domain``, delayed by
        ``shifted_phase`` degrees (see :func:`ecp5_pll_phase`). Its reset
        is not driven; it is meant for DDR output cells that forward a
        clock (the ULX3S SDRAM clock). ``None`` (default): ``CLKOP`` only.
    shifted_phase : float
        Delay of ``shifted_domain`` in degrees, ``0 <= shifted_phase < 360``.

    Attributes
    ----------
    locked : Signal, out
        PLL lock. The domain is held in reset until it is high (released
        through a two-stage :class:`~amaranth.lib.cdc.ResetSynchronizer`).
    params : dict
        The divider setting, from :func:`ecp5_pll_params`; with
        ``shifted_domain`` also ``clkos_div``, ``clkos_cphase`` and
        ``clkos_fphase``.
    """

    def __init__(self, f_in_mhz, f_out_mhz, *, clk_in=None, domain="sync",
                 shifted_domain=None, shifted_phase=90.0):
        self.f_in_mhz = f_in_mhz
        self.params = ecp5_pll_params(f_in_mhz, f_out_mhz)
        self.f_out_mhz = self.params["f_out_mhz"]
        self.clk_in = clk_in
        self.domain = domain
        self.shifted_domain = shifted_domain
        self.shifted_phase = shifted_phase
        if shifted_domain is not None:
            if shifted_domain == domain:
                raise ValueError(f"shifted_domain must differ from domain {domain!r}; name "
                                 f"another clock domain for the phase-shifted output")
            div = self.params["clkop_div"]
            cphase, fphase = ecp5_pll_phase(div, shifted_phase)
            self.params.update(clkos_div=div, clkos_cphase=cphase, clkos_fphase=fphase)
        self.locked = Signal()

    def elaborate(self, platform):
        m = Module()
        clk_in = self.clk_in
        if clk_in is None:
            clk_io = platform.request(platform.default_clk, dir="-")
            m.submodules.clk_in_buf = clk_buf = io.Buffer("i", clk_io)
            clk_in = clk_buf.i

        clk = ClockSignal(self.domain)
        p = self.params
        # Feedback from CLKOP, so the CLKOP phase setting is only the
        # conventional one (LiteX: CPHASE = DIV - 1) and never matters.
        shifted = {}
        if self.shifted_domain is not None:
            # CLKOS: same divider as CLKOP, delayed against it (CLKOP is at
            # the zero-phase setting CPHASE = DIV - 1, FPHASE = 0).
            shifted = {
                "a_FREQUENCY_PIN_CLKOS": f"{self.f_out_mhz:g}",
                "p_CLKOS_ENABLE": "ENABLED",
                "p_CLKOS_DIV": p["clkos_div"],
                "p_CLKOS_CPHASE": p["clkos_cphase"],
                "p_CLKOS_FPHASE": p["clkos_fphase"],
                "o_CLKOS": ClockSignal(self.shifted_domain),
            }
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{self.f_in_mhz:g}",
            a_FREQUENCY_PIN_CLKOP=f"{self.f_out_mhz:g}",
            a_ICP_CURRENT="12",
            a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED",
            p_INTFB_WAKE="DISABLED",
            p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA",
            p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC",
            p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=p["clki_div"],
            p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=p["clkop_div"],
            p_CLKOP_CPHASE=p["clkop_div"] - 1,
            p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=p["clkfb_div"],
            i_RST=Const(0),
            i_STDBY=Const(0),
            i_CLKI=clk_in,
            o_CLKOP=clk,
            i_CLKFB=clk,
            i_PHASESEL0=Const(0),
            i_PHASESEL1=Const(0),
            i_PHASEDIR=Const(1),
            i_PHASESTEP=Const(1),
            i_PHASELOADREG=Const(1),
            i_PLLWAKESYNC=Const(0),
            i_ENCLKOP=Const(0),
            o_LOCK=self.locked,
            **shifted,
        )
        m.submodules.reset_sync = ResetSynchronizer(~self.locked, domain=self.domain)
        # No add_clock_constraint() here: nextpnr derives the CLKOP constraint
        # from the CLKI port constraint and the dividers ("Derived frequency
        # constraint ... for net clk"), and amaranth 0.5 names this net after
        # a submodule ("clock.reset_sync.clk") that does not survive
        # flattening, so an explicit FREQUENCY NET would be ignored anyway.
        return m


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


@dataclass(frozen=True)
class SelfTestCase:
    """One GEMV job and its answer, as the self-test ROMs hold them.

    Attributes
    ----------
    fmt : WeightFormat
    rows, cols : int
    group : int
        Elements per scale (32 for the GGUF formats).
    activation_blocks : tuple of int
        ``cols / 32`` 520-bit activation beats
        (see :func:`lpaccel.repack.activation_blocks`).
    weight_words : tuple of int
        The repacked weight stream, one ``config.word_bits`` word per beat.
    expected : tuple of int
        FP32 bit patterns of the ``rows`` results, in row order.
    """

    fmt: WeightFormat
    rows: int
    cols: int
    group: int
    activation_blocks: tuple
    weight_words: tuple
    expected: tuple


def make_selftest_case(*, seed=1, config=None, rows=8, cols=256, fmt="q4_0", group=None):
    """Generate a random self-test case with the golden model and repacker.

    Weights and activations are drawn from N(0, 1) with ``seed``, quantized
    by :mod:`lpaccel.sim.golden`, repacked by :mod:`lpaccel.repack`;
    the expected results are :func:`lpaccel.sim.golden.gemv_golden`'s.

    Parameters
    ----------
    seed : int
    config : GemvConfig or None
        Engine configuration; default ``GemvConfig(lanes=32, max_cols=cols)``
        rounded up to a legal ``max_cols``.
    rows, cols : int
        Shape of the weight matrix; ``cols`` a multiple of 32 and at most
        ``config.max_cols``.
    fmt : str or WeightFormat
    group : int, optional
        Group size of INT4/INT8 (32, 64 or 128).

    Returns
    -------
    SelfTestCase

    Raises
    ------
    ValueError
        If the shape does not fit the configuration.
    """
    import numpy as np
    from .. import quant, repack
    from ..sim.golden import gemv as golden

    fmt = WeightFormat.parse(fmt)
    if config is None:
        config = _default_config(cols)
    if rows < 1 or cols < 32 or cols % 32 != 0:
        raise ValueError(f"self-test shape {rows}x{cols}: rows must be >= 1 and cols a "
                         f"positive multiple of 32")
    if cols > config.max_cols or rows > config.max_rows:
        raise ValueError(f"self-test shape {rows}x{cols} does not fit the engine "
                         f"(max_cols {config.max_cols}, max_rows {config.max_rows}); "
                         f"use a smaller case or a larger GemvConfig")
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    x = rng.standard_normal(cols).astype(np.float32)
    weights = quant.quantize_weights(w, fmt, group)
    mant, exp = quant.quantize_activations(x)
    y = np.asarray(golden.gemv_golden(weights, x), dtype=np.float32)
    return SelfTestCase(
        fmt=fmt, rows=rows, cols=cols, group=weights.group,
        activation_blocks=tuple(int(v) for v in repack.activation_blocks(mant, exp)),
        weight_words=tuple(int(v) for v in repack.stream_words(weights, config)),
        expected=tuple(int(v) for v in y.reshape(-1).view(np.uint32)),
    )


def _default_config(cols, lanes=32):
    unit = 32 * max(1, lanes // 32)
    return GemvConfig(lanes=lanes, max_cols=max(unit, -(-cols // unit) * unit))


class _RomStream(wiring.Component):
    """A stream source that plays ``init`` from a synchronous-read ROM.

    ``start`` (one cycle) rewinds it; it then sends every entry once. Valid
    and payload hold while the sink stalls: the ROM read is enabled only
    when the output register is empty or being taken.
    """

    def __init__(self, width, init):
        self._init = list(init)
        self._width = width
        super().__init__({
            "start": In(1),
            "done": Out(1),
            "stream": Out(stream.Signature(unsigned(width))),
        })

    def elaborate(self, platform):
        m = Module()
        count = len(self._init)
        m.submodules.rom = rom = Memory(shape=unsigned(self._width), depth=count,
                                        init=self._init)
        rd = rom.read_port()
        addr = Signal(range(count + 1), init=count)
        load = addr != count
        advance = ~self.stream.valid | self.stream.ready
        m.d.comb += [
            rd.addr.eq(addr),
            rd.en.eq(advance),
            self.stream.payload.eq(rd.data),
            self.done.eq(~load & ~self.stream.valid),
        ]
        with m.If(self.start):
            m.d.sync += [addr.eq(0), self.stream.valid.eq(0)]
        with m.Elif(advance):
            m.d.sync += self.stream.valid.eq(load)
            with m.If(load):
                m.d.sync += addr.eq(addr + 1)
        return m


class SelfTestCore(wiring.Component):
    """GEMV engine, ROM-fed, checking itself against the golden model.

    The case (job, activation blocks, weight words, expected FP32 results) is
    computed at elaboration time and stored in ROMs. A small sequencer
    sends the job; the activation and weight ROMs stream concurrently, each
    at the engine's pace (the engine takes them in protocol order). Every
    result is compared with the expected ROM, including its ``last`` flag.

    The check repeats forever: after the last result the sequencer waits
    for the ROM streams to finish, then starts the same job again.
    ``passed`` lights once a whole run has matched and stays lit while every
    run matches; ``failed`` is sticky (until reset) and lights on the first
    mismatch, a wrong ``last`` flag, an engine error code, or a run taking
    more than ``timeout`` cycles (a hung engine). ``passed`` and ``failed``
    are never both high.

    Parameters
    ----------
    case : SelfTestCase
    config : GemvConfig
    timeout : int
        Cycles one run may take before it counts as failed.

    Attributes
    ----------
    passed : Signal, out
    failed : Signal, out
    running : Signal, out
        High while a run is in flight (engine busy or streams pending).
    runs : Signal(16), out
        Completed runs, wrapping.
    engine : GemvEngine
        The engine under test (for simulation probes).
    """

    passed: Out(1)
    failed: Out(1)
    running: Out(1)
    runs: Out(16)

    def __init__(self, case, config, *, timeout=None):
        from ..rtl.gemv import GemvEngine

        self.case = case
        self.config = config
        self.engine = GemvEngine(config)
        self.timeout = self.default_timeout(case) if timeout is None else timeout
        super().__init__()

    @staticmethod
    def default_timeout(case):
        """Watchdog default: 64 cycles per ROM beat and result, plus 4096."""
        return 64 * (len(case.weight_words) + len(case.activation_blocks) + case.rows) + 4096

    def elaborate(self, platform):
        m = Module()
        case = self.case
        m.submodules.engine = engine = self.engine
        m.submodules.acts = acts = _RomStream(len(engine.activations.payload.as_value()),
                                              case.activation_blocks)
        m.submodules.weights = weights = _RomStream(self.config.word_bits, case.weight_words)
        m.submodules.expected = exp_rom = Memory(shape=unsigned(32), depth=case.rows,
                                                 init=case.expected)
        exp_rd = exp_rom.read_port()

        m.d.comb += [
            engine.activations.valid.eq(acts.stream.valid),
            engine.activations.payload.eq(acts.stream.payload),
            acts.stream.ready.eq(engine.activations.ready),
            engine.weights.valid.eq(weights.stream.valid),
            engine.weights.payload.eq(weights.stream.payload),
            weights.stream.ready.eq(engine.weights.ready),
            engine.error_clear.eq(0),
        ]

        start = Signal()
        m.d.comb += [acts.start.eq(start), weights.start.eq(start)]

        job_pending = Signal()
        m.d.comb += [
            engine.job.valid.eq(job_pending),
            engine.job.payload.fmt.eq(int(case.fmt)),
            engine.job.payload.rows.eq(case.rows),
            engine.job.payload.cols.eq(case.cols),
            engine.job.payload.group.eq(case.group),
        ]
        with m.If(engine.job.valid & engine.job.ready):
            m.d.sync += job_pending.eq(0)

        # Results: always ready; the expected ROM is addressed with the index
        # of the *next* result so back-to-back results compare correctly
        # despite its one-cycle read latency.
        index = Signal(range(case.rows + 1))
        take = engine.results.valid & engine.results.ready
        m.d.comb += [
            engine.results.ready.eq(1),
            exp_rd.en.eq(1),
            exp_rd.addr.eq(index + take),
        ]
        mismatch = Signal()
        run_ok = Signal()          # no mismatch in the run so far
        passed_once = Signal()
        failed = Signal()
        timer = Signal(range(self.timeout + 1))

        m.d.comb += [
            self.failed.eq(failed),
            self.passed.eq(passed_once & ~failed),
        ]

        with m.FSM():
            with m.State("START"):
                m.d.comb += start.eq(1)
                m.d.sync += [job_pending.eq(1), index.eq(0), run_ok.eq(1), timer.eq(0)]
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.running.eq(1)
                m.d.sync += timer.eq(timer + 1)
                with m.If(take):
                    is_last = index == case.rows - 1
                    m.d.comb += mismatch.eq(
                        (engine.results.payload.value != exp_rd.data) |
                        (engine.results.payload.last != is_last))
                    m.d.sync += index.eq(index + 1)
                    with m.If(mismatch):
                        m.d.sync += [run_ok.eq(0), failed.eq(1)]
                    with m.If(is_last):
                        m.next = "DRAIN"
                with m.If(engine.error != 0):
                    m.d.sync += [run_ok.eq(0), failed.eq(1)]
                with m.If(timer == self.timeout):
                    m.d.sync += [run_ok.eq(0), failed.eq(1)]
                    m.next = "HALT"
            with m.State("DRAIN"):
                # A correct engine has taken every beat by its last result;
                # anything left over or an extra result is a protocol error.
                m.d.comb += self.running.eq(1)
                m.d.sync += timer.eq(timer + 1)
                with m.If(~acts.done | ~weights.done | job_pending | engine.results.valid |
                          (timer == self.timeout)):
                    m.d.sync += failed.eq(1)
                    m.next = "HALT"
                with m.Elif(~engine.busy):
                    m.d.sync += [self.runs.eq(self.runs + 1), passed_once.eq(run_ok)]
                    m.next = "START"
            with m.State("HALT"):
                pass
        return m


class SelfTestTop(Elaboratable):
    """Bitstream top: PLL core clock, GEMV self-test and status LEDs.

    ``led[0]`` is PASS, ``led[1]`` FAIL, ``led[2]`` blinks at about 1 Hz
    while runs are in flight (steady off if the sequencer halted after a
    failure). See :class:`SelfTestCore` for what is checked.

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
            config = _default_config(cols if case is None else case.cols)
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
