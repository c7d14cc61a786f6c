"""The C driver's logic without a simulator, clean and under link faults.

``lpaccel-fw`` runs through a pseudo-terminal into the golden link model in
front of the SoC test double (``tests/driver/model.py``: registers, memory
and a job queue with the semantics of docs/soc.md, results from the golden
GEMV on the bytes in its memory). Checked:

- the selftest passes (identify, register walk, memory, one GEMV per format
  bit-exact, a chain of 20 jobs through the 8-deep queue, abort and soft
  reset with jobs queued, idle) on a clean line and on one with faults both
  ways, where JOB_PUSH and JOB_POP must still happen exactly once each (the
  bridge's replay record): 31 jobs pushed, 29 records popped, no overflow;
- ``gemv`` on a bundle equals the golden model;
- refusals before anything is written: a register map of another major
  version, a wrong MAGIC, a bundle repacked for another engine geometry,
  a port that does not answer.
"""

import os
import subprocess
import tty

import numpy as np
import pytest

from lpaccel.firmware.bundle import make_bundle, read_bundle, read_results, write_bundle
from lpaccel.quant import quantize_weights
from lpaccel.rtl.config import GemvConfig
from lpaccel.rtl.soc_config import SocConfig
from sim.golden.link import FaultInjector, LinkDeviceModel
from tests.driver.model import BusError as SocBusError
from tests.driver.model import SocModel
from tests.firmware.fwbuild import TOOL
from tests.firmware.ptylink import PtyDevice


def _soc():
    return SocModel(SocConfig(memory_size=1 << 16))


def _run(soc, argv, tmp_path, rate=0.0, seed=0, timeout_ms=25):
    model = LinkDeviceModel.over_transport(soc, bus_errors=(SocBusError,))
    faults = {}
    if rate:
        faults = {"to_device": FaultInjector(rate, seed=2 * seed + 1),
                  "to_host": FaultInjector(rate, seed=2 * seed + 2)}
    dev = PtyDevice(model, clock=soc.wait_cycles, host_stall_s=2.5 * timeout_ms / 1000,
                    **faults)
    log = tmp_path / "tool.log"
    try:
        with open(log, "w") as out:
            proc = subprocess.Popen([str(TOOL), "--port", dev.path, "--timeout-ms",
                                     str(timeout_ms), *argv], stdout=out,
                                    stderr=subprocess.STDOUT)
            rc = dev.serve(proc)
    finally:
        dev.close()
    return rc, log.read_text(), model, faults


def _writes(soc):
    return [e for e in soc.log if e[0] == "w"]


def test_selftest_clean(firmware, tmp_path):
    soc = _soc()
    rc, text, model, _ = _run(soc, ["selftest"], tmp_path)
    assert rc == 0, text
    assert text.count("\nPASS gemv ") == 5 and "selftest: PASS" in text
    assert "PASS memory: 65536 bytes" in text
    assert "PASS chain: 20 jobs (every format x 4) queued back to back through a 8-deep" in text
    assert "PASS control: abort with 3 jobs queued: 3 records in push order" in text
    # Jobs of one vector share weights, activations and shape: the driver rewrote
    # only what changed: at most 12 times (5 single jobs, 5 vectors in the chain,
    # the control step's first job and its job after the soft reset, which makes
    # the driver forget what it wrote), 2 words each, instead of 31 jobs x 2 words.
    for reg in ("JOB_WEIGHT_ADDR", "JOB_ACT_ADDR", "JOB_ROWS", "JOB_COLS", "JOB_FORMAT"):
        assert 0 < len([e for e in soc.log if e[:2] == ("w", reg)]) <= 24, reg
    assert len([e for e in soc.log if e[:2] == ("w", "JOB_TAG")]) == 31


@pytest.mark.parametrize("seed", [1, 2])
def test_selftest_under_link_faults(firmware, tmp_path, seed):
    soc = _soc()
    rc, text, model, faults = _run(soc, ["selftest", "--mem-bytes", "8192"], tmp_path,
                                   rate=0.1, seed=seed)
    assert rc == 0, text
    assert text.count("\nPASS gemv ") == 5 and "selftest: PASS" in text
    pushes = [e for e in soc.log if e[:2] == ("w", "JOB_PUSH")]
    pops = [e for e in soc.log if e[:2] == ("w", "JOB_POP")]
    # Exactly once each, although their frames were resent (duplicates answered
    # from the replay record, not executed).
    # 5 single GEMVs, the chain of 20 (more than the queue's 8), 3 aborted, 2 ended
    # by the soft reset (no records to pop), 1 after it.
    assert "PASS chain: 20 jobs" in text and "PASS control:" in text
    assert len(pushes) == 31 and len(pops) == 29
    assert soc.error["OVERFLOW"] == 0
    assert model.counters["crc_errors"] > 0
    assert sum(faults["to_device"].counts[k] for k in FaultInjector.KINDS) > 0
    assert sum(faults["to_host"].counts[k] for k in FaultInjector.KINDS) > 0


def test_gemv_bundle_matches_golden(firmware, tmp_path):
    rng = np.random.default_rng(3)
    w = quantize_weights(rng.standard_normal((48, 192)).astype(np.float32), "q4_1")
    x = rng.standard_normal(192).astype(np.float32)
    b = write_bundle(tmp_path / "job.lpfb", w, x)
    rc, text, _, _ = _run(_soc(), ["gemv", str(tmp_path / "job.lpfb"),
                                   str(tmp_path / "y.f32")], tmp_path)
    assert rc == 0, text
    assert "PASS golden: 48 results bit-exact" in text
    y = read_results(tmp_path / "y.f32", 48)
    assert np.array_equal(y.view(np.uint32), b.expected.view(np.uint32))


@pytest.mark.parametrize("planes,offset", [(3, True), (1, False)])
def test_gemv_bcq_bundle_matches_golden(firmware, tmp_path, planes, offset):
    """A BCQ bundle carries its planes and offset (bundle version 2) into JOB_FORMAT."""
    rng = np.random.default_rng(planes)
    w = quantize_weights(rng.standard_normal((24, 256)).astype(np.float32), "bcq", 64,
                         planes=planes, offset=offset)
    x = rng.standard_normal(256).astype(np.float32)
    b = write_bundle(tmp_path / "job.lpfb", w, x)
    assert read_bundle(tmp_path / "job.lpfb").planes == planes
    rc, text, _, _ = _run(_soc(), ["gemv", str(tmp_path / "job.lpfb"),
                                   str(tmp_path / "y.f32")], tmp_path)
    assert rc == 0, text
    assert "PASS golden: 24 results bit-exact" in text
    y = read_results(tmp_path / "y.f32", 24)
    assert np.array_equal(y.view(np.uint32), b.expected.view(np.uint32))


def test_bundle_version_1_still_read_and_bad_bcq_word_refused(tmp_path):
    rng = np.random.default_rng(5)
    w = quantize_weights(rng.standard_normal((4, 64)).astype(np.float32), "q8_0")
    image = bytearray(make_bundle(w, rng.standard_normal(64).astype(np.float32)).to_bytes())
    image[4:8] = (1).to_bytes(4, "little")            # a version-1 file: word 44 is 0
    (tmp_path / "v1.lpfb").write_bytes(image)
    assert read_bundle(tmp_path / "v1.lpfb").planes == 0
    image[44:48] = (2).to_bytes(4, "little")          # version 1 with planes: refused
    (tmp_path / "bad.lpfb").write_bytes(image)
    with pytest.raises(ValueError, match="version-1 bundle holds 0 there"):
        read_bundle(tmp_path / "bad.lpfb")


def test_version_mismatch_refused_before_any_write(firmware, tmp_path):
    soc = _soc()
    real = soc._read
    soc._read = lambda name: (7 << 16) if name == "VERSION" else real(name)
    for argv in (["selftest"], ["info"]):
        soc.log.clear()
        rc, text, _, _ = _run(soc, argv, tmp_path)
        assert rc == 1
        assert "FAIL identify: register map version 7.0, this firmware was built for major" \
            in text
        assert _writes(soc) == []


def test_wrong_magic_refused(firmware, tmp_path):
    soc = _soc()
    real = soc._read
    soc._read = lambda name: 0x12345678 if name == "MAGIC" else real(name)
    rc, text, _, _ = _run(soc, ["selftest"], tmp_path)
    assert rc == 1 and "FAIL identify: MAGIC is not 'LPAC'" in text
    assert _writes(soc) == []


def test_bundle_for_another_engine_refused_before_any_write(firmware, tmp_path):
    rng = np.random.default_rng(4)
    w = quantize_weights(rng.standard_normal((16, 64)).astype(np.float32), "q8_0")
    write_bundle(tmp_path / "job.lpfb", w, rng.standard_normal(64).astype(np.float32),
                 GemvConfig(lanes=16))
    soc = _soc()
    rc, text, _, _ = _run(soc, ["gemv", str(tmp_path / "job.lpfb"), str(tmp_path / "y")],
                          tmp_path)
    assert rc == 1 and "is repacked for 16 lanes" in text and "--lanes 32" in text
    assert _writes(soc) == [] and not (tmp_path / "y").exists()


def test_bad_bundle_refused(firmware, tmp_path):
    (tmp_path / "junk").write_bytes(b"not a bundle at all, no")
    r = subprocess.run([str(TOOL), "--port", "/dev/null", "gemv", str(tmp_path / "junk"),
                        str(tmp_path / "y")], capture_output=True, text=True)
    assert r.returncode == 1 and "is not an lpaccel job bundle" in r.stdout


def test_port_that_does_not_answer(firmware):
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        r = subprocess.run([str(TOOL), "--port", os.ttyname(slave), "--timeout-ms", "10",
                            "--retries", "2", "info"], capture_output=True, text=True,
                           timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert r.returncode == 1
    assert "FAIL link: LINK_INFO: link: no valid response after every retry" in r.stdout
    assert "frames sent 3" in r.stdout
