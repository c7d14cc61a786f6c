"""lpaccel verification (``lpaccel.sim``): nothing here is synthesized or needed on a board.

- :mod:`.golden`: golden models (the GEMV arithmetic bit for bit, the DMA's
  expected behaviour).
- :mod:`.models`: behavioural stand-ins (the LPDDR device and its timing checker).
- :mod:`.infra`: cocotb infrastructure (harness, stream drivers, AXI checker,
  AXI traffic, flat-port glue).
- :mod:`.tops`: simulation tops built from gateware and models.
- :mod:`.testbenches`: cocotb testbenches the command line runs.

May import the gateware (:mod:`lpaccel.rtl`) and the host library; the
gateware and the host library never import this package.
"""
