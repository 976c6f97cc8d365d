"""Helpers for the van model tests: a van already powered up, in a gear, EPB released."""

from __future__ import annotations

from typing import Any

from hil.plant.model import Van
from hil.plant.params import VanParams

Z10 = VanParams.load()


def ready_van(params: VanParams, gear: int = 2, seed: int = 0, **inputs: Any) -> Van:
    """HV on, EPB released, the given gear (N by default), flat road, no torque."""
    van = Van(params, seed=seed)
    van.set_inputs(hv_request=1, epb_request=2, gear_request=gear, **inputs)
    van.step(1.2)
    assert van.outputs["hv_active"] == 1
    assert van.outputs["epb_state"] == 0
    return van


def m_eff(params: VanParams, payload_kg: float = 0.0) -> float:
    return params.curb_mass_kg + payload_kg + params.rotating_mass_kg
