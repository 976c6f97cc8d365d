"""``z10 plot``: signals of a log, or a scenario report, to a PNG (matplotlib, no display).

    z10 plot drive.log VCU_VehicleSpeed BMS_SOC -o drive.png
    z10 plot drive.blf 'BMS_CellVoltage0*' --one-axis -o cells.png
    z10 plot report.json -o report.png          # speed, torque, SOC, doors and events

Signal names accept shell wildcards. Time is seconds from the first frame of the log.
``--json`` prints what was plotted (points per signal, first/last values) for scripts.
Exit codes: 0 written, 2 usage or input error (no signal matched, unreadable file).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vehicle_io.cli.busopts import add_dbc_argument

HELP = "plot signals of a log, or a scenario report JSON, to a PNG"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="LOG|REPORT.json", help="log file or scenario report (.json)")
    parser.add_argument("signals", nargs="*", metavar="SIGNAL", help="signal names or wildcards (log only)")
    parser.add_argument("-o", "--output", metavar="PNG", help="PNG file (default: SOURCE with .png)")
    add_dbc_argument(parser)
    parser.add_argument("--one-axis", action="store_true", help="every signal on one shared axis")
    parser.add_argument("--json", action="store_true", help="print what was plotted as JSON")


def _output(args: argparse.Namespace) -> Path:
    if args.output:
        return Path(args.output)
    src = Path(args.source)
    name = src.name[:-7] if src.name.endswith(".log.gz") else src.stem
    return src.with_name(name + ".png")


def read_signals(path: str, patterns: list[str], db: Any) -> tuple[dict[str, tuple[list[float], list[float]]], int]:
    """``{signal: (t_s, values)}`` of the signals matching ``patterns`` in a log; bad lines."""
    import fnmatch

    import numpy as np

    from vehicle_io.candump import pack_payloads
    from vehicle_io.codec import BatchDecoder
    from vehicle_io.logfmt import LogReader

    wanted = {s.name: s for m in db.messages for s in m.signals
              if any(fnmatch.fnmatchcase(s.name, p) for p in patterns)}
    if not wanted:
        raise ValueError(f"expected signal names of the DBC, but got {' '.join(patterns)!r} (see `z10 list MESSAGE`)")
    reader = LogReader(path)
    rows = [(m.timestamp, m.arbitration_id | (0x80000000 if m.is_extended_id else 0), bytes(m.data))
            for m in reader if not (m.is_remote_frame or m.is_error_frame)]
    series: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in wanted}
    if rows:
        n = len(rows)
        ids = np.fromiter((r[1] for r in rows), np.uint32, n)
        data, lengths = pack_payloads([r[2] for r in rows])
        times = np.fromiter((r[0] for r in rows), np.float64, n)
        t0 = float(times.min())
        result = BatchDecoder(db).decode(ids, data, lengths)
        for columns in result.values():
            idx = columns["_row"]
            for name in wanted:
                if name in columns:
                    values = columns[name]
                    keep = values == values  # NaN: the other branch of a multiplexer
                    series[name][0].extend((times[idx][keep] - t0).tolist())
                    series[name][1].extend(values[keep].tolist())
    for name, (t, v) in series.items():
        order = sorted(range(len(t)), key=t.__getitem__)
        series[name] = ([t[i] for i in order], [v[i] for i in order])
    return series, reader.bad_lines


def run(args: argparse.Namespace) -> int:
    out = _output(args)
    if args.source.lower().endswith(".json"):
        if args.signals:
            raise ValueError("a scenario report plots its own timeseries: expected no SIGNAL arguments")
        from vehicle_io.plot import plot_report

        try:
            doc = json.loads(Path(args.source).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{args.source}: not valid JSON: {err}") from err
        if not isinstance(doc, dict):
            raise ValueError(f"{args.source}: expected a JSON object (a scenario report), but got {type(doc).__name__}")
        keys = plot_report(doc, out)
        summary: dict[str, Any] = {"png": str(out), "report": args.source, "panels": keys,
                                   "events": len(doc.get("events") or [])}
    else:
        if not args.signals:
            raise ValueError("expected at least one SIGNAL to plot from a log")
        from vehicle_io import load_database
        from vehicle_io.plot import plot_signals

        db = load_database(args.dbc)
        series, bad = read_signals(args.source, args.signals, db)
        present = {k: v for k, v in sorted(series.items()) if v[0]}
        if not present:
            raise ValueError(f"{args.source}: no frame carries {', '.join(sorted(series))}")
        units = {s.name: s.unit or "" for m in db.messages for s in m.signals if s.name in present}
        plot_signals(present, out, units=units, title=Path(args.source).name, subplots=not args.one_axis)
        if bad:
            print(f"warning: {bad} unreadable lines in {args.source}", file=sys.stderr)
        summary = {"png": str(out), "log": args.source, "unreadable_lines": bad,
                   "signals": {k: {"points": len(v[0]), "first": v[1][0], "last": v[1][-1]}
                               for k, v in sorted(present.items())},
                   "missing": sorted(set(series) - set(present))}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        what = ", ".join(summary.get("panels") or summary.get("signals") or []) or "events only"
        print(f"wrote {out} ({what})")
    return 0
