#!/usr/bin/env python3
"""Benchmark the van model (hil.plant) at its 1 ms fixed step.

    python tools/bench_plant.py [--sim-s 60] [--python-steps 20000] [--seed 0]

Prints, single thread, wall time from time.perf_counter, kernels warm (Van() warms them):

* numba: ns per 1 ms model step inside one kernel call running --sim-s simulated seconds
  (no Python between steps), and the simulated seconds per wall second that gives;
* from Python: ns per ``Van.step(0.001)`` call (wrapper + dispatch + one step), with and
  without an inputs mapping, and simulated seconds per wall second at 1 ms calls;
* at a 10 ms control period: ns per ``Van.step(0.01, inputs)`` (10 model steps).

The van drives a varying torque and steering profile with HV on, so every part of the model
(cells, BMS limits, cargo bay, steering) runs each step.
"""

from __future__ import annotations

import argparse
import math
import time


def _ready(seed: int):  # type: ignore[no-untyped-def]
    from hil.plant.model import Van

    van = Van(seed=seed)
    van.set_inputs(hv_request=1, epb_request=2, gear_request=3, steer_enable=1,
                   steer_angle_request_deg=60.0, motor_torque_request_nm=120.0)  # fmt: skip
    van.step(1.5)
    return van


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim-s", type=float, default=60.0)
    ap.add_argument("--python-steps", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    van = _ready(args.seed)
    print(f"construction + warm-up + 1.5 s sim: {time.perf_counter() - t0:.3f} s wall")
    step_s = van.params.step_s
    print(f"model: {van.params.series_cells} cells, {van.params.compartments} compartments, step {step_s * 1e3:g} ms")

    # numba: one call, many steps
    n = round(args.sim_s / step_s)
    start = time.perf_counter()
    van.step(n * step_s)
    wall = time.perf_counter() - start
    print(f"numba, {args.sim_s:g} s in one call: {wall / n * 1e9:8.0f} ns/step   "
          f"{args.sim_s / wall:10.0f} sim s per wall s   (speed {van.outputs['speed_mps']:.1f} m/s)")

    # from Python, one 1 ms step per call
    k = args.python_steps
    start = time.perf_counter()
    for _ in range(k):
        van.step(step_s)
    wall = time.perf_counter() - start
    print(f"python, step(0.001) x {k}:        {wall / k * 1e9:8.0f} ns/call   {k * step_s / wall:10.1f} sim s per wall s")

    start = time.perf_counter()
    for i in range(k):
        van.step(step_s, {"motor_torque_request_nm": 100.0 + 50.0 * math.sin(i * 1e-3),
                          "steer_angle_request_deg": 90.0 * math.cos(i * 1e-3)})  # fmt: skip
    wall = time.perf_counter() - start
    print(f"python, step(0.001, inputs) x {k}: {wall / k * 1e9:8.0f} ns/call   {k * step_s / wall:10.1f} sim s per wall s")

    k10 = max(1, k // 10)
    start = time.perf_counter()
    for i in range(k10):
        van.step(0.01, {"motor_torque_request_nm": 100.0 + 50.0 * math.sin(i * 1e-2)})
    wall = time.perf_counter() - start
    print(f"python, step(0.01, inputs) x {k10}:  {wall / k10 * 1e9:8.0f} ns/call   {k10 * 0.01 / wall:10.1f} sim s per wall s")

    start = time.perf_counter()
    for _ in range(k):
        van.outputs["speed_mps"]
    wall = time.perf_counter() - start
    print(f"python, outputs['speed_mps'] read:  {wall / k * 1e9:8.0f} ns/read")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
