"""`z10 gateway`: replays and live buses end to end, checked against cantools."""

from __future__ import annotations

import gzip
import json
import threading
import time

import can
import cantools
import pytest

from vehicle_io import cli, load_database
from vehicle_io.candump import LogLineError, parse_line
from vehicle_io.cli.gateway_cmd import SAMPLE_LOG, parse_route


def _sample_frames() -> list:
    frames = []
    with gzip.open(SAMPLE_LOG, "rt") as handle:
        for line in handle:
            try:
                frames.append(parse_line(line))
            except LogLineError:
                pass
    return frames


def test_default_replay_counts_every_planted_fault(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["gateway", "--replay", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    counters = report["counters"]
    rejected = counters["rejected"]
    # tools/make_sample_log.py plants exactly one of each.
    assert (rejected["crc"], rejected["repeated"], rejected["too_short"], rejected["unknown_id"]) == (1, 1, 1, 1)
    assert report["source"]["unreadable_lines"] == 1
    frames = _sample_frames()
    assert counters["seen"] == len(frames) == report["source"]["frames_played"]
    assert counters["seen"] == counters["decoded"] + sum(rejected.values())
    assert all(m["e2e"] in (None, "VALID") and m["valid"] for m in report["messages"])


def test_replay_values_equal_cantools_on_the_last_good_frame(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["gateway", "--replay", "--json", "--signal", "all"]) == 0
    report = json.loads(capsys.readouterr().out)
    shown = {row["signal"].split(".")[-1]: row for row in report["signals"]}
    db = load_database()
    last: dict[str, dict] = {}
    for f in sorted(_sample_frames(), key=lambda f: f.timestamp):
        try:
            message = db.get_message_by_frame_id(f.arbitration_id)
            decoded = message.decode(f.data, decode_choices=False)
        except (KeyError, cantools.database.DecodeError):
            continue
        last.setdefault(message.name, {}).update(decoded)
    checked = 0
    for name in ("BMS_PackVoltage", "BMS_SOC", "MCU_MotorSpeed", "CBC_TotalPayload", "BMS_CellVoltage050"):
        message = db.get_message_by_name(next(m.name for m in db.messages if any(s.name == name for s in m.signals)))
        signal = message.get_signal_by_name(name)
        expected = last[message.name][name]
        assert shown[name]["value"] == pytest.approx(float(expected), abs=abs(signal.scale) / 2), name
        assert shown[name]["valid"] is True
        checked += 1
    assert checked == 5


def test_paced_replay_goes_through_real_buses(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = gzip.open(SAMPLE_LOG, "rt").read().splitlines()[:400]
    log = tmp_path / "short.log"
    log.write_text("\n".join(lines) + "\n")
    assert cli.main(["gateway", "--replay", str(log), "--speed", "50", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["source"]["mode"].startswith("paced")
    assert report["counters"]["seen"] == report["source"]["frames_played"] == 400


def test_live_bus_listen_only(capsys: pytest.CaptureFixture[str]) -> None:
    channel = f"z10-live-{time.monotonic_ns()}"
    db = load_database()
    msg = db.get_message_by_name("CBC_CompartmentWeights")
    payload = msg.encode({f"CBC_Weight{i}": 10.0 * i for i in range(1, 7)})
    stop = threading.Event()

    def sender() -> None:
        with can.Bus(interface="virtual", channel=channel) as bus:
            while not stop.is_set():
                bus.send(can.Message(arbitration_id=msg.frame_id, data=payload, is_extended_id=False))
                time.sleep(0.01)

    thread = threading.Thread(target=sender)
    thread.start()
    try:
        code = cli.main(["gateway", "-i", "virtual", "-c", channel, "--bus-name", "body",
                         "--duration", "0.6", "--json", "--signal", "CBC_Weight3"])
    finally:
        stop.set()
        thread.join()
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counters"]["decoded"] >= 5
    assert report["signals"] == [
        {"signal": "CBC_Weight3", "value": 30.0, "unit": "kg", "age_s": report["signals"][0]["age_s"], "valid": True}
    ]
    assert report["counters"]["transmit"]["armed"] == []


def test_route_syntax() -> None:
    rule = parse_route("pt:body:0C0/7FF@10")
    assert (rule.src, rule.dst, rule.can_id, rule.mask, rule.rate_limit_hz) == ("pt", "body", 0xC0, 0x7FF, 10.0)
    with pytest.raises(ValueError, match="SRC:DST:ID"):
        parse_route("pt-body")


def test_bad_arm_name_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["gateway", "-i", "virtual", "-c", "z10-arm-test", "--arm", "bogus", "--duration", "0.1"])
    assert code == cli.EXIT_USAGE
    assert capsys.readouterr().err.strip().startswith("error: --arm: expected bus names")


def test_control_loop_on_an_unarmed_bus_sends_nothing(capsys, monkeypatch) -> None:
    """--control on a bus that is not the simulator's and not armed: the loop runs (ticks,
    interlocks: no ADC -> timeout), the transmit path sends nothing."""
    import json
    import uuid

    from vehicle_io.bench import BusSpec
    from vehicle_io.cli import main

    # a van's bus: the in-process virtual bus stands in for can0 here
    monkeypatch.setattr(BusSpec, "is_simulated", property(lambda self: False))
    channel = f"gwctl-{uuid.uuid4().hex}"
    assert main(["gateway", "-i", "virtual", "-c", channel, "--control", "--duration", "0.5", "--json"]) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    control = doc["control"]
    assert control["armed"] == [] and control["counters"]["sent"] == 0
    assert control["counters"]["ticks"] >= 20  # 10 ms period, 0.5 s (a loaded machine still gets 20)
    assert "ILK_ADC_TIMEOUT" in control["active_interlocks"]
    assert set(control["jitter"]) == {"p50_us", "p99_us", "max_us"}
    assert "nothing is sent" in out.err


def test_control_loop_armed_sends_only_allowlisted_commands() -> None:
    """Armed by name: the loop's command frames (and nothing else) reach the bus."""
    import uuid

    import can

    from vehicle_io.cli import main

    channel = f"gwctl-{uuid.uuid4().hex}"
    spy = can.Bus(interface="virtual", channel=channel)
    try:
        assert main(["gateway", "-i", "virtual", "-c", channel, "--control", "--arm", "pt", "--duration", "0.5",
                     "--json"]) == 0
        ids = set()
        while (m := spy.recv(0)) is not None:
            ids.add(m.arbitration_id)
    finally:
        spy.shutdown()
    from vehicle_io import load_database
    from vehicle_io.control.loop import control_allowlist

    allowed = {a.frame_id for a in control_allowlist(load_database()) if a.bus == "pt"}
    assert ids and ids <= allowed
