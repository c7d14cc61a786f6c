"""The host driver of the lpaccel SoC, written against an abstract transport.

This is the transport-independent part of the driver (``docs/soc.md``): it
finds out what the device is (``MAGIC``, ``VERSION``, ``CAP_*``), places
tensors in device memory, queues GEMV jobs and collects their completion
records and counters. How register and memory accesses reach the device is
the :class:`Transport`'s business: a cocotb testbench in simulation
(``lpaccel.sim``), a serial bridge on a board. The same code runs on both.

::

    dev = Device(transport)                       # checks MAGIC / VERSION, reads CAP_*
    w = dev.put_weights(quantize_weights(W, "q4_0"))   # repack, allocate, preload
    x = dev.put_activations(x_float)              # BFP16, the memory layout below
    y = dev.alloc_results(w.rows)
    tag = dev.submit(w, x, y)                     # JOB_* registers, JOB_PUSH
    dev.wait([tag])                               # JOB_STATUS / JOB_POP
    dev.read_results(y)                           # float32 [rows]

Memory layouts (``docs/soc.md``; the sequencer reads exactly these):

- weights: the repacked stream of :func:`lpaccel.repack.repack_weights_bytes`
  for the device's ``GemvConfig(lanes, word_bits)``, at a multiple of the
  memory word;
- activations: ``cols // 32`` int8 block exponents, zeros up to
  ``act_header_bytes(cols)`` (a multiple of 64), then the ``cols`` int16
  mantissas little-endian; at a multiple of the memory word;
- results: ``rows`` float32, little-endian, at a multiple of 4.

Register sequence of one job: read ``JOB_LEVELS.FREE`` (> 0), write
``JOB_WEIGHT_ADDR``, ``JOB_ACT_ADDR``, ``JOB_RESULT_ADDR``, ``JOB_ROWS``,
``JOB_COLS``, ``JOB_FORMAT`` (``CODE``, and BCQ's ``PLANES`` and ``OFFSET``),
``JOB_GROUP``, ``JOB_TAG``, ``JOB_FLAGS`` (only
those that changed since the last job: the registers keep their values),
then ``JOB_PUSH = 1``. Completions come back in push order: poll
``JOB_STATUS.VALID``, read the record, write ``JOB_POP = 1``.
"""

import abc
import time
from dataclasses import dataclass, field

import numpy as np

from lpaccel import quant
from lpaccel.alloc import AllocationError, Allocator
from lpaccel.quant import QuantizedWeights
from lpaccel.regmap import Registers
from lpaccel.regmap import Transport as RegisterTransport
from lpaccel.repack import repack_weights_bytes, stream_layout
from lpaccel.rtl.config import GemvConfig, WeightFormat
from lpaccel.rtl.regmap import DmaError, GemvError, MemoryKind, RegmapConfig
from lpaccel.rtl.soc.sequencer import act_bytes, act_header_bytes

__all__ = [
    "MAGIC",
    "ActTensor",
    "Completion",
    "Device",
    "DeviceError",
    "DeviceInfo",
    "DeviceTimeout",
    "JobError",
    "ResultTensor",
    "Transport",
    "WeightTensor",
    "pack_activations",
]

#: ``MAGIC.VALUE``: ASCII "LPAC".
MAGIC = 0x4C50_4143

#: Register-map major version this driver speaks.
VERSION_MAJOR = RegmapConfig().version[0]

#: Result elements are float32.
RESULT_BYTES = 4


# --- transport ----------------------------------------------------------------------------

class Transport(RegisterTransport):
    """Register and memory access to one lpaccel SoC.

    Subclasses implement the four accesses; :meth:`preload` and
    :meth:`wait_cycles` have defaults that a simulator overrides (a memory
    backdoor, letting the clock run).
    """

    #: Seconds :meth:`wait_cycles` sleeps per cycle by default (a 100 MHz clock).
    SECONDS_PER_CYCLE = 1e-8

    @abc.abstractmethod
    def write_mem(self, addr, data):
        """Write ``data`` (bytes) to device memory at byte address ``addr``."""

    @abc.abstractmethod
    def read_mem(self, addr, n):
        """Return ``n`` bytes of device memory from byte address ``addr``."""

    def preload(self, addr, data):
        """Put bulk data (tensors) into device memory; default :meth:`write_mem`.

        A simulation transport writes straight into the memory model instead,
        so that large tensors do not cost simulated bus time.
        """
        self.write_mem(addr, data)

    def wait_cycles(self, n):
        """Let about ``n`` device clock cycles pass (polling interval)."""
        time.sleep(n * self.SECONDS_PER_CYCLE)


# --- errors ---------------------------------------------------------------------------------

class DeviceError(Exception):
    """The device is not what the driver expects, or refused an operation."""


class DeviceTimeout(DeviceError):
    """The device did not finish in the given number of cycles."""


class JobError(DeviceError):
    """A job completed with an error code.

    Attributes
    ----------
    completions : list of Completion
        Every completion :meth:`Device.wait` collected (failed or not).
    """

    def __init__(self, message, completions):
        super().__init__(message)
        self.completions = completions


# --- data ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeviceInfo:
    """What the capability registers say about the device.

    Attributes
    ----------
    version : tuple of (int, int)
        Register-map version ``(major, minor)``.
    build_hash : int
    formats : tuple of WeightFormat
        Formats the engine takes (``CAP_FORMATS``).
    lanes, word_bits : int
        Engine geometry (``CAP_ENGINE``); ``word_bits`` is the memory word.
    max_rows, max_cols : int
    memory : MemoryKind
    memory_size : int
        Bytes behind the DMA window (``CAP_MEM_SIZE``).
    job_depth : int
        Jobs pushed and not yet popped the queue holds (``CAP_JOBS``).
    """

    version: tuple
    build_hash: int
    formats: tuple
    lanes: int
    word_bits: int
    max_rows: int
    max_cols: int
    memory: MemoryKind
    memory_size: int
    job_depth: int

    @property
    def word_bytes(self):
        """Bytes of one memory word: the alignment of weights and activations."""
        return self.word_bits // 8

    @property
    def gemv_config(self):
        """The engine's :class:`~lpaccel.rtl.config.GemvConfig` (repacking, job checks)."""
        return GemvConfig(lanes=self.lanes, word_bits=self.word_bits, max_cols=self.max_cols,
                          max_rows=self.max_rows, formats=self.formats)


@dataclass(frozen=True)
class WeightTensor:
    """A repacked weight matrix in device memory.

    ``planes`` and ``offset`` are BCQ's (``JOB_FORMAT.PLANES``/``OFFSET``);
    0 and False for the other formats.
    """

    addr: int
    nbytes: int
    fmt: WeightFormat
    rows: int
    cols: int
    group: int
    planes: int = 0
    offset: bool = False


@dataclass(frozen=True)
class ActTensor:
    """An activation vector (BFP16, the layout of the module docstring) in device memory."""

    addr: int
    nbytes: int
    cols: int


@dataclass(frozen=True)
class ResultTensor:
    """Room for ``rows`` float32 results in device memory."""

    addr: int
    nbytes: int
    rows: int


@dataclass(frozen=True)
class Completion:
    """One completion record (``JOB_STATUS``).

    Attributes
    ----------
    tag : int
    error : GemvError
        ``NONE`` for success.
    dma : DmaError
        The DMA code when ``error`` is ``DMA_READ``/``DMA_WRITE``.
    """

    tag: int
    error: object = field(default=GemvError.NONE)
    dma: object = field(default=DmaError.OK)

    @property
    def ok(self):
        """The job completed without an error."""
        return self.error == GemvError.NONE

    def describe(self):
        """``"job <tag>: ..."``: the error text from the register map, or "ok"."""
        if self.ok:
            return f"job {self.tag}: ok"
        text = f"job {self.tag} failed: {GemvError.describe(self.error)}"
        if self.dma != DmaError.OK:
            text += f"; DMA: {DmaError.describe(self.dma)}"
        return text


def _code(enum_cls, value):
    try:
        return enum_cls(value)
    except ValueError:
        return value        # a reserved code: describe() names it


# --- layouts ------------------------------------------------------------------------------

def pack_activations(mant, exp):
    """The memory image of one activation vector.

    Parameters
    ----------
    mant : numpy.ndarray
        ``int16 [cols]`` BFP16 mantissas (:func:`lpaccel.quant.quantize_activations`).
    exp : numpy.ndarray
        ``int8 [cols // 32]`` block exponents.

    Returns
    -------
    bytes
        ``act_bytes(cols)`` bytes: the exponents, zero padding to
        ``act_header_bytes(cols)``, the mantissas little-endian.
    """
    mant, exp = quant._check_activation_blocks(mant, exp)
    cols = mant.size
    hdr = act_header_bytes(cols)
    out = np.zeros(act_bytes(cols), dtype=np.uint8)
    out[:exp.size] = exp.astype(np.int8).view(np.uint8)
    out[hdr:] = mant.astype("<i2").view(np.uint8)
    return out.tobytes()


# --- the device ---------------------------------------------------------------------------

class Device:
    """One lpaccel SoC behind a :class:`Transport`.

    Parameters
    ----------
    transport : Transport
    regmap : RegisterMap, optional
        Register map to address the device with; default the generic one
        (addresses do not depend on the configuration).
    poll_cycles, max_poll_cycles : int
        Cycles to let pass between two polls of a status register: the
        interval starts at ``poll_cycles`` and doubles while nothing changes,
        up to ``max_poll_cycles`` (fewer register reads during a long job).

    Attributes
    ----------
    info : DeviceInfo
    regs : Registers
    heap : Allocator
        Over ``[0, info.memory_size)``.

    Raises
    ------
    DeviceError
        If ``MAGIC`` is wrong (not an lpaccel, or a broken link) or the
        register map's major version is not the one this driver speaks.
    """

    #: Job tags are 16-bit (``JOB_TAG.VALUE``).
    TAG_BITS = 16

    def __init__(self, transport, regmap=None, poll_cycles=64, max_poll_cycles=4096):
        if not isinstance(transport, Transport):
            raise TypeError(f"transport must be an lpaccel.driver.Transport, not "
                            f"{type(transport).__name__}")
        self.transport = transport
        self.regs = Registers(transport, regmap)
        self.poll_cycles = poll_cycles
        self.max_poll_cycles = max(poll_cycles, max_poll_cycles)
        magic = self.regs.read("MAGIC")
        if magic != MAGIC:
            raise DeviceError(f"MAGIC reads {magic:#010x}, not {MAGIC:#010x} ('LPAC'): the "
                              f"transport does not reach an lpaccel CSR bank; check the link "
                              f"and the CSR base address")
        version = self.regs.fields("VERSION")
        if version["MAJOR"] != VERSION_MAJOR:
            raise DeviceError(f"register map version {version['MAJOR']}.{version['MINOR']}: "
                              f"this driver speaks major version {VERSION_MAJOR}; use the "
                              f"lpaccel release the bitstream was built with")
        self.info = self._read_info(version)
        self.config = self.info.gemv_config
        self.heap = Allocator(self.info.memory_size)
        self._next_tag = 0
        self._outstanding = []      # tags pushed and not yet popped, in push order
        self._popped = {}           # tag -> Completion, popped but not yet handed out
        self._job_regs = {}         # last value written to each JOB_* register

    def _read_info(self, version):
        engine = self.regs.fields("CAP_ENGINE")
        mask = self.regs.read("CAP_FORMATS")
        return DeviceInfo(
            version=(version["MAJOR"], version["MINOR"]),
            build_hash=self.regs.read("BUILD_HASH"),
            formats=tuple(f for f in WeightFormat if mask >> int(f) & 1),
            lanes=engine["LANES"],
            word_bits=engine["WORD_BITS"],
            max_rows=self.regs.read("CAP_MAX_ROWS"),
            max_cols=self.regs.read("CAP_MAX_COLS"),
            memory=_code(MemoryKind, self.regs.read_field("CAP_MEMORY.KIND")),
            memory_size=self.regs.read("CAP_MEM_SIZE"),
            job_depth=self.regs.read_field("CAP_JOBS.DEPTH"),
        )

    def __repr__(self):
        i = self.info
        return (f"Device({i.memory.name if hasattr(i.memory, 'name') else i.memory} "
                f"{i.memory_size} bytes, {i.lanes} lanes, {i.word_bits}-bit words, "
                f"formats {', '.join(f.name for f in i.formats)})")

    # -- tensors -------------------------------------------------------------------------

    def _alloc(self, nbytes, align, name):
        try:
            return self.heap.alloc(nbytes, align, name=name)
        except AllocationError as error:
            raise AllocationError(f"{error} (device memory: {self.info.memory_size} "
                                  f"bytes)") from None

    def check_weights(self, weights, name="weights"):
        """Check that the device can run a job on ``weights``.

        Raises
        ------
        ValueError
            Naming the input, the rule and the fix (a format not in
            ``CAP_FORMATS``, rows above ``CAP_MAX_ROWS``, cols above
            ``CAP_MAX_COLS``, a bad group).
        """
        if not isinstance(weights, QuantizedWeights):
            raise ValueError(f"{name} is a {type(weights).__name__}: pass QuantizedWeights "
                             f"(lpaccel.quant.quantize_weights or QuantizedWeights.from_gguf)")
        try:
            self.config.check_job(weights.fmt, weights.rows, weights.cols, weights.group,
                                  weights.planes or None)
        except ValueError as error:
            raise ValueError(f"{name} ({weights.rows} x {weights.cols} {weights.fmt.name}): "
                             f"{error} (this device: CAP_MAX_ROWS {self.info.max_rows}, "
                             f"CAP_MAX_COLS {self.info.max_cols}, formats "
                             f"{', '.join(f.name for f in self.info.formats)})") from None
        # The hardware decodes float16 exponent 31 as a finite number; the host
        # never sends such F16 weights or BCQ scales (docs/arithmetic.md 7, 8).
        for what, bits in (("weight", weights.f16_bits if weights.fmt is WeightFormat.F16
                            else None),
                           ("plane scale", weights.alpha_bits),
                           ("offset", weights.offset_bits)):
            if bits is not None and ((bits & 0x7C00) == 0x7C00).any():
                idx = ", ".join(str(int(k)) for k in np.argwhere((bits & 0x7C00) == 0x7C00)[0])
                raise ValueError(f"{name} ({weights.fmt.name}): {what}[{idx}] is inf or NaN "
                                 f"(float16 exponent 31); requantize from finite weights")

    def put_weights(self, weights, name="weights"):
        """Repack ``weights`` for this device and place them in device memory.

        Parameters
        ----------
        weights : QuantizedWeights
        name : str
            For error messages.

        Returns
        -------
        WeightTensor

        Raises
        ------
        ValueError
            If the device cannot take the matrix (:meth:`check_weights`);
            nothing is written then.
        AllocationError
            If the device memory has no room for it.
        """
        self.check_weights(weights, name)
        data = repack_weights_bytes(weights, self.config)
        addr = self._alloc(len(data), self.info.word_bytes, name)
        self.transport.preload(addr, data)
        return WeightTensor(addr, len(data), weights.fmt, weights.rows, weights.cols,
                            weights.group, weights.planes, weights.offset)

    def put_activations(self, x, name="activations"):
        """Quantize an activation vector to BFP16 and place it in device memory.

        Parameters
        ----------
        x : numpy.ndarray or tuple
            A float16/float32 vector of ``cols`` elements, or an already
            quantized ``(mant, exp)`` pair.
        name : str
            For error messages.

        Returns
        -------
        ActTensor

        Raises
        ------
        ValueError
            On a vector :func:`lpaccel.quant.quantize_activations` refuses or
            longer than ``CAP_MAX_COLS``; nothing is written then.
        """
        if isinstance(x, tuple):
            mant, exp = x
        else:
            mant, exp = quant.quantize_activations(x)
        cols = np.asarray(mant).size
        if cols > self.info.max_cols:
            raise ValueError(f"{name} has {cols} elements: the device takes at most "
                             f"CAP_MAX_COLS = {self.info.max_cols}; split the GEMV along K "
                             f"and add the partial results")
        data = pack_activations(mant, exp)
        addr = self._alloc(len(data), self.info.word_bytes, name)
        self.transport.preload(addr, data)
        return ActTensor(addr, len(data), cols)

    def alloc_results(self, rows, name="results"):
        """Allocate room for ``rows`` float32 results.

        Raises
        ------
        ValueError
            If ``rows`` is not from 1 to ``CAP_MAX_ROWS``.
        """
        if isinstance(rows, bool) or not isinstance(rows, int) or \
                not 1 <= rows <= self.info.max_rows:
            raise ValueError(f"{name}: rows = {rows!r} must be from 1 to CAP_MAX_ROWS = "
                             f"{self.info.max_rows}; split the matrix into row blocks")
        nbytes = RESULT_BYTES * rows
        # Word-aligned (the hardware needs 4): a whole-word start lets the DMA
        # write full beats.
        addr = self._alloc(nbytes, self.info.word_bytes, name)
        return ResultTensor(addr, nbytes, rows)

    def read_results_bits(self, result):
        """The raw float32 bits of ``result``: ``uint32 [rows]``."""
        data = self.transport.read_mem(result.addr, result.nbytes)
        return np.frombuffer(bytes(data), dtype="<u4").astype(np.uint32)

    def read_results(self, result):
        """The results of ``result``: ``float32 [rows]``."""
        return self.read_results_bits(result).view(np.float32)

    def free(self, *tensors):
        """Return tensors' device memory to the allocator."""
        for t in tensors:
            self.heap.free(t.addr)

    # -- jobs ------------------------------------------------------------------------------

    def _write_job_reg(self, name, value):
        if self._job_regs.get(name) != value:
            self.regs.write(name, value)
            self._job_regs[name] = value

    def _job_format(self, fmt, planes=0, offset=False):
        """The ``JOB_FORMAT`` value: ``CODE``, ``PLANES`` and ``OFFSET`` at their fields."""
        reg = self.regs.map["JOB_FORMAT"]
        value = 0
        for name, v in (("CODE", int(fmt)), ("PLANES", int(planes)), ("OFFSET", int(offset))):
            f = reg.field(name)
            if not 0 <= v < 1 << f.width:
                raise ValueError(f"JOB_FORMAT.{name} = {v} does not fit its {f.width} bits")
            value |= v << f.lsb
        return value

    def _new_tag(self):
        busy = set(self._outstanding) | set(self._popped)
        for _ in range(1 << self.TAG_BITS):
            tag = self._next_tag
            self._next_tag = (tag + 1) % (1 << self.TAG_BITS)
            if tag not in busy:
                return tag
        raise DeviceError("every 16-bit job tag is in use; wait() for completions")

    def check_job(self, weights, act, result):
        """Check a job's tensors against each other and the device (no device access).

        Raises
        ------
        ValueError
            Naming the mismatch and the fix.
        """
        for arg, value, cls, maker in (("weights", weights, WeightTensor, "put_weights"),
                                       ("act", act, ActTensor, "put_activations"),
                                       ("result", result, ResultTensor, "alloc_results")):
            if not isinstance(value, cls):
                raise ValueError(f"{arg} is a {type(value).__name__}: pass the {cls.__name__} "
                                 f"that Device.{maker}() returned")
        if weights.fmt not in self.info.formats:
            raise ValueError(f"weights: format {weights.fmt.name} is not in CAP_FORMATS "
                             f"({', '.join(f.name for f in self.info.formats)}); quantize "
                             f"to one of those")
        if act.cols != weights.cols:
            raise ValueError(f"act has {act.cols} elements but the weights have "
                             f"{weights.cols} columns; pass a vector of length {weights.cols}")
        if result.rows < weights.rows:
            raise ValueError(f"result holds {result.rows} rows but the weights have "
                             f"{weights.rows}; alloc_results({weights.rows})")

    def submit(self, weights, act, result, irq=False, timeout_cycles=None):
        """Queue one GEMV job; return its tag.

        When the queue is full (``JOB_LEVELS.FREE`` is 0) and jobs of this
        driver are outstanding, their completion records are popped (and kept
        for :meth:`wait`) until there is room.

        Parameters
        ----------
        weights : WeightTensor
        act : ActTensor
        result : ResultTensor
        irq : bool
            Set ``IRQ_STATUS.GEMV_DONE`` when the job completes.
        timeout_cycles : int, optional
            How long to wait for room in a full queue.

        Returns
        -------
        int
            The job's 16-bit tag.

        Raises
        ------
        ValueError
            On tensors that do not fit together (:meth:`check_job`), before
            anything is written.
        DeviceError
            If the queue is full with jobs this driver did not push.
        """
        self.check_job(weights, act, result)
        waited, interval = 0, self.poll_cycles
        while self.regs.read_field("JOB_LEVELS.FREE") == 0:
            if not self._outstanding:
                raise DeviceError(
                    f"the job queue is full (JOB_LEVELS = {self._levels_text()}) but this "
                    f"driver has no job outstanding; pop the stale completion records "
                    f"(drain()) or soft_reset() the device")
            if not self._pop_one():
                if timeout_cycles is not None and waited >= timeout_cycles:
                    raise DeviceTimeout(f"the job queue stayed full for {waited} cycles "
                                        f"({self._levels_text()}); abort() the device or "
                                        f"raise timeout_cycles")
                # No back-off here: the queue must be refilled as soon as a job
                # completes, or the engine could run dry during a long chain.
                waited, _ = self._sleep(waited, interval)
        tag = self._new_tag()
        self._write_job_reg("JOB_WEIGHT_ADDR", weights.addr)
        self._write_job_reg("JOB_ACT_ADDR", act.addr)
        self._write_job_reg("JOB_RESULT_ADDR", result.addr)
        self._write_job_reg("JOB_ROWS", weights.rows)
        self._write_job_reg("JOB_COLS", weights.cols)
        self._write_job_reg("JOB_FORMAT", self._job_format(weights.fmt, weights.planes,
                                                           weights.offset))
        self._write_job_reg("JOB_GROUP", weights.group)
        self._write_job_reg("JOB_TAG", tag)
        self._write_job_reg("JOB_FLAGS", int(bool(irq)))
        self.regs.write("JOB_PUSH", 1)
        self._outstanding.append(tag)
        return tag

    def push_raw(self, *, fmt, rows, cols, group, weight_addr, act_addr, result_addr,
                 irq=False, planes=0, offset=False):
        """Queue a job from raw field values, unchecked; return its tag.

        For tests of the hardware's own checks (bad descriptors): the values
        go to the JOB_* registers as given (``fmt``, ``planes`` and ``offset``
        into the fields of ``JOB_FORMAT``).
        """
        if self.regs.read_field("JOB_LEVELS.FREE") == 0:
            raise DeviceError(f"the job queue is full ({self._levels_text()}); wait() first")
        tag = self._new_tag()
        for name, value in (("JOB_WEIGHT_ADDR", weight_addr), ("JOB_ACT_ADDR", act_addr),
                            ("JOB_RESULT_ADDR", result_addr), ("JOB_ROWS", rows),
                            ("JOB_COLS", cols),
                            ("JOB_FORMAT", self._job_format(fmt, planes, offset)),
                            ("JOB_GROUP", group), ("JOB_TAG", tag),
                            ("JOB_FLAGS", int(bool(irq)))):
            self._write_job_reg(name, value)
        self.regs.write("JOB_PUSH", 1)
        self._outstanding.append(tag)
        return tag

    def _sleep(self, waited, interval):
        """Let ``interval`` cycles pass; return the new total and the next interval."""
        self.transport.wait_cycles(interval)
        return waited + interval, min(2 * interval, self.max_poll_cycles)

    def _levels_text(self):
        levels = self.regs.fields("JOB_LEVELS")
        return ", ".join(f"{k} {v}" for k, v in levels.items())

    def _pop_one(self):
        """Pop one completion record if there is one; return it (or None)."""
        status = self.regs.fields("JOB_STATUS")
        if not status["VALID"]:
            return None
        self.regs.write("JOB_POP", 1)
        done = Completion(status["TAG"], _code(GemvError, status["ERROR"]),
                          _code(DmaError, status["DMA"]))
        if not self._outstanding:
            raise DeviceError(f"completion record for tag {done.tag} but no job is "
                              f"outstanding: records are lost or duplicated (a hardware "
                              f"fault); soft_reset() the device")
        expected = self._outstanding.pop(0)
        if done.tag != expected:
            raise DeviceError(f"completion record for tag {done.tag} while tag {expected} is "
                              f"the oldest job: completions must come in push order (a "
                              f"hardware fault); soft_reset() the device")
        self._popped[done.tag] = done
        return done

    @property
    def outstanding(self):
        """Tags pushed whose completion record has not been popped yet, in push order."""
        return list(self._outstanding)

    def wait(self, tags, timeout_cycles=None, check=True):
        """Wait for the completion records of ``tags``.

        Parameters
        ----------
        tags : int or list of int
        timeout_cycles : int, optional
            Give up after about this many cycles of polling; default never.
        check : bool
            Raise :class:`JobError` if a job failed (after collecting all).

        Returns
        -------
        list of Completion
            In the order of ``tags`` (a single ``Completion`` for an int).

        Raises
        ------
        JobError
            If ``check`` and a job completed with an error; the message has
            the code's text from the register map.
        DeviceTimeout
            If the records did not arrive in time.
        ValueError
            If a tag was never submitted or was already handed out.
        """
        single = isinstance(tags, int)
        tags = [tags] if single else list(tags)
        for t in tags:
            if t not in self._popped and t not in self._outstanding:
                raise ValueError(f"tag {t} is not outstanding (outstanding: "
                                 f"{sorted(self._outstanding) or 'none'}); wait only for "
                                 f"tags submit() returned, once")
        waited, interval = 0, self.poll_cycles
        while any(t not in self._popped for t in tags):
            if self._pop_one() is not None:
                interval = self.poll_cycles
                continue
            if timeout_cycles is not None and waited >= timeout_cycles:
                missing = [t for t in tags if t not in self._popped]
                raise DeviceTimeout(
                    f"jobs {missing} did not complete in {waited} cycles (JOB_LEVELS: "
                    f"{self._levels_text()}; STATUS: {self.regs.fields('STATUS')}); "
                    f"abort() to end them, or raise timeout_cycles")
            waited, interval = self._sleep(waited, interval)
        done = [self._popped.pop(t) for t in tags]
        failed = [c for c in done if not c.ok]
        if check and failed:
            raise JobError("; ".join(c.describe() for c in failed), done)
        return done[0] if single else done

    def drain(self, timeout_cycles=None):
        """Wait for every outstanding job; return all collected completions, unchecked."""
        return self.wait(self.outstanding + list(self._popped), timeout_cycles, check=False)

    # -- conveniences ------------------------------------------------------------------

    def gemv(self, weights, x, timeout_cycles=None):
        """``y = W x`` on the device, placing and freeing what it needs.

        Parameters
        ----------
        weights : QuantizedWeights or WeightTensor
        x : numpy.ndarray or ActTensor or tuple
            A float vector, a ``(mant, exp)`` pair, or placed activations.

        Returns
        -------
        numpy.ndarray
            ``float32 [rows]``.

        Raises
        ------
        ValueError, JobError, DeviceTimeout
        """
        return self.run_chain([(weights, x)], timeout_cycles=timeout_cycles)[0]

    def run_chain(self, jobs, timeout_cycles=None):
        """Queue a chain of GEMVs back to back and collect their results.

        Tensors given as host arrays are placed once (the same activation
        array object passed for several jobs, as for Q, K and V, goes to
        memory once) and freed at the end; placed tensors are used as they are.

        Parameters
        ----------
        jobs : list of (weights, x)
            As for :meth:`gemv`.

        Returns
        -------
        list of numpy.ndarray
            ``float32 [rows]`` per job.
        """
        jobs = list(jobs)
        # Check every host input before anything is written to the device.
        for i, (w, x) in enumerate(jobs):
            if isinstance(w, QuantizedWeights):
                self.check_weights(w, f"jobs[{i}] weights")
            elif not isinstance(w, WeightTensor):
                raise ValueError(f"jobs[{i}] weights is a {type(w).__name__}: pass "
                                 f"QuantizedWeights or a WeightTensor")
            cols = x.cols if isinstance(x, ActTensor) else \
                np.asarray(x[0] if isinstance(x, tuple) else x).size
            if cols != w.cols:
                raise ValueError(f"jobs[{i}]: the vector has {cols} elements but the weights "
                                 f"have {w.cols} columns; pass a vector of length {w.cols}")
        placed, cache = [], {}
        try:
            triples = []
            for i, (w, x) in enumerate(jobs):
                if isinstance(w, QuantizedWeights):
                    key = id(w)
                    if key not in cache:
                        cache[key] = self.put_weights(w, f"jobs[{i}] weights")
                        placed.append(cache[key])
                    w = cache[key]
                if not isinstance(x, ActTensor):
                    key = id(x)
                    if key not in cache:
                        cache[key] = self.put_activations(x, f"jobs[{i}] activations")
                        placed.append(cache[key])
                    x = cache[key]
                r = self.alloc_results(w.rows, f"jobs[{i}] results")
                placed.append(r)
                triples.append((w, x, r))
            tags = [self.submit(w, x, r, timeout_cycles=timeout_cycles) for w, x, r in triples]
            self.wait(tags, timeout_cycles)
            return [self.read_results(r)[:w.rows] for w, _, r in triples]
        finally:
            self.free(*placed)

    # -- control -------------------------------------------------------------------------

    def _wait_idle(self, what, timeout_cycles):
        waited, interval = 0, self.poll_cycles
        while self.regs.read_field("STATUS.ABORTING"):
            if timeout_cycles is not None and waited >= timeout_cycles:
                raise DeviceTimeout(f"{what}: STATUS.ABORTING still high after {waited} "
                                    f"cycles (a bus transaction does not complete); reset "
                                    f"the device")
            waited, interval = self._sleep(waited, interval)

    def abort(self, timeout_cycles=None):
        """End every queued and running job (``CONTROL.ABORT``).

        Waits for ``STATUS.ABORTING`` to fall, then collects the completion
        record of every outstanding job (``ABORTED``, or whatever they
        finished with before the abort took effect).

        Returns
        -------
        list of Completion
            Of every job that was outstanding, in push order.
        """
        self.regs.write_field("CONTROL.ABORT", 1)
        self._wait_idle("abort", timeout_cycles)
        return self.drain(timeout_cycles)

    def soft_reset(self, timeout_cycles=None):
        """``CONTROL.SOFT_RESET``: abort, drop every completion record, reset the engines.

        The driver forgets its outstanding jobs (their records are dropped by
        the hardware); tensors in device memory stay where they are.
        """
        self.regs.write_field("CONTROL.SOFT_RESET", 1)
        self._wait_idle("soft reset", timeout_cycles)
        self._outstanding.clear()
        self._popped.clear()
        self._job_regs.clear()

    def errors(self):
        """``ERROR`` as ``{"gemv": GemvError, "dma": DmaError, "overflow": bool}``."""
        e = self.regs.fields("ERROR")
        return {"gemv": _code(GemvError, e["GEMV"]), "dma": _code(DmaError, e["DMA"]),
                "overflow": bool(e["OVERFLOW"])}

    def clear_errors(self):
        """Clear every ``ERROR`` field (W1C)."""
        reg = self.regs.map["ERROR"]
        self.regs.write("ERROR", sum(f.mask for f in reg.fields))

    def status(self):
        """``STATUS`` as ``{field (lower case): value}``."""
        return {k.lower(): v for k, v in self.regs.fields("STATUS").items()}

    def counters(self):
        """Every readable ``PERF_*`` counter, ``{name without PERF_, lower case: value}``."""
        return {reg.name[len("PERF_"):].lower(): self.regs.read(reg.name)
                for reg in self.regs.map
                if reg.name.startswith("PERF_") and reg.sw_readable}

    def clear_counters(self):
        """Clear every ``PERF_*`` counter (``PERF_CONTROL.CLEAR``)."""
        self.regs.write_field("PERF_CONTROL.CLEAR", 1)

    def set_watchdog(self, cycles):
        """``WATCHDOG.CYCLES``: a job that moves no data this long ends TIMEOUT (0: off)."""
        self.regs.write("WATCHDOG", cycles)

    def weight_layout(self, weights):
        """The :class:`~lpaccel.repack.StreamLayout` of ``weights`` on this device."""
        return stream_layout(weights.fmt, weights.rows, weights.cols, self.config,
                             weights.group, weights.planes or None, weights.offset)
