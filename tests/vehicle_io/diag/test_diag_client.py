"""vehicle_io.diag against the simulated ECUs (hil.uds) on python-can virtual buses, and `z10 diag`."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator

import can
import pytest

from hil.uds.ecus import attach, make_servers
from hil.uds.server import UdsServer
from vehicle_io import diag
from vehicle_io.cli import diag_cmd
from vehicle_io.diag.security import dev_key
from vehicle_io.errors import TransmitBlocked

LIVE = {"soc": 0.9, "pack_voltage_v": 360.0}


class Van:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex
        self.channels = {"pt": f"pt-{tag}", "body": f"body-{tag}"}
        self.servers: dict[str, UdsServer] = make_servers(live=lambda: LIVE)
        self.ecu_buses = {n: can.Bus(interface="virtual", channel=c) for n, c in self.channels.items()}
        self.transports = attach(self.ecu_buses, self.servers)
        self.testers: list[can.BusABC] = []

    def tester(self, name: str = "pt") -> can.BusABC:
        bus = can.Bus(interface="virtual", channel=self.channels[name])
        self.testers.append(bus)
        return bus

    def close(self) -> None:
        for t in self.transports:
            t.shutdown()
        for bus in [*self.ecu_buses.values(), *self.testers]:
            bus.shutdown()


@pytest.fixture
def van() -> Iterator[Van]:
    v = Van()
    try:
        yield v
    finally:
        v.close()


def test_scan_finds_each_ecu_with_its_identity(van):
    pt = diag.scan(van.tester("pt"), timeout_s=1.0)
    assert [(e.name, e.request_id, e.response_id) for e in pt] == [("vcu", 0x7E0, 0x7E8), ("bms", 0x7E1, 0x7E9)]
    assert pt[1].identifiers == {"vin": "WZ1ZE10SM00000001", "serial": "BMS-SIM-0001", "software_version": "BMS 1.7.4"}
    body = diag.scan(van.tester("body"), timeout_s=1.0)
    assert [e.name for e in body] == ["cbc"] and body[0].as_dict()["response_id"] == "0x7EA"


def test_scan_of_a_silent_bus_finds_nothing():
    with can.Bus(interface="virtual", channel=f"empty-{uuid.uuid4().hex}") as bus:
        assert diag.scan(bus, timeout_s=0.1) == []


def test_read_did_and_its_errors(van):
    bus = van.tester()
    assert diag.read_did(bus, diag.ECUS["bms"], 0xF18C) == b"BMS-SIM-0001"
    assert diag.read_did(bus, diag.ECUS["bms"], 0x0202) == (3600).to_bytes(2, "big")
    with pytest.raises(diag.NegativeResponseError) as info:
        diag.read_did(bus, diag.ECUS["bms"], 0x4242)
    assert info.value.code == 0x31 and "0x4242" in str(info.value)
    with pytest.raises(diag.DiagTimeout):
        diag.read_did(bus, diag.EcuAddress("ghost", "pt", 0x7E5, 0x7ED), 0xF190, timeout_s=0.1)
    with pytest.raises(diag.DiagError):
        diag.read_did(bus, diag.ECUS["bms"], 0x10000)


def test_dtc_read_and_clear(van):
    bus = van.tester()
    van.servers["bms"].report_fault("over_temperature", True)
    entries = diag.read_dtcs(bus, diag.ECUS["bms"], 0x08)
    assert [(e.dtc, e.text) for e in entries] == [(0x0A7E00, "P0A7E-00")]
    assert entries[0].as_dict()["confirmed"] is True
    diag.clear_dtcs(bus, diag.ECUS["bms"])
    assert diag.read_dtcs(bus, diag.ECUS["bms"], 0x2F) == []


def test_session_change_reports_timing(van):
    bus = van.tester()
    timing = diag.change_session(bus, diag.ECUS["vcu"], "extended")
    assert (timing.session, timing.p2_ms, timing.p2_star_ms) == ("extended", 50, 5000)
    assert van.servers["vcu"].session == 0x03
    with pytest.raises(diag.NegativeResponseError) as info:
        diag.change_session(van.tester(), diag.ECUS["bms"], "programming")
    assert info.value.code == 0x7E
    with pytest.raises(diag.DiagError):
        diag.change_session(bus, diag.ECUS["vcu"], "turbo")


def test_tester_present_keeps_nothing_else_from_working(van):
    bus = van.tester()
    diag.tester_present(bus)
    assert diag.read_did(bus, diag.ECUS["vcu"], 0xF195) == b"VCU 3.2.0"


def test_dtc_text_follows_iso15031():
    assert diag.dtc_text(0x0A7E00) == "P0A7E-00"
    assert diag.dtc_text(0xC10000) == "U0100-00"
    assert diag.dtc_text(0x9A1000) == "B1A10-00"
    assert diag.dtc_text(0x4123FF) == "C0123-FF"


def test_dev_key_is_the_documented_keyed_hash():
    seed = bytes([0x12, 0x34, 0x56, 0x78])
    expected = hmac.new(b"z10-dev-key:bms", b"\x11" + seed, hashlib.sha256).digest()[:4]
    assert dev_key("bms", 0x11, seed) == expected == dev_key("BMS", 0x12, seed)
    assert dev_key("vcu", 0x11, seed) != expected and dev_key("bms", 0x01, seed) != expected
    with pytest.raises(ValueError):
        dev_key("bms", 0, seed)


# ------------------------------------------------------------------ z10 diag
def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    diag_cmd.add_arguments(parser)
    args = parser.parse_args(argv)
    return diag_cmd.run(args)


def test_cli_read_did_json(van, capsys):
    code = run_cli(["read-did", "--ecu", "bms", "0xF190", "0x0201", "--json", "-i", "virtual", "-c", van.channels["pt"]])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["dids"][0] == {"did": "0xF190", "hex": b"WZ1ZE10SM00000001".hex(" "), "ascii": "WZ1ZE10SM00000001"}
    assert out["dids"][1]["hex"] == "03 84"  # SOC 0.9 at 0.001 per bit = 900


def test_cli_dtc_and_clear(van, capsys):
    van.servers["bms"].report_fault("isolation", True)
    single = ["--ecu", "bms", "-i", "virtual", "-c", van.channels["pt"]]
    assert run_cli(["dtc", "--json", *single]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [d["code"] for d in out["dtcs"]] == ["P0AA6-00"]
    assert run_cli(["dtc", "--clear", *single]) == 0
    assert "cleared" in capsys.readouterr().out
    assert run_cli(["dtc", *single]) == 0
    assert "0 trouble code(s)" in capsys.readouterr().out


def test_cli_session_and_refused_request_exit_1(van, capsys):
    single = ["-i", "virtual", "-c", van.channels["pt"]]
    assert run_cli(["session", "--ecu", "vcu", "extended", *single]) == 0
    assert "extended session (P2 50 ms, P2* 5000 ms)" in capsys.readouterr().out
    assert run_cli(["session", "--ecu", "bms", "programming", *single]) == 1
    assert "NRC 0x7E" in capsys.readouterr().err


def test_cli_scan_with_a_bench_of_simulated_buses(van, capsys, tmp_path):
    bench = tmp_path / "bench.toml"
    bench.write_text("".join(f'[bus.{n}]\ninterface = "virtual"\nchannel = "{c}"\n\n' for n, c in van.channels.items()))
    assert run_cli(["scan", "--json", "--bench", str(bench)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [e["ecu"] for e in out["pt"]] == ["vcu", "bms"] and [e["ecu"] for e in out["body"]] == ["cbc"]
    assert out["body"][0]["serial"] == "CBC-SIM-0001"


def test_cli_refuses_a_real_bus_that_is_not_armed(tmp_path):
    bench = tmp_path / "van.toml"
    bench.write_text('[bus.pt]\ninterface = "socketcan"\nchannel = "can0"\nbitrate = 500000\n')
    with pytest.raises(TransmitBlocked, match="--arm pt"):
        run_cli(["read-did", "--ecu", "vcu", "0xF190", "--bench", str(bench)])
    with pytest.raises(TransmitBlocked):
        run_cli(["scan", "--bench", str(bench)])
    with pytest.raises(ValueError, match="--arm"):
        run_cli(["scan", "--bench", str(bench), "--arm", "body"])
