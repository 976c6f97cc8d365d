"""Fixtures for the rest-bus tests: rigs that always close, one shared recorded drive."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hil.bus import channel_names
from hil.ecus.gwstub import GatewayStub
from hil.rig import Recorder, Rig

_serial = itertools.count()


@pytest.fixture
def make_rig() -> Iterator[Callable[..., Rig]]:
    """``make_rig(**kwargs)``: a Rig on its own channel names, closed after the test."""
    made: list[Rig] = []

    def make(**kwargs: Any) -> Rig:
        kwargs.setdefault("channel_prefix", f"ecu-test{next(_serial)}-")
        rig = Rig(**kwargs)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.close()
    left = [name for name in channel_names() if name.startswith("ecu-test")]
    assert left == [], f"test left channels open: {left}"


class Drive:
    """A rig with a gateway stand-in, recorded for ``seconds`` of bus time."""

    def __init__(self, rig: Rig, stub: GatewayStub, rec: Recorder, seconds: float) -> None:
        self.rig, self.stub, self.rec, self.seconds = rig, stub, rec, seconds


@pytest.fixture(scope="module")
def drive() -> Iterator[Drive]:
    """3 s of the whole rig with the gateway stand-in commanding a gentle drive-off."""
    rig = Rig(seed=7, channel_prefix=f"ecu-mod{next(_serial)}-")
    try:
        stub = GatewayStub(rig)
        stub.set("GW_DriveCommand", GW_GearRequest=3, GW_EpbRequest=2, GW_TorqueRequest=60.0)
        rec = rig.record()
        rig.run_for(3.0)
        rec.stop()
        yield Drive(rig, stub, rec, 3.0)
    finally:
        rig.close()
