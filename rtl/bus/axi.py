"""AXI4 and AXI4-Lite as Amaranth signatures.

Memory traffic in lpaccel is AXI4 (INCR bursts), control is AXI4-Lite: the
conventions LiteDRAM's user port, vendor IP and cocotbext-axi already speak.
Each of the five channels is a sub-interface with ``valid``, ``ready`` and the
channel's fields under their AMBA names without the channel prefix (``aw.addr``
is ``AWADDR``). Signatures are written from the manager's side; a
subordinate (slave) port is ``In(AXI4Signature(...))``, i.e. the flipped
signature.

Protocol rules every lpaccel port keeps (AMBA AXI4, IHI 0022):

1. A transfer happens on a cycle with ``valid & ready``.
2. Once ``valid`` is high, it and the channel's fields hold until the
   transfer; ``valid`` never waits for ``ready``, ``ready`` may wait for
   ``valid``.
3. Write data may arrive before, with, or after its address; a subordinate
   answers on B only after both the address and the last data beat.
4. A read burst of ``len + 1`` beats returns exactly that many R beats, the
   last one with ``last`` set; R beats of one ID keep request order.
5. lpaccel managers issue INCR bursts only, with ``size`` equal to the full
   data width, and never cross a 4 KiB boundary.
6. An error response (SLVERR, DECERR) still completes the transaction with
   every beat: the data of an errored read beat is meaningless.
"""

from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..utils import check_choice, check_int

__all__ = ["Resp", "Burst", "AXI4LiteSignature", "AXI4Signature"]


class Resp(enum.IntEnum, shape=2):
    """``BRESP``/``RRESP`` codes; the shape of the ``resp`` members."""

    OKAY = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


class Burst(enum.IntEnum, shape=2):
    """``AWBURST``/``ARBURST`` codes; the shape of the ``burst`` members."""

    FIXED = 0
    INCR = 1
    WRAP = 2


def _channel(fields, *, towards_manager=False):
    """One channel: ``valid``/``ready`` plus ``fields`` (name → shape)."""
    out, inn = (In, Out) if towards_manager else (Out, In)
    members = {"valid": out(1), "ready": inn(1)}
    members.update({name: out(width) for name, width in fields.items()})
    return wiring.Signature(members)


class AXI4LiteSignature(wiring.Signature):
    """AXI4-Lite, from the manager's side.

    Parameters
    ----------
    addr_width : int
        Byte address width, 1 to 64.
    data_width : int
        32 or 64.
    """

    def __init__(self, *, addr_width=32, data_width=32):
        check_int("addr_width", addr_width, 1, 64)
        check_choice("data_width", data_width, (32, 64))
        self.addr_width = addr_width
        self.data_width = data_width
        super().__init__({
            "aw": Out(_channel({"addr": addr_width, "prot": 3})),
            "w": Out(_channel({"data": data_width, "strb": data_width // 8})),
            "b": Out(_channel({"resp": Resp}, towards_manager=True)),
            "ar": Out(_channel({"addr": addr_width, "prot": 3})),
            "r": Out(_channel({"data": data_width, "resp": Resp}, towards_manager=True)),
        })

    def __eq__(self, other):
        return (type(other) is type(self) and other.addr_width == self.addr_width and
                other.data_width == self.data_width)

    def __hash__(self):
        return hash((type(self), self.addr_width, self.data_width))

    def __repr__(self):
        return f"AXI4LiteSignature(addr_width={self.addr_width}, data_width={self.data_width})"


class AXI4Signature(wiring.Signature):
    """AXI4 with INCR bursts, from the manager's side.

    Parameters
    ----------
    addr_width : int
        Byte address width, 12 to 64.
    data_width : int
        Power of two from 8 to 1024.
    id_width : int
        Transaction ID width, 0 to 16 (0 keeps a 1-bit ID that is always 0).
    """

    def __init__(self, *, addr_width=32, data_width=64, id_width=4):
        check_int("addr_width", addr_width, 12, 64)
        check_choice("data_width", data_width, (8, 16, 32, 64, 128, 256, 512, 1024))
        check_int("id_width", id_width, 0, 16)
        self.addr_width = addr_width
        self.data_width = data_width
        self.id_width = id_width
        iw = max(1, id_width)
        addr = {"id": iw, "addr": addr_width, "len": 8, "size": 3, "burst": Burst,
                "lock": 1, "cache": 4, "prot": 3, "qos": 4}
        super().__init__({
            "aw": Out(_channel(addr)),
            "w": Out(_channel({"data": data_width, "strb": data_width // 8, "last": 1})),
            "b": Out(_channel({"id": iw, "resp": Resp}, towards_manager=True)),
            "ar": Out(_channel(addr)),
            "r": Out(_channel({"id": iw, "data": data_width, "resp": Resp, "last": 1},
                              towards_manager=True)),
        })

    @property
    def size(self):
        """``AxSIZE`` of a full-width beat."""
        return exact_log2(self.data_width // 8)

    def __eq__(self, other):
        return (type(other) is type(self) and other.addr_width == self.addr_width and
                other.data_width == self.data_width and other.id_width == self.id_width)

    def __hash__(self):
        return hash((type(self), self.addr_width, self.data_width, self.id_width))

    def __repr__(self):
        return (f"AXI4Signature(addr_width={self.addr_width}, data_width={self.data_width}, "
                f"id_width={self.id_width})")
