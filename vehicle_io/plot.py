"""PNG plots of signals (from a log) and of scenario reports, with matplotlib's Agg backend.

matplotlib is imported inside the functions, never at import, so ``z10 --help`` stays fast.
``plot_report`` is what ``z10 hil run --plot`` and ``z10 plot report.json`` call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

#: Report timeseries shown by plot_report, one panel each: (key, axis label).
REPORT_PANELS: tuple[tuple[str, str], ...] = (
    ("van.speed_mps", "speed (m/s)"),
    ("gw.torque_nm", "torque (N·m)"),
    ("van.soc", "SOC"),
    ("doors_open", "doors open"),
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _numbers(values: Any) -> list[float]:
    out = []
    for v in values:
        try:
            out.append(float("nan") if v is None else float(v))
        except (TypeError, ValueError):
            out.append(float("nan"))
    return out


def report_panels(doc: Mapping[str, Any]) -> list[str]:
    """The REPORT_PANELS keys ``doc`` has data for (missing or mis-sized keys are skipped)."""
    series = doc.get("timeseries") or {}
    t = series.get("t_s") if isinstance(series, Mapping) else None
    if not isinstance(t, Sequence) or not t:
        return []
    return [key for key, _ in REPORT_PANELS
            if isinstance(series.get(key), Sequence) and len(series[key]) == len(t)]


def plot_report(doc: dict[str, Any], png_path: str | os.PathLike[str]) -> list[str]:
    """Plot speed, torque, SOC and doors of a scenario report, events as labelled lines.

    Missing timeseries keys are skipped; a report without any still gets its event
    markers. Returns the keys plotted.
    """
    plt = _pyplot()
    series = doc.get("timeseries") or {}
    keys = report_panels(doc)
    labels = dict(REPORT_PANELS)
    t = _numbers(series.get("t_s") or [])
    events = [e for e in (doc.get("events") or []) if isinstance(e, Mapping) and "t" in e]
    n = max(1, len(keys))
    fig, axes = plt.subplots(n, 1, sharex=True, figsize=(10, 2.2 * n + 1), squeeze=False)
    axes = [row[0] for row in axes]
    for ax, key in zip(axes, keys):
        ax.plot(t, _numbers(series[key]), linewidth=1.2, drawstyle="steps-post" if key == "doors_open" else "default")
        ax.set_ylabel(labels[key])
        ax.grid(True, alpha=0.3)
    if not keys:
        axes[0].set_ylabel("events")
        axes[0].set_yticks([])
    for event in events:
        try:
            te = float(event["t"])
        except (TypeError, ValueError):
            continue
        active = event.get("active", True)
        color = "tab:red" if active else "tab:green"
        for ax in axes:
            ax.axvline(te, color=color, linestyle="--", linewidth=0.8, alpha=0.7)
        axes[0].annotate(f"{event.get('code', '?')}{'' if active else ' (cleared)'}", xy=(te, 1.0),
                         xycoords=("data", "axes fraction"), rotation=90, fontsize=6, va="bottom",
                         ha="right", color=color)
    axes[-1].set_xlabel("time (s)")
    title = doc.get("scenario", "scenario")
    passed = doc.get("passed")
    fig.suptitle(f"{title}" + ("" if passed is None else (" — passed" if passed else " — FAILED")))
    fig.tight_layout()
    fig.savefig(os.fspath(png_path), dpi=110)
    plt.close(fig)
    return keys


def plot_signals(series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                 png_path: str | os.PathLike[str], *, units: Mapping[str, str] | None = None,
                 title: str = "", subplots: bool = True) -> None:
    """Plot ``{name: (t_s, values)}``: one panel per signal (or one shared panel)."""
    plt = _pyplot()
    names = list(series)
    n = len(names) if subplots else 1
    fig, axes = plt.subplots(max(1, n), 1, sharex=True, figsize=(10, 2.2 * max(1, n) + 1), squeeze=False)
    axes = [row[0] for row in axes]
    for i, name in enumerate(names):
        ax = axes[i if subplots else 0]
        t, v = series[name]
        unit = (units or {}).get(name, "")
        ax.plot(_numbers(t), _numbers(v), linewidth=1.0, label=f"{name} ({unit})" if unit else name)
        if subplots:
            ax.set_ylabel(f"{name}\n({unit})" if unit else name, fontsize=8)
        ax.grid(True, alpha=0.3)
    if not subplots:
        axes[0].legend(fontsize=7)
    axes[-1].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(os.fspath(png_path), dpi=110)
    plt.close(fig)
