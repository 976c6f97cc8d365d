"""A stand-in for the gateway's cyclic frames, for tests and benchmarks of the rig.

This is not the gateway (that is vehicle_io's control loop, under test against the rig): it
sends GW_* messages at their DBC cycle times with correct Z10-P1 protection and whatever
values the caller sets, nothing more. Tests use it to command the simulated ECUs; the rig
benchmark uses it to load the buses as the real gateway would.
"""

from __future__ import annotations

from typing import Any

from hil.bus.clock import PRIO_EVENT, TimerHandle, seconds_to_ps
from hil.ecus.base import EcuConfigError
from vehicle_io.codec import BatchEncoder
from vehicle_io.dbc import cycle_time_s
from vehicle_io.e2e import COUNTER_MODULO, E2ESpec, protect

__all__ = ["GatewayStub"]

#: Frames the stand-in lets pile up on a bus before it throws them away.
_RECEIVED_KEEP = 4096

#: Resting commands: everything enabled, nothing requested (zero torque, no brake, gear kept).
DEFAULTS: dict[str, dict[str, float]] = {
    "GW_DriveCommand": {"GW_DriveEnable": 1, "GW_TorqueRequest": 0.0, "GW_GearRequest": 7, "GW_EpbRequest": 0,
                        "GW_DriveModeRequest": 7, "GW_SpeedLimit": 50.0},
    "GW_BrakeCommand": {"GW_BrakeEnable": 1, "GW_BrakeEmergency": 0, "GW_BrakeHoldRequest": 0,
                        "GW_BrakePressureRequest": 0.0},
    "GW_SteerCommand": {"GW_SteerEnable": 1, "GW_SteerAngleRequest": 0.0, "GW_SteerRateLimit": 200.0},
    "GW_CargoCommand": {"GW_CargoCommandEnable": 1, "GW_CargoVehicleMoving": 0,
                        **{f"GW_CompartmentLockRequest{i}": 0 for i in range(1, 7)},
                        **{f"GW_CompartmentDoorRelease{i}": 0 for i in range(1, 7)}},
}


class GatewayStub:
    """Node ``GW`` on the rig's buses sending ``messages`` (default: the four commands).

    ``values[message]`` holds the physical values sent (unset signals are 0); set
    ``bad_crc`` to a set of message names to send them with a wrong CRC.
    """

    def __init__(self, rig: Any, messages: Any = None, node: str = "GW") -> None:
        self.rig = rig
        self.clock = rig.clock
        self.encoder = BatchEncoder(rig.db)
        names = list(DEFAULTS) if messages is None else list(messages)
        self.values: dict[str, dict[str, float]] = {}
        self.bad_crc: set[str] = set()
        self.sent: dict[str, int] = {}
        self._tasks: list[dict[str, Any]] = []
        self._endpoints: dict[str, Any] = {}
        self._closed = False
        for name in names:
            message = rig.db.get_message_by_name(name)
            period_s = cycle_time_s(message)
            if not period_s or node not in (message.senders or ()):
                raise EcuConfigError(f"gateway stub: expected a cyclic message sent by {node}, but got {name!r}")
            spec = E2ESpec.from_message(message)
            values = {s.name: 0.0 for s in message.signals}
            values.update(DEFAULTS.get(name, {}))
            self.values[name] = values
            bus = message.bus_name
            if bus not in self._endpoints:
                # Receives as the gateway does in a scenario (Endpoint.collect: frame-batch
                # arrays, no python-can message per frame).
                self._endpoints[bus] = rig.attach(bus, node=node)
                self._endpoints[bus].collect()
            self._tasks.append({"message": message, "spec": spec, "period_ps": seconds_to_ps(period_s),
                                "endpoint": self._endpoints[bus], "counter": 0, "handle": None,
                                "received": self._endpoints[bus].collect()})
            self.sent[name] = 0
        with self.clock.lock:
            now = self.clock.now_ps()
            for task in self._tasks:
                task["next_ps"] = now
                task["handle"] = self.clock.call_at_ps(now, self._fire, task)

    def set(self, message: str, **values: float) -> None:
        """Change values of ``message`` from its next frame on."""
        if message not in self.values:
            raise EcuConfigError(f"gateway stub: expected one of {list(self.values)}, but got {message!r}")
        current = self.values[message]
        for name in values:
            if name not in current:
                unknown = sorted(n for n in values if n not in current)
                raise EcuConfigError(f"gateway stub {message}: expected its signals, but got {unknown}")
        current.update(values)

    def _fire(self, task: dict[str, Any]) -> None:
        task["handle"] = None
        if self._closed:
            return
        message = task["message"]
        name = message.name
        values = self.values[name]
        # Commands repeat their values most cycles: encode only when they changed (the same
        # bytes encode_one gives), and protect each (payload, counter) once.
        cached = task.get("encoded")
        if cached is not None and cached[0] == values:
            payload = cached[1]
        else:
            payload = self.encoder.encode_one(name, **values)
            task["encoded"] = (dict(values), payload)
        spec: E2ESpec | None = task["spec"]
        if spec is not None:
            bad = name in self.bad_crc
            key = (payload, task["counter"], bad)
            frame = task.get("protected", {}).get(key)
            if frame is None:
                buf = protect(spec, payload, task["counter"])
                if bad:
                    buf[spec.crc_byte] ^= 0xFF
                frame = bytes(buf)
                protected = task.setdefault("protected", {})
                if len(protected) >= 4 * COUNTER_MODULO:
                    protected.clear()
                protected[key] = frame
            task["counter"] = (task["counter"] + 1) % COUNTER_MODULO
            payload = frame
        is_fd = bool(message.is_fd)
        endpoint = task["endpoint"]
        if not endpoint._submit_data(message.frame_id, payload, False, is_fd, is_fd):  # a clock event: lock held
            endpoint.send_data(message.frame_id, payload, is_extended_id=False, is_fd=is_fd, bitrate_switch=is_fd,
                               timeout=0)
        self.sent[name] += 1
        task["next_ps"] += task["period_ps"]
        # A clock event (lock held) rescheduling itself into the future: call_at_ps's heap entry.
        task["handle"] = self.clock._push(task["next_ps"], PRIO_EVENT, self._fire, (task,))
        batch = task["received"]
        if len(batch) >= _RECEIVED_KEEP:
            batch.discard()  # the stand-in reads nothing; keep memory flat

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self.clock.lock:
            for task in self._tasks:
                handle: TimerHandle | None = task["handle"]
                if handle is not None:
                    handle.cancel()

