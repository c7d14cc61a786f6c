"""The golden link device model behind a pseudo-terminal, with faults both ways.

:class:`PtyDevice` opens a pty pair; a C program (``lpaccel-fw``) talks to
the slave end as to a serial port. Each clean request frame the program
writes is cut out of the byte stream, handed to a
:class:`~sim.golden.link.FaultInjector` (to the device), fed to a
:class:`~sim.golden.link.LinkDeviceModel`, and its response goes through a
second injector (to the host) back into the pty.

Time is real where the protocol needs it: the model's inter-byte timeout
fires when the line has been quiet for ``device_timeout_s`` (always shorter
than the program's own timeout), and a stall on the way to the host holds
the rest of the response for ``host_stall_s`` (longer than the program's
timeout). A stall or truncation on the way to the device is the model's
inter-byte timeout at once.

Every write the model makes to its backend is checked against the clean
frame the program sent (what it meant): any difference counts in
``corrupted_writes``.
"""

import os
import select
import struct
import time
import tty

from lpaccel.link import REQ_SOF, Cmd, request_length
from sim.golden.link import BusError, LinkDeviceModel


class CheckedBackend:
    """Registers ``[0, reg_bytes)`` and a memory, checking every write against the request.

    Attributes
    ----------
    regs : dict
    mem : bytearray
    current : tuple or None
        ``(cmd, addr, words)`` of the last clean request frame.
    corrupted_writes : list
        Writes that are not what the current request asked for.
    writes : int
        Backend writes (register words and memory blocks).
    """

    def __init__(self, reg_bytes=0x400, mem_bytes=1 << 16, read_only=(0x0,)):
        self.reg_bytes = reg_bytes
        self.regs = {}
        self.mem = bytearray(mem_bytes)
        self.read_only = set(read_only)
        self.current = None
        self.corrupted_writes = []
        self.writes = 0

    def _expected(self, cmd, addr, nbytes):
        cur = self.current
        if cur is None or cur[0] != cmd:
            return None
        start = addr - cur[1]
        data = struct.pack(f"<{len(cur[2])}I", *cur[2])
        if start < 0 or start + nbytes > len(data):
            return None
        return data[start:start + nbytes]

    def read32(self, addr):
        if not 0 <= addr < self.reg_bytes:
            raise BusError(f"no register at {addr:#x}")
        return self.regs.get(addr, 0)

    def write32(self, addr, value):
        if not 0 <= addr < self.reg_bytes or addr in self.read_only:
            raise BusError(f"register {addr:#x} is not writable")
        self.writes += 1
        if self._expected(Cmd.REG_WRITE, addr, 4) != struct.pack("<I", value):
            self.corrupted_writes.append(("reg", addr, value, self.current))
        self.regs[addr] = value

    def read_mem(self, addr, n):
        if addr + n > len(self.mem):
            raise BusError(f"memory [{addr:#x}, {addr + n:#x}) outside the window")
        return bytes(self.mem[addr:addr + n])

    def write_mem(self, addr, data):
        if addr + len(data) > len(self.mem):
            raise BusError(f"memory [{addr:#x}, {addr + len(data):#x}) outside the window")
        self.writes += 1
        if self._expected(Cmd.MEM_WRITE, addr, len(data)) != bytes(data):
            self.corrupted_writes.append(("mem", addr, bytes(data[:16]), self.current))
        self.mem[addr:addr + len(data)] = data

    def model(self):
        """A :class:`LinkDeviceModel` over this backend."""
        return LinkDeviceModel(self.read32, self.write32, self.read_mem, self.write_mem)


class PtyDevice:
    """A :class:`LinkDeviceModel` served on a pseudo-terminal.

    Parameters
    ----------
    backend : CheckedBackend or LinkDeviceModel
        A :class:`CheckedBackend` (its model is served and it is told each
        clean request), or any model (e.g. over the SoC test double).
    to_device, to_host : FaultInjector, optional
    device_timeout_s : float
        The model's inter-byte timeout (line quiet this long drops a partial request).
    host_stall_s : float
        How long a stall on the way to the host holds the rest of a response.
    clock : callable, optional
        ``clock(cycles)`` lets device time pass (``SocModel.wait_cycles``):
        ``cycles_per_byte`` per byte received, as on a board where the
        device runs while the line carries bytes.
    """

    def __init__(self, backend, to_device=None, to_host=None, device_timeout_s=0.008,
                 host_stall_s=0.06, clock=None, cycles_per_byte=333):
        if isinstance(backend, LinkDeviceModel):
            self.backend, self.model = None, backend
        else:
            self.backend, self.model = backend, backend.model()
        self.clock = clock
        self.cycles_per_byte = cycles_per_byte
        self.to_device = to_device
        self.to_host = to_host
        self.device_timeout_s = device_timeout_s
        self.host_stall_s = host_stall_s
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self._buf = bytearray()
        self._last_byte = time.monotonic()
        self.frames = 0
        self.responses = 0
        self.stalls = 0

    def close(self):
        os.close(self.master)
        os.close(self.slave)

    def _send_to_host(self, data):
        view = memoryview(data)
        while view:
            n = os.write(self.master, view)
            view = view[n:]

    def _deliver(self, frame):
        self.frames += 1
        cmd, count = frame[2], frame[3] + 1
        words = struct.unpack_from(f"<{count}I", frame, 8) \
            if cmd in (Cmd.REG_WRITE, Cmd.MEM_WRITE) else ()
        if self.backend is not None:
            self.backend.current = (cmd, struct.unpack_from("<I", frame, 4)[0], words)
        if self.clock is not None:
            self.clock(self.cycles_per_byte * len(frame))
        pieces = self.to_device.apply(frame) if self.to_device else [frame]
        for piece in pieces:
            if piece is None:
                self.model.idle_timeout()
                continue
            rsp = self.model.feed(piece)
            if not rsp:
                continue
            self.responses += 1
            for out in (self.to_host.apply(rsp) if self.to_host else [rsp]):
                if out is None:
                    self.stalls += 1
                    time.sleep(self.host_stall_s)
                elif out:
                    self._send_to_host(out)

    def _receive(self, data):
        now = time.monotonic()
        if now - self._last_byte > self.device_timeout_s:
            # The line was quiet longer than the device's inter-byte timeout.
            self.model.idle_timeout()
        self._last_byte = now
        self._buf += data
        buf = self._buf
        while buf:
            if buf[0] != REQ_SOF:
                # The program only sends whole frames; anything else is a bug.
                raise AssertionError(f"the host sent {bytes(buf[:16]).hex()} outside a frame")
            if len(buf) < 4:
                return
            need = request_length(buf[2], buf[3])
            if len(buf) < need:
                return
            frame = bytes(buf[:need])
            del buf[:need]
            self._deliver(frame)

    def serve(self, proc, limit_s=600):
        """Serve until ``proc`` (a ``subprocess.Popen``) exits; return its return code.

        Give the process files, not pipes, for its output: nothing reads a
        pipe while the device is served.
        """
        deadline = time.monotonic() + limit_s
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.002)
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    data = b""
                if data:
                    self._receive(data)
                    continue
            if proc.poll() is not None:
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"the program did not finish in {limit_s} s")
        return proc.returncode
