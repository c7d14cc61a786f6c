"""cocotb CSR suite: the generated CsrBank driven through AXI4-Lite (cocotbext-axi).

Every test walks the register map from ``lpaccel.rtl.regmap`` (nothing about
the map is written here) in an order shuffled by the run's seed, keeps a
Python model of what software should read from every register, and after
each step reads the whole map back (aliasing: a write changes nothing but
its target). Bus delays: ``none`` (no pause on any channel) and ``random``
(seeded random pauses on AW, W, B, AR and R).

Error responses the bank must give (docs/regmap.md): DECERR for an address
with no register, SLVERR for a write to a register without writable fields,
a read of a register without readable fields, a write with ``wstrb`` not all
ones, and an unaligned address.
"""

import os
import random
import warnings

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, ReadOnly, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiResp
from cocotbext.axi.axil_master import AxiLiteReadRespCmd, AxiLiteWriteRespCmd
from csr_top import EXPECTATION_MUTANTS, PREFIX, regmap_config

from lpaccel.rtl.csr import field_port_name
from lpaccel.rtl.regmap import register_map
from lpaccel.sim.infra.harness import params
from lpaccel.sim.infra.streams import PAUSE_MODES

# cocotbext-axi 0.1.28 still calls cocotb 1.x APIs deprecated in cocotb 2.x;
# those warnings are its own, ours stay errors.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext(\.|$)")

P = params()
SEED = cocotb.RANDOM_SEED
REGMAP = register_map(regmap_config(P))
if os.environ.get("CSR_EXPECT_MUTANT"):   # negative test of the checks themselves
    REGMAP = EXPECTATION_MUTANTS[os.environ["CSR_EXPECT_MUTANT"]](REGMAP)
DELAYS = ["none", "random"]
M32 = 0xFFFF_FFFF


def mask(width):
    return (1 << width) - 1


class CsrModel:
    """What software should read from every register, field by field."""

    def __init__(self, regmap):
        self.regmap = regmap
        self.value = {reg.name: reg.reset for reg in regmap}
        # Software write shadows of 64-bit registers (low word buffered).
        self.wshadow = {reg.name: 0 for reg in regmap if reg.words > 1}
        self.rshadow = {reg.name: 0 for reg in regmap if reg.words > 1}

    def sw_write(self, reg, data):
        """A full-register software write (already assembled for 64-bit registers)."""
        cur = self.value[reg.name]
        new = cur
        for f in reg.fields:
            if not f.sw_writable or f.singlepulse:
                continue
            bits = (data >> f.lsb) & mask(f.width)
            old = (cur >> f.lsb) & mask(f.width)
            if f.access == "W1C":
                nxt = old & ~bits
            elif f.access == "W1S":
                nxt = old | bits
            else:
                nxt = bits
            if not f.sw_readable:
                nxt = 0  # write-only storage reads as 0
            new = (new & ~f.mask) | (nxt << f.lsb)
        self.value[reg.name] = new

    def set_field(self, reg, field, value):
        v = self.value[reg.name]
        self.value[reg.name] = (v & ~field.mask) | ((value & mask(field.width)) << field.lsb)

    def field(self, reg, field):
        return (self.value[reg.name] >> field.lsb) & mask(field.width)


class _Reply:
    """Completion hook for cocotbext-axi's internal response queues."""

    def __init__(self):
        self.event = Event()
        self.value = None

    def set(self, value):
        self.value = value
        self.event.set()


class TB:
    """Clock, reset, AXI4-Lite manager with pause generators, model and checks."""

    def __init__(self, dut, delays, seed):
        self.dut = dut
        self.rng = random.Random(seed)
        self.model = CsrModel(REGMAP)
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, PREFIX), dut.clk, dut.rst)
        self.axil.write_if.log.setLevel("WARNING")
        self.axil.read_if.log.setLevel("WARNING")
        channels = [self.axil.write_if.aw_channel, self.axil.write_if.w_channel,
                    self.axil.write_if.b_channel, self.axil.read_if.ar_channel,
                    self.axil.read_if.r_channel]
        for i, channel in enumerate(channels):
            channel.set_pause_generator(PAUSE_MODES[delays](seed=seed * 8 + i))
        # Hardware side: every input starts at 0; pulses are counted.
        self.inputs = {}
        self.pulse_counts = {}
        for reg in REGMAP:
            for f in reg.fields:
                sig = self.port_signature(reg, f)
                if sig is None:
                    continue
                for name, member in sig.members.items():
                    handle = self.port(reg, f, name)
                    if member.flow.name == "In":
                        handle.value = 0
                        self.inputs[(reg.name, f.name, name)] = handle
                    elif name == "pulse":
                        self.pulse_counts[(reg.name, f.name)] = 0
        cocotb.start_soon(self._count_pulses())

    @staticmethod
    def port_signature(reg, f):
        from lpaccel.rtl.csr import field_signature
        return field_signature(reg, f)

    def port(self, reg, f, signal):
        return getattr(self.dut, f"{field_port_name(reg, f)}__{signal}")

    async def _count_pulses(self):
        handles = {key: self.port(REGMAP[key[0]], REGMAP[key[0]].field(key[1]), "pulse")
                   for key in self.pulse_counts}
        while True:
            await RisingEdge(self.dut.clk)
            await ReadOnly()
            for key, handle in handles.items():
                if int(handle.value):
                    self.pulse_counts[key] += 1

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    # --- bus access -------------------------------------------------------------
    async def write_word(self, address, value):
        resp = await self.axil.write(address, (value & M32).to_bytes(4, "little"))
        found = REGMAP.at(address)
        if resp.resp == AxiResp.OKAY and found and found[0].words > 1 and found[1] == 0:
            self.model.wshadow[found[0].name] = value & M32
        return AxiResp(resp.resp)

    async def read_word(self, address):
        resp = await self.axil.read(address, 4)
        return int.from_bytes(resp.data, "little"), AxiResp(resp.resp)

    async def raw_write(self, address, value, strb):
        """One AW/W pair with any address and strobe (cocotbext-axi's write() aligns)."""
        wr = self.axil.write_if
        reply = _Reply()
        await wr.int_write_resp_command_queue.put(
            AxiLiteWriteRespCmd(address, 4, 1, 0, reply))
        aw = wr.aw_channel._transaction_obj()
        aw.awaddr = address
        aw.awprot = 0
        w = wr.w_channel._transaction_obj()
        w.wdata = value & M32
        w.wstrb = strb
        await wr.aw_channel.send(aw)
        await wr.w_channel.send(w)
        await reply.event.wait()
        return AxiResp(reply.value.resp)

    async def raw_read(self, address):
        rd = self.axil.read_if
        reply = _Reply()
        await rd.int_read_resp_command_queue.put(AxiLiteReadRespCmd(address, 4, 1, 0, reply))
        ar = rd.ar_channel._transaction_obj()
        ar.araddr = address
        ar.arprot = 0
        await rd.ar_channel.send(ar)
        await reply.event.wait()
        return AxiResp(reply.value.resp)

    async def write_reg(self, reg, value, *, expect=AxiResp.OKAY):
        """Write a register low word first; update the model on OKAY."""
        for word in range(reg.words):
            resp = await self.write_word(reg.address + 4 * word, value >> (32 * word))
            assert resp == expect, (f"write {reg.name} word {word} = {value:#x}: "
                                    f"{resp.name}, expected {expect.name}")
        if expect == AxiResp.OKAY:
            self.model.sw_write(reg, value & mask(reg.width))

    async def read_reg(self, reg, *, expect=AxiResp.OKAY):
        value = 0
        for word in range(reg.words):
            data, resp = await self.read_word(reg.address + 4 * word)
            assert resp == expect, \
                f"read {reg.name} word {word}: {resp.name}, expected {expect.name}"
            value |= data << (32 * word)
        return value

    async def check_reg(self, reg, why=""):
        if not reg.sw_readable:
            await self.read_reg(reg, expect=AxiResp.SLVERR)
            return
        got = await self.read_reg(reg)
        want = self.model.value[reg.name]
        assert got == want, (f"{reg.name} reads {got:#x}, expected {want:#x} {why}: "
                             f"fields " + ", ".join(
                                 f"{f.name}={(got >> f.lsb) & mask(f.width):#x}/"
                                 f"{(want >> f.lsb) & mask(f.width):#x}" for f in reg.fields))

    async def check_all(self, why=""):
        order = list(REGMAP)
        self.rng.shuffle(order)
        for reg in order:
            await self.check_reg(reg, why)

    def check_outputs(self, why=""):
        """Every storage field's ``value`` output equals what software reads."""
        for reg in REGMAP:
            for f in reg.fields:
                sig = self.port_signature(reg, f)
                if sig is None or "value" not in sig.members or \
                        sig.members["value"].flow.name != "Out":
                    continue
                got = int(self.port(reg, f, "value").value)
                want = self.model.field(reg, f)
                assert got == want, (f"{reg.name}.{f.name} value output {got:#x}, register "
                                     f"holds {want:#x} {why}")

    async def drive_inputs(self):
        """Drive every hardware-fed RO field with a random value."""
        for reg in REGMAP:
            for f in reg.fields:
                if not f.storage and f.hw_writable:
                    value = self.rng.getrandbits(f.width)
                    self.port(reg, f, "value").value = value
                    self.model.set_field(reg, f, value)
        await RisingEdge(self.dut.clk)

    async def pulse_input(self, reg, f, signal, value=1, extra=None):
        """Hold a hardware input for one cycle (with ``extra`` signals alongside)."""
        await RisingEdge(self.dut.clk)
        self.port(reg, f, signal).value = value
        for name, v in (extra or {}).items():
            self.port(reg, f, name).value = v
        await RisingEdge(self.dut.clk)
        self.port(reg, f, signal).value = 0
        for name in (extra or {}):
            self.port(reg, f, name).value = 0


def seed_for(delays, test):
    return SEED * 1000 + DELAYS.index(delays) * 100 + test


def random_value(rng, reg):
    return rng.getrandbits(reg.width)


# --- tests --------------------------------------------------------------------


@cocotb.test()
@cocotb.parametrize(delays=DELAYS)
async def reset_values(dut, delays):
    """Every register reads its reset value; hardware-fed fields read their inputs."""
    tb = TB(dut, delays, seed_for(delays, 1))
    await tb.reset()
    await tb.check_all("after reset")
    tb.check_outputs("after reset")
    # The constants are what the configuration says, not just what the RDL says.
    cfg = REGMAP.config
    assert tb.model.value["CAP_ENGINE"] & 0xFF == cfg.gemv.lanes
    assert tb.model.value["CAP_MEM_SIZE"] == cfg.memory_size
    assert tb.model.value["BUILD_HASH"] == cfg.build_hash
    for _ in range(2):
        await tb.drive_inputs()
        await tb.check_all("with random hardware inputs")


@cocotb.test()
@cocotb.parametrize(delays=DELAYS)
async def write_read_and_aliasing(dut, delays):
    """Random writes to every register under its access policy; after each, the
    whole map reads back as the model says (writing one register changes no other)
    and every hardware ``value`` output follows its register."""
    tb = TB(dut, delays, seed_for(delays, 2))
    await tb.reset()
    await tb.drive_inputs()
    order = [reg for reg in REGMAP for _ in range(2)]
    tb.rng.shuffle(order)
    for reg in order:
        value = random_value(tb.rng, reg)
        if reg.sw_writable:
            await tb.write_reg(reg, value)
        else:
            await tb.write_reg(reg, value, expect=AxiResp.SLVERR)
        tb.check_outputs(f"after writing {reg.name}")
        await tb.check_all(f"after writing {value:#x} to {reg.name}")


@cocotb.test()
@cocotb.parametrize(delays=DELAYS)
async def walking_ones(dut, delays):
    """Walking one (and walking zero) over every bit of every RW field."""
    tb = TB(dut, delays, seed_for(delays, 3))
    await tb.reset()
    regs = [reg for reg in REGMAP if any(f.access == "RW" for f in reg.fields)]
    tb.rng.shuffle(regs)
    for reg in regs:
        rw = sum(f.mask for f in reg.fields if f.access == "RW")
        for bit in range(reg.width):
            if not rw >> bit & 1:
                continue
            for pattern in (1 << bit, rw & ~(1 << bit)):
                await tb.write_reg(reg, pattern)
                await tb.check_reg(reg, f"walking bit {bit}")
                tb.check_outputs(f"walking bit {bit} of {reg.name}")
        await tb.check_all(f"after bit-bashing {reg.name}")


def unmapped_addresses(rng, addr_width):
    mapped = {reg.address + 4 * w for reg in REGMAP for w in range(reg.words)}
    space = 1 << addr_width
    gaps = [a for a in range(0, REGMAP.size + 0x40, 4) if a not in mapped]
    picks = rng.sample(gaps, min(8, len(gaps)))
    return sorted(set(picks + [REGMAP.size, space - 4, space // 2]))


@cocotb.test()
@cocotb.parametrize(delays=DELAYS)
async def illegal_accesses(dut, delays):
    """Unmapped, write to read-only, read of write-only, narrow and unaligned
    accesses answer an error and change nothing."""
    tb = TB(dut, delays, seed_for(delays, 4))
    await tb.reset()
    await tb.drive_inputs()
    for reg in REGMAP:  # fill the map so that a stray write would show
        if any(f.access == "RW" for f in reg.fields):
            await tb.write_reg(reg, random_value(tb.rng, reg))
    pulses = dict(tb.pulse_counts)
    cases = []
    for address in unmapped_addresses(tb.rng, len(dut.s_axil_awaddr)):
        cases.append(("unmapped write", address, "w", 0xF, AxiResp.DECERR))
        cases.append(("unmapped read", address, "r", None, AxiResp.DECERR))
    for reg in REGMAP:
        for word in range(reg.words):
            a = reg.address + 4 * word
            if not reg.sw_writable:
                cases.append((f"write to read-only {reg.name}", a, "w", 0xF, AxiResp.SLVERR))
            else:
                strb = tb.rng.choice([s for s in range(16) if s != 0xF])
                cases.append((f"narrow write {strb:#x} to {reg.name}", a, "w", strb,
                              AxiResp.SLVERR))
                off = tb.rng.randrange(1, 4)
                cases.append((f"unaligned write to {reg.name}+{off}", a + off, "w", 0xF,
                              AxiResp.SLVERR))
            if not reg.sw_readable:
                cases.append((f"read of write-only {reg.name}", a, "r", None, AxiResp.SLVERR))
            else:
                off = tb.rng.randrange(1, 4)
                cases.append((f"unaligned read of {reg.name}+{off}", a + off, "r", None,
                              AxiResp.SLVERR))
    tb.rng.shuffle(cases)
    for what, address, kind, strb, expect in cases:
        if kind == "w":
            resp = await tb.raw_write(address, 0xFFFF_FFFF, strb)
        else:
            resp = await tb.raw_read(address)
        assert resp == expect, f"{what} at {address:#x}: {resp.name}, expected {expect.name}"
    await ClockCycles(dut.clk, 2)
    assert tb.pulse_counts == pulses, f"an illegal write pulsed a strobe: {tb.pulse_counts}"
    tb.check_outputs("after illegal accesses")
    await tb.check_all("after illegal accesses")
    # A rejected write must not leave anything in a 64-bit write shadow either.
    for reg in REGMAP:
        if reg.words > 1 and reg.sw_writable and reg.access == "RW":
            shadow = tb.model.wshadow[reg.name]
            resp = await tb.raw_write(reg.address, ~shadow, 0x3)   # narrow low word
            assert resp == AxiResp.SLVERR
            assert await tb.write_word(reg.address + 4, 0) == AxiResp.OKAY
            tb.model.sw_write(reg, shadow)   # the high-word write commits the old shadow
            await tb.check_reg(reg, "a narrow low-word write must not reach the shadow")


@cocotb.test()
@cocotb.parametrize(delays=DELAYS)
async def wide_registers_atomic(dut, delays):
    """64-bit registers: a low-word write alone changes nothing; the high word
    commits both halves; a read returns one consistent 64-bit snapshot."""
    tb = TB(dut, delays, seed_for(delays, 5))
    await tb.reset()
    wide = [reg for reg in REGMAP if reg.words > 1]
    tb.rng.shuffle(wide)
    for reg in wide:
        if reg.access != "RW":
            continue
        old = tb.model.value[reg.name]
        new = random_value(tb.rng, reg)
        assert await tb.write_word(reg.address, new) == AxiResp.OKAY
        await tb.check_reg(reg, "after a low-word write only")
        tb.check_outputs(f"after a low-word write of {reg.name}")
        assert await tb.write_word(reg.address + 4, new >> 32) == AxiResp.OKAY
        tb.model.sw_write(reg, new)
        assert tb.model.value[reg.name] != old or new == old
        tb.check_outputs(f"after the high-word write of {reg.name}")
        await tb.check_all(f"after writing {reg.name}")
        # The high word of a read comes from the snapshot taken with the low word.
        low, _ = await tb.read_word(reg.address)
        await tb.write_reg(reg, ~new & mask(64))
        high, _ = await tb.read_word(reg.address + 4)
        assert (high << 32 | low) == new, f"{reg.name}: torn read {high:#x}:{low:#x}"
    if delays == "none":
        return   # the 65k-cycle carry run below is done once, with random bus delays
    # A counter running through the 32-bit carry: every read must be a multiple
    # of the step (a torn read across the carry is not).
    reg = REGMAP["PERF_WEIGHT_BYTES"]
    f = reg.field("COUNT")
    step = 0xFFF1
    tb.port(reg, f, "incr_value").value = step
    tb.port(reg, f, "incr").value = 1
    await ClockCycles(dut.clk, (1 << 32) // step - 40)
    values = []
    for _ in range(24):
        values.append(await tb.read_reg(reg))
    tb.port(reg, f, "incr").value = 0
    assert values[0] < 1 << 32 < values[-1], f"the counter did not cross 2**32: {values}"
    for v in values:
        assert v % step == 0, f"torn 64-bit counter read {v:#x} (not a multiple of {step:#x})"
    assert values == sorted(values) and len(set(values)) == len(values)
    # Clear through the hardware input.
    await tb.pulse_input(reg, f, "clear")
    assert await tb.read_reg(reg) == 0


@cocotb.test()
@cocotb.parametrize(delays=DELAYS)
async def hardware_side(dut, delays):
    """W1C bits set by hardware, W1S and WO strobes, sticky codes, counters."""
    tb = TB(dut, delays, seed_for(delays, 6))
    await tb.reset()
    regs = list(REGMAP)
    tb.rng.shuffle(regs)
    for reg in regs:
        for f in reg.fields:
            if f.hwset:   # W1C status bit
                await tb.pulse_input(reg, f, "set")
                tb.model.set_field(reg, f, mask(f.width))
                await tb.check_all(f"after hardware set {reg.name}.{f.name}")
                await tb.write_reg(reg, 0)           # writing 0 keeps it
                await tb.check_reg(reg, f"after writing 0 over {f.name}")
                await tb.write_reg(reg, f.mask)     # writing 1 clears it
                await tb.check_reg(reg, f"after writing 1 over {f.name}")
                assert tb.model.field(reg, f) == 0
                # Hardware wins a same-cycle race: set held while software clears.
                tb.port(reg, f, "set").value = 1
                await tb.write_reg(reg, f.mask)
                tb.port(reg, f, "set").value = 0
                tb.model.set_field(reg, f, mask(f.width))
                await tb.check_reg(reg, f"set held during the clear of {f.name}")
                await tb.write_reg(reg, f.mask)
            if f.we:      # sticky code written by hardware, cleared by writing ones
                code = tb.rng.randrange(1, 1 << f.width)
                await tb.pulse_input(reg, f, "we", extra={"next": code})
                tb.model.set_field(reg, f, code)
                await tb.check_all(f"after hardware wrote {code} to {reg.name}.{f.name}")
                part = tb.rng.getrandbits(f.width)
                await tb.write_reg(reg, part << f.lsb)
                await tb.check_reg(reg, f"after clearing {part:#x} of {f.name}")
                await tb.write_reg(reg, f.mask)
                await tb.check_reg(reg)
                assert tb.model.field(reg, f) == 0
            if f.singlepulse:   # W1S or WO strobe: one cycle per write of 1, reads 0
                key = (reg.name, f.name)
                before = dict(tb.pulse_counts)
                await tb.write_reg(reg, 0)
                await ClockCycles(dut.clk, 2)
                assert tb.pulse_counts == before, f"writing 0 to {reg.name} pulsed"
                for n in (1, 2):
                    await tb.write_reg(reg, f.mask)
                    await ClockCycles(dut.clk, 2)
                    assert tb.pulse_counts[key] == before[key] + n, (
                        f"{reg.name}.{f.name}: {tb.pulse_counts[key] - before[key]} pulse "
                        f"cycles after {n} writes of 1")
                others = {k: v for k, v in tb.pulse_counts.items() if k != key}
                assert others == {k: v for k, v in before.items() if k != key}, \
                    f"writing {reg.name}.{f.name} pulsed another strobe"
                await tb.check_reg(reg, "a strobe reads as 0")
            if f.counter:
                n = tb.rng.randrange(1, 20)
                step = tb.rng.randrange(1, 1 << f.incrwidth) if f.incrwidth else 1
                if f.incrwidth:
                    tb.port(reg, f, "incr_value").value = step
                await RisingEdge(dut.clk)
                tb.port(reg, f, "incr").value = 1
                await ClockCycles(dut.clk, n)
                tb.port(reg, f, "incr").value = 0
                tb.model.set_field(reg, f, n * step)
                await tb.check_all(f"after {n} increments of {step} on {reg.name}")
                await tb.pulse_input(reg, f, "clear")
                tb.model.set_field(reg, f, 0)
                await tb.check_reg(reg, "after clear")
    await tb.check_all("at the end")
