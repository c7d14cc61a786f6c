"""Unit tests of lpaccel.driver against the functional test double (model.py).

The double computes each job with the golden model from the bytes the driver
put in its memory, so these tests check the memory layouts end to end as
well as the register sequences and the queue bookkeeping.
"""

import numpy as np
import pytest

from lpaccel.alloc import AllocationError
from lpaccel.driver import (
    MAGIC,
    ActTensor,
    Completion,
    Device,
    DeviceError,
    DeviceTimeout,
    JobError,
    pack_activations,
)
from lpaccel.quant import QuantizedWeights, quantize_activations, quantize_weights
from lpaccel.rtl.config import GemvConfig, WeightFormat
from lpaccel.rtl.regmap import DmaError, GemvError, MemoryKind
from lpaccel.rtl.soc.sequencer import act_bytes
from lpaccel.rtl.soc_config import SocConfig
from lpaccel.sim.golden.gemv import gemv_golden
from tests.driver.model import SocModel

FORMATS = [("q4_0", None), ("q4_1", None), ("q8_0", None), ("int4", 64), ("int8", 128),
           ("int4", 32)]


def _soc(lanes=32, max_cols=1024, memory_size=1 << 18, **gemv):
    return SocConfig(gemv=GemvConfig(lanes=lanes, max_cols=max_cols, **gemv),
                     memory_size=memory_size)


def _device(soc=None, **kwargs):
    model = SocModel(soc or _soc(), **kwargs)
    return Device(model), model


def _weights(fmt, rows, cols, group=None, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.05, (rows, cols)).astype(np.float32)
    x = rng.normal(0, 1, cols).astype(np.float32)
    return quantize_weights(w, fmt, group), x


def _bcq(planes, group, offset, rows, cols, seed=0, **kwargs):
    """Random BCQ weights from random fields (the quantizer is tested elsewhere)."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, (planes, rows, cols)).astype(np.uint8)
    alpha = np.abs(rng.normal(0, 0.02, (planes, rows, cols // group))).astype(np.float16)
    off = rng.normal(0, 0.01, (rows, cols // group)).astype(np.float16) if offset else None
    x = rng.normal(0, 1, cols).astype(np.float32)
    return QuantizedWeights.from_bcq(bits, alpha, group, off, **kwargs), x


#: F16 and BCQ cases: (format, group, planes, offset).
WIDE = [("f16", None, 0, False), ("bcq", 32, 1, False), ("bcq", 64, 2, True),
        ("bcq", 128, 3, False), ("bcq", 32, 4, True)]


def _wide(fmt, group, planes, offset, rows, cols, seed=0):
    if fmt == "f16":
        return _weights("f16", rows, cols, seed=seed)
    return _bcq(planes, group, offset, rows, cols, seed)


def _bits(y):
    return np.asarray(y, dtype=np.float32).view(np.uint32)


# --- identification ---------------------------------------------------------------------

def test_info_from_capabilities():
    soc = SocConfig(gemv=GemvConfig(lanes=16, max_cols=2048, max_rows=300,
                                    formats=("q4_0", "q8_0")),
                    memory_size=1 << 20, job_depth=4)
    dev, _ = _device(soc)
    i = dev.info
    assert i.lanes == 16 and i.word_bits == 64 and i.word_bytes == 8
    assert i.max_rows == 300 and i.max_cols == 2048
    assert i.formats == (WeightFormat.Q4_0, WeightFormat.Q8_0)
    assert i.memory == MemoryKind.BRAM and i.memory_size == 1 << 20
    assert i.job_depth == 4
    assert dev.config == soc.gemv
    assert dev.heap.size == 1 << 20


def test_wrong_magic_and_version():
    model = SocModel(_soc())
    model.store["SCRATCH"] = 0
    real_read = model._read

    def broken(value, name_wanted):
        return lambda name: value if name == name_wanted else real_read(name)

    model._read = broken(0xDEADBEEF, "MAGIC")
    with pytest.raises(DeviceError, match=r"MAGIC reads 0xdeadbeef.*check the link"):
        Device(model)
    model._read = broken(7 << 16, "VERSION")
    with pytest.raises(DeviceError, match=r"version 7\.0.*major version 0"):
        Device(model)
    model._read = real_read
    assert Device(model).regs.read("MAGIC") == MAGIC


# --- memory layouts -----------------------------------------------------------------------

@pytest.mark.parametrize("cols", [32, 64, 2048, 4096, 4128])
def test_activation_layout(cols):
    rng = np.random.default_rng(cols)
    x = rng.normal(0, 3, cols).astype(np.float32)
    mant, exp = quantize_activations(x)
    data = pack_activations(mant, exp)
    nb = cols // 32
    hdr = -(-nb // 64) * 64
    assert len(data) == hdr + 2 * cols == act_bytes(cols)
    raw = np.frombuffer(data, dtype=np.uint8)
    assert np.array_equal(raw[:nb].view(np.int8), exp)
    assert not raw[nb:hdr].any()
    assert np.array_equal(raw[hdr:].view("<i2"), mant)


@pytest.mark.parametrize(("fmt", "group"), FORMATS)
@pytest.mark.parametrize("lanes", [16, 32, 64])
def test_gemv_bit_exact(fmt, group, lanes):
    dev, model = _device(_soc(lanes=lanes))
    w, x = _weights(fmt, 7, 256, group, seed=lanes)
    y = dev.gemv(w, x)
    assert y.dtype == np.float32 and y.shape == (7,)
    assert np.array_equal(_bits(y), _bits(gemv_golden(w, x)))
    # Everything placed for the call was freed again.
    assert dev.heap.allocations() == {}
    assert dev.outstanding == []


@pytest.mark.parametrize(("fmt", "group", "planes", "offset"), WIDE)
@pytest.mark.parametrize("lanes", [8, 32, 64])
def test_gemv_bit_exact_f16_bcq(fmt, group, planes, offset, lanes):
    dev, model = _device(_soc(lanes=lanes))
    w, x = _wide(fmt, group, planes, offset, 5, 352 if fmt == "f16" or group == 32 else 384,
                 seed=lanes)
    assert (w.planes, w.offset) == (planes, offset)
    y = dev.gemv(w, x)
    assert np.array_equal(_bits(y), _bits(gemv_golden(w, x)))
    # JOB_FORMAT carries CODE[3:0], PLANES[6:4] and OFFSET[8].
    assert model.store["JOB_FORMAT"] == int(w.fmt) | planes << 4 | int(offset) << 8
    assert model.store["JOB_GROUP"] == (group or 32)
    wt = dev.put_weights(w)
    assert (wt.planes, wt.offset) == (planes, offset)
    assert wt.nbytes == dev.weight_layout(w).bytes
    dev.free(wt)


def test_chain_mixes_f16_bcq_and_int_formats():
    dev, model = _device(_soc(memory_size=1 << 20))
    x = np.random.default_rng(6).normal(0, 1, 256).astype(np.float32)
    jobs = [(_wide(*case, 3 + i, 256, seed=i)[0], x) for i, case in enumerate(WIDE * 2)]
    jobs.insert(3, (_weights("q4_0", 4, 256)[0], x))
    ys = dev.run_chain(jobs)
    for (w, _), y in zip(jobs, ys):
        assert np.array_equal(_bits(y), _bits(gemv_golden(w, x)))
    assert dev.counters()["jobs_done"] == len(jobs)


def test_non_finite_wide_weights_are_rejected_before_any_write():
    dev, model = _device()
    w, _ = _bcq(2, 32, True, 2, 64)
    alpha = w.alpha_bits.copy()
    alpha[1, 0, 1] = 0x7C00
    bad = QuantizedWeights.from_bcq(w.plane_bits, alpha, 32, w.offset_bits,
                                    allow_nonfinite=True)
    with pytest.raises(ValueError, match=r"plane scale\[1, 0, 1\] is inf or NaN.*requantize"):
        dev.put_weights(bad, "wq")
    f16 = np.zeros((2, 32), np.uint16)
    f16[1, 3] = 0xFE00
    with pytest.raises(ValueError, match=r"F16\): weight\[1, 3\] is inf or NaN"):
        dev.put_weights(QuantizedWeights.from_f16(f16, allow_nonfinite=True))
    assert _no_device_writes(model)


def test_wide_formats_not_built_in():
    dev, model = _device(_soc(formats=("q4_0", "f16")))
    w, x = _bcq(1, 32, False, 2, 64)
    with pytest.raises(ValueError, match="format BCQ is not compiled into this engine"):
        dev.gemv(w, x)
    assert _no_device_writes(model)
    w, x = _weights("f16", 2, 64)
    assert np.array_equal(_bits(dev.gemv(w, x)), _bits(gemv_golden(w, x)))


def test_placement_is_word_aligned_and_preloaded():
    dev, model = _device(_soc(lanes=64))       # 256-bit words
    w, x = _weights("q4_0", 3, 96)
    a = dev.put_activations(x)
    wt = dev.put_weights(w)
    r = dev.alloc_results(3)
    word = dev.info.word_bytes
    assert word == 32
    assert a.addr % word == 0 and wt.addr % word == 0 and r.addr % word == 0
    assert a.nbytes == act_bytes(96)
    assert wt.nbytes == dev.weight_layout(w).bytes
    assert model.preloads == [(a.addr, a.nbytes), (wt.addr, wt.nbytes)]
    # Preloads do not go through the register port.
    assert all(name.startswith(("MAGIC", "VERSION", "CAP_", "BUILD_HASH"))
               for _, name, _, _ in model.log)


def test_put_activations_takes_quantized_pair():
    dev, model = _device()
    w, x = _weights("q8_0", 4, 128)
    mant, exp = quantize_activations(x)
    act = dev.put_activations((mant, exp))
    r = dev.alloc_results(4)
    wt = dev.put_weights(w)
    dev.wait(dev.submit(wt, act, r))
    assert np.array_equal(dev.read_results_bits(r), _bits(gemv_golden(w, x)))


# --- the job queue ------------------------------------------------------------------------

def test_job_register_sequence_and_caching():
    dev, model = _device()
    w, x = _weights("q4_0", 8, 128)
    wt, act, r = dev.put_weights(w), dev.put_activations(x), dev.alloc_results(8)
    r2 = dev.alloc_results(8)
    model.log.clear()
    t0 = dev.submit(wt, act, r)
    writes = [name for kind, name, _, _ in model.log if kind == "w"]
    assert writes[-1] == "JOB_PUSH"
    assert set(writes[:-1]) == {"JOB_WEIGHT_ADDR", "JOB_ACT_ADDR", "JOB_RESULT_ADDR",
                                "JOB_ROWS", "JOB_COLS", "JOB_FORMAT", "JOB_GROUP",
                                "JOB_TAG", "JOB_FLAGS"}
    reads = [name for kind, name, _, _ in model.log if kind == "r"]
    assert reads == ["JOB_LEVELS"]      # FREE checked before anything is written
    model.log.clear()
    t1 = dev.submit(wt, act, r2)
    writes = [(name, word) for kind, name, word, _ in model.log if kind == "w"]
    # Only what changed: the result address (two words), the tag, the push.
    assert writes == [("JOB_RESULT_ADDR", 0), ("JOB_RESULT_ADDR", 1), ("JOB_TAG", 0),
                      ("JOB_PUSH", 0)]
    assert [c.tag for c in dev.wait([t1, t0])] == [t1, t0]
    expect = _bits(gemv_golden(w, x))
    assert np.array_equal(dev.read_results_bits(r), expect)
    assert np.array_equal(dev.read_results_bits(r2), expect)


def test_chain_longer_than_the_queue_and_shared_activations():
    soc = SocConfig(gemv=GemvConfig(lanes=32, max_cols=512), memory_size=1 << 20, job_depth=4)
    dev, model = _device(soc)
    x = np.random.default_rng(5).normal(0, 1, 256).astype(np.float32)
    jobs = []
    for i, (fmt, group) in enumerate(FORMATS * 2):
        w, _ = _weights(fmt, 5 + i, 256, group, seed=i)
        jobs.append((w, x))
    ys = dev.run_chain(jobs)
    assert len(ys) == len(jobs) > soc.job_depth
    for (w, _), y in zip(jobs, ys):
        assert np.array_equal(_bits(y), _bits(gemv_golden(w, x)))
    # One activation vector for the whole chain, one weight stream per job.
    assert len(model.preloads) == 1 + len(jobs)
    assert model.error["OVERFLOW"] == 0
    assert dev.heap.allocations() == {} and dev.outstanding == []
    assert dev.counters()["jobs_done"] == len(jobs)


def test_wait_returns_in_requested_order_and_keeps_the_rest():
    dev, _ = _device()
    w, x = _weights("q8_0", 2, 64)
    wt, act = dev.put_weights(w), dev.put_activations(x)
    rs = [dev.alloc_results(2) for _ in range(3)]
    tags = [dev.submit(wt, act, r) for r in rs]
    assert dev.wait(tags[2]).tag == tags[2]     # pops the two before it too
    assert dev.outstanding == []
    got = dev.wait([tags[1], tags[0]])
    assert [c.tag for c in got] == [tags[1], tags[0]] and all(c.ok for c in got)
    with pytest.raises(ValueError, match="is not outstanding"):
        dev.wait(tags[0])


def test_tags_wrap_at_16_bits():
    dev, _ = _device()
    w, x = _weights("q4_0", 1, 32)
    wt, act, r = dev.put_weights(w), dev.put_activations(x), dev.alloc_results(1)
    dev._next_tag = 0xFFFF
    tags = [dev.submit(wt, act, r), dev.submit(wt, act, r)]
    assert tags == [0xFFFF, 0]
    assert [c.tag for c in dev.wait(tags)] == tags


def test_full_queue_of_foreign_jobs_is_an_error():
    soc = SocConfig(gemv=GemvConfig(lanes=32, max_cols=512), memory_size=1 << 18, job_depth=2)
    dev, model = _device(soc)
    w, x = _weights("q4_0", 1, 32)
    wt, act, r = dev.put_weights(w), dev.put_activations(x), dev.alloc_results(1)
    dev.submit(wt, act, r)
    dev.submit(wt, act, r)
    dev._outstanding.clear()        # as if another program had pushed them
    with pytest.raises(DeviceError, match="job queue is full.*soft_reset"):
        dev.submit(wt, act, r)


def test_completion_out_of_order_is_detected():
    dev, model = _device()
    model.swap_completions = True
    w, x = _weights("q4_0", 1, 32)
    wt, act, r = dev.put_weights(w), dev.put_activations(x), dev.alloc_results(1)
    tags = [dev.submit(wt, act, r) for _ in range(2)]
    with pytest.raises(DeviceError, match="must come in push order"):
        dev.wait(tags)


def test_timeout():
    dev, model = _device()
    model.stuck = True
    w, x = _weights("q4_0", 1, 32)
    tag = dev.submit(dev.put_weights(w), dev.put_activations(x), dev.alloc_results(1))
    with pytest.raises(DeviceTimeout, match=rf"jobs \[{tag}\] did not complete.*abort\(\)"):
        dev.wait(tag, timeout_cycles=1000)


# --- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "code"), [
    ({"fmt": 7}, GemvError.BAD_FORMAT),
    ({"cols": 48}, GemvError.BAD_COLS),
    ({"cols": 2048}, GemvError.COLS_TOO_LARGE),
    ({"rows": 0}, GemvError.BAD_ROWS),
    ({"fmt": int(WeightFormat.INT4), "group": 48}, GemvError.BAD_GROUP),
    ({"weight_addr": (1 << 18) - 16}, GemvError.BAD_ADDRESS),
    ({"act_addr": 8}, GemvError.MISALIGNED),
    # BCQ needs 1 to 4 planes, the others none; checked after format and group,
    # before the columns.
    ({"fmt": int(WeightFormat.BCQ)}, GemvError.BAD_PLANES),
    ({"fmt": int(WeightFormat.BCQ), "planes": 5}, GemvError.BAD_PLANES),
    ({"planes": 1}, GemvError.BAD_PLANES),
    ({"fmt": int(WeightFormat.F16), "planes": 2, "offset": True}, GemvError.BAD_PLANES),
    ({"fmt": int(WeightFormat.BCQ), "group": 48}, GemvError.BAD_GROUP),
    ({"fmt": int(WeightFormat.BCQ), "cols": 48}, GemvError.BAD_PLANES),
    ({"fmt": int(WeightFormat.BCQ), "planes": 2, "cols": 48}, GemvError.BAD_COLS),
    ({"fmt": 8, "planes": 7}, GemvError.BAD_FORMAT),
])
def test_bad_job_error_codes_then_good_job(change, code):
    dev, _ = _device()
    w, x = _weights("q4_0", 4, 64)
    wt, act, r = dev.put_weights(w), dev.put_activations(x), dev.alloc_results(4)
    job = {"fmt": int(w.fmt), "rows": 4, "cols": 64, "group": 32, "weight_addr": wt.addr,
           "act_addr": act.addr, "result_addr": r.addr} | change
    tag = dev.push_raw(**job)
    with pytest.raises(JobError) as info:
        dev.wait(tag)
    assert info.value.completions == [Completion(tag, code, DmaError.OK)]
    # The message is the register map's text for the code.
    assert f"{code.name} ({int(code)}): {code.desc}" in str(info.value)
    assert dev.errors()["gemv"] == code
    dev.clear_errors()
    assert dev.errors() == {"gemv": GemvError.NONE, "dma": DmaError.OK, "overflow": False}
    # The queue goes on.
    assert np.array_equal(_bits(dev.gemv(w, x)), _bits(gemv_golden(w, x)))


def test_dma_error_names_both_codes():
    dev, model = _device()
    w, x = _weights("q8_0", 4, 64)
    wt = dev.put_weights(w)
    model.slverr.append((wt.addr, wt.addr + 1))
    with pytest.raises(JobError) as info:
        dev.gemv(wt, x)
    text = str(info.value)
    assert "DMA_READ (8)" in text and "DMA: SLVERR (2)" in text
    (c,) = info.value.completions
    assert c.error == GemvError.DMA_READ and c.dma == DmaError.SLVERR and not c.ok
    assert "ok" in Completion(3).describe() and Completion(3).ok


def test_wait_without_check_returns_failures():
    dev, _ = _device()
    w, x = _weights("q4_0", 4, 64)
    wt, act, r = dev.put_weights(w), dev.put_activations(x), dev.alloc_results(4)
    bad = dev.push_raw(fmt=int(w.fmt), rows=4, cols=64, group=32, weight_addr=wt.addr,
                       act_addr=act.addr + 4, result_addr=r.addr)
    good = dev.submit(wt, act, r)
    got = dev.wait([bad, good], check=False)
    assert [c.error for c in got] == [GemvError.MISALIGNED, GemvError.NONE]


# --- input checks before anything is written -------------------------------------------------

def _no_device_writes(model):
    return not any(kind == "w" for kind, *_ in model.log) and not model.preloads


@pytest.mark.parametrize(("soc_kw", "weights", "match"), [
    ({"max_rows": 16}, ("q4_0", 17, 64, None), r"rows = 17: must be from 1 to 16"),
    ({"max_cols": 512}, ("q4_0", 4, 544, None), r"cols = 544.*split the GEMV along K"),
    ({"formats": ("q4_0",)}, ("q8_0", 4, 64, None),
     r"format Q8_0 is not compiled into this engine"),
])
def test_shapes_the_device_cannot_take(soc_kw, weights, match):
    soc_kw = {"max_cols": 1024} | soc_kw
    dev, model = _device(SocConfig(gemv=GemvConfig(lanes=32, **soc_kw), memory_size=1 << 18))
    fmt, rows, cols, group = weights
    w, x = _weights(fmt, rows, cols, group)
    model.log.clear()
    with pytest.raises(ValueError, match=match) as info:
        dev.gemv(w, x)
    assert "CAP_MAX_ROWS" in str(info.value)        # names what the device reports
    assert _no_device_writes(model)


def test_bad_vectors_and_mismatched_tensors():
    dev, model = _device(_soc(max_cols=512))
    model.log.clear()
    w, x = _weights("q4_0", 4, 64)
    with pytest.raises(ValueError, match="the vector has 96 elements but the weights have 64"):
        dev.gemv(w, np.zeros(96, np.float32))
    with pytest.raises(ValueError, match="CAP_MAX_COLS = 512"):
        dev.put_activations(np.zeros(544, np.float32))
    with pytest.raises(ValueError, match="multiple of 32"):
        dev.put_activations(np.zeros(40, np.float32))
    with pytest.raises(ValueError, match="rows = 0"):
        dev.alloc_results(0)
    assert _no_device_writes(model)
    wt, act = dev.put_weights(w), dev.put_activations(np.zeros(128, np.float32))
    with pytest.raises(ValueError, match="act has 128 elements"):
        dev.submit(wt, act, dev.alloc_results(4))
    with pytest.raises(ValueError, match="result holds 2 rows"):
        dev.submit(wt, dev.put_activations(x), dev.alloc_results(2))
    with pytest.raises(ValueError, match="pass the ActTensor"):
        dev.submit(wt, x, dev.alloc_results(4))
    assert dev.outstanding == []
    assert isinstance(act, ActTensor)


def test_out_of_device_memory():
    dev, _ = _device(_soc(memory_size=4096))
    w, _ = _weights("q8_0", 64, 256)
    with pytest.raises(AllocationError, match=r"weights: cannot allocate \d+ bytes.*4096 bytes"):
        dev.put_weights(w)


# --- control and counters ---------------------------------------------------------------------

def test_abort_completes_everything_aborted():
    dev, model = _device()
    w, x = _weights("q4_0", 16, 256)
    wt, act = dev.put_weights(w), dev.put_activations(x)
    tags = [dev.submit(wt, act, dev.alloc_results(16)) for _ in range(3)]
    dev.transport.wait_cycles(1)        # the first job starts
    done = dev.abort()
    assert [c.tag for c in done] == tags
    assert all(c.error == GemvError.ABORTED for c in done)
    assert dev.outstanding == []
    assert np.array_equal(_bits(dev.gemv(wt, x)), _bits(gemv_golden(w, x)))


def test_soft_reset_forgets_jobs_and_register_cache():
    dev, model = _device()
    w, x = _weights("q4_0", 4, 64)
    wt, act, r = dev.put_weights(w), dev.put_activations(x), dev.alloc_results(4)
    dev.submit(wt, act, r)
    dev.submit(wt, act, r)
    dev.soft_reset()
    assert dev.outstanding == [] and not model.done and not model.queue
    model.log.clear()
    dev.wait(dev.submit(wt, act, r))
    # Every JOB_* register is written again after a reset.
    assert {n for k, n, _, _ in model.log if k == "w"} >= {"JOB_WEIGHT_ADDR", "JOB_ROWS"}


def test_counters_name_every_perf_register():
    dev, model = _device()
    c = dev.counters()
    want = {r.name[5:].lower() for r in dev.regs.map
            if r.name.startswith("PERF_") and r.name != "PERF_CONTROL"}
    assert set(c) == want and "busy_cycles" in c and "dram_refresh" in c
    w, x = _weights("q8_0", 8, 256)
    dev.gemv(w, x)
    c = dev.counters()
    assert c["jobs_done"] == 1
    assert c["weight_bytes"] == dev.weight_layout(w).bytes
    assert c["busy_cycles"] > 0
    dev.clear_counters()
    assert not any(dev.counters().values())


def test_transport_type_is_checked():
    with pytest.raises(TypeError, match="lpaccel.driver.Transport"):
        Device(object())
