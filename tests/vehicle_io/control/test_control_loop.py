"""The control loop wrapper on a real Gateway: snapshot -> inputs, default deny, allowlist,
E2E on commands, events into GW_Status, the real-time runner with an injected clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import can
import numpy as np
import pytest

from ctl_helpers import NOMINAL, Harness

from vehicle_io.control import layout as L
from vehicle_io.e2e import E2ESpec, crc8_sae_j1850, e2e_crc, protect
from vehicle_io.errors import TransmitBlocked

BUSES = ("pt", "body", "ads")


class FakeClock:
    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def sleep(self, dt_s: float) -> None:
        self.now_s += max(dt_s, 0.0)


@pytest.fixture(scope="module")
def db():
    from vehicle_io import load_database

    return load_database()


@pytest.fixture
def rig(db) -> Iterator[dict]:
    """A gateway on three virtual buses (injected clock) and a listener bus per channel."""
    from vehicle_io.control.loop import control_allowlist
    from vehicle_io.gateway import Gateway, TransmitGate

    tag = uuid.uuid4().hex
    buses = {b: can.Bus(interface="virtual", channel=f"ctl-{tag}-{b}") for b in BUSES}
    probes = {b: can.Bus(interface="virtual", channel=f"ctl-{tag}-{b}") for b in BUSES}
    clock = FakeClock()
    gate = TransmitGate(control_allowlist(db))
    gw = Gateway(buses, db, clock=clock, transmit_gate=gate, start=False)
    try:
        yield {"gw": gw, "clock": clock, "gate": gate, "probes": probes, "db": db}
    finally:
        gw.shutdown()
        for bus in (*buses.values(), *probes.values()):
            bus.shutdown()


class RestBus:
    """Sends every watched input message with the nominal values, E2E protected."""

    def __init__(self, gw, db) -> None:
        self.gw, self.db = gw, db
        self.values = dict(NOMINAL)
        self.counter: dict[str, int] = {}
        self.silent: set[str] = set()
        self.corrupt: set[str] = set()
        from vehicle_io.codec import BatchEncoder

        self.enc = BatchEncoder(db)
        self.signal_of = dict(L.INPUT_SIGNALS)

    def frames(self) -> None:
        by_bus: dict[str, list[tuple[int, bytes]]] = {}
        for _, name in L.WATCHED_MESSAGES:
            if name in self.silent:
                continue
            m = self.db.get_message_by_name(name)
            sig = {s.name: max(s.minimum or 0, 0) for s in m.signals}
            for field, signal in L.INPUT_SIGNALS:
                if signal in sig:
                    sig[signal] = self.values.get(field, 0)
            payload = self.enc.encode_one(name, **sig)
            spec = E2ESpec.from_message(m)
            if spec is not None:
                c = self.counter.get(name, 0)
                payload = bytes(protect(spec, payload, c))
                self.counter[name] = (c + 1) % 15
                if name in self.corrupt:
                    payload = bytes([payload[0] ^ 0xFF]) + payload[1:]
            by_bus.setdefault(m.bus_name, []).append((m.frame_id, payload))
        for bus, rows in by_bus.items():
            data = np.zeros((len(rows), 64), dtype=np.uint8)
            for i, (_, p) in enumerate(rows):
                data[i, : len(p)] = np.frombuffer(p, dtype=np.uint8)
            self.gw.process_batch(bus, np.array([r[0] for r in rows], dtype=np.uint32), data,
                                  np.array([len(p) for _, p in rows], dtype=np.uint8))


def make_loop(rig, **kw):
    from vehicle_io.control.loop import ControlLoop

    return ControlLoop(rig["gw"], clock=rig["clock"], **kw)


def run(rig, loop, rest: RestBus, ticks: int) -> None:
    for _ in range(ticks):
        rig["clock"].sleep(0.01)
        rest.frames()
        loop.tick()


def drain(bus: can.BusABC) -> list[can.Message]:
    out = []
    while (msg := bus.recv(timeout=0)) is not None:
        out.append(msg)
    return out


def test_inputs_come_from_the_snapshot(rig) -> None:
    loop = make_loop(rig)
    rest = RestBus(rig["gw"], rig["db"])
    rest.values.update(cbc_payload_kg=812.5, bms_cell_t_max_degc=33.0, adc_steer_angle_deg=-12.5)
    run(rig, loop, rest, 10)
    u = loop.inputs[0]
    assert u["cbc_payload_kg"] == 812.5 and u["bms_cell_t_max_degc"] == 33.0 and u["adc_steer_angle_deg"] == -12.5
    for m, _ in L.WATCHED_MESSAGES:
        assert u[f"ok_{m}"] == 1.0 and u[f"to_{m}"] == 0.0, m
    assert loop.outputs[0]["control_allowed"] == 1  # nominal rest bus: engaged on the request edge


def test_stale_and_corrupted_inputs_reach_the_kernel(rig) -> None:
    loop = make_loop(rig)
    rest = RestBus(rig["gw"], rig["db"])
    run(rig, loop, rest, 10)
    rest.silent.add("ADC_Heartbeat")
    rest.corrupt.add("EPS_Status")
    run(rig, loop, rest, 40)
    u = loop.inputs[0]
    assert u["to_adc_heartbeat"] == 1.0 and u["ok_adc_heartbeat"] == 0.0
    assert u["ok_eps_status"] == 0.0
    active = loop.active_interlocks()
    # rejected frames never refresh the store: E2E invalid first, then stale
    assert "ILK_ADC_TIMEOUT" in active and ("ILK_PT_E2E" in active or "ILK_PT_TIMEOUT" in active)
    y = loop.outputs[0]
    assert y["control_allowed"] == 0 and y["torque_nm"] == 0.0 and y["steer_enable"] == 0


@pytest.mark.parametrize(("message", "field", "value"), [
    ("BMS_CellTempStats", "bms_cell_t_max_degc", 75.0),
    ("BMS_CellVoltageStats", "bms_cell_v_max", 4.0),
])
def test_cell_statistics_are_acted_on_only_when_e2e_valid(rig, message, field, value) -> None:
    """The battery interlocks' inputs carry counter and CRC like every other interlock input: a
    corrupted frame is neither trusted for a fault nor for healthy cells; it degrades."""
    loop = make_loop(rig)
    rest = RestBus(rig["gw"], rig["db"])
    run(rig, loop, rest, 10)
    assert loop.outputs[0]["control_allowed"] == 1
    m = rig["db"].get_message_by_name(message)
    assert E2ESpec.from_message(m) is not None, f"{message} must be Z10-P1 protected"
    rest.corrupt.add(message)
    rest.values[field] = value
    run(rig, loop, rest, 30)
    suffix = dict((name, key) for key, name in L.WATCHED_MESSAGES)[message]
    assert loop.inputs[0][f"ok_{suffix}"] == 0.0
    active = loop.active_interlocks()
    assert "ILK_DEGRADED" in active and "ILK_BMS_FAULT" not in active and "ILK_BATTERY_DERATE" not in active
    rest.corrupt.discard(message)
    run(rig, loop, rest, 5)
    assert loop.inputs[0][f"ok_{suffix}"] == 1.0
    assert loop.inputs[0][field] == value


def _armed_and_engaged(rig, db):
    """Every bus armed, the nominal rest bus for 10 ticks: engaged (the loop and its rest bus)."""
    for bus in BUSES:
        rig["gate"].arm(bus)
    loop = make_loop(rig)
    rest = RestBus(rig["gw"], rig["db"])
    run(rig, loop, rest, 10)
    assert loop.outputs[0]["control_allowed"] == 1
    return loop, rest


def test_a_stall_of_the_loop_is_not_every_ecu_falling_silent(rig, db) -> None:
    """The loop (and the receive path of its process) held up for 60 ms: the frames sent
    meanwhile are processed after the first late tick. That tick must not read as every
    message timing out (a safe stop on a busy bench PC); the next one on time sees them."""
    loop, rest = _armed_and_engaged(rig, db)
    rig["clock"].sleep(0.06)  # held up: nothing received, nothing ticked
    loop.tick()
    assert loop.counters["stalls"] == 1
    u = loop.inputs[0]
    assert all(u[f"to_{m}"] == 0.0 and u[f"ok_{m}"] == 1.0 for m, _ in L.WATCHED_MESSAGES)
    assert loop.active_interlocks() == [] and loop.outputs[0]["control_allowed"] == 1
    rest.frames()  # the backlog arrives
    run(rig, loop, rest, 3)
    assert loop.active_interlocks() == [] and loop.outputs[0]["control_allowed"] == 1
    assert loop.counters["stalls"] == 1


def test_after_a_stall_a_silent_sender_is_still_seen_one_tick_later(rig, db) -> None:
    loop, rest = _armed_and_engaged(rig, db)
    rest.silent.add("EPS_Status")
    rig["clock"].sleep(0.06)
    rest.frames()  # everything but EPS_Status arrives during the stall
    loop.tick()
    assert loop.inputs[0]["to_eps_status"] == 0.0  # judged one period after the last tick
    run(rig, loop, rest, 1)  # on time again: 70 ms without EPS_Status > 3 x 10 ms
    assert loop.inputs[0]["to_eps_status"] == 1.0
    assert "ILK_PT_TIMEOUT" in loop.active_interlocks() and loop.outputs[0]["control_allowed"] == 0


def test_ticks_on_time_judge_staleness_at_their_own_time(rig, db) -> None:
    loop, rest = _armed_and_engaged(rig, db)
    rest.silent.add("EPS_Status")
    ticks = 0
    while loop.inputs[0]["to_eps_status"] == 0.0 and ticks < 10:
        run(rig, loop, rest, 1)
        ticks += 1
    # stale after 3 cycles of 10 ms: the 4th tick without the frame (30 ms < 40 ms)
    assert ticks == 4 and loop.counters["stalls"] == 0


def test_default_deny_nothing_leaves_unarmed(rig) -> None:
    loop = make_loop(rig)
    rest = RestBus(rig["gw"], rig["db"])
    run(rig, loop, rest, 20)
    for bus in rig["probes"].values():
        assert drain(bus) == []
    assert loop.counters["sent"] == 0 and loop.counters["not_armed"] > 0
    assert rig["gw"].gate.counters() == {}
    assert loop.frames()["GW_Status"]["GW_State"] == L.GW_STATE_LISTEN_ONLY


def test_only_armed_buses_transmit_with_e2e(rig, db) -> None:
    rig["gate"].arm("pt")
    loop = make_loop(rig)
    rest = RestBus(rig["gw"], rig["db"])
    run(rig, loop, rest, 10)
    assert drain(rig["probes"]["body"]) == [] and drain(rig["probes"]["ads"]) == []
    frames = drain(rig["probes"]["pt"])
    names = [db.get_message_by_frame_id(f.arbitration_id).name for f in frames]
    assert set(names) == {"GW_DriveCommand", "GW_BrakeCommand", "GW_SteerCommand"}
    assert names.count("GW_DriveCommand") == 10  # 10 ms cycle, 10 ticks
    counters = []
    for f in frames:
        m = db.get_message_by_frame_id(f.arbitration_id)
        if m.name != "GW_DriveCommand":
            continue
        data = bytes(f.data)
        data_id = int(m.dbc.attributes["E2E_DataID"].value)
        assert data[0] == e2e_crc(data_id, data[1:])
        counters.append(data[1] & 0x0F)
    assert counters == list(range(10))
    assert crc8_sae_j1850(b"123456789") == 0x4B


def test_allowlist_blocks_every_other_id(rig, db) -> None:
    from vehicle_io.control.loop import TX_MESSAGES, control_allowlist

    gw = rig["gw"]
    for bus in BUSES:
        rig["gate"].arm(bus)
    allowed = {(a.frame_id, a.bus, a.length) for a in control_allowlist(db)}
    assert len(allowed) == len(TX_MESSAGES)
    sent = blocked = 0
    for bus in BUSES:
        for frame_id in range(0x800):
            length = 64 if bus == "ads" else 8
            msg = can.Message(arbitration_id=frame_id, is_extended_id=False, data=bytes(length),
                              is_fd=length > 8, check=False)
            if (frame_id, bus, length) in allowed:
                gw.send(bus, msg)
                sent += 1
                # the right id with any other length is blocked too
                short = can.Message(arbitration_id=frame_id, data=bytes(7), check=False)
                with pytest.raises(TransmitBlocked):
                    gw.send(bus, short)
                continue
            with pytest.raises(TransmitBlocked):
                gw.send(bus, msg)
            blocked += 1
        for frame_id in (0x80, 0x82, 0x60, 0x18FF0000, 0x1FFFFFFF):  # extended ids: never allowed
            with pytest.raises(TransmitBlocked):
                gw.send(bus, can.Message(arbitration_id=frame_id, is_extended_id=True, data=bytes(8)))
    assert sent == len(TX_MESSAGES)
    assert blocked == 3 * 0x800 - len(TX_MESSAGES)
    rx = sum(len(drain(p)) for p in rig["probes"].values())
    assert rx == sent


def test_events_and_gw_status_bits(rig, db, tmp_path) -> None:
    for bus in BUSES:
        rig["gate"].arm(bus)
    loop = make_loop(rig, blackbox_dir=tmp_path)
    rest = RestBus(rig["gw"], rig["db"])
    run(rig, loop, rest, 10)
    assert loop.active_interlocks() == []
    drain(rig["probes"]["ads"])
    t_change = rig["clock"]()
    rest.values.update(cbc_door_open2=1, cbc_all_doors_closed=0)
    run(rig, loop, rest, 3)
    t_door = [e for e in loop.events if e.code == "ILK_DOOR_OPEN" and e.active and e.t_s > t_change]
    assert len(t_door) == 1 and t_door[0].action == "no propulsion, controlled stop"
    status = [db.decode_message(f.arbitration_id, bytes(f.data), decode_choices=False)
              for f in drain(rig["probes"]["ads"]) if f.arbitration_id == 0x60]
    assert status[-1]["GW_IlkDoorOpen"] == 1 and status[-1]["GW_ActiveFault1"] == 0xC10004
    assert status[-1]["GW_ActiveFaultCount"] == 1 and status[-1]["GW_IlkEStop"] == 0
    dumps = loop.counters["blackbox_dumps"]
    loop.set_estop("physical", True)
    run(rig, loop, rest, 3)
    assert any(e.code == "ILK_ESTOP" for e in loop.events)
    assert loop.counters["blackbox_dumps"] == dumps + 1 and list(tmp_path.iterdir())
    rest.values.update(cbc_door_open2=0, cbc_all_doors_closed=1)
    run(rig, loop, rest, 3)
    cleared = [e for e in loop.events if e.code == "ILK_DOOR_OPEN" and not e.active and e.t_s > t_change]
    assert cleared and cleared[0].as_dict()["action"] == "cleared"
    json.dumps(loop.event_dicts())
    with pytest.raises(ValueError, match="expected a source"):
        loop.set_estop("radio", True)


def test_runner_reports_jitter_with_injected_clock(rig) -> None:
    loop = make_loop(rig, period_s=0.001)
    stats = loop.run(ticks=50, sleep=rig["clock"].sleep)
    assert stats.ticks == 50 and stats.overruns == 0
    p = stats.percentiles()
    assert p["p50_us"] == 0.0 and p["max_us"] == pytest.approx(0.0, abs=1e-3)
    assert "50 ticks" in stats.summary()
    # a late clock is measured, and a tick more than a period late restarts the schedule
    late = iter([0.0, 0.0005, 0.0025] + [0.0] * 100)

    def sleepy(dt: float) -> None:
        rig["clock"].sleep(dt + next(late))

    stats = loop.run(ticks=5, sleep=sleepy)
    assert stats.overruns == 1 and stats.percentiles()["max_us"] == pytest.approx(2500.0, abs=1.0)
    assert sorted(stats.jitter_us)[-2] == pytest.approx(500.0, abs=1.0)


def test_missing_signal_is_a_config_error() -> None:
    import cantools

    from vehicle_io.control.loop import ControlConfigError, ControlLoop
    from vehicle_io.gateway import Gateway

    small = cantools.database.load_string(
        'VERSION ""\nNS_ :\nBS_:\nBU_: A\nBO_ 1 M: 8 A\n SG_ S : 0|8@1+ (1,0) [0|255] "" A\n', "dbc")
    with Gateway({}, small, start=False) as gw:
        with pytest.raises(ControlConfigError, match="expected a signal name of the store layout, but got 'ADC_EStop'"):
            ControlLoop(gw)
        with pytest.raises(ControlConfigError, match="period_s"):
            ControlLoop(gw, period_s=1.0)


SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from ctl_helpers import Harness
h = Harness()
h.moving(12.0)
rows = []
for k in range(60):
    if k == 10: h.set(adc_steer_angle_deg=90.0, adc_target_accel_mps2=1.0, adc_target_speed_mps=15.0)
    if k == 25: h.set(cbc_door_open1=1)
    if k == 40: h.set_valid("adc_heartbeat", False)
    y = h.step()
    rows.append([float(y[n]) for n in y.dtype.names])
print(json.dumps(rows))
"""


def test_kernel_same_with_and_without_jit() -> None:
    here = os.path.dirname(__file__)
    results = []
    for disable in ("0", "1"):
        env = dict(os.environ, NUMBA_DISABLE_JIT=disable)
        proc = subprocess.run([sys.executable, "-c", SCRIPT, here], env=env, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        results.append(np.array(json.loads(proc.stdout)))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12, atol=1e-12)
    assert results[0][:, list(L.OUTPUT_DTYPE.names).index("ilk_door_open")].any()


def test_importing_control_does_not_import_numba() -> None:
    code = ("import sys, vehicle_io, vehicle_io.control, vehicle_io.control.layout; "
            "assert 'numba' not in sys.modules, 'numba imported'; assert 'can' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_healthy_inputs_cover_every_signal_input() -> None:
    assert set(L.healthy_inputs()) == {f for f, _ in L.INPUT_SIGNALS}
    rec = L.nominal_inputs()
    assert all(rec[0][f"ok_{m}"] == 1.0 and rec[0][f"to_{m}"] == 0.0 for m, _ in L.WATCHED_MESSAGES)


def test_harness_interlock_table_is_complete() -> None:
    names = [f"ilk_{n}" for n in L.INTERLOCK_NAMES]
    assert names == [n for n in L.OUTPUT_DTYPE.names if n.startswith("ilk_")]
    assert len({i.code for i in L.INTERLOCKS}) == len(L.INTERLOCKS)
    assert len({i.dtc for i in L.INTERLOCKS}) == len(L.INTERLOCKS)
    for ilk in L.INTERLOCKS:
        for t in ilk.thresholds:
            assert t in L.THRESHOLD_DTYPE.names, (ilk.name, t)
    h = Harness()
    h.step()
    assert L.ilk_flags(h.out).shape == (L.N_INTERLOCKS,)


def test_docs_table_matches_the_code() -> None:
    from dataclasses import fields
    from pathlib import Path

    text = (Path(__file__).parents[3] / "docs" / "interlocks.md").read_text(encoding="utf-8")
    thr = L.Thresholds()
    for ilk in L.INTERLOCKS:
        assert f"`{ilk.code}` (0x{ilk.dtc:06X})" in text, ilk.code
        assert ilk.prop in text, ilk.code
    for f in fields(thr):
        assert f"| `{f.name}` | {getattr(thr, f.name):g} |" in text, f.name


@pytest.mark.parametrize("field", ["adc_remote_estop", "vcu_physical_estop"])
def test_estop_signals_on_the_bus_latch_and_reset_by_bus_request(rig, db, field) -> None:
    loop, rest = _armed_and_engaged(rig, db)
    rest.values[field] = 1
    run(rig, loop, rest, 3)
    assert loop.outputs[0]["estop_active"] == 1 and loop.outputs[0]["torque_nm"] <= 0.0
    rest.values[field] = 0
    run(rig, loop, rest, 5)
    assert loop.outputs[0]["estop_active"] == 1  # latched after the source is released

    def last_status() -> dict:
        frames = [f for f in drain(rig["probes"]["ads"]) if f.arbitration_id == 0x60]
        return db.decode_message(frames[-1].arbitration_id, bytes(frames[-1].data), decode_choices=False)

    latched = last_status()
    assert latched["GW_EStopActive"] == 1 and latched["GW_IlkEStop"] == 1
    rest.values["adc_reset_request"] = 1
    run(rig, loop, rest, 3)
    assert loop.outputs[0]["estop_active"] == 0  # standstill + explicit request edge
    assert last_status()["GW_EStopActive"] == 0
