"""``lpaccel selftest``: is this device whole? Identification, registers, memory, GEMV.

Written against :class:`lpaccel.driver.Device` and its transport only, so
the same steps run over any transport: a serial port (``--port``, a board or
``lpaccel serve-sim``) or, without ``--port``, the simulated SoC in process
(:func:`lpaccel.cli.serve.run_in_process`). Steps:

1. ``identify``: ``MAGIC``, ``VERSION`` (the driver refuses another major
   version), ``CAP_*`` (formats, engine, memory, queue depth) read and
   checked for sense.
2. ``registers``: the read-only identification registers read twice the
   same; every RW job register (and ``SCRATCH``, ``WATCHDOG``,
   ``IRQ_ENABLE``) written with four patterns over its writable bits, read
   back, and restored; a write to the read-only ``MAGIC`` and a read of an
   address no register occupies must each be answered with an error and
   change nothing.
3. ``memory``: over all of ``CAP_MEM_SIZE``: an address-line test (a unique
   word at 0 and at every power-of-two offset, all written before any is
   read back, so a stuck or shorted address line shows up as a word
   overwritten by another), a data-line test (walking ones and zeros) and a
   pseudo-random block crossing a 4 KiB boundary.
4. ``gemv <format>``: one small GEMV per format the device has
   (``CAP_FORMATS``), checked bit for bit against the golden model.

The memory test overwrites device memory: run it on a device that holds
nothing you need.
"""

import numpy as np

from lpaccel.driver import Device

__all__ = ["run_selftest", "selftest_text", "GEMV_ROWS", "GEMV_COLS"]

#: Shape of the per-format GEMV: one row per lane of the default engine, eight
#: 32-element blocks a row (small, so that it moves quickly over a slow link).
GEMV_ROWS = 32
GEMV_COLS = 256

#: Group of the INT4/INT8 GEMVs.
GEMV_GROUP = 128

#: Bytes of the pseudo-random memory block (at most a quarter of the memory).
RANDOM_BLOCK_BYTES = 4096

#: Polling budget of one selftest GEMV (cycles).
GEMV_TIMEOUT_CYCLES = 2_000_000

#: Read-only identification registers.
ID_REGISTERS = ("MAGIC", "VERSION", "BUILD_HASH", "CAP_FORMATS", "CAP_ENGINE",
                "CAP_MAX_ROWS", "CAP_MAX_COLS", "CAP_MEMORY", "CAP_DMA", "CAP_MEM_SIZE",
                "CAP_JOBS")

#: Read-write registers of the walk (none of them starts anything).
RW_REGISTERS = ("SCRATCH", "IRQ_ENABLE", "WATCHDOG", "JOB_WEIGHT_ADDR", "JOB_ACT_ADDR",
                "JOB_RESULT_ADDR", "JOB_ROWS", "JOB_COLS", "JOB_FORMAT", "JOB_GROUP",
                "JOB_TAG", "JOB_FLAGS")

#: Patterns of the register walk (masked to each register's writable bits).
PATTERNS = (0xFFFF_FFFF_FFFF_FFFF, 0x5555_5555_5555_5555, 0xAAAA_AAAA_AAAA_AAAA, 0)


def _step(name, ok, detail, **data):
    return {"step": name, "ok": bool(ok), "detail": detail, **data}


def _identify(dev):
    i = dev.info
    problems = []
    if not i.formats:
        problems.append("CAP_FORMATS is 0 (no weight format)")
    if i.memory_size <= 0 or i.memory_size & (i.memory_size - 1):
        problems.append(f"CAP_MEM_SIZE {i.memory_size} is not a power of two")
    if i.lanes <= 0 or i.word_bits <= 0 or i.word_bits % 8:
        problems.append(f"CAP_ENGINE lanes {i.lanes}, word bits {i.word_bits}")
    if i.job_depth <= 0:
        problems.append("CAP_JOBS.DEPTH is 0")
    memory = getattr(i.memory, "name", str(i.memory)).lower()
    detail = (f"LPAC register map {i.version[0]}.{i.version[1]}, build {i.build_hash:#010x}; "
              f"{i.lanes} lanes, {i.word_bits}-bit words, formats "
              f"{', '.join(f.name for f in i.formats)}; memory {memory} {i.memory_size} "
              f"bytes; max {i.max_rows} x {i.max_cols}; {i.job_depth} queued jobs")
    if problems:
        detail = "; ".join(problems) + " -- " + detail
    return _step("identify", not problems, detail,
                 info={"version": list(i.version), "build_hash": i.build_hash,
                       "formats": [f.name.lower() for f in i.formats], "lanes": i.lanes,
                       "word_bits": i.word_bits, "max_rows": i.max_rows,
                       "max_cols": i.max_cols, "memory": memory,
                       "memory_size": i.memory_size, "job_depth": i.job_depth})


def _unmapped_address(regmap):
    """The first word address below the map's size that no register occupies."""
    used = set()
    for reg in regmap:
        used.update(range(reg.address, reg.address + reg.width // 8, 4))
    for addr in range(0, regmap.size, 4):
        if addr not in used:
            return addr
    return regmap.size


def _expect_error(what, access):
    """Run ``access``; return None if it was refused (as it must be), else a complaint."""
    from lpaccel.link import LinkError
    try:
        value = access()
    except LinkError as error:
        # No answer at all is not a refusal: the link failed.
        return f"{what} got no answer: {error}"
    except Exception:       # noqa: BLE001 - any error answer is the expected outcome
        return None
    return f"{what} was answered without an error{'' if value is None else f' ({value:#x})'}"


def _registers(dev):
    regs, transport = dev.regs, dev.transport
    problems = []
    first = {name: regs.read(name) for name in ID_REGISTERS}
    for name in ID_REGISTERS:
        again = regs.read(name)
        if again != first[name]:
            problems.append(f"{name} read {first[name]:#x} then {again:#x}")
    checked = 0
    for name in RW_REGISTERS:
        reg = regs.map[name]
        mask = sum(f.mask for f in reg.fields if f.access == "RW")
        saved = regs.read(name)
        for pattern in PATTERNS:
            value = pattern & mask
            regs.write(name, value)
            got = regs.read(name) & mask
            checked += 1
            if got != value:
                problems.append(f"{name}: wrote {value:#x}, read {got:#x}")
        regs.write(name, saved)
        if regs.read(name) != saved:
            problems.append(f"{name}: not restored to {saved:#x}")
    magic_addr = regs.address("MAGIC")
    unmapped = _unmapped_address(regs.map)
    for complaint in (
            _expect_error(f"a write to the read-only MAGIC ({magic_addr:#x})",
                          lambda: transport.write32(magic_addr, 0)),
            _expect_error(f"a read of the unmapped address {unmapped:#x}",
                          lambda: transport.read32(unmapped))):
        if complaint:
            problems.append(complaint)
    if regs.read("MAGIC") != first["MAGIC"]:
        problems.append("MAGIC changed after the refused write")
    detail = (f"{len(ID_REGISTERS)} id registers stable, {len(RW_REGISTERS)} RW registers x "
              f"{len(PATTERNS)} patterns read back and restored, a write to MAGIC and a read "
              f"of {unmapped:#x} refused")
    return _step("registers", not problems, "; ".join(problems) if problems else detail,
                 checked=checked)


def _word(data, offset):
    return int.from_bytes(data[offset:offset + 4], "little")


def _memory(dev, seed):
    size = dev.info.memory_size
    t = dev.transport
    problems = []
    # Address lines: word 0 and every power-of-two byte offset from 4 on.
    offsets = [0] + [1 << k for k in range(2, size.bit_length() - 1)]
    marks = {off: 0xA5C3_0000 | k for k, off in enumerate(offsets)}
    for off, mark in marks.items():
        t.write_mem(off, mark.to_bytes(4, "little"))
    for off, mark in marks.items():
        got = _word(bytes(t.read_mem(off, 4)), 0)
        if got != mark:
            problems.append(f"address line: word at {off:#x} reads {got:#010x}, wrote "
                            f"{mark:#010x}")
    # Data lines: walking ones then walking zeros, 64 words from the middle.
    base = size // 2
    walk = [1 << b for b in range(32)] + [~(1 << b) & 0xFFFF_FFFF for b in range(32)]
    t.write_mem(base, b"".join(w.to_bytes(4, "little") for w in walk))
    data = bytes(t.read_mem(base, 4 * len(walk)))
    bad = [(k, w, _word(data, 4 * k)) for k, w in enumerate(walk) if _word(data, 4 * k) != w]
    if bad:
        k, w, got = bad[0]
        problems.append(f"data lines: {len(bad)} of {len(walk)} words differ, first at "
                        f"{base + 4 * k:#x}: wrote {w:#010x}, read {got:#010x}")
    # A pseudo-random block that crosses a 4 KiB boundary when the memory has one.
    n = min(RANDOM_BLOCK_BYTES, size // 4)
    start = max(0, min(size - n, (size * 3 // 4) - n // 2)) // 4 * 4
    block = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    t.write_mem(start, block)
    back = bytes(t.read_mem(start, n))
    if back != block:
        diff = np.flatnonzero(np.frombuffer(back, np.uint8) != np.frombuffer(block, np.uint8))
        problems.append(f"random block: {diff.size} of {n} bytes differ, first at "
                        f"{start + int(diff[0]):#x}")
    detail = (f"{size} bytes: {len(offsets)} address-line words, 64 data-line words, "
              f"{n} random bytes at {start:#x}")
    return _step("memory", not problems, "; ".join(problems) if problems else detail,
                 address_words=len(offsets), random_bytes=n)


def _gemv(dev, fmt, seed):
    from lpaccel.cli.gemv import make_case
    name = f"gemv {fmt.name.lower()}"
    group = GEMV_GROUP if fmt.grouped else None
    rows = min(GEMV_ROWS, dev.info.max_rows)
    case = make_case(fmt.name.lower(), rows, GEMV_COLS, group=group, seed=seed)
    dev.clear_counters()
    y = dev.gemv(case.weights, case.x, timeout_cycles=GEMV_TIMEOUT_CYCLES)
    counters = dev.counters()
    got = np.asarray(y, dtype=np.float32).view(np.uint32)
    want = case.expected.view(np.uint32)
    mismatches = int(np.count_nonzero(got != want))
    cycles = counters.get("busy_cycles", 0)
    shape = f"{rows} x {GEMV_COLS}" + (f" group {group}" if group else "")
    verdict = ("bit-exact vs golden" if not mismatches else
               f"{mismatches} of {rows} rows differ from golden")
    detail = (f"{shape}: {verdict}, {cycles} cycles, {counters.get('weight_bytes', 0)} "
              f"weight bytes")
    return _step(name, mismatches == 0, detail, format=fmt.name.lower(), rows=rows,
                 cols=GEMV_COLS, mismatches=mismatches, cycles=cycles)


def run_selftest(transport, seed=0, skip_memory=False):
    """Run every step on the device behind ``transport``.

    Blocking host code: call it directly with a serial transport, or through
    :func:`lpaccel.cli.serve.run_in_process` on the simulated SoC.

    Parameters
    ----------
    transport : lpaccel.driver.Transport
    seed : int
        Seed of the random memory block and the GEMV data.
    skip_memory : bool
        Leave the memory test out.

    Returns
    -------
    list of dict
        One per step: ``step``, ``ok``, ``detail`` (and step data). A step
        that raises fails with the error's text; after a failed
        identification the other steps are not run.
    """
    try:
        dev = Device(transport)
    except Exception as error:      # noqa: BLE001 - reported as the step's failure
        return [_step("identify", False, f"{type(error).__name__}: {error}")]
    steps = [_identify(dev)]
    plan = [("registers", lambda: _registers(dev))]
    if not skip_memory:
        plan.append(("memory", lambda: _memory(dev, seed)))
    for fmt in dev.info.formats:
        # A fresh Device per GEMV: the register walk changed JOB_* behind the driver's back.
        plan.append((f"gemv {fmt.name.lower()}",
                     lambda fmt=fmt: _gemv(Device(transport), fmt, seed)))
    for name, run in plan:
        try:
            steps.append(run())
        except Exception as error:  # noqa: BLE001 - reported as the step's failure
            steps.append(_step(name, False, f"{type(error).__name__}: {error}"))
    return steps


def selftest_text(steps):
    """One ``PASS``/``FAIL`` line per step, then the verdict."""
    width = max(len(s["step"]) for s in steps)
    lines = [f"  {s['step']:{width}s}  {'PASS' if s['ok'] else 'FAIL'}  {s['detail']}"
             for s in steps]
    ok = all(s["ok"] for s in steps)
    lines.append(f"selftest: {'PASS' if ok else 'FAIL'} ({sum(s['ok'] for s in steps)} of "
                 f"{len(steps)} steps passed)")
    return "\n".join(lines)


def main(args, transport=None):
    """``lpaccel [--port DEV] selftest [--memory M] [--seed S] [--json]``; return the exit code.

    ``transport``: the open link when ``--port`` was given; else the steps run
    in process on the simulated SoC.
    """
    import json

    if transport is not None:
        steps = run_selftest(transport, seed=args.seed, skip_memory=args.skip_memory)
        where = f"on {args.port}"
    else:
        from lpaccel.cli.serve import run_in_process
        from lpaccel.rtl.soc_config import SocConfig
        config = SocConfig(memory=args.memory)
        report = run_in_process("lpaccel.cli.selftest:run_selftest",
                                {"seed": args.seed, "skip_memory": args.skip_memory},
                                config, seed=args.seed)
        steps = report["result"]
        if report["idle_error"]:
            steps.append(_step("idle at the end", False, report["idle_error"]))
        where = f"on the simulated SoC ({args.memory} memory, in process)"
    ok = all(s["ok"] for s in steps)
    if args.json:
        print(json.dumps({"ok": ok, "steps": steps}))
    else:
        print(f"lpaccel selftest {where}")
        print(selftest_text(steps))
    return 0 if ok else 1
