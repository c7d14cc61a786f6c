"""DDR read leveling of a LiteDRAM core, done in hardware after the init program.

A PHY whose ``PhySettings.read_leveling`` is set (DDR3 on ECP5:
``ECP5DDRPHY``) must have its read delay and bitslip tuned per DQS group
before data reads back reliably; LiteX's BIOS does it in software
(``sdram_read_leveling()``). Here the core has no CPU, so
:class:`LiteDramReadLeveler` does it over the core's Wishbone control port:
per DQS group it scans every (bitslip, read delay) with write/read-back
tests through the DFII, picks the center of the longest run of passing
delays, checks it, then hands the DFII to the controller and sets
``init_done``; no passing setting raises ``level_error``.
:class:`~lpaccel.boards.litedram.LiteDramInitController` runs it between
the init program and the hand-back.

Its geometry (groups, bitslips, delays, DFI phases and data widths, CSR
addresses) comes from the generated core (:class:`LiteDramLevelingConfig`,
:meth:`LiteDramLevelingConfig.from_core`); nothing is board-specific. It is
tested against a behavioural model of the control port
(``tests/boards/test_litedram_leveling.py``) and synthesized, but has not
run on a board: whether the ECPIX-5's real windows are found, and whether
the data then reads back reliably, is unverified. Write leveling is not
needed by ``ECP5DDRPHY`` and not done.
"""

from dataclasses import dataclass, field

from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .generate import _DFII

__all__ = ["LiteDramLevelingConfig", "LiteDramReadLeveler"]

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
        ops, spans = self._program()
        op = self._rom(m, ops)
        module = Signal(range(self.config.modules))
        self._drive_bus(m, op, module)
        executor = self._executor(m, op, module)
        scan = _Scan(self.config)
        with m.FSM(name="level"):
            self._scan_states(m, executor, spans, scan, module)
            self._set_states(m, executor, spans, scan, module)
        return m

    def _program(self):
        """The routines laid end to end.

        Returns
        -------
        ops : list of tuple
            Every routine's ops (as :meth:`_routines` gives them), in order.
        spans : dict
            Routine name -> (first op index, last op index).
        """
        ops, spans = [], {}
        for name, body in self._routines().items():
            spans[name] = (len(ops), len(ops) + len(body) - 1)
            ops += body
        return ops, spans

    def _rom(self, m, ops):
        """The micro-program ROM and the decoded fields of the op at ``pc``.

        The ROM holds indices into tables of the few distinct addresses,
        values and waits (638 instead of 804 LUT4 for the ECPIX-5 leveler),
        one :func:`_rom_entry_layout` entry per op.

        Returns
        -------
        _Op
        """
        cfg = self.config
        max_wait = max(max(op[3] for op in ops), cfg.timeout)
        cw = ceil_log2(max_wait + 2)
        tables = [sorted({op[i] for op in ops}) for i in (1, 2, 3)]
        layout = _rom_entry_layout(tables, cfg.words_per_phase)

        def encode(op):
            kind, address, value, wait, word = op
            return {"kind": kind, "address": tables[0].index(address),
                    "value": tables[1].index(value), "wait": tables[2].index(wait),
                    "word": word}

        rom = Memory(shape=layout, depth=len(ops), init=[encode(op) for op in ops])
        m.submodules.rom = rom
        rd = rom.read_port(domain="comb")
        pc = Signal(range(len(ops)))
        end = Signal(range(len(ops)))
        m.d.comb += rd.addr.eq(pc)
        entry = rd.data
        return _Op(pc=pc, end=end, kind=entry.kind, word=entry.word, count_width=cw,
                   adr=Array(Const(a >> 2, 30) for a in tables[0])[entry.address],
                   value=Array(Const(v, 32) for v in tables[1])[entry.value],
                   wait=Array(Const(w, cw) for w in tables[2])[entry.wait])

    def _drive_bus(self, m, op, module):
        """Wishbone address, data and direction of the op at ``pc``.

        ``_WRITE_SEL`` writes the one-hot bit of the current module;
        ``_WRITE`` and ``_WRITE_SEL`` (op kinds 0 and 1) write, the others read.
        """
        m.d.comb += [
            self.wb_adr.eq(op.adr),
            self.wb_dat_w.eq(Mux(op.kind == self._WRITE_SEL, Const(1, 32) << module,
                                 op.value)),
            self.wb_sel.eq(0xF),
            self.wb_we.eq(op.kind[1] == 0),
        ]

    def _executor(self, m, op, module):
        """The micro-program executor: runs ``pc..end``, one Wishbone access per op.

        After each acknowledge it waits the op's ``wait`` cycles; a read op
        that mismatches (``_READ_CMP``: the module's bits of the word,
        ``_READ_BIT``: the module's bit) sets ``failed`` for the routine. An
        access not acknowledged within ``timeout`` cycles stops it for good
        and raises ``error``.

        Returns
        -------
        _Executor
            Its start request and the routine's outcome.
        """
        cfg = self.config
        masks = Array(Array(Const(mask, 32) for mask in self._word_masks(i))
                      for i in range(cfg.modules))
        go = Signal()
        go_start = Signal.like(op.pc)             # the routine's first and last op
        go_end = Signal.like(op.end)
        finished = Signal()                       # pulse: the routine's last op is done
        failed = Signal()                         # some compare failed in this routine
        count = Signal(op.count_width)
        with m.FSM(name="exec"):
            with m.State("IDLE"):
                with m.If(go):
                    m.d.sync += [op.pc.eq(go_start), op.end.eq(go_end), failed.eq(0),
                                 count.eq(0)]
                    m.next = "BUS"
            with m.State("BUS"):
                m.d.comb += [self.wb_cyc.eq(1), self.wb_stb.eq(1)]
                m.d.sync += count.eq(count + 1)
                with m.If(self.wb_ack):
                    m.d.sync += count.eq(op.wait)
                    with m.If(op.kind == self._READ_CMP):
                        with m.If(((self.wb_dat_r ^ op.value) & masks[module][op.word]) != 0):
                            m.d.sync += failed.eq(1)
                    with m.If(op.kind == self._READ_BIT):
                        with m.If(~self.wb_dat_r.bit_select(module, 1)):
                            m.d.sync += failed.eq(1)
                    m.next = "WAIT"
                with m.Elif(count == cfg.timeout):
                    m.next = "TIMEOUT"
            with m.State("WAIT"):
                m.d.sync += count.eq(count - 1)
                with m.If(count == 0):
                    with m.If(op.pc == op.end):
                        m.d.comb += finished.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [op.pc.eq(op.pc + 1), count.eq(0)]
                        m.next = "BUS"
            with m.State("TIMEOUT"):
                m.d.comb += self.error.eq(1)
        return _Executor(go=go, go_start=go_start, go_end=go_end, finished=finished,
                         failed=failed)

    @staticmethod
    def _call(m, executor, spans, state, routine, then):
        """Two ``level`` states: ``state`` starts ``routine``, ``state_RUN``
        waits for it, then goes to ``then``."""
        start, stop = spans[routine]
        with m.State(state):
            m.d.comb += [executor.go.eq(1), executor.go_start.eq(start), executor.go_end.eq(stop)]
            m.next = state + "_RUN"
        with m.State(state + "_RUN"):
            with m.If(executor.finished):
                m.next = then

    def _scan_states(self, m, executor, spans, scan, module):
        """``level`` states that test every (bitslip, delay) of a module.

        From ``IDLE`` (or the previous module's ``CHECKED``) through every
        bitslip and, per bitslip, every delay, scoring each test
        (:meth:`_score`); then ``CHOOSE``.
        """
        cfg = self.config
        with m.State("IDLE"):
            with m.If(self.start):
                m.d.sync += module.eq(0)
                m.next = "MODULE"
        with m.State("MODULE"):
            m.d.sync += [scan.bitslip.eq(0), scan.best_len.eq(0), scan.best_bitslip.eq(0),
                         scan.best_end.eq(0)]
            m.next = "BITSLIP_RST"
        self._call(m, executor, spans, "BITSLIP_RST", "bitslip_rst", "SCAN")
        with m.State("SCAN"):                     # a new bitslip: scan all delays
            m.d.sync += [scan.delay.eq(0), scan.run.eq(0)]
            m.next = "DELAY_RST"
        self._call(m, executor, spans, "DELAY_RST", "delay_rst", "TEST")
        self._call(m, executor, spans, "TEST", "test", "SCORE")
        with m.State("SCORE"):
            self._score(m, executor.failed, scan)
            with m.If(scan.delay == cfg.delays - 1):
                with m.If(scan.bitslip == cfg.bitslips - 1):
                    m.next = "CHOOSE"
                with m.Else():
                    m.d.sync += scan.bitslip.eq(scan.bitslip + 1)
                    m.next = "BITSLIP_INC"
            with m.Else():
                m.d.sync += scan.delay.eq(scan.delay + 1)
                m.next = "DELAY_INC"
        self._call(m, executor, spans, "DELAY_INC", "delay_inc", "TEST")
        self._call(m, executor, spans, "BITSLIP_INC", "bitslip_inc", "SCAN")

    @staticmethod
    def _score(m, failed, scan):
        """Window scoring of one test: extend or end the run of passing
        delays; a run longer than the best so far becomes the best (so ties
        keep the lowest bitslip, then the lowest delay)."""
        with m.If(failed):
            m.d.sync += scan.run.eq(0)
        with m.Else():
            m.d.sync += scan.run.eq(scan.run + 1)
            with m.If(scan.run + 1 > scan.best_len):
                m.d.sync += [scan.best_len.eq(scan.run + 1),
                             scan.best_bitslip.eq(scan.bitslip), scan.best_end.eq(scan.delay)]

    def _set_states(self, m, executor, spans, scan, module):
        """``level`` states that set a module to its best window and check it.

        ``CHOOSE`` takes the best run's center delay (rounded down); the
        bitslip and delay are reset and stepped up to it, tested once more,
        and recorded in the ``bitslip``/``delay`` ports; after the last
        module the ``finish`` writes run. No window or a failed check ends
        in ``LEVEL_ERROR``.
        """
        cfg = self.config
        with m.State("CHOOSE"):
            m.d.sync += [scan.center.eq(scan.best_end - (scan.best_len >> 1)),
                         scan.steps.eq(0)]
            with m.If(scan.best_len == 0):
                m.next = "LEVEL_ERROR"
            with m.Else():
                m.next = "SET_BITSLIP_RST"
        self._call(m, executor, spans, "SET_BITSLIP_RST", "bitslip_rst", "SET_BITSLIP")
        with m.State("SET_BITSLIP"):
            with m.If(scan.steps == scan.best_bitslip):
                m.d.sync += scan.steps.eq(0)
                m.next = "SET_DELAY_RST"
            with m.Else():
                m.d.sync += scan.steps.eq(scan.steps + 1)
                m.next = "SET_BITSLIP_INC"
        self._call(m, executor, spans, "SET_BITSLIP_INC", "bitslip_inc", "SET_BITSLIP")
        self._call(m, executor, spans, "SET_DELAY_RST", "delay_rst", "SET_DELAY")
        with m.State("SET_DELAY"):
            with m.If(scan.steps == scan.center):
                m.next = "CHECK"
            with m.Else():
                m.d.sync += scan.steps.eq(scan.steps + 1)
                m.next = "SET_DELAY_INC"
        self._call(m, executor, spans, "SET_DELAY_INC", "delay_inc", "SET_DELAY")
        self._call(m, executor, spans, "CHECK", "test", "CHECKED")
        with m.State("CHECKED"):
            with m.If(executor.failed):
                m.next = "LEVEL_ERROR"
            with m.Else():
                for i in range(cfg.modules):
                    with m.If(module == i):
                        m.d.sync += [self.bitslip[i].eq(scan.best_bitslip),
                                     self.delay[i].eq(scan.center)]
                with m.If(module == cfg.modules - 1):
                    m.next = "FINISH"
                with m.Else():
                    m.d.sync += module.eq(module + 1)
                    m.next = "MODULE"
        self._call(m, executor, spans, "FINISH", "finish", "DONE")
        with m.State("DONE"):
            m.d.comb += self.done.eq(1)
        with m.State("LEVEL_ERROR"):
            m.d.comb += [self.level_error.eq(1), self.failed_module.eq(module)]


def _rom_entry_layout(tables, words_per_phase):
    """Layout of one micro-program ROM entry.

    Parameters
    ----------
    tables : list of list of int
        The distinct addresses, values and waits; an entry holds indices
        into them.
    words_per_phase : int
        CSR words per DFI phase (the ``word`` field's range).

    Returns
    -------
    data.StructLayout
        ``kind`` (op kind, 2 bits), ``address``, ``value``, ``wait`` (table
        indices) and ``word`` (CSR word of a phase, compares only), packed
        from bit 0 in that order.
    """
    address, value, wait = (max(1, ceil_log2(len(t))) for t in tables)
    return data.StructLayout({"kind": 2, "address": address, "value": value, "wait": wait,
                              "word": max(1, ceil_log2(words_per_phase))})


@dataclass(frozen=True)
class _Op:
    """The micro-program ROM's current op, decoded (:meth:`LiteDramReadLeveler._rom`).

    ``pc``/``end`` are the executor's program counter and the running
    routine's last op; ``kind`` the op kind, ``adr`` the Wishbone word
    address, ``value`` the data to write or compare, ``wait`` the cycles to
    wait after the access, ``word`` the CSR word of a phase a compare
    reads; ``count_width`` the executor's wait/timeout counter width.
    """

    pc: object
    end: object
    kind: object
    adr: object
    value: object
    wait: object
    word: object
    count_width: int


@dataclass(frozen=True)
class _Executor:
    """The executor's interface to the ``level`` FSM: ``go`` with
    ``go_start``/``go_end`` (first/last op) starts a routine; ``finished``
    pulses at its end, and ``failed`` then tells whether a read mismatched."""

    go: object
    go_start: object
    go_end: object
    finished: object
    failed: object


class _Scan:
    """The ``level`` FSM's registers for one module's scan and its best window.

    ``bitslip``/``delay`` the setting under test, ``steps`` the counter that
    steps the PHY to the chosen setting, ``run`` the consecutive passing
    delays so far, ``best_len``/``best_bitslip``/``best_end`` the longest run
    (its length, bitslip and last delay), ``center`` its center delay.
    """

    def __init__(self, cfg):
        self.bitslip = Signal(range(cfg.bitslips))
        self.delay = Signal(range(cfg.delays))
        self.steps = Signal(range(max(cfg.bitslips, cfg.delays)))
        self.run = Signal(range(cfg.delays + 1))
        self.best_len = Signal(range(cfg.delays + 1))
        self.best_bitslip = Signal.like(self.bitslip)
        self.best_end = Signal.like(self.delay)
        self.center = Signal.like(self.delay)
