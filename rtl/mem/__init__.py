"""On-chip memories behind an AXI4 subordinate port (block RAM, iCE40 SPRAM)."""

from .onchip import AxiMemoryConfig, AxiMemoryFrontEnd, AxiSpram, AxiSram, Spram256ka

__all__ = ["AxiMemoryConfig", "AxiMemoryFrontEnd", "AxiSpram", "AxiSram", "Spram256ka"]
