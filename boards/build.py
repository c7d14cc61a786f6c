"""Bitstream builds through amaranth-boards and the YoWASP tools.

:func:`build_board` elaborates a board's top, runs Yosys, nextpnr and the
bitstream packer (all from PyPI, as WebAssembly) in ``build/<board>/`` and
writes ``build/<board>/report.json``: the achieved and target frequency of
every clock, whether timing was met, resource use and the bitstream path.

The boards and their designs come from the registry
(:data:`lpaccel.boards.registry.BOARDS`, filled by one module per board:
``boards/ulx3s.py``, ``boards/ecpix5.py``); the tools' environment and the
nextpnr report parsers from :mod:`lpaccel.boards.toolchain`. This module is
only the flow: check the arguments, make the top, run the tools, write the
report.

YoWASP tools run in a sandbox with a private ``/tmp``; builds therefore live
in the build directory (:func:`lpaccel.paths.build_dir`, not under
``/tmp``) and every path handed to a tool is relative to the build folder,
which is the tools' working directory.
"""

import json
import subprocess
import time

from ..paths import ROOT, build_dir, check_toolchain_visible
from .registry import find_design
from .toolchain import parse_nextpnr_log, parse_nextpnr_report, tool_environment

__all__ = ["build_board", "default_out_dir"]

_BUILD_NAME = "top"


def default_out_dir(board, design=None):
    """Where :func:`build_board` builds when no ``out_dir`` is given.

    ``build/<board>/`` for the board's default design (``ulx3s-85f``:
    ``gemv-selftest``; ``ecpix5-85f``: ``dram-selftest``),
    ``build/<board>-<design>/`` for its other designs.

    Raises
    ------
    ValueError
        Unknown board, or a design the board does not support.
    """
    entry, design, _ = find_design(board, design)
    name = board if design == entry.default_design else f"{board}-{design}"
    return build_dir(name)


def build_board(board, *, design=None, out_dir=None, top=None, seed=1, core_mhz=None,
                variant=None):
    """Build a bitstream for ``board`` and write its timing/resource report.

    Runs amaranth's build script (Yosys, nextpnr with ``--seed`` and
    ``--report``, the packer) with ``do_program=False`` in ``out_dir``. Timing
    must pass: ``--timing-allow-fail`` is not given, so a missed clock stops
    the build.

    Parameters
    ----------
    board : str
        A key of :data:`~lpaccel.boards.registry.BOARDS`, e.g. ``"ulx3s-85f"``.
    design : str or None
        One of the board's designs (see
        :data:`~lpaccel.boards.registry.DESIGNS`); default the
        board's first (``gemv-selftest`` on ULX3S-85F, ``dram-selftest`` on
        ECPIX-5). With ``top`` given it only sets the defaults (clock,
        ``out_dir``) and the report's ``design``.
    out_dir : path-like or None
        Build directory; default :func:`default_out_dir` (``build/<board>``
        for the board's default design, ``build/<board>-<design>`` for the
        others) in the build directory. Must not be under ``/tmp`` (see
        module docs).
    top : Elaboratable or None
        Top to build; default the design's ``variant`` top.
    seed : int
        nextpnr placement seed (fixed for reproducible results).
    core_mhz : float or None
        Core clock target; default the design's (100 MHz for the ULX3S-85F
        GEMV self-test). Designs with a fixed clock (the DRAM self-tests,
        50 MHz) accept only that value.
    variant : str or None
        Which of the design's tops to build when ``top`` is None
        (``gemv-selftest``: ``"selftest"``, the default, or ``"blinky"``).

    Returns
    -------
    dict
        The report also written to ``<out_dir>/report.json``: ``board``,
        ``design`` (None for a caller's ``top`` without ``design``),
        ``device``, ``package``, ``speed``, ``top``, ``seed``, ``fmax_mhz``,
        ``target_mhz``, ``timing_met``, ``utilization``, ``critical_paths``,
        ``bitstream`` (relative to the repository root when inside it),
        ``build_seconds``.

    Raises
    ------
    ValueError
        Unknown board, design or variant, a design the board does not
        support, a ``core_mhz`` for a fixed-clock design, or an ``out_dir``
        the tools cannot see.
    RuntimeError
        A tool failed. On a timing failure ``report.json`` is still written
        (``timing_met: false``, achieved frequencies and the critical path
        from the nextpnr log) and the message gives the numbers.
    """
    entry, design_name, spec = find_design(board, design)
    if core_mhz is None:
        core_mhz = spec.core_mhz
    elif spec.fixed_clock and float(core_mhz) != spec.core_mhz and top is None:
        raise ValueError(f"core_mhz {core_mhz}: design {design_name} on board {board} runs at "
                         f"a fixed {spec.core_mhz:g} MHz (set by its generated DRAM core); "
                         f"leave core_mhz unset")
    core_mhz = float(core_mhz)
    if top is None:
        variant = spec.variants[0] if variant is None else variant
        if variant not in spec.variants:
            raise ValueError(f"top variant {variant!r} is not known for design {design_name} "
                             f"on board {board} (known: {', '.join(spec.variants)})")
    elif design is None:
        design_name = None
    if out_dir is None:
        out_dir = default_out_dir(board, design_name)
    out_dir = check_toolchain_visible(out_dir)
    # Only now that every argument is known good (nothing left unused).
    if top is None:
        top = spec.make_top(core_mhz, variant)
        top_name = variant
    else:
        top_name = type(top).__name__
    out_dir.mkdir(parents=True, exist_ok=True)

    platform = entry.platform()()
    report_file = f"{_BUILD_NAME}.report.json"
    log_file = out_dir / f"{_BUILD_NAME}.tim"
    for stale in (out_dir / report_file, out_dir / f"{_BUILD_NAME}.bit", log_file):
        stale.unlink(missing_ok=True)

    started = time.monotonic()
    plan = platform.prepare(top, name=_BUILD_NAME,
                            **entry.yosys_overrides,
                            nextpnr_opts=f"--seed {int(seed)} --report {report_file}")
    elaborate_seconds = time.monotonic() - started
    env = tool_environment()
    error = None
    try:
        # The script runs with cwd = out_dir and names only relative files.
        plan.execute_local(str(out_dir), env=env)
    except subprocess.CalledProcessError as exc:
        error = exc
    build_seconds = time.monotonic() - started

    def rel(path):
        try:
            return str(path.relative_to(ROOT))
        except ValueError:
            return str(path)

    result = {
        "board": board,
        "design": design_name,
        "device": platform.device,
        "package": platform.package,
        "speed": platform.speed,
        "top": top_name,
        "seed": int(seed),
        "core_mhz": core_mhz,
    }
    if error is None:
        with open(out_dir / report_file) as f:
            result.update(parse_nextpnr_report(json.load(f), entry.family))
        result["bitstream"] = rel(out_dir / f"{_BUILD_NAME}.bit")
    else:
        log = log_file.read_text(errors="replace") if log_file.exists() else ""
        parsed = parse_nextpnr_log(log)
        result.update(parsed)
        if parsed["utilization_raw"]:
            result["utilization"] = parse_nextpnr_report(
                {"fmax": {}, "utilization": parsed["utilization_raw"]},
                entry.family)["utilization"]
        result["bitstream"] = None
        result["error"] = f"{' '.join(map(str, error.cmd))} exited with {error.returncode}"
    result["elaborate_seconds"] = round(elaborate_seconds, 1)
    result["build_seconds"] = round(build_seconds, 1)
    result["log"] = rel(log_file)
    with open(out_dir / "report.json", "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write("\n")

    if error is not None:
        if result["fmax_mhz"] and not result["timing_met"]:
            clocks = ", ".join(f"{c}: {result['fmax_mhz'][c]:.2f} MHz "
                               f"(target {result['target_mhz'][c]:.2f})"
                               for c in result["fmax_mhz"])
            raise RuntimeError(
                f"board {board}: timing not met ({clocks}); critical path in {rel(log_file)}:\n"
                f"{result['critical_path_log']}\n"
                f"fix: shorten the critical path or build with a lower core_mhz")
        raise RuntimeError(f"board {board}: build failed ({result['error']}); see the logs "
                           f"in {rel(out_dir)} (top.rpt for Yosys, top.tim for nextpnr)")
    return result
