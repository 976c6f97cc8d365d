"""Helpers of the UDS server tests: a settable clock and the van's conditions."""

from __future__ import annotations

import time

from hil.uds.server import Conditions


class StepClock:
    """Real monotonic time plus a jump the test controls (threads keep running, time can leap)."""

    def __init__(self, follow_real_time: bool = True) -> None:
        self.follow = follow_real_time
        self.offset_s = 0.0
        self._base = time.monotonic()

    def __call__(self) -> float:
        return (time.monotonic() - self._base if self.follow else 0.0) + self.offset_s

    def advance(self, seconds: float) -> None:
        self.offset_s += seconds


class Van:
    """The conditions callback: a van the test can drive."""

    def __init__(self) -> None:
        self.speed_mps = 0.0
        self.supply_ok = True

    def __call__(self) -> Conditions:
        return Conditions(speed_mps=self.speed_mps, supply_ok=self.supply_ok)
