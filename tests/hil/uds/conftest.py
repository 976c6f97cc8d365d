"""Fixtures of the UDS server tests."""

from __future__ import annotations

import pytest
from uds_helpers import Van


@pytest.fixture
def van() -> Van:
    return Van()
