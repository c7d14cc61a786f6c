"""cocotb tests of the link top (``sim/tops/link.py``), started by ``test_link_cocotb.py``.

Every test talks to the SoC only through the host bridge, with the host
library's protocol client (``lpaccel.link.LinkClient``), and checks the
effect through the memory backdoor or through reads.
"""

import os
import random

import cocotb

from lpaccel.link import Cmd, LinkError, LinkStatusError, Status
from lpaccel.rtl.regmap import RegmapConfig
from lpaccel.sim.infra.harness import params
from lpaccel.sim.testbenches.link import LinkFaults, LinkTB

PARAMS = params()


async def make_tb(dut, **kw):
    tb = LinkTB(dut, PARAMS, **kw)
    await tb.reset()
    return tb


def words_of(data):
    return [int.from_bytes(data[k:k + 4], "little") for k in range(0, len(data), 4)]


def bytes_of(words):
    return b"".join(int(w).to_bytes(4, "little") for w in words)


def random_span(rng, base, size, max_words=256):
    """A 4-aligned (address, words) inside [base, base + size), not crossing 4 KiB."""
    addr = base + 4 * rng.randrange(size // 4)
    room = min((4096 - addr % 4096) // 4, (base + size - addr) // 4, max_words)
    return addr, rng.randint(1, room)


@cocotb.test()
async def register_walk(dut):
    """MAGIC/VERSION, SCRATCH and the JOB_* address registers (64-bit, low word first)
    written and read back through the bridge, an unmapped address and a read-only one ->
    BUS_ERROR, LINK_INFO; random idle and back-pressure on the byte streams."""
    tb = await make_tb(dut, idle=0.3, stall=0.3, seed=1)
    rm = tb.regmap
    client = tb.client()
    magic, version = await tb.read_regs(client, rm["MAGIC"].address, 2)
    assert magic == 0x4C504143, hex(magic)
    major, minor = RegmapConfig().version
    assert version == major << 16 | minor
    rng = random.Random(1)
    base = rm["JOB_WEIGHT_ADDR"].address
    for _ in range(4):
        value = rng.randrange(1 << 32)
        await tb.write_regs(client, rm["SCRATCH"].address, [value])
        assert await tb.read_regs(client, rm["SCRATCH"].address, 1) == [value]
        block = [rng.randrange(1 << 32) for _ in range(6)]
        await tb.write_regs(client, base, block)
        assert await tb.read_regs(client, base, 6) == block
    for addr, what in ((0xFFC, "unmapped"), (rm["MAGIC"].address, "read-only")):
        try:
            if what == "unmapped":
                await tb.read_regs(client, addr, 1)
            else:
                await tb.write_regs(client, addr, [0])
        except LinkStatusError as error:
            assert error.status == Status.BUS_ERROR, error
        else:
            raise AssertionError(f"{what} register {addr:#x}: no BUS_ERROR")
    info = await tb.link_info(client)
    assert info[0] == 0x4B4E4C4C and info[1] == 1 | 256 << 8
    ports = tb.counters()
    assert info[2] == ports["frames"] and info[7] == ports["error_responses"] == 2
    assert ports["crc_errors"] == ports["resyncs"] == ports["duplicates"] == 0
    await tb.wait_idle()


@cocotb.test()
async def memory_bursts(dut):
    """MEM_WRITE/MEM_READ at random 4-aligned addresses and lengths (1..256 words), checked
    through the backdoor both ways; an AXI4 protocol checker on the bridge's memory port."""
    tb = await make_tb(dut, idle=0.2, stall=0.2, seed=2, checkers=True)
    rng = random.Random(2)
    client = tb.client()
    base, size = 0x4000, 0x4000
    image = bytes(rng.randrange(256) for _ in range(size))
    tb.preload(base, image)
    shadow = bytearray(image)
    spans = [(0x5000, 256), (0x4004, 1), (0x4FFC, 1), (0x600C, 3)]
    spans += [random_span(rng, base, size) for _ in range(int(os.environ.get("LINK_BURSTS", 24)))]
    for k, (addr, n) in enumerate(spans):
        if k % 2 == 0:
            data = [rng.randrange(1 << 32) for _ in range(n)]
            await tb.transact(client, Cmd.MEM_WRITE, addr, words=data)
            shadow[addr - base:addr - base + 4 * n] = bytes_of(data)
            assert tb.peek(base, size) == bytes(shadow), f"MEM_WRITE {n} words at {addr:#x}"
        else:
            rsp = await tb.transact(client, Cmd.MEM_READ, addr, count=n)
            want = words_of(shadow[addr - base:addr - base + 4 * n])
            assert list(rsp.words) == want, f"MEM_READ {n} words at {addr:#x}"
    # Outside the memory: BUS_ERROR, and the bus is left clean (every beat drained).
    try:
        await tb.transact(client, Cmd.MEM_READ, tb.config.memory_size, count=32)
    except LinkStatusError as error:
        assert error.status == Status.BUS_ERROR
    else:
        raise AssertionError("read beyond the memory: no BUS_ERROR")
    await tb.wait_idle()
    await tb.cycles(20)
    tb.checker.check_idle()
    tb.log.info("memory port: %s beats, %d bytes each way over the link", tb.checker.beats,
                tb.stats["bytes_sent"])


@cocotb.test()
async def driver_gemv(dut):
    """lpaccel.driver.Device over the host library's LinkTransport, every access through the
    bridge (tensors too): a small Q8_0 GEMV, bit-exact against the golden model."""
    import numpy as np

    from lpaccel.driver import Device
    from lpaccel.quant import quantize_weights
    from lpaccel.sim.golden.gemv import gemv_golden

    tb = await make_tb(dut, seed=3)
    rng = np.random.default_rng(3)
    w = rng.normal(0, 0.05, (16, 64)).astype(np.float32)
    x = rng.normal(0, 1, 64).astype(np.float32)
    qw = quantize_weights(w, "q8_0")

    def host_code():
        dev = Device(tb.transport())
        y = dev.gemv(qw, x, timeout_cycles=200_000)
        return y, dev.transport.link_info().counters()

    y, counters = await tb.run_host(host_code)
    got = np.asarray(y, dtype=np.float32).view(np.uint32)
    want = np.asarray(gemv_golden(qw, x), dtype=np.float32).view(np.uint32)
    assert np.array_equal(got, want), "GEMV over the link differs from the golden model"
    assert counters["crc_errors"] == 0 and counters["frames"] > 10, counters
    tb.log.info("GEMV through the bridge: %s, %d cycles", counters, tb.cycle)
    await tb.wait_idle()


@cocotb.test()
async def uart_phy(dut):
    """The real UART PHY (cocotbext-uart on the pins, divisor from BridgeConfig): register
    read, a memory write/read and LINK_INFO."""
    tb = await make_tb(dut, uart=True, seed=4)
    client = tb.client()
    rng = random.Random(4)
    magic = await tb.read_regs(client, tb.regmap["MAGIC"].address, 1)
    assert magic == [0x4C504143]
    data = [rng.randrange(1 << 32) for _ in range(24)]
    await tb.transact(client, Cmd.MEM_WRITE, 0x2104, words=data)
    assert tb.peek(0x2104, 96) == bytes_of(data)
    assert list((await tb.transact(client, Cmd.MEM_READ, 0x2104, count=24)).words) == data
    info = await tb.link_info(client)
    assert info[2] == 4 and info[3:] == [0] * 5, info
    await tb.wait_idle()


@cocotb.test()
async def faults(dut):
    """Link faults both ways (bit flips, truncation, garbage, dropped and duplicated bytes,
    stalls longer than the bridge's timeout) over LINK_FAULT_FRAMES request frames: zero
    corrupted writes in registers or memory, zero corrupted read data, every operation
    succeeds or raises LinkError, and a clean operation after each failure succeeds."""
    frames = int(os.environ.get("LINK_FAULT_FRAMES", 1000))
    seed = int(os.environ.get("LINK_FAULT_SEED", 5))
    tb = await make_tb(dut, idle=0.1, stall=0.1, seed=seed)
    rng = random.Random(seed)
    timeout = tb.bridge_config.timeout_cycles
    faults = LinkFaults(random.Random(seed + 1), rate=0.25, stall_cycles=timeout + 200)
    client = tb.client()
    rm = tb.regmap
    scratch, block = rm["SCRATCH"].address, rm["JOB_WEIGHT_ADDR"].address
    regs = {scratch: 0, **{block + 4 * k: 0 for k in range(6)}}
    base, size = 0x8000, 0x2000
    shadow = bytearray(rng.randrange(256) for _ in range(size))
    tb.preload(base, bytes(shadow))
    n_ok = n_failed = n_words_checked = 0
    kinds = {"reg_write": 0, "reg_read": 0, "mem_write": 0, "mem_read": 0, "info": 0}

    async def clean(cmd, addr, **kw):
        # The link with the faults switched off: must work at once.
        tb.faults = None
        try:
            return await tb.transact(client, cmd, addr, **kw)
        finally:
            tb.faults = faults

    tb.faults = faults
    while tb.stats["attempts"] < frames:
        kind = rng.choice(list(kinds))
        kinds[kind] += 1
        # Some operations get few retries, so that failures (LinkError) happen too.
        client.retries = 1 if rng.random() < 0.3 else 8
        if kind in ("reg_write", "reg_read"):
            if rng.random() < 0.3:
                addr, n = scratch, 1
            else:
                first = rng.randrange(3)
                addr, n = block + 8 * first, 2 * rng.randint(1, 3 - first)
        else:
            addr, n = random_span(rng, base, size, max_words=48)
        old = (bytes_of(regs[addr + 4 * k] for k in range(n)) if kind.startswith("reg")
               else bytes(shadow[addr - base:addr - base + 4 * n]))
        new = [rng.randrange(1 << 32) for _ in range(n)]
        try:
            if kind == "reg_write":
                await tb.transact(client, Cmd.REG_WRITE, addr, words=new)
            elif kind == "mem_write":
                await tb.transact(client, Cmd.MEM_WRITE, addr, words=new)
            elif kind == "reg_read":
                got = list((await tb.transact(client, Cmd.REG_READ, addr, count=n)).words)
                assert got == words_of(old), f"corrupted register read at {addr:#x}"
                n_words_checked += n
            elif kind == "mem_read":
                got = list((await tb.transact(client, Cmd.MEM_READ, addr, count=n)).words)
                assert got == words_of(old), f"corrupted memory read at {addr:#x}"
                n_words_checked += n
            else:
                got = list((await tb.transact(client, Cmd.LINK_INFO, 0)).words)
                assert got[0] == 0x4B4E4C4C and got[1] == 1 | 256 << 8, got
            n_ok += 1
            done = True
        except LinkError:
            n_failed += 1
            done = None       # a write may or may not have been applied: find out
        if kind == "reg_write":
            if done is None:
                now = list((await clean(Cmd.REG_READ, addr, count=n)).words)
                assert now in (words_of(old), new), f"corrupted register write at {addr:#x}"
            else:
                now = new
            for k in range(n):
                regs[addr + 4 * k] = now[k]
        elif kind == "mem_write":
            now = tb.peek(addr, 4 * n)
            assert now in (old, bytes_of(new)), f"corrupted memory write at {addr:#x}"
            if done:
                assert now == bytes_of(new), f"acknowledged write at {addr:#x} not applied"
            shadow[addr - base:addr - base + 4 * n] = now
        elif done is None:
            await clean(Cmd.LINK_INFO, 0)      # the next operation succeeds
        assert tb.peek(base, size) == bytes(shadow), "memory outside a write changed"

    tb.faults = None
    client.retries = 8
    got = list((await tb.transact(client, Cmd.REG_READ, scratch, count=1)).words)
    assert got == [regs[scratch]]
    got = list((await tb.transact(client, Cmd.REG_READ, block, count=6)).words)
    assert got == [regs[block + 4 * k] for k in range(6)]
    info = list((await tb.transact(client, Cmd.LINK_INFO, 0)).words)
    names = ("frames", "crc_errors", "overruns", "resyncs", "duplicates", "error_responses")
    bridge = dict(zip(names, info[2:], strict=True))
    tb.log.info("fault test: %d request frames (%d attempts), %d faults injected %s",
                frames, tb.stats["attempts"], faults.total(), dict(sorted(faults.counts.items())))
    tb.log.info("fault test: operations %d ok, %d raised LinkError (%s); %d read words "
                "checked; host %s", n_ok, n_failed, kinds, n_words_checked, client.stats)
    tb.log.info("fault test: bridge LINK_INFO %s", bridge)
    tb.log.info("fault test: %d cycles, %d of them with the byte pump awake", tb.cycle,
                tb.stats["pump_cycles"])
    assert tb.stats["attempts"] >= frames
    assert faults.total() >= frames // 4, faults.counts
    assert bridge["crc_errors"] > 0 and bridge["resyncs"] > 0 and bridge["duplicates"] > 0, bridge
    assert bridge["error_responses"] == 0 and bridge["overruns"] == 0, bridge
    assert n_failed > 0, "no operation failed: the LinkError path was not exercised"
    assert n_ok > 0
    # Negative: the memory check sees a single flipped bit, and a read with damaged data
    # is caught by the comparison with the intended state.
    wb = tb.word_bytes
    bad = bytearray(shadow[:wb])
    bad[3] ^= 0x10
    tb.preload(base, bytes(bad))
    assert tb.peek(base, size) != bytes(shadow)
    got = list((await tb.transact(client, Cmd.MEM_READ, base, count=1)).words)
    assert got != words_of(shadow[:4])
    tb.preload(base, bytes(shadow[:wb]))
    assert tb.peek(base, size) == bytes(shadow)
    await tb.wait_idle()
