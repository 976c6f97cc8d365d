"""Simulated vehicle control unit (VCU): readiness, drive mode, gear and parking brake.

Follows GW_DriveCommand (E2E VALID only): gear changes at standstill and EPB release need
GW_DriveEnable; an EPB apply is honoured whenever the command is valid (it is the safe
direction). Key-on: the VCU requests HV (``hv_request``) from start-up.
"""

from __future__ import annotations

from collections.abc import Mapping

from hil.ecus.base import SimEcu

__all__ = ["VcuEcu"]

GEAR_NO_REQUEST = 7
MODE_NO_REQUEST = 7
EPB_APPLY, EPB_RELEASE = 1, 2
MODE_AUTO = 1
#: Speed below which the VCU reports standstill and accepts a gear change.
STANDSTILL_MPS = 0.1


class VcuEcu(SimEcu):
    NODE = "VCU"
    COMMANDS = ("GW_DriveCommand",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.drive_mode = MODE_AUTO  # driverless van: no seat switch, starts in Auto
        self.driver_present = 0
        self.physical_estop_pressed = False  # the mushroom switch on the van (a test knob)
        self.van.command(hv_request=1)

    def signals(self, message: str, t_s: float) -> dict[str, float]:
        van = self.van
        speed_mps = abs(van.read("speed_mps"))
        return {
            "VCU_Ready": float(van.read("hv_active") and van.read("motor_torque_enabled")),
            "VCU_Standstill": float(van.read("standstill")),
            # The driver's pedal, not the brake pressure: the gateway's own hold brake must not
            # read as a driver override. The Z10 drives itself; a driver is simulated with an
            # EcuFault override of these signals.
            "VCU_BrakePedalPressed": 0.0,
            "VCU_DriverPresent": float(self.driver_present),
            "VCU_DriveMode": float(self.drive_mode),
            "VCU_Gear": float(van.read("gear")),
            "VCU_EpbState": float(van.read("epb_state")),
            "VCU_VehicleSpeed": speed_mps * 3.6,
            "VCU_AccelPedal": 0.0,
            "VCU_BrakePedal": 0.0,
            "VCU_FaultLevel": 0.0,
            "VCU_PhysicalEStop": float(self.physical_estop_pressed),
        }

    def on_command(self, message: str, values: Mapping[str, float], t_s: float) -> None:
        enabled = values["GW_DriveEnable"] == 1
        inputs: dict[str, float] = {}
        mode = int(values["GW_DriveModeRequest"])
        if enabled and mode in (0, 1, 2):
            self.drive_mode = mode
        gear = int(values["GW_GearRequest"])
        if enabled and gear != GEAR_NO_REQUEST and gear != self.van.read("in_gear_request"):
            if abs(self.van.read("speed_mps")) < STANDSTILL_MPS:
                inputs["gear_request"] = gear
        epb = int(values["GW_EpbRequest"])
        if epb == EPB_APPLY or (epb == EPB_RELEASE and enabled):
            inputs["epb_request"] = epb
        if inputs:
            self.van.command(**inputs)
