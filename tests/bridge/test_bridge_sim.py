# amaranth: UnusedElaboratable=no
"""The host bridge against the real CSR bank and on-chip SRAM (amaranth.sim, fast).

Frames are made with the host library's encoder (``lpaccel.link``) and the
responses parsed with its parser, so the RTL and the host codec are checked
against each other byte for byte. Bus activity is counted in the gateware
(address handshakes on every port), so "no bus access" is an assertion on
the hardware, not on the response.
"""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.sim import Simulator

from lpaccel.link import Cmd, ResponseParser, Status, crc16, encode_request
from lpaccel.rtl.bridge.bridge import COUNTERS, HostBridge
from lpaccel.rtl.bridge.config import BridgeConfig
from lpaccel.rtl.bus.axi import AXI4Signature
from lpaccel.rtl.csr.bank import CsrBank
from lpaccel.rtl.mem.onchip import AxiMemoryConfig, AxiSram
from lpaccel.rtl.regmap import RegmapConfig, register_map

REGS = register_map()
MAGIC, VERSION, SCRATCH = (REGS[n].address for n in ("MAGIC", "VERSION", "SCRATCH"))
CAP_FORMATS = REGS["CAP_FORMATS"].address
UNMAPPED = 0xFFC           # no register there: DECERR
SRAM_BYTES = 10240         # addresses from here answer DECERR
TIMEOUT = 64


class Bench:
    """Bridge + CsrBank + AxiSram, driven one byte per cycle at most from Python."""

    def __init__(self, data_width=128, seed=0, idle=0.0, stall=0.0):
        self.cfg = BridgeConfig(clk_hz=8_000_000, baud=1_000_000, timeout_cycles=TIMEOUT)
        sig = AXI4Signature(addr_width=32, data_width=data_width, id_width=4)
        self.bank = CsrBank(REGS)
        self.bridge = HostBridge(self.cfg, sig, csr_addr_width=self.bank.addr_width)
        self.sram = AxiSram(AxiMemoryConfig(size_bytes=SRAM_BYTES, data_width=data_width,
                                            addr_width=32, id_width=4))
        self.word_bytes = data_width // 8
        self.rng = random.Random(seed)
        self.idle, self.stall = idle, stall
        m = self.m = Module()
        m.submodules.bridge = b = self.bridge
        m.submodules.bank = self.bank
        m.submodules.sram = self.sram
        wiring.connect(m, b.csr, self.bank.bus)
        wiring.connect(m, b.mem, self.sram.axi)
        # Address handshakes per port: any bus access at all moves one of these.
        self.accesses = {}
        for port, ch in (("csr", "ar"), ("csr", "aw"), ("mem", "ar"), ("mem", "aw")):
            c = Signal(16, name=f"{port}_{ch}_count")
            bus = getattr(getattr(b, port), ch)
            with m.If(bus.valid & bus.ready):
                m.d.sync += c.eq(c + 1)
            self.accesses[f"{port}_{ch}"] = c
        self.parser = ResponseParser()
        self.cycle = 0

    def run(self, scenario, max_cycles=200_000):
        sim = Simulator(self.m)
        sim.add_clock(1e-6)

        async def bench(ctx):
            self.ctx = ctx
            await scenario(self)
        sim.add_testbench(bench)
        sim.run()

    # --- bytes ------------------------------------------------------------------------------

    async def exchange(self, data, quiet=None, pause_at=None, pause=0, overrun_at=None):
        """Send ``data`` (random idle cycles between bytes), collect ``tx`` (random
        back-pressure) until it has been silent for ``quiet`` cycles after the last byte
        went in; return the bytes received. ``pause_at``: byte index before which the
        sender stops for ``pause`` cycles. ``overrun_at``: byte index at which the PHY's
        overrun input pulses."""
        ctx, b, rng = self.ctx, self.bridge, self.rng
        quiet = quiet if quiet is not None else 2 * TIMEOUT
        out = bytearray()
        i = silent = held = 0
        while i < len(data) or silent < quiet:
            send = i < len(data)
            if send and pause_at == i and held < pause:
                send = False
                held += 1
            elif send and rng.random() < self.idle:
                send = False
            ctx.set(b.rx.valid, send)
            if send:
                ctx.set(b.rx.payload, data[i])
            ctx.set(b.overrun, overrun_at is not None and i == overrun_at and held >= 0
                    and send)
            ready = rng.random() >= self.stall
            ctx.set(b.tx.ready, ready)
            rx_ready = ctx.get(b.rx.ready)
            tx_valid, tx_byte = ctx.get(b.tx.valid), ctx.get(b.tx.payload)
            await ctx.tick()
            self.cycle += 1
            if send and rx_ready:
                if overrun_at == i:
                    overrun_at = None
                i += 1
            if tx_valid and ready:
                out.append(tx_byte)
                self.last_byte_cycle = self.cycle
                silent = 0
            elif i >= len(data):
                silent += 1
        ctx.set(b.rx.valid, 0)
        ctx.set(b.overrun, 0)
        return bytes(out)

    async def request(self, seq, cmd, addr, words=None, count=None, **kw):
        """One request; return the parsed responses (list of lpaccel.link.Response)."""
        raw = await self.exchange(encode_request(seq, cmd, addr, words, count), **kw)
        return self.parser.feed(raw)

    async def ok(self, seq, cmd, addr, words=None, count=None, **kw):
        rsps = await self.request(seq, cmd, addr, words, count, **kw)
        assert len(rsps) == 1, rsps
        rsp = rsps[0]
        assert (rsp.seq, rsp.cmd, rsp.status) == (seq, cmd, Status.OK), rsp
        return list(rsp.words)

    async def status(self, seq, cmd, addr, words=None, count=None, **kw):
        rsps = await self.request(seq, cmd, addr, words, count, **kw)
        assert len(rsps) == 1, rsps
        assert rsps[0].words == ()
        return rsps[0].status

    # --- state ----------------------------------------------------------------------------

    def counters(self):
        return {name: self.ctx.get(getattr(self.bridge, name)) for name in COUNTERS}

    def bus(self):
        return {k: self.ctx.get(v) for k, v in self.accesses.items()}

    def peek(self, addr, n):
        wb = self.word_bytes
        out = bytearray()
        for w in range(addr // wb, -(-(addr + n) // wb)):
            out += self.ctx.get(self.sram.storage.data[w]).to_bytes(wb, "little")
        return bytes(out[addr % wb:addr % wb + n])

    def poke(self, addr, data):
        wb = self.word_bytes
        assert addr % wb == 0 and len(data) % wb == 0
        for k in range(len(data) // wb):
            self.ctx.set(self.sram.storage.data[addr // wb + k],
                         int.from_bytes(data[k * wb:(k + 1) * wb], "little"))


def words_of(data):
    return [int.from_bytes(data[k:k + 4], "little") for k in range(0, len(data), 4)]


def bytes_of(words):
    return b"".join(w.to_bytes(4, "little") for w in words)


def run(scenario, **kw):
    bench = Bench(**kw)
    bench.run(scenario)
    return bench


# --- good frames of every command ----------------------------------------------------------

@pytest.mark.parametrize("data_width", [32, 64, 128])
def test_every_command(data_width):
    """REG_READ, REG_WRITE, MEM_WRITE/MEM_READ at every lane offset (only the written
    bytes change), LINK_INFO with its counters; random idle and back-pressure."""
    async def scenario(t):
        words = await t.ok(1, Cmd.REG_READ, MAGIC, count=2)
        assert words[0] == 0x4C504143
        major, minor = RegmapConfig().version
        assert words[1] == major << 16 | minor
        assert await t.ok(2, Cmd.REG_WRITE, SCRATCH, [0xDEADBEEF]) == []
        assert await t.ok(3, Cmd.REG_READ, SCRATCH, count=1) == [0xDEADBEEF]
        rng = random.Random(data_width)
        background = bytes(rng.randrange(256) for _ in range(512))
        t.poke(0x200, background)
        shadow = bytearray(background)
        seq = 4
        for offset in range(0, 16 + 4, 4):
            for n in (1, 2, 3, 5):
                data = [rng.randrange(1 << 32) for _ in range(n)]
                addr = 0x200 + 64 + offset + 32 * n
                assert await t.ok(seq, Cmd.MEM_WRITE, addr, data) == []
                shadow[addr - 0x200:addr - 0x200 + 4 * n] = bytes_of(data)
                assert t.peek(0x200, 512) == bytes(shadow), (offset, n)
                assert await t.ok(seq + 1, Cmd.MEM_READ, addr, count=n) == data
                seq += 2
        before = t.counters()
        info = await t.ok(seq, Cmd.LINK_INFO, 0, count=8)
        assert info[0] == 0x4B4E4C4C
        assert info[1] == 1 | 256 << 8
        assert info[2:] == [before["frames"] + 1, 0, 0, 0, 0, 0]
        assert before["frames"] == seq - 1
    run(scenario, data_width=data_width, seed=data_width, idle=0.3, stall=0.3)


def test_full_frames():
    """256-word MEM_WRITE and MEM_READ (a whole 4 KiB page) and a 256-word REG_READ of the
    register map's first page (stops at the first DECERR: BUS_ERROR, no data)."""
    async def scenario(t):
        rng = random.Random(5)
        data = [rng.randrange(1 << 32) for _ in range(256)]
        assert await t.ok(1, Cmd.MEM_WRITE, 0x1000, data) == []
        assert t.peek(0x1000, 1024) == bytes_of(data)
        assert await t.ok(2, Cmd.MEM_READ, 0x1000, count=256) == data
        # Three pages of 64 words at a lane offset.
        assert await t.ok(3, Cmd.MEM_WRITE, 0x1404, data[:64]) == []
        assert await t.ok(4, Cmd.MEM_READ, 0x1404, count=64) == data[:64]
        assert await t.status(5, Cmd.REG_READ, 0, count=256) == Status.BUS_ERROR
    run(scenario, idle=0.1, stall=0.2)


# --- link faults ---------------------------------------------------------------------------

def test_bad_crc_dropped():
    """A request with a flipped bit anywhere is dropped without a bus access and counted;
    the next good request is executed."""
    async def scenario(t):
        rng = random.Random(3)
        frames = [encode_request(9, Cmd.REG_WRITE, SCRATCH, [0x1234]),
                  encode_request(9, Cmd.MEM_WRITE, 0x40, [1, 2, 3]),
                  encode_request(9, Cmd.REG_READ, MAGIC, count=1)]
        for k, frame in enumerate(frames * 4):
            bad = bytearray(frame)
            # Any byte but SOF (a damaged SOF is not a request at all).
            bad[rng.randrange(1, len(bad))] ^= 1 << rng.randrange(8)
            bus = t.bus()
            raw = await t.exchange(bytes(bad))
            assert raw == b""
            assert t.bus() == bus, "a request with a bad CRC reached a bus"
            assert t.counters()["crc_errors"] == k + 1
        assert t.peek(0x40, 12) == bytes(12)
        assert await t.ok(10, Cmd.REG_READ, SCRATCH, count=1) == [0]
        assert t.counters()["frames"] == 1
    run(scenario)


def test_bad_crc_negative():
    """The no-access check can fail: the same damage with the CRC recomputed is a valid
    request, executed (the bus counters move)."""
    async def scenario(t):
        frame = bytearray(encode_request(9, Cmd.REG_WRITE, SCRATCH, [0x1234]))
        frame[8] ^= 0x40
        frame[-2:] = crc16(bytes(frame[:-2])).to_bytes(2, "little")
        bus = t.bus()
        assert len(t.parser.feed(await t.exchange(bytes(frame)))) == 1
        assert t.bus() != bus
    run(scenario)


def test_truncated_frame_resync():
    """A request cut short is dropped after the inter-byte timeout (a resync, no bus
    access); a gap shorter than the timeout is not a resync."""
    async def scenario(t):
        frame = encode_request(1, Cmd.REG_WRITE, SCRATCH, [0x55AA])
        for cut in (1, 3, 8, 11):
            bus = t.bus()
            assert await t.exchange(frame[:cut], quiet=3 * TIMEOUT) == b""
            assert t.bus() == bus
        assert t.counters()["resyncs"] == 4
        assert t.counters()["crc_errors"] == 0
        assert await t.ok(2, Cmd.REG_READ, SCRATCH, count=1) == [0]
        # A pause inside the frame just under the timeout: still one request.
        assert await t.ok(3, Cmd.REG_WRITE, SCRATCH, [7], pause_at=9, pause=TIMEOUT - 2) == []
        assert t.counters()["resyncs"] == 4
        # Just over it: dropped, and the rest of the frame is garbage.
        raw = await t.exchange(encode_request(4, Cmd.REG_WRITE, SCRATCH, [8]), pause_at=9,
                               pause=TIMEOUT + 2)
        assert t.parser.feed(raw) == []
        assert t.counters()["resyncs"] == 5
        assert await t.ok(5, Cmd.REG_READ, SCRATCH, count=1) == [7]
    run(scenario)


def test_garbage_between_frames():
    """Bytes that are not SOF between requests are skipped; SOF-like garbage costs one
    request (bad CRC or timeout), never a wrong access."""
    async def scenario(t):
        rng = random.Random(4)
        seq = 0
        for k in range(6):
            junk = bytes(rng.choice([0x00, 0xFF, 0x5A, 0x13]) for _ in range(rng.randrange(1, 9)))
            await t.exchange(junk, quiet=4)
            seq += 1
            assert await t.ok(seq, Cmd.REG_WRITE, SCRATCH, [k]) == []
        assert await t.ok(seq + 1, Cmd.REG_READ, SCRATCH, count=1) == [5]
        # A stray SOF before a request swallows the start of it: dropped, no access.
        bus = t.bus()
        raw = await t.exchange(b"\xa5" + encode_request(77, Cmd.REG_WRITE, SCRATCH, [99]),
                               quiet=3 * TIMEOUT)
        assert t.parser.feed(raw) == []
        assert t.bus() == bus
        assert await t.ok(78, Cmd.REG_READ, SCRATCH, count=1) == [5]
    run(scenario, idle=0.2)


def test_overrun_fails_request():
    """An overrun pulse during a request makes it fail its CRC check: no bus access."""
    async def scenario(t):
        bus = t.bus()
        raw = await t.exchange(encode_request(1, Cmd.REG_WRITE, SCRATCH, [3]), overrun_at=6)
        assert raw == b""
        assert t.bus() == bus
        c = t.counters()
        assert (c["overruns"], c["crc_errors"], c["frames"]) == (1, 1, 0)
        assert await t.ok(2, Cmd.REG_READ, SCRATCH, count=1) == [0]
    run(scenario)


def test_duplicate_write_not_executed():
    """A write repeated with the same SEQ and CMD is answered from the replay record and
    not executed; a read with the same SEQ is executed again; a new SEQ executes."""
    async def scenario(t):
        assert await t.ok(5, Cmd.REG_WRITE, SCRATCH, [1]) == []
        bus = t.bus()
        # The host's retry: same SEQ, same frame... or even other data (a broken host):
        # not executed either way.
        assert await t.ok(5, Cmd.REG_WRITE, SCRATCH, [1]) == []
        assert await t.ok(5, Cmd.REG_WRITE, SCRATCH, [2]) == []
        assert t.bus() == bus
        assert t.counters()["duplicates"] == 2
        assert await t.ok(6, Cmd.MEM_WRITE, 0x80, [10, 11]) == []
        assert await t.ok(6, Cmd.MEM_WRITE, 0x80, [12, 13]) == []
        assert t.peek(0x80, 8) == bytes_of([10, 11])
        # A failed write is replayed with its status.
        assert await t.status(7, Cmd.REG_WRITE, MAGIC, [0]) == Status.BUS_ERROR
        bus = t.bus()
        assert await t.status(7, Cmd.REG_WRITE, MAGIC, [0]) == Status.BUS_ERROR
        assert t.bus() == bus
        assert t.counters()["duplicates"] == 4
        # Reads are executed again.
        assert await t.ok(8, Cmd.REG_READ, SCRATCH, count=1) == [1]
        assert await t.ok(8, Cmd.REG_READ, SCRATCH, count=1) == [1]
        assert t.counters()["duplicates"] == 4
        # Negative: same SEQ, other write command -> executed.
        assert await t.ok(9, Cmd.MEM_WRITE, 0x90, [5]) == []
        assert await t.ok(9, Cmd.REG_WRITE, SCRATCH, [3]) == []
        assert await t.ok(10, Cmd.REG_READ, SCRATCH, count=1) == [3]
        assert t.counters()["error_responses"] == 2
    run(scenario)


# --- refused requests ------------------------------------------------------------------------

def test_bad_command_and_address():
    """BAD_COMMAND (unknown CMD, LINK_INFO at ADDR != 0) and BAD_ADDRESS (unaligned,
    memory across 4 KiB): nothing done, no bus access; the boundary case is accepted."""
    async def scenario(t):
        bus = t.bus()
        for cmd in (0x00, 0x06, 0xFF):
            assert await t.status(1, cmd, 0, count=1) == Status.BAD_COMMAND
        # An unknown command with data would be parsed as 10 bytes; its CRC then fails
        # on the data: dropped (the host only sends known commands with data).
        assert await t.status(2, Cmd.LINK_INFO, 4, count=8) == Status.BAD_COMMAND
        assert await t.status(3, Cmd.REG_READ, SCRATCH + 2, count=1) == Status.BAD_ADDRESS
        assert await t.status(4, Cmd.REG_WRITE, SCRATCH + 1, [1]) == Status.BAD_ADDRESS
        assert await t.status(5, Cmd.MEM_WRITE, 0xFFC, [1, 2]) == Status.BAD_ADDRESS
        assert await t.status(6, Cmd.MEM_READ, 0x1F00, count=65) == Status.BAD_ADDRESS
        assert await t.status(7, Cmd.MEM_READ, 0x103, count=1) == Status.BAD_ADDRESS
        assert t.bus() == bus
        assert t.counters()["error_responses"] == 9
        assert t.peek(0xFF8, 16) == bytes(16)
        # The boundary itself is fine.
        assert await t.ok(8, Cmd.MEM_WRITE, 0xFFC, [0xAB]) == []
        assert await t.ok(9, Cmd.MEM_READ, 0x1F00, count=64) == [0] * 64
    run(scenario)


def test_bus_errors():
    """SLVERR/DECERR -> BUS_ERROR: reads return nothing, writes keep the words before the
    failing one; addresses the CSR port cannot express fail without an access."""
    async def scenario(t):
        assert await t.status(1, Cmd.REG_READ, UNMAPPED, count=1) == Status.BUS_ERROR
        assert await t.status(2, Cmd.REG_WRITE, MAGIC, [1]) == Status.BUS_ERROR
        # SCRATCH is written, CAP_FORMATS (read-only, two words on) fails, the rest not tried.
        first = REGS["CAP_FORMATS"].address
        n = (first - SCRATCH) // 4 + 2
        data = [0x77] + [0] * (n - 1)
        bus = t.bus()
        assert await t.status(3, Cmd.REG_WRITE, SCRATCH, data) == Status.BUS_ERROR
        assert t.bus()["csr_aw"] - bus["csr_aw"] == n - 1
        assert await t.ok(4, Cmd.REG_READ, SCRATCH, count=1) == [0x77]
        bus = t.bus()
        assert await t.status(5, Cmd.REG_READ, 0x1000, count=1) == Status.BUS_ERROR
        assert await t.status(6, Cmd.REG_READ, 0xFFFF_FFFC, count=2) == Status.BUS_ERROR
        assert t.bus() == bus
        # Memory beyond the SRAM answers DECERR; every beat of the burst is drained.
        assert await t.status(7, Cmd.MEM_READ, SRAM_BYTES - 16, count=16) == Status.BUS_ERROR
        assert await t.status(8, Cmd.MEM_WRITE, SRAM_BYTES, [1, 2, 3]) == Status.BUS_ERROR
        assert await t.ok(9, Cmd.MEM_READ, SRAM_BYTES - 16, count=4) == [0] * 4
        assert t.counters()["error_responses"] == 7
    run(scenario)


# --- the golden model ------------------------------------------------------------------------

def test_matches_golden_model():
    """The RTL and sim/golden/link.py's LinkDeviceModel get the same byte stream (good
    requests of every kind, refused ones, bus errors, duplicates, bad CRCs, garbage,
    truncated requests followed by a gap longer than the timeout) and must answer with
    the same bytes, leave the same memory and end with the same counters."""
    from sim_golden_backend import make_model

    async def scenario(t):
        rng = random.Random(12)
        # The constant registers of the first 64 bytes, as the RTL answers them.
        regs = {}
        for addr in range(0, 0x40, 4):
            rsps = await t.request(0, Cmd.REG_READ, addr, count=1)
            if rsps[0].status == Status.OK:
                regs[addr] = rsps[0].words[0]
        regs[SCRATCH] = 0
        writable = {SCRATCH}
        await t.exchange(encode_request(0, Cmd.LINK_INFO, 4, count=8))   # a known record
        mem = bytearray(t.peek(0, SRAM_BYTES))
        model = make_model(regs, writable, mem)
        # Start the model's counters where the RTL's are now.
        model.counters.update(t.counters())
        model.record = (0, Cmd.LINK_INFO, Status.BAD_COMMAND)
        seq = 1
        last_write = None
        for step in range(160):
            kind = rng.random()
            if kind < 0.12 and last_write is not None:
                frame = last_write                      # a duplicate
            else:
                cmd = rng.choice([Cmd.REG_READ, Cmd.REG_WRITE, Cmd.MEM_READ, Cmd.MEM_WRITE,
                                  Cmd.LINK_INFO, 0x07])
                n = rng.choice([1, 2, 3, 5, 16])
                if cmd in (Cmd.REG_READ, Cmd.REG_WRITE):
                    addr = rng.choice([MAGIC, SCRATCH, SCRATCH, 0x28, 0x3C, UNMAPPED, 0x1000,
                                       SCRATCH + 2])
                    if cmd == Cmd.REG_WRITE and rng.random() < 0.7:
                        addr, n = SCRATCH, 1
                elif cmd in (Cmd.MEM_READ, Cmd.MEM_WRITE):
                    addr = rng.choice([rng.randrange(0, SRAM_BYTES, 4),
                                       SRAM_BYTES - 8, 0xFF8, 0x102])
                else:
                    addr = rng.choice([0, 0, 4])
                words = ([rng.randrange(1 << 32) for _ in range(n)]
                         if cmd in (Cmd.REG_WRITE, Cmd.MEM_WRITE) else None)
                frame = encode_request(seq, cmd, addr, words, None if words else n)
                if words:
                    last_write = frame
                seq = (seq + 1) & 0xFF
            fault = rng.random()
            stream = bytearray(frame)
            gap = False
            if fault < 0.1:
                stream[rng.randrange(1, len(stream))] ^= 1 << rng.randrange(8)
            elif fault < 0.18:
                stream = stream[:rng.randrange(1, len(stream))]
                gap = True
            elif fault < 0.26:
                stream = bytearray(rng.choice([0x00, 0x5A, 0xFF]) for _ in range(3)) + stream
            raw = await t.exchange(bytes(stream), quiet=(2 * TIMEOUT if gap else TIMEOUT // 2))
            want = model.feed(bytes(stream))
            if gap:
                model.idle_timeout()
            assert raw == want, (step, stream.hex(), raw.hex(), want.hex())
            assert t.peek(0, SRAM_BYTES) == bytes(mem), f"memory differs after step {step}"
        assert t.counters() == model.counters, (t.counters(), model.counters)
        assert all(model.counters[k] for k in ("crc_errors", "resyncs", "duplicates",
                                               "error_responses")), model.counters
    run(scenario)


#: Overhead of test_latency (cycles beyond one per byte, measured; the cycle contract):
#: each register word costs the CSR bank's round trip, a memory command one burst of
#: (lane offset + words) / 4 beats plus the SRAM's latency.
OVERHEAD = {"REG_READ x1": 5, "REG_WRITE x1": 6, "REG_READ x8": 26, "MEM_WRITE x256": 70,
            "MEM_READ x256": 70, "MEM_READ x1": 7}


def test_latency():
    """Cycles from the first request byte to the last response byte with no idle and no
    back-pressure: the bytes each way plus a small fixed overhead for the bus work
    (register: the CSR bank's round trip; memory: one burst). Printed for docs/link.md."""
    results = {}

    async def scenario(t):
        cases = [("REG_READ x1", Cmd.REG_READ, SCRATCH, None, 1),
                 ("REG_WRITE x1", Cmd.REG_WRITE, SCRATCH, [1], None),
                 ("REG_READ x8", Cmd.REG_READ, MAGIC, None, 8),
                 ("MEM_WRITE x256", Cmd.MEM_WRITE, 0x1000, list(range(256)), None),
                 ("MEM_READ x256", Cmd.MEM_READ, 0x1000, None, 256),
                 ("MEM_READ x1", Cmd.MEM_READ, 0x1004, None, 1)]
        for seq, (name, cmd, addr, words, count) in enumerate(cases):
            frame = encode_request(seq, cmd, addr, words, count)
            start = t.cycle
            raw = await t.exchange(frame)
            rsp = t.parser.feed(raw)
            assert len(rsp) == 1 and rsp[0].status == Status.OK, (name, rsp)
            results[name] = (t.last_byte_cycle - start, len(frame) + len(raw))
    run(scenario)
    for name, (cycles, nbytes) in results.items():
        print(f"{name}: {cycles} cycles for {nbytes} bytes (overhead {cycles - nbytes})")
        assert cycles - nbytes == OVERHEAD[name], (name, cycles, nbytes)
