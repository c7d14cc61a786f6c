"""cocotb infrastructure: build cache and runner, stream drivers, AXI checker and traffic.

- :mod:`.harness`: ``run_cocotb`` builds an Amaranth component in Verilator
  (cached under ``build/sim``) and runs a cocotb test module on it.
- :mod:`.streams`: ``lib.stream`` sources, sinks and monitors with pause modes.
- :mod:`.axi_checker`, :mod:`.axi_traffic`: an AXI4 protocol checker and a
  random traffic generator over cocotbext-axi.
- :mod:`.flat`: flat AXI ports named the way cocotbext-axi looks for them.
- :mod:`.axi_light`: AXI4-Lite and AXI4 managers that cost nothing while idle
  (speed runs of the SoC).
"""
