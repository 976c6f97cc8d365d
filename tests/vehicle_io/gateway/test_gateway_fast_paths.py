"""process_frames (the hot-path feed) and the black box's buffered single frames.

Both are shortcuts; each must leave the gateway in exactly the state the general path leaves.
"""

from __future__ import annotations

import random

import can
import numpy as np
import pytest

from vehicle_io.gateway import Gateway, GatewayInputError
from vehicle_io.gateway.recorder import BlackBox

MESSAGES = ("MCU_Power", "VCU_Status", "BMS_Status", "BMS_CellVoltages", "ADC_Command", "GW_Status")


def _batch(db, rng: random.Random, n: int) -> tuple[np.ndarray, ...]:
    ids = np.zeros(n, np.uint32)
    data = np.zeros((n, 64), np.uint8)
    lengths = np.zeros(n, np.uint8)
    for i in range(n):
        if rng.random() < 0.1:
            ids[i] = rng.choice([0x7FF, 0x5A5])  # unknown on every bus
            size = rng.randrange(9)
        else:
            msg = db.get_message_by_name(rng.choice(MESSAGES))
            ids[i] = msg.frame_id | (0x80000000 if msg.is_extended_frame else 0)
            size = msg.length if rng.random() < 0.9 else rng.randrange(msg.length + 1)  # some too short
        data[i, :size] = [rng.randrange(256) for _ in range(size)]
        lengths[i] = size
    times = 1000.0 + np.cumsum(np.full(n, 0.0005))
    return ids, data, lengths, times


def _state(gw: Gateway) -> tuple:
    st = gw.store
    return (st.value.copy(), st.timestamp.copy(), st.has_value.copy(), gw.counters()["buses"],
            [(round(m.timestamp, 9), m.arbitration_id, bytes(m.data)) for m in gw.blackbox.frames(2000.0)])


def test_process_frames_equals_process_batch(z10_db) -> None:
    rng = random.Random(7)
    batches = [(rng.choice(["pt", "body", "ads"]), *_batch(z10_db, rng, rng.randrange(1, 30))) for _ in range(40)]
    clock_a = iter(np.arange(1000.0, 1100.0, 0.01)).__next__
    clock_b = iter(np.arange(1000.0, 1100.0, 0.01)).__next__
    # start=False: no worker thread reading the clock between batches.
    with Gateway({}, z10_db, clock=lambda: float(clock_a()), start=False) as a, \
            Gateway({}, z10_db, clock=lambda: float(clock_b()), start=False) as b:
        for bus, ids, data, lengths, times in batches:
            ra = a.process_batch(bus, ids, data, lengths, times)
            rb = b.process_frames(bus, ids.copy(), data.copy(), lengths.copy(), times.copy())
            np.testing.assert_array_equal(ra, rb)
        sa, sb = _state(a), _state(b)
        for x, y in zip(sa[:3], sb[:3]):
            np.testing.assert_array_equal(x, y)
        assert sa[3] == sb[3]
        assert sa[4] == sb[4]
        assert sum(row["seen"] for row in sa[3].values()) == sum(len(b_[1]) for b_ in batches)


@pytest.mark.parametrize(
    "bad",
    [
        {"ids": np.zeros(2, np.int64)},
        {"data": np.zeros((2, 8), np.uint8)},
        {"data": np.zeros((2, 64), np.uint8)[:, ::1][::-1]},  # not C-contiguous rows order
        {"lengths": np.zeros(2, np.int32)},
        {"timestamps": np.zeros(3)},
        {"ids": [1, 2]},
    ],
)
def test_process_frames_refuses_other_layouts(z10_db, bad: dict) -> None:
    arrays = {"ids": np.zeros(2, np.uint32), "data": np.zeros((2, 64), np.uint8), "lengths": np.zeros(2, np.uint8),
              "timestamps": np.zeros(2)}
    arrays.update(bad)
    with Gateway({}, z10_db, clock=lambda: 0.0, start=False) as gw:
        with pytest.raises(GatewayInputError, match="process_frames: expected ids uint32"):
            gw.process_frames("pt", arrays["ids"], arrays["data"], arrays["lengths"], arrays["timestamps"])
        assert gw.counters()["seen"] == 0


def test_process_frames_counts_over_long_rows(z10_db) -> None:
    with Gateway({}, z10_db, clock=lambda: 1000.0, start=False) as gw:
        reasons = gw.process_frames("pt", np.array([0x10], np.uint32), np.zeros((1, 64), np.uint8),
                                    np.array([65], np.uint8), np.array([1000.0]))
        assert reasons.tolist() != [255]
        assert gw.counters()["buses"]["pt"]["rejected"]["bad_length"] == 1


def _msg(t: float, ident: int, data: bytes, fd: bool = False) -> can.Message:
    return can.Message(timestamp=t, arbitration_id=ident, data=data, is_fd=fd, is_extended_id=ident > 0x7FF,
                       is_rx=False, channel="pt")


def test_blackbox_single_frames_keep_order_and_window() -> None:
    """Single frames wait and join as a chunk; reads see exactly what per-frame chunks gave."""
    rng = random.Random(3)
    box = BlackBox(seconds=1.0, clock=lambda: 0.0)
    reference: list[tuple] = []
    t = 0.0
    for _ in range(400):
        t += 0.01
        bus = rng.choice(["pt", "ads"])
        if rng.random() < 0.5:
            data = bytes(rng.randrange(256) for _ in range(rng.choice([0, 3, 8, 24])))
            box.add_message(bus, t, _msg(t, rng.randrange(0x800), data, fd=len(data) > 8))
            reference.append((t, bus, data))
        else:
            n = rng.randrange(1, 4)
            rows = [bytes(rng.randrange(256) for _ in range(8)) for _ in range(n)]
            box.add_batch(bus, np.full(n, t), np.arange(n, dtype=np.uint32), np.frombuffer(b"".join(rows), np.uint8)
                          .reshape(n, 8).copy(), np.full(n, 8, np.uint8))
            reference.extend((t, bus, r) for r in rows)
        if rng.random() < 0.05:
            got = [(m.timestamp, bytes(m.data)) for m in box.frames(t)]
            want = [(x[0], x[2]) for x in sorted((r for r in reference if t - 1.0 < r[0] <= t), key=lambda r: r[0])]
            assert sorted(got) == sorted(want)
            assert len(got) == len(want)
    assert set(box._buses) == {"pt", "ads"}


def test_blackbox_bus_with_only_single_frames_is_dumped(tmp_path) -> None:
    box = BlackBox(seconds=10.0, clock=lambda: 5.0)
    for k in range(300):  # beyond the buffer limit: flushed on the way
        box.add_message("body", 0.01 * k, _msg(0.01 * k, 0x300, bytes([k % 256])))
    frames = box.frames(5.0)
    assert [m.data[0] for m in frames] == [k % 256 for k in range(300) if 0.01 * k > -5.0]
    assert box.dump(tmp_path / "bb.log", channels=["body"]) == 300
