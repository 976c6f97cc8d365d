"""``z10 hil run SCENARIO [--report FILE] [--seed N]``: run a scenario on the simulated Z10."""

from __future__ import annotations

import argparse
import sys

HELP = "run a HIL scenario (TOML) on the simulated Z10 in simulated time"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="hil_action", required=True)
    run_p = sub.add_parser("run", help="run one scenario; exit 0 when every expectation holds, 1 when one fails")
    run_p.add_argument("scenario", help="scenario TOML file")
    run_p.add_argument("--report", help="write the JSON report here")
    run_p.add_argument("--seed", type=int, default=0, help="rig seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from hil.scenario.model import ScenarioError
    from hil.scenario.report import write_report
    from hil.scenario.runner import run_scenario

    try:
        result = run_scenario(args.scenario, seed=args.seed)
    except ScenarioError as err:
        print(f"z10 hil run: {err}", file=sys.stderr)
        return 2
    for e in result.expectations:
        print(f"{'PASS' if e.passed else 'FAIL'}  {e.text}: {e.detail}")
    print(f"{result.name}: {'passed' if result.passed else 'FAILED'} "
          f"({result.duration_s:g} s simulated in {result.wall_time_s:.1f} s)")
    if args.report:
        try:
            write_report(result, args.report)
        except OSError as err:
            print(f"z10 hil run: cannot write report {args.report}: {err.strerror or err}", file=sys.stderr)
            return 2
    return 0 if result.passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="z10 hil", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
