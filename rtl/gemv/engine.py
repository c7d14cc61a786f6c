"""Quantized GEMV engine: ``y = W · x`` with Q4_0/Q4_1/Q8_0/INT4/INT8/F16/BCQ weights.

The arithmetic is defined in ``docs/arithmetic.md`` and mirrored exactly by
:mod:`lpaccel.sim.golden.gemv`; the weight stream layout is section 6 of that
page and is produced by :mod:`lpaccel.repack`.

The engine is a chain of blocks, each in its own module::

    job, activations ────────────────► JobLoader ─write─► ActivationBuffers
                             jobs, full │ ▲ release           │ row
                                        ▼ │                   ▼
    weights ─► WidthConverter ─beats─► BeatSequencer ─beat─► Lanes ─side, products─► BlockDot
                      ▲ flush (from BeatSequencer)                                      │ block
    results ◄─ output register ◄─ Fp32Packer ◄─row─ RowAccumulator ◄────────────────────┘

(The sequencer also gives the activation buffers the address of the row
each beat reads.) F16 beats take the same path on a quarter of the lanes
and leave BlockDot as exact block sums (``wide``); BCQ jobs' activation
blocks also fill :class:`~.lutgemm.LutGemm`'s tables, and their plane beats
go from the sequencer through LutGemm, whose block sums reach the
accumulator at BlockDot's depth.

- :class:`~.loader.JobLoader`: job checks and the ping-pong activation
  buffers (:class:`~.loader.ActivationBuffers`, with Q4_1 block sums).
- :class:`~lpaccel.rtl.stream.WidthConverter`: memory words to beats of
  ``4 * lanes`` bits.
- :class:`~.sequencer.BeatSequencer`: walks the job's scale and quant beats.
- :class:`~.lanes.Lanes`: per-lane weight decode and DSP multipliers.
- :class:`~.blockdot.BlockDot`: block dot products and scale decode.
- :class:`~.accumulator.RowAccumulator`: scale, shift, accumulate a row.
- :class:`~.fp32.Fp32Packer`: exactly rounded FP32.

Pipeline: every register after the sequencer advances on one enable,
``en = ~(results.valid & ~results.ready)``; the output register is the only
place the pipeline can stall. A quant beat's row result, when the beat is
its row's last, reaches ``results`` 20 cycles after the beat is taken (1
sequencer, 3 lanes, 4 block dot, 4 accumulator, 7 FP32, 1 output register;
see ``pipeline.py``). The activation load of a job overlaps the previous
job's compute (two buffers).
"""

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import GemvConfig
from ..stream import WidthConverter
from .accumulator import RowAccumulator
from .blockdot import BlockDot
from .fp32 import Fp32Packer
from .lanes import Lanes
from .loader import ActivationBuffers, GemvError, JobLayout, JobLoader
from .lutgemm import LutGemm
from .pipeline import ActivationLayout, EngineGeometry
from .sequencer import BeatSequencer

__all__ = ["GemvEngine", "GemvError"]


class GemvEngine(wiring.Component):
    """Quantized matrix-vector product engine.

    Computes ``y = W · x`` for a queue of jobs. Each job is a descriptor,
    then ``cols / 32`` activation blocks (16-bit block floating point), then
    the repacked weight stream (``docs/arithmetic.md`` section 6). Two
    activation buffers let the next job's activations load while the
    current job computes, so consecutive jobs stream back to back. One
    weight beat (``4 * lanes`` bits) is consumed per cycle whenever one is
    offered and the result stream is not stalled; one FP32 result per row
    leaves on ``results``, in row order.

    Parameters
    ----------
    config : GemvConfig
        Lanes, word width, buffer sizes and the formats compiled in.

    Attributes
    ----------
    job : In(stream.Signature(JobLayout))
        ``fmt`` (:class:`~lpaccel.rtl.config.WeightFormat`), ``rows``,
        ``cols``, ``group`` (elements per scale of INT4/INT8/BCQ; ignored
        otherwise), ``planes`` (BCQ: 1 to 4; 0 otherwise) and ``offset``
        (BCQ: a float16 offset per group). Accepted when an activation buffer is free; a job that
        breaks a rule is accepted and dropped (see :attr:`error`).
    activations : In(stream.Signature(ActivationLayout))
        One BFP16 block per beat: 32 int16 mantissas and an int8 exponent.
    weights : In(stream.Signature(unsigned(config.word_bits)))
        Repacked weight stream, one memory word per beat.
    results : Out(stream.Signature(ResultLayout))
        FP32 bits of one row's result; ``last`` marks a job's final row.
    busy : Out(1)
        High while any accepted job has results still to deliver.
    error : Out(GemvError)
        Sticky :class:`GemvError` code (the register map's ``gemv_error_e``,
        :mod:`lpaccel.rtl.regmap`) of the last rejected job. A rejected
        job consumes none of its activations or weights; jobs before it
        complete normally and the next valid job is accepted.
    error_clear : In(1)
        Clears ``error`` (a new error in the same cycle wins).

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`~lpaccel.rtl.config.GemvConfig`.
    """

    JobLayout = JobLayout
    ActivationLayout = ActivationLayout
    ResultLayout = data.StructLayout({
        "value": unsigned(32),
        "last": unsigned(1),
    })

    def __init__(self, config=None):
        if config is None:
            config = GemvConfig()
        if not isinstance(config, GemvConfig):
            raise TypeError(f"config must be a GemvConfig, not {config!r}")
        self.config = config
        super().__init__({
            "job": In(stream.Signature(self.JobLayout)),
            "activations": In(stream.Signature(self.ActivationLayout)),
            "weights": In(stream.Signature(unsigned(config.word_bits))),
            "results": Out(stream.Signature(self.ResultLayout)),
            "busy": Out(1),
            "error": Out(GemvError),
            "error_clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        geometry = EngineGeometry(self.config)
        m.submodules.loader = loader = JobLoader(geometry)
        m.submodules.buffers = buffers = ActivationBuffers(geometry)
        m.submodules.converter = converter = WidthConverter(self.config.word_bits,
                                                            geometry.beat_bits)
        m.submodules.sequencer = sequencer = BeatSequencer(geometry)
        m.submodules.lanes = lanes = Lanes(geometry)
        m.submodules.blockdot = blockdot = BlockDot(geometry)
        m.submodules.accumulator = accumulator = RowAccumulator(geometry)
        m.submodules.packer = packer = Fp32Packer()
        blocks = [sequencer, lanes, blockdot, accumulator, packer]
        if geometry.has_bcq:
            m.submodules.lutgemm = lutgemm = LutGemm(geometry)
            blocks.append(lutgemm)

        # The one pipeline enable: hold everything while a result waits.
        en = Signal()
        m.d.comb += en.eq(~(self.results.valid & ~self.results.ready))
        for block in blocks:
            m.d.comb += block.en.eq(en)

        # Jobs and activations into the loader and the buffers.
        wiring.connect(m, wiring.flipped(self.job), loader.job)
        wiring.connect(m, wiring.flipped(self.activations), loader.activations)
        m.d.comb += [
            buffers.write.eq(loader.write),
            loader.settling.eq(buffers.settling),
            self.error.eq(loader.error),
            loader.error_clear.eq(self.error_clear),
            loader.delivered.eq(self.results.valid & self.results.ready),
            self.busy.eq(loader.busy),
        ]

        # Weights through the width converter into the sequencer.
        wiring.connect(m, wiring.flipped(self.weights), converter.input)
        wiring.connect(m, converter.output, sequencer.beats)
        m.d.comb += [
            converter.flush.eq(sequencer.flush),
            sequencer.jobs.eq(loader.jobs),
            sequencer.full.eq(loader.full),
            loader.release.eq(sequencer.release),
            buffers.read_addr.eq(sequencer.read_addr),
            buffers.read_en.eq(sequencer.read_en),
        ]

        # The compute pipeline.
        m.d.comb += [
            lanes.beat.eq(sequencer.beat),
            lanes.row.eq(buffers.read_data),
            blockdot.side.eq(lanes.side),
            blockdot.products.eq(lanes.products),
            blockdot.f16_products.eq(lanes.f16_products),
            accumulator.block.eq(blockdot.block),
            accumulator.wide.eq(blockdot.wide),
            packer.input.valid.eq(accumulator.row.valid),
            packer.input.acc.eq(accumulator.row.acc),
            packer.input.tag.eq(accumulator.row.last),
        ]

        # BCQ: activation blocks into the LUT-GEMM tables, plane beats through
        # them; their block sums reach the accumulator where F16's would.
        if geometry.has_bcq:
            wiring.connect(m, loader.lut_load, lutgemm.load)
            m.d.comb += [loader.lut_settling.eq(lutgemm.settling),
                         lutgemm.beat.eq(sequencer.lut_beat)]
            with m.If(lutgemm.wide.valid):
                m.d.comb += accumulator.wide.eq(lutgemm.wide)

        # Output register: the only place the pipeline can stall.
        with m.If(en):
            m.d.sync += [
                self.results.valid.eq(packer.output.valid),
                self.results.payload.value.eq(packer.output.value),
                self.results.payload.last.eq(packer.output.tag),
            ]
        return m
