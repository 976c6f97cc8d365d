"""The API other code builds on: channels, endpoints, observers, clocks and threads."""

from __future__ import annotations

import threading
from fractions import Fraction

import can
import pytest
from hilbus_reference import classic_frame

from hil.bus import BusEvent, RealClock, SimClock, get_channel, open_channel
from hil.bus.errors import BusConfigError


def msg(can_id: int, data: bytes = b"") -> can.Message:
    return can.Message(arbitration_id=can_id, data=data, is_extended_id=False)


def frame_time(can_id: int, data: bytes) -> Fraction:
    return Fraction(len(classic_frame(can_id, data)), 500_000)


def test_endpoints_with_callbacks_and_observers(sim: SimClock) -> None:
    with open_channel("hub", bitrate=500_000, clock=sim) as channel:
        assert get_channel("hub") is channel
        got: list[can.Message] = []
        client = channel.attach(node="client-1", on_frame=got.append)
        ecu = channel.attach(node="ecu")
        events: list[BusEvent] = []
        channel.add_event_observer(events.append)
        wire = []
        unsubscribe = channel.add_frame_observer(wire.append)
        ecu.send(msg(0x10, b"\x01"))
        client.send(msg(0x20, b"\x02"))
        sim.run_until(0.01)
        assert [(m.arbitration_id, m.timestamp) for m in got] == [(0x10, float(frame_time(0x10, b"\x01")))]
        assert ecu.recv(0).arbitration_id == 0x20
        assert [(w.sender, w.arbitration_id) for w in wire] == [("ecu", 0x10), ("client-1", 0x20)]
        unsubscribe()
        channel.add_fault({"action": "drop", "id": 0x30})
        ecu.send(msg(0x30))
        assert events[-1].code == "fault.drop" and events[-1].as_dict()["id"] == 0x30
        assert events[-1].as_dict()["t"] == sim.now() and events[-1].as_dict()["node"] == "ecu"
        assert channel.nodes() == ["client-1", "ecu"]
        client.close()
        client.close()
        ecu.close()
        assert get_channel("hub") is channel  # the open_channel reference keeps it
    assert get_channel("hub") is None


def test_rx_queue_bound_counts_overflow(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B", rx_queue_size=3)
    for i in range(5):
        a.send(msg(0x100 + i))
    sim.run_until(0.01)
    assert [b.recv(0).arbitration_id for _ in range(3)] == [0x102, 0x103, 0x104]
    assert b.stats().nodes["B"].rx_overflow == 2


def test_flush_tx_buffer_discards_unsent_frames(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    for i in range(4):
        a.send(msg(0x100 + i))
    sim.run_until(0.0001)  # the first frame is on the wire, the rest wait
    a.flush_tx_buffer()
    sim.run_until(0.01)
    assert [m.arbitration_id for m in iter(lambda: b.recv(0), None)] == [0x100]
    assert a.stats().nodes["A"].aborted == 3
    a.send(msg(0x200))  # the queue has room again
    assert b.recv(0.01).arbitration_id == 0x200


def test_filters_can_change_while_frames_wait(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    for can_id in (0x100, 0x200, 0x300):
        a.send(msg(can_id))
    sim.run_until(0.01)
    b.set_filters([{"can_id": 0x200, "can_mask": 0x7FF}])
    assert [m.arbitration_id for m in iter(lambda: b.recv(0), None)] == [0x200]
    with pytest.raises(BusConfigError, match="expected filters like"):
        b.set_filters([{"id": 1}])


def test_listen_only_state_switch(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    make_bus("C")  # someone must acknowledge A's frames while B only listens
    b.state = can.BusState.PASSIVE
    assert b.state == can.BusState.PASSIVE
    with pytest.raises(can.CanOperationError, match="listen-only"):
        b.send(msg(1))
    a.send(msg(2))
    assert b.recv(0.01).arbitration_id == 2  # still receives
    b.state = can.BusState.ACTIVE
    b.send(msg(3))
    assert a.recv(0.01).arbitration_id == 3
    with pytest.raises(BusConfigError, match="ACTIVE or BusState.PASSIVE"):
        b.state = can.BusState.ERROR


def test_protocol_and_channel_info(make_bus) -> None:
    classic = make_bus("A")
    fd = make_bus("F", channel="fdinfo", data_bitrate=2_000_000, fd=True)
    assert classic.protocol == can.CanProtocol.CAN_20
    assert fd.protocol == can.CanProtocol.CAN_FD
    assert "2000000" in fd.channel_info and "simulated" in fd.channel_info


def test_recv_without_timeout_waits_for_another_thread(sim: SimClock) -> None:
    a = can.Bus(interface="hilbus", channel="thr", clock=sim, node="A")
    b = can.Bus(interface="hilbus", channel="thr", node="B")
    received: list[can.Message] = []
    try:
        reader = threading.Thread(target=lambda: received.append(b.recv()))
        reader.start()
        reader.join(0.05)
        assert reader.is_alive()  # nothing scheduled: recv(None) waits for someone to act
        a.send(msg(0x55, b"\x01"))
        reader.join(5.0)
        assert not reader.is_alive()
        assert received[0].arbitration_id == 0x55
        assert received[0].timestamp == float(frame_time(0x55, b"\x01"))
    finally:
        a.shutdown()
        b.shutdown()


def test_manual_clock_recv_waits_for_the_rig_to_advance() -> None:
    clock = SimClock(auto_advance=False)
    a = can.Bus(interface="hilbus", channel="manual", clock=clock, node="A")
    b = can.Bus(interface="hilbus", channel="manual", node="B")
    result: dict[str, object] = {}
    try:
        def wait() -> None:
            result["msg"] = b.recv(0.5)
            result["t"] = clock.now()

        reader = threading.Thread(target=wait)
        reader.start()
        reader.join(0.05)
        assert reader.is_alive()  # the reader does not move time itself
        clock.run_until(0.2)
        clock.run_until(0.6)  # passes the reader's deadline (0.5 s of bus time)
        reader.join(5.0)
        assert not reader.is_alive() and result["msg"] is None
        a.send(msg(0x1))
        clock.advance(0.01)
        assert b.recv(0).arbitration_id == 0x1
    finally:
        a.shutdown()
        b.shutdown()


def test_callbacks_cannot_block_on_the_clock_they_run_on(make_bus, sim: SimClock) -> None:
    a = make_bus("A")
    b = make_bus("B")
    outcome = {}

    def callback() -> None:
        outcome["recv"] = b.recv(1.0)  # returns at once: a callback cannot wait on its own time
        with pytest.raises(RuntimeError, match="drive the clock"):
            sim.run_until(5.0)
        a.send(msg(0x77))
        outcome["now"] = sim.now()

    sim.call_at(0.1, callback)
    sim.run_until(1.0)
    assert outcome["recv"] is None and outcome["now"] == 0.1
    assert b.recv(0).timestamp == float(Fraction(1, 10) + frame_time(0x77, b""))


def test_clock_scheduling_order_and_cancel(sim: SimClock) -> None:
    log: list[tuple[float, str]] = []
    sim.call_at(0.2, lambda: log.append((sim.now(), "b")))
    handle = sim.call_at(0.15, lambda: log.append((sim.now(), "cancelled")))
    sim.call_later(0.1, lambda: log.append((sim.now(), "a")))
    sim.call_at(0.2, lambda: log.append((sim.now(), "c")))  # same time: in scheduling order
    handle.cancel()
    assert sim.pending_events() == 3
    assert sim.run_until_idle(10.0)
    assert log == [(0.1, "a"), (0.2, "b"), (0.2, "c")]
    with pytest.raises(ValueError, match="expected a delay >= 0 s"):
        sim.call_later(-1, print)
    with pytest.raises(ValueError, match="expected a time step >= 0 s"):
        sim.advance(-0.1)


def test_real_clock_thread_runs_callbacks_and_stops_with_the_last_channel() -> None:
    clock = RealClock()
    with open_channel("rt", clock=clock) as channel:
        seen = threading.Event()
        got: list[can.Message] = []

        def on_frame(m: can.Message) -> None:
            got.append(m)
            seen.set()

        listener = channel.attach(node="L", on_frame=on_frame)
        talker = channel.attach(node="T")
        talker.send(msg(0x123, b"\x01"))
        assert seen.wait(2.0)
        assert got[0].arbitration_id == 0x123
        fired = threading.Event()
        clock.call_later(0.001, fired.set)
        assert fired.wait(2.0)
        listener.close()
        talker.close()
    assert not [t for t in threading.enumerate() if t.name == "hilbus-realclock"]


def test_hilbus_clock_option_by_name() -> None:
    with can.Bus(interface="hilbus", channel="named", clock="sim") as bus:
        assert bus.clock.is_simulated and bus.clock.now() == 0.0
        with pytest.raises(BusConfigError, match="clock"):
            can.Bus(interface="hilbus", channel="named", clock="real")
    with pytest.raises(BusConfigError, match="expected a Clock, 'sim' or 'real'"):
        can.Bus(interface="hilbus", channel="named2", clock="sundial")


def test_a_failing_callback_does_not_stop_the_bus(sim: SimClock, caplog: pytest.LogCaptureFixture) -> None:
    with open_channel("cb", clock=sim) as channel:
        def broken(m: can.Message) -> None:
            raise RuntimeError("consumer bug")

        bad = channel.attach(node="bad", on_frame=broken)
        good = channel.attach(node="good")
        sender = channel.attach(node="tx")
        channel.add_frame_observer(broken)  # type: ignore[arg-type]
        sender.send(msg(1))
        sender.send(msg(2))
        sim.run_until(0.01)
        assert [good.recv(0).arbitration_id, good.recv(0).arbitration_id] == [1, 2]
        assert bad.callback_errors == 2 and channel.observer_errors == 2
        assert "on_frame callback failed" in caplog.text
        for endpoint in (bad, good, sender):
            endpoint.close()


def test_bad_options_name_the_option() -> None:
    with pytest.raises(BusConfigError, match="'bitrate': expected an integer, but got 'fast'"):
        can.Bus(interface="hilbus", channel="opt", bitrate="fast", clock="sim")
    with pytest.raises(BusConfigError, match="expected a nominal bitrate"):
        can.Bus(interface="hilbus", channel="opt", bitrate=5_000_000, clock="sim")
    with pytest.raises(BusConfigError, match="expected fd=True with a data_bitrate"):
        can.Bus(interface="hilbus", channel="opt", data_bitrate=2_000_000, fd=False, clock="sim")
    with can.Bus(interface="hilbus", channel="opt", bitrate="250000", clock="sim") as bus:  # config-file text
        assert bus.hil_channel.bitrate == 250_000
