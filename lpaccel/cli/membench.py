"""``lpaccel mem-bench``: LpddrController + LpddrModel in Verilator, measured.

Streams reads through the controller's AXI4 port (sequential or random
256-beat bursts), and reports the delivered bandwidth against the DRAM's
peak, the timing checker's verdict and the controller's loss counters.
"""

import contextlib
import io
import json
import os
import sys
from pathlib import Path

from lpaccel.paths import build_dir
from lpaccel.rtl.dram.config import LpddrConfig
from lpaccel.rtl.soc_config import DEFAULT_LPDDR_RATIO, LPDDR_MEMORIES

__all__ = ["MEMORIES", "run_mem_bench"]


#: Parts ``mem-bench`` accepts: every LPDDR part.
MEMORIES = LPDDR_MEMORIES


def _factory(**params):
    from lpaccel.sim.tops.lpddr import make_sim_top
    return make_sim_top(**params)


def run_mem_bench(memory="lpddr4-3200", pattern="seq", nbytes=1 << 20, *,
                  refresh="per_bank", ratio=None, seed=1, work_dir=None):
    """Run one measurement and return the report (one JSON-able dict).

    Parameters
    ----------
    memory : str
        One of :data:`MEMORIES`.
    pattern : str
        ``"seq"`` or ``"random"``.
    nbytes : int
        Bytes to read (rounded to whole 256-beat bursts, at least one).
    refresh : str
        ``"per_bank"`` or ``"all_bank"``.
    ratio : int or None
        Controller:DRAM clock ratio (1, 2, 4 or 8); ``None`` takes
        :data:`~lpaccel.rtl.soc_config.DEFAULT_LPDDR_RATIO` for the part.

    Raises
    ------
    ValueError
        On an unknown memory or pattern.
    """
    if memory not in MEMORIES:
        raise ValueError(f"memory {memory!r} is not supported by mem-bench "
                         f"(supported: {', '.join(MEMORIES)})")
    if pattern not in ("seq", "random"):
        raise ValueError(f"pattern must be 'seq' or 'random', not {pattern!r}")
    from lpaccel.sim.infra.harness import run_cocotb
    if ratio is None:
        ratio = DEFAULT_LPDDR_RATIO[memory]
    params = {"part": memory, "ratio": ratio, "sim_bytes": 64 * 1024,
              "refresh": refresh, "window": 8}
    LpddrConfig(**params)  # validate before building anything
    work = Path(work_dir) if work_dir else build_dir("runs")
    work.mkdir(parents=True, exist_ok=True)
    report_file = work / f"membench-{memory}-{pattern}-{os.getpid()}.json"
    if report_file.exists():
        report_file.unlink()
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            run_cocotb(_factory, name="lpddr_top", params=params,
                       test_module="lpaccel.sim.testbenches.lpddr", testcase="bench", seed=seed,
                       extra_env={"LPACCEL_REPORT": str(report_file),
                                  "LPACCEL_BENCH": json.dumps({"pattern": pattern,
                                                               "bytes": nbytes,
                                                               "seed": seed})})
    except BaseException:
        sys.stderr.write(log.getvalue())
        raise
    report = json.loads(report_file.read_text())
    report_file.unlink()
    return report
