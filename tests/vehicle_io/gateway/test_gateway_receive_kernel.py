"""The one-kernel receive path (BatchDecoder.decode_flat + SignalStore.ingest_decoded) against
the general path (BatchDecoder.decode + map_rows + SignalStore.ingest), on random traffic.

The gateway takes the general path for a bus whose store map is None; forcing that on a
second gateway gives the reference. Both must agree on every verdict, counter, E2E state and
stored value after every batch.
"""

from __future__ import annotations

import random

import cantools
import numpy as np
from cantools.database.can import Database, Message, Signal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vehicle_io.e2e import COUNTER_MAX, protect
from vehicle_io.gateway import Gateway

BUSES = ("pt", "body", "ads", "elsewhere")  # "elsewhere": a bus without DBC, decoded with every message


def _general(gw: Gateway, buses: tuple[str, ...]) -> Gateway:
    """Make ``gw`` take the general receive path on ``buses``."""
    gw._receive_maps = {bus: (gw._decoder(bus)[0], None) for bus in buses}  # type: ignore[attr-defined]
    return gw


def _state(gw: Gateway, now_s: float, statuses: bool = False) -> list[object]:
    st_ = gw.store
    bank = st_.e2e
    arrays = [st_.value, st_.timestamp, st_.has_value, st_.valid, st_.last_rx_s, st_.received, st_.stale,
              st_.message_valid, st_.msg_frames, st_.msg_decoded, st_.msg_rejected, bank.sm_state,
              bank.status_counts, bank.last_counter, bank.window, bank.top, bank.next_deadline_s]
    out: list[object] = [a.tobytes() for a in arrays]
    out += [st_.generation, st_.stale_events, gw.counters()]
    if statuses:  # repr: NaN receive times compare unequal to themselves
        out += [repr(st_.message_status(m.key, now_s)) for m in gw.layout.messages]
    return out


def _frame(db: Database, rng: random.Random, counters: dict[str, int]) -> tuple[int, bytes]:
    """One frame id (SocketCAN flags) and payload: mostly valid traffic, some of every fault."""
    roll = rng.random()
    if roll < 0.04:
        return rng.choice([0x7FF, 0x5A5, 0x1ABCDE | 0x80000000]), bytes(rng.randrange(256) for _ in range(8))
    msg = rng.choice(db.messages)
    fid = msg.frame_id | (0x80000000 if msg.is_extended_frame else 0)
    if roll < 0.08:  # error or remote frame of a known id: rejected before decoding, yet decodable
        return fid | rng.choice([0x20000000, 0x40000000]), bytes(msg.length)
    if rng.random() < 0.03:
        fid ^= 0x80000000  # the other frame format: not this message
    payload = bytearray(rng.randrange(256) for _ in range(msg.length))
    if msg.is_multiplexed() and rng.random() < 0.8:
        # A defined multiplexer value mostly, an undefined one (BAD_MUX) sometimes.
        mux = next(s for s in msg.signals if s.is_multiplexer)
        ids = sorted({i for s in msg.signals for i in (s.multiplexer_ids or [])})
        value = rng.choice(ids) if ids and rng.random() < 0.9 else rng.randrange(1 << min(mux.length, 16))
        assert mux.byte_order == "little_endian" and mux.scale == 1 and mux.offset == 0
        bits = int.from_bytes(payload, "little")
        field = ((1 << mux.length) - 1) << mux.start
        bits = (bits & ~field) | ((value << mux.start) & field)
        payload = bytearray(bits.to_bytes(len(payload), "little"))
    spec_name = msg.name
    if spec_name in counters:
        c = counters[spec_name]
        if rng.random() < 0.9:
            counters[spec_name] = (c + (1 if rng.random() < 0.9 else rng.randrange(1, 5))) % (COUNTER_MAX + 1)
        from vehicle_io.e2e import E2ESpec

        spec = E2ESpec.from_message(msg)
        assert spec is not None
        payload = protect(spec, payload, counters[spec_name])
        if rng.random() < 0.05:
            payload[0] ^= 0x01  # bad CRC
    if rng.random() < 0.03:
        payload = payload[: rng.randrange(len(payload) + 1)]  # too short
    return fid, bytes(payload)


def _batches(db: Database, seed: int, n_batches: int) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    rng = random.Random(seed)
    from vehicle_io.e2e import E2ESpec

    counters = {m.name: rng.randrange(COUNTER_MAX + 1) for m in db.messages if E2ESpec.from_message(m) is not None}
    t = 1000.0
    out = []
    for _ in range(n_batches):
        n = rng.choice([1, 2, 5, 8, 30]) if rng.random() < 0.95 else 300  # 300: the big-batch decode
        ids = np.zeros(n, np.uint32)
        data = np.zeros((n, 64), np.uint8)
        lengths = np.zeros(n, np.int64)
        times = np.zeros(n)
        for i in range(n):
            fid, payload = _frame(db, rng, counters)
            ids[i] = fid
            data[i, : len(payload)] = np.frombuffer(payload, np.uint8)
            lengths[i] = len(payload) if rng.random() > 0.01 else 70  # > 64: bad length
            t += rng.choice([0.0, 0.0005, 0.002, 0.01, 0.5])
            times[i] = t
        out.append((rng.choice(BUSES), ids, data, lengths, times))
    return out


def _run_pair(db: Database, batches: list, now_step_s: float) -> None:
    clock_a = [900.0]
    clock_b = [900.0]
    with Gateway({}, db, clock=lambda: clock_a[0], start=False) as fast, \
            Gateway({}, db, clock=lambda: clock_b[0], start=False) as general:
        _general(general, BUSES)
        for bus, ids, data, lengths, times in batches:
            now = float(times[-1]) + now_step_s
            clock_a[0] = clock_b[0] = now
            if np.all(lengths <= 64):
                ra = fast.process_frames(bus, ids.copy(), data.copy(), lengths.astype(np.uint8), times.copy())
            else:
                ra = fast.process_batch(bus, ids, data, lengths, times)
            rb = general.process_batch(bus, ids, data, lengths, times)
            np.testing.assert_array_equal(ra, rb)
            assert _state(fast, now) == _state(general, now)
            if bus == BUSES[0]:
                fast.check_deadlines(now + 0.05)
                general.check_deadlines(now + 0.05)
        assert _state(fast, clock_a[0], True) == _state(general, clock_b[0], True)
        assert not fast.counters()["internal_errors"]
        assert [(m.timestamp, m.arbitration_id, bytes(m.data or b"")) for m in fast.blackbox.frames(clock_a[0])] == \
            [(m.timestamp, m.arbitration_id, bytes(m.data or b"")) for m in general.blackbox.frames(clock_b[0])]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), now_step_s=st.sampled_from([0.0, 0.001, 0.05, 1.0]))
def test_receive_kernel_equals_general_path_on_z10_traffic(z10_db, seed: int, now_step_s: float) -> None:
    _run_pair(z10_db, _batches(z10_db, seed, 12), now_step_s)


def _huge_mux_db() -> Database:
    """A multiplexer of 64 bits: values beyond int64 take the store's Python path."""
    mux = Signal("HM_Mux", 0, 64, is_multiplexer=True)
    a = Signal("HM_A", 64, 16, multiplexer_ids=[0, 5], multiplexer_signal="HM_Mux")
    b = Signal("HM_B", 80, 16, multiplexer_ids=[1], multiplexer_signal="HM_Mux", is_signed=True)
    plain = Signal("HM_Plain", 96, 8)
    msg = Message(frame_id=0x123, name="HM_Frame", length=16, signals=[mux, a, b, plain], is_fd=True)
    other = Message(frame_id=0x124, name="HM_Other", length=8, signals=[Signal("HM_X", 0, 12)])
    return Database(messages=[msg, other])


def test_receive_kernel_falls_back_exactly_for_huge_multiplexer_values() -> None:
    db = _huge_mux_db()
    rng = random.Random(3)
    batches = []
    t = 10.0
    for _ in range(30):
        n = rng.randrange(1, 6)
        ids = np.array([rng.choice([0x123, 0x124]) for _ in range(n)], np.uint32)
        data = np.zeros((n, 64), np.uint8)
        for i in range(n):
            data[i, :16] = [rng.randrange(256) for _ in range(16)]
            data[i, :8] = list(rng.choice([0, 1, 5, 2, 2**63 + 7, 2**64 - 1]).to_bytes(8, "little"))
        lengths = np.full(n, 16, np.int64)
        times = t + np.arange(n) * 0.001
        t += 0.01
        batches.append(("elsewhere", ids, data, lengths, times))
    _run_pair(db, batches, 0.0)


def test_receive_kernel_matches_on_the_small_test_dbc(test_db) -> None:
    """A database without bus names (every bus decodes every message) and its E2E message."""
    _run_pair(test_db, _batches(test_db, 11, 25), 0.001)
