"""Shared fixtures of the gateway tests: a small DBC, unique virtual channels, thread hygiene."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import can
import cantools
import pytest

from gw_helpers import TEST_DBC, FakeClock

from vehicle_io.e2e import E2ESpec


@pytest.fixture(scope="session")
def test_db() -> cantools.database.can.Database:
    return cantools.database.load_string(TEST_DBC, "dbc")


@pytest.fixture(scope="session")
def z10_db() -> cantools.database.can.Database:
    from vehicle_io import load_database

    return load_database()


@pytest.fixture(scope="session")
def prot_spec(test_db) -> E2ESpec:
    spec = E2ESpec.from_message(test_db.get_message_by_name("Prot"))
    assert spec is not None
    return spec


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def channel() -> str:
    """A virtual-bus channel no other test uses."""
    return f"gw-test-{uuid.uuid4().hex}"


@pytest.fixture
def virtual_bus(channel) -> Iterator[Callable[..., can.BusABC]]:
    """Factory of virtual buses on fresh channels; every bus is shut down after the test."""
    opened: list[can.BusABC] = []

    def make(chan: str | None = None, **kwargs: object) -> can.BusABC:
        bus = can.Bus(interface="virtual", channel=chan or channel, **kwargs)
        opened.append(bus)
        return bus

    yield make
    for bus in opened:
        bus.shutdown()


def _gateway_threads() -> list[threading.Thread]:
    return [
        t for t in threading.enumerate()
        if t.is_alive() and (t.name.startswith("z10-") or t.name.startswith("Notifier"))
    ]


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    """Fail any test that leaves a gateway, recorder or Notifier thread running."""
    before = set(_gateway_threads())
    yield
    deadline = time.monotonic() + 5.0
    leftover = [t for t in _gateway_threads() if t not in before]
    while leftover and time.monotonic() < deadline:
        time.sleep(0.02)
        leftover = [t for t in _gateway_threads() if t not in before]
    assert not leftover, f"threads left running: {[t.name for t in leftover]}"


