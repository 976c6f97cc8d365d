"""Bind a :class:`~hil.uds.server.UdsServer` to a python-can bus through can-isotp.

One :class:`UdsEcuTransport` per simulated ECU: an ISO-TP stack on the ECU's physical
request id (e.g. 0x7E0, answering on 0x7E8) and a receive-only stack on the functional id
0x7DF (functional requests are single frames; every answer goes out on the physical
response id). A worker thread feeds requests to the server, sends its answers, and keeps
polling it for 0x78 repeats, the end of long jobs and the S3 timeout.

Received frames pass :func:`hil.uds.isotp_rules.conform_rx_frame` first: the ISO 15765-2
receive rules can-isotp does not apply itself. The ECU accepts any number of FlowControl
WAIT frames from a tester (N_WFTmax limits the receiver that sends them, not the sender).

Works on any python-can bus: ``hilbus`` (the timed virtual bus), ``virtual``, a bus served by
the socketcand hub. Other threads that touch the server (fault monitors calling
``report_fault``) hold :attr:`UdsEcuTransport.lock`.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

from hil.uds.isotp_rules import conform_rx_frame
from hil.uds.worker import BackgroundWorker
from vehicle_io.diag import FUNCTIONAL_REQUEST_ID, EcuAddress, acquire_notifier, isotp_params, release_notifier

if TYPE_CHECKING:
    import can

    from hil.uds.server import UdsServer

__all__ = ["UdsEcuTransport"]

#: longest wait between two looks at the server when nothing arrives
_IDLE_POLL_S = 0.01
#: FlowControl WAIT frames accepted in a row; the sender's N_Bs restarts at each one
_WAIT_FRAMES_MAX = 0xFFFF


@functools.cache
def _conforming_stack_class() -> type:
    """can-isotp's NotifierBasedCanStack with the ISO 15765-2 receive rules of isotp_rules."""
    import isotp

    class ConformingCanStack(isotp.NotifierBasedCanStack):
        def __init__(self, *args: Any, rxid: int, functional: bool = False, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._conform_rxid = rxid
            self._conform_functional = functional

        def _on_message_received(self, msg: can.Message) -> None:
            if msg.arbitration_id == self._conform_rxid and not msg.is_extended_id:
                conformed = conform_rx_frame(msg, functional=self._conform_functional)
                if conformed is None:
                    return
                msg = conformed
            super()._on_message_received(msg)

    return ConformingCanStack


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
        params = {**isotp_params(fd), "wftmax": _WAIT_FRAMES_MAX}
        stack_class = _conforming_stack_class()
        self._physical = stack_class(
            bus, self._notifier, params=params, rxid=address.request_id,
            address=isotp.Address(isotp.AddressingMode.Normal_11bits,
                                  txid=address.response_id, rxid=address.request_id))
        # Functional requests are single frames: listen mode sends no flow control, so a
        # (forbidden) functional first frame cannot make this ECU talk on its response id.
        self._functional = stack_class(
            bus, self._notifier, params={**params, "listen_mode": True}, rxid=functional_id, functional=True,
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
