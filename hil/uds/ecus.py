"""The simulated Z10 ECUs that answer UDS: VCU and BMS on pt, cargo-bay controller on body.

Adding an ECU is one :class:`~hil.uds.server.EcuConfig` entry in :data:`Z10_ECUS` (its
address lives in :data:`vehicle_io.diag.ECUS`, shared with the tester). Live-data DIDs read
the plant state by field name (``hil.plant.state``), so any mapping of those names works.

DIDs: 0xF190 VIN (17 ASCII, writable in the extended session after SecurityAccess level 1),
0xF18C ECU serial, 0xF195 software version, 0xF186 active session; live data, big-endian,
all 0xFF when the value is not available:

=====  ======  =============================  ====================
ECU    DID     value                          encoding
=====  ======  =============================  ====================
VCU    0x0101  vehicle speed                  int16, 0.01 m/s
VCU    0x0102  motor speed                    int16, 1 rpm
BMS    0x0201  state of charge                uint16, 0.001 (0..1)
BMS    0x0202  pack voltage                   uint16, 0.1 V
BMS    0x0203  pack current (+ = discharge)   int16, 0.1 A
BMS    0x0204  hottest cell temperature       int16, 0.1 degC
BMS    0x0205  isolation resistance           uint16, 1 kOhm
CBC    0x0301  cargo-bay temperature          int16, 0.1 degC
CBC    0x0302  cargo door open                uint8, 0/1
=====  ======  =============================  ====================

DTCs (ISO 15031-6 codes; 3-byte DTC = code << 8 | failure type):

=====  ===========  ==========================================================
ECU    DTC          fault
=====  ===========  ==========================================================
VCU    U0111-00     lost communication with the BMS
VCU    U0140-00     lost communication with the cargo-bay controller (body)
VCU    P0500-00     vehicle speed signal implausible
BMS    P0A7E-00     HV battery over-temperature (warning lamp)
BMS    P0AA6-00     HV isolation fault (warning lamp)
BMS    U0100-00     lost communication with the VCU
CBC    U0100-00     lost communication with the VCU
CBC    B1A10-00     cargo-bay over-temperature
=====  ===========  ==========================================================

Every Z10 ECU verifies the Ed25519 signature of a downloaded image (scheme
:mod:`vehicle_io.flash.signing`) before it makes the bank bootable; the simulator trusts the
public DEVELOPMENT key by default (``make_servers(trusted_key=...)`` trusts another).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from hil.uds.dtc import DtcDefinition
from hil.uds.server import Conditions, EcuConfig, LiveDid, UdsServer
from vehicle_io.diag import ECUS

if TYPE_CHECKING:
    import can

    from hil.uds.transport import UdsEcuTransport

__all__ = ["Z10_ECUS", "attach", "image_verifier", "make_servers"]


def image_verifier(ecu: str, public_key: Any = None) -> Callable[[int, bytes, bytes], bool]:
    """The ECU's signature check: Ed25519 with ``public_key`` (default: the development key)."""
    keys: list[Any] = [] if public_key is None else [public_key]

    def verify(address: int, image: bytes, signature: bytes) -> bool:
        from vehicle_io.flash.signing import dev_public_key, verify_image

        if not keys:
            keys.append(dev_public_key())  # loaded at the first check: building an ECU stays cheap
        return verify_image(keys[0], ecu, address, image, signature)

    return verify

_VIN = "WZ1ZE10SM00000001"

Z10_ECUS: dict[str, EcuConfig] = {
    "vcu": EcuConfig(
        name="vcu", vin=_VIN, image_verifier=image_verifier("vcu"), serial="VCU-SIM-0001", software_version="VCU 3.2.0",
        live_dids=(
            LiveDid(0x0101, "vehicle speed", "speed_mps", scale=0.01, signed=True),
            LiveDid(0x0102, "motor speed", "motor_speed_rpm", scale=1.0, signed=True),
        ),
        dtcs=(
            DtcDefinition(0xC11100, "lost_comm_bms", "lost communication with the BMS"),
            DtcDefinition(0xC14000, "lost_comm_body", "lost communication with the cargo-bay controller"),
            DtcDefinition(0x050000, "speed_implausible", "vehicle speed signal implausible"),
        ),
    ),
    "bms": EcuConfig(
        name="bms", vin=_VIN, image_verifier=image_verifier("bms"), serial="BMS-SIM-0001", software_version="BMS 1.7.4",
        live_dids=(
            LiveDid(0x0201, "state of charge", "soc", scale=0.001),
            LiveDid(0x0202, "pack voltage", "pack_voltage_v", scale=0.1),
            LiveDid(0x0203, "pack current", "pack_current_a", scale=0.1, signed=True),
            LiveDid(0x0204, "hottest cell temperature", "cell_t_max_c", scale=0.1, signed=True),
            LiveDid(0x0205, "isolation resistance", "isolation_resistance_ohm", scale=1000.0),
        ),
        dtcs=(
            DtcDefinition(0x0A7E00, "over_temperature", "HV battery over-temperature", warning_lamp=True),
            DtcDefinition(0x0AA600, "isolation", "HV isolation fault", warning_lamp=True),
            DtcDefinition(0xC10000, "lost_comm_vcu", "lost communication with the VCU"),
        ),
    ),
    "cbc": EcuConfig(
        name="cbc", vin=_VIN, image_verifier=image_verifier("cbc"), serial="CBC-SIM-0001", software_version="CBC 2.0.1",
        live_dids=(
            LiveDid(0x0301, "cargo-bay temperature", "cargo_bay_temp_c", scale=0.1, signed=True),
            LiveDid(0x0302, "cargo door open", "cargo_door_open", scale=1.0, size=1),
        ),
        dtcs=(
            DtcDefinition(0xC10000, "lost_comm_vcu", "lost communication with the VCU"),
            DtcDefinition(0x9A1000, "cargo_over_temperature", "cargo-bay over-temperature"),
        ),
    ),
}


def make_servers(*, live: Callable[[], Mapping[str, float]] | None = None,
                 conditions: Callable[[], Conditions] | None = None,
                 clock: Callable[[], float] | None = None, trusted_key: Any = None,
                 **kwargs: Any) -> dict[str, UdsServer]:
    """A fresh UdsServer per Z10 ECU, all reading the same plant values and conditions.

    ``trusted_key``: the Ed25519 public key the ECUs accept images from (default: the
    development key).
    """
    extra: dict[str, Any] = dict(kwargs)
    if clock is not None:
        extra["clock"] = clock
    configs = dict(Z10_ECUS)
    if trusted_key is not None:
        configs = {name: dataclasses.replace(config, image_verifier=image_verifier(name, trusted_key))
                   for name, config in configs.items()}
    return {name: UdsServer(config, live=live, conditions=conditions, **extra) for name, config in configs.items()}


def attach(buses: Mapping[str, can.BusABC], servers: Mapping[str, UdsServer]) -> list[UdsEcuTransport]:
    """Start a transport for every server whose bus (pt / body) is in ``buses``."""
    from hil.uds.transport import UdsEcuTransport

    started: list[UdsEcuTransport] = []
    try:
        for name, server in servers.items():
            address = ECUS[name]
            bus = buses.get(address.bus)
            if bus is not None:
                started.append(UdsEcuTransport(bus, server, address).start())
    except BaseException:
        for transport in started:
            transport.shutdown()
        raise
    return started
