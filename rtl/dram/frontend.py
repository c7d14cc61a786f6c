"""AXI4 front end: AXI bursts in, DRAM-burst requests out, data beats both ways.

One AXI beat is one controller cycle of peak DRAM bandwidth:
``data_width = 8 * ratio * peak_bytes_per_ck`` (LPDDR4 x16 at 1:4: 128 bits,
a 32-byte BL16 burst is 2 beats; at 1:1: 32 bits, 8 beats). A DRAM burst is
``beats_per_burst`` beats; AXI bursts may start and end anywhere inside one.

::

    AR ─► BurstSplitter ─► AddressMap ─► reads ──────────────► scheduler
                 └──► rinfo (first/last beat kept, last, id) ─┐
    R  ◄─ drop beats outside the AXI burst ◄─ rdq ◄─ rddata   ◄┘ (DFI)
    AW ─► BurstSplitter ─► AddressMap ─► writes ─────────────► scheduler
                 └──► winfo (first/last beat kept) ─┐
    W  ─► pack full DRAM bursts (zero strobes outside) ─► wdq ─► wrdata (DFI)
    B  ◄─ bq ◄─ the WRITE of an AXI burst's last DRAM burst was issued

Contract
    INCR bursts of 1 to 256 full-width beats at any beat-aligned address
    (AxSIZE, AxBURST and the cache/protection fields are not looked at).
    Read data returns in request order; B is sent once the last burst's
    WRITE command has been issued, so a later read sees the data.

Flow control toward the scheduler
    ``rd_room``: the read-data FIFO ``rdq`` has room for another burst
    counting every READ issued and not yet delivered on R (so read data from
    the DRAM, which cannot wait, always fits). ``wr_data_ready``: at least one
    DRAM burst of write data is packed in ``wdq``. ``b_room``: the B FIFO can
    take a response.

Latency
    AR/AW accepted in cycle ``c`` → first request offered in ``c + 1``. Write
    data leaves ``wdq`` in the WRITE command's cycle and the
    ``beats_per_burst - 1`` after it; read beats go out on R from the cycle
    after they arrive.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..bus.axi import AXI4Signature
from ..utils import StructFIFO
from .address import AddressMap, address_layout, burst_index_bits
from .config import LpddrConfig
from .scheduler import column_layout, write_request_layout

__all__ = ["BurstSplitter", "AxiFrontEnd"]


def _beat_bits(config):
    """Bits of the beat index within a DRAM burst (at least 1)."""
    return max(1, (config.beats_per_burst - 1).bit_length())


def burst_piece_layout(config, id_width):
    """One DRAM burst of an AXI burst: which, its beats ``start``..``end``, ``last``, ``id``."""
    return data.StructLayout({
        "burst": burst_index_bits(config),
        "start": _beat_bits(config),
        "end": _beat_bits(config),
        "last": 1,
        "id": unsigned(max(1, id_width)),
    })


class BurstSplitter(wiring.Component):
    """Cuts one AXI burst at a time into the DRAM bursts it touches.

    Parameters
    ----------
    config : LpddrConfig
    id_width : int

    Attributes
    ----------
    request : In(AXI4 address channel)
        AR or AW; ``ready`` while no burst is being cut.
    pieces : Out(stream.Signature(burst_piece_layout(config, id_width)))
        One entry per DRAM burst, in address order; ``valid`` is high from
        the cycle after the address is accepted until the last piece leaves.
    """

    def __init__(self, config, *, id_width=4):
        self.config = config
        self.id_width = id_width
        axi = AXI4Signature(addr_width=config.addr_width, data_width=config.data_width,
                            id_width=id_width)
        super().__init__({
            "request": In(axi.members["ar"].signature),
            "pieces": Out(stream.Signature(burst_piece_layout(config, id_width))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        beats = cfg.beats_per_burst
        beat_bits = (beats - 1).bit_length()
        beat_shift = (cfg.beat_bytes - 1).bit_length()
        req, out = self.request, self.pieces
        busy = Signal()
        burst = Signal.like(out.payload.burst)
        start = Signal.like(out.payload.start)   # first beat kept in this DRAM burst
        remaining = Signal(9)                   # AXI beats still to cut
        ident = Signal.like(out.payload.id)

        m.d.comb += req.ready.eq(~busy)
        with m.If(req.valid & req.ready):
            m.d.sync += [busy.eq(1), burst.eq(req.addr[beat_shift + beat_bits:]),
                         remaining.eq(req.len + 1), ident.eq(req.id)]
            if beat_bits:
                m.d.sync += start.eq(req.addr[beat_shift:beat_shift + beat_bits])
        end_full = start + remaining - 1
        end = Signal.like(start)
        m.d.comb += [
            end.eq(Mux(end_full >= beats, beats - 1, end_full)),
            out.valid.eq(busy),
            out.payload.burst.eq(burst),
            out.payload.start.eq(start),
            out.payload.end.eq(end),
            out.payload.last.eq(end_full < beats),
            out.payload.id.eq(ident),
        ]
        with m.If(out.valid & out.ready):
            m.d.sync += [burst.eq(burst + 1), start.eq(0),
                         remaining.eq(remaining - (end - start + 1))]
            with m.If(out.payload.last):
                m.d.sync += busy.eq(0)
        return m


def _fork(m, source, *sinks):
    """Hand each entry of ``source`` to all ``sinks`` in the same cycle."""
    m.d.comb += source.ready.eq(Cat(*[s.ready for s in sinks]).all())
    for sink in sinks:
        others = [s.ready for s in sinks if s is not sink]
        m.d.comb += sink.valid.eq(source.valid & Cat(*others).all())


class AxiFrontEnd(wiring.Component):
    """AXI4 subordinate port to DRAM-burst requests and data beats (see the module docstring).

    Parameters
    ----------
    config : LpddrConfig
    id_width : int

    Attributes
    ----------
    axi : In(AXI4Signature(...))
    reads, writes : Out(stream.Signature(...))
        Requests for the scheduler's window.
    column : In(column_layout(id_width))
        The column command issued this cycle.
    rd_room, wr_data_ready, b_room : Out(1)
        Flow control toward the scheduler.
    wr_masked : Out(1)
        The next write burst to issue has a clear strobe bit (a MASK-WRITE).
    splitting : Out(1)
        An AXI burst is being cut into requests.
    busy : Out(1)
        Work in the front end: cutting, reads outstanding, R/W/B not drained.
    wrdata, wrdata_strb, wrdata_en : Out
    rddata, rddata_valid : In
        The data members of :class:`~lpaccel.rtl.dram.config.DfiSignature`.
    """

    def __init__(self, config, *, id_width=4):
        if not isinstance(config, LpddrConfig):
            raise TypeError(f"config must be an LpddrConfig, not {config!r}")
        self.config = config
        self.id_width = id_width
        dw = config.data_width
        super().__init__({
            "axi": In(AXI4Signature(addr_width=config.addr_width, data_width=dw,
                                    id_width=id_width)),
            "reads": Out(stream.Signature(address_layout(config))),
            "writes": Out(stream.Signature(write_request_layout(config, id_width))),
            "column": In(column_layout(id_width)),
            "rd_room": Out(1),
            "wr_data_ready": Out(1),
            "wr_masked": Out(1),
            "b_room": Out(1),
            "splitting": Out(1),
            "busy": Out(1),
            "wrdata": Out(dw),
            "wrdata_strb": Out(dw // 8),
            "wrdata_en": Out(1),
            "rddata": In(dw),
            "rddata_valid": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        beats = cfg.beats_per_burst
        dw = cfg.data_width
        bb = _beat_bits(cfg)
        axi, col = self.axi, self.column
        trim = {"start": bb, "end": bb}

        # --- address channels: AXI bursts → DRAM-burst requests ---------------
        m.submodules.ar_split = ar = BurstSplitter(cfg, id_width=self.id_width)
        m.submodules.aw_split = aw = BurstSplitter(cfg, id_width=self.id_width)
        m.submodules.ar_map = ar_map = AddressMap(cfg)
        m.submodules.aw_map = aw_map = AddressMap(cfg)
        m.submodules.rinfo = rinfo = StructFIFO(
            data.StructLayout({**trim, "last": 1, "id": max(1, self.id_width)}), cfg.window + 64)
        m.submodules.winfo = winfo = StructFIFO(data.StructLayout(trim), cfg.window + 4)
        wiring.connect(m, wiring.flipped(axi.ar), ar.request)
        wiring.connect(m, wiring.flipped(axi.aw), aw.request)
        _fork(m, ar.pieces, self.reads, rinfo.w_stream)
        _fork(m, aw.pieces, self.writes, winfo.w_stream)
        m.d.comb += [
            ar_map.burst.eq(ar.pieces.payload.burst),
            aw_map.burst.eq(aw.pieces.payload.burst),
            self.reads.payload.eq(ar_map.location),
            self.writes.payload.addr.eq(aw_map.location),
            self.writes.payload.last.eq(aw.pieces.payload.last),
            self.writes.payload.id.eq(aw.pieces.payload.id),
            rinfo.w_stream.payload.start.eq(ar.pieces.payload.start),
            rinfo.w_stream.payload.end.eq(ar.pieces.payload.end),
            rinfo.w_stream.payload.last.eq(ar.pieces.payload.last),
            rinfo.w_stream.payload.id.eq(ar.pieces.payload.id),
            winfo.w_stream.payload.start.eq(aw.pieces.payload.start),
            winfo.w_stream.payload.end.eq(aw.pieces.payload.end),
            self.splitting.eq(ar.pieces.valid | aw.pieces.valid),
        ]

        # --- W: pack whole DRAM bursts into wdq (zero strobes outside the AXI burst)
        m.submodules.wdq = wdq = StructFIFO(
            data.StructLayout({"data": dw, "strb": dw // 8}), 4 * beats)
        winfo_out = winfo.r_stream
        pk = Signal(bb)
        in_range = (pk >= winfo_out.payload.start) & (pk <= winfo_out.payload.end)
        m.d.comb += [
            axi.w.ready.eq(winfo_out.valid & wdq.w_stream.ready & in_range),
            wdq.w_stream.valid.eq(winfo_out.valid & (~in_range | axi.w.valid)),
            wdq.w_stream.payload.eq(Mux(in_range, Cat(axi.w.data, axi.w.strb), 0)),
        ]
        pk_go = wdq.w_stream.valid & wdq.w_stream.ready
        burst_packed = pk_go & (pk == beats - 1)
        m.d.comb += winfo_out.ready.eq(burst_packed)
        with m.If(pk_go):
            m.d.sync += pk.eq(Mux(pk == beats - 1, 0, pk + 1))
        wbursts = Signal(range(4 * beats + 2))   # packed bursts not yet written
        m.d.sync += wbursts.eq(wbursts + burst_packed - col.write)
        m.d.comb += self.wr_data_ready.eq(wbursts != 0)
        # Whether each packed burst has a clear strobe bit (a MASK-WRITE on
        # the device), in write order: the head is the next WRITE's.
        m.submodules.wmask = wmask = StructFIFO(unsigned(1), 8)
        full_strb = (1 << (dw // 8)) - 1
        partial = wdq.w_stream.payload.strb != full_strb
        masked = Signal()
        masked_now = Mux(pk == 0, partial, masked | partial)
        with m.If(pk_go):
            m.d.sync += masked.eq(masked_now)
        m.d.comb += [
            wmask.w_stream.valid.eq(burst_packed),
            wmask.w_stream.payload.eq(masked_now),
            wmask.r_stream.ready.eq(col.write),
            self.wr_masked.eq(wmask.r_stream.payload),
        ]

        # Write data goes out with the WRITE command and the beats after it.
        wr_left = Signal(range(beats))
        wr_beat = col.write | (wr_left != 0)
        with m.If(col.write):
            m.d.sync += wr_left.eq(beats - 1)
        with m.Elif(wr_left != 0):
            m.d.sync += wr_left.eq(wr_left - 1)
        m.d.comb += [
            self.wrdata_en.eq(wr_beat),
            self.wrdata.eq(wdq.r_stream.payload.data),
            self.wrdata_strb.eq(Mux(wr_beat, wdq.r_stream.payload.strb, 0)),
            wdq.r_stream.ready.eq(wr_beat),
        ]

        # --- R: read beats in, beats outside the AXI burst dropped ------------
        rdq_depth = 1 << (cfg.rd_latency + 2 * beats + 4).bit_length()
        m.submodules.rdq = rdq = StructFIFO(unsigned(dw), rdq_depth)
        m.d.comb += [rdq.w_stream.valid.eq(self.rddata_valid),
                     rdq.w_stream.payload.eq(self.rddata)]
        info = rinfo.r_stream
        rk = Signal(bb)
        r_in = (rk >= info.payload.start) & (rk <= info.payload.end)
        have = rdq.r_stream.valid & info.valid
        r_go = have & (~r_in | axi.r.ready)
        m.d.comb += [
            axi.r.valid.eq(have & r_in),
            axi.r.data.eq(rdq.r_stream.payload),
            axi.r.id.eq(info.payload.id),
            axi.r.resp.eq(0),
            axi.r.last.eq(info.payload.last & (rk == info.payload.end)),
            rdq.r_stream.ready.eq(r_go),
            info.ready.eq(r_go & (rk == beats - 1)),
        ]
        with m.If(r_go):
            m.d.sync += rk.eq(Mux(rk == beats - 1, 0, rk + 1))
        rd_inflight = Signal(range(rdq_depth + 1))   # READ issued, beat not yet on R
        m.d.sync += rd_inflight.eq(rd_inflight + Mux(col.read, beats, 0) - r_go)
        m.d.comb += self.rd_room.eq(rd_inflight + beats <= rdq_depth)

        # --- B: one response per AXI write burst -------------------------------
        m.submodules.bq = bq = StructFIFO(unsigned(max(1, self.id_width)), 8)
        m.d.comb += [
            bq.w_stream.valid.eq(col.write & col.last),
            bq.w_stream.payload.eq(col.id),
            self.b_room.eq(bq.w_stream.ready),
            axi.b.valid.eq(bq.r_stream.valid),
            axi.b.id.eq(bq.r_stream.payload),
            axi.b.resp.eq(0),
            bq.r_stream.ready.eq(axi.b.ready),
            self.busy.eq(ar.pieces.valid | aw.pieces.valid | (rd_inflight != 0) |
                         info.valid | bq.r_stream.valid | winfo_out.valid),
        ]
        return m
