"""Reused buffers: decoding and parsing into a workspace give what fresh arrays give.

A workspace is filled by an earlier batch before each check, so stale bytes and values
from that batch would show up in the result if anything relied on zeroed memory.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_helpers import candump_reference

from vehicle_io.candump import CAN_EFF_FLAG
from vehicle_io.codec import BatchDecoder, DecodeWorkspace
from vehicle_io.fleet.parse import parse_candump_bytes
from vehicle_io.fleet.worker import chunk_workspace


@pytest.fixture(scope="module")
def z10() -> tuple[BatchDecoder, np.ndarray]:
    """The decoder of the bundled database, and its frame ids (CAN_EFF_FLAG on extended ones)."""
    from vehicle_io import load_database

    db = load_database()
    known = np.array([m.frame_id | (CAN_EFF_FLAG if m.is_extended_frame else 0) for m in db.messages], np.uint32)
    return BatchDecoder(db), known


def _batch(known: np.ndarray, seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` frames: mostly Z10 ids, some unknown; random bytes and lengths."""
    rng = np.random.default_rng(seed)
    ids = np.where(rng.random(n) < 0.9, rng.choice(known, n), rng.integers(0, 0x800, n)).astype(np.uint32)
    data = rng.integers(0, 256, (n, 64), dtype=np.uint8)
    lengths = rng.choice(np.array([0, 3, 8, 8, 8, 12, 32, 64], np.uint8), n)
    return ids, data, lengths


def _assert_same(got: Any, want: Any) -> None:
    assert sorted(got) == sorted(want)
    np.testing.assert_array_equal(got.status, want.status)
    for name, columns in want.items():
        assert list(got[name]) == list(columns)
        for column, values in columns.items():
            np.testing.assert_array_equal(got[name][column], values)  # NaN equals NaN here


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3000), st.integers(1, 3000))
def test_decode_into_a_used_workspace_equals_plain_decode(z10, seed, first_n, second_n):
    decoder, known = z10
    workspace = DecodeWorkspace()
    first = _batch(known, seed, first_n)
    second = _batch(known, seed + 1, second_n)
    _assert_same(decoder.decode(*first, workspace=workspace), decoder.decode(*first))
    # the second batch lands on the first one's buffers (grown if it is bigger)
    _assert_same(decoder.decode(*second, workspace=workspace), decoder.decode(*second))
    flat = decoder.decode_flat(*second, workspace=workspace)
    plain = decoder.decode_flat(*second)
    for field in ("status", "row_msg", "counts", "row_start", "out_base"):
        np.testing.assert_array_equal(getattr(flat, field), getattr(plain, field))


def test_workspace_grows_and_reuses_its_buffers():
    workspace = DecodeWorkspace()
    a = workspace.take("x", 100, np.float64)
    b = workspace.take("x", 80, np.float64)
    assert b.shape == (80,) and np.shares_memory(a, b)  # smaller: the same memory
    c = workspace.take("x", 101, np.float64)
    assert c.shape == (101,) and not np.shares_memory(a, c)  # bigger: new memory, by a quarter at least
    assert workspace.take("x", 125, np.float64).ctypes.data == c.ctypes.data
    assert workspace.take("x", 10, np.int32).dtype == np.int32  # another dtype: a new buffer in its place
    assert workspace.nbytes == 10 * 4


_hex_pairs = st.binary(min_size=0, max_size=64).map(lambda b: b.hex().upper())
_line = st.one_of(
    st.builds(lambda s, ch, i, sep, d, tail: f"({s:.6f}) {ch} {i}{sep}{d}{tail}",
              st.floats(0, 2e9, allow_nan=False), st.sampled_from(["pt", "body", "ads", "vcan3"]),
              st.sampled_from(["123", "7DF", "18DAF110", "1FFFFFFF", "12"]),
              st.sampled_from(["#", "##1", "#R"]), _hex_pairs, st.sampled_from(["", " T", " X"])),
    st.sampled_from(["", "junk", "(1.0) pt 0C0#NOT-HEX", "(1.0) pt 123#ABC"]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_line, max_size=30))
def test_parse_into_a_dirty_workspace_equals_the_line_parser(lines):
    workspace = DecodeWorkspace()
    # fill every buffer with 64-byte CAN FD frames of 0xFF first: stale payload bytes
    # past a later frame's length must not survive
    dirty = "".join(f"({i}.5) ads 12345678##1{'FF' * 64}\n" for i in range(40))
    parse_candump_bytes(dirty.encode(), 0, workspace)
    text = "\n".join(lines) + "\n"
    frames, report = parse_candump_bytes(text.encode(), 0, workspace)
    want, bad, skipped = candump_reference(lines)
    assert len(frames) == len(want)
    for i, (ident, data, ts, channel, number) in enumerate(want):
        assert int(frames.ids[i]) == ident
        assert bytes(frames.data[i, : frames.lengths[i]]) == data
        assert not frames.data[i, frames.lengths[i]:].any()  # zero padded, whatever was there
        got_ts = float(frames.timestamps[i])
        assert got_ts == ts or (got_ts != got_ts and ts != ts)
        assert frames.channels[frames.channel_index[i]] == channel
        assert int(frames.lines[i]) == number
    assert report.bad_count == len(bad) and report.skipped_frames == skipped


@pytest.mark.parametrize("stamp", [
    "9007199254740991", "9007199254740992", "900719925474099.2", "1700000000.000479",  # around 2**53
    "123456789012345678", "1234567890123456789", "0000000000000000001.5", "12345678901234567890.5",
    "0.000000000000000001",
])
def test_long_timestamps_equal_the_line_parser(stamp):
    # the kernel takes a timestamp of up to 18 digits whose mantissa is below 2**53; the
    # line parser decides every other one
    lines = [f"({stamp}) pt 123#0102", f"({stamp}) ads 12345678##1{'AB' * 12}"]
    frames, report = parse_candump_bytes(("\n".join(lines) + "\n").encode(), 0, DecodeWorkspace())
    want, bad, _ = candump_reference(lines)
    assert not bad and report.bad_count == 0
    assert [float(t) for t in frames.timestamps] == [w[2] for w in want]
    assert [bytes(frames.data[i, : frames.lengths[i]]) for i in range(len(frames))] == [w[1] for w in want]


def test_chunk_workspaces_are_never_shared_by_running_chunks():
    with chunk_workspace() as first, chunk_workspace() as second:
        assert first is not second
    with chunk_workspace() as again:
        assert again in (first, second)  # returned to the pool, reused
    seen: list[DecodeWorkspace] = []
    inside = threading.Barrier(3)

    def chunk() -> None:
        with chunk_workspace() as workspace:
            seen.append(workspace)
            inside.wait(timeout=10)  # all three hold theirs at the same time

    threads = [threading.Thread(target=chunk) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(w) for w in seen}) == 3


def _housekeeping(dask_worker: Any) -> dict[str, Any]:
    callbacks = dask_worker.periodic_callbacks
    return {"profile": "profile" in callbacks, "tick_ms": callbacks["tick"].callback_time,
            "monitor_ms": callbacks["monitor"].callback_time}


def test_local_cluster_workers_run_without_dashboard_housekeeping(cluster):
    """The LocalCluster a job starts has no statistical profiler in its workers and the
    calmer ticks of job.LOCAL_CLUSTER_CONFIG, a worker restarted after a crash included."""
    import os
    import signal
    import time

    from vehicle_io.fleet.job import LOCAL_CLUSTER_CONFIG

    calm = {"profile": False, "tick_ms": 1000, "monitor_ms": 2000}
    assert LOCAL_CLUSTER_CONFIG["distributed.worker.profile.enabled"] is False
    seen = cluster.run(_housekeeping)
    assert len(seen) == 2 and all(s == calm for s in seen.values()), seen
    victim = min(seen)
    pid = cluster.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the nanny starts a new worker process
        pids = cluster.run(os.getpid, on_error="ignore")  # the dead one may still be listed
        if len(pids) == 2 and pid not in pids.values():
            break
        time.sleep(0.2)
    seen = cluster.run(_housekeeping)
    assert len(seen) == 2 and victim not in seen, seen
    assert all(s == calm for s in seen.values()), seen
