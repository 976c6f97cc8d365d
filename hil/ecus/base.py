"""Rest-bus simulation: the base class of every simulated Z10 ECU.

A :class:`SimEcu` is one node on its bus (a hilbus endpoint named after the DBC sender). It
sends every DBC message whose sender is that node at the message's ``GenMsgCycleTime`` on bus
time, filling alive counter and CRC (Z10-P1) into safety-relevant frames, encoded with the
project codec. It receives its command messages, checks them like a real ECU does (Z10-P1
receiver: CRC, counter, state machine; acts only in VALID) and turns them into actuator inputs
of the van through a small :class:`VanView` interface, so an ECU never knows the plant model.

Subclasses fill two hooks: :meth:`SimEcu.signals` (values of one message now) and
:meth:`SimEcu.on_command` (a valid command arrived); multiplexed messages use
:meth:`SimEcu.pages`. Everything else (schedule, counters, CRC, faults, supervision) lives here.

ECU faults (:class:`EcuFault`) model the ECU's own software misbehaving and act where the
frame is made: ``silence`` (no frames), ``slow`` (cycle time x ``factor``), ``override``
(a signal sends ``value``), ``counter_freeze`` (alive counter stops, CRC still right) and
``bad_crc`` (CRC byte wrong). Wire and controller faults (drop, corrupt_wire, cut_off, babble,
...) stay with the bus: :meth:`hil.bus.Channel.add_fault`.
"""

from __future__ import annotations

import copy
import logging
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import can
import numpy as np
import numpy.typing as npt

from hil.bus.channel import Channel, Endpoint
from hil.bus.clock import PRIO_EVENT, PS_PER_S, Clock, TimerHandle, seconds_to_ps
from hil.bus.errors import HilBusError
from vehicle_io.codec import BatchEncoder
from vehicle_io.dbc import cycle_time_s
from vehicle_io.e2e import CRC8_INIT, CRC8_XOROUT, COUNTER_MODULO, CheckStatus, E2EReceiver, E2ESpec, SMState, e2e_crc
from vehicle_io.e2e import CRC8_TABLE_INTS as _CRC8_TABLE
from vehicle_io.errors import CodecError, VehicleIoError

LOG = logging.getLogger(__name__)

__all__ = [
    "ECU_FAULT_ACTIONS",
    "BusOffRecovery",
    "EcuConfigError",
    "EcuFault",
    "EcuStats",
    "SimEcu",
    "VanView",
]

#: Every action an :class:`EcuFault` may name.
ECU_FAULT_ACTIONS: tuple[str, ...] = ("silence", "slow", "override", "counter_freeze", "bad_crc")


#: An acceptance filter no Z10 frame passes (the reserved extended id 0x1FFFFFFF).
_ACCEPT_NOTHING = [{"can_id": 0x1FFFFFFF, "can_mask": 0x1FFFFFFF, "extended": True}]


class EcuConfigError(VehicleIoError, ValueError):
    """A simulated ECU, its fault or its plan is not usable as given."""


class VanView(Protocol):
    """What a simulated ECU sees of the van: named physical quantities and actuator inputs.

    Names and units are those of :mod:`hil.plant` (``speed_mps``, ``pack_voltage_v``, ...;
    inputs ``motor_torque_request_nm``, ``gear_request``, ...). :class:`hil.ecus.van.PlantVan`
    adapts :class:`hil.plant.model.Van`; tests may pass any object with these methods.
    """

    n_compartments: int

    def read(self, name: str) -> float:
        """The present value of output ``name``."""

    def param(self, name: str) -> float:
        """A van parameter (e.g. ``brake_pressure_max_bar``)."""

    def command(self, **inputs: float) -> None:
        """Set van inputs (held until changed)."""

    def command_compartment(self, number: int, **inputs: float) -> None:
        """Set inputs of compartment ``number`` (1-based)."""

    def compartment(self, number: int) -> Mapping[str, float]:
        """State of compartment ``number``: door_open, lock_state, weight_kg, temp_c."""

    def cell_voltages_v(self) -> npt.NDArray[np.float64]:
        """Cell voltages as the BMS measures them, index 0 = cell 1."""

    def sensor_temps_c(self) -> npt.NDArray[np.float64]:
        """Cell temperature sensor readings, index 0 = sensor 1."""


@dataclass
class EcuFault:
    """One ECU fault over the window ``[t0_s, t1_s)``, seconds since the ECU started.

    ``message`` limits it to one of the ECU's messages (None: every message; for
    ``override`` the message that carries ``signal``).
    """

    action: str
    message: str | None = None
    signal: str | None = None
    value: float | None = None
    factor: float = 1.0
    t0_s: float = 0.0
    t1_s: float = math.inf
    name: str = ""

    def __post_init__(self) -> None:
        if self.action not in ECU_FAULT_ACTIONS:
            raise EcuConfigError(f"ECU fault: expected an action in {', '.join(ECU_FAULT_ACTIONS)}, but got {self.action!r}")
        if not 0.0 <= self.t0_s <= self.t1_s:
            raise EcuConfigError(f"ECU fault window: expected 0 <= t0_s <= t1_s, but got [{self.t0_s}, {self.t1_s})")
        if self.action == "slow" and not (math.isfinite(self.factor) and self.factor > 0):
            raise EcuConfigError(f"ECU fault 'slow': expected a factor > 0, but got {self.factor!r}")
        if self.action == "override":
            if not self.signal:
                raise EcuConfigError("ECU fault 'override': expected a 'signal', but got none")
            if self.value is None or not math.isfinite(float(self.value)):
                raise EcuConfigError(f"ECU fault 'override': expected a finite 'value', but got {self.value!r}")
        if not self.name:
            target = self.signal or self.message or "all"
            self.name = f"{self.action}@{target}"

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> EcuFault:
        """A fault from plain data (a scenario's TOML table); ``node`` is allowed and ignored."""
        if not isinstance(spec, Mapping):
            raise EcuConfigError(f"ECU fault: expected a table of fields, but got {type(spec).__name__}")
        known = {"action", "message", "signal", "value", "factor", "t0_s", "t1_s", "name", "node"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise EcuConfigError(f"ECU fault: unknown field {unknown[0]!r} (expected one of {', '.join(sorted(known))})")
        kwargs = {k: v for k, v in spec.items() if k != "node"}
        for key in ("value", "factor", "t0_s", "t1_s"):
            if key in kwargs and kwargs[key] is not None:
                try:
                    kwargs[key] = float(kwargs[key])
                except (TypeError, ValueError):
                    raise EcuConfigError(f"ECU fault field {key!r}: expected a number, but got {kwargs[key]!r}") from None
        if "action" not in kwargs:
            raise EcuConfigError("ECU fault: expected an 'action', but got none")
        return cls(**kwargs)

    def active(self, t_s: float) -> bool:
        return self.t0_s <= t_s < self.t1_s


@dataclass
class EcuStats:
    """Counters of one simulated ECU."""

    frames_sent: int = 0  # accepted by the controller
    frames_suppressed: int = 0  # silenced by an ECU fault
    send_refused: int = 0  # the controller refused (bus-off, full queue)
    commands_accepted: int = 0
    commands_rejected: int = 0  # E2E not OK / not VALID, or too short
    commands_lost: int = 0  # supervision timeouts
    commands_ignored: int = 0  # received while normal reception was disabled (UDS 0x28)
    bus_offs: int = 0  # times a controller of this ECU went bus-off
    bus_off_restarts: int = 0  # recoveries its CAN state manager started after the back-off
    sent_by_message: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BusOffRecovery:
    """The ECU's CAN state manager after bus-off, as AUTOSAR CanSM configures it.

    A controller that went bus-off is restarted (ISO 11898-1 recovery: 128 x 11 recessive
    bits) only after a back-off: ``time_l1_s`` for the first ``counter_l1_to_l2`` bus-offs
    in a row, then ``time_l2_s`` (CanSMBorTimeL1 / CanSMBorCounterL1ToL2 / CanSMBorTimeL2).
    A recovery followed by ``time_tx_ensured_s`` without a new bus-off ends the row
    (CanSMBorTimeTxEnsured). AUTOSAR leaves the values to the ECU's configuration; these
    are common supplier settings. Without a back-off a controller with a broken transceiver
    is back after 128 x 11 bits (2.8 ms at 500 kbit/s) and goes bus-off again with its next
    32 frames: a burst of error frames every cycle, which no real ECU produces.
    """

    time_l1_s: float = 0.1
    counter_l1_to_l2: int = 5
    time_l2_s: float = 1.0
    time_tx_ensured_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("time_l1_s", "time_l2_s", "time_tx_ensured_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value < 3600.0):
                raise EcuConfigError(f"BusOffRecovery.{name}: expected 0..3600 s, but got {value!r}")
        if not (isinstance(self.counter_l1_to_l2, int) and self.counter_l1_to_l2 >= 0):
            raise EcuConfigError(f"BusOffRecovery.counter_l1_to_l2: expected an int >= 0, but got {self.counter_l1_to_l2!r}")

    def delay_s(self, row: int) -> float:
        """Back-off before the restart after the ``row``-th bus-off in a row (1-based)."""
        return self.time_l1_s if row <= self.counter_l1_to_l2 else self.time_l2_s


class _Tx:
    """Send state of one DBC message."""

    __slots__ = ("message", "name", "period_ps", "spec", "frame_id", "is_fd", "is_ext", "endpoint",
                 "counter", "next_ps", "handle", "pages", "bounds", "mux_name", "last", "sent", "n_values", "resting",
                 "protected", "scalar_fn", "scalar_count", "crc_start", "plain", "page_fns")

    def __init__(self, message: Any, period_s: float, endpoint: Endpoint) -> None:
        self.message = message
        self.name: str = message.name
        self.period_ps = seconds_to_ps(period_s)
        self.spec = E2ESpec.from_message(message)
        self.frame_id: int = message.frame_id
        self.is_ext: bool = bool(message.is_extended_frame)
        self.is_fd: bool = bool(message.is_fd)
        self.endpoint = endpoint
        self.counter = 0
        self.next_ps = 0
        self.handle: TimerHandle | None = None
        # (values, payload) per page of the last frame: a value set already encoded is reused
        self.last: dict[int, tuple[dict[str, float], bytes]] = {}
        # (payload, frame with counter and CRC per counter value) of the last protected payload
        self.protected: tuple[bytes | None, list[bytes | None]] = (None, [])
        self.sent = 0
        self.mux_name: str | None = next((s.name for s in message.signals if s.is_multiplexer), None)
        # DBC ranges of the value signals: a real ECU saturates a quantity at its signal range.
        self.bounds: dict[str, tuple[float, float]] = {
            s.name: (-math.inf if s.minimum is None else float(s.minimum), math.inf if s.maximum is None else float(s.maximum))
            for s in message.signals
        }
        self.pages: dict[int, frozenset[str]] = {}
        for s in message.signals:
            for mux in s.multiplexer_ids or ():
                self.pages[int(mux)] = self.pages.get(int(mux), frozenset()) | {s.name}
        e2e = set() if self.spec is None else {self.spec.counter_signal, self.spec.crc_signal}
        plain = [s.name for s in message.signals if not s.multiplexer_ids and s.name not in e2e]
        # How many values a complete hook result has, per page (key 0 without multiplexing).
        if self.pages:
            self.n_values = {page: len(plain) + len(names) for page, names in self.pages.items()}
        else:
            self.n_values = {0: len(plain)}
        self.resting: dict[str, float] = {s.name: _resting(s) for s in message.signals}
        # The codec's straight-line encoder of this message (see _scalar_encoder), and the
        # CRC register after the data id bytes: both the same for every frame of the message.
        self.scalar_fn: Any = None
        self.scalar_count = -1
        self.crc_start = 0
        if self.spec is not None:
            data_id = self.spec.data_id
            self.crc_start = _CRC8_TABLE[_CRC8_TABLE[CRC8_INIT ^ (data_id & 0xFF)] ^ (data_id >> 8)]
        # Multiplexed: per page, the straight-line encoder of that page (_page_encoders).
        self.page_fns: dict[int, tuple[Any, int]] = {}


def _scalar_encoder(encoder: BatchEncoder, name: str) -> tuple[Any, int]:
    """``(fn, n)``: the codec's generated encoder of ``name`` and how many values it takes.

    ``BatchEncoder.encode_one(name, **values)`` returns ``fn(values)`` when ``values`` holds
    exactly ``n`` signals and ``fn`` does not refuse them (None), else takes its general path;
    calling ``fn`` first spares the keyword round trip on every frame. (None, -1) when the
    codec has no such encoder (the caller then always uses ``encode_one``).
    """
    try:
        return encoder.scalar_encoder(name)
    except CodecError:
        return None, -1


class _PageDatabase:
    """The one lookup BatchEncoder needs of a database, over the page messages of one message."""

    def __init__(self, messages: list[Any]) -> None:
        self.messages = messages
        self._by_name = {m.name: m for m in messages}

    def get_message_by_name(self, name: str) -> Any:
        return self._by_name[name]


def _page_encoders(message: Any) -> dict[int, tuple[Any, int]]:
    """Per page of multiplexed ``message``: ``(fn, n)`` as :func:`_scalar_encoder` gives.

    Each page is the message with its multiplexer as a plain signal and only that page's
    signals: the same bits the multiplexed encoding sets for a row whose multiplexer value is
    exactly the page number (cantools' and the codec's rule), so the codec's straight-line
    encoder of that page message gives the same bytes. Pages the codec has no such encoder
    for are left out (the caller encodes them the general way).
    """
    from cantools.database.can import Message as CanMessage

    mux = next((s for s in message.signals if s.is_multiplexer), None)
    if mux is None or any(s.is_multiplexer and s is not mux for s in message.signals) or any(
            s.multiplexer_signal not in (None, mux.name) for s in message.signals):
        return {}  # nested or several multiplexers: not covered
    pages = sorted({int(k) for s in message.signals for k in (s.multiplexer_ids or ())})
    out: dict[int, tuple[Any, int]] = {}
    built = []
    for page in pages:
        signals = []
        for s in message.signals:
            if s.multiplexer_ids and page not in s.multiplexer_ids:
                continue
            twin = copy.copy(s)
            twin.is_multiplexer = False
            twin.multiplexer_ids = None
            twin.multiplexer_signal = None
            signals.append(twin)
        try:
            built.append((page, CanMessage(
                frame_id=message.frame_id, name=f"{message.name}@{page}", length=message.length, signals=signals,
                is_extended_frame=message.is_extended_frame, is_fd=message.is_fd,
                unused_bit_pattern=message.unused_bit_pattern, strict=False,
            )))
        except Exception:  # noqa: BLE001 - cantools refuses the page: encode it the general way
            continue
    encoder = BatchEncoder(_PageDatabase([m for _, m in built]))
    for page, page_message in built:
        fn, count = _scalar_encoder(encoder, page_message.name)
        if fn is not None:
            out[page] = (fn, count)
    return out


def _protect_into(buf: bytearray, spec: E2ESpec, crc_start: int, counter: int, bad: bool) -> None:
    """Fill alive counter and CRC (Z10-P1) into ``buf`` in place; ``bad`` inverts the CRC.

    The same bytes as ``e2e_crc(spec.data_id, ...)`` over every byte but the CRC byte, with
    the data id part of the register precomputed (``crc_start``).
    """
    shift = spec.counter_shift
    cbyte = spec.counter_byte
    buf[cbyte] = (buf[cbyte] & ~(0x0F << shift) & 0xFF) | (counter << shift)
    table = _CRC8_TABLE
    crc = crc_start
    cb = spec.crc_byte
    if cb:
        for byte in buf[:cb]:
            crc = table[crc ^ byte]
    for byte in buf[cb + 1 : spec.length]:
        crc = table[crc ^ byte]
    crc ^= CRC8_XOROUT
    buf[cb] = crc ^ 0xFF if bad else crc


def _resting(signal: Any) -> float:
    """The value an ECU sends for a signal it has no model for: the DBC start value, else 0,
    inside the signal's range."""
    raw = getattr(signal, "raw_initial", None)
    value = 0.0 if raw is None else float(raw) * float(signal.scale) + float(signal.offset)
    lo = -math.inf if signal.minimum is None else float(signal.minimum)
    hi = math.inf if signal.maximum is None else float(signal.maximum)
    return min(max(value, lo), hi)


class _Rx:
    """Receive state of one command message."""

    __slots__ = ("message", "name", "length", "spec", "receiver", "timeout_ps", "last_ok_ps", "lost", "values",
                 "decoded", "cacheable", "frames")

    def __init__(self, message: Any, timeout_s: float) -> None:
        self.message = message
        self.name: str = message.name
        self.length: int = message.length  # a cantools property: read once, not per frame
        self.spec = E2ESpec.from_message(message)
        self.receiver = E2EReceiver(self.spec) if self.spec is not None else None
        self.timeout_ps = seconds_to_ps(timeout_s)
        self.last_ok_ps: int | None = None
        self.lost = True
        self.values: dict[str, float] | None = None
        # Decoded values by payload with counter and CRC masked out: commands repeat their
        # values every cycle, only counter and CRC move. Only when those two decode to their
        # raw bits (integer, scale 1, offset 0), so the values can be filled in exactly.
        self.decoded: dict[bytes, dict[str, float]] = {}
        # Values by whole frame (counter and CRC included): what decode() returned for it.
        self.frames: dict[bytes, dict[str, float]] = {}
        self.cacheable = self.spec is None or all(
            not s.is_float and s.scale == 1 and s.offset == 0 and s.length <= 8 and not s.is_multiplexer
            and not s.multiplexer_ids and s.start == (8 * self.spec.crc_byte if s.name == self.spec.crc_signal
                                                      else 8 * self.spec.counter_byte + self.spec.counter_shift)
            and s.byte_order == "little_endian" and s.length == (8 if s.name == self.spec.crc_signal else 4)
            for s in message.signals if s.name in (self.spec.crc_signal, self.spec.counter_signal)
        )

    def decode(self, data: bytes) -> dict[str, float]:
        """The command's values in ``data`` (its DBC length), as ``message.decode`` gives them."""
        length = self.length
        spec = self.spec
        if not self.cacheable:
            return self.message.decode(data[:length], decode_choices=False, scaling=True)
        if _FAST_PATHS:
            # The whole frame seen before (a command repeats its 15 counter values): the
            # values as the code below made them then, copied (the caller's own).
            frame = data if type(data) is bytes and len(data) == length else bytes(data[:length])
            done = self.frames.get(frame)
            if done is not None:
                return dict(done)
            values = self._decode_masked(data, length, spec)
            if len(self.frames) >= _FRAME_CACHE_SIZE:
                self.frames.clear()
            self.frames[frame] = dict(values)
            return values
        return self._decode_masked(data, length, spec)

    def _decode_masked(self, data: bytes, length: int, spec: E2ESpec | None) -> dict[str, float]:
        """Decode through the cache of payloads with counter and CRC masked out."""
        if spec is None:
            key = data[:length]
        else:
            buf = bytearray(data[:length])
            buf[spec.crc_byte] = 0
            buf[spec.counter_byte] &= ~(0x0F << spec.counter_shift) & 0xFF
            key = bytes(buf)
        cached = self.decoded.get(key)
        if cached is None:
            cached = self.message.decode(data[:length], decode_choices=False, scaling=True)
            if len(self.decoded) >= _DECODE_CACHE_SIZE:
                self.decoded.clear()
            self.decoded[key] = cached
        values = dict(cached)
        if spec is not None:
            values[spec.crc_signal] = data[spec.crc_byte]
            values[spec.counter_signal] = (data[spec.counter_byte] >> spec.counter_shift) & 0x0F
        return values


#: The E2E outcomes an ECU acts on (module constants: read once per received command).
_VALID = SMState.VALID
_ACT_ON = (CheckStatus.OK, CheckStatus.OK_SOME_LOST)

#: Distinct command payloads an ECU remembers decoded (per command message).
_DECODE_CACHE_SIZE = 256
#: Distinct whole command frames (payload x 15 counter values) an ECU remembers decoded.
_FRAME_CACHE_SIZE = 15 * 64

#: Take the per-frame shortcuts: SimEcu._send_plain for a message without multiplexer or
#: fault, the codec's generated encoders called directly (per page for multiplexed messages),
#: counter and CRC in one step from the precomputed data-id register, the whole-frame command
#: decode cache, the supervision task rescheduled straight onto the heap (and the empty
#: on_supervise hook not called), the CBC's status from the van's compartment columns and the
#: BMS's cell pages from names made once. False runs the general path everywhere:
#: tests/hil/ecus/test_rig_fast_paths.py runs a rig both ways and requires the same wire traffic.
_FAST_PATHS = True


class SimEcu:
    """A simulated ECU: one node on one bus of the rig (see the module docstring).

    Subclasses set ``NODE`` (the DBC sender name) and ``COMMANDS`` (message names it acts on)
    and implement :meth:`signals` / :meth:`pages` and :meth:`on_command`.
    ``COMMAND_TIMEOUT_CYCLES`` cycle times without a valid command count as command loss
    (:meth:`on_command_lost`).
    """

    NODE: ClassVar[str] = ""
    COMMANDS: ClassVar[tuple[str, ...]] = ()
    COMMAND_TIMEOUT_CYCLES: ClassVar[float] = 10.0
    #: Bus-off back-off of the ECU's CAN state manager; None leaves recovery to the channel.
    BUS_OFF_RECOVERY: ClassVar[BusOffRecovery | None] = BusOffRecovery()

    def __init__(
        self,
        db: Any,
        van: VanView,
        channels: Mapping[str, Channel],
        clock: Clock,
        *,
        seed: int = 0,
        encoder: BatchEncoder | None = None,
    ) -> None:
        if not self.NODE:
            raise EcuConfigError(f"{type(self).__name__}: expected a NODE name, but got none")
        self.node = self.NODE
        self.db = db
        self.van = van
        self.clock = clock
        self.encoder = encoder if encoder is not None else BatchEncoder(db)
        self._stats = EcuStats()
        #: Signals of this ECU's messages that its hooks do not provide (DBC newer than the model).
        self.unmodelled: set[str] = set()
        self.faults: list[EcuFault] = []
        self._rng = random.Random(f"hil.ecus:{seed}:{self.node}")
        self._started = False
        self._closed = False
        self._supervise_handle: TimerHandle | None = None
        self.t0_ps = 0  # start time: hook times and fault windows count from here
        self._bor_row: dict[str, int] = {}  # bus -> bus-offs in a row (CanSM's L1/L2 count)
        self._bor_handles: dict[str, TimerHandle] = {}  # bus -> pending restart or tx-ensured check
        self._unsubscribe: list[Any] = []
        own = sorted((m for m in db.messages if self.node in (m.senders or ()) and cycle_time_s(m)), key=lambda m: m.frame_id)
        if not own:
            raise EcuConfigError(f"ECU {self.node}: expected cyclic DBC messages sent by {self.node}, but found none")
        self.endpoints: dict[str, Endpoint] = {}
        self._tx: dict[str, _Tx] = {}
        self._rx: dict[int, _Rx] = {}
        try:
            commands = [db.get_message_by_name(name) for name in self.COMMANDS]
        except KeyError as err:
            raise EcuConfigError(f"ECU {self.node}: expected command message {err.args[0]!r} in the DBC, but it is missing") from None
        buses = sorted({m.bus_name for m in own} | {m.bus_name for m in commands})
        try:
            for bus in buses:
                if bus not in channels:
                    raise EcuConfigError(f"ECU {self.node}: expected a channel for bus {bus!r}, but the rig has {sorted(channels)}")
                endpoint = self.endpoints[bus] = channels[bus].attach(node=self.node, on_frame=self._on_frame)
                endpoint._on_data = self._on_data  # data frames without a python-can message
            for m in own:
                tx = self._tx[m.name] = _Tx(m, float(cycle_time_s(m)), self.endpoints[m.bus_name])
                tx.scalar_fn, tx.scalar_count = _scalar_encoder(self.encoder, m.name)
                if tx.mux_name is not None:
                    tx.page_fns = _page_encoders(m)
            for m in commands:
                period = cycle_time_s(m) or 0.1
                self._rx[m.frame_id] = _Rx(m, self.COMMAND_TIMEOUT_CYCLES * period)
            for bus, endpoint in self.endpoints.items():
                # The controller's acceptance filter: only the commands reach the ECU (the bus
                # then builds no message for the other frames, which is most of them).
                wanted = [m for m in commands if m.bus_name == bus]
                endpoint.set_filters(
                    [{"can_id": m.frame_id, "can_mask": 0x1FFFFFFF if m.is_extended_frame else 0x7FF,
                      "extended": bool(m.is_extended_frame)} for m in wanted]
                    or _ACCEPT_NOTHING
                )
                if self.BUS_OFF_RECOVERY is not None:
                    endpoint.set_auto_recovery(False)
                    self._unsubscribe.append(endpoint.channel.add_event_observer(self._bus_event_for(bus)))
        except BaseException:
            self.close()
            raise
        self._supervise_ps = min((r.timeout_ps for r in self._rx.values()), default=0) // int(self.COMMAND_TIMEOUT_CYCLES or 1)
        # No background task of its own (most ECUs): supervision need not call the empty hook.
        self._no_supervise_hook = type(self).on_supervise is SimEcu.on_supervise

    # -- hooks -------------------------------------------------------------------------------

    def signals(self, message: str, t_s: float) -> dict[str, float]:
        """Physical values of ``message`` now (counter and CRC are filled in by the base)."""
        raise NotImplementedError(f"{type(self).__name__} sends {message} but defines no signals() for it")

    def pages(self, message: str, t_s: float) -> list[dict[str, float]]:
        """The frames of multiplexed ``message`` this cycle, each with its multiplexer value."""
        raise NotImplementedError(f"{type(self).__name__} sends multiplexed {message} but defines no pages() for it")

    def on_command(self, message: str, values: Mapping[str, float], t_s: float) -> None:
        """A command frame passed the E2E check (state VALID): act on it."""

    def on_supervise(self, t_s: float) -> None:
        """The ECU's background task, every supervision period (a command's cycle), whether or
        not its frames go out: fallbacks that must keep acting (e.g. hold the van) live here."""

    def on_command_lost(self, message: str, t_s: float) -> None:
        """No valid ``message`` for ``COMMAND_TIMEOUT_CYCLES`` cycles: fall back to safe inputs."""

    # -- public ------------------------------------------------------------------------------

    @property
    def stats(self) -> EcuStats:
        """The ECU's counters, up to date."""
        st = self._stats
        st.sent_by_message = {tx.name: tx.sent for tx in self._tx.values()}
        st.frames_sent = sum(st.sent_by_message.values())
        return st

    @property
    def messages(self) -> list[str]:
        """Names of the messages this ECU sends."""
        return list(self._tx)

    def command_valid(self, message: str) -> bool:
        """True while ``message`` arrives E2E-valid within its timeout."""
        for rx in self._rx.values():
            if rx.name == message:
                return not rx.lost
        raise EcuConfigError(f"ECU {self.node}: expected one of its commands {list(self.COMMANDS)}, but got {message!r}")

    def last_command(self, message: str) -> dict[str, float] | None:
        """The values of the last valid ``message`` (None before the first, or after loss)."""
        for rx in self._rx.values():
            if rx.name == message:
                return None if rx.lost else rx.values
        raise EcuConfigError(f"ECU {self.node}: expected one of its commands {list(self.COMMANDS)}, but got {message!r}")

    def add_fault(self, fault: EcuFault | Mapping[str, Any]) -> EcuFault:
        """Add an ECU fault (an :class:`EcuFault` or a dict for :meth:`EcuFault.from_dict`)."""
        if not isinstance(fault, EcuFault):
            fault = EcuFault.from_dict(fault)
        if fault.message is not None and fault.message not in self._tx:
            raise EcuConfigError(f"ECU {self.node} fault: expected one of its messages {list(self._tx)}, but got {fault.message!r}")
        if fault.action == "override":
            carriers = [t.name for t in self._tx.values() if fault.signal in t.bounds]
            if not carriers or (fault.message is not None and fault.message not in carriers):
                raise EcuConfigError(
                    f"ECU {self.node} fault 'override': expected a signal of {fault.message or 'its messages'}, "
                    f"but got {fault.signal!r}"
                )
        self.faults.append(fault)
        return fault

    def remove_fault(self, fault: EcuFault) -> None:
        if fault in self.faults:
            self.faults.remove(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    def start(self) -> None:
        """Schedule every message; each starts at a seeded phase within its first cycle."""
        if self._started:
            return
        self._started = True
        now = self.clock.now_ps()
        self.t0_ps = now
        with self.clock.lock:
            for tx in self._tx.values():
                # Power-up: every task starts within its first cycle (seeded, so reproducible).
                tx.counter = self._rng.randrange(COUNTER_MODULO)
                tx.next_ps = now + self._rng.randrange(max(1, tx.period_ps))
                tx.handle = self.clock.call_at_ps(tx.next_ps, self._fire, tx)
            if self._rx and self._supervise_ps > 0:
                self._supervise_handle = self.clock.call_at_ps(now + self._supervise_ps, self._supervise)

    def close(self) -> None:
        """Stop sending and detach from the buses; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        for tx in self._tx.values():
            if tx.handle is not None:
                tx.handle.cancel()
                tx.handle = None
        if self._supervise_handle is not None:
            self._supervise_handle.cancel()
            self._supervise_handle = None
        for handle in self._bor_handles.values():
            handle.cancel()
        self._bor_handles.clear()
        for remove in self._unsubscribe:
            remove()
        self._unsubscribe.clear()
        for endpoint in self.endpoints.values():
            endpoint.close()

    # -- sending -----------------------------------------------------------------------------

    def _fault_state(self, tx: _Tx, t_s: float) -> tuple[bool, float, dict[str, float], bool, bool]:
        silent, factor, overrides, freeze, bad = False, 1.0, {}, False, False
        for f in self.faults:
            if not f.active(t_s) or (f.message is not None and f.message != tx.name):
                continue
            action = f.action
            if action == "silence":
                silent = True
            elif action == "slow":
                factor *= f.factor
            elif action == "override":
                if f.signal in tx.bounds:
                    overrides[f.signal] = float(f.value)  # type: ignore[arg-type]
            elif action == "counter_freeze":
                freeze = True
            else:
                bad = True
        return silent, factor, overrides, freeze, bad

    def _fire(self, tx: _Tx) -> None:
        tx.handle = None
        if self._closed:
            return
        t_s = (tx.next_ps - self.t0_ps) / PS_PER_S
        if self.faults:
            silent, factor, overrides, freeze, bad = self._fault_state(tx, t_s)
        elif tx.mux_name is None and _FAST_PATHS:  # one frame per cycle, one value set
            # No fault, one frame: the same steps as below without the general machinery.
            self._send_plain(tx, t_s)
            t_ps = tx.next_ps = tx.next_ps + tx.period_ps
            clock = self.clock
            now = clock.now_ps()
            tx.handle = clock._push(t_ps if t_ps >= now else now, PRIO_EVENT, self._fire, (tx,))  # _reschedule(tx)
            return
        else:
            silent, factor, overrides, freeze, bad = False, 1.0, None, False, False
        if silent:
            self._stats.frames_suppressed += 1
        else:
            self._send(tx, t_s, overrides, freeze, bad)
        tx.next_ps += tx.period_ps if factor == 1.0 else round(tx.period_ps * factor)
        self._reschedule(tx)

    def _reschedule(self, tx: _Tx) -> None:
        """``tx``'s next cycle: ``clock.call_at_ps(tx.next_ps, self._fire, tx)``, run from the
        clock's own event (lock held), so without taking the lock again."""
        clock = self.clock
        if not _FAST_PATHS:
            tx.handle = clock.call_at_ps(tx.next_ps, self._fire, tx)
            return
        now = clock.now_ps()
        t_ps = tx.next_ps
        tx.handle = clock._push(t_ps if t_ps >= now else now, PRIO_EVENT, self._fire, (tx,))

    def _send_plain(self, tx: _Tx, t_s: float) -> None:
        """One cycle of a message without multiplexer or fault: what ``_send(tx, t_s, None,
        False, False)`` does, in one function (the rest-bus's most frequent path)."""
        values = self.signals(tx.name, t_s)
        if len(values) != tx.n_values[0]:
            self._fill_unmodelled(tx, 0, values)
        spec = tx.spec
        if spec is not None:
            # Placeholders: the counter and the CRC are filled into the encoded frame below.
            values[spec.counter_signal] = 0
            values[spec.crc_signal] = 0
        last = tx.last.get(0)
        if last is not None and last[0] == values:
            payload = last[1]
        else:
            payload = tx.scalar_fn(values) if len(values) == tx.scalar_count else None
            if payload is None:
                payload = self._encode(tx, 0, values)
            tx.last[0] = (values, payload)
        if spec is not None:
            cache = tx.protected
            if cache[0] is not payload:
                cache = tx.protected = (payload, [None] * COUNTER_MODULO)
            counter = tx.counter
            frame = cache[1][counter]
            if frame is None:
                buf = bytearray(payload)
                _protect_into(buf, spec, tx.crc_start, counter, False)
                frame = cache[1][counter] = bytes(buf)
            payload = frame
            tx.counter = (counter + 1) % COUNTER_MODULO
        self._put(tx, payload)

    def _put(self, tx: _Tx, payload: bytes) -> None:
        """Hand one frame of ``tx`` to its controller; a refusal (bus-off, full queue) drops it
        and is counted, and the task keeps its cycle, as a real ECU's does."""
        endpoint = tx.endpoint
        # A clock event holds the clock lock: the frame goes straight in when the node takes it.
        if not (_FAST_PATHS and endpoint._submit_data(tx.frame_id, payload, tx.is_ext, tx.is_fd, tx.is_fd)):
            try:
                endpoint.send_data(tx.frame_id, payload, is_extended_id=tx.is_ext, is_fd=tx.is_fd,
                                   bitrate_switch=tx.is_fd, timeout=0)
            except (can.CanError, HilBusError):
                self._stats.send_refused += 1
                return
        tx.sent += 1

    def _encode(self, tx: _Tx, key: int, values: dict[str, float]) -> bytes:
        """``values`` (complete, placeholders set) as a frame of ``tx``; out-of-range values are
        saturated at the signal's DBC range first, as a real ECU does."""
        encode = self.encoder.encode_one
        try:
            return encode(tx.name, **values)
        except CodecError:
            # Out of its DBC range (or NaN): a real ECU saturates the quantity at the
            # signal's range. Checking only after the codec refused keeps the common case cheap.
            self._fill_unmodelled(tx, key, values)  # names a signal the DBC does not have
            for name, value in values.items():
                lo, hi = tx.bounds[name]
                if value < lo:
                    values[name] = lo
                elif value > hi:
                    values[name] = hi
                elif value != value:
                    values[name] = lo if lo > -math.inf else 0.0
            return encode(tx.name, **values)

    def _payloads(self, tx: _Tx, t_s: float, overrides: dict[str, float] | None) -> list[bytes]:
        if tx.mux_name is None:
            rows = [self.signals(tx.name, t_s)]
        else:
            rows = self.pages(tx.name, t_s)
        out = []
        for values in rows:
            if overrides:
                page = tx.pages.get(int(values[tx.mux_name])) if tx.mux_name is not None else None
                for name, value in overrides.items():
                    if page is None or name in page:
                        values[name] = value
            key = 0 if tx.mux_name is None else int(values[tx.mux_name])
            if len(values) != tx.n_values.get(key, -1):
                self._fill_unmodelled(tx, key, values)
            if tx.spec is not None:
                # Placeholders: _send fills the counter and the CRC into the encoded frame.
                values[tx.spec.counter_signal] = 0
                values[tx.spec.crc_signal] = 0
            last = tx.last.get(key)
            if last is not None and last[0] == values:
                out.append(last[1])
                continue
            payload = None
            if _FAST_PATHS:
                if tx.mux_name is None:
                    if len(values) == tx.scalar_count:
                        payload = tx.scalar_fn(values)
                else:
                    page_fn = tx.page_fns.get(key)
                    # Only a multiplexer value that is exactly the page number (else the general way).
                    if page_fn is not None and len(values) == page_fn[1] and values[tx.mux_name] == key:
                        payload = page_fn[0](values)
            if payload is None:
                payload = self._encode(tx, key, values)
            tx.last[key] = (values, payload)
            out.append(payload)
        return out

    def _fill_unmodelled(self, tx: _Tx, key: int, values: dict[str, float]) -> None:
        """Complete a hook result the DBC has outgrown with resting values (reported once)."""
        names = tx.pages.get(key, frozenset()) if tx.mux_name is not None else frozenset()
        e2e = () if tx.spec is None else (tx.spec.counter_signal, tx.spec.crc_signal)
        for sig in tx.message.signals:
            name = sig.name
            if name in values or name in e2e or (sig.multiplexer_ids and name not in names):
                continue
            values[name] = tx.resting[name]
            if name not in self.unmodelled:
                self.unmodelled.add(name)
                LOG.warning("ECU %s: no model for %s.%s; sending its resting value %g",
                            self.node, tx.name, name, tx.resting[name])
        unknown = [name for name in values if name not in tx.resting]
        if unknown:
            raise EcuConfigError(f"ECU {self.node}: {tx.name} has no signal {unknown[0]!r} (expected DBC signals)")

    def _send(self, tx: _Tx, t_s: float, overrides: dict[str, float] | None, freeze: bool, bad: bool) -> None:
        spec = tx.spec
        for payload in self._payloads(tx, t_s, overrides):
            if spec is not None:
                # The protected frames of the last payload, per counter value: a payload that
                # holds still (most do) costs a lookup, not a CRC, from the second round on.
                cache = tx.protected
                if cache[0] is not payload:
                    cache = tx.protected = (payload, [None] * COUNTER_MODULO)
                frame = cache[1][tx.counter] if not bad else None
                if frame is None:
                    buf = bytearray(payload)
                    if _FAST_PATHS:
                        _protect_into(buf, spec, tx.crc_start, tx.counter, bad)
                    else:
                        shift = spec.counter_shift
                        buf[spec.counter_byte] = (buf[spec.counter_byte] & ~(0x0F << shift) & 0xFF) | (tx.counter << shift)
                        cb = spec.crc_byte
                        crc = e2e_crc(spec.data_id, buf[:cb] + buf[cb + 1 : spec.length])
                        buf[cb] = crc ^ 0xFF if bad else crc
                    frame = bytes(buf)
                    if not bad:
                        cache[1][tx.counter] = frame
                payload = frame
                if not freeze:
                    tx.counter = (tx.counter + 1) % COUNTER_MODULO
            self._put(tx, payload)

    # -- bus-off (the ECU's CAN state manager) -------------------------------------------------

    def _bus_event_for(self, bus: str) -> Any:
        def on_event(event: Any) -> None:
            if event.node != self.node or self._closed:
                return
            if event.code == "node.bus_off":
                self._on_bus_off(bus)
            elif event.code == "node.recovered":
                self._on_recovered(bus)
        return on_event

    def _on_bus_off(self, bus: str) -> None:
        policy = self.BUS_OFF_RECOVERY
        assert policy is not None
        self._stats.bus_offs += 1
        row = self._bor_row.get(bus, 0) + 1
        self._bor_row[bus] = row
        old = self._bor_handles.pop(bus, None)
        if old is not None:
            old.cancel()  # a tx-ensured check still running: the recovery did not hold
        due = self.clock.now_ps() + seconds_to_ps(policy.delay_s(row))
        self._bor_handles[bus] = self.clock.call_at_ps(due, self._restart, bus)

    def _restart(self, bus: str) -> None:
        self._bor_handles.pop(bus, None)
        endpoint = self.endpoints.get(bus)
        if self._closed or endpoint is None or endpoint.closed:
            return
        self._stats.bus_off_restarts += 1
        endpoint.restart()

    def _on_recovered(self, bus: str) -> None:
        policy = self.BUS_OFF_RECOVERY
        assert policy is not None
        old = self._bor_handles.pop(bus, None)
        if old is not None:
            old.cancel()
        due = self.clock.now_ps() + seconds_to_ps(policy.time_tx_ensured_s)
        self._bor_handles[bus] = self.clock.call_at_ps(due, self._tx_ensured, bus)

    def _tx_ensured(self, bus: str) -> None:
        self._bor_handles.pop(bus, None)
        self._bor_row[bus] = 0

    # -- receiving ---------------------------------------------------------------------------

    #: Normal (non-diagnostic) messages are received and acted on; False models UDS 0x28
    #: disableRx: command frames are ignored (counted), supervision still runs.
    normal_rx_enabled: bool = True

    def _on_frame(self, msg: can.Message) -> None:
        rx = self._rx.get(msg.arbitration_id)
        if rx is None or msg.is_error_frame or msg.is_remote_frame:
            return
        self._on_command_frame(rx, bytes(msg.data))

    def _on_data(self, arbitration_id: int, data: bytes) -> None:
        """A data frame from the bus as fields (:meth:`_on_frame` without the message)."""
        rx = self._rx.get(arbitration_id)
        if rx is not None:
            self._on_command_frame(rx, data)

    def _on_command_frame(self, rx: _Rx, data: bytes) -> None:
        if not self.normal_rx_enabled:
            self._stats.commands_ignored += 1
            return
        if len(data) < rx.length:
            self._stats.commands_rejected += 1
            return
        receiver = rx.receiver
        if receiver is not None:
            status, state = receiver.check(data)
            if state is not _VALID or status not in _ACT_ON:
                # A real ECU does not act on a frame its E2E check refuses.
                self._stats.commands_rejected += 1
                return
        values = rx.decode(data)
        rx.values = values
        now = rx.last_ok_ps = self.clock.now_ps()
        rx.lost = False
        self._stats.commands_accepted += 1
        self.on_command(rx.name, values, (now - self.t0_ps) / PS_PER_S)

    def _supervise(self) -> None:
        self._supervise_handle = None
        if self._closed:
            return
        now = self.clock.now_ps()
        for rx in self._rx.values():
            if not rx.lost and rx.last_ok_ps is not None and now - rx.last_ok_ps > rx.timeout_ps:
                rx.lost = True
                rx.values = None
                self._stats.commands_lost += 1
                self.on_command_lost(rx.name, (now - self.t0_ps) / PS_PER_S)
        if not (_FAST_PATHS and self._no_supervise_hook):  # the base hook does nothing: no call
            self.on_supervise((now - self.t0_ps) / PS_PER_S)
        # A clock event (lock held) scheduling its own next run in the future: straight onto
        # the heap, as call_at_ps would put it.
        if _FAST_PATHS and self._supervise_ps > 0:
            self._supervise_handle = self.clock._push(now + self._supervise_ps, PRIO_EVENT, self._supervise, ())
        else:
            self._supervise_handle = self.clock.call_at_ps(now + self._supervise_ps, self._supervise)


def clip(value: float, lo: float, hi: float) -> float:
    """``value`` limited to ``[lo, hi]``."""
    return lo if value < lo else hi if value > hi else value

