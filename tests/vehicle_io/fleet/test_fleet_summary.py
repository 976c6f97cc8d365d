"""`z10 fleet summary` against an independent computation from the same frames."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from fleet_helpers import reference_by_van

GAP_S = 1.0  # the documented gap limit of the integrals


def _trapezoid(samples: list[tuple[float, float]]) -> float:
    total = 0.0
    for (t0, y0), (t1, y1) in zip(samples, samples[1:]):
        if 0 < t1 - t0 <= GAP_S:
            total += (y0 + y1) / 2 * (t1 - t0)
    return total


def test_summary_matches_an_independent_computation(fleet, decoded):
    from vehicle_io.fleet import summarize

    result = summarize(decoded["out"])
    reference = reference_by_van(fleet)
    assert sorted(result) == sorted(reference)
    for van, messages in reference.items():
        got = result[van]
        speed = [(t, v["VCU_VehicleSpeed"]) for t, _, v in messages.get("VCU_Status", [])]
        assert got["distance_km"] == pytest.approx(_trapezoid(speed) / 3600, rel=1e-9, abs=1e-12)
        power = [(t, v["BMS_PackVoltage"] * v["BMS_PackCurrent"]) for t, _, v in messages.get("BMS_Status", [])]
        assert got["energy_kwh"] == pytest.approx(_trapezoid(power) / 3.6e6, rel=1e-9, abs=1e-12)
        cv = messages["BMS_CellVoltageStats"]
        assert got["cell_voltage_min"] == min(v["BMS_CellVoltageMin"] for _, _, v in cv)
        assert got["cell_voltage_max"] == max(v["BMS_CellVoltageMax"] for _, _, v in cv)
        ct = messages["BMS_CellTempStats"]
        assert got["cell_temp_min"] == min(v["BMS_CellTempMin"] for _, _, v in ct)
        assert got["cell_temp_max"] == max(v["BMS_CellTempMax"] for _, _, v in ct)
        edges: dict[str, int] = {}
        previous: dict[str, float] = {}
        for _, _, v in messages.get("GW_Status", []):
            for name, value in v.items():
                if name.startswith("GW_Ilk"):
                    if value == 1 and previous.get(name, 0) == 0:
                        edges[name] = edges.get(name, 0) + 1
                    previous[name] = value
        assert got["interlock_events"] == edges
        assert got["rows"] == sum(len(rows) for rows in messages.values())
    # what the synthetic vans were made to do
    assert result["van01"]["interlock_events"].get("GW_IlkDoorOpen", 0) >= 1
    assert result["van02"]["interlock_events"].get("GW_IlkEStop", 0) >= 1
    assert result["van01"]["distance_km"] > 0.002 and result["van02"]["distance_km"] > 0.002  # metres, not noise
    assert result["van03"]["interlock_events"] == {}  # no gateway on that van: no GW_Status at all
    assert math.isclose(result["van03"]["distance_km"], 0.0, abs_tol=1e-9)


def test_integrals_skip_gaps_and_missing_values():
    import numpy as np

    from vehicle_io.fleet.summary import integrate, rising_edges

    t = np.array([0.0, 0.5, 1.0, 5.0, 5.5])
    y = np.array([2.0, 2.0, np.nan, 4.0, 4.0])
    # 0..0.5 counts (2*0.5); 0.5..1.0 has a NaN; 1.0..5.0 is a gap; 5.0..5.5 counts (4*0.5)
    assert integrate(t, y) == 1.0 + 2.0
    assert rising_edges(np.array([1.0, 1.0, 0.0, 1.0, np.nan, 1.0])) == 3
    assert rising_edges(np.array([])) == 0


def test_summary_of_a_missing_dataset_is_one_clear_error(tmp_path):
    from vehicle_io.fleet import FleetError, summarize

    with pytest.raises(FleetError, match="expected"):
        summarize(tmp_path / "nope")
    with pytest.raises(FleetError, match="van="):
        summarize(tmp_path)
