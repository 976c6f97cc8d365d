"""Scenario report (DESIGN.md contract): passed, duration_s, events, expectations.

Beyond the contract: ``timeseries`` — ``t_s`` (every control tick) and one list per sampled
signal (``van.*`` plant outputs, ``gw.*`` control outputs, ``doors_open``, ``comp<N>.*``),
rounded to 6 significant digits; what ``z10 plot`` and ``z10 hil run --plot`` draw.
"""

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
    if result.times_s:
        series = {"t_s": [round(t, 6) for t in result.times_s]}
        for name in sorted(result.samples):
            series[name] = [_round6(x) for x in result.samples[name]]
        doc["timeseries"] = series
    if wall_time:
        doc["wall_time_s"] = round(result.wall_time_s, 3)
    return doc


def _round6(x: float) -> float | None:
    if x != x or x in (float("inf"), float("-inf")):
        return None  # JSON has no NaN; a gap in the plot
    return float(f"{x:.6g}")


def write_report(result: ScenarioResult | dict[str, Any], path: str | Path) -> None:
    """Write the JSON report (a result, or its ``report_dict``) to ``path``."""
    doc = result if isinstance(result, dict) else report_dict(result)
    Path(path).write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
