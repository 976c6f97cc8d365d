"""UDS over ISO-TP driven by a hilbus SimClock, in one thread: bus-time measurements of flashing.

The threaded transports (:mod:`hil.uds.transport`, can-isotp's stacks) wait in wall time; on a
simulated clock that turns the threads' scheduling into random leaps of bus time. Here
can-isotp's :class:`~isotp.TransportLayerLogic` (the protocol, no threads) runs inside the
bus's frame callbacks, so tester and ECU answer at the instant a frame ends (processing time
zero: what is measured is the bus and the protocol), and the udsoncan client's waits drive
the SimClock. Deterministic and faster than real time. Used by tools/bench_flash.py.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import can
import isotp
from udsoncan.connections import BaseConnection

from hil.bus.channel import Channel, Endpoint
from hil.bus.clock import PS_PER_S
from hil.uds.isotp_rules import conform_rx_frame
from hil.uds.server import UdsServer
from vehicle_io.diag import EcuAddress, isotp_params

__all__ = ["ClockedEcu", "ClockedIsoTp", "ClockedTesterConnection"]


class ClockedIsoTp:
    """can-isotp's protocol logic on a hilbus endpoint, run from the endpoint's frame callback."""

    def __init__(self, channel: Channel, node: str, txid: int, rxid: int, fd: bool, *, ecu: bool = False) -> None:
        self._rx: deque[isotp.CanMessage] = deque()
        #: an ECU's link applies the ISO 15765-2 receive rules can-isotp lacks (hil.uds.isotp_rules)
        self._ecu = ecu
        self.endpoint: Endpoint = channel.attach(node=node, fd=fd, tx_queue_size=0, on_frame=self._on_frame)
        self.endpoint.set_filters([{"can_id": rxid, "can_mask": 0x7FF, "extended": False}])
        self.logic = isotp.TransportLayerLogic(
            rxfn=self._rxfn, txfn=self._txfn,
            params={**isotp_params(fd), "wftmax": 0xFFFF} if ecu else isotp_params(fd),
            address=isotp.Address(isotp.AddressingMode.Normal_11bits, txid=txid, rxid=rxid))
        self.on_payload: Any = None

    def _rxfn(self, timeout: float) -> isotp.CanMessage | None:
        return self._rx.popleft() if self._rx else None

    def _txfn(self, msg: isotp.CanMessage) -> None:
        self.endpoint.send(can.Message(arbitration_id=msg.arbitration_id, data=bytes(msg.data), is_extended_id=False,
                                       is_fd=msg.is_fd, bitrate_switch=msg.bitrate_switch))

    def _on_frame(self, msg: can.Message) -> None:
        if self._ecu:
            conformed = conform_rx_frame(msg)
            if conformed is None:
                return
            msg = conformed
        self._rx.append(isotp.CanMessage(arbitration_id=msg.arbitration_id, data=bytes(msg.data), dlc=msg.dlc,
                                         extended_id=msg.is_extended_id, is_fd=msg.is_fd,
                                         bitrate_switch=msg.bitrate_switch))
        self.pump()

    def pump(self) -> None:
        self.logic.process()
        while self.on_payload is not None and self.logic.available():
            self.on_payload(bytes(self.logic.recv()))

    def send(self, payload: bytes) -> None:
        with self.endpoint.clock.lock:
            self.logic.send(bytes(payload))
            self.pump()


class ClockedEcu:
    """A :class:`UdsServer` answering on a hilbus channel from clock callbacks (zero processing time)."""

    def __init__(self, channel: Channel, server: UdsServer, address: EcuAddress, fd: bool = False) -> None:
        self.server = server
        self.clock = channel.clock
        self.link = ClockedIsoTp(channel, f"UDS-{address.name}", address.response_id, address.request_id, fd, ecu=True)
        self.link.on_payload = self._request
        self._timer: Any = None

    def _request(self, payload: bytes) -> None:
        self._answer(self.server.handle(payload))

    def _answer(self, responses: list[bytes]) -> None:
        for response in responses:
            self.link.logic.send(response)
        self.link.logic.process()
        deadline = self.server.next_deadline_s()
        if self.server.busy and deadline is not None and self._timer is None:
            # Round up to the clock's picosecond: a deadline that rounds down would poll a
            # hair early, find nothing due and re-arm at the same instant forever.
            t_ps = max(math.ceil(deadline * PS_PER_S) + 1, self.clock.now_ps() + 1)
            self._timer = self.clock.call_at_ps(t_ps, self._poll)

    def _poll(self) -> None:
        self._timer = None
        self._answer(self.server.poll())


class ClockedTesterConnection(BaseConnection):
    """A udsoncan connection whose waits drive the SimClock (one thread: the caller's)."""

    def __init__(self, channel: Channel, address: EcuAddress, fd: bool = False) -> None:
        super().__init__(name=f"clocked-{address.name}")
        self.clock = channel.clock
        self.link = ClockedIsoTp(channel, "TESTER", address.request_id, address.response_id, fd)
        self._frames: deque[bytes] = deque()
        self.link.on_payload = self._frames.append
        self._open = False

    def open(self) -> ClockedTesterConnection:
        self._open = True
        return self

    def close(self) -> None:
        self._open = False

    def is_open(self) -> bool:
        return self._open

    def __enter__(self) -> ClockedTesterConnection:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def specific_send(self, payload: bytes, timeout: float | None = None) -> None:
        self.link.send(payload)

    def specific_wait_frame(self, timeout: float | None = None) -> bytes | None:
        self.clock.wait_until(lambda: bool(self._frames), timeout)
        return self._frames.popleft() if self._frames else None

    def empty_rxqueue(self) -> None:
        self._frames.clear()
