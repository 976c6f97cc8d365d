"""SignalStore.snapshot's shortcuts against the general path.

* ``snapshot(now, out)`` into a snapshot of this store is one kernel call (snapshot_into);
  ``snapshot(now)`` builds new arrays with numpy. Same arrays, same stale events.
* ``snapshot(now, out, deadlines_s=t)`` equals ``check_deadlines(t)`` then ``snapshot(now, out)``
  (the control loop's tick with the gateway's deadline checks fused in), also when t != now.
* E2EBank.check_deadlines skips its numpy work when nothing is due (any_due): same results.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from vehicle_io.gateway import Gateway

MESSAGES = ("MCU_Power", "VCU_Status", "BMS_Status", "ADC_Command", "BRK_Status", "EPS_Status")


def _feed(gw: Gateway, rng: random.Random, t: float) -> None:
    """A few frames of random messages, some buses falling silent now and then."""
    db = gw.db
    for bus in ("pt", "body", "ads"):
        if rng.random() < 0.3:
            continue
        names = [m.name for m in db.messages if getattr(m, "bus_name", None) == bus and m.name in MESSAGES]
        if not names:
            continue
        n = rng.randrange(1, 6)
        ids = np.zeros(n, np.uint32)
        data = np.zeros((n, 64), np.uint8)
        lengths = np.zeros(n, np.uint8)
        for i in range(n):
            msg = db.get_message_by_name(rng.choice(names))
            ids[i] = msg.frame_id
            lengths[i] = msg.length
            data[i, : msg.length] = [rng.randrange(256) for _ in range(msg.length)]
        gw.process_frames(bus, ids, data, lengths, t + np.arange(n) * 1e-4)


def _arrays(snap) -> list[bytes]:
    return [a.tobytes() for a in (snap.value, snap.timestamp, snap.valid, snap.message_last_rx_s,
                                  snap.message_stale, snap.message_valid, snap.message_e2e_state)]


@pytest.mark.parametrize("seed", [1, 2])
def test_snapshot_paths_agree(z10_db, seed: int) -> None:
    rngs = [random.Random(seed), random.Random(seed)]
    timing = random.Random(seed + 100)
    gws = [Gateway({}, z10_db, clock=lambda: 0.0, start=False) for _ in range(2)]
    try:
        snap_out = gws[0].store.snapshot(0.0)
        t = 10.0
        for k in range(300):
            t += timing.choice([0.01, 0.01, 0.05, 0.3])  # gaps: messages go stale, E2E deadlines pass
            for gw, rng in zip(gws, rngs):
                _feed(gw, rng, t)
            stall = k % 17 == 0
            at = t - 0.02 if stall else t
            # 0: the fused path (kernel copy; deadlines in the same call); 1: the general path.
            snap_out = gws[0].store.snapshot(at, snap_out, deadlines_s=t)
            gws[1].store.check_deadlines(t)
            fresh = gws[1].store.snapshot(at)
            assert _arrays(snap_out) == _arrays(fresh)
            assert snap_out.now_s == fresh.now_s and snap_out.generation == fresh.generation
            a, b = gws[0].store, gws[1].store
            assert (a.stale_events, a.e2e.status_counts.tobytes(), a.e2e.next_deadline_s.tobytes()) == \
                (b.stale_events, b.e2e.status_counts.tobytes(), b.e2e.next_deadline_s.tobytes())
        assert gws[0].store.stale_events > 0
        assert gws[0].store.e2e.status_counts[:, 5].sum() > 0  # NO_NEW_DATA fed by the deadlines
    finally:
        for gw in gws:
            gw.shutdown()


def test_snapshot_into_a_foreign_snapshot_takes_the_numpy_path(z10_db) -> None:
    """A snapshot whose arrays do not fit (another layout's, read-only) is filled with numpy."""
    gw = Gateway({}, z10_db, clock=lambda: 0.0, start=False)
    try:
        snap = gw.store.snapshot(1.0)
        snap.value = snap.value.astype(np.float32)  # not what snapshot_into writes
        gw.store.value[:] = np.arange(gw.store.value.shape[0]) + 0.5
        out = gw.store.snapshot(1.0, snap)
        assert out is snap and out.value.dtype == np.float32
        np.testing.assert_array_equal(out.value, gw.store.value.astype(np.float32))
    finally:
        gw.shutdown()
