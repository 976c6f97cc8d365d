"""Tests that close the gaps mutmut found in the interlock kernel (docs/interlocks.md,
"Mutation testing"). Each test names the surviving mutant(s) it kills; expected values come
from the thresholds table and the stated property, never from the kernel.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from ctl_helpers import DT_S, NOMINAL, Harness, rpm_for

from vehicle_io.control import layout as L

THR = L.Thresholds()
OFFSETS = np.unique(np.concatenate([np.linspace(-0.03, 0.03, 13), [-1e-9, 0.0, 1e-9]]))


def seen_speed(speed_mps: float) -> float:
    # The kernel averages the four wheel speeds after the km/h round trip; judge what it sees.
    kph = speed_mps * 3.6
    return (kph + kph + kph + kph) / (4.0 * 3.6)


@pytest.mark.parametrize("dt_s", [math.nan, 0.0, -0.01, 0.5])
def test_invalid_period_falls_back_to_the_default(dt_s: float) -> None:
    """step_18: an invalid dt must not scale the rate limits (the default 10 ms is used)."""
    h = Harness(replace(THR, torque_rate_nm_per_s=100.0))
    h.engage()
    h.set(adc_target_speed_mps=20.0, adc_target_accel_mps2=2.0, dt_s=dt_s)
    y = h.step(10)
    assert float(y["torque_nm"]) == pytest.approx(100.0 * 0.01 * 10)


def test_vcu_speed_zero_is_a_known_standstill() -> None:
    """step_207: wheel speeds invalid, motor speed unknown, VCU says 0 km/h -> standstill known."""
    h = Harness()
    h.set(brk_wheel_speeds_valid=0, mcu_motor_speed_rpm=math.nan, vcu_speed_kph=0.0, vcu_gear=L.GEAR_P,
          adc_compartment_request1=L.LOCK_UNLOCK)
    y = h.step()
    assert y["speed_mps"] == 0.0 and y["standstill"] == 1
    assert y["lock_request1"] == L.LOCK_UNLOCK and y["door_release1"] == 1


def test_reset_while_the_battery_fault_persists_keeps_contactors_open() -> None:
    """step_450: a reset request at standstill is refused while the cell value is still at fault."""
    h = Harness()
    h.engage()
    h.set(bms_cell_t_max_degc=THR.cell_ot_fault_degc)
    assert h.step()["hv_open_request"] == 1
    h.set(reset_request=1)
    for _ in range(3):
        y = h.step()
        assert y["hv_open_request"] == 1 and y["fault_latched"] == 1
        h.set(reset_request=0)
        h.step()
        h.set(reset_request=1)


def test_van_moving_in_auto_without_control_is_stopped() -> None:
    """step_764: a driverless van moving in Auto must not coast, even if never engaged."""
    h = Harness()
    h.set(adc_control_request=0)
    h.set_speed(8.0)
    y = h.step(int(1.0 / DT_S))
    assert y["control_allowed"] == 0 and y["torque_nm"] == 0.0
    assert y["accel_cmd_mps2"] < 0.0 and y["brake_enable"] == 1 and y["gw_state"] == L.GW_STATE_TRIPPED


def test_driver_override_hands_over_without_braking() -> None:
    """step_773, step_1205: on override the driver has the van; the gateway stops braking at once."""
    h = Harness()
    h.moving(10.0)
    h.set(adc_target_speed_mps=5.0, adc_target_accel_mps2=-1.0)
    y = h.step(50)
    assert y["accel_cmd_mps2"] < 0.0  # decelerating when the driver takes over
    h.set(eps_driver_override=1)
    for _ in range(5):
        y = h.step()
        assert y["control_allowed"] == 0 and y["accel_cmd_mps2"] == 0.0
        assert y["brake_enable"] == 0 and y["brake_pressure_bar"] == 0.0 and y["torque_nm"] == 0.0
        assert y["gw_state"] == L.GW_STATE_ARMED


@pytest.mark.parametrize("field", ["bms_cell_t_max_degc", "bms_cell_v_max"])
def test_latched_battery_fault_disengages(field: str) -> None:
    """step_818: a latched fault ends control (steering included), not only propulsion."""
    h = Harness()
    h.engage()
    h.set(**{field: {"bms_cell_t_max_degc": THR.cell_ot_fault_degc, "bms_cell_v_max": THR.cell_ov_fault_v}[field]})
    y = h.step(2)
    assert y["control_allowed"] == 0 and y["steer_enable"] == 0 and y["drive_enable"] == 0


ENGAGE_BLOCKERS = {
    "estop_latched": ({"estop_remote": 1}, {"estop_remote": 0}),
    "mode_not_auto": ({"vcu_drive_mode": 0}, {}),
    "driver_present": ({"vcu_driver_present": 1}, {}),
    "adc_state_not_active": ({"adc_state": 4}, {}),
    "driver_override": ({"eps_driver_override": 1}, {}),
    "bms_fault_latched": ({"bms_cell_v_min": THR.cell_uv_fault_v}, {"bms_cell_v_min": 3.8}),
    "mcu_fault": ({"mcu_fault_level": 2}, {}),
}


@pytest.mark.parametrize("blocker", sorted(ENGAGE_BLOCKERS) + ["adc_heartbeat", "vcu_status", "eps_status"])
def test_control_request_edge_does_not_engage_while_blocked(blocker: str) -> None:
    """step_908: the engage edge is refused, not even for one tick, while anything forbids it."""
    h = Harness()
    h.set(adc_control_request=0)
    if blocker in ENGAGE_BLOCKERS:
        cause, after = ENGAGE_BLOCKERS[blocker]
        h.set(**cause)
        h.step()
        h.set(**after)
    else:
        h.set_valid(blocker, False, timed_out=True)
    h.step()
    h.set(adc_control_request=1, adc_target_speed_mps=5.0, adc_target_accel_mps2=1.0)
    for _ in range(5):
        y = h.step()
        assert y["control_allowed"] == 0 and y["drive_enable"] == 0 and y["steer_enable"] == 0, blocker


def test_shift_to_park_at_standstill_with_brake() -> None:
    """step_989: P (gear code 0) is a gear change like any other."""
    h = Harness()
    h.engage()
    h.set(adc_gear_request=L.GEAR_P, brk_pressure_bar=THR.gear_brake_bar)
    y = h.step()
    assert y["gear_request"] == L.GEAR_P and y["torque_nm"] <= 0.0


def test_regen_is_used_up_to_the_charge_limit() -> None:
    """step_1268, step_1340: braking regenerates up to min(MCU, BMS charge / omega), never drives."""
    h = Harness()
    h.moving(15.0)
    h.set(adc_target_speed_mps=0.0, adc_target_accel_mps2=-5.0)
    y = h.step(200)
    omega = 15.0 / THR.wheel_radius_m * THR.gear_ratio
    cap = min(THR.torque_max_nm, NOMINAL["mcu_torque_limit_regen_nm"], NOMINAL["bms_charge_limit_kw"] * 1e3 / omega)
    mass = THR.curb_mass_kg + NOMINAL["cbc_payload_kg"]
    assert cap < mass * THR.decel_max_cmd_mps2 * THR.wheel_radius_m / THR.gear_ratio  # the cap binds
    assert float(y["torque_nm"]) == pytest.approx(-cap, rel=1e-6)
    assert y["brake_pressure_bar"] > 0.0  # friction brake covers the rest


@pytest.mark.parametrize("offset", OFFSETS)
def test_regen_min_speed_boundary(offset: float) -> None:
    """step_1304: regeneration at or above regen_min_speed_mps only."""
    speed = THR.regen_min_speed_mps * (1.0 + offset)
    h = Harness()
    h.moving(speed)
    h.set(adc_target_speed_mps=0.0, adc_target_accel_mps2=-2.0)
    y = h.step(10)
    assert (float(y["torque_nm"]) < 0.0) == (seen_speed(speed) >= THR.regen_min_speed_mps), speed


def test_torque_reversal_is_rate_limited() -> None:
    """step_1358: drive -> regen: the regen torque grows from zero at the torque rate."""
    rate = 100.0
    h = Harness(replace(THR, torque_rate_nm_per_s=rate))
    h.moving(10.0)
    h.set(adc_target_speed_mps=20.0, adc_target_accel_mps2=2.0)
    prev = float(h.step(300)["torque_nm"])
    assert prev > 50.0
    h.set(adc_target_speed_mps=0.0, adc_target_accel_mps2=-5.0)
    for _ in range(20):
        t = float(h.step()["torque_nm"])
        base = prev if prev * t >= 0.0 else 0.0
        assert abs(t) - abs(base) <= rate * DT_S + 1e-9, (prev, t)
        prev = t
    assert prev < 0.0


def test_brake_fault_sets_the_emergency_flag() -> None:
    """step_1430: ILK_BRK_FAULT -> safe stop with GW_BrakeEmergency set."""
    h = Harness()
    h.moving(10.0)
    h.set(brk_fault_level=2)
    y = h.step()
    assert y["brake_emergency"] == 1 and y["brake_enable"] == 1 and y["torque_nm"] <= 0.0


@pytest.mark.parametrize("cause", [{"estop_physical": 1}, {"bms_cell_v_max": THR.cell_ov_crit_v}])
def test_estop_or_contactor_opening_at_standstill_applies_epb(cause: dict) -> None:
    """step_1466: e-stop / HV open at standstill -> EPB applied and held (no moving stop first)."""
    h = Harness()
    h.engage()
    h.set(**cause)
    y = h.step(2)
    assert y["epb_request"] == L.EPB_APPLY and y["brake_hold"] == 1


@pytest.mark.parametrize("gear", [L.GEAR_P, L.GEAR_D])
def test_idle_van_at_standstill_commands_nothing(gear: int) -> None:
    """step_1448, _1475, _1501, _1861, _1906, _1978: not engaged -> no brake, no EPB, no release."""
    h = Harness()
    h.set(adc_control_request=0, vcu_gear=gear, adc_gear_request=gear, adc_epb_request=L.EPB_RELEASE,
          brk_hold_active=1)
    for _ in range(5):
        y = h.step()
        assert y["standstill"] == 1 and y["control_allowed"] == 0 and y["gw_state"] == L.GW_STATE_ARMED
        assert y["brake_enable"] == 0 and y["brake_hold"] == 0 and y["brake_pressure_bar"] == 0.0
        assert y["epb_request"] == L.EPB_NO_REQUEST and y["drive_enable"] == 0 and y["steer_enable"] == 0


@pytest.mark.parametrize("cause", [{"cbc_door_open2": 1, "cbc_all_doors_closed": 0}, {"cbc_payload_kg": 1600.0},
                                   {"vcu_ready": 0}, {"estop_remote": 1}])
def test_epb_release_refused(cause: dict) -> None:
    """step_1501: an engaged EPB release request is refused while a door, overload, HV or e-stop forbids it."""
    h = Harness()
    h.engage()
    h.set(adc_epb_request=L.EPB_RELEASE, brk_hold_active=1)
    assert h.step()["epb_request"] == L.EPB_RELEASE  # the baseline releases
    h = Harness()
    h.engage()
    h.set(**cause, adc_epb_request=L.EPB_RELEASE, brk_hold_active=1)
    for _ in range(3):
        assert h.step()["epb_request"] != L.EPB_RELEASE, cause


@pytest.mark.parametrize("adc_rate", [0.5, 6.0, 100.0, 1000.0])
def test_adc_steer_rate_limit_is_honoured(adc_rate: float) -> None:
    """step_1528: a rate limit from the ADC below the kernel's own is applied (4 deg/s resolution)."""
    h = Harness()
    h.engage()
    h.set(adc_steer_rate_limit_degps=adc_rate, adc_steer_angle_deg=100.0)
    y = h.step()
    expected = math.floor(min(THR.steer_rate_0_degps, adc_rate) / 4.0) * 4.0
    assert y["steer_enable"] == 1 and y["steer_rate_limit_degps"] == expected
    assert float(y["steer_angle_deg"]) == pytest.approx(expected * DT_S)


@pytest.mark.parametrize("compartment", range(1, 7))
def test_each_compartment_request_reaches_its_own_lock(compartment: int) -> None:
    """step_1681, step_1753: compartment i's request drives lock i only."""
    h = Harness()
    h.set(vcu_gear=L.GEAR_P, **{f"adc_compartment_request{compartment}": L.LOCK_UNLOCK})
    y = h.step()
    for i in range(1, 7):
        want = L.LOCK_UNLOCK if i == compartment else L.LOCK_NO_REQUEST
        assert y[f"lock_request{i}"] == want and y[f"door_release{i}"] == int(i == compartment), i
    assert y["cargo_enable"] == 1 and y["cargo_moving"] == 0


def test_cargo_moving_flag() -> None:
    """step_1780: GW_CargoMoving is 1 while moving (and every compartment is told to lock)."""
    h = Harness()
    y = h.moving(5.0)
    assert y["cargo_moving"] == 1
    assert all(y[f"lock_request{i}"] == L.LOCK_LOCK for i in range(1, 7))


@pytest.mark.parametrize(("mode", "expected"), [(0, 0), (1, 1), (2, 2), (3, 7), (math.nan, 7)])
def test_drive_mode_request_forwarded(mode: float, expected: int) -> None:
    """step_1816: modes 0..2 are forwarded, anything else is 'no request' (7)."""
    h = Harness()
    h.set(adc_mode_request=mode)
    assert h.step()["drive_mode_request"] == expected


@pytest.mark.parametrize("message", ["adc_command", "adc_heartbeat", "vcu_status", "brk_wheels"])
def test_drive_mode_request_needs_valid_adc_and_powertrain(message: str) -> None:
    """step_1807: no mode request is forwarded unless ADC and powertrain inputs are all valid."""
    h = Harness()
    h.set_valid(message, False, timed_out=True)
    assert h.step()["drive_mode_request"] == 7


@pytest.mark.parametrize("payload", [0.0, 750.0, 1500.0])
def test_speed_limit_sent_in_half_kph(payload: float) -> None:
    """step_1834: GW_SpeedLimit = payload-scaled limit, rounded down to 0.5 km/h."""
    limit = THR.v_max_empty_mps + (THR.v_max_rated_mps - THR.v_max_empty_mps) * payload / THR.rated_payload_kg
    h = Harness()
    h.set(cbc_payload_kg=payload)
    y = h.step()
    assert y["speed_limit_kph"] == math.floor(limit * 3.6 * 2.0) / 2.0


def test_engaged_steering_is_enabled() -> None:
    """step_1870: engaged with a healthy EPS -> GW_SteerEnable 1."""
    h = Harness()
    y = h.engage()
    assert y["steer_enable"] == 1 and y["gw_state"] == L.GW_STATE_ACTIVE


def test_unknown_speed_is_reported_as_minus_one() -> None:
    """step_1897: no valid speed source -> speed_mps -1 and no standstill."""
    h = Harness()
    h.set(brk_wheel_speeds_valid=0, vcu_speed_kph=math.nan, mcu_motor_speed_rpm=math.nan)
    y = h.step()
    assert y["speed_mps"] == -1.0 and y["standstill"] == 0


def test_plausibility_latch_is_a_latched_fault() -> None:
    """step_1924: any one latched fault alone sets GW_FaultLatched and GW_State Fault."""
    h = Harness()
    h.moving(10.0)
    h.set_speed(10.0, 14.0)
    y = h.step(math.ceil(THR.plaus_time_s / DT_S) + 2)
    assert h.flag("plausibility") == 1 and h.flag("bms_fault") == 0 and y["hv_open_request"] == 0
    assert y["fault_latched"] == 1 and y["gw_state"] == L.GW_STATE_FAULT
    assert y["control_allowed"] == 0  # step_814: a latched plausibility fault ends control


def test_plausibility_needs_both_speeds() -> None:
    """step_239: motor speed unknown -> nothing to compare, no plausibility fault."""
    h = Harness()
    h.moving(10.0)
    h.set(mcu_motor_speed_rpm=math.nan)
    h.step(math.ceil(THR.plaus_time_s / DT_S) * 3)
    assert h.flag("plausibility") == 0


@pytest.mark.parametrize("door", range(1, 7))
@pytest.mark.parametrize("what", ["open", "unlocked"])
def test_each_door_alone_trips_the_door_interlock(door: int, what: str) -> None:
    """step_490: every door and lock is read on its own (the summary flags still say 'all closed')."""
    h = Harness()
    h.engage()
    h.set(**({f"cbc_door_open{door}": 1} if what == "open" else {f"cbc_lock_state{door}": 0}),
          adc_target_speed_mps=5.0, adc_target_accel_mps2=1.0)
    y = h.step(5)
    assert h.flag("door_open") == 1 and y["torque_nm"] <= 0.0 and y["drive_enable"] == 0


@pytest.mark.parametrize(("inputs", "derate", "fault", "open_while_moving"), [
    ({"bms_isolation_state": 1}, 1, 0, 0),
    ({"bms_isolation_state": 2}, 0, 1, 0),
    ({"bms_fault_level": 1}, 1, 0, 0),
    ({"bms_fault_level": 2}, 0, 1, 0),
    ({"bms_fault_level": 3}, 0, 1, 1),
])
def test_bms_reported_levels(inputs: dict, derate: int, fault: int, open_while_moving: int) -> None:
    """step_400, step_409: BMS isolation state and fault level map to derate / fault / critical."""
    h = Harness()
    h.moving(10.0)
    h.set(**inputs)
    y = h.step()
    assert (h.flag("battery_derate"), h.flag("bms_fault"), int(y["hv_open_request"])) == (
        derate, fault, open_while_moving), inputs


def test_limits_stay_at_rated_values_above_rated_payload() -> None:
    """step_580: payload above rated does not extrapolate the payload-scaled limits."""
    h = Harness()
    h.moving(10.0)
    h.set(cbc_payload_kg=3000.0)
    y = h.step()
    assert float(y["speed_limit_mps"]) == pytest.approx(THR.v_max_rated_mps) and h.flag("overload") == 1


def test_vcu_fault_stops_the_van() -> None:
    """step_751: VCU fault level >= 2 -> no propulsion, safe stop."""
    h = Harness()
    h.moving(10.0)
    h.set(vcu_fault_level=2)
    y = h.step(20)
    assert y["torque_nm"] <= 0.0 and y["drive_enable"] == 0 and y["accel_cmd_mps2"] < 0.0
    assert y["gw_state"] == L.GW_STATE_TRIPPED


def test_negative_motoring_limit_means_no_drive_torque() -> None:
    """step_1277: a negative MCU motoring limit is invalid -> cap 0."""
    h = Harness()
    h.engage()
    h.set(mcu_torque_limit_motoring_nm=-10.0, adc_target_speed_mps=5.0, adc_target_accel_mps2=1.0)
    y = h.step(20)
    assert y["torque_nm"] == 0.0


# ---------------------------------------------------------------- gaps of the 500-sample run
def steer_rate_at(speed_mps: float) -> float:
    """The table's steering rate limit at a speed (linear between the four points), on the 4 deg/s grid."""
    xs = (THR.steer_rate_v0_mps, THR.steer_rate_v1_mps, THR.steer_rate_v2_mps, THR.steer_rate_v3_mps)
    ys = (THR.steer_rate_0_degps, THR.steer_rate_1_degps, THR.steer_rate_2_degps, THR.steer_rate_3_degps)
    return math.floor(float(np.interp(speed_mps, xs, ys)) / 4.0) * 4.0


def payload_limits(payload_kg: float) -> tuple[float, float]:
    """(speed limit, acceleration limit) for a payload, interpolated between empty and rated."""
    frac = min(max(payload_kg / THR.rated_payload_kg, 0.0), 1.0)
    return (THR.v_max_empty_mps + (THR.v_max_rated_mps - THR.v_max_empty_mps) * frac,
            THR.a_max_empty_mps2 + (THR.a_max_rated_mps2 - THR.a_max_empty_mps2) * frac)


def brake_mass_kg(payload_kg: float = NOMINAL["cbc_payload_kg"]) -> float:
    return THR.curb_mass_kg + payload_kg


def test_speed_lost_while_moving_stops_the_van() -> None:
    """Default deny: every speed source lost at 10 m/s -> disengaged, no propulsion, a safe
    stop, ILK_SPEED_PLAUSIBILITY while it lasts, steering released (rate 0), reported speed
    unknown; from standstill the van cannot engage while blind. (step_212, the last speed kept
    for the steering rate, is equivalent since a lost speed disengages: docs/interlocks.md.)"""
    lost = {"brk_wheel_speeds_valid": 0, "vcu_speed_kph": math.nan, "mcu_motor_speed_rpm": math.nan}
    h = Harness()
    h.moving(10.0)
    h.set(**lost, adc_steer_angle_deg=90.0, adc_target_speed_mps=20.0, adc_target_accel_mps2=1.0)
    for _ in range(60):
        y = h.step()
        assert y["speed_mps"] == -1.0 and y["ilk_plausibility"] == 1
        assert y["control_allowed"] == 0 and y["drive_enable"] == 0 and y["torque_nm"] <= 0.0
    assert y["accel_cmd_mps2"] == pytest.approx(-THR.safe_stop_decel_mps2) and y["brake_enable"] == 1
    assert y["steer_enable"] == 0 and y["steer_rate_limit_degps"] == 0.0
    h = Harness()
    h.engage()
    h.set(**lost, adc_steer_angle_deg=90.0)
    y = h.step()
    assert y["speed_mps"] == -1.0 and y["control_allowed"] == 0 and y["ilk_plausibility"] == 1
    h.set(adc_control_request=0)
    h.step()
    h.set(adc_control_request=1)  # a new engage edge while blind is refused
    assert h.step(3)["control_allowed"] == 0


@pytest.mark.parametrize("mode", [{"vcu_drive_mode": L.MODE_MANUAL, "vcu_driver_present": 1},
                                  {"vcu_drive_mode": L.MODE_REMOTE}])
def test_responsibility_ends_at_standstill_once_disengaged(mode: dict) -> None:
    """step_877: disengaged while moving -> safe stop; at standstill the gateway's responsibility
    ends, so when a driver / remote operator then moves the van (no Auto) it is not braked."""
    h = Harness()
    h.moving(10.0)
    h.set(adc_control_request=0)
    y = h.step(5)
    assert y["control_allowed"] == 0 and y["gw_state"] == L.GW_STATE_TRIPPED and y["accel_cmd_mps2"] < 0.0
    h.set_speed(0.0)
    assert h.step(3)["standstill"] == 1
    h.set(**mode)
    h.set_speed(3.0)
    for _ in range(20):
        y = h.step()
        assert y["standstill"] == 0 and y["control_allowed"] == 0
        assert y["brake_enable"] == 0 and y["accel_cmd_mps2"] == 0.0 and y["brake_pressure_bar"] == 0.0
        assert y["gw_state"] == L.GW_STATE_ARMED and y["epb_request"] == L.EPB_NO_REQUEST


@pytest.mark.parametrize("side", ["decel", "accel"])
@pytest.mark.parametrize("offset", OFFSETS)
def test_accel_limit_flag_boundary(side: str, offset: float) -> None:
    """step_1084: ILK_ACCEL_LIMIT flags requests strictly beyond -decel_max_cmd_mps2 / the
    payload-scaled a_max; a request exactly at a limit is within it."""
    _, a_max = payload_limits(NOMINAL["cbc_payload_kg"])
    limit = -THR.decel_max_cmd_mps2 if side == "decel" else a_max
    a_req = limit * (1.0 + offset)
    h = Harness()
    h.engage()
    h.set(adc_target_accel_mps2=a_req)
    h.step()
    assert h.flag("accel_limit") == int(a_req < -THR.decel_max_cmd_mps2 or a_req > a_max), a_req


@pytest.mark.parametrize("case", ["overspeed", "hv_not_ready"])
def test_refused_propulsion_while_moving_brakes_only_as_requested(case: str) -> None:
    """step_1120: propulsion refused for another reason than the gear adds no door-stop braking:
    overspeed brakes at overspeed_decel_mps2; HV not ready follows the ADC's deceleration."""
    v_lim, _ = payload_limits(NOMINAL["cbc_payload_kg"])
    h = Harness()
    if case == "overspeed":
        speed = v_lim + THR.overspeed_margin_mps + 0.5
        h.moving(speed)
        # the ADC asks speed_gain * (v_lim - speed) = -0.75 m/s2: the overspeed rule makes it -1
        expected = min(THR.speed_gain_per_s * (v_lim - seen_speed(speed)), -THR.overspeed_decel_mps2)
    else:
        speed = 10.0
        h.moving(speed)
        h.set(vcu_ready=0, adc_target_speed_mps=8.0)
        expected = min(THR.speed_gain_per_s * (8.0 - seen_speed(speed)), 0.0)
    assert -THR.door_stop_decel_mps2 < expected < 0.0
    y = h.step(int(THR.door_stop_decel_mps2 / THR.jerk_max_mps3 / DT_S) + 20)  # past any jerk ramp
    assert y["drive_enable"] == 0 and y["torque_nm"] <= 0.0
    assert float(y["accel_cmd_mps2"]) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("inputs", [{"adc_target_speed_mps": 0.0}, {"adc_target_speed_mps": THR.standstill_speed_mps},
                                    {"adc_target_speed_mps": 5.0, "vcu_ready": 0}])
def test_engaged_at_standstill_holds_the_brake(inputs: dict) -> None:
    """step_1137, step_1434: engaged at standstill with no target speed (or propulsion refused)
    -> GW_BrakeHold with at least hold_brake_bar, never torque."""
    h = Harness()
    h.engage()
    h.set(**inputs)
    for _ in range(3):
        y = h.step()
        assert y["standstill"] == 1 and y["control_allowed"] == 1 and y["torque_nm"] <= 0.0
        assert y["brake_hold"] == 1 and y["brake_enable"] == 1
        assert y["brake_pressure_bar"] == THR.hold_brake_bar  # the command is 0 m/s2: only the hold


def test_small_positive_acceleration_target_is_reached() -> None:
    """step_1155: a target of 0.5 m/s2 (speed error 1 m/s x speed_gain_per_s) is reached at the
    jerk limit, with the torque that gives it (mass x a x r / ratio)."""
    h = Harness()
    h.moving(10.0)
    h.set(adc_target_speed_mps=11.0)
    a_target = THR.speed_gain_per_s * (11.0 - seen_speed(10.0))
    assert 0.0 < a_target < 1.0
    y = h.step(math.ceil(a_target / (THR.jerk_max_mps3 * DT_S)) + 2)
    assert float(y["accel_cmd_mps2"]) == pytest.approx(a_target, rel=1e-9)
    want_nm = brake_mass_kg() * a_target * THR.wheel_radius_m / THR.gear_ratio
    assert y["drive_enable"] == 1 and float(y["torque_nm"]) == pytest.approx(want_nm, rel=1e-9)


@pytest.mark.parametrize("inputs", [{"bms_charge_limit_kw": -5.0}, {"bms_charge_limit_kw": math.nan},
                                    {"mcu_torque_limit_regen_nm": -10.0}, {"mcu_torque_limit_regen_nm": math.nan},
                                    {"ok_bms_limits": 0.0, "to_bms_limits": 1.0}])
def test_invalid_regen_limits_mean_no_regen(inputs: dict) -> None:
    """step_1272, step_1281: a negative / NaN charge or regen limit, or limp mode (BMS_Limits
    stale) -> no regeneration at all; the friction brake carries the whole deceleration."""
    h = Harness()
    h.moving(15.0)
    h.set(**inputs, adc_target_speed_mps=0.0, adc_target_accel_mps2=-2.0)
    for _ in range(30):
        y = h.step()
        assert y["torque_nm"] == 0.0
        force_n = -brake_mass_kg() * float(y["accel_cmd_mps2"])
        assert float(y["brake_pressure_bar"]) == pytest.approx(force_n / THR.brake_gain_n_per_bar, rel=1e-9)
    assert y["accel_cmd_mps2"] < 0.0 and y["brake_enable"] == 1


def test_friction_brake_covers_what_regen_does_not() -> None:
    """step_1344, step_1389: brake pressure x gain + regen torque x ratio / r = mass x deceleration,
    while the regen torque ramps at the torque rate and once it is at the charge-power cap."""
    h = Harness(replace(THR, torque_rate_nm_per_s=500.0))
    h.moving(15.0)
    h.set(adc_target_speed_mps=0.0, adc_target_accel_mps2=-THR.decel_max_cmd_mps2)
    ramping = 0
    for _ in range(100):
        prev = float(h.state[0]["torque_nm"])
        y = h.step()
        a = float(y["accel_cmd_mps2"])
        t = float(y["torque_nm"])
        if a >= 0.0:
            continue
        if t < 0.0 and abs(t) - abs(prev) == pytest.approx(500.0 * DT_S):
            ramping += 1  # a tick where the regen torque is held back by the torque rate
        force_n = float(y["brake_pressure_bar"]) * THR.brake_gain_n_per_bar - t * THR.gear_ratio / THR.wheel_radius_m
        assert force_n == pytest.approx(-brake_mass_kg() * a, rel=1e-9), (a, t)
    assert ramping >= 5  # the rate-limited ticks were checked
    y = h.step(100)
    omega = 15.0 / THR.wheel_radius_m * THR.gear_ratio
    cap = min(THR.torque_max_nm, NOMINAL["mcu_torque_limit_regen_nm"], NOMINAL["bms_charge_limit_kw"] * 1e3 / omega)
    assert float(y["accel_cmd_mps2"]) == -THR.decel_max_cmd_mps2
    assert float(y["torque_nm"]) == pytest.approx(-cap, rel=1e-6)
    regen_force_n = cap * THR.gear_ratio / THR.wheel_radius_m
    want_bar = (brake_mass_kg() * THR.decel_max_cmd_mps2 - regen_force_n) / THR.brake_gain_n_per_bar
    assert float(y["brake_pressure_bar"]) == pytest.approx(want_bar, rel=1e-6)


@pytest.mark.parametrize(("gear", "epb"), [(L.GEAR_P, L.EPB_APPLY), (L.GEAR_D, L.EPB_NO_REQUEST),
                                            (L.GEAR_R, L.EPB_NO_REQUEST), (L.GEAR_N, L.EPB_NO_REQUEST)])
def test_epb_applied_at_standstill_in_park_only(gear: int, epb: int) -> None:
    """step_1479: engaged at standstill without an EPB request, the EPB is applied in P only."""
    h = Harness()
    h.set(vcu_gear=gear, adc_gear_request=gear)
    h.engage()
    for _ in range(3):
        y = h.step()
        assert y["standstill"] == 1 and y["epb_request"] == epb, gear


def test_epb_not_reapplied_after_a_release() -> None:
    """step_1515: once released (engaged, D, brake held), the EPB is not applied again when the
    ADC stops requesting the release."""
    h = Harness()
    h.set(vcu_gear=L.GEAR_P, adc_gear_request=L.GEAR_P)
    h.engage()
    assert h.step()["epb_request"] == L.EPB_APPLY  # parked: EPB held applied
    h.set(vcu_gear=L.GEAR_D, adc_gear_request=L.GEAR_D, vcu_epb_state=L.EPB_STATE_APPLIED,
          adc_epb_request=L.EPB_RELEASE, brk_hold_active=1)
    assert h.step()["epb_request"] == L.EPB_RELEASE
    h.set(vcu_epb_state=L.EPB_STATE_RELEASED, adc_epb_request=L.EPB_NO_REQUEST)
    for _ in range(3):
        assert h.step()["epb_request"] == L.EPB_NO_REQUEST


def test_service_brake_holds_through_the_epb_release_tick() -> None:
    """The service brake holds up to and including the tick the EPB release is commanded, even
    when the autonomy already asks to move: the EPB is still applied, so propulsion is refused
    and the engaged van at standstill holds (moving the EPB-hold term after the EPB block must
    not open a gap here)."""
    h = Harness()
    h.set(vcu_gear=L.GEAR_P, adc_gear_request=L.GEAR_P)
    h.engage()
    y = h.step()
    assert y["epb_request"] == L.EPB_APPLY and y["brake_hold"] == 1
    h.set(vcu_gear=L.GEAR_D, adc_gear_request=L.GEAR_D, vcu_epb_state=L.EPB_STATE_APPLIED,
          adc_epb_request=L.EPB_RELEASE, brk_hold_active=1, adc_target_speed_mps=3.0)
    y = h.step()
    assert y["epb_request"] == L.EPB_RELEASE and y["brake_hold"] == 1 and y["brake_enable"] == 1


def test_nan_steering_request_holds_the_angle() -> None:
    """step_1560: a NaN ADC_SteerAngleRequest keeps the last commanded angle (steering stays on)."""
    h = Harness()
    h.engage()
    h.set(adc_steer_angle_deg=10.0)
    y = h.step(math.ceil(10.0 / (steer_rate_at(0.0) * DT_S)) + 1)
    assert float(y["steer_angle_deg"]) == pytest.approx(10.0)
    h.set(adc_steer_angle_deg=math.nan)
    for _ in range(3):
        y = h.step()
        assert y["steer_enable"] == 1 and float(y["steer_angle_deg"]) == pytest.approx(10.0)


@pytest.mark.parametrize("cause", ["adc_heartbeat_lost", "cell_ov_critical"])
def test_epb_hold_at_standstill_keeps_the_brake_enabled(cause: str) -> None:
    """step_1839: after a safe stop (or a contactor opening) at standstill the EPB hold is a
    brake command: GW_BrakeEnable with GW_BrakeHold, although no pressure is asked for."""
    h = Harness()
    if cause == "adc_heartbeat_lost":
        h.moving(10.0)
        h.set_valid("adc_heartbeat", False, timed_out=True)
        assert h.step(5)["gw_state"] == L.GW_STATE_TRIPPED
        h.set_speed(0.0)
    else:
        h.engage()
        h.set(bms_cell_v_max=THR.cell_ov_crit_v)
    for _ in range(3):  # from the tick the contactor opening latches: no tick without a brake
        y = h.step()
        assert y["standstill"] == 1 and y["control_allowed"] == 0 and y["brake_emergency"] == 0
        assert y["epb_request"] == L.EPB_APPLY and y["brake_hold"] == 1 and y["brake_enable"] == 1


def test_idle_van_sends_no_steer_rate_and_no_latched_fault() -> None:
    """step_1883, step_1946: not engaged, nothing latched -> GW_SteerRateLimit 0, GW_FaultLatched 0."""
    h = Harness()
    h.set(adc_control_request=0, adc_steer_rate_limit_degps=100.0)
    for _ in range(3):
        y = h.step()
        assert y["steer_enable"] == 0 and y["steer_rate_limit_degps"] == 0.0
        assert y["fault_latched"] == 0 and y["estop_active"] == 0 and y["gw_state"] == L.GW_STATE_ARMED


def test_bms_fault_latched_while_moving_is_a_latched_fault() -> None:
    """step_1928: a BMS fault while moving (contactors still closed) sets GW_FaultLatched and
    GW_State Fault at once, not only once the contactors open at standstill."""
    h = Harness()
    h.moving(10.0)
    h.set(bms_cell_t_max_degc=THR.cell_ot_fault_degc)
    y = h.step()
    assert y["standstill"] == 0 and y["hv_open_request"] == 0 and h.flag("plausibility") == 0
    assert y["fault_latched"] == 1 and y["gw_state"] == L.GW_STATE_FAULT


# ---------------------------------------------------------------- kernel findings (fixed)
def test_nan_motoring_limit_means_no_drive_torque() -> None:
    """min(torque_max, NaN) returned torque_max: a NaN MCU limit was ignored instead of denying."""
    h = Harness()
    h.engage()
    h.set(mcu_torque_limit_motoring_nm=math.nan, adc_target_speed_mps=5.0, adc_target_accel_mps2=1.0)
    y = h.step(20)
    assert y["torque_nm"] <= 0.0


def test_nan_target_speed_gives_no_nan_command() -> None:
    """A NaN ADC target speed made accel_cmd_mps2 NaN; it now counts as a target of 0."""
    h = Harness()
    h.engage()
    h.set(adc_target_speed_mps=math.nan)
    y = h.step(3)
    assert y["accel_cmd_mps2"] == y["accel_cmd_mps2"] and y["torque_nm"] <= 0.0


@pytest.mark.parametrize("ecu", ["vcu", "mcu", "brk", "eps", "bms", "cbc"])
@pytest.mark.parametrize("level", [math.nan, -1.0, 256.0, 1.0e9])
def test_unreadable_fault_level_is_a_fault(ecu: str, level: float) -> None:
    """An ECU fault level the kernel cannot read counted as "no fault"; it is now read as 2."""
    h = Harness()
    h.moving(10.0)
    h.set(**{f"{ecu}_fault_level": level})
    y = h.step()
    assert y["control_allowed"] == 0 or ecu == "cbc"
    flag = {"mcu": "mcu_fault", "brk": "brk_fault", "eps": "eps_fault", "bms": "bms_fault", "cbc": "door_open"}
    if ecu in flag:  # a VCU fault is a stop cause without a flag of its own
        assert h.flag(flag[ecu]) == 1
    assert y["torque_nm"] <= 0.0 and y["accel_cmd_mps2"] < 0.0


@pytest.mark.parametrize("level", [0.0, 1.0])
def test_readable_low_fault_levels_still_drive(level: float) -> None:
    """The other side of the boundary: levels 0 and 1 of every ECU leave a moving van engaged."""
    h = Harness()
    h.moving(10.0)
    h.set(**{f"{ecu}_fault_level": level for ecu in ("vcu", "mcu", "brk", "eps", "cbc")})
    assert h.step(3)["control_allowed"] == 1


def test_rpm_helper_round_trip() -> None:
    # The regen tests rely on the motor speed matching the wheel speed (no plausibility trip).
    assert rpm_for(10.0, THR) * 2.0 * math.pi / 60.0 / THR.gear_ratio * THR.wheel_radius_m == pytest.approx(10.0)


@pytest.mark.parametrize("release", [{"adc_control_request": 0}, {"adc_mode_request": 0},
                                     {"adc_state": 1}, {"vcu_drive_mode": 0}])
def test_control_ending_at_standstill_secures_the_van_on_the_epb(release: dict) -> None:
    """Rollaway: control that ends at standstill with no driver taking over leaves the van on
    the EPB, with the service brake held on that very tick (never a tick with neither)."""
    h = Harness()
    h.engage()
    y = h.step()
    assert y["brake_hold"] == 1 and y["epb_request"] == L.EPB_NO_REQUEST
    h.set(**release)
    y = h.step()
    assert y["control_allowed"] == 0
    assert y["epb_request"] == L.EPB_APPLY and y["brake_hold"] == 1 and y["brake_enable"] == 1
    h.set(**{k: NOMINAL[k] for k in release})
    for _ in range(5):
        y = h.step()
        assert y["epb_request"] == L.EPB_APPLY, "held until an engaged release"
    # drive-away stays possible: engage, then the autonomy's EPB release
    h.set(vcu_epb_state=L.EPB_STATE_APPLIED)
    h.engage()
    h.set(adc_epb_request=L.EPB_RELEASE)
    assert h.step()["epb_request"] == L.EPB_RELEASE


@pytest.mark.parametrize("override", [{"vcu_brake_pedal_pressed": 1}, {"eps_driver_override": 1},
                                      {"vcu_accel_pedal_pct": 20.0}])
def test_a_driver_taking_over_at_standstill_gets_the_van_as_it_is(override: dict) -> None:
    """An override hands the van to the driver: the gateway does not apply the EPB under them."""
    h = Harness()
    h.engage()
    h.step()
    h.set(**override)
    for _ in range(5):
        y = h.step()
        assert y["control_allowed"] == 0 and y["epb_request"] == L.EPB_NO_REQUEST
