"""The AXI4 protocol checker catches every rule it claims (negative tests)."""

import pytest
from bus_tops import AxiProbe

from lpaccel.sim.infra.harness import run_cocotb

PROBE = {"component_factory": AxiProbe, "name": "axi_probe",
         "params": {"data_width": 64, "id_width": 4}, "test_module": "bus.cocotb_checker"}

NEGATIVE = ["good_sequence", "catches_valid_drop", "catches_valid_drop_every_channel",
            "catches_payload_change", "catches_w_payload_change", "catches_b_payload_change",
            "catches_r_payload_change", "catches_4k_crossing", "catches_size_above_bus",
            "catches_bad_burst_types", "catches_strobe_outside_beat", "catches_valid_in_reset",
            "reset_clears_outstanding", "catches_short_w_burst",
            "catches_missing_wlast", "catches_long_w_before_aw", "catches_b_without_request",
            "catches_b_before_last_w", "catches_b_with_wrong_id", "catches_r_without_request",
            "catches_early_rlast", "catches_missing_rlast", "catches_leftovers",
            "lite_good_sequence", "lite_catches_b_before_w", "lite_catches_r_without_request",
            "lite_catches_unstable_and_reset"]


def test_checker_rules():
    # One simulator run: a clean sequence plus one test per rule, each
    # asserting the checker reported exactly that violation.
    run_cocotb(**PROBE, testcase=NEGATIVE, seed=1)


def test_checker_violation_fails_the_test():
    with pytest.raises(AssertionError, match=r"fails_on_violation.*\[r\] R beat id=0x1 without"):
        run_cocotb(**PROBE, testcase="fails_on_violation", seed=1)


def _lanes_by_bytes(addr, size, length, burst, beat, bus_bytes):
    """The byte lanes of one beat, from the byte addresses it transfers.

    Written independently of the checker: list every burst's byte addresses
    (AXI4 A3.4.1 in words: a FIXED burst repeats its first transfer; INCR
    steps by the size from the aligned start; WRAP does so inside the
    container of ``size * beats`` bytes), keep the bytes of beat ``beat``
    that lie at or after the start address, and fold them onto the bus.
    """
    aligned = addr - addr % size
    if burst == 0:
        first = addr
    elif burst == 1:
        first = aligned + beat * size
    else:
        span = size * (length + 1)
        first = addr - addr % span + (aligned + beat * size) % span
    covered = range(first - first % size, first - first % size + size)
    if beat == 0 or burst == 0:      # the transfer at the (maybe unaligned) start
        covered = [a for a in covered if a >= addr]
    return sum(1 << (a % bus_bytes) for a in covered)


@pytest.mark.parametrize("bus_bytes", [4, 8, 16])
def test_strobe_lanes_against_byte_addresses(bus_bytes):
    import itertools
    import random

    from lpaccel.sim.infra.axi_checker import AxiProtocolChecker
    checker = object.__new__(AxiProtocolChecker)   # only its arithmetic, no simulator
    checker.data_bytes = bus_bytes
    rng = random.Random(bus_bytes)
    sizes = [1 << k for k in range(bus_bytes.bit_length())]
    cases = 0
    for size, burst in itertools.product(sizes, (0, 1, 2)):
        lengths = (1, 3, 7, 15) if burst == 2 else (0, 1, 2, 5, 15)
        for length in lengths:
            for _ in range(12):
                addr = rng.randrange(0x1000, 0x2000)
                if burst == 2:
                    addr -= addr % size
                for beat in range(length + 1):
                    request = {"addr": addr, "len": length, "size": size.bit_length() - 1,
                               "burst": burst}
                    got = checker._lanes(request, beat)
                    want = _lanes_by_bytes(addr, size, length, burst, beat, bus_bytes)
                    assert got == want, (addr, size, length, burst, beat, hex(got), hex(want))
                    cases += 1
    assert cases > 1000
    # A port without AxSIZE moves full-width beats.
    assert checker._lanes({"addr": 0x1003, "len": 1}, 0) == ((1 << bus_bytes) - 1) & ~0b111
