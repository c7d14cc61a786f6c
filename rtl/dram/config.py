"""Configuration of the LPDDR controller and device model, and the DFI-style boundary.

One :class:`LpddrConfig` describes a controller + device pair: which part,
the controller:DRAM clock ratio, the simulated capacity of the model, the
refresh mode and the scheduler's look-ahead. The controller, the model,
the tests and ``lpaccel mem-bench`` all derive their numbers from it.

The DFI-style boundary (:class:`DfiSignature`)
----------------------------------------------
The controller runs at ``1/ratio`` of the DRAM command clock CK and drives
``ratio`` command slots (phases) per controller cycle; slot ``p`` of
controller cycle ``c`` is DRAM clock ``c * ratio + p``, as in DFI's
frequency-ratio mode. A slot carries one abstract command (:class:`Command`)
with a bank, a row and a column. Simplifications against a real LPDDR CA
bus, all documented in ``docs/memory.md``:

* a command is the slot of its first CA clock; it occupies the CA bus for
  ``part.ca`` clocks (LPDDR4: ACT, RD, WR 4 CK; PRE, PREA, REF 2 CK), during
  which the following slots carry NOP, and its timings count from its last
  CA clock (:meth:`LpddrConfig.spacing`);
* ``col`` is the burst index within the row (column address ``C`` divided
  by the burst length);
* write data is presented on ``wrdata`` in the controller cycle of the WRITE
  command and the ``beats_per_burst - 1`` cycles after it (``wrdata_strb``
  set bits are written, like AXI ``WSTRB``; the inverse of DFI's mask);
  read data comes back on ``rddata`` ``rd_latency`` controller cycles after
  the READ, ``beats_per_burst`` consecutive beats. One beat is one controller
  cycle's worth of data (``ratio * beats_per_ck`` DRAM transfers).
"""

import math
from dataclasses import dataclass

from amaranth.hdl import unsigned
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..utils import check_choice, check_int
from .parts import controller_cycles, part_by_name

__all__ = ["Command", "LpddrConfig", "DfiSignature", "command_layout"]


class Command(enum.IntEnum, shape=3):
    """Commands on the DFI-style boundary (the ``cmd`` field of a command slot)."""

    NOP = 0
    ACT = 1
    RD = 2
    WR = 3
    PRE = 4
    PREA = 5
    REFAB = 6
    REFPB = 7


@dataclass(frozen=True)
class LpddrConfig:
    """One LPDDR controller + device model configuration.

    Parameters
    ----------
    part : str or DramPart
        An LPDDR part from :mod:`lpaccel.rtl.dram.parts` (``"lpddr4-3200"``,
        ``"lpddr4x-4266"``, ``"lpddr5-6400"``).
    ratio : int
        Controller:DRAM clock ratio ``1:ratio``: 1, 2, 4 or 8; must divide
        the burst's CK count and not exceed ``tCCD`` (the different-group
        tCCD_S on a part with bank groups: LPDDR5-6400 takes 1 or 2).
    sim_bytes : int
        Capacity of the device model's storage (a power of two, at least one
        page per bank). Addresses beyond it alias modulo ``sim_bytes``.
    refresh : str
        ``"per_bank"`` (REFpb, hidden behind traffic to other banks) or
        ``"all_bank"`` (REFab).
    window : int
        Requests the scheduler looks ahead for ACT/PRE (2 to 32).
    tck_ns : float, optional
        DRAM clock period; default the part's speed grade.
    idle_precharge : int, optional
        Controller cycles after which an open bank with no column command
        and no queued request is precharged (0: never, pure open page).
        Default: 32 where the look-ahead window is too short to hide a row
        change (:attr:`window_hides_row_change` false: LPDDR4X-4266 and
        LPDDR4-3200 with an 8-burst window, LPDDR5 at 1:2) and on parts with
        bank groups, 0 otherwise.
    """

    part: object = "lpddr4-3200"
    ratio: int = 4
    sim_bytes: int = 256 * 1024
    refresh: str = "per_bank"
    window: int = 16
    tck_ns: float = None
    idle_precharge: int = None

    #: Controller:DRAM clock ratios the controller can be built with.
    RATIOS = (1, 2, 4, 8)
    #: Refresh modes: REFpb hidden behind traffic to other banks, or REFab.
    REFRESH_MODES = ("per_bank", "all_bank")

    def __post_init__(self):
        part = part_by_name(self.part)
        object.__setattr__(self, "part", part)
        if not part.standard.startswith("LPDDR"):
            raise ValueError(f"part must be an LPDDR part for LpddrConfig, not {part.name} "
                             f"({part.standard}); board SDR/DDR3 parts are served by LiteDRAM")
        check_choice("ratio", self.ratio, self.RATIOS)
        t = self.timings
        if t.burst_ck % self.ratio:
            raise ValueError(f"ratio 1:{self.ratio} must divide the burst's {t.burst_ck} CK "
                             f"of {part.name}; use a ratio of at most {t.burst_ck}")
        if self.ratio > t.tCCD:
            raise ValueError(f"ratio must not exceed tCCD ({t.tCCD} CK), not {self.ratio}")
        check_choice("refresh", self.refresh, self.REFRESH_MODES)
        if self.refresh == "per_bank" and not part.per_bank_refresh:
            raise ValueError(f"refresh 'per_bank' needs a part with REFpb; {part.name} has none")
        check_int("window", self.window, 2, 32)
        if self.idle_precharge is None:
            # A bank the window will need again must already be closed when
            # its request arrives if PRE + ACT + tRCD outlasts the window.
            idle = part.bank_groups > 1 or not self.window_hides_row_change
            object.__setattr__(self, "idle_precharge", 32 if idle else 0)
        check_int("idle_precharge", self.idle_precharge, 0, 1024)
        min_bytes = part.page_bytes * part.banks
        if (not isinstance(self.sim_bytes, int) or self.sim_bytes & (self.sim_bytes - 1)
                or self.sim_bytes < min_bytes):
            raise ValueError(f"sim_bytes must be a power of two of at least one page per bank "
                             f"({min_bytes}), not {self.sim_bytes!r}")
        if self.data_width not in (8, 16, 32, 64, 128, 256, 512, 1024):
            raise ValueError(f"ratio 1:{self.ratio} gives a {self.data_width}-bit data path "
                             f"for {part.name}, outside AXI's 8 to 1024 bits; choose another ratio")

    @property
    def timings(self):
        """:class:`~lpaccel.rtl.dram.parts.DramTimings` in DRAM clocks."""
        return self.part.at_clock(self.tck_ns)

    @property
    def window_hides_row_change(self):
        """Whether the look-ahead window covers a row change of a streaming read.

        A request enters the window ``window - 1`` bursts (``tCCD`` each)
        before it reaches the head; its row command can go out one cycle
        after it entered. Open page hides a row change (PRE, tRPpb, ACT,
        tRCD, then READ) only if that chain fits in the window; otherwise
        a stream stalls at every page whose bank still holds an old row,
        and the bank must be closed beforehand (``idle_precharge``).
        """
        t = self.timings
        ahead = (self.window - 1) * self.spacing(t.tCCD, Command.RD, Command.RD)
        chain = (1 + self.spacing(t.tRPpb, Command.PRE, Command.ACT) +
                 self.spacing(t.tRCD, Command.ACT, Command.RD))
        return chain <= ahead

    @property
    def beat_bytes(self):
        """Bytes per controller cycle at peak: the AXI/DFI data width in bytes."""
        return self.part.peak_bytes_per_ck * self.ratio

    @property
    def data_width(self):
        """AXI and DFI data width in bits."""
        return 8 * self.beat_bytes

    @property
    def beats_per_burst(self):
        """Controller cycles (beats) per DRAM burst."""
        return self.part.burst_ck // self.ratio

    @property
    def bank_bits(self):
        return exact_log2(self.part.banks)

    @property
    def bg_bits(self):
        """Bank-group bits: the top ``bg_bits`` of a bank number (0 without groups)."""
        return exact_log2(self.part.bank_groups)

    @property
    def ba_bits(self):
        """Bits of the bank within its group."""
        return self.bank_bits - self.bg_bits

    @property
    def row_bits(self):
        return exact_log2(self.part.rows)

    @property
    def col_bits(self):
        """Bits of the burst index within a row."""
        return exact_log2(self.part.page_bytes // self.part.bytes_per_burst)

    @property
    def addr_width(self):
        """Byte address bits of the whole channel."""
        return exact_log2(self.part.page_bytes * self.part.banks * self.part.rows)

    @property
    def rd_latency(self):
        """Controller cycles from a READ to its request reaching the model's storage."""
        return max(1, math.ceil(self.timings.RL / self.ratio))

    @property
    def refs_per_refab(self):
        return max(1, self.part.refpb_per_refab)

    @property
    def controller_mhz(self):
        """Controller clock frequency this configuration stands for."""
        return 1e3 / (self.timings.tck_ns * self.ratio)

    def cycles(self, dram_ck, from_phase=0, to_phase=0):
        """:func:`~lpaccel.rtl.dram.parts.controller_cycles` at this ratio."""
        return controller_cycles(dram_ck, self.ratio, from_phase, to_phase)

    @property
    def shared_slot(self):
        """True when row and column commands share one slot (phase 0), one per cycle.

        Two slots (row commands in phase 0, column commands in phase
        ``ratio - ca.cas``) fit only when a cycle holds the longest row
        command and a column command end to end (LPDDR4 at 1:8, LPDDR5 at
        1:2); otherwise a command may fill or overrun its cycle, so there is
        one command per cycle, and at ratios below its CA length the next
        ``ceil(ca / ratio) - 1`` cycles carry none (LPDDR4 at 1:1 and 1:2).
        """
        ca = self.part.ca
        return self.ratio < ca.row_max + ca.cas

    @property
    def col_phase(self):
        """The slot of column commands (RD/WR); row commands use slot 0."""
        return 0 if self.shared_slot else self.ratio - self.part.ca.cas

    def ca_clocks(self, cmd):
        """CA-bus clocks of ``cmd`` (a :class:`Command`; NOP: 0)."""
        ca = self.part.ca
        return {Command.NOP: 0, Command.ACT: ca.act, Command.RD: ca.cas, Command.WR: ca.cas,
                Command.PRE: ca.pre, Command.PREA: ca.pre, Command.REFAB: ca.ref,
                Command.REFPB: ca.ref}[Command(cmd)]

    def phase(self, cmd):
        """The slot the controller issues ``cmd`` in."""
        return self.col_phase if cmd in (Command.RD, Command.WR) else 0

    def spacing(self, dram_ck, from_cmd, to_cmd):
        """Controller cycles from a ``from_cmd`` to a ``to_cmd`` that must be ``dram_ck`` apart.

        The spacing counts between the two commands' last CA clocks (the
        JEDEC convention, see :class:`~lpaccel.rtl.dram.parts.CaClocks`),
        and each command goes out in its slot (:meth:`phase`) at its first:
        the DRAM-clock distance between the slots is ``dram_ck`` plus the
        difference of the CA lengths, converted with :meth:`cycles`.
        """
        ck = dram_ck + self.ca_clocks(from_cmd) - self.ca_clocks(to_cmd)
        return self.cycles(ck, self.phase(from_cmd), self.phase(to_cmd))


def command_layout(config):
    """Layout of one command slot."""
    return data.StructLayout({
        "cmd": Command,
        "bank": unsigned(max(1, config.bank_bits)),
        "row": unsigned(config.row_bits),
        "col": unsigned(max(1, config.col_bits)),
    })


class DfiSignature(wiring.Signature):
    """The DFI-style command/data boundary, from the controller's side.

    Members
    -------
    phases : out ArrayLayout(command_layout, ratio)
        One command slot per DRAM clock of the controller cycle.
    wrdata, wrdata_strb, wrdata_en : out
        Write data beats (see the module docstring for their timing).
    rddata, rddata_valid : in
        Read data beats.
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "phases": Out(data.ArrayLayout(command_layout(config), config.ratio)),
            "wrdata": Out(config.data_width),
            "wrdata_strb": Out(config.data_width // 8),
            "wrdata_en": Out(1),
            "rddata": In(config.data_width),
            "rddata_valid": In(1),
        })

    def __eq__(self, other):
        return type(other) is type(self) and other.config == self.config

    def __hash__(self):
        return hash((type(self), self.config))

    def __repr__(self):
        return f"DfiSignature({self.config!r})"

