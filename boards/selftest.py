"""The board-independent GEMV self-test: an engine that checks itself on chip.

- :class:`SelfTestCase` and :func:`make_selftest_case`: one GEMV job, its
  repacked weights and activations and the golden model's answer, computed
  at elaboration time;
- :class:`SelfTestCore`: a :class:`~lpaccel.rtl.gemv.GemvEngine` fed from
  ROMs holding the case, comparing every result with the expected one, run
  after run, with ``passed``/``failed`` outputs for LEDs;
- :func:`default_config`: the engine configuration a case of ``cols``
  columns needs when none is given.

A board's top adds the clock and the LEDs (``boards/ulx3s.py``'s
:class:`~lpaccel.boards.ulx3s.SelfTestTop`). Nothing here is specific to a
board or an FPGA family.
"""

from dataclasses import dataclass

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..rtl.config import GemvConfig, WeightFormat

__all__ = ["SelfTestCase", "SelfTestCore", "default_config", "make_selftest_case"]


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
        config = default_config(cols)
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


#: The formats of the default self-test engine: the five MAC-lane formats.
#: F16 and BCQ are built by the ``all-formats`` variant (``lpaccel build
#: --design gemv-selftest --variant all-formats``), which does not meet
#: 100 MHz yet (docs/gemv.md, "F16 and BCQ datapaths").
SELFTEST_FORMATS = (WeightFormat.Q4_0, WeightFormat.Q8_0, WeightFormat.Q4_1,
                    WeightFormat.INT4, WeightFormat.INT8)


def default_config(cols, lanes=32, formats=SELFTEST_FORMATS):
    """The smallest engine configuration that takes ``cols`` columns.

    Parameters
    ----------
    cols : int
        Columns of the self-test case.
    lanes : int
        Engine lanes.
    formats : tuple of WeightFormat
        Formats compiled in (default :data:`SELFTEST_FORMATS`).

    Returns
    -------
    GemvConfig
        ``lanes`` lanes, the smallest activation buffers that hold ``cols``
        (:meth:`GemvConfig.sized_for`).
    """
    return GemvConfig.sized_for(cols, lanes=lanes, formats=formats)


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

