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

