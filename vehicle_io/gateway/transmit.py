"""Transmit gate: default deny, per-bus arming and an (id, bus, length) allowlist.

Nothing leaves the gateway unless its bus was armed explicitly and the frame is on the
allowlist (DESIGN.md "Safety boundaries"; opendbc's ``safety.h`` habit). Every refusal raises
:class:`~vehicle_io.errors.TransmitBlocked` and is counted per bus and reason, so a refused
command is visible in the gateway's report, never silent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vehicle_io.errors import TransmitBlocked

if TYPE_CHECKING:
    from cantools.database.can import Message

CAN_EFF_MASK = 0x1FFFFFFF

#: Counter names per bus, in report order.
GATE_COUNTERS = ("sent", "blocked_not_armed", "blocked_not_allowed", "blocked_unknown_bus", "send_error")


@dataclass(frozen=True, slots=True)
class AllowedFrame:
    """One allowlist entry: this id may be sent on this bus with exactly this length.

    ``extended``: None accepts either frame format; True/False pins it.
    """

    frame_id: int
    bus: str
    length: int
    extended: bool | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.frame_id <= CAN_EFF_MASK:
            raise ValueError(f"AllowedFrame: expected a frame id 0..0x1FFFFFFF, but got {self.frame_id!r}")
        if not 0 <= self.length <= 64:
            raise ValueError(f"AllowedFrame: expected a length 0..64, but got {self.length!r}")
        if not self.bus:
            raise ValueError("AllowedFrame: expected a bus name, but got an empty one")


class TransmitGate:
    """Decides whether a frame may leave; listen-only (nothing armed) until told otherwise."""

    def __init__(
        self,
        allowlist: Iterable[AllowedFrame | tuple[int, str, int]] = (),
        *,
        armed: Iterable[str] = (),
    ) -> None:
        self._lock = threading.Lock()
        self._allowed: set[tuple[int, str, int]] = set()
        self._format: dict[tuple[int, str, int], bool | None] = {}
        self._armed: set[str] = set()
        self._counters: dict[str, dict[str, int]] = {}
        for entry in allowlist:
            if isinstance(entry, AllowedFrame):
                self.allow(entry.frame_id, entry.bus, entry.length, extended=entry.extended)
            else:
                frame_id, bus, length = entry
                self.allow(frame_id, bus, length)
        for bus in armed:
            self.arm(bus)

    # -- configuration ---------------------------------------------------------------------
    def arm(self, bus: str) -> None:
        """Allow transmission on ``bus`` (still only for allowlisted frames)."""
        with self._lock:
            self._armed.add(bus)

    def disarm(self, bus: str | None = None) -> None:
        """Back to listen-only on ``bus`` (None: every bus)."""
        with self._lock:
            if bus is None:
                self._armed.clear()
            else:
                self._armed.discard(bus)

    def is_armed(self, bus: str) -> bool:
        return bus in self._armed

    @property
    def armed(self) -> frozenset[str]:
        return frozenset(self._armed)

    def allow(self, frame_id: int, bus: str, length: int, *, extended: bool | None = None) -> None:
        """Put (frame_id, bus, length) on the allowlist."""
        entry = AllowedFrame(frame_id, bus, length, extended)
        key = (entry.frame_id, entry.bus, entry.length)
        with self._lock:
            self._allowed.add(key)
            self._format[key] = entry.extended

    def allow_messages(self, messages: Iterable[Message], bus: str) -> None:
        """Allowlist DBC messages on ``bus`` with their DBC id, format and length."""
        for m in messages:
            self.allow(int(m.frame_id), bus, int(m.length), extended=bool(m.is_extended_frame))

    @property
    def allowlist(self) -> frozenset[AllowedFrame]:
        with self._lock:
            return frozenset(AllowedFrame(i, b, n, self._format[(i, b, n)]) for i, b, n in self._allowed)

    # -- decisions -------------------------------------------------------------------------
    def _count(self, bus: str, name: str) -> None:
        row = self._counters.get(bus)
        if row is None:
            row = self._counters[bus] = dict.fromkeys(GATE_COUNTERS, 0)
        row[name] += 1

    def check(self, bus: str, frame_id: int, length: int, *, is_extended: bool = False) -> None:
        """Raise TransmitBlocked (and count it) unless the frame may leave on ``bus``."""
        with self._lock:
            if bus not in self._armed:
                self._count(bus, "blocked_not_armed")
                raise TransmitBlocked(
                    f"transmit blocked: expected bus {bus!r} to be armed, but it is listen-only "
                    f"(armed: {sorted(self._armed) or 'none'})"
                )
            key = (frame_id, bus, length)
            if key not in self._allowed or self._format[key] not in (None, is_extended):
                self._count(bus, "blocked_not_allowed")
                kind = "extended" if is_extended else "standard"
                raise TransmitBlocked(
                    f"transmit blocked: expected (id, bus, length) on the allowlist, but got "
                    f"(0x{frame_id:X} {kind}, {bus!r}, {length})"
                )

    def count_sent(self, sent: dict[str, int]) -> None:
        """Add ``sent[bus]`` to each bus's ``sent`` counter (one lock for a batch of frames)."""
        with self._lock:
            for bus, n in sent.items():
                row = self._counters.get(bus)
                if row is None:
                    row = self._counters[bus] = dict.fromkeys(GATE_COUNTERS, 0)
                row["sent"] += n

    def count(self, bus: str, name: str) -> None:
        """Count an outcome decided elsewhere (``sent``, ``send_error``, ``blocked_unknown_bus``)."""
        if name not in GATE_COUNTERS:
            raise ValueError(f"TransmitGate: expected a counter in {GATE_COUNTERS}, but got {name!r}")
        with self._lock:
            self._count(bus, name)

    def counters(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {bus: dict(row) for bus, row in self._counters.items()}
