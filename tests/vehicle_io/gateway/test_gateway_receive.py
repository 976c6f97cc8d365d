"""Gateway receive path: decode equals cantools, E2E through the gateway, per-bus decoders."""

from __future__ import annotations

import math
import random

import can
import numpy as np
import pytest
from gw_helpers import protected, wait_until

from vehicle_io.e2e import E2ESpec, SMState
from vehicle_io.errors import BusConfigError
from vehicle_io.gateway import ACCEPT, REJECT_REASONS, Gateway, GatewayInputError


def rows(frames: list[tuple[int, bytes]], width: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = np.array([i for i, _ in frames], dtype=np.uint32)
    data = np.zeros((len(frames), width), dtype=np.uint8)
    for r, (_, payload) in enumerate(frames):
        data[r, : len(payload)] = np.frombuffer(payload, dtype=np.uint8)
    return ids, data, np.array([len(p) for _, p in frames], dtype=np.uint8)


def reason_names(reasons: np.ndarray) -> list[str]:
    return ["ok" if r == ACCEPT else REJECT_REASONS[r] for r in reasons]


def cantools_view(db, frame_id: int, payload: bytes) -> dict[str, float]:
    return {k: float(v) for k, v in db.decode_message(frame_id, payload, decode_choices=False).items()}


def assert_store_matches(gw: Gateway, message_name: str, expected: dict[str, float]) -> None:
    for signal, value in expected.items():
        got = gw.store.value_of(f"{message_name}.{signal}")
        assert got == value or (math.isnan(got) and math.isnan(value)), (signal, got, value)


RANDOM_MESSAGES = ["Plain", "Mux", "Ext", "Fd"]


def random_payload(rng: random.Random, db, name: str) -> bytes:
    msg = db.get_message_by_name(name)
    payload = bytearray(rng.getrandbits(8) for _ in range(msg.length))
    if name == "Mux":
        payload[0] = rng.choice([0, 1, 2])
    return bytes(payload)


def test_process_batch_decode_equals_cantools(test_db, clock) -> None:
    rng = random.Random(1)
    with Gateway({}, test_db, clock=clock) as gw:
        for _ in range(300):
            name = rng.choice(RANDOM_MESSAGES)
            msg = test_db.get_message_by_name(name)
            payload = random_payload(rng, test_db, name)
            fid = msg.frame_id | (0x80000000 if msg.is_extended_frame else 0)
            reasons = gw.process_batch("x", *rows([(fid, payload)]))
            assert reason_names(reasons) == ["ok"]
            assert_store_matches(gw, name, cantools_view(test_db, msg.frame_id, payload))
        c = gw.counters()
        assert c["seen"] == c["decoded"] == 300


def test_bus_path_decode_equals_cantools(test_db, virtual_bus, channel) -> None:
    rng = random.Random(2)
    rx = virtual_bus(channel)
    tx = virtual_bus(channel)
    sent: dict[str, bytes] = {}
    # Real time runs here: a loaded runner must not turn a slow hand-off into a stale reject.
    with Gateway({"pt": rx}, test_db, stale_factor=1e6) as gw:
        for name in RANDOM_MESSAGES:
            msg = test_db.get_message_by_name(name)
            payload = random_payload(rng, test_db, name)
            sent[name] = payload
            tx.send(can.Message(arbitration_id=msg.frame_id, data=payload, is_extended_id=msg.is_extended_frame,
                                is_fd=len(payload) > 8))
        assert wait_until(lambda: gw.counters()["seen"] == len(sent))
        for name, payload in sent.items():
            frame_id = test_db.get_message_by_name(name).frame_id
            assert_store_matches(gw, name, cantools_view(test_db, frame_id, payload))
        assert gw.counters()["buses"]["pt"]["decoded"] == len(sent)


def test_z10_frames_decode_only_on_their_own_bus(z10_db, clock) -> None:
    with Gateway({}, z10_db, clock=clock) as gw:
        msg = z10_db.get_message_by_name("MCU_Power")  # pt, not E2E protected
        payload = bytes(range(msg.length))
        assert reason_names(gw.process_batch("pt", *rows([(msg.frame_id, payload)]))) == ["ok"]
        assert_store_matches(gw, "MCU_Power", cantools_view(z10_db, msg.frame_id, payload))
        # The body bus's decoder knows only body messages.
        assert reason_names(gw.process_batch("body", *rows([(msg.frame_id, payload)]))) == ["unknown_id"]
        assert gw.counters()["buses"]["body"]["rejected"]["unknown_id"] == 1


def test_frame_format_must_match(test_db, clock) -> None:
    with Gateway({}, test_db, clock=clock) as gw:
        plain = test_db.get_message_by_name("Plain")
        ext = test_db.get_message_by_name("Ext")
        reasons = gw.process_batch("x", *rows([
            (plain.frame_id | 0x80000000, bytes(8)),  # standard message sent with an extended id
            (ext.frame_id, bytes(8)),  # 29-bit id without the extended flag
            (plain.frame_id, bytes(7)),  # shorter than the DBC length
            (0x7FF, bytes(8)),  # unknown
            (plain.frame_id | 0x40000000, bytes(0)),  # remote frame
            (0x20000004, bytes(8)),  # error frame
        ]))
        assert reason_names(reasons) == ["unknown_id", "unknown_id", "too_short", "unknown_id", "remote_frame",
                                         "error_frame"]


def test_bad_batch_shapes_raise_clear_errors(test_db) -> None:
    with Gateway({}, test_db) as gw:
        with pytest.raises(GatewayInputError, match="expected data uint8"):
            gw.process_batch("x", np.zeros(2, np.uint32), np.zeros((3, 8), np.uint8))
        with pytest.raises(GatewayInputError, match="expected ids of shape"):
            gw.process_batch("x", np.zeros((2, 2), np.uint32), np.zeros((2, 8), np.uint8))
        with pytest.raises(GatewayInputError, match="expected integer ids"):
            gw.process_batch("x", np.array([-1]), np.zeros((1, 8), np.uint8))
        with pytest.raises(GatewayInputError, match="lengths"):
            gw.process_batch("x", np.zeros(1, np.uint32), np.zeros((1, 8), np.uint8), lengths=[1, 2])


# -- E2E through the gateway -------------------------------------------------------------------

def prot_frame(db, spec: E2ESpec, counter: int, speed: float = 1.0) -> tuple[int, bytes]:
    msg = db.get_message_by_name("Prot")
    payload = msg.encode({"Prot_CRC": 0, "Prot_Counter": 0, "Prot_Enable": 1, "Prot_Speed": speed, "Prot_Torque": -2.5})
    return msg.frame_id, protected(spec, payload, counter)


def test_good_sequence_becomes_valid_and_decodes(test_db, prot_spec, clock) -> None:
    with Gateway({}, test_db, clock=clock) as gw:
        for counter in range(20):
            clock.advance(0.01)
            gw.process_batch("x", *rows([prot_frame(test_db, prot_spec, counter % 15, speed=counter)]))
        status = gw.store.message_status("Prot")
        assert status.e2e_state is SMState.VALID and status.valid
        assert status.decoded == 18 and status.rejected == {"e2e_state": 2}
        assert gw.store.get("Prot_Speed").value == pytest.approx(19.0) and gw.store.is_valid("Prot_Torque")


def test_repeated_lost_jump_and_crc_are_counted(test_db, prot_spec, clock) -> None:
    with Gateway({}, test_db, clock=clock) as gw:
        counters = [0, 1, 2, 3, 3, 5, 12, 13]
        frames = [prot_frame(test_db, prot_spec, c) for c in counters]
        fid, bad = prot_frame(test_db, prot_spec, 14)
        frames.append((fid, bytes([bad[0] ^ 1]) + bad[1:]))
        fid, f15 = prot_frame(test_db, prot_spec, 0)
        raw = bytearray(f15)
        raw[1] |= 0x0F
        raw[0] = prot_spec.crc_of(raw)
        frames.append((fid, bytes(raw)))
        reasons = gw.process_batch("x", *rows(frames))
        assert reason_names(reasons) == [
            "e2e_state", "e2e_state", "ok", "ok",
            "repeated", "ok",  # 3 -> 5: one lost, still accepted
            "wrong_sequence", "ok", "crc", "bad_counter",
        ]
        results = gw.store.message_status("Prot").e2e_results
        assert results["ok_some_lost"] == 1 and results["repeated"] == 1 and results["wrong_sequence"] == 1
        assert results["error"] == 2


def test_errors_drive_invalid_and_block_values(test_db, prot_spec, clock) -> None:
    with Gateway({}, test_db, clock=clock) as gw:
        gw.process_batch("x", *rows([prot_frame(test_db, prot_spec, c, speed=5) for c in range(4)]))
        assert gw.store.message_status("Prot").e2e_state is SMState.VALID
        fid, good = prot_frame(test_db, prot_spec, 4, speed=6)
        corrupt = (fid, bytes([good[0] ^ 0x55]) + good[1:])
        gw.process_batch("x", *rows([corrupt, corrupt]))
        assert gw.store.message_status("Prot").e2e_state is SMState.INVALID
        assert not gw.store.is_valid("Prot_Speed")
        # Good frames while INVALID are counted as e2e_state rejects until the window is clean.
        reasons = gw.process_batch("x", *rows([prot_frame(test_db, prot_spec, c, speed=7) for c in (4, 5, 6)]))
        assert reason_names(reasons) == ["e2e_state", "e2e_state", "ok"]
        assert gw.store.is_valid("Prot_Speed") and gw.store.value_of("Prot_Speed") == pytest.approx(7.0)


def test_silence_feeds_no_new_data_and_goes_stale(test_db, prot_spec, clock) -> None:
    with Gateway({}, test_db, clock=clock, start=False) as gw:
        for c in range(4):
            clock.advance(0.01)
            gw.process_batch("x", *rows([prot_frame(test_db, prot_spec, c)]))
        assert gw.store.message_status("Prot").e2e_state is SMState.VALID
        clock.advance(0.024)  # inside 2.5 cycles (the default deadline): none missed yet
        gw.check_deadlines()
        assert gw.store.message_status("Prot").e2e_results["no_new_data"] == 0
        clock.advance(0.007)  # 31 ms of silence: > 3 x 10 ms -> stale; 1 deadline missed
        gw.check_deadlines()
        status = gw.store.message_status("Prot")
        assert status.stale and not status.valid and not gw.store.is_valid("Prot_Speed")
        assert status.e2e_results["no_new_data"] == 1
        clock.advance(0.05)
        gw.check_deadlines()
        assert gw.store.message_status("Prot").e2e_state is SMState.INVALID


def test_commit_hook_sees_each_batch(test_db, clock) -> None:
    seen: list[tuple[str, list[str]]] = []
    with Gateway({}, test_db, clock=clock) as gw:
        gw.add_commit_hook(lambda bus, reasons: seen.append((bus, reason_names(reasons))))
        gw.process_batch("body", *rows([(0x101, bytes(8)), (0x7FF, bytes(8))]))
    assert seen == [("body", ["ok", "unknown_id"])]


def test_shutdown_is_idempotent_and_summary_reports(test_db, virtual_bus, channel) -> None:
    gw = Gateway({"pt": virtual_bus(channel)}, test_db)
    assert gw.running
    gw.process_batch("pt", *rows([(0x101, bytes(8)), (0x123, bytes(8))]))
    gw.shutdown()
    gw.shutdown()
    assert not gw.running
    text = gw.summary()
    assert "2 frames seen, 1 decoded, 1 rejected" in text and "unknown_id 1" in text
    assert "listen-only" in text


def test_a_bus_already_under_a_notifier_is_a_config_error(test_db, virtual_bus, channel) -> None:
    bus = virtual_bus(channel)
    other = can.Notifier(bus, [], timeout=0.05)
    try:
        with pytest.raises(BusConfigError, match="cannot attach"):
            Gateway({"pt": bus}, test_db)
    finally:
        other.stop()


def test_route_to_unknown_bus_is_a_config_error(test_db) -> None:
    from vehicle_io.gateway import RouteRule

    with pytest.raises(BusConfigError, match="expected bus names"):
        Gateway({}, test_db, routes=[RouteRule("pt", "body", 0x100)])
