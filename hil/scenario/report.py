"""Scenario report (DESIGN.md contract): passed, duration_s, events, expectations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hil.scenario.runner import ScenarioResult

__all__ = ["report_dict", "write_report"]


def report_dict(result: ScenarioResult, *, wall_time: bool = True) -> dict[str, Any]:
    """The report as plain data; ``wall_time=False`` leaves out the only non-deterministic field."""
    doc: dict[str, Any] = {
        "scenario": result.name,
        "seed": result.seed,
        "passed": result.passed,
        "duration_s": result.duration_s,
        "events": result.events,
        "expectations": [e.as_dict() for e in result.expectations],
    }
    if wall_time:
        doc["wall_time_s"] = round(result.wall_time_s, 3)
    return doc


def write_report(result: ScenarioResult, path: str | Path) -> None:
    """Write the JSON report to ``path``."""
    Path(path).write_text(json.dumps(report_dict(result), indent=2, allow_nan=False) + "\n", encoding="utf-8")
