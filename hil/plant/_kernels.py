"""Numba kernels of the van model (import only numpy, numba and math).

Every quantity is a named field of the records laid out in :mod:`hil.plant.state`; the
kernels receive them as one-element arrays (van state, parameters) and record arrays (cells,
compartments) and mutate them in place. Fixed step semi-implicit Euler: speeds first, then
positions with the new speed; exact exponentials where a first-order lag has a time constant
close to the step (precharge RC, actuator lags).
"""

from __future__ import annotations

import math

from numba import njit


@njit(cache=True)
def interp(x, xs, ys):  # type: ignore[no-untyped-def]
    """Piecewise-linear table lookup, clamped at both ends."""
    n = xs.shape[0]
    if x <= xs[0]:
        return ys[0]
    if x >= xs[n - 1]:
        return ys[n - 1]
    lo = 0
    hi = n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if xs[mid] <= x:
            lo = mid
        else:
            hi = mid
    f = (x - xs[lo]) / (xs[hi] - xs[lo])
    return ys[lo] + f * (ys[hi] - ys[lo])


@njit(cache=True)
def _ramp(x, a, b):  # type: ignore[no-untyped-def]
    """0 at or below a, 1 at or above b, linear between (a < b)."""
    if x <= a:
        return 0.0
    if x >= b:
        return 1.0
    return (x - a) / (b - a)


@njit(cache=True)
def _lag_alpha(dt, tau):  # type: ignore[no-untyped-def]
    if tau <= 0.0:
        return 1.0
    return 1.0 - math.exp(-dt / tau)


@njit(cache=True)
def motor_envelope(omega, q):  # type: ignore[no-untyped-def]
    """(motoring, regen) torque limits at motor speed omega: constant torque, then power."""
    w = abs(omega)
    if w >= q["motor_max_speed_radps"]:
        t_mot = 0.0
    elif w * q["motor_peak_torque_nm"] > q["motor_peak_power_w"]:
        t_mot = q["motor_peak_power_w"] / w
    else:
        t_mot = q["motor_peak_torque_nm"]
    if w * q["motor_regen_torque_nm"] > q["motor_regen_power_w"]:
        t_reg = q["motor_regen_power_w"] / w
    else:
        t_reg = q["motor_regen_torque_nm"]
    return t_mot, t_reg


@njit(cache=True)
def _cargo_step(s, comps, q, dt):  # type: ignore[no-untyped-def]
    payload = 0.0
    amb = s["in_ambient_c"]
    for i in range(comps.shape[0]):
        c = comps[i]
        if c["in_door_forced_open"] != 0:
            c["door_open"] = 1
        else:
            if c["in_door_release"] != 0 and c["lock_state"] == 0:
                c["door_open"] = 1
            # a person holding the door shut wins over a release pulse
            if c["in_door_close"] != 0:
                c["door_open"] = 0
        req = c["in_lock_request"]
        if c["lock_state"] != 2:
            if req == 1 and c["lock_state"] == 0 and c["door_open"] == 0:
                c["lock_state"] = 2
                c["lock_target"] = 1
                c["lock_timer_s"] = 0.0
            elif req == 2 and c["lock_state"] == 1:
                c["lock_state"] = 2
                c["lock_target"] = 0
                c["lock_timer_s"] = 0.0
        else:
            c["lock_timer_s"] += dt
            if c["lock_timer_s"] >= q["lock_actuation_time_s"]:
                c["lock_state"] = c["lock_target"]
        c["weight_kg"] = c["in_load_kg"]
        payload += c["in_load_kg"]
        tau = q["compartment_tau_open_s"] if c["door_open"] != 0 else q["compartment_tau_closed_s"]
        c["temp_c"] += (amb - c["temp_c"]) * _lag_alpha(dt, tau)
    s["payload_kg"] = payload
    s["payload_over_limit"] = 1 if payload > q["rated_payload_kg"] else 0
    s["mass_kg"] = q["curb_mass_kg"] + payload


@njit(cache=True)
def _cell_electrics(s, cells, q, ocv_soc, ocv_v, rt_t, rt_f):  # type: ignore[no-untyped-def]
    """Cell OCV and resistance at the present SOC and temperature; pack sums."""
    e = 0.0
    r = q["pack_busbar_resistance_ohm"]
    for i in range(cells.shape[0]):
        c = cells[i]
        c["ocv_v"] = interp(c["soc"], ocv_soc, ocv_v)
        c["resistance_ohm"] = c["r25_ohm"] * interp(c["temp_c"] + c["temp_offset_c"], rt_t, rt_f)
        e += c["ocv_v"]
        r += c["resistance_ohm"]
    s["pack_ocv_v"] = e
    s["pack_resistance_ohm"] = r


@njit(cache=True)
def bms_outputs(s, cells, q):  # type: ignore[no-untyped-def]
    """Cell statistics, isolation state and the BMS's dynamic power limits."""
    n = cells.shape[0]
    i_pack = s["pack_current_a"]
    v_min = 1e9
    v_max = -1e9
    v_sum = 0.0
    i_vmin = 0
    i_vmax = 0
    soc_sum = 0.0
    soc_min = 2.0
    soc_max = -1.0
    i_dis_v = 1e9
    i_chg_v = 1e9
    for i in range(n):
        c = cells[i]
        c["voltage_v"] = c["ocv_v"] - i_pack * c["resistance_ohm"]
        c["measured_v"] = c["voltage_v"] + c["voltage_offset_v"]
        m = c["measured_v"]
        v_sum += m
        if m < v_min:
            v_min = m
            i_vmin = i
        if m > v_max:
            v_max = m
            i_vmax = i
        soc_sum += c["soc"]
        soc_min = min(soc_min, c["soc"])
        soc_max = max(soc_max, c["soc"])
        # the current that would pull this cell to its limit, from its open-circuit voltage
        i_dis_v = min(i_dis_v, (c["ocv_v"] - q["cell_v_min"]) / c["resistance_ohm"])
        i_chg_v = min(i_chg_v, (q["cell_v_max"] - c["ocv_v"]) / c["resistance_ohm"])
    s["cell_v_min"] = v_min
    s["cell_v_min_index"] = i_vmin + 1
    s["cell_v_max"] = v_max
    s["cell_v_max_index"] = i_vmax + 1
    s["cell_v_avg"] = v_sum / n
    s["soc"] = soc_sum / n
    s["soc_min"] = soc_min
    s["soc_max"] = soc_max

    per = int(q["cells_per_temp_sensor"])
    sensors = n // per
    t_min = 1e9
    t_max = -1e9
    t_sum = 0.0
    k_min = 0
    k_max = 0
    for k in range(sensors):
        # a sensor between its cells reads the hottest of them
        t = -1e9
        for j in range(per):
            c = cells[k * per + j]
            t = max(t, c["temp_c"] + c["temp_offset_c"])
        t_sum += t
        if t < t_min:
            t_min = t
            k_min = k
        if t > t_max:
            t_max = t
            k_max = k
    s["cell_t_min_c"] = t_min
    s["cell_t_min_index"] = k_min + 1
    s["cell_t_max_c"] = t_max
    s["cell_t_max_index"] = k_max + 1
    s["cell_t_avg_c"] = t_sum / sensors

    e = s["pack_ocv_v"]
    r = s["pack_resistance_ohm"]
    f_dis = (
        _ramp(t_min, q["bms_temp_discharge_min_c"], q["bms_temp_discharge_full_low_c"])
        * (1.0 - _ramp(t_max, q["bms_temp_discharge_full_high_c"], q["bms_temp_discharge_max_c"]))
        * _ramp(soc_min, q["bms_soc_discharge_derate_end"], q["bms_soc_discharge_derate_start"])
        * _ramp(v_min, q["cell_v_min"], q["cell_v_min"] + q["bms_voltage_derate_margin_v"])
    )
    f_chg = (
        _ramp(t_min, q["bms_temp_charge_min_c"], q["bms_temp_charge_full_low_c"])
        * (1.0 - _ramp(t_max, q["bms_temp_charge_full_high_c"], q["bms_temp_charge_max_c"]))
        * (1.0 - _ramp(soc_max, q["bms_soc_charge_derate_start"], q["bms_soc_charge_derate_end"]))
        * _ramp(-v_max, -q["cell_v_max"], -q["cell_v_max"] + q["bms_voltage_derate_margin_v"])
    )
    i_dis = max(0.0, min(q["bms_max_discharge_current_a"], i_dis_v)) * f_dis
    i_chg = max(0.0, min(q["bms_max_charge_current_a"], i_chg_v)) * f_chg
    s["discharge_current_limit_a"] = i_dis
    s["charge_current_limit_a"] = i_chg
    s["discharge_power_limit_w"] = max(0.0, i_dis * (e - i_dis * r))
    s["charge_power_limit_w"] = i_chg * (e + i_chg * r)

    r_iso = s["in_isolation_resistance_ohm"]
    s["isolation_resistance_ohm"] = r_iso
    if r_iso < q["isolation_fault_ohm_per_v"] * e:
        s["isolation_state"] = 2
    elif r_iso < q["isolation_warning_ohm_per_v"] * e:
        s["isolation_state"] = 1
    else:
        s["isolation_state"] = 0


@njit(cache=True)
def _contactors(s, q, dt):  # type: ignore[no-untyped-def]
    """BMS power-up/down sequence: main-, precharge through R, main+ within the threshold."""
    st = s["precharge_state"]
    req = s["in_hv_request"]
    if st == 0:  # idle
        if req != 0:
            s["main_neg_state"] = 1
            s["precharge_relay_state"] = 1
            s["precharge_timer_s"] = 0.0
            s["precharge_state"] = 1
    elif st == 1:  # precharging
        s["precharge_timer_s"] += dt
        if req == 0:
            s["precharge_state"] = 4
        elif s["link_voltage_v"] >= q["precharge_threshold"] * s["pack_voltage_v"]:
            s["main_pos_state"] = 1
            s["precharge_state"] = 2
        elif s["precharge_timer_s"] > q["precharge_timeout_s"]:
            s["main_neg_state"] = 0
            s["precharge_relay_state"] = 0
            s["precharge_state"] = 5
    elif st == 2:  # done: main+ closed, precharge relay drops out
        s["precharge_relay_state"] = 0
        s["precharge_state"] = 3 if req != 0 else 4
    elif st == 3:  # HV active
        if req == 0:
            s["precharge_state"] = 4
    elif st == 4:  # opening
        s["main_pos_state"] = 0
        s["main_neg_state"] = 0
        s["precharge_relay_state"] = 0
        s["precharge_state"] = 0
    else:  # failed: latched until the request is withdrawn
        if req == 0:
            s["precharge_state"] = 0
    if s["precharge_state"] == 4:
        s["main_pos_state"] = 0
        s["main_neg_state"] = 0
        s["precharge_relay_state"] = 0
    s["hv_active"] = 1 if (s["main_pos_state"] == 1 and s["main_neg_state"] == 1) else 0


@njit(cache=True)
def _substep(s, cells, comps, q, ocv_soc, ocv_v, rt_t, rt_f, dt):  # type: ignore[no-untyped-def]
    g = q["gravity_mps2"]
    rw = q["wheel_radius_m"]
    ratio = q["gear_ratio"]
    eta_g = q["gear_efficiency"]
    eta_m = q["motor_inverter_efficiency"]

    # --- cargo bay -> mass
    _cargo_step(s, comps, q, dt)
    m_eff = s["mass_kg"] + q["rotating_mass_kg"]

    # --- battery electrics at the start of the step: computed at the end of the previous
    # step (or by van_refresh after a change between steps), so not recomputed here
    e = s["pack_ocv_v"]
    r_pack = s["pack_resistance_ohm"]
    _contactors(s, q, dt)

    # --- motor: envelope at the present speed, first-order torque response
    v = s["speed_mps"]
    omega = v / rw * ratio
    t_mot, t_reg = motor_envelope(omega, q)
    s["motor_torque_limit_motoring_nm"] = t_mot
    s["motor_torque_limit_regen_nm"] = t_reg
    gear_req = s["in_gear_request"]
    if 0 <= gear_req <= 3:
        s["gear"] = gear_req
    enabled = s["hv_active"] == 1 and (s["gear"] == 3 or s["gear"] == 1)
    s["motor_torque_enabled"] = 1 if enabled else 0
    target = s["in_motor_torque_request_nm"] if enabled else 0.0
    if target * omega >= 0.0:
        lim = t_mot
    else:
        lim = t_reg
    target = max(-lim, min(lim, target))
    torque = s["motor_torque_nm"]
    torque += (target - torque) * _lag_alpha(dt, q["motor_torque_tau_s"])
    if not enabled:
        torque = 0.0 if abs(torque) < 1e-9 else torque
    p_mech = torque * omega
    p_elec = p_mech / eta_m if p_mech >= 0.0 else p_mech * eta_m

    # --- DC side: solve P = I (E - I R) for the pack current when HV is on
    i_pack = 0.0
    if s["hv_active"] == 1:
        p_total = p_elec + q["aux_power_w"]
        disc = e * e - 4.0 * r_pack * p_total
        if disc < 0.0:
            # beyond the pack's maximum power point: deliver what it can, cut the torque
            i_pack = e / (2.0 * r_pack)
            p_avail = i_pack * (e - i_pack * r_pack) - q["aux_power_w"]
            p_elec = p_avail
            p_mech = p_elec * eta_m
            torque = p_mech / omega if omega != 0.0 else 0.0
        else:
            i_pack = (e - math.sqrt(disc)) / (2.0 * r_pack)
        v_term = e - i_pack * r_pack
        s["link_voltage_v"] = v_term
        s["dc_current_a"] = i_pack
    else:
        torque = 0.0
        p_mech = 0.0
        p_elec = 0.0
        v_link = s["link_voltage_v"]
        c_link = q["link_capacitance_f"]
        if s["precharge_relay_state"] == 1 and s["main_neg_state"] == 1:
            tau = q["precharge_resistance_ohm"] * c_link
            v_new = v_link + (e - v_link) * _lag_alpha(dt, tau)
            i_pack = (e - 0.5 * (v_link + v_new)) / q["precharge_resistance_ohm"]
            v_link = v_new
        v_link -= v_link / (q["link_bleed_resistance_ohm"] * c_link) * dt
        s["link_voltage_v"] = max(0.0, v_link)
        s["dc_current_a"] = 0.0
    s["motor_torque_nm"] = torque
    s["motor_power_mech_w"] = p_mech
    s["motor_power_elec_w"] = p_elec
    s["pack_current_a"] = i_pack
    s["pack_voltage_v"] = e - i_pack * r_pack
    s["pack_energy_out_j"] += e * i_pack * dt
    s["pack_heat_j"] += i_pack * i_pack * r_pack * dt

    # --- cells: charge, heat
    amb = s["in_ambient_c"]
    coolant = s["in_coolant_c"]
    g_cool = q["cell_coolant_conductance_wpk"] if s["hv_active"] == 1 else 0.0
    g_amb = q["cell_ambient_conductance_wpk"]
    c_th = q["cell_heat_capacity_jpk"]
    for i in range(cells.shape[0]):
        c = cells[i]
        c["soc"] -= i_pack * dt / c["capacity_as"]
        heat = i_pack * i_pack * c["resistance_ohm"]
        t = c["temp_c"]
        c["temp_c"] = t + (heat - g_cool * (t - coolant) - g_amb * (t - amb)) / c_th * dt
    _cell_electrics(s, cells, q, ocv_soc, ocv_v, rt_t, rt_f)
    # terminal voltage consistent with the cell voltages the BMS reports for this step
    s["pack_voltage_v"] = s["pack_ocv_v"] - i_pack * s["pack_resistance_ohm"]
    if s["hv_active"] == 1:
        s["link_voltage_v"] = s["pack_voltage_v"]
    bms_outputs(s, cells, q)

    # --- motor and inverter temperatures (first order towards the coolant)
    loss = abs(p_elec - p_mech)
    share = q["motor_loss_share"]
    tm = s["motor_temp_c"]
    s["motor_temp_c"] = tm + (
        share * loss - (tm - coolant) / q["motor_thermal_resistance_kpw"]
    ) / q["motor_heat_capacity_jpk"] * dt
    ti = s["inverter_temp_c"]
    s["inverter_temp_c"] = ti + (
        (1.0 - share) * loss - (ti - coolant) / q["inverter_thermal_resistance_kpw"]
    ) / q["inverter_heat_capacity_jpk"] * dt

    # --- brakes and EPB
    p_req = max(0.0, min(q["brake_pressure_max_bar"], s["in_brake_pressure_request_bar"]))
    s["brake_pressure_bar"] += (p_req - s["brake_pressure_bar"]) * _lag_alpha(
        dt, q["brake_pressure_tau_s"]
    )
    epb_req = s["in_epb_request"]
    rate = dt / q["epb_actuation_time_s"]
    if epb_req == 1:
        s["epb_clamp"] = min(1.0, s["epb_clamp"] + rate)
    elif epb_req == 2:
        s["epb_clamp"] = max(0.0, s["epb_clamp"] - rate)
    if s["epb_clamp"] >= 1.0:
        s["epb_state"] = 1
    elif s["epb_clamp"] <= 0.0:
        s["epb_state"] = 0
    else:
        s["epb_state"] = 2
    s["park_pawl_engaged"] = (
        1 if (s["gear"] == 0 and abs(v) <= q["park_pawl_max_speed_mps"]) else 0
    )

    # --- longitudinal dynamics
    mass = s["mass_kg"]
    theta = math.atan(s["in_grade_pct"] / 100.0)
    normal = mass * g * math.cos(theta)
    f_grade = -mass * g * math.sin(theta)
    if p_mech >= 0.0:
        f_motor = torque * ratio * eta_g / rw
    else:
        f_motor = torque * ratio / eta_g / rw
    f_aero = 0.5 * q["air_density_kgpm3"] * q["drag_coefficient"] * q["frontal_area_m2"] * v * abs(v)
    f_roll = q["rolling_resistance"] * normal
    f_service = s["brake_pressure_bar"] * q["brake_torque_per_bar_nm"] / rw
    f_hold = s["epb_clamp"] * q["epb_holding_torque_nm"] / rw
    if s["park_pawl_engaged"] == 1:
        f_hold += q["park_pawl_holding_torque_nm"] / rw
    f_tyre = q["tyre_friction"] * normal
    s["abs_active"] = 1 if (f_service > f_tyre and v != 0.0) else 0
    f_brake = min(f_service + f_hold, f_tyre)
    f_active = f_motor + f_grade - f_aero
    if v == 0.0:
        # static case: brakes, EPB and pawl hold up to their capacity; nothing moves
        if abs(f_active) <= f_brake + f_roll:
            v_new = 0.0
            s["brake_force_n"] = abs(f_active)
        else:
            sgn = 1.0 if f_active > 0.0 else -1.0
            v_new = (f_active - sgn * (f_brake + f_roll)) / m_eff * dt
            s["brake_force_n"] = f_brake
    else:
        sgn = 1.0 if v > 0.0 else -1.0
        v_new = v + (f_active - sgn * (f_brake + f_roll)) / m_eff * dt
        # friction cannot reverse the motion: crossing zero ends at standstill, and the
        # static case decides next step whether grade or torque pull the other way
        if v_new * v <= 0.0:
            v_new = 0.0
        s["brake_force_n"] = f_brake
    s["wheel_power_w"] = f_motor * v
    s["accel_mps2"] = (v_new - v) / dt
    s["speed_mps"] = v_new
    s["standstill"] = 1 if v_new == 0.0 else 0
    s["distance_m"] += v_new * dt
    omega_new = v_new / rw * ratio
    s["motor_speed_radps"] = omega_new
    s["motor_speed_rpm"] = omega_new * 60.0 / (2.0 * math.pi)

    # --- steering (rate-limited actuator) and kinematic bicycle
    ratio_s = q["steering_ratio"]
    max_sw = q["max_road_wheel_angle_deg"] * ratio_s
    sw = s["steer_angle_deg"]
    target_sw = sw
    if s["in_steer_enable"] != 0:
        target_sw = max(-max_sw, min(max_sw, s["in_steer_angle_request_deg"]))
    rate_lim = q["steer_max_rate_dps"]
    if s["in_steer_rate_limit_dps"] > 0.0:
        rate_lim = min(rate_lim, s["in_steer_rate_limit_dps"])
    step = max(-rate_lim * dt, min(rate_lim * dt, target_sw - sw))
    s["steer_angle_deg"] = sw + step
    s["steer_rate_dps"] = step / dt
    delta = math.radians(s["steer_angle_deg"] / ratio_s)
    s["road_wheel_angle_rad"] = delta
    yaw = v_new * math.tan(delta) / q["wheelbase_m"]
    s["yaw_rate_radps"] = yaw
    s["lat_accel_mps2"] = v_new * yaw
    s["heading_rad"] += yaw * dt
    s["pos_x_m"] += v_new * math.cos(s["heading_rad"]) * dt
    s["pos_y_m"] += v_new * math.sin(s["heading_rad"]) * dt
    half = 0.5 * q["track_m"] * yaw
    s["wheel_speed_fl_mps"] = abs(v_new - half)
    s["wheel_speed_rl_mps"] = abs(v_new - half)
    s["wheel_speed_fr_mps"] = abs(v_new + half)
    s["wheel_speed_rr_mps"] = abs(v_new + half)

    s["time_s"] += dt
    s["step_count"] += 1


@njit(cache=True)
def van_step(van, cells, comps, params, ocv_soc, ocv_v, rt_t, rt_f, n_steps):  # type: ignore[no-untyped-def]
    """Advance the van by n_steps fixed steps of params.step_s."""
    s = van[0]
    q = params[0]
    dt = q["step_s"]
    for _ in range(n_steps):
        _substep(s, cells, comps, q, ocv_soc, ocv_v, rt_t, rt_f, dt)


@njit(cache=True)
def van_refresh(van, cells, comps, params, ocv_soc, ocv_v, rt_t, rt_f):  # type: ignore[no-untyped-def]
    """Recompute the derived outputs (cells, BMS, payload) without advancing time."""
    s = van[0]
    q = params[0]
    _cargo_step(s, comps, q, 0.0)
    _cell_electrics(s, cells, q, ocv_soc, ocv_v, rt_t, rt_f)
    if s["hv_active"] == 1:
        s["pack_voltage_v"] = s["pack_ocv_v"] - s["pack_current_a"] * s["pack_resistance_ohm"]
    else:
        s["pack_voltage_v"] = s["pack_ocv_v"]
    bms_outputs(s, cells, q)
