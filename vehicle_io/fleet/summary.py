"""``z10 fleet summary``: per van distance, energy, cell extremes and interlock events, on Dask.

One ``dask.delayed`` task per (van, message) reads only the columns it needs from that
partition and reduces it; the per-van results are combined in the driver. Definitions:

* distance (km): trapezoidal integral of ``VCU_VehicleSpeed`` (km/h) over time;
* energy (kWh): trapezoidal integral of ``BMS_PackVoltage * BMS_PackCurrent`` (discharge
  positive, as the BMS reports it; regeneration subtracts);
* in both integrals a step longer than :data:`MAX_GAP_S` (a gap between logs) or with a
  missing value contributes nothing;
* cell voltage / temperature: min of the ``*Min`` and max of the ``*Max`` signals of
  ``BMS_CellVoltageStats`` / ``BMS_CellTempStats``;
* interlock events: for every ``GW_Ilk*`` flag of ``GW_Status``, the number of rising edges
  (0 -> 1) in time order, the state before the first frame taken as 0 (a trip already
  active when the log starts counts once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vehicle_io.fleet.plan import FleetError

#: A longer step between two frames of one van is a gap between recordings, not driving.
MAX_GAP_S = 1.0

SPEED = ("VCU_Status", "VCU_VehicleSpeed")
PACK = ("BMS_Status", ("BMS_PackVoltage", "BMS_PackCurrent"))
CELL_V = ("BMS_CellVoltageStats", ("BMS_CellVoltageMin", "BMS_CellVoltageMax"))
CELL_T = ("BMS_CellTempStats", ("BMS_CellTempMin", "BMS_CellTempMax"))
INTERLOCK_MESSAGE = "GW_Status"
INTERLOCK_PREFIX = "GW_Ilk"


def _read(directory: Path, columns: list[str] | None) -> dict[str, np.ndarray]:
    """Columns of one (van, message) partition, sorted by timestamp; {} when absent."""
    import pyarrow.dataset as ds

    if not directory.is_dir():
        return {}
    dataset = ds.dataset(str(directory), format="parquet")
    names = dataset.schema.names
    if columns is None:
        columns = [n for n in names if n.startswith(INTERLOCK_PREFIX)]
    wanted = ["timestamp"] + [c for c in columns if c in names]
    table = dataset.to_table(columns=wanted)
    t = table.column("timestamp").to_numpy()
    order = np.argsort(t, kind="stable")
    return {name: table.column(name).to_numpy()[order] for name in wanted}


def integrate(t: np.ndarray, y: np.ndarray, max_gap_s: float = MAX_GAP_S) -> float:
    """Trapezoidal integral of ``y`` over ``t`` (sorted), skipping gaps and missing values."""
    if len(t) < 2:
        return 0.0
    dt = np.diff(t)
    mid = 0.5 * (y[1:] + y[:-1])
    ok = (dt > 0) & (dt <= max_gap_s) & np.isfinite(mid)
    return float(np.sum(mid[ok] * dt[ok]))


def rising_edges(flags: np.ndarray) -> int:
    """0 -> 1 transitions of a flag column (NaN counts as 0; the state before is 0)."""
    on = np.nan_to_num(flags, nan=0.0) > 0.5
    prev = np.concatenate([[False], on[:-1]])
    return int(np.count_nonzero(on & ~prev))


def _distance(van_dir: Path) -> dict[str, Any]:
    c = _read(van_dir / f"message={SPEED[0]}", [SPEED[1]])
    if SPEED[1] not in c:
        return {"distance_km": None}
    return {"distance_km": integrate(c["timestamp"], c[SPEED[1]]) / 3600.0}


def _energy(van_dir: Path) -> dict[str, Any]:
    volt, amp = PACK[1]
    c = _read(van_dir / f"message={PACK[0]}", [volt, amp])
    if volt not in c or amp not in c:
        return {"energy_kwh": None}
    return {"energy_kwh": integrate(c["timestamp"], c[volt] * c[amp]) / 3.6e6}


def _extremes(van_dir: Path, message: str, lo: str, hi: str, key: str) -> dict[str, Any]:
    c = _read(van_dir / f"message={message}", [lo, hi])
    low = c.get(lo)
    high = c.get(hi)
    return {
        f"{key}_min": float(np.nanmin(low)) if low is not None and np.isfinite(low).any() else None,
        f"{key}_max": float(np.nanmax(high)) if high is not None and np.isfinite(high).any() else None,
    }


def _interlocks(van_dir: Path) -> dict[str, Any]:
    c = _read(van_dir / f"message={INTERLOCK_MESSAGE}", None)
    events = {name: rising_edges(values) for name, values in c.items() if name.startswith(INTERLOCK_PREFIX)}
    return {"interlock_events": {k: v for k, v in sorted(events.items()) if v}}


def _frames(van_dir: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    rows = 0
    t_min = np.inf
    t_max = -np.inf
    for part in van_dir.glob("message=*/part-*.parquet"):
        meta = pq.read_metadata(part)
        rows += meta.num_rows
        stats = meta.row_group(0).column(0).statistics if meta.num_row_groups else None
        if stats is not None and stats.has_min_max:
            t_min = min(t_min, stats.min)
            t_max = max(t_max, stats.max)
    return {"rows": rows, "t_first": None if rows == 0 else float(t_min), "t_last": None if rows == 0 else float(t_max)}


def vans_of(root: Path) -> list[str]:
    return sorted(p.name[4:] for p in root.glob("van=*") if p.is_dir())


def summarize(root: str | Path, *, scheduler: str = "threads") -> dict[str, dict[str, Any]]:
    """``{van: {distance_km, energy_kwh, cell_voltage_min/max, cell_temp_min/max,
    interlock_events: {flag: count}, rows, t_first, t_last}}`` for the dataset at ``root``.

    ``scheduler``: a Dask scheduler name, or ``"distributed"`` to use the current client.
    """
    import dask

    base = Path(root)
    if not base.is_dir():
        raise FleetError(f"{base}: expected a fleet dataset directory, but it does not exist")
    vans = vans_of(base)
    if not vans:
        raise FleetError(f"{base}: expected van=... partitions (the output of `z10 fleet decode`), but found none")
    jobs: list[tuple[str, Any]] = []
    for van in vans:
        van_dir = base / f"van={van}"
        jobs += [
            (van, dask.delayed(_distance)(van_dir)),
            (van, dask.delayed(_energy)(van_dir)),
            (van, dask.delayed(_extremes)(van_dir, CELL_V[0], *CELL_V[1], "cell_voltage")),
            (van, dask.delayed(_extremes)(van_dir, CELL_T[0], *CELL_T[1], "cell_temp")),
            (van, dask.delayed(_interlocks)(van_dir)),
            (van, dask.delayed(_frames)(van_dir)),
        ]
    kwargs = {} if scheduler == "distributed" else {"scheduler": scheduler}
    values = dask.compute(*[job for _, job in jobs], **kwargs)
    out: dict[str, dict[str, Any]] = {van: {} for van in vans}
    for (van, _), value in zip(jobs, values):
        out[van].update(value)
    return out


def message_dataset(root: str | Path, message: str) -> Any:
    """A ``pyarrow.dataset`` of one message over every van, with that message's own schema
    plus the ``van`` and ``message`` partition columns.

    Reading the whole directory as one dataset would take the schema of whichever part file
    comes first (each message has its own columns); this reads exactly one message's parts.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    base = Path(root)
    files = sorted(str(p) for p in base.glob(f"van=*/message={message}/part-*.parquet"))
    if not files:
        raise FleetError(f"{base}: expected parts of message {message!r}, but found none")
    schema = pq.read_schema(files[0])
    keys = pa.schema([("van", pa.string()), ("message", pa.string())])
    full = pa.schema(list(schema) + list(keys), metadata=schema.metadata)
    return ds.dataset(files, schema=full, format="parquet",
                      partitioning=ds.partitioning(keys, flavor="hive"), partition_base_dir=str(base))
