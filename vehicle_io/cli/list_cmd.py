"""``z10 list``: the messages of the Z10 DBCs (or any DBC), or the details of some, as ``cantools list``.

    z10 list                      # one row per message: bus, id, name, length, cycle, sender, E2E
    z10 list --bus pt             # only the powertrain bus
    z10 list BMS_Status           # every signal of a message (cantools' detail format)
    z10 list --json               # the same as data
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from vehicle_io.cli.busopts import add_dbc_argument

HELP = "list the Z10 messages (or any DBC's), or the signals of named messages"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("messages", nargs="*", metavar="MESSAGE", help="show the details of these messages")
    add_dbc_argument(parser)
    parser.add_argument("--bus", help="only messages of this bus (pt, body, ads)")
    parser.add_argument("--json", action="store_true", help="print as JSON")


def signal_record(signal: Any) -> dict[str, Any]:
    """A signal as plain data (JSON-ready)."""
    from vehicle_io.dbc import attribute_value

    return {
        "name": signal.name, "start": signal.start, "length": signal.length,
        "byte_order": signal.byte_order, "signed": signal.is_signed, "float": signal.is_float,
        "scale": signal.scale, "offset": signal.offset, "minimum": signal.minimum, "maximum": signal.maximum,
        "unit": signal.unit, "initial": signal.raw_initial, "multiplexer": signal.is_multiplexer,
        "multiplexer_signal": signal.multiplexer_signal, "multiplexer_ids": signal.multiplexer_ids,
        "choices": {str(k): str(v) for k, v in (signal.choices or {}).items()} or None,
        "e2e_role": attribute_value(signal, "E2E_Role") or "None",
        "receivers": list(signal.receivers),
        "comment": signal.comment,
    }


def message_record(message: Any, *, signals: bool) -> dict[str, Any]:
    """A message as plain data; ``signals`` adds every signal."""
    from vehicle_io.dbc import e2e_spec

    e2e = e2e_spec(message)
    record: dict[str, Any] = {
        "name": message.name, "bus": getattr(message, "bus_name", None), "frame_id": message.frame_id,
        "extended": message.is_extended_frame, "fd": bool(message.is_fd), "length": message.length,
        "cycle_time_ms": message.cycle_time, "senders": list(message.senders),
        "e2e_data_id": None if e2e is None else e2e.data_id, "signal_count": len(message.signals),
        "multiplexed": message.is_multiplexed(),
    }
    if signals:
        record["signals"] = [signal_record(s) for s in message.signals]
    return record


def select_messages(db: Any, names: list[str], bus: str | None) -> list[Any]:
    """The named messages (all when none), of ``bus`` when given; unknown names raise."""
    if names:
        out = []
        for name in names:
            try:
                out.append(db.get_message_by_name(name))
            except KeyError:
                raise ValueError(f"expected a message name of the DBC, but got {name!r}") from None
    else:
        out = list(db.messages)
    if bus is not None:
        buses = sorted({str(getattr(m, "bus_name", None)) for m in db.messages})
        if bus not in buses:
            raise ValueError(f"--bus: expected one of {buses}, but got {bus!r}")
        out = [m for m in out if getattr(m, "bus_name", None) == bus]
    return sorted(out, key=lambda m: (str(getattr(m, "bus_name", "")), m.frame_id, m.name))


def run(args: argparse.Namespace) -> int:
    from vehicle_io import load_database

    db = load_database(args.dbc)
    messages = select_messages(db, args.messages, args.bus)
    if args.json:
        print(json.dumps([message_record(m, signals=bool(args.messages)) for m in messages], indent=2))
        return 0
    if args.messages:
        from cantools.subparsers.list import _print_message  # cantools' own detail layout

        for message in messages:
            _print_message(message)
        return 0
    rows = [message_record(m, signals=False) for m in messages]
    print(f"{'bus':<5} {'id':>10} {'message':<24} {'len':>3} {'cycle':>7} {'sender':<7} {'e2e':>5} signals")
    for r in rows:
        ident = f"0x{r['frame_id']:08X}" if r["extended"] else f"0x{r['frame_id']:03X}"
        cycle = "-" if r["cycle_time_ms"] is None else f"{r['cycle_time_ms']} ms"
        e2e = "-" if r["e2e_data_id"] is None else f"{r['e2e_data_id']}"
        mux = " (mux)" if r["multiplexed"] else ""
        print(f"{r['bus'] or '-':<5} {ident:>10} {r['name']:<24} {r['length']:>3} {cycle:>7} "
              f"{','.join(r['senders']) or '-':<7} {e2e:>5} {r['signal_count']}{mux}")
    print(f"{len(rows)} message(s)", file=sys.stderr)
    return 0
