"""A simple allocator for the accelerator's device memory.

The driver places tensors (repacked weights, activation vectors, result
buffers) in the memory behind the SoC's DMA window. :class:`Allocator` hands
out address ranges of ``[base, base + size)``: first fit over a sorted list
of free extents, alignment per request, and freed ranges merged with their
free neighbours so that the memory does not fragment into unusable pieces.

It only does bookkeeping: it never touches the device. Every refusal names
the request, what is free and what to do about it::

    >>> heap = Allocator(1 << 16)
    >>> w = heap.alloc(4096, align=16, name="weights blk.0.attn_q")
    >>> heap.free(w)
"""

import bisect

__all__ = ["Allocator", "AllocationError"]


class AllocationError(Exception):
    """A request the allocator cannot satisfy: out of memory, double free, unknown address."""


def _check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")


class Allocator:
    """First-fit allocator over ``[base, base + size)`` with coalescing.

    Parameters
    ----------
    size : int
        Bytes managed (the memory size, ``CAP_MEM_SIZE``).
    base : int
        First managed address.

    Attributes
    ----------
    base, size : int

    Notes
    -----
    Free space is a sorted list of disjoint, non-adjacent half-open extents
    ``(start, end)``. An aligned allocation may start inside an extent; the
    skipped bytes before it stay free. :meth:`free` merges the returned range
    with the extents touching it, so two free neighbours never coexist.
    """

    def __init__(self, size, base=0):
        _check_count("size", size, 1)
        _check_count("base", base, 0)
        self.base = base
        self.size = size
        self._starts = [base]        # free extent starts, sorted (for bisect)
        self._ends = [base + size]   # matching ends
        self._used = {}              # address -> (nbytes, name)

    # -- queries -----------------------------------------------------------------------

    @property
    def free_bytes(self):
        """Bytes not allocated."""
        return sum(e - s for s, e in zip(self._starts, self._ends))

    @property
    def used_bytes(self):
        """Bytes allocated."""
        return sum(n for n, _ in self._used.values())

    @property
    def largest_free(self):
        """Length of the largest free extent (0 when full)."""
        return max((e - s for s, e in zip(self._starts, self._ends)), default=0)

    def extents(self):
        """The free extents, ``[(start, end), ...]`` in address order (half-open)."""
        return list(zip(self._starts, self._ends))

    def allocations(self):
        """The live allocations, ``{address: nbytes}``."""
        return {addr: n for addr, (n, _) in sorted(self._used.items())}

    def size_of(self, addr):
        """Bytes of the allocation at ``addr``.

        Raises
        ------
        AllocationError
            If no allocation starts at ``addr``.
        """
        try:
            return self._used[addr][0]
        except KeyError:
            raise AllocationError(self._unknown(addr)) from None

    def __contains__(self, addr):
        return addr in self._used

    def __repr__(self):
        return (f"Allocator(size={self.size}, base={self.base:#x}: {len(self._used)} "
                f"allocations, {self.free_bytes} bytes free in {len(self._starts)} extents)")

    # -- alloc / free ------------------------------------------------------------------

    def alloc(self, nbytes, align=1, name=None):
        """Allocate ``nbytes`` at an address that is a multiple of ``align``.

        Parameters
        ----------
        nbytes : int
            Bytes wanted, at least 1.
        align : int
            Alignment of the address, a power of two.
        name : str, optional
            What the range is for, used in error messages.

        Returns
        -------
        int
            The address (the lowest fitting one: first fit).

        Raises
        ------
        ValueError
            If ``nbytes`` or ``align`` is not valid.
        AllocationError
            If no free extent holds the request; the message gives the free
            space and the fix.
        """
        _check_count("nbytes", nbytes, 1)
        _check_count("align", align, 1)
        if align & (align - 1):
            raise ValueError(f"align must be a power of two, not {align}")
        for i, (start, end) in enumerate(zip(self._starts, self._ends)):
            addr = -(-start // align) * align
            if addr + nbytes <= end:
                self._take(i, addr, addr + nbytes)
                self._used[addr] = (nbytes, name)
                return addr
        what = f"{name}: " if name else ""
        raise AllocationError(
            f"{what}cannot allocate {nbytes} bytes aligned to {align}: the largest free "
            f"extent is {self.largest_free} bytes ({self.free_bytes} of {self.size} bytes "
            f"free in {len(self._starts)} extents, {len(self._used)} allocations live); "
            f"free tensors you no longer need, or use a device with more memory "
            f"(a larger memory_size)")

    def _take(self, i, lo, hi):
        """Remove ``[lo, hi)`` from free extent ``i`` (which contains it)."""
        start, end = self._starts[i], self._ends[i]
        del self._starts[i], self._ends[i]
        # Insert the right piece first so that index i stays the left piece's slot.
        if hi < end:
            self._starts.insert(i, hi)
            self._ends.insert(i, end)
        if start < lo:
            self._starts.insert(i, start)
            self._ends.insert(i, lo)

    def free(self, addr):
        """Return the allocation at ``addr`` to the free space.

        Raises
        ------
        AllocationError
            If ``addr`` is not the address of a live allocation (a double
            free, or an address :meth:`alloc` never returned).
        """
        if addr not in self._used:
            raise AllocationError(self._unknown(addr))
        nbytes, _ = self._used.pop(addr)
        lo, hi = addr, addr + nbytes
        i = bisect.bisect_left(self._starts, lo)
        merge_left = i > 0 and self._ends[i - 1] == lo
        merge_right = i < len(self._starts) and self._starts[i] == hi
        if merge_left and merge_right:
            self._ends[i - 1] = self._ends[i]
            del self._starts[i], self._ends[i]
        elif merge_left:
            self._ends[i - 1] = hi
        elif merge_right:
            self._starts[i] = lo
        else:
            self._starts.insert(i, lo)
            self._ends.insert(i, hi)

    def reset(self):
        """Forget every allocation: the whole range is free again."""
        self._starts, self._ends = [self.base], [self.base + self.size]
        self._used.clear()

    def _unknown(self, addr):
        if not isinstance(addr, int):
            return f"free({addr!r}): pass the integer address alloc() returned"
        inside = next((a for a, (n, _) in self._used.items() if a < addr < a + n), None)
        if inside is not None:
            n, name = self._used[inside]
            label = f" ({name})" if name else ""
            return (f"free({addr:#x}): the address is inside the allocation at {inside:#x}"
                    f"{label} of {n} bytes, not its start; pass the address alloc() returned")
        if any(s <= addr < e for s, e in zip(self._starts, self._ends)) or \
                self.base <= addr < self.base + self.size:
            return (f"free({addr:#x}): no allocation starts there (already freed, or never "
                    f"allocated); free each address alloc() returned exactly once")
        return (f"free({addr:#x}): the address is outside the managed range "
                f"[{self.base:#x}, {self.base + self.size:#x}); pass an address alloc() "
                f"returned")
