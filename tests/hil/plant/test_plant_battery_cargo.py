"""Battery, BMS, contactors, cargo bay, determinism and the wrapper's input checks."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from plant_helpers import Z10, ready_van

from hil.plant.errors import PlantInputError, PlantParamError
from hil.plant.model import Van
from hil.plant.params import VanParams


def test_precharge_follows_the_rc_time_constant() -> None:
    van = Van(Z10)
    e = van.outputs["pack_voltage_v"]
    tau = Z10.precharge_resistance_ohm * Z10.link_capacitance_f
    van.set_inputs(hv_request=1)
    t_tau = round(tau / Z10.step_s)
    out = van.step(t_tau * Z10.step_s)
    assert out["precharge_state"] == 1 and out["main_pos_state"] == 0
    assert out["main_neg_state"] == 1 and out["precharge_relay_state"] == 1
    assert out["link_voltage_v"] == pytest.approx(e * (1 - math.exp(-1.0)), rel=5e-3)
    t = t_tau * Z10.step_s
    while van.outputs["main_pos_state"] == 0:
        van.step(Z10.step_s)
        t += Z10.step_s
    assert van.outputs["link_voltage_v"] >= Z10.precharge_threshold * van.outputs["pack_voltage_v"]
    # Thevenin of the precharge resistor and the link bleed resistor charging the capacitor
    rp, rb = Z10.precharge_resistance_ohm, Z10.link_bleed_resistance_ohm
    v_inf = e * rb / (rp + rb)
    tau_th = rp * rb / (rp + rb) * Z10.link_capacitance_f
    assert t == pytest.approx(-tau_th * math.log(1 - Z10.precharge_threshold * e / v_inf), abs=0.002)
    out = van.step(0.01)
    assert out["precharge_state"] == 3 and out["hv_active"] == 1 and out["precharge_relay_state"] == 0
    out = van.step(0.01, {"hv_request": 0})
    assert out["hv_active"] == 0 and out["main_pos_state"] == 0 and out["main_neg_state"] == 0


def test_precharge_times_out_when_the_link_does_not_charge() -> None:
    van = Van(Z10.with_changes(link_capacitance_f=0.1))  # tau 10 s: a leaky/shorted link
    out = van.step(Z10.precharge_timeout_s + 0.01, {"hv_request": 1})
    assert out["precharge_state"] == 5 and out["hv_active"] == 0
    assert out["main_neg_state"] == 0 and out["precharge_relay_state"] == 0
    out = van.step(0.01, {"hv_request": 0})
    assert out["precharge_state"] == 0


def _limits(params: VanParams) -> tuple[float, float]:
    out = Van(params).outputs
    return out["discharge_power_limit_w"], out["charge_power_limit_w"]


def test_power_limits_fall_near_soc_limits() -> None:
    mid_dis, mid_chg = _limits(Z10.with_changes(initial_soc=0.5, initial_soc_spread=0.0))
    low_dis, _ = _limits(Z10.with_changes(initial_soc=0.1, initial_soc_spread=0.0))
    _, high_chg = _limits(Z10.with_changes(initial_soc=0.97, initial_soc_spread=0.0))
    empty_dis, _ = _limits(Z10.with_changes(initial_soc=0.04, initial_soc_spread=0.0))
    # derating 20 % -> 5 %: one third left at 10 % (and a lower OCV)
    assert low_dis < mid_dis * (0.1 - 0.05) / (0.2 - 0.05) * 1.01
    assert low_dis > 0.0
    assert high_chg < mid_chg * (1.0 - 0.97) / (1.0 - 0.9) * 1.01
    assert empty_dis == 0.0


def test_power_limits_fall_with_cell_temperature() -> None:
    van = Van(Z10)
    dis0, chg0 = van.outputs["discharge_power_limit_w"], van.outputs["charge_power_limit_w"]
    van.set_cell_temp_offset(40, 55.0 - Z10.initial_ambient_c)  # cell 40 at 55 degC
    out = van.outputs
    assert out["cell_t_max_c"] == pytest.approx(55.0)
    assert out["cell_t_max_index"] == 14  # sensor over cells 40..42
    assert out["charge_power_limit_w"] == 0.0  # charge window ends at 55 degC
    ratio = out["discharge_power_limit_w"] / dis0
    assert 0.25 < ratio < 1.0 - (55.0 - 45.0) / (60.0 - 45.0) + 0.05
    cold = Van(Z10.with_changes(initial_ambient_c=5.0))
    assert cold.outputs["charge_power_limit_w"] < 0.6 * chg0  # 5 degC: half charge power


def test_power_limits_fall_near_cell_voltage_limits() -> None:
    van = Van(Z10)
    dis0 = van.outputs["discharge_current_limit_a"]
    true_v = van.cells["voltage_v"][10]
    van.set_cell_voltage_offset(11, (Z10.cell_v_min + 0.05) - true_v)
    out = van.outputs
    assert out["cell_v_min_index"] == 11
    assert out["cell_v_min"] == pytest.approx(Z10.cell_v_min + 0.05)
    assert out["discharge_current_limit_a"] == pytest.approx(dis0 / 3.0, rel=1e-6)
    van.set_cell_voltage_offset(11, (Z10.cell_v_min - 0.01) - true_v)
    assert van.outputs["discharge_power_limit_w"] == 0.0
    van.set_cell_voltage_offset(11, 0.0)
    van.set_cell_voltage_offset(70, (Z10.cell_v_max + 0.01) - van.cells["voltage_v"][69])
    assert van.outputs["cell_v_max_index"] == 70 and van.outputs["charge_power_limit_w"] == 0.0


def test_cell_spread_gives_min_max_cells_with_indices() -> None:
    van = Van(Z10, seed=7)
    cells = van.cells
    assert len(cells) == 96
    assert np.std(cells["capacity_as"]) / np.mean(cells["capacity_as"]) == pytest.approx(0.01, rel=0.35)
    assert np.std(cells["r25_ohm"]) / np.mean(cells["r25_ohm"]) == pytest.approx(0.05, rel=0.35)
    ready = ready_van(Z10, gear=3, seed=7)
    out = ready.step(5.0, {"motor_torque_request_nm": 300.0})
    cells = ready.cells
    v = cells["measured_v"]
    assert out["cell_v_min_index"] == int(np.argmin(v)) + 1
    assert out["cell_v_max_index"] == int(np.argmax(v)) + 1
    assert out["cell_v_min"] == v.min() and out["cell_v_max"] > out["cell_v_min"] + 0.005
    assert out["cell_v_avg"] == pytest.approx(v.mean(), rel=1e-12)
    assert out["pack_voltage_v"] == pytest.approx(
        v.sum() - out["pack_current_a"] * Z10.pack_busbar_resistance_ohm, rel=1e-9
    )
    assert not np.array_equal(Van(Z10, seed=8).cells["r25_ohm"], Van(Z10, seed=7).cells["r25_ohm"])


def test_cells_heat_with_current() -> None:
    van = ready_van(Z10, gear=3)
    t0 = van.outputs["cell_t_avg_c"]
    out = van.step(5.0, {"motor_torque_request_nm": 360.0})
    assert out["cell_t_avg_c"] > t0
    assert out["motor_temp_c"] > Z10.initial_ambient_c and out["inverter_temp_c"] > Z10.initial_ambient_c


def test_isolation_state_follows_resistance_per_volt() -> None:
    van = Van(Z10)
    e = van.outputs["pack_ocv_v"]
    assert van.outputs["isolation_state"] == 0
    van.set_isolation_resistance(300.0 * e)
    assert van.outputs["isolation_state"] == 1
    van.set_isolation_resistance(50.0 * e)
    assert van.outputs["isolation_state"] == 2 and van.outputs["isolation_resistance_ohm"] == 50.0 * e


def test_cargo_locks_doors_and_temperatures() -> None:
    p = Z10.with_changes(initial_ambient_c=5.0, compartment_tau_open_s=6.0, compartment_tau_closed_s=180.0)
    van = Van(p)
    van.set_inputs(ambient_c=30.0)
    van.set_compartment(1, door_release=1)
    out = van.step(0.1)
    assert van.compartments["door_open"][0] == 0  # locked: release does nothing
    van.set_compartment(1, lock_request=2, door_release=0)
    van.step(0.25)
    assert van.compartments["lock_state"][0] == 2  # moving
    van.step(0.3)
    assert van.compartments["lock_state"][0] == 0  # unlocked after 0.5 s
    van.set_compartment(1, door_release=1, lock_request=0)
    van.step(0.01)
    assert van.compartments["door_open"][0] == 1
    van.set_compartment(1, lock_request=1, door_release=0)
    van.step(1.0)
    assert van.compartments["lock_state"][0] == 0  # cannot lock an open door
    van.step(6.0)
    comps = van.compartments
    t_s = van.outputs["time_s"]
    assert t_s == pytest.approx(7.66)
    assert comps["temp_c"][0] - 5.0 > 10 * (comps["temp_c"][1] - 5.0)  # open door warms faster
    assert comps["temp_c"][1] == pytest.approx(30.0 - 25.0 * math.exp(-t_s / 180.0), abs=1e-3)
    van.set_compartment(1, door_close=1)
    van.step(1.0)
    comps = van.compartments
    assert comps["door_open"][0] == 0 and comps["lock_state"][0] == 1
    van.force_door_open(3)
    van.step(0.01)
    comps = van.compartments
    assert comps["door_open"][2] == 1 and comps["lock_state"][2] == 1
    van.set_payload([10.0, 20.0, 30.0, 40.0, 50.0, 60.0])
    assert list(van.compartments["weight_kg"]) == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    assert van.outputs["mass_kg"] == Z10.curb_mass_kg + 210.0


def _trajectory(seed: int) -> list[tuple[float, ...]]:
    van = Van(Z10, seed=seed)
    van.set_inputs(hv_request=1, epb_request=2, gear_request=3, steer_enable=1)
    rows = []
    for k in range(250):
        van.step(0.01, {
            "motor_torque_request_nm": 250.0 * math.sin(k / 50.0),
            "steer_angle_request_deg": 90.0 * math.cos(k / 30.0),
            "brake_pressure_request_bar": 5.0 if k % 97 == 0 else 0.0,
        })  # fmt: skip
        o = van.outputs
        rows.append((o["speed_mps"], o["pos_x_m"], o["pos_y_m"], o["soc"], o["cell_v_min"],
                     o["cell_t_max_c"], o["discharge_power_limit_w"]))  # fmt: skip
    return rows


def test_same_seed_same_inputs_bit_identical() -> None:
    a, b = _trajectory(3), _trajectory(3)
    assert a == b
    assert any(r[1] != 0.0 for r in a)
    assert _trajectory(4) != a


_NOJIT_SCRIPT = """
import json, math
from hil.plant.model import Van
from hil.plant.params import VanParams
van = Van(VanParams.load(), seed=5)
van.set_inputs(hv_request=1, epb_request=2, gear_request=3, steer_enable=1, steer_angle_request_deg=120.0)
van.step(1.5)
van.step(1.0, {"motor_torque_request_nm": 300.0})
van.set_compartment(2, lock_request=2)
van.step(0.6, {"brake_pressure_request_bar": 20.0, "motor_torque_request_nm": 0.0})
print(json.dumps(van.outputs.snapshot()))
"""


def test_pure_python_run_matches_the_jit() -> None:
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    res = subprocess.run([sys.executable, "-c", _NOJIT_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    nojit = json.loads(res.stdout)
    ns: dict[str, object] = {}
    code = _NOJIT_SCRIPT.replace("print(json.dumps(van.outputs.snapshot()))", "snap = van.outputs.snapshot()")
    exec(code, ns)  # noqa: S102 - the same script, in-process with the JIT
    jit = ns["snap"]
    assert isinstance(jit, dict) and set(jit) == set(nojit)
    for k, v in jit.items():
        assert nojit[k] == pytest.approx(v, rel=1e-9, abs=1e-9), k
    assert jit["speed_mps"] > 0.0


def test_importing_hil_plant_does_not_import_numba() -> None:
    code = "import sys, hil.plant; print('numba' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("inputs", "needle"),
    [
        ({"torque_nm": 1.0}, "'torque_nm'"),
        ({"motor_torque_request_nm": float("nan")}, "motor_torque_request_nm"),
        ({"motor_torque_request_nm": 900.0}, "[-400.0, 400.0]"),
        ({"gear_request": 5}, "gear_request: expected one of"),
        ({"hv_request": "on"}, "expected a number"),
    ],
)
def test_bad_inputs_are_refused_named_and_counted(inputs: dict[str, object], needle: str) -> None:
    van = Van(Z10)
    before = van.inputs
    with pytest.raises(PlantInputError) as err:
        van.step(0.01, {"brake_pressure_request_bar": 10.0, **inputs})
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert van.rejected_inputs == 1
    assert van.inputs == before  # nothing applied
    with pytest.raises(PlantInputError, match="multiple of"):
        van.step(0.0015)
    with pytest.raises(PlantInputError, match="compartment number"):
        van.set_compartment(7, load_kg=1.0)
    assert van.rejected_inputs == 3


@pytest.mark.parametrize(
    "call",
    [
        lambda v: v.step("0.01"),
        lambda v: v.step(float("inf")),
        lambda v: v.set_inputs(gear_request=float("nan")),
        lambda v: v.set_inputs(hv_request=float("inf")),
        lambda v: v.set_cell_temp_offset(1, "hot"),
        lambda v: v.set_cell_voltage_offset(97, 0.1),
        lambda v: v.set_speed(float("nan")),
        lambda v: v.set_payload([100.0] * 7),
        lambda v: v.set_compartment(1, load_kg=-5.0),
        lambda v: v.set_compartment(1, colour=1),
    ],
)
def test_garbage_at_every_entry_point_is_a_plant_input_error(call) -> None:  # type: ignore[no-untyped-def]
    van = Van(Z10)
    before = van.outputs.snapshot()
    with pytest.raises(PlantInputError):
        call(van)
    assert van.rejected_inputs == 1
    assert van.outputs.snapshot() == before


def test_params_file_documents_every_value_and_refuses_bad_ones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from hil.plant.params import DEFAULT_PARAMS_PATH

    prev = ""
    for line in DEFAULT_PARAMS_PATH.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            assert "#" in line or prev.lstrip().startswith("#"), f"undocumented: {line}"
        prev = line
    with pytest.raises(PlantParamError, match="gear_ratio"):
        Z10.with_changes(gear_ratio=-1.0)
    with pytest.raises(PlantParamError, match="unknown van parameter"):
        Z10.with_changes(warp_drive=1.0)
    bad = tmp_path / "p.toml"
    bad.write_text(DEFAULT_PARAMS_PATH.read_text().replace("wheelbase_m = 3.665", ""))
    with pytest.raises(PlantParamError, match="missing van parameter.*wheelbase_m"):
        VanParams.load(bad)


def test_kernel_module_imports_only_numpy_numba_math() -> None:
    import ast

    import hil.plant._kernels as kernels

    tree = ast.parse(open(kernels.__file__, encoding="utf-8").read())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            assert node.level == 0, "relative import in the kernel module"
            roots.add((node.module or "").split(".")[0])
    assert roots <= {"numpy", "numba", "math"}, roots
