# amaranth: UnusedElaboratable=no
"""GEMV job limits at a non-default maximum (for the mutation catalogue).

Every other test uses the default ``max_rows`` (65535), so a job above the
maximum was never offered. Here the engine is built with a small
``max_rows``: a job of ``max_rows + 1`` rows is refused with ``BAD_ROWS``
(and the next job runs), one of exactly ``max_rows`` rows and ``max_cols``
columns is computed bit for bit. The SoC's job sequencer, which checks the
job before it moves any data, refuses it too.
"""

import numpy as np
from amaranth.sim import Simulator

from lpaccel.rtl.config import GemvConfig, WeightFormat
from lpaccel.rtl.gemv import GemvEngine, GemvError
from lpaccel.rtl.regmap import GemvError as RegGemvError
from tests.gemv.test_gemv_sim import check, random_case, set_job, simulate
from tests.soc.test_sequencer_sim import CFG as SOC_CFG
from tests.soc.test_sequencer_sim import SPECS, cases, run


def _error_after(config, desc):
    dut = GemvEngine(config)
    seen = []

    async def testbench(ctx):
        set_job(ctx, dut, desc)
        ctx.set(dut.job.valid, 1)
        await ctx.tick()
        ctx.set(dut.job.valid, 0)
        await ctx.tick()
        seen.append(ctx.get(dut.error))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return seen[0]


def test_rows_and_cols_limits():
    config = GemvConfig(lanes=16, max_cols=128, max_rows=3)
    fmt = int(WeightFormat.Q4_0)
    assert _error_after(config, {"fmt": fmt, "rows": 4, "cols": 64}) == GemvError.BAD_ROWS
    assert _error_after(config, {"fmt": fmt, "rows": 3, "cols": 160}) == \
        GemvError.COLS_TOO_LARGE
    assert _error_after(config, {"fmt": fmt, "rows": 3, "cols": 128}) == GemvError.NONE
    # The largest job the engine takes is computed, after a refused one.
    rng = np.random.default_rng(5)
    jobs = [random_case(rng, WeightFormat.Q4_0, None, 3, 128)]
    results, _, _ = simulate(config, jobs, raw_jobs=[{"fmt": fmt, "rows": 4, "cols": 64}])
    check(jobs, results)


def test_soc_sequencer_refuses_rows_above_max():
    max_rows = SOC_CFG.gemv.max_rows
    cs = cases(4, SPECS[1:2])
    image = bytearray(1 << 16)
    cs[0].place(image)
    done, _ = run([cs[0].job(0, rows=max_rows + 1), cs[0].job(1)], image)
    assert [(d.tag, d.error) for d in done] == [(0, RegGemvError.BAD_ROWS),
                                                 (1, RegGemvError.NONE)]
