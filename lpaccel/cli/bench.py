"""Benchmark suite: GEMV cycle counts and utilization per format and shape.

Writes ``bench.json`` (one report per run, the keys of ``lpaccel gemv
--json``) and ``bench.md`` (a table) into the output directory. Every number
is a cycle count from RTL simulation in Verilator.
"""

import json
from pathlib import Path

from lpaccel.cli.gemv import make_case, run_gemv

__all__ = ["SHAPES", "QUICK_SHAPES", "LADDER", "run_bench", "run_ladder"]

#: (rows, cols) of the full suite: a small layer, a 1024 x 4096 and a 4096 x 4096 layer.
SHAPES = [(64, 4096), (1024, 4096), (4096, 4096)]
#: The ``--quick`` suite.
QUICK_SHAPES = [(64, 4096)]
#: (format, group) pairs: the GGUF formats and INT4/INT8 at group 128 (and INT4 at 32).
FORMATS = (("q4_0", None), ("q4_1", None), ("q8_0", None), ("int4", 128), ("int4", 32),
           ("int8", 128))


def run_bench(out_dir, *, quick=False, lanes=32, seed=1, log=print):
    """Run the suite and write ``bench.json`` and ``bench.md`` to ``out_dir``.

    Returns
    -------
    list of dict
        The reports, in table order.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    for rows, cols in (QUICK_SHAPES if quick else SHAPES):
        for fmt, group in FORMATS:
            log(f"bench: {fmt} {rows}x{cols} on {lanes} lanes ...")
            reports.append(run_gemv(make_case(fmt, rows, cols, group=group, seed=seed),
                                    lanes=lanes, seed=seed))
    (out / "bench.json").write_text(json.dumps(reports, indent=2) + "\n")
    lines = [
        "# lpaccel GEMV benchmark",
        "",
        f"RTL simulation (Verilator), {lanes} lanes, weights offered one word per cycle "
        "(no memory model in the loop yet), seed "
        f"{seed}. Reproduce with `lpaccel bench{' --quick' if quick else ''} --out DIR`.",
        "",
        "| format | group | rows × cols | cycles | ideal cycles | weight bytes | utilization "
        "(end to end) | utilization (streaming) | bit-exact | rel. RMS error |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        lines.append(
            f"| {r['format']} | {r['group']} | {r['rows']} × {r['cols']} | {r['cycles']} "
            f"| {r['ideal_cycles']} "
            f"| {r['weight_bytes']} | {100 * r['bw_utilization']:.2f} % "
            f"| {100 * r['stream_utilization']:.2f} % | {r['bit_exact']} "
            f"| {r['rel_rms_error']:.2e} |")
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    return reports


#: The speed-up ladder (issue 14): (label, format, group, BCQ planes), uncompressed first.
LADDER = (("F16", "f16", None, None), ("Q8_0", "q8_0", None, None),
          ("Q4_0", "q4_0", None, None), ("INT4 g128", "int4", 128, None),
          ("BCQ3 g128", "bcq", 128, 3), ("BCQ2 g128", "bcq", 128, 2),
          ("BCQ1 g128", "bcq", 128, 1))


def run_ladder(out_dir, *, rows=4096, cols=4096, memory="lpddr4-3200", lanes=None, seed=1,
               steps=None, log=print):
    """The speed-up ladder: one GEMV per format from the same memory, against F16.

    Every step is measured (RTL cycle counts in Verilator): on the SoC with
    ``memory`` holding the weights, or, with ``memory=None``, on the engine
    alone with its weights offered one word per cycle. For each step the
    measured speed-up over F16 (F16 cycles / cycles) is set against the
    byte ratio (F16 stream bytes / stream bytes, the bytes actually read);
    ``efficiency`` is their quotient, the issue's target is 0.95 or more.

    Writes ``ladder.json`` and ``ladder.md`` into ``out_dir``.

    Parameters
    ----------
    out_dir : path
    rows, cols : int
        The GEMV's shape (default 4096 x 4096).
    memory : str or None
        A SoC memory (``lpaccel gemv --memory`` choices) or None for the
        engine alone.
    lanes : int, optional
        Engine lanes (default: the SoC's, or 32 engine-only).
    seed : int
    steps : iterable of str, optional
        Labels of :data:`LADDER` to run (F16 is always run: it is the base).
    log : callable

    Returns
    -------
    list of dict
        One row per step: the run's report plus ``label``, ``speedup``,
        ``byte_ratio`` and ``efficiency``.
    """
    from lpaccel.cli.gemv import make_case, run_gemv

    chosen = [s for s in LADDER if steps is None or s[0] == "F16" or s[0] in steps]
    unknown = set(steps or ()) - {s[0] for s in LADDER}
    if unknown:
        raise ValueError(f"ladder steps {sorted(unknown)} are not known; choose from "
                         f"{', '.join(s[0] for s in LADDER)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows_out = []
    for label, fmt, group, planes in chosen:
        log(f"ladder: {label} {rows}x{cols} "
            f"{'engine alone' if memory is None else 'from ' + memory} ...")
        extra = {"planes": planes} if planes else {}
        case = make_case(fmt, rows, cols, group=group, seed=seed, **extra)
        if memory is None:
            report = run_gemv(case, lanes=lanes or 32, seed=seed)
        else:
            from lpaccel.cli.soc import run_soc_gemv
            report = run_soc_gemv(case, memory, lanes=lanes, seed=seed)
            report.pop("results", None)
        report["label"] = label
        rows_out.append(report)
    base = rows_out[0]
    for r in rows_out:
        r["speedup"] = base["cycles"] / r["cycles"]
        r["byte_ratio"] = base["weight_bytes"] / r["weight_bytes"]
        r["efficiency"] = r["speedup"] / r["byte_ratio"]
    (out / "ladder.json").write_text(json.dumps(rows_out, indent=2) + "\n")
    where = "the engine alone, weights offered one word per cycle" if memory is None \
        else f"the SoC, weights in {memory}"
    lines = [
        "# lpaccel speed-up ladder",
        "",
        f"One {rows} × {cols} GEMV per format from {where}; RTL cycle counts in "
        f"Verilator, seed {seed}. Reproduce with `lpaccel bench --ladder --out DIR"
        f"{'' if memory is None else ' --memory ' + memory}`.",
        "",
        "| step | bits/weight (stream) | weight bytes | cycles | speed-up vs F16 | byte ratio "
        "| speed-up / byte ratio | bit-exact |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows_out:
        lines.append(
            f"| {r['label']} | {8 * r['weight_bytes'] / (rows * cols):.3f} "
            f"| {r['weight_bytes']:,} | {r['cycles']:,} | {r['speedup']:.3f}× "
            f"| {r['byte_ratio']:.3f}× | {r['efficiency']:.3f} | {r['bit_exact']} |")
    (out / "ladder.md").write_text("\n".join(lines) + "\n")
    return rows_out
