"""The job sequencer's planner (amaranth.sim): checks, lengths, descriptors, flight records.

Every length is compared with the host's own arithmetic (``lpaccel.repack.StreamLayout``
and ``act_bytes``), every error code with the rule it names.
"""

# amaranth: UnusedElaboratable=no

import random

import pytest
from amaranth.sim import Simulator

from lpaccel.repack import StreamLayout
from lpaccel.rtl.config import GemvConfig, WeightFormat
from lpaccel.rtl.regmap import GemvError
from lpaccel.rtl.soc.sequencer import _Planner, act_bytes, act_header_bytes, result_chunk
from lpaccel.rtl.soc_config import SocConfig

F = WeightFormat


def _soc(lanes=32, memory_size=1 << 24, word_bits=None):
    gemv = GemvConfig(lanes=lanes, word_bits=word_bits, max_cols=4096, max_rows=4096)
    return SocConfig(gemv=gemv, memory="onchip", memory_size=memory_size)


def _run(cfg, jobs, stall_seed=None):
    """Push ``jobs`` (dicts) through a planner; collect descriptors and flight records."""
    dut = _Planner(cfg)
    got = {"mm2s": [], "writes": [], "flight": [], "engine": [], "split": []}
    rng = random.Random(stall_seed)

    async def bench(ctx):
        for job in jobs:
            full = {"fmt": 0, "group": 32, "planes": 0, "offset": 0, "rows": 1, "cols": 32,
                    "weight_addr": 0,
                    "act_addr": 0, "result_addr": 0, "tag": 0, "irq": 0}
            full.update(job)
            ctx.set(dut.jobs.payload, full)
            ctx.set(dut.jobs.valid, 1)
            await ctx.tick().until(dut.jobs.ready)
            ctx.set(dut.jobs.valid, 0)
        for _ in range(40 * len(jobs) + 40):
            await ctx.tick()

    async def sink(ctx):
        names = ("mm2s", "writes", "flight", "engine_job", "split")
        while True:
            for name in names:
                ctx.set(getattr(dut, name).ready,
                        1 if stall_seed is None else rng.random() < 0.6)
            await ctx.delay(1e-9)
            for name in names:
                port = getattr(dut, name)
                if ctx.get(port.valid) and ctx.get(port.ready):
                    got[name.replace("engine_job", "engine")].append(ctx.get(port.payload))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_testbench(sink, background=True)
    sim.run()
    return got


def _wide_stream_bytes(fmt, rows, cols, g, group, planes, offset):
    """Weight bytes of an F16 or BCQ job, straight from docs/arithmetic.md 7 and 8.2."""
    B = g.beat_bits
    if fmt is F.F16:
        row_beats = cols * 16 // B
    else:
        chunk = B // 16 * group
        row_beats = 0
        for start in range(0, cols, chunk):
            row_beats += planes + offset + -(-min(chunk, cols - start) // B) * planes
    return -(-rows * row_beats * B // g.word_bits) * g.word_bytes


@pytest.mark.parametrize("lanes,word_bits", [(32, None), (8, 64), (64, 256), (16, 128)])
def test_lengths_match_the_host(lanes, word_bits):
    cfg = _soc(lanes=lanes, word_bits=word_bits)
    g = cfg.gemv
    rng = random.Random(lanes)
    jobs, expect = [], []
    for i in range(12):
        fmt = rng.choice(list(F))
        group = rng.choice((32, 64, 128)) if fmt.grouped else 32
        cols = group * rng.randint(1, 4096 // group)
        rows = rng.randint(1, 300)
        planes = rng.randint(1, 4) if fmt is F.BCQ else 0
        offset = rng.randint(0, 1) if fmt is F.BCQ else 0
        w_bytes = StreamLayout(fmt, rows, cols, g, group if fmt.grouped else None,
                               planes or None, bool(offset)).bytes
        if fmt.wide:
            assert w_bytes == _wide_stream_bytes(fmt, rows, cols, g, group, planes, offset)
        jobs.append({"fmt": int(fmt), "group": group, "rows": rows, "cols": cols,
                     "planes": planes, "offset": offset,
                     "weight_addr": 0x1000 + i * g.word_bytes, "act_addr": 0x40,
                     "result_addr": 0x4, "tag": i, "irq": i & 1})
        expect.append((w_bytes, act_bytes(cols), 4 * rows, act_header_bytes(cols)))
    got = _run(cfg, jobs, stall_seed=lanes)
    assert len(got["flight"]) == len(jobs)
    for i, (w_len, a_len, r_len, hdr) in enumerate(expect):
        assert got["mm2s"][2 * i].length == a_len, f"job {i}: activation length"
        assert got["mm2s"][2 * i + 1].length == w_len, f"job {i}: weight length"
        assert got["mm2s"][2 * i + 1].addr == jobs[i]["weight_addr"]
        assert (got["writes"][i].addr, got["writes"][i].rows * 4) == (0x4, r_len)
        assert got["split"][i].weight_words * g.word_bytes == w_len
        assert got["split"][i].act_words * g.word_bytes == a_len
        assert got["split"][i].hdr_words * g.word_bytes == hdr
        rec = got["flight"][i]
        chunks = -(-jobs[i]["rows"] // result_chunk(cfg))
        assert (rec.tag, rec.irq, rec.error, rec.n_rd, rec.n_wr) == \
            (i, i & 1, GemvError.NONE, 2, chunks)


def test_each_error_code():
    cfg = _soc(memory_size=1 << 20)
    wb = cfg.gemv.word_bytes
    good = {"fmt": int(F.Q4_0), "group": 32, "rows": 8, "cols": 256}
    cases = [
        ({"fmt": 7}, GemvError.BAD_FORMAT),
        ({"fmt": int(F.INT4), "group": 48}, GemvError.BAD_GROUP),
        ({"fmt": int(F.BCQ), "group": 48, "planes": 0}, GemvError.BAD_GROUP),
        ({"fmt": int(F.BCQ), "planes": 0}, GemvError.BAD_PLANES),
        ({"fmt": int(F.BCQ), "planes": 5, "cols": 48}, GemvError.BAD_PLANES),
        ({"planes": 1}, GemvError.BAD_PLANES),
        ({"fmt": int(F.F16), "planes": 2}, GemvError.BAD_PLANES),
        ({"fmt": int(F.BCQ), "planes": 3, "group": 64, "cols": 96}, GemvError.BAD_COLS),
        ({"fmt": int(F.BCQ), "planes": 4, "offset": 1, "group": 128}, GemvError.NONE),
        ({"fmt": int(F.F16), "cols": 96}, GemvError.NONE),
        ({"cols": 0}, GemvError.BAD_COLS),
        ({"cols": 48}, GemvError.BAD_COLS),
        ({"fmt": int(F.INT8), "group": 128, "cols": 192}, GemvError.BAD_COLS),
        ({"cols": 4096 + 32}, GemvError.COLS_TOO_LARGE),
        ({"rows": 0}, GemvError.BAD_ROWS),
        ({"rows": 4097}, GemvError.BAD_ROWS),
        ({"weight_addr": wb // 2}, GemvError.MISALIGNED),
        ({"act_addr": 8}, GemvError.MISALIGNED),
        ({"result_addr": 2}, GemvError.MISALIGNED),
        ({"weight_addr": (1 << 20) - wb}, GemvError.BAD_ADDRESS),
        ({"act_addr": 1 << 40}, GemvError.BAD_ADDRESS),
        ({"result_addr": (1 << 20) - 28}, GemvError.BAD_ADDRESS),
        ({"result_addr": (1 << 20) - 32}, GemvError.NONE),   # exactly at the end: fits
        ({}, GemvError.NONE),
    ]
    jobs = [{**good, **change, "tag": i} for i, (change, _) in enumerate(cases)]
    got = _run(cfg, jobs)
    codes = [rec.error for rec in got["flight"]]
    assert codes == [code for _, code in cases]
    # Only the good jobs pushed descriptors.
    n_good = sum(code == GemvError.NONE for _, code in cases)
    assert len(got["mm2s"]) == 2 * n_good and len(got["writes"]) == n_good
    for rec, (_, code) in zip(got["flight"], cases):
        assert (rec.n_rd, rec.n_wr) == ((2, 1) if code == GemvError.NONE else (0, 0))
