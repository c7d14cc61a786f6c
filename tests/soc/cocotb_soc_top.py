"""cocotb tests of the SoC top through its CSR port and memory window (run by test_soc_top.py).

Each test resets the SoC first and ends with :meth:`SocTB.check_idle`.
"""

import os
import random
import time

import cocotb

from lpaccel.rtl.regmap import GemvError
from lpaccel.sim.infra.harness import params
from lpaccel.sim.testbenches.soc import BusError, SocTB, config_from_params

CONFIG, BUILD_HASH = config_from_params(params())
PAUSES = os.environ.get("SOC_PAUSES", "none")


async def make_tb(dut, *, checkers=True, pauses=PAUSES, seed=1):
    # Pauses need cocotbext-axi's managers; without them the light ones are tested.
    host = "light" if pauses == "none" else "cocotbext"
    tb = SocTB(dut, CONFIG, build_hash=BUILD_HASH, checkers=checkers, host=host,
               pauses=pauses, seed=seed)
    await tb.reset()
    return tb


@cocotb.test()
async def identity(dut):
    """Every constant register (MAGIC, VERSION, BUILD_HASH, CAP_*) reads what the map says."""
    tb = await make_tb(dut)
    constants = [reg for reg in tb.regmap
                 if reg.fields and all(f.access == "RO" and f.reset is not None and
                                       not f.hw_writable and not f.counter
                                       for f in reg.fields)]
    names = {reg.name for reg in constants}
    assert {"MAGIC", "VERSION", "BUILD_HASH", "CAP_FORMATS", "CAP_ENGINE", "CAP_MAX_ROWS",
            "CAP_MAX_COLS", "CAP_MEMORY", "CAP_DMA", "CAP_MEM_SIZE", "CAP_JOBS"} <= names
    for reg in constants:
        got = await tb.read_reg(reg.name)
        assert got == reg.reset, f"{reg.name} reads {got:#x}, the map says {reg.reset:#x}"
    assert await tb.read_reg("MAGIC") == 0x4C504143
    assert await tb.read_reg("CAP_MEM_SIZE") == CONFIG.memory_size
    assert await tb.read_reg("BUILD_HASH") == BUILD_HASH
    assert (await tb.read_fields("CAP_JOBS"))["DEPTH"] == CONFIG.job_depth
    # SCRATCH is plain storage; the watchdog resets to its map value.
    await tb.write_reg("SCRATCH", 0x1234_5678)
    assert await tb.read_reg("SCRATCH") == 0x1234_5678
    assert await tb.read_reg("WATCHDOG") == tb.regmap["WATCHDOG"].reset
    await tb.check_idle()


@cocotb.test()
async def host_window(dut):
    """Writes and reads of random length and alignment through the host window round-trip."""
    tb = await make_tb(dut, seed=2)
    rng = random.Random(2)
    span = min(CONFIG.memory_size, 64 * 1024)
    shadow = {}
    for _ in range(24):
        n = rng.choice([1, 3, 16, 64, rng.randrange(1, 600), 4096])
        addr = rng.randrange(0, span - n)
        data = rng.randbytes(n)
        await tb.write_mem(addr, data)
        for k, b in enumerate(data):
            shadow[addr + k] = b
        # Read back a range that overlaps this write and maybe older ones.
        lo = max(0, addr - rng.randrange(0, 64))
        hi = min(span, addr + n + rng.randrange(0, 64))
        got = await tb.read_mem(lo, hi - lo)
        for k in range(hi - lo):
            if lo + k in shadow:
                assert got[k] == shadow[lo + k], \
                    f"byte {lo + k:#x} reads {got[k]:#04x}, wrote {shadow[lo + k]:#04x}"
    beats = {p: c.beats for p, c in tb.checkers.items()}
    assert beats["s_axi"]["w"] > 0 and beats["s_axi"]["r"] > 0
    assert beats["mem"]["w"] == beats["s_axi"]["w"], "host write beats must all reach memory"
    assert beats["dma"]["ar"] == beats["dma"]["aw"] == 0, "the DMA moved without a job"
    await tb.check_idle()


@cocotb.test()
async def backdoor(dut):
    """Backdoor preload then host read agree, and host write then backdoor peek agree."""
    tb = await make_tb(dut, seed=3)
    rng = random.Random(3)
    wb = tb.word_bytes
    for addr, n in ((0, 4 * wb), (5 * wb + 3, 3 * wb + 5), (tb.storage_bytes - 2 * wb, 2 * wb),
                    (rng.randrange(tb.storage_bytes // 2) // wb * wb, 4096)):
        data = rng.randbytes(n)
        tb.preload(addr, data)
        assert tb.peek(addr, n) == data
        got = await tb.read_mem(addr, n)
        assert got == data, f"host window at {addr:#x} disagrees with the preload"
        other = rng.randbytes(n)
        await tb.write_mem(addr, other)
        await tb.cycles(4)
        assert tb.peek(addr, n) == other, f"backdoor at {addr:#x} disagrees with the host write"
    # Rate of a bulk preload (whole storage, capped at 16 MiB).
    n = min(tb.storage_bytes, 16 << 20)
    data = rng.randbytes(n)
    start = time.perf_counter()
    tb.preload(0, data)
    seconds = time.perf_counter() - start
    tb.log.info("backdoor preload: %d bytes in %.3f s = %.2f MB/s (%d words)", n, seconds,
                n / seconds / 1e6, n // wb)
    data = rng.randbytes(n)
    start = time.perf_counter()
    tb.preload(0, data)
    seconds = time.perf_counter() - start
    tb.log.info("backdoor preload again (handles cached): %.3f s = %.2f MB/s", seconds,
                n / seconds / 1e6)
    start = time.perf_counter()
    assert tb.peek(0, n) == data
    seconds = time.perf_counter() - start
    tb.log.info("backdoor peek: %d bytes in %.3f s = %.2f MB/s", n, seconds, n / seconds / 1e6)
    probe = rng.randrange(0, n - 256) // wb * wb
    assert await tb.read_mem(probe, 256) == data[probe:probe + 256]
    try:
        tb.preload(tb.storage_bytes - 4, bytes(8))
    except ValueError as error:
        assert "outside the simulated storage" in str(error)
    else:
        raise AssertionError("a preload past the storage was accepted")
    await tb.check_idle()


async def push_job(tb, tag, *, rows=0, cols=32, irq=0):
    for name, value in (("JOB_ROWS", rows), ("JOB_COLS", cols), ("JOB_TAG", tag),
                        ("JOB_FLAGS", irq)):
        await tb.write_reg(name, value)
    await tb.write_reg("JOB_PUSH", 1)


@cocotb.test()
async def queue_overflow(dut):
    """A push with JOB_LEVELS.FREE = 0 sets ERROR.OVERFLOW and is dropped.

    The jobs have rows = 0, so the sequencer ends each with BAD_ROWS at once
    and its record waits in the completion queue: after CAP_JOBS.DEPTH pushes
    nothing is free. (With a sequencer that takes no jobs the same pushes
    would fill the job queue instead: QUEUED, not DONE, would be the depth.)
    """
    tb = await make_tb(dut, seed=4)
    depth = CONFIG.job_depth
    assert (await tb.read_fields("ERROR"))["OVERFLOW"] == 0
    for tag in range(depth):
        await push_job(tb, 0x100 + tag, irq=tag & 1)
    await tb.cycles(50)
    levels = await tb.read_fields("JOB_LEVELS")
    assert levels == {"QUEUED": 0, "ACTIVE": 0, "DONE": depth, "FREE": 0}, levels
    assert (await tb.read_fields("ERROR"))["OVERFLOW"] == 0
    await push_job(tb, 0xDEAD)
    await tb.cycles(50)
    error = await tb.read_fields("ERROR")
    assert error["OVERFLOW"] == 1 and error["GEMV"] == GemvError.BAD_ROWS, error
    assert (await tb.read_fields("STATUS"))["ERROR"] == 1
    irq = await tb.read_fields("IRQ_STATUS")
    assert irq["GEMV_DONE"] == 1 and irq["GEMV_ERROR"] == 1, irq
    assert not int(dut.irq.value), "irq without IRQ_ENABLE"
    await tb.write_reg("IRQ_ENABLE", tb.field_value("IRQ_ENABLE", "GEMV_ERROR", 1))
    await tb.cycles(2)
    assert int(dut.irq.value) == 1
    # In push order, each exactly once; the dropped job has no record.
    for tag in range(depth):
        status = await tb.read_fields("JOB_STATUS")
        assert status == {"TAG": 0x100 + tag, "ERROR": GemvError.BAD_ROWS, "DMA": 0,
                          "VALID": 1}, status
        await tb.write_reg("JOB_POP", 1)
    assert (await tb.read_fields("JOB_STATUS"))["VALID"] == 0
    assert await tb.read_reg("PERF_JOBS_DONE") == depth
    # W1C: clearing the sticky bits drops the interrupt and STATUS.ERROR.
    await tb.write_reg("ERROR", await tb.read_reg("ERROR"))
    await tb.write_reg("IRQ_STATUS", await tb.read_reg("IRQ_STATUS"))
    await tb.cycles(2)
    assert await tb.read_reg("ERROR") == 0
    assert (await tb.read_fields("STATUS"))["ERROR"] == 0
    assert not int(dut.irq.value)
    await tb.check_idle()


@cocotb.test()
async def perf_clear(dut):
    """PERF_CONTROL.CLEAR zeroes the counters; PERF_MEM_BYTES counts host bytes at memory."""
    tb = await make_tb(dut, seed=5)
    await tb.write_reg("PERF_CONTROL", 1)
    before = await tb.read_reg("PERF_MEM_BYTES")
    assert before == 0
    n = 4096
    await tb.write_mem(0, bytes(range(256)) * (n // 256))
    assert await tb.read_mem(0, n) == bytes(range(256)) * (n // 256)
    await tb.cycles(10)
    assert await tb.read_reg("PERF_MEM_BYTES") == 2 * n
    idle = await tb.read_reg("PERF_STALL_HOST")
    assert idle > 0, "no idle cycles counted with nothing to do"
    assert await tb.read_reg("PERF_BUSY_CYCLES") == 0
    start = tb.cycle
    await tb.write_reg("PERF_CONTROL", 1)
    counts = {reg.name: await tb.read_reg(reg.name) for reg in tb.regmap
              if reg.name.startswith("PERF_") and reg.name != "PERF_CONTROL"}
    elapsed = tb.cycle - start
    for name, value in counts.items():
        if name == "PERF_STALL_HOST":
            # Idle cycles run on: only those since the clear.
            assert 0 < value <= elapsed, f"{name} = {value} after a clear {elapsed} cycles ago"
        else:
            assert value == 0, f"{name} = {value} after PERF_CONTROL.CLEAR"
    await tb.check_idle()


@cocotb.test()
async def sim_transport(dut):
    """Blocking host code in a bridge thread reaches the SoC through SimTransport."""
    tb = await make_tb(dut, seed=6)
    transport = tb.transport()
    magic = tb.regmap["MAGIC"].address
    scratch = tb.regmap["SCRATCH"].address
    wb = tb.word_bytes

    def host_code(t):
        out = {"magic": t.read32(magic)}
        t.write32(scratch, 0xCAFE_F00D)
        out["scratch"] = t.read32(scratch)
        t.write_mem(3 * wb, b"window")
        out["window"] = t.read_mem(3 * wb, 6)
        t.preload(8 * wb, b"backdoor" * 4)
        out["preloaded"] = t.read_mem(8 * wb, 32)
        out["peek"] = t.peek(3 * wb, 6)
        start = tb.cycle
        t.wait_cycles(100)
        out["waited"] = tb.cycle - start
        return out

    out = await tb.run_driver(host_code, transport)
    assert out == {"magic": 0x4C504143, "scratch": 0xCAFE_F00D, "window": b"window",
                   "preloaded": b"backdoor" * 4, "peek": b"window", "waited": 100}, out
    assert transport.reads == 2 and transport.writes == 1

    def failing(t):
        t.read32(0xFFC)   # no register there: DECERR

    try:
        await tb.run_driver(failing, transport)
    except BusError as error:
        assert "DECERR" in str(error), error
    else:
        raise AssertionError("a CSR read answered DECERR did not raise in the host code")
    await tb.check_idle()


@cocotb.test()
async def driver_gemv(dut):
    """The host driver runs small GEMVs on the SoC through SimTransport, bit-exact."""
    import numpy as np

    from lpaccel.driver import Device
    from lpaccel.quant import quantize_weights
    from lpaccel.sim.golden.gemv import gemv_golden

    tb = await make_tb(dut, seed=7)
    rng = np.random.default_rng(7)
    cases = [("q8_0", 16, 64), ("q4_0", 24, 128)]

    def host_code(t):
        dev = Device(t)
        out = []
        for fmt, rows, cols in cases:
            w = rng.normal(0, 0.05, (rows, cols)).astype(np.float32)
            x = rng.normal(0, 1, cols).astype(np.float32)
            qw = quantize_weights(w, fmt)
            out.append((fmt, dev.gemv(qw, x, timeout_cycles=200_000), gemv_golden(qw, x)))
        return out, dev.counters()

    results, counters = await tb.run_driver(host_code, tb.transport())
    for fmt, y, want in results:
        got_bits = np.asarray(y, dtype=np.float32).view(np.uint32)
        want_bits = np.asarray(want, dtype=np.float32).view(np.uint32)
        assert np.array_equal(got_bits, want_bits), f"{fmt}: results differ from the golden model"
    tb.log.info("driver counters: %s", counters)
    await tb.check_idle()
