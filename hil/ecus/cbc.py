"""Simulated cargo-bay controller (CBC): compartment doors, locks, load cells, temperatures.

Follows GW_CargoCommand while GW_CargoCommandEnable is set and the frame is E2E VALID:
lock requests go to the compartment lock actuators; unlock and door release are refused
while GW_CargoVehicleMoving is set. The door latch release is a solenoid pulse, fired once per
rising edge of GW_CompartmentDoorRelease, as soon as the compartment is unlocked (the lock
takes a moment to open): the door pops open once, and a courier can push it shut while the
release request is still on. Command loss clears the requests (locks keep their state).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hil.ecus import base
from hil.ecus.base import SimEcu

__all__ = ["CbcEcu"]

LOCK_REQ_NONE, LOCK_REQ_LOCK, LOCK_REQ_UNLOCK = 0, 1, 2
LOCK_UNLOCKED, LOCK_LOCKED = 0, 1
OCC_EMPTY, OCC_OCCUPIED = 0, 1
#: A load-cell reading above this means a parcel is there (the light-curtain stand-in).
OCCUPIED_KG = 0.5
RATED_PAYLOAD_KG = 1500.0


class CbcEcu(SimEcu):
    NODE = "CBC"
    COMMANDS = ("GW_CargoCommand",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.n = self.van.n_compartments
        self._release_seen = [False] * (self.n + 1)  # GW release request level, last frame
        self._release_armed = [False] * (self.n + 1)  # rising edge seen, pulse not fired yet
        numbers = range(1, self.n + 1)
        # Signal names per compartment, made once (every frame needs them).
        self._door_names = [(f"CBC_DoorOpen{i}", f"CBC_LockState{i}", f"CBC_Occupancy{i}") for i in numbers]
        self._weight_names = [f"CBC_Weight{i}" for i in numbers]
        self._temp_names = [f"CBC_Temp{i}" for i in numbers]
        self._command_names = [(i, f"GW_CompartmentLockRequest{i}", f"GW_CompartmentDoorRelease{i}") for i in numbers]

    def _comps(self) -> list[Mapping[str, float]]:
        bulk = getattr(self.van, "compartments", None)  # PlantVan: the snapshot's list at once
        if bulk is not None:
            return bulk()
        return [self.van.compartment(i) for i in range(1, self.n + 1)]

    def signals(self, message: str, t_s: float) -> dict[str, float]:
        columns = getattr(self.van, "compartment_columns", None)  # PlantVan: each field at once
        if columns is not None and base._FAST_PATHS:
            return self._signals_from(columns(), message)
        comps = self._comps()
        if message == "CBC_DoorStatus":
            out = {
                "CBC_FaultLevel": 0.0,
                "CBC_AllDoorsClosed": float(all(not c["door_open"] for c in comps)),
                "CBC_AllLocked": float(all(c["lock_state"] == LOCK_LOCKED for c in comps)),
            }
            for (door, lock, occupancy), c in zip(self._door_names, comps):
                out[door] = float(c["door_open"])
                out[lock] = float(c["lock_state"])
                out[occupancy] = float(OCC_OCCUPIED if c["weight_kg"] > OCCUPIED_KG else OCC_EMPTY)
            return out
        if message == "CBC_Payload":
            total_kg = sum(c["weight_kg"] for c in comps)
            return {
                "CBC_PayloadOverLimit": float(total_kg > RATED_PAYLOAD_KG),
                "CBC_LoadCellFault": 0.0,
                "CBC_TotalPayload": total_kg,
            }
        if message == "CBC_CompartmentWeights":
            return {name: c["weight_kg"] for name, c in zip(self._weight_names, comps)}
        out = {name: c["temp_c"] for name, c in zip(self._temp_names, comps)}  # CBC_Temperatures
        out["CBC_AmbientTemp"] = self.van.read("in_ambient_c")
        return out

    def _signals_from(self, cols: Mapping[str, Sequence[float]], message: str) -> dict[str, float]:
        """:meth:`signals` from the compartments' fields as columns: the same values, in the
        same order, without a mapping per compartment."""
        if message == "CBC_DoorStatus":
            doors, locks, weights = cols["door_open"], cols["lock_state"], cols["weight_kg"]
            out = {
                "CBC_FaultLevel": 0.0,
                "CBC_AllDoorsClosed": float(all(not door for door in doors)),
                "CBC_AllLocked": float(all(lock == LOCK_LOCKED for lock in locks)),
            }
            for (door_name, lock_name, occupancy_name), door, lock, weight in zip(self._door_names, doors, locks, weights):
                out[door_name] = float(door)
                out[lock_name] = float(lock)
                out[occupancy_name] = float(OCC_OCCUPIED if weight > OCCUPIED_KG else OCC_EMPTY)
            return out
        if message == "CBC_Payload":
            total_kg = sum(cols["weight_kg"])
            return {
                "CBC_PayloadOverLimit": float(total_kg > RATED_PAYLOAD_KG),
                "CBC_LoadCellFault": 0.0,
                "CBC_TotalPayload": total_kg,
            }
        if message == "CBC_CompartmentWeights":
            return dict(zip(self._weight_names, cols["weight_kg"]))
        out = dict(zip(self._temp_names, cols["temp_c"]))  # CBC_Temperatures
        out["CBC_AmbientTemp"] = self.van.read("in_ambient_c")
        return out

    def on_command(self, message: str, values: Mapping[str, float], t_s: float) -> None:
        enabled = values["GW_CargoCommandEnable"] == 1
        moving = values["GW_CargoVehicleMoving"] == 1
        for i, lock_name, release_name in self._command_names:
            request = int(values[lock_name])
            if not enabled or request not in (LOCK_REQ_NONE, LOCK_REQ_LOCK, LOCK_REQ_UNLOCK):
                request = LOCK_REQ_NONE
            if request == LOCK_REQ_UNLOCK and moving:
                request = LOCK_REQ_NONE
            wanted = bool(enabled and not moving and values[release_name] == 1)
            if wanted and not self._release_seen[i]:
                self._release_armed[i] = True
            if not wanted:
                self._release_armed[i] = False
            self._release_seen[i] = wanted
            release = 0
            if self._release_armed[i] and self.van.compartment(i)["lock_state"] == LOCK_UNLOCKED:
                release = 1
                self._release_armed[i] = False
            self.van.command_compartment(i, lock_request=request, door_release=release)

    def on_command_lost(self, message: str, t_s: float) -> None:
        for i in range(1, self.n + 1):
            self._release_seen[i] = self._release_armed[i] = False
            self.van.command_compartment(i, lock_request=LOCK_REQ_NONE, door_release=0)
