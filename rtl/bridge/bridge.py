"""The host bridge: requests from a byte stream to the SoC's CSR and memory buses.

:class:`HostBridge` implements the device end of ``docs/link.md``::

    rx bytes ─► parser ─► request buffer ─► executor ──► csr (AXI4-Lite)
                 │ CRC      (256 words)        │    └──► mem (AXI4, INCR bursts)
                 │ timeout       ▲             ▼
                 ▼               └──────── read data ──► responder ─► tx bytes
             counters                                      (CRC)

It works one request at a time (stop-and-wait), in three phases:

1. **Receive.** The parser hunts for ``SOF``, takes the 8-byte header, the
   write data (into the request buffer) and the CRC, one byte per cycle.
   A gap of more than ``timeout_cycles`` between two bytes of a request
   drops it (a resync); a bad CRC drops it (a CRC error). Nothing reaches a
   bus before the CRC checked. ``rx.ready`` is low in the other phases.
2. **Execute.** Checks in order: a write whose ``SEQ`` and ``CMD`` equal the
   replay record is answered with the recorded status (a duplicate); an
   unknown ``CMD`` or ``LINK_INFO`` with ``ADDR != 0`` is ``BAD_COMMAND``; an
   unaligned ``ADDR`` or a memory command crossing 4 KiB is ``BAD_ADDRESS``.
   Then the bus work: one AXI4-Lite access per register word (stopping at
   the first SLVERR/DECERR); one INCR burst of full-width beats per memory
   command, ``WSTRB`` exactly the written bytes; ``LINK_INFO`` words.
   Every response beat is accepted, every beat of a failed burst drained.
3. **Respond.** Header, read data from the buffer and the CRC, one byte per
   cycle as ``tx`` takes them.

The request buffer is as wide as a memory beat, one 32-bit lane per word,
and a memory command's words sit on the lanes their addresses select
(word *i* at position ``ADDR / 4 mod lanes + i``), so a burst moves whole
buffer rows both ways; register commands use positions ``0 .. n-1``.

A register address beyond the CSR port's ``addr_width`` (or a memory address
beyond the memory port's) answers ``BUS_ERROR`` without a bus access: the
port cannot express it, and truncating would alias another register.

Latency (cycles, no back-pressure): a request of *b* bytes is taken in *b*
cycles, then 1 cycle of checks, the bus work, 1 cycle, and the response of
*r* bytes in *r* cycles.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..bus.axi import AXI4LiteSignature, AXI4Signature, Burst, Resp
from .config import BridgeConfig
from .crc import CRC_INIT, crc16_next
from .protocol import (
    INFO_WORDS,
    LINK_MAGIC,
    MAX_WORDS,
    PROTOCOL_VERSION,
    REQ_HEADER_BYTES,
    REQ_SOF,
    RSP_HEADER_BYTES,
    RSP_SOF,
    Cmd,
    Status,
)

__all__ = ["HostBridge", "COUNTERS"]

#: Counter ports of :class:`HostBridge`, in ``LINK_INFO`` order (words 2..7).
COUNTERS = ("frames", "crc_errors", "overruns", "resyncs", "duplicates", "error_responses")

#: 4 KiB: a memory command stays inside one such page (AXI4's burst rule too).
_PAGE_BITS = 12


class HostBridge(wiring.Component):
    """Device end of the host link: framed requests in, AXI accesses, responses out.

    Parameters
    ----------
    config : BridgeConfig
    mem_signature : AXI4Signature
        Signature of the memory port, from the manager's side (the SoC's
        host window: ``Soc.arbiter_config.manager_signature``); data width
        32 to 1024 bits.
    csr_addr_width : int
        Address width of the CSR port (the SoC's CSR bank's).

    Attributes
    ----------
    rx : In(stream.Signature(8))
        Request bytes.
    tx : Out(stream.Signature(8))
        Response bytes.
    csr : Out(AXI4LiteSignature(addr_width=csr_addr_width, data_width=32))
    mem : Out(mem_signature)
    overrun : In(1)
        A byte of the request stream was lost (the UART's FIFO was full): the
        next request to complete fails its CRC check.
    idle : Out(1)
        Hunting for a request: nothing received, executing or sending.
    frames, crc_errors, overruns, resyncs, duplicates, error_responses : Out(32)
        The ``LINK_INFO`` counters (wrap; cleared by reset).

    Raises
    ------
    TypeError
        If ``config`` or ``mem_signature`` has the wrong type.
    ValueError
        If the memory port is narrower than 32 bits.
    """

    def __init__(self, config, mem_signature, *, csr_addr_width=32):
        if not isinstance(config, BridgeConfig):
            raise TypeError(f"config must be a BridgeConfig, not {config!r}")
        if not isinstance(mem_signature, AXI4Signature):
            raise TypeError(f"mem_signature must be an AXI4Signature, not {mem_signature!r}")
        if mem_signature.data_width < 32:
            raise ValueError(f"the memory port must be at least 32 bits wide (the bridge "
                             f"moves 32-bit words), not {mem_signature.data_width}")
        self.config = config
        self.mem_signature = mem_signature
        self.csr_addr_width = csr_addr_width
        members = {
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "csr": Out(AXI4LiteSignature(addr_width=csr_addr_width, data_width=32)),
            "mem": Out(mem_signature),
            "overrun": In(1),
            "idle": Out(1),
        }
        members.update({name: Out(32) for name in COUNTERS})
        super().__init__(members)

    @property
    def lanes(self):
        """32-bit words per memory beat."""
        return self.mem_signature.data_width // 32

    @property
    def buffer_rows(self):
        """Rows (memory beats) of the request buffer."""
        lanes = self.lanes
        return -(-(MAX_WORDS + lanes - 1) // lanes)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        lanes = self.lanes
        lane_bits = exact_log2(lanes)
        beat_bytes = self.mem_signature.data_width // 8
        rows = self.buffer_rows

        m.submodules.buffer = buffer = Memory(shape=self.mem_signature.data_width, depth=rows,
                                              init=[])
        wr = buffer.write_port(granularity=32)
        rd = buffer.read_port()

        def row(pos):
            return pos >> lane_bits if lane_bits else pos

        def lane(pos):
            return pos[:lane_bits] if lane_bits else Const(0, 1)

        def write_word(pos, word):
            m.d.comb += [wr.addr.eq(row(pos)), wr.data.eq(word.replicate(lanes)),
                         wr.en.eq(1 << lane(pos))]

        # ---- request registers
        seq = Signal(8)
        cmd = Signal(8)
        count = Signal(8)             # words - 1
        addr = Signal(32)
        is_write = Signal()
        is_mem = Signal()
        m.d.comb += [
            is_write.eq((cmd == Cmd.REG_WRITE) | (cmd == Cmd.MEM_WRITE)),
            is_mem.eq((cmd == Cmd.MEM_READ) | (cmd == Cmd.MEM_WRITE)),
        ]
        # Buffer position of the request's first word.
        first = Signal(range(lanes))
        if lane_bits:
            m.d.comb += first.eq(Mux(is_mem, addr[2:2 + lane_bits], 0))

        # ---- replay record and counters
        rec_valid = Signal()
        rec_seq = Signal(8)
        rec_cmd = Signal(8)
        rec_status = Signal(Status)
        dup = Signal()
        status = Signal(Status)
        counters = {name: getattr(self, name) for name in COUNTERS}

        def count_up(name):
            m.d.sync += counters[name].eq(counters[name] + 1)

        with m.If(self.overrun):
            count_up("overruns")

        # ---- receive
        accept = Signal()
        byte = self.rx.payload
        m.d.comb += accept.eq(self.rx.valid & self.rx.ready)
        rx_crc = Signal(16, init=CRC_INIT)
        crc_lo = Signal(8)
        hidx = Signal(range(REQ_HEADER_BYTES))   # header byte index
        widx = Signal(range(MAX_WORDS))          # word index (receive, registers, LINK_INFO)
        bidx = Signal(2)                         # byte of a word
        shift = Signal(24)
        gap = Signal(range(cfg.timeout_cycles + 1))
        # A byte was lost since the last CRC check: the request it belonged to is bad.
        corrupt = Signal()
        with m.If(self.overrun):
            m.d.sync += corrupt.eq(1)

        # ---- execute
        bus_addr = Signal(33)
        beat = Signal(range(rows + 1))
        last_beat = Signal(range(rows))
        bus_err = Signal()
        aw_done = Signal()
        w_done = Signal()
        m.d.comb += last_beat.eq(row(first + count))

        # ---- respond
        tx_crc = Signal(16)
        rsp_len = Signal(range(MAX_WORDS + 1))
        pos = Signal(range(rows * lanes))      # next buffer position to send
        sent = Signal(range(MAX_WORDS + 1))
        tx_word = Signal(32)
        tidx = Signal(range(RSP_HEADER_BYTES))
        sending = Signal()
        transfer = Signal()
        m.d.comb += transfer.eq(self.tx.valid & self.tx.ready)
        with m.If(transfer & sending):
            m.d.sync += tx_crc.eq(crc16_next(tx_crc, self.tx.payload))

        csr, mem = self.csr, self.mem
        m.d.comb += [
            csr.aw.addr.eq(bus_addr), csr.ar.addr.eq(bus_addr),
            csr.w.data.eq(rd.data.word_select(lane(widx), 32)), csr.w.strb.eq(0xF),
            # The memory window takes beat addresses of full-width INCR bursts.
            mem.aw.addr.eq(Cat(Const(0, exact_log2(beat_bytes)),
                               addr[exact_log2(beat_bytes):])),
            mem.ar.addr.eq(mem.aw.addr),
            mem.aw.len.eq(last_beat), mem.ar.len.eq(last_beat),
            mem.aw.size.eq(self.mem_signature.size), mem.ar.size.eq(self.mem_signature.size),
            mem.aw.burst.eq(Burst.INCR), mem.ar.burst.eq(Burst.INCR),
            mem.w.data.eq(rd.data),
            mem.w.last.eq(beat == last_beat),
        ]
        # WSTRB: the lanes whose positions hold a word of the request.
        for k in range(lanes):
            p = beat * lanes + k
            m.d.comb += mem.w.strb[4 * k:4 * k + 4].eq(
                Mux((p >= first) & (p <= first + count), 0xF, 0))

        csr_range_ok = Signal()
        mem_range_ok = Signal()
        m.d.comb += [
            csr_range_ok.eq(bus_addr[self.csr_addr_width:] == 0),
            mem_range_ok.eq(addr[min(32, self.mem_signature.addr_width):] == 0
                            if self.mem_signature.addr_width < 32 else 1),
        ]

        def finish(code):
            m.d.sync += status.eq(code)
            m.next = "FINISH"

        def receiving():
            # Inside a request: take bytes; a gap longer than the timeout drops it.
            m.d.comb += self.rx.ready.eq(1)
            with m.If(accept):
                m.d.sync += gap.eq(0)
            with m.Elif(gap == cfg.timeout_cycles):
                count_up("resyncs")
                m.next = "HUNT"
            with m.Else():
                m.d.sync += gap.eq(gap + 1)

        def responding():
            m.d.comb += [self.tx.valid.eq(1), rd.addr.eq(row(pos))]

        with m.FSM() as fsm:
            with m.State("HUNT"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(accept & (byte == REQ_SOF)):
                    m.d.sync += [rx_crc.eq(crc16_next(CRC_INIT, byte)), hidx.eq(1),
                                 gap.eq(0)]
                    m.next = "HEADER"

            with m.State("HEADER"):
                receiving()
                with m.If(accept):
                    m.d.sync += [rx_crc.eq(crc16_next(rx_crc, byte)), hidx.eq(hidx + 1)]
                    with m.Switch(hidx):
                        with m.Case(1):
                            m.d.sync += seq.eq(byte)
                        with m.Case(2):
                            m.d.sync += cmd.eq(byte)
                        with m.Case(3):
                            m.d.sync += count.eq(byte)
                        for k in range(4):
                            with m.Case(4 + k):
                                m.d.sync += addr[8 * k:8 * k + 8].eq(byte)
                    with m.If(hidx == REQ_HEADER_BYTES - 1):
                        m.d.sync += [widx.eq(0), bidx.eq(0), hidx.eq(0)]
                        with m.If(is_write):
                            m.next = "DATA"
                        with m.Else():
                            m.next = "CRC"

            with m.State("DATA"):
                receiving()
                with m.If(accept):
                    m.d.sync += [rx_crc.eq(crc16_next(rx_crc, byte)), bidx.eq(bidx + 1),
                                 shift.eq(Cat(shift[8:], byte))]
                    with m.If(bidx == 3):
                        write_word(first + widx, Cat(shift, byte))
                        m.d.sync += widx.eq(widx + 1)
                        with m.If(widx == count):
                            m.next = "CRC"

            with m.State("CRC"):
                receiving()
                with m.If(accept):
                    m.d.sync += [crc_lo.eq(byte), hidx.eq(1)]
                    with m.If(hidx == 1):
                        m.d.sync += [hidx.eq(0), corrupt.eq(self.overrun)]
                        with m.If((Cat(crc_lo, byte) == rx_crc) & ~corrupt & ~self.overrun):
                            count_up("frames")
                            m.next = "CHECK"
                        with m.Else():
                            count_up("crc_errors")
                            m.next = "HUNT"

            with m.State("CHECK"):
                m.d.sync += [bus_addr.eq(addr), widx.eq(0), beat.eq(0), bus_err.eq(0),
                             aw_done.eq(0), w_done.eq(0), dup.eq(0)]
                known = (cmd >= Cmd.REG_READ) & (cmd <= Cmd.LINK_INFO)
                with m.If(is_write & rec_valid & (seq == rec_seq) & (cmd == rec_cmd)):
                    m.d.sync += dup.eq(1)
                    count_up("duplicates")
                    finish(rec_status)
                with m.Elif(~known | ((cmd == Cmd.LINK_INFO) & (addr != 0))):
                    finish(Status.BAD_COMMAND)
                with m.Elif(addr[:2] != 0):
                    finish(Status.BAD_ADDRESS)
                with m.Elif(is_mem & (addr[:_PAGE_BITS] + 4 * (count + 1) > 1 << _PAGE_BITS)):
                    finish(Status.BAD_ADDRESS)
                with m.Elif(is_mem & ~mem_range_ok):
                    finish(Status.BUS_ERROR)
                with m.Else():
                    with m.Switch(cmd):
                        with m.Case(Cmd.REG_READ):
                            m.next = "REG_READ_ADDR"
                        with m.Case(Cmd.REG_WRITE):
                            m.next = "REG_WRITE_FETCH"
                        with m.Case(Cmd.MEM_READ):
                            m.next = "MEM_READ_ADDR"
                        with m.Case(Cmd.MEM_WRITE):
                            m.next = "MEM_WRITE_FETCH"
                        with m.Default():
                            m.next = "INFO"

            # ---- registers: one AXI4-Lite access per word, stop at the first error
            with m.State("REG_READ_ADDR"):
                with m.If(~csr_range_ok):
                    finish(Status.BUS_ERROR)
                with m.Else():
                    m.d.comb += csr.ar.valid.eq(1)
                    with m.If(csr.ar.ready):
                        m.next = "REG_READ_DATA"
            with m.State("REG_READ_DATA"):
                m.d.comb += csr.r.ready.eq(1)
                with m.If(csr.r.valid):
                    write_word(widx, csr.r.data)
                    m.d.sync += [widx.eq(widx + 1), bus_addr.eq(bus_addr + 4)]
                    with m.If(csr.r.resp != Resp.OKAY):
                        finish(Status.BUS_ERROR)
                    with m.Elif(widx == count):
                        finish(Status.OK)
                    with m.Else():
                        m.next = "REG_READ_ADDR"

            with m.State("REG_WRITE_FETCH"):
                # The buffer's read port has one cycle of latency.
                m.d.comb += rd.addr.eq(row(widx))
                m.d.sync += [aw_done.eq(0), w_done.eq(0)]
                with m.If(~csr_range_ok):
                    finish(Status.BUS_ERROR)
                with m.Else():
                    m.next = "REG_WRITE_REQ"
            with m.State("REG_WRITE_REQ"):
                m.d.comb += [rd.addr.eq(row(widx)), csr.aw.valid.eq(~aw_done),
                             csr.w.valid.eq(~w_done)]
                aw_now = aw_done | csr.aw.ready
                w_now = w_done | csr.w.ready
                m.d.sync += [aw_done.eq(aw_now), w_done.eq(w_now)]
                with m.If(aw_now & w_now):
                    m.next = "REG_WRITE_RESP"
            with m.State("REG_WRITE_RESP"):
                m.d.comb += csr.b.ready.eq(1)
                with m.If(csr.b.valid):
                    m.d.sync += [widx.eq(widx + 1), bus_addr.eq(bus_addr + 4)]
                    with m.If(csr.b.resp != Resp.OKAY):
                        finish(Status.BUS_ERROR)
                    with m.Elif(widx == count):
                        finish(Status.OK)
                    with m.Else():
                        m.next = "REG_WRITE_FETCH"

            # ---- memory: one INCR burst, every beat accepted
            with m.State("MEM_READ_ADDR"):
                m.d.comb += mem.ar.valid.eq(1)
                with m.If(mem.ar.ready):
                    m.next = "MEM_READ_DATA"
            with m.State("MEM_READ_DATA"):
                m.d.comb += mem.r.ready.eq(1)
                with m.If(mem.r.valid):
                    m.d.comb += [wr.addr.eq(beat), wr.data.eq(mem.r.data),
                                 wr.en.eq((1 << lanes) - 1)]
                    m.d.sync += beat.eq(beat + 1)
                    err = bus_err | (mem.r.resp != Resp.OKAY)
                    m.d.sync += bus_err.eq(err)
                    with m.If(mem.r.last):
                        finish(Mux(err, Status.BUS_ERROR, Status.OK))

            with m.State("MEM_WRITE_FETCH"):
                m.d.comb += rd.addr.eq(beat)
                m.next = "MEM_WRITE_SEND"
            with m.State("MEM_WRITE_SEND"):
                w_fire = mem.w.valid & mem.w.ready
                # Keep the read port one beat ahead: its data is the beat on W.
                m.d.comb += [rd.addr.eq(Mux(w_fire, beat + 1, beat)),
                             mem.aw.valid.eq(~aw_done), mem.w.valid.eq(~w_done)]
                aw_now = aw_done | mem.aw.ready
                w_now = w_done | (w_fire & mem.w.last)
                m.d.sync += [aw_done.eq(aw_now), w_done.eq(w_now)]
                with m.If(w_fire):
                    m.d.sync += beat.eq(beat + 1)
                with m.If(aw_now & w_now):
                    m.next = "MEM_WRITE_RESP"
            with m.State("MEM_WRITE_RESP"):
                m.d.comb += mem.b.ready.eq(1)
                with m.If(mem.b.valid):
                    finish(Mux(mem.b.resp == Resp.OKAY, Status.OK, Status.BUS_ERROR))

            with m.State("INFO"):
                info = [LINK_MAGIC, PROTOCOL_VERSION | MAX_WORDS << 8,
                        *(counters[name] for name in COUNTERS)]
                assert len(info) == INFO_WORDS
                word = Signal(32)
                with m.Switch(widx):
                    for k, value in enumerate(info):
                        with m.Case(k):
                            m.d.comb += word.eq(value)
                write_word(widx, word)
                m.d.sync += widx.eq(widx + 1)
                with m.If(widx == INFO_WORDS - 1):
                    finish(Status.OK)

            # ---- respond
            with m.State("FINISH"):
                reads = (cmd == Cmd.REG_READ) | (cmd == Cmd.MEM_READ)
                m.d.sync += [
                    rsp_len.eq(Mux(status != Status.OK, 0,
                                   Mux(cmd == Cmd.LINK_INFO, INFO_WORDS,
                                       Mux(reads, count + 1, 0)))),
                    pos.eq(first), sent.eq(0), tidx.eq(0), bidx.eq(0),
                    tx_crc.eq(CRC_INIT),
                ]
                with m.If(~dup):
                    m.d.sync += [rec_valid.eq(1), rec_seq.eq(seq), rec_cmd.eq(cmd),
                                 rec_status.eq(status)]
                with m.If(status != Status.OK):
                    count_up("error_responses")
                m.next = "RSP_HEADER"

            def load_word():
                m.d.sync += [tx_word.eq(rd.data.word_select(lane(pos), 32)), pos.eq(pos + 1),
                             sent.eq(sent + 1)]

            with m.State("RSP_HEADER"):
                responding()
                m.d.comb += sending.eq(1)
                with m.Switch(tidx):
                    for k, value in enumerate([RSP_SOF, seq, cmd, status, rsp_len[:8],
                                               rsp_len[8:]]):
                        with m.Case(k):
                            m.d.comb += self.tx.payload.eq(value)
                with m.If(transfer):
                    m.d.sync += tidx.eq(tidx + 1)
                    with m.If(tidx == RSP_HEADER_BYTES - 1):
                        m.d.sync += tidx.eq(0)
                        with m.If(rsp_len != 0):
                            load_word()
                            m.next = "RSP_DATA"
                        with m.Else():
                            m.next = "RSP_CRC"
            with m.State("RSP_DATA"):
                responding()
                m.d.comb += [sending.eq(1), self.tx.payload.eq(tx_word.word_select(bidx, 8))]
                with m.If(transfer):
                    m.d.sync += bidx.eq(bidx + 1)
                    with m.If(bidx == 3):
                        with m.If(sent == rsp_len):
                            m.next = "RSP_CRC"
                        with m.Else():
                            load_word()
            with m.State("RSP_CRC"):
                responding()
                m.d.comb += self.tx.payload.eq(tx_crc.word_select(tidx[0], 8))
                with m.If(transfer):
                    m.d.sync += tidx.eq(1)
                    with m.If(tidx[0]):
                        m.d.sync += tidx.eq(0)
                        m.next = "HUNT"

        m.d.comb += self.idle.eq(fsm.ongoing("HUNT"))
        return m
