"""DRAM bring-up over the LiteDRAM core's Wishbone control port.

The core is generated without a CPU (``cpu: None``), so its DFI interface
starts under hardware control with the DRAM not initialized, and its
``init_done``/``init_error`` outputs are plain CSRs. The wrapper does what
LiteX's BIOS ``sdram_init()`` would:

- :class:`LiteDramInitSequencer` replays a list of Wishbone writes with
  delays: the init program of
  :attr:`~lpaccel.boards.litedram.GeneratedLiteDram.init_program` (take the
  DFII into software control; CKE, precharge-all, mode registers, refreshes;
  hand the DFII back to the controller; set ``init_done``). The core blocks
  its AXI port until then. A write not acknowledged within ``timeout``
  cycles raises ``error``. SDR SDRAM needs nothing more.
- :class:`LiteDramInitController` runs the sequencer and, for a PHY that
  needs read leveling (DDR3 on ECP5), the
  :class:`~lpaccel.boards.litedram.LiteDramReadLeveler` between the init
  program and its last two writes (the hand-back and ``init_done``).

::

    program[:-2] --> LiteDramInitSequencer --done--> LiteDramReadLeveler --> program[-2:]
                          \\__ Wishbone (owned by the sequencer, then the leveler) __/
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .leveling import LiteDramReadLeveler

__all__ = ["LiteDramInitController", "LiteDramInitSequencer"]


class LiteDramInitSequencer(wiring.Component):
    """Replay a list of Wishbone writes with delays (the DRAM init program).

    Parameters
    ----------
    program : list of (int, int, int)
        ``(byte address, value, cycles to wait after the write)``.
    timeout : int
        Cycles to wait for a Wishbone acknowledge before giving up.

    Ports
    -----
    wb_adr : Out(30)
        Word address. ``wb_dat_w``, ``wb_cyc``, ``wb_stb``, ``wb_we``,
        ``wb_sel`` likewise; ``wb_ack`` in.
    done : Out(1)
        Every write was acknowledged and the last delay has passed.
    error : Out(1)
        A write timed out; the sequencer stops.
    """

    wb_adr: Out(30)
    wb_dat_w: Out(32)
    wb_sel: Out(4)
    wb_cyc: Out(1)
    wb_stb: Out(1)
    wb_we: Out(1)
    wb_ack: In(1)
    done: Out(1)
    error: Out(1)

    def __init__(self, program, *, timeout=1024):
        if not program:
            raise ValueError("program must hold at least one write")
        self.program = [(int(a), int(v), int(d)) for a, v, d in program]
        self.timeout = timeout
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        n = len(self.program)
        max_delay = max(max(d for _, _, d in self.program), self.timeout)
        dw = ceil_log2(max_delay + 1)
        rom = Memory(shape=30 + 32 + dw, depth=n,
                     init=[(a >> 2) | (v << 30) | (d << 62) for a, v, d in self.program])
        m.submodules.rom = rom
        rd = rom.read_port(domain="comb")
        index = Signal(range(n + 1))
        count = Signal(dw)
        m.d.comb += rd.addr.eq(index)
        entry = rd.data
        m.d.comb += [
            self.wb_adr.eq(entry[:30]),
            self.wb_dat_w.eq(entry[30:62]),
            self.wb_sel.eq(0xF),
            self.wb_we.eq(1),
        ]
        with m.FSM():
            with m.State("WRITE"):
                m.d.comb += [self.wb_cyc.eq(1), self.wb_stb.eq(1)]
                m.d.sync += count.eq(count + 1)
                with m.If(self.wb_ack):
                    m.d.sync += count.eq(entry[62:])
                    m.next = "WAIT"
                with m.Elif(count == self.timeout):
                    m.next = "ERROR"
            with m.State("WAIT"):
                m.d.sync += count.eq(count - 1)
                with m.If(count == 0):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == n - 1):
                        m.next = "DONE"
                    with m.Else():
                        m.next = "WRITE"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
            with m.State("ERROR"):
                m.d.comb += self.error.eq(1)
        return m



class LiteDramInitController(wiring.Component):
    """DRAM bring-up over the core's Wishbone CSR port: init program, then leveling.

    Without leveling this is :class:`LiteDramInitSequencer` running the
    whole program. With leveling the sequencer runs the program up to its
    last two writes (the hand-back to hardware control and ``init_done``),
    then :class:`LiteDramReadLeveler` levels every module and makes those
    two writes itself; a leveling failure leaves the DFII in software
    control and ``init_done`` unwritten (the core keeps its AXI port
    closed).

    Parameters
    ----------
    program : list of (int, int, int)
        The init program (:attr:`GeneratedLiteDram.init_program`).
    leveling : LiteDramLevelingConfig, optional
    timeout : int
        Wishbone acknowledge timeout of the init sequencer.

    Ports
    -----
    wb_* : the Wishbone manager (``wb_dat_r``, ``wb_ack`` in).
    done, error : Out(1)
        Finished; a Wishbone access timed out.
    level_error : Out(1)
        Leveling found no working setting for some module (0 without leveling).
    bitslip, delay, failed_module
        The leveler's results (only with leveling).

    Raises
    ------
    ValueError
        With leveling, if the program does not end with the writes of
        ``sdram_dfii_control`` and ``ddrctrl_init_done``.
    """

    def __init__(self, program, *, leveling=None, timeout=1024):
        program = [(int(a), int(v), int(d)) for a, v, d in program]
        self.leveling = leveling
        self.timeout = timeout
        if leveling is not None:
            tail = [a for a, _, _ in program[-2:]]
            want = [leveling.csr["sdram_dfii_control"], leveling.csr["ddrctrl_init_done"]]
            if tail != want:
                raise ValueError(f"program must end with the writes of sdram_dfii_control "
                                 f"and ddrctrl_init_done (addresses {want}), not {tail}; "
                                 f"use GeneratedLiteDram.init_program")
            self.body, self.finish = program[:-2], program[-2:]
        else:
            self.body, self.finish = program, []
        members = {
            "wb_adr": Out(30), "wb_dat_w": Out(32), "wb_sel": Out(4), "wb_cyc": Out(1),
            "wb_stb": Out(1), "wb_we": Out(1), "wb_ack": In(1), "wb_dat_r": In(32),
            "done": Out(1), "error": Out(1), "level_error": Out(1),
        }
        if leveling is not None:
            members.update(LiteDramReadLeveler.result_members(leveling))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.sequencer = seq = LiteDramInitSequencer(self.body, timeout=self.timeout)
        managers = [seq]
        if self.leveling is not None:
            m.submodules.leveler = lev = LiteDramReadLeveler(self.leveling, finish=self.finish)
            managers.append(lev)
            m.d.comb += [lev.start.eq(seq.done), lev.wb_dat_r.eq(self.wb_dat_r),
                         self.done.eq(lev.done), self.error.eq(seq.error | lev.error),
                         self.level_error.eq(lev.level_error),
                         self.bitslip.eq(lev.bitslip), self.delay.eq(lev.delay),
                         self.failed_module.eq(lev.failed_module)]
        else:
            m.d.comb += [self.done.eq(seq.done), self.error.eq(seq.error)]
        names = ("wb_adr", "wb_dat_w", "wb_sel", "wb_cyc", "wb_stb", "wb_we")
        # The sequencer owns the bus until it is done, then the leveler.
        with m.If(~seq.done):
            m.d.comb += [getattr(self, n).eq(getattr(seq, n)) for n in names]
            m.d.comb += seq.wb_ack.eq(self.wb_ack)
        if self.leveling is not None:
            with m.Else():
                m.d.comb += [getattr(self, n).eq(getattr(lev, n)) for n in names]
                m.d.comb += lev.wb_ack.eq(self.wb_ack)
        return m

