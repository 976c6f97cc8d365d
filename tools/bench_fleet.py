#!/usr/bin/env python3
"""Benchmark `z10 fleet decode`: end-to-end frames/s against python-can + cantools, and scaling.

    python tools/bench_fleet.py [--files 4] [--repeat 24] [--chunk-mib 32] [--workdir /tmp/z10_bench_fleet]

Input: the bundled 10 s sample drive repeated ``--repeat`` times with shifted timestamps,
``--files`` vans, written under ``--workdir`` (never into the repository). Printed:

* parse only: the candump kernel vs python-can's ``CanutilsLogReader`` on one file;
* baseline: python-can reader + cantools ``decode_message(decode_choices=False)`` per frame,
  one process (the dataset keeps enums raw, so the baseline does not look up choices);
* fleet decode (parse + decode + Parquet write) on a warm LocalCluster of 1 and of 2
  workers, started exactly as `z10 fleet decode` starts it (``job.dask_client``; cluster
  start-up excluded, reported apart): frames/s per worker, the ratio to the baseline
  (target >= 20x) and the 1 -> 2 worker speed-up (target >= 1.7x). Below each, where the
  best job's time went, from the chunks' own stage timings: read + parse, decode, Arrow
  tables + Parquet parts, and what was spent outside the chunks (Dask, planning, markers).

Measured on the 2-core build machine, load average 0.62 before the run (defaults: 4 files
of 21 MiB, one 32 MiB chunk each):

    parse only (364632 frames): kernel 7.53 M frames/s, python-can CanutilsLogReader 204 k frames/s -> 37x
    baseline (python-can reader + cantools decode_message, 1 process): 114.7 k frames/s
    fleet decode, 1 worker : 2693 k frames/s end to end -> 23.5x the baseline per worker
      1 worker, time split: read+parse 0.23 s, decode 0.10 s, tables+write 0.19 s (104 parts,
      4 chunks), outside the chunks 0.03 s
    fleet decode, 2 workers: 4801 k frames/s (20.9x the baseline per worker) -> speed-up 1.78x

Before (16 MiB chunks, v1 data pages, nullable columns, a two-pass parser, Dask's 64 KiB
malloc trim threshold): 966 k frames/s with 1 worker, 8.7x. With 2 workers the scheduler
and the client share the 2 cores with the workers: per-worker throughput drops about 15 %,
so the speed-up sits near 1.7x now that one worker is fast.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import time
from pathlib import Path

from vehicle_io.fleet.plan import DEFAULT_CHUNK_MIB, MANIFEST_DIR

BEST_OF = 3
#: fleet jobs take well under a second each: more of them make the best one less sensitive
#: to the other jobs of a shared machine
FLEET_RUNS = 5
SAMPLE = Path(__file__).resolve().parents[1] / "vehicle_io" / "data" / "z10_sample_drive.log.gz"


def make_inputs(workdir: Path, files: int, repeat: int) -> tuple[list[Path], int]:
    lines = [line for line in gzip.decompress(SAMPLE.read_bytes()).decode().splitlines() if "NOT-HEX" not in line]
    parsed = []
    for line in lines:
        ts, rest = line.split(" ", 1)
        parsed.append((float(ts[1:-1]), rest))
    span = parsed[-1][0] - parsed[0][0] + 0.01
    paths = []
    for v in range(files):
        path = workdir / "logs" / f"van{v:02d}" / "drive.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="ascii") as out:
            for r in range(repeat):
                shift = v * 86400.0 + r * span
                out.writelines(f"({ts + shift:.6f}) {rest}\n" for ts, rest in parsed)
        paths.append(path)
    return paths, len(parsed) * repeat


def bench_parse(path: Path) -> tuple[float, float, int]:
    import can

    from vehicle_io.fleet.parse import parse_candump_bytes

    raw = path.read_bytes()
    parse_candump_bytes(raw[:4096])  # compile / load the kernel from the cache
    parse_candump_bytes(raw)  # the process's first large arrays: fresh pages, not the parser (5.2 against 7-8 M/s)
    kernel_s = pycan_s = float("inf")
    for _ in range(BEST_OF):  # best of a few: the machine is shared
        t = time.perf_counter()
        frames, _ = parse_candump_bytes(raw)
        kernel_s = min(kernel_s, time.perf_counter() - t)
        t = time.perf_counter()
        n = sum(1 for _ in can.CanutilsLogReader(str(path)))
        pycan_s = min(pycan_s, time.perf_counter() - t)
    assert n == len(frames), (n, len(frames))
    return len(frames) / kernel_s, n / pycan_s, n


def bench_baseline(paths: list[Path]) -> float:
    import can

    from vehicle_io import load_database

    db = load_database()
    best = 0.0
    for _ in range(2):
        n = 0
        t = time.perf_counter()
        for path in paths:
            for msg in can.LogReader(str(path)):
                try:
                    db.decode_message(msg.arbitration_id, msg.data, decode_choices=False)
                except Exception:  # noqa: BLE001 - unknown ids and short frames, as the job counts them
                    pass
                n += 1
        best = max(best, n / (time.perf_counter() - t))
    return best


def bench_fleet(paths: list[Path], workdir: Path, workers: int, chunk_mib: float) -> tuple[float, float, int, str]:
    """Best of a few jobs on the LocalCluster `z10 fleet decode` starts; also where the best
    job's time went (the chunks' own stage timings, from their markers)."""
    import json

    from vehicle_io.fleet import decode_fleet
    from vehicle_io.fleet.job import dask_client

    t = time.perf_counter()
    with dask_client(workers=workers) as client:
        startup_s = time.perf_counter() - t
        warm = workdir / "warm"
        shutil.rmtree(warm, ignore_errors=True)
        # warm every worker (database, decoders, numba kernels from the cache): many small chunks
        decode_fleet([str(paths[0])], warm, client=client, chunk_mib=0.05)
        job_s = float("inf")
        split = ""
        for _ in range(FLEET_RUNS):  # a fresh output each time: a re-run would skip everything
            out = workdir / f"out{workers}"
            shutil.rmtree(out, ignore_errors=True)
            # Flush what the previous runs (inputs, outputs) left dirty in the page cache: its
            # write-back would otherwise land inside this run's timing (seen: the write stage
            # of a 1-worker job doubled right after a larger run).
            os.sync()
            t = time.perf_counter()
            report = decode_fleet([str(p) for p in paths], out, client=client, chunk_mib=chunk_mib)
            elapsed = time.perf_counter() - t
            assert report["totals"]["chunks_skipped"] == 0 and not report["problems"], report["problems"][:3]
            if elapsed < job_s:
                job_s = elapsed
                markers = [json.loads(m.read_text()) for m in (out / MANIFEST_DIR).glob("*.json")]
                stages = {k: sum(m["stage_seconds"][k] for m in markers) for k in ("read", "decode", "write")}
                in_chunks = sum(m["seconds"] for m in markers)
                parts = sum(len(m["parts"]) for m in markers)
                split = (f"read+parse {stages['read']:.2f} s, decode {stages['decode']:.2f} s, "
                         f"tables+write {stages['write']:.2f} s ({parts} parts, {len(markers)} chunks), "
                         f"outside the chunks {elapsed * workers - in_chunks:.2f} s")
    frames = report["totals"]["frames"]
    return frames / job_s, startup_s, frames, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=24, help="copies of the 10 s sample per file")
    parser.add_argument("--chunk-mib", type=float, default=DEFAULT_CHUNK_MIB,
                        help=f"as `z10 fleet decode` (default {DEFAULT_CHUNK_MIB:g})")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/z10_bench_fleet"))
    args = parser.parse_args()

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores "
          f"(best of {BEST_OF} runs for parsing, 2 for the baseline, {FLEET_RUNS} for fleet jobs; "
          f"other jobs on the machine slow them)")
    shutil.rmtree(args.workdir, ignore_errors=True)
    paths, per_file = make_inputs(args.workdir, args.files, args.repeat)
    size_mib = sum(p.stat().st_size for p in paths) / (1 << 20)
    print(f"input: {args.files} candump files x {per_file} frames = {args.files * per_file} frames, "
          f"{size_mib:.1f} MiB in {args.workdir}")

    kernel_fps, pycan_fps, n = bench_parse(paths[0])
    print(f"parse only ({n} frames): kernel {kernel_fps / 1e6:.2f} M frames/s, python-can CanutilsLogReader "
          f"{pycan_fps / 1e3:.0f} k frames/s -> {kernel_fps / pycan_fps:.0f}x")
    base_fps = bench_baseline(paths[:1])
    print(f"baseline (python-can reader + cantools decode_message, 1 process): {base_fps / 1e3:.1f} k frames/s")
    one_fps, one_start, frames, one_split = bench_fleet(paths, args.workdir, 1, args.chunk_mib)
    print(f"fleet decode, 1 worker : {one_fps / 1e3:.0f} k frames/s end to end ({frames} frames; "
          f"cluster start {one_start:.1f} s not counted) -> {one_fps / base_fps:.1f}x the baseline per worker")
    print(f"  1 worker, time split: {one_split}")
    two_fps, two_start, _, two_split = bench_fleet(paths, args.workdir, 2, args.chunk_mib)
    print(f"fleet decode, 2 workers: {two_fps / 1e3:.0f} k frames/s ({two_fps / 2 / base_fps:.1f}x the baseline "
          f"per worker) -> speed-up 1 -> 2 workers {two_fps / one_fps:.2f}x")
    print(f"  2 workers, summed over both: {two_split}")
    print(f"targets: per-worker ratio >= 20x: {'met' if one_fps / base_fps >= 20 else 'NOT met'}; "
          f"scaling >= 1.7x: {'met' if two_fps / one_fps >= 1.7 else 'NOT met'}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
