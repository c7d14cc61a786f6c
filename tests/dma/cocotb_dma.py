"""cocotb regression of the DMA engine against :mod:`lpaccel.sim.golden.dma`.

Memory is cocotbext-axi's ``AxiRam`` (with pause generators on all five
channels) extended to answer SLVERR on chosen beats; the top's
``decerr_mode`` turns those into DECERR. Streams use
:mod:`lpaccel.sim.infra.streams`. An AXI monitor checks every AR/AW request (INCR,
full size, aligned, ``max_burst_beats``, no 4 KiB crossing, valid and fields
stable until accepted) and counts what is outstanding; the project's
:class:`~lpaccel.sim.infra.axi_checker.AxiProtocolChecker` watches the same
port (every AXI4 rule, reset included), and every test ends with it idle and
clean and with no more than ``max_outstanding`` bursts ever in flight per
direction.
"""

import json
import logging
import os
import random
import warnings

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiBus, AxiRam
from cocotbext.axi.axi_ram import AxiRamRead, AxiRamWrite

from lpaccel.rtl.dma.engine import DmaConfig, DmaError
from lpaccel.sim.golden.dma import (
    Descriptor,
    Status,
    check_aborted_run,
    check_burst,
    mm2s_expected,
    s2mm_expected,
)
from lpaccel.sim.infra import coverage
from lpaccel.sim.infra.axi_checker import AxiProtocolChecker
from lpaccel.sim.infra.harness import params
from lpaccel.sim.infra.streams import PAUSE_MODES, StreamSink, StreamSource, unpack

# cocotbext-axi 0.1.28 still calls cocotb APIs that cocotb 2.1 deprecates;
# those warnings are not ours to fix. Our own code keeps them as errors.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.axi(\.|$)")

P = params()
KNOBS = json.loads(os.environ.get("DMA_TEST", "{}"))
CFG = DmaConfig(**P)
B = CFG.beat_bytes
MEM_SIZE = 1 << 16
SRC_BASE = 0x0000       # MM2S reads from the low half
DST_BASE = 0x8000       # S2MM writes into the high half
FULL_WINDOW = (0, 1 << CFG.addr_width)
# Functional coverage of the descriptors run (docs/verification.md,
# "Functional coverage"): one file per simulation process, merged by
# ``python -m lpaccel.sim.infra.coverage merge build/coverage``.
COV = coverage.dma_coverage(CFG)
COV_NAME = f"dma-{CFG.data_width}b{CFG.max_burst_beats}-{os.getpid()}"


class ErrorMemory:
    """Beat addresses that answer SLVERR (DECERR through the top's rewriter)."""

    def __init__(self):
        self.errors = {}

    def check(self, address):
        if address // B * B in self.errors:
            raise OSError(f"injected error at {address:#x}")


class ErrorAxiRamRead(AxiRamRead):
    async def _read(self, address, length):
        self.faults.check(address)
        return await super()._read(address, length)


class ErrorAxiRamWrite(AxiRamWrite):
    async def _write(self, address, data):
        self.faults.check(address)
        await super()._write(address, data)


class ErrorAxiRam(AxiRam):
    """``AxiRam`` whose reads and writes of chosen beats fail with SLVERR."""

    def __init__(self, bus, clock, reset, size, faults):
        # Build as AxiRam does, but with the error-injecting halves.
        from cocotbext.axi.memory import Memory
        Memory.__init__(self, size)
        self.write_if = ErrorAxiRamWrite(bus.write, clock, reset, True, mem=self.mem)
        self.read_if = ErrorAxiRamRead(bus.read, clock, reset, True, mem=self.mem)
        self.write_if.faults = faults
        self.read_if.faults = faults


class AxiMonitor:
    """Checks AR/AW requests and counts transactions on the manager port."""

    def __init__(self, dut):
        self.dut = dut
        self.reads, self.writes = [], []
        self.r_lasts = self.b_resps = self.w_beats = 0
        self.errors = []
        self.outstanding_seen = 0
        cocotb.start_soon(self._run())

    def _sample(self, ch):
        d = self.dut
        return tuple(int(getattr(d, f"m_axi_{ch}{f}").value)
                     for f in ("addr", "len", "size", "burst"))

    async def _run(self):
        held = {"ar": None, "aw": None}
        while True:
            await RisingEdge(self.dut.clk)
            await ReadOnly()
            d = self.dut
            for ch, log in (("ar", self.reads), ("aw", self.writes)):
                valid = int(getattr(d, f"m_axi_{ch}valid").value)
                ready = int(getattr(d, f"m_axi_{ch}ready").value)
                fields = self._sample(ch) if valid else None
                if held[ch] is not None and fields != held[ch]:
                    self._error(f"{ch}: valid/fields changed before acceptance: "
                                f"{held[ch]} -> {fields}")
                if valid and ready:
                    addr, length, size, burst = fields
                    problem = check_burst(CFG, addr, length, size, burst)
                    if problem:
                        self._error(f"{ch.upper()} {addr:#x}: {problem}")
                    log.append((addr, length + 1))
                held[ch] = fields if valid and not ready else None
            if int(d.m_axi_rvalid.value) and int(d.m_axi_rready.value) and int(d.m_axi_rlast.value):
                self.r_lasts += 1
            if int(d.m_axi_wvalid.value) and int(d.m_axi_wready.value):
                self.w_beats += 1
            if int(d.m_axi_bvalid.value) and int(d.m_axi_bready.value):
                self.b_resps += 1
            self.outstanding_seen = max(self.outstanding_seen, len(self.reads) - self.r_lasts)

    def _error(self, message):
        self.errors.append(message)
        self.dut._log.error(message)
        raise AssertionError(message)

    def reads_outstanding(self):
        return len(self.reads) - self.r_lasts


class DmaTB:
    """Clock, memory, stream drivers and monitors around one DMA engine."""

    def __init__(self, dut, *, idle="none", backpressure="none", bus="none", seed=0):
        self.dut = dut
        self.rng = random.Random(seed)
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.faults = ErrorMemory()
        self.ram = ErrorAxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, MEM_SIZE,
                               self.faults)
        for half in (self.ram.write_if, self.ram.read_if):
            half.log.setLevel(logging.WARNING)   # one INFO line per burst otherwise
        for i, ch in enumerate((self.ram.write_if.aw_channel, self.ram.write_if.w_channel,
                                self.ram.write_if.b_channel, self.ram.read_if.ar_channel,
                                self.ram.read_if.r_channel)):
            ch.set_pause_generator(PAUSE_MODES[bus](seed=seed * 10 + i))
        mode = PAUSE_MODES
        self.mm2s_desc = StreamSource(dut.clk, dut, "mm2s_descriptors",
                                      pause=mode[idle](seed=seed + 101),
                                      layout=CFG.descriptor_layout)
        self.s2mm_desc = StreamSource(dut.clk, dut, "s2mm_descriptors",
                                      pause=mode[idle](seed=seed + 102),
                                      layout=CFG.descriptor_layout)
        self.idle_mode, self.seed = idle, seed
        self.modes = {"idle": idle, "backpressure": backpressure, "bus": bus}
        self.s2mm_data = StreamSource(dut.clk, dut, "s2mm_data",
                                      pause=mode[idle](seed=seed + 103),
                                      layout=CFG.beat_layout)
        self.mm2s_data = StreamSink(dut.clk, dut, "mm2s_data",
                                    pause=mode[backpressure](seed=seed + 104))
        self.mm2s_status = StreamSink(dut.clk, dut, "mm2s_status",
                                      pause=mode[backpressure](seed=seed + 105))
        self.s2mm_status = StreamSink(dut.clk, dut, "s2mm_status",
                                      pause=mode[backpressure](seed=seed + 106))
        self.axi = AxiMonitor(dut)
        self.checker = AxiProtocolChecker(dut.clk, dut, "m_axi", reset=dut.rst)
        dut.abort.value = 0
        dut.decerr_mode.value = 0
        self.set_window(*FULL_WINDOW)

    def set_window(self, base, size):
        self.window = (base, size)
        self.dut.window_base.value = base
        self.dut.window_size.value = size

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    def fill(self, lo, hi):
        data = bytes(self.rng.getrandbits(8) for _ in range(hi - lo))
        self.ram.write(lo, data)
        return data

    def image(self):
        return bytearray(self.ram.read(0, MEM_SIZE))

    def cover(self, direction, descs, statuses):
        """Sample finished descriptors and their status codes into the coverage."""
        for d, s in zip(descs, statuses):
            coverage.dma_sample(COV, CFG, direction, d.addr, d.length, s.error, **self.modes)

    # --- MM2S -------------------------------------------------------------

    def send_mm2s(self, descs):
        for d in descs:
            self.mm2s_desc.send({"addr": d.addr, "length": d.length, "tag": d.tag,
                                 "flags": d.flags})

    async def recv_packet(self):
        out = bytearray()
        while True:
            beat = unpack(CFG.beat_layout, await self.mm2s_data.recv())
            last, n = beat["last"], beat["bytes"]
            assert n <= B, f"MM2S beat with bytes={n} > {B}"
            assert last or n == B, f"MM2S non-last beat carries {n} bytes, not {B}"
            out += beat["data"].to_bytes(B, "little")[:n]
            if last:
                return bytes(out)

    async def recv_status(self, sink):
        s = unpack(CFG.status_layout, await sink.recv())
        return Status(s["tag"], s["bytes"], DmaError(s["error"]), s["flags"])

    async def run_mm2s(self, descs):
        """Send descriptors, return (packets, statuses)."""
        self.send_mm2s(descs)
        packets, statuses = [], []
        for _ in descs:
            packets.append(await self.recv_packet())
            statuses.append(await self.recv_status(self.mm2s_status))
        self.cover("mm2s", descs, statuses)
        return packets, statuses

    # --- S2MM -------------------------------------------------------------

    def send_packet(self, payload):
        beats = max(1, -(-len(payload) // B))
        for i in range(beats):
            chunk = payload[i * B:(i + 1) * B]
            self.s2mm_data.send({"data": int.from_bytes(chunk, "little"),
                                 "bytes": len(chunk), "last": int(i == beats - 1)})

    def send_s2mm(self, descs, packets):
        for d, packet in zip(descs, packets):
            self.s2mm_desc.send({"addr": d.addr, "length": d.length, "tag": d.tag,
                                 "flags": d.flags})
            self.send_packet(packet)

    async def run_s2mm(self, descs, packets):
        self.send_s2mm(descs, packets)
        statuses = [await self.recv_status(self.s2mm_status) for _ in descs]
        self.cover("s2mm", descs, statuses)
        return statuses

    # --- end of test ------------------------------------------------------

    async def check_quiet(self):
        """Every queue empty, nothing outstanding on the bus, engine idle."""
        for _ in range(2000):
            await RisingEdge(self.dut.clk)
            if int(self.dut.idle.value):
                break
        await ReadOnly()
        assert int(self.dut.idle.value) == 1, "engine not idle at the end of the test"
        for source in (self.mm2s_desc, self.s2mm_desc, self.s2mm_data):
            assert source.idle(), f"{source.prefix}: {len(source._queue)} beats never taken"
        for sink in (self.mm2s_data, self.mm2s_status, self.s2mm_status):
            assert sink.empty(), f"{sink.prefix}: {sink.count()} unexpected extra beats"
        assert self.axi.reads_outstanding() == 0, "read bursts outstanding"
        assert self.axi.b_resps == len(self.axi.writes), \
            f"{len(self.axi.writes)} AW but {self.axi.b_resps} B responses"
        assert self.axi.w_beats == sum(n for _, n in self.axi.writes), "W beats != AW beats"
        assert not self.axi.errors
        self.checker.check_idle()
        self.check_outstanding_limit()
        COV.write(COV_NAME)
        self.dut._log.info(COV.summary())

    def check_outstanding_limit(self):
        """docs/dma.md, Bursts: at most ``max_outstanding`` read bursts not
        fully returned and write bursts not answered on B."""
        peak = self.checker.peak_outstanding
        assert max(peak.values()) <= CFG.max_outstanding, (
            f"bursts in flight {peak} exceed max_outstanding={CFG.max_outstanding}")
        return peak


# --- descriptor sets --------------------------------------------------------

def sweep_cases(variant):
    """(start offset, length) pairs: every start lane x 0..4 beats, 4 KiB edges."""
    cases = [(lane, length) for lane in range(B) for length in range(0, 4 * B + 1)]
    # The last beats before a 4 KiB boundary, crossing it or ending on it.
    for k in (1, 2, 3):
        for lane in (0, 1, B - 1):
            start = 4096 - k * B + lane
            cases += [(start, k * B - lane), (start, k * B - lane + 1), (start, 2 * k * B + 3)]
    # Around 4 KiB in length: one per run (all of them in the big sweep).
    # (0, 4096 + 3): 4 KiB or more from an aligned start to an unaligned end
    # (a hole the functional coverage reported).
    big = [(0, 4095), (1, 4096), (B - 1, 4097), (0, 4096 + B), (2 % B, 4096 - B + 1),
           (0, 4096 + 3)]
    if variant is None:
        cases += big
    else:
        cases.append(big[variant % len(big)])
    return cases


def _place(cursor, start):
    """Address for a case at or after ``cursor``: ``start < B`` is a lane in a
    fresh beat; larger ``start`` is a position relative to a 4 KiB page."""
    if start >= B:
        page = cursor // 4096 * 4096
        addr = page + start
        return addr if addr >= cursor else addr + 4096
    return -(-cursor // B) * B + B + start


def layout_mm2s(rng, cases):
    """Source addresses in the low half, one case after the other (wrapping)."""
    descs, cursor = [], SRC_BASE
    for i, (start, length) in enumerate(cases):
        addr = _place(cursor, start)
        if addr + length > SRC_BASE + 0x8000:
            cursor = SRC_BASE
            addr = _place(cursor, start)
        descs.append(Descriptor(addr, length, tag=i & 0xFF, flags=i & (2**CFG.flags_width - 1)))
        cursor = addr + length
    return descs


def layout_s2mm(rng, cases):
    """Destinations in the high half with at least 2 beats of guard bytes around each.

    Returns the descriptors for as many cases as fit, and that count.
    """
    descs, cursor = [], DST_BASE + 2 * B
    for i, (start, length) in enumerate(cases):
        addr = _place(cursor, start)
        if addr + length + 2 * B > MEM_SIZE:
            return descs, i
        descs.append(Descriptor(addr, length, tag=(i * 7) & 0xFF,
                                flags=(i + 1) & (2**CFG.flags_width - 1)))
        cursor = addr + length + 2 * B
    return descs, len(cases)


def with_zero_lengths(rng, cases, count):
    for _ in range(count):
        cases.insert(rng.randrange(len(cases) + 1), (rng.randrange(B), 0))
    return cases


async def sweep(tb, cases):
    rng = tb.rng
    src = tb.fill(0, MEM_SIZE)
    mdescs = layout_mm2s(rng, cases)
    remaining = list(cases)
    while remaining:
        sdescs, used = layout_s2mm(rng, remaining)
        remaining = remaining[used:]
        packets = [bytes(rng.getrandbits(8) for _ in range(d.length)) for d in sdescs]
        before = tb.image()
        want_img, want_sst, want_aw, _ = s2mm_expected(CFG, before, sdescs, packets)
        n_aw = len(tb.axi.writes)
        s_task = cocotb.start_soon(tb.run_s2mm(sdescs, packets))
        sst = await s_task
        for i, (got, want) in enumerate(zip(sst, want_sst)):
            assert got == want, f"S2MM descriptor {i} {sdescs[i]}: status {got}, expected {want}"
        assert tb.axi.writes[n_aw:] == want_aw, "S2MM bursts differ from the model"
        got_img = tb.image()
        bad = [a for a in range(DST_BASE, MEM_SIZE) if got_img[a] != want_img[a]]
        assert not bad, (f"S2MM memory differs at {len(bad)} bytes, first {bad[0]:#x}: "
                         f"{got_img[bad[0]]:#04x}, expected {want_img[bad[0]]:#04x}")
    n_ar = len(tb.axi.reads)
    want_packets, want_mst, want_ar = mm2s_expected(CFG, src, mdescs)
    packets, mst = await tb.run_mm2s(mdescs)
    for i, d in enumerate(mdescs):
        assert mst[i] == want_mst[i], \
            f"MM2S descriptor {i} {d}: status {mst[i]}, expected {want_mst[i]}"
        assert packets[i] == want_packets[i], f"MM2S descriptor {i} {d}: packet differs"
    assert tb.axi.reads[n_ar:] == want_ar, "MM2S bursts differ from the model"


@cocotb.test()
@cocotb.parametrize(idle=list(PAUSE_MODES), backpressure=list(PAUSE_MODES),
                    bus=list(PAUSE_MODES))
async def sweep_all_pauses(dut, idle, backpressure, bus):
    """Lane x length sweep and 4 KiB edges, both directions, under every pause mix."""
    index = (list(PAUSE_MODES).index(idle) * 9 + list(PAUSE_MODES).index(backpressure) * 3
             + list(PAUSE_MODES).index(bus))
    seed = KNOBS.get("seed", 1) * 100 + index
    tb = DmaTB(dut, idle=idle, backpressure=backpressure, bus=bus, seed=seed)
    await tb.reset()
    full = KNOBS.get("full", False)
    cases = sweep_cases(None if full or index == 0 else index)
    if not full and index:
        # Other pause mixes: every lane and length, a random half of the edges.
        base = [c for c in cases if c[0] < B and c[1] <= 4 * B]
        edges = [c for c in cases if c not in base]
        cases = base + tb.rng.sample(edges, len(edges) // 2)
    cases = with_zero_lengths(tb.rng, cases, 6)
    tb.rng.shuffle(cases)
    await sweep(tb, cases)
    # Soak (slow suite): sweep again, reshuffled, until the clock (10 ns) has
    # run ``soak_cycles`` cycles under these pauses on every port.
    rounds = 1
    while get_sim_time(unit="ns") // 10 < KNOBS.get("soak_cycles", 0):
        tb.rng.shuffle(cases)
        await sweep(tb, cases)
        rounds += 1
    if KNOBS.get("soak_cycles"):
        dut._log.info(f"SOAK {rounds} sweeps of {len(cases)} descriptors per direction "
                      f"in {get_sim_time(unit='ns') // 10:.0f} cycles")
    await tb.check_quiet()


async def concurrent(tb, cases_m, cases_s):
    """Both channels at once on the shared port."""
    rng = tb.rng
    src = tb.fill(0, MEM_SIZE)
    mdescs = layout_mm2s(rng, cases_m)
    sdescs, used = layout_s2mm(rng, cases_s)
    packets = [bytes(rng.getrandbits(8) for _ in range(d.length)) for d in sdescs]
    want_img, want_sst, _, _ = s2mm_expected(CFG, tb.image(), sdescs, packets)
    want_packets, want_mst, _ = mm2s_expected(CFG, src, mdescs)
    s_task = cocotb.start_soon(tb.run_s2mm(sdescs, packets))
    packets_m, mst = await tb.run_mm2s(mdescs)
    sst = await s_task
    assert sst == want_sst
    assert mst == want_mst
    assert packets_m == want_packets
    assert tb.image()[DST_BASE:] == want_img[DST_BASE:]


@cocotb.test()
@cocotb.parametrize(bus=list(PAUSE_MODES))
async def both_channels_at_once(dut, bus):
    """MM2S and S2MM run concurrently on the one AXI4 port."""
    tb = DmaTB(dut, idle="random", backpressure="random", bus=bus, seed=7)
    await tb.reset()
    rng = tb.rng
    cases = [(rng.randrange(B), rng.randrange(0, 40 * B)) for _ in range(24)]
    await concurrent(tb, list(cases), list(reversed(cases)))
    await tb.check_quiet()


@cocotb.test()
@cocotb.parametrize(bus=list(PAUSE_MODES))
async def window_check(dut, bus):
    """Descriptors outside the window: WINDOW, no bus beat, neighbours unaffected."""
    tb = DmaTB(dut, idle="random", backpressure="random", bus=bus, seed=11)
    await tb.reset()
    src = tb.fill(0, MEM_SIZE)
    base, size = 0x1000, 0x2000
    tb.set_window(base, size)
    win_s = (DST_BASE + 0x1000, 0x1000)
    inside = [Descriptor(base + 3, 40, tag=1), Descriptor(base + size - 9, 9, tag=5)]
    outside = [Descriptor(base - 1, 8, tag=2), Descriptor(base + size - 8, 9, tag=3),
               Descriptor(0x100, 0, tag=6), Descriptor(base + size, 1, tag=7),
               Descriptor(0xFFFF_FFF0 & ((1 << CFG.addr_width) - 1), 64, tag=8)]
    descs = [inside[0], outside[0], outside[1], Descriptor(base + size, 0, tag=4), outside[2],
             inside[1], outside[3], outside[4]]
    want_packets, want_mst, want_ar = mm2s_expected(CFG, src, descs, window=(base, size))
    assert [s.error for s in want_mst].count(DmaError.WINDOW) == 5
    n_ar = len(tb.axi.reads)
    packets, mst = await tb.run_mm2s(descs)
    assert mst == want_mst, f"{mst} != {want_mst}"
    assert packets == want_packets
    assert tb.axi.reads[n_ar:] == want_ar, "a rejected MM2S descriptor reached the bus"

    await RisingEdge(dut.clk)
    tb.set_window(*win_s)
    sdescs = [Descriptor(win_s[0] + 5, 30, tag=9), Descriptor(win_s[0] - 4, 8, tag=10),
              Descriptor(win_s[0] + win_s[1] - 2, 3, tag=11),
              Descriptor(win_s[0] + 100, 17, tag=12)]
    spackets = [bytes(rng_bytes(tb.rng, d.length)) for d in sdescs]
    # A rejected descriptor's packet is still consumed: give it a different length.
    spackets[1] = bytes(rng_bytes(tb.rng, 20))
    want_img, want_sst, want_aw, _ = s2mm_expected(CFG, tb.image(), sdescs, spackets,
                                                   window=win_s)
    n_aw = len(tb.axi.writes)
    sst = await tb.run_s2mm(sdescs, spackets)
    assert sst == want_sst, f"{sst} != {want_sst}"
    assert [s.error for s in sst] == [DmaError.OK, DmaError.WINDOW, DmaError.WINDOW, DmaError.OK]
    assert tb.axi.writes[n_aw:] == want_aw, "a rejected S2MM descriptor reached the bus"
    assert tb.image() == want_img
    await RisingEdge(dut.clk)
    tb.set_window(*FULL_WINDOW)
    await tb.check_quiet()


def rng_bytes(rng, n):
    return bytes(rng.getrandbits(8) for _ in range(n))


@cocotb.test()
@cocotb.parametrize(bus=list(PAUSE_MODES))
async def length_mismatch(dut, bus):
    """S2MM packets shorter or longer than the descriptor: LENGTH_MISMATCH, exact bytes."""
    tb = DmaTB(dut, idle="random", backpressure="random", bus=bus, seed=12)
    await tb.reset()
    tb.fill(DST_BASE, MEM_SIZE)
    d = [Descriptor(DST_BASE + 0x100 + 3, 5 * B + 1, tag=1),
         Descriptor(DST_BASE + 0x300 + 1, 3 * B, tag=2),
         Descriptor(DST_BASE + 0x500, 2 * B, tag=3),
         Descriptor(DST_BASE + 0x700 + 2, 0, tag=4),
         Descriptor(DST_BASE + 0x900 + 2, 2 * B, tag=5)]
    packets = [rng_bytes(tb.rng, 2 * B + 3), rng_bytes(tb.rng, 4 * B + 2),
               rng_bytes(tb.rng, 2 * B), rng_bytes(tb.rng, 3), rng_bytes(tb.rng, 2 * B)]
    want_img, want_sst, _, _ = s2mm_expected(CFG, tb.image(), d, packets)
    sst = await tb.run_s2mm(d, packets)
    assert sst == want_sst, f"{sst} != {want_sst}"
    assert [s.error for s in sst] == [DmaError.LENGTH_MISMATCH] * 2 + [DmaError.OK] + \
        [DmaError.LENGTH_MISMATCH, DmaError.OK]
    assert tb.image() == want_img
    await tb.check_quiet()


@cocotb.test()
@cocotb.parametrize(kind=["SLVERR", "DECERR"], bus=list(PAUSE_MODES))
async def bus_errors(dut, kind, bus):
    """A failing beat stops its descriptor with the code; later descriptors are exact."""
    code = DmaError[kind]
    tb = DmaTB(dut, idle="random", backpressure="random", bus=bus, seed=13)
    await tb.reset()
    dut.decerr_mode.value = int(code == DmaError.DECERR)
    src = tb.fill(0, MEM_SIZE)
    # Failing beats: mid-descriptor (after several bursts), at a first beat,
    # and on the final beat.
    fail_mid = 0x1000 + 20 * B
    fail_first = 0x3000
    fail_last = 0x5000 + 7 * B
    for a in (fail_mid, fail_first, fail_last):
        tb.faults.errors[a] = code
    descs = [Descriptor(0x0800 + 1, 100, tag=1),
             Descriptor(0x1000 + 2, 60 * B, tag=2),
             Descriptor(0x2000, 3 * B + 1, tag=3),
             Descriptor(0x3000 + 1, 4 * B, tag=4),
             Descriptor(0x4000, 0, tag=5),
             Descriptor(0x5000, 8 * B, tag=6),
             Descriptor(0x6000 + 3, 5 * B, tag=7)]
    want_packets, want_mst, _ = mm2s_expected(CFG, src, descs, errors=tb.faults.errors)
    assert [s.error for s in want_mst].count(code) == 3
    packets, mst = await tb.run_mm2s(descs)
    assert mst == want_mst, f"{mst} != {want_mst}"
    assert packets == want_packets

    # S2MM: failing beats in the destination half.
    tb.faults.errors.clear()
    for a in (DST_BASE + fail_mid, DST_BASE + fail_first, DST_BASE + fail_last):
        tb.faults.errors[a] = code
    sdescs = [Descriptor(DST_BASE + d.addr, d.length, tag=d.tag + 16) for d in descs]
    spackets = [rng_bytes(tb.rng, d.length) for d in sdescs]
    before = tb.image()
    want_img, want_sst, _, uncertain = s2mm_expected(CFG, before, sdescs, spackets,
                                                     errors=tb.faults.errors)
    sst = await tb.run_s2mm(sdescs, spackets)
    assert sst == want_sst, f"{sst} != {want_sst}"
    got = tb.image()
    for a in range(DST_BASE, MEM_SIZE):
        if a in uncertain:
            assert got[a] in (before[a], uncertain[a]), f"byte {a:#x} written with wrong data"
        else:
            assert got[a] == want_img[a], f"byte {a:#x}: {got[a]:#x}, expected {want_img[a]:#x}"
    tb.faults.errors.clear()
    await RisingEdge(dut.clk)
    dut.decerr_mode.value = 0
    await tb.check_quiet()


@cocotb.test()
@cocotb.parametrize(bus=list(PAUSE_MODES))
async def abort_mid_transfer(dut, bus):
    """Abort with reads outstanding: drains, reports ABORTED, engine ready after."""
    tb = DmaTB(dut, idle="none", backpressure="random", bus=bus, seed=14)
    await tb.reset()
    src = tb.fill(0, MEM_SIZE)
    descs = [Descriptor(0x0100 + i * 0x1100 + i, 0x1000 + 5 * i, tag=i) for i in range(4)]
    # S2MM: no more descriptors than the engine accepts at once, so that none
    # is left waiting in the source when the abort comes (an abort leaves the
    # input stream where it is; the producer is flushed separately).
    sdescs = [Descriptor(DST_BASE + 0x100 + i * 0x1100 + i, 0x1000 + 3 * i, tag=32 + i)
              for i in range(min(2, CFG.queue_depth))]
    spackets = [rng_bytes(tb.rng, d.length) for d in sdescs]
    before = tb.image()
    _, want_mst, _ = mm2s_expected(CFG, src, descs)
    _, want_sst, _, _ = s2mm_expected(CFG, before, sdescs, spackets)
    tb.send_mm2s(descs)
    tb.send_s2mm(sdescs, spackets)
    # Wait until the first MM2S descriptor is part-way with reads in flight.
    for _ in range(20000):
        await RisingEdge(dut.clk)
        await ReadOnly()
        if tb.mm2s_data.beats > 40 and tb.axi.reads_outstanding() > 0:
            break
    assert tb.axi.reads_outstanding() > 0, "no read outstanding when aborting"
    await RisingEdge(dut.clk)
    dut.abort.value = 1
    await RisingEdge(dut.clk)
    dut.abort.value = 0
    packets, mst, sst = [], [], []
    for _ in descs:
        packets.append(await tb.recv_packet())
        mst.append(await tb.recv_status(tb.mm2s_status))
    for _ in sdescs:
        sst.append(await tb.recv_status(tb.s2mm_status))
    for _ in range(5000):
        await RisingEdge(dut.clk)
        if int(dut.idle.value):
            break
    assert int(dut.idle.value), "engine not idle after the abort"
    check_aborted_run(descs, mst, want_mst)
    check_aborted_run(sdescs, sst, want_sst)
    tb.cover("mm2s", descs, mst)
    tb.cover("s2mm", sdescs, sst)
    assert any(s.error == DmaError.ABORTED for s in mst), "no MM2S descriptor was aborted"
    for d, p, s in zip(descs, packets, mst):
        assert len(p) == s.bytes and p == src[d.addr:d.addr + len(p)], \
            f"MM2S {d}: packet of {len(p)} bytes is not the reported prefix ({s})"
    after = tb.image()
    inside = set()
    for d in sdescs:
        inside.update(range(d.addr, d.addr + d.length))
    for a in range(DST_BASE, MEM_SIZE):
        if a not in inside:
            assert after[a] == before[a], f"S2MM abort wrote outside a destination at {a:#x}"
    for d, packet in zip(sdescs, spackets):
        for a in range(d.addr, d.addr + d.length):
            assert after[a] in (before[a], packet[a - d.addr]), f"wrong byte at {a:#x}"
    # The input stream is left where the abort found it: flush our source.
    tb.s2mm_data.stop()
    tb.s2mm_data = StreamSource(dut.clk, dut, "s2mm_data", layout=CFG.beat_layout)
    # The engine is ready: a normal run in both directions is exact.
    await concurrent(tb, [(1, 3 * B + 2), (0, 0), (2 % B, 40)], [(3 % B, 2 * B + 1), (0, B)])
    await tb.check_quiet()


def throughput_bound(latency, overhead):
    """Beats per cycle the engine must reach with ``max_outstanding`` bursts of
    ``max_burst_beats`` in flight against a memory of ``latency`` idle
    cycles per burst; ``overhead`` is the engine's own round trip per burst
    (2 cycles MM2S, AR to R; 3 cycles S2MM, B to AW to W). docs/dma.md,
    "Measured throughput", derives and pins it in amaranth.sim too."""
    n, k = CFG.max_burst_beats, CFG.max_outstanding
    return min(1.0, k * n / (n + latency + overhead))


@cocotb.test()
async def throughput(dut):
    """Long aligned transfers without pauses: beats per cycle against the
    bound the configuration and the memory's latency allow, and the
    outstanding-burst limit reached but not exceeded."""
    tb = DmaTB(dut, seed=15)
    # The memory's own latency (idle cycles between a request and its
    # first R beat / between the last W beat and B) enters the bound.
    ar_cycles, r_first, wlast_cycles, b_cycles = [], [], [], []
    in_burst = [False]

    def on_r(cycle, p):
        if not in_burst[0]:
            r_first.append(cycle)
        in_burst[0] = not p["last"]

    tb.checker.add_callback("ar", lambda cycle, p: ar_cycles.append(cycle))
    tb.checker.add_callback("r", on_r)
    tb.checker.add_callback("w", lambda cycle, p: p["last"] and wlast_cycles.append(cycle))
    tb.checker.add_callback("b", lambda cycle, p: b_cycles.append(cycle))
    await tb.reset()
    length = KNOBS.get("throughput_bytes", 16384)
    tb.fill(0, length)
    counts = {}

    async def count(name, valid, ready):
        first = last = None
        beats = 0
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if int(valid.value) and int(ready.value):
                beats += 1
                first = first if first is not None else tb.cycle
                last = tb.cycle
                counts[name] = (beats, last - first + 1)

    tb.cycle = 0

    async def clock_count():
        while True:
            await RisingEdge(dut.clk)
            tb.cycle += 1
    cocotb.start_soon(clock_count())
    cocotb.start_soon(count("mm2s", dut.mm2s_data__valid, dut.mm2s_data__ready))
    cocotb.start_soon(count("s2mm", dut.m_axi_wvalid, dut.m_axi_wready))
    await tb.run_mm2s([Descriptor(0, length, tag=1)])
    await tb.run_s2mm([Descriptor(DST_BASE, length, tag=2)], [rng_bytes(tb.rng, length)])
    for name, (beats, cycles) in counts.items():
        dut._log.info(f"THROUGHPUT {name}: {beats} beats in {cycles} cycles = "
                      f"{beats / cycles:.4f} beats/cycle (data_width={CFG.data_width}, "
                      f"max_burst_beats={CFG.max_burst_beats}, "
                      f"max_outstanding={CFG.max_outstanding})")
    mm2s_beats, mm2s_cycles = counts["mm2s"]
    assert mm2s_beats == length // B
    read_latency = min(r - a - 1 for a, r in zip(ar_cycles, r_first))
    write_latency = min(b - w - 1 for w, b in zip(wlast_cycles, b_cycles))
    for name, latency, overhead in (("mm2s", read_latency, 2), ("s2mm", write_latency, 3)):
        beats, cycles = counts[name]
        bound = throughput_bound(latency, overhead)
        dut._log.info(f"THROUGHPUT {name}: bound {bound:.4f} beats/cycle for memory latency "
                      f"{latency}")
        assert beats / cycles >= bound, (
            f"{name}: {beats} beats in {cycles} cycles = {beats / cycles:.4f} beats/cycle, "
            f"below {bound:.4f} (max_outstanding={CFG.max_outstanding} bursts of "
            f"{CFG.max_burst_beats} beats, memory latency {latency})")
    await tb.check_quiet()
    # Long transfers fill the window: the limit is reached, never passed.
    peak = tb.check_outstanding_limit()
    assert peak == {"reads": CFG.max_outstanding, "writes": CFG.max_outstanding}, peak
