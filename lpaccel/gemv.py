"""Run one quantized GEMV on the RTL in Verilator and report on it.

The host side of the GEMV slice: it makes (or takes) a weight matrix and an
activation vector, quantizes and repacks them exactly as a driver would, runs
the engine in Verilator through cocotb, and compares the hardware's results
with the golden model (bit for bit) and with a float64 reference.
"""

import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lpaccel.rtl.config import BLOCK, GemvConfig, WeightFormat
from lpaccel.sim import golden, repack

__all__ = ["GemvCase", "make_case", "run_gemv", "engine_config_for"]

_REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class GemvCase:
    """Everything one GEMV run needs, host side.

    Attributes
    ----------
    fmt : WeightFormat
    rows, cols : int
    x : numpy.ndarray
        float32 activations, ``[cols]``.
    raw : numpy.ndarray
        GGUF weight bytes, ``uint8 [rows, cols / 32 * block_bytes]``.
    """

    fmt: WeightFormat
    rows: int
    cols: int
    x: np.ndarray
    raw: np.ndarray
    expected: np.ndarray = field(init=False)
    reference: np.ndarray = field(init=False)

    def __post_init__(self):
        self.expected = golden.gemv_golden(self.raw, self.fmt, self.rows, self.cols, self.x)
        self.reference = golden.gemv_reference_f64(self.raw, self.fmt, self.rows, self.cols,
                                                   self.x)


def make_case(fmt, rows, cols, seed=0, weight_std=0.02):
    """Random weights ``N(0, weight_std)`` quantized by ``gguf.quants`` and
    ``N(0, 1)`` activations.

    Raises
    ------
    ValueError
        On an unsupported format or a shape that is not ``rows >= 1`` and
        ``cols`` a positive multiple of 32.
    """
    fmt = WeightFormat.parse(fmt)
    if not isinstance(rows, int) or rows < 1:
        raise ValueError(f"rows must be a positive integer, not {rows!r}")
    if not isinstance(cols, int) or cols < BLOCK or cols % BLOCK:
        raise ValueError(f"cols must be a positive multiple of {BLOCK}, not {cols!r}")
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, weight_std, (rows, cols)).astype(np.float32)
    x = rng.normal(0.0, 1.0, cols).astype(np.float32)
    return GemvCase(fmt, rows, cols, x, golden.quantize_weights(w, fmt))


def engine_config_for(lanes, cols):
    """The engine configuration a run of ``cols`` columns is built with.

    The activation buffer is 4096 elements unless the job needs more, so
    that most runs share one Verilator build.
    """
    unit = BLOCK * max(1, lanes // BLOCK)
    max_cols = max(4096, -(-cols // unit) * unit)
    return GemvConfig(lanes=lanes, max_cols=max_cols)


def _engine_factory(lanes, max_cols):
    from lpaccel.rtl.gemv import GemvEngine
    return GemvEngine(GemvConfig(lanes=lanes, max_cols=max_cols))


def run_gemv(case, lanes=32, *, stall=None, seed=0, work_dir=None):
    """Run ``case`` on the RTL engine in Verilator and measure it.

    Parameters
    ----------
    case : GemvCase
    lanes : int
        Engine lanes (8 to 128, power of two).
    stall : dict, optional
        Pause modes for the testbench, e.g. ``{"weights": "random",
        "results": "periodic"}``; default none (a measurement run).
    seed : int
        Seed of the testbench's random pauses.
    work_dir : path, optional
        Where the case and report files go; default ``build/runs/``.

    Returns
    -------
    dict
        The report of ``lpaccel gemv --json`` (keys in DESIGN.md).
    """
    from lpaccel.sim.harness import run_cocotb

    config = engine_config_for(lanes, case.cols)
    work = Path(work_dir) if work_dir else _REPO_ROOT / "build" / "runs"
    work.mkdir(parents=True, exist_ok=True)
    tag = f"{case.fmt.name.lower()}-{case.rows}x{case.cols}-l{lanes}-{os.getpid()}"
    case_file = work / f"{tag}.npz"
    report_file = work / f"{tag}.json"
    mant, exp = golden.quantize_activations(case.x)
    words = repack.repack_weights_bytes(case.raw, case.fmt, case.rows, case.cols, config)
    np.savez(case_file,
             job=np.array([int(case.fmt), case.rows, case.cols]),
             mant=mant, exp=exp,
             weights=np.frombuffer(words, dtype=np.uint8),
             expected=case.expected.view(np.uint32))
    if report_file.exists():
        report_file.unlink()
    # The simulator's log is only interesting when something went wrong; the
    # command line's stdout is reserved for the report (one JSON object).
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            run_cocotb(_engine_factory, name="gemv_engine",
                       params={"lanes": config.lanes, "max_cols": config.max_cols},
                       test_module="lpaccel.sim.gemv_tb", testcase="run_case",
                       seed=seed,
                       extra_env={"LPACCEL_CASE": str(case_file),
                                  "LPACCEL_REPORT": str(report_file),
                                  "LPACCEL_STALL": json.dumps(stall or {})})
    except BaseException:
        sys.stderr.write(log.getvalue())
        raise
    hw = json.loads(report_file.read_text())
    case_file.unlink()
    report_file.unlink()
    y = np.array(hw["results"], dtype=np.uint32).view(np.float32)
    ideal = repack.stream_word_count(case.fmt, case.rows, case.cols, config)
    weight_bytes = ideal * config.word_bytes
    bit_exact = bool(np.array_equal(y.view(np.uint32), case.expected.view(np.uint32)))
    return {
        "format": case.fmt.name.lower(),
        "rows": case.rows,
        "cols": case.cols,
        "lanes": lanes,
        "word_bits": config.word_bits,
        "memory": "stream",
        "cycles": hw["cycles"],
        "ideal_cycles": ideal,
        "stream_cycles": hw["stream_cycles"],
        "load_cycles": hw["load_cycles"],
        "latency_cycles": hw["latency_cycles"],
        "weight_bytes": weight_bytes,
        "bw_utilization": round(ideal / hw["cycles"], 6),
        "stream_utilization": round(ideal / hw["stream_cycles"], 6),
        "bit_exact": bit_exact,
        "mismatches": int(np.count_nonzero(y.view(np.uint32) != case.expected.view(np.uint32))),
        "rel_rms_error": float(golden.rel_rms_error(y, case.reference)),
        # No DRAM model is in the loop yet, so there is no timing checker to ask.
        "timing_violations": None,
    }
