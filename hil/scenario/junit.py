"""A scenario campaign as JUnit XML: what Jenkins, GitLab and most CI servers read.

One ``<testsuite name="z10-hil">``; one ``<testcase classname="hil.scenarios" name=SCENARIO>``
per scenario, ``time`` its wall time. A scenario whose expectations did not all hold gets a
``<failure>`` naming each failed expectation; one that could not run (bad TOML, unknown
signal) an ``<error>``. Simulated seconds, seed and events go into ``<properties>`` and
``<system-out>`` so the CI page shows what happened without the JSON report.
"""

from __future__ import annotations

import datetime
import socket
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["junit_tree", "write_junit"]

SUITE = "z10-hil"
CLASSNAME = "hil.scenarios"


def junit_tree(outcomes: Sequence[dict[str, Any]], *, wall_s: float) -> ET.ElementTree:
    """``outcomes``: per scenario ``{"name", "source", "report"}`` or ``{"name", "source", "error"}``."""
    failures = sum(1 for o in outcomes if "report" in o and not o["report"]["passed"])
    errors = sum(1 for o in outcomes if "error" in o)
    root = ET.Element("testsuites", tests=str(len(outcomes)), failures=str(failures), errors=str(errors),
                      time=f"{wall_s:.3f}")
    suite = ET.SubElement(
        root, "testsuite", name=SUITE, tests=str(len(outcomes)), failures=str(failures), errors=str(errors),
        skipped="0", time=f"{wall_s:.3f}", hostname=socket.gethostname(),
        timestamp=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
    )
    for outcome in outcomes:
        report = outcome.get("report")
        case = ET.SubElement(suite, "testcase", classname=CLASSNAME, name=str(outcome["name"]),
                             time=f"{report['wall_time_s']:.3f}" if report and "wall_time_s" in report else "0")
        if report is None:
            error = ET.SubElement(case, "error", message=_clean(outcome["error"]), type="ScenarioError")
            error.text = _clean(f"{outcome['source']}: {outcome['error']}")
            continue
        props = ET.SubElement(case, "properties")
        for key, value in (("source", outcome["source"]), ("seed", report["seed"]),
                           ("simulated_s", report["duration_s"])):
            ET.SubElement(props, "property", name=key, value=_clean(str(value)))
        failed = [e for e in report["expectations"] if not e["passed"]]
        if failed:
            failure = ET.SubElement(case, "failure", type="ExpectationFailed",
                                    message=_clean(f"{len(failed)} of {len(report['expectations'])} expectations "
                                                   f"failed: {failed[0]['text']}"))
            failure.text = "\n".join(_clean(f"{e['text']}: {e['detail']}") for e in failed)
        out = ET.SubElement(case, "system-out")
        lines = [_clean(f"{'PASS' if e['passed'] else 'FAIL'}  {e['text']}: {e['detail']}")
                 for e in report["expectations"]]
        lines += [_clean(" ".join([f"t={ev['t']:.3f}", str(ev["code"])]
                                  + [f"{k}={v}" for k, v in ev.items() if k not in ("t", "code")]))
                  for ev in report["events"]]
        out.text = "\n".join(lines)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(outcomes: Sequence[dict[str, Any]], path: str | Path, *, wall_s: float) -> None:
    """Write the campaign to ``path`` (UTF-8, with the XML declaration)."""
    junit_tree(outcomes, wall_s=wall_s).write(path, encoding="utf-8", xml_declaration=True)


def _clean(text: str) -> str:
    """``text`` without the control characters XML 1.0 cannot carry (a DBC comment may have them)."""
    return "".join(ch if ch in "\t\n\r" or ch >= " " else "?" for ch in text)
