# amaranth: UnusedElaboratable=no
"""ULX3S SDRAM clock phase: the PLL's phase-shifted output and the clock pin.

Fast, amaranth-level checks (no synthesis): the ``EHXPLLL`` phase setting
against the ECP5 relation ``steps = round(phase * div / 45)``, ``CPHASE =
steps // 8 + div - 1``, ``FPHASE = steps % 8`` with worked numbers; the
``sdram_clk_phase`` validation; and, in the elaborated
:class:`Ulx3sDramSelfTestTop` (the real platform, its ``sdram`` resource),
which PLL output and which DDR data drive the SDRAM clock pin for 90 and
180 degrees. The bitstream itself is built by the slow
``tests/boards/test_litedram.py::test_ulx3s_dram_selftest_bitstream``.
"""


import pytest
from amaranth.hdl import ClockSignal, Const, Fragment, Instance, IOPort, Value
from amaranth.lib import io
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from lpaccel.boards.ecp5 import Ecp5PllClock, ecp5_pll_params, ecp5_pll_phase
from lpaccel.boards.litedram import LiteDramCore, generate_litedram_core
from lpaccel.boards.ulx3s import Ulx3sDramSelfTestTop


def _assert_rejected(match, build):
    # The rejected object exists (Elaboratable.__new__ ran in this file), so
    # amaranth would warn that it was never used: the file comment silences it.
    with pytest.raises(ValueError, match=match):
        build()


def _walk(fragment, path=()):
    yield path, fragment
    for sub, name, _ in fragment.subfragments:
        yield from _walk(sub, path + (name,))


def _instances(fragment, cell_type):
    return {path: f for path, f in _walk(fragment)
            if isinstance(f, Instance) and f.type == cell_type}


def _clock_domain(value):
    assert isinstance(value, ClockSignal), value
    return value.domain


# -- the phase relation -------------------------------------------------------

@pytest.mark.parametrize("div, phase, expected", [
    # 50 MHz from the 600 MHz VCO: div 12, one step = 45/12 = 3.75 degrees.
    (12, 0, (11, 0)),       # 0 steps: the zero-phase setting, CPHASE = DIV - 1
    (12, 90, (14, 0)),      # 90 / 3.75 = 24 steps = 3 whole VCO periods
    (12, 180, (17, 0)),     # 48 steps = 6 VCO periods
    (12, 270, (20, 0)),     # 72 steps = 9 VCO periods
    # 100 MHz, div 6: one step = 7.5 degrees.
    (6, 90, (6, 4)),        # 12 steps = 1 period + 4 eighths
    (6, 180, (8, 0)),       # 24 steps
    (6, 45, (5, 6)),        # 6 steps: fine phase only
    # Rounding to the nearest step: 10 degrees at div 12 is 2.67 -> 3 steps.
    (12, 10, (11, 3)),
])
def test_pll_phase_worked_numbers(div, phase, expected):
    assert ecp5_pll_phase(div, phase) == expected


def test_pll_phase_matches_the_formula_for_every_step():
    for div in (1, 2, 5, 12, 64):
        for steps in range(8 * div):
            phase = steps * 45 / div
            cphase, fphase = ecp5_pll_phase(div, phase)
            assert (cphase - (div - 1)) * 8 + fphase == steps, (div, phase)
            assert 0 <= fphase <= 7


@pytest.mark.parametrize("div, phase, match", [
    (12, 360, "below 360 degrees, not 360"),
    (12, -90, "at least 0 .* not -90"),
    (0, 90, "divider must be an integer from 1 to 128, not 0"),
    (129, 90, "not 129"),
    # div 128, 270 degrees: 768 steps, CPHASE 96 + 127 does not fit 7 bits.
    (128, 270, "needs CPHASE 223, but the field holds 0 to 127"),
])
def test_pll_phase_rejects_out_of_range(div, phase, match):
    with pytest.raises(ValueError, match=match):
        ecp5_pll_phase(div, phase)


def test_pll_clock_shifted_output_params():
    pll = Ecp5PllClock(25.0, 50.0, shifted_domain="sync_ps", shifted_phase=90)
    assert ecp5_pll_params(25.0, 50.0)["clkop_div"] == 12
    assert (pll.params["clkos_div"], pll.params["clkos_cphase"],
            pll.params["clkos_fphase"]) == (12, 14, 0)
    single = Ecp5PllClock(25.0, 50.0)
    assert "clkos_div" not in single.params
    _assert_rejected("shifted_domain must differ from domain 'sync'",
                     lambda: Ecp5PllClock(25.0, 50.0, shifted_domain="sync"))


def _pll_instance(pll):
    frag = Fragment.get(pll, None)
    (inst,) = _instances(frag, "EHXPLLL").values()
    return inst


def test_pll_clock_instances():
    shifted = _pll_instance(Ecp5PllClock(25.0, 50.0, clk_in=ClockSignal("ref"),
                                         shifted_domain="sync_ps", shifted_phase=180))
    p = shifted.parameters
    assert (p["CLKOS_ENABLE"], p["CLKOS_DIV"], p["CLKOS_CPHASE"], p["CLKOS_FPHASE"]) == \
        ("ENABLED", 12, 17, 0)
    assert (p["CLKOP_DIV"], p["CLKOP_CPHASE"], p["CLKOP_FPHASE"]) == (12, 11, 0)
    assert _clock_domain(shifted.ports["CLKOS"][0]) == "sync_ps"
    assert _clock_domain(shifted.ports["CLKOP"][0]) == "sync"
    single = _pll_instance(Ecp5PllClock(25.0, 50.0, clk_in=ClockSignal("ref")))
    assert not any("CLKOS" in k for k in single.parameters)
    assert "CLKOS" not in single.ports
    # The single-output instance is the shifted one minus the CLKOS entries.
    assert {k: v for k, v in p.items() if "CLKOS" not in k} == dict(single.parameters)


# -- the sdram_clk_phase option -----------------------------------------------

@pytest.mark.parametrize("phase", [0, 45, 270, "90", True])
def test_top_rejects_other_phases(phase):
    _assert_rejected(r"sdram_clk_phase must be 90 \(a 90-degree PLL output, LiteX's "
                     rf"choice\) or 180 \(the sync clock inverted\), not {phase!r}",
                     lambda: Ulx3sDramSelfTestTop(sdram_clk_phase=phase))


@pytest.fixture(scope="module")
def ulx3s_core():
    return generate_litedram_core("ulx3s")


@pytest.mark.parametrize("phase", [0, 270])
def test_core_rejects_other_phases(ulx3s_core, phase):
    _assert_rejected(rf"sdram_clk_phase must be 90 \(the sync_ps clock, LiteX's choice\) "
                     rf"or 180 \(the sync clock inverted\), not {phase}",
                     lambda: LiteDramCore(ulx3s_core, sdram_clk_phase=phase))


def test_default_phase_is_90(ulx3s_core):
    for obj in (Ulx3sDramSelfTestTop(), LiteDramCore(ulx3s_core)):
        assert obj.sdram_clk_phase == 90


# -- the elaborated designs ---------------------------------------------------

def _elaborate_top(phase):
    return Fragment.get(Ulx3sDramSelfTestTop(sdram_clk_phase=phase), ULX3S_85F_Platform())


@pytest.mark.parametrize("phase, cphase", [(90, 14)])
def test_top_90_uses_the_shifted_pll_output(phase, cphase):
    frag = _elaborate_top(phase)
    (pll,) = _instances(frag, "EHXPLLL").values()
    p = pll.parameters
    assert (p["CLKOS_ENABLE"], p["CLKOS_DIV"], p["CLKOS_CPHASE"], p["CLKOS_FPHASE"]) == \
        ("ENABLED", p["CLKOP_DIV"], cphase, 0)
    assert _clock_domain(pll.ports["CLKOS"][0]) == "sync_ps"
    (oddr,) = _instances(frag, "ODDRX1F").values()
    assert _clock_domain(oddr.ports["SCLK"][0]) == "sync_ps"
    assert frag.domains["sync_ps"].rst is None      # reset-less, only the clock pin


def test_top_180_has_clkop_only():
    frag = _elaborate_top(180)
    (pll,) = _instances(frag, "EHXPLLL").values()
    assert not any("CLKOS" in k for k in pll.parameters)
    assert "CLKOS" not in pll.ports
    assert "sync_ps" not in frag.domains
    (oddr,) = _instances(frag, "ODDRX1F").values()
    assert _clock_domain(oddr.ports["SCLK"][0]) == "sync"


@pytest.mark.parametrize("phase, domain, data", [(90, "sync_ps", (1, 0)),
                                                 (180, "sync", (0, 1))])
def test_top_clock_pin_ddr_buffer(phase, domain, data):
    # The SDRAM clock pin's io.DDRBuffer: its clock domain and the
    # constants on its rising-edge (o[0]) and falling-edge (o[1]) halves.
    frag = _elaborate_top(phase)
    dram = {n: s for s, n, _ in frag.subfragments}["dram"]
    buf_frag = {n: s for s, n, _ in dram.subfragments}["sdram_clk_buf"]
    buf = buf_frag.origins[0]
    assert isinstance(buf, io.DDRBuffer)
    assert buf.o_domain == domain
    o = Value.cast(buf.o)       # ArrayLayout(1, 2) view: o[0] rising, o[1] falling
    driven = {}
    for stmt in dram.statements["comb"]:
        lhs = stmt.lhs
        if getattr(lhs, "value", None) is o and isinstance(stmt.rhs, Const):
            driven[lhs.start] = stmt.rhs.value
    assert (driven[0], driven[1]) == data


@pytest.mark.parametrize("phase, domain, data", [(90, "sync_ps", (1, 0)),
                                                 (180, "sync", (0, 1))])
def test_core_with_raw_pads_odrrx1f(ulx3s_core, phase, domain, data):
    # The pads-dict path (no platform resource) instantiates ODDRX1F itself.
    pads = {name: IOPort(width, name=name)
            for name, (_, width) in {**ulx3s_core.dram_pins, "sdram_clk": ("output", 1)}.items()}
    frag = Fragment.get(LiteDramCore(ulx3s_core, pads=pads, sdram_clk_phase=phase), None)
    (oddr,) = _instances(frag, "ODDRX1F").values()
    assert _clock_domain(oddr.ports["SCLK"][0]) == domain
    d0, d1 = oddr.ports["D0"][0], oddr.ports["D1"][0]
    assert (d0.value, d1.value) == data
