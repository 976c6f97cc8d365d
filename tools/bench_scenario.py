#!/usr/bin/env python3
"""Benchmark full scenarios: simulated seconds per wall second with all bus traffic.

    python tools/bench_scenario.py [--seed 0] [--drive-s 60] [--only NAME ...] [--no-drive] [--profile N] [--split-s 20]

Runs every bundled scenario (hil/scenarios/*.toml) and a steady drive of ``--drive-s``
seconds (pull away, cruise at 30 km/h) through ``hil.scenario.runner.run_scenario``: the rig
(van model, 7 simulated ECUs, three buses with exact bit timing) on a SimClock, the gateway's
receive path and the control loop at 100 Hz. For each it prints the simulated time, the wall
time of the run (rig built and running, gateway, loop; ``setup`` is the part before the rig
starts: DBC, codec, van model, gateway), simulated-s per wall-s of the whole run and of the
running part alone, and frames per simulated and per wall second on the buses. The one-time
numba warm-up (kernel compile or cache load, first run of every kernel) happens in an untimed
1 s run first and is printed apart. The figure to compare with the target is the overall one.
Last, ``--split-s`` seconds of steady drive are run again with the runner's parts timed, to
show where a 10 ms tick goes (rig, gateway receive path, control tick with its deadline checks).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_X = 50.0
ROOT = Path(__file__).resolve().parents[1]

DRIVE_TOML = """
[scenario]
name = "steady_drive"
duration_s = {duration}
description = "Pull away and cruise at 30 km/h: the steady traffic of a delivery route."

[initial]
gear = "D"
epb = "Release"

[adc]
speed_mps = [[0, 0], [2, 0], [8, 8.33], [{end}, 8.33]]

[[expect]]
kind = "reaches"
signal = "van.speed_mps"
lo = 7.5
hi = 9.0
within_s = 12.0
text = "cruises at ~30 km/h"
"""


class _Probe:
    """Notes when the rig starts and its bus counters before it closes (no change to the runner)."""

    def __init__(self) -> None:
        from hil.rig import Rig

        self.rig_cls = Rig
        self.start_t: float | None = None
        self.frames = 0
        self.bits = 0
        self._start = Rig.start
        self._close = Rig.close

    def __enter__(self) -> _Probe:
        probe = self

        def start(rig: Any) -> None:
            if probe.start_t is None:
                probe.start_t = time.perf_counter()
            probe._start(rig)

        def close(rig: Any) -> None:
            if not rig._closed:
                for ch in rig.channels.values():
                    st = ch.stats()
                    probe.frames += st.frames + st.error_frames
                    probe.bits += st.nominal_bits + st.data_bits
            probe._close(rig)

        self.rig_cls.start = start  # type: ignore[method-assign]
        self.rig_cls.close = close  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self.rig_cls.start = self._start  # type: ignore[method-assign]
        self.rig_cls.close = self._close  # type: ignore[method-assign]


class _Split:
    """Time spent per 10 ms tick in the runner's three parts: the rig (van, ECUs, buses) up to
    the tick, the gateway's receive path (``_Receiver.feed``: drain the buses, decode, check,
    store) and the control loop's tick (deadline checks and snapshot, kernel, encode, send;
    the send includes the rig's submit of the frame). The rest is the runner itself (actions,
    samplers). Each wrapped call costs ~0.2 us more than it would unwrapped."""

    def __init__(self) -> None:
        from hil.rig import Rig
        from hil.scenario import runner
        from vehicle_io.control.loop import ControlLoop

        self.targets = [(Rig, "run_until", "rig"), (runner._Receiver, "feed", "gateway receive"),
                        (ControlLoop, "tick", "control tick")]
        self.spent = dict.fromkeys([label for _, _, label in self.targets], 0.0)
        self.ticks = 0
        self.first_t: float | None = None  # the first rig step: the loop starts (set-up before it)
        self._saved: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> _Split:
        for owner, name, label in self.targets:
            fn = getattr(owner, name)
            self._saved.append((owner, name, fn))
            setattr(owner, name, self._timed(fn, label, count=label == "control tick"))
        return self

    def _timed(self, fn: Any, label: str, count: bool) -> Any:
        spent = self.spent
        clock = time.perf_counter

        def timed(*args: Any, **kwargs: Any) -> Any:
            t = clock()
            if self.first_t is None:
                self.first_t = t
            try:
                return fn(*args, **kwargs)
            finally:
                spent[label] += clock() - t
                if count:
                    self.ticks += 1

        return timed

    def __exit__(self, *exc: object) -> None:
        for owner, name, fn in self._saved:
            setattr(owner, name, fn)


def _run(path: Path, seed: int, profiler: cProfile.Profile | None) -> dict[str, Any]:
    from hil.scenario.runner import run_scenario

    with _Probe() as probe:
        t0 = time.perf_counter()
        c0 = time.process_time()
        if profiler is not None:
            profiler.enable()
        result = run_scenario(path, seed=seed)
        if profiler is not None:
            profiler.disable()
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
    setup = (probe.start_t or t0) - t0
    return {"name": result.name, "sim_s": result.duration_s, "wall_s": wall, "cpu_s": cpu, "setup_s": setup,
            "passed": result.passed, "frames": probe.frames}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drive-s", type=float, default=60.0, help="length of the steady drive (default 60 s)")
    parser.add_argument("--no-drive", action="store_true", help="bundled scenarios only")
    parser.add_argument("--only", nargs="*", default=None, metavar="NAME", help="run only these scenarios (stem)")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N top functions by own time")
    parser.add_argument("--split-s", type=float, default=20.0, metavar="S",
                        help="then a steady drive of S s timed by part: rig, gateway receive, "
                             "control tick (0: skip; default 20)")
    args = parser.parse_args(argv)

    paths = sorted((ROOT / "hil" / "scenarios").glob("*.toml"))
    if args.only:
        paths = [p for p in paths if p.stem in args.only]
    with tempfile.TemporaryDirectory() as tmp:
        drive = Path(tmp) / "steady_drive.toml"
        drive.write_text(DRIVE_TOML.format(duration=float(args.drive_s), end=max(8.0, float(args.drive_s))))
        warm = Path(tmp) / "warm_up.toml"
        warm.write_text(DRIVE_TOML.format(duration=1.0, end=8.0).replace("within_s = 12.0", "within_s = 1.0"))
        t0 = time.perf_counter()
        from hil.scenario.runner import run_scenario

        run_scenario(warm, seed=args.seed)
        print(f"one-time warm-up (imports, numba compile or cache load, first run): {time.perf_counter() - t0:.2f} s")
        if not args.no_drive:
            paths.append(drive)
        profiler = cProfile.Profile() if args.profile else None
        rows = [_run(p, args.seed, profiler) for p in paths]

    print(f"{'scenario':<24} {'sim s':>6} {'wall s':>7} {'setup s':>7} {'x real':>7} {'x run':>7} "
          f"{'cpu s':>6} {'frames':>7} {'fr/sim-s':>8} {'fr/wall-s':>9}  result")
    for r in rows:
        run_s = r["wall_s"] - r["setup_s"]
        print(f"{r['name']:<24} {r['sim_s']:6.1f} {r['wall_s']:7.3f} {r['setup_s']:7.3f} "
              f"{r['sim_s'] / r['wall_s']:7.1f} {r['sim_s'] / run_s:7.1f} {r['cpu_s']:6.2f} {r['frames']:7d} "
              f"{r['frames'] / r['sim_s']:8.0f} {r['frames'] / r['wall_s']:9.0f}  {'pass' if r['passed'] else 'FAIL'}")
    sim = sum(r["sim_s"] for r in rows)
    wall = sum(r["wall_s"] for r in rows)
    setup = sum(r["setup_s"] for r in rows)
    frames = sum(r["frames"] for r in rows)
    print(f"overall: {sim:.1f} s simulated in {wall:.2f} s wall: {sim / wall:.1f} simulated-s per wall-s "
          f"({sim / (wall - setup):.1f} without the {setup:.2f} s of set-up; target >= {TARGET_X:g}x)"
          f"{' [under cProfile]' if profiler else ''}")
    cpu = sum(r["cpu_s"] for r in rows)
    print(f"process CPU time {cpu:.2f} s: {sim / cpu:.1f} simulated-s per CPU-s (the figure on a machine shared "
          "with other work)")
    print(f"buses: {frames} frames, {frames / sim:.0f} per simulated s, {frames / wall:,.0f} per wall s")
    if args.split_s > 0:
        with tempfile.TemporaryDirectory() as tmp:
            drive = Path(tmp) / "steady_drive.toml"
            drive.write_text(DRIVE_TOML.format(duration=float(args.split_s), end=max(8.0, float(args.split_s))))
            from hil.scenario.runner import run_scenario

            with _Split() as split:
                run_scenario(drive, seed=args.seed)
                wall = time.perf_counter() - (split.first_t or 0.0)
        per_tick = {label: spent / split.ticks * 1e6 for label, spent in split.spent.items()}
        total_us = wall / split.ticks * 1e6
        rest = total_us - sum(per_tick.values())
        parts = ", ".join(f"{label} {us:.0f} us ({100 * us / total_us:.0f} %)" for label, us in per_tick.items())
        print(f"where a 10 ms tick goes ({args.split_s:g} s steady drive, {split.ticks} ticks, set-up not "
              f"counted): {parts}, rest {rest:.0f} us ({100 * rest / total_us:.0f} %); {total_us:.0f} us per tick "
              f"= {10_000 / total_us:.1f}x real time")
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.profile)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
