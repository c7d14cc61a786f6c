"""Random AXI4 traffic against a reference memory, for any AXI4 subordinate.

:class:`AxiTrafficGenerator` drives one or more AXI4 manager ports of a DUT
with cocotbext-axi's ``AxiMaster`` (one per port prefix), all in parallel,
and checks every read against a Python reference memory. It knows nothing
about the DUT beyond the flat port prefixes, so the same kit drives an
on-chip RAM, the arbiter, or the LPDDR controller::

    gen = AxiTrafficGenerator(dut.clk, dut, ["m0", "m1", "m2"], reset=dut.rst,
                              window=(0, 1 << 16), seed=1,
                              idle="random", backpressure="periodic")
    await gen.run(beats=100_000)
    gen.check()          # zero mismatches, nothing lost or outstanding

Traffic: reads and writes, INCR bursts of 1 to ``max_burst`` beats (mixed
short and long), random word-aligned addresses in the window (and some
byte-unaligned writes, which exercise the strobes), never crossing 4 KiB.
Several operations are in flight per manager (``workers`` each); an
operation never overlaps a write in flight, so the reference is exact
whatever order the DUT completes unrelated transactions in. Bytes never
written are not compared (the DUT's initial contents are unknown).

Pauses: every channel of every manager gets a pause pattern from
:data:`lpaccel.sim.infra.streams.PAUSE_MODES` through cocotbext-axi's
``set_pause_generator`` (``idle`` on AW, W, AR; ``backpressure`` on B, R),
each with its own seed.
"""

from __future__ import annotations

import logging
import random
import warnings
from dataclasses import dataclass, field
from typing import Any

from .streams import PAUSE_MODES

__all__ = ["AxiTrafficGenerator", "TrafficStats", "allow_cocotbext_deprecations",
           "quiet_axi_master"]


def allow_cocotbext_deprecations() -> None:
    """Let cocotbext-axi's own cocotb 2.x deprecation warnings through.

    cocotbext-axi 0.1.28 still calls ``setimmediatevalue``, deprecated in
    cocotb 2.1; the project turns DeprecationWarning into an error, which
    would fail every test that instantiates an ``AxiMaster`` or ``AxiRam``.
    This ignores DeprecationWarning only where the warning is attributed to
    a ``cocotbext`` module; our own code stays under the error policy.
    Called on import of this module.
    """
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext(\.|$)")


allow_cocotbext_deprecations()


def quiet_axi_master(master):
    """Raise a cocotbext-axi ``AxiMaster``'s loggers to WARNING.

    cocotbext-axi logs every burst (with its data) at INFO: at 10^5 beats
    that is tens of MB of log and a large share of the simulation's time.
    """
    for iface in (master.write_if, master.read_if):
        iface.log.setLevel(logging.WARNING)
    for ch in ("aw_channel", "w_channel", "b_channel"):
        getattr(master.write_if, ch).log.setLevel(logging.WARNING)
    for ch in ("ar_channel", "r_channel"):
        getattr(master.read_if, ch).log.setLevel(logging.WARNING)


@dataclass
class TrafficStats:
    """What one :class:`AxiTrafficGenerator` did.

    Attributes
    ----------
    reads, writes : int
        Operations completed (an operation is one ``AxiMaster`` call, one
        burst unless it is byte-unaligned).
    read_beats, write_beats : int
        Data beats requested by completed operations.
    issued : int
        Operations started.
    mismatches : list of str
        First few read mismatches (address, expected, got).
    mismatch_count : int
        Mismatching bytes in total.
    compared_bytes : int
        Bytes read back whose expected value was known (written before).
    bad_responses : list of str
        Operations that answered anything but OKAY.
    per_manager : dict
        Prefix -> ``{"reads", "writes", "beats"}``.
    """

    reads: int = 0
    writes: int = 0
    read_beats: int = 0
    write_beats: int = 0
    issued: int = 0
    mismatches: list = field(default_factory=list)
    mismatch_count: int = 0
    compared_bytes: int = 0
    bad_responses: list = field(default_factory=list)
    per_manager: dict = field(default_factory=dict)

    @property
    def beats(self):
        """Data beats of completed operations, reads plus writes."""
        return self.read_beats + self.write_beats


class AxiTrafficGenerator:
    """Random reads and writes from several AXI4 managers, checked against a model.

    Parameters
    ----------
    clk : cocotb handle
        Clock of the ports.
    dut : cocotb handle
        Scope holding the flat ports.
    prefixes : list of str
        One ``AxiMaster`` per prefix (``AxiBus.from_prefix(dut, prefix)``).
    reset : cocotb handle, optional
        Active-high reset, passed to the masters.
    window : (int, int)
        ``(base, size)`` of the address range to use; ``base`` and ``size``
        multiples of 4096 or ``size`` below 4096 with ``base`` aligned to it.
    seed : int
        Seed of the traffic (addresses, lengths, data, pauses).
    idle, backpressure : str
        Keys of :data:`PAUSE_MODES` for manager-driven channels (AW, W, AR)
        and for response channels (B, R).
    max_burst : int
        Longest burst in beats, 1 to 256.
    workers : int
        Operations each manager keeps in flight.
    write_fraction : float
        Share of writes among operations.
    unaligned_fraction : float
        Share of writes with a byte-granular start and length.
    """

    def __init__(self, clk: Any, dut: Any, prefixes: list[str], *, reset: Any = None,
                 window: tuple[int, int] = (0, 1 << 16), seed: int = 0,
                 idle: str = "none", backpressure: str = "none", max_burst: int = 256,
                 workers: int = 3, write_fraction: float = 0.5,
                 unaligned_fraction: float = 0.1):
        import numpy as np
        from cocotbext.axi import AxiBus, AxiMaster
        for name, mode in (("idle", idle), ("backpressure", backpressure)):
            if mode not in PAUSE_MODES:
                raise ValueError(f"{name} must be one of {sorted(PAUSE_MODES)}, not {mode!r}")
        if not 1 <= max_burst <= 256:
            raise ValueError(f"max_burst must be from 1 to 256, not {max_burst}")
        base, size = window
        if size <= 0 or (size >= 4096 and (base % 4096 or size % 4096)) or \
                (size < 4096 and base % size):
            raise ValueError(f"window {window!r} must be 4 KiB-aligned pages (or a smaller "
                             f"power-of-two block aligned to its size)")
        self.clk = clk
        self.base, self.size = base, size
        self.rng = random.Random(seed)
        self.max_burst = max_burst
        self.workers = workers
        self.write_fraction = write_fraction
        self.unaligned_fraction = unaligned_fraction
        self.ref = np.zeros(size, dtype=np.uint8)
        self.known = np.zeros(size, dtype=bool)
        self.stats = TrafficStats()
        self._busy: list[tuple[int, int, bool]] = []   # (start, end, is_write) in flight
        self._written: list[tuple[int, int]] = []      # recent completed writes
        self.seed = seed
        self.masters = {}
        for prefix in prefixes:
            master = AxiMaster(AxiBus.from_prefix(dut, prefix), clk, reset)
            quiet_axi_master(master)
            self.masters[prefix] = master
            self.stats.per_manager[prefix] = {"reads": 0, "writes": 0, "beats": 0}
        self.set_pauses(idle, backpressure)
        self.word_bytes = len(next(iter(self.masters.values())).write_if.w_channel.bus.wdata) // 8

    def set_pauses(self, idle: str, backpressure: str, seed: int | None = None) -> None:
        """Give every channel of every manager a new pause pattern.

        One generator (one ``AxiMaster`` per port) can then run several
        phases with different pauses: a second ``AxiMaster`` on the same
        port would also consume the first one's responses.

        Parameters
        ----------
        idle, backpressure : str
            Keys of :data:`PAUSE_MODES`, as for the constructor.
        seed : int, optional
            Seed of the patterns; default the generator's seed.
        """
        for name, mode in (("idle", idle), ("backpressure", backpressure)):
            if mode not in PAUSE_MODES:
                raise ValueError(f"{name} must be one of {sorted(PAUSE_MODES)}, not {mode!r}")
        seed = self.seed if seed is None else seed
        for k, master in enumerate(self.masters.values()):
            for j, ch in enumerate(("aw", "w", "ar", "b", "r")):
                iface = master.write_if if ch in ("aw", "w", "b") else master.read_if
                mode = idle if ch in ("aw", "w", "ar") else backpressure
                getattr(iface, f"{ch}_channel").set_pause_generator(
                    PAUSE_MODES[mode](seed=seed * 1009 + k * 31 + j))

    # -- operation choice ---------------------------------------------------

    def _burst_beats(self) -> int:
        r = self.rng.random()
        if r < 0.4:
            n = self.rng.randint(1, 8)
        elif r < 0.8:
            n = self.rng.randint(1, 256)
        else:
            n = 256
        return max(1, min(n, self.max_burst, 4096 // self.word_bytes, self.size // self.word_bytes))

    def _choose(self, write: bool) -> tuple[int, int]:
        """Return (offset in window, byte length) inside one 4 KiB page.

        Some operations revisit a recently written range (reads: 40%,
        unaligned writes: 70%) so that read data and partial strobes are
        checked against known bytes even in a large, sparsely used window.
        """
        wb = self.word_bytes
        unaligned = write and self.rng.random() < self.unaligned_fraction
        revisit = 0.7 if unaligned else (0.0 if write else 0.4)
        if self._written and self.rng.random() < revisit:
            lo, hi = self.rng.choice(self._written)
            if unaligned:
                start = self.rng.randrange(lo, hi)
                end = self.rng.randrange(start + 1, hi + 1)
                return start, end - start
            first = self.rng.randrange(lo // wb, (hi - 1) // wb + 1)
            last = self.rng.randrange(first, (hi - 1) // wb + 1)
            return first * wb, (last - first + 1) * wb
        beats = self._burst_beats()
        page_size = min(4096, self.size)
        length = beats * wb
        page = self.rng.randrange(self.size // page_size) * page_size
        offset = self.rng.randrange((page_size - length) // wb + 1) * wb
        if unaligned:
            # Byte-granular start and end inside the same words: partial strobes.
            start = offset + self.rng.randrange(wb)
            end = offset + length - self.rng.randrange(wb)
            if end <= start:
                end = start + 1
            return page + start, end - start
        return page + offset, length

    def _conflicts(self, start: int, end: int, write: bool) -> bool:
        return any(s < end and start < e and (write or w) for s, e, w in self._busy)

    # -- running ------------------------------------------------------------

    async def _worker(self, prefix: str, master: Any, budget: list[int]) -> None:
        import numpy as np
        from cocotb.triggers import RisingEdge
        while budget[0] > 0:
            write = self.rng.random() < self.write_fraction
            for _ in range(8):
                start, length = self._choose(write)
                if not self._conflicts(start, start + length, write):
                    break
            else:
                await RisingEdge(self.clk)
                continue
            first_word = start // self.word_bytes
            beats = (start + length - 1) // self.word_bytes - first_word + 1
            budget[0] -= beats
            entry = (start, start + length, write)
            self._busy.append(entry)
            self.stats.issued += 1
            addr = self.base + start
            if write:
                data = self.rng.randbytes(length)
                resp = await master.write(addr, data)
                self.ref[start:start + length] = np.frombuffer(data, dtype=np.uint8)
                self.known[start:start + length] = True
                self._written.append((start, start + length))
                if len(self._written) > 64:
                    self._written.pop(self.rng.randrange(len(self._written)))
                self.stats.writes += 1
                self.stats.write_beats += beats
                self.stats.per_manager[prefix]["writes"] += 1
            else:
                resp = await master.read(addr, length)
                got = np.frombuffer(resp.data, dtype=np.uint8)
                mask = self.known[start:start + length]
                self.stats.compared_bytes += int(np.count_nonzero(mask))
                bad = np.flatnonzero((got != self.ref[start:start + length]) & mask)
                if bad.size:
                    self.stats.mismatch_count += int(bad.size)
                    if len(self.stats.mismatches) < 8:
                        i = int(bad[0])
                        self.stats.mismatches.append(
                            f"{prefix} read {addr:#x}+{length}: byte {addr + i:#x} "
                            f"expected {int(self.ref[start + i]):#04x}, got {int(got[i]):#04x} "
                            f"({bad.size} bytes differ)")
                self.stats.reads += 1
                self.stats.read_beats += beats
                self.stats.per_manager[prefix]["reads"] += 1
            self.stats.per_manager[prefix]["beats"] += beats
            if int(resp.resp) != 0:
                self.stats.bad_responses.append(
                    f"{prefix} {'write' if write else 'read'} {addr:#x}+{length}: "
                    f"resp {int(resp.resp)}")
            self._busy.remove(entry)

    async def run(self, beats: int) -> TrafficStats:
        """Run until about ``beats`` data beats were issued, then drain.

        May be called again (e.g. after :meth:`set_pauses`); statistics
        accumulate.

        Parameters
        ----------
        beats : int
            Total data beats (reads plus writes, all managers) to issue.

        Returns
        -------
        TrafficStats
        """
        from cocotb.triggers import gather
        budget = [beats]
        await gather(*(self._worker(prefix, master, budget)
                       for prefix, master in self.masters.items() for _ in range(self.workers)))
        for master in self.masters.values():
            await master.wait()
        return self.stats

    def check(self, checkers=()) -> None:
        """Assert the run was clean.

        Zero data mismatches, only OKAY responses, every started operation
        completed, every master idle, and every given
        :class:`~lpaccel.sim.infra.axi_checker.AxiProtocolChecker` idle and
        error-free.

        Raises
        ------
        AssertionError
            Naming the first problem.
        """
        s = self.stats
        assert s.mismatch_count == 0, (f"{s.mismatch_count} bytes read back differ from the "
                                       f"reference memory; first: {s.mismatches}")
        assert not s.bad_responses, f"error responses: {s.bad_responses[:8]}"
        done = s.reads + s.writes
        assert done == s.issued, f"{s.issued} operations started, {done} completed"
        assert not self._busy, f"operations still in flight: {self._busy[:8]}"
        for prefix, master in self.masters.items():
            assert master.idle(), f"AxiMaster {prefix!r} is not idle at the end"
        for checker in checkers:
            checker.check_idle()
