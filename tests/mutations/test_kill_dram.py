# amaranth: UnusedElaboratable=no
"""LPDDR controller tests written for the mutation catalogue (``tests/mutations/``).

Fast: every timer of :class:`~lpaccel.rtl.dram.banks.BankMachines` is
loaded by the command the module docstring says, with that command's
spacing (one command, then count the cycles until the timer allows the next
one), and the refresh scheduler walks the banks in round-robin order.

Slow (about a minute in amaranth.sim): the whole controller against the
device model and its timing checker: random AXI writes (partial strobes),
then reads, then both at once (read/write turnarounds), over every bank and
several rows, checked against a reference memory; the checker must report
nothing; and, what the checker does not check, REFpb must visit the banks in
round-robin order. The Verilator regression (``tests/dram/test_lpddr_cocotb.py``)
does more, but rebuilds for every mutant.
"""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from lpaccel.rtl.dram.banks import BankMachines
from lpaccel.rtl.dram.config import Command, LpddrConfig
from lpaccel.rtl.dram.controller import LpddrController
from lpaccel.rtl.dram.refresh import RefreshScheduler
from lpaccel.sim.models.lpddr import LpddrModel, Rule

SIM_BYTES = 64 * 1024


# --- fast: the bank machines' timers, one command at a time ---------------------------

def _issue(ctx, dut, cfg, slot, cmd, bank=0, row=0):
    for p in range(cfg.ratio):
        ctx.set(dut.commands[p].cmd, Command.NOP)
    ctx.set(dut.commands[slot].cmd, cmd)
    ctx.set(dut.commands[slot].bank, bank)
    ctx.set(dut.commands[slot].row, row)


#: (name, setup commands, command, the signal, spacing name, the commands the signal
#: allows). The command goes out in its slot (``config.phase``); the signal is
#: ``bank:<field>`` of bank 2 or ``timing:<field>``. A spacing counts between last CA
#: clocks (``config.spacing``); a timer that allows two commands of different CA
#: lengths waits for the longer conversion.
SPACINGS = [
    ("PREA->ACT tRPab", [("ACT", 2), ("WAIT", "tRC")], "PREA", "bank:act_ok", "tRPab",
     ("ACT",)),
    ("PRE->ACT tRPpb", [("ACT", 2), ("WAIT", "tRC")], "PRE", "bank:act_ok", "tRPpb", ("ACT",)),
    ("PREA->REFpb tRPab", [("ACT", 2), ("WAIT", "tRC")], "PREA", "bank:ref_ok", "tRPab",
     ("REFPB",)),
    ("PRE->REFpb tRPpb", [("ACT", 2), ("WAIT", "tRC")], "PRE", "bank:ref_ok", "tRPpb",
     ("REFPB",)),
    ("ACT->ACT same bank tRC", [], "ACT", "bank:act_ok", "tRC", ("ACT",)),
    ("REFpb->ACT other bank tRRD", [], "REFPB", "timing:rrd_ok", "tRRD", ("ACT",)),
    ("ACT->ACT tRRD", [], "ACT", "timing:rrd_ok", "tRRD", ("ACT",)),
    ("ACT->REFpb tRRD", [], "ACT", "timing:rrd_ref_ok", "tRRD", ("REFPB",)),
    ("REFpb->REFpb tRRD", [], "REFPB", "timing:rrd_ref_ok", "tRRD", ("REFPB",)),
    ("REFpb->ACT same bank tRFCpb", [], "REFPB", "bank:act_ok", "tRFCpb", ("ACT",)),
    ("REFpb->REFpb same bank tRFCpb", [], "REFPB", "bank:ref_ok", "tRFCpb", ("REFPB",)),
    ("REFpb->REFab tRFCpb", [], "REFPB", "timing:refab_ok", "tRFCpb", ("REFAB",)),
    ("REFpb->REFpb tPBR2PBR", [], "REFPB", "timing:refpb_ok", "tPBR2PBR", ("REFPB",)),
    ("REFab->ACT tRFCab", [], "REFAB", "timing:act_ab_ok", "tRFCab", ("ACT",)),
    ("REFab->REFab tRFCab", [], "REFAB", "timing:refab_ok", "tRFCab", ("REFAB", "REFPB")),
    ("RD->RD tCCD", [("ACT", 2)], "RD", "timing:rd_ok", "tCCD", ("RD",)),
    ("WR->WR tCCD", [("ACT", 2)], "WR", "timing:wr_ok", "tCCD", ("WR",)),
    ("RD->WR turnaround", [("ACT", 2)], "RD", "timing:wr_ok", "rd_to_wr", ("WR",)),
    ("WR->RD turnaround", [("ACT", 2)], "WR", "timing:rd_ok", "wr_to_rd", ("RD",)),
    ("RD->PRE tRTP", [("ACT", 2), ("WAIT", "tRAS")], "RD", "bank:pre_ok", "tRTP", ("PRE",)),
    ("WR->PRE write recovery", [("ACT", 2), ("WAIT", "tRAS")], "WR", "bank:pre_ok",
     "wr_to_pre", ("PRE",)),
]


@pytest.mark.parametrize("ratio", [4])
@pytest.mark.parametrize("case", SPACINGS, ids=[c[0] for c in SPACINGS])
def test_bank_machine_spacing(case, ratio):
    """The command loads the timer with exactly its spacing (allowed that many cycles on)."""
    _, setup, cmd, signal, spacing, dsts = case
    cfg = LpddrConfig(ratio=ratio)
    t = cfg.timings
    want = max(cfg.spacing(getattr(t, spacing), Command[cmd], Command[d]) for d in dsts)
    dut = BankMachines(cfg)
    kind, field = signal.split(":")
    observed = getattr(dut.banks[2], field) if kind == "bank" else getattr(dut.timing, field)
    seen = {}

    async def bench(ctx):
        for step, arg in setup:
            if step == "WAIT":
                for _ in range(cfg.cycles(getattr(t, arg)) + 2):
                    await ctx.tick()
            else:
                _issue(ctx, dut, cfg, 0, Command[step], bank=arg, row=7)
                await ctx.tick()
                _issue(ctx, dut, cfg, 0, Command.NOP)
                for _ in range(cfg.cycles(max(t.tRCD, t.tRRD)) + 2):
                    await ctx.tick()
        _issue(ctx, dut, cfg, cfg.phase(Command[cmd]), Command[cmd], bank=2, row=7)
        await ctx.tick()
        _issue(ctx, dut, cfg, 0, Command.NOP)
        for c in range(1, want + 3):
            if ctx.get(observed):
                seen["at"] = c
                break
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-9)
    sim.add_testbench(bench)
    sim.run()
    assert want > 1, f"{spacing} is {want} cycle(s) at 1:{ratio}: the case proves nothing"
    assert seen.get("at") == want, (
        f"{case[0]} at 1:{ratio}: allowed {seen.get('at')} cycles after the command, "
        f"the spacing is {want}")


def test_faw_counts_refpb():
    """Four REFpb (to different banks) open the tFAW window like four ACTs.

    They go out in four consecutive cycles (the bank machines only time, they
    do not refuse): tFAW is 4 x tRRD on LPDDR4-3200, so only then can it bind.
    """
    cfg = LpddrConfig(ratio=4)
    t = cfg.timings
    dut = BankMachines(cfg)
    faw = cfg.spacing(t.tFAW, Command.REFPB, Command.ACT)
    seen = {}

    async def bench(ctx):
        for k in range(4):
            _issue(ctx, dut, cfg, 0, Command.REFPB, bank=k)
            await ctx.tick()
            _issue(ctx, dut, cfg, 0, Command.NOP)
        for c in range(4, faw + 3):
            if ctx.get(dut.timing.faw_ok):
                seen["at"] = c
                break
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-9)
    sim.add_testbench(bench)
    sim.run()
    assert faw > 4
    assert seen.get("at") == faw, (seen, faw)


def test_refresh_scheduler_round_robin():
    """REFpb after REFpb: the scheduler asks for bank 0, 1, 2, ... in turn (and wraps)."""
    cfg = LpddrConfig(ratio=4)
    dut = RefreshScheduler(cfg)
    banks = cfg.part.banks
    asked = []

    async def bench(ctx):
        for b in range(banks):
            ctx.set(dut.banks[b].act_ok, 1)
            ctx.set(dut.banks[b].ref_ok, 1)
            ctx.set(dut.banks[b].pre_ok, 1)
        for name in ("rrd_ok", "faw_ok", "rrd_ref_ok", "faw_ref_ok", "refpb_ok", "refab_ok"):
            ctx.set(getattr(dut.timing, name), 1)
        interval = cfg.timings.tREFIpb // cfg.ratio
        # Run up a debt of more than a full turn, then pay it as fast as asked.
        for _ in range(interval * (banks + 3)):
            await ctx.tick()
        for _ in range(8 * (banks + 2)):
            if ctx.get(dut.cmd) == Command.REFPB:
                bank = ctx.get(dut.bank)
                asked.append(bank)
                _issue(ctx, dut, cfg, 0, Command.REFPB, bank=bank)
            await ctx.tick()
            _issue(ctx, dut, cfg, 0, Command.NOP)

    sim = Simulator(dut)
    sim.add_clock(1e-9)
    sim.add_testbench(bench)
    sim.run()
    assert len(asked) >= banks + 2, asked
    assert asked == [k % banks for k in range(len(asked))], asked


# --- slow: the whole controller against the device model ------------------------------


def _top(config):
    m = Module()
    m.submodules.ctrl = ctrl = LpddrController(config)
    m.submodules.model = model = LpddrModel(config, storage="amaranth")
    wiring.connect(m, ctrl.dfi, model.dfi)
    return m, ctrl, model


def _bursts(rng, count, beat_bytes, lo, hi):
    """``count`` random (addr, beats) AXI bursts in [lo, hi), none crossing 4 KiB."""
    out = []
    for _ in range(count):
        beats = rng.randint(1, 4)
        addr = rng.randrange(lo, hi - beats * beat_bytes, beat_bytes)
        if addr // 4096 != (addr + beats * beat_bytes - 1) // 4096:
            addr -= (addr + beats * beat_bytes) % 4096
        out.append((addr, beats))
    return out


def _row_conflicts(config, beat_bytes):
    """One-beat bursts that put every row of a bank at the same column back to back.

    Writes then reads alternate rows of one bank, so a request reaches the
    head of the queue with another row of its bank open: a column command
    that ignored the open row would write or read the wrong row, and every
    address read back was written with its own value.
    """
    row_stride = config.part.page_bytes * config.part.banks
    rows = SIM_BYTES // row_stride
    out = []
    for bank, col in ((0, 0), (3, 5), (6, 31)):
        base = bank * config.part.page_bytes + col * beat_bytes
        out += [(base + r * row_stride, 1) for r in range(rows)]
    reads = [b for pair in zip(out[::2], out[1::2]) for b in reversed(pair)] + out
    return out, reads


def run_controller(config, *, seed=1, cycles=3600, conflicts=False):
    """Run the traffic; return a dict of what was seen (see the module docstring).

    ``conflicts``: the directed row-conflict traffic of :func:`_row_conflicts`
    instead of the random bursts.
    """
    m, ctrl, model = _top(config)
    axi = ctrl.axi
    bb = config.data_width // 8
    rng = random.Random(seed)
    half = SIM_BYTES // 2
    phase1 = _bursts(rng, 40, bb, 0, SIM_BYTES)
    reads2 = _bursts(rng, 40, bb, 0, SIM_BYTES)
    writes3 = _bursts(rng, 24, bb, 0, half)
    reads3 = _bursts(rng, 24, bb, half, SIM_BYTES)
    if conflicts:
        phase1, reads2 = _row_conflicts(config, bb)
        writes3, reads3 = [], []
    data = {}
    ref = {}
    seen = {"refpb": [], "refab": 0, "reads": [], "expected": [], "violation": None,
            "bresp": [], "done": False}

    def beat_value(addr):
        return rng.getrandbits(config.data_width)

    async def write_bursts(ctx, bursts, w_delay=0):
        # AW and W from one testbench: the address, then its data beats; with
        # ``w_delay``, every other burst's data comes that many cycles after its
        # address (a WRITE must wait for its data).
        for k, (addr, beats) in enumerate(bursts):
            ctx.set(axi.aw.addr, addr)
            ctx.set(axi.aw.len, beats - 1)
            ctx.set(axi.aw.size, (bb - 1).bit_length())
            ctx.set(axi.aw.burst, 1)
            ctx.set(axi.aw.valid, 1)
            while not (await ctx.tick().sample(axi.aw.ready))[2]:
                pass
            ctx.set(axi.aw.valid, 0)
            for _ in range(w_delay if k % 2 else 0):
                await ctx.tick()
            for i in range(beats):
                value = beat_value(addr + i * bb)
                # One beat in four with a random strobe: only those bytes change.
                strb = rng.getrandbits(bb) if rng.random() < 0.25 else (1 << bb) - 1
                mask = sum(0xFF << (8 * k) for k in range(bb) if strb >> k & 1)
                ref[addr + i * bb] = ref.get(addr + i * bb, 0) & ~mask | value & mask
                ctx.set(axi.w.data, value)
                ctx.set(axi.w.strb, strb)
                ctx.set(axi.w.last, i == beats - 1)
                ctx.set(axi.w.valid, 1)
                while not (await ctx.tick().sample(axi.w.ready))[2]:
                    pass
                ctx.set(axi.w.valid, 0)

    async def collect_b(ctx):
        ctx.set(axi.b.ready, 1)
        async for _clk, _rst, valid, resp in ctx.tick().sample(axi.b.valid, axi.b.resp):
            if valid:
                seen["bresp"].append(int(resp))

    async def wait_b(ctx, count):
        while len(seen["bresp"]) < count:
            await ctx.tick()

    async def read_bursts(ctx, bursts):
        for addr, beats in bursts:
            seen["expected"].extend(ref.get(addr + i * bb, 0) for i in range(beats))
            ctx.set(axi.ar.addr, addr)
            ctx.set(axi.ar.len, beats - 1)
            ctx.set(axi.ar.size, (bb - 1).bit_length())
            ctx.set(axi.ar.burst, 1)
            ctx.set(axi.ar.valid, 1)
            while not (await ctx.tick().sample(axi.ar.ready))[2]:
                pass
            ctx.set(axi.ar.valid, 0)

    async def collect_r(ctx):
        ctx.set(axi.r.ready, 1)
        async for _clk, _rst, valid, rdata in ctx.tick().sample(axi.r.valid, axi.r.data):
            if valid:
                seen["reads"].append(int(rdata))

    async def commands(ctx):
        slots = [model.dfi.phases[p] for p in range(config.ratio)]
        async for _clk, _rst, *cmds in ctx.tick().sample(
                *[s.cmd for s in slots], *[s.bank for s in slots]):
            n = config.ratio
            for cmd, bank in zip(cmds[:n], cmds[n:]):
                if cmd == Command.REFPB:
                    seen["refpb"].append(int(bank))
                elif cmd == Command.REFAB:
                    seen["refab"] += 1

    async def main(ctx):
        await write_bursts(ctx, phase1)
        await wait_b(ctx, len(phase1))
        await read_bursts(ctx, reads2)
        # Reads of the upper half while the lower half is rewritten.
        for _ in range(200):
            await ctx.tick()
        data["reads3_expected"] = [ref.get(a + i * bb, 0) for a, n in reads3 for i in range(n)]
        await write_and_read(ctx)
        await wait_b(ctx, len(phase1) + len(writes3))
        while cycles_left(ctx):
            await ctx.tick()
        seen["violation"] = (ctx.get(model.violation), Rule(ctx.get(model.rule)),
                             ctx.get(model.bank), ctx.get(model.cycle))
        seen["done"] = True

    elapsed = {"n": 0}

    async def clock_count(ctx):
        async for _ in ctx.tick():
            elapsed["n"] += 1

    def cycles_left(ctx):
        return elapsed["n"] < cycles

    async def write_and_read(ctx):
        # AR traffic from a second testbench, W/AW from this one.
        await write_bursts(ctx, writes3, w_delay=40)

    async def reader3(ctx):
        while "reads3_expected" not in data:
            await ctx.tick()
        await read_bursts(ctx, reads3)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(main)
    sim.add_testbench(reader3, background=True)
    sim.add_testbench(collect_r, background=True)
    sim.add_testbench(collect_b, background=True)
    sim.add_testbench(commands, background=True)
    sim.add_testbench(clock_count, background=True)
    sim.run()
    return seen


@pytest.fixture(scope="module")
def per_bank_run():
    # One run for both tests below (about a minute; they are in the slow suite).
    config = LpddrConfig(ratio=4, sim_bytes=SIM_BYTES, window=8)
    return config, run_controller(config)


@pytest.mark.slow
def test_controller_data_and_timing(per_bank_run):
    config, seen = per_bank_run
    assert seen["done"]
    violation, rule, bank, cycle = seen["violation"]
    assert not violation, f"timing checker: {rule.name} at bank {bank}, DRAM clock {cycle}"
    assert seen["bresp"] and not any(seen["bresp"]), seen["bresp"]
    assert len(seen["reads"]) == len(seen["expected"]), (len(seen["reads"]), len(seen["expected"]))
    bad = [i for i, (a, b) in enumerate(zip(seen["reads"], seen["expected"])) if a != b]
    assert not bad, f"{len(bad)} read beats differ from what was written, first beat {bad[0]}"


@pytest.mark.slow      # 20 s; make mutate runs it
def test_controller_row_conflicts_go_to_their_own_row():
    """Requests to other rows of an open bank, back to back: each reaches its row.

    The random traffic above rarely reads back an address whose row was
    displaced (most of the memory is never written, and two unwritten rows
    read alike); here every row of three banks at one column holds its own
    value, written and read in row-alternating order.
    """
    config = LpddrConfig(ratio=4, sim_bytes=SIM_BYTES, window=8)
    seen = run_controller(config, cycles=900, conflicts=True)
    assert seen["done"]
    violation, rule, bank, cycle = seen["violation"]
    assert not violation, f"timing checker: {rule.name} at bank {bank}, DRAM clock {cycle}"
    assert len(seen["reads"]) == len(seen["expected"]) > 0
    bad = [i for i, (a, b) in enumerate(zip(seen["reads"], seen["expected"])) if a != b]
    assert not bad, f"{len(bad)} read beats differ from what was written, first beat {bad[0]}"


@pytest.mark.slow
def test_per_bank_refresh_visits_every_bank_in_turn(per_bank_run):
    config, seen = per_bank_run
    banks = config.part.banks
    refs = seen["refpb"]
    assert len(refs) >= 2 * banks, f"only {len(refs)} REFpb in the run"
    assert refs == [(refs[0] + i) % banks for i in range(len(refs))], refs
    assert seen["refab"] == 0


# --- fast: the command scheduler leaves a bank being refreshed alone ------------------

def test_scheduler_issues_nothing_to_a_blocked_bank():
    """refresh.py's contract: while a bank is blocked, no ACT and no RD/WR go to it."""
    from lpaccel.rtl.dram.scheduler import CommandScheduler

    cfg = LpddrConfig(ratio=4)
    dut = CommandScheduler(cfg)
    seen = {}

    async def bench(ctx):
        for name in ("rrd_ok", "faw_ok", "rrd_ref_ok", "faw_ref_ok", "rd_ok", "wr_ok",
                     "refpb_ok", "refab_ok", "act_ab_ok"):
            ctx.set(getattr(dut.timing, name), 1)
        ctx.set(dut.timing.rd_group_ok, -1)
        ctx.set(dut.timing.wr_group_ok, -1)
        ctx.set(dut.rd_room, 1)
        ctx.set(dut.b_room, 1)
        for b in range(cfg.part.banks):
            ctx.set(dut.banks[b].act_ok, 1)
            ctx.set(dut.banks[b].ref_ok, 1)
            ctx.set(dut.banks[b].pre_ok, 1)
            ctx.set(dut.banks[b].cas_ok, 1)
        # Bank 2 has row 5 open; bank 3 is closed. One read for each, both blocked.
        ctx.set(dut.blocked, 0b1100)
        ctx.set(dut.banks[2].open, 1)
        ctx.set(dut.banks[2].row, 5)
        for bank in (2, 3):
            ctx.set(dut.reads.payload, {"bank": bank, "row": 5, "col": 1})
            ctx.set(dut.reads.valid, 1)
            await ctx.tick()
        ctx.set(dut.reads.valid, 0)
        for blocked, rd_room in ((0b1100, 1), (0b0000, 1), (0b0000, 0)):
            ctx.set(dut.blocked, blocked)
            ctx.set(dut.rd_room, rd_room)
            seen[blocked, rd_room] = (ctx.get(dut.phases[cfg.col_phase].cmd),
                                      ctx.get(dut.phases[0].cmd), ctx.get(dut.phases[0].bank))

    sim = Simulator(dut)
    sim.add_clock(1e-9)
    sim.add_testbench(bench)
    sim.run()
    assert seen[0b1100, 1][:2] == (Command.NOP, Command.NOP)
    # Unblocked: the row hit reads (at 1:4 the one command slot is the column
    # command's), and once the read cannot go, the closed bank is opened.
    assert cfg.shared_slot
    assert seen[0b0000, 1][:2] == (Command.RD, Command.RD)
    assert seen[0b0000, 0] == (Command.ACT, Command.ACT, 3)


# --- fast: the command scheduler keeps the CA bus free ---------------------------------

@pytest.mark.parametrize("ratio", [1, 2])
def test_scheduler_keeps_the_ca_bus_free(ratio):
    """LPDDR4 at 1:1 and 1:2: after a 4-clock ACT/RD/WR or a 2-clock PRE/REF the next
    command waits until the CA bus is free, even with every timer allowing it.

    Reads to an open bank (RD wanted every cycle: ``rd_ok`` is held high) and one to a
    closed bank (ACT wanted every cycle: the bank states are constant).
    """
    from lpaccel.rtl.dram.scheduler import CommandScheduler

    cfg = LpddrConfig(ratio=ratio)
    assert cfg.shared_slot
    dut = CommandScheduler(cfg)
    issued = []

    async def bench(ctx):
        for view in (dut.timing, ):
            ctx.set(view.as_value(), (1 << len(view.as_value())) - 1)
        ctx.set(dut.b_room, 1)
        for b in range(cfg.part.banks):
            for name in ("act_ok", "ref_ok", "pre_ok", "cas_ok", "mwr_ok"):
                ctx.set(getattr(dut.banks[b], name), 1)
        ctx.set(dut.banks[2].open, 1)
        ctx.set(dut.banks[2].row, 5)
        for bank, col in [(2, 0), (3, 0), (2, 1), (2, 2), (2, 3), (2, 4), (2, 5)]:
            ctx.set(dut.reads.payload, {"bank": bank, "row": 5, "col": col})
            ctx.set(dut.reads.valid, 1)
            await ctx.tick()
        ctx.set(dut.reads.valid, 0)
        ctx.set(dut.rd_room, 1)
        for c in range(40):
            cmd = Command(ctx.get(dut.phases[0].cmd))
            if cmd != Command.NOP:
                issued.append((c, cmd))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-9)
    sim.add_testbench(bench)
    sim.run()
    kinds = {cmd for _, cmd in issued}
    assert Command.RD in kinds and Command.ACT in kinds, issued
    for (c0, cmd0), (c1, _) in zip(issued, issued[1:]):
        busy = -(-cfg.ca_clocks(cmd0) // ratio)
        assert c1 - c0 >= busy, f"1:{ratio}: {cmd0.name} in cycle {c0}, next command in {c1}"
