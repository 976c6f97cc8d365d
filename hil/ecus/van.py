"""The :class:`~hil.ecus.base.VanView` of the plant model :class:`hil.plant.model.Van`.

Reads go through a snapshot of the van record taken once per model step (one tuple copy
instead of a numpy field access per signal: the rest-bus reads hundreds of values per
simulated millisecond). Writes go straight to the model's checked setters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from hil.ecus.base import EcuConfigError

__all__ = ["PlantVan"]


class PlantVan:
    """Adapter of :class:`hil.plant.model.Van` (``model``) to the ECUs' ``VanView``."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.n_compartments = int(model.params.compartments)
        self._per_sensor = int(model.params.cells_per_temp_sensor)
        self._rec = model._van  # the live record; the model mutates it in place each step
        self._names: tuple[str, ...] = tuple(self._rec.dtype.names)
        self._snap: dict[str, float] = {}
        self._cells: np.ndarray | None = None
        self._comps: np.ndarray | None = None
        self.refresh()

    def refresh(self) -> None:
        """Take a new snapshot (after a model step or a change between steps)."""
        self._snap = dict(zip(self._names, self._rec[0].item()))
        self._cells = None
        self._comps = None

    def step(self, dt_s: float) -> None:
        """Advance the model ``dt_s`` and refresh the snapshot."""
        self.model.step(dt_s)
        self.refresh()

    def read(self, name: str) -> float:
        try:
            return self._snap[name]
        except KeyError:
            raise EcuConfigError(f"van output {name!r}: expected one of the plant's outputs, but got an unknown name") from None

    def param(self, name: str) -> float:
        try:
            return float(getattr(self.model.params, name))
        except AttributeError:
            raise EcuConfigError(f"van parameter {name!r}: expected a VanParams field, but got an unknown name") from None

    def command(self, **inputs: float) -> None:
        snap = self._snap
        # ECUs repeat their command every cycle; only a change needs the model's checked setter.
        changed = {name: value for name, value in inputs.items() if snap.get("in_" + name) != value}
        if not changed:
            return
        self.model.set_inputs(changed)
        # A write is seen by readers at once (e.g. an ECU reporting what it commanded).
        row = self._rec[0]
        for name in changed:
            key = "in_" + name
            if key in snap:
                snap[key] = row[key].item()

    def command_compartment(self, number: int, **inputs: float) -> None:
        self.model.set_compartment(number, **inputs)
        self._comps = None

    def _compartments(self) -> np.ndarray:
        if self._comps is None:
            self._comps = self.model.compartments
        return self._comps

    def compartment(self, number: int) -> Mapping[str, float]:
        comps = self._compartments()
        if not 1 <= number <= len(comps):
            raise EcuConfigError(f"compartment number: expected 1..{len(comps)}, but got {number!r}")
        row = comps[number - 1]
        return {
            "door_open": int(row["door_open"]), "lock_state": int(row["lock_state"]),
            "weight_kg": float(row["weight_kg"]), "temp_c": float(row["temp_c"]),
        }  # fmt: skip

    def _cell_records(self) -> np.ndarray:
        if self._cells is None:
            self._cells = self.model.cells
        return self._cells

    def cell_voltages_v(self) -> npt.NDArray[np.float64]:
        return np.asarray(self._cell_records()["measured_v"], dtype=np.float64)

    def sensor_temps_c(self) -> npt.NDArray[np.float64]:
        cells = self._cell_records()
        t = np.asarray(cells["temp_c"] + cells["temp_offset_c"], dtype=np.float64)
        # A sensor between its cells reads the hottest of them (as the plant's BMS view does).
        return t.reshape(-1, self._per_sensor).max(axis=1)
