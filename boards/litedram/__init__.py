"""Board DRAM through a LiteDRAM core generated at build time.

Modules, in the order data flows:

- :mod:`.generate` -- :class:`LiteDramBoard` (a board's DRAM, as data; each
  board module defines its own), :func:`generate_litedram_core` (runs the
  installed ``litedram`` into ``build/litedram/<board>/``) and
  :class:`GeneratedLiteDram` (the Verilog, CSR map, PHY settings and init
  program it produced);
- :mod:`.init` -- :class:`LiteDramInitSequencer` and
  :class:`LiteDramInitController`: the DRAM init program over the core's
  Wishbone control port, what LiteX's BIOS would do;
- :mod:`.leveling` -- :class:`LiteDramLevelingConfig` and
  :class:`LiteDramReadLeveler`: DDR3 read leveling in hardware;
- :mod:`.core` -- :class:`LiteDramCore`: the generated core as an Amaranth
  component with an AXI4 port, ``init_done`` and ``init_error``.

``python -m lpaccel.boards.litedram --generate BOARD --out DIR`` is the
child process :func:`generate_litedram_core` runs (see ``__main__.py``).
The board tops using the core (the DRAM self-tests) live in the board
modules, ``boards/ulx3s.py`` and ``boards/ecpix5.py``.
"""

from .core import LiteDramCore
from .generate import (
    CDELAY_CYCLES,
    LITEDRAM_BOARDS,
    GeneratedLiteDram,
    LiteDramBoard,
    generate_litedram_core,
)
from .init import LiteDramInitController, LiteDramInitSequencer
from .leveling import LiteDramLevelingConfig, LiteDramReadLeveler

__all__ = [
    "CDELAY_CYCLES",
    "LITEDRAM_BOARDS",
    "GeneratedLiteDram",
    "LiteDramBoard",
    "LiteDramCore",
    "LiteDramInitController",
    "LiteDramInitSequencer",
    "LiteDramLevelingConfig",
    "LiteDramReadLeveler",
    "generate_litedram_core",
]
