"""Fault injection and ISO 11898-1 fault confinement on the timed virtual bus."""

from __future__ import annotations

from fractions import Fraction

import can
import pytest
from hilbus_reference import classic_frame, stuff

from hil.bus import BusOffError, FaultConfigError, FaultRule, SimClock, WireFrame
from hil.bus.channel import CAN_ERR_BUSOFF, CAN_ERR_CRTL, CAN_ERR_PROT, CAN_ERR_RESTARTED
from tests.crc_reference import crc8_j1850_bitwise as crc8_j1850

BIT = Fraction(1, 500_000)


def msg(can_id: int, data: bytes = b"", ext: bool = False) -> can.Message:
    return can.Message(arbitration_id=can_id, data=data, is_extended_id=ext)


def frame_time(can_id: int, data: bytes) -> Fraction:
    return len(classic_frame(can_id, data)) * BIT


def drain(bus: can.BusABC, errors: bool = False) -> list[can.Message]:
    out = []
    while (m := bus.recv(0)) is not None:
        if errors or not m.is_error_frame:
            out.append(m)
    return out


def z10_protect(data_id: int, payload: bytearray, counter: int) -> bytes:
    payload[1] = (payload[1] & 0xF0) | counter
    payload[0] = crc8_j1850(bytes([data_id & 0xFF, data_id >> 8]) + bytes(payload[1:]))
    return bytes(payload)


def test_crc8_helper_matches_references() -> None:
    assert crc8_j1850(b"123456789") == 0x4B
    assert crc8_j1850(bytes(4)) == 0x59


# -- sender-side faults --------------------------------------------------------------------------


def test_drop_by_id_node_window_and_count(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    c = make_bus("C")
    channel = a.hil_channel
    channel.add_fault(FaultRule("drop", id=0x100, node="A", t0_s=0.01, t1_s=0.02, max_count=2))
    for t_ms in (0, 11, 12, 13, 25):
        sim.run_until(t_ms / 1000)
        a.send(msg(0x100, bytes([t_ms])))
        c.send(msg(0x100, bytes([100 + t_ms])))  # same id, other node: never matched
    sim.run_until(0.05)
    got = [m.data[0] for m in drain(b)]
    assert got == [0, 100, 111, 112, 13, 113, 25, 125]  # A's 11 ms and 12 ms frames are gone
    assert channel.stats().nodes["A"].fault_dropped == 2
    assert [e.code for e in channel.recent_events].count("fault.drop") == 2


def test_dropped_frames_take_no_bus_time(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    a.hil_channel.add_fault({"action": "drop", "id": "0x200"})
    a.send(msg(0x200, b"\x01"))
    a.send(msg(0x201, b"\x02"))
    m = b.recv(1.0)
    assert m.arbitration_id == 0x201 and m.timestamp == float(frame_time(0x201, b"\x02"))


def test_drop_at_one_receiver_only(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    c = make_bus("C")
    a.hil_channel.add_fault(FaultRule("drop", id=0x10, receiver="B"))
    a.send(msg(0x10, b"\x01"))
    a.send(msg(0x11, b"\x02"))
    sim.run_until(0.01)
    assert [m.arbitration_id for m in drain(b)] == [0x11]
    assert [m.arbitration_id for m in drain(c)] == [0x10, 0x11]


def test_probability_is_seeded_and_reproducible(sim: SimClock) -> None:
    def run(seed: int) -> list[int]:
        clock = SimClock()
        a = can.Bus(interface="hilbus", channel="p", clock=clock, seed=seed, node="A")
        b = can.Bus(interface="hilbus", channel="p", node="B")
        try:
            a.hil_channel.add_fault(FaultRule("drop", probability=0.5))
            for i in range(400):
                a.send(msg(0x1, i.to_bytes(2, "big")))
                clock.advance(0.001)
            return [int.from_bytes(m.data, "big") for m in drain(b)]
        finally:
            a.shutdown()
            b.shutdown()

    first, again, other = run(1), run(1), run(2)
    assert first == again
    assert first != other
    assert 150 < len(first) < 250


def test_delay_lets_later_frames_overtake(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    a.hil_channel.add_fault(FaultRule("delay", id=0x1, delay_s=0.003))
    a.send(msg(0x1, b"\x01"))
    a.send(msg(0x2, b"\x02"))
    first, second = b.recv(1.0), b.recv(1.0)
    assert (first.arbitration_id, second.arbitration_id) == (0x2, 0x1)
    assert second.timestamp == float(Fraction(3, 1000) + frame_time(0x1, b"\x01"))


def test_duplicate_sends_extra_copies_back_to_back(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    a.hil_channel.add_fault(FaultRule("duplicate", id=0x5, copies=2))
    a.send(msg(0x5, b"\xaa"))
    got = [b.recv(1.0) for _ in range(3)]
    assert [bytes(m.data) for m in got] == [b"\xaa"] * 3
    assert [m.timestamp for m in got] == [float(k * frame_time(0x5, b"\xaa")) for k in (1, 2, 3)]
    assert b.recv(0.01) is None


def test_reorder_swaps_with_the_next_frame_or_releases_after_max_hold(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    rule = a.hil_channel.add_fault(FaultRule("reorder", id=0x10, max_count=1, max_hold_s=0.5))
    a.send(msg(0x10, b"\x01"))
    a.send(msg(0x20, b"\x02"))
    a.send(msg(0x30, b"\x03"))
    sim.run_until(0.01)
    assert [m.arbitration_id for m in drain(b)] == [0x20, 0x10, 0x30]
    a.hil_channel.remove_fault(rule)
    a.hil_channel.add_fault(FaultRule("reorder", id=0x40, max_hold_s=0.5))
    sim.run_until(1.0)
    a.send(msg(0x40, b"\x04"))  # nothing follows: released alone after max_hold_s, not lost
    m = b.recv(2.0)
    assert m.arbitration_id == 0x40 and m.timestamp == float(Fraction(3, 2) + frame_time(0x40, b"\x04"))


def test_corrupt_payload_keeps_a_valid_frame_on_the_wire(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    wire: list[WireFrame] = []
    a.hil_channel.add_frame_observer(wire.append)
    a.hil_channel.add_fault(FaultRule("corrupt_payload", id=0x1, xor=b"\xff\x00\x0f"))
    a.hil_channel.add_fault(FaultRule("corrupt_payload", id=0x2, set_bytes={1: 0x99}))
    a.hil_channel.add_fault(FaultRule("corrupt_payload", id=0x3))
    a.send(msg(0x1, b"\x01\x02\x03\x04"))
    a.send(msg(0x2, b"\x01\x02"))
    a.send(msg(0x3, bytes(8)))
    got = [bytes(b.recv(1.0).data) for _ in range(3)]
    assert got[0] == b"\xfe\x02\x0c\x04"
    assert got[1] == b"\x01\x99"
    flipped = int.from_bytes(got[2], "big")
    assert bin(flipped).count("1") == 1  # one bit flipped, chosen by the rule's seeded stream
    # the wire carried the corrupted payload with its own (valid) CRC and bit count
    assert [w.data for w in wire] == got and not any(w.is_error_frame for w in wire)
    assert wire[2].bits == len(classic_frame(0x3, got[2]))
    assert a.stats().nodes["B"].rx_errors == 0


def test_stuck_payload_repeats_the_last_good_payload(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    a.hil_channel.add_fault(FaultRule("stuck_payload", id=0x7, t0_s=0.0035, t1_s=0.0075))
    for k in range(10):
        sim.run_until(k / 1000)
        a.send(msg(0x7, bytes([k, 0x50])))
    sim.run_until(0.02)
    assert [m.data[0] for m in drain(b)] == [0, 1, 2, 3, 3, 3, 3, 3, 8, 9]


def test_counter_freeze_and_jump_keep_a_valid_e2e_crc(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    data_id = 0x1234
    a.hil_channel.add_fault(FaultRule("counter_freeze", id=0x50, t0_s=0.0025, t1_s=0.0055, data_id=data_id))
    a.hil_channel.add_fault(FaultRule("counter_jump", id=0x50, t0_s=0.0075, t1_s=0.0095, jump=5, data_id=data_id))
    for k in range(11):
        sim.run_until(k / 1000)
        a.send(msg(0x50, z10_protect(data_id, bytearray([0, 0xA0, k, 0, 0, 0, 0, 0]), k % 15)))
    sim.run_until(0.02)
    got = drain(b)
    counters = [m.data[1] & 0x0F for m in got]
    assert counters == [0, 1, 2, 2, 2, 2, 6, 7, 13, 14, 10]
    for m in got:
        data = bytes(m.data)
        assert data[1] & 0xF0 == 0xA0  # the other nibble is untouched
        assert data[0] == crc8_j1850(bytes([data_id & 0xFF, data_id >> 8]) + data[1:])


def test_counter_location_is_configurable(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    a.hil_channel.add_fault(FaultRule("counter_jump", id=0x51, counter_byte=3, counter_shift=4, counter_modulo=16, jump=3))
    a.send(msg(0x51, bytes([0, 0, 0, 0xE7])))
    assert bytes(b.recv(1.0).data) == bytes([0, 0, 0, 0x17])


# -- the wire ------------------------------------------------------------------------------------


def test_corrupt_on_the_wire_error_frame_counters_and_retransmission(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    data = b"\x12\x34"
    a.hil_channel.add_fault(FaultRule("corrupt_wire", id=0x123, max_count=1))
    a.send(msg(0x123, data))
    error = b.recv(1.0)
    assert error.is_error_frame and error.arbitration_id & CAN_ERR_PROT
    assert (error.data[6], error.data[7]) == (0, 1)  # receiver's TEC, REC
    # error at the end of the data field: SOF..data (stuffed) + 6 flag + 8 delimiter + 3 IFS
    head = "0" + format(0x123, "011b") + "000" + format(2, "04b") + "".join(format(x, "08b") for x in data)
    attempt = (len(stuff(head)[0]) + 17) * BIT
    assert error.timestamp == float(attempt)
    assert (a.tec, b.rec) == (8, 1)
    frame = b.recv(1.0)
    assert not frame.is_error_frame and bytes(frame.data) == data
    assert frame.timestamp == float(attempt + frame_time(0x123, data))
    assert b.recv(0.01) is None  # delivered exactly once
    assert (a.tec, b.rec) == (7, 0)
    sender_view = drain(a, errors=True)
    assert len(sender_view) == 1 and sender_view[0].data[6] == 8
    stats = a.stats()
    assert stats.error_frames == 1 and stats.frames == 1
    assert stats.nodes["A"].retransmissions == 1


def test_fault_confinement_passive_bus_off_and_recovery(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    channel = a.hil_channel
    events = []
    channel.add_event_observer(events.append)
    rule = channel.add_fault(FaultRule("corrupt_wire", id=0x100, max_count=16))
    a.send(msg(0x100, b"\x01"))
    sim.run_until(0.0025)
    # 16 errors: TEC 128 -> error passive; the 17th attempt succeeds: TEC 127 -> active again
    codes = [e.code for e in events if e.code.startswith("node.")]
    assert codes == ["node.error_passive", "node.error_active"]
    assert (a.tec, a.state) == (127, can.BusState.ACTIVE)
    passive = next(e for e in events if e.code == "node.error_passive")
    assert passive.detail["tec"] == 128
    assert b.rec == 15  # +1 per error seen, -1 for the frame it finally received
    channel.remove_fault(rule)
    channel.add_fault(FaultRule("corrupt_wire", id=0x100))
    a.send(msg(0x100, b"\x02"))
    a.send(msg(0x101, b"\x03"))  # queued behind: aborted at bus-off
    while a.state != can.BusState.ERROR:
        sim.advance(0.0001)
    bus_off = next(e for e in events if e.code == "node.bus_off")
    assert bus_off.detail["tec"] > 255
    with pytest.raises(BusOffError, match="bus-off") as info:
        a.send(msg(0x102, b""))
    assert isinstance(info.value, can.CanOperationError)
    errors = [m for m in drain(a, errors=True) if m.is_error_frame]
    assert errors[-1].arbitration_id & CAN_ERR_BUSOFF and errors[-1].timestamp == bus_off.t
    assert any(m.arbitration_id & CAN_ERR_CRTL and m.data[1] & 0x20 for m in errors)  # TX passive flag
    assert a.stats().nodes["A"].aborted == 2
    # idle bus: the error frame's 11-bit recessive tail is the first sequence, 127 more follow
    sim.run_until(bus_off.t + 0.01)
    recovered = next(e for e in events if e.code == "node.recovered")
    assert recovered.t_ps == bus_off.t_ps + 127 * 11 * 2_000_000
    assert (a.state, a.tec, a.rec) == (can.BusState.ACTIVE, 0, 0)
    restarted = drain(a, errors=True)[-1]
    assert restarted.is_error_frame and restarted.arbitration_id & CAN_ERR_RESTARTED
    channel.clear_faults()
    assert [m.arbitration_id for m in drain(b)] == [0x100]  # only the first, successful frame
    a.send(msg(0x103, b"\x04"))
    assert b.recv(0.01).arbitration_id == 0x103


def test_bus_off_recovery_on_a_busy_bus_counts_frame_tails(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    make_bus("B")
    c = make_bus("C", tx_queue_size=0)
    channel = a.hil_channel
    events = []
    channel.add_event_observer(events.append)
    wire: list[WireFrame] = []
    channel.add_frame_observer(wire.append)
    channel.add_fault(FaultRule("corrupt_wire", node="A"))
    a.send(msg(0x100, b"\x01"))
    for _ in range(400):  # C keeps the bus busy back to back, before and after A's bus-off
        c.send(msg(0x200, bytes(8)))
    sim.run_until(0.2)
    bus_off = next(e for e in events if e.code == "node.bus_off")
    recovered = next(e for e in events if e.code == "node.recovered")
    after = [w for w in wire if w.t_start_ps >= bus_off.t_ps]
    assert after[0].t_start_ps == bus_off.t_ps  # no idle time: C starts right away
    # the error frame's tail is the first 11 recessive bits; then every frame of C ends with
    # exactly 11 recessive bits before the next SOF: one sequence each, 127 more needed
    assert recovered.t_ps == after[126].t_end_ps


def test_manual_recovery_when_auto_recovery_is_off(make_bus, sim: SimClock) -> None:
    a = make_bus("A", auto_recovery=False)
    make_bus("B")
    a.hil_channel.add_fault(FaultRule("corrupt_wire", node="A"))
    a.send(msg(0x1, b""))
    sim.run_until(0.05)
    assert a.state == can.BusState.ERROR
    sim.run_until(1.0)
    assert a.state == can.BusState.ERROR  # stays bus-off without a restart
    a.hil_channel.clear_faults()
    a.restart()
    start = a.clock.now_ps()
    sim.run_until(1.01)
    assert a.state == can.BusState.ACTIVE
    recovered = [e for e in a.hil_channel.recent_events if e.code == "node.recovered"][-1]
    assert recovered.t_ps == start + 128 * 11 * 2_000_000


def test_alone_on_the_bus_ack_errors_stop_at_error_passive(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    listener = make_bus("L", listen_only=True)  # listen-only nodes do not acknowledge
    assert listener.state == can.BusState.PASSIVE
    with pytest.raises(can.CanOperationError, match="listen-only"):
        listener.send(msg(0x1, b""))
    a.send(msg(0x10, b"\x01"))
    sim.run_until(0.05)
    # TEC climbs by 8 to 128, then ACK errors of an error-passive sender no longer count
    assert (a.tec, a.state) == (128, can.BusState.PASSIVE)
    ack_errors = [m for m in drain(listener, errors=True) if m.is_error_frame]
    assert len(ack_errors) > 16 and ack_errors[0].timestamp == float(
        (len(classic_frame(0x10, b"\x01")) - 11 + 17) * BIT
    )
    b = make_bus("B")  # a node that acknowledges arrives: the retransmission goes through
    m = b.recv(1.0)
    while m.is_error_frame:  # B may have joined during an attempt and seen its error frame
        m = b.recv(1.0)
    assert m.arbitration_id == 0x10 and a.tec == 127


def test_error_passive_sender_suspends_transmission(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    obs = make_bus("O")
    a.hil_channel.add_fault(FaultRule("corrupt_wire", id=0x100, max_count=16))  # TEC 128
    a.send(msg(0x100, b""))
    sim.run_until(0.01)
    assert a.state == can.BusState.ACTIVE and a.tec == 127
    drain(obs)
    a.hil_channel.add_fault(FaultRule("corrupt_wire", id=0x101, max_count=1))  # TEC 135: passive
    a.send(msg(0x101, b""))
    a.send(msg(0x050, b""))
    b.send(msg(0x600, b""))
    sim.run_until(0.02)
    got = drain(obs, errors=True)
    assert [(m.arbitration_id, m.is_error_frame) for m in got][1:] == [(0x600, False), (0x101, False), (0x050, False)]
    error_end = Fraction(got[0].timestamp).limit_denominator(10**12)
    # after its error frame the passive sender waits 8 bits: B's 0x600 takes the bus although
    # A's retransmission has the lower id; after its own success A waits 8 bits again
    t_600 = error_end + frame_time(0x600, b"")
    t_101 = t_600 + frame_time(0x101, b"")
    t_050 = t_101 + 8 * BIT + frame_time(0x050, b"")
    assert [m.timestamp for m in got[1:]] == [float(t_600), float(t_101), float(t_050)]


def test_babbling_node_floods_and_starves_the_bus(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    t0, t1 = Fraction(1, 1000), Fraction(3, 1000)
    a.hil_channel.add_fault(FaultRule("babble", node="X", id=0x000, data=bytes(8), t0_s=0.001, t1_s=0.003))
    sim.run_until(0.0015)
    a.send(msg(0x001, b"\x01"))  # would win against anything but 0x000
    sim.run_until(0.01)
    got = drain(b)
    babble = [m for m in got if m.arbitration_id == 0x000]
    period = frame_time(0x000, bytes(8))
    expected = -(-(t1 - t0) // period)  # frames start back to back while the window is open
    assert len(babble) == expected
    assert [m.timestamp for m in babble] == [float(t0 + (k + 1) * period) for k in range(expected)]
    last = got[-1]
    assert last.arbitration_id == 0x001 and last.timestamp == float(t0 + expected * period + frame_time(0x001, b"\x01"))
    assert "X" not in a.hil_channel.nodes()  # the phantom babbler left with its window


def test_cut_off_node_neither_sends_nor_receives(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    c = make_bus("C")
    a.hil_channel.add_fault(FaultRule("cut_off", node="B", t0_s=0.001, t1_s=0.002))
    for t_ms, sender, can_id in [(0.5, a, 0x10), (1.2, a, 0x11), (1.3, b, 0x20), (2.5, a, 0x12), (2.6, b, 0x21)]:
        sim.run_until(t_ms / 1000)
        sender.send(msg(can_id, b""))
    sim.run_until(0.01)
    assert [m.arbitration_id for m in drain(b)] == [0x10, 0x12]
    assert [m.arbitration_id for m in drain(c)] == [0x10, 0x11, 0x12, 0x21]
    assert a.stats().nodes["B"].fault_dropped == 1


def test_same_seed_same_traffic_bit_for_bit() -> None:
    def scenario(seed: int) -> list[tuple]:
        clock = SimClock()
        buses = [can.Bus(interface="hilbus", channel="det", clock=clock, seed=seed, node=f"N{i}") for i in range(3)]
        wire: list[WireFrame] = []
        channel = buses[0].hil_channel
        channel.add_frame_observer(wire.append)
        try:
            channel.add_fault({"action": "corrupt_wire", "probability": 0.05})
            channel.add_fault({"action": "drop", "id": 0x100, "mask": 0x700, "probability": 0.3})
            channel.add_fault({"action": "corrupt_payload", "node": "N2", "probability": 0.2})
            channel.add_fault({"action": "duplicate", "id": 0x200, "probability": 0.1})
            for i, bus in enumerate(buses):
                for k, can_id in enumerate((0x100 + i, 0x200 + i, 0x300 + i)):
                    bus.send_periodic(msg(can_id, bytes([i, k, 0, 0])), period=0.01 * (k + 1))
            clock.run_until(2.0)
            received = [(m.timestamp, m.arbitration_id, bytes(m.data), m.is_error_frame) for m in drain(buses[1], True)]
            return [(w.t_start_ps, w.t_end_ps, w.sender, w.arbitration_id, w.data, w.error) for w in wire] + received
        finally:
            for bus in buses:
                bus.shutdown()

    first = scenario(42)
    assert first == scenario(42)
    assert first != scenario(43)
    assert any(entry[5] == "bit" for entry in first if len(entry) == 6)


# -- rule definitions ------------------------------------------------------------------------------


def test_rules_from_plain_dicts() -> None:
    rule = FaultRule.from_dict(
        {"action": "counter_jump", "id": "0x1A0", "node": "VCU", "t0_s": 1, "t1_s": 2.5, "probability": 0.25, "jump": 3}
    )
    assert (rule.id, rule.node, rule.t0_s, rule.t1_s, rule.probability, rule.jump) == (0x1A0, "VCU", 1.0, 2.5, 0.25, 3)
    assert FaultRule.from_dict({"action": "corrupt_payload", "xor": "ff 00 0f"}).xor == b"\xff\x00\x0f"
    assert FaultRule.from_dict({"action": "corrupt_payload", "set_bytes": {"2": 7}}).set_bytes == {2: 7}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"action": "explode"}, "expected an action in"),
        ({"id": 1}, "expected an 'action'"),
        ({"action": "drop", "colour": "red"}, "unknown field 'colour'"),
        ({"action": "drop", "id": "zero"}, "field 'id': expected an integer"),
        ({"action": "drop", "probability": 2}, "'probability': expected 0..1"),
        ({"action": "drop", "t0_s": 3, "t1_s": 1}, "expected t0_s <= t1_s"),
        ({"action": "babble", "id": 0}, "expected a 'node'"),
        ({"action": "babble", "node": "X"}, "expected the 'id'"),
        ({"action": "babble", "node": "X", "id": 0}, "expected an end"),
        ({"action": "cut_off"}, "expected a 'node'"),
        ({"action": "delay", "receiver": "B"}, "only 'drop' takes it"),
        ({"action": "counter_jump", "counter_bits": 4, "counter_shift": 6}, "inside one byte"),
        ({"action": "corrupt_payload", "xor": "zz"}, "expected hex bytes"),
        ("drop", "expected a table"),
    ],
)
def test_bad_rules_name_the_problem(spec, message: str) -> None:
    with pytest.raises(FaultConfigError, match=message) as info:
        FaultRule.from_dict(spec)
    assert "\n" not in str(info.value)


def test_counter_freeze_from_a_dbc_e2e_spec_is_seen_as_repeated(make_bus, sim: SimClock) -> None:
    from vehicle_io import load_database
    from vehicle_io.e2e import CheckStatus, E2EReceiver, E2ESpec, protect

    db = load_database()
    message = next(m for m in db.messages if m.bus_name == "pt" and E2ESpec.from_message(m) is not None)
    spec = E2ESpec.from_message(message)
    a = make_bus("A")
    b = make_bus("B")
    a.hil_channel.add_fault(FaultRule("counter_freeze", id=spec.frame_id, t0_s=0.0025, t1_s=0.0045, e2e=spec))
    for k in range(6):
        sim.run_until(k / 1000)
        a.send(msg(spec.frame_id, bytes(protect(spec, bytes(spec.length), k))))
    sim.run_until(0.01)
    receiver = E2EReceiver(spec)
    statuses = [receiver.check(bytes(m.data))[0] for m in drain(b)]
    # frames 3 and 4 repeat counter 2 with a valid CRC; frame 5 then jumps ahead by 3 (a
    # sequence finding whose name depends on the receiver's max delta, never a CRC error)
    assert statuses[:5] == [
        CheckStatus.OK, CheckStatus.OK, CheckStatus.OK, CheckStatus.REPEATED, CheckStatus.REPEATED,
    ]
    assert statuses[5] in (CheckStatus.OK_SOME_LOST, CheckStatus.WRONG_SEQUENCE)


def test_corrupt_on_the_wire_of_an_fd_frame_times_both_phases(make_bus, sim: SimClock) -> None:
    a = make_bus("A", channel="fdw", data_bitrate=2_000_000, fd=True)
    b = make_bus("B", channel="fdw", fd=True)
    data = bytes(range(12))
    a.hil_channel.add_fault(FaultRule("corrupt_wire", id=0x321, max_count=1))
    a.send(can.Message(arbitration_id=0x321, data=data, is_extended_id=False, is_fd=True, bitrate_switch=True))
    error = b.recv(1.0)
    head = "0" + format(0x321, "011b") + "00" + "101"  # SOF, id, RRS, IDE, FDF, res, BRS
    tail = "0" + format(9, "04b") + "".join(format(x, "08b") for x in data)  # ESI, DLC 9 (12 bytes)
    nominal_head, _ = stuff(head, skip_after_last=True)
    whole, _ = stuff(head + tail, skip_after_last=True)
    data_phase = len(whole) - len(nominal_head)
    attempt = (len(nominal_head) + 17) * BIT + Fraction(data_phase, 2_000_000)
    assert error.is_error_frame and error.timestamp == float(attempt)
    frame = b.recv(1.0)
    assert bytes(frame.data) == data and frame.is_fd


def test_babble_with_a_period_and_a_frame_budget(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    a.hil_channel.add_fault(FaultRule("babble", node="A", id=0x7F0, data=b"\xbb", period_s=0.001, max_count=4))
    a.send(msg(0x100, b"\x01"))  # A's own traffic still goes out between its babble frames
    sim.run_until(0.02)
    got = drain(b)
    babble = [m.timestamp for m in got if m.arbitration_id == 0x7F0]
    period = frame_time(0x7F0, b"\xbb")
    assert babble == [float(Fraction(k, 1000) + period) for k in range(4)]
    assert [m.arbitration_id for m in got].count(0x100) == 1
