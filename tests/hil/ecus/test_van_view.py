"""PlantVan, the ECUs' view of the plant: reads from the step's snapshot, cheap repeats.

The snapshot parts it keeps (cell quantities, compartment columns, parameters, the step count
of a repeated dt) must give what the model itself gives.
"""

from __future__ import annotations

import numpy as np
import pytest

from hil.ecus.van import PlantVan
from hil.plant import PlantInputError
from hil.plant.model import Van


def _pair(seed: int = 3) -> tuple[PlantVan, Van]:
    """A PlantVan and a twin model driven the same way."""
    view, twin = PlantVan(Van(seed=seed)), Van(seed=seed)
    inputs = {"hv_request": 1, "epb_request": 2, "gear_request": 3, "motor_torque_request_nm": 120.0}
    view.command(**inputs)
    twin.set_inputs(inputs)
    return view, twin


def test_repeated_steps_equal_the_model_step() -> None:
    view, twin = _pair()
    for dt_s in [0.01] * 150 + [0.02, 0.005, 0.01, 0.01]:
        view.step(dt_s)
        twin.step(dt_s)
    assert view.model._van.tobytes() == twin._van.tobytes()
    assert view.model._cells.tobytes() == twin._cells.tobytes()
    assert view.read("speed_mps") == twin.outputs["speed_mps"] > 0.0


@pytest.mark.parametrize("dt_s", [0.0105, -0.01, 0.0, float("nan")])
def test_a_step_that_is_no_multiple_of_the_model_step_is_refused(dt_s: float) -> None:
    view, _ = _pair()
    view.step(0.01)
    rejected = view.model.rejected_inputs
    with pytest.raises(PlantInputError, match="dt_s: expected a positive multiple"):
        view.step(dt_s)
    assert view.model.rejected_inputs == rejected + 1
    with pytest.raises(PlantInputError):
        view.step(dt_s)  # refused again, not remembered


def test_cell_reads_are_the_snapshot_and_the_callers_own() -> None:
    view, _ = _pair()
    model = view.model
    model.set_cell_temp_offset(9, 15.0)  # one sensor reads hotter than the others
    view.step(0.5)
    want_v = model.cells["measured_v"].copy()
    cells = model.cells
    want_t = (cells["temp_c"] + cells["temp_offset_c"]).reshape(-1, int(model.params.cells_per_temp_sensor)).max(axis=1)
    got = view.cell_voltages_v()
    got[:] = 0.0  # a reader that scribbles on its array
    assert np.array_equal(view.cell_voltages_v(), want_v)
    assert np.array_equal(view.sensor_temps_c(), want_t)
    assert want_t.max() > want_t.min() + 10.0
    model.step(0.2)  # the model moves without the view: reads keep the snapshot
    assert np.array_equal(view.cell_voltages_v(), want_v)
    view.refresh()
    assert np.array_equal(view.cell_voltages_v(), model.cells["measured_v"])


def test_commands_write_changes_only_and_refuse_unknown_inputs() -> None:
    view, _ = _pair()
    view.command(brake_pressure_request_bar=12.5)
    assert view.read("in_brake_pressure_request_bar") == 12.5
    rejected = view.model.rejected_inputs
    view.command(brake_pressure_request_bar=12.5)  # unchanged: no write, nothing to check
    assert view.model.rejected_inputs == rejected
    with pytest.raises(PlantInputError, match="no_such_input"):
        view.command(no_such_input=1.0)
    assert "no_such_input" not in view._input_keys
    with pytest.raises(PlantInputError):
        view.command(brake_pressure_request_bar=float("nan"))
    assert view.read("in_brake_pressure_request_bar") == 12.5


@pytest.mark.parametrize("n_steps", [0, -3, 2.0, True, "10"])
def test_advance_steps_refuses_what_is_no_step_count(n_steps: object) -> None:
    view, _ = _pair()
    before = view.model._van.tobytes()
    with pytest.raises(PlantInputError, match="n_steps: expected a whole number"):
        view.model.advance_steps(n_steps)  # type: ignore[arg-type]
    assert view.model._van.tobytes() == before


def test_reads_follow_the_record_through_steps_commands_and_refusals() -> None:
    """The snapshot (the record's row, read by field index) reads what the live record holds
    after every step and every command (a write is read back at once), repeats and a
    NoRequest gear included; refused commands change nothing."""
    view, _ = _pair(seed=4)
    model = view.model
    names = list(view._names)

    def assert_reads_the_record() -> None:
        assert [view.read(n) for n in names] == list(model._van.item(0))
        assert [dict(c) for c in view.compartments()] == [dict(zip(model._comps.dtype.names, row))
                                                           for row in model._comps.tolist()]

    plan = [
        {"motor_torque_request_nm": 150.0},
        {"motor_torque_request_nm": 150.0, "brake_pressure_request_bar": 0.0},
        {"gear_request": 7, "steer_angle_request_deg": 12.5},  # NoRequest keeps the gear
        {"brake_pressure_request_bar": 20.0, "motor_torque_request_nm": -40.0},
        {"hv_request": 1},
    ]
    cargo = [(1, {"lock_request": 2, "door_release": 0}), (1, {"lock_request": 2, "door_release": 0}),
             (2, {"lock_request": 0, "door_release": 1}), (1, {"lock_request": 1, "door_release": 0}), (2, {})]
    rows = []
    for step, inputs in enumerate(plan * 3):
        view.command(**inputs)
        assert_reads_the_record()
        number, comp_inputs = cargo[step % len(cargo)]
        view.command_compartment(number, **comp_inputs)
        assert_reads_the_record()
        view.step(0.01 if step % 4 else 0.02)
        assert_reads_the_record()
        rows.append(tuple(view.read(n) for n in names if not n.startswith("in_")))
    assert view.read("in_steer_angle_request_deg") == 12.5
    assert len(set(rows)) == len(rows)  # every step changed outputs: the reads saw new values
    van_before, comps_before = model._van.tobytes(), model._comps.tobytes()
    for bad in ({"no_such_input": 1.0}, {"brake_pressure_request_bar": float("nan")}, {"gear_request": 5}):
        with pytest.raises(PlantInputError):
            view.command(**bad)
    for number, bad_inputs in ((1, {"no_such_input": 1}), (2, {"lock_request": 9}), (0, {"lock_request": 1})):
        with pytest.raises(PlantInputError):
            view.command_compartment(number, **bad_inputs)
    assert (model._van.tobytes(), model._comps.tobytes()) == (van_before, comps_before)
    assert_reads_the_record()
    with pytest.raises(Exception, match="van output 'nope'"):
        view.read("nope")
