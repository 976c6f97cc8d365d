"""Autonomy-computer stand-in (ADC): ADC_Command, ADC_Heartbeat and ADC_CargoRequest from a plan.

The plan (:class:`AdcPlan`) is a script on bus time: a piecewise-linear target-speed and
steering profile, steps of gear, EPB, mode and heartbeat state, an e-stop time, and cargo
requests per compartment. The stand-in does not look at the bus (the gateway under test
does the closed-loop work); a scenario runner may also change ``plan`` while it runs.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hil.ecus.base import EcuConfigError, SimEcu, clip

__all__ = ["AdcEcu", "AdcPlan"]

_GEARS = {"P": 0, "R": 1, "N": 2, "D": 3, "NoRequest": 7}
_EPB = {"NoRequest": 0, "Apply": 1, "Release": 2}
_MODES = {"Manual": 0, "Auto": 1, "Remote": 2, "NoRequest": 7}
_STATES = {"Init": 0, "Standby": 1, "Active": 2, "Degraded": 3, "Fault": 4, "Shutdown": 5}
_CARGO = {"NoRequest": 0, "Lock": 1, "Unlock": 2}
_YES_NO = {"No": 0, "Yes": 1}
N_COMPARTMENTS = 6


def _points(name: str, value: Any) -> tuple[tuple[float, float], ...]:
    try:
        pts = tuple((float(t), float(v)) for t, v in value)
    except (TypeError, ValueError):
        raise EcuConfigError(f"ADC plan {name}: expected a list of [t_s, value] pairs, but got {value!r}") from None
    if not pts:
        raise EcuConfigError(f"ADC plan {name}: expected at least one [t_s, value] pair, but got none")
    times = [t for t, _ in pts]
    if any(b < a for a, b in zip(times, times[1:])) or not all(math.isfinite(t) and t >= 0 for t in times):
        raise EcuConfigError(f"ADC plan {name}: expected finite times >= 0 in ascending order, but got {times}")
    return pts


def _steps(name: str, value: Any, table: Mapping[str, int]) -> tuple[tuple[float, int], ...]:
    out = []
    try:
        items = [(t, v) for t, v in value]
    except (TypeError, ValueError):
        raise EcuConfigError(f"ADC plan {name}: expected a list of [t_s, value] pairs, but got {value!r}") from None
    for t, v in items:
        if isinstance(v, str):
            if v not in table:
                raise EcuConfigError(f"ADC plan {name}: expected one of {', '.join(table)}, but got {v!r}")
            v = table[v]
        elif int(v) not in table.values():
            raise EcuConfigError(f"ADC plan {name}: expected one of {sorted(table.values())}, but got {v!r}")
        out.append((float(t), int(v)))
    _points(name, out)
    return tuple(out)


def _interp(points: Sequence[tuple[float, float]], times: Sequence[float], t_s: float) -> tuple[float, float]:
    """(value, slope) of a piecewise-linear profile at ``t_s`` (held flat outside)."""
    k = bisect.bisect_right(times, t_s)
    if k == 0:
        return points[0][1], 0.0
    if k == len(points):
        return points[-1][1], 0.0
    (t0, v0), (t1, v1) = points[k - 1], points[k]
    if t1 == t0:
        return v1, 0.0
    slope = (v1 - v0) / (t1 - t0)
    return v0 + slope * (t_s - t0), slope


def _step_value(steps: Sequence[tuple[float, int]], t_s: float, default: int) -> int:
    value = default
    for t, v in steps:
        if t > t_s:
            break
        value = v
    return value


@dataclass
class AdcPlan:
    """What the ADC stand-in requests over time (times in seconds of bus time).

    ``speed_mps`` and ``steer_deg``: [t_s, value] points, linear in between (target
    acceleration is the slope of the speed profile); ``gear``, ``epb``, ``mode``, ``state``:
    [t_s, choice] steps (names or DBC numbers); ``estop_at_s``: ADC_EStop from then on;
    ``remote_estop_at_s``: ADC_RemoteEStop (the remote operator's) from then on;
    ``fault_reset``: [t_s, "Yes"/"No"] steps of ADC_FaultResetRequest (the gateway acts on the
    rising edge); ``cargo``: [t_s, compartment, "Lock"/"Unlock"/"NoRequest"] steps. A crashed or silent
    ADC is an ECU fault, not a plan item: ``add_fault({"action": "silence", "t0_s": ...})``.
    """

    speed_mps: Sequence[tuple[float, float]] = ((0.0, 0.0),)
    steer_deg: Sequence[tuple[float, float]] = ((0.0, 0.0),)
    gear: Sequence[tuple[float, Any]] = ((0.0, "D"),)
    epb: Sequence[tuple[float, Any]] = ((0.0, "Release"),)
    mode: Sequence[tuple[float, Any]] = ((0.0, "Auto"),)
    state: Sequence[tuple[float, Any]] = ((0.0, "Active"),)
    control_request: bool = True
    steer_rate_limit_dps: float = 200.0
    estop_at_s: float | None = None
    remote_estop_at_s: float | None = None
    fault_reset: Sequence[tuple[float, Any]] = ()
    cargo: Sequence[tuple[float, int, Any]] = ()
    _speed: tuple[tuple[float, float], ...] = field(init=False, repr=False)
    _steer: tuple[tuple[float, float], ...] = field(init=False, repr=False)
    _speed_t: tuple[float, ...] = field(init=False, repr=False)
    _steer_t: tuple[float, ...] = field(init=False, repr=False)
    _gear: tuple[tuple[float, int], ...] = field(init=False, repr=False)
    _epb: tuple[tuple[float, int], ...] = field(init=False, repr=False)
    _mode: tuple[tuple[float, int], ...] = field(init=False, repr=False)
    _state: tuple[tuple[float, int], ...] = field(init=False, repr=False)
    _cargo: dict[int, tuple[tuple[float, int], ...]] = field(init=False, repr=False)
    _reset: tuple[tuple[float, int], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._speed = _points("speed_mps", self.speed_mps)
        if any(not 0.0 <= v <= 30.0 for _, v in self._speed):
            raise EcuConfigError(f"ADC plan speed_mps: expected speeds 0..30 m/s, but got {[v for _, v in self._speed]}")
        self._steer = _points("steer_deg", self.steer_deg)
        self._speed_t = tuple(t for t, _ in self._speed)
        self._steer_t = tuple(t for t, _ in self._steer)
        self._gear = _steps("gear", self.gear, _GEARS)
        self._epb = _steps("epb", self.epb, _EPB)
        self._mode = _steps("mode", self.mode, _MODES)
        self._state = _steps("state", self.state, _STATES)
        self._reset = _steps("fault_reset", self.fault_reset, _YES_NO) if self.fault_reset else ()
        per: dict[int, list[tuple[float, Any]]] = {}
        for item in self.cargo:
            try:
                t, number, request = item
            except (TypeError, ValueError):
                raise EcuConfigError(f"ADC plan cargo: expected [t_s, compartment, request], but got {item!r}") from None
            if not isinstance(number, int) or not 1 <= number <= N_COMPARTMENTS:
                raise EcuConfigError(f"ADC plan cargo: expected a compartment 1..{N_COMPARTMENTS}, but got {number!r}")
            per.setdefault(number, []).append((t, request))
        self._cargo = {n: _steps(f"cargo[{n}]", sorted(v, key=lambda x: float(x[0])), _CARGO) for n, v in per.items()}
        for name in ("estop_at_s", "remote_estop_at_s"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise EcuConfigError(f"ADC plan {name}: expected a time >= 0 s, but got {value!r}")

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> AdcPlan:
        """A plan from plain data (a scenario's ``[adc]`` TOML table)."""
        known = {"speed_mps", "steer_deg", "gear", "epb", "mode", "state", "control_request",
                 "steer_rate_limit_dps", "estop_at_s", "remote_estop_at_s", "fault_reset", "cargo"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise EcuConfigError(f"ADC plan: unknown field {unknown[0]!r} (expected one of {', '.join(sorted(known))})")
        return cls(**dict(spec))

    def command(self, t_s: float) -> dict[str, float]:
        speed, slope = _interp(self._speed, self._speed_t, t_s)
        steer, _ = _interp(self._steer, self._steer_t, t_s)
        estop = self.estop_at_s is not None and t_s >= self.estop_at_s
        remote = self.remote_estop_at_s is not None and t_s >= self.remote_estop_at_s
        return {
            "ADC_EStop": float(estop),
            "ADC_RemoteEStop": float(remote),
            "ADC_FaultResetRequest": float(_step_value(self._reset, t_s, 0)),
            "ADC_ControlRequest": float(self.control_request),
            "ADC_ModeRequest": float(_step_value(self._mode, t_s, 7)),
            "ADC_GearRequest": float(_step_value(self._gear, t_s, 7)),
            "ADC_EpbRequest": float(_step_value(self._epb, t_s, 0)),
            "ADC_TargetSpeed": speed,
            "ADC_TargetAccel": clip(slope, -8.0, 4.0),
            "ADC_SteerAngleRequest": steer,
            "ADC_SteerRateLimit": self.steer_rate_limit_dps,
        }

    def cargo_request(self, t_s: float) -> dict[str, float]:
        return {
            f"ADC_CompartmentRequest{n}": float(_step_value(self._cargo.get(n, ()), t_s, 0))
            for n in range(1, N_COMPARTMENTS + 1)
        }

    def heartbeat_state(self, t_s: float) -> int:
        return _step_value(self._state, t_s, 0)


class AdcEcu(SimEcu):
    NODE = "ADC"

    def __init__(self, *args: Any, plan: AdcPlan | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan = plan if plan is not None else AdcPlan()
        self.cpu_load_pct = 41.0
        self.temperature_c = 52.0

    def signals(self, message: str, t_s: float) -> dict[str, float]:
        if message == "ADC_Command":
            return self.plan.command(t_s)
        if message == "ADC_CargoRequest":
            return self.plan.cargo_request(t_s)
        state = self.plan.heartbeat_state(t_s)
        return {
            "ADC_LocalizationValid": 1.0,
            "ADC_PerceptionValid": 1.0,
            "ADC_State": float(state),
            "ADC_Uptime": math.floor(t_s),
            "ADC_CpuLoad": self.cpu_load_pct,
            "ADC_Temperature": self.temperature_c,
            "ADC_FaultCode": 0.0,
        }
