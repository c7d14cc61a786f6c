"""The C tool against the simulated board (``lpaccel serve-sim --pty``, the RTL in Verilator).

- ``lpaccel-fw --port PTY selftest`` passes: link, identification, register
  walk, memory test, one GEMV per format bit-exact vs the golden model, a
  chain of 20 jobs through the 8-deep queue, abort and soft reset with jobs
  queued, idle;
- ``lpaccel-fw gemv BUNDLE OUT`` on a bundle gives results bit-identical to
  the Python driver's (``lpaccel.transports.open_device`` + ``Device.gemv``)
  on the same board, and to the golden model.

The simulated board moves about 5-8 KB/s, so the tool runs with a 1 s
timeout per attempt (a board at 3 Mbaud needs the default 50 ms).
"""

import signal
import subprocess

import numpy as np
import pytest

from lpaccel.firmware.bundle import read_results, write_bundle
from lpaccel.paths import ROOT
from lpaccel.quant import quantize_weights
from tests.firmware.fwbuild import TOOL

LPACCEL = [str(ROOT / ".venv" / "bin" / "lpaccel")]
SIM_TIMEOUT_MS = "1000"


class ServeSim:
    """``lpaccel serve-sim --pty`` in a subprocess; :attr:`pty` is the path it printed."""

    PREFIX = "lpaccel simulated board on "

    def __init__(self):
        self.proc = subprocess.Popen([*LPACCEL, "serve-sim", "--pty"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith(self.PREFIX):
            self.proc.kill()
            raise AssertionError(f"serve-sim printed {line!r}; stderr:\n"
                                 f"{self.proc.stderr.read()}")
        self.pty = line[len(self.PREFIX):].strip()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture(scope="module")
def board(firmware):
    sim = ServeSim()
    yield sim
    assert sim.stop() == 0


def _tool(board, *argv, timeout=900):
    return subprocess.run([str(TOOL), "--port", board.pty, "--timeout-ms", SIM_TIMEOUT_MS,
                           *argv], capture_output=True, text=True, timeout=timeout)


def test_selftest(board):
    # 16 KiB of the 64 KiB keeps make test short; the slow test below covers it all.
    r = _tool(board, "selftest", "--mem-bytes", "16384")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    for step in ("link", "identify", "registers", "memory", "gemv Q4_0", "gemv Q8_0",
                 "gemv Q4_1", "gemv INT4", "gemv INT8", "chain", "control", "idle"):
        assert any(line.startswith(f"PASS {step}:") for line in lines), (step, r.stdout)
    assert "FAIL" not in r.stdout and lines[-1] == "selftest: PASS"


@pytest.mark.slow
def test_selftest_whole_memory(board):
    r = _tool(board, "selftest")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS memory: 65536 bytes" in r.stdout


@pytest.mark.parametrize("fmt,rows,cols,group", [("q4_0", 72, 256, None),
                                                  ("int8", 40, 384, 128)])
def test_gemv_bit_identical_to_python_driver(board, tmp_path, fmt, rows, cols, group):
    from lpaccel.transports import open_device

    rng = np.random.default_rng(7)
    w = quantize_weights(rng.standard_normal((rows, cols)).astype(np.float32), fmt, group)
    x = rng.standard_normal(cols).astype(np.float32)
    bundle = write_bundle(tmp_path / "job.lpfb", w, x)
    r = _tool(board, "gemv", str(tmp_path / "job.lpfb"), str(tmp_path / "y.f32"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS golden:" in r.stdout
    y_c = read_results(tmp_path / "y.f32", rows)

    dev = open_device(board.pty, timeout_s=1.0, progress=False)
    try:
        y_py = dev.gemv(w, x)
    finally:
        dev.transport.close()
    assert np.array_equal(y_c.view(np.uint32), np.asarray(y_py, np.float32).view(np.uint32))
    assert np.array_equal(y_c.view(np.uint32), bundle.expected.view(np.uint32))
