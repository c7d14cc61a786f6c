"""cocotb: arbitration order of AXI4Arbiter (top ArbiterSramTop)."""

import cocotb
from cocotb.triggers import ClockCycles
from cocotb_traffic import MANAGERS, TB, P

from lpaccel.sim.infra.axi_traffic import quiet_axi_master


@cocotb.test()
async def round_robin(dut):
    """All managers saturated with single-beat reads: AR grants rotate."""
    tb = TB(dut)
    from cocotbext.axi import AxiBus, AxiMaster
    masters = [AxiMaster(AxiBus.from_prefix(dut, p), dut.clk, dut.rst) for p in MANAGERS]
    for mst in masters:
        quiet_axi_master(mst)
    order = []
    tb.checkers[-1].add_callback("ar", lambda cycle, p: order.append(
        p["id"] >> P["id_width"]))
    await tb.reset()
    n = len(MANAGERS)
    reads = [cocotb.start_soon(mst.read(64 * k + 8 * j, 8))
             for j in range(8) for k, mst in enumerate(masters)]
    for task in reads:
        await task
    await ClockCycles(dut.clk, 4)
    for checker in tb.checkers:
        checker.check_idle()
    assert sorted(order) == sorted(list(range(n)) * 8), order
    peak = tb.checkers[-1].peak_outstanding["reads"]
    assert 1 < peak <= P["max_outstanding"], (peak, P["max_outstanding"])
    # Once all managers are waiting, every window of n grants names each once.
    steady = order[n:-n]
    for i in range(len(steady) - n + 1):
        assert sorted(steady[i:i + n]) == list(range(n)), f"grants not round-robin: {order}"
