"""The SoC run's host pieces without a simulator: plan file, host program, report.

``lpaccel gemv --memory`` and ``lpaccel demo`` write a plan, the cocotb test
runs :func:`lpaccel.sim.testbenches.soc_gemv.run_plan` over the simulation
transport, and :mod:`lpaccel.cli.soc` checks the report. Here the host
program runs over the functional test double instead, so the plan's round
trip, the memory sizing and the report's arithmetic are checked in a second.
"""

import json

import numpy as np
import pytest

from lpaccel.cli.soc import (
    LOSS_COUNTERS,
    SocPlan,
    _save_plan,
    soc_config_for,
    step_summary,
)
from lpaccel.quant import quantize_weights
from lpaccel.rtl.soc_config import ONCHIP
from lpaccel.sim.testbenches.soc_gemv import load_plan, run_plan
from tests.driver.model import SocModel


def _plan(cols=256):
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, cols).astype(np.float32)
    x2 = rng.normal(0, 1, cols).astype(np.float32)
    ws = [quantize_weights(rng.normal(0, 0.02, (rows, cols)).astype(np.float32), fmt, group)
          for fmt, group, rows in (("q4_0", None, 40), ("q8_0", None, 24), ("int8", 64, 8))]
    return SocPlan(ws, [x, x2], [[(1, 0)], [(0, 0)], [(0, 1), (1, 0), (2, 1), (2, 0)]])


@pytest.mark.parametrize("memory", [ONCHIP, "lpddr4-3200", "lpddr5-6400"])
def test_memory_sized_to_fit_the_plan(memory):
    plan = _plan()
    config = soc_config_for(memory, plan)
    assert config.gemv.word_bits == config.memory_data_width
    assert 4 * config.gemv.lanes >= config.gemv.word_bits       # one word per cycle
    size = config.memory_size
    assert size & (size - 1) == 0 and size >= plan.memory_bytes(config.gemv)
    if memory != ONCHIP:
        assert config.lpddr.sim_bytes == size


def test_big_plan_gets_a_bigger_memory():
    rng = np.random.default_rng(0)
    w = quantize_weights(rng.normal(0, 0.02, (1024, 1024)).astype(np.float32), "q8_0")
    plan = SocPlan([w], [np.zeros(1024, np.float32)], [[(0, 0)]])
    config = soc_config_for("lpddr4-3200", plan)
    assert config.memory_size == 2 << 20        # 1.06 MiB of weights: 2 MiB
    assert soc_config_for(ONCHIP, plan).memory_size == 2 << 20


def test_unknown_memory():
    with pytest.raises(ValueError, match="memory 'ddr9' is not supported.*onchip"):
        soc_config_for("ddr9", _plan())


def test_plan_round_trip_and_host_program(tmp_path):
    plan = _plan()
    config = soc_config_for(ONCHIP, plan)
    path = tmp_path / "case.npz"
    _save_plan(path, plan, timeout_cycles=100_000, checkers=False)
    table, weights, xs = load_plan(path)
    assert table["steps"] == [[list(j) for j in step] for step in plan.steps]
    for a, b in zip(weights, plan.weights):
        assert a.fmt == b.fmt and a.group == b.group and np.array_equal(a.q, b.q)
    model = SocModel(config)
    report = run_plan(model, table, weights, xs)
    json.dumps(report)                   # the report must be plain JSON
    assert report["device"]["outstanding"] == []
    assert report["device"]["levels"] == {"QUEUED": 0, "ACTIVE": 0, "DONE": 0,
                                          "FREE": config.job_depth}
    # The tensors were placed once each, before the first step.
    assert len(model.preloads) == len(plan.weights) + len(plan.xs)
    summaries = [step_summary(plan, config, step, hw)
                 for step, hw in zip(plan.steps, report["steps"])]
    for s, step in zip(summaries, plan.steps):
        assert s["bit_exact"] and s["mismatches"] == 0 and not s["errors"]
        assert s["rel_rms_error"] < 1e-3
        assert s["counters"]["jobs_done"] == len(step)
        assert s["weight_bytes"] == s["counters"]["weight_bytes"]
        assert set(s["losses"]) == set(LOSS_COUNTERS)
        assert 0 < s["bw_utilization"] <= 1


def test_summary_reports_wrong_results_and_errors():
    plan = _plan()
    config = soc_config_for(ONCHIP, plan)
    step = plan.steps[0]
    good = plan.expected[step[0]].view(np.uint32).tolist()
    bad = list(good)
    bad[3] ^= 1
    hw = {"results": [bad], "completions": [{"tag": 0, "error": "NONE", "dma": "OK"}],
          "counters": {"busy_cycles": 100}}
    s = step_summary(plan, config, step, hw)
    assert not s["bit_exact"] and s["mismatches"] == 1
    hw["results"] = [good]
    hw["completions"] = [{"tag": 0, "error": "TIMEOUT", "dma": "OK"}]
    s = step_summary(plan, config, step, hw)
    assert not s["bit_exact"] and s["errors"] == ["job 0: TIMEOUT"]
