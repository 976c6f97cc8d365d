"""The SLCAN emulator on a real pseudo-terminal: python-can's ``slcan`` client, a plain serial
terminal (pyserial), a port that vanishes, a host that does not read, and the CLI bridged
to a socketcand hub."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import can
import pytest
import serial

from hil.bus import channel_names
from hil.hub import Hub, default_channels

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "slcan_emulator.py"


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("z10_tools_slcan_emulator", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


emulator_tool = _load_tool()


def _threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.is_alive() and (t.name.startswith("z10-") or t.name == "hilbus-realclock")]


@pytest.fixture(autouse=True)
def nothing_left_running() -> Iterator[None]:
    before = set(_threads())
    channels_before = set(channel_names())
    yield
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and ([t for t in _threads() if t not in before] or
                                           set(channel_names()) - channels_before):
        time.sleep(0.02)
    assert not [t.name for t in _threads() if t not in before]
    assert not set(channel_names()) - channels_before


@pytest.fixture
def buses() -> Iterator[Callable[..., can.BusABC]]:
    opened: list[can.BusABC] = []

    def make(**kwargs: object) -> can.BusABC:
        bus = can.Bus(**kwargs)
        opened.append(bus)
        return bus

    yield make
    for bus in reversed(opened):
        bus.shutdown()


@pytest.fixture
def rig(buses) -> Iterator[tuple[object, can.BusABC]]:
    """An emulator bridged to a real-time hilbus channel, and a peer node on that channel."""
    channel = f"slcan-{uuid.uuid4().hex[:8]}"
    peer = buses(interface="hilbus", channel=channel, bitrate=500_000, node="ECU")
    side = buses(interface="hilbus", channel=channel, bitrate=500_000, node="adapter")
    emulator = emulator_tool.SlcanEmulator(side, bus_bitrate=500_000)
    emulator.start()
    yield emulator, peer
    emulator.shutdown()


def slcan_client(path: str, **kwargs: object) -> can.BusABC:
    return can.Bus(interface="slcan", channel=path, bitrate=500_000, sleep_after_open=0, **kwargs)


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def key(msg: can.Message | None) -> tuple[object, ...]:
    assert msg is not None
    return (msg.arbitration_id, msg.is_extended_id, msg.is_remote_frame, msg.dlc,
            b"" if msg.is_remote_frame else bytes(msg.data))


FRAMES = [
    can.Message(arbitration_id=0x123, data=b"\x01\x02\x03", is_extended_id=False),
    can.Message(arbitration_id=0x7FF, data=bytes(range(8)), is_extended_id=False),
    can.Message(arbitration_id=0x000, data=b"", is_extended_id=False),
    can.Message(arbitration_id=0x18DAF110, data=b"\x02\x10\x03", is_extended_id=True),
    can.Message(arbitration_id=0x7DF, is_remote_frame=True, dlc=8, is_extended_id=False),
    can.Message(arbitration_id=0x1FFFFFFF, is_remote_frame=True, dlc=2, is_extended_id=True),
]


def test_python_can_slcan_client_both_directions(rig) -> None:
    emulator, peer = rig
    client = slcan_client(emulator.path)
    try:
        assert client.get_version(2.0) == (10, 13)
        assert client.get_serial_number(2.0) == "Z10E"
        assert emulator.engine.state.is_open and emulator.engine.state.bitrate == 500_000
        for msg in FRAMES:
            client.send(msg)
        assert [key(peer.recv(5.0)) for _ in FRAMES] == [key(m) for m in FRAMES]
        for msg in FRAMES:
            peer.send(msg)
        got = []
        while len(got) < len(FRAMES):
            msg = client.recv(5.0)
            assert msg is not None
            got.append(msg)
        assert [key(m) for m in got] == [key(m) for m in FRAMES]
    finally:
        client.shutdown()
    assert wait_for(lambda: not emulator.engine.state.is_open)  # python-can closes with C
    c = emulator.counters()
    assert (c["frames_to_bus"], c["frames_from_bus"], c["tx_failed"], c["rx_overflow"]) == (6, 6, 0, 0)


def test_plain_serial_terminal_session(rig) -> None:
    emulator, peer = rig
    port = serial.Serial(emulator.path, baudrate=115200, timeout=2.0)
    try:
        def ask(line: bytes, n_replies: int = 1) -> list[bytes]:
            port.write(line)
            out = []
            for _ in range(n_replies):
                buf = b""
                while not buf.endswith((b"\r", b"\x07")):
                    byte = port.read(1)
                    assert byte, f"no reply to {line!r} (so far {buf!r})"
                    buf += byte
                out.append(buf)
            return out

        port.write(b"\r\r")  # empty lines (hosts flush an adapter this way) get no reply at all
        assert ask(b"V\r") == [b"V1013\r"]
        assert ask(b"t1230\r") == [b"\x07"]  # closed
        assert ask(b"S4\r") == [b"\r"]
        assert ask(b"O\r") == [b"\x07"]  # 125k adapter on a 500k bus
        assert ask(b"S6\rZ1\rO\r", 3) == [b"\r", b"\r", b"\r"]
        assert ask(b"t1232BEEF\r") == [b"z\r"]
        got = peer.recv(5.0)
        assert got is not None and (got.arbitration_id, bytes(got.data)) == (0x123, b"\xbe\xef")
        peer.send(can.Message(timestamp=0, arbitration_id=0x321, data=b"\x55", is_extended_id=False))
        line = ask(b"")[0]
        assert re.fullmatch(rb"t321155[0-9A-F]{4}\r", line), line  # with a timestamp (Z1)
        noise = bytes(range(256)).replace(b"\r", b"")
        assert ask(noise + b"\r" + b"x" * 400 + b"\rF\r", 3) == [b"\x07", b"\x07", b"F00\r"]
        assert ask(b"C\r") == [b"\r"]
    finally:
        port.close()
    c = emulator.counters()
    assert c["overlong"] == 2 and c["wrong_state"] == 2 and c["errors"] == 4


def test_port_that_vanishes_and_comes_back(rig) -> None:
    emulator, peer = rig
    first = serial.Serial(emulator.path, baudrate=115200, timeout=2.0)
    first.write(b"S6\rO\r")
    assert first.read(2) == b"\r\r"
    first.write(b"t1232AA")  # the host goes away in the middle of a line
    first.close()
    assert wait_for(lambda: emulator.counters()["hangups"] >= 1)
    for i in range(5):  # frames for nobody: dropped and counted, not handed to the next host
        peer.send(can.Message(arbitration_id=0x100 + i, data=b"", is_extended_id=False))
    assert wait_for(lambda: emulator.counters()["dropped_port_closed"] == 5)
    second = serial.Serial(emulator.path, baudrate=115200, timeout=2.0)
    try:
        second.write(b"Q\rV\r")  # the adapter still holds the cut line: it ends as junk, one BEL, then service
        assert second.read(1 + 6) == b"\x07V1013\r"
        peer.send(can.Message(arbitration_id=0x555, data=b"\x01", is_extended_id=False))
        assert second.read(8) == b"t555101\r"
    finally:
        second.close()
    c = emulator.counters()
    assert c["opens"] == 2 and c["hangups"] >= 1 and c["bad_syntax"] == 1


def test_a_host_that_does_not_read_loses_counted_frames_only(buses) -> None:
    channel = f"slcan-{uuid.uuid4().hex[:8]}"
    peer = buses(interface="virtual", channel=channel)
    side = buses(interface="virtual", channel=channel)
    with emulator_tool.SlcanEmulator(side, bus_bitrate=500_000, buffer_bytes=1024) as emulator:
        port = serial.Serial(emulator.path, baudrate=115200, timeout=0.5)
        try:
            port.write(b"S6\rO\r")
            assert port.read(2) == b"\r\r"
            n = 3000
            for i in range(n):
                peer.send(can.Message(arbitration_id=0x200, data=i.to_bytes(2, "big"), is_extended_id=False))
            assert wait_for(lambda: emulator.counters()["frames_from_bus"] == n)
            data = b""
            while chunk := port.read(65536):
                data += chunk
            lines = data.split(b"\r")[:-1]
            assert all(re.fullmatch(rb"t2002[0-9A-F]{4}", line) for line in lines)
            numbers = [int(line[5:9], 16) for line in lines]
            assert numbers == sorted(numbers)  # what arrives is in order
            c = emulator.counters()
            assert c["rx_overflow"] > 0 and len(lines) + c["rx_overflow"] == n
            port.write(b"F\r")
            assert port.read(4) == b"F09\r"  # receive FIFO full + data overrun, latched
        finally:
            port.close()


def test_cli_bridges_a_pty_to_a_socketcand_hub(buses) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    with Hub(default_channels("virtual", prefix=prefix), port=0) as hub:
        proc = subprocess.Popen(
            [sys.executable, str(TOOL), "-c", "body", "--sim-port", str(hub.port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            match = re.match(r"slcan emulator: (/dev/\S+) <-> socketcand body at 500000 bit/s", first)
            assert match, first + proc.stderr.read() if proc.poll() is not None else first
            listener = buses(interface="socketcand", host="127.0.0.1", port=hub.port, channel="body")
            client = slcan_client(match.group(1))
            try:
                time.sleep(hub.rawmode_settle_s * 3)
                client.send(FRAMES[3])
                assert key(listener.recv(5.0)) == key(FRAMES[3])
                listener.send(FRAMES[1])
                assert key(client.recv(5.0)) == key(FRAMES[1])
                # The adapter vanishes under the host: python-can reports it at once, no hang.
                proc.send_signal(signal.SIGTERM)
                out, err = proc.communicate(timeout=15)
                with pytest.raises(can.CanOperationError):
                    client.recv(5.0)
                with pytest.raises(can.CanOperationError):
                    client.shutdown()  # its closing "C" has nowhere to go
            finally:
                try:
                    client.shutdown()
                except can.CanOperationError:
                    pass
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert "frames to the bus 1, from the bus 1" in out
        assert wait_for(lambda: hub.stats().clients_now == 1)  # the listener; the emulator has left


def test_gateway_on_an_slcan_adapter_decodes_z10_frames(rig) -> None:
    from vehicle_io import load_database
    from vehicle_io.gateway import Gateway

    emulator, peer = rig
    db = load_database()
    message = db.get_message_by_name("CBC_CompartmentWeights")
    payload = message.encode({f"CBC_Weight{i}": 25.0 * i for i in range(1, 7)})
    client = slcan_client(emulator.path)
    try:
        with Gateway({"body": client}, db) as gw:
            for _ in range(5):
                peer.send(can.Message(arbitration_id=message.frame_id, data=payload, is_extended_id=False))
            assert wait_for(lambda: gw.counters()["decoded"] >= 5), gw.summary()
            assert gw.store.value_of("CBC_Weight4") == 100.0
            assert gw.counters()["transmit"]["armed"] == []  # listen-only on an adapter
    finally:
        client.shutdown()
