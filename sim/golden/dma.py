"""Behavioural model of :class:`lpaccel.rtl.dma.DmaEngine` (the contract of ``docs/dma.md``).

Given a memory image, a descriptor list and the address window, the model
returns exactly what the engine must produce: the AXI bursts it issues, the
MM2S packets and statuses, and for S2MM the memory image and statuses. Bus
errors are modelled by a set of beat addresses that answer with an error
code (the error-injecting memory of the tests uses the same set).

The model covers runs without abort; an abort's outcome depends on timing,
and the tests check it against the weaker rules of ``docs/dma.md`` section
"Abort" (see :func:`check_aborted_run`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lpaccel.rtl.dma.engine import DmaConfig, DmaError

__all__ = ["Descriptor", "Status", "bursts", "window_ok", "mm2s_expected", "s2mm_expected",
           "check_burst", "check_aborted_run"]


@dataclass(frozen=True)
class Descriptor:
    """One descriptor, as software writes it."""

    addr: int
    length: int
    tag: int = 0
    flags: int = 0


@dataclass(frozen=True)
class Status:
    """One completion, as the engine reports it."""

    tag: int
    bytes: int
    error: DmaError
    flags: int = 0


def window_ok(cfg: DmaConfig, desc: Descriptor, base: int, size: int) -> bool:
    """Whether ``[addr, addr + length)`` lies inside the window and the address space."""
    end = desc.addr + desc.length
    return base <= desc.addr and end <= base + size and end <= 1 << cfg.addr_width


def bursts(cfg: DmaConfig, addr: int, length: int) -> list[tuple[int, int]]:
    """The ``(beat-aligned address, beats)`` bursts the engine issues for a transfer.

    Bursts are as long as possible: at most ``max_burst_beats``, never
    across a 4 KiB boundary.
    """
    if length == 0:
        return []
    B = cfg.beat_bytes
    beat = addr // B
    last = (addr + length - 1) // B
    out = []
    while beat <= last:
        to_page = (4096 - (beat * B) % 4096) // B
        n = min(last - beat + 1, cfg.max_burst_beats, to_page)
        out.append((beat * B, n))
        beat += n
    return out


def check_burst(cfg: DmaConfig, addr: int, length_field: int, size: int, burst: int) -> str | None:
    """Check one AR/AW request against the rules the engine keeps.

    Returns
    -------
    str or None
        What is wrong, or ``None`` if the request is legal.
    """
    B = cfg.beat_bytes
    beats = length_field + 1
    if burst != 1:
        return f"burst type {burst} is not INCR (1)"
    if size != cfg.beat_shift:
        return f"size {size} is not the full beat ({cfg.beat_shift})"
    if addr % B:
        return f"address {addr:#x} is not aligned to the {B}-byte beat"
    if beats > cfg.max_burst_beats:
        return f"{beats} beats exceed max_burst_beats={cfg.max_burst_beats}"
    if addr // 4096 != (addr + beats * B - 1) // 4096:
        return f"burst at {addr:#x} of {beats} beats crosses a 4 KiB boundary"
    return None


def _error_of(errors: Mapping[int, DmaError], beat_addr: int) -> DmaError | None:
    return errors.get(beat_addr)


def mm2s_expected(cfg: DmaConfig, memory: bytes, descriptors: Sequence[Descriptor], *,
                  window: tuple[int, int] | None = None,
                  errors: Mapping[int, DmaError] | None = None
                  ) -> tuple[list[bytes], list[Status], list[tuple[int, int]]]:
    """Expected MM2S packets, statuses and read bursts.

    Parameters
    ----------
    cfg : DmaConfig
    memory : bytes
        Memory image from address 0.
    descriptors : sequence of Descriptor
    window : (base, size), optional
        Default: the whole address space.
    errors : mapping of beat address → DmaError.SLVERR / DECERR, optional
        Read beats that answer with an error.

    Returns
    -------
    packets : list of bytes
        The bytes of each descriptor's packet (one per descriptor).
    statuses : list of Status
    read_bursts : list of (addr, beats)
        Every burst the engine issues, in order, when no descriptor failed
        on a bus error (after one, how many of its bursts are issued
        depends on timing; the list then holds the bursts up to and
        including the failing one for that descriptor).
    """
    base, size = window if window is not None else (0, 1 << cfg.addr_width)
    errors = errors or {}
    B = cfg.beat_bytes
    packets, statuses, issued = [], [], []
    for d in descriptors:
        if not window_ok(cfg, d, base, size):
            packets.append(b"")
            statuses.append(Status(d.tag, 0, DmaError.WINDOW, d.flags))
            continue
        if d.length == 0:
            packets.append(b"")
            statuses.append(Status(d.tag, 0, DmaError.OK, d.flags))
            continue
        payload = bytes(memory[d.addr:d.addr + d.length])
        failed = None
        for index, beat_addr in enumerate(range(d.addr // B * B, d.addr + d.length, B)):
            code = _error_of(errors, beat_addr)
            if code is not None:
                failed = (index, code)
                break
        for addr, n in bursts(cfg, d.addr, d.length):
            issued.append((addr, n))
            if failed is not None and addr + n * B > d.addr // B * B + failed[0] * B:
                break
        if failed is None:
            packets.append(payload)
            statuses.append(Status(d.tag, d.length, DmaError.OK, d.flags))
        else:
            # Output beat k leaves with read beat k (aligned) or k + 1
            # (unaligned), so the beats before the failing one are delivered.
            index, code = failed
            delivered = max(0, index - (1 if d.addr % B else 0)) * B
            packets.append(payload[:delivered])
            statuses.append(Status(d.tag, delivered, code, d.flags))
    return packets, statuses, issued


def s2mm_expected(cfg: DmaConfig, memory: bytes, descriptors: Sequence[Descriptor],
                  packets: Sequence[bytes], *, window: tuple[int, int] | None = None,
                  errors: Mapping[int, DmaError] | None = None
                  ) -> tuple[bytearray, list[Status], list[tuple[int, int]], dict[int, int]]:
    """Expected S2MM memory image, statuses and write bursts.

    Parameters
    ----------
    cfg : DmaConfig
    memory : bytes
        Memory image before the run.
    descriptors : sequence of Descriptor
    packets : sequence of bytes
        The input packet of each descriptor (its length may differ from the
        descriptor's: that is a LENGTH_MISMATCH).
    window, errors
        As for :func:`mm2s_expected`; here an error beat address fails the
        whole burst holding it and that beat's bytes are not written.

    Returns
    -------
    image : bytearray
        Memory after the run, leaving the bytes in ``uncertain`` at their
        old value.
    statuses : list of Status
    write_bursts : list of (addr, beats)
        As for :func:`mm2s_expected`.
    uncertain : dict of int to int
        Byte address → the value a write would leave, for bytes whose final
        value depends on timing (bursts of a descriptor after its failing
        burst may or may not be issued): such a byte holds either.
    """
    base, size = window if window is not None else (0, 1 << cfg.addr_width)
    errors = errors or {}
    B = cfg.beat_bytes
    image = bytearray(memory)
    statuses, issued, uncertain = [], [], {}
    for d, packet in zip(descriptors, packets, strict=True):
        if not window_ok(cfg, d, base, size):
            statuses.append(Status(d.tag, 0, DmaError.WINDOW, d.flags))
            continue
        data = bytes(packet[:d.length])
        code = DmaError.OK if len(packet) == d.length else DmaError.LENGTH_MISMATCH
        moved = 0
        failed = None
        for addr, n in bursts(cfg, d.addr, d.length):
            lo, hi = max(addr, d.addr), min(addr + n * B, d.addr + len(data))
            if failed is not None:
                uncertain.update((a, data[a - d.addr]) for a in range(lo, hi))
                continue
            issued.append((addr, n))
            burst_error = None
            for beat_addr in range(addr, addr + n * B, B):
                beat_code = _error_of(errors, beat_addr)
                if beat_code is None:
                    for a in range(max(beat_addr, lo), min(beat_addr + B, hi)):
                        image[a] = data[a - d.addr]
                elif burst_error is None:
                    burst_error = beat_code
            if burst_error is not None:
                failed = burst_error
            else:
                moved += max(0, hi - lo)
        if failed is not None:
            code = failed
        statuses.append(Status(d.tag, moved, code, d.flags))
    return image, statuses, issued, uncertain


def check_aborted_run(descriptors: Sequence[Descriptor], statuses: Sequence[Status],
                      expected: Sequence[Status]) -> None:
    """Check the statuses of a run that was aborted part-way.

    Rules: one status per descriptor, in order, with its tag; the statuses
    are a prefix that completed as without abort, then a run of ABORTED
    statuses (a WINDOW rejection decided at accept time keeps its code),
    then a suffix that again completed as without abort (descriptors the
    engine accepted after the abort finished). ABORTED reports no more
    bytes than asked.

    Raises
    ------
    AssertionError
        Naming the first descriptor that breaks a rule.
    """
    assert len(statuses) == len(descriptors), \
        f"{len(statuses)} statuses for {len(descriptors)} descriptors"
    phase = "before"
    for i, (d, got, want) in enumerate(zip(descriptors, statuses, expected)):
        assert got.tag == d.tag, f"descriptor {i}: status tag {got.tag}, expected {d.tag}"
        if got.error == DmaError.ABORTED:
            assert phase != "after", f"descriptor {i}: ABORTED after the abort had finished"
            phase = "aborted"
            assert got.bytes <= d.length, f"descriptor {i}: {got.bytes} bytes > length"
        elif phase == "aborted" and got.error == DmaError.WINDOW == want.error:
            assert got == want, f"descriptor {i}: {got}, expected {want}"
        else:
            if phase == "aborted":
                phase = "after"
            assert got == want, f"descriptor {i}: {got}, expected {want} ({phase} the abort)"
