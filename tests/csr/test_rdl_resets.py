"""The register map's reset values against the RDL text, read independently.

``rdl_reset_table`` reads ``rtl/regmap/lpaccel.rdl`` with its own small
parser; the generator (``register_map``) must agree with it on every
register's address, width and reset value, and the CSR cocotb suite checks
the bank's reads after reset against the same table.
"""

import dataclasses

import pytest
from csr_top import _mutate, regmap_config
from rdl_reset_table import read_rdl_resets, reset_mismatches, soc_parameters
from test_csr_cocotb import PARAMS

from lpaccel.rtl.regmap import register_map
from lpaccel.rtl.soc_config import SocConfig

CONFIGS = {"csr_suite": PARAMS, "default": {"soc": SocConfig().to_dict(), "build_hash": 7}}


def _table(params):
    soc = SocConfig.from_dict(params["soc"])
    return read_rdl_resets(soc_parameters(soc, params["build_hash"]))


def test_parser_reads_hand_checked_values():
    # Values read off the RDL by eye, so the parser itself is pinned.
    table = _table(PARAMS)
    assert table["MAGIC"] == (0x000, 32, 0x4C50_4143, True)
    assert table["WATCHDOG"] == (0x0C0, 32, 0x10_0000, True)
    assert table["JOB_GROUP"] == (0x0A4, 32, 32, True)
    assert table["CAP_MEM_SIZE"] == (0x028, 64, (1 << 33) + 0x1000, True)
    assert table["PERF_MEM_GAP"] == (0x270, 64, 0, True)
    assert table["JOB_PUSH"][3] is False and table["CONTROL"][2] == 0
    assert table["BUILD_HASH"][2] == 0x5EED_C0DE and table["CAP_MEMORY"][2] == 1


@pytest.mark.parametrize("config", list(CONFIGS))
def test_generator_agrees_with_rdl_text(config):
    params = CONFIGS[config]
    assert reset_mismatches(_table(params), register_map(regmap_config(params))) == []


def test_mismatches_are_named():
    table = _table(PARAMS)
    regmap = register_map(regmap_config(PARAMS))
    wrong_reset = _mutate(regmap, "WATCHDOG", "CYCLES", reset=0x10_0001)
    assert reset_mismatches(table, wrong_reset) == [
        "WATCHDOG: the map has address 0xc0, width 32, reset 0x100001; the RDL text says "
        "0xc0, 32, 0x100000"]
    moved = dataclasses.replace(regmap, registers=tuple(
        dataclasses.replace(reg, address=0x0C4) if reg.name == "WATCHDOG" else reg
        for reg in regmap))
    assert [p.split(":")[0] for p in reset_mismatches(table, moved)] == ["WATCHDOG"]
    fewer = dataclasses.replace(regmap, registers=tuple(
        reg for reg in regmap if reg.name != "SCRATCH"))
    assert reset_mismatches(table, fewer) == ["SCRATCH: only in the RDL text"]
