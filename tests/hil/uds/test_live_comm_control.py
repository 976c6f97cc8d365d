"""UDS 0x28 on the rig: disableTx silences the ECU's normal frames, disableRx makes it ignore commands."""

from __future__ import annotations

import pytest

from hil.ecus.gwstub import GatewayStub
from hil.rig import Rig
from hil.uds.ecus import make_servers
from hil.uds.live import LiveDiagnostics


@pytest.fixture
def rig():
    r = Rig(seed=2, clock="sim")
    try:
        yield r
    finally:
        r.close()


def _live(rig: Rig, servers: dict) -> LiveDiagnostics:
    return LiveDiagnostics(rig, servers, live=lambda: rig.van.model.outputs.snapshot(), buses={})


def test_disable_rx_makes_the_ecu_ignore_commands(rig: Rig) -> None:
    servers = make_servers(clock=lambda: rig.t_s)
    live = _live(rig, servers)
    stub = GatewayStub(rig, messages=["GW_DriveCommand"])
    stub.set("GW_DriveCommand", GW_DriveEnable=1, GW_GearRequest=3, GW_EpbRequest=2)
    # 0x28 0x03 0x01 in an extended session: disableRxAndTx of normal messages
    assert servers["vcu"].handle(bytes([0x10, 0x03]))[0][0] == 0x50
    assert servers["vcu"].handle(bytes([0x28, 0x03, 0x01]))[0][:2] == bytes([0x68, 0x03])
    live.sync_communication_control()
    vcu = rig.ecu("VCU")
    assert vcu.normal_rx_enabled is False and any(f.name.startswith("uds-0x28") for f in vcu.faults)
    rig.run_for(1.0)
    assert rig.van.read("gear") == 0  # the gear request was not acted on
    assert vcu.stats.commands_ignored > 50 and vcu.stats.commands_accepted == 0
    # back to the default session: reception and transmission again
    assert servers["vcu"].handle(bytes([0x10, 0x01]))[0][0] == 0x50
    live.sync_communication_control()
    assert vcu.normal_rx_enabled is True and not vcu.faults
    rig.run_for(1.0)
    assert rig.van.read("gear") == 3 and vcu.stats.commands_accepted > 0
    live.shutdown()
