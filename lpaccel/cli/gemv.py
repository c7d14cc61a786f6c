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

from lpaccel import quant, repack
from lpaccel.paths import build_dir
from lpaccel.rtl.config import BCQ_PLANES, BLOCK, GemvConfig, WeightFormat
from lpaccel.sim.golden import gemv as golden

__all__ = ["GemvCase", "make_case", "run_gemv", "engine_config_for"]



@dataclass
class GemvCase:
    """Everything one GEMV run needs, host side.

    Attributes
    ----------
    weights : QuantizedWeights
        The quantized matrix (format, shape and group).
    x : numpy.ndarray
        float32 activations, ``[cols]``.
    """

    weights: quant.QuantizedWeights
    x: np.ndarray
    expected: np.ndarray = field(init=False)
    reference: np.ndarray = field(init=False)

    def __post_init__(self):
        self.expected = golden.gemv_golden(self.weights, self.x)
        self.reference = golden.gemv_reference_f64(self.weights, self.x)

    @property
    def fmt(self):
        return self.weights.fmt

    @property
    def rows(self):
        return self.weights.rows

    @property
    def cols(self):
        return self.weights.cols


def make_case(fmt, rows, cols, group=None, seed=0, weight_std=0.02, planes=None,
              offset=False):
    """Random weights ``N(0, weight_std)`` quantized (GGUF formats by
    ``gguf.quants``) and ``N(0, 1)`` activations.

    F16 rounds the weights to float16. BCQ (``planes`` 1 to 4, default 2;
    ``offset`` adds a per-group offset) quantizes them with
    :func:`lpaccel.bcq.quantize_bcq`.

    Raises
    ------
    ValueError
        On an unsupported format, group or plane count, or a shape that is
        not ``rows >= 1`` and ``cols`` a positive multiple of the group.
    """
    fmt = WeightFormat.parse(fmt)
    if fmt is not WeightFormat.BCQ and (planes is not None or offset):
        raise ValueError(f"planes/offset: only BCQ weights have binary planes and offsets; "
                         f"leave them unset for {fmt.name}")
    if fmt is WeightFormat.BCQ and planes is None:
        planes = 2
    if fmt.grouped and group is None:
        group = 128
    if not isinstance(rows, int) or rows < 1:
        raise ValueError(f"rows must be a positive integer, not {rows!r}")
    unit = group or BLOCK
    if not isinstance(cols, int) or cols < unit or cols % unit:
        raise ValueError(f"cols must be a positive multiple of {unit}, not {cols!r}")
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, weight_std, (rows, cols)).astype(np.float32)
    x = rng.normal(0.0, 1.0, cols).astype(np.float32)
    if fmt is WeightFormat.BCQ:
        if planes not in BCQ_PLANES:
            raise ValueError(f"planes = {planes!r}: BCQ has 1 to {BCQ_PLANES[-1]} binary "
                             f"planes (--bits)")
        return GemvCase(quant.quantize_weights(w, fmt, group, planes=planes, offset=offset), x)
    return GemvCase(quant.quantize_weights(w, fmt, group), x)


def engine_config_for(lanes, cols, word_bits=None):
    """The engine configuration a run of ``cols`` columns is built with.

    The activation buffers hold the default ``GemvConfig.max_cols`` unless
    the job needs more, so that most runs share one Verilator build.
    """
    return GemvConfig.sized_for(cols, lanes=lanes, word_bits=word_bits,
                                at_least=GemvConfig().max_cols)


def _engine_factory(lanes, word_bits, max_cols):
    from lpaccel.rtl.gemv import GemvEngine
    return GemvEngine(GemvConfig(lanes=lanes, word_bits=word_bits, max_cols=max_cols))


def run_gemv(case, lanes=32, *, word_bits=None, stall=None, seed=0, work_dir=None):
    """Run ``case`` on the RTL engine in Verilator and measure it.

    Parameters
    ----------
    case : GemvCase
    lanes : int
        Engine lanes (8 to 128, power of two).
    word_bits : int, optional
        Weight-port width (64 to 512); default ``4 * lanes`` (within 64..512).
    stall : dict, optional
        Pause modes for the testbench, e.g. ``{"idle": "random",
        "backpressure": "periodic"}``; default none (a measurement run).
    seed : int
        Seed of the testbench's random pauses.
    work_dir : path, optional
        Where the case and report files go; default ``build/runs/``.

    Returns
    -------
    dict
        The report of ``lpaccel gemv --json`` (keys in DESIGN.md).
    """
    from lpaccel.sim.infra.harness import run_cocotb

    config = engine_config_for(lanes, case.cols, word_bits)
    config.check_job(case.fmt, case.rows, case.cols, case.weights.group,
                     case.weights.planes or None)
    work = Path(work_dir) if work_dir else build_dir("runs")
    work.mkdir(parents=True, exist_ok=True)
    tag = f"{case.fmt.name.lower()}-{case.rows}x{case.cols}-l{lanes}-{os.getpid()}"
    case_file = work / f"{tag}.npz"
    report_file = work / f"{tag}.json"
    mant, exp = quant.quantize_activations(case.x)
    w = case.weights
    stream = repack.repack_weights_bytes(w, config)
    np.savez(case_file,
             job=np.array([int(w.fmt), w.rows, w.cols, w.group]),
             **{f"w_{k}": v for k, v in w.to_arrays().items()},
             mant=mant, exp=exp,
             weights=np.frombuffer(stream, dtype=np.uint8),
             expected=case.expected.view(np.uint32))
    if report_file.exists():
        report_file.unlink()
    # The simulator's log is only interesting when something went wrong; the
    # command line's stdout is reserved for the report (one JSON object).
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            run_cocotb(_engine_factory, name="gemv_engine",
                       params={"lanes": config.lanes, "word_bits": config.word_bits,
                               "max_cols": config.max_cols},
                       test_module="lpaccel.sim.testbenches.gemv", testcase="run_case",
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
    layout = repack.layout_of(w, config)
    bit_exact = bool(np.array_equal(y.view(np.uint32), case.expected.view(np.uint32)))
    return {
        "format": case.fmt.name.lower(),
        "group": w.group,
        "planes": w.planes,
        "offset": w.offset,
        "rows": case.rows,
        "cols": case.cols,
        "lanes": lanes,
        "word_bits": config.word_bits,
        "beat_bits": config.beat_bits,
        "memory": "stream",
        "cycles": hw["cycles"],
        "ideal_cycles": layout.ideal_cycles,
        "stream_cycles": hw["stream_cycles"],
        "load_cycles": hw["load_cycles"],
        "latency_cycles": hw["latency_cycles"],
        "weight_bytes": layout.bytes,
        "bw_utilization": round(layout.ideal_cycles / hw["cycles"], 6),
        "stream_utilization": round(layout.ideal_cycles / hw["stream_cycles"], 6),
        "bit_exact": bit_exact,
        "mismatches": int(np.count_nonzero(y.view(np.uint32) != case.expected.view(np.uint32))),
        "rel_rms_error": float(golden.rel_rms_error(y, case.reference)),
        # No DRAM model is in the loop yet, so there is no timing checker to ask.
        "timing_violations": None,
    }
