"""Numba kernel of the control loop: one step, interlocks first, state mutated in place.

Records (dtypes in ``layout.py``) are read and written by field name only. Every interlock
below is listed in ``layout.INTERLOCKS`` with its code, property, thresholds, latching and
action; docs/interlocks.md is the table. Faults are flags in the state, never exceptions:
a NaN or out-of-range input counts as invalid (default deny).

``error_model="numpy"``: a division never raises inside the loop (no hidden zero checks,
either); every divisor is a threshold validated > 0 by ``Thresholds`` or a constant.

Conventions: speeds are magnitudes in m/s; ``torque_nm`` > 0 is propulsion in the engaged
gear's direction, < 0 regenerative braking; accelerations are along the direction of travel.
"""

import math

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def _clamp(x, lo, hi):
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


@njit(cache=True, error_model="numpy")
def _flag(x):
    # A 0/1 signal: 1 only for a finite value >= 0.5.
    return x >= 0.5


@njit(cache=True, error_model="numpy")
def _level(x):
    # An enumerated signal as int; NaN/negative -> -1 (never equal to a valid code).
    if not (x >= 0.0 and x < 256.0):
        return -1
    return int(x)


@njit(cache=True, error_model="numpy")
def _fault_level(x):
    # An ECU fault level (0 ok, 1 warning/degraded, 2 fault, 3 critical); one that cannot be
    # read (NaN, negative, >= 256) is a fault: default deny, never "no fault".
    if not (x >= 0.0 and x < 256.0):
        return 2
    return int(x)


@njit(cache=True, error_model="numpy")
def _interp4(v, x0, x1, x2, x3, y0, y1, y2, y3):
    if v <= x0:
        return y0
    if v <= x1:
        return y0 + (y1 - y0) * (v - x0) / (x1 - x0)
    if v <= x2:
        return y1 + (y2 - y1) * (v - x1) / (x2 - x1)
    if v <= x3:
        return y2 + (y3 - y2) * (v - x2) / (x3 - x2)
    return y3


@njit(cache=True, error_model="numpy")
def steer_rate_limit_degps(speed_mps, thr):
    """Steering rate limit at a speed: linear between four points, falling with speed."""
    k = thr[0]
    return _interp4(speed_mps, k["steer_rate_v0_mps"], k["steer_rate_v1_mps"], k["steer_rate_v2_mps"],
                    k["steer_rate_v3_mps"], k["steer_rate_0_degps"], k["steer_rate_1_degps"],
                    k["steer_rate_2_degps"], k["steer_rate_3_degps"])


@njit(cache=True, error_model="numpy")
def step(state, inp, out, thr):
    """One control tick: inputs -> interlocks -> commands. Returns the interlock flag count."""
    s = state[0]
    u = inp[0]
    y = out[0]
    k = thr[0]

    dt = u["dt_s"]
    if not (dt > 0.0 and dt <= 0.1):
        dt = 0.01
    s["steps"] += 1
    s["t_s"] = u["t_s"]

    # ---------------------------------------------------------------- receive validity
    adc_cmd_ok = _flag(u["ok_adc_command"])
    adc_hb_ok = _flag(u["ok_adc_heartbeat"])
    adc_timeout = _flag(u["to_adc_command"]) or _flag(u["to_adc_heartbeat"])
    adc_e2e = (not adc_cmd_ok and not _flag(u["to_adc_command"])) or (
        not adc_hb_ok and not _flag(u["to_adc_heartbeat"]))
    adc_ok = adc_cmd_ok and adc_hb_ok
    vcu_ok = _flag(u["ok_vcu_status"])
    mcu_ok = _flag(u["ok_mcu_status"])
    brk_ok = _flag(u["ok_brk_status"])
    whl_ok = _flag(u["ok_brk_wheels"])
    eps_ok = _flag(u["ok_eps_status"])
    cont_ok = _flag(u["ok_bms_contactors"])
    pt_timeout = (_flag(u["to_vcu_status"]) or _flag(u["to_mcu_status"]) or _flag(u["to_brk_status"])
                  or _flag(u["to_brk_wheels"]) or _flag(u["to_eps_status"]) or _flag(u["to_bms_contactors"]))
    pt_all_ok = vcu_ok and mcu_ok and brk_ok and whl_ok and eps_ok and cont_ok
    pt_e2e = (not pt_all_ok) and not pt_timeout
    body_ok = _flag(u["ok_cbc_doors"])
    limits_ok = _flag(u["ok_bms_limits"]) and _flag(u["ok_mcu_power"])
    cells_ok = _flag(u["ok_bms_cellv"]) and _flag(u["ok_bms_cellt"]) and _flag(u["ok_bms_status"])
    degraded = not (limits_ok and cells_ok)

    # ---------------------------------------------------------------- speed and plausibility
    r = k["wheel_radius_m"]
    ratio = k["gear_ratio"]
    v_wheel = 0.0
    wheels_valid = whl_ok and _flag(u["brk_wheel_speeds_valid"])
    if wheels_valid:
        v_wheel = (u["brk_wheel_fl_kph"] + u["brk_wheel_fr_kph"] + u["brk_wheel_rl_kph"]
                   + u["brk_wheel_rr_kph"]) / (4.0 * 3.6)
        wheels_valid = v_wheel >= 0.0  # NaN fails
    rpm = u["mcu_motor_speed_rpm"]
    motor_valid = mcu_ok and rpm == rpm
    omega = abs(rpm) * (2.0 * math.pi / 60.0) if motor_valid else 0.0
    v_motor = omega / ratio * r
    v_vcu = u["vcu_speed_kph"] / 3.6
    speed_known = True
    if wheels_valid:
        speed = v_wheel
    elif vcu_ok and v_vcu >= 0.0:
        speed = v_vcu
    elif motor_valid:
        speed = v_motor
    else:
        speed = s["speed_mps"] if s["speed_mps"] > k["standstill_speed_mps"] else 1.0e3
        speed_known = False
    s["speed_mps"] = speed
    standstill = speed_known and speed <= k["standstill_speed_mps"]
    if vcu_ok and not _flag(u["vcu_standstill"]):
        standstill = False

    if wheels_valid and motor_valid:
        tol = max(k["plaus_abs_mps"], k["plaus_rel"] * max(v_wheel, v_motor))
        if abs(v_wheel - v_motor) > tol:
            s["plaus_timer_s"] += dt
        else:
            s["plaus_timer_s"] = 0.0
        if s["plaus_timer_s"] >= k["plaus_time_s"]:
            s["lat_plaus"] = 1
    else:
        s["plaus_timer_s"] = 0.0

    # ---------------------------------------------------------------- actuator response
    # An actuator the gateway enabled on the tick before must report that it follows: an EPS
    # that does not steer (and no driver took over) or an MCU that does not drive while
    # commanded leaves the van without the control the gateway believes it has.
    eps_refuses = (s["steer_active"] == 1 and eps_ok and not _flag(u["eps_control_active"])
                   and not _flag(u["eps_driver_override"]))
    s["eps_refuse_s"] = s["eps_refuse_s"] + dt if eps_refuses else 0.0
    mcu_refuses = s["prev_drive_enable"] == 1 and mcu_ok and not _flag(u["mcu_torque_enabled"])
    s["mcu_refuse_s"] = s["mcu_refuse_s"] + dt if mcu_refuses else 0.0
    # Unintended torque (the classic EV hazard): whenever only the gateway may ask for torque
    # (it sent GW_DriveEnable, it is responsible for motion, or the VCU is in Auto with no
    # driver aboard), the MCU's torque must lie between zero and what the gateway sent (0 Nm
    # without GW_DriveEnable), give or take the band: less is a limit the MCU may apply, more
    # or the other way is not. NaN compares false: an unreadable torque is not judged here.
    t_sent = s["torque_nm"] if s["prev_drive_enable"] == 1 else 0.0
    t_band = max(k["torque_plaus_abs_nm"], k["torque_plaus_rel"] * abs(t_sent))
    t_act = u["mcu_torque_actual_nm"]
    gateway_drives = (s["prev_drive_enable"] == 1 or s["responsible"] == 1 or (
        vcu_ok and _level(u["vcu_drive_mode"]) == 1 and not _flag(u["vcu_driver_present"])))
    torque_excess = (gateway_drives and mcu_ok
                     and (t_act > max(t_sent, 0.0) + t_band or t_act < min(t_sent, 0.0) - t_band))
    s["torque_excess_s"] = s["torque_excess_s"] + dt if torque_excess else 0.0
    # A brake that does not build what the gateway sent (ABS may legitimately hold it lower).
    p_sent = s["prev_brake_bar"]
    brake_deficit = (p_sent > 0.0 and brk_ok and not _flag(u["brk_abs_active"])
                     and u["brk_pressure_bar"] < p_sent - max(k["brake_plaus_abs_bar"], k["brake_plaus_rel"] * p_sent))
    s["brake_deficit_s"] = s["brake_deficit_s"] + dt if brake_deficit else 0.0
    if s["eps_refuse_s"] >= k["actuator_response_s"] or s["mcu_refuse_s"] >= k["actuator_response_s"]:
        s["lat_actuator"] = 1
    if s["torque_excess_s"] >= k["actuator_response_s"]:
        s["lat_actuator"] = 1
    if s["brake_deficit_s"] >= k["actuator_response_s"]:
        s["lat_actuator"] = 1
    # Still torque actuator_response_s after the trip withdrew GW_DriveEnable: the MCU does
    # not obey; opening the contactors is the last way to take its torque away.
    if s["torque_excess_s"] >= 2.0 * k["actuator_response_s"]:
        s["lat_hv_open"] = 1

    # ---------------------------------------------------------------- e-stop (latched)
    estop_now = (adc_cmd_ok and _flag(u["adc_estop"])) or _flag(u["estop_remote"]) or _flag(u["estop_physical"])
    if estop_now:
        s["lat_estop"] = 1
    reset_edge = _flag(u["reset_request"]) and s["prev_reset_request"] == 0
    s["prev_reset_request"] = 1 if _flag(u["reset_request"]) else 0

    # ---------------------------------------------------------------- battery
    vmax = u["bms_cell_v_max"]
    vmin = u["bms_cell_v_min"]
    tmax = u["bms_cell_t_max_degc"]
    iso_r = u["bms_isolation_kohm"]
    iso_state = _level(u["bms_isolation_state"])
    bms_level = _fault_level(u["bms_fault_level"]) if cont_ok else -1
    batt = 0
    if cells_ok:
        if vmax >= k["cell_ov_derate_v"] or vmin <= k["cell_uv_derate_v"] or tmax >= k["cell_ot_derate_degc"]:
            batt = 1
        if vmax >= k["cell_ov_fault_v"] or vmin <= k["cell_uv_fault_v"] or tmax >= k["cell_ot_fault_degc"]:
            batt = 2
        if vmax >= k["cell_ov_crit_v"] or vmin <= k["cell_uv_crit_v"] or tmax >= k["cell_ot_crit_degc"]:
            batt = 3
    if cont_ok:
        if (iso_r < k["iso_warn_kohm"] or iso_state == 1 or bms_level == 1) and batt < 1:
            batt = 1
        if (iso_r < k["iso_fault_kohm"] or iso_state == 2 or bms_level == 2) and batt < 2:
            batt = 2
        if bms_level == 3:
            batt = 3
    if batt >= 2:
        s["lat_bms_fault"] = 1
    if batt >= 3:
        s["lat_bms_critical"] = 1
    if s["lat_bms_critical"] == 1 or (s["lat_bms_fault"] == 1 and standstill):
        s["lat_hv_open"] = 1
    derate = batt == 1

    # ---------------------------------------------------------------- resets (standstill, explicit)
    if reset_edge and standstill:
        if not estop_now:
            s["lat_estop"] = 0
        s["lat_plaus"] = 0
        s["lat_actuator"] = 0
        if batt < 2:
            s["lat_bms_fault"] = 0
            s["lat_bms_critical"] = 0
            s["lat_hv_open"] = 0

    # ---------------------------------------------------------------- doors, payload, modes
    doors_closed = body_ok and _flag(u["cbc_all_doors_closed"])
    all_locked = body_ok and _flag(u["cbc_all_locked"])
    for i in range(6):
        if i == 0:
            d, l = u["cbc_door_open1"], u["cbc_lock_state1"]
        elif i == 1:
            d, l = u["cbc_door_open2"], u["cbc_lock_state2"]
        elif i == 2:
            d, l = u["cbc_door_open3"], u["cbc_lock_state3"]
        elif i == 3:
            d, l = u["cbc_door_open4"], u["cbc_lock_state4"]
        elif i == 4:
            d, l = u["cbc_door_open5"], u["cbc_lock_state5"]
        else:
            d, l = u["cbc_door_open6"], u["cbc_lock_state6"]
        if not (d == 0.0):
            doors_closed = False
        if _level(l) != 1:
            all_locked = False
    cbc_level = _fault_level(u["cbc_fault_level"])
    door_ilk = not (doors_closed and all_locked and 0 <= cbc_level < 2)

    payload_ok = _flag(u["ok_cbc_payload"]) and u["cbc_load_cell_fault"] == 0.0 and u["cbc_payload_kg"] >= 0.0
    payload = u["cbc_payload_kg"] if payload_ok else k["rated_payload_kg"]
    overload = (not payload_ok) or payload > k["rated_payload_kg"] or _flag(u["cbc_payload_over_limit"])
    frac = _clamp(payload / k["rated_payload_kg"], 0.0, 1.0)
    if payload_ok:
        s["payload_hold_ok"] = 1
        s["payload_hold_kg"] = u["cbc_payload_kg"]
    # brake-force mass: the live payload, else the last valid one (a stale CBC while moving
    # must not turn a 2 m/s2 stop into 3 m/s2 by assuming rated payload), else rated
    mass_payload = payload
    if not payload_ok and s["payload_hold_ok"] == 1:
        mass_payload = s["payload_hold_kg"]
    mass = k["curb_mass_kg"] + max(mass_payload, 0.0)

    v_lim = k["v_max_empty_mps"] + (k["v_max_rated_mps"] - k["v_max_empty_mps"]) * frac
    a_max = k["a_max_empty_mps2"] + (k["a_max_rated_mps2"] - k["a_max_empty_mps2"]) * frac
    if derate:
        v_lim = min(v_lim, k["derate_speed_mps"])
        a_max *= k["derate_factor"]
    if degraded:
        v_lim = min(v_lim, k["limp_speed_mps"])
    overspeed = speed_known and speed > v_lim + k["overspeed_margin_mps"]

    adc_state = _level(u["adc_state"])
    mode_auto = (adc_cmd_ok and vcu_ok and adc_hb_ok and _level(u["adc_mode_request"]) == 1
                 and _level(u["vcu_drive_mode"]) == 1 and not _flag(u["vcu_driver_present"])
                 and (adc_state == 2 or adc_state == 3))
    override = (eps_ok and _flag(u["eps_driver_override"])) or (vcu_ok and (
        _flag(u["vcu_brake_pedal_pressed"]) or u["vcu_accel_pedal_pct"] > k["pedal_override_pct"]))
    hv_ready = (vcu_ok and _flag(u["vcu_ready"]) and cont_ok and _level(u["bms_main_pos_state"]) == 1
                and _level(u["bms_main_neg_state"]) == 1 and s["lat_hv_open"] == 0)
    epb_applied = not (vcu_ok and _level(u["vcu_epb_state"]) == 0)
    mcu_fault = mcu_ok and _fault_level(u["mcu_fault_level"]) >= 2
    brk_fault = brk_ok and _fault_level(u["brk_fault_level"]) >= 2
    eps_fault = eps_ok and _fault_level(u["eps_fault_level"]) >= 2
    vcu_fault = vcu_ok and _fault_level(u["vcu_fault_level"]) >= 2

    # ---------------------------------------------------------------- responsibility, safe stop
    if vcu_ok and _level(u["vcu_drive_mode"]) == 1 and not standstill:
        s["responsible"] = 1  # driverless van moving in Auto: someone must be able to stop it
    if override:
        s["responsible"] = 0
        s["engaged"] = 0
    # No speed source at all (wheels, VCU and motor invalid): the van is blind; it stops and
    # cannot engage (a PT timeout usually says so first, but not when the frames come with
    # invalid speeds).
    speed_lost = not speed_known
    stop_cause = (adc_timeout or adc_e2e or pt_timeout or pt_e2e or mcu_fault or brk_fault or eps_fault
                  or vcu_fault or not mode_auto or speed_lost)
    if s["responsible"] == 1 and not standstill and (stop_cause or s["engaged"] == 0):
        s["lat_safe_stop"] = 1
    if (stop_cause or s["lat_estop"] == 1 or s["lat_plaus"] == 1 or s["lat_bms_fault"] == 1
            or s["lat_actuator"] == 1):
        s["engaged"] = 0
    if door_ilk and not standstill and (s["responsible"] == 1 or s["engaged"] == 1):
        s["lat_door_stop"] = 1
    if ((s["lat_plaus"] == 1 or s["lat_bms_fault"] == 1 or s["lat_actuator"] == 1) and not standstill
            and s["responsible"] == 1):
        s["lat_safe_stop"] = 1
    if standstill:
        if s["lat_safe_stop"] == 1:
            s["epb_hold"] = 1
        s["lat_safe_stop"] = 0
        s["lat_door_stop"] = 0
        if s["engaged"] == 0:
            if s["responsible"] == 1:
                s["epb_hold"] = 1  # control ended at standstill: secure the van (see below)
            s["responsible"] = 0

    # ---------------------------------------------------------------- engage (rising edge)
    ctrl_req = adc_cmd_ok and _flag(u["adc_control_request"])
    ctrl_edge = ctrl_req and s["prev_control_request"] == 0
    s["prev_control_request"] = 1 if ctrl_req else 0
    if adc_cmd_ok and not ctrl_req:
        s["engaged"] = 0
    can_engage = (mode_auto and adc_ok and pt_all_ok and not stop_cause and not override
                  and s["lat_estop"] == 0 and s["lat_plaus"] == 0 and s["lat_bms_fault"] == 0
                  and s["lat_actuator"] == 0
                  and s["lat_safe_stop"] == 0 and s["lat_door_stop"] == 0)
    if ctrl_edge and can_engage:
        s["engaged"] = 1
    engaged = s["engaged"] == 1
    if engaged:
        s["responsible"] = 1
    elif standstill and s["responsible"] == 1:
        # Control ends at standstill (here: the request dropped; above: a stop cause) and no
        # driver took over (an override clears responsible): nobody else holds a driverless
        # van, so it is secured on the EPB before the service brake lets go, or it could roll
        # away on a grade.
        s["epb_hold"] = 1

    # ---------------------------------------------------------------- gear
    gear_req = _level(u["adc_gear_request"]) if adc_cmd_ok else -1
    gear_act = _level(u["vcu_gear"]) if vcu_ok else -1
    brake_held = (brk_ok and (u["brk_pressure_bar"] >= k["gear_brake_bar"] or _flag(u["brk_hold_active"]))) or (
        vcu_ok and _flag(u["vcu_brake_pedal_pressed"]))
    gear_change_wanted = engaged and 0 <= gear_req <= 3 and gear_req != gear_act
    gear_out = 7
    if gear_change_wanted and standstill and brake_held:
        gear_out = gear_req
    gear_mismatch = gear_change_wanted or (engaged and 0 <= gear_req <= 3 and gear_act != gear_req)
    in_drive_gear = gear_act == 1 or gear_act == 3

    # ---------------------------------------------------------------- longitudinal
    propulsion_ok = (engaged and not door_ilk and not gear_mismatch and in_drive_gear and hv_ready
                     and not epb_applied and not overspeed and not (overload and standstill)
                     and s["lat_door_stop"] == 0 and s["lat_safe_stop"] == 0)
    accel_clamped = False
    hold = False
    if s["lat_estop"] == 1:
        a_target = -k["decel_max_cmd_mps2"]
    elif s["lat_safe_stop"] == 1:
        a_target = -k["safe_stop_decel_mps2"]
    elif s["lat_door_stop"] == 1:
        a_target = -k["door_stop_decel_mps2"]
    elif engaged:
        v_req = u["adc_target_speed_mps"]
        if not (v_req == v_req):
            v_req = 0.0  # a NaN target is no request to move: slow to a stop, never NaN downstream
        v_tgt = _clamp(v_req, 0.0, v_lim)
        a_req = u["adc_target_accel_mps2"]
        if not (a_req == a_req):
            a_req = 0.0
        if a_req > a_max or a_req < -k["decel_max_cmd_mps2"]:
            accel_clamped = True
        a_target = _clamp(a_req + k["speed_gain_per_s"] * (v_tgt - speed), -k["decel_max_cmd_mps2"], a_max)
        if overspeed:
            a_target = min(a_target, -k["overspeed_decel_mps2"])
        if not propulsion_ok:
            a_target = min(a_target, 0.0)
            if gear_mismatch and not standstill:
                a_target = min(a_target, -k["door_stop_decel_mps2"])
        if standstill and (v_tgt <= k["standstill_speed_mps"] or not propulsion_ok):
            hold = True
            a_target = min(a_target, 0.0)
    else:
        a_target = 0.0

    a_prev = s["accel_mps2"]
    if not (a_prev == a_prev):
        a_prev = 0.0
    if a_target <= 0.0 and a_prev > 0.0:
        a_prev = 0.0  # propulsion may always drop at once
    step_max = k["jerk_max_mps3"] * dt
    a_cmd = a_prev + _clamp(a_target - a_prev, -step_max, step_max)
    if s["lat_estop"] == 1:
        a_cmd = -k["decel_max_cmd_mps2"]  # full braking is not jerk-limited
    if standstill and a_cmd < 0.0 and not engaged:
        a_cmd = 0.0
    if not propulsion_ok and a_cmd > 0.0:
        a_cmd = 0.0
    if not (engaged or s["lat_safe_stop"] == 1 or s["lat_door_stop"] == 1 or s["lat_estop"] == 1):
        a_cmd = 0.0
    s["accel_mps2"] = a_cmd

    # torque caps: MCU limits, BMS power limits (power = torque * omega), derate, degrade
    w = max(omega, k["omega_min_radps"])
    if limits_ok:
        p_dis_w = u["bms_discharge_limit_kw"] * 1000.0
        p_chg_w = u["bms_charge_limit_kw"] * 1000.0
        # min() with a NaN limit returns the other operand: a NaN limit must deny, not pass
        lim_mot = u["mcu_torque_limit_motoring_nm"]
        lim_reg = u["mcu_torque_limit_regen_nm"]
        t_mot_cap = min(k["torque_max_nm"], lim_mot) if lim_mot == lim_mot else math.nan
        t_reg_cap = min(k["torque_max_nm"], lim_reg) if lim_reg == lim_reg else math.nan
    else:
        p_dis_w = k["limp_power_kw"] * 1000.0
        p_chg_w = 0.0
        t_mot_cap = k["limp_torque_nm"]
        t_reg_cap = 0.0
    if not (p_dis_w >= 0.0):
        p_dis_w = 0.0
    if not (p_chg_w >= 0.0):
        p_chg_w = 0.0
    if not (t_mot_cap >= 0.0):
        t_mot_cap = 0.0
    if not (t_reg_cap >= 0.0):
        t_reg_cap = 0.0
    if derate:
        p_dis_w *= k["derate_factor"]
        t_mot_cap *= k["derate_factor"]
    t_mot_cap = min(t_mot_cap, p_dis_w / w)
    t_reg_cap = min(t_reg_cap, p_chg_w / w)
    if speed < k["regen_min_speed_mps"] or not motor_valid:
        t_reg_cap = 0.0

    force = mass * a_cmd
    t_want = force * r / ratio
    brake_force = 0.0
    if a_cmd > 0.0 and propulsion_ok:
        torque = min(t_want, t_mot_cap)
    elif a_cmd < 0.0 and engaged and propulsion_ok and s["lat_estop"] == 0:
        # Regen only while the drive is enabled: with DriveEnable off the MCU applies no
        # torque, so the friction brake must carry the whole deceleration.
        torque = -min(-t_want, t_reg_cap)
        brake_force = -force + torque * ratio / r  # what regen does not cover
    else:
        torque = 0.0
        brake_force = -force if a_cmd < 0.0 else 0.0
    # torque rate limit: magnitude grows at most torque_rate*dt per tick; may drop to 0 at once
    t_prev = s["torque_nm"]
    if not (t_prev == t_prev) or t_prev * torque < 0.0:
        t_prev = 0.0
    if abs(torque) > abs(t_prev):
        d_max = k["torque_rate_nm_per_s"] * dt
        torque = t_prev + _clamp(torque - t_prev, -d_max, d_max)
        if torque < 0.0:
            brake_force = -force + torque * ratio / r
    if not engaged:
        torque = 0.0
    s["torque_nm"] = torque

    pressure = _clamp(brake_force / k["brake_gain_n_per_bar"], 0.0, k["max_brake_bar"])
    if not (pressure == pressure):
        pressure = 0.0
    emergency = False
    if s["lat_estop"] == 1:
        pressure = k["full_brake_bar"]
        emergency = True
    if brk_fault and (s["lat_safe_stop"] == 1 or engaged):
        emergency = True
    if engaged and (hold or gear_change_wanted) and standstill:
        hold = True
        pressure = max(pressure, k["hold_brake_bar"])

    # ---------------------------------------------------------------- EPB
    adc_epb = _level(u["adc_epb_request"]) if adc_cmd_ok else -1
    # A latched actuator fault at standstill secures the van on the EPB (a brake that does not
    # build pressure cannot hold it, and nothing may move it until the reset).
    if standstill and (s["lat_estop"] == 1 or s["lat_hv_open"] == 1 or s["lat_actuator"] == 1
                       or (engaged and (adc_epb == 1 or gear_act == 0))):
        s["epb_hold"] = 1
    epb_out = 1 if (s["epb_hold"] == 1 and standstill) else 0
    release_ok = (engaged and adc_epb == 2 and in_drive_gear and brake_held and not door_ilk and hv_ready
                  and not (overload and standstill) and s["lat_estop"] == 0)
    if release_ok:
        s["epb_hold"] = 0
        epb_out = 2
    # The service brake holds while the EPB holds (or is being applied: on the very tick a
    # fault sets epb_hold, not one tick later, or the van could roll while the EPB closes).
    if standstill and (s["lat_estop"] == 1 or s["epb_hold"] == 1):
        hold = True

    # ---------------------------------------------------------------- steering
    rate = steer_rate_limit_degps(speed, thr)
    adc_rate = u["adc_steer_rate_limit_degps"]
    if adc_cmd_ok and adc_rate > 0.0:
        rate = min(rate, adc_rate)
    rate = math.floor(rate / 4.0 + 1e-9) * 4.0  # GW_SteerRateLimit resolution: never round up
    steer_ok = engaged and eps_ok and not eps_fault and not override
    steer_clamped = False
    measured = u["eps_steer_angle_deg"]
    if steer_ok:
        req = u["adc_steer_angle_deg"]
        if not (req == req):
            req = s["steer_deg"]
        lim = k["steer_angle_max_deg"]
        if req > lim or req < -lim:
            steer_clamped = True
            req = _clamp(req, -lim, lim)
        if s["steer_active"] == 0:
            s["steer_deg"] = _clamp(measured, -lim, lim) if measured == measured else 0.0
        d_max = rate * dt
        delta = req - s["steer_deg"]
        if delta > d_max or delta < -d_max:
            steer_clamped = True
        s["steer_deg"] = s["steer_deg"] + _clamp(delta, -d_max, d_max)
        s["steer_active"] = 1
    else:
        s["steer_active"] = 0
        if eps_ok and measured == measured:
            s["steer_deg"] = _clamp(measured, -k["steer_angle_max_deg"], k["steer_angle_max_deg"])

    # ---------------------------------------------------------------- cargo bay
    cargo_ok = _flag(u["ok_adc_cargo"])
    unlock_ok = standstill and gear_act == 0 and body_ok
    any_cmd = False
    unlock_refused = False
    for i in range(6):
        if i == 0:
            rq = u["adc_compartment_request1"]
        elif i == 1:
            rq = u["adc_compartment_request2"]
        elif i == 2:
            rq = u["adc_compartment_request3"]
        elif i == 3:
            rq = u["adc_compartment_request4"]
        elif i == 4:
            rq = u["adc_compartment_request5"]
        else:
            rq = u["adc_compartment_request6"]
        req = _level(rq) if cargo_ok else 0
        cmd = 0
        if req == 2:
            if unlock_ok:
                cmd = 2
            else:
                unlock_refused = True
                cmd = 1
        elif req == 1 or (speed_known and not standstill):
            cmd = 1  # lock on request, and always while moving
        if cmd != 0:
            any_cmd = True
        rel = 1 if cmd == 2 else 0
        if i == 0:
            y["lock_request1"] = cmd
            y["door_release1"] = rel
        elif i == 1:
            y["lock_request2"] = cmd
            y["door_release2"] = rel
        elif i == 2:
            y["lock_request3"] = cmd
            y["door_release3"] = rel
        elif i == 3:
            y["lock_request4"] = cmd
            y["door_release4"] = rel
        elif i == 4:
            y["lock_request5"] = cmd
            y["door_release5"] = rel
        else:
            y["lock_request6"] = cmd
            y["door_release6"] = rel
    y["cargo_enable"] = 1 if any_cmd else 0
    y["cargo_moving"] = 0 if standstill else 1

    # ---------------------------------------------------------------- outputs
    y["drive_enable"] = 1 if (engaged and propulsion_ok) else 0
    s["prev_drive_enable"] = y["drive_enable"]
    y["torque_nm"] = torque if engaged else 0.0
    y["gear_request"] = gear_out
    y["epb_request"] = epb_out
    mode_req = _level(u["adc_mode_request"]) if (adc_ok and pt_all_ok) else -1
    y["drive_mode_request"] = mode_req if 0 <= mode_req <= 2 else 7
    y["speed_limit_kph"] = _clamp(math.floor(v_lim * 3.6 * 2.0) / 2.0, 0.0, 120.0)
    brake_on = pressure > 0.0 or hold or emergency
    y["brake_enable"] = 1 if brake_on else 0
    y["brake_emergency"] = 1 if emergency else 0
    y["brake_hold"] = 1 if hold else 0
    y["brake_pressure_bar"] = pressure
    s["prev_brake_bar"] = pressure if brake_on else 0.0
    y["steer_enable"] = 1 if steer_ok else 0
    y["steer_angle_deg"] = s["steer_deg"]
    y["steer_rate_limit_degps"] = rate if steer_ok else 0.0
    y["hv_open_request"] = s["lat_hv_open"]
    y["accel_cmd_mps2"] = a_cmd
    y["speed_mps"] = speed if speed_known else -1.0
    y["speed_limit_mps"] = v_lim
    y["standstill"] = 1 if standstill else 0
    y["control_allowed"] = 1 if engaged else 0
    y["estop_active"] = s["lat_estop"]
    latched_fault = (s["lat_bms_fault"] == 1 or s["lat_plaus"] == 1 or s["lat_hv_open"] == 1
                     or s["lat_actuator"] == 1)
    y["fault_latched"] = 1 if (latched_fault or s["lat_estop"] == 1) else 0
    if latched_fault:
        y["gw_state"] = 5
    elif s["lat_estop"] == 1 or s["lat_safe_stop"] == 1 or s["lat_door_stop"] == 1:
        y["gw_state"] = 4
    elif engaged:
        y["gw_state"] = 3
    else:
        y["gw_state"] = 2

    n = 0
    y["ilk_adc_timeout"] = 1 if adc_timeout else 0
    y["ilk_adc_e2e"] = 1 if adc_e2e else 0
    y["ilk_estop"] = s["lat_estop"]
    y["ilk_door_open"] = 1 if door_ilk else 0
    y["ilk_overspeed"] = 1 if overspeed else 0
    y["ilk_steer_limit"] = 1 if steer_clamped else 0
    y["ilk_accel_limit"] = 1 if accel_clamped else 0
    y["ilk_gear_mismatch"] = 1 if gear_mismatch else 0
    y["ilk_mode_not_auto"] = 0 if mode_auto else 1
    y["ilk_hv_not_ready"] = 0 if hv_ready else 1
    y["ilk_bms_fault"] = 1 if (batt >= 2 or s["lat_bms_fault"] == 1) else 0
    y["ilk_mcu_fault"] = 1 if mcu_fault else 0
    y["ilk_brk_fault"] = 1 if brk_fault else 0
    y["ilk_eps_fault"] = 1 if eps_fault else 0
    y["ilk_pt_timeout"] = 1 if pt_timeout else 0
    y["ilk_pt_e2e"] = 1 if pt_e2e else 0
    y["ilk_body_timeout"] = 0 if body_ok else 1
    y["ilk_overload"] = 1 if overload else 0
    y["ilk_driver_override"] = 1 if override else 0
    y["ilk_epb_applied"] = 1 if epb_applied else 0
    y["ilk_plausibility"] = 1 if (s["lat_plaus"] == 1 or speed_lost) else 0
    y["ilk_degraded"] = 1 if degraded else 0
    y["ilk_battery_derate"] = 1 if derate else 0
    y["ilk_unlock_refused"] = 1 if unlock_refused else 0
    y["ilk_hv_open"] = s["lat_hv_open"]
    y["ilk_actuator_response"] = s["lat_actuator"]
    n = (int(adc_timeout) + int(adc_e2e) + int(door_ilk) + int(overspeed) + int(gear_mismatch)
         + int(not mode_auto) + int(not hv_ready) + int(s["lat_estop"]))
    return n


@njit(cache=True, error_model="numpy")
def run_steps(n, state, inp, out, thr):
    """``n`` steps back to back (the benchmark of the step inside numba)."""
    total = 0
    for _ in range(n):
        inp[0]["t_s"] += inp[0]["dt_s"]
        total += step(state, inp, out, thr)
    return total


def warm_up(state, inp, out, thr):
    """Compile (or load from the numba cache) every kernel with the loop's record types."""
    st = state.copy()
    o = out.copy()
    i = inp.copy()
    step(st, i, o, thr)
    run_steps(1, st, i, o, thr)
    steer_rate_limit_degps(0.0, thr)
    return np.int64(0)
