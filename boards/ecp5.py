"""Lattice ECP5 clocking shared by the ECP5 boards: the ``EHXPLLL`` PLL.

- :func:`ecp5_pll_params` chooses the PLL's dividers for one output clock;
- :func:`ecp5_pll_phase` converts a phase shift into ``CPHASE``/``FPHASE``;
- :class:`Ecp5PllClock` instantiates the PLL, drives a clock domain (and
  optionally a phase-shifted second one) and holds its reset until lock.

The ULX3S uses it for the GEMV self-test's core clock and for the SDRAM
self-test (``sync`` and the 90-degree ``sync_ps`` of the SDRAM clock pin);
the ECPIX-5's DRAM self-test needs none (its LiteDRAM core has its own PLL).
"""

from amaranth.hdl import ClockSignal, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

__all__ = ["Ecp5PllClock", "ecp5_pll_params", "ecp5_pll_phase"]

# ECP5 EHXPLLL operating ranges (Lattice TN1263 / FPGA-DS-02012), in MHz.
_PLL_PFD_RANGE = (3.125, 400.0)
_PLL_VCO_RANGE = (400.0, 800.0)
_PLL_OUT_RANGE = (3.125, 400.0)


def ecp5_pll_params(f_in_mhz, f_out_mhz):
    """Choose ``EHXPLLL`` dividers for one output clock.

    Searches every input, feedback and output divider for the output
    frequency closest to ``f_out_mhz`` within the ECP5's PFD and VCO ranges,
    preferring a VCO near the middle of its range (what ``ecppll`` does).
    Feedback is taken from ``CLKOP`` itself.

    Parameters
    ----------
    f_in_mhz : float
        Reference clock frequency in MHz.
    f_out_mhz : float
        Wanted ``CLKOP`` frequency in MHz.

    Returns
    -------
    dict
        ``clki_div``, ``clkfb_div``, ``clkop_div``, ``f_vco_mhz`` and
        ``f_out_mhz`` (the frequency actually produced).

    Raises
    ------
    ValueError
        If ``f_out_mhz`` is outside the ECP5 output range or no divider
        setting comes within 1% of it.
    """
    if not _PLL_OUT_RANGE[0] <= f_out_mhz <= _PLL_OUT_RANGE[1]:
        raise ValueError(f"PLL output frequency must be between {_PLL_OUT_RANGE[0]} and "
                         f"{_PLL_OUT_RANGE[1]} MHz on ECP5, not {f_out_mhz}")
    best = None
    for clki_div in range(1, 129):
        f_pfd = f_in_mhz / clki_div
        if not _PLL_PFD_RANGE[0] <= f_pfd <= _PLL_PFD_RANGE[1]:
            continue
        for clkfb_div in range(1, 81):
            f_out = f_pfd * clkfb_div
            for clkop_div in range(1, 129):
                f_vco = f_out * clkop_div
                if not _PLL_VCO_RANGE[0] <= f_vco <= _PLL_VCO_RANGE[1]:
                    continue
                key = (abs(f_out - f_out_mhz), abs(f_vco - 600.0))
                if best is None or key < best[0]:
                    best = (key, {"clki_div": clki_div, "clkfb_div": clkfb_div,
                                  "clkop_div": clkop_div, "f_vco_mhz": f_vco,
                                  "f_out_mhz": f_out})
    if best is None or best[0][0] > 0.01 * f_out_mhz:
        raise ValueError(f"no ECP5 PLL setting makes {f_out_mhz} MHz from {f_in_mhz} MHz "
                         f"within 1%; choose another core frequency")
    return best[1]


def ecp5_pll_phase(div, phase_deg):
    """``CPHASE`` and ``FPHASE`` of an ``EHXPLLL`` output shifted by ``phase_deg``.

    An output divided by ``div`` from the VCO lasts ``div`` VCO periods, and
    the PLL delays an output in eighths of a VCO period, so one step is
    ``45 / div`` degrees of the output. The shift is rounded to the nearest
    step (``steps = round(phase_deg * div / 45)``); the coarse part goes to
    ``CPHASE`` on top of the zero-phase value ``div - 1`` and the remainder
    to ``FPHASE``: ``CPHASE = steps // 8 + div - 1``, ``FPHASE = steps % 8``
    (the relation LiteX's ``ECP5PLL`` uses). For ``div = 12`` (50 MHz from a
    600 MHz VCO) 90 degrees is 24 steps: ``CPHASE = 14``, ``FPHASE = 0``.

    Parameters
    ----------
    div : int
        The output's divider (1 to 128).
    phase_deg : float
        Wanted delay in degrees of the output clock, ``0 <= phase_deg < 360``.

    Returns
    -------
    tuple of int
        ``(cphase, fphase)``.

    Raises
    ------
    ValueError
        If ``div`` or ``phase_deg`` is out of range, or the coarse phase
        does not fit ``CPHASE`` (0 to 127).
    """
    if not (isinstance(div, int) and 1 <= div <= 128):
        raise ValueError(f"PLL output divider must be an integer from 1 to 128, not {div!r}")
    if not 0 <= phase_deg < 360:
        raise ValueError(f"PLL output phase must be at least 0 and below 360 degrees, not "
                         f"{phase_deg!r}; give the equivalent angle in that range")
    steps = round(phase_deg * div / 45)
    cphase = steps // 8 + div - 1
    if cphase > 127:
        raise ValueError(f"PLL output phase {phase_deg} at divider {div} needs CPHASE "
                         f"{cphase}, but the field holds 0 to 127; use a smaller divider "
                         f"(a higher VCO) or a smaller angle")
    return cphase, steps % 8


class Ecp5PllClock(Elaboratable):
    """Drives the ``sync`` clock domain from an ECP5 PLL and a board clock.

    The domain itself is defined by the parent (``m.domains.sync =
    ClockDomain()``), as Amaranth 0.6 requires; this block drives its clock
    and holds its reset until the PLL locks.

    Parameters
    ----------
    f_in_mhz : float
        Frequency of ``clk_in`` in MHz.
    f_out_mhz : float
        Wanted core clock in MHz; see :func:`ecp5_pll_params`.
    clk_in : Signal or None
        Reference clock. ``None`` requests the platform's default clock
        resource at elaboration time.
    domain : str
        Clock domain to drive (defined by the parent).
    shifted_domain : str or None
        If given, a second clock domain (defined by the parent) driven from
        ``CLKOS``: the same frequency as ``domain``, delayed by
        ``shifted_phase`` degrees (see :func:`ecp5_pll_phase`). Its reset
        is not driven; it is meant for DDR output cells that forward a
        clock (the ULX3S SDRAM clock). ``None`` (default): ``CLKOP`` only.
    shifted_phase : float
        Delay of ``shifted_domain`` in degrees, ``0 <= shifted_phase < 360``.

    Attributes
    ----------
    locked : Signal, out
        PLL lock. The domain is held in reset until it is high (released
        through a two-stage :class:`~amaranth.lib.cdc.ResetSynchronizer`).
    params : dict
        The divider setting, from :func:`ecp5_pll_params`; with
        ``shifted_domain`` also ``clkos_div``, ``clkos_cphase`` and
        ``clkos_fphase``.
    """

    def __init__(self, f_in_mhz, f_out_mhz, *, clk_in=None, domain="sync",
                 shifted_domain=None, shifted_phase=90.0):
        self.f_in_mhz = f_in_mhz
        self.params = ecp5_pll_params(f_in_mhz, f_out_mhz)
        self.f_out_mhz = self.params["f_out_mhz"]
        self.clk_in = clk_in
        self.domain = domain
        self.shifted_domain = shifted_domain
        self.shifted_phase = shifted_phase
        if shifted_domain is not None:
            if shifted_domain == domain:
                raise ValueError(f"shifted_domain must differ from domain {domain!r}; name "
                                 f"another clock domain for the phase-shifted output")
            div = self.params["clkop_div"]
            cphase, fphase = ecp5_pll_phase(div, shifted_phase)
            self.params.update(clkos_div=div, clkos_cphase=cphase, clkos_fphase=fphase)
        self.locked = Signal()

    def elaborate(self, platform):
        m = Module()
        clk_in = self.clk_in
        if clk_in is None:
            clk_io = platform.request(platform.default_clk, dir="-")
            m.submodules.clk_in_buf = clk_buf = io.Buffer("i", clk_io)
            clk_in = clk_buf.i

        clk = ClockSignal(self.domain)
        p = self.params
        # Feedback from CLKOP, so the CLKOP phase setting is only the
        # conventional one (LiteX: CPHASE = DIV - 1) and never matters.
        shifted = {}
        if self.shifted_domain is not None:
            # CLKOS: same divider as CLKOP, delayed against it (CLKOP is at
            # the zero-phase setting CPHASE = DIV - 1, FPHASE = 0).
            shifted = {
                "a_FREQUENCY_PIN_CLKOS": f"{self.f_out_mhz:g}",
                "p_CLKOS_ENABLE": "ENABLED",
                "p_CLKOS_DIV": p["clkos_div"],
                "p_CLKOS_CPHASE": p["clkos_cphase"],
                "p_CLKOS_FPHASE": p["clkos_fphase"],
                "o_CLKOS": ClockSignal(self.shifted_domain),
            }
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{self.f_in_mhz:g}",
            a_FREQUENCY_PIN_CLKOP=f"{self.f_out_mhz:g}",
            a_ICP_CURRENT="12",
            a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED",
            p_INTFB_WAKE="DISABLED",
            p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA",
            p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC",
            p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=p["clki_div"],
            p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=p["clkop_div"],
            p_CLKOP_CPHASE=p["clkop_div"] - 1,
            p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=p["clkfb_div"],
            i_RST=Const(0),
            i_STDBY=Const(0),
            i_CLKI=clk_in,
            o_CLKOP=clk,
            i_CLKFB=clk,
            i_PHASESEL0=Const(0),
            i_PHASESEL1=Const(0),
            i_PHASEDIR=Const(1),
            i_PHASESTEP=Const(1),
            i_PHASELOADREG=Const(1),
            i_PLLWAKESYNC=Const(0),
            i_ENCLKOP=Const(0),
            o_LOCK=self.locked,
            **shifted,
        )
        m.submodules.reset_sync = ResetSynchronizer(~self.locked, domain=self.domain)
        # No add_clock_constraint() here: nextpnr derives the CLKOP constraint
        # from the CLKI port constraint and the dividers ("Derived frequency
        # constraint ... for net clk"), and amaranth 0.5 names this net after
        # a submodule ("clock.reset_sync.clk") that does not survive
        # flattening, so an explicit FREQUENCY NET would be ignored anyway.
        return m
