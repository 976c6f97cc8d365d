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
