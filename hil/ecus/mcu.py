"""Simulated motor controller (MCU / inverter): executes the torque request.

Torque from GW_DriveCommand only while GW_DriveEnable is set and the frame is E2E VALID,
limited to the motor envelope the van reports and to zero propulsion above GW_SpeedLimit;
anything else, and command loss, gives zero torque.
"""

from __future__ import annotations

from collections.abc import Mapping

from hil.ecus.base import SimEcu, clip

__all__ = ["McuEcu"]

GEAR_R, GEAR_D = 1, 3


class McuEcu(SimEcu):
    NODE = "MCU"
    COMMANDS = ("GW_DriveCommand",)

    def signals(self, message: str, t_s: float) -> dict[str, float]:
        van = self.van
        if message == "MCU_Status":
            peak = van.param("motor_peak_torque_nm")
            return {
                "MCU_FaultLevel": 0.0,
                "MCU_TorqueEnabled": float(van.read("motor_torque_enabled")),
                "MCU_Derating": float(van.read("motor_torque_limit_motoring_nm") < 0.999 * peak),
                "MCU_MotorSpeed": van.read("motor_speed_rpm"),
                "MCU_TorqueActual": van.read("motor_torque_nm"),
                "MCU_InverterTemp": van.read("inverter_temp_c"),
                "MCU_MotorTemp": van.read("motor_temp_c"),
            }
        return {
            "MCU_DcVoltage": van.read("link_voltage_v"),
            "MCU_DcCurrent": van.read("dc_current_a"),
            "MCU_TorqueLimitMotoring": van.read("motor_torque_limit_motoring_nm"),
            "MCU_TorqueLimitRegen": van.read("motor_torque_limit_regen_nm"),
        }

    def on_command(self, message: str, values: Mapping[str, float], t_s: float) -> None:
        torque_nm = 0.0
        if values["GW_DriveEnable"] == 1:
            van = self.van
            torque_nm = clip(values["GW_TorqueRequest"], -van.read("motor_torque_limit_regen_nm"),
                             van.read("motor_torque_limit_motoring_nm"))
            gear = van.read("gear")
            speed_kph = abs(van.read("speed_mps")) * 3.6
            # Propulsion is torque along the engaged gear's direction of travel.
            propulsive = (gear == GEAR_D and torque_nm > 0) or (gear == GEAR_R and torque_nm < 0)
            if propulsive and speed_kph > values["GW_SpeedLimit"]:
                torque_nm = 0.0
        self.van.command(motor_torque_request_nm=torque_nm)

    def on_command_lost(self, message: str, t_s: float) -> None:
        self.van.command(motor_torque_request_nm=0.0)
