"""Timing, arbitration and delivery of the timed virtual bus in simulated time."""

from __future__ import annotations

from fractions import Fraction

import can
import pytest
from hilbus_reference import classic_frame, fd_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.bus import SimClock, WireFrame, open_channel
from hil.bus.errors import BusConfigError, InvalidFrameError, TransmitQueueFull

BITRATE = 500_000


def msg(can_id: int, data: bytes = b"", *, ext: bool = False, remote: bool = False, dlc: int | None = None,
        fd: bool = False, brs: bool = False) -> can.Message:
    return can.Message(
        arbitration_id=can_id, data=data, is_extended_id=ext, is_remote_frame=remote,
        dlc=len(data) if dlc is None else dlc, is_fd=fd, bitrate_switch=brs,
    )


def classic_time(can_id: int, data: bytes, ext: bool = False, remote: bool = False, dlc: int | None = None) -> Fraction:
    n = len(classic_frame(can_id, data, extended=ext, remote=remote, dlc=len(data) if dlc is None else dlc))
    return Fraction(n, BITRATE)


def drain(bus: can.BusABC) -> list[can.Message]:
    out = []
    while (m := bus.recv(0)) is not None:
        out.append(m)
    return out


def test_back_to_back_timestamps_equal_exact_frame_times(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    frames = [(0x000, bytes(8)), (0x7FF, b"\xff" * 8), (0x123, b"\x01\x02"), (0x555, b"")]
    for can_id, data in frames:
        a.send(msg(can_id, data))
    got = [b.recv(1.0) for _ in frames]
    t = Fraction(0)
    for (can_id, data), m in zip(frames, got):
        assert m is not None and m.arbitration_id == can_id and bytes(m.data) == data
        t += classic_time(can_id, data)  # each starts when the previous one ends
        assert m.timestamp == float(t)


def test_frame_starts_at_enqueue_time_on_an_idle_bus(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    a.send(msg(0x10, b"\x01"))
    sim.run_until(0.005)
    a.send(msg(0x20, b"\x02\x03"))
    a.send(msg(0x30, b"\x04"))  # queued behind 0x20: starts at its end
    first, second, third = (b.recv(1.0) for _ in range(3))
    assert first.timestamp == float(classic_time(0x10, b"\x01"))
    t_second = Fraction(5, 1000) + classic_time(0x20, b"\x02\x03")
    assert second.timestamp == float(t_second)
    assert third.timestamp == float(t_second + classic_time(0x30, b"\x04"))


def test_recv_drives_simulated_time_to_the_frame_and_to_the_timeout(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    assert b.recv(0.25) is None
    assert sim.now() == 0.25  # nothing happened: the whole timeout passed, in simulated time
    a.send(msg(0x1, b""))
    m = b.recv(10.0)
    assert m is not None and sim.now() == m.timestamp == float(Fraction(1, 4) + classic_time(0x1, b""))


def test_fd_frames_time_the_data_phase_at_the_data_rate(make_bus, sim: SimClock) -> None:
    a = make_bus("A", channel="fd", bitrate=500_000, data_bitrate=2_000_000, fd=True)
    b = make_bus("B", channel="fd", fd=True)
    payloads = [(0x2AA, b"\x55" * 64, True), (0x000, bytes(8), True), (0x123, bytes(range(20)), False)]
    for can_id, data, brs in payloads:
        a.send(msg(can_id, data, fd=True, brs=brs))
    t = Fraction(0)
    for can_id, data, brs in payloads:
        m = b.recv(1.0)
        nominal, data_phase = fd_frame(can_id, data, brs=brs)
        t += Fraction(len(nominal), 500_000) + Fraction(len(data_phase), 2_000_000)
        assert m.is_fd and m.bitrate_switch == brs and bytes(m.data) == data
        assert m.timestamp == float(t)
    # the shortest 64-byte frame: 30 nominal + 549 data bits = 334.5 us
    assert Fraction(30, 500_000) + Fraction(549, 2_000_000) == Fraction(3345, 10_000_000)


def test_fd_payload_is_padded_to_a_dlc_length(make_bus) -> None:
    a = make_bus("A", channel="fd", data_bitrate=2_000_000, fd=True)
    b = make_bus("B", channel="fd", fd=True)
    a.send(msg(0x10, b"\x01" * 9, fd=True))
    m = b.recv(1.0)
    assert bytes(m.data) == b"\x01" * 9 + bytes(3) and m.dlc == 12


def test_classic_endpoint_on_fd_channel_does_not_see_fd_frames(make_bus) -> None:
    a = make_bus("A", channel="fd", data_bitrate=2_000_000, fd=True)
    classic = make_bus("C", channel="fd", fd=False)
    a.send(msg(0x10, bytes(12), fd=True))
    a.send(msg(0x11, b"\x01"))
    got = []
    while (m := classic.recv(0.01)) is not None:
        got.append(m)
    assert [m.arbitration_id for m in got] == [0x11]
    with pytest.raises(InvalidFrameError, match="classic frame"):
        classic.send(msg(0x12, b"", fd=True))


def test_arbitration_under_contention(make_bus, sim: SimClock) -> None:
    a, b, c, d = (make_bus(n) for n in "ABCD")
    e = make_bus("E", tx_order="priority")
    observer = make_bus("OBS")
    a.send(msg(0x300, b"\x01"))
    a.send(msg(0x050, b"\x02"))  # behind 0x300 in A's single buffer (FIFO)
    b.send(msg(0x200, remote=True, dlc=2))
    c.send(msg(0x200, b"\x03"))
    d.send(msg(0x200 << 18, b"\x04", ext=True))
    e.send(msg(0x400, b"\x05"))
    e.send(msg(0x060, b"\x06"))  # E sends by priority: 0x060 competes first
    order = [(m.arbitration_id, m.is_remote_frame) for m in (observer.recv(1.0) for _ in range(7))]
    assert order == [
        (0x060, False),  # E's best frame is the lowest id on the bus
        (0x200, False),  # data beats remote of the same id
        (0x200, True),  # standard remote beats extended with the same base id
        (0x200 << 18, False),
        (0x300, False),  # A's head; A's 0x050 waits behind it
        (0x050, False),
        (0x400, False),
    ]
    stats = a.stats().nodes
    assert stats["A"].arbitration_lost == 4  # lost at every SOF until its 0x300 went
    assert stats["E"].arbitration_lost == 5


def test_frames_pending_when_the_bus_becomes_idle_compete(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    obs = make_bus("OBS")
    a.send(msg(0x700, bytes(8)))  # occupies the bus
    sim.run_until(0.0001)
    a.send(msg(0x600, b""))
    b.send(msg(0x100, b""))  # queued later than A's 0x600 but wins at the next SOF
    ids = [obs.recv(1.0).arbitration_id for _ in range(3)]
    assert ids == [0x700, 0x100, 0x600]


def test_receive_own_and_loopback_between_endpoints_of_one_node(make_bus) -> None:
    own = make_bus("N", receive_own_messages=True)
    sibling = make_bus("N")
    other = make_bus("O")
    own.send(msg(0x42, b"\x01"))
    echo = own.recv(1.0)
    assert echo.arbitration_id == 0x42 and echo.is_rx is False
    seen = sibling.recv(1.0)
    assert seen.arbitration_id == 0x42 and seen.is_rx is False
    received = other.recv(1.0)
    assert received.is_rx is True and received.channel == "t"
    quiet = make_bus("Q")
    quiet.send(msg(0x43, b""))
    assert [m.arbitration_id for m in drain(quiet)] == []


def test_filters_are_applied_and_timeout_is_bus_time(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B", can_filters=[{"can_id": 0x100, "can_mask": 0x7F0, "extended": False}])
    for can_id in (0x200, 0x105, 0x300, 0x10F):
        a.send(msg(can_id, b""))
    assert [b.recv(1.0).arbitration_id for _ in range(2)] == [0x105, 0x10F]
    start = sim.now()
    a.send(msg(0x200, b""))
    assert b.recv(0.5) is None  # the non-matching frame does not end the wait early
    assert sim.now() == pytest.approx(start + 0.5, abs=1e-12)


def test_send_waits_in_simulated_time_when_the_tx_queue_is_full(make_bus, sim: SimClock) -> None:
    a = make_bus("A", tx_queue_size=2)
    b = make_bus("B")
    a.send(msg(0x1, b""))
    a.send(msg(0x2, b""))
    with pytest.raises(TransmitQueueFull, match="transmit queue"):
        a.send(msg(0x3, b""), timeout=0)
    a.send(msg(0x3, b""))  # no timeout: the clock runs until the first frame left the queue
    assert sim.now() == float(classic_time(0x1, b""))
    assert [m.arbitration_id for m in (b.recv(1.0) for _ in range(3))] == [1, 2, 3]


def test_send_periodic_runs_on_the_bus_clock(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    task = a.send_periodic(msg(0x321, b"\x00\x11"), period=0.01, duration=0.05)
    sim.run_until(0.2)
    got = drain(b)
    duration = classic_time(0x321, b"\x00\x11")
    assert [m.timestamp for m in got] == [float(Fraction(k, 100) + duration) for k in range(5)]
    task.stop()
    counter = {"n": 0}

    def bump(m: can.Message) -> None:
        counter["n"] += 1
        m.data[0] = counter["n"]

    second = a.send_periodic(msg(0x322, b"\x00"), period=0.02, modifier_callback=bump)
    sim.advance(0.1)  # sends at +0, +0.02, ..., +0.1: the last one is still on the wire
    assert [m.data[0] for m in drain(b)] == [1, 2, 3, 4, 5]
    assert second.sent == 6
    second.stop()
    sim.advance(0.1)
    assert [m.data[0] for m in drain(b)] == [6]


def test_statistics_and_bus_load(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    for _ in range(10):
        a.send(msg(0x000, bytes(8)))
    sim.run_until(1.0)
    stats = a.stats()
    assert stats.frames == 10 and stats.error_frames == 0
    assert stats.nominal_bits == 10 * 127
    assert stats.busy_ps == 10 * 127 * 2_000_000
    assert stats.load_pct == pytest.approx(100 * 10 * 127 / BITRATE)
    assert stats.nodes["A"].tx_frames == 10 and stats.nodes["B"].rx_frames == 10
    assert stats.nodes["A"].tx_bits == 1270
    # full load: a sender that never lets the queue run dry keeps the bus 100 % busy
    channel = a.hil_channel
    channel.reset_stats()
    before = channel.stats()
    for _ in range(200):
        a.send(msg(0x7FF, b"\xff" * 8))
    sim.run_until(sim.now() + float(200 * classic_time(0x7FF, b"\xff" * 8)))
    after = channel.stats()
    assert after.load_since(before) == pytest.approx(100.0)
    assert len(drain(b)) == 210


def test_frame_time_at_full_load_matches_references(make_bus) -> None:
    a = make_bus("A")
    channel = a.hil_channel
    shortest = channel.frame_time_s(msg(0x555, b"\x55" * 8))
    assert 1 / shortest <= 4505 and 1 / channel.frame_time_s(msg(0x000, bytes(8))) >= 3704


def test_wire_observer_sees_every_frame_with_exact_bits(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    make_bus("B")
    seen: list[WireFrame] = []
    stop = a.hil_channel.add_frame_observer(seen.append)
    a.send(msg(0x7FF, b"\xff" * 8))
    a.send(msg(0x1ABCDEF, b"\x01", ext=True))
    sim.run_until(0.01)
    stop()
    a.send(msg(0x1, b""))
    sim.run_until(0.02)
    assert [w.arbitration_id for w in seen] == [0x7FF, 0x1ABCDEF]
    assert seen[0].bits == len(classic_frame(0x7FF, b"\xff" * 8))
    assert seen[1].bits == len(classic_frame(0x1ABCDEF, b"\x01", extended=True))
    assert seen[1].t_start_ps == seen[0].t_end_ps and seen[0].sender == "A"
    assert seen[0].to_message().timestamp == seen[0].t_end


# -- no loss, no duplicate, no reorder (hypothesis) ----------------------------------------------

sends = st.lists(
    st.tuples(
        st.integers(0, 3),  # node
        st.integers(0, 2_000),  # send time in microseconds
        st.integers(0, 0x7FF),
        st.booleans(),  # extended
        st.integers(0, 8),  # payload length
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sends)
def test_every_frame_arrives_once_everywhere_in_send_order(plan: list[tuple[int, int, int, bool, int]]) -> None:
    clock = SimClock()
    buses = [can.Bus(interface="hilbus", channel="prop", clock=clock, node=f"N{i}") for i in range(4)]
    wire: list[WireFrame] = []
    buses[0].hil_channel.add_frame_observer(wire.append)
    sent: dict[int, list[bytes]] = {i: [] for i in range(4)}
    enqueued_ps: dict[bytes, int] = {}
    try:
        for serial, (node, t_us, can_id, ext, length) in enumerate(sorted(plan, key=lambda p: p[1])):
            clock.run_until(t_us / 1e6)
            tag = bytes([node, serial]) + bytes(max(0, length - 2))
            frame_id = (can_id << 18 | serial) if ext else can_id
            buses[node].send(msg(frame_id, tag[:max(2, length)], ext=ext))
            sent[node].append(tag[:max(2, length)])
            enqueued_ps[tag[:2]] = clock.now_ps()
        clock.run_until(1.0)
        for i, bus in enumerate(buses):
            got = drain(bus)
            for sender in range(4):
                from_sender = [bytes(m.data) for m in got if m.data[0] == sender]
                assert from_sender == ([] if sender == i else sent[sender])
            assert [m.timestamp for m in got] == sorted(m.timestamp for m in got)
        # timing: each frame lasts exactly its bit count; it starts at its enqueue time when the
        # bus was idle, otherwise right at the end of the previous frame.
        previous_end = 0
        for w in wire:
            expected_bits = len(classic_frame(w.arbitration_id, w.data, extended=w.is_extended_id))
            assert w.t_end_ps - w.t_start_ps == expected_bits * 2_000_000
            assert w.t_start_ps >= max(previous_end, enqueued_ps[w.data[:2]])
            assert w.t_start_ps in (previous_end, enqueued_ps[w.data[:2]])
            previous_end = w.t_end_ps
        assert len(wire) == len(plan)
    finally:
        for bus in buses:
            bus.shutdown()


# -- configuration and bad input ----------------------------------------------------------------


def test_bad_frames_raise_one_line_errors_and_are_counted(make_bus) -> None:
    a = make_bus("A")
    make_bus("B")
    bad = [
        (can.Message(arbitration_id=0x800, is_extended_id=False), "11-bit id"),
        (can.Message(arbitration_id=1 << 29, is_extended_id=True), "29-bit id"),
        (can.Message(arbitration_id=1, is_error_frame=True), "error frame"),
        (can.Message(arbitration_id=1, data=bytes(12), is_fd=True), "classic frame"),
        (can.Message(arbitration_id=1, is_remote_frame=True, dlc=9, is_extended_id=False, check=False), "DLC 0..8"),
        ("not a message", "expected a can.Message"),
    ]
    for frame, text in bad:
        with pytest.raises(InvalidFrameError, match=text) as info:
            a.send(frame)  # type: ignore[arg-type]
        assert "\n" not in str(info.value)
        assert isinstance(info.value, can.CanOperationError)
    stats = a.stats().nodes["A"]
    assert stats.rejected == len(bad) and stats.tx_frames == 0
    assert [e.code for e in a.hil_channel.recent_events].count("frame.rejected") == len(bad)


def test_channel_settings_must_match(make_bus, sim: SimClock) -> None:
    make_bus("A", bitrate=500_000)
    with pytest.raises(BusConfigError, match="bitrate 500000, but got 250000"):
        make_bus("B", bitrate=250_000)
    with pytest.raises(BusConfigError, match="clock"):
        make_bus("B", clock=SimClock())
    with pytest.raises(BusConfigError, match="classic CAN, but got fd=True"):
        make_bus("B", fd=True)
    with pytest.raises(BusConfigError, match="bitrate"):
        open_channel("x", bitrate=5)
    with pytest.raises(BusConfigError, match="tx_order"):
        make_bus("C", tx_order="random")


def test_shutdown_is_idempotent_and_releases_the_channel(sim: SimClock) -> None:
    a = can.Bus(interface="hilbus", channel="life", clock=sim)
    b = can.Bus(interface="hilbus", channel="life")
    assert a.hil_channel is b.hil_channel
    assert {c["channel"] for c in can.detect_available_configs(interfaces=["hilbus"])} >= {"life"}
    a.shutdown()
    a.shutdown()
    with pytest.raises(can.CanOperationError, match="closed"):
        a.send(msg(1, b""))
    b.shutdown()
    assert b.hil_channel.closed
    with can.Bus(interface="hilbus", channel="life", clock=sim) as c:
        assert c.hil_channel is not b.hil_channel  # a fresh channel


def test_real_time_clock_delivers_with_wall_clock_timestamps() -> None:
    import time

    a = can.Bus(interface="hilbus", channel="wall", clock="real", node="A")
    b = can.Bus(interface="hilbus", channel="wall", node="B")
    try:
        before = time.time()
        with a.clock.lock:  # both queued before the scheduler thread arbitrates
            a.send(msg(0x100, b"\x01\x02"))
            a.send(msg(0x101, b"\x03"))
        first = b.recv(2.0)
        second = b.recv(2.0)
        assert first.arbitration_id == 0x100 and second.arbitration_id == 0x101
        assert before <= first.timestamp < second.timestamp
        # back to back on the bus: the second ends one frame time after the first (to the
        # resolution of a float holding an epoch time, ~0.2 us)
        assert second.timestamp - first.timestamp == pytest.approx(float(classic_time(0x101, b"\x03")), abs=1e-6)
        assert b.recv(0.01) is None
    finally:
        a.shutdown()
        b.shutdown()


def test_real_clock_behind_schedule_still_lets_other_threads_take_the_lock() -> None:
    """A scheduler running late events back to back must not starve senders or shutdown."""
    import time as _time

    from hil.bus.clock import RealClock

    clock = RealClock()
    clock.attach()  # starts the scheduler thread, as a channel does
    ran = [0]
    total = 3000

    def slow_event() -> None:
        ran[0] += 1
        end = _time.perf_counter() + 50e-6  # a callback slower than its period: the clock falls behind
        while _time.perf_counter() < end:
            pass

    try:
        with clock.lock:
            now = clock.now()
            for _ in range(total):
                clock.call_at(now, slow_event)
        _time.sleep(0.01)
        with clock.lock:  # must be granted while events are still pending
            ran_when_granted = ran[0]
        assert 0 < ran_when_granted < total
    finally:
        clock.detach()
        clock.close()
