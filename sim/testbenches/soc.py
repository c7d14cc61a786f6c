"""cocotb testbench for the SoC (``sim/tops/soc.py``) and the driver's simulation transport.

:class:`SocTB` drives a :class:`~lpaccel.sim.tops.soc.SocSimTop` only the
way a host would, through its CSR port and its memory window, and watches it.
Two kinds of host managers (``host=``):

- ``"light"`` (default): :mod:`~lpaccel.sim.infra.axi_light`'s managers,
  which touch the ports only during a transaction;
- ``"cocotbext"``: cocotbext-axi's ``AxiLiteMaster`` and ``AxiMaster``, with
  random or periodic pauses on every channel (``pauses=``), at the price of
  a Python wake-up per channel and clock cycle even while idle.

Nothing else in the testbench wakes Python per cycle unless asked to: the
cycle count is simulation time over the clock period, the LPDDR timing
checker is watched by a value-change callback on its ``violation`` output,
and :meth:`SocTB.cycles` is one timer plus one clock edge. So between two
accesses of the host driver Verilator runs free (a speed run: ``host="light"``,
``checkers=False``). The watchers:

- AXI protocol checkers on the host window and on the taps of the DMA port
  and the memory port (switchable off for speed runs);
- the LPDDR model's timing checker (the first violation fails
  :meth:`SocTB.check_idle` and is logged with rule, bank and DRAM cycle);
- :meth:`SocTB.check_idle`: at the end nothing is outstanding anywhere and
  the SoC says so itself (STATUS.BUSY = 0, every JOB_LEVELS count 0 but FREE).

Bulk data goes in and out through a **backdoor** (:meth:`SocTB.preload`,
:meth:`SocTB.peek`) that writes the storage array of the LPDDR model or the
on-chip RAM through cocotb handles, one handle write per memory word, so
tests of large tensors do not spend simulated bus time or Python time per
byte.

:class:`SimTransport` is the host driver's transport
(:class:`lpaccel.driver.Transport`) in simulation: the driver is ordinary
blocking Python, so :meth:`SocTB.run_driver` runs it in a thread with
``cocotb.task.bridge`` and every transport call comes back into the
simulation with ``cocotb.task.resume`` (cocotb 2.x names of ``external`` and
``function``).
"""

import warnings

import cocotb
from cocotb.clock import Clock
from cocotb.handle import Immediate
from cocotb.task import bridge, resume
from cocotb.triggers import RisingEdge, Timer
from cocotb.utils import get_sim_steps, get_sim_time

from lpaccel.driver import Transport
from lpaccel.rtl.regmap import RegmapConfig, register_map
from lpaccel.rtl.soc_config import ONCHIP, SocConfig
from lpaccel.sim.infra.axi_checker import AxiProtocolChecker
from lpaccel.sim.infra.axi_light import LightAxi, LightAxiLite
from lpaccel.sim.infra.axi_traffic import quiet_axi_master
from lpaccel.sim.infra.streams import PAUSE_MODES
from lpaccel.sim.models.lpddr import Rule

__all__ = ["SocTB", "SimTransport", "BusError", "StorageBackdoor", "config_from_params",
           "storage_word_index"]

# cocotbext-axi 0.1.28 still calls cocotb's deprecated setimmediatevalue();
# that is its deprecation, not ours: silence exactly that module's.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.")

#: Clock period of the simulation (ns); only ratios of cycles are ever reported.
CLOCK_NS = 2

#: Host manager kinds of :class:`SocTB`.
HOSTS = ("light", "cocotbext")


def config_from_params(p):
    """The :class:`SocConfig` and build hash a run's parameters describe.

    ``p`` is what :func:`lpaccel.sim.tops.soc.make_soc_top` was called with:
    :meth:`SocConfig.to_dict` data plus an optional ``build_hash``.
    """
    p = dict(p)
    build_hash = p.pop("build_hash", 0)
    return SocConfig.from_dict(p), build_hash


def storage_word_index(config, addr):
    """Index of the storage word that holds byte ``addr`` of the memory window.

    On chip: ``addr // word_bytes``. LPDDR: the byte address is cut the way
    the controller's :class:`~lpaccel.rtl.dram.address.AddressMap` does
    (burst index → bank, row, column) and the location is linearised the way
    :class:`~lpaccel.sim.models.lpddr.LpddrModel` stores a burst
    (``row | bank-in-group | column | group``, or ``row | bank | column``
    without groups), modulo the model's storage. Both maps are the identity
    on the burst index today; computing them keeps the backdoor right if
    either changes.

    Parameters
    ----------
    config : SocConfig
    addr : int
        Byte address, a multiple of the memory word.

    Returns
    -------
    int
    """
    word_bytes = config.memory_data_width // 8
    if config.lpddr is None:
        return addr // word_bytes
    lp = config.lpddr
    beats = lp.beats_per_burst
    burst, beat = divmod(addr // word_bytes, beats)
    cb, bb, rb, gb = lp.col_bits, lp.bank_bits, lp.row_bits, lp.bg_bits
    # AddressMap (rtl/dram/address.py): burst index -> bank, row, col.
    if gb:
        col = (burst >> gb) & ((1 << cb) - 1)
        bank = (((burst >> (gb + cb)) & ((1 << (bb - gb)) - 1)) |
                ((burst & ((1 << gb) - 1)) << (bb - gb)))
    else:
        col = burst & ((1 << cb) - 1)
        bank = (burst >> cb) & ((1 << bb) - 1)
    row = (burst >> (cb + bb)) & ((1 << rb) - 1)
    # LpddrModel (sim/models/lpddr.py): location -> storage burst.
    if gb:
        ba = lp.ba_bits
        group, in_group = bank >> ba, bank & ((1 << ba) - 1)
        linear = group | (col << gb) | (in_group << (gb + cb)) | (row << (gb + cb + ba))
    else:
        linear = col | (bank << cb) | (row << (cb + bb))
    depth_bursts = lp.sim_bytes // lp.beat_bytes // beats
    return (linear % depth_bursts) * beats + beat


class BusError(RuntimeError):
    """A CSR or memory-window access was answered SLVERR or DECERR."""


def _check_resp(what, addr, resp):
    # resp: a cocotbext-axi response record, or an AxiResp of the light managers.
    from lpaccel.sim.infra.axi_light import AxiResp
    code = AxiResp(int(getattr(resp, "resp", resp)))
    if code != AxiResp.OKAY:
        raise BusError(f"{what} at {addr:#x} answered {code.name}")


class SocTB:
    """Clock, reset, host masters, checkers and memory backdoor of one SoC top.

    Parameters
    ----------
    dut : cocotb handle
        The :class:`~lpaccel.sim.tops.soc.SocSimTop`.
    config : SocConfig
    build_hash : int
    checkers : bool
        Watch the host window, the DMA port, the memory port and the CSR
        port (AXI4-Lite) with :class:`AxiProtocolChecker` (off for speed
        runs: the checkers sample every cycle).
    host : str
        ``"light"`` (no cost while idle) or ``"cocotbext"`` (pause modes);
        see the module docstring.
    pauses : str
        A key of :data:`~lpaccel.sim.infra.streams.PAUSE_MODES`: random or
        periodic pauses on every channel of both host masters (``"none"``
        unless ``host="cocotbext"``).
    seed : int
        Seed of the pause patterns.

    Attributes
    ----------
    regmap : RegisterMap
    csr : LightAxiLite or cocotbext.axi.AxiLiteMaster
    host : LightAxi or cocotbext.axi.AxiMaster
    checkers : dict
        ``{"s_axi": ..., "dma": ..., "mem": ..., "s_axil": ...}`` (empty
        without checkers).
    violation : str or None
        The LPDDR timing checker's first violation, described.
    period : int
        Clock period in simulator steps.
    """

    def __init__(self, dut, config, *, build_hash=0, checkers=True, host="light",
                 pauses="none", seed=0):
        if host not in HOSTS:
            raise ValueError(f"host must be one of {', '.join(HOSTS)}, not {host!r}")
        if host == "light" and pauses != "none":
            raise ValueError(f"pauses={pauses!r} needs host='cocotbext': the light host "
                             f"managers have no pause modes")
        self.dut = dut
        self.config = config
        self.log = dut._log
        self.regmap = register_map(RegmapConfig(soc=config, build_hash=build_hash))
        self.word_bytes = config.memory_data_width // 8
        self.host_kind = host
        self.period = get_sim_steps(CLOCK_NS, "ns")
        # Rising edges fall at start + k * period (cocotb's Clock starts high).
        self._start = get_sim_time("step")
        cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
        dut.rst.value = 1
        if host == "light":
            self.csr = LightAxiLite(dut, "s_axil", dut.clk)
            self.host = LightAxi(dut, "s_axi", dut.clk)
        else:
            from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiMaster
            self.csr = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
            self.host = AxiMaster(AxiBus.from_prefix(dut, "s_axi"), dut.clk, dut.rst)
            for master in (self.csr, self.host):
                quiet_axi_master(master)
            self.set_pauses(pauses, seed)
        self.checkers = {}
        if checkers:
            self.checkers = {p: AxiProtocolChecker(dut.clk, dut, p, reset=dut.rst)
                             for p in ("s_axi", "dma", "mem", "s_axil")}
        self.violation = None
        if config.lpddr is not None:
            cocotb.start_soon(self._watch())
        self._storage = self._find_storage()
        if config.lpddr is not None:
            self.storage_bytes = config.lpddr.sim_bytes
        else:
            self.storage_bytes = config.memory_size

    # --- clock, reset, watchers ---------------------------------------------------

    @property
    def cycle(self):
        """Rising clock edges since the testbench started (from the simulation time)."""
        return (get_sim_time("step") - self._start) // self.period

    async def _watch(self):
        # A value-change callback: the checker's first violation wakes us, nothing else.
        d = self.dut
        if not int(d.violation.value):
            await RisingEdge(d.violation)
        self.violation = (f"rule {Rule(int(d.rule.value)).name}, bank "
                          f"{int(d.bank.value)}, DRAM cycle {int(d.cycle.value)}")
        self.log.error("LPDDR timing violation: %s", self.violation)

    def set_pauses(self, mode, seed=0):
        """Apply pause pattern ``mode`` (a key of PAUSE_MODES) to every host channel
        (``host="cocotbext"`` only)."""
        if mode not in PAUSE_MODES:
            raise ValueError(f"pauses must be one of {', '.join(PAUSE_MODES)}, not {mode!r}")
        if self.host_kind != "cocotbext":
            if mode == "none":
                return
            raise ValueError(f"pauses={mode!r} needs SocTB(host='cocotbext'): the light "
                             f"host managers have no pause modes")
        channels = []
        for master in (self.csr, self.host):
            w, r = master.write_if, master.read_if
            channels += [w.aw_channel, w.w_channel, w.b_channel, r.ar_channel, r.r_channel]
        for k, ch in enumerate(channels):
            ch.set_pause_generator(PAUSE_MODES[mode](seed=seed * 16 + k))

    async def reset(self, cycles=8):
        """Hold reset for ``cycles`` cycles, then let the SoC run."""
        self.dut.rst.value = 1
        await self.cycles(cycles)
        self.dut.rst.value = 0
        await self.cycles(2)

    async def cycles(self, n):
        """Let ``n`` clock cycles pass; return just after the ``n``-th rising edge.

        One timer to the middle of the cycle before that edge, then the edge
        itself: Python is not woken on the way (``ClockCycles`` would wake it
        at every edge).
        """
        if n <= 0:
            return
        period = self.period
        now = get_sim_time("step")
        target = self._start + ((now - self._start) // period + n) * period
        await Timer(target - period // 2 - now, unit="step")
        await RisingEdge(self.dut.clk)

    # --- registers ----------------------------------------------------------------

    async def read32(self, addr):
        """One 32-bit CSR read; :class:`BusError` on a response other than OKAY."""
        if self.host_kind == "light":
            value, resp = await self.csr.read(addr)
            _check_resp("CSR read", addr, resp)
            return value
        resp = await self.csr.read(addr, 4)
        _check_resp("CSR read", addr, resp)
        return int.from_bytes(resp.data, "little")

    async def write32(self, addr, value):
        """One 32-bit CSR write; :class:`BusError` on a response other than OKAY."""
        if self.host_kind == "light":
            _check_resp("CSR write", addr, await self.csr.write(addr, value & 0xFFFF_FFFF))
            return
        resp = await self.csr.write(addr, (value & 0xFFFF_FFFF).to_bytes(4, "little"))
        _check_resp("CSR write", addr, resp)

    async def read_reg(self, name):
        """Read register ``name`` (64-bit registers low word first)."""
        reg = self.regmap[name]
        value = 0
        for word in range(reg.width // 32):
            value |= await self.read32(reg.address + 4 * word) << (32 * word)
        return value

    async def write_reg(self, name, value):
        """Write register ``name`` (64-bit registers low word first)."""
        reg = self.regmap[name]
        for word in range(reg.width // 32):
            await self.write32(reg.address + 4 * word, value >> (32 * word))

    async def read_fields(self, name):
        """Register ``name`` as ``{field: value}``."""
        reg = self.regmap[name]
        value = await self.read_reg(name)
        return {f.name: (value >> f.lsb) & ((1 << f.width) - 1) for f in reg.fields}

    def field_value(self, register, field, value):
        """``value`` placed in ``register.field`` (to build a write)."""
        f = self.regmap[register].field(field)
        return (value & ((1 << f.width) - 1)) << f.lsb

    # --- memory window ---------------------------------------------------------------

    async def write_mem(self, addr, data):
        """Write bytes through the host memory window (AXI4 bursts); :class:`BusError`
        on a response other than OKAY."""
        _check_resp("memory write", addr, await self.host.write(addr, bytes(data)))

    async def read_mem(self, addr, n):
        """Read ``n`` bytes through the host memory window; :class:`BusError` on a
        response other than OKAY."""
        if self.host_kind == "light":
            data, resp = await self.host.read(addr, n)
            _check_resp("memory read", addr, resp)
            return data
        resp = await self.host.read(addr, n)
        _check_resp("memory read", addr, resp)
        return bytes(resp.data)

    # --- backdoor -----------------------------------------------------------------

    def _find_storage(self):
        # The storage array: the LPDDR model's Memory, or the AxiSram's.
        if self.config.lpddr is not None:
            return StorageBackdoor(self.dut.model.mem.words, self.config)
        if self.config.memory == ONCHIP:
            return StorageBackdoor(self.dut.soc.memory.storage, self.config)
        return None

    def _check_backdoor(self, addr, n):
        if self._storage is None:
            raise ValueError(f"memory {self.config.memory!r} has no model in this testbench, "
                             f"so there is no backdoor; use write_mem/read_mem")
        if addr < 0 or addr + n > self.storage_bytes:
            raise ValueError(f"backdoor range [{addr:#x}, {addr + n:#x}) is outside the "
                             f"simulated storage of {self.storage_bytes:#x} bytes; keep "
                             f"tensors below it or build with a larger lpddr.sim_bytes")

    def preload(self, addr, data):
        """Put ``data`` at byte ``addr`` straight into the memory's storage.

        One handle write per memory word (partial words at either end are
        read, merged and written back). Takes effect immediately; no clock
        cycle passes. Call it from a coroutine, not in a ReadOnly phase.
        """
        data = bytes(data)
        self._check_backdoor(addr, len(data))
        wb = self.word_bytes
        first, last = addr // wb, -(-(addr + len(data)) // wb)
        head = addr - first * wb
        buf = bytearray(self._storage.read_words(first, 1)[:head])
        buf += data
        tail = (-len(buf)) % wb
        if tail:
            buf += self._storage.read_words(last - 1, 1)[wb - tail:]
        self._storage.write_words(first, bytes(buf))

    def peek(self, addr, n):
        """``n`` bytes at byte ``addr`` read straight from the memory's storage."""
        self._check_backdoor(addr, n)
        wb = self.word_bytes
        first, last = addr // wb, -(-(addr + n) // wb)
        words = self._storage.read_words(first, last - first)
        return words[addr - first * wb:addr - first * wb + n]

    # --- driver ----------------------------------------------------------------------

    def transport(self):
        """A :class:`SimTransport` onto this testbench."""
        return SimTransport(self)

    async def run_driver(self, func, *args, **kwargs):
        """Run blocking host code ``func(*args, **kwargs)`` against the SoC.

        ``func`` runs in a thread (``cocotb.task.bridge``); its transport calls
        (see :meth:`transport`) resume the simulation until they complete.
        Returns what ``func`` returns; its exceptions propagate.
        """
        return await bridge(func)(*args, **kwargs)

    # --- end of test ----------------------------------------------------------------

    async def check_idle(self, settle=100):
        """Assert that nothing is left anywhere (call at the end of every test).

        Waits ``settle`` cycles, then: every AXI checker idle and clean, no
        LPDDR timing violation, STATUS.BUSY = 0, JOB_LEVELS QUEUED = ACTIVE =
        DONE = 0 and FREE = CAP_JOBS.DEPTH.
        """
        await self.host.wait()
        await self.cycles(settle)
        for checker in self.checkers.values():
            checker.check_idle()
        assert self.violation is None, f"LPDDR timing violation: {self.violation}"
        status = await self.read_fields("STATUS")
        assert status["BUSY"] == 0, f"STATUS.BUSY is 1 at the end: {status}"
        levels = await self.read_fields("JOB_LEVELS")
        want = {"QUEUED": 0, "ACTIVE": 0, "DONE": 0, "FREE": self.config.job_depth}
        assert levels == want, f"JOB_LEVELS at the end is {levels}, expected {want}"


class StorageBackdoor:
    """Word access to a memory array of the simulation through cocotb handles.

    Word ``w`` of the memory window (byte address ``w * word_bytes``) lives
    in array entry :func:`storage_word_index`; when that map is the identity
    (checked once, bit by bit: both maps only move address bits) the entry
    is ``w`` and no per-word mapping is computed.

    Speed (Verilator 5.48, cocotb 2.1, 128-bit words): creating an element's
    GPI handle costs about 10 us, so handles are made once and kept. Writes
    and reads go to the GPI object under the cocotb handle (``_handle``,
    ``set_signal_val_binstr`` with the immediate action): about 2.5 us per
    word against 11 us through ``handle.value = Immediate(...)``, which
    checks and schedules every write. When cocotb changes those internals
    the public path is used instead.

    Parameters
    ----------
    array : cocotb ArrayObject
        The memory (``reg [W-1:0] mem [N]`` in the generated Verilog).
    config : SocConfig
    """

    def __init__(self, array, config):
        self.array = array
        self.config = config
        self.word_bytes = config.memory_data_width // 8
        self.bits = 8 * self.word_bytes
        self.depth = len(array)
        self._handles = {}
        try:
            from cocotb.handle import _GPISetAction
            self._raw = array._handle
            self._now = _GPISetAction.NO_DELAY.value
        except (ImportError, AttributeError):
            self._raw = None
        wb = self.word_bytes
        self.identity = all(storage_word_index(config, (1 << k) * wb) == 1 << k
                            for k in range(max(1, self.depth.bit_length() - 1)))

    def index(self, word):
        """Array entry of memory word ``word``."""
        if self.identity:
            return word % self.depth
        return storage_word_index(self.config, word * self.word_bytes)

    def _handle(self, entry):
        handle = self._handles.get(entry)
        if handle is None:
            if self._raw is not None:
                handle = self._raw.get_handle_by_index(entry)
            else:
                handle = self.array[entry]
            self._handles[entry] = handle
        return handle

    def write_words(self, first, data):
        """Write ``data`` (a whole number of words) from memory word ``first`` on."""
        wb, bits = self.word_bytes, self.bits
        frombytes = int.from_bytes
        for k in range(len(data) // wb):
            word = frombytes(data[k * wb:(k + 1) * wb], "little")
            handle = self._handle(self.index(first + k))
            if self._raw is not None:
                handle.set_signal_val_binstr(self._now, f"{word:0{bits}b}")
            else:
                handle.value = Immediate(word)

    def read_words(self, first, count):
        """``count`` words from memory word ``first`` on, as bytes."""
        wb = self.word_bytes
        out = bytearray()
        for k in range(count):
            handle = self._handle(self.index(first + k))
            if self._raw is not None:
                word = int(handle.get_signal_val_binstr(), 2)
            else:
                word = int(handle.value)
            out += word.to_bytes(wb, "little")
        return bytes(out)


class SimTransport(Transport):
    """The driver's :class:`lpaccel.driver.Transport` in simulation.

    Every method blocks the calling (bridge) thread while the simulation
    performs the access: CSR reads and writes through the AXI4-Lite master,
    memory through the host window, :meth:`preload` and :meth:`peek`
    through the backdoor, :meth:`wait_cycles` by letting the clock run. Use
    it only from code started with :meth:`SocTB.run_driver`.

    Parameters
    ----------
    tb : SocTB
    """

    def __init__(self, tb):
        self.tb = tb
        self.reads = self.writes = 0

    def read32(self, addr):
        self.reads += 1
        return resume(self.tb.read32)(addr)

    def write32(self, addr, value):
        self.writes += 1
        resume(self.tb.write32)(addr, value)

    def write_mem(self, addr, data):
        resume(self.tb.write_mem)(addr, data)

    def read_mem(self, addr, n):
        return resume(self.tb.read_mem)(addr, n)

    def preload(self, addr, data):
        resume(self._preload)(addr, data)

    def peek(self, addr, n):
        """Backdoor read (no bus traffic)."""
        return resume(self._peek)(addr, n)

    def wait_cycles(self, n):
        # One timer in the simulator: Verilator runs the n cycles without waking Python.
        resume(self.tb.cycles)(n)

    def sim_cycle(self):
        """The testbench's cycle count now (:attr:`SocTB.cycle`)."""
        return resume(self._cycle)()

    async def _cycle(self):
        return self.tb.cycle

    async def _preload(self, addr, data):
        self.tb.preload(addr, data)

    async def _peek(self, addr, n):
        return self.tb.peek(addr, n)
