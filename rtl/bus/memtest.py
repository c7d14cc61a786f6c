"""AXI4 memory self-test: write a pattern, read it back, count errors.

For board bring-up (is the DRAM behind the LiteDRAM core alive?) and as a
small always-available AXI4 manager in hardware tests.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .axi import AXI4Signature, Burst, Resp

__all__ = ["AxiMemTest", "AxiMemTestConfig", "memtest_pattern"]


def memtest_pattern(index, data_width):
    """The word :class:`AxiMemTest` writes at word ``index`` (Python model)."""
    value = 0
    for lane in range(data_width // 32):
        value |= ((index * 0x01000193 + lane * 0x3C6EF372 + 0x5A5A1234) & 0xFFFFFFFF) \
            << (32 * lane)
    return value & ((1 << data_width) - 1)


@dataclass(frozen=True)
class AxiMemTestConfig:
    """Parameters of an :class:`AxiMemTest`.

    Parameters
    ----------
    addr_width, data_width, id_width : int
        Of the AXI4 manager port (``data_width`` at least 32).
    words : int
        Words to test, a multiple of ``burst``.
    burst : int
        Beats per burst, a power of two from 1 to 256; ``burst`` words must
        fit in 4 KiB.
    base : int
        First byte address, 4 KiB-aligned.
    """

    addr_width: int = 32
    data_width: int = 32
    id_width: int = 4
    words: int = 4096
    burst: int = 16
    base: int = 0

    def __post_init__(self):
        AXI4Signature(addr_width=self.addr_width, data_width=self.data_width,
                      id_width=self.id_width)
        if self.data_width < 32:
            raise ValueError(f"data_width must be at least 32, not {self.data_width}")
        if self.burst not in [1 << k for k in range(9)] or \
                self.burst * self.data_width // 8 > 4096:
            raise ValueError(f"burst must be a power of two from 1 to 256 whose bytes fit "
                             f"in 4 KiB, not {self.burst!r}")
        if not isinstance(self.words, int) or self.words <= 0 or self.words % self.burst:
            raise ValueError(f"words must be a positive multiple of burst ({self.burst}), "
                             f"not {self.words!r}")
        if self.base % 4096:
            raise ValueError(f"base must be 4 KiB-aligned, not {self.base:#x}")


class AxiMemTest(wiring.Component):
    """Write :func:`memtest_pattern` over ``words`` words, then read and compare.

    One burst at a time: AW and its W beats, wait for B; then AR and its R
    beats. Runs once after reset.

    Parameters
    ----------
    config : AxiMemTestConfig

    Ports
    -----
    axi : Out(AXI4Signature(...))
        Manager port.
    start : In(1)
        Begin (level; the test runs once per reset).
    done : Out(1)
    passed : Out(1)
        ``done`` and no error.
    errors : Out(16)
        Mismatching read words plus non-OKAY responses, saturating.
    """

    def __init__(self, config):
        if not isinstance(config, AxiMemTestConfig):
            raise TypeError(f"config must be an AxiMemTestConfig, not {config!r}")
        self.config = config
        super().__init__({
            "axi": Out(AXI4Signature(addr_width=config.addr_width,
                                     data_width=config.data_width,
                                     id_width=config.id_width)),
            "start": In(1),
            "done": Out(1),
            "passed": Out(1),
            "errors": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        axi = self.axi
        wb = cfg.data_width // 8
        bursts = cfg.words // cfg.burst
        burst_index = Signal(range(bursts + 1))
        beat = Signal(range(cfg.burst + 1))
        word = Signal(range(cfg.words + 1))
        addr = Const(cfg.base, cfg.addr_width) + \
            (burst_index << exact_log2(cfg.burst * wb))

        pattern = Cat(*[(word * 0x01000193 + lane * 0x3C6EF372 + 0x5A5A1234)[:32]
                        for lane in range(cfg.data_width // 32)])

        def bump_errors():
            with m.If(self.errors != 0xFFFF):
                m.d.sync += self.errors.eq(self.errors + 1)

        for ch in (axi.aw, axi.ar):
            m.d.comb += [ch.addr.eq(addr), ch.len.eq(cfg.burst - 1),
                         ch.size.eq(exact_log2(wb)), ch.burst.eq(Burst.INCR),
                         ch.cache.eq(0b0011)]
        m.d.comb += [axi.w.data.eq(pattern), axi.w.strb.eq(-1),
                     axi.w.last.eq(beat == cfg.burst - 1)]

        with m.FSM():
            with m.State("IDLE"), m.If(self.start):
                m.next = "AW"
            with m.State("AW"):
                m.d.comb += axi.aw.valid.eq(1)
                with m.If(axi.aw.ready):
                    m.d.sync += beat.eq(0)
                    m.next = "W"
            with m.State("W"):
                m.d.comb += axi.w.valid.eq(1)
                with m.If(axi.w.ready):
                    m.d.sync += [beat.eq(beat + 1), word.eq(word + 1)]
                    with m.If(beat == cfg.burst - 1):
                        m.next = "B"
            with m.State("B"):
                m.d.comb += axi.b.ready.eq(1)
                with m.If(axi.b.valid):
                    with m.If(axi.b.resp != Resp.OKAY):
                        bump_errors()
                    with m.If(burst_index == bursts - 1):
                        m.d.sync += [burst_index.eq(0), word.eq(0)]
                        m.next = "AR"
                    with m.Else():
                        m.d.sync += burst_index.eq(burst_index + 1)
                        m.next = "AW"
            with m.State("AR"):
                m.d.comb += axi.ar.valid.eq(1)
                with m.If(axi.ar.ready):
                    m.d.sync += beat.eq(0)
                    m.next = "R"
            with m.State("R"):
                m.d.comb += axi.r.ready.eq(1)
                with m.If(axi.r.valid):
                    m.d.sync += [beat.eq(beat + 1), word.eq(word + 1)]
                    with m.If((axi.r.data != pattern) | (axi.r.resp != Resp.OKAY) |
                              (axi.r.last != (beat == cfg.burst - 1))):
                        bump_errors()
                    with m.If(beat == cfg.burst - 1):
                        with m.If(burst_index == bursts - 1):
                            m.next = "DONE"
                        with m.Else():
                            m.d.sync += burst_index.eq(burst_index + 1)
                            m.next = "AR"
            with m.State("DONE"):
                m.d.comb += [self.done.eq(1), self.passed.eq(self.errors == 0)]
        return m
