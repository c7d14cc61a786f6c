"""Job loader and activation buffers: job checks, ping-pong buffers, Q4_1 block sums.

:class:`JobLoader` takes a job descriptor when an activation buffer is
free, checks it (a job that breaks a rule is dropped whole and its
:class:`~lpaccel.rtl.regmap.GemvError` code latched: ``gemv_error_e`` of the
register map), then fills the free buffer with the job's
activation blocks, one per cycle. The buffer is *full* from the end of its
load until the sequencer releases it after the job's last weight beat; with
two buffers the next job's activations load while the current job computes.

:class:`ActivationBuffers` holds the two buffers, each in ``blocks_per_row``
banks so that one read returns the activations of a whole beat. Block ``b``
of buffer ``s`` sits in bank ``b % blocks_per_row`` at row
``s * depth + b // blocks_per_row``. Writes pass two register stages, in
which the Q4_1 block sum ``msum = sum of the 32 mantissas`` is formed by a
two-level adder tree.

Latency: a block reaches the memory two cycles after it is taken (readable
from the third); ``full`` marks the buffer loaded four cycles after its last
block is taken. A read returns the row one cycle after its address (when
``read_en``).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..config import BCQ_PLANES, BLOCK, GROUP_SIZES, MSUM_BITS, WeightFormat
from ..regmap import GemvError  # the register map's gemv_error_e: defined once, in the RDL
from ..utils import tree_reduce
from .lutgemm import LutLoadLayout
from .pipeline import ActivationLayout, EngineBlock, SlotKind

__all__ = ["JobLayout", "JobLoader", "ActivationBuffers"]


#: A job descriptor: format, shape, (INT4/INT8/BCQ) group size and BCQ's
#: plane count and offset flag.
JobLayout = data.StructLayout({
    "fmt": WeightFormat,
    "rows": unsigned(16),
    "cols": unsigned(17),
    "group": unsigned(8),
    "planes": unsigned(3),
    "offset": 1,
})

#: Width of the block counters (up to ``65536 / 32`` blocks of a row).
BLOCK_COUNT_BITS = 13
#: Width of the count of rows accepted but not yet delivered (two jobs' worth).
OUTSTANDING_BITS = 19


class ActivationBuffers(EngineBlock):
    """Two activation buffers in ``blocks_per_row`` banks, with Q4_1 block sums.

    Parameters
    ----------
    geometry : EngineGeometry
        Bank count, depth and whether block sums are needed.

    Attributes
    ----------
    write : In(StructLayout)
        ``valid``, ``addr`` (block index over both buffers:
        ``buffer * depth * blocks_per_row + block``) and the ``block``.
    settling : Out(1)
        A write is still in the two register stages before the memory.
    read_addr : In(range(2 * depth))
        Row to read: ``buffer * depth + block // blocks_per_row``.
    read_en : In(1)
        Read enable (the row is held while low).
    read_data : Out(geometry.buffer_row_layout)
        The row, one cycle after its address.
    """

    def __init__(self, geometry):
        super().__init__(geometry, {
            "write": In(self.write_layout(geometry)),
            "settling": Out(1),
            "read_addr": In(range(2 * geometry.depth)),
            "read_en": In(1),
            "read_data": Out(geometry.buffer_row_layout),
        })

    @staticmethod
    def write_layout(geometry):
        """One block write: ``valid``, ``addr`` and the ``block``."""
        return data.StructLayout({
            "valid": 1,
            "addr": range(2 * geometry.depth * geometry.blocks_per_row),
            "block": ActivationLayout,
        })

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        bpr = g.blocks_per_row
        entry = g.entry_layout
        pending = data.StructLayout({"valid": 1, "addr": self.write.addr.shape(),
                                     "entry": entry})
        w1 = Signal(pending, name="write_1")
        w2 = Signal(pending, name="write_2")
        block = self.write.block
        m.d.sync += [w1.valid.eq(self.write.valid), w1.addr.eq(self.write.addr),
                     w1.entry.mant.eq(block.mant), w1.entry.exp.eq(block.exp),
                     w2.valid.eq(w1.valid), w2.addr.eq(w1.addr)]
        if g.has_min:
            # Block sum over two stages: four sums of eight, then their sum.
            psums = Signal(data.ArrayLayout(signed(MSUM_BITS), 4), name="msum_parts")
            m.d.sync += [psums[k].eq(tree_reduce(block.mant[8 * k + i] for i in range(8)))
                         for k in range(4)]
            m.d.sync += [w2.entry.mant.eq(w1.entry.mant), w2.entry.exp.eq(w1.entry.exp),
                         w2.entry.msum.eq(tree_reduce(psums[k] for k in range(4)))]
        else:
            m.d.sync += w2.entry.eq(w1.entry)
        m.d.comb += self.settling.eq(w1.valid | w2.valid)

        for k in range(bpr):
            mem = Memory(shape=entry, depth=2 * g.depth, init=[])
            m.submodules[f"act_bank{k}"] = mem
            wp, rp = mem.write_port(), mem.read_port(transparent_for=())
            bank_hit = (w2.addr % bpr == k) if bpr > 1 else 1
            m.d.comb += [wp.addr.eq(w2.addr // bpr), wp.data.eq(w2.entry),
                         wp.en.eq(w2.valid & bank_hit),
                         rp.addr.eq(self.read_addr), rp.en.eq(self.read_en),
                         self.read_data[k].eq(rp.data)]
        return m


class JobLoader(EngineBlock):
    """Check and accept jobs; load their activations into the free buffer.

    Parameters
    ----------
    geometry : EngineGeometry
        Buffer sizes, limits and the formats built in.

    Attributes
    ----------
    job : In(stream.Signature(JobLayout))
        Job descriptors; taken while the buffer to fill next is free.
    activations : In(stream.Signature(ActivationLayout))
        A job's ``cols / 32`` activation blocks, right after its descriptor.
    write : Out(ActivationBuffers.write_layout(geometry))
        Block writes towards :class:`ActivationBuffers`.
    settling : In(1)
        From :class:`ActivationBuffers`: writes still in flight.
    lut_load : Out(stream.Signature(LutLoadLayout))
        A BCQ job's activation blocks towards :class:`~.lutgemm.LutGemm`'s
        tables; a block is taken (into the buffer too) when this is ready.
    lut_settling : In(1)
        From :class:`~.lutgemm.LutGemm`: table entries still to write.
    jobs : Out(ArrayLayout(geometry.job_params_layout, 2))
        The job loaded into each buffer.
    full : Out(2)
        Buffer ``s`` holds a loaded job (bit ``s``).
    release : In(2)
        The sequencer is done with buffer ``s`` (bit ``s``): it is free again.
    error : Out(GemvError)
        Sticky code of the last rejected job.
    error_clear : In(1)
        Clears ``error`` (a new error in the same cycle wins).
    delivered : In(1)
        A result row left the engine.
    busy : Out(1)
        Rows accepted and not yet delivered.
    """

    def __init__(self, geometry):
        super().__init__(geometry, {
            "job": In(stream.Signature(JobLayout)),
            "activations": In(stream.Signature(ActivationLayout)),
            "write": Out(ActivationBuffers.write_layout(geometry)),
            "settling": In(1),
            "lut_load": Out(stream.Signature(LutLoadLayout)),
            "lut_settling": In(1),
            "jobs": Out(data.ArrayLayout(geometry.job_params_layout, 2)),
            "full": Out(2),
            "release": In(2),
            "error": Out(GemvError),
            "error_clear": In(1),
            "delivered": In(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        cfg = g.config
        job = self.job.payload

        with m.If(self.error_clear):
            m.d.sync += self.error.eq(GemvError.NONE)

        # Checks of the offered job.
        fmt_ok = Signal()
        m.d.comb += fmt_ok.eq(Cat(*(job.fmt == f for f in cfg.formats)).any())
        is_grouped = Signal()              # INT4, INT8, BCQ: a group size of 32/64/128
        m.d.comb += is_grouped.eq((job.fmt == WeightFormat.INT4) |
                                  (job.fmt == WeightFormat.INT8) |
                                  (job.fmt == WeightFormat.BCQ))
        group_ok = Signal()
        m.d.comb += group_ok.eq(Cat(*(job.group == size for size in GROUP_SIZES)).any())
        planes_ok = Signal()               # BCQ: 1 to 4 planes; every other format: 0
        m.d.comb += planes_ok.eq(Mux(job.fmt == WeightFormat.BCQ,
                                     Cat(*(job.planes == q for q in BCQ_PLANES)).any(),
                                     job.planes == 0))
        group_low = Signal(7)              # group - 1 as a mask on cols
        m.d.comb += group_low.eq(Mux(is_grouped, job.group - 1, BLOCK - 1))
        kind = Signal(SlotKind)
        with m.Switch(job.fmt):
            with m.Case(WeightFormat.Q4_0, WeightFormat.Q8_0):
                m.d.comb += kind.eq(SlotKind.F16)
            with m.Case(WeightFormat.Q4_1):
                m.d.comb += kind.eq(SlotKind.PAIR_X1)
            with m.Default():
                m.d.comb += kind.eq(Mux(job.group == 128, SlotKind.PAIR_X4,
                                        Mux(job.group == 64, SlotKind.PAIR_X2,
                                            SlotKind.PAIR_X1)))

        wsel = Signal()                    # the buffer to fill next
        nblocks = Signal(BLOCK_COUNT_BITS)
        blk = Signal(BLOCK_COUNT_BITS)
        accept_rows = Signal(16)
        set_full = Signal(2)
        m.d.sync += self.full.eq((self.full | set_full) & ~self.release)
        loading_bcq = Signal()             # the job loading is BCQ: its blocks feed the tables
        lut = self.lut_load.payload
        m.d.comb += [lut.buffer.eq(wsel), lut.block.eq(blk),
                     lut.mant.eq(self.activations.payload.mant),
                     lut.exp.eq(self.activations.payload.exp)]
        m.d.comb += [self.write.valid.eq(self.activations.valid & self.activations.ready),
                     self.write.addr.eq(wsel * (g.depth * g.blocks_per_row) + blk),
                     self.write.block.eq(self.activations.payload)]

        with m.FSM(name="loader"):
            with m.State("IDLE"):
                m.d.comb += self.job.ready.eq(~self.full.bit_select(wsel, 1))
                with m.If(self.job.valid & self.job.ready):
                    with m.If(~fmt_ok):
                        m.d.sync += self.error.eq(GemvError.BAD_FORMAT)
                    with m.Elif(is_grouped & ~group_ok):
                        m.d.sync += self.error.eq(GemvError.BAD_GROUP)
                    with m.Elif(~planes_ok):
                        m.d.sync += self.error.eq(GemvError.BAD_PLANES)
                    with m.Elif((job.cols == 0) | ((job.cols & group_low) != 0)):
                        m.d.sync += self.error.eq(GemvError.BAD_COLS)
                    with m.Elif(job.cols > cfg.max_cols):
                        m.d.sync += self.error.eq(GemvError.COLS_TOO_LARGE)
                    with m.Elif((job.rows == 0) | (job.rows > cfg.max_rows)):
                        m.d.sync += self.error.eq(GemvError.BAD_ROWS)
                    with m.Else():
                        slot = self.jobs[wsel]
                        m.d.sync += [slot.fmt.eq(job.fmt), slot.rows.eq(job.rows),
                                     slot.cols.eq(job.cols), slot.kind.eq(kind),
                                     slot.planes.eq(job.planes),
                                     slot.offset.eq(job.offset & (job.fmt == WeightFormat.BCQ))]
                        m.d.comb += accept_rows.eq(job.rows)
                        m.d.sync += [nblocks.eq(job.cols[5:]), blk.eq(0),
                                     loading_bcq.eq(job.fmt == WeightFormat.BCQ)]
                        m.next = "LOAD"
            with m.State("LOAD"):
                if g.has_bcq:
                    # A BCQ block also goes to the LUT-GEMM tables, at their pace.
                    m.d.comb += [
                        self.activations.ready.eq(~loading_bcq | self.lut_load.ready),
                        self.lut_load.valid.eq(loading_bcq & self.activations.valid),
                    ]
                else:
                    m.d.comb += self.activations.ready.eq(1)
                with m.If(self.activations.valid & self.activations.ready):
                    m.d.sync += blk.eq(blk + 1)
                    with m.If(blk == nblocks - 1):
                        m.next = "SETTLE"
            with m.State("SETTLE"):
                # The last block is two register stages from the buffer.
                with m.If(~self.settling & ~self.lut_settling):
                    m.d.comb += set_full.eq(Mux(wsel, 0b10, 0b01))
                    m.d.sync += wsel.eq(~wsel)
                    m.next = "IDLE"

        outstanding = Signal(OUTSTANDING_BITS)
        m.d.sync += outstanding.eq(outstanding + accept_rows - self.delivered)
        m.d.comb += self.busy.eq(outstanding != 0)
        return m
