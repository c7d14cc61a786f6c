"""cocotb testbench for LpddrController + LpddrModel (``sim/tops/lpddr.py``).

:class:`LpddrTB` wraps the simulation top: clock, reset, a cocotbext-axi
``AxiMaster`` on ``s_axi`` with an :class:`AxiProtocolChecker` on the same
port, a watcher that fails the test on the first timing violation (printing
rule, bank and DRAM cycle), and helpers to read the controller's counters.
The ``bench`` test below is what ``lpaccel mem-bench`` runs; the regression
tests live in ``tests/dram/cocotb_lpddr.py``.
"""

import json
import os
import random
import warnings

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, Timer

from lpaccel.rtl.dram.config import LpddrConfig
from lpaccel.rtl.dram.perf import LpddrPerfSignature
from lpaccel.sim.infra.axi_checker import AxiProtocolChecker
from lpaccel.sim.infra.axi_traffic import quiet_axi_master
from lpaccel.sim.infra.harness import params
from lpaccel.sim.models.lpddr import Rule

__all__ = ["LpddrTB", "config_from_params"]

# cocotbext-axi 0.1.28 still calls cocotb's deprecated setimmediatevalue();
# that is its deprecation, not ours: silence exactly that module's.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.")


def config_from_params(p):
    """The :class:`LpddrConfig` a run's parameters describe."""
    return LpddrConfig(part=p.get("part", "lpddr4-3200"), ratio=p.get("ratio", 4),
                       sim_bytes=p.get("sim_bytes", 256 * 1024),
                       refresh=p.get("refresh", "per_bank"), window=p.get("window", 16))


class LpddrTB:
    """Testbench around the controller + model top.

    Parameters
    ----------
    dut : cocotb handle
        The ``LpddrSimTop`` instance.
    config : LpddrConfig
    check_axi : bool
        Watch ``s_axi`` with an :class:`AxiProtocolChecker` (its first
        violation fails the test; :meth:`assert_quiet` also requires it idle
        and clean). Off only for measurement runs, to save simulation time.
    """

    def __init__(self, dut, config, *, check_axi=True):
        from cocotbext.axi import AxiBus, AxiMaster
        self.dut = dut
        self.config = config
        self.log = dut._log
        cocotb.start_soon(Clock(dut.clk, 2, unit="ns").start())
        self.axi = AxiMaster(AxiBus.from_prefix(dut, "s_axi"), dut.clk, dut.rst)
        quiet_axi_master(self.axi)
        self.checker = (AxiProtocolChecker(dut.clk, dut, "s_axi", reset=dut.rst)
                        if check_axi else None)
        self.cycle = 0
        self.violation = None
        cocotb.start_soon(self._watch())

    async def _watch(self):
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1
            if int(self.dut.violation.value) and self.violation is None:
                self.violation = self.describe_violation()
                self.log.error("timing violation: %s", self.violation)

    def describe_violation(self):
        d = self.dut
        return (f"rule {Rule(int(d.rule.value)).name}, bank {int(d.bank.value)}, "
                f"DRAM cycle {int(d.cycle.value)}")

    def set_pauses(self, mode_factory, seed):
        """Apply one pause pattern to all five AXI channels (distinct seeds)."""
        w, r = self.axi.write_if, self.axi.read_if
        for k, ch in enumerate((w.aw_channel, w.w_channel, w.b_channel, r.ar_channel,
                                r.r_channel)):
            ch.set_pause_generator(mode_factory(seed * 8 + k))

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    def perf(self):
        """The controller's counters and the checker's command counts."""
        d = self.dut
        out = {k: int(getattr(d, f"perf_{k}").value) for k in LpddrPerfSignature().members}
        for k in ("n_act", "n_rd", "n_wr", "n_refab", "n_refpb"):
            out[k] = int(getattr(d, k).value)
        out["refresh_debt_max"] = d.refresh_debt_max.value.to_signed()
        return out

    def assert_no_violation(self):
        assert not int(self.dut.violation.value), \
            f"timing checker: {self.describe_violation()}"

    async def assert_quiet(self, cycles=200):
        """Nothing outstanding: no response appears once the master is idle."""
        await self.axi.wait()
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
            assert not int(self.dut.s_axi_rvalid.value), "R beat with no read outstanding"
            assert not int(self.dut.s_axi_bvalid.value), "B response with no write outstanding"
        assert self.axi.idle()
        if self.checker is not None:
            self.checker.check_idle()


async def measure(tb, pattern, nbytes, seed=1):
    """Stream ``nbytes`` of reads (``seq``: one address range in order;
    ``random``: 256-beat bursts at random beat-aligned addresses) and return
    the cycles from the first AR to the last R beat.
    """
    cfg = tb.config
    beat = cfg.beat_bytes
    burst_bytes = 256 * beat
    rng = random.Random(seed)
    nbursts = max(1, nbytes // burst_bytes)
    # 4 KiB-aligned chunks keep every AXI burst legal (no 4 KiB crossing).
    chunk = min(burst_bytes, 4096)
    per = burst_bytes // chunk
    if pattern == "seq":
        addrs = [(k * chunk) % cfg.sim_bytes for k in range(nbursts * per)]
    else:
        addrs = [rng.randrange(cfg.sim_bytes // chunk) * chunk for _ in range(nbursts * per)]
    start = tb.cycle
    handles = [tb.axi.init_read(a, chunk) for a in addrs]
    for h in handles:
        await h.wait()
    cycles = tb.cycle - start
    return cycles, len(addrs) * chunk


@cocotb.test()
async def bench(dut):
    """Measurement run for ``lpaccel mem-bench`` (report file in LPACCEL_REPORT)."""
    p = params()
    cfg = config_from_params(p)
    tb = LpddrTB(dut, cfg, check_axi=False)
    await tb.reset()
    knobs = json.loads(os.environ.get("LPACCEL_BENCH", "{}"))
    pattern = knobs.get("pattern", "seq")
    nbytes = int(knobs.get("bytes", 1 << 20))
    before = tb.perf()
    cycles, moved = await measure(tb, pattern, nbytes, seed=knobs.get("seed", 1))
    await Timer(1, unit="ns")
    after = tb.perf()
    delta = {k: after[k] - before[k] for k in after}
    delta["refresh_debt_max"] = after["refresh_debt_max"]
    peak = cfg.beat_bytes
    report = {
        "memory": cfg.part.name,
        "pattern": pattern,
        "bytes": moved,
        "cycles": cycles,
        "ratio": cfg.ratio,
        "refresh_mode": cfg.refresh,
        "controller_mhz": round(cfg.controller_mhz, 3),
        "data_width_bits": cfg.data_width,
        "peak_bytes_per_cycle": peak,
        "bw_utilization": round(moved / (cycles * peak), 6),
        "timing_violations": int(int(dut.violation.value) != 0),
        "violation": tb.describe_violation() if int(dut.violation.value) else None,
        "loss": {k: delta[f"loss_{k}"] for k in ("refresh", "row_miss", "turnaround",
                                                   "other")},
        "counters": delta,
    }
    with open(os.environ["LPACCEL_REPORT"], "w") as f:
        json.dump(report, f)
