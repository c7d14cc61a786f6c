"""The command line over ``--port``: ``serve-sim``, ``selftest``, ``gemv``; port errors.

The end-to-end tests start ``lpaccel serve-sim --pty`` as a subprocess (the
SoC and the host bridge in Verilator, the build the link tests in
tests/bridge share), read the pty from its first line and run ``lpaccel
--port <pty> ...`` against it as subprocesses, as a user would. The rest
runs the same commands against the whole Python stack with no simulator
(the link's golden model in front of the driver's SoC test double), which
is also where the selftest's negative tests live: each fault the selftest
claims to find is planted and must make its step fail.
"""

import json
import os
import signal
import subprocess
import sys
import time
import tty

import pytest

from lpaccel.cli import main
from lpaccel.driver import Device
from lpaccel.rtl.config import GemvConfig
from lpaccel.rtl.soc_config import SocConfig
from lpaccel.sim.golden.link import LinkDeviceModel, LoopbackPort
from lpaccel.transports import LinkTransport
from tests.cli.test_run_gguf import write_gguf
from tests.driver.model import BusError as SocBusError
from tests.driver.model import SocModel

LPACCEL = [sys.executable, "-m", "lpaccel.cli"]

#: Seconds to wait for serve-sim's pty line (a cold Verilator build takes minutes).
SERVE_START_S = 1800


def _soc():
    return SocConfig(gemv=GemvConfig(lanes=32, max_cols=1024), memory_size=1 << 16)


class _Devices:
    """``open_port`` for tests: the link's golden model in front of a SoC test double."""

    def __init__(self, soc):
        self.soc = soc
        self.model = LinkDeviceModel.over_transport(soc, bus_errors=(SocBusError,))

    def __call__(self, port, baud=None):
        return Device(LinkTransport(LoopbackPort(self.model, clock=self.soc.wait_cycles),
                                    progress=False))

    def writes(self):
        return [e for e in self.model.executed if e[1] in (2, 4)]


def _install(monkeypatch, soc):
    d = _Devices(soc)
    monkeypatch.setattr("lpaccel.cli.serve.open_port", d)
    return d


def _selftest(capsys, *extra):
    code = main(["--port", "fake", "selftest", "--json", *extra])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


# --- selftest over the link, no simulator ---------------------------------------------------

def test_selftest_passes_on_a_whole_device(monkeypatch, capsys):
    _install(monkeypatch, SocModel(_soc()))
    code, report, _ = _selftest(capsys)
    assert code == 0 and report["ok"]
    names = [s["step"] for s in report["steps"]]
    assert names == ["identify", "registers", "memory", "gemv q4_0", "gemv q8_0",
                     "gemv q4_1", "gemv int4", "gemv int8", "gemv f16", "gemv bcq"]
    assert all(s["ok"] for s in report["steps"])


def test_selftest_text(monkeypatch, capsys):
    _install(monkeypatch, SocModel(_soc()))
    assert main(["--port", "fake", "selftest"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "lpaccel selftest on fake"
    steps = lines[1:-1]
    assert len(steps) == 10 and all(" PASS " in line for line in steps)
    assert lines[-1] == "selftest: PASS (10 of 10 steps passed)"


class _AliasedAddressLine(SocModel):
    """Memory address bit 12 is stuck at 0 (the upper half of each 8 KiB aliases the lower)."""

    def _fold(self, addr):
        return addr & ~(1 << 12)

    def write_mem(self, addr, data):
        for k in range(0, len(data), 4):
            super().write_mem(self._fold(addr + k), data[k:k + 4])

    def read_mem(self, addr, n):
        return b"".join(SocModel.read_mem(self, self._fold(addr + k), 4)
                       for k in range(0, n, 4))


class _StuckDataBit(SocModel):
    """Memory data bit 5 of every word stuck at 1."""

    def read_mem(self, addr, n):
        data = bytearray(super().read_mem(addr, n))
        for k in range(0, n - n % 4, 4):
            data[k] |= 1 << 5
        return bytes(data)


class _DeafRegister(SocModel):
    """JOB_COLS keeps only its low 8 bits."""

    def write32(self, addr, value):
        if self.map.at(addr)[0].name == "JOB_COLS":
            value &= 0xFF
        super().write32(addr, value)


class _NoBusErrors(SocModel):
    """Writes to read-only registers are ignored instead of refused (SLVERR)."""

    def write32(self, addr, value):
        if not self.map.at(addr)[0].sw_writable:
            return
        super().write32(addr, value)


class _WrongResults(SocModel):
    """Every Q8_0 job returns row 0 with one more ulp."""

    def _execute(self, job):
        result = super()._execute(job)
        if job.fmt == 1:    # WeightFormat.Q8_0
            word = int.from_bytes(self.mem[job.result_addr:job.result_addr + 4], "little")
            self.mem[job.result_addr:job.result_addr + 4] = (word ^ 1).to_bytes(4, "little")
        return result


@pytest.mark.parametrize("model, step, message", [
    (_AliasedAddressLine, "memory", "address line: word at 0x"),
    (_StuckDataBit, "memory", "data lines:"),
    (_DeafRegister, "registers", "JOB_COLS: wrote 0x1ffff, read 0xff"),
    (_NoBusErrors, "registers", "a write to the read-only MAGIC (0x0) was answered without "
                                "an error"),
    (_WrongResults, "gemv q8_0", "1 of 32 rows differ from golden"),
])
def test_selftest_finds_planted_faults(monkeypatch, capsys, model, step, message):
    _install(monkeypatch, model(_soc()))
    code, report, _ = _selftest(capsys)
    assert code == 1 and not report["ok"]
    failed = {s["step"]: s["detail"] for s in report["steps"] if not s["ok"]}
    assert step in failed, report["steps"]
    assert message in failed[step]


def test_gemv_over_port(monkeypatch, capsys):
    _install(monkeypatch, SocModel(_soc()))
    code = main(["--port", "fake", "gemv", "--format", "q4_1", "--rows", "16", "--cols",
                 "256", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert code == 0 and r["bit_exact"] and r["rows"] == 16 and r["cycles"] > 0
    assert r["counters"]["jobs_done"] == 1


def test_gemv_over_port_refuses_simulation_options(monkeypatch, capsys):
    _install(monkeypatch, SocModel(_soc()))
    assert main(["--port", "fake", "gemv", "--memory", "onchip"]) == 2
    assert "--memory configure the simulated SoC" in capsys.readouterr().err


def test_selftest_in_process(capsys):
    assert main(["selftest", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and len(report["steps"]) == 10
    gemv = {s["format"]: s["cycles"] for s in report["steps"] if s["step"].startswith("gemv")}
    assert set(gemv) == {"q4_0", "q8_0", "q4_1", "int4", "int8", "f16", "bcq"} and \
        min(gemv.values()) > 0


# --- port errors: exit code 2, the message, no traceback, nothing written --------------------

def _port_error(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in err and out == ""
    return err


@pytest.mark.parametrize("argv, message", [
    (["serve-sim"], "serve-sim serves on a pseudo-terminal: pass --pty"),
    (["--port", "/dev/pts/9", "serve-sim", "--pty"], "serve-sim does not run on a device"),
    (["--port", "/dev/pts/9", "regmap", "--out", "x"], "--port applies to gemv, selftest, "
                                                       "run-gguf"),
    (["--baud", "1000", "selftest"], "pass --port too"),
])
def test_option_errors(capsys, argv, message):
    assert message in _port_error(argv, capsys)


def test_port_that_does_not_exist(capsys):
    err = _port_error(["--port", "/dev/lpaccel-no-such-port", "selftest"], capsys)
    assert "serial port /dev/lpaccel-no-such-port does not exist" in err
    assert "lpaccel serve-sim --pty" in err


def test_port_that_does_not_answer(capsys):
    master, slave = os.openpty()
    try:
        started = time.monotonic()
        err = _port_error(["--port", os.ttyname(slave), "selftest"], capsys)
        assert "does not answer" in err
        assert time.monotonic() - started < 30
    finally:
        os.close(master)
        os.close(slave)


def test_register_map_version_mismatch(monkeypatch, capsys, tmp_path):
    soc = SocModel(_soc())
    real = soc._read
    soc._read = lambda name: (7 << 16) if name == "VERSION" else real(name)
    d = _install(monkeypatch, soc)
    path = write_gguf(tmp_path / "m.gguf")
    for argv in (["selftest"], ["gemv"], ["run-gguf", str(path)]):
        err = _port_error(["--port", "fake", *argv], capsys)
        assert "register map version 7.0" in err
    assert d.writes() == [] and soc.preloads == []


# --- the simulated board ----------------------------------------------------------------------

class ServeSim:
    """``lpaccel serve-sim --pty`` in a subprocess; :attr:`pty` is the path it printed."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([*LPACCEL, "serve-sim", "--pty", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        prefix = "lpaccel simulated board on "
        if not line.startswith(prefix):
            self.proc.kill()
            raise AssertionError(f"serve-sim printed {line!r}; stderr:\n"
                                 f"{self.proc.stderr.read()}")
        self.pty = line[len(prefix):].strip()

    def cpu_seconds(self):
        """CPU time used so far by serve-sim and the simulator under it (Linux /proc)."""
        total, todo = 0.0, [self.proc.pid]
        while todo:
            pid = todo.pop()
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{pid}/task/{pid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except FileNotFoundError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self, sig=signal.SIGTERM):
        """Send ``sig``; return the exit code (0: a clean stop)."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def _lpaccel(*argv, timeout=600):
    return subprocess.run([*LPACCEL, *argv], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def board():
    sim = ServeSim()
    yield sim
    assert sim.stop() == 0


def test_serve_sim_idles_without_cpu(board):
    # Nothing pending and the SoC idle: the server blocks in select(), the clock stopped.
    before = board.cpu_seconds()
    time.sleep(2.0)
    assert board.cpu_seconds() - before < 0.3


def test_serve_sim_recovers_from_a_broken_client(board):
    # A client that leaves garbage and half a request behind: the bridge drops it (its
    # inter-byte timeout runs while the board is busy) and the next client is served.
    from lpaccel.cli.serve import open_port
    from lpaccel.driver import MAGIC
    from lpaccel.link import Cmd, encode_request
    fd = os.open(board.pty, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    before = open_port(board.pty)
    start = before.transport.link_info()
    before.transport.close()
    os.write(fd, b"\x00\xff" + encode_request(7, Cmd.REG_READ, 0, count=4)[:6])
    os.close(fd)
    time.sleep(0.5)
    dev = open_port(board.pty)
    try:
        assert dev.regs.read("MAGIC") == MAGIC
        end = dev.transport.link_info()
    finally:
        dev.transport.close()
    assert end.resyncs + end.crc_errors > start.resyncs + start.crc_errors


def test_serve_sim_selftest(board):
    r = _lpaccel("--port", board.pty, "selftest")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "selftest: PASS (10 of 10 steps passed)" in r.stdout


def test_serve_sim_run_gguf(board, tmp_path):
    path = write_gguf(tmp_path / "model.gguf")
    r = _lpaccel("--port", board.pty, "run-gguf", str(path), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and len(report["tensors"]) == 3
    assert all(t["bit_exact"] for t in report["tensors"])
    assert {s["type"] for s in report["skipped"]} == {"F32"}


def test_serve_sim_tensor_too_large(board, tmp_path):
    # 512 x 256 Q8_0: 139,264 bytes of weights for a 64 KiB device; refused before any write.
    path = write_gguf(tmp_path / "big.gguf", (("big.weight", "Q8_0"),), rows=512)
    r = _lpaccel("--port", board.pty, "run-gguf", str(path))
    assert r.returncode == 2 and "CAP_MEM_SIZE" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow  # the UART PHY runs in make test in tests/bridge (test_link_top)
def test_serve_sim_uart_pins():
    sim = ServeSim("--uart")
    try:
        # 10 bits of 8 cycles a byte: 600-1000 baud at Verilator's pace (--baud sizes the
        # host's wait for each response).
        r = _lpaccel("--port", sim.pty, "--baud", "500", "gemv", "--format", "q4_0",
                     "--rows", "8", "--cols", "32", "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout)["bit_exact"]
    finally:
        # Ctrl-C: a clean stop as well.
        assert sim.stop(signal.SIGINT) == 0
