"""Golden models: the exact arithmetic and expected behaviour the RTL is checked against.

- :mod:`.gemv`: the GEMV engine's arithmetic, bit for bit.
- :mod:`.dma`: what the DMA engine must do with a list of descriptors.
"""
