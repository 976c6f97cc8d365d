"""``z10 sim``: serve the simulated van's buses to other processes over loopback (socketcand).

This issue's simulator is the bus layer alone: the timed virtual buses pt, body (500 kbit/s)
and ads (CAN FD 500 kbit/s / 2 Mbit/s) in real time, behind a socketcand hub on 127.0.0.1.
Any socketcand client attaches from another process::

    can.Bus(interface="socketcand", host="127.0.0.1", port=29536, channel="pt")

SIGINT (Ctrl-C) or SIGTERM stops it cleanly and prints a summary: frames per channel,
clients, protocol errors, overflows (frames dropped because a client did not read).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import Any

HELP = "serve the simulated van's buses (pt, body, ads) on loopback through the socketcand protocol"

DEFAULT_PORT = 29536


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one and prints it)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="loopback address to listen on (default 127.0.0.1; anything else is refused)")
    parser.add_argument("--interface", default="hilbus", choices=("hilbus", "virtual"),
                        help="python-can interface behind the channels: hilbus = the timed bus in real time "
                             "(default), virtual = python-can's untimed bus (no bit timing, for throughput tests)")
    parser.add_argument("--max-clients", type=int, default=64, help="most clients at once (default 64)")
    parser.add_argument("--client-buffer-kib", type=int, default=4096,
                        help="output buffered per client before frames for it are dropped and counted (default 4096)")


def run(args: argparse.Namespace) -> int:
    from hil.hub import Hub, default_channels

    hub = Hub(
        default_channels(args.interface),
        host=args.host,
        port=args.port,
        max_clients=args.max_clients,
        max_pending_bytes=args.client_buffer_kib * 1024,
    )
    stop = threading.Event()
    previous: dict[int, Any] = {}

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, on_signal)
    started = time.monotonic()
    try:
        hub.start()
        host, port = hub.address
        shown = f"[{host}]" if ":" in host else host
        print(f"z10 sim: socketcand hub listening on {shown}:{port} (loopback only)")
        width = max(len(name) for name in hub.channels)
        for name, spec in hub.channels.items():
            print(f"  {name:<{width}}  {spec.describe()}")
        print(f'attach: can.Bus(interface="socketcand", host="{host}", port={port}, channel="pt")')
        print("stop with Ctrl-C or SIGTERM", flush=True)
        hub.serve_until(stop)
    finally:
        hub.shutdown()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    stats = hub.stats()
    print(f"z10 sim: stopped after {time.monotonic() - started:.1f} s")
    for line in stats.summary().splitlines():
        print(f"  {line}")
    sys.stdout.flush()
    return 0
