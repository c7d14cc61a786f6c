"""Bus and utility checks written for the mutation catalogue (fast, amaranth.sim).

- The arbiter counts reads and writes in flight against ``max_outstanding``
  and counts them down when they complete: many more transactions than the
  limit, one after the other, all get through (a counter that never goes
  down locks the bus after ``max_outstanding`` of them).
- An on-chip RAM write burst running past the end answers DECERR.
- ``tree_reduce`` / ``popcount`` on odd widths (the gateware uses powers of
  two, where dropping the odd value out would not show).
"""

from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from lpaccel.rtl.bus.interconnect import AXI4Arbiter, AXI4ArbiterConfig
from lpaccel.rtl.utils import or_reduce, popcount


def test_arbiter_counts_completed_transactions_down():
    cfg = AXI4ArbiterConfig(managers=2, addr_width=32, data_width=32, id_width=2,
                            max_outstanding=2)
    arb = AXI4Arbiter(cfg)
    mg = arb.managers[1]
    sub = arb.subordinate
    rounds = 4 * cfg.max_outstanding
    done = {"reads": 0, "writes": 0}
    sub_id = 1 << cfg.id_width          # manager 1's index above its own ID 0

    async def bench(ctx):
        ctx.set(sub.ar.ready, 1)
        ctx.set(sub.aw.ready, 1)
        ctx.set(sub.w.ready, 1)
        ctx.set(mg.r.ready, 1)
        ctx.set(mg.b.ready, 1)
        for k in range(rounds):
            # One read: AR granted, then its single R beat (ID carries the manager index).
            ctx.set(mg.ar.valid, 1)
            ctx.set(mg.ar.addr, 0x40 * k)
            for _ in range(20):
                _, _, ready = await ctx.tick().sample(mg.ar.ready)
                if ready:
                    break
            else:
                return
            ctx.set(mg.ar.valid, 0)
            await ctx.tick()
            ctx.set(sub.r.valid, 1)
            ctx.set(sub.r.id, sub_id)
            ctx.set(sub.r.last, 1)
            await ctx.tick()
            ctx.set(sub.r.valid, 0)
            done["reads"] += 1
            # One write: AW, one W beat, then its B.
            ctx.set(mg.aw.valid, 1)
            ctx.set(mg.aw.addr, 0x40 * k)
            ctx.set(mg.w.valid, 1)
            ctx.set(mg.w.last, 1)
            aw_done = w_done = False
            for _ in range(20):
                _, _, aw_ready, w_ready = await ctx.tick().sample(mg.aw.ready, mg.w.ready)
                aw_done |= bool(aw_ready)
                w_done |= bool(w_ready)
                if aw_ready:
                    ctx.set(mg.aw.valid, 0)
                if w_ready:
                    ctx.set(mg.w.valid, 0)
                if aw_done and w_done:
                    break
            else:
                return
            await ctx.tick()
            ctx.set(sub.b.valid, 1)
            ctx.set(sub.b.id, sub_id)
            await ctx.tick()
            ctx.set(sub.b.valid, 0)
            done["writes"] += 1

    sim = Simulator(arb)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert done == {"reads": rounds, "writes": rounds}


def test_reductions_on_odd_widths():
    values = {n: Signal(n, name=f"v{n}") for n in range(1, 10)}
    counts = {n: popcount(v) for n, v in values.items()}
    ors = {n: or_reduce([v[i] for i in range(n)]) for n, v in values.items()}

    async def bench(ctx):
        for n, v in values.items():
            for x in range(1 << n):
                ctx.set(v, x)
                assert ctx.get(counts[n]) == bin(x).count("1"), (n, x)
                assert ctx.get(ors[n]) == (x != 0), (n, x)

    sim = Simulator(Module())
    sim.add_testbench(bench)
    sim.run()


def test_sram_write_burst_past_the_end_is_decerr():
    """A write burst that runs past the memory's end answers DECERR (its worst beat)."""
    from lpaccel.rtl.bus.axi import Resp
    from lpaccel.rtl.mem import AxiMemoryConfig, AxiSram

    cfg = AxiMemoryConfig(size_bytes=1024, data_width=32, addr_width=16, id_width=2)
    dut = AxiSram(cfg)
    axi = dut.axi
    out = []

    async def bench(ctx):
        ctx.set(axi.b.ready, 1)
        for addr, beats in ((1024 - 8, 4), (1024 - 8, 2)):
            ctx.set(axi.aw.valid, 1)
            ctx.set(axi.aw.addr, addr)
            ctx.set(axi.aw.len, beats - 1)
            ctx.set(axi.aw.size, 2)
            ctx.set(axi.aw.burst, 1)
            await ctx.tick().until(axi.aw.ready)
            ctx.set(axi.aw.valid, 0)
            for k in range(beats):
                ctx.set(axi.w.valid, 1)
                ctx.set(axi.w.strb, 0xF)
                ctx.set(axi.w.last, k == beats - 1)
                await ctx.tick().until(axi.w.ready)
            ctx.set(axi.w.valid, 0)
            resp, = await ctx.tick().sample(axi.b.resp).until(axi.b.valid)
            out.append(resp)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run_until(400e-8)
    assert out == [Resp.DECERR, Resp.OKAY]
