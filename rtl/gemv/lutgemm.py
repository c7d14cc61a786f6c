"""LUT-GEMM datapath of BCQ jobs: lookup tables, table lookups, exact block sums.

A BCQ weight is a sum of binary planes times float16 scales
(``docs/arithmetic.md`` section 8). For every ``μ`` consecutive activations
(``μ = geometry.lut_width``) this block holds a table of the signed sums
``T[k] = Σ_{j<μ} (2 · bit_j(k) − 1) · m[j]``; since ``T[~k] = −T[k]`` only
the ``E = 2^(μ−1)`` entries with the top index bit clear are stored. A plane
beat of ``B`` bits is cut into ``NT = B / μ`` indices, each reading its own
table bank, and the ``32 / μ`` lookups of a block add up to the plane's block
dot product ``dot``. Per block the plane scale is applied by one multiply
(and, with an offset, the block's mantissa sum by the offset's), then the
planes of a tile are summed exactly into ``W`` (section 8.1), which leaves
on ``wide`` for :class:`~.accumulator.RowAccumulator`::

    load ─► entry writer (E cycles per block) ─► NT table banks, NB info memories
                                                      │ read (beat.tile, index)
    beat ─► c1 table addresses ─► c2 lookups ─► c3 block sums (inverted lookups)
            ─► c4..c6 × (±md << fine) ─► c6 coarse shift
            ─► c7 sum of the tile's planes, started from the offset term ─► c8 wide

Tables: bank ``n`` (``n = (block % NB) · 32/μ + c`` for chunk ``c`` of a
block) holds, at address ``(buffer · D + block // NB) · E + i``, entry ``i``
of its chunk: ``Σ_{j<μ−1} ±m[μc+j] − m[μc+μ−1]`` (``+`` where bit ``j`` of
``i`` is set). Memory shape ``signed(18)`` for ``μ = 4`` (``signed(19)`` for
``μ = 8``), depth ``2 · D · E``: at 32 lanes and ``max_cols`` 8192 each of
the 32 banks is 1024 × 18 bits, one ECP5 DP16KD. Beside them, per block slot
(``block % NB``) a memory of depth ``2 · D`` holds the block's exponent and
mantissa sum ``msum`` (the offset term's operand).

Multipliers: ``dot`` and ``msum`` are 21-bit signed, wider than a
MULT18X18D's 18 bits, so each product is split: the low 17 bits
(zero-extended) and the signed top 4 bits each go through a
:class:`~lpaccel.rtl.dsp.RegisteredMultiplier` whose other operand is the
scale's mantissa shifted by ``fine = u mod 7`` (at most 17 bits) with the
scale's sign; after the multipliers the two products are joined and shifted
by the rest of ``u`` (0, 7, .., 28). Four MULT18X18D per block (plane and
offset products): 16 at 32 lanes. The scales of blocks past the row's end
are 0, so their lookups (of whatever the tables hold there) add nothing.

Latency: ``wide`` is valid :attr:`LutGemm.LATENCY` (7) enabled cycles after
the ``beat`` that is its tile's last plane (cycle 8 of the engine timeline,
where :class:`~.blockdot.BlockDot`'s ``block`` is); every stage advances on
``en`` and the table read ports are enabled by ``en`` too. A block offered
on ``load`` is taken when ``ready`` (at most one every ``E`` cycles); its
entries reach the tables over the ``E`` cycles that follow two adder
stages, the last one with the block's exponent and ``msum``; ``settling``
is high until they are all in memory (``E + 3`` cycles after the take).
"""

from amaranth.hdl import Cat, Const, MemoryData, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..config import BLOCK, MSUM_BITS, WIDE_BITS
from ..dsp import RegisteredMultiplier
from ..utils import popcount, tree_reduce
from .pipeline import EngineBlock

__all__ = ["LutGemm", "LutLoadLayout", "BcqFlags"]

#: One activation block offered to the tables: the buffer it belongs to, its
#: index inside the job (``0 .. K/32 − 1``), mantissas and exponent.
LutLoadLayout = data.StructLayout({
    "buffer": 1,
    "block": unsigned(13),
    "mant": data.ArrayLayout(signed(16), BLOCK),
    "exp": signed(8),
})

#: Where a BCQ plane beat sits in its tile, row and job.
BcqFlags = data.StructLayout({
    "plane_first": 1,    # plane 0 of a tile: the tile's sum restarts, the offset is added
    "plane_last": 1,     # the tile's last plane: its sums leave on ``wide``
    "row_first": 1,
    "row_last": 1,
    "final": 1,
})

#: Signed width of a block dot product of one plane, or of a block's mantissa
#: sum: ``|dot|, |msum| <= 32 · 32767 < 2^20``.
BCQ_DOT_BITS = MSUM_BITS
#: Low bits of ``dot``/``msum`` that go (zero-extended) into one multiplier;
#: the signed rest goes into a second one.
LOW_BITS = 17
#: The shift ``u = max(E, 1) − 1`` (0 .. 30) of a scale is split as
#: ``u = COARSE_STEP · coarse + fine`` with ``fine <= COARSE_STEP - 1 = 6``:
#: ``md << fine`` (at most 17 bits) and its sign go into the multiplier's
#: 18-bit operand, so only a 5-way shift by ``0, 7, .., 28`` follows it.
COARSE_STEP = 7
#: Signed width of ``±md << fine``: one MULT18X18D operand.
MD_BITS = 18
#: Signed width of ``dot · (±md << fine)`` (``< 2^20 · 2^17``).
PRODUCT_BITS = 38
#: Signed width of one scaled term ``±md · dot · 2^u`` (``< 2^61``).
TERM_BITS = 62

#: A float16 scale decoded: ``±md << fine`` and the coarse shift.
Decoded = data.StructLayout({"md": signed(MD_BITS), "coarse": range(31 // COARSE_STEP + 1)})
#: What the per-block info memories hold.
BlockInfo = data.StructLayout({"exp": signed(8), "msum": signed(BCQ_DOT_BITS)})


def decode_f16(h):
    """Decode float16 bits ``h`` (``docs/arithmetic.md`` section 8.1) for the multiplier.

    ``|h| = md · 2^(u − 24)`` with ``md = frac + 1024·(E ≠ 0)`` and
    ``u = max(E, 1) − 1 = COARSE_STEP · coarse + fine``. Returns the
    fields of :data:`Decoded`: ``md << fine`` with the sign of ``h``, and
    ``coarse``.
    """
    e_field = h[10:15]
    md = Cat(h[:10], e_field != 0)
    split = [divmod(max(e, 1) - 1, COARSE_STEP) for e in range(32)]
    fine = Const(sum(f << (3 * e) for e, (_, f) in enumerate(split)), 96).word_select(e_field, 3)
    coarse = Const(sum(c << (3 * e) for e, (c, _) in enumerate(split)), 96).word_select(e_field, 3)
    shifted = md << fine
    return {"md": Mux(h[15], -shifted, shifted), "coarse": coarse}


class LutGemm(EngineBlock):
    """BCQ plane beats to exact block sums ``W`` by table lookups.

    Parameters
    ----------
    geometry : EngineGeometry
        Beat width, ``lut_width`` (``μ``), ``tile_blocks`` (``NB``) and
        ``tile_depth`` (``D``); BCQ must be built in.

    Attributes
    ----------
    en : In(1)
        Pipeline enable.
    load : In(stream.Signature(LutLoadLayout))
        Activation blocks of a BCQ job (from the loader). One block is
        taken every ``E = 2^(μ−1)`` cycles at most: ``ready`` is low while
        a block's entries are written (it rises again in the cycle the
        block's last entry is written), and while a valid ``beat`` of the
        same buffer waits for its table read.
    settling : Out(1)
        A taken block still has entries, its exponent or its ``msum`` to
        write.
    beat : In(LutGemm.beat_layout(geometry))
        A plane beat, registered (changes only when ``en``): ``valid``,
        ``buffer``, ``tile`` (column // B), the plane ``bits``, flags, and
        per block of the tile the plane scale ``alpha`` and the ``offset``
        (float16 bits; 0 past the row's end, or without offset).
    wide : Out(geometry.wide_layout)
        Valid :attr:`LATENCY` enabled cycles after a tile's ``plane_last``
        beat, with that beat's row flags and per block ``W`` and the
        block's activation exponent.

    Raises
    ------
    ValueError
        If the geometry has no BCQ format built in.
    """

    #: Enabled cycles from ``beat`` to ``wide``.
    LATENCY = 7

    LoadLayout = LutLoadLayout

    def __init__(self, geometry):
        if not geometry.has_bcq:
            raise ValueError("LutGemm needs a geometry with WeightFormat.BCQ in "
                             "config.formats; add it or do not build the LUT-GEMM datapath")
        mu = geometry.lut_width
        self.entries = 1 << (mu - 1)
        self.chunks = BLOCK // mu
        self.banks = geometry.beat_bits // mu
        #: Signed width of a table entry (``|T| <= μ · 32767``).
        self.entry_bits = 16 + exact_log2(mu)
        depth = 2 * geometry.tile_depth
        #: The table banks' contents, one ``MemoryData`` per bank (tests read
        #: and corrupt them through the simulator).
        self.tables = [MemoryData(shape=signed(self.entry_bits), depth=depth * self.entries,
                                  init=[])
                       for _ in range(self.banks)]
        #: Per block slot: the blocks' exponents and mantissa sums.
        self.infos = [MemoryData(shape=BlockInfo, depth=depth, init=[])
                      for _ in range(geometry.tile_blocks)]
        super().__init__(geometry, {
            "load": In(stream.Signature(LutLoadLayout)),
            "settling": Out(1),
            "beat": In(self.beat_layout(geometry)),
            "wide": Out(geometry.wide_layout),
        }, pipelined=True)

    @staticmethod
    def beat_layout(geometry):
        """A BCQ plane beat from the sequencer (stage 1 of the engine timeline)."""
        nb = geometry.tile_blocks
        return data.StructLayout({
            "valid": 1,
            "buffer": 1,
            "tile": unsigned(16),
            "bits": unsigned(geometry.beat_bits),
            "flags": BcqFlags,
            "alpha": data.ArrayLayout(unsigned(16), nb),
            "offset": data.ArrayLayout(unsigned(16), nb),
        })

    def _base(self, buffer, tile):
        """Row of a tile in both buffers: ``buffer * D + tile`` (no adder when
        ``D`` is a power of two)."""
        depth = self.geometry.tile_depth
        if depth & (depth - 1) == 0:
            return Cat(tile[:exact_log2(depth)], buffer)
        return Mux(buffer, depth, 0) + tile

    def elaborate(self, platform):
        m = Module()
        table_ports, info_ports = [], []
        for n, mem_data in enumerate(self.tables):
            m.submodules[f"table{n}"] = mem = Memory(data=mem_data)
            table_ports.append((mem.write_port(), mem.read_port(transparent_for=())))
        for k, mem_data in enumerate(self.infos):
            m.submodules[f"info{k}"] = mem = Memory(data=mem_data)
            info_ports.append((mem.write_port(), mem.read_port(transparent_for=())))
        self._elaborate_writer(m, [wp for wp, _ in table_ports], [wp for wp, _ in info_ports])
        self._elaborate_lookups(m, [rp for _, rp in table_ports], [rp for _, rp in info_ports])
        return m

    def _elaborate_writer(self, m, table_writes, info_writes):
        """The table writer: ``load`` to the tables' and info memories' write ports."""
        g = self.geometry
        mu, nent, nchunk = g.lut_width, self.entries, self.chunks
        nb, depth = g.tile_blocks, g.tile_depth
        nb_bits = exact_log2(nb)

        # Table writer: a taken block is written over the next E cycles,
        # entry `count` of all its chunks per cycle, through two adder stages
        # (w1, w2); its exponent and mantissa sum (formed from the entries 0)
        # with the last entry.
        cur = Signal(LutLoadLayout, name="load_block")
        busy = Signal()
        count = Signal(range(nent))
        last = Signal()
        # A buffer's tables are read one stage after the beat (c1 -> c2), and
        # the sequencer frees a buffer when it takes the buffer's last beat:
        # while that beat waits at c1 (`en` low), no block of the buffer's
        # next job may be taken, or its entries could overwrite the ones the
        # beat is about to read.
        hazard = Signal()
        m.d.comb += [hazard.eq(self.beat.valid & (self.beat.buffer == self.load.payload.buffer)),
                     last.eq(count == nent - 1),
                     self.load.ready.eq((~busy | last) & ~hazard)]
        with m.If(busy):
            m.d.sync += count.eq(count + 1)
            with m.If(last):
                m.d.sync += busy.eq(0)
        with m.If(self.load.valid & self.load.ready):
            m.d.sync += [cur.eq(self.load.payload), busy.eq(1), count.eq(0)]

        # Σ ±m[j] with -m = ~m + 1: the inverted mantissas and the count of
        # minus signs, in halves of μ/2 terms (w1), then the halves and the
        # count of ones (w2): no negators, at most two adder levels a stage.
        half = mu // 2
        part_bits = 16 + exact_log2(half)
        write_layout = data.StructLayout({
            "valid": 1, "first": 1, "last": 1, "slot": max(1, nb_bits),
            "addr": range(2 * depth * nent), "base": range(2 * depth), "exp": signed(8),
        })
        w1 = Signal(data.StructLayout({
            **write_layout.members, "ones": range(mu + 1),
            "halves": data.ArrayLayout(data.ArrayLayout(signed(part_bits), 2), nchunk),
        }), name="write_1")
        w2 = Signal(data.StructLayout({
            **write_layout.members,
            "entries": data.ArrayLayout(signed(self.entry_bits), nchunk),
        }), name="write_2")
        minus = Signal(mu, name="minus")
        wbase = Signal(range(2 * depth), name="write_base")
        m.d.comb += [minus.eq(Cat(~count[:mu - 1], Const(1, 1))),
                     wbase.eq(self._base(cur.buffer, cur.block[nb_bits:]))]
        common = ["valid", "first", "last", "slot", "addr", "base", "exp"]
        m.d.sync += [w1.valid.eq(busy), w1.first.eq(count == 0), w1.last.eq(last),
                     w1.slot.eq(cur.block[:nb_bits] if nb > 1 else 0),
                     w1.addr.eq(Cat(count, wbase)), w1.base.eq(wbase), w1.exp.eq(cur.exp),
                     w1.ones.eq(popcount(minus)),
                     *(getattr(w2, name).eq(getattr(w1, name)) for name in common)]
        for c in range(nchunk):
            terms = [(cur.mant[mu * c + j].as_unsigned() ^ minus[j].replicate(16)).as_signed()
                     for j in range(mu)]
            m.d.sync += [w1.halves[c][h].eq(tree_reduce(terms[half * h:half * (h + 1)]))
                         for h in range(2)]
            m.d.sync += w2.entries[c].eq(w1.halves[c][0] + w1.halves[c][1] + w1.ones)

        # Entry 0 of a chunk is minus the sum of its mantissas: the block's
        # mantissa sum, over two more stages, long before its last entry.
        msum_halves = Signal(data.ArrayLayout(signed(BCQ_DOT_BITS), 2), name="msum_halves")
        msum_first = Signal()
        msum = Signal(signed(BCQ_DOT_BITS))
        m.d.sync += msum_first.eq(w2.valid & w2.first)
        with m.If(w2.valid & w2.first):
            m.d.sync += [msum_halves[h].eq(tree_reduce(
                w2.entries[c] for c in range(nchunk)[h * nchunk // 2:(h + 1) * nchunk // 2]))
                for h in range(2)]
        with m.If(msum_first):
            m.d.sync += msum.eq(-(msum_halves[0] + msum_halves[1]))
        m.d.comb += self.settling.eq(busy | w1.valid | w2.valid)

        for n, wp in enumerate(table_writes):
            k, c = divmod(n, nchunk)
            m.d.comb += [wp.addr.eq(w2.addr), wp.data.eq(w2.entries[c]),
                         wp.en.eq(w2.valid & (w2.slot == k))]
        for k, wp in enumerate(info_writes):
            m.d.comb += [wp.addr.eq(w2.base), wp.data.exp.eq(w2.exp), wp.data.msum.eq(msum),
                         wp.en.eq(w2.valid & w2.last & (w2.slot == k))]

    def _elaborate_lookups(self, m, table_reads, info_reads):
        """The pipeline from ``beat`` through the tables' read ports to ``wide``."""
        g = self.geometry
        mu, nchunk, nbank = g.lut_width, self.chunks, self.banks
        nb, depth = g.tile_blocks, g.tile_depth
        en = self.en

        def stage(*pairs):
            with m.If(en):
                m.d.sync += [dst.eq(src) for dst, src in pairs]

        # c1: the beat's table addresses; an index with its top bit set reads
        # the entry of its complement (T[k] = -T[~k]).
        beat = self.beat
        rbase = Signal(range(2 * depth), name="read_base")
        m.d.comb += rbase.eq(self._base(beat.buffer, beat.tile))
        tops = Signal(nbank)
        for n, rp in enumerate(table_reads):
            index = beat.bits[mu * n:mu * (n + 1)]
            top = index[mu - 1]
            m.d.comb += [tops[n].eq(top),
                         rp.addr.eq(Cat(Mux(top, ~index[:mu - 1], index[:mu - 1]), rbase)),
                         rp.en.eq(en)]
        for rp in info_reads:
            m.d.comb += [rp.addr.eq(rbase), rp.en.eq(en)]

        def side(name, **fields):
            return Signal(data.StructLayout({"valid": 1, "flags": BcqFlags, **fields}),
                          name=name)

        scales = data.ArrayLayout(Decoded, nb)
        s2 = side("bcq_2", tops=nbank, alpha=beat.alpha.shape(), offset=beat.offset.shape())
        stage((s2.valid, beat.valid), (s2.flags, beat.flags), (s2.tops, tops),
              (s2.alpha, beat.alpha), (s2.offset, beat.offset))

        # c2: lookups out of the tables, registered as they are (a block RAM's
        # output is slow); the scales decoded alongside.
        s3 = side("bcq_3", look=data.ArrayLayout(signed(self.entry_bits), nbank), tops=nbank,
                  scale=scales, oscale=scales, info=data.ArrayLayout(BlockInfo, nb))
        pairs = [(s3.valid, s2.valid), (s3.flags, s2.flags), (s3.tops, s2.tops)]
        for n, rp in enumerate(table_reads):
            pairs.append((s3.look[n], rp.data))
        for k, rp in enumerate(info_reads):
            pairs.append((s3.info[k], rp.data))
            for dst, h in ((s3.scale[k], s2.alpha[k]), (s3.oscale[k], s2.offset[k])):
                fields = decode_f16(h)
                pairs += [(dst.md, fields["md"]), (dst.coarse, fields["coarse"])]
        stage(*pairs)

        # c3: the 32/μ lookups of each block, inverted by their index's top
        # bit (-T = ~T + 1), add up to its dot product; c4: the ones are
        # added on the way into the multipliers, which keeps c3 at three
        # adder levels. (Two half-sums added at c4 instead cost ~1800 more
        # LUT4s after Yosys/ABC.)
        s4 = side("bcq_4", dot=data.ArrayLayout(signed(BCQ_DOT_BITS), nb),
                  ones=data.ArrayLayout(range(nchunk + 1), nb),
                  scale=scales, oscale=scales, info=data.ArrayLayout(BlockInfo, nb))
        pairs = [(s4.valid, s3.valid), (s4.flags, s3.flags), (s4.scale, s3.scale),
                 (s4.oscale, s3.oscale), (s4.info, s3.info)]
        for k in range(nb):
            banks = range(k * nchunk, (k + 1) * nchunk)
            looks = [(s3.look[n].as_unsigned() ^ s3.tops[n].replicate(self.entry_bits))
                     .as_signed() for n in banks]
            ones = popcount(Cat(s3.tops[n] for n in banks))
            pairs += [(s4.dot[k], tree_reduce(looks)), (s4.ones[k], ones)]
        stage(*pairs)
        dots = Signal(data.ArrayLayout(signed(BCQ_DOT_BITS), nb), name="bcq_dot")
        m.d.comb += [dots[k].eq(s4.dot[k] + s4.ones[k]) for k in range(nb)]

        # c4 -> c6: dot * (md << fine) and msum * (md_o << fine_o), each split
        # into a low and a high product (21-bit operands, 18-bit multipliers).
        products = []
        for k in range(nb):
            pair = []
            for name, operand, scale in (("plane", dots[k], s4.scale[k]),
                                         ("offset", s4.info[k].msum, s4.oscale[k])):
                lo = RegisteredMultiplier(LOW_BITS + 1, MD_BITS)
                hi = RegisteredMultiplier(BCQ_DOT_BITS - LOW_BITS, MD_BITS)
                m.submodules[f"{name}{k}_lo"] = lo
                m.submodules[f"{name}{k}_hi"] = hi
                m.d.comb += [lo.en.eq(en), lo.a.eq(Cat(operand[:LOW_BITS], Const(0, 1))),
                             lo.b.eq(scale.md),
                             hi.en.eq(en), hi.a.eq(operand[LOW_BITS:]), hi.b.eq(scale.md)]
                pair.append((lo.p, hi.p))
            products.append(pair)

        coarse = Decoded.members["coarse"]
        shifts = data.ArrayLayout(data.StructLayout({"coarse": coarse, "coarse_o": coarse,
                                                     "exp": signed(8)}), nb)
        s5 = side("bcq_5", blk=shifts)
        s6 = side("bcq_6", blk=shifts)
        pairs = [(s5.valid, s4.valid), (s5.flags, s4.flags)]
        for k in range(nb):
            pairs += [(s5.blk[k].coarse, s4.scale[k].coarse),
                      (s5.blk[k].coarse_o, s4.oscale[k].coarse),
                      (s5.blk[k].exp, s4.info[k].exp)]
        stage(*pairs)
        stage((s6, s5))

        # c6: the two halves of each product joined, then the coarse shift.
        s7 = side("bcq_7", plane=data.ArrayLayout(signed(TERM_BITS), nb),
                  off=data.ArrayLayout(signed(TERM_BITS), nb),
                  exp=data.ArrayLayout(signed(8), nb))

        def scaled(lo_hi, coarse, name):
            lo, hi = lo_hi
            p = Signal(signed(PRODUCT_BITS), name=name)
            term = Signal(signed(TERM_BITS), name=f"{name}_shifted")
            m.d.comb += p.eq((hi << LOW_BITS) + lo)
            with m.Switch(coarse):
                for c in range(31 // COARSE_STEP + 1):
                    with m.Case(c):
                        m.d.comb += term.eq(p << (COARSE_STEP * c))
            return term

        pairs = [(s7.valid, s6.valid), (s7.flags, s6.flags)]
        for k in range(nb):
            plane, offset = products[k]
            pairs += [(s7.plane[k], scaled(plane, s6.blk[k].coarse, f"plane{k}_p")),
                      (s7.off[k], scaled(offset, s6.blk[k].coarse_o, f"offset{k}_p")),
                      (s7.exp[k], s6.blk[k].exp)]
        stage(*pairs)

        # c7: the planes of a tile summed exactly, starting from the offset
        # term on the first plane; W leaves with the last plane.
        acc = Signal(data.ArrayLayout(signed(WIDE_BITS), nb), name="bcq_acc")
        with m.If(en & s7.valid):
            m.d.sync += [acc[k].eq(Mux(s7.flags.plane_first, s7.off[k], acc[k]) + s7.plane[k])
                         for k in range(nb)]
        wide = self.wide
        stage((wide.valid, s7.valid & s7.flags.plane_last),
              (wide.flags.row_first, s7.flags.row_first),
              (wide.flags.row_last, s7.flags.row_last),
              (wide.flags.final, s7.flags.final),
              *((wide.terms[k].exp, s7.exp[k]) for k in range(nb)))
        m.d.comb += [wide.terms[k].w.eq(acc[k]) for k in range(nb)]
