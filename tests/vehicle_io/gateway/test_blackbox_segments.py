"""BlackBox.add_segments (a tick's arrays kept once, each bus's rows sliced on first read)
against the general path: add_batch of each bus's slice, as the reference black box of
test_blackbox_equivalence does it (every batch copied, every window test a numpy max).
"""

from __future__ import annotations

import random

import can
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from test_blackbox_equivalence import _plain, _Reference, _time
from vehicle_io.gateway.recorder import BlackBox

BUSES = ("pt", "body", "ads")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), seconds=st.sampled_from([0.05, 0.5, 2.0]))
def test_add_segments_keeps_what_add_batch_of_each_slice_keeps(seed: int, seconds: float) -> None:
    rng = random.Random(seed)
    fast, ref = BlackBox(seconds, clock=lambda: 0.0), _Reference(seconds, clock=lambda: 0.0)
    t = 100.0
    for _ in range(rng.randrange(10, 60)):
        t += rng.choice([0.0, 0.002, 0.01, 0.1])
        if rng.random() < 0.4:  # the gateway's own frames between ticks
            bus = rng.choice(BUSES)
            msg = can.Message(arbitration_id=rng.randrange(0x800), data=bytes(rng.randrange(256) for _ in range(8)),
                              is_rx=False, timestamp=rng.random(), check=False)
            when = _time(rng, t)
            fast.add_message(bus, when, msg)
            ref.add_message(bus, when, msg)
        order = list(BUSES)
        rng.shuffle(order)
        counts = [rng.choice([0, 1, 3, 40]) for _ in order]
        n = sum(counts)
        times = np.array([_time(rng, t) for _ in range(n)])
        ids = np.array([rng.randrange(0x800) for _ in range(n)], np.uint32)
        data = np.array([[rng.randrange(256) for _ in range(64)] for _ in range(n)], np.uint8).reshape(n, 64)
        lengths = np.array([rng.choice([0, 8, 64]) for _ in range(n)], np.uint8)
        segments, at = [], 0
        for bus, count in zip(order, counts):
            segments.append((bus, at, at + count))
            at += count
        if rng.random() < 0.2:  # times as a list: not the arrays the shortcut takes
            fast.add_segments(segments, times.tolist(), ids, data, lengths)  # type: ignore[arg-type]
        else:
            fast.add_segments(segments, times, ids, data, lengths)
        for bus, lo, hi in segments:
            ref.add_batch(bus, times[lo:hi], ids[lo:hi], data[lo:hi], lengths[lo:hi], copy=True)
        if rng.random() < 0.15:
            now = t + rng.choice([-1.0, -0.1, 0.0, 0.05, 3.0])
            assert _plain(fast.frames(now)) == _plain(ref.frames(now))
    for now in (t - 2.0, t - 0.3, t, t + 0.2, t + 5.0):
        assert _plain(fast.frames(now)) == _plain(ref.frames(now))
    assert sorted(fast._buses) == sorted(ref._buses)
    for bus in ref._buses:
        assert len(fast._buses[bus]) == len(ref._buses[bus]), bus
