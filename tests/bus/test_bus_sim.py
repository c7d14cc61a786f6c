"""Fast amaranth.sim unit tests: arbiter routing and W order, AxiSram bursts."""

from amaranth.sim import Simulator

from lpaccel.rtl.bus.axi import Resp
from lpaccel.rtl.bus.interconnect import AXI4Arbiter, AXI4ArbiterConfig
from lpaccel.rtl.mem import AxiMemoryConfig, AxiSram


def _run(dut, bench, cycles=2000):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run_until(cycles * 1e-8)


def test_arbiter_ids_routing_and_w_order():
    cfg = AXI4ArbiterConfig(managers=2, addr_width=32, data_width=32, id_width=2,
                            max_outstanding=4)
    arb = AXI4Arbiter(cfg)
    m0, m1 = arb.managers
    sub = arb.subordinate
    seen = {}

    async def bench(ctx):
        ctx.set(sub.aw.ready, 1)
        ctx.set(sub.w.ready, 1)
        pending_aw = {0: (1, 0x100), 1: (3, 0x200)}
        w_data = {0: [(0xA0, 0), (0xA1, 1)], 1: [(0xB0, 0), (0xB1, 1)]}
        grants, beats = [], []
        for _cycle in range(30):
            for k, mg in enumerate((m0, m1)):
                if k in pending_aw:
                    ident, addr = pending_aw[k]
                    ctx.set(mg.aw.valid, 1)
                    ctx.set(mg.aw.id, ident)
                    ctx.set(mg.aw.addr, addr)
                    ctx.set(mg.aw.len, 1)
                else:
                    ctx.set(mg.aw.valid, 0)
                if w_data[k]:
                    data, last = w_data[k][0]
                    ctx.set(mg.w.valid, 1)
                    ctx.set(mg.w.data, data)
                    ctx.set(mg.w.last, last)
                else:
                    ctx.set(mg.w.valid, 0)
            # Sample handshakes with settled combinational logic, then clock.
            taken_aw = [k for k, mg in enumerate((m0, m1))
                        if ctx.get(mg.aw.valid) and ctx.get(mg.aw.ready)]
            taken_w = [k for k, mg in enumerate((m0, m1))
                       if ctx.get(mg.w.valid) and ctx.get(mg.w.ready)]
            if ctx.get(sub.aw.valid):
                grants.append((ctx.get(sub.aw.id), ctx.get(sub.aw.addr)))
            if ctx.get(sub.w.valid):
                beats.append((ctx.get(sub.w.data), ctx.get(sub.w.last)))
            await ctx.tick()
            for k in taken_aw:
                del pending_aw[k]
            for k in taken_w:
                w_data[k].pop(0)
        seen["grants"], seen["beats"] = grants, beats

        # B for manager 1 (index 1 in bit 2, own ID 3) reaches only manager 1.
        ctx.set(sub.b.valid, 1)
        ctx.set(sub.b.id, (1 << 2) | 3)
        ctx.set(sub.b.resp, Resp.SLVERR)
        ctx.set(m1.b.ready, 1)
        seen["b"] = (ctx.get(m0.b.valid), ctx.get(m1.b.valid), ctx.get(m1.b.id),
                     ctx.get(m1.b.resp), ctx.get(sub.b.ready))

    _run(arb, bench, cycles=60)
    # Manager 0 wins the first grant (round-robin starts at 0), then 1.
    assert seen["grants"] == [((0 << 2) | 1, 0x100), ((1 << 2) | 3, 0x200)], seen
    # W follows AW order, whole bursts, although manager 1 offered data first.
    assert seen["beats"] == [(0xA0, 0), (0xA1, 1), (0xB0, 0), (0xB1, 1)], seen
    assert seen["b"] == (0, 1, 3, Resp.SLVERR, 1), seen


def test_axisram_burst_write_then_read():
    cfg = AxiMemoryConfig(size_bytes=1024, data_width=32, addr_width=16, id_width=2)
    dut = AxiSram(cfg)
    axi = dut.axi
    out = {}

    async def bench(ctx):
        ctx.set(axi.b.ready, 1)
        ctx.set(axi.r.ready, 1)
        # AW: 4 beats at 0x10.
        ctx.set(axi.aw.valid, 1)
        ctx.set(axi.aw.addr, 0x10)
        ctx.set(axi.aw.len, 3)
        ctx.set(axi.aw.size, 2)
        ctx.set(axi.aw.burst, 1)
        ctx.set(axi.aw.id, 2)
        await ctx.tick().until(axi.aw.ready)
        ctx.set(axi.aw.valid, 0)
        for k in range(4):
            ctx.set(axi.w.valid, 1)
            ctx.set(axi.w.data, 0x11111111 * (k + 1))
            ctx.set(axi.w.strb, 0xF if k != 2 else 0x3)
            ctx.set(axi.w.last, k == 3)
            await ctx.tick().until(axi.w.ready)
        ctx.set(axi.w.valid, 0)
        bid, bresp = await ctx.tick().sample(axi.b.id, axi.b.resp).until(axi.b.valid)
        out["b"] = (bid, bresp)
        # AR: 5 beats from 0x10; the last word was never written.
        ctx.set(axi.ar.valid, 1)
        ctx.set(axi.ar.addr, 0x10)
        ctx.set(axi.ar.len, 4)
        ctx.set(axi.ar.size, 2)
        ctx.set(axi.ar.burst, 1)
        ctx.set(axi.ar.id, 1)
        await ctx.tick().until(axi.ar.ready)
        ctx.set(axi.ar.valid, 0)
        beats = []
        while not beats or not beats[-1][2]:
            data, rid, last, resp = await ctx.tick().sample(
                axi.r.data, axi.r.id, axi.r.last, axi.r.resp).until(axi.r.valid)
            beats.append((data, rid, last, resp))
        out["r"] = beats
        # Out of range: DECERR.
        ctx.set(axi.ar.valid, 1)
        ctx.set(axi.ar.addr, 1024)
        ctx.set(axi.ar.len, 0)
        await ctx.tick().until(axi.ar.ready)
        ctx.set(axi.ar.valid, 0)
        resp, = await ctx.tick().sample(axi.r.resp).until(axi.r.valid)
        out["decerr"] = resp

    _run(dut, bench)
    assert out["b"] == (2, Resp.OKAY)
    assert [d for d, *_ in out["r"][:4]] == [0x11111111, 0x22222222, 0x00003333, 0x44444444]
    assert [(i, last, resp) for _, i, last, resp in out["r"]] == \
        [(1, 0, 0)] * 4 + [(1, 1, 0)], out["r"]
    assert out["decerr"] == Resp.DECERR
