"""Stateful property tests of the control kernel: whatever the input sequence, no forbidden output.

Properties checked after every tick (opendbc safety style):

* never positive torque (nor drive enable) while a door is open, a compartment unlocked or
  the door status invalid;
* nothing propels while the e-stop is latched: torque 0, full emergency braking;
* torque magnitude grows by at most torque_rate*dt per tick (dropping towards 0 is free);
* steering angle moves by at most the speed-dependent rate limit * dt between two enabled
  ticks, and stays within +-steer_angle_max_deg;
* ADC or powertrain inputs stale / E2E invalid -> propulsion, steering, gear and unlock
  outputs inactive;
* regen power never above the BMS charge limit, drive power never above the discharge limit;
* unlock only at standstill in P;
* an actuator that does not follow for actuator_response_s (EPS not active, MCU not enabled,
  MCU torque beyond the band around what was sent, BRK pressure below it) ends control.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ctl_helpers import WATCHED, Harness

from vehicle_io.control import layout as L

PT_MESSAGES = ("vcu_status", "mcu_status", "brk_status", "brk_wheels", "eps_status", "bms_contactors")
EPS = 1e-9


class ControlKernelMachine(RuleBasedStateMachine):
    @initialize(engage=st.booleans())
    def setup(self, engage: bool) -> None:
        self.h = Harness()
        self.thr = self.h.thresholds
        self.prev_torque = 0.0
        self.prev_steer_enable = 0
        self.prev_drive_enable = 0
        self.prev_steer = 0.0
        self.eps_refused_s = 0.0
        self.mcu_refused_s = 0.0
        self.torque_excess_s = 0.0
        self.brake_deficit_s = 0.0
        self.prev_brake_bar = 0.0
        if engage:
            self.h.engage()
            self._remember()

    # ------------------------------------------------------------------ input rules
    @rule(speed=st.floats(0.0, 30.0), motor_off=st.sampled_from([0.0, 0.0, 0.0, 3.0, -2.0]))
    def speed(self, speed: float, motor_off: float) -> None:
        self.h.set_speed(speed, max(speed + motor_off, 0.0))

    @rule(door=st.integers(1, 6), open_=st.booleans(), lock=st.sampled_from([0, 1, 1, 2, 3]))
    def door(self, door: int, open_: bool, lock: int) -> None:
        self.h.set(**{f"cbc_door_open{door}": int(open_), f"cbc_lock_state{door}": lock})
        self.h.set(cbc_all_doors_closed=int(not open_))

    @rule(source=st.sampled_from(["adc_estop", "estop_remote", "estop_physical"]), on=st.booleans())
    def estop(self, source: str, on: bool) -> None:
        self.h.set(**{source: int(on)})

    @rule()
    def reset(self) -> None:
        self.h.set(reset_request=1)

    @rule(message=st.sampled_from(WATCHED), kind=st.sampled_from(["ok", "timeout", "e2e"]))
    def validity(self, message: str, kind: str) -> None:
        if kind == "ok":
            self.h.set_valid(message, True)
        else:
            self.h.set_valid(message, False, timed_out=kind == "timeout")

    @rule(request=st.integers(0, 1))
    def control_request(self, request: int) -> None:
        self.h.set(adc_control_request=request)

    @rule(speed=st.floats(0.0, 30.0), accel=st.floats(-8.0, 4.0))
    def longitudinal_request(self, speed: float, accel: float) -> None:
        self.h.set(adc_target_speed_mps=speed, adc_target_accel_mps2=accel)

    @rule(angle=st.floats(-540.0, 540.0), rate=st.sampled_from([0.0, 40.0, 400.0, 1000.0]))
    def steer_request(self, angle: float, rate: float) -> None:
        self.h.set(adc_steer_angle_deg=angle, adc_steer_rate_limit_degps=rate)

    @rule(angle=st.floats(-780.0, 780.0), override=st.booleans())
    def eps(self, angle: float, override: bool) -> None:
        self.h.set(eps_steer_angle_deg=angle, eps_driver_override=int(override))

    @rule(gear=st.sampled_from([0, 1, 2, 3, 7]), actual=st.sampled_from([0, 1, 2, 3]),
          epb=st.sampled_from([0, 1, 2]), epb_state=st.sampled_from([0, 1, 2]))
    def gear(self, gear: int, actual: int, epb: int, epb_state: int) -> None:
        self.h.set(adc_gear_request=gear, vcu_gear=actual, adc_epb_request=epb, vcu_epb_state=epb_state)

    @rule(compartment=st.integers(1, 6), request=st.integers(0, 3))
    def cargo(self, compartment: int, request: int) -> None:
        self.h.set(**{f"adc_compartment_request{compartment}": request})

    @rule(payload=st.floats(0.0, 2000.0), fault=st.booleans())
    def payload(self, payload: float, fault: bool) -> None:
        self.h.set(cbc_payload_kg=payload, cbc_load_cell_fault=int(fault))

    @rule(vmax=st.floats(3.0, 4.5), vmin=st.floats(2.3, 4.0), tmax=st.floats(-20.0, 80.0),
          iso=st.floats(0.0, 6000.0), dis=st.floats(0.0, 300.0), chg=st.floats(0.0, 300.0))
    def battery(self, vmax: float, vmin: float, tmax: float, iso: float, dis: float, chg: float) -> None:
        self.h.set(bms_cell_v_max=vmax, bms_cell_v_min=vmin, bms_cell_t_max_degc=tmax,
                   bms_isolation_kohm=iso, bms_discharge_limit_kw=dis, bms_charge_limit_kw=chg)

    @rule(eps_active=st.booleans(), mcu_enabled=st.booleans())
    def actuators(self, eps_active: bool, mcu_enabled: bool) -> None:
        self.h.set(eps_control_active=int(eps_active), mcu_torque_enabled=int(mcu_enabled))

    @rule(torque=st.one_of(st.just(0.0), st.floats(-450.0, 450.0)))
    def mcu_torque(self, torque: float) -> None:
        self.h.set(mcu_torque_actual_nm=torque)

    @rule(pressure=st.one_of(st.none(), st.floats(0.0, 200.0)), abs_active=st.booleans())
    def brake_report(self, pressure: float | None, abs_active: bool) -> None:
        if pressure is None:
            self.h.follow_brake()  # the ideal brake: what was sent
        else:
            self.h.set(brk_pressure_bar=pressure)
        self.h.set(brk_abs_active=int(abs_active))

    @rule(level=st.integers(0, 3), ecu=st.sampled_from(["mcu", "brk", "eps", "bms", "vcu", "cbc"]))
    def fault_level(self, level: int, ecu: str) -> None:
        self.h.set(**{f"{ecu}_fault_level": level})

    # ------------------------------------------------------------------ ticking + properties
    @rule(n=st.integers(1, 8))
    def tick(self, n: int) -> None:
        for _ in range(n):
            self.h.step()
            self.h.set(reset_request=0)
            self._check_tick()
            self._remember()

    def _remember(self) -> None:
        y = self.h.out[0]
        self.prev_torque = float(y["torque_nm"])
        self.prev_steer_enable = int(y["steer_enable"])
        self.prev_drive_enable = int(y["drive_enable"])
        self.prev_steer = float(y["steer_angle_deg"])
        self.prev_brake_bar = float(y["brake_pressure_bar"]) if y["brake_enable"] else 0.0

    def _check_tick(self) -> None:
        h, y, u, thr = self.h, self.h.out[0], self.h.inp[0], self.thr
        torque = float(y["torque_nm"])
        dt = float(u["dt_s"])
        # an actuator that refused what was commanded for actuator_response_s is not trusted:
        # no steering, no drive from then on (until a reset at standstill)
        eps_refused = (self.prev_steer_enable == 1 and u["ok_eps_status"] >= 0.5
                       and not u["eps_control_active"] >= 0.5 and not u["eps_driver_override"] >= 0.5)
        self.eps_refused_s = self.eps_refused_s + dt if eps_refused else 0.0
        mcu_refused = (self.prev_drive_enable == 1 and u["ok_mcu_status"] >= 0.5
                       and not u["mcu_torque_enabled"] >= 0.5)
        self.mcu_refused_s = self.mcu_refused_s + dt if mcu_refused else 0.0
        # torque outside [min(sent, 0) - band, max(sent, 0) + band] while drive was enabled
        # (the kernel judges more often: also while responsible, or in Auto without a driver)
        sent = self.prev_torque
        band = max(thr.torque_plaus_abs_nm, thr.torque_plaus_rel * abs(sent))
        actual = float(u["mcu_torque_actual_nm"])
        excess = (self.prev_drive_enable == 1 and u["ok_mcu_status"] >= 0.5
                  and (actual > max(sent, 0.0) + band or actual < min(sent, 0.0) - band))
        self.torque_excess_s = self.torque_excess_s + dt if excess else 0.0
        p_sent = self.prev_brake_bar
        deficit = (p_sent > 0.0 and u["ok_brk_status"] >= 0.5 and not u["brk_abs_active"] >= 0.5
                   and float(u["brk_pressure_bar"]) < p_sent - max(thr.brake_plaus_abs_bar, thr.brake_plaus_rel * p_sent))
        self.brake_deficit_s = self.brake_deficit_s + dt if deficit else 0.0
        if max(self.eps_refused_s, self.mcu_refused_s, self.torque_excess_s,
               self.brake_deficit_s) >= thr.actuator_response_s:
            assert y["steer_enable"] == 0 and y["drive_enable"] == 0 and torque <= 0.0, "refusing actuator kept"
            assert y["control_allowed"] == 0 and y["ilk_actuator_response"] == 1
        doors_bad = (u["ok_cbc_doors"] < 0.5 or u["cbc_all_doors_closed"] < 0.5 or u["cbc_all_locked"] < 0.5
                     or any(u[f"cbc_door_open{i}"] != 0 for i in range(1, 7))
                     or any(u[f"cbc_lock_state{i}"] != 1 for i in range(1, 7)))
        if doors_bad:
            assert torque <= 0.0 and y["drive_enable"] == 0, "positive torque with a door open/unlocked"
        if h.state[0]["lat_estop"]:
            assert torque == 0.0 and y["drive_enable"] == 0, "drive with e-stop latched"
            assert y["brake_emergency"] == 1 and y["brake_pressure_bar"] == thr.full_brake_bar
        if any(u[f"estop_{s}"] >= 0.5 for s in ("remote", "physical")) or (
                u["ok_adc_command"] >= 0.5 and u["adc_estop"] >= 0.5):
            assert y["estop_active"] == 1
        # torque rate
        prev = self.prev_torque if self.prev_torque * torque >= 0.0 else 0.0
        if abs(torque) > abs(prev):
            assert abs(torque) - abs(prev) <= thr.torque_rate_nm_per_s * dt + 1e-6
        # steering rate and range
        if y["steer_enable"]:
            assert abs(y["steer_angle_deg"]) <= thr.steer_angle_max_deg + EPS
            assert y["steer_rate_limit_degps"] <= _rate_at(h, float(y["speed_mps"])) + 1e-6
            if self.prev_steer_enable:
                step = abs(float(y["steer_angle_deg"]) - self.prev_steer)
                assert step <= _rate_at(h, float(y["speed_mps"])) * dt + 1e-6, "steering rate"
        # stale / invalid inputs -> outputs inactive
        invalid = any(u[f"ok_{m}"] < 0.5 for m in ("adc_command", "adc_heartbeat") + PT_MESSAGES)
        if invalid:
            assert y["drive_enable"] == 0 and torque == 0.0 and y["steer_enable"] == 0
            assert y["gear_request"] == L.GEAR_NO_REQUEST and y["control_allowed"] == 0
            assert y["epb_request"] != L.EPB_RELEASE
        # BMS power limits
        omega = max(abs(float(u["mcu_motor_speed_rpm"])) * 2 * math.pi / 60, thr.omega_min_radps)
        if torque > 0:
            assert torque * omega <= float(u["bms_discharge_limit_kw"]) * 1000.0 + 1e-6
            assert torque <= float(u["mcu_torque_limit_motoring_nm"]) + EPS
        if torque < 0:
            assert -torque * omega <= float(u["bms_charge_limit_kw"]) * 1000.0 + 1e-6
            assert -torque <= float(u["mcu_torque_limit_regen_nm"]) + EPS
        # unlock only at standstill in P
        for i in range(1, 7):
            if y[f"lock_request{i}"] == L.LOCK_UNLOCK or y[f"door_release{i}"]:
                assert y["standstill"] == 1 and u["vcu_gear"] == L.GEAR_P and u["ok_vcu_status"] >= 0.5
                assert float(u["brk_wheel_fl_kph"]) / 3.6 <= thr.standstill_speed_mps + EPS

    @invariant()
    def never_nan(self) -> None:
        y = self.h.out[0]
        for name in ("torque_nm", "brake_pressure_bar", "steer_angle_deg", "accel_cmd_mps2"):
            assert y[name] == y[name], name


def _rate_at(h: Harness, speed: float) -> float:
    from vehicle_io.control import _kernels

    return float(_kernels.steer_rate_limit_degps(max(speed, 0.0) if speed >= 0 else 1e3, h.thr))


ControlKernelMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestControlKernelStateful = ControlKernelMachine.TestCase
