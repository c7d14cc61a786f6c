"""DMA rules of ``docs/dma.md`` that no other fast test exercised (for the mutation catalogue).

In amaranth.sim with a small Python AXI memory that can answer a write
burst with an error and delay its B responses: the window check refuses a
descriptor that would wrap the address space and accepts one ending exactly
at the window's end; an abort leaves the S2MM input stream where it is; a
bus error wins over a length mismatch in the S2MM status, and the first
error of a descriptor is kept; write and read bursts in flight stay within
``max_outstanding`` (and reach it).
"""

import random
from collections import deque

from amaranth.sim import Simulator

from lpaccel.rtl.dma import DmaConfig, DmaEngine, DmaError

CFG = DmaConfig(data_width=32, max_burst_beats=4, max_outstanding=2, queue_depth=2)
B = CFG.beat_bytes
EVERYTHING = (0, 1 << CFG.addr_width)


def run_dma(descs_m=(), descs_s=(), packets=(), *, window=EVERYTHING, b_error=(),
            b_delay=0, r_delay=0, abort_after_beats=None, cycles=400, seed=1):
    """Run the engine; return what was seen on its ports.

    ``b_error``: AW addresses whose burst is answered SLVERR. ``b_delay`` /
    ``r_delay``: cycles a B response / a burst's R data waits. With
    ``abort_after_beats``, ``abort`` is pulsed once that many S2MM input
    beats were taken.
    """
    dut = DmaEngine(CFG)
    rng = random.Random(seed)
    mem = {}
    seen = {"mst": [], "sst": [], "ar": [], "aw": [], "in_taken": [], "abort_cycle": None,
            "aw_in_flight": 0, "ar_in_flight": 0, "out": []}
    cycle = {"n": 0}

    async def memory(ctx):
        bus = dut.bus
        rq, wq, bq = deque(), deque(), deque()
        rbeat = bbeat = None
        aw_open = ar_open = 0
        while True:
            now = cycle["n"]
            if rbeat is None and rq and rq[0][3] <= now:
                rbeat = rq.popleft()
            if bbeat is None and bq and bq[0][1] <= now:
                bbeat = bq.popleft()
            ctx.set(bus.r.valid, rbeat is not None)
            if rbeat is not None:
                ctx.set(bus.r.data, rbeat[0])
                ctx.set(bus.r.last, rbeat[1])
                ctx.set(bus.r.resp, rbeat[2])
            ctx.set(bus.b.valid, bbeat is not None)
            ctx.set(bus.b.resp, bbeat[0] if bbeat else 0)
            ctx.set(bus.ar.ready, rng.random() < 0.8)
            ctx.set(bus.aw.ready, 1)
            ctx.set(bus.w.ready, rng.random() < 0.8)
            (arv, ara, arl, arr, rr, awv, awa, awl, wv, wd, ws, wl, wr, br) = \
                (await ctx.tick().sample(
                    bus.ar.valid, bus.ar.addr, bus.ar.len, bus.ar.ready, bus.r.ready,
                    bus.aw.valid, bus.aw.addr, bus.aw.len, bus.w.valid, bus.w.data, bus.w.strb,
                    bus.w.last, bus.w.ready, bus.b.ready))[2:]
            cycle["n"] += 1
            if arv and arr:
                seen["ar"].append((ara, arl + 1))
                ar_open += 1
                for i in range(arl + 1):
                    a = ara + i * B
                    word = sum(mem.get(a + k, a + k & 0xFF) << (8 * k) for k in range(B))
                    rq.append((word, i == arl, 0, now + r_delay))
            if rbeat is not None and rr:
                if rbeat[1]:
                    ar_open -= 1
                rbeat = None
            if awv:
                seen["aw"].append((awa, awl + 1))
                aw_open += 1
                wq.extend((awa + i * B, awa) for i in range(awl + 1))
            if wv and wr:
                a, burst = wq.popleft()
                for lane in range(B):
                    if ws >> lane & 1:
                        mem[a + lane] = wd >> (8 * lane) & 0xFF
                if wl:
                    bq.append((2 if burst in b_error else 0, now + b_delay))
            if bbeat is not None and br:
                aw_open -= 1
                bbeat = None
            seen["aw_in_flight"] = max(seen["aw_in_flight"], aw_open)
            seen["ar_in_flight"] = max(seen["ar_in_flight"], ar_open)

    async def handshake(ctx, port):
        while not (await ctx.tick().sample(port.ready))[2]:
            pass

    async def driver(ctx):
        ctx.set(dut.window_base, window[0])
        ctx.set(dut.window_size, window[1])
        for port, descs in ((dut.mm2s_descriptors, descs_m), (dut.s2mm_descriptors, descs_s)):
            for addr, length, tag in descs:
                ctx.set(port.payload, {"addr": addr, "length": length, "tag": tag, "flags": 0})
                ctx.set(port.valid, 1)
                await handshake(ctx, port)
            ctx.set(port.valid, 0)

    async def feeder(ctx):
        port = dut.s2mm_data
        for p in packets:
            beats = max(1, -(-len(p) // B))
            for i in range(beats):
                chunk = p[i * B:(i + 1) * B]
                ctx.set(port.payload, {"data": int.from_bytes(chunk, "little"),
                                       "bytes": len(chunk), "last": i == beats - 1})
                ctx.set(port.valid, 1)
                await handshake(ctx, port)
                seen["in_taken"].append(cycle["n"])
                if abort_after_beats is not None and len(seen["in_taken"]) == abort_after_beats:
                    ctx.set(dut.abort, 1)
                    seen["abort_cycle"] = cycle["n"]
                    await ctx.tick()
                    ctx.set(dut.abort, 0)
        ctx.set(port.valid, 0)

    async def sinks(ctx):
        ctx.set(dut.mm2s_data.ready, 1)
        ctx.set(dut.mm2s_status.ready, 1)
        ctx.set(dut.s2mm_status.ready, 1)
        for _ in range(cycles):
            (_, _, ov, mv, mp, sv, sp) = await ctx.tick().sample(
                dut.mm2s_data.valid, dut.mm2s_status.valid, dut.mm2s_status.payload,
                dut.s2mm_status.valid, dut.s2mm_status.payload)
            if mv:
                seen["mst"].append((int(mp.tag), DmaError(int(mp.error))))
            if sv:
                seen["sst"].append((int(sp.tag), DmaError(int(sp.error))))
        seen["idle"] = ctx.get(dut.idle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(memory)
    sim.add_testbench(driver, background=True)
    sim.add_testbench(feeder, background=True)
    sim.add_testbench(sinks)
    sim.run()
    seen["mem"] = mem
    return seen


def test_window_refuses_a_wrap():
    top = 1 << CFG.addr_width
    # A window reaching past the top of the address space (base + size > 2^32):
    # a descriptor running over the top would wrap to address 0.
    for window in ((0x1000, top), EVERYTHING):
        seen = run_dma([(top - 16, 32, 1), (top - 16, 16, 2)], [(top - 8, 16, 3)],
                       [bytes(16)], window=window)
        assert seen["mst"] == [(1, DmaError.WINDOW), (2, DmaError.OK)], (window, seen["mst"])
        assert seen["sst"] == [(3, DmaError.WINDOW)], (window, seen["sst"])
        assert seen["ar"] == [(top - 16, 4)] and seen["aw"] == []


def test_window_edges():
    window = (0x100, 0x100)
    seen = run_dma([(0x1F0, 16, 1), (0x1F0, 17, 2), (0xFF, 4, 3), (0x100, 4, 4)],
                   window=window)
    assert seen["mst"] == [(1, DmaError.OK), (2, DmaError.WINDOW), (3, DmaError.WINDOW),
                           (4, DmaError.OK)]


def test_s2mm_abort_leaves_the_input_alone():
    """Once the abort is seen, no input beat is taken (docs/dma.md: abort)."""
    packet = bytes(range(64))
    seen = run_dma(descs_s=[(0x100, 64, 7)], packets=[packet], abort_after_beats=3,
                   b_delay=6)
    assert seen["abort_cycle"] is not None
    late = [c for c in seen["in_taken"] if c > seen["abort_cycle"] + 1]
    assert not late, f"input beats taken after the abort: cycles {late}"
    assert seen["sst"] == [(7, DmaError.ABORTED)]
    assert seen["idle"]


def test_s2mm_bus_error_wins_over_length_mismatch():
    """Status precedence: bus error, then window, abort, length mismatch."""
    descs = [(0x200, 16, 1), (0x300, 16, 2), (0x400, 8, 3)]
    packets = [bytes(12), bytes(12), bytes(12)]     # short, short, long
    seen = run_dma(descs_s=descs, packets=packets, b_error={0x200})
    assert seen["sst"] == [(1, DmaError.SLVERR), (2, DmaError.LENGTH_MISMATCH),
                           (3, DmaError.LENGTH_MISMATCH)]


def test_s2mm_first_bus_error_kept():
    """An error on the first burst stays the status though later bursts answer OKAY."""
    seen = run_dma(descs_s=[(0x800, 12 * B, 5)], packets=[bytes(12 * B)],
                   b_error={0x800}, b_delay=12)
    assert len(seen["aw"]) >= 2, "the test needs a second burst in flight"
    assert seen["sst"] == [(5, DmaError.SLVERR)]


def test_write_bursts_in_flight_bounded():
    """At most max_outstanding bursts in flight per direction, and the limit is reached."""
    n = 8 * CFG.max_burst_beats * B
    seen = run_dma(descs_m=[(0x1000, n, 1)], descs_s=[(0x2000, n, 2)], packets=[bytes(n)],
                   b_delay=20, r_delay=20, cycles=600)
    assert seen["mst"] == [(1, DmaError.OK)] and seen["sst"] == [(2, DmaError.OK)]
    assert seen["aw_in_flight"] == CFG.max_outstanding, seen["aw_in_flight"]
    assert seen["ar_in_flight"] == CFG.max_outstanding, seen["ar_in_flight"]
