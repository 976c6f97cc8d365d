"""Fixtures of the control-loop tests."""

from __future__ import annotations

import pytest

from ctl_helpers import Harness


@pytest.fixture
def harness() -> Harness:
    return Harness()
