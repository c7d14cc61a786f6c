"""Formal harness of :class:`~lpaccel.rtl.bus.AXI4Arbiter` (2 managers, 8-bit data).

With ``invariants=True`` (the default) the harness adds the inductive
invariants that tie the arbiter's state (outstanding counters, round-robin
pointers, W order queue) to the harness's own bookkeeping, so
:func:`formal_harness.run_sby` proves it in ``prove`` mode (k-induction).
The order queue's entries must then be nameable: the arbiter's
``lib.fifo.SyncFIFO`` keeps them in a memory, whose words cannot appear in
an assertion, so the harness swaps in :class:`RegisterQueue` (same ports,
same cycle behaviour, entries in registers) through
:meth:`AXI4Arbiter.order_queue`. With ``invariants=False`` the arbiter runs
as built (``SyncFIFO``) and only a bounded check is meaningful.
"""

from amaranth.hdl import Array, Assert, Assume, Cat, Const, Cover, Elaboratable, Module, Mux, Signal
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


class RegisterQueue(Elaboratable, fifo.FIFOInterface):
    """A synchronous FIFO whose entries are registers a harness can name.

    Ports and timing are those of ``lib.fifo.SyncFIFO`` (``w_rdy`` is "not
    full", ``r_rdy`` "not empty", ``r_data`` the head, combinationally; a
    write and a read may happen in the same cycle), so an arbiter built with
    it behaves cycle for cycle like one built with ``SyncFIFO``.

    Attributes
    ----------
    level : Signal(range(depth + 1))
        Entries held.
    entries : list of Signal(width)
        ``entries[0]`` is the oldest (the head); ``entries[level:]`` are
        stale.
    """

    def __init__(self, *, width, depth):
        super().__init__(width=width, depth=depth)
        self.level = Signal(range(depth + 1))
        self.entries = [Signal(width, name=f"entry{k}") for k in range(depth)]

    def elaborate(self, platform):
        m = Module()
        do_read = self.r_rdy & self.r_en
        do_write = self.w_rdy & self.w_en
        m.d.comb += [
            self.w_rdy.eq(self.level != self.depth),
            self.r_rdy.eq(self.level != 0),
            self.w_level.eq(self.level),
            self.r_level.eq(self.level),
            self.r_data.eq(self.entries[0]),
        ]
        # A read shifts every entry one place toward the head; a write lands
        # just past the last entry that stays.
        after_read = self.level - do_read
        for k, entry in enumerate(self.entries):
            with m.If(do_write & (after_read == k)):
                m.d.sync += entry.eq(self.w_data)
            if k + 1 < self.depth:
                with m.Elif(do_read):
                    m.d.sync += entry.eq(self.entries[k + 1])
        m.d.sync += self.level.eq(self.level + do_write - do_read)
        return m


class QueueEquivalenceHarness(wiring.Component):
    """:class:`RegisterQueue` against ``lib.fifo.SyncFIFO`` of the same shape.

    Both get the same free ``w_en``, ``w_data``, ``r_en`` and reset; the
    assertions say they answer alike: ``w_rdy``, ``r_rdy`` and the level
    always, ``r_data`` whenever ``r_rdy``. ``SyncFIFO`` keeps its entries in
    a memory that no assertion can name, so this is a bounded check only.
    """

    def __init__(self, *, width, depth, queue_class=RegisterQueue):
        self.width = width
        self.depth = depth
        self.queue_class = queue_class
        super().__init__({"w_en": In(1), "w_data": In(width), "r_en": In(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.ours = ours = self.queue_class(width=self.width, depth=self.depth)
        m.submodules.theirs = theirs = fifo.SyncFIFO(width=self.width, depth=self.depth)
        reset_control(m, free_reset=True)
        for q in (ours, theirs):
            m.d.comb += [q.w_en.eq(self.w_en), q.w_data.eq(self.w_data), q.r_en.eq(self.r_en)]
        m.d.comb += [
            Assert(ours.w_rdy == theirs.w_rdy),
            Assert(ours.r_rdy == theirs.r_rdy),
            Assert(ours.level == theirs.level),
        ]
        with m.If(theirs.r_rdy):
            m.d.comb += Assert(ours.r_data == theirs.r_data)
        return m


def with_register_queue(dut_class):
    """``dut_class`` (an :class:`AXI4Arbiter` or a variant) with a
    :class:`RegisterQueue` as its W order queue, reachable as ``w_order``
    before elaboration."""

    class WithRegisterQueue(dut_class):
        def __init__(self, config):
            super().__init__(config)
            self.w_order = RegisterQueue(width=max(1, config.index_bits),
                                         depth=config.max_outstanding)

        def order_queue(self, width, depth):
            if (width, depth) != (self.w_order.width, self.w_order.depth):
                raise ValueError(
                    f"order_queue(width={width}, depth={depth}): the harness expected "
                    f"width {self.w_order.width} and depth {self.w_order.depth} (one "
                    f"manager index per outstanding write); update with_register_queue")
            return self.w_order

    WithRegisterQueue.__name__ = f"{dut_class.__name__}WithRegisterQueue"
    return WithRegisterQueue


class ArbiterHarness(wiring.Component):
    """Properties of :class:`~lpaccel.rtl.bus.AXI4Arbiter`.

    Every port is free apart from the AXI rules (valid and payload hold until
    ready, assumed on managers' AW/W/AR and the subordinate's B/R; B only for
    a write whose AW and last W beat were forwarded, R only for a forwarded
    read). Manager *i* numbers its AWs and ARs 0, 1, 2, ... in ``addr[:4]``
    (with ``id == addr[0]``) and tags every W beat of its *n*-th burst with
    ``{i, n}``. Reset is driven freely by the solver. Properties:

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

    Inductive invariants (``invariants=True``), which make the properties
    provable by k-induction:

    * the arbiter's outstanding counters equal the harness's (AWs or ARs
      accepted minus B or last R beats), and the subordinate's unanswered
      counts follow from them and the output registers;
    * the W order queue holds as many entries as accepted AWs whose burst
      has not ended at the manager; the shadow queue holds those plus the
      burst whose last beat waits in the W register; entry by entry the
      order queue names the shadow's managers, and each manager's entries
      carry its next burst numbers in order (so it has accepted exactly
      that many AWs more than it has ended bursts);
    * round-robin: a manager that has waited through *w* cycles able to grant
      is at most ``managers - 1 - w`` places behind the pointer.

    Parameters
    ----------
    dut_class : type
        :class:`AXI4Arbiter` or a variant of it (a broken one, a mutant).
    config : AXI4ArbiterConfig
    invariants : bool
        Add the inductive invariants; the arbiter then gets a
        :class:`RegisterQueue` as its order queue (see the module docstring).
    """

    def __init__(self, dut_class=AXI4Arbiter, config=SMALL_CONFIG, *, invariants=True):
        self.dut_class = with_register_queue(dut_class) if invariants else dut_class
        self.config = config
        self.invariants = invariants
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
        # Accepted AWs whose W burst has not left the W register: {manager, AW number}.
        m.submodules.shadow = shadow = RegisterQueue(width=1 + _SEQ, depth=limit + 1)
        idx_bit = cfg.id_width   # the manager index is the ID's top bit
        aw_sent = []
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
                    aw_sent.append(sent)
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
        bursts = []   # W bursts each manager has ended (its last beat taken)
        for i, mg in enumerate(mgrs):
            ended = Signal(_SEQ, name=f"w{i}_bursts")
            with m.If(mg.w.valid):
                m.d.comb += Assume(mg.w.data == Cat(ended, Const(0, 3), Const(i, 1)))
            with m.If(mg.w.valid & mg.w.ready & mg.w.last):
                m.d.sync += ended.eq(ended + 1)
            bursts.append(ended)

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
        waited = {}
        for ch_name, room in (("aw", (writes < limit) & (order < limit)),
                              ("ar", reads < limit)):
            sub_ch = getattr(sub, ch_name)
            able = (~sub_ch.valid | sub_ch.ready) & room
            # Work-conserving: a cycle able to grant grants someone.
            with m.If(able & Cat(getattr(mg, ch_name).valid for mg in mgrs).any()):
                m.d.comb += Assert(Cat(getattr(mg, ch_name).ready for mg in mgrs).any())
            for i, mg in enumerate(mgrs):
                ch = getattr(mg, ch_name)
                count = Signal(range(n + 1), name=f"{ch_name}{i}_waited")
                with m.If(ch.valid & ~ch.ready):
                    m.d.sync += count.eq(count + able)
                with m.Else():
                    m.d.sync += count.eq(0)
                # Granted on the n-th cycle able to grant at the latest.
                with m.If(ch.valid & able):
                    m.d.comb += Assert((count < n - 1) | ch.ready)
                waited[ch_name, i] = count

        # -- reachability (mode cover): the assumptions leave the interesting
        # states reachable, so a proof is not vacuous.
        m.d.comb += [
            Cover((writes == limit) & (reads == limit) & (order == limit)),
            Cover(w_hs & sub.w.last & (shadow.r_data[_SEQ] == 1) & (bursts[0] != 0)),
            Cover(mgrs[1].b.valid & mgrs[1].b.ready & (aw_sent[0] != 0)),
            Cover(mgrs[0].r.valid & mgrs[0].r.ready & mgrs[0].r.last & (reads == limit)),
        ]
        m.d.comb += [Cover((waited[ch_name, i] == n - 1) & getattr(mgrs[i], ch_name).ready)
                     for ch_name in ("aw", "ar") for i in range(n)]

        if not self.invariants:
            return m

        # -- inductive invariants -----------------------------------------------------
        # Outstanding counts: the arbiter's, the harness's and the subordinate's agree.
        w_last_held = sub.w.valid & sub.w.last   # a burst's last beat in the W register
        m.d.comb += [
            Assert(dut.writes == writes),
            Assert(dut.reads == reads),
            # Sums, not differences: no wrap-around can make them hold by accident.
            Assert(writes == aw_unanswered + sub.aw.valid),
            Assert(reads == ar_unanswered + sub.ar.valid),
            Assert(writes == wlast_unanswered + order + w_last_held),
        ]
        # The order queue against the shadow queue: the shadow's entries past
        # a held last beat are, in order, the order queue's.
        queue = dut.w_order
        m.d.comb += [
            Assert(queue.level == order),
            Assert(shadow.level == order + w_last_held),
        ]
        with m.If(sub.w.valid & ~sub.w.last):
            m.d.comb += Assert(order != 0)   # the burst in the register has not ended
        open_bursts = [Signal(1 + _SEQ, name=f"open{j}") for j in range(limit)]
        for j, entry in enumerate(open_bursts):
            m.d.comb += entry.eq(Mux(w_last_held, shadow.entries[j + 1], shadow.entries[j]))
        ended = Array(bursts)
        for j, entry in enumerate(open_bursts):
            owner = entry[_SEQ:]
            earlier_same = sum(open_bursts[k][_SEQ:] == owner for k in range(j))
            with m.If(j < order):
                m.d.comb += [
                    Assert(queue.entries[j] == owner),
                    Assert(entry[:_SEQ] == (ended[owner] + earlier_same)[:_SEQ]),
                ]
        for i in range(n):
            mine = sum((j < order) & (open_bursts[j][_SEQ:] == i) for j in range(limit))
            m.d.comb += Assert((aw_sent[i] - bursts[i])[:_SEQ] == mine)
        # Round-robin: manager i is (i - last - 1) mod n places behind the pointer.
        for ch_name, last in (("aw", dut.aw_last), ("ar", dut.ar_last)):
            for i in range(n):
                behind = Signal(range(n), name=f"{ch_name}{i}_behind")
                with m.Switch(last):
                    for prev in range(n):
                        with m.Case(prev):
                            m.d.comb += behind.eq((i - prev - 1) % n)
                m.d.comb += Assert(waited[ch_name, i] + behind <= n - 1)
        return m
