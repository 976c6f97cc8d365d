"""Fixtures of the hub tests: hubs on free loopback ports, clients that always close, and a
check that no test leaves a hub thread, a hilbus channel or a clock thread behind."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import can
import pytest
from hub_helpers import RawClient

from hil.bus import channel_names
from hil.hub import Hub, HubChannel, default_channels


def _our_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate()
            if t.is_alive() and (t.name.startswith("z10-") or t.name == "hilbus-realclock")]


@pytest.fixture(autouse=True)
def nothing_left_running() -> Iterator[None]:
    """Fail a test that leaves a hub/emulator thread, a clock thread or a hilbus channel."""
    before_threads = set(_our_threads())
    before_channels = set(channel_names())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        threads = [t.name for t in _our_threads() if t not in before_threads]
        channels = sorted(set(channel_names()) - before_channels)
        if not threads and not channels or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not threads, f"threads left running: {threads}"
    assert not channels, f"hilbus channels left open: {channels}"


@pytest.fixture
def prefix() -> str:
    """Backing channel names no other test uses."""
    return f"t{uuid.uuid4().hex[:8]}-"


@pytest.fixture
def make_hub(prefix: str) -> Iterator[Callable[..., Hub]]:
    """``make_hub(channels=None, **kwargs)``: a started hub on 127.0.0.1, a free port; shut down after."""
    hubs: list[Hub] = []

    def make(channels: tuple[HubChannel, ...] | None = None, **kwargs: object) -> Hub:
        kwargs.setdefault("port", 0)
        hub = Hub(channels if channels is not None else default_channels(prefix=prefix), **kwargs)  # type: ignore[arg-type]
        hubs.append(hub)
        return hub.start()

    yield make
    for hub in hubs:
        hub.shutdown()


@pytest.fixture
def hub(make_hub: Callable[..., Hub]) -> Hub:
    """The default hub: hilbus pt, body, ads in real time."""
    return make_hub()


@pytest.fixture
def raw_client() -> Iterator[Callable[..., RawClient]]:
    """``raw_client(port, channel=None, mode=None)``: a socketcand client on a plain socket."""
    clients: list[RawClient] = []

    def make(port: int, channel: str | None = None, mode: str | None = None, **kwargs: object) -> RawClient:
        client = RawClient(port, **kwargs)  # type: ignore[arg-type]
        clients.append(client)
        if channel is not None:
            client.open(channel)
            if mode == "raw":
                client.rawmode()
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def sc_bus() -> Iterator[Callable[..., can.BusABC]]:
    """``sc_bus(port, channel)``: python-can's socketcand client; shut down after the test."""
    buses: list[can.BusABC] = []

    def make(port: int, channel: str = "pt", **kwargs: object) -> can.BusABC:
        bus = can.Bus(interface="socketcand", host="127.0.0.1", port=port, channel=channel, **kwargs)
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        bus.shutdown()
