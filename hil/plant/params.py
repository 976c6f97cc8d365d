"""Parameters of the simulated Z10, loaded from ``z10_params.toml``.

The TOML file next to this module is the one documented source: every value there carries
its source or reasoning. :class:`VanParams` is its typed, validated, immutable form;
``VanParams.load()`` reads the bundled file, ``with_changes()`` derives a variant (tests,
scenarios) and checks it again.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from hil.plant.errors import PlantParamError
from hil.plant.state import PARAM_DTYPE

__all__ = ["DEFAULT_PARAMS_PATH", "VanParams"]

DEFAULT_PARAMS_PATH = Path(__file__).with_name("z10_params.toml")

# Values that may be zero (an ideal actuator, no spread, no auxiliary load); every other
# scalar must be strictly positive.
_MAY_BE_ZERO = frozenset(
    {
        "rotating_mass_kg",
        "drag_coefficient",
        "rolling_resistance",
        "motor_torque_tau_s",
        "brake_pressure_tau_s",
        "aux_power_w",
        "capacity_spread_rel",
        "resistance_spread_rel",
        "initial_soc_spread",
        "pack_busbar_resistance_ohm",
        "cell_ambient_conductance_wpk",
        "cell_coolant_conductance_wpk",
        "park_pawl_max_speed_mps",
        "initial_soc",
    }
)
# Values that may be negative (temperatures).
_SIGNED = frozenset(
    {
        "bms_temp_discharge_min_c",
        "bms_temp_discharge_full_low_c",
        "bms_temp_discharge_full_high_c",
        "bms_temp_discharge_max_c",
        "bms_temp_charge_min_c",
        "bms_temp_charge_full_low_c",
        "bms_temp_charge_full_high_c",
        "bms_temp_charge_max_c",
        "initial_ambient_c",
        "initial_coolant_c",
    }
)
_FRACTIONS = frozenset(
    {
        "gear_efficiency",
        "motor_inverter_efficiency",
        "motor_loss_share",
        "precharge_threshold",
        "initial_soc",
        "bms_soc_discharge_derate_start",
        "bms_soc_discharge_derate_end",
        "bms_soc_charge_derate_start",
        "bms_soc_charge_derate_end",
        "tyre_friction",
    }
)
_TABLES = (("ocv_soc", "ocv_v"), ("resistance_temp_c", "resistance_factor"))


@dataclasses.dataclass(frozen=True)
class VanParams:
    """Every parameter of the van model; see ``z10_params.toml`` for sources."""

    # [integration]
    step_s: float
    # [mass]
    curb_mass_kg: float
    rated_payload_kg: float
    rotating_mass_kg: float
    gravity_mps2: float
    # [road_load]
    air_density_kgpm3: float
    drag_coefficient: float
    frontal_area_m2: float
    rolling_resistance: float
    tyre_friction: float
    wheel_radius_m: float
    wheelbase_m: float
    track_m: float
    # [drivetrain]
    gear_ratio: float
    gear_efficiency: float
    motor_peak_torque_nm: float
    motor_peak_power_w: float
    motor_regen_torque_nm: float
    motor_regen_power_w: float
    motor_max_speed_radps: float
    motor_torque_tau_s: float
    motor_inverter_efficiency: float
    motor_loss_share: float
    motor_heat_capacity_jpk: float
    motor_thermal_resistance_kpw: float
    inverter_heat_capacity_jpk: float
    inverter_thermal_resistance_kpw: float
    aux_power_w: float
    # [brakes]
    brake_torque_per_bar_nm: float
    brake_pressure_tau_s: float
    brake_pressure_max_bar: float
    epb_holding_torque_nm: float
    epb_actuation_time_s: float
    park_pawl_max_speed_mps: float
    park_pawl_holding_torque_nm: float
    # [steering]
    steering_ratio: float
    max_road_wheel_angle_deg: float
    steer_max_rate_dps: float
    # [battery]
    series_cells: int
    group_capacity_ah: float
    group_r25_ohm: float
    capacity_spread_rel: float
    resistance_spread_rel: float
    initial_soc_spread: float
    cell_v_min: float
    cell_v_max: float
    cell_heat_capacity_jpk: float
    cell_coolant_conductance_wpk: float
    cell_ambient_conductance_wpk: float
    pack_busbar_resistance_ohm: float
    cells_per_temp_sensor: float
    soh_pct: float
    ocv_soc: tuple[float, ...]
    ocv_v: tuple[float, ...]
    resistance_temp_c: tuple[float, ...]
    resistance_factor: tuple[float, ...]
    # [hv_system]
    link_capacitance_f: float
    precharge_resistance_ohm: float
    precharge_threshold: float
    precharge_timeout_s: float
    link_bleed_resistance_ohm: float
    isolation_resistance_ohm: float
    isolation_warning_ohm_per_v: float
    isolation_fault_ohm_per_v: float
    # [bms]
    bms_max_discharge_current_a: float
    bms_max_charge_current_a: float
    bms_voltage_derate_margin_v: float
    bms_soc_discharge_derate_start: float
    bms_soc_discharge_derate_end: float
    bms_soc_charge_derate_start: float
    bms_soc_charge_derate_end: float
    bms_temp_discharge_min_c: float
    bms_temp_discharge_full_low_c: float
    bms_temp_discharge_full_high_c: float
    bms_temp_discharge_max_c: float
    bms_temp_charge_min_c: float
    bms_temp_charge_full_low_c: float
    bms_temp_charge_full_high_c: float
    bms_temp_charge_max_c: float
    # [cargo_bay]
    compartments: int
    compartment_rated_load_kg: float
    lock_actuation_time_s: float
    compartment_tau_closed_s: float
    compartment_tau_open_s: float
    # [initial]
    initial_soc: float
    initial_ambient_c: float
    initial_coolant_c: float

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "tuple[float, ...]":
                _check_table_column(field.name, value)
            elif field.type == "int":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise PlantParamError(
                        f"parameter {field.name}: expected a positive integer, but got {value!r}"
                    )
            else:
                _check_scalar(field.name, value)
        for x_name, y_name in _TABLES:
            xs, ys = getattr(self, x_name), getattr(self, y_name)
            if len(xs) != len(ys):
                raise PlantParamError(
                    f"parameters {x_name}/{y_name}: expected equal lengths, but got "
                    f"{len(xs)} and {len(ys)}"
                )
            if any(b <= a for a, b in zip(xs, xs[1:], strict=False)):
                raise PlantParamError(
                    f"parameter {x_name}: expected strictly increasing values, but got {xs}"
                )
        if any(b <= a for a, b in zip(self.ocv_v, self.ocv_v[1:], strict=False)):
            raise PlantParamError(
                f"parameter ocv_v: expected OCV rising with SOC, but got {self.ocv_v}"
            )
        if self.ocv_soc[0] != 0.0 or self.ocv_soc[-1] != 1.0:
            raise PlantParamError(
                f"parameter ocv_soc: expected it to span 0..1, but got {self.ocv_soc}"
            )
        if not self.cell_v_min < self.cell_v_max:
            raise PlantParamError(
                f"parameters cell_v_min/cell_v_max: expected min < max, but got "
                f"{self.cell_v_min} and {self.cell_v_max}"
            )
        per = self.cells_per_temp_sensor
        if per != int(per) or self.series_cells % int(per) != 0:
            raise PlantParamError(
                f"parameter cells_per_temp_sensor: expected a whole divisor of series_cells "
                f"({self.series_cells}), but got {per}"
            )

    @classmethod
    def load(cls, path: str | Path | None = None) -> VanParams:
        """Read a parameter file (default: the bundled Z10 file); sections only group keys."""
        where = Path(path) if path is not None else DEFAULT_PARAMS_PATH
        try:
            with where.open("rb") as fh:
                doc = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise PlantParamError(f"{where}: cannot read van parameters: {err}") from err
        flat: dict[str, Any] = {}
        for section, table in doc.items():
            if not isinstance(table, dict):
                raise PlantParamError(
                    f"{where}: expected only [sections] at the top level, but got key {section!r}"
                )
            for key, value in table.items():
                if key in flat:
                    raise PlantParamError(f"{where}: parameter {key} given twice")
                flat[key] = tuple(value) if isinstance(value, list) else value
        return cls.from_mapping(flat, origin=str(where))

    @classmethod
    def from_mapping(cls, values: dict[str, Any], origin: str = "<mapping>") -> VanParams:
        """Build from a flat mapping, naming any missing or unknown key."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        missing = sorted(names - set(values))
        if unknown:
            raise PlantParamError(f"{origin}: unknown van parameter(s) {', '.join(unknown)}")
        if missing:
            raise PlantParamError(f"{origin}: missing van parameter(s) {', '.join(missing)}")
        return cls(**values)

    def with_changes(self, **changes: Any) -> VanParams:
        """A copy with some values changed, validated like a loaded file."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise PlantParamError(f"unknown van parameter(s) {', '.join(unknown)}")
        changes = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
        return dataclasses.replace(self, **changes)

    @property
    def temp_sensors(self) -> int:
        """Number of cell temperature sensors (the DBC's index range)."""
        return self.series_cells // int(self.cells_per_temp_sensor)

    def to_record(self) -> np.ndarray:
        """The kernel view: a one-element ``PARAM_DTYPE`` array."""
        rec = np.zeros(1, dtype=PARAM_DTYPE)
        for name in PARAM_DTYPE.names or ():
            rec[0][name] = float(getattr(self, name))
        return rec


def _check_scalar(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PlantParamError(f"parameter {name}: expected a number, but got {value!r}")
    if not math.isfinite(value):
        raise PlantParamError(f"parameter {name}: expected a finite number, but got {value!r}")
    if name in _SIGNED:
        return
    if value < 0.0 or (value == 0.0 and name not in _MAY_BE_ZERO):
        kind = "zero or more" if name in _MAY_BE_ZERO else "more than zero"
        raise PlantParamError(f"parameter {name}: expected {kind}, but got {value!r}")
    if name in _FRACTIONS and value > 1.0:
        raise PlantParamError(f"parameter {name}: expected at most 1, but got {value!r}")


def _check_table_column(name: str, value: Any) -> None:
    if not isinstance(value, tuple) or len(value) < 2:
        raise PlantParamError(f"parameter {name}: expected a list of >= 2 numbers, but got {value!r}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise PlantParamError(f"parameter {name}: expected finite numbers, but got {v!r}")
