"""``z10 decode``: decode candump text (stdin or files) with the Z10 DBCs, like ``cantools decode``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

from vehicle_io.cli.busopts import add_dbc_argument

HELP = "decode candump lines (stdin or files) into signal values"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="candump .log or console files (default: standard input)")
    add_dbc_argument(parser)
    parser.add_argument("-s", "--single-line", action="store_true",
                        help="print each decoded message on one line")
    parser.add_argument("--raw-enums", action="store_true",
                        help="print enum signals as numbers instead of their choice names")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per decoded frame (for scripts)")
    parser.add_argument("--quiet-unknown", action="store_true",
                        help="do not echo lines whose id is not in the DBC")


def _lines(paths: list[str]) -> Iterator[tuple[str, Iterable[str]]]:
    if not paths:
        yield "<stdin>", sys.stdin
        return
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as handle:
            yield path, handle


def _format_value(signal: Any, value: float, raw_enums: bool) -> str:
    """One value as ``cantools decode`` prints it: a choice by its name, else the number and unit."""
    if signal.choices and not raw_enums and value == value:
        choice = signal.choices.get(int(value)) if value == int(value) else None
        if choice is not None:
            return str(choice)
    # Values are float64: an integer beyond 2**53 is not exact, so it prints as the float it is.
    if value == value and abs(value) < 2.0**53 and value == int(value) and not signal.is_float and (
        signal.scale == int(signal.scale) and signal.offset == int(signal.offset)
    ):
        text = str(int(value))
    else:
        text = repr(float(value))
    return f"{text} {signal.unit}" if signal.unit is not None else text


def _present(message: Any, values: dict[str, float]) -> list[Any]:
    """The signals of ``message`` this frame carries: every plain signal, and a multiplexed one
    when its multiplexer is present and holds one of its ids (as cantools decodes)."""
    by_name = {sig.name: sig for sig in message.signals}
    memo: dict[str, bool] = {}

    def present(sig: Any) -> bool:
        if sig.name in memo:
            return memo[sig.name]
        ok = True
        if sig.multiplexer_ids:
            mux = by_name.get(sig.multiplexer_signal)
            value = values.get(sig.multiplexer_signal, float("nan"))
            ok = mux is not None and present(mux) and value == value and int(
                round((value - mux.offset) / mux.scale)) in sig.multiplexer_ids
        memo[sig.name] = ok
        return ok

    return [sig for sig in message.signals if sig.name in values and present(sig)]


def _cantools_error(db: Any, can_id: int, data: bytes) -> str:
    """What ``cantools decode`` appends to a frame it cannot decode (unknown id, wrong size, a
    multiplexer value the DBC does not define): cantools' own words."""
    try:
        message = db.get_message_by_frame_id(can_id)
    except KeyError:
        return f"Unknown frame id {can_id} (0x{can_id:x})"
    try:
        message.decode_simple(data, decode_choices=True, allow_truncated=False, allow_excess=False)
    except Exception as err:  # cantools' DecodeError (and whatever else it raises on this frame)
        return str(err)
    return "not decodable"


def run(args: argparse.Namespace) -> int:
    from vehicle_io import load_database
    from vehicle_io.candump import iter_batches
    from vehicle_io.codec import (
        STATUS_BAD_MUX,
        STATUS_TOO_SHORT,
        STATUS_UNKNOWN_ID,
        STATUS_UNSUPPORTED,
        BatchDecoder,
    )

    db = load_database(args.dbc)
    decoder = BatchDecoder(db)
    out: IO[str] = sys.stdout
    counts = {"frames": 0, "decoded": 0, "unknown_id": 0, "too_short": 0, "bad_mux": 0,
              "unsupported": 0, "bad_lines": 0}

    for source, lines in _lines(args.files):
        raw_lines: list[str] = []
        base = 1  # line number of raw_lines[0]

        def remember(stream: Iterable[str]) -> Iterator[str]:
            for line in stream:
                raw_lines.append(line.rstrip("\n"))
                yield line

        for batch, bad in iter_batches(remember(lines), batch_size=2048):
            for item in bad:
                counts["bad_lines"] += 1
                print(f"warning: {source}:{item.line_number}: {item.reason}", file=sys.stderr)
            result = decoder.decode(batch.ids, batch.data, batch.lengths) if len(batch) else None
            per_row: dict[int, tuple[str, dict[str, float]]] = {}
            row_of_line: dict[int, int] = {}
            if result is not None:
                for name, columns in result.items():
                    rows = columns["_row"]
                    for k, row in enumerate(rows):
                        per_row[int(row)] = (name, {s: columns[s][k] for s in columns if s != "_row"})
                row_of_line = {int(n): row for row, n in enumerate(batch.line_numbers)}
            # Every line in its order, as cantools decode prints them: a frame with its decode
            # (or cantools' reason why not), anything else echoed as it came.
            for offset, text in enumerate(raw_lines):
                row = row_of_line.get(base + offset)
                if row is None:
                    if not args.json:
                        print(text, file=out)
                    continue
                assert result is not None
                counts["frames"] += 1
                status = int(result.status[row])
                line_no = base + offset
                can_id = int(batch.ids[row]) & 0x1FFFFFFF
                payload = bytes(batch.data[row, : int(batch.lengths[row])])
                if status == STATUS_UNKNOWN_ID:
                    counts["unknown_id"] += 1
                    if not args.quiet_unknown and not args.json:
                        print(f"{text} :: {_cantools_error(db, can_id, payload)}", file=out)
                    continue
                if status == STATUS_TOO_SHORT:
                    counts["too_short"] += 1
                    print(f"warning: {source}:{line_no}: frame shorter than its message needs", file=sys.stderr)
                    if not args.json:
                        print(f"{text} :: {_cantools_error(db, can_id, payload)}", file=out)
                    continue
                if status == STATUS_UNSUPPORTED and row not in per_row:
                    counts["unsupported"] += 1
                    print(f"warning: {source}:{line_no}: message layout not decodable (container or "
                          f"invalid signal layout)", file=sys.stderr)
                    if not args.json:
                        print(f"{text} :: {_cantools_error(db, can_id, payload)}", file=out)
                    continue
                name, values = per_row[row]
                if status == STATUS_BAD_MUX:
                    counts["bad_mux"] += 1
                    if not args.json:  # cantools decodes nothing of it; the JSON keeps what is known
                        print(f"{text} :: {_cantools_error(db, can_id, payload)}", file=out)
                        continue
                counts["decoded"] += 1
                _print_frame(out, args, db.get_message_by_name(name), text, name, values,
                             float(batch.timestamps[row]), batch.channels[row])
            base += len(raw_lines)
            raw_lines.clear()
        for text in raw_lines:  # blank lines after the last frame
            if not args.json:
                print(text, file=out)
    print(
        f"{counts['frames']} frames: {counts['decoded']} decoded ({counts['bad_mux']} of them with a bad "
        f"multiplexer), {counts['unknown_id']} unknown id, {counts['too_short']} too short, "
        f"{counts['unsupported']} undecodable, "
        f"{counts['bad_lines']} unreadable lines",
        file=sys.stderr,
    )
    return 0


def _print_frame(out: IO[str], args: argparse.Namespace, message: Any, text: str, name: str,
                 values: dict[str, float], timestamp: float, channel: str) -> None:
    if args.json:
        record = {"t": timestamp, "channel": channel, "message": name,
                  "signals": {k: (None if v != v else float(v)) for k, v in values.items()}}
        print(json.dumps(record), file=out)
        return
    parts = [f"{signal.name}: {_format_value(signal, values[signal.name], args.raw_enums)}"
             for signal in _present(message, values)]
    if args.single_line:
        print(f"{text} :: {name}({', '.join(parts)})", file=out)
    else:
        body = ",\n".join(f"    {p}" for p in parts)
        print(f"{text} ::\n{name}(\n{body}\n)", file=out)
