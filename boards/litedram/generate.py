"""Generating a board's LiteDRAM core with the installed ``litedram`` package.

:func:`generate_litedram_core` runs ``litedram``'s standalone-core generator
(the ``LiteDRAMCore`` SoC of ``litedram.gen``, fed a Python dict instead of
its YAML file) into ``build/litedram/<board>/`` and returns a
:class:`GeneratedLiteDram`: the Verilog, the CSR map, the PHY settings and
the DRAM initialization program as Wishbone writes. Nothing generated goes
into git; a finished generation is reused while its configuration, the
litedram version and this file are unchanged.

Where the board facts live. Each board module describes its DRAM as a
:class:`LiteDramBoard` (FPGA part, DRAM module, PHY, data width, clocks):
``ULX3S_DRAM`` in ``boards/ulx3s.py``, ``ECPIX5_DRAM`` in
``boards/ecpix5.py``. It passes it to
:func:`~lpaccel.boards.registry.register_board` inside its ``BoardEntry``,
which files it in :data:`~lpaccel.boards.registry.LITEDRAM_BOARDS` under
:attr:`LiteDramBoard.name`; this module only reads that table. Nothing in
this file is specific to one board.

Generation runs in a fresh interpreter (``python -m lpaccel.boards.litedram
--generate BOARD --out DIR [--sim]``, see ``boards/litedram/__main__.py``)
because litedram, LiteX and Migen keep global state (name counters, platform
registries) that one process must not carry from one core to the next.

Post-processing of litedram's output (what :func:`_generate` changes):

- Migen declares the DQ/DQS pads ``input`` although the core drives them
  through ``TRELLIS_IO`` bidirectional buffers; they are rewritten
  ``inout`` so Yosys and Verilator see what they are.
- For the simulation variant (``sim=True``) the generator is patched at
  run time (a monkeypatch, inside the child process only):
  ``litedram.gen`` imports ``get_sdram_phy_settings`` from
  ``litex.tools.litex_sim``, which needs liteeth (not a dependency), so a
  stub module with litedram's own copy of that function stands in; and
  LiteX's Verilator flow (its C++ harness, tapcfg) is replaced by no-ops,
  because cocotb drives Verilator here: only the Verilog is kept.
- The PHY settings read leveling needs (:data:`_PHY_SETTINGS`) and
  litedram's init sequence for the generated PHY and module
  (``litedram.init.get_sdram_phy_init_sequence``) are written to
  ``init_program.json``; :func:`_init_program` turns the sequence into the
  Wishbone writes LiteX's BIOS ``sdram_init()`` would make, delays in clock
  cycles (:data:`CDELAY_CYCLES` per BIOS ``cdelay()`` unit).
"""

import csv
import hashlib
import json
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...paths import build_dir
from ..registry import LITEDRAM_BOARDS

__all__ = [
    "CDELAY_CYCLES",
    "LITEDRAM_BOARDS",
    "GeneratedLiteDram",
    "LiteDramBoard",
    "generate_litedram_core",
]

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
    """How to generate a board's LiteDRAM core: data only, one per board.

    Parameters
    ----------
    name : str
        The core's name: the key in :data:`LITEDRAM_BOARDS`, the argument of
        :func:`generate_litedram_core` and the folder under
        ``build/litedram/`` (``"ulx3s"``, ``"ecpix5"``).
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

    name: str
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
        A key of :data:`LITEDRAM_BOARDS` (a :attr:`LiteDramBoard.name`:
        ``"ulx3s"``, ``"ecpix5"``).
    sim : bool
        Generate the simulation variant: the same controller, crossbar and
        AXI port, with litedram's ``SDRAMPHYModel`` (DRAM behaviour and
        storage) in place of the PHY; no pins, no vendor primitives.
    out_dir : Path, optional
        Default ``build/litedram/<board>/`` (``<board>-sim/`` for ``sim``)
        in the build directory (:func:`lpaccel.paths.build_dir`).
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
    default_dir = build_dir("litedram", f"{board}-sim" if sim else board)
    out_dir = Path(out_dir) if out_dir is not None else default_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / "lpaccel-litedram.json"
    key = _config_key(spec, sim)
    if force or not marker.exists() or json.loads(marker.read_text()).get("key") != key:
        # litedram/LiteX/Migen keep global state (name counters, platform
        # registries): generate in a fresh interpreter.
        proc = subprocess.run(
            [sys.executable, "-m", "lpaccel.boards.litedram", "--generate", board,
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
    """Run litedram's generator in this process (see generate_litedram_core).

    Called by ``python -m lpaccel.boards.litedram`` in a fresh interpreter;
    the monkeypatches of the simulation variant (module docstring) stay in
    that process.
    """
    import types

    from litedram.gen import LiteDRAMCore
    from litedram.init import get_sdram_phy_init_sequence
    from litex.soc.integration.builder import Builder

    spec = LITEDRAM_BOARDS[board]
    cfg = spec.core_config()
    if sim:
        # Monkeypatch 1: litedram.gen imports get_sdram_phy_settings from
        # litex.tools.litex_sim, which needs liteeth (not a dependency);
        # litedram has the same function, so a stub module provides it.
        from litedram.phy.model import get_sdram_phy_settings
        stub = types.ModuleType("litex.tools.litex_sim")
        stub.get_sdram_phy_settings = get_sdram_phy_settings
        sys.modules["litex.tools.litex_sim"] = stub
        # Monkeypatch 2: LiteX's own Verilator flow (C++ harness, tapcfg) is
        # not used: cocotb drives Verilator. Keep the Verilog, skip the rest.
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
    pads = r"(?:sdram_dq|ddram_dq|ddram_dqs_p|ddram_dqs_n)\b"
    text = re.sub(r"input(\s+wire\s*(?:\[\d+:0\])?\s*" + pads + ")", r"inout\1", text)
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

