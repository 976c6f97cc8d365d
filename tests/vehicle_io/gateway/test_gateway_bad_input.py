"""Bad input: random frames of every kind raise nothing, lose nothing valid, all are counted."""

from __future__ import annotations

import random

import can
import numpy as np
import pytest
from gw_helpers import protected, wait_until

from vehicle_io.errors import TransmitBlocked
from vehicle_io.gateway import ACCEPT, REJECT_REASONS, Gateway

CAN_EFF_FLAG, CAN_RTR_FLAG, CAN_ERR_FLAG = 0x80000000, 0x40000000, 0x20000000


def known_ids(db) -> set[int]:
    return {m.frame_id for m in db.messages}


def random_ids(rng: np.random.Generator, n: int, avoid: set[int]) -> np.ndarray:
    kind = rng.integers(0, 5, n)
    std = rng.integers(0, 0x800, n, dtype=np.uint64)
    ext = rng.integers(0, 0x20000000, n, dtype=np.uint64) | CAN_EFF_FLAG
    junk = rng.integers(0, 2**32, n, dtype=np.uint64)  # any flag combination
    ids = np.select([kind == 0, kind == 1, kind == 2, kind == 3], [std, ext, std | CAN_RTR_FLAG, ext | CAN_ERR_FLAG],
                    junk).astype(np.uint32)
    # Random bytes on a protected or known id would be corrupt frames of that message; keep the
    # known ids for the valid frames mixed in, so "every valid frame decoded" is checkable.
    hit = np.isin(ids & 0x1FFFFFFF, list(avoid))
    ids[hit] = (ids[hit] & ~np.uint32(0x1FFFFFFF)) | np.uint32(0x555)
    return ids


def valid_frames(db, spec, n: int, rng: random.Random, counter_start: int = 0) -> list[tuple[int, bytes]]:
    prot = db.get_message_by_name("Prot")
    out: list[tuple[int, bytes]] = []
    counter = counter_start
    for i in range(n):
        kind = i % 4
        if kind == 0:
            payload = prot.encode({"Prot_CRC": 0, "Prot_Counter": 0, "Prot_Enable": 1,
                                   "Prot_Speed": rng.randint(0, 65535) / 100, "Prot_Torque": 0})
            out.append((prot.frame_id, protected(spec, payload, counter)))
            counter = (counter + 1) % 15
        elif kind == 1:
            out.append((0x101, bytes(rng.getrandbits(8) for _ in range(8))))
        elif kind == 2:
            payload = bytearray(rng.getrandbits(8) for _ in range(8))
            payload[0] = rng.choice([0, 1, 2])
            out.append((0x200, bytes(payload)))
        else:
            out.append((db.get_message_by_name("Fd").frame_id, bytes(rng.getrandbits(8) for _ in range(64))))
    return out


def assert_accounted(counters: dict) -> None:
    assert counters["seen"] == counters["decoded"] + sum(counters["rejected"].values())
    for row in counters["buses"].values():
        assert row["seen"] == row["decoded"] + sum(row["rejected"].values())


def test_1e5_random_frames_through_process_batch(test_db, prot_spec, clock) -> None:
    rng = np.random.default_rng(7)
    prng = random.Random(7)
    batch, batches = 1000, 100
    avoid = known_ids(test_db)
    counter = 0
    valid_total = 0
    with Gateway({}, test_db, clock=clock) as gw:
        # Open the E2E state machine first: its first frames are rejected by design (INIT).
        warm = valid_frames(test_db, prot_spec, 12, prng)
        counter = 3
        gw.process_batch("pt", np.array([f for f, _ in warm], dtype=np.uint32), _pad(warm))
        for b in range(batches):
            ids = random_ids(rng, batch, avoid)
            lengths = rng.integers(0, 80, batch)  # > 64 is a bad length
            data = rng.integers(0, 256, (batch, 64), dtype=np.uint8)
            good = valid_frames(test_db, prot_spec, 40, prng, counter_start=counter)
            counter = (counter + 10) % 15
            slots = np.sort(rng.choice(batch, len(good), replace=False))
            for slot, (fid, payload) in zip(slots, good):
                ids[slot] = fid
                data[slot] = 0
                data[slot, : len(payload)] = np.frombuffer(payload, dtype=np.uint8)
                lengths[slot] = len(payload)
            clock.advance(0.01)
            reasons = gw.process_batch("pt" if b % 2 else "body", ids, data, lengths)
            assert (reasons[slots] == ACCEPT).all(), [REJECT_REASONS[r] for r in reasons[slots] if r != ACCEPT]
            valid_total += len(good)
        c = gw.counters()
    assert c["seen"] == batch * batches + len(warm)
    assert_accounted(c)
    for reason in ("unknown_id", "bad_length", "remote_frame", "error_frame"):
        assert c["rejected"][reason] > 0, reason
    assert c["decoded"] >= valid_total


def _pad(frames: list[tuple[int, bytes]]) -> np.ndarray:
    data = np.zeros((len(frames), 64), dtype=np.uint8)
    for i, (_, payload) in enumerate(frames):
        data[i, : len(payload)] = np.frombuffer(payload, dtype=np.uint8)
    return data


def test_random_frames_through_virtual_buses(test_db, prot_spec, virtual_bus, channel) -> None:
    rng = random.Random(11)
    rx, tx = virtual_bus(channel), virtual_bus(channel)
    avoid = known_ids(test_db)
    sent = 0
    valid_sent: dict[int, int] = {}
    # Real time runs here: make deadlines irrelevant so a slow runner (NUMBA_DISABLE_JIT)
    # cannot turn a backlog into stale rejects; this test is about bad input, not timing.
    with Gateway({"pt": rx}, test_db, stale_factor=1e6, deadline_factor=1e6) as gw:
        good = valid_frames(test_db, prot_spec, 400, rng)
        for i in range(3000):
            kind = rng.randrange(6)
            if kind == 0:
                msg = can.Message(is_error_frame=True, arbitration_id=rng.getrandbits(29), check=False)
            elif kind == 1:
                msg = can.Message(is_remote_frame=True, arbitration_id=rng.getrandbits(11), dlc=rng.randrange(9),
                                  is_extended_id=False)
            elif kind == 2 and good:
                fid, payload = good.pop(0)
                valid_sent[fid] = valid_sent.get(fid, 0) + 1
                msg = can.Message(arbitration_id=fid, data=payload, is_extended_id=False, is_fd=len(payload) > 8)
            else:
                ext = rng.random() < 0.5
                fid = rng.getrandbits(29 if ext else 11)
                if fid in avoid:
                    fid = 0x555
                size = rng.choice([rng.randrange(9), rng.choice([12, 16, 20, 24, 32, 48, 64])])
                msg = can.Message(arbitration_id=fid, is_extended_id=ext, is_fd=size > 8,
                                  data=bytes(rng.getrandbits(8) for _ in range(size)), check=False)
            tx.send(msg)
            sent += 1
        assert wait_until(lambda: gw.counters()["seen"] == sent, timeout_s=30)
        c = gw.counters()
        decoded = {name: gw.store.message_status(name).decoded for name in ("Prot", "Plain", "Mux", "Fd")}
        listener_errors = c["listener_errors"]["pt"]
    assert_accounted(c)
    assert listener_errors == 0
    by_id = {test_db.get_message_by_name(n).frame_id: n for n in decoded}
    for fid, count in valid_sent.items():
        expected = count - 2 if by_id[fid] == "Prot" else count  # E2E INIT takes two frames
        assert decoded[by_id[fid]] == expected, by_id[fid]


def test_an_internal_failure_is_counted_and_survived(test_db, virtual_bus, channel) -> None:
    rx, tx = virtual_bus(channel), virtual_bus(channel)
    with Gateway({"pt": rx}, test_db) as gw:
        decoder, index_map = gw._decoder("pt")
        calls = {"n": 0}
        real_decode = decoder.decode_flat  # what the receive path calls

        def flaky(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("injected")
            return real_decode(*args, **kwargs)

        decoder.decode_flat = flaky
        tx.send(can.Message(arbitration_id=0x101, data=bytes(8), is_extended_id=False))
        assert wait_until(lambda: gw.counters()["seen"] == 1)
        tx.send(can.Message(arbitration_id=0x101, data=bytes(8), is_extended_id=False))
        assert wait_until(lambda: gw.counters()["seen"] == 2)
        c = gw.counters()
        assert gw.running
    assert c["rejected"]["internal_error"] == 1 and c["decoded"] == 1
    assert c["internal_errors"] == {"process": 1} and "injected" in c["last_internal_error"]
    assert_accounted(c)


class _BrokenBus(can.BusABC):
    """A bus whose receive always fails, like an unplugged adapter."""

    def __init__(self) -> None:
        super().__init__(channel="broken")

    def _recv_internal(self, timeout):  # type: ignore[no-untyped-def]
        raise can.CanOperationError("adapter gone")

    def send(self, msg, timeout=None):  # type: ignore[no-untyped-def]
        raise can.CanOperationError("adapter gone")


def test_a_failing_bus_is_counted_not_fatal(test_db) -> None:
    bus = _BrokenBus()
    try:
        with Gateway({"pt": bus}, test_db) as gw:
            assert wait_until(lambda: gw.counters()["listener_errors"]["pt"] >= 3)
            assert gw.running
            assert "receive errors: pt" in gw.summary()
    finally:
        bus.shutdown()


def test_own_echo_frames_are_counted_not_decoded(test_db, virtual_bus, channel) -> None:
    from vehicle_io.gateway import TransmitGate

    bus = virtual_bus(channel, receive_own_messages=True)
    gate = TransmitGate([(0x101, "pt", 8)], armed=["pt"])
    with Gateway({"pt": bus}, test_db, transmit_gate=gate) as gw:
        gw.send("pt", can.Message(arbitration_id=0x101, data=bytes(8), is_extended_id=False))
        assert wait_until(lambda: gw.counters()["seen"] == 1)
        c = gw.counters()
    assert c["rejected"]["own_tx"] == 1 and c["decoded"] == 0
    with pytest.raises(TransmitBlocked, match="shut down"):
        gw.send("pt", can.Message(arbitration_id=0x101, data=bytes(8), is_extended_id=False))
