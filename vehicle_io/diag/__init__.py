"""Diagnostics client: UDS (ISO 14229) over ISO-TP (ISO 15765-2) on any python-can bus.

Built on udsoncan's :class:`~udsoncan.client.Client` over can-isotp's
:class:`~isotp.NotifierBasedCanStack`, so several conversations share one bus object. Every
function takes an open python-can bus (socketcan, slcan, socketcand to ``z10 sim``, hilbus,
virtual...); whether the caller may transmit on it is the caller's decision (the ``z10 diag``
command refuses a bus that is not armed).

Addressing (DESIGN.md, 11-bit normal addressing): VCU 0x7E0 -> 0x7E8 and BMS 0x7E1 -> 0x7E9
on pt, cargo-bay controller 0x7E2 -> 0x7EA on body, functional requests on 0x7DF.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vehicle_io.errors import VehicleIoError

if TYPE_CHECKING:
    import can
    from udsoncan.client import Client

__all__ = [
    "DiagError", "DiagTimeout", "DtcEntry", "ECUS", "EcuAddress", "EcuIdentity",
    "FUNCTIONAL_REQUEST_ID", "IDENTITY_DIDS", "acquire_notifier", "release_notifier", "NegativeResponseError", "SESSIONS", "SessionTiming",
    "change_session", "clear_dtcs", "send_functional", "dtc_text", "ecu_by_name", "isotp_params", "open_client",
    "read_did", "read_dtcs", "scan", "tester_present",
]

FUNCTIONAL_REQUEST_ID = 0x7DF
#: identity DIDs read by a scan: VIN, ECU serial number, software version
IDENTITY_DIDS: dict[int, str] = {0xF190: "vin", 0xF18C: "serial", 0xF195: "software_version"}
SESSIONS: dict[str, int] = {"default": 0x01, "programming": 0x02, "extended": 0x03}
_SESSION_NAMES = {v: k for k, v in SESSIONS.items()}


_notifier_lock = threading.Lock()
#: notifiers this module created: id(bus) -> [notifier, users]
_notifiers: dict[int, list[Any]] = {}


def acquire_notifier(bus: can.BusABC) -> can.Notifier:
    """The python-can Notifier reading ``bus``, shared (python-can allows one per bus).

    Reuses a notifier someone else started on the bus; otherwise starts one that lives
    until the last :func:`release_notifier`.
    """
    import can

    with _notifier_lock:
        entry = _notifiers.get(id(bus))
        if entry is not None and not entry[0].stopped:
            entry[1] += 1
            return entry[0]
        find = getattr(can.Notifier, "find_instances", None)
        if find is not None:
            for notifier in find(bus):
                if not notifier.stopped:
                    return notifier
        notifier = can.Notifier(bus, [], timeout=0.05)
        _notifiers[id(bus)] = [notifier, 1]
        return notifier


def release_notifier(bus: can.BusABC, notifier: can.Notifier) -> None:
    """Done with a notifier from :func:`acquire_notifier`; the last user stops it."""
    with _notifier_lock:
        entry = _notifiers.get(id(bus))
        if entry is None or entry[0] is not notifier:
            return  # not ours: whoever started it stops it
        entry[1] -= 1
        if entry[1] <= 0:
            del _notifiers[id(bus)]
            notifier.stop()


class DiagError(VehicleIoError):
    """A diagnostic request failed (no answer, a negative answer, a malformed answer)."""


class DiagTimeout(DiagError, TimeoutError):
    """The ECU did not answer within the timeout."""


class NegativeResponseError(DiagError):
    """The ECU answered with a negative response code (NRC)."""

    def __init__(self, ecu: str, service: str, code: int, name: str) -> None:
        self.ecu, self.service, self.code = ecu, service, code
        super().__init__(f"{ecu}: {service} refused with NRC 0x{code:02X} ({name})")


@dataclass(frozen=True)
class EcuAddress:
    """Where one ECU answers: its bus and its physical request / response CAN ids."""

    name: str
    bus: str
    request_id: int
    response_id: int
    description: str = ""


ECUS: dict[str, EcuAddress] = {
    "vcu": EcuAddress("vcu", "pt", 0x7E0, 0x7E8, "vehicle control unit"),
    "bms": EcuAddress("bms", "pt", 0x7E1, 0x7E9, "battery management system"),
    "cbc": EcuAddress("cbc", "body", 0x7E2, 0x7EA, "cargo-bay controller"),
}


def ecu_by_name(name: str) -> EcuAddress:
    try:
        return ECUS[name.lower()]
    except KeyError:
        raise DiagError(f"expected an ECU among {', '.join(ECUS)}, but got {name!r}") from None


def dtc_text(dtc: int) -> str:
    """``0x0A7E00`` -> ``"P0A7E-00"`` (ISO 15031-6 letter and code, failure type byte)."""
    letter = "PCBU"[(dtc >> 22) & 0x3]
    return f"{letter}{(dtc >> 20) & 0x3}{(dtc >> 8) & 0xFFF:03X}-{dtc & 0xFF:02X}"


@dataclass(frozen=True)
class DtcEntry:
    dtc: int
    status: int

    @property
    def text(self) -> str:
        return dtc_text(self.dtc)

    def as_dict(self) -> dict[str, Any]:
        return {"dtc": f"0x{self.dtc:06X}", "code": self.text, "status": f"0x{self.status:02X}",
                "confirmed": bool(self.status & 0x08), "test_failed": bool(self.status & 0x01)}


@dataclass(frozen=True)
class SessionTiming:
    session: str
    p2_ms: int
    p2_star_ms: int


@dataclass
class EcuIdentity:
    """What a scan learnt about one ECU."""

    name: str
    request_id: int
    response_id: int
    identifiers: dict[str, str | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ecu": self.name, "request_id": f"0x{self.request_id:03X}",
                "response_id": f"0x{self.response_id:03X}", **self.identifiers}


def isotp_params(fd: bool = False) -> dict[str, Any]:
    """can-isotp parameters of the Z10 testers and ECUs (padding 0xCC, no block size, no STmin)."""
    return {
        "stmin": 0,
        "blocksize": 0,
        "tx_padding": 0xCC,
        "tx_data_length": 64 if fd else 8,
        "can_fd": fd,
        "bitrate_switch": fd,
        "blocking_send": False,
        "rx_flowcontrol_timeout": 1000,
        "rx_consecutive_frame_timeout": 1000,
        "max_frame_size": 4095 if not fd else 65535,
    }


def _raw_codec() -> Any:
    """A udsoncan DID codec that keeps the bytes: the tester does not need to know every DID."""
    from udsoncan import DidCodec

    class RawCodec(DidCodec):
        def encode(self, *did_value: Any) -> bytes:
            return bytes(did_value[0])

        def decode(self, did_payload: bytes) -> bytes:
            return bytes(did_payload)

        def __len__(self) -> int:
            raise DidCodec.ReadAllRemainingData

    return RawCodec()


def _client_config(timeout_s: float) -> dict[str, Any]:
    from udsoncan.configs import default_client_config

    config = dict(default_client_config)
    config.update({
        "data_identifiers": {"default": _raw_codec()},
        "request_timeout": max(timeout_s, 0.05) * 10 + 6.0,  # long enough for 0x78 pending
        "p2_timeout": timeout_s,
        "p2_star_timeout": 5.0,
        "dtc_snapshot_did_size": 2,
        "extended_data_size": 1,
        "use_server_timing": False,
    })
    return config


@contextmanager
def open_client(bus: can.BusABC, ecu: EcuAddress, *, timeout_s: float = 1.0, fd: bool = False,
                notifier: can.Notifier | None = None) -> Iterator[Client]:
    """A connected udsoncan Client talking to ``ecu`` on ``bus`` (closed on exit)."""
    import can
    import isotp
    from udsoncan.client import Client
    from udsoncan.connections import PythonIsoTpConnection

    own_notifier = notifier is None
    notifier = notifier if notifier is not None else acquire_notifier(bus)
    try:
        address = isotp.Address(isotp.AddressingMode.Normal_11bits, txid=ecu.request_id, rxid=ecu.response_id)
        stack = isotp.NotifierBasedCanStack(bus, notifier, address=address, params=isotp_params(fd))
        connection = PythonIsoTpConnection(stack)
        with Client(connection, config=_client_config(timeout_s)) as client:  # type: ignore[arg-type]
            yield client
    finally:
        if own_notifier:
            release_notifier(bus, notifier)


@contextmanager
def _translated(ecu: str, service: str) -> Iterator[None]:
    from udsoncan.exceptions import (
        InvalidResponseException,
        NegativeResponseException,
        TimeoutException,
        UnexpectedResponseException,
    )

    try:
        yield
    except NegativeResponseException as err:
        code = err.response.code
        raise NegativeResponseError(ecu, service, code, err.response.code_name) from err
    except TimeoutException as err:
        raise DiagTimeout(f"{ecu}: no answer to {service} ({err})") from err
    except (InvalidResponseException, UnexpectedResponseException) as err:
        raise DiagError(f"{ecu}: malformed answer to {service}: {err}") from err
    except ValueError as err:
        raise DiagError(f"{ecu}: {service}: {err}") from err


def read_did(bus: can.BusABC, ecu: EcuAddress, did: int, *, timeout_s: float = 1.0) -> bytes:
    """ReadDataByIdentifier of one DID; the raw bytes."""
    if not 0 <= did <= 0xFFFF:
        raise DiagError(f"expected a DID 0x0000..0xFFFF, but got {did!r}")
    with open_client(bus, ecu, timeout_s=timeout_s) as client, _translated(ecu.name, f"ReadDataByIdentifier 0x{did:04X}"):
        response = client.read_data_by_identifier_first(did)
    return bytes(response)


def read_dtcs(bus: can.BusABC, ecu: EcuAddress, status_mask: int = 0xFF, *, timeout_s: float = 1.0) -> list[DtcEntry]:
    """ReadDTCInformation 0x02 (reportDTCByStatusMask)."""
    with open_client(bus, ecu, timeout_s=timeout_s) as client, _translated(ecu.name, "ReadDTCInformation"):
        response = client.get_dtc_by_status_mask(status_mask)
    return [DtcEntry(d.id, d.status.get_byte_as_int()) for d in response.service_data.dtcs]


def clear_dtcs(bus: can.BusABC, ecu: EcuAddress, group: int = 0xFFFFFF, *, timeout_s: float = 1.0) -> None:
    """ClearDiagnosticInformation (default: every DTC)."""
    with open_client(bus, ecu, timeout_s=timeout_s) as client, _translated(ecu.name, "ClearDiagnosticInformation"):
        client.clear_dtc(group)


def change_session(bus: can.BusABC, ecu: EcuAddress, session: str | int, *, timeout_s: float = 1.0) -> SessionTiming:
    """DiagnosticSessionControl; the P2 / P2* the ECU announced."""
    number = SESSIONS.get(session, -1) if isinstance(session, str) else int(session)
    if number not in _SESSION_NAMES:
        raise DiagError(f"expected a session among {', '.join(SESSIONS)}, but got {session!r}")
    with open_client(bus, ecu, timeout_s=timeout_s) as client, _translated(ecu.name, "DiagnosticSessionControl"):
        response = client.change_session(number)
    data = response.service_data
    return SessionTiming(_SESSION_NAMES[number], int(data.p2_server_max * 1000), int(round(data.p2_star_server_max * 1000)))


def tester_present(bus: can.BusABC, *, fd: bool = False) -> None:
    """One functional TesterPresent with the suppress-positive-response bit (keeps sessions alive)."""
    send_functional(bus, b"\x3e\x80", fd=fd)


def send_functional(bus: can.BusABC, payload: bytes, *, fd: bool = False, settle_s: float = 0.02) -> None:
    """One functionally addressed request (0x7DF, a single frame); answers are not awaited.

    Meant for requests with the suppress-positive-response bit set. ``settle_s`` gives the
    frame time to leave before the ISO-TP stack is stopped.
    """
    import isotp

    if not 1 <= len(payload) <= (62 if fd else 7):
        raise DiagError(f"expected a functional request of 1..{62 if fd else 7} bytes (one frame), "
                        f"but got {len(payload)}")
    notifier = acquire_notifier(bus)
    address = isotp.Address(isotp.AddressingMode.Normal_11bits, txid=FUNCTIONAL_REQUEST_ID, rxid=0x7E8)
    stack = isotp.NotifierBasedCanStack(bus, notifier, address=address, params=isotp_params(fd))
    try:
        stack.start()
        stack.send(bytes(payload), target_address_type=isotp.TargetAddressType.Functional, send_timeout=1.0)
        deadline = time.monotonic() + 1.0
        while stack.transmitting() and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(settle_s)
    finally:
        stack.stop()
        release_notifier(bus, notifier)


def scan(bus: can.BusABC, *, timeout_s: float = 0.3, request_ids: Iterable[int] = range(0x7E0, 0x7E8),
         fd: bool = False) -> list[EcuIdentity]:
    """Which ECUs answer on this bus, each with its identity DIDs.

    One functional TesterPresent (0x7DF) finds the responders among ``request_ids`` (response
    id = request id + 8); each is then asked for VIN, serial and software version.
    """
    import can
    import isotp

    known = {e.request_id: e for e in ECUS.values()}
    notifier = acquire_notifier(bus)
    stacks: dict[int, Any] = {}
    found: list[EcuIdentity] = []
    try:
        for request_id in request_ids:
            address = isotp.Address(isotp.AddressingMode.Normal_11bits, txid=request_id, rxid=request_id + 8)
            stacks[request_id] = isotp.NotifierBasedCanStack(bus, notifier, address=address, params=isotp_params(fd))
            stacks[request_id].start()
        functional = isotp.NotifierBasedCanStack(
            bus, notifier, params=isotp_params(fd),
            address=isotp.Address(isotp.AddressingMode.Normal_11bits, txid=FUNCTIONAL_REQUEST_ID, rxid=0x7E8))
        functional.start()
        try:
            functional.send(b"\x3e\x00", target_address_type=isotp.TargetAddressType.Functional, send_timeout=1.0)
        finally:
            functional.stop()
        responders = []
        deadline = time.monotonic() + timeout_s
        for request_id, stack in stacks.items():
            answer = stack.recv(block=True, timeout=max(0.0, deadline - time.monotonic()))
            if answer is not None and bytes(answer[:1]) == b"\x7e":
                responders.append(request_id)
        for stack in stacks.values():
            stack.stop()
        stacks.clear()
        for request_id in responders:
            ecu = known.get(request_id) or EcuAddress(f"0x{request_id:03X}", "", request_id, request_id + 8)
            identity = EcuIdentity(ecu.name, ecu.request_id, ecu.response_id)
            with open_client(bus, ecu, timeout_s=timeout_s, fd=fd, notifier=notifier) as client:
                for did, label in IDENTITY_DIDS.items():
                    try:
                        with _translated(ecu.name, f"ReadDataByIdentifier 0x{did:04X}"):
                            raw = client.read_data_by_identifier_first(did)
                        identity.identifiers[label] = bytes(raw).decode("ascii", errors="replace")
                    except DiagError:
                        identity.identifiers[label] = None
            found.append(identity)
    finally:
        for stack in stacks.values():
            stack.stop()
        release_notifier(bus, notifier)
    return found
