"""Link faults in both directions: nothing corrupted reaches the device or the caller.

Random register and memory operations run through the whole host stack
(LinkTransport -> LinkClient -> bytes) into the golden device model over a
logging backend, with a FaultInjector on each direction (bit flips,
truncation, garbage, dropped and duplicated bytes, stalls longer than the
timeout). The test keeps a shadow of what the device should hold and checks:

- every write that reaches the backend is one the operation meant, with the
  operation's data (zero corrupted writes), and each is applied exactly once;
- every read returns exactly the shadow's contents (zero corrupted reads);
- every operation succeeds or raises LinkError (loudly), and after a
  LinkError a fault-free operation succeeds (the link resynchronised).

The counts are printed (``pytest -s``) and returned for the report.
"""

import random

import pytest

from lpaccel.link import LinkError
from lpaccel.transports import LinkTransport
from sim.golden.link import FaultInjector, LoopbackPort
from tests.link.backend import LoggingBackend

REG_BYTES = 0x400
MEM_BYTES = 1 << 15


class Run:
    """The shadow, the stack and the tallies of one fault-injection run."""

    def __init__(self, seed, rate, retries=8):
        self.rng = random.Random(seed)
        self.backend = LoggingBackend(REG_BYTES, MEM_BYTES)
        self.model = self.backend.model()
        self.to_device = FaultInjector(0.0, seed=seed * 2 + 1)
        self.to_host = FaultInjector(0.0, seed=seed * 2 + 2)
        self.port = LoopbackPort(self.model, self.to_device, self.to_host)
        # Opening reads LINK_INFO on a clean line; the faults start with the operations.
        self.link = LinkTransport(self.port, retries=retries, timeout_s=1.0, progress=False)
        self.to_device.rate = self.to_host.rate = rate
        self.regs = {}
        self.mem = bytearray(MEM_BYTES)
        self.tally = {"ops": 0, "link_errors": 0, "reg_writes": 0, "mem_writes": 0,
                      "reads": 0, "corrupted_writes": 0, "corrupted_reads": 0}

    # -- operations ------------------------------------------------------------------

    def op(self):
        kind = self.rng.choice(("reg_write", "reg_read", "mem_write", "mem_read"))
        self.backend.log.clear()
        self.tally["ops"] += 1
        try:
            getattr(self, kind)()
        except LinkError:
            self.tally["link_errors"] += 1
            self._apply_log_after_failure()
            self._clean_op()

    def reg_write(self):
        rng = self.rng
        n = rng.randint(1, 8)
        addr = 4 * rng.randrange(REG_BYTES // 4 - n + 1)
        values = [rng.getrandbits(32) for _ in range(n)]
        self._pending = ("reg", addr, values)
        self.link.write_regs(addr, values)
        writes = [e for e in self.backend.log if e[0] == "w32"]
        expect = [("w32", addr + 4 * i, v) for i, v in enumerate(values)]
        if writes != expect:        # each word exactly once, in order, with its value
            self.tally["corrupted_writes"] += 1
        for i, v in enumerate(values):
            self.regs[addr + 4 * i] = v
        self.tally["reg_writes"] += 1

    def reg_read(self):
        rng = self.rng
        n = rng.randint(1, 8)
        addr = 4 * rng.randrange(REG_BYTES // 4 - n + 1)
        got = self.link.read_regs(addr, n)
        if got != [self.regs.get(addr + 4 * i, 0) for i in range(n)]:
            self.tally["corrupted_reads"] += 1
        self.tally["reads"] += 1

    def mem_write(self):
        rng = self.rng
        n = rng.choice((rng.randint(1, 16), rng.randint(1, 2100)))
        addr = rng.randrange(MEM_BYTES - n + 1)
        data = rng.randbytes(n)
        self._pending = ("mem", addr, data)
        after = bytearray(self.mem)
        after[addr:addr + n] = data
        self.link.write_mem(addr, data)
        writes = [e for e in self.backend.log if e[0] == "wmem"]
        spans = [(a, len(d)) for _, a, d in writes]
        if (any(d != after[a:a + len(d)] for _, a, d in writes)
                or len(set(spans)) != len(spans)):      # a chunk written twice
            self.tally["corrupted_writes"] += 1
        self.mem[:] = after
        self.tally["mem_writes"] += 1

    def mem_read(self):
        rng = self.rng
        n = rng.choice((rng.randint(1, 16), rng.randint(1, 2100)))
        addr = rng.randrange(MEM_BYTES - n + 1)
        if self.link.read_mem(addr, n) != self.mem[addr:addr + n]:
            self.tally["corrupted_reads"] += 1
        self.tally["reads"] += 1

    # -- after a LinkError -------------------------------------------------------------

    def _apply_log_after_failure(self):
        """A failed write may have applied some of its frames: each must be intended."""
        for kind, addr, value in self.backend.log:
            if kind == "w32":
                _, base, values = self._pending
                i = (addr - base) // 4
                if not 0 <= i < len(values) or values[i] != value:
                    self.tally["corrupted_writes"] += 1
                self.regs[addr] = value
            elif kind == "wmem":
                _, base, data = self._pending
                after = bytearray(self.mem)
                after[base:base + len(data)] = data
                if value != after[addr:addr + len(value)]:
                    self.tally["corrupted_writes"] += 1
                self.mem[addr:addr + len(value)] = value

    def _clean_op(self):
        """With the faults off, the next operation must work."""
        saved = self.to_device.rate, self.to_host.rate
        self.to_device.rate = self.to_host.rate = 0.0
        try:
            info = self.link.link_info()
            assert info.magic == 0x4B4E4C4C
            self.reg_read()
        finally:
            self.to_device.rate, self.to_host.rate = saved

    def run(self, frames):
        while min(self.to_device.counts["frames"], self.to_host.counts["frames"]) < frames:
            self.op()
        # Final check of everything the device holds.
        assert self.backend.mem == self.mem
        assert self.backend.regs == self.regs
        return self.report()

    def report(self):
        faults = {f"to_device_{k}": v for k, v in self.to_device.counts.items()}
        faults.update({f"to_host_{k}": v for k, v in self.to_host.counts.items()})
        return {**self.tally, **faults, "device": dict(self.model.counters),
                "host": self.link.stats()}


def _check(report, frames):
    print()
    for key, value in report.items():
        print(f"  {key}: {value}")
    assert report["corrupted_writes"] == 0
    assert report["corrupted_reads"] == 0
    assert report["to_device_frames"] >= frames and report["to_host_frames"] >= frames
    for kind in FaultInjector.KINDS:
        assert report[f"to_device_{kind}"] > 0 and report[f"to_host_{kind}"] > 0
    # The device saw the faults it should count.
    dev = report["device"]
    assert dev["crc_errors"] > 0 and dev["resyncs"] > 0 and dev["duplicates"] > 0


def test_faults_1000_frames():
    run = Run(seed=1, rate=0.25)
    _check(run.run(1000), 1000)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3])
def test_faults_10000_frames(seed):
    run = Run(seed=seed, rate=0.25)
    _check(run.run(10_000), 10_000)


def test_link_error_then_recovery():
    # Every frame to the device damaged: each operation fails loudly and nothing is written.
    run = Run(seed=5, rate=1.0, retries=2)
    run.to_device.kinds = ("bitflip",)
    for _ in range(20):
        run.op()
    assert run.tally["link_errors"] == 20
    assert run.tally["corrupted_writes"] == 0 and run.tally["corrupted_reads"] == 0
    assert run.backend.regs == {} and not any(run.backend.mem)


def test_checker_catches_a_corrupted_write():
    # Negative test: a device that flips a bit of what it writes is caught.
    run = Run(seed=6, rate=0.0)
    real = run.backend.write32
    run.model._write32 = lambda addr, value: real(addr, value ^ 1)
    run.reg_write()
    assert run.tally["corrupted_writes"] == 1


def test_checker_catches_a_corrupted_read():
    run = Run(seed=7, rate=0.0)
    real = run.backend.read_mem
    run.model._read_mem = lambda addr, n: bytes(b ^ 0x40 for b in real(addr, n))
    run.mem_read()
    assert run.tally["corrupted_reads"] == 1


def test_checker_catches_a_write_applied_twice():
    # Negative test: a device without a replay record runs a resent write again.
    run = Run(seed=8, rate=0.0)
    real_feed = run.model.feed

    def feed_and_forget(data):
        out = real_feed(data)
        run.model.record = None
        return out

    run.model.feed = feed_and_forget
    lost = []

    def lose_first_ack(frame):
        lost.append(frame)
        return [frame[:3], None] if len(lost) == 1 else [frame]

    run.to_host.apply = lose_first_ack
    run.reg_write()
    assert run.tally["corrupted_writes"] == 1
