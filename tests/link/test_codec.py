"""Frames, CRC and the response parser of lpaccel.link against docs/link.md, byte by byte."""

import random
import struct

import pytest

from lpaccel import link
from lpaccel.link import (
    Cmd,
    LinkInfo,
    Response,
    ResponseParser,
    Status,
    crc16,
    encode_request,
    encode_response,
    split_transfer,
)
from lpaccel.rtl.bridge import crc as rtl_crc
from lpaccel.rtl.bridge import protocol as rtl_protocol


def _crc_bitwise(data):
    """CRC-16/CCITT-FALSE written out from its definition, independent of lpaccel.link."""
    crc = 0xFFFF
    for byte in data:
        for bit in range(7, -1, -1):
            top = (crc >> 15) ^ (byte >> bit & 1)
            crc = (crc << 1) & 0xFFFF
            if top:
                crc ^= 0x1021
    return crc


def test_crc_check_value():
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF


def test_crc_matches_bitwise_definition_and_rtl():
    rng = random.Random(1)
    for n in (1, 2, 7, 64, 1034):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert crc16(data) == _crc_bitwise(data) == rtl_crc.crc16(data)
        assert crc16(data[n // 2:], crc16(data[:n // 2])) == crc16(data)


def test_constants_agree_with_rtl():
    assert link.REQ_SOF == rtl_protocol.REQ_SOF == 0xA5
    assert link.RSP_SOF == rtl_protocol.RSP_SOF == 0x5A
    assert link.MAX_WORDS == rtl_protocol.MAX_WORDS == 256
    assert link.LINK_MAGIC == rtl_protocol.LINK_MAGIC == 0x4B4E4C4C
    assert link.PROTOCOL_VERSION == rtl_protocol.PROTOCOL_VERSION == 1
    assert {c.name: int(c) for c in link.Cmd} == {c.name: int(c) for c in rtl_protocol.Cmd}
    assert {s.name: int(s) for s in link.Status} == \
        {s.name: int(s) for s in rtl_protocol.Status}
    assert struct.pack("<I", link.LINK_MAGIC) == b"LLNK"


def test_read_request_by_hand():
    # docs/link.md: SOF, SEQ, CMD, COUNT = words - 1, ADDR little-endian, CRC low byte first.
    frame = encode_request(0x12, Cmd.REG_READ, 0x0000_0104, count=2)
    body = bytes([0xA5, 0x12, 0x01, 0x01, 0x04, 0x01, 0x00, 0x00])
    crc = _crc_bitwise(body)
    assert frame == body + bytes([crc & 0xFF, crc >> 8])
    assert len(frame) == 10


def test_write_request_by_hand():
    frame = encode_request(0xFF, Cmd.MEM_WRITE, 0x0001_0000, words=[0x1122_3344, 0xA5A5_5A5A])
    body = bytes([0xA5, 0xFF, 0x04, 0x01, 0x00, 0x00, 0x01, 0x00,
                  0x44, 0x33, 0x22, 0x11, 0x5A, 0x5A, 0xA5, 0xA5])
    crc = _crc_bitwise(body)
    assert frame == body + bytes([crc & 0xFF, crc >> 8])
    assert len(frame) == 10 + 4 * 2


def test_response_by_hand():
    frame = encode_response(7, Cmd.REG_READ, Status.OK, [0x4C50_4143])
    body = bytes([0x5A, 0x07, 0x01, 0x00, 0x01, 0x00, 0x43, 0x41, 0x50, 0x4C])
    crc = _crc_bitwise(body)
    assert frame == body + bytes([crc & 0xFF, crc >> 8])
    ack = encode_response(8, Cmd.REG_WRITE, Status.BUS_ERROR)
    assert ack[:6] == bytes([0x5A, 0x08, 0x02, 0x01, 0x00, 0x00]) and len(ack) == 8


def test_max_request_is_256_words():
    frame = encode_request(0, Cmd.MEM_WRITE, 0, words=range(256))
    assert frame[3] == 255 and len(frame) == 10 + 1024
    with pytest.raises(ValueError, match="1..256 words"):
        encode_request(0, Cmd.MEM_WRITE, 0, words=range(257))
    with pytest.raises(ValueError, match="1..256 words"):
        encode_request(0, Cmd.MEM_READ, 0, count=0)
    with pytest.raises(ValueError, match="needs count"):
        encode_request(0, Cmd.MEM_READ, 0)
    with pytest.raises(ValueError, match="seq"):
        encode_request(256, Cmd.MEM_READ, 0, count=1)
    with pytest.raises(ValueError, match="words\\[1\\]"):
        encode_request(0, Cmd.REG_WRITE, 0, words=[0, 1 << 32])


def test_request_length():
    assert link.request_length(Cmd.REG_READ, 255) == 10
    assert link.request_length(Cmd.REG_WRITE, 0) == 14
    assert link.request_length(Cmd.MEM_WRITE, 255) == 1034
    assert link.request_length(0x77, 3) == 10         # unknown commands carry no data


# --- parser ----------------------------------------------------------------------------

def _frames():
    return [encode_response(1, Cmd.REG_READ, Status.OK, [0xDEADBEEF]),
            encode_response(2, Cmd.MEM_WRITE, Status.OK),
            encode_response(3, Cmd.MEM_READ, Status.OK, list(range(256))),
            encode_response(4, Cmd.REG_WRITE, Status.BUS_ERROR)]


def test_parser_whole_and_byte_by_byte():
    stream = b"".join(_frames())
    whole = ResponseParser().feed(stream)
    p = ResponseParser()
    single = [r for b in stream for r in p.feed(bytes([b]))]
    assert whole == single
    assert [r.seq for r in whole] == [1, 2, 3, 4]
    assert whole[0] == Response(1, Cmd.REG_READ, Status.OK, (0xDEADBEEF,))
    assert whole[2].words == tuple(range(256))
    assert whole[3].status == Status.BUS_ERROR
    assert p.junk == 0 and p.crc_errors == 0 and p.frames == 4


def test_parser_skips_junk_and_bad_frames():
    good = _frames()
    bad = bytearray(good[0])
    bad[7] ^= 0x10
    stream = b"\x00\x5a\x13" + bytes(bad) + b"\x5a" + good[1] + b"\xff" * 3 + good[2]
    p = ResponseParser()
    out = p.feed(stream)
    assert [r.seq for r in out] == [2, 3]
    assert p.crc_errors >= 1 and p.junk > 0


def test_parser_finds_a_frame_inside_a_truncated_one():
    # A response cut short, then a complete one: the candidate swallowing the second fails
    # its CRC and the parser rescans the buffered bytes from the byte after its SOF.
    first = encode_response(1, Cmd.MEM_READ, Status.OK, list(range(4)))
    second = encode_response(2, Cmd.REG_READ, Status.OK, [5])
    p = ResponseParser()
    out = p.feed(first[:9] + second + b"\x00" * 20)
    assert [r.seq for r in out] == [2]


def test_parser_rejects_impossible_headers():
    p = ResponseParser()
    # LEN 257, and data on an error status: not frame starts.
    assert p.feed(bytes([0x5A, 1, 1, 0, 0x01, 0x01]) + bytes([0x5A, 1, 1, 1, 1, 0])) == []
    assert p.buffered < 6
    good = encode_response(9, Cmd.REG_READ, Status.OK, [1])
    assert p.feed(good) == [Response(9, Cmd.REG_READ, Status.OK, (1,))]


def test_parser_expect_filters_headers():
    p = ResponseParser()
    p.expect(5, Cmd.REG_READ, 1)
    other_seq = encode_response(4, Cmd.REG_READ, Status.OK, [1])
    other_cmd = encode_response(5, Cmd.REG_WRITE, Status.OK)
    long_noise = bytes([0x5A, 5, 1, 0, 0xFF, 0])      # LEN 255 would stall the parser
    good = encode_response(5, Cmd.REG_READ, Status.OK, [7])
    out = p.feed(other_seq + other_cmd + long_noise + good)
    assert out == [Response(5, Cmd.REG_READ, Status.OK, (7,))]
    assert p.other_seq == 1


def test_parser_unknown_cmd_and_status_are_reported_as_ints():
    out = ResponseParser().feed(encode_response(1, 0x77, Status.BAD_COMMAND))
    assert out[0].cmd == 0x77 and out[0].status == Status.BAD_COMMAND


# --- transfers and LINK_INFO --------------------------------------------------------------

@pytest.mark.parametrize("addr, nbytes", [(0, 4), (0, 1024), (0, 1028), (4092, 8), (3, 2),
                                          (4095, 1), (1, 10000), (8192, 4096), (100, 0)])
def test_split_transfer(addr, nbytes):
    chunks = split_transfer(addr, nbytes)
    lo, hi = addr & ~3, (addr + nbytes + 3) & ~3
    pos = lo
    for a, words in chunks:
        assert a == pos and a % 4 == 0
        assert 1 <= words <= 256
        assert a % 4096 + 4 * words <= 4096
        pos += 4 * words
    assert pos == hi
    # Greedy: a chunk ends only at the end, a 4 KiB boundary or 256 words.
    for a, words in chunks[:-1]:
        assert words == 256 or (a + 4 * words) % 4096 == 0


def test_link_info_round_trip():
    info = LinkInfo.from_words([0x4B4E4C4C, 1 | 256 << 8, 10, 1, 2, 3, 4, 5])
    assert info.version == 1 and info.max_words == 256 and info.duplicates == 4
    assert info.to_words() == (0x4B4E4C4C, 1 | 256 << 8, 10, 1, 2, 3, 4, 5)
    assert info.check() is info
    with pytest.raises(link.LinkError, match="not an lpaccel host bridge|does not lead"):
        LinkInfo.from_words([0, 1, 0, 0, 0, 0, 0, 0]).check()
    with pytest.raises(link.LinkError, match="link protocol 2"):
        LinkInfo.from_words([0x4B4E4C4C, 2, 0, 0, 0, 0, 0, 0]).check()
