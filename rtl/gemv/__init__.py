"""Quantized GEMV engine and its blocks (see :mod:`.engine` for the diagram)."""

from .engine import GemvEngine, GemvError

__all__ = ["GemvEngine", "GemvError"]
