"""Simulated electric power steering (EPS): follows the steering-angle request.

Follows GW_SteerCommand while GW_SteerEnable is set, the frame is E2E VALID and the driver
does not override (``driver_torque_nm`` above ``OVERRIDE_TORQUE_NM``, a test knob: the van
has no driver model). Otherwise, and on command loss, it releases angle control.
"""

from __future__ import annotations

from collections.abc import Mapping

from hil.ecus.base import SimEcu, clip

__all__ = ["EpsEcu"]

OVERRIDE_TORQUE_NM = 3.0
#: Assist torque per deg/s of steering rate (a rough figure for the status message only).
ASSIST_NM_PER_DPS = 0.004


class EpsEcu(SimEcu):
    NODE = "EPS"
    COMMANDS = ("GW_SteerCommand",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.driver_torque_nm = 0.0
        self.control_active = 0

    @property
    def driver_override(self) -> bool:
        return abs(self.driver_torque_nm) > OVERRIDE_TORQUE_NM

    def signals(self, message: str, t_s: float) -> dict[str, float]:
        van = self.van
        rate_dps = van.read("steer_rate_dps")
        return {
            "EPS_FaultLevel": 0.0,
            "EPS_ControlActive": float(self.control_active),
            "EPS_DriverOverride": float(self.driver_override),
            "EPS_SteerAngle": van.read("steer_angle_deg"),
            "EPS_SteerRate": rate_dps,
            "EPS_DriverTorque": self.driver_torque_nm,
            "EPS_MotorTorque": clip(rate_dps * ASSIST_NM_PER_DPS, -5.0, 5.0),
        }

    def on_command(self, message: str, values: Mapping[str, float], t_s: float) -> None:
        if values["GW_SteerEnable"] == 1 and not self.driver_override:
            self.control_active = 1
            self.van.command(
                steer_enable=1,
                steer_angle_request_deg=values["GW_SteerAngleRequest"],
                steer_rate_limit_dps=values["GW_SteerRateLimit"],
            )
        else:
            self._release()

    def on_command_lost(self, message: str, t_s: float) -> None:
        self._release()

    def _release(self) -> None:
        self.control_active = 0
        self.van.command(steer_enable=0)
