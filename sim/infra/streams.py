"""cocotb drivers and checkers for ``amaranth.lib.stream`` ports.

Amaranth flattens a stream port named ``weights`` into the Verilog ports
``weights__valid``, ``weights__ready`` and ``weights__payload``; a
``data.Struct`` payload becomes one vector, field 0 in the low bits. The
classes here take the DUT handle and that prefix.

Timing convention (every driver in a testbench must follow it): inputs of
the DUT change just after a rising clock edge, and handshakes are sampled in
the ``ReadOnly`` phase of that same time step, when all combinational logic
has settled. What is sampled there is what the next rising edge sees, so a
transfer is recognised exactly when the DUT performs it, independent of how
the simulator orders callbacks around the clock edge.

Stall patterns come from infinite iterators of bools (``True`` = pause this
cycle); :data:`PAUSE_MODES` names the three every test must cover::

    @cocotb.test()
    @cocotb.parametrize(idle=list(PAUSE_MODES), backpressure=list(PAUSE_MODES))
    async def run_test(dut, idle, backpressure):
        source = StreamSource(dut.clk, dut, "weights", pause=PAUSE_MODES[idle](seed=1))
        sink = StreamSink(dut.clk, dut, "results", pause=PAUSE_MODES[backpressure](seed=2))
"""

from __future__ import annotations

import collections
import itertools
import logging
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

__all__ = [
    "PAUSE_MODES", "no_pause", "periodic_pause", "random_pause",
    "StreamSource", "StreamSink", "StreamMonitor", "StreamProtocolError",
    "pack", "unpack", "layout_width",
]


# --- pause patterns --------------------------------------------------------

def no_pause() -> Iterator[bool]:
    """Never pause.

    Returns
    -------
    iterator of bool
        ``False`` forever.
    """
    return itertools.repeat(False)


def periodic_pause(on: int = 3, off: int = 2) -> Iterator[bool]:
    """Run for ``on`` cycles, pause for ``off`` cycles, repeat.

    Parameters
    ----------
    on : int
        Cycles in which the stream may move (yields ``False``).
    off : int
        Cycles of pause (yields ``True``).

    Returns
    -------
    iterator of bool
        ``on`` times ``False`` then ``off`` times ``True``, forever.

    Raises
    ------
    ValueError
        If ``on`` is not positive or ``off`` is negative.
    """
    if on < 1 or off < 0:
        raise ValueError(f"periodic_pause needs on >= 1 and off >= 0, not on={on}, off={off}")
    return itertools.cycle([False] * on + [True] * off)


def random_pause(seed: int, probability: float = 0.5) -> Iterator[bool]:
    """Pause each cycle independently with a fixed probability.

    Parameters
    ----------
    seed : int
        Seed of this pattern's own PRNG, so the pattern does not depend on
        (or disturb) the global ``random`` state used for test data.
    probability : float
        Chance of a pause in any one cycle, ``0 <= probability < 1``.

    Returns
    -------
    iterator of bool
        A reproducible random pattern, forever.

    Raises
    ------
    ValueError
        If ``probability`` is outside ``[0, 1)``.
    """
    if not 0 <= probability < 1:
        raise ValueError(f"random_pause probability must be in [0, 1), not {probability}")
    rng = random.Random(seed)

    def pattern() -> Iterator[bool]:
        while True:
            yield rng.random() < probability
    return pattern()


#: The three stall patterns every stream port is tested under, by name.
#: Each value is called as ``PAUSE_MODES[name](seed=...)`` and returns a
#: fresh pattern; ``seed`` only matters for ``"random"``.
PAUSE_MODES: dict[str, Callable[..., Iterator[bool]]] = {
    "none": lambda seed=0: no_pause(),
    "periodic": lambda seed=0: periodic_pause(),
    "random": lambda seed=0: random_pause(seed),
}


# --- payload layouts -------------------------------------------------------

def _resolve(shape: Any) -> Any:
    """Turn a Struct class, enum or shape-like into a Layout or a Shape."""
    from amaranth.hdl import Shape, ShapeCastable
    from amaranth.lib import data
    while isinstance(shape, ShapeCastable) and not isinstance(shape, data.Layout):
        shape = shape.as_shape()
    if isinstance(shape, data.Layout):
        return shape
    return Shape.cast(shape)


def layout_width(layout: Any) -> int:
    """Return the width in bits of a payload shape.

    Parameters
    ----------
    layout : Layout, Struct subclass, Shape or int
        The payload shape.

    Returns
    -------
    int
        Number of bits.
    """
    from amaranth.lib import data
    shape = _resolve(layout)
    return shape.size if isinstance(shape, data.Layout) else shape.width


def pack(layout: Any, value: Any) -> int:
    """Pack a Python value into the integer a payload port carries.

    Parameters
    ----------
    layout : Layout, Struct subclass, Shape or int
        The payload shape, e.g. the ``data.Struct`` of a stream signature.
    value : int, mapping, sequence or enum member
        For a ``StructLayout``: a mapping from field name to value (missing
        fields are 0). For an ``ArrayLayout``: a sequence of elements. For a
        ``UnionLayout``: a mapping with exactly one member. Nested layouts
        nest the same way. For a plain shape: an int (negative for signed
        shapes) or an enum member.

    Returns
    -------
    int
        The payload as an unsigned integer, field at offset 0 in the low bits.

    Raises
    ------
    ValueError
        If a value does not fit its field or a field name is unknown; the
        message names the field path, e.g. ``"hdr.rows"``.
    """
    return _pack(_resolve(layout), value, "payload")


def _pack(shape: Any, value: Any, path: str) -> int:
    from amaranth.lib import data
    if isinstance(shape, data.ArrayLayout):
        if isinstance(value, int):
            return _pack_int(shape.as_shape(), value, path)
        if len(value) != shape.length:
            raise ValueError(f"{path}: expected {shape.length} elements, not {len(value)}")
        result = 0
        for index, field in shape:
            result |= _pack(_resolve(field.shape), value[index], f"{path}[{index}]") << field.offset
        return result
    if isinstance(shape, data.Layout):  # StructLayout, UnionLayout, custom
        if isinstance(value, int):
            return _pack_int(shape.as_shape(), value, path)
        if not isinstance(value, Mapping):
            raise ValueError(f"{path}: expected a mapping of field names for {shape!r}, "
                             f"not {value!r}")
        fields = dict(shape)
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise ValueError(f"{path}: no field(s) {', '.join(map(repr, unknown))} in {shape!r} "
                             f"(fields: {', '.join(map(str, fields))})")
        if isinstance(shape, data.UnionLayout) and len(value) > 1:
            raise ValueError(f"{path}: a union takes one member, not {sorted(value)}")
        result = 0
        for key, item in value.items():
            field = fields[key]
            result |= _pack(_resolve(field.shape), item, f"{path}.{key}") << field.offset
        return result
    return _pack_int(shape, value, path)


def _pack_int(shape: Any, value: Any, path: str) -> int:
    import enum
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int):
        raise ValueError(f"{path}: expected an int for {shape!r}, not {value!r}")
    width = shape.width
    low, high = ((-(1 << (width - 1)), 1 << (width - 1)) if shape.signed
                 else (0, 1 << width))
    if not low <= value < high:
        raise ValueError(f"{path}: {value} does not fit {shape!r} "
                         f"(range {low}..{high - 1})")
    return value & ((1 << width) - 1)


def unpack(layout: Any, raw: int) -> Any:
    """Split a payload integer into fields; the inverse of :func:`pack`.

    Parameters
    ----------
    layout : Layout, Struct subclass, Shape or int
        The payload shape.
    raw : int
        The payload as read from the port (``int(dut.x__payload.value)``).

    Returns
    -------
    dict, list or int
        A dict for struct and union layouts, a list for array layouts, an int
        for plain shapes (sign-extended for signed shapes; enum fields come
        back as their integer value).
    """
    return _unpack(_resolve(layout), int(raw))


def _unpack(shape: Any, raw: int) -> Any:
    from amaranth.lib import data
    if isinstance(shape, data.ArrayLayout):
        return [_unpack(_resolve(field.shape), raw >> field.offset) for _, field in shape]
    if isinstance(shape, data.Layout):
        return {key: _unpack(_resolve(field.shape), raw >> field.offset) for key, field in shape}
    value = raw & ((1 << shape.width) - 1)
    if shape.signed and shape.width and value >> (shape.width - 1):
        value -= 1 << shape.width
    return value


# --- drivers and checkers --------------------------------------------------

class StreamProtocolError(AssertionError):
    """A DUT broke a stream rule (valid or payload did not hold until transfer)."""


def _port(dut: Any, prefix: str, member: str) -> Any:
    try:
        return getattr(dut, f"{prefix}__{member}")
    except AttributeError:
        raise AttributeError(
            f"DUT has no port {prefix}__{member}: is {prefix!r} the name of an "
            f"amaranth.lib.stream port of the top Component?") from None


class StreamMonitor:
    """Check the stream rules on a DUT-driven stream and record its transfers.

    The rules checked, cycle by cycle: once ``valid`` is high without
    ``ready``, ``valid`` must stay high and ``payload`` must not change
    until the transfer. The monitor drives nothing, so it can watch any
    stream whose three signals are visible, with any sink attached.

    Parameters
    ----------
    clk : cocotb handle
        The clock of the stream's domain.
    dut : cocotb handle
        The DUT (or any scope holding the ports).
    prefix : str
        The stream's port name, e.g. ``"results"``.
    raise_on_error : bool
        Raise :class:`StreamProtocolError` from the monitor task at the first
        violation, which fails the running cocotb test. With ``False`` the
        violations are only recorded in :attr:`errors`.

    Attributes
    ----------
    errors : list of str
        One message per violation, with simulation time.
    transfers : list of int
        Payload of every transfer, in order.
    """

    def __init__(self, clk: Any, dut: Any, prefix: str, *, raise_on_error: bool = True):
        import cocotb
        self.clk = clk
        self.prefix = prefix
        self.valid = _port(dut, prefix, "valid")
        self.ready = _port(dut, prefix, "ready")
        self.payload = _port(dut, prefix, "payload")
        self.raise_on_error = raise_on_error
        self.errors: list[str] = []
        self.transfers: list[int] = []
        self.log = logging.getLogger(f"cocotb.lpaccel.stream.{prefix}")
        self._callbacks: list[Callable[[int], None]] = []
        self._task = cocotb.start_soon(self._run())

    def add_callback(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(payload)`` on every transfer (in the ReadOnly phase)."""
        self._callbacks.append(callback)

    def stop(self) -> None:
        """Stop watching (e.g. before the DUT is reset in the middle of a test)."""
        self._task.cancel()

    async def _run(self) -> None:
        from cocotb.triggers import ReadOnly, RisingEdge
        stalled: int | None = None  # payload held by an untransferred beat
        while True:
            await RisingEdge(self.clk)
            await ReadOnly()
            valid, ready = int(self.valid.value), int(self.ready.value)
            payload = int(self.payload.value) if valid else None
            if stalled is not None:
                if not valid:
                    self._error(f"valid fell before the transfer of payload {stalled:#x}")
                elif payload != stalled:
                    self._error(f"payload changed from {stalled:#x} to {payload:#x} "
                                f"while valid and not ready")
            if valid and ready:
                self.transfers.append(payload)
                for callback in self._callbacks:
                    callback(payload)
            stalled = payload if valid and not ready else None

    def _error(self, what: str) -> None:
        from cocotb.simtime import get_sim_time
        message = f"stream {self.prefix!r} at {get_sim_time('ns'):g} ns: {what}"
        self.errors.append(message)
        self.log.error("%s", message)
        if self.raise_on_error:
            raise StreamProtocolError(message)


class StreamSource:
    """Drive a DUT input stream from a queue of payloads.

    ``valid`` is raised only from the queue and the pause pattern, never in
    response to ``ready``; once raised, ``valid`` and ``payload`` hold until
    the DUT accepts the beat, whatever the pause pattern says.

    Parameters
    ----------
    clk : cocotb handle
        The clock of the stream's domain.
    dut : cocotb handle
        The DUT.
    prefix : str
        The stream's port name, e.g. ``"weights"``.
    pause : iterator of bool, optional
        Idle pattern; a ``True`` keeps ``valid`` low in a cycle where no beat
        is outstanding. Default: :func:`no_pause`.
    layout : Layout or Struct subclass, optional
        Lets :meth:`send` take mappings, packed with :func:`pack`.

    Attributes
    ----------
    beats : int
        Number of completed transfers.
    """

    def __init__(self, clk: Any, dut: Any, prefix: str, *,
                 pause: Iterable[bool] | None = None, layout: Any = None):
        import cocotb
        self.clk = clk
        self.prefix = prefix
        self.valid = _port(dut, prefix, "valid")
        self.ready = _port(dut, prefix, "ready")
        self.payload = _port(dut, prefix, "payload")
        self.pause = iter(pause) if pause is not None else no_pause()
        self.layout = layout
        self.beats = 0
        self._queue: collections.deque[int] = collections.deque()
        self._current: int | None = None  # the beat on the wires, not yet accepted
        self.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send(self, payload: int | Mapping[str, Any] | Sequence[Any]) -> None:
        """Queue one payload (an int, or a mapping if ``layout`` was given)."""
        if self.layout is not None and not isinstance(payload, int):
            payload = pack(self.layout, payload)
        self._queue.append(int(payload))

    def send_all(self, payloads: Iterable[Any]) -> None:
        """Queue several payloads in order."""
        for payload in payloads:
            self.send(payload)

    def empty(self) -> bool:
        """Return whether nothing is waiting in the queue (a beat may be on the wires)."""
        return not self._queue

    def idle(self) -> bool:
        """Return whether every queued payload has been transferred."""
        return not self._queue and self._current is None

    async def wait_idle(self) -> None:
        """Wait until every queued payload has been transferred."""
        from cocotb.triggers import RisingEdge
        while not self.idle():
            await RisingEdge(self.clk)

    def stop(self) -> None:
        """Stop driving and drop ``valid``."""
        self._task.cancel()
        self.valid.value = 0

    async def _run(self) -> None:
        from cocotb.triggers import ReadOnly, RisingEdge
        while True:
            await RisingEdge(self.clk)
            paused = next(self.pause)
            if self._current is None and self._queue and not paused:
                self._current = self._queue.popleft()
                self.payload.value = self._current
                self.valid.value = 1
            elif self._current is None:
                self.valid.value = 0
            await ReadOnly()
            # Sampled after our own drive settled: exactly what the next edge sees.
            if self._current is not None and int(self.ready.value):
                self._current = None
                self.beats += 1


class StreamSink:
    """Accept a DUT output stream into a queue, with back-pressure and checking.

    A :class:`StreamMonitor` on the same port checks the stream rules; with
    the default ``raise_on_error=True`` the first violation fails the test.

    Parameters
    ----------
    clk : cocotb handle
        The clock of the stream's domain.
    dut : cocotb handle
        The DUT.
    prefix : str
        The stream's port name, e.g. ``"results"``.
    pause : iterator of bool, optional
        Back-pressure pattern; a ``True`` drives ``ready`` low in that cycle.
        Default: :func:`no_pause`.
    raise_on_error : bool
        Passed to the :class:`StreamMonitor`.

    Attributes
    ----------
    monitor : StreamMonitor
        The protocol checker; ``monitor.errors`` lists violations.
    beats : int
        Number of completed transfers.
    """

    def __init__(self, clk: Any, dut: Any, prefix: str, *,
                 pause: Iterable[bool] | None = None, raise_on_error: bool = True):
        import cocotb
        from cocotb.queue import Queue
        self.clk = clk
        self.prefix = prefix
        self.ready = _port(dut, prefix, "ready")
        self.pause = iter(pause) if pause is not None else no_pause()
        self.beats = 0
        self._queue: Queue[int] = Queue()
        self.monitor = StreamMonitor(clk, dut, prefix, raise_on_error=raise_on_error)
        self.monitor.add_callback(self._accept)
        self.ready.value = 0
        self._task = cocotb.start_soon(self._run())

    def _accept(self, payload: int) -> None:
        self.beats += 1
        self._queue.put_nowait(payload)

    async def recv(self) -> int:
        """Wait for and return the next payload."""
        return await self._queue.get()

    def recv_nowait(self) -> int:
        """Return the next payload; raise ``cocotb.queue.QueueEmpty`` if there is none."""
        return self._queue.get_nowait()

    async def recv_n(self, count: int) -> list[int]:
        """Wait for and return the next ``count`` payloads."""
        return [await self._queue.get() for _ in range(count)]

    def empty(self) -> bool:
        """Return whether no received payload is waiting to be read."""
        return self._queue.empty()

    def count(self) -> int:
        """Return how many received payloads are waiting to be read."""
        return self._queue.qsize()

    @property
    def errors(self) -> list[str]:
        """Protocol violations seen so far (see :class:`StreamMonitor`)."""
        return self.monitor.errors

    def stop(self) -> None:
        """Stop driving ``ready`` (left low) and stop checking."""
        self._task.cancel()
        self.monitor.stop()
        self.ready.value = 0

    async def _run(self) -> None:
        from cocotb.triggers import RisingEdge
        while True:
            await RisingEdge(self.clk)
            self.ready.value = 0 if next(self.pause) else 1
