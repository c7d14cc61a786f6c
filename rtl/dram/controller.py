"""LpddrController: AXI4 subordinate → bank machines → scheduler → DFI-style boundary.

Data path width
    One AXI beat is one controller cycle of peak DRAM bandwidth:
    ``data_width = 8 * ratio * peak_bytes_per_ck`` (LPDDR4 x16 at 1:4: 128
    bits, a 32-byte BL16 burst is 2 beats; at 1:1: 32 bits, 8 beats).

Address mapping (chosen for streaming reads)
    ``byte address = row | bank | column | byte-in-burst``: one 2 KiB page
    (64 bursts of LPDDR4) per bank, then the next bank, so a sequential
    stream walks the banks in turn and the next bank's ACT (and PRE) are
    issued while the current bank is still streaming. With bank groups
    (LPDDR5 BG mode) the group comes lowest: ``row | bank-in-group | column
    | group | byte-in-burst``, so consecutive bursts rotate through the
    groups and a stream is spaced by the short tCCD_S, never the same-group
    tCCD_L; one bank of each group is open per 8 KiB stretch.

Scheduler
    Reads and writes wait in two look-ahead queues of ``config.window`` DRAM
    bursts each. Column commands (RD/WR) are issued in request order within
    a direction (so read data returns in order); row commands (PRE/ACT) are
    issued for any queued request whose bank is not needed by an earlier
    queued request (open-page policy: a row stays open until a request for
    another row of that bank, or a refresh, closes it), so row hits stream
    without gaps while the next bank opens. Reads and writes are batched:
    the direction changes only when the other queue is full, the current
    one is empty or stuck, or after a starvation limit.

Refresh
    ``per_bank``: every tREFIpb one REFpb is owed; it is issued to the next
    bank in round-robin order as soon as no queued request needs that bank
    (it is precharged first if open), so it hides behind traffic to the other
    banks. ``all_bank``: every tREFI one REFab is owed, issued when the
    controller is idle or, postponed at most ``refresh_postpone - 2``
    intervals, forced (PREA, REFab). Either way the debt never exceeds the
    JEDEC limit of 8 intervals, which the device model's checker enforces.

Column commands wait for tCCD (tCCD_S) after any column command and, with
bank groups, tCCD_L after one to the same group (tWTR_L likewise for READ
after WRITE in the group). On LPDDR5 one REFpb refreshes a bank pair (``b``
and ``b ^ banks/2``): both are precharged first and both are blocked.

Commands go out in fixed slots: row commands (ACT, PRE, PREA, REF) in phase
0, column commands in phase ``ratio - 1`` (at 1:1 they share the one slot,
column commands first). Every spacing is converted to controller cycles at
build time with :func:`~lpaccel.rtl.dram.parts.controller_cycles` for the two
phases involved.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..bus.axi import AXI4Signature
from .config import Command, DfiSignature, LpddrConfig

__all__ = ["LpddrController"]

_PERF = ("data_beats", "busy_cycles", "loss_refresh", "loss_row_miss", "loss_turnaround",
         "loss_other", "refreshes")


class _Timer:
    """A saturating down counter: an action is allowed when it reads 0.

    ``load(cond, k)`` makes the action wait ``k`` cycles from this one
    (``k = 0`` or 1: allowed from the next cycle on).
    """

    def __init__(self, name, limit):
        self.sig = Signal(range(max(2, limit + 1)), name=name)
        self.loads = []

    def load(self, cond, cycles):
        if cycles > 1:
            self.loads.append((cond, cycles - 1))

    @property
    def ok(self):
        return self.sig == 0

    def emit(self, m):
        nxt = Mux(self.sig == 0, 0, self.sig - 1)
        for cond, value in self.loads:
            nxt = Mux(cond & (nxt < value), value, nxt)
        m.d.sync += self.sig.eq(nxt)


class _ShiftQueue:
    """A queue whose every entry is visible (the scheduler's look-ahead window)."""

    def __init__(self, m, name, fields, depth):
        self.depth = depth
        self.count = Signal(range(depth + 1), name=f"{name}_count")
        self.entries = [{f: Signal(w, name=f"{name}{i}_{f}") for f, w in fields.items()}
                        for i in range(depth)]
        self.push = Signal(name=f"{name}_push")
        self.push_data = {f: Signal(w, name=f"{name}_in_{f}") for f, w in fields.items()}
        self.pop = Signal(name=f"{name}_pop")
        self.can_push = Signal(name=f"{name}_can_push")
        m.d.comb += self.can_push.eq(self.count < depth)
        pos = self.count - self.pop
        for i, e in enumerate(self.entries):
            if i + 1 < depth:
                with m.If(self.pop):
                    m.d.sync += [e[f].eq(self.entries[i + 1][f]) for f in fields]
            with m.If(self.push & (pos == i)):
                m.d.sync += [e[f].eq(self.push_data[f]) for f in fields]
        m.d.sync += self.count.eq(self.count + self.push - self.pop)

    def valid(self, i):
        return self.count > i


class LpddrController(wiring.Component):
    """LPDDR4/4X/5 controller with an AXI4 subordinate port.

    See the module docstring for the mapping, scheduler and refresh policy.

    Parameters
    ----------
    config : LpddrConfig
    id_width : int
        AXI ID width.

    Ports
    -----
    axi : In(AXI4Signature(addr_width=config.addr_width, data_width=config.data_width))
        INCR bursts of 1 to 256 full-width beats; any beat-aligned address.
        Read data returns in request order; B is sent once the last burst's
        WRITE command has been issued, so a later read sees the data.
    dfi : Out(DfiSignature(config))
        Toward the PHY or :class:`~lpaccel.sim.models.lpddr.LpddrModel`.
    perf_* : Out(32)
        ``data_beats`` (DFI data beats), ``busy_cycles`` (cycles with work
        pending), cycles lost while busy by cause ``loss_refresh``,
        ``loss_row_miss``, ``loss_turnaround``, ``loss_other``, and
        ``refreshes`` (REF commands).
    """

    def __init__(self, config, *, id_width=4):
        if not isinstance(config, LpddrConfig):
            raise TypeError(f"config must be an LpddrConfig, not {config!r}")
        self.config = config
        self.id_width = id_width
        members = {
            "axi": In(AXI4Signature(addr_width=config.addr_width, data_width=config.data_width,
                                    id_width=id_width)),
            "dfi": Out(DfiSignature(config)),
        }
        members.update({f"perf_{k}": Out(32) for k in _PERF})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        t = cfg.timings
        n = cfg.ratio
        nb = cfg.part.banks
        beats = cfg.beats_per_burst
        bb, rb, cb = cfg.bank_bits, cfg.row_bits, cfg.col_bits
        beat_bits = (beats - 1).bit_length()
        beat_shift = (cfg.beat_bytes - 1).bit_length()
        g_bits = cfg.addr_width - beat_shift - beat_bits
        iw = max(1, self.id_width)
        depth = cfg.window
        axi = self.axi
        ROW, COL = 0, n - 1
        gbits = cfg.bg_bits
        ngroups = cfg.part.bank_groups
        pair = cfg.part.refpb_banks == 2
        half = nb // 2

        def cyc(ck, src, dst):
            return cfg.cycles(ck, src, dst)

        # --- queues and FIFOs ---------------------------------------------
        qf = {"bank": max(1, bb), "row": rb, "col": max(1, cb)}
        rq = _ShiftQueue(m, "rq", qf, depth)
        wq = _ShiftQueue(m, "wq", {**qf, "last": 1, "id": iw}, depth)
        info_w = 2 * max(1, beat_bits)
        m.submodules.rinfo = rinfo = SyncFIFO(width=info_w + 1 + iw, depth=depth + 64)
        m.submodules.winfo = winfo = SyncFIFO(width=info_w, depth=depth + 4)
        rdq_depth = 1 << (cfg.rd_latency + 2 * beats + 4).bit_length()
        m.submodules.rdq = rdq = SyncFIFO(width=cfg.data_width, depth=rdq_depth)
        m.submodules.wdq = wdq = SyncFIFO(width=cfg.data_width * 9 // 8, depth=4 * beats)
        m.submodules.bq = bq = SyncFIFO(width=iw, depth=8)

        def split(name, ch, q, info_fifo, extra_info):
            """Cut AXI bursts into DRAM bursts; returns the 'busy' signal."""
            busy = Signal(name=f"{name}_busy")
            g = Signal(g_bits, name=f"{name}_g")
            off = Signal(max(1, beat_bits), name=f"{name}_off")
            rem = Signal(9, name=f"{name}_rem")
            ident = Signal(iw, name=f"{name}_id")
            m.d.comb += ch.ready.eq(~busy)
            with m.If(ch.valid & ch.ready):
                m.d.sync += [busy.eq(1), g.eq(ch.addr[beat_shift + beat_bits:]),
                             rem.eq(ch.len + 1), ident.eq(ch.id)]
                if beat_bits:
                    m.d.sync += off.eq(ch.addr[beat_shift:beat_shift + beat_bits])
            end_full = off + rem - 1
            end = Signal(max(1, beat_bits), name=f"{name}_end")
            m.d.comb += end.eq(Mux(end_full >= beats, beats - 1, end_full))
            last = Signal(name=f"{name}_last")
            m.d.comb += last.eq(end_full < beats)
            go = busy & q.can_push & info_fifo.w_rdy
            if gbits:
                # row | bank-in-group | column | group: groups rotate fastest.
                col_v = g[gbits:gbits + cb]
                bank_v = Cat(g[gbits + cb:cb + bb], g[:gbits])
            else:
                col_v = g[:cb] if cb else 0
                bank_v = g[cb:cb + bb] if bb else 0
            m.d.comb += [
                q.push.eq(go),
                q.push_data["col"].eq(col_v),
                q.push_data["bank"].eq(bank_v),
                q.push_data["row"].eq(g[cb + bb:cb + bb + rb]),
                info_fifo.w_en.eq(go),
                info_fifo.w_data.eq(Cat(off, end, *extra_info(last, ident))),
            ]
            if "last" in q.push_data:
                m.d.comb += [q.push_data["last"].eq(last), q.push_data["id"].eq(ident)]
            with m.If(go):
                m.d.sync += [g.eq(g + 1), off.eq(0), rem.eq(rem - (end - off + 1))]
                with m.If(last):
                    m.d.sync += busy.eq(0)
            return busy

        ar_busy = split("ar", axi.ar, rq, rinfo, lambda last, ident: [last, ident])
        aw_busy = split("aw", axi.aw, wq, winfo, lambda last, ident: [])

        # --- write data packer: full DRAM bursts into wdq ------------------
        pk = Signal(max(1, beat_bits))
        w_start = winfo.r_data[:max(1, beat_bits)]
        w_end = winfo.r_data[max(1, beat_bits):info_w]
        in_range = (pk >= w_start) & (pk <= w_end)
        pk_go = winfo.r_rdy & wdq.w_rdy & (~in_range | axi.w.valid)
        wbursts = Signal(range(4 * beats + 2))
        m.d.comb += [
            axi.w.ready.eq(winfo.r_rdy & wdq.w_rdy & in_range),
            wdq.w_en.eq(pk_go),
            wdq.w_data.eq(Mux(in_range, Cat(axi.w.data, axi.w.strb), 0)),
            winfo.r_en.eq(pk_go & (pk == beats - 1)),
        ]
        burst_packed = pk_go & (pk == beats - 1)
        with m.If(pk_go):
            m.d.sync += pk.eq(Mux(pk == beats - 1, 0, pk + 1))

        # --- bank state and timers ----------------------------------------
        is_open = [Signal(name=f"open{b}") for b in range(nb)]
        open_row = [Signal(rb, name=f"openrow{b}") for b in range(nb)]
        lim = max(t.tRFCab, t.tRC, t.wr_to_pre, t.tFAW, t.tRPab) + 2
        t_act = [_Timer(f"t_act{b}", lim) for b in range(nb)]
        t_pre = [_Timer(f"t_pre{b}", lim) for b in range(nb)]
        t_cas = [_Timer(f"t_cas{b}", lim) for b in range(nb)]
        t_rrd = _Timer("t_rrd", lim)
        t_rd = _Timer("t_rd", lim)
        t_wr = _Timer("t_wr", lim)
        t_refpb = _Timer("t_refpb", lim)
        t_refab = _Timer("t_refab", lim)
        faw = [_Timer(f"t_faw{i}", lim) for i in range(4)]
        # Same-group column spacing (tCCD_L, tWTR_L) per bank group.
        t_rdg = [_Timer(f"t_rd_bg{g}", lim) for g in range(ngroups if gbits else 0)]
        t_wrg = [_Timer(f"t_wr_bg{g}", lim) for g in range(ngroups if gbits else 0)]
        faw_ptr = Signal(2)
        faw_ok = Signal()
        m.d.comb += faw_ok.eq(Cat(*[(faw_ptr == i) & f.ok for i, f in enumerate(faw)]).any())

        def sel(values, idx):
            out = values[0]
            for b in range(1, len(values)):
                out = Mux(idx == b, values[b], out)
            return out

        # --- refresh engine ------------------------------------------------
        per_bank = cfg.refresh == "per_bank"
        interval = (t.tREFIpb if per_bank else t.tREFI) // n
        limit = t.refresh_postpone * (cfg.refs_per_refab if per_bank else 1)
        urgent_at = limit - (16 if per_bank else 2)
        ref_timer = Signal(range(interval + 1))
        owed = Signal(range(-limit - 2, limit + 3))
        ref_tick = ref_timer == interval - 1
        m.d.sync += ref_timer.eq(Mux(ref_tick, 0, ref_timer + 1))
        ref_bank = Signal(max(1, bb))
        ref_active = Signal()
        urgent = owed >= urgent_at

        # --- the scheduler's view -----------------------------------------
        mode_wr = Signal()
        view = []
        for i in range(depth):
            re, we = rq.entries[i], wq.entries[i]
            view.append({
                "valid": Mux(mode_wr, wq.valid(i), rq.valid(i)),
                "bank": Mux(mode_wr, we["bank"], re["bank"]),
                "row": Mux(mode_wr, we["row"], re["row"]),
                "col": Mux(mode_wr, we["col"], re["col"]),
            })
        in_window = [Signal(name=f"in_window{b}") for b in range(nb)]
        for b in range(nb):
            m.d.comb += in_window[b].eq(Cat(
                *[(rq.valid(i) & (rq.entries[i]["bank"] == b)) |
                  (wq.valid(i) & (wq.entries[i]["bank"] == b)) for i in range(depth)]).any())
        blocked = [Signal(name=f"ref_block{b}") for b in range(nb)]
        for b in range(nb):
            if per_bank and pair:
                m.d.comb += blocked[b].eq(ref_active & ((ref_bank == b) | (ref_bank == b ^ half)))
            elif per_bank:
                m.d.comb += blocked[b].eq(ref_active & (ref_bank == b))
            else:
                m.d.comb += blocked[b].eq(ref_active)

        head = view[0]
        hb = head["bank"]
        head_hit = sel(is_open, hb) & (sel(open_row, hb) == head["row"])
        rd_inflight = Signal(range(rdq_depth + 1))
        credit_ok = rd_inflight + beats <= rdq_depth
        wq_head_last = wq.entries[0]["last"]
        dir_ok = Mux(mode_wr, t_wr.ok & (wbursts != 0) & (~wq_head_last | bq.w_rdy),
                     t_rd.ok & credit_ok)
        if gbits:
            hg = hb[cfg.ba_bits:]
            dir_ok = dir_ok & Mux(mode_wr, sel([x.ok for x in t_wrg], hg),
                                  sel([x.ok for x in t_rdg], hg))
        cas_go = Signal()
        m.d.comb += cas_go.eq(head["valid"] & head_hit & sel([x.ok for x in t_cas], hb) &
                              dir_ok & ~sel(blocked, hb))

        # Row command for the first queued request that needs one and is ready.
        row_cmd = Signal(Command)
        row_bank = Signal(max(1, bb))
        row_row = Signal(rb)
        act_ok_global = t_rrd.ok & faw_ok & t_refab.ok
        with m.If(Const(0, 1)):
            pass
        for i in range(depth):
            e = view[i]
            first = e["valid"]
            for j in range(i):
                first = first & ~(view[j]["valid"] & (view[j]["bank"] == e["bank"]))
            b_open = sel(is_open, e["bank"])
            hit = b_open & (sel(open_row, e["bank"]) == e["row"])
            need = first & ~hit & ~sel(blocked, e["bank"])
            pre_ready = need & b_open & sel([x.ok for x in t_pre], e["bank"])
            act_ready = need & ~b_open & sel([x.ok for x in t_act], e["bank"]) & act_ok_global
            with m.Elif(pre_ready | act_ready):
                m.d.comb += [row_cmd.eq(Mux(b_open, Command.PRE, Command.ACT)),
                             row_bank.eq(e["bank"]), row_row.eq(e["row"])]

        # Refresh commands.
        ref_cmd = Signal(Command)
        ref_cmd_bank = ref_bank
        all_closed = ~Cat(*is_open).any()
        if per_bank and pair:
            # Close both banks of the pair, then refresh them together.
            ref_partner = Signal.like(ref_bank)
            ref_cmd_bank = Signal.like(ref_bank)
            m.d.comb += [ref_partner.eq(ref_bank ^ half), ref_cmd_bank.eq(ref_bank)]
            rb_open = sel(is_open, ref_bank)
            rp_open = sel(is_open, ref_partner)
            t_pre_ok = [x.ok for x in t_pre]
            t_act_ok = [x.ok for x in t_act]
            with m.If(ref_active):
                with m.If(rb_open):
                    with m.If(sel(t_pre_ok, ref_bank)):
                        m.d.comb += ref_cmd.eq(Command.PRE)
                with m.Elif(rp_open):
                    m.d.comb += ref_cmd_bank.eq(ref_partner)
                    with m.If(sel(t_pre_ok, ref_partner)):
                        m.d.comb += ref_cmd.eq(Command.PRE)
                with m.Elif(sel(t_act_ok, ref_bank) & sel(t_act_ok, ref_partner) & t_rrd.ok &
                            faw_ok & t_refpb.ok & t_refab.ok):
                    m.d.comb += ref_cmd.eq(Command.REFPB)
        elif per_bank:
            rb_open = sel(is_open, ref_bank)
            with m.If(ref_active):
                with m.If(rb_open):
                    with m.If(sel([x.ok for x in t_pre], ref_bank)):
                        m.d.comb += ref_cmd.eq(Command.PRE)
                with m.Elif(sel([x.ok for x in t_act], ref_bank) & t_rrd.ok & faw_ok &
                            t_refpb.ok & t_refab.ok):
                    m.d.comb += ref_cmd.eq(Command.REFPB)
        else:
            pre_all_ok = Cat(*[~is_open[b] | t_pre[b].ok for b in range(nb)]).all()
            act_all_ok = Cat(*[x.ok for x in t_act]).all()
            with m.If(ref_active):
                with m.If(~all_closed):
                    with m.If(pre_all_ok):
                        m.d.comb += ref_cmd.eq(Command.PREA)
                with m.Elif(act_all_ok & t_refab.ok & t_refpb.ok):
                    m.d.comb += ref_cmd.eq(Command.REFAB)

        # Slot arbitration (at 1:1 the column command has the only slot).
        issue_cas = cas_go
        slot_free = ~cas_go if n == 1 else Const(1, 1)
        issue_ref = (ref_cmd != Command.NOP) & slot_free
        issue_row = (row_cmd != Command.NOP) & slot_free & ~issue_ref
        cmd = Signal(Command)
        cbank = Signal(max(1, bb))
        crow = Signal(rb)
        idle_limit = cfg.idle_precharge
        if idle_limit:
            # Idle-bank precharge: a bank open for idle_limit cycles with no
            # column command or queued request is closed in a free row slot,
            # so the next request to it needs only ACT + tRCD. (At LPDDR5's
            # 1:2 the look-ahead window spans too few clocks to hide tRP too.)
            idle = [Signal(range(idle_limit + 1), name=f"idle{b}") for b in range(nb)]
            for b in range(nb):
                used = (issue_cas & (hb == b)) | ((cmd == Command.ACT) & (cbank == b))
                with m.If(used | ~is_open[b]):
                    m.d.sync += idle[b].eq(0)
                with m.Elif(idle[b] != idle_limit):
                    m.d.sync += idle[b].eq(idle[b] + 1)
            idle_bank = Signal(max(1, bb))
            idle_go = Signal()
            for b in reversed(range(nb)):  # lowest ready bank wins
                with m.If(is_open[b] & (idle[b] == idle_limit) & ~in_window[b] &
                          ~blocked[b] & t_pre[b].ok):
                    m.d.comb += [idle_go.eq(1), idle_bank.eq(b)]
            issue_idle = idle_go & slot_free & ~issue_ref & ~issue_row
            m.d.comb += [
                cmd.eq(Mux(issue_ref, ref_cmd, Mux(issue_row, row_cmd,
                                                   Mux(issue_idle, Command.PRE, Command.NOP)))),
                cbank.eq(Mux(issue_ref, ref_cmd_bank, Mux(issue_row, row_bank, idle_bank))),
                crow.eq(row_row)]
        else:
            m.d.comb += [cmd.eq(Mux(issue_ref, ref_cmd, Mux(issue_row, row_cmd, Command.NOP))),
                         cbank.eq(Mux(issue_ref, ref_cmd_bank, row_bank)), crow.eq(row_row)]
        rslot, cslot = self.dfi.phases[ROW], self.dfi.phases[COL]
        m.d.comb += [rslot.cmd.eq(cmd), rslot.bank.eq(cbank), rslot.row.eq(crow)]
        with m.If(issue_cas):
            m.d.comb += [cslot.cmd.eq(Mux(mode_wr, Command.WR, Command.RD)),
                         cslot.bank.eq(hb), cslot.col.eq(head["col"])]
            if n == 1:
                m.d.comb += cslot.row.eq(0)

        # --- state and timer updates --------------------------------------
        is_act = cmd == Command.ACT
        is_pre = cmd == Command.PRE
        is_prea = cmd == Command.PREA
        is_refpb = cmd == Command.REFPB
        is_refab = cmd == Command.REFAB
        is_rd = issue_cas & ~mode_wr
        is_wr = issue_cas & mode_wr
        for b in range(nb):
            here = cbank == b
            cas_here = hb == b
            with m.If(is_act & here):
                m.d.sync += [is_open[b].eq(1), open_row[b].eq(crow)]
            with m.If((is_pre & here) | is_prea):
                m.d.sync += is_open[b].eq(0)
            t_act[b].load(is_act & here, cyc(t.tRC, ROW, ROW))
            t_act[b].load(is_pre & here, cyc(t.tRPpb, ROW, ROW))
            t_act[b].load(is_prea, cyc(t.tRPab, ROW, ROW))
            ref_here = (here | (cbank == (b ^ half))) if pair else here
            t_act[b].load(is_refpb & ref_here, cyc(t.tRFCpb, ROW, ROW))
            t_act[b].load(is_refab, cyc(t.tRFCab, ROW, ROW))
            t_pre[b].load(is_act & here, cyc(t.tRAS, ROW, ROW))
            t_pre[b].load(is_rd & cas_here, cyc(t.tRTP, COL, ROW))
            t_pre[b].load(is_wr & cas_here, cyc(t.wr_to_pre, COL, ROW))
            t_cas[b].load(is_act & here, cyc(t.tRCD, ROW, COL))
        t_rrd.load(is_act | is_refpb, cyc(t.tRRD, ROW, ROW))
        if t.tPBR2ACT:
            t_rrd.load(is_refpb, cyc(t.tPBR2ACT, ROW, ROW))  # REFpb to ACT (LPDDR5)
        for i, f in enumerate(faw):
            f.load((is_act | is_refpb) & (faw_ptr == i), cyc(t.tFAW, ROW, ROW))
        with m.If(is_act | is_refpb):
            m.d.sync += faw_ptr.eq(faw_ptr + 1)
        t_rd.load(issue_cas, cyc(t.tCCD, COL, COL))
        t_wr.load(issue_cas, cyc(t.tCCD, COL, COL))
        t_rd.load(is_wr, cyc(t.wr_to_rd, COL, COL))
        t_wr.load(is_rd, cyc(t.rd_to_wr, COL, COL))
        for g in range(len(t_rdg)):
            cas_g = issue_cas & (hb[cfg.ba_bits:] == g)
            t_rdg[g].load(cas_g, cyc(t.tCCD_L, COL, COL))
            t_wrg[g].load(cas_g, cyc(t.tCCD_L, COL, COL))
            t_rdg[g].load(cas_g & mode_wr, cyc(t.wr_to_rd_L, COL, COL))
        t_refpb.load(is_refpb, cyc(t.tPBR2PBR, ROW, ROW))
        t_refab.load(is_refab, cyc(t.tRFCab, ROW, ROW))
        t_refab.load(is_refpb, cyc(t.tRFCpb, ROW, ROW))  # REFab after REFpb
        for x in [*t_act, *t_pre, *t_cas, t_rrd, t_rd, t_wr, t_refpb, t_refab, *faw,
                  *t_rdg, *t_wrg]:
            x.emit(m)

        # Refresh bookkeeping.
        paid = is_refpb | is_refab
        m.d.sync += owed.eq(owed + ref_tick - paid)
        with m.If(paid):
            m.d.sync += ref_active.eq(0)
            if per_bank:
                m.d.sync += ref_bank.eq(ref_bank + 1 if nb > 1 else 0)
        queues_idle = (rq.count == 0) & (wq.count == 0) & ~ar_busy & ~aw_busy
        with m.Elif(~ref_active & (owed > 0)):
            if per_bank:
                if pair:
                    m.d.sync += ref_active.eq(~(sel(in_window, ref_bank) |
                                                sel(in_window, ref_bank ^ half)) | urgent)
                else:
                    m.d.sync += ref_active.eq(~sel(in_window, ref_bank) | urgent)
            else:
                m.d.sync += ref_active.eq(queues_idle | urgent)

        # Queue pops and direction.
        m.d.comb += [rq.pop.eq(is_rd), wq.pop.eq(is_wr)]
        m.d.comb += [bq.w_en.eq(is_wr & wq_head_last), bq.w_data.eq(wq.entries[0]["id"])]
        m.d.sync += wbursts.eq(wbursts + burst_packed - is_wr)
        starve = Signal(10)
        batch = Signal(6)
        other_waiting = Mux(mode_wr, rq.count != 0, (wq.count != 0) & (wbursts != 0))
        this_count = Mux(mode_wr, wq.count, rq.count)
        stuck = Mux(mode_wr, wbursts == 0, ~credit_ok)
        other_full = Mux(mode_wr, ~rq.can_push, ~wq.can_push)
        switch = other_waiting & ((this_count == 0) | stuck | other_full |
                                  starve.all() |
                                  (mode_wr & batch.all()))
        with m.If(switch):
            m.d.sync += [mode_wr.eq(~mode_wr), starve.eq(0), batch.eq(0)]
        with m.Else():
            with m.If(other_waiting):
                m.d.sync += starve.eq(starve + 1)
            with m.If(issue_cas & ~batch.all()):
                m.d.sync += batch.eq(batch + 1)

        # --- write data out, read data back ------------------------------
        wr_left = Signal(range(beats))
        wr_beat = is_wr | (wr_left != 0)
        with m.If(is_wr):
            m.d.sync += wr_left.eq(beats - 1)
        with m.Elif(wr_left != 0):
            m.d.sync += wr_left.eq(wr_left - 1)
        w = cfg.data_width
        m.d.comb += [
            self.dfi.wrdata_en.eq(wr_beat),
            self.dfi.wrdata.eq(wdq.r_data[:w]),
            self.dfi.wrdata_strb.eq(Mux(wr_beat, wdq.r_data[w:], 0)),
            wdq.r_en.eq(wr_beat),
            rdq.w_en.eq(self.dfi.rddata_valid),
            rdq.w_data.eq(self.dfi.rddata),
        ]

        # R channel: drop the beats of a DRAM burst outside the AXI burst.
        rk = Signal(max(1, beat_bits))
        r_start = rinfo.r_data[:max(1, beat_bits)]
        r_end = rinfo.r_data[max(1, beat_bits):info_w]
        r_last = rinfo.r_data[info_w]
        r_id = rinfo.r_data[info_w + 1:]
        r_in = (rk >= r_start) & (rk <= r_end)
        have = rdq.r_rdy & rinfo.r_rdy
        m.d.comb += [
            axi.r.valid.eq(have & r_in),
            axi.r.data.eq(rdq.r_data),
            axi.r.id.eq(r_id),
            axi.r.resp.eq(0),
            axi.r.last.eq(r_last & (rk == r_end)),
        ]
        r_go = have & (~r_in | axi.r.ready)
        m.d.comb += [rdq.r_en.eq(r_go), rinfo.r_en.eq(r_go & (rk == beats - 1))]
        with m.If(r_go):
            m.d.sync += rk.eq(Mux(rk == beats - 1, 0, rk + 1))
        m.d.sync += rd_inflight.eq(rd_inflight + Mux(is_rd, beats, 0) - r_go)

        # B channel.
        m.d.comb += [axi.b.valid.eq(bq.r_rdy), axi.b.id.eq(bq.r_data), axi.b.resp.eq(0),
                     bq.r_en.eq(axi.b.ready)]

        # --- performance counters ----------------------------------------
        bus_left = Signal(range(beats))
        with m.If(issue_cas):
            m.d.sync += bus_left.eq(beats - 1)
        with m.Elif(bus_left != 0):
            m.d.sync += bus_left.eq(bus_left - 1)
        busy = ~queues_idle | (rd_inflight != 0) | rinfo.r_rdy | bq.r_rdy | winfo.r_rdy
        lost = busy & ~issue_cas & (bus_left == 0)
        head_refresh = sel(blocked, hb) | (~head_hit & ~t_refab.ok)
        head_miss = ~head_hit | ~sel([x.ok for x in t_cas], hb)
        turn = Mux(mode_wr, ~t_wr.ok, ~t_rd.ok) | (~head["valid"] & other_waiting)
        cause = {
            "loss_refresh": head["valid"] & head_refresh,
            "loss_row_miss": head["valid"] & ~head_refresh & head_miss,
            "loss_turnaround": ~(head["valid"] & (head_refresh | head_miss)) & turn,
        }
        cause["loss_other"] = ~(cause["loss_refresh"] | cause["loss_row_miss"] |
                                cause["loss_turnaround"])
        incr = {
            "data_beats": self.dfi.rddata_valid + self.dfi.wrdata_en,
            "busy_cycles": busy,
            "refreshes": paid,
            **{k: lost & c for k, c in cause.items()},
        }
        for k in _PERF:
            counter = getattr(self, f"perf_{k}")
            m.d.sync += counter.eq(counter + incr[k])
        return m
