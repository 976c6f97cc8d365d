"""The ECUs on the timed bus (hilbus), reached as another process would: socketcand via the hub."""

from __future__ import annotations

import argparse
import json
import uuid

import can

from hil.bus import channel_names
from hil.hub import Hub, default_channels
from hil.uds.ecus import attach, make_servers
from vehicle_io import diag
from vehicle_io.cli import diag_cmd


def test_hilbus_and_hub_serve_uds_to_a_socketcand_tester(capsys):
    prefix = f"uds{uuid.uuid4().hex[:6]}-"
    servers = make_servers(live=lambda: {"pack_voltage_v": 401.7})
    with Hub(default_channels("hilbus", prefix=prefix), port=0) as hub:
        ecu_buses = {ch.name: can.Bus(**ch.bus_kwargs()) for ch in hub.channels.values() if ch.name != "ads"}
        transports = attach(ecu_buses, servers)
        try:
            host, port = hub.address
            with can.Bus(interface="socketcand", host=host, port=port, channel="body") as tester:
                found = diag.scan(tester, timeout_s=1.0)
                assert [(e.name, e.identifiers["serial"]) for e in found] == [("cbc", "CBC-SIM-0001")]
            # the technician's command, default bus options = the simulator on loopback
            parser = argparse.ArgumentParser()
            diag_cmd.add_arguments(parser)
            args = parser.parse_args(["read-did", "--ecu", "bms", "0x0202", "0xF195", "--json", "--sim-port", str(port)])
            assert diag_cmd.run(args) == 0
            out = json.loads(capsys.readouterr().out)
            assert [d["hex"] for d in out["dids"]] == [(4017).to_bytes(2, "big").hex(" "), b"BMS 1.7.4".hex(" ")]
        finally:
            for transport in transports:
                transport.shutdown()
            for bus in ecu_buses.values():
                bus.shutdown()
    assert not [name for name in channel_names() if name.startswith(prefix)]
