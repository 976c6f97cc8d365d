"""Content of the bundled Z10 DBC set (dbc/): what issue 2 section 2 and DESIGN.md require."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cantools
import pytest

from tests.crc_reference import crc8_j1850_bitwise as _crc8_j1850
from vehicle_io.dbc import (
    attribute_value,
    bundled_dbc_paths,
    cycle_time_s,
    e2e_spec,
    is_diagnostic,
    load_database,
    split_by_bus,
)

PATHS = bundled_dbc_paths()


@pytest.fixture(scope="module")
def db():
    return load_database()


@pytest.fixture(scope="module")
def buses(db):
    return split_by_bus(db)


def msg(db, name: str):
    return db.get_message_by_name(name)


# ------------------------------------------------------------------------------ loading
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_file_loads_strict_with_cantools_without_warnings(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        file_db = cantools.database.load_file(path, strict=True)
    assert not caplog.records
    assert file_db.messages
    assert path.read_bytes().isascii()


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_file_dumps_with_cantools_cli(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cantools", "dump", str(path)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    file_db = cantools.database.load_file(path)
    for message in file_db.messages:
        assert f"Name:           {message.name}" in result.stdout


def test_files_are_the_three_buses(db) -> None:
    assert [p.name for p in PATHS] == ["z10_ads.dbc", "z10_body.dbc", "z10_pt.dbc"]
    for path in PATHS:
        attrs = cantools.database.load_file(path).dbc.attributes
        assert attrs["BusName"].value == path.stem.removeprefix("z10_")


# ------------------------------------------------------------------------------ set-wide rules
def test_frame_ids_unique_except_functional_diagnostics(db) -> None:
    counts = Counter(m.frame_id for m in db.messages)
    assert {fid for fid, n in counts.items() if n > 1} == {0x7DF}
    assert not any(m.is_extended_frame for m in db.messages)


def test_signal_and_message_names_unique(db) -> None:
    names = Counter(s.name for m in db.messages for s in m.signals)
    assert [n for n, c in names.items() if c > 1] == []
    messages = Counter(m.name for m in db.messages)
    assert [n for n, c in messages.items() if c > 1] == []


def test_signal_names_are_prefixed_by_a_node(db) -> None:
    nodes = {n.name for n in db.nodes}
    for message in db.messages:
        assert message.name.split("_")[0] in nodes | {"DiagReq", "DiagResp", "DiagFuncReq"}
        for signal in message.signals:
            assert signal.name.split("_")[0] in nodes, signal.name


def test_nodes(db, buses) -> None:
    assert {n.name for n in db.nodes} == {
        "VCU", "MCU", "BMS", "EPS", "BRK", "CBC", "ADC", "GW", "TESTER"
    }
    senders = {bus: {s for m in sub.messages for s in m.senders} for bus, sub in buses.items()}
    assert senders["pt"] == {"VCU", "MCU", "BMS", "EPS", "BRK", "GW", "TESTER"}
    assert senders["body"] == {"CBC", "GW", "TESTER"}
    assert senders["ads"] == {"ADC", "GW"}


def test_every_message_has_a_sender_and_a_comment(db) -> None:
    for message in db.messages:
        assert len(message.senders) == 1, message.name
        assert message.comment, message.name


def test_every_non_diagnostic_message_is_cyclic_with_cycle_time(db) -> None:
    for message in db.messages:
        if is_diagnostic(message):
            assert message.cycle_time is None and cycle_time_s(message) is None, message.name
            assert message.send_type == "NoMsgSendType"
            assert message.signals == []
        else:
            assert message.send_type == "Cyclic", message.name
            assert message.cycle_time and message.cycle_time > 0, message.name
            assert cycle_time_s(message) == message.cycle_time / 1000


def test_every_signal_has_range_and_receivers(db) -> None:
    for message in db.messages:
        for signal in message.signals:
            assert signal.minimum is not None and signal.maximum is not None, signal.name
            assert signal.minimum < signal.maximum, signal.name
            assert signal.receivers, signal.name
            assert message.senders[0] not in signal.receivers, signal.name
            if signal.scale != 1 or signal.offset != 0:
                assert signal.unit, signal.name
            assert signal.byte_order == "little_endian", signal.name


def test_flags_and_small_enums_have_choices(db) -> None:
    # Every 1..3-bit field is a flag or a state: it must say what its values mean. Counters
    # and multiplexers are numbers, not states.
    for message in db.messages:
        for signal in message.signals:
            role = attribute_value(signal, "E2E_Role")
            if signal.length <= 3 and role == "None" and not signal.is_multiplexer:
                assert signal.choices, signal.name
                assert min(signal.choices) >= 0
                assert max(signal.choices) < 1 << signal.length


# ------------------------------------------------------------------------------ E2E
SAFETY_REQUIRED = {
    "GW_BrakeCommand", "GW_SteerCommand", "GW_DriveCommand", "GW_CargoCommand",
    "ADC_Command", "ADC_Heartbeat", "GW_Status", "VCU_Status", "MCU_Status", "BMS_Status",
    "BMS_Contactors", "EPS_Status", "BRK_Status", "BRK_WheelSpeeds", "CBC_DoorStatus",
}


def test_safety_relevant_messages(db) -> None:
    safety = {m.name for m in db.messages if attribute_value(m, "SafetyRelevant") == "Yes"}
    assert SAFETY_REQUIRED <= safety
    data_ids = []
    for message in db.messages:
        spec = e2e_spec(message)
        if message.name not in safety:
            assert spec is None
            assert all(attribute_value(s, "E2E_Role") == "None" for s in message.signals)
            continue
        assert spec is not None
        crc = message.get_signal_by_name(spec.crc_signal)
        counter = message.get_signal_by_name(spec.counter_signal)
        assert (crc.start, crc.length, crc.byte_order, crc.is_signed) == (0, 8, "little_endian", False)
        assert (counter.start, counter.length, counter.byte_order, counter.is_signed) == (
            8, 4, "little_endian", False
        )
        assert counter.maximum == 14  # 15 is the invalid value of Z10-P1
        assert spec.crc_signal == f"{message.name}_CRC"
        assert spec.counter_signal == f"{message.name}_Counter"
        # No other signal touches byte 0 or the counter nibble.
        for signal in message.signals:
            if signal.name not in (spec.crc_signal, spec.counter_signal):
                assert signal.start >= 12, signal.name
        assert cycle_time_s(message) is not None
        data_ids.append(spec.data_id)
    assert len(data_ids) == len(set(data_ids)) == len(safety)


def test_e2e_profile_documented_in_dbc_comments() -> None:
    for path in PATHS:
        text = path.read_text()
        assert "Z10-P1" in text
        assert "poly 0x1D, init 0xFF, xorout 0xFF" in text
        for name in ("SafetyRelevant", "E2E_DataID", "E2E_Role"):
            assert re.search(rf'BA_DEF_ (BO_|SG_) "{name}"', text), (path.name, name)
            assert f'BA_DEF_DEF_ "{name}"' in text


# ------------------------------------------------------------------------------ buses
def test_ads_is_can_fd_64_bytes(buses) -> None:
    for message in buses["ads"].messages:
        assert message.is_fd, message.name
        assert message.length == 64, message.name
        assert attribute_value(message, "CANFD_BRS") == "1", message.name
        assert attribute_value(message, "VFrameFormat") == "StandardCAN_FD"
    for name in ("pt", "body"):
        for message in buses[name].messages:
            assert not message.is_fd and message.length == 8, message.name


def test_bitrates(db) -> None:
    rates = {b.name: (b.baudrate, b.fd_baudrate) for b in db.buses}
    assert rates == {"pt": (500_000, None), "body": (500_000, None), "ads": (500_000, 2_000_000)}


def test_uds_ids_per_design(db, buses) -> None:
    expected = {
        "pt": {0x7E0: ("DiagRequest", "TESTER"), 0x7E8: ("DiagResponse", "VCU"),
               0x7E1: ("DiagRequest", "TESTER"), 0x7E9: ("DiagResponse", "BMS"),
               0x7DF: ("DiagRequest", "TESTER")},
        "body": {0x7E2: ("DiagRequest", "TESTER"), 0x7EA: ("DiagResponse", "CBC"),
                 0x7DF: ("DiagRequest", "TESTER")},
    }
    for bus, ids in expected.items():
        for frame_id, (kind, sender) in ids.items():
            message = buses[bus].get_message_by_frame_id(frame_id)
            assert attribute_value(message, kind) == "Yes", hex(frame_id)
            assert message.senders == [sender]
            assert message.length == 8
    diag = {(m.bus_name, m.frame_id) for m in db.messages if is_diagnostic(m)}
    assert diag == {(bus, fid) for bus, ids in expected.items() for fid in ids}
    nodes = {n.name: n for n in db.nodes}
    for ecu, (req, resp) in {"VCU": (0x7E0, 0x7E8), "BMS": (0x7E1, 0x7E9), "CBC": (0x7E2, 0x7EA)}.items():
        assert attribute_value(nodes[ecu], "DiagPhysRequestId") == req
        assert attribute_value(nodes[ecu], "DiagResponseId") == resp


def test_safety_commands_have_the_lowest_ids_on_their_bus(buses) -> None:
    for bus in ("pt", "body"):
        commands = [m for m in buses[bus].messages if m.name.startswith("GW_") and m.name.endswith("Command")]
        others = [m for m in buses[bus].messages if m not in commands]
        assert commands
        assert max(m.frame_id for m in commands) < min(m.frame_id for m in others), bus
    ads = buses["ads"]
    assert ads.get_message_by_name("ADC_Command").frame_id == min(m.frame_id for m in ads.messages)


# ------------------------------------------------------------------------------ content
def test_cycle_times_realistic(db) -> None:
    for name in ("GW_BrakeCommand", "GW_SteerCommand", "GW_DriveCommand", "VCU_Status",
                 "MCU_Status", "EPS_Status", "BRK_Status", "BRK_WheelSpeeds", "ADC_Command"):
        assert msg(db, name).cycle_time == 10, name
    for message in db.messages:
        if message.senders == ["BMS"] and not is_diagnostic(message):
            if message.is_multiplexed():
                assert 100 <= message.cycle_time <= 1000, message.name
            else:
                assert 20 <= message.cycle_time <= 100, message.name


def test_required_signals_present(db) -> None:
    required = {
        "VCU_Status": ["VCU_Ready", "VCU_DriveMode", "VCU_Gear", "VCU_VehicleSpeed", "VCU_EpbState",
                       "VCU_AccelPedal", "VCU_BrakePedal"],
        "GW_DriveCommand": ["GW_TorqueRequest", "GW_GearRequest", "GW_EpbRequest", "GW_DriveEnable"],
        "GW_BrakeCommand": ["GW_BrakePressureRequest", "GW_BrakeEnable"],
        "GW_SteerCommand": ["GW_SteerAngleRequest", "GW_SteerEnable"],
        "MCU_Status": ["MCU_MotorSpeed", "MCU_TorqueActual", "MCU_InverterTemp", "MCU_MotorTemp",
                       "MCU_FaultLevel"],
        "MCU_Power": ["MCU_DcVoltage", "MCU_DcCurrent"],
        "BMS_Status": ["BMS_PackVoltage", "BMS_PackCurrent", "BMS_SOC", "BMS_SOH"],
        "BMS_Limits": ["BMS_ChargePowerLimit", "BMS_DischargePowerLimit"],
        "BMS_CellVoltageStats": ["BMS_CellVoltageMin", "BMS_CellVoltageMinIndex",
                                 "BMS_CellVoltageMax", "BMS_CellVoltageMaxIndex"],
        "BMS_CellTempStats": ["BMS_CellTempMin", "BMS_CellTempMinIndex", "BMS_CellTempMax",
                              "BMS_CellTempMaxIndex"],
        "BMS_Contactors": ["BMS_MainPosState", "BMS_MainNegState", "BMS_PrechargeRelayState",
                           "BMS_PrechargeState", "BMS_IsolationResistance", "BMS_FaultLevel"],
        "EPS_Status": ["EPS_SteerAngle", "EPS_SteerRate", "EPS_DriverTorque", "EPS_MotorTorque"],
        "BRK_Status": ["BRK_Pressure", "BRK_AbsActive", "BRK_FaultLevel"],
        "BRK_WheelSpeeds": ["BRK_WheelSpeedFL", "BRK_WheelSpeedFR", "BRK_WheelSpeedRL",
                            "BRK_WheelSpeedRR"],
        "CBC_Payload": ["CBC_TotalPayload"],
        "ADC_Command": ["ADC_TargetSpeed", "ADC_TargetAccel", "ADC_SteerAngleRequest",
                        "ADC_GearRequest", "ADC_EStop", "ADC_ModeRequest"],
        "GW_Status": ["GW_State", "GW_ActiveFaultCount", "GW_ActiveFault1"],
    }
    for message_name, signals in required.items():
        names = {s.name for s in msg(db, message_name).signals}
        assert set(signals) <= names, (message_name, set(signals) - names)
    assert msg(db, "VCU_Status").get_signal_by_name("VCU_VehicleSpeed").unit == "km/h"
    assert {str(v) for v in msg(db, "VCU_Status").get_signal_by_name("VCU_DriveMode").choices.values()} >= {
        "Auto", "Remote", "Manual"}
    assert {str(v) for v in msg(db, "VCU_Status").get_signal_by_name("VCU_Gear").choices.values()} >= {
        "P", "R", "N", "D"}


def _pages(message) -> dict[str, set[int]]:
    pages: dict[str, set[int]] = {}
    for signal in message.signals:
        if signal.multiplexer_ids is not None:
            pages.setdefault(signal.name, set()).update(signal.multiplexer_ids)
    return pages


def test_cell_voltages_cover_96_cells_at_1_mv(db) -> None:
    message = msg(db, "BMS_CellVoltages")
    assert message.is_multiplexed()
    pages = _pages(message)
    cells = sorted(n for n in pages if re.fullmatch(r"BMS_CellVoltage\d{3}", n))
    assert len(cells) >= 96
    assert cells == [f"BMS_CellVoltage{i:03d}" for i in range(1, len(cells) + 1)]
    assert all(len(ids) == 1 for ids in pages.values())  # each cell on exactly one page
    mux = message.get_signal_by_name("BMS_CellVoltagePage")
    page_ids = set().union(*pages.values())
    assert page_ids == set(range(int(mux.maximum) + 1))
    for name in cells:
        signal = message.get_signal_by_name(name)
        assert signal.scale == pytest.approx(0.001) and signal.unit == "V"
        assert signal.maximum >= 4.5


def test_cell_temperatures_multiplexed(db) -> None:
    pages = _pages(msg(db, "BMS_CellTemps"))
    sensors = sorted(n for n in pages if re.fullmatch(r"BMS_CellTemp\d{2}", n))
    assert sensors == [f"BMS_CellTemp{i:02d}" for i in range(1, 33)]


def test_cargo_compartments(db) -> None:
    signals = {s.name for m in db.messages if m.bus_name == "body" for s in m.signals}
    count = len([n for n in signals if re.fullmatch(r"CBC_DoorOpen\d", n)])
    assert count >= 4
    for i in range(1, count + 1):
        for stem in ("CBC_DoorOpen", "CBC_LockState", "CBC_Occupancy", "CBC_Weight", "CBC_Temp",
                     "GW_CompartmentLockRequest", "GW_CompartmentDoorRelease"):
            assert f"{stem}{i}" in signals, f"{stem}{i}"
    assert msg(db, "CBC_CompartmentWeights").get_signal_by_name("CBC_Weight1").unit == "kg"
    assert msg(db, "CBC_Payload").get_signal_by_name("CBC_TotalPayload").maximum >= 1500


def test_gateway_status_interlock_bits(db) -> None:
    message = msg(db, "GW_Status")
    flags = [s for s in message.signals if s.name.startswith("GW_Ilk")]
    assert len(flags) >= 10
    assert all(s.length == 1 for s in flags)


def test_every_message_round_trips_through_cantools(db) -> None:
    # Sanity of every layout: mid-range values encode and decode back within resolution.
    for message in db.messages:
        if not message.signals:
            continue
        mux = next((s for s in message.signals if s.is_multiplexer), None)
        mux_values = sorted({i for s in message.signals for i in (s.multiplexer_ids or ())}) or [None]
        for mux_value in mux_values:
            values = {}
            for signal in message.signals:
                if signal is mux:
                    values[signal.name] = mux_value
                elif signal.multiplexer_ids is None or mux_value in signal.multiplexer_ids:
                    raw = (int((signal.maximum - signal.offset) / signal.scale)
                           + int((signal.minimum - signal.offset) / signal.scale)) // 2
                    values[signal.name] = raw
            data = message.encode(values, scaling=False)
            assert len(data) == message.length
            decoded = message.decode(data, scaling=False, decode_choices=False)
            assert decoded == values, message.name


def test_e2e_doc_worked_example_matches_the_dbc(db) -> None:
    # The test's own CRC, pinned by the standard check values, then the example of docs/e2e.md.
    assert _crc8_j1850(b"123456789") == 0x4B
    assert _crc8_j1850(bytes(4)) == 0x59
    assert _crc8_j1850(bytes((0xF2, 0x01, 0x83))) == 0x37
    doc = (Path(__file__).resolve().parents[2] / "docs" / "e2e.md").read_text()
    shown = bytes.fromhex(re.search(r"frame on the bus:\s+([0-9A-F ]+)\n", doc).group(1))
    message = msg(db, "GW_SteerCommand")
    spec = e2e_spec(message)
    frame = bytearray(message.encode({
        "GW_SteerCommand_CRC": 0, "GW_SteerCommand_Counter": 3, "GW_SteerEnable": 1,
        "GW_SteerAngleRequest": -12.5, "GW_SteerRateLimit": 200,
    }))
    frame[0] = _crc8_j1850(spec.data_id_bytes + bytes(frame[1:spec.length]))
    assert bytes(frame) == shown
