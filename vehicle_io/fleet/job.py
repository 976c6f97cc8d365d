"""The driver of ``z10 fleet decode``: plan, clean up, submit chunks to Dask, gather, report.

Dask distributed does the scheduling: a LocalCluster (one process per core, one thread
each, everything on 127.0.0.1) unless an existing loopback scheduler is named. Chunk tasks
have retries, and a task lost with a killed worker is rescheduled by Dask itself; since a
chunk's outputs are renamed into place and named after the chunk, its repeat overwrites
and never duplicates. Before submitting, parts of an input that no current marker claims
(left by an interrupted run with other settings, or by an input that changed) and
leftover temp files are removed, so the dataset is exactly the current plan's output.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vehicle_io.fleet.plan import (
    DEFAULT_CHUNK_MIB,
    MANIFEST_DIR,
    ChunkTask,
    FleetError,
    Plan,
    Settings,
    check_loopback,
    dbc_digest,
    make_plan,
    marker_path,
    marker_matches,
    read_marker,
)

#: Dask retries per chunk task (on top of Dask's own rescheduling of tasks lost with a worker).
TASK_RETRIES = 3

#: glibc settings for the LocalCluster's worker processes, replacing Dask's default
#: MALLOC_TRIM_THRESHOLD_=64 KiB. Dask sets that so idle workers hand memory back, but any
#: explicit setting also pins glibc's mmap threshold at 128 KiB: every array of every chunk
#: is then fresh, zero-filled pages. Measured on a 16 MiB chunk (276 k frames): parse +
#: decode 65 ms with Dask's setting, 51 ms with these (arrays up to 32 MiB come from the
#: heap and are reused by the next chunk; free heap above 256 MiB is still returned).
WORKER_MALLOC_ENV: dict[str, str] = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20),
                                     "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}


#: Dask settings for the LocalCluster a job starts. Dask's defaults serve an interactive
#: dashboard: a statistical profiler sampling each worker's task thread every 10 ms, an
#: event-loop health tick every 20 ms and a system monitor every 500 ms in every process, a
#: memory check every 100 ms. A job's cluster has no dashboard; on the 2-core machine, 2
#: idle workers and their scheduler used 11 % of a core with the defaults (the client's
#: process 4.7 %, each worker 3.3 %), 1.2 % with these: CPU that a busy 2-worker job
#: takes from its own chunks. Memory limits are still enforced, checked every 500 ms (a
#: worker's big arrays are allocated once and reused, see worker.py).
LOCAL_CLUSTER_CONFIG: dict[str, Any] = {"distributed.worker.profile.enabled": False,
                                        "distributed.admin.tick.interval": "1s",
                                        "distributed.admin.system-monitor.interval": "2s",
                                        "distributed.worker.memory.monitor-interval": "500ms"}


def default_workers() -> int:
    """Workers for a LocalCluster: one per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A Dask client: on ``scheduler`` (loopback only) or on a fresh LocalCluster."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        address = check_loopback(scheduler)
        try:
            client = Client(address, timeout="10s")
        except (OSError, TimeoutError) as err:
            raise FleetError(f"--scheduler: cannot reach a Dask scheduler at {address!r}: {err}") from None
        try:
            yield client
        finally:
            client.close()
        return
    n = workers if workers is not None else default_workers()
    if n < 1:
        raise FleetError(f"--workers: expected at least 1, but got {n}")
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_MALLOC_ENV}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ, **LOCAL_CLUSTER_CONFIG}):
        # Read as the scheduler and the nannies start. A nanny passes its worker processes
        # the configuration it was made with, but only as a shallow copy: the worker it
        # restarts after a crash would get Dask's defaults back once this block has ended.
        # A deep copy (dask.config.merge) made here keeps these settings for every worker.
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=logging.ERROR,
                               config=dask.config.merge(dask.config.config))
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def _existing_files(out: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """Parts by file key, and hidden temp files, under ``out``."""
    parts: dict[str, list[Path]] = {}
    temps: list[Path] = []
    if not out.exists():
        return parts, temps
    for van_dir in out.iterdir():
        if not van_dir.is_dir() or not van_dir.name.startswith("van="):
            continue
        for msg_dir in van_dir.iterdir():
            if not msg_dir.is_dir():
                continue
            for f in msg_dir.iterdir():
                if f.name.startswith(".") and ".tmp-" in f.name:
                    temps.append(f)
                elif f.name.startswith("part-") and f.name.endswith(".parquet"):
                    parts.setdefault(f.name[5:21], []).append(f)
    manifest = out / MANIFEST_DIR
    if manifest.is_dir():
        temps.extend(f for f in manifest.iterdir() if f.name.startswith(".") and ".tmp-" in f.name)
    return parts, temps


def _prune_empty_dirs(out: Path) -> None:
    for van_dir in list(out.glob("van=*")):
        for msg_dir in list(van_dir.glob("message=*")):
            with contextlib.suppress(OSError):
                msg_dir.rmdir()
        with contextlib.suppress(OSError):
            van_dir.rmdir()


def prepare(plan: Plan, out: Path) -> tuple[list[ChunkTask], dict[str, dict[str, Any]]]:
    """Chunks still to do, and the markers of those already done; removes what no one claims."""
    todo: list[ChunkTask] = []
    done: dict[str, dict[str, Any]] = {}
    for task in plan.tasks:
        marker = read_marker(out, task.key)
        if marker_matches(marker, task):
            done[task.key] = marker  # type: ignore[assignment]
        else:
            todo.append(task)
            marker_path(out, task.key).unlink(missing_ok=True)  # stale: its chunk is done again
    claimed = {p for m in done.values() for p in m.get("parts", [])}
    current = {t.key for t in plan.tasks}
    parts, temps = _existing_files(out)
    planned_files = {t.file_key for t in plan.tasks}
    for key in planned_files:
        for part in parts.get(key, []):
            if str(part.relative_to(out)) not in claimed:
                part.unlink(missing_ok=True)
    for temp in temps:
        temp.unlink(missing_ok=True)
    manifest = out / MANIFEST_DIR
    if manifest.is_dir():
        for marker_file in manifest.glob("*.json"):
            key = marker_file.stem
            if key[:16] in planned_files and key not in current:
                marker_file.unlink(missing_ok=True)
    _prune_empty_dirs(out)
    return todo, done


def decode_fleet(
    inputs: list[str],
    out: str | os.PathLike[str],
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    client: Any = None,
    chunk_mib: float = DEFAULT_CHUNK_MIB,
    van_from: str = "dirname",
    dbc: list[str] | None = None,
    bus_map: dict[str, str] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Decode ``inputs`` into the dataset at ``out``; returns the job report (see :func:`report`).

    ``client``: an existing Dask client (else one is made from ``scheduler``/``workers``).
    ``on_progress(done, total)`` is called as chunks finish.
    """
    if not chunk_mib > 0:
        raise FleetError(f"--chunk-mib: expected a size > 0, but got {chunk_mib:g}")
    if scheduler:
        check_loopback(scheduler)
    out_dir = Path(out)
    dbc_tuple = tuple(str(Path(p).resolve()) for p in dbc) if dbc else None
    settings = Settings(dbc=dbc_tuple, bus_map=tuple(sorted((bus_map or {}).items())),
                        chunk_bytes=max(1, int(chunk_mib * (1 << 20))), dbc_digest=dbc_digest(dbc_tuple))
    plan = make_plan(inputs, out_dir, settings, van_from)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo, done = prepare(plan, out_dir)
    results: dict[str, dict[str, Any]] = dict(done)
    failures: dict[str, str] = {}
    if todo:
        with contextlib.ExitStack() as stack:
            if client is None:
                client = stack.enter_context(dask_client(scheduler, workers))
            _run(client, todo, results, failures, on_progress, len(done), len(plan.tasks))
    elif on_progress is not None:
        on_progress(len(plan.tasks), len(plan.tasks))
    # a killed worker may have left a temp file behind; the rename never happened, so it is junk
    _, temps = _existing_files(out_dir)
    for temp in temps:
        temp.unlink(missing_ok=True)
    return report(plan, results, failures, skipped=len(done))


def _run(client: Any, todo: list[ChunkTask], results: dict[str, dict[str, Any]], failures: dict[str, str],
         on_progress: Callable[[int, int], None] | None, already: int, total: int) -> None:
    from distributed import as_completed

    from vehicle_io.fleet.worker import run_chunk

    # one graph update for all chunks (a submit per chunk is a scheduler round trip each)
    submitted = client.map(run_chunk, todo, key=[f"z10-fleet-{t.key}-{t.settings_digest}" for t in todo],
                           retries=TASK_RETRIES, pure=False)
    futures = dict(zip(submitted, todo))
    finished = already
    if on_progress is not None:
        on_progress(finished, total)
    # results travel as each chunk ends, not in a round trip after the last one
    for future, value in as_completed(futures, with_results=True, raise_errors=False):
        task = futures[future]
        if future.status == "finished":
            results[task.key] = value
        else:
            try:
                future.result()  # raises the chunk's error (or the cancellation)
            except Exception as err:  # noqa: BLE001 - one chunk's failure is reported, the job goes on
                failures[task.key] = f"{type(err).__name__}: {err}"
        finished += 1
        if on_progress is not None:
            on_progress(finished, total)


def report(plan: Plan, results: dict[str, dict[str, Any]], failures: dict[str, str], *, skipped: int) -> dict[str, Any]:
    """The job report: totals, per-file counts and every problem with file, line/offset and reason.

    Bad-line numbers are made file-global from each chunk's line count.
    """
    by_file: dict[str, list[ChunkTask]] = {}
    for task in plan.tasks:
        by_file.setdefault(task.path, []).append(task)
    files: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = [{"file": p.path, "line": None, "offset": None, "reason": p.reason}
                                      for p in plan.problems]
    totals = {"files": len(plan.files), "chunks": len(plan.tasks), "chunks_skipped": skipped,
              "chunks_failed": len(failures), "frames": 0, "rows": 0, "bad_lines": 0, "skipped_frames": 0,
              "unknown_id": 0, "too_short": 0, "bad_mux": 0}
    for path, tasks in by_file.items():
        tasks.sort(key=lambda t: t.index)
        line_base = 0
        lines_known = True
        entry = {"file": path, "van": tasks[0].van, "chunks": len(tasks), "frames": 0, "rows": 0,
                 "bad_lines": 0, "error": None}
        for task in tasks:
            res = results.get(task.key)
            if res is None:
                reason = failures.get(task.key, "not done")
                problems.append({"file": path, "line": None, "offset": task.start,
                                 "reason": f"chunk {task.index + 1}/{task.count} failed: {reason}"})
                entry["error"] = reason
                lines_known = False
                continue
            entry["frames"] += res["frames"]
            entry["rows"] += res["rows"]
            entry["bad_lines"] += res["bad_lines"]
            for name in ("unknown_id", "too_short", "bad_mux"):
                totals[name] += int(res["status"].get(name, 0))
            totals["skipped_frames"] += res["skipped_frames"]
            for bad in res["bad_samples"]:
                line = bad["line"] + line_base if lines_known and task.kind == "log" else (
                    bad["line"] if task.kind != "log" else None)
                problems.append({"file": path, "line": line, "offset": bad["offset"], "reason": bad["reason"]})
            if res["bad_lines"] > len(res["bad_samples"]):
                problems.append({"file": path, "line": None, "offset": task.start,
                                 "reason": f"{res['bad_lines'] - len(res['bad_samples'])} more bad lines in chunk "
                                           f"{task.index + 1}/{task.count}"})
            if res["error"]:
                entry["error"] = res["error"]["reason"]
                problems.append({"file": path, "line": None, "offset": res["error"]["offset"],
                                 "reason": res["error"]["reason"]})
            line_base += res["lines"]
        totals["frames"] += entry["frames"]
        totals["rows"] += entry["rows"]
        totals["bad_lines"] += entry["bad_lines"]
        files.append(entry)
    for p in plan.problems:
        files.append({"file": p.path, "van": None, "chunks": 0, "frames": 0, "rows": 0, "bad_lines": 0,
                      "error": p.reason})
    failed_files = sorted({f["file"] for f in files if f["error"]})
    return {"totals": totals, "files": files, "problems": problems, "failed_files": failed_files}
