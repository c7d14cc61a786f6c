# amaranth: UnusedElaboratable=no
"""amaranth.sim tests of :class:`lpaccel.rtl.stream.WidthConverter`.

Every gather and split ratio the GEMV engine uses runs under {no stall,
periodic pause, seeded random pause} on both ports; the bits out must be the
bits in, in order, nothing lost or duplicated, the stream rules must hold on
``output``, and the converter must be empty at the end. Throughput and
latency are checked on an unstalled stream (the engine's cycle counts rest
on them), and ``flush`` on its own.
"""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from lpaccel.rtl.stream import WidthConverter

RATIOS = [(64, 128), (64, 512), (128, 512), (128, 64), (512, 64), (512, 128), (128, 128)]
PAUSES = ["none", "periodic", "random"]


def pauser(mode, seed):
    """A function of the cycle number: True when the port should pause."""
    rng = random.Random(seed)
    if mode == "none":
        return lambda cycle: False
    if mode == "periodic":
        return lambda cycle: cycle % 5 in (1, 2)
    return lambda cycle: rng.random() < 0.4


def run(dut, words, idle, backpressure, flush_at=(), max_cycles=20000):
    """Offer ``words`` on ``input``, collect beats from ``output``.

    ``flush_at`` holds the indices of output beats sent with ``flush`` high.
    Returns ``(beats, trace)``; ``trace`` lists per cycle
    ``(in_transfer, out_transfer)``.
    """
    beats, trace = [], []

    async def testbench(ctx):
        pending = list(words)
        offered = None            # (valid, payload) held until transfer
        shown = None              # output beat shown and not yet taken
        for cycle in range(max_cycles):
            if offered is None and pending and not idle(cycle):
                offered = pending.pop(0)
            ctx.set(dut.input.valid, offered is not None)
            ctx.set(dut.input.payload, offered if offered is not None else 0)
            ready = not backpressure(cycle)
            ctx.set(dut.output.ready, ready)
            ctx.set(dut.flush, len(beats) in flush_at)
            o_valid, o_payload = ctx.get(dut.output.valid), ctx.get(dut.output.payload)
            if shown is not None:
                # Stream rules: valid and payload hold until the transfer.
                assert o_valid and o_payload == shown, f"output changed before transfer " \
                    f"at cycle {cycle}"
            shown = o_payload if o_valid else None
            in_xfer = offered is not None and ctx.get(dut.input.ready)
            out_xfer = o_valid and ready
            if out_xfer:
                beats.append(o_payload)
                shown = None
            if in_xfer:
                offered = None
            trace.append((bool(in_xfer), bool(out_xfer)))
            await ctx.tick()
            if not pending and offered is None and not ctx.get(dut.output.valid) and \
                    cycle > 4 and not any(in_x or out_x for in_x, out_x in trace[-4:]):
                break
        # Empty at the end: nothing shown, nothing left to show.
        for _ in range(4):
            ctx.set(dut.output.ready, 1)
            assert not ctx.get(dut.output.valid), "converter not empty at the end"
            await ctx.tick()

    # At equal widths the converter is wires only: give the simulation a clock.
    top = Module()
    top.submodules.dut = dut
    top.d.sync += Signal(name="tick").eq(1)
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return beats, trace


def bits_of(values, width):
    return sum(v << (k * width) for k, v in enumerate(values))


@pytest.mark.parametrize("in_bits,out_bits", RATIOS)
@pytest.mark.parametrize("idle_mode", PAUSES)
@pytest.mark.parametrize("bp_mode", PAUSES)
def test_nothing_lost_or_duplicated(in_bits, out_bits, idle_mode, bp_mode):
    rng = random.Random(in_bits * 7 + out_bits)
    total = 24 * max(in_bits, out_bits)                  # whole words and beats
    words = [rng.getrandbits(in_bits) for _ in range(total // in_bits)]
    dut = WidthConverter(in_bits, out_bits)
    beats, _ = run(dut, words, pauser(idle_mode, 1), pauser(bp_mode, 2))
    assert len(beats) == total // out_bits
    assert bits_of(beats, out_bits) == bits_of(words, in_bits)


@pytest.mark.parametrize("in_bits,out_bits", RATIOS)
def test_timing_unstalled(in_bits, out_bits):
    """Gather: a beat per ``ratio`` words; split: a beat per cycle; latency 1 (0 if equal)."""
    rng = random.Random(3)
    words = [rng.getrandbits(in_bits) for _ in range(16 * max(1, out_bits // in_bits))]
    dut = WidthConverter(in_bits, out_bits)
    _, trace = run(dut, words, pauser("none", 0), pauser("none", 0))
    ins = [c for c, (i, _) in enumerate(trace) if i]
    outs = [c for c, (_, o) in enumerate(trace) if o]
    latency = 0 if in_bits == out_bits else 1
    if in_bits <= out_bits:
        ratio = out_bits // in_bits
        assert ins == list(range(len(words)))            # one word per cycle, never refused
        assert outs == [ins[ratio * k + ratio - 1] + latency for k in range(len(outs))]
    else:
        ratio = in_bits // out_bits
        assert outs == list(range(latency, latency + len(outs)))   # one beat per cycle
        assert ins[0] == 0 and all(b - a == ratio for a, b in zip(ins, ins[1:]))


@pytest.mark.parametrize("in_bits,out_bits", [(512, 64), (256, 128), (128, 128), (64, 256)])
@pytest.mark.parametrize("bp_mode", PAUSES)
def test_flush_drops_rest_of_word(in_bits, out_bits, bp_mode):
    """A beat sent with ``flush`` ends its word (splitting); otherwise no effect."""
    rng = random.Random(5)
    words = [rng.getrandbits(in_bits) for _ in range(8)]
    dut = WidthConverter(in_bits, out_bits)
    flush_at = {1, 4}                                   # output beat indices
    beats, _ = run(dut, words, pauser("random", 9), pauser(bp_mode, 8), flush_at=flush_at)
    if in_bits > out_bits:
        ratio = in_bits // out_bits
        expected = []
        for word in words:
            for k in range(ratio):
                expected.append((word >> (k * out_bits)) & ((1 << out_bits) - 1))
                if len(expected) - 1 in flush_at:
                    break
        assert beats == expected
    else:
        assert bits_of(beats, out_bits) == bits_of(words, in_bits)


def test_rejects_bad_widths():
    with pytest.raises(ValueError, match="power of two apart"):
        WidthConverter(64, 192)
    with pytest.raises(ValueError, match="in_bits must be"):
        WidthConverter(0, 64)
