# amaranth: UnusedElaboratable=no
"""Host bridge checks written for the mutation catalogue (fast, amaranth.sim).

On ``tests/bridge/test_bridge_sim.py``'s bench: a register access at an
address beyond the CSR bank's window is refused (``BUS_ERROR``, no bus
access; a narrower CSR port would otherwise alias it onto a register), and
every memory write burst carries exactly ``AWLEN + 1`` W beats with WLAST on
the last one (the on-chip RAM tolerates an extra zero-strobe beat, an AXI
subordinate need not).
"""

from amaranth.hdl import Mux, Signal

from lpaccel.link import Cmd, Status
from tests.bridge.test_bridge_sim import SCRATCH, Bench


def test_register_access_beyond_the_csr_window():
    bench = Bench()
    alias = (1 << bench.bank.addr_width) + SCRATCH

    async def scenario(t):
        assert await t.ok(1, Cmd.REG_WRITE, SCRATCH, [0x1234]) == []
        bus = t.bus()
        assert await t.status(2, Cmd.REG_WRITE, alias, [0x5678]) == Status.BUS_ERROR
        assert await t.status(3, Cmd.REG_READ, alias, count=1) == Status.BUS_ERROR
        assert t.bus() == bus
        assert await t.ok(4, Cmd.REG_READ, SCRATCH, count=1) == [0x1234]

    bench.run(scenario)


def test_memory_write_bursts_have_awlen_plus_one_beats():
    bench = Bench(data_width=32)
    mem = bench.bridge.mem
    m = bench.m
    awlen = Signal(8)
    beats = Signal(9)
    errors = Signal(8)
    bursts = Signal(8)
    with m.If(mem.aw.valid & mem.aw.ready):
        m.d.sync += awlen.eq(mem.aw.len)
    with m.If(mem.w.valid & mem.w.ready):
        m.d.sync += beats.eq(Mux(mem.w.last, 0, beats + 1))
        with m.If(mem.w.last != (beats == awlen)):
            m.d.sync += errors.eq(errors + 1)
        with m.If(mem.w.last):
            m.d.sync += bursts.eq(bursts + 1)

    async def scenario(t):
        for seq, (addr, n) in enumerate([(0x100, 1), (0x200, 3), (0x304, 5), (0x400, 16)]):
            assert await t.ok(seq, Cmd.MEM_WRITE, addr, list(range(1, n + 1))) == []
            assert await t.ok(seq + 8, Cmd.MEM_READ, addr, count=n) == list(range(1, n + 1))
        assert t.ctx.get(bursts) == 4
        assert t.ctx.get(errors) == 0

    bench.run(scenario)
