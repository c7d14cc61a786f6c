# amaranth: UnusedElaboratable=no
"""amaranth.sim checks of the BCQ LUT-GEMM datapath (:class:`LutGemm`).

Jobs of random activations are loaded into both buffers (ping-pong: the next
job loads while the current one computes) under random load back-pressure;
random plane beats (1 to 4 planes, offset on or off, blocks past the row's
end with scale 0, invalid beats with garbage in between) go through under
random ``en`` stalls. Every ``wide`` output is compared with the block sums
``W`` computed from the definition (``docs/arithmetic.md`` section 8.1), not
from tables, and must appear exactly ``LutGemm.LATENCY`` enabled cycles
after its tile's last plane beat.
"""

import random
from dataclasses import dataclass, field

import pytest
from amaranth.sim import Simulator

from lpaccel.rtl.config import BLOCK, GemvConfig, WeightFormat
from lpaccel.rtl.gemv.lutgemm import LutGemm
from lpaccel.rtl.gemv.pipeline import EngineGeometry

FLAG_NAMES = ("plane_first", "plane_last", "row_first", "row_last", "final")


def decode_f16(h):
    """``(sign, md, u)`` of float16 bits ``h``, as ``docs/arithmetic.md`` 8.1 writes it."""
    e = (h >> 10) & 31
    return h >> 15, (h & 1023) + (1024 if e else 0), max(e, 1) - 1


def scaled(h, value):
    """``(-1)^s · md · value · 2^u`` for float16 bits ``h``."""
    s, md, u = decode_f16(h)
    return (-1) ** s * md * value << u


@dataclass
class Job:
    """One BCQ job: its buffer, activations and plane beats with expected outputs."""

    buffer: int
    mant: list            # [blocks][32]
    exp: list             # [blocks]
    beats: list = field(default_factory=list)
    expected: list = field(default_factory=list)   # one per tile: (flags, [W], [exp])


def make_job(rng, geometry, buffer, shape=None):
    """A random job for ``buffer``: shape, planes, offset, beats and expected sums.

    ``shape`` fixes ``(blocks, rows, planes)`` instead of drawing them.
    """
    B, nb = geometry.beat_bits, geometry.tile_blocks
    blocks = rng.randint(1, geometry.config.max_cols // BLOCK) if shape is None else shape[0]
    extreme = [-32767, 32767]
    mant = [[rng.choice(extreme) if rng.random() < 0.1 else rng.randint(-32767, 32767)
             for _ in range(BLOCK)] for _ in range(blocks)]
    exp = [rng.randint(-128, 127) for _ in range(blocks)]
    job = Job(buffer, mant, exp)
    planes, offset, rows = rng.randint(1, 4), rng.random() < 0.5, rng.randint(1, 3)
    if shape is not None:
        rows, planes = shape[1:]
    tiles = -(-blocks * BLOCK // B)

    def scale():
        return rng.choice([0x0001, 0x7FFF, 0xFFFF, 0x03FF]) if rng.random() < 0.1 \
            else rng.randrange(1, 1 << 16)

    for r in range(rows):
        for t in range(tiles):
            live = [t * nb + k < blocks for k in range(nb)]
            offs = [scale() if offset and live[k] else 0 for k in range(nb)]
            w = [0] * nb
            flags = {}
            for p in range(planes):
                bits = rng.getrandbits(B)
                alpha = [scale() if live[k] else 0 for k in range(nb)]
                flags = {"plane_first": int(p == 0), "plane_last": int(p == planes - 1),
                         "row_first": int(t == 0), "row_last": int(t == tiles - 1),
                         "final": int(r == rows - 1 and t == tiles - 1)}
                job.beats.append({"valid": 1, "buffer": buffer, "tile": t, "bits": bits,
                                  "flags": flags, "alpha": alpha, "offset": offs})
                for k in range(nb):
                    if live[k]:
                        b = t * nb + k
                        col = [(bits >> (BLOCK * k + i)) & 1 for i in range(BLOCK)]
                        dot = sum((2 * col[i] - 1) * mant[b][i] for i in range(BLOCK))
                        w[k] += scaled(alpha[k], dot)
            for k in range(nb):
                if live[k]:
                    w[k] += scaled(offs[k], sum(mant[t * nb + k]))
            exps = [exp[t * nb + k] if live[k] else None for k in range(nb)]
            job.expected.append((flags, w, exps))
    return job


def garbage_beat(rng, geometry):
    """An invalid beat with random fields: the datapath must ignore it."""
    nb = geometry.tile_blocks
    return {"valid": 0, "buffer": rng.getrandbits(1), "tile": rng.randrange(geometry.tile_depth),
            "bits": rng.getrandbits(geometry.beat_bits),
            "flags": {name: rng.getrandbits(1) for name in FLAG_NAMES},
            "alpha": [rng.getrandbits(16) for _ in range(nb)],
            "offset": [rng.getrandbits(16) for _ in range(nb)]}


def run(config, *, seed=0, jobs=3, stall=0.3, bubble=0.2, load_pause=0.3, corrupt=False,
        shapes=None, latency=LutGemm.LATENCY):
    """Simulate ``jobs`` jobs through :class:`LutGemm`; return a list of mismatches.

    ``stall`` is the probability of ``en`` low in a cycle, or ``"periodic"``
    (low every third cycle); ``bubble`` of an invalid beat between two
    beats; ``load_pause`` of an idle cycle before a block is offered.
    ``shapes`` fixes each job's ``(blocks, rows, planes)``. ``corrupt`` flips
    a bit of the table entry the first beat of the first job reads (after
    the tables are written): the comparison must then fail. ``latency`` is
    the latency the outputs are checked against.
    """
    geometry = EngineGeometry(config)
    dut = LutGemm(geometry)
    rng = random.Random(seed)
    mu, nent = geometry.lut_width, 1 << (geometry.lut_width - 1)
    if shapes is not None:
        jobs = len(shapes)
    job_list = [make_job(rng, geometry, j % 2, None if shapes is None else shapes[j])
                for j in range(jobs)]
    loaded = [False] * jobs
    issued = [False] * jobs
    errors = []
    outputs = []        # (enabled cycle, flags, [(w, exp)])
    sent = []           # enabled cycle of each plane_last beat, in order
    finished = [False]

    async def loader(ctx):
        lrng = random.Random(seed + 1)
        for j, job in enumerate(job_list):
            while j >= 2 and not issued[j - 2]:
                await ctx.tick()
            for b in range(len(job.mant)):
                while lrng.random() < load_pause:
                    await ctx.tick()
                ctx.set(dut.load.payload, {"buffer": job.buffer, "block": b,
                                           "mant": job.mant[b], "exp": job.exp[b]})
                ctx.set(dut.load.valid, 1)
                await ctx.tick().until(dut.load.ready)
                ctx.set(dut.load.valid, 0)
            while ctx.get(dut.settling):
                await ctx.tick()
            if corrupt and j == 0:
                first = job.beats[0]
                index = first["bits"] & ((1 << mu) - 1)
                if index >> (mu - 1):
                    index = ~index & (nent - 1)
                addr = (job.buffer * geometry.tile_depth + first["tile"]) * nent + index
                row = dut.tables[0][addr]
                ctx.set(row, ctx.get(row) ^ (1 << 5))
            loaded[j] = True

    async def pipeline(ctx):
        brng = random.Random(seed + 2)
        queue = []
        n = 0
        ctx.set(dut.beat, garbage_beat(brng, geometry))
        j = 0
        idle_after = 0
        cycle = 0
        while True:
            if not queue and j < jobs and loaded[j]:
                queue = list(job_list[j].beats)
                j += 1
            cycle += 1
            en = int(cycle % 3 != 0) if stall == "periodic" else int(brng.random() >= stall)
            ctx.set(dut.en, en)
            if en:
                beat = ctx.get(dut.beat)
                if beat.valid and beat.flags.plane_last:
                    sent.append(n)
                wide = ctx.get(dut.wide)
                if wide.valid:
                    outputs.append((n, {name: int(getattr(wide.flags, name))
                                        for name in ("row_first", "row_last", "final")},
                                    [(int(t.w), int(t.exp)) for t in wide.terms]))
            await ctx.tick()
            if not en:
                continue
            n += 1
            if queue and brng.random() >= bubble:
                ctx.set(dut.beat, queue.pop(0))
                if not queue:
                    issued[j - 1] = True
            else:
                ctx.set(dut.beat, garbage_beat(brng, geometry))
            if j == jobs and not queue:
                idle_after += 1
                if idle_after > 3 * LutGemm.LATENCY:
                    break
        finished[0] = ctx.get(dut.settling) == 0

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(loader, background=True)
    sim.add_testbench(pipeline)
    sim.run()

    expected = [e for job in job_list for e in job.expected]
    if len(outputs) != len(expected):
        errors.append(f"{len(outputs)} wide outputs, expected {len(expected)}")
    for i, ((cycle, flags, terms), (eflags, ew, eexp)) in enumerate(zip(outputs, expected)):
        if cycle - sent[i] != latency:
            errors.append(f"tile {i}: wide {cycle - sent[i]} enabled cycles after its "
                          f"last plane, expected {latency}")
        want_flags = {name: eflags[name] for name in ("row_first", "row_last", "final")}
        if flags != want_flags:
            errors.append(f"tile {i}: flags {flags}, expected {want_flags}")
        for k, ((w, exp), want_w, want_exp) in enumerate(zip(terms, ew, eexp)):
            if w != want_w:
                errors.append(f"tile {i} block {k}: W = {w}, expected {want_w}")
            if want_exp is not None and exp != want_exp:
                errors.append(f"tile {i} block {k}: exp = {exp}, expected {want_exp}")
    if not finished[0]:
        errors.append("settling still high at the end")
    return errors


CONFIGS = [
    GemvConfig(lanes=8, max_cols=256, lut_width=4),
    GemvConfig(lanes=32, max_cols=512, lut_width=4),
    GemvConfig(lanes=16, max_cols=256, lut_width=8),
    GemvConfig(lanes=32, max_cols=256, lut_width=8),
]


MODES = {"no_stall": (0.0, 0.0, 0.0), "periodic": ("periodic", 0.0, 0.5),
         "random_stall": (0.3, 0.2, 0.4)}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"lanes{c.lanes}-mu{c.lut_width}")
@pytest.mark.parametrize("mode", list(MODES))
def test_lutgemm_matches_definition(config, mode):
    stall, bubble, load_pause = MODES[mode]
    errors = run(config, seed=config.lanes + config.lut_width, jobs=5,
                 stall=stall, bubble=bubble, load_pause=load_pause)
    assert errors == []


@pytest.mark.parametrize("seed", range(4))
def test_lutgemm_buffer_reuse_under_stalls(seed):
    # One-tile jobs with many plane beats, a one-block job in between: the
    # next job of a buffer starts loading while the buffer's last beat waits
    # for its table read (en low).
    shapes = [(1, 3, 4), (1, 1, 1)] * 5 + [(1, 2, 3)]
    assert run(CONFIGS[0], seed=seed, stall=0.7, bubble=0.0, load_pause=0.0,
               shapes=shapes) == []


def test_lutgemm_catches_a_corrupted_table_entry():
    errors = run(CONFIGS[0], seed=5, corrupt=True)
    assert any("W =" in e for e in errors), errors


def test_lutgemm_latency_check_catches_an_off_by_one():
    errors = run(CONFIGS[0], seed=6, latency=LutGemm.LATENCY + 1)
    assert errors and all("enabled cycles" in e for e in errors), errors


def test_lutgemm_latency_and_layouts():
    geometry = EngineGeometry(GemvConfig(lanes=32, max_cols=8192))
    dut = LutGemm(geometry)
    assert LutGemm.LATENCY == 7
    assert len(dut.tables) == 32 and dut.tables[0].depth == 1024
    assert dut.tables[0].shape.width == 18
    assert LutGemm.beat_layout(geometry).size == dut.beat.shape().size


def test_lutgemm_needs_bcq():
    config = GemvConfig(lanes=8, formats=(WeightFormat.Q4_0,))
    with pytest.raises(ValueError, match="BCQ"):
        LutGemm(EngineGeometry(config))
