"""Transmit gate (default deny, allowlist, E2E fill) and cangw-style routing with rate limits."""

from __future__ import annotations

import can
import numpy as np
import pytest
from gw_helpers import wait_until

from vehicle_io.e2e import E2EReceiver, E2ESpec, SMState
from vehicle_io.errors import TransmitBlocked
from vehicle_io.gateway import AllowedFrame, Gateway, RouteRule, Router, TransmitGate


def drain(bus: can.BusABC) -> list[can.Message]:
    out = []
    while (msg := bus.recv(timeout=0.2)) is not None:
        out.append(msg)
    return out


# -- the gate alone -----------------------------------------------------------------------------

def test_gate_denies_everything_by_default() -> None:
    gate = TransmitGate()
    with pytest.raises(TransmitBlocked, match="expected bus 'pt' to be armed"):
        gate.check("pt", 0x80, 8)
    gate.allow(0x80, "pt", 8)
    with pytest.raises(TransmitBlocked, match="listen-only"):
        gate.check("pt", 0x80, 8)  # allowlisted but not armed
    gate.arm("pt")
    gate.check("pt", 0x80, 8)
    assert gate.counters()["pt"]["blocked_not_armed"] == 2


@pytest.mark.parametrize(
    "frame_id, bus, length, extended",
    [(0x81, "pt", 8, False), (0x80, "pt", 7, False), (0x80, "pt", 12, False), (0x80, "body", 8, False),
     (0x80, "pt", 8, True)],
)
def test_gate_refuses_off_allowlist(frame_id: int, bus: str, length: int, extended: bool) -> None:
    gate = TransmitGate([AllowedFrame(0x80, "pt", 8, extended=False)], armed=["pt", "body"])
    with pytest.raises(TransmitBlocked, match="on the allowlist"):
        gate.check(bus, frame_id, length, is_extended=extended)
    assert gate.counters()[bus]["blocked_not_allowed"] == 1


def test_every_id_off_the_allowlist_is_blocked() -> None:
    gate = TransmitGate([(0x80, "pt", 8), (0x81, "pt", 8)], armed=["pt"])
    blocked = 0
    for frame_id in range(0x800):
        try:
            gate.check("pt", frame_id, 8)
        except TransmitBlocked:
            blocked += 1
    assert blocked == 0x800 - 2


def test_disarm_goes_back_to_listen_only() -> None:
    gate = TransmitGate([(0x80, "pt", 8)], armed=["pt"])
    gate.disarm("pt")
    assert not gate.is_armed("pt") and gate.armed == frozenset()
    with pytest.raises(TransmitBlocked):
        gate.check("pt", 0x80, 8)


# -- Gateway.send ---------------------------------------------------------------------------------

def test_send_refused_by_default_and_counted(test_db, virtual_bus, channel) -> None:
    bus = virtual_bus(channel)
    listener = virtual_bus(channel)
    with Gateway({"pt": bus}, test_db) as gw:
        with pytest.raises(TransmitBlocked):
            gw.send("pt", can.Message(arbitration_id=0x101, data=bytes(8), is_extended_id=False))
        with pytest.raises(TransmitBlocked, match="expected a bus among"):
            gw.send("nope", can.Message(arbitration_id=0x101, data=bytes(8), is_extended_id=False))
        c = gw.counters()["transmit"]["buses"]
    assert c["pt"]["blocked_not_armed"] == 1 and c["nope"]["blocked_unknown_bus"] == 1
    assert drain(listener) == []


def test_send_fills_counter_and_crc(test_db, prot_spec: E2ESpec, virtual_bus, channel) -> None:
    bus = virtual_bus(channel)
    ecu = virtual_bus(channel)
    gate = TransmitGate(armed=["pt"])
    gate.allow_messages([test_db.get_message_by_name("Prot"), test_db.get_message_by_name("Plain")], "pt")
    prot = test_db.get_message_by_name("Prot")
    payload = prot.encode({"Prot_CRC": 0, "Prot_Counter": 0, "Prot_Enable": 1, "Prot_Speed": 3.0, "Prot_Torque": 1.0})
    with Gateway({"pt": bus}, test_db, transmit_gate=gate) as gw:
        for _ in range(17):
            gw.send("pt", can.Message(arbitration_id=prot.frame_id, data=payload, is_extended_id=False))
        gw.send("pt", can.Message(arbitration_id=0x101, data=bytes(8), is_extended_id=False))
        assert gw.counters()["transmit"]["buses"]["pt"]["sent"] == 18
    received = drain(ecu)
    prot_frames = [m for m in received if m.arbitration_id == prot.frame_id]
    assert [m.data[1] & 0x0F for m in prot_frames] == [i % 15 for i in range(17)]
    rx = E2EReceiver(prot_spec)
    states = [rx.check(m.data)[1] for m in prot_frames]
    assert states[-1] is SMState.VALID
    assert all(prot.decode(bytes(m.data))["Prot_Speed"] == pytest.approx(3.0) for m in prot_frames)
    plain = [m for m in received if m.arbitration_id == 0x101]
    assert len(plain) == 1 and bytes(plain[0].data) == bytes(8)  # unprotected: untouched


# -- routing -----------------------------------------------------------------------------------

def test_rule_matching() -> None:
    rule = RouteRule("a", "b", 0x100, 0x7F0)
    ids = np.array([0x100, 0x10F, 0x110, 0x80000100], dtype=np.uint32)
    assert list(rule.matches(ids)) == [True, True, False, True]
    assert list(RouteRule("a", "b", 0x100, 0x7F0, extended=False).matches(ids)) == [True, True, False, False]
    with pytest.raises(ValueError, match="different source and destination"):
        RouteRule("a", "a", 0x100)
    with pytest.raises(ValueError, match="positive rate limit"):
        RouteRule("a", "b", 0x100, rate_limit_hz=0)


def test_router_rate_limit_per_id() -> None:
    router = Router([RouteRule("a", "b", 0, 0, rate_limit_hz=10.0)])
    ids = np.array([1, 2, 1, 1, 2, 1], dtype=np.uint32)
    times = np.array([0.00, 0.01, 0.05, 0.10, 0.12, 0.15])
    picked = router.select("a", ids, times, np.ones(6, dtype=bool))
    assert [row for _, row in picked] == [0, 1, 3, 4]  # id 1 at 0.05 and 0.15 is within 100 ms
    counters = router.counters()["a->b 0x0:0x0"]
    assert counters["matched"] == 6 and counters["rate_limited"] == 2


def test_routing_between_virtual_buses(test_db, virtual_bus, channel) -> None:
    pt_gw, pt_ecu = virtual_bus(f"{channel}-pt"), virtual_bus(f"{channel}-pt")
    body_gw, body_ecu = virtual_bus(f"{channel}-body"), virtual_bus(f"{channel}-body")
    gate = TransmitGate([(0x101, "body", 8)], armed=["body"])
    rules = [RouteRule("pt", "body", 0x101), RouteRule("pt", "body", 0x200, rate_limit_hz=0.001)]
    with Gateway({"pt": pt_gw, "body": body_gw}, test_db, transmit_gate=gate, routes=rules) as gw:
        for i in range(5):
            pt_ecu.send(can.Message(arbitration_id=0x101, data=bytes([i] * 8), is_extended_id=False))
            pt_ecu.send(can.Message(arbitration_id=0x200, data=bytes(8), is_extended_id=False))
        assert wait_until(lambda: gw.counters()["seen"] == 10)
        routes = gw.counters()["routes"]
    forwarded = drain(body_ecu)
    assert [m.data[0] for m in forwarded] == [0, 1, 2, 3, 4]
    assert all(m.arbitration_id == 0x101 for m in forwarded)
    assert routes["pt->body 0x101:0x1FFFFFFF"]["forwarded"] == 5
    # 0x200 is rate limited to one frame per 1000 s, and the one let through is not allowlisted.
    second = routes["pt->body 0x200:0x1FFFFFFF"]
    assert second["rate_limited"] == 4 and second["blocked"] == 1 and second["forwarded"] == 0


def test_routing_to_an_unarmed_bus_counts_blocked(test_db, virtual_bus, channel, clock) -> None:
    a, b = virtual_bus(f"{channel}-a"), virtual_bus(f"{channel}-b")
    with Gateway({"a": a, "b": b}, test_db, clock=clock, routes=[RouteRule("a", "b", 0x101)], start=False) as gw:
        gw.process_batch("a", np.array([0x101, 0x101], dtype=np.uint32), np.zeros((2, 8), dtype=np.uint8))
        assert gw.counters()["routes"]["a->b 0x101:0x1FFFFFFF"]["blocked"] == 2
        assert gw.counters()["transmit"]["buses"]["b"]["blocked_not_armed"] == 2
