"""``z10 sim``: serve the simulated van's buses to other processes over loopback (socketcand).

The simulated Z10 in real time: the van model and its ECUs (VCU, MCU, BMS, EPS, BRK, CBC and
the autonomy-computer stand-in) on the timed virtual buses pt, body (500 kbit/s) and ads
(CAN FD 500 kbit/s / 2 Mbit/s), UDS servers on the VCU, BMS and CBC, all behind a socketcand
hub on 127.0.0.1. The ECUs' fault monitors set DTCs from the live van and bus (over-temperature,
isolation, lost communication), and CommunicationControl (0x28) silences an ECU's normal
traffic (:mod:`hil.uds.live`); the ECUs accept images signed with the development key unless
``--trusted-key`` names another public key. ``--no-van`` serves the bare buses; ``--no-adc`` leaves the autonomy
computer's ids to a client. Any socketcand client attaches from another process::

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
    parser.add_argument("--no-van", action="store_true", help="serve the bare buses: no van model, ECUs or UDS")
    parser.add_argument("--no-adc", action="store_true",
                        help="no autonomy-computer stand-in (a client plays the ADC on ads)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the van (cell spread, phases; default 0)")
    parser.add_argument("--trusted-key", metavar="FILE",
                        help="Ed25519 public key the simulated ECUs accept flash images from "
                             "(default: the development key)")
    parser.add_argument("--max-clients", type=int, default=64, help="most clients at once (default 64)")
    parser.add_argument("--client-buffer-kib", type=int, default=4096,
                        help="output buffered per client before frames for it are dropped and counted (default 4096)")


def _start_van(args: argparse.Namespace) -> tuple[Any, list[Any], list[Any], Any]:
    """The rig (van + ECUs on real time), the UDS servers on their own bus nodes, their monitors."""
    from hil.ecus.registry import node_names
    from hil.rig import Rig
    from hil.uds.ecus import attach, make_servers
    from hil.uds.live import LiveDiagnostics
    from hil.uds.server import Conditions

    trusted_key = None
    if getattr(args, "trusted_key", None):
        from vehicle_io.flash.signing import load_public_key

        trusted_key = load_public_key(args.trusted_key)

    nodes = [n for n in node_names() if not (args.no_adc and n == "ADC")]
    rig = Rig(seed=args.seed, clock="real", nodes=nodes)

    def live() -> dict[str, float]:
        values = rig.van.model.outputs.snapshot()
        comps = rig.van.model.compartments
        values["cargo_bay_temp_c"] = float(comps["temp_c"].mean())
        values["cargo_door_open"] = float(comps["door_open"].any())
        return values

    def conditions() -> Conditions:
        return Conditions(speed_mps=float(rig.van.read("speed_mps")))

    servers = make_servers(live=live, conditions=conditions, clock=lambda: rig.t_s, trusted_key=trusted_key)
    buses = [rig.open_bus(name, node=f"UDS-{name}") for name in ("pt", "body")]
    transports = attach({"pt": buses[0], "body": buses[1]}, servers)
    locks = {t.address.name: t.lock for t in transports}
    diagnostics = LiveDiagnostics(rig, servers, {"pt": buses[0], "body": buses[1]}, live, locks=locks).start()
    return rig, transports, buses, diagnostics


def run(args: argparse.Namespace) -> int:
    from hil.hub import Hub, default_channels

    rig = None
    diagnostics = None
    transports: list[Any] = []
    uds_buses: list[Any] = []
    options: dict[str, Any] = {}
    if not args.no_van:
        if args.interface != "hilbus":
            raise ValueError("the simulated van runs on the timed bus: use --interface hilbus or --no-van")
        rig, transports, uds_buses, diagnostics = _start_van(args)
        options["clock"] = rig.clock
    hub = Hub(
        default_channels(args.interface, **options),
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
        if rig is not None:
            ecus = ", ".join(sorted(rig.ecus))
            print(f"  van: seed {args.seed}, ECUs {ecus}; UDS on VCU 0x7E0, BMS 0x7E1 (pt), CBC 0x7E2 (body)")
        width = max(len(name) for name in hub.channels)
        for name, spec in hub.channels.items():
            print(f"  {name:<{width}}  {spec.describe()}")
        print(f'attach: can.Bus(interface="socketcand", host="{host}", port={port}, channel="pt")')
        print("stop with Ctrl-C or SIGTERM", flush=True)
        hub.serve_until(stop)
    finally:
        hub.shutdown()
        if diagnostics is not None:
            diagnostics.shutdown()
        for transport in transports:
            transport.shutdown()
        for bus in uds_buses:
            bus.shutdown()
        if rig is not None:
            rig.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    stats = hub.stats()
    print(f"z10 sim: stopped after {time.monotonic() - started:.1f} s")
    for line in stats.summary().splitlines():
        print(f"  {line}")
    sys.stdout.flush()
    return 0
