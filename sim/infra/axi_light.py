"""Lightweight AXI4-Lite and AXI4 managers for flat cocotb ports: no cost while idle.

cocotbext-axi's ``AxiLiteMaster`` and ``AxiMaster`` run a coroutine per
channel that wakes on every clock edge, busy or not; on a simulation of a
long job that is nearly all of the wall time. These managers drive the flat
ports (``{prefix}_awaddr``, ``{prefix}_awvalid``, ... as made by
:func:`~lpaccel.sim.infra.flat.flat_members`) only while a transaction is in
flight and wait on nothing otherwise, so Verilator runs free between
accesses.

- :class:`LightAxiLite`: one 32-bit read or write at a time.
- :class:`LightAxi`: byte-granular reads and writes, cut into INCR bursts of
  full-width beats (at most 256 beats, never across a 4 KiB boundary), one
  burst in flight at a time; partial words are written with byte strobes.

Both check every response (``RESP`` must be OKAY, ``RID``/``BID`` must echo
the id, ``RLAST`` must mark the burst's last beat) and raise
:class:`AxiResponseError` otherwise. They have no pause modes: tests that want
random pauses on the host ports use cocotbext-axi.

Sampling follows the usual cocotb rule: right after ``RisingEdge(clk)`` the
DUT's outputs still hold the values of the cycle that just ended (a handshake
happened iff VALID and READY were both 1 then), and values written then are
seen by the DUT from the next edge on.
"""

import enum

from cocotb.triggers import Lock, RisingEdge

__all__ = ["AxiResp", "AxiResponseError", "LightAxiLite", "LightAxi"]


class AxiResp(enum.IntEnum):
    """AXI ``RRESP``/``BRESP`` codes."""
    OKAY = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


class AxiResponseError(RuntimeError):
    """A response other than OKAY, or a malformed response (wrong id, RLAST)."""

    def __init__(self, message, resp=None):
        super().__init__(message)
        self.resp = resp


class _Port:
    """The flat signals ``{prefix}_{name}`` of one port, looked up once."""

    def __init__(self, dut, prefix, names):
        self.prefix = prefix
        for name in names:
            setattr(self, name, getattr(dut, f"{prefix}_{name}"))


class LightAxiLite:
    """AXI4-Lite manager: one 32-bit access at a time, awaited to its response.

    Parameters
    ----------
    dut : cocotb handle
        The top holding the flat port.
    prefix : str
        e.g. ``"s_axil"``.
    clk : cocotb handle
    """

    _INPUTS = ("awaddr", "awprot", "awvalid", "wdata", "wstrb", "wvalid", "bready",
               "araddr", "arprot", "arvalid", "rready")
    _OUTPUTS = ("awready", "wready", "bvalid", "bresp", "arready", "rvalid", "rdata", "rresp")

    def __init__(self, dut, prefix, clk):
        self.clk = clk
        self.port = _Port(dut, prefix, self._INPUTS + self._OUTPUTS)
        self.lock = Lock()
        for name in self._INPUTS:
            getattr(self.port, name).value = 0
        self.reads = self.writes = 0

    async def write(self, addr, value, strb=0xF):
        """Write 32-bit ``value`` at ``addr``; return the BRESP (an :class:`AxiResp`)."""
        p, edge = self.port, RisingEdge(self.clk)
        async with self.lock:
            p.awaddr.value = addr
            p.wdata.value = value & 0xFFFF_FFFF
            p.wstrb.value = strb
            p.awvalid.value = p.wvalid.value = p.bready.value = 1
            aw = w = True
            while True:
                await edge
                if aw and p.awready.value:
                    p.awvalid.value = aw = 0
                if w and p.wready.value:
                    p.wvalid.value = w = 0
                if p.bvalid.value:
                    resp = AxiResp(int(p.bresp.value))
                    p.bready.value = 0
                    # A response before both requests is a protocol error, not ours to hide.
                    if aw or w:
                        p.awvalid.value = p.wvalid.value = 0
                        raise AxiResponseError(f"{p.prefix}: write response at {addr:#x} "
                                               f"before the address and data were taken")
                    self.writes += 1
                    return resp

    async def read(self, addr):
        """Read 32 bits at ``addr``; return ``(value, resp)``."""
        p, edge = self.port, RisingEdge(self.clk)
        async with self.lock:
            p.araddr.value = addr
            p.arvalid.value = p.rready.value = 1
            ar = True
            while True:
                await edge
                if ar and p.arready.value:
                    p.arvalid.value = ar = 0
                if p.rvalid.value:
                    value, resp = int(p.rdata.value), AxiResp(int(p.rresp.value))
                    p.rready.value = 0
                    if ar:
                        p.arvalid.value = 0
                        raise AxiResponseError(f"{p.prefix}: read data at {addr:#x} before "
                                               f"the address was taken")
                    self.reads += 1
                    return value, resp


class LightAxi:
    """AXI4 manager: byte reads and writes as INCR bursts, one burst in flight.

    Parameters
    ----------
    dut : cocotb handle
    prefix : str
        e.g. ``"s_axi"``.
    clk : cocotb handle
    id : int
        ``AWID``/``ARID`` of every burst (the response must echo it).
    max_burst : int
        Beats per burst, at most 256 (AXI4 INCR).

    Attributes
    ----------
    beats : dict
        ``{"w": ..., "r": ...}``: data beats transferred.
    """

    _INPUTS = ("awid", "awaddr", "awlen", "awsize", "awburst", "awlock", "awcache", "awprot",
               "awqos", "awvalid", "wdata", "wstrb", "wlast", "wvalid", "bready",
               "arid", "araddr", "arlen", "arsize", "arburst", "arlock", "arcache", "arprot",
               "arqos", "arvalid", "rready")
    _OUTPUTS = ("awready", "wready", "bvalid", "bid", "bresp",
                "arready", "rvalid", "rid", "rdata", "rresp", "rlast")

    def __init__(self, dut, prefix, clk, *, id=0, max_burst=256):
        if not 1 <= max_burst <= 256:
            raise ValueError(f"max_burst is {max_burst}; AXI4 INCR bursts have 1 to 256 beats")
        self.clk = clk
        self.port = p = _Port(dut, prefix, self._INPUTS + self._OUTPUTS)
        self.lock = Lock()
        self.id = id
        self.max_burst = max_burst
        self.word_bytes = len(p.wdata) // 8
        self.size = self.word_bytes.bit_length() - 1
        if 1 << self.size != self.word_bytes:
            raise ValueError(f"{prefix}_wdata is {len(p.wdata)} bits; a power-of-two number "
                             f"of bytes is needed")
        for name in self._INPUTS:
            getattr(p, name).value = 0
        self.beats = {"w": 0, "r": 0}

    def _bursts(self, addr, n):
        """``(first word address, beats)`` of the bursts covering ``[addr, addr + n)``."""
        wb = self.word_bytes
        start, end = addr // wb * wb, -(-(addr + n) // wb) * wb
        while start < end:
            # INCR bursts stay inside one 4 KiB page.
            limit = min(end, (start // 4096 + 1) * 4096, start + self.max_burst * wb)
            yield start, (limit - start) // wb
            start = limit

    async def write(self, addr, data):
        """Write ``data`` at byte ``addr``; return the worst BRESP (an :class:`AxiResp`)."""
        data = bytes(data)
        wb = self.word_bytes
        worst = AxiResp.OKAY
        async with self.lock:
            for base, beats in self._bursts(addr, len(data)):
                words, strobes = [], []
                for k in range(beats):
                    lo = base + k * wb
                    a, b = max(lo, addr), min(lo + wb, addr + len(data))
                    chunk = bytes(a - lo) + data[a - addr:b - addr] + bytes(lo + wb - b)
                    words.append(int.from_bytes(chunk, "little"))
                    strobes.append(((1 << (b - a)) - 1) << (a - lo))
                resp = await self._write_burst(base, words, strobes)
                worst = max(worst, resp)
        return worst

    async def _write_burst(self, base, words, strobes):
        p, edge = self.port, RisingEdge(self.clk)
        last = len(words) - 1
        p.awid.value, p.awaddr.value, p.awlen.value = self.id, base, last
        p.awsize.value, p.awburst.value = self.size, 1
        p.awvalid.value = p.wvalid.value = p.bready.value = 1
        beat = 0
        p.wdata.value, p.wstrb.value, p.wlast.value = words[0], strobes[0], last == 0
        aw = True
        while True:
            await edge
            if aw and p.awready.value:
                p.awvalid.value = aw = 0
            if beat <= last and p.wready.value:
                beat += 1
                self.beats["w"] += 1
                if beat <= last:
                    p.wdata.value, p.wstrb.value = words[beat], strobes[beat]
                    p.wlast.value = beat == last
                else:
                    p.wvalid.value = p.wlast.value = 0
            if p.bvalid.value:
                resp, bid = AxiResp(int(p.bresp.value)), int(p.bid.value)
                p.bready.value = 0
                if aw or beat <= last or bid != self.id:
                    p.awvalid.value = p.wvalid.value = 0
                    raise AxiResponseError(
                        f"{p.prefix}: write response at {base:#x} with BID {bid} (sent "
                        f"{self.id}) after {beat} of {last + 1} beats, address "
                        f"{'not ' if aw else ''}taken")
                return resp

    async def read(self, addr, n):
        """Read ``n`` bytes at byte ``addr``; return ``(data, worst RRESP)``."""
        out = bytearray()
        worst = AxiResp.OKAY
        async with self.lock:
            first = None
            for base, beats in self._bursts(addr, n):
                if first is None:
                    first = base
                resp = await self._read_burst(base, beats, out)
                worst = max(worst, resp)
        if first is None:
            return b"", worst
        skip = addr - first
        return bytes(out[skip:skip + n]), worst

    async def _read_burst(self, base, beats, out):
        p, edge = self.port, RisingEdge(self.clk)
        wb = self.word_bytes
        p.arid.value, p.araddr.value, p.arlen.value = self.id, base, beats - 1
        p.arsize.value, p.arburst.value = self.size, 1
        p.arvalid.value = p.rready.value = 1
        ar, got, worst = True, 0, AxiResp.OKAY
        while got < beats:
            await edge
            if ar and p.arready.value:
                p.arvalid.value = ar = 0
            if p.rvalid.value:
                rid, rlast = int(p.rid.value), int(p.rlast.value)
                worst = max(worst, AxiResp(int(p.rresp.value)))
                out += int(p.rdata.value).to_bytes(wb, "little")
                got += 1
                self.beats["r"] += 1
                if ar or rid != self.id or rlast != (got == beats):
                    p.arvalid.value = p.rready.value = 0
                    raise AxiResponseError(
                        f"{p.prefix}: read beat {got} of {beats} at {base:#x} has RID {rid} "
                        f"(sent {self.id}), RLAST {rlast}, address "
                        f"{'not ' if ar else ''}taken")
        p.rready.value = 0
        return worst

    async def wait(self):
        """Return once no transaction is in flight."""
        async with self.lock:
            pass
