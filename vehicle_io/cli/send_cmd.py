"""``z10 send``: encode a DBC message from signal values and send it, once or periodically.

    z10 send ADC_Command ADC_TargetSpeed=3.5 ADC_GearRequest=D
    z10 send GW_CargoCommand GW_UnlockRequest=1 --period-ms 50 --count 20

Signals not named take the DBC start value (``GenSigStartValue``), else 0, else the
signal's minimum. Values are numbers or choice names. Out-of-range values are refused
(``EncodeRangeError``). The E2E alive counter and CRC of safety-relevant messages are
filled in by the gateway's transmit path (the one path out: transmit gate, allowlist, E2E);
what the user gives for them is ignored.

Sending needs the bus armed: the simulator's buses are, any other bus only with
``--arm NAME``. Each frame sent is printed as a candump line (``--json``: one JSON object).
Exit codes: 0 sent, 2 usage or input error (nothing sent), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from vehicle_io.cli.busopts import add_bus_arguments, add_dbc_argument, bus_specs

HELP = "encode a message from signal values and send it (counter and CRC filled in), once or periodically"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("message", metavar="MESSAGE", help="DBC message name, e.g. ADC_Command")
    parser.add_argument("signals", nargs="*", metavar="SIGNAL=VALUE",
                        help="signal values (numbers or choice names); others take their start value")
    parser.add_argument("--period-ms", type=float, default=None,
                        help="send every PERIOD ms (default: once); runs until --count or Ctrl-C")
    parser.add_argument("--count", type=int, default=None, help="frames to send (default 1, or forever with --period-ms)")
    add_dbc_argument(parser)
    parser.add_argument("--bus", metavar="NAME", help="bus to send on (default: the message's DBC bus)")
    parser.add_argument("--json", action="store_true", help="one JSON object per frame sent")
    add_bus_arguments(parser)


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``["A=1", "B=D"]`` -> ``{"A": "1", "B": "D"}``; a malformed item raises ValueError."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"expected SIGNAL=VALUE, but got {item!r}")
        out[name.strip()] = value.strip()
    return out


def signal_values(message: Any, given: dict[str, str]) -> dict[str, Any]:
    """Every signal of ``message``: the given ones parsed, the rest their start values."""
    from vehicle_io.errors import CodecError

    names = {s.name for s in message.signals}
    unknown = sorted(set(given) - names)
    if unknown:
        raise CodecError(f'message "{message.name}": expected signals among its own, but got {", ".join(unknown)}')
    values: dict[str, Any] = {}
    for signal in message.signals:
        text = given.get(signal.name)
        if text is None:
            values[signal.name] = _default(signal)
            continue
        if signal.choices and not _is_number(text):
            choices = {str(v): k for k, v in signal.choices.items()}
            if text not in choices:
                raise CodecError(f'signal "{signal.name}": expected a number or one of '
                                 f'{", ".join(sorted(choices))}, but got {text!r}')
            values[signal.name] = int(choices[text])
            continue
        values[signal.name] = _number(signal.name, text)
    return values


def _number(name: str, text: str) -> int | float:
    from vehicle_io.errors import CodecError

    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise CodecError(f'signal "{name}": expected a number, but got {text!r}') from None


def _is_number(text: str) -> bool:
    try:
        _number("", text)
        return True
    except ValueError:
        return False


def _default(signal: Any) -> Any:
    initial = signal.raw_initial
    if initial is not None:
        return signal.scale * initial + signal.offset
    lo, hi = signal.minimum, signal.maximum
    if (lo is None or lo <= 0) and (hi is None or hi >= 0):
        return 0
    return lo if lo is not None else hi


def check_arming(args: argparse.Namespace, specs: dict[str, Any], targets: list[str]) -> None:
    """The project's arming rule: the simulator's buses, or buses named by ``--arm``."""
    from vehicle_io.errors import TransmitBlocked

    unknown = sorted(set(args.arm) - set(specs))
    if unknown:
        raise ValueError(f"--arm: expected bus names among {sorted(specs)}, but got {unknown}")
    for name in targets:
        spec = specs[name]
        if not spec.is_simulated and name not in args.arm:
            raise TransmitBlocked(f"bus {name!r} ({spec.interface}:{spec.channel}) is listen-only: "
                                  f"expected --arm {name} to transmit on it")


def open_transmitter(specs: dict[str, Any], targets: list[str], db: Any) -> tuple[Any, dict[str, Any]]:
    """Open ``targets`` and a receive-less Gateway whose transmit gate has them armed."""
    import can

    from vehicle_io.bench import close_buses, open_bus
    from vehicle_io.gateway import Gateway, TransmitGate

    buses: dict[str, Any] = {}
    try:
        for name in targets:
            bus = buses[name] = open_bus(specs[name])
            if not specs[name].is_simulated:
                try:
                    bus.state = can.BusState.ACTIVE  # armed: leave the passive state open_bus chose
                except (NotImplementedError, can.CanError, AttributeError):
                    pass
        gate = TransmitGate(armed=targets)
        gateway = Gateway(buses, db, transmit_gate=gate, start=False)
    except BaseException:
        close_buses(buses.values())
        raise
    return gateway, buses


def _target_bus(args: argparse.Namespace, message: Any, specs: dict[str, Any]) -> str:
    if args.bus:
        if args.bus not in specs:
            raise ValueError(f"--bus: expected one of {sorted(specs)}, but got {args.bus!r}")
        return str(args.bus)
    bus = getattr(message, "bus_name", None)
    if bus in specs:
        return str(bus)
    if len(specs) == 1:
        return next(iter(specs))
    raise ValueError(f'message "{message.name}" is on bus {bus!r}, which is not among {sorted(specs)}; '
                     f"name one with --bus")


def run(args: argparse.Namespace) -> int:
    import can

    from vehicle_io import load_database
    from vehicle_io.bench import close_buses
    from vehicle_io.codec import BatchEncoder
    from vehicle_io.logfmt import format_line

    if args.period_ms is not None and not args.period_ms > 0:
        raise ValueError(f"--period-ms: expected a period > 0, but got {args.period_ms:g}")
    if args.count is not None and args.count < 1:
        raise ValueError(f"--count: expected at least 1, but got {args.count}")
    count = args.count if args.count is not None else (None if args.period_ms else 1)
    db = load_database(args.dbc)
    try:
        message = db.get_message_by_name(args.message)
    except KeyError:
        raise ValueError(f"expected a message name of the DBC, but got {args.message!r}") from None
    values = signal_values(message, parse_assignments(args.signals))
    payload = BatchEncoder(db).encode_one(message.name, **values)  # EncodeRangeError before any bus opens
    specs = bus_specs(args)
    bus_name = _target_bus(args, message, specs)
    check_arming(args, specs, [bus_name])
    gateway, buses = open_transmitter(specs, [bus_name], db)
    gateway.gate.allow_messages([message], bus_name)
    frame = can.Message(arbitration_id=message.frame_id, is_extended_id=message.is_extended_frame,
                        data=payload, is_fd=bool(message.is_fd) or len(payload) > 8,
                        bitrate_switch=bool(message.is_fd) and specs[bus_name].fd)
    period_s = (args.period_ms or 0.0) / 1000.0
    sent = 0
    try:
        start = time.monotonic()
        while count is None or sent < count:
            out = gateway.send(bus_name, frame, timeout_s=1.0)
            sent += 1
            if args.json:
                print(json.dumps({"t": out.timestamp, "bus": bus_name, "message": message.name,
                                  "id": out.arbitration_id, "data": bytes(out.data).hex().upper()}), flush=True)
            else:
                print(format_line(out, bus_name), end="", flush=True)
            if count is not None and sent >= count:
                break
            delay = start + sent * period_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    except KeyboardInterrupt:
        print(f"{sent} frame(s) sent", file=sys.stderr)
        return 130
    finally:
        gateway.shutdown()
        close_buses(buses.values())
    print(f"{sent} frame(s) of {message.name} sent on {bus_name}", file=sys.stderr)
    return 0
