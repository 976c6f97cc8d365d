"""Physics of the van against independent hand calculations."""

from __future__ import annotations

import math

import pytest
from plant_helpers import Z10, m_eff, ready_van

from hil.plant.model import Van


def road_load_n(p, v: float, mass: float, grade_pct: float = 0.0) -> float:  # type: ignore[no-untyped-def]
    theta = math.atan(grade_pct / 100.0)
    aero = 0.5 * p.air_density_kgpm3 * p.drag_coefficient * p.frontal_area_m2 * v * v
    return aero + p.rolling_resistance * mass * 9.80665 * math.cos(theta) + mass * 9.80665 * math.sin(theta)


def test_coast_down_deceleration_matches_drag_plus_rolling() -> None:
    van = ready_van(Z10)
    van.set_speed(20.0)
    out = van.step(0.001)
    expected = road_load_n(Z10, 20.0, Z10.curb_mass_kg) / m_eff(Z10)
    assert out["accel_mps2"] == pytest.approx(-expected, rel=1e-9)
    # 8 s of coasting against an RK4 integration of the same road-load law
    v, h = 20.0, 0.01
    f = lambda x: -road_load_n(Z10, x, Z10.curb_mass_kg) / m_eff(Z10)  # noqa: E731
    for _ in range(int(8.0 / h) - 1):
        k1 = f(v)
        k2 = f(v + h / 2 * k1)
        k3 = f(v + h / 2 * k2)
        k4 = f(v + h * k3)
        v += h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    v += 0.01 * f(v) * 0.999  # remaining 9.99 ms to 8 s total
    out = van.step(7.999)
    assert out["speed_mps"] == pytest.approx(v, rel=2e-3)


def test_top_speed_where_envelope_power_meets_road_load() -> None:
    grade, payload = 4.0, 1500.0
    p = Z10
    mass = p.curb_mass_kg + payload
    wheel_power = p.motor_peak_power_w * p.gear_efficiency
    lo, hi = 1.0, 60.0
    for _ in range(80):  # bisection: wheel power = road load x v
        mid = 0.5 * (lo + hi)
        if wheel_power > road_load_n(p, mid, mass, grade) * mid:
            lo = mid
        else:
            hi = mid
    v_top = 0.5 * (lo + hi)
    assert v_top / p.wheel_radius_m * p.gear_ratio < p.motor_max_speed_radps  # power-limited
    van = ready_van(p, gear=3, grade_pct=grade)
    van.set_payload([payload / 6] * 6)
    # start 1 % below; the speed error decays with ~ 17 s (m_eff / d(net force)/dv)
    van.set_speed(0.99 * v_top)
    out = van.step(30.0, {"motor_torque_request_nm": 400.0})
    assert out["speed_mps"] == pytest.approx(v_top, rel=3e-3)
    assert out["accel_mps2"] > 0.0  # still approaching from below, not overshooting
    assert out["motor_torque_nm"] == pytest.approx(p.motor_peak_power_w / out["motor_speed_radps"], rel=1e-3)


def test_stopping_distance_matches_v2_over_2a() -> None:
    p = Z10.with_changes(drag_coefficient=0.0, rolling_resistance=0.0, brake_pressure_tau_s=0.0)
    van = ready_van(p)
    v0, bar = 15.0, 30.0
    decel = bar * p.brake_torque_per_bar_nm / p.wheel_radius_m / m_eff(p)
    assert decel < p.tyre_friction * 9.80665  # below the tyre limit: no ABS
    van.set_speed(v0)
    x0 = van.outputs["distance_m"]
    van.set_inputs(brake_pressure_request_bar=bar)
    steps = 0
    while van.outputs["speed_mps"] > 0.0:
        van.step(0.001)
        steps += 1
    assert van.outputs["distance_m"] - x0 == pytest.approx(v0 * v0 / (2 * decel), abs=0.02)
    assert steps * 0.001 == pytest.approx(v0 / decel, abs=0.002)
    # once stopped it stays stopped, exactly
    out = van.step(2.0)
    assert out["speed_mps"] == 0.0 and out["standstill"] == 1


def test_hard_braking_saturates_at_tyre_friction() -> None:
    p = Z10.with_changes(drag_coefficient=0.0, rolling_resistance=0.0, brake_pressure_tau_s=0.0)
    van = ready_van(p)
    van.set_speed(20.0)
    out = van.step(0.01, {"brake_pressure_request_bar": 200.0})
    assert out["abs_active"] == 1
    mass = p.curb_mass_kg
    assert out["accel_mps2"] == pytest.approx(-p.tyre_friction * mass * 9.80665 / m_eff(p), rel=1e-9)


@pytest.mark.parametrize("grade", [-20.0, 12.0, 20.0])
def test_epb_holds_exactly_on_a_grade_with_full_payload(grade: float) -> None:
    van = Van(Z10)  # starts in P with the EPB applied
    van.set_payload([250.0] * 6)
    van.set_inputs(gear_request=2, grade_pct=grade)  # N: no pawl, only the EPB holds
    out = van.step(3.0)
    assert out["speed_mps"] == 0.0
    assert out["distance_m"] == 0.0
    assert out["standstill"] == 1 and out["epb_state"] == 1
    # released on the same grade, the van rolls downhill
    out = van.step(1.5, {"epb_request": 2})
    assert out["epb_state"] == 0
    assert math.copysign(1.0, out["speed_mps"]) == -math.copysign(1.0, grade)


def test_brakes_hold_against_torque_below_capacity_and_yield_above() -> None:
    van = ready_van(Z10, gear=3, brake_pressure_request_bar=5.0)
    out = van.step(3.0, {"motor_torque_request_nm": 50.0})
    # 50 Nm x 10.5 x 0.97 = 509 Nm at the wheels < 5 bar x 150 Nm/bar
    assert out["speed_mps"] == 0.0 and out["distance_m"] == 0.0
    out = van.step(1.0, {"motor_torque_request_nm": 200.0})
    assert out["speed_mps"] > 0.0


def test_no_rolling_back_through_zero_under_braking_uphill() -> None:
    van = ready_van(Z10, grade_pct=10.0, brake_pressure_request_bar=20.0)
    van.set_speed(3.0)
    speeds = []
    for _ in range(3000):
        speeds.append(van.step(0.001)["speed_mps"])
    assert min(speeds) == 0.0  # stopped on the grade and held by the brake
    assert speeds[-1] == 0.0


def test_payload_changes_mass_and_acceleration() -> None:
    p = Z10.with_changes(drag_coefficient=0.0, rolling_resistance=0.0)
    empty = ready_van(p, gear=3)
    full = ready_van(p, gear=3)
    full.set_payload([250.0] * 6)
    assert full.outputs["mass_kg"] == p.curb_mass_kg + 1500.0
    assert full.outputs["payload_over_limit"] == 0
    ve = empty.step(3.0, {"motor_torque_request_nm": 200.0})["speed_mps"]
    vf = full.step(3.0, {"motor_torque_request_nm": 200.0})["speed_mps"]
    assert vf / ve == pytest.approx(m_eff(p) / m_eff(p, 1500.0), rel=1e-6)
    full.set_payload({1: 400.0, 2: 400.0, 3: 300.0, 4: 300.0, 5: 300.0, 6: 0.0})
    assert full.outputs["payload_kg"] == 1700.0 and full.outputs["payload_over_limit"] == 1


def test_regen_envelope_limits_torque_at_speed() -> None:
    van = ready_van(Z10, gear=3)
    van.set_speed(30.0)
    out = van.step(0.2, {"motor_torque_request_nm": -400.0})
    omega = out["motor_speed_radps"]
    assert out["motor_torque_nm"] == pytest.approx(-Z10.motor_regen_power_w / omega, rel=1e-3)
    assert out["pack_current_a"] < 0.0  # charging


def test_energy_pack_out_matches_wheel_energy_over_efficiencies() -> None:
    p = Z10.with_changes(drag_coefficient=0.0, rolling_resistance=0.0, motor_torque_tau_s=0.0)
    van = ready_van(p, gear=3)
    e0, h0, t0 = (van.outputs[k] for k in ("pack_energy_out_j", "pack_heat_j", "time_s"))
    out = van.step(4.0, {"motor_torque_request_nm": 250.0})
    kinetic = 0.5 * m_eff(p) * out["speed_mps"] ** 2
    aux = p.aux_power_w * (out["time_s"] - t0)
    drawn = out["pack_energy_out_j"] - e0 - (out["pack_heat_j"] - h0) - aux
    eta = p.gear_efficiency * p.motor_inverter_efficiency
    assert drawn == pytest.approx(kinetic / eta, rel=2e-3)
    # regenerate back to a stop: the pack gets kinetic x efficiencies back
    e1, h1, t1, k1 = out["pack_energy_out_j"], out["pack_heat_j"], out["time_s"], kinetic
    van.set_inputs(motor_torque_request_nm=-150.0)
    while van.outputs["speed_mps"] > 1.0:
        van.step(0.001)
    out = van.outputs
    k2 = 0.5 * m_eff(p) * out["speed_mps"] ** 2
    returned = -(out["pack_energy_out_j"] - e1 - (out["pack_heat_j"] - h1) - p.aux_power_w * (out["time_s"] - t1))
    assert returned == pytest.approx((k1 - k2) * eta, rel=2e-3)


def test_bicycle_model_yaw_rate_and_circle() -> None:
    van = ready_van(Z10, gear=3, steer_enable=1, steer_angle_request_deg=400.0)
    out = van.step(0.1)
    assert out["steer_angle_deg"] == 400.0  # 400 deg at 540 deg/s: reached in 0.74 s
    delta = math.radians(400.0 / Z10.steering_ratio)
    assert out["road_wheel_angle_rad"] == pytest.approx(delta, rel=1e-12)
    van.set_speed(5.0)
    van.set_inputs(brake_pressure_request_bar=0.0)
    x0, y0, h0 = out["pos_x_m"], out["pos_y_m"], out["heading_rad"]
    out = van.step(0.001)
    v = out["speed_mps"]
    assert out["yaw_rate_radps"] == pytest.approx(v * math.tan(delta) / Z10.wheelbase_m, rel=1e-12)
    # hold speed with the torque that balances road load, drive a full circle
    radius = Z10.wheelbase_m / math.tan(delta)
    hold = road_load_n(Z10, 5.0, Z10.curb_mass_kg) * Z10.wheel_radius_m / Z10.gear_ratio / Z10.gear_efficiency
    van.set_inputs(motor_torque_request_nm=hold)
    while van.outputs["heading_rad"] - h0 < 2 * math.pi:
        van.step(0.001)
    out = van.outputs
    assert math.hypot(out["pos_x_m"] - x0, out["pos_y_m"] - y0) < 0.02 * radius
    assert out["speed_mps"] == pytest.approx(5.0, rel=1e-2)


def test_steering_rate_limit_and_lock() -> None:
    van = ready_van(Z10)
    out = van.step(1.0, {"steer_enable": 1, "steer_rate_limit_dps": 100.0, "steer_angle_request_deg": -700.0})
    assert out["steer_angle_deg"] == pytest.approx(-100.0, abs=1e-9)
    out = van.step(4.5)  # 527 deg lock at 100 deg/s: reached 5.27 s after the start
    assert out["steer_angle_deg"] == pytest.approx(-Z10.max_road_wheel_angle_deg * Z10.steering_ratio)
    lock = out["steer_angle_deg"]
    van.set_inputs(steer_enable=0, steer_angle_request_deg=0.0)
    assert van.step(0.5)["steer_angle_deg"] == lock  # disabled: holds
