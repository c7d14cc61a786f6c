"""AXI4 arbiter: several managers onto one subordinate.

The DMA channels and the host's memory window are AXI4 managers; the memory
backend (LPDDR controller, LiteDRAM core, on-chip RAM) is one AXI4
subordinate. :class:`AXI4Arbiter` joins them:

* AW and AR are arbitrated independently, round-robin, into registered
  output stages (one grant per cycle per channel, no bubble between grants).
* The manager index travels in the high ID bits of the subordinate port
  (``sub_id = {index, manager_id}``), so B and R route back by ID alone and
  a manager's own ID ordering is preserved.
* W beats follow AW grant order: every AW grant pushes the manager index into
  an order FIFO, and W beats are taken only from the manager at its head
  until that burst's ``last`` beat.
* Outstanding transactions are bounded per direction
  (:attr:`AXI4ArbiterConfig.max_outstanding`): no AW (AR) grant while that
  many writes (reads) wait for B (the last R beat).
* No output ``valid`` depends combinationally on any ``ready``: AW, AR and W
  leave through registers; B and R pass through (valid to valid, ready to
  ready).

See ``docs/bus.md`` for the protocol rules every port keeps.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..utils import check_int
from .axi import AXI4Signature

__all__ = ["AXI4Arbiter", "AXI4ArbiterConfig"]

_ADDR_FIELDS = ("addr", "len", "size", "burst", "lock", "cache", "prot", "qos")


@dataclass(frozen=True)
class AXI4ArbiterConfig:
    """Parameters of an :class:`AXI4Arbiter`.

    Parameters
    ----------
    managers : int
        Number of manager ports, 1 to 16.
    addr_width : int
        Byte address width of every port.
    data_width : int
        Data width of every port.
    id_width : int
        ID width of the manager ports; the subordinate port has
        :attr:`subordinate_id_width` = ``id_width + index_bits``.
    max_outstanding : int
        Most writes (and, separately, reads) in flight at the subordinate
        port; a power of two from 1 to 256.
    """

    managers: int = 3
    addr_width: int = 32
    data_width: int = 64
    id_width: int = 4
    max_outstanding: int = 16

    def __post_init__(self):
        check_int("managers", self.managers, 1, 16)
        # Not check_choice: "a power of two from 1 to 256" says the rule better than a list.
        if not isinstance(self.max_outstanding, int) or self.max_outstanding not in \
                [1 << k for k in range(9)]:
            raise ValueError(f"max_outstanding must be a power of two from 1 to 256, "
                             f"not {self.max_outstanding!r}")
        # Validates addr/data/id widths with AXI4Signature's own messages.
        AXI4Signature(addr_width=self.addr_width, data_width=self.data_width,
                      id_width=self.id_width)
        if self.subordinate_id_width > 16:
            raise ValueError(
                f"id_width {self.id_width} plus {self.index_bits} manager index bits "
                f"for {self.managers} managers exceeds 16; use id_width <= "
                f"{16 - self.index_bits}")

    @property
    def index_bits(self):
        """ID bits that carry the manager index."""
        return ceil_log2(self.managers)

    @property
    def subordinate_id_width(self):
        """ID width of the subordinate port."""
        return self.id_width + self.index_bits

    @property
    def manager_signature(self):
        """:class:`AXI4Signature` of each manager port (from the manager's side)."""
        return AXI4Signature(addr_width=self.addr_width, data_width=self.data_width,
                             id_width=self.id_width)

    @property
    def subordinate_signature(self):
        """:class:`AXI4Signature` of the subordinate port (from the manager's side)."""
        return AXI4Signature(addr_width=self.addr_width, data_width=self.data_width,
                             id_width=self.subordinate_id_width)


class AXI4Arbiter(wiring.Component):
    """Round-robin AXI4 arbiter: ``config.managers`` managers, one subordinate.

    Parameters
    ----------
    config : AXI4ArbiterConfig

    Ports
    -----
    managers : In(AXI4Signature(addr_width, data_width, id_width)).array(managers)
        Manager ports (the arbiter is their subordinate).
    subordinate : Out(AXI4Signature(addr_width, data_width, id_width + index_bits))
        Toward the memory backend. ``aw.id``/``ar.id`` carry
        ``{manager index, manager id}``; a B or R whose index names no
        manager is accepted and dropped (a subordinate bug the protocol
        checker reports).

    Attributes
    ----------
    writes, reads : Signal(range(max_outstanding + 1))
        Writes waiting for B, reads waiting for their last R beat, counted
        from the grant (read-only; for formal harnesses).
    aw_last, ar_last : Signal(range(managers))
        The manager granted last on AW and AR: the round-robin pointer
        (read-only; for formal harnesses).

    Notes
    -----
    Latency: one cycle on AW, AR and W (registered stages that still take a
    new beat every cycle); B and R are combinational pass-through.

    Proved by k-induction for 2 managers and 2 outstanding, with free reset
    (``tests/formal/test_formal_arbiter.py``): no AW or AR lost, duplicated
    or misnamed; W beats in AW grant order; B and R routed by ID;
    work-conserving, round-robin grants.
    """

    def __init__(self, config):
        if not isinstance(config, AXI4ArbiterConfig):
            raise TypeError(f"config must be an AXI4ArbiterConfig, not {config!r}")
        self.config = config
        super().__init__({
            "managers": In(config.manager_signature).array(config.managers),
            "subordinate": Out(config.subordinate_signature),
        })
        # State the formal harness's inductive invariants name.
        limit = config.max_outstanding
        self.writes = Signal(range(limit + 1), name="writes")
        self.reads = Signal(range(limit + 1), name="reads")
        self.aw_last = Signal(range(config.managers), name="aw_last", init=config.managers - 1)
        self.ar_last = Signal(range(config.managers), name="ar_last", init=config.managers - 1)

    def order_queue(self, width, depth):
        """The W order queue: one entry (manager index) per granted AW.

        A :class:`lib.fifo.SyncFIFO`; a formal harness overrides this with a
        queue of the same behaviour whose entries it can name (a memory's
        words cannot appear in an assertion).
        """
        return fifo.SyncFIFO(width=width, depth=depth)

    # -- address channels ---------------------------------------------------

    def _arbitrate(self, m, name, channels, out, allow, last):
        """Registered round-robin arbiter for one address channel.

        ``last`` is the channel's round-robin pointer (the manager granted
        last). Returns the one-cycle ``grant`` strobe and the granted index.
        """
        cfg = self.config
        n = cfg.managers
        winner = Signal(range(n), name=f"{name}_winner")
        any_valid = Signal(name=f"{name}_any_valid")
        grant = Signal(name=f"{name}_grant")
        load = Signal(name=f"{name}_load")

        m.d.comb += any_valid.eq(Cat(ch.valid for ch in channels).any())
        # Priority starts right after the last grant.
        with m.Switch(last):
            for prev in range(n):
                with m.Case(prev):
                    order = [(prev + 1 + k) % n for k in range(n)]
                    for _k, idx in enumerate(reversed(order)):
                        # Lowest priority first, so the highest-priority
                        # valid manager is the last assignment that wins.
                        with m.If(channels[idx].valid):
                            m.d.comb += winner.eq(idx)

        m.d.comb += [
            load.eq(~out.valid | out.ready),
            grant.eq(load & allow & any_valid),
        ]
        for idx, ch in enumerate(channels):
            m.d.comb += ch.ready.eq(grant & (winner == idx))

        with m.If(grant):
            m.d.sync += [out.valid.eq(1), last.eq(winner)]
            with m.Switch(winner):
                for idx, ch in enumerate(channels):
                    with m.Case(idx):
                        m.d.sync += [getattr(out, f).eq(getattr(ch, f)) for f in _ADDR_FIELDS]
                        own_id = ch.id[:cfg.id_width] if cfg.id_width else Const(0, 0)
                        if cfg.index_bits:
                            m.d.sync += out.id.eq(Cat(own_id, Const(idx, cfg.index_bits)))
                        else:
                            m.d.sync += out.id.eq(own_id)
        with m.Elif(out.ready):
            m.d.sync += out.valid.eq(0)
        return grant, winner

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        n = cfg.managers
        mgrs = list(self.managers)
        sub = self.subordinate
        limit = cfg.max_outstanding

        # Outstanding counters, per direction.
        writes, reads = self.writes, self.reads

        # W order: one entry (manager index) per granted AW.
        m.submodules.w_order = w_order = self.order_queue(width=max(1, cfg.index_bits),
                                                          depth=limit)

        aw_grant, aw_winner = self._arbitrate(
            m, "aw", [mg.aw for mg in mgrs], sub.aw,
            allow=w_order.w_stream.ready & (writes < limit), last=self.aw_last)
        ar_grant, _ = self._arbitrate(
            m, "ar", [mg.ar for mg in mgrs], sub.ar, allow=reads < limit, last=self.ar_last)

        m.d.comb += [
            w_order.w_stream.valid.eq(aw_grant),
            w_order.w_stream.payload.eq(aw_winner),
        ]

        b_done = Signal()
        r_done = Signal()
        m.d.comb += [
            b_done.eq(sub.b.valid & sub.b.ready),
            r_done.eq(sub.r.valid & sub.r.ready & sub.r.last),
        ]
        m.d.sync += [
            writes.eq(writes + aw_grant - b_done),
            reads.eq(reads + ar_grant - r_done),
        ]

        # W: registered stage fed by the manager at the head of the order FIFO.
        head = w_order.r_stream.payload
        w_load = Signal()
        w_take = Signal()
        m.d.comb += w_load.eq(~sub.w.valid | sub.w.ready)
        for idx, mg in enumerate(mgrs):
            sel = w_order.r_stream.valid & (head == idx) if n > 1 else w_order.r_stream.valid
            m.d.comb += mg.w.ready.eq(w_load & sel)
            with m.If(mg.w.valid & mg.w.ready):
                m.d.comb += w_take.eq(1)
                m.d.sync += [sub.w.data.eq(mg.w.data), sub.w.strb.eq(mg.w.strb),
                             sub.w.last.eq(mg.w.last)]
                m.d.comb += w_order.r_stream.ready.eq(mg.w.last)
        with m.If(w_take):
            m.d.sync += sub.w.valid.eq(1)
        with m.Elif(sub.w.ready):
            m.d.sync += sub.w.valid.eq(0)

        # B and R: route by the index bits of the ID.
        def index_of(id_sig):
            return id_sig[cfg.id_width:cfg.id_width + cfg.index_bits] if cfg.index_bits \
                else Const(0, 1)

        for ch_name, fields in (("b", ("resp",)), ("r", ("data", "resp", "last"))):
            sub_ch = getattr(sub, ch_name)
            idx_sig = index_of(sub_ch.id)
            # Unknown index: accept and drop, so a broken subordinate cannot
            # hang the bus (the protocol checker reports it).
            m.d.comb += sub_ch.ready.eq(1)
            for idx, mg in enumerate(mgrs):
                mg_ch = getattr(mg, ch_name)
                m.d.comb += [getattr(mg_ch, f).eq(getattr(sub_ch, f)) for f in fields]
                if cfg.id_width:
                    m.d.comb += mg_ch.id.eq(sub_ch.id[:cfg.id_width])
                m.d.comb += mg_ch.valid.eq(sub_ch.valid & (idx_sig == idx))
                with m.If(idx_sig == idx):
                    m.d.comb += sub_ch.ready.eq(mg_ch.ready)
        return m
