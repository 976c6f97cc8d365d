"""Simulated vehicle control unit (VCU): readiness, drive mode, gear and parking brake.

Follows GW_DriveCommand (E2E VALID only). GW_DriveEnable gates torque and the drive-mode
request; it does not gate the gear or the parking brake, because the gateway withholds
DriveEnable exactly while the gear or the EPB is not yet where the autonomy wants it (a VCU
that waited for DriveEnable to shift would deadlock with it). The VCU's own plausibility
instead: a gear change only at standstill with the service brake held (line pressure at or
above ``GEAR_BRAKE_BAR``) or the EPB applied; an EPB release only at standstill or when the
van is already rolling with the EPB released; an EPB apply is honoured whenever the command
is valid (it is the safe direction). Command lost (after one was received): the EPB is
applied once the van stands still (the BRK's fallback stops it). Key-on: the VCU requests HV (``hv_request``) from
start-up.
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
#: Brake line pressure the VCU takes as "brake held" for a gear change (the gateway holds the
#: van with more than this; vehicle_io.control.layout gear_brake_bar is the gateway's side).
GEAR_BRAKE_BAR = 5.0
EPB_APPLIED = 1


class VcuEcu(SimEcu):
    NODE = "VCU"
    COMMANDS = ("GW_DriveCommand",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.drive_mode = MODE_AUTO  # driverless van: no seat switch, starts in Auto
        self.driver_present = 0
        self.physical_estop_pressed = False  # the mushroom switch on the van (a test knob)
        self.command_lost = False  # GW_DriveCommand lost: EPB at standstill
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
        self.command_lost = False
        enabled = values["GW_DriveEnable"] == 1
        inputs: dict[str, float] = {}
        mode = int(values["GW_DriveModeRequest"])
        if enabled and mode in (0, 1, 2):
            self.drive_mode = mode
        van = self.van
        standstill = abs(van.read("speed_mps")) < STANDSTILL_MPS
        gear = int(values["GW_GearRequest"])
        if gear != GEAR_NO_REQUEST and gear != van.read("in_gear_request") and standstill:
            held = van.read("brake_pressure_bar") >= GEAR_BRAKE_BAR or van.read("epb_state") == EPB_APPLIED
            if held:
                inputs["gear_request"] = gear
        epb = int(values["GW_EpbRequest"])
        if epb == EPB_APPLY or (epb == EPB_RELEASE and standstill):
            inputs["epb_request"] = epb
        if inputs:
            self.van.command(**inputs)

    def on_command_lost(self, message: str, t_s: float) -> None:
        """The gateway went silent: park the van once the BRK's fallback has stopped it."""
        self.command_lost = True

    def on_supervise(self, t_s: float) -> None:
        """Command lost: apply the EPB once the van stands still."""
        if self.command_lost and self.van.read("standstill") and self.van.read("epb_state") != EPB_APPLIED:
            self.van.command(epb_request=EPB_APPLY)
