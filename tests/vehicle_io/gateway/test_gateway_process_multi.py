"""Gateway.process_multi (several buses' frames in one call, one kernel call) against
process_frames of each bus's rows in order: the same verdicts, store, E2E state, counters,
black box and recording, whichever path process_multi takes (the one-call kernel, or the
per-bus fallback for frames it does not cover, commit hooks, a recorder).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from vehicle_io.gateway import Gateway, GatewayInputError
from vehicle_io.gateway._kernels import receive_segments

MESSAGES = ("MCU_Power", "VCU_Status", "BMS_Status", "BMS_CellVoltages", "ADC_Command", "GW_Status",
            "GW_VehicleState", "CBC_DoorStatus")
BUSES = ("pt", "body", "ads")


def _frames(db, rng: random.Random, n: int, odd: bool) -> tuple[np.ndarray, ...]:
    """n frames of Z10 messages (some too short, some unknown ids); ``odd`` adds extended ids,
    remote and error frames (the rows only the per-bus path handles)."""
    ids = np.zeros(n, np.uint32)
    data = np.zeros((n, 64), np.uint8)
    lengths = np.zeros(n, np.uint8)
    for i in range(n):
        roll = rng.random()
        if roll < 0.08:
            ids[i] = rng.choice([0x7FF, 0x5A5])
            size = rng.randrange(9)
        elif odd and roll < 0.16:
            ids[i] = rng.choice([0x80000000 | 0x1234567, 0x40000000 | 0x100, 0x20000000 | 0x4])
            size = rng.randrange(9)
        else:
            msg = db.get_message_by_name(rng.choice(MESSAGES))
            ids[i] = msg.frame_id | (0x80000000 if msg.is_extended_frame else 0)
            size = msg.length if rng.random() < 0.9 else rng.randrange(msg.length + 1)
        data[i, :size] = [rng.randrange(256) for _ in range(size)]
        lengths[i] = size
    return ids, data, lengths


def _ticks(db, seed: int, odd_every: int) -> list[tuple[list[str], list[int], tuple[np.ndarray, ...]]]:
    rng = random.Random(seed)
    ticks = []
    t = 1000.0
    for k in range(60):
        names = list(BUSES) if rng.random() < 0.8 else rng.sample(BUSES + ("pt",), rng.randrange(1, 5))
        counts = [rng.choice([0, 1, 3, 8, 20]) for _ in names]
        n = sum(counts)
        ids, data, lengths = _frames(db, rng, n, odd=odd_every > 0 and k % odd_every == 0)
        times = t + np.cumsum(np.full(n, 0.0004))
        t += 0.01
        ticks.append((names, counts, (ids, data, lengths, times)))
    return ticks


def _clock() -> object:
    it = iter(np.arange(1000.0, 1100.0, 0.001))
    return lambda: float(next(it))  # advances on every read: both paths must read it alike


def _state(gw: Gateway) -> tuple:
    st = gw.store
    bank = st.e2e
    arrays = [st.value, st.timestamp, st.valid, st.has_value, st.last_rx_s, st.received, st.stale,
              st.message_valid, st.msg_frames, st.msg_decoded, st.msg_rejected, bank.last_counter, bank.sm_state,
              bank.window, bank.top, bank.status_counts, bank.next_deadline_s]
    frames = [(m.channel, m.timestamp, m.arbitration_id, m.is_extended_id, m.is_remote_frame, m.is_error_frame,
               m.dlc, bytes(m.data or b"")) for m in gw.blackbox.frames(1000.65)]
    counters = gw.counters()
    recorder = counters.get("recorder", {})
    recorder.pop("path", None)  # each gateway records to its own file
    recorder.pop("written", None)  # the writer thread's progress so far; the logs are compared after stop
    return [a.tobytes() for a in arrays], counters, st.generation, st.stale_events, frames


@pytest.mark.parametrize(("seed", "odd_every", "hook", "record"), [
    (1, 0, False, False),  # the one-call kernel throughout
    (2, 5, False, False),  # some ticks with frames only the per-bus path takes
    (3, 0, True, False),  # a commit hook: per bus, as process_frames calls it
    (4, 7, False, True),  # a recorder: the black box and the log through _after_receive
])
def test_process_multi_equals_process_frames_per_bus(z10_db, tmp_path: Path, seed: int, odd_every: int,
                                                     hook: bool, record: bool) -> None:
    ticks = _ticks(z10_db, seed, odd_every)
    hooked: dict[str, list] = {"multi": [], "frames": []}
    gws = {}
    for name in ("multi", "frames"):
        gw = Gateway({}, z10_db, clock=_clock(), start=False,
                     record_path=tmp_path / f"{name}.log" if record else None)
        if hook:
            gw.add_commit_hook(lambda bus, reasons, out=hooked[name]: out.append((bus, reasons.tobytes())))
        gws[name] = gw
    try:
        for names, counts, (ids, data, lengths, times) in ticks:
            got = gws["multi"].process_multi(names, counts, ids.copy(), data.copy(), lengths.copy(), times.copy())
            want = []
            at = 0
            for bus, size in zip(names, counts):
                stop = at + size
                if size:
                    want.append(gws["frames"].process_frames(bus, ids[at:stop].copy(), data[at:stop].copy(),
                                                             lengths[at:stop].copy(), times[at:stop].copy()))
                at = stop
            expected = np.concatenate(want) if want else np.zeros(0, np.uint8)
            np.testing.assert_array_equal(got, expected)
        state = _state(gws["multi"])
        assert len(state[4]) > 100  # the black box window holds frames of the last ticks
        assert state == _state(gws["frames"])
        assert hooked["multi"] == hooked["frames"]
    finally:
        for gw in gws.values():
            gw.shutdown()
    if record:
        assert (tmp_path / "multi.log").read_text() == (tmp_path / "frames.log").read_text()
        assert (tmp_path / "multi.log").read_text().count("\n") > 100


def test_process_multi_takes_one_kernel_call_for_plain_frames(z10_db, monkeypatch) -> None:
    """The usual tick (plain 11-bit frames on every bus) is one receive_segments call."""
    calls = []
    gw = Gateway({}, z10_db, clock=_clock(), start=False)
    monkeypatch.setattr(gw._kernels, "receive_segments",
                        lambda *a: calls.append(a[0].shape[0]) or receive_segments(*a))
    try:
        ids, data, lengths, times = _ticks(z10_db, 5, 0)[0][2]
        n = ids.shape[0]
        gw.process_multi(["pt", "body", "ads"], [n, 0, 0], ids, data, lengths, times)
        assert calls == [3]
        assert gw.counters()["buses"]["pt"]["seen"] == n
        assert "body" not in gw.counters()["buses"]  # no row before its first frame, as per bus
    finally:
        gw.shutdown()


def test_process_multi_refuses_bad_input(z10_db) -> None:
    gw = Gateway({}, z10_db, start=False)
    ids = np.zeros(3, np.uint32)
    data = np.zeros((3, 64), np.uint8)
    lengths = np.zeros(3, np.uint8)
    times = np.zeros(3)
    try:
        with pytest.raises(GatewayInputError, match="expected one non-negative count per bus"):
            gw.process_multi(["pt", "body"], [1, 1], ids, data, lengths, times)
        with pytest.raises(GatewayInputError, match="expected one non-negative count per bus"):
            gw.process_multi(["pt"], [3, 0], ids, data, lengths, times)
        with pytest.raises(GatewayInputError, match=r"expected ids uint32\[N\], data uint8\[N, 64\]"):
            gw.process_multi(["pt"], [3], ids, np.zeros((3, 8), np.uint8), lengths, times)
        assert gw.counters()["seen"] == 0
    finally:
        gw.shutdown()


def _wide_mux_db():
    """A DBC with a 64-bit multiplexer: a value at or above 2**62 needs the Python store path."""
    from cantools.database.can import Database, Message, Signal

    mux = Signal("M", 0, 64, is_multiplexer=True)
    plain = Signal("P", 0, 16)
    a = Signal("A", 64, 8, multiplexer_ids=[1, 1 << 62], multiplexer_signal="M")
    b = Signal("B", 64, 16, multiplexer_ids=[2], multiplexer_signal="M")
    return Database([Message(0x100, "Wide", 12, [mux, a, b]), Message(0x200, "Plain", 2, [plain])])


def test_process_multi_hands_a_fallback_segment_to_the_python_store(tmp_path: Path) -> None:
    db = _wide_mux_db()
    rng = random.Random(11)
    gws = [Gateway({}, db, clock=_clock(), start=False) for _ in range(2)]
    calls = []
    real = gws[0]._kernels.receive_segments

    def spy(*a):
        done = real(*a)
        calls.append((done, a[0].shape[0], a[7][:done, 2].tolist()))
        return done

    gws[0]._kernels = type("K", (), {"receive_segments": staticmethod(spy), "map_rows": gws[0]._kernels.map_rows})
    try:
        t = 1.0
        for _ in range(40):
            names, counts, rows = ["a", "b", "a"], [rng.randrange(0, 5) for _ in range(3)], []
            for _ in range(sum(counts)):
                if rng.random() < 0.3:
                    rows.append((0x200, rng.randrange(1 << 16).to_bytes(2, "little")))
                else:
                    m = rng.choice([1, 2, 1 << 62, 1 << 63, 5])  # 2**62: accepted, stored in Python
                    rows.append((0x100, m.to_bytes(8, "little") + bytes(rng.randrange(256) for _ in range(4))))
            n = len(rows)
            ids = np.array([r[0] for r in rows], np.uint32)
            data = np.zeros((n, 64), np.uint8)
            lengths = np.array([len(r[1]) for r in rows], np.uint8)
            for i, (_, payload) in enumerate(rows):
                data[i, : len(payload)] = list(payload)
            times = t + np.arange(n) * 1e-3
            t += 0.05
            got = gws[0].process_multi(names, counts, ids.copy(), data.copy(), lengths.copy(), times.copy())
            want, at = [], 0
            for bus, size in zip(names, counts):
                if size:
                    want.append(gws[1].process_frames(bus, ids[at:at + size].copy(), data[at:at + size].copy(),
                                                      lengths[at:at + size].copy(), times[at:at + size].copy()))
                at += size
            np.testing.assert_array_equal(got, np.concatenate(want) if want else np.zeros(0, np.uint8))
            assert _state_plain(gws[0]) == _state_plain(gws[1])
        # The kernel stopped early at a fallback segment, and the segments after it went per bus.
        assert any(1 in flags for _, _, flags in calls)
        assert any(done < n_seg for done, n_seg, _ in calls)
    finally:
        for gw in gws:
            gw.shutdown()


def _state_plain(gw: Gateway) -> tuple:
    st = gw.store
    return ([a.tobytes() for a in (st.value, st.timestamp, st.valid, st.has_value, st.msg_frames, st.msg_rejected)],
            gw.counters(), st.generation, st.stale_events,
            [(m.channel, m.timestamp, bytes(m.data or b"")) for m in gw.blackbox.frames(100.0)])
