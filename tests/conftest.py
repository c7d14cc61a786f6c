"""Project-wide pytest setup: the ``slow`` marker and warnings policy."""

import sys

import pytest

from lpaccel.paths import ROOT

# Tests may import helpers by repository path (e.g. the cocotb simulator's
# Python path is built from sys.path); project code itself is imported as
# lpaccel.* from the editable install.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run tests marked slow (long sweeps, full-size shapes)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: long-running test, skipped unless --run-slow is given")
    config.addinivalue_line(
        "markers", "synth: builds a bitstream (about two minutes); part of make test")
    # Deprecation warnings are errors (STYLE.md), in pytest as in cocotb runs.
    config.addinivalue_line("filterwarnings", "error::DeprecationWarning")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow test: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
