"""cocotb: AxiSram (port ``s``) and the behavioural AxiSpram (port ``p``).

Top ``MemoriesTop``. Throughput (one beat per cycle), error responses and
random traffic with pauses, each port under a protocol checker.
"""

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from lpaccel.sim.infra.axi_checker import AxiProtocolChecker
from lpaccel.sim.infra.axi_traffic import AxiTrafficGenerator, quiet_axi_master
from lpaccel.sim.infra.harness import params
from lpaccel.sim.infra.streams import PAUSE_MODES

P = {**params(), **json.loads(os.environ.get("BUS_TEST", "{}"))}
SIZES = {"s": P["sram_bytes"], "p": P["spram_bytes"]}
WORD = P["data_width"] // 8


async def start(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    checkers = {p: AxiProtocolChecker(dut.clk, dut, p, reset=dut.rst) for p in SIZES}
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    return checkers


def master(dut, prefix):
    from cocotbext.axi import AxiBus, AxiMaster
    mst = AxiMaster(AxiBus.from_prefix(dut, prefix), dut.clk, dut.rst)
    quiet_axi_master(mst)
    return mst


def span(cycles):
    """Cycles from the first to the last beat, inclusive."""
    return cycles[-1] - cycles[0] + 1


@cocotb.test()
async def throughput(dut):
    """Back-to-back 256-beat bursts: one beat per cycle.

    AxiSram: reads and writes at the same time, each at one beat per cycle.
    AxiSpram: reads alone and writes alone (both together: next test).
    """
    checkers = await start(dut)
    results = {}
    burst = 256 * WORD
    data = bytes(range(256)) * (burst // 256)

    async def run(mst, beats, kind, n):
        for cycles in beats.values():
            cycles.clear()
        ops = []
        if kind in ("r", "rw"):
            ops += [cocotb.start_soon(mst.read(k * burst, burst)) for k in range(n)]
        if kind in ("w", "rw"):
            ops += [cocotb.start_soon(mst.write(k * burst, data)) for k in range(n)]
        for op in ops:
            await op
        return {ch: (len(c), span(c)) for ch, c in beats.items() if c}

    for prefix in SIZES:
        mst = master(dut, prefix)
        beats = {"r": [], "w": []}
        for ch, cycles in beats.items():
            checkers[prefix].add_callback(ch, lambda cycle, p, cycles=cycles: cycles.append(cycle))
        results[prefix] = {kind: await run(mst, beats, kind, 4) for kind in ("w", "r", "rw")}
        dut._log.info(f"{prefix}: (beats, cycles from first to last beat) {results[prefix]}")
        print(f"THROUGHPUT {prefix} {results[prefix]}")
    for prefix in SIZES:
        for kind in ("w", "r"):
            n, cycles = results[prefix][kind][kind]
            assert n == 1024 and cycles == n, (prefix, kind, n, cycles)
    # AxiSram: reads and writes overlap fully, each at full rate.
    (rn, rc), (wn, wc) = results["s"]["rw"]["r"], results["s"]["rw"]["w"]
    assert rc == rn and wc == wn, results["s"]["rw"]
    for checker in checkers.values():
        checker.check_idle()


@cocotb.test()
async def spram_shared_port_rate(dut):
    """AxiSpram with reads and writes at once: 2048 beats in about 2048 cycles."""
    checkers = await start(dut)
    mst = master(dut, "p")
    cycles = []
    for ch in ("r", "w"):
        checkers["p"].add_callback(ch, lambda cycle, p: cycles.append(cycle))
    burst = 256 * WORD
    ops = [cocotb.start_soon(mst.read(k * burst, burst)) for k in range(4)]
    ops += [cocotb.start_soon(mst.write((k + 4) * burst, bytes(burst))) for k in range(4)]
    for op in ops:
        await op
    cycles.sort()
    print(f"THROUGHPUT p shared: {len(cycles)} beats in {span(cycles)} cycles")
    assert len(cycles) == 2048
    # A beat per cycle in total, give or take the turnaround at the edges.
    assert span(cycles) <= 2048 + 8, span(cycles)
    for checker in checkers.values():
        checker.check_idle()


@cocotb.test()
async def error_responses(dut):
    """DECERR beyond the end, SLVERR for narrow or non-INCR bursts; nothing
    written by a failed write."""
    from cocotbext.axi import AxiBurstType, AxiResp
    checkers = await start(dut)
    for prefix, size in SIZES.items():
        mst = master(dut, prefix)
        pattern = bytes((k * 7 + 1) & 0xFF for k in range(4 * WORD))
        await mst.write(0, pattern)
        # Entirely out of range: DECERR, and no aliasing onto address 0.
        resp = await mst.write(size, bytes(4 * WORD))
        assert resp.resp == AxiResp.DECERR, (prefix, resp)
        resp = await mst.read(size, 4 * WORD)
        assert resp.resp == AxiResp.DECERR, (prefix, resp)
        # Straddling the end: the in-range beats are served, the burst says DECERR.
        resp = await mst.write(size - 2 * WORD, bytes([0xAB]) * 4 * WORD)
        assert resp.resp == AxiResp.DECERR, (prefix, resp)
        resp = await mst.read(size - 2 * WORD, 2 * WORD)
        assert resp.resp == AxiResp.OKAY and resp.data == bytes([0xAB]) * 2 * WORD, resp
        resp = await mst.read(size - 2 * WORD, 4 * WORD)
        assert resp.resp == AxiResp.DECERR, (prefix, resp)
        # Narrow beats (size < data width) and FIXED bursts: SLVERR, no write.
        resp = await mst.write(0, bytes(4), size=2)
        assert resp.resp == AxiResp.SLVERR, (prefix, resp)
        resp = await mst.write(0, bytes(2 * WORD), burst=AxiBurstType.FIXED)
        assert resp.resp == AxiResp.SLVERR, (prefix, resp)
        resp = await mst.read(0, 4, size=2)
        assert resp.resp == AxiResp.SLVERR, (prefix, resp)
        resp = await mst.read(0, 4 * WORD)
        assert resp.resp == AxiResp.OKAY and resp.data == pattern, (prefix, resp.data.hex())
        # Byte strobes: a single byte in the middle of a word.
        await mst.write(3, b"\x5a")
        resp = await mst.read(0, WORD)
        assert resp.data == pattern[:3] + b"\x5a" + pattern[4:WORD], resp.data.hex()
    for checker in checkers.values():
        checker.check_idle()
        assert checker.error_responses["b"] == 4, checker.error_responses


@cocotb.test()
@cocotb.parametrize(idle=list(PAUSE_MODES), backpressure=list(PAUSE_MODES))
async def random_traffic(dut, idle, backpressure):
    """Random traffic on both memories at once, all pause combinations."""
    names = list(PAUSE_MODES)
    seed = P["seed"] * 100 + 10 * names.index(idle) + names.index(backpressure)
    checkers = await start(dut)
    gens = [AxiTrafficGenerator(dut.clk, dut, [prefix], reset=dut.rst, window=(0, size),
                                seed=seed + k, idle=idle, backpressure=backpressure,
                                max_burst=32)
            for k, (prefix, size) in enumerate(SIZES.items())]
    await cocotb.triggers.gather(*(g.run(beats=P["beats"] // 9 // 2) for g in gens))
    await ClockCycles(dut.clk, 4)
    for gen, checker in zip(gens, checkers.values()):
        gen.check([checker])
        s = gen.stats
        assert s.reads and s.writes and checker.beats["r"] == s.read_beats
        assert s.compared_bytes > 0, "no read checked a written byte"
        print(f"TRAFFIC {checker.prefix} beats={s.beats} cycles={checker.cycles} "
              f"compared={s.compared_bytes} "
              f"idle={idle} backpressure={backpressure}")
