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


def test_rpm_helper_round_trip() -> None:
    # The regen tests rely on the motor speed matching the wheel speed (no plausibility trip).
    assert rpm_for(10.0, THR) * 2.0 * math.pi / 60.0 / THR.gear_ratio * THR.wheel_radius_m == pytest.approx(10.0)
