"""Performance counters: where the controller's cycles went.

:class:`PerfCounters` counts data beats, busy cycles and refreshes, and
classifies every *lost* cycle: busy (work pending), no column command issued
and the data bus not still carrying the previous burst. The cause is taken
from the head of the scheduler's window (:data:`~lpaccel.rtl.dram.scheduler.stall_layout`),
first match wins:

1. ``loss_refresh``: the head's bank is being refreshed, or its row is not
   open and a REFab's tRFCab holds every ACT;
2. ``loss_row_miss``: the head waits for its row (PRE, ACT, tRCD);
3. ``loss_turnaround``: tCCD/read-write turnaround holds the column
   commands, or the current direction is empty while the other waits;
4. ``loss_other``: anything else (an empty window, no read-data room, no
   packed write data).

The counters are the members of :class:`LpddrPerfSignature` (the
controller's ``perf`` port); they update one cycle after the event.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import Command, LpddrConfig, command_layout
from .scheduler import stall_layout

__all__ = ["LpddrPerfSignature", "perf_event_layout", "PerfCounters"]


class LpddrPerfSignature(wiring.Signature):
    """The controller's performance counters, from the controller's side.

    Every member is a free-running 32-bit counter (it wraps), cleared only by
    reset; a measurement reads it before and after and takes the difference.

    Members
    -------
    data_beats : out 32
        DFI data beats moved (read beats returned plus write beats sent).
    busy_cycles : out 32
        Cycles with work pending anywhere in the controller.
    loss_refresh, loss_row_miss, loss_turnaround, loss_other : out 32
        Busy cycles in which the DRAM data bus carried nothing, by cause:
        the oldest request waits for a refresh (its bank is being refreshed,
        or an ACT waits for tRFC); for a row (PRE/ACT/tRCD); for a
        read/write turnaround or a direction switch; anything else
        (an empty window, no read-data room, no write data yet).
    refreshes : out 32
        REFpb and REFab commands issued.
    """

    #: Counter width in bits.
    WIDTH = 32

    def __init__(self):
        super().__init__({name: Out(self.WIDTH) for name in (
            "data_beats", "busy_cycles", "loss_refresh", "loss_row_miss", "loss_turnaround",
            "loss_other", "refreshes")})

    def __eq__(self, other):
        return type(other) is type(self)

    def __hash__(self):
        return hash(type(self))

    def __repr__(self):
        return "LpddrPerfSignature()"


#: What happened this cycle, from the front end, the DFI boundary and the scheduler.
perf_event_layout = data.StructLayout({
    "rd_beat": 1,    # a read beat came back (DFI rddata_valid)
    "wr_beat": 1,    # a write beat went out (DFI wrdata_en)
    "busy": 1,       # work pending anywhere in the controller
    "stall": stall_layout,
})


class PerfCounters(wiring.Component):
    """The controller's counters (see the module docstring).

    Parameters
    ----------
    config : LpddrConfig

    Attributes
    ----------
    commands : In(ArrayLayout(command_layout(config), config.ratio))
        The command slots as issued.
    events : In(perf_event_layout)
    perf : Out(LpddrPerfSignature())
    """

    def __init__(self, config):
        if not isinstance(config, LpddrConfig):
            raise TypeError(f"config must be an LpddrConfig, not {config!r}")
        self.config = config
        super().__init__({
            "commands": In(data.ArrayLayout(command_layout(config), config.ratio)),
            "events": In(perf_event_layout),
            "perf": Out(LpddrPerfSignature()),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        beats = cfg.beats_per_burst
        row, col = self.commands[0], self.commands[cfg.col_phase]
        cas = (col.cmd == Command.RD) | (col.cmd == Command.WR)
        ev, stall = self.events, self.events.stall

        # The data bus is busy for a burst's beats after each column command.
        bus_left = Signal(range(beats))
        with m.If(cas):
            m.d.sync += bus_left.eq(beats - 1)
        with m.Elif(bus_left != 0):
            m.d.sync += bus_left.eq(bus_left - 1)
        lost = ev.busy & ~cas & (bus_left == 0)

        refresh = stall.valid & stall.refresh
        row_miss = stall.valid & ~stall.refresh & stall.row_miss
        turnaround = ~(stall.valid & (stall.refresh | stall.row_miss)) & stall.turnaround
        increment = {
            "data_beats": ev.rd_beat + ev.wr_beat,
            "busy_cycles": ev.busy,
            "loss_refresh": lost & refresh,
            "loss_row_miss": lost & row_miss,
            "loss_turnaround": lost & turnaround,
            "loss_other": lost & ~(refresh | row_miss | turnaround),
            "refreshes": (row.cmd == Command.REFPB) | (row.cmd == Command.REFAB),
        }
        for name in self.perf.signature.members:
            counter = getattr(self.perf, name)
            m.d.sync += counter.eq(counter + increment[name])
        return m
