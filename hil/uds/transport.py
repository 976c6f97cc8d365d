"""Bind a :class:`~hil.uds.server.UdsServer` to a python-can bus through can-isotp.

One :class:`UdsEcuTransport` per simulated ECU: an ISO-TP stack on the ECU's physical
request id (e.g. 0x7E0, answering on 0x7E8) and a receive-only stack on the functional id
0x7DF (functional requests are single frames; every answer goes out on the physical
response id). A worker thread feeds requests to the server, sends its answers, and keeps
polling it for 0x78 repeats, the end of long jobs and the S3 timeout.

Works on any python-can bus: ``hilbus`` (the timed virtual bus), ``virtual``, a bus served by
the socketcand hub. Other threads that touch the server (fault monitors calling
``report_fault``) hold :attr:`UdsEcuTransport.lock`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from hil.uds.worker import BackgroundWorker
from vehicle_io.diag import FUNCTIONAL_REQUEST_ID, EcuAddress, acquire_notifier, isotp_params, release_notifier

if TYPE_CHECKING:
    import can

    from hil.uds.server import UdsServer

__all__ = ["UdsEcuTransport"]

#: longest wait between two looks at the server when nothing arrives
_IDLE_POLL_S = 0.01


class UdsEcuTransport(BackgroundWorker):
    """Serve one ECU's UDS on a python-can bus until :meth:`shutdown`."""

    def __init__(self, bus: can.BusABC, server: UdsServer, address: EcuAddress, *,
                 notifier: can.Notifier | None = None, fd: bool = False,
                 functional_id: int = FUNCTIONAL_REQUEST_ID) -> None:
        import isotp

        self.bus = bus
        self.server = server
        self.address = address
        self.lock = threading.RLock()
        self._own_notifier = notifier is None
        self._notifier = notifier if notifier is not None else acquire_notifier(bus)
        params = isotp_params(fd)
        self._physical = isotp.NotifierBasedCanStack(
            bus, self._notifier, params=params,
            address=isotp.Address(isotp.AddressingMode.Normal_11bits,
                                  txid=address.response_id, rxid=address.request_id))
        # Functional requests are single frames: listen mode sends no flow control, so a
        # (forbidden) functional first frame cannot make this ECU talk on its response id.
        self._functional = isotp.NotifierBasedCanStack(
            bus, self._notifier, params={**params, "listen_mode": True},
            address=isotp.AsymmetricAddress(
                tx_addr=isotp.Address(isotp.AddressingMode.Normal_11bits, txid=address.response_id, tx_only=True),
                rx_addr=isotp.Address(isotp.AddressingMode.Normal_11bits, rxid=functional_id, rx_only=True)))
        self._init_worker()
        #: requests served, responses sent, transport errors (send failures)
        self.stats: dict[str, int] = {"requests": 0, "functional_requests": 0, "responses": 0, "send_errors": 0}
        self.last_error = ""

    def _thread_name(self) -> str:
        return f"uds-{self.address.name}"

    def _on_start(self) -> None:
        self._physical.start()
        self._functional.start()

    def _on_stop(self) -> None:
        """The ISO-TP stacks stop; the bus itself stays open, it belongs to the caller."""
        self._physical.stop()
        self._functional.stop()
        if self._own_notifier:
            release_notifier(self.bus, self._notifier)

    def _send(self, responses: list[bytes]) -> None:
        for response in responses:
            try:
                self._physical.send(response, send_timeout=2.0)
                self.stats["responses"] += 1
            except Exception as err:  # noqa: BLE001 - a lost response must not kill the ECU
                self.stats["send_errors"] += 1
                self.last_error = f"{self.address.name}: response not sent: {err}"

    def _run(self) -> None:
        while not self._stop.is_set():
            request = self._physical.recv(block=True, timeout=_IDLE_POLL_S)
            if request is not None:
                self.stats["requests"] += 1
                with self.lock:
                    out = self.server.handle(bytes(request), functional=False)
                self._send(out)
            functional = self._functional.recv(block=False)
            if functional is not None:
                self.stats["functional_requests"] += 1
                with self.lock:
                    out = self.server.handle(bytes(functional), functional=True)
                self._send(out)
            with self.lock:
                out = self.server.poll()
            self._send(out)
