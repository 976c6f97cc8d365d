"""``z10 convert IN OUT``: convert a CAN log between .log (candump), .asc, .blf, .csv and .trc.

    z10 convert drive.blf drive.log      # Vector BLF -> candump log (can-utils byte-compatible)
    z10 convert drive.log drive.asc

A progress bar (rich) follows the bytes read. Reading is python-can's for every format but
.log, which is read with vehicle_io.candump (bad lines counted, not fatal); .log is written
by vehicle_io.logfmt exactly as ``candump -l``. Frames the target format cannot hold (TRC:
remote, FD and error frames) are counted and reported. Exit codes: 0 converted, 1 converted
with unreadable lines or frames left out, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "convert a CAN log between .log, .asc, .blf, .csv and .trc (with a progress bar)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="input log (.log, .log.gz, .asc, .blf, .csv, .trc)")
    parser.add_argument("output", metavar="OUT", help="output log (.log, .asc, .blf, .csv, .trc)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    import os

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from vehicle_io.logfmt import LogReader, RotatingWriter, log_suffix

    if os.path.abspath(args.input) == os.path.abspath(args.output):
        raise ValueError(f"expected different input and output files, but got {args.input!r} twice")
    reader = LogReader(args.input)
    writer = RotatingWriter(args.output)  # validates the suffix before anything is read
    frames = 0
    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                        console=None, transient=False, disable=args.no_progress or args.json)
    try:
        with progress:
            task = progress.add_task(f"{args.input} -> {args.output}", total=reader.size or None)
            for msg in reader:
                writer.on_message_received(msg)
                frames += 1
                if frames % 2048 == 0:
                    progress.update(task, completed=reader.bytes_read)
            progress.update(task, completed=reader.size)
    finally:
        writer.stop()
    for reason in reader.bad_samples:
        print(f"warning: {reason}", file=sys.stderr)
    summary = {"input": args.input, "output": args.output, "frames": frames, "written": frames - writer.skipped,
               "not_representable": writer.skipped, "unreadable_lines": reader.bad_lines,
               "format": log_suffix(args.output)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        note = f", {writer.skipped} frames the {summary['format']} format cannot hold" if writer.skipped else ""
        print(f"{frames} frames read, {summary['written']} written to {args.output}{note}, "
              f"{reader.bad_lines} unreadable lines")
    return 1 if (writer.skipped or reader.bad_lines) else 0
