"""The rig's per-frame shortcuts change nothing on the wire.

Each shortcut (hil.bus.clock._FAST_PATHS: the driver loop of a plain run to a deadline;
hil.ecus.base._FAST_PATHS: one-frame send path, the codec's generated encoder
called directly, page encoders of multiplexed messages, counter+CRC in one step, whole-frame
command decode cache, supervision rescheduling without the empty hook; hil.bus.channel._FAST_PATHS: end of frame inside its start (a good frame's
inlined), send_data straight into the controller, arbitration with one contender, data
frames to ECUs without a python-can message; hil.bus.bits._KERNEL: bit counts from the
numba kernel; vehicle_io.e2e._FAST_PATHS: the E2E receiver's short path) sits
next to the general path it replaces. The same rig runs once with all of them and once with
none, with ECU faults, wire faults, a bus-off, a babbling node and a python-can user that
drives the clock by waiting: every wire frame (timing, bits, payload), every bus event and
every counter must be the same.
"""

from __future__ import annotations

from typing import Any

import pytest

import hil.bus.bits as bits
import hil.bus.channel as channel_mod
import hil.bus.clock as clock_mod
import hil.ecus.base as base
import vehicle_io.e2e as e2e
from hil.ecus.adc import AdcPlan
from hil.ecus.gwstub import GatewayStub

DRIVE = {"speed_mps": [[0, 0], [0.5, 0], [2.0, 6.0], [5.0, 6.0]], "gear": [[0, "D"]], "epb": [[0, "Release"]]}


def _run(make_rig: Any, monkeypatch: pytest.MonkeyPatch, fast: bool) -> dict[str, Any]:
    monkeypatch.setattr(channel_mod, "_FAST_PATHS", fast)
    monkeypatch.setattr(clock_mod, "_FAST_PATHS", fast)
    monkeypatch.setattr(base, "_FAST_PATHS", fast)
    monkeypatch.setattr(e2e, "_FAST_PATHS", fast)
    monkeypatch.setattr(bits, "_COUNT_CACHE", {})
    # The same channel names both times (events and stats name their channel): one rig at a time.
    rig = make_rig(seed=5, clock="sim", adc_plan=AdcPlan.from_dict(DRIVE), channel_prefix="ecu-test-fastpath-")
    if not fast:
        monkeypatch.setattr(bits, "_KERNEL", None)
    wire: list[Any] = []
    events: list[Any] = []
    for bus, ch in rig.channels.items():
        ch.add_frame_observer(lambda frame, bus=bus: wire.append((bus, frame)))
        ch.add_event_observer(lambda event, bus=bus: events.append((bus, event)))
    stub = GatewayStub(rig, messages=["GW_DriveCommand", "GW_BrakeCommand", "GW_SteerCommand", "GW_CargoCommand",
                                      "GW_Status", "GW_VehicleState"])
    stub.set("GW_DriveCommand", GW_GearRequest=3, GW_EpbRequest=2, GW_TorqueRequest=80.0)
    rig.add_ecu_fault("BMS", {"action": "slow", "factor": 1.7, "t0_s": 0.4, "t1_s": 1.6})
    rig.add_ecu_fault("VCU", {"action": "override", "signal": "VCU_VehicleSpeed", "value": 12.5, "t0_s": 0.5, "t1_s": 1.2})
    rig.add_ecu_fault("MCU", {"action": "silence", "t0_s": 0.8, "t1_s": 1.0})
    rig.add_ecu_fault("EPS", {"action": "bad_crc", "t0_s": 0.9, "t1_s": 1.3})
    rig.add_ecu_fault("BRK", {"action": "counter_freeze", "t0_s": 1.0, "t1_s": 1.4})
    rig.add_bus_fault("pt", {"action": "drop", "node": "GW", "t0_s": 1.1, "t1_s": 1.15})
    rig.add_bus_fault("body", {"action": "corrupt_wire", "node": "CBC", "t0_s": 1.2, "t1_s": 1.3})
    rig.add_bus_fault("pt", {"action": "corrupt_wire", "node": "BMS", "t0_s": 1.5, "t1_s": 1.9})  # bus-off
    rig.add_bus_fault("ads", {"action": "babble", "node": "TCU", "id": 1, "data": [255] * 8, "t0_s": 2.0, "t1_s": 2.1})
    rig.add_bus_fault("body", {"action": "cut_off", "node": "GW", "t0_s": 2.2, "t1_s": 2.4})
    rig.run_for(1.0)
    tester = rig.open_bus("pt", node="TESTER")  # waits on the bus: the clock driven with a predicate
    try:
        received = [tester.recv(timeout=0.05) for _ in range(200)]
    finally:
        tester.shutdown()
    rig.run_until(3.0)
    out = {
        "wire": wire,
        "events": events,
        "received": [(m.timestamp, m.arbitration_id, bytes(m.data)) for m in received if m is not None],
        "ecus": {node: ecu.stats for node, ecu in rig.ecus.items()},
        "channels": {bus: ch.stats() for bus, ch in rig.channels.items()},
        "speed": rig.van.read("speed_mps"),
        "steps": rig.steps,
    }
    stub.close()
    rig.close()
    return out


def test_shortcuts_leave_the_traffic_unchanged(make_rig: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _run(make_rig, monkeypatch, True)
    with monkeypatch.context() as m:
        general = _run(make_rig, m, False)
    assert len(fast["wire"]) > 3000
    assert any(frame.is_error_frame for _, frame in fast["wire"])  # the fault paths ran
    assert any(event.code == "node.bus_off" for _, event in fast["events"])
    assert fast["received"]
    for key in ("wire", "events", "received", "ecus", "channels", "speed", "steps"):
        assert fast[key] == general[key], key
