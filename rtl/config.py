"""One frozen configuration object per block.

The same :class:`GemvConfig` instance feeds the RTL generator, the golden
model, the performance model and (later) the register map and driver, so the
numbers that describe an engine are written down exactly once.
"""

import enum
from dataclasses import dataclass

__all__ = ["WeightFormat", "GemvConfig", "BLOCK", "ACC_BITS", "ACC_FRAC"]

#: Elements per quantization block (GGUF Q4_0/Q8_0) and per activation block.
BLOCK = 32
#: Width of the row accumulator, see ``docs/arithmetic.md`` section 3.
ACC_BITS = 96
#: Fraction bits of the row accumulator (``F`` in ``docs/arithmetic.md``).
ACC_FRAC = 32


class WeightFormat(enum.IntEnum):
    """Weight format codes, as the hardware and the register map see them."""

    Q4_0 = 0
    Q8_0 = 1

    @property
    def qbits(self):
        """Bits per stored quantized element."""
        return {WeightFormat.Q4_0: 4, WeightFormat.Q8_0: 8}[self]

    @property
    def block_bytes(self):
        """Bytes per 32-element block in the GGUF layout (scale included)."""
        return 2 + BLOCK * self.qbits // 8

    @classmethod
    def parse(cls, name):
        """Look a format up by its name (``"q4_0"``, ``"Q8_0"``, ...).

        Raises
        ------
        ValueError
            If the name is not a supported format; the message lists those.
        """
        if isinstance(name, WeightFormat):
            return name
        try:
            return cls[str(name).upper()]
        except KeyError:
            supported = ", ".join(f.name.lower() for f in cls)
            raise ValueError(f"weight format {name!r} is not supported "
                             f"(supported: {supported})") from None


@dataclass(frozen=True)
class GemvConfig:
    """Parameters of one GEMV engine.

    Parameters
    ----------
    lanes : int
        Multiply-accumulate lanes, a power of two from 8 to 128. Each cycle
        the engine multiplies one weight word: ``lanes`` 4-bit weights or
        ``lanes / 2`` 8-bit weights.
    max_cols : int
        Capacity of the activation buffer in elements (the largest ``K``);
        a multiple of ``32 * blocks_per_row``.
    max_rows : int
        Largest row count a job may ask for.
    """

    lanes: int = 32
    max_cols: int = 4096
    max_rows: int = 65535

    def __post_init__(self):
        if not isinstance(self.lanes, int) or self.lanes not in (8, 16, 32, 64, 128):
            raise ValueError(f"lanes must be a power of two from 8 to 128, not {self.lanes!r}")
        if not isinstance(self.max_cols, int) or self.max_cols <= 0 or \
                self.max_cols % (BLOCK * self.blocks_per_row) != 0:
            raise ValueError(f"max_cols must be a positive multiple of "
                             f"{BLOCK * self.blocks_per_row} for {self.lanes} lanes, "
                             f"not {self.max_cols!r}")
        if self.max_cols > 65536:
            raise ValueError(f"max_cols must be at most 65536 (the accumulator is sized "
                             f"for it), not {self.max_cols}")
        if not isinstance(self.max_rows, int) or not 1 <= self.max_rows <= 65535:
            raise ValueError(f"max_rows must be between 1 and 65535, not {self.max_rows!r}")

    @property
    def word_bits(self):
        """Width of one weight-stream word in bits (``4 * lanes``)."""
        return 4 * self.lanes

    @property
    def word_bytes(self):
        """Width of one weight-stream word in bytes."""
        return self.word_bits // 8

    @property
    def blocks_per_row(self):
        """Activation blocks held in one row of the activation buffer."""
        return max(1, self.lanes // BLOCK)

    @property
    def scales_per_word(self):
        """Float16 scales in one scale word (``bpc`` in the docs)."""
        return self.word_bits // 16

    def elements_per_word(self, fmt):
        """Weights carried by one quant word of format ``fmt``."""
        return self.word_bits // WeightFormat.parse(fmt).qbits
