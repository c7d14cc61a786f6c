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

def _simulate(descs_m, descs_s, packets, mem, *, errors=(), window=None, cycles=600):
    """Run the engine with a Python AXI memory; return observations."""
    dut = DmaEngine(CFG)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    mem = bytearray(mem)
    seen = {"out": [], "mst": [], "sst": [], "ar": [], "aw": []}
    rng = random.Random(1)
    base, size = window or (0, 1 << CFG.addr_width)

    async def memory(ctx):
        bus = dut.bus
        rq, wq, bq = deque(), deque(), deque()
        rbeat = bbeat = None
        while True:
            if rbeat is None and rq:
                rbeat = rq.popleft()
            if bbeat is None and bq:
                bbeat = bq.popleft()
            ctx.set(bus.r.valid, rbeat is not None)
            if rbeat is not None:
                ctx.set(bus.r.data, rbeat[0])
                ctx.set(bus.r.last, rbeat[1])
                ctx.set(bus.r.resp, rbeat[2])
            ctx.set(bus.b.valid, bbeat is not None)
            ctx.set(bus.b.resp, bbeat or 0)
            stall = rng.random() < 0.3
            ctx.set(bus.ar.ready, not stall)
            ctx.set(bus.aw.ready, 1)
            ctx.set(bus.w.ready, not stall)
            (arv, ara, arl, arr, rr, awv, awa, awl, wv, wd, ws, wl, wr, br) = \
                (await ctx.tick().sample(
                    bus.ar.valid, bus.ar.addr, bus.ar.len, bus.ar.ready, bus.r.ready,
                    bus.aw.valid, bus.aw.addr, bus.aw.len, bus.w.valid, bus.w.data, bus.w.strb,
                    bus.w.last, bus.w.ready, bus.b.ready))[2:]
            if arv and arr:
                seen["ar"].append((ara, arl + 1))
                for i in range(arl + 1):
                    a = ara + i * B
                    resp = 2 if a in errors else 0
                    rq.append((int.from_bytes(mem[a:a + B], "little"), i == arl, resp))
            if rbeat is not None and rr:
                rbeat = None
            if awv:
                seen["aw"].append((awa, awl + 1))
                wq.extend(awa + i * B for i in range(awl + 1))
            if wv and wr:
                a = wq.popleft()
                for lane in range(B):
                    if ws >> lane & 1:
                        mem[a + lane] = wd >> (8 * lane) & 0xFF
                if wl:
                    bq.append(0)
            if bbeat is not None and br:
                bbeat = None

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

    async def sinks(ctx):
        ctx.set(dut.mm2s_data.ready, 1)
        ctx.set(dut.mm2s_status.ready, 1)
        ctx.set(dut.s2mm_status.ready, 1)
        packet = bytearray()
        for _ in range(cycles):
            (_, _, ov, op, mv, mp, sv, sp) = await ctx.tick().sample(
                dut.mm2s_data.valid, dut.mm2s_data.payload, dut.mm2s_status.valid,
                dut.mm2s_status.payload, dut.s2mm_status.valid, dut.s2mm_status.payload)
            if ov:
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
