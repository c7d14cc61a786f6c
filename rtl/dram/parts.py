"""DRAM parts as data: geometry and timings, converted to clock cycles at build time.

A part is a frozen :class:`DramPart`: its geometry, its minimum clock period
and every timing parameter as a :class:`Timing` (nanoseconds and/or a
minimum number of DRAM clocks, the way JEDEC tables write ``max(18 ns,
4 nCK)``). Nothing here is a constant in logic: the controller, the device
model and the timing checker all receive the integer cycle counts computed
by :meth:`DramPart.at_clock` for the clock they are built for.

Sources of the numbers (the tables they come from are named at each part):

* LPDDR4/LPDDR4X: JEDEC JESD209-4B, "Core AC Timing" (tRCD, tRP, tRAS, tRRD,
  tFAW, tWR, tWTR, tRTP, tCCD), "Refresh Requirement Parameters" (tRFCab,
  tRFCpb, tREFI, tREFIpb, tpbR2pbR) and "Read and Write Latencies" (RL with
  read DBI off, WL set A). RL/WL agree with LiteDRAM's LPDDR4 PHY table.
* LPDDR5: JEDEC JESD209-5B for an 8 Gb x16 die in bank-group (BG) mode
  (4 bank groups x 4 banks, BL16, WCK:CK = 4:1). The standard itself is not
  in this repository's reach; every number is cross-checked against the
  open implementations that transcribe it (Synopsys DWC DDRCTL ``cinit``
  LPDDR5 timing code, gem5's ``LPDDR5_6400_1x16_BG_BL16``, Ramulator2's
  ``LPDDR5.cpp``) and the Micron MT62F LPDDR5 data sheet feature list; the
  source is named at each number, and the few that could not be confirmed
  are marked as such.
* Board parts: the ISSI IS42S16160J (= MT48LC16M16A2 class) SDR SDRAM of the
  ULX3S and the Micron MT41K256M16 DDR3L of the ECPIX-5, from their data
  sheets' AC timing tables (speed grades -7 and -125).
"""

import math
from dataclasses import dataclass, field, fields

__all__ = ["Timing", "CaClocks", "DramPart", "DramTimings", "PARTS", "LPDDR4_3200", "LPDDR4X_4266",
           "LPDDR5_6400", "IS42S16160_SDR", "MT41K256M16_DDR3", "part_by_name",
           "controller_cycles"]


@dataclass(frozen=True)
class Timing:
    """One timing parameter: ``max(ns, ck nCK)``.

    Parameters
    ----------
    ns : float
        Minimum time in nanoseconds (0 if the parameter is given in clocks only).
    ck : int
        Minimum number of DRAM clocks (0 if given in time only).
    """

    ns: float = 0.0
    ck: int = 0

    def __post_init__(self):
        if not isinstance(self.ns, (int, float)) or self.ns < 0:
            raise ValueError(f"Timing ns must be a non-negative number, not {self.ns!r}")
        if not isinstance(self.ck, int) or self.ck < 0:
            raise ValueError(f"Timing ck must be a non-negative integer, not {self.ck!r}")

    def cycles(self, tck_ns):
        """DRAM clocks at period ``tck_ns``: ``max(ceil(ns / tck), ck)``.

        A tiny tolerance keeps exact multiples (18 ns at 0.625 ns is 28.8,
        but 20 ns at 1.25 ns is exactly 16) from rounding up by float noise.
        """
        return max(math.ceil(self.ns / tck_ns - 1e-9), self.ck)


def _ck(n):
    return Timing(0.0, n)


@dataclass(frozen=True)
class CaClocks:
    """How many DRAM clocks (CK) one command occupies the command/address (CA) bus.

    A command is driven from its first CA clock for ``n`` consecutive clocks;
    the next command may start on the clock after its last. Timing
    parameters count between the commands' *last* CA clocks (the controller
    converts them with :meth:`~lpaccel.rtl.dram.config.LpddrConfig.spacing`,
    the checker times each command at its last CA clock).

    LPDDR4/LPDDR4X (JEDEC JESD209-4B, "Command Truth Table"): every command
    is one or two 2-clock halves on the 6-bit SDR CA bus: ACTIVATE = ACT-1 +
    ACT-2 (4 CK); READ, WRITE and MASK-WRITE = RD-1/WR-1/MWR-1 + CAS-2
    (4 CK); PRECHARGE (per bank and all banks) and REFRESH (all bank and per
    bank) one 2-clock command each. Cross-checked with DRAMSys
    (``MemSpecLPDDR4.cpp``: command lengths ACT 4, RD/WR/MWR 4, PREPB/PREAB
    2, REFAB/REFPB 2 tCK), whose ``CheckerLPDDR4.cpp`` times each command at
    its first clock and adds the length difference to the JEDEC spacings
    (ACT to PRE tRAS + 2 tCK, PRE to ACT tRPpb - 2 tCK, READ to PRE tRTP +
    BL/2 - 6 tCK, ACT to REFpb tRRD + 2 tCK): the same as counting every
    parameter from each command's last CA clock.

    Parameters
    ----------
    act : int
        ACT (LPDDR4: ACT-1 + ACT-2).
    cas : int
        READ, WRITE and MASK-WRITE (LPDDR4: RD-1/WR-1/MWR-1 + CAS-2).
    pre : int
        PRE and PREA.
    ref : int
        REFab and REFpb.
    """

    act: int = 1
    cas: int = 1
    pre: int = 1
    ref: int = 1

    def __post_init__(self):
        for name in ("act", "cas", "pre", "ref"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 4:
                raise ValueError(f"CaClocks {name} must be an integer from 1 to 4 CK, "
                                 f"not {value!r}")

    @property
    def row_max(self):
        """The longest row command (ACT, PRE/PREA, REF)."""
        return max(self.act, self.pre, self.ref)


@dataclass(frozen=True)
class DramTimings:
    """A part's timings as integer DRAM clocks, for one clock period.

    Every field is in DRAM clocks (nCK). ``wr_to_pre`` / ``wr_to_rd`` /
    ``rd_to_wr`` are the derived command-to-command spacings the controller
    and checker use (see :meth:`DramPart.at_clock`). With bank groups,
    ``tCCD`` and ``wr_to_rd`` are the different-group (short) spacings and
    ``tCCD_L`` / ``wr_to_rd_L`` the same-group (long) ones; without, the
    ``_L`` values equal the plain ones. ``tPBR2ACT`` is 0 when the part has
    no separate REFpb-to-ACT spacing (tRRD covers it). ``tPPD`` (PRE/PREA to
    PRE/PREA) and ``tCCDMW`` (WRITE or MASK-WRITE to MASK-WRITE, same bank)
    are 0 on parts that do not define them.
    """

    tck_ns: float
    tRCD: int
    tRPpb: int
    tRPab: int
    tRAS: int
    tRC: int
    tRRD: int
    tFAW: int
    tCCD: int
    tWR: int
    tWTR: int
    tRTP: int
    tCCD_L: int
    tWTR_L: int
    tPBR2ACT: int
    tRFCab: int
    tRFCpb: int
    tPBR2PBR: int
    tREFI: int
    tREFIpb: int
    RL: int
    WL: int
    burst_ck: int
    wr_to_pre: int
    wr_to_rd: int
    rd_to_wr: int
    refresh_postpone: int
    bank_groups: int = 1
    wr_to_rd_L: int = 0
    refpb_banks: int = 1
    tPPD: int = 0
    tCCDMW: int = 0


@dataclass(frozen=True)
class DramPart:
    """Geometry and timings of one DRAM channel (one die/channel, one rank).

    Parameters
    ----------
    name : str
        Command-line name, e.g. ``"lpddr4-3200"``.
    standard : str
        ``"LPDDR4"``, ``"LPDDR4X"``, ``"LPDDR5"``, ``"DDR3"`` or ``"SDR"``.
    tck_ns : float
        Shortest clock period of the speed grade (command clock CK).
    data_width : int
        DQ bits of the channel.
    beats_per_ck : int
        Data transfers per CK per pin: 1 (SDR), 2 (DDR), 8 (LPDDR5 with
        WCK:CK = 4:1, double data rate on WCK).
    burst_length : int
        Beats per READ/WRITE command (BL).
    banks, rows, columns : int
        Geometry of one channel; ``columns`` counts ``data_width``-bit words.
    density_mbit : int
        Channel density in Mbit (``banks * rows * columns * data_width``).
    tRCD ... tREFI : Timing
        JEDEC timing parameters. ``tREFI`` is the all-bank average refresh
        interval; per-bank refresh owes ``refpb_per_refab`` REFpb per tREFI.
    RL, WL : int
        Read and write latency in CK at this speed grade.
    tRC : Timing
        ACT to ACT in one bank; at least ``tRAS + tRPpb`` whatever is stated.
    refresh_postpone : int
        How many refresh intervals may be owed (JEDEC: 8).
    refpb_per_refab : int
        REFpb commands that replace one REFab (0: no per-bank refresh).
    bank_groups : int
        Bank groups (1: none). Banks are numbered ``group * banks_per_group
        + bank_in_group``.
    tCCD_L, tWTR_L : Timing or None
        Same-bank-group CAS-to-CAS and write-to-read times; ``tCCD`` /
        ``tWTR`` are then the different-group (short) ones. ``None`` without
        bank groups.
    tPBR2ACT : Timing or None
        REFpb to ACT of another bank, where the part states one beyond tRRD.
    refpb_banks : int
        Banks one REFpb refreshes: 1, or 2 (bank ``b`` and ``b + banks/2``,
        LPDDR5).
    tPPD : Timing or None
        PRE/PREA to PRE/PREA (any banks); ``None`` if the part has no such rule.
    tCCDMW : Timing or None
        WRITE or MASK-WRITE to a MASK-WRITE of the same bank; ``None``: no
        masked-write rule (the checker then does not look at write strobes).
    tDQSCKmax : Timing or None
        Read DQS output access time, maximum (LPDDR4): enters READ to WRITE.
        ``None``: READ to WRITE uses the older ``RL + BL/2 - WL + 3`` form.
    wpre_rpst_ck : int
        ``tWPRE + RD(tRPST)`` in nCK for READ to WRITE (LPDDR4: 2 + RD(0.5)).
    ca : CaClocks
        CA-bus clocks of each command (default one clock each); every timing
        counts from a command's last CA clock.
    note : str
        Where the numbers come from and what is simplified.
    """

    name: str
    standard: str
    tck_ns: float
    data_width: int
    beats_per_ck: int
    burst_length: int
    banks: int
    rows: int
    columns: int
    density_mbit: int
    tRCD: Timing
    tRPpb: Timing
    tRPab: Timing
    tRAS: Timing
    tRRD: Timing
    tFAW: Timing
    tCCD: Timing
    tWR: Timing
    tWTR: Timing
    tRTP: Timing
    tRFCab: Timing
    tRFCpb: Timing
    tPBR2PBR: Timing
    tREFI: Timing
    RL: int
    WL: int
    tRC: Timing = Timing()
    refresh_postpone: int = 8
    refpb_per_refab: int = 0
    bank_groups: int = 1
    tCCD_L: Timing = None
    tWTR_L: Timing = None
    tPBR2ACT: Timing = None
    refpb_banks: int = 1
    tPPD: Timing = None
    tCCDMW: Timing = None
    tDQSCKmax: Timing = None
    wpre_rpst_ck: int = 0
    ca: CaClocks = CaClocks()
    note: str = field(default="", compare=False)

    def __post_init__(self):
        for name in ("data_width", "beats_per_ck", "burst_length", "banks", "rows", "columns"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1 or value & (value - 1):
                raise ValueError(f"part {self.name}: {name} must be a power of two, "
                                 f"not {value!r}")
        if self.burst_length % self.beats_per_ck:
            raise ValueError(f"part {self.name}: burst_length {self.burst_length} must be a "
                             f"multiple of beats_per_ck {self.beats_per_ck}")
        bits = self.banks * self.rows * self.columns * self.data_width
        if bits != self.density_mbit << 20:
            raise ValueError(f"part {self.name}: banks x rows x columns x data_width is "
                             f"{bits >> 20} Mbit, not the stated {self.density_mbit} Mbit; "
                             f"fix the geometry or the density")
        if self.refpb_banks not in (1, 2):
            raise ValueError(f"part {self.name}: refpb_banks must be 1 or 2, "
                             f"not {self.refpb_banks!r}")
        if self.refpb_per_refab not in (0, self.banks // self.refpb_banks):
            raise ValueError(f"part {self.name}: refpb_per_refab must be 0 or banks / "
                             f"refpb_banks ({self.banks // self.refpb_banks}), "
                             f"not {self.refpb_per_refab}")
        if (not isinstance(self.bank_groups, int) or self.bank_groups < 1
                or self.bank_groups & (self.bank_groups - 1) or self.banks % self.bank_groups):
            raise ValueError(f"part {self.name}: bank_groups must be a power of two dividing "
                             f"banks ({self.banks}), not {self.bank_groups!r}")
        grouped = self.bank_groups > 1
        for name in ("tCCD_L", "tWTR_L"):
            if (getattr(self, name) is not None) != grouped:
                raise ValueError(f"part {self.name}: {name} must be given exactly when the "
                                 f"part has bank groups (bank_groups={self.bank_groups})")
        if not 1 <= self.refresh_postpone <= 8:
            raise ValueError(f"part {self.name}: refresh_postpone must be 1 to 8, "
                             f"not {self.refresh_postpone}")

    @property
    def bytes_per_burst(self):
        """Bytes moved by one READ or WRITE command."""
        return self.data_width * self.burst_length // 8

    @property
    def burst_ck(self):
        """CK cycles one burst occupies the data bus."""
        return self.burst_length // self.beats_per_ck

    @property
    def page_bytes(self):
        """Bytes in one row of one bank."""
        return self.columns * self.data_width // 8

    @property
    def peak_bytes_per_ck(self):
        """Peak data bandwidth in bytes per CK."""
        return self.data_width * self.beats_per_ck // 8

    @property
    def banks_per_group(self):
        """Banks in one bank group (all banks without bank groups)."""
        return self.banks // self.bank_groups

    @property
    def per_bank_refresh(self):
        """True when the part supports REFpb."""
        return self.refpb_per_refab > 0

    def at_clock(self, tck_ns=None):
        """Convert every timing to DRAM clocks at period ``tck_ns``.

        Parameters
        ----------
        tck_ns : float, optional
            DRAM clock period; default the speed grade's own ``tck_ns``.

        Returns
        -------
        DramTimings

        Raises
        ------
        ValueError
            If ``tck_ns`` is shorter than the part's minimum clock period.
        """
        if tck_ns is None:
            tck_ns = self.tck_ns
        if not isinstance(tck_ns, (int, float)) or tck_ns < self.tck_ns * (1 - 1e-6):
            raise ValueError(f"part {self.name}: clock period {tck_ns!r} ns is shorter than "
                             f"the part's minimum {self.tck_ns} ns; use a slower clock")
        c = {f.name: getattr(self, f.name).cycles(tck_ns)
             for f in fields(self) if f.type in ("Timing", Timing)
             and getattr(self, f.name) is not None}
        burst = self.burst_ck
        grouped = self.bank_groups > 1
        # JESD209-5 "BL/n_max": the same-group CAS spacing is the burst's
        # long form; without bank groups it is the burst itself.
        c.setdefault("tCCD_L", c["tCCD"])
        c.setdefault("tWTR_L", c["tWTR"])
        c.setdefault("tPBR2ACT", 0)
        c.setdefault("tPPD", 0)
        c.setdefault("tCCDMW", 0)
        dqsck = c.pop("tDQSCKmax", None)
        bl_n_max = c["tCCD_L"] if grouped else burst
        refs = max(1, self.refpb_per_refab)
        # Refresh intervals are maxima, not minima: round them down.
        trefi = math.floor(self.tREFI.ns / tck_ns)
        return DramTimings(
            tck_ns=tck_ns,
            # JESD209-4: tRC = tRAS + tRPpb; a part may state a longer one.
            tRC=max(c.pop("tRC"), c["tRAS"] + c["tRPpb"]),
            tREFI=trefi,
            tREFIpb=trefi // refs,
            RL=self.RL, WL=self.WL, burst_ck=burst,
            # JESD209-4 "Precharge and Auto Precharge clarification": WRITE
            # to PRECHARGE = WL + BL/2 + 1 + nWR; WRITE to READ = WL + BL/2
            # + 1 + tWTR. READ to WRITE (JESD209-4 "Read to Write" timing,
            # as in Micron's LPDDR4 data sheets): RL + RU(tDQSCK(max)/tCK) +
            # BL/2 - WL + tWPRE + RD(tRPST) = 30 nCK at 3200. Before issue
            # 13 it was RL + BL/2 - WL + 3 = 25 ("tDQSCK folded into the
            # +3"), short by RU(3.5 ns / tCK) - 1 clocks.
            # JESD209-5 (BG mode) writes the same with BL/n_min (= the burst)
            # for WRITE to PRE and different-group WRITE to READ (tWTR_S),
            # BL/n_max for same-group WRITE to READ (tWTR_L) and READ to
            # WRITE (RL + BL/n_max + RU(tWCK2DQO/tCK) - WL + 1, within the +3).
            wr_to_pre=self.WL + burst + 1 + c["tWR"],
            wr_to_rd=self.WL + burst + 1 + c["tWTR"],
            wr_to_rd_L=self.WL + bl_n_max + 1 + c["tWTR_L"],
            rd_to_wr=(max(burst, self.RL + bl_n_max - self.WL + 3) if dqsck is None else
                      max(burst, self.RL + dqsck + burst - self.WL + self.wpre_rpst_ck)),
            refresh_postpone=self.refresh_postpone,
            bank_groups=self.bank_groups,
            refpb_banks=self.refpb_banks,
            **{k: v for k, v in c.items() if k != "tREFI"},
        )


def controller_cycles(dram_ck, ratio, from_phase=0, to_phase=0):
    """Controller cycles between two commands that must be ``dram_ck`` DRAM clocks apart.

    The controller runs at ``1/ratio`` of the DRAM clock and issues each
    command in one of ``ratio`` phases (slots) of its cycle. A command in
    phase ``to_phase`` of controller cycle ``c + k`` is ``k * ratio +
    to_phase - from_phase`` DRAM clocks after one in phase ``from_phase`` of
    cycle ``c``; this returns the least ``k >= 0`` that keeps the distance at
    least ``dram_ck`` (the ceiling of the DRAM-clock count, adjusted for the
    phases).

    Parameters
    ----------
    dram_ck : int
        Minimum spacing in DRAM clocks.
    ratio : int
        Controller:DRAM clock ratio ``1:ratio``.
    from_phase, to_phase : int
        Command slots, ``0 <= phase < ratio``.

    Returns
    -------
    int
    """
    if not isinstance(ratio, int) or ratio < 1:
        raise ValueError(f"ratio must be a positive integer, not {ratio!r}")
    for name, phase in (("from_phase", from_phase), ("to_phase", to_phase)):
        if not 0 <= phase < ratio:
            raise ValueError(f"{name} must be from 0 to {ratio - 1}, not {phase!r}")
    return max(0, -(-(dram_ck - to_phase + from_phase) // ratio))


# --- the parts -------------------------------------------------------------

# JESD209-4B command truth table (see CaClocks): ACT 4 CK, RD/WR/MWR 4 CK,
# PRE/PREA 2 CK, REFab/REFpb 2 CK; DRAMSys MemSpecLPDDR4.cpp agrees.
_LPDDR4_CA = CaClocks(act=4, cas=4, pre=2, ref=2)

# JESD209-4B Table "Core AC Timing" (tCK >= 0.625 ns column), Table
# "Refresh Requirement Parameters" (8 Gb per channel: tRFCab 280 ns, tRFCpb
# 140 ns, tpbR2pbR 90 ns, tREFI 3.904 us at <= 85 C), RL 28 / WL 14 (set A,
# read DBI off) from the read/write latency table. tPPD 4 nCK, tCCDMW 32 nCK
# (= 4 tCCD), tDQSCK(max) 3.5 ns, tWPRE 2 nCK, tRPST 0.5 nCK: the same
# tables; cross-checked with DRAMSys's JEDEC_8Gb_LPDDR4-3200_16bit memspec
# (PPD 4, CCDMW 32, DQSCK 6 = RU(3.5 / 0.625), WPRE 2, RPST 0, and every
# other spacing here) and its LPDDR4 checker's read-to-write formula.
LPDDR4_3200 = DramPart(
    name="lpddr4-3200", standard="LPDDR4", tck_ns=0.625,
    data_width=16, beats_per_ck=2, burst_length=16,
    banks=8, rows=65536, columns=1024, density_mbit=8192,
    tRCD=Timing(18, 4), tRPpb=Timing(18, 4), tRPab=Timing(21, 4), tRAS=Timing(42, 3),
    tRRD=Timing(10, 4), tFAW=Timing(40), tCCD=_ck(8), tWR=Timing(18, 6),
    tWTR=Timing(10, 8), tRTP=Timing(7.5, 8),
    tRFCab=Timing(280), tRFCpb=Timing(140), tPBR2PBR=Timing(90), tREFI=Timing(3904),
    RL=28, WL=14, refpb_per_refab=8,
    tPPD=_ck(4), tCCDMW=_ck(32), tDQSCKmax=Timing(3.5), wpre_rpst_ck=2, ca=_LPDDR4_CA,
    note="JESD209-4B, 8 Gb x16 channel, 2 KiB page, BL16 (32 bytes per burst)")

# Same tables, tCK >= 0.468 ns column; RL 36 / WL 18 (set A, read DBI off).
# tRRD max(10 ns, 4nCK) and tFAW 40 ns as at 3200: DRAMSys's JEDEC
# LPDDR4-4266 memspecs (512Mbx16 and 1Gbx16: RRD 22, FAW 86 nCK at 0.469 ns,
# with RCD/RAS/RP/WR/WTR/RTP/RFC/REFI equal to the values here). Until issue
# 13 this part had tRRD 7.5 ns and tFAW 30 ns "above 3200 Mbps", from no
# source found since; the longer values are the safe ones. (The same
# memspecs give DQSCK 4 nCK at 4266, below the 3.5 ns the 3200 file and the
# standard's table give; 3.5 ns is kept.)
LPDDR4X_4266 = DramPart(
    name="lpddr4x-4266", standard="LPDDR4X", tck_ns=0.468,
    data_width=16, beats_per_ck=2, burst_length=16,
    banks=8, rows=65536, columns=1024, density_mbit=8192,
    tRCD=Timing(18, 4), tRPpb=Timing(18, 4), tRPab=Timing(21, 4), tRAS=Timing(42, 3),
    tRRD=Timing(10, 4), tFAW=Timing(40), tCCD=_ck(8), tWR=Timing(18, 6),
    tWTR=Timing(10, 8), tRTP=Timing(7.5, 8),
    tRFCab=Timing(280), tRFCpb=Timing(140), tPBR2PBR=Timing(90), tREFI=Timing(3904),
    RL=36, WL=18, refpb_per_refab=8,
    tPPD=_ck(4), tCCDMW=_ck(32), tDQSCKmax=Timing(3.5), wpre_rpst_ck=2, ca=_LPDDR4_CA,
    note="JESD209-4B, 8 Gb x16 channel, 2 KiB page, BL16 (32 bytes per burst)")

# LPDDR5-6400, one 8 Gb x16 die (one channel) in bank-group mode: JESD209-5B
# allows 16B mode only up to 3200 Mbps, so at 6400 Mbps the die runs as 4
# bank groups x 4 banks (2 KiB page, BL16 or BL32; Micron MT62F data sheet
# feature list: "2KB page size with bank group (BG mode)", BL 16 or 32 in BG
# mode). CK = 800 MHz, WCK:CK = 4:1, 8 data beats per CK. Sources, per
# number ("DWC" = Synopsys DWC DDRCTL cinit LPDDR5 timing code, x16, 4:1,
# DVFSC off, link ECC off, read DBI off; "gem5" = LPDDR5_6400_1x16_BG_BL16;
# "R2" = Ramulator2 LPDDR5.cpp):
#   BL16: 16 beats = 2 CK on the bus (gem5 tBURST 2.5 ns; DWC BL/n_min 2).
#     BL32 in BG mode moves two 16-beat halves with a gap meant for another
#     group's burst (gem5); that interleave is not modeled, so BL16 is used.
#   tCCD_S 2 nCK, tCCD_L 4 nCK (BL16): DWC tccd_s/tccd_l for 4BK_4BG at 4:1;
#     gem5 tCCD_L 5 ns.
#   tRCD max(18 ns, 2nCK), tRPpb max(18, 2), tRPab max(21, 2), tRAS max(42,
#     3): DWC; gem5 (tRCD, tRP, tRAS).
#   tRRD max(5 ns, 2nCK), same for _S and _L (so one tRRD), tFAW 20 ns: DWC
#     (trrd_s = trrd_l for LPDDR5), gem5 (tRRD = tRRD_L = 5 ns, tXAW 20 ns).
#   tWR max(34 ns, 3nCK): DWC (x16), gem5; nWR 28 at 6400 (DWC) = ceil(34/1.25).
#   tWTR_S max(6.25 ns, 4nCK), tWTR_L max(12 ns, 4nCK): DWC, gem5.
#   tRTP max(7.5 ns, 2nCK): DWC trtp at 4:1. (JESD209-5 writes READ to PRE
#     as BL/n_min + tRBTP, tRBTP = max(7.5 ns, 2nCK) - 2nCK: the same 6 CK.)
#   RL 17 / WL 9: DWC (6400, x16, DBI off, WL set A); gem5 (RL 17 CK).
#   tREFI 3.906 us, tREFIpb = tREFI / 8: DWC (trefi 3906000 ps, trefipb
#     488000 ps); one REFpb refreshes two banks, b and b + 8 (R2's REFpb
#     bank check), hence 8 REFpb per tREFI.
#   tRFCab 210 ns, tRFCpb 120 ns for 8 Gb: R2's density table; gem5 tRFC
#     210 ns. Not confirmed by DWC: the revision found uses 280/140 ns as a
#     placeholder ("other sizes TBD") for 6 Gb and up.
#   tpbR2pbR 90 ns: R2 (8 Gb); the earlier 60 ns here was R2's 2 Gb value.
#     Not confirmed by a second source.
#   tpbR2act 7.5 ns (REFpb to ACT of another bank): DWC (tpbr2act 7500 ps);
#     R2 uses 8 ns.
#   CA bus: kept at one clock per command (CaClocks default). JESD209-5's CA
#     is DDR on CK and ACTIVATE is two separate commands (ACT-1, ACT-2; R2
#     models them as such, with CAS-RD/CAS-WR WCK2CK-sync commands before
#     RD/WR), but no source in reach states each command's CA clocks, so
#     the LPDDR5 command bus is not modeled (docs/memory.md).
LPDDR5_6400 = DramPart(
    name="lpddr5-6400", standard="LPDDR5", tck_ns=1.25,
    data_width=16, beats_per_ck=8, burst_length=16,
    banks=16, rows=32768, columns=1024, density_mbit=8192, bank_groups=4,
    tRCD=Timing(18, 2), tRPpb=Timing(18, 2), tRPab=Timing(21, 2), tRAS=Timing(42, 3),
    tRRD=Timing(5, 2), tFAW=Timing(20), tCCD=_ck(2), tCCD_L=_ck(4), tWR=Timing(34, 3),
    tWTR=Timing(6.25, 4), tWTR_L=Timing(12, 4), tRTP=Timing(7.5, 2),
    tRFCab=Timing(210), tRFCpb=Timing(120), tPBR2PBR=Timing(90), tPBR2ACT=Timing(7.5),
    tREFI=Timing(3906),
    RL=17, WL=9, refpb_per_refab=8, refpb_banks=2, tPPD=_ck(2),
    note="JESD209-5B, 8 Gb x16 die, BG mode (4 bank groups x 4 banks), 2 KiB page, "
         "BL16 (32 bytes per burst); tRFC/tpbR2pbR for 8 Gb from Ramulator2 only")

# ULX3S: 32 MB 16-bit SDR SDRAM (IS42S16160J-7, pin compatible with
# MT48LC16M16A2-6A), data sheet AC characteristics, -7 grade at 143 MHz,
# CL 3; 8192 refresh commands per 64 ms.
IS42S16160_SDR = DramPart(
    name="is42s16160", standard="SDR", tck_ns=7.0,
    data_width=16, beats_per_ck=1, burst_length=1,
    banks=4, rows=8192, columns=512, density_mbit=256,
    tRCD=Timing(20), tRPpb=Timing(20), tRPab=Timing(20), tRAS=Timing(42),
    tRRD=Timing(14), tFAW=Timing(0), tCCD=_ck(1), tWR=Timing(14, 2),
    tWTR=_ck(0), tRTP=_ck(0),
    tRFCab=Timing(63), tRFCpb=Timing(63), tPBR2PBR=Timing(0), tREFI=Timing(64e6 / 8192),
    RL=3, WL=0, refpb_per_refab=0,
    note="ISSI IS42S16160J-7 / Micron MT48LC16M16A2 data sheets, 256 Mbit x16")

# ECPIX-5: Micron MT41K256M16TW-107/-125 DDR3L (4 Gb, x16), data sheet
# tables "Electrical Characteristics and AC Operating Conditions" at
# DDR3-1600 (tCK 1.25 ns, CL 11, CWL 8); tRFC 260 ns for 4 Gb.
MT41K256M16_DDR3 = DramPart(
    name="mt41k256m16", standard="DDR3", tck_ns=1.25,
    data_width=16, beats_per_ck=2, burst_length=8,
    banks=8, rows=32768, columns=1024, density_mbit=4096,
    tRCD=Timing(13.75), tRPpb=Timing(13.75), tRPab=Timing(13.75), tRAS=Timing(35),
    tRRD=Timing(7.5, 4), tFAW=Timing(40), tCCD=_ck(4), tWR=Timing(15),
    tWTR=Timing(7.5, 4), tRTP=Timing(7.5, 4),
    tRFCab=Timing(260), tRFCpb=Timing(260), tPBR2PBR=Timing(0), tREFI=Timing(7800),
    RL=11, WL=8, refpb_per_refab=0,
    note="Micron MT41K256M16 DDR3L-1600 data sheet, 4 Gb x16, 2 KiB page")

#: Every part, by command-line name.
PARTS = {p.name: p for p in (LPDDR4_3200, LPDDR4X_4266, LPDDR5_6400, IS42S16160_SDR,
                             MT41K256M16_DDR3)}


def part_by_name(name):
    """Look a part up by its command-line name.

    Raises
    ------
    ValueError
        If there is no such part; the message lists the known names.
    """
    if isinstance(name, DramPart):
        return name
    try:
        return PARTS[name]
    except KeyError:
        raise ValueError(f"memory part {name!r} is not known (known: "
                         f"{', '.join(sorted(PARTS))})") from None
