"""Golden model of the device end of the link: what the host bridge must do (``docs/link.md``).

:class:`LinkDeviceModel` takes request bytes and returns response bytes,
exactly as the bridge does: it hunts for ``SOF``, collects a request (its
length follows from ``CMD`` and ``COUNT``), drops it on a bad CRC (counted),
executes a good one on a register/memory backend, keeps the replay record
and the ``LINK_INFO`` counters. Time is not modelled: the inter-byte timeout
is an explicit :meth:`LinkDeviceModel.idle_timeout` call, and a byte the
receive FIFO loses is an explicit :meth:`LinkDeviceModel.overrun` call.

The backend is four callables (``read32``, ``write32``, ``read_mem``,
``write_mem``); an exception of one of ``bus_errors`` from them is a bus
error (SLVERR/DECERR). :meth:`LinkDeviceModel.over_transport` puts the model
in front of any :class:`lpaccel.driver.Transport` (such as the SoC test
double), and :class:`LoopbackPort` connects a host :class:`lpaccel.transports.
LinkTransport` to the model in memory, with optional fault injection, so the
whole host stack runs without a simulator.

Choices the protocol page leaves open, made here (the RTL must agree):

- after a bad CRC, hunting resumes with the next byte *received* (the bytes
  of the dropped request are not rescanned);
- a request with an unknown ``CMD`` is 10 bytes long (no data) and answered
  ``BAD_COMMAND`` if its CRC is good; ``LINK_INFO`` ignores ``COUNT``;
- checks in order: unknown ``CMD`` or ``LINK_INFO`` with ``ADDR != 0``
  (``BAD_COMMAND``), ``ADDR`` not a multiple of 4, then a memory command
  crossing 4 KiB (``BAD_ADDRESS``);
- an :meth:`LinkDeviceModel.overrun` makes the next request to complete
  fail its CRC check;
- every request with a good CRC counts as a frame (duplicates too; a
  ``LINK_INFO`` counts itself); every request with a good CRC that is not a
  duplicate replaces the replay record (reads and refused requests too);
  every response with ``STATUS != OK`` counts as an error response.
"""

import os
import random
import select
import struct
import threading
import time
import tty
from collections import deque

from lpaccel.link import (
    LINK_MAGIC,
    MAX_WORDS,
    PAGE_BYTES,
    PROTOCOL_VERSION,
    REQ_SOF,
    Cmd,
    LinkInfo,
    Status,
    crc16,
    encode_response,
    request_length,
)

__all__ = ["BusError", "FaultInjector", "LinkDeviceModel", "LoopbackPort", "PtyServer"]

_COMMANDS = frozenset(int(c) for c in Cmd)


class BusError(Exception):
    """A backend access answered SLVERR/DECERR."""


class LinkDeviceModel:
    """The host bridge's protocol behaviour over a register/memory backend.

    Parameters
    ----------
    read32, write32 : callable
        ``read32(addr) -> int``, ``write32(addr, value)``: one AXI4-Lite access.
    read_mem, write_mem : callable
        ``read_mem(addr, nbytes) -> bytes``, ``write_mem(addr, data)``: the
        memory window (word-aligned, whole words).
    bus_errors : tuple of type
        Exceptions of the backend that mean a bus error.

    Attributes
    ----------
    counters : dict
        ``frames``, ``crc_errors``, ``overruns``, ``resyncs``,
        ``duplicates``, ``error_responses`` (32-bit, wrapping).
    record : tuple or None
        The replay record ``(seq, cmd, status)``.
    executed : list
        ``(seq, cmd, addr, count, status)`` of every request executed (not
        duplicates), for tests.
    """

    def __init__(self, read32, write32, read_mem, write_mem, bus_errors=(BusError,)):
        self._read32, self._write32 = read32, write32
        self._read_mem, self._write_mem = read_mem, write_mem
        self.bus_errors = tuple(bus_errors)
        self.executed = []
        self.reset()

    @classmethod
    def over_transport(cls, transport, bus_errors=(BusError,)):
        """A model in front of a driver-style transport (``read32``, ``write32``, ...)."""
        return cls(transport.read32, transport.write32, transport.read_mem,
                   transport.write_mem, bus_errors)

    def reset(self):
        """Power-on state: parser hunting, counters zero, no replay record."""
        self._buf = bytearray()
        self._need = None           # total length of the request being collected
        self._corrupt = False       # an overrun since the last request completed
        self.record = None
        self.counters = dict.fromkeys(("frames", "crc_errors", "overruns", "resyncs",
                                       "duplicates", "error_responses"), 0)

    @property
    def idle(self):
        """The parser is hunting for ``SOF`` (no partial request held)."""
        return not self._buf

    def _count(self, name, n=1):
        self.counters[name] = (self.counters[name] + n) & 0xFFFF_FFFF

    def idle_timeout(self):
        """The inter-byte timeout expired: drop a partial request (a resync)."""
        if self._buf:
            self._buf.clear()
            self._need = None
            self._count("resyncs")

    def overrun(self, nbytes=1):
        """``nbytes`` bytes were lost because the receive FIFO was full.

        The next request to complete fails its CRC check whatever its bytes
        (the lost byte belonged to it, or to a request the timeout dropped).
        """
        self._count("overruns", nbytes)
        self._corrupt = True

    def feed(self, data):
        """Receive request bytes; return the response bytes they cause (maybe empty)."""
        out = bytearray()
        buf = self._buf
        for byte in data:
            if not buf:
                if byte == REQ_SOF:
                    buf.append(byte)
                continue
            buf.append(byte)
            if len(buf) == 4:
                self._need = request_length(buf[2], buf[3])
            if self._need is not None and len(buf) == self._need:
                frame = bytes(buf)
                buf.clear()
                self._need = None
                corrupt, self._corrupt = self._corrupt, False
                if corrupt or crc16(frame[:-2]) != frame[-2] | frame[-1] << 8:
                    self._count("crc_errors")
                    continue
                out += self._execute(frame)
        return bytes(out)

    # -- execution -----------------------------------------------------------------------

    def _execute(self, frame):
        seq, cmd, count_field, addr = struct.unpack_from("<BBBI", frame, 1)
        n = count_field + 1
        self._count("frames")
        if (cmd in (Cmd.REG_WRITE, Cmd.MEM_WRITE) and self.record is not None
                and self.record[:2] == (seq, cmd)):
            self._count("duplicates")
            return self._respond(seq, cmd, self.record[2])
        words = struct.unpack_from(f"<{n}I", frame, 8) if len(frame) > 10 else ()
        status, data = self._run(cmd, addr, n, words)
        self.record = (seq, cmd, status)
        self.executed.append((seq, cmd, addr, n, status))
        return self._respond(seq, cmd, status, data)

    def _respond(self, seq, cmd, status, data=()):
        if status != Status.OK:
            self._count("error_responses")
            data = ()
        return encode_response(seq, cmd, status, data)

    def _run(self, cmd, addr, n, words):
        if cmd not in _COMMANDS or (cmd == Cmd.LINK_INFO and addr != 0):
            return Status.BAD_COMMAND, ()
        if addr % 4 or (cmd in (Cmd.MEM_READ, Cmd.MEM_WRITE)
                        and addr % PAGE_BYTES + 4 * n > PAGE_BYTES):
            return Status.BAD_ADDRESS, ()
        if cmd == Cmd.LINK_INFO:
            return Status.OK, self.link_info().to_words()
        try:
            if cmd == Cmd.REG_READ:
                return Status.OK, [self._read32(addr + 4 * i) & 0xFFFF_FFFF for i in range(n)]
            if cmd == Cmd.REG_WRITE:
                for i, w in enumerate(words):
                    self._write32(addr + 4 * i, w)
                return Status.OK, ()
            if cmd == Cmd.MEM_READ:
                data = bytes(self._read_mem(addr, 4 * n))
                return Status.OK, struct.unpack(f"<{n}I", data)
            # MEM_WRITE
            data = struct.pack(f"<{n}I", *words)
            try:
                self._write_mem(addr, data)
            except self.bus_errors:
                # docs/link.md: the words before the failing one were written.
                for i in range(n):
                    self._write_mem(addr + 4 * i, data[4 * i:4 * i + 4])
                raise
            return Status.OK, ()
        except self.bus_errors:
            return Status.BUS_ERROR, ()

    def link_info(self):
        """The ``LINK_INFO`` answer now."""
        c = self.counters
        return LinkInfo(LINK_MAGIC, PROTOCOL_VERSION, MAX_WORDS, c["frames"], c["crc_errors"],
                        c["overruns"], c["resyncs"], c["duplicates"], c["error_responses"])


# --- in-memory port with faults ------------------------------------------------------------

class FaultInjector:
    """Corrupts frames on a byte line, one decision per frame (seeded, reproducible).

    Parameters
    ----------
    rate : float
        Probability that a frame is hit by one fault.
    seed : int
    kinds : sequence of str
        Faults to draw from: ``bitflip`` (1-3 bits), ``truncate`` (the
        rest of the frame lost: the receiver stalls until its timeout),
        ``garbage`` (random bytes before the frame), ``drop`` (one byte
        lost), ``duplicate`` (one byte twice), ``stall`` (the frame stops
        for longer than the timeout, then the rest arrives).

    Attributes
    ----------
    counts : dict
        Frames seen (``frames``) and faults injected, by kind.
    """

    KINDS = ("bitflip", "truncate", "garbage", "drop", "duplicate", "stall")

    def __init__(self, rate=0.3, seed=0, kinds=KINDS):
        for k in kinds:
            if k not in self.KINDS:
                raise ValueError(f"fault kind {k!r} is unknown; choose from {self.KINDS}")
        self.rate = rate
        self.rng = random.Random(seed)
        self.kinds = tuple(kinds)
        self.counts = dict.fromkeys(("frames", *self.KINDS), 0)

    def apply(self, frame):
        """Return the pieces the receiver gets: a list of ``bytes`` and ``None`` (a stall)."""
        self.counts["frames"] += 1
        rng = self.rng
        if not frame or rng.random() >= self.rate:
            return [frame]
        kind = rng.choice(self.kinds)
        self.counts[kind] += 1
        data = bytearray(frame)
        if kind == "bitflip":
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            return [bytes(data)]
        if kind == "truncate":
            return [bytes(data[:rng.randrange(len(data))]), None]
        if kind == "garbage":
            junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
            return [junk + bytes(data)]
        if kind == "drop":
            del data[rng.randrange(len(data))]
            return [bytes(data)]
        if kind == "duplicate":
            i = rng.randrange(len(data))
            data.insert(i, data[i])
            return [bytes(data)]
        cut = rng.randrange(1, len(data))       # stall
        return [bytes(data[:cut]), None, bytes(data[cut:])]


class LoopbackPort:
    """A byte port (``write``, ``read``) wired to a :class:`LinkDeviceModel` in memory.

    The device answers as soon as a request is complete. :meth:`read` with
    nothing to deliver means the host's timeout passed: the device's shorter
    inter-byte timeout has then expired too (:meth:`LinkDeviceModel.idle_timeout`).

    Parameters
    ----------
    model : LinkDeviceModel
    to_device, to_host : FaultInjector, optional
        Faults on each direction, decided per written frame / per response.
    clock : callable, optional
        ``clock(cycles)`` lets device time pass (e.g. the SoC test double's
        ``wait_cycles``): called with ``cycles_per_byte`` times the bytes of
        every write, and ``timeout_cycles`` on every read that times out, as
        on a board, where the device runs while the line carries bytes.
    cycles_per_byte, timeout_cycles : int
        A 100 MHz device at 3 Mbaud: about 333 cycles per byte.
    """

    def __init__(self, model, to_device=None, to_host=None, clock=None, cycles_per_byte=333,
                 timeout_cycles=100_000):
        self.model = model
        self.to_device = to_device
        self.to_host = to_host
        self.clock = clock
        self.cycles_per_byte = cycles_per_byte
        self.timeout_cycles = timeout_cycles
        self._rx = deque()          # pieces for the host: bytes, or None = a stall
        self.written = 0
        self.timeouts = 0

    def _deliver_to_device(self, piece):
        if piece is None:
            self.model.idle_timeout()
            return
        rsp = self.model.feed(piece)
        if rsp:
            pieces = self.to_host.apply(rsp) if self.to_host else [rsp]
            self._rx.extend(pieces)

    def write(self, data):
        """The host sends ``data`` (one request frame)."""
        self.written += len(data)
        if self.clock is not None:
            self.clock(self.cycles_per_byte * len(data))
        pieces = self.to_device.apply(bytes(data)) if self.to_device else [bytes(data)]
        for piece in pieces:
            self._deliver_to_device(piece)

    def read(self, max_bytes, timeout_s=None):
        """Bytes for the host (at most ``max_bytes``); ``b""`` means the timeout passed."""
        while self._rx:
            piece = self._rx[0]
            if piece is None:
                # A stall on the way to the host: this read times out.
                self._rx.popleft()
                break
            if len(piece) > max_bytes:
                self._rx[0] = piece[max_bytes:]
                return piece[:max_bytes]
            self._rx.popleft()
            return piece
        self.timeouts += 1
        if self.clock is not None:
            self.clock(self.timeout_cycles)
        self.model.idle_timeout()
        return b""

    def close(self):
        """Nothing to release."""


class PtyServer:
    """Serve a :class:`LinkDeviceModel` on a pseudo-terminal, in a background thread.

    A host program (``SerialPort``, the C tool's serial HAL) opens :attr:`path`
    as it would a USB-UART. Faults apply per chunk read from / answered to the
    pty (a host writes one request at a time, so a chunk is about a frame).
    A gap of ``idle_s`` without request bytes is the bridge's inter-byte
    timeout; a stall on the way to the host holds the rest of the response
    back for ``stall_s``.

    Parameters
    ----------
    model : LinkDeviceModel
    to_device, to_host : FaultInjector, optional
    clock : callable, optional
        ``clock(cycles)``: device time, advanced by ``cycles_per_poll`` on
        every poll of the pty (every ``idle_s`` at most).
    idle_s, stall_s : float

    Use as a context manager::

        with PtyServer(model) as server:
            dev = open_device(server.path)
    """

    def __init__(self, model, to_device=None, to_host=None, clock=None, cycles_per_poll=100_000,
                 idle_s=0.002, stall_s=0.2):
        self.model = model
        self.to_device = to_device
        self.to_host = to_host
        self.clock = clock
        self.cycles_per_poll = cycles_per_poll
        self.idle_s = idle_s
        self.stall_s = stall_s
        self.path = None
        self._thread = None
        self._stop = None
        self.error = None

    def start(self):
        """Open the pty and start serving; return the slave's path."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="link-pty", daemon=True)
        self._thread.start()
        return self.path

    def _serve(self):
        pending = deque()           # (time to send, bytes)
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                while pending and pending[0][0] <= now:
                    os.write(self._master, pending.popleft()[1])
                ready, _, _ = select.select([self._master], [], [], self.idle_s)
                if self.clock is not None:
                    self.clock(self.cycles_per_poll)
                if not ready:
                    self.model.idle_timeout()
                    continue
                data = os.read(self._master, 65536)
                pieces = self.to_device.apply(data) if self.to_device else [data]
                out = bytearray()
                for piece in pieces:
                    if piece is None:
                        self.model.idle_timeout()
                    else:
                        out += self.model.feed(piece)
                if not out:
                    continue
                delay = 0.0
                for piece in (self.to_host.apply(bytes(out)) if self.to_host else [out]):
                    if piece is None:
                        delay += self.stall_s
                    elif delay:
                        pending.append((time.monotonic() + delay, piece))
                    else:
                        os.write(self._master, piece)
        except OSError as error:        # the pty was closed under us
            if not self._stop.is_set():
                self.error = error

    def stop(self):
        """Stop serving and close the pty."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            os.close(self._master)
            os.close(self._slave)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
