"""``python -m lpaccel.boards.litedram --generate BOARD --out DIR [--sim]``.

Generates one board's LiteDRAM core in this (fresh) interpreter: what
:func:`~lpaccel.boards.litedram.generate_litedram_core` runs as a child
process, since litedram, LiteX and Migen keep global state between cores.
Call :func:`~lpaccel.boards.litedram.generate_litedram_core` (or ``lpaccel
build``) instead; it also records the configuration key so the core is
reused.
"""

import os
from pathlib import Path

# Importing lpaccel.boards imports every board module, so LITEDRAM_BOARDS is
# complete before the choices are listed.
from .generate import LITEDRAM_BOARDS, _generate


def _main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(prog="python -m lpaccel.boards.litedram",
                                     description="Generate a board's LiteDRAM core")
    parser.add_argument("--generate", metavar="BOARD", choices=sorted(LITEDRAM_BOARDS),
                        required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sim", action="store_true",
                        help="SDRAMPHYModel instead of the PHY (for Verilator)")
    args = parser.parse_args(argv)
    _generate(args.generate, args.out.resolve(), sim=args.sim)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    _main()
