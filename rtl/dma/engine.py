"""Descriptor-driven DMA engine: memory→stream (MM2S) and stream→memory (S2MM).

One AXI4 manager port serves both channels: MM2S uses the read channels
(AR/R), S2MM the write channels (AW/W/B), which AXI4 keeps independent. The
contract (descriptor, beat and status formats, error codes, ordering and
abort semantics) is written down in ``docs/dma.md``; :mod:`lpaccel.sim.golden.dma`
is its executable form.

Structure of each channel (one Component per box; streams joined with
``wiring.connect``, FIFOs are :class:`~lpaccel.rtl.utils.StructFIFO`)::

    descriptors ─► front ─┬─► command queue ─► _BurstIssuer ─► AR / AW
                          │                         │ burst records
                          │                         ▼
                          └─► descriptor queue ─► data side ◄─► R, data stream (MM2S)
                                                    │         data stream, W (S2MM)
                                                    ▼
                          B (S2MM) ─────────────► completion ─► status queue ─► status

- front (:class:`_Mm2sFront`, :class:`_S2mmFront`, both a
  :class:`_DescriptorFront`): window and length checks, beat count, and the
  command and descriptor queues;
- :class:`_BurstIssuer`: commands → INCR bursts on AR or AW, one record each;
- MM2S data side and completion, :class:`_Mm2sReader`: R beats realigned and
  packed, one status per descriptor once its last beat has left;
- S2MM data side, :class:`_S2mmWriter`: input packets shifted into W beats
  with strobes; a record per burst (bytes written) to the B side and the W
  half of the status;
- S2MM completion: :class:`_WriteResponses` matches B responses to the burst
  records and closes each descriptor (first error, bytes written);
  :class:`_S2mmStatus` joins the W and B halves into the status; the
  channel counts write bursts in flight for the issuer's credit.

The burst issuer splits a descriptor into INCR bursts (never across 4 KiB,
at most ``max_burst_beats``) and pushes one record per burst into a queue of
``max_outstanding`` entries, which bounds the bursts in flight. The data
side (R realigner for MM2S, W packer for S2MM) walks the records in order.
When a descriptor stops early (bus error, abort) the issuer closes it with a
*marker* record, so the data side always finds the end of every descriptor.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, exact_log2

from ..bus.axi import AXI4Signature, Burst, Resp
from ..regmap import DmaError
from ..utils import StructFIFO, check_choice, check_int, popcount

__all__ = ["DmaError", "DmaConfig", "DmaEngine"]


def _check_error_codes():
    # The channels pass a RRESP/BRESP error straight into a status code, so
    # the register map's dma_error_e must keep the AXI numbering for them.
    for name in ("SLVERR", "DECERR"):
        if DmaError[name] != Resp[name]:
            raise ValueError(f"dma_error_e.{name} is {int(DmaError[name])} in the register map "
                             f"but the DMA engine passes the AXI response code "
                             f"{int(Resp[name])} through; give it the value {int(Resp[name])} "
                             f"in rtl/regmap/lpaccel.rdl")


_check_error_codes()


@dataclass(frozen=True)
class DmaConfig:
    """Parameters of one :class:`DmaEngine`.

    Parameters
    ----------
    data_width : int
        AXI4 data width and stream beat width in bits: 32, 64, 128, 256 or 512.
    addr_width : int
        AXI4 byte address width, 12 to 64.
    len_width : int
        Width of a descriptor's byte length (longest descriptor
        ``2**len_width - 1`` bytes), 1 to 32 and at most ``addr_width``.
    tag_width : int
        Width of the descriptor tag echoed in its status, 1 to 16.
    flags_width : int
        Width of the descriptor flags echoed in its status (meaning is the
        software's, e.g. "interrupt on completion"), 1 to 8.
    max_outstanding : int
        Bursts in flight per direction (issued and not completed), 1 to 32.
    max_burst_beats : int
        Longest burst in beats, 1 to 256 (AXI4 INCR).
    queue_depth : int
        Descriptors accepted ahead of the one in progress, per channel, 1 to 64.
    id_width : int
        AXI4 ID width (all transactions use ID 0), 0 to 16.
    """

    data_width: int = 64
    addr_width: int = 32
    len_width: int = 24
    tag_width: int = 8
    flags_width: int = 4
    max_outstanding: int = 4
    max_burst_beats: int = 16
    queue_depth: int = 4
    id_width: int = 1

    def __post_init__(self):
        def check(name, low, high):
            check_int(f"DmaConfig.{name}", getattr(self, name), low, high)
        check_choice("DmaConfig.data_width", self.data_width, (32, 64, 128, 256, 512))
        check("addr_width", 12, 64)
        check("len_width", 1, min(32, self.addr_width))
        check("tag_width", 1, 16)
        check("flags_width", 1, 8)
        check("max_outstanding", 1, 32)
        check("max_burst_beats", 1, 256)
        check("queue_depth", 1, 64)
        check("id_width", 0, 16)

    @property
    def beat_bytes(self):
        """Bytes per beat (``data_width // 8``)."""
        return self.data_width // 8

    @property
    def beat_shift(self):
        """``log2(beat_bytes)``."""
        return exact_log2(self.beat_bytes)

    @property
    def descriptor_layout(self):
        """Layout of a descriptor: ``addr``, ``length`` (bytes), ``flags``, ``tag``."""
        return data.StructLayout({
            "addr": self.addr_width,
            "length": self.len_width,
            "flags": self.flags_width,
            "tag": self.tag_width,
        })

    @property
    def beat_layout(self):
        """Layout of a data stream beat: ``data``, ``bytes``, ``last``.

        ``bytes`` counts the valid bytes, low lanes first.
        """
        return data.StructLayout({
            "data": self.data_width,
            "bytes": self.beat_shift + 1,
            "last": 1,
        })

    @property
    def status_layout(self):
        """Layout of a status: ``tag``, ``flags``, ``bytes`` (moved), ``error``.

        ``error`` is a :class:`DmaError`.
        """
        return data.StructLayout({
            "tag": self.tag_width,
            "flags": self.flags_width,
            "bytes": self.len_width,
            "error": DmaError,
        })

    @property
    def axi_signature(self):
        """The :class:`AXI4Signature` of the engine's manager port."""
        return AXI4Signature(addr_width=self.addr_width, data_width=self.data_width,
                             id_width=self.id_width)

    @property
    def desc_depth(self):
        """Descriptors a channel accepts ahead of the one in progress (``queue_depth``)."""
        return self.queue_depth

    @property
    def status_depth(self):
        """Completion statuses a channel holds before it stalls: ``queue_depth + 2``.

        Every descriptor in the command queue, the one in progress and the one
        completing can each leave a status without the software popping one.
        The register map reports this value (``CAP_DMA.STATUS_DEPTH``).
        """
        return self.queue_depth + 2

    @property
    def _seq_bits(self):
        # A descriptor sequence number must tell apart every descriptor that
        # can be between the issuer and the completion side at once.
        return bits_for(2 * self.queue_depth + 2 * self.max_outstanding + 8) + 1

    @property
    def _beats_bits(self):
        return self.len_width + 1


def _min(a, b):
    return Mux(a < b, a, b)


def _lane_mask(count, lanes):
    """``lanes`` bits, the low ``count`` of them set."""
    return Cat(*(count > k for k in range(lanes)))


def _fifo(m, name, layout, depth):
    """A :class:`StructFIFO` added to ``m`` as submodule ``name``."""
    m.submodules[name] = fifo = StructFIFO(layout, depth)
    return fifo


def _command_layout(cfg):
    return data.StructLayout({"addr": cfg.addr_width, "beats": cfg._beats_bits, "ok": 1})


def _record_layout():
    return data.StructLayout({"beats": 9, "desc_end": 1, "marker": 1})


class _BurstIssuer(wiring.Component):
    """Splits commands into AXI4 INCR bursts on one address channel.

    For each command with ``ok`` it issues bursts of at most
    ``max_burst_beats`` beats that never cross a 4 KiB boundary, and pushes
    one record per burst (``desc_end`` on the descriptor's final one) when
    the burst is launched, so the record queue's depth bounds the bursts in
    flight. While ``aborting``, or on ``cancel`` of the descriptor it works
    on, it stops at the next burst boundary and pushes a marker record with
    ``desc_end`` instead. Commands without ``ok`` produce no record.

    The record stream's ``valid`` is raised only while ``ready`` is high
    (it feeds a FIFO, whose write side ignores ``valid`` when full anyway):
    the record is pushed in the very cycle the burst is launched.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "cmd": In(stream.Signature(_command_layout(cfg))),
            "records": Out(stream.Signature(_record_layout())),
            # AR or AW channel of the manager port (both have the same members).
            "ax": Out(cfg.axi_signature.members["ar"].signature),
            "aborting": In(1),
            "cancel": In(1),
            "cancel_seq": In(cfg._seq_bits),
            "credit": In(1, init=1),   # another burst may be launched
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg, cmd, rec, ax = self.cfg, self.cmd, self.records, self.ax
        m = Module()
        lg = cfg.beat_shift
        addr = Signal(cfg.addr_width - lg)   # beat address
        left = Signal(cfg._beats_bits)
        seq = Signal(cfg._seq_bits)
        cur_seq = Signal(cfg._seq_bits)

        page_beats = 4096 >> lg
        to_bound = Signal(range(page_beats + 1))
        m.d.comb += to_bound.eq(page_beats - addr[:12 - lg])
        n = Signal(9)
        m.d.comb += n.eq(_min(left, _min(to_bound, cfg.max_burst_beats)))
        final = n == left

        m.d.comb += [
            ax.id.eq(0),
            ax.size.eq(lg),
            ax.burst.eq(Burst.INCR),
            ax.lock.eq(0),
            ax.cache.eq(0b0011),
            ax.prot.eq(0),
            ax.qos.eq(0),
        ]
        free = ~ax.valid | ax.ready
        with m.If(ax.valid & ax.ready):
            m.d.sync += ax.valid.eq(0)

        with m.FSM(name="issuer") as fsm:
            with m.State("IDLE"):
                with m.If(cmd.valid):
                    m.d.comb += cmd.ready.eq(1)
                    m.d.sync += [cur_seq.eq(seq), seq.eq(seq + 1),
                                 addr.eq(cmd.payload.addr[lg:]), left.eq(cmd.payload.beats)]
                    with m.If(cmd.payload.ok):
                        m.next = "RUN"
            with m.State("RUN"):
                stop = self.aborting | (self.cancel & (self.cancel_seq == cur_seq))
                with m.If(stop):
                    with m.If(rec.ready):
                        m.d.comb += [rec.valid.eq(1), rec.payload.marker.eq(1),
                                     rec.payload.desc_end.eq(1)]
                        m.next = "IDLE"
                with m.Elif(free & rec.ready & self.credit):
                    m.d.comb += [rec.valid.eq(1), rec.payload.beats.eq(n),
                                 rec.payload.desc_end.eq(final)]
                    m.d.sync += [ax.valid.eq(1), ax.addr.eq(Cat(Const(0, lg), addr)),
                                 ax.len.eq(n - 1), addr.eq(addr + n), left.eq(left - n)]
                    with m.If(final):
                        m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | ax.valid)
        return m


def _window_ok(m, cfg, addr, length, base, size):
    end = Signal(cfg.addr_width + 1)
    limit = Signal(cfg.addr_width + 2)
    m.d.comb += [end.eq(addr + length), limit.eq(base + size)]
    return (addr >= base) & (end <= limit) & (end <= (1 << cfg.addr_width))


class _DescriptorFront(wiring.Component):
    """Accepts descriptors into a command queue and a descriptor queue.

    A descriptor is checked against the window, counted in bus beats and
    pushed, in one cycle, as a command (for the burst issuer) and as a
    descriptor entry (for the data side); the two queues hold
    ``queue_depth`` each. Nothing is accepted while ``aborting``. A
    descriptor outside the window or of zero length gets a command without
    ``ok`` (no burst) and an entry without ``ok``. The channel-specific
    fields of the entry come from :meth:`entry`.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "descriptors": In(stream.Signature(cfg.descriptor_layout)),
            "window_base": In(cfg.addr_width),
            "window_size": In(cfg.addr_width + 1),
            "aborting": In(1),
            "cmd": Out(stream.Signature(_command_layout(cfg))),
            "desc": Out(stream.Signature(self.desc_layout(cfg))),
        })

    @staticmethod
    def desc_layout(cfg):
        """Layout of a descriptor queue entry (channel-specific)."""
        raise NotImplementedError

    def entry(self, m, p, span, desc_w):
        """Assignments to the channel-specific fields ``desc_w`` of descriptor ``p``.

        ``span`` is the descriptor's bus beat count minus one.
        """
        raise NotImplementedError

    def elaborate(self, platform):
        cfg, desc_in = self.cfg, self.descriptors
        m = Module()
        lg = cfg.beat_shift
        cmds = _fifo(m, "cmds", _command_layout(cfg), cfg.queue_depth)
        descs = _fifo(m, "descs", self.desc_layout(cfg), cfg.queue_depth)
        cmd_w, desc_w = cmds.w_stream.payload, descs.w_stream.payload

        p = desc_in.payload
        win = _window_ok(m, cfg, p.addr, p.length, self.window_base, self.window_size)
        last_addr = Signal(cfg.addr_width + 1)
        m.d.comb += last_addr.eq(p.addr + p.length - 1)
        span = Signal(cfg._beats_bits)   # bus beats - 1
        m.d.comb += span.eq(last_addr[lg:] - p.addr[lg:])
        m.d.comb += [
            desc_in.ready.eq(~self.aborting & cmds.w_stream.ready & descs.w_stream.ready),
            cmds.w_stream.valid.eq(desc_in.valid & desc_in.ready),
            descs.w_stream.valid.eq(desc_in.valid & desc_in.ready),
            cmd_w.addr.eq(p.addr), cmd_w.beats.eq(span + 1),
            cmd_w.ok.eq(win & (p.length != 0)),
            desc_w.tag.eq(p.tag), desc_w.flags.eq(p.flags), desc_w.offset.eq(p.addr[:lg]),
            desc_w.ok.eq(win & (p.length != 0)),
            desc_w.code.eq(Mux(win, DmaError.OK, DmaError.WINDOW)),
        ]
        m.d.comb += self.entry(m, p, span, desc_w)
        wiring.connect(m, cmds.r_stream, wiring.flipped(self.cmd))
        wiring.connect(m, descs.r_stream, wiring.flipped(self.desc))
        return m


class _Mm2sFront(_DescriptorFront):
    """MM2S descriptor front: the entry also says how the read beats realign."""

    @staticmethod
    def desc_layout(cfg):
        lg = cfg.beat_shift
        return data.StructLayout({
            "tag": cfg.tag_width, "flags": cfg.flags_width, "offset": lg, "need_flush": 1,
            "last_bytes": lg + 1, "ok": 1, "code": DmaError})

    def entry(self, m, p, span, desc_w):
        cfg, lg = self.cfg, self.cfg.beat_shift
        out_beats_m1 = Signal(cfg.len_width)
        m.d.comb += out_beats_m1.eq((p.length - 1) >> lg)
        return [
            # One read beat more than output beats, unless the tail of the
            # first read beat and the whole rest fit the output beat count.
            desc_w.need_flush.eq((p.addr[:lg] != 0) & (span == out_beats_m1)),
            desc_w.last_bytes.eq(((p.length - 1) & (cfg.beat_bytes - 1)) + 1),
        ]


class _S2mmFront(_DescriptorFront):
    """S2MM descriptor front: the entry also keeps the length, to check the packet's."""

    @staticmethod
    def desc_layout(cfg):
        return data.StructLayout({
            "tag": cfg.tag_width, "flags": cfg.flags_width, "offset": cfg.beat_shift,
            "length": cfg.len_width, "ok": 1, "code": DmaError})

    def entry(self, m, p, span, desc_w):
        return [desc_w.length.eq(p.length)]


class _Channel(Elaboratable):
    """One DMA direction: ``busy`` while it holds work, ``status_pending``
    while a status record waits for the host."""

    def __init__(self, cfg, engine):
        self.cfg = cfg
        self.e = engine
        self.busy = Signal()
        self.status_pending = Signal()


class _Mm2sReader(wiring.Component):
    """MM2S data side: R beats → realigned, packed output beats, one status each.

    Takes one descriptor entry at a time and walks its burst records in
    order. Read beats are realigned by the descriptor's start offset (each
    output beat is ``(prev ++ cur)[shift : shift + B]``), a last partial
    beat is flushed, and a descriptor that stops early (window, bus error,
    abort) ends its packet with a zero-byte beat. On a bus error it drains
    the rest of the descriptor's bursts and asks the issuer to ``cancel``
    them. The status goes out once the last output beat has been taken.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "desc": In(stream.Signature(_Mm2sFront.desc_layout(cfg))),
            "records": In(stream.Signature(_record_layout())),
            "r": Out(cfg.axi_signature.members["r"].signature),   # manager side
            "out": Out(stream.Signature(cfg.beat_layout)),
            "status": Out(stream.Signature(cfg.status_layout)),
            "aborting": In(1),
            "cancel": Out(1),
            "cancel_seq": Out(cfg._seq_bits),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg, r, out, aborting = self.cfg, self.r, self.out, self.aborting
        descs, records, status_w = self.desc, self.records, self.status.payload
        m = Module()
        B = cfg.beat_bytes
        tag = Signal(cfg.tag_width)
        flags = Signal(cfg.flags_width)
        shift = Signal(cfg.beat_shift + 1)   # bytes: output = (prev ++ cur)[shift : shift + B]
        skip_first = Signal()
        need_flush = Signal()
        last_bytes = Signal(cfg.beat_shift + 1)
        code = Signal(DmaError)
        moved = Signal(cfg.len_width)
        first = Signal()
        prev = Signal(cfg.data_width)
        seq = Signal(cfg._seq_bits)

        out_valid = Signal()
        out_data = Signal(cfg.data_width)
        out_bytes = Signal(cfg.beat_shift + 1)
        out_last = Signal()
        m.d.comb += [out.valid.eq(out_valid), out.payload.data.eq(out_data),
                     out.payload.bytes.eq(out_bytes), out.payload.last.eq(out_last)]
        out_free = ~out_valid | out.ready
        with m.If(out.ready):
            m.d.sync += out_valid.eq(0)

        def emit(data_value, nbytes, last):
            m.d.sync += [out_valid.eq(1), out_data.eq(data_value), out_bytes.eq(nbytes),
                         out_last.eq(last), moved.eq(moved + nbytes)]

        rec = records.payload
        m.d.comb += [self.cancel_seq.eq(seq)]
        with m.FSM(name="mm2s") as fsm:
            with m.State("IDLE"):
                d = descs.payload
                with m.If(descs.valid):
                    m.d.comb += descs.ready.eq(1)
                    m.d.sync += [tag.eq(d.tag), flags.eq(d.flags),
                                 shift.eq(Mux(d.offset == 0, B, d.offset)),
                                 skip_first.eq(d.offset != 0), need_flush.eq(d.need_flush),
                                 last_bytes.eq(d.last_bytes), code.eq(d.code),
                                 moved.eq(0), first.eq(1)]
                    m.next = "STREAM"
                    with m.If(~d.ok):
                        m.next = "TERM"
            with m.State("STREAM"):
                with m.If(aborting):
                    m.d.sync += code.eq(DmaError.ABORTED)
                    m.next = "DRAIN"
                with m.Else():
                    m.d.comb += r.ready.eq(records.valid & ~rec.marker & out_free)
                    with m.If(r.valid & r.ready):
                        final = rec.desc_end & r.last
                        m.d.comb += records.ready.eq(r.last)
                        with m.If(r.resp[1]):
                            # RRESP SLVERR/DECERR are DmaError codes (_check_error_codes).
                            m.d.sync += code.eq(r.resp)
                            m.next = "DRAIN"
                            with m.If(final):
                                m.next = "TERM"
                        with m.Else():
                            m.d.sync += [prev.eq(r.data), first.eq(0)]
                            with m.If(~(first & skip_first)):
                                last = final & ~need_flush
                                emit(Cat(prev, r.data).bit_select(shift * 8, cfg.data_width),
                                     Mux(last, last_bytes, B), last)
                            with m.If(final):
                                m.next = "FLUSH"
                                with m.If(~need_flush):
                                    m.next = "DONE"
            with m.State("DRAIN"):
                # Everything left of this descriptor on the bus is read and
                # dropped; the issuer stops it early (cancel/abort marker).
                m.d.comb += [self.cancel.eq(1),
                             r.ready.eq(records.valid & ~rec.marker)]
                with m.If(records.valid & rec.marker):
                    m.d.comb += records.ready.eq(1)
                    m.next = "TERM"
                with m.Elif(r.valid & r.ready & r.last):
                    m.d.comb += records.ready.eq(1)
                    with m.If(rec.desc_end):
                        m.next = "TERM"
            with m.State("FLUSH"):
                with m.If(aborting):
                    m.d.sync += code.eq(DmaError.ABORTED)
                    m.next = "TERM"
                with m.Elif(out_free):
                    emit(Cat(prev, Const(0, cfg.data_width)).bit_select(shift * 8,
                                                                         cfg.data_width),
                         last_bytes, 1)
                    m.next = "DONE"
            with m.State("TERM"):
                # A descriptor that moved fewer bytes than asked, or none,
                # ends its packet with a zero-byte beat.
                with m.If(out_free):
                    emit(0, 0, 1)
                    with m.If(aborting & (code == DmaError.OK)):
                        m.d.sync += code.eq(DmaError.ABORTED)
                    m.next = "DONE"
            with m.State("DONE"):
                with m.If(~out_valid & self.status.ready):
                    m.d.comb += [self.status.valid.eq(1), status_w.tag.eq(tag),
                                 status_w.flags.eq(flags), status_w.bytes.eq(moved),
                                 status_w.error.eq(code)]
                    m.d.sync += seq.eq(seq + 1)
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | out_valid)
        return m


class _Mm2s(_Channel):
    """MM2S channel: descriptors → AR bursts, R beats → realigned, packed beats."""

    def elaborate(self, platform):
        cfg, e = self.cfg, self.e
        m = Module()
        m.submodules.front = front = _Mm2sFront(cfg)
        m.submodules.issuer = issuer = _BurstIssuer(cfg)
        m.submodules.reader = reader = _Mm2sReader(cfg)
        records = _fifo(m, "records", _record_layout(), cfg.max_outstanding)
        status = _fifo(m, "status", cfg.status_layout, cfg.status_depth)
        wiring.connect(m, wiring.flipped(e.mm2s_descriptors), front.descriptors)
        wiring.connect(m, front.cmd, issuer.cmd)
        wiring.connect(m, issuer.records, records.w_stream)
        wiring.connect(m, issuer.ax, wiring.flipped(e.bus.ar))
        wiring.connect(m, front.desc, reader.desc)
        wiring.connect(m, records.r_stream, reader.records)
        wiring.connect(m, wiring.flipped(e.bus.r), reader.r)
        wiring.connect(m, reader.out, wiring.flipped(e.mm2s_data))
        wiring.connect(m, reader.status, status.w_stream)
        wiring.connect(m, status.r_stream, wiring.flipped(e.mm2s_status))
        m.d.comb += [
            front.window_base.eq(e.window_base), front.window_size.eq(e.window_size),
            front.aborting.eq(e._aborting), issuer.aborting.eq(e._aborting),
            reader.aborting.eq(e._aborting),
            issuer.cancel.eq(reader.cancel), issuer.cancel_seq.eq(reader.cancel_seq),
        ]
        m.d.comb += self.busy.eq(front.cmd.valid | front.desc.valid |
                                 records.r_stream.valid | issuer.busy | reader.busy)
        m.d.comb += self.status_pending.eq(status.r_stream.valid)
        return m


def _brec_layout(cfg):
    # One per write burst (bytes it writes) or descriptor-closing marker.
    return data.StructLayout({"bytes": bits_for(256 * cfg.beat_bytes), "desc_end": 1,
                              "marker": 1})


def _wres_layout(cfg):
    # The W side's half of an S2MM status.
    return data.StructLayout({"tag": cfg.tag_width, "flags": cfg.flags_width,
                              "code": DmaError, "aborted": 1, "mismatch": 1})


def _bres_layout(cfg):
    # The B side's half of an S2MM status.
    return data.StructLayout({"err": Resp, "bytes": cfg.len_width})


class _S2mmWriter(wiring.Component):
    """S2MM data side: input packets → W beats with strobes.

    Takes one descriptor entry at a time and walks its burst records in
    order. Input bytes are shifted to the start offset (each W beat is
    ``(prev ++ cur)[B - offset : 2B - offset]``, strobes likewise), and a
    burst record (bytes written) goes to ``brecs`` with the burst's last
    beat. The rest of a packet longer than its descriptor, or of a
    descriptor stopped early, is taken and dropped. The W side's half of
    the status goes to ``wres``.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "desc": In(stream.Signature(_S2mmFront.desc_layout(cfg))),
            "records": In(stream.Signature(_record_layout())),
            "inp": In(stream.Signature(cfg.beat_layout)),
            "w": Out(cfg.axi_signature.members["w"].signature),
            "brecs": Out(stream.Signature(_brec_layout(cfg))),
            "wres": Out(stream.Signature(_wres_layout(cfg))),
            "aborting": In(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg, inp, w, aborting = self.cfg, self.inp, self.w, self.aborting
        descs, records, brecs, wres = self.desc, self.records, self.brecs, self.wres
        brec_w, wres_w = brecs.payload, wres.payload
        m = Module()
        B, lg = cfg.beat_bytes, cfg.beat_shift
        tag = Signal(cfg.tag_width)
        flags = Signal(cfg.flags_width)
        code = Signal(DmaError)
        shift = Signal(lg + 1)        # W beat = (prev ++ cur)[B - offset : 2B - offset]
        rem = Signal(cfg.len_width)   # descriptor bytes not yet taken from the packet
        ended = Signal()              # the packet's last beat was taken
        mismatch = Signal()
        aborted = Signal()
        prev = Signal(cfg.data_width)
        prev_mask = Signal(B)
        beat_in_burst = Signal(8)
        burst_bytes = Signal(len(brec_w.bytes))

        w_valid = Signal()
        m.d.comb += w.valid.eq(w_valid)
        w_free = ~w_valid | w.ready
        with m.If(w.ready):
            m.d.sync += w_valid.eq(0)

        # Bytes of the offered input beat that belong to the descriptor, and
        # whether it shows that the packet length differs from the length.
        # ``take`` is at most one beat: it is formed from ``rem``'s low bits and one
        # wide "at least a beat left" test, so the lane mask and the strobe count
        # after it stay short whatever len_width is (a 32-bit comparison there was
        # the SoC's critical path).
        ip = inp.payload
        offered = Mux(ip.last, ip.bytes, B)
        beat_left = Signal()          # rem >= B
        m.d.comb += beat_left.eq(rem[lg:] != 0)
        take = Signal(lg + 1)
        m.d.comb += take.eq(Mux(beat_left, offered, _min(offered, rem[:lg])))
        beat_mismatch = Mux(ip.last, ip.bytes != rem, ~beat_left)

        def consume():
            m.d.sync += [rem.eq(rem - take), mismatch.eq(mismatch | beat_mismatch)]
            with m.If(ip.last):
                m.d.sync += ended.eq(1)

        rec = records.payload
        with m.FSM(name="s2mm") as fsm:
            with m.State("IDLE"):
                d = descs.payload
                with m.If(descs.valid & brecs.ready):
                    m.d.comb += descs.ready.eq(1)
                    m.d.sync += [tag.eq(d.tag), flags.eq(d.flags), code.eq(d.code),
                                 shift.eq(B - d.offset), rem.eq(d.length), ended.eq(0),
                                 mismatch.eq(0), aborted.eq(aborting), prev_mask.eq(0),
                                 beat_in_burst.eq(0), burst_bytes.eq(0)]
                    m.next = "WRITE"
                    with m.If(~d.ok):
                        # No bus beat: close its write-response accounting now.
                        m.d.comb += [brecs.valid.eq(1), brec_w.marker.eq(1),
                                     brec_w.desc_end.eq(1)]
                        m.next = "DISCARD"
            with m.State("WRITE"):
                with m.If(records.valid & rec.marker):
                    with m.If(brecs.ready):
                        m.d.comb += [records.ready.eq(1), brecs.valid.eq(1),
                                     brec_w.marker.eq(1), brec_w.desc_end.eq(1)]
                        m.next = "DISCARD"
                with m.Elif(records.valid & w_free):
                    need = (rem != 0) & ~ended & ~aborting
                    wlast = beat_in_burst == rec.beats - 1
                    with m.If((~need | inp.valid) & (~wlast | brecs.ready)):
                        m.d.comb += inp.ready.eq(need)
                        cur = Mux(need, ip.data, 0)
                        cur_mask = Mux(need, _lane_mask(take, B), 0)
                        strb = Signal(B)
                        m.d.comb += strb.eq(Cat(prev_mask, cur_mask).bit_select(shift, B))
                        beat_bytes = burst_bytes + popcount(strb)
                        m.d.sync += [
                            w_valid.eq(1), w.last.eq(wlast), w.strb.eq(strb),
                            w.data.eq(Cat(prev, cur).bit_select(shift * 8, cfg.data_width)),
                            prev.eq(cur), prev_mask.eq(cur_mask),
                            beat_in_burst.eq(beat_in_burst + 1), burst_bytes.eq(beat_bytes),
                        ]
                        with m.If(need):
                            consume()
                        with m.If(wlast):
                            m.d.comb += [records.ready.eq(1), brecs.valid.eq(1),
                                         brec_w.bytes.eq(beat_bytes),
                                         brec_w.desc_end.eq(rec.desc_end)]
                            m.d.sync += [beat_in_burst.eq(0), burst_bytes.eq(0)]
                            with m.If(rec.desc_end):
                                m.next = "DISCARD"
            with m.State("DISCARD"):
                # The rest of the packet, up to its last beat, is taken and
                # dropped (longer packet, window error, bus error). An abort
                # leaves the input stream where it is.
                with m.If(ended | aborting):
                    m.next = "DONE"
                with m.Else():
                    m.d.comb += inp.ready.eq(1)
                    with m.If(inp.valid):
                        consume()
            with m.State("DONE"):
                with m.If(wres.ready):
                    m.d.comb += [wres.valid.eq(1), wres_w.tag.eq(tag),
                                 wres_w.flags.eq(flags), wres_w.code.eq(code),
                                 wres_w.aborted.eq(aborted), wres_w.mismatch.eq(mismatch)]
                    m.next = "IDLE"
        with m.If(aborting & ~ended & ~fsm.ongoing("IDLE") & ~fsm.ongoing("DONE")):
            m.d.sync += aborted.eq(1)
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | w_valid)
        return m


class _WriteResponses(wiring.Component):
    """S2MM completion side: B responses → one result per descriptor.

    Walks the burst records in order: each B response answers one burst,
    and the record with ``desc_end`` (or a marker) closes the descriptor
    with the first error response and the bytes written before it. An
    error asks the issuer to ``cancel`` the rest of that descriptor
    (``cancel_seq`` counts closed descriptors, as the issuer counts
    commands).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "brecs": In(stream.Signature(_brec_layout(cfg))),
            "b": Out(cfg.axi_signature.members["b"].signature),   # manager side
            "result": Out(stream.Signature(_bres_layout(cfg))),
            "cancel": Out(1),
            "cancel_seq": Out(cfg._seq_bits),
        })

    def elaborate(self, platform):
        cfg, b, brecs, res = self.cfg, self.b, self.brecs, self.result
        m = Module()
        berr = Signal(Resp)
        bbytes = Signal(cfg.len_width)
        bseq = Signal(cfg._seq_bits)
        brec, res_w = brecs.payload, res.payload
        m.d.comb += [self.cancel.eq(berr != 0), self.cancel_seq.eq(bseq)]
        m.d.comb += b.ready.eq(brecs.valid & ~brec.marker & res.ready)
        new_err = Mux(berr != 0, berr, Mux(b.resp[1], b.resp, 0))
        new_bytes = Mux(new_err == 0, bbytes + brec.bytes, bbytes)
        with m.If(brecs.valid & brec.marker & res.ready):
            m.d.comb += [brecs.ready.eq(1), res.valid.eq(1),
                         res_w.err.eq(berr), res_w.bytes.eq(bbytes)]
            m.d.sync += [berr.eq(0), bbytes.eq(0), bseq.eq(bseq + 1)]
        with m.Elif(b.valid & b.ready):
            m.d.comb += brecs.ready.eq(1)
            with m.If(brec.desc_end):
                m.d.comb += [res.valid.eq(1), res_w.err.eq(new_err),
                             res_w.bytes.eq(new_bytes)]
                m.d.sync += [berr.eq(0), bbytes.eq(0), bseq.eq(bseq + 1)]
            with m.Else():
                m.d.sync += [berr.eq(new_err), bbytes.eq(new_bytes)]
        return m


class _S2mmStatus(wiring.Component):
    """Joins the W and B halves of an S2MM status; the first error wins:
    bus error, then window error, abort, length mismatch."""

    def __init__(self, cfg):
        super().__init__({
            "wres": In(stream.Signature(_wres_layout(cfg))),
            "bres": In(stream.Signature(_bres_layout(cfg))),
            "status": Out(stream.Signature(cfg.status_layout)),
        })

    def elaborate(self, platform):
        wres, bres, status = self.wres, self.bres, self.status
        wr, br, status_w = wres.payload, bres.payload, status.payload
        m = Module()
        with m.If(wres.valid & bres.valid & status.ready):
            m.d.comb += [wres.ready.eq(1), bres.ready.eq(1), status.valid.eq(1),
                         status_w.tag.eq(wr.tag), status_w.flags.eq(wr.flags),
                         status_w.bytes.eq(br.bytes)]
            with m.If(br.err != 0):
                m.d.comb += status_w.error.eq(br.err)
            with m.Elif(wr.code != DmaError.OK):
                m.d.comb += status_w.error.eq(wr.code)
            with m.Elif(wr.aborted):
                m.d.comb += status_w.error.eq(DmaError.ABORTED)
            with m.Elif(wr.mismatch):
                m.d.comb += status_w.error.eq(DmaError.LENGTH_MISMATCH)
            with m.Else():
                m.d.comb += status_w.error.eq(DmaError.OK)
        return m


class _S2mm(_Channel):
    """S2MM channel: descriptors → AW bursts, input packets → W beats, B → status."""

    def elaborate(self, platform):
        cfg, e = self.cfg, self.e
        m = Module()
        m.submodules.front = front = _S2mmFront(cfg)
        m.submodules.issuer = issuer = _BurstIssuer(cfg)
        m.submodules.writer = writer = _S2mmWriter(cfg)
        m.submodules.bside = bside = _WriteResponses(cfg)
        m.submodules.join = join = _S2mmStatus(cfg)
        records = _fifo(m, "records", _record_layout(), cfg.max_outstanding)
        # Room for every write burst in flight (the issuer's credit below)
        # plus the markers of the descriptors in flight, so the W side never
        # waits for a write response: W data never depends on B.
        brecs = _fifo(m, "brecs", _brec_layout(cfg), cfg.max_outstanding + cfg.status_depth)
        wres = _fifo(m, "wres", _wres_layout(cfg), 2)
        bres = _fifo(m, "bres", _bres_layout(cfg), 2)
        status = _fifo(m, "status", cfg.status_layout, cfg.status_depth)
        wiring.connect(m, wiring.flipped(e.s2mm_descriptors), front.descriptors)
        wiring.connect(m, front.cmd, issuer.cmd)
        wiring.connect(m, issuer.records, records.w_stream)
        wiring.connect(m, issuer.ax, wiring.flipped(e.bus.aw))
        wiring.connect(m, front.desc, writer.desc)
        wiring.connect(m, records.r_stream, writer.records)
        wiring.connect(m, wiring.flipped(e.s2mm_data), writer.inp)
        wiring.connect(m, writer.w, wiring.flipped(e.bus.w))
        wiring.connect(m, writer.brecs, brecs.w_stream)
        wiring.connect(m, writer.wres, wres.w_stream)
        wiring.connect(m, brecs.r_stream, bside.brecs)
        wiring.connect(m, wiring.flipped(e.bus.b), bside.b)
        wiring.connect(m, bside.result, bres.w_stream)
        wiring.connect(m, wres.r_stream, join.wres)
        wiring.connect(m, bres.r_stream, join.bres)
        wiring.connect(m, join.status, status.w_stream)
        wiring.connect(m, status.r_stream, wiring.flipped(e.s2mm_status))
        m.d.comb += [
            front.window_base.eq(e.window_base), front.window_size.eq(e.window_size),
            front.aborting.eq(e._aborting), issuer.aborting.eq(e._aborting),
            writer.aborting.eq(e._aborting),
            issuer.cancel.eq(bside.cancel), issuer.cancel_seq.eq(bside.cancel_seq),
        ]

        # Write bursts launched and not yet answered stay within max_outstanding.
        in_flight = Signal(range(cfg.max_outstanding + 1))
        launched = issuer.records.valid & ~issuer.records.payload.marker
        answered = e.bus.b.valid & e.bus.b.ready
        m.d.sync += in_flight.eq(in_flight + launched - answered)
        m.d.comb += issuer.credit.eq(in_flight < cfg.max_outstanding)

        m.d.comb += self.busy.eq(front.cmd.valid | front.desc.valid |
                                 records.r_stream.valid | issuer.busy | writer.busy |
                                 brecs.r_stream.valid | wres.r_stream.valid |
                                 bres.r_stream.valid)
        m.d.comb += self.status_pending.eq(status.r_stream.valid)
        return m


class DmaEngine(wiring.Component):
    """Descriptor-driven DMA with an MM2S and an S2MM channel on one AXI4 port.

    Each channel takes descriptors (``addr``, ``length`` in bytes, ``flags``,
    ``tag``), moves the bytes with AXI4 INCR bursts that never cross a 4 KiB
    boundary, and reports one status per descriptor, in descriptor order.
    Byte-exact for any start address and length; see ``docs/dma.md`` for the
    full contract.

    Parameters
    ----------
    config : DmaConfig

    Attributes
    ----------
    bus : Out(AXI4Signature)
        Manager port; MM2S uses AR/R, S2MM uses AW/W/B. All IDs are 0.
    mm2s_descriptors : In(stream.Signature(config.descriptor_layout))
    mm2s_data : Out(stream.Signature(config.beat_layout))
        One packet per descriptor, ending with ``last``. Every beat but the
        last carries ``beat_bytes`` bytes; the last carries 1 to
        ``beat_bytes`` bytes if the descriptor completed with a non-zero
        length, else 0 bytes (zero length, or stopped early).
    mm2s_status : Out(stream.Signature(config.status_layout))
    s2mm_descriptors : In(stream.Signature(config.descriptor_layout))
    s2mm_data : In(stream.Signature(config.beat_layout))
        One packet per descriptor, byte-packed (``bytes`` is only read on
        the ``last`` beat; earlier beats are full).
    s2mm_status : Out(stream.Signature(config.status_layout))
    window_base : In(addr_width)
        First byte address a descriptor may touch.
    window_size : In(addr_width + 1)
        Size of the window in bytes (``2**addr_width`` for everything).
    abort : In(1)
        A high cycle requests an abort of both channels.
    idle : Out(1)
        Nothing accepted is unfinished, nothing is outstanding on the bus,
        every status has been delivered, and no abort is in progress.
    """

    def __new__(cls, config=None, **kwargs):
        # Checked before the object exists: a refused engine is never created,
        # so Amaranth has no unused elaboratable to warn about.
        if config is not None and not isinstance(config, DmaConfig):
            raise TypeError(f"config must be a DmaConfig, not {config!r}")
        return super().__new__(cls, **kwargs)

    def __init__(self, config=None):
        self.config = cfg = config if config is not None else DmaConfig()
        super().__init__({
            "bus": Out(cfg.axi_signature),
            "mm2s_descriptors": In(stream.Signature(cfg.descriptor_layout)),
            "mm2s_data": Out(stream.Signature(cfg.beat_layout)),
            "mm2s_status": Out(stream.Signature(cfg.status_layout)),
            "s2mm_descriptors": In(stream.Signature(cfg.descriptor_layout)),
            "s2mm_data": In(stream.Signature(cfg.beat_layout)),
            "s2mm_status": Out(stream.Signature(cfg.status_layout)),
            "window_base": In(cfg.addr_width),
            "window_size": In(cfg.addr_width + 1),
            "abort": In(1),
            "idle": Out(1),
        })
        self._aborting = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.mm2s = mm2s = _Mm2s(self.config, self)
        m.submodules.s2mm = s2mm = _S2mm(self.config, self)
        busy = mm2s.busy | s2mm.busy
        with m.If(self.abort):
            m.d.sync += self._aborting.eq(1)
        with m.Elif(~busy):
            m.d.sync += self._aborting.eq(0)
        m.d.comb += self.idle.eq(~busy & ~self._aborting & ~self.abort &
                                 ~mm2s.status_pending & ~s2mm.status_pending)
        return m
