"""cocotb testbench for :class:`lpaccel.rtl.gemv.GemvEngine`.

:class:`GemvTB` owns the clock, one driver per input stream, the result
sink with its protocol monitor, and a cycle recorder. It is shared by the
regression tests (``tests/gemv/``) and by ``lpaccel gemv``, which runs the
:func:`run_case` test of this module on a case file written by the host.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from lpaccel.repack import activation_blocks
from lpaccel.rtl.config import BLOCK
from lpaccel.rtl.gemv.engine import GemvEngine
from lpaccel.sim.golden.gemv import QuantizedWeights
from lpaccel.sim.infra.streams import PAUSE_MODES, StreamSink, StreamSource, unpack

__all__ = ["GemvTB"]


class GemvTB:
    """Drives and observes one GEMV engine.

    Parameters
    ----------
    dut : cocotb handle
        The engine's top level (``clk``, ``rst`` and the stream ports).
    word_bits : int
        Width of the weight stream.
    idle : str
        Pause mode (a key of :data:`PAUSE_MODES`) of the three input streams.
    backpressure : str
        Pause mode of the result stream.
    seed : int
        Seed of the random pause patterns.
    """

    def __init__(self, dut, word_bits, *, idle="none", backpressure="none", seed=0):
        self.dut = dut
        self.word_bytes = word_bits // 8
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        mode = PAUSE_MODES
        self.job = StreamSource(dut.clk, dut, "job", pause=mode[idle](seed=seed + 1),
                                layout=GemvEngine.JobLayout)
        self.act = StreamSource(dut.clk, dut, "activations", pause=mode[idle](seed=seed + 2))
        self.weights = StreamSource(dut.clk, dut, "weights", pause=mode[idle](seed=seed + 3))
        self.results = StreamSink(dut.clk, dut, "results",
                                  pause=mode[backpressure](seed=seed + 4))
        self.cycle = 0
        self.events = {}
        dut.error_clear.value = 0
        cocotb.start_soon(self._record())

    async def _record(self):
        # First and last cycle of every handshake kind, sampled when settled.
        dut = self.dut
        names = ("job", "activations", "weights", "results")
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            await ReadOnly()
            for name in names:
                if int(getattr(dut, f"{name}__valid").value) and \
                        int(getattr(dut, f"{name}__ready").value):
                    first, _ = self.events.get(name, (self.cycle, None))
                    self.events[name] = (first, self.cycle)

    async def reset(self):
        """Hold reset for a few cycles."""
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    def submit(self, weights, mant, exp, stream):
        """Queue one job: descriptor, activation blocks and weight words.

        Parameters
        ----------
        weights : QuantizedWeights
            The job's weights (format, shape, group and BCQ's planes and offset are
            taken from it).
        mant, exp : numpy.ndarray
            BFP16 activations from :func:`lpaccel.sim.golden.gemv.quantize_activations`.
        stream : bytes
            The repacked weight stream (:func:`lpaccel.repack.repack_weights_bytes`).
        """
        wb = self.word_bytes
        words = [int.from_bytes(stream[i:i + wb], "little") for i in range(0, len(stream), wb)]
        self.job.send({"fmt": int(weights.fmt), "rows": weights.rows, "cols": weights.cols,
                       "group": weights.group, "planes": weights.planes,
                       "offset": int(weights.offset)})
        self.act.send_all(activation_blocks(mant, exp))
        self.weights.send_all(words)

    async def collect(self, rows):
        """Receive one job's ``rows`` results; check its ``last`` flags.

        Returns
        -------
        numpy.ndarray
            ``uint32 [rows]`` FP32 bits.
        """
        values, lasts = [], []
        for _ in range(rows):
            r = unpack(GemvEngine.ResultLayout, await self.results.recv())
            values.append(r["value"])
            lasts.append(r["last"])
        assert lasts == [0] * (rows - 1) + [1], f"'last' flags are wrong: {lasts}"
        return np.array(values, dtype=np.uint32)

    async def run_jobs(self, jobs):
        """Queue every job at once (back to back) and collect all results.

        Parameters
        ----------
        jobs : list of tuple
            ``(weights, mant, exp, stream)`` per job, as for :meth:`submit`.

        Returns
        -------
        results : list of numpy.ndarray
            Per job, ``uint32 [rows]`` FP32 bits.
        timing : dict
            ``cycles`` (first descriptor to last result, inclusive),
            ``load_cycles`` (first descriptor to last activation block),
            ``stream_cycles`` (first to last weight word), ``latency_cycles``
            (last weight word to last result).
        """
        self.events = {}
        for job in jobs:
            self.submit(*job)
        results = [await self.collect(w.rows) for w, *_ in jobs]
        # recv() returns inside the ReadOnly phase of the last transfer; one
        # edge later the recorder has certainly logged that transfer too.
        await RisingEdge(self.dut.clk)
        ev = self.events
        timing = {
            "cycles": ev["results"][1] - ev["job"][0] + 1,
            "load_cycles": ev["activations"][1] - ev["job"][0] + 1,
            "stream_cycles": ev["weights"][1] - ev["weights"][0] + 1,
            "latency_cycles": ev["results"][1] - ev["weights"][1],
        }
        return results, timing

    async def run_job(self, weights, mant, exp, stream):
        """One job on its own; returns ``(results, timing)`` as :meth:`run_jobs`."""
        results, timing = await self.run_jobs([(weights, mant, exp, stream)])
        return results[0], timing

    async def check_idle(self):
        """Assert that nothing is queued, in flight or left unread."""
        await RisingEdge(self.dut.clk)
        await ReadOnly()
        assert self.job.idle() and self.act.idle() and self.weights.idle(), \
            "beats left unsent: the engine stopped accepting input"
        assert self.results.empty(), \
            f"{self.results.count()} unexpected results were produced"
        assert not self.results.errors, f"stream protocol violations: {self.results.errors}"
        assert int(self.dut.busy.value) == 0, "engine still busy after its last result"
        assert int(self.dut.results__valid.value) == 0, "a result is still pending"


@cocotb.test()
async def run_case(dut):
    """Run the case file named by ``LPACCEL_CASE``; write ``LPACCEL_REPORT``."""
    from lpaccel.sim.infra.harness import params
    p = params()
    stall = json.loads(os.environ.get("LPACCEL_STALL", "{}"))
    case = np.load(os.environ["LPACCEL_CASE"])
    fmt, rows, cols, group = (int(v) for v in case["job"])
    weights = QuantizedWeights.from_arrays(fmt, rows, cols, group, case, prefix="w_")
    tb = GemvTB(dut, p["word_bits"], idle=stall.get("idle", "none"),
                backpressure=stall.get("backpressure", "none"))
    await tb.reset()
    values, timing = await tb.run_job(weights, case["mant"], case["exp"],
                                      case["weights"].tobytes())
    await tb.check_idle()
    assert len(case["mant"]) == weights.cols and len(case["exp"]) == weights.cols // BLOCK
    with open(os.environ["LPACCEL_REPORT"], "w") as f:
        json.dump({"results": values.tolist(), **timing}, f)
