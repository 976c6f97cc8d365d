"""The shared medium: one CAN (FD) bus with arbitration, exact frame timing, faults and nodes.

Vocabulary:

* :class:`Channel` — one bus (``"pt"``, ``"rig0"``): bit rates, a clock, fault rules, the
  frames in flight. Channels live in a process-wide registry by name
  (:func:`open_channel`, :func:`get_channel`).
* node — one CAN controller on the channel: one transmit queue, one TEC/REC pair, one
  error state. Several endpoints may share a node (``node="BMS"``), as several sockets share
  a SocketCAN interface.
* :class:`Endpoint` — one attachment point: sends frames through its node and receives the
  frames of the bus, into a queue (``recv``) or through a callback (``on_frame``). The
  python-can interface :class:`hil.bus.interface.HilBus` is a thin wrapper around one.
* observers — callbacks that see every transmission on the wire (:class:`WireFrame`) and
  every bus event (:class:`BusEvent`: faults applied, error state changes), without being a
  node: they never acknowledge and never send.

Timing: a frame starts (SOF) when the bus is idle and it wins arbitration, and occupies the
bus for its exact bit count (:mod:`hil.bus.bits`), SOF through the 3-bit intermission. The
receive timestamp of a frame is the end of its intermission, which is also the earliest SOF of
the next frame: back to back, ``t_end(k) = t_start(k) + nominal_bits / bitrate +
data_bits / data_bitrate`` with ``t_start(k) = max(enqueue time, t_end(k-1))``.

Arbitration: at the moment the bus becomes idle (after every other event at that instant),
the head frame of each node's transmit queue competes; the lowest arbitration field wins
(:func:`hil.bus.bits.arbitration_key`), ties (two nodes, same id) go to the node that
attached first. Each node sends its own queue in FIFO order (``tx_order="fifo"``, a
controller with one transmit buffer) or lowest id first (``tx_order="priority"``, several
buffers). An error-passive node that just transmitted waits 8 more bit times (suspend
transmission) before it may start again.

Acknowledgement: a frame needs one other node that acknowledges (not listen-only, not
bus-off, not cut off). Alone on the bus, a sender sees ACK errors and retransmits, as on a
real bus; ``require_ack=False`` turns that off for a channel.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import can

from hil.bus.bits import (
    AFTER_ACK_SLOT_BITS,
    ERROR_FRAME_BITS,
    RECESSIVE_TAIL_BITS,
    bit_counts,
    fd_padded_length,
    frame_bits,
)
from hil.bus.batch import CAN_EFF_FLAG as _EFF
from hil.bus.batch import CAN_RTR_FLAG as _RTR
from hil.bus.batch import FrameBatch
from hil.bus.clock import PRIO_ARBITRATION, PRIO_EVENT, PS_PER_S, Clock, TimerHandle, make_clock
from hil.bus.errors import BusConfigError, BusOffError, InvalidFrameError, TransmitQueueFull
from hil.bus.faults import (
    BUS_OFF,
    ERROR_ACTIVE,
    ERROR_PASSIVE,
    WARNING_LIMIT,
    ErrorCounters,
    FaultRule,
    FaultSet,
)

LOG = logging.getLogger(__name__)

# SocketCAN error frame layout (linux/can/error.h), which python-can users already decode.
CAN_ERR_CRTL = 0x004
CAN_ERR_PROT = 0x008
CAN_ERR_ACK = 0x020
CAN_ERR_BUSOFF = 0x040
CAN_ERR_BUSERROR = 0x080
CAN_ERR_RESTARTED = 0x100
CAN_ERR_CNT = 0x200
CAN_ERR_CRTL_RX_WARNING = 0x04
CAN_ERR_CRTL_TX_WARNING = 0x08
CAN_ERR_CRTL_RX_PASSIVE = 0x10
CAN_ERR_CRTL_TX_PASSIVE = 0x20
CAN_ERR_CRTL_ACTIVE = 0x40
CAN_ERR_PROT_BIT = 0x01
CAN_ERR_PROT_TX = 0x80
CAN_ERR_PROT_LOC_DATA = 0x0A
CAN_ERR_PROT_LOC_ACK = 0x19

#: Consecutive recessive 11-bit sequences a bus-off node must see before it may recover.
RECOVERY_SEQUENCES = 128

_OK, _WIRE_ERROR, _ACK_ERROR = 0, 1, 2
#: Marks an arbitration the simulated clock will run between events (no heap entry to cancel).
_DEFERRED: Any = object()
#: The per-frame shortcuts: a frame ends inside its start when the clock shows nothing else
#: can happen before its end (Clock._jump_to; a good frame's end inlined there), send_data
#: skips the general checks for a frame that passes them and queues it in place on a FIFO
#: controller without send faults, a sent frame frees its queue slot inline, arbitration with
#: one contender skips the comparison. False takes the general path everywhere (tests run
#: both and require the same traffic).
_FAST_PATHS = True
#: fd_padded_length(n) for n = 0..64.
_FD_PADDED: tuple[int, ...] = tuple(fd_padded_length(n) for n in range(65))

_MESSAGE_FIELDS = frozenset(
    ("timestamp", "arbitration_id", "is_extended_id", "is_remote_frame", "is_error_frame", "channel", "dlc",
     "data", "is_fd", "is_rx", "bitrate_switch", "error_state_indicator")
)
_new_object = object.__new__


def _message(ts: float, arbitration_id: int, is_extended_id: bool, is_remote_frame: bool, is_fd: bool, brs: bool,
             esi: bool, dlc: int, data: bytes, channel: str, is_rx: bool) -> can.Message:
    """A received frame as a python-can message, without Message.__init__'s checks.

    Every delivery builds one; the fields are already valid (the sender's frame was checked),
    so this sets them directly: a quarter of the cost.
    """
    msg = _new_object(can.Message)
    msg.timestamp = ts
    msg.arbitration_id = arbitration_id
    msg.is_extended_id = is_extended_id
    msg.is_remote_frame = is_remote_frame
    msg.is_error_frame = False
    msg.channel = channel
    msg.dlc = dlc
    msg.data = bytearray(data)
    msg.is_fd = is_fd
    msg.is_rx = is_rx
    msg.bitrate_switch = brs
    msg.error_state_indicator = esi
    return msg


if {s for s in getattr(can.Message, "__slots__", ()) if s != "__weakref__"} != _MESSAGE_FIELDS:
    # A python-can whose Message has other fields: build it the documented way.
    def _message(ts: float, arbitration_id: int, is_extended_id: bool, is_remote_frame: bool, is_fd: bool,  # noqa: F811
                 brs: bool, esi: bool, dlc: int, data: bytes, channel: str, is_rx: bool) -> can.Message:
        return can.Message(
            timestamp=ts, arbitration_id=arbitration_id, is_extended_id=is_extended_id,
            is_remote_frame=is_remote_frame, is_fd=is_fd, bitrate_switch=brs, error_state_indicator=esi,
            dlc=dlc, data=data, channel=channel, is_rx=is_rx,
        )


@dataclass(frozen=True, slots=True)
class WireFrame:
    """One transmission on the wire, as observers see it.

    ``is_error_frame`` marks an attempt that ended in an error frame (``error`` = ``"bit"``
    for a disturbed frame, ``"ack"`` when nobody acknowledged); its fields are those of the
    attempted frame and ``t_end_ps`` is the end of the error frame.
    """

    t_start_ps: int
    t_end_ps: int
    sender: str
    arbitration_id: int
    is_extended_id: bool
    is_remote_frame: bool
    is_fd: bool
    bitrate_switch: bool
    error_state_indicator: bool
    dlc: int
    data: bytes
    nominal_bits: int
    data_bits: int
    is_error_frame: bool = False
    error: str = ""

    @property
    def t_start(self) -> float:
        """SOF time in seconds."""
        return self.t_start_ps / PS_PER_S

    @property
    def t_end(self) -> float:
        """End of the frame (of its intermission) in seconds: the receive timestamp."""
        return self.t_end_ps / PS_PER_S

    @property
    def bits(self) -> int:
        """Total bits of the frame (both phases)."""
        return self.nominal_bits + self.data_bits

    def to_message(self, channel: Any = None, is_rx: bool = True) -> can.Message:
        """The frame as a python-can message stamped with its end time."""
        return can.Message(
            timestamp=self.t_end,
            arbitration_id=self.arbitration_id,
            is_extended_id=self.is_extended_id,
            is_remote_frame=self.is_remote_frame,
            is_fd=self.is_fd,
            bitrate_switch=self.bitrate_switch,
            error_state_indicator=self.error_state_indicator,
            dlc=self.dlc,
            data=self.data,
            channel=channel,
            is_rx=is_rx,
        )


@dataclass(frozen=True, slots=True)
class BusEvent:
    """Something that happened on a channel: a fault applied, an error state change, ...

    ``code`` is dotted: ``fault.<action>``, ``node.error_passive``, ``node.error_active``,
    ``node.bus_off``, ``node.recovered``, ``frame.error``, ``frame.rejected``.
    """

    t_ps: int
    code: str
    channel: str
    node: str = ""
    arbitration_id: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def t(self) -> float:
        """When, in seconds of bus time."""
        return self.t_ps / PS_PER_S

    def as_dict(self) -> dict[str, Any]:
        """``{"t": seconds, "code": ..., ...}``: the scenario report's event shape."""
        out: dict[str, Any] = {"t": self.t, "code": self.code, "channel": self.channel}
        if self.node:
            out["node"] = self.node
        if self.arbitration_id is not None:
            out["id"] = self.arbitration_id
        out.update(self.detail)
        return out


@dataclass(frozen=True)
class NodeStats:
    """Counters of one node (a snapshot)."""

    name: str
    state: str
    tec: int
    rec: int
    listen_only: bool
    tx_frames: int
    tx_bits: int
    rx_frames: int
    tx_errors: int
    rx_errors: int
    arbitration_lost: int
    retransmissions: int
    fault_dropped: int
    aborted: int
    rejected: int
    rx_overflow: int
    bus_off_count: int
    tx_pending: int


@dataclass(frozen=True)
class ChannelStats:
    """Counters of one channel since it opened or since :meth:`Channel.reset_stats`."""

    channel: str
    t_ps: int
    since_ps: int
    frames: int
    error_frames: int
    nominal_bits: int
    data_bits: int
    busy_ps: int
    nodes: Mapping[str, NodeStats]

    @property
    def elapsed_s(self) -> float:
        """Bus time covered by these counters."""
        return (self.t_ps - self.since_ps) / PS_PER_S

    @property
    def load_pct(self) -> float:
        """Share of the covered time the bus was busy (frames and error frames), in percent."""
        span = self.t_ps - self.since_ps
        return 100.0 * self.busy_ps / span if span > 0 else 0.0

    def load_since(self, earlier: ChannelStats) -> float:
        """Bus load in percent between an earlier snapshot and this one."""
        span = self.t_ps - earlier.t_ps
        return 100.0 * (self.busy_ps - earlier.busy_ps) / span if span > 0 else 0.0


class _Tx:
    """A frame inside a controller, waiting for or on the wire."""

    __slots__ = (
        "arbitration_id", "is_extended_id", "is_remote_frame", "is_fd", "brs", "esi", "dlc", "data",
        "key", "seq", "endpoint", "counted", "babble", "t_enq_ps",
    )

    def __init__(
        self,
        arbitration_id: int,
        is_extended_id: bool,
        is_remote_frame: bool,
        is_fd: bool,
        brs: bool,
        esi: bool,
        dlc: int,
        data: bytes,
        endpoint: Endpoint | None,
    ) -> None:
        self.arbitration_id = arbitration_id
        self.is_extended_id = is_extended_id
        self.is_remote_frame = is_remote_frame
        self.is_fd = is_fd
        self.brs = brs
        self.esi = esi
        self.dlc = dlc
        self.data = data
        # arbitration_key(), inlined: one per frame
        if is_extended_id:
            self.key = (
                ((arbitration_id >> 18) << 21) | (3 << 19) | ((arbitration_id & 0x3FFFF) << 1) | is_remote_frame
            )
        else:
            self.key = (arbitration_id << 21) | (is_remote_frame << 20)
        self.seq = 0
        self.endpoint = endpoint
        self.counted = endpoint is not None  # counts against the endpoint's tx queue limit
        self.babble: FaultRule | None = None
        self.t_enq_ps = 0

    def copy(self) -> _Tx:
        twin = _Tx(
            self.arbitration_id, self.is_extended_id, self.is_remote_frame, self.is_fd,
            self.brs, self.esi, self.dlc, self.data, self.endpoint,
        )
        twin.counted = False
        return twin


class _Node:
    """One controller on the channel."""

    __slots__ = (
        "name", "index", "endpoints", "fifo", "prio", "priority_order", "counters", "listen_only",
        "suspend_until_ps", "babble_tx", "recovery", "phantom", "reorder_held", "reorder_handle",
        "tx_frames", "tx_bits", "rx_base", "missed", "tx_errors", "rx_errors", "arbitration_lost",
        "retransmissions", "fault_dropped", "aborted", "rejected", "rx_overflow", "bus_off_count",
        "auto_recovery",
    )

    def __init__(self, name: str, index: int, priority_order: bool, phantom: bool = False) -> None:
        self.name = name
        self.index = index
        self.endpoints: list[Endpoint] = []
        self.fifo: deque[_Tx] = deque()
        self.prio: list[tuple[int, int, _Tx]] = []
        self.priority_order = priority_order
        self.counters = ErrorCounters()
        self.listen_only = False
        self.suspend_until_ps = -1
        self.babble_tx: _Tx | None = None
        self.recovery: _Recovery | None = None
        self.phantom = phantom
        self.reorder_held: _Tx | None = None
        self.reorder_handle: TimerHandle | None = None
        self.tx_frames = self.tx_bits = self.rx_base = self.missed = self.tx_errors = self.rx_errors = 0
        self.arbitration_lost = self.retransmissions = self.fault_dropped = self.aborted = 0
        self.rejected = self.rx_overflow = self.bus_off_count = 0
        #: None: the channel's setting; True/False: this controller's own (as its driver chose).
        self.auto_recovery: bool | None = None

    def head(self) -> _Tx | None:
        if self.babble_tx is not None:
            return self.babble_tx
        if self.priority_order:
            return self.prio[0][2] if self.prio else None
        return self.fifo[0] if self.fifo else None

    def push(self, tx: _Tx) -> None:
        if self.priority_order:
            heapq.heappush(self.prio, (tx.key, tx.seq, tx))
        else:
            self.fifo.append(tx)

    def pop_head(self) -> _Tx:
        if self.babble_tx is not None:
            tx, self.babble_tx = self.babble_tx, None
            return tx
        if self.priority_order:
            return heapq.heappop(self.prio)[2]
        return self.fifo.popleft()

    def reinstate(self, tx: _Tx) -> None:
        """Put a frame that failed on the wire back at the head (automatic retransmission)."""
        if tx.babble is not None:
            self.babble_tx = tx
        elif self.priority_order:
            heapq.heappush(self.prio, (tx.key, tx.seq, tx))
        else:
            self.fifo.appendleft(tx)

    def has_pending(self) -> bool:
        return self.babble_tx is not None or bool(self.fifo) or bool(self.prio)

    def drain(self) -> list[_Tx]:
        out = list(self.fifo) + [entry[2] for entry in self.prio]
        if self.babble_tx is not None:
            out.append(self.babble_tx)
        self.fifo.clear()
        self.prio.clear()
        self.babble_tx = None
        return out

    @property
    def state(self) -> str:
        return self.counters.state


class _Recovery:
    """Bus-off recovery progress: 128 sequences of 11 recessive bits."""

    __slots__ = ("count", "run_start_ps", "handle")

    def __init__(self, run_start_ps: int | None) -> None:
        self.count = 0
        self.run_start_ps = run_start_ps
        self.handle: TimerHandle | None = None


FrameObserver = Callable[[WireFrame], None]
EventObserver = Callable[[BusEvent], None]


class Endpoint:
    """One attachment to a channel: sends through its node, receives the bus's frames.

    Frames arrive as python-can messages stamped with their end-of-frame time, in a queue
    (:meth:`recv`, :meth:`poll`) or, with ``on_frame``, through a callback run on the
    clock's thread/driver (it must not block). Created by :meth:`Channel.attach`.
    """

    def __init__(
        self,
        channel: Channel,
        node: _Node,
        *,
        receive_own_messages: bool,
        fd: bool,
        error_frames: bool,
        rx_queue_size: int,
        tx_queue_size: int,
        on_frame: Callable[[can.Message], None] | None,
    ) -> None:
        self.channel = channel
        self.clock = channel.clock
        self._node = node
        self.receive_own_messages = receive_own_messages
        self.fd = fd
        self.error_frames = error_frames
        self.rx_queue_size = rx_queue_size
        self.tx_queue_size = tx_queue_size
        self.on_frame = on_frame
        self._rx: deque[can.Message] = deque()
        self._sink: FrameBatch | None = None
        self._filters: tuple[tuple[int, int, bool | None], ...] | None = None
        self.tx_pending = 0
        self.callback_errors = 0
        self.closed = False
        # A receiver inside the rig that wants data frames as (arbitration_id, data) instead of
        # a python-can message (SimEcu): set next to on_frame, which still gets error frames.
        self._on_data: Callable[[int, bytes], None] | None = None

    def __repr__(self) -> str:
        return f"Endpoint(channel={self.channel.name!r}, node={self._node.name!r})"

    @property
    def node(self) -> str:
        """Name of this endpoint's node (controller)."""
        return self._node.name

    @property
    def state(self) -> str:
        """The node's error state: ``"error_active"``, ``"error_passive"`` or ``"bus_off"``."""
        return self._node.state

    @property
    def tec(self) -> int:
        """The node's transmit error counter."""
        return self._node.counters.tec

    @property
    def rec(self) -> int:
        """The node's receive error counter."""
        return self._node.counters.rec

    @property
    def listen_only(self) -> bool:
        """True when the node neither transmits nor acknowledges."""
        return self._node.listen_only

    def set_listen_only(self, on: bool) -> None:
        """Switch the node to listen-only (no transmit, no ACK) or back to normal."""
        with self.clock.lock:
            self._node.listen_only = bool(on)

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        """Queue ``msg`` for transmission at the current bus time.

        Waits (bus-clock seconds) for room when the transmit queue is full; raises
        :class:`TransmitQueueFull` when none came within ``timeout``,
        :class:`BusOffError` while the node is bus-off and :class:`InvalidFrameError` for a
        frame that cannot exist on this channel (counted as rejected).
        """
        self._send_tx(self.channel._make_tx(msg, self), timeout)

    def send_data(self, arbitration_id: int, data: bytes, *, is_extended_id: bool = False, is_fd: bool = False,
                  bitrate_switch: bool = False, timeout: float | None = None) -> None:
        """Queue a data frame given as fields: :meth:`send` of the same ``can.Message``, without building it.

        The same checks, errors and timing; for senders inside the rig that make a frame per
        cycle (the simulated ECUs).
        """
        with self.clock.lock:
            if self._submit_data(arbitration_id, data, is_extended_id, is_fd, bitrate_switch):
                return
        self._send_tx(self.channel._make_data_tx(arbitration_id, data, is_extended_id, is_fd, bitrate_switch, self),
                      timeout)

    def _submit_data(self, arbitration_id: int, data: bytes, is_extended_id: bool, is_fd: bool,
                     bitrate_switch: bool) -> bool:
        """Queue a valid data frame at once when the node may send it now (clock lock held).

        What :meth:`send_data` does when every check passes (the frame is valid, the endpoint
        open, the node armed and not bus-off, the queue has room); False, with nothing done,
        when any fails: the caller then takes :meth:`send_data`, which raises or waits. For
        senders that run as clock events (the simulated ECUs), which hold the lock already.
        """
        node = self._node
        if (_FAST_PATHS and not self.closed and not node.listen_only and not node.counters.bus_off
                and not (self.tx_queue_size and self.tx_pending >= self.tx_queue_size)
                and 0 <= arbitration_id <= (0x1FFFFFFF if is_extended_id else 0x7FF)):
            size = len(data)
            channel = self.channel
            if not is_fd:
                if size > 8 or bitrate_switch:
                    return False
                tx = _Tx(arbitration_id, is_extended_id, False, False, False, False, size, data, self)
            elif size <= 64 and self.fd and channel.fd:
                padded = _FD_PADDED[size]
                if padded != size:
                    data += bytes(padded - size)
                tx = _Tx(arbitration_id, is_extended_id, False, True, bitrate_switch, False, padded, data, self)
            else:
                return False
            faults = channel.faults
            if node.priority_order or faults.cut_rules or faults.send_rules or faults.track_payloads:
                channel._submit(tx)
                return True
            # Channel._submit of a FIFO controller on a bus without send faults, inlined (every
            # ECU frame takes it): the same steps in the same order.
            tx.seq = next(channel._tx_serial)
            self.tx_pending += 1
            tx.t_enq_ps = channel.clock.now_ps()
            node.fifo.append(tx)
            channel._pending[node] = None
            if not channel._busy and channel._arb_handle is None:
                channel._arb_handle = channel.clock.defer(channel._arbitrate) or _DEFERRED
            else:
                channel._kick()
            return True
        return False

    def _send_tx(self, tx: _Tx, timeout: float | None) -> None:
        with self.clock.lock:
            node = self._node
            if self.closed or node.listen_only or node.counters.bus_off:
                self._check_can_send()
            if self.tx_queue_size and self.tx_pending >= self.tx_queue_size:
                ok = self.clock.wait_until(self._tx_has_room, timeout)
                if not ok:
                    raise TransmitQueueFull(
                        f"{self.channel.name}/{self.node}: expected room in the transmit queue within "
                        f"{timeout} s, but it stayed full ({self.tx_pending} of {self.tx_queue_size} frames)"
                    )
                self._check_can_send()
            self.channel._submit(tx)

    def _tx_has_room(self) -> bool:
        return self.closed or self.tx_pending < self.tx_queue_size

    def _check_can_send(self) -> None:
        if self.closed:
            raise can.CanOperationError(f"{self.channel.name}/{self.node}: the endpoint is closed")
        node = self._node
        if node.counters.bus_off:
            raise BusOffError(f"{self.channel.name}/{node.name}: the node is bus-off (TEC {node.counters.tec}); "
                              "expected recovery before sending")
        if node.listen_only:
            raise can.CanOperationError(f"{self.channel.name}/{node.name}: the node is listen-only; expected an armed node to send")

    def recv(self, timeout: float | None = None) -> can.Message | None:
        """The next received frame, waiting up to ``timeout`` seconds of bus time (None: no limit).

        On a simulated clock this drives the clock (see :mod:`hil.bus.clock`).
        """
        rx = self._rx
        if rx:
            return rx.popleft()
        if timeout is not None and timeout <= 0:
            return None
        self.clock.wait_until(self._has_rx, timeout)
        return rx.popleft() if rx else None

    def _has_rx(self) -> bool:
        return bool(self._rx) or self.closed

    def collect(self) -> FrameBatch:
        """Receive into a :class:`~hil.bus.batch.FrameBatch` (arrays) instead of the queue.

        From now on every frame this endpoint receives (filters apply as before) goes to the
        batch, in the same order and with the same timestamps; frames already queued move into
        it first. Idempotent: returns the same batch. For a consumer that wants the frame-batch
        arrays anyway (the gateway in a simulated scenario): no Message per frame.
        """
        with self.clock.lock:
            if self._sink is None:
                sink = FrameBatch(self.clock.lock)
                while self._rx:
                    sink.add_message(self._rx.popleft())
                self._sink = sink
            return self._sink

    def poll(self) -> can.Message | None:
        """The next received frame, or None at once."""
        rx = self._rx
        return rx.popleft() if rx else None

    @property
    def rx_pending(self) -> int:
        """Frames received and not yet read."""
        return len(self._rx)

    def flush_tx(self) -> int:
        """Discard this endpoint's frames not yet on the wire; returns how many."""
        with self.clock.lock:
            return self.channel._flush_endpoint(self)

    def restart(self) -> None:
        """Start bus-off recovery of the node (needed when the channel has auto_recovery off)."""
        with self.clock.lock:
            self.channel.restart_node(self._node.name)

    def set_auto_recovery(self, on: bool | None) -> None:
        """Whether this endpoint's controller starts bus-off recovery by itself.

        ``None`` follows the channel's ``auto_recovery``. ``False`` is what an AUTOSAR ECU
        does: its CAN state manager calls :meth:`restart` after its own back-off time.
        """
        if on is not None and not isinstance(on, bool):
            raise BusConfigError(f"set_auto_recovery: expected True, False or None, but got {on!r}")
        with self.clock.lock:
            self._node.auto_recovery = on

    def close(self) -> None:
        """Detach from the channel; idempotent."""
        with self.clock.lock:
            if self.closed:
                return
            self.closed = True
            self.clock.notify_waiters()
        self.channel._detach(self)

    def set_filters(self, filters: Any) -> None:
        """Acceptance filters (python-can ``can_filters`` form), applied before a frame is queued.

        None (or empty) accepts everything. Frames already queued that the new filters reject
        are dropped, so nothing unwanted is returned afterwards.
        """
        if not filters:
            compiled = None
        else:
            try:
                compiled = tuple(
                    (int(f["can_id"]), int(f["can_mask"]), None if f.get("extended") is None else bool(f["extended"]))
                    for f in filters
                )
            except (KeyError, TypeError, ValueError) as err:
                raise BusConfigError(
                    f"{self.channel.name}/{self.node}: expected filters like "
                    f"[{{'can_id': 0x100, 'can_mask': 0x7F0}}], but got {filters!r}"
                ) from err
        with self.clock.lock:
            self._filters = compiled
            self.channel._routes.clear()
            if compiled is not None:
                kept = [m for m in self._rx if self.accepts(m.arbitration_id, m.is_extended_id)]
                self._rx.clear()
                self._rx.extend(kept)

    def accepts(self, arbitration_id: int, is_extended_id: bool) -> bool:
        """True when the acceptance filters let a frame with this id through."""
        filters = self._filters
        if filters is None:
            return True
        for can_id, can_mask, extended in filters:
            if (extended is None or extended == is_extended_id) and not (can_id ^ arbitration_id) & can_mask:
                return True
        return False

    def _deliver_checked(self, msg: can.Message) -> None:
        if self._filters is None or self.accepts(msg.arbitration_id, msg.is_extended_id):
            self._deliver(msg)

    def _deliver(self, msg: can.Message) -> None:
        if self._sink is not None:
            self._sink.add_message(msg)
            return
        callback = self.on_frame
        if callback is not None:
            try:
                callback(msg)
            except Exception:  # a broken consumer must not stop the bus for everyone
                self.callback_errors += 1
                LOG.exception("%s/%s: on_frame callback failed", self.channel.name, self._node.name)
            return
        rx = self._rx
        if self.rx_queue_size and len(rx) >= self.rx_queue_size:
            rx.popleft()
            self._node.rx_overflow += 1
        rx.append(msg)


class Channel:
    """One timed CAN bus. Usually opened by name through :func:`open_channel`."""

    def __init__(
        self,
        name: str,
        *,
        bitrate: int = 500_000,
        data_bitrate: int | None = None,
        fd: bool | None = None,
        clock: Clock | str | None = None,
        seed: int = 0,
        require_ack: bool = True,
        auto_recovery: bool = True,
    ) -> None:
        if not isinstance(bitrate, int) or isinstance(bitrate, bool) or not 1_000 <= bitrate <= 1_000_000:
            raise BusConfigError(f"channel {name!r}: expected a nominal bitrate of 1000..1000000 bit/s, but got {bitrate!r}")
        if fd is None:
            fd = data_bitrate is not None
        if data_bitrate is not None and not fd:
            raise BusConfigError(f"channel {name!r}: expected fd=True with a data_bitrate, but got fd=False")
        if fd and data_bitrate is None:
            data_bitrate = bitrate
        if data_bitrate is not None and (
            not isinstance(data_bitrate, int) or isinstance(data_bitrate, bool) or not bitrate <= data_bitrate <= 15_000_000
        ):
            raise BusConfigError(
                f"channel {name!r}: expected a data bitrate of {bitrate}..15000000 bit/s, but got {data_bitrate!r}"
            )
        try:
            self.clock = make_clock(clock)
        except ValueError as err:
            raise BusConfigError(f"channel {name!r}: {err}") from err
        self.name = name
        self.bitrate = bitrate
        self.data_bitrate = data_bitrate
        self.fd = bool(fd)
        self.seed = int(seed)
        self.require_ack = require_ack
        self.auto_recovery = auto_recovery
        self.bit_ps = round(PS_PER_S / bitrate)
        self.data_bit_ps = round(PS_PER_S / data_bitrate) if data_bitrate else self.bit_ps
        self._tail_ps = RECESSIVE_TAIL_BITS * self.bit_ps
        self.faults = FaultSet(self.seed)
        self._nodes: dict[str, _Node] = {}
        self._endpoints: list[Endpoint] = []
        self._node_serial = itertools.count()
        self._tx_serial = itertools.count(1)
        self._anon = itertools.count(1)
        self._pending: dict[_Node, None] = {}
        self._routes: dict[int, tuple[Endpoint, ...]] = {}
        self._rec_nodes: set[_Node] = set()
        self._bus_off_nodes: set[_Node] = set()
        self._ok_total = 0
        self._busy = False
        self._arb_handle: TimerHandle | None = None
        self._recovering: list[_Node] = []
        self._frame_observers: list[FrameObserver] = []
        self._event_observers: list[EventObserver] = []
        self.recent_events: deque[BusEvent] = deque(maxlen=4096)
        self.observer_errors = 0
        self._refs = 0
        self._closed = False
        self._babble_handles: list[TimerHandle] = []
        self.reset_stats()
        self.clock.attach()

    def __repr__(self) -> str:
        rates = f"{self.bitrate}/{self.data_bitrate}" if self.fd else f"{self.bitrate}"
        return f"Channel({self.name!r}, {rates} bit/s, nodes={list(self._nodes)})"

    # -- lifetime ---------------------------------------------------------------------------

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the reference taken by :func:`open_channel`; the channel goes with the last one."""
        _release(self)

    def _shutdown(self) -> None:
        """Really close: cancel scheduled work, release the clock (registry lock held)."""
        with self.clock.lock:
            if self._closed:
                return
            self._closed = True
            if self._arb_handle is not None and self._arb_handle is not _DEFERRED:
                self._arb_handle.cancel()
            for handle in self._babble_handles:
                handle.cancel()
            for node in self._nodes.values():
                if node.recovery is not None and node.recovery.handle is not None:
                    node.recovery.handle.cancel()
                if node.reorder_handle is not None:
                    node.reorder_handle.cancel()
        self.clock.detach()

    @property
    def closed(self) -> bool:
        """True once the last user has left."""
        return self._closed

    # -- attachment -------------------------------------------------------------------------

    def attach(
        self,
        node: str | None = None,
        *,
        receive_own_messages: bool = False,
        fd: bool | None = None,
        error_frames: bool = True,
        rx_queue_size: int = 0,
        tx_queue_size: int = 256,
        tx_order: str | None = None,
        listen_only: bool | None = None,
        on_frame: Callable[[can.Message], None] | None = None,
    ) -> Endpoint:
        """Attach an endpoint as (part of) node ``node`` (a fresh node when None).

        ``fd`` (default: the channel's) lets the endpoint send and receive CAN FD frames;
        ``error_frames`` delivers error frames (SocketCAN layout) to it; a non-zero
        ``rx_queue_size`` bounds the receive queue (the oldest frame goes, counted as
        ``rx_overflow``); ``tx_queue_size`` bounds the frames waiting to be sent (0: no bound);
        ``tx_order`` (``"fifo"``/``"priority"``, default: the node's, fifo for a new node) and
        ``listen_only`` (default: the node's) set the node.
        """
        if fd is None:
            fd = self.fd
        if fd and not self.fd:
            raise BusConfigError(f"channel {self.name!r}: expected a CAN FD channel for an fd endpoint, but it is classic CAN")
        if tx_order not in (None, "fifo", "priority"):
            raise BusConfigError(f"channel {self.name!r}: expected tx_order 'fifo' or 'priority', but got {tx_order!r}")
        if rx_queue_size < 0 or tx_queue_size < 0:
            raise BusConfigError(f"channel {self.name!r}: expected queue sizes >= 0, but got rx {rx_queue_size}, tx {tx_queue_size}")
        with _REGISTRY_LOCK, self.clock.lock:
            if self._closed:
                raise BusConfigError(f"channel {self.name!r} is closed; expected an open channel")
            if node is None:
                node = f"node{next(self._anon)}"
                while node in self._nodes:
                    node = f"node{next(self._anon)}"
            n = self._nodes.get(node)
            if n is None or n.phantom:
                n = self._add_node(node, tx_order == "priority", existing=n)
                if listen_only:
                    n.listen_only = True
            else:
                if tx_order is not None and n.priority_order != (tx_order == "priority"):
                    if n.has_pending():
                        raise BusConfigError(
                            f"channel {self.name!r}, node {node!r}: expected no change of tx_order while frames "
                            f"wait, but got {tx_order!r}"
                        )
                    n.priority_order = tx_order == "priority"
                if listen_only is not None:
                    n.listen_only = listen_only
            endpoint = Endpoint(
                self, n, receive_own_messages=receive_own_messages, fd=fd, error_frames=error_frames,
                rx_queue_size=rx_queue_size, tx_queue_size=tx_queue_size, on_frame=on_frame,
            )
            n.endpoints.append(endpoint)
            self._endpoints.append(endpoint)
            self._routes.clear()
            self._refs += 1
        return endpoint

    def _add_node(self, name: str, priority_order: bool, existing: _Node | None = None, phantom: bool = False) -> _Node:
        if existing is not None:
            existing.phantom = phantom
            existing.priority_order = priority_order
            return existing
        node = _Node(name, next(self._node_serial), priority_order, phantom=phantom)
        node.rx_base = self._ok_total
        self._nodes[name] = node
        return node

    def _detach(self, endpoint: Endpoint) -> None:
        with _REGISTRY_LOCK:
            with self.clock.lock:
                if endpoint not in self._endpoints:
                    return
                self._endpoints.remove(endpoint)
                self._routes.clear()
                node = endpoint._node
                node.endpoints.remove(endpoint)
                self._flush_endpoint(endpoint)
                if not node.endpoints and node.babble_tx is None:
                    for tx in node.drain():
                        node.aborted += 1
                    self._pending.pop(node, None)
                    if node.recovery is not None and node.recovery.handle is not None:
                        node.recovery.handle.cancel()
                    if node in self._recovering:
                        self._recovering.remove(node)
                    self._rec_nodes.discard(node)
                    self._bus_off_nodes.discard(node)
                    del self._nodes[node.name]
            _release(self)

    def nodes(self) -> list[str]:
        """Names of the nodes on the channel, in attach order."""
        with self.clock.lock:
            return list(self._nodes)

    def endpoints(self) -> list[Endpoint]:
        """The attached endpoints, in attach order."""
        with self.clock.lock:
            return list(self._endpoints)

    # -- observers ----------------------------------------------------------------------------

    def add_frame_observer(self, fn: FrameObserver) -> Callable[[], None]:
        """Call ``fn(WireFrame)`` for every transmission on the wire; returns an unsubscribe.

        Runs on the clock's thread/driver after the frame's receivers got it; must not block.
        """
        return self._subscribe(self._frame_observers, fn)

    def add_event_observer(self, fn: EventObserver) -> Callable[[], None]:
        """Call ``fn(BusEvent)`` for every bus event; returns an unsubscribe."""
        return self._subscribe(self._event_observers, fn)

    def _subscribe(self, observers: list[Any], fn: Any) -> Callable[[], None]:
        with self.clock.lock:
            observers.append(fn)

        def remove() -> None:
            with self.clock.lock:
                if fn in observers:
                    observers.remove(fn)

        return remove

    def _event(self, code: str, node: str = "", arbitration_id: int | None = None, **detail: Any) -> None:
        event = BusEvent(self.clock.now_ps(), code, self.name, node, arbitration_id, detail)
        self.recent_events.append(event)
        for fn in list(self._event_observers):
            self._call_observer(fn, event)

    def _call_observer(self, fn: Callable[[Any], None], item: Any) -> None:
        try:
            fn(item)
        except Exception:  # an observer's bug must not stop the bus
            self.observer_errors += 1
            LOG.exception("channel %s: observer %r failed", self.name, fn)

    # -- faults -------------------------------------------------------------------------------

    def add_fault(self, rule: FaultRule | Mapping[str, Any]) -> FaultRule:
        """Add a fault rule (a :class:`FaultRule` or a plain dict); returns the rule."""
        with self.clock.lock:
            rule = self.faults.add(rule)
            if rule.action == "babble":
                self._schedule_babble(rule)
            elif rule.action == "cut_off":
                self._schedule_cut_off(rule)
            return rule

    def remove_fault(self, rule: FaultRule) -> None:
        """Remove a fault rule; a babble in progress stops."""
        with self.clock.lock:
            self.faults.remove(rule)
            if rule.action == "babble":
                self._stop_babble(rule)

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        with self.clock.lock:
            for rule in list(self.faults.rules):
                self.remove_fault(rule)

    def _schedule_cut_off(self, rule: FaultRule) -> None:
        t0_ps = round(rule.t0_s * PS_PER_S)
        self.clock.call_at_ps(t0_ps, self._cut_off_starts, rule)
        if rule.t1_s != float("inf"):
            self.clock.call_at_ps(round(rule.t1_s * PS_PER_S), self._cut_off_ends, rule)

    def _cut_off_starts(self, rule: FaultRule) -> None:
        if rule not in self.faults.rules:
            return
        rule.applied += 1
        self._event("fault.cut_off", rule.node or "", rule=rule.name, phase="start")
        node = self._nodes.get(rule.node or "")
        if node is not None:
            self._discard_queue(node, rule)

    def _cut_off_ends(self, rule: FaultRule) -> None:
        if rule in self.faults.rules:
            self._event("fault.cut_off", rule.node or "", rule=rule.name, phase="end")

    def _discard_queue(self, node: _Node, rule: FaultRule) -> None:
        for tx in node.drain():
            node.fault_dropped += 1
            self._tx_done(tx)
        self._pending.pop(node, None)

    def _schedule_babble(self, rule: FaultRule) -> None:
        self._babble_handles.append(self.clock.call_at_ps(round(rule.t0_s * PS_PER_S), self._babble_next, rule))
        if rule.t1_s != float("inf"):
            self._babble_handles.append(self.clock.call_at_ps(round(rule.t1_s * PS_PER_S), self._stop_babble, rule))

    def _babble_next(self, rule: FaultRule) -> None:
        if rule not in self.faults.rules or not rule.in_window(self.clock.now()):
            return
        if rule.max_count is not None and rule.applied >= rule.max_count:
            return
        name = rule.node or ""
        node = self._nodes.get(name)
        if node is None:
            node = self._add_node(name, False, phantom=True)
        if node.babble_tx is not None:
            return
        if rule.applied == 0:
            self._event("fault.babble", name, rule.id, rule=rule.name, phase="start")
        data = bytes(rule.data)
        is_fd = rule.is_fd and self.fd
        if is_fd:
            data = data + bytes(fd_padded_length(len(data)) - len(data))
        is_ext = bool(rule.extended) or (rule.id or 0) > 0x7FF
        tx = _Tx(rule.id or 0, is_ext, False, is_fd, is_fd and self.data_bitrate != self.bitrate, False, len(data), data, None)
        tx.counted = False
        tx.babble = rule
        tx.seq = next(self._tx_serial)
        tx.t_enq_ps = self.clock.now_ps()
        rule.applied += 1
        node.babble_tx = tx
        self._pending[node] = None
        self._kick()

    def _stop_babble(self, rule: FaultRule) -> None:
        node = self._nodes.get(rule.node or "")
        if node is not None and node.babble_tx is not None and node.babble_tx.babble is rule:
            node.babble_tx = None
            if not node.has_pending():
                self._pending.pop(node, None)
        self._event("fault.babble", rule.node or "", rule.id, rule=rule.name, phase="end", frames=rule.applied)
        if node is not None and node.phantom and not node.has_pending():
            self._nodes.pop(node.name, None)

    # -- sending ------------------------------------------------------------------------------

    def _make_tx(self, msg: can.Message, endpoint: Endpoint) -> _Tx:
        """Validate a python-can message and turn it into a controller frame."""
        try:
            if msg.is_error_frame:
                raise InvalidFrameError(f"{self.name}/{endpoint.node}: expected a data or remote frame, but got an error frame")
            arbitration_id = int(msg.arbitration_id)
            is_ext = bool(msg.is_extended_id)
            limit = 0x1FFFFFFF if is_ext else 0x7FF
            if not 0 <= arbitration_id <= limit:
                kind = "29-bit" if is_ext else "11-bit"
                raise InvalidFrameError(f"{self.name}/{endpoint.node}: expected a {kind} id, but got 0x{arbitration_id:X}")
            data = bytes(msg.data or b"")
            if msg.is_fd:
                if not (self.fd and endpoint.fd):
                    raise InvalidFrameError(f"{self.name}/{endpoint.node}: expected a classic frame on this classic CAN endpoint, but got CAN FD")
                if msg.is_remote_frame:
                    raise InvalidFrameError(f"{self.name}/{endpoint.node}: expected a data frame for CAN FD, but got a remote frame")
                if len(data) > 64:
                    raise InvalidFrameError(f"{self.name}/{endpoint.node}: expected at most 64 data bytes, but got {len(data)}")
                padded = fd_padded_length(len(data))
                if padded != len(data):  # as a controller does: pad up to the next DLC length
                    data += bytes(padded - len(data))
                brs = bool(msg.bitrate_switch)
                return _Tx(arbitration_id, is_ext, False, True, brs, bool(msg.error_state_indicator), len(data), data, endpoint)
            if msg.bitrate_switch:
                raise InvalidFrameError(f"{self.name}/{endpoint.node}: expected bitrate_switch only on CAN FD frames")
            if msg.is_remote_frame:
                dlc = int(msg.dlc)
                if not 0 <= dlc <= 8:
                    raise InvalidFrameError(f"{self.name}/{endpoint.node}: expected a remote frame DLC 0..8, but got {dlc}")
                return _Tx(arbitration_id, is_ext, True, False, False, False, dlc, b"", endpoint)
            if len(data) > 8:
                raise InvalidFrameError(f"{self.name}/{endpoint.node}: expected at most 8 data bytes in a classic frame, but got {len(data)}")
            return _Tx(arbitration_id, is_ext, False, False, False, False, len(data), data, endpoint)
        except InvalidFrameError as err:
            self._reject(endpoint, err)
            raise
        except (TypeError, ValueError, AttributeError) as err:
            wrapped = InvalidFrameError(f"{self.name}/{endpoint.node}: expected a can.Message, but got {msg!r} ({err})")
            self._reject(endpoint, wrapped)
            raise wrapped from err

    def _make_data_tx(self, arbitration_id: int, data: bytes, is_ext: bool, is_fd: bool, brs: bool,
                      endpoint: Endpoint) -> _Tx:
        """:meth:`_make_tx` for a data frame given as fields (same checks, same messages)."""
        try:
            limit = 0x1FFFFFFF if is_ext else 0x7FF
            if not 0 <= arbitration_id <= limit:
                kind = "29-bit" if is_ext else "11-bit"
                raise InvalidFrameError(f"{self.name}/{endpoint.node}: expected a {kind} id, but got 0x{arbitration_id:X}")
            size = len(data)
            if is_fd:
                if not (self.fd and endpoint.fd):
                    raise InvalidFrameError(f"{self.name}/{endpoint.node}: expected a classic frame on this classic CAN endpoint, but got CAN FD")
                if size > 64:
                    raise InvalidFrameError(f"{self.name}/{endpoint.node}: expected at most 64 data bytes, but got {size}")
                padded = fd_padded_length(size)
                if padded != size:
                    data += bytes(padded - size)
                return _Tx(arbitration_id, is_ext, False, True, brs, False, padded, data, endpoint)
            if brs:
                raise InvalidFrameError(f"{self.name}/{endpoint.node}: expected bitrate_switch only on CAN FD frames")
            if size > 8:
                raise InvalidFrameError(f"{self.name}/{endpoint.node}: expected at most 8 data bytes in a classic frame, but got {size}")
            return _Tx(arbitration_id, is_ext, False, False, False, False, size, data, endpoint)
        except InvalidFrameError as err:
            self._reject(endpoint, err)
            raise

    def _reject(self, endpoint: Endpoint, err: Exception) -> None:
        with self.clock.lock:
            endpoint._node.rejected += 1
            self._event("frame.rejected", endpoint.node, reason=str(err))

    def _submit(self, tx: _Tx) -> None:
        """A frame enters the sender's controller now (lock held)."""
        endpoint = tx.endpoint
        assert endpoint is not None
        node = endpoint._node
        tx.seq = next(self._tx_serial)
        endpoint.tx_pending += 1
        faults = self.faults
        if faults.cut_rules or faults.send_rules or faults.track_payloads:
            self._submit_with_faults(node, tx)
            return
        tx.t_enq_ps = self.clock.now_ps()
        if node.priority_order:
            heapq.heappush(node.prio, (tx.key, tx.seq, tx))
        else:
            node.fifo.append(tx)  # node.push(tx), inlined: once per frame
        self._pending[node] = None
        if not self._busy and self._arb_handle is None:
            self._arb_handle = self.clock.defer(self._arbitrate) or _DEFERRED
        else:
            self._kick()

    def _submit_with_faults(self, node: _Node, tx: _Tx) -> None:
        faults = self.faults
        t_s = self.clock.now()
        cut = faults.is_cut_off(node.name, t_s)
        if cut is not None:
            node.fault_dropped += 1
            self._tx_done(tx)
            self._event("fault.cut_off", node.name, tx.arbitration_id, rule=cut.name, phase="frame")
            return
        original = tx.data
        extra: list[_Tx] = []
        delay_ps = 0
        hold: FaultRule | None = None
        for rule in faults.send_rules:
            if not rule.matches_frame(tx.arbitration_id, tx.is_extended_id, node.name, t_s):
                continue
            if not faults.fires(rule):
                continue
            action = rule.action
            if action == "drop":
                node.fault_dropped += 1
                self._tx_done(tx)
                self._event("fault.drop", node.name, tx.arbitration_id, rule=rule.name)
                self._remember(node, tx, original)
                return
            if action == "delay":
                delay_ps += round(rule.delay_s * PS_PER_S)
                self._event("fault.delay", node.name, tx.arbitration_id, rule=rule.name, delay_s=rule.delay_s)
            elif action == "duplicate":
                extra.extend(tx.copy() for _ in range(rule.copies))
                self._event("fault.duplicate", node.name, tx.arbitration_id, rule=rule.name, copies=rule.copies)
            elif action == "reorder":
                hold = rule
            elif not tx.is_remote_frame:
                before = tx.data
                tx.data = faults.transform_payload(rule, node.name, tx.arbitration_id, before)
                self._event(
                    f"fault.{action}", node.name, tx.arbitration_id, rule=rule.name,
                    before=before.hex(), after=tx.data.hex(),
                )
        self._remember(node, tx, original)
        for twin in extra:
            twin.data = tx.data
            twin.seq = next(self._tx_serial)
        frames = [tx, *extra]
        if delay_ps:
            self.clock.call_at_ps(self.clock.now_ps() + delay_ps, self._enqueue_delayed, node, frames, hold)
            return
        self._enqueue_frames(node, frames, hold)

    def _remember(self, node: _Node, tx: _Tx, original: bytes) -> None:
        if self.faults.track_payloads and not tx.is_remote_frame:
            # What the sender's application produced: a stuck/frozen sender goes back to it.
            self.faults.last_payload[(node.name, tx.arbitration_id)] = original

    def _enqueue_delayed(self, node: _Node, frames: list[_Tx], hold: FaultRule | None) -> None:
        if self._nodes.get(node.name) is not node:
            for tx in frames:
                self._tx_done(tx)
            return
        self._enqueue_frames(node, frames, hold)

    def _enqueue_frames(self, node: _Node, frames: list[_Tx], hold: FaultRule | None) -> None:
        held = node.reorder_held
        if hold is not None and held is None:
            node.reorder_held = frames[0]
            node.reorder_handle = self.clock.call_at_ps(
                self.clock.now_ps() + round(hold.max_hold_s * PS_PER_S), self._release_held, node
            )
            self._event("fault.reorder", node.name, frames[0].arbitration_id, rule=hold.name, phase="hold")
            frames = frames[1:]
        for tx in frames:
            self._enqueue(node, tx)
        if held is not None and frames:
            # The held frame goes right after the next one: the two swap places.
            node.reorder_held = None
            if node.reorder_handle is not None:
                node.reorder_handle.cancel()
                node.reorder_handle = None
            self._enqueue(node, held)
            self._event("fault.reorder", node.name, held.arbitration_id, phase="release", after=frames[0].arbitration_id)

    def _release_held(self, node: _Node) -> None:
        held = node.reorder_held
        node.reorder_held = None
        node.reorder_handle = None
        if held is None:
            return
        if self._nodes.get(node.name) is not node:  # the node left meanwhile
            self._tx_done(held)
            return
        self._event("fault.reorder", node.name, held.arbitration_id, phase="timeout")
        self._enqueue(node, held)

    def _enqueue(self, node: _Node, tx: _Tx) -> None:
        tx.t_enq_ps = self.clock.now_ps()
        node.push(tx)
        self._pending[node] = None
        self._kick()

    def _kick(self) -> None:
        """Make sure an idle bus arbitrates now (not later: a suspended node may have asked)."""
        if self._busy:
            return
        handle = self._arb_handle
        if handle is not None:
            if handle is _DEFERRED:
                return
            if handle.t_ps <= self.clock.now_ps() and not handle.cancelled:
                return
            handle.cancel()
        # After every other event due now: frames queued at this instant by anyone compete.
        self._arb_handle = self.clock.defer(self._arbitrate) or _DEFERRED

    def _tx_done(self, tx: _Tx) -> None:
        """A frame leaves the controller (sent, dropped or aborted): free its queue slot."""
        endpoint = tx.endpoint
        if tx.counted and endpoint is not None:
            tx.counted = False
            endpoint.tx_pending -= 1
            if endpoint.tx_pending == endpoint.tx_queue_size - 1:
                self.clock.notify_waiters()

    def _flush_endpoint(self, endpoint: Endpoint) -> int:
        node = endpoint._node
        kept: list[_Tx] = []
        dropped = 0
        for tx in node.drain():
            if tx.endpoint is endpoint and tx.babble is None:
                dropped += 1
                node.aborted += 1
                self._tx_done(tx)
            else:
                kept.append(tx)
        if node.reorder_held is not None and node.reorder_held.endpoint is endpoint:
            self._tx_done(node.reorder_held)
            node.reorder_held = None
            dropped += 1
        for tx in kept:
            if tx.babble is not None:
                node.babble_tx = tx
            else:
                node.push(tx)
        if not node.has_pending():
            self._pending.pop(node, None)
        return dropped

    # -- the wire -----------------------------------------------------------------------------

    def _arbitrate(self) -> None:
        """The bus is idle: the head frames of all nodes compete (clock event, lock held)."""
        self._arb_handle = None
        if self._busy or self._closed:
            return
        now = self.clock.now_ps()
        cut_rules = self.faults.cut_rules
        pending = self._pending
        if _FAST_PATHS and len(pending) == 1 and not cut_rules:
            # One node with frames: no contest (the loop below with a single entry).
            for node in pending:
                if node.babble_tx is None and not node.priority_order:
                    fifo = node.fifo
                    head = fifo[0] if fifo else None  # node.head() of a FIFO controller
                else:
                    head = node.head()
                if head is None:
                    del pending[node]
                    return
                ready_ps = node.suspend_until_ps if node.suspend_until_ps > head.t_enq_ps else head.t_enq_ps
                if ready_ps > now:
                    self._arb_handle = self.clock._push(ready_ps, PRIO_ARBITRATION, self._arbitrate, ())
                    return
                self._start(node, now)
                return
        best_node: _Node | None = None
        best: _Tx | None = None
        contenders = 0
        resume_ps: int | None = None
        for node in list(self._pending):
            head = node.head()
            if head is None:
                del self._pending[node]
                continue
            if cut_rules:
                cut = self.faults.is_cut_off(node.name, now / PS_PER_S)
                if cut is not None:
                    self._discard_queue(node, cut)
                    continue
            # Not yet allowed to start: an error-passive node suspending its transmission, or
            # (real-time clock running late) a frame queued after the instant being simulated.
            ready_ps = node.suspend_until_ps if node.suspend_until_ps > head.t_enq_ps else head.t_enq_ps
            if ready_ps > now:
                if resume_ps is None or ready_ps < resume_ps:
                    resume_ps = ready_ps
                continue
            contenders += 1
            if best is None or head.key < best.key or (head.key == best.key and node.index < best_node.index):  # type: ignore[union-attr]
                best_node, best = node, head
        if best_node is None or best is None:
            if resume_ps is not None:
                self._arb_handle = self.clock._push(resume_ps, PRIO_ARBITRATION, self._arbitrate, ())
            return
        if contenders > 1:
            for node in self._pending:
                head = node.head()
                if node is not best_node and head is not None and max(node.suspend_until_ps, head.t_enq_ps) <= now:
                    node.arbitration_lost += 1
        self._start(best_node, now)

    def _start(self, node: _Node, now: int) -> None:
        fifo = node.fifo
        if _FAST_PATHS and node.babble_tx is None and not node.priority_order and fifo:
            tx = fifo.popleft()  # pop_head() of a FIFO controller
            if not fifo and not node.prio:
                self._pending.pop(node, None)
        else:
            tx = node.pop_head()
            if not node.has_pending():
                self._pending.pop(node, None)
        if self._recovering:
            self._recessive_run_ends(now)
        esi = tx.esi or (tx.is_fd and node.counters.state == ERROR_PASSIVE)
        n_nom, n_data = bit_counts(
            tx.arbitration_id, tx.is_extended_id, tx.is_remote_frame, tx.is_fd, tx.brs and tx.is_fd, esi, tx.dlc, tx.data
        )
        outcome = _OK
        wire_rule: FaultRule | None = None
        if self.faults.wire_rules:
            wire_rule = self._wire_fault(node, tx, now)
            if wire_rule is not None:
                outcome = _WIRE_ERROR
        if outcome == _OK and self.require_ack and not self._someone_acks(node, now):
            outcome = _ACK_ERROR
        if outcome == _OK:
            att_nom, att_data = n_nom, n_data
        elif outcome == _ACK_ERROR:
            # No dominant ACK slot: the sender flags from the ACK delimiter on.
            att_nom, att_data = n_nom - AFTER_ACK_SLOT_BITS + ERROR_FRAME_BITS, n_data
        else:
            upto_nom, att_data = _bits_through_data_field(tx, esi)
            att_nom = upto_nom + ERROR_FRAME_BITS
        self._busy = True
        t_end = now + att_nom * self.bit_ps + att_data * self.data_bit_ps
        clock = self.clock
        if _FAST_PATHS and clock._jump_to(t_end):
            # Nothing else happens before this frame ends: end it now (time is t_end).
            if outcome == _OK and tx.babble is None:
                # _end_of_frame of a good frame, inlined (most frames): the same steps.
                self._busy = False
                self._busy_ps += t_end - now
                self._nominal_bits += att_nom
                self._data_bits += att_data
                node.tx_bits += att_nom + att_data
                self._frames += 1
                self._frame_ok(node, tx, now, t_end, att_nom, att_data, esi)
                if node.counters.state == ERROR_PASSIVE:
                    node.suspend_until_ps = t_end + 8 * self.bit_ps
                if self._recovering:
                    self._recessive_run_starts(t_end)
                if self._pending:
                    self._kick()
            else:
                self._end_of_frame(node, tx, outcome, now, att_nom, att_data, esi, wire_rule)
        else:
            clock._push(t_end, PRIO_EVENT, self._end_of_frame, (node, tx, outcome, now, att_nom, att_data, esi, wire_rule))

    def _wire_fault(self, node: _Node, tx: _Tx, now: int) -> FaultRule | None:
        faults = self.faults
        t_s = now / PS_PER_S
        for rule in faults.wire_rules:
            if rule.matches_frame(tx.arbitration_id, tx.is_extended_id, node.name, t_s) and faults.fires(rule):
                return rule
        return None

    def _someone_acks(self, sender: _Node, now: int) -> bool:
        cut_rules = self.faults.cut_rules
        for node in self._nodes.values():
            if node is sender or node.listen_only or node.counters.bus_off:
                continue
            if cut_rules and self.faults.is_cut_off(node.name, now / PS_PER_S) is not None:
                continue
            return True
        return False

    def _end_of_frame(
        self,
        node: _Node,
        tx: _Tx,
        outcome: int,
        t_start: int,
        n_nom: int,
        n_data: int,
        esi: bool,
        wire_rule: FaultRule | None,
    ) -> None:
        now = self.clock.now_ps()
        self._busy = False
        self._busy_ps += now - t_start
        self._nominal_bits += n_nom
        self._data_bits += n_data
        node.tx_bits += n_nom + n_data
        if outcome == _OK:
            self._frames += 1
            self._frame_ok(node, tx, t_start, now, n_nom, n_data, esi)
        else:
            self._error_frames += 1
            self._frame_failed(node, tx, outcome, t_start, now, n_nom, n_data, esi, wire_rule)
        if node.counters.state == ERROR_PASSIVE:
            node.suspend_until_ps = now + 8 * self.bit_ps
        if self._recovering:
            self._recessive_run_starts(now)
        if tx.babble is not None and outcome == _OK:
            rule = tx.babble
            if rule.period_s is None:
                self._babble_next(rule)
            else:
                due = tx.t_enq_ps + round(rule.period_s * PS_PER_S)
                self._babble_handles.append(self.clock.call_at_ps(due, self._babble_next, rule))
        if self._pending:
            self._kick()

    def _frame_ok(self, node: _Node, tx: _Tx, t_start: int, now: int, n_nom: int, n_data: int, esi: bool) -> None:
        node.tx_frames += 1
        counters = node.counters
        if counters.tec:
            before = counters.state
            counters.transmit_ok()
            if counters.state != before:
                self._state_changed(node, before)
        if tx.counted:
            endpoint = tx.endpoint
            if _FAST_PATHS and endpoint is not None:
                # _tx_done(tx), inlined (every frame of a rig node takes it)
                tx.counted = False
                endpoint.tx_pending -= 1
                if endpoint.tx_pending == endpoint.tx_queue_size - 1:
                    self.clock.notify_waiters()
            else:
                self._tx_done(tx)
        self._ok_total += 1
        ts = now / PS_PER_S
        can_id = tx.arbitration_id
        is_ext = tx.is_extended_id
        is_fd = tx.is_fd
        excluded: set[_Node] | None = None
        if self._bus_off_nodes or self.faults.cut_rules or self.faults.rx_rules:
            excluded = self._not_receiving(node, tx, ts)
        if self._rec_nodes:
            for other in list(self._rec_nodes):
                if other is node or other.listen_only or (excluded is not None and other in excluded):
                    continue
                counters = other.counters
                before = counters.state
                counters.receive_ok()
                if not counters.rec:
                    self._rec_nodes.discard(other)
                if counters.state != before:
                    self._state_changed(other, before)
        route_key = can_id | (is_ext << 29) | (is_fd << 30)
        routes = self._routes.get(route_key)
        if routes is None:
            routes = self._route(route_key, can_id, is_ext, is_fd)
        if routes:
            name = self.name
            origin = tx.endpoint
            remote = tx.is_remote_frame
            brs = tx.brs
            dlc = tx.dlc
            data = tx.data
            ident = -1
            for endpoint in routes:
                receiver = endpoint._node
                if receiver is node:
                    if endpoint is origin and not endpoint.receive_own_messages:
                        continue
                    is_rx = False
                elif excluded is None or receiver not in excluded:
                    is_rx = True
                else:
                    continue
                sink = endpoint._sink
                if sink is not None:
                    if ident < 0:
                        ident = can_id | (_EFF if is_ext else 0) | (_RTR if remote else 0)
                    sink.add(ts, ident, b"" if remote else data)
                elif endpoint._on_data is not None and not remote and _FAST_PATHS:
                    try:
                        endpoint._on_data(can_id, data)
                    except Exception:  # as in Endpoint._deliver: a broken consumer must not stop the bus
                        endpoint.callback_errors += 1
                        LOG.exception("%s/%s: on_frame callback failed", name, receiver.name)
                else:
                    # Other sockets of the sending controller see the frame as local (is_rx
                    # False), as SocketCAN's loopback does.
                    endpoint._deliver(_message(ts, can_id, is_ext, remote, is_fd, brs, esi, dlc, data, name, is_rx))
        clock = self.clock
        if clock._n_waiters:
            clock.notify_waiters()
        if self._frame_observers:
            wire = WireFrame(
                t_start, now, node.name, tx.arbitration_id, tx.is_extended_id, tx.is_remote_frame, tx.is_fd,
                tx.brs, esi, tx.dlc, tx.data, n_nom, n_data,
            )
            for fn in list(self._frame_observers):
                self._call_observer(fn, wire)

    def _route(self, key: int, can_id: int, is_ext: bool, is_fd: bool) -> tuple[Endpoint, ...]:
        """The endpoints a frame with this id reaches (format and acceptance filters), cached."""
        routes = tuple(
            ep for ep in self._endpoints if (ep.fd or not is_fd) and ep.accepts(can_id, is_ext)
        )
        if len(self._routes) >= 1 << 16:
            self._routes.clear()
        self._routes[key] = routes
        return routes

    def _not_receiving(self, sender: _Node, tx: _Tx, t_s: float) -> set[_Node]:
        """Nodes that miss this frame: bus-off, cut off, or losing it to a receiver drop rule."""
        faults = self.faults
        out: set[_Node] = set()
        for other in self._nodes.values():
            if other is sender:
                continue
            if other.counters.bus_off or (faults.cut_rules and faults.is_cut_off(other.name, t_s) is not None):
                out.add(other)
                other.missed += 1
                continue
            if faults.rx_rules:
                rule = faults.rx_dropped(other.name, tx.arbitration_id, tx.is_extended_id, sender.name, t_s)
                if rule is not None:
                    out.add(other)
                    other.missed += 1
                    other.fault_dropped += 1
                    self._event("fault.drop", other.name, tx.arbitration_id, rule=rule.name, sender=sender.name)
        return out

    def _frame_failed(
        self,
        node: _Node,
        tx: _Tx,
        outcome: int,
        t_start: int,
        now: int,
        n_nom: int,
        n_data: int,
        esi: bool,
        wire_rule: FaultRule | None,
    ) -> None:
        ack_error = outcome == _ACK_ERROR
        kind = "ack" if ack_error else "bit"
        node.tx_errors += 1
        states: dict[_Node, str] = {node: node.counters.state}
        node.counters.transmit_error(ack_error=ack_error)
        cut_rules = self.faults.cut_rules
        t_s = now / PS_PER_S
        seeing: list[_Node] = []
        for other in self._nodes.values():
            if other is node or other.counters.bus_off:
                continue
            if cut_rules and self.faults.is_cut_off(other.name, t_s) is not None:
                continue
            seeing.append(other)
            if not ack_error and not other.listen_only:
                states[other] = other.counters.state
                other.rx_errors += 1
                other.counters.receive_error()
                self._rec_nodes.add(other)
        if wire_rule is not None:
            self._event("fault.corrupt_wire", node.name, tx.arbitration_id, rule=wire_rule.name, tec=node.counters.tec)
        self._event("frame.error", node.name, tx.arbitration_id, error=kind, tec=node.counters.tec)
        went_bus_off = node.counters.bus_off
        if went_bus_off:
            node.aborted += 1
            self._tx_done(tx)
        else:
            node.retransmissions += 1
            node.reinstate(tx)
            self._pending[node] = None
        # Error frames to every endpoint that saw it, with its own node's counters.
        for other in [node, *seeing]:
            for endpoint in other.endpoints:
                if endpoint.error_frames:
                    endpoint._deliver_checked(self._error_message(other, now, kind, other is node))
        for other, before in states.items():
            if other.counters.state != before:
                self._state_changed(other, before)
        self.clock.notify_waiters()
        if self._frame_observers:
            wire = WireFrame(
                t_start, now, node.name, tx.arbitration_id, tx.is_extended_id, tx.is_remote_frame, tx.is_fd,
                tx.brs, esi, tx.dlc, tx.data, n_nom, n_data, True, kind,
            )
            for fn in list(self._frame_observers):
                self._call_observer(fn, wire)

    def _error_message(self, node: _Node, now: int, kind: str, transmitter: bool) -> can.Message:
        counters = node.counters
        can_id = CAN_ERR_PROT | CAN_ERR_BUSERROR | CAN_ERR_CNT
        data = bytearray(8)
        if kind == "ack":
            can_id |= CAN_ERR_ACK
            data[3] = CAN_ERR_PROT_LOC_ACK
        else:
            data[2] = CAN_ERR_PROT_BIT | (CAN_ERR_PROT_TX if transmitter else 0)
            data[3] = CAN_ERR_PROT_LOC_DATA
        data[1] = _crtl_flags(counters)
        if data[1]:
            can_id |= CAN_ERR_CRTL
        if counters.bus_off:
            can_id |= CAN_ERR_BUSOFF
        data[6] = min(counters.tec, 255)
        data[7] = min(counters.rec, 255)
        return can.Message(
            timestamp=now / PS_PER_S, arbitration_id=can_id, is_extended_id=False, is_error_frame=True,
            dlc=8, data=data, channel=self.name, is_rx=True,
        )

    def _state_message(self, node: _Node, can_id: int) -> can.Message:
        counters = node.counters
        data = bytearray(8)
        data[1] = _crtl_flags(counters) or CAN_ERR_CRTL_ACTIVE
        data[6] = min(counters.tec, 255)
        data[7] = min(counters.rec, 255)
        return can.Message(
            timestamp=self.clock.now(), arbitration_id=can_id | CAN_ERR_CNT, is_extended_id=False,
            is_error_frame=True, dlc=8, data=data, channel=self.name, is_rx=True,
        )

    def _state_changed(self, node: _Node, before: str) -> None:
        state = node.counters.state
        counters = node.counters
        if state == BUS_OFF:
            self._bus_off_nodes.add(node)
            self._rec_nodes.discard(node)
            node.bus_off_count += 1
            for tx in node.drain():
                node.aborted += 1
                self._tx_done(tx)
            self._pending.pop(node, None)
            self._event("node.bus_off", node.name, tec=counters.tec, rec=counters.rec)
            if self.auto_recovery if node.auto_recovery is None else node.auto_recovery:
                self._begin_recovery(node, after_error_frame=True)
            return
        code = "node.error_passive" if state == ERROR_PASSIVE else "node.error_active"
        self._event(code, node.name, tec=counters.tec, rec=counters.rec, was=before)
        if state == ERROR_ACTIVE:
            # Error-frame messages already carry the passive flags; tell the return to active.
            for endpoint in node.endpoints:
                if endpoint.error_frames:
                    endpoint._deliver_checked(self._state_message(node, CAN_ERR_CRTL))

    # -- bus-off recovery ---------------------------------------------------------------------

    def restart_node(self, name: str) -> None:
        """Begin bus-off recovery of node ``name`` (auto_recovery off, or to restart early)."""
        with self.clock.lock:
            node = self._nodes.get(name)
            if node is None:
                raise BusConfigError(f"channel {self.name!r}: expected a node in {list(self._nodes)}, but got {name!r}")
            if node.counters.bus_off and node.recovery is None:
                self._begin_recovery(node)

    def _begin_recovery(self, node: _Node, after_error_frame: bool = False) -> None:
        now = self.clock.now_ps()
        if self._busy:
            start: int | None = None  # counting starts with the recessive tail of this frame
        elif after_error_frame:
            # The error delimiter and intermission that just ended are the first 11
            # recessive bits the node sees after its bus-off error flag.
            start = now - self._tail_ps
        else:
            start = now
        node.recovery = _Recovery(start)
        self._recovering.append(node)
        self._schedule_recovery(node)

    def _schedule_recovery(self, node: _Node) -> None:
        recovery = node.recovery
        assert recovery is not None
        if recovery.handle is not None:
            recovery.handle.cancel()
            recovery.handle = None
        if recovery.run_start_ps is None:
            return
        due = recovery.run_start_ps + (RECOVERY_SEQUENCES - recovery.count) * self._tail_ps
        recovery.handle = self.clock.call_at_ps(due, self._recovered, node)

    def _recessive_run_ends(self, sof_ps: int) -> None:
        for node in self._recovering:
            recovery = node.recovery
            if recovery is None or recovery.run_start_ps is None:
                continue
            recovery.count += (sof_ps - recovery.run_start_ps) // self._tail_ps
            recovery.run_start_ps = None
            if recovery.handle is not None:
                recovery.handle.cancel()
                recovery.handle = None

    def _recessive_run_starts(self, end_ps: int) -> None:
        for node in self._recovering:
            recovery = node.recovery
            if recovery is None or recovery.run_start_ps is not None:
                continue
            recovery.run_start_ps = end_ps - self._tail_ps
            self._schedule_recovery(node)

    def _recovered(self, node: _Node) -> None:
        if node.recovery is None:
            return
        node.recovery = None
        if node in self._recovering:
            self._recovering.remove(node)
        node.counters.reset()
        self._bus_off_nodes.discard(node)
        self._rec_nodes.discard(node)
        node.suspend_until_ps = -1
        self._event("node.recovered", node.name)
        for endpoint in node.endpoints:
            if endpoint.error_frames:
                endpoint._deliver_checked(self._state_message(node, CAN_ERR_RESTARTED))
        self.clock.notify_waiters()

    # -- statistics ---------------------------------------------------------------------------

    def reset_stats(self) -> None:
        """Start the channel counters (frames, bits, load) afresh from now."""
        with self.clock.lock:
            self._stats_since_ps = self.clock.now_ps()
            self._frames = 0
            self._error_frames = 0
            self._nominal_bits = 0
            self._data_bits = 0
            self._busy_ps = 0

    def stats(self) -> ChannelStats:
        """A snapshot of the channel and per-node counters."""
        with self.clock.lock:
            nodes = {
                n.name: NodeStats(
                    name=n.name, state=n.counters.state, tec=n.counters.tec, rec=n.counters.rec,
                    listen_only=n.listen_only, tx_frames=n.tx_frames, tx_bits=n.tx_bits,
                    rx_frames=self._ok_total - n.rx_base - n.tx_frames - n.missed,
                    tx_errors=n.tx_errors, rx_errors=n.rx_errors, arbitration_lost=n.arbitration_lost,
                    retransmissions=n.retransmissions, fault_dropped=n.fault_dropped, aborted=n.aborted,
                    rejected=n.rejected, rx_overflow=n.rx_overflow, bus_off_count=n.bus_off_count,
                    tx_pending=len(n.fifo) + len(n.prio) + (n.babble_tx is not None),
                )
                for n in self._nodes.values()
            }
            return ChannelStats(
                channel=self.name, t_ps=self.clock.now_ps(), since_ps=self._stats_since_ps,
                frames=self._frames, error_frames=self._error_frames, nominal_bits=self._nominal_bits,
                data_bits=self._data_bits, busy_ps=self._busy_ps, nodes=nodes,
            )

    def node_state(self, name: str) -> str:
        """Error state of node ``name``."""
        with self.clock.lock:
            node = self._nodes.get(name)
            if node is None:
                raise BusConfigError(f"channel {self.name!r}: expected a node in {list(self._nodes)}, but got {name!r}")
            return node.counters.state

    def frame_time_s(self, msg: can.Message) -> float:
        """How long ``msg`` occupies this bus (SOF through IFS), in seconds."""
        data = bytes(msg.data or b"")
        if msg.is_fd:
            data += bytes(fd_padded_length(len(data)) - len(data))
        dlc = msg.dlc if msg.is_remote_frame else len(data)
        n_nom, n_data = bit_counts(
            msg.arbitration_id, bool(msg.is_extended_id), bool(msg.is_remote_frame), bool(msg.is_fd),
            bool(msg.is_fd and msg.bitrate_switch), bool(msg.error_state_indicator), dlc,
            b"" if msg.is_remote_frame else data,
        )
        return (n_nom * self.bit_ps + n_data * self.data_bit_ps) / PS_PER_S


def _crtl_flags(counters: ErrorCounters) -> int:
    flags = 0
    if counters.tec >= 128:
        flags |= CAN_ERR_CRTL_TX_PASSIVE
    elif counters.tec >= WARNING_LIMIT:
        flags |= CAN_ERR_CRTL_TX_WARNING
    if counters.rec >= 128:
        flags |= CAN_ERR_CRTL_RX_PASSIVE
    elif counters.rec >= WARNING_LIMIT:
        flags |= CAN_ERR_CRTL_RX_WARNING
    return flags


def _bits_through_data_field(tx: _Tx, esi: bool) -> tuple[int, int]:
    """(nominal, data) bits from SOF through the last data bit (and its stuff bit), exact."""
    built = frame_bits(
        tx.arbitration_id, is_extended_id=tx.is_extended_id, is_remote_frame=tx.is_remote_frame,
        is_fd=tx.is_fd, bitrate_switch=tx.brs and tx.is_fd, error_state_indicator=esi,
        dlc=None if tx.is_fd else tx.dlc, data=tx.data,
    )
    last = max(i for i, f in enumerate(built.fields) if f in ("DATA", "DLC"))
    if last + 1 < len(built.fields) and built.fields[last + 1] == "STUFF":
        last += 1
    phases = built.data_phase[: last + 1]
    n_data = sum(phases)
    return len(phases) - n_data, n_data


# -- registry ---------------------------------------------------------------------------------

_REGISTRY: dict[str, Channel] = {}
_REGISTRY_LOCK = threading.RLock()


def open_channel(
    name: str,
    *,
    bitrate: int | None = None,
    data_bitrate: int | None = None,
    fd: bool | None = None,
    clock: Clock | str | None = None,
    seed: int | None = None,
    require_ack: bool | None = None,
    auto_recovery: bool | None = None,
) -> Channel:
    """The channel called ``name``, created on first use; the caller holds a reference.

    Settings given for an existing channel must match it (:class:`BusConfigError` names the
    first that does not). Release with :meth:`Channel.close` (or use it as a context manager).
    """
    with _REGISTRY_LOCK:
        channel = _lookup_or_create(name, bitrate, data_bitrate, fd, clock, seed, require_ack, auto_recovery)
        channel._refs += 1
        return channel


def _lookup_or_create(
    name: str,
    bitrate: int | None,
    data_bitrate: int | None,
    fd: bool | None,
    clock: Clock | str | None,
    seed: int | None,
    require_ack: bool | None,
    auto_recovery: bool | None,
) -> Channel:
    if not isinstance(name, str) or not name:
        raise BusConfigError(f"expected a channel name (non-empty text), but got {name!r}")
    channel = _REGISTRY.get(name)
    if channel is None:
        channel = Channel(
            name,
            bitrate=500_000 if bitrate is None else bitrate,
            data_bitrate=data_bitrate,
            fd=fd,
            clock=clock,
            seed=0 if seed is None else seed,
            require_ack=True if require_ack is None else require_ack,
            auto_recovery=True if auto_recovery is None else auto_recovery,
        )
        _REGISTRY[name] = channel
        return channel
    mismatch = None
    if bitrate is not None and bitrate != channel.bitrate:
        mismatch = f"bitrate {channel.bitrate}, but got {bitrate}"
    elif data_bitrate is not None and data_bitrate != channel.data_bitrate:
        mismatch = f"data_bitrate {channel.data_bitrate}, but got {data_bitrate}"
    elif fd and not channel.fd:
        mismatch = "classic CAN, but got fd=True"
    elif isinstance(clock, Clock) and clock is not channel.clock:
        mismatch = f"its own clock {channel.clock!r}, but got another {clock!r}"
    elif isinstance(clock, str) and (clock.lower() in ("sim", "simulated")) != channel.clock.is_simulated:
        mismatch = f"clock {channel.clock!r}, but got {clock!r}"
    elif seed is not None and seed != channel.seed:
        mismatch = f"seed {channel.seed}, but got {seed}"
    elif require_ack is not None and require_ack != channel.require_ack:
        mismatch = f"require_ack={channel.require_ack}, but got {require_ack}"
    elif auto_recovery is not None and auto_recovery != channel.auto_recovery:
        mismatch = f"auto_recovery={channel.auto_recovery}, but got {auto_recovery}"
    if mismatch:
        raise BusConfigError(f"channel {name!r} is open with {mismatch}")
    return channel


def _attach_by_name(
    name: str,
    channel_config: Mapping[str, Any],
    endpoint_config: Mapping[str, Any],
) -> Endpoint:
    """Get or create channel ``name`` and attach an endpoint, atomically (for HilBus)."""
    with _REGISTRY_LOCK:
        channel = _lookup_or_create(name, **channel_config)
        try:
            return channel.attach(**endpoint_config)
        except BaseException:
            if channel._refs == 0:
                _release(channel, drop_ref=False)
            raise


def _release(channel: Channel, drop_ref: bool = True) -> None:
    with _REGISTRY_LOCK:
        if drop_ref:
            channel._refs = max(0, channel._refs - 1)
        if channel._refs == 0 and not channel._closed:
            if _REGISTRY.get(channel.name) is channel:
                del _REGISTRY[channel.name]
            channel._shutdown()


def get_channel(name: str) -> Channel | None:
    """The open channel called ``name``, or None."""
    with _REGISTRY_LOCK:
        return _REGISTRY.get(name)


def channel_names() -> list[str]:
    """Names of the open channels."""
    with _REGISTRY_LOCK:
        return list(_REGISTRY)


__all__ = [
    "BusEvent",
    "Channel",
    "ChannelStats",
    "Endpoint",
    "NodeStats",
    "WireFrame",
    "channel_names",
    "get_channel",
    "open_channel",
]
