"""Job sequencer: GEMV jobs from the queue, through the DMA, into the engine and back.

The host pushes jobs (the JOB_* registers) into a queue; the sequencer turns
each into DMA descriptors, feeds the DMA's read stream into the GEMV engine
and the engine's results into the DMA's write stream, and posts one
completion record per job, in push order. ``docs/soc.md`` is the contract.

::

    jobs ─► _Planner ─┬─► MM2S descriptors: activations, weights ─► DMA
                      ├─► result writes (address, rows) ─► _ResultWriter
                      ├─► engine job FIFO ─────────────────────► engine.job
                      ├─► split FIFO ─► _ReadSplitter ◄── DMA MM2S data
                      │                   ├─ exponent header, mantissas ─► engine.activations
                      │                   └─ weight words ─────────────► engine.weights
                      └─► flight FIFO ─► _Completer ◄── DMA statuses ─► completions
    engine.results ─► _ResultWriter ─► S2MM descriptors (a chunk each), S2MM data ─► DMA

- :class:`_Planner` checks a job (the engine's rules, alignment, buffers
  inside memory), computes its three buffer lengths and pushes the
  descriptors. A bad job pushes nothing but its flight record, which carries
  the error code. The planner runs ahead of the data: the next job's
  descriptors are in the DMA queue while the current job streams, so its
  activation and first weight bursts are fetched with no gap.
- :class:`_ReadSplitter` cuts the MM2S stream into the two packets of each
  job: the activation packet (the exponent header goes into a small memory,
  the mantissas are gathered into BFP16 blocks) and the weight packet
  (words straight to the engine). A packet that ends early (a bus error)
  is padded with zero words, so the engine always finishes its job and
  never hangs; the job completes with DMA_READ.
- :class:`_ResultWriter` packs FP32 results into bus words and writes them in
  chunks of one burst, issuing each chunk's descriptor only once its data is
  buffered (a write burst must never hold the memory waiting for data).
- :class:`_Completer` pairs each flight record with its DMA statuses (two
  reads, one write) and posts the completion.

Abort (CONTROL.ABORT, SOFT_RESET, a watchdog timeout) drains rather than
cuts: the DMA aborts (issued bursts complete on the bus), the read stream
and the statuses are sunk, every job in flight completes (ABORTED, or
TIMEOUT for the stuck one), then one ``local_reset`` cycle clears the engine,
the DMA and the data path. ABORT and SOFT_RESET then take every queued job
off the queue as ABORTED (SOFT_RESET drops all completion records instead).
"""

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..config import BCQ_PLANES, BLOCK, GROUP_SIZES, WeightFormat
from ..gemv.engine import GemvEngine
from ..regmap import DmaError, GemvError
from ..soc_config import SocConfig
from ..utils import StructFIFO

__all__ = ["JobSequencer", "job_layout", "completion_layout", "status_layout", "events_layout",
           "act_header_bytes", "act_bytes", "ACT_HEADER_ALIGN"]

#: The exponent header of an activation vector is padded to this many bytes,
#: so the mantissas start on a word boundary for every memory width up to 512 bits.
ACT_HEADER_ALIGN = 64


def job_layout():
    """A queued job: the JOB_* register values at JOB_PUSH."""
    return data.StructLayout({
        "fmt": unsigned(4),
        "group": unsigned(16),
        "planes": unsigned(3),
        "offset": unsigned(1),
        "rows": unsigned(16),
        "cols": unsigned(17),
        "weight_addr": unsigned(64),
        "act_addr": unsigned(64),
        "result_addr": unsigned(64),
        "tag": unsigned(16),
        "irq": unsigned(1),
    })


def completion_layout():
    """A completion record (JOB_STATUS): ``tag``, ``error``, ``dma`` code, ``irq`` flag."""
    return data.StructLayout({
        "tag": unsigned(16),
        "error": GemvError,
        "dma": DmaError,
        "irq": unsigned(1),
    })


def status_layout():
    """``busy`` (a job taken and not completed, or an abort), ``aborting``, ``active`` jobs."""
    return data.StructLayout({
        "busy": 1,
        "aborting": 1,
        "active": 8,
    })


def events_layout():
    """Per-cycle events for the performance counters and the interrupt/error registers."""
    return data.StructLayout({
        "job_done": 1,       # a completion record was posted
        "weight_word": 1,    # the engine took a weight word
        "stall_memory": 1,   # a job runs, the engine could take a weight word, none is there
        "stall_engine": 1,   # a weight word waits for the engine
        "stall_result": 1,   # a result waits for the result writer
        "running": 1,        # a job is taken and not completed
        "between_jobs": 1,   # running, outside a weight stream, after the first one started
        "dma_done": 1,       # a DMA status was taken
        "dma_error": 1,      # ... with an error code
        "dma_code": DmaError,
    })


def act_header_bytes(cols):
    """Bytes of the exponent header of an activation vector of ``cols`` elements."""
    nb = cols // BLOCK
    return -(-nb // ACT_HEADER_ALIGN) * ACT_HEADER_ALIGN


def act_bytes(cols):
    """Bytes of an activation vector in memory: the exponent header, then int16 mantissas."""
    return act_header_bytes(cols) + 2 * cols


def _flight_layout():
    return data.StructLayout({
        "tag": unsigned(16),
        "irq": 1,
        "error": GemvError,      # a planner error: no descriptor was pushed
        "n_rd": range(3),        # MM2S descriptors pushed (statuses to wait for)
        "n_wr": unsigned(16),    # S2MM descriptors (result chunks) the job writes
    })


#: Bus words of results per S2MM descriptor (at most one burst). Measured on Q4_0
#: 4096 x 4096 from LPDDR4-3200: 16 words lose 17.5k cycles to read/write turnaround,
#: 64 words 37.7k (the controller pays per write burst, not per chunk; docs/soc.md).
RESULT_CHUNK_BEATS = 16


def result_chunk(config):
    """Results per S2MM descriptor: ``RESULT_CHUNK_BEATS`` bus words (one burst at most)."""
    return (config.dma.data_width // 32) * min(RESULT_CHUNK_BEATS, config.dma.max_burst_beats)


def _writes_layout():
    return data.StructLayout({"addr": unsigned(64), "rows": unsigned(16)})


def _split_layout(config):
    return data.StructLayout({
        "hdr_words": 16,         # words of the exponent header
        "act_words": 20,         # words of the whole activation packet
        "weight_words": 40,      # words of the weight packet
    })


# -- planner -------------------------------------------------------------------------------


class _Planner(wiring.Component):
    """Checks each job, computes its buffer lengths, and pushes its descriptors.

    States: IDLE → CHECK (rules, row beats) → SIZE (total beats) → BOUNDS
    (lengths, alignment, addresses) → ISSUE_ACT → ISSUE_W → LOCAL (engine
    job, split, result-write and flight records in one cycle) → IDLE; a bad job
    goes from CHECK or BOUNDS to FLIGHT (its record only). ``stop`` (an abort)
    sends a job in the middle of ISSUE_* to FLIGHT with the descriptors it
    did push, and keeps IDLE from taking a job.
    """

    def __init__(self, config):
        self.config = config
        dma = config.dma
        super().__init__({
            "jobs": In(stream.Signature(job_layout())),
            "mm2s": Out(stream.Signature(dma.descriptor_layout)),
            "writes": Out(stream.Signature(_writes_layout())),
            "engine_job": Out(stream.Signature(GemvEngine.JobLayout)),
            "split": Out(stream.Signature(_split_layout(config))),
            "flight": Out(stream.Signature(_flight_layout())),
            "stop": In(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        g = cfg.gemv
        dma = cfg.dma
        word_bytes = g.word_bytes
        lg_word = exact_log2(g.word_bits)
        lg_beat = exact_log2(g.beat_bits)
        max_len = (1 << dma.len_width) - 1

        job = Signal(job_layout())
        error = Signal(GemvError)
        n_rd = Signal(range(3))
        n_wr = Signal(16)

        # -- CHECK: the engine's rules, in the engine's order ----------------------------
        fmt_ok = Signal()
        m.d.comb += fmt_ok.eq(Cat(*(job.fmt == int(f) for f in g.formats)).any())
        is_bcq = Signal()
        m.d.comb += is_bcq.eq(job.fmt == WeightFormat.BCQ)
        is_int = Signal()                  # a group size of 32/64/128: INT4, INT8, BCQ
        m.d.comb += is_int.eq((job.fmt == WeightFormat.INT4) | (job.fmt == WeightFormat.INT8) |
                              is_bcq)
        group_ok = Signal()
        m.d.comb += group_ok.eq(Cat(*(job.group == size for size in GROUP_SIZES)).any())
        planes_ok = Signal()
        m.d.comb += planes_ok.eq(Mux(is_bcq, Cat(*(job.planes == q for q in BCQ_PLANES)).any(),
                                     job.planes == 0))
        lg_group = Signal(range(8))
        m.d.comb += lg_group.eq(Mux(is_int, Mux(job.group == 128, 7,
                                                Mux(job.group == 64, 6, 5)), 5))
        group_mask = Signal(7)
        m.d.comb += group_mask.eq(Mux(is_int, job.group - 1, BLOCK - 1))
        check = Signal(GemvError)
        with m.If(~fmt_ok):
            m.d.comb += check.eq(GemvError.BAD_FORMAT)
        with m.Elif(is_int & ~group_ok):
            m.d.comb += check.eq(GemvError.BAD_GROUP)
        with m.Elif(~planes_ok):
            m.d.comb += check.eq(GemvError.BAD_PLANES)
        with m.Elif((job.cols == 0) | ((job.cols & group_mask) != 0)):
            m.d.comb += check.eq(GemvError.BAD_COLS)
        with m.Elif(job.cols > g.max_cols):
            m.d.comb += check.eq(GemvError.COLS_TOO_LARGE)
        with m.Elif((job.rows == 0) | (job.rows > g.max_rows)):
            m.d.comb += check.eq(GemvError.BAD_ROWS)

        # Weight-stream geometry (docs/arithmetic.md section 6), in powers of two:
        # a scale beat holds 2**lg_spb slots, a quant beat 2**lg_n elements.
        lg_q = Signal(range(4))      # log2 of bits per weight
        lg_slot = Signal(range(6))   # log2 of bits per scale slot
        m.d.comb += [
            lg_q.eq(Mux((job.fmt == WeightFormat.Q8_0) | (job.fmt == WeightFormat.INT8), 3, 2)),
            lg_slot.eq(Mux((job.fmt == WeightFormat.Q4_0) | (job.fmt == WeightFormat.Q8_0), 4, 5)),
        ]
        lg_spb = Signal(range(lg_beat + 1))
        lg_n = Signal(range(lg_beat + 1))
        m.d.comb += [lg_spb.eq(lg_beat - lg_slot), lg_n.eq(lg_beat - lg_q)]
        groups = Signal(17)
        m.d.comb += groups.eq(job.cols >> lg_group)
        full_chunks = Signal(17)
        tail = Signal(17)
        m.d.comb += [full_chunks.eq(groups >> lg_spb),
                     tail.eq(groups & ((Const(1, 17) << lg_spb) - 1))]
        # A whole chunk: one scale beat and G * spb / n quant beats (a power of two >= 4).
        lg_chunk_q = Signal(range(8))
        m.d.comb += lg_chunk_q.eq(lg_group + lg_q - lg_slot)
        tail_beats = Signal(18)
        m.d.comb += tail_beats.eq(Mux(tail != 0,
                                      1 + (((tail << lg_group) + (1 << lg_n) - 1) >> lg_n), 0))
        # F16 (section 7): 16 bits per weight, rows are whole beats.
        f16_beats = Signal(18)
        m.d.comb += f16_beats.eq(job.cols >> (lg_beat - 4))
        # BCQ (section 8.2): a chunk of C = (B / 16) * G columns is q + offset scale
        # beats and ceil(chunk_cols / B) tiles of q plane beats (a whole chunk: G / 16).
        lg_bcq_chunk = Signal(range(lg_beat + 8))
        m.d.comb += lg_bcq_chunk.eq(lg_beat - 4 + lg_group)
        bcq_full = Signal(17)
        bcq_tail = Signal(17)
        m.d.comb += [bcq_full.eq(job.cols >> lg_bcq_chunk),
                     bcq_tail.eq(job.cols & ((Const(1, 18) << lg_bcq_chunk) - 1))]
        bcq_heads = Signal(18)             # chunks of the row
        bcq_tiles = Signal(18)             # tiles of the row
        m.d.comb += [
            bcq_heads.eq(bcq_full + (bcq_tail != 0)),
            bcq_tiles.eq((bcq_full << (lg_group - 4)[:3]) +
                         ((bcq_tail + (1 << lg_beat) - 1) >> lg_beat)),
        ]
        bcq_beats = Signal(24)
        m.d.comb += bcq_beats.eq(bcq_heads * (job.planes + job.offset) +
                                 bcq_tiles * job.planes)
        row_beats = Signal(24)
        beats = Signal(40)

        # -- BOUNDS: lengths, alignment, buffers inside memory --------------------------
        if g.word_bits <= g.beat_bits:
            words = beats << (lg_beat - lg_word)
        else:
            words = (beats + (1 << (lg_word - lg_beat)) - 1) >> (lg_word - lg_beat)
        w_len = Signal(48)
        a_len = Signal(24)
        r_len = Signal(24)
        nb = job.cols[5:]
        hdr = Signal(24)
        m.d.comb += hdr.eq(((nb + ACT_HEADER_ALIGN - 1) >> 6) << 6)

        def inside(addr, length):
            end = Signal(66)
            m.d.comb += end.eq(addr + length)
            return (end <= cfg.memory_size) & (length <= max_len)

        aligned = (((job.weight_addr & (word_bytes - 1)) == 0) &
                   ((job.act_addr & (word_bytes - 1)) == 0) &
                   (job.result_addr[:2] == 0))
        in_memory = (inside(job.weight_addr, w_len) & inside(job.act_addr, a_len) &
                     inside(job.result_addr, r_len))

        desc_tag = job.tag[:dma.tag_width]
        lg_chunk = exact_log2(result_chunk(cfg))
        chunks = Signal(16)
        m.d.comb += chunks.eq((job.rows + (1 << lg_chunk) - 1) >> lg_chunk)
        with m.FSM(name="planner") as fsm:
            with m.State("IDLE"):
                m.d.comb += self.jobs.ready.eq(~self.stop)
                with m.If(self.jobs.valid & ~self.stop):
                    m.d.sync += [job.eq(self.jobs.payload), n_rd.eq(0), n_wr.eq(0)]
                    m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += [
                    error.eq(check),
                    row_beats.eq(Mux(job.fmt == WeightFormat.F16, f16_beats,
                                     Mux(is_bcq, bcq_beats,
                                         full_chunks + (full_chunks << lg_chunk_q) +
                                         tail_beats))),
                ]
                m.next = "SIZE"
                with m.If(check != GemvError.NONE):
                    m.next = "FLIGHT"
            with m.State("SIZE"):
                m.d.sync += [
                    beats.eq(job.rows * row_beats),
                    a_len.eq(hdr + (job.cols << 1)),
                    r_len.eq(job.rows << 2),
                ]
                m.next = "LENGTH"
            with m.State("LENGTH"):
                m.d.sync += w_len.eq(words << exact_log2(word_bytes))
                m.next = "BOUNDS"
            with m.State("BOUNDS"):
                with m.If(~aligned):
                    m.d.sync += error.eq(GemvError.MISALIGNED)
                    m.next = "FLIGHT"
                with m.Elif(~in_memory):
                    m.d.sync += error.eq(GemvError.BAD_ADDRESS)
                    m.next = "FLIGHT"
                with m.Else():
                    m.next = "ISSUE_ACT"
            with m.State("ISSUE_ACT"):
                m.d.comb += [self.mm2s.valid.eq(~self.stop),
                             self.mm2s.payload.addr.eq(job.act_addr),
                             self.mm2s.payload.length.eq(a_len),
                             self.mm2s.payload.tag.eq(desc_tag)]
                with m.If(self.stop):
                    m.next = "FLIGHT"
                with m.Elif(self.mm2s.ready):
                    m.d.sync += n_rd.eq(1)
                    m.next = "ISSUE_W"
            with m.State("ISSUE_W"):
                m.d.comb += [self.mm2s.valid.eq(~self.stop),
                             self.mm2s.payload.addr.eq(job.weight_addr),
                             self.mm2s.payload.length.eq(w_len),
                             self.mm2s.payload.tag.eq(desc_tag)]
                with m.If(self.stop):
                    m.next = "FLIGHT"
                with m.Elif(self.mm2s.ready):
                    m.d.sync += n_rd.eq(2)
                    m.next = "LOCAL"
            with m.State("LOCAL"):
                # The result writer issues the job's S2MM descriptors, one per chunk of
                # results, each once its data is buffered (_ResultWriter).
                ej, sp, wr = self.engine_job.payload, self.split.payload, self.writes.payload
                m.d.comb += [
                    wr.addr.eq(job.result_addr), wr.rows.eq(job.rows),
                    ej.fmt.eq(job.fmt), ej.rows.eq(job.rows), ej.cols.eq(job.cols),
                    ej.group.eq(job.group), ej.planes.eq(job.planes), ej.offset.eq(job.offset),
                    sp.hdr_words.eq(hdr >> exact_log2(word_bytes)),
                    sp.act_words.eq(a_len >> exact_log2(word_bytes)),
                    sp.weight_words.eq(w_len >> exact_log2(word_bytes)),
                ]
                ready = (self.engine_job.ready & self.split.ready & self.writes.ready &
                         self.flight.ready)
                m.d.comb += [self.engine_job.valid.eq(ready), self.split.valid.eq(ready),
                             self.writes.valid.eq(ready)]
                self._flight(m, job, error, 2, chunks, ready)
                with m.If(ready):
                    m.next = "IDLE"
            with m.State("FLIGHT"):
                self._flight(m, job, error, n_rd, n_wr, 1)
                with m.If(self.flight.ready):
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m

    def _flight(self, m, job, error, n_rd, n_wr, valid):
        f = self.flight.payload
        m.d.comb += [self.flight.valid.eq(valid), f.tag.eq(job.tag), f.irq.eq(job.irq),
                     f.error.eq(error), f.n_rd.eq(n_rd), f.n_wr.eq(n_wr)]


# -- read stream: activations and weights ------------------------------------------------


class _ReadSplitter(wiring.Component):
    """Cuts the MM2S stream into each job's activation and weight packets.

    Activation packet: ``hdr_words`` words of int8 exponents (into a small
    memory, read back asynchronously by block), then 64 bytes of int16
    mantissas per block, gathered into one BFP16 block for the engine.
    Weight packet: ``weight_words`` words, passed straight to the engine.
    A packet whose ``last`` beat comes early is completed with zero words.
    While ``sink`` is high every beat is taken and dropped (an abort).
    """

    def __init__(self, config):
        self.config = config
        dma = config.dma
        super().__init__({
            "split": In(stream.Signature(_split_layout(config))),
            "data": In(stream.Signature(dma.beat_layout)),
            "activations": Out(stream.Signature(GemvEngine.ActivationLayout)),
            "weights": Out(stream.Signature(unsigned(config.gemv.word_bits))),
            "sink": In(1),
            "busy": Out(1),
            "in_weights": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        dw = cfg.gemv.word_bits
        wbytes = dw // 8
        words_per_block = max(1, 64 // wbytes)
        assert 2 * BLOCK * 8 == 512 and dw <= 512
        max_blocks = cfg.gemv.max_cols // BLOCK
        hdr_rows = max(1, act_header_bytes(cfg.gemv.max_cols) // wbytes)

        m.submodules.exps = exps = Memory(shape=unsigned(dw), depth=hdr_rows, init=[])
        ewp = exps.write_port()
        erp = exps.read_port(domain="comb")

        sp = self.split.payload
        blk = Signal(range(max_blocks + 1))
        m.d.comb += erp.addr.eq(blk // wbytes)
        count = Signal(40)           # words of the current packet taken (data or padding)
        padding = Signal()           # the packet ended early: feed zero words
        k = Signal(range(words_per_block))
        gather = Signal(512)
        out = self.activations

        beat = self.data.payload
        has_data = beat.bytes != 0
        # The input as the packet sees it: a real beat, or a zero word while padding.
        in_valid = Signal()
        in_word = Signal(dw)
        in_last = Signal()
        take = Signal()              # consume the offered beat / padding word
        m.d.comb += [
            in_valid.eq(padding | self.data.valid),
            in_word.eq(Mux(padding, 0, beat.data)),
            in_last.eq(~padding & beat.last),
        ]

        def advance(total):
            # One word of a packet of ``total`` words is consumed this cycle.
            with m.If(take):
                with m.If(~padding & ~has_data):
                    # A zero-byte last beat: no word; the packet stopped early.
                    with m.If(count != total):
                        m.d.sync += padding.eq(1)
                with m.Else():
                    m.d.sync += count.eq(count + 1)
                    with m.If(in_last & (count + 1 != total)):
                        m.d.sync += padding.eq(1)

        word_done = Signal()         # the word consumed this cycle is the packet's last
        m.d.comb += word_done.eq(take & (padding | has_data))

        with m.If(out.valid & out.ready):
            m.d.sync += out.valid.eq(0)

        with m.FSM(name="splitter") as fsm:
            with m.State("IDLE"):
                with m.If(self.sink):
                    m.next = "SINK"
                with m.Elif(self.split.valid):
                    m.d.sync += [count.eq(0), padding.eq(0), blk.eq(0), k.eq(0)]
                    m.next = "ACT"
            with m.State("ACT"):
                header = count < sp.hdr_words
                block_ends = k == words_per_block - 1
                can = header | ~block_ends | ~out.valid | out.ready
                m.d.comb += take.eq(in_valid & can)
                m.d.comb += self.data.ready.eq(~padding & can)
                advance(sp.act_words)
                m.d.comb += [ewp.addr.eq(count), ewp.data.eq(in_word),
                             ewp.en.eq(word_done & header)]
                with m.If(word_done & ~header):
                    if words_per_block > 1:
                        m.d.sync += gather.word_select(k, dw).eq(in_word)
                    m.d.sync += k.eq(Mux(block_ends, 0, k + 1))
                    with m.If(block_ends):
                        full = Cat(gather[:512 - dw], in_word) if words_per_block > 1 \
                            else in_word
                        exp = erp.data.word_select(blk % wbytes, 8) if wbytes > 1 \
                            else erp.data[:8]
                        m.d.sync += [out.valid.eq(1), out.payload.mant.as_value().eq(full),
                                     out.payload.exp.eq(exp), blk.eq(blk + 1)]
                with m.If(word_done & (count + 1 == sp.act_words)):
                    m.d.sync += [count.eq(0), padding.eq(0)]
                    m.next = "WEIGHTS"
                with m.If(self.sink):
                    m.next = "SINK"
            with m.State("WEIGHTS"):
                m.d.comb += [self.weights.valid.eq(in_valid & (padding | has_data)),
                             self.weights.payload.eq(in_word)]
                m.d.comb += take.eq(in_valid & (self.weights.ready | ~(padding | has_data)))
                m.d.comb += self.data.ready.eq(~padding &
                                               (self.weights.ready | ~has_data))
                advance(sp.weight_words)
                with m.If(word_done & (count + 1 == sp.weight_words)):
                    m.d.comb += self.split.ready.eq(1)
                    m.next = "IDLE"
                with m.If(self.sink):
                    m.next = "SINK"
            with m.State("SINK"):
                m.d.comb += self.data.ready.eq(1)
        m.d.comb += [self.busy.eq(~fsm.ongoing("IDLE") | out.valid),
                     self.in_weights.eq(fsm.ongoing("WEIGHTS"))]
        return m


# -- write stream: results ------------------------------------------------------------------


class _ResultWriter(wiring.Component):
    """Packs FP32 results into bus words and writes them, one chunk per descriptor.

    A job's results are cut into chunks of :func:`result_chunk` results (one
    longest burst); each chunk is a packet of its own, and its S2MM
    descriptor is issued only once the whole chunk is buffered. So a write
    burst never waits for its data on the bus: the memory controller never
    turns to writes it cannot finish, and reads stream on. While ``stop``
    (an abort) no descriptor is issued.
    """

    def __init__(self, config):
        self.config = config
        dma = config.dma
        super().__init__({
            "writes": In(stream.Signature(_writes_layout())),
            "results": In(stream.Signature(GemvEngine.ResultLayout)),
            "descriptors": Out(stream.Signature(dma.descriptor_layout)),
            "data": Out(stream.Signature(dma.beat_layout)),
            "stop": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        dw = cfg.dma.data_width
        per = dw // 32
        chunk = result_chunk(cfg)
        depth = 2 * (chunk // per)

        # Packing: results -> beats, a packet per chunk.
        m.submodules.beats = beats = StructFIFO(cfg.dma.beat_layout, depth)
        buf = Signal(data.ArrayLayout(32, per))
        k = Signal(range(per))
        in_chunk = Signal(range(chunk))
        res, out = self.results.payload, beats.w_stream
        chunk_end = (in_chunk == chunk - 1) | res.last
        completes = (k == per - 1) | chunk_end
        m.d.comb += [
            self.results.ready.eq(~completes | out.ready),
            out.valid.eq(self.results.valid & completes),
            out.payload.data.eq(Cat(*(Mux(k == j, res.value, buf[j]) for j in range(per)))),
            out.payload.bytes.eq((k + 1) << 2),
            out.payload.last.eq(chunk_end),
        ]
        packed = Signal()            # a chunk's last beat entered the buffer
        m.d.comb += packed.eq(out.valid & out.ready & out.payload.last)
        with m.If(self.results.valid & self.results.ready):
            m.d.sync += [buf[k].eq(res.value), k.eq(Mux(completes, 0, k + 1)),
                         in_chunk.eq(Mux(chunk_end, 0, in_chunk + 1))]
        wiring.connect(m, beats.r_stream, wiring.flipped(self.data))

        # Descriptors: one per chunk once the chunk is buffered.
        buffered = Signal(range(depth + 2))   # whole chunks buffered, not yet described
        issue = Signal()
        m.d.sync += buffered.eq(buffered + packed - issue)
        addr = Signal(64)
        left = Signal(16)            # rows of the current job not yet described
        d = self.descriptors
        n = Mux(left < chunk, left, chunk)
        m.d.comb += [
            d.payload.addr.eq(addr),
            d.payload.length.eq(n << 2),
            d.valid.eq((left != 0) & (buffered != 0) & ~self.stop),
            issue.eq(d.valid & d.ready),
        ]
        with m.If(issue):
            m.d.sync += [addr.eq(addr + (n << 2)), left.eq(left - n)]
        with m.If((left == 0) & ~self.stop):
            m.d.comb += self.writes.ready.eq(1)
            with m.If(self.writes.valid):
                m.d.sync += [addr.eq(self.writes.payload.addr),
                             left.eq(self.writes.payload.rows)]
        return m


# -- completions ----------------------------------------------------------------------------


class _Completer(wiring.Component):
    """Pairs each flight record with its DMA statuses; posts the completion.

    While ``aborting``, a job whose statuses are not all OK completes
    ABORTED, or TIMEOUT for the first one after a watchdog timeout
    (``timeout`` set, ``timeout_taken`` pulses when it is used).
    """

    def __init__(self, config):
        dma = config.dma
        super().__init__({
            "flight": In(stream.Signature(_flight_layout())),
            "mm2s_status": In(stream.Signature(dma.status_layout)),
            "s2mm_status": In(stream.Signature(dma.status_layout)),
            "completions": Out(stream.Signature(completion_layout())),
            "aborting": In(1),
            "wr_pending": In(1),     # an S2MM descriptor was issued and has no status yet
            "timeout": In(1),
            "timeout_taken": Out(1),
            "dma_event": Out(data.StructLayout({"done": 1, "error": 1, "code": DmaError})),
        })

    def elaborate(self, platform):
        m = Module()
        f = self.flight.payload
        got_rd = Signal(range(3))
        got_wr = Signal(16)
        rd_err = Signal(DmaError)
        wr_err = Signal(DmaError)
        stopped = Signal()           # a status said ABORTED

        rs, ws = self.mm2s_status, self.s2mm_status
        m.d.comb += [rs.ready.eq(self.flight.valid & (got_rd < f.n_rd)),
                     ws.ready.eq(self.flight.valid & (got_wr < f.n_wr))]
        with m.If(rs.valid & rs.ready):
            m.d.sync += got_rd.eq(got_rd + 1)
            with m.If((rd_err == DmaError.OK) & (rs.payload.error != DmaError.OK)):
                m.d.sync += rd_err.eq(rs.payload.error)
        with m.If(ws.valid & ws.ready):
            m.d.sync += got_wr.eq(got_wr + 1)
            with m.If((wr_err == DmaError.OK) & (ws.payload.error != DmaError.OK)):
                m.d.sync += wr_err.eq(ws.payload.error)
        rs_err = rs.valid & rs.ready & (rs.payload.error != DmaError.OK)
        ws_err = ws.valid & ws.ready & (ws.payload.error != DmaError.OK)
        with m.If(rs_err & (rs.payload.error == DmaError.ABORTED) |
                  ws_err & (ws.payload.error == DmaError.ABORTED)):
            m.d.sync += stopped.eq(1)
        m.d.comb += [
            self.dma_event.done.eq((rs.valid & rs.ready) | (ws.valid & ws.ready)),
            self.dma_event.error.eq(rs_err | ws_err),
            self.dma_event.code.eq(Mux(rs_err, rs.payload.error, ws.payload.error)),
        ]

        c = self.completions.payload
        # While aborting, the result writer issues nothing more: a job whose remaining
        # chunks were never described is complete once no write status is pending.
        writes_in = (got_wr == f.n_wr) | (self.aborting & ~self.wr_pending & ~ws.valid)
        all_in = (got_rd == f.n_rd) & writes_in
        partial = (f.n_rd != 2) | (got_wr != f.n_wr)
        ok = (rd_err == DmaError.OK) & (wr_err == DmaError.OK) & ~partial
        m.d.comb += [self.completions.valid.eq(self.flight.valid & all_in),
                     c.tag.eq(f.tag), c.irq.eq(f.irq)]
        with m.If(f.error != GemvError.NONE):
            m.d.comb += c.error.eq(f.error)
        with m.Elif(ok):
            m.d.comb += c.error.eq(GemvError.NONE)
        with m.Elif(self.aborting | stopped | partial):
            with m.If(self.timeout):
                m.d.comb += c.error.eq(GemvError.TIMEOUT)
            with m.Else():
                m.d.comb += c.error.eq(GemvError.ABORTED)
        with m.Elif(rd_err != DmaError.OK):
            m.d.comb += [c.error.eq(GemvError.DMA_READ), c.dma.eq(rd_err)]
        with m.Else():
            m.d.comb += [c.error.eq(GemvError.DMA_WRITE), c.dma.eq(wr_err)]
        with m.If(self.completions.valid & self.completions.ready):
            m.d.comb += [self.flight.ready.eq(1),
                         self.timeout_taken.eq(c.error == GemvError.TIMEOUT)]
            m.d.sync += [got_rd.eq(0), got_wr.eq(0), rd_err.eq(DmaError.OK),
                         wr_err.eq(DmaError.OK), stopped.eq(0)]
        return m


# -- the sequencer --------------------------------------------------------------------------


class JobSequencer(wiring.Component):
    """Runs GEMV jobs from the job queue through the DMA and the engine.

    Parameters
    ----------
    config : SocConfig

    Attributes
    ----------
    jobs : In(stream.Signature(job_layout()))
        Jobs from the queue the host pushes into.
    completions : Out(stream.Signature(completion_layout()))
        One record per job taken, in order.
    mm2s_descriptors, mm2s_data, mm2s_status, s2mm_descriptors, s2mm_data, s2mm_status
        To and from the :class:`~lpaccel.rtl.dma.DmaEngine`'s channels.
    dma_abort : Out(1)
        One cycle when an abort starts.
    dma_idle : In(1)
        The DMA's ``idle``.
    engine_job, engine_activations, engine_weights, engine_results
        To and from the :class:`~lpaccel.rtl.gemv.GemvEngine`.
    engine_busy : In(1)
        The engine's ``busy``.
    local_reset : Out(1)
        One cycle after an abort has drained: the SoC resets the engine and
        the DMA with it (the sequencer resets its own data path).
    drop_completions : Out(1)
        One cycle at the end of a soft reset: the SoC empties the completion queue.
    abort, soft_reset : In(1)
        Requests (one-cycle pulses).
    watchdog : In(32)
        Cycles without progress after which the running jobs are aborted (the
        oldest completes TIMEOUT); 0 disables it.
    status : Out(status_layout())
    events : Out(events_layout())
    """

    def __init__(self, config):
        if not isinstance(config, SocConfig):
            raise TypeError(f"config must be a SocConfig, not {config!r}")
        config.check_soc()
        self.config = config
        dma = config.dma
        super().__init__({
            "jobs": In(stream.Signature(job_layout())),
            "completions": Out(stream.Signature(completion_layout())),
            "mm2s_descriptors": Out(stream.Signature(dma.descriptor_layout)),
            "mm2s_data": In(stream.Signature(dma.beat_layout)),
            "mm2s_status": In(stream.Signature(dma.status_layout)),
            "s2mm_descriptors": Out(stream.Signature(dma.descriptor_layout)),
            "s2mm_data": Out(stream.Signature(dma.beat_layout)),
            "s2mm_status": In(stream.Signature(dma.status_layout)),
            "dma_abort": Out(1),
            "dma_idle": In(1),
            "engine_job": Out(stream.Signature(GemvEngine.JobLayout)),
            "engine_activations": Out(stream.Signature(GemvEngine.ActivationLayout)),
            "engine_weights": Out(stream.Signature(unsigned(config.gemv.word_bits))),
            "engine_results": In(stream.Signature(GemvEngine.ResultLayout)),
            "engine_busy": In(1),
            "local_reset": Out(1),
            "drop_completions": Out(1),
            "abort": In(1),
            "soft_reset": In(1),
            "watchdog": In(32),
            "status": Out(status_layout()),
            "events": Out(events_layout()),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        depth = cfg.job_depth
        local = Signal()             # the data path's reset (registered local_reset)

        m.submodules.planner = planner = _Planner(cfg)
        m.submodules.completer = completer = _Completer(cfg)
        m.submodules.flight = flight = StructFIFO(_flight_layout(), depth + 1)
        # The data path is reset after every abort.
        m.submodules.engine_jobs = engine_jobs = ResetInserter(local)(
            StructFIFO(GemvEngine.JobLayout, depth + 1))
        m.submodules.splits = splits = ResetInserter(local)(
            StructFIFO(_split_layout(cfg), depth + 1))
        m.submodules.splitter = splitter = ResetInserter(local)(_ReadSplitter(cfg))
        m.submodules.writes = writes = ResetInserter(local)(
            StructFIFO(_writes_layout(), depth + 1))
        m.submodules.writer = writer = ResetInserter(local)(_ResultWriter(cfg))

        wiring.connect(m, planner.mm2s, wiring.flipped(self.mm2s_descriptors))
        wiring.connect(m, planner.writes, writes.w_stream)
        wiring.connect(m, writes.r_stream, writer.writes)
        wiring.connect(m, writer.descriptors, wiring.flipped(self.s2mm_descriptors))
        wiring.connect(m, planner.engine_job, engine_jobs.w_stream)
        wiring.connect(m, engine_jobs.r_stream, wiring.flipped(self.engine_job))
        wiring.connect(m, planner.split, splits.w_stream)
        wiring.connect(m, splits.r_stream, splitter.split)
        wiring.connect(m, planner.flight, flight.w_stream)
        wiring.connect(m, flight.r_stream, completer.flight)
        wiring.connect(m, wiring.flipped(self.mm2s_data), splitter.data)
        wiring.connect(m, splitter.activations, wiring.flipped(self.engine_activations))
        wiring.connect(m, splitter.weights, wiring.flipped(self.engine_weights))
        wiring.connect(m, wiring.flipped(self.engine_results), writer.results)
        wiring.connect(m, writer.data, wiring.flipped(self.s2mm_data))
        wiring.connect(m, wiring.flipped(self.mm2s_status), completer.mm2s_status)
        wiring.connect(m, wiring.flipped(self.s2mm_status), completer.s2mm_status)

        # Completions: the completer's, or ABORTED records for the jobs drained off the
        # queue after an abort (the jobs input then bypasses the planner).
        draining = Signal()
        soft = Signal()
        job_in = self.jobs.payload
        c = self.completions
        with m.If(draining):
            m.d.comb += [
                c.valid.eq(self.jobs.valid & ~soft),
                c.payload.tag.eq(job_in.tag), c.payload.irq.eq(job_in.irq),
                c.payload.error.eq(GemvError.ABORTED),
                self.jobs.ready.eq(soft | c.ready),
                completer.completions.ready.eq(0),
            ]
        with m.Elif(soft):
            # A soft reset posts nothing: the records of the jobs it ends are dropped.
            m.d.comb += completer.completions.ready.eq(1)
        with m.Else():
            wiring.connect(m, completer.completions, wiring.flipped(self.completions))
        with m.If(~draining):
            wiring.connect(m, wiring.flipped(self.jobs), planner.jobs)

        # Abort control: RUN → DRAIN (until the DMA is idle and every job in flight has
        # completed) → RESET (local_reset) → QUEUE (queued jobs off as ABORTED; not
        # after a watchdog timeout) → RUN.
        aborting = Signal()
        timeout = Signal()           # the completer labels the next failed job TIMEOUT
        by_watchdog = Signal()       # this abort came from the watchdog alone
        watchdog_count = Signal(32)
        progress = Signal()
        active = Signal(8)
        m.d.comb += active.eq(flight.level + planner.busy)
        m.d.comb += [completer.aborting.eq(aborting), completer.timeout.eq(timeout),
                     planner.stop.eq(aborting), splitter.sink.eq(aborting),
                     writer.stop.eq(aborting)]
        # S2MM descriptors issued and not yet answered by a status.
        wr_pending = Signal(range(2 * cfg.dma.queue_depth + 2 * cfg.dma.max_outstanding + 8))
        wr_issued = self.s2mm_descriptors.valid & self.s2mm_descriptors.ready
        wr_answered = self.s2mm_status.valid & self.s2mm_status.ready
        m.d.sync += wr_pending.eq(wr_pending + wr_issued - wr_answered)
        m.d.comb += completer.wr_pending.eq((wr_pending != 0) | wr_issued)
        with m.If(completer.timeout_taken):
            m.d.sync += timeout.eq(0)
        drained = self.dma_idle & ~planner.busy & ~flight.r_stream.valid
        m.d.comb += self.local_reset.eq(local)
        m.d.sync += local.eq(0)
        fired = Signal()
        m.d.comb += fired.eq((self.watchdog != 0) & (watchdog_count >= self.watchdog) &
                             (active != 0))
        with m.FSM(name="control"):
            with m.State("RUN"):
                with m.If(self.abort | self.soft_reset | fired):
                    m.d.comb += self.dma_abort.eq(1)
                    user = self.abort | self.soft_reset
                    m.d.sync += [aborting.eq(1), soft.eq(self.soft_reset),
                                 by_watchdog.eq(~user), timeout.eq(~user)]
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(self.abort | self.soft_reset):
                    m.d.sync += by_watchdog.eq(0)
                with m.If(self.soft_reset):
                    m.d.sync += soft.eq(1)
                with m.If(drained):
                    m.d.sync += local.eq(1)
                    m.next = "RESET"
            with m.State("RESET"):
                # local_reset is high in this cycle.
                m.d.sync += [aborting.eq(0), timeout.eq(0), by_watchdog.eq(0)]
                m.next = "QUEUE"
                with m.If(by_watchdog):
                    m.next = "RUN"
            with m.State("QUEUE"):
                m.d.comb += draining.eq(1)
                with m.If(~self.jobs.valid):
                    m.d.comb += self.drop_completions.eq(soft)
                    m.d.sync += soft.eq(0)
                    m.next = "RUN"
        # Watchdog: cycles with jobs active and nothing moving.
        m.d.comb += progress.eq(
            (self.mm2s_data.valid & self.mm2s_data.ready) |
            (self.s2mm_data.valid & self.s2mm_data.ready) |
            (self.engine_results.valid & self.engine_results.ready) |
            (self.engine_activations.valid & self.engine_activations.ready) |
            (c.valid & c.ready) | (self.mm2s_status.valid & self.mm2s_status.ready) |
            (self.s2mm_status.valid & self.s2mm_status.ready))
        with m.If(progress | (active == 0) | aborting):
            m.d.sync += watchdog_count.eq(0)
        with m.Elif(watchdog_count != 0xFFFF_FFFF):
            m.d.sync += watchdog_count.eq(watchdog_count + 1)

        running = Signal()
        m.d.comb += running.eq(active != 0)
        streamed = Signal()          # a weight word moved since the sequencer was last idle
        with m.If(~running):
            m.d.sync += streamed.eq(0)
        with m.Elif(self.engine_weights.valid & self.engine_weights.ready):
            m.d.sync += streamed.eq(1)
        w = self.engine_weights
        ev = self.events
        m.d.comb += [
            self.status.busy.eq(running | aborting | self.jobs.valid),
            self.status.aborting.eq(aborting),
            self.status.active.eq(active),
            ev.job_done.eq(c.valid & c.ready),
            ev.weight_word.eq(w.valid & w.ready),
            ev.stall_memory.eq(running & w.ready & ~w.valid),
            ev.stall_engine.eq(w.valid & ~w.ready),
            ev.stall_result.eq(self.engine_results.valid & ~self.engine_results.ready),
            ev.running.eq(running),
            ev.between_jobs.eq(running & streamed & ~splitter.in_weights),
            ev.dma_done.eq(completer.dma_event.done),
            ev.dma_error.eq(completer.dma_event.error),
            ev.dma_code.eq(completer.dma_event.code),
        ]
        return m
