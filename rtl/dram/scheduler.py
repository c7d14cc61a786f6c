"""Command scheduler: the look-ahead window and the choice of the next DRAM command.

Reads and writes wait in two look-ahead queues (:class:`ShiftQueue`) of
``config.window`` DRAM bursts each; every entry is visible to the
scheduler. Each controller cycle it drives the DFI-style command slots::

            reads ──► ShiftQueue ─┐                  ┌─► phase 0: ACT / PRE / PREA / REF
                                  ├─► window (one ───┤
           writes ──► ShiftQueue ─┘   direction)     └─► col_phase: RD / WR (head only)
                                        ▲   ▲
           bank machines (open rows, timers)  refresh scheduler (cmd, blocked banks)

Column commands (RD/WR) are issued in request order within a direction, for
the head of the window only, so read data returns in order; the head goes
when its row is open, tRCD/tCCD/turnaround have passed, its bank is not
being refreshed, and (reads) the read-data FIFO has room for the burst or
(writes) the burst's data is packed and, for an AXI burst's last DRAM burst,
the B FIFO has room.

Row commands (PRE/ACT) are issued for the first queued request whose bank is
not needed by an earlier queued request (open-page policy: a row stays open
until a request for another row of that bank, or a refresh, closes it), so
row hits stream without gaps while the next bank opens.

Reads and writes are batched: the direction changes only when the current
queue is empty or stuck (no read-data room, no write data), when the other
queue is full and at least ``MIN_BATCH`` column commands went out since the
last change, after a starvation limit (1023 cycles of the other direction
waiting) or after 63 write bursts. The minimum batch matters when both
queues are full (a streaming reader and a queued writer): without it each
queue's fullness would turn the direction straight back, paying a
read-write turnaround per cycle and writing nothing.

Slots and the CA bus: a command occupies the CA bus for its CA length
(``part.ca``: LPDDR4 ACT, RD, WR 4 CK, PRE, PREA, REF 2 CK) from its slot
on, and no two commands overlap there. Where a cycle holds the longest row
command and a column command end to end (``not config.shared_slot``:
LPDDR4 at 1:8, LPDDR5 at 1:2) row commands go out in phase 0 and column
commands in ``config.col_phase = ratio - ca.cas``, both in one cycle.
Otherwise (LPDDR4 at 1:1, 1:2 and 1:4, LPDDR5 at 1:1) there is one command
per cycle, in phase 0, and the column command wins the slot; at 1:4 every
LPDDR4 command fits its cycle, at 1:1 and 1:2 a CA-busy counter keeps the
next ``ceil(ca / ratio) - 1`` cycles free. A streaming READ needs one slot
per tCCD (8 CK: every other cycle at 1:4), so row commands, refreshes and
idle precharges go out in the cycles between. (A column command in phase
``ratio - 1`` at 1:4 would spill 3 CK into the next cycle's row slot and,
streaming, block every row command.)
Within the row slot the refresh scheduler's command comes first, then the
window's row command, then an idle-bank precharge (``config.idle_precharge``:
a bank open and unused that long, with no queued request, is closed so the
next request to it needs only ACT + tRCD; at LPDDR5's 1:2 the window spans
too few clocks to hide tRP too).

Latency: a request pushed in cycle ``c`` can be issued in cycle ``c + 1``
at the earliest. Everything is decided combinationally from registers.
"""

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..utils import check_int, or_reduce
from .address import address_layout
from .banks import bank_state_layout, timing_layout
from .config import Command, LpddrConfig, command_layout

#: Column commands a direction issues before the other queue's fullness
#: may turn it (the cost of a turnaround is several bursts' time).
MIN_BATCH = 8

__all__ = ["write_request_layout", "column_layout", "stall_layout", "ShiftQueue",
           "CommandScheduler"]


def write_request_layout(config, id_width):
    """A write request: where, and whether it ends its AXI burst (``last``, ``id``)."""
    return data.StructLayout({
        "addr": address_layout(config),
        "last": 1,
        "id": unsigned(max(1, id_width)),
    })


def column_layout(id_width):
    """The column command issued this cycle, for the AXI front end.

    ``read``/``write``: a RD/WR went out; for a WR, ``last`` says it carried
    the last DRAM burst of its AXI burst and ``id`` is that burst's ID.
    """
    return data.StructLayout({"read": 1, "write": 1, "last": 1,
                              "id": unsigned(max(1, id_width))})


#: Why the head of the window did not issue (for the loss counters): it is
#: ``valid``; its bank waits for a ``refresh``; it waits for its row
#: (``row_miss``); or a read/write ``turnaround`` holds the column commands.
stall_layout = data.StructLayout({"valid": 1, "refresh": 1, "row_miss": 1, "turnaround": 1})


class ShiftQueue(wiring.Component):
    """A queue whose every entry is visible (the scheduler's look-ahead window).

    Entry 0 is the oldest. A pop shifts every entry down by one in the next
    cycle; a push in the same cycle lands behind the remaining ones.

    Parameters
    ----------
    layout : data.Layout
        Entry layout.
    depth : int
        Entries, 2 to 32.

    Attributes
    ----------
    push : In(stream.Signature(layout))
        New entries; ``ready`` while not full.
    pop : In(1)
        Drop entry 0 (only when ``count != 0``).
    entries : Out(ArrayLayout(layout, depth))
        Entry ``i`` is meaningful while ``valid[i]``.
    valid : Out(depth)
        ``valid[i] = count > i``.
    count : Out(range(depth + 1))
    """

    def __init__(self, layout, depth):
        check_int("depth", depth, 2, 32)
        self.layout = layout
        self.depth = depth
        super().__init__({
            "push": In(stream.Signature(layout)),
            "pop": In(1),
            "entries": Out(data.ArrayLayout(layout, depth)),
            "valid": Out(depth),
            "count": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        depth, count, entries = self.depth, self.count, self.entries
        push = self.push.valid & self.push.ready
        m.d.comb += self.push.ready.eq(count < depth)
        pos = count - self.pop
        for i in range(depth):
            if i + 1 < depth:
                with m.If(self.pop):
                    m.d.sync += entries[i].eq(entries[i + 1])
            with m.If(push & (pos == i)):
                m.d.sync += entries[i].eq(self.push.payload)
            m.d.comb += self.valid[i].eq(count > i)
        m.d.sync += count.eq(count + push - self.pop)
        return m


class CommandScheduler(wiring.Component):
    """Picks each cycle's row and column command (see the module docstring).

    Parameters
    ----------
    config : LpddrConfig
    id_width : int
        AXI ID width.

    Attributes
    ----------
    reads : In(stream.Signature(address_layout(config)))
    writes : In(stream.Signature(write_request_layout(config, id_width)))
        DRAM-burst requests from the AXI front end.
    rd_room : In(1)
        The read-data FIFO has room for one more burst.
    wr_data_ready : In(1)
        At least one write burst's data is packed.
    wr_masked : In(1)
        The next write burst to issue has a clear strobe bit: on the device it
        is a MASK-WRITE and waits for ``mwr_ok`` of its bank (tCCDMW).
    b_room : In(1)
        The B FIFO can take a response.
    banks : In(ArrayLayout(bank_state_layout(config), banks))
    timing : In(timing_layout(config))
        From the bank machines.
    refresh_cmd : In(Command)
    refresh_bank : In(bank_bits)
    blocked : In(banks)
        From the refresh scheduler.
    phases : Out(ArrayLayout(command_layout(config), ratio))
        The command slots (to the DFI boundary and every block that watches it).
    column : Out(column_layout(id_width))
        The column command issued, for the front end's data path.
    wanted : Out(banks)
        Bit ``b``: a queued request (either direction) needs bank ``b``.
    pending : Out(1)
        A request is queued.
    stall : Out(stall_layout)
        Why the head of the window is not issued (valid whatever happens).
    """

    def __init__(self, config, *, id_width=4):
        if not isinstance(config, LpddrConfig):
            raise TypeError(f"config must be an LpddrConfig, not {config!r}")
        self.config = config
        self.id_width = id_width
        nb = config.part.banks
        super().__init__({
            "reads": In(stream.Signature(address_layout(config))),
            "writes": In(stream.Signature(write_request_layout(config, id_width))),
            "rd_room": In(1),
            "wr_data_ready": In(1),
            "wr_masked": In(1),
            "b_room": In(1),
            "banks": In(data.ArrayLayout(bank_state_layout(config), nb)),
            "timing": In(timing_layout(config)),
            "refresh_cmd": In(Command),
            "refresh_bank": In(unsigned(max(1, config.bank_bits))),
            "blocked": In(nb),
            "phases": Out(data.ArrayLayout(command_layout(config), config.ratio)),
            "column": Out(column_layout(id_width)),
            "wanted": Out(nb),
            "pending": Out(1),
            "stall": Out(stall_layout),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        n = cfg.ratio
        depth = cfg.window
        banks, timing, blocked = self.banks, self.timing, self.blocked

        m.submodules.rq = rq = ShiftQueue(address_layout(cfg), depth)
        m.submodules.wq = wq = ShiftQueue(write_request_layout(cfg, self.id_width), depth)
        wiring.connect(m, wiring.flipped(self.reads), rq.push)
        wiring.connect(m, wiring.flipped(self.writes), wq.push)

        # The window as the scheduler sees it: the queue of the current direction.
        mode_wr = Signal()
        valid = [Mux(mode_wr, wq.valid[i], rq.valid[i]) for i in range(depth)]
        req = [address_layout(cfg)(Mux(mode_wr, wq.entries[i].addr, rq.entries[i]))
               for i in range(depth)]
        for b in range(cfg.part.banks):
            m.d.comb += self.wanted[b].eq(or_reduce(
                [(rq.valid[i] & (rq.entries[i].bank == b)) |
                 (wq.valid[i] & (wq.entries[i].addr.bank == b)) for i in range(depth)]))
        m.d.comb += self.pending.eq((rq.count != 0) | (wq.count != 0))

        # --- column command: the head of the window -------------------------
        head_valid, head = valid[0], req[0]
        head_bank = banks[head.bank]
        head_hit = head_bank.open & (head_bank.row == head.row)
        head_last = wq.entries[0].last
        dir_ok = Mux(mode_wr, timing.wr_ok & self.wr_data_ready & (~head_last | self.b_room) &
                     (~self.wr_masked | head_bank.mwr_ok),
                     timing.rd_ok & self.rd_room)
        if cfg.bg_bits:
            group = head.bank[cfg.ba_bits:]
            dir_ok = dir_ok & Mux(mode_wr, timing.wr_group_ok.bit_select(group, 1),
                                  timing.rd_group_ok.bit_select(group, 1))
        head_blocked = blocked.bit_select(head.bank, 1)
        cas_go = head_valid & head_hit & head_bank.cas_ok & dir_ok & ~head_blocked

        # --- row command: the first request that needs one and may have it ----
        row_cmd = Signal(Command)
        row_bank = Signal(max(1, cfg.bank_bits))
        row_row = Signal(cfg.row_bits)
        act_window_ok = timing.rrd_ok & timing.faw_ok & timing.act_ab_ok
        for i in range(depth):
            # Only the oldest request of each bank may move that bank's row.
            first = valid[i]
            for j in range(i):
                first = first & ~(valid[j] & (req[j].bank == req[i].bank))
            state = banks[req[i].bank]
            hit = state.open & (state.row == req[i].row)
            need = first & ~hit & ~blocked.bit_select(req[i].bank, 1)
            ready = ((need & state.open & state.pre_ok) |
                     (need & ~state.open & state.act_ok & act_window_ok))
            with m.If(ready) if i == 0 else m.Elif(ready):
                m.d.comb += [row_cmd.eq(Mux(state.open, Command.PRE, Command.ACT)),
                             row_bank.eq(req[i].bank), row_row.eq(req[i].row)]

        # An open bank nobody wants for idle_precharge cycles (lowest first).
        idle_go = Signal()
        idle_bank = Signal(max(1, cfg.bank_bits))
        if cfg.idle_precharge:
            for b in reversed(range(cfg.part.banks)):
                with m.If(banks[b].open & banks[b].idle & ~self.wanted[b] & ~blocked[b] &
                          banks[b].pre_ok):
                    m.d.comb += [idle_go.eq(1), idle_bank.eq(b)]

        # --- the slots ---------------------------------------------------------
        shared = cfg.shared_slot
        rslot, cslot = self.phases[0], self.phases[cfg.col_phase]
        # CA bus busy with the last command for ca_wait more cycles (shared slot only).
        busy = {c: -(-cfg.ca_clocks(c) // n) - 1 for c in Command if c != Command.NOP}
        ca_free = Const(1, 1)
        if shared and max(busy.values()) > 0:
            ca_wait = Signal(range(max(busy.values()) + 1))
            ca_free = ca_wait == 0
            load = Const(0, ca_wait.shape())
            for c, cycles in busy.items():
                load = Mux(rslot.cmd == c, cycles, load)
            m.d.sync += ca_wait.eq(Mux(ca_free, load, ca_wait - 1))
        cas_go = cas_go & ca_free
        slot_free = (~cas_go & ca_free) if shared else Const(1, 1)
        issue_ref = (self.refresh_cmd != Command.NOP) & slot_free
        issue_row = (row_cmd != Command.NOP) & slot_free & ~issue_ref
        issue_idle = idle_go & slot_free & ~issue_ref & ~issue_row
        m.d.comb += [
            rslot.cmd.eq(Mux(issue_ref, self.refresh_cmd,
                             Mux(issue_row, row_cmd,
                                 Mux(issue_idle, Command.PRE, Command.NOP)))),
            rslot.bank.eq(Mux(issue_ref, self.refresh_bank, Mux(issue_row, row_bank, idle_bank))),
            rslot.row.eq(row_row),
        ]
        with m.If(cas_go):
            m.d.comb += [cslot.cmd.eq(Mux(mode_wr, Command.WR, Command.RD)),
                         cslot.bank.eq(head.bank), cslot.col.eq(head.col)]
            if shared:
                m.d.comb += cslot.row.eq(0)

        is_rd, is_wr = cas_go & ~mode_wr, cas_go & mode_wr
        m.d.comb += [
            rq.pop.eq(is_rd), wq.pop.eq(is_wr),
            self.column.read.eq(is_rd), self.column.write.eq(is_wr),
            self.column.last.eq(head_last), self.column.id.eq(wq.entries[0].id),
        ]

        # --- direction: batch reads and writes ----------------------------------
        starve = Signal(10)
        batch = Signal(6)
        other_waiting = Mux(mode_wr, rq.count != 0, (wq.count != 0) & self.wr_data_ready)
        this_count = Mux(mode_wr, wq.count, rq.count)
        stuck = Mux(mode_wr, ~self.wr_data_ready, ~self.rd_room)
        other_full = Mux(mode_wr, ~rq.push.ready, ~wq.push.ready)
        switch = other_waiting & ((this_count == 0) | stuck |
                                  (other_full & (batch >= MIN_BATCH)) | starve.all() |
                                  (mode_wr & batch.all()))
        with m.If(switch):
            m.d.sync += [mode_wr.eq(~mode_wr), starve.eq(0), batch.eq(0)]
        with m.Else():
            with m.If(other_waiting):
                m.d.sync += starve.eq(starve + 1)
            with m.If(cas_go & ~batch.all()):
                m.d.sync += batch.eq(batch + 1)

        m.d.comb += [
            self.stall.valid.eq(head_valid),
            self.stall.refresh.eq(head_blocked | (~head_hit & ~timing.act_ab_ok)),
            self.stall.row_miss.eq(~head_hit | ~head_bank.cas_ok),
            self.stall.turnaround.eq(Mux(mode_wr, ~timing.wr_ok, ~timing.rd_ok) |
                                     (~head_valid & other_waiting)),
        ]
        return m
