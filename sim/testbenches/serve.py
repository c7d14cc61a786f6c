"""cocotb tests behind ``lpaccel serve-sim``, ``selftest`` and ``run-gguf`` (in process).

Two tests, each started by :func:`lpaccel.sim.infra.harness.run_cocotb` from
:mod:`lpaccel.cli.serve`:

- :func:`run_host` (on the SoC top, ``sim/tops/soc.py``): runs one blocking
  host program, named ``"module:function"`` in ``LPACCEL_PROGRAM``, as
  ``function(transport, **kwargs)`` over the testbench's
  :class:`~lpaccel.sim.testbenches.soc.SimTransport` (the driver code that
  runs over a serial port runs here unchanged), and writes what it returned,
  or the exception it raised, to ``LPACCEL_REPORT`` (JSON).
- :func:`serve` (on the link top, ``sim/tops/link.py``): the simulated
  board. It opens a pseudo-terminal, writes the path of its slave end to the
  file named by ``LPACCEL_PTY_FILE`` and moves bytes between the master end
  and the bridge: straight into the top's ``rx``/``tx`` byte streams, one per
  clock (default), or through the UART pins with cocotbext-uart
  (``LPACCEL_SERVE_UART=1``). It runs until the file named by
  ``LPACCEL_STOP_FILE`` appears, SIGINT or SIGTERM arrives, or the process
  that started the simulation is gone.

The serve loop lets simulated time pass only when there is something to do::

    pty bytes waiting ──> feed rx, one byte per clock ──┐
    tx byte valid     ──> collect, write to the pty    ├─> clock runs
    busy (job or bridge mid-request)  ──> run CHUNK cycles
    nothing pending and busy low      ──> select() on the pty (bounded), no clock

So an idle board costs no CPU, and a request that arrives in pieces (the
host's write was split) does not see simulated time pass between the
pieces, which would trip the bridge's inter-byte timeout.
"""

import contextlib
import importlib
import json
import os
import select
import signal
import time
import traceback
import tty
import warnings

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, Timer

from lpaccel.sim.infra.harness import params

__all__ = ["call_program", "PtyServer"]

# cocotbext-uart 0.1.4 still calls cocotb's deprecated setimmediatevalue(); that
# is its deprecation, not ours: silence exactly that package's (as soc.py does).
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.")

#: Clock period of the serve simulation (ns), as in ``sim/testbenches/soc.py``.
CLOCK_NS = 2

#: Cycles run at once while the device is busy and no byte moves.
CHUNK_CYCLES = 64

#: Longest block in select() while idle (seconds): how quickly a stop request is seen.
IDLE_SELECT_S = 0.05

#: Bytes read from the pty at once.
READ_BYTES = 65536


def call_program(spec, transport, kwargs):
    """Import ``"module:function"`` and call ``function(transport, **kwargs)``."""
    module, _, func = spec.partition(":")
    return getattr(importlib.import_module(module), func)(transport, **kwargs)


@cocotb.test()
async def run_host(dut):
    """Run ``LPACCEL_PROGRAM`` over the SoC's SimTransport; report to ``LPACCEL_REPORT``.

    The program's exceptions are reported (``error``: type, message,
    traceback), not raised: the command line turns them into its own errors.
    """
    from lpaccel.sim.testbenches.soc import SocTB, config_from_params

    config, build_hash = config_from_params(params())
    kwargs = json.loads(os.environ.get("LPACCEL_KWARGS", "{}"))
    # Light host managers, no per-cycle checker: Verilator runs free between accesses.
    tb = SocTB(dut, config, build_hash=build_hash, checkers=False, host="light")
    await tb.reset()
    report = {"result": None, "error": None}
    started = time.monotonic()
    try:
        report["result"] = await tb.run_driver(call_program, os.environ["LPACCEL_PROGRAM"],
                                               tb.transport(), kwargs)
    except Exception as error:  # reported to the command line, which decides
        report["error"] = {"type": type(error).__name__, "message": str(error),
                           "traceback": traceback.format_exc()}
    report["wall_seconds"] = time.monotonic() - started
    report["sim_cycles"] = tb.cycle
    try:
        await tb.check_idle()
        report["idle_error"] = None
    except AssertionError as error:
        report["idle_error"] = str(error)
    with open(os.environ["LPACCEL_REPORT"], "w") as f:
        json.dump(report, f)


# --- the simulated board on a pseudo-terminal ------------------------------------------------

class PtyServer:
    """Moves bytes between a pseudo-terminal and the link top's bridge.

    Parameters
    ----------
    dut : cocotb handle
        A :class:`lpaccel.sim.tops.link.LinkSimTop`.
    uart : bool
        Through the UART pins (cocotbext-uart at the top's baud divisor)
        instead of the byte streams.
    divisor : int
        Clock cycles per UART bit (``uart`` only).

    Attributes
    ----------
    slave_path : str
        The pseudo-terminal's device, e.g. ``/dev/pts/3``.
    rx_bytes, tx_bytes : int
        Bytes moved host -> device and device -> host.
    """

    def __init__(self, dut, *, uart=False, divisor=8):
        self.dut = dut
        self.uart = uart
        self.divisor = divisor
        self.master, self._slave = os.openpty()
        # Raw both ends: no echo, no line discipline, every byte as it is.
        tty.setraw(self._slave)
        tty.setraw(self.master)
        os.set_blocking(self.master, False)
        self.slave_path = os.ttyname(self._slave)
        self.rx_bytes = self.tx_bytes = 0
        self._pending = bytearray()     # host -> device, not yet given to the bridge
        self._out = bytearray()         # device -> host, not yet written to the pty
        self._stop = False
        self.cycle = 0

    def request_stop(self, *_):
        """Stop at the next chance (a signal handler)."""
        self._stop = True

    def close(self):
        """Close both ends of the pseudo-terminal."""
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- pty ---------------------------------------------------------------------------

    def _read_pty(self, timeout):
        """Append what the host wrote; wait up to ``timeout`` seconds for something.

        While response bytes wait (the host is not reading and the pty's buffer
        is full) the wait also ends when the pty can take them.
        """
        m = self.master
        readable, writable, _ = select.select([m], [m] if self._out else [], [], timeout)
        if writable:
            self._write_pty()
        if readable:
            try:
                data = os.read(self.master, READ_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # EIO: nobody has the slave open (our own fd keeps this rare).
                return
            self._pending += data
            self.rx_bytes += len(data)

    def _write_pty(self):
        while self._out:
            try:
                n = os.write(self.master, self._out)
            except BlockingIOError:
                # The host does not read: keep the bytes, the clock keeps running.
                return
            del self._out[:n]

    # -- byte streams ---------------------------------------------------------------------

    async def _run_cycles(self, n):
        """From a falling edge, let ``n`` cycles pass with no Python wake-up per cycle.

        ``tx_ready`` is low meanwhile, so a response byte waits in the bridge
        (``tx_valid`` holds) instead of passing unseen; the caller raises it again.
        """
        d = self.dut
        d.tx_ready.value = 0
        d.rx_valid.value = 0
        await Timer(n * CLOCK_NS - CLOCK_NS // 2, unit="ns")
        await FallingEdge(d.clk)
        self.cycle += n

    async def serve_streams(self, should_stop):
        """Serve on the ``rx``/``tx`` byte streams, one byte per clock each way.

        One Python wake-up per cycle, at the falling edge: there the state
        the last rising edge made is settled, and the bridge's ``rx_ready``
        and ``tx_valid`` are functions of that state only (its FSM phase:
        ``rtl/bridge/bridge.py``), so what they read now is what the next
        rising edge sees. The inputs set now (``rx_valid``/``rx_data``,
        ``tx_ready`` = 1) are sampled by that edge, so a transfer is counted
        exactly when the bridge performs it.
        """
        d = self.dut
        d.use_uart.value = 0
        d.rx_valid.value = 0
        d.tx_ready.value = 0
        fall = FallingEdge(d.clk)
        await fall
        active = 0
        while True:
            rx_ready = int(d.rx_ready.value)
            tx_valid = int(d.tx_valid.value)
            busy = int(d.busy.value)
            d.tx_ready.value = 1
            if tx_valid:
                self._out.append(int(d.tx_data.value))
                self.tx_bytes += 1
            sent = False
            if self._pending:
                d.rx_data.value = self._pending[0]
                d.rx_valid.value = 1
                if rx_ready:
                    del self._pending[0]
                    sent = True
            else:
                d.rx_valid.value = 0
            if self._pending or tx_valid or sent:
                await fall
                self.cycle += 1
                active += 1
                if active % 256 == 0 or not self._pending:
                    self._write_pty()
                    self._read_pty(0)
                continue
            active = 0
            self._write_pty()
            if self._stop or should_stop():
                break
            if busy:
                # A job runs (or the bridge works on a request): a chunk of cycles.
                self._read_pty(0)
                if not self._pending:
                    await self._run_cycles(CHUNK_CYCLES)
                    continue
            else:
                # Nothing pending, nothing running: block (bounded) with the clock stopped.
                self._read_pty(IDLE_SELECT_S)
            await fall
            self.cycle += 1
        d.rx_valid.value = 0

    # -- UART pins -------------------------------------------------------------------------

    async def serve_uart(self, should_stop):
        """Serve through the UART pins: cocotbext-uart at the bridge's bit time.

        No wake-up per cycle: the UART models wake per bit, the loop per
        frame time (or 64 cycles) while bytes move or the board is busy, and
        blocks in select() otherwise.
        """
        from cocotbext.uart import UartSink, UartSource
        d = self.dut
        d.use_uart.value = 1
        d.uart_rx.value = 1
        baud = 1e9 / (self.divisor * CLOCK_NS)
        source = UartSource(d.uart_rx, baud=baud, bits=8)
        sink = UartSink(d.uart_tx, baud=baud, bits=8)
        # A frame on the wire is 10 bits: run that long per step while bytes move.
        frame = 10 * self.divisor
        while not (self._stop or should_stop()):
            if sink.count():
                data = sink.read_nowait(sink.count())
                self._out += data
                self.tx_bytes += len(data)
            self._write_pty()
            self._read_pty(0)
            if self._pending:
                source.write_nowait(bytes(self._pending))
                self._pending.clear()
            moving = not source.empty() or int(d.busy.value) or int(d.uart_tx.value) == 0
            if moving:
                await Timer(max(CHUNK_CYCLES, frame) * CLOCK_NS, unit="ns")
                self.cycle += max(CHUNK_CYCLES, frame)
            else:
                # The receiver may still be mid-frame for up to one frame time.
                await Timer(2 * frame * CLOCK_NS, unit="ns")
                if sink.count() == 0 and not int(d.busy.value):
                    self._read_pty(IDLE_SELECT_S)


def _stop_condition():
    """A cheap ``should_stop()``: the stop file exists or the parent process is gone.

    Looks at most every 0.1 s (the serve loop asks far more often).
    """
    stop_file = os.environ.get("LPACCEL_STOP_FILE")
    parent = int(os.environ.get("LPACCEL_PARENT_PID", "0"))
    state = {"last": 0.0, "stop": False}

    def should_stop():
        now = time.monotonic()
        if now - state["last"] < 0.1:
            return state["stop"]
        state["last"] = now
        gone = False
        if parent:
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                gone = True
            except PermissionError:
                pass
        state["stop"] = gone or bool(stop_file and os.path.exists(stop_file))
        return state["stop"]

    return should_stop


@cocotb.test()
async def serve(dut):
    """The simulated board: serve the bridge on a pseudo-terminal until told to stop."""
    p = params()
    uart = os.environ.get("LPACCEL_SERVE_UART", "0") == "1"
    divisor = int(os.environ.get("LPACCEL_UART_DIVISOR", "8"))
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    dut.rst.value = 1
    dut.rx_valid.value = 0
    dut.tx_ready.value = 1
    dut.use_uart.value = int(uart)
    dut.uart_rx.value = 1
    for _ in range(8):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    server = PtyServer(dut, uart=uart, divisor=divisor)
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):   # not the main thread: the stop file still works
            signal.signal(sig, server.request_stop)
    path_file = os.environ["LPACCEL_PTY_FILE"]
    tmp = path_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(server.slave_path + "\n")
    os.replace(tmp, path_file)
    dut._log.info("serving %s on %s (%s)", p.get("memory", "?"), server.slave_path,
                  "UART pins" if uart else "byte streams")
    try:
        if uart:
            await server.serve_uart(_stop_condition())
        else:
            await server.serve_streams(_stop_condition())
    finally:
        server.close()
    dut._log.info("stopped after %d cycles: %d bytes in, %d bytes out", server.cycle,
                  server.rx_bytes, server.tx_bytes)
