"""The technician subcommands end to end: list, dump, decode (-L), send, log, replay, convert,
plot, monitor. Output is checked against golden files (see conftest.py to regenerate)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import can
import pytest

from tests.vehicle_io.cli.conftest import SUBPROCESS_MAIN, mask
from vehicle_io import cli, load_database
from vehicle_io.e2e import e2e_crc

SAMPLE = Path(cli.__file__).resolve().parents[1] / "data" / "z10_sample_drive.log.gz"


def _z10(*argv: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SUBPROCESS_MAIN, *argv], input=stdin, capture_output=True,
                          text=True, timeout=timeout)


# -- list / dump ---------------------------------------------------------------------------
def test_list_table_and_details(capsys, golden) -> None:
    assert cli.main(["list", "--bus", "pt"]) == 0
    golden("list_pt", capsys.readouterr().out)
    assert cli.main(["list", "GW_SteerCommand"]) == 0
    golden("list_gw_steercommand", capsys.readouterr().out)


def test_list_json_matches_the_dbc(capsys) -> None:
    assert cli.main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    db = load_database()
    assert {r["name"] for r in rows} == {m.name for m in db.messages}
    adc = next(r for r in rows if r["name"] == "ADC_Command")
    assert (adc["frame_id"], adc["length"], adc["bus"], adc["fd"]) == (0x50, 64, "ads", True)


def test_dump_as_subprocess(golden) -> None:
    result = _z10("dump", "GW_SteerCommand")
    assert result.returncode == 0, result.stderr
    golden("dump_gw_steercommand", result.stdout)


def test_unknown_message_is_one_line_error(capsys) -> None:
    assert cli.main(["dump", "NoSuchMessage"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert err == ["error: expected a message name of the DBC, but got 'NoSuchMessage'"]


# -- decode of candump -L lines ------------------------------------------------------------
def test_decode_reads_candump_L_lines(monkeypatch, capsys, golden) -> None:
    db = load_database()
    msg = db.get_message_by_name("CBC_CompartmentWeights")
    data = msg.encode({f"CBC_Weight{i}": 10.0 * i for i in range(1, 7)}).hex().upper()
    lines = [  # as `candump -L pt body` prints them: 10-digit seconds, padded interface names
        f"(0000000012.345678) body {msg.frame_id:03X}#{data}",
        f"(0000000012.345900)   pt 3FF#00",
        f"(1700000000.000001) body {msg.frame_id:03X}#{data} R",
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    assert cli.main(["decode", "--single-line"]) == 0
    captured = capsys.readouterr()
    golden("decode_candump_L", captured.out)
    assert "3 frames: 2 decoded (0 of them with a bad multiplexer), 1 unknown id" in captured.err


# -- send ----------------------------------------------------------------------------------
def test_send_fills_counter_and_crc(capsys) -> None:
    rx = can.Bus(interface="virtual", channel="z10-send-test")
    try:
        assert cli.main(["send", "ADC_Command", "ADC_TargetSpeed=3.5", "ADC_GearRequest=D", "-i", "virtual",
                         "-c", "z10-send-test", "--bus-name", "ads", "--count", "3", "--period-ms", "5",
                         "--json"]) == 0
        got = [rx.recv(1.0) for _ in range(3)]
    finally:
        rx.shutdown()
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 3 and all(m is not None for m in got)
    db = load_database()
    message = db.get_message_by_name("ADC_Command")
    for k, frame in enumerate(got):
        payload = bytes(frame.data)
        assert payload.hex().upper() == records[k]["data"]
        assert payload[1] & 0x0F == k  # alive counter 0, 1, 2
        assert payload[0] == e2e_crc(769, payload[1:])  # E2E_DataID of ADC_Command
        values = message.decode(payload, decode_choices=False)
        assert values["ADC_TargetSpeed"] == pytest.approx(3.5) and values["ADC_GearRequest"] == 3


def test_send_refuses_out_of_range_and_unarmed(capsys, golden) -> None:
    assert cli.main(["send", "ADC_Command", "ADC_TargetSpeed=99", "-i", "virtual", "-c", "z10-x",
                     "--bus-name", "ads"]) == cli.EXIT_USAGE
    assert cli.main(["send", "ADC_Command", "ADC_GearRequest=Q", "-i", "virtual", "-c", "z10-x",
                     "--bus-name", "ads"]) == cli.EXIT_USAGE
    assert cli.main(["send", "ADC_Command", "-i", "socketcan", "-c", "can0", "--bus-name", "ads"]) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    golden("send_refusals", captured.err)


# -- log -----------------------------------------------------------------------------------
def _feeder(channel: str, n: int, started: threading.Event) -> threading.Thread:
    def run() -> None:
        tx = can.Bus(interface="virtual", channel=channel)
        started.wait(10)
        time.sleep(0.2)
        for i in range(n):
            tx.send(can.Message(arbitration_id=0x100 + i % 4, is_extended_id=False, data=i.to_bytes(4, "big")))
        tx.shutdown()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_log_records_every_frame_with_rotation(tmp_path, monkeypatch, capsys) -> None:
    import vehicle_io.bench as bench

    started = threading.Event()
    real_open = bench.open_buses

    def open_and_signal(specs):  # start feeding once the logger listens
        buses = real_open(specs)
        started.set()
        return buses

    monkeypatch.setattr(bench, "open_buses", open_and_signal)
    feeder = _feeder("z10-log-test", 300, started)
    out = tmp_path / "cap.log"
    assert cli.main(["log", "-o", str(out), "-i", "virtual", "-c", "z10-log-test", "--count", "300",
                     "--duration", "20", "--max-bytes", "3000", "--json", "--quiet"]) == 0
    feeder.join()
    summary = json.loads(capsys.readouterr().out)
    files = [Path(p) for p in summary["files"]]
    assert len(files) > 1 and summary["written"] == 300
    back = [m for p in files for m in can.LogReader(p)]
    assert [int.from_bytes(m.data, "big") for m in back] == list(range(300))
    assert all(m.channel == "pt" for m in back)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"z10 sim did not listen on {port}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_log_loses_nothing_on_ctrl_c_or_sigterm(tmp_path, signum) -> None:
    port = _free_port()
    sim = subprocess.Popen([sys.executable, "-m", "vehicle_io", "sim", "--port", str(port), "--no-van",
                            "--interface", "virtual"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        out = tmp_path / "stop.log"
        logger = subprocess.Popen([sys.executable, "-c", SUBPROCESS_MAIN, "log", "-o", str(out), "--bus", "pt",
                                   "--sim-port", str(port), "--json", "--quiet"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        tx = can.Bus(interface="socketcand", host="127.0.0.1", port=port, channel="pt")
        try:
            deadline = time.monotonic() + 30
            while not out.exists() or out.stat().st_size == 0:  # wait until the logger hears us
                tx.send(can.Message(arbitration_id=0x7FF, is_extended_id=False, data=b""))
                time.sleep(0.1)
                assert time.monotonic() < deadline, "logger never recorded"
            for i in range(2000):
                tx.send(can.Message(arbitration_id=0x123, is_extended_id=False, data=i.to_bytes(4, "big")))
                if i == 1000:
                    logger.send_signal(signum)  # stop while frames are still arriving
        finally:
            tx.shutdown()
        stdout, stderr = logger.communicate(timeout=30)
        assert logger.returncode == 0, stderr
        summary = json.loads(stdout)
        lines = out.read_text().splitlines()
        assert len(lines) == summary["written"] == sum(summary["received"].values())
        counters = [int(line.split("#")[1], 16) for line in lines if " 123#" in line]
        assert counters and counters == list(range(len(counters)))  # no gap: nothing lost
    finally:
        sim.terminate()
        sim.wait(10)


# -- replay --------------------------------------------------------------------------------
def test_replay_plays_the_log_onto_the_bus(tmp_path, capsys, golden) -> None:
    log = tmp_path / "in.log"
    log.write_text("(0000000001.000000) pt 100#01\n(0000000001.010000) pt 101#02\n"
                   "(0000000001.020000) pt 100#03\nnot a frame\n(0000000001.030000) pt 102#04\n")
    rx = can.Bus(interface="virtual", channel="z10-replay-test")
    try:
        assert cli.main(["replay", str(log), "--speed", "2", "--loop", "2", "--filter", "100,102",
                         "-i", "virtual", "-c", "z10-replay-test"]) == 0
        got = [rx.recv(1.0) for _ in range(6)]
        assert rx.recv(0.1) is None
    finally:
        rx.shutdown()
    assert [(m.arbitration_id, bytes(m.data)) for m in got] == [(0x100, b"\x01"), (0x100, b"\x03"), (0x102, b"\x04")] * 2
    captured = capsys.readouterr()
    golden("replay_summary", captured.out)
    assert "in.log:4: expected" in captured.err


def test_replay_needs_arming_on_a_real_bus(tmp_path, capsys) -> None:
    log = tmp_path / "in.log"
    log.write_text("(0000000001.000000) pt 100#01\n")
    assert cli.main(["replay", str(log), "-i", "socketcan", "-c", "can0"]) == cli.EXIT_USAGE
    assert capsys.readouterr().err.strip() == (
        "error: bus 'pt' (socketcan:can0) is listen-only: expected --arm pt to transmit on it")


# -- convert -------------------------------------------------------------------------------
def test_convert_round_trip_through_every_format(tmp_path, golden) -> None:
    src = tmp_path / "in.log"
    src.write_text("(1700000000.000100) pt 100#0102\n(1700000000.000200) body 0D0#FFEE\n"
                   "(1700000000.000300) pt 12345678#AA\n")
    previous = src
    for suffix in (".asc", ".blf", ".csv", ".trc"):
        out = tmp_path / f"step{suffix}"
        result = _z10("convert", str(previous), str(out), "--no-progress") if suffix == ".asc" else None
        if result is None:
            assert cli.main(["convert", str(previous), str(out), "--no-progress"]) == 0
        else:
            assert result.returncode == 0, result.stderr
        previous = out
    final = tmp_path / "final.log"
    assert cli.main(["convert", str(previous), str(final), "--no-progress"]) == 0
    golden("convert_round_trip_log", final.read_text())


def test_convert_sample_to_blf_keeps_every_frame(tmp_path, capsys) -> None:
    out = tmp_path / "s.blf"
    assert cli.main(["convert", str(SAMPLE), str(out), "--json"]) == 1  # the sample has one planted bad line
    summary = json.loads(capsys.readouterr().out)
    assert summary["unreadable_lines"] == 1
    assert sum(1 for _ in can.LogReader(out)) == summary["frames"] == summary["written"]


# -- plot ----------------------------------------------------------------------------------
def test_plot_report_and_log(tmp_path, capsys, golden) -> None:
    from vehicle_io.plot import plot_report

    doc = {"scenario": "estop", "passed": True,
           "timeseries": {"t_s": [0, 1, 2, 3], "van.speed_mps": [0, 2, 1, 0], "van.soc": [0.8, 0.8, 0.79, 0.79],
                          "doors_open": [0, 0, 1, 1], "gw.torque_nm": [0, 50]},  # torque mis-sized: skipped
           "events": [{"t": 1.5, "code": "ILK_ESTOP", "active": True}, {"t": 2.5, "code": "ILK_ESTOP", "active": False}]}
    png = tmp_path / "r.png"
    assert plot_report(doc, png) == ["van.speed_mps", "van.soc", "doors_open"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_report({"events": []}, tmp_path / "empty.png") == []
    report = tmp_path / "rep.json"
    report.write_text(json.dumps(doc))
    assert cli.main(["plot", str(report), "-o", str(tmp_path / "r2.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["panels"] == ["van.speed_mps", "van.soc", "doors_open"]
    out = tmp_path / "s.png"
    assert cli.main(["plot", str(SAMPLE), "VCU_VehicleSpeed", "BMS_CellVoltage00[12]", "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    golden("plot_log_json", json.dumps({k: v for k, v in summary.items() if k not in ("png", "log")}, indent=2) + "\n")
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_plot_unknown_signal_is_one_line(capsys) -> None:
    assert cli.main(["plot", str(SAMPLE), "NoSuchSignal"]) == cli.EXIT_USAGE
    assert capsys.readouterr().err.startswith("error: expected signal names of the DBC")


# -- monitor -------------------------------------------------------------------------------
def _pt_frames() -> list[can.Message]:
    from vehicle_io.logfmt import LogReader

    frames = [m for m in LogReader(SAMPLE) if m.channel == "pt" and not m.is_error_frame]
    return frames[:600]


@pytest.fixture
def pt_feed():
    frames = _pt_frames()
    stop = threading.Event()
    tx = can.Bus(interface="virtual", channel="z10-monitor-test")

    def run() -> None:
        while not stop.is_set():
            for m in frames:
                if stop.is_set():
                    break
                tx.send(m)
                time.sleep(0.0005)

    thread = threading.Thread(target=run)
    thread.start()
    yield
    stop.set()
    thread.join()
    tx.shutdown()


def test_monitor_once_json(pt_feed, capsys) -> None:
    assert cli.main(["monitor", "-i", "virtual", "-c", "z10-monitor-test", "--once", "--duration", "1.0",
                     "--json", "--message", "BMS_CellVoltages", "--signal", "BMS_CellVoltage00[1-3]"]) == 0
    snap = json.loads(capsys.readouterr().out)
    rows = {r["signal"]: r for r in snap["rows"]}
    assert set(rows) == {"BMS_CellVoltage001", "BMS_CellVoltage002", "BMS_CellVoltage003"}
    assert all(r["mux"] == "BMS_CellVoltagePage=0" and r["unit"] == "V" for r in rows.values())
    db = load_database()
    cells = db.get_message_by_name("BMS_CellVoltages")
    page0 = [m for m in _pt_frames() if m.arbitration_id == cells.frame_id and m.data[0] == 0]
    expected = {k: v for m in page0 for k, v in cells.decode(bytes(m.data), decode_choices=False).items()}
    assert rows["BMS_CellVoltage001"]["value"] == pytest.approx(expected["BMS_CellVoltage001"], abs=1e-3)
    assert snap["interlocks_known"] is False


def test_monitor_once_table(pt_feed, capsys, golden) -> None:
    argv = ["monitor", "-i", "virtual", "-c", "z10-monitor-test", "--once", "--duration", "1.0",
            "--message", "VCU_Status", "--signal", "VCU_Gear", "--signal", "VCU_DriveMode"]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("z10 monitor: pt=virtual:z10-monitor-test") and "(q to quit)" in lines[0]
    assert lines[1] == "interlocks: GW_Status not received"
    assert lines[2].split() == ["bus", "message", "mux", "signal", "value", "unit", "age", "s", "state", "e2e"]
    rows = sorted(line.split() for line in lines[3:])
    assert [r[:4] for r in rows] == [["pt", "VCU_Status", "VCU_DriveMode", "Auto"], ["pt", "VCU_Status", "VCU_Gear", "D"]]
    # What is shown, without the timing-dependent columns (age, state, E2E state under load):
    assert cli.main([*argv, "--json"]) == 0
    snap = json.loads(capsys.readouterr().out)
    shown = [{k: r[k] for k in ("bus", "message", "mux", "signal", "text", "unit")} for r in snap["rows"]]
    golden("monitor_once_rows", json.dumps(shown, indent=2) + "\n")
