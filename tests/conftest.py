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


_SESSION_START = None


def pytest_sessionstart(session):
    global _SESSION_START
    import time
    _SESSION_START = time.time()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Functional coverage of this run (``sim/infra/coverage.py``): the files the
    simulations wrote since the session started, merged per model, with their
    holes; the merged files go to ``build/coverage/merged-<model>.*``."""
    if hasattr(config, "workerinput"):
        return                      # an xdist worker: the controller reports
    from lpaccel.paths import build_dir
    from lpaccel.sim.infra.coverage import merge_dir
    folder = build_dir("coverage")
    files = [f for f in sorted(folder.glob("*.json"))
             if not f.name.startswith("merged-") and _SESSION_START is not None
             and f.stat().st_mtime >= _SESSION_START]
    if not files:
        return
    terminalreporter.section("functional coverage")
    for model, cov in sorted(merge_dir(folder, files).items()):
        terminalreporter.write_line(cov.summary())
        cov.write(f"merged-{model}", folder)
