"""The golden device model (sim/golden/link.py) against docs/link.md and lpaccel.link.

"Both ways": requests built by lpaccel.link are executed by the model, and the
model's responses are checked twice, byte for byte against frames written in
the test from the docs' tables, and by lpaccel.link's parser and client.
"""

import struct

import pytest

from lpaccel.link import (
    LINK_MAGIC,
    Cmd,
    LinkClient,
    LinkInfo,
    LinkStatusError,
    ResponseParser,
    Status,
    crc16,
    encode_request,
)
from tests.link.backend import LoggingBackend


def _rsp(seq, cmd, status, words=()):
    """A response frame from docs/link.md's table, written out here."""
    body = bytes([0x5A, seq, cmd, status]) + struct.pack("<H", len(words))
    body += b"".join(struct.pack("<I", w) for w in words)
    return body + struct.pack("<H", crc16(body))


def _setup():
    backend = LoggingBackend()
    return backend, backend.model()


def test_register_write_then_read():
    backend, m = _setup()
    assert m.feed(encode_request(1, Cmd.REG_WRITE, 0x10, words=[7, 8, 9])) == \
        _rsp(1, Cmd.REG_WRITE, Status.OK)
    assert [e for e in backend.log if e[0] == "w32"] == \
        [("w32", 0x10, 7), ("w32", 0x14, 8), ("w32", 0x18, 9)]
    assert m.feed(encode_request(2, Cmd.REG_READ, 0x14, count=2)) == \
        _rsp(2, Cmd.REG_READ, Status.OK, [8, 9])


def test_memory_write_then_read():
    backend, m = _setup()
    words = list(range(0x100, 0x200))
    assert m.feed(encode_request(1, Cmd.MEM_WRITE, 0x3C00, words=words)) == \
        _rsp(1, Cmd.MEM_WRITE, Status.OK)
    assert backend.mem[0x3C00:0x4000] == struct.pack("<256I", *words)
    assert m.feed(encode_request(2, Cmd.MEM_READ, 0x3C00, count=256)) == \
        _rsp(2, Cmd.MEM_READ, Status.OK, words)


def test_byte_by_byte_equals_whole():
    _, m1 = _setup()
    _, m2 = _setup()
    stream = (encode_request(1, Cmd.REG_WRITE, 0, words=[5]) +
              encode_request(2, Cmd.REG_READ, 0, count=1) + encode_request(3, Cmd.LINK_INFO, 0))
    assert m1.feed(stream) == b"".join(m2.feed(bytes([b])) for b in stream)


@pytest.mark.parametrize("cmd, addr, count, status", [
    (0x00, 0, 1, Status.BAD_COMMAND),
    (0x06, 0, 1, Status.BAD_COMMAND),
    (0xFF, 0, 1, Status.BAD_COMMAND),
    (Cmd.LINK_INFO, 4, 8, Status.BAD_COMMAND),
    (Cmd.REG_READ, 2, 1, Status.BAD_ADDRESS),
    (Cmd.MEM_READ, 1, 1, Status.BAD_ADDRESS),
    (Cmd.MEM_READ, 4092, 2, Status.BAD_ADDRESS),
    (Cmd.MEM_READ, 0, 256, Status.OK),
    (Cmd.REG_READ, 0x3FC, 2, Status.BUS_ERROR),      # the second word is unmapped
    (Cmd.MEM_READ, 0x10000, 1, Status.BUS_ERROR),
    (Cmd.REG_READ, 4092, 2, Status.BUS_ERROR),       # registers may cross 4 KiB
])
def test_refusals(cmd, addr, count, status):
    backend, m = _setup()
    rsp = m.feed(encode_request(4, cmd, addr, count=count))
    parsed = ResponseParser().feed(rsp)[0]
    assert parsed.status == status and parsed.seq == 4 and parsed.cmd == cmd
    if status != Status.OK:
        assert rsp == _rsp(4, cmd, status)
        assert m.counters["error_responses"] == 1
    if status in (Status.BAD_COMMAND, Status.BAD_ADDRESS):
        assert backend.log == []            # nothing was done


def test_unknown_command_with_data_bytes_is_ten_bytes_long():
    # COUNT does not give an unknown command data: its frame ends after 10 bytes.
    _, m = _setup()
    frame = encode_request(1, 0x40, 0, count=4)
    assert len(frame) == 10
    assert m.feed(frame) == _rsp(1, 0x40, Status.BAD_COMMAND)


def test_partial_writes_on_bus_error():
    backend, m = _setup()
    backend.read_only.add(0x8)
    assert m.feed(encode_request(1, Cmd.REG_WRITE, 0x0, words=[1, 2, 3, 4])) == \
        _rsp(1, Cmd.REG_WRITE, Status.BUS_ERROR)
    assert backend.regs == {0x0: 1, 0x4: 2}
    # Memory: a write running off the end of the window writes the words before it.
    rsp = m.feed(encode_request(2, Cmd.MEM_WRITE, 0xFFF8, words=[5, 6]))
    assert rsp == _rsp(2, Cmd.MEM_WRITE, Status.OK)
    backend.mem = backend.mem[:0xFFFC]
    rsp = m.feed(encode_request(3, Cmd.MEM_WRITE, 0xFFF8, words=[7, 8]))
    assert rsp == _rsp(3, Cmd.MEM_WRITE, Status.BUS_ERROR)
    assert backend.mem[0xFFF8:0xFFFC] == struct.pack("<I", 7)


def test_replay_record():
    backend, m = _setup()
    write = encode_request(10, Cmd.REG_WRITE, 0x20, words=[1])
    assert m.feed(write) == _rsp(10, Cmd.REG_WRITE, Status.OK)
    backend.regs[0x20] = 99                 # the next write would be visible
    assert m.feed(write) == _rsp(10, Cmd.REG_WRITE, Status.OK)
    assert backend.regs[0x20] == 99 and m.counters["duplicates"] == 1
    # Another SEQ, or the same SEQ with another CMD, executes.
    assert m.feed(encode_request(10, Cmd.MEM_WRITE, 0, words=[1])) == \
        _rsp(10, Cmd.MEM_WRITE, Status.OK)
    # Reads are executed again, and replace the record.
    read = encode_request(11, Cmd.REG_READ, 0x20, count=1)
    assert m.feed(read) == m.feed(read) == _rsp(11, Cmd.REG_READ, Status.OK, [99])
    assert m.record == (11, Cmd.REG_READ, Status.OK)
    # A duplicate answers the recorded status, also an error.
    bad = encode_request(12, Cmd.REG_WRITE, 0x1000, words=[1])
    assert m.feed(bad) == m.feed(bad) == _rsp(12, Cmd.REG_WRITE, Status.BUS_ERROR)
    assert m.counters["duplicates"] == 2 and m.counters["error_responses"] == 2
    # Reset clears the record.
    m.reset()
    assert m.feed(bad) == _rsp(12, Cmd.REG_WRITE, Status.BUS_ERROR)
    assert m.counters["duplicates"] == 0


def test_bad_crc_is_dropped_and_hunting_resumes_after_the_frame():
    backend, m = _setup()
    bad = bytearray(encode_request(1, Cmd.REG_WRITE, 0, words=[0xA5A5A5A5]))
    bad[-1] ^= 0x80
    good = encode_request(2, Cmd.REG_WRITE, 4, words=[1])
    assert m.feed(bytes(bad) + good) == _rsp(2, Cmd.REG_WRITE, Status.OK)
    assert m.counters["crc_errors"] == 1 and m.counters["frames"] == 1
    assert backend.regs == {4: 1}


def test_idle_timeout_resyncs():
    _, m = _setup()
    frame = encode_request(1, Cmd.REG_READ, 0, count=1)
    assert m.feed(frame[:5]) == b""
    assert not m.idle
    m.idle_timeout()
    assert m.idle and m.counters["resyncs"] == 1
    m.idle_timeout()                        # nothing held: not a resync
    assert m.counters["resyncs"] == 1
    assert m.feed(frame) == _rsp(1, Cmd.REG_READ, Status.OK, [0])


def test_overrun_fails_the_next_request():
    _, m = _setup()
    m.overrun()
    assert m.feed(encode_request(1, Cmd.REG_READ, 0, count=1)) == b""
    assert m.counters["overruns"] == 1 and m.counters["crc_errors"] == 1
    assert m.feed(encode_request(1, Cmd.REG_READ, 0, count=1)) != b""


def test_link_info_counts_itself_and_ignores_count():
    _, m = _setup()
    m.feed(encode_request(1, Cmd.REG_READ, 3, count=1))               # BAD_ADDRESS
    m.feed(b"\xa5\x00\x00")
    m.idle_timeout()
    rsp = m.feed(encode_request(2, Cmd.LINK_INFO, 0, count=1))
    words = [LINK_MAGIC, 1 | 256 << 8, 2, 0, 0, 1, 0, 1]
    assert rsp == _rsp(2, Cmd.LINK_INFO, Status.OK, words)


def test_counters_wrap_at_32_bits():
    _, m = _setup()
    m.counters["frames"] = 0xFFFF_FFFF
    m.feed(encode_request(1, Cmd.REG_READ, 0, count=1))
    assert m.counters["frames"] == 0


def test_client_and_model_round_trip():
    backend, m = _setup()
    c = LinkClient()
    assert c.receive(m.feed(c.start(Cmd.MEM_WRITE, 0x100, words=[1, 2, 3]))).words == ()
    assert c.receive(m.feed(c.start(Cmd.MEM_READ, 0x104, count=2))).words == (2, 3)
    info = LinkInfo.from_words(c.receive(m.feed(c.start(Cmd.LINK_INFO, 0))).words).check()
    assert info.frames == 3
    with pytest.raises(LinkStatusError, match="BUS_ERROR"):
        c.receive(m.feed(c.start(Cmd.REG_READ, 0x400, count=1)))
