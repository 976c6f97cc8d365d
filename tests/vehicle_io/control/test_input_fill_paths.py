"""InputMap.fill (one gather kernel call for a store snapshot) equals fill_numpy (the general path)."""

from __future__ import annotations

import numpy as np

from vehicle_io import load_database
from vehicle_io.control import layout as L
from vehicle_io.control.loop import InputMap
from vehicle_io.gateway import Gateway

DB = load_database()


def test_fill_equals_fill_numpy_on_random_snapshots() -> None:
    rng = np.random.default_rng(5)
    gw = Gateway({}, DB, start=False)
    try:
        imap = InputMap(gw.layout)
        snap = gw.store.snapshot(0.0)
        kernel_calls = []
        real = imap._gather
        imap._gather = lambda *a: kernel_calls.append(1) or real(*a)
        for _ in range(200):
            snap.value[:] = rng.normal(0.0, 100.0, snap.value.shape)
            snap.value[rng.random(snap.value.shape) < 0.2] = np.nan
            snap.message_valid[:] = rng.integers(0, 2, snap.message_valid.shape)
            snap.message_stale[:] = rng.integers(0, 2, snap.message_stale.shape)
            snap.message_last_rx_s[:] = rng.uniform(0.0, 10.0, snap.message_last_rx_s.shape)
            snap.message_last_rx_s[rng.random(snap.message_last_rx_s.shape) < 0.3] = np.nan
            a = L.new_inputs().view(np.float64)
            b = L.new_inputs().view(np.float64)
            a[:] = rng.normal(size=a.shape)
            b[:] = a
            imap.fill(snap, a)
            imap.fill_numpy(snap, b)
            assert a.tobytes() == b.tobytes()
        assert len(kernel_calls) == 200
        # Arrays the kernel is not compiled for take the numpy path, with the same values.
        snap.message_valid = snap.message_valid.astype(np.int32)
        a = L.new_inputs().view(np.float64)
        b = L.new_inputs().view(np.float64)
        imap.fill(snap, a)
        imap.fill_numpy(snap, b)
        assert a.tobytes() == b.tobytes() and len(kernel_calls) == 200
    finally:
        gw.shutdown()
