"""AXI4 protocol checker for cocotb testbenches.

:class:`AxiProtocolChecker` watches one AXI4 port whose signals are visible
as flat top-level ports named the cocotbext-axi way (``<prefix>_awvalid``,
``<prefix>_rdata``, ... as made by :func:`lpaccel.sim.infra.flat.flat_members`).
It drives nothing, so it can sit on a manager port, a subordinate port or a
tap of an internal link, next to any cocotbext-axi model.

Rules checked (message prefix in brackets), sampled once per cycle in the
``ReadOnly`` phase after each rising edge, so a handshake is seen on exactly
the cycle the hardware performs it:

* [stable] on every channel, once ``valid`` is high without ``ready``,
  ``valid`` stays high and every payload field holds until the transfer.
* [4k] an INCR burst on AW or AR does not cross a 4 KiB boundary.
* [size] ``AxSIZE`` is at most the bus width (``2**AxSIZE`` bytes no more
  than the data bus carries).
* [burst] ``AxBURST`` is FIXED (0), INCR (1) or WRAP (2), never the
  reserved 3; a WRAP burst has 2, 4, 8 or 16 beats and an address aligned
  to ``AxSIZE``; a FIXED burst has at most 16 beats.
* [strb] every W beat's ``WSTRB`` lies inside the bytes its beat addresses:
  for a narrow or unaligned beat only the lanes of the addressed bytes
  (AXI4 A3.4.1, ``Lower_Byte_Lane`` to ``Upper_Byte_Lane``) may be set.
  A W beat that arrives before its AW is checked when the AW arrives.
* [wlen] a write burst has exactly ``AWLEN + 1`` W beats, ``WLAST`` on the
  last one only (W bursts are matched to AW requests in order; W may come
  before its AW).
* [b] a B response names an ID with an outstanding write whose address and
  last data beat have both been transferred.
* [r] an R beat names an ID with an outstanding read; a read returns
  exactly ``ARLEN + 1`` beats with ``RLAST`` on the last one only.
* [reset] while the reset is asserted, every ``VALID`` (AW, W, AR from the
  manager, B, R from the subordinate) is low (AXI4 A3.1.2). A reset also
  forgets every outstanding transaction, so a response to a request made
  before it is reported by [b] or [r].
* [idle] (:meth:`AxiProtocolChecker.check_idle`) nothing is left
  outstanding.

The checker also counts beats and bursts per channel and non-OKAY
responses, for throughput figures and end-of-test accounting.

An AXI4-Lite port (no ``AxLEN``, ``WLAST``, ``RLAST``; usually no ID, size
or burst either) is checked with the same rules, every transfer a burst of
one beat, except [strb]: AXI4-Lite has no ``AxSIZE``, and what a partial
strobe or an unaligned address means is the subordinate's to decide (the
CSR bank answers SLVERR).
"""

from __future__ import annotations

import collections
import logging
from typing import Any

__all__ = ["AxiProtocolChecker", "AxiProtocolError"]

_CHANNEL_FIELDS = {
    "aw": ("id", "addr", "len", "size", "burst"),
    "w": ("data", "strb", "last"),
    "b": ("id", "resp"),
    "ar": ("id", "addr", "len", "size", "burst"),
    "r": ("id", "data", "resp", "last"),
}
_OPTIONAL = {"id", "strb", "size", "burst", "resp", "len", "last"}
#: What an AXI4-Lite port (no AxLEN, WLAST, RLAST) implies for every beat.
_LITE_IMPLIED = {"aw": ("len", 0), "ar": ("len", 0), "w": ("last", 1), "r": ("last", 1)}


class AxiProtocolError(AssertionError):
    """A port broke an AXI4 rule; the message names the rule, channel and time."""


class AxiProtocolChecker:
    """Check the AXI4 rules on one port and count its traffic.

    Parameters
    ----------
    clk : cocotb handle
        Clock of the port.
    dut : cocotb handle
        Scope holding the flat signals.
    prefix : str
        Signal name prefix (``"s"`` for ``s_awvalid``...).
    reset : cocotb handle, optional
        Active-high reset; cycles in reset are not checked, and a reset
        forgets every outstanding transaction.
    raise_on_error : bool
        Raise :class:`AxiProtocolError` at the first violation (fails the
        running cocotb test); with False violations are only collected in
        :attr:`errors`.

    Attributes
    ----------
    errors : list of str
        One message per violation.
    beats : dict
        Transfers per channel (``"aw"``, ``"w"``, ``"b"``, ``"ar"``, ``"r"``).
    error_responses : dict
        Non-OKAY responses: ``{"b": n, "r": n}`` (R counted per beat).
    cycles : int
        Clock cycles observed (out of reset).
    peak_outstanding : dict
        Most writes (AW transferred, B not yet) and reads (AR transferred,
        last R not yet) in flight at once: ``{"writes": n, "reads": n}``.
    """

    def __init__(self, clk: Any, dut: Any, prefix: str, *, reset: Any = None,
                 raise_on_error: bool = True):
        import cocotb
        self.clk = clk
        self.prefix = prefix
        self.reset = reset
        self.raise_on_error = raise_on_error
        self.log = logging.getLogger(f"cocotb.lpaccel.axi.{prefix}")
        self.errors: list[str] = []
        self.beats = dict.fromkeys(_CHANNEL_FIELDS, 0)
        self.error_responses = {"b": 0, "r": 0}
        self.cycles = 0
        self.peak_outstanding = {"writes": 0, "reads": 0}
        self._callbacks: dict[str, list] = {ch: [] for ch in _CHANNEL_FIELDS}
        self._sig = {}
        for ch, fields in _CHANNEL_FIELDS.items():
            sigs = {"valid": self._find(dut, ch, "valid"), "ready": self._find(dut, ch, "ready")}
            for f in fields:
                handle = self._find(dut, ch, f, optional=f in _OPTIONAL)
                if handle is not None:
                    sigs[f] = handle
            self._sig[ch] = sigs
        #: Bytes per data beat, from the width of WDATA.
        self.data_bytes = len(self._sig["w"]["data"]) // 8
        #: An AXI4-Lite port: no AWLEN (see the module docstring).
        self.lite = "len" not in self._sig["aw"]
        self._implied = {ch: dict([_LITE_IMPLIED[ch]])
                         if ch in _LITE_IMPLIED and _LITE_IMPLIED[ch][0] not in sigs else {}
                         for ch, sigs in self._sig.items()}
        self._clear_state()
        self._task = cocotb.start_soon(self._run())

    def _find(self, dut, ch, field, optional=False):
        name = f"{self.prefix}_{ch}{field}"
        try:
            return getattr(dut, name)
        except AttributeError:
            if optional:
                return None
            raise AttributeError(
                f"no signal {name} on {dut._name}: is {self.prefix!r} the prefix of a "
                f"flat AXI4 port (see lpaccel.sim.infra.flat.flat_members)?") from None

    def _clear_state(self):
        self._stalled = dict.fromkeys(_CHANNEL_FIELDS)   # channel -> held payload
        self._aw_pending: collections.deque[dict] = collections.deque()  # AW without W
        self._w_bursts: collections.deque[int] = collections.deque()     # W bursts without AW
        self._w_current = 0                                              # beats of open W burst
        self._w_strobes: list[int] = []          # WSTRB of the open burst's beats, no AW yet
        self._w_burst_strobes: collections.deque[list[int]] = collections.deque()
        self._w_beat = 0                         # beats of the burst of _aw_pending[0]
        self._writes: dict[int, collections.deque] = collections.defaultdict(collections.deque)
        self._reads: dict[int, collections.deque] = collections.defaultdict(collections.deque)

    # -- public -------------------------------------------------------------

    def add_callback(self, channel: str, callback) -> None:
        """Call ``callback(cycle, payload)`` on every transfer on ``channel``
        (``"aw"``, ``"w"``, ``"b"``, ``"ar"`` or ``"r"``); ``payload`` maps
        field names (``"id"``, ``"addr"``, ...) to ints."""
        if channel not in self._callbacks:
            raise ValueError(f"channel must be one of {sorted(self._callbacks)}, "
                             f"not {channel!r}")
        self._callbacks[channel].append(callback)

    def stop(self) -> None:
        """Stop watching."""
        self._task.cancel()

    def outstanding(self) -> dict[str, int]:
        """Transactions not yet finished, by kind."""
        return {
            "aw_without_w": len(self._aw_pending),
            "w_without_aw": len(self._w_bursts) + (1 if self._w_current else 0),
            "writes_awaiting_b": sum(len(q) for q in self._writes.values()),
            "reads_awaiting_r": sum(len(q) for q in self._reads.values()),
        }

    def check_idle(self) -> None:
        """Raise :class:`AxiProtocolError` if anything is outstanding or an
        error was recorded."""
        left = {k: v for k, v in self.outstanding().items() if v}
        if left:
            raise AxiProtocolError(f"AXI port {self.prefix!r}: [idle] transactions left "
                                   f"outstanding at the end: {left}")
        if self.errors:
            raise AxiProtocolError(f"AXI port {self.prefix!r}: {len(self.errors)} protocol "
                                   f"violation(s), first: {self.errors[0]}")

    # -- monitor ------------------------------------------------------------

    def _error(self, rule: str, what: str) -> None:
        from cocotb.simtime import get_sim_time
        message = f"AXI port {self.prefix!r} at {get_sim_time('ns'):g} ns: [{rule}] {what}"
        self.errors.append(message)
        self.log.error("%s", message)
        if self.raise_on_error:
            raise AxiProtocolError(message)

    async def _run(self) -> None:
        from cocotb.triggers import ReadOnly, RisingEdge
        edge, readonly = RisingEdge(self.clk), ReadOnly()
        sig, implied = self._sig, self._implied
        while True:
            await edge
            await readonly
            if self.reset is not None and int(self.reset.value):
                self._clear_state()
                high = [ch.upper() + "VALID" for ch, s in sig.items() if int(s["valid"].value)]
                if high:
                    self._error("reset", f"{', '.join(high)} high while the reset is asserted")
                continue
            self.cycles += 1
            for ch, s in sig.items():
                valid = int(s["valid"].value)
                held = self._stalled[ch]
                if not valid:
                    if held is not None:
                        self._error("stable", f"{ch.upper()}VALID fell before the transfer "
                                              f"of {self._fmt(held)}")
                        self._stalled[ch] = None
                    continue
                payload = {f: int(h.value) for f, h in s.items()
                           if f != "valid" and f != "ready"}
                if implied[ch]:
                    payload.update(implied[ch])
                if held is not None and payload != held:
                    changed = sorted(f for f in payload if payload[f] != held[f])
                    self._error("stable", f"{ch.upper()} payload changed while VALID and not "
                                          f"READY ({', '.join(ch + f for f in changed)}): "
                                          f"{self._fmt(held)} -> {self._fmt(payload)}")
                if int(s["ready"].value):
                    self._stalled[ch] = None
                    self.beats[ch] += 1
                    getattr(self, "_on_" + ch)(payload)
                    for callback in self._callbacks[ch]:
                        callback(self.cycles, payload)
                else:
                    self._stalled[ch] = payload

    @staticmethod
    def _fmt(payload: dict) -> str:
        return "{" + ", ".join(f"{k}={v:#x}" for k, v in payload.items()) + "}"

    def _beat_size(self, p: dict) -> int:
        # A port without AxSIZE moves full-width beats (AXI4 A3.4.1).
        return 1 << p["size"] if "size" in p else self.data_bytes

    def _check_request(self, ch: str, p: dict) -> None:
        """The [size], [burst] and [4k] rules of one AW or AR request."""
        size = self._beat_size(p)
        burst, beats = p.get("burst", 1), p["len"] + 1
        what = f"{ch.upper()} addr={p['addr']:#x} len={p['len']} size={size}"
        if size > self.data_bytes:
            self._error("size", f"{what}: {size} bytes per beat on a {self.data_bytes}-byte "
                                f"bus ({ch.upper()}SIZE at most "
                                f"{self.data_bytes.bit_length() - 1})")
        if burst == 3:
            self._error("burst", f"{what}: {ch.upper()}BURST=3 is reserved")
        elif burst == 2:
            if beats not in (2, 4, 8, 16):
                self._error("burst", f"{what}: a WRAP burst has 2, 4, 8 or 16 beats, "
                                     f"not {beats}")
            if p["addr"] % size:
                self._error("burst", f"{what}: a WRAP burst's address must be aligned to "
                                     f"its {size}-byte beats")
        elif burst == 0 and beats > 16:
            self._error("burst", f"{what}: a FIXED burst has at most 16 beats, not {beats}")
        self._check_4k(ch, p)

    def _lanes(self, aw: dict, beat: int) -> int:
        """Byte-lane mask beat ``beat`` of burst ``aw`` may strobe (AXI4 A3.4.1)."""
        size = self._beat_size(aw)
        start, burst = aw["addr"], aw.get("burst", 1)
        aligned = start // size * size
        if burst == 0 or beat == 0:
            addr = start
        else:
            addr = aligned + beat * size
            if burst == 2:
                span = size * (aw["len"] + 1)
                boundary = start // span * span
                if addr >= boundary + span:
                    addr -= span
        lower = addr % self.data_bytes
        # A size above the bus ([size] reports it) would reach past the top lane.
        upper = min((addr // size * size) % self.data_bytes + size - 1, self.data_bytes - 1)
        return ((1 << (upper + 1)) - 1) & ~((1 << lower) - 1)

    def _check_strobe(self, aw: dict, beat: int, strb: int) -> None:
        if strb is None or self.lite or beat > aw["len"]:
            return   # no WSTRB, AXI4-Lite, or [wlen] reports the extra beat
        lanes = self._lanes(aw, beat)
        if strb & ~lanes:
            self._error("strb", f"W beat {beat} of the burst addr={aw['addr']:#x} "
                                f"len={aw['len']} size={self._beat_size(aw)} "
                                f"burst={aw.get('burst', 1)} has WSTRB={strb:#x}, outside "
                                f"the addressed byte lanes {lanes:#x}")

    def _check_4k(self, ch: str, p: dict) -> None:
        if p.get("burst", 1) != 1:   # only INCR is checked
            return
        size = self._beat_size(p)
        first = p["addr"]
        last = (first // size) * size + p["len"] * size
        if first >> 12 != last >> 12:
            self._error("4k", f"{ch.upper()} INCR burst addr={first:#x} len={p['len']} "
                              f"size={size} crosses a 4 KiB boundary (last beat at {last:#x})")

    def _on_aw(self, p: dict) -> None:
        self._check_request("aw", p)
        writes = len(self._aw_pending) + sum(len(q) for q in self._writes.values()) + 1
        self.peak_outstanding["writes"] = max(self.peak_outstanding["writes"], writes)
        if self._w_bursts:
            for beat, strb in enumerate(self._w_burst_strobes.popleft()):
                self._check_strobe(p, beat, strb)
            self._pair_write(p, self._w_bursts.popleft())
        else:
            self._aw_pending.append(p)
            if len(self._aw_pending) == 1:
                # The open W burst's beats so far belong to this AW.
                for beat, strb in enumerate(self._w_strobes):
                    self._check_strobe(p, beat, strb)
                self._w_strobes = []
                self._w_beat = self._w_current
            # The open W burst (if any) belongs to this AW only if no older
            # AW is still waiting for its data.
            if len(self._aw_pending) == 1 and self._w_current > p["len"] + 1:
                self._error("wlen", f"W burst already has {self._w_current} beats but its AW "
                                    f"(id={p.get('id', 0):#x}) has AWLEN={p['len']}")

    def _on_w(self, p: dict) -> None:
        self._w_current += 1
        # The AW this beat belongs to, if it was seen already.
        aw = self._aw_pending[0] if self._aw_pending else None
        expected = aw["len"] + 1 if aw is not None else None
        if aw is not None:
            self._check_strobe(aw, self._w_beat, p.get("strb"))
            self._w_beat += 1
        else:
            self._w_strobes.append(p.get("strb"))
        if not p["last"]:
            if expected is not None and self._w_current == expected:
                self._error("wlen", f"WLAST missing on beat {self._w_current} of a burst with "
                                    f"AWLEN={aw['len']} (id={aw.get('id', 0):#x})")
            return
        count, self._w_current = self._w_current, 0
        if aw is not None:
            self._pair_write(self._aw_pending.popleft(), count)
            self._w_beat = 0
        else:
            self._w_bursts.append(count)
            self._w_burst_strobes.append(self._w_strobes)
            self._w_strobes = []

    def _pair_write(self, aw: dict, count: int) -> None:
        if count != aw["len"] + 1:
            self._error("wlen", f"write burst id={aw.get('id', 0):#x} addr={aw['addr']:#x} had "
                                f"{count} W beats, AWLEN={aw['len']} asks for {aw['len'] + 1}")
        self._writes[aw.get("id", 0)].append(aw)

    def _on_b(self, p: dict) -> None:
        bid = p.get("id", 0)
        if p.get("resp", 0):
            self.error_responses["b"] += 1
        queue = self._writes.get(bid)
        if not queue:
            waiting = [aw for aw in self._aw_pending if aw.get("id", 0) == bid]
            if waiting:
                self._error("b", f"B id={bid:#x} before the last W beat of its burst "
                                 f"(addr={waiting[0]['addr']:#x})")
                self._aw_pending.remove(waiting[0])
            else:
                self._error("b", f"B id={bid:#x} without an outstanding write")
            return
        queue.popleft()

    def _on_ar(self, p: dict) -> None:
        self._check_request("ar", p)
        reads = sum(len(q) for q in self._reads.values()) + 1
        self.peak_outstanding["reads"] = max(self.peak_outstanding["reads"], reads)
        self._reads[p.get("id", 0)].append([p, 0])

    def _on_r(self, p: dict) -> None:
        rid = p.get("id", 0)
        if p.get("resp", 0):
            self.error_responses["r"] += 1
        queue = self._reads.get(rid)
        if not queue:
            self._error("r", f"R beat id={rid:#x} without an outstanding read")
            return
        entry = queue[0]
        entry[1] += 1
        ar, count = entry
        expected = ar["len"] + 1
        if p["last"]:
            queue.popleft()
            if count != expected:
                self._error("r", f"RLAST on beat {count} of read id={rid:#x} "
                                 f"addr={ar['addr']:#x}, ARLEN={ar['len']} asks for {expected}")
        elif count == expected:
            queue.popleft()
            self._error("r", f"RLAST missing on beat {count} (the last) of read id={rid:#x} "
                             f"addr={ar['addr']:#x} ARLEN={ar['len']}")
