#!/usr/bin/env python3
"""Benchmark the rig: simulated seconds per wall second with full bus traffic.

    python tools/bench_rig.py [--seconds 60] [--seed 1] [--step 0.01] [--idle] [--profile N]

The rig (every simulated ECU, the three buses with exact bit timing, the van model at
``--step``) plus a gateway stand-in (hil.ecus.gwstub) that sends the GW_* commands at their
cycle times and closes a speed loop around the ADC plan's target speed (pull away, cruise at
30 km/h, brake to a stop, every 60 s), so the van moves and every command path is exercised.
``--idle`` leaves the van parked with no gateway (what ``z10 sim`` does before a client).
Prints simulated-s per wall-s, frames per bus and bus load; ``--profile N`` adds the N
functions with the most own time (cProfile) so a shortfall can be placed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_X = 50.0
DRIVE_PLAN = {
    "speed_mps": [[0, 0], [4, 0], [11, 8.33], [40, 8.33], [48, 0], [60, 0]],
    "gear": [[0, "D"]],
    "epb": [[0, "Release"]],
}
KP_NM_PER_MPS = 400.0


def _drive_loop(rig: object, stub: object, plan: object) -> None:
    """A 100 Hz proportional speed loop on the bus clock (the gateway's job, roughly)."""
    from hil.bus.clock import seconds_to_ps

    clock = rig.clock  # type: ignore[attr-defined]
    period_ps = seconds_to_ps(0.01)
    state = {"next": clock.now_ps() + period_ps}

    def tick() -> None:
        t_s = rig.t_s  # type: ignore[attr-defined]
        target = plan.command(t_s % 60.0)["ADC_TargetSpeed"]  # type: ignore[attr-defined]
        speed = rig.van.read("speed_mps")  # type: ignore[attr-defined]
        error = target - speed
        torque = max(-150.0, min(300.0, KP_NM_PER_MPS * error))
        brake = 0.0
        if target < 0.05 and speed < 0.3:
            torque, brake = 0.0, 25.0
        elif error < -1.0:
            brake = min(60.0, -error * 20.0)
        stub.set("GW_DriveCommand", GW_TorqueRequest=round(torque, 1), GW_GearRequest=3, GW_EpbRequest=2)  # type: ignore[attr-defined]
        stub.set("GW_BrakeCommand", GW_BrakePressureRequest=round(brake, 1))  # type: ignore[attr-defined]
        state["next"] += period_ps
        clock.call_at_ps(state["next"], tick)

    clock.call_at_ps(state["next"], tick)


#: (label, file suffix, function) of the entry points whose cumulative time is the share of
#: each part; what is left is the bus itself (arbitration, bit timing, delivery, scheduling).
_PARTS = (
    ("ECU transmit (hooks, encode, E2E, send)", "hil/ecus/base.py", "_fire"),
    ("ECU receive (E2E check, decode, reaction)", "hil/ecus/base.py", "_on_frame"),
    ("gateway stand-in transmit", "hil/ecus/gwstub.py", "_fire"),
    ("van model step + snapshot", "hil/rig.py", "_step"),
)


def _where(profiler: cProfile.Profile) -> None:
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"where the time goes (cProfile, {total:.2f} s profiled):")
    used = 0.0
    for label, suffix, func in _PARTS:
        cum = sum(v[3] for (path, _, name), v in stats.stats.items()  # type: ignore[attr-defined]
                  if path.endswith(suffix) and name == func)
        used += cum
        print(f"  {cum / total * 100:5.1f} %  {label}")
    # Frame delivery to the ECUs happens inside the bus's end-of-frame work; it is counted above.
    print(f"  {(total - used) / total * 100:5.1f} %  bus: arbitration, bit timing, delivery, clock")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="simulated seconds (default 60)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--step", type=float, default=0.01, help="van model step on the bus clock (default 0.01 s)")
    parser.add_argument("--idle", action="store_true", help="no gateway stand-in: parked van, rest-bus only")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N top functions by own time")
    args = parser.parse_args(argv)

    from hil.ecus.adc import AdcPlan
    from hil.ecus.gwstub import GatewayStub
    from hil.rig import Rig

    t_build = time.perf_counter()
    plan = AdcPlan.from_dict(DRIVE_PLAN)
    rig = Rig(seed=args.seed, clock="sim", adc_plan=plan, step_s=args.step, channel_prefix="bench-")
    stub = None
    if not args.idle:
        stub = GatewayStub(rig, messages=["GW_DriveCommand", "GW_BrakeCommand", "GW_SteerCommand",
                                          "GW_CargoCommand", "GW_Status", "GW_VehicleState"])
        _drive_loop(rig, stub, plan)
    build_s = time.perf_counter() - t_build
    rig.run_for(0.5)  # warm-up: first frames, caches
    before = {bus: ch.stats() for bus, ch in rig.channels.items()}
    profiler = cProfile.Profile() if args.profile else None
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    if profiler is not None:
        profiler.enable()
    rig.run_for(args.seconds)
    if profiler is not None:
        profiler.disable()
    wall_s = time.perf_counter() - t0
    cpu_s = time.process_time() - cpu0
    after = {bus: ch.stats() for bus, ch in rig.channels.items()}
    frames = sum(after[bus].frames - before[bus].frames for bus in after)
    ratio = args.seconds / wall_s
    print(f"rig: {len(rig.ecus)} ECUs ({', '.join(rig.ecus)}), buses {', '.join(rig.channels)}, "
          f"van step {args.step * 1000:g} ms, {'idle' if args.idle else 'driving with a gateway stand-in'}")
    print(f"build {build_s:.2f} s (DBC, codec, van model warm-up)")
    print(f"simulated {args.seconds:g} s in {wall_s:.3f} s wall: {ratio:.1f} simulated-s per wall-s "
          f"(target >= {TARGET_X:g}x){'' if profiler is None else ' [under cProfile]'}")
    print(f"frames {frames} ({frames / wall_s:,.0f} per wall-s, {wall_s / max(frames, 1) * 1e6:.1f} us per frame), "
          f"van steps {rig.steps}")
    # CPU time of this process: steadier than wall time on a machine shared with other work.
    print(f"cpu {cpu_s:.3f} s: {cpu_s / max(frames, 1) * 1e6:.1f} us of CPU per frame, "
          f"{cpu_s / (args.seconds / 0.01) * 1e6:.0f} us of CPU per 10 ms of bus time (a control tick)")
    for bus, ch in rig.channels.items():
        print(f"  {bus:<4} load {after[bus].load_since(before[bus]):5.1f} %, "
              f"{after[bus].frames - before[bus].frames} frames")
    print(f"  van speed now {rig.van.read('speed_mps'):.2f} m/s, distance {rig.van.read('distance_m'):.0f} m")
    if profiler is not None:
        _where(profiler)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.profile)
        print(out.getvalue())
    if stub is not None:
        stub.close()
    rig.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
