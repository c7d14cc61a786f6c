# amaranth: UnusedElaboratable=no
"""CRC-16 step, UART PHY and BridgeConfig of the host bridge (amaranth.sim, fast)."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from lpaccel import link
from lpaccel.rtl.bridge import protocol
from lpaccel.rtl.bridge.config import BridgeConfig
from lpaccel.rtl.bridge.crc import crc16, crc16_next, crc16_step
from lpaccel.rtl.bridge.uart import UartRx, UartTx


def crc_reference(data):
    # Independent bitwise CRC-16/CCITT-FALSE, MSB first.
    crc = 0xFFFF
    for byte in data:
        for bit in range(7, -1, -1):
            top = (crc >> 15) ^ (byte >> bit & 1)
            crc = (crc << 1) & 0xFFFF
            if top:
                crc ^= 0x1021
    return crc


def test_crc_check_value():
    assert crc16(b"123456789") == 0x29B1
    assert crc_reference(b"123456789") == 0x29B1
    assert link.crc16(b"123456789") == 0x29B1


def test_crc_python_matches_reference():
    rng = random.Random(1)
    for n in range(40):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert crc16(data) == crc_reference(data) == link.crc16(data)


def test_crc_negative():
    """A checker that would pass anything fails here: one flipped bit changes the CRC."""
    data = bytearray(b"123456789")
    data[3] ^= 0x10
    assert crc16(bytes(data)) != 0x29B1


def test_crc_gateware_step():
    """The combinational step equals the bitwise reference for every byte and random CRCs."""
    crc, byte, out = Signal(16), Signal(8), Signal(16)
    m = Module()
    m.d.comb += out.eq(crc16_next(crc, byte))
    rng = random.Random(2)
    cases = [(rng.randrange(1 << 16), b) for b in range(256)] + [(0xFFFF, ord("1"))]

    async def bench(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(out) == crc16_step(c, b), (hex(c), b)
        # The whole check string through the gateware step.
        value = 0xFFFF
        for b in b"123456789":
            ctx.set(crc, value)
            ctx.set(byte, b)
            value = ctx.get(out)
        assert value == 0x29B1

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_crc_next_refuses_widths():
    with pytest.raises(ValueError, match=r"16-bit CRC and an 8-bit byte, not 8 and 8 bits"):
        crc16_next(Signal(8), Signal(8))


def test_protocol_constants_agree_with_host_library():
    assert protocol.REQ_SOF == link.REQ_SOF
    assert protocol.RSP_SOF == link.RSP_SOF
    assert protocol.MAX_WORDS == link.MAX_WORDS
    assert protocol.LINK_MAGIC == link.LINK_MAGIC
    assert protocol.PROTOCOL_VERSION == link.PROTOCOL_VERSION
    assert {c.name: c.value for c in protocol.Cmd} == {c.name: c.value for c in link.Cmd}
    assert {s.name: s.value for s in protocol.Status} == {s.name: s.value for s in link.Status}


# --- BridgeConfig -------------------------------------------------------------------------

def test_config_divisor():
    assert BridgeConfig(clk_hz=48_000_000, baud=3_000_000).divisor == 16
    assert BridgeConfig(clk_hz=8_000_000, baud=1_000_000).divisor == 8
    # 1.5 % off is accepted (25 MHz / 115200 = 217.01).
    assert BridgeConfig(clk_hz=25_000_000, baud=115_200).divisor == 217
    cfg = BridgeConfig(clk_hz=8_000_000, baud=1_000_000, timeout_cycles=2000)
    assert BridgeConfig.from_dict(cfg.to_dict()) == cfg


def test_config_errors():
    with pytest.raises(ValueError, match=r"baud 2200000 at clk_hz 10000000: the nearest integer "
                                         r"divisor 5 gives 2000000 baud, 9.1 % off"):
        BridgeConfig(clk_hz=10_000_000, baud=2_200_000)
    with pytest.raises(ValueError, match=r"at least 4 clock cycles per bit"):
        BridgeConfig(clk_hz=10_000_000, baud=3_000_000)
    with pytest.raises(ValueError, match=r"timeout_cycles must be an integer from 16"):
        BridgeConfig(timeout_cycles=3)
    with pytest.raises(ValueError, match=r"max_words must be 256"):
        BridgeConfig(max_words=128)
    with pytest.raises(ValueError, match=r"rx_fifo_depth must be a power of two, not 100"):
        BridgeConfig(rx_fifo_depth=100)


# --- UART -----------------------------------------------------------------------------------

def uart_bits(byte, divisor, stop=1):
    """Line levels, one per cycle, of one 8N1 frame."""
    levels = [0] + [byte >> k & 1 for k in range(8)] + [stop]
    return [v for v in levels for _ in range(divisor)]


@pytest.mark.parametrize("divisor", [4, 5, 7, 8, 11, 16])
def test_uart_loopback(divisor):
    """UartTx -> UartRx at the same divisor: random bytes arrive in order, with random
    back-pressure on the transmitter's input and idle time on the receiver's output."""
    m = Module()
    m.submodules.tx = tx = UartTx(divisor)
    m.submodules.rx = rx = UartRx(divisor, fifo_depth=4)
    m.d.comb += rx.rx.eq(tx.tx)
    rng = random.Random(divisor)
    data = [rng.randrange(256) for _ in range(24)]
    got = []

    async def source(ctx):
        for b in data:
            ctx.set(tx.bytes.payload, b)
            ctx.set(tx.bytes.valid, 1)
            await ctx.tick().until(tx.bytes.ready)
            ctx.set(tx.bytes.valid, 0)
            for _ in range(rng.randrange(3) * divisor):
                await ctx.tick()

    async def sink(ctx):
        while len(got) < len(data):
            ctx.set(rx.bytes.ready, rng.random() < 0.5)
            valid, payload = ctx.get(rx.bytes.valid), ctx.get(rx.bytes.payload)
            ready = ctx.get(rx.bytes.ready)
            await ctx.tick()
            if valid and ready:
                got.append(payload)
            assert not ctx.get(rx.overrun)
            assert not ctx.get(rx.framing_error)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run_until(1e-6 * (len(data) * 13 * divisor + 1000))
    assert got == data


def _drive_rx(levels_list, divisor, fifo_depth=2, read=True):
    """Feed line levels into a UartRx; return (bytes read, overruns, framing errors)."""
    m = Module()
    m.submodules.rx = rx = UartRx(divisor, fifo_depth=fifo_depth)
    result = {"bytes": [], "overrun": 0, "framing": 0}

    async def bench(ctx):
        ctx.set(rx.bytes.ready, int(read))
        for level in levels_list + [1] * (4 * divisor):
            ctx.set(rx.rx, level)
            valid, payload = ctx.get(rx.bytes.valid), ctx.get(rx.bytes.payload)
            result["overrun"] += ctx.get(rx.overrun)
            result["framing"] += ctx.get(rx.framing_error)
            await ctx.tick()
            if valid and read:
                result["bytes"].append(payload)
        assert ctx.get(rx.framing_errors) == result["framing"]

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return result


def test_uart_rx_framing_error():
    """A low stop bit drops the byte and counts it; the next good byte still arrives. A
    glitch shorter than half a bit is not a start bit."""
    d = 8
    levels = [1] * 5 + uart_bits(0x5A, d, stop=0) + [0] * (3 * d) + [1] * 5
    levels += [0] * 2 + [1] * 20          # glitch
    levels += uart_bits(0xC3, d) + [1] * 3
    r = _drive_rx(levels, d)
    assert r["framing"] == 1
    assert r["bytes"] == [0xC3]


def test_uart_rx_overrun():
    """Nobody reads: the FIFO (2 bytes) fills and every further byte is an overrun."""
    d = 6
    levels = []
    for b in range(5):
        levels += uart_bits(b, d) + [1] * 2
    r = _drive_rx(levels, d, fifo_depth=2, read=False)
    assert r["overrun"] == 3
    assert r["framing"] == 0


def test_uart_rx_negative_wrong_divisor():
    """Sampling at the wrong rate garbles bytes: the loopback check can fail."""
    levels = []
    for b in (0x0F, 0xF0, 0x33):
        levels += uart_bits(b, 12) + [1] * 12
    r = _drive_rx(levels, 6)
    assert r["bytes"] != [0x0F, 0xF0, 0x33]


def test_uart_refuses_small_divisor():
    with pytest.raises(ValueError, match=r"divisor must be an integer from 4"):
        UartRx(3)
    with pytest.raises(ValueError, match=r"divisor must be an integer from 4"):
        UartTx(2)
