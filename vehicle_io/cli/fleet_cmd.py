"""``z10 fleet``: decode many vans' CAN logs into a Parquet dataset on Dask, and summarise it.

    z10 fleet decode logs/ --out fleet.parquet                 # LocalCluster, one worker per core
    z10 fleet decode 'logs/**/*.blf' --out ds --scheduler tcp://127.0.0.1:8786
    z10 fleet summary ds --json

Exit codes: 0 done, 1 done but some file could not be read to its end (reported), 2 usage
or input error, 130 interrupted. Needs the ``fleet`` extra (dask[distributed], pyarrow).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from vehicle_io.cli.busopts import add_dbc_argument

HELP = "decode fleet CAN logs into a Parquet dataset on Dask (decode), or summarise one (summary)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vehicle_io.fleet.plan import DEFAULT_CHUNK_MIB  # standard library only: `z10 --help` stays fast

    sub = parser.add_subparsers(dest="fleet_command", metavar="SUBCOMMAND")
    dec = sub.add_parser(
        "decode", help="decode candump .log/.log.gz, .asc and .blf files into Parquet (van=/message= partitions)",
        description="Decode logs (files, directories searched recursively, globs) with the batch codec into a "
        "Parquet dataset partitioned by van and message, on a Dask LocalCluster or an existing loopback "
        "scheduler. Re-running skips chunks already done.")
    dec.add_argument("inputs", nargs="+", metavar="INPUT", help="log files, directories or globs")
    dec.add_argument("--out", required=True, metavar="DIR", help="dataset directory (created)")
    dec.add_argument("--scheduler", metavar="ADDRESS", help="existing Dask scheduler (loopback only), "
                     "e.g. tcp://127.0.0.1:8786")
    dec.add_argument("--workers", type=int, metavar="N", help="LocalCluster workers (default: one per core)")
    dec.add_argument("--chunk-mib", type=float, default=DEFAULT_CHUNK_MIB, metavar="M",
                     help=f"split candump .log files into chunks of about M MiB (default {DEFAULT_CHUNK_MIB:g})")
    dec.add_argument("--van-id-from", default="dirname", metavar="dirname|filename|REGEX",
                     help="van id: the file's folder name (default), its name, or a regex's first group "
                     "(or group 'van') in the path")
    add_dbc_argument(dec)
    dec.add_argument("--map", action="append", default=[], metavar="LOGCH=BUS",
                     help="rename a log channel to a bus (e.g. can0=pt for .asc/.blf channel numbers)")
    dec.add_argument("--json", action="store_true", help="print the job report as JSON")
    dec.add_argument("--quiet", action="store_true", help="no progress bar")
    summ = sub.add_parser("summary", help="per van: distance, energy, cell extremes, interlock events",
                          description="Per van of a dataset made by `z10 fleet decode`: distance (km), energy "
                          "used (kWh, discharge positive), min/max cell voltage and temperature, interlock "
                          "events by flag, computed with Dask.")
    summ.add_argument("dataset", metavar="DIR", help="the dataset directory")
    summ.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(_fleet_parser=parser)


def _bus_map(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        src, sep, dst = item.partition("=")
        if not sep or not src or not dst:
            raise ValueError(f"--map: expected LOGCH=BUS, but got {item!r}")
        out[src] = dst
    return out


def run(args: argparse.Namespace) -> int:
    if args.fleet_command == "decode":
        return _decode(args)
    if args.fleet_command == "summary":
        return _summary(args)
    args._fleet_parser.print_help()
    return 2


def _decode(args: argparse.Namespace) -> int:
    from vehicle_io.fleet.plan import check_loopback

    if args.scheduler:
        check_loopback(args.scheduler)  # before importing Dask: a refused address costs nothing
    try:
        from vehicle_io.fleet.job import decode_fleet
    except ImportError as err:
        raise ValueError(f"z10 fleet needs the 'fleet' extra (pip install 'z10-hil[fleet]'): {err}") from None

    bar: Any = None
    progress: Any = None
    if not args.quiet:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        from rich.console import Console

        progress = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=Console(stderr=True), transient=False)

    def on_progress(done: int, total: int) -> None:
        nonlocal bar
        if progress is None:
            return
        if bar is None:
            progress.start()
            bar = progress.add_task("chunks", total=total)
        progress.update(bar, completed=done, total=total)

    try:
        report = decode_fleet(args.inputs, args.out, scheduler=args.scheduler, workers=args.workers,
                              chunk_mib=args.chunk_mib, van_from=args.van_id_from, dbc=args.dbc,
                              bus_map=_bus_map(args.map), on_progress=on_progress)
    finally:
        if bar is not None:
            progress.stop()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return 1 if report["failed_files"] else 0


def _where(p: dict[str, Any]) -> str:
    where = p["file"]
    if p.get("line") is not None:
        where += f":{p['line']}"
    if p.get("offset") is not None:
        where += f" (offset {p['offset']})"
    return where


def _print_report(report: dict[str, Any]) -> None:
    t = report["totals"]
    for p in report["problems"]:
        print(f"warning: {_where(p)}: {p['reason']}", file=sys.stderr)
    print(f"{t['files']} file(s), {t['chunks']} chunk(s) ({t['chunks_skipped']} already done, "
          f"{t['chunks_failed']} failed): {t['frames']} frames, {t['rows']} rows decoded; "
          f"{t['unknown_id']} unknown id, {t['too_short']} too short, {t['bad_mux']} bad multiplexer, "
          f"{t['skipped_frames']} remote/error frames, {t['bad_lines']} unreadable lines; "
          f"{len(report['failed_files'])} file(s) not read to the end")


def _summary(args: argparse.Namespace) -> int:
    try:
        from vehicle_io.fleet.summary import summarize
    except ImportError as err:
        raise ValueError(f"z10 fleet needs the 'fleet' extra (pip install 'z10-hil[fleet]'): {err}") from None

    result = summarize(args.dataset)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    def num(value: Any, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    table = Table(title=f"fleet summary: {args.dataset}")
    for col in ("van", "rows", "distance km", "energy kWh", "cell V min", "cell V max", "cell °C min",
                "cell °C max", "interlock events"):
        table.add_column(col, justify="left" if col in ("van", "interlock events") else "right")
    for van, s in result.items():
        events = ", ".join(f"{k.removeprefix('GW_Ilk')}={v}" for k, v in s["interlock_events"].items()) or "-"
        table.add_row(van, str(s["rows"]), num(s["distance_km"], ".3f"), num(s["energy_kwh"], ".4f"),
                      num(s["cell_voltage_min"], ".3f"), num(s["cell_voltage_max"], ".3f"),
                      num(s["cell_temp_min"], ".0f"), num(s["cell_temp_max"], ".0f"), events)
    Console().print(table)
    return 0
