"""The sans-IO LinkClient: sequence numbers, retries, stale answers, errors (docs/link.md)."""

import pytest

from lpaccel.link import (
    Cmd,
    LinkClient,
    LinkError,
    LinkStatusError,
    Response,
    Status,
    encode_request,
    encode_response,
)


def test_new_operation_takes_the_next_seq_and_wraps():
    c = LinkClient(seq=254)
    seqs = []
    for _ in range(3):
        frame = c.start(Cmd.REG_WRITE, 0, words=[1])
        seqs.append(frame[1])
        assert c.receive(encode_response(frame[1], Cmd.REG_WRITE, Status.OK)) is not None
    assert seqs == [254, 255, 0]


def test_retry_resends_the_same_frame():
    c = LinkClient(retries=2)
    frame = c.start(Cmd.MEM_WRITE, 0x40, words=[1, 2, 3])
    assert c.timeout() == frame
    assert c.timeout() == frame
    assert c.attempts == 3
    with pytest.raises(LinkError) as info:
        c.timeout()
    error = info.value
    assert error.cmd == Cmd.MEM_WRITE and error.addr == 0x40 and error.attempts == 3
    assert "MEM_WRITE of 3 word(s) at 0x00000040 failed after 3 attempts" in str(error)
    assert "nothing came back" in str(error)
    assert not c.busy
    # The next operation takes a new SEQ.
    assert c.start(Cmd.REG_READ, 0, count=1)[1] == frame[1] + 1


def test_link_error_counts_what_was_seen():
    c = LinkClient(retries=1)
    c.start(Cmd.REG_READ, 0, count=1)
    bad = bytearray(encode_response(0, Cmd.REG_READ, Status.OK, [1]))
    bad[-1] ^= 1
    c.receive(b"\x00\x11" + bytes(bad))
    assert c.retry_due
    c.timeout()
    c.receive(encode_response(9, Cmd.REG_READ, Status.OK, [2]))
    with pytest.raises(LinkError) as info:
        c.timeout()
    seen = info.value.seen
    assert seen["crc_errors"] == 1 and seen["other_seq"] == 1 and seen["junk"] > 0
    assert "bytes came back but no good response" in str(info.value)


def test_stale_response_of_an_earlier_attempt_is_dropped():
    c = LinkClient()
    first = c.start(Cmd.REG_READ, 0x10, count=1)
    c.timeout()                         # the answer was late: the host resent
    rsp = c.receive(encode_response(first[1], Cmd.REG_READ, Status.OK, [0x55]))
    assert rsp == Response(first[1], Cmd.REG_READ, Status.OK, (0x55,))
    # The answer to the resend arrives during the next operation: it must not count.
    second = c.start(Cmd.REG_READ, 0x14, count=1)
    late = encode_response(first[1], Cmd.REG_READ, Status.OK, [0x55])
    assert c.receive(late) is None
    assert c.receive(encode_response(second[1], Cmd.REG_READ, Status.OK, [0x66])).words == (0x66,)


def test_response_between_operations_is_ignored():
    c = LinkClient()
    assert c.receive(encode_response(0, Cmd.REG_READ, Status.OK, [1])) is None
    frame = c.start(Cmd.REG_READ, 0, count=1)
    assert c.receive(encode_response(frame[1], Cmd.REG_READ, Status.OK, [2])).words == (2,)


def test_wrong_cmd_or_length_is_not_accepted():
    c = LinkClient()
    frame = c.start(Cmd.REG_READ, 0, count=2)
    seq = frame[1]
    assert c.receive(encode_response(seq, Cmd.MEM_READ, Status.OK, [1, 2])) is None
    assert c.receive(encode_response(seq, Cmd.REG_READ, Status.OK, [1])) is None
    # OK without data for a read: a device fault, dropped, resend now.
    assert c.receive(encode_response(seq, Cmd.REG_READ, Status.OK)) is None
    assert c.retry_due and c.stats["bad_length"] == 1
    assert c.timeout() == frame
    assert c.receive(encode_response(seq, Cmd.REG_READ, Status.OK, [1, 2])).words == (1, 2)


def test_unverified_data_never_returned():
    c = LinkClient()
    frame = c.start(Cmd.MEM_READ, 0, count=4)
    good = encode_response(frame[1], Cmd.MEM_READ, Status.OK, [1, 2, 3, 4])
    for i in range(len(good)):
        for bit in range(8):
            bad = bytearray(good)
            bad[i] ^= 1 << bit
            assert c.receive(bytes(bad)) is None
            c.parser.reset()
    assert c.receive(good).words == (1, 2, 3, 4)


@pytest.mark.parametrize("status, text", [
    (Status.BUS_ERROR, "BUS_ERROR, the bus answered SLVERR/DECERR"),
    (Status.BAD_COMMAND, "BAD_COMMAND"),
    (Status.BAD_ADDRESS, "BAD_ADDRESS"),
    (9, "unknown status 9"),
])
def test_status_errors(status, text):
    c = LinkClient()
    frame = c.start(Cmd.REG_WRITE, 0x200, words=[1, 2])
    with pytest.raises(LinkStatusError) as info:
        c.receive(encode_response(frame[1], Cmd.REG_WRITE, status))
    assert text in str(info.value) and "REG_WRITE of 2 word(s) at 0x00000200" in str(info.value)
    assert info.value.status == status and info.value.addr == 0x200
    assert not c.busy


def test_bus_error_message_names_partial_writes_and_fix():
    c = LinkClient()
    frame = c.start(Cmd.MEM_WRITE, 0x1000, words=[1, 2])
    with pytest.raises(LinkStatusError, match="words before the failing one were written.*"
                                              "CAP_MEM_SIZE"):
        c.receive(encode_response(frame[1], Cmd.MEM_WRITE, Status.BUS_ERROR))


def test_start_checks_arguments():
    c = LinkClient()
    with pytest.raises(ValueError, match="not a multiple of 4"):
        c.start(Cmd.REG_READ, 2, count=1)
    with pytest.raises(ValueError, match="crosses a 4 KiB boundary"):
        c.start(Cmd.MEM_READ, 4092, count=2)
    with pytest.raises(ValueError, match="1..256 words"):
        c.start(Cmd.MEM_WRITE, 0, words=[0] * 257)
    with pytest.raises(ValueError, match="needs words"):
        c.start(Cmd.MEM_WRITE, 0, count=1)
    with pytest.raises(ValueError, match="LINK_INFO takes address 0"):
        c.start(Cmd.LINK_INFO, 4)
    # A register command may cross 4 KiB (the rule is the memory window's).
    frame = c.start(Cmd.REG_READ, 4092, count=2)
    with pytest.raises(RuntimeError, match="still under way"):
        c.start(Cmd.REG_READ, 0, count=1)
    assert frame == encode_request(0, Cmd.REG_READ, 4092, count=2)


def test_link_info_frame():
    c = LinkClient(seq=3)
    assert c.start(Cmd.LINK_INFO, 0) == encode_request(3, Cmd.LINK_INFO, 0, count=8)
