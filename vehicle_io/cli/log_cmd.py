"""``z10 log``: record one or more buses to a candump .log, .asc or .blf file (also .csv, .trc).

    z10 log                                  # every bus of the simulated van -> z10-<date>.log
    z10 log -o drive.log --bus pt --bus body
    z10 log -o drive.blf --max-bytes 50000000 --max-seconds 600   # rotate: drive.000.blf, ...

Buses open listen-only (recording never transmits). A live count of frames per second goes
to stderr. Ctrl-C, SIGTERM or the end of ``--duration`` stop the receive threads first, then
every frame already received is written before the file closes: nothing received is lost.
Ctrl-C and SIGTERM only ask the loop to stop (a second Ctrl-C interrupts at once).
The .log files are byte-compatible with can-utils' ``candump -l`` (see vehicle_io.logfmt).
Exit codes: 0 recorded (also when stopped by Ctrl-C/SIGTERM), 2 usage or bus error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from vehicle_io.cli.busopts import add_bus_arguments, bus_specs

HELP = "record buses to candump .log, .asc or .blf with rotation and a live frame/s count"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="log file (.log, .asc, .blf, .csv, .trc; default z10-DATE_TIME.log)")
    parser.add_argument("--bus", action="append", dest="only", metavar="NAME",
                        help="record only this bus (repeatable; default: every bus)")
    parser.add_argument("--max-bytes", type=int, default=None, help="start a new file past this size")
    parser.add_argument("--max-seconds", type=float, default=None, help="start a new file after this many seconds")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    parser.add_argument("--count", type=int, default=None, help="stop after this many frames")
    parser.add_argument("--quiet", action="store_true", help="no live frame/s line on stderr")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_bus_arguments(parser)


class _Tap:
    """A python-can Listener that names each frame by its bus and queues it; never blocks."""

    def __init__(self, name: str, put: Any) -> None:
        self.name = name
        self._put = put
        self.received = 0
        self.errors = 0
        self.last_error: str | None = None

    def on_message_received(self, msg: Any) -> None:
        msg.channel = self.name
        self.received += 1
        self._put(msg)

    __call__ = on_message_received  # what python-can's Notifier calls

    def on_error(self, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def stop(self) -> None:
        pass


def record(buses: dict[str, Any], writer: Any, stop: Any, *, duration_s: float | None = None,
           count: int | None = None, progress: Any = None, tick_s: float = 1.0) -> dict[str, Any]:
    """Record ``buses`` into ``writer`` until ``stop`` is set, ``duration_s`` or ``count``.

    On any way out (also KeyboardInterrupt) the notifiers stop first, then every frame
    already queued is written and the writer closed: nothing received is lost.
    """
    import queue

    import can

    frames: queue.SimpleQueue[Any] = queue.SimpleQueue()
    taps = {name: _Tap(name, frames.put) for name in buses}
    notifiers = []
    written = 0
    started = time.monotonic()
    interrupted = False
    try:
        for name, bus in buses.items():
            notifiers.append(can.Notifier(bus, [taps[name]], timeout=0.05))
        last_tick, last_written = started, 0
        while not stop.is_set():
            now = time.monotonic()
            if duration_s is not None and now - started >= duration_s:
                break
            if count is not None and written >= count:
                break
            try:
                msg = frames.get(timeout=0.05)
            except queue.Empty:
                msg = None
            if msg is not None:
                writer.on_message_received(msg)
                written += 1
            if now - last_tick >= tick_s:
                flush = getattr(writer, "flush", None)
                if flush is not None:
                    flush()  # at most one tick of frames in memory if the process dies hard
                if progress is not None:
                    progress(now - started, written, (written - last_written) / (now - last_tick))
                last_tick, last_written = now, written
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for notifier in notifiers:
            notifier.stop(timeout=5.0)
        while True:
            try:
                msg = frames.get_nowait()
            except queue.Empty:
                break
            writer.on_message_received(msg)
            written += 1
        writer.stop()
    received = {name: tap.received for name, tap in taps.items()}
    return {"received": received, "written": written, "elapsed_s": round(time.monotonic() - started, 3),
            "receive_errors": {name: f"{tap.errors} ({tap.last_error})" for name, tap in taps.items() if tap.errors},
            "interrupted": interrupted or stop.is_set()}


def run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from vehicle_io.bench import close_buses, open_buses
    from vehicle_io.logfmt import RotatingWriter

    specs = bus_specs(args)
    if args.only:
        unknown = sorted(set(args.only) - set(specs))
        if unknown:
            raise ValueError(f"--bus: expected bus names among {sorted(specs)}, but got {unknown}")
        specs = {name: specs[name] for name in args.only}
    if args.arm:
        raise ValueError("--arm: recording never transmits; leave the buses listen-only")
    output = args.output or time.strftime("z10-%Y-%m-%d_%H%M%S.log")
    writer = RotatingWriter(output, channels=list(specs), max_bytes=args.max_bytes, max_s=args.max_seconds)
    stop = threading.Event()
    handled = (signal.SIGTERM, signal.SIGINT)
    previous: dict[int, Any] = {}

    def on_stop(signum: int, frame: Any) -> None:
        # A stop request, taken where the loop checks it: a KeyboardInterrupt raised inside
        # a write can lose the text the file object was holding (seen: one line short).
        # The first Ctrl-C asks; the handler it replaced is back for a second one.
        stop.set()
        if signum == signal.SIGINT and signum in previous:
            signal.signal(signal.SIGINT, previous.pop(signal.SIGINT))

    if threading.current_thread() is threading.main_thread():
        for signum in handled:
            previous[signum] = signal.signal(signum, on_stop)
    try:
        buses = open_buses(specs)
    except BaseException:
        writer.stop()
        raise
    progress = None
    if not args.quiet:
        def progress(elapsed_s: float, written: int, rate: float) -> None:
            print(f"\r{elapsed_s:7.1f} s  {written} frames  {rate:8.0f} frames/s  -> {writer.paths[-1]}",
                  end="", file=sys.stderr, flush=True)
    try:
        summary = record(buses, writer, stop, duration_s=args.duration, count=args.count, progress=progress)
    finally:
        close_buses(buses.values())
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if progress is not None:
        print(file=sys.stderr)
    summary["files"] = [str(p) for p in writer.paths]
    summary["skipped"] = writer.skipped
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        total = sum(summary["received"].values())
        per_bus = ", ".join(f"{k} {v}" for k, v in summary["received"].items())
        print(f"{total} frames received ({per_bus}), {summary['written']} written to "
              f"{', '.join(summary['files'])}" + (f", {writer.skipped} not representable in the format"
                                                   if writer.skipped else ""))
    return 0
