"""ECU fault knobs, determinism, configuration errors and the real-time rig."""

from __future__ import annotations

import pytest
from ecus_reference import StillVan, attr, z10_crc

from hil.ecus import EcuConfigError, EcuFault
from hil.ecus.adc import AdcPlan
from hil.ecus.registry import ecu_class


def _times(rig, rec, name):
    return [f.t_ps / 1e12 for f in rig.frames_of(rec, [name]).get(name, [])]


def test_silence_sends_nothing_in_its_window(make_rig) -> None:
    rig = make_rig(seed=1, nodes=["BRK", "EPS"])
    rig.add_ecu_fault("BRK", {"action": "silence", "t0_s": 1.0, "t1_s": 2.0})
    rec = rig.record()
    rig.run_for(3.0)
    for name in ("BRK_Status", "BRK_WheelSpeeds"):
        times = _times(rig, rec, name)
        assert not [t for t in times if 1.001 < t < 2.0]
        assert [t for t in times if t < 1.0] and [t for t in times if t > 2.001]
    assert len([t for t in _times(rig, rec, "EPS_Status") if 1.001 < t < 2.0]) >= 98
    assert rig.ecu("BRK").stats.frames_suppressed == 200


def test_slow_multiplies_the_period(make_rig) -> None:
    rig = make_rig(seed=1, nodes=["MCU"])
    rig.add_ecu_fault("MCU", EcuFault("slow", message="MCU_Power", factor=3.0))
    rec = rig.record()
    rig.run_for(2.0)
    times = _times(rig, rec, "MCU_Power")
    mean = (times[-1] - times[0]) / (len(times) - 1)
    assert mean == pytest.approx(0.020 * 3.0, rel=1e-3)
    status = _times(rig, rec, "MCU_Status")
    assert (status[-1] - status[0]) / (len(status) - 1) == pytest.approx(0.010, rel=1e-3)


def test_override_changes_the_decoded_value(make_rig) -> None:
    rig = make_rig(seed=1, nodes=["BMS"])
    rig.add_ecu_fault("BMS", {"action": "override", "signal": "BMS_CellVoltage042", "value": 4.4, "t0_s": 1.0})
    rig.add_ecu_fault("BMS", {"action": "override", "signal": "BMS_SOC", "value": 12.5})
    rec = rig.record()
    rig.run_for(2.0)
    frames = rig.frames_of(rec, ["BMS_CellVoltages", "BMS_Status"])
    page10 = [(f.t_ps / 1e12, rig.db.decode_message("BMS_CellVoltages", f.data, decode_choices=False))
              for f in frames["BMS_CellVoltages"] if f.data[0] == 10]
    assert all(d["BMS_CellVoltage042"] == pytest.approx(4.4) for t, d in page10 if t > 1.001)
    assert all(3.0 < d["BMS_CellVoltage042"] < 4.3 for t, d in page10 if t < 0.999)
    other = [rig.db.decode_message("BMS_CellVoltages", f.data, decode_choices=False)
             for f in frames["BMS_CellVoltages"] if f.data[0] == 11]
    assert all(3.0 < d["BMS_CellVoltage045"] < 4.3 for d in other)
    soc = {rig.db.decode_message("BMS_Status", f.data)["BMS_SOC"] for f in frames["BMS_Status"]}
    assert soc == {12.5}


def test_counter_freeze_and_bad_crc(make_rig) -> None:
    rig = make_rig(seed=1, nodes=["EPS", "VCU"])
    rig.add_ecu_fault("EPS", {"action": "counter_freeze", "t0_s": 0.5})
    rig.add_ecu_fault("VCU", {"action": "bad_crc", "t0_s": 0.5, "t1_s": 0.6})
    rec = rig.record()
    rig.run_for(1.0)
    eps_data_id = int(attr(rig.db.get_message_by_name("EPS_Status"), "E2E_DataID"))
    vcu_data_id = int(attr(rig.db.get_message_by_name("VCU_Status"), "E2E_DataID"))
    eps = [(f.t_ps / 1e12, f.data) for f in rig.frames_of(rec, ["EPS_Status"])["EPS_Status"]]
    late = {d[1] & 0x0F for t, d in eps if t > 0.501}
    assert len(late) == 1  # frozen
    assert len({d[1] & 0x0F for t, d in eps if t < 0.499}) > 10
    assert all(d[0] == z10_crc(eps_data_id, d) for _, d in eps)  # CRC still right
    vcu = [(f.t_ps / 1e12, f.data) for f in rig.frames_of(rec, ["VCU_Status"])["VCU_Status"]]
    bad = [t for t, d in vcu if d[0] != z10_crc(vcu_data_id, d)]
    assert len(bad) == 10 and all(0.5 < t < 0.601 for t in bad)


def test_same_seed_same_bytes_other_seed_other_bytes(make_rig) -> None:
    def run(seed: int) -> list[tuple[int, str, int, bytes]]:
        from hil.ecus.gwstub import GatewayStub

        rig = make_rig(seed=seed)
        stub = GatewayStub(rig)
        stub.set("GW_DriveCommand", GW_GearRequest=3, GW_EpbRequest=2, GW_TorqueRequest=80.0)
        rec = rig.record()
        rig.run_for(1.5)
        out = [(f.t_ps, f.bus, f.arbitration_id, f.data) for f in rec.frames]
        rig.close()
        return out

    a, b, c = run(11), run(11), run(12)
    assert len(a) > 1500
    assert a == b
    assert a != c


def test_fault_and_plan_errors_name_what_is_wrong(make_rig) -> None:
    with pytest.raises(EcuConfigError, match="expected an action in"):
        EcuFault("explode")
    with pytest.raises(EcuConfigError, match="'slow': expected a factor > 0"):
        EcuFault("slow", factor=0)
    with pytest.raises(EcuConfigError, match="unknown field 'colour'"):
        EcuFault.from_dict({"action": "silence", "colour": "red"})
    with pytest.raises(EcuConfigError, match="expected a number"):
        EcuFault.from_dict({"action": "slow", "factor": "fast"})
    with pytest.raises(EcuConfigError, match="unknown node"):
        ecu_class("XYZ")
    with pytest.raises(EcuConfigError, match="speeds 0..30"):
        AdcPlan(speed_mps=[(0, 40)])
    with pytest.raises(EcuConfigError, match="ascending"):
        AdcPlan(speed_mps=[(2, 1), (1, 1)])
    with pytest.raises(EcuConfigError, match="expected one of P, R, N, D"):
        AdcPlan(gear=[(0, "X")])
    with pytest.raises(EcuConfigError, match="compartment 1..6"):
        AdcPlan(cargo=[(0, 9, "Lock")])
    rig = make_rig(seed=1, nodes=["BMS"])
    with pytest.raises(EcuConfigError, match="expected a signal of its messages"):
        rig.add_ecu_fault("BMS", {"action": "override", "signal": "VCU_Gear", "value": 1})
    with pytest.raises(EcuConfigError, match="expected one of its messages"):
        rig.add_ecu_fault("BMS", {"action": "silence", "message": "VCU_Status"})
    with pytest.raises(EcuConfigError, match="unknown node"):
        rig.ecu("VCU")


def test_out_of_range_values_saturate_at_the_dbc_range(make_rig) -> None:
    rig = make_rig(seed=1, nodes=["BMS"])
    rig.add_ecu_fault("BMS", {"action": "override", "signal": "BMS_PackVoltage", "value": 9999.0})
    rec = rig.record()
    rig.run_for(0.2)
    frames = rig.frames_of(rec, ["BMS_Status"])["BMS_Status"]
    assert {rig.db.decode_message("BMS_Status", f.data)["BMS_PackVoltage"] for f in frames} == {500.0}


def test_real_clock_rig_sends_in_wall_time(make_rig) -> None:
    # A van double: the plant under NUMBA_DISABLE_JIT=1 is slower than real time.
    rig = make_rig(seed=1, clock="real", nodes=["EPS"], van=StillVan())
    rec = rig.record()
    rig.run_for(0.3)
    rig.close()
    n = len(rig.frames_of(rec, ["EPS_Status"]).get("EPS_Status", []))
    assert 10 <= n <= 31


def test_a_signal_without_a_model_goes_out_at_its_resting_value(make_rig) -> None:
    from hil.ecus.eps import EpsEcu

    class ForgetfulEps(EpsEcu):
        def signals(self, message, t_s):
            values = super().signals(message, t_s)
            del values["EPS_DriverTorque"]
            values["EPS_SteerAngle"] = 12.5
            return values

    rig = make_rig(seed=1, nodes=[])
    eps = ForgetfulEps(rig.db, rig.van, rig.channels, rig.clock, seed=1)
    try:
        rec = rig.record()
        eps.start()
        rig.run_for(0.1)
        frames = rig.frames_of(rec, ["EPS_Status"])["EPS_Status"]
        decoded = [rig.db.decode_message("EPS_Status", f.data) for f in frames]
        assert len(decoded) >= 9
        assert all(d["EPS_DriverTorque"] == 0.0 and d["EPS_SteerAngle"] == 12.5 for d in decoded)
        assert eps.unmodelled == {"EPS_DriverTorque"}
    finally:
        eps.close()


def test_remote_estop_and_fault_reset_follow_the_plan(make_rig) -> None:
    plan = {"remote_estop_at_s": 0.5, "fault_reset": [[0.7, "Yes"], [0.8, "No"]]}
    rig = make_rig(seed=2, nodes=["ADC"], adc_plan=plan)
    rec = rig.record()
    rig.run_for(1.0)
    cmds = [(f.t_ps / 1e12, rig.db.decode_message("ADC_Command", f.data, decode_choices=False))
            for f in rig.frames_of(rec, ["ADC_Command"])["ADC_Command"]]
    assert {d["ADC_RemoteEStop"] for t, d in cmds if t < 0.499} == {0}
    assert {d["ADC_RemoteEStop"] for t, d in cmds if t > 0.501} == {1}
    assert {d["ADC_EStop"] for t, d in cmds} == {0}
    assert {d["ADC_FaultResetRequest"] for t, d in cmds if 0.701 < t < 0.799} == {1}
    assert {d["ADC_FaultResetRequest"] for t, d in cmds if t < 0.699 or t > 0.801} == {0}


def test_python_can_user_on_the_rig_buses(make_rig) -> None:
    """A gateway in the same process attaches with python-can (hilbus) and sees the rest-bus."""
    rig = make_rig(seed=2, nodes=["ADC", "EPS"])
    ads = rig.open_bus("ads", node="GW")
    pt = rig.open_bus("pt", node="GW")
    try:
        msg = ads.recv(timeout=0.05)  # drives the simulated clock until a frame arrives
        assert msg is not None and msg.is_fd and len(msg.data) == 64
        ids = {pt.recv(timeout=0.05).arbitration_id for _ in range(5)}
        assert ids == {rig.db.get_message_by_name("EPS_Status").frame_id}
    finally:
        ads.shutdown()
        pt.shutdown()
