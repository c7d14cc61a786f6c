"""Unit tests of lpaccel.alloc.Allocator: first fit, alignment, coalescing, errors."""

import random

import pytest

from lpaccel.alloc import AllocationError, Allocator


def test_first_fit_and_alignment():
    heap = Allocator(1024)
    a = heap.alloc(10)
    assert a == 0
    b = heap.alloc(16, align=16)
    assert b == 16                      # bytes 10..15 stay free
    assert heap.extents() == [(10, 16), (32, 1024)]
    c = heap.alloc(6)
    assert c == 10                      # first fit takes the gap
    assert heap.extents() == [(32, 1024)]
    assert heap.used_bytes == 32 and heap.free_bytes == 1024 - 32


def test_free_coalesces_both_sides():
    heap = Allocator(300)
    a, b, c = (heap.alloc(100) for _ in range(3))
    assert heap.extents() == []
    heap.free(a)
    heap.free(c)
    assert heap.extents() == [(0, 100), (200, 300)]
    heap.free(b)
    assert heap.extents() == [(0, 300)]
    assert heap.allocations() == {}


def test_base_offset():
    heap = Allocator(256, base=0x1000)
    assert heap.alloc(64, align=128) == 0x1000
    assert heap.alloc(64, align=128) == 0x1080


def test_out_of_memory_message_names_request_space_and_fix():
    heap = Allocator(1024)
    heap.alloc(600)
    with pytest.raises(AllocationError) as info:
        heap.alloc(500, align=16, name="weights blk.0.ffn_up")
    text = str(info.value)
    assert "weights blk.0.ffn_up" in text
    assert "500 bytes aligned to 16" in text
    assert "largest free extent is 424 bytes" in text
    assert "free tensors" in text and "memory_size" in text


def test_alignment_can_make_a_request_not_fit():
    heap = Allocator(64)
    heap.alloc(1)
    with pytest.raises(AllocationError):
        heap.alloc(40, align=32)        # 63 bytes free, but only 32 from an aligned start
    assert heap.alloc(32, align=32) == 32


def test_double_free_and_unknown_addresses():
    heap = Allocator(1024)
    a = heap.alloc(100)
    heap.free(a)
    with pytest.raises(AllocationError, match="already freed, or never allocated"):
        heap.free(a)
    b = heap.alloc(100)
    with pytest.raises(AllocationError, match="inside the allocation at 0x0"):
        heap.free(b + 4)
    with pytest.raises(AllocationError, match="outside the managed range"):
        heap.free(4096)
    with pytest.raises(AllocationError, match="integer address"):
        heap.free("0")
    with pytest.raises(AllocationError):
        heap.size_of(12)
    assert heap.size_of(b) == 100


@pytest.mark.parametrize("kwargs", [{"nbytes": 0}, {"nbytes": -3}, {"nbytes": 1.5},
                                    {"nbytes": 8, "align": 3}, {"nbytes": 8, "align": 0},
                                    {"nbytes": True}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        Allocator(64).alloc(**kwargs)


def test_bad_construction():
    with pytest.raises(ValueError, match="size must be an integer >= 1"):
        Allocator(0)
    with pytest.raises(ValueError, match="base"):
        Allocator(16, base=-1)


def test_reset():
    heap = Allocator(128)
    heap.alloc(50)
    heap.alloc(3, align=8)
    heap.reset()
    assert heap.extents() == [(0, 128)] and heap.allocations() == {}


class _Reference:
    """A byte map of the memory: the obviously correct, slow allocator."""

    def __init__(self, size):
        self.owner = [None] * size

    def first_fit(self, nbytes, align):
        for addr in range(0, len(self.owner) - nbytes + 1, align):
            if all(o is None for o in self.owner[addr:addr + nbytes]):
                return addr
        return None

    def take(self, addr, nbytes):
        for i in range(addr, addr + nbytes):
            assert self.owner[i] is None
            self.owner[i] = addr

    def release(self, addr):
        self.owner = [None if o == addr else o for o in self.owner]

    def extents(self):
        out, start = [], None
        for i, o in enumerate(self.owner + ["end"]):
            if o is None and start is None:
                start = i
            elif o is not None and start is not None:
                out.append((start, i))
                start = None
        return out


@pytest.mark.parametrize("seed", range(8))
def test_random_against_reference(seed):
    rng = random.Random(seed)
    size = 512
    heap, ref = Allocator(size), _Reference(size)
    live = []
    for _ in range(400):
        if live and rng.random() < 0.45:
            addr = live.pop(rng.randrange(len(live)))
            heap.free(addr)
            ref.release(addr)
        else:
            nbytes = rng.choice([1, 2, 3, 8, 16, 24, 40, 64, 100, 200])
            align = rng.choice([1, 2, 4, 16, 64])
            want = ref.first_fit(nbytes, align)
            if want is None:
                with pytest.raises(AllocationError):
                    heap.alloc(nbytes, align)
            else:
                addr = heap.alloc(nbytes, align)
                assert addr == want
                ref.take(addr, nbytes)
                live.append(addr)
        assert heap.extents() == ref.extents()
        assert heap.free_bytes == ref.owner.count(None)
    for addr in live:
        heap.free(addr)
    assert heap.extents() == [(0, size)]
