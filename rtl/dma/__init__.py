"""DMA engine: descriptor-driven MM2S and S2MM channels over AXI4 (see ``docs/dma.md``)."""

from .engine import DmaConfig, DmaEngine, DmaError

__all__ = ["DmaConfig", "DmaEngine", "DmaError"]
