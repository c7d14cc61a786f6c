"""Configuration of the host bridge and its UART PHY."""

from dataclasses import dataclass

from ..utils import check_int
from .protocol import MAX_WORDS

__all__ = ["BridgeConfig", "MAX_BAUD_ERROR"]

#: Largest relative baud-rate error :class:`BridgeConfig` accepts (8N1 tolerates
#: about 5 % between both ends; each end may use half of it).
MAX_BAUD_ERROR = 0.02


@dataclass(frozen=True)
class BridgeConfig:
    """Parameters of :class:`~lpaccel.rtl.bridge.bridge.HostBridge` and its UART.

    Parameters
    ----------
    clk_hz : int
        Clock frequency of the bridge in Hz.
    baud : int
        UART line rate in bit/s; ``clk_hz / baud`` is rounded to the integer
        :attr:`divisor` (at least 4 clock cycles per bit), and a rate that
        rounding misses by more than 2 % is refused.
    timeout_cycles : int
        Inter-byte timeout of the request parser in clock cycles: a partial
        request whose next byte does not come within this many cycles is
        dropped (a resync). About 1 ms on a board; small in simulation.
    max_words : int
        Words per frame; the protocol fixes 256 (``COUNT`` is 8 bits).
    rx_fifo_depth : int
        Bytes of the UART receive FIFO (a power of two, 16 to 4096); the
        default holds a whole maximum request (1034 bytes).

    Raises
    ------
    ValueError
        If a value is out of range or the baud rate cannot be met within 2 %.
    """

    clk_hz: int = 48_000_000
    baud: int = 3_000_000
    timeout_cycles: int = 50_000
    max_words: int = MAX_WORDS
    rx_fifo_depth: int = 2048

    def __post_init__(self):
        check_int("clk_hz", self.clk_hz, 1, 10**10)
        check_int("baud", self.baud, 1, self.clk_hz)
        check_int("timeout_cycles", self.timeout_cycles, 16, (1 << 32) - 1)
        if self.max_words != MAX_WORDS:
            raise ValueError(f"max_words must be {MAX_WORDS} (docs/link.md fixes the frame "
                             f"size: COUNT is 8 bits), not {self.max_words!r}")
        check_int("rx_fifo_depth", self.rx_fifo_depth, 16, 4096)
        if self.rx_fifo_depth & (self.rx_fifo_depth - 1):
            raise ValueError(f"rx_fifo_depth must be a power of two, not {self.rx_fifo_depth}")
        divisor = round(self.clk_hz / self.baud)
        if divisor < 4:
            raise ValueError(f"baud {self.baud} is too fast for clk_hz {self.clk_hz}: the UART "
                             f"needs at least 4 clock cycles per bit (divisor "
                             f"{self.clk_hz / self.baud:.2f}); lower baud to at most "
                             f"{self.clk_hz // 4}")
        actual = self.clk_hz / divisor
        error = abs(actual - self.baud) / self.baud
        if error > MAX_BAUD_ERROR:
            raise ValueError(f"baud {self.baud} at clk_hz {self.clk_hz}: the nearest integer "
                             f"divisor {divisor} gives {actual:.0f} baud, {100 * error:.1f} % "
                             f"off (at most {100 * MAX_BAUD_ERROR:g} % allowed); choose a baud "
                             f"rate near clk_hz / n for an integer n")

    @property
    def divisor(self):
        """Clock cycles per UART bit: ``round(clk_hz / baud)``."""
        return round(self.clk_hz / self.baud)

    def to_dict(self):
        """Plain JSON data; :meth:`from_dict` reads it back."""
        return {"clk_hz": self.clk_hz, "baud": self.baud, "timeout_cycles": self.timeout_cycles,
                "max_words": self.max_words, "rx_fifo_depth": self.rx_fifo_depth}

    @classmethod
    def from_dict(cls, table):
        """A config from :meth:`to_dict` data."""
        return cls(**table)
