"""Fixtures of the firmware tests."""

import pytest

from tests.firmware.fwbuild import build_firmware


@pytest.fixture(scope="session")
def firmware():
    """Build the firmware once per session; the build's output text."""
    return build_firmware()
