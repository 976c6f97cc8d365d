"""The simulated Z10: ``Van(params).step(dt_s, inputs)`` with named inputs and outputs.

The wrapper owns units, names and checking; the numba kernels in :mod:`hil.plant._kernels`
do the physics on the records of :mod:`hil.plant.state`. Numba is imported here, so import
this module lazily (``from hil.plant.model import Van``), never from package ``__init__``.
Construction warms the kernels (first call compiles or loads the cache) so the first
``step`` of a real-time loop pays nothing.

Conventions: SI units with the unit in the name; + speed and + torque drive forward (the
torque request is the signed motor torque in D and R alike; P and N give no torque, P also
engages the pawl below walking pace); + steering angle and + yaw turn left; + pack current
discharges; discrete states use the Z10 DBC value tables (see :mod:`hil.plant.state`).
Integration: fixed 1 ms step (``params.step_s``), semi-implicit Euler; ``step(dt_s)`` runs
``dt_s / step_s`` steps inside one kernel call.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from hil.plant import _kernels as K
from hil.plant.errors import PlantInputError
from hil.plant.params import VanParams
from hil.plant.state import (
    CELL_DTYPE,
    COMP_DTYPE,
    COMP_INPUT_FIELDS,
    EPB_APPLIED,
    GEAR_P,
    INPUT_FIELDS,
    LOCK_LOCKED,
    VAN_DTYPE,
)

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES", "COMPARTMENT_INPUT_NAMES", "Van", "VanOutputs"]

INPUT_NAMES: tuple[str, ...] = tuple(name[3:] for name in INPUT_FIELDS)
OUTPUT_NAMES: tuple[str, ...] = tuple(
    n for n in (VAN_DTYPE.names or ()) if not n.startswith("in_")
)
COMPARTMENT_INPUT_NAMES: tuple[str, ...] = tuple(name[3:] for name in COMP_INPUT_FIELDS)

# Allowed values of the enumerated inputs (the DBC value tables; "NoRequest" = keep).
_CHOICES: dict[str, tuple[int, ...]] = {
    "epb_request": (0, 1, 2),
    "gear_request": (0, 1, 2, 3, 7),
    "steer_enable": (0, 1),
    "hv_request": (0, 1),
    "lock_request": (0, 1, 2),
    "door_release": (0, 1),
    "door_close": (0, 1),
    "door_forced_open": (0, 1),
}
# Physical ranges of the continuous inputs (the DBC ranges where the DBC has the signal).
_RANGES: dict[str, tuple[float, float]] = {
    "motor_torque_request_nm": (-400.0, 400.0),
    "brake_pressure_request_bar": (0.0, 250.0),
    "steer_angle_request_deg": (-780.0, 780.0),
    "steer_rate_limit_dps": (0.0, 2000.0),
    "grade_pct": (-60.0, 60.0),
    "ambient_c": (-40.0, 85.0),
    "coolant_c": (-40.0, 120.0),
    "isolation_resistance_ohm": (0.0, 1e12),
    "load_kg": (0.0, 2000.0),
}


class VanOutputs(Mapping[str, float]):
    """Live, read-only view of the van's outputs by name (no copy per step)."""

    __slots__ = ("_rec",)

    def __init__(self, rec: np.ndarray) -> None:
        self._rec = rec

    def __getitem__(self, name: str) -> float:
        if name.startswith("in_") or name not in VAN_DTYPE.fields:  # type: ignore[operator]
            raise KeyError(name)
        return self._rec[0][name].item()  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return iter(OUTPUT_NAMES)

    def __len__(self) -> int:
        return len(OUTPUT_NAMES)

    def snapshot(self) -> dict[str, float]:
        """A plain dict copy of every output at this instant."""
        row = self._rec[0]
        return {name: row[name].item() for name in OUTPUT_NAMES}


class Van:
    """The simulated Z10 van: longitudinal and lateral motion, HV battery, cargo bay.

    ``seed`` fixes the cell-to-cell spread; the same seed and the same inputs give
    bit-identical trajectories. Inputs hold their last value between steps. Compartment and
    cell numbers are 1-based, as on the bus.
    """

    def __init__(self, params: VanParams | None = None, seed: int = 0) -> None:
        self.params = params if params is not None else VanParams.load()
        self.seed = int(seed)
        self.rejected_inputs = 0
        p = self.params
        self._p = p.to_record()
        self._ocv_soc = np.asarray(p.ocv_soc, dtype=np.float64)
        self._ocv_v = np.asarray(p.ocv_v, dtype=np.float64)
        self._rt_t = np.asarray(p.resistance_temp_c, dtype=np.float64)
        self._rt_f = np.asarray(p.resistance_factor, dtype=np.float64)
        self._van = np.zeros(1, dtype=VAN_DTYPE)
        self._cells = np.zeros(p.series_cells, dtype=CELL_DTYPE)
        self._comps = np.zeros(p.compartments, dtype=COMP_DTYPE)
        self._init_state()
        self.outputs = VanOutputs(self._van)
        # Each input field as a one-element view of the record: a write without a row object.
        self._input_views = {name: self._van["in_" + name] for name in INPUT_NAMES}
        self._comp_input_views = {name: self._comps["in_" + name] for name in COMPARTMENT_INPUT_NAMES}
        self._warm_up()

    # ------------------------------------------------------------------ set-up
    def _init_state(self) -> None:
        p = self.params
        rng = np.random.default_rng(self.seed)
        n = p.series_cells
        cap = p.group_capacity_ah * 3600.0 * (1.0 + p.capacity_spread_rel * rng.standard_normal(n))
        res = p.group_r25_ohm * (1.0 + p.resistance_spread_rel * rng.standard_normal(n))
        soc = p.initial_soc + p.initial_soc_spread * rng.standard_normal(n)
        c = self._cells
        c["capacity_as"] = np.maximum(cap, 0.5 * p.group_capacity_ah * 3600.0)
        c["r25_ohm"] = np.maximum(res, 0.2 * p.group_r25_ohm)
        c["soc"] = np.clip(soc, 0.0, 1.0)
        c["temp_c"] = p.initial_ambient_c
        v = self._van
        v["in_gear_request"] = GEAR_P
        v["in_epb_request"] = 0
        v["in_ambient_c"] = p.initial_ambient_c
        v["in_coolant_c"] = p.initial_coolant_c
        v["in_isolation_resistance_ohm"] = p.isolation_resistance_ohm
        v["gear"] = GEAR_P
        v["epb_state"] = EPB_APPLIED
        v["epb_clamp"] = 1.0
        v["standstill"] = 1
        v["motor_temp_c"] = p.initial_ambient_c
        v["inverter_temp_c"] = p.initial_ambient_c
        self._comps["lock_state"] = LOCK_LOCKED
        self._comps["lock_target"] = LOCK_LOCKED
        self._comps["temp_c"] = p.initial_ambient_c

    def _args(self) -> tuple[Any, ...]:
        return (
            self._van, self._cells, self._comps, self._p,
            self._ocv_soc, self._ocv_v, self._rt_t, self._rt_f,
        )  # fmt: skip

    def _warm_up(self) -> None:
        """Compile (or load from the cache) both kernels on throw-away copies of the state."""
        K.van_step(
            self._van.copy(), self._cells.copy(), self._comps.copy(), self._p,
            self._ocv_soc, self._ocv_v, self._rt_t, self._rt_f, 1,
        )  # fmt: skip
        K.van_refresh(*self._args())

    # ------------------------------------------------------------------ inputs
    def _reject(self, message: str) -> PlantInputError:
        self.rejected_inputs += 1
        return PlantInputError(message)

    def _check(self, name: str, value: Any) -> float | int:
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, (int, float, np.integer, np.floating)):
            raise self._reject(f"input {name}: expected a number, but got {value!r}")
        if name in _CHOICES:
            if not math.isfinite(value) or value != int(value) or int(value) not in _CHOICES[name]:
                raise self._reject(
                    f"input {name}: expected one of {_CHOICES[name]}, but got {value!r}"
                )
            return int(value)
        x = float(value)
        lo, hi = _RANGES[name]
        if not math.isfinite(x) or not lo <= x <= hi:
            raise self._reject(f"input {name}: expected a finite value in [{lo}, {hi}], but got {value!r}")
        return x

    def set_inputs(self, inputs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        """Set van inputs by name (see ``INPUT_NAMES``); all are checked before any is applied."""
        merged = dict(inputs or {})
        merged.update(kwargs)
        checked: list[tuple[str, float | int]] = []
        for name, value in merged.items():
            if name not in INPUT_NAMES:
                raise self._reject(
                    f"input {name!r}: expected one of {', '.join(INPUT_NAMES)}, but got an unknown name"
                )
            checked.append((name, self._check(name, value)))
        views = self._input_views
        for name, value in checked:
            if name == "gear_request" and value == 7:
                continue  # NoRequest: keep the present gear request
            views[name][0] = value

    def set_compartment(self, number: int, **inputs: Any) -> None:
        """Set inputs of compartment ``number`` (1-based): lock_request, door_release,
        door_close, load_kg, door_forced_open."""
        idx = self._index(number, self.params.compartments, "compartment")
        checked: list[tuple[str, float | int]] = []
        for name, value in inputs.items():
            if name not in COMPARTMENT_INPUT_NAMES:
                raise self._reject(
                    f"compartment input {name!r}: expected one of "
                    f"{', '.join(COMPARTMENT_INPUT_NAMES)}, but got an unknown name"
                )
            checked.append((name, self._check(name, value)))
        views = self._comp_input_views
        for name, value in checked:
            views[name][idx] = value

    def _finite(self, what: str, value: Any, limit: float) -> float:
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or abs(value) > limit:
            raise self._reject(f"{what}: expected a finite value within +/-{limit}, but got {value!r}")
        return float(value)

    def _index(self, number: int, count: int, what: str) -> int:
        if isinstance(number, bool) or not isinstance(number, (int, np.integer)) or not 1 <= number <= count:
            raise self._reject(f"{what} number: expected 1..{count}, but got {number!r}")
        return int(number) - 1

    # ------------------------------------------------------------------ fault hooks
    def set_cell_temp_offset(self, number: int, offset_c: float) -> None:
        """Fault hook: a hot (or cold) spot of ``offset_c`` on cell group ``number`` (1-based).

        Acts on the cell itself: its resistance and the temperature sensor over it see it.
        """
        idx = self._index(number, self.params.series_cells, "cell")
        x = self._finite("cell temperature offset (degC)", offset_c, 200.0)
        self._cells[idx]["temp_offset_c"] = x
        self.refresh()

    def set_cell_voltage_offset(self, number: int, offset_v: float) -> None:
        """Fault hook: the BMS reads cell group ``number`` (1-based) ``offset_v`` off the truth."""
        idx = self._index(number, self.params.series_cells, "cell")
        x = self._finite("cell voltage offset (V)", offset_v, 5.0)
        self._cells[idx]["voltage_offset_v"] = x
        self.refresh()

    def set_isolation_resistance(self, ohm: float) -> None:
        """Fault hook: HV-to-chassis isolation resistance."""
        self.set_inputs(isolation_resistance_ohm=ohm)
        self.refresh()

    def force_door_open(self, number: int, forced: bool = True) -> None:
        """Fault hook: door ``number`` is open whatever its lock says (broken latch)."""
        self.set_compartment(number, door_forced_open=int(forced))

    def set_payload(self, loads_kg: Mapping[int, float] | list[float]) -> None:
        """Place loads (kg) in the compartments: a list for all, or {number: kg}.

        Values above the rated payload are allowed (overload scenarios); the van reports
        ``payload_over_limit``.
        """
        items = (
            list(loads_kg.items()) if isinstance(loads_kg, Mapping)
            else list(enumerate(loads_kg, start=1))
        )  # fmt: skip
        for number, kg in items:
            self._index(number, self.params.compartments, "compartment")
            self._check("load_kg", kg)
        for number, kg in items:
            self.set_compartment(number, load_kg=kg)
        self.refresh()

    def set_speed(self, speed_mps: float) -> None:
        """Scenario set-up hook: put the van in motion at ``speed_mps`` (signed) instantly."""
        x = self._finite("speed (m/s)", speed_mps, 60.0)
        row = self._van[0]
        row["speed_mps"] = x
        row["standstill"] = 1 if x == 0.0 else 0
        omega = x / self.params.wheel_radius_m * self.params.gear_ratio
        row["motor_speed_radps"] = omega
        row["motor_speed_rpm"] = omega * 60.0 / (2.0 * math.pi)

    # ------------------------------------------------------------------ running
    def refresh(self) -> None:
        """Recompute the derived outputs after a change made between steps."""
        K.van_refresh(*self._args())

    def steps_for(self, dt_s: float) -> int:
        """How many fixed model steps ``dt_s`` is (PlantInputError unless a positive multiple)."""
        step_s = self.params.step_s
        dt = float(dt_s) if isinstance(dt_s, (int, float, np.integer, np.floating)) else math.nan
        n = round(dt / step_s) if math.isfinite(dt) and dt < 1e7 else 0
        if n < 1 or abs(n * step_s - dt) > 1e-9 * max(1.0, dt):
            raise self._reject(
                f"dt_s: expected a positive multiple of the {step_s} s model step, but got {dt_s!r}"
            )
        return n

    def step(self, dt_s: float, inputs: Mapping[str, Any] | None = None) -> VanOutputs:
        """Apply ``inputs`` (if any) and advance ``dt_s``, a whole number of fixed steps."""
        n = self.steps_for(dt_s)
        if inputs:
            self.set_inputs(inputs)
        K.van_step(*self._args(), n)
        return self.outputs

    def advance_steps(self, n_steps: int) -> None:
        """Advance ``n_steps`` fixed model steps (a count :meth:`steps_for` gave): the rig's
        per-tick call, without re-checking the same ``dt_s`` every tick."""
        if type(n_steps) is not int or n_steps < 1:
            raise self._reject(f"n_steps: expected a whole number of model steps >= 1, but got {n_steps!r}")
        K.van_step(*self._args(), n_steps)

    # ------------------------------------------------------------------ views
    @property
    def cells(self) -> np.ndarray:
        """A copy of the cell records (``CELL_DTYPE``), index 0 = cell 1."""
        return self._cells.copy()

    @property
    def compartments(self) -> np.ndarray:
        """A copy of the compartment records (``COMP_DTYPE``), index 0 = compartment 1."""
        return self._comps.copy()

    @property
    def inputs(self) -> dict[str, float]:
        """The van inputs now in force, by name."""
        row = self._van[0]
        return {name: row["in_" + name].item() for name in INPUT_NAMES}
