"""The simulated ECUs against ISO 14229-1:2020 (UDS) and ISO 15765-2:2016 (ISO-TP).

Three views: the engine alone (bytes in, bytes out, a stepped clock), a udsoncan client over
can-isotp, and raw CAN frames where udsoncan / can-isotp hide the detail (flow control,
padding, malformed frames). Each test cites the clause it checks.
"""

from __future__ import annotations

import random
import time
import uuid
import zlib
from collections.abc import Iterator

import can
import pytest
import udsoncan
from udsoncan.exceptions import NegativeResponseException

from hil.uds.ecus import Z10_ECUS
from hil.uds.isotp_rules import conform_rx_frame
from hil.uds.server import EcuConfig, UdsServer
from hil.uds.transport import UdsEcuTransport
from uds_helpers import StepClock, Van
from vehicle_io import diag
from vehicle_io.diag.security import dev_key

LIVE = {"soc": 0.5, "pack_voltage_v": 340.0, "pack_current_a": 5.0, "cell_t_max_c": 25.0,
        "isolation_resistance_ohm": 1e6, "speed_mps": 0.0, "motor_speed_rpm": 0.0}
VIN = Z10_ECUS["bms"].vin.encode("ascii")
SERIAL = Z10_ECUS["bms"].serial.encode("ascii")
SOFTWARE = Z10_ECUS["bms"].software_version.encode("ascii")


def nrc(sid: int, code: int) -> list[bytes]:
    return [bytes([0x7F, sid, code])]


@pytest.fixture
def clock() -> StepClock:
    return StepClock(follow_real_time=False)


def make(clock: StepClock, van: Van | None = None, **overrides: object) -> UdsServer:
    config = Z10_ECUS["bms"]
    if overrides:
        config = EcuConfig(**{**config.__dict__, **overrides})
    return UdsServer(config, clock=clock, live=lambda: LIVE, conditions=van or Van(), rng=random.Random(3))


def unlock(server: UdsServer, level: int) -> None:
    seed = server.handle(bytes([0x27, level]))[0][2:]
    assert server.handle(bytes([0x27, level + 1]) + dev_key("bms", level, seed)) == [bytes([0x67, level + 1])]


def to_programming(server: UdsServer, unlocked: bool = True) -> None:
    assert server.handle(b"\x10\x03")[0][:2] == b"\x50\x03"
    assert server.handle(b"\x10\x02")[0][:2] == b"\x50\x02"
    if unlocked:
        unlock(server, 0x11)


# ------------------------------------------------------------------ ISO 14229-1 engine
def test_suppress_bit_hides_positive_responses_only(clock):
    """7.5.2 / table 4: SPRMIB = 1 -> no positive response; a negative one is still sent."""
    server = make(clock)
    assert server.handle(b"\x10\x83") == [] and server.session == 0x03
    assert server.handle(b"\x3e\x80") == []
    assert server.handle(b"\x85\x82") == [] and not server.nv.dtcs.setting_enabled
    assert server.handle(b"\x85\x81") == [] and server.nv.dtcs.setting_enabled
    assert server.handle(b"\x28\x83\x01") == [] and not server.normal_tx_enabled
    assert server.handle(b"\x28\x80\x01") == [] and server.normal_tx_enabled
    seed = server.handle(b"\x27\x01")[0][2:]
    assert server.handle(b"\x27\x82" + dev_key("bms", 1, seed)) == [] and server.security_level == 1
    # negative responses with the bit set are sent (physical addressing)
    assert server.handle(b"\x10\x85") == nrc(0x10, 0x12)
    assert server.handle(b"\x3e\x81") == nrc(0x3E, 0x12)
    assert server.handle(b"\x85\x83") == nrc(0x85, 0x12)
    assert server.handle(b"\x11\x84") == nrc(0x11, 0x12)
    boots = server.nv.boot_count
    assert server.handle(b"\x11\x81") == [] and server.nv.boot_count == boots + 1


def test_suppressed_routine_with_pending_still_ends_with_its_final_response(clock):
    """7.5.2 note: once 0x78 was sent, the final response is sent even with SPRMIB = 1."""
    server = make(clock)
    to_programming(server)
    assert server.handle(b"\x31\x81\xff\x00\x44" + bytes(4) + (64).to_bytes(4, "big")) == nrc(0x31, 0x78)
    clock.advance(1.0)
    assert server.poll() == [b"\x71\x01\xff\x00\x00"]


def test_functional_requests_suppress_exactly_the_iso_nrcs(clock, van):
    """7.5.3.3 / table 6: functional -> 0x11, 0x12, 0x31, 0x7E, 0x7F not sent; others are."""
    server = make(clock, van)
    assert server.handle(b"\xba\x00", functional=True) == []  # 0x11
    assert server.handle(b"\x10\x05", functional=True) == []  # 0x12
    assert server.handle(b"\x22\x12\x34", functional=True) == []  # 0x31
    assert server.handle(b"\x10\x02", functional=True) == []  # 0x7E (programming from default)
    assert server.handle(b"\x23\x14\x00\x04", functional=True) == []  # 0x7F
    assert server.handle(b"\x3e", functional=True) == nrc(0x3E, 0x13)
    assert server.handle(b"\x22\xf1\x90", functional=True) == [b"\x62\xf1\x90" + VIN]
    server.handle(b"\x10\x03")
    assert server.handle(b"\x27\x02\x00\x00\x00\x00", functional=True) == nrc(0x27, 0x24)
    van.speed_mps = 3.0
    assert server.handle(b"\x10\x82", functional=True) == nrc(0x10, 0x22)
    # the same requests physically addressed: every NRC is sent
    van.speed_mps = 0.0
    assert server.handle(b"\xba\x00") == nrc(0xBA, 0x11)
    assert server.handle(b"\x22\x12\x34") == nrc(0x22, 0x31)


@pytest.mark.parametrize(("request_bytes", "code"), [
    (b"\x10\x05\x00", 0x12),  # sub-function unsupported before total length
    (b"\x11\x04\x00", 0x12),
    (b"\x3e\x01\x00", 0x12),
    (b"\x31\x05", 0x12),
    (b"\x31\x02\xff\x00", 0x12),  # stopRoutine: no routine of this ECU can be stopped
    (b"\x10\x02\x00", 0x7E),  # programming from default: 0x7E before total length
    (b"\x10", 0x13),  # below the minimum length (SID + sub-function)
    (b"\x10\x03\x00", 0x13),  # supported sub-function, wrong total length
    (b"\x3e\x00\x00", 0x13),
    (b"\x11\x01\x00", 0x13),
    (b"\x31\x01", 0x13),
])
def test_sub_function_checks_come_before_the_total_length(clock, request_bytes, code):
    """Figure 6: minimum length -> 0x12 -> 0x7E -> (0x33) -> 0x24 -> service checks (0x13, 0x31)."""
    server = make(clock)
    if request_bytes[0] == 0x31:
        server.handle(b"\x10\x03")
    assert server.handle(request_bytes) == nrc(request_bytes[0], code)


def test_service_security_comes_before_length_and_sequence(clock):
    """Figure 5: SID supported -> in session (0x7F) -> SID security (0x33) -> length / sequence."""
    server = make(clock)
    assert server.handle(b"\x34\x00") == nrc(0x34, 0x7F)  # default session
    to_programming(server, unlocked=False)
    assert server.handle(b"\x34\x00") == nrc(0x34, 0x33)
    assert server.handle(b"\x36") == nrc(0x36, 0x33)
    assert server.handle(b"\x37") == nrc(0x37, 0x33)
    assert server.handle(b"\xba") == nrc(0xBA, 0x11)
    unlock(server, 0x11)
    assert server.handle(b"\x34\x00") == nrc(0x34, 0x13)
    assert server.handle(b"\x36") == nrc(0x36, 0x13)  # length before the sequence (no download)
    assert server.handle(b"\x36\x01\xaa") == nrc(0x36, 0x24)
    assert server.handle(b"\x37") == nrc(0x37, 0x24)
    assert server.handle(b"\x34\x11\x44" + bytes(8)) == nrc(0x34, 0x31)  # dataFormatIdentifier


def test_security_access_order_and_rules(clock):
    """10.4: 0x12 unknown level, 0x7E wrong session, 0x24 key without seed (before 0x13)."""
    server = make(clock)
    server.handle(b"\x10\x03")
    assert server.handle(b"\x27\x03") == nrc(0x27, 0x12)
    assert server.handle(b"\x27\x11") == nrc(0x27, 0x7E)
    assert server.handle(b"\x27\x02\x00") == nrc(0x27, 0x24)  # sequence before total length
    seed = server.handle(b"\x27\x01")[0]
    assert seed[:2] == b"\x67\x01" and len(seed) == 6 and any(seed[2:])
    assert server.handle(b"\x27\x02" + bytes(4)) == nrc(0x27, 0x35)
    assert server.handle(b"\x27\x02" + dev_key("bms", 1, seed[2:])) == nrc(0x27, 0x24)  # the seed is used up
    unlock(server, 0x01)
    assert server.handle(b"\x27\x01") == [b"\x67\x01\x00\x00\x00\x00"]  # already unlocked: zero seed


def test_session_control_response_carries_p2_and_p2_star(clock):
    """Table 29 (10.2): P2server_max in 1 ms, P2*server_max in 10 ms; REFERENCES: 50 ms, 5000 ms."""
    server = make(clock)
    p2_ms, p2_star_ms = 50, 5000
    timing = p2_ms.to_bytes(2, "big") + (p2_star_ms // 10).to_bytes(2, "big")
    for session in (0x03, 0x02, 0x01):
        assert server.handle(bytes([0x10, session])) == [bytes([0x50, session]) + timing]


def test_s3_timeout_falls_back_to_default_and_relocks_tester_present_keeps_alive(clock):
    """ISO 14229-2 S3server 5000 ms: no request for S3 -> default session, security locked."""
    server = make(clock)
    server.handle(b"\x10\x03")
    unlock(server, 0x01)
    for _ in range(3):  # 14.7 s in extended, kept alive by TesterPresent (physical and functional)
        clock.advance(4.9)
        assert server.handle(b"\x3e\x80", functional=True) == []
    assert server.session == 0x03 and server.security_level == 0x01
    clock.advance(5.1)
    server.poll()
    assert server.session == 0x01 and server.security_level == 0
    assert server.handle(b"\x22\xf1\x86") == [b"\x62\xf1\x86\x01"]
    server.handle(b"\x10\x03")
    assert server.handle(b"\x2e\xf1\x90" + VIN) == nrc(0x2E, 0x33)


def test_functional_tester_present_during_a_pending_job_is_silent(clock):
    """A functional 3E 80 during 0x78 keeps S3 alive without a response; others get 0x21."""
    server = make(clock, erase_base_s=8.0)
    to_programming(server)
    assert server.handle(b"\x31\x01\xff\x00\x44" + bytes(4) + (64).to_bytes(4, "big")) == nrc(0x31, 0x78)
    clock.advance(1.0)
    assert server.handle(b"\x3e\x80", functional=True) == []
    assert server.handle(b"\x3e\x00") == nrc(0x3E, 0x21)
    assert server.handle(b"\x22\xf1\x90") == nrc(0x22, 0x21)


def test_read_data_by_identifier_several_dids(clock):
    """11.2: records in request order, unsupported DIDs left out, 0x31 if none, 0x13, 0x14."""
    server = make(clock)
    assert server.handle(b"\x22\xf1\x90\xf1\x8c\xf1\x95") == [
        b"\x62\xf1\x90" + VIN + b"\xf1\x8c" + SERIAL + b"\xf1\x95" + SOFTWARE]
    assert server.handle(b"\x22\xf1\x8c\x12\x34\xf1\x90") == [b"\x62\xf1\x8c" + SERIAL + b"\xf1\x90" + VIN]
    assert server.handle(b"\x22\x12\x34\x56\x78") == nrc(0x22, 0x31)
    assert server.handle(b"\x22\xf1") == nrc(0x22, 0x13)
    assert server.handle(b"\x22\xf1\x90\xf1") == nrc(0x22, 0x13)
    assert server.handle(b"\x22" + b"\xf1\x90" * 17) == nrc(0x22, 0x13)  # more DIDs than allowed at once
    short = make(clock, max_read_length=40)
    assert short.handle(b"\x22\xf1\x90\xf1\x8c") == [b"\x62\xf1\x90" + VIN + b"\xf1\x8c" + SERIAL]
    assert short.handle(b"\x22\xf1\x90\xf1\x8c\xf1\x95") == nrc(0x22, 0x14)  # 46 > 40 bytes


def test_download_counter_lengths_and_repeats(clock):
    """14.2-14.4: lengthFormatIdentifier 0x20, counter from 0x01 wrapping to 0x00, repeat, 0x73."""
    server = make(clock, max_block_length=8)  # 6 data bytes a block
    to_programming(server)
    blocks = 258
    size = 6 * blocks
    server.handle(b"\x31\x01\xff\x00\x44" + bytes(4) + size.to_bytes(4, "big"))
    clock.advance(1.0)
    assert server.poll() == [b"\x71\x01\xff\x00\x00"]
    assert server.handle(b"\x34\x00\x44" + bytes(4) + size.to_bytes(4, "big")) == [b"\x74\x20\x00\x08"]
    assert server.handle(b"\x36\x00" + bytes(6)) == nrc(0x36, 0x73)  # the first block is 0x01
    assert server.handle(b"\x36\x01" + bytes(7)) == nrc(0x36, 0x13)  # above maxNumberOfBlockLength
    image = random.Random(4).randbytes(size)
    for index in range(blocks):
        counter = (index + 1) & 0xFF
        block = image[6 * index:6 * index + 6]
        assert server.handle(bytes([0x36, counter]) + block) == [bytes([0x76, counter])]
        if counter == 0xFF:
            writes = server.nv.flash.target.write_operations
            assert server.handle(bytes([0x36, 0xFF]) + block) == [b"\x76\xff"]  # repeated block
            assert server.nv.flash.target.write_operations == writes
    assert bytes(server.nv.flash.target.data[:size]) == image  # block 256 carried counter 0x00
    assert server.handle(b"\x36\x01\x00") == nrc(0x36, 0x73)
    assert server.handle(b"\x36\x03\x00") == nrc(0x36, 0x71)  # beyond the announced memorySize
    assert server.handle(b"\x37") == [b"\x77" + zlib.crc32(image).to_bytes(4, "big")]


def test_dtc_reports_carry_the_availability_mask(clock):
    """12.3 (0x19 0x01 / 0x02 / 0x0A) and 12.2 (0x14 group 0xFFFFFF)."""
    server = make(clock)
    assert server.handle(b"\x19\x01\x09") == [b"\x59\x01\xff\x01\x00\x00"]
    server.report_fault("isolation", True)
    assert server.handle(b"\x19\x01\x09") == [b"\x59\x01\xff\x01\x00\x01"]
    status = server.nv.dtcs.records[0x0AA600].status
    assert server.handle(b"\x19\x02\x01") == [b"\x59\x02\xff\x0a\xa6\x00" + bytes([status])]
    supported = server.handle(b"\x19\x0a")[0]
    assert supported[:3] == b"\x59\x0a\xff" and len(supported) == 3 + 4 * 3
    assert server.handle(b"\x19\x82\x01") == nrc(0x19, 0x12)  # no SPRMIB on ReadDTCInformation
    assert server.handle(b"\x14\xff\xff\xff") == [b"\x54"]
    assert server.handle(b"\x19\x02\x01") == [b"\x59\x02\xff"]


# ------------------------------------------------------------------ ISO 15765-2 frame rules
def _msg(data: bytes, arbitration_id: int = 0x7E1, fd: bool = False) -> can.Message:
    return can.Message(arbitration_id=arbitration_id, data=data, is_extended_id=False, is_fd=fd)


@pytest.mark.parametrize(("data", "kept"), [
    (b"\x03\x22\xf1\x90\xcc\xcc\xcc\xcc", True),
    (b"\x00\x03\x22\xf1\x90\xcc\xcc\xcc", False),  # SF_DL = 0 is reserved on CAN_DL <= 8 (9.6.2.2)
    (b"\x10\x07\x22\xf1\x90\xf1\x8c\xf1", False),  # FF_DL 7 < FF_DLmin 8 (9.6.3.2)
    (b"\x10\x08\x22\xf1\x90\xf1\x8c\xf1", True),
    (b"\x10\x00\x00\x00\x0f\xff\x22\xf1", False),  # escaped FF_DL <= 4095 (9.6.3.2)
    (b"\x10\x00\x00\x00\x10\x00\x22\xf1", True),
])
def test_conform_rx_frame_ignores_what_iso_15765_2_ignores(data, kept):
    assert (conform_rx_frame(_msg(data)) is not None) == kept


def test_conform_rx_frame_flow_control_rules():
    """9.6.5.4: reserved STmin -> 0x7F; 9.6.5.2: reserved FS aborts (handed on as overflow)."""
    for stmin in (0x80, 0xF0, 0xFA, 0xFF):
        assert bytes(conform_rx_frame(_msg(bytes([0x30, 0x00, stmin]) + b"\xcc" * 5)).data)[:3] == b"\x30\x00\x7f"
    for stmin in (0x00, 0x7F, 0xF1, 0xF9):
        kept = conform_rx_frame(_msg(bytes([0x30, 0x02, stmin]) + b"\xcc" * 5))
        assert bytes(kept.data)[:3] == bytes([0x30, 0x02, stmin])
    assert bytes(conform_rx_frame(_msg(b"\x35\x00\x00" + b"\xcc" * 5)).data)[0] == 0x32
    fd_ff = _msg(b"\x10\x0b" + bytes(10), fd=True)  # CAN_DL 12: FF_DLmin = 11
    assert conform_rx_frame(fd_ff) is not None
    assert conform_rx_frame(_msg(b"\x10\x0a" + bytes(10), fd=True)) is None
    assert conform_rx_frame(_msg(b"\x00\x03\x22\xf1\x90" + bytes(7), fd=True)) is not None  # SF escape, CAN_DL 12
    assert conform_rx_frame(_msg(b"\x10\x08" + bytes(6)), functional=True) is None  # functional: SF only


class RawTester:
    """One simulated BMS (and VCU) on a virtual bus, a tester that sends and reads raw frames."""

    def __init__(self, fd: bool = False, ecus: tuple[str, ...] = ("bms",)) -> None:
        channel = f"pt-{uuid.uuid4().hex}"
        self.clock = StepClock()
        self.servers = {name: UdsServer(Z10_ECUS[name], clock=self.clock, live=lambda: LIVE, conditions=Van())
                        for name in ecus}
        self.ecu_bus = can.Bus(interface="virtual", channel=channel, fd=fd)
        self.bus = can.Bus(interface="virtual", channel=channel, fd=fd)
        self.transports = [UdsEcuTransport(self.ecu_bus, self.servers[name], diag.ECUS[name], fd=fd).start()
                           for name in ecus]
        self.fd = fd

    def send(self, data: bytes, arbitration_id: int = 0x7E1) -> None:
        if not self.fd:
            data = data + b"\x55" * (8 - len(data))  # tester padding differs from the ECU's 0xCC
        self.bus.send(can.Message(arbitration_id=arbitration_id, data=data, is_extended_id=False,
                                  is_fd=self.fd, bitrate_switch=self.fd))

    def frames(self, timeout_s: float = 0.3, count: int = 1) -> list[can.Message]:
        """Up to ``count`` frames from the ECUs, waiting at most ``timeout_s`` for each."""
        out: list[can.Message] = []
        while len(out) < count:
            msg = self.bus.recv(timeout=timeout_s)
            if msg is None:
                break
            out.append(msg)
        return out

    def close(self) -> None:
        for transport in self.transports:
            transport.shutdown()
        self.ecu_bus.shutdown()
        self.bus.shutdown()


@pytest.fixture
def raw() -> Iterator[RawTester]:
    tester = RawTester()
    try:
        yield tester
    finally:
        tester.close()


def _long_request() -> tuple[bytes, bytes]:
    """22 + the VIN DID 16 times: a 305-byte answer (FF + 43 consecutive frames, SN wraps twice)."""
    return b"\x22" + b"\xf1\x90" * 16, b"\x62" + (b"\xf1\x90" + VIN) * 16


def _start_long_answer(raw: RawTester) -> bytes:
    request, expected = _long_request()
    raw.send(b"\x10" + bytes([len(request)]) + request[:6])
    fc = raw.frames()[0]
    assert fc.arbitration_id == 0x7E9 and bytes(fc.data) == b"\x30\x00\x00" + b"\xcc" * 5  # 9.6.5: CTS, BS 0, STmin 0
    for index, start in enumerate(range(6, len(request), 7)):
        raw.send(bytes([0x20 | ((index + 1) & 0xF)]) + request[start:start + 7])
    ff = raw.frames()[0]
    assert bytes(ff.data[:2]) == bytes([0x10 | (len(expected) >> 8), len(expected) & 0xFF])
    return expected


def _consecutive_payload(frames: list[can.Message], first_sn: int = 1) -> bytes:
    payload = b""
    for index, frame in enumerate(frames):
        assert frame.dlc == 8 and bytes(frame.data[:1]) == bytes([0x20 | ((first_sn + index) & 0xF)])
        payload += bytes(frame.data[1:])
    return payload


def test_single_frame_answer_is_padded_to_dlc_8(raw):
    """9.6.2 / 10.4.2.1: classic SF, the ECU pads with 0xCC to CAN_DL 8."""
    raw.send(b"\x03\x22\xf1\x86")
    answer = raw.frames()[0]
    assert answer.arbitration_id == 0x7E9 and bytes(answer.data) == b"\x04\x62\xf1\x86\x01\xcc\xcc\xcc"


def test_segmented_answer_sequence_number_wraps_and_last_frame_is_padded(raw):
    """9.6.4: SN 1..F, 0, 1...; the last CF padded with 0xCC (10.4.2.1)."""
    expected = _start_long_answer(raw)
    raw.send(b"\x30\x00\x00")
    cfs = raw.frames(count=43)
    assert len(cfs) == 43 and raw.frames(timeout_s=0.05) == []
    payload = _consecutive_payload(cfs)
    assert payload[:len(expected) - 6] == expected[6:]
    assert set(payload[len(expected) - 6:]) == {0xCC}


def test_block_size_and_reserved_stmin(raw):
    """9.6.5.3: BS frames, then wait for the next FC; 9.6.5.4: reserved STmin is used as 127 ms."""
    expected = _start_long_answer(raw)
    raw.send(b"\x30\x02\xfb")  # BS 2, STmin 0xFB reserved
    first = raw.frames(count=2, timeout_s=0.5)
    assert len(first) == 2
    assert first[1].timestamp - first[0].timestamp >= 0.1  # 127 ms between CFs, not 0
    assert raw.frames(timeout_s=0.1) == []  # the block is over: the ECU waits for a FC
    raw.send(b"\x30\x00\xf5")  # STmin 500 us
    rest = raw.frames(count=41)
    assert _consecutive_payload(first + rest)[:len(expected) - 6] == expected[6:]


def test_wait_frames_restart_n_bs(raw):
    """9.6.5.1 / 9.7: each FC WAIT restarts N_Bs (1000 ms); the sender accepts WAITs."""
    expected = _start_long_answer(raw)
    for _ in range(3):  # 1.2 s of WAIT, beyond one N_Bs
        raw.send(b"\x31\x00\x00")
        assert raw.frames(timeout_s=0.4) == []
    raw.send(b"\x30\x00\x00")
    cfs = raw.frames(count=43)
    assert len(cfs) == 43 and _consecutive_payload(cfs)[:len(expected) - 6] == expected[6:]


@pytest.mark.parametrize("flow_control", [b"\x32\x00\x00", b"\x35\x00\x00"])
def test_overflow_and_invalid_flow_status_abort_the_answer(raw, flow_control):
    """9.6.5.2: FS = OVFLW aborts; a reserved FS aborts (N_INVALID_FS). The ECU serves on."""
    _start_long_answer(raw)
    raw.send(flow_control)
    assert raw.frames(timeout_s=0.15) == []
    raw.send(b"\x30\x00\x00")  # too late: the transfer is gone
    assert raw.frames(timeout_s=0.1) == []
    raw.send(b"\x03\x22\xf1\x86")
    assert bytes(raw.frames()[0].data[:5]) == b"\x04\x62\xf1\x86\x01"


def test_malformed_first_frames_and_single_frames_are_ignored(raw):
    """9.6.3.2: FF_DL < 8 ignored, no FC; 9.6.2.2: SF_DL = 0 on CAN_DL 8 ignored."""
    raw.send(b"\x10\x03\x22\xf1\x86")
    assert raw.frames(timeout_s=0.15) == []
    raw.send(b"\x00\x03\x22\xf1\x86")
    assert raw.frames(timeout_s=0.15) == []
    raw.send(b"\x30\x00\x00")  # a stray FC is ignored as well
    raw.send(b"\x03\x22\xf1\x86")
    assert bytes(raw.frames()[0].data[:5]) == b"\x04\x62\xf1\x86\x01"


def test_n_cr_timeout_drops_the_reception(raw):
    """9.7 N_Cr (1000 ms): a CF after the timeout is not appended; the request is lost."""
    request = b"\x22\xf1\x90\xf1\x8c\xf1\x95\xf1\x86"
    raw.send(b"\x10\x09" + request[:6])
    assert bytes(raw.frames()[0].data[:1]) == b"\x30"
    time.sleep(1.15)
    raw.send(b"\x21" + request[6:])
    assert raw.frames(timeout_s=0.15) == []
    raw.send(b"\x03\x22\xf1\x86")
    assert bytes(raw.frames()[0].data[:5]) == b"\x04\x62\xf1\x86\x01"


def test_functional_first_frame_gets_no_flow_control_and_sf_gets_every_ecu():
    """9.6.1: functional addressing is single-frame only; every ECU answers a functional SF."""
    tester = RawTester(ecus=("vcu", "bms"))
    try:
        tester.send(b"\x10\x09\x22\xf1\x90\xf1\x8c\xf1", arbitration_id=0x7DF)
        assert tester.frames(timeout_s=0.15) == []
        tester.send(b"\x02\x3e\x00", arbitration_id=0x7DF)
        answers = {m.arbitration_id: bytes(m.data) for m in tester.frames(count=2)}
        assert answers == {0x7E8: b"\x02\x7e\x00" + b"\xcc" * 5, 0x7E9: b"\x02\x7e\x00" + b"\xcc" * 5}
    finally:
        tester.close()


def test_can_fd_single_frame_with_escape():
    """9.6.2.1 (CAN FD): SF_DL in byte 1 when CAN_DL > 8; a 20-byte answer is one FD frame."""
    tester = RawTester(fd=True)
    try:
        tester.send(b"\x00\x03\x22\xf1\x90" + b"\xcc" * 7)  # CAN_DL 12
        answer = tester.frames()[0]
        assert answer.is_fd and len(answer.data) > 8
        assert bytes(answer.data[:2]) == b"\x00\x14" and bytes(answer.data[2:22]) == b"\x62\xf1\x90" + VIN
        tester.send(b"\x00\x03\x22\xf1\x90\xcc\xcc\xcc")  # SF_DL 0 on CAN_DL 8: reserved
        assert tester.frames(timeout_s=0.15) == []
    finally:
        tester.close()


# ------------------------------------------------------------------ udsoncan over can-isotp
def test_udsoncan_client_sees_iso_behaviour(raw):
    """A stock udsoncan client: server timing, several DIDs, suppressed session change, NRC order."""
    with diag.open_client(raw.bus, diag.ECUS["bms"]) as client:
        client.set_configs({"use_server_timing": True, "data_identifiers": {
            0xF190: udsoncan.AsciiCodec(17), 0xF18C: udsoncan.AsciiCodec(12), 0xF186: ">B"}})
        response = client.change_session(3)
        assert response.service_data.p2_server_max == pytest.approx(0.050)
        assert response.service_data.p2_star_server_max == pytest.approx(5.0)
        values = client.read_data_by_identifier([0xF190, 0xF18C]).service_data.values
        assert values == {0xF190: VIN.decode(), 0xF18C: SERIAL.decode()}
        with client.suppress_positive_response:
            client.change_session(1)
        assert client.read_data_by_identifier_first(0xF186) == (1,)
        with pytest.raises(NegativeResponseException) as info:
            client.request_download(udsoncan.MemoryLocation(0, 16, 32, 32))
        assert info.value.response.code == 0x7F
