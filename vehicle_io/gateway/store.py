"""SignalStore: the latest value, receive time and validity of every signal, as fixed arrays.

The layout (:class:`StoreLayout`) is generated from the DBC: one slot per
``"Message.Signal"``, messages sorted by name, each message's signals contiguous in DBC
order. It is stable for a given database (file order does not matter) and is what the numba
control loop indexes: ``value float64[S]``, ``timestamp float64[S]``, ``valid uint8[S]``.

Validity of a signal = it has a value, and its message is currently acceptable:
received, not stale (last accepted frame at most ``stale_factor`` x cycle time ago;
messages without a cycle time never go stale) and, for E2E-protected messages, the E2E
state machine is VALID. Values of frames that fail a check are never stored; each such
frame is counted under one reject reason, so ``seen == decoded + sum(rejected)`` always.

Every mutation and every :meth:`SignalStore.snapshot` happen under one lock, so a snapshot
is a consistent copy (all arrays from the same instant).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vehicle_io.e2e import CRC8_TABLE, CheckStatus, E2EConfig, E2ESpec, SMState
from vehicle_io.errors import VehicleIoError

if TYPE_CHECKING:
    from cantools.database.can import Database, Message

    from vehicle_io.gateway.validity import E2EBank

#: Why a frame was not stored. The index of a reason is its code in per-row arrays.
REJECT_REASONS: tuple[str, ...] = (
    "unknown_id",  # no message with this id (and frame format) on this bus
    "too_short",  # fewer bytes than the message's DBC length
    "bad_length",  # more than 64 bytes, or more than the batch array holds
    "bad_mux",  # multiplexer value the DBC does not define
    "unsupported",  # a layout the codec cannot decode (reported by BatchDecoder)
    "crc",  # E2E CRC mismatch (wrong data, wrong data id)
    "bad_counter",  # E2E alive counter 15 (invalid by definition)
    "wrong_sequence",  # E2E counter jumped by more than max_delta
    "repeated",  # E2E counter did not move
    "e2e_state",  # frame fine, but the message's E2E state machine is not VALID
    "stale",  # the frame was already older than N x cycle time when processed
    "error_frame",  # CAN error frame
    "remote_frame",  # remote transmission request
    "own_tx",  # echo of a frame this node sent (python-can is_rx False)
    "internal_error",  # the gateway failed on the batch (a bug): counted, reported, survived
)
REASON_CODE: dict[str, int] = {name: code for code, name in enumerate(REJECT_REASONS)}
ACCEPT = 255  # per-row code: not rejected (yet)

R_UNKNOWN_ID = REASON_CODE["unknown_id"]
R_TOO_SHORT = REASON_CODE["too_short"]
R_BAD_LENGTH = REASON_CODE["bad_length"]
R_BAD_MUX = REASON_CODE["bad_mux"]
R_UNSUPPORTED = REASON_CODE["unsupported"]
R_CRC = REASON_CODE["crc"]
R_BAD_COUNTER = REASON_CODE["bad_counter"]
R_WRONG_SEQUENCE = REASON_CODE["wrong_sequence"]
R_REPEATED = REASON_CODE["repeated"]
R_E2E_STATE = REASON_CODE["e2e_state"]
R_STALE = REASON_CODE["stale"]
R_ERROR_FRAME = REASON_CODE["error_frame"]
R_REMOTE_FRAME = REASON_CODE["remote_frame"]
R_OWN_TX = REASON_CODE["own_tx"]
R_INTERNAL_ERROR = REASON_CODE["internal_error"]

_N_REASONS = len(REJECT_REASONS)

# E2E verdict by (CheckStatus, CRC matched): the reject reason, or ACCEPT.
_VERDICT = np.full((6, 2), ACCEPT, dtype=np.uint8)
_VERDICT[CheckStatus.ERROR] = (R_CRC, R_BAD_COUNTER)
_VERDICT[CheckStatus.REPEATED] = R_REPEATED
_VERDICT[CheckStatus.WRONG_SEQUENCE] = R_WRONG_SEQUENCE


class LayoutError(VehicleIoError, KeyError):
    """A name is not in the store layout."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def _cycle_time_s(message: Message) -> float | None:
    try:
        from vehicle_io.dbc import cycle_time_s
    except ImportError:  # pragma: no cover - dbc.py ships with the package
        cycle_ms = message.cycle_time
        return cycle_ms / 1000.0 if cycle_ms and cycle_ms > 0 else None
    return cycle_time_s(message)


@dataclass(frozen=True)
class MessageSlots:
    """One message in the layout: its slot range and what the receiver needs to know."""

    index: int
    key: str  # message name, or "bus:name" when the name exists on several buses
    name: str
    bus: str | None
    frame_id: int
    is_extended: bool
    length: int
    start: int
    stop: int
    signals: tuple[str, ...]
    cycle_time_s: float | None
    e2e: E2ESpec | None
    e2e_index: int  # index in the E2E bank, -1 when not protected
    multiplexers: tuple[int, ...]  # local indices of multiplexer signals
    mux_parent: tuple[int, ...]  # per signal: local index of its multiplexer, -1 if none
    mux_ids: tuple[frozenset[int] | None, ...]  # per signal: the mux values it exists for

    @property
    def n_signals(self) -> int:
        return self.stop - self.start


class StoreLayout:
    """Names -> slot indices, generated from a database; shared with the control loop."""

    def __init__(self, messages: Iterable[Message]) -> None:
        msgs = list(messages)
        pairs: dict[tuple[str, str | None], int] = {}
        names: dict[str, int] = {}
        for m in msgs:
            bus = getattr(m, "bus_name", None) or None
            pairs[(m.name, bus)] = pairs.get((m.name, bus), 0) + 1
            names[m.name] = names.get(m.name, 0) + 1

        def key_of(m: Message) -> str:
            # Plain name when unique; else qualified by bus, and by id if still ambiguous.
            bus = getattr(m, "bus_name", None) or None
            if names[m.name] == 1:
                return m.name
            key = m.name if pairs[(m.name, bus)] > 1 and bus is None else f"{bus}:{m.name}"
            return f"{key}@0x{m.frame_id:X}" if pairs[(m.name, bus)] > 1 else key

        ordered = sorted(msgs, key=lambda m: (m.name, getattr(m, "bus_name", None) or "", m.frame_id))
        slots: list[MessageSlots] = []
        slot_names: list[str] = []
        e2e_count = 0
        for index, m in enumerate(ordered):
            key = key_of(m)
            spec = E2ESpec.from_message(m)
            signals = tuple(s.name for s in m.signals)
            local = {name: i for i, name in enumerate(signals)}
            parent = tuple(local.get(s.multiplexer_signal, -1) if s.multiplexer_signal else -1 for s in m.signals)
            ids = tuple(frozenset(s.multiplexer_ids) if s.multiplexer_ids else None for s in m.signals)
            start = len(slot_names)
            slot_names.extend(f"{key}.{s}" for s in signals)
            slots.append(
                MessageSlots(
                    index=index,
                    key=key,
                    name=m.name,
                    bus=getattr(m, "bus_name", None) or None,
                    frame_id=int(m.frame_id),
                    is_extended=bool(m.is_extended_frame),
                    length=int(m.length),
                    start=start,
                    stop=len(slot_names),
                    signals=signals,
                    cycle_time_s=_cycle_time_s(m),
                    e2e=spec,
                    e2e_index=e2e_count if spec is not None else -1,
                    multiplexers=tuple(i for i, s in enumerate(m.signals) if s.is_multiplexer),
                    mux_parent=parent,
                    mux_ids=ids,
                )
            )
            if spec is not None:
                e2e_count += 1
        self.messages: tuple[MessageSlots, ...] = tuple(slots)
        self.slot_names: tuple[str, ...] = tuple(slot_names)
        self.n_signals = len(slot_names)
        self.n_messages = len(slots)
        self.e2e_messages: tuple[MessageSlots, ...] = tuple(s for s in slots if s.e2e is not None)
        #: slot -> message index, for vectorised validity.
        self.slot_message = np.zeros(self.n_signals, dtype=np.int64)
        for s in slots:
            self.slot_message[s.start : s.stop] = s.index
        self._slot_index: dict[str, int] = {name: i for i, name in enumerate(slot_names)}
        # Bare signal names (and "Message.Signal" with the plain message name) as aliases
        # where they are unambiguous: Z10 signal names are unique, other DBCs may not be.
        alias_count: dict[str, int] = {}
        alias_slot: dict[str, int] = {}
        for s in slots:
            for j, sig in enumerate(s.signals):
                for alias in (sig, f"{s.name}.{sig}"):
                    if alias in self._slot_index and self._slot_index[alias] != s.start + j:
                        continue
                    alias_count[alias] = alias_count.get(alias, 0) + 1
                    alias_slot[alias] = s.start + j
        for alias, count in alias_count.items():
            if count == 1:
                self._slot_index.setdefault(alias, alias_slot[alias])
        self._message_index: dict[str, int] = {s.key: s.index for s in slots}
        name_count: dict[str, int] = {}
        for s in slots:
            name_count[s.name] = name_count.get(s.name, 0) + 1
        for s in slots:
            if name_count[s.name] == 1:
                self._message_index.setdefault(s.name, s.index)
        self._by_bus_name: dict[tuple[str | None, str], int] = {(s.bus, s.name): s.index for s in slots}

    @classmethod
    def from_database(cls, db: Database) -> StoreLayout:
        return cls(db.messages)

    def slot(self, name: str) -> int:
        """Slot index of ``"Message.Signal"`` (or a bare signal name when unambiguous)."""
        try:
            return self._slot_index[name]
        except KeyError:
            raise LayoutError(f"expected a signal name of the store layout, but got {name!r}") from None

    def message(self, name: str) -> MessageSlots:
        """A message by key or (unambiguous) name."""
        try:
            return self.messages[self._message_index[name]]
        except KeyError:
            raise LayoutError(f"expected a message name of the store layout, but got {name!r}") from None

    def message_index(self, bus: str | None, name: str) -> int:
        """Index of the message ``name`` as received on ``bus`` (bus ignored if unambiguous)."""
        idx = self._by_bus_name.get((bus, name))
        if idx is None:
            idx = self._message_index.get(name)
        if idx is None:
            raise LayoutError(f"expected a message of the store layout, but got {name!r} on bus {bus!r}")
        return idx

    def __contains__(self, name: object) -> bool:
        return name in self._slot_index

    def slots_of(self, names: Sequence[str]) -> npt.NDArray[np.int64]:
        """Slot indices of several names at once (for the control loop's input map)."""
        return np.array([self.slot(n) for n in names], dtype=np.int64)


@dataclass
class Snapshot:
    """A consistent copy of the store at one instant (``now_s``, the store's clock)."""

    now_s: float
    generation: int
    value: npt.NDArray[np.float64]
    timestamp: npt.NDArray[np.float64]
    valid: npt.NDArray[np.uint8]
    message_last_rx_s: npt.NDArray[np.float64]
    message_stale: npt.NDArray[np.uint8]
    message_valid: npt.NDArray[np.uint8]
    message_e2e_state: npt.NDArray[np.uint8]  # SMState codes; NODATA for unprotected


@dataclass(frozen=True)
class SignalReading:
    value: float
    timestamp_s: float
    valid: bool


@dataclass(frozen=True)
class MessageStatus:
    name: str
    bus: str | None
    received: bool
    last_rx_s: float
    stale: bool
    valid: bool
    e2e_state: SMState | None
    frames: int
    decoded: int
    rejected: dict[str, int] = field(default_factory=dict)
    e2e_results: dict[str, int] = field(default_factory=dict)


class _EmptyFlat:
    """An empty flat decode with the kernel argument types (for warm-up)."""

    status = np.zeros(0, dtype=np.uint8)
    row_msg = np.zeros(0, dtype=np.int32)
    counts = np.zeros(0, dtype=np.int64)
    out_base = np.zeros(0, dtype=np.int64)
    values = np.zeros(0, dtype=np.float64)


class DecoderMap:
    """How one BatchDecoder's flat output lands in the store (see :meth:`SignalStore.decoder_map`).

    Per layout message a store mode: 0 = plain (last accepted row wins), 1 = multiplexed
    (each accepted row's present signals, walked in the kernel), 2 = Python path (a signal
    the decoder does not report, a multiplexer cycle or a mux id beyond int64).
    """

    def __init__(self, layout: StoreLayout, layout_index: Sequence[int], columns: Sequence[Sequence[str]]) -> None:
        n_msg, n_sig = layout.n_messages, layout.n_signals
        self.columns: tuple[tuple[str, ...], ...] = tuple(tuple(c) for c in columns)
        self.dec_to_lay = np.array(list(layout_index), dtype=np.int64)
        self.lay_to_dec = np.full(n_msg, -1, dtype=np.int64)
        self.lay_to_dec[self.dec_to_lay] = np.arange(self.dec_to_lay.shape[0], dtype=np.int64)
        self.lay_mode = np.zeros(n_msg, dtype=np.int8)
        self.msg_start = np.array([x.start for x in layout.messages], dtype=np.int64)
        self.msg_stop = np.array([x.stop for x in layout.messages], dtype=np.int64)
        self.slot_col = np.full(n_sig, -1, dtype=np.int64)
        self.slot_is_mux = np.zeros(n_sig, dtype=np.uint8)
        self.slot_parent = np.full(n_sig, -1, dtype=np.int64)
        self.slot_has_ids = np.zeros(n_sig, dtype=np.uint8)
        self.ids_lo = np.zeros(n_sig, dtype=np.int64)
        self.ids_hi = np.zeros(n_sig, dtype=np.int64)
        keys: list[int] = []
        for d, m in enumerate(self.dec_to_lay.tolist()):
            info = layout.messages[m]
            col_of = {name: c for c, name in enumerate(self.columns[d])}
            if any(sig not in col_of for sig in info.signals):
                self.lay_mode[m] = 2  # _store would look the column up and fail: same path
                continue
            for j, sig in enumerate(info.signals):
                self.slot_col[info.start + j] = col_of[sig]
            if not info.multiplexers:
                continue
            self.lay_mode[m] = 1
            for j in info.multiplexers:
                self.slot_is_mux[info.start + j] = 1
            for j in range(len(info.signals)):
                s = info.start + j
                parent, ids = info.mux_parent[j], info.mux_ids[j]
                if parent >= 0:
                    self.slot_parent[s] = info.start + parent
                if ids is not None:
                    if any(not -(2**63) <= v < 2**63 for v in ids):
                        self.lay_mode[m] = 2
                    self.slot_has_ids[s] = 1
                    self.ids_lo[s] = len(keys)
                    keys.extend(sorted(v for v in ids if -(2**63) <= v < 2**63))
                    self.ids_hi[s] = len(keys)
                # A cycle of multiplexers (no valid DBC has one): leave it to _present.
                j_up, steps = j, 0
                while j_up >= 0 and steps <= len(info.signals) + 1:
                    j_up = info.mux_parent[j_up]
                    steps += 1
                if j_up >= 0:
                    self.lay_mode[m] = 2
        self.ids_keys = np.array(keys, dtype=np.int64)
        self.fill = np.zeros(self.dec_to_lay.shape[0], dtype=np.int64)
        msg_extended = np.array([x.is_extended for x in layout.messages], dtype=np.int64)
        # One int64 pool for the kernel (one argument); the attributes are views into it.
        parts = [self.dec_to_lay, self.fill, self.lay_to_dec, self.lay_mode, self.msg_start, self.msg_stop,
                 msg_extended, self.slot_col, self.slot_is_mux, self.slot_parent, self.slot_has_ids,
                 self.ids_lo, self.ids_hi, self.ids_keys]
        self.pool = np.concatenate([np.asarray(x, dtype=np.int64) for x in parts])
        views = []
        at = 0
        for x in parts:
            views.append(self.pool[at : at + x.shape[0]])
            at += x.shape[0]
        (self.dec_to_lay, self.fill, self.lay_to_dec, self.lay_mode, self.msg_start, self.msg_stop,
         self.msg_extended, self.slot_col, self.slot_is_mux, self.slot_parent, self.slot_has_ids,
         self.ids_lo, self.ids_hi, self.ids_keys) = views
        #: Cached kernel arguments (SignalStore._static_args) and the store they belong to.
        self.static_args: tuple[Any, ...] | None = None
        self.static_owner: object | None = None
        self.static_epoch = -1

    def decoded(self, flat: Any) -> dict[int, dict[str, npt.NDArray[np.float64]]]:
        """The flat decode as ``{layout message: {signal: column}}`` (the Python store path)."""
        out: dict[int, dict[str, npt.NDArray[np.float64]]] = {}
        counts = flat.counts.tolist()
        bases = flat.out_base.tolist()
        for d, k in enumerate(counts):
            if k:
                cols = self.columns[d]
                block = flat.values[bases[d] : bases[d] + k * len(cols)].reshape(len(cols), k)
                out[int(self.dec_to_lay[d])] = dict(zip(cols, block))
        return out


class SignalStore:
    """Latest value / timestamp / validity per signal plus receive counters.

    Fed by the gateway (:meth:`ingest`); read by anyone (:meth:`snapshot`, :meth:`get`).
    """

    def __init__(
        self,
        layout: StoreLayout,
        *,
        stale_factor: float = 3.0,
        e2e_config: E2EConfig | None = None,
        e2e_configs: Mapping[str, E2EConfig] | None = None,
        deadline_factor: float = 2.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from vehicle_io import _e2e_kernels
        from vehicle_io.gateway.validity import E2EBank

        self._kernels = _e2e_kernels

        if not stale_factor > 0:
            raise ValueError(f"SignalStore: expected stale_factor > 0, but got {stale_factor}")
        self.layout = layout
        self.clock = clock
        self.stale_factor = float(stale_factor)
        self.lock = threading.RLock()
        s, m = layout.n_signals, layout.n_messages
        self.value = np.full(s, np.nan)
        self.timestamp = np.full(s, np.nan)
        self.valid = np.zeros(s, dtype=np.uint8)
        self.has_value = np.zeros(s, dtype=np.uint8)
        self.last_rx_s = np.full(m, np.nan)
        self.received = np.zeros(m, dtype=np.uint8)
        self.stale = np.zeros(m, dtype=np.uint8)
        self.message_valid = np.zeros(m, dtype=np.uint8)
        cycles = [x.cycle_time_s for x in layout.messages]
        self.stale_after_s = np.array(
            [c * self.stale_factor if c is not None else np.inf for c in cycles], dtype=np.float64
        )
        self.e2e_index = np.array([x.e2e_index for x in layout.messages], dtype=np.int64)
        self.msg_frames = np.zeros(m, dtype=np.int64)
        self.msg_decoded = np.zeros(m, dtype=np.int64)
        self.msg_rejected = np.zeros((m, _N_REASONS), dtype=np.int64)
        self.stale_events = 0
        self.generation = 0
        overrides = dict(e2e_configs or {})
        unknown = set(overrides) - {x.name for x in layout.e2e_messages} - {x.key for x in layout.e2e_messages}
        if unknown:
            raise ValueError(f"SignalStore: expected E2E-protected message names in e2e_configs, but got {sorted(unknown)}")
        base = e2e_config or E2EConfig()
        e2e_msgs = layout.e2e_messages
        self.e2e: E2EBank = E2EBank(
            [x.e2e for x in e2e_msgs if x.e2e is not None],
            [overrides.get(x.key, overrides.get(x.name, base)) for x in e2e_msgs],
            [x.cycle_time_s for x in e2e_msgs],
            deadline_factor=deadline_factor,
        )
        self._e2e_msg_index = np.array([x.index for x in e2e_msgs], dtype=np.int64)
        # Codes validate_rows gives: E2E state not VALID, stale on arrival, no message.
        self._codes = np.array([R_E2E_STATE, R_STALE, R_UNKNOWN_ID], dtype=np.uint8)
        self._bus_counters: dict[str, npt.NDArray[np.int64]] = {}
        self._counter_pool: tuple[tuple[str, ...], npt.NDArray[np.int64], tuple[Any, ...]] | None = None
        self._mux_cache: dict[tuple[int, tuple[int, ...]], tuple[int, ...]] = {}
        # The per-message and per-slot arrays live in three pools (views, updated in place as
        # before): the receive kernel then takes 3 arguments instead of 14 (numba unboxes
        # every array argument on every call). Order: see ingest_decoded in _e2e_kernels.
        self._pool_i64 = np.concatenate(
            [self.e2e_index, self.msg_frames, self.msg_decoded, np.full(m, -1, dtype=np.int64), layout.slot_message]
        ).astype(np.int64)
        self._pool_f64 = np.concatenate([self.stale_after_s, self.last_rx_s, self.value, self.timestamp]).astype(np.float64)
        self._pool_u8 = np.concatenate(
            [self.received, self.stale, self.message_valid, self.has_value, self.valid]
        ).astype(np.uint8)
        pi, pf, pu = self._pool_i64, self._pool_f64, self._pool_u8
        self.e2e_index, self.msg_frames, self.msg_decoded = pi[:m], pi[m : 2 * m], pi[2 * m : 3 * m]
        self._last_row_buf = pi[3 * m : 4 * m]
        self.stale_after_s, self.last_rx_s = pf[:m], pf[m : 2 * m]
        self.value, self.timestamp = pf[2 * m : 2 * m + s], pf[2 * m + s :]
        self.received, self.stale, self.message_valid = pu[:m], pu[m : 2 * m], pu[2 * m : 3 * m]
        self.has_value, self.valid = pu[3 * m : 3 * m + s], pu[3 * m + s :]
        # Scratch of ingest_decoded (used under the lock only).
        self._msg_index_buf = np.zeros(64, dtype=np.int64)
        self._position_buf = np.zeros(64, dtype=np.int64)
        self._args_epoch = 0
        self._fits_ok: tuple[np.ndarray, ...] | None = None  # arrays of the last snapshot that fit

    # ------------------------------------------------------------------ feeding
    def counters_for(self, bus: str) -> npt.NDArray[np.int64]:
        """The counter row of ``bus``: [seen, decoded, rejected per reason...] (creates it)."""
        row = self._bus_counters.get(bus)
        if row is None:
            row = self._bus_counters[bus] = np.zeros(2 + _N_REASONS, dtype=np.int64)
        return row

    def counter_rows(self, buses: Sequence[str]) -> npt.NDArray[np.int64]:
        """The counter rows of ``buses`` as one int64[B, 2 + reasons] array (for a kernel that
        feeds several buses in one call): from now on row ``i`` IS the counter row of
        ``buses[i]`` (:meth:`counters_for` hands out views of it), with the counts so far."""
        key = tuple(buses)
        pool = self._counter_pool
        if pool is not None and pool[0] == key and all(
            self._bus_counters.get(bus) is row for bus, row in zip(key, pool[2])
        ):
            return pool[1]
        names = list(dict.fromkeys(key))
        rows = np.zeros((len(names), 2 + _N_REASONS), dtype=np.int64)
        for i, bus in enumerate(names):
            rows[i] = self.counters_for(bus)
            self._bus_counters[bus] = rows[i]
        views = tuple(self._bus_counters[bus] for bus in key)
        self._counter_pool = (key, rows, views)
        return rows

    def ingest(
        self,
        bus: str,
        data: npt.NDArray[np.uint8],
        lengths: npt.NDArray[np.uint8],
        timestamps: npt.NDArray[np.float64],
        reason: npt.NDArray[np.uint8],
        msg_index: npt.NDArray[np.int64],
        position: npt.NDArray[np.int64],
        decoded: Mapping[int, Mapping[str, npt.NDArray[np.float64]]],
        now_s: float,
    ) -> npt.NDArray[np.uint8]:
        """Run receive validity on a decoded batch and store what passes.

        ``reason[i]`` is a reject code already known (or ACCEPT), ``msg_index[i]`` the layout
        message of row i (-1 if none), ``position[i]`` its row within ``decoded[msg_index[i]]``
        (the BatchDecoder columns of that message, keyed by layout message index).
        Updates ``reason`` in place with the E2E / staleness verdicts and returns it.
        """
        bank = self.e2e
        k = self._kernels
        with self.lock:
            last_row = np.full(self.layout.n_messages, -1, dtype=np.int64)
            accepted = k.validate_rows(
                reason, msg_index, timestamps, now_s, self.stale_after_s, self.e2e_index, _VERDICT, self._codes,
                CRC8_TABLE, data, lengths, bank.spec, bank.cfg, bank.last_counter, bank.sm_state, bank.window,
                bank.top, bank.status_counts, bank.cycle_s, bank.deadline_factor, bank.next_deadline_s,
                self.counters_for(bus), self.msg_frames, self.msg_decoded, self.msg_rejected,
                last_row, self.last_rx_s, self.received,
            )
            if accepted:
                self._store(last_row, reason, msg_index, position, timestamps, decoded)
            self._refresh(now_s)
            self.generation += 1
        return reason

    def count_failed(self, bus: str, reason: npt.NDArray[np.uint8]) -> None:
        """Count a batch the gateway could not process: every row as ``internal_error``."""
        with self.lock:
            reason[:] = R_INTERNAL_ERROR
            row = self.counters_for(bus)
            row[0] += reason.shape[0]
            row[2 + R_INTERNAL_ERROR] += reason.shape[0]

    def decoder_map(self, layout_index: Sequence[int], columns: Sequence[Sequence[str]]) -> DecoderMap | None:
        """The table :meth:`ingest_decoded` needs for one decoder: decoder message ``d`` is
        layout message ``layout_index[d]`` and reports signal columns ``columns[d]``.

        None when two decoder messages land on one layout message (use :meth:`ingest`).
        """
        if len(set(layout_index)) != len(layout_index):
            return None
        return DecoderMap(self.layout, layout_index, columns)

    def ingest_decoded(
        self,
        bus: str,
        ids: npt.NDArray[np.uint32],
        data: npt.NDArray[np.uint8],
        lengths: npt.NDArray[np.uint8],
        timestamps: npt.NDArray[np.float64],
        reason: npt.NDArray[np.uint8],
        flat: Any,
        dmap: DecoderMap,
        codec_reason: npt.NDArray[np.uint8],
        now_s: float,
    ) -> npt.NDArray[np.uint8]:
        """:meth:`ingest` of a BatchDecoder's flat output (``decode_flat`` of all N rows).

        Same effect as mapping the decode to layout rows (codec status -> ``codec_reason``
        for rows still ACCEPT; a frame format other than the message's -> unknown_id) and
        calling :meth:`ingest`, in one kernel call. Updates ``reason`` in place, returns it.
        """
        n = reason.shape[0]
        with self.lock:
            if self._msg_index_buf.shape[0] < n:
                size = max(n, 2 * self._msg_index_buf.shape[0])
                self._msg_index_buf = np.zeros(size, dtype=np.int64)
                self._position_buf = np.zeros(size, dtype=np.int64)
                self._args_epoch += 1  # every map's cached arguments name the old buffers
            static = dmap.static_args
            if static is None or dmap.static_owner is not self or dmap.static_epoch != self._args_epoch:
                static = self._static_args(dmap)
            accepted, went_stale, fallback = self._kernels.ingest_decoded(
                reason, ids, data, lengths, timestamps, flat.status, flat.row_msg, flat.counts, flat.out_base,
                flat.values, now_s, self.counters_for(bus), codec_reason, *static,
            )
            if fallback:
                self._store(self._last_row_buf, reason, self._msg_index_buf[:n], self._position_buf[:n], timestamps,
                            dmap.decoded(flat))
                self._refresh(now_s)
            else:
                self.stale_events += went_stale
            self.generation += 1
        return reason

    def _static_args(self, dmap: DecoderMap) -> tuple[Any, ...]:
        """The arguments of the ingest_decoded kernel that stay the same objects from call to
        call (every array of the store and its E2E bank is updated in place, never replaced)."""
        bank = self.e2e
        static = (
            self._msg_index_buf, self._position_buf, self._pool_i64, self._pool_f64, self._pool_u8,
            self.msg_rejected, dmap.pool, _VERDICT, self._codes, CRC8_TABLE,
            bank.spec, bank.cfg, bank.last_counter, bank.sm_state, bank.window, bank.top,
            bank.status_counts, bank.cycle_s, bank.deadline_factor, bank.next_deadline_s,
        )
        dmap.static_args = static
        dmap.static_owner = self
        dmap.static_epoch = self._args_epoch
        return static

    def _store(
        self,
        last_row: npt.NDArray[np.int64],
        reason: npt.NDArray[np.uint8],
        msg_index: npt.NDArray[np.int64],
        position: npt.NDArray[np.int64],
        timestamps: npt.NDArray[np.float64],
        decoded: Mapping[int, Mapping[str, npt.NDArray[np.float64]]],
    ) -> None:
        """Write accepted rows into the arrays: for each message its last accepted row wins
        (a multiplexed message: per signal, the last row that carries it)."""
        value, stamp, has = self.value, self.timestamp, self.has_value
        messages = self.layout.messages
        touched = np.flatnonzero(last_row >= 0)
        for m, r in zip(touched.tolist(), last_row[touched].tolist()):
            info = messages[m]
            if info.start == info.stop:
                continue
            cols = decoded[m]
            start, stop = info.start, info.stop
            if not info.multiplexers:
                k = position[r]
                value[start:stop] = [cols[sig][k] for sig in info.signals]
                stamp[start:stop] = timestamps[r]
                has[start:stop] = 1
                continue
            signals = info.signals
            for row in np.flatnonzero((msg_index == m) & (reason == ACCEPT)).tolist():
                k = position[row]
                t = timestamps[row]
                for j in self._present(info, cols, k):
                    value[start + j] = cols[signals[j]][k]
                    stamp[start + j] = t
                    has[start + j] = 1

    def _present(self, info: MessageSlots, cols: Mapping[str, npt.NDArray[np.float64]], k: int) -> tuple[int, ...]:
        """Local indices of the signals a multiplexed frame carries (cached per mux values)."""
        key_vals = []
        for j in info.multiplexers:
            v = cols[info.signals[j]][k]
            key_vals.append(int(v) if v == v else -1)  # NaN: the multiplexer itself is absent
        key = (info.index, tuple(key_vals))
        cached = self._mux_cache.get(key)
        if cached is not None:
            return cached
        mux_value = dict(zip(info.multiplexers, key_vals))
        memo: dict[int, bool] = {}

        def present(j: int, depth: int = 0) -> bool:
            if j in memo:
                return memo[j]
            parent = info.mux_parent[j]
            ids = info.mux_ids[j]
            if parent < 0 or ids is None or depth > len(info.signals):
                result = parent < 0 or ids is None
            else:
                result = present(parent, depth + 1) and mux_value.get(parent, -1) in ids
            memo[j] = result
            return result

        result = tuple(j for j in range(len(info.signals)) if present(j))
        if len(self._mux_cache) < 65536:
            self._mux_cache[key] = result
        return result

    def _refresh(self, now_s: float) -> None:
        """Recompute stale flags and validity at ``now_s``."""
        self.stale_events += self._kernels.refresh_validity(
            now_s, self.last_rx_s, self.stale_after_s, self.received, self.stale, self.e2e_index,
            self.e2e.sm_state, self.message_valid, self.has_value, self.layout.slot_message, self.valid,
        )

    def warm_up(self) -> None:
        """Compile (or load from cache) the kernels now, with the types the feed will use."""
        with self.lock:
            self.ingest(
                "", np.zeros((0, 8), dtype=np.uint8), np.zeros(0, dtype=np.uint8), np.zeros(0),
                np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), {}, 0.0,
            )
            flat = _EmptyFlat()
            self.ingest_decoded(
                "", np.zeros(0, dtype=np.uint32), np.zeros((0, 64), dtype=np.uint8), np.zeros(0, dtype=np.uint8),
                np.zeros(0), np.zeros(0, dtype=np.uint8), flat, DecoderMap(self.layout, [], []),
                np.zeros(256, dtype=np.uint8), 0.0,
            )
            del self._bus_counters[""]
            self.generation = 0
            bank = self.e2e
            empty = np.zeros(0, dtype=np.int64)
            self._kernels.no_new_data(empty, empty, bank.cfg, bank.sm_state, bank.window, bank.top)
            self._kernels.any_due(bank.next_deadline_s, 0.0)
            # snapshot_into, on a scratch snapshot (no value is received yet: nothing changes).
            self.snapshot(0.0, self.snapshot(0.0))
            self._fits_ok = None

    def check_deadlines(self, now_s: float | None = None) -> None:
        """Advance time-driven validity: NO_NEW_DATA for missed E2E deadlines, staleness."""
        now = self.clock() if now_s is None else now_s
        with self.lock:
            self.e2e.check_deadlines(now)
            self._refresh(now)

    def reset(self) -> None:
        """Forget every value and receiver state (counters are kept)."""
        with self.lock:
            self.value[:] = np.nan
            self.timestamp[:] = np.nan
            self.valid[:] = 0
            self.has_value[:] = 0
            self.last_rx_s[:] = np.nan
            self.received[:] = 0
            self.stale[:] = 0
            self.message_valid[:] = 0
            self.e2e.reset()
            self.generation += 1

    # ------------------------------------------------------------------ reading
    def snapshot(self, now_s: float | None = None, out: Snapshot | None = None, *,
                 deadlines_s: float | None = None) -> Snapshot:
        """A consistent copy of values, timestamps and validity, refreshed for staleness at now.

        Pass ``out`` (a previous snapshot) to reuse its arrays: no allocation per tick.
        ``deadlines_s``: first :meth:`check_deadlines` at that time, under the same lock (a
        refresh at ``now`` right after one at the same time changes nothing, so it is done once).
        """
        now = self.clock() if now_s is None else now_s
        with self.lock:
            if deadlines_s is not None:
                self.e2e.check_deadlines(deadlines_s)
                if deadlines_s != now:
                    self._refresh(deadlines_s)
            if out is not None and out.value.shape == self.value.shape and self._snapshot_fits(out):
                # One kernel call: refresh, then every copy (what the lines below do).
                self.stale_events += self._kernels.snapshot_into(
                    now, self._pool_i64, self._pool_f64, self._pool_u8, self.e2e.sm_state, self._e2e_msg_index,
                    self.layout.n_messages, out.value, out.timestamp, out.valid, out.message_last_rx_s,
                    out.message_stale, out.message_valid, out.message_e2e_state,
                )
                out.now_s = now
                out.generation = self.generation
                return out
            self._refresh(now)
            e2e_state = np.zeros(self.layout.n_messages, dtype=np.uint8)
            if self._e2e_msg_index.size:
                e2e_state[self._e2e_msg_index] = self.e2e.sm_state
            if out is None:
                return Snapshot(
                    now_s=now,
                    generation=self.generation,
                    value=self.value.copy(),
                    timestamp=self.timestamp.copy(),
                    valid=self.valid.copy(),
                    message_last_rx_s=self.last_rx_s.copy(),
                    message_stale=self.stale.copy(),
                    message_valid=self.message_valid.copy(),
                    message_e2e_state=e2e_state,
                )
            out.now_s = now
            out.generation = self.generation
            np.copyto(out.value, self.value)
            np.copyto(out.timestamp, self.timestamp)
            np.copyto(out.valid, self.valid)
            np.copyto(out.message_last_rx_s, self.last_rx_s)
            np.copyto(out.message_stale, self.stale)
            np.copyto(out.message_valid, self.message_valid)
            np.copyto(out.message_e2e_state, e2e_state)
            return out

    def _snapshot_fits(self, out: Snapshot) -> bool:
        """Whether ``out``'s arrays are what snapshot_into writes: this store's shapes, C-contiguous,
        writeable, the dtypes snapshot() gives (a snapshot this store made; checked once)."""
        arrays = (out.value, out.timestamp, out.valid, out.message_last_rx_s, out.message_stale, out.message_valid,
                  out.message_e2e_state)
        fits = self._fits_ok
        if fits is not None and all(a is b for a, b in zip(arrays, fits)):
            return True
        m, s = self.layout.n_messages, self.layout.n_signals
        want = ((out.value, np.float64, s), (out.timestamp, np.float64, s), (out.valid, np.uint8, s),
                (out.message_last_rx_s, np.float64, m), (out.message_stale, np.uint8, m),
                (out.message_valid, np.uint8, m), (out.message_e2e_state, np.uint8, m))
        ok = all(type(a) is np.ndarray and a.dtype == dt and a.shape == (n,) and a.flags.c_contiguous
                 and a.flags.writeable for a, dt, n in want)
        if ok:
            self._fits_ok = arrays
        return ok

    def get(self, name: str, now_s: float | None = None) -> SignalReading:
        """Value, receive time and validity (at ``now_s``) of one signal."""
        i = self.layout.slot(name)
        now = self.clock() if now_s is None else now_s
        with self.lock:
            self._refresh(now)
            return SignalReading(float(self.value[i]), float(self.timestamp[i]), bool(self.valid[i]))

    def value_of(self, name: str) -> float:
        """Latest stored value of a signal (NaN before the first accepted frame)."""
        return float(self.value[self.layout.slot(name)])

    def age_s(self, name: str, now_s: float | None = None) -> float:
        """Seconds since a signal (or a message) was last updated; inf if never."""
        now = self.clock() if now_s is None else now_s
        if name in self.layout:
            t = float(self.timestamp[self.layout.slot(name)])
        else:
            t = float(self.last_rx_s[self.layout.message(name).index])
        return math.inf if math.isnan(t) else now - t

    def is_valid(self, name: str, now_s: float | None = None) -> bool:
        return self.get(name, now_s).valid

    def message_status(self, name: str, now_s: float | None = None) -> MessageStatus:
        info = self.layout.message(name)
        m = info.index
        now = self.clock() if now_s is None else now_s
        with self.lock:
            self._refresh(now)
            state = self.e2e.state(info.e2e_index) if info.e2e_index >= 0 else None
            results = (
                {s.name.lower(): int(self.e2e.status_counts[info.e2e_index, s]) for s in CheckStatus}
                if info.e2e_index >= 0
                else {}
            )
            return MessageStatus(
                name=info.key,
                bus=info.bus,
                received=bool(self.received[m]),
                last_rx_s=float(self.last_rx_s[m]),
                stale=bool(self.stale[m]),
                valid=bool(self.message_valid[m]),
                e2e_state=state,
                frames=int(self.msg_frames[m]),
                decoded=int(self.msg_decoded[m]),
                rejected={r: int(c) for r, c in zip(REJECT_REASONS, self.msg_rejected[m]) if c},
                e2e_results=results,
            )

    def counters(self) -> dict[str, Any]:
        """Frames seen / decoded / rejected by reason, per bus and in total; stale events."""
        with self.lock:
            total = np.zeros(2 + _N_REASONS, dtype=np.int64)
            per_bus: dict[str, Any] = {}
            for bus, row in self._bus_counters.items():
                total += row
                per_bus[bus] = _row_dict(row)
            out = _row_dict(total)
            out["buses"] = per_bus
            out["stale_events"] = self.stale_events
            out["stale_now"] = int(np.count_nonzero(self.stale))
            out["messages_received"] = int(np.count_nonzero(self.received))
            if len(self.e2e):
                states = np.bincount(self.e2e.sm_state, minlength=4)
                out["e2e_states"] = {s.name: int(states[s]) for s in SMState}
            return out


def _row_dict(row: npt.NDArray[np.int64]) -> dict[str, Any]:
    return {
        "seen": int(row[0]),
        "decoded": int(row[1]),
        "rejected": {r: int(c) for r, c in zip(REJECT_REASONS, row[2:])},
    }
