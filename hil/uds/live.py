"""Diagnostics wired into a running rig: DTCs from the live van, 0x28 acting on the ECUs' traffic.

:class:`LiveDiagnostics` runs one thread that, every ``period_s``:

* feeds the plant state to :class:`~hil.uds.monitors.PlantFaultMonitor` (over-temperature,
  isolation, speed plausibility, cargo-bay temperature -> DTCs with snapshots);
* runs :class:`~hil.uds.monitors.LostCommunicationMonitor`, a listener on the UDS servers'
  own bus connections (pt and body: one monitor hears both, as the VCU hears the body frames
  through the gateway in the van), so a silenced or cut-off ECU sets its partners' U-codes;
* applies CommunicationControl (0x28): while a server has its normal transmission disabled,
  the rig's simulated ECU of the same name is silenced (public ``SimEcu.add_fault`` with
  ``{"action": "silence"}``); enabling it again, a session change to default or a reset
  removes that fault. Diagnostic traffic (the UDS transport) is not affected, as ISO 14229
  says.

Receive side (disableRx): the rig ECU's ``normal_rx_enabled`` follows the server's, so it
ignores its command frames (counted as ``commands_ignored``) while reception is disabled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from hil.uds.monitors import LostCommunicationMonitor, PlantFaultMonitor
from hil.uds.worker import BackgroundWorker

if TYPE_CHECKING:
    import can

    from hil.ecus.base import EcuFault
    from hil.uds.server import UdsServer

__all__ = ["LiveDiagnostics"]


class LiveDiagnostics(BackgroundWorker):
    """Monitors and CommunicationControl for the UDS servers of a running rig (see module docs).

    ``rig``: the :class:`hil.rig.Rig`; ``servers``: by name (vcu, bms, cbc: the rig node is
    the upper-case name); ``buses``: python-can buses the monitor listens on (the servers'
    own); ``live``: the plant values (field names of ``hil.plant.state``); ``locks``: the
    transports' locks by server name (fault reports then never race a request).
    """

    THREAD_NAME = "uds-live-diagnostics"

    def __init__(self, rig: Any, servers: Mapping[str, UdsServer], buses: Mapping[str, can.BusABC],
                 live: Callable[[], Mapping[str, float]], *,
                 locks: Mapping[str, AbstractContextManager[Any]] | None = None, period_s: float = 0.1) -> None:
        from vehicle_io.diag import acquire_notifier

        self.rig = rig
        self.servers = servers
        self.live = live
        self.period_s = period_s
        self._locks = dict(locks or {})
        lock = _AllLocks(list(self._locks.values()))
        self.plant = PlantFaultMonitor(servers, lock=lock)
        self.lost_comm = LostCommunicationMonitor(servers, clock=lambda: rig.t_s, lock=lock)
        self._buses = dict(buses)
        self._notifiers = {}
        for name, bus in self._buses.items():
            notifier = acquire_notifier(bus)
            notifier.add_listener(self.lost_comm)
            self._notifiers[name] = notifier
        #: the silence fault this object added per ECU node (None: the node talks)
        self._silenced: dict[str, EcuFault] = {}
        #: monitor passes, failures of a pass (counted, the thread keeps going), last failure
        self.stats: dict[str, int] = {"passes": 0, "errors": 0, "silenced": 0, "released": 0}
        self.last_error = ""
        self._init_worker()

    def _on_stop(self) -> None:
        """Detach the monitor, give the silenced ECUs their voice back."""
        from vehicle_io.diag import release_notifier

        for name, notifier in self._notifiers.items():
            try:
                notifier.remove_listener(self.lost_comm)
            except ValueError:
                pass
            release_notifier(self._buses[name], notifier)
        for node in list(self._silenced):
            self._release(node)

    def step(self) -> None:
        """One pass of every monitor and of the 0x28 state (the thread calls it every period)."""
        self.plant.update(self.live())
        self.lost_comm.check()
        self.sync_communication_control()
        self.stats["passes"] += 1

    def sync_communication_control(self) -> None:
        """Silence or release each rig ECU to match its server's 0x28 transmit state."""
        for name, server in self.servers.items():
            node = name.upper()
            if node not in self.rig.ecus:
                continue
            ecu = self.rig.ecu(node)
            if ecu.normal_rx_enabled != server.normal_rx_enabled:
                with self.rig.clock.lock:
                    ecu.normal_rx_enabled = server.normal_rx_enabled
            if not server.normal_tx_enabled and node not in self._silenced:
                with self.rig.clock.lock:
                    self._silenced[node] = self.rig.ecu(node).add_fault(
                        {"action": "silence", "name": f"uds-0x28@{name}"})
                self.stats["silenced"] += 1
            elif server.normal_tx_enabled and node in self._silenced:
                self._release(node)

    def _release(self, node: str) -> None:
        fault = self._silenced.pop(node)
        with self.rig.clock.lock:
            self.rig.ecu(node).remove_fault(fault)
        self.stats["released"] += 1

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.step()
            except Exception as err:  # noqa: BLE001 - a failed pass is counted; the sim keeps running
                self.stats["errors"] += 1
                self.last_error = f"live diagnostics: {type(err).__name__}: {err}"


class _AllLocks:
    """Hold every transport lock for one fault report (a report touches one server)."""

    def __init__(self, locks: list[AbstractContextManager[Any]]) -> None:
        self._locks = locks or [nullcontext()]

    def __enter__(self) -> None:
        for lock in self._locks:
            lock.__enter__()

    def __exit__(self, *exc: object) -> None:
        for lock in reversed(self._locks):
            lock.__exit__(None, None, None)
