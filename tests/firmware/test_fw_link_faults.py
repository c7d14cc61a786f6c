"""Link faults for the C HAL: ``lpaccel-fw linktest`` against the golden device model.

The C tool runs random register and memory operations, each verified
against its own shadow, through a pseudo-terminal into
``sim.golden.link.LinkDeviceModel``, with a ``FaultInjector`` on each
direction (bit flips, truncation, garbage, dropped and duplicated bytes,
stalls longer than the timeouts). Checked:

- zero corrupted writes reach the model's registers or memory (every
  backend write equals what the tool's clean request asked for), and the
  final register and memory equal the tool's shadow;
- zero corrupted reads reach the tool (it compares every read);
- every operation succeeds or fails loudly (reported, then repeated as a new
  operation, which succeeds: the link resynchronised);
- at least 1,000 frames in ``make test`` (10,000 in the slow suite).

The counts are printed (``pytest -s``) and written to
``build/firmware/link_faults_<frames>.json``.
"""

import json
import re
import subprocess

import pytest

from lpaccel.paths import ROOT
from sim.golden.link import FaultInjector
from tests.firmware.fwbuild import TOOL
from tests.firmware.ptylink import CheckedBackend, PtyDevice

SCRATCH = 0x00C
REGION = 8192          # two 4 KiB pages: memory commands are split at the boundary


def _stats(text, name, after=False):
    """The number after ``name`` (or before it, with ``after``) in the tool's output."""
    pattern = rf"(\d+) {name}" if after else rf"{name} (\d+)"
    m = re.search(pattern, text)
    assert m, f"no '{name}' in the tool's output:\n{text[-2000:]}"
    return int(m.group(1))


def run_linktest(tmp_path, ops, seed, rate=0.15, timeout_ms=25, retries=8):
    backend = CheckedBackend()
    to_device = FaultInjector(rate, seed=2 * seed + 1)
    to_host = FaultInjector(rate, seed=2 * seed + 2)
    dev = PtyDevice(backend, to_device, to_host, device_timeout_s=0.008,
                    host_stall_s=2.5 * timeout_ms / 1000)
    expect = tmp_path / "expect.bin"
    log = tmp_path / "linktest.log"
    try:
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [str(TOOL), "--port", dev.path, "--timeout-ms", str(timeout_ms),
                 "--retries", str(retries), "linktest", str(ops), "--seed", str(seed),
                 "--region", str(REGION), "--reg", str(SCRATCH), "--expect-out", str(expect)],
                stdout=out, stderr=subprocess.STDOUT)
            rc = dev.serve(proc)
    finally:
        dev.close()
    text = log.read_text()
    image = expect.read_bytes() if expect.exists() else b""
    # The host link's own counts: the tool's last "link: operations ..." line.
    link_line = [line for line in text.splitlines() if line.startswith("link: operations")]
    assert link_line, text[-3000:]
    summary = [line for line in text.splitlines() if line.startswith("linktest: ") and
               "operations (" in line]
    assert summary, text[-3000:]
    link_line, summary = link_line[-1], summary[-1]
    counts = {
        "operations": ops,
        "frames_seen_by_device_side": dev.frames,
        "tool_frames_sent": _stats(link_line, "frames sent"),
        "tool_retries": _stats(link_line, "retries"),
        "tool_timeouts": _stats(link_line, "timeouts"),
        "tool_crc_errors": _stats(link_line, "CRC errors"),
        "tool_dropped_bytes": _stats(link_line, "dropped bytes"),
        "failed_loudly_and_repeated": _stats(summary, "failed loudly", after=True),
        "corrupted_reads": _stats(summary, "corrupted reads", after=True),
        "corrupted_writes": len(backend.corrupted_writes),
        "backend_writes": backend.writes,
        "faults_to_device": dict(to_device.counts),
        "faults_to_host": dict(to_host.counts),
        "model_counters": dict(dev.model.counters),
    }
    return rc, text, image, backend, counts


def _check(tmp_path, ops, seed, min_frames, name=None, **kw):
    rc, text, image, backend, counts = run_linktest(tmp_path, ops, seed, **kw)
    print(json.dumps(counts, indent=1))
    out = ROOT / "build" / "firmware" / f"link_faults_{name or min_frames}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(counts, indent=1))
    assert rc == 0, text[-3000:]
    assert "PASS linktest" in text
    assert counts["corrupted_reads"] == 0
    assert backend.corrupted_writes == []
    # The final state is exactly what the tool meant.
    assert image[:4] == backend.regs[SCRATCH].to_bytes(4, "little")
    assert image[4:] == bytes(backend.mem[:REGION])
    assert counts["tool_frames_sent"] >= min_frames
    assert counts["frames_seen_by_device_side"] == counts["tool_frames_sent"]
    # Faults of every kind happened, both ways.
    for kind in FaultInjector.KINDS:
        assert counts["faults_to_device"][kind] > 0, kind
        assert counts["faults_to_host"][kind] > 0, kind
    assert counts["tool_retries"] > 0 and counts["model_counters"]["crc_errors"] > 0
    return counts


def test_link_faults_1000_frames(firmware, tmp_path):
    _check(tmp_path, ops=800, seed=1, min_frames=1000)


def test_link_faults_heavy_fail_loudly_then_recover(firmware, tmp_path):
    """Half the frames hit, one retry: operations give up (reported, exit code still 0
    because each is repeated until it succeeds), and nothing corrupted gets through."""
    counts = _check(tmp_path, ops=150, seed=3, min_frames=300, name="heavy", rate=0.5,
                    retries=1)
    assert counts["failed_loudly_and_repeated"] > 0


@pytest.mark.slow
def test_link_faults_10000_frames(firmware, tmp_path):
    _check(tmp_path, ops=8000, seed=2, min_frames=10000)


def test_clean_link_needs_no_retry(firmware, tmp_path):
    backend = CheckedBackend()
    dev = PtyDevice(backend)
    log = tmp_path / "clean.log"
    try:
        with open(log, "w") as out:
            proc = subprocess.Popen([str(TOOL), "--port", dev.path, "--timeout-ms", "500",
                                     "linktest", "200", "--region", str(REGION), "--reg",
                                     str(SCRATCH)], stdout=out, stderr=subprocess.STDOUT)
            rc = dev.serve(proc)
    finally:
        dev.close()
    text = log.read_text()
    assert rc == 0, text
    link_line = [line for line in text.splitlines() if line.startswith("link: operations")][-1]
    assert _stats(link_line, "retries") == 0 and _stats(link_line, "CRC errors") == 0
    assert backend.corrupted_writes == []


def test_checker_catches_a_corrupted_write():
    """The backend's check can fail: a write that differs from the request is caught."""
    backend = CheckedBackend()
    backend.current = (int(__import__("lpaccel.link").link.Cmd.REG_WRITE), SCRATCH, (5,))
    backend.write32(SCRATCH, 5)
    assert backend.corrupted_writes == []
    backend.write32(SCRATCH, 6)
    assert len(backend.corrupted_writes) == 1
