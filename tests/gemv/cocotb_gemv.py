"""cocotb regression of the GEMV engine against the golden model.

Every combination of {none, periodic, random} pauses on the input streams
and back-pressure on the result stream; each queues several jobs of random
format, group and shape back to back (so they overlap in the engine's two
activation buffers), checks every result bit for bit, and ends with nothing
queued, in flight or pending.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from lpaccel import quant
from lpaccel.repack import layout_of, repack_weights_bytes
from lpaccel.rtl.config import GROUP_SIZES, GemvConfig, WeightFormat
from lpaccel.rtl.gemv import GemvError
from lpaccel.sim.golden import gemv as golden
from lpaccel.sim.infra import coverage
from lpaccel.sim.infra.harness import params
from lpaccel.sim.infra.streams import PAUSE_MODES
from lpaccel.sim.testbenches.gemv import GemvTB

P = {**params(), **json.loads(os.environ.get("GEMV_TEST", "{}"))}
CONFIG = GemvConfig(lanes=P["lanes"], word_bits=P["word_bits"], max_cols=P["max_cols"])
FORMATS = list(WeightFormat)
# Functional coverage of the jobs run (docs/verification.md, "Functional
# coverage"): one file per simulation process, merged by
# ``python -m lpaccel.sim.infra.coverage merge build/coverage``.
COV = coverage.gemv_coverage(CONFIG)
COV_NAME = f"gemv-{CONFIG.lanes}l{CONFIG.word_bits}b{CONFIG.max_cols}-{os.getpid()}"


def cover(log, jobs, idle="none", backpressure="none"):
    """Sample ``jobs`` into the coverage, rewrite this run's file, log the summary
    (``log=None``: no summary, for the soak's many batches)."""
    for weights, *_ in jobs:
        coverage.gemv_sample(COV, CONFIG, weights, idle, backpressure)
    COV.write(COV_NAME)
    if log is not None:
        log.info(COV.summary())


def random_bcq(rng, rows, cols, group, planes, offset):
    """BCQ weights with random plane bits and random float16 scales and offsets
    (every finite float16 exponent, both signs): the datapath's whole range."""
    def f16(shape):
        h = rng.integers(0, 0x7C00, shape).astype(np.uint16)
        return h | (rng.integers(0, 2, shape).astype(np.uint16) << 15)
    bits = rng.integers(0, 2, (planes, rows, cols)).astype(np.uint8)
    alpha = f16((planes, rows, cols // group))
    return quant.QuantizedWeights.from_bcq(bits, alpha, group,
                                           f16((rows, cols // group)) if offset else None)


def make_job(rng, fmt, rows, cols, group=None, x=None, planes=None, offset=False):
    """Weights N(0, 0.02) quantized (BCQ: random planes and scales), activations
    N(0, 1) with a random overall scale so exponents move around; returns the
    job and its answer."""
    w = rng.normal(0.0, 0.02, (rows, cols)).astype(np.float32)
    if x is None:
        x = (rng.normal(0.0, 1.0, cols) * 2.0 ** rng.integers(-12, 8)).astype(np.float32)
    if fmt == WeightFormat.BCQ:
        weights = random_bcq(rng, rows, cols, group, planes, offset)
    else:
        weights = quant.quantize_weights(w, fmt, group)
    mant, exp = quant.quantize_activations(x)
    expected = golden.gemv_golden_quantized(weights, mant, exp)[1].view(np.uint32)
    job = (weights, mant, exp, repack_weights_bytes(weights, CONFIG))
    return job, expected


def random_job(rng, max_cols, fmt=None, max_rows=64):
    """A job of random shape and group (rows up to ``max_rows``, K up to
    ``max_cols``); of format ``fmt``, default a random one."""
    if fmt is None:
        fmt = FORMATS[int(rng.integers(len(FORMATS)))]
    group = int(rng.choice(GROUP_SIZES)) if fmt.grouped else None
    unit = group or 32
    rows = int(rng.integers(1, max_rows + 1))
    cols = unit * int(rng.integers(1, max_cols // unit + 1))
    if fmt == WeightFormat.BCQ:
        return make_job(rng, fmt, rows, cols, group, planes=int(rng.integers(1, 5)),
                        offset=bool(rng.integers(2)))
    return make_job(rng, fmt, rows, cols, group)


def check(jobs, expected, results):
    for (weights, *_), exp, got in zip(jobs, expected, results):
        bad = np.flatnonzero(got != exp)
        assert bad.size == 0, (
            f"{weights.fmt.name} group {weights.group} planes {weights.planes} "
            f"{weights.rows}x{weights.cols}: "
            f"{bad.size} rows differ from the golden model, first row {bad[0]}: got "
            f"{got[bad[0]]:#010x}, expected {exp[bad[0]]:#010x}")


@cocotb.test()
@cocotb.parametrize(idle=list(PAUSE_MODES), backpressure=list(PAUSE_MODES))
async def random_jobs(dut, idle, backpressure):
    """Random groups and shapes (rows 1..64, K up to the test's limit), every
    format at least once in a random order, queued back to back, plus the
    edges: one row and one group; one row with K at the buffer size (a
    different format in each pause mix, so every format meets the limit);
    and without stalls, where they are cheapest, several rows at the limit."""
    seed = P["seed"] + 17 * list(PAUSE_MODES).index(idle) + list(PAUSE_MODES).index(backpressure)
    rng = np.random.default_rng(seed)
    tb = GemvTB(dut, CONFIG.word_bits, idle=idle, backpressure=backpressure, seed=seed)
    await tb.reset()
    # Every format in every pause mix (the format x idle x back-pressure cross).
    order = [FORMATS[i] for i in rng.permutation(len(FORMATS))]
    cases = [random_job(rng, P["max_cols_test"], order[i % len(order)])
             for i in range(P["jobs"])]
    # The formats the random jobs left out, as short jobs (a tile or less,
    # K up to 256): the cross needs the format under these pauses, not size.
    cases += [random_job(rng, min(256, P["max_cols_test"]), fmt, max_rows=CONFIG.lanes)
              for fmt in order[P["jobs"]:]]
    mix = 3 * list(PAUSE_MODES).index(idle) + list(PAUSE_MODES).index(backpressure)
    full_fmt = FORMATS[mix % len(FORMATS)]
    cases.append(make_job(rng, full_fmt, 1, CONFIG.max_cols, 128 if full_fmt.grouped else None,
                          planes=2 if full_fmt == WeightFormat.BCQ else None))
    edge_fmt = FORMATS[seed % len(FORMATS)]
    edge_group = (32 if seed % 2 else 128) if edge_fmt.grouped else None
    cases.append(make_job(rng, edge_fmt, 1, edge_group or 32, edge_group,
                          planes=4 if edge_fmt == WeightFormat.BCQ else None, offset=True))
    if idle == backpressure == "none":
        cases.append(make_job(rng, WeightFormat.Q4_0, 3, CONFIG.max_cols))
        cases.append(make_job(rng, WeightFormat.INT8, 2, CONFIG.max_cols, 128))
    jobs, expected = zip(*cases)
    cover(dut._log, jobs, idle, backpressure)
    results, timing = await tb.run_jobs(list(jobs))
    check(jobs, expected, results)
    tb.dut._log.info(f"{len(jobs)} jobs bit-exact, {timing}")
    # Soak (slow suite): more batches of random jobs until the clock has run
    # ``soak_cycles`` cycles under these pauses on every port.
    count = len(jobs)
    while tb.cycle < P.get("soak_cycles", 0):
        jobs, expected = zip(*[random_job(rng, P["max_cols_test"]) for _ in range(P["jobs"])])
        cover(None, jobs, idle, backpressure)
        results, _ = await tb.run_jobs(list(jobs))
        check(jobs, expected, results)
        count += len(jobs)
    if P.get("soak_cycles"):
        tb.dut._log.info(f"SOAK {count} jobs bit-exact in {tb.cycle} cycles")
        tb.dut._log.info(COV.summary())
    await tb.check_idle()


@cocotb.test()
async def extreme_values(dut):
    """Scale edge cases on every format (zero, subnormal, negative and
    largest float16 scales, Q4_1 minimums), codes and zero points at both
    ends, mantissas at +-32767, exponents -128 and above the contract."""
    rng = np.random.default_rng(P["seed"] + 99)
    tb = GemvTB(dut, CONFIG.word_bits)
    await tb.reset()
    rows, cols = 6, 256
    mant = rng.integers(-32767, 32768, cols).astype(np.int16)
    mant[:32], mant[32:64] = 32767, -32767
    exp = np.array([-128, 1, 20, 127, -3, 0, -128, 5], dtype=np.int8)
    jobs, expected = [], []
    for fmt in FORMATS:
        if fmt.wide:
            continue                    # wide_extreme_values
        for group in (GROUP_SIZES if fmt.grouped else (None,)):
            w = quant.quantize_weights(rng.normal(0, 0.05, (rows, cols)).astype(np.float32),
                                        fmt, group)
            scale_bits, q = w.scale_bits.copy(), w.q.copy()
            zero, min_bits = w.zero.copy(), w.min_bits.copy()
            for r, h in enumerate([0x0000, 0x0001, 0x03FF, 0x8400, 0x7BFF, 0xFBFF]):
                scale_bits[r, 0] = h
            lo, hi = (-128, 127) if fmt == WeightFormat.Q8_0 else (0, (1 << fmt.qbits) - 1)
            q[-1, :64], q[-2, :64] = lo, hi
            if fmt.grouped:
                zero[0], zero[1] = hi, 0
            if fmt == WeightFormat.Q4_1:
                min_bits[:, 0] = [0x0001, 0x7BFF, 0xFBFF, 0x0000, 0x8001, 0x3C00]
            w = quant.QuantizedWeights(fmt, rows, cols, w.group, q, scale_bits, zero, min_bits)
            jobs.append((w, mant, exp, repack_weights_bytes(w, CONFIG)))
            expected.append(golden.gemv_golden_quantized(w, mant, exp)[1].view(np.uint32))
    cover(dut._log, jobs)
    results, _ = await tb.run_jobs(jobs)
    check(jobs, expected, results)
    await tb.check_idle()


@cocotb.test()
async def rejected_jobs(dut):
    """A bad job sets a sticky error, consumes nothing, and the next job runs,
    also when the bad job arrives while a good one is computing."""
    rng = np.random.default_rng(P["seed"])
    tb = GemvTB(dut, CONFIG.word_bits)
    await tb.reset()
    bad = [
        ({"fmt": 7, "rows": 1, "cols": 32, "group": 0}, GemvError.BAD_FORMAT),
        ({"fmt": 0, "rows": 1, "cols": 48, "group": 0}, GemvError.BAD_COLS),
        ({"fmt": 0, "rows": 1, "cols": 0, "group": 0}, GemvError.BAD_COLS),
        ({"fmt": 3, "rows": 1, "cols": 96, "group": 64}, GemvError.BAD_COLS),
        ({"fmt": 4, "rows": 1, "cols": 128, "group": 48}, GemvError.BAD_GROUP),
        ({"fmt": 1, "rows": 1, "cols": CONFIG.max_cols + 32, "group": 0},
         GemvError.COLS_TOO_LARGE),
        ({"fmt": 2, "rows": 0, "cols": 32, "group": 0}, GemvError.BAD_ROWS),
        ({"fmt": 6, "rows": 1, "cols": 64, "group": 32, "planes": 0}, GemvError.BAD_PLANES),
        ({"fmt": 6, "rows": 1, "cols": 64, "group": 32, "planes": 5}, GemvError.BAD_PLANES),
        ({"fmt": 5, "rows": 1, "cols": 64, "group": 0, "planes": 2}, GemvError.BAD_PLANES),
    ]
    for job, code in bad:
        tb.job.send(job)
        await tb.job.wait_idle()
        await ClockCycles(dut.clk, 2)
        await ReadOnly()
        assert int(dut.error.value) == code, \
            f"job {job}: error {int(dut.error.value)}, expected {code!r}"
        assert int(dut.busy.value) == 0, f"job {job} was not dropped"
        await RisingEdge(dut.clk)
        dut.error_clear.value = 1
        await RisingEdge(dut.clk)
        dut.error_clear.value = 0
        await ReadOnly()
        assert int(dut.error.value) == 0, "error_clear did not clear the error"
    # A bad descriptor between two good jobs: both good jobs complete.
    (a, ea), (b, eb) = make_job(rng, WeightFormat.Q4_1, 5, 96), \
        make_job(rng, WeightFormat.INT4, 4, 128, 64)
    await RisingEdge(dut.clk)
    tb.submit(*a)
    tb.job.send(bad[0][0])
    tb.submit(*b)
    results = [await tb.collect(5), await tb.collect(4)]
    check([a, b], [ea, eb], results)
    assert int(dut.error.value) == GemvError.BAD_FORMAT
    await tb.check_idle()


@cocotb.test()
async def wide_extreme_values(dut):
    """F16 and BCQ edge cases: zero, subnormal, largest and negative weights and
    scales, every plane count with and without offset, mantissas at +-32767,
    exponents from -128 to 1 (the largest the host produces: the block term's
    shift is at its top, 9), K = 96 (not a multiple of the beat at 32+ lanes)."""
    rng = np.random.default_rng(P["seed"] + 7)
    tb = GemvTB(dut, CONFIG.word_bits)
    await tb.reset()
    rows = 6
    mant = rng.integers(-32767, 32768, 128).astype(np.int16)
    mant[:32], mant[32:64] = 32767, -32767
    exp = np.array([1, -128, 0, -5], dtype=np.int8)
    edges = np.array([0x0000, 0x8000, 0x0001, 0x03FF, 0x7BFF, 0xFBFF], dtype=np.uint16)
    f16 = rng.integers(0, 0x7C00, (rows, 96)).astype(np.uint16) | 0x8000 * (
        rng.integers(0, 2, (rows, 96)).astype(np.uint16))
    f16[:, :6] = edges
    f16[0, :], f16[1, :] = 0x7BFF, 0xFBFF
    weights = [quant.QuantizedWeights.from_f16(f16)]
    for planes in (1, 2, 3, 4):
        for group, offset in ((32, True), (32, False), (64, True), (128, False)):
            w = random_bcq(rng, rows, 96 if group == 32 else 128, group, planes, offset)
            alpha = w.alpha_bits.copy()
            alpha[:, 0, 0], alpha[:, 1, 0] = 0x7BFF, 0xFBFF
            alpha[:, 2, 0], alpha[:, 3, 0] = 0x0001, 0x0000
            bits = w.plane_bits.copy()
            bits[:, 0, :], bits[:, 1, :] = 1, 0
            weights.append(quant.QuantizedWeights.from_bcq(bits, alpha, group, w.offset_bits))
    jobs, expected = [], []
    for w in weights:
        m, e = mant[:w.cols], exp[:w.cols // 32]
        jobs.append((w, m, e, repack_weights_bytes(w, CONFIG)))
        expected.append(golden.gemv_golden_quantized(w, m, e)[1].view(np.uint32))
    cover(dut._log, jobs)
    results, _ = await tb.run_jobs(jobs)
    check(jobs, expected, results)
    await tb.check_idle()


@cocotb.test()
async def wide_throughput(dut):
    """F16 and BCQ stream at one memory word per cycle (one beat per cycle when
    the word is wider), jobs back to back, with legacy jobs between them: the
    weight stream takes exactly the ideal cycles, and the last result follows
    the last word after the engine's fixed latency."""
    rng = np.random.default_rng(P["seed"] + 5)
    tb = GemvTB(dut, CONFIG.word_bits)
    await tb.reset()
    k = min(256, CONFIG.max_cols)
    cases = [make_job(rng, WeightFormat.F16, 24, k),
             make_job(rng, WeightFormat.BCQ, 40, k, 64, planes=3, offset=True),
             make_job(rng, WeightFormat.Q4_0, 24, k),
             make_job(rng, WeightFormat.BCQ, 48, k, 128, planes=1),
             make_job(rng, WeightFormat.F16, 16, 96)]
    jobs, expected = zip(*cases)
    cover(dut._log, jobs)
    results, timing = await tb.run_jobs(list(jobs))
    check(jobs, expected, results)
    ideal = sum(layout_of(w, CONFIG).ideal_cycles for w, *_ in jobs)
    if CONFIG.word_bits == CONFIG.beat_bits:
        assert timing["stream_cycles"] == ideal, f"{timing}, ideal stream {ideal} cycles"
    else:
        # The width converter takes the first beat's words (or the first word)
        # before the first job's activations are in: that wait, at most the
        # first job's load, is the only slack (test_gemv_sim checks the gaps).
        slack = jobs[0][0].cols // 32 + 4
        assert ideal - CONFIG.word_bits // CONFIG.beat_bits < timing["stream_cycles"] \
            <= ideal + slack, f"{timing}, ideal stream {ideal} cycles"
    if CONFIG.word_bits <= CONFIG.beat_bits:
        # The last word completes the last beat, whose row result leaves 20
        # cycles after the sequencer takes it, as for every format (engine.py);
        # a gathered beat reaches the sequencer one cycle after its last word.
        assert timing["latency_cycles"] == 20 + (CONFIG.word_bits < CONFIG.beat_bits), timing
    tb.dut._log.info(f"F16/BCQ back to back at the ideal rate: {timing}")
    await tb.check_idle()
