"""Benchmark suite: GEMV cycle counts and utilization per format and shape.

Writes ``bench.json`` (one report per run, the keys of ``lpaccel gemv
--json``) and ``bench.md`` (a table) into the output directory. Every number
is a cycle count from RTL simulation in Verilator.
"""

import json
from pathlib import Path

from lpaccel.cli.gemv import make_case, run_gemv

__all__ = ["SHAPES", "QUICK_SHAPES", "run_bench"]

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
