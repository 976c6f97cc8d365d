"""DTCs set from faults of the van (plant state) and of the bus (missing frames)."""

from __future__ import annotations

import can

from hil.uds.dtc import CONFIRMED, TEST_FAILED
from hil.uds.ecus import make_servers
from hil.uds.monitors import LostCommunicationMonitor, PlantFaultMonitor
from uds_helpers import StepClock

HEALTHY = {"cell_t_max_c": 35.0, "isolation_resistance_ohm": 2.0e6, "pack_voltage_v": 350.0, "speed_mps": 10.0,
           "wheel_speed_fl_mps": 10.1, "wheel_speed_fr_mps": 10.0, "wheel_speed_rl_mps": 9.9,
           "wheel_speed_rr_mps": 10.0, "cargo_bay_temp_c": 20.0}


def status(server, name):
    return server.nv.dtcs.by_name(name).status


def test_plant_faults_set_and_heal_their_dtcs():
    servers = make_servers(live=lambda: HEALTHY)
    monitor = PlantFaultMonitor(servers)
    monitor.update(HEALTHY)
    for ecu, name in (("bms", "over_temperature"), ("bms", "isolation"), ("vcu", "speed_implausible"),
                      ("cbc", "cargo_over_temperature")):
        assert status(servers[ecu], name) & (TEST_FAILED | CONFIRMED) == 0
    # 100 ohm/V at 350 V = 35 kOhm: 34 kOhm is an isolation fault, 36 kOhm is not
    monitor.update({**HEALTHY, "isolation_resistance_ohm": 36e3})
    assert not status(servers["bms"], "isolation") & TEST_FAILED
    monitor.update({**HEALTHY, "isolation_resistance_ohm": 34e3, "cell_t_max_c": 61.0,
                    "speed_mps": 14.0, "cargo_bay_temp_c": 50.0})
    assert status(servers["bms"], "isolation") & TEST_FAILED
    assert status(servers["bms"], "over_temperature") & TEST_FAILED
    assert status(servers["vcu"], "speed_implausible") & TEST_FAILED
    assert status(servers["cbc"], "cargo_over_temperature") & TEST_FAILED
    monitor.update(HEALTHY)
    assert status(servers["bms"], "over_temperature") & (TEST_FAILED | CONFIRMED) == CONFIRMED


def test_missing_or_bad_inputs_skip_the_check_instead_of_crashing():
    servers = make_servers()
    monitor = PlantFaultMonitor(servers)
    monitor.update({"cell_t_max_c": float("nan"), "pack_voltage_v": "x"})  # type: ignore[dict-item]
    assert monitor.skipped == 4
    assert not status(servers["bms"], "over_temperature") & TEST_FAILED


def test_lost_communication_u_codes_follow_the_frames():
    clock = StepClock(follow_real_time=False)
    servers = make_servers(clock=clock)
    monitor = LostCommunicationMonitor(servers, clock=clock)
    clock.advance(0.5)
    monitor.on_message_received(can.Message(arbitration_id=0x100, is_extended_id=False, data=bytes(8)))
    assert not any(monitor.check().values())
    clock.advance(0.8)  # BMS_Status seen 0.8 s ago, the others 1.3 s ago
    results = monitor.check()
    assert results == {"vcu.lost_comm_bms": False, "bms.lost_comm_vcu": True, "vcu.lost_comm_body": True,
                       "cbc.lost_comm_vcu": True}
    assert status(servers["bms"], "lost_comm_vcu") & TEST_FAILED
    assert servers["bms"].handle(b"\x19\x02\x01") == [b"\x59\x02\xff\xc1\x00\x00" + bytes([status(servers["bms"], "lost_comm_vcu")])]
