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
from lpaccel.repack import repack_weights_bytes
from lpaccel.rtl.config import GROUP_SIZES, GemvConfig, WeightFormat
from lpaccel.rtl.gemv import GemvError
from lpaccel.sim.golden import gemv as golden
from lpaccel.sim.infra.harness import params
from lpaccel.sim.infra.streams import PAUSE_MODES
from lpaccel.sim.testbenches.gemv import GemvTB

P = {**params(), **json.loads(os.environ.get("GEMV_TEST", "{}"))}
CONFIG = GemvConfig(lanes=P["lanes"], word_bits=P["word_bits"], max_cols=P["max_cols"])
FORMATS = list(WeightFormat)


def make_job(rng, fmt, rows, cols, group=None, x=None):
    """Weights N(0, 0.02) quantized, activations N(0, 1) with a random
    overall scale so exponents move around; returns the job and its answer."""
    w = rng.normal(0.0, 0.02, (rows, cols)).astype(np.float32)
    if x is None:
        x = (rng.normal(0.0, 1.0, cols) * 2.0 ** rng.integers(-12, 8)).astype(np.float32)
    weights = quant.quantize_weights(w, fmt, group)
    mant, exp = quant.quantize_activations(x)
    expected = golden.gemv_golden_quantized(weights, mant, exp)[1].view(np.uint32)
    job = (weights, mant, exp, repack_weights_bytes(weights, CONFIG))
    return job, expected


def random_job(rng, max_cols):
    fmt = FORMATS[int(rng.integers(len(FORMATS)))]
    group = int(rng.choice(GROUP_SIZES)) if fmt.grouped else None
    unit = group or 32
    rows = int(rng.integers(1, 65))
    cols = unit * int(rng.integers(1, max_cols // unit + 1))
    return make_job(rng, fmt, rows, cols, group)


def check(jobs, expected, results):
    for (weights, *_), exp, got in zip(jobs, expected, results):
        bad = np.flatnonzero(got != exp)
        assert bad.size == 0, (
            f"{weights.fmt.name} group {weights.group} {weights.rows}x{weights.cols}: "
            f"{bad.size} rows differ from the golden model, first row {bad[0]}: got "
            f"{got[bad[0]]:#010x}, expected {exp[bad[0]]:#010x}")


@cocotb.test()
@cocotb.parametrize(idle=list(PAUSE_MODES), backpressure=list(PAUSE_MODES))
async def random_jobs(dut, idle, backpressure):
    """Random formats, groups and shapes (rows 1..64, K up to the test's
    limit), queued back to back, plus the edges: one row and one group, and
    K at the buffer size (without stalls, where it is cheapest)."""
    seed = P["seed"] + 17 * list(PAUSE_MODES).index(idle) + list(PAUSE_MODES).index(backpressure)
    rng = np.random.default_rng(seed)
    tb = GemvTB(dut, CONFIG.word_bits, idle=idle, backpressure=backpressure, seed=seed)
    await tb.reset()
    cases = [random_job(rng, P["max_cols_test"]) for _ in range(P["jobs"])]
    edge_fmt = FORMATS[seed % len(FORMATS)]
    edge_group = (32 if seed % 2 else 128) if edge_fmt.grouped else None
    cases.append(make_job(rng, edge_fmt, 1, edge_group or 32, edge_group))
    if idle == backpressure == "none":
        cases.append(make_job(rng, WeightFormat.Q4_0, 3, CONFIG.max_cols))
        cases.append(make_job(rng, WeightFormat.INT8, 2, CONFIG.max_cols, 128))
    jobs, expected = zip(*cases)
    results, timing = await tb.run_jobs(list(jobs))
    check(jobs, expected, results)
    tb.dut._log.info(f"{len(jobs)} jobs bit-exact, {timing}")
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
