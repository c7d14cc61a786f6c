"""cocotb regression of the GEMV engine against the golden model.

Every combination of {none, periodic, random} pauses on the input streams
and back-pressure on the result stream; each runs several jobs of random
format and shape back to back, checks every result bit for bit, and ends
with nothing queued, in flight or pending.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from lpaccel.rtl.config import GemvConfig, WeightFormat
from lpaccel.rtl.gemv import GemvError
from lpaccel.sim import golden
from lpaccel.sim.gemv_tb import GemvTB
from lpaccel.sim.harness import params
from lpaccel.sim.repack import repack_weights_bytes
from lpaccel.sim.streams import PAUSE_MODES

P = {**params(), **json.loads(os.environ.get("GEMV_TEST", "{}"))}
CONFIG = GemvConfig(lanes=P["lanes"], max_cols=P["max_cols"])


def random_case(rng, fmt, rows, cols):
    """Weights N(0, 0.02) through gguf's quantizer, activations N(0, 1) with
    a random overall scale so exponents move around."""
    w = rng.normal(0.0, 0.02, (rows, cols)).astype(np.float32)
    x = (rng.normal(0.0, 1.0, cols) * 2.0 ** rng.integers(-12, 8)).astype(np.float32)
    raw = golden.quantize_weights(w, fmt)
    return raw, x


async def check_job(tb, rng, fmt, rows, cols):
    raw, x = random_case(rng, fmt, rows, cols)
    mant, exp = golden.quantize_activations(x)
    expected = golden.gemv_golden(raw, fmt, rows, cols, x).view(np.uint32)
    stream = repack_weights_bytes(raw, fmt, rows, cols, CONFIG)
    got, timing = await tb.run_job(int(fmt), rows, cols, mant, exp, stream)
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, (
        f"{fmt.name} {rows}x{cols}: {bad.size} rows differ from the golden model, first row "
        f"{bad[0]}: got {got[bad[0]]:#010x}, expected {expected[bad[0]]:#010x}")
    tb.dut._log.info(f"{fmt.name} {rows}x{cols}: bit-exact, {timing}")


@cocotb.test()
@cocotb.parametrize(idle=list(PAUSE_MODES), backpressure=list(PAUSE_MODES))
async def random_jobs(dut, idle, backpressure):
    """Random shapes (rows 1..64, cols 32..max in steps of 32), both formats."""
    seed = P["seed"] + 17 * list(PAUSE_MODES).index(idle) + list(PAUSE_MODES).index(backpressure)
    rng = np.random.default_rng(seed)
    tb = GemvTB(dut, CONFIG.word_bits, idle=idle, backpressure=backpressure, seed=seed)
    await tb.reset()
    shapes = [(int(rng.integers(1, 65)), 32 * int(rng.integers(1, P["max_cols_test"] // 32 + 1)))
              for _ in range(P["jobs"])]
    # Always include the edges: one row, one block, and the largest K.
    shapes += [(1, 32), (3, P["max_cols_test"])]
    for i, (rows, cols) in enumerate(shapes):
        fmt = (WeightFormat.Q4_0, WeightFormat.Q8_0)[(i + seed) % 2]
        await check_job(tb, rng, fmt, rows, cols)
    await tb.check_idle()


@cocotb.test()
async def rejected_jobs(dut):
    """A bad job sets a sticky error, consumes nothing, and the next job runs."""
    rng = np.random.default_rng(P["seed"])
    tb = GemvTB(dut, CONFIG.word_bits)
    await tb.reset()
    bad = [
        ({"fmt": 7, "rows": 1, "cols": 32}, GemvError.BAD_FORMAT),
        ({"fmt": 0, "rows": 1, "cols": 48}, GemvError.BAD_COLS),
        ({"fmt": 0, "rows": 1, "cols": 0}, GemvError.BAD_COLS),
        ({"fmt": 1, "rows": 1, "cols": CONFIG.max_cols + 32}, GemvError.COLS_TOO_LARGE),
        ({"fmt": 0, "rows": 0, "cols": 32}, GemvError.BAD_ROWS),
    ]
    for job, code in bad:
        tb.job.send(job)
        await tb.job.wait_idle()
        await ClockCycles(dut.clk, 2)
        await ReadOnly()
        assert int(dut.error.value) == code, f"job {job}: error {int(dut.error.value)}, expected {code!r}"
        assert int(dut.busy.value) == 0, f"job {job} was not dropped"
        await RisingEdge(dut.clk)
        dut.error_clear.value = 1
        await RisingEdge(dut.clk)
        dut.error_clear.value = 0
        await ReadOnly()
        assert int(dut.error.value) == 0, "error_clear did not clear the error"
    await check_job(tb, rng, WeightFormat.Q4_0, 5, 96)
    await tb.check_idle()
