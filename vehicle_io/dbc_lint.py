"""The Z10 DBC lint: layout and convention checks cantools does not make, or makes fatally.

Files are parsed non-strictly so that overlapping or overflowing signals reach a rule with a
clear finding instead of stopping the parser. Each rule has a stable code; a finding names
the file, the line, the message and, where it applies, the signal. ``RULES`` documents them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vehicle_io.dbc import (
    E2E_COUNTER_LENGTH,
    E2E_COUNTER_START_BIT,
    E2E_CRC_LENGTH,
    E2E_CRC_START_BIT,
    DbcFile,
    expand_paths,
    attribute_value,
    is_diagnostic,
    load_dbc_file,
    quiet_overwrites,
)
from vehicle_io.errors import DbcError

if TYPE_CHECKING:
    from cantools.database.can import Message, Signal

__all__ = ["RULES", "Finding", "LintReport", "bit_positions", "lint_files"]

#: code -> (name, what it flags). Codes are stable: scripts and CI filter on them.
RULES: dict[str, tuple[str, str]] = {
    "DBC001": ("signal-overlap", "two signals that can be present together share bits"),
    "DBC002": ("signal-past-end", "a signal reaches beyond the message length"),
    "DBC003": ("cyclic-without-cycle-time", "GenMsgSendType Cyclic but no GenMsgCycleTime"),
    "DBC004": ("cycle-time-not-cyclic", "GenMsgCycleTime set but the send type is not cyclic"),
    "DBC005": ("duplicate-frame-id", "one frame id defined twice on the same bus"),
    "DBC006": ("cross-bus-frame-id", "one frame id on several buses, not a diagnostic frame"),
    "DBC007": ("duplicate-message-name", "one message name defined twice in the set"),
    "DBC008": ("duplicate-signal-name", "one signal name used twice in the set"),
    "DBC009": ("e2e-counter", "safety-relevant message without its Z10-P1 alive counter"),
    "DBC010": ("e2e-crc", "safety-relevant message without its Z10-P1 CRC"),
    "DBC011": ("e2e-data-id-missing", "safety-relevant message without E2E_DataID"),
    "DBC012": ("e2e-data-id-duplicate", "one E2E_DataID on several messages"),
    "DBC013": ("e2e-role-unprotected", "E2E_Role set on a message not marked safety-relevant"),
    "DBC014": ("e2e-not-cyclic", "safety-relevant message without a cycle time to monitor"),
    "DBC015": ("no-sender", "message without a sender node"),
    "DBC016": ("unknown-node", "sender or receiver not declared in BU_"),
    "DBC017": ("bad-length", "length not valid for classic CAN (0..8) or CAN FD"),
    "DBC018": ("range-inverted", "signal minimum greater than maximum"),
    "DBC019": ("range-unreachable", "signal range outside what its raw bits can carry"),
    "DBC020": ("choice-out-of-range", "VAL_ entry not representable in the signal's bits"),
    "DBC021": ("scaled-without-unit", "scaled or offset signal without a unit"),
    "DBC022": ("no-bus-name", "file without the BusName network attribute"),
}
_CODE_BY_NAME = {name: code for code, (name, _) in RULES.items()}

_FD_LENGTHS = frozenset((0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64))


@dataclass(frozen=True)
class Finding:
    """One lint finding; ``str()`` is the one-line form the CLI prints."""

    code: str
    path: str
    line: int | None
    message: str | None
    signal: str | None
    text: str

    @property
    def rule(self) -> str:
        return RULES[self.code][0]

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        subject = ""
        if self.message is not None:
            subject = f"message {self.message}"
            if self.signal is not None:
                subject += f" signal {self.signal}"
            subject += ": "
        return f"{where}: {self.code} {self.rule}: {subject}{self.text}"

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, **asdict(self)}


@dataclass
class LintReport:
    """Findings of one lint run, plus the files that could not be read at all."""

    files: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    errors: list[DbcError] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "findings": [f.as_dict() for f in self.findings],
            "errors": [
                {"path": e.path, "line": e.line, "reason": e.reason, "text": str(e)}
                for e in self.errors
            ],
        }


# ------------------------------------------------------------------------------ helpers
def bit_positions(signal: Signal) -> list[int]:
    """Absolute bit positions (byte * 8 + bit, bit 0 = LSB) a signal occupies."""
    if signal.byte_order == "little_endian":
        return list(range(signal.start, signal.start + signal.length))
    # Motorola: the start bit is the MSB; walk the DBC "sawtooth" numbering down to the LSB.
    positions = []
    bit = signal.start
    for _ in range(signal.length):
        positions.append(bit)
        bit = bit + 15 if bit % 8 == 0 else bit - 1
    return positions


def _mux_condition(message: Message, signal: Signal) -> dict[str, frozenset[int]]:
    """The multiplexer values a signal needs to be present: {mux name: allowed ids}."""
    condition: dict[str, frozenset[int]] = {}
    current: Signal | None = signal
    seen: set[str] = set()
    while current is not None and current.multiplexer_signal is not None:
        if current.name in seen:  # a mux cycle is nonsense, but must not hang the lint
            break
        seen.add(current.name)
        ids = frozenset(current.multiplexer_ids or ())
        name = current.multiplexer_signal
        condition[name] = condition[name] & ids if name in condition else ids
        try:
            current = message.get_signal_by_name(name)
        except KeyError:
            current = None
    return condition


def _can_coexist(a: dict[str, frozenset[int]], b: dict[str, frozenset[int]]) -> bool:
    return all(a[name] & b[name] for name in a.keys() & b.keys())


def _raw_range(signal: Signal) -> tuple[float, float]:
    if signal.is_float:
        return (-math.inf, math.inf)
    if signal.is_signed:
        return (-(1 << (signal.length - 1)), (1 << (signal.length - 1)) - 1)
    return (0, (1 << signal.length) - 1)


def _phys_range(signal: Signal) -> tuple[float, float]:
    lo, hi = _raw_range(signal)
    a = lo * signal.scale + signal.offset
    b = hi * signal.scale + signal.offset
    return (min(a, b), max(a, b))


def _spans(bits: Iterable[int]) -> str:
    ordered = sorted(set(bits))
    parts = []
    start = prev = ordered[0]
    for bit in ordered[1:] + [None]:  # type: ignore[list-item]
        if bit is not None and bit == prev + 1:
            prev = bit
            continue
        parts.append(str(start) if start == prev else f"{start}..{prev}")
        if bit is not None:
            start = prev = bit
    return ", ".join(parts)


class _Ctx:
    """Collects findings for one file, resolving lines."""

    def __init__(self, file: DbcFile, out: list[Finding]) -> None:
        self.file = file
        self.out = out

    def add(self, name: str, message: Message | None, signal: Signal | None, text: str) -> None:
        line: int | None = None
        if message is not None:
            line = self.file.signal_line(message, signal) if signal is not None else None
            line = line or self.file.message_line(message)
        self.out.append(
            Finding(
                _CODE_BY_NAME[name],
                str(self.file.path),
                line,
                None if message is None else message.name,
                None if signal is None else signal.name,
                text,
            )
        )


# ------------------------------------------------------------------------------ per-file rules
def _check_layout(ctx: _Ctx, message: Message) -> None:
    size_bits = 8 * message.length
    occupied: list[tuple[Signal, set[int], dict[str, frozenset[int]]]] = []
    for signal in message.signals:
        bits = bit_positions(signal)
        outside = [b for b in bits if b < 0 or b >= size_bits]
        if outside:
            ctx.add(
                "signal-past-end", message, signal,
                f"expected bits within 0..{size_bits - 1} ({message.length} bytes), "
                f"but it uses bit(s) {_spans(outside)}",
            )
        occupied.append((signal, set(bits), _mux_condition(message, signal)))
    for i, (sig_a, bits_a, cond_a) in enumerate(occupied):
        for sig_b, bits_b, cond_b in occupied[i + 1:]:
            shared = bits_a & bits_b
            if shared and _can_coexist(cond_a, cond_b):
                ctx.add(
                    "signal-overlap", message, sig_b,
                    f"overlaps signal {sig_a.name} at bit(s) {_spans(shared)}",
                )


def _check_timing(ctx: _Ctx, message: Message) -> None:
    send_type = message.send_type
    cyclic = send_type is not None and "cyclic" in send_type.lower()
    has_cycle = bool(message.cycle_time and message.cycle_time > 0)
    if cyclic and not has_cycle:
        ctx.add(
            "cyclic-without-cycle-time", message, None,
            f"expected a GenMsgCycleTime > 0 for send type {send_type}, but got none",
        )
    if has_cycle and not cyclic:
        ctx.add(
            "cycle-time-not-cyclic", message, None,
            f"GenMsgCycleTime {message.cycle_time} ms set, but the send type is "
            f"{send_type or 'undefined'}: expected Cyclic",
        )


def _check_e2e_signal(
    ctx: _Ctx, message: Message, role: str, found: list[Signal], start: int, length: int
) -> None:
    rule = "e2e-counter" if role == "Counter" else "e2e-crc"
    if not found:
        ctx.add(rule, message, None, f"safety-relevant but no signal has E2E_Role={role}")
        return
    if len(found) > 1:
        names = ", ".join(s.name for s in found)
        ctx.add(
            rule, message, found[1], f"expected one signal with E2E_Role={role}, but got {names}"
        )
        return
    signal = found[0]
    got = (
        f"{signal.length} bits at start bit {signal.start}, "
        f"{'Intel' if signal.byte_order == 'little_endian' else 'Motorola'}, "
        f"{'signed' if signal.is_signed else 'unsigned'}"
        f"{' float' if signal.is_float else ''}"
        f"{', scale ' + str(signal.scale) if signal.scale != 1 else ''}"
        f"{', offset ' + str(signal.offset) if signal.offset != 0 else ''}"
        f"{', multiplexed' if signal.multiplexer_ids is not None else ''}"
    )
    ok = (
        signal.start == start
        and signal.length == length
        and signal.byte_order == "little_endian"
        and not signal.is_signed
        and not signal.is_float
        and signal.scale == 1
        and signal.offset == 0
        and signal.multiplexer_ids is None
    )
    if not ok:
        ctx.add(
            rule, message, signal,
            f"expected {length} bits at start bit {start}, Intel, unsigned, not multiplexed, "
            f"but got {got}",
        )


def _check_e2e(ctx: _Ctx, message: Message) -> None:
    safety = attribute_value(message, "SafetyRelevant") == "Yes"
    roles: dict[str, list[Signal]] = {"Counter": [], "CRC": []}
    for signal in message.signals:
        role = attribute_value(signal, "E2E_Role")
        if role in roles:
            roles[str(role)].append(signal)
    if not safety:
        for signal in roles["Counter"] + roles["CRC"]:
            ctx.add(
                "e2e-role-unprotected", message, signal,
                f"E2E_Role={attribute_value(signal, 'E2E_Role')} but the message is not "
                "SafetyRelevant=Yes",
            )
        return
    _check_e2e_signal(ctx, message, "CRC", roles["CRC"], E2E_CRC_START_BIT, E2E_CRC_LENGTH)
    _check_e2e_signal(
        ctx, message, "Counter", roles["Counter"], E2E_COUNTER_START_BIT, E2E_COUNTER_LENGTH
    )
    dbc = message.dbc
    if dbc is None or "E2E_DataID" not in dbc.attributes:
        ctx.add("e2e-data-id-missing", message, None, "safety-relevant but no E2E_DataID is set")
    if not (message.cycle_time and message.cycle_time > 0):
        ctx.add(
            "e2e-not-cyclic", message, None,
            "safety-relevant but no GenMsgCycleTime: receivers cannot monitor its deadline",
        )


def _check_nodes(ctx: _Ctx, message: Message, nodes: set[str]) -> None:
    if not message.senders:
        ctx.add("no-sender", message, None, "expected a sender node, but got none (Vector__XXX)")
    for sender in message.senders:
        if sender not in nodes:
            ctx.add("unknown-node", message, None, f"sender {sender} is not declared in BU_")
    for signal in message.signals:
        unknown = [r for r in signal.receivers if r not in nodes and r != "Vector__XXX"]
        if unknown:
            ctx.add(
                "unknown-node", message, signal,
                f"receiver(s) {', '.join(unknown)} not declared in BU_",
            )


def _check_length(ctx: _Ctx, message: Message) -> None:
    if message.is_fd:
        if message.length not in _FD_LENGTHS:
            ctx.add(
                "bad-length", message, None,
                f"expected a CAN FD length (0..8, 12, 16, 20, 24, 32, 48, 64), "
                f"but got {message.length}",
            )
    elif message.length > 8:
        ctx.add(
            "bad-length", message, None,
            f"expected at most 8 bytes for classic CAN (VFrameFormat is not CAN FD), "
            f"but got {message.length}",
        )


def _fmt(value: float) -> str:
    return f"{value:g}"


def _exact(value: float) -> str:
    """``value`` short when that is exact, else with every digit (two limits that differ must
    not print the same)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def _check_signal_values(ctx: _Ctx, message: Message) -> None:
    for signal in message.signals:
        lo, hi = signal.minimum, signal.maximum
        if lo is not None and hi is not None and lo > hi:
            ctx.add(
                "range-inverted", message, signal,
                f"expected minimum <= maximum, but got [{_fmt(lo)}|{_fmt(hi)}]",
            )
        plo, phi = _phys_range(signal)
        # Tolerate rounding of the scaled limits (0.1 * 4095 = 409.50000000000006) and of the
        # limits as written: a DBC tool prints 2**64 - 1 as 1.84467440737096E+019 (15 digits).
        def slack(limit: float) -> float:
            return abs(signal.scale) * 1e-6 + abs(limit) * 1e-12

        if (lo is not None and lo < plo - slack(plo)) or (hi is not None and hi > phi + slack(phi)):
            ctx.add(
                "range-unreachable", message, signal,
                f"expected a range within [{_exact(plo)}|{_exact(phi)}] ({signal.length} bits, "
                f"scale {_fmt(signal.scale)}, offset {_fmt(signal.offset)}), but got "
                f"[{_exact(lo if lo is not None else plo)}|{_exact(hi if hi is not None else phi)}]",
            )
        if signal.choices:
            rlo, rhi = _raw_range(signal)
            bad = [int(v) for v in signal.choices if not rlo <= int(v) <= rhi]
            if bad:
                ctx.add(
                    "choice-out-of-range", message, signal,
                    f"expected VAL_ raw values within {int(rlo)}..{int(rhi)}, "
                    f"but got {', '.join(map(str, sorted(bad)))}",
                )
        scaled = signal.scale != 1 or signal.offset != 0
        if scaled and not signal.unit and not signal.choices:
            ctx.add(
                "scaled-without-unit", message, signal,
                f"scale {_fmt(signal.scale)}, offset {_fmt(signal.offset)} but no unit",
            )


def _lint_file(file: DbcFile, out: list[Finding]) -> None:
    ctx = _Ctx(file, out)
    dbc = file.database.dbc
    bus_attr = dbc.attributes.get("BusName") if dbc is not None else None
    if bus_attr is None or not str(bus_attr.value).strip():
        ctx.add(
            "no-bus-name", None, None,
            f'no BA_ "BusName" network attribute: bus name falls back to the file name '
            f"{file.bus_name!r}",
        )
    nodes = {node.name for node in file.database.nodes}
    for message in file.database.messages:
        _check_length(ctx, message)
        _check_layout(ctx, message)
        _check_timing(ctx, message)
        _check_e2e(ctx, message)
        _check_nodes(ctx, message, nodes)
        _check_signal_values(ctx, message)


# ------------------------------------------------------------------------------ set rules
def _all(files: list[DbcFile]) -> Iterator[tuple[DbcFile, Message]]:
    for file in files:
        for message in file.database.messages:
            yield file, message


def _lint_set(files: list[DbcFile], out: list[Finding]) -> None:
    by_id: dict[int, list[tuple[DbcFile, Message]]] = {}
    by_name: dict[str, list[tuple[DbcFile, Message]]] = {}
    by_data_id: dict[int, list[tuple[DbcFile, Message]]] = {}
    by_signal: dict[str, list[tuple[DbcFile, Message, Signal]]] = {}
    for file, message in _all(files):
        key = message.frame_id | (0x80000000 if message.is_extended_frame else 0)
        by_id.setdefault(key, []).append((file, message))
        by_name.setdefault(message.name, []).append((file, message))
        dbc = message.dbc
        if dbc is not None and "E2E_DataID" in dbc.attributes:
            try:
                data_id = int(dbc.attributes["E2E_DataID"].value)
            except (TypeError, ValueError):
                continue
            by_data_id.setdefault(data_id, []).append((file, message))
        for signal in message.signals:
            by_signal.setdefault(signal.name, []).append((file, message, signal))

    def where(file: DbcFile, message: Message) -> str:
        return f"{message.name} ({file.path.name}, bus {file.bus_name})"

    for key, group in by_id.items():
        frame = f"0x{key & 0x1FFFFFFF:X}"
        buses: dict[str, list[tuple[DbcFile, Message]]] = {}
        for file, message in group:
            buses.setdefault(file.bus_name, []).append((file, message))
        for same_bus in buses.values():
            first_file, first = same_bus[0]
            for file, message in same_bus[1:]:
                _Ctx(file, out).add(
                    "duplicate-frame-id", message, None,
                    f"frame id {frame} already used by {where(first_file, first)}",
                )
        if len(buses) > 1 and not all(is_diagnostic(m) for _, m in group):
            first_file, first = group[0]
            for file, message in group[1:]:
                if file.bus_name != first_file.bus_name:
                    _Ctx(file, out).add(
                        "cross-bus-frame-id", message, None,
                        f"frame id {frame} also used by {where(first_file, first)}; only "
                        "diagnostic frames (DiagRequest/DiagResponse) may share an id across buses",
                    )
    for group in by_name.values():
        first_file, first = group[0]
        for file, message in group[1:]:
            _Ctx(file, out).add(
                "duplicate-message-name", message, None,
                f"name already used by frame 0x{first.frame_id:X} in {first_file.path.name}",
            )
    for data_id, group in by_data_id.items():
        first_file, first = group[0]
        for file, message in group[1:]:
            _Ctx(file, out).add(
                "e2e-data-id-duplicate", message, None,
                f"E2E_DataID {data_id} (0x{data_id:04X}) already used by "
                f"{where(first_file, first)}",
            )
    for signal_name, sig_group in by_signal.items():
        first_file, first, _ = sig_group[0]
        for file, message, signal in sig_group[1:]:
            _Ctx(file, out).add(
                "duplicate-signal-name", message, signal,
                f"signal name {signal_name} already used in {where(first_file, first)}",
            )


# ------------------------------------------------------------------------------ entry point
def lint_files(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None = None,
) -> LintReport:
    """Lint DBC files (default: the bundled Z10 set) as one set of buses.

    Unreadable files land in ``report.errors`` (the others are still linted); findings are
    sorted by file and line.
    """
    report = LintReport()
    files: list[DbcFile] = []
    try:
        expanded = expand_paths(paths)
    except DbcError as err:
        report.errors.append(err)
        return report
    for path in expanded:
        report.files.append(str(path))
        try:
            # Duplicates are findings here; cantools' own warnings about them would be noise.
            with quiet_overwrites(None):
                files.append(load_dbc_file(path, strict=False))
        except DbcError as err:
            report.errors.append(err)
    for file in files:
        _lint_file(file, report.findings)
    _lint_set(files, report.findings)
    order = {str(path): i for i, path in enumerate(expanded)}
    report.findings.sort(key=lambda f: (order.get(f.path, 0), f.line or 0, f.code))
    return report

