"""Record layouts of the van model, defined once.

The kernels address every quantity by field name on numpy structured records, so a layout
change here changes the record type numba compiles for: a cached kernel can never run with
stale slot numbers. Four records:

- ``VAN_DTYPE``: one record of scalar state, inputs and outputs (units in the names);
- ``CELL_DTYPE``: one record per series cell group (96 in the Z10);
- ``COMP_DTYPE``: one record per cargo compartment (6 in the Z10), inputs included;
- ``PARAM_DTYPE``: the van parameters as the kernels read them (see :mod:`hil.plant.params`).

Discrete states use the DBC's value tables so a rest-bus ECU can copy them unchanged.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CELL_DTYPE",
    "COMP_DTYPE",
    "CONTACTOR_CLOSED",
    "CONTACTOR_OPEN",
    "EPB_APPLIED",
    "EPB_IN_TRANSITION",
    "EPB_RELEASED",
    "EPB_REQ_APPLY",
    "EPB_REQ_NONE",
    "EPB_REQ_RELEASE",
    "GEAR_D",
    "GEAR_N",
    "GEAR_P",
    "GEAR_R",
    "INPUT_FIELDS",
    "ISO_FAULT",
    "ISO_OK",
    "ISO_WARNING",
    "LOCK_LOCKED",
    "LOCK_MOVING",
    "LOCK_REQ_LOCK",
    "LOCK_REQ_NONE",
    "LOCK_REQ_UNLOCK",
    "LOCK_UNLOCKED",
    "PARAM_DTYPE",
    "PRECHARGE_DONE",
    "PRECHARGE_FAILED",
    "PRECHARGE_HV_ACTIVE",
    "PRECHARGE_IDLE",
    "PRECHARGE_OPENING",
    "PRECHARGING",
    "VAN_DTYPE",
    "COMP_INPUT_FIELDS",
]

# Value tables (same numbers as the Z10 DBC VAL_ entries).
GEAR_P, GEAR_R, GEAR_N, GEAR_D = 0, 1, 2, 3
EPB_REQ_NONE, EPB_REQ_APPLY, EPB_REQ_RELEASE = 0, 1, 2
EPB_RELEASED, EPB_APPLIED, EPB_IN_TRANSITION = 0, 1, 2
CONTACTOR_OPEN, CONTACTOR_CLOSED = 0, 1
PRECHARGE_IDLE, PRECHARGING, PRECHARGE_DONE, PRECHARGE_HV_ACTIVE = 0, 1, 2, 3
PRECHARGE_OPENING, PRECHARGE_FAILED = 4, 5
ISO_OK, ISO_WARNING, ISO_FAULT = 0, 1, 2
LOCK_UNLOCKED, LOCK_LOCKED, LOCK_MOVING = 0, 1, 2
LOCK_REQ_NONE, LOCK_REQ_LOCK, LOCK_REQ_UNLOCK = 0, 1, 2

# Inputs of the whole van: held between steps, like the last value of a bus signal.
_VAN_INPUTS: list[tuple[str, str]] = [
    ("in_motor_torque_request_nm", "f8"),  # signed motor torque, + drives forward
    ("in_brake_pressure_request_bar", "f8"),  # friction brake line pressure request
    ("in_epb_request", "i4"),  # EPB_REQ_*
    ("in_gear_request", "i4"),  # GEAR_*
    ("in_steer_enable", "i4"),  # 1: the EPS follows the angle request; 0: holds
    ("in_steer_angle_request_deg", "f8"),  # steering-wheel angle request, + = left
    ("in_steer_rate_limit_dps", "f8"),  # requested steering-wheel rate limit
    ("in_hv_request", "i4"),  # 1: BMS powers HV up (precharge); 0: opens the contactors
    ("in_grade_pct", "f8"),  # road grade, + = uphill in the forward direction
    ("in_ambient_c", "f8"),
    ("in_coolant_c", "f8"),  # HV coolant loop inlet temperature
    ("in_isolation_resistance_ohm", "f8"),  # fault hook: HV to chassis isolation
]

_VAN_STATE: list[tuple[str, str]] = [
    ("time_s", "f8"),
    ("step_count", "i8"),
    # longitudinal
    ("speed_mps", "f8"),  # signed along the heading
    ("accel_mps2", "f8"),
    ("distance_m", "f8"),  # signed path length
    ("mass_kg", "f8"),  # curb + payload (from the load cells)
    ("payload_kg", "f8"),
    ("payload_over_limit", "i4"),
    ("standstill", "i4"),
    ("gear", "i4"),
    ("park_pawl_engaged", "i4"),
    ("brake_pressure_bar", "f8"),
    ("brake_force_n", "f8"),  # friction brake + EPB force actually acting at the road
    ("abs_active", "i4"),  # demanded brake force above the tyre-road limit
    ("epb_state", "i4"),
    ("epb_clamp", "f8"),  # 0..1 fraction of the EPB holding torque applied
    ("wheel_power_w", "f8"),  # power delivered by the drive to the road (signed)
    # motor / inverter
    ("motor_torque_nm", "f8"),
    ("motor_speed_radps", "f8"),
    ("motor_speed_rpm", "f8"),
    ("motor_torque_limit_motoring_nm", "f8"),
    ("motor_torque_limit_regen_nm", "f8"),
    ("motor_torque_enabled", "i4"),
    ("motor_power_mech_w", "f8"),
    ("motor_power_elec_w", "f8"),
    ("motor_temp_c", "f8"),
    ("inverter_temp_c", "f8"),
    ("dc_current_a", "f8"),  # inverter + auxiliaries DC current, + = from the pack
    # steering and planar motion
    ("steer_angle_deg", "f8"),  # steering-wheel angle
    ("steer_rate_dps", "f8"),
    ("road_wheel_angle_rad", "f8"),
    ("yaw_rate_radps", "f8"),
    ("lat_accel_mps2", "f8"),
    ("heading_rad", "f8"),
    ("pos_x_m", "f8"),
    ("pos_y_m", "f8"),
    ("wheel_speed_fl_mps", "f8"),
    ("wheel_speed_fr_mps", "f8"),
    ("wheel_speed_rl_mps", "f8"),
    ("wheel_speed_rr_mps", "f8"),
    # HV battery
    ("pack_ocv_v", "f8"),
    ("pack_voltage_v", "f8"),  # terminal voltage at the battery side of the contactors
    ("pack_current_a", "f8"),  # + = discharge
    ("pack_resistance_ohm", "f8"),
    ("link_voltage_v", "f8"),  # DC link (inverter capacitor)
    ("soc", "f8"),  # mean cell SOC, 0..1
    ("soc_min", "f8"),
    ("soc_max", "f8"),
    ("pack_energy_out_j", "f8"),  # integral of OCV * I: chemical energy drawn
    ("pack_heat_j", "f8"),  # integral of I^2 R in the cells
    ("cell_v_min", "f8"),  # measured (fault offsets included)
    ("cell_v_min_index", "i4"),  # 1-based, as on the bus
    ("cell_v_max", "f8"),
    ("cell_v_max_index", "i4"),
    ("cell_v_avg", "f8"),
    ("cell_t_min_c", "f8"),  # over the temperature sensors
    ("cell_t_min_index", "i4"),  # 1-based sensor number
    ("cell_t_max_c", "f8"),
    ("cell_t_max_index", "i4"),
    ("cell_t_avg_c", "f8"),
    ("main_pos_state", "i4"),
    ("main_neg_state", "i4"),
    ("precharge_relay_state", "i4"),
    ("precharge_state", "i4"),
    ("precharge_timer_s", "f8"),
    ("hv_active", "i4"),
    ("isolation_resistance_ohm", "f8"),
    ("isolation_state", "i4"),
    ("discharge_power_limit_w", "f8"),
    ("charge_power_limit_w", "f8"),
    ("discharge_current_limit_a", "f8"),
    ("charge_current_limit_a", "f8"),
]

VAN_DTYPE = np.dtype(_VAN_INPUTS + _VAN_STATE)
INPUT_FIELDS: tuple[str, ...] = tuple(name for name, _ in _VAN_INPUTS)

_COMP_INPUTS: list[tuple[str, str]] = [
    ("in_lock_request", "i4"),  # LOCK_REQ_*
    ("in_door_release", "i4"),  # 1: pop the door open (acts only when unlocked)
    ("in_door_close", "i4"),  # 1: someone pushes the door shut
    ("in_load_kg", "f8"),  # what lies in the compartment (scenario sets it)
    ("in_door_forced_open", "i4"),  # fault hook: the door is open whatever the lock says
]

COMP_DTYPE = np.dtype(
    _COMP_INPUTS
    + [
        ("door_open", "i4"),
        ("lock_state", "i4"),
        ("lock_target", "i4"),
        ("lock_timer_s", "f8"),
        ("weight_kg", "f8"),  # load-cell reading
        ("temp_c", "f8"),
    ]
)
COMP_INPUT_FIELDS: tuple[str, ...] = tuple(name for name, _ in _COMP_INPUTS)

CELL_DTYPE = np.dtype(
    [
        ("soc", "f8"),
        ("capacity_as", "f8"),  # ampere-seconds (seeded spread)
        ("r25_ohm", "f8"),  # internal resistance at 25 degC (seeded spread)
        ("temp_c", "f8"),
        ("temp_offset_c", "f8"),  # fault hook: local hot/cold spot over the lumped model
        ("voltage_offset_v", "f8"),  # fault hook: measurement offset seen by the BMS
        ("ocv_v", "f8"),
        ("resistance_ohm", "f8"),  # at the present temperature
        ("voltage_v", "f8"),  # true terminal voltage
        ("measured_v", "f8"),  # what the BMS reads
    ]
)

PARAM_DTYPE = np.dtype(
    [
        ("step_s", "f8"),
        ("curb_mass_kg", "f8"),
        ("rated_payload_kg", "f8"),
        ("rotating_mass_kg", "f8"),
        ("gravity_mps2", "f8"),
        ("air_density_kgpm3", "f8"),
        ("drag_coefficient", "f8"),
        ("frontal_area_m2", "f8"),
        ("rolling_resistance", "f8"),
        ("tyre_friction", "f8"),
        ("wheel_radius_m", "f8"),
        ("wheelbase_m", "f8"),
        ("track_m", "f8"),
        ("gear_ratio", "f8"),
        ("gear_efficiency", "f8"),
        ("motor_peak_torque_nm", "f8"),
        ("motor_peak_power_w", "f8"),
        ("motor_regen_torque_nm", "f8"),
        ("motor_regen_power_w", "f8"),
        ("motor_max_speed_radps", "f8"),
        ("motor_torque_tau_s", "f8"),
        ("motor_inverter_efficiency", "f8"),
        ("motor_loss_share", "f8"),
        ("motor_heat_capacity_jpk", "f8"),
        ("motor_thermal_resistance_kpw", "f8"),
        ("inverter_heat_capacity_jpk", "f8"),
        ("inverter_thermal_resistance_kpw", "f8"),
        ("aux_power_w", "f8"),
        ("brake_torque_per_bar_nm", "f8"),
        ("brake_pressure_tau_s", "f8"),
        ("brake_pressure_max_bar", "f8"),
        ("epb_holding_torque_nm", "f8"),
        ("epb_actuation_time_s", "f8"),
        ("park_pawl_max_speed_mps", "f8"),
        ("park_pawl_holding_torque_nm", "f8"),
        ("steering_ratio", "f8"),
        ("max_road_wheel_angle_deg", "f8"),
        ("steer_max_rate_dps", "f8"),
        ("cell_v_min", "f8"),
        ("cell_v_max", "f8"),
        ("cell_heat_capacity_jpk", "f8"),
        ("cell_coolant_conductance_wpk", "f8"),
        ("cell_ambient_conductance_wpk", "f8"),
        ("pack_busbar_resistance_ohm", "f8"),
        ("link_capacitance_f", "f8"),
        ("precharge_resistance_ohm", "f8"),
        ("precharge_threshold", "f8"),
        ("precharge_timeout_s", "f8"),
        ("link_bleed_resistance_ohm", "f8"),
        ("isolation_warning_ohm_per_v", "f8"),
        ("isolation_fault_ohm_per_v", "f8"),
        ("bms_max_discharge_current_a", "f8"),
        ("bms_max_charge_current_a", "f8"),
        ("bms_voltage_derate_margin_v", "f8"),
        ("bms_soc_discharge_derate_start", "f8"),
        ("bms_soc_discharge_derate_end", "f8"),
        ("bms_soc_charge_derate_start", "f8"),
        ("bms_soc_charge_derate_end", "f8"),
        ("bms_temp_discharge_min_c", "f8"),
        ("bms_temp_discharge_full_low_c", "f8"),
        ("bms_temp_discharge_full_high_c", "f8"),
        ("bms_temp_discharge_max_c", "f8"),
        ("bms_temp_charge_min_c", "f8"),
        ("bms_temp_charge_full_low_c", "f8"),
        ("bms_temp_charge_full_high_c", "f8"),
        ("bms_temp_charge_max_c", "f8"),
        ("cells_per_temp_sensor", "f8"),
        ("lock_actuation_time_s", "f8"),
        ("compartment_tau_closed_s", "f8"),
        ("compartment_tau_open_s", "f8"),
    ]
)
