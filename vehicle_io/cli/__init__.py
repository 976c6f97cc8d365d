"""The ``z10`` command: a registry of subcommands, one module each.

A subcommand module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. It must stay light at import (no numba, no database load): the heavy
imports go inside ``run`` so that ``z10 --help`` answers at once. Other distributions (the
``hil`` simulator) add subcommands through the ``z10.commands`` entry-point group, whose
values name such a module.

Exit codes: 0 success, 1 the job ran and found a failure (lint findings, failed checks),
2 usage or input error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from importlib import metadata
from types import ModuleType

from vehicle_io import __version__
from vehicle_io.errors import VehicleIoError

#: Built-in subcommands: name -> module. Adding a subcommand is one module and one line.
COMMANDS: dict[str, str] = {
    "list": "vehicle_io.cli.list_cmd",
    "dump": "vehicle_io.cli.dump_cmd",
    "dbc": "vehicle_io.cli.dbc_cmd",
    "decode": "vehicle_io.cli.decode_cmd",
    "monitor": "vehicle_io.cli.monitor_cmd",
    "send": "vehicle_io.cli.send_cmd",
    "log": "vehicle_io.cli.log_cmd",
    "replay": "vehicle_io.cli.replay_cmd",
    "convert": "vehicle_io.cli.convert_cmd",
    "plot": "vehicle_io.cli.plot_cmd",
    "diag": "vehicle_io.cli.diag_cmd",
    "flash": "vehicle_io.cli.flash_cmd",
    "gateway": "vehicle_io.cli.gateway_cmd",
    "fleet": "vehicle_io.cli.fleet_cmd",
}

ENTRY_POINT_GROUP = "z10.commands"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _discover() -> dict[str, str]:
    commands = dict(COMMANDS)
    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # pragma: no cover - broken metadata must not break the tool
        eps = ()
    for ep in eps:
        commands.setdefault(ep.name, ep.value)
    return commands


def _load(module_name: str) -> ModuleType:
    return importlib.import_module(module_name)


def _unavailable(name: str, err: ImportError) -> ModuleType:
    module = ModuleType(f"z10-unavailable-{name}")
    reason = f"subcommand {name!r} is not available here: {err}"
    module.HELP = f"(unavailable: {err})"  # type: ignore[attr-defined]
    module.add_arguments = lambda parser: parser.add_argument("rest", nargs=argparse.REMAINDER)  # type: ignore[attr-defined]

    def run(args: argparse.Namespace) -> int:
        raise VehicleIoError(reason)

    module.run = run  # type: ignore[attr-defined]
    return module


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    parser = argparse.ArgumentParser(
        prog="z10",
        description="Talk to a Z10 van (or the simulated one) over CAN, CAN FD and serial.",
    )
    parser.add_argument("--version", action="version", version=f"z10 {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules: dict[str, ModuleType] = {}
    for name, module_name in sorted(_discover().items()):
        try:
            module = _load(module_name)
        except ImportError as err:
            # A plug-in whose dependencies are missing must not take the tool down: it is
            # listed as unavailable and says why only when someone asks for it.
            module = _unavailable(name, err)
        cmd_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd_parser)
        modules[name] = module
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:
        # python-can's socketcand client warns on every TCP read that splits a frame, which is
        # normal on a busy stream; a technician's terminal must not fill with it.
        logging.getLogger("can.interfaces.socketcand.socketcand").setLevel(logging.ERROR)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(modules[args.command].run(args) or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `z10 decode ... | head`: the reader went away; not an error of ours.
        sys.stderr.close()
        return EXIT_OK
    except (VehicleIoError, OSError, ValueError) as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # a bug: one line for the user, the traceback with --debug
        if args.debug:
            raise
        print(f"error: internal error in `z10 {args.command}`: {type(err).__name__}: {err} "
              "(a bug; run again with --debug for the traceback and report it)", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
