"""Driver transports over the link protocol: a byte port in, a driver ``Transport`` out.

:class:`LinkTransport` runs the sans-IO :class:`~lpaccel.link.LinkClient`
over any byte port with ``write(data)`` and ``read(max_bytes, timeout_s) ->
bytes`` (``b""`` only after ``timeout_s`` passed with nothing received):
:class:`SerialPort` (pyserial: a USB-UART, or the pseudo-terminal of
``lpaccel serve-sim --pty``), or an in-memory port in tests. It adds what
the protocol leaves to the host: the timeout per attempt, retries, splitting
memory transfers into frames, read-modify-write of partial words, a
progress bar on long uploads, and the bridge's counters.

::

    dev = open_device("/dev/ttyUSB0")            # a driver.Device over the link
    dev.gemv(weights, x)
    dev.transport.link_info().counters()
"""

import glob
import os
import struct
import sys
import time
import warnings

import serial

from lpaccel import driver
from lpaccel.link import (
    MAX_WORDS,
    REQUEST_OVERHEAD,
    RESPONSE_OVERHEAD,
    Cmd,
    LinkClient,
    LinkError,
    LinkInfo,
    split_transfer,
)

__all__ = ["DEFAULT_BAUD", "LinkTransport", "PortError", "SerialPort", "latency_timer_ms",
           "open_device", "serial_candidates"]

#: The ULX3S's FT231X runs 3 Mbaud.
DEFAULT_BAUD = 3_000_000


class PortError(LinkError):
    """The byte port cannot be opened or used."""


def serial_candidates():
    """Serial devices present on this machine (``/dev/ttyUSB*``, ``/dev/ttyACM*``)."""
    return sorted(glob.glob("/dev/ttyUSB*") + glob.glob("/dev/ttyACM*"))


#: Where Linux lists USB serial adapters (FTDI's ``latency_timer`` lives there).
USB_SERIAL_SYSFS = "/sys/bus/usb-serial/devices"


def latency_timer_ms(path, sysfs=USB_SERIAL_SYSFS):
    """The FTDI latency timer of serial device ``path`` in ms, or None if it has none.

    An FTDI adapter (the ULX3S's FT231X) holds a short response until this
    timer runs out, 16 ms by default on Linux: with stop-and-wait frames that
    caps the link at a few hundred operations per second, whatever the baud
    rate. ``1`` is what the link wants.
    """
    name = os.path.basename(os.path.realpath(path))
    try:
        with open(os.path.join(sysfs, name, "latency_timer")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


class SerialPort:
    """A serial device (or a pseudo-terminal) as a byte port, via pyserial.

    Parameters
    ----------
    path : str
        ``/dev/ttyUSB0``, ``COM3``, or the pty ``lpaccel serve-sim --pty`` printed.
    baud : int

    Raises
    ------
    PortError
        If the port does not exist or cannot be opened; the message lists
        the serial devices present and how to start the simulated board.
    """

    def __init__(self, path, baud=DEFAULT_BAUD):
        self.path = path
        self.baud = baud
        if not os.path.exists(path) and not path.upper().startswith("COM"):
            present = ", ".join(serial_candidates()) or "none"
            raise PortError(f"serial port {path} does not exist (serial ports present: "
                            f"{present}); pass --port with one of them, or start the "
                            f"simulated board with `lpaccel serve-sim --pty` and pass the "
                            f"path it prints")
        try:
            self._serial = serial.Serial(path, baud, timeout=0, write_timeout=5)
        except (serial.SerialException, OSError, ValueError) as error:
            raise PortError(f"cannot open serial port {path} at {baud} baud: {error}; check "
                            f"that no other program holds it, that you may open it (group "
                            f"dialout), and that the baud rate is supported") from None
        self._serial.reset_input_buffer()
        latency = latency_timer_ms(path)
        if latency is not None and latency > 1:
            name = os.path.basename(os.path.realpath(path))
            warnings.warn(f"serial port {path}: the USB adapter's latency timer is {latency} ms, "
                          f"which holds every short response that long; set it to 1 ms: "
                          f"`echo 1 | sudo tee {USB_SERIAL_SYSFS}/{name}/latency_timer` "
                          f"(docs/boards.md)", stacklevel=2)

    def _failed(self, error):
        return PortError(f"serial port {self.path}: {error}; the device was unplugged or the "
                         f"simulated board stopped; reconnect and open the port again")

    def write(self, data):
        """Send ``data``."""
        try:
            self._serial.write(data)
            self._serial.flush()
        except (serial.SerialException, OSError) as error:
            raise self._failed(error) from None

    def read(self, max_bytes, timeout_s):
        """Up to ``max_bytes`` received bytes; waits up to ``timeout_s`` for the first."""
        s = self._serial
        try:
            s.timeout = max(0.0, timeout_s)
            first = s.read(1)
            if not first:
                return b""
            s.timeout = 0
            return first + s.read(min(max_bytes - 1, s.in_waiting))
        except (serial.SerialException, OSError) as error:
            raise self._failed(error) from None

    def close(self):
        """Close the port."""
        self._serial.close()

    def __repr__(self):
        return f"SerialPort({self.path!r}, {self.baud})"


class LinkTransport(driver.Transport):
    """Register and memory access to an lpaccel SoC through the host bridge.

    Parameters
    ----------
    port : object
        ``write(data)`` and ``read(max_bytes, timeout_s) -> bytes``.
    baud : int, optional
        The line rate, to size the timeout of each attempt (the time to move
        the request and the response); ``None`` for ports without one.
    retries : int
        Resends of one request before :class:`~lpaccel.link.LinkError`.
    timeout_s : float
        Wait for a response beyond the line time (longer than the bridge's
        inter-byte timeout, about 1 ms, and the host's scheduling jitter).
        It doubles with every retry of an operation, up to :attr:`BACKOFF`
        times; a simulated board may need more (``timeout_s=1``).
    progress : bool
        Show a progress bar (tqdm, on stderr) for transfers of at least
        ``progress_bytes``.
    check : bool
        Read ``LINK_INFO`` first and refuse a bridge of another protocol
        version. It also makes the first write's ``SEQ`` differ from the
        bridge's replay record of an earlier session.

    Attributes
    ----------
    client : LinkClient
    info : LinkInfo or None
        The ``LINK_INFO`` read when the transport was opened.
    """

    #: A polling interval on a serial link is at least this long; the
    #: round trip itself takes longer than the cycles asked for.
    MAX_WAIT_S = 0.01

    #: The wait for a response doubles with every retry up to this factor.
    BACKOFF = 8

    def __init__(self, port, baud=None, retries=8, timeout_s=0.05, progress=True,
                 progress_bytes=64 * 1024, check=True, seq=0):
        self.port = port
        self.baud = baud
        self.timeout_s = timeout_s
        self.progress = progress
        self.progress_bytes = progress_bytes
        self.client = LinkClient(retries=retries, seq=seq)
        self.info = None
        if check:
            self.info = self.link_info().check()

    # -- one operation ---------------------------------------------------------------

    def _attempt_timeout(self, words):
        line = 0.0
        if self.baud:
            # 10 bit times per byte (8N1), request and response.
            line = 10 * (REQUEST_OVERHEAD + RESPONSE_OVERHEAD + 4 * words) / self.baud
        return self.timeout_s + line

    def transact(self, cmd, addr, words=None, count=None):
        """One operation, retried as ``docs/link.md`` says; return its verified :class:`Response`.

        Raises
        ------
        LinkError
            If no usable response came after every retry.
        LinkStatusError
            If the device refused the request.
        """
        client = self.client
        frame = client.start(cmd, addr, words, count)
        n = len(words) if words is not None else (count or 8)
        limit = self._attempt_timeout(n)
        try:
            return self._exchange(frame, n, limit)
        except BaseException:
            client.abort()          # no-op if the operation ended (LinkError, status)
            raise

    def _exchange(self, frame, n, limit):
        client, port = self.client, self.port
        port.write(frame)
        deadline = time.monotonic() + limit
        while True:
            data = port.read(RESPONSE_OVERHEAD + 4 * MAX_WORDS,
                             max(0.0, deadline - time.monotonic()))
            rsp = client.receive(data)
            if rsp is not None:
                return rsp
            if client.retry_due or not data or time.monotonic() >= deadline:
                port.write(client.timeout())
                # Back off on a slow device (a simulated board) up to BACKOFF times the
                # first timeout; a resent write is answered from the replay record.
                limit = min(2 * limit, self.BACKOFF * self._attempt_timeout(n))
                deadline = time.monotonic() + limit

    # -- driver.Transport ------------------------------------------------------------

    def read32(self, addr):
        return self.transact(Cmd.REG_READ, addr, count=1).words[0]

    def write32(self, addr, value):
        self.transact(Cmd.REG_WRITE, addr, words=[value & 0xFFFF_FFFF])

    def read_regs(self, addr, count):
        """``count`` consecutive registers from ``addr`` in one frame (``count <= 256``)."""
        return list(self.transact(Cmd.REG_READ, addr, count=count).words)

    def write_regs(self, addr, values):
        """Consecutive registers from ``addr``, in order, in one frame."""
        self.transact(Cmd.REG_WRITE, addr, words=[v & 0xFFFF_FFFF for v in values])

    def _bar(self, nbytes, what):
        if not self.progress or nbytes < self.progress_bytes:
            return None
        from tqdm import tqdm

        return tqdm(total=nbytes, unit="B", unit_scale=True, unit_divisor=1024, desc=what,
                    file=sys.stderr, leave=False)

    def _check_range(self, addr, nbytes, what):
        if not isinstance(addr, int) or addr < 0 or addr + nbytes > 1 << 32:
            raise ValueError(f"{what} of {nbytes} bytes at {addr!r}: the range must lie in "
                             f"the 32-bit address space")

    def write_mem(self, addr, data):
        """Write ``data`` at byte address ``addr``; partial words by read-modify-write."""
        data = bytes(data)
        self._check_range(addr, len(data), "write_mem")
        if not data:
            return
        bar = self._bar(len(data), "upload")
        try:
            end = addr + len(data)
            for start, words in split_transfer(addr, len(data)):
                stop = start + 4 * words
                chunk = bytearray(4 * words)
                lo, hi = max(start, addr), min(stop, end)
                if lo > start or hi < stop:
                    # A partial first or last word: keep the bytes around it.
                    for w in {start, stop - 4}:
                        if w < addr or w + 4 > end:
                            old = self.transact(Cmd.MEM_READ, w, count=1).words[0]
                            chunk[w - start:w - start + 4] = struct.pack("<I", old)
                chunk[lo - start:hi - start] = data[lo - addr:hi - addr]
                self.transact(Cmd.MEM_WRITE, start,
                              words=struct.unpack(f"<{words}I", chunk))
                if bar is not None:
                    bar.update(hi - lo)
        finally:
            if bar is not None:
                bar.close()

    def read_mem(self, addr, n):
        """``n`` bytes of device memory from byte address ``addr``."""
        self._check_range(addr, n, "read_mem")
        out = bytearray()
        bar = self._bar(n, "download")
        try:
            for start, words in split_transfer(addr, n):
                got = self.transact(Cmd.MEM_READ, start, count=words).words
                out += struct.pack(f"<{words}I", *got)
                if bar is not None:
                    bar.update(4 * words)
        finally:
            if bar is not None:
                bar.close()
        skip = addr & 3
        return bytes(out[skip:skip + n])

    def wait_cycles(self, n):
        """Sleep about ``n`` device cycles, at most :attr:`MAX_WAIT_S` per call."""
        time.sleep(min(n * self.SECONDS_PER_CYCLE, self.MAX_WAIT_S))

    # -- link --------------------------------------------------------------------------

    def link_info(self):
        """The bridge's identity and counters (``LINK_INFO``)."""
        return LinkInfo.from_words(self.transact(Cmd.LINK_INFO, 0).words)

    def stats(self):
        """The host side's counts: operations, retries, bytes dropped by the parser, ..."""
        p = self.client.parser
        return {**self.client.stats, "junk_bytes": p.junk, "crc_errors": p.crc_errors,
                "frames": p.frames}

    def close(self):
        """Close the port (if it can be closed)."""
        close = getattr(self.port, "close", None)
        if close is not None:
            close()


def open_device(port, baud=DEFAULT_BAUD, *, retries=8, timeout_s=0.05, progress=True,
                **device_kw):
    """Open an lpaccel SoC behind a host bridge: a :class:`~lpaccel.driver.Device`.

    Parameters
    ----------
    port : str or object
        A serial device path (``/dev/ttyUSB0``, a serve-sim pty) or a byte
        port object (``write``, ``read``).
    baud : int
        Line rate for a path (the ULX3S: 3 Mbaud).
    retries, timeout_s, progress
        For :class:`LinkTransport`.
    **device_kw
        For :class:`~lpaccel.driver.Device` (``regmap``, ``poll_cycles``, ...).

    Raises
    ------
    PortError
        If the port does not exist or cannot be opened.
    LinkError
        If the port does not answer (after the retries) or is not a bridge
        of this protocol version.
    DeviceError
        If the device behind it is not an lpaccel SoC of this register-map
        major version.
    """
    owned = isinstance(port, str | os.PathLike)
    if owned:
        port = SerialPort(os.fspath(port), baud)
        line_baud = baud
    else:
        line_baud = getattr(port, "baud", None)
    try:
        try:
            transport = LinkTransport(port, baud=line_baud, retries=retries,
                                      timeout_s=timeout_s, progress=progress)
        except LinkError as error:
            if error.attempts and not error.seen.get("bytes"):
                where = getattr(port, "path", port)
                raise LinkError(f"{where} does not answer: LINK_INFO got no response in "
                                f"{error.attempts} attempts; check that the board is "
                                f"programmed with an lpaccel bitstream and powered, that "
                                f"the baud rate ({baud}) matches the bitstream's, or that "
                                f"`lpaccel serve-sim --pty` is running on that pty",
                                error.cmd, error.addr, error.attempts, error.seen) from None
            raise
        return driver.Device(transport, **device_kw)
    except BaseException:
        if owned:
            port.close()
        raise
