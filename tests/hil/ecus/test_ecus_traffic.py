"""Rest-bus traffic of the whole rig: senders, periods, E2E of every protected frame, decoding."""

from __future__ import annotations

from collections import defaultdict

import cantools
import pytest
from ecus_reference import attr, z10_crc

import vehicle_io
from hil.ecus import node_names
from hil.ecus.registry import ecu_class

NOT_SIMULATED = {"GW", "TESTER"}


def _cycle_s(message: object) -> float | None:
    value = attr(message, "GenMsgCycleTime")
    return None if not value else float(value) / 1000.0  # type: ignore[arg-type]


def test_every_cyclic_message_has_exactly_one_sender_ecu() -> None:
    db = vehicle_io.load_database()
    cyclic = {m.name: m for m in db.messages if _cycle_s(m)}
    by_node = {node: {m.name for m in db.messages if node in m.senders and _cycle_s(m)} for node in node_names()}
    for node in node_names():
        assert ecu_class(node).NODE == node
    owners: dict[str, list[str]] = defaultdict(list)
    for node, names in by_node.items():
        for name in names:
            owners[name].append(node)
    for name, message in cyclic.items():
        if set(message.senders) & NOT_SIMULATED:
            assert name not in owners, f"{name} is sent by {message.senders}; the rig must not simulate it"
        else:
            assert len(owners[name]) == 1, f"{name}: expected exactly one simulated sender, got {owners[name]}"


def test_rig_sends_exactly_the_dbc_messages_of_each_node(drive) -> None:
    db = drive.rig.db
    seen = drive.rig.frames_of(drive.rec)
    for node, ecu in drive.rig.ecus.items():
        expected = {m.name for m in db.messages if node in m.senders and _cycle_s(m)}
        assert set(ecu.messages) == expected
        for name in expected:
            assert name in seen, f"{node} never sent {name}"
            assert {f.sender for f in seen[name]} == {node}
    stub_names = set(drive.stub.values)
    assert set(seen) == set(drive.rig.senders()) | stub_names


def test_measured_periods_equal_the_dbc_cycle_times(drive) -> None:
    db = drive.rig.db
    seen = drive.rig.frames_of(drive.rec)
    for name, frames in seen.items():
        if name in drive.stub.values:
            continue
        message = db.get_message_by_name(name)
        cycle = _cycle_s(message)
        assert cycle is not None
        groups: dict[int, list[int]] = defaultdict(list)
        for f in frames:
            # each page of a multiplexed message is its own periodic stream
            page = f.data[0] if message.is_multiplexed() else -1
            groups[page].append(f.t_ps)
        for page, times in groups.items():
            if len(times) < 3:
                assert cycle >= 1.0, f"{name}: only {len(times)} frames in {drive.seconds} s"
                continue
            periods = [(b - a) / 1e12 for a, b in zip(times, times[1:])]
            mean = (times[-1] - times[0]) / 1e12 / (len(times) - 1)
            assert mean == pytest.approx(cycle, rel=2e-3), f"{name} page {page}: mean period {mean}"
            # bus-time jitter only from waiting for the bus (a few frame times at most)
            assert max(abs(p - cycle) for p in periods) < 2e-3, f"{name} page {page}: periods {periods[:5]}..."
    bms = drive.rig.ecu("BMS")
    pages = {f.data[0] for f in seen["BMS_CellVoltages"]}
    assert pages == set(range(24))
    assert {f.data[0] for f in seen["BMS_CellTemps"]} == set(range(8))
    assert bms.stats.frames_sent > 0


def test_every_protected_frame_is_e2e_valid_and_decodes(drive) -> None:
    db = drive.rig.db
    seen = drive.rig.frames_of(drive.rec)
    checked = 0
    for name, frames in seen.items():
        message = db.get_message_by_name(name)
        protected = attr(message, "SafetyRelevant") in (1, "Yes")
        data_id = attr(message, "E2E_DataID")
        last = None
        for f in frames:
            assert len(f.data) == message.length
            decoded = db.decode_message(message.frame_id, f.data, decode_choices=False)
            assert set(decoded) >= {s.name for s in message.signals if not s.multiplexer_ids}
            if protected:
                assert f.data[0] == z10_crc(int(data_id), f.data), f"{name}: bad CRC in {f.data.hex()}"
                counter = f.data[1] & 0x0F
                assert counter <= 14
                if last is not None:
                    assert counter == (last + 1) % 15, f"{name}: counter {last} -> {counter}"
                last = counter
                checked += 1
    assert checked > 1000


def test_values_on_the_bus_follow_the_van(drive) -> None:
    """The drive-off: torque requested, gear D, EPB released -> the van moves, the bus says so."""
    db = drive.rig.db
    seen = drive.rig.frames_of(drive.rec, ["VCU_Status", "MCU_Status", "BMS_Status", "BRK_WheelSpeeds"])
    vcu = [db.decode_message("VCU_Status", f.data, decode_choices=False) for f in seen["VCU_Status"]]
    mcu = [db.decode_message("MCU_Status", f.data, decode_choices=False) for f in seen["MCU_Status"]]
    assert vcu[0]["VCU_Gear"] == 0 and vcu[-1]["VCU_Gear"] == 3
    assert vcu[-1]["VCU_EpbState"] == 0
    assert vcu[-1]["VCU_VehicleSpeed"] > 1.0
    assert vcu[-1]["VCU_VehicleSpeed"] == pytest.approx(abs(drive.rig.van.read("speed_mps")) * 3.6, abs=0.5)
    assert max(m["MCU_TorqueActual"] for m in mcu) > 30.0
    bms = db.decode_message("BMS_Status", seen["BMS_Status"][-1].data, decode_choices=False)
    assert bms["BMS_PackVoltage"] > 200.0 and 0 < bms["BMS_SOC"] <= 100
    wheels = db.decode_message("BRK_WheelSpeeds", seen["BRK_WheelSpeeds"][-1].data, decode_choices=False)
    assert wheels["BRK_WheelSpeedFL"] == pytest.approx(vcu[-1]["VCU_VehicleSpeed"], abs=1.0)


def test_cantools_and_project_dbc_agree_on_the_frames(drive) -> None:
    """The frames decode the same with a database loaded by cantools itself."""
    paths = vehicle_io.dbc.bundled_dbc_paths()
    plain = cantools.database.Database()
    for path in paths:
        plain.add_dbc_file(str(path))
    for f in drive.rec.frames[:500]:
        ours = drive.rig.db.decode_message(f.arbitration_id, f.data, decode_choices=False)
        theirs = plain.decode_message(f.arbitration_id, f.data, decode_choices=False)
        assert ours == theirs


def test_every_signal_of_every_sent_message_is_modelled(drive) -> None:
    """Fails when the DBC grows a signal an ECU does not model yet (it then sends a resting value)."""
    for node, ecu in drive.rig.ecus.items():
        assert ecu.unmodelled == set(), f"{node} has no model for {sorted(ecu.unmodelled)}"
