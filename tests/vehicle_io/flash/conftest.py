"""Fixtures of the flash tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flash_helpers import LiveVan


@pytest.fixture(scope="module")
def live_van() -> Iterator[LiveVan]:
    van = LiveVan()
    try:
        yield van
    finally:
        van.close()
