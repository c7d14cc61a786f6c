"""The host side of the link protocol (``docs/link.md``), sans-IO.

Nothing here touches a port or a clock: the classes take and return bytes,
and the caller (:mod:`lpaccel.transports`, a cocotb testbench, a test) moves
them and decides when a timeout has passed. That keeps the protocol logic
testable byte by byte and shared by every transport.

::

    client = LinkClient(retries=8)
    port.write(client.start(Cmd.REG_READ, 0x0, count=1))
    while (rsp := client.receive(port.read(...))) is None:
        if client.retry_due or waited_too_long:
            port.write(client.timeout())          # same SEQ; LinkError after `retries`
    value = rsp.words[0]

Pieces:

- :func:`crc16` (CRC-16/CCITT-FALSE), :func:`encode_request`,
  :func:`encode_response` (for device models and tests);
- :class:`ResponseParser`: bytes in, CRC-verified :class:`Response` frames out,
  junk and bad frames dropped and counted;
- :class:`LinkClient`: one stop-and-wait operation at a time, sequence
  numbers, retries, the status check; it never returns data that did not
  come with a good CRC, the operation's ``SEQ`` and ``CMD``, ``STATUS = OK``
  and the expected ``LEN``;
- :func:`split_transfer`: the ``<= 256``-word, 4 KiB-bounded chunks of a
  memory transfer;
- :class:`LinkInfo`: the ``LINK_INFO`` words decoded.
"""

import enum
import struct
from dataclasses import dataclass

__all__ = [
    "LINK_MAGIC",
    "MAX_WORDS",
    "PAGE_BYTES",
    "PROTOCOL_VERSION",
    "REQ_SOF",
    "RSP_SOF",
    "Cmd",
    "LinkClient",
    "LinkError",
    "LinkInfo",
    "LinkStatusError",
    "Response",
    "ResponseParser",
    "Status",
    "crc16",
    "encode_request",
    "encode_response",
    "split_transfer",
]

#: Start marker of a request (host -> device).
REQ_SOF = 0xA5
#: Start marker of a response (device -> host).
RSP_SOF = 0x5A
#: Most 32-bit words one frame carries.
MAX_WORDS = 256
#: ``LINK_INFO`` word 0: ASCII "LLNK".
LINK_MAGIC = 0x4B4E_4C4C
#: ``LINK_INFO`` word 1 bits 7:0.
PROTOCOL_VERSION = 1
#: A memory command may not cross a boundary of this many bytes.
PAGE_BYTES = 4096

#: Bytes of a request without data (SOF SEQ CMD COUNT ADDR[4] CRC[2]).
REQUEST_OVERHEAD = 10
#: Bytes of a response without data (SOF SEQ CMD STATUS LEN[2] CRC[2]).
RESPONSE_OVERHEAD = 8


class Cmd(enum.IntEnum):
    """Request commands (``CMD``)."""

    REG_READ = 0x01
    REG_WRITE = 0x02
    MEM_READ = 0x03
    MEM_WRITE = 0x04
    LINK_INFO = 0x05

    @property
    def is_write(self):
        """The command carries data to the device (and is subject to replay)."""
        return self in (Cmd.REG_WRITE, Cmd.MEM_WRITE)

    @property
    def is_memory(self):
        """The command addresses the memory window (4 KiB rule)."""
        return self in (Cmd.MEM_READ, Cmd.MEM_WRITE)


class Status(enum.IntEnum):
    """Response outcomes (``STATUS``)."""

    OK = 0
    BUS_ERROR = 1
    BAD_COMMAND = 2
    BAD_ADDRESS = 3


# --- CRC ----------------------------------------------------------------------------------

def _crc_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = (crc << 1 ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of ``data``: polynomial 0x1021, init 0xFFFF, no reflection/XOR.

    Parameters
    ----------
    data : bytes-like
    crc : int
        Running value, to continue a CRC over several pieces.

    Returns
    -------
    int
        ``crc16(b"123456789") == 0x29B1``.
    """
    table = _CRC_TABLE
    for byte in data:
        crc = (crc << 8 & 0xFF00) ^ table[(crc >> 8) ^ byte]
    return crc


# --- frames -------------------------------------------------------------------------------

def _check_u(name, value, bits):
    if not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must be an integer in [0, {(1 << bits) - 1}], not {value!r}")


def _words_bytes(words):
    words = list(words)
    for i, w in enumerate(words):
        _check_u(f"words[{i}]", int(w), 32)
    return struct.pack(f"<{len(words)}I", *(int(w) for w in words))


def encode_request(seq, cmd, addr, words=None, count=None):
    """One request frame.

    Parameters
    ----------
    seq : int
        ``SEQ``, 0..255.
    cmd : Cmd or int
        Any byte (tests send unknown commands on purpose).
    addr : int
        Byte address, 32 bits; alignment is the device's to check (``BAD_ADDRESS``).
    words : sequence of int, optional
        The data of a write command (1..256 words, each 32-bit).
    count : int, optional
        Number of words (1..256) a read asks for (``LINK_INFO``: default 8);
        for writes it defaults to ``len(words)`` and must agree with it.

    Returns
    -------
    bytes
    """
    _check_u("seq", seq, 8)
    _check_u("cmd", int(cmd), 8)
    _check_u("addr", addr, 32)
    data = b"" if words is None else _words_bytes(words)
    n = len(data) // 4
    if words is not None:
        if count is not None and count != n:
            raise ValueError(f"count {count} disagrees with the {n} words given; "
                             f"omit count for a write")
        count = n
    if count is None and cmd == Cmd.LINK_INFO:
        count = 8
    if count is None:
        raise ValueError("a read needs count (1..256 words); a write needs words")
    if not 1 <= count <= MAX_WORDS:
        raise ValueError(f"a frame carries 1..{MAX_WORDS} words, not {count}; split the "
                         f"transfer (split_transfer)")
    frame = struct.pack("<BBBBI", REQ_SOF, seq, int(cmd), count - 1, addr) + data
    return frame + struct.pack("<H", crc16(frame))


def encode_response(seq, cmd, status, words=()):
    """One response frame (what the device sends); for device models and tests."""
    _check_u("seq", seq, 8)
    _check_u("cmd", int(cmd), 8)
    _check_u("status", int(status), 8)
    data = _words_bytes(words)
    if len(data) // 4 > MAX_WORDS:
        raise ValueError(f"a response carries at most {MAX_WORDS} words, not {len(data) // 4}")
    frame = struct.pack("<BBBBH", RSP_SOF, seq, int(cmd), int(status), len(data) // 4) + data
    return frame + struct.pack("<H", crc16(frame))


def request_length(cmd, count_field):
    """Total bytes of a request with ``CMD`` and ``COUNT`` header bytes (data only for writes)."""
    words = count_field + 1 if cmd in (Cmd.REG_WRITE, Cmd.MEM_WRITE) else 0
    return REQUEST_OVERHEAD + 4 * words


@dataclass(frozen=True)
class Response:
    """A response frame whose CRC checked.

    Attributes
    ----------
    seq, cmd : int
        As in the request it answers (``cmd`` a :class:`Cmd` when known).
    status : Status or int
    words : tuple of int
    """

    seq: int
    cmd: int
    status: int
    words: tuple = ()


def _enum_or_int(cls, value):
    try:
        return cls(value)
    except ValueError:
        return value


class ResponseParser:
    """Turns received bytes into CRC-verified :class:`Response` frames.

    It hunts for ``RSP_SOF``, reads the 6-byte header, waits for ``LEN``
    words and the CRC, and checks it. A header that cannot be a response
    (``LEN > 256``, data on an error status, or — when :meth:`expect` was
    called — another ``SEQ``/``CMD`` or an unexpected ``LEN``) and a frame
    with a bad CRC are dropped one byte at a time, so a real frame that
    starts inside them is still found.

    Attributes
    ----------
    junk : int
        Bytes skipped: not a start marker, implausible headers, :meth:`reset`.
    crc_errors : int
        Candidate frames whose CRC did not match.
    frames : int
        Frames delivered.
    other_seq : int
        Headers skipped because their ``SEQ`` was not the expected one (late
        answers to an earlier operation, or noise that looked like a header).
    """

    def __init__(self):
        self._buf = bytearray()
        self._expect = None
        self.junk = 0
        self.crc_errors = 0
        self.frames = 0
        self.other_seq = 0

    def expect(self, seq, cmd, words):
        """Accept only headers of ``SEQ = seq``, ``CMD = cmd`` and ``LEN`` 0 or ``words``.

        A stop-and-wait host knows the only response it can use; filtering
        the header keeps noise that looks like a long frame from holding up
        the real one. ``expect(None, None, None)`` accepts any plausible header.
        """
        self._expect = None if seq is None else (seq, int(cmd), words)

    def reset(self):
        """Drop buffered bytes (a partial frame that will not complete)."""
        self.junk += len(self._buf)
        self._buf.clear()

    @property
    def buffered(self):
        """Bytes held waiting for the rest of a frame."""
        return len(self._buf)

    def _plausible(self, buf):
        status, n = buf[3], buf[4] | buf[5] << 8
        if n > MAX_WORDS or (status != Status.OK and n):
            return False
        if self._expect is not None:
            seq, cmd, words = self._expect
            if buf[1] != seq:
                self.other_seq += 1
                return False
            if buf[2] != cmd or n not in (0, words):
                return False
        return True

    def feed(self, data):
        """Add received bytes; return the complete verified frames, in order.

        Returns
        -------
        list of Response
        """
        buf = self._buf
        buf.extend(data)
        out = []
        while buf:
            start = buf.find(RSP_SOF)
            if start < 0:
                self.junk += len(buf)
                buf.clear()
                break
            if start:
                self.junk += start
                del buf[:start]
            if len(buf) < 6:
                break
            if not self._plausible(buf):
                self.junk += 1
                del buf[0]
                continue
            n = buf[4] | buf[5] << 8
            total = RESPONSE_OVERHEAD + 4 * n
            if len(buf) < total:
                break
            if crc16(memoryview(buf)[:total - 2]) != buf[total - 2] | buf[total - 1] << 8:
                self.crc_errors += 1
                self.junk += 1
                del buf[0]
                continue
            words = struct.unpack_from(f"<{n}I", buf, 6)
            out.append(Response(buf[1], _enum_or_int(Cmd, buf[2]),
                                _enum_or_int(Status, buf[3]), words))
            self.frames += 1
            del buf[:total]
        return out


# --- errors -------------------------------------------------------------------------------

class LinkError(Exception):
    """The link failed: no usable response to an operation after every retry.

    Attributes
    ----------
    cmd : Cmd
    addr : int
    attempts : int
        Requests sent (the first and the retries).
    seen : dict
        What arrived meanwhile: ``bytes``, ``junk``, ``crc_errors``,
        ``other_seq``, ``bad_length``.
    """

    def __init__(self, message, cmd=None, addr=None, attempts=0, seen=None):
        super().__init__(message)
        self.cmd = cmd
        self.addr = addr
        self.attempts = attempts
        self.seen = dict(seen or {})


class LinkStatusError(Exception):
    """The device answered with ``STATUS != OK`` (the link works; the request was refused).

    Attributes
    ----------
    cmd : Cmd
    addr : int
    count : int
    status : Status
    """

    def __init__(self, message, cmd, addr, count, status):
        super().__init__(message)
        self.cmd = cmd
        self.addr = addr
        self.count = count
        self.status = status


def _cmd_name(cmd):
    return cmd.name if isinstance(cmd, Cmd) else f"command {int(cmd):#04x}"


def _status_message(cmd, addr, count, status):
    what = f"{_cmd_name(cmd)} of {count} word(s) at {addr:#010x}"
    if status == Status.BUS_ERROR:
        done = (" (the words before the failing one were written)" if
                isinstance(cmd, Cmd) and cmd.is_write and count > 1 else "")
        if cmd in (Cmd.MEM_READ, Cmd.MEM_WRITE):
            fix = "keep memory accesses inside the device memory (CAP_MEM_SIZE)"
        else:
            fix = ("use an address of the register map, and do not write read-only or "
                   "read write-only registers")
        return f"{what}: BUS_ERROR, the bus answered SLVERR/DECERR{done}; {fix}"
    if status == Status.BAD_COMMAND:
        return (f"{what}: BAD_COMMAND, the bridge does not take this command (LINK_INFO "
                f"needs address 0); the host library and the bitstream speak different "
                f"protocol versions, use the lpaccel release the bitstream was built with")
    if status == Status.BAD_ADDRESS:
        return (f"{what}: BAD_ADDRESS, the address is not a multiple of 4 or a memory "
                f"command crosses a 4 KiB boundary; split transfers with split_transfer()")
    return (f"{what}: unknown status {int(status)}; the bitstream speaks a newer protocol, "
            f"update lpaccel")


# --- the client ---------------------------------------------------------------------------

class LinkClient:
    """The host's protocol state machine: one operation at a time, retries, ``SEQ``.

    Parameters
    ----------
    retries : int
        Resends of one request before :class:`LinkError` (``docs/link.md``: 8).
    seq : int
        ``SEQ`` of the first operation; every new operation takes the next
        one (mod 256), a retry reuses it.

    Attributes
    ----------
    parser : ResponseParser
    retry_due : bool
        A response to the current operation was dropped (bad CRC or bad
        ``LEN``): resend now (:meth:`timeout`) instead of waiting.
    stats : dict
        Totals over the client's life: ``operations``, ``retries``,
        ``link_errors``, ``status_errors``, ``bad_length``.
    """

    def __init__(self, retries=8, seq=0):
        _check_u("seq", seq, 8)
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a non-negative integer, not {retries!r}")
        self.retries = retries
        self.parser = ResponseParser()
        self._next_seq = seq
        self._op = None
        self.retry_due = False
        self.stats = {"operations": 0, "retries": 0, "link_errors": 0, "status_errors": 0,
                      "bad_length": 0}

    @property
    def busy(self):
        """An operation was started and has not ended."""
        return self._op is not None

    @property
    def seq(self):
        """``SEQ`` of the current operation (or of the next one, when idle)."""
        return self._op["seq"] if self._op else self._next_seq

    @property
    def frame(self):
        """The current operation's request bytes (what :meth:`timeout` resends)."""
        return self._op["frame"] if self._op else None

    def start(self, cmd, addr, words=None, count=None):
        """Begin an operation; return the request to send.

        Parameters
        ----------
        cmd : Cmd
        addr : int
            Byte address, a multiple of 4; a memory command may not cross
            4 KiB; ``LINK_INFO`` takes 0.
        words : sequence of int, optional
            Write data (1..256 words).
        count : int, optional
            Words to read (1..256; ``LINK_INFO``: 8, the default).

        Raises
        ------
        RuntimeError
            If an operation is still under way.
        ValueError
            On arguments the device would refuse (checked here, before
            anything is sent).
        """
        if self._op is not None:
            raise RuntimeError(f"{_cmd_name(self._op['cmd'])} at {self._op['addr']:#x} is "
                               f"still under way; receive() its response or timeout() first")
        cmd = Cmd(cmd)
        if cmd.is_write != (words is not None):
            raise ValueError(f"{cmd.name} {'needs' if cmd.is_write else 'takes no'} words")
        if cmd == Cmd.LINK_INFO:
            if addr != 0 or count not in (None, 8):
                raise ValueError("LINK_INFO takes address 0 and returns 8 words")
            count = 8
        n = len(words) if words is not None else count
        if n is None or not 1 <= n <= MAX_WORDS:
            raise ValueError(f"{cmd.name} moves 1..{MAX_WORDS} words per frame, not {n}; "
                             f"split the transfer (split_transfer)")
        if addr % 4:
            raise ValueError(f"{cmd.name} address {addr:#x} is not a multiple of 4")
        if cmd.is_memory and addr % PAGE_BYTES + 4 * n > PAGE_BYTES:
            raise ValueError(f"{cmd.name} of {n} words at {addr:#x} crosses a 4 KiB "
                             f"boundary; split the transfer (split_transfer)")
        seq = self._next_seq
        self._next_seq = (seq + 1) & 0xFF
        frame = encode_request(seq, cmd, addr, words, None if words is not None else n)
        self._op = {"seq": seq, "cmd": cmd, "addr": addr, "count": n, "frame": frame,
                    "attempts": 1, "bytes": 0, "junk": self.parser.junk,
                    "crc_errors": self.parser.crc_errors,
                    "other_seq": self.parser.other_seq, "bad_length": 0}
        self.retry_due = False
        self.parser.reset()
        self.parser.expect(seq, cmd, 0 if cmd.is_write else n)
        self.stats["operations"] += 1
        return frame

    def receive(self, data):
        """Feed received bytes; return the operation's :class:`Response` once it arrived.

        Returns
        -------
        Response or None
            ``None`` while no usable response has arrived. A returned
            response has a good CRC, the operation's ``SEQ`` and ``CMD``,
            ``STATUS = OK`` and the ``LEN`` asked for; the operation is over.

        Raises
        ------
        LinkStatusError
            If the device answered with another status; the operation is over.
        """
        op = self._op
        if op is None:
            # Bytes between operations: late answers to finished attempts.
            self.parser.feed(data)
            return None
        op["bytes"] += len(data)
        crc_before = self.parser.crc_errors
        frames = self.parser.feed(data)
        if self.parser.crc_errors != crc_before:
            self.retry_due = True
        for rsp in frames:
            if rsp.seq != op["seq"] or rsp.cmd != op["cmd"]:
                continue        # cannot happen with expect(); kept for safety
            if rsp.status != Status.OK:
                if rsp.words:
                    op["bad_length"] += 1
                    self.stats["bad_length"] += 1
                    self.retry_due = True
                    continue
                self._finish()
                self.stats["status_errors"] += 1
                raise LinkStatusError(_status_message(op["cmd"], op["addr"], op["count"],
                                                      rsp.status),
                                      op["cmd"], op["addr"], op["count"], rsp.status)
            expected = 0 if op["cmd"].is_write else op["count"]
            if len(rsp.words) != expected:
                op["bad_length"] += 1
                self.stats["bad_length"] += 1
                self.retry_due = True
                continue
            self._finish()
            return rsp
        return None

    def abort(self):
        """End the current operation without a result (the port failed under it)."""
        if self._op is not None:
            self._finish()

    def _finish(self):
        self._op = None
        self.retry_due = False
        self.parser.expect(None, None, None)

    def seen(self):
        """What arrived during the current operation (counts), for messages."""
        op = self._op
        if op is None:
            return {}
        p = self.parser
        return {"bytes": op["bytes"], "junk": p.junk - op["junk"],
                "crc_errors": p.crc_errors - op["crc_errors"],
                "other_seq": p.other_seq - op["other_seq"], "bad_length": op["bad_length"]}

    def timeout(self):
        """No usable response in time (or :attr:`retry_due`): return the request to resend.

        Raises
        ------
        LinkError
            After ``retries`` resends; the operation is over (the next one
            takes a new ``SEQ``).
        """
        op = self._op
        if op is None:
            raise RuntimeError("timeout() without an operation under way")
        if op["attempts"] > self.retries:
            seen = self.seen()
            self._finish()
            self.stats["link_errors"] += 1
            if seen["bytes"] == 0:
                hint = ("nothing came back: check the port, the baud rate, that the board is "
                        "programmed and powered (or that lpaccel serve-sim is running)")
            else:
                hint = ("bytes came back but no good response: a noisy line or a wrong baud "
                        "rate; lower the baud rate or check the cable")
            raise LinkError(f"{_cmd_name(op['cmd'])} of {op['count']} word(s) at "
                            f"{op['addr']:#010x} failed after {op['attempts']} attempts "
                            f"(SEQ {op['seq']}; received {seen['bytes']} bytes: "
                            f"{seen['junk']} junk, {seen['crc_errors']} bad CRC, "
                            f"{seen['other_seq']} other SEQ, {seen['bad_length']} bad LEN); "
                            f"{hint}", op["cmd"], op["addr"], op["attempts"], seen)
        op["attempts"] += 1
        self.stats["retries"] += 1
        self.retry_due = False
        # A partial frame in the buffer will not complete; the resend's answer starts afresh.
        self.parser.reset()
        return op["frame"]

    @property
    def attempts(self):
        """Requests sent for the current operation."""
        return self._op["attempts"] if self._op else 0


# --- transfers and LINK_INFO ---------------------------------------------------------------

def split_transfer(addr, nbytes, max_words=MAX_WORDS):
    """The memory commands that cover ``[addr, addr + nbytes)``.

    The range is widened to whole words (the caller does a read-modify-write
    of a partial head or tail word), then cut at every 4 KiB boundary and
    every ``max_words`` words.

    Returns
    -------
    list of (int, int)
        ``(word-aligned address, words)`` per command, in address order.
    """
    if addr < 0 or nbytes < 0:
        raise ValueError(f"transfer of {nbytes} bytes at {addr:#x}: both must be >= 0")
    start, end = addr & ~3, (addr + nbytes + 3) & ~3
    chunks = []
    while start < end:
        stop = min(end, start + 4 * max_words, (start // PAGE_BYTES + 1) * PAGE_BYTES)
        chunks.append((start, (stop - start) // 4))
        start = stop
    return chunks


@dataclass(frozen=True)
class LinkInfo:
    """The ``LINK_INFO`` words (``docs/link.md``)."""

    magic: int
    version: int
    max_words: int
    frames: int
    crc_errors: int
    overruns: int
    resyncs: int
    duplicates: int
    error_responses: int

    @classmethod
    def from_words(cls, words):
        """Decode the 8 words of a ``LINK_INFO`` response."""
        if len(words) != 8:
            raise ValueError(f"LINK_INFO has 8 words, not {len(words)}")
        return cls(words[0], words[1] & 0xFF, words[1] >> 8 & 0xFFFF, *words[2:])

    def to_words(self):
        """The 8 words, as the device sends them."""
        return (self.magic, self.version | self.max_words << 8, self.frames, self.crc_errors,
                self.overruns, self.resyncs, self.duplicates, self.error_responses)

    def check(self):
        """Raise :class:`LinkError` if the magic or protocol version is not this library's."""
        if self.magic != LINK_MAGIC:
            raise LinkError(f"LINK_INFO magic is {self.magic:#010x}, not {LINK_MAGIC:#010x} "
                            f"('LLNK'): the port does not lead to an lpaccel host bridge",
                            Cmd.LINK_INFO, 0)
        if self.version != PROTOCOL_VERSION:
            raise LinkError(f"the bridge speaks link protocol {self.version}, this library "
                            f"{PROTOCOL_VERSION}; use the lpaccel release the bitstream was "
                            f"built with", Cmd.LINK_INFO, 0)
        return self

    def counters(self):
        """The counters as a dict (names of ``docs/link.md``)."""
        return {"frames": self.frames, "crc_errors": self.crc_errors,
                "overruns": self.overruns, "resyncs": self.resyncs,
                "duplicates": self.duplicates, "error_responses": self.error_responses}
