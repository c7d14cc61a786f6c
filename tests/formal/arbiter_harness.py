"""Formal harness of :class:`~lpaccel.rtl.bus.AXI4Arbiter` (2 managers, 8-bit data).

Run with :func:`formal_harness.run_sby` in ``bmc`` mode: the properties
relate the arbiter's order FIFO to a shadow queue in the harness, and the
inductive invariants that would tie the two together are not written, so
the proof is a bounded model check (every trace up to the depth given).
"""

from amaranth.hdl import Assert, Assume, Cat, Const, Module, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In
from formal_harness import reset_control, stable_input

from lpaccel.rtl.bus.interconnect import AXI4Arbiter, AXI4ArbiterConfig

#: The smallest useful configuration: 2 managers, 1-bit manager ID, 8-bit
#: data, at most 2 writes and 2 reads in flight.
SMALL_CONFIG = AXI4ArbiterConfig(managers=2, addr_width=12, data_width=8, id_width=1,
                                 max_outstanding=2)

_SEQ = 4   # width of the sequence numbers the managers put in addr / W data


def _addr_word(ch):
    return Cat(ch.addr, ch.id, ch.len, ch.size, ch.burst, ch.lock, ch.cache, ch.prot, ch.qos)


class ArbiterHarness(wiring.Component):
    """Properties of :class:`~lpaccel.rtl.bus.AXI4Arbiter`.

    Every port is free apart from the AXI rules (valid and payload hold until
    ready, assumed on managers' AW/W/AR and the subordinate's B/R; B only for
    a write whose AW and last W beat were forwarded, R only for a forwarded
    read). Manager *i* numbers its AWs and ARs 0, 1, 2, ... in ``addr[:4]``
    (with ``id == addr[0]``) and tags every W beat of its *n*-th burst with
    ``{i, n}``. Reset is driven freely by the solver. Proved (bounded):

    * no lost or duplicated AW/AR: the subordinate sees manager *i*'s
      requests in its own numbering, with ``id = {i, manager id}``; at most
      one request is accepted but not yet forwarded, and it sits in the
      output register;
    * W beats follow AW grant order: every W beat at the subordinate carries
      the tag of the oldest accepted AW whose burst has not ended (a shadow
      queue of accepted AWs, popped on ``last``);
    * B and R go to the manager named by the ID's index bits, with the
      manager's own ID, and the subordinate's ``ready`` is that manager's;
    * bounded wait: counting only cycles in which the arbiter is able to
      grant (output register free, fewer than ``max_outstanding`` writes or
      reads open, room in the W order queue), a manager holding ``valid``
      is granted by its ``managers``-th such cycle (round-robin: each other
      manager wins at most once ahead of it). With a subordinate that is
      always ready and answers promptly this is a wait of at most 2 cycles.
    """

    def __init__(self, dut_class=AXI4Arbiter, config=SMALL_CONFIG):
        self.dut_class = dut_class
        self.config = config
        super().__init__({
            "managers": In(config.manager_signature).array(config.managers),
            "subordinate": In(config.subordinate_signature.flip()),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        n = cfg.managers
        limit = cfg.max_outstanding
        m.submodules.dut = dut = self.dut_class(cfg)
        for port, dut_port in zip(self.managers, dut.managers):
            wiring.connect(m, wiring.flipped(port), dut_port)
        wiring.connect(m, dut.subordinate, wiring.flipped(self.subordinate))
        mgrs = list(self.managers)
        sub = self.subordinate
        after_reset = reset_control(m, free_reset=True)
        with m.If(after_reset):
            m.d.comb += [Assert(~sub.aw.valid), Assert(~sub.w.valid), Assert(~sub.ar.valid)]

        # -- environment ------------------------------------------------------
        for mg in mgrs:
            stable_input(m, mg.aw.valid, mg.aw.ready, _addr_word(mg.aw))
            stable_input(m, mg.ar.valid, mg.ar.ready, _addr_word(mg.ar))
            stable_input(m, mg.w.valid, mg.w.ready, Cat(mg.w.data, mg.w.strb, mg.w.last))
        stable_input(m, sub.b.valid, sub.b.ready, Cat(sub.b.id, sub.b.resp))
        stable_input(m, sub.r.valid, sub.r.ready,
                      Cat(sub.r.id, sub.r.data, sub.r.resp, sub.r.last))

        aw_hs = sub.aw.valid & sub.aw.ready
        ar_hs = sub.ar.valid & sub.ar.ready
        w_hs = sub.w.valid & sub.w.ready
        b_hs = sub.b.valid & sub.b.ready
        r_hs = sub.r.valid & sub.r.ready
        # The subordinate answers only what it was sent.
        aw_unanswered = Signal(4)
        wlast_unanswered = Signal(4)
        ar_unanswered = Signal(4)
        m.d.sync += [
            aw_unanswered.eq(aw_unanswered + aw_hs - b_hs),
            wlast_unanswered.eq(wlast_unanswered + (w_hs & sub.w.last) - b_hs),
            ar_unanswered.eq(ar_unanswered + ar_hs - (r_hs & sub.r.last)),
        ]
        with m.If(sub.b.valid):
            m.d.comb += Assume((aw_unanswered != 0) & (wlast_unanswered != 0))
        with m.If(sub.r.valid):
            m.d.comb += Assume(ar_unanswered != 0)

        # -- address channels: nothing lost, duplicated or misnamed -------------
        shadow = fifo.SyncFIFO(width=1 + _SEQ, depth=limit + 2)
        m.submodules.shadow = shadow
        idx_bit = cfg.id_width   # the manager index is the ID's top bit
        for ch_name in ("aw", "ar"):
            sub_ch = getattr(sub, ch_name)
            accepted = []
            for i, mg in enumerate(mgrs):
                ch = getattr(mg, ch_name)
                sent = Signal(_SEQ, name=f"{ch_name}{i}_sent")
                forwarded = Signal(_SEQ, name=f"{ch_name}{i}_forwarded")
                with m.If(ch.valid):
                    m.d.comb += Assume((ch.addr[:_SEQ] == sent) & (ch.id == ch.addr[0]))
                take = ch.valid & ch.ready
                give = sub_ch.valid & sub_ch.ready & (sub_ch.id[idx_bit] == i)
                m.d.sync += [sent.eq(sent + take), forwarded.eq(forwarded + give)]
                with m.If(sub_ch.valid & (sub_ch.id[idx_bit] == i)):
                    m.d.comb += [Assert(sub_ch.addr[:_SEQ] == forwarded),
                                 Assert(sub_ch.id[:idx_bit] == sub_ch.addr[0])]
                in_register = sub_ch.valid & (sub_ch.id[idx_bit] == i)
                m.d.comb += Assert((sent - forwarded)[:_SEQ] == in_register)
                accepted.append(take)
                if ch_name == "aw":
                    with m.If(take):
                        m.d.comb += [shadow.w_en.eq(1),
                                     shadow.w_data.eq(Cat(sent, Const(i, 1)))]
            m.d.comb += Assert(sum(accepted) <= 1)

        # -- W follows AW grant order ---------------------------------------------
        m.d.comb += Assert(~shadow.w_en | shadow.w_rdy)
        with m.If(sub.w.valid):
            m.d.comb += [Assert(shadow.r_rdy),
                         Assert(sub.w.data == Cat(shadow.r_data[:_SEQ], Const(0, 3),
                                                  shadow.r_data[_SEQ]))]
        m.d.comb += shadow.r_en.eq(w_hs & sub.w.last)
        for i, mg in enumerate(mgrs):
            bursts = Signal(_SEQ, name=f"w{i}_bursts")
            with m.If(mg.w.valid):
                m.d.comb += Assume(mg.w.data == Cat(bursts, Const(0, 3), Const(i, 1)))
            with m.If(mg.w.valid & mg.w.ready & mg.w.last):
                m.d.sync += bursts.eq(bursts + 1)

        # -- B and R route back by the ID's index bits ----------------------------
        for ch_name, fields in (("b", ("resp",)), ("r", ("data", "resp", "last"))):
            sub_ch = getattr(sub, ch_name)
            for i, mg in enumerate(mgrs):
                mg_ch = getattr(mg, ch_name)
                mine = sub_ch.id[idx_bit] == i
                m.d.comb += Assert(mg_ch.valid == (sub_ch.valid & mine))
                with m.If(mine):
                    m.d.comb += Assert(sub_ch.ready == mg_ch.ready)
                with m.If(mg_ch.valid):
                    m.d.comb += Assert(mg_ch.id == sub_ch.id[:idx_bit])
                    m.d.comb += [Assert(getattr(mg_ch, f) == getattr(sub_ch, f))
                                 for f in fields]

        # -- bounded wait -----------------------------------------------------------
        # The harness's own counts of what limits a grant.
        writes = Signal(range(limit + 2))   # AWs accepted, B not yet seen
        reads = Signal(range(limit + 2))    # ARs accepted, last R not yet seen
        order = Signal(range(limit + 2))    # AWs accepted, their W burst not yet taken
        aw_take = Cat(mg.aw.valid & mg.aw.ready for mg in mgrs).any()
        ar_take = Cat(mg.ar.valid & mg.ar.ready for mg in mgrs).any()
        w_end = Cat(mg.w.valid & mg.w.ready & mg.w.last for mg in mgrs).any()
        m.d.sync += [writes.eq(writes + aw_take - b_hs),
                     reads.eq(reads + ar_take - (r_hs & sub.r.last)),
                     order.eq(order + aw_take - w_end)]
        m.d.comb += [Assert(writes <= limit), Assert(reads <= limit), Assert(order <= limit)]
        for ch_name, room in (("aw", (writes < limit) & (order < limit)),
                              ("ar", reads < limit)):
            sub_ch = getattr(sub, ch_name)
            able = (~sub_ch.valid | sub_ch.ready) & room
            # Work-conserving: a cycle able to grant grants someone.
            with m.If(able & Cat(getattr(mg, ch_name).valid for mg in mgrs).any()):
                m.d.comb += Assert(Cat(getattr(mg, ch_name).ready for mg in mgrs).any())
            for i, mg in enumerate(mgrs):
                ch = getattr(mg, ch_name)
                waited = Signal(range(n + 1), name=f"{ch_name}{i}_waited")
                with m.If(ch.valid & ~ch.ready):
                    m.d.sync += waited.eq(waited + able)
                with m.Else():
                    m.d.sync += waited.eq(0)
                # Granted on the n-th cycle able to grant at the latest.
                with m.If(ch.valid & able):
                    m.d.comb += Assert((waited < n - 1) | ch.ready)
        return m
