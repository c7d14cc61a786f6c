"""cocotb test: the host driver runs a plan of GEMV jobs on the simulated SoC.

``lpaccel gemv --memory M`` and ``lpaccel demo`` (:mod:`lpaccel.cli.soc`)
run :func:`run_gemv_case` on the SoC simulation top. The case file
(``LPACCEL_CASE``) holds a plan: weight matrices, activation vectors and
steps (chains of jobs). The unchanged host driver (:class:`lpaccel.driver.Device`)
runs in a thread over the testbench's :class:`SimTransport`: it places every
tensor once (memory backdoor), then per step clears the counters, queues
the step's jobs back to back, waits for their completion records and reads
the results and counters. The report (``LPACCEL_REPORT``, JSON) carries raw
results and counters; the host side checks and interprets them.
"""

import json
import os
import time

import cocotb
import numpy as np

from lpaccel.driver import Device
from lpaccel.quant import QuantizedWeights
from lpaccel.sim.infra.harness import params

__all__ = ["load_plan", "run_plan"]


def load_plan(path):
    """Read a case file written by :func:`lpaccel.cli.soc._save_plan`.

    Returns
    -------
    tuple of (dict, list of QuantizedWeights, list of numpy.ndarray)
        The plan table, the weights and the activation vectors.
    """
    case = np.load(path)
    table = json.loads(str(case["plan"]))
    weights = [QuantizedWeights.from_arrays(fmt, rows, cols, group, case, prefix=f"w{i}_")
               for i, (fmt, rows, cols, group) in enumerate(table["weights"])]
    xs = [case[f"x{j}"] for j in range(table["vectors"])]
    return table, weights, xs


def run_plan(transport, table, weights, xs):
    """The host program (blocking; runs in a bridge thread): what a user's driver code does.

    Returns
    -------
    dict
        ``{"steps": [...], "device": {...}}`` (see the module docstring).
    """
    dev = Device(transport)
    # Simulation time in cycles, if the transport knows it (SimTransport does).
    sim_cycle = getattr(transport, "sim_cycle", lambda: 0)
    placed_w = [dev.put_weights(w, f"weights[{i}]") for i, w in enumerate(weights)]
    placed_x = [dev.put_activations(x, f"x[{j}]") for j, x in enumerate(xs)]
    timeout = table["timeout_cycles"]
    steps = []
    for s, step in enumerate(table["steps"]):
        results = [dev.alloc_results(placed_w[wi].rows, f"step {s} results")
                   for wi, _ in step]
        dev.clear_counters()
        started = time.monotonic()
        first_cycle = sim_cycle()
        tags = [dev.submit(placed_w[wi], placed_x[xj], r, timeout_cycles=timeout)
                for (wi, xj), r in zip(step, results)]
        done = dev.wait(tags, timeout_cycles=timeout, check=False)
        counters = dev.counters()
        # From the counter clear to the counter read: every cycle is either
        # busy (a job running) or counted as waiting for work.
        cycles = sim_cycle() - first_cycle
        wall = time.monotonic() - started
        steps.append({
            "completions": [{"tag": c.tag, "error": getattr(c.error, "name", str(c.error)),
                             "dma": getattr(c.dma, "name", str(c.dma))} for c in done],
            "results": [dev.read_results_bits(r)[:placed_w[wi].rows].tolist()
                        for (wi, _), r in zip(step, results)],
            "counters": counters,
            "wall_seconds": wall,
            # Simulator speed while the step ran (cycles of the step / its wall time).
            "sim_cycles": cycles,
            "sim_cycles_per_second": round(cycles / wall) if wall else None,
        })
        dev.free(*results)
    levels = dev.regs.fields("JOB_LEVELS")
    return {"steps": steps,
            "device": {"status": dev.status(), "levels": levels,
                       "errors": {k: int(v) for k, v in dev.errors().items()},
                       "outstanding": dev.outstanding}}


@cocotb.test()
async def run_gemv_case(dut):
    """Run the plan named by ``LPACCEL_CASE``; write the report to ``LPACCEL_REPORT``.

    The report is written whatever the end-of-test checks find: a timing
    violation or something left outstanding is reported (``timing_violations``,
    ``idle_error``) for the command line to show, not raised.
    """
    # Imported here so that the host program above can be tested without a simulator.
    from lpaccel.sim.testbenches.soc import SocTB, config_from_params

    config, build_hash = config_from_params(params())
    table, weights, xs = load_plan(os.environ["LPACCEL_CASE"])
    # The light host managers and no per-cycle checker: Verilator runs free between polls.
    tb = SocTB(dut, config, build_hash=build_hash, checkers=table.get("checkers", False),
               host="light")
    await tb.reset()
    report = await tb.run_driver(run_plan, tb.transport(), table, weights, xs)
    report["sim_cycles"] = tb.cycle
    try:
        await tb.check_idle()
        report["idle_error"] = None
    except AssertionError as error:
        report["idle_error"] = str(error)
    # The checker stops at its first violation, so this counts 0 or 1 (at least one).
    report["timing_violations"] = None if config.lpddr is None else int(tb.violation is not None)
    report["timing_violation"] = tb.violation
    with open(os.environ["LPACCEL_REPORT"], "w") as f:
        json.dump(report, f)
