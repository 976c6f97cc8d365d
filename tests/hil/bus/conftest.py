"""Fixtures for the timed virtual bus tests: a simulated clock, buses that always close,
and a check that no test leaves a channel or a clock thread behind."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import can
import pytest

from hil.bus import HilBus, SimClock, channel_names


def _clock_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "hilbus-realclock" and t.is_alive()]


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    """Fail a test that leaves an open channel or a running clock thread."""
    assert channel_names() == [], f"channels left open before the test: {channel_names()}"
    yield
    left = channel_names()
    threads = _clock_threads()
    assert left == [], f"test left channels open: {left}"
    assert threads == [], f"test left clock threads running: {threads}"


@pytest.fixture
def sim() -> SimClock:
    return SimClock()


@pytest.fixture
def make_bus(sim: SimClock) -> Iterator[Callable[..., HilBus]]:
    """``make_bus(node, channel="t", **kwargs)``: a hilbus on the test's SimClock, closed after."""
    opened: list[HilBus] = []

    def make(node: str | None = None, channel: str = "t", **kwargs: object) -> HilBus:
        kwargs.setdefault("clock", sim)
        bus = can.Bus(interface="hilbus", channel=channel, node=node, **kwargs)
        assert isinstance(bus, HilBus)
        opened.append(bus)
        return bus

    yield make
    for bus in opened:
        bus.shutdown()
