"""Fast tests of the DMA engine: config, model, AXI checker, small amaranth.sim runs."""

import random
from collections import deque

import pytest
from amaranth.sim import Simulator

from lpaccel.rtl.dma import DmaConfig, DmaEngine, DmaError
from lpaccel.sim.golden.dma import (
    Descriptor,
    Status,
    bursts,
    check_aborted_run,
    check_burst,
    mm2s_expected,
    s2mm_expected,
)

CFG = DmaConfig(data_width=32, max_burst_beats=4, max_outstanding=2, queue_depth=2)
B = CFG.beat_bytes


# --- config -----------------------------------------------------------------

@pytest.mark.parametrize("field,value,message", [
    ("data_width", 48, "data_width must be one of 32, 64, 128, 256, 512, not 48"),
    ("data_width", 16, "data_width must be one of"),
    ("max_burst_beats", 257, "max_burst_beats must be an integer from 1 to 256, not 257"),
    ("max_outstanding", 0, "max_outstanding must be an integer from 1 to 32, not 0"),
    ("len_width", 40, "len_width must be an integer from 1 to 32"),
    ("addr_width", 8, "addr_width must be an integer from 12 to 64, not 8"),
])
def test_config_rejects(field, value, message):
    with pytest.raises(ValueError, match=message):
        DmaConfig(**{field: value})


def test_engine_rejects_non_config():
    with pytest.raises(TypeError, match="config must be a DmaConfig"):
        DmaEngine({"data_width": 32})


# --- model and checker ------------------------------------------------------

def test_bursts_split_at_4k_and_max_burst():
    cfg = DmaConfig(data_width=64, max_burst_beats=16)
    assert bursts(cfg, 0x0FF8, 16) == [(0x0FF8, 1), (0x1000, 1)]
    assert bursts(cfg, 0x0F00, 0x300) == [(0x0F00, 16), (0x0F80, 16), (0x1000, 16),
                                           (0x1080, 16), (0x1100, 16), (0x1180, 16)]
    assert bursts(cfg, 3, 0) == []
    for addr in range(0, 0x3000, 37):
        for length in (1, 7, 200, 4097):
            got = bursts(cfg, addr, length)
            assert sum(n for _, n in got) == (addr + length - 1) // 8 - addr // 8 + 1
            for a, n in got:
                assert check_burst(cfg, a, n - 1, 3, 1) is None


@pytest.mark.parametrize("addr,length,size,burst,problem", [
    (0x0FFC, 1, 2, 1, "crosses a 4 KiB boundary"),
    (0x0000, 4, 2, 1, "exceed max_burst_beats=4"),
    (0x0002, 0, 2, 1, "not aligned"),
    (0x0000, 0, 1, 1, "not the full beat"),
    (0x0000, 0, 2, 0, "not INCR"),
])
def test_check_burst_catches(addr, length, size, burst, problem):
    """The protocol checker used on every AR/AW in cocotb flags each bad request."""
    assert problem in check_burst(CFG, addr, length, size, burst)
    assert check_burst(CFG, 0x0FFC, 0, 2, 1) is None
    assert check_burst(CFG, 0x0FF0, 3, 2, 1) is None


def test_model_mm2s_error_prefix():
    mem = bytes(range(256)) * 4
    d = [Descriptor(1, 40, tag=1), Descriptor(64, 16, tag=2), Descriptor(128, 0, tag=3)]
    packets, statuses, _ = mm2s_expected(CFG, mem, d, errors={12: DmaError.DECERR})
    # Unaligned start: read beats 0..2 are fine, beat 3 fails; two output beats left.
    assert statuses[0] == Status(1, 8, DmaError.DECERR)
    assert packets[0] == mem[1:9]
    assert statuses[1:] == [Status(2, 16, DmaError.OK), Status(3, 0, DmaError.OK)]


def test_check_aborted_run_catches():
    d = [Descriptor(0, 8, tag=i) for i in range(3)]
    ok = [Status(i, 8, DmaError.OK) for i in range(3)]
    ab = Status(1, 4, DmaError.ABORTED)
    check_aborted_run(d, [ok[0], ab, ok[2]], ok)
    with pytest.raises(AssertionError, match="tag"):
        check_aborted_run(d, [ok[0], Status(2, 4, DmaError.ABORTED), ok[2]], ok)
    with pytest.raises(AssertionError, match="ABORTED after the abort"):
        check_aborted_run(d, [Status(0, 0, DmaError.ABORTED), ok[1],
                              Status(2, 0, DmaError.ABORTED)], ok)
    with pytest.raises(AssertionError):
        check_aborted_run(d, [Status(0, 7, DmaError.OK), ab, ok[2]], ok)


# --- amaranth.sim -----------------------------------------------------------

def _simulate(descs_m, descs_s, packets, mem, *, errors=(), window=None, cycles=600,
              cfg=CFG, werrors=(), latency=0, stall=0.3, abort_at=None):
    """Run the engine with a Python AXI memory; return observations.

    ``errors``/``werrors``: beat addresses whose read beat / write burst
    answers SLVERR. ``latency``: cycles from an accepted AR (a write's last
    W beat) until its first R beat (its B response) may be offered.
    ``stall``: probability that AR and W are not ready in a cycle.
    ``abort_at``: cycle at which ``abort`` is high for one cycle.

    Besides what came out, the observations hold the most bursts in flight
    per direction (``peak``), the cycles of the MM2S data and W handshakes,
    and the violations of the abort rules (``abort_faults``): an input beat
    taken, or a W beat formed with a strobe, while the engine was aborting.
    """
    B = cfg.beat_bytes
    dut = DmaEngine(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    mem = bytearray(mem)
    seen = {"out": [], "mst": [], "sst": [], "ar": [], "aw": [], "peak": {"reads": 0, "writes": 0},
            "out_cycles": [], "w_cycles": [], "abort_faults": [], "zero_strobe_beats": 0}
    rng = random.Random(1)
    base, size = window or (0, 1 << cfg.addr_width)
    now = [0]

    async def memory(ctx):
        bus = dut.bus
        rq, wq, bq = deque(), deque(), deque()
        rbeat = bbeat = None
        reads = writes = 0
        wbad = False
        while True:
            if rbeat is None and rq and rq[0][0] <= now[0]:
                rbeat = rq.popleft()[1:]
            if bbeat is None and bq and bq[0][0] <= now[0]:
                bbeat = bq.popleft()[1]
            ctx.set(bus.r.valid, rbeat is not None)
            if rbeat is not None:
                ctx.set(bus.r.data, rbeat[0])
                ctx.set(bus.r.last, rbeat[1])
                ctx.set(bus.r.resp, rbeat[2])
            ctx.set(bus.b.valid, bbeat is not None)
            ctx.set(bus.b.resp, bbeat or 0)
            stalled = rng.random() < stall
            ctx.set(bus.ar.ready, not stalled)
            ctx.set(bus.aw.ready, 1)
            ctx.set(bus.w.ready, not stalled)
            (arv, ara, arl, arr, rr, rv, awv, awa, awl, wv, wd, ws, wl, wr, br, bv) = \
                (await ctx.tick().sample(
                    bus.ar.valid, bus.ar.addr, bus.ar.len, bus.ar.ready, bus.r.ready,
                    bus.r.valid, bus.aw.valid, bus.aw.addr, bus.aw.len, bus.w.valid, bus.w.data,
                    bus.w.strb, bus.w.last, bus.w.ready, bus.b.ready, bus.b.valid))[2:]
            now[0] += 1
            if arv and arr:
                seen["ar"].append((ara, arl + 1))
                reads += 1
                for i in range(arl + 1):
                    a = ara + i * B
                    resp = 2 if a in errors else 0
                    rq.append((now[0] + latency, int.from_bytes(mem[a:a + B], "little"),
                               i == arl, resp))
            if rbeat is not None and rr:
                reads -= rbeat[1]
                rbeat = None
            if awv:
                seen["aw"].append((awa, awl + 1))
                writes += 1
                wq.extend(awa + i * B for i in range(awl + 1))
            if wv and wr:
                seen["w_cycles"].append(now[0])
                a = wq.popleft()
                wbad |= a in werrors
                for lane in range(B):
                    if ws >> lane & 1:
                        mem[a + lane] = wd >> (8 * lane) & 0xFF
                if wl:
                    bq.append((now[0] + latency, 2 if wbad else 0))
                    wbad = False
            if bv and br:
                writes -= 1
                bbeat = None
            seen["peak"]["reads"] = max(seen["peak"]["reads"], reads)
            seen["peak"]["writes"] = max(seen["peak"]["writes"], writes)

    async def handshake(ctx, port):
        # Not ``tick().until()``: a background testbench may be stopped here.
        while not (await ctx.tick().sample(port.ready))[2]:
            pass

    async def driver(ctx):
        ctx.set(dut.window_base, base)
        ctx.set(dut.window_size, size)
        for d in descs_m:
            ctx.set(dut.mm2s_descriptors.payload,
                    {"addr": d.addr, "length": d.length, "tag": d.tag, "flags": d.flags})
            ctx.set(dut.mm2s_descriptors.valid, 1)
            await handshake(ctx, dut.mm2s_descriptors)
        ctx.set(dut.mm2s_descriptors.valid, 0)
        for d in descs_s:
            ctx.set(dut.s2mm_descriptors.payload,
                    {"addr": d.addr, "length": d.length, "tag": d.tag, "flags": d.flags})
            ctx.set(dut.s2mm_descriptors.valid, 1)
            await handshake(ctx, dut.s2mm_descriptors)
        ctx.set(dut.s2mm_descriptors.valid, 0)

    async def feeder(ctx):
        for p in packets:
            beats = max(1, -(-len(p) // B))
            for i in range(beats):
                chunk = p[i * B:(i + 1) * B]
                ctx.set(dut.s2mm_data.payload, {"data": int.from_bytes(chunk, "little"),
                                                "bytes": len(chunk), "last": i == beats - 1})
                ctx.set(dut.s2mm_data.valid, 1)
                await handshake(ctx, dut.s2mm_data)
        ctx.set(dut.s2mm_data.valid, 0)

    async def aborter(ctx):
        await ctx.tick().repeat(abort_at)
        ctx.set(dut.abort, 1)
        await ctx.tick()
        ctx.set(dut.abort, 0)

    async def sinks(ctx):
        ctx.set(dut.mm2s_data.ready, 1)
        ctx.set(dut.mm2s_status.ready, 1)
        ctx.set(dut.s2mm_status.ready, 1)
        packet = bytearray()
        w_was_valid = w_was_taken = formed_aborting = False
        # A request still offered from before the abort may be accepted
        # during it (AXI: VALID holds until READY); a new one may not appear.
        was_offered = {"ar": False, "aw": False}
        for cycle in range(cycles):
            # The engine's own "aborting" state (docs/dma.md, Abort): what it
            # does in a cycle while it is set is what the abort rules govern.
            aborting = ctx.get(dut._aborting)
            (_, _, ov, op, mv, mp, sv, sp, iv, ir, wv, wr, ws, arv, arr, awv, awr) = \
                await ctx.tick().sample(
                    dut.mm2s_data.valid, dut.mm2s_data.payload, dut.mm2s_status.valid,
                    dut.mm2s_status.payload, dut.s2mm_status.valid, dut.s2mm_status.payload,
                    dut.s2mm_data.valid, dut.s2mm_data.ready, dut.bus.w.valid,
                    dut.bus.w.ready, dut.bus.w.strb, dut.bus.ar.valid, dut.bus.ar.ready,
                    dut.bus.aw.valid, dut.bus.aw.ready)
            if aborting and iv and ir:
                seen["abort_faults"].append(f"cycle {cycle}: s2mm_data beat taken while aborting")
            # A W beat first offered now was formed in the previous cycle.
            if wv and (not w_was_valid or w_was_taken) and formed_aborting and ws:
                seen["abort_faults"].append(f"cycle {cycle}: W beat formed while aborting "
                                            f"has WSTRB={ws:#x}")
            elif wv and (not w_was_valid or w_was_taken) and formed_aborting:
                seen["zero_strobe_beats"] += 1
            for ch, (valid, ready) in (("ar", (arv, arr)), ("aw", (awv, awr))):
                if valid and not was_offered[ch] and aborting:
                    seen["abort_faults"].append(f"cycle {cycle}: new {ch.upper()} offered "
                                                f"while aborting")
                was_offered[ch] = valid and not ready
            w_was_valid, w_was_taken, formed_aborting = wv, wv and wr, aborting
            if ov:
                seen["out_cycles"].append(cycle)
                packet += int(op.data).to_bytes(B, "little")[:int(op.bytes)]
                if op.last:
                    seen["out"].append(bytes(packet))
                    packet = bytearray()
            if mv:
                seen["mst"].append(Status(int(mp.tag), int(mp.bytes), DmaError(int(mp.error)),
                                          int(mp.flags)))
            if sv:
                seen["sst"].append(Status(int(sp.tag), int(sp.bytes), DmaError(int(sp.error)),
                                          int(sp.flags)))
        seen["idle"] = ctx.get(dut.idle)

    sim.add_process(memory)
    sim.add_testbench(driver, background=True)
    sim.add_testbench(feeder, background=True)
    if abort_at is not None:
        sim.add_testbench(aborter, background=True)
    sim.add_testbench(sinks)
    sim.run()
    seen["mem"] = mem
    return seen


def test_sim_mm2s_and_s2mm_small():
    rng = random.Random(3)
    mem = bytes(rng.getrandbits(8) for _ in range(0x4000))
    dm = [Descriptor(0x0FF5, 30, tag=1, flags=3), Descriptor(0x20, 0, tag=2),
          Descriptor(0x41, 3, tag=3), Descriptor(0x100, 2 * B, tag=4)]
    ds = [Descriptor(0x2003, 13, tag=5), Descriptor(0x2100, 0, tag=6),
          Descriptor(0x2FFE, 9, tag=7, flags=1)]
    packets = [bytes(rng.getrandbits(8) for _ in range(d.length)) for d in ds]
    seen = _simulate(dm, ds, packets, mem)
    want_p, want_m, want_ar = mm2s_expected(CFG, mem, dm)
    want_img, want_s, want_aw, _ = s2mm_expected(CFG, mem, ds, packets)
    assert seen["mst"] == want_m
    assert seen["out"] == want_p
    assert seen["ar"] == want_ar
    assert seen["sst"] == want_s
    assert seen["aw"] == want_aw
    assert seen["mem"] == want_img
    assert seen["idle"]


def test_sim_window_and_slverr():
    mem = bytes(range(256)) * 16
    dm = [Descriptor(0x10, 8, tag=1), Descriptor(0x800, 4 * B, tag=2),
          Descriptor(0x40, 12, tag=3)]
    seen = _simulate(dm, [], [], mem, errors={0x808}, window=(0x0, 0xFF0 + 0x10))
    assert seen["mst"] == [Status(1, 8, DmaError.OK), Status(2, 2 * B, DmaError.SLVERR),
                           Status(3, 12, DmaError.OK)]
    assert seen["out"] == [mem[0x10:0x18], mem[0x800:0x808], mem[0x40:0x4C]]
    seen = _simulate([Descriptor(0x0FF8, 9, tag=4)], [], [], mem, window=(0, 0x1000))
    assert seen["mst"] == [Status(4, 0, DmaError.WINDOW)]
    assert seen["out"] == [b""] and seen["ar"] == []


def test_refused_engine_leaves_no_unused_elaboratable():
    import gc
    import warnings

    from amaranth.hdl import UnusedElaboratable
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TypeError, match=r"config must be a DmaConfig, not 'x'"):
            DmaEngine("x")
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, UnusedElaboratable)]


# --- docs/dma.md rules, each pinned in amaranth.sim --------------------------

@pytest.mark.parametrize("beats,outstanding,latency", [
    (4, 2, 3), (4, 2, 10), (16, 1, 0), (8, 3, 10), (8, 3, 30),
])
def test_sim_throughput_and_outstanding_limit(beats, outstanding, latency):
    """docs/dma.md, Bursts and Measured throughput: with ``k`` bursts of ``n``
    beats in flight and a memory that waits ``L`` cycles per burst, the
    engine moves at least ``min(1, k n / (n + L + 2))`` beats per cycle on
    MM2S and ``min(1, k n / (n + L + 3))`` on S2MM (its own round trip per
    burst is 2 and 3 cycles), and has exactly ``k`` bursts in flight at its
    peak, never more."""
    cfg = DmaConfig(data_width=32, max_burst_beats=beats, max_outstanding=outstanding,
                    queue_depth=2)
    B = cfg.beat_bytes
    n = 24 * beats
    mem = bytes(random.Random(1).getrandbits(8) for _ in range(0x4000))
    packet = bytes(random.Random(2).getrandbits(8) for _ in range(n * B))
    seen = _simulate([Descriptor(0x1000, n * B, tag=1)], [Descriptor(0x2000, n * B, tag=2)],
                     [packet], mem, cfg=cfg, latency=latency, stall=0,
                     cycles=n * (beats + latency + 4) // (beats * outstanding) + 200)
    assert seen["mst"] == [Status(1, n * B, DmaError.OK)]
    assert seen["sst"] == [Status(2, n * B, DmaError.OK)]
    assert seen["out"] == [mem[0x1000:0x1000 + n * B]]
    assert seen["mem"][0x2000:0x2000 + n * B] == packet
    assert seen["peak"] == {"reads": outstanding, "writes": outstanding}, seen["peak"]
    for name, overhead in (("out_cycles", 2), ("w_cycles", 3)):
        cycles = seen[name]
        rate = len(cycles) / (cycles[-1] - cycles[0] + 1)
        bound = min(1.0, outstanding * beats / (beats + latency + overhead))
        assert len(cycles) == n
        assert rate >= bound, f"{name}: {rate:.4f} beats/cycle, bound {bound:.4f}"


def test_sim_abort_rules():
    """docs/dma.md, Abort: once aborting, no s2mm_data beat is taken, every W
    beat formed goes out with WSTRB = 0, no new AR or AW is offered; every
    descriptor ends ABORTED and the engine returns to idle."""
    cfg = CFG
    B = cfg.beat_bytes
    mem = bytes(random.Random(4).getrandbits(8) for _ in range(0x4000))
    dm = [Descriptor(0x100, 64 * B, tag=1)]
    ds = [Descriptor(0x2000, 64 * B, tag=2)]
    packets = [bytes(random.Random(5).getrandbits(8) for _ in range(64 * B))]
    seen = _simulate(dm, ds, packets, mem, latency=4, stall=0.3, abort_at=60, cycles=500)
    assert not seen["abort_faults"], seen["abort_faults"]
    assert [s.error for s in seen["mst"]] == [DmaError.ABORTED]
    assert [s.error for s in seen["sst"]] == [DmaError.ABORTED]
    # The abort came mid-transfer: bursts were in flight and W beats formed
    # while aborting were counted (the rules above were really exercised).
    assert 0 < seen["sst"][0].bytes < 64 * B and 0 < seen["mst"][0].bytes < 64 * B
    assert seen["zero_strobe_beats"] > 0, "no W beat was formed while aborting"
    assert seen["idle"]
    # Nothing strobed past what the status reports as written.
    written = sum(1 for a in range(0x2000, 0x2000 + 64 * B) if seen["mem"][a] != mem[a])
    assert written <= seen["sst"][0].bytes


def test_sim_bus_error_wins_over_length_mismatch():
    """docs/dma.md, Status: SLVERR/DECERR take precedence over LENGTH_MISMATCH
    (a shorter and a longer packet, each with a failing write burst), and the
    next descriptor is exact."""
    B = CFG.beat_bytes
    mem = bytes(0x4000)
    ds = [Descriptor(0x2000, 8 * B, tag=1), Descriptor(0x2100, 4 * B, tag=2),
          Descriptor(0x2200, 3 * B, tag=3), Descriptor(0x2300, 2 * B, tag=4)]
    packets = [bytes(range(5 * B)), bytes(range(6 * B)), bytes(range(3 * B)),
               bytes(range(3 * B))]
    seen = _simulate([], ds, packets, mem, werrors={0x2000, 0x2100}, cycles=400)
    assert [s.error for s in seen["sst"]] == [DmaError.SLVERR, DmaError.SLVERR, DmaError.OK,
                                              DmaError.LENGTH_MISMATCH]
    assert seen["sst"][2] == Status(3, 3 * B, DmaError.OK)
    assert seen["mem"][0x2200:0x2200 + 3 * B] == packets[2]
    assert seen["idle"]


def test_sim_descriptor_wrapping_the_address_space():
    """docs/dma.md, Descriptor: with the window the whole address space, a
    descriptor ending exactly at ``2**addr_width`` runs; one whose end would
    wrap past it is WINDOW, with no bus beat, in both directions (its S2MM
    packet is still consumed)."""
    cfg = DmaConfig(data_width=32, max_burst_beats=4, max_outstanding=2, queue_depth=2,
                    addr_width=16, len_width=12)
    top = 1 << 16
    mem = bytes(random.Random(6).getrandbits(8) for _ in range(top))
    dm = [Descriptor(top - 16, 16, tag=1), Descriptor(top - 8, 16, tag=2),
          Descriptor(top - 1, 2, tag=3), Descriptor(top - 4, 4, tag=4)]
    ds = [Descriptor(top - 32, 16, tag=5), Descriptor(top - 12, 13, tag=6),
          Descriptor(top - 12, 12, tag=7)]
    packets = [bytes([0xA5] * 16), bytes([0x5A] * 13), bytes([0x3C] * 12)]
    seen = _simulate(dm, ds, packets, mem, cfg=cfg, stall=0, cycles=400)
    assert seen["mst"] == [Status(1, 16, DmaError.OK), Status(2, 0, DmaError.WINDOW),
                           Status(3, 0, DmaError.WINDOW), Status(4, 4, DmaError.OK)]
    assert seen["out"] == [mem[top - 16:], b"", b"", mem[top - 4:]]
    assert seen["ar"] == [(top - 16, 4), (top - 4, 1)]
    assert seen["sst"] == [Status(5, 16, DmaError.OK), Status(6, 0, DmaError.WINDOW),
                           Status(7, 12, DmaError.OK)]
    assert seen["aw"] == [(top - 32, 4), (top - 12, 3)]
    assert seen["mem"][top - 32:top - 16] == packets[0]
    assert seen["mem"][top - 12:] == packets[2]
    assert seen["idle"]


@pytest.mark.slow
def test_sim_thousand_zero_length_descriptors():
    """>= 1,000 zero-length descriptors mixed in order with real ones, both
    channels: every status in order and equal to the model's, every packet
    exact (a zero-byte packet each), memory exact."""
    rng = random.Random(8)
    B = CFG.beat_bytes
    mem = bytes(rng.getrandbits(8) for _ in range(0x4000))
    dm, ds = [], []
    for i in range(1100):
        zero = rng.random() < 0.92
        dm.append(Descriptor(rng.randrange(0x1000), 0 if zero else rng.randrange(1, 5 * B),
                             tag=i & 0xFF, flags=i & 3))
        addr = 0x2000 + (i % 64) * 0x40 + rng.randrange(B)
        ds.append(Descriptor(addr, 0 if zero else rng.randrange(1, 0x30), tag=(i * 3) & 0xFF))
    assert sum(d.length == 0 for d in dm) >= 1000 and sum(d.length == 0 for d in ds) >= 1000
    packets = [bytes(rng.getrandbits(8) for _ in range(d.length)) for d in ds]
    seen = _simulate(dm, ds, packets, mem, stall=0.2, latency=2, cycles=40_000)
    want_p, want_m, want_ar = mm2s_expected(CFG, mem, dm)
    want_img, want_s, want_aw, _ = s2mm_expected(CFG, mem, ds, packets)
    assert seen["mst"] == want_m
    assert seen["out"] == want_p
    assert seen["ar"] == want_ar
    assert seen["sst"] == want_s
    assert seen["aw"] == want_aw
    assert seen["mem"] == want_img
    assert seen["idle"]
