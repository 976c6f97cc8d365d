"""python-can interface ``hilbus``: a :class:`can.BusABC` on a timed virtual channel.

``can.Bus(interface="hilbus", channel="rig0", bitrate=500000)`` attaches one endpoint (as a
node of its own, or of ``node="BMS"``) to the process-wide channel ``rig0``, creating it on
first use. Extra keyword arguments: ``data_bitrate`` and ``fd`` (CAN FD), ``clock`` (a
:class:`hil.bus.clock.Clock`, ``"sim"`` or ``"real"``; default real time), ``seed`` (fault
randomness), ``node``, ``listen_only``, ``error_frames``, ``rx_queue_size``,
``tx_queue_size``, ``tx_order`` (``"fifo"``/``"priority"``), ``require_ack`` and
``auto_recovery`` (channel settings, used when the channel is created).

Time: ``recv(timeout)`` and ``send(timeout)`` count the timeout on the bus clock. On a
simulated clock a blocking ``recv`` drives the clock until a frame for this bus arrives or the
timeout of simulated time has passed, so a single-threaded test runs as fast as the CPU
allows and gives the same result every run. ``send_periodic`` schedules on the bus clock
(no thread), so cyclic senders run in simulated time too.

Timestamps are the end of each frame on the bus clock (seconds; the simulated clock starts
at 0, the real one at ``time.time()``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import can
from can import BusABC, BusState, CanProtocol, Message
from can.broadcastmanager import (
    LimitedDurationCyclicSendTaskABC,
    ModifiableCyclicTaskABC,
    RestartableCyclicTaskABC,
)
from can.typechecking import AutoDetectedConfig

from hil.bus.channel import Channel, ChannelStats, Endpoint, _attach_by_name, channel_names
from hil.bus.clock import PS_PER_S, Clock, TimerHandle, seconds_to_ps
from hil.bus.errors import BusConfigError, HilBusError
from hil.bus.faults import BUS_OFF, ERROR_PASSIVE

LOG = logging.getLogger(__name__)

_CHANNEL_KEYS = ("require_ack", "auto_recovery")


class HilBus(BusABC):
    """One node's view of a timed virtual CAN channel (see the module docstring)."""

    def __init__(
        self,
        channel: Any = "rig0",
        can_filters: can.typechecking.CanFilters | None = None,
        receive_own_messages: bool = False,
        bitrate: int | None = None,
        data_bitrate: int | None = None,
        fd: bool | None = None,
        clock: Clock | str | None = None,
        node: str | None = None,
        seed: int | None = None,
        listen_only: bool | None = None,
        error_frames: bool = True,
        rx_queue_size: int = 0,
        tx_queue_size: int = 256,
        tx_order: str | None = None,
        **kwargs: Any,
    ) -> None:
        if channel is None:
            channel = "rig0"
        name = str(channel)
        channel_config: dict[str, Any] = {
            "bitrate": _optional_int("bitrate", bitrate),
            "data_bitrate": _optional_int("data_bitrate", data_bitrate),
            "fd": None if fd is None else bool(fd),
            "clock": clock,
            "seed": _optional_int("seed", seed),
        }
        for key in _CHANNEL_KEYS:
            channel_config[key] = kwargs.pop(key, None)
        endpoint_config: dict[str, Any] = {
            "node": node,
            "receive_own_messages": bool(receive_own_messages),
            "fd": None if fd is None else bool(fd),
            "error_frames": bool(error_frames),
            "rx_queue_size": _optional_int("rx_queue_size", rx_queue_size),
            "tx_queue_size": _optional_int("tx_queue_size", tx_queue_size),
            "tx_order": tx_order,
            "listen_only": listen_only,
        }
        self._endpoint: Endpoint = _attach_by_name(name, channel_config, endpoint_config)
        try:
            self._hil_channel: Channel = self._endpoint.channel
            self.channel_name = name
            self.receive_own_messages = bool(receive_own_messages)
            self._can_protocol = CanProtocol.CAN_FD if self._endpoint.fd else CanProtocol.CAN_20
            rates = f"{self._hil_channel.bitrate} bit/s"
            if self._hil_channel.fd:
                rates += f", data {self._hil_channel.data_bitrate} bit/s"
            kind = "simulated" if self._hil_channel.clock.is_simulated else "real-time"
            self.channel_info = f"hilbus {name} ({rates}, {kind}) node {self._endpoint.node}"
            # Last, as python-can expects: BusABC.__init__ marks the bus open (its __del__ then
            # warns "not properly shut down" unless shutdown() ran), so nothing may fail after it.
            super().__init__(channel=name, can_filters=can_filters, **kwargs)
        except BaseException:
            self._endpoint.close()
            raise

    # -- the python-can hooks ------------------------------------------------------------------

    def _recv_internal(self, timeout: float | None) -> tuple[Message | None, bool]:
        # The endpoint applies the filters before queueing (like a controller's acceptance
        # filter), so what it returns is already filtered.
        return self._endpoint.recv(timeout), True

    def _apply_filters(self, filters: can.typechecking.CanFilters | None) -> None:
        self._endpoint.set_filters(filters)

    def recv(self, timeout: float | None = None) -> Message | None:
        """The next frame that passes the filters, waiting ``timeout`` seconds of *bus* time.

        Same contract as :meth:`can.BusABC.recv`; the only difference is the clock the
        timeout is measured on (BusABC measures wall time, which in simulated time would let
        a one-second timeout run for hours of bus time).
        """
        endpoint = self._endpoint
        rx = endpoint._rx
        if rx:  # the common case on a busy bus: a frame is waiting (already filtered)
            msg = rx.popleft()
            if LOG.isEnabledFor(self.RECV_LOGGING_LEVEL):
                LOG.log(self.RECV_LOGGING_LEVEL, "Received: %s", msg)
            return msg
        if endpoint.closed:
            raise can.CanOperationError(f"{self.channel_name}/{endpoint.node}: the bus is shut down")
        clock = endpoint.clock
        deadline_ps = None if timeout is None else clock.now_ps() + seconds_to_ps(timeout)
        while True:
            remaining = None if deadline_ps is None else max(0.0, (deadline_ps - clock.now_ps()) / PS_PER_S)
            msg, already_filtered = self._recv_internal(remaining)
            if msg is None:
                return None
            if already_filtered or self._matches_filters(msg):
                if LOG.isEnabledFor(self.RECV_LOGGING_LEVEL):
                    LOG.log(self.RECV_LOGGING_LEVEL, "Received: %s", msg)
                return msg

    def send(self, msg: Message, timeout: float | None = None) -> None:
        """Queue ``msg`` at the current bus time (see :meth:`hil.bus.channel.Endpoint.send`)."""
        self._endpoint.send(msg, timeout)

    def send_data(self, arbitration_id: int, data: bytes, *, is_extended_id: bool = False, is_fd: bool = False,
                  bitrate_switch: bool = False, timeout: float | None = None) -> None:
        """:meth:`send` of ``can.Message(arbitration_id=..., data=data, ...)`` without building it.

        The same checks, errors and timing (:meth:`hil.bus.channel.Endpoint.send_data`); the
        gateway's transmit path uses it when a bus offers it.
        """
        self._endpoint.send_data(arbitration_id, data, is_extended_id=is_extended_id, is_fd=is_fd,
                                 bitrate_switch=bitrate_switch, timeout=timeout)

    def shutdown(self) -> None:
        """Detach from the channel and stop periodic tasks; safe to call more than once."""
        super().shutdown()
        self._endpoint.close()

    def flush_tx_buffer(self) -> None:
        """Discard this bus's frames that are queued and not yet on the wire."""
        self._endpoint.flush_tx()

    @property
    def state(self) -> BusState:
        """ACTIVE, PASSIVE (error passive or listen-only) or ERROR (bus-off)."""
        endpoint = self._endpoint
        state = endpoint.state
        if state == BUS_OFF:
            return BusState.ERROR
        if state == ERROR_PASSIVE or endpoint.listen_only:
            return BusState.PASSIVE
        return BusState.ACTIVE

    @state.setter
    def state(self, new_state: BusState) -> None:
        if new_state == BusState.PASSIVE:
            self._endpoint.set_listen_only(True)
        elif new_state == BusState.ACTIVE:
            self._endpoint.set_listen_only(False)
        else:
            raise BusConfigError(f"expected BusState.ACTIVE or BusState.PASSIVE, but got {new_state!r}")

    @staticmethod
    def _detect_available_configs() -> list[AutoDetectedConfig]:
        names = channel_names() or ["rig0"]
        return [{"interface": "hilbus", "channel": name} for name in names]

    def _send_periodic_internal(
        self,
        msgs: Sequence[Message] | Message,
        period: float,
        duration: float | None = None,
        autostart: bool = True,
        modifier_callback: Callable[[Message], None] | None = None,
    ) -> can.broadcastmanager.CyclicSendTaskABC:
        return ClockCyclicSendTask(self, msgs, period, duration, autostart, modifier_callback)

    # -- extras -------------------------------------------------------------------------------

    @property
    def hil_channel(self) -> Channel:
        """The channel this bus is attached to (faults, observers, statistics, clock)."""
        return self._hil_channel

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint behind this bus."""
        return self._endpoint

    @property
    def clock(self) -> Clock:
        """The bus clock."""
        return self._endpoint.clock

    @property
    def node(self) -> str:
        """Name of this bus's node (controller)."""
        return self._endpoint.node

    @property
    def tec(self) -> int:
        """Transmit error counter of the node."""
        return self._endpoint.tec

    @property
    def rec(self) -> int:
        """Receive error counter of the node."""
        return self._endpoint.rec

    def stats(self) -> ChannelStats:
        """Channel and per-node statistics."""
        return self._hil_channel.stats()

    def restart(self) -> None:
        """Start bus-off recovery (with ``auto_recovery=False``, as ``ip link ... restart``)."""
        self._endpoint.restart()


def _optional_int(name: str, value: Any) -> int | None:
    """An integer option that may come as text from a python-can config file."""
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BusConfigError(f"hilbus option {name!r}: expected an integer, but got {value!r}") from None


class ClockCyclicSendTask(LimitedDurationCyclicSendTaskABC, ModifiableCyclicTaskABC, RestartableCyclicTaskABC):
    """``send_periodic`` on the bus clock: no thread, exact periods, works in simulated time.

    Sends at ``t0 + k * period``. A send the bus refuses (bus-off, full queue) is counted in
    :attr:`errors` and the task keeps its schedule, as an ECU keeps its task cycle.
    """

    def __init__(
        self,
        bus: HilBus,
        messages: Sequence[Message] | Message,
        period: float,
        duration: float | None,
        autostart: bool,
        modifier_callback: Callable[[Message], None] | None,
    ) -> None:
        super().__init__(messages, period, duration)
        if period <= 0:
            raise ValueError(f"expected a period > 0 s, but got {period}")
        self.bus = bus
        self.modifier_callback = modifier_callback
        self.errors = 0
        self.sent = 0
        self._clock = bus.clock
        self._period_ps = seconds_to_ps(period)
        self._handle: TimerHandle | None = None
        self._index = 0
        self._t0_ps = 0
        self._end_ps: int | None = None
        self.stopped = True
        if autostart:
            self.start()

    def start(self) -> None:
        """Start (or restart) sending now."""
        with self._clock.lock:
            if not self.stopped:
                return
            self.stopped = False
            self._t0_ps = self._clock.now_ps()
            self._end_ps = None if self.duration is None else self._t0_ps + seconds_to_ps(self.duration)
            self._k = 0
            self._handle = self._clock.call_at_ps(self._t0_ps, self._fire)

    def stop(self) -> None:
        """Stop sending; no effect when already stopped."""
        with self._clock.lock:
            self.stopped = True
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None

    def _fire(self) -> None:
        self._handle = None
        if self.stopped:
            return
        now = self._clock.now_ps()
        if self._end_ps is not None and now >= self._end_ps:
            self.stopped = True
            return
        msg = self.messages[self._index]
        self._index = (self._index + 1) % len(self.messages)
        try:
            if self.modifier_callback is not None:
                self.modifier_callback(msg)
            self.bus.send(msg, timeout=0)
            self.sent += 1
        except (can.CanError, HilBusError) as err:
            self.errors += 1
            LOG.debug("cyclic send of 0x%X refused: %s", msg.arbitration_id, err)
        self._k += 1
        self._handle = self._clock.call_at_ps(self._t0_ps + self._k * self._period_ps, self._fire)
