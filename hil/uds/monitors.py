"""Fault monitors that set the simulated ECUs' DTCs from what happens in the van and on the bus.

* :class:`PlantFaultMonitor` judges the plant state (field names of ``hil.plant.state``) once
  per call: battery over-temperature, HV isolation (ECE R100 ohm-per-volt limit), vehicle speed
  implausible against the wheel speeds, cargo-bay over-temperature.
* :class:`LostCommunicationMonitor` is a python-can listener: each ECU expects frames from its
  partners and reports the U-code when one is missing for longer than its timeout.

Both call :meth:`hil.uds.server.UdsServer.report_fault` (test passed / failed every check, as
a real ECU's monitor does), under the transport's lock when one is given.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import can

from hil.uds.server import UdsServer

__all__ = ["ExpectedFrame", "LostCommunicationMonitor", "PlantFaultMonitor", "Z10_EXPECTED_FRAMES"]


def _value(state: Mapping[str, float], key: str) -> float | None:
    try:
        value = float(state[key])
    except (KeyError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class PlantFaultMonitor:
    """DTCs from the plant state. ``servers`` by ECU name (vcu, bms, cbc); missing ECUs are skipped."""

    def __init__(self, servers: Mapping[str, UdsServer], *, cell_over_temp_c: float = 60.0,
                 isolation_fault_ohm_per_v: float = 100.0, speed_plausibility_mps: float = 2.0,
                 cargo_over_temp_c: float = 45.0,
                 lock: AbstractContextManager[object] | None = None) -> None:
        self.servers = servers
        self.cell_over_temp_c = cell_over_temp_c
        self.isolation_fault_ohm_per_v = isolation_fault_ohm_per_v
        self.speed_plausibility_mps = speed_plausibility_mps
        self.cargo_over_temp_c = cargo_over_temp_c
        self._lock = lock if lock is not None else nullcontext()
        #: checks skipped because an input was missing or not finite
        self.skipped = 0

    def _report(self, ecu: str, name: str, failed: bool | None) -> None:
        server = self.servers.get(ecu)
        if server is None:
            return
        if failed is None:
            self.skipped += 1  # no valid input: the test did not complete this time
            return
        with self._lock:
            server.report_fault(name, failed)

    def update(self, state: Mapping[str, float]) -> None:
        t_max = _value(state, "cell_t_max_c")
        self._report("bms", "over_temperature", None if t_max is None else t_max > self.cell_over_temp_c)
        r_iso = _value(state, "isolation_resistance_ohm")
        v_pack = _value(state, "pack_voltage_v")
        iso_failed = None
        if r_iso is not None and v_pack is not None:
            iso_failed = r_iso < self.isolation_fault_ohm_per_v * max(v_pack, 1.0)
        self._report("bms", "isolation", iso_failed)
        speed = _value(state, "speed_mps")
        wheels = [_value(state, f"wheel_speed_{w}_mps") for w in ("fl", "fr", "rl", "rr")]
        plausible = None
        if speed is not None and all(w is not None for w in wheels):
            mean = sum(w for w in wheels if w is not None) / 4.0
            plausible = abs(abs(speed) - abs(mean)) > self.speed_plausibility_mps
        self._report("vcu", "speed_implausible", plausible)
        cargo = _value(state, "cargo_bay_temp_c")
        self._report("cbc", "cargo_over_temperature", None if cargo is None else cargo > self.cargo_over_temp_c)


@dataclass(frozen=True)
class ExpectedFrame:
    """ECU ``ecu`` expects frame ``can_id`` at least every ``timeout_s``, else sets DTC ``dtc_name``."""

    ecu: str
    dtc_name: str
    can_id: int
    timeout_s: float


#: VCU_Status 0xC0, BMS_Status 0x100 (pt); CBC_DoorStatus 0xD0, GW_CargoCommand 0x90 (body)
Z10_EXPECTED_FRAMES: tuple[ExpectedFrame, ...] = (
    ExpectedFrame("vcu", "lost_comm_bms", 0x100, 1.0),
    ExpectedFrame("bms", "lost_comm_vcu", 0x0C0, 1.0),
    ExpectedFrame("vcu", "lost_comm_body", 0x0D0, 1.0),
    ExpectedFrame("cbc", "lost_comm_vcu", 0x090, 1.0),
)


class LostCommunicationMonitor(can.Listener):
    """Lost-communication U-codes from frames seen (or not) on one bus.

    Add it to the bus's Notifier (it is a python-can listener) and call :meth:`check`
    periodically; time comes from ``clock`` (the timeout starts when the monitor starts).
    """

    def __init__(self, servers: Mapping[str, UdsServer], expected: tuple[ExpectedFrame, ...] = Z10_EXPECTED_FRAMES,
                 *, clock: Callable[[], float] = time.monotonic,
                 lock: AbstractContextManager[object] | None = None) -> None:
        self.servers = servers
        self.expected = tuple(e for e in expected if e.ecu in servers)
        self._clock = clock
        self._lock = lock if lock is not None else nullcontext()
        start = clock()
        self._last_seen = {e.can_id: start for e in self.expected}
        self._seen_lock = threading.Lock()

    def on_message_received(self, msg: can.Message) -> None:
        if msg.is_error_frame or msg.is_remote_frame:
            return
        if msg.arbitration_id in self._last_seen:
            now = self._clock()
            with self._seen_lock:
                self._last_seen[msg.arbitration_id] = now

    def check(self) -> dict[str, bool]:
        """Report every expectation; ``{"ecu.dtc_name": failed}``."""
        now = self._clock()
        results = {}
        for e in self.expected:
            with self._seen_lock:
                age_s = now - self._last_seen[e.can_id]
            failed = age_s > e.timeout_s
            with self._lock:
                self.servers[e.ecu].report_fault(e.dtc_name, failed)
            results[f"{e.ecu}.{e.dtc_name}"] = failed
        return results
