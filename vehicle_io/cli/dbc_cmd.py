"""``z10 dbc``: work with the Z10 DBC files (``check``: the DBC lint)."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "check DBC files against the Z10 layout and E2E conventions"

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_UNREADABLE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dbc_command", metavar="SUBCOMMAND")
    check = sub.add_parser(
        "check",
        help="lint DBC files (default: the bundled Z10 set); exit 0 clean, 1 findings, "
        "2 unreadable input",
        description="Lint DBC files as one set of buses: overlapping signals, signals past "
        "the frame end, cycle times, duplicate ids and names, Z10-P1 E2E layout, nodes, "
        "ranges. Exit code 0 clean, 1 findings, 2 unreadable input.",
    )
    check.add_argument(
        "files", nargs="*", metavar="FILE",
        help="DBC files or directories of them (default: the bundled Z10 DBCs)",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument(
        "--rules", action="store_true", help="list the rules and their codes, then exit"
    )
    check.add_argument(
        "--select", metavar="RULES", default="",
        help="report only these rules: codes or names, comma separated (e.g. DBC001,signal-past-end)",
    )
    check.add_argument(
        "--ignore", metavar="RULES", default="",
        help="do not report these rules (e.g. the Z10 conventions on a supplier's DBC: "
        "--ignore DBC008,DBC016,DBC022)",
    )
    parser.set_defaults(_dbc_parser=parser)


def _rule_codes(text: str, option: str) -> set[str]:
    """Codes named by ``text`` (codes or rule names, comma separated); ValueError names a bad one."""
    from vehicle_io.dbc_lint import RULES

    by_name = {name: code for code, (name, _) in RULES.items()}
    codes = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        code = item.upper() if item.upper() in RULES else by_name.get(item)
        if code is None:
            raise ValueError(f"{option}: expected rule codes or names (see --rules), but got {item!r}")
        codes.add(code)
    return codes


def _run_check(args: argparse.Namespace) -> int:
    from vehicle_io.dbc_lint import RULES, lint_files

    if args.rules:
        if args.json:
            rules = {code: {"rule": name, "text": text} for code, (name, text) in RULES.items()}
            print(json.dumps(rules, indent=2))
        else:
            for code, (name, text) in RULES.items():
                print(f"{code} {name}: {text}")
        return EXIT_OK
    try:
        selected = _rule_codes(args.select, "--select")
        ignored = _rule_codes(args.ignore, "--ignore")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_UNREADABLE
    report = lint_files(args.files or None)
    report.findings = [f for f in report.findings
                       if (not selected or f.code in selected) and f.code not in ignored]
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for finding in report.findings:
            print(finding)
        count = len(report.findings)
        print(
            f"{len(report.files)} file(s), {count} finding(s)"
            + (f", {len(report.errors)} unreadable" if report.errors else "")
        )
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    if report.errors:
        return EXIT_UNREADABLE
    return EXIT_FINDINGS if report.findings else EXIT_OK


def run(args: argparse.Namespace) -> int:
    if args.dbc_command == "check":
        return _run_check(args)
    args._dbc_parser.print_help(sys.stderr)
    return EXIT_UNREADABLE
