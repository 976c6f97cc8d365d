"""``z10 hil run SCENARIO [--report FILE] [--plot PNG] [--seed N]`` and ``z10 hil list``.

SCENARIO is a TOML file or the name of a bundled scenario (``hil/scenarios/<name>.toml``,
e.g. ``delivery_route``). Exit codes: 0 every expectation held, 1 one failed, 2 the scenario
or an output could not be used (one line on stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

HELP = "run a HIL scenario (TOML) on the simulated Z10 in simulated time"

#: The scenarios shipped with the package.
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "scenarios"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="hil_action", required=True)
    run_p = sub.add_parser("run", help="run one scenario; exit 0 when every expectation holds, 1 when one fails")
    run_p.add_argument("scenario", help="scenario TOML file, or the name of a bundled one (see `z10 hil list`)")
    run_p.add_argument("--report", help="write the JSON report here")
    run_p.add_argument("--plot", metavar="PNG", help="draw speed, torque, SOC, doors and events to this PNG "
                                                     "(needs matplotlib: pip install 'z10-hil[plots]')")
    run_p.add_argument("--seed", type=int, default=0, help="rig seed (default 0)")
    run_p.add_argument("--json", action="store_true", help="print the report as JSON instead of the PASS/FAIL lines")
    list_p = sub.add_parser("list", help="list the bundled scenarios")
    list_p.add_argument("--json", action="store_true", help="print as JSON")


def resolve(scenario: str) -> Path:
    """A path as given, else a bundled scenario by name (with or without .toml)."""
    path = Path(scenario)
    if path.exists() or path.suffix == ".toml" and path.parent != Path("."):
        return path
    bundled = BUNDLED_DIR / (scenario if scenario.endswith(".toml") else f"{scenario}.toml")
    return bundled if bundled.exists() else path


def _list(args: argparse.Namespace) -> int:
    from hil.scenario.model import ScenarioError, load_scenario

    rows = []
    for path in sorted(BUNDLED_DIR.glob("*.toml")):
        try:
            sc = load_scenario(path)
        except ScenarioError as err:  # a broken bundled file is a bug: show it, keep listing
            rows.append({"name": path.stem, "duration_s": None, "description": f"(invalid: {err})"})
            continue
        rows.append({"name": sc.name, "duration_s": sc.duration_s, "description": " ".join(sc.description.split())})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        dur = f"{r['duration_s']:>5g} s" if r["duration_s"] is not None else "    ?  "
        print(f"{r['name']:<{width}}  {dur}  {r['description']}")
    return 0


@contextlib.contextmanager
def _progress(args: argparse.Namespace) -> Iterator[Callable[[float, float], None] | None]:
    """A rich progress bar of simulated time on an interactive stderr (none with --json)."""
    if args.json or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
                  TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task(f"{args.scenario} (simulated time)", total=1.0)

        def update(done_s: float, total_s: float) -> None:
            bar.update(task, completed=done_s, total=total_s)

        yield update


def run(args: argparse.Namespace) -> int:
    if args.hil_action == "list":
        return _list(args)
    from hil.scenario.model import ScenarioError
    from hil.scenario.report import report_dict, write_report
    from hil.scenario.runner import run_scenario

    try:
        with _progress(args) as progress:
            result = run_scenario(resolve(args.scenario), seed=args.seed, progress=progress)
    except ScenarioError as err:
        print(f"z10 hil run: {err}", file=sys.stderr)
        return 2
    doc = report_dict(result)  # once, for --json, --report and --plot
    if args.json:
        print(json.dumps(doc, allow_nan=False))
    else:
        for e in result.expectations:
            print(f"{'PASS' if e.passed else 'FAIL'}  {e.text}: {e.detail}")
        print(f"{result.name}: {'passed' if result.passed else 'FAILED'} "
              f"({result.duration_s:g} s simulated in {result.wall_time_s:.1f} s)")
    if args.report:
        try:
            Path(args.report).parent.mkdir(parents=True, exist_ok=True)
            write_report(doc, args.report)
        except OSError as err:
            print(f"z10 hil run: cannot write report {args.report}: {err.strerror or err}", file=sys.stderr)
            return 2
    if args.plot:
        from vehicle_io.plot import plot_report  # matplotlib itself is imported when it draws

        try:
            Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
            plot_report(doc, args.plot)
        except ImportError as err:
            print(f"z10 hil run: --plot needs matplotlib ({err}); install with: pip install 'z10-hil[plots]'",
                  file=sys.stderr)
            return 2
        except OSError as err:
            print(f"z10 hil run: cannot write plot {args.plot}: {err.strerror or err}", file=sys.stderr)
            return 2
    return 0 if result.passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="z10 hil", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
