"""Fast amaranth.sim checks of the GEMV engine on tiny cases."""

import json
import random

import numpy as np
import pytest
from amaranth.hdl import Shape, unsigned
from amaranth.sim import Simulator

from lpaccel import quant
from lpaccel.repack import stream_words
from lpaccel.rtl.config import GemvConfig, WeightFormat
from lpaccel.rtl.gemv import GemvEngine, GemvError
from lpaccel.sim.golden import gemv as golden

ALL = [(WeightFormat.Q4_0, None), (WeightFormat.Q4_1, None), (WeightFormat.Q8_0, None),
       (WeightFormat.INT4, 32), (WeightFormat.INT4, 64), (WeightFormat.INT8, 128),
       (WeightFormat.INT8, 32)]


def set_job(ctx, dut, desc):
    """Drive a descriptor field by field: ``fmt`` may be a code no WeightFormat has."""
    for name, value in desc.items():
        ctx.set(getattr(dut.job.payload, name), value)


def simulate(config, jobs, *, stall=0.0, seed=0, raw_jobs=(), streams=None):
    """Run ``jobs`` through the engine with every stream driven concurrently.

    ``jobs`` are ``(weights, x)`` pairs: QuantizedWeights and a float vector
    or ``(mant, exp)``. Jobs are queued back to back (the next job's
    descriptor and activations are offered while the current one computes).
    ``raw_jobs`` are extra descriptors (dicts) sent first, e.g. bad ones.
    ``streams`` maps a job's index to the weight words sent for it instead of
    its own (e.g. a wider matrix's, whose extra columns fill the padding).
    Returns the result bits per job and the cycle of every weight handshake.
    """
    dut = GemvEngine(config)
    rng = random.Random(seed)
    prepared = []
    for k, (w, x) in enumerate(jobs):
        mant, exp = x if isinstance(x, tuple) else quant.quantize_activations(x)
        words = (streams or {}).get(k)
        prepared.append((w, mant, exp, stream_words(w, config) if words is None else words))
    total_rows = sum(w.rows for w, *_ in prepared)
    results, taken_cycles = [], []

    async def idle(ctx):
        while stall and rng.random() < stall:
            await ctx.tick()

    async def send_jobs(ctx):
        for desc in raw_jobs:
            set_job(ctx, dut, desc)
            ctx.set(dut.job.valid, 1)
            await ctx.tick().until(dut.job.ready)
            ctx.set(dut.job.valid, 0)
        for w, mant, exp, _ in prepared:
            await idle(ctx)
            ctx.set(dut.job.payload, {"fmt": int(w.fmt), "rows": w.rows, "cols": w.cols,
                                      "group": w.group, "planes": getattr(w, "planes", 0),
                                      "offset": int(getattr(w, "offset", False))})
            ctx.set(dut.job.valid, 1)
            await ctx.tick().until(dut.job.ready)
            ctx.set(dut.job.valid, 0)
            for b in range(w.cols // 32):
                await idle(ctx)
                ctx.set(dut.activations.payload.exp, int(exp[b]))
                for i in range(32):
                    ctx.set(dut.activations.payload.mant[i], int(mant[32 * b + i]))
                ctx.set(dut.activations.valid, 1)
                await ctx.tick().until(dut.activations.ready)
                ctx.set(dut.activations.valid, 0)

    async def send_weights(ctx):
        cycle = 0
        for *_, words in prepared:
            for word in words:
                ctx.set(dut.weights.payload, word)
                ctx.set(dut.weights.valid, 1)
                while True:
                    _, _, ready = await ctx.tick().sample(dut.weights.ready)
                    cycle += 1
                    if ready:
                        break
                taken_cycles.append(cycle)
                ctx.set(dut.weights.valid, 0)
                await idle(ctx)

    async def collect(ctx):
        got = []
        budget = 200 * (sum(len(p[3]) for p in prepared) + total_rows + 100)
        while len(got) < total_rows:
            budget -= 1
            assert budget > 0, "engine stopped producing results"
            ready = not (stall and rng.random() < stall)
            ctx.set(dut.results.ready, ready)
            _, _, valid, value, last = await ctx.tick().sample(
                dut.results.valid, dut.results.payload.value, dut.results.payload.last)
            if valid and ready:
                got.append((value, last))
        ctx.set(dut.results.ready, 1)
        for _ in range(30):
            _, _, valid = await ctx.tick().sample(dut.results.valid)
            assert not valid, "a result nobody expected"
        assert ctx.get(dut.busy) == 0, "engine busy after its last result"
        k = 0
        for w, *_ in prepared:
            chunk = got[k:k + w.rows]
            k += w.rows
            assert [last for _, last in chunk] == [0] * (w.rows - 1) + [1]
            results.append(np.array([v for v, _ in chunk], dtype=np.uint32))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(send_jobs)
    sim.add_testbench(send_weights)
    sim.add_testbench(collect)
    sim.run()
    return results, taken_cycles, dut


def random_case(rng, fmt, group, rows, cols):
    w = rng.normal(0, 0.05, (rows, cols)).astype(np.float32)
    x = rng.normal(0, 1, cols).astype(np.float32)
    return quant.quantize_weights(w, fmt, group), x


def check(jobs, results):
    assert len(results) == len(jobs)
    for (w, x), got in zip(jobs, results):
        mant, exp = x if isinstance(x, tuple) else quant.quantize_activations(x)
        _, expected = golden.gemv_golden_quantized(w, mant, exp)
        np.testing.assert_array_equal(got, expected.view(np.uint32),
                                      err_msg=f"{w.fmt.name} group {w.group}")


@pytest.mark.parametrize("lanes,word_bits", [(8, 64), (16, 64), (16, 128), (64, 64),
                                             (32, 256)])
def test_every_format_back_to_back(lanes, word_bits):
    rng = np.random.default_rng(lanes * word_bits)
    config = GemvConfig(lanes=lanes, word_bits=word_bits, max_cols=256)
    jobs = [random_case(rng, fmt, group, int(rng.integers(1, 4)), 128 if group != 128
                        else 256) for fmt, group in ALL]
    results, _, _ = simulate(config, jobs)
    check(jobs, results)


def test_random_stalls():
    rng = np.random.default_rng(3)
    config = GemvConfig(lanes=16, word_bits=128, max_cols=256)
    jobs = [random_case(rng, fmt, group, 2, 128) for fmt, group in ALL if group != 128]
    results, _, _ = simulate(config, jobs, stall=0.3, seed=5)
    check(jobs, results)


def test_double_buffering_leaves_no_gap():
    """With everything offered, consecutive jobs' weights stream without a
    single idle cycle: the next activations load while the current job
    computes, across format and group changes."""
    rng = np.random.default_rng(11)
    config = GemvConfig(lanes=16, word_bits=64, max_cols=256)
    jobs = [random_case(rng, f, g, 3, 256) for f, g in
            [(WeightFormat.Q4_0, None), (WeightFormat.INT8, 64), (WeightFormat.Q4_1, None),
             (WeightFormat.INT4, 128)]]
    results, cycles, _ = simulate(config, jobs)
    check(jobs, results)
    first_job_words = len(stream_words(jobs[0][0], config))
    steady = cycles[first_job_words - 1:]
    gaps = [b - a for a, b in zip(steady, steady[1:]) if b - a != 1]
    assert gaps == [], f"idle cycles between weight words after the first job: {gaps}"


@pytest.mark.parametrize("lanes,word_bits,stall", [(8, 64, 0.0), (16, 256, 0.3), (32, 128, 0.0),
                                                   (128, 512, 0.2)])
def test_f16_mixed_with_legacy(lanes, word_bits, stall):
    """F16 jobs (K not a multiple of the beat's columns at 128 lanes) between legacy ones."""
    rng = np.random.default_rng(lanes + word_bits)
    config = GemvConfig(lanes=lanes, word_bits=word_bits, max_cols=256)
    jobs = [random_case(rng, WeightFormat.F16, None, 3, 96),
            random_case(rng, WeightFormat.Q4_1, None, 2, 64),
            random_case(rng, WeightFormat.F16, None, 2, 256),
            random_case(rng, WeightFormat.INT8, 32, 1, 32)]
    results, _, _ = simulate(config, jobs, stall=stall, seed=lanes)
    check(jobs, results)


def random_bcq_case(rng, rows, cols, planes, group, offset):
    """BCQ weights with random plane bits and float16 scales (both signs, every
    finite exponent) and N(0, 1) activations."""
    def f16(shape):
        h = rng.integers(0, 0x7C00, shape).astype(np.uint16)
        return h | (rng.integers(0, 2, shape).astype(np.uint16) << 15)
    bits = rng.integers(0, 2, (planes, rows, cols)).astype(np.uint8)
    w = quant.QuantizedWeights.from_bcq(bits, f16((planes, rows, cols // group)), group,
                                        f16((rows, cols // group)) if offset else None)
    return w, rng.normal(0, 1, cols).astype(np.float32)


@pytest.mark.parametrize("lanes,word_bits,stall", [(8, 64, 0.0), (16, 256, 0.3), (32, 128, 0.0),
                                                   (64, 64, 0.2), (128, 512, 0.0)])
def test_bcq_mixed_with_legacy(lanes, word_bits, stall):
    """BCQ jobs of 1 to 4 planes, every group, with and without offset, short
    chunks (K = 96) and tiles past the row's end, between legacy and F16 jobs."""
    rng = np.random.default_rng(lanes * 7 + word_bits)
    config = GemvConfig(lanes=lanes, word_bits=word_bits, max_cols=512)
    jobs = [random_bcq_case(rng, 2, 96, 1, 32, False),
            random_bcq_case(rng, 3, 256, 2, 64, True),
            random_case(rng, WeightFormat.Q4_0, None, 2, 64),
            random_bcq_case(rng, 2, 512, 4, 128, True),
            random_case(rng, WeightFormat.F16, None, 1, 96),
            random_bcq_case(rng, 1, 384, 3, 128, False)]
    results, _, _ = simulate(config, jobs, stall=stall, seed=lanes)
    check(jobs, results)


@pytest.mark.parametrize("lanes,word_bits,group,offset", [(32, 128, 32, True),
                                                          (32, 128, 64, False),
                                                          (16, 64, 32, True)])
def test_bcq_padding_never_contributes(lanes, word_bits, group, offset):
    """Non-zero bytes in a BCQ row's padding (the plane bits and scale slots
    past its last column) change nothing.

    The host pads with zeros, which would hide a wrong inside-the-row flag:
    here the stream is that of a matrix 2 tiles wide while the job says its
    rows end one group into the second tile, so the padding holds the wider
    matrix's random planes, scales and offsets.
    """
    rng = np.random.default_rng(lanes + group)
    config = GemvConfig(lanes=lanes, word_bits=word_bits, max_cols=512)
    tile = 4 * lanes                       # columns of one plane beat
    wide, x = random_bcq_case(rng, 3, 2 * tile, 2, group, offset)
    cols = tile + group                    # the second tile: one group inside, the rest padding
    narrow = quant.QuantizedWeights.from_bcq(
        wide.plane_bits[:, :, :cols], wide.alpha_bits[:, :, :cols // group], group,
        wide.offset_bits[:, :cols // group] if offset else None)
    words = stream_words(wide, config)
    assert len(words) == len(stream_words(narrow, config)), "not the same stream layout"
    # Two full-width jobs first leave non-zero activations past the narrow
    # job's columns in both buffers (zeros there would hide padding too).
    x2 = rng.normal(0, 1, 2 * tile).astype(np.float32)
    jobs = [(wide, x), (wide, x2), (narrow, x[:cols] * 2)]
    results, _, _ = simulate(config, jobs, stall=0.1, seed=lanes, streams={2: words})
    check(jobs, results)


@pytest.mark.parametrize("formats,lut_width", [(("f16",), 4), (("bcq",), 8),
                                               (("bcq", "q4_1"), 8), (("f16", "int8"), 4)])
def test_wide_formats_alone(formats, lut_width):
    """Engines built with F16 or BCQ alone (or beside one legacy format), and
    BCQ's 8-wide lookup tables."""
    rng = np.random.default_rng(len(formats) + lut_width)
    config = GemvConfig(lanes=16, word_bits=64, max_cols=256, formats=formats,
                        lut_width=lut_width)
    jobs = []
    if "f16" in formats:
        jobs += [random_case(rng, WeightFormat.F16, None, 2, 96),
                 random_case(rng, WeightFormat.F16, None, 1, 256)]
    if "bcq" in formats:
        jobs += [random_bcq_case(rng, 2, 96, 2, 32, True),
                 random_bcq_case(rng, 2, 256, 4, 128, False)]
    if "int8" in formats:
        jobs.insert(1, random_case(rng, WeightFormat.INT8, 64, 2, 128))
    if "q4_1" in formats:
        jobs.insert(1, random_case(rng, WeightFormat.Q4_1, None, 2, 64))
    results, _, _ = simulate(config, jobs, stall=0.2, seed=3)
    check(jobs, results)


@pytest.mark.parametrize("lanes,word_bits", [(16, 64), (32, 64), (16, 256)])
def test_wide_formats_leave_no_gap(lanes, word_bits):
    """F16 and BCQ jobs between legacy ones stream without an idle cycle once
    the first job's activations are in, also when words are gathered or split
    (BCQ's activations load 8x slower, behind the previous job's compute)."""
    rng = np.random.default_rng(lanes + word_bits)
    config = GemvConfig(lanes=lanes, word_bits=word_bits, max_cols=256)
    jobs = [random_case(rng, WeightFormat.F16, None, 8, 256),
            random_bcq_case(rng, 24, 256, 3, 64, True),
            random_case(rng, WeightFormat.Q4_0, None, 8, 256),
            random_bcq_case(rng, 24, 256, 1, 128, False),
            random_case(rng, WeightFormat.F16, None, 4, 96)]
    results, cycles, _ = simulate(config, jobs)
    check(jobs, results)
    # The converter takes the first words (up to a beat and a word) before
    # the first job is loaded: only the wait for that first load may show.
    step = max(1, word_bits // config.beat_bits)      # cycles per word when split
    gaps = [(i, b - a) for i, (a, b) in enumerate(zip(cycles, cycles[1:])) if b - a != step]
    assert len(gaps) <= 1 and all(i <= 2 for i, _ in gaps), gaps


@pytest.mark.parametrize("desc,code", [
    ({"fmt": 0, "rows": 1, "cols": 512, "group": 0}, GemvError.COLS_TOO_LARGE),
    ({"fmt": 0, "rows": 1, "cols": 0, "group": 0}, GemvError.BAD_COLS),
    ({"fmt": 1, "rows": 1, "cols": 48, "group": 0}, GemvError.BAD_COLS),
    ({"fmt": 3, "rows": 1, "cols": 96, "group": 64}, GemvError.BAD_COLS),
    ({"fmt": 4, "rows": 1, "cols": 128, "group": 16}, GemvError.BAD_GROUP),
    ({"fmt": 7, "rows": 1, "cols": 64, "group": 0}, GemvError.BAD_FORMAT),
    ({"fmt": 2, "rows": 0, "cols": 64, "group": 0}, GemvError.BAD_ROWS),
    ({"fmt": 6, "rows": 1, "cols": 64, "group": 32, "planes": 0}, GemvError.BAD_PLANES),
    ({"fmt": 6, "rows": 1, "cols": 48, "group": 32, "planes": 5}, GemvError.BAD_PLANES),
    ({"fmt": 6, "rows": 1, "cols": 64, "group": 16, "planes": 2}, GemvError.BAD_GROUP),
    ({"fmt": 5, "rows": 1, "cols": 64, "group": 0, "planes": 1}, GemvError.BAD_PLANES),
    ({"fmt": 0, "rows": 1, "cols": 48, "group": 0, "planes": 2}, GemvError.BAD_PLANES),
])
def test_rejected_job_sets_error_and_next_job_runs(desc, code):
    rng = np.random.default_rng(1)
    config = GemvConfig(lanes=16, max_cols=256)
    jobs = [random_case(rng, WeightFormat.Q4_1, None, 2, 64)]
    errors = []
    results, _, _ = simulate(config, jobs, raw_jobs=[desc])
    check(jobs, results)

    # And the code itself, read while the bad job is the only thing sent.
    dut = GemvEngine(config)

    async def testbench(ctx):
        set_job(ctx, dut, desc)
        ctx.set(dut.job.valid, 1)
        await ctx.tick()
        ctx.set(dut.job.valid, 0)
        await ctx.tick()
        errors.append(ctx.get(dut.error))
        assert ctx.get(dut.busy) == 0
        assert ctx.get(dut.activations.ready) == 0
        ctx.set(dut.error_clear, 1)
        await ctx.tick()
        errors.append(ctx.get(dut.error))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert errors == [code, GemvError.NONE]


def test_format_not_compiled_in_is_rejected():
    config = GemvConfig(lanes=16, max_cols=128, formats=("q4_0",))
    dut = GemvEngine(config)
    seen = []

    async def testbench(ctx):
        ctx.set(dut.job.payload, {"fmt": int(WeightFormat.Q8_0), "rows": 1, "cols": 32})
        ctx.set(dut.job.valid, 1)
        await ctx.tick()
        ctx.set(dut.job.valid, 0)
        await ctx.tick()
        seen.append(ctx.get(dut.error))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert seen == [GemvError.BAD_FORMAT]
    with pytest.raises(ValueError, match="format Q8_0 is not compiled into this engine"):
        config.check_job("q8_0", 1, 32)


@pytest.mark.parametrize("kwargs,message", [
    ({"lanes": 12}, "lanes must be a power of two from 8 to 128, not 12"),
    ({"word_bits": 96}, "word_bits must be one of 64, 128, 256, 512, not 96"),
    ({"lanes": 64, "max_cols": 96}, "max_cols must be a positive multiple of 64"),
    ({"max_cols": 1 << 17}, "max_cols must be at most 65536"),
    ({"max_rows": 0}, "max_rows must be between 1 and 65535"),
    ({"formats": ()}, "formats must name at least one weight format"),
    ({"formats": ("q5_k",)}, "formats must be weight formats"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GemvConfig(**kwargs)


def test_format_names():
    assert WeightFormat.parse("Q4_0") is WeightFormat.Q4_0
    assert WeightFormat.parse(4) is WeightFormat.INT8
    with pytest.raises(ValueError, match=r"'q5_k' is not supported \(supported: q4_0, q8_0, "
                                         r"q4_1, int4, int8, f16, bcq\)"):
        WeightFormat.parse("q5_k")


def test_format_and_error_are_hardware_enums():
    """The job's ``fmt`` field and the ``error`` port carry the enums; members stay ints."""
    assert Shape.cast(WeightFormat) == unsigned(3)
    assert GemvEngine.JobLayout["fmt"].shape is WeightFormat
    assert Shape.cast(GemvError) == unsigned(4)   # the job error codes (gemv_error_e)
    assert WeightFormat.INT4 == 3 and WeightFormat.Q8_0 + 1 == 2
    assert json.dumps({"fmt": WeightFormat.Q4_1}) == '{"fmt": 2}'


def _edge_weights(fmt, group, rows, cols, rng):
    """Weights whose first scale per row walks the float16 edge cases."""
    w = quant.quantize_weights(rng.normal(0, 0.05, (rows, cols)).astype(np.float32), fmt,
                                group)
    scale_bits = w.scale_bits.copy()
    for r, h in enumerate([0x0000, 0x0001, 0x03FF, 0x8400, 0x7BFF, 0xFBFF][:rows]):
        scale_bits[r, 0] = h
    q = w.q.copy()
    lo, hi = (-128, 127) if fmt == WeightFormat.Q8_0 else (0, (1 << fmt.qbits) - 1)
    q[-1, :32] = lo
    q[-2, :32] = hi
    zero, min_bits = w.zero.copy(), w.min_bits.copy()
    if fmt.grouped:
        zero[0, :] = hi
        zero[1, :] = 0
    if fmt == WeightFormat.Q4_1:
        min_bits[:, 0] = [0x0001, 0x7BFF, 0xFBFF, 0x0000, 0x8001, 0x3C00][:rows]
    return quant.QuantizedWeights(fmt, rows, cols, w.group, q, scale_bits, zero, min_bits)


def test_extreme_values_match_golden():
    """Scale and exponent edge cases on every format: zero, subnormal,
    negative and largest float16 scales (and Q4_1 minimums); all-minimum and
    all-maximum codes and zero points; mantissas at +-32767; activation
    exponents at -128 and above the contract's limit (the shift clamp)."""
    rng = np.random.default_rng(7)
    config = GemvConfig(lanes=16, max_cols=128)
    rows, cols = 6, 128
    mant = rng.integers(-32767, 32768, cols).astype(np.int16)
    mant[:32] = 32767
    mant[32:64] = -32767
    exp = np.array([-128, 1, 20, 127], dtype=np.int8)
    jobs = [(_edge_weights(fmt, group, rows, cols, rng), (mant, exp))
            for fmt, group in ALL if group != 128]
    jobs.append((_edge_weights(WeightFormat.INT8, 128, rows, cols, rng),
                 (np.zeros(cols, np.int16), np.full(4, -128, np.int8))))
    results, _, _ = simulate(config, jobs)
    check(jobs, results)
