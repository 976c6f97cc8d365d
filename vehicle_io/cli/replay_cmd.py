"""``z10 replay LOG``: play a log back onto buses on its own timing (as canplayer does).

    z10 replay drive.log                        # onto the simulated van, log channels = bus names
    z10 replay drive.blf --speed 4 --loop 3     # four times faster, three times over
    z10 replay drive.log --filter 0C0,0D0 -i socketcan -c can0 --arm pt --map can0=pt

Each log channel goes to the bus of the same name; ``--map LOGCH=BUS`` renames, and a
single target bus takes every channel. Frames leave through the gateway's transmit path
(transmit gate armed for the target buses, allowlist = the ids of the log). Their bytes
are sent as logged; ``--refresh-e2e`` instead fills fresh alive counters and CRCs (a
looped replay to a live ECU needs continuous counters). A bus that is not the simulator's
needs ``--arm NAME``. Exit codes: 0 played, 2 usage or input error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from vehicle_io.cli.busopts import add_bus_arguments, bus_specs

HELP = "replay a log onto buses on its own timing (speed factor, loop, id filter)"


def _ids(text: str) -> set[int]:
    try:
        return {int(part, 16) for part in text.split(",") if part.strip()}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected hex ids separated by commas (0C0,1A2), but got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", metavar="LOG", help="log file (.log, .log.gz, .asc, .blf, .csv, .trc)")
    parser.add_argument("--speed", type=float, default=1.0, help="speed factor (default 1: real time; 0: no waiting)")
    parser.add_argument("--loop", type=int, default=1, help="play the log this many times (0: forever)")
    parser.add_argument("--filter", type=_ids, default=None, metavar="IDS", help="only these hex ids (comma separated)")
    parser.add_argument("--map", action="append", default=[], metavar="LOGCH=BUS", help="log channel -> bus name")
    parser.add_argument("--refresh-e2e", action="store_true", help="fill fresh E2E counters and CRCs when sending")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_bus_arguments(parser)


def _channel_map(items: list[str], specs: dict[str, Any]) -> dict[str, str]:
    out = {}
    for item in items:
        src, sep, dst = item.partition("=")
        if not sep or not src or dst not in specs:
            raise ValueError(f"--map: expected LOGCH=BUS with BUS among {sorted(specs)}, but got {item!r}")
        out[src] = dst
    return out


def run(args: argparse.Namespace) -> int:
    import can

    from vehicle_io import load_database
    from vehicle_io.bench import close_buses
    from vehicle_io.cli.send_cmd import check_arming, open_transmitter
    from vehicle_io.logfmt import LogReader

    if args.speed < 0:
        raise ValueError(f"--speed: expected a factor >= 0, but got {args.speed:g}")
    if args.loop < 0:
        raise ValueError(f"--loop: expected a count >= 0, but got {args.loop}")
    specs = bus_specs(args)
    mapping = _channel_map(args.map, specs)
    reader = LogReader(args.log)
    frames = [m for m in reader if not m.is_error_frame]
    for reason in reader.bad_samples:
        print(f"warning: {reason}", file=sys.stderr)
    if args.filter is not None:
        frames = [m for m in frames if m.arbitration_id in args.filter]

    def target(channel: Any) -> str | None:
        name = str(channel)
        if name in mapping:
            return mapping[name]
        if name in specs:
            return name
        return next(iter(specs)) if len(specs) == 1 else None

    routed = [(target(m.channel), m) for m in frames]
    unrouted = sum(1 for bus, _ in routed if bus is None)
    plays = [(bus, m) for bus, m in routed if bus is not None]
    targets = sorted({bus for bus, _ in plays})
    if not plays:
        raise ValueError(f"{args.log}: no frame to play (channels {sorted({str(m.channel) for m in frames})}, "
                         f"buses {sorted(specs)}; use --map LOGCH=BUS)")
    check_arming(args, specs, targets)
    db = load_database()
    gateway, buses = open_transmitter(specs, targets, db)
    for bus, m in plays:
        length = m.dlc if m.is_remote_frame else len(m.data)
        gateway.gate.allow(m.arbitration_id, bus, length, extended=m.is_extended_id)
    # The gateway's one path out; the logged bytes go as they are unless asked to refresh E2E.
    transmit = gateway.send if args.refresh_e2e else (
        lambda bus, msg, timeout_s: gateway._transmit(bus, msg, fill_e2e=False, timeout_s=timeout_s))
    first_ts = plays[0][1].timestamp or 0.0
    span_s = max(0.0, (plays[-1][1].timestamp or 0.0) - first_ts)
    sent = 0
    errors = 0
    loops = 0
    interrupted = False
    start = time.monotonic()
    try:
        while args.loop == 0 or loops < args.loop:
            loop_start = time.monotonic()
            for bus, m in plays:
                if args.speed > 0:
                    delay = loop_start + ((m.timestamp or first_ts) - first_ts) / args.speed - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                try:
                    transmit(bus, m, timeout_s=1.0)
                    sent += 1
                except can.CanError as err:
                    errors += 1
                    if errors <= 5:
                        print(f"warning: send on {bus} failed: {err}", file=sys.stderr)
            loops += 1
            if args.speed > 0 and (args.loop == 0 or loops < args.loop):
                # one mean frame gap between loops, so the first frame does not land on the last
                gap = span_s / max(1, len(plays) - 1) / args.speed
                time.sleep(gap)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        gateway.shutdown()
        close_buses(buses.values())
    summary = {"log": args.log, "frames_in_log": len(frames), "sent": sent, "send_errors": errors,
               "loops": loops, "unrouted": unrouted, "unreadable_lines": reader.bad_lines,
               "buses": targets, "speed": args.speed, "wall_s": round(time.monotonic() - start, 3)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{sent} frames sent on {', '.join(targets)} in {loops} loop(s); {unrouted} without a bus, "
              f"{errors} send errors, {reader.bad_lines} unreadable lines")
    return 130 if interrupted else 0
