"""Kernel SocketCAN: the gateway on vcan0, and the hub serving vcan0, where the machine has it.

These machines have no vcan module; the tests skip and say why. On a rig:
``sudo modprobe vcan && sudo ip link add dev vcan0 type vcan && sudo ip link set up vcan0``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import can
import pytest
from hub_helpers import wait_until

from hil.hub import Hub, HubChannel

pytestmark = pytest.mark.hardware

IFACE = "vcan0"


def _vcan_or_skip() -> can.BusABC:
    if not Path(f"/sys/class/net/{IFACE}").exists():
        pytest.skip(f"no {IFACE} on this machine: /sys/class/net/{IFACE} does not exist "
                    "(create it: sudo modprobe vcan && sudo ip link add dev vcan0 type vcan && sudo ip link set up vcan0)")
    try:
        return can.Bus(interface="socketcan", channel=IFACE)
    except (OSError, can.CanError, ImportError) as err:
        pytest.skip(f"no {IFACE} on this machine: opening it failed: {err}")


@pytest.fixture
def vcan() -> Iterator[can.BusABC]:
    bus = _vcan_or_skip()
    yield bus
    bus.shutdown()


def test_gateway_on_vcan0(vcan: can.BusABC) -> None:
    from vehicle_io import load_database
    from vehicle_io.e2e import E2ESpec
    from vehicle_io.gateway import Gateway

    db = load_database()
    message = next(m for m in db.messages if m.bus_name == "pt" and m.length == 8 and not m.is_multiplexed()
                   and E2ESpec.from_message(m) is None)
    values = {s.name: (s.minimum if s.minimum is not None else 0) for s in message.signals}
    payload = db.encode_message(message.frame_id, values, strict=False)
    rx = can.Bus(interface="socketcan", channel=IFACE)
    try:
        with Gateway({"pt": rx}, db, stale_factor=1e6) as gw:
            vcan.send(can.Message(arbitration_id=message.frame_id, data=payload, is_extended_id=message.is_extended_frame))
            assert wait_until(lambda: gw.counters()["buses"].get("pt", {}).get("decoded", 0) >= 1), gw.summary()
            expected = db.decode_message(message.frame_id, payload, decode_choices=False)
            for name, value in expected.items():
                assert gw.store.value_of(f"{message.name}.{name}") == pytest.approx(value)
    finally:
        rx.shutdown()


def test_hub_serves_vcan0(vcan: can.BusABC) -> None:
    with Hub([HubChannel("pt", "socketcan", IFACE, bitrate=None)], port=0) as hub:
        client = can.Bus(interface="socketcand", host="127.0.0.1", port=hub.port, channel="pt")
        try:
            time.sleep(hub.rawmode_settle_s * 2)
            vcan.send(can.Message(arbitration_id=0x123, data=b"\x01\x02", is_extended_id=False))
            got = client.recv(5.0)
            assert got is not None and (got.arbitration_id, bytes(got.data)) == (0x123, b"\x01\x02")
            client.send(can.Message(arbitration_id=0x321, data=b"\x03", is_extended_id=False))
            back = vcan.recv(5.0)
            assert back is not None and (back.arbitration_id, bytes(back.data)) == (0x321, b"\x03")
        finally:
            client.shutdown()
