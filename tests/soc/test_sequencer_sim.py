"""The job sequencer with the real DMA, GEMV engine and on-chip SRAM (amaranth.sim).

A small, fast loop around :class:`JobSequencer`: jobs in, completion records
out, results read back from the SRAM and compared bit for bit with the golden
model. The full SoC (CSR bank, interconnect, LPDDR) is tested in Verilator by
``test_soc_*.py``; these tests pin the sequencer's own behaviour: order,
error codes, padding after a bus error, abort and the watchdog.
"""

# amaranth: UnusedElaboratable=no

import numpy as np
import pytest
from amaranth.hdl import Module, ResetInserter
from amaranth.lib import wiring
from amaranth.sim import Simulator

from lpaccel import quant, repack
from lpaccel.rtl.config import GemvConfig, WeightFormat
from lpaccel.rtl.dma import DmaConfig, DmaEngine
from lpaccel.rtl.gemv import GemvEngine
from lpaccel.rtl.mem.onchip import AxiMemoryConfig, AxiSram
from lpaccel.rtl.regmap import DmaError, GemvError
from lpaccel.rtl.soc.sequencer import JobSequencer, act_bytes, act_header_bytes
from lpaccel.rtl.soc_config import SocConfig
from lpaccel.sim.golden import gemv as golden

MEM = 1 << 16
# The planner's memory is twice the SRAM: the upper half answers DECERR (bus errors).
# Bursts of 16 words: result chunks of 32 rows, so a 70-row job writes three chunks.
CFG = SocConfig(gemv=GemvConfig(lanes=16, word_bits=64, max_cols=512, max_rows=256),
                memory="onchip", memory_size=2 * MEM, job_depth=4,
                dma=DmaConfig(data_width=64, len_width=32, max_outstanding=16,
                              max_burst_beats=16))
WB = CFG.gemv.word_bytes


def act_image(x):
    """The activation vector's bytes as the sequencer reads them (docs/soc.md)."""
    mant, exp = quant.quantize_activations(x)
    hdr = bytearray(act_header_bytes(len(x)))
    hdr[:len(exp)] = exp.astype(np.int8).tobytes()
    return bytes(hdr) + mant.astype("<i2").tobytes()


class Case:
    def __init__(self, rng, fmt, rows, cols, group=None, base=0):
        w = rng.normal(0, 0.02, (rows, cols)).astype(np.float32)
        self.x = rng.normal(0, 1, cols).astype(np.float32)
        self.w = quant.quantize_weights(w, fmt, group)
        self.stream = repack.repack_weights_bytes(self.w, CFG.gemv)
        self.expected = golden.gemv_golden(self.w, self.x).view(np.uint32)
        self.w_addr = base
        self.a_addr = base + len(self.stream)
        self.r_addr = self.a_addr + act_bytes(cols)
        self.end = self.r_addr + 4 * rows

    def job(self, tag, **change):
        return {"fmt": int(self.w.fmt), "group": self.w.group, "rows": self.w.rows,
                "cols": self.w.cols, "weight_addr": self.w_addr, "act_addr": self.a_addr,
                "result_addr": self.r_addr, "tag": tag, "irq": tag & 1, **change}

    def place(self, image):
        image[self.w_addr:self.w_addr + len(self.stream)] = self.stream
        a = act_image(self.x)
        image[self.a_addr:self.a_addr + len(a)] = a


def _align(n):
    return -(-n // 64) * 64


def cases(seed, specs):
    rng = np.random.default_rng(seed)
    out, base = [], 0
    for fmt, rows, cols, group in specs:
        c = Case(rng, fmt, rows, cols, group, base)
        base = _align(c.end)
        out.append(c)
    return out


class Top(wiring.Component):
    def __init__(self, image):
        super().__init__({})
        self.seq = JobSequencer(CFG)
        self.dma = DmaEngine(CFG.dma)
        self.engine = GemvEngine(CFG.gemv)
        words = [int.from_bytes(image[i:i + WB], "little") for i in range(0, MEM, WB)]
        self.sram = AxiSram(AxiMemoryConfig(size_bytes=MEM, data_width=CFG.gemv.word_bits,
                                            addr_width=CFG.dma.addr_width,
                                            id_width=CFG.dma.id_width), init=words)

    def elaborate(self, platform):
        m = Module()
        seq, dma, engine = self.seq, self.dma, self.engine
        m.submodules.seq = seq
        m.submodules.dma = ResetInserter(seq.local_reset)(dma)
        m.submodules.engine = ResetInserter(seq.local_reset)(engine)
        m.submodules.sram = self.sram
        wiring.connect(m, dma.bus, self.sram.axi)
        for a, b in (("mm2s_descriptors", "mm2s_descriptors"), ("s2mm_descriptors",
                                                                 "s2mm_descriptors")):
            wiring.connect(m, getattr(seq, a), getattr(dma, b))
        for name in ("mm2s_data", "mm2s_status", "s2mm_status"):
            wiring.connect(m, getattr(dma, name), getattr(seq, name))
        wiring.connect(m, seq.s2mm_data, dma.s2mm_data)
        wiring.connect(m, seq.engine_job, engine.job)
        wiring.connect(m, seq.engine_activations, engine.activations)
        wiring.connect(m, seq.engine_weights, engine.weights)
        wiring.connect(m, engine.results, seq.engine_results)
        m.d.comb += [dma.window_base.eq(0), dma.window_size.eq(2 * MEM),
                     dma.abort.eq(seq.dma_abort), seq.dma_idle.eq(dma.idle),
                     seq.engine_busy.eq(engine.busy)]
        return m


def run(jobs, image, *, abort_at=(), soft=False, watchdog=0, cycles=20000, seed=0):
    """Push ``jobs``; collect completions; return (completions, memory bytes)."""
    top = Top(image)
    seq = top.seq
    done = []
    rng = np.random.default_rng(seed)

    async def bench(ctx):
        ctx.set(seq.watchdog, watchdog)
        for job in jobs:
            ctx.set(seq.jobs.payload, job)
            ctx.set(seq.jobs.valid, 1)
            await ctx.tick().until(seq.jobs.ready)
        ctx.set(seq.jobs.valid, 0)

    async def control(ctx):
        cycle = 0
        for at in sorted(abort_at):
            while cycle < at:
                await ctx.tick()
                cycle += 1
            port = seq.soft_reset if soft else seq.abort
            ctx.set(port, 1)
            await ctx.tick()
            cycle += 1
            ctx.set(port, 0)

    async def collect(ctx):
        while True:
            ctx.set(seq.completions.ready, int(rng.random() < 0.7))
            await ctx.delay(1e-9)
            if ctx.get(seq.completions.valid) and ctx.get(seq.completions.ready):
                done.append(ctx.get(seq.completions.payload))
            await ctx.tick()

    async def wait(ctx):
        for _ in range(cycles):
            await ctx.tick()
            if len(done) == len(jobs) and not ctx.get(seq.status.busy):
                break
        await ctx.tick().repeat(4)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench, background=True)
    sim.add_testbench(control, background=True)
    sim.add_testbench(collect, background=True)
    state = {}

    async def finish(ctx):
        await wait(ctx)
        state["busy"] = ctx.get(seq.status.busy)
        state["active"] = ctx.get(seq.status.active)
        state["dma_idle"] = ctx.get(top.dma.idle)
        data = top.sram.storage.data
        state["mem"] = b"".join(ctx.get(data[i]).to_bytes(WB, "little")
                                for i in range(MEM // WB))

    sim.add_testbench(finish)
    sim.run()
    return done, state


def results(state, case):
    raw = state["mem"][case.r_addr:case.r_addr + 4 * case.w.rows]
    return np.frombuffer(raw, dtype="<u4")


F = WeightFormat
# The last job has 70 rows: three result chunks of up to 32 (result_chunk at 64 bits).
SPECS = [(F.Q4_0, 8, 128, None), (F.Q8_0, 5, 64, None), (F.INT4, 3, 256, 128),
         (F.Q4_1, 4, 96, None), (F.INT8, 6, 128, 64), (F.Q4_0, 70, 64, None)]


def test_chain_bit_exact_in_order():
    cs = cases(1, SPECS)
    image = bytearray(MEM)
    for c in cs:
        c.place(image)
    done, state = run([c.job(i) for i, c in enumerate(cs)], image)
    assert [(d.tag, d.error, d.dma, d.irq) for d in done] == \
        [(i, GemvError.NONE, DmaError.OK, i & 1) for i in range(len(cs))]
    for c in cs:
        np.testing.assert_array_equal(results(state, c), c.expected)
    assert not state["busy"] and state["active"] == 0 and state["dma_idle"]


def test_bad_jobs_complete_with_their_code_and_the_queue_goes_on():
    cs = cases(2, SPECS[:2])
    image = bytearray(MEM)
    for c in cs:
        c.place(image)
    jobs = [cs[0].job(0, fmt=7), cs[0].job(1, weight_addr=4), cs[0].job(2),
            cs[1].job(3, result_addr=2 * MEM - 8), cs[1].job(4)]
    done, state = run(jobs, image)
    assert [(d.tag, d.error) for d in done] == [
        (0, GemvError.BAD_FORMAT), (1, GemvError.MISALIGNED), (2, GemvError.NONE),
        (3, GemvError.BAD_ADDRESS), (4, GemvError.NONE)]
    for c in cs:
        np.testing.assert_array_equal(results(state, c), c.expected)


@pytest.mark.parametrize("abort_at", [5, 40, 150, 250, 330])
def test_abort_then_a_good_job(abort_at):
    cs = cases(3, [SPECS[5], *SPECS[:2]])
    image = bytearray(MEM)
    for c in cs:
        c.place(image)
    done, state = run([c.job(i) for i, c in enumerate(cs)], image, abort_at=[abort_at])
    # Every job has exactly one record, in order; the ones before the abort may be done.
    assert [d.tag for d in done] == [0, 1, 2]
    codes = [d.error for d in done]
    assert all(code in (GemvError.NONE, GemvError.ABORTED) for code in codes)
    assert codes == sorted(codes, key=lambda c: c != GemvError.NONE), codes
    for c, code in zip(cs, codes):
        if code == GemvError.NONE:
            np.testing.assert_array_equal(results(state, c), c.expected)
    assert not state["busy"] and state["dma_idle"]
    # And the SoC works again afterwards.
    image2 = bytearray(state["mem"])
    done2, state2 = run([cs[2].job(9)], image2)
    assert [(d.tag, d.error) for d in done2] == [(9, GemvError.NONE)]
    np.testing.assert_array_equal(results(state2, cs[2]), cs[2].expected)


def test_soft_reset_drops_everything():
    cs = cases(3, SPECS[:3])
    image = bytearray(MEM)
    for c in cs:
        c.place(image)
    done, state = run([c.job(i) for i, c in enumerate(cs)], image, abort_at=[60], soft=True,
                      cycles=3000)
    # Jobs finished before the soft reset have their records; the reset posts none.
    assert all(d.error == GemvError.NONE for d in done)
    assert [d.tag for d in done] == list(range(len(done))) and len(done) < len(cs)
    assert not state["busy"] and state["active"] == 0 and state["dma_idle"]


@pytest.mark.parametrize("which", ["weight_addr", "act_addr", "result_addr"])
def test_bus_error_pads_reports_and_goes_on(which):
    # A buffer past the SRAM's end (inside the window): DECERR. A read error is
    # padded with zero words, so the engine finishes the job and the next one is exact.
    cs = cases(4, SPECS[:2])
    image = bytearray(MEM)
    for c in cs:
        c.place(image)
    bad = cs[0].job(0, **{which: MEM + 0x1000})
    done, state = run([bad, cs[1].job(1)], image)
    code = GemvError.DMA_WRITE if which == "result_addr" else GemvError.DMA_READ
    assert [(d.error, d.dma) for d in done] == [(code, DmaError.DECERR),
                                                (GemvError.NONE, DmaError.OK)]
    np.testing.assert_array_equal(results(state, cs[1]), cs[1].expected)
    assert not state["busy"] and state["dma_idle"]


def test_watchdog_times_out_then_recovers():
    cs = cases(5, SPECS[:2])
    image = bytearray(MEM)
    for c in cs:
        c.place(image)
    # Two cycles without progress is less than the memory's latency: the first job
    # times out, the one behind it is aborted with it, and the queue goes on.
    done, state = run([cs[0].job(0), cs[1].job(1)], image, watchdog=2)
    assert [d.tag for d in done] == [0, 1]
    assert done[0].error == GemvError.TIMEOUT
    assert not state["busy"] and state["dma_idle"]
