"""udsoncan's Client over can-isotp against the simulated ECUs, on python-can virtual buses.

Every service and every NRC the issue lists, end to end through the ISO-TP transport.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import can
import isotp
import pytest
import udsoncan
from udsoncan import DataFormatIdentifier, MemoryLocation
from udsoncan.client import Client
from udsoncan.configs import default_client_config
from udsoncan.connections import PythonIsoTpConnection
from udsoncan.exceptions import NegativeResponseException
from udsoncan.services import CommunicationControl, ECUReset

from hil.uds.ecus import attach, make_servers
from hil.uds.server import UdsServer
from uds_helpers import StepClock, Van
from vehicle_io import diag
from vehicle_io.diag.security import dev_key
from vehicle_io.flash.signing import dev_private_key, sign_image

LIVE = {"soc": 0.5, "pack_voltage_v": 340.0, "pack_current_a": 5.0, "cell_t_max_c": 25.0,
        "isolation_resistance_ohm": 1e6, "speed_mps": 0.0, "motor_speed_rpm": 0.0}


class Rig:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex
        self.channels = {"pt": f"pt-{tag}", "body": f"body-{tag}"}
        self.clock = StepClock()
        self.van = Van()
        self.servers: dict[str, UdsServer] = make_servers(
            clock=self.clock, live=lambda: LIVE, conditions=self.van, rng=random.Random(5))
        self.ecu_buses = {name: can.Bus(interface="virtual", channel=ch) for name, ch in self.channels.items()}
        self.tester_bus = can.Bus(interface="virtual", channel=self.channels["pt"])
        self.transports = attach(self.ecu_buses, self.servers)

    def close(self) -> None:
        for transport in self.transports:
            transport.shutdown()
        for bus in [*self.ecu_buses.values(), self.tester_bus]:
            bus.shutdown()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    try:
        yield r
    finally:
        r.close()


def client_config(ecu: str) -> dict[str, Any]:
    config = dict(default_client_config)
    config.update({
        "security_algo": lambda level, seed, params: dev_key(ecu, level, seed),
        "data_identifiers": {0xF190: udsoncan.AsciiCodec(17), 0xF18C: udsoncan.AsciiCodec(12),
                             0xF195: udsoncan.AsciiCodec(9), 0x0201: ">H", 0x0202: ">H", 0x0203: ">h",
                             0x0204: ">h", 0x0205: ">H", 0xF186: ">B", 0x1234: ">H"},
        "dtc_snapshot_did_size": 2, "extended_data_size": 1, "p2_timeout": 1.0, "request_timeout": 8.0,
        "server_address_format": 32, "server_memorysize_format": 32,
    })
    return config


@pytest.fixture
def bms(rig: Rig) -> Iterator[Client]:
    with diag.open_client(rig.tester_bus, diag.ECUS["bms"]) as client:
        client.set_configs(client_config("bms"))
        yield client


def expect_nrc(code: int, fn: Any, *args: Any, **kwargs: Any) -> None:
    with pytest.raises(NegativeResponseException) as info:
        fn(*args, **kwargs)
    assert info.value.response.code == code, f"expected NRC 0x{code:02X}, got 0x{info.value.response.code:02X}"


def raw(client: Client, request: bytes) -> bytes:
    client.conn.empty_rxqueue()
    client.conn.send(request)
    answer = client.conn.wait_frame(timeout=1.0, exception=True)
    return bytes(answer)


def test_session_control_with_server_timing(bms, rig):
    response = bms.change_session(3)
    assert response.service_data.p2_server_max == pytest.approx(0.050)
    assert response.service_data.p2_star_server_max == pytest.approx(5.0)
    assert rig.servers["bms"].session == 3
    expect_nrc(0x12, bms.change_session, 0x05)
    bms.change_session(1)
    expect_nrc(0x7E, bms.change_session, 2)


def test_programming_session_refused_while_the_van_moves(bms, rig):
    bms.change_session(3)
    rig.van.speed_mps = 2.5
    expect_nrc(0x22, bms.change_session, 2)
    rig.van.speed_mps = 0.0
    bms.change_session(2)
    assert rig.servers["bms"].session == 2


def test_ecu_reset(bms, rig):
    bms.change_session(3)
    boots = rig.servers["bms"].nv.boot_count
    bms.ecu_reset(ECUReset.ResetType.hardReset)
    assert rig.servers["bms"].nv.boot_count == boots + 1 and rig.servers["bms"].session == 1
    expect_nrc(0x12, bms.ecu_reset, 0x04)
    rig.van.speed_mps = 1.0
    expect_nrc(0x22, bms.ecu_reset, ECUReset.ResetType.softReset)


def test_read_identity_and_live_dids(bms):
    values = bms.read_data_by_identifier([0xF190, 0xF18C, 0xF195, 0x0201, 0x0202, 0x0203]).service_data.values
    assert values[0xF190] == "WZ1ZE10SM00000001" and values[0xF18C] == "BMS-SIM-0001"
    assert values[0xF195] == "BMS 1.7.4"
    assert values[0x0201] == (round(0.5 / 0.001),) and values[0x0202] == (3400,) and values[0x0203] == (50,)
    expect_nrc(0x31, bms.read_data_by_identifier, 0x1234)


def test_write_did_needs_extended_session_and_security(bms, rig):
    expect_nrc(0x7F, bms.write_data_by_identifier, 0xF190, "WZ1ZE10SM00000002")
    bms.change_session(3)
    expect_nrc(0x33, bms.write_data_by_identifier, 0xF190, "WZ1ZE10SM00000002")
    expect_nrc(0x31, bms.write_data_by_identifier, 0xF18C, "XXXXXXXXXXXX")
    bms.unlock_security_access(1)
    bms.write_data_by_identifier(0xF190, "WZ1ZE10SM00000002")
    assert bms.read_data_by_identifier_first(0xF190) == "WZ1ZE10SM00000002"
    assert raw(bms, b"\x2e\xf1\x90ABC") == b"\x7f\x2e\x13"


def test_security_access_nrcs_and_lockout_through_reset(bms, rig):
    expect_nrc(0x7F, bms.request_seed, 1)
    bms.change_session(3)
    expect_nrc(0x12, bms.request_seed, 0x05)
    expect_nrc(0x7E, bms.request_seed, 0x11)
    expect_nrc(0x24, bms.send_key, 2, b"\x01\x02\x03\x04")
    for code in (0x35, 0x35, 0x36):
        bms.request_seed(1)
        expect_nrc(code, bms.send_key, 2, b"\x00\x00\x00\x00")
    expect_nrc(0x37, bms.request_seed, 1)
    bms.ecu_reset(1)
    bms.change_session(3)
    expect_nrc(0x37, bms.request_seed, 1)
    rig.clock.advance(10.5)  # the delay runs out (and S3 with it)
    bms.change_session(3)
    bms.unlock_security_access(1)
    assert rig.servers["bms"].security_level == 1


def test_s3_timeout_back_to_default(bms, rig):
    bms.change_session(3)
    assert bms.read_data_by_identifier_first(0xF186) == (3,)
    rig.clock.advance(5.5)
    assert bms.read_data_by_identifier_first(0xF186) == (1,)


def test_dtc_services(bms, rig):
    server = rig.servers["bms"]
    server.report_fault("over_temperature", True)
    server.report_fault("lost_comm_vcu", True)
    server.report_fault("lost_comm_vcu", False)
    assert bms.get_number_of_dtc_by_status_mask(0x01).service_data.dtc_count == 1
    by_mask = bms.get_dtc_by_status_mask(0x08).service_data.dtcs
    assert {d.id for d in by_mask} == {0x0A7E00, 0xC10000}
    supported = bms.get_supported_dtc().service_data.dtcs
    assert {d.id for d in supported} == {0x0A7E00, 0x0AA600, 0xC10000}
    snap = bms.get_dtc_snapshot_by_dtc_number(0x0A7E00, 0x01).service_data.dtcs[0]
    assert snap.snapshots[0].did == 0x0201 and snap.snapshots[0].data == (500,)
    ext = bms.get_dtc_extended_data_by_dtc_number(0x0A7E00, 0x01).service_data.dtcs[0]
    assert ext.extended_data[0].raw_data == b"\x01"
    expect_nrc(0x31, bms.get_dtc_snapshot_by_dtc_number, 0x123456, 0x01)
    expect_nrc(0x31, bms.get_dtc_extended_data_by_dtc_number, 0x0A7E00, 0x33)
    assert raw(bms, b"\x19\x42\xff") == b"\x7f\x19\x12"
    bms.clear_dtc(0xFFFFFF)
    assert bms.get_number_of_dtc_by_status_mask(0x2F).service_data.dtc_count == 0
    expect_nrc(0x31, bms.clear_dtc, 0x123456)
    assert raw(bms, b"\x14\xff\xff") == b"\x7f\x14\x13"


def test_communication_control_and_dtc_setting(bms, rig):
    expect_nrc(0x7F, bms.communication_control, 0x03, 0x01)
    bms.change_session(3)
    bms.communication_control(CommunicationControl.ControlType.disableRxAndTx, 0x01)
    assert not rig.servers["bms"].normal_tx_enabled
    assert raw(bms, b"\x28\x00\x00") == b"\x7f\x28\x31"  # no message type
    expect_nrc(0x12, bms.communication_control, 0x04, 0x01, node_id=1)
    bms.control_dtc_setting(0x02)
    assert not rig.servers["bms"].report_fault("isolation", True)
    expect_nrc(0x12, bms.control_dtc_setting, 0x05)


def test_tester_present_and_suppressed_positive_response(bms, rig):
    assert bms.tester_present().positive
    with bms.suppress_positive_response:
        bms.tester_present()
    assert raw(bms, b"\x3e\x01") == b"\x7f\x3e\x12"
    expect_nrc(0x7F, bms.read_memory_by_address, MemoryLocation(0x0, 4, 32, 32))  # not in default session


def test_flash_sequence_with_pending_erase_and_counter_wrap(bms, rig):
    server = rig.servers["bms"]
    bms.change_session(3)
    expect_nrc(0x31, bms.start_routine, 0xFF00, b"\x44" + bytes(8))  # flash routines: bootloader only
    expect_nrc(0x7F, bms.request_download, MemoryLocation(0, 16, 32, 32))
    bms.change_session(2)
    location = MemoryLocation(0x0, 300 * 6, 32, 32)
    expect_nrc(0x33, bms.start_routine, 0xFF00, b"\x44" + (0).to_bytes(4, "big") + (1800).to_bytes(4, "big"))
    bms.unlock_security_access(0x11)
    expect_nrc(0x24, bms.routine_control, 0xFF00, 3)  # results before any run
    expect_nrc(0x12, bms.stop_routine, 0xFF00)
    erase = bms.start_routine(0xFF00, b"\x44" + (0).to_bytes(4, "big") + (1800).to_bytes(4, "big"))
    assert erase.service_data.routine_status_record == b"\x00"
    # a small block length makes the counter wrap within a short image
    server.config = dataclasses.replace(server.config, max_block_length=8)
    max_block = bms.request_download(location, DataFormatIdentifier(0, 0)).service_data.max_length
    assert max_block == 8
    expect_nrc(0x73, bms.transfer_data, 2, b"\x00" * 6)
    image = random.Random(9).randbytes(1800)
    for block in range(300):
        bms.transfer_data((block + 1) & 0xFF, image[6 * block:6 * block + 6])
    bms.transfer_data(300 & 0xFF, image[-6:])  # the last block again: accepted, not written twice
    assert server.nv.flash.target.write_operations == 300
    assert bms.request_transfer_exit().service_data.parameter_records == zlib.crc32(image).to_bytes(4, "big")
    expect_nrc(0x24, bms.transfer_data, 1, b"\x00")
    expect_nrc(0x24, bms.request_transfer_exit)
    assert bms.start_routine(0x0202, zlib.crc32(image).to_bytes(4, "big")).service_data.routine_status_record == b"\x00"
    expect_nrc(0x72, bms.start_routine, 0xFF01)  # the Z10 ECUs take signed images only
    assert server.nv.flash.pending_activation is None
    signature = sign_image(dev_private_key(), "bms", 0, image).signature
    assert bms.start_routine(0x0202, zlib.crc32(image).to_bytes(4, "big")).service_data.routine_status_record == b"\x00"
    assert bms.start_routine(0xFF01, signature).service_data.routine_status_record == b"\x00"
    bms.ecu_reset(1)
    assert server.nv.flash.active == "B"
    assert server.counters["nrc_78"] == 0 and rig.transports[1].stats["responses"] > 300


def test_erase_answers_response_pending_and_udsoncan_waits(bms, rig):
    server = rig.servers["bms"]
    server.config = dataclasses.replace(server.config, erase_base_s=0.3, pending_interval_s=0.1)
    bms.change_session(3)
    bms.change_session(2)
    bms.unlock_security_access(0x11)
    pending: list[int] = []
    bms.set_config("nrc78_callback", lambda: pending.append(1))
    bms.start_routine(0xFF00, b"\x44" + (0).to_bytes(4, "big") + (4096).to_bytes(4, "big"))
    assert len(pending) >= 2  # the first 0x78 at once, repeats every 0.1 s until the end


def test_download_nrcs_over_isotp(bms, rig):
    server = rig.servers["bms"]
    bms.change_session(3)
    bms.change_session(2)
    bms.unlock_security_access(0x11)
    location = MemoryLocation(0x0, 64, 32, 32)
    server.nv.flash.target.write(0, b"\x5a")  # a stale partial image in the other bank
    expect_nrc(0x70, bms.request_download, location)  # not erased
    expect_nrc(0x31, bms.request_download, MemoryLocation(0xFFFFF0, 64, 32, 32))
    bms.start_routine(0xFF00, b"\x44" + (0).to_bytes(4, "big") + (64).to_bytes(4, "big"))
    bms.request_download(location)
    expect_nrc(0x22, bms.request_download, location)  # one download at a time
    server.nv.flash.target.write_fault = True
    expect_nrc(0x72, bms.transfer_data, 1, b"\x01" * 8)
    server.nv.flash.target.write_fault = False
    bms.start_routine(0xFF00, b"\x44" + (0).to_bytes(4, "big") + (64).to_bytes(4, "big"))
    bms.request_download(location)
    rig.van.supply_ok = False
    expect_nrc(0x71, bms.transfer_data, 1, b"\x01" * 8)


def _functional_exchange(rig: Rig, request: bytes) -> dict[str, bytes | None]:
    notifier = diag.acquire_notifier(rig.tester_bus)
    stacks = {}
    try:
        for name in ("vcu", "bms"):
            ecu = diag.ECUS[name]
            stacks[name] = isotp.NotifierBasedCanStack(
                rig.tester_bus, notifier, params=diag.isotp_params(),
                address=isotp.Address(isotp.AddressingMode.Normal_11bits, txid=ecu.request_id, rxid=ecu.response_id))
            stacks[name].start()
        conn = PythonIsoTpConnection(isotp.NotifierBasedCanStack(
            rig.tester_bus, notifier, params=diag.isotp_params(),
            address=isotp.Address(isotp.AddressingMode.Normal_11bits, txid=diag.FUNCTIONAL_REQUEST_ID, rxid=0x7E8)))
        conn.open()
        try:
            conn.send(request)
        finally:
            conn.close()
        if True:
            return {name: (bytes(a) if (a := s.recv(block=True, timeout=0.5)) is not None else None)
                    for name, s in stacks.items()}
    finally:
        for stack in stacks.values():
            stack.stop()
        diag.release_notifier(rig.tester_bus, notifier)


def test_functional_addressing(rig):
    assert _functional_exchange(rig, b"\x3e\x00") == {"vcu": b"\x7e\x00", "bms": b"\x7e\x00"}
    assert _functional_exchange(rig, b"\x23\x00") == {"vcu": None, "bms": None}  # 0x11 suppressed
    assert _functional_exchange(rig, b"\x3e") == {"vcu": b"\x7f\x3e\x13", "bms": b"\x7f\x3e\x13"}
