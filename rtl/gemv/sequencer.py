"""Beat sequencer: walks the weight stream of the loaded job, beat by beat.

The stream of a job (``docs/arithmetic.md`` section 6) is, per row, chunks
of one scale beat followed by the quant beats its slots cover. The
sequencer keeps the row and column of the next quant beat, keeps the last
scale beat, and for each quant beat looks up per segment the scale slot of
the block the segment works on (zero past the row's end, so padding never
contributes), reads the activation buffer row the beat needs and registers
everything as one ``stage1_layout`` beat for the lanes.

An ``F16`` job has no scale beats: the sequencer walks its rows in beats of
``lanes / 4`` weights (``docs/arithmetic.md`` section 7). A ``BCQ`` job
(section 8.2) is walked per chunk: its plane scale beats and offset beat are
kept in registers, then each tile of ``beat_bits`` columns passes as one
plane beat per plane, registered with the scales and offsets of its blocks
on ``lut_beat`` for :class:`~.lutgemm.LutGemm` instead of ``beat``.

After the job's last beat it releases the buffer, ``flush``\\ es the rest of
the memory word (padding) in the width converter, and goes straight on with
the other buffer's job if it is loaded.

Latency: ``beat`` (and the buffer row on ``read_data``) one cycle after the
quant beat is taken. A beat is taken in a cycle where ``beats.valid``, a job
is active and ``en`` is high: ``beats.ready`` is exactly that.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, exact_log2

from ..config import BCQ_PLANES, BLOCK, WeightFormat
from ..utils import select
from .loader import BLOCK_COUNT_BITS
from .lutgemm import LutGemm
from .pipeline import EngineBlock, SlotKind

__all__ = ["BeatSequencer"]

#: Width of the column counters (a column one beat past ``max_cols``).
COL_BITS = 18


class BeatSequencer(EngineBlock):
    """Walk a job's weight beats and issue quant beats to the lanes.

    Parameters
    ----------
    geometry : EngineGeometry
        Beat width, buffer geometry and the scale-slot kinds built in.

    Attributes
    ----------
    en : In(1)
        Pipeline enable.
    beats : In(stream.Signature(unsigned(beat_bits)))
        Weight beats (from the width converter).
    flush : Out(1)
        The beat taken now is the job's last: drop the rest of its word.
    jobs : In(ArrayLayout(job_params_layout, 2))
        The job in each activation buffer (from the loader).
    full : In(2)
        Which buffers hold a loaded job.
    release : Out(2)
        One-hot: the buffer whose job's last beat is taken now.
    read_addr : Out(range(2 * depth))
        Activation buffer row for the beat taken now.
    read_en : Out(1)
        Read enable of the activation buffer (``en``).
    beat : Out(geometry.stage1_layout)
        The registered quant beat (also F16 beats, flagged ``wide``).
    lut_beat : Out(LutGemm.beat_layout(geometry))
        The registered BCQ plane beat, in the cycle a quant beat would be on
        ``beat``.
    """

    def __init__(self, geometry):
        super().__init__(geometry, {
            "beats": In(stream.Signature(unsigned(geometry.beat_bits))),
            "flush": Out(1),
            "jobs": In(data.ArrayLayout(geometry.job_params_layout, 2)),
            "full": In(2),
            "release": Out(2),
            "read_addr": Out(range(2 * geometry.depth)),
            "read_en": Out(1),
            "beat": Out(geometry.stage1_layout),
            "lut_beat": Out(LutGemm.beat_layout(geometry)),
        }, pipelined=True)

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        L, B = g.lanes, g.beat_bits
        n4, n8 = g.n4, g.n8

        # The active job.
        active = Signal()
        rsel = Signal()                    # the buffer it reads
        job = Signal(g.job_params_layout, name="job")
        is8 = Signal()
        is16 = Signal()                    # an F16 job: no scale beats, n16 weights a beat
        nblocks = Signal(BLOCK_COUNT_BITS)
        row = Signal(16)
        col = Signal(COL_BITS)
        expect_scale = Signal()            # the next beat is a scale beat
        scale_reg = Signal(B)
        # BCQ: a chunk's plane scale beats and offset beat, kept while its tiles pass.
        isbcq = Signal()
        head = Signal(range(BCQ_PLANES[-1] + 1))   # scale (offset) beat of the chunk head
        plane = Signal(range(BCQ_PLANES[-1]))      # plane beat of the tile
        alpha_regs = [Signal(B, name=f"alpha_beat_{p}") for p in range(BCQ_PLANES[-1])]
        offset_reg = Signal(B)
        # BCQ, kept beside ``col`` so that a plane beat's slot lookups start from
        # registers (no adder on ``col`` in that path): the block of the tile's
        # first column inside its chunk, and the row's blocks from the tile on.
        chunk_blk = Signal(range(max(2, (B // 16) * 4)))
        blocks_left = Signal(BLOCK_COUNT_BITS + 1)
        # Which blocks of the tile are inside the row (``blocks_left > k``),
        # registered with ``blocks_left`` so that the compares do not drive
        # the plane beat's many cleared registers directly.
        tile_inside = Signal(g.tile_blocks if g.has_bcq else 1)

        def inside_of(left, skip=0):
            # left - skip > k, as "above a small constant": an OR of the high
            # bits and a compare of the low ones (no carry chains; the
            # callers' ``left`` is at least ``skip``).
            flags = []
            for k in range(len(tile_inside)):
                c = k + skip
                w = bits_for(c)
                flags.append((left[w:] != 0) | (left[:w] > c))
            return Cat(*flags)

        take = Signal()
        m.d.comb += [take.eq(self.beats.valid & active & self.en),
                     self.beats.ready.eq(take)]

        # ``n``, the columns a quant beat (BCQ: a tile) covers, is set when the
        # job starts, and ``col_end`` (always ``col + n``) is kept beside
        # ``col`` rather than added to it: the row, chunk and job ends and
        # everything they select then start from registers (the adder was
        # the all-formats engine's critical path on the ECP5).
        n = Signal(range(B + 1))
        col_end = Signal(COL_BITS)

        def beat_cols(params):
            is8_ = (params.fmt == WeightFormat.Q8_0) | (params.fmt == WeightFormat.INT8)
            cols = Mux(is8_, n8, n4)
            if g.has_f16:
                cols = Mux(params.fmt == WeightFormat.F16, g.n16, cols)
            if g.has_bcq:
                cols = Mux(params.fmt == WeightFormat.BCQ, B, cols)
            return cols

        row_last = Signal()
        chunk_end = Signal()
        job_last = Signal()
        chunk_mask = Signal(range(16 * L))  # columns covered by one scale beat, - 1
        bcq_mask = Signal(range(32 * L))    # BCQ: (B / 16) * G - 1
        lg_group = Signal(range(8))         # BCQ: log2 of G (kind.blocks blocks a slot)
        with m.Switch(job.kind):
            for kind in g.slot_kinds:
                with m.Case(kind):
                    m.d.comb += chunk_mask.eq(
                        (B // kind.slot_bits) * BLOCK * kind.blocks - 1)
        with m.Switch(job.kind):
            for kind in (SlotKind.PAIR_X1, SlotKind.PAIR_X2, SlotKind.PAIR_X4):
                with m.Case(kind):
                    m.d.comb += [bcq_mask.eq((B // 16) * BLOCK * kind.blocks - 1),
                                 lg_group.eq(exact_log2(BLOCK * kind.blocks))]
        tile_last = Signal()               # the beat ends its tile (always, but in BCQ)
        m.d.comb += tile_last.eq(~isbcq | (plane == job.planes - 1))
        m.d.comb += [
            row_last.eq(col_end >= job.cols),
            chunk_end.eq(row_last | ((col_end & Mux(isbcq, bcq_mask, chunk_mask)) == 0)),
            job_last.eq(row_last & (row == job.rows - 1)),
            self.flush.eq(~expect_scale & job_last & tile_last),
        ]

        def start(params):
            return [job.eq(params), nblocks.eq(params.cols[5:]),
                    is8.eq((params.fmt == WeightFormat.Q8_0) |
                           (params.fmt == WeightFormat.INT8)),
                    is16.eq(params.fmt == WeightFormat.F16),
                    isbcq.eq(params.fmt == WeightFormat.BCQ), head.eq(0), plane.eq(0),
                    row.eq(0), col.eq(0), n.eq(beat_cols(params)),
                    col_end.eq(beat_cols(params)), expect_scale.eq(params.fmt != WeightFormat.F16),
                    chunk_blk.eq(0), blocks_left.eq(params.cols[5:]),
                    tile_inside.eq(inside_of(params.cols[5:])), active.eq(1)]

        with m.If(~active & self.full.bit_select(rsel, 1)):
            m.d.sync += start(self.jobs[rsel])
        with m.If(take):
            with m.If(expect_scale & isbcq):
                # BCQ chunk head: q plane scale beats, then the offset beat.
                with m.If(head == job.planes):
                    m.d.sync += offset_reg.eq(self.beats.payload)
                with m.Switch(head):
                    for p in range(BCQ_PLANES[-1]):
                        with m.Case(p):
                            with m.If(p < job.planes):
                                m.d.sync += alpha_regs[p].eq(self.beats.payload)
                with m.If(head == job.planes + job.offset - 1):
                    m.d.sync += [head.eq(0), expect_scale.eq(0)]
                with m.Else():
                    m.d.sync += head.eq(head + 1)
            with m.Elif(expect_scale):
                m.d.sync += [scale_reg.eq(self.beats.payload), expect_scale.eq(0)]
            with m.Elif(~tile_last):
                # BCQ: the next plane of the same tile.
                m.d.sync += plane.eq(plane + 1)
            with m.Else():
                m.d.sync += [expect_scale.eq(chunk_end & ~is16), plane.eq(0)]
                with m.If(row_last):
                    m.d.sync += [col.eq(0), col_end.eq(n), row.eq(row + 1), chunk_blk.eq(0),
                                 blocks_left.eq(nblocks), tile_inside.eq(inside_of(nblocks))]
                with m.Else():
                    m.d.sync += [col.eq(col_end), col_end.eq(col_end + n),
                                 blocks_left.eq(blocks_left - g.tile_blocks),
                                 tile_inside.eq(inside_of(blocks_left, g.tile_blocks)),
                                 chunk_blk.eq(Mux(chunk_end, 0, chunk_blk + g.tile_blocks))]
                with m.If(job_last):
                    # Hand the buffer back and go straight on with the next
                    # job if its activations are already in.
                    m.d.comb += self.release.eq(Mux(rsel, 0b10, 0b01))
                    m.d.sync += [rsel.eq(~rsel), active.eq(0)]
                    with m.If(self.full.bit_select(~rsel, 1)):
                        m.d.sync += start(self.jobs[~rsel])

        # Per segment, the scale slot of the block it works on: the float16
        # scale and the slot's second half (Q4_1 minimum or INT zero point).
        block0 = col[5:]
        cblk0 = (col & chunk_mask)[5:]            # block index inside the chunk
        out = Signal(g.stage1_layout, name="stage1")
        pairs = []
        for j in range(g.segments):
            slot = Signal(32, name=f"slot_{j}")
            with m.Switch(job.kind):
                for kind in g.slot_kinds:
                    nslots = B // kind.slot_bits
                    index = (cblk0 + j) >> exact_log2(kind.blocks)
                    slots = [scale_reg[k * kind.slot_bits:(k + 1) * kind.slot_bits]
                             for k in range(nslots)]
                    with m.Case(kind):
                        m.d.comb += slot.eq(select(slots, index[:exact_log2(nslots)]))
            inside = block0 + j < nblocks
            pairs += [(out.seg[j].scale, Mux(inside, slot[:16], 0)),
                      (out.seg[j].second, Mux(inside & (job.kind != SlotKind.F16),
                                              slot[16:], 0))]

        # Offset of the beat inside one row of the activation buffer, in
        # units of the beat's own element count.
        row_cols = g.row_cols
        sub4 = (col % row_cols) >> exact_log2(n4) if n4 < row_cols else Const(0, 1)
        sub8 = (col % row_cols) >> exact_log2(n8) if n8 < row_cols else Const(0, 1)
        sub16 = (col % row_cols) >> exact_log2(g.n16)
        m.d.comb += [self.read_addr.eq(rsel * g.depth + (col >> exact_log2(row_cols))),
                     self.read_en.eq(self.en)]

        flags = out.flags
        pairs += [(out.valid, take & ~expect_scale & ~isbcq), (out.word, self.beats.payload),
                  (out.fmt, job.fmt), (out.is8, is8),
                  (out.sub, Mux(is16, sub16, Mux(is8, sub8, sub4))),
                  (flags.blk_first, col % BLOCK == 0), (flags.blk_last, col_end % BLOCK == 0),
                  (flags.row_first, block0 == 0), (flags.row_last, row_last),
                  (flags.final, job_last), (flags.wide, is16)]
        if g.has_bcq:
            pairs += self._bcq_beat(m, take & ~expect_scale & isbcq, job, col, chunk_blk,
                                    tile_inside, lg_group, plane, alpha_regs, offset_reg,
                                    rsel, tile_last, row_last, job_last)
        with m.If(self.en):
            m.d.sync += [dst.eq(src) for dst, src in pairs]
        m.d.comb += self.beat.eq(out)
        return m

    def _bcq_beat(self, m, valid, job, col, chunk_blk, inside_tile, lg_group, plane,
                  alpha_regs, offset_reg, rsel, tile_last, row_last, job_last):
        """The registers of a BCQ plane beat for :class:`~.lutgemm.LutGemm` (stage 1).

        Block ``k`` of the tile (column ``col + 32 k``) takes the plane's
        scale and the offset from slot ``((col % C) + 32 k) // G`` of the
        chunk's scale beats; blocks past the row's end get 0 for both.
        """
        g = self.geometry
        B, nb = g.beat_bits, g.tile_blocks
        nslots = B // 16
        out = self.lut_beat
        alpha_beat = Signal(B, name="alpha_beat")
        m.d.comb += alpha_beat.eq(select(alpha_regs, plane))
        pairs = [(out.valid, valid), (out.buffer, rsel), (out.tile, col >> exact_log2(B)),
                 (out.bits, self.beats.payload),
                 (out.flags.plane_first, plane == 0), (out.flags.plane_last, tile_last),
                 (out.flags.row_first, col == 0), (out.flags.row_last, row_last),
                 (out.flags.final, job_last)]
        for k in range(nb):
            # Slot ((col mod C) + 32 k) // G = (chunk block + k) // (G / 32).
            blk = Signal.like(chunk_blk, name=f"bcq_blk_{k}")
            index = Signal(range(nslots), name=f"bcq_slot_{k}")
            m.d.comb += [blk.eq(chunk_blk + k),
                         index.eq(Mux(lg_group == 7, blk >> 2, Mux(lg_group == 6, blk >> 1,
                                                                    blk)))]
            inside = inside_tile[k]
            alpha = select([alpha_beat[16 * j:16 * j + 16] for j in range(nslots)], index)
            offset = select([offset_reg[16 * j:16 * j + 16] for j in range(nslots)], index)
            pairs += [(out.alpha[k], Mux(inside, alpha, 0)),
                      (out.offset[k], Mux(inside & job.offset, offset, 0))]
        return pairs
