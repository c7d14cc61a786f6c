"""Small gateware and configuration helpers shared by every block.

One helper per idea, so that blocks do not grow private copies:

- :func:`tree_reduce` (and :func:`popcount`, :func:`or_reduce`): a balanced
  reduction tree over a list of values, so that wide sums and ORs stay
  ``log2(n)`` operators deep.
- :func:`select`: pick one of a list of equal-width values by a run-time
  index.
- :class:`StructFIFO`: a synchronous FIFO whose stream ports carry a
  ``data.Layout`` payload.
- :func:`check_int` and :func:`check_choice`: validation of configuration
  values with messages in Amaranth's style ("lanes must be ..., not 12").
"""

import operator

from amaranth.hdl import Cat, Module, Shape
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

__all__ = ["tree_reduce", "popcount", "or_reduce", "select", "StructFIFO", "check_int",
           "check_choice"]


def tree_reduce(values, op=operator.add):
    """Combine ``values`` with ``op`` as a balanced binary tree.

    Parameters
    ----------
    values : iterable of Value-castable
        At least one value.
    op : callable
        A two-operand operator (default ``+``).

    Returns
    -------
    Value
        ``op(op(v0, v1), op(v2, v3))...``; a lone value is returned as is.

    Raises
    ------
    ValueError
        If ``values`` is empty.
    """
    values = list(values)
    if not values:
        raise ValueError("tree_reduce needs at least one value, not an empty list")
    while len(values) > 1:
        paired = [op(values[k], values[k + 1]) for k in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            paired.append(values[-1])
        values = paired
    return values[0]


def popcount(bits):
    """Number of set bits of ``bits``, as a balanced adder tree."""
    return tree_reduce(bits[i] for i in range(len(bits)))


def or_reduce(values):
    """Bitwise OR of ``values`` as a balanced tree (shallow expressions)."""
    return tree_reduce(values, operator.or_)


def select(values, index):
    """The entry of ``values`` chosen by ``index`` (a run-time value).

    All values must have the same width; the selection is one
    ``word_select`` over their concatenation, which synthesizes to a
    ``log2(n)``-deep multiplexer. Out-of-range indices read as zero.

    Parameters
    ----------
    values : list of Value-castable
        Entries of equal width; a single entry is returned as is.
    index : Value
        The entry to pick.

    Raises
    ------
    ValueError
        If ``values`` is empty or the widths differ.
    """
    values = [Cat(v) if not hasattr(v, "shape") else v for v in values]
    if not values:
        raise ValueError("select needs at least one value, not an empty list")
    widths = {len(v) for v in values}
    if len(widths) != 1:
        raise ValueError(f"select needs values of one width, not widths {sorted(widths)}")
    if len(values) == 1:
        return values[0]
    return Cat(*values).word_select(index, widths.pop())


class StructFIFO(wiring.Component):
    """A synchronous FIFO with ``data.Layout`` payloads on stream ports.

    ``lib.fifo.SyncFIFO`` moves plain bit vectors and is not a Component in
    Amaranth 0.5; this wraps it so that both ends carry the layout and
    connect with ``wiring.connect``. First-word fall-through; ``valid`` of
    ``r_stream`` never depends on ``ready``.

    Parameters
    ----------
    layout : ShapeLike
        Payload shape (a ``data.StructLayout`` or a plain shape).
    depth : int
        Entries, at least 1.

    Attributes
    ----------
    w_stream : In(stream.Signature(layout))
        Entries in.
    r_stream : Out(stream.Signature(layout))
        Entries out, in order.
    level : Out(range(depth + 1))
        Entries held.
    """

    def __init__(self, layout, depth):
        check_int("depth", depth, 1, 1 << 20)
        self.layout = layout
        self.depth = depth
        super().__init__({
            "w_stream": In(stream.Signature(layout)),
            "r_stream": Out(stream.Signature(layout)),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = SyncFIFO(width=Shape.cast(self.layout).width,
                                            depth=self.depth)
        m.d.comb += [
            fifo.w_data.eq(self.w_stream.payload),
            fifo.w_en.eq(self.w_stream.valid),
            self.w_stream.ready.eq(fifo.w_rdy),
            self.r_stream.payload.eq(fifo.r_data),
            self.r_stream.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.r_stream.ready),
            self.level.eq(fifo.level),
        ]
        return m


def check_int(name, value, lo, hi):
    """Check that ``value`` is an integer from ``lo`` to ``hi``; return it.

    Raises
    ------
    ValueError
        ``"{name} must be an integer from {lo} to {hi}, not {value!r}"``.
    """
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer from {lo} to {hi}, not {value!r}")
    return value


def check_choice(name, value, allowed):
    """Check that ``value`` is one of ``allowed``; return it.

    Raises
    ------
    ValueError
        ``"{name} must be one of a, b, c, not {value!r}"``.
    """
    if isinstance(value, bool) or value not in allowed:
        choices = ", ".join(str(a) for a in allowed)
        raise ValueError(f"{name} must be one of {choices}, not {value!r}")
    return value
