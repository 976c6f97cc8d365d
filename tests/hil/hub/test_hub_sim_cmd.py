"""``z10 sim`` as another process: python-can's socketcand clients and the gateway attach to it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import can
import pytest
from hub_helpers import wait_until

Z10 = shutil.which("z10", path=str(Path(sys.executable).parent)) or "z10"


class SimProcess:
    """``z10 sim --port 0`` in a subprocess; the port is read from its first line."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([Z10, "sim", "--port", "0", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        self.banner: list[str] = []
        deadline = time.monotonic() + 20.0
        self.port = 0
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.banner.append(line.rstrip("\n"))
            if line.startswith("stop with"):
                break
        match = re.search(r"listening on 127\.0\.0\.1:(\d+) \(loopback only\)", "\n".join(self.banner))
        if match is None:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise AssertionError(f"z10 sim did not start: {self.banner} {err}")
        self.port = int(match.group(1))

    def stop(self, signum: int = signal.SIGINT) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            out, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=5)
            raise AssertionError("z10 sim did not stop on the signal") from None
        return self.proc.returncode, out, err


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    """The bare buses (no van), so the frames on them are the test's own."""
    process = SimProcess("--no-van")
    yield process
    if process.proc.poll() is None:
        process.stop(signal.SIGKILL)


@pytest.fixture
def van_sim() -> Iterator[SimProcess]:
    process = SimProcess()
    yield process
    if process.proc.poll() is None:
        process.stop(signal.SIGKILL)


def connect(port: int, channel: str) -> can.BusABC:
    return can.Bus(interface="socketcand", host="127.0.0.1", port=port, channel=channel)


def test_sim_banner_clients_in_this_process_and_summary_on_sigint(sim: SimProcess) -> None:
    banner = "\n".join(sim.banner)
    for name in ("pt", "body", "ads"):
        assert re.search(rf"^  {name}\s+hilbus, ", banner, re.M), banner
    assert "CAN FD 500 kbit/s / 2000 kbit/s, real time" in banner
    a, b = connect(sim.port, "pt"), connect(sim.port, "pt")
    c, d = connect(sim.port, "body"), connect(sim.port, "body")
    try:
        time.sleep(0.15)  # past the hub's raw-mode settle time
        for i in range(50):
            a.send(can.Message(arbitration_id=0x100, data=i.to_bytes(2, "little"), is_extended_id=False))
        b.send(can.Message(arbitration_id=0x18FF0102, data=b"\x01", is_extended_id=True))
        c.send(can.Message(arbitration_id=0x300, data=b"body", is_extended_id=False))
        got_b = [b.recv(5.0) for _ in range(50)]
        assert [int.from_bytes(m.data, "little") for m in got_b if m is not None] == list(range(50))
        got_a = a.recv(5.0)
        assert got_a is not None and (got_a.arbitration_id, got_a.is_extended_id) == (0x18FF0102, True)
        got_d = d.recv(5.0)
        assert got_d is not None and bytes(got_d.data) == b"body"
        assert a.recv(0.2) is None and c.recv(0.2) is None  # nobody gets their own frames back
    finally:
        for bus in (a, b, c, d):
            bus.shutdown()
    code, out, err = sim.stop(signal.SIGINT)
    assert code == 0, err
    assert "z10 sim: stopped after" in out
    assert "clients: 4 served" in out
    assert "pt: 51 frames on the bus, 51 from clients, 51 to clients, 0 dropped for slow clients" in out
    assert "body: 1 frames on the bus, 1 from clients, 1 to clients" in out
    assert "protocol errors: 0; overflows: 0" in out


def test_sim_stops_cleanly_on_sigterm_with_clients_attached(sim: SimProcess) -> None:
    bus = connect(sim.port, "ads")
    try:
        code, out, _ = sim.stop(signal.SIGTERM)
        assert code == 0
        assert "clients: 1 served, 1 at most at once, 0 connected now, 1 disconnected at shutdown" in out
        # The connection is gone: python-can's recv returns None (it does not notice EOF), and a
        # send fails once the kernel has seen the reset, instead of hanging.
        with pytest.raises((can.CanError, OSError)):
            for _ in range(50):
                assert bus.recv(0.05) is None
                bus.send(can.Message(arbitration_id=1, data=b"", is_extended_id=False))
    finally:
        bus.shutdown()


def test_sim_refuses_a_non_loopback_address() -> None:
    result = subprocess.run([Z10, "sim", "--host", "0.0.0.0", "--port", "0"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: expected a loopback address (127.0.0.1 or ::1), but got '0.0.0.0': "
                                     "the hub never leaves the host")


def test_gateway_decodes_frames_through_the_hub(sim: SimProcess) -> None:
    from vehicle_io import load_database
    from vehicle_io.e2e import E2ESpec
    from vehicle_io.gateway import Gateway

    db = load_database()
    # A plain (not E2E-protected) message: this is about the transport and the decode; the
    # E2E state machine has its own tests and wants several frames before it accepts one.
    message = next(m for m in db.messages if m.bus_name == "pt" and m.length == 8 and not m.is_multiplexed()
                   and any(s.scale != 1 for s in m.signals) and E2ESpec.from_message(m) is None)
    values = {s.name: (s.minimum if s.minimum is not None else 0) for s in message.signals}
    scaled = next(s for s in message.signals if s.scale != 1 and not s.choices)
    low = scaled.minimum if scaled.minimum is not None else 0
    values[scaled.name] = low + 3 * scaled.scale
    payload = bytearray(db.encode_message(message.frame_id, values, strict=False))
    gw_bus = connect(sim.port, "pt")
    ecu = connect(sim.port, "pt")
    try:
        with Gateway({"pt": gw_bus}, db, stale_factor=1e6) as gw:
            time.sleep(0.15)
            ecu.send(can.Message(arbitration_id=message.frame_id, data=bytes(payload),
                                 is_extended_id=message.is_extended_frame))
            assert wait_until(lambda: gw.counters()["buses"].get("pt", {}).get("decoded", 0) >= 1, 10.0), gw.summary()
            expected = db.decode_message(message.frame_id, bytes(payload), decode_choices=False)
            assert gw.store.value_of(f"{message.name}.{scaled.name}") == pytest.approx(expected[scaled.name])
    finally:
        gw_bus.shutdown()
        ecu.shutdown()


def test_the_simulated_van_is_on_the_hub_with_its_uds_servers(van_sim: SimProcess) -> None:
    from vehicle_io import load_database

    assert "UDS on VCU 0x7E0, BMS 0x7E1 (pt), CBC 0x7E2 (body)" in "\n".join(van_sim.banner)
    db = load_database()
    bus = connect(van_sim.port, "pt")
    try:
        senders: set[str] = set()
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and senders != {"VCU", "MCU", "BMS", "BRK", "EPS"}:
            msg = bus.recv(0.5)
            if msg is not None and msg.arbitration_id < 0x700:
                senders.update(db.get_message_by_frame_id(msg.arbitration_id).senders)
        assert senders == {"VCU", "MCU", "BMS", "BRK", "EPS"}
    finally:
        bus.shutdown()
    scan = subprocess.run([Z10, "diag", "scan", "--json", "--sim-port", str(van_sim.port)],
                          capture_output=True, text=True, timeout=60)
    assert scan.returncode == 0, scan.stderr
    found = json.loads(scan.stdout)
    text = json.dumps(found)
    for serial in ("VCU-SIM-0001", "BMS-SIM-0001", "CBC-SIM-0001"):
        assert serial in text, text
    did = subprocess.run([Z10, "diag", "read-did", "--ecu", "bms", "0x0202", "--sim-port", str(van_sim.port)],
                         capture_output=True, text=True, timeout=60)
    assert did.returncode == 0, did.stderr
    raw = bytes.fromhex(did.stdout.split(":", 1)[1].split("  ")[0].replace(" ", "").strip()[:4])
    assert 300.0 < int.from_bytes(raw, "big") * 0.1 < 420.0  # a live 96s pack voltage from the van model
    code, out, err = van_sim.stop(signal.SIGINT)
    assert code == 0, err
