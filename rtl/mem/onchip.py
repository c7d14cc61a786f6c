"""On-chip memory behind an AXI4 subordinate port.

Two backends share one AXI4 front end (:class:`AxiMemoryFrontEnd`):

* :class:`AxiSram` on block RAM (``amaranth.lib.memory``, one read and one
  write port): one beat per cycle sustained on reads and on writes at the
  same time.
* :class:`AxiSpram` on iCE40 UltraPlus SPRAM (``SB_SPRAM256KA``, 16K x 16
  bit single-port blocks ganged to the data width and stacked in depth).
  The blocks have one port, so a read beat and a write beat in the same
  cycle take turns (writes first): one beat per cycle in total.

Both answer INCR bursts of 1 to 256 full-width beats with byte strobes.
Beats whose address lies at or beyond ``size_bytes`` answer DECERR (reads
return zero data, writes are dropped); a burst with ``size`` narrower than
the data width or a burst type other than INCR answers SLVERR on every beat
and writes nothing. Every burst completes with all its beats either way.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from ..bus.axi import AXI4Signature, Burst, Resp
from ..utils import StructFIFO

__all__ = ["AxiMemoryConfig", "AxiMemoryFrontEnd", "AxiSpram", "AxiSram", "Spram256ka"]


@dataclass(frozen=True)
class AxiMemoryConfig:
    """Parameters of an on-chip AXI4 memory.

    Parameters
    ----------
    size_bytes : int
        Capacity; a multiple of ``data_width // 8``. Addresses from
        ``size_bytes`` up answer DECERR.
    data_width : int
        AXI data width (8 to 1024, a power of two).
    addr_width : int
        AXI byte address width; must cover ``size_bytes``.
    id_width : int
        AXI ID width.
    """

    size_bytes: int = 65536
    data_width: int = 64
    addr_width: int = 32
    id_width: int = 6

    def __post_init__(self):
        AXI4Signature(addr_width=self.addr_width, data_width=self.data_width,
                      id_width=self.id_width)
        word = self.data_width // 8
        if not isinstance(self.size_bytes, int) or self.size_bytes <= 0 or \
                self.size_bytes % word:
            raise ValueError(f"size_bytes must be a positive multiple of the word size "
                             f"({word} bytes for data_width {self.data_width}), "
                             f"not {self.size_bytes!r}")
        if self.size_bytes > 1 << self.addr_width:
            raise ValueError(f"size_bytes {self.size_bytes} does not fit addr_width "
                             f"{self.addr_width}; use addr_width >= "
                             f"{ceil_log2(self.size_bytes)}")

    @property
    def word_bytes(self):
        """Bytes per data beat."""
        return self.data_width // 8

    @property
    def depth(self):
        """Words of storage."""
        return self.size_bytes // self.word_bytes

    @property
    def signature(self):
        """The AXI4 signature of the port (manager's side)."""
        return AXI4Signature(addr_width=self.addr_width, data_width=self.data_width,
                             id_width=self.id_width)


class AxiMemoryFrontEnd(wiring.Component):
    """AXI4 subordinate that turns bursts into word reads and writes.

    The storage behind it has a read request (``rd_en``, ``rd_addr``) whose
    data appears on ``rd_data`` one cycle later, and a write request
    (``wr_en`` byte enables, ``wr_addr``, ``wr_data``). ``rd_grant`` and
    ``wr_grant`` say whether the storage takes a request this cycle (tie
    both high for a dual-port memory); a request waits until granted.

    Parameters
    ----------
    config : AxiMemoryConfig

    Ports
    -----
    axi : In(config.signature)
    rd_en, rd_addr, rd_data, rd_grant, wr_en, wr_addr, wr_data, wr_grant
        Storage side, word addressed; ``rd_en``/``wr_en`` are already
        qualified by the grant (they are the actual access strobes).
    rd_req, wr_req : Out(1)
        A read/write beat is waiting for its grant (for single-port storage
        to decide between them).

    Notes
    -----
    Reads: AR requests queue in a 2-entry FIFO; the read engine issues one
    word per cycle and R beats leave a 2-entry FIFO with credit-based flow
    control, so ``r.valid`` never depends on ``r.ready``. Writes: AW
    requests queue in a 2-entry FIFO; W is accepted only for the burst at
    its head (a subordinate may wait for AW before taking W) and B
    responses queue in a 2-entry FIFO.
    """

    def __init__(self, config):
        if not isinstance(config, AxiMemoryConfig):
            raise TypeError(f"config must be an AxiMemoryConfig, not {config!r}")
        self.config = config
        aw = max(1, ceil_log2(config.depth))
        super().__init__({
            "axi": In(config.signature),
            "rd_req": Out(1),
            "rd_en": Out(1),
            "rd_addr": Out(aw),
            "rd_data": In(config.data_width),
            "rd_grant": In(1),
            "wr_req": Out(1),
            "wr_en": Out(config.word_bytes),
            "wr_addr": Out(aw),
            "wr_data": Out(config.data_width),
            "wr_grant": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        axi = self.axi
        iw = max(1, cfg.id_width)
        shift = exact_log2(cfg.word_bytes)   # also AxSIZE of a full-width beat
        word_w = cfg.addr_width - shift
        request_layout = data.StructLayout({"id": iw, "word": word_w, "len": 8, "bad": 1})

        def addr_fifo(name, ch):
            q = m.submodules[name] = StructFIFO(request_layout, 2)
            p = q.w_stream.payload
            m.d.comb += [
                q.w_stream.valid.eq(ch.valid),
                ch.ready.eq(q.w_stream.ready),
                p.id.eq(ch.id),
                p.word.eq(ch.addr[shift:]),
                p.len.eq(ch.len),
                p.bad.eq((ch.size != shift) | (ch.burst != Burst.INCR)),
            ]
            return q, q.r_stream.payload

        # ---- reads ----
        ar_q, ar = addr_fifo("ar_queue", axi.ar)
        r_q = m.submodules.r_queue = StructFIFO(data.StructLayout({
            "data": cfg.data_width, "id": iw, "resp": Resp, "last": 1}), 2)

        r_active = Signal()
        r_id = Signal(iw)
        r_word = Signal(word_w)
        r_left = Signal(8)        # beats after the current one
        r_bad = Signal()
        inflight = Signal()       # a word was read last cycle
        inflight_id = Signal(iw)
        inflight_resp = Signal(Resp)
        inflight_last = Signal()
        inflight_mem = Signal()   # the word came from storage (else zero data)

        r_pop = Signal()
        m.d.comb += r_pop.eq(r_q.r_stream.valid & axi.r.ready)
        credit = Signal()
        m.d.comb += credit.eq(r_q.level + inflight - r_pop < 2)
        in_range = r_word < cfg.depth
        uses_mem = r_active & ~r_bad & in_range
        r_issue = Signal()
        m.d.comb += [
            self.rd_req.eq(uses_mem & credit),
            r_issue.eq(r_active & credit & (~uses_mem | self.rd_grant)),
            self.rd_en.eq(r_issue & uses_mem),
            self.rd_addr.eq(r_word),
        ]
        r_next_burst = Signal()
        m.d.comb += r_next_burst.eq(~r_active | (r_issue & (r_left == 0)))
        m.d.comb += ar_q.r_stream.ready.eq(r_next_burst)
        with m.If(r_issue):
            m.d.sync += [r_word.eq(r_word + 1), r_left.eq(r_left - 1)]
        with m.If(r_next_burst):
            m.d.sync += r_active.eq(ar_q.r_stream.valid)
            with m.If(ar_q.r_stream.valid):
                m.d.sync += [r_id.eq(ar.id), r_word.eq(ar.word), r_left.eq(ar.len),
                             r_bad.eq(ar.bad)]
        m.d.sync += inflight.eq(r_issue)
        with m.If(r_issue):
            m.d.sync += [
                inflight_id.eq(r_id),
                inflight_last.eq(r_left == 0),
                inflight_mem.eq(uses_mem),
                inflight_resp.eq(Mux(r_bad, Resp.SLVERR,
                                     Mux(in_range, Resp.OKAY, Resp.DECERR))),
            ]
        rq_in, rq_out = r_q.w_stream.payload, r_q.r_stream.payload
        m.d.comb += [
            r_q.w_stream.valid.eq(inflight),
            rq_in.data.eq(Mux(inflight_mem, self.rd_data, 0)),
            rq_in.id.eq(inflight_id),
            rq_in.resp.eq(inflight_resp),
            rq_in.last.eq(inflight_last),
            r_q.r_stream.ready.eq(axi.r.ready),
            axi.r.valid.eq(r_q.r_stream.valid),
            axi.r.data.eq(rq_out.data),
            axi.r.id.eq(rq_out.id),
            axi.r.resp.eq(rq_out.resp),
            axi.r.last.eq(rq_out.last),
        ]

        # ---- writes ----
        aw_q, aw = addr_fifo("aw_queue", axi.aw)
        b_q = m.submodules.b_queue = StructFIFO(data.StructLayout({"id": iw, "resp": Resp}), 2)

        w_active = Signal()
        w_id = Signal(iw)
        w_word = Signal(word_w)
        w_bad = Signal()
        w_err = Signal(Resp)       # worst response so far in this burst
        w_in_range = w_word < cfg.depth
        w_uses_mem = ~w_bad & w_in_range

        w_take = Signal()
        m.d.comb += [
            self.wr_req.eq(w_active & axi.w.valid & w_uses_mem & b_q.w_stream.ready),
            axi.w.ready.eq(w_active & b_q.w_stream.ready & (~w_uses_mem | self.wr_grant)),
            w_take.eq(axi.w.valid & axi.w.ready),
            self.wr_addr.eq(w_word),
            self.wr_data.eq(axi.w.data),
            self.wr_en.eq(Mux(w_take & w_uses_mem, axi.w.strb, 0)),
        ]
        beat_resp = Mux(w_bad, Resp.SLVERR, Mux(w_in_range, Resp.OKAY, Resp.DECERR))
        burst_resp = Mux(beat_resp > w_err, beat_resp, w_err)
        w_done = Signal()
        m.d.comb += [
            w_done.eq(w_take & axi.w.last),
            b_q.w_stream.valid.eq(w_done),
            b_q.w_stream.payload.id.eq(w_id),
            b_q.w_stream.payload.resp.eq(burst_resp),
            aw_q.r_stream.ready.eq(~w_active | w_done),
        ]
        with m.If(w_take):
            m.d.sync += [w_word.eq(w_word + 1), w_err.eq(burst_resp)]
        with m.If(~w_active | w_done):
            m.d.sync += [w_active.eq(aw_q.r_stream.valid), w_err.eq(Resp.OKAY)]
            with m.If(aw_q.r_stream.valid):
                m.d.sync += [w_id.eq(aw.id), w_word.eq(aw.word), w_bad.eq(aw.bad)]
        # WLAST ends a burst (AWLEN is not counted here); the protocol
        # checker holds managers to AWLEN + 1 beats.

        m.d.comb += [
            axi.b.valid.eq(b_q.r_stream.valid),
            axi.b.id.eq(b_q.r_stream.payload.id),
            axi.b.resp.eq(b_q.r_stream.payload.resp),
            b_q.r_stream.ready.eq(axi.b.ready),
        ]
        return m


class AxiSram(wiring.Component):
    """AXI4 memory on block RAM.

    A simple dual-port ``amaranth.lib.memory.Memory`` (one synchronous read
    port, one write port with byte granularity), so Yosys maps it to block
    RAM (DP16KD on ECP5, SB_RAM40_4K on iCE40). Reads and writes each move
    one beat per cycle, concurrently.

    Parameters
    ----------
    config : AxiMemoryConfig
    init : iterable of int, optional
        Initial words.

    Ports
    -----
    axi : In(config.signature)
    """

    def __init__(self, config, *, init=()):
        if not isinstance(config, AxiMemoryConfig):
            raise TypeError(f"config must be an AxiMemoryConfig, not {config!r}")
        self.config = config
        self.init = list(init)
        #: The storage (``amaranth.lib.memory.Memory``, one word per entry): a
        #: simulation reaches it here for backdoor loads and checks.
        self.storage = Memory(shape=config.data_width, depth=config.depth, init=self.init)
        super().__init__({"axi": In(config.signature)})

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.front = front = AxiMemoryFrontEnd(cfg)
        m.submodules.storage = mem = self.storage
        rd = mem.read_port(transparent_for=())
        wr = mem.write_port(granularity=8)
        wiring.connect(m, wiring.flipped(self.axi), front.axi)
        m.d.comb += [
            front.rd_grant.eq(1),
            front.wr_grant.eq(1),
            rd.en.eq(front.rd_en),
            rd.addr.eq(front.rd_addr),
            front.rd_data.eq(rd.data),
            wr.en.eq(front.wr_en),
            wr.addr.eq(front.wr_addr),
            wr.data.eq(front.wr_data),
        ]
        return m


class Spram256ka(wiring.Component):
    """One iCE40 UltraPlus SPRAM block (16384 x 16 bit, single port).

    On a platform whose ``family`` is ``"ice40"`` (or with
    ``primitive=True``) this is an ``SB_SPRAM256KA`` instance; elsewhere a
    behavioural model with the same ports and timing (read data one cycle
    after the address, nibble write mask, output held while not reading).

    Parameters
    ----------
    primitive : bool or None
        Force the instance (True) or the model (False); None decides by
        platform.

    Ports
    -----
    addr : In(14)
    data_in : In(16)
    mask_wren : In(4)
        Nibble write enables (``MASKWREN``).
    wren : In(1)
    cs : In(1)
        Chip select: the block does nothing without it.
    data_out : Out(16)
    """

    addr: In(14)
    data_in: In(16)
    mask_wren: In(4)
    wren: In(1)
    cs: In(1)
    data_out: Out(16)

    def __init__(self, *, primitive=None):
        self.primitive = primitive
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        primitive = self.primitive
        if primitive is None:
            primitive = getattr(platform, "family", None) == "ice40"
        if primitive:
            m.submodules.spram = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=self.addr, i_DATAIN=self.data_in, i_MASKWREN=self.mask_wren,
                i_WREN=self.wren, i_CHIPSELECT=self.cs, i_CLOCK=ClockSignal("sync"),
                i_STANDBY=Const(0), i_SLEEP=Const(0), i_POWEROFF=Const(1),
                o_DATAOUT=self.data_out)
            return m
        m.submodules.model = mem = Memory(shape=16, depth=16384, init=[])
        rd = mem.read_port(transparent_for=())
        wr = mem.write_port(granularity=4)
        m.d.comb += [
            rd.addr.eq(self.addr),
            rd.en.eq(self.cs & ~self.wren),
            self.data_out.eq(rd.data),
            wr.addr.eq(self.addr),
            wr.data.eq(self.data_in),
            wr.en.eq(Mux(self.cs & self.wren, self.mask_wren, 0)),
        ]
        return m


class AxiSpram(wiring.Component):
    """AXI4 memory on iCE40 UltraPlus SPRAM blocks.

    ``data_width / 16`` blocks side by side form one bank; banks of 16384
    words stack in depth (``size_bytes`` must be a whole number of banks;
    an UltraPlus 5K has four blocks, i.e. 128 KiB). Byte strobes become
    pairs of nibble write enables. The blocks are single-ported: when a
    read beat and a write beat are both ready, the write goes first.

    Parameters
    ----------
    config : AxiMemoryConfig
        ``data_width`` at least 16.
    primitive : bool or None
        Passed to every :class:`Spram256ka`.

    Ports
    -----
    axi : In(config.signature)
    """

    BLOCK_WORDS = 16384

    def __init__(self, config, *, primitive=None):
        if not isinstance(config, AxiMemoryConfig):
            raise TypeError(f"config must be an AxiMemoryConfig, not {config!r}")
        if config.data_width < 16:
            raise ValueError(f"AxiSpram data_width must be at least 16 (one SPRAM block "
                             f"is 16 bits wide), not {config.data_width}")
        if config.depth % self.BLOCK_WORDS:
            raise ValueError(
                f"AxiSpram size_bytes must be a multiple of {self.BLOCK_WORDS} words "
                f"({self.BLOCK_WORDS * config.word_bytes} bytes at data_width "
                f"{config.data_width}), not {config.size_bytes}")
        self.config = config
        self.primitive = primitive
        super().__init__({"axi": In(config.signature)})

    @property
    def banks(self):
        """Banks of 16384 words stacked in depth."""
        return self.config.depth // self.BLOCK_WORDS

    @property
    def blocks(self):
        """SPRAM blocks used."""
        return self.banks * (self.config.data_width // 16)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.front = front = AxiMemoryFrontEnd(cfg)
        wiring.connect(m, wiring.flipped(self.axi), front.axi)

        # Single port: a write request wins; a read waits.
        write = Signal()
        m.d.comb += [
            write.eq(front.wr_req),
            front.wr_grant.eq(1),
            front.rd_grant.eq(~front.wr_req),
        ]
        addr = Mux(write, front.wr_addr, front.rd_addr)
        bank = addr[14:] if self.banks > 1 else Const(0, 1)
        read_bank = Signal.like(bank)
        with m.If(front.rd_en):
            m.d.sync += read_bank.eq(bank)
        lanes = cfg.data_width // 16
        bank_data = []
        for b in range(self.banks):
            words = []
            for lane in range(lanes):
                blk = Spram256ka(primitive=self.primitive)
                m.submodules[f"spram_b{b}_l{lane}"] = blk
                strb = front.wr_en[2 * lane:2 * lane + 2]
                m.d.comb += [
                    blk.addr.eq(addr[:14]),
                    blk.data_in.eq(front.wr_data[16 * lane:16 * lane + 16]),
                    blk.mask_wren.eq(Cat(strb[0], strb[0], strb[1], strb[1])),
                    blk.wren.eq(write),
                    blk.cs.eq((bank == b) & (front.rd_en | front.wr_en.any())),
                ]
                words.append(blk.data_out)
            bank_data.append(Cat(*words))
        data = bank_data[0]
        for b in range(1, self.banks):
            data = Mux(read_bank == b, bank_data[b], data)
        m.d.comb += front.rd_data.eq(data)
        return m
