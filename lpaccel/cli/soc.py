"""GEMVs on the simulated SoC, run by the host driver, measured and checked.

``lpaccel gemv --memory M`` and ``lpaccel demo`` come here. The host side
writes a *plan* (weight matrices, activation vectors, and steps: each step a
chain of jobs queued back to back) into a case file and runs the
``run_gemv_case`` cocotb test of :mod:`lpaccel.sim.testbenches.soc_gemv` on
the SoC simulation top (Verilator). There the host driver
(:mod:`lpaccel.driver`) runs unchanged over the simulation transport: it
places the tensors (bulk preload through the memory backdoor), queues the
jobs, waits for their completion records and reads results and counters.
This side compares the results with the golden model, bit for bit, and
turns the counters into the report.

Sizes: the SoC's memory is the smallest power of two that holds the plan's
tensors as the driver's allocator lays them out (at least the default size,
so that small runs share one simulator build): ``memory_size`` on chip,
``LpddrConfig.sim_bytes`` for an LPDDR part.
"""

import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lpaccel import quant, repack
from lpaccel.paths import build_dir
from lpaccel.rtl.config import GemvConfig, WeightFormat
from lpaccel.rtl.dram.config import LpddrConfig
from lpaccel.rtl.soc.sequencer import act_bytes
from lpaccel.rtl.soc_config import DEFAULT_LPDDR_RATIO, LPDDR_MEMORIES, ONCHIP, SocConfig
from lpaccel.sim.golden import gemv as golden

__all__ = ["MEMORIES", "SocPlan", "soc_config_for", "run_soc_plan", "run_soc_gemv",
           "LOSS_COUNTERS"]

#: Memories ``lpaccel gemv --memory`` offers.
MEMORIES = (ONCHIP, *LPDDR_MEMORIES)

#: Counters that say where cycles went (``losses`` in the report).
LOSS_COUNTERS = ("stall_memory", "stall_engine", "stall_result", "mem_idle", "mem_gap",
                 "stall_host", "dram_refresh", "dram_row_miss", "dram_turnaround", "dram_other")

#: Verilog name of the simulation top (shared with the SoC's tests, so builds are shared).
SIM_TOP_NAME = "soc"

#: Smallest memories built, so that small runs share one simulator build.
MIN_ONCHIP_BYTES = 1 << 16
MIN_LPDDR_BYTES = 1 << 18

#: Polling budget of one step, in cycles per weight word (and a floor).
TIMEOUT_CYCLES_PER_WORD = 16
TIMEOUT_CYCLES_MIN = 200_000


def _round_up(n, unit):
    return -(-n // unit) * unit


def _pow2_at_least(n):
    return 1 << max(0, int(n - 1).bit_length())


@dataclass
class SocPlan:
    """What one simulation runs.

    Attributes
    ----------
    weights : list of QuantizedWeights
        Placed once each, before the first step.
    xs : list of numpy.ndarray
        float32 activation vectors, placed once each.
    steps : list of list of (int, int)
        Each step is a chain of jobs ``(weight index, vector index)`` queued
        back to back; the counters are cleared before and read after each.
    """

    weights: list
    xs: list
    steps: list
    expected: list = field(init=False)

    def __post_init__(self):
        for step in self.steps:
            for wi, xj in step:
                if self.weights[wi].cols != len(self.xs[xj]):
                    raise ValueError(f"job ({wi}, {xj}): the weights have "
                                     f"{self.weights[wi].cols} columns but vector {xj} has "
                                     f"{len(self.xs[xj])} elements")
        # Golden results, one per (weights, vector) pair used.
        self.expected = {(wi, xj): golden.gemv_golden(self.weights[wi], self.xs[xj])
                         for step in self.steps for wi, xj in step}

    @property
    def max_cols(self):
        return max(w.cols for w in self.weights)

    def memory_bytes(self, config):
        """Bytes the driver's allocator needs for the plan on an engine ``config``."""
        word = config.word_bytes
        need = sum(_round_up(repack.layout_of(w, config).bytes, word) for w in self.weights)
        need += sum(_round_up(act_bytes(len(x)), word) for x in self.xs)
        need += max(sum(_round_up(4 * self.weights[wi].rows, word) for wi, _ in step)
                    for step in self.steps)
        return need


def _gemv_config(memory, lanes, cols):
    """The engine of a SoC on ``memory``: its word is the memory path's width."""
    if memory == ONCHIP:
        word_bits = None if lanes is None else min(512, max(64, 4 * lanes))
        lanes = lanes or 32
    else:
        word_bits = LpddrConfig(part=memory, ratio=DEFAULT_LPDDR_RATIO[memory]).data_width
        # One word per cycle needs 4 * lanes >= word_bits.
        lanes = lanes or max(8, min(128, word_bits // 4))
    return GemvConfig.sized_for(cols, lanes=lanes, word_bits=word_bits,
                                at_least=GemvConfig().max_cols)


def soc_config_for(memory, plan, lanes=None):
    """The :class:`SocConfig` a plan runs on: memory sized to fit it (a power of two).

    Raises
    ------
    ValueError
        On an unknown memory, or an engine that cannot be joined to the
        memory path (``SocConfig.check_soc``).
    """
    if memory not in MEMORIES:
        raise ValueError(f"memory {memory!r} is not supported by the simulated SoC "
                         f"(supported: {', '.join(MEMORIES)})")
    gemv = _gemv_config(memory, lanes, plan.max_cols)
    need = plan.memory_bytes(gemv)
    if memory == ONCHIP:
        config = SocConfig(gemv=gemv, memory=ONCHIP,
                           memory_size=max(MIN_ONCHIP_BYTES, _pow2_at_least(need)))
    else:
        lpddr = LpddrConfig(part=memory, ratio=DEFAULT_LPDDR_RATIO[memory],
                            sim_bytes=max(MIN_LPDDR_BYTES, _pow2_at_least(need)))
        config = SocConfig(gemv=gemv, memory=memory, lpddr=lpddr)
    config.check_soc()
    return config


def _save_plan(path, plan, timeout_cycles, checkers):
    arrays = {}
    for i, w in enumerate(plan.weights):
        # F16/BCQ add alpha_bits/offset_bits (QuantizedWeights.to_arrays).
        arrays.update({f"w{i}_{k}": v for k, v in w.to_arrays().items()})
    for j, x in enumerate(plan.xs):
        arrays[f"x{j}"] = np.asarray(x, dtype=np.float32)
    table = {"weights": [[int(w.fmt), w.rows, w.cols, w.group] for w in plan.weights],
             "vectors": len(plan.xs),
             "steps": [[[wi, xj] for wi, xj in step] for step in plan.steps],
             "timeout_cycles": timeout_cycles, "checkers": checkers}
    np.savez(path, plan=np.array(json.dumps(table)), **arrays)


def run_soc_plan(plan, memory=ONCHIP, *, lanes=None, seed=0, checkers=False, work_dir=None):
    """Run ``plan`` on the simulated SoC; return the testbench's raw report.

    Parameters
    ----------
    plan : SocPlan
    memory : str
        One of :data:`MEMORIES`.
    lanes : int, optional
        Engine lanes; default to take one memory word per cycle.
    seed : int
        cocotb's random seed.
    checkers : bool
        Run the AXI protocol checkers (slower); the DRAM timing checker
        always runs.
    work_dir : path, optional
        Where the case and report files go; default ``build/runs/``.

    Returns
    -------
    tuple of (SocConfig, dict)
        The configuration and the report: ``steps`` (per step: completions,
        results as uint32 bits, counters, wall seconds), ``timing_violations``.
    """
    from lpaccel.sim.infra.harness import run_cocotb
    from lpaccel.sim.tops.soc import make_soc_top

    config = soc_config_for(memory, plan, lanes)
    words = sum(repack.layout_of(w, config.gemv).words for w in plan.weights)
    timeout = max(TIMEOUT_CYCLES_MIN, TIMEOUT_CYCLES_PER_WORD * words)
    work = Path(work_dir) if work_dir else build_dir("runs")
    work.mkdir(parents=True, exist_ok=True)
    tag = f"soc-{memory}-{os.getpid()}"
    case_file = work / f"{tag}.npz"
    report_file = work / f"{tag}.json"
    _save_plan(case_file, plan, timeout, checkers)
    if report_file.exists():
        report_file.unlink()
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            run_cocotb(make_soc_top, name=SIM_TOP_NAME, params=config.to_dict(),
                       test_module="lpaccel.sim.testbenches.soc_gemv",
                       testcase="run_gemv_case", seed=seed,
                       extra_env={"LPACCEL_CASE": str(case_file),
                                  "LPACCEL_REPORT": str(report_file)})
    except BaseException:
        sys.stderr.write(log.getvalue())
        raise
    hw = json.loads(report_file.read_text())
    case_file.unlink()
    report_file.unlink()
    return config, hw


def _losses(counters):
    return {k: counters.get(k, 0) for k in LOSS_COUNTERS}


def _job_check(plan, wi, xj, bits):
    y_bits = np.array(bits, dtype=np.uint32)
    expected = plan.expected[(wi, xj)].view(np.uint32)
    mismatches = int(np.count_nonzero(y_bits != expected))
    reference = golden.gemv_reference_f64(plan.weights[wi], plan.xs[xj])
    return mismatches, float(golden.rel_rms_error(y_bits.view(np.float32), reference))


def step_summary(plan, config, step, hw_step):
    """Check one step's results and turn its counters into numbers.

    Returns
    -------
    dict
        ``bit_exact``, ``mismatches``, ``rel_rms_error`` (worst job),
        ``errors`` (job error names), ``cycles`` (PERF_BUSY_CYCLES),
        ``weight_bytes``, ``bw_utilization``, ``losses``, ``counters``.
    """
    word = config.gemv.word_bytes
    mismatches, worst, errors = 0, 0.0, []
    for (wi, xj), bits, done in zip(step, hw_step["results"], hw_step["completions"]):
        if done["error"] != "NONE":
            errors.append(f"job {done['tag']}: {done['error']}")
        m, e = _job_check(plan, wi, xj, bits)
        mismatches += m
        worst = max(worst, e)
    counters = hw_step["counters"]
    weight_bytes = sum(repack.layout_of(plan.weights[wi], config.gemv).bytes
                       for wi, _ in step)
    cycles = counters["busy_cycles"]
    return {
        "bit_exact": mismatches == 0 and not errors,
        "mismatches": mismatches,
        "rel_rms_error": worst,
        "errors": errors,
        "cycles": cycles,
        "weight_bytes": weight_bytes,
        "bw_utilization": round(weight_bytes / (cycles * word), 6) if cycles else 0.0,
        "losses": _losses(counters),
        "counters": counters,
        "wall_seconds": hw_step.get("wall_seconds"),
    }


def run_soc_gemv(case, memory=ONCHIP, *, lanes=None, seed=0, checkers=False, work_dir=None):
    """One GEMV on the simulated SoC; the report of ``lpaccel gemv --memory M --json``.

    Parameters
    ----------
    case : lpaccel.cli.gemv.GemvCase
    memory : str
        One of :data:`MEMORIES`.

    Returns
    -------
    dict
        The keys of the engine-only report (DESIGN.md "Commands") plus
        ``memory``, ``losses``, ``counters``, ``memory_size``,
        ``sim_cycles_per_second``.
    """
    w = case.weights
    plan = SocPlan([w], [case.x], [[(0, 0)]])
    config, hw = run_soc_plan(plan, memory, lanes=lanes, seed=seed, checkers=checkers,
                              work_dir=work_dir)
    (hw_step,) = hw["steps"]
    s = step_summary(plan, config, [(0, 0)], hw_step)
    layout = repack.layout_of(w, config.gemv)
    y_bits = np.array(hw_step["results"][0], dtype=np.uint32)
    wall = hw_step.get("wall_seconds")
    return {
        "format": w.fmt.name.lower(),
        "group": w.group,
        "rows": w.rows,
        "cols": w.cols,
        "lanes": config.gemv.lanes,
        "word_bits": config.gemv.word_bits,
        "beat_bits": config.gemv.beat_bits,
        "memory": memory,
        "memory_size": config.memory_size,
        "cycles": s["cycles"],
        "ideal_cycles": layout.ideal_cycles,
        # The SoC's counters do not split a job into load, stream and drain.
        "stream_cycles": None,
        "load_cycles": None,
        "latency_cycles": None,
        "weight_bytes": layout.bytes,
        "bw_utilization": s["bw_utilization"],
        "stream_utilization": round(layout.ideal_cycles / s["cycles"], 6) if s["cycles"]
        else 0.0,
        "bit_exact": s["bit_exact"],
        "mismatches": s["mismatches"],
        "errors": s["errors"],
        "rel_rms_error": s["rel_rms_error"],
        "timing_violations": hw.get("timing_violations"),
        "timing_violation": hw.get("timing_violation"),
        "idle_error": hw.get("idle_error"),
        "losses": s["losses"],
        "counters": s["counters"],
        # Simulated cycles per wall-clock second while the job ran (polling included):
        # the testbench's count when it gives one, else the busy and waiting cycles.
        "sim_cycles_per_second": hw_step.get("sim_cycles_per_second") or (
            round((s["cycles"] + s["counters"]["stall_host"]) / wall) if wall else None),
        "results": y_bits.view(np.float32).tolist(),
    }


def soc_run_ok(r):
    """A :func:`run_soc_gemv` report passes: bit-exact, no timing violation, all idle."""
    return bool(r["bit_exact"] and r["timing_violations"] in (0, None) and not r["idle_error"])


def gemv_text(r):
    """Human report of :func:`run_soc_gemv`."""
    status = "PASS" if r["bit_exact"] else \
        f"FAIL ({r['mismatches']} of {r['rows']} rows differ{'; ' if r['errors'] else ''}" \
        f"{', '.join(r['errors'])})"
    losses = ", ".join(f"{k} {v}" for k, v in r["losses"].items() if v)
    tv = r["timing_violations"]
    return "\n".join([
        f"GEMV {r['format'].upper()}"
        + (f" group {r['group']}" if r['format'].startswith("int") else "")
        + f"  {r['rows']} x {r['cols']}  on the SoC, weights in {r['memory']} "
        f"({r['lanes']} lanes, {r['word_bits']}-bit memory words), Verilator RTL simulation",
        f"  bit-exact vs golden model : {status}",
        f"  rel. RMS error vs float64 : {r['rel_rms_error']:.3e}  (contract: <= 1e-3)",
        f"  busy cycles (counter)     : {r['cycles']}  (ideal {r['ideal_cycles']})",
        f"  weight bytes              : {r['weight_bytes']}",
        f"  utilization of the peak   : {100 * r['bw_utilization']:.2f} %  "
        f"(weight bytes / (cycles x {r['word_bits'] // 8} B))",
        f"  cycles lost by cause      : {losses or 'none'}",
        f"  DRAM timing violations    : {'n/a (on-chip memory)' if tv is None else tv}"
        + (f" (first: {r['timing_violation']})" if r.get("timing_violation") else ""),
    ] + ([f"  end-of-run check FAILED   : {r['idle_error']}"] if r.get("idle_error") else []))


# --- demo -----------------------------------------------------------------------------------

#: The demo's chain: the seven GEMVs of a transformer layer slice (model width 512,
#: feed-forward width 1024), each in another format: (name, format, group, rows, input),
#: input 0 the layer's input (Q, K, V, gate, up share it), 1 the attention output, 2 the
#: feed-forward hidden vector.
DEMO_CHAIN = (("Q", "q4_0", None, 32, 0), ("K", "q8_0", None, 16, 0),
              ("V", "q4_1", None, 16, 0), ("O", "int8", 64, 32, 1),
              ("gate", "int4", 128, 32, 0), ("up", "q4_0", None, 32, 0),
              ("down", "q8_0", None, 32, 2))
#: Lengths of the chain's three input vectors.
DEMO_INPUTS = (512, 512, 1024)
#: Columns of the Q8_0 / Q4_0 speed-up measurement.
DEMO_COLS = 2048
#: Rows of the Q8_0 / Q4_0 speed-up measurement (one job each).
DEMO_SPEEDUP_ROWS = 32
# The shapes are chosen so that the whole plan fits the smallest simulated
# LPDDR (MIN_LPDDR_BYTES): the demo then shares its Verilator build with small
# `lpaccel gemv --memory lpddr4-3200` runs, and the build, which dominates the
# demo's time, grows with the simulated memory.


def run_demo(memory="lpddr4-3200", seed=1, log=print):
    """``lpaccel demo``: the full SoC path, checked and measured; return True on success.

    One simulation: weights placed in LPDDR, then (1) a Q8_0 and (2) a Q4_0
    GEMV of the same shape alone, for the speed-up, and (3) the seven GEMVs
    of a transformer layer slice in five formats, queued back to back as one
    chain (Q, K, V, gate and up share the layer's input vector).
    """
    from lpaccel.cli.gemv import make_case

    rng = np.random.default_rng(seed)
    xs = [rng.normal(0.0, 1.0, k).astype(np.float32) for k in DEMO_INPUTS]
    x = rng.normal(0.0, 1.0, DEMO_COLS).astype(np.float32)
    weights, names = [], []
    for name, fmt, group, rows, j in DEMO_CHAIN:
        cols = DEMO_INPUTS[j]
        weights.append(make_case(fmt, rows, cols, group=group, seed=seed).weights)
        names.append(f"{name} {fmt.upper()}{f' g{group}' if group else ''} {rows}x{cols}")
    # The speed-up pair: the same float matrix quantized both ways.
    w = rng.normal(0.0, 0.02, (DEMO_SPEEDUP_ROWS, DEMO_COLS)).astype(np.float32)
    weights += [quant.quantize_weights(w, "q8_0"), quant.quantize_weights(w, "q4_0")]
    n = len(DEMO_CHAIN)
    plan = SocPlan(weights, [*xs, x], [[(n, 3)], [(n + 1, 3)],
                                       [(i, c[4]) for i, c in enumerate(DEMO_CHAIN)]])
    log(f"lpaccel demo: the SoC with weights in {memory.upper()} (Verilator RTL simulation); "
        f"the host driver places the tensors, queues the jobs and checks every result bit "
        f"for bit against the golden model\n")
    config, hw = run_soc_plan(plan, memory, seed=seed)
    q8, q4, chain = (step_summary(plan, config, step, h)
                     for step, h in zip(plan.steps, hw["steps"]))
    peak = config.gemv.word_bytes
    log(f"SoC: {config.gemv.lanes} lanes, {config.gemv.word_bits}-bit memory path "
        f"(peak {peak} B/cycle), {config.memory_size // 1024} KiB simulated "
        f"{memory.upper()}; DRAM timing violations: {hw.get('timing_violations')}\n")
    log(f"Queued chain of {n} GEMVs (a transformer layer's Q, K, V, O, gate, up, down):")
    for i, name in enumerate(names):
        m, e = _job_check(plan, i, DEMO_CHAIN[i][4], hw["steps"][2]["results"][i])
        log(f"  {name:24s} {'bit-exact' if m == 0 else f'{m} rows differ'}, "
            f"rel. RMS error {e:.2e}")
    idle = chain["counters"].get("mem_idle", 0)
    gap = chain["counters"].get("mem_gap", 0)
    log(f"  {chain['weight_bytes']} weight bytes in {chain['cycles']} busy cycles: "
        f"{100 * chain['bw_utilization']:.1f} % of the DRAM peak; memory idle while busy "
        f"{idle} cycles, of them between jobs {gap}")
    lost = ", ".join(f"{k} {v}" for k, v in chain["losses"].items() if v)
    log(f"  cycles lost by cause: {lost or 'none'}\n")
    speedup = q8["cycles"] / q4["cycles"] if q4["cycles"] else 0.0
    ratio = WeightFormat.Q8_0.block_bytes / WeightFormat.Q4_0.block_bytes
    log(f"Q8_0 vs Q4_0, {DEMO_SPEEDUP_ROWS}x{DEMO_COLS} from {memory.upper()}: "
        f"{q8['cycles']} vs {q4['cycles']} cycles "
        f"({100 * q8['bw_utilization']:.1f} % / {100 * q4['bw_utilization']:.1f} % of peak): "
        f"Q4_0 is {speedup:.3f}x faster; the byte ratio 34/18 is {ratio:.3f}x "
        f"({speedup / ratio:.3f} of it)")
    if hw.get("idle_error"):
        log(f"end-of-run check failed: {hw['idle_error']}")
    ok = all(s["bit_exact"] and s["rel_rms_error"] <= 1e-3 for s in (q8, q4, chain)) and \
        hw.get("timing_violations") in (0, None) and not hw.get("idle_error")
    log("demo: PASS" if ok else "demo: FAIL")
    return ok
