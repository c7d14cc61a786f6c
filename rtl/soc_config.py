"""One configuration for the whole accelerator: :class:`SocConfig`.

A :class:`SocConfig` is composed of the block configurations (the GEMV
engine's :class:`~lpaccel.rtl.config.GemvConfig`, the DMA's
:class:`~lpaccel.rtl.dma.DmaConfig`, the LPDDR controller's
:class:`~lpaccel.rtl.dram.config.LpddrConfig`) and the choice of memory
behind them. Everything else is derived from it and written nowhere else:

- the register map's capability and depth values
  (:class:`lpaccel.rtl.regmap.RegmapConfig` takes a ``SocConfig``);
- the command line's choices (:data:`MEMORIES`, ``GemvConfig.LANES``, ...);
- board defaults and the parameters of a simulator build (:meth:`to_dict`,
  :meth:`from_dict`: plain JSON-able data, used as cocotb build parameters
  and in reports).

::

    SocConfig
    ├── gemv    GemvConfig    lanes, word width, buffer sizes, formats
    ├── dma     DmaConfig     data width = the memory's, queue depths, bursts
    ├── memory  "onchip" | "lpddr4-3200" | "lpddr4x-4266" | "lpddr5-6400"
    │           | "is42s16160" (SDR) | "mt41k256m16" (DDR3)
    ├── lpddr   LpddrConfig   (LPDDR memories only) part, clock ratio, refresh
    └── memory_size           bytes behind the memory window
"""

import dataclasses
from dataclasses import dataclass

from .config import GemvConfig, WeightFormat
from .dma.engine import DmaConfig
from .dram.config import LpddrConfig
from .dram.parts import PARTS
from .utils import check_choice, check_int

__all__ = ["SocConfig", "MEMORIES", "LPDDR_MEMORIES", "DEFAULT_LPDDR_RATIO", "ONCHIP"]

#: The on-chip memory backend (BRAM; SPRAM on iCE40).
ONCHIP = "onchip"
#: LPDDR parts served by the LpddrController (and the timing-checked model in simulation).
LPDDR_MEMORIES = tuple(name for name, part in PARTS.items() if part.standard.startswith("LPDDR"))
#: Every memory a SoC can be built with: on-chip RAM, LPDDR, and the board DRAM parts
#: served by LiteDRAM cores.
MEMORIES = (ONCHIP, *PARTS)
#: Controller:DRAM clock ratio per LPDDR part: a 128-bit data path for LPDDR4/4X at 1:4;
#: LPDDR5 in bank-group mode (BL16 bursts of 2 CK) takes at most 1:2, a 256-bit path.
DEFAULT_LPDDR_RATIO = {name: (2 if PARTS[name].bank_groups > 1 else 4)
                       for name in LPDDR_MEMORIES}
#: Default bytes of on-chip memory.
ONCHIP_BYTES = 1 << 16


@dataclass(frozen=True)
class SocConfig:
    """Parameters of one accelerator SoC, composed of its blocks' configurations.

    Parameters
    ----------
    gemv : GemvConfig
        The GEMV engine.
    memory : str
        One of :data:`MEMORIES`.
    lpddr : LpddrConfig, optional
        The LPDDR controller, for an LPDDR memory only; default the part at
        :data:`DEFAULT_LPDDR_RATIO`. Its part must be ``memory``.
    dma : DmaConfig, optional
        The DMA engine; default a :class:`DmaConfig` whose data width is the
        memory's (the LPDDR controller's data path, else the engine's weight
        word), with 32-bit lengths and 16 bursts in flight.
    memory_size : int, optional
        Bytes behind the memory window; default the LPDDR model's storage
        (``lpddr.sim_bytes``), the board part's capacity, or 64 KiB on chip.
    job_depth : int
        Jobs the job queue holds, pushed and not yet popped (2 to 64).

    Raises
    ------
    ValueError
        On a value outside its rule (the message names the field, the rule
        and the fix) or blocks that do not fit together.
    """

    gemv: GemvConfig = dataclasses.field(default_factory=GemvConfig)
    memory: str = ONCHIP
    lpddr: LpddrConfig = None
    dma: DmaConfig = None
    memory_size: int = None
    job_depth: int = 8

    def __post_init__(self):
        if not isinstance(self.gemv, GemvConfig):
            raise TypeError(f"gemv must be a GemvConfig, not {self.gemv!r}")
        check_choice("memory", self.memory, MEMORIES)
        if self.memory in LPDDR_MEMORIES:
            if self.lpddr is None:
                object.__setattr__(self, "lpddr", LpddrConfig(
                    part=self.memory, ratio=DEFAULT_LPDDR_RATIO[self.memory]))
            if not isinstance(self.lpddr, LpddrConfig):
                raise TypeError(f"lpddr must be an LpddrConfig, not {self.lpddr!r}")
            if self.lpddr.part.name != self.memory:
                raise ValueError(f"lpddr.part is {self.lpddr.part.name} but memory is "
                                 f"{self.memory!r}; make them the same part")
        elif self.lpddr is not None:
            raise ValueError(f"lpddr is set but memory {self.memory!r} is not an LPDDR part "
                             f"({', '.join(LPDDR_MEMORIES)}); drop lpddr or choose one")
        if self.dma is None:
            # 32-bit lengths: one descriptor carries a whole weight matrix (Q8_0
            # 4096 x 4096 is 17.8 MB); 16 bursts in flight keep the memory
            # controller's look-ahead window full.
            object.__setattr__(self, "dma", DmaConfig(data_width=self.memory_data_width,
                                                      len_width=32, max_outstanding=16,
                                                      max_burst_beats=256))
        if not isinstance(self.dma, DmaConfig):
            raise TypeError(f"dma must be a DmaConfig, not {self.dma!r}")
        if self.dma.data_width != self.memory_data_width:
            raise ValueError(f"dma.data_width is {self.dma.data_width} but the {self.memory} "
                             f"memory path is {self.memory_data_width} bits wide; build the "
                             f"DMA at {self.memory_data_width} bits")
        if self.memory_size is None:
            object.__setattr__(self, "memory_size", self._default_memory_size())
        check_int("memory_size", self.memory_size, 1, (1 << self.dma.addr_width))
        check_int("job_depth", self.job_depth, 2, 64)

    def check_soc(self):
        """Check that the blocks can be joined into one SoC (:class:`~lpaccel.rtl.soc.Soc`).

        The engine takes one memory word per cycle, so its weight port must be
        exactly as wide as the memory path.

        Raises
        ------
        ValueError
            Naming the mismatch and the fix.
        """
        if self.gemv.word_bits != self.memory_data_width:
            raise ValueError(
                f"gemv.word_bits is {self.gemv.word_bits} but the {self.memory} memory path is "
                f"{self.memory_data_width} bits wide; build the engine with "
                f"word_bits={self.memory_data_width} (and lanes >= {self.memory_data_width // 4} "
                f"to take one word per cycle)")

    def _default_memory_size(self):
        if self.lpddr is not None:
            return self.lpddr.sim_bytes
        if self.memory == ONCHIP:
            return ONCHIP_BYTES
        part = PARTS[self.memory]
        return part.page_bytes * part.banks * part.rows

    @property
    def memory_data_width(self):
        """Data width of the memory path in bits (the DMA's AXI4 port)."""
        if self.lpddr is not None:
            return self.lpddr.data_width
        return self.gemv.word_bits

    @property
    def memory_standard(self):
        """``"ONCHIP"``, or the part's standard (``"LPDDR4"``, ``"SDR"``, ...)."""
        return "ONCHIP" if self.memory == ONCHIP else PARTS[self.memory].standard

    @property
    def formats(self):
        """Weight formats compiled into the engine."""
        return self.gemv.formats

    # --- plain data ---------------------------------------------------------------

    def to_dict(self):
        """The configuration as plain JSON-able data (see :meth:`from_dict`)."""
        gemv = {f.name: getattr(self.gemv, f.name) for f in dataclasses.fields(GemvConfig)}
        gemv["formats"] = [WeightFormat(f).name.lower() for f in self.gemv.formats]
        lpddr = None
        if self.lpddr is not None:
            lpddr = {f.name: getattr(self.lpddr, f.name) for f in dataclasses.fields(LpddrConfig)}
            lpddr["part"] = self.lpddr.part.name
        dma = {f.name: getattr(self.dma, f.name) for f in dataclasses.fields(DmaConfig)}
        return {"gemv": gemv, "memory": self.memory, "lpddr": lpddr, "dma": dma,
                "memory_size": self.memory_size, "job_depth": self.job_depth}

    @classmethod
    def from_dict(cls, table):
        """Rebuild a configuration from :meth:`to_dict`'s data.

        Raises
        ------
        ValueError
            On an unknown key (naming it and the known ones) or a bad value.
        """
        def block(name, config_cls, value):
            if value is None:
                return None
            if not isinstance(value, dict):
                raise ValueError(f"{name} must be a table of {config_cls.__name__} fields, "
                                 f"not {value!r}")
            known = {f.name for f in dataclasses.fields(config_cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise ValueError(f"{name}: unknown field(s) {', '.join(unknown)} "
                                 f"(known: {', '.join(sorted(known))})")
            return config_cls(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in value.items()})

        if not isinstance(table, dict):
            raise ValueError(f"a SocConfig table must be a dict, not {table!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ValueError(f"SocConfig: unknown key(s) {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known))})")
        return cls(gemv=block("gemv", GemvConfig, table.get("gemv", {})),
                   memory=table.get("memory", ONCHIP),
                   lpddr=block("lpddr", LpddrConfig, table.get("lpddr")),
                   dma=block("dma", DmaConfig, table.get("dma")),
                   memory_size=table.get("memory_size"),
                   job_depth=table.get("job_depth", 8))
