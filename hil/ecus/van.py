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
        # The snapshot: the record's one row as a tuple (a list once a command wrote into it),
        # read by field position; cheaper to take each step than a dict of every field.
        self._index: dict[str, int] = {name: i for i, name in enumerate(self._names)}
        self._row: tuple[Any, ...] | list[Any] = ()
        # Each input field as a one-element view of the live record: a written value read back.
        self._in_views = {n: self._rec[n] for n in self._names if n.startswith("in_")}
        self._comps_live = model._comps  # the live compartment records (inputs included)
        self._comp_names: tuple[str, ...] = tuple(self._comps_live.dtype.names)
        # Each compartment input as a column view of the live records (name without "in_").
        self._comp_in_views = {n[3:]: self._comps_live[n] for n in self._comp_names if n.startswith("in_")}
        self._cells: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None
        self._comps: list[dict[str, Any]] | None = None
        # The same snapshot of the compartment records as rows, and by field (made on demand).
        self._comp_rows: list[tuple[Any, ...]] | None = None
        self._comp_columns: dict[str, tuple[Any, ...]] | None = None
        self._input_keys: dict[str, str] = {}  # input name -> its field in the record ("in_" + name)
        self._input_names = frozenset(n[3:] for n in self._names if n.startswith("in_"))
        self._step_dt_s: float | None = None  # last dt_s given to step() and its model step count
        self._step_n = 0
        self.refresh()

    def refresh(self) -> None:
        """Take a new snapshot (after a model step or a change between steps)."""
        self._row = self._rec.item(0)
        self._cells = None
        self._comps = self._comp_rows = self._comp_columns = None

    def step(self, dt_s: float) -> None:
        """Advance the model ``dt_s`` and refresh the snapshot."""
        if dt_s == self._step_dt_s:  # the rig's tick: checked once, then only the step count
            self.model.advance_steps(self._step_n)
        else:
            self._step_n = self.model.steps_for(dt_s)
            self._step_dt_s = dt_s
            self.model.advance_steps(self._step_n)
        self.refresh()

    def read(self, name: str) -> float:
        try:
            return self._row[self._index[name]]  # type: ignore[no-any-return]
        except KeyError:
            raise EcuConfigError(f"van output {name!r}: expected one of the plant's outputs, but got an unknown name") from None

    def param(self, name: str) -> float:
        try:
            return float(getattr(self.model.params, name))
        except AttributeError:
            raise EcuConfigError(f"van parameter {name!r}: expected a VanParams field, but got an unknown name") from None

    def command(self, **inputs: float) -> None:
        # ECUs repeat their command every cycle; only a change needs the model's checked setter.
        row = self._row
        index = self._index
        keys = self._input_keys
        for name, value in inputs.items():
            key = keys.get(name)
            if key is None:
                key = "in_" + name
                if name in self._input_names:  # only real inputs: a bad name must not grow it
                    keys[name] = key
            i = index.get(key)
            if i is None or row[i] != value:
                break
        else:
            return
        changed: dict[str, float] = {}
        for name, value in inputs.items():
            i = index.get("in_" + name)
            if i is None or row[i] != value:
                changed[name] = value
        self.model.set_inputs(changed)
        # A write is seen by readers at once (e.g. an ECU reporting what it commanded).
        row = list(row)
        views = self._in_views
        for name in changed:
            key = "in_" + name
            i = index.get(key)
            if i is not None:
                row[i] = views[key].item(0)
        self._row = row

    def command_compartment(self, number: int, **inputs: float) -> None:
        live = self._comps_live
        if isinstance(number, int) and 1 <= number <= live.shape[0]:
            # The CBC repeats its command every frame: only a change goes through the model's
            # checked setter (and makes the next read take a new snapshot).
            views = self._comp_in_views  # each input's column: no record object for the row
            k = number - 1
            for name, value in inputs.items():
                view = views.get(name)
                if view is None or not view.item(k) == value:
                    break
            else:
                return
        self.model.set_compartment(number, **inputs)
        self._comps = self._comp_rows = self._comp_columns = None

    def _compartment_rows(self) -> list[tuple[Any, ...]]:
        if self._comp_rows is None:
            self._comp_rows = self._comps_live.tolist()
        return self._comp_rows

    def _compartments(self) -> list[dict[str, Any]]:
        if self._comps is None:
            names = self._comp_names
            self._comps = [dict(zip(names, rec)) for rec in self._compartment_rows()]
        return self._comps

    def compartment_columns(self) -> Mapping[str, tuple[Any, ...]]:
        """Every compartment field at the last snapshot as a tuple over the compartments
        (compartment 1 first): the values :meth:`compartments` holds, by field, for a reader
        that wants one quantity of every compartment (read-only, shared)."""
        if self._comp_columns is None:
            self._comp_columns = dict(zip(self._comp_names, zip(*self._compartment_rows())))
        return self._comp_columns

    def compartments(self) -> list[Mapping[str, float]]:
        """Every compartment's state at the last snapshot, compartment 1 first (read-only, as
        :meth:`compartment`: the same mappings)."""
        return self._compartments()

    def compartment(self, number: int) -> Mapping[str, float]:
        """State of compartment ``number`` at the last snapshot (read-only: shared by every reader)."""
        comps = self._compartments()
        if not (isinstance(number, int) and 1 <= number <= len(comps)):
            raise EcuConfigError(f"compartment number: expected 1..{len(comps)}, but got {number!r}")
        return comps[number - 1]

    def _cell_records(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(measured cell voltages, cell temperatures as the sensors see them), taken at the
        first read after a snapshot: only the two quantities the BMS reports, not a copy of
        every cell record."""
        if self._cells is None:
            live = self.model._cells
            self._cells = (np.array(live["measured_v"], dtype=np.float64),
                           np.asarray(live["temp_c"] + live["temp_offset_c"], dtype=np.float64))
        return self._cells

    def cell_voltages_v(self) -> npt.NDArray[np.float64]:
        return self._cell_records()[0].copy()

    def sensor_temps_c(self) -> npt.NDArray[np.float64]:
        t = self._cell_records()[1]
        # A sensor between its cells reads the hottest of them (as the plant's BMS view does).
        return t.reshape(-1, self._per_sensor).max(axis=1)
