"""Helpers of the control-loop tests: a nominal input record and a kernel harness."""

from __future__ import annotations

import math

import numpy as np

from vehicle_io.control import layout as L

DT_S = 0.01
WATCHED = [m for m, _ in L.WATCHED_MESSAGES]

NOMINAL = L.healthy_inputs()


def rpm_for(speed_mps: float, thr: L.Thresholds) -> float:
    return speed_mps / thr.wheel_radius_m * thr.gear_ratio * 60.0 / (2.0 * math.pi)


class Harness:
    """State + input + output records and the kernel, with a fake clock.

    The BRK follows: each tick it reports the pressure the gateway sent on the tick before
    (an ideal brake), until a test sets ``brk_pressure_bar`` itself; from then on the test's
    value stays (``follow_brake()`` hands the pressure back to the ideal brake).
    """

    def __init__(self, thresholds: L.Thresholds | None = None) -> None:
        from vehicle_io.control import _kernels

        self.k = _kernels
        self.thresholds = thresholds or L.Thresholds()
        self.thr = self.thresholds.to_record()
        self.state = L.new_state()
        self.inp = L.new_inputs()
        self.out = L.new_outputs()
        self.t_s = 100.0
        self.brake_follows = True
        for name, value in NOMINAL.items():
            self.inp[name] = value
        for m in WATCHED:
            self.set_valid(m, True)
        self.inp["dt_s"] = DT_S

    # --- inputs
    def set(self, **values: float) -> Harness:
        for name, value in values.items():
            self.inp[name] = value
        if "brk_pressure_bar" in values:
            self.brake_follows = False
        return self

    def follow_brake(self) -> Harness:
        self.brake_follows = True
        return self

    def set_valid(self, message: str, valid: bool, timed_out: bool | None = None) -> None:
        self.inp[f"ok_{message}"] = 1.0 if valid else 0.0
        self.inp[f"to_{message}"] = (0.0 if valid else 1.0) if timed_out is None else float(timed_out)

    def set_speed(self, speed_mps: float, motor_speed_mps: float | None = None) -> Harness:
        kph = speed_mps * 3.6
        for w in ("fl", "fr", "rl", "rr"):
            self.inp[f"brk_wheel_{w}_kph"] = kph
        self.inp["vcu_speed_kph"] = kph
        self.inp["vcu_standstill"] = 1 if speed_mps <= self.thresholds.standstill_speed_mps else 0
        motor = speed_mps if motor_speed_mps is None else motor_speed_mps
        self.inp["mcu_motor_speed_rpm"] = rpm_for(motor, self.thresholds)
        return self

    # --- running
    def step(self, n: int = 1) -> np.void:
        for _ in range(n):
            self.t_s += float(self.inp["dt_s"][0])
            self.inp["t_s"] = self.t_s
            if self.brake_follows:
                y = self.out[0]
                self.inp["brk_pressure_bar"] = y["brake_pressure_bar"] if y["brake_enable"] else 0.0
            self.k.step(self.state, self.inp, self.out, self.thr)
        return self.out[0]

    def engage(self) -> np.void:
        """Control request edge with everything nominal: engaged afterwards."""
        self.inp["adc_control_request"] = 0
        self.step()
        self.inp["adc_control_request"] = 1
        out = self.step()
        assert out["control_allowed"] == 1, self.active()
        return out

    def active(self) -> list[str]:
        flags = L.ilk_flags(self.out)
        return [L.INTERLOCK_NAMES[k] for k in range(L.N_INTERLOCKS) if flags[k]]

    def flag(self, name: str) -> int:
        return int(self.out[0][f"ilk_{name}"])

    def moving(self, speed_mps: float) -> np.void:
        """Engaged at standstill, then cruising at ``speed_mps`` (target = speed), one tick done."""
        self.set_speed(0.0)
        self.engage()
        self.set(adc_target_speed_mps=speed_mps)
        self.set_speed(speed_mps)
        out = self.step()
        assert out["control_allowed"] == 1, self.active()
        return out
