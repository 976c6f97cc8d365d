"""``z10 decode``: decode candump text (stdin or files) with the Z10 DBCs, like ``cantools decode``."""

from __future__ import annotations

import argparse
import json
import math
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
    parser.add_argument("--no-strict", action="store_true",
                        help="load DBC files with overlapping signals or signals past the "
                             "frame end (as cantools --no-strict); such messages are "
                             "reported as undecodable")


def _lines(paths: list[str]) -> Iterator[tuple[str, Iterable[str]]]:
    if not paths:
        yield "<stdin>", sys.stdin
        return
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as handle:
            yield path, handle


def _format_value(signal: Any, value: float, raw_enums: bool) -> str:
    """One value as ``cantools decode`` prints it: a choice by its name, else the number and unit."""
    if not math.isfinite(value):
        text = repr(float(value))  # a float signal's own NaN or infinity
    elif signal.choices and not raw_enums and value == int(value) and signal.choices.get(int(value)) is not None:
        return str(signal.choices[int(value)])
    # Values are float64: an integer beyond 2**53 is not exact, so it prints as the float it is.
    elif abs(value) < 2.0**53 and value == int(value) and not signal.is_float and (
        signal.scale == int(signal.scale) and signal.offset == int(signal.offset)
    ):
        text = str(int(value))
    else:
        text = repr(float(value))
    return f"{text} {signal.unit}" if signal.unit is not None else text


def _present(message: Any, signal: Any, values: dict[str, float]) -> bool:
    """Whether ``signal`` is in the frame: every multiplexer above it selects its branch.

    The decoder writes NaN for a signal of an unselected branch, but a float signal can also
    carry a NaN of its own; the multiplexer values tell the two apart.
    """
    while signal.multiplexer_signal is not None:
        mux_signal = message.get_signal_by_name(signal.multiplexer_signal)
        mux = values.get(signal.multiplexer_signal)
        if mux is None or mux != mux or not signal.multiplexer_ids:
            return False
        if int(round((mux - mux_signal.offset) / mux_signal.scale)) not in signal.multiplexer_ids:
            return False
        signal = mux_signal
    return True


def _shown(message: Any, values: dict[str, float]) -> list[tuple[str, bool]]:
    """(signal name, present) in DBC order, once per name: a name used in two branches (one
    column in the decoder) is present when either of its signals is."""
    order: dict[str, bool] = {}
    for signal in message.signals:
        if signal.name in values:
            value = values[signal.name]
            # An integer signal is never NaN of its own: NaN there means not decoded (the
            # selected branch is one cantools cannot unpack either).
            present = _present(message, signal, values) and (value == value or signal.is_float)
            order[signal.name] = order.get(signal.name, False) or present
    return list(order.items())


def _undecodable_reason(decoder: Any, frame_id: int) -> str:
    """Why the message with ``frame_id`` (CAN_EFF_FLAG in bit 31) cannot be decoded."""
    key = frame_id & 0x1FFFFFFF
    extended = bool(frame_id & 0x80000000) or key > 0x7FF
    for name, reason in decoder.unsupported.items():
        message = decoder.message(name)
        if message.frame_id == key and bool(message.is_extended_frame) == extended:
            return f"{name}: {reason}"
    return "its layout is one cantools cannot unpack either (overlapping signals or past the frame end)"


def _cantools_error(db: Any, batch: Any, row: int) -> str:
    """What ``cantools decode`` appends to a frame it cannot decode (unknown id, wrong size, a
    multiplexer value the DBC does not define): cantools' own words, for ``batch``'s ``row``."""
    can_id = int(batch.ids[row]) & 0x1FFFFFFF
    data = bytes(batch.data[row, : int(batch.lengths[row])])
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

    db = load_database(args.dbc, strict=not args.no_strict)
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
                if status == STATUS_UNKNOWN_ID:
                    counts["unknown_id"] += 1
                    if not args.quiet_unknown and not args.json:
                        print(f"{text} :: {_cantools_error(db, batch, row)}", file=out)
                    continue
                if status == STATUS_TOO_SHORT:
                    counts["too_short"] += 1
                    print(f"warning: {source}:{line_no}: frame shorter than its message needs", file=sys.stderr)
                    if not args.json:
                        print(f"{text} :: {_cantools_error(db, batch, row)}", file=out)
                    continue
                if status == STATUS_UNSUPPORTED and row not in per_row:
                    counts["unsupported"] += 1
                    print(f"warning: {source}:{line_no}: message not decodable: "
                          f"{_undecodable_reason(decoder, int(batch.ids[row]))}", file=sys.stderr)
                    if not args.json:
                        print(f"{text} :: {_cantools_error(db, batch, row)}", file=out)
                    continue
                name, values = per_row[row]
                if status == STATUS_UNSUPPORTED:
                    counts["unsupported"] += 1
                    print(f"warning: {source}:{line_no}: {name}: the multiplexer branch this frame "
                          f"selects is one cantools cannot unpack either (overlapping signals or "
                          f"past the frame end)", file=sys.stderr)
                    if not args.json:  # cantools decodes nothing of it; the JSON keeps what is known
                        print(f"{text} :: {_cantools_error(db, batch, row)}", file=out)
                        continue
                if status == STATUS_BAD_MUX:
                    counts["bad_mux"] += 1
                    if not args.json:  # cantools decodes nothing of it; the JSON keeps what is known
                        print(f"{text} :: {_cantools_error(db, batch, row)}", file=out)
                        continue
                counts["decoded"] += 1
                _print_frame(out, args, decoder.message(name), text, name, values,
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
    shown = _shown(message, values)
    if args.json:
        # null: not in this frame; a float signal's own NaN/infinity as a string, so the
        # line stays standard JSON.
        signals: dict[str, float | str | None] = {}
        for signal_name, present in shown:
            value = float(values[signal_name])
            if not present:
                signals[signal_name] = None
            else:
                signals[signal_name] = value if math.isfinite(value) else repr(value)
        record = {"t": timestamp, "channel": channel, "message": name, "signals": signals}
        print(json.dumps(record, allow_nan=False), file=out)
        return
    # As cantools decode: the signals this frame carries, in DBC order.
    parts = [f"{signal_name}: {_format_value(message.get_signal_by_name(signal_name), values[signal_name], args.raw_enums)}"
             for signal_name, present in shown if present]
    # The DBC's name (two messages of one name are told apart by their id on the line).
    if args.single_line:
        print(f"{text} :: {message.name}({', '.join(parts)})", file=out)
    else:
        body = ",\n".join(f"    {p}" for p in parts)
        print(f"{text} ::\n{message.name}(\n{body}\n)", file=out)
