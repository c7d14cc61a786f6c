"""cocotb regression of LpddrController + LpddrModel with random AXI traffic.

Several concurrent workers, each owning a slice of the simulated memory,
write and read random ranges (bursts of 1 to 256 beats, partial first and
last beats, random beat-aligned and unaligned addresses) and compare every
read with a Python reference memory. Each pause mode of PAUSE_MODES is
applied to all five AXI channels. The run fails on the first timing
violation, on any data mismatch, and if anything is left outstanding.
"""

import itertools
import json
import os
import random

import cocotb
from cocotb.triggers import ClockCycles

from lpaccel.sim.infra.harness import params
from lpaccel.sim.infra.streams import PAUSE_MODES
from lpaccel.sim.testbenches.lpddr import LpddrTB, config_from_params, measure

P = params()
KNOBS = json.loads(os.environ.get("LPDDR_TEST", "{}"))
CFG = config_from_params(P)


async def worker(tb, ref, base, size, rng, budget, stats):
    beat = CFG.beat_bytes
    while stats["beats"] < budget:
        nbeats = rng.choice([1, 2, 3, rng.randint(1, 256), 256, rng.randint(1, 32)])
        length = min(size, nbeats * beat)
        if rng.random() < 0.25:  # partial beats at either end
            length = max(1, length - rng.randrange(beat))
        offset = rng.randrange(0, size - length + 1)
        if rng.random() < 0.7:
            offset -= offset % beat
        addr = base + offset
        first, last = addr // beat, (addr + length - 1) // beat
        stats["beats"] += last - first + 1
        if rng.random() < 0.5:
            data = bytes(rng.getrandbits(8) for _ in range(length))
            await tb.axi.write(addr, data)
            ref[addr:addr + length] = data
            stats["writes"] += 1
        else:
            got = (await tb.axi.read(addr, length)).data
            want = bytes(ref[addr:addr + length])
            if got != want:
                bad = next(i for i in range(length) if got[i] != want[i])
                raise AssertionError(
                    f"read {addr:#x}+{length}: byte {addr + bad:#x} is {got[bad]:#04x}, "
                    f"expected {want[bad]:#04x}")
            stats["reads"] += 1
        tb.assert_no_violation()


@cocotb.test()
@cocotb.parametrize(mode=list(PAUSE_MODES))
async def random_traffic(dut, mode):
    tb = LpddrTB(dut, CFG)
    tb.set_pauses(PAUSE_MODES[mode], seed=KNOBS.get("seed", 1))
    await tb.reset()
    workers = KNOBS.get("workers", 4)
    budget = KNOBS.get("beats", 20000)
    size = CFG.sim_bytes // workers
    ref = bytearray(CFG.sim_bytes)
    # Start from known contents so reads of never-written bytes compare too.
    init = random.Random(7)
    for w in range(workers):
        chunk = bytes(init.getrandbits(8) for _ in range(min(size, 16384)))
        await tb.axi.write(w * size, chunk)
        ref[w * size:w * size + len(chunk)] = chunk
    stats = {"beats": 0, "reads": 0, "writes": 0}
    tasks = [cocotb.start_soon(worker(tb, ref, w * size, size,
                                      random.Random(KNOBS.get("seed", 1) * 100 + w),
                                      budget, stats))
             for w in range(workers)]
    for t in tasks:
        await t
    await tb.assert_quiet()
    tb.assert_no_violation()
    perf = tb.perf()
    dut._log.info("mode %s: %s, counters %s", mode, stats, perf)
    assert stats["beats"] >= budget
    assert perf["n_rd"] > 0 and perf["n_wr"] > 0 and perf["n_act"] > 0


@cocotb.test()
async def refresh_under_streaming(dut):
    """100 % streaming reads for at least 10 tREFI: every refresh in time."""
    tb = LpddrTB(dut, CFG)
    await tb.reset()
    t = CFG.timings
    intervals = KNOBS.get("refresh_intervals", 10)
    need_cycles = intervals * t.tREFI // CFG.ratio
    moved_cycles = 0
    while moved_cycles < need_cycles:
        cycles, _ = await measure(tb, "seq", 1 << 16)
        moved_cycles += cycles
        tb.assert_no_violation()
    await tb.assert_quiet()
    tb.assert_no_violation()
    perf = tb.perf()
    refs = perf["n_refpb"] + CFG.refs_per_refab * perf["n_refab"]
    elapsed_ck = tb.cycle * CFG.ratio
    owed = elapsed_ck // t.tREFIpb if CFG.refresh == "per_bank" else \
        CFG.refs_per_refab * (elapsed_ck // t.tREFI)
    dut._log.info("refresh: %d REF units for %d owed, debt max %d, busy %d, data %d, loss %s",
                  refs, owed, perf["refresh_debt_max"], perf["busy_cycles"],
                  perf["data_beats"], {k: perf[k] for k in perf if k.startswith("loss")})
    limit = t.refresh_postpone * CFG.refs_per_refab
    assert perf["refresh_debt_max"] <= limit
    assert refs >= owed - limit, f"only {refs} of {owed} refreshes issued"
    # The stream kept the controller busy the whole time.
    assert perf["busy_cycles"] >= 0.95 * moved_cycles


@cocotb.test()
async def refresh_urgent(dut):
    """Per-bank refresh through its urgent path: every bank is always wanted.

    One-burst reads walk the banks in strict order (bank = k mod banks, row
    hits) and R is mostly paused, so the look-ahead window (at least twice
    as deep as there are banks) stays full and always holds a request for
    the bank the refresh engine wants next, even in the cycle one is popped:
    it cannot hide a REFpb and must let the debt climb to its urgent level,
    then force the refresh (blocking the bank). The checker sees no late refresh (tREFI
    and per-bank REF_BANK) and the debt peaks between the urgent level and
    the JEDEC limit.
    """
    tb = LpddrTB(dut, CFG)
    await tb.reset()
    t = CFG.timings
    nb, page, burst = CFG.part.banks, CFG.part.page_bytes, CFG.part.bytes_per_burst
    assert CFG.refresh == "per_bank" and CFG.window >= 2 * nb
    tb.axi.read_if.r_channel.set_pause_generator(itertools.cycle([True, True, True, False]))
    intervals = KNOBS.get("refresh_intervals", 12)
    need_cycles = intervals * t.tREFI // CFG.ratio
    start, k = tb.cycle, 0
    while tb.cycle - start < need_cycles:
        events = []
        for _ in range(512):
            col = (k // nb) % (page // burst)
            events.append(tb.axi.init_read((k % nb) * page + col * burst, burst))
            k += 1
        for event in events:
            await event.wait()
        tb.assert_no_violation()
    await tb.assert_quiet()
    tb.assert_no_violation()
    perf = tb.perf()
    limit = t.refresh_postpone * CFG.refs_per_refab
    urgent_at = limit - 16                       # refresh.py: forced from here on
    elapsed_ck = tb.cycle * CFG.ratio
    owed = elapsed_ck // t.tREFIpb
    dut._log.info("urgent refresh: %d REFpb for %d owed, debt max %d (urgent at %d, limit %d), "
                  "%d reads", perf["n_refpb"], owed, perf["refresh_debt_max"], urgent_at, limit, k)
    assert urgent_at <= perf["refresh_debt_max"] <= limit, \
        f"debt peaked at {perf['refresh_debt_max']}: the urgent path was not exercised"
    assert perf["n_refpb"] >= owed - limit


@cocotb.test()
async def smoke(dut):
    tb = LpddrTB(dut, CFG)
    await tb.reset()
    beat = CFG.beat_bytes
    data = bytes(range(256)) * (beat // 8 + 1)
    await tb.axi.write(0x1000, data[:16 * beat])
    got = (await tb.axi.read(0x1000, 16 * beat)).data
    assert got == data[:16 * beat]
    await ClockCycles(dut.clk, 10)
    tb.assert_no_violation()
