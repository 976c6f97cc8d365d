"""The black box's cheap append (arrays kept as given, cached window maxima, single frames kept
as rows until read) against the straightforward version it replaced, on random traffic.

``_Reference`` is that version: every batch copied into a chunk, every window test a numpy
``max``, single frames turned into arrays at every flush. Both must return the same frames
for any read time, including read times in the past and NaN receive times.
"""

from __future__ import annotations

import random
from collections import deque

import can
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vehicle_io.gateway.recorder import BlackBox, _Chunk, _row_message


class _Reference(BlackBox):
    def add_batch(self, bus, times, ids, data, lengths, flags=None, bus_ts=None, *, copy=True):  # type: ignore[no-untyped-def]
        n = ids.shape[0]
        if n == 0:
            return
        chunk = _Chunk(
            np.array(times, dtype=np.float64),
            np.array(ids, dtype=np.uint32),
            np.array(data, dtype=np.uint8),
            np.array(lengths, dtype=np.uint8),
            np.zeros(n, dtype=np.uint8) if flags is None else np.array(flags, dtype=np.uint8),
            np.array(times if bus_ts is None else bus_ts, dtype=np.float64),
        )
        with self._lock:
            if bus in self._singles:
                self._flush_singles(bus)
            self._append(bus, chunk)

    def _append(self, bus, chunk):  # type: ignore[no-untyped-def]
        ring = self._buses.get(bus)
        if ring is None:
            ring = self._buses[bus] = deque()
        ring.append(chunk)
        horizon = float(chunk.times.max()) - self.seconds
        while len(ring) > 1 and float(ring[0].times.max()) <= horizon:
            ring.popleft()

    def _flush_singles(self, bus):  # type: ignore[no-untyped-def]
        rows = self._singles.pop(bus, None)
        if not rows:
            return
        n = len(rows)
        width = max(1, max(len(r[2]) for r in rows))
        data = np.zeros((n, width), dtype=np.uint8)
        for i, r in enumerate(rows):
            if r[2]:
                data[i, : len(r[2])] = np.frombuffer(r[2], dtype=np.uint8)
        self._append(bus, _Chunk(
            np.array([r[0] for r in rows], dtype=np.float64),
            np.array([r[1] for r in rows], dtype=np.uint32),
            data,
            np.array([r[3] for r in rows], dtype=np.uint8),
            np.array([r[4] for r in rows], dtype=np.uint8),
            np.array([r[5] for r in rows], dtype=np.float64),
        ))

    def frames(self, now_s=None):  # type: ignore[no-untyped-def]
        now = self.clock() if now_s is None else now_s
        horizon = now - self.seconds
        with self._lock:
            for bus in list(self._singles):
                self._flush_singles(bus)
            chunks = [(bus, c) for bus, ring in self._buses.items() for c in ring]
        rows = []
        for bus, c in chunks:
            for i in np.flatnonzero((c.times > horizon) & (c.times <= now)).tolist():
                rows.append((float(c.times[i]), _row_message(bus, c, i)))
        rows.sort(key=lambda item: item[0])
        return [msg for _, msg in rows]


def _plain(frames: list[can.Message]) -> list[tuple[object, ...]]:
    return [(repr(m.timestamp), m.arbitration_id, m.is_extended_id, m.is_remote_frame, m.is_error_frame, m.is_fd,
             m.bitrate_switch, m.error_state_indicator, m.is_rx, m.dlc, bytes(m.data or b""), m.channel)
            for m in frames]


def _time(rng: random.Random, t: float) -> float:
    return float("nan") if rng.random() < 0.01 else t + rng.choice([-0.3, 0.0, 0.001, 0.01, 0.4])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), seconds=st.sampled_from([0.05, 0.5, 2.0]))
def test_blackbox_keeps_what_the_reference_keeps(seed: int, seconds: float) -> None:
    rng = random.Random(seed)
    fast, ref = BlackBox(seconds, clock=lambda: 0.0), _Reference(seconds, clock=lambda: 0.0)
    t = 100.0
    for _ in range(rng.randrange(20, 120)):
        t += rng.choice([0.0, 0.002, 0.01, 0.1])
        bus = rng.choice(["pt", "body"])
        if rng.random() < 0.45:
            fd = rng.random() < 0.3
            payload = bytes(rng.randrange(256) for _ in range(rng.choice([0, 3, 8, 12 if fd else 8])))
            msg = can.Message(arbitration_id=rng.randrange(0x800), data=payload, is_fd=fd, is_rx=rng.random() < 0.2,
                              timestamp=rng.random(), is_remote_frame=not payload and rng.random() < 0.5, check=False)
            when = _time(rng, t)
            fast.add_message(bus, when, msg)
            ref.add_message(bus, when, msg)
            continue
        n = rng.choice([1, 3, 7, 40])  # 40: above the small-batch limit of the window test
        times = np.array([_time(rng, t) for _ in range(n)])
        ids = np.array([rng.randrange(0x800) | (rng.random() < 0.1) * 0x80000000 for _ in range(n)], np.uint32)
        data = np.array([[rng.randrange(256) for _ in range(64)] for _ in range(n)], np.uint8)
        lengths = np.array([rng.choice([0, 8, 64]) for _ in range(n)], np.uint8)
        flags = np.array([rng.randrange(16) for _ in range(n)], np.uint8) if rng.random() < 0.3 else None
        bus_ts = times + 1.0 if rng.random() < 0.3 else None
        copy = rng.random() < 0.5
        fast.add_batch(bus, times, ids, data, lengths, flags, bus_ts, copy=copy)
        ref.add_batch(bus, times, ids, data, lengths, flags, bus_ts, copy=copy)
        if rng.random() < 0.1:
            now = t + rng.choice([-1.0, -0.1, 0.0, 0.05, 3.0])
            assert _plain(fast.frames(now)) == _plain(ref.frames(now))
    for now in (t - 2.0, t - 0.3, t, t + 0.2, t + 5.0):
        assert _plain(fast.frames(now)) == _plain(ref.frames(now))
