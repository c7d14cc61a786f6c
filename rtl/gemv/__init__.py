"""Quantized GEMV engine."""

from .engine import GemvEngine, GemvError

__all__ = ["GemvEngine", "GemvError"]
