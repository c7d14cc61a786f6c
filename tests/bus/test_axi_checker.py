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
            "catches_early_rlast", "catches_missing_rlast", "catches_leftovers"]


def test_checker_rules():
    # One simulator run: a clean sequence plus one test per rule, each
    # asserting the checker reported exactly that violation.
    run_cocotb(**PROBE, testcase=NEGATIVE, seed=1)


def test_checker_violation_fails_the_test():
    with pytest.raises(AssertionError, match=r"fails_on_violation.*\[r\] R beat id=0x1 without"):
        run_cocotb(**PROBE, testcase="fails_on_violation", seed=1)
