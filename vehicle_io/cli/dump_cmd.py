"""``z10 dump``: the bit layout of messages as ``cantools dump`` draws it (Z10 set or any DBC).

    z10 dump GW_DriveCommand      # layout, signal tree and choices of one message
    z10 dump --bus body           # every message of the body bus
    z10 dump BMS_Status --json    # the same messages as data (signals with start/length/...)
"""

from __future__ import annotations

import argparse
import json

from vehicle_io.cli.busopts import add_dbc_argument

HELP = "draw the bit layout of messages (as cantools dump)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("messages", nargs="*", metavar="MESSAGE", help="messages to dump (default: all)")
    add_dbc_argument(parser)
    parser.add_argument("--bus", help="only messages of this bus (pt, body, ads)")
    parser.add_argument("--width", type=int, default=80, help="width of the signal tree (default 80)")
    parser.add_argument("--json", action="store_true", help="print as JSON")


def run(args: argparse.Namespace) -> int:
    import copy

    from vehicle_io import load_database
    from vehicle_io.cli.list_cmd import message_record, select_messages

    db = load_database(args.dbc)
    messages = select_messages(db, args.messages, args.bus)
    if args.json:
        print(json.dumps([message_record(m, signals=True) for m in messages], indent=2))
        return 0
    from cantools.subparsers.dump import _dump_can_message  # cantools' own layout drawing

    print("================================= Messages =================================")
    print()
    print("  " + 72 * "-")
    for message in messages:
        # cantools appends '-' to an empty sender list: draw a copy, keep the database intact
        clone = copy.copy(message)
        clone._senders = list(message.senders)
        _dump_can_message(clone, WIDTH=args.width)
    return 0
