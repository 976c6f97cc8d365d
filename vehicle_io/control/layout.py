"""The control loop's fixed numeric layout: input, output and state records, interlocks, thresholds.

This is the ONE module that defines them. The numba kernel (``_kernels.py``) reads and
writes these records by field name only, so the names are the contract and the dtypes are
part of the compiled signature (a layout change recompiles; nothing is baked into the
numba cache from another module).

* :data:`INPUT_DTYPE` - one float64 field per input: decoded signal values (``INPUT_SIGNALS``
  maps field -> DBC signal), per-message validity (``ok_*``: received, fresh and E2E VALID;
  ``to_*``: timed out / never received; neither = received but E2E invalid), the tick time
  and period, and the operator inputs the DBC does not carry yet (remote/physical e-stop,
  reset request).
* :data:`OUTPUT_DTYPE` - command values (physical units, DBC ranges), status, and one uint8
  ``ilk_*`` flag per interlock, contiguous and in :data:`INTERLOCKS` order.
* :data:`STATE_DTYPE` - everything the kernel remembers between ticks; ``lat_*`` fields are
  the latched faults (bits of :func:`latched_mask`).
* :class:`Thresholds` - every limit, in one frozen dataclass -> :data:`THRESHOLD_DTYPE` record.

Importing this module does not import numba.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

# --------------------------------------------------------------------------- enumerations
GEAR_P, GEAR_R, GEAR_N, GEAR_D, GEAR_NO_REQUEST = 0, 1, 2, 3, 7
MODE_MANUAL, MODE_AUTO, MODE_REMOTE, MODE_NO_REQUEST = 0, 1, 2, 7
EPB_NO_REQUEST, EPB_APPLY, EPB_RELEASE = 0, 1, 2
EPB_STATE_RELEASED, EPB_STATE_APPLIED = 0, 1
LOCK_NO_REQUEST, LOCK_LOCK, LOCK_UNLOCK = 0, 1, 2
LOCK_STATE_LOCKED = 1
ADC_STATE_ACTIVE, ADC_STATE_DEGRADED = 2, 3
CONTACTOR_CLOSED = 1
ISO_WARNING, ISO_FAULT = 1, 2
GW_STATE_INIT, GW_STATE_LISTEN_ONLY, GW_STATE_ARMED, GW_STATE_ACTIVE, GW_STATE_TRIPPED, GW_STATE_FAULT = range(6)
N_COMPARTMENTS = 6

# --------------------------------------------------------------------------- inputs
#: Messages whose validity the kernel sees, as (field suffix, DBC message name).
WATCHED_MESSAGES: tuple[tuple[str, str], ...] = (
    ("adc_command", "ADC_Command"),
    ("adc_heartbeat", "ADC_Heartbeat"),
    ("adc_cargo", "ADC_CargoRequest"),
    ("vcu_status", "VCU_Status"),
    ("mcu_status", "MCU_Status"),
    ("mcu_power", "MCU_Power"),
    ("brk_status", "BRK_Status"),
    ("brk_wheels", "BRK_WheelSpeeds"),
    ("eps_status", "EPS_Status"),
    ("bms_status", "BMS_Status"),
    ("bms_limits", "BMS_Limits"),
    ("bms_contactors", "BMS_Contactors"),
    ("bms_cellv", "BMS_CellVoltageStats"),
    ("bms_cellt", "BMS_CellTempStats"),
    ("cbc_doors", "CBC_DoorStatus"),
    ("cbc_payload", "CBC_Payload"),
)

#: Input field -> DBC signal (physical value, DBC unit; the kernel converts units).
INPUT_SIGNALS: tuple[tuple[str, str], ...] = (
    ("adc_estop", "ADC_EStop"),
    ("adc_remote_estop", "ADC_RemoteEStop"),
    ("adc_reset_request", "ADC_FaultResetRequest"),
    ("vcu_physical_estop", "VCU_PhysicalEStop"),
    ("adc_control_request", "ADC_ControlRequest"),
    ("adc_mode_request", "ADC_ModeRequest"),
    ("adc_gear_request", "ADC_GearRequest"),
    ("adc_epb_request", "ADC_EpbRequest"),
    ("adc_target_speed_mps", "ADC_TargetSpeed"),
    ("adc_target_accel_mps2", "ADC_TargetAccel"),
    ("adc_steer_angle_deg", "ADC_SteerAngleRequest"),
    ("adc_steer_rate_limit_degps", "ADC_SteerRateLimit"),
    ("adc_state", "ADC_State"),
    *((f"adc_compartment_request{i}", f"ADC_CompartmentRequest{i}") for i in range(1, N_COMPARTMENTS + 1)),
    ("vcu_ready", "VCU_Ready"),
    ("vcu_standstill", "VCU_Standstill"),
    ("vcu_brake_pedal_pressed", "VCU_BrakePedalPressed"),
    ("vcu_driver_present", "VCU_DriverPresent"),
    ("vcu_drive_mode", "VCU_DriveMode"),
    ("vcu_gear", "VCU_Gear"),
    ("vcu_epb_state", "VCU_EpbState"),
    ("vcu_speed_kph", "VCU_VehicleSpeed"),
    ("vcu_accel_pedal_pct", "VCU_AccelPedal"),
    ("vcu_fault_level", "VCU_FaultLevel"),
    ("mcu_fault_level", "MCU_FaultLevel"),
    ("mcu_motor_speed_rpm", "MCU_MotorSpeed"),
    ("mcu_torque_limit_motoring_nm", "MCU_TorqueLimitMotoring"),
    ("mcu_torque_limit_regen_nm", "MCU_TorqueLimitRegen"),
    ("mcu_torque_enabled", "MCU_TorqueEnabled"),
    ("mcu_torque_actual_nm", "MCU_TorqueActual"),
    ("brk_fault_level", "BRK_FaultLevel"),
    ("brk_pressure_bar", "BRK_Pressure"),
    ("brk_hold_active", "BRK_HoldActive"),
    ("brk_abs_active", "BRK_AbsActive"),
    ("brk_long_accel_mps2", "BRK_LongAccel"),
    ("brk_yaw_rate_degps", "BRK_YawRate"),
    ("brk_wheel_speeds_valid", "BRK_WheelSpeedsValid"),
    ("brk_wheel_fl_kph", "BRK_WheelSpeedFL"),
    ("brk_wheel_fr_kph", "BRK_WheelSpeedFR"),
    ("brk_wheel_rl_kph", "BRK_WheelSpeedRL"),
    ("brk_wheel_rr_kph", "BRK_WheelSpeedRR"),
    ("eps_fault_level", "EPS_FaultLevel"),
    ("eps_driver_override", "EPS_DriverOverride"),
    ("eps_steer_angle_deg", "EPS_SteerAngle"),
    ("eps_control_active", "EPS_ControlActive"),
    ("bms_soc_pct", "BMS_SOC"),
    ("bms_discharge_limit_kw", "BMS_DischargePowerLimit"),
    ("bms_charge_limit_kw", "BMS_ChargePowerLimit"),
    ("bms_fault_level", "BMS_FaultLevel"),
    ("bms_main_pos_state", "BMS_MainPosState"),
    ("bms_main_neg_state", "BMS_MainNegState"),
    ("bms_isolation_state", "BMS_IsolationState"),
    ("bms_isolation_kohm", "BMS_IsolationResistance"),
    ("bms_cell_v_max", "BMS_CellVoltageMax"),
    ("bms_cell_v_min", "BMS_CellVoltageMin"),
    ("bms_cell_t_max_degc", "BMS_CellTempMax"),
    ("cbc_fault_level", "CBC_FaultLevel"),
    ("cbc_all_doors_closed", "CBC_AllDoorsClosed"),
    ("cbc_all_locked", "CBC_AllLocked"),
    *((f"cbc_door_open{i}", f"CBC_DoorOpen{i}") for i in range(1, N_COMPARTMENTS + 1)),
    *((f"cbc_lock_state{i}", f"CBC_LockState{i}") for i in range(1, N_COMPARTMENTS + 1)),
    ("cbc_payload_over_limit", "CBC_PayloadOverLimit"),
    ("cbc_load_cell_fault", "CBC_LoadCellFault"),
    ("cbc_payload_kg", "CBC_TotalPayload"),
)

#: Inputs that are not DBC signals: set by the loop wrapper (time), and the e-stop and reset
#: inputs the wrapper ORs from their DBC signals and the bench operator's API.
EXTRA_INPUTS: tuple[str, ...] = ("t_s", "dt_s", "estop_remote", "estop_physical", "reset_request")

INPUT_FIELDS: tuple[str, ...] = (
    tuple(f for f, _ in INPUT_SIGNALS)
    + tuple(f"ok_{m}" for m, _ in WATCHED_MESSAGES)
    + tuple(f"to_{m}" for m, _ in WATCHED_MESSAGES)
    + EXTRA_INPUTS
)
INPUT_DTYPE = np.dtype([(name, np.float64) for name in INPUT_FIELDS])
N_SIGNAL_INPUTS = len(INPUT_SIGNALS)
N_WATCHED = len(WATCHED_MESSAGES)
#: Offsets into ``inputs.view(np.float64)``: signal values, then ok_*, then to_*, then extras.
OK_OFFSET = N_SIGNAL_INPUTS
TO_OFFSET = N_SIGNAL_INPUTS + N_WATCHED


# --------------------------------------------------------------------------- interlocks
class Interlock(NamedTuple):
    """One interlock: what it guards, how it is reported, what it does."""

    name: str  # also the output flag field ``ilk_<name>``
    code: str  # event code
    dtc: int  # 24-bit code in GW_ActiveFault1..8
    status_signal: str | None  # GW_Status flag bit, None where the DBC has no bit yet
    latched: str  # "no", or how it is latched and reset
    prop: str  # the stated property
    thresholds: tuple[str, ...]
    action: str


INTERLOCKS: tuple[Interlock, ...] = (
    Interlock("adc_timeout", "ILK_ADC_TIMEOUT", 0xC10001, "GW_IlkAdcTimeout",
              "safe stop latched until standstill; control needs a new engage edge",
              "ADC_Command or ADC_Heartbeat timed out -> no propulsion, no steering; if the gateway was "
              "responsible for motion: braking with deceleration <= safe_stop_decel_mps2 (jerk-limited), "
              "then EPB at standstill", ("safe_stop_decel_mps2", "jerk_max_mps3"), "safe stop, then EPB"),
    Interlock("adc_e2e", "ILK_ADC_E2E", 0xC10002, "GW_IlkAdcE2E",
              "as adc_timeout",
              "ADC_Command or ADC_Heartbeat received but E2E not VALID -> same as adc_timeout",
              ("safe_stop_decel_mps2",), "safe stop, then EPB"),
    Interlock("estop", "ILK_ESTOP", 0xC10003, "GW_IlkEStop",
              "latched; reset only at standstill, every e-stop source released, by a reset request edge",
              "e-stop (ADC_EStop, remote, physical) -> torque 0, full braking (emergency, "
              "full_brake_bar), EPB at standstill, no engage while latched",
              ("full_brake_bar", "standstill_speed_mps"), "full braking, EPB at standstill"),
    Interlock("door_open", "ILK_DOOR_OPEN", 0xC10004, "GW_IlkDoorOpen",
              "no (the stop it starts runs to standstill)",
              "a door open, a compartment not locked, CBC fault >= Degraded or door status invalid -> "
              "never positive torque; if moving, controlled stop at door_stop_decel_mps2",
              ("door_stop_decel_mps2",), "no propulsion, controlled stop"),
    Interlock("overspeed", "ILK_OVERSPEED", 0xC10005, "GW_IlkOverSpeed", "no",
              "speed > speed limit (payload, derate, degrade) + overspeed_margin_mps -> torque 0, "
              "brake at overspeed_decel_mps2",
              ("v_max_empty_mps", "v_max_rated_mps", "overspeed_margin_mps"), "no propulsion, brake to limit"),
    Interlock("steer_limit", "ILK_STEER_LIMIT", 0xC10006, "GW_IlkSteerLimit", "no",
              "steering request beyond steer_angle_max_deg or the speed-dependent rate limit -> clamped",
              ("steer_angle_max_deg", "steer_rate_0_degps", "steer_rate_3_degps"), "clamp"),
    Interlock("accel_limit", "ILK_ACCEL_LIMIT", 0xC10007, "GW_IlkAccelLimit", "no",
              "acceleration request beyond the payload-scaled limits -> clamped (jerk-limited)",
              ("a_max_empty_mps2", "a_max_rated_mps2", "decel_max_cmd_mps2"), "clamp"),
    Interlock("gear_mismatch", "ILK_GEAR_MISMATCH", 0xC10008, "GW_IlkGearMismatch", "no",
              "gear request != engaged gear -> no propulsion; the change is requested only at "
              "standstill with the brake held (>= gear_brake_bar or hold active)",
              ("gear_brake_bar", "standstill_speed_mps"), "no propulsion, hold brake, then shift"),
    Interlock("mode_not_auto", "ILK_MODE_NOT_AUTO", 0xC10009, "GW_IlkModeNotAuto", "no",
              "VCU or ADC mode not Auto, driver present, or ADC state not Active/Degraded -> no engage; "
              "engaged: disengage (safe stop if the gateway is responsible for motion)",
              (), "no control"),
    Interlock("hv_not_ready", "ILK_HV_NOT_READY", 0xC1000A, "GW_IlkHvNotReady", "no",
              "VCU not ready or main contactors not both closed -> no propulsion", (), "no propulsion"),
    Interlock("bms_fault", "ILK_BMS_FAULT", 0xC1000B, "GW_IlkBmsFault",
              "fault and critical levels latched; reset at standstill by request once the values are back",
              "cell V >= cell_ov_fault_v or <= cell_uv_fault_v, T >= cell_ot_fault_degc, isolation "
              "< iso_fault_kohm or Fault, BMS fault level >= 2 -> no propulsion, safe stop "
              "(<= safe_stop_decel_mps2), open contactors at standstill; critical thresholds (cell_*_crit_*, BMS level 3) -> open at once",
              ("cell_ov_fault_v", "cell_uv_fault_v", "cell_ot_fault_degc", "iso_fault_kohm",
               "cell_ov_crit_v", "cell_uv_crit_v", "cell_ot_crit_degc"),
              "safe stop, open contactors at standstill"),
    Interlock("mcu_fault", "ILK_MCU_FAULT", 0xC1000C, "GW_IlkMcuFault", "safe stop latched until standstill",
              "MCU fault level >= 2 -> no propulsion, safe stop", (), "safe stop"),
    Interlock("brk_fault", "ILK_BRK_FAULT", 0xC1000D, "GW_IlkBrkFault", "safe stop latched until standstill",
              "brake fault level >= 2 -> no propulsion, safe stop (emergency flag set)", (), "safe stop"),
    Interlock("eps_fault", "ILK_EPS_FAULT", 0xC1000E, "GW_IlkEpsFault", "safe stop latched until standstill",
              "EPS fault level >= 2 -> steering off, safe stop", (), "safe stop, steering off"),
    Interlock("pt_timeout", "ILK_PT_TIMEOUT", 0xC1000F, "GW_IlkPtTimeout", "safe stop latched until standstill",
              "VCU_Status, MCU_Status, BRK_Status, BRK_WheelSpeeds, EPS_Status or BMS_Contactors timed "
              "out -> outputs inactive, safe stop", (), "safe stop"),
    Interlock("pt_e2e", "ILK_PT_E2E", 0xC10010, "GW_IlkPtE2E", "safe stop latched until standstill",
              "one of those received with E2E not VALID -> as pt_timeout", (), "safe stop"),
    Interlock("body_timeout", "ILK_BODY_TIMEOUT", 0xC10011, "GW_IlkBodyTimeout", "no",
              "CBC_DoorStatus not valid -> doors treated as open (door_open)", (), "no propulsion, controlled stop"),
    Interlock("overload", "ILK_OVERLOAD", 0xC10012, "GW_IlkOverload", "no",
              "payload > rated_payload_kg, CBC over-limit, load-cell fault or payload unknown -> no "
              "drive-away from standstill", ("rated_payload_kg",), "no drive-away"),
    Interlock("driver_override", "ILK_DRIVER_OVERRIDE", 0xC10013, "GW_IlkDriverOverride", "no",
              "EPS driver override, brake pedal, accelerator > pedal_override_pct -> disengage, hand over",
              ("pedal_override_pct",), "disengage"),
    Interlock("epb_applied", "ILK_EPB_APPLIED", 0xC10014, "GW_IlkEpbApplied", "no",
              "EPB not released -> no propulsion", (), "no propulsion"),
    Interlock("plausibility", "ILK_SPEED_PLAUSIBILITY", 0xC10015, "GW_IlkPlausibility",
              "latched; reset at standstill by request",
              "|wheel speed - motor speed| > max(plaus_abs_mps, plaus_rel * speed) for plaus_time_s -> "
              "no propulsion, safe stop (latched); no valid speed at all (wheels, VCU, motor) -> no "
              "engagement, safe stop (while it lasts)", ("plaus_abs_mps", "plaus_rel", "plaus_time_s"),
              "safe stop"),
    Interlock("degraded", "ILK_DEGRADED", 0xC10016, "GW_IlkDegraded", "no",
              "BMS_Limits, MCU_Power, cell statistics or BMS_Status stale/invalid -> limp limits "
              "(limp_power_kw, limp_speed_mps, no regen)", ("limp_power_kw", "limp_speed_mps"), "degrade"),
    Interlock("battery_derate", "ILK_BATTERY_DERATE", 0xC10017, "GW_IlkBatteryDerate", "no",
              "cell V >= cell_ov_derate_v or <= cell_uv_derate_v, T >= cell_ot_derate_degc, isolation "
              "< iso_warn_kohm or Warning, BMS level 1 -> torque/power x derate_factor, speed <= derate_speed_mps",
              ("cell_ov_derate_v", "cell_uv_derate_v", "cell_ot_derate_degc", "iso_warn_kohm", "derate_factor"),
              "derate"),
    Interlock("unlock_refused", "ILK_UNLOCK_REFUSED", 0xC10018, "GW_IlkUnlockRefused", "no",
              "unlock requested away from standstill or not in P -> refused (lock kept)",
              ("standstill_speed_mps",), "refuse unlock"),
    Interlock("hv_open", "ILK_HV_OPEN_REQUEST", 0xC10019, "GW_IlkHvOpen", "latched with bms_fault",
              "contactor opening requested (bms_fault at standstill, or critical; or an MCU still "
              "delivering unintended torque actuator_response_s after the gateway withdrew "
              "GW_DriveEnable for it: the last way to take the torque away)", (), "open contactors"),
    Interlock("actuator_response", "ILK_ACTUATOR_RESPONSE", 0xC1001A, "GW_IlkActuatorResponse",
              "latched; reset at standstill by request",
              "GW_SteerEnable sent but EPS_ControlActive 0 (no driver override), GW_DriveEnable sent "
              "but MCU_TorqueEnabled 0, MCU_TorqueActual beyond the torque the gateway sent (away from "
              "zero, by more than max(torque_plaus_abs_nm, torque_plaus_rel * abs(command)); 0 Nm "
              "without GW_DriveEnable) while the gateway drives, or BRK_Pressure below the pressure "
              "the gateway sent by more than max(brake_plaus_abs_bar, brake_plaus_rel * command) "
              "(ABS not modulating), on every tick for actuator_response_s -> the actuator does not "
              "follow: no propulsion, steering off, safe stop (latched), EPB at standstill",
              ("actuator_response_s", "torque_plaus_abs_nm", "torque_plaus_rel", "brake_plaus_abs_bar",
               "brake_plaus_rel"),
              "safe stop, steering off"),
)
INTERLOCK_NAMES: tuple[str, ...] = tuple(i.name for i in INTERLOCKS)
N_INTERLOCKS = len(INTERLOCKS)
ILK_BIT: dict[str, int] = {name: 1 << k for k, name in enumerate(INTERLOCK_NAMES)}

# --------------------------------------------------------------------------- outputs
_COMMAND_FIELDS: list[tuple[str, type]] = [
    ("drive_enable", np.uint8),
    ("torque_nm", np.float64),
    ("gear_request", np.uint8),
    ("epb_request", np.uint8),
    ("drive_mode_request", np.uint8),
    ("speed_limit_kph", np.float64),
    ("brake_enable", np.uint8),
    ("brake_emergency", np.uint8),
    ("brake_hold", np.uint8),
    ("brake_pressure_bar", np.float64),
    ("steer_enable", np.uint8),
    ("steer_angle_deg", np.float64),
    ("steer_rate_limit_degps", np.float64),
    ("cargo_enable", np.uint8),
    ("cargo_moving", np.uint8),
    *((f"lock_request{i}", np.uint8) for i in range(1, N_COMPARTMENTS + 1)),
    *((f"door_release{i}", np.uint8) for i in range(1, N_COMPARTMENTS + 1)),
    ("hv_open_request", np.uint8),
    ("accel_cmd_mps2", np.float64),
    ("speed_mps", np.float64),
    ("speed_limit_mps", np.float64),
    ("standstill", np.uint8),
    ("control_allowed", np.uint8),
    ("estop_active", np.uint8),
    ("fault_latched", np.uint8),
    ("gw_state", np.uint8),
]
OUTPUT_DTYPE = np.dtype(_COMMAND_FIELDS + [(f"ilk_{n}", np.uint8) for n in INTERLOCK_NAMES])
ILK_OFFSET = OUTPUT_DTYPE.fields[f"ilk_{INTERLOCK_NAMES[0]}"][1]  # byte offset of the flags

# --------------------------------------------------------------------------- state
LATCHES: tuple[str, ...] = ("lat_estop", "lat_safe_stop", "lat_door_stop", "lat_bms_fault",
                            "lat_bms_critical", "lat_plaus", "lat_hv_open", "lat_actuator")
STATE_DTYPE = np.dtype(
    [
        ("steps", np.int64),
        ("t_s", np.float64),
        ("engaged", np.uint8),  # controls allowed (opendbc controls_allowed)
        ("responsible", np.uint8),  # the gateway moved the van and it has not stopped yet
        ("prev_control_request", np.uint8),
        ("prev_reset_request", np.uint8),
        *((name, np.uint8) for name in LATCHES),
        ("epb_hold", np.uint8),  # keep requesting EPB apply until an engaged release
        ("steer_active", np.uint8),
        ("steer_deg", np.float64),
        ("accel_mps2", np.float64),  # jerk-limited acceleration command
        ("torque_nm", np.float64),  # last torque command
        ("plaus_timer_s", np.float64),
        # how long the EPS / MCU has refused what the gateway commanded on the tick before,
        # how long the MCU's torque / the BRK's pressure has not matched the command
        ("eps_refuse_s", np.float64),
        ("mcu_refuse_s", np.float64),
        ("torque_excess_s", np.float64),
        ("brake_deficit_s", np.float64),
        ("prev_drive_enable", np.uint8),
        ("prev_brake_bar", np.float64),  # pressure sent on the tick before (0: brake not enabled)
        ("speed_mps", np.float64),
        # last valid CBC payload: the mass for the brake force when the payload goes stale
        # (cargo cannot change while moving; limits still take the rated payload then)
        ("payload_hold_ok", np.uint8),
        ("payload_hold_kg", np.float64),
    ]
)


def latched_mask(state: npt.NDArray[np.void]) -> int:
    """The latched faults of a state record as bits (bit k = ``LATCHES[k]``)."""
    rec = state[0]
    return sum(1 << k for k, name in enumerate(LATCHES) if rec[name])


# --------------------------------------------------------------------------- thresholds
@dataclass(frozen=True)
class Thresholds:
    """Every limit of the control loop, with units; ``to_record()`` gives the kernel's record.

    Values are the Z10 defaults; the reasoning is in docs/interlocks.md.
    """

    # vehicle (for torque <-> acceleration)
    # These must agree with the van (hil/plant/z10_params.toml): with a brake gain three
    # times the real one, every controlled stop braked at a third of its target.
    curb_mass_kg: float = 2750.0
    wheel_radius_m: float = 0.355
    gear_ratio: float = 10.5
    torque_max_nm: float = 400.0
    brake_gain_n_per_bar: float = 422.5  # total wheel force per bar: 150 Nm/bar over r = 0.355 m
    # standstill and speed
    standstill_speed_mps: float = 0.1
    v_max_empty_mps: float = 22.2  # 80 km/h
    v_max_rated_mps: float = 19.4  # 70 km/h at rated payload
    overspeed_margin_mps: float = 1.0
    overspeed_decel_mps2: float = 1.0
    # longitudinal
    a_max_empty_mps2: float = 2.0
    a_max_rated_mps2: float = 1.2
    decel_max_cmd_mps2: float = 5.0  # the most braking the autonomy may request
    jerk_max_mps3: float = 5.0
    speed_gain_per_s: float = 0.5  # accel per m/s of speed error
    safe_stop_decel_mps2: float = 3.0
    door_stop_decel_mps2: float = 2.0
    full_brake_bar: float = 120.0
    max_brake_bar: float = 150.0
    hold_brake_bar: float = 20.0
    gear_brake_bar: float = 15.0
    torque_rate_nm_per_s: float = 2000.0
    regen_min_speed_mps: float = 1.0
    omega_min_radps: float = 50.0  # floor under motor speed for power -> torque
    # steering: rate limit falls with speed, linear between the four points
    steer_angle_max_deg: float = 540.0
    steer_rate_v0_mps: float = 0.0
    steer_rate_v1_mps: float = 5.0
    steer_rate_v2_mps: float = 15.0
    steer_rate_v3_mps: float = 25.0
    steer_rate_0_degps: float = 360.0
    steer_rate_1_degps: float = 200.0
    steer_rate_2_degps: float = 90.0
    steer_rate_3_degps: float = 40.0
    # payload
    rated_payload_kg: float = 1500.0
    # battery (NMC cells)
    cell_ov_derate_v: float = 4.15
    cell_ov_fault_v: float = 4.25
    cell_ov_crit_v: float = 4.35
    cell_uv_derate_v: float = 3.20
    cell_uv_fault_v: float = 2.90
    cell_uv_crit_v: float = 2.50
    cell_ot_derate_degc: float = 50.0
    cell_ot_fault_degc: float = 60.0
    cell_ot_crit_degc: float = 70.0
    iso_warn_kohm: float = 175.0  # 500 ohm/V at 350 V
    iso_fault_kohm: float = 35.0  # 100 ohm/V at 350 V (ISO 6469-3 DC minimum)
    derate_factor: float = 0.5
    derate_speed_mps: float = 11.1  # 40 km/h
    # degraded sensors
    limp_power_kw: float = 20.0
    limp_speed_mps: float = 8.3  # 30 km/h
    limp_torque_nm: float = 150.0
    # plausibility wheel speed vs motor speed
    plaus_abs_mps: float = 1.5
    plaus_rel: float = 0.2
    plaus_time_s: float = 0.3
    # actuator response: an enabled EPS / MCU must report itself active within this time,
    # and the MCU's torque / BRK's pressure must follow the command within these bands
    actuator_response_s: float = 0.3
    torque_plaus_abs_nm: float = 40.0
    torque_plaus_rel: float = 0.2
    brake_plaus_abs_bar: float = 5.0
    brake_plaus_rel: float = 0.5
    # driver override
    pedal_override_pct: float = 10.0

    def to_record(self) -> npt.NDArray[np.void]:
        """One-element THRESHOLD_DTYPE array for the kernel."""
        rec = np.zeros(1, dtype=THRESHOLD_DTYPE)
        for name, value in asdict(self).items():
            rec[name] = value
        return rec

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ValueError(f"Thresholds.{f.name}: expected a finite number, but got {value!r}")
        if not self.cell_uv_crit_v < self.cell_uv_fault_v < self.cell_uv_derate_v < self.cell_ov_derate_v:
            raise ValueError("Thresholds: expected cell_uv_crit_v < cell_uv_fault_v < cell_uv_derate_v < cell_ov_derate_v")
        if not self.cell_ov_derate_v < self.cell_ov_fault_v < self.cell_ov_crit_v:
            raise ValueError("Thresholds: expected cell_ov_derate_v < cell_ov_fault_v < cell_ov_crit_v")
        if not self.cell_ot_derate_degc < self.cell_ot_fault_degc < self.cell_ot_crit_degc:
            raise ValueError("Thresholds: expected cell_ot_derate_degc < cell_ot_fault_degc < cell_ot_crit_degc")
        if not self.iso_fault_kohm < self.iso_warn_kohm:
            raise ValueError("Thresholds: expected iso_fault_kohm < iso_warn_kohm")
        for name in ("torque_plaus_rel", "brake_plaus_rel"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"Thresholds.{name}: expected 0 <= x < 1, but got {getattr(self, name)}")
        if not 0.0 < self.derate_factor <= 1.0:
            raise ValueError(f"Thresholds.derate_factor: expected 0 < x <= 1, but got {self.derate_factor}")
        for name in ("curb_mass_kg", "wheel_radius_m", "gear_ratio", "brake_gain_n_per_bar", "rated_payload_kg",
                     "jerk_max_mps3", "omega_min_radps", "safe_stop_decel_mps2", "door_stop_decel_mps2",
                     "plaus_time_s", "actuator_response_s", "torque_plaus_abs_nm", "brake_plaus_abs_bar"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Thresholds.{name}: expected > 0, but got {getattr(self, name)}")


THRESHOLD_DTYPE = np.dtype([(f.name, np.float64) for f in fields(Thresholds)])


def new_state() -> npt.NDArray[np.void]:
    """A zeroed state record: not engaged, nothing latched."""
    return np.zeros(1, dtype=STATE_DTYPE)


def new_inputs() -> npt.NDArray[np.void]:
    """An input record with every message invalid and timed out (default deny)."""
    rec = np.zeros(1, dtype=INPUT_DTYPE)
    flat = rec.view(np.float64)
    flat[TO_OFFSET : TO_OFFSET + N_WATCHED] = 1.0
    rec["dt_s"] = 0.01
    return rec


#: A healthy van in Auto at standstill in D, EPB released, doors closed and locked, 500 kg
#: aboard, autonomy requesting control: input values (DBC units) for tests, benchmarks and
#: simulator defaults. Every message valid on top of these is the nominal input record.
_HEALTHY: dict[str, float] = {
    "adc_estop": 0, "adc_remote_estop": 0, "adc_reset_request": 0, "vcu_physical_estop": 0,
    "adc_control_request": 1, "adc_mode_request": 1, "adc_gear_request": 3,
    "adc_epb_request": 0, "adc_target_speed_mps": 0.0, "adc_target_accel_mps2": 0.0,
    "adc_steer_angle_deg": 0.0, "adc_steer_rate_limit_degps": 0.0, "adc_state": 2,
    "vcu_ready": 1, "vcu_standstill": 1, "vcu_brake_pedal_pressed": 0, "vcu_driver_present": 0,
    "vcu_drive_mode": 1, "vcu_gear": 3, "vcu_epb_state": 0, "vcu_speed_kph": 0.0,
    "vcu_accel_pedal_pct": 0.0, "vcu_fault_level": 0,
    "mcu_fault_level": 0, "mcu_motor_speed_rpm": 0.0, "mcu_torque_limit_motoring_nm": 400.0,
    "mcu_torque_limit_regen_nm": 400.0, "mcu_torque_enabled": 1, "mcu_torque_actual_nm": 0.0,
    "brk_fault_level": 0, "brk_pressure_bar": 0.0, "brk_hold_active": 0, "brk_abs_active": 0,
    "brk_long_accel_mps2": 0.0,
    "brk_yaw_rate_degps": 0.0, "brk_wheel_speeds_valid": 1, "brk_wheel_fl_kph": 0.0, "brk_wheel_fr_kph": 0.0,
    "brk_wheel_rl_kph": 0.0, "brk_wheel_rr_kph": 0.0,
    "eps_fault_level": 0, "eps_driver_override": 0, "eps_steer_angle_deg": 0.0,
    "eps_control_active": 1,
    "bms_soc_pct": 80.0, "bms_discharge_limit_kw": 150.0, "bms_charge_limit_kw": 60.0,
    "bms_fault_level": 0, "bms_main_pos_state": 1, "bms_main_neg_state": 1, "bms_isolation_state": 0,
    "bms_isolation_kohm": 5000.0, "bms_cell_v_max": 3.9, "bms_cell_v_min": 3.8, "bms_cell_t_max_degc": 30.0,
    "cbc_fault_level": 0, "cbc_all_doors_closed": 1, "cbc_all_locked": 1,
    "cbc_payload_over_limit": 0, "cbc_load_cell_fault": 0, "cbc_payload_kg": 500.0,
    **{f"adc_compartment_request{i}": 0 for i in range(1, N_COMPARTMENTS + 1)},
    **{f"cbc_door_open{i}": 0 for i in range(1, N_COMPARTMENTS + 1)},
    **{f"cbc_lock_state{i}": 1 for i in range(1, N_COMPARTMENTS + 1)},
}


def healthy_inputs() -> dict[str, float]:
    """A copy of the healthy-van input values (see ``_HEALTHY``)."""
    return dict(_HEALTHY)


def nominal_inputs() -> npt.NDArray[np.void]:
    """An input record of the healthy van with every watched message valid."""
    rec = np.zeros(1, dtype=INPUT_DTYPE)
    for name, value in _HEALTHY.items():
        rec[name] = value
    flat = rec.view(np.float64)
    flat[OK_OFFSET : OK_OFFSET + N_WATCHED] = 1.0
    rec["dt_s"] = 0.01
    return rec


def new_outputs() -> npt.NDArray[np.void]:
    return np.zeros(1, dtype=OUTPUT_DTYPE)


def ilk_flags(out: npt.NDArray[np.void]) -> npt.NDArray[np.uint8]:
    """The ``ilk_*`` flags of an output record as a uint8 view (INTERLOCKS order)."""
    return out.view(np.uint8)[ILK_OFFSET : ILK_OFFSET + N_INTERLOCKS]
