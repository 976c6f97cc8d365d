"""SignalStore and its layout: slots, snapshot copies, staleness, multiplexing, rejects."""

from __future__ import annotations

import math

import cantools
import numpy as np
import pytest
from gw_helpers import TEST_DBC, protected

from vehicle_io.gateway import ACCEPT, REJECT_REASONS, Gateway, LayoutError, StoreLayout


def batch(frames: list[tuple[int, bytes]], width: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = np.array([i for i, _ in frames], dtype=np.uint32)
    data = np.zeros((len(frames), width), dtype=np.uint8)
    for row, (_, payload) in enumerate(frames):
        data[row, : len(payload)] = np.frombuffer(payload, dtype=np.uint8)
    lengths = np.array([len(p) for _, p in frames], dtype=np.uint8)
    return ids, data, lengths


@pytest.fixture
def gw(test_db, clock):
    with Gateway({}, test_db, clock=clock) as gateway:
        yield gateway


# -- layout -------------------------------------------------------------------------------------

def test_layout_is_sorted_contiguous_and_independent_of_file_order(test_db) -> None:
    layout = StoreLayout.from_database(test_db)
    names = [m.name for m in layout.messages]
    assert names == sorted(names)
    for m in layout.messages:
        assert layout.slot_names[m.start : m.stop] == tuple(f"{m.name}.{s}" for s in m.signals)
    reversed_db = cantools.database.can.Database(messages=list(reversed(test_db.messages)))
    assert StoreLayout.from_database(reversed_db).slot_names == layout.slot_names
    assert layout.n_signals == sum(len(m.signals) for m in test_db.messages)


def test_layout_lookups(test_db) -> None:
    layout = StoreLayout.from_database(test_db)
    assert layout.slot("Plain.Plain_Temp") == layout.slot("Plain_Temp")
    assert layout.slot_names[layout.slot("Mux_B")] == "Mux.Mux_B"
    assert list(layout.slots_of(["Prot_Speed", "Ext.Ext_Value"])) == [layout.slot("Prot_Speed"), layout.slot("Ext_Value")]
    with pytest.raises(LayoutError, match="expected a signal name"):
        layout.slot("Nope")
    with pytest.raises(LayoutError, match="expected a message name"):
        layout.message("Nope")


def test_layout_keys_duplicate_names_by_bus(test_db) -> None:
    db_a = cantools.database.load_string(TEST_DBC, "dbc")
    db_b = cantools.database.load_string(TEST_DBC, "dbc")
    for m in db_a.messages:
        m.bus_name = "a"
    for m in db_b.messages:
        m.bus_name = "b"
    layout = StoreLayout(db_a.messages + db_b.messages)
    assert "a:Plain.Plain_Temp" in layout and "b:Plain.Plain_Temp" in layout
    assert layout.slot("a:Plain.Plain_Temp") != layout.slot("b:Plain.Plain_Temp")
    with pytest.raises(LayoutError):
        layout.slot("Plain_Temp")  # ambiguous, so no alias
    assert layout.message_index("b", "Plain") == layout.message("b:Plain").index


# -- storing --------------------------------------------------------------------------------------

def test_values_timestamps_and_snapshot_copies(gw, test_db, clock) -> None:
    plain = test_db.get_message_by_name("Plain")
    payload = plain.encode({"Plain_Temp": 21, "Plain_Big": 100.5, "Plain_Flags": 5})
    ids, data, lengths = batch([(plain.frame_id, payload)])
    t_rx = clock.now_s
    assert list(gw.process_batch("x", ids, data, lengths, [t_rx])) == [ACCEPT]
    snap = gw.store.snapshot()
    slot = gw.layout.slot("Plain_Big")
    assert snap.value[slot] == 100.5 and snap.timestamp[slot] == t_rx and snap.valid[slot] == 1
    # A snapshot is a copy: later frames do not change it.
    payload2 = plain.encode({"Plain_Temp": 22, "Plain_Big": 12.0, "Plain_Flags": 1})
    gw.process_batch("x", *batch([(plain.frame_id, payload2)]))
    assert snap.value[slot] == 100.5 and gw.store.value_of("Plain_Big") == 12.0
    # Reusing a snapshot's arrays refreshes them in place.
    again = gw.store.snapshot(out=snap)
    assert again is snap and snap.value[slot] == 12.0
    clock.advance(0.05)
    assert gw.store.age_s("Plain_Big") == pytest.approx(0.05)
    assert gw.store.age_s("Plain") == pytest.approx(0.05)
    assert math.isinf(gw.store.age_s("Mux_A"))
    reading = gw.store.get("Plain.Plain_Temp")
    assert (reading.value, reading.valid) == (22.0, True)


def test_stale_after_n_cycles(test_db, clock) -> None:
    with Gateway({}, test_db, clock=clock, stale_factor=4.0) as gw:
        plain = test_db.get_message_by_name("Plain")  # 100 ms cycle -> stale after 400 ms
        gw.process_batch("x", *batch([(plain.frame_id, bytes(8))]))
        clock.advance(0.399)
        assert gw.store.is_valid("Plain_Temp") and not gw.store.message_status("Plain").stale
        clock.advance(0.002)
        assert not gw.store.is_valid("Plain_Temp")
        status = gw.store.message_status("Plain")
        assert status.stale and status.received
        assert gw.counters()["stale_events"] == 1
        gw.process_batch("x", *batch([(plain.frame_id, bytes(8))]))  # fresh again
        assert gw.store.is_valid("Plain_Temp")
        # Messages without a cycle time never go stale.
        mux = test_db.get_message_by_name("Mux")
        gw.process_batch("x", *batch([(mux.frame_id, bytes(8))]))
        clock.advance(1e6)
        assert gw.store.is_valid("Mux_A") and not gw.store.is_valid("Plain_Temp")


def test_frame_already_stale_on_arrival_is_rejected(gw, test_db, clock) -> None:
    plain = test_db.get_message_by_name("Plain")
    old = clock.now_s - 0.5  # older than 3 x 100 ms
    reasons = gw.process_batch("x", *batch([(plain.frame_id, bytes(8))]), timestamps=[old])
    assert REJECT_REASONS[reasons[0]] == "stale"
    assert math.isnan(gw.store.value_of("Plain_Temp"))


def test_multiplexed_frame_updates_only_its_branch(gw, test_db, clock) -> None:
    mux = test_db.get_message_by_name("Mux")
    f0 = mux.encode({"Mux_Sel": 0, "Mux_A": 1234, "Mux_Common": 7})
    f1 = mux.encode({"Mux_Sel": 1, "Mux_B": -12.5, "Mux_Common": 8})
    t0 = clock.now_s
    gw.process_batch("x", *batch([(mux.frame_id, f0)]), timestamps=[t0])
    clock.advance(0.01)
    gw.process_batch("x", *batch([(mux.frame_id, f1)]), timestamps=[clock.now_s])
    s = gw.store
    assert s.value_of("Mux_A") == 1234 and s.value_of("Mux_B") == -12.5 and s.value_of("Mux_Common") == 8
    assert math.isnan(s.value_of("Mux_C"))
    snap = s.snapshot()
    assert snap.timestamp[gw.layout.slot("Mux_A")] == t0
    assert snap.timestamp[gw.layout.slot("Mux_B")] == clock.now_s
    assert snap.valid[gw.layout.slot("Mux_C")] == 0 and snap.valid[gw.layout.slot("Mux_A")] == 1
    # Both branches in one batch: each keeps its own row's value, the later row wins the rest.
    f2 = mux.encode({"Mux_Sel": 2, "Mux_C": 99, "Mux_Common": 1})
    f0b = mux.encode({"Mux_Sel": 0, "Mux_A": 4321, "Mux_Common": 2})
    gw.process_batch("x", *batch([(mux.frame_id, f2), (mux.frame_id, f0b)]))
    assert (s.value_of("Mux_C"), s.value_of("Mux_A"), s.value_of("Mux_Common")) == (99, 4321, 2)


def test_undefined_mux_value_is_rejected_and_stores_nothing(gw, test_db) -> None:
    mux = test_db.get_message_by_name("Mux")
    payload = bytearray(mux.encode({"Mux_Sel": 0, "Mux_A": 5, "Mux_Common": 3}))
    payload[0] = 9  # no branch 9
    reasons = gw.process_batch("x", *batch([(mux.frame_id, bytes(payload))]))
    assert REJECT_REASONS[reasons[0]] == "bad_mux"
    assert math.isnan(gw.store.value_of("Mux_Common"))
    assert gw.store.message_status("Mux").rejected == {"bad_mux": 1}


def test_e2e_failures_are_not_stored(gw, test_db, prot_spec) -> None:
    prot = test_db.get_message_by_name("Prot")
    frames = [protected(prot_spec, prot.encode({"Prot_CRC": 0, "Prot_Counter": 0, "Prot_Enable": 1,
                                                 "Prot_Speed": 10.0 + c, "Prot_Torque": 0}), c) for c in range(4)]
    reasons = gw.process_batch("x", *batch([(prot.frame_id, f) for f in frames]))
    assert [REJECT_REASONS[r] if r != ACCEPT else "ok" for r in reasons] == ["e2e_state", "e2e_state", "ok", "ok"]
    assert gw.store.value_of("Prot_Speed") == pytest.approx(13.0)
    bad = bytearray(protected(prot_spec, prot.encode({"Prot_CRC": 0, "Prot_Counter": 0, "Prot_Enable": 1,
                                                      "Prot_Speed": 99.0, "Prot_Torque": 0}), 4))
    bad[0] ^= 0xFF
    reasons = gw.process_batch("x", *batch([(prot.frame_id, bytes(bad))]))
    assert REJECT_REASONS[reasons[0]] == "crc"
    assert gw.store.value_of("Prot_Speed") == pytest.approx(13.0)


def test_reset_forgets_values_but_keeps_counters(gw, test_db) -> None:
    plain = test_db.get_message_by_name("Plain")
    gw.process_batch("x", *batch([(plain.frame_id, bytes(8))]))
    gw.store.reset()
    assert math.isnan(gw.store.value_of("Plain_Temp")) and not gw.store.is_valid("Plain_Temp")
    assert gw.counters()["decoded"] == 1
