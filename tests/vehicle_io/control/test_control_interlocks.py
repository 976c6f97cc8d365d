"""Interlock families as capability base classes (opendbc ``common.py`` style) with dense
boundary sweeps around every threshold of the table.

Each family is an abstract class; each concrete class sets the constants of one threshold.
Expected values come from the Thresholds table and the stated property, never from the
kernel.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from ctl_helpers import rpm_for, DT_S, WATCHED, Harness

from vehicle_io.control import layout as L

THR = L.Thresholds()
# Relative offsets around a threshold: dense near it, the exact value included.
OFFSETS = np.unique(np.concatenate([np.linspace(-0.03, 0.03, 25), [-1e-6, -1e-9, 0.0, 1e-9, 1e-6]]))


def sweep_values(threshold: float) -> list[float]:
    scale = max(abs(threshold), 1.0)
    return [threshold + o * scale for o in OFFSETS]


# ================================================================ battery thresholds
class BatteryThresholdBase:
    """A battery value crossing a threshold raises a flag; subclasses name field and limit."""

    FIELD: str
    THRESHOLD: str
    ABOVE: bool  # trips at value >= threshold (True) or value <= threshold (False)
    STRICT: bool = False  # trips at value < threshold (isolation resistance)
    FLAG: str
    NEXT: str | None = None  # the next level's threshold: stay below it while sweeping

    def expected(self, value: float, limit: float) -> bool:
        if self.STRICT:
            return value < limit
        return value >= limit if self.ABOVE else value <= limit

    SWEEP_SPEED = 0.0

    def trip_value(self) -> float:
        limit = getattr(THR, self.THRESHOLD)
        return limit * (1.0 - 1e-9) if self.STRICT else limit

    def _tripped(self, value: float, speed: float = 0.0) -> tuple[Harness, np.void]:
        h = Harness()
        h.engage()
        h.set_speed(speed)
        h.set(**{self.FIELD: value})
        return h, h.step()

    def test_sweep(self) -> None:
        limit = getattr(THR, self.THRESHOLD)
        nxt = getattr(THR, self.NEXT) if self.NEXT else None
        for value in sweep_values(limit):
            if nxt is not None and (value >= nxt if self.ABOVE else value <= nxt):
                continue
            h, _ = self._tripped(value, self.SWEEP_SPEED)
            assert h.flag(self.FLAG) == int(self.expected(value, limit)), (self.FIELD, value, limit)


class DerateBase(BatteryThresholdBase):
    FLAG = "battery_derate"

    def test_derates_speed_and_accel(self) -> None:
        h = Harness()
        h.moving(10.0)
        h.set(**{self.FIELD: self.trip_value()}, adc_target_speed_mps=30.0, adc_target_accel_mps2=4.0)
        for _ in range(200):
            y = h.step()
            a_max = (THR.a_max_empty_mps2 + (THR.a_max_rated_mps2 - THR.a_max_empty_mps2) * 500 / 1500)
            assert y["accel_cmd_mps2"] <= a_max * THR.derate_factor + 1e-9
            assert y["speed_limit_mps"] <= THR.derate_speed_mps + 1e-9
        assert h.flag("battery_derate") == 1 and h.flag("bms_fault") == 0


class FaultBase(BatteryThresholdBase):
    FLAG = "bms_fault"

    def test_controlled_stop_then_contactors_open_at_standstill(self) -> None:
        h = Harness()
        h.moving(10.0)
        h.set(**{self.FIELD: self.trip_value()})
        prev = h.step()["accel_cmd_mps2"]
        for _ in range(100):
            y = h.step()
            assert y["hv_open_request"] == 0, "contactors opened while moving (not critical)"
            assert y["torque_nm"] <= 0.0 and y["drive_enable"] == 0
            assert y["accel_cmd_mps2"] >= -THR.safe_stop_decel_mps2 - 1e-9
            assert y["accel_cmd_mps2"] - prev >= -THR.jerk_max_mps3 * DT_S - 1e-9
            prev = y["accel_cmd_mps2"]
        assert prev == pytest.approx(-THR.safe_stop_decel_mps2)
        h.set_speed(0.0)
        assert h.step()["hv_open_request"] == 1
        # latched: values back to normal, still open until an explicit reset at standstill
        h.set(**{self.FIELD: {"bms_cell_v_max": 3.9, "bms_cell_v_min": 3.8, "bms_cell_t_max_degc": 30.0,
                              "bms_isolation_kohm": 5000.0}[self.FIELD]})
        assert h.step(5)["hv_open_request"] == 1 and h.flag("bms_fault") == 1
        h.set(reset_request=1)
        y = h.step()
        assert y["hv_open_request"] == 0 and h.flag("bms_fault") == 0


class CriticalBase(BatteryThresholdBase):
    FLAG = "hv_open"
    SWEEP_SPEED = 10.0  # at standstill a plain fault opens the contactors too

    def test_opens_contactors_while_moving(self) -> None:
        h, y = self._tripped(getattr(THR, self.THRESHOLD), speed=0.0)
        assert y["hv_open_request"] == 1
        h = Harness()
        h.moving(15.0)
        h.set(**{self.FIELD: getattr(THR, self.THRESHOLD)})
        y = h.step()
        assert y["hv_open_request"] == 1 and y["torque_nm"] <= 0.0
        h.set(reset_request=1)
        assert h.step()["hv_open_request"] == 1, "reset accepted while moving"


class TestCellOvDerate(DerateBase):
    FIELD, THRESHOLD, ABOVE, NEXT = "bms_cell_v_max", "cell_ov_derate_v", True, "cell_ov_fault_v"


class TestCellOvFault(FaultBase):
    FIELD, THRESHOLD, ABOVE, NEXT = "bms_cell_v_max", "cell_ov_fault_v", True, "cell_ov_crit_v"


class TestCellOvCritical(CriticalBase):
    FIELD, THRESHOLD, ABOVE = "bms_cell_v_max", "cell_ov_crit_v", True


class TestCellUvDerate(DerateBase):
    FIELD, THRESHOLD, ABOVE, NEXT = "bms_cell_v_min", "cell_uv_derate_v", False, "cell_uv_fault_v"


class TestCellUvFault(FaultBase):
    FIELD, THRESHOLD, ABOVE, NEXT = "bms_cell_v_min", "cell_uv_fault_v", False, "cell_uv_crit_v"


class TestCellUvCritical(CriticalBase):
    FIELD, THRESHOLD, ABOVE = "bms_cell_v_min", "cell_uv_crit_v", False


class TestCellOtDerate(DerateBase):
    FIELD, THRESHOLD, ABOVE, NEXT = "bms_cell_t_max_degc", "cell_ot_derate_degc", True, "cell_ot_fault_degc"


class TestCellOtFault(FaultBase):
    FIELD, THRESHOLD, ABOVE, NEXT = "bms_cell_t_max_degc", "cell_ot_fault_degc", True, "cell_ot_crit_degc"


class TestCellOtCritical(CriticalBase):
    FIELD, THRESHOLD, ABOVE = "bms_cell_t_max_degc", "cell_ot_crit_degc", True


class TestIsolationWarn(DerateBase):
    FIELD, THRESHOLD, ABOVE, STRICT, NEXT = "bms_isolation_kohm", "iso_warn_kohm", False, True, "iso_fault_kohm"


class TestIsolationFault(FaultBase):
    FIELD, THRESHOLD, ABOVE, STRICT = "bms_isolation_kohm", "iso_fault_kohm", False, True


# ================================================================ power limits
class TestPowerLimits:
    @pytest.mark.parametrize("limit_kw", [0.0, 5.0, 20.0, 49.9, 50.0, 50.1, 150.0])
    def test_drive_torque_within_discharge_limit(self, limit_kw: float) -> None:
        h = Harness()
        h.moving(8.0)
        h.set(bms_discharge_limit_kw=limit_kw, adc_target_speed_mps=20.0, adc_target_accel_mps2=2.0)
        omega = 8.0 / THR.wheel_radius_m * THR.gear_ratio
        for _ in range(300):
            y = h.step()
            assert y["torque_nm"] * omega <= limit_kw * 1000.0 + 1e-6
        a_max = THR.a_max_empty_mps2 + (THR.a_max_rated_mps2 - THR.a_max_empty_mps2) * 500.0 / 1500.0
        accel_torque = (THR.curb_mass_kg + 500.0) * a_max * THR.wheel_radius_m / THR.gear_ratio
        assert y["torque_nm"] == pytest.approx(min(limit_kw * 1000.0 / omega, THR.torque_max_nm, accel_torque), abs=1e-6)

    @pytest.mark.parametrize("limit_kw", [0.0, 5.0, 20.0, 60.0])
    def test_regen_within_charge_limit(self, limit_kw: float) -> None:
        h = Harness()
        h.moving(15.0)
        h.set(bms_charge_limit_kw=limit_kw, adc_target_speed_mps=0.0, adc_target_accel_mps2=-5.0)
        omega = 15.0 / THR.wheel_radius_m * THR.gear_ratio
        for _ in range(300):
            y = h.step()
            assert -y["torque_nm"] * omega <= limit_kw * 1000.0 + 1e-6
        # what regen does not cover is braked by friction
        assert y["brake_pressure_bar"] > 0.0


# ================================================================ payload and speed
class TestPayload:
    @pytest.mark.parametrize("payload", sweep_values(THR.rated_payload_kg))
    def test_no_drive_away_above_rated(self, payload: float) -> None:
        h = Harness()
        h.set(cbc_payload_kg=payload)
        if payload > THR.rated_payload_kg:
            h.set(adc_control_request=0)
            h.step()
            h.set(adc_control_request=1)
            h.step()
        else:
            h.engage()
        h.set(adc_target_speed_mps=5.0, adc_target_accel_mps2=1.0)
        y = h.step(20)
        over = payload > THR.rated_payload_kg
        assert h.flag("overload") == int(over)
        if over:
            assert y["torque_nm"] <= 0.0 and y["drive_enable"] == 0
        else:
            assert y["torque_nm"] > 0.0

    @pytest.mark.parametrize("payload", [0.0, 375.0, 750.0, 1125.0, 1500.0])
    def test_speed_limit_scales_with_payload(self, payload: float) -> None:
        frac = payload / THR.rated_payload_kg
        limit = THR.v_max_empty_mps + (THR.v_max_rated_mps - THR.v_max_empty_mps) * frac
        for speed in sweep_values(limit + THR.overspeed_margin_mps):
            h = Harness()
            h.set(cbc_payload_kg=payload)
            h.moving(speed)
            assert h.flag("overspeed") == int(speed > limit + THR.overspeed_margin_mps), (payload, speed)
            if speed > limit + THR.overspeed_margin_mps:
                y = h.step()
                assert y["torque_nm"] <= 0.0 and y["drive_enable"] == 0

    @pytest.mark.parametrize("payload", [0.0, 750.0, 1500.0])
    def test_accel_limit_scales_with_payload(self, payload: float) -> None:
        frac = payload / THR.rated_payload_kg
        a_max = THR.a_max_empty_mps2 + (THR.a_max_rated_mps2 - THR.a_max_empty_mps2) * frac
        for a_req in sweep_values(a_max):
            h = Harness()
            h.set(cbc_payload_kg=payload)
            h.moving(5.0)
            h.set(adc_target_speed_mps=5.0, adc_target_accel_mps2=a_req)
            y = h.step(100)
            assert h.flag("accel_limit") == int(a_req > a_max), (payload, a_req)
            assert y["accel_cmd_mps2"] <= a_max + 1e-9


# ================================================================ standstill-gated actions
class StandstillGateBase:
    """An action allowed only at standstill: swept over speeds around standstill_speed_mps."""

    def allowed(self, speed: float) -> bool:
        raise NotImplementedError

    def expected(self, speed: float) -> bool:
        return speed <= THR.standstill_speed_mps

    def test_sweep(self) -> None:
        for speed in sweep_values(THR.standstill_speed_mps) + [0.0, 0.5, 5.0]:
            assert self.allowed(speed) == self.expected(speed), speed


class TestGearChangeAtStandstill(StandstillGateBase):
    def allowed(self, speed: float) -> bool:
        h = Harness()
        h.engage()
        h.set_speed(speed)
        h.set(adc_gear_request=1, brk_pressure_bar=THR.gear_brake_bar)
        y = h.step()
        assert h.flag("gear_mismatch") == 1 and y["torque_nm"] <= 0.0
        return bool(y["gear_request"] == 1)

    @pytest.mark.parametrize("pressure", sweep_values(THR.gear_brake_bar))
    def test_only_with_brake_held(self, pressure: float) -> None:
        h = Harness()
        h.engage()
        h.set(adc_gear_request=1, brk_pressure_bar=pressure)
        y = h.step()
        assert (y["gear_request"] == 1) == (pressure >= THR.gear_brake_bar)
        assert y["brake_hold"] == 1 and y["brake_pressure_bar"] >= THR.hold_brake_bar


class TestUnlockAtStandstillInP(StandstillGateBase):
    def allowed(self, speed: float) -> bool:
        h = Harness()
        h.engage()
        h.set_speed(speed)
        h.set(vcu_gear=0, adc_gear_request=0, adc_compartment_request3=2)
        y = h.step()
        assert h.flag("unlock_refused") == int(y["lock_request3"] != 2)
        return bool(y["lock_request3"] == 2 and y["door_release3"] == 1)

    @pytest.mark.parametrize("gear", [1, 2, 3])
    def test_not_in_other_gears(self, gear: int) -> None:
        h = Harness()
        h.set(vcu_gear=gear, adc_compartment_request1=2)
        y = h.step()
        assert y["lock_request1"] != 2 and y["door_release1"] == 0 and h.flag("unlock_refused") == 1


# ================================================================ steering
class TestSteering:
    def test_rate_limit_falls_with_speed(self) -> None:
        speeds = np.linspace(0.0, 30.0, 121)
        steps = []
        for v in speeds:
            h = Harness()
            h.moving(float(v))
            h.set(adc_steer_angle_deg=500.0)
            before = float(h.out[0]["steer_angle_deg"])
            y = h.step()
            steps.append(float(y["steer_angle_deg"]) - before)
            xs = [THR.steer_rate_v0_mps, THR.steer_rate_v1_mps, THR.steer_rate_v2_mps, THR.steer_rate_v3_mps]
            ys = [THR.steer_rate_0_degps, THR.steer_rate_1_degps, THR.steer_rate_2_degps, THR.steer_rate_3_degps]
            rate = math.floor(float(np.interp(v, xs, ys)) / 4.0) * 4.0
            assert steps[-1] == pytest.approx(rate * DT_S, abs=1e-9), v
            assert h.flag("steer_limit") == 1
        assert all(a >= b - 1e-12 for a, b in zip(steps, steps[1:]))

    @pytest.mark.parametrize("angle", sweep_values(THR.steer_angle_max_deg))
    def test_angle_clamped(self, angle: float) -> None:
        h = Harness()
        h.set(eps_steer_angle_deg=THR.steer_angle_max_deg - 1.0, adc_steer_angle_deg=angle)
        h.engage()
        y = h.step(50)
        assert y["steer_angle_deg"] == pytest.approx(min(angle, THR.steer_angle_max_deg))
        assert h.flag("steer_limit") == int(angle > THR.steer_angle_max_deg)

    def test_disabled_steering_tracks_measured_angle(self) -> None:
        h = Harness()
        h.set(eps_steer_angle_deg=123.4, adc_steer_angle_deg=-300.0, adc_control_request=0)
        y = h.step()
        assert y["steer_enable"] == 0 and y["steer_angle_deg"] == pytest.approx(123.4)


# ================================================================ plausibility
def assert_reset_only_at_standstill(h: Harness, flag: str) -> None:
    """A latched ``flag`` (van moving): a reset request is refused while moving, taken at standstill."""
    h.set(reset_request=1)
    h.step()
    assert h.flag(flag) == 1, "reset while moving"
    h.set(reset_request=0)
    h.set_speed(0.0)
    h.step()
    h.set(reset_request=1)
    h.step()
    assert h.flag(flag) == 0


class TestPlausibility:
    @pytest.mark.parametrize("speed", [0.0, 5.0, 20.0])
    def test_sweep_speed_difference(self, speed: float) -> None:
        tol = max(THR.plaus_abs_mps, THR.plaus_rel * speed)
        ticks = math.ceil(THR.plaus_time_s / DT_S) + 1
        for diff in sweep_values(tol):
            h = Harness()
            h.moving(speed) if speed else h.engage()
            h.set_speed(speed, speed + diff)
            h.step(ticks)
            # The kernel sees both speeds after their km/h and rpm round trips; judge what it sees.
            kph = speed * 3.6
            wheel = (kph + kph + kph + kph) / (4.0 * 3.6)
            motor = abs(rpm_for(speed + diff, THR)) * (2.0 * math.pi / 60.0) / THR.gear_ratio * THR.wheel_radius_m
            expected = abs(motor - wheel) > max(THR.plaus_abs_mps, THR.plaus_rel * max(wheel, motor))
            assert h.flag("plausibility") == int(expected), (speed, diff)

    def test_needs_persistence_then_latches(self) -> None:
        h = Harness()
        h.moving(10.0)
        h.set_speed(10.0, 14.0)
        n = math.ceil(THR.plaus_time_s / DT_S - 1e-9)
        h.step(n - 1)
        assert h.flag("plausibility") == 0
        h.step()
        assert h.flag("plausibility") == 1
        h.set_speed(10.0)
        y = h.step(10)
        assert h.flag("plausibility") == 1 and y["torque_nm"] <= 0.0 and y["drive_enable"] == 0
        assert_reset_only_at_standstill(h, "plausibility")


class TestActuatorResponse:
    """An EPS or MCU that does not follow what the gateway enabled ends control (latched)."""

    TICKS = math.ceil(THR.actuator_response_s / DT_S - 1e-9)

    @pytest.mark.parametrize("signal", ["eps_control_active", "mcu_torque_enabled"])
    def test_refusal_needs_persistence_then_latches(self, signal: str) -> None:
        h = Harness()
        y = h.moving(10.0)
        assert y["steer_enable"] == 1 and y["drive_enable"] == 1
        h.set(**{signal: 0})
        h.step(self.TICKS - 1)
        assert h.flag("actuator_response") == 0 and h.out[0]["control_allowed"] == 1
        y = h.step()
        assert h.flag("actuator_response") == 1
        assert y["control_allowed"] == 0 and y["steer_enable"] == 0 and y["drive_enable"] == 0
        assert y["torque_nm"] <= 0.0 and y["fault_latched"] == 1
        assert y["accel_cmd_mps2"] < 0.0, "the safe stop starts on the tick of the trip"
        h.set(**{signal: 1})
        y = h.step(10)
        assert h.flag("actuator_response") == 1 and y["control_allowed"] == 0, "latched"
        assert_reset_only_at_standstill(h, "actuator_response")

    @pytest.mark.parametrize("signal", ["eps_control_active", "mcu_torque_enabled"])
    def test_a_report_of_following_restarts_the_time(self, signal: str) -> None:
        h = Harness()
        h.moving(10.0)
        for _ in range(3):
            h.set(**{signal: 0})
            h.step(self.TICKS - 1)
            h.set(**{signal: 1})
            h.step()
        assert h.flag("actuator_response") == 0 and h.out[0]["control_allowed"] == 1

    @pytest.mark.parametrize("signal", ["eps_control_active", "mcu_torque_enabled"])
    def test_nothing_commanded_nothing_refused(self, signal: str) -> None:
        h = Harness()
        h.set(adc_control_request=0, **{signal: 0})
        y = h.step(2 * self.TICKS)
        assert y["steer_enable"] == 0 and y["drive_enable"] == 0
        assert h.flag("actuator_response") == 0
        h.set(**{signal: 1})
        assert h.engage()["control_allowed"] == 1

    @pytest.mark.parametrize("response_s", [0.005, THR.actuator_response_s])
    def test_eps_released_by_a_driver_is_an_override_not_a_refusal(self, response_s: float) -> None:
        # With a response time below one tick, one tick of "not active" would be a refusal.
        h = Harness(L.Thresholds(actuator_response_s=response_s))
        h.moving(10.0)
        h.set(eps_control_active=0, eps_driver_override=1)
        h.step(2 * self.TICKS)
        assert h.flag("actuator_response") == 0 and h.flag("driver_override") == 1

    @pytest.mark.parametrize(("signal", "message"), [("eps_control_active", "eps_status"),
                                                     ("mcu_torque_enabled", "mcu_status")])
    @pytest.mark.parametrize("timed_out", [False, True])
    @pytest.mark.parametrize("response_s", [0.005, THR.actuator_response_s])
    def test_judged_only_from_a_valid_status(self, signal: str, message: str, timed_out: bool,
                                             response_s: float) -> None:
        # An invalid or stale status is the PT interlocks' case (safe stop until standstill),
        # not a refusal (a latched fault that needs a reset); a status that cannot be read
        # disengages at once, so only a response time below one tick could mistake it.
        h = Harness(L.Thresholds(actuator_response_s=response_s))
        h.moving(10.0)
        h.set(**{signal: 0})
        h.set_valid(message, False, timed_out=timed_out)
        h.step(2 * self.TICKS)
        assert h.flag("actuator_response") == 0
        assert h.flag("pt_timeout" if timed_out else "pt_e2e") == 1

    def test_no_engage_while_latched(self) -> None:
        h = Harness()
        h.engage()
        h.set(mcu_torque_enabled=0)
        h.step(self.TICKS + 1)
        assert h.flag("actuator_response") == 1
        h.set(mcu_torque_enabled=1, adc_control_request=0)
        h.step()
        h.set(adc_control_request=1)
        assert h.step()["control_allowed"] == 0


class TestTorqueFollows:
    """The MCU's torque stays between zero and what the gateway sent, give or take the band."""

    TICKS = TestActuatorResponse.TICKS

    @staticmethod
    def cruising() -> Harness:
        h = Harness()
        y = h.moving(10.0)
        assert y["drive_enable"] == 1 and y["torque_nm"] == 0.0, "cruising at the target: no torque asked"
        return h

    @pytest.mark.parametrize("sign", [1.0, -1.0])
    def test_sweep_band_around_zero(self, sign: float) -> None:
        # Torque sent: 0 Nm. Unintended drive (+) or unintended braking (-) beyond the band trips.
        for excess in sweep_values(THR.torque_plaus_abs_nm):
            h = self.cruising()
            h.set(mcu_torque_actual_nm=sign * excess)
            h.step(self.TICKS)
            assert h.flag("actuator_response") == (1 if excess > THR.torque_plaus_abs_nm else 0), excess

    @pytest.mark.parametrize(("factor", "trips"), [(0.9, False), (1.1, True)])
    def test_relative_band_around_a_large_command(self, factor: float, trips: bool) -> None:
        thr = L.Thresholds(torque_plaus_abs_nm=10.0)
        h = Harness(thr)
        h.moving(5.0)
        h.set(adc_target_speed_mps=20.0, adc_target_accel_mps2=2.0)
        for _ in range(100):  # the torque ramps up to its cap; the MCU follows with 10 % excess
            y = h.step()
            h.set(mcu_torque_actual_nm=float(y["torque_nm"]) * (1.0 + 0.5 * thr.torque_plaus_rel))
        sent = float(h.out[0]["torque_nm"])
        assert sent * thr.torque_plaus_rel > thr.torque_plaus_abs_nm, "the relative band applies"
        assert h.flag("actuator_response") == 0
        for _ in range(self.TICKS):
            h.set(mcu_torque_actual_nm=float(h.out[0]["torque_nm"]) * (1.0 + factor * thr.torque_plaus_rel))
            h.step()
        assert h.flag("actuator_response") == (1 if trips else 0)

    def test_less_torque_than_sent_is_no_fault(self) -> None:
        h = Harness()
        h.moving(5.0)
        h.set(adc_target_speed_mps=20.0, adc_target_accel_mps2=2.0, mcu_torque_actual_nm=0.0)
        y = h.step(3 * self.TICKS)
        assert y["torque_nm"] > THR.torque_plaus_abs_nm and h.flag("actuator_response") == 0

    def test_needs_persistence_then_latches_and_stops(self) -> None:
        h = self.cruising()
        h.set(mcu_torque_actual_nm=300.0)
        h.step(self.TICKS - 1)
        assert h.flag("actuator_response") == 0 and h.out[0]["control_allowed"] == 1
        y = h.step()
        assert h.flag("actuator_response") == 1 and y["fault_latched"] == 1
        assert y["drive_enable"] == 0 and y["torque_nm"] == 0.0 and y["control_allowed"] == 0
        assert y["accel_cmd_mps2"] < 0.0 and y["brake_enable"] == 1, "safe stop on the tick of the trip"
        assert y["hv_open_request"] == 0, "contactors stay closed while the MCU may still obey"

    def test_torque_that_outlives_the_trip_opens_the_contactors(self) -> None:
        h = self.cruising()
        h.set(mcu_torque_actual_nm=300.0)
        h.step(2 * self.TICKS - 1)
        assert h.flag("actuator_response") == 1 and h.out[0]["hv_open_request"] == 0
        y = h.step()
        assert y["hv_open_request"] == 1 and h.flag("hv_open") == 1, "the MCU still drives: HV off"
        h.set(mcu_torque_actual_nm=0.0)
        assert h.step(10)["hv_open_request"] == 1, "latched"

    def test_torque_that_ends_with_the_trip_keeps_the_contactors(self) -> None:
        h = self.cruising()
        h.set(mcu_torque_actual_nm=300.0)
        h.step(self.TICKS)
        h.set(mcu_torque_actual_nm=0.0)
        y = h.step(3 * self.TICKS)
        assert h.flag("actuator_response") == 1 and y["hv_open_request"] == 0

    def test_checked_at_standstill_in_auto_without_a_driver(self) -> None:
        h = Harness()
        h.set(adc_control_request=0, mcu_torque_actual_nm=100.0)
        h.step(self.TICKS)
        assert h.out[0]["drive_enable"] == 0 and h.flag("actuator_response") == 1

    @pytest.mark.parametrize("cause", [{"vcu_drive_mode": 0, "vcu_driver_present": 1}, {"vcu_driver_present": 1}])
    def test_a_drivers_torque_is_not_judged(self, cause: dict) -> None:
        h = Harness()
        h.set(adc_control_request=0, mcu_torque_actual_nm=250.0, **cause)
        h.step(3 * self.TICKS)
        assert h.flag("actuator_response") == 0

    @pytest.mark.parametrize("timed_out", [False, True])
    def test_judged_only_from_a_valid_status(self, timed_out: bool) -> None:
        h = self.cruising()
        h.set(mcu_torque_actual_nm=300.0)
        h.set_valid("mcu_status", False, timed_out=timed_out)
        h.step(3 * self.TICKS)
        assert h.flag("actuator_response") == 0 and h.out[0]["hv_open_request"] == 0
        assert h.flag("pt_timeout" if timed_out else "pt_e2e") == 1

    def test_nan_torque_is_not_judged(self) -> None:
        h = self.cruising()
        h.set(mcu_torque_actual_nm=math.nan)
        h.step(3 * self.TICKS)
        assert h.flag("actuator_response") == 0


class TestBrakeFollows:
    """The BRK builds at least what the gateway sent, less the band, unless ABS modulates."""

    TICKS = TestActuatorResponse.TICKS

    @staticmethod
    def holding() -> Harness:
        """Engaged at standstill: the gateway holds the van on hold_brake_bar."""
        h = Harness()
        y = h.engage()
        y = h.step()
        assert y["brake_hold"] == 1 and y["brake_pressure_bar"] == THR.hold_brake_bar
        return h

    def test_sweep_band(self) -> None:
        sent = THR.hold_brake_bar
        floor = sent - max(THR.brake_plaus_abs_bar, THR.brake_plaus_rel * sent)
        for reported in sweep_values(floor):
            h = self.holding()
            h.set(brk_pressure_bar=reported)
            h.step(self.TICKS)
            assert h.flag("actuator_response") == (1 if reported < floor else 0), reported

    def test_needs_persistence_then_latches(self) -> None:
        h = self.holding()
        h.set(brk_pressure_bar=0.0)
        h.step(self.TICKS - 1)
        assert h.flag("actuator_response") == 0
        y = h.step()
        assert h.flag("actuator_response") == 1 and y["control_allowed"] == 0 and y["fault_latched"] == 1
        assert y["brake_enable"] == 1 and y["epb_request"] == L.EPB_APPLY, "held on the EPB instead"

    def test_missing_pressure_in_a_safe_stop_latches(self) -> None:
        h = Harness()
        h.moving(11.1)
        h.set_valid("adc_heartbeat", False, timed_out=True)
        h.set(brk_pressure_bar=0.0)
        y = h.step(self.TICKS)
        assert h.flag("actuator_response") == 0, "the jerk-limited stop asks for little pressure at first"
        y = h.step(2 * self.TICKS)
        assert y["brake_pressure_bar"] > 2 * THR.brake_plaus_abs_bar
        assert h.flag("actuator_response") == 1 and y["accel_cmd_mps2"] < 0.0

    def test_abs_modulating_is_no_fault(self) -> None:
        h = self.holding()
        h.set(brk_pressure_bar=0.0, brk_abs_active=1)
        h.step(3 * self.TICKS)
        assert h.flag("actuator_response") == 0
        h.set(brk_abs_active=0)
        h.step(self.TICKS)
        assert h.flag("actuator_response") == 1

    def test_nothing_sent_nothing_missing(self) -> None:
        h = Harness()
        h.set(adc_control_request=0, brk_pressure_bar=0.0)
        y = h.step(3 * self.TICKS)
        assert y["brake_enable"] == 0 and h.flag("actuator_response") == 0

    @pytest.mark.parametrize("timed_out", [False, True])
    def test_judged_only_from_a_valid_status(self, timed_out: bool) -> None:
        h = self.holding()
        h.set(brk_pressure_bar=0.0)
        h.set_valid("brk_status", False, timed_out=timed_out)
        h.step(3 * self.TICKS)
        assert h.flag("actuator_response") == 0


# ================================================================ stops: safe stop, door, e-stop
class StopBase:
    """Moving at SPEED, a cause appears: the stop is bounded and jerk-limited, EPB at standstill."""

    SPEED = 11.1  # 40 km/h
    DECEL: str
    FLAG: str
    EPB: bool = True

    def cause(self, h: Harness) -> None:
        raise NotImplementedError

    def test_bounded_stop(self) -> None:
        h = Harness()
        h.moving(self.SPEED)
        self.cause(h)
        speed = self.SPEED
        prev_a = float(h.out[0]["accel_cmd_mps2"])
        limit = getattr(THR, self.DECEL)
        t = 0.0
        while speed > THR.standstill_speed_mps and t < 30.0:
            y = h.step()
            a = float(y["accel_cmd_mps2"])
            assert a >= -limit - 1e-9, "deceleration above the bound"
            assert a - prev_a >= -THR.jerk_max_mps3 * DT_S - 1e-9, "jerk above the limit"
            assert y["torque_nm"] <= 0.0 and y["drive_enable"] == 0
            assert y["brake_enable"] == 1 or y["torque_nm"] < 0.0 or a >= 0.0, "decelerating without brake or regen"
            assert h.flag(self.FLAG) == 1
            prev_a = a
            speed = max(speed + a * DT_S, 0.0)
            h.set_speed(speed)
            t += DT_S
        assert speed <= THR.standstill_speed_mps
        h.set_speed(0.0)
        # bound: a jerk-limited ramp to -limit: stop time <= v/limit + limit/jerk
        assert t <= self.SPEED / limit + limit / THR.jerk_max_mps3 + 0.05
        y = h.step(3)
        assert y["epb_request"] == (L.EPB_APPLY if self.EPB else y["epb_request"])
        assert y["brake_hold"] == 1 or not self.EPB


class TestHeartbeatTimeout(StopBase):
    DECEL, FLAG = "safe_stop_decel_mps2", "adc_timeout"

    def cause(self, h: Harness) -> None:
        h.set_valid("adc_heartbeat", False, timed_out=True)


class TestCommandE2E(StopBase):
    DECEL, FLAG = "safe_stop_decel_mps2", "adc_e2e"

    def cause(self, h: Harness) -> None:
        h.set_valid("adc_command", False, timed_out=False)


class TestPtTimeout(StopBase):
    DECEL, FLAG = "safe_stop_decel_mps2", "pt_timeout"

    def cause(self, h: Harness) -> None:
        h.set_valid("eps_status", False, timed_out=True)


class TestMcuFault(StopBase):
    DECEL, FLAG = "safe_stop_decel_mps2", "mcu_fault"

    def cause(self, h: Harness) -> None:
        h.set(mcu_fault_level=2)


class TestEpsRefusesAtSpeed(StopBase):
    DECEL, FLAG = "safe_stop_decel_mps2", "actuator_response"

    def cause(self, h: Harness) -> None:
        h.set(eps_control_active=0)
        h.step(TestActuatorResponse.TICKS)
        assert h.flag("actuator_response") == 1


class TestDoorOpenAtSpeed(StopBase):
    DECEL, FLAG, EPB = "door_stop_decel_mps2", "door_open", False

    def cause(self, h: Harness) -> None:
        h.set(cbc_door_open4=1, cbc_all_doors_closed=0)


class TestDoorUnlockedAtSpeed(StopBase):
    DECEL, FLAG, EPB = "door_stop_decel_mps2", "door_open", False

    def cause(self, h: Harness) -> None:
        h.set(cbc_lock_state2=0, cbc_all_locked=0)


class TestBodyTimeout(StopBase):
    DECEL, FLAG, EPB = "door_stop_decel_mps2", "body_timeout", False

    def cause(self, h: Harness) -> None:
        h.set_valid("cbc_doors", False, timed_out=True)


class TestEStop:
    @pytest.mark.parametrize("source", ["adc_estop", "estop_remote", "estop_physical"])
    def test_latched_full_braking_reset_only_at_standstill(self, source: str) -> None:
        h = Harness()
        h.moving(11.1)
        h.set(**{source: 1})
        y = h.step()
        assert y["torque_nm"] == 0.0 and y["brake_emergency"] == 1
        assert y["brake_pressure_bar"] == THR.full_brake_bar and y["accel_cmd_mps2"] == -THR.decel_max_cmd_mps2
        h.set(**{source: 0})
        y = h.step()
        assert y["estop_active"] == 1 and y["epb_request"] != L.EPB_APPLY, "latch or EPB while moving"
        h.set(reset_request=1)
        assert h.step()["estop_active"] == 1, "reset accepted while moving"
        h.set(reset_request=0)
        h.set_speed(0.0)
        y = h.step()
        assert y["estop_active"] == 1 and y["epb_request"] == L.EPB_APPLY
        # no reset while the source is still asserted
        h.set(**{source: 1})
        h.set(reset_request=1)
        assert h.step()["estop_active"] == 1
        h.set(**{source: 0}, reset_request=0)
        h.step()
        h.set(reset_request=1)
        y = h.step()
        assert y["estop_active"] == 0
        # no engage without a new control request edge, then drive-away possible again
        h.set(reset_request=0, adc_target_speed_mps=5.0, adc_epb_request=2, brk_hold_active=1)
        assert h.step()["control_allowed"] == 0
        h.engage()
        y = h.step(5)
        assert y["epb_request"] == L.EPB_RELEASE and y["torque_nm"] > 0.0


# ================================================================ receive validity, default deny
TIMEOUT_FLAGS = {
    "adc_command": "adc_timeout", "adc_heartbeat": "adc_timeout", "vcu_status": "pt_timeout",
    "mcu_status": "pt_timeout", "brk_status": "pt_timeout", "brk_wheels": "pt_timeout",
    "eps_status": "pt_timeout", "bms_contactors": "pt_timeout", "cbc_doors": "body_timeout",
    "cbc_payload": "overload", "bms_limits": "degraded", "mcu_power": "degraded", "bms_cellv": "degraded",
    "bms_cellt": "degraded", "bms_status": "degraded",
}
E2E_FLAGS = {**TIMEOUT_FLAGS, "adc_command": "adc_e2e", "adc_heartbeat": "adc_e2e", "vcu_status": "pt_e2e",
             "mcu_status": "pt_e2e", "brk_status": "pt_e2e", "brk_wheels": "pt_e2e", "eps_status": "pt_e2e",
             "bms_contactors": "pt_e2e"}


@pytest.mark.parametrize("message", WATCHED)
@pytest.mark.parametrize("timed_out", [True, False])
def test_each_invalid_message_is_flagged(message: str, timed_out: bool) -> None:
    h = Harness()
    h.moving(5.0)
    h.set_valid(message, False, timed_out=timed_out)
    y = h.step()
    if message == "adc_cargo":
        h.set(vcu_gear=0, adc_compartment_request1=2)
        h.set_speed(0.0)
        assert h.step()["lock_request1"] != 2, "unlock from an invalid cargo request"
        return
    flag = (TIMEOUT_FLAGS if timed_out else E2E_FLAGS)[message]
    assert h.flag(flag) == 1
    if flag in ("adc_timeout", "adc_e2e", "pt_timeout", "pt_e2e", "body_timeout"):
        assert y["torque_nm"] <= 0.0 and y["drive_enable"] == 0
    if flag == "degraded":
        assert y["speed_limit_mps"] <= THR.limp_speed_mps + 1e-9


def test_nothing_active_by_default() -> None:
    h = Harness.__new__(Harness)
    Harness.__init__(h)
    h.inp[:] = L.new_inputs()  # every message timed out, every value zero
    y = h.step(10)
    assert y["drive_enable"] == 0 and y["torque_nm"] == 0.0 and y["steer_enable"] == 0
    assert y["gear_request"] == L.GEAR_NO_REQUEST and y["epb_request"] == L.EPB_NO_REQUEST
    assert y["cargo_enable"] == 0 and y["control_allowed"] == 0 and y["brake_enable"] == 0


def test_nan_inputs_deny() -> None:
    h = Harness()
    h.engage()
    h.set(adc_target_speed_mps=np.nan, adc_target_accel_mps2=np.nan, cbc_door_open1=np.nan)
    y = h.step(5)
    assert y["torque_nm"] <= 0.0 and y["drive_enable"] == 0 and h.flag("door_open") == 1


def test_torque_rate_limited() -> None:
    h = Harness()
    h.engage()
    h.set(adc_target_speed_mps=20.0, adc_target_accel_mps2=2.0)
    prev = 0.0
    for _ in range(100):
        t = float(h.step()["torque_nm"])
        assert t - prev <= THR.torque_rate_nm_per_s * DT_S + 1e-9
        prev = t
    slow = Harness(replace(THR, torque_rate_nm_per_s=100.0))
    slow.engage()
    slow.set(adc_target_speed_mps=20.0, adc_target_accel_mps2=2.0)
    assert float(slow.step(10)["torque_nm"]) == pytest.approx(100.0 * DT_S * 10)


def test_thresholds_table_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="cell_ov_derate_v < cell_ov_fault_v"):
        replace(THR, cell_ov_fault_v=4.0)
    with pytest.raises(ValueError, match="expected a finite number"):
        replace(THR, jerk_max_mps3=math.nan)


# ================================================================ no-propulsion conditions
NO_PROPULSION = [
    ({"vcu_ready": 0}, "hv_not_ready"),
    ({"bms_main_pos_state": 0}, "hv_not_ready"),
    ({"bms_main_neg_state": 2}, "hv_not_ready"),
    ({"vcu_epb_state": 1}, "epb_applied"),
    ({"vcu_epb_state": 2}, "epb_applied"),
    ({"vcu_gear": 2}, "gear_mismatch"),
    ({"eps_driver_override": 1}, "driver_override"),
    ({"vcu_brake_pedal_pressed": 1}, "driver_override"),
    ({"vcu_drive_mode": 0}, "mode_not_auto"),
    ({"vcu_driver_present": 1}, "mode_not_auto"),
    ({"adc_state": 4}, "mode_not_auto"),
    ({"brk_fault_level": 2}, "brk_fault"),
    ({"eps_fault_level": 3}, "eps_fault"),
    ({"cbc_fault_level": 2}, "door_open"),
]


@pytest.mark.parametrize(("inputs", "flag"), NO_PROPULSION)
def test_no_propulsion_from_standstill(inputs: dict, flag: str) -> None:
    h = Harness()
    h.engage()
    h.set(**inputs, adc_target_speed_mps=5.0, adc_target_accel_mps2=1.0)
    y = h.step(20)
    assert h.flag(flag) == 1
    assert y["torque_nm"] <= 0.0 and y["drive_enable"] == 0


@pytest.mark.parametrize("pedal", sweep_values(THR.pedal_override_pct))
def test_accelerator_override_threshold(pedal: float) -> None:
    h = Harness()
    h.engage()
    h.set(vcu_accel_pedal_pct=pedal)
    y = h.step()
    over = pedal > THR.pedal_override_pct
    assert h.flag("driver_override") == int(over) and y["control_allowed"] == int(not over)


def test_door_stop_brakes_with_friction_when_the_drive_is_disabled() -> None:
    """With DriveEnable off the MCU applies no torque: the brake must carry the whole stop."""
    h = Harness()
    h.moving(10.0)
    h.set(cbc_door_open2=1, cbc_all_doors_closed=0)
    y = h.step(int(2.0 / DT_S))  # past the jerk ramp
    assert y["drive_enable"] == 0 and y["torque_nm"] == 0.0
    mass_kg = THR.curb_mass_kg + float(h.inp["cbc_payload_kg"][0])
    full_stop_bar = mass_kg * THR.door_stop_decel_mps2 / THR.brake_gain_n_per_bar
    assert y["brake_enable"] == 1
    assert y["brake_pressure_bar"] == pytest.approx(full_stop_bar, rel=1e-6)


@pytest.mark.parametrize("payload_kg", [0.0, 400.0, 1500.0])
def test_stale_payload_brakes_with_the_last_valid_payload(payload_kg: float) -> None:
    """CBC silent during a door stop: the stop keeps its target deceleration (the last valid
    payload, not the rated one); a payload never seen counts as rated."""
    h = Harness()
    h.set(cbc_payload_kg=payload_kg)
    h.moving(10.0)
    h.set_valid("cbc_doors", False)  # door status lost -> doors treated as open
    h.set_valid("cbc_payload", False)
    y = h.step(int(2.0 / DT_S))
    assert h.flag("door_open") == 1 and h.flag("overload") == 1
    held_bar = (THR.curb_mass_kg + payload_kg) * THR.door_stop_decel_mps2 / THR.brake_gain_n_per_bar
    assert y["brake_pressure_bar"] == pytest.approx(held_bar, rel=1e-6)

    never = Harness()
    never.set_valid("cbc_payload", False)
    never.moving(10.0)
    never.set_valid("cbc_doors", False)
    y = never.step(int(2.0 / DT_S))
    assert never.flag("door_open") == 1
    rated_bar = (THR.curb_mass_kg + THR.rated_payload_kg) * THR.door_stop_decel_mps2 / THR.brake_gain_n_per_bar
    assert y["brake_pressure_bar"] == pytest.approx(rated_bar, rel=1e-6)
