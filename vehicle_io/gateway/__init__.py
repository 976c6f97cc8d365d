"""The live CAN gateway: python-can buses -> checked, decoded SignalStore; one transmit path.

* :class:`Gateway` (gateway.py): attaches to named buses, decodes in batches, checks E2E,
  length and staleness, routes, records, and sends through the transmit gate.
* :class:`SignalStore` / :class:`StoreLayout` (store.py): the fixed numpy snapshot layout.
* :class:`E2EBank` (validity.py): the E2E receivers of every protected message.
* :class:`TransmitGate` (transmit.py): default deny, per-bus arming, allowlist.
* :class:`RouteRule` / :class:`Router` (routing.py): cangw-style forwarding.
* :class:`TrafficRecorder` / :class:`BlackBox` (recorder.py): logs and the trip ring buffer.

Importing this package does not import numba; constructing a Gateway or a SignalStore does.
"""

from __future__ import annotations

from vehicle_io.gateway.gateway import Gateway, GatewayInputError
from vehicle_io.gateway.recorder import RECORD_SUFFIXES, BlackBox, RecorderError, TrafficRecorder
from vehicle_io.gateway.routing import RouteRule, Router
from vehicle_io.gateway.store import (
    ACCEPT,
    REJECT_REASONS,
    LayoutError,
    MessageStatus,
    SignalReading,
    SignalStore,
    Snapshot,
    StoreLayout,
)
from vehicle_io.gateway.transmit import AllowedFrame, TransmitGate

__all__ = [
    "ACCEPT",
    "AllowedFrame",
    "BlackBox",
    "Gateway",
    "GatewayInputError",
    "LayoutError",
    "MessageStatus",
    "RECORD_SUFFIXES",
    "REJECT_REASONS",
    "RecorderError",
    "RouteRule",
    "Router",
    "SignalReading",
    "SignalStore",
    "Snapshot",
    "StoreLayout",
    "TransmitGate",
    "TrafficRecorder",
]
