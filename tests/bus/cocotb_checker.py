"""cocotb: the AXI4 protocol checker against hand-made sequences.

Top: ``AxiProbe``, whose AXI port ``x`` is all inputs, so the test drives
both sides of the bus cycle by cycle, including sequences no correct
manager or subordinate would produce. Each negative test commits one
violation and asserts the checker names it; ``good_sequence`` shows a
correct exchange with stalls passes clean.
"""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from lpaccel.sim.infra.axi_checker import AxiProtocolChecker

CHANNELS = {
    "aw": ("id", "addr", "len", "size", "burst"),
    "w": ("data", "strb", "last"),
    "b": ("id", "resp"),
    "ar": ("id", "addr", "len", "size", "burst"),
    "r": ("id", "data", "resp", "last"),
}


class Probe:
    """Drive the probe's flat port one cycle at a time."""

    def __init__(self, dut, raise_on_error=False):
        self.dut = dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        for ch, fields in CHANNELS.items():
            for name in ("valid", "ready") + fields:
                getattr(dut, f"x_{ch}{name}").value = 0
        self.checker = AxiProtocolChecker(dut.clk, dut, "x", raise_on_error=raise_on_error)

    async def cycle(self, **channels):
        """One clock cycle; ``channels`` maps a channel to (valid, ready, fields).

        Channels not named are idle (valid and ready low).
        """
        await RisingEdge(self.dut.clk)
        for ch in CHANNELS:
            valid, ready, values = channels.get(ch, (0, 0, {}))
            getattr(self.dut, f"x_{ch}valid").value = valid
            getattr(self.dut, f"x_{ch}ready").value = ready
            for name, value in values.items():
                getattr(self.dut, f"x_{ch}{name}").value = value

    async def finish(self):
        await self.cycle()
        await ClockCycles(self.dut.clk, 2)

    def expect(self, rule, fragment=""):
        hits = [e for e in self.checker.errors if f"[{rule}]" in e and fragment in e]
        assert hits, (f"checker did not report [{rule}] {fragment!r}; "
                      f"it reported {self.checker.errors}")


def aw(addr=0x100, length=0, ident=1, size=3):
    return {"id": ident, "addr": addr, "len": length, "size": size, "burst": 1}


ar = aw


def w(last, data=0x1234):
    return {"data": data, "strb": 0xFF, "last": last}


def r(last, ident=1, data=0x55):
    return {"id": ident, "data": data, "resp": 0, "last": last}


@cocotb.test()
async def good_sequence(dut):
    """Write of 2 beats (W before AW, stalls), read of 3 beats: no violation."""
    p = Probe(dut)
    await p.cycle(w=(1, 0, w(0)))                         # stalled W, held
    await p.cycle(w=(1, 1, w(0)))
    await p.cycle(w=(1, 1, w(1)), aw=(1, 0, aw(length=1)))
    await p.cycle(aw=(1, 1, aw(length=1)), ar=(1, 1, ar(length=2, ident=2)))
    await p.cycle(b=(1, 0, {"id": 1, "resp": 0}))
    await p.cycle(b=(1, 1, {"id": 1, "resp": 0}), r=(1, 1, r(0, ident=2)))
    await p.cycle(r=(1, 0, r(0, ident=2, data=7)))
    await p.cycle(r=(1, 1, r(0, ident=2, data=7)))
    await p.cycle(r=(1, 1, r(1, ident=2)))
    await p.finish()
    assert not p.checker.errors, p.checker.errors
    p.checker.check_idle()
    assert p.checker.beats == {"aw": 1, "w": 2, "b": 1, "ar": 1, "r": 3}, p.checker.beats


@cocotb.test()
async def catches_valid_drop(dut):
    p = Probe(dut)
    await p.cycle(aw=(1, 0, aw()))
    await p.cycle()
    await p.finish()
    p.expect("stable", "AWVALID fell")


@cocotb.test()
async def catches_payload_change(dut):
    p = Probe(dut)
    await p.cycle(ar=(1, 0, ar(addr=0x100)))
    await p.cycle(ar=(1, 1, ar(addr=0x140)))
    await p.finish()
    p.expect("stable", "araddr")


@cocotb.test()
async def catches_w_payload_change(dut):
    p = Probe(dut)
    await p.cycle(w=(1, 0, w(1, data=1)))
    await p.cycle(w=(1, 1, w(1, data=2)))
    await p.finish()
    p.expect("stable", "wdata")


@cocotb.test()
async def catches_4k_crossing(dut):
    p = Probe(dut)
    await p.cycle(aw=(1, 1, aw(addr=0x1FF8, length=1)))      # beats at 0x1FF8, 0x2000
    await p.cycle(ar=(1, 1, ar(addr=0x0F00, length=31)))     # last beat at 0x0FF8: fine
    await p.cycle(ar=(1, 1, ar(addr=0x0F00, length=32)))     # last beat at 0x1000
    await p.finish()
    p.expect("4k", "AW INCR burst addr=0x1ff8")
    p.expect("4k", "AR INCR burst addr=0xf00 len=32")
    assert len([e for e in p.checker.errors if "[4k]" in e]) == 2, p.checker.errors


@cocotb.test()
async def catches_short_w_burst(dut):
    p = Probe(dut)
    await p.cycle(aw=(1, 1, aw(length=3)))
    await p.cycle(w=(1, 1, w(0)))
    await p.cycle(w=(1, 1, w(1)))
    await p.finish()
    p.expect("wlen", "had 2 W beats, AWLEN=3")


@cocotb.test()
async def catches_missing_wlast(dut):
    p = Probe(dut)
    await p.cycle(aw=(1, 1, aw(length=1)))
    await p.cycle(w=(1, 1, w(0)))
    await p.cycle(w=(1, 1, w(0)))
    await p.cycle(w=(1, 1, w(1)))
    await p.finish()
    p.expect("wlen", "WLAST missing on beat 2")


@cocotb.test()
async def catches_long_w_before_aw(dut):
    p = Probe(dut)
    for _ in range(3):
        await p.cycle(w=(1, 1, w(0)))
    await p.cycle(aw=(1, 1, aw(length=1)))
    await p.finish()
    p.expect("wlen", "already has 3 beats")


@cocotb.test()
async def catches_b_without_request(dut):
    p = Probe(dut)
    await p.cycle(b=(1, 1, {"id": 3, "resp": 0}))
    await p.finish()
    p.expect("b", "without an outstanding write")


@cocotb.test()
async def catches_b_before_last_w(dut):
    p = Probe(dut)
    await p.cycle(aw=(1, 1, aw(length=1, ident=2)))
    await p.cycle(w=(1, 1, w(0)))
    await p.cycle(b=(1, 1, {"id": 2, "resp": 0}))
    await p.finish()
    p.expect("b", "before the last W beat")


@cocotb.test()
async def catches_b_with_wrong_id(dut):
    p = Probe(dut)
    await p.cycle(aw=(1, 1, aw(length=0, ident=2)))
    await p.cycle(w=(1, 1, w(1)))
    await p.cycle(b=(1, 1, {"id": 1, "resp": 0}))
    await p.finish()
    p.expect("b", "B id=0x1 without an outstanding write")


@cocotb.test()
async def catches_r_without_request(dut):
    p = Probe(dut)
    await p.cycle(r=(1, 1, r(1)))
    await p.finish()
    p.expect("r", "without an outstanding read")


@cocotb.test()
async def catches_early_rlast(dut):
    p = Probe(dut)
    await p.cycle(ar=(1, 1, ar(length=2)))
    await p.cycle(r=(1, 1, r(0)))
    await p.cycle(r=(1, 1, r(1)))
    await p.finish()
    p.expect("r", "RLAST on beat 2")


@cocotb.test()
async def catches_missing_rlast(dut):
    p = Probe(dut)
    await p.cycle(ar=(1, 1, ar(length=1)))
    await p.cycle(r=(1, 1, r(0)))
    await p.cycle(r=(1, 1, r(0)))
    await p.finish()
    p.expect("r", "RLAST missing on beat 2")


@cocotb.test()
async def catches_leftovers(dut):
    """check_idle() reports a read still waiting for data."""
    p = Probe(dut)
    await p.cycle(ar=(1, 1, ar(length=1)))
    await p.cycle(r=(1, 1, r(0)))
    await p.finish()
    assert not p.checker.errors
    try:
        p.checker.check_idle()
    except AssertionError as error:
        assert "[idle]" in str(error) and "reads_awaiting_r" in str(error), error
    else:
        raise AssertionError("check_idle() accepted an unfinished read")


@cocotb.test()
async def fails_on_violation(dut):
    """With raise_on_error (the default) a violation fails the test itself."""
    p = Probe(dut, raise_on_error=True)
    await p.cycle(r=(1, 1, r(1)))
    await p.finish()
