"""The UDS engine on its own: bytes in, bytes out, a stepped clock (no bus, no threads)."""

from __future__ import annotations

import random
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.uds import dtc as dtcbits
from hil.uds.ecus import Z10_ECUS, make_servers
from hil.uds.server import EcuConfig, EcuNvState, UdsServer
from uds_helpers import StepClock, Van
from vehicle_io.diag.security import dev_key
from vehicle_io.flash.signing import dev_private_key, sign_image

LIVE = {"soc": 0.8125, "pack_voltage_v": 355.2, "pack_current_a": -12.3, "cell_t_max_c": 31.4,
        "isolation_resistance_ohm": 2.5e6, "speed_mps": 0.0, "motor_speed_rpm": 0.0}


def nrc(sid: int, code: int) -> list[bytes]:
    return [bytes([0x7F, sid, code])]


@pytest.fixture
def clock() -> StepClock:
    return StepClock(follow_real_time=False)


def make(clock: StepClock, van: Van | None = None, name: str = "bms", **overrides) -> UdsServer:
    config = Z10_ECUS[name]
    if overrides:
        config = EcuConfig(**{**config.__dict__, **overrides})
    return UdsServer(config, clock=clock, live=lambda: LIVE, conditions=van or Van(), rng=random.Random(7))


def unlock(server: UdsServer, level: int) -> None:
    seed_response = server.handle(bytes([0x27, level]))[0]
    assert seed_response[:2] == bytes([0x67, level])
    key = dev_key(server.config.name, level, seed_response[2:])
    assert server.handle(bytes([0x27, level + 1]) + key) == [bytes([0x67, level + 1])]


def to_programming(server: UdsServer) -> None:
    assert server.handle(b"\x10\x03")[0][0] == 0x50
    assert server.handle(b"\x10\x02")[0][0] == 0x50
    unlock(server, 0x11)


def finish_job(server: UdsServer, clock: StepClock) -> list[bytes]:
    out: list[bytes] = []
    for _ in range(1000):
        deadline = server.next_deadline_s()
        assert deadline is not None
        clock.offset_s = max(clock.offset_s, deadline)
        out += server.poll()
        if not server.busy:
            return out
    raise AssertionError("the job never finished")


# ------------------------------------------------------------------ sessions and timing
def test_session_response_carries_p2_and_p2_star_in_10ms_units(clock):
    server = make(clock)
    assert server.handle(b"\x10\x03") == [bytes([0x50, 0x03, 0x00, 50, 5000 // 10 >> 8, 5000 // 10 & 0xFF])]


def test_s3_timeout_returns_to_default_and_relocks(clock):
    server = make(clock)
    server.handle(b"\x10\x03")
    unlock(server, 0x01)
    clock.advance(4.9)
    assert server.handle(b"\x3e\x80") == []  # keeps the session alive, no response (suppressed)
    clock.advance(4.9)
    assert server.poll() == [] and server.session == 0x03
    clock.advance(0.2)
    server.poll()
    assert server.session == 0x01 and server.security_level == 0
    assert server.counters["s3_timeouts"] == 1


def test_programming_session_only_from_extended_and_only_at_standstill(clock, van):
    server = make(clock, van)
    assert server.handle(b"\x10\x02") == nrc(0x10, 0x7E)
    server.handle(b"\x10\x03")
    van.speed_mps = 3.0
    assert server.handle(b"\x10\x02") == nrc(0x10, 0x22)
    van.speed_mps = 0.0
    assert server.handle(b"\x10\x02")[0][:2] == b"\x50\x02"


# ------------------------------------------------------------------ security access
def test_three_wrong_keys_lock_out_and_the_lockout_survives_reset_and_power_cycle(clock):
    server = make(clock)
    server.handle(b"\x10\x03")
    for expected in (0x35, 0x35, 0x36):
        seed = server.handle(b"\x27\x01")[0][2:]
        wrong = bytes(b ^ 0xFF for b in dev_key("bms", 1, seed))
        assert server.handle(b"\x27\x02" + wrong) == nrc(0x27, expected)
    assert server.handle(b"\x27\x01") == nrc(0x27, 0x37)
    server.handle(b"\x11\x01")  # ECU reset
    clock.advance(9.0)
    server.handle(b"\x10\x03")
    assert server.handle(b"\x27\x01") == nrc(0x27, 0x37)
    # a new server object on the same non-volatile state (power cycle) is still locked out
    reborn = UdsServer(server.config, server.nv, clock=clock)
    reborn.handle(b"\x10\x03")
    assert reborn.handle(b"\x27\x01") == nrc(0x27, 0x37)
    clock.advance(10.0)
    reborn.handle(b"\x10\x03")
    unlock(reborn, 0x01)


def test_after_the_delay_one_more_wrong_key_locks_out_again(clock):
    server = make(clock)
    server.handle(b"\x10\x03")
    for _ in range(3):
        server.handle(b"\x27\x01")
        server.handle(b"\x27\x02\x00\x00\x00\x00")
    clock.advance(10.0)
    server.handle(b"\x10\x03")
    server.handle(b"\x27\x01")
    assert server.handle(b"\x27\x02\x00\x00\x00\x00") == nrc(0x27, 0x36)


def test_key_without_seed_is_a_sequence_error_and_unlocked_level_gives_zero_seed(clock):
    server = make(clock)
    server.handle(b"\x10\x03")
    assert server.handle(b"\x27\x02\x01\x02\x03\x04") == nrc(0x27, 0x24)
    unlock(server, 0x01)
    assert server.handle(b"\x27\x01") == [b"\x67\x01\x00\x00\x00\x00"]


# ------------------------------------------------------------------ DTCs
def test_dtc_status_bits_follow_iso14229_annex_d(clock):
    server = make(clock)
    record = server.nv.dtcs.by_name("isolation")
    assert record.status == dtcbits.TEST_NOT_COMPLETED_SINCE_CLEAR | dtcbits.TEST_NOT_COMPLETED_THIS_CYCLE
    server.report_fault("isolation", True)
    assert record.status == (dtcbits.TEST_FAILED | dtcbits.TEST_FAILED_THIS_CYCLE | dtcbits.PENDING
                             | dtcbits.CONFIRMED | dtcbits.TEST_FAILED_SINCE_CLEAR | dtcbits.WARNING_INDICATOR)
    server.report_fault("isolation", False)
    assert record.status == (dtcbits.TEST_FAILED_THIS_CYCLE | dtcbits.PENDING | dtcbits.CONFIRMED
                             | dtcbits.TEST_FAILED_SINCE_CLEAR)
    server.reset()  # new operation cycle: this-cycle bits start over
    assert record.status == (dtcbits.PENDING | dtcbits.CONFIRMED | dtcbits.TEST_FAILED_SINCE_CLEAR
                             | dtcbits.TEST_NOT_COMPLETED_THIS_CYCLE)
    server.report_fault("isolation", False)
    server.reset()  # a clean completed cycle: pending ages out, confirmed stays
    assert record.status & dtcbits.PENDING == 0 and record.status & dtcbits.CONFIRMED
    assert server.handle(b"\x14\xff\xff\xff") == [b"\x54"]
    assert record.status == 0x50 and record.occurrences == 0 and not record.snapshots


def test_snapshot_records_hold_the_live_values_at_the_failure(clock):
    server = make(clock)
    server.report_fault("over_temperature", True)
    response = server.handle(b"\x19\x04\x0a\x7e\x00\x01")[0]
    # pack voltage 355.2 V at 0.1 V/bit = 3552 = 0x0DE0; SOC 0.8125 at 0.001 = 812.5 -> 812
    assert response[:6] == b"\x59\x04\x0a\x7e\x00" + bytes([server.nv.dtcs.records[0x0A7E00].status])
    assert response[6:8] == bytes([0x01, 5])
    assert b"\x02\x02\x0d\xe0" in response and b"\x02\x01" + (812).to_bytes(2, "big") in response


def test_dtc_setting_off_ignores_test_results(clock):
    server = make(clock)
    server.handle(b"\x10\x03")
    assert server.handle(b"\x85\x02") == [b"\xc5\x02"]
    assert not server.report_fault("isolation", True)
    assert server.handle(b"\x85\x01") == [b"\xc5\x01"]
    assert server.report_fault("isolation", True)


# ------------------------------------------------------------------ download
def test_block_sequence_counter_wraps_and_a_repeated_block_is_not_written_twice(clock):
    server = make(clock, max_block_length=8)  # 6 data bytes per block
    to_programming(server)
    length = 6 * 300
    assert server.handle(b"\x31\x01\xff\x00\x44" + (0).to_bytes(4, "big") + length.to_bytes(4, "big")) == nrc(0x31, 0x78)
    assert finish_job(server, clock)[-1] == b"\x71\x01\xff\x00\x00"
    assert server.handle(b"\x34\x00\x44" + (0).to_bytes(4, "big") + length.to_bytes(4, "big")) == [b"\x74\x20\x00\x08"]
    image = random.Random(1).randbytes(length)
    counters = []
    for block in range(300):
        counter = (block + 1) & 0xFF
        counters.append(counter)
        chunk = image[6 * block:6 * block + 6]
        assert server.handle(bytes([0x36, counter]) + chunk) == [bytes([0x76, counter])]
        if block == 254:  # counter 0xFF: the tester did not see the answer and repeats it
            writes = server.nv.flash.target.write_operations
            assert server.handle(bytes([0x36, counter]) + chunk) == [bytes([0x76, counter])]
            assert server.nv.flash.target.write_operations == writes
    assert counters[254:257] == [0xFF, 0x00, 0x01]
    exit_response = server.handle(b"\x37")[0]
    assert exit_response == b"\x77" + zlib.crc32(image).to_bytes(4, "big")
    assert server.nv.flash.target.write_operations == 300
    assert bytes(server.nv.flash.target.data[:length]) == image


def test_full_flash_activates_the_other_bank_only_after_dependencies_and_reset(clock):
    server = make(clock)
    to_programming(server)
    image = bytes(range(256)) * 16
    server.handle(b"\x31\x01\xff\x00\x44" + (0).to_bytes(4, "big") + len(image).to_bytes(4, "big"))
    finish_job(server, clock)
    server.handle(b"\x34\x00\x44" + (0).to_bytes(4, "big") + len(image).to_bytes(4, "big"))
    for i in range(0, len(image), 1000):
        server.handle(bytes([0x36, (i // 1000 + 1) & 0xFF]) + image[i:i + 1000])
    server.handle(b"\x37")
    assert server.handle(b"\x31\x01\xff\x01") == [b"\x71\x01\xff\x01\x01"]  # CRC not yet checked
    assert server.handle(b"\x31\x01\x02\x02" + (zlib.crc32(image) ^ 1).to_bytes(4, "big")) == [b"\x71\x01\x02\x02\x01"]
    assert server.handle(b"\x31\x01\x02\x02" + zlib.crc32(image).to_bytes(4, "big")) == [b"\x71\x01\x02\x02\x00"]
    assert server.handle(b"\x31\x03\x02\x02") == [b"\x71\x03\x02\x02\x00"]
    assert server.nv.flash.active == "A"
    assert server.handle(b"\x31\x01\xff\x01") == nrc(0x31, 0x72)  # unsigned: refused, CRC check void
    assert server.handle(b"\x31\x01\x02\x02" + zlib.crc32(image).to_bytes(4, "big")) == [b"\x71\x01\x02\x02\x00"]
    signature = sign_image(dev_private_key(), "bms", 0, image).signature
    assert server.handle(b"\x31\x01\xff\x01" + signature) == [b"\x71\x01\xff\x01\x00"]
    assert server.nv.flash.active == "A"  # still the old image until the reset
    server.handle(b"\x11\x01")
    assert server.nv.flash.active == "B" and bytes(server.nv.flash.banks["B"].data[:len(image)]) == image


def test_erase_sends_response_pending_until_done_and_busy_meanwhile(clock):
    server = make(clock, erase_base_s=1.0, erase_s_per_mib=8.0, pending_interval_s=2.0)
    to_programming(server)
    assert server.handle(b"\x31\x01\xff\x00\x44" + (0).to_bytes(4, "big") + (1 << 20).to_bytes(4, "big")) == nrc(0x31, 0x78)
    assert server.handle(b"\x3e\x00") == nrc(0x3E, 0x21)
    out = finish_job(server, clock)
    assert out[:-1] == nrc(0x31, 0x78) * (len(out) - 1) and len(out) - 1 == 4  # 9 s: repeats at 2, 4, 6, 8 s
    assert out[-1] == b"\x71\x01\xff\x00\x00"


def test_download_nrcs(clock, van):
    server = make(clock, van)
    server.handle(b"\x10\x03")
    server.handle(b"\x10\x02")
    header = b"\x34\x00\x44" + (0).to_bytes(4, "big") + (64).to_bytes(4, "big")
    assert server.handle(header) == nrc(0x34, 0x33)  # locked
    unlock(server, 0x11)
    assert server.handle(b"\x36\x01\x00") == nrc(0x36, 0x24)  # no download
    assert server.handle(b"\x37") == nrc(0x37, 0x24)
    assert server.handle(b"\x34\x00\x44\x00\x20\x00\x00" + (64).to_bytes(4, "big")) == nrc(0x34, 0x31)
    assert server.handle(b"\x34\x11\x44" + bytes(8)) == nrc(0x34, 0x31)  # compression not supported
    assert server.handle(b"\x34\x00\x44\x00") == nrc(0x34, 0x13)
    server.nv.flash.target.write(0, b"\x00")  # a byte programmed since the last erase
    assert server.handle(header) == nrc(0x34, 0x70)
    server.handle(b"\x31\x01\xff\x00\x44" + (0).to_bytes(4, "big") + (64).to_bytes(4, "big"))
    finish_job(server, clock)
    assert server.handle(header) == [b"\x74\x20\x0f\xff"]
    assert server.handle(b"\x36\x02" + bytes(8)) == nrc(0x36, 0x73)
    assert server.handle(b"\x36\x01" + bytes(65)) == nrc(0x36, 0x71)  # beyond memorySize
    assert server.handle(b"\x36\x01" + bytes(32)) == [b"\x76\x01"]
    assert server.handle(b"\x37") == nrc(0x37, 0x24)  # 32 of 64 bytes
    server.nv.flash.target.write_fault = True
    assert server.handle(b"\x36\x02" + bytes(8)) == nrc(0x36, 0x72)
    assert not server.download_active  # a programming failure aborts the transfer
    server.nv.flash.target.write_fault = False
    server.handle(b"\x31\x01\xff\x00\x44" + (0).to_bytes(4, "big") + (64).to_bytes(4, "big"))
    finish_job(server, clock)
    server.handle(header)
    van.speed_mps = 1.0
    assert server.handle(b"\x36\x01" + bytes(8)) == nrc(0x36, 0x71)


# ------------------------------------------------------------------ addressing and robustness
def test_functional_requests_suppress_the_nrcs_iso_says(clock):
    server = make(clock)
    assert server.handle(b"\x24\x00", functional=True) == []        # 0x11
    assert server.handle(b"\x3e\x05", functional=True) == []        # 0x12
    assert server.handle(b"\x22\x12\x34", functional=True) == []    # 0x31
    assert server.handle(b"\x2e\xf1\x90", functional=True) == []    # 0x7F
    assert server.handle(b"\x3e", functional=True) == nrc(0x3E, 0x13)  # others still answered
    assert server.handle(b"\x24\x00") == nrc(0x24, 0x11)


SERVICE_IDS = st.sampled_from([0x10, 0x11, 0x14, 0x19, 0x22, 0x23, 0x27, 0x28, 0x2E, 0x31, 0x34, 0x36, 0x37, 0x3E, 0x85])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=st.lists(st.one_of(st.binary(max_size=24), st.tuples(SERVICE_IDS, st.binary(max_size=12)).map(
    lambda t: bytes([t[0]]) + t[1])), max_size=12), functional=st.booleans(),
       step_s=st.floats(0, 7, allow_nan=False), ecu=st.sampled_from(sorted(Z10_ECUS)))
def test_random_requests_get_a_positive_response_or_an_nrc_never_an_exception(requests, functional, step_s, ecu):
    clock = StepClock(follow_real_time=False)
    server = make_servers(clock=clock, live=lambda: LIVE, conditions=Van(), rng=random.Random(3))[ecu]
    # a few states that reach deeper into the services: extended, programming unlocked
    prefix = [b"\x10\x03", b"\x10\x02"] if step_s > 3.5 else [b"\x10\x03"]
    for request in prefix + requests:
        for response in server.handle(request, functional=functional) + server.poll():
            assert response, "an empty response"
            if response[0] == 0x7F:
                assert len(response) == 3 and response[1] == request[0]
            else:
                assert response[0] == request[0] + 0x40
        clock.advance(step_s)


def test_nv_state_for_config_holds_the_identity():
    nv = EcuNvState.for_config(Z10_ECUS["cbc"])
    assert nv.did_values[0xF18C] == b"CBC-SIM-0001" and nv.flash.active == "A" and nv.flash.banks["A"].valid


def test_bad_config_and_bad_callbacks_are_reported_not_crashes(clock):
    from hil.uds.errors import UdsConfigError
    from hil.uds.server import LiveDid

    with pytest.raises(UdsConfigError, match="17-character"):
        EcuConfig(name="x", vin="SHORT")
    did = LiveDid(0x0203, "pack current", "pack_current_a", scale=0.1, signed=True)
    assert did.encode(float("nan")) == b"\xff\xff" and did.encode(None) == b"\xff\xff"
    assert did.encode(1e9) == (32767).to_bytes(2, "big") and did.encode(-12.3) == (-123).to_bytes(2, "big", signed=True)

    def broken() -> dict:
        raise RuntimeError("plant gone")

    def no_conditions():
        raise RuntimeError("no speed signal")

    server = UdsServer(Z10_ECUS["bms"], clock=clock, live=broken, conditions=no_conditions)
    assert server.handle(b"\x22\x02\x01") == [b"\x62\x02\x01\xff\xff"]
    assert server.counters["bad_live_data"] == 1 and "plant gone" in server.last_error
    server.handle(b"\x10\x03")
    assert server.handle(b"\x10\x02") == nrc(0x10, 0x22)  # unknown conditions: treated as moving
    assert server.counters["bad_conditions"] == 1
