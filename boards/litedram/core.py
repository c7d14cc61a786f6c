"""The generated LiteDRAM core as an Amaranth component: :class:`LiteDramCore`.

:class:`LiteDramCore` instantiates the generated Verilog (module
``litedram_core``) with an ``In(AXI4Signature(...))`` user port and
``init_done``/``init_error``; its
:class:`~lpaccel.boards.litedram.LiteDramInitController` brings the DRAM
up (and levels DDR3 reads) over the core's Wishbone control port. It
connects the DRAM pins from an amaranth-boards resource (``sdram`` of the
ULX3S, ``ddr3`` of the ECPIX-5) or from a dict of ports, and for SDR
forwards the SDRAM clock through a DDR output (``sdram_clk_phase``). The
board tops that use it are in ``boards/ulx3s.py`` and ``boards/ecpix5.py``.
"""

from amaranth.hdl import (
    Cat,
    ClockDomain,
    ClockSignal,
    Const,
    DomainRenamer,
    Instance,
    IOBufferInstance,
    IOPort,
    Module,
    ResetSignal,
    Signal,
)
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from ...rtl.bus.axi import AXI4Signature
from .generate import GeneratedLiteDram
from .init import LiteDramInitController
from .leveling import LiteDramLevelingConfig, LiteDramReadLeveler

__all__ = ["LiteDramCore"]


class LiteDramCore(wiring.Component):
    """A generated LiteDRAM core as an Amaranth component.

    Parameters
    ----------
    core : GeneratedLiteDram
        From :func:`generate_litedram_core`.
    pads : dict, optional
        DRAM pin name (``"sdram_a"``, ``"ddram_dq"``, ...) -> ``IOPort`` (or
        IO value). Default: a top-level ``IOPort`` per pin, named like the
        core's port.
    primitives : bool
        Instantiate ECP5 primitives (the SDRAM clock's ODDRX1F); False for
        simulation without vendor cells.
    init_delay_cap : int, optional
        Simulation only: clamp every init delay to this many cycles (the
        SDRAMPHYModel does not check the power-up wait of real SDRAM).
    leveling : dict, optional
        Overrides for :meth:`LiteDramLevelingConfig.from_core` (``seeds``,
        ``settle_cycles``, ``timeout``); read leveling runs whenever the
        core's PHY needs it (DDR3 on ECP5), never for SDR.
    sdram_clk_phase : int
        SDR only: phase of the SDRAM clock pin against ``sync``, in degrees.
        ``90`` (default, as LiteX's ULX3S target): the pin is the clock of
        the ``sync_ps`` domain, which the parent must define and drive with
        the ``sync`` frequency delayed by 90 degrees (e.g. the ``CLKOS`` of
        :class:`~lpaccel.boards.ecp5.Ecp5PllClock`), forwarded through a DDR
        output driven 1/0. ``180``: the ``sync`` clock inverted, through a DDR
        output driven 0/1; no second clock needed.

    Ports
    -----
    axi : In(AXI4Signature(addr_width, data_width, id_width))
        The user port, synchronous to ``user_clk``. Requests are held off by
        the core until ``init_done``. ``lock``, ``cache``, ``prot`` and
        ``qos`` are ignored.
    init_done : Out(1)
        DRAM initialized; the AXI port serves requests.
    init_error : Out(1)
        Initialization failed (the core's own flag, a control-port access
        that was never acknowledged, or ``level_error``).
    level_error : Out(1)
        Read-leveling cores only: some module has no working read
        (bitslip, delay); see :class:`LiteDramReadLeveler`.
    level_bitslip, level_delay : Out(ArrayLayout(unsigned, modules))
        Read-leveling cores only: the chosen setting per DQS group.
    user_clk, user_rst : Out(1)
        The core's controller clock and reset. SDR: the ``sync`` clock.
        DDR3: the PLL output (the ``sync`` clock feeds the PLL).

    Notes
    -----
    The wrapper creates a local clock domain ``litedram`` on ``user_clk``
    for :class:`LiteDramInitController`; a design using a DDR3 core must cross into that
    domain itself. For SDR the SDRAM clock pin (``sdram_clk``, not a port of
    the generated core) is driven through an ODDRX1F, from the ``sync_ps``
    clock (90 degrees) or from the ``sync`` clock inverted (180 degrees);
    see ``sdram_clk_phase``.
    """

    #: Accepted ``sdram_clk_phase`` values, in degrees.
    SDRAM_CLK_PHASES = (90, 180)

    def __init__(self, core, *, pads=None, primitives=True, init_delay_cap=None,
                 leveling=None, sdram_clk_phase=90):
        if not isinstance(core, GeneratedLiteDram):
            raise TypeError(f"core must be a GeneratedLiteDram (from generate_litedram_core), "
                            f"not {core!r}")
        if sdram_clk_phase not in self.SDRAM_CLK_PHASES:
            raise ValueError(f"sdram_clk_phase must be 90 (the sync_ps clock, LiteX's choice) "
                             f"or 180 (the sync clock inverted), not {sdram_clk_phase!r}")
        self.sdram_clk_phase = sdram_clk_phase
        self.core = core
        self.primitives = primitives
        self.init_delay_cap = init_delay_cap
        self.sdr = any(n.startswith("sdram_") for n in core.dram_pins)
        pins = dict(core.dram_pins)
        if self.sdr:
            pins["sdram_clk"] = ("output", 1)
        # An amaranth-boards SDRAM resource (platform.request("sdram", 0,
        # dir="-")): outputs through io.Buffer (which also undoes the
        # resource's active-low inversion), DQ straight to the core's own
        # TRELLIS_IO, the clock through an io.DDRBuffer.
        self.resource = pads if pads is not None and hasattr(pads, "dq") else None
        if self.resource is not None:
            self.pads = {}
        else:
            self.pads = pads if pads is not None else {
                name: IOPort(width, name=name) for name, (_, width) in pins.items()}
            missing = sorted(set(pins) - set(self.pads))
            if missing:
                raise ValueError(f"pads lacks DRAM pin(s) {', '.join(missing)} of the "
                                 f"{core.board} core")
        self.axi_signature = AXI4Signature(addr_width=max(12, core.axi_addr_width),
                                           data_width=core.axi_data_width,
                                           id_width=core.axi_id_width)
        program = core.init_program
        if init_delay_cap is not None:
            program = [(a, v, min(d, init_delay_cap)) for a, v, d in program]
        self.leveling = (LiteDramLevelingConfig.from_core(core, **(leveling or {}))
                         if core.read_leveling else None)
        self.program = program
        members = {
            "axi": In(self.axi_signature),
            "init_done": Out(1),
            "init_error": Out(1),
            "user_clk": Out(1),
            "user_rst": Out(1),
        }
        if self.leveling is not None:
            result = LiteDramReadLeveler.result_members(self.leveling)
            members.update({"level_error": Out(1), "level_bitslip": result["bitslip"],
                            "level_delay": result["delay"]})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        core = self.core
        m.domains.litedram = ClockDomain(local=True)
        m.d.comb += [ClockSignal("litedram").eq(self.user_clk),
                     ResetSignal("litedram").eq(self.user_rst)]

        seq = LiteDramInitController(self.program, leveling=self.leveling)
        m.submodules.init = DomainRenamer("litedram")(seq)

        core_done, core_error = Signal(), Signal()
        wb_ack = Signal()
        axi = self.axi
        p = "user_port_axi_0_"
        aw = core.axi_addr_width
        kwargs = {
            "i_clk": ClockSignal("sync"),
            "o_init_done": core_done, "o_init_error": core_error,
            "o_user_clk": self.user_clk, "o_user_rst": self.user_rst,
            "i_wb_ctrl_adr": seq.wb_adr, "i_wb_ctrl_dat_w": seq.wb_dat_w,
            "i_wb_ctrl_sel": seq.wb_sel, "i_wb_ctrl_cyc": seq.wb_cyc,
            "i_wb_ctrl_stb": seq.wb_stb, "i_wb_ctrl_we": seq.wb_we,
            "i_wb_ctrl_cti": Const(0, 3), "i_wb_ctrl_bte": Const(0, 2),
            "o_wb_ctrl_ack": wb_ack, "o_wb_ctrl_dat_r": seq.wb_dat_r,
        }
        for ch in ("aw", "ar"):
            c = getattr(axi, ch)
            kwargs.update({
                f"i_{p}{ch}valid": c.valid, f"o_{p}{ch}ready": c.ready,
                f"i_{p}{ch}addr": c.addr[:aw], f"i_{p}{ch}burst": c.burst,
                f"i_{p}{ch}len": c.len, f"i_{p}{ch}size": Cat(c.size, Const(0, 1)),
                f"i_{p}{ch}id": c.id[:core.axi_id_width],
            })
        kwargs.update({
            f"i_{p}wvalid": axi.w.valid, f"o_{p}wready": axi.w.ready,
            f"i_{p}wdata": axi.w.data, f"i_{p}wstrb": axi.w.strb, f"i_{p}wlast": axi.w.last,
            f"o_{p}bvalid": axi.b.valid, f"i_{p}bready": axi.b.ready,
            f"o_{p}bresp": axi.b.resp, f"o_{p}bid": axi.b.id,
            f"o_{p}rvalid": axi.r.valid, f"i_{p}rready": axi.r.ready,
            f"o_{p}rdata": axi.r.data, f"o_{p}rresp": axi.r.resp, f"o_{p}rid": axi.r.id,
            f"o_{p}rlast": axi.r.last,
        })
        if "rst" in core.ports:
            kwargs["i_rst"] = ResetSignal("sync")
        if "sim_trace" in core.ports:          # simulation variant
            kwargs["i_sim_trace"] = Const(0)
        res = self.resource
        if res is not None and not self.sdr:
            # DDR3: the core drives every pad through its own ECP5 I/O cells
            # (ODDRX2F, DQSBUFM, TRELLIS_IO...), so it gets the raw pads;
            # active-low pads take the core's active-low signals as they are.
            # The resource has no cs_n/reset_n (tied on the board).
            routes = {"ddram_a": "a", "ddram_ba": "ba", "ddram_ras_n": "ras",
                      "ddram_cas_n": "cas", "ddram_we_n": "we", "ddram_cke": "clk_en",
                      "ddram_odt": "odt", "ddram_dm": "dm", "ddram_dq": "dq"}
            for name, sub in routes.items():
                kwargs[f"io_{name}"] = getattr(res, sub).io
            kwargs["io_ddram_dqs_p"] = res.dqs.p
            kwargs["io_ddram_clk_p"] = res.clk.p
        elif res is not None:
            # core pin -> (resource subsignal, logical value from the core's pin)
            routes = {"sdram_a": ("a", False), "sdram_ba": ("ba", False),
                      "sdram_cs_n": ("cs", True), "sdram_we_n": ("we", True),
                      "sdram_ras_n": ("ras", True), "sdram_cas_n": ("cas", True),
                      "sdram_cke": ("clk_en", False), "sdram_dm": ("dqm", False)}
            for name, (sub, active_low) in routes.items():
                width = core.ports[name][1]
                pin = Signal(width, name=name)
                kwargs[f"o_{name}"] = pin
                buf = io.Buffer("o", getattr(res, sub))
                m.submodules[f"{name}_buf"] = buf
                m.d.comb += buf.o.eq(~pin if active_low else pin)
            kwargs["io_sdram_dq"] = res.dq.io
        else:
            for name in core.dram_pins:
                kwargs[f"io_{name}"] = self.pads[name]
        # Core inputs we do not use are tied off; unknown extra inputs (a
        # newer litedram) would be caught by Yosys as unconnected.
        m.submodules.core = Instance("litedram_core", **kwargs)
        m.d.comb += [
            seq.wb_ack.eq(wb_ack),
            self.init_done.eq(core_done & seq.done),
            self.init_error.eq(core_error | seq.error | seq.level_error),
        ]
        if self.leveling is not None:
            m.d.comb += [self.level_error.eq(seq.level_error),
                         self.level_bitslip.eq(seq.bitslip), self.level_delay.eq(seq.delay)]
        # SDRAM clock: 90 degrees, the sync_ps clock forwarded (high, then
        # low); 180 degrees, the sync clock inverted (low, then high).
        clk_domain, (clk_d0, clk_d1) = (("sync_ps", (1, 0)) if self.sdram_clk_phase == 90
                                        else ("sync", (0, 1)))
        if self.sdr and res is not None:
            m.submodules.sdram_clk_buf = clk_buf = io.DDRBuffer("o", res.clk,
                                                                o_domain=clk_domain)
            m.d.comb += [clk_buf.o[0].eq(clk_d0), clk_buf.o[1].eq(clk_d1)]
        elif self.sdr:
            if self.primitives:
                sdram_clk = Signal()
                m.submodules.sdram_clk_ddr = Instance(
                    "ODDRX1F", i_SCLK=ClockSignal(clk_domain), i_RST=Const(0),
                    i_D0=Const(clk_d0), i_D1=Const(clk_d1), o_Q=sdram_clk)
                m.submodules.sdram_clk_buf = IOBufferInstance(self.pads["sdram_clk"],
                                                              o=sdram_clk)
            else:
                clk = ClockSignal(clk_domain)
                m.submodules.sdram_clk_buf = IOBufferInstance(
                    self.pads["sdram_clk"], o=clk if self.sdram_clk_phase == 90 else ~clk)
        return m

