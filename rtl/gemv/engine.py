"""Quantized GEMV engine: ``y = W · x`` with GGUF Q4_0/Q8_0 weights.

The arithmetic is defined in ``docs/arithmetic.md`` and mirrored exactly by
:mod:`lpaccel.sim.golden`; the weight stream layout is section 6 of that
page and is produced by :mod:`lpaccel.sim.repack`.
"""

import enum

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..config import ACC_BITS, ACC_FRAC, BLOCK, GemvConfig, WeightFormat
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
    #: ``cols`` is zero or not a multiple of 32.
    BAD_COLS = 2
    #: ``cols`` exceeds the activation buffer (``config.max_cols``).
    COLS_TOO_LARGE = 3
    #: ``rows`` is zero or exceeds ``config.max_rows``.
    BAD_ROWS = 4


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


class GemvEngine(wiring.Component):
    """Quantized matrix-vector product engine (GGUF Q4_0 and Q8_0).

    Computes ``y = W · x`` for one job at a time: the job descriptor, then
    ``cols / 32`` activation blocks (16-bit block floating point), then the
    repacked weight stream. One weight word is consumed per cycle whenever
    one is offered and the result stream is not stalled. One FP32 result per
    row leaves on ``results``, in row order.

    Parameters
    ----------
    config : GemvConfig
        Lane count and buffer sizes.

    Attributes
    ----------
    job : In(stream.Signature(JobLayout))
        ``fmt`` (:class:`WeightFormat` code), ``rows`` and ``cols``.
        Accepted only while the engine is idle.
    activations : In(stream.Signature(ActivationLayout))
        One BFP16 block per beat: 32 int16 mantissas and an int8 exponent.
    weights : In(stream.Signature(unsigned(config.word_bits)))
        Repacked weight words (``docs/arithmetic.md`` section 6).
    results : Out(stream.Signature(ResultLayout))
        FP32 bits of one row's result; ``last`` marks the final row.
    busy : Out(1)
        High from job acceptance until the last result has been taken.
    error : Out(3)
        Sticky :class:`GemvError` code of the last rejected job.
    error_clear : In(1)
        Clears ``error``.
    """

    JobLayout = data.StructLayout({
        "fmt": unsigned(3),
        "rows": unsigned(16),
        "cols": unsigned(17),
    })
    ActivationLayout = data.StructLayout({
        "mant": data.ArrayLayout(signed(16), BLOCK),
        "exp": signed(8),
    })
    ResultLayout = data.StructLayout({
        "value": unsigned(32),
        "last": unsigned(1),
    })

    #: Formats this engine implements, in :class:`WeightFormat` codes.
    FORMATS = (WeightFormat.Q4_0, WeightFormat.Q8_0)

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
        W = cfg.word_bits
        bpr = cfg.blocks_per_row
        nseg = max(1, L // BLOCK)          # adder-tree segments = scale units
        seg_lanes = min(L, BLOCK)
        depth = cfg.max_cols // (BLOCK * bpr)
        chunk_cols = cfg.scales_per_word * BLOCK   # columns covered by one scale word

        # Per format: elements per quant word and blocks per quant word.
        n_of = {f: cfg.elements_per_word(f) for f in self.FORMATS}

        # ---------------------------------------------------------------
        # Activation buffer: bpr banks, block b in bank b % bpr at b // bpr.
        banks = []
        for k in range(bpr):
            mem = Memory(shape=self.ActivationLayout, depth=depth, init=[])
            m.submodules[f"act_bank{k}"] = mem
            banks.append((mem.write_port(), mem.read_port(transparent_for=())))

        # ---------------------------------------------------------------
        # Job control.
        fmt = Signal(3)
        rows = Signal(16)
        cols = Signal(17)
        nblocks = Signal(13)
        ld_blk = Signal(13)
        row = Signal(16)
        col = Signal(18)
        expect_scale = Signal()
        scale_reg = Signal(W)

        # The whole datapath advances together; it stops only when a result
        # is waiting and not taken.
        en = Signal()
        m.d.comb += en.eq(~(self.results.valid & ~self.results.ready))

        with m.If(self.error_clear):
            m.d.sync += self.error.eq(GemvError.NONE)

        job = self.job.payload
        fmt_ok = Signal()
        m.d.comb += fmt_ok.eq(Cat(*(job.fmt == f for f in self.FORMATS)).any())

        take = Signal()          # a weight word is accepted this cycle
        final_out = Signal()     # the last result of the job is being taken
        m.d.comb += [
            take.eq(self.weights.valid & self.weights.ready),
            final_out.eq(self.results.valid & self.results.ready &
                         self.results.payload.last),
        ]

        # ---------------------------------------------------------------
        # Stage 0: decode the accepted word's position in the stream.
        word = self.weights.payload
        n = Signal(range(W + 1))
        m.d.comb += n.eq(Mux(fmt == WeightFormat.Q8_0,
                             n_of[WeightFormat.Q8_0], n_of[WeightFormat.Q4_0]))
        col_end = Signal(18)
        row_last = Signal()
        chunk_end = Signal()
        m.d.comb += [
            col_end.eq(col + n),
            row_last.eq(col_end >= cols),
            chunk_end.eq(row_last | (col_end % chunk_cols == 0)),
        ]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.job.ready.eq(1)
                with m.If(self.job.valid):
                    with m.If(~fmt_ok):
                        m.d.sync += self.error.eq(GemvError.BAD_FORMAT)
                    with m.Elif((job.cols == 0) | (job.cols[:5] != 0)):
                        m.d.sync += self.error.eq(GemvError.BAD_COLS)
                    with m.Elif(job.cols > cfg.max_cols):
                        m.d.sync += self.error.eq(GemvError.COLS_TOO_LARGE)
                    with m.Elif((job.rows == 0) | (job.rows > cfg.max_rows)):
                        m.d.sync += self.error.eq(GemvError.BAD_ROWS)
                    with m.Else():
                        m.d.sync += [
                            fmt.eq(job.fmt), rows.eq(job.rows), cols.eq(job.cols),
                            nblocks.eq(job.cols[5:]), ld_blk.eq(0),
                        ]
                        m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += [self.busy.eq(1), self.activations.ready.eq(1)]
                with m.If(self.activations.valid):
                    m.d.sync += ld_blk.eq(ld_blk + 1)
                    with m.If(ld_blk == nblocks - 1):
                        m.d.sync += [row.eq(0), col.eq(0), expect_scale.eq(1)]
                        m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [self.busy.eq(1), self.weights.ready.eq(en)]
                with m.If(take):
                    with m.If(expect_scale):
                        m.d.sync += [scale_reg.eq(word), expect_scale.eq(0)]
                    with m.Else():
                        m.d.sync += expect_scale.eq(chunk_end)
                        with m.If(row_last):
                            m.d.sync += [col.eq(0), row.eq(row + 1)]
                            with m.If(row == rows - 1):
                                m.next = "DRAIN"
                        with m.Else():
                            m.d.sync += col.eq(col_end)
            with m.State("DRAIN"):
                m.d.comb += self.busy.eq(1)
                with m.If(final_out):
                    m.next = "IDLE"

        for k, (wp, _) in enumerate(banks):
            m.d.comb += [
                wp.addr.eq(ld_blk >> exact_log2(bpr)),
                wp.data.eq(self.activations.payload),
                wp.en.eq(self.activations.valid & self.activations.ready &
                         ((ld_blk % bpr == k) if bpr > 1 else 1)),
            ]

        # Scales of the blocks this word touches, zeroed for blocks past the
        # row's end so that padding in the stream can never contribute.
        block0 = col[5:]
        slot0 = (col % chunk_cols)[5:]
        scales_sel = {}
        for f in self.FORMATS:
            nbw = max(1, n_of[f] // BLOCK)
            group = scale_reg.word_select(slot0 >> exact_log2(nbw), 16 * nbw)
            scales_sel[f] = [group[16 * j:16 * (j + 1)] if j < nbw else Const(0, 16)
                             for j in range(nseg)]
        seg_scale0 = [Signal(16, name=f"seg_scale0_{j}") for j in range(nseg)]
        for j in range(nseg):
            raw = Mux(fmt == WeightFormat.Q8_0,
                      scales_sel[WeightFormat.Q8_0][j], scales_sel[WeightFormat.Q4_0][j])
            m.d.comb += seg_scale0[j].eq(Mux(block0 + j < nblocks, raw, 0))

        # Offset of the word inside one row of the activation buffer, in
        # units of the word's own element count.
        row_cols = BLOCK * bpr
        sub0 = Signal(8)
        with m.If(fmt == WeightFormat.Q8_0):
            m.d.comb += sub0.eq((col % row_cols) >> exact_log2(n_of[WeightFormat.Q8_0]))
        with m.Else():
            m.d.comb += sub0.eq((col % row_cols) >> exact_log2(n_of[WeightFormat.Q4_0]))

        for _, rp in banks:
            m.d.comb += [rp.addr.eq(col >> exact_log2(row_cols)), rp.en.eq(en)]

        v1 = Signal()
        word1 = Signal(W)
        fmt1 = Signal(3)
        sub1 = Signal(8)
        scale1 = [Signal(16, name=f"scale1_{j}") for j in range(nseg)]
        blk_first1, blk_last1 = Signal(), Signal()
        row_first1, row_last1, final1 = Signal(), Signal(), Signal()
        _stage(m, en, [
            (v1, take & ~expect_scale), (word1, word), (fmt1, fmt), (sub1, sub0),
            (blk_first1, col % BLOCK == 0), (blk_last1, col_end % BLOCK == 0),
            (row_first1, block0 == 0), (row_last1, row_last),
            (final1, row_last & (row == rows - 1)),
            *zip(scale1, seg_scale0),
        ])

        # ---------------------------------------------------------------
        # Stage 1: activation data is out of the buffer; line up the lanes.
        mant_flat = Cat(*(rp.data.mant[i] for _, rp in banks for i in range(BLOCK)))
        exp_flat = Cat(*(rp.data.exp for _, rp in banks))

        def lane_operands(f):
            nf = n_of[f]
            qb = f.qbits
            mants = mant_flat.word_select(sub1, 16 * nf) if nf < row_cols else mant_flat
            nbw = max(1, nf // BLOCK)
            exps = exp_flat.word_select(sub1, 8 * nbw) if nbw < bpr else exp_flat[:8 * nbw]
            qs, ms = [], []
            for i in range(L):
                if i < nf:
                    bits = word1[qb * i:qb * (i + 1)]
                    if f == WeightFormat.Q4_0:
                        q = Cat(bits[:3], ~bits[3]).as_signed()   # nibble - 8
                    else:
                        q = bits.as_signed()
                    qs.append(q)
                    ms.append(mants[16 * i:16 * (i + 1)].as_signed())
                else:
                    qs.append(Const(0, signed(8)))
                    ms.append(Const(0, signed(16)))
            es = [exps[8 * j:8 * (j + 1)].as_signed() if j < nbw else Const(0, signed(8))
                  for j in range(nseg)]
            return qs, ms, es

        ops = {f: lane_operands(f) for f in self.FORMATS}
        is_q8 = fmt1 == WeightFormat.Q8_0
        q2 = [Signal(signed(8), name=f"q2_{i}") for i in range(L)]
        m2 = [Signal(signed(16), name=f"m2_{i}") for i in range(L)]
        e2 = [Signal(signed(8), name=f"e2_{j}") for j in range(nseg)]
        sel = lambda a, b: Mux(is_q8, a, b)
        v2 = Signal()
        scale2 = [Signal(16, name=f"scale2_{j}") for j in range(nseg)]
        flags1 = [blk_first1, blk_last1, row_first1, row_last1, final1]
        flags2 = [Signal(name=f"{s.name}_2") for s in flags1]
        _stage(m, en, [
            (v2, v1),
            *[(q2[i], sel(ops[WeightFormat.Q8_0][0][i], ops[WeightFormat.Q4_0][0][i]))
              for i in range(L)],
            *[(m2[i], sel(ops[WeightFormat.Q8_0][1][i], ops[WeightFormat.Q4_0][1][i]))
              for i in range(L)],
            *[(e2[j], sel(ops[WeightFormat.Q8_0][2][j], ops[WeightFormat.Q4_0][2][j]))
              for j in range(nseg)],
            *zip(scale2, scale1), *zip(flags2, flags1),
        ])

        # ---------------------------------------------------------------
        # Stage 2: one product per lane (one DSP multiplier each). The
        # block scales and exponents ride alongside; they are decoded over
        # the next two stages so that no stage holds more than one carry chain.
        def carry(prev_v, prev_side, prev_flags, tag):
            v = Signal(name=f"v{tag}")
            side = [Signal.like(s, name=f"{s.name.rstrip('0123456789_')}_{tag}")
                    for s in prev_side]
            fl = [Signal.like(s, name=f"{s.name.rstrip('0123456789_')}_{tag}")
                  for s in prev_flags]
            return v, side, fl, [(v, prev_v), *zip(side, prev_side), *zip(fl, prev_flags)]

        # One multiplier per lane, with its own input and output registers
        # (inside the DSP block on ECP5, see lpaccel.rtl.dsp): two stages.
        # The block scales and exponents ride alongside and are decoded over
        # these stages, so no stage holds more than one carry chain.
        prod3r = [Signal(signed(24), name=f"prod3r_{i}") for i in range(L)]
        for i in range(L):
            m.submodules[f"mul{i}"] = mul = RegisteredMultiplier(16, 8)
            m.d.comb += [mul.en.eq(en), mul.a.eq(m2[i]), mul.b.eq(q2[i]),
                         prod3r[i].eq(mul.p)]
        v2r, side2r, flags2r, pairs = carry(v2, scale2 + e2, flags2, "2r")
        _stage(m, en, pairs)
        scale2r, e2r = side2r[:nseg], side2r[nseg:]

        # Per segment: the scale's mantissa and sign, and sh = ed + e + F.
        md3 = [Signal(11, name=f"md_{j}") for j in range(nseg)]
        neg3 = [Signal(name=f"neg_{j}") for j in range(nseg)]
        sh3 = [Signal(signed(10), name=f"sh_{j}") for j in range(nseg)]
        v3r, _, flags3r, pairs = carry(v2r, [], flags2r, "3r")
        for j in range(nseg):
            h = scale2r[j]
            e_field = h[10:15]
            ed = Cat(Mux(e_field == 0, 1, e_field), Const(0, 1)).as_signed() - 25
            pairs += [(md3[j], Cat(h[:10], e_field != 0)), (neg3[j], h[15]),
                      (sh3[j], ed + e2r[j] + ACC_FRAC)]
        _stage(m, en, pairs)

        prod3 = [Signal(signed(24), name=f"prod3_{i}") for i in range(L)]
        v3, side3, flags3, pairs = carry(v3r, md3 + neg3 + sh3, flags3r, 3)
        _stage(m, en, pairs + list(zip(prod3, prod3r)))
        md3, neg3, sh3 = side3[:nseg], side3[nseg:2 * nseg], side3[2 * nseg:]

        # Stages 3 and 4: adder trees, one per 32-lane segment.
        def tree(values):
            while len(values) > 1:
                values = [(values[k] + values[k + 1]) for k in range(0, len(values), 2)]
            return values[0]

        # The shifter below computes (p << 39) >> rsh with rsh = 39 - sh,
        # clamped to [0, max_rsh]: past max_rsh every bit of p is gone, and
        # sh > 39 only arises from exponents outside the contract.
        max_rsh = 41 + 39
        rsh4 = [Signal(range(max_rsh + 1), name=f"rsh_{j}") for j in range(nseg)]
        part = min(8, seg_lanes)
        nparts = seg_lanes // part
        psum4 = [[Signal(signed(27), name=f"psum4_{j}_{p}") for p in range(nparts)]
                 for j in range(nseg)]
        v4, side4, flags4, pairs = carry(v3, md3 + neg3, flags3, 4)
        for j in range(nseg):
            rsh = 39 - sh3[j]
            pairs.append((rsh4[j], Mux(rsh < 0, 0, Mux(rsh > max_rsh, max_rsh, rsh))))
            for p in range(nparts):
                base = j * seg_lanes + p * part
                pairs.append((psum4[j][p], tree(prod3[base:base + part])))
        _stage(m, en, pairs)

        ssum5 = [Signal(signed(29), name=f"ssum5_{j}") for j in range(nseg)]
        v5, side5, flags5, pairs = carry(v4, side4 + rsh4, flags4, 5)
        pairs += [(ssum5[j], tree(psum4[j])) for j in range(nseg)]
        _stage(m, en, pairs)

        # Stage 5: a block spread over several words (fewer than 32 weights
        # per word) is summed here; the block's dot product leaves with its
        # last word.
        blk_first5, blk_last5 = flags5[0], flags5[1]
        dot_acc = [Signal(signed(29), name=f"dot_acc_{j}") for j in range(nseg)]
        dot_sum = [Signal(signed(29), name=f"dot_sum_{j}") for j in range(nseg)]
        for j in range(nseg):
            m.d.comb += dot_sum[j].eq(Mux(blk_first5, 0, dot_acc[j]) + ssum5[j])
            with m.If(en & v5):
                m.d.sync += dot_acc[j].eq(dot_sum[j])
        dot6 = [Signal(signed(29), name=f"dot6_{j}") for j in range(nseg)]
        v6, side6, flags6, pairs = carry(v5 & blk_last5, side5, flags5, 6)
        pairs += [(dot6[j], dot_sum[j]) for j in range(nseg)]
        _stage(m, en, pairs)
        md6, neg6, rsh6 = side6[:nseg], side6[nseg:2 * nseg], side6[2 * nseg:]

        # Stage 6: multiply by the scale's 11-bit mantissa.
        p7 = [Signal(signed(41), name=f"p7_{j}") for j in range(nseg)]
        v7, side7, flags7, pairs = carry(v6, neg6 + rsh6, flags6, 7)
        neg7, rsh7 = side7[:nseg], side7[nseg:]
        row_first7, row_last7, final7 = flags7[2], flags7[3], flags7[4]
        pairs += [(p7[j], dot6[j] * md6[j]) for j in range(nseg)]
        _stage(m, en, pairs)

        # Stages 7 and 8: sign, then a two-step arithmetic shift into the
        # accumulator's fixed point (coarse multiples of 16, then 0..15).
        wide = ACC_BITS + 39
        t8 = [Signal(signed(wide), name=f"t8_{j}") for j in range(nseg)]
        fine8 = [Signal(4, name=f"fine8_{j}") for j in range(nseg)]
        v8, rf8, rl8, fin8 = Signal(), Signal(), Signal(), Signal()
        pairs = [(v8, v7), (rf8, row_first7), (rl8, row_last7), (fin8, final7)]
        for j in range(nseg):
            signed_p = Mux(neg7[j], -p7[j], p7[j])
            shifted = (signed_p.as_signed() << 39) >> Cat(Const(0, 4), rsh7[j][4:])
            pairs += [(t8[j], shifted), (fine8[j], rsh7[j][:4])]
        _stage(m, en, pairs)

        term9 = [Signal(signed(ACC_BITS), name=f"term9_{j}") for j in range(nseg)]
        v9, rf9, rl9, fin9 = Signal(), Signal(), Signal(), Signal()
        pairs = [(v9, v8), (rf9, rf8), (rl9, rl8), (fin9, fin8)]
        pairs += [(term9[j], (t8[j] >> fine8[j])[:ACC_BITS].as_signed()) for j in range(nseg)]
        _stage(m, en, pairs)

        # Stage 9: add the block terms into the row accumulator.
        acc = Signal(signed(ACC_BITS))
        acc_next = Signal(signed(ACC_BITS))
        terms = tree(list(term9))
        m.d.comb += acc_next.eq(Mux(rf9, 0, acc) + terms)
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
