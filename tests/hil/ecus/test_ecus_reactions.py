"""Simulated ECUs react to gateway commands, and only to E2E-valid ones."""

from __future__ import annotations

import pytest

from hil.ecus.gwstub import GatewayStub

LOCKED, UNLOCKED = 1, 0


def _decoded(rig, rec, name):
    return [(f.t_ps / 1e12, rig.db.decode_message(name, f.data, decode_choices=False))
            for f in rig.frames_of(rec, [name]).get(name, [])]


def test_cargo_unlock_reaches_unlocked_after_the_actuator_time(make_rig) -> None:
    rig = make_rig(seed=3)
    stub = GatewayStub(rig, messages=["GW_CargoCommand"])
    rig.run_for(0.5)  # the CBC's E2E receiver reaches VALID
    rec = rig.record()
    t_cmd = rig.t_s
    stub.set("GW_CargoCommand", GW_CompartmentLockRequest2=2)
    rig.run_for(1.5)
    frames = _decoded(rig, rec, "CBC_DoorStatus")
    actuation_s = rig.van.param("lock_actuation_time_s")
    states = [(t, d["CBC_LockState2"]) for t, d in frames]
    first_unlocked = next(t for t, s in states if s == UNLOCKED)
    # one command cycle to arrive, the actuator time, one status cycle to report
    assert actuation_s <= first_unlocked - t_cmd <= actuation_s + 0.05 + 0.02 + 0.01
    assert all(s != UNLOCKED for t, s in states if t < t_cmd + actuation_s)
    assert all(s == UNLOCKED for t, s in states if t > first_unlocked)
    # the other compartments stay locked, and the summary bit says not all locked
    assert all(d["CBC_LockState1"] == LOCKED for _, d in frames)
    assert frames[-1][1]["CBC_AllLocked"] == 0


def test_bad_crc_cargo_command_is_ignored(make_rig) -> None:
    rig = make_rig(seed=3)
    stub = GatewayStub(rig, messages=["GW_CargoCommand"])
    stub.bad_crc.add("GW_CargoCommand")
    stub.set("GW_CargoCommand", GW_CompartmentLockRequest2=2)
    rig.run_for(2.0)
    cbc = rig.ecu("CBC")
    assert cbc.stats.commands_accepted == 0
    # every frame that reached the CBC (the last one may still be on the wire) was refused
    assert stub.sent["GW_CargoCommand"] - 1 <= cbc.stats.commands_rejected <= stub.sent["GW_CargoCommand"]
    assert cbc.stats.commands_rejected > 30
    assert rig.van.compartment(2)["lock_state"] == LOCKED
    # the same command with a good CRC is obeyed
    stub.bad_crc.clear()
    rig.run_for(1.0)
    assert rig.van.compartment(2)["lock_state"] == UNLOCKED


def test_unlock_refused_while_moving_and_door_release_needs_unlocked(make_rig) -> None:
    rig = make_rig(seed=3)
    stub = GatewayStub(rig, messages=["GW_CargoCommand"])
    stub.set("GW_CargoCommand", GW_CargoVehicleMoving=1, GW_CompartmentLockRequest1=2, GW_CompartmentDoorRelease1=1)
    rig.run_for(1.5)
    assert rig.van.compartment(1)["lock_state"] == LOCKED
    assert rig.van.compartment(1)["door_open"] == 0
    stub.set("GW_CargoCommand", GW_CargoVehicleMoving=0, GW_CompartmentDoorRelease1=0)
    rig.run_for(1.0)
    assert rig.van.compartment(1)["lock_state"] == UNLOCKED
    stub.set("GW_CargoCommand", GW_CompartmentDoorRelease1=1)
    rig.run_for(0.5)
    assert rig.van.compartment(1)["door_open"] == 1
    rec = rig.record()
    rig.run_for(0.1)
    last = _decoded(rig, rec, "CBC_DoorStatus")[-1][1]
    assert last["CBC_DoorOpen1"] == 1 and last["CBC_AllDoorsClosed"] == 0


def test_door_release_is_one_pulse_per_request(make_rig) -> None:
    """Unlock + release held on: the door pops open once the lock opens; pushed shut, it stays
    shut (a level-triggered release would throw it open again), and the lock can close."""
    rig = make_rig(seed=3)
    stub = GatewayStub(rig, messages=["GW_CargoCommand"])
    stub.set("GW_CargoCommand", GW_CompartmentLockRequest4=2, GW_CompartmentDoorRelease4=1)
    rig.run_for(1.5)
    assert rig.van.compartment(4)["lock_state"] == UNLOCKED and rig.van.compartment(4)["door_open"] == 1
    rig.van.model.set_compartment(4, door_close=1)
    rig.run_for(0.3)
    rig.van.model.set_compartment(4, door_close=0)
    rig.run_for(1.0)
    assert rig.van.compartment(4)["door_open"] == 0
    # a new rising edge of the release request opens it again
    stub.set("GW_CargoCommand", GW_CompartmentDoorRelease4=0)
    rig.run_for(0.2)
    stub.set("GW_CargoCommand", GW_CompartmentDoorRelease4=1)
    rig.run_for(0.3)
    assert rig.van.compartment(4)["door_open"] == 1


def test_drive_follows_torque_only_with_drive_enable(make_rig) -> None:
    rig = make_rig(seed=4)
    stub = GatewayStub(rig, messages=["GW_DriveCommand", "GW_BrakeCommand"])
    stub.set("GW_DriveCommand", GW_DriveEnable=0, GW_GearRequest=3, GW_EpbRequest=2, GW_TorqueRequest=150.0)
    rig.run_for(2.0)
    assert rig.van.read("in_motor_torque_request_nm") == 0.0
    # DriveEnable gates torque, not the gear or the EPB (the gateway withholds DriveEnable
    # until both are where the autonomy wants them): shifted with the EPB holding the van
    assert rig.van.read("gear") == 3 and rig.van.read("epb_state") == 0
    assert abs(rig.van.read("speed_mps")) < 0.01
    stub.set("GW_DriveCommand", GW_DriveEnable=1)
    rig.run_for(2.0)
    assert rig.van.read("gear") == 3
    assert rig.van.read("in_motor_torque_request_nm") == pytest.approx(150.0)
    assert rig.van.read("speed_mps") > 0.5
    # the speed limit: no propulsive torque above GW_SpeedLimit
    stub.set("GW_DriveCommand", GW_SpeedLimit=1.0)
    rig.run_for(0.1)
    assert rig.van.read("in_motor_torque_request_nm") == 0.0


def test_gear_change_needs_standstill_and_brake_held(make_rig) -> None:
    rig = make_rig(seed=4)
    stub = GatewayStub(rig, messages=["GW_DriveCommand", "GW_BrakeCommand"])
    # EPB applied at start: D is accepted; then released and rolling, R must be refused
    stub.set("GW_DriveCommand", GW_DriveEnable=1, GW_GearRequest=3, GW_EpbRequest=2, GW_TorqueRequest=150.0)
    rig.run_for(2.0)
    assert rig.van.read("gear") == 3 and rig.van.read("speed_mps") > 0.5
    stub.set("GW_DriveCommand", GW_GearRequest=1, GW_TorqueRequest=0.0)
    rig.run_for(0.3)
    assert rig.van.read("gear") == 3  # moving: refused
    # stopped by the brake, then the brake released: standstill alone is not enough
    stub.set("GW_BrakeCommand", GW_BrakePressureRequest=30.0)
    rig.run_for(3.0)
    assert abs(rig.van.read("speed_mps")) < 0.01 and rig.van.read("gear") == 1  # held: shifted to R
    stub.set("GW_BrakeCommand", GW_BrakePressureRequest=0.0)
    stub.set("GW_DriveCommand", GW_DriveEnable=0)
    rig.run_for(1.0)
    assert rig.van.read("brake_pressure_bar") < 5.0 and rig.van.read("epb_state") == 0
    stub.set("GW_DriveCommand", GW_GearRequest=3)
    rig.run_for(1.0)
    assert rig.van.read("gear") == 1  # no brake held, no EPB: refused


def test_bad_crc_drive_command_is_ignored(make_rig) -> None:
    rig = make_rig(seed=4)
    stub = GatewayStub(rig, messages=["GW_DriveCommand"])
    stub.bad_crc.add("GW_DriveCommand")
    stub.set("GW_DriveCommand", GW_GearRequest=3, GW_EpbRequest=2, GW_TorqueRequest=150.0)
    rig.run_for(1.0)
    assert rig.van.read("gear") == 0 and rig.van.read("epb_state") == 1
    assert rig.ecu("MCU").stats.commands_accepted == 0
    assert rig.ecu("VCU").stats.commands_rejected > 50


def test_command_loss_falls_back_to_zero_torque(make_rig) -> None:
    rig = make_rig(seed=4)
    stub = GatewayStub(rig, messages=["GW_DriveCommand"])
    stub.set("GW_DriveCommand", GW_GearRequest=3, GW_EpbRequest=2, GW_TorqueRequest=100.0)
    rig.run_for(1.0)
    assert rig.van.read("in_motor_torque_request_nm") == pytest.approx(100.0)
    stub.close()
    rig.run_for(0.05)  # less than the 10-cycle timeout: the last command still holds
    assert rig.van.read("in_motor_torque_request_nm") == pytest.approx(100.0)
    rig.run_for(0.2)
    assert rig.van.read("in_motor_torque_request_nm") == 0.0
    assert rig.ecu("MCU").stats.commands_lost == 1
    assert not rig.ecu("MCU").command_valid("GW_DriveCommand")


@pytest.mark.parametrize("brk_silenced", [False, True])
def test_gateway_silent_while_moving_brk_stops_and_vcu_parks(make_rig, brk_silenced: bool) -> None:
    """No driver to hand back to: lost gateway commands -> the BRK's controlled stop, then EPB.
    The fallback is the ECU's background task: it acts even while its own frames are silenced."""
    rig = make_rig(seed=4)
    if brk_silenced:
        rig.ecu("BRK").add_fault({"action": "silence", "t0_s": 3.0})
    stub = GatewayStub(rig, messages=["GW_DriveCommand", "GW_BrakeCommand"])
    stub.set("GW_DriveCommand", GW_DriveEnable=1, GW_GearRequest=3, GW_EpbRequest=2, GW_TorqueRequest=300.0)
    stub.set("GW_BrakeCommand", GW_BrakeEnable=1, GW_BrakePressureRequest=0.0)
    rig.run_for(4.0)
    v0 = rig.van.read("speed_mps")
    assert v0 > 3.0 and rig.van.read("epb_state") == 0
    stub.close()
    rig.run_for(0.5)
    assert rig.van.read("brake_pressure_bar") > 10.0 and rig.van.read("speed_mps") < v0
    rig.run_for(6.0)
    assert abs(rig.van.read("speed_mps")) < 0.01
    assert rig.van.read("epb_state") == 1
    assert rig.ecu("BRK").hold_active == 1 and rig.van.read("in_brake_pressure_request_bar") >= 30.0  # held
    assert rig.ecu("BRK").stats.commands_lost == 1 and rig.ecu("VCU").stats.commands_lost == 1


def test_brake_and_steering_follow_their_commands(make_rig) -> None:
    rig = make_rig(seed=5)
    stub = GatewayStub(rig, messages=["GW_BrakeCommand", "GW_SteerCommand"])
    stub.set("GW_BrakeCommand", GW_BrakePressureRequest=40.0)
    stub.set("GW_SteerCommand", GW_SteerAngleRequest=90.0, GW_SteerRateLimit=360.0)
    rig.run_for(1.5)
    rec = rig.record()
    rig.run_for(0.1)
    brk = _decoded(rig, rec, "BRK_Status")[-1][1]
    eps = _decoded(rig, rec, "EPS_Status")[-1][1]
    assert brk["BRK_Pressure"] == pytest.approx(40.0, abs=0.5) and brk["BRK_ControlActive"] == 1
    assert eps["EPS_SteerAngle"] == pytest.approx(90.0, abs=0.5) and eps["EPS_ControlActive"] == 1
    # emergency braking overrides the pressure request; the driver's torque releases the EPS
    stub.set("GW_BrakeCommand", GW_BrakeEmergency=1)
    rig.ecu("EPS").driver_torque_nm = 5.0
    rig.run_for(0.5)
    assert rig.van.read("in_brake_pressure_request_bar") == rig.van.param("brake_pressure_max_bar")
    assert rig.van.read("in_steer_enable") == 0


def test_adc_plan_drives_the_ads_frames(make_rig) -> None:
    plan = {"speed_mps": [[0, 0], [1, 0], [3, 6]], "gear": [[0, "P"], [0.5, "D"]], "estop_at_s": 2.5,
            "cargo": [[1.0, 3, "Unlock"]]}
    rig = make_rig(seed=6, nodes=["ADC"], adc_plan=plan)
    rec = rig.record()
    rig.run_for(3.0)
    cmds = _decoded(rig, rec, "ADC_Command")
    for t, d in cmds:
        expected_speed = 0.0 if t < 1 else min(6.0, 3.0 * (t - 1))
        # the value of the frame is the plan at its send time, a frame time before its end
        assert d["ADC_TargetSpeed"] == pytest.approx(expected_speed, abs=0.011)
        assert d["ADC_EStop"] == (1 if t >= 2.5 + 0.001 else 0) or abs(t - 2.5) < 0.001
        assert d["ADC_GearRequest"] == (3 if t >= 0.5 + 0.001 else 0) or abs(t - 0.5) < 0.001
    mid = [d for t, d in cmds if 1.2 < t < 2.8]
    assert all(d["ADC_TargetAccel"] == pytest.approx(3.0) for d in mid)
    cargo = _decoded(rig, rec, "ADC_CargoRequest")
    assert {d["ADC_CompartmentRequest3"] for t, d in cargo if t > 1.01} == {2}
    assert {d["ADC_CompartmentRequest3"] for t, d in cargo if t < 0.99} == {0}
    assert {d["ADC_CompartmentRequest1"] for t, d in cargo} == {0}
