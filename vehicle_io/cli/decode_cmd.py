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
    if value != value:  # NaN: not present in this frame (multiplexed away)
        return "-"
    if signal.choices and not raw_enums:
        choice = signal.choices.get(int(value))
        if choice is not None:
            return f"'{choice}'"
    # Values are float64: an integer beyond 2**53 is not exact, so it prints as the float it is.
    if value == int(value) and abs(value) < 2.0**53 and not signal.is_float and (
        signal.scale == int(signal.scale) and signal.offset == int(signal.offset)
    ):
        text = str(int(value))
    else:
        text = repr(float(value))
    return f"{text} {signal.unit}" if signal.unit else text


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
            if not len(batch):
                base += len(raw_lines)
                raw_lines.clear()
                continue
            result = decoder.decode(batch.ids, batch.data, batch.lengths)
            per_row: dict[int, tuple[str, dict[str, float]]] = {}
            for name, columns in result.items():
                rows = columns["_row"]
                for k, row in enumerate(rows):
                    per_row[int(row)] = (name, {s: columns[s][k] for s in columns if s != "_row"})
            for row in range(len(batch)):
                counts["frames"] += 1
                status = int(result.status[row])
                line_no = int(batch.line_numbers[row])
                text = raw_lines[line_no - base]
                if status == STATUS_UNKNOWN_ID:
                    counts["unknown_id"] += 1
                    if not args.quiet_unknown and not args.json:
                        print(text, file=out)
                    continue
                if status == STATUS_TOO_SHORT:
                    counts["too_short"] += 1
                    print(f"warning: {source}:{line_no}: frame shorter than its message needs",
                          file=sys.stderr)
                    continue
                if status == STATUS_UNSUPPORTED and row not in per_row:
                    counts["unsupported"] += 1
                    print(f"warning: {source}:{line_no}: message layout not decodable (container or "
                          f"invalid signal layout)", file=sys.stderr)
                    continue
                if status == STATUS_BAD_MUX:
                    counts["bad_mux"] += 1
                name, values = per_row[row]
                counts["decoded"] += 1
                _print_frame(out, args, db.get_message_by_name(name), text, name, values,
                             float(batch.timestamps[row]), batch.channels[row])
            base += len(raw_lines)
            raw_lines.clear()
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
    parts = []
    for signal in message.signals:
        if signal.name in values:
            parts.append(f"{signal.name}: {_format_value(signal, values[signal.name], args.raw_enums)}")
    if args.single_line:
        print(f"{text} :: {name}({', '.join(parts)})", file=out)
    else:
        body = ",\n".join(f"    {p}" for p in parts)
        print(f"{text} ::\n{name}(\n{body}\n)", file=out)
