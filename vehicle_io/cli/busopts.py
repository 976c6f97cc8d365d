"""The options subcommands share: the bus options (``--bench``, ``-i/-c/-b``, ``--sim-port``)
of every bus-facing one, and ``--dbc``.

Without any of them a command attaches to the simulated van that ``z10 sim`` serves on
loopback. python-can's own configuration (``~/.canrc``, ``CAN_INTERFACE``...) applies when
``-i`` is omitted but ``-c`` is given.
"""

from __future__ import annotations

import argparse

from vehicle_io.bench import SIM_HOST, SIM_PORT, BusSpec, load_bench, simulated_bench, single_bus
from vehicle_io.errors import BusConfigError


def add_dbc_argument(parser: argparse.ArgumentParser) -> None:
    """``--dbc PATH`` (repeatable): the database to use instead of the bundled Z10 set."""
    parser.add_argument("--dbc", action="append", metavar="PATH",
                        help="DBC file or directory (repeatable; default: the bundled Z10 set)")


def add_bus_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("bus selection (default: the simulated van of `z10 sim`)")
    group.add_argument("--bench", metavar="FILE", help="bench TOML file naming every bus")
    group.add_argument("-i", "--interface", help="python-can interface of a single bus (socketcan, slcan, ...)")
    group.add_argument("-c", "--channel", help="channel of the single bus (can0, /dev/ttyACM0, ...)")
    group.add_argument("-b", "--bitrate", type=int, help="bitrate of the single bus")
    group.add_argument("--data-bitrate", type=int, help="CAN FD data-phase bitrate (implies --fd)")
    group.add_argument("--fd", action="store_true", help="the single bus is CAN FD")
    group.add_argument("--bus-name", default="pt", help="Z10 network of the single bus: pt, body or ads (default pt)")
    group.add_argument("--sim-port", type=int, default=SIM_PORT, help=f"port of `z10 sim` on {SIM_HOST} (default {SIM_PORT})")
    group.add_argument("--arm", action="append", default=[], metavar="BUS",
                       help="allow transmitting on BUS (repeatable); every bus is listen-only otherwise")


def bus_specs(args: argparse.Namespace) -> dict[str, BusSpec]:
    """The buses the options name."""
    single = args.interface or args.channel
    if args.bench and single:
        raise BusConfigError("give either --bench or -i/-c, not both")
    if args.bench:
        return load_bench(args.bench)
    if single:
        if not args.channel:
            raise BusConfigError(f"-i {args.interface} needs -c CHANNEL as well")
        interface = args.interface
        if interface is None:
            import can.util

            interface = can.util.load_config(config={"channel": args.channel}).get("interface")
            if not interface:
                raise BusConfigError("no -i INTERFACE given and none in python-can's configuration")
        fd = bool(args.fd or args.data_bitrate)
        return single_bus(args.bus_name, interface, args.channel, args.bitrate, args.data_bitrate, fd)
    return simulated_bench(port=args.sim_port)
