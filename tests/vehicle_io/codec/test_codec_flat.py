"""decode_flat's two strategies (one kernel call with worst-case outputs for small batches,
exactly sized outputs for big ones) and its reused buffers give the same decode.

Both are also checked against cantools elsewhere; here they are checked against each other
row by row on the same frames, so neither can drift on a layout cantools tests miss.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from codec_strategies import databases, examples, random_frames
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vehicle_io.codec import BatchDecoder
from vehicle_io.codec.decoder import _SMALL_BATCH


def _per_row(result: Any, offset: int = 0) -> dict[int, tuple[str, dict[str, bytes]]]:
    """Input row -> (message, {signal: value bytes}) (bytes: NaN equals NaN)."""
    out: dict[int, tuple[str, dict[str, bytes]]] = {}
    for name, entry in result.items():
        for k, row in enumerate(entry["_row"].tolist()):
            out[row + offset] = (name, {s: v[k].tobytes() for s, v in entry.items() if s != "_row"})
    return out


def _compare(db: Any, seed: int, n: int) -> None:
    frames = random_frames(db, seed, n)
    decoder = BatchDecoder(db)
    whole = decoder.decode(frames.ids, frames.data, frames.lengths)  # n > _SMALL_BATCH: exact outputs
    rows: dict[int, tuple[str, dict[str, bytes]]] = {}
    status = []
    for lo in range(0, n, 37):  # small batches: the one-call kernel
        part = decoder.decode(frames.ids[lo:lo + 37], frames.data[lo:lo + 37], frames.lengths[lo:lo + 37])
        rows.update(_per_row(part, lo))
        status.append(part.status)
        flat = decoder.decode_flat(frames.ids[lo:lo + 37], frames.data[lo:lo + 37], frames.lengths[lo:lo + 37],
                                   reuse=True)
        np.testing.assert_array_equal(flat.status, part.status)
        for m, name in enumerate(decoder.message_names):
            k = int(flat.counts[m])
            if name not in part:
                assert k == 0
                continue
            start, base = int(flat.row_start[m]), int(flat.out_base[m])
            np.testing.assert_array_equal(flat.rows[start:start + k], part[name]["_row"])
            for c, signal in enumerate(decoder.signal_names(name)):
                np.testing.assert_array_equal(flat.values[base + c * k:base + (c + 1) * k], part[name][signal])
            np.testing.assert_array_equal(flat.row_msg[part[name]["_row"]], m)
    np.testing.assert_array_equal(np.concatenate(status), whole.status)
    assert rows == _per_row(whole)


@settings(max_examples=examples(40, 3), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(db=databases(), seed=st.integers(0, 2**32 - 1))
def test_small_and_big_batches_decode_alike(db: Any, seed: int) -> None:
    _compare(db, seed, _SMALL_BATCH + 60)


def test_small_and_big_batches_decode_alike_on_the_bundled_database() -> None:
    from vehicle_io import load_database

    _compare(load_database(), 5, 2 * _SMALL_BATCH + 10)
