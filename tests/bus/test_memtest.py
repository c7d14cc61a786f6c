"""AxiMemTest (the board DRAM self-test) against AxiSram in amaranth.sim."""

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from lpaccel.rtl.bus.memtest import AxiMemTest, AxiMemTestConfig, memtest_pattern
from lpaccel.rtl.mem import AxiMemoryConfig, AxiSram


def _run(test_cfg, mem_bytes, cycles=20_000):
    m = Module()
    m.submodules.test = test = AxiMemTest(test_cfg)
    m.submodules.mem = mem = AxiSram(AxiMemoryConfig(
        size_bytes=mem_bytes, data_width=test_cfg.data_width, addr_width=test_cfg.addr_width,
        id_width=test_cfg.id_width))
    wiring.connect(m, test.axi, mem.axi)
    out = {}

    async def bench(ctx):
        ctx.set(test.start, 1)
        for cycle in range(cycles):
            await ctx.tick()
            if ctx.get(test.done):
                out.update(cycle=cycle, passed=ctx.get(test.passed), errors=ctx.get(test.errors))
                return
    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out, mem


def test_memtest_passes_on_good_memory():
    cfg = AxiMemTestConfig(addr_width=16, data_width=64, words=256, burst=16)
    out, _ = _run(cfg, mem_bytes=4096)
    assert out and out["passed"] == 1 and out["errors"] == 0, out
    # Two passes over 256 words plus per-burst handshakes.
    assert 512 <= out["cycle"] < 1000, out


def test_memtest_counts_errors_beyond_the_memory():
    # 512 words of 8 bytes = 4 KiB tested, only 2 KiB present: DECERR on the
    # upper half (8 B responses and 256 R beats).
    cfg = AxiMemTestConfig(addr_width=16, data_width=64, words=512, burst=16)
    out, _ = _run(cfg, mem_bytes=2048)
    assert out and out["passed"] == 0 and out["errors"] == 16 + 256, out


def test_pattern_model_and_config():
    assert memtest_pattern(0, 32) == 0x5A5A1234
    assert memtest_pattern(1, 64) >> 32 == (0x01000193 + 0x3C6EF372 + 0x5A5A1234) & 0xFFFFFFFF
    with pytest.raises(ValueError, match="words must be a positive multiple of burst"):
        AxiMemTestConfig(words=100, burst=16)
    with pytest.raises(ValueError, match="base must be 4 KiB-aligned"):
        AxiMemTestConfig(base=0x100)
