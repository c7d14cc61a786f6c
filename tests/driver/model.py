"""A functional test double of the lpaccel SoC behind a driver Transport.

Not a model of the hardware's timing or of its bus: it exists to test the
driver's logic (register sequences, job queue bookkeeping, errors, memory
layouts) without a simulator. It keeps the registers of
``lpaccel.rtl.regmap.register_map`` (addresses, capability values, 64-bit
registers as two words, W1C/W1S/WO kinds), a ``bytearray`` memory, and a job
queue with the semantics of ``docs/soc.md``: JOB_PUSH copies the JOB_*
registers into the queue (dropped with ERROR.OVERFLOW when JOB_LEVELS.FREE is
0), jobs run one after the other as cycles pass (:meth:`wait_cycles`), each
gets exactly one completion record in push order. A job reads its weight
stream and activation vector from memory and writes the results computed by
``lpaccel.sim.golden.gemv`` from those bytes, so a wrong memory layout on the
driver side shows up as wrong results. The real system tests run the driver
against the RTL SoC (tests/soc/).
"""

from collections import deque
from dataclasses import dataclass

import numpy as np

from lpaccel.driver import Transport
from lpaccel.repack import stream_layout, unpack_weights
from lpaccel.rtl.config import BCQ_PLANES, GROUP_SIZES, WeightFormat
from lpaccel.rtl.regmap import DmaError, GemvError, RegmapConfig, register_map
from lpaccel.sim.golden.gemv import gemv_golden_quantized


class BusError(Exception):
    """The model answered SLVERR (unmapped address, read of a write-only register)."""


@dataclass
class _Job:
    fmt: int            # JOB_FORMAT.CODE
    planes: int         # JOB_FORMAT.PLANES
    offset: int         # JOB_FORMAT.OFFSET
    group: int
    rows: int
    cols: int
    weight_addr: int
    act_addr: int
    result_addr: int
    tag: int
    irq: int


class SocModel(Transport):
    """Registers + memory + job queue of an lpaccel SoC, computed in Python.

    Parameters
    ----------
    soc : SocConfig
        What the capability registers report (and the memory size).
    job_overhead : int
        Cycles a job takes on top of one per weight word.
    """

    def __init__(self, soc, job_overhead=20):
        self.soc = soc
        self.map = register_map(RegmapConfig(soc=soc))
        self.mem = bytearray(soc.memory_size)
        self.job_overhead = job_overhead
        self.log = []               # ("r"|"w", register name, word, value)
        self.preloads = []          # (addr, nbytes)
        self.store = {r.name: r.reset for r in self.map
                      if any(f.storage for f in r.fields)}
        self.error = {"GEMV": 0, "DMA": 0, "OVERFLOW": 0}
        self.irq_status = 0
        self.queue = deque()
        self.running = None         # (job, finish cycle)
        self.done = deque()         # (tag, error, dma)
        self.now = 0
        self.perf = {r.name: 0 for r in self.map if r.name.startswith("PERF_")
                     and r.sw_readable}
        self._latched = {}
        self._buffered = {}
        # Fault injection for tests.
        self.slverr = []            # [(lo, hi)]: a DMA touching these bytes gets SLVERR
        self.stuck = False          # jobs never finish
        self.swap_completions = False

    # -- registers ---------------------------------------------------------------------

    def _reg(self, addr):
        hit = self.map.at(addr)
        if hit is None:
            raise BusError(f"no register at {addr:#x}")
        return hit

    def read32(self, addr):
        reg, word = self._reg(addr)
        if not reg.sw_readable:
            raise BusError(f"{reg.name} is write-only")
        if word == 0:
            value = self._read(reg.name)
            self._latched[reg.name] = value >> 32
        else:
            value = self._latched.pop(reg.name, 0)
        value &= 0xFFFF_FFFF
        self.log.append(("r", reg.name, word, value))
        return value

    def write32(self, addr, value):
        reg, word = self._reg(addr)
        if not reg.sw_writable:
            raise BusError(f"{reg.name} is read-only")
        self.log.append(("w", reg.name, word, value))
        if reg.words == 2 and word == 0:
            self._buffered[reg.name] = value
            return
        if word == 1:
            value = self._buffered.pop(reg.name, 0) | value << 32
        self._write(reg, value)

    def _levels(self):
        queued, active, done = len(self.queue), int(self.running is not None), len(self.done)
        return queued, active, done, self.soc.job_depth - queued - active - done

    def _read(self, name):
        reg = self.map[name]
        if name == "STATUS":
            busy = bool(self.queue) or self.running is not None
            return busy | (busy << 1) | (bool(self.error["GEMV"] or self.error["DMA"]) << 2)
        if name == "ERROR":
            return self.error["GEMV"] | self.error["DMA"] << 8 | self.error["OVERFLOW"] << 16
        if name == "IRQ_STATUS":
            return self.irq_status
        if name == "JOB_STATUS":
            if not self.done:
                return 0
            tag, error, dma = self.done[0]
            return tag | error << 16 | dma << 24 | 1 << 31
        if name == "JOB_LEVELS":
            q, a, d, f = self._levels()
            return q | a << 8 | d << 16 | f << 24
        if name in self.perf:
            return self.perf[name]
        if name in self.store:
            return self.store[name]
        return reg.reset

    def _write(self, reg, value):
        name = reg.name
        if name == "JOB_PUSH" and value & 1:
            self._push()
        elif name == "JOB_POP" and value & 1:
            if self.done:
                self.done.popleft()
        elif name == "CONTROL":
            if value & 0b110:
                self._abort()
            if value & 0b100:
                self.done.clear()
        elif name == "PERF_CONTROL" and value & 1:
            self.perf = dict.fromkeys(self.perf, 0)
        elif name == "ERROR":
            if value & 0xFF:
                self.error["GEMV"] &= ~value & 0xFF
            if value >> 8 & 0xFF:
                self.error["DMA"] &= ~(value >> 8) & 0xFF
            if value >> 16 & 1:
                self.error["OVERFLOW"] = 0
        elif name == "IRQ_STATUS":
            self.irq_status &= ~value
        elif name in self.store:
            self.store[name] = value & reg.sw_write_mask()

    # -- memory ------------------------------------------------------------------------

    def _check_range(self, addr, n):
        if addr < 0 or addr + n > len(self.mem):
            raise BusError(f"memory access [{addr:#x}, {addr + n:#x}) outside "
                           f"{len(self.mem)} bytes")

    def write_mem(self, addr, data):
        self._check_range(addr, len(data))
        self.mem[addr:addr + len(data)] = bytes(data)

    def read_mem(self, addr, n):
        self._check_range(addr, n)
        return bytes(self.mem[addr:addr + n])

    def preload(self, addr, data):
        self.preloads.append((addr, len(data)))
        self.write_mem(addr, data)

    # -- the job queue -----------------------------------------------------------------

    def _push(self):
        if self._levels()[3] == 0:
            self.error["OVERFLOW"] = 1
            return
        s = self.store
        reg = self.map["JOB_FORMAT"]
        code, planes, offset = ((s["JOB_FORMAT"] >> f.lsb) & ((1 << f.width) - 1)
                                for f in (reg.field(n) for n in ("CODE", "PLANES", "OFFSET")))
        self.queue.append(_Job(code, planes, offset, s["JOB_GROUP"], s["JOB_ROWS"], s["JOB_COLS"],
                               s["JOB_WEIGHT_ADDR"], s["JOB_ACT_ADDR"], s["JOB_RESULT_ADDR"],
                               s["JOB_TAG"], s["JOB_FLAGS"] & 1))

    def _complete(self, job, error, dma=DmaError.OK):
        self.done.append((job.tag, int(error), int(dma)))
        if self.swap_completions and len(self.done) >= 2:
            self.done[-1], self.done[-2] = self.done[-2], self.done[-1]
        self.perf["PERF_JOBS_DONE"] += 1
        if error:
            self.error["GEMV"] = int(error)
            self.irq_status |= 0b10
        if dma:
            self.error["DMA"] = int(dma)
        if job.irq:
            self.irq_status |= 0b01

    def _abort(self):
        if self.running is not None:
            self._complete(self.running[0], GemvError.ABORTED)
            self.running = None
        while self.queue:
            self._complete(self.queue.popleft(), GemvError.ABORTED)

    def _check(self, job):
        """``(error, dma, layout)``: the codes the SoC would end the job with (error None: ok)."""
        caps = self.soc.gemv
        try:
            fmt = WeightFormat(job.fmt)
        except ValueError:
            return GemvError.BAD_FORMAT, DmaError.OK, None
        if fmt not in caps.formats:
            return GemvError.BAD_FORMAT, DmaError.OK, None
        group = job.group if fmt.grouped else 32
        if fmt.grouped and job.group not in GROUP_SIZES:
            return GemvError.BAD_GROUP, DmaError.OK, None
        # BCQ needs 1 to 4 planes, every other format 0 (OFFSET is ignored outside BCQ).
        if job.planes not in (BCQ_PLANES if fmt is WeightFormat.BCQ else (0,)):
            return GemvError.BAD_PLANES, DmaError.OK, None
        if job.cols == 0 or job.cols % group:
            return GemvError.BAD_COLS, DmaError.OK, None
        if job.cols > caps.max_cols:
            return GemvError.COLS_TOO_LARGE, DmaError.OK, None
        if not 1 <= job.rows <= caps.max_rows:
            return GemvError.BAD_ROWS, DmaError.OK, None
        layout = self._layout(job)
        nb = job.cols // 32
        act_len = -(-nb // 64) * 64 + 2 * job.cols
        spans = [(job.weight_addr, layout.bytes), (job.act_addr, act_len),
                 (job.result_addr, 4 * job.rows)]
        # docs/soc.md: the engine's rules, then alignment, then the buffers' bounds.
        word = caps.word_bytes
        if job.weight_addr % word or job.act_addr % word or job.result_addr % 4:
            return GemvError.MISALIGNED, DmaError.OK, None
        if any(a + n > self.soc.memory_size for a, n in spans):
            return GemvError.BAD_ADDRESS, DmaError.OK, None
        for i, (a, n) in enumerate(spans):
            if any(a < hi and lo < a + n for lo, hi in self.slverr):
                error = GemvError.DMA_WRITE if i == 2 else GemvError.DMA_READ
                return error, DmaError.SLVERR, None
        return None, DmaError.OK, layout

    def _execute(self, job):
        """Run ``job`` on the memory contents; return its completion codes."""
        error, dma, layout = self._check(job)
        if error is not None:
            return error, dma
        stream = self.mem[job.weight_addr:job.weight_addr + layout.bytes]
        weights = unpack_weights(bytes(stream), layout.fmt, job.rows, job.cols, self.soc.gemv,
                                 layout.group, layout.planes or None, layout.offset)
        nb = job.cols // 32
        hdr = -(-nb // 64) * 64
        a = job.act_addr
        exp = np.frombuffer(bytes(self.mem[a:a + nb]), dtype=np.int8)
        mant = np.frombuffer(bytes(self.mem[a + hdr:a + hdr + 2 * job.cols]), dtype="<i2")
        _, y = gemv_golden_quantized(weights, mant, exp)
        r = job.result_addr
        self.mem[r:r + 4 * job.rows] = y.astype("<f4").tobytes()
        self.perf["PERF_WEIGHT_BYTES"] += layout.bytes
        return GemvError.NONE, DmaError.OK

    def _layout(self, job):
        fmt = WeightFormat(job.fmt)
        bcq = fmt is WeightFormat.BCQ
        return stream_layout(fmt, job.rows, job.cols, self.soc.gemv,
                             job.group if fmt.grouped else None,
                             job.planes if bcq else None, bool(job.offset) and bcq)

    def _job_cycles(self, job):
        try:
            layout = self._layout(job)
            return layout.words + self.job_overhead
        except ValueError:
            return self.job_overhead

    def wait_cycles(self, n):
        end = self.now + n
        while self.now < end:
            if self.running is None:
                if not self.queue or self.stuck:
                    if not self.queue:
                        self.perf["PERF_STALL_HOST"] += end - self.now
                    self.now = end
                    break
                job = self.queue.popleft()
                self.running = (job, self.now + self._job_cycles(job))
            job, finish = self.running
            step = min(end, finish) - self.now
            self.perf["PERF_BUSY_CYCLES"] += step
            self.now += step
            if self.now >= finish:
                self.running = None
                error, dma = self._execute(job)
                self._complete(job, error, dma)
