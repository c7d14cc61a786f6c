# amaranth: UnusedElaboratable=no
"""The LPDDR controller's blocks in amaranth.sim: address map, window queue, bank timers, refresh.

Fast unit tests of the pieces :class:`~lpaccel.rtl.dram.controller.LpddrController`
is built from; the whole controller against the device model and its timing
checker is ``test_lpddr_cocotb.py``.
"""

import collections
import random

import pytest
from amaranth.hdl import Value, unsigned
from amaranth.sim import Simulator

from lpaccel.rtl.dram.address import AddressMap, address_layout
from lpaccel.rtl.dram.banks import BankMachines
from lpaccel.rtl.dram.config import Command, LpddrConfig, command_layout
from lpaccel.rtl.dram.controller import LpddrController
from lpaccel.rtl.dram.perf import LpddrPerfSignature
from lpaccel.rtl.dram.refresh import RefreshScheduler
from lpaccel.rtl.dram.scheduler import MIN_BATCH, CommandScheduler, ShiftQueue


def _simulate(dut, bench, *, clock=True):
    sim = Simulator(dut)
    if clock:
        sim.add_clock(1e-9)
    sim.add_testbench(bench)
    sim.run()


def _expected_location(cfg, burst):
    """The documented map, written independently of the gateware."""
    cols = 1 << cfg.col_bits
    banks = cfg.part.banks
    row = burst // (cols * banks)
    if cfg.bg_bits:
        groups = cfg.part.bank_groups
        group = burst % groups
        col = (burst // groups) % cols
        in_group = (burst // (groups * cols)) % (banks // groups)
        bank = group * (banks // groups) + in_group
    else:
        col = burst % cols
        bank = (burst // cols) % banks
    return bank, row % (1 << cfg.row_bits), col


@pytest.mark.parametrize("part,ratio", [("lpddr4-3200", 4), ("lpddr4-3200", 1),
                                        ("lpddr5-6400", 2)])
def test_address_map(part, ratio):
    cfg = LpddrConfig(part=part, ratio=ratio)
    dut = AddressMap(cfg)
    rng = random.Random(1)
    width = len(dut.burst)
    bursts = list(range(300)) + [rng.randrange(1 << width) for _ in range(200)]

    async def bench(ctx):
        for burst in bursts:
            ctx.set(dut.burst, burst)
            got = (ctx.get(dut.location.bank), ctx.get(dut.location.row),
                   ctx.get(dut.location.col))
            assert got == _expected_location(cfg, burst), f"burst {burst}"
        if cfg.bg_bits:
            # Consecutive bursts rotate through the bank groups.
            groups = []
            for burst in range(cfg.part.bank_groups):
                ctx.set(dut.burst, burst)
                groups.append(ctx.get(dut.location.bank) >> cfg.ba_bits)
            assert groups == list(range(cfg.part.bank_groups))

    _simulate(dut, bench, clock=False)


def test_shift_queue_against_a_deque():
    cfg = LpddrConfig()
    layout = address_layout(cfg)
    dut = ShiftQueue(layout, 4)
    rng = random.Random(2)
    ref = collections.deque()

    async def bench(ctx):
        for _ in range(400):
            count = ctx.get(dut.count)
            assert count == len(ref)
            for i in range(4):
                assert ctx.get(dut.valid[i]) == (i < count)
                if i < count:
                    e = dut.entries[i]
                    assert (ctx.get(e.bank), ctx.get(e.row), ctx.get(e.col)) == ref[i]
            push = rng.random() < 0.6
            pop = count > 0 and rng.random() < 0.5
            entry = (rng.randrange(8), rng.randrange(1 << cfg.row_bits), rng.randrange(64))
            ctx.set(dut.push.valid, push)
            ctx.set(dut.push.payload, {"bank": entry[0], "row": entry[1], "col": entry[2]})
            ctx.set(dut.pop, pop)
            ready = ctx.get(dut.push.ready)
            assert ready == (count < 4)
            await ctx.tick()
            if pop:
                ref.popleft()
            if push and ready:
                ref.append(entry)

    _simulate(dut, bench)


def test_shift_queue_rejects_a_bad_depth():
    with pytest.raises(ValueError, match="depth must be an integer from 2 to 32, not 1"):
        ShiftQueue(address_layout(LpddrConfig()), 1)


def _issue(ctx, dut, cfg, slot, cmd, bank=0, row=0):
    for p in range(cfg.ratio):
        ctx.set(dut.commands[p].cmd, Command.NOP)
    ctx.set(dut.commands[slot].cmd, cmd)
    ctx.set(dut.commands[slot].bank, bank)
    ctx.set(dut.commands[slot].row, row)


def test_bank_machines_act_then_trcd_and_tras():
    cfg = LpddrConfig(ratio=4)
    t = cfg.timings
    dut = BankMachines(cfg)
    # Counted between last CA clocks (ACT and RD 4 CK, PRE 2 CK), slots as issued.
    trcd = cfg.spacing(t.tRCD, Command.ACT, Command.RD)
    tras = cfg.spacing(t.tRAS, Command.ACT, Command.PRE)
    assert (trcd, tras) == (-(-t.tRCD // 4), -(-(t.tRAS + 2) // 4))

    async def bench(ctx):
        _issue(ctx, dut, cfg, 0, Command.ACT, bank=3, row=0x55)
        await ctx.tick()
        _issue(ctx, dut, cfg, 0, Command.NOP)
        state = dut.banks[3]
        assert ctx.get(state.open) and ctx.get(state.row) == 0x55
        assert not ctx.get(dut.banks[2].open)
        cas_ready = pre_ready = None
        for c in range(1, tras + 2):
            if cas_ready is None and ctx.get(state.cas_ok):
                cas_ready = c
            if pre_ready is None and ctx.get(state.pre_ok):
                pre_ready = c
            await ctx.tick()
        # Loaded in the ACT's cycle: allowed exactly the spacing later.
        assert cas_ready == trcd and pre_ready == tras

    _simulate(dut, bench)


def test_refresh_scheduler_owes_and_asks_per_bank():
    cfg = LpddrConfig(ratio=4)
    t = cfg.timings
    interval = t.tREFIpb // cfg.ratio
    dut = RefreshScheduler(cfg)

    async def bench(ctx):
        for b in range(cfg.part.banks):
            ctx.set(dut.banks[b].act_ok, 1)
            ctx.set(dut.banks[b].ref_ok, 1)
            ctx.set(dut.banks[b].pre_ok, 1)
        for name in ("rrd_ok", "faw_ok", "rrd_ref_ok", "faw_ref_ok", "refpb_ok", "refab_ok"):
            ctx.set(getattr(dut.timing, name), 1)
        asked = None
        for c in range(interval + 4):
            if asked is None and ctx.get(dut.cmd) == Command.REFPB:
                asked = c
                assert ctx.get(dut.bank) == 0 and ctx.get(dut.blocked) == 1
            await ctx.tick()
        # Owed at the end of the first interval, active the cycle after.
        assert asked == interval + 1
        # Issuing it pays the debt and moves on to bank 1.
        _issue(ctx, dut, cfg, 0, Command.REFPB, bank=0)
        await ctx.tick()
        _issue(ctx, dut, cfg, 0, Command.NOP)
        assert ctx.get(dut.cmd) == Command.NOP and ctx.get(dut.blocked) == 0
        assert ctx.get(dut.bank) == 1

    _simulate(dut, bench)


def test_refresh_per_bank_waits_while_the_bank_before_is_wanted():
    """A REFpb does not start on the bank a stream is about to enter.

    The address map puts a stream's next page in the next bank, so while
    bank ``b - 1`` is wanted bank ``b`` is due next: refreshing it then
    stalled a sequential stream for tRFCpb (mem-bench LPDDR4X-4266 seq lost
    ~80 cycles each time). It waits until neither is wanted and tpbR2pbR
    allows the REFpb (a bank held while its REFpb must still wait blocked a
    request in the SoC demo); urgent debt overrides the wait.
    """
    cfg = LpddrConfig(ratio=4)
    t = cfg.timings
    interval = t.tREFIpb // cfg.ratio
    nb = cfg.part.banks
    dut = RefreshScheduler(cfg)

    async def bench(ctx):
        for b in range(nb):
            ctx.set(dut.banks[b].ref_ok, 1)
            ctx.set(dut.banks[b].pre_ok, 1)
        for name in ("rrd_ok", "faw_ok", "rrd_ref_ok", "faw_ref_ok", "refpb_ok", "refab_ok"):
            ctx.set(getattr(dut.timing, name), 1)
        # Bank 0 is due first; the stream is in bank 7 (the bank before 0).
        ctx.set(dut.wanted, 1 << (nb - 1))
        for _ in range(interval + 8):
            assert ctx.get(dut.cmd) == Command.NOP and ctx.get(dut.blocked) == 0
            await ctx.tick()
        # Into bank 0 itself: still not.
        ctx.set(dut.wanted, 1)
        for _ in range(8):
            await ctx.tick()
            assert ctx.get(dut.cmd) == Command.NOP and ctx.get(dut.blocked) == 0
        # On to bank 1, but tpbR2pbR still runs: bank 0 is not held yet.
        ctx.set(dut.wanted, 1 << 1)
        ctx.set(dut.timing.refpb_ok, 0)
        for _ in range(8):
            await ctx.tick()
            assert ctx.get(dut.cmd) == Command.NOP and ctx.get(dut.blocked) == 0
        # Once it allows a REFpb, bank 0 is refreshed at once.
        ctx.set(dut.timing.refpb_ok, 1)
        await ctx.tick()
        await ctx.tick()
        assert ctx.get(dut.cmd) == Command.REFPB and ctx.get(dut.bank) == 0
        assert ctx.get(dut.blocked) == 1
        _issue(ctx, dut, cfg, 0, Command.REFPB, bank=0)
        await ctx.tick()
        _issue(ctx, dut, cfg, 0, Command.NOP)
        # Bank 1 next, with bank 0 wanted (the bank before it) and bank 1 not:
        # only urgent debt starts it.
        ctx.set(dut.wanted, 1)
        asked = None
        for c in range(interval * 48 + 8):
            if ctx.get(dut.cmd) == Command.REFPB:
                asked = c
                break
            await ctx.tick()
        assert asked is not None and ctx.get(dut.bank) == 1
        assert asked >= interval * 47  # owed reached the urgent level first

    _simulate(dut, bench)


def test_perf_signature_names_the_counters():
    members = LpddrPerfSignature().members
    assert list(members) == ["data_beats", "busy_cycles", "loss_refresh", "loss_row_miss",
                             "loss_turnaround", "loss_other", "refreshes"]
    ctrl = LpddrController(LpddrConfig())
    assert ctrl.signature.members["perf"].signature == LpddrPerfSignature()
    assert all(len(Value.cast(getattr(ctrl.perf, k))) == 32 for k in members)


def test_command_is_a_shaped_enum():
    ctrl = LpddrController(LpddrConfig())
    assert Command.as_shape() == unsigned(3)
    # The DFI command field is typed by the enum, not a bare 3-bit value.
    assert command_layout(ctrl.config)["cmd"].shape is Command
    assert Value.cast(ctrl.dfi.phases[0].cmd).shape() == unsigned(3)


def test_scheduler_batches_writes_when_both_queues_are_full():
    """A streaming reader and a full write queue: writes go in batches, not one per turn.

    Every bank is open on the requested row and every timer allows, so only
    the direction logic decides. Each run of WRITEs between READs must be at
    least ``MIN_BATCH`` long, and the writes left in a queue that is not full
    go out once they starve (1023 cycles), in one run. Before the minimum
    batch each queue's fullness turned the direction straight back: a few
    writes per turnaround, and a starved write queue switched in and out
    again without writing (found in the SoC's result writes).
    """
    cfg = LpddrConfig()
    dut = CommandScheduler(cfg)
    row = (1 << cfg.row_bits) - 1
    nwrites = 24                       # the write queue fills, then 8 are left

    async def bench(ctx):
        for view in (dut.banks, dut.timing):     # every bank open on `row`, every timer ok
            ctx.set(view.as_value(), (1 << len(view.as_value())) - 1)
        for name in ("rd_room", "wr_data_ready", "b_room"):
            ctx.set(getattr(dut, name), 1)
        ctx.set(dut.reads.valid, 1)
        ctx.set(dut.reads.payload, {"bank": 0, "row": row, "col": 0})
        ctx.set(dut.writes.payload, {"addr": {"bank": 1, "row": row, "col": 0}})
        ops, pushed = [], 0
        for i in range(1400):
            # One column command every other cycle (tCCD at 1:4): the read
            # queue fills, as behind a streaming reader.
            ctx.set(dut.timing.rd_ok, i % 2 == 0)
            ctx.set(dut.timing.wr_ok, i % 2 == 0)
            ctx.set(dut.writes.valid, pushed < nwrites)
            wr_taken = ctx.get(dut.writes.valid) and ctx.get(dut.writes.ready)
            ops.append("W" if ctx.get(dut.column.write) else
                       "R" if ctx.get(dut.column.read) else ".")
            await ctx.tick()
            pushed += wr_taken
        trace = "".join(ops)
        assert trace.count("W") == nwrites, trace
        runs = [len(r) for r in trace.replace(".", "").split("R") if r]
        assert all(n >= MIN_BATCH for n in runs), (runs, trace)

    _simulate(dut, bench)
