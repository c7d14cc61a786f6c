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


class LiteView:
    """The probe seen as an AXI4-Lite port: no ID, AxLEN, AxSIZE, AxBURST,
    WLAST or RLAST (the checker finds only what an AXI4-Lite port has)."""

    HIDDEN = {"id", "len", "size", "burst", "last"}

    def __init__(self, dut):
        self._dut = dut
        self._name = dut._name

    def __getattr__(self, name):
        rest = name.removeprefix("x_")
        for ch in ("aw", "ar", "w", "b", "r"):
            if rest.startswith(ch) and rest[len(ch):] in self.HIDDEN:
                raise AttributeError(name)
        return getattr(self._dut, name)


class Probe:
    """Drive the probe's flat port one cycle at a time."""

    def __init__(self, dut, raise_on_error=False, reset=False, lite=False):
        self.dut = dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        dut.rst.value = 0
        for ch, fields in CHANNELS.items():
            for name in ("valid", "ready") + fields:
                getattr(dut, f"x_{ch}{name}").value = 0
        self.checker = AxiProtocolChecker(dut.clk, LiteView(dut) if lite else dut, "x",
                                          raise_on_error=raise_on_error,
                                          reset=dut.rst if reset else None)

    async def cycle(self, rst=0, **channels):
        """One clock cycle; ``channels`` maps a channel to (valid, ready, fields).

        Channels not named are idle (valid and ready low); ``rst`` drives the
        reset for the cycle.
        """
        await RisingEdge(self.dut.clk)
        self.dut.rst.value = rst
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
        others = [e for e in self.checker.errors if f"[{rule}]" not in e]
        assert not others, f"checker reported other rules beside [{rule}]: {others}"

    def expect_count(self, rule, count):
        hits = [e for e in self.checker.errors if f"[{rule}]" in e]
        assert len(hits) == count == len(self.checker.errors), (
            f"expected exactly {count} [{rule}] violation(s), got {self.checker.errors}")


def aw(addr=0x100, length=0, ident=1, size=3, burst=1):
    return {"id": ident, "addr": addr, "len": length, "size": size, "burst": burst}


ar = aw


def w(last, data=0x1234, strb=0xFF):
    return {"data": data, "strb": strb, "last": last}


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
async def catches_valid_drop_every_channel(dut):
    """VALID falls without a transfer on each of the five channels in turn."""
    p = Probe(dut)
    stalled = {"aw": aw(), "w": w(1), "b": {"id": 1, "resp": 0}, "ar": ar(), "r": r(1)}
    for ch, payload in stalled.items():
        await p.cycle(**{ch: (1, 0, payload)})
        await p.cycle(**{ch: (1, 0, payload)})
        await p.cycle()
    await p.finish()
    p.expect_count("stable", 5)
    for ch in stalled:
        p.expect("stable", f"{ch.upper()}VALID fell")


@cocotb.test()
async def catches_b_payload_change(dut):
    p = Probe(dut)
    await p.cycle(aw=(1, 1, aw()), w=(1, 1, w(1)))
    await p.cycle(b=(1, 0, {"id": 1, "resp": 0}))
    await p.cycle(b=(1, 1, {"id": 1, "resp": 2}))     # SLVERR appears under the stall
    await p.finish()
    p.expect_count("stable", 1)
    p.expect("stable", "bresp")


@cocotb.test()
async def catches_r_payload_change(dut):
    p = Probe(dut)
    await p.cycle(ar=(1, 1, ar(length=1)))
    await p.cycle(r=(1, 0, r(0, data=1)))
    await p.cycle(r=(1, 1, r(0, data=2)))
    await p.cycle(r=(1, 1, r(1)))
    await p.finish()
    p.expect_count("stable", 1)
    p.expect("stable", "rdata")
    assert p.checker.outstanding()["reads_awaiting_r"] == 0


@cocotb.test()
async def catches_size_above_bus(dut):
    """AxSIZE=3 (8 bytes) is the 64-bit bus; AxSIZE=4 is not."""
    p = Probe(dut)
    await p.cycle(ar=(1, 1, ar(size=3)))
    await p.cycle(ar=(1, 1, ar(size=4, addr=0x200)), aw=(1, 1, aw(size=5)))
    await p.finish()
    p.expect_count("size", 2)
    p.expect("size", "AR addr=0x200 len=0 size=16: 16 bytes per beat on a 8-byte bus")
    p.expect("size", "AW addr=0x100 len=0 size=32")


@cocotb.test()
async def catches_bad_burst_types(dut):
    p = Probe(dut)
    # Legal: WRAP of 2, 4, 8, 16 beats at an aligned address, FIXED of 16.
    for length in (1, 3, 7, 15):
        await p.cycle(ar=(1, 1, ar(addr=0x108, length=length, burst=2)))
    await p.cycle(ar=(1, 1, ar(addr=0x104, length=3, size=2, burst=2)))
    await p.cycle(ar=(1, 1, ar(length=15, burst=0)))
    assert not p.checker.errors, p.checker.errors
    # Illegal: reserved type, WRAP of 3 beats, unaligned WRAP, FIXED of 17.
    await p.cycle(aw=(1, 1, aw(burst=3)))
    await p.cycle(ar=(1, 1, ar(length=2, burst=2, addr=0x300)))
    await p.cycle(ar=(1, 1, ar(length=3, burst=2, addr=0x404)))
    await p.cycle(aw=(1, 1, aw(length=16, burst=0, addr=0x500)))
    await p.finish()
    p.expect_count("burst", 4)
    p.expect("burst", "AWBURST=3 is reserved")
    p.expect("burst", "addr=0x300 len=2 size=8: a WRAP burst has 2, 4, 8 or 16 beats, not 3")
    p.expect("burst", "addr=0x404 len=3 size=8: a WRAP burst's address must be aligned")
    p.expect("burst", "addr=0x500 len=16 size=8: a FIXED burst has at most 16 beats, not 17")


@cocotb.test()
async def catches_strobe_outside_beat(dut):
    p = Probe(dut)
    # Legal: a narrow INCR (2-byte beats from 0x102), an unaligned full-width
    # INCR (from 0x103), a narrow WRAP (4-byte beats from 0x108, wrapping at
    # 0x110 back to 0x100) and a FIXED narrow burst, strobing exactly the
    # addressed lanes; then the same with W ahead of its AW.
    legal = [
        (aw(addr=0x102, size=1, length=2), [0x0C, 0x30, 0xC0]),
        (aw(addr=0x103, size=3, length=1), [0xF8, 0xFF]),
        (aw(addr=0x108, size=2, length=3, burst=2), [0x0F, 0xF0, 0x0F, 0xF0]),
        (aw(addr=0x106, size=1, length=1, burst=0), [0xC0, 0xC0]),
        (aw(addr=0x105, size=0, length=0), [0x20]),
    ]
    for request, strobes in legal:
        await p.cycle(aw=(1, 1, request))
        for k, strb in enumerate(strobes):
            await p.cycle(w=(1, 1, w(int(k == len(strobes) - 1), strb=strb)))
        await p.cycle(b=(1, 1, {"id": 1, "resp": 0}))
    for request, strobes in legal:
        for k, strb in enumerate(strobes):
            await p.cycle(w=(1, 1, w(int(k == len(strobes) - 1), strb=strb)))
        await p.cycle(aw=(1, 1, request))
        await p.cycle(b=(1, 1, {"id": 1, "resp": 0}))
    assert not p.checker.errors, p.checker.errors
    # Illegal: lane 2 strobed on the first beat of the burst from 0x103; and
    # lanes 0-1 strobed for a 2-byte beat at 0x104, W ahead of its AW.
    await p.cycle(aw=(1, 1, aw(addr=0x103, size=3, length=1)))
    await p.cycle(w=(1, 1, w(0, strb=0xFC)))
    await p.cycle(w=(1, 1, w(1, strb=0xFF)))
    await p.cycle(w=(1, 1, w(1, strb=0x03)))
    await p.cycle(aw=(1, 1, aw(addr=0x104, size=1)))
    await p.finish()
    p.expect_count("strb", 2)
    p.expect("strb", "W beat 0 of the burst addr=0x103 len=1 size=8 burst=1 has WSTRB=0xfc, "
                     "outside the addressed byte lanes 0xf8")
    p.expect("strb", "addr=0x104 len=0 size=2 burst=1 has WSTRB=0x3, outside the addressed "
                     "byte lanes 0x30")


@cocotb.test()
async def catches_valid_in_reset(dut):
    p = Probe(dut, reset=True)
    await p.cycle(rst=1)
    await p.cycle(rst=1, aw=(1, 0, aw()), r=(1, 0, r(1)))
    await p.cycle(rst=1)
    await p.cycle(ar=(1, 1, ar()))              # the first cycle out of reset: legal
    await p.cycle(r=(1, 1, r(1)))
    await p.finish()
    p.expect_count("reset", 1)
    p.expect("reset", "AWVALID, RVALID high while the reset is asserted")
    assert p.checker.outstanding()["reads_awaiting_r"] == 0


@cocotb.test()
async def reset_clears_outstanding(dut):
    """A reset forgets what was in flight: idle after it, and a late response
    to a request made before it is a violation."""
    p = Probe(dut, reset=True)
    await p.cycle(ar=(1, 1, ar(length=3)))
    await p.cycle(aw=(1, 1, aw(length=1)), w=(1, 1, w(0)))
    await p.cycle(rst=1)
    await p.cycle()
    await p.finish()
    p.checker.check_idle()                      # nothing outstanding, nothing wrong
    await p.cycle(r=(1, 1, r(1)))
    await p.finish()
    p.expect_count("r", 1)
    p.expect("r", "R beat id=0x1 without an outstanding read")


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


def idle_error(checker):
    try:
        checker.check_idle()
    except AssertionError as error:
        return str(error)
    raise AssertionError("check_idle() accepted a port that is not idle and clean")


@cocotb.test()
async def catches_leftovers(dut):
    """check_idle() reports each kind of unfinished transaction, and a
    recorded violation even when nothing is outstanding."""
    p = Probe(dut)
    await p.cycle(ar=(1, 1, ar(length=1)))
    await p.cycle(r=(1, 1, r(0)))
    await p.finish()
    assert not p.checker.errors
    error = idle_error(p.checker)
    assert "[idle]" in error and "{'reads_awaiting_r': 1}" in error, error
    await p.cycle(r=(1, 1, r(1)))
    await p.cycle(aw=(1, 1, aw(addr=0x200)))
    await p.finish()
    error = idle_error(p.checker)
    assert "{'aw_without_w': 1}" in error, error
    await p.cycle(w=(1, 1, w(1)))
    await p.finish()
    error = idle_error(p.checker)
    assert "{'writes_awaiting_b': 1}" in error, error
    await p.cycle(b=(1, 1, {"id": 1, "resp": 0}), w=(1, 1, w(0)))
    await p.finish()
    error = idle_error(p.checker)
    assert "{'w_without_aw': 1}" in error, error
    await p.cycle(w=(1, 1, w(1)))
    await p.cycle(aw=(1, 1, aw(length=1)))
    await p.cycle(b=(1, 1, {"id": 1, "resp": 0}))
    await p.finish()
    p.checker.check_idle()                      # all finished: idle and clean
    await p.cycle(b=(1, 1, {"id": 1, "resp": 0}))
    await p.finish()
    assert not any(p.checker.outstanding().values())
    error = idle_error(p.checker)
    assert "1 protocol violation(s), first:" in error and "[b]" in error, error


@cocotb.test()
async def lite_good_sequence(dut):
    """AXI4-Lite: W before AW, stalls, a partial strobe at an unaligned
    address (the subordinate's business, not the protocol's), reads."""
    p = Probe(dut, lite=True)
    assert p.checker.lite
    await p.cycle(w=(1, 0, w(0, strb=0x01)))
    await p.cycle(w=(1, 1, w(0, strb=0x01)), aw=(1, 0, aw(addr=0x103)))
    await p.cycle(aw=(1, 1, aw(addr=0x103)), ar=(1, 1, ar()))
    await p.cycle(b=(1, 0, {"resp": 2}), r=(1, 1, r(0)))
    await p.cycle(b=(1, 1, {"resp": 2}), aw=(1, 1, aw()), w=(1, 1, w(0)))
    await p.cycle(b=(1, 1, {"resp": 0}))
    await p.finish()
    assert not p.checker.errors, p.checker.errors
    p.checker.check_idle()
    assert p.checker.beats == {"aw": 2, "w": 2, "b": 2, "ar": 1, "r": 1}, p.checker.beats
    assert p.checker.error_responses == {"b": 1, "r": 0}


@cocotb.test()
async def lite_catches_b_before_w(dut):
    p = Probe(dut, lite=True)
    await p.cycle(aw=(1, 1, aw()))
    await p.cycle(b=(1, 1, {"resp": 0}))
    await p.finish()
    p.expect_count("b", 1)
    p.expect("b", "B id=0x0 before the last W beat")


@cocotb.test()
async def lite_catches_r_without_request(dut):
    p = Probe(dut, lite=True)
    await p.cycle(ar=(1, 1, ar()))
    await p.cycle(r=(1, 1, r(0)))
    await p.cycle(r=(1, 1, r(0)))
    await p.finish()
    p.expect_count("r", 1)
    p.expect("r", "R beat id=0x0 without an outstanding read")


@cocotb.test()
async def lite_catches_unstable_and_reset(dut):
    p = Probe(dut, lite=True, reset=True)
    await p.cycle(rst=1, ar=(1, 0, ar()))
    await p.cycle(ar=(1, 1, ar()))
    await p.cycle(r=(1, 0, r(0, data=1)))
    await p.cycle(r=(1, 1, r(0, data=2)))
    await p.finish()
    assert [e.split("[")[1].split("]")[0] for e in p.checker.errors] == ["reset", "stable"], \
        p.checker.errors
    assert "rdata" in p.checker.errors[1]
    p.checker.errors.clear()
    p.checker.check_idle()


@cocotb.test()
async def fails_on_violation(dut):
    """With raise_on_error (the default) a violation fails the test itself."""
    p = Probe(dut, raise_on_error=True)
    await p.cycle(r=(1, 1, r(1)))
    await p.finish()
