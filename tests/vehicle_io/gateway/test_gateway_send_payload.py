"""Gateway.send_payload (the control loop's transmit path) against Gateway.send of the same frame.

Random sequences of frames (allowlisted or not, wrong length, unknown bus, E2E-protected or
plain, extended, FD, repeated payloads that hit the E2E frame cache), arming changes, bus
failures and a shutdown: both paths must refuse with the same error, put the same frames on
the bus, count the same, advance the same E2E counters and keep the same black box and log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import can
import cantools
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gw_helpers import TEST_DBC, FakeClock

from tests.recording_bus import RecordingBus
from vehicle_io.e2e import E2ESpec, protect
from vehicle_io.errors import VehicleIoError
from vehicle_io.gateway import Gateway, TransmitGate
from vehicle_io.gateway.transmit import AllowedFrame

DB = cantools.database.load_string(TEST_DBC, database_format="dbc")
BUSES = ("a", "b")
ALLOW = [AllowedFrame(256, "a", 8, False), AllowedFrame(257, "a", 8, False), AllowedFrame(256, "b", 8, False),
         AllowedFrame(2566848513 & 0x1FFFFFFF, "b", 8, True), AllowedFrame(768, "a", 64, False)]


# Mostly frames the gate lets through (some repeating, for the E2E frame cache), some not.
allowed_frame = st.tuples(
    st.sampled_from([("a", 256, False), ("a", 257, False), ("b", 256, False),
                     ("b", 2566848513 & 0x1FFFFFFF, True)]),
    st.sampled_from([bytes(8), bytes(range(8)), b"\xff" * 8]),
).map(lambda t: (*t[0], t[1], False)) | st.sampled_from([("a", 768, False, bytes(range(64)), True),
                                                          ("a", 768, False, bytes(64), True)])
random_frame = st.tuples(
    st.sampled_from(["a", "b", "c"]),  # "c": not a bus of the gateway
    st.sampled_from([256, 257, 768, 2566848513 & 0x1FFFFFFF, 300]),
    st.booleans(),  # extended
    st.one_of(st.sampled_from([bytes(8), bytes(range(8)), b"\xff" * 8, bytes(64), bytes(range(64))]),
              st.binary(min_size=0, max_size=64)),
    st.booleans(),  # FD
)
step = st.one_of(
    allowed_frame.map(lambda f: ("send", f)),
    allowed_frame.map(lambda f: ("send", f)),
    random_frame.map(lambda f: ("send", f)),
    st.sampled_from(BUSES).map(lambda b: ("toggle_arm", b)),
    st.sampled_from(BUSES).map(lambda b: ("toggle_fail", b)),
)


def _frame(m: can.Message) -> tuple[Any, ...]:
    return (m.channel, m.arbitration_id, m.is_extended_id, m.is_fd, m.bitrate_switch, m.is_remote_frame,
            m.error_state_indicator, m.dlc, bytes(m.data), m.is_rx)


def _run(steps: list[tuple[str, Any]], shutdown_at: int, use_payload: bool, log: Path) -> dict[str, Any]:
    buses = {b: RecordingBus(b) for b in BUSES}
    clock = FakeClock()
    gate = TransmitGate(ALLOW, armed=BUSES)
    gw = Gateway(buses, DB, clock=clock, transmit_gate=gate, record_path=log, start=False)
    outcomes: list[Any] = []
    try:
        for k, (kind, arg) in enumerate(steps):
            clock.advance(0.001)
            if k == shutdown_at:
                gw.shutdown()
            if kind == "toggle_arm":
                gate.disarm(arg) if gate.is_armed(arg) else gate.arm(arg)
                continue
            if kind == "toggle_fail":
                buses[arg].failing = not buses[arg].failing
                continue
            bus, frame_id, extended, payload, fd = arg
            try:
                if use_payload:
                    out = gw.send_payload(bus, frame_id, extended, payload, fd)
                else:
                    msg = can.Message(arbitration_id=frame_id, is_extended_id=extended, data=payload, is_fd=fd,
                                      bitrate_switch=fd, check=False)
                    out = gw.send(bus, msg)
            except (VehicleIoError, can.CanError) as err:
                outcomes.append((type(err).__name__, str(err)))
            else:
                outcomes.append(_frame(out))
        frames = [_frame(m) for m in gw.blackbox.frames()]
    finally:
        gw.shutdown()
    lines = [line.split(" ", 1)[1] for line in log.read_text().splitlines() if line.strip()]
    return {"outcomes": outcomes, "sent": {b: [_frame(m) for m in bus.sent] for b, bus in buses.items()},
            "gate": gate.counters(), "e2e_counters": dict(gw._tx_counter), "blackbox": frames, "log": lines}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=60), shutdown_at=st.integers(0, 80))
def test_send_payload_equals_send_of_the_same_frame(steps: list[tuple[str, Any]], shutdown_at: int,
                                                    tmp_path_factory) -> None:
    folder = tmp_path_factory.mktemp("send_payload")
    fast = _run(steps, shutdown_at, True, folder / "fast.log")
    general = _run(steps, shutdown_at, False, folder / "general.log")
    assert fast == general
    # Both share the E2E fill: check it against protect() with counters kept here.
    spec = E2ESpec.from_message(DB.get_message_by_frame_id(256))
    counters: dict[str, int] = {}
    sends = [arg for kind, arg in steps if kind == "send"]
    for (bus, frame_id, extended, payload, _), outcome in zip(sends, fast["outcomes"]):
        if frame_id != 256 or extended:
            continue
        c = counters.get(bus, 0)
        if outcome[0] == bus:
            assert outcome[8] == bytes(protect(spec, payload, c))
        if outcome[0] in (bus, "CanOperationError"):  # past the gate: the counter advanced
            counters[bus] = (c + 1) % 15


def test_repeated_payloads_cycle_through_every_counter(tmp_path) -> None:
    """The E2E frame cache: 40 sends of one payload, then of another, equal send()'s frames."""
    steps = [("send", ("a", 256, False, bytes(range(8)) if k < 40 else bytes(8), False)) for k in range(80)]
    fast = _run(steps, 10_000, True, tmp_path / "fast.log")
    general = _run(steps, 10_000, False, tmp_path / "general.log")
    assert len(fast["sent"]["a"]) == 80
    assert len({f[8] for f in fast["sent"]["a"]}) == 30  # 15 counter values x 2 payloads
    assert fast == general


class FieldsBus(RecordingBus):
    """A RecordingBus that also takes frames as fields (as the rig's hilbus does): Gateway.send_data
    and send_many hand it the frame without building a Message; it records the Message ``send``
    would have got."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name
        self.fields_calls = 0

    def send_data(self, arbitration_id: int, data: bytes, *, is_extended_id: bool = False, is_fd: bool = False,
                  bitrate_switch: bool = False, timeout: float | None = None) -> None:
        self.fields_calls += 1
        self.send(can.Message(arbitration_id=arbitration_id, is_extended_id=is_extended_id, data=data, is_fd=is_fd,
                              bitrate_switch=bitrate_switch, is_rx=False, channel=self.name, check=False), timeout)


def _run_mode(steps: list[tuple[str, Any]], shutdown_at: int, mode: str, bus_cls: type, log: Path | None,
              ) -> dict[str, Any]:
    """Like _run, through ``mode``: "send" (Gateway.send of a Message), "data" (send_data) or
    "many" (send_many, runs of consecutive sends in one call); outcomes as ok / error text."""
    buses = {b: bus_cls(b) for b in BUSES}
    clock = FakeClock()
    gate = TransmitGate(ALLOW, armed=BUSES)
    gw = Gateway(buses, DB, clock=clock, transmit_gate=gate, record_path=log, start=False)
    outcomes: list[Any] = []
    pending: list[tuple[str, int, bool, bytes, bool]] = []

    def flush() -> None:
        if pending:
            for err in gw.send_many(list(pending)):
                outcomes.append("ok" if err is None else (type(err).__name__, str(err)))
            pending.clear()

    try:
        for k, (kind, arg) in enumerate(steps):
            if kind != "send":
                # A run of sends shares one time: send_many sends it at once, at that time.
                flush()
                clock.advance(0.001)
            if k == shutdown_at:
                flush()
                gw.shutdown()
            if kind != "send":
                if kind == "toggle_arm":
                    gate.disarm(arg) if gate.is_armed(arg) else gate.arm(arg)
                else:
                    buses[arg].failing = not buses[arg].failing
                continue
            bus, frame_id, extended, payload, fd = arg
            if mode == "many":
                pending.append((bus, frame_id, extended, payload, fd))
                continue
            try:
                if mode == "data":
                    gw.send_data(bus, frame_id, extended, payload, fd)
                else:
                    gw.send(bus, can.Message(arbitration_id=frame_id, is_extended_id=extended, data=payload, is_fd=fd,
                                             bitrate_switch=fd, check=False))
            except (VehicleIoError, can.CanError) as err:
                outcomes.append((type(err).__name__, str(err)))
            else:
                outcomes.append("ok")
        flush()
        frames = [_frame(m) for m in gw.blackbox.frames()]
    finally:
        gw.shutdown()
    lines = [line.split(" ", 1)[1] for line in log.read_text().splitlines() if line.strip()] if log else []
    return {"outcomes": outcomes, "sent": {b: [_frame(m) for m in bus.sent] for b, bus in buses.items()},
            "gate": gate.counters(), "e2e_counters": dict(gw._tx_counter), "blackbox": frames, "log": lines,
            "fields_calls": sum(getattr(b, "fields_calls", 0) for b in buses.values())}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=50), shutdown_at=st.integers(0, 70), record=st.booleans())
def test_send_data_and_send_many_equal_send(steps: list[tuple[str, Any]], shutdown_at: int, record: bool,
                                            tmp_path_factory) -> None:
    """send_data and send_many, on a bus that takes fields (no Message built) or not, equal send()."""
    folder = tmp_path_factory.mktemp("send_data")
    runs = {}
    for mode in ("send", "data", "many"):
        for cls in (RecordingBus, FieldsBus):
            log = folder / f"{mode}-{cls.__name__}.log" if record else None
            runs[(mode, cls.__name__)] = _run_mode(steps, shutdown_at, mode, cls, log)
    reference = runs[("send", "RecordingBus")]
    n_sent = sum(len(frames) for frames in reference["sent"].values())
    for (mode, cls), run in runs.items():
        fields_calls = run.pop("fields_calls")
        assert run == reference, (mode, cls)
        # Frames as fields exactly where promised: send_data / send_many to such a bus, no recorder.
        direct = mode != "send" and cls == "FieldsBus" and not record
        assert fields_calls >= (n_sent if direct else 0) and (direct or fields_calls == 0), (mode, cls)


def test_send_many_decides_anew_after_the_gate_changes() -> None:
    """send_many checks every frame at the gate: arming and allowlist changes (and another
    gate) are seen at the next frame, as by send_data."""
    buses = {b: FieldsBus(b) for b in BUSES}
    gate = TransmitGate(ALLOW, armed=BUSES)
    gw = Gateway(buses, DB, clock=FakeClock(), transmit_gate=gate, start=False)
    frame = ("a", 256, False, bytes(8), False)
    other = ("a", 300, False, bytes(8), False)
    try:
        assert gw.send_many([frame, other])[0] is None
        gate.disarm("a")
        assert [type(e).__name__ for e in gw.send_many([frame])] == ["TransmitBlocked"]
        gate.arm("a")
        assert gw.send_many([frame]) == [None]
        gate.allow(300, "a", 8)
        assert gw.send_many([other]) == [None]
        gw.gate = TransmitGate(ALLOW)  # nothing armed
        assert [type(e).__name__ for e in gw.send_many([frame])] == ["TransmitBlocked"]
        assert gate.counters()["a"] == {"sent": 3, "blocked_not_armed": 1, "blocked_not_allowed": 1,
                                        "blocked_unknown_bus": 0, "send_error": 0}
        assert buses["a"].fields_calls == 3
    finally:
        gw.shutdown()
