"""``z10 hil run SCENARIO... [--report FILE] [--plot PNG] [--seed N]`` and ``z10 hil list``.

SCENARIO is a TOML file or the name of a bundled scenario (``hil/scenarios/<name>.toml``,
e.g. ``delivery_route``). Exit codes: 0 every expectation held, 1 one failed, 2 the scenario
or an output could not be used (one line on stderr).

A campaign (several scenarios, or ``--all``) runs them in order, or on ``--jobs N`` worker
processes, prints one line per scenario and a summary, and writes what a CI server reads:
``--report-dir DIR`` (one JSON report per scenario) and ``--junit FILE`` (JUnit XML, one
test case per scenario). Exit codes as above, over the whole campaign: 2 when any scenario
could not run, else 1 when any failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HELP = "run a HIL scenario (TOML) on the simulated Z10 in simulated time"

#: The scenarios shipped with the package.
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "scenarios"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="hil_action", required=True)
    run_p = sub.add_parser("run", help="run scenarios; exit 0 when every expectation holds, 1 when one fails")
    run_p.add_argument("scenario", nargs="*",
                       help="scenario TOML file(s), or the name(s) of bundled ones (see `z10 hil list`)")
    run_p.add_argument("--all", action="store_true", help="run every bundled scenario")
    run_p.add_argument("--report", help="write the JSON report here (one scenario)")
    run_p.add_argument("--plot", metavar="PNG", help="draw speed, torque, SOC, doors and events to this PNG "
                                                     "(one scenario; needs matplotlib: pip install 'z10-hil[plots]')")
    run_p.add_argument("--report-dir", metavar="DIR", help="write one JSON report per scenario here (<name>.json)")
    run_p.add_argument("--junit", metavar="XML", help="write a JUnit XML file: one test case per scenario")
    run_p.add_argument("-j", "--jobs", type=int, default=1,
                       help="worker processes for a campaign (default 1; 0 = one per CPU)")
    run_p.add_argument("--seed", type=int, default=0, help="rig seed (default 0)")
    run_p.add_argument("--json", action="store_true",
                       help="print the report as JSON instead of the PASS/FAIL lines (a list for a campaign)")
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
    names = list(args.scenario)
    if args.all:
        names += [str(path) for path in sorted(BUNDLED_DIR.glob("*.toml"))]
    if not names:
        print("z10 hil run: expected a scenario (file or bundled name) or --all, but got none", file=sys.stderr)
        return 2
    if len(names) > 1 or args.all or args.report_dir or args.junit or args.jobs != 1:
        return _campaign(args, names)
    args.scenario = names[0]
    return _run_one_cli(args)


def _run_one_cli(args: argparse.Namespace) -> int:
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


def _run_for_campaign(job: tuple[str, int]) -> dict[str, Any]:
    """One campaign scenario (in a worker process or in line): the report, or why it could not run."""
    from hil.scenario.model import ScenarioError
    from hil.scenario.report import report_dict
    from hil.scenario.runner import run_scenario

    source, seed = job
    path = resolve(source)
    try:
        result = run_scenario(path, seed=seed)
    except ScenarioError as err:
        return {"source": source, "name": Path(source).stem, "error": str(err)}
    except Exception as err:  # noqa: BLE001 - a bug in one scenario's run must not end the campaign
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return {"source": source, "name": Path(source).stem,
                "error": f"{source}: internal error: {type(err).__name__}: {first}"}
    return {"source": source, "name": result.name, "report": report_dict(result)}


def _campaign(args: argparse.Namespace, names: list[str]) -> int:
    import os
    import time

    from hil.scenario.junit import write_junit

    if args.report or args.plot:
        print("z10 hil run: --report and --plot take one scenario; for several use --report-dir", file=sys.stderr)
        return 2
    if args.jobs < 0:
        print(f"z10 hil run: --jobs: expected a number >= 0, but got {args.jobs}", file=sys.stderr)
        return 2
    jobs = min(args.jobs or os.cpu_count() or 1, len(names))
    out_dir = Path(args.report_dir) if args.report_dir else None
    try:
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
        if args.junit:
            Path(args.junit).parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"z10 hil run: cannot create an output directory: {err.strerror or err}", file=sys.stderr)
        return 2
    work = [(name, args.seed) for name in names]
    t0 = time.perf_counter()
    outcomes: list[dict[str, Any]] = []
    if jobs == 1:
        results: Iterator[dict[str, Any]] = map(_run_for_campaign, work)
        outcomes = _collect(results, args, out_dir)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: a worker starts clean (no inherited locks or threads); each pays the imports once.
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_run_for_campaign, job) for job in work]
            outcomes = _collect((_outcome_of(f, job) for f, job in zip(futures, work)), args, out_dir)
    wall_s = time.perf_counter() - t0
    passed = sum(1 for o in outcomes if "report" in o and o["report"]["passed"])
    errors = sum(1 for o in outcomes if "error" in o)
    failed = len(outcomes) - passed - errors
    simulated = sum(o["report"]["duration_s"] for o in outcomes if "report" in o)
    if args.json:
        print(json.dumps([o.get("report") or {"scenario": o["name"], "error": o["error"]} for o in outcomes],
                         allow_nan=False))
    print(f"{len(outcomes)} scenarios: {passed} passed, {failed} failed, {errors} could not run "
          f"({simulated:g} s simulated in {wall_s:.1f} s on {jobs} process(es))",
          file=sys.stderr if args.json else sys.stdout)
    if args.junit:
        try:
            write_junit(outcomes, args.junit, wall_s=wall_s)
        except OSError as err:
            print(f"z10 hil run: cannot write {args.junit}: {err.strerror or err}", file=sys.stderr)
            return 2
    return 2 if errors else 1 if failed else 0


def _outcome_of(future: Any, job: tuple[str, int]) -> dict[str, Any]:
    """A worker's result, or the scenario's error when its worker process died (killed, out of memory)."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        result: dict[str, Any] = future.result()
    except BrokenProcessPool as err:
        source = job[0]
        return {"source": source, "name": Path(source).stem,
                "error": f"{source}: its worker process died ({err or 'BrokenProcessPool'})"}
    return result


def _collect(results: Iterator[dict[str, Any]], args: argparse.Namespace, out_dir: Path | None) -> list[dict[str, Any]]:
    from hil.scenario.report import write_report

    outcomes: list[dict[str, Any]] = []
    used: set[str] = set()
    for outcome in results:  # in the order given, whatever order the workers finish in
        name, k = outcome["name"], 1
        while name in used:  # the same scenario twice (e.g. two seeds of one file): keep both
            k += 1
            name = f"{outcome['name']}-{k}"
        used.add(name)
        outcome["name"] = name
        outcomes.append(outcome)
        report = outcome.get("report")
        if report is None:
            print(f"z10 hil run: {outcome['error']}", file=sys.stderr)
            if not args.json:
                print(f"ERROR {outcome['name']}: could not run")
            continue
        if out_dir is not None:
            write_report(report, out_dir / f"{outcome['name']}.json")
        if args.json:
            continue
        status = "PASS " if report["passed"] else "FAIL "
        print(f"{status} {outcome['name']} ({report['duration_s']:g} s simulated in {report['wall_time_s']:.1f} s)")
        for e in report["expectations"]:
            if not e["passed"]:
                print(f"      FAIL  {e['text']}: {e['detail']}")
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="z10 hil", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
