"""System tests of the SoC, driven as a driver drives it (run by test_soc_system.py).

Everything goes through the CSR port and the memory window, by
:class:`lpaccel.driver.Device` over :class:`~lpaccel.sim.testbenches.soc.SimTransport`
(bulk preloads through the memory backdoor). Results are compared bit for bit
with the golden model; counters with what was run; every test ends with
:meth:`SocTB.check_idle` (AXI checkers idle and clean, no LPDDR timing
violation, the SoC idle, every queue empty).
"""

import os
import random

import cocotb
import numpy as np

from lpaccel.driver import Device
from lpaccel.quant import quantize_weights
from lpaccel.rtl.config import GROUP_SIZES, WeightFormat
from lpaccel.rtl.regmap import GemvError
from lpaccel.sim.golden.gemv import gemv_golden
from lpaccel.sim.infra.harness import params
from lpaccel.sim.testbenches.soc import SocTB, config_from_params

CONFIG, BUILD_HASH = config_from_params(params())
PAUSES = os.environ.get("SOC_PAUSES", "none")
SEED = int(os.environ.get("SOC_SEED", "1"))
ITERATIONS = int(os.environ.get("SOC_ITERATIONS", "100"))
TIMEOUT = 400_000


async def make_tb(dut, *, checkers=True, pauses=PAUSES, seed=SEED):
    host = "light" if pauses == "none" else "cocotbext"
    tb = SocTB(dut, CONFIG, build_hash=BUILD_HASH, checkers=checkers, host=host,
               pauses=pauses, seed=seed)
    await tb.reset()
    return tb


def bits(y):
    return np.asarray(y, dtype=np.float32).view(np.uint32)


def random_job(rng, fmt, group=None, max_rows=24, max_cols=256):
    unit = group or 32
    rows = int(rng.integers(1, max_rows + 1))
    cols = unit * int(rng.integers(1, max(1, max_cols // unit) + 1))
    w = rng.normal(0, 0.05, (rows, cols)).astype(np.float32)
    x = rng.normal(0, 1, cols).astype(np.float32)
    if fmt == WeightFormat.BCQ:
        return quantize_weights(w, fmt, group, planes=int(rng.integers(1, 5)),
                                offset=bool(rng.integers(2))), x
    return quantize_weights(w, fmt, group), x


def every_format_and_group():
    out = []
    for fmt in WeightFormat:
        for group in (GROUP_SIZES if fmt.grouped else (None,)):
            out.append((fmt, group))
    return out


@cocotb.test()
async def formats_chain(dut):
    """Every format and group at random shapes, queued as one chain; bit-exact; counters."""
    tb = await make_tb(dut)
    rng = np.random.default_rng(SEED)
    jobs = [random_job(rng, fmt, group) for fmt, group in every_format_and_group()]

    def host(t):
        dev = Device(t)
        dev.clear_counters()
        ys = dev.run_chain(jobs, timeout_cycles=TIMEOUT)
        layouts = [dev.weight_layout(w) for w, _ in jobs]
        return ys, dev.counters(), layouts

    ys, counters, layouts = await tb.run_driver(host, tb.transport())
    for (w, x), y in zip(jobs, ys):
        assert np.array_equal(bits(y), bits(gemv_golden(w, x))), \
            f"{w.fmt.name} g{w.group} {w.rows}x{w.cols}: results differ from the golden model"
    assert counters["jobs_done"] == len(jobs)
    assert counters["weight_bytes"] == sum(lay.bytes for lay in layouts)
    assert counters["busy_cycles"] >= sum(lay.ideal_cycles for lay in layouts)
    assert counters["stall_result"] <= counters["busy_cycles"]
    await tb.check_idle()


@cocotb.test()
async def bad_descriptors(dut):
    """Every code a descriptor can earn, each followed by a good job that is bit-exact."""
    tb = await make_tb(dut)
    rng = np.random.default_rng(SEED + 1)
    w, x = random_job(rng, WeightFormat.Q4_0, max_rows=8, max_cols=128)
    size = CONFIG.memory_size
    word = CONFIG.gemv.word_bytes
    g = CONFIG.gemv

    def host(t):
        dev = Device(t)
        wt, at, rt = dev.put_weights(w), dev.put_activations(x), dev.alloc_results(w.rows)
        good = {"fmt": int(w.fmt), "rows": w.rows, "cols": w.cols, "group": 32,
                "weight_addr": wt.addr, "act_addr": at.addr, "result_addr": rt.addr}
        cases = [
            ({"fmt": 7}, GemvError.BAD_FORMAT),
            ({"fmt": int(WeightFormat.INT4), "group": 16}, GemvError.BAD_GROUP),
            ({"fmt": int(WeightFormat.BCQ), "planes": 0}, GemvError.BAD_PLANES),
            ({"planes": 2}, GemvError.BAD_PLANES),
            ({"cols": w.cols + 16}, GemvError.BAD_COLS),
            ({"cols": g.max_cols + 32}, GemvError.COLS_TOO_LARGE),
            ({"rows": 0}, GemvError.BAD_ROWS),
            ({"weight_addr": wt.addr + word // 2}, GemvError.MISALIGNED),
            ({"act_addr": at.addr + 4}, GemvError.MISALIGNED),
            ({"result_addr": rt.addr + 2}, GemvError.MISALIGNED),
            ({"weight_addr": size - word}, GemvError.BAD_ADDRESS),
            ({"act_addr": 1 << 40}, GemvError.BAD_ADDRESS),
            ({"result_addr": size - 4}, GemvError.BAD_ADDRESS),
        ]
        if g.max_rows < 65535:
            cases.append(({"rows": g.max_rows + 1}, GemvError.BAD_ROWS))
        seen = []
        for change, want in cases:
            bad = dev.push_raw(**{**good, **change})
            ok = dev.push_raw(**good)
            records = dev.wait([bad, ok], timeout_cycles=TIMEOUT, check=False)
            seen.append((change, want, [r.error for r in records],
                         dev.read_results_bits(rt)[:w.rows].copy()))
        return seen, dev.errors()

    seen, errors = await tb.run_driver(host, tb.transport())
    want_bits = bits(gemv_golden(w, x))
    for change, want, got, y in seen:
        assert got == [want, GemvError.NONE], f"{change}: records {got}, expected {want}, NONE"
        assert np.array_equal(y, want_bits), f"the good job after {change} is not bit-exact"
    assert errors["gemv"] == GemvError.BAD_ADDRESS   # ERROR.GEMV: the last failing code
    await tb.check_idle()


@cocotb.test()
async def abort_and_reset_at_random(dut):
    """ABORT or SOFT_RESET at random moments, then a good job: every record once, in order."""
    tb = await make_tb(dut)
    rng = np.random.default_rng(SEED + 2)
    pick = random.Random(SEED + 2)
    jobs = [random_job(rng, fmt, group, max_rows=16, max_cols=128)
            for fmt, group in pick.sample(every_format_and_group(), 4)]
    golden = [bits(gemv_golden(w, x)) for w, x in jobs]

    def host(t):
        dev = Device(t)
        placed = [(dev.put_weights(w), dev.put_activations(x), dev.alloc_results(w.rows))
                  for w, x in jobs]
        kinds = {"abort": 0, "soft_reset": 0, "aborted_jobs": 0, "done_before": 0}
        for it in range(ITERATIONS):
            order = [pick.randrange(len(jobs)) for _ in range(pick.randint(1, 3))]
            tags = [dev.submit(*placed[k], timeout_cycles=TIMEOUT) for k in order]
            t.wait_cycles(pick.choice([0, 1, 2, 5, 20, 60, 150, 400, 1000]))
            if pick.random() < 0.7:
                kinds["abort"] += 1
                records = dev.abort(timeout_cycles=TIMEOUT)
                assert [r.tag for r in records] == tags, \
                    f"iteration {it}: records {[r.tag for r in records]} for jobs {tags}"
                for r, k in zip(records, order):
                    assert r.error in (GemvError.NONE, GemvError.ABORTED), r.describe()
                    if r.error == GemvError.NONE:
                        kinds["done_before"] += 1
                        y = dev.read_results_bits(placed[k][2])[:jobs[k][0].rows]
                        assert np.array_equal(y, golden[k]), \
                            f"iteration {it}: job {r.tag} finished before the abort, not exact"
                    else:
                        kinds["aborted_jobs"] += 1
            else:
                kinds["soft_reset"] += 1
                dev.soft_reset(timeout_cycles=TIMEOUT)
                levels = dev.regs.fields("JOB_LEVELS")
                assert (levels["QUEUED"], levels["ACTIVE"], levels["DONE"]) == (0, 0, 0), \
                    f"iteration {it}: after a soft reset JOB_LEVELS is {levels}"
            k = pick.randrange(len(jobs))
            tag = dev.submit(*placed[k], timeout_cycles=TIMEOUT)
            (record,) = dev.wait([tag], timeout_cycles=TIMEOUT)
            y = dev.read_results_bits(placed[k][2])[:jobs[k][0].rows]
            assert np.array_equal(y, golden[k]), f"iteration {it}: the job after it is not exact"
        return kinds

    kinds = await tb.run_driver(host, tb.transport())
    tb.log.info("abort/reset iterations: %s", kinds)
    assert kinds["abort"] and kinds["soft_reset"] and kinds["aborted_jobs"]
    await tb.check_idle()


@cocotb.test()
async def watchdog(dut):
    """A watchdog of 2 cycles times a job out; restored, the next job is exact."""
    tb = await make_tb(dut)
    rng = np.random.default_rng(SEED + 3)
    w, x = random_job(rng, WeightFormat.Q8_0, max_rows=8, max_cols=128)

    def host(t):
        dev = Device(t)
        wt, at, rt = dev.put_weights(w), dev.put_activations(x), dev.alloc_results(w.rows)
        dev.set_watchdog(2)
        first = dev.wait([dev.submit(wt, at, rt)], timeout_cycles=TIMEOUT, check=False)
        dev.set_watchdog(1 << 20)
        second = dev.wait([dev.submit(wt, at, rt)], timeout_cycles=TIMEOUT)
        return first, second, dev.read_results_bits(rt)[:w.rows].copy()

    first, second, y = await tb.run_driver(host, tb.transport())
    assert [r.error for r in first] == [GemvError.TIMEOUT]
    assert [r.error for r in second] == [GemvError.NONE]
    assert np.array_equal(y, bits(gemv_golden(w, x)))
    await tb.check_idle()
