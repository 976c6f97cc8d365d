"""``z10 monitor``: live decoded signals from the buses in a full-screen table, updated in place.

    z10 monitor                              # every signal of the simulated van
    z10 monitor --message 'BMS_*' --signal '*Voltage*'
    z10 monitor --once --duration 2 --json   # one snapshot after 2 s, for scripts

One row per signal received: message, multiplexer value (multiplexed signals are shown per
mux value), value (choice names for enums), unit, age, and a state column: ``ok``,
``STALE`` (no frame for several cycle times) or ``INVALID`` (E2E or validity checks of the
gateway failed). Each message's E2E state is shown, and a line above the table lists the
gateway's interlock flags (``GW_Ilk*`` of GW_Status) that are set. Buses stay listen-only.
Keys: ``q`` or Ctrl-C quit. Exit codes: 0 done, 2 usage or bus error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from vehicle_io.cli.busopts import add_bus_arguments, add_dbc_argument, bus_specs

HELP = "live decoded signals in a full-screen table (stale, E2E and interlock flags shown)"

#: A multiplexed signal is stale after this many cycles of its own page.
STALE_CYCLES = 3.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--message", action="append", metavar="PATTERN", help="only messages matching (wildcards, repeatable)")
    parser.add_argument("--signal", action="append", metavar="PATTERN", help="only signals matching (wildcards, repeatable)")
    add_dbc_argument(parser)
    parser.add_argument("--once", action="store_true", help="print one snapshot table after --duration and exit")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds to watch (default: until q/Ctrl-C; with --once 1 s)")
    parser.add_argument("--refresh-hz", type=float, default=4.0, help="screen updates per second (default 4)")
    parser.add_argument("--json", action="store_true", help="with --once: the snapshot as JSON")
    add_bus_arguments(parser)


def _match(name: str, patterns: list[str] | None) -> bool:
    import fnmatch

    return not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def snapshot(gateway: Any, db: Any, messages: list[str] | None, signals: list[str] | None,
             now_s: float | None = None) -> dict[str, Any]:
    """Rows of every received signal matching the filters, interlock flags and counters."""
    now = gateway.clock() if now_s is None else now_s
    rows: list[dict[str, Any]] = []
    for info in gateway.layout.messages:
        if not _match(info.name, messages):
            continue
        status = gateway.store.message_status(info.key, now)
        if not status.frames:
            continue
        message = db.get_message_by_name(info.name)
        pages = {s.name: len({i for t in message.signals if t.multiplexer_signal == s.multiplexer_signal
                               for i in (t.multiplexer_ids or ())}) for s in message.signals if s.multiplexer_ids}
        e2e = status.e2e_state.name if status.e2e_state is not None else "-"
        for signal in message.signals:
            if not _match(signal.name, signals):
                continue
            reading = gateway.store.get(f"{info.key}.{signal.name}", now)
            if reading.timestamp_s != reading.timestamp_s:
                continue  # never received (a mux page not seen yet)
            age = now - reading.timestamp_s
            value: Any = reading.value
            text = "-" if value != value else _text(signal, value)
            cycle = info.cycle_time_s
            stale = status.stale
            if signal.multiplexer_ids and cycle:
                stale = age > STALE_CYCLES * cycle * max(1, pages.get(signal.name, 1))
            state = "STALE" if stale else ("ok" if reading.valid else "INVALID")
            mux = (f"{signal.multiplexer_signal}={'/'.join(str(i) for i in signal.multiplexer_ids)}"
                   if signal.multiplexer_ids else "")
            rows.append({"bus": info.bus, "message": info.name, "mux": mux, "signal": signal.name,
                         "value": None if value != value else float(value), "text": text,
                         "unit": signal.unit or "", "age_s": round(age, 3), "state": state, "e2e": e2e})
    interlocks = []
    if "GW_Status" in {m.name for m in gateway.layout.messages}:
        for name in (s.name for s in db.get_message_by_name("GW_Status").signals if s.name.startswith("GW_Ilk")):
            reading = gateway.store.get(f"GW_Status.{name}", now)
            if reading.value == reading.value and reading.value:
                interlocks.append(name)
    counters = gateway.counters()
    return {"rows": rows, "interlocks": interlocks, "interlocks_known": "GW_Status" in {
        m.name for m in gateway.layout.messages if gateway.store.message_status(m.key, now).frames},
        "frames": counters["seen"], "decoded": counters["decoded"], "rejected": sum(counters["rejected"].values())}


def _text(signal: Any, value: float) -> str:
    if signal.choices:
        choice = signal.choices.get(int(value))
        if choice is not None:
            return str(choice)
    return f"{value:.6g}"


def render(snap: dict[str, Any], title: str) -> Any:
    """The snapshot as a rich renderable (header line + table)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    if not snap["interlocks_known"]:
        flags = Text("interlocks: GW_Status not received", style="yellow")
    elif snap["interlocks"]:
        flags = Text("interlocks SET: " + " ".join(snap["interlocks"]), style="bold red")
    else:
        flags = Text("interlocks: none set", style="green")
    head = Text(f"{title}   frames {snap['frames']}, decoded {snap['decoded']}, rejected {snap['rejected']}   "
                "(q to quit)")
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col, kw in (("bus", {}), ("message", {}), ("mux", {}), ("signal", {}), ("value", {"justify": "right"}),
                    ("unit", {}), ("age s", {"justify": "right"}), ("state", {}), ("e2e", {})):
        table.add_column(col, **kw)
    styles = {"ok": "", "STALE": "yellow", "INVALID": "bold red"}
    for r in snap["rows"]:
        e2e_style = "" if r["e2e"] in ("VALID", "-") else "bold red"
        table.add_row(r["bus"] or "-", r["message"], r["mux"], r["signal"], r["text"], r["unit"],
                      f"{r['age_s']:.3f}", Text(r["state"], style=styles[r["state"]]), Text(r["e2e"], style=e2e_style))
    return Group(head, flags, table)


def _keys_pressed() -> Any:
    """A function returning True once 'q' was typed (cbreak terminal), or None off a terminal."""
    if not sys.stdin.isatty():
        return None
    import select
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)  # keyboard only: single key presses without Enter; restored on exit

    def pressed() -> bool:
        while select.select([sys.stdin], [], [], 0)[0]:
            if sys.stdin.read(1).lower() == "q":
                return True
        return False

    def restore() -> None:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    pressed.restore = restore  # type: ignore[attr-defined]
    return pressed


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    from vehicle_io import load_database
    from vehicle_io.bench import close_buses, open_buses
    from vehicle_io.gateway import Gateway

    if args.arm:
        raise ValueError("--arm: monitoring never transmits; leave the buses listen-only")
    if args.json and not args.once:
        raise ValueError("--json needs --once (a live screen is not JSON)")
    if not args.refresh_hz > 0:
        raise ValueError(f"--refresh-hz: expected > 0, but got {args.refresh_hz:g}")
    db = load_database(args.dbc)
    specs = bus_specs(args)
    title = "z10 monitor: " + ", ".join(f"{n}={s.interface}:{s.channel}" for n, s in specs.items())
    buses = open_buses(specs)
    try:
        with Gateway(buses, db) as gateway:
            if args.once:
                time.sleep(1.0 if args.duration is None else max(0.0, args.duration))
                snap = snapshot(gateway, db, args.message, args.signal)
                if args.json:
                    print(json.dumps(snap, indent=2))
                else:
                    console = Console(width=None if sys.stdout.isatty() else 140, no_color=not sys.stdout.isatty(),
                                      highlight=False)
                    console.print(render(snap, title))
                return 0
            _live(gateway, db, args, title, Live, Console)
    finally:
        close_buses(buses.values())
    return 0


def _live(gateway: Any, db: Any, args: argparse.Namespace, title: str, live_cls: Any, console_cls: Any) -> None:
    pressed = _keys_pressed()
    start = time.monotonic()
    period_s = 1.0 / args.refresh_hz
    try:
        with live_cls(render(snapshot(gateway, db, args.message, args.signal), title), screen=sys.stdout.isatty(),
                      auto_refresh=False, console=console_cls(highlight=False)) as live:
            while args.duration is None or time.monotonic() - start < args.duration:
                time.sleep(period_s)
                if pressed is not None and pressed():
                    break
                live.update(render(snapshot(gateway, db, args.message, args.signal), title), refresh=True)
    except KeyboardInterrupt:
        pass
    finally:
        if pressed is not None:
            pressed.restore()
