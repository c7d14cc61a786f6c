"""Quantized GEMV engine: ``y = W · x`` with Q4_0/Q4_1/Q8_0/INT4/INT8 weights.

The arithmetic is defined in ``docs/arithmetic.md`` and mirrored exactly by
:mod:`lpaccel.sim.golden`; the weight stream layout is section 6 of that
page and is produced by :mod:`lpaccel.repack`.
"""

import enum

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..config import ACC_BITS, ACC_FRAC, BLOCK, GROUP_SIZES, GemvConfig, WeightFormat
from ..dsp import RegisteredMultiplier

__all__ = ["GemvEngine", "GemvError"]


class GemvError(enum.IntEnum):
    """Sticky error codes reported on :attr:`GemvEngine.error`.

    A rejected job is dropped whole: the engine consumes none of its
    activations or weights and stays ready for the next job.
    """

    NONE = 0
    #: ``fmt`` is not a format code this engine was built with.
    BAD_FORMAT = 1
    #: ``cols`` is zero or not a multiple of the group (32 for GGUF formats).
    BAD_COLS = 2
    #: ``cols`` exceeds the activation buffer (``config.max_cols``).
    COLS_TOO_LARGE = 3
    #: ``rows`` is zero or exceeds ``config.max_rows``.
    BAD_ROWS = 4
    #: ``group`` of an INT4/INT8 job is not 32, 64 or 128.
    BAD_GROUP = 5


def _stage(m, en, pairs):
    """Register ``pairs`` of ``(dst, src)`` when the pipeline advances."""
    with m.If(en):
        m.d.sync += [dst.eq(src) for dst, src in pairs]


class _Fp32Packer(Elaboratable):
    """Pipelined, exactly rounded conversion of ``A · 2^-ACC_FRAC`` to FP32.

    Seven register stages, all advancing on ``en``: magnitude, four steps of
    normalization, rounding bits, then round-to-nearest-even and pack.
    """

    def __init__(self):
        self.en = Signal()
        self.i_valid = Signal()
        self.i_acc = Signal(signed(ACC_BITS))
        self.i_tag = Signal(1)
        self.o_valid = Signal()
        self.o_value = Signal(32)
        self.o_tag = Signal(1)

    def elaborate(self, platform):
        m = Module()
        en = self.en
        w = ACC_BITS

        # Stage 1: sign and magnitude.
        v1, t1, s1 = Signal(), Signal(), Signal()
        mag1 = Signal(w)
        _stage(m, en, [(v1, self.i_valid), (t1, self.i_tag),
                       (s1, self.i_acc[-1]),
                       (mag1, Mux(self.i_acc[-1], -self.i_acc, self.i_acc))])

        # Normalization: shift the leading one to bit w-1 in halving steps,
        # a few steps per register stage so that each stage is one wide zero
        # test and one 2:1 mux deep. Each step is taken at most once, so the
        # shift count is just the step decisions side by side.
        v, t, s, z, mag = v1, t1, s1, None, mag1
        lz = {}
        for group in ([64], [32], [16, 8], [4, 2, 1]):
            x = mag
            for step in group:
                top_zero = Signal(name=f"top_zero{step}")
                nx = Signal(w, name=f"norm{step}")
                m.d.comb += [top_zero.eq(x[w - step:] == 0),
                             nx.eq(Mux(top_zero, x << step, x))]
                lz[step] = top_zero
                x = nx
            nv, nt, ns, nz = Signal(), Signal(), Signal(), Signal()
            nmag = Signal(w)
            regs = {step: Signal(name=f"lz{step}_{group[0]}") for step in lz}
            _stage(m, en, [(nv, v), (nt, t), (ns, s), (nz, (mag1 == 0) if z is None else z),
                           (nmag, x), *[(regs[k], lz[k]) for k in lz]])
            v, t, s, z, mag = nv, nt, ns, nz, nmag
            lz = regs
        v3, t3, s3, z3, mag3 = v, t, s, z, mag
        lzr3 = Cat(*(lz[step] for step in (1, 2, 4, 8, 16, 32, 64)))

        # Round to nearest, ties to even, and pack, over two stages: first
        # the kept bits, guard and sticky; then the increment. The leading one
        # sits at bit w-1; its weight is 2^(w-1-lz-ACC_FRAC).
        v4, t4, s4, z4, g4, st4 = (Signal(name=n) for n in ("v4", "t4", "s4", "z4", "g4", "st4"))
        mant4 = Signal(24)
        lz4 = Signal(7)
        _stage(m, en, [(v4, v3), (t4, t3), (s4, s3), (z4, z3), (lz4, lzr3),
                       (mant4, mag3[w - 24:]), (g4, mag3[w - 25]), (st4, mag3[:w - 25] != 0)])
        round_up = g4 & (st4 | mant4[0])
        rounded = Signal(25)
        m.d.comb += rounded.eq(mant4 + round_up)
        exp = Signal(9)
        m.d.comb += exp.eq((w - 1 - ACC_FRAC + 127) - lz4 + rounded[24])
        frac = Mux(rounded[24], rounded[1:24], rounded[0:23])
        _stage(m, en, [(self.o_valid, v4), (self.o_tag, t4),
                       (self.o_value, Mux(z4, 0, Cat(frac, exp[:8], s4)))])
        return m


def _tree(values):
    """Balanced sum of ``values``."""
    values = list(values)
    while len(values) > 1:
        values = [values[k] + values[k + 1] if k + 1 < len(values) else values[k]
                  for k in range(0, len(values), 2)]
    return values[0]


class _WidthAdapter(Elaboratable):
    """Memory words of ``word_bits`` in, beats of ``beat_bits`` out.

    Narrower words are gathered (one word per cycle); a wider word is split
    into beats, one per cycle. ``flush`` (with ``beat_take``) drops the rest
    of the current word: the padding after a job's last beat.
    """

    def __init__(self, word_bits, beat_bits, words):
        self.W, self.B = word_bits, beat_bits
        self.words = words                      # the engine's weights port
        self.beat_valid = Signal()
        self.beat_data = Signal(beat_bits)
        self.beat_take = Signal()
        self.flush = Signal()

    def elaborate(self, platform):
        m = Module()
        W, B, words = self.W, self.B, self.words
        wtake = Signal()
        m.d.comb += wtake.eq(words.valid & words.ready)
        if W == B:
            m.d.comb += [self.beat_valid.eq(words.valid), self.beat_data.eq(words.payload),
                         words.ready.eq(self.beat_take)]
        elif W > B:
            r = W // B
            word = Signal(W)
            have = Signal()
            idx = Signal(range(r))
            done = Signal()
            m.d.comb += [
                self.beat_valid.eq(have),
                self.beat_data.eq(word.word_select(idx, B)),
                done.eq(self.beat_take & ((idx == r - 1) | self.flush)),
                words.ready.eq(~have | done),
            ]
            with m.If(self.beat_take):
                m.d.sync += idx.eq(idx + 1)
            with m.If(done):
                m.d.sync += [have.eq(0), idx.eq(0)]
            with m.If(wtake):
                m.d.sync += [word.eq(words.payload), have.eq(1), idx.eq(0)]
        else:
            r = B // W
            acc = Signal(B - W)
            cnt = Signal(range(r))
            beat = Signal(B)
            valid = Signal()
            completes = Signal()
            m.d.comb += [
                completes.eq(cnt == r - 1),
                self.beat_valid.eq(valid),
                self.beat_data.eq(beat),
                words.ready.eq(~(completes & valid & ~self.beat_take)),
            ]
            with m.If(self.beat_take):
                m.d.sync += valid.eq(0)
            with m.If(wtake):
                with m.If(completes):
                    m.d.sync += [beat.eq(Cat(acc, words.payload)), valid.eq(1), cnt.eq(0)]
                with m.Else():
                    m.d.sync += [acc.word_select(cnt, W).eq(words.payload), cnt.eq(cnt + 1)]
        return m


class GemvEngine(wiring.Component):
    """Quantized matrix-vector product engine.

    Computes ``y = W · x`` for a queue of jobs. Each job is a descriptor,
    then ``cols / 32`` activation blocks (16-bit block floating point), then
    the repacked weight stream (``docs/arithmetic.md`` section 6). Two
    activation buffers let the next job's activations load while the
    current job computes, so consecutive jobs stream back to back. One
    weight beat (``4 * lanes`` bits) is consumed per cycle whenever one is
    offered and the result stream is not stalled; one FP32 result per row
    leaves on ``results``, in row order.

    Parameters
    ----------
    config : GemvConfig
        Lanes, word width, buffer sizes and the formats compiled in.

    Attributes
    ----------
    job : In(stream.Signature(JobLayout))
        ``fmt`` (:class:`WeightFormat` code), ``rows``, ``cols`` and
        ``group`` (elements per scale of INT4/INT8; ignored otherwise).
        Accepted when an activation buffer is free; a job that breaks a
        rule is accepted and dropped (see :attr:`error`).
    activations : In(stream.Signature(ActivationLayout))
        One BFP16 block per beat: 32 int16 mantissas and an int8 exponent.
    weights : In(stream.Signature(unsigned(config.word_bits)))
        Repacked weight stream, one memory word per beat.
    results : Out(stream.Signature(ResultLayout))
        FP32 bits of one row's result; ``last`` marks a job's final row.
    busy : Out(1)
        High while any accepted job has results still to deliver.
    error : Out(3)
        Sticky :class:`GemvError` code of the last rejected job. A rejected
        job consumes none of its activations or weights; jobs before it
        complete normally and the next valid job is accepted.
    error_clear : In(1)
        Clears ``error`` (a new error in the same cycle wins).
    """

    JobLayout = data.StructLayout({
        "fmt": unsigned(3),
        "rows": unsigned(16),
        "cols": unsigned(17),
        "group": unsigned(8),
    })
    ActivationLayout = data.StructLayout({
        "mant": data.ArrayLayout(signed(16), BLOCK),
        "exp": signed(8),
    })
    ResultLayout = data.StructLayout({
        "value": unsigned(32),
        "last": unsigned(1),
    })

    def __init__(self, config=None):
        if config is None:
            config = GemvConfig()
        if not isinstance(config, GemvConfig):
            raise TypeError(f"config must be a GemvConfig, not {config!r}")
        self.config = config
        super().__init__({
            "job": In(stream.Signature(self.JobLayout)),
            "activations": In(stream.Signature(self.ActivationLayout)),
            "weights": In(stream.Signature(unsigned(config.word_bits))),
            "results": Out(stream.Signature(self.ResultLayout)),
            "busy": Out(1),
            "error": Out(3),
            "error_clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        L = cfg.lanes
        B = cfg.beat_bits
        F = set(cfg.formats)
        bpr = cfg.blocks_per_row
        row_cols = BLOCK * bpr
        nseg = max(1, L // BLOCK)          # adder-tree segments = scale units
        seg_lanes = min(L, BLOCK)
        depth = cfg.max_cols // row_cols   # buffer rows per activation buffer
        n4, n8 = L, L // 2                 # elements per quant beat
        has8 = bool(F & {WeightFormat.Q8_0, WeightFormat.INT8})
        has4 = bool(F & {WeightFormat.Q4_0, WeightFormat.Q4_1, WeightFormat.INT4})
        has_min = WeightFormat.Q4_1 in F
        has_int = bool(F & {WeightFormat.INT4, WeightFormat.INT8})
        MSUM_BITS = 21                     # |sum of 32 mantissas| < 2**20

        # Scale-slot kinds: (slot bits, blocks per slot). Kind 0 holds lone
        # float16 scales (Q4_0, Q8_0); kinds 1-3 hold 32-bit slots covering
        # 1, 2 or 4 blocks (Q4_1 and INT groups of 32; INT groups of 64, 128).
        kinds = {}
        if F & {WeightFormat.Q4_0, WeightFormat.Q8_0}:
            kinds[0] = (16, 1)
        if has_min or has_int:
            kinds[1] = (32, 1)
        if has_int:
            kinds[2] = (32, 2)
            kinds[3] = (32, 4)

        # ---------------------------------------------------------------
        # Activation buffers: two of them (ping-pong), each in bpr banks;
        # block b of buffer s sits in bank b % bpr at s * depth + b // bpr.
        entry = data.StructLayout({
            "mant": data.ArrayLayout(signed(16), BLOCK),
            "exp": signed(8),
            "msum": signed(MSUM_BITS if has_min else 1),
        })
        banks = []
        for k in range(bpr):
            mem = Memory(shape=entry, depth=2 * depth, init=[])
            m.submodules[f"act_bank{k}"] = mem
            banks.append((mem.write_port(), mem.read_port(transparent_for=())))

        en = Signal()
        m.d.comb += en.eq(~(self.results.valid & ~self.results.ready))

        with m.If(self.error_clear):
            m.d.sync += self.error.eq(GemvError.NONE)

        # ---------------------------------------------------------------
        # Loader: checks and accepts jobs, fills the free buffer. A buffer is
        # "full" from the end of its load until the compute side has taken
        # the job's last weight beat.
        full = Signal(2)
        wsel = Signal()
        p_fmt = [Signal(3, name=f"p_fmt{s}") for s in range(2)]
        p_rows = [Signal(16, name=f"p_rows{s}") for s in range(2)]
        p_cols = [Signal(17, name=f"p_cols{s}") for s in range(2)]
        p_kind = [Signal(2, name=f"p_kind{s}") for s in range(2)]
        nblocks_ld = Signal(13)
        ld_blk = Signal(13)
        outstanding = Signal(19)
        accept_rows = Signal(16)
        result_taken = Signal()
        m.d.comb += result_taken.eq(self.results.valid & self.results.ready)

        job = self.job.payload
        fmt_ok = Signal()
        m.d.comb += fmt_ok.eq(Cat(*(job.fmt == f for f in cfg.formats)).any())
        is_int_job = Signal()
        m.d.comb += is_int_job.eq((job.fmt == WeightFormat.INT4) | (job.fmt == WeightFormat.INT8))
        group_ok = Signal()
        m.d.comb += group_ok.eq(Cat(*(job.group == g for g in GROUP_SIZES)).any())
        group_low = Signal(7)              # group - 1 as a mask on cols
        m.d.comb += group_low.eq(Mux(is_int_job, job.group - 1, BLOCK - 1))
        kind_of_job = Signal(2)
        with m.Switch(job.fmt):
            with m.Case(WeightFormat.Q4_0, WeightFormat.Q8_0):
                m.d.comb += kind_of_job.eq(0)
            with m.Case(WeightFormat.Q4_1):
                m.d.comb += kind_of_job.eq(1)
            with m.Default():
                m.d.comb += kind_of_job.eq(Mux(job.group == 128, 3,
                                               Mux(job.group == 64, 2, 1)))

        # Load path: the block sum for Q4_1 is formed over two registered
        # stages before the write.
        wr_v = [Signal(name=f"wr_v{i}") for i in range(3)]
        wr_addr = [Signal(range(2 * depth * bpr), name=f"wr_addr{i}") for i in range(3)]
        wr_data = [Signal(entry, name=f"wr_data{i}") for i in range(3)]
        psums = [Signal(signed(MSUM_BITS), name=f"wr_psum{k}") for k in range(4)]
        act = self.activations.payload
        m.d.comb += [wr_v[0].eq(self.activations.valid & self.activations.ready),
                     wr_addr[0].eq(wsel * (depth * bpr) + ld_blk),
                     wr_data[0].mant.eq(act.mant), wr_data[0].exp.eq(act.exp)]
        m.d.sync += [wr_v[1].eq(wr_v[0]), wr_addr[1].eq(wr_addr[0]), wr_data[1].eq(wr_data[0]),
                     wr_v[2].eq(wr_v[1]), wr_addr[2].eq(wr_addr[1])]
        if has_min:
            m.d.sync += [psums[k].eq(_tree(act.mant[8 * k + i] for i in range(8)))
                         for k in range(4)]
            m.d.sync += [wr_data[2].mant.eq(wr_data[1].mant), wr_data[2].exp.eq(wr_data[1].exp),
                         wr_data[2].msum.eq(_tree(psums))]
        else:
            m.d.sync += wr_data[2].eq(wr_data[1])
        for k, (wp, _) in enumerate(banks):
            bank_hit = (wr_addr[2] % bpr == k) if bpr > 1 else 1
            m.d.comb += [wp.addr.eq(wr_addr[2] // bpr), wp.data.eq(wr_data[2]),
                         wp.en.eq(wr_v[2] & bank_hit)]

        set_full = Signal(2)
        clr_full = Signal(2)
        m.d.sync += full.eq((full | set_full) & ~clr_full)

        with m.FSM(name="loader"):
            with m.State("IDLE"):
                m.d.comb += self.job.ready.eq(~full.bit_select(wsel, 1))
                with m.If(self.job.valid & self.job.ready):
                    with m.If(~fmt_ok):
                        m.d.sync += self.error.eq(GemvError.BAD_FORMAT)
                    with m.Elif(is_int_job & ~group_ok):
                        m.d.sync += self.error.eq(GemvError.BAD_GROUP)
                    with m.Elif((job.cols == 0) | ((job.cols & group_low) != 0)):
                        m.d.sync += self.error.eq(GemvError.BAD_COLS)
                    with m.Elif(job.cols > cfg.max_cols):
                        m.d.sync += self.error.eq(GemvError.COLS_TOO_LARGE)
                    with m.Elif((job.rows == 0) | (job.rows > cfg.max_rows)):
                        m.d.sync += self.error.eq(GemvError.BAD_ROWS)
                    with m.Else():
                        for s in range(2):
                            with m.If(wsel == s):
                                m.d.sync += [p_fmt[s].eq(job.fmt), p_rows[s].eq(job.rows),
                                             p_cols[s].eq(job.cols), p_kind[s].eq(kind_of_job)]
                        m.d.comb += accept_rows.eq(job.rows)
                        m.d.sync += [nblocks_ld.eq(job.cols[5:]), ld_blk.eq(0)]
                        m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += self.activations.ready.eq(1)
                with m.If(self.activations.valid):
                    m.d.sync += ld_blk.eq(ld_blk + 1)
                    with m.If(ld_blk == nblocks_ld - 1):
                        m.next = "SETTLE"
            with m.State("SETTLE"):
                # The last block is two register stages from the buffer.
                with m.If(~wr_v[1] & ~wr_v[2]):
                    m.d.comb += set_full.eq(Mux(wsel, 0b10, 0b01))
                    m.d.sync += wsel.eq(~wsel)
                    m.next = "IDLE"

        m.d.sync += outstanding.eq(outstanding + accept_rows - result_taken)
        m.d.comb += self.busy.eq(outstanding != 0)

        # ---------------------------------------------------------------
        # Compute sequencer: walks the weight beats of the job in buffer rsel.
        m.submodules.adapter = adapter = _WidthAdapter(cfg.word_bits, B, self.weights)
        active = Signal()
        rsel = Signal()
        fmt = Signal(3)
        rows = Signal(16)
        cols = Signal(17)
        kind = Signal(2)
        is8 = Signal()
        nblocks = Signal(13)
        row = Signal(16)
        col = Signal(18)
        expect_scale = Signal()
        scale_reg = Signal(B)

        take = Signal()
        m.d.comb += [take.eq(adapter.beat_valid & active & en),
                     adapter.beat_take.eq(take)]

        n = Signal(range(L + 1))
        m.d.comb += n.eq(Mux(is8, n8, n4))
        col_end = Signal(18)
        row_last = Signal()
        chunk_end = Signal()
        job_last = Signal()
        chunk_mask = Signal(range(16 * L))
        with m.Switch(kind):
            for k, (sbits, bps) in kinds.items():
                with m.Case(k):
                    m.d.comb += chunk_mask.eq((B // sbits) * BLOCK * bps - 1)
        m.d.comb += [
            col_end.eq(col + n),
            row_last.eq(col_end >= cols),
            chunk_end.eq(row_last | ((col_end & chunk_mask) == 0)),
            job_last.eq(row_last & (row == rows - 1)),
            adapter.flush.eq(~expect_scale & job_last),
        ]

        def load_params(s):
            return [fmt.eq(p_fmt[s]), rows.eq(p_rows[s]), cols.eq(p_cols[s]),
                    kind.eq(p_kind[s]), nblocks.eq(p_cols[s][5:]),
                    is8.eq((p_fmt[s] == WeightFormat.Q8_0) | (p_fmt[s] == WeightFormat.INT8)),
                    row.eq(0), col.eq(0), expect_scale.eq(1), active.eq(1)]

        with m.If(~active):
            for s in range(2):
                with m.If((rsel == s) & full[s]):
                    m.d.sync += load_params(s)
        with m.If(take):
            with m.If(expect_scale):
                m.d.sync += [scale_reg.eq(adapter.beat_data), expect_scale.eq(0)]
            with m.Else():
                m.d.sync += expect_scale.eq(chunk_end)
                with m.If(row_last):
                    m.d.sync += [col.eq(0), row.eq(row + 1)]
                with m.Else():
                    m.d.sync += col.eq(col_end)
                with m.If(job_last):
                    # Hand the buffer back and go straight on with the next
                    # job if its activations are already in.
                    m.d.comb += clr_full.eq(Mux(rsel, 0b10, 0b01))
                    m.d.sync += [rsel.eq(~rsel), active.eq(0)]
                    for s in range(2):
                        with m.If((rsel != s) & full[s]):
                            m.d.sync += load_params(s)

        # Scale slots of the blocks this beat touches, per segment: the
        # float16 scale and the slot's second half (Q4_1 minimum or INT zero
        # point). Blocks past the row's end get scale and minimum 0 so that
        # padding in the stream can never contribute.
        block0 = col[5:]
        cblk0 = (col & chunk_mask)[5:]            # block index inside the chunk
        seg_h0 = [Signal(16, name=f"seg_h0_{j}") for j in range(nseg)]
        seg_x0 = [Signal(16, name=f"seg_x0_{j}") for j in range(nseg)]
        for j in range(nseg):
            slot = Signal(32, name=f"slot0_{j}")
            with m.Switch(kind):
                for k, (sbits, bps) in kinds.items():
                    nslots = B // sbits
                    idx = (cblk0 + j) >> exact_log2(bps)
                    with m.Case(k):
                        m.d.comb += slot.eq(scale_reg.word_select(idx[:exact_log2(nslots)]
                                                                  if nslots > 1 else Const(0, 1),
                                                                  sbits))
            inside = block0 + j < nblocks
            m.d.comb += [seg_h0[j].eq(Mux(inside, slot[:16], 0)),
                         seg_x0[j].eq(Mux(inside & (kind != 0), slot[16:], 0))]

        # Offset of the beat inside one row of the activation buffer, in
        # units of the beat's own element count.
        sub0 = Signal(8)
        sub4 = (col % row_cols) >> exact_log2(n4) if n4 < row_cols else Const(0, 1)
        sub8 = (col % row_cols) >> exact_log2(n8) if n8 < row_cols else Const(0, 1)
        m.d.comb += sub0.eq(Mux(is8, sub8, sub4))

        for _, rp in banks:
            m.d.comb += [rp.addr.eq(rsel * depth + (col >> exact_log2(row_cols))),
                         rp.en.eq(en)]

        v1 = Signal()
        word1 = Signal(B)
        fmt1 = Signal(3)
        is8_1 = Signal()
        sub1 = Signal(8)
        h1 = [Signal(16, name=f"h1_{j}") for j in range(nseg)]
        x1 = [Signal(16, name=f"x1_{j}") for j in range(nseg)]
        blk_first1, blk_last1 = Signal(), Signal()
        row_first1, row_last1, final1 = Signal(), Signal(), Signal()
        _stage(m, en, [
            (v1, take & ~expect_scale), (word1, adapter.beat_data), (fmt1, fmt),
            (is8_1, is8), (sub1, sub0),
            (blk_first1, col % BLOCK == 0), (blk_last1, col_end % BLOCK == 0),
            (row_first1, block0 == 0), (row_last1, row_last),
            (final1, job_last),
            *zip(h1, seg_h0), *zip(x1, seg_x0),
        ])

        # ---------------------------------------------------------------
        # Stage 1: activation data is out of the buffer; line up the lanes.
        mant_flat = Cat(*(rp.data.mant[i] for _, rp in banks for i in range(BLOCK)))
        exp_flat = Cat(*(rp.data.exp for _, rp in banks))
        msum_flat = Cat(*(rp.data.msum for _, rp in banks))
        msw = len(banks[0][1].data.msum)

        def select(flat, width, nel, per_block):
            """The slice of a buffer row that a beat of ``nel`` elements covers."""
            count = max(1, nel // BLOCK) if per_block else nel
            total = bpr if per_block else row_cols
            if count >= total:
                return flat[:count * width]
            return flat.word_select(sub1[:exact_log2(total // count)], count * width)

        mants4 = select(mant_flat, 16, n4, False)
        mants8 = select(mant_flat, 16, n8, False)
        exps4, exps8 = select(exp_flat, 8, n4, True), select(exp_flat, 8, n8, True)
        msum4, msum8 = select(msum_flat, msw, n4, True), select(msum_flat, msw, n8, True)

        # Per lane: v = q - z (z of the lane's segment), the integer the lane
        # multiplies; q is the nibble, the int8 (Q8_0) or the uint8 (INT8).
        q8_signed = fmt1 == WeightFormat.Q8_0
        zero1 = []
        for j in range(nseg):
            z = Signal(9, name=f"zero1_{j}")
            m.d.comb += z.eq(Mux(fmt1 == WeightFormat.Q4_0, 8,
                                 Mux((fmt1 == WeightFormat.INT4) | (fmt1 == WeightFormat.INT8),
                                     x1[j][:8], 0)))
            zero1.append(z)
        q2 = [Signal(signed(9), name=f"q2_{i}") for i in range(L)]
        m2 = [Signal(signed(16), name=f"m2_{i}") for i in range(L)]
        pairs = []
        for i in range(L):
            z = zero1[i // seg_lanes]
            nib = Cat(word1[4 * i:4 * i + 4], Const(0, 6)).as_signed()
            if i < n8 and has8:
                byte = word1[8 * i:8 * i + 8]
                code8 = Mux(q8_signed, byte.as_signed(), Cat(byte, Const(0, 2)).as_signed())
                code = Mux(is8_1, code8, nib) if has4 else code8
                mant = Mux(is8_1, mants8.word_select(i, 16), mants4.word_select(i, 16)) \
                    if has4 else mants8.word_select(i, 16)
            elif has4:
                code = Mux(is8_1, 0, nib)
                mant = Mux(is8_1, 0, mants4.word_select(i, 16))
            else:
                code, mant = Const(0, signed(2)), Const(0, signed(16))
            pairs += [(q2[i], code - z), (m2[i], mant.as_signed())]
        e2 = [Signal(signed(8), name=f"e2_{j}") for j in range(nseg)]
        ms2 = [Signal(signed(msw), name=f"ms2_{j}") for j in range(nseg)]
        for j in range(nseg):
            def seg(flat4, flat8, width):
                a = flat4.word_select(j, width) if (n4 // BLOCK) > j or j == 0 else Const(0, width)
                b = flat8.word_select(j, width) if (n8 // BLOCK) > j or j == 0 else Const(0, width)
                return Mux(is8_1, b, a)
            pairs += [(e2[j], seg(exps4, exps8, 8).as_signed()),
                      (ms2[j], seg(msum4, msum8, msw).as_signed())]
        v2 = Signal()
        h2 = [Signal(16, name=f"h2_{j}") for j in range(nseg)]
        mh2 = [Signal(16, name=f"mh2_{j}") for j in range(nseg)]
        is_q41 = fmt1 == WeightFormat.Q4_1
        flags1 = [blk_first1, blk_last1, row_first1, row_last1, final1]
        flags2 = [Signal(name=f"{s.name}_2") for s in flags1]
        pairs += [(v2, v1), *zip(h2, h1), *zip(flags2, flags1)]
        pairs += [(mh2[j], Mux(is_q41, x1[j], 0)) for j in range(nseg)]
        _stage(m, en, pairs)

        # ---------------------------------------------------------------
        # Stage 2: one product per lane (one DSP multiplier each, with its
        # own input and output registers, see lpaccel.rtl.dsp): two stages.
        # The scales, exponents and block sums ride alongside and are decoded
        # over these stages, so no stage holds more than one carry chain.
        def carry(prev_v, prev_side, prev_flags, tag):
            v = Signal(name=f"v{tag}")
            side = [Signal.like(s, name=f"{s.name.rstrip('0123456789_')}_{tag}")
                    for s in prev_side]
            fl = [Signal.like(s, name=f"{s.name.rstrip('0123456789_')}_{tag}")
                  for s in prev_flags]
            return v, side, fl, [(v, prev_v), *zip(side, prev_side), *zip(fl, prev_flags)]

        prod3r = [Signal(signed(25), name=f"prod3r_{i}") for i in range(L)]
        for i in range(L):
            m.submodules[f"mul{i}"] = mul = RegisteredMultiplier(16, 9)
            m.d.comb += [mul.en.eq(en), mul.a.eq(m2[i]), mul.b.eq(q2[i]),
                         prod3r[i].eq(mul.p)]
        v2r, side2r, flags2r, pairs = carry(v2, h2 + mh2 + e2 + ms2, flags2, "2r")
        _stage(m, en, pairs)
        h2r, mh2r = side2r[:nseg], side2r[nseg:2 * nseg]
        e2r, ms2r = side2r[2 * nseg:3 * nseg], side2r[3 * nseg:]

        # Per segment and per scale (d, and Q4_1's m): mantissa, sign, and
        # sh = ed + e + F; the next stages but one turn sh into a clamped
        # right shift of p << 39 (rsh = 39 - sh, within [0, max_rsh]).
        nsc = 2 if has_min else 1
        max_rsh = 41 + 39
        md3 = [[Signal(11, name=f"md{c}_{j}") for j in range(nseg)] for c in range(nsc)]
        neg3 = [[Signal(name=f"neg{c}_{j}") for j in range(nseg)] for c in range(nsc)]
        sh3 = [[Signal(signed(10), name=f"sh{c}_{j}") for j in range(nseg)]
               for c in range(nsc)]
        v3r, side3r, flags3r, pairs = carry(v2r, ms2r, flags2r, "3r")
        ms3r = side3r
        for c, hs in enumerate([h2r, mh2r][:nsc]):
            for j in range(nseg):
                h = hs[j]
                e_field = h[10:15]
                ed = Cat(Mux(e_field == 0, 1, e_field), Const(0, 1)).as_signed() - 25
                pairs += [(md3[c][j], Cat(h[:10], e_field != 0)), (neg3[c][j], h[15]),
                          (sh3[c][j], ed + e2r[j] + ACC_FRAC)]
        _stage(m, en, pairs)

        prod3 = [Signal(signed(25), name=f"prod3_{i}") for i in range(L)]
        sc_side = [s for c in range(nsc) for s in md3[c] + neg3[c] + sh3[c]]
        v3, side3, flags3, pairs = carry(v3r, sc_side + ms3r, flags3r, 3)
        _stage(m, en, pairs + list(zip(prod3, prod3r)))

        # Stages 3 and 4: adder trees, one per 32-lane segment; the shift
        # amounts are clamped alongside.
        part = min(8, seg_lanes)
        nparts = seg_lanes // part
        psum4 = [[Signal(signed(28), name=f"psum4_{j}_{p}") for p in range(nparts)]
                 for j in range(nseg)]
        v4 = Signal()
        side4 = []
        pairs = [(v4, v3)]
        for c in range(nsc):
            base = 3 * nseg * c
            for s_prev in side3[base:base + 2 * nseg]:          # md, neg
                s_new = Signal.like(s_prev, name=f"{s_prev.name}_4")
                pairs.append((s_new, s_prev))
                side4.append(s_new)
            for j, sh in enumerate(side3[base + 2 * nseg:base + 3 * nseg]):
                rsh = 39 - sh
                r4 = Signal(range(max_rsh + 1), name=f"rsh{c}_{j}")
                pairs.append((r4, Mux(rsh < 0, 0, Mux(rsh > max_rsh, max_rsh, rsh))))
                side4.append(r4)
        for s_prev in side3[3 * nseg * nsc:]:                   # block sums
            s_new = Signal.like(s_prev, name=f"{s_prev.name}_4")
            pairs.append((s_new, s_prev))
            side4.append(s_new)
        flags4 = [Signal.like(f, name=f"{f.name}_4") for f in flags3]
        pairs += list(zip(flags4, flags3))
        for j in range(nseg):
            for p in range(nparts):
                base = j * seg_lanes + p * part
                pairs.append((psum4[j][p], _tree(prod3[base:base + part])))
        _stage(m, en, pairs)

        ssum5 = [Signal(signed(30), name=f"ssum5_{j}") for j in range(nseg)]
        v5, side5, flags5, pairs = carry(v4, side4, flags4, 5)
        pairs += [(ssum5[j], _tree(psum4[j])) for j in range(nseg)]
        _stage(m, en, pairs)

        # Stage 5: a block spread over several beats (fewer than 32 weights
        # per beat) is summed here; the block's dot product leaves with its
        # last beat.
        blk_first5, blk_last5 = flags5[0], flags5[1]
        dot_acc = [Signal(signed(30), name=f"dot_acc_{j}") for j in range(nseg)]
        dot_sum = [Signal(signed(30), name=f"dot_sum_{j}") for j in range(nseg)]
        for j in range(nseg):
            m.d.comb += dot_sum[j].eq(Mux(blk_first5, 0, dot_acc[j]) + ssum5[j])
            with m.If(en & v5):
                m.d.sync += dot_acc[j].eq(dot_sum[j])
        dot6 = [Signal(signed(30), name=f"dot6_{j}") for j in range(nseg)]
        v6, side6, flags6, pairs = carry(v5 & blk_last5, side5, flags5, 6)
        pairs += [(dot6[j], dot_sum[j]) for j in range(nseg)]
        _stage(m, en, pairs)

        def unpack_side(side):
            out, k = [], 0
            for c in range(nsc):
                out.append((side[k:k + nseg], side[k + nseg:k + 2 * nseg],
                            side[k + 2 * nseg:k + 3 * nseg]))
                k += 3 * nseg
            return out, side[k:]

        sc6, ms6 = unpack_side(side6)

        # Stage 6: multiply by the scales' 11-bit mantissas: the block dot
        # product by d, and (Q4_1) the block's mantissa sum by m.
        operands = [dot6, ms6]
        p7 = [[Signal(signed(42), name=f"p7_{c}_{j}") for j in range(nseg)] for c in range(nsc)]
        keep = [s for c in range(nsc) for s in sc6[c][1] + sc6[c][2]]
        v7, side7, flags7, pairs = carry(v6, keep, flags6, 7)
        for c in range(nsc):
            pairs += [(p7[c][j], operands[c][j] * sc6[c][0][j]) for j in range(nseg)]
        _stage(m, en, pairs)
        row_first7, row_last7, final7 = flags7[2], flags7[3], flags7[4]

        # Stages 7 and 8: sign, then a two-step arithmetic shift into the
        # accumulator's fixed point (coarse multiples of 16, then 0..15).
        wide = ACC_BITS + 39
        nterms = nsc * nseg
        t8 = [Signal(signed(wide), name=f"t8_{t}") for t in range(nterms)]
        fine8 = [Signal(4, name=f"fine8_{t}") for t in range(nterms)]
        v8, rf8, rl8, fin8 = Signal(), Signal(), Signal(), Signal()
        pairs = [(v8, v7), (rf8, row_first7), (rl8, row_last7), (fin8, final7)]
        for c in range(nsc):
            neg7 = side7[2 * nseg * c:2 * nseg * c + nseg]
            rsh7 = side7[2 * nseg * c + nseg:2 * nseg * (c + 1)]
            for j in range(nseg):
                t = c * nseg + j
                signed_p = Mux(neg7[j], -p7[c][j], p7[c][j])
                shifted = (signed_p.as_signed() << 39) >> Cat(Const(0, 4), rsh7[j][4:])
                pairs += [(t8[t], shifted), (fine8[t], rsh7[j][:4])]
        _stage(m, en, pairs)

        term9 = [Signal(signed(ACC_BITS), name=f"term9_{t}") for t in range(nterms)]
        v9, rf9, rl9, fin9 = Signal(), Signal(), Signal(), Signal()
        pairs = [(v9, v8), (rf9, rf8), (rl9, rl8), (fin9, fin8)]
        pairs += [(term9[t], (t8[t] >> fine8[t])[:ACC_BITS].as_signed()) for t in range(nterms)]
        _stage(m, en, pairs)

        # Stage 9: add the block terms into the row accumulator.
        acc = Signal(signed(ACC_BITS))
        acc_next = Signal(signed(ACC_BITS))
        m.d.comb += acc_next.eq(Mux(rf9, 0, acc) + _tree(term9))
        with m.If(en & v9):
            m.d.sync += acc.eq(acc_next)

        # The finished row leaves from the registered accumulator; a next
        # row's first block may overwrite it on the same edge it is read.
        v10, fin10 = Signal(), Signal()
        _stage(m, en, [(v10, v9 & rl9), (fin10, fin9)])
        m.submodules.packer = packer = _Fp32Packer()
        m.d.comb += [
            packer.en.eq(en),
            packer.i_valid.eq(v10),
            packer.i_acc.eq(acc),
            packer.i_tag.eq(fin10),
        ]

        # Output register: the only place the pipeline can stall.
        _stage(m, en, [
            (self.results.valid, packer.o_valid),
            (self.results.payload.value, packer.o_value),
            (self.results.payload.last, packer.o_tag),
        ])
        return m
