"""The simulated ECUs' shortcuts: cached command decoding and cached counter+CRC frames.

Each must give exactly what the plain computation gives (cantools decode, Z10-P1 protect).
"""

from __future__ import annotations

import random

import pytest

from hil.ecus import base
from hil.ecus.base import _DECODE_CACHE_SIZE, _Rx
from vehicle_io import load_database
from vehicle_io.e2e import E2ESpec, protect

DB = load_database()
COMMANDS = [m for m in DB.messages if m.name.startswith(("GW_", "ADC_"))]


@pytest.mark.parametrize("message", COMMANDS, ids=lambda m: m.name)
def test_cached_decode_equals_cantools(message) -> None:
    rx = _Rx(message, 0.1)
    rng = random.Random(message.frame_id)
    bases = [bytes(rng.randrange(256) for _ in range(message.length)) for _ in range(5)]
    for k in range(120):
        frame = bytearray(bases[k % len(bases)])  # the same values again and again ...
        frame[0] = rng.randrange(256)  # ... with other counter / CRC bytes
        frame[1] = rng.randrange(256)
        data = bytes(frame) + bytes(rng.randrange(3))  # longer than the DBC length at times
        try:
            want = message.decode(data[: message.length], decode_choices=False, scaling=True)
        except Exception as err:  # noqa: BLE001 - compare the failure too
            with pytest.raises(type(err)):
                rx.decode(data)
            continue
        got = rx.decode(data)
        assert got == want
        assert list(got) == list(want)
        assert all(type(got[n]) is type(want[n]) for n in want)
    assert len(rx.decoded) <= _DECODE_CACHE_SIZE


def test_decoded_values_are_the_callers_own() -> None:
    message = DB.get_message_by_name("GW_DriveCommand")
    rx = _Rx(message, 0.1)
    data = bytes(message.length)
    first = rx.decode(data)
    first[next(iter(first))] = 12345  # a hook that scribbles on its values
    assert rx.decode(data) == message.decode(data, decode_choices=False, scaling=True)


def test_ecu_frames_carry_counter_and_crc_like_protect(make_rig) -> None:
    """Every protected frame on the wire is protect(payload, counter) of its own payload."""
    rig = make_rig(seed=3, clock="sim")
    rec = rig.record()
    rig.run_for(1.0)
    rec.stop()
    specs = {m.frame_id: (m, E2ESpec.from_message(m)) for m in DB.messages if E2ESpec.from_message(m) is not None}
    checked = 0
    last: dict[int, int] = {}
    for frame in rec.frames:
        entry = specs.get(frame.arbitration_id)
        if entry is None or frame.is_error_frame:
            continue
        message, spec = entry
        data = frame.data[: message.length]
        counter = (data[spec.counter_byte] >> spec.counter_shift) & 0x0F
        assert bytes(protect(spec, data, counter)) == data
        if frame.arbitration_id in last:
            assert counter == (last[frame.arbitration_id] + 1) % 15
        last[frame.arbitration_id] = counter
        checked += 1
    assert checked > 100


# -- the transmit shortcuts: counter+CRC in one step, the codec's encoders called directly ------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from hil.ecus.base import _page_encoders, _protect_into, _scalar_encoder, _Tx  # noqa: E402
from vehicle_io.codec import BatchEncoder  # noqa: E402
from vehicle_io.errors import CodecError  # noqa: E402

PROTECTED = [m for m in DB.messages if E2ESpec.from_message(m) is not None]
ENCODER = BatchEncoder(DB)
#: Messages the simulated ECUs send (cyclic, a sender other than the gateway under test).
SENT = [m for m in DB.messages if m.cycle_time and not set(m.senders or ()) & {"GW", "TESTER"}]
MULTIPLEXED = [m for m in SENT if any(s.is_multiplexer for s in m.signals)]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(PROTECTED), st.binary(min_size=64, max_size=64), st.integers(0, 14), st.booleans())
def test_protect_into_equals_protect(message, raw: bytes, counter: int, bad: bool) -> None:
    spec = E2ESpec.from_message(message)
    payload = raw[: message.length]
    tx = _Tx(message, 0.01, None)
    buf = bytearray(payload)
    _protect_into(buf, spec, tx.crc_start, counter, bad)
    want = protect(spec, payload, counter)
    if bad:
        want[spec.crc_byte] ^= 0xFF
    assert bytes(buf) == bytes(want)


def _value(signal, draw_kind: int, fraction: float) -> float:
    lo = signal.minimum if signal.minimum is not None else 0.0
    hi = signal.maximum if signal.maximum is not None else lo + 100.0
    if draw_kind == 0:  # inside the range, on the signal's grid or off it
        return lo + (hi - lo) * fraction
    if draw_kind == 1:
        return hi + 1.0 + fraction  # above the range: the codec refuses, the ECU saturates
    if draw_kind == 2:
        return float("nan")
    return int(round(lo + (hi - lo) * fraction))  # an int


def _encode_or_error(name: str, values: dict) -> object:
    try:
        return ENCODER.encode_one(name, **values)
    except CodecError as err:
        return type(err)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(SENT), st.data())
def test_generated_encoder_gives_encode_one(message, data) -> None:
    fn, count = _scalar_encoder(ENCODER, message.name)
    if fn is None:
        return  # multiplexed: the page encoders below
    kinds = {s.name: data.draw(st.sampled_from([0, 0, 0, 1, 2, 3])) for s in message.signals}
    values = {s.name: _value(s, kinds[s.name], data.draw(st.floats(0, 1))) for s in message.signals}
    assert len(values) == count
    got = fn(dict(values))
    if got is not None:  # None: SimEcu then takes encode_one itself
        assert got == ENCODER.encode_one(message.name, **values)
    if all(kind == 0 for kind in kinds.values()):
        assert got is not None  # plain in-range floats: the shortcut must take them


@pytest.mark.parametrize("message", MULTIPLEXED, ids=lambda m: m.name)
def test_page_encoders_cover_every_page(message) -> None:
    pages = {int(k) for s in message.signals for k in (s.multiplexer_ids or ())}
    assert set(_page_encoders(message)) == pages


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(MULTIPLEXED), st.data())
def test_page_encoder_gives_encode_one(message, data) -> None:
    fns = _page_encoders(message)
    page = data.draw(st.sampled_from(sorted(fns)))
    mux = next(s for s in message.signals if s.is_multiplexer)
    values = {}
    kinds = []
    for s in message.signals:
        if s is mux:
            values[s.name] = float(page) if data.draw(st.booleans()) else page
        elif not s.multiplexer_ids or page in s.multiplexer_ids:
            kinds.append(data.draw(st.sampled_from([0, 0, 0, 1, 2, 3])))
            values[s.name] = _value(s, kinds[-1], data.draw(st.floats(0, 1)))
    fn, count = fns[page]
    assert len(values) == count
    got = fn(dict(values))
    want = _encode_or_error(message.name, values)
    if got is not None:
        assert got == want
    if all(kind == 0 for kind in kinds):
        assert got is not None  # plain in-range values: the shortcut must take them
    if want is CodecError or (isinstance(want, type) and issubclass(want, CodecError)):
        assert got is None  # the codec refuses: the shortcut must not encode it


# -- the gateway stand-in: encodes only changed values, protects each (payload, counter) once --


def test_gateway_stub_frames_equal_the_plain_computation(make_rig) -> None:
    from hil.ecus.gwstub import GatewayStub

    rig = make_rig(seed=4, clock="sim")
    stub = GatewayStub(rig)
    sent: list[tuple[int, dict, int, bool]] = []
    fire = stub._fire

    def spy(task):
        name = task["message"].name
        sent.append((task["message"].frame_id, dict(stub.values[name]), task["counter"], name in stub.bad_crc))
        fire(task)

    stub._fire = spy
    for task in stub._tasks:  # the first cycle was scheduled with the unwrapped method
        task["handle"].cancel()
        task["handle"] = rig.clock.call_at_ps(task["next_ps"], stub._fire, task)
    rec = rig.record()
    torques = iter([0.0, 12.5, 12.5, 40.0, 40.0, 40.0, -20.0, 0.0] * 8)

    def change() -> None:
        stub.set("GW_DriveCommand", GW_TorqueRequest=next(torques, 0.0))
        stub.bad_crc = {"GW_BrakeCommand"} if rig.t_s % 0.2 < 0.1 else set()
        rig.clock.call_later(0.013, change)

    rig.clock.call_later(0.005, change)
    rig.run_for(0.6)
    rec.stop()
    gw_frames = [f for f in rec.frames if f.sender == "GW" and not f.is_error_frame]
    assert len(gw_frames) > 100
    # Each message's frames leave in the order they were made (a few may still wait at the end).
    pairs = []
    for frame_id in {f.arbitration_id for f in gw_frames}:
        wire = [f for f in gw_frames if f.arbitration_id == frame_id]
        made = [entry for entry in sent if entry[0] == frame_id]
        assert len(made) - len(wire) in (0, 1)
        pairs += zip(wire, made)
    assert len(pairs) == len(gw_frames)
    for frame, (frame_id, values, counter, bad) in pairs:
        message = DB.get_message_by_frame_id(frame_id)
        payload = ENCODER.encode_one(message.name, **values)
        spec = E2ESpec.from_message(message)
        if spec is not None:
            want = protect(spec, payload, counter)
            if bad:
                want[spec.crc_byte] ^= 0xFF
            payload = bytes(want)
        assert frame.arbitration_id == frame_id
        assert frame.data[: len(payload)] == payload


def test_cbc_reads_the_compartments_it_would_read_one_by_one(make_rig) -> None:
    rig = make_rig(seed=2, clock="sim")
    cbc = rig.ecu("CBC")
    rig.run_for(0.1)
    assert cbc._comps() == [rig.van.compartment(i) for i in range(1, cbc.n + 1)]


def _busy_cargo_bay(rig) -> None:
    """Loads, an open door and an unlocked compartment: every CBC signal away from its rest."""
    model = rig.van.model
    model.set_payload({1: 12.5, 2: 0.3, 4: 250.0, 6: 1.0})
    model.force_door_open(3)
    rig.van.command_compartment(5, lock_request=2)
    rig.run_for(0.6)


def test_cbc_status_from_columns_equals_the_per_compartment_path(make_rig, monkeypatch) -> None:
    rig = make_rig(seed=4, clock="sim")
    cbc = rig.ecu("CBC")
    _busy_cargo_bay(rig)
    for name in cbc.messages:
        fast = cbc.signals(name, 0.0)
        with monkeypatch.context() as m:
            m.setattr(base, "_FAST_PATHS", False)
            general = cbc.signals(name, 0.0)
        assert fast == general, name
        assert list(fast) == list(general), name  # the same order too
        assert [type(v) for v in fast.values()] == [type(v) for v in general.values()], name
    columns = rig.van.compartment_columns()
    assert columns["door_open"][2] == 1 and columns["weight_kg"][3] == rig.van.compartment(4)["weight_kg"]


def test_compartment_columns_follow_a_command_between_steps(make_rig) -> None:
    rig = make_rig(seed=4, clock="sim")
    rig.run_for(0.05)
    before = rig.van.compartment_columns()["in_lock_request"]
    rig.van.command_compartment(2, lock_request=2)
    after = rig.van.compartment_columns()["in_lock_request"]
    assert before[1] != 2 and after[1] == 2
    assert after == tuple(rig.van.compartment(i)["in_lock_request"] for i in range(1, rig.van.n_compartments + 1))


def test_bms_pages_equal_the_general_path(make_rig, monkeypatch) -> None:
    rig = make_rig(seed=6, clock="sim")
    rig.van.model.set_cell_voltage_offset(7, 0.25)
    rig.van.model.set_cell_temp_offset(40, 12.0)
    rig.run_for(0.3)
    bms = rig.ecu("BMS")
    for name in ("BMS_CellVoltages", "BMS_CellTemps"):
        fast = bms.pages(name, 0.0)
        with monkeypatch.context() as m:
            m.setattr(base, "_FAST_PATHS", False)
            general = bms.pages(name, 0.0)
        assert fast == general, name
        assert [list(row) for row in fast] == [list(row) for row in general], name
    voltages = bms.pages("BMS_CellVoltages", 0.0)
    assert voltages[1]["BMS_CellVoltage007"] == pytest.approx(rig.van.model.cells["measured_v"][6])
