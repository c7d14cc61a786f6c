"""Tests of the cocotb harness itself: stream drivers, checker, run_cocotb."""

import pytest
from amaranth import Module, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from lpaccel.sim.infra.harness import build_dir_for, run_cocotb
from lpaccel.sim.infra.streams import layout_width, pack, unpack


class IncrementFifo(wiring.Component):
    """A SyncFIFO between two streams that adds 1 to every payload (wrapping).

    Parameters
    ----------
    width : int
        Payload width.
    depth : int
        FIFO depth.

    Ports
    -----
    operands : In(stream.Signature(width))
    results : Out(stream.Signature(width))
    """

    def __init__(self, width, depth):
        self.width = width
        self.depth = depth
        super().__init__({
            "operands": In(stream.Signature(width)),
            "results": Out(stream.Signature(width)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = queue = fifo.SyncFIFO(width=self.width, depth=self.depth)
        m.d.comb += [
            queue.w_stream.payload.eq(self.operands.payload + 1),
            queue.w_stream.valid.eq(self.operands.valid),
            self.operands.ready.eq(queue.w_stream.ready),
        ]
        wiring.connect(m, queue.r_stream, wiring.flipped(self.results))
        return m


class BrokenStreams(wiring.Component):
    """Two output streams that each break one stream rule, for negative tests.

    Ports
    -----
    dropper : Out(stream.Signature(width))
        ``valid`` toggles every cycle whether or not the beat was taken.
    changer : Out(stream.Signature(width))
        ``valid`` is always high but ``payload`` counts every cycle, also
        while stalled.
    """

    def __init__(self, width):
        self.width = width
        super().__init__({
            "dropper": Out(stream.Signature(width)),
            "changer": Out(stream.Signature(width)),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.dropper.valid.eq(~self.dropper.valid)
        m.d.sync += self.changer.payload.eq(self.changer.payload + 1)
        m.d.comb += [
            self.dropper.payload.eq(0x5A),
            self.changer.valid.eq(1),
        ]
        return m


class PeekFifo(IncrementFifo):
    """:class:`IncrementFifo` whose inner FIFO's ``level`` a testbench may read."""

    sim_public = (("*.fifo", "level"),)


PASSTHROUGH = {"component_factory": IncrementFifo, "name": "increment_fifo",
                   "params": {"width": 16, "depth": 4},
                   "test_module": "harness.cocotb_stream_passthrough"}
BROKEN = {"component_factory": BrokenStreams, "name": "broken_streams",
              "params": {"width": 8}, "test_module": "harness.cocotb_stream_broken"}


def test_passthrough_all_pause_combinations():
    # One build, one simulator run: 9 cocotb tests ({none, periodic, random}
    # idle on the input x the same back-pressure on the output), selected by
    # the parametrized test's name.
    run_cocotb(**PASSTHROUGH, testcase="run_test", seed=1234)


def test_monitor_catches_valid_drop():
    with pytest.raises(AssertionError, match=r"fails_on_valid_drop.*valid fell"):
        run_cocotb(**BROKEN, testcase="fails_on_valid_drop", seed=1)


def test_monitor_catches_payload_change():
    with pytest.raises(AssertionError, match=r"fails_on_payload_change.*payload changed"):
        run_cocotb(**BROKEN, testcase="fails_on_payload_change", seed=1)


def test_monitor_records_without_raising():
    run_cocotb(**BROKEN, testcase="violations_are_recorded", seed=1)


def test_deprecation_warning_fails_cocotb_test():
    with pytest.raises(AssertionError, match=r"fails_on_deprecation_warning.*going away"):
        run_cocotb(**BROKEN, testcase="fails_on_deprecation_warning")


def test_zero_tests_is_a_failure():
    with pytest.raises(AssertionError, match="'no_such_test' requested .* did not run"):
        run_cocotb(**BROKEN, testcase="no_such_test")
    with pytest.raises(AssertionError, match="no cocotb test ran"):
        run_cocotb(**BROKEN, extra_env={"COCOTB_TEST_FILTER": "no_such_test"})


def test_unknown_test_name_is_a_failure():
    # One known name must not hide a misspelt one beside it.
    with pytest.raises(AssertionError, match=r"'no_such_test' requested .* did not run"):
        run_cocotb(**BROKEN, testcase=["violations_are_recorded", "no_such_test"], seed=1)


def test_name_suffix_is_a_failure():
    # cocotb_tools' own testcase regex would take "are_recorded" for
    # violations_are_recorded; the harness insists on the exact name.
    with pytest.raises(AssertionError, match=r"'are_recorded' requested .* did not run"):
        run_cocotb(**BROKEN, testcase="are_recorded", seed=1)


def test_variant_names_select_variants():
    # A full variant name, or a leading part of one, selects those variants;
    # a misspelt value selects nothing and fails.
    run_cocotb(**PASSTHROUGH, testcase=["run_test/idle=random/backpressure=periodic",
                                        "run_test/idle=none"], seed=1)
    with pytest.raises(AssertionError, match=r"'run_test/idle=rand' requested .* did not run"):
        run_cocotb(**PASSTHROUGH, testcase="run_test/idle=rand", seed=1)


def test_skipped_test_is_a_failure():
    with pytest.raises(AssertionError,
                       match=r"1 of 1 cocotb tests were skipped(.|\n)*skipped_at_run_time"):
        run_cocotb(**BROKEN, testcase="skipped_at_run_time", seed=1)


def test_sim_public_signals_are_reachable_and_only_they():
    # Builds make only the top's ports and the sim_public entries visible
    # through VPI (the rest is left to Verilator's optimiser).
    run_cocotb(PeekFifo, name="peek_fifo", params=PASSTHROUGH["params"],
               test_module="harness.cocotb_public", testcase="listed_signal_is_reachable")
    # The pass-through tests' build (no sim_public): no second compile.
    run_cocotb(IncrementFifo, name="increment_fifo", params=PASSTHROUGH["params"],
               test_module="harness.cocotb_public", testcase="unlisted_signal_is_hidden")


def test_build_dir_depends_on_params():
    a = build_dir_for(IncrementFifo, name="increment_fifo", params={"width": 16, "depth": 4})
    b = build_dir_for(IncrementFifo, name="increment_fifo", params={"depth": 4, "width": 16})
    c = build_dir_for(IncrementFifo, name="increment_fifo", params={"width": 16, "depth": 8})
    w = build_dir_for(IncrementFifo, name="increment_fifo", params={"width": 16, "depth": 4},
                      waves=True)
    assert a == b
    assert len({a, c, w}) == 3
    assert a.parent.parts[-2:] == ("build", "sim") and a.name.startswith("increment_fifo-")


def test_build_dir_depends_on_extra_verilog(tmp_path):
    extra = tmp_path / "core.v"
    extra.write_text("module core; endmodule\n")
    params = {"width": 16, "depth": 4}
    plain = build_dir_for(IncrementFifo, name="increment_fifo", params=params)
    one = build_dir_for(IncrementFifo, name="increment_fifo", params=params,
                        verilog_sources=[extra])
    extra.write_text("module core(input a); endmodule\n")
    two = build_dir_for(IncrementFifo, name="increment_fifo", params=params,
                        verilog_sources=[extra])
    assert len({plain, one, two}) == 3


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="not a Verilog identifier"):
        run_cocotb(IncrementFifo, name="1fifo", params={}, test_module="harness.x")
    with pytest.raises(ValueError, match="does not exist"):
        run_cocotb(IncrementFifo, name="fifo", params={}, test_module="harness.no_such_module")
    with pytest.raises(ValueError, match="JSON"):
        run_cocotb(IncrementFifo, name="fifo", params={"width": object()},
                   test_module="harness.cocotb_stream_passthrough")
    with pytest.raises(ValueError, match="is not a file; generate it"):
        run_cocotb(IncrementFifo, name="fifo", params={},
                   test_module="harness.cocotb_stream_passthrough",
                   verilog_sources=["build/no_such_core.v"])


class Header(data.Struct):
    fmt: 2
    rows: 8
    extra: data.StructLayout({"bias": signed(3), "lanes": data.ArrayLayout(4, 2)})


@pytest.mark.parametrize("value", [
    {"fmt": 1, "rows": 3},
    {"fmt": 3, "rows": 255, "extra": {"bias": -4, "lanes": [15, 0]}},
    {"extra": {"bias": 3, "lanes": [1, 2]}},
])
def test_pack_matches_amaranth(value):
    # Amaranth's own constant of the layout is the reference bit pattern.
    expected = Header.const(value).as_value().value
    assert pack(Header, value) == expected
    assert pack(Header, unpack(Header, expected)) == expected
    assert layout_width(Header) == 21


def test_pack_rejects_bad_fields():
    with pytest.raises(ValueError, match=r"payload\.rows: 256 does not fit"):
        pack(Header, {"rows": 256})
    with pytest.raises(ValueError, match=r"no field\(s\) 'row'"):
        pack(Header, {"row": 1})
    with pytest.raises(ValueError, match=r"payload\.extra\.bias: 4 does not fit signed\(3\)"):
        pack(Header, {"extra": {"bias": 4}})
    with pytest.raises(ValueError, match="expected 2 elements"):
        pack(Header, {"extra": {"lanes": [1]}})
