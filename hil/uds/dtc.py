"""Diagnostic trouble codes of a simulated ECU: ISO 14229-1 status bits, snapshots, counters.

A DTC is a 3-byte number (ISO 15031-6 letter/code in the high two bytes, failure type in the
low byte: P0A7E-00 = 0x0A7E00, U0100-00 = 0xC10000). Fault monitors report test results
(failed / passed) through :meth:`DtcStore.report`; the store keeps the status byte the way
ISO 14229-1 Annex D describes it, captures snapshot records (the first and the most recent
failure) and extended data (occurrence counter, operation cycles since the last failure).

Z10 choices within ISO 14229-1: a DTC is confirmed at its first failed test (confirmation
threshold 1); pending ages out after an operation cycle whose tests all passed; the warning
indicator follows testFailed for DTCs that light a lamp.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from vehicle_io.diag import dtc_text

__all__ = [
    "CONFIRMED", "PENDING", "TEST_FAILED", "TEST_FAILED_SINCE_CLEAR", "TEST_FAILED_THIS_CYCLE",
    "TEST_NOT_COMPLETED_SINCE_CLEAR", "TEST_NOT_COMPLETED_THIS_CYCLE", "WARNING_INDICATOR",
    "DtcDefinition", "DtcRecord", "DtcStore", "STATUS_AVAILABILITY_MASK", "dtc_text",
]

TEST_FAILED = 0x01
TEST_FAILED_THIS_CYCLE = 0x02
PENDING = 0x04
CONFIRMED = 0x08
TEST_NOT_COMPLETED_SINCE_CLEAR = 0x10
TEST_FAILED_SINCE_CLEAR = 0x20
TEST_NOT_COMPLETED_THIS_CYCLE = 0x40
WARNING_INDICATOR = 0x80

#: every status bit is supported
STATUS_AVAILABILITY_MASK = 0xFF
#: status after a clear and at first power-up: no test completed yet
_INITIAL_STATUS = TEST_NOT_COMPLETED_SINCE_CLEAR | TEST_NOT_COMPLETED_THIS_CYCLE

#: snapshot record numbers: first failure, most recent failure
SNAPSHOT_FIRST = 0x01
SNAPSHOT_LATEST = 0x02
#: extended data records: occurrence counter, operation cycles since the last failure (1 byte each)
EXT_OCCURRENCE = 0x01
EXT_CYCLES_SINCE_FAILED = 0x02
EXT_DATA_SIZE = 1


@dataclass(frozen=True)
class DtcDefinition:
    """A DTC the ECU can set: number, what it means, whether it lights a warning lamp."""

    dtc: int
    name: str
    description: str
    warning_lamp: bool = False


@dataclass
class DtcRecord:
    """The stored state of one DTC."""

    definition: DtcDefinition
    status: int = _INITIAL_STATUS
    occurrences: int = 0
    cycles_since_failed: int = 0
    snapshots: dict[int, dict[int, bytes]] = field(default_factory=dict)


@dataclass
class DtcStore:
    """All DTCs of one ECU (part of its non-volatile state).

    ``snapshot_source`` returns ``{did: bytes}`` of the data captured at a failure.
    """

    definitions: tuple[DtcDefinition, ...] = ()
    records: dict[int, DtcRecord] = field(default_factory=dict)
    #: test results ignored while ControlDTCSetting (0x85) is off
    setting_enabled: bool = True

    def __post_init__(self) -> None:
        for definition in self.definitions:
            self.records.setdefault(definition.dtc, DtcRecord(definition))

    def by_name(self, name: str) -> DtcRecord:
        for record in self.records.values():
            if record.definition.name == name:
                return record
        known = ", ".join(r.definition.name for r in self.records.values())
        raise KeyError(f"expected a DTC name among {known}, but got {name!r}")

    def report(self, name: str, failed: bool, snapshot_source: Callable[[], Mapping[int, bytes]] | None = None) -> bool:
        """Record one test result of the monitor ``name``; True when the status byte changed."""
        record = self.by_name(name)
        if not self.setting_enabled:
            return False
        before = record.status
        status = record.status & ~(TEST_NOT_COMPLETED_SINCE_CLEAR | TEST_NOT_COMPLETED_THIS_CYCLE)
        if failed:
            if not status & TEST_FAILED:
                record.occurrences = min(record.occurrences + 1, 0xFF)
                snapshot = dict(snapshot_source()) if snapshot_source is not None else {}
                record.snapshots.setdefault(SNAPSHOT_FIRST, snapshot)
                record.snapshots[SNAPSHOT_LATEST] = snapshot
            status |= TEST_FAILED | TEST_FAILED_THIS_CYCLE | PENDING | CONFIRMED | TEST_FAILED_SINCE_CLEAR
            record.cycles_since_failed = 0
            if record.definition.warning_lamp:
                status |= WARNING_INDICATOR
        else:
            status &= ~TEST_FAILED
            status &= ~WARNING_INDICATOR
        record.status = status
        return record.status != before

    def new_operation_cycle(self) -> None:
        """Power cycle / reset: the per-cycle bits start over; pending ages out after a clean cycle."""
        for record in self.records.values():
            status = record.status
            if status & TEST_FAILED_SINCE_CLEAR:
                record.cycles_since_failed = min(record.cycles_since_failed + 1, 0xFF)
            if not status & TEST_FAILED_THIS_CYCLE and not status & TEST_NOT_COMPLETED_THIS_CYCLE:
                status &= ~PENDING
            status &= ~TEST_FAILED_THIS_CYCLE
            status |= TEST_NOT_COMPLETED_THIS_CYCLE
            record.status = status

    def clear(self, group: int) -> bool:
        """ClearDiagnosticInformation: 0xFFFFFF = every DTC, else one DTC; False if unknown."""
        if group == 0xFFFFFF:
            targets = list(self.records.values())
        elif group in self.records:
            targets = [self.records[group]]
        else:
            return False
        for record in targets:
            record.status = _INITIAL_STATUS
            record.occurrences = 0
            record.cycles_since_failed = 0
            record.snapshots.clear()
        return True

    def matching(self, mask: int) -> list[DtcRecord]:
        return [r for r in self.records.values() if r.status & mask & STATUS_AVAILABILITY_MASK]

    def extended_data(self, record: DtcRecord, number: int) -> bytes | None:
        if number == EXT_OCCURRENCE:
            return bytes([record.occurrences])
        if number == EXT_CYCLES_SINCE_FAILED:
            return bytes([record.cycles_since_failed])
        return None
