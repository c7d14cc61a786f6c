"""Constants of the host link protocol (``docs/link.md``), as the gateware carries them.

The host library has its own copy in ``lpaccel/link.py`` (``rtl`` may not
import the host library); ``tests/bridge`` checks that the two agree.
"""

from amaranth.lib import enum

__all__ = ["REQ_SOF", "RSP_SOF", "MAX_WORDS", "LINK_MAGIC", "PROTOCOL_VERSION",
           "REQ_HEADER_BYTES", "RSP_HEADER_BYTES", "CRC_BYTES", "INFO_WORDS", "Cmd", "Status"]

#: Start marker of a request (host to device).
REQ_SOF = 0xA5
#: Start marker of a response (device to host).
RSP_SOF = 0x5A
#: Most 32-bit words one frame carries (``COUNT`` is 8 bits: words - 1).
MAX_WORDS = 256
#: ``LINK_INFO`` word 0: ASCII "LLNK".
LINK_MAGIC = 0x4B4E_4C4C
#: ``LINK_INFO`` word 1, bits 7:0.
PROTOCOL_VERSION = 1
#: Bytes of a request before ``DATA``: SOF, SEQ, CMD, COUNT, ADDR.
REQ_HEADER_BYTES = 8
#: Bytes of a response before ``DATA``: SOF, SEQ, CMD, STATUS, LEN.
RSP_HEADER_BYTES = 6
#: Bytes of the CRC-16 at the end of every frame.
CRC_BYTES = 2
#: Words of the ``LINK_INFO`` response.
INFO_WORDS = 8


class Cmd(enum.IntEnum, shape=8):
    """``CMD`` codes."""

    REG_READ = 0x01
    REG_WRITE = 0x02
    MEM_READ = 0x03
    MEM_WRITE = 0x04
    LINK_INFO = 0x05


class Status(enum.IntEnum, shape=8):
    """``STATUS`` codes of a response."""

    OK = 0
    BUS_ERROR = 1
    BAD_COMMAND = 2
    BAD_ADDRESS = 3
