"""FPGA boards: one module per board, the shared toolchain and LiteDRAM.

Where to look:

- ``registry.py`` -- :data:`BOARDS` and :data:`DESIGNS`: which board builds
  which design; :func:`register_board`, called by each board module;
- ``ulx3s.py``, ``ecpix5.py`` -- one module per board: its platform, clocks,
  DRAM description, bitstream tops and its registry entry;
- ``ecp5.py`` -- the ECP5 PLL shared by the ECP5 boards;
- ``selftest.py`` -- the board-independent GEMV self-test core;
- ``litedram/`` -- board DRAM through a generated LiteDRAM core (generation,
  init, read leveling, the Amaranth wrapper);
- ``toolchain.py`` -- YoWASP tool environment, Yosys settings, nextpnr
  report parsing, synthesis-only runs;
- ``build.py`` -- :func:`~lpaccel.boards.build.build_board`: the bitstream
  flow and its report;
- ``resources.py`` -- GEMV engine resource use from a Yosys synthesis.

Importing this package imports every board module, so :data:`BOARDS` is
complete. A new board is one module that calls :func:`register_board`, and
one name in the import below.
"""

from .registry import BOARDS, DESIGNS, BoardDesign, BoardEntry, register_board

# Each board module registers itself on import; the order is the order of
# BOARDS (``lpaccel build --board`` lists them so, the first is the default).
from . import ulx3s  # noqa: E402, F401  isort: skip
from . import ecpix5  # noqa: E402, F401  isort: skip

__all__ = ["BOARDS", "DESIGNS", "BoardDesign", "BoardEntry", "register_board"]
