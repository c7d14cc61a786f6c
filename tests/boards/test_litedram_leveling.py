# amaranth: UnusedElaboratable=no
"""DDR read leveling of the LiteDRAM wrapper against a behavioural control port.

:class:`LevelingPortModel` stands in for the generated core's Wishbone CSR
port: a CSR decoder with the DFII (control, phase injectors with
``wrdata``/``rddata``, command issue), a tiny DRAM (bursts stored per bank,
row and column; activate/precharge tracked) and a read-leveling PHY
(``dly_sel``, read delay and bitslip per module, ``burstdet``). The PHY
returns a module's bytes correctly only inside hidden (bitslip, delay)
windows; with the wrong bitslip the burst comes back shifted by beats, with
the wrong delay it comes back with bit errors. The tests check that
:class:`~lpaccel.boards.litedram.LiteDramInitController` replays the
init program in order, levels every module to the center of its longest
window and hands the DFII back, or raises ``level_error`` / ``error``.
"""


import pytest
from amaranth.hdl import Fragment, Module, Signal
from amaranth.sim import Simulator

from lpaccel.boards.litedram import (
    LiteDramCore,
    LiteDramInitController,
    LiteDramLevelingConfig,
    LiteDramReadLeveler,
    generate_litedram_core,
)

# DFII command bits (litedram/init.py).
CS, WE, CAS, RAS, WRDATA, RDDATA = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
SEL = 0x01                                   # dfii_control: hardware control


def synthetic_csr_map(nphases, words_per_phase):
    """A LiteX-like CSR map (byte addresses) for a PHY with ``nphases`` phases."""
    names = ["ddrctrl_init_done", "ddrctrl_init_error"]
    csr, addr = {}, 0
    for name in names:
        csr[name], addr = addr, addr + 4
    addr = 0x800
    for name in ("ddrphy_dly_sel", "ddrphy_rdly_dq_rst", "ddrphy_rdly_dq_inc",
                 "ddrphy_rdly_dq_bitslip_rst", "ddrphy_rdly_dq_bitslip",
                 "ddrphy_burstdet_clr", "ddrphy_burstdet_seen"):
        csr[name], addr = addr, addr + 4
    addr = 0x1000
    csr["sdram_dfii_control"], addr = addr, addr + 4
    for p in range(nphases):
        for reg, words in (("command", 1), ("command_issue", 1), ("address", 1),
                           ("baddress", 1), ("wrdata", words_per_phase),
                           ("rddata", words_per_phase)):
            csr[f"sdram_dfii_pi{p}_{reg}"], addr = addr, addr + 4 * words
    return csr


def short_program(csr):
    """An init program of the generated shape: software control ... init_done."""
    return [(csr["sdram_dfii_control"], 0x0E, 0), (csr["sdram_dfii_pi0_address"], 0x400, 0),
            (csr["sdram_dfii_pi0_baddress"], 0, 0), (csr["sdram_dfii_pi0_command"], 0x0B, 0),
            (csr["sdram_dfii_pi0_command_issue"], 1, 3),
            (csr["sdram_dfii_control"], 0x0F, 0), (csr["ddrctrl_init_done"], 1, 0)]


class LevelingPortModel:
    """The core's Wishbone CSR port: DFII, DRAM and a read-leveling PHY.

    Parameters
    ----------
    cfg : LiteDramLevelingConfig
        The CSR map and PHY geometry.
    windows : list of list of (bitslip, first delay, last delay)
        Per module, the settings at which reads return correct data; an
        empty list: the module never reads correctly.
    burst_ok : callable, optional
        ``(module, delay) -> bool``: whether a read at that delay sets the
        module's ``burstdet_seen`` bit. Default: the delay lies inside one
        of the module's windows (at any bitslip).
    dead_after : int, optional
        Stop acknowledging after this many accesses.
    """

    def __init__(self, cfg, windows, *, burst_ok=None, dead_after=None):
        assert len(windows) == cfg.modules
        self.cfg, self.windows, self.dead_after = cfg, windows, dead_after
        self.burst_ok = burst_ok or (lambda module, delay: any(
            lo <= delay <= hi for _, lo, hi in windows[module]))
        self.names = {}
        for name, addr in cfg.csr.items():
            for w in range(cfg.words_per_phase if name.endswith(("wrdata", "rddata")) else 1):
                self.names[addr + 4 * w] = (name, w)
        n = cfg.words_per_phase
        self.regs = {name: [0] * (n if name.endswith(("wrdata", "rddata")) else 1)
                     for name in cfg.csr}
        self.regs["sdram_dfii_control"] = [SEL]           # reset: hardware control
        self.delay = [0] * cfg.modules
        self.bitslip = [0] * cfg.modules
        self.open_rows = {}
        self.memory = {}
        self.writes = []          # (byte address, value) in order
        self.commands = []        # (phase, command bits, bank, address)
        self.violations = []      # protocol errors the model saw
        self.accesses = 0

    # -- the Wishbone side ------------------------------------------------
    def access(self, addr, we, value):
        self.accesses += 1
        if addr not in self.names:
            self.violations.append(f"access to unmapped address {addr:#x}")
            return 0
        name, word = self.names[addr]
        if not we:
            return self.regs[name][word]
        self.writes.append((addr, value))
        if name.endswith("rddata") or name == "ddrphy_burstdet_seen":
            self.violations.append(f"write to read-only {name}")
            return 0
        self.regs[name][word] = value
        selected = [m for m in range(self.cfg.modules)
                    if (self.regs["ddrphy_dly_sel"][0] >> m) & 1]
        if name == "ddrphy_rdly_dq_rst":
            for m in selected:
                self.delay[m] = 0
        elif name == "ddrphy_rdly_dq_inc":
            for m in selected:
                self.delay[m] = (self.delay[m] + 1) % self.cfg.delays
        elif name == "ddrphy_rdly_dq_bitslip_rst":
            for m in selected:
                self.bitslip[m] = 0
        elif name == "ddrphy_rdly_dq_bitslip":
            for m in selected:
                self.bitslip[m] = (self.bitslip[m] + 1) % self.cfg.bitslips
        elif name == "ddrphy_burstdet_clr":
            self.regs["ddrphy_burstdet_seen"] = [0]
        elif name.endswith("_command_issue"):
            self.issue(int(name[len("sdram_dfii_pi"):].split("_")[0]))
        return 0

    def phase_value(self, name, phase):
        words = self.regs[f"sdram_dfii_pi{phase}_{name}"]
        value = 0
        for w in words:                        # most significant word first
            value = (value << 32) | w
        return value

    def issue(self, phase):
        cfg = self.cfg
        pi = f"sdram_dfii_pi{phase}_"
        cmd = self.regs[pi + "command"][0]
        bank, address = self.regs[pi + "baddress"][0], self.regs[pi + "address"][0]
        self.commands.append((phase, cmd, bank, address))
        if self.regs["sdram_dfii_control"][0] & SEL:
            self.violations.append(f"command {cmd:#x} issued under hardware control")
        kind = cmd & (RAS | CAS | WE)
        if kind == RAS:
            self.open_rows[bank] = address
        elif kind == RAS | WE:
            self.open_rows.pop(bank, None)
        elif kind in (CAS | WE, CAS):
            if bank not in self.open_rows:
                self.violations.append(f"column command {cmd:#x} to closed bank {bank}")
                return
            key = (bank, self.open_rows[bank], address)
            if kind == CAS | WE:
                if phase != cfg.wrphase:
                    self.violations.append(f"write on phase {phase}, not {cfg.wrphase}")
                self.memory[key] = [self.phase_value("wrdata", p) for p in range(cfg.nphases)]
            else:
                if phase != cfg.rdphase:
                    self.violations.append(f"read on phase {phase}, not {cfg.rdphase}")
                self.read(self.memory.get(key, [0] * cfg.nphases))

    # -- the PHY's read path ----------------------------------------------
    def read(self, burst):
        cfg = self.cfg
        width = cfg.databits // cfg.modules
        beats = cfg.dfi_databits // cfg.databits
        lane = (1 << width) - 1
        out = list(burst)
        for m in range(cfg.modules):
            shifts = [(p, t, t * cfg.databits + m * width) for p in range(cfg.nphases)
                      for t in range(beats)]
            data = [(burst[p] >> s) & lane for p, t, s in shifts]
            b, d = self.bitslip[m], self.delay[m]
            if not any(wb == b and lo <= d <= hi for wb, lo, hi in self.windows[m]):
                ref = self.windows[m][0][0] if self.windows[m] else b + 1
                slip = (b - ref) % cfg.bitslips
                if slip:     # the burst shifted by beats, idle bus (all ones) after it
                    data = data[slip:] + [lane] * slip
                else:        # right beat, sampled at the wrong time: bit errors
                    data = [v ^ (1 << (k % width)) for k, v in enumerate(data)]
            for (p, _, s), v in zip(shifts, data):
                out[p] = (out[p] & ~(lane << s)) | (v << s)
            if self.burst_ok(m, d):
                self.regs["ddrphy_burstdet_seen"][0] |= 1 << m
        n = cfg.words_per_phase
        for p in range(cfg.nphases):
            self.regs[f"sdram_dfii_pi{p}_rddata"] = [
                (out[p] >> (32 * (n - 1 - w))) & 0xFFFFFFFF for w in range(n)]

    # -- simulation -------------------------------------------------------
    async def serve(self, ctx, dut, stop):
        """Acknowledge every access one cycle after it starts, until ``stop``."""
        while True:
            await ctx.tick().until((dut.wb_cyc & dut.wb_stb) | stop)
            if ctx.get(stop):
                return
            if self.dead_after is not None and self.accesses >= self.dead_after:
                continue
            data = self.access(ctx.get(dut.wb_adr) << 2, ctx.get(dut.wb_we),
                               ctx.get(dut.wb_dat_w))
            ctx.set(dut.wb_dat_r, data)
            ctx.set(dut.wb_ack, 1)
            await ctx.tick()
            ctx.set(dut.wb_ack, 0)


def run_controller(cfg, windows, *, program=None, max_cycles=400_000, **model_args):
    """Run a LiteDramInitController against the model; return (outcome, model)."""
    program = program if program is not None else short_program(cfg.csr)
    dut = LiteDramInitController(program, leveling=cfg)
    model = LevelingPortModel(cfg, windows, **model_args)
    outcome = {}

    # A cycle counter in the design bounds the run: a hang fails, never blocks.
    top = Module()
    top.submodules.dut = dut
    cycles = Signal(range(max_cycles + 1))
    top.d.sync += cycles.eq(cycles + (cycles != max_cycles))

    stop = dut.done | dut.error | dut.level_error | (cycles == max_cycles)

    async def watch(ctx):
        await ctx.tick().until(stop)
        outcome["cycles"] = ctx.get(cycles)
        if outcome["cycles"] == max_cycles:
            return
        outcome.update(done=ctx.get(dut.done), error=ctx.get(dut.error),
                       level_error=ctx.get(dut.level_error),
                       failed_module=ctx.get(dut.failed_module),
                       bitslip=list(ctx.get(dut.bitslip)), delay=list(ctx.get(dut.delay)))

    sim = Simulator(top)
    sim.add_clock(1e-8)
    async def serve(ctx):
        await model.serve(ctx, dut, stop)

    sim.add_testbench(serve)
    sim.add_testbench(watch)
    sim.run()
    assert "done" in outcome, f"neither done nor an error within {max_cycles} cycles"
    assert not model.violations, model.violations[:5]
    return outcome, model


def expected_choice(windows):
    """Per module: the longest window (lowest bitslip, then delay, on ties), centered."""
    bitslips, delays = [], []
    for module in windows:
        b, lo, hi = min(module, key=lambda w: (-(w[2] - w[1]), w[0], w[1]))
        bitslips.append(b)
        delays.append((lo + hi) // 2)
    return bitslips, delays


def check_leveled(outcome, model, windows, program):
    """The leveler's result is each module's window center; the bus did the rest."""
    bitslips, delays = expected_choice(windows)
    assert outcome["done"] and not outcome["error"] and not outcome["level_error"], outcome
    assert outcome["bitslip"] == bitslips, (outcome, windows)
    assert outcome["delay"] == delays, (outcome, windows)
    # The PHY itself was left at the chosen setting for every module.
    assert model.bitslip == bitslips and model.delay == delays
    # Init program first and in order; its last two writes (hand back, init_done) last.
    body, finish = program[:-2], program[-2:]
    assert model.writes[:len(body)] == [(a, v) for a, v, _ in body]
    assert model.writes[-2:] == [(a, v) for a, v, _ in finish]
    assert model.regs["sdram_dfii_control"][0] & SEL


@pytest.fixture(scope="module")
def ecpix5():
    """The ECPIX-5 core's own CSR map and PHY settings (one test pattern)."""
    core = generate_litedram_core("ecpix5")
    return core, LiteDramLevelingConfig.from_core(core, seeds=(42,), settle_cycles=2)


def test_config_from_ecpix5_core(ecpix5):
    core, cfg = ecpix5
    # ECP5DDRPHY x16 at 1:2: two DQS groups, 4 bitslips, 8 delays, 4 beats per phase.
    assert (cfg.modules, cfg.bitslips, cfg.delays, cfg.nphases) == (2, 4, 8, 2)
    assert (cfg.databits, cfg.dfi_databits, cfg.words_per_phase) == (16, 64, 2)
    assert cfg.burst_detect
    assert cfg.lane_mask(0) == 0x00FF00FF00FF00FF and cfg.lane_mask(1) == 0xFF00FF00FF00FF00
    assert core.csr_words["sdram_dfii_pi0_rddata"] == cfg.words_per_phase
    full = LiteDramLevelingConfig.from_core(core)
    assert full.seeds == (42, 84, 36) and full.settle_cycles >= core.phy["read_latency"]
    # The hardware default runs the BIOS's three patterns, each with four
    # DFII commands followed by the settle wait, and compares every rddata word.
    leveler = LiteDramReadLeveler(full)               # inspected, never elaborated
    test = leveler._routines()["test"]
    issues = [op for op in test if op[1] in (core.csr["sdram_dfii_pi0_command_issue"],
                                             core.csr["sdram_dfii_pi1_command_issue"])]
    assert len(issues) == 4 * 3 and all(op[3] == full.settle_cycles for op in issues)
    compares = [op for op in test if op[0] == LiteDramReadLeveler._READ_CMP]
    assert len(compares) == 3 * cfg.nphases * cfg.words_per_phase


def test_sdr_core_has_no_leveling():
    core = generate_litedram_core("ulx3s")
    assert not core.read_leveling
    with pytest.raises(ValueError, match=r"the ulx3s core's PHY \(GENSDRPHY\) does not need "
                                         r"read leveling"):
        LiteDramLevelingConfig.from_core(core)
    wrapper = LiteDramCore(core)
    Fragment.get(wrapper, None)
    assert wrapper.leveling is None and "level_error" not in wrapper.signature.members


def test_ecpix5_wrapper_exposes_leveling():
    core = generate_litedram_core("ecpix5")
    wrapper = LiteDramCore(core)
    Fragment.get(wrapper, None)
    members = wrapper.signature.members
    assert {"level_error", "level_bitslip", "level_delay"} <= set(members)
    assert wrapper.leveling.modules == 2


def test_config_errors_name_the_input():
    csr = synthetic_csr_map(2, 2)
    args = {"csr": csr, "modules": 2, "bitslips": 4, "delays": 8, "nphases": 2,
            "rdphase": 0, "wrphase": 1, "databits": 16, "dfi_databits": 64}
    with pytest.raises(ValueError, match=r"rdphase must be a DFI phase in 0\.\.1, not 2"):
        LiteDramLevelingConfig(**{**args, "rdphase": 2})
    with pytest.raises(ValueError, match=r"delays must be a positive integer, not 0"):
        LiteDramLevelingConfig(**{**args, "delays": 0})
    del csr["ddrphy_rdly_dq_inc"]
    with pytest.raises(ValueError, match=r"csr lacks register\(s\) ddrphy_rdly_dq_inc"):
        LiteDramLevelingConfig(**args)
    with pytest.raises(ValueError, match=r"program must end with the writes of "
                                         r"sdram_dfii_control and ddrctrl_init_done"):
        LiteDramInitController([(0, 1, 0)], leveling=LiteDramLevelingConfig(
            **{**args, "csr": synthetic_csr_map(2, 2)}))


@pytest.mark.parametrize("windows", [
    # Different per module, one at the low edge, one at the high edge.
    [[(2, 3, 6)], [(1, 0, 2)]],
    [[(0, 5, 7)], [(3, 0, 7)]],
    # A short window at a lower bitslip loses against a longer one.
    [[(1, 0, 1), (3, 2, 6)], [(2, 4, 4)]],
], ids=["middle-and-low-edge", "high-edge-and-full", "longest-wins"])
def test_ecpix5_levels_to_window_center(ecpix5, windows):
    core, cfg = ecpix5
    program = [(a, v, min(d, 8)) for a, v, d in core.init_program]
    outcome, model = run_controller(cfg, windows, program=program)
    check_leveled(outcome, model, windows, program)
    # The whole init sequence reached the DRAM before any leveling command.
    init_commands = sum(1 for a, _, _ in program[:-2]
                        if a in [core.csr[f"sdram_dfii_pi{p}_command_issue"] for p in (0, 1)])
    first_write = next(i for i, c in enumerate(model.commands) if c[1] & WRDATA)
    assert first_write >= init_commands


def test_generic_geometry_four_modules_four_phases():
    # Nothing is ECP5-specific: 4 DQS groups, 4 phases, 2 bitslips, 4 delays.
    cfg = LiteDramLevelingConfig(csr=synthetic_csr_map(4, 4), modules=4, bitslips=2,
                                 delays=4, nphases=4, rdphase=2, wrphase=3, databits=32,
                                 dfi_databits=128, seeds=(7,), settle_cycles=2)
    windows = [[(0, 0, 3)], [(1, 0, 0)], [(1, 3, 3)], [(0, 1, 2)]]
    program = short_program(cfg.csr)
    outcome, model = run_controller(cfg, windows, program=program)
    check_leveled(outcome, model, windows, program)


def test_module_without_window_raises_level_error(ecpix5):
    _, cfg = ecpix5
    windows = [[(1, 2, 5)], []]
    outcome, model = run_controller(cfg, windows)
    assert outcome["level_error"] and not outcome["done"] and not outcome["error"], outcome
    assert outcome["failed_module"] == 1
    assert outcome["bitslip"][0] == 1 and outcome["delay"][0] == 3   # module 0 was leveled
    # No hand-back: the DFII stays in software control, init_done is never written.
    assert not model.regs["sdram_dfii_control"][0] & SEL
    assert all(a != cfg.csr["ddrctrl_init_done"] for a, _ in model.writes)


def test_burst_detect_is_checked(ecpix5):
    # Data right inside the window, but module 0's DQS burst is never detected.
    _, cfg = ecpix5
    windows = [[(2, 1, 4)], [(0, 2, 3)]]
    outcome, _ = run_controller(cfg, windows, burst_ok=lambda module, delay: module != 0)
    assert outcome["level_error"] and outcome["failed_module"] == 0, outcome


def test_unacknowledged_access_raises_error(ecpix5):
    _, cfg = ecpix5
    outcome, model = run_controller(cfg, [[(0, 0, 7)], [(0, 0, 7)]], dead_after=40)
    assert outcome["error"] and not outcome["done"], outcome
    assert model.accesses == 40


class _LevelerIgnoringModule1(LiteDramReadLeveler):
    """A broken leveler: never compares module 1's byte lanes nor its burst detect."""

    def _word_masks(self, module):
        return [0] * self.config.words_per_phase if module == 1 else \
            super()._word_masks(module)

    def _routines(self):
        routines = super()._routines()
        routines["test"] = [op for op in routines["test"] if op[0] != self._READ_BIT]
        return routines


def test_check_catches_a_leveler_that_ignores_a_module(ecpix5, monkeypatch):
    _, cfg = ecpix5
    windows = [[(2, 3, 6)], [(1, 0, 2)]]
    program = short_program(cfg.csr)
    # The controller (boards/litedram/init.py) makes its leveler by this name.
    from lpaccel.boards.litedram import init
    monkeypatch.setattr(init, "LiteDramReadLeveler", _LevelerIgnoringModule1)
    outcome, model = run_controller(cfg, windows, program=program)
    # Module 1 "passes" everywhere: bitslip 0, center of 0..7.
    assert (outcome["bitslip"], outcome["delay"]) == ([2, 0], [4, 3]), outcome
    with pytest.raises(AssertionError):
        check_leveled(outcome, model, windows, program)


def test_check_catches_a_misset_window(ecpix5):
    # The leveler is right; an expectation off by one delay must fail the check.
    _, cfg = ecpix5
    windows = [[(3, 4, 7)], [(0, 1, 5)]]
    program = short_program(cfg.csr)
    outcome, model = run_controller(cfg, windows, program=program)
    assert (outcome["bitslip"], outcome["delay"]) == ([3, 0], [5, 3]), outcome
    check_leveled(outcome, model, windows, program)
    with pytest.raises(AssertionError):
        check_leveled(outcome, model, [[(3, 5, 7)], [(0, 1, 5)]], program)
