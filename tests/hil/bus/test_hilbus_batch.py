"""The array receive path (Endpoint.collect) and the field send path (Endpoint.send_data).

Both are shortcuts for the rig talking to itself; each must be indistinguishable from the
python-can path it replaces: same frames, order, timestamps, timing, errors and counters.
"""

from __future__ import annotations

import can
import numpy as np
import pytest

from hil.bus import InvalidFrameError, SimClock, open_channel
from hil.bus.batch import CAN_EFF_FLAG, CAN_ERR_FLAG, CAN_RTR_FLAG, FrameBatch

FRAMES = [
    can.Message(arbitration_id=0x123, data=b"\x01\x02\x03", is_extended_id=False),
    can.Message(arbitration_id=0x1ABCDE, data=b"\xff" * 8, is_extended_id=True),
    can.Message(arbitration_id=0x321, is_remote_frame=True, dlc=4, is_extended_id=False),
    can.Message(arbitration_id=0x7FF, data=b"", is_extended_id=False),
    can.Message(arbitration_id=0x456, data=bytes(range(21)), is_fd=True, bitrate_switch=True, is_extended_id=False),
    can.Message(arbitration_id=0x0, data=b"\x00" * 8, is_extended_id=False),
]


def _traffic(collect: bool, frames: list[can.Message], *, error_frames: bool = False) -> tuple:
    """Send ``frames`` from two nodes on a fresh FD channel; what the receiver got, either way."""
    clock = SimClock()
    ch = open_channel("batch-t", bitrate=500_000, data_bitrate=2_000_000, fd=True, clock=clock, require_ack=False)
    try:
        a = ch.attach(node="A")
        b = ch.attach(node="B")
        rx = ch.attach(node="GW", error_frames=error_frames)
        sink = rx.collect() if collect else None
        for k, msg in enumerate(frames):
            (a if k % 2 else b).send(msg)
            clock.advance(0.0001 * (k % 3))
        clock.advance(0.05)
        if sink is not None:
            return sink.drain()
        ids, rows, lengths, times = [], [], [], []
        while (m := rx.poll()) is not None:
            ids.append(m.arbitration_id | (CAN_EFF_FLAG if m.is_extended_id else 0)
                       | (CAN_RTR_FLAG if m.is_remote_frame else 0) | (CAN_ERR_FLAG if m.is_error_frame else 0))
            payload = bytes(m.data or b"")
            rows.append(payload.ljust(64, b"\0"))
            lengths.append(len(payload))
            times.append(m.timestamp)
        data = np.frombuffer(b"".join(rows), np.uint8).reshape(len(rows), 64)
        return (np.array(ids, np.uint32), data, np.array(lengths, np.uint8), np.array(times))
    finally:
        for ep in ch.endpoints():
            ep.close()
        ch.close()


def test_collect_gives_the_frames_recv_gives() -> None:
    got = _traffic(True, FRAMES)
    want = _traffic(False, FRAMES)
    assert len(got[0]) == len(FRAMES)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
    ids, data, lengths, times = got
    assert data.flags.writeable and data.flags.c_contiguous and data.shape == (len(FRAMES), 64)
    # the FD frame of 21 bytes is padded to 24 by its controller, like on the recv path
    assert 24 in lengths.tolist() and 21 not in lengths.tolist()
    assert (np.diff(times) > 0).all()


def test_collect_keeps_error_frames_in_order() -> None:
    clock = SimClock()
    ch = open_channel("batch-e", bitrate=500_000, clock=clock, require_ack=True)
    try:
        lonely = ch.attach(node="A")
        listener = ch.attach(node="GW", listen_only=True)  # does not acknowledge
        sink = listener.collect()
        lonely.send(can.Message(arbitration_id=0x10, data=b"\x01", is_extended_id=False))
        clock.advance(0.002)
        ids, data, lengths, times = sink.drain()
        assert len(ids) > 0
        assert all(int(i) & CAN_ERR_FLAG for i in ids)  # only ACK error frames: nobody acknowledged
        assert (lengths == 8).all()
        assert (np.diff(times) >= 0).all()
    finally:
        for ep in ch.endpoints():
            ep.close()
        ch.close()


def test_collect_moves_queued_frames_and_is_idempotent() -> None:
    clock = SimClock()
    ch = open_channel("batch-q", bitrate=500_000, clock=clock, require_ack=False)
    try:
        tx = ch.attach(node="A")
        rx = ch.attach(node="B")
        tx.send(can.Message(arbitration_id=0x100, data=b"\x01", is_extended_id=False))
        clock.advance(0.001)
        assert rx.rx_pending == 1
        sink = rx.collect()
        assert rx.collect() is sink
        assert rx.rx_pending == 0 and len(sink) == 1
        tx.send(can.Message(arbitration_id=0x101, data=b"\x02\x03", is_extended_id=False))
        clock.advance(0.001)
        ids, data, lengths, _ = sink.drain()
        assert ids.tolist() == [0x100, 0x101]
        assert lengths.tolist() == [1, 2]
        assert data[1, :3].tolist() == [2, 3, 0]
        assert len(sink) == 0
        empty = sink.drain()
        assert empty[0].shape == (0,) and empty[1].shape == (0, 64)
    finally:
        for ep in ch.endpoints():
            ep.close()
        ch.close()


def test_frame_batch_add_message_flags() -> None:
    batch = FrameBatch()
    batch.add_message(can.Message(arbitration_id=0x1234, is_extended_id=True, is_remote_frame=True, dlc=2,
                                  timestamp=1.5))
    batch.add_message(can.Message(arbitration_id=0x20, is_error_frame=True, data=bytes(8), timestamp=2.0,
                                  is_extended_id=False))
    ids, _, lengths, times = batch.drain()
    assert ids.tolist() == [0x1234 | CAN_EFF_FLAG | CAN_RTR_FLAG, 0x20 | CAN_ERR_FLAG]
    assert lengths.tolist() == [0, 8]
    assert times.tolist() == [1.5, 2.0]


def _wire(use_fields: bool) -> list[tuple]:
    clock = SimClock()
    ch = open_channel("batch-w", bitrate=500_000, data_bitrate=2_000_000, fd=True, clock=clock, require_ack=False)
    seen: list[tuple] = []
    stop = ch.add_frame_observer(lambda f: seen.append((f.t_start_ps, f.t_end_ps, f.arbitration_id, f.data,
                                                        f.is_fd, f.bitrate_switch, f.nominal_bits, f.data_bits)))
    try:
        ep = ch.attach(node="ECU")
        ch.attach(node="GW")
        for msg in FRAMES:
            if msg.is_remote_frame:
                continue
            if use_fields:
                ep.send_data(msg.arbitration_id, bytes(msg.data), is_extended_id=msg.is_extended_id,
                             is_fd=msg.is_fd, bitrate_switch=msg.bitrate_switch)
            else:
                ep.send(msg)
        clock.advance(0.05)
        return seen
    finally:
        stop()
        for e in ch.endpoints():
            e.close()
        ch.close()


def test_send_data_times_frames_like_send() -> None:
    assert _wire(True) == _wire(False)
    assert len(_wire(True)) == len([m for m in FRAMES if not m.is_remote_frame])


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"arbitration_id": 0x800, "data": b"\x00"}, "11-bit id"),
        ({"arbitration_id": 0x20000000, "data": b"\x00", "is_extended_id": True}, "29-bit id"),
        ({"arbitration_id": 0x10, "data": bytes(9)}, "at most 8 data bytes"),
        ({"arbitration_id": 0x10, "data": bytes(2), "bitrate_switch": True}, "bitrate_switch only"),
        ({"arbitration_id": 0x10, "data": bytes(2), "is_fd": True}, "classic frame"),
    ],
)
def test_send_data_rejects_like_send(fields: dict, needle: str) -> None:
    clock = SimClock()
    ch = open_channel("batch-r", bitrate=500_000, clock=clock, require_ack=False)
    try:
        ep = ch.attach(node="ECU")
        data = fields.pop("data")
        arbitration_id = fields.pop("arbitration_id")
        with pytest.raises(InvalidFrameError, match=needle):
            ep.send_data(arbitration_id, data, **fields)
        assert ch.stats().nodes["ECU"].rejected == 1
        assert ch.recent_events[-1].code == "frame.rejected"
    finally:
        for e in ch.endpoints():
            e.close()
        ch.close()


def test_send_data_fd_too_long_on_fd_channel() -> None:
    clock = SimClock()
    ch = open_channel("batch-l", bitrate=500_000, data_bitrate=2_000_000, fd=True, clock=clock, require_ack=False)
    try:
        ep = ch.attach(node="ECU")
        with pytest.raises(InvalidFrameError, match="at most 64 data bytes"):
            ep.send_data(0x10, bytes(65), is_fd=True)
    finally:
        for e in ch.endpoints():
            e.close()
        ch.close()


def test_frame_batch_discard_drops_what_drain_would_return() -> None:
    batch = FrameBatch()
    for k in range(5):
        batch.add(k * 0.001, 0x100 + k, bytes([k]))
    assert batch.discard() == 5
    assert len(batch) == 0
    batch.add(1.0, 0x200, b"\x01\x02")
    ids, data, lengths, times = batch.drain()  # only what came after the discard
    assert ids.tolist() == [0x200] and lengths.tolist() == [2] and times.tolist() == [1.0]
    assert data[0, :2].tolist() == [1, 2]


def test_drain_all_equals_each_drain_concatenated() -> None:
    from hil.bus.batch import drain_all

    def fill(batches: list[FrameBatch]) -> None:
        for k, b in enumerate(batches):
            for j in range(k * 2):
                b.add(0.5 * j + k, 0x100 + j | (CAN_EFF_FLAG if j % 3 == 0 else 0), bytes(range(j % 9 + (j % 2) * 20)))
            if k == 1:
                b.add_message(can.Message(arbitration_id=0x7, is_error_frame=True, timestamp=9.0))

    each = [FrameBatch() for _ in range(4)]
    fill(each)
    drains = [b.drain() for b in each]
    together = [FrameBatch() for _ in range(4)]
    fill(together)
    (ids, data, lengths, times), counts = drain_all(together)
    assert counts == [d[0].shape[0] for d in drains] == [0, 3, 4, 6]
    for got, parts in zip((ids, data, lengths, times), zip(*drains)):
        want = np.concatenate(parts)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    assert data.flags.writeable and data.flags.c_contiguous
    assert all(len(b) == 0 for b in together)
    (ids, data, lengths, times), counts = drain_all(together)
    assert counts == [0, 0, 0, 0] and ids.shape == (0,) and data.shape == (0, 64)
