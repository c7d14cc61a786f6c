"""cocotb testbench for the link top (``sim/tops/link.py``): the host's end of the link.

:class:`LinkTB` drives a :class:`~lpaccel.sim.tops.link.LinkSimTop` only the
way a host would, through bytes, and runs the host library's sans-IO
protocol client (:class:`lpaccel.link.LinkClient`) against it with time
counted in clock cycles:

- **Byte streams** (default): one coroutine (the *pump*) feeds queued bytes
  into ``rx_data/rx_valid`` and collects ``tx_data`` with ``tx_ready``, with
  seeded random idle cycles on ``rx`` and back-pressure on ``tx``. It sleeps
  while there is nothing to send and ``tx_valid`` is low, so a wait for a
  response lets Verilator run free.
- **UART** (``uart=True``): cocotbext-uart's ``UartSource``/``UartSink`` on
  the ``uart_rx``/``uart_tx`` pins at the bridge's divisor (``use_uart = 1``).

:meth:`LinkTB.transact` is one operation with retries as ``docs/link.md``
says; :class:`LinkFaults` damages frames in both directions on the way
(bit flips, truncation, garbage, dropped and duplicated bytes, stalls
longer than the bridge's timeout). :class:`LinkSimTransport` is the host
library's :class:`~lpaccel.transports.LinkTransport` whose operations run
on :meth:`LinkTB.transact`, so ``lpaccel.driver.Device`` runs over the
bridge in simulation exactly as over a serial port (the driver runs in a
thread, as with :class:`~lpaccel.sim.testbenches.soc.SimTransport`).

The memory backdoor (:meth:`LinkTB.peek`, :meth:`LinkTB.preload`) reads and
writes the on-chip RAM of the SoC directly, to check what the link did.
"""

import collections
import random
import warnings

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import Event, First, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_steps, get_sim_time

from lpaccel.link import RESPONSE_OVERHEAD, Cmd, LinkClient
from lpaccel.rtl.bridge.bridge import COUNTERS
from lpaccel.rtl.bridge.config import BridgeConfig
from lpaccel.rtl.regmap import RegmapConfig, register_map
from lpaccel.rtl.soc_config import SocConfig
from lpaccel.sim.infra.axi_checker import AxiProtocolChecker
from lpaccel.sim.testbenches.soc import StorageBackdoor
from lpaccel.transports import LinkTransport

__all__ = ["LinkTB", "LinkFaults", "LinkSimTransport", "CLOCK_NS"]

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.")

#: Clock period (ns), as in ``sim/testbenches/soc.py``.
CLOCK_NS = 2

#: Cycles the host waits beyond the bridge's timeout and the time to move both frames.
HOST_MARGIN_CYCLES = 200


class LinkTB:
    """Clock, reset, byte pump, protocol runner and memory backdoor of one link top.

    Parameters
    ----------
    dut : cocotb handle
        The :class:`~lpaccel.sim.tops.link.LinkSimTop`.
    params : dict
        What :func:`~lpaccel.sim.tops.link.make_link_top` was called with
        (:func:`~lpaccel.sim.tops.link.link_params`).
    idle : float
        Chance of an idle cycle before each request byte (``rx``).
    stall : float
        Chance of ``tx_ready`` low in a cycle (``tx``).
    seed : int
        Seed of the idle and stall patterns.
    uart : bool
        Talk through the UART pins (cocotbext-uart) instead of the byte streams.
    checkers : bool
        An :class:`AxiProtocolChecker` on the bridge's memory port (``bmem``).

    Attributes
    ----------
    bridge_config : BridgeConfig
    regmap : RegisterMap
    faults : LinkFaults or None
        Damage applied to every attempt of :meth:`transact` (None: a clean link).
    stats : dict
        Bytes moved each way and attempts sent.
    """

    def __init__(self, dut, params, *, idle=0.0, stall=0.0, seed=0, uart=False,
                 checkers=False):
        p = dict(params)
        build_hash = p.pop("build_hash", 0)
        self.bridge_config = BridgeConfig.from_dict(p.pop("bridge"))
        self.config = SocConfig.from_dict(p)
        self.regmap = register_map(RegmapConfig(soc=self.config, build_hash=build_hash))
        self.dut = dut
        self.log = dut._log
        self.period = get_sim_steps(CLOCK_NS, "ns")
        self._start = get_sim_time("step")
        cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
        self.rng = random.Random(seed)
        self.idle, self.stall = idle, stall
        self.uart = uart
        self.faults = None
        self.stats = {"bytes_sent": 0, "bytes_received": 0, "attempts": 0, "pump_cycles": 0}
        dut.rst.value = 1
        dut.use_uart.value = int(uart)
        dut.rx_valid.value = 0
        dut.rx_data.value = 0
        dut.tx_ready.value = 0
        dut.uart_rx.value = 1
        self._out = collections.deque()   # ints (bytes) and ("pause", cycles)
        self._in = bytearray()
        self._wake = Event()
        self._got = Event()
        self._hold_tx = 0                 # cycles of forced tx back-pressure left
        self.storage = StorageBackdoor(dut.soc.memory.storage, self.config)
        self.word_bytes = self.config.memory_data_width // 8
        self.checker = (AxiProtocolChecker(dut.clk, dut, "bmem", reset=dut.rst)
                        if checkers else None)
        if uart:
            from cocotbext.uart import UartSink, UartSource
            baud = self.bridge_config.baud
            # cocotbext-uart counts bit time in simulation time: one bit is divisor cycles.
            self._uart_bit_ns = CLOCK_NS * self.bridge_config.divisor
            baud = round(1e9 / self._uart_bit_ns)
            self.uart_source = UartSource(dut.uart_rx, baud=baud, bits=8)
            self.uart_sink = UartSink(dut.uart_tx, baud=baud, bits=8)
            cocotb.start_soon(self._uart_pump())
        else:
            cocotb.start_soon(self._pump())

    # --- clock and reset --------------------------------------------------------------

    @property
    def cycle(self):
        """Rising clock edges since the testbench started."""
        return (get_sim_time("step") - self._start) // self.period

    async def cycles(self, n):
        """Let ``n`` clock cycles pass (one timer, then the edge)."""
        if n <= 0:
            return
        period = self.period
        now = get_sim_time("step")
        target = self._start + ((now - self._start) // period + n) * period
        await Timer(target - period // 2 - now, unit="step")
        await RisingEdge(self.dut.clk)

    async def reset(self, cycles=8):
        """Hold reset for ``cycles`` cycles (clears the bridge's counters and record)."""
        self.dut.rst.value = 1
        await self.cycles(cycles)
        self.dut.rst.value = 0
        await self.cycles(2)

    # --- bytes ------------------------------------------------------------------------

    def send(self, data):
        """Queue request bytes; an ``("pause", n)`` item holds ``rx`` idle ``n`` cycles."""
        self._out.extend(data)
        self._wake.set()

    def hold_tx(self, cycles):
        """Keep ``tx_ready`` low for the next ``cycles`` cycles (a stalled host)."""
        self._hold_tx = max(self._hold_tx, cycles)

    def take(self):
        """The bytes received since the last call."""
        data = bytes(self._in)
        self._in.clear()
        self._got.clear()
        return data

    async def _pump(self):
        d, rng = self.dut, self.rng
        clk = d.clk
        current = None
        pause = 0
        while True:
            await RisingEdge(clk)
            if pause:
                pause -= 1
            elif current is None and self._out:
                item = self._out[0]
                if isinstance(item, tuple):
                    self._out.popleft()
                    pause = item[1]
                elif rng.random() >= self.idle:
                    current = self._out.popleft()
                    d.rx_data.value = current
            d.rx_valid.value = int(current is not None)
            if self._hold_tx:
                self._hold_tx -= 1
                ready = False
            else:
                ready = rng.random() >= self.stall
            d.tx_ready.value = int(ready)
            await ReadOnly()
            if current is not None and int(d.rx_ready.value):
                current = None
                self.stats["bytes_sent"] += 1
            tx_valid = int(d.tx_valid.value)
            self.stats["pump_cycles"] += 1
            if ready and tx_valid:
                self._in.append(int(d.tx_data.value))
                self.stats["bytes_received"] += 1
                self._got.set()
            feeding = current is not None or (self._out and not pause)
            holding = self._hold_tx > 0
            if not feeding and (holding or not tx_valid):
                # Nothing to move until a byte is queued, tx_valid rises or a pause or
                # hold ends: let the simulator run free until then.
                await RisingEdge(clk)
                d.rx_valid.value = 0
                d.tx_ready.value = 0
                self._wake.clear()
                if self._out and not pause:
                    continue
                triggers = [self._wake.wait()]
                if not holding:
                    triggers.append(RisingEdge(d.tx_valid))
                limits = [x for x in (pause, self._hold_tx) if x > 0]
                if limits:
                    triggers.append(Timer(min(limits) * self.period, unit="step"))
                start = self.cycle
                await First(*triggers)
                elapsed = self.cycle - start
                pause = max(0, pause - elapsed)
                self._hold_tx = max(0, self._hold_tx - elapsed)

    async def _uart_pump(self):
        # Request bytes to the UART source (pauses as idle line time); response bytes
        # from the sink into the receive buffer.
        async def feed():
            while True:
                if not self._out:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                item = self._out.popleft()
                if isinstance(item, tuple):
                    await self.uart_source.wait()
                    await self.cycles(item[1])
                else:
                    await self.uart_source.write(bytes([item]))
                    self.stats["bytes_sent"] += 1

        async def collect():
            while True:
                data = await self.uart_sink.read()
                self._in += data
                self.stats["bytes_received"] += len(data)
                self._got.set()

        cocotb.start_soon(feed())
        await collect()

    async def _receive_until(self, deadline):
        # Bytes received so far, or b"" once the cycle ``deadline`` has passed.
        while not self._in:
            left = deadline - self.cycle
            if left <= 0:
                return b""
            self._got.clear()
            await First(self._got.wait(), Timer(left * self.period, unit="step"))
        return self.take()

    # --- protocol -----------------------------------------------------------------------

    def byte_cycles(self):
        """Cycles one byte takes on the line (with the idle and stall rates)."""
        if self.uart:
            return 10 * self.bridge_config.divisor + 2
        return 1.0 / (1.0 - max(self.idle, self.stall))

    def host_timeout(self, request_bytes, response_words):
        """Cycles the host waits for a response after queuing a request: the bridge's
        inter-byte timeout, twice the time to move both frames and a margin."""
        line = (request_bytes + RESPONSE_OVERHEAD + 4 * response_words) * self.byte_cycles()
        return int(self.bridge_config.timeout_cycles + 2 * line + HOST_MARGIN_CYCLES)

    async def transact(self, client, cmd, addr, words=None, count=None):
        """One operation over the link, retried as ``docs/link.md`` says.

        Each attempt's request passes :attr:`faults` (if set) on the way in and its
        response on the way out.

        Returns
        -------
        lpaccel.link.Response
            A response with a good CRC, the operation's SEQ and CMD, STATUS = OK.

        Raises
        ------
        lpaccel.link.LinkError
            After every retry failed.
        lpaccel.link.LinkStatusError
            If the bridge refused the request.
        """
        frame = client.start(cmd, addr, words, count)
        n = len(words) if words is not None else (count or 8)
        if Cmd(cmd).is_write:
            n = 0
        self.take()
        while True:
            self.stats["attempts"] += 1
            faults = self.faults
            out = faults.outgoing(frame) if faults is not None else frame
            extra = sum(item[1] for item in out if isinstance(item, tuple))
            if faults is not None and faults.tx_hold:
                self.hold_tx(faults.tx_hold)
                extra += faults.tx_hold
            self.send(out)
            deadline = self.cycle + self.host_timeout(len(frame), n) + extra
            while True:
                data = await self._receive_until(deadline)
                if not data:
                    break
                if faults is not None:
                    data = faults.incoming(data)
                rsp = client.receive(data)
                if rsp is not None:
                    return rsp
                if client.retry_due:
                    break
            frame = client.timeout()

    def client(self, **kw):
        """A fresh :class:`~lpaccel.link.LinkClient` (``retries`` etc. as keywords)."""
        return LinkClient(**kw)

    # --- registers through the link --------------------------------------------------------

    async def read_regs(self, client, addr, count):
        """``count`` words from CSR byte address ``addr``."""
        return list((await self.transact(client, Cmd.REG_READ, addr, count=count)).words)

    async def write_regs(self, client, addr, words):
        """Write ``words`` from CSR byte address ``addr`` on."""
        await self.transact(client, Cmd.REG_WRITE, addr, words=list(words))

    async def link_info(self, client):
        """The bridge's ``LINK_INFO`` words."""
        return list((await self.transact(client, Cmd.LINK_INFO, 0)).words)

    def counters(self):
        """The bridge's counters read from the top's ``link_*`` ports (no bus traffic)."""
        return {name: int(getattr(self.dut, f"link_{name}").value) for name in COUNTERS}

    # --- backdoor -----------------------------------------------------------------------

    def peek(self, addr, n):
        """``n`` bytes of the on-chip RAM at ``addr``, straight from its storage."""
        wb = self.word_bytes
        first, last = addr // wb, -(-(addr + n) // wb)
        words = self.storage.read_words(first, last - first)
        return words[addr - first * wb:addr - first * wb + n]

    def preload(self, addr, data):
        """Put ``data`` (a whole number of memory words, aligned) into the on-chip RAM."""
        wb = self.word_bytes
        if addr % wb or len(data) % wb:
            raise ValueError(f"preload at {addr:#x} of {len(data)} bytes: use whole "
                             f"{wb}-byte memory words")
        self.storage.write_words(addr // wb, bytes(data))

    # --- the host library ---------------------------------------------------------------

    def transport(self, **kw):
        """A :class:`LinkSimTransport` onto this testbench (call it in the driver thread)."""
        return LinkSimTransport(self, **kw)

    async def run_host(self, func, *args, **kwargs):
        """Run blocking host code ``func(*args, **kwargs)`` in a thread (see module docs)."""
        return await bridge(func)(*args, **kwargs)

    async def wait_idle(self, limit=100_000):
        """Wait until the bridge and the SoC are idle (``busy`` low) and no byte is queued."""
        for _ in range(limit // 16):
            if not int(self.dut.busy.value) and not self._out:
                return
            await self.cycles(16)
        raise AssertionError(f"link top still busy after {limit} cycles")


class LinkSimTransport(LinkTransport):
    """:class:`lpaccel.transports.LinkTransport` whose operations run in the simulation.

    Everything above one operation (frame splitting, read-modify-write,
    ``LINK_INFO`` check, the driver's register sequence) is the host
    library's own code; each operation is :meth:`LinkTB.transact`, entered
    from the driver thread with ``cocotb.task.resume``, and
    :meth:`wait_cycles` lets the clock run.

    Parameters
    ----------
    tb : LinkTB
    retries : int
    check : bool
        Read ``LINK_INFO`` when opened (as on a board).
    """

    def __init__(self, tb, retries=8, check=True, seq=0):
        self.tb = tb
        super().__init__(port=None, retries=retries, progress=False, check=check, seq=seq)

    def transact(self, cmd, addr, words=None, count=None):
        return resume(self.tb.transact)(self.client, cmd, addr, words, count)

    def wait_cycles(self, n):
        resume(self.tb.cycles)(n)


class LinkFaults:
    """Seeded damage to the frames of :meth:`LinkTB.transact`, both directions.

    Each attempt draws at most one fault per direction, each with
    probability ``rate``: on the request, one of ``flip`` (a bit of a byte),
    ``truncate`` (the tail cut off), ``garbage`` (random bytes before or after
    it, SOF included), ``drop`` (one byte lost), ``dup`` (one byte twice),
    ``stall`` (the sender stops longer than the bridge's timeout in the middle);
    on the response, ``flip``, ``truncate``, ``garbage``, ``drop``, ``dup`` or
    ``stall`` (the host stops reading longer than the bridge's timeout).

    Parameters
    ----------
    rng : random.Random
    rate : float
        Chance of a fault per direction and attempt.
    stall_cycles : int
        Length of a stall (longer than the bridge's timeout).

    Attributes
    ----------
    counts : collections.Counter
        ``("req", kind)`` / ``("rsp", kind)`` → faults injected.
    tx_hold : int
        Back-pressure cycles for this attempt's response (a ``stall`` on it).
    """

    KINDS = ("flip", "truncate", "garbage", "drop", "dup", "stall")

    def __init__(self, rng, rate, stall_cycles):
        self.rng = rng
        self.rate = rate
        self.stall_cycles = stall_cycles
        self.counts = collections.Counter()
        self.tx_hold = 0
        self._rsp = None     # (kind, byte index) of this attempt's response fault
        self._rsp_pos = 0

    def _garbage(self):
        rng = self.rng
        return bytes(rng.choice([0xA5, 0x5A, rng.randrange(256)])
                     for _ in range(rng.randrange(1, 12)))

    def outgoing(self, frame):
        """The bytes (and pauses) to send for one attempt of ``frame``; draws this
        attempt's response fault too."""
        rng = self.rng
        self.tx_hold = 0
        self._rsp = None
        self._rsp_pos = 0
        if rng.random() < self.rate:
            kind = rng.choice(self.KINDS)
            self.counts[("rsp", kind)] += 1
            if kind == "stall":
                self.tx_hold = self.stall_cycles
            else:
                self._rsp = (kind, rng.randrange(RESPONSE_OVERHEAD))
        out = list(frame)
        if rng.random() >= self.rate:
            return out
        kind = rng.choice(self.KINDS)
        self.counts[("req", kind)] += 1
        k = rng.randrange(len(out))
        if kind == "flip":
            out[k] ^= 1 << rng.randrange(8)
        elif kind == "truncate":
            out = out[:max(1, k)]
        elif kind == "garbage":
            junk = list(self._garbage())
            out = junk + out if rng.random() < 0.5 else out + junk
        elif kind == "drop":
            del out[k]
        elif kind == "dup":
            out.insert(k, out[k])
        else:
            out.insert(max(1, k), ("pause", self.stall_cycles))
        return out

    def incoming(self, data):
        """Response bytes as the host sees them (this attempt's fault applied)."""
        if self._rsp is None:
            self._rsp_pos += len(data)
            return data
        kind, at = self._rsp
        start = self._rsp_pos
        self._rsp_pos += len(data)
        if kind == "truncate":
            return data[:max(0, at - start)]
        if not start <= at < start + len(data):
            return data
        i = at - start
        out = bytearray(data)
        if kind == "flip":
            out[i] ^= 1 << self.rng.randrange(8)
        elif kind == "garbage":
            out[i:i] = self._garbage()
        elif kind == "drop":
            del out[i]
        elif kind == "dup":
            out.insert(i, out[i])
        return bytes(out)

    def total(self):
        """Faults injected, both directions."""
        return sum(self.counts.values())
