"""Deliberate mutations: the suite fails if an interlock is removed.

For each interlock of docs/interlocks.md, a copy of the kernel source gets one small edit
that disables exactly that interlock (matched by exact text, found exactly once, so a
refactored kernel breaks this test loudly instead of silently testing nothing). The copy is
loaded as a pure-Python module (``njit`` replaced by the identity, which is what
``NUMBA_DISABLE_JIT=1`` does; the real module and the numba cache are untouched) and put in
place of ``vehicle_io.control._kernels`` for the existing property and boundary checks
(the stateful machine's per-tick properties driven by a targeted input sequence, the
capability classes' sweeps). Each check must pass on the unmutated copy and fail on the
mutant.
"""

from __future__ import annotations

import importlib.util
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import test_control_interlocks as ti
import test_control_stateful as ts
from ctl_helpers import Harness

import vehicle_io.control
from vehicle_io.control import layout as L

THR = L.Thresholds()
_SPEC = importlib.util.find_spec("vehicle_io.control._kernels")
assert _SPEC is not None and _SPEC.origin is not None
KERNEL_PATH = Path(_SPEC.origin)

NUMBA_IMPORT = "from numba import njit\n"
IDENTITY_NJIT = '''\
def njit(*args, **kwargs):
    """NUMBA_DISABLE_JIT semantics: the decorated function itself."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda func: func
'''


def replace_once(source: str, old: str, new: str, what: str) -> str:
    count = source.count(old)
    if count != 1:
        raise AssertionError(f"{what}: expected the text {old!r} exactly once in {KERNEL_PATH.name}, "
                             f"but found it {count} times (kernel refactored? update the mutation)")
    return source.replace(old, new)


def load_kernel(name: str, old: str | None = None, new: str | None = None) -> types.ModuleType:
    """The kernel source (optionally with ``old`` -> ``new``) as a fresh pure-Python module."""
    source = replace_once(KERNEL_PATH.read_text(encoding="utf-8"), NUMBA_IMPORT, IDENTITY_NJIT, "numba import")
    if old is not None and new is not None:
        source = replace_once(source, old, new, name)
    module = types.ModuleType(f"_kernels_mutant_{name}")
    module.__file__ = str(KERNEL_PATH)
    exec(compile(source, f"{KERNEL_PATH} [{name}]", "exec"), module.__dict__)  # noqa: S102 - our own source
    return module


# ---------------------------------------------------------------- checks (existing properties)
def machine(engage: bool = True) -> ts.ControlKernelMachine:
    """The stateful test's machine, driven by hand: every tick checks all its properties."""
    m = ts.ControlKernelMachine()
    m.setup(engage=engage)
    return m


def seq_door_open_at_standstill() -> None:
    m = machine()
    m.longitudinal_request(speed=5.0, accel=1.0)
    m.door(door=2, open_=True, lock=0)
    m.tick(n=8)


def seq_estop_braking() -> None:
    m = machine()
    m.speed(speed=8.0, motor_off=0.0)
    m.estop(source="estop_remote", on=True)
    m.tick(n=2)


def seq_stale_inputs_at_standstill() -> None:
    for message, kind in (("adc_heartbeat", "timeout"), ("adc_command", "e2e"), ("eps_status", "timeout")):
        m = machine()
        m.longitudinal_request(speed=5.0, accel=1.0)
        m.tick(n=3)
        m.validity(message=message, kind=kind)
        m.tick(n=3)


def cruising_machine() -> ts.ControlKernelMachine:
    """Engaged and cruising at 8 m/s (the target): about 0 Nm asked of the MCU."""
    m = machine()
    m.speed(speed=8.0, motor_off=0.0)
    m.longitudinal_request(speed=8.0, accel=0.0)
    m.tick(n=2)
    return m


def seq_actuator_refuses(signal: str) -> Callable[[], None]:
    def run() -> None:
        m = cruising_machine()
        m.actuators(**{"eps_active": signal != "eps_control_active", "mcu_enabled": signal != "mcu_torque_enabled"})
        for _ in range(int(THR.actuator_response_s / 0.01) + 5):
            m.tick(n=1)
    return run


def seq_actuator_misreports(rule: str) -> Callable[[], None]:
    def run() -> None:
        m = cruising_machine()
        if rule == "mcu_torque":
            m.mcu_torque(torque=300.0)
        else:
            m.longitudinal_request(speed=0.0, accel=-3.0)
            m.brake_report(pressure=0.0, abs_active=False)
        for _ in range(3 * int(THR.actuator_response_s / 0.01)):
            m.tick(n=1)
    return run


def seq_discharge_limit() -> None:
    m = machine()
    m.battery(vmax=3.9, vmin=3.8, tmax=30.0, iso=5000.0, dis=3.0, chg=50.0)
    m.longitudinal_request(speed=20.0, accel=2.0)
    m.tick(n=8)
    m.tick(n=8)


def seq_torque_rate() -> None:
    # The jerk limit keeps a plain ramp below the torque rate; a discharge limit lifted while
    # the acceleration command is already high asks for a torque step.
    m = machine()
    m.battery(vmax=3.9, vmin=3.8, tmax=30.0, iso=5000.0, dis=0.0, chg=50.0)
    m.longitudinal_request(speed=20.0, accel=2.0)
    for _ in range(6):
        m.tick(n=8)
    m.battery(vmax=3.9, vmin=3.8, tmax=30.0, iso=5000.0, dis=300.0, chg=50.0)
    m.tick(n=3)


def seq_steer_rate(speed_mps: float) -> Callable[[], None]:
    def seq() -> None:
        m = machine(engage=False)
        m.h.moving(speed_mps)
        m._remember()
        m.steer_request(angle=400.0, rate=0.0)
        m.tick(n=3)

    seq.__name__ = f"seq_steer_rate_{speed_mps:g}mps"
    return seq


def seq_unlock_while_moving() -> None:
    m = machine()
    m.speed(speed=5.0, motor_off=0.0)
    m.gear(gear=0, actual=0, epb=0, epb_state=0)
    m.cargo(compartment=3, request=2)
    m.tick(n=2)


def seq_unlock_in_drive() -> None:
    m = machine()
    m.cargo(compartment=1, request=2)
    m.tick(n=2)


def cls_check(cls: type, method: str, *args: object) -> Callable[[], None]:
    """An existing test method (capability class) as a check."""
    def check() -> None:
        getattr(cls(), method)(*args)

    check.__name__ = f"{cls.__name__}.{method}{args if args else ''}"
    return check


def fn_check(fn: Callable[..., None], *args: object) -> Callable[[], None]:
    def check() -> None:
        fn(*args)

    check.__name__ = f"{fn.__name__}{args if args else ''}"
    return check


BELOW_GEAR_BRAKE = max(v for v in ti.sweep_values(THR.gear_brake_bar) if v < THR.gear_brake_bar)
ABOVE_RATED = min(v for v in ti.sweep_values(THR.rated_payload_kg) if v > THR.rated_payload_kg)


@dataclass(frozen=True)
class Mutation:
    name: str  # the interlock it removes
    old: str
    new: str
    checks: tuple[Callable[[], None], ...]


MUTATIONS = (
    Mutation("door_open_no_propulsion",
             "propulsion_ok = (engaged and not door_ilk and not gear_mismatch",
             "propulsion_ok = (engaged and not gear_mismatch",
             (seq_door_open_at_standstill,
              fn_check(ti.test_no_propulsion_from_standstill, {"cbc_fault_level": 2}, "door_open"))),
    Mutation("door_open_controlled_stop_when_moving",
             "if door_ilk and not standstill and",
             "if False and door_ilk and not standstill and",
             (cls_check(ti.TestDoorOpenAtSpeed, "test_bounded_stop"),
              cls_check(ti.TestBodyTimeout, "test_bounded_stop"))),
    Mutation("estop_latched",
             '    if estop_now:\n        s["lat_estop"] = 1\n',
             '    s["lat_estop"] = 1 if estop_now else 0\n',
             (cls_check(ti.TestEStop, "test_latched_full_braking_reset_only_at_standstill", "estop_physical"),)),
    Mutation("estop_full_braking",
             '    if s["lat_estop"] == 1:\n        pressure = k["full_brake_bar"]\n',
             '    if False:\n        pressure = k["full_brake_bar"]\n',
             (seq_estop_braking,
              cls_check(ti.TestEStop, "test_latched_full_braking_reset_only_at_standstill", "adc_estop"))),
    Mutation("latched_fault_reset_only_at_standstill",
             "if reset_edge and standstill:",
             "if reset_edge:",
             (cls_check(ti.TestEStop, "test_latched_full_braking_reset_only_at_standstill", "estop_remote"),
              cls_check(ti.TestPlausibility, "test_needs_persistence_then_latches"))),
    Mutation("heartbeat_e2e_safe_stop",
             'if s["responsible"] == 1 and not standstill and (stop_cause or s["engaged"] == 0):',
             'if False and s["responsible"] == 1 and not standstill and (stop_cause or s["engaged"] == 0):',
             (cls_check(ti.TestHeartbeatTimeout, "test_bounded_stop"),
              cls_check(ti.TestCommandE2E, "test_bounded_stop"),
              cls_check(ti.TestPtTimeout, "test_bounded_stop"))),
    Mutation("stale_inputs_default_deny",
             'if (stop_cause or s["lat_estop"] == 1 or s["lat_plaus"] == 1',
             'if (s["lat_estop"] == 1 or s["lat_plaus"] == 1',
             (seq_stale_inputs_at_standstill,)),
    Mutation("bms_discharge_limit",
             "t_mot_cap = min(t_mot_cap, p_dis_w / w)",
             "t_mot_cap = min(t_mot_cap, 1.0e9)",
             (seq_discharge_limit,
              cls_check(ti.TestPowerLimits, "test_drive_torque_within_discharge_limit", 20.0))),
    Mutation("bms_charge_limit",
             "t_reg_cap = min(t_reg_cap, p_chg_w / w)",
             "t_reg_cap = min(t_reg_cap, 1.0e9)",
             (cls_check(ti.TestPowerLimits, "test_regen_within_charge_limit", 5.0),)),
    Mutation("overload_no_drive_away",
             "not overspeed and not (overload and standstill)",
             "not overspeed",
             (cls_check(ti.TestPayload, "test_no_drive_away_above_rated", ABOVE_RATED),)),
    Mutation("gear_change_only_at_standstill",
             "if gear_change_wanted and standstill and brake_held:",
             "if gear_change_wanted and brake_held:",
             (cls_check(ti.TestGearChangeAtStandstill, "test_sweep"),)),
    Mutation("gear_change_only_with_brake_held",
             "if gear_change_wanted and standstill and brake_held:",
             "if gear_change_wanted and standstill:",
             (cls_check(ti.TestGearChangeAtStandstill, "test_only_with_brake_held", BELOW_GEAR_BRAKE),)),
    Mutation("speed_limit",
             'overspeed = speed_known and speed > v_lim + k["overspeed_margin_mps"]',
             "overspeed = False",
             (cls_check(ti.TestPayload, "test_speed_limit_scales_with_payload", 0.0),
              cls_check(ti.TestPayload, "test_speed_limit_scales_with_payload", 1500.0))),
    Mutation("torque_rate_limit",
             "    if abs(torque) > abs(t_prev):\n",
             "    if False:\n",
             (seq_torque_rate, fn_check(ti.test_torque_rate_limited))),
    Mutation("steering_rate_limit",
             's["steer_deg"] = s["steer_deg"] + _clamp(delta, -d_max, d_max)',
             's["steer_deg"] = s["steer_deg"] + delta',
             (seq_steer_rate(10.0), cls_check(ti.TestSteering, "test_rate_limit_falls_with_speed"))),
    Mutation("steering_rate_falls_with_speed",
             "rate = steer_rate_limit_degps(speed, thr)",
             "rate = steer_rate_limit_degps(0.0, thr)",
             (seq_steer_rate(20.0), cls_check(ti.TestSteering, "test_rate_limit_falls_with_speed"))),
    Mutation("steering_angle_limit",
             "if req > lim or req < -lim:",
             "if False:",
             (cls_check(ti.TestSteering, "test_angle_clamped", THR.steer_angle_max_deg * 1.03),)),
    Mutation("unlock_only_at_standstill",
             "unlock_ok = standstill and gear_act == 0 and body_ok",
             "unlock_ok = gear_act == 0 and body_ok",
             (seq_unlock_while_moving, cls_check(ti.TestUnlockAtStandstillInP, "test_sweep"))),
    Mutation("unlock_only_in_p",
             "unlock_ok = standstill and gear_act == 0 and body_ok",
             "unlock_ok = standstill and body_ok",
             (seq_unlock_in_drive, cls_check(ti.TestUnlockAtStandstillInP, "test_not_in_other_gears", 3))),
    Mutation("cell_overvoltage_fault_threshold",
             'vmax >= k["cell_ov_fault_v"]',
             'vmax > k["cell_ov_fault_v"]',
             (cls_check(ti.TestCellOvFault, "test_sweep"),)),
    Mutation("contactors_open_at_standstill_unless_critical",
             '(s["lat_bms_fault"] == 1 and standstill)',
             '(s["lat_bms_fault"] == 1)',
             (cls_check(ti.TestCellOtFault, "test_controlled_stop_then_contactors_open_at_standstill"),)),
    Mutation("speed_plausibility",
             '        if s["plaus_timer_s"] >= k["plaus_time_s"]:\n            s["lat_plaus"] = 1\n',
             '        if False:\n            s["lat_plaus"] = 1\n',
             (cls_check(ti.TestPlausibility, "test_needs_persistence_then_latches"),)),
    Mutation("eps_must_follow",
             'if s["eps_refuse_s"] >= k["actuator_response_s"] or ',
             'if ',
             (seq_actuator_refuses("eps_control_active"),
              cls_check(ti.TestActuatorResponse, "test_refusal_needs_persistence_then_latches",
                        "eps_control_active"))),
    Mutation("torque_must_follow",
             '    if s["torque_excess_s"] >= k["actuator_response_s"]:\n        s["lat_actuator"] = 1\n',
             '    if False:\n        s["lat_actuator"] = 1\n',
             (seq_actuator_misreports("mcu_torque"),
              cls_check(ti.TestTorqueFollows, "test_needs_persistence_then_latches_and_stops"))),
    Mutation("brake_must_follow",
             '    if s["brake_deficit_s"] >= k["actuator_response_s"]:\n        s["lat_actuator"] = 1\n',
             '    if False:\n        s["lat_actuator"] = 1\n',
             (seq_actuator_misreports("brake_report"),
              cls_check(ti.TestBrakeFollows, "test_needs_persistence_then_latches"))),
    Mutation("runaway_torque_opens_contactors",
             '    if s["torque_excess_s"] >= 2.0 * k["actuator_response_s"]:\n        s["lat_hv_open"] = 1\n',
             '    if False:\n        s["lat_hv_open"] = 1\n',
             (cls_check(ti.TestTorqueFollows, "test_torque_that_outlives_the_trip_opens_the_contactors"),)),
    Mutation("mcu_must_follow",
             ' or s["mcu_refuse_s"] >= k["actuator_response_s"]:',
             ':',
             (seq_actuator_refuses("mcu_torque_enabled"),
              cls_check(ti.TestActuatorResponse, "test_refusal_needs_persistence_then_latches",
                        "mcu_torque_enabled"))),
)


@pytest.fixture(scope="module")
def original() -> types.ModuleType:
    return load_kernel("original")


def use_kernel(monkeypatch: pytest.MonkeyPatch, module: types.ModuleType) -> None:
    # Harness and the stateful machine take the kernel as ``from vehicle_io.control import _kernels``.
    import vehicle_io.control._kernels  # noqa: F401 - the attribute must exist to be replaced

    monkeypatch.setattr(vehicle_io.control, "_kernels", module)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_removing_the_interlock_fails_its_checks(mutation: Mutation, original: types.ModuleType,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    mutant = load_kernel(mutation.name, mutation.old, mutation.new)
    missed = []
    for check in mutation.checks:
        use_kernel(monkeypatch, original)
        check()  # passes on the unmutated kernel
        use_kernel(monkeypatch, mutant)
        try:
            check()
        except AssertionError:
            continue
        missed.append(check.__name__)
    assert not missed, f"interlock {mutation.name} removed, but these checks still pass: {missed}"


def test_every_mutation_is_a_different_edit() -> None:
    assert len({(m.old, m.new) for m in MUTATIONS}) == len(MUTATIONS)
    assert all(m.old != m.new and m.checks for m in MUTATIONS)


def test_pure_python_copy_matches_the_kernel(original: types.ModuleType) -> None:
    """The loading mechanism is faithful: the unmutated copy computes what the real kernel does."""
    from vehicle_io.control import _kernels

    runs = []
    for kernel in (_kernels, original):
        h = Harness()
        h.k = kernel
        rows = []
        h.engage()
        h.set(adc_target_speed_mps=8.0, adc_target_accel_mps2=1.5, adc_steer_angle_deg=90.0)
        for k in range(60):
            h.set_speed(min(0.05 * k, 3.0))
            if k == 30:
                h.set(cbc_door_open2=1, cbc_all_doors_closed=0)
            if k == 45:
                h.set(estop_remote=1)
            y = h.step()
            rows.append([float(y[n]) for n in y.dtype.names])
        runs.append(np.array(rows))
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-12, atol=1e-12)
    names = list(L.OUTPUT_DTYPE.names)
    assert runs[0][:, names.index("torque_nm")].max() > 0.0
    assert runs[0][:, names.index("ilk_door_open")].any() and runs[0][:, names.index("estop_active")].any()
