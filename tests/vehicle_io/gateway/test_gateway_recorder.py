"""Recording (lossless on stop and on SIGINT) and the black-box ring buffer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import can
import numpy as np
import pytest
from gw_helpers import wait_until

from vehicle_io.gateway import BlackBox, Gateway, RecorderError, TrafficRecorder, TransmitGate

HERE = Path(__file__).resolve().parent


def read_back(path: Path) -> list[can.Message]:
    with can.LogReader(path) as reader:
        return list(reader)


@pytest.mark.parametrize("suffix", [".log", ".asc", ".blf"])
def test_recording_is_lossless_on_clean_stop(test_db, virtual_bus, channel, tmp_path, suffix: str) -> None:
    n = 400
    pt_rx, pt_tx = virtual_bus(f"{channel}-pt"), virtual_bus(f"{channel}-pt")
    body_rx, body_tx = virtual_bus(f"{channel}-body"), virtual_bus(f"{channel}-body")
    path = tmp_path / f"traffic{suffix}"
    with Gateway({"pt": pt_rx, "body": body_rx}, test_db, record_path=path) as gw:
        for i in range(n):
            pt_tx.send(can.Message(arbitration_id=0x101, data=i.to_bytes(8, "little"), is_extended_id=False))
        for i in range(n // 4):
            body_tx.send(can.Message(arbitration_id=0x300, data=bytes([i % 256]) * 64, is_fd=True,
                                     is_extended_id=False))
        assert wait_until(lambda: gw.counters()["seen"] == n + n // 4)
        channel_numbers = gw.recorder.channel_numbers if gw.recorder else {}
    frames = read_back(path)
    assert len(frames) == n + n // 4
    if suffix == ".log":
        by_bus = {"pt": [f for f in frames if f.channel == "pt"], "body": [f for f in frames if f.channel == "body"]}
    else:
        by_bus = {name: [f for f in frames if f.channel == number] for name, number in channel_numbers.items()}
    assert [int.from_bytes(f.data, "little") for f in by_bus["pt"]] == list(range(n))
    assert [f.data[0] for f in by_bus["body"]] == [i % 256 for i in range(n // 4)]
    assert all(f.is_fd and len(f.data) == 64 for f in by_bus["body"])


def test_recorder_rejects_unknown_suffix(tmp_path) -> None:
    with pytest.raises(RecorderError, match="expected a recording file ending in"):
        TrafficRecorder(tmp_path / "x.mf5")


def test_recorder_stop_is_idempotent(tmp_path) -> None:
    rec = TrafficRecorder(tmp_path / "x.log", channels=["pt"])
    rec.record(can.Message(arbitration_id=1, data=b"\x01", channel="pt"))
    rec.stop()
    rec.stop()
    rec.record(can.Message(arbitration_id=2, data=b"\x02", channel="pt"))  # ignored after stop
    assert not rec.alive and [m.arbitration_id for m in read_back(tmp_path / "x.log")] == [1]


SIGINT_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    sys.path.insert(0, {helpers!r})
    import can, cantools
    from gw_helpers import TEST_DBC
    from vehicle_io.gateway import Gateway

    path, chan = sys.argv[1], sys.argv[2]
    db = cantools.database.load_string(TEST_DBC, "dbc")
    rx = can.Bus(interface="virtual", channel=chan)
    tx = can.Bus(interface="virtual", channel=chan)
    stop = threading.Event()

    def sender():
        i = 0
        while not stop.is_set():
            tx.send(can.Message(arbitration_id=0x101, data=i.to_bytes(8, "little"), is_extended_id=False))
            i += 1
            time.sleep(0.0002)

    gw = None
    try:
        with Gateway({{"pt": rx}}, db, record_path=path) as gw:
            threading.Thread(target=sender, daemon=True).start()
            while gw.counters()["seen"] < 2000:
                time.sleep(0.005)
            print("READY", flush=True)
            while True:
                time.sleep(0.01)
    except KeyboardInterrupt:
        stop.set()
        print("SEEN", gw.counters()["seen"], flush=True)
    """
)


@pytest.mark.parametrize("suffix", [".log", ".blf"])
def test_sigint_loses_nothing_received(tmp_path, suffix: str) -> None:
    script = tmp_path / "record.py"
    script.write_text(SIGINT_SCRIPT.format(helpers=str(HERE)))
    path = tmp_path / f"sigint{suffix}"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), f"sigint-{os.getpid()}-{suffix}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    seen = int(out.split()[-1])
    frames = read_back(path)
    assert seen >= 2000
    assert [int.from_bytes(f.data, "little") for f in frames] == list(range(seen))


def test_blackbox_keeps_the_last_seconds(clock, tmp_path) -> None:
    box = BlackBox(10.0, clock=clock)
    for second in range(30):
        t = clock.advance(1.0)
        box.add_batch("pt", np.array([t]), np.array([0x100 + second], dtype=np.uint32),
                      np.zeros((1, 8), dtype=np.uint8), np.array([8], dtype=np.uint8))
    ids = [m.arbitration_id for m in box.frames()]
    assert ids == [0x100 + s for s in range(20, 30)]  # receive times in (now - 10 s, now]
    assert box.dump(tmp_path / "trip.log") == 10
    assert [m.arbitration_id for m in read_back(tmp_path / "trip.log")] == ids


def test_gateway_blackbox_has_rx_and_tx(test_db, virtual_bus, channel, tmp_path) -> None:
    rx = virtual_bus(channel)
    ecu = virtual_bus(channel)
    gate = TransmitGate([(0x101, "pt", 8)], armed=["pt"])
    with Gateway({"pt": rx}, test_db, transmit_gate=gate) as gw:
        ecu.send(can.Message(arbitration_id=0x100, data=bytes(8), is_extended_id=False))
        ecu.send(can.Message(arbitration_id=0x7E0, is_remote_frame=True, dlc=8, is_extended_id=False))
        assert wait_until(lambda: gw.counters()["seen"] == 2)
        gw.send("pt", can.Message(arbitration_id=0x101, data=bytes(8), is_extended_id=False))
        count = gw.dump_blackbox(tmp_path / "trip.log")
    frames = read_back(tmp_path / "trip.log")
    assert count == 3 and [f.arbitration_id for f in frames] == [0x100, 0x7E0, 0x101]
    assert frames[1].is_remote_frame and frames[0].is_rx and not frames[2].is_rx
    assert {f.channel for f in frames} == {"pt"}
