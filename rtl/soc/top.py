"""The accelerator SoC: CSR bank, job queue, sequencer, DMA, GEMV engine and memory.

:class:`Soc` joins the blocks around one AXI4 arbiter::

    csr (AXI4-Lite) ──► CsrBank ── JOB_PUSH ──► job FIFO ──► JobSequencer ──► completion FIFO
                           ▲  ▲                              │  ▲    │             │
                           │  └── JOB_STATUS / JOB_POP ──────┼──┼────┼─────────────┘
                           │                                 ▼  │    ▼
                        events, status, PERF_*          DmaEngine   GemvEngine
                                                          │ (AXI4 manager 0)
    host (AXI4 window) ───────────────────────────────────┼─ (AXI4 manager 1)
                                                          ▼
                                                     AXI4Arbiter ──► memory backend

The memory backend follows ``config.memory``: on-chip RAM
(:class:`~lpaccel.rtl.mem.onchip.AxiSram`) inside; an LPDDR part: the
:class:`~lpaccel.rtl.dram.controller.LpddrController` inside, its DFI-style
boundary out as ``dfi`` (to the device model in simulation, to a PHY on a
board); any other part (SDR, DDR3 through LiteDRAM): the arbiter's
subordinate port out as ``memory``.

The job sequencer and the DMA and GEMV engines are reset together by the
sequencer's ``local_reset`` (after an abort has drained, or on a soft
reset); the completion FIFO by its ``drop_completions``. The CSR bank, the
job FIFO, the arbiter and the memory backend (the DRAM controller keeps
refreshing) are never reset by software. The register sequence a driver
follows is in ``docs/soc.md``; the register map in ``rtl/regmap/lpaccel.rdl``.
"""

from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..bus.axi import AXI4LiteSignature
from ..bus.interconnect import AXI4Arbiter, AXI4ArbiterConfig
from ..csr.bank import CsrBank
from ..dma.engine import DmaEngine
from ..dram.config import DfiSignature
from ..dram.controller import LpddrController
from ..gemv.engine import GemvEngine
from ..mem.onchip import AxiMemoryConfig, AxiSram
from ..regmap import RegmapConfig, register_map
from ..soc_config import ONCHIP, SocConfig
from ..utils import StructFIFO
from .sequencer import JobSequencer, completion_layout, job_layout

__all__ = ["Soc", "HOST_ID_WIDTH", "connect_axi"]

#: AXI ID width of the host memory window (and of every arbiter manager port).
HOST_ID_WIDTH = 4

#: PERF_* counter fed by each of the LPDDR controller's free-running loss counters.
_DRAM_COUNTERS = {
    "PERF_DRAM_REFRESH": "loss_refresh",
    "PERF_DRAM_ROW_MISS": "loss_row_miss",
    "PERF_DRAM_TURNAROUND": "loss_turnaround",
    "PERF_DRAM_OTHER": "loss_other",
}


def connect_axi(m, manager, subordinate, signature):
    """Connect two AXI4 ports whose ID and address widths may differ.

    ``wiring.connect`` wants identical signatures; here every field is
    assigned on its own, so narrower fields are zero-extended and wider ones
    truncated (an ID of 1 bit into a 4-bit port, a 32-bit address into a
    controller that decodes 30).

    Parameters
    ----------
    m : Module
    manager : interface
        The manager side (flows as in ``signature``), e.g. ``dma.bus``.
    subordinate : interface
        The subordinate side (flows flipped), e.g. ``arbiter.managers[0]``.
    signature : AXI4Signature
        The manager's signature; it names the fields to connect.
    """
    for ch_name, ch_member in signature.members.items():
        mgr_ch = getattr(manager, ch_name)
        sub_ch = getattr(subordinate, ch_name)
        for f_name, f_member in ch_member.signature.members.items():
            mgr_f, sub_f = getattr(mgr_ch, f_name), getattr(sub_ch, f_name)
            if f_member.flow == Out:
                m.d.comb += sub_f.eq(mgr_f)
            else:
                m.d.comb += mgr_f.eq(sub_f)


class Soc(wiring.Component):
    """The lpaccel accelerator SoC, built from one :class:`SocConfig`.

    Parameters
    ----------
    config : SocConfig
        Checked with :meth:`SocConfig.check_soc` (the engine's weight word
        must be the memory word).
    build_hash : int
        ``BUILD_HASH`` value (32 bits).

    Attributes
    ----------
    csr : In(AXI4LiteSignature(addr_width=bank.addr_width, data_width=32))
        The CSR port (register map ``rtl/regmap/lpaccel.rdl``).
    host : In(AXI4Signature(addr_width=dma.addr_width, data_width=memory width, id_width=4))
        The host's window onto the memory (a second arbiter manager next to
        the DMA), for loading tensors and reading results.
    irq : Out(1)
        ``|(IRQ_STATUS & IRQ_ENABLE)``.
    dfi : Out(DfiSignature(config.lpddr))
        LPDDR memories only: the controller's DFI-style boundary.
    memory : Out(AXI4Signature(addr_width=dma.addr_width, data_width=memory width,
                               id_width=5))
        Board memories (SDR, DDR3) only: the arbiter's port toward a LiteDRAM core.

    The blocks are built in the constructor so that a simulation top can tap
    their ports: :attr:`bank`, :attr:`sequencer`, :attr:`dma`, :attr:`engine`,
    :attr:`arbiter`, :attr:`job_fifo`, :attr:`completion_fifo` and
    :attr:`backend` (the AxiSram or LpddrController, None for ``memory``).

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`SocConfig`.
    ValueError
        If the blocks do not fit together (see :meth:`SocConfig.check_soc`).
    """

    def __init__(self, config, build_hash=0):
        if not isinstance(config, SocConfig):
            raise TypeError(f"config must be a SocConfig, not {config!r}")
        config.check_soc()
        self.config = config
        self.regmap = register_map(RegmapConfig(soc=config, build_hash=build_hash))
        dma_cfg = config.dma
        width = config.memory_data_width
        self.arbiter_config = AXI4ArbiterConfig(
            managers=2, addr_width=dma_cfg.addr_width, data_width=width,
            id_width=HOST_ID_WIDTH,
            # The DMA keeps max_outstanding bursts in flight per direction;
            # room for as many again leaves the host window a share.
            max_outstanding=min(256, 1 << ceil_log2(2 * dma_cfg.max_outstanding)))
        memory_signature = self.arbiter_config.subordinate_signature

        self.bank = CsrBank(self.regmap)
        self.sequencer = JobSequencer(config)
        self.dma = DmaEngine(dma_cfg)
        self.engine = GemvEngine(config.gemv)
        self.arbiter = AXI4Arbiter(self.arbiter_config)
        self.job_fifo = StructFIFO(job_layout(), config.job_depth)
        self.completion_fifo = StructFIFO(completion_layout(), config.job_depth)

        members = {
            "csr": In(AXI4LiteSignature(addr_width=self.bank.addr_width, data_width=32)),
            "host": In(self.arbiter_config.manager_signature),
            "irq": Out(1),
        }
        if config.lpddr is not None:
            self.backend = LpddrController(config.lpddr,
                                           id_width=memory_signature.id_width)
            members["dfi"] = Out(DfiSignature(config.lpddr))
        elif config.memory == ONCHIP:
            self.backend = AxiSram(AxiMemoryConfig(
                size_bytes=config.memory_size, data_width=width,
                addr_width=dma_cfg.addr_width, id_width=memory_signature.id_width))
        else:
            self.backend = None
            members["memory"] = Out(memory_signature)
        super().__init__(members)

    @property
    def memory_signature(self):
        """:class:`AXI4Signature` of the memory port (the arbiter's subordinate side)."""
        return self.arbiter_config.subordinate_signature

    def field(self, register, field):
        """The CSR bank's hardware side of ``register.field``."""
        return self.bank.field_port(register, field)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        seq, dma, engine = self.sequencer, self.dma, self.engine
        jobs, completions = self.job_fifo, self.completion_fifo
        f = self.field

        m.submodules.bank = self.bank
        m.submodules.sequencer = seq
        # Abort and soft reset leave the engines in an arbitrary state; the
        # sequencer resets them once nothing is in flight on the bus.
        m.submodules.dma = ResetInserter(seq.local_reset)(dma)
        m.submodules.engine = ResetInserter(seq.local_reset)(engine)
        m.submodules.arbiter = arbiter = self.arbiter
        m.submodules.job_fifo = jobs
        m.submodules.completion_fifo = ResetInserter(seq.drop_completions)(completions)

        wiring.connect(m, wiring.flipped(self.csr), self.bank.bus)

        # ---- job queue: JOB_* registers -> job FIFO -> sequencer
        active = seq.status.active
        used = Signal(range(3 * 256))
        free = Signal(range(cfg.job_depth + 1))
        m.d.comb += [
            used.eq(jobs.level + active + completions.level),
            # Saturated: a job moving between two counts may be seen twice for a cycle.
            free.eq(Mux(used >= cfg.job_depth, 0, cfg.job_depth - used)),
        ]
        push = f("JOB_PUSH", "PUSH").pulse
        job = jobs.w_stream.payload
        m.d.comb += [
            job.fmt.eq(f("JOB_FORMAT", "CODE").value),
            job.group.eq(f("JOB_GROUP", "SIZE").value),
            job.planes.eq(f("JOB_FORMAT", "PLANES").value),
            job.offset.eq(f("JOB_FORMAT", "OFFSET").value),
            job.rows.eq(f("JOB_ROWS", "COUNT").value),
            job.cols.eq(f("JOB_COLS", "COUNT").value),
            job.weight_addr.eq(f("JOB_WEIGHT_ADDR", "ADDR").value),
            job.act_addr.eq(f("JOB_ACT_ADDR", "ADDR").value),
            job.result_addr.eq(f("JOB_RESULT_ADDR", "ADDR").value),
            job.tag.eq(f("JOB_TAG", "VALUE").value),
            job.irq.eq(f("JOB_FLAGS", "IRQ").value),
            # A push with no room is dropped and reported, never half-taken.
            jobs.w_stream.valid.eq(push & (free != 0)),
            f("ERROR", "OVERFLOW").set.eq(push & (free == 0)),
        ]
        wiring.connect(m, jobs.r_stream, seq.jobs)

        # ---- completions: sequencer -> completion FIFO -> JOB_STATUS / JOB_POP
        wiring.connect(m, seq.completions, completions.w_stream)
        head = completions.r_stream
        m.d.comb += [
            f("JOB_STATUS", "TAG").value.eq(head.payload.tag),
            f("JOB_STATUS", "ERROR").value.eq(head.payload.error),
            f("JOB_STATUS", "DMA").value.eq(head.payload.dma),
            f("JOB_STATUS", "VALID").value.eq(head.valid),
            head.ready.eq(f("JOB_POP", "POP").pulse),
            f("JOB_LEVELS", "QUEUED").value.eq(jobs.level),
            f("JOB_LEVELS", "ACTIVE").value.eq(active),
            f("JOB_LEVELS", "DONE").value.eq(completions.level),
            f("JOB_LEVELS", "FREE").value.eq(free),
        ]

        # ---- control, status, errors, interrupts
        posted = Signal()
        done = completions.w_stream.payload
        m.d.comb += posted.eq(completions.w_stream.valid & completions.w_stream.ready)
        ev = seq.events
        m.d.comb += [
            seq.abort.eq(f("CONTROL", "ABORT").pulse),
            seq.soft_reset.eq(f("CONTROL", "SOFT_RESET").pulse),
            seq.watchdog.eq(f("WATCHDOG", "CYCLES").value),
            f("ERROR", "GEMV").we.eq(posted & (done.error != 0)),
            f("ERROR", "GEMV").next.eq(done.error),
            f("ERROR", "DMA").we.eq(ev.dma_error),
            f("ERROR", "DMA").next.eq(ev.dma_code),
            f("IRQ_STATUS", "GEMV_DONE").set.eq(posted & done.irq),
            f("IRQ_STATUS", "GEMV_ERROR").set.eq(posted & (done.error != 0)),
            f("IRQ_STATUS", "DMA_DONE").set.eq(ev.dma_done),
            f("IRQ_STATUS", "DMA_ERROR").set.eq(ev.dma_error),
        ]
        irq_bits = ("GEMV_DONE", "GEMV_ERROR", "DMA_DONE", "DMA_ERROR")
        m.d.comb += self.irq.eq(
            (Cat(*[f("IRQ_STATUS", b).value for b in irq_bits]) &
             Cat(*[f("IRQ_ENABLE", b).value for b in irq_bits])).any())
        busy = Signal()
        m.d.comb += [
            busy.eq((jobs.level != 0) | seq.status.busy),
            f("STATUS", "BUSY").value.eq(busy),
            f("STATUS", "DMA_BUSY").value.eq(~dma.idle),
            f("STATUS", "ERROR").value.eq((f("ERROR", "GEMV").value != 0) |
                                          (f("ERROR", "DMA").value != 0) |
                                          f("ERROR", "OVERFLOW").value),
            f("STATUS", "ABORTING").value.eq(seq.status.aborting),
        ]

        # ---- the sequencer's blocks
        dma_cfg = cfg.dma
        m.d.comb += [
            dma.window_base.eq(0),
            dma.window_size.eq(cfg.memory_size),
            dma.abort.eq(seq.dma_abort),
            seq.dma_idle.eq(dma.idle),
            seq.engine_busy.eq(engine.busy),
            # The sequencer checks every job before the engine sees it, so the
            # engine's own sticky error is never set by a job that reaches it.
            engine.error_clear.eq(0),
        ]
        for ch in ("mm2s", "s2mm"):
            wiring.connect(m, getattr(seq, f"{ch}_descriptors"),
                           getattr(dma, f"{ch}_descriptors"))
            wiring.connect(m, getattr(dma, f"{ch}_status"), getattr(seq, f"{ch}_status"))
        wiring.connect(m, dma.mm2s_data, seq.mm2s_data)
        wiring.connect(m, seq.s2mm_data, dma.s2mm_data)
        wiring.connect(m, seq.engine_job, engine.job)
        wiring.connect(m, seq.engine_activations, engine.activations)
        wiring.connect(m, seq.engine_weights, engine.weights)
        wiring.connect(m, engine.results, seq.engine_results)

        # ---- memory path: DMA and host window -> arbiter -> backend
        connect_axi(m, dma.bus, arbiter.managers[0], dma_cfg.axi_signature)
        wiring.connect(m, wiring.flipped(self.host), arbiter.managers[1])
        mem = arbiter.subordinate
        if isinstance(self.backend, LpddrController):
            m.submodules.memory = ctrl = self.backend
            connect_axi(m, mem, ctrl.axi, self.memory_signature)
            wiring.connect(m, ctrl.dfi, wiring.flipped(self.dfi))
        elif self.backend is not None:
            m.submodules.memory = self.backend
            wiring.connect(m, mem, self.backend.axi)
        else:
            wiring.connect(m, mem, wiring.flipped(self.memory))

        # ---- performance counters
        mem_beats = Signal(2)
        m.d.comb += mem_beats.eq((mem.r.valid & mem.r.ready) + (mem.w.valid & mem.w.ready))
        counters = {
            "PERF_BUSY_CYCLES": (ev.running, None),
            "PERF_WEIGHT_BYTES": (ev.weight_word, cfg.gemv.word_bits // 8),
            "PERF_STALL_MEMORY": (ev.stall_memory, None),
            "PERF_STALL_RESULT": (ev.stall_result, None),
            "PERF_STALL_ENGINE": (ev.stall_engine, None),
            "PERF_STALL_HOST": (~busy, None),
            "PERF_JOBS_DONE": (ev.job_done, None),
            "PERF_MEM_BYTES": (mem_beats != 0, mem_beats * dma_cfg.beat_bytes),
            "PERF_MEM_IDLE": (ev.running & (mem_beats == 0), None),
            "PERF_MEM_GAP": (ev.between_jobs & (mem_beats == 0), None),
        }
        # Without a DRAM controller the DRAM loss counters stay 0.
        counters.update(dict.fromkeys(_DRAM_COUNTERS, (0, None)))
        if isinstance(self.backend, LpddrController):
            perf = self.backend.perf
            for reg, name in _DRAM_COUNTERS.items():
                # The controller's counters run free; one loss cycle at most
                # per cycle, so the counter steps when the value moved.
                last = Signal.like(getattr(perf, name), name=f"{name}_last")
                m.d.sync += last.eq(getattr(perf, name))
                counters[reg] = (getattr(perf, name) != last, None)
        clear = f("PERF_CONTROL", "CLEAR").pulse
        for reg in self.regmap:
            if not reg.name.startswith("PERF_") or reg.name == "PERF_CONTROL":
                continue
            port = f(reg.name, "COUNT")
            m.d.comb += port.clear.eq(clear)
            if reg.name not in counters:
                raise ValueError(f"register {reg.name} has no event in Soc.elaborate; "
                                 f"connect its counter there")
            incr, amount = counters[reg.name]
            m.d.comb += port.incr.eq(incr)
            if amount is not None:
                m.d.comb += port.incr_value.eq(amount)
        return m
