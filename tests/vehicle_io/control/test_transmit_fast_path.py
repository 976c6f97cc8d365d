"""The loop's fast transmit path sends exactly what the general path sends.

Fast path: values built only when the output bytes they depend on changed, the last payload
reused for equal values, GW_Status encoded once per change with its uptime patched in,
:meth:`Gateway.send_payload` and its E2E frame cache. General path (the reference below):
``frames()`` -> ``BatchEncoder.encode_one`` -> ``Gateway.send(can.Message)`` for every due
message. A scripted kernel drives both loops through the same random outputs, inputs, arming,
allowlist gaps and bus failures; frames on the buses, counters, errors, events, E2E counters
and the black box must be identical.
"""

from __future__ import annotations

import math
from typing import Any

import can
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.recording_bus import RecordingBus
from vehicle_io import load_database
from vehicle_io.control import layout as L
from vehicle_io.control.loop import TX_MESSAGES, ControlLoop, control_allowlist
from vehicle_io.errors import TransmitBlocked, VehicleIoError
from vehicle_io.gateway import Gateway, TransmitGate
from vehicle_io.gateway.transmit import AllowedFrame

DB = load_database()
BUSES = ("pt", "body", "ads")
U1_FIELDS = [n for n in L.OUTPUT_DTYPE.names if L.OUTPUT_DTYPE[n] == np.uint8]
F8_FIELDS = [n for n in L.OUTPUT_DTYPE.names if L.OUTPUT_DTYPE[n] == np.float64]
# The inputs GW_VehicleState reads, and the validity of their messages.
INPUT_FIELDS = ["cbc_all_doors_closed", "cbc_all_locked", "vcu_drive_mode", "vcu_gear", "vcu_epb_state",
                "brk_long_accel_mps2", "eps_steer_angle_deg", "brk_yaw_rate_degps", "bms_soc_pct",
                "cbc_payload_kg", "bms_discharge_limit_kw", "bms_charge_limit_kw"]
OK_FIELDS = [f"ok_{m}" for m, _ in L.WATCHED_MESSAGES]

floats = st.one_of(
    st.sampled_from([0.0, -0.0, 0.05, 1.0, 3.3, -12.25, 99.95, 119.9, 400.0, -400.0, 1e6, -1e6,
                     math.nan, math.inf, -math.inf]),
    st.floats(-1000.0, 1000.0, allow_nan=False),
)
# Mostly in range; an out-of-range value (an encode error) holds until a reset clears it.
u1 = st.sampled_from([0, 1, 0, 1, 2, 3, 255])
tick_script = st.fixed_dictionaries({
    "dt_s": st.sampled_from([0.01, 0.01, 0.01, 0.004, 0.013, 0.05]),
    "reset": st.sampled_from([False, False, False, True]),
    "out_u1": st.dictionaries(st.sampled_from(U1_FIELDS), u1, max_size=6),
    "out_f8": st.dictionaries(st.sampled_from(F8_FIELDS), floats, max_size=3),
    "inputs": st.dictionaries(st.sampled_from(INPUT_FIELDS), floats, max_size=3),
    "ok": st.dictionaries(st.sampled_from(OK_FIELDS), st.sampled_from([0.0, 1.0]), max_size=2),
    "toggle_arm": st.one_of(st.none(), st.sampled_from(BUSES)),
    "fail_bus": st.one_of(st.none(), st.none(), st.sampled_from(BUSES)),
})


class ScriptedKernel:
    """Stands in for the control kernel: each step writes the next scripted outputs and inputs."""

    def __init__(self, script: list[dict[str, Any]]) -> None:
        self.script = iter(script)

    def warm_up(self, *args: Any) -> None:
        pass

    def step(self, state: Any, inp: Any, out: Any, thr: Any) -> None:
        tick = next(self.script)
        if tick["reset"]:
            out[...] = np.zeros((), dtype=out.dtype)
        for name, value in tick["out_u1"].items():
            out[name] = value
        for name, value in tick["out_f8"].items():
            out[name] = value
        for name, value in {**tick["inputs"], **tick["ok"]}.items():
            inp[name] = value


class GeneralLoop(ControlLoop):
    """The reference: every due message from frames(), encoded and sent as a can.Message."""

    def _transmit(self, now: float) -> None:
        armed = self.gateway.gate.armed
        due = []
        for name, bus in TX_MESSAGES.items():
            if now + 0.5 * self.period_s >= self._next_send[name]:
                if bus not in armed:
                    self.counters["not_armed"] += 1
                    self._next_send[name] = now + self._cycle_s[name]
                    continue
                due.append(name)
        if not due:
            return
        frames = self.frames()
        for name in due:
            self._next_send[name] = max(self._next_send[name] + self._cycle_s[name], now + 0.5 * self._cycle_s[name])
            message = self._messages[name]
            try:
                payload = self.encoder.encode_one(name, **frames[name])
            except VehicleIoError as err:
                self.counters["encode_error"] += 1
                self.last_error = f"encode {name}: {err}"
                continue
            is_fd = message.length > 8
            msg = can.Message(arbitration_id=int(message.frame_id), is_extended_id=bool(message.is_extended_frame),
                              data=payload, is_fd=is_fd, bitrate_switch=is_fd, check=False)
            try:
                self.gateway.send(TX_MESSAGES[name], msg)
            except TransmitBlocked as err:
                self.counters["blocked"] += 1
                self.last_error = f"send {name}: {err}"
            except can.CanError as err:
                self.counters["send_error"] += 1
                self.last_error = f"send {name}: {err}"
            else:
                self.counters["sent"] += 1


def _frame(m: can.Message) -> tuple[Any, ...]:
    return (m.channel, m.arbitration_id, m.is_extended_id, m.is_fd, m.bitrate_switch, m.is_remote_frame,
            m.error_state_indicator, m.dlc, bytes(m.data), m.is_rx)


def _run(cls: type[ControlLoop], script: list[dict[str, Any]], dropped: frozenset[str]) -> dict[str, Any]:
    allow = [a for a in control_allowlist(DB) if DB.get_message_by_frame_id(a.frame_id).name not in dropped]
    if "GW_Status" in dropped:  # on the list with a wrong length: blocked as not allowed
        m = DB.get_message_by_name("GW_Status")
        allow.append(AllowedFrame(int(m.frame_id), "ads", 8, False))
    buses = {b: RecordingBus(b) for b in BUSES}
    clock = [500.0]
    gate = TransmitGate(allow, armed=BUSES)
    gw = Gateway(buses, DB, clock=lambda: clock[0], transmit_gate=gate, start=False)
    try:
        loop = cls(gw, clock=lambda: clock[0])
        loop._k = ScriptedKernel(script)
        for tick in script:
            clock[0] += tick["dt_s"]
            if tick["toggle_arm"] is not None:
                bus = tick["toggle_arm"]
                gate.disarm(bus) if gate.is_armed(bus) else gate.arm(bus)
            for name, bus in buses.items():
                bus.failing = name == tick["fail_bus"]
            loop.tick()
        return {
            "sent": {b: [_frame(m) for m in bus.sent] for b, bus in buses.items()},
            "counters": dict(loop.counters), "last_error": loop.last_error, "events": loop.event_dicts(),
            "gate": gate.counters(), "e2e_counters": dict(gw._tx_counter),
            "blackbox": [_frame(m) for m in gw.blackbox.frames()],  # timestamps: wall clock
            "outputs": loop.outputs.tobytes(),
        }
    finally:
        gw.shutdown()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=st.lists(tick_script, min_size=1, max_size=40),
       dropped=st.frozensets(st.sampled_from(sorted(TX_MESSAGES)), max_size=2))
def test_fast_transmit_equals_the_general_path(script: list[dict[str, Any]], dropped: frozenset[str]) -> None:
    fast = _run(ControlLoop, script, dropped)
    general = _run(GeneralLoop, script, dropped)
    assert fast == general


def test_a_long_quiet_run_and_changes_match_the_general_path() -> None:
    """Mostly unchanged outputs (the cache hits), then every field changing, over all 15 counters."""
    rng = np.random.default_rng(4)
    script: list[dict[str, Any]] = []
    for k in range(300):
        tick: dict[str, Any] = {"dt_s": 0.01, "reset": False, "out_u1": {}, "out_f8": {}, "inputs": {}, "ok": {},
                                "toggle_arm": None, "fail_bus": None}
        if k % 37 == 0:
            tick["out_u1"] = {n: int(rng.integers(0, 2)) for n in U1_FIELDS}
            tick["out_f8"] = {n: float(rng.uniform(-50, 50)) for n in F8_FIELDS}
        if k % 3 == 0:
            tick["inputs"] = {n: float(rng.uniform(0, 5)) for n in INPUT_FIELDS}
            tick["ok"] = dict.fromkeys(OK_FIELDS, 1.0)
        script.append(tick)
    fast = _run(ControlLoop, script, frozenset())
    general = _run(GeneralLoop, script, frozenset())
    assert fast["counters"]["sent"] > 1000
    assert fast == general


def _quiet_tick(**changes: Any) -> dict[str, Any]:
    tick: dict[str, Any] = {"dt_s": 0.01, "reset": False, "out_u1": {}, "out_f8": {}, "inputs": {}, "ok": {},
                            "toggle_arm": None, "fail_bus": None}
    tick.update(changes)
    return tick


def test_every_output_field_alone_reaches_the_bus_as_in_the_general_path() -> None:
    """One output field changes while the others hold: the fast path's change test must see it."""
    base_u1 = dict.fromkeys(U1_FIELDS, 0)
    base_f8 = {n: 1.5 for n in F8_FIELDS}
    for field in U1_FIELDS + F8_FIELDS:
        new = {"out_u1": {field: 1}} if field in base_u1 else {"out_f8": {field: 7.25}}
        script = [_quiet_tick(out_u1=base_u1, out_f8=base_f8), *(_quiet_tick() for _ in range(5)),
                  _quiet_tick(**new), *(_quiet_tick() for _ in range(5))]
        fast = _run(ControlLoop, script, frozenset())
        general = _run(GeneralLoop, script, frozenset())
        assert fast == general, field


@pytest.mark.parametrize("fast_encode", [True, False])
def test_encode_through_the_scalar_encoders_or_encode_one_alike(
    fast_encode: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ControlLoop._encode: the messages' straight-line encoders called with the values dict,
    or (switched off) encode_one with keywords: both send what the general path sends,
    including values the straight-line encoder declines (NaN, out of range)."""
    import vehicle_io.control.loop as loop_mod

    monkeypatch.setattr(loop_mod, "_FAST_ENCODE", fast_encode)
    rng = np.random.default_rng(11)
    script: list[dict[str, Any]] = []
    for k in range(120):
        tick = _quiet_tick(out_f8={n: float(rng.uniform(-500, 500)) for n in F8_FIELDS},
                           inputs={n: float(rng.uniform(-5, 300)) for n in INPUT_FIELDS})
        if k % 5 == 0:
            tick["out_u1"] = {n: int(rng.integers(0, 4)) for n in U1_FIELDS}
            tick["ok"] = dict.fromkeys(OK_FIELDS, float(k % 10 == 0))
        if k % 17 == 0:
            tick["out_f8"]["torque_nm"] = math.nan
        if k % 29 == 0:
            tick["reset"] = True
        script.append(tick)
    fast = _run(ControlLoop, script, frozenset())
    general = _run(GeneralLoop, script, frozenset())
    assert fast["counters"]["sent"] > 100 and fast["counters"]["encode_error"] > 0
    assert fast == general
