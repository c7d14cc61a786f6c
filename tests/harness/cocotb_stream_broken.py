"""cocotb tests proving StreamMonitor catches broken streams of BrokenStreams.

``fails_on_*`` tests are meant to FAIL; test_harness.py asserts that they do.
"""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from lpaccel.sim.infra.streams import StreamSink, periodic_pause


async def start(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0


@cocotb.test(timeout_time=10, timeout_unit="us")
async def fails_on_valid_drop(dut):
    await start(dut)
    StreamSink(dut.clk, dut, "dropper", pause=periodic_pause(on=1, off=3))
    await ClockCycles(dut.clk, 50)


@cocotb.test(timeout_time=10, timeout_unit="us")
async def fails_on_payload_change(dut):
    await start(dut)
    StreamSink(dut.clk, dut, "changer", pause=periodic_pause(on=1, off=3))
    await ClockCycles(dut.clk, 50)


@cocotb.test(timeout_time=10, timeout_unit="us")
async def violations_are_recorded(dut):
    await start(dut)
    dropper = StreamSink(dut.clk, dut, "dropper", pause=periodic_pause(on=1, off=3),
                         raise_on_error=False)
    changer = StreamSink(dut.clk, dut, "changer", pause=periodic_pause(on=1, off=3),
                         raise_on_error=False)
    await ClockCycles(dut.clk, 50)
    assert dropper.errors and all("valid fell" in e for e in dropper.errors), dropper.errors
    assert changer.errors and all("payload changed" in e for e in changer.errors), changer.errors
    # Transfers still happen (and are delivered) around the violations.
    assert dropper.beats > 0 and changer.beats > 0


@cocotb.test()
async def fails_on_deprecation_warning(dut):
    import warnings
    warnings.warn("this API is going away", DeprecationWarning, stacklevel=1)


@cocotb.test()
async def skipped_at_run_time(dut):
    # cocotb records a pytest.skip() as "skipped", not as a failure; the
    # harness must still fail the pytest test, because nothing was checked.
    import pytest
    pytest.skip("nothing to check on this build")
