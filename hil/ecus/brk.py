"""Simulated brake / ESC controller (BRK): friction brake pressure, standstill hold, wheel speeds.

Follows GW_BrakeCommand while E2E VALID: GW_BrakeEmergency -> the van's maximum pressure;
GW_BrakeEnable -> GW_BrakePressureRequest, raised to ``HOLD_PRESSURE_BAR`` when
GW_BrakeHoldRequest is set at standstill. Disabled command: no external braking. Lost
command (the gateway went silent after it had sent one): the Z10 has no driver to hand the
brake back to, so the BRK runs its own minimal-risk manoeuvre: ``FALLBACK_PRESSURE_BAR``
(a controlled stop, about 2.5 m/s2 at rated payload and 3.8 m/s2 empty) and, at
standstill, the hold pressure, until a valid command arrives again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from hil.ecus.base import SimEcu

__all__ = ["BrkEcu"]

#: Pressure that holds a fully loaded van on the steepest rated grade.
HOLD_PRESSURE_BAR = 30.0
#: Controlled-stop pressure when the gateway's command is lost: 25 bar x 422.5 N/bar
#: (z10_params brake gain) = 10.6 kN, on 4,250 kg (rated payload) 2.5 m/s2, below the
#: gateway's own safe-stop 3 m/s2 so the fallback is never harsher than a commanded stop.
FALLBACK_PRESSURE_BAR = 25.0


class BrkEcu(SimEcu):
    NODE = "BRK"
    COMMANDS = ("GW_BrakeCommand",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.control_active = 0
        self.hold_active = 0
        self.fallback_active = 0  # command lost: minimal-risk stop of the BRK's own

    def signals(self, message: str, t_s: float) -> dict[str, float]:
        van = self.van
        if message == "BRK_Status":
            return {
                "BRK_FaultLevel": 0.0,
                "BRK_AbsActive": float(van.read("abs_active")),
                "BRK_ControlActive": float(self.control_active),
                "BRK_Pressure": van.read("brake_pressure_bar"),
                "BRK_HoldActive": float(self.hold_active),
                "BRK_LongAccel": van.read("accel_mps2"),
                "BRK_YawRate": math.degrees(van.read("yaw_rate_radps")),
            }
        return {
            "BRK_WheelSpeedsValid": 1.0,
            "BRK_WheelSpeedFL": abs(van.read("wheel_speed_fl_mps")) * 3.6,
            "BRK_WheelSpeedFR": abs(van.read("wheel_speed_fr_mps")) * 3.6,
            "BRK_WheelSpeedRL": abs(van.read("wheel_speed_rl_mps")) * 3.6,
            "BRK_WheelSpeedRR": abs(van.read("wheel_speed_rr_mps")) * 3.6,
        }

    def on_command(self, message: str, values: Mapping[str, float], t_s: float) -> None:
        van = self.van
        pressure_bar = 0.0
        self.hold_active = 0
        self.fallback_active = 0
        if values["GW_BrakeEmergency"] == 1:
            pressure_bar = van.param("brake_pressure_max_bar")
            self.control_active = 1
        elif values["GW_BrakeEnable"] == 1:
            pressure_bar = values["GW_BrakePressureRequest"]
            if values["GW_BrakeHoldRequest"] == 1 and van.read("standstill"):
                pressure_bar = max(pressure_bar, HOLD_PRESSURE_BAR)
                self.hold_active = 1
            self.control_active = 1
        else:
            self.control_active = 0
        van.command(brake_pressure_request_bar=min(pressure_bar, van.param("brake_pressure_max_bar")))

    def on_command_lost(self, message: str, t_s: float) -> None:
        self.control_active = 0
        self.fallback_active = 1
        self._fallback()

    def on_supervise(self, t_s: float) -> None:
        """While the fallback runs: brake, then hold once stopped."""
        if self.fallback_active:
            self._fallback()

    def _fallback(self) -> None:
        van = self.van
        if van.read("standstill"):
            self.hold_active = 1
            pressure_bar = max(FALLBACK_PRESSURE_BAR, HOLD_PRESSURE_BAR)
        else:
            self.hold_active = 0
            pressure_bar = FALLBACK_PRESSURE_BAR
        van.command(brake_pressure_request_bar=pressure_bar)
