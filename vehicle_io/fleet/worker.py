"""One chunk on a Dask worker: read, decode with the batch codec, write Parquet parts, mark done.

Every file appears whole or not at all: parts and the marker are written under a hidden
temp name in their final directory (readers skip names starting with ``.``) and renamed
with ``os.replace``. Parts are named after the chunk, so a retry after a killed worker
replaces what the first attempt wrote; the marker comes last, so a chunk without one is
simply done again.

A worker process keeps the big arrays of a chunk (the log's bytes, the parsed frames, the
decoded values, the gathered timestamps) in a workspace that the next chunk reuses,
instead of fresh memory that the OS zeroes first for every chunk: one workspace per chunk
running at the same time (Dask threads), never shared. It holds about a chunk's peak
between chunks: 150 MB for 21 MiB of Z10 candump (365 k frames), ~230 MB for 32 MiB.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from vehicle_io.codec.decoder import DecodeWorkspace
from vehicle_io.fleet.plan import MANIFEST_DIR, ChunkTask, Settings, atomic_write_bytes, marker_path
from vehicle_io.fleet.parse import Frames, ReadReport, read_candump_gz, read_candump_range, read_python_can


class _Codec:
    """Per process: the database, a decoder per bus, the merged one, and the schemas."""

    def __init__(self, dbc: tuple[str, ...] | None, bus_map: tuple[tuple[str, str], ...], dbc_digest: str) -> None:
        from vehicle_io import load_database
        from vehicle_io.codec import BatchDecoder
        from vehicle_io.dbc import split_by_bus

        self.db = load_database(list(dbc) if dbc else None)
        self.merged = BatchDecoder(self.db)
        self.by_bus = {bus: BatchDecoder(sub) for bus, sub in split_by_bus(self.db).items() if bus}
        self.messages = {m.name: m for m in self.db.messages}
        self.bus_map = dict(bus_map)
        on_buses: dict[int, set[str]] = {}
        for m in self.db.messages:
            on_buses.setdefault(m.frame_id & 0x1FFFFFFF, set()).add(m.bus_name or "")
        shared = sorted(i for i, b in on_buses.items() if len(b) > 1)
        self.shared_ids = np.array(shared, np.uint32)
        #: the messages of those ids: only their rows may be decoded again per bus
        self.shared_names = {m.name for m in self.db.messages if m.frame_id & 0x1FFFFFFF in shared}
        self._schemas: dict[str, Any] = {}
        self.dbc_digest = dbc_digest

    def schema(self, name: str) -> Any:
        from vehicle_io.fleet.schema import message_schema

        schema = self._schemas.get(name)
        if schema is None:
            schema = self._schemas[name] = message_schema(self.messages[name.split("@")[0]], self.dbc_digest)
        return schema


@lru_cache(maxsize=4)
def _codec_for(dbc: tuple[str, ...] | None, bus_map: tuple[tuple[str, str], ...], dbc_digest: str) -> _Codec:
    return _Codec(dbc, bus_map, dbc_digest)


def _codec(settings: Settings) -> _Codec:
    """The process's codec for ``settings`` (the chunk size does not matter to it)."""
    return _codec_for(settings.dbc, settings.bus_map, settings.dbc_digest)


_free_workspaces: list[DecodeWorkspace] = []
_workspace_lock = threading.Lock()


@contextlib.contextmanager
def chunk_workspace() -> Iterator[DecodeWorkspace]:
    """A workspace of this process that no other running chunk uses; back to the pool after."""
    with _workspace_lock:
        workspace = _free_workspaces.pop() if _free_workspaces else DecodeWorkspace()
    try:
        yield workspace
    finally:
        with _workspace_lock:
            _free_workspaces.append(workspace)


def read_chunk(task: ChunkTask, workspace: DecodeWorkspace | None = None) -> tuple[Frames, ReadReport]:
    """The chunk's frames (views of ``workspace`` for a candump range, when given)."""
    if task.kind == "log":
        return read_candump_range(task.path, task.start, task.end, workspace)
    if task.kind == "log.gz":
        return read_candump_gz(task.path)
    return read_python_can(task.path)


def decode_frames(codec: _Codec, frames: Frames, workspace: DecodeWorkspace | None = None
                  ) -> tuple[dict[str, tuple[np.ndarray, dict[str, np.ndarray]]], dict[str, int], list[str]]:
    """``{message: (rows, {signal: values})}`` in frame order, status counts, the bus names.

    One pass of the merged database's decoder over the whole chunk; only frames whose id
    is defined on several buses (Z10: the functional diagnostic id) and whose (mapped)
    channel names one of those buses are decoded again with that bus's database. With a
    ``workspace`` the arrays may be views of it, valid until its next use.
    """
    from vehicle_io.codec import STATUS_NAMES

    buses = [codec.bus_map.get(name, name) for name in frames.channels]
    result = codec.merged.decode(frames.ids, frames.data, frames.lengths, workspace=workspace)
    status = result.status
    pieces: dict[str, list[tuple[np.ndarray, dict[str, np.ndarray]]]] = {
        name: [(cols["_row"], {k: v for k, v in cols.items() if k != "_row"})] for name, cols in result.items()}
    known = np.array([i for i, bus in enumerate(buses) if bus in codec.by_bus], np.int32)
    if codec.shared_ids.size and known.size and len(frames):
        # the shared ids are few (Z10: one): a comparison per id over the chunk, the channel
        # test on the few hits only (np.isin over every frame cost 3 ms per 32 MiB chunk)
        masked = frames.ids & np.uint32(0x1FFFFFFF)
        hit = masked == codec.shared_ids[0]
        for ident in codec.shared_ids[1:]:
            hit |= masked == ident
        sel_all = np.flatnonzero(hit)
        sel_all = sel_all[np.isin(frames.channel_index[sel_all], known)]
        if sel_all.size:
            status = status.copy()
            for name, parts in pieces.items():  # drop the merged decoding of those rows
                if name not in codec.shared_names:
                    continue  # none of its rows has a shared id: nothing to copy
                rows, cols = parts[0]
                keep = ~np.isin(rows, sel_all)
                if not keep.all():
                    parts[0] = (rows[keep], {k: v[keep] for k, v in cols.items()})
            for ch in np.unique(frames.channel_index[sel_all]).tolist():
                sel = sel_all[frames.channel_index[sel_all] == ch]
                sub = codec.by_bus[buses[ch]].decode(frames.ids[sel], frames.data[sel], frames.lengths[sel])
                status[sel] = sub.status
                for name, cols in sub.items():
                    pieces.setdefault(name, []).append(
                        (sel[cols["_row"]], {k: v for k, v in cols.items() if k != "_row"}))
    found = np.bincount(status, minlength=len(STATUS_NAMES))
    counts = {name: int(found[code]) for code, name in STATUS_NAMES.items()}
    out: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    for name, parts in pieces.items():
        parts = [p for p in parts if len(p[0])]
        if not parts:
            continue
        if len(parts) == 1:
            out[name] = parts[0]
            continue
        rows = np.concatenate([p[0] for p in parts])
        order = np.argsort(rows, kind="stable")
        out[name] = (rows[order], {k: np.concatenate([p[1][k] for p in parts])[order] for k in parts[0][1]})
    return out, counts, buses


#: Parquet writer settings: dictionary encoding only where it pays (the bus names), min/max
#: statistics only for the timestamp (time-range pruning); per-signal encodings and
#: statistics would cost more than the whole decode. Measured serializing the 26 parts of one
#: 276 k-frame chunk (59 MB of float64 values) to memory: 50 ms with v1 data pages and the
#: default write batch of 1024 rows, 34 ms with v2 data pages, 28 ms adding 64 k-row write
#: batches, 21 ms with non-nullable signal columns (schema.py). At those settings LZ4 gives
#: 2.2 MB; snappy is as fast at 4.7 MB, zstd-1 takes 43 ms for 1.4 MB, none 46 ms for 57 MB.
WRITE_OPTIONS: dict[str, Any] = {"compression": "lz4", "use_dictionary": ["bus"],
                                 "write_statistics": ["timestamp"], "data_page_version": "2.0",
                                 "write_batch_size": 1 << 16}


def _write_part(path: Path, table: Any) -> None:
    """Write ``table`` to ``path`` atomically, making its directory if it is missing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **WRITE_OPTIONS)
    payload = sink.getvalue()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        try:
            handle = open(tmp, "wb")
        except FileNotFoundError:  # the first part of this van and message
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(tmp, "wb")
        with handle:
            handle.write(payload)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_parts(codec: _Codec, task: ChunkTask, frames: Frames, decoded: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]],
                buses: list[str], workspace: DecodeWorkspace | None = None) -> tuple[list[str], dict[str, int]]:
    """One Parquet part per message of the chunk; the parts' paths (relative to the output)
    and rows per message.

    Arrow takes the numpy columns without a copy; only the timestamps and bus indexes are
    gathered per message, into ``workspace`` when given.
    """
    import pyarrow as pa

    out = Path(task.out)
    bus_dictionary = pa.array(buses, pa.string())
    total = sum(len(rows) for rows, _ in decoded.values())
    if workspace is None:
        stamps_all = np.empty(total, np.float64)
        chans_all = np.empty(total, np.int32)
    else:
        stamps_all = workspace.take("write.timestamps", total, np.float64)
        chans_all = workspace.take("write.channels", total, np.int32)
    parts: list[str] = []
    rows_by_message: dict[str, int] = {}
    pos = 0
    for name in sorted(decoded):
        rows, columns = decoded[name]
        k = len(rows)
        # mode="clip": rows are valid indexes, and "raise" would buffer the output
        stamps = np.take(frames.timestamps, rows, out=stamps_all[pos:pos + k], mode="clip")
        chans = np.take(frames.channel_index, rows, out=chans_all[pos:pos + k], mode="clip")
        pos += k
        schema = codec.schema(name)
        arrays = [pa.array(stamps), pa.DictionaryArray.from_arrays(pa.array(chans, pa.int32()), bus_dictionary)]
        arrays += [pa.array(columns[f.name]) for f in list(schema)[2:]]
        table = pa.Table.from_arrays(arrays, schema=schema)
        target = out / f"van={task.van}" / f"message={name}" / f"part-{task.key}.parquet"
        _write_part(target, table)
        parts.append(str(target.relative_to(out)))
        rows_by_message[name] = k
    return parts, rows_by_message


def run_chunk(task: ChunkTask) -> dict[str, Any]:
    """Do one chunk; returns (and records in its marker) what was found."""
    t0 = time.perf_counter()
    codec = _codec(task.settings)
    with chunk_workspace() as workspace:
        frames, report = read_chunk(task, workspace)
        t_read = time.perf_counter()
        decoded, counts, buses = decode_frames(codec, frames, workspace)
        t_decode = time.perf_counter()
        parts, rows_by_message = write_parts(codec, task, frames, decoded, buses, workspace)
        n_frames = len(frames)
        del frames, decoded  # views of the workspace: nothing may outlive the chunk
    out = Path(task.out)
    t_parts = time.perf_counter()
    result: dict[str, Any] = {
        "identity": task.identity(),
        "key": task.key,
        "path": task.path,
        "van": task.van,
        "chunk": task.index,
        "chunks": task.count,
        "lines": report.lines,
        "frames": n_frames,
        "rows": int(sum(rows_by_message.values())),
        "status": counts,
        "skipped_frames": report.skipped_frames,
        "bad_lines": report.bad_count,
        "bad_samples": [{"line": b.line, "offset": b.offset, "reason": b.reason} for b in report.bad],
        "error": None if report.error is None else {"offset": report.error_offset, "reason": report.error},
        "parts": parts,
        "messages": rows_by_message,
        "seconds": round(t_parts - t0, 4),
        # where the chunk's time went (tools/bench_fleet.py adds these up): read and parse,
        # decode, build and write the parts; the returned copy adds writing the marker
        "stage_seconds": {"read": round(t_read - t0, 4), "decode": round(t_decode - t_read, 4),
                          "write": round(t_parts - t_decode, 4)},
        "worker_pid": os.getpid(),
    }
    (out / MANIFEST_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(marker_path(out, task.key), json.dumps(result, indent=1).encode())
    result["stage_seconds"]["marker"] = round(time.perf_counter() - t_parts, 4)
    return result
