"""The simulated board and the in-process runs of host programs.

Two ways to run the host library against the RTL (Verilator, through
:func:`lpaccel.sim.infra.harness.run_cocotb` and the cocotb tests of
:mod:`lpaccel.sim.testbenches.serve`):

- :func:`run_in_process`: a blocking host program ``function(transport,
  **kwargs)`` runs over the SoC simulation top's transport (no link): what
  ``lpaccel selftest`` and ``lpaccel run-gguf`` do without ``--port``.
- :func:`serve_sim`: ``lpaccel serve-sim --pty`` builds the SoC with the host
  bridge (``sim/tops/link.py``) and serves it on a pseudo-terminal until
  SIGINT or SIGTERM; ``lpaccel --port /dev/pts/N ...`` then runs the same
  host code against it as against a board's serial port.
"""

import contextlib
import io
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from lpaccel.paths import build_dir
from lpaccel.rtl.soc_config import ONCHIP, SocConfig

__all__ = ["ProgramError", "run_in_process", "serve_sim", "serve_params", "SERVE_MEMORIES",
           "open_port", "run_port_gemv", "port_gemv_text"]

#: Verilog name of the SoC simulation top (shared with lpaccel gemv and tests/soc).
SIM_SOC_NAME = "soc"

#: Memories ``serve-sim`` offers (on chip only: the LPDDR builds take many minutes).
SERVE_MEMORIES = (ONCHIP,)

#: Line rate (baud, 10 bits a byte) the host assumes for a pseudo-terminal: the
#: simulated board's byte streams move about 1 byte per cycle at 5k-10k cycles/s
#: (a loaded machine), so 20,000 leaves a margin of 2.5x to 5x. Through the
#: UART pins (serve-sim --uart, 10 bits of 8 cycles a byte: 600-1000 baud) pass --baud 500.
SIM_BOARD_BAUD = 20_000

#: How long serve-sim waits for the pty (the first Verilator build takes minutes).
PTY_WAIT_S = 3600


#: The driver's errors (lpaccel.driver), re-raised as DeviceError from a program run in
#: the simulator: the command line reports them like the same errors over a port.
DEVICE_ERRORS = ("DeviceError", "DeviceTimeout", "JobError", "AllocationError")


class ProgramError(Exception):
    """A host program run in the simulator raised; carries its type name and message.

    Attributes
    ----------
    type_name : str
        The exception class's name in the simulator process.
    detail : str
        Its traceback there.
    """

    def __init__(self, type_name, message, detail=""):
        super().__init__(message)
        self.type_name = type_name
        self.detail = detail


def run_in_process(program, kwargs, config=None, *, seed=0, work_dir=None):
    """Run host program ``program(transport, **kwargs)`` on the simulated SoC.

    Parameters
    ----------
    program : str
        ``"module:function"``; the function is blocking host code (it may
        build a :class:`lpaccel.driver.Device` on the transport) and returns
        JSON-serialisable data.
    kwargs : dict
        JSON-serialisable keyword arguments.
    config : SocConfig, optional
        Default ``SocConfig(memory="onchip")``: the build ``lpaccel gemv`` and
        the SoC tests share.
    seed : int
    work_dir : path, optional
        Default ``build/runs/``.

    Returns
    -------
    dict
        ``result`` (what the program returned), ``sim_cycles``,
        ``wall_seconds``, ``idle_error`` (the end-of-run check; None when the
        SoC was left idle).

    Raises
    ------
    ValueError
        Re-raised when the program raised one (bad input found by the
        program's checks): the message is the program's.
    lpaccel.driver.DeviceError
        When the program raised one of the driver's errors (:data:`DEVICE_ERRORS`).
    ProgramError
        When the program raised anything else.
    """
    from lpaccel.sim.infra.harness import run_cocotb
    from lpaccel.sim.tops.soc import make_soc_top

    config = config or SocConfig(memory=ONCHIP)
    work = Path(work_dir) if work_dir else build_dir("runs")
    work.mkdir(parents=True, exist_ok=True)
    report_file = work / f"host-{os.getpid()}-{threading.get_ident()}.json"
    with contextlib.suppress(FileNotFoundError):
        report_file.unlink()
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            run_cocotb(make_soc_top, name=SIM_SOC_NAME, params=config.to_dict(),
                       test_module="lpaccel.sim.testbenches.serve", testcase="run_host",
                       seed=seed,
                       extra_env={"LPACCEL_PROGRAM": program,
                                  "LPACCEL_KWARGS": json.dumps(kwargs),
                                  "LPACCEL_REPORT": str(report_file)})
    except BaseException:
        sys.stderr.write(log.getvalue())
        raise
    report = json.loads(report_file.read_text())
    report_file.unlink()
    error = report.pop("error")
    if error is not None:
        if error["type"] == "ValueError":
            raise ValueError(error["message"])
        if error["type"] in DEVICE_ERRORS:
            from lpaccel.driver import DeviceError
            raise DeviceError(f"{error['type']}: {error['message']}")
        raise ProgramError(error["type"], error["message"], error["traceback"])
    return report


# --- serve-sim ---------------------------------------------------------------------------------

def serve_params(memory=ONCHIP):
    """Parameters of the link top for ``memory`` (:func:`lpaccel.sim.tops.link.link_params`).

    The same as the link top's tests use, so ``serve-sim`` shares their
    Verilator build.
    """
    from lpaccel.sim.tops.link import link_params
    if memory not in SERVE_MEMORIES:
        raise ValueError(f"--memory {memory}: serve-sim builds the on-chip memory SoC only "
                         f"(supported: {', '.join(SERVE_MEMORIES)})")
    return link_params(SocConfig(memory=memory))


def _uart_divisor(params):
    """Clock cycles per UART bit of the link top's bridge."""
    from lpaccel.rtl.bridge.config import BridgeConfig
    return BridgeConfig.from_dict(params["bridge"]).divisor


def serve_sim(memory=ONCHIP, *, uart=False, out=None, seed=0, work_dir=None):
    """``lpaccel serve-sim --pty``: serve the simulated board until SIGINT/SIGTERM.

    Prints ``lpaccel simulated board on /dev/pts/N`` (flushed) as soon as
    the simulator has opened the pseudo-terminal.

    Parameters
    ----------
    memory : str
        One of :data:`SERVE_MEMORIES`.
    uart : bool
        Feed the bridge through the UART PHY's pins (bit-level) instead of
        its byte streams.
    out : file, optional
        Where the line goes; default ``sys.stdout``.

    Returns
    -------
    int
        Exit code: 0 after a requested stop, 1 if the simulation ended by
        itself or failed.
    """
    from lpaccel.sim.infra.harness import run_cocotb
    from lpaccel.sim.tops.link import LINK_TOP_NAME, make_link_top

    out = out or sys.stdout
    p = serve_params(memory)
    work = Path(work_dir) if work_dir else build_dir("runs")
    work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="serve-", dir=work))
    pty_file, stop_file = tmp / "pty", tmp / "stop"
    state = {"error": None, "done": False}
    stopping = threading.Event()

    def simulate():
        try:
            run_cocotb(make_link_top, name=LINK_TOP_NAME, params=p,
                       test_module="lpaccel.sim.testbenches.serve", testcase="serve",
                       seed=seed,
                       extra_env={"LPACCEL_PTY_FILE": str(pty_file),
                                  "LPACCEL_STOP_FILE": str(stop_file),
                                  "LPACCEL_PARENT_PID": str(os.getpid()),
                                  "LPACCEL_SERVE_UART": "1" if uart else "0",
                                  "LPACCEL_UART_DIVISOR": str(_uart_divisor(p))})
        except BaseException as error:     # reported by the main thread
            state["error"] = error
        finally:
            state["done"] = True

    def request_stop(signum, frame):
        stopping.set()
        stop_file.touch()

    old = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    log = io.StringIO()
    try:
        # run_cocotb prints the simulator's log when it ends; keep stdout for the path line.
        with contextlib.redirect_stdout(log):
            worker = threading.Thread(target=simulate, name="serve-sim", daemon=True)
            worker.start()
            announced = False
            deadline = time.monotonic() + PTY_WAIT_S
            while not state["done"]:
                if not announced and pty_file.exists():
                    path = pty_file.read_text().strip()
                    print(f"lpaccel simulated board on {path}", file=out, flush=True)
                    if uart:
                        print("serve-sim: through the UART pins the board moves about 100 "
                              "bytes/s; pass --baud 500 to lpaccel --port", file=sys.stderr,
                              flush=True)
                    announced = True
                if not announced and time.monotonic() > deadline:
                    stop_file.touch()
                    stopping.set()
                worker.join(0.05)
        if state["error"] is not None and not stopping.is_set():
            sys.stderr.write(log.getvalue())
            print(f"lpaccel serve-sim: the simulation failed: {state['error']}",
                  file=sys.stderr)
            return 1
        if not stopping.is_set():
            print("lpaccel serve-sim: the simulation ended by itself", file=sys.stderr)
            return 1
        print("lpaccel serve-sim: stopped", file=sys.stderr)
        return 0
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        for f in (pty_file, stop_file):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        with contextlib.suppress(OSError):
            tmp.rmdir()


# --- runs over a port ---------------------------------------------------------------------------

def open_port(port, baud=None):
    """Open the device behind serial port ``port`` (a board, or serve-sim's pty).

    Raises
    ------
    lpaccel.transports.PortError, lpaccel.link.LinkError, lpaccel.driver.DeviceError
        With messages that name the port and the fix (the command line prints
        them and exits with code 2).
    """
    from lpaccel.transports import DEFAULT_BAUD, open_device
    baud = baud or DEFAULT_BAUD
    dev = open_device(port, baud)
    if _is_pty(port):
        # A pseudo-terminal is software: the simulated board moves bytes as
        # fast as Verilator runs the SoC (about 10k cycles/s, one byte per
        # cycle), far below the nominal line rate. Size the host's wait for
        # each response by that rate, so that a 1 KiB frame is not sent again
        # while the first copy is still being clocked in. (The probe above
        # kept the short wait: a port that does not answer fails quickly.)
        dev.transport.baud = min(baud, SIM_BOARD_BAUD)
    return dev


def _is_pty(port):
    return isinstance(port, str) and os.path.realpath(port).startswith("/dev/pts/")


def run_port_gemv(dev, case, timeout_cycles=None):
    """One GEMV on an open device; the report of ``lpaccel --port DEV gemv --json``.

    The device's ``PERF_*`` counters are cleared before and read after the
    job; the result is compared bit for bit with the golden model.
    """
    import numpy as np

    from lpaccel import repack
    from lpaccel.cli.soc import LOSS_COUNTERS
    from lpaccel.sim.golden import gemv as golden

    w = case.weights
    layout = repack.layout_of(w, dev.config)
    timeout = timeout_cycles or max(1_000_000, 4 * layout.bytes)
    dev.clear_counters()
    y = dev.gemv(w, case.x, timeout_cycles=timeout)
    counters = dev.counters()
    got = np.asarray(y, dtype=np.float32).view(np.uint32)
    mismatches = int(np.count_nonzero(got != case.expected.view(np.uint32)))
    cycles = counters.get("busy_cycles", 0)
    word = dev.info.word_bytes
    memory = getattr(dev.info.memory, "name", str(dev.info.memory)).lower()
    return {
        "format": w.fmt.name.lower(), "group": w.group, "rows": w.rows, "cols": w.cols,
        "lanes": dev.info.lanes, "word_bits": dev.info.word_bits, "memory": memory,
        "memory_size": dev.info.memory_size, "cycles": cycles,
        "ideal_cycles": layout.ideal_cycles, "weight_bytes": layout.bytes,
        "bw_utilization": round(layout.bytes / (cycles * word), 6) if cycles else 0.0,
        "stream_utilization": round(layout.ideal_cycles / cycles, 6) if cycles else 0.0,
        "bit_exact": mismatches == 0, "mismatches": mismatches, "errors": [],
        "rel_rms_error": float(golden.rel_rms_error(y, case.reference)),
        "timing_violations": None, "idle_error": None,
        "losses": {k: counters.get(k, 0) for k in LOSS_COUNTERS}, "counters": counters,
    }


def port_gemv_text(r, port):
    """Human report of :func:`run_port_gemv`."""
    status = "PASS" if r["bit_exact"] else f"FAIL ({r['mismatches']} of {r['rows']} rows differ)"
    losses = ", ".join(f"{k} {v}" for k, v in r["losses"].items() if v)
    return "\n".join([
        f"GEMV {r['format'].upper()}"
        + (f" group {r['group']}" if r['format'].startswith("int") else "")
        + f"  {r['rows']} x {r['cols']}  on the device at {port} ({r['lanes']} lanes, "
        f"{r['word_bits']}-bit memory words, {r['memory']} memory)",
        f"  bit-exact vs golden model : {status}",
        f"  rel. RMS error vs float64 : {r['rel_rms_error']:.3e}  (contract: <= 1e-3)",
        f"  busy cycles (counter)     : {r['cycles']}  (ideal {r['ideal_cycles']})",
        f"  weight bytes              : {r['weight_bytes']}",
        f"  utilization of the peak   : {100 * r['bw_utilization']:.2f} %",
        f"  cycles lost by cause      : {losses or 'none'}",
    ])
