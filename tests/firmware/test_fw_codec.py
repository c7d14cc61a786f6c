"""The C codec (lpaccel_link.c) against the Python one (lpaccel/link.py).

Through ``lpaccel-fw-codec`` (firmware/host/codec_check.c): the CRC check
value, request frames byte for byte equal to ``encode_request`` for random
inputs, and the C response parser finding the expected response (and only
it) among garbage, other sequence numbers, truncated and corrupted
responses built with ``encode_response``.
"""

import random
import subprocess

import pytest

from lpaccel.link import Cmd, Status, crc16, encode_request, encode_response
from tests.firmware.fwbuild import CODEC


class Codec:
    """``lpaccel-fw-codec`` as a line-oriented subprocess."""

    def __init__(self):
        self.proc = subprocess.Popen([str(CODEC)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def ask(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture
def codec(firmware):
    c = Codec()
    yield c
    c.close()


def test_crc_check_value(codec):
    assert codec.ask("crc " + b"123456789".hex()) == "29b1"
    assert codec.ask("crc ") == "ffff"


def test_crc_random_matches_python(codec):
    rng = random.Random(1)
    for _ in range(200):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        assert int(codec.ask("crc " + data.hex()), 16) == crc16(data)


def test_requests_match_python(codec):
    rng = random.Random(2)
    for i in range(500):
        cmd = rng.choice(list(Cmd))
        seq, addr = rng.randrange(256), rng.randrange(1 << 30) * 4
        count = rng.choice((1, 2, 255, 256, rng.randrange(1, 257)))
        if cmd.is_write:
            words = [rng.randrange(1 << 32) for _ in range(count)]
            want = encode_request(seq, cmd, addr, words)
            got = codec.ask(f"enc {seq} {int(cmd)} {addr} {count} " + " ".join(map(str, words)))
        else:
            want = encode_request(seq, cmd, addr, count=count)
            got = codec.ask(f"enc {seq} {int(cmd)} {addr} {count}")
        assert bytes.fromhex(got) == want, (i, cmd, count)


def test_encode_refuses_bad_counts(codec):
    assert codec.ask("enc 0 1 0 0") == ""
    assert codec.ask("enc 0 1 0 257") == ""


def _xact(codec, seq, cmd, count, stream):
    return codec.ask(f"xact {seq} {int(cmd)} 0 {count} {stream.hex()}")


def test_parser_finds_the_response(codec):
    words = [0x11111111, 0xDEADBEEF, 0x5A5AA5A5]
    rsp = encode_response(7, Cmd.MEM_READ, Status.OK, words)
    got = _xact(codec, 7, Cmd.MEM_READ, 3, rsp)
    assert got.startswith("ok 11111111 deadbeef 5a5aa5a5 |")


def test_parser_resynchronises(codec):
    """Garbage with false start markers, another SEQ's answer, a corrupted and a
    truncated copy come first: only the good response of this SEQ is taken."""
    rng = random.Random(3)
    for trial in range(200):
        seq = rng.randrange(256)
        n = rng.randrange(1, 40)
        words = [rng.randrange(1 << 32) for _ in range(n)]
        good = encode_response(seq, Cmd.REG_READ, Status.OK, words)
        other = encode_response((seq + 1) % 256, Cmd.REG_READ, Status.OK, words[::-1])
        bad = bytearray(good)
        bad[rng.randrange(6, len(bad))] ^= 1 << rng.randrange(8)
        pieces = [bytes([0x5A] * rng.randrange(4)),
                  bytes(rng.randrange(256) for _ in range(rng.randrange(30))),
                  other, bytes(bad), good[:rng.randrange(1, len(good))], good]
        stream = b"".join(pieces[:2]) + b"".join(rng.sample(pieces[2:5], 3)) + good
        got = _xact(codec, seq, Cmd.REG_READ, n, stream)
        assert got.startswith("ok " + " ".join(f"{w:08x}" for w in words) + " |"), \
            (trial, got, stream.hex())


def test_parser_never_takes_a_corrupted_response(codec):
    rng = random.Random(4)
    for _ in range(200):
        seq, n = rng.randrange(256), rng.randrange(1, 9)
        rsp = bytearray(encode_response(seq, Cmd.MEM_READ, Status.OK,
                                        [rng.randrange(1 << 32) for _ in range(n)]))
        for _ in range(rng.randint(1, 3)):
            rsp[rng.randrange(len(rsp))] ^= 1 << rng.randrange(8)
        got = _xact(codec, seq, Cmd.MEM_READ, n, bytes(rsp))
        # CRC-16 detects every error of up to 3 bits in these lengths.
        assert got.startswith("err "), got


@pytest.mark.parametrize("status,code", [(Status.BUS_ERROR, "LPACCEL_ERR_BUS"),
                                         (Status.BAD_COMMAND, "LPACCEL_ERR_LINK_BAD_COMMAND"),
                                         (Status.BAD_ADDRESS, "LPACCEL_ERR_LINK_BAD_ADDRESS")])
def test_error_status_is_returned(codec, status, code):
    from tests.firmware.fwbuild import error_codes
    got = _xact(codec, 9, Cmd.REG_WRITE, 1, encode_response(9, Cmd.REG_WRITE, status))
    assert got.startswith(f"err {error_codes()[code]} |"), got


def test_timeout_without_response(codec):
    from tests.firmware.fwbuild import error_codes
    got = _xact(codec, 1, Cmd.REG_READ, 1, b"")
    assert got.startswith(f"err {error_codes()['LPACCEL_ERR_LINK_TIMEOUT']} |"), got
    assert "timeouts 4" in got
