"""Fast amaranth.sim checks of the GEMV engine on tiny cases."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from lpaccel.rtl.config import GemvConfig, WeightFormat
from lpaccel.rtl.gemv import GemvEngine, GemvError
from lpaccel.sim import golden
from lpaccel.sim.repack import stream_words


def simulate(config, jobs):
    """Run ``jobs`` (fmt, rows, cols, raw, x) back to back; return result bits."""
    dut = GemvEngine(config)
    out = []

    async def testbench(ctx):
        ctx.set(dut.results.ready, 1)
        for fmt, rows, cols, raw, x in jobs:
            # x is a float vector, or already BFP16 (mant, exp) blocks.
            mant, exp = x if isinstance(x, tuple) else golden.quantize_activations(x)
            ctx.set(dut.job.payload, {"fmt": int(fmt), "rows": rows, "cols": cols})
            ctx.set(dut.job.valid, 1)
            await ctx.tick().until(dut.job.ready)
            ctx.set(dut.job.valid, 0)
            for b in range(cols // 32):
                ctx.set(dut.activations.payload.exp, int(exp[b]))
                for i in range(32):
                    ctx.set(dut.activations.payload.mant[i], int(mant[32 * b + i]))
                ctx.set(dut.activations.valid, 1)
                await ctx.tick().until(dut.activations.ready)
            ctx.set(dut.activations.valid, 0)
            words = stream_words(raw, fmt, rows, cols, config)
            got = []
            for cycle in range(len(words) + 100):
                if words:
                    ctx.set(dut.weights.payload, words[0])
                ctx.set(dut.weights.valid, bool(words))
                _, _, taken, valid, value, last = await ctx.tick().sample(
                    dut.weights.ready, dut.results.valid, dut.results.payload.value,
                    dut.results.payload.last)
                if words and taken:
                    words.pop(0)
                if valid:
                    got.append(value)
                    if last:
                        break
            ctx.set(dut.weights.valid, 0)
            assert not words, "engine stopped taking weights"
            assert ctx.get(dut.busy) == 0
            out.append(np.array(got, dtype=np.uint32))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return out


@pytest.mark.parametrize("lanes", [8, 64])
def test_tiny_gemv_matches_golden(lanes):
    rng = np.random.default_rng(lanes)
    config = GemvConfig(lanes=lanes, max_cols=128)
    jobs = []
    for fmt, rows, cols in [(WeightFormat.Q4_0, 3, 64), (WeightFormat.Q8_0, 2, 96)]:
        w = rng.normal(0, 0.05, (rows, cols)).astype(np.float32)
        x = rng.normal(0, 1, cols).astype(np.float32)
        jobs.append((fmt, rows, cols, golden.quantize_weights(w, fmt), x))
    results = simulate(config, jobs)
    assert len(results) == len(jobs)
    for (fmt, rows, cols, raw, x), got in zip(jobs, results):
        expected = golden.gemv_golden(raw, fmt, rows, cols, x).view(np.uint32)
        np.testing.assert_array_equal(got, expected)


def test_rejected_job_sets_error():
    dut = GemvEngine(GemvConfig(lanes=8, max_cols=64))

    async def testbench(ctx):
        ctx.set(dut.job.payload, {"fmt": 0, "rows": 1, "cols": 96})
        ctx.set(dut.job.valid, 1)
        await ctx.tick()
        ctx.set(dut.job.valid, 0)
        await ctx.tick()
        assert ctx.get(dut.error) == GemvError.COLS_TOO_LARGE
        assert ctx.get(dut.busy) == 0

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("kwargs,message", [
    ({"lanes": 12}, "lanes must be a power of two from 8 to 128, not 12"),
    ({"lanes": 64, "max_cols": 96}, "max_cols must be a positive multiple of 64"),
    ({"max_cols": 1 << 17}, "max_cols must be at most 65536"),
    ({"max_rows": 0}, "max_rows must be between 1 and 65535"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GemvConfig(**kwargs)


def test_format_names():
    assert WeightFormat.parse("Q4_0") is WeightFormat.Q4_0
    with pytest.raises(ValueError, match=r"'q5_k' is not supported \(supported: q4_0, q8_0\)"):
        WeightFormat.parse("q5_k")


def test_extreme_values_match_golden():
    """Scale and exponent edge cases: zero, subnormal, negative and largest
    float16 scales; extreme weights; mantissas at +-32767; activation
    exponents at -128 and above the contract's limit (the shift clamp)."""
    rng = np.random.default_rng(7)
    config = GemvConfig(lanes=8, max_cols=128)
    rows, cols = 6, 128
    raw = bytearray(golden.quantize_weights(
        rng.normal(0, 0.05, (rows, cols)).astype(np.float32), WeightFormat.Q8_0).tobytes())
    row_bytes = cols // 32 * 34
    scales = [0x0000, 0x0001, 0x03FF, 0x8400, 0x7BFF, 0xFBFF]   # one per row, first block
    for r, h in enumerate(scales):
        raw[r * row_bytes:r * row_bytes + 2] = h.to_bytes(2, "little")
    raw[row_bytes * 5 + 2:row_bytes * 5 + 34] = bytes([0x80] * 32)   # all -128
    mant = rng.integers(-32767, 32768, cols).astype(np.int16)
    mant[:32] = 32767
    exp = np.array([-128, 1, 20, 127], dtype=np.int8)
    raw = np.frombuffer(bytes(raw), dtype=np.uint8)
    (got,) = simulate(config, [(WeightFormat.Q8_0, rows, cols, raw, (mant, exp))])
    q, scale_bits = golden.decode_weights(raw, WeightFormat.Q8_0, rows, cols)
    _, expected = golden.gemv_golden_quantized(q, scale_bits, mant, exp)
    np.testing.assert_array_equal(got, expected.view(np.uint32))
