"""LpddrController: AXI4 subordinate → request window → scheduler → DFI-style boundary.

The controller is five blocks around one command bus::

    axi ───► AxiFrontEnd ───────────── wrdata ───────────────────────────► dfi
    (AXI4)    BurstSplitter ×2     ◄── rddata ──────────────────────────── dfi
              AddressMap ×2
              rinfo/winfo/rdq/wdq/bq
                │ reads,   ▲ column issued,
                ▼ writes   │ rd/wr/B room
             CommandScheduler ─────────── phases (command slots) ──┬────► dfi
              ShiftQueue ×2  ──── wanted banks, idle ───┐           │
                ▲ bank state,  ▲ refresh cmd,           │           │
                │ timers       │ blocked banks          ▼           │
             BankMachines ─────┴──────────────► RefreshScheduler ◄──┤
                ▲                                                   │
                └───────────────────────────────────────────────────┤
                                               PerfCounters ◄───────┘ ──► perf

- :class:`~lpaccel.rtl.dram.frontend.AxiFrontEnd` cuts AXI bursts into
  DRAM-burst requests (through :class:`~lpaccel.rtl.dram.address.AddressMap`,
  whose map puts consecutive bursts in different banks or bank groups),
  packs write data and trims read data back to the AXI burst.
- :class:`~lpaccel.rtl.dram.scheduler.CommandScheduler` holds the look-ahead
  window and each cycle picks a column command (head of the window) and a row
  command (ACT/PRE for the first request that needs one, a refresh command,
  or an idle-bank precharge).
- :class:`~lpaccel.rtl.dram.banks.BankMachines` watches the issued commands
  and keeps open rows and every command-to-command timer.
- :class:`~lpaccel.rtl.dram.refresh.RefreshScheduler` owes refreshes,
  blocks the bank(s) to be refreshed and proposes PRE/REF commands.
- :class:`~lpaccel.rtl.dram.perf.PerfCounters` counts beats, busy cycles,
  refreshes and lost cycles by cause.

Each module's docstring states its policy: the address map in
``address.py``, open-page scheduling and read/write batching in
``scheduler.py``, timings in ``banks.py``, per-bank and all-bank refresh in
``refresh.py``, the AXI data path in ``frontend.py``.

Data path width: one AXI beat is one controller cycle of peak DRAM
bandwidth, ``data_width = 8 * ratio * peak_bytes_per_ck`` (LPDDR4 x16 at
1:4: 128 bits). Commands go out in fixed slots and never overlap on the CA
bus (LPDDR4: ACT, RD, WR 4 CK, PRE, PREA, REF 2 CK): row commands (ACT,
PRE, PREA, REF) in phase 0, column commands in ``config.col_phase`` where a
cycle holds both end to end (LPDDR4 at 1:8, LPDDR5 at 1:2), otherwise one
command per cycle in phase 0, column commands first, with a CA-busy wait at
1:1 and 1:2 (``scheduler.py``). Every spacing is converted to controller
cycles at build time with :meth:`~lpaccel.rtl.dram.config.LpddrConfig.spacing`
(the two commands' phases and CA lengths, through
:func:`~lpaccel.rtl.dram.parts.controller_cycles`).

Latency: an AR accepted in cycle ``c`` can issue its first READ (row open)
in ``c + 2``; its data is on R ``rd_latency + 1`` cycles after the READ.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..bus.axi import AXI4Signature
from .banks import BankMachines
from .config import DfiSignature, LpddrConfig
from .frontend import AxiFrontEnd
from .perf import LpddrPerfSignature, PerfCounters
from .refresh import RefreshScheduler
from .scheduler import CommandScheduler

__all__ = ["LpddrController"]


class LpddrController(wiring.Component):
    """LPDDR4/4X/5 controller with an AXI4 subordinate port.

    See the module docstring for the blocks and where each policy lives.

    Parameters
    ----------
    config : LpddrConfig
    id_width : int
        AXI ID width.

    Attributes
    ----------
    axi : In(AXI4Signature(addr_width=config.addr_width, data_width=config.data_width))
        INCR bursts of 1 to 256 full-width beats; any beat-aligned address.
        Read data returns in request order; B is sent once the last burst's
        WRITE command has been issued, so a later read sees the data.
    dfi : Out(DfiSignature(config))
        Toward the PHY or :class:`~lpaccel.sim.models.lpddr.LpddrModel`.
    perf : Out(LpddrPerfSignature())
        Free-running counters: data beats, busy cycles, lost cycles by
        cause, refreshes.
    """

    PerfSignature = LpddrPerfSignature

    def __init__(self, config, *, id_width=4):
        if not isinstance(config, LpddrConfig):
            raise TypeError(f"config must be an LpddrConfig, not {config!r}")
        self.config = config
        self.id_width = id_width
        super().__init__({
            "axi": In(AXI4Signature(addr_width=config.addr_width, data_width=config.data_width,
                                    id_width=id_width)),
            "dfi": Out(DfiSignature(config)),
            "perf": Out(LpddrPerfSignature()),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.front_end = front = AxiFrontEnd(cfg, id_width=self.id_width)
        m.submodules.scheduler = sched = CommandScheduler(cfg, id_width=self.id_width)
        m.submodules.banks = banks = BankMachines(cfg)
        m.submodules.refresh = refresh = RefreshScheduler(cfg)
        m.submodules.perf = perf = PerfCounters(cfg)

        wiring.connect(m, wiring.flipped(self.axi), front.axi)
        wiring.connect(m, front.reads, sched.reads)
        wiring.connect(m, front.writes, sched.writes)
        wiring.connect(m, perf.perf, wiring.flipped(self.perf))
        dfi = self.dfi
        m.d.comb += [
            # Front end <-> scheduler: what was issued, and room for more.
            front.column.eq(sched.column),
            sched.rd_room.eq(front.rd_room),
            sched.wr_data_ready.eq(front.wr_data_ready),
            sched.wr_masked.eq(front.wr_masked),
            sched.b_room.eq(front.b_room),
            # The command bus, and the blocks that watch it.
            dfi.phases.eq(sched.phases),
            banks.commands.eq(sched.phases),
            refresh.commands.eq(sched.phases),
            perf.commands.eq(sched.phases),
            # Bank state and refresh, into the scheduler.
            sched.banks.eq(banks.banks),
            sched.timing.eq(banks.timing),
            refresh.banks.eq(banks.banks),
            refresh.timing.eq(banks.timing),
            refresh.wanted.eq(sched.wanted),
            refresh.idle.eq(~sched.pending & ~front.splitting),
            sched.refresh_cmd.eq(refresh.cmd),
            sched.refresh_bank.eq(refresh.bank),
            sched.blocked.eq(refresh.blocked),
            # Data beats.
            dfi.wrdata.eq(front.wrdata),
            dfi.wrdata_strb.eq(front.wrdata_strb),
            dfi.wrdata_en.eq(front.wrdata_en),
            front.rddata.eq(dfi.rddata),
            front.rddata_valid.eq(dfi.rddata_valid),
            # Counters.
            perf.events.rd_beat.eq(dfi.rddata_valid),
            perf.events.wr_beat.eq(front.wrdata_en),
            perf.events.busy.eq(sched.pending | front.busy),
            perf.events.stall.eq(sched.stall),
        ]
        return m
