"""Routing between buses by rules, as Linux ``cangw`` does (``-s SRC -d DST -f ID:MASK``).

A frame received on ``src`` whose id matches ``can_id`` under ``mask`` is forwarded
unchanged to ``dst`` (E2E counter and CRC are the original sender's: a router passes them
through). An optional ``rate_limit_hz`` forwards each matching id at most that often.
Forwarded frames still go through the transmit gate, so an unarmed destination counts them
as blocked instead of sending.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

CAN_EFF_FLAG = 0x80000000
CAN_EFF_MASK = 0x1FFFFFFF

#: Counter names per rule, in report order.
ROUTE_COUNTERS = ("matched", "forwarded", "rate_limited", "blocked", "send_error")


@dataclass(frozen=True)
class RouteRule:
    """Forward frames from ``src`` to ``dst`` when ``(id & mask) == (can_id & mask)``.

    ``extended``: None matches both frame formats, True/False only that one.
    ``rate_limit_hz``: per matching id, at most this many frames per second are forwarded.
    """

    src: str
    dst: str
    can_id: int
    mask: int = CAN_EFF_MASK
    rate_limit_hz: float | None = None
    extended: bool | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not self.src or not self.dst:
            raise ValueError(f"RouteRule: expected source and destination bus names, but got {self.src!r} -> {self.dst!r}")
        if self.src == self.dst:
            raise ValueError(f"RouteRule: expected different source and destination buses, but got {self.src!r} twice")
        if not 0 <= self.can_id <= CAN_EFF_MASK or not 0 <= self.mask <= CAN_EFF_MASK:
            raise ValueError(
                f"RouteRule: expected id and mask in 0..0x1FFFFFFF, but got 0x{self.can_id:X} / 0x{self.mask:X}"
            )
        if self.rate_limit_hz is not None and not (self.rate_limit_hz > 0 and math.isfinite(self.rate_limit_hz)):
            raise ValueError(f"RouteRule: expected a positive rate limit, but got {self.rate_limit_hz!r}")

    @property
    def label(self) -> str:
        return self.name or f"{self.src}->{self.dst} 0x{self.can_id:X}:0x{self.mask:X}"

    def matches(self, ids: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
        """Which of ``ids`` (uint32, bit 31 = extended flag) this rule forwards, before rate limit."""
        raw = ids & np.uint32(CAN_EFF_MASK)
        hit = (raw & np.uint32(self.mask)) == np.uint32(self.can_id & self.mask)
        if self.extended is not None:
            ext = (ids & np.uint32(CAN_EFF_FLAG)) != 0
            hit &= ext if self.extended else ~ext
        return hit


class Router:
    """Applies route rules to received batches; keeps per-rule counters."""

    def __init__(self, rules: Iterable[RouteRule] = ()) -> None:
        self.rules: tuple[RouteRule, ...] = tuple(rules)
        self._counters = [dict.fromkeys(ROUTE_COUNTERS, 0) for _ in self.rules]
        # (rule index, frame id with format flag) -> time of the last forward
        self._last_forward_s: dict[tuple[int, int], float] = {}
        self._by_src: dict[str, list[int]] = {}
        for i, rule in enumerate(self.rules):
            self._by_src.setdefault(rule.src, []).append(i)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def destinations(self) -> set[str]:
        return {r.dst for r in self.rules}

    def select(
        self, src: str, ids: npt.NDArray[np.uint32], times_s: npt.NDArray[np.float64], eligible: npt.NDArray[np.bool_]
    ) -> list[tuple[int, int]]:
        """(rule index, row) pairs to forward from a batch received on ``src``, in row order.

        Applies the rate limits (and counts matched / rate-limited); the caller sends and
        reports the outcome with :meth:`count`.
        """
        out: list[tuple[int, int]] = []
        for i in self._by_src.get(src, ()):
            rule = self.rules[i]
            rows = np.flatnonzero(rule.matches(ids) & eligible)
            if rows.size == 0:
                continue
            counters = self._counters[i]
            counters["matched"] += int(rows.size)
            if rule.rate_limit_hz is None:
                out.extend((i, int(r)) for r in rows)
                continue
            period = 1.0 / rule.rate_limit_hz
            for r in rows:
                key = (i, int(ids[r]))
                last = self._last_forward_s.get(key)
                t = float(times_s[r])
                if last is not None and t - last < period:
                    counters["rate_limited"] += 1
                    continue
                self._last_forward_s[key] = t
                out.append((i, int(r)))
        out.sort(key=lambda pair: pair[1])
        return out

    def count(self, rule_index: int, name: str) -> None:
        self._counters[rule_index][name] += 1

    def counters(self) -> dict[str, dict[str, int]]:
        return {rule.label: dict(c) for rule, c in zip(self.rules, self._counters)}

    @staticmethod
    def rules_for(rules: Sequence[RouteRule], buses: Iterable[str]) -> list[str]:
        """Bus names the rules mention that are not in ``buses`` (for a clear config error)."""
        known = set(buses)
        return sorted({b for r in rules for b in (r.src, r.dst)} - known)
