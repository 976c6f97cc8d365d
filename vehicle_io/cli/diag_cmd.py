"""``z10 diag``: UDS diagnostics — which ECUs answer, identifiers, trouble codes, sessions.

Subcommands::

    z10 diag scan                       # every bus: which ECUs answer, VIN / serial / software
    z10 diag read-did --ecu bms 0xF190  # one or more DIDs, hex and ASCII
    z10 diag dtc --ecu bms [--clear]    # trouble codes with status bits; --clear erases them
    z10 diag session --ecu vcu extended [--hold 30]

Diagnostics transmit, so on any bus that is not the simulator's the command refuses unless
the bus is armed (``--arm pt``). Exit codes: 0 done, 1 the ECU refused or did not answer,
2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from vehicle_io.cli.busopts import add_bus_arguments, bus_specs

HELP = "UDS diagnostics: scan ECUs, read DIDs, read/clear trouble codes, change session"

_EXIT_REFUSED = 1


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0xF190, but got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="diag_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser, ecu: bool = True) -> None:
        if ecu:
            p.add_argument("--ecu", required=True, help="ECU name: vcu, bms or cbc")
        p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for an answer (default 1)")
        p.add_argument("--json", action="store_true", help="print the result as JSON")
        add_bus_arguments(p)

    p = sub.add_parser("scan", help="which ECUs answer on each bus, with VIN, serial and software version")
    p.add_argument("--bus", action="append", dest="scan_buses", metavar="NAME",
                   help="scan only this bus (repeatable; default: every bus except ads)")
    common(p, ecu=False)
    p = sub.add_parser("read-did", help="read data identifiers (ReadDataByIdentifier)")
    p.add_argument("dids", nargs="+", type=_int, metavar="DID", help="DID, e.g. 0xF190")
    common(p)
    p = sub.add_parser("dtc", help="read trouble codes (ReadDTCInformation), or clear them with --clear")
    p.add_argument("--clear", action="store_true", help="clear every trouble code (ClearDiagnosticInformation)")
    p.add_argument("--mask", type=_int, default=0x2F,
                   help="status mask (default 0x2F: failed, pending, confirmed, failed since clear)")
    common(p)
    p = sub.add_parser("session", help="change the diagnostic session (DiagnosticSessionControl)")
    p.add_argument("session", choices=("default", "extended", "programming"))
    p.add_argument("--hold", type=float, default=0.0, metavar="S",
                   help="keep the session S seconds with TesterPresent (default 0: the ECU returns "
                        "to default 5 s after the last request)")
    common(p)


def _open(spec: Any, args: argparse.Namespace) -> Any:
    """Open one bus for transmitting; refuse a bus that is neither simulated nor armed."""
    import can

    from vehicle_io.bench import open_bus
    from vehicle_io.errors import TransmitBlocked

    if not spec.is_simulated and spec.name not in args.arm:
        raise TransmitBlocked(f"bus {spec.name!r} ({spec.interface}:{spec.channel}) is not armed: "
                              f"diagnostics transmit; add --arm {spec.name}")
    bus = open_bus(spec)
    if not spec.is_simulated:
        try:
            bus.state = can.BusState.ACTIVE  # armed: leave the listen-only state open_bus chose
        except (NotImplementedError, can.CanError, AttributeError):
            pass
    return bus


def _check_arm_names(args: argparse.Namespace, specs: dict[str, Any]) -> None:
    unknown = sorted(set(args.arm) - set(specs))
    if unknown:
        raise ValueError(f"--arm: expected bus names among {sorted(specs)}, but got {unknown}")


def _emit(args: argparse.Namespace, payload: Any, lines: list[str]) -> None:
    if args.json:
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for line in lines:
            print(line)


def run(args: argparse.Namespace) -> int:
    from vehicle_io import diag

    specs = bus_specs(args)
    _check_arm_names(args, specs)
    if args.diag_command == "scan":
        return _scan(args, specs)
    ecu = diag.ecu_by_name(args.ecu)
    spec = specs.get(ecu.bus)
    if spec is None:
        if len(specs) != 1:
            raise ValueError(f"{ecu.name} sits on bus {ecu.bus!r}, but the buses given are {sorted(specs)}")
        spec = next(iter(specs.values()))  # a single -i/-c bus: the user points it at the ECU
    bus = _open(spec, args)
    try:
        try:
            if args.diag_command == "read-did":
                return _read_did(args, bus, ecu)
            if args.diag_command == "dtc":
                return _dtc(args, bus, ecu)
            return _session(args, bus, ecu, spec.fd)
        except diag.DiagError as err:
            print(f"error: {err}", file=sys.stderr)
            return _EXIT_REFUSED
    finally:
        bus.shutdown()


def _scan(args: argparse.Namespace, specs: dict[str, Any]) -> int:
    from vehicle_io import diag

    names = args.scan_buses or [n for n in specs if n != "ads"] or list(specs)
    unknown = sorted(set(names) - set(specs))
    if unknown:
        raise ValueError(f"--bus: expected bus names among {sorted(specs)}, but got {unknown}")
    result: dict[str, list[dict[str, Any]]] = {}
    lines = []
    for name in names:
        bus = _open(specs[name], args)
        try:
            found = diag.scan(bus, timeout_s=args.timeout, fd=specs[name].fd)
        finally:
            bus.shutdown()
        result[name] = [identity.as_dict() for identity in found]
        lines.append(f"{name}: {len(found)} ECU(s) answered")
        for identity in found:
            ids = identity.identifiers
            lines.append(f"  {identity.name:<5} 0x{identity.request_id:03X}->0x{identity.response_id:03X}  "
                         f"VIN {ids.get('vin')}  serial {ids.get('serial')}  software {ids.get('software_version')}")
    _emit(args, result, lines)
    return 0


def _read_did(args: argparse.Namespace, bus: Any, ecu: Any) -> int:
    from vehicle_io import diag

    values = []
    lines = []
    for did in args.dids:
        raw = diag.read_did(bus, ecu, did, timeout_s=args.timeout)
        text = raw.decode("ascii") if raw and all(32 <= b < 127 for b in raw) else None
        values.append({"did": f"0x{did:04X}", "hex": raw.hex(" "), "ascii": text})
        lines.append(f"{ecu.name} 0x{did:04X}: {raw.hex(' ')}" + (f"  {text!r}" if text else ""))
    _emit(args, {"ecu": ecu.name, "dids": values}, lines)
    return 0


def _dtc(args: argparse.Namespace, bus: Any, ecu: Any) -> int:
    from vehicle_io import diag

    if args.clear:
        diag.clear_dtcs(bus, ecu, timeout_s=args.timeout)
        _emit(args, {"ecu": ecu.name, "cleared": True}, [f"{ecu.name}: trouble codes cleared"])
        return 0
    entries = diag.read_dtcs(bus, ecu, args.mask, timeout_s=args.timeout)
    lines = [f"{ecu.name}: {len(entries)} trouble code(s) matching status mask 0x{args.mask:02X}"]
    lines += [f"  {e.text}  (0x{e.dtc:06X})  status 0x{e.status:02X}"
              + ("  confirmed" if e.status & 0x08 else "") + ("  failing now" if e.status & 0x01 else "")
              for e in entries]
    _emit(args, {"ecu": ecu.name, "mask": f"0x{args.mask:02X}", "dtcs": [e.as_dict() for e in entries]}, lines)
    return 0


def _session(args: argparse.Namespace, bus: Any, ecu: Any, fd: bool) -> int:
    from vehicle_io import diag

    timing = diag.change_session(bus, ecu, args.session, timeout_s=args.timeout)
    _emit(args, {"ecu": ecu.name, "session": timing.session, "p2_ms": timing.p2_ms, "p2_star_ms": timing.p2_star_ms},
          [f"{ecu.name}: {timing.session} session (P2 {timing.p2_ms} ms, P2* {timing.p2_star_ms} ms)"])
    deadline = time.monotonic() + max(0.0, args.hold)
    while time.monotonic() < deadline:
        diag.tester_present(bus, fd=fd)
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    return 0
