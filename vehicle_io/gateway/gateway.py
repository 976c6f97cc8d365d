"""The live CAN gateway: python-can buses in, a validated SignalStore out.

Data path (DESIGN.md "Data flow")::

    bus --Notifier thread--> listener: (receive time, Message) appended to a deque
        --worker thread-->   batch of <= batch_max frames -> arrays (ids, data, lengths,
                             timestamps) -> BatchDecoder of that bus -> E2E + length +
                             staleness checks -> SignalStore (one lock per batch)
                         +-> routing rules -> transmit gate -> destination bus
                         +-> black box ring buffer, recorder queue (writer thread)

The listener does nothing but stamp and append, so the Notifier thread never waits for
decoding. The worker wakes as soon as a frame is queued and processes at most one batch
per ``batch_period_s``: a frame after a quiet spell goes through at once, under load frames
gather for up to one period (bounded added latency, bounded per-batch overhead). Every
``DEADLINE_TICK_S`` it also runs the time-driven checks (E2E NO_NEW_DATA, staleness).

Python's garbage collector can pause every thread for tens of ms when the process holds
many objects; a long-running gateway process does well to call ``gc.freeze()`` once its
set-up is done (tools/bench_gateway.py does).

Time: every receive timestamp in the store is the gateway's ``clock`` (monotonic by
default) read when the frame reached the listener; bus timestamps (epoch, interface
defined) are kept for the recordings only. Inject a clock for deterministic tests.

Transmit: :meth:`Gateway.send` is the one path out; it goes through the
:class:`~vehicle_io.gateway.transmit.TransmitGate` (default deny) and fills the E2E counter
and CRC of safety-relevant messages.

The gateway never closes the buses it is given: whoever opened them shuts them down.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from os import PathLike
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

import can
import numpy as np
import numpy.typing as npt

from vehicle_io.e2e import COUNTER_MODULO, CRC8_TABLE, E2EConfig, E2ESpec, protect
from vehicle_io.errors import BusConfigError, TransmitBlocked, VehicleIoError
from vehicle_io.gateway.recorder import FLAG_BRS, FLAG_ESI, FLAG_FD, FLAG_TX, BlackBox, TrafficRecorder
from vehicle_io.gateway.routing import RouteRule, Router
from vehicle_io.gateway.store import (
    ACCEPT,
    R_BAD_LENGTH,
    R_BAD_MUX,
    R_ERROR_FRAME,
    R_OWN_TX,
    R_REMOTE_FRAME,
    R_TOO_SHORT,
    R_UNKNOWN_ID,
    R_UNSUPPORTED,
    REJECT_REASONS,
    _VERDICT,
    SignalStore,
    Snapshot,
    StoreLayout,
)
from vehicle_io.gateway.transmit import TransmitGate

if TYPE_CHECKING:
    from cantools.database.can import Database

CAN_EFF_FLAG = 0x80000000
CAN_RTR_FLAG = 0x40000000
CAN_ERR_FLAG = 0x20000000
CAN_EFF_MASK = 0x1FFFFFFF
CAN_SFF_MASK = 0x7FF
MAX_DATA = 64
#: How often the worker runs the time-driven checks (E2E NO_NEW_DATA, staleness) when it is
#: not already awake for frames. Staleness itself is exact at any read: snapshot() refreshes.
DEADLINE_TICK_S = 0.002

# Codec status -> reject reason (statuses 1..4; 0 is OK; a status a newer codec may add
# counts as unsupported). 256 entries: plain indexing by a uint8 status can never miss.
_CODEC_REASON = np.full(256, R_UNSUPPORTED, dtype=np.uint8)
_CODEC_REASON[:5] = (ACCEPT, R_UNKNOWN_ID, R_TOO_SHORT, R_BAD_MUX, R_UNSUPPORTED)

_NO_ROWS = np.zeros(0, dtype=np.int64)
#: Rows of one bus that process_multi's one-call path takes (its scratch is sized for it).
_MULTI_MAX_ROWS = 256
#: Up to this many rows a batch's max is taken in Python (cheaper than a numpy reduction).
_SMALL_N = 64
_ACCEPTS = np.full(_SMALL_N, ACCEPT, dtype=np.uint8)
_ACCEPTS.flags.writeable = False
_DT_U8 = np.dtype(np.uint8)
_DT_U32 = np.dtype(np.uint32)
_DT_F64 = np.dtype(np.float64)
_C_WRITEABLE = 0x1 | 0x400  # NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_WRITEABLE

_UNRESOLVED = object()

_LIVE: weakref.WeakSet[Gateway] = weakref.WeakSet()


@atexit.register
def _shutdown_live_gateways() -> None:
    # A Ctrl-C that escapes without a ``with`` still flushes the recordings.
    for gateway in list(_LIVE):
        gateway.shutdown()


class _MultiPlan(NamedTuple):
    """Gateway.process_multi's one-call path for a tuple of buses (see Gateway._multi_plan)."""

    tab: npt.NDArray[np.int64]  # receive_segments' table, one row per bus
    out: npt.NDArray[np.int64]  # its per-segment results
    now: npt.NDArray[np.float64]  # its per-segment clock readings
    views: dict[str, tuple[np.ndarray, ...]]  # per bus: counts, out_base, values, status, row_msg
    dmaps: dict[str, Any]
    pools: tuple[np.ndarray, ...]  # i64, i32, u32, u64, f64, u8
    counters: list[Any]  # [the store's counter rows of the buses, once every bus has one]


class GatewayInputError(VehicleIoError, ValueError):
    """A batch handed to :meth:`Gateway.process_batch` has the wrong shape or type."""


class _BusListener(can.Listener):
    """Stamps and queues; the only code that runs in python-can's Notifier thread."""

    def __init__(self, bus_name: str, clock: Callable[[], float], wake: threading.Event) -> None:
        self.bus_name = bus_name
        self.buffer: deque[tuple[float, can.Message]] = deque()
        self._clock = clock
        self._wake = wake
        self.errors = 0
        self.last_error: str | None = None

    def on_message_received(self, msg: can.Message) -> None:
        self.buffer.append((self._clock(), msg))
        if not self._wake.is_set():
            self._wake.set()

    def on_error(self, exc: Exception) -> None:
        # Counted, never raised: a flaky adapter must not kill the receive thread. The pause
        # keeps a permanently failing bus (unplugged adapter) from spinning a core.
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.01)

    def stop(self) -> None:
        pass


class Gateway:
    """Receive, check, decode and store the traffic of named buses; the one transmit path.

    ``buses``: name -> python-can bus (``pt``, ``body``, ``ads`` or any name). Each bus's
    frames are decoded with the messages of the DBC bus of the same name
    (:func:`vehicle_io.dbc.split_by_bus`); a bus name the database does not know, or a
    database without bus names, decodes with every message.

    ``batch_max`` caps the frames of one bus decoded in one call; ``batch_period_s`` is the
    shortest interval between two batches (see the module docstring). ``stale_factor``: a
    cyclic message is stale after that many cycle times without an accepted frame;
    ``deadline_factor``: E2E NO_NEW_DATA after that many cycle times of silence. 2.5 by
    default: a bench PC sees a 10 ms message up to ~16 ms apart through a USB adapter or
    socketcand (measured 15.8 ms through ``z10 sim``), and a tighter deadline flags the PC's
    scheduling, not the van.
    ``transmit_gate``: default a gate with nothing armed (listen-only). ``record_path``:
    record raw traffic (.log/.asc/.blf). ``blackbox_s``: seconds kept for
    :meth:`dump_blackbox`. ``clock``: the time base of every receive timestamp.

    Use as a context manager, or call :meth:`shutdown` (idempotent) when done.
    """

    def __init__(
        self,
        buses: Mapping[str, can.BusABC] | None = None,
        db: Database | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        batch_max: int = 256,
        batch_period_s: float = 0.001,
        stale_factor: float = 3.0,
        e2e_config: E2EConfig | None = None,
        e2e_configs: Mapping[str, E2EConfig] | None = None,
        deadline_factor: float = 2.5,
        transmit_gate: TransmitGate | None = None,
        routes: Iterable[RouteRule] = (),
        record_path: str | PathLike[str] | None = None,
        blackbox_s: float = 10.0,
        notifier_timeout_s: float = 0.05,
        start: bool = True,
    ) -> None:
        if not 1 <= batch_max <= 1_000_000:
            raise ValueError(f"Gateway: expected batch_max 1..1000000, but got {batch_max!r}")
        if not batch_period_s > 0:
            raise ValueError(f"Gateway: expected batch_period_s > 0, but got {batch_period_s!r}")
        if db is None:
            from vehicle_io.dbc import load_database

            db = load_database()
        self.db = db
        self.clock = clock
        self.batch_max = int(batch_max)
        self.batch_period_s = float(batch_period_s)
        self._buses: dict[str, can.BusABC] = dict(buses or {})
        self.layout = StoreLayout.from_database(db)
        self.store = SignalStore(
            self.layout,
            stale_factor=stale_factor,
            e2e_config=e2e_config,
            e2e_configs=e2e_configs,
            deadline_factor=deadline_factor,
            clock=clock,
        )
        self.gate = transmit_gate if transmit_gate is not None else TransmitGate()
        rules = list(routes)
        unknown = Router.rules_for(rules, self._buses)
        if unknown:
            raise BusConfigError(
                f"route rules: expected bus names among {sorted(self._buses)}, but got {unknown}"
            )
        self.router = Router(rules)
        self.blackbox = BlackBox(blackbox_s, clock=clock)
        self.recorder: TrafficRecorder | None = None
        self._process_lock = threading.RLock()
        self._tx_lock = threading.Lock()
        self._tx_counter: dict[tuple[str, int], int] = {}
        #: per (bus, id): the last payload, its E2E spec and its protected frame per counter value
        self._tx_protected: dict[tuple[str, int], tuple[bytes, E2ESpec, list[bytes | None]]] = {}
        self._commit_hooks: list[Callable[[str, npt.NDArray[np.uint8]], None]] = []
        self._decoders: dict[str, Any] = {}
        self._index_maps: dict[str, dict[str, int]] = {}
        self._split: dict[str, Any] | None = None
        self._tx_specs = self._build_tx_specs()
        #: per bus: its ``send_data`` (a bus that takes frames as fields) or None
        self._direct_senders: dict[str, Any] = {}
        self._multi_plans: dict[tuple[str, ...], _MultiPlan | None] = {}
        self._db_buses = {info.bus for info in self.layout.messages if info.bus}
        self._errors: dict[str, int] = {}
        self._last_error: str | None = None
        self._seen_before = 0
        self._msg_extended = np.array([m.is_extended for m in self.layout.messages], dtype=bool)
        self._wake = threading.Event()
        self._stopping = False
        self._shutdown_done = False
        self._listeners: dict[str, _BusListener] = {}
        self._notifiers: list[can.Notifier] = []
        self._worker: threading.Thread | None = None
        self._notifier_timeout_s = float(notifier_timeout_s)
        self._warm_up()
        if record_path is not None:
            self.recorder = TrafficRecorder(record_path, channels=list(self._buses))
        _LIVE.add(self)
        if start:
            self.start()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Attach to every bus (python-can Notifier) and start the worker thread."""
        if self._worker is not None or self._shutdown_done:
            return
        self._worker = threading.Thread(target=self._run, name="z10-gateway worker", daemon=True)
        self._worker.start()
        try:
            for name, bus in self._buses.items():
                listener = _BusListener(name, self.clock, self._wake)
                self._listeners[name] = listener
                try:
                    notifier = can.Notifier(bus, [listener], timeout=self._notifier_timeout_s)
                except ValueError as err:
                    raise BusConfigError(f"bus {name!r}: cannot attach the gateway: {err}") from err
                self._notifiers.append(notifier)
        except BaseException:
            self.shutdown()
            raise

    def __enter__(self) -> Gateway:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop receiving, process every frame already received, flush the recording.

        Idempotent. The buses stay open (their owner closes them).
        """
        if self._shutdown_done:
            return
        self._shutdown_done = True
        for notifier in self._notifiers:
            notifier.stop(timeout=timeout_s)
        self._stopping = True
        self._wake.set()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout_s)
        # Frames that raced the stop (or a worker that never started) are processed here.
        self._drain()
        if self.recorder is not None:
            self.recorder.stop(timeout_s)
        _LIVE.discard(self)

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    @property
    def bus_names(self) -> list[str]:
        return list(self._buses)

    def add_commit_hook(self, hook: Callable[[str, npt.NDArray[np.uint8]], None]) -> None:
        """Call ``hook(bus, reasons)`` after each batch is visible in the store (worker thread).

        ``reasons`` holds one code per frame of the batch (255 = stored, else an index into
        REJECT_REASONS). Meant for measurements and tests; keep it quick.
        """
        self._commit_hooks.append(hook)

    # ------------------------------------------------------------------ set-up helpers
    def _bus_db(self, bus: str) -> Any:
        if self._split is None:
            from vehicle_io.dbc import split_by_bus

            named = any(getattr(m, "bus_name", None) for m in self.db.messages)
            self._split = split_by_bus(self.db) if named else {}
        return self._split.get(bus, self.db)

    def _decoder(self, bus: str) -> tuple[Any, dict[str, int]]:
        decoder = self._decoders.get(bus)
        if decoder is None:
            from vehicle_io.codec import BatchDecoder

            sub = self._bus_db(bus)
            key = bus if sub is not self.db else ""
            decoder = self._decoders.get(key)
            if decoder is None:
                decoder = BatchDecoder(sub)
                self._decoders[key] = decoder
                bus_of = bus if key else None
                self._index_maps[key] = {
                    name: self._message_index(bus_of, name) for name in decoder.message_names
                }
            self._decoders[bus] = decoder
            self._index_maps[bus] = self._index_maps[key]
        return decoder, self._index_maps[bus]

    def _message_index(self, bus: str | None, name: str) -> int:
        frame_id = None
        if "@0x" in name and not any(info.name == name for info in self.layout.messages):
            # The codec names a later duplicate "NAME@0xID".
            name, _, hex_id = name.rpartition("@0x")
            frame_id = int(hex_id, 16)
        for info in self.layout.messages:
            if frame_id is not None and info.frame_id != frame_id:
                continue
            if info.name == name and (bus is None or info.bus == bus):
                return info.index
        for info in self.layout.messages:  # the bus has no DBC of its own: any such message
            if info.name == name and (frame_id is None or info.frame_id == frame_id):
                return info.index
        raise VehicleIoError(f"gateway: decoder reports message {name!r} the store layout does not have")

    def _build_tx_specs(self) -> dict[tuple[str | None, int, bool], E2ESpec]:
        specs: dict[tuple[str | None, int, bool], E2ESpec] = {}
        for info in self.layout.e2e_messages:
            if info.e2e is not None:
                specs[(info.bus, info.frame_id, info.is_extended)] = info.e2e
                specs.setdefault((None, info.frame_id, info.is_extended), info.e2e)
        return specs

    def _warm_up(self) -> None:
        """Compile/load the kernels before the first frame so it sees no compile pause."""
        names = list(self._buses) or [""]
        ids = np.zeros(1, dtype=np.uint32)
        data = np.zeros((1, 8), dtype=np.uint8)
        for name in names:
            decoder, _ = self._decoder(name)
            decoder.decode(ids, data, np.zeros(1, dtype=np.uint8))
        from vehicle_io.gateway import _kernels

        self._kernels = _kernels
        empty = np.zeros(0, dtype=np.int64)
        _kernels.map_rows(
            empty, empty, empty, empty, ids, self._msg_extended, np.zeros(1, dtype=np.int64),
            np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.uint8), R_UNKNOWN_ID,
        )
        self.store.warm_up()
        plan = self._multi_plan(tuple(self._buses)) if self._buses else None
        if plan is not None:
            self._multi_plans[tuple(self._buses)] = plan
            store = self.store
            bank = store.e2e
            _kernels.receive_segments(
                np.zeros((0, 27), dtype=np.int64), ids, np.zeros((1, MAX_DATA), dtype=np.uint8),
                np.zeros(1, dtype=np.uint8), np.zeros(1), np.zeros(1, dtype=np.uint8), np.zeros(0),
                np.zeros((0, 3), dtype=np.int64), _CODEC_REASON, np.zeros((0, 2 + len(REJECT_REASONS)), dtype=np.int64),
                *plan.pools, store._msg_index_buf, store._position_buf, store._pool_i64, store._pool_f64,
                store._pool_u8, store.msg_rejected, _VERDICT, store._codes, CRC8_TABLE, bank.spec, bank.cfg,
                bank.last_counter, bank.sm_state, bank.window, bank.top, bank.status_counts, bank.cycle_s,
                bank.deadline_factor, bank.next_deadline_s,
            )

    # ------------------------------------------------------------------ receive path
    def _run(self) -> None:
        # At most one batch per batch_period_s: a frame after a quiet spell is processed at
        # once, under load frames gather for up to one period. That bounds the per-batch
        # overhead (decode call, store commit) to 1/batch_period_s per second, which keeps
        # the GIL free for the receive threads, and bounds the added latency to one period.
        wake = self._wake
        period = self.batch_period_s
        tick = max(period, DEADLINE_TICK_S)
        pace = time.perf_counter  # real time, whatever clock the store runs on
        next_batch = 0.0
        next_tick = 0.0
        while not self._stopping:
            wake.wait(tick)
            wake.clear()
            delay = next_batch - pace()
            if delay > 0:
                time.sleep(delay)
            started = pace()
            next_batch = started + period
            now = self.clock()
            self._drain()
            if started >= next_tick:
                next_tick = started + tick
                self.store.check_deadlines(now)

    def _drain(self) -> None:
        # a snapshot: start() attaches the buses while this worker already runs
        for name, listener in tuple(self._listeners.items()):
            buffer = listener.buffer
            popleft = buffer.popleft
            while buffer:
                items: list[tuple[float, can.Message]] = []
                append = items.append
                try:
                    for _ in range(self.batch_max):
                        append(popleft())
                except IndexError:
                    pass
                if items:
                    self._process_messages(name, items)

    def _process_messages(self, bus: str, items: list[tuple[float, can.Message]]) -> None:
        """Turn received Messages into the array batch and process it."""
        msgs = [m for _, m in items]
        if self.recorder is not None or self.router:
            for m in msgs:
                m.channel = bus  # the recording and the routed copies name the bus
        converted = _convert_plain(msgs)
        if converted is None:
            converted = _convert_careful(msgs)
        ids, data, lengths, flags, bus_ts, reason = converted
        times = np.array([t for t, _ in items], dtype=np.float64)
        self._process(bus, ids, data, lengths, times, reason, msgs, flags, bus_ts)

    def process_batch(
        self,
        bus: str,
        ids: npt.ArrayLike,
        data: npt.ArrayLike,
        lengths: npt.ArrayLike | None = None,
        timestamps: npt.ArrayLike | None = None,
    ) -> npt.NDArray[np.uint8]:
        """Feed a frame batch directly (replay, tests, another receive path).

        ``ids`` uint32[N] with the SocketCAN flags: bit 31 extended, bit 30 remote, bit 29
        error frame. ``data`` uint8[N, W] zero padded; ``lengths`` bytes per row (default W);
        ``timestamps`` receive times on the gateway clock (default: now).
        Returns the per-row verdict: 255 stored, else the index of the reject reason in
        :data:`~vehicle_io.gateway.store.REJECT_REASONS`.
        """
        ids_arr = np.asarray(ids)
        if ids_arr.ndim != 1:
            raise GatewayInputError(f"process_batch: expected ids of shape (N,), but got {ids_arr.shape}")
        n = ids_arr.shape[0]
        if n and (ids_arr.dtype.kind not in "iu" or int(ids_arr.min()) < 0 or int(ids_arr.max()) > 0xFFFFFFFF):
            raise GatewayInputError(
                f"process_batch: expected integer ids in 0..0xFFFFFFFF, but got dtype {ids_arr.dtype}"
            )
        data_arr = np.asarray(data)
        if data_arr.ndim != 2 or data_arr.shape[0] != n or data_arr.dtype != np.uint8:
            raise GatewayInputError(
                f"process_batch: expected data uint8[{n}, W], but got {data_arr.dtype}{list(data_arr.shape)}"
            )
        width = data_arr.shape[1]
        if lengths is None:
            len_arr = np.full(n, min(width, MAX_DATA + 1), dtype=np.int64)
        else:
            len_arr = np.asarray(lengths)
            if len_arr.shape != (n,) or (n and len_arr.dtype.kind not in "iu"):
                raise GatewayInputError(
                    f"process_batch: expected integer lengths of shape ({n},), but got {len_arr.dtype}{list(len_arr.shape)}"
                )
        if timestamps is None:
            times = np.full(n, self.clock(), dtype=np.float64)
        else:
            times = np.asarray(timestamps, dtype=np.float64)
            if times.shape != (n,):
                raise GatewayInputError(f"process_batch: expected timestamps of shape ({n},), but got {times.shape}")
        reason = np.full(n, ACCEPT, dtype=np.uint8)
        too_long = (len_arr > min(width, MAX_DATA)) | (len_arr < 0)
        reason[too_long] = R_BAD_LENGTH
        lengths_u8 = np.where(too_long, 0, len_arr).astype(np.uint8)
        data_use = np.ascontiguousarray(data_arr[:, :MAX_DATA])
        if not data_use.flags.writeable:  # a read-only view would make numba compile anew
            data_use = data_use.copy()
        return self._process(bus, ids_arr.astype(np.uint32), data_use, lengths_u8, times, reason, None, None, None)

    def process_frames(
        self,
        bus: str,
        ids: npt.NDArray[np.uint32],
        data: npt.NDArray[np.uint8],
        lengths: npt.NDArray[np.uint8],
        timestamps: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.uint8]:
        """Feed a batch already in the hot-path layout and handed over (the caller does not reuse it).

        Same result as :meth:`process_batch`, without its conversions: ``ids`` uint32[N],
        ``data`` uint8[N, 64] C-contiguous and writeable, ``lengths`` uint8[N] (<= 64),
        ``timestamps`` float64[N]. The black box keeps the arrays themselves (no copy). Raises
        :class:`GatewayInputError` for anything else, so a caller never gets a silent misread.
        """
        n = _hot_path_rows("process_frames", ids, data, lengths, timestamps)
        reason = _ACCEPTS[:n].copy() if n <= _SMALL_N else np.full(n, ACCEPT, dtype=np.uint8)
        # max() over the bytes: a numpy reduction costs more than the few rows of a tick.
        if n and (max(lengths.tobytes()) if n <= _SMALL_N else int(lengths.max())) > MAX_DATA:
            too_long = lengths > MAX_DATA
            reason[too_long] = R_BAD_LENGTH
            lengths = np.where(too_long, 0, lengths).astype(np.uint8)
        return self._process(bus, ids, data, lengths, timestamps, reason, None, None, None, owned=True)

    def process_multi(
        self,
        buses: Sequence[str],
        counts: Sequence[int],
        ids: npt.NDArray[np.uint32],
        data: npt.NDArray[np.uint8],
        lengths: npt.NDArray[np.uint8],
        timestamps: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.uint8]:
        """:meth:`process_frames` of several buses' frames in one batch (handed over likewise).

        Rows ``sum(counts[:i])`` to ``sum(counts[:i + 1])`` are the frames of ``buses[i]``; the
        result (store, counters, black box, recording, the per-row verdicts returned) is that
        of :meth:`process_frames` of each bus's rows in order. The usual case (plain 11-bit
        data frames, buses decoded through store maps, no commit hooks or routes) is one
        kernel call for every bus; anything else takes :meth:`process_frames` per bus.
        """
        n = _hot_path_rows("process_multi", ids, data, lengths, timestamps)
        sizes = [int(c) for c in counts]
        if len(sizes) != len(buses) or any(c < 0 for c in sizes) or sum(sizes) != n:
            raise GatewayInputError(
                f"process_multi: expected one non-negative count per bus ({len(buses)}) adding up to the "
                f"{max(n, 0)} rows, but got {sizes}"
            )
        names = tuple(buses)
        plan = None
        if (n and not self._commit_hooks and not self.router.rules and max(sizes) <= _MULTI_MAX_ROWS
                and (max(ids.tolist()) if n <= _SMALL_N else int(ids.max())) <= CAN_SFF_MASK
                and (max(lengths.tobytes()) if n <= _SMALL_N else int(lengths.max())) <= MAX_DATA):
            plan = self._multi_plans.get(names, _UNRESOLVED)
            if plan is _UNRESOLVED:
                plan = self._multi_plans[names] = self._multi_plan(names)
        if plan is None:
            reason = np.empty(n, dtype=np.uint8)
            at = 0
            for bus, size in zip(names, sizes):
                stop = at + size
                reason[at:stop] = self.process_frames(bus, ids[at:stop], data[at:stop], lengths[at:stop],
                                                      timestamps[at:stop])
                at = stop
            return reason
        return self._process_multi(plan, names, sizes, ids, data, lengths, timestamps)

    def _multi_plan(self, buses: tuple[str, ...]) -> _MultiPlan | None:
        """Pooled decoder tables and scratch of ``buses`` for receive_segments (None: a bus the
        one-call path does not cover: no store map, or a message only the Python path stores)."""
        entries = {}
        for bus in dict.fromkeys(buses):
            decoder, dmap = self._receive_map(bus)
            if dmap is None or bool((dmap.lay_mode == 2).any()):
                return None
            entries[bus] = (decoder, dmap)
        kinds = {"i64": np.int64, "i32": np.int32, "u32": np.uint32, "u64": np.uint64, "f64": np.float64,
                 "u8": np.uint8}
        parts: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
        size = dict.fromkeys(kinds, 0)

        def put(kind: str, arr: np.ndarray) -> list[int]:
            flat = np.ascontiguousarray(arr, dtype=kinds[kind]).ravel()
            lo = size[kind]
            parts[kind].append(flat)
            size[kind] = lo + flat.shape[0]
            return [lo, size[kind]]

        columns: dict[str, list[int]] = {}
        for bus, (decoder, dmap) in entries.items():
            plan_pool, std_table, ext_keys, ext_msg, slot_mask, slot_f = decoder._static
            status, row_msg, out_i64, out_u64, values = decoder._buffers(_MULTI_MAX_ROWS).kernel
            # receive_segments' table columns 2..25, in its order.
            columns[bus] = (put("i64", plan_pool) + put("i64", out_i64) + put("i64", dmap.pool)
                            + put("i32", std_table) + put("i32", ext_msg) + put("i32", row_msg)
                            + put("u32", ext_keys) + put("u64", slot_mask) + put("u64", out_u64)
                            + put("f64", slot_f) + put("f64", values) + put("u8", status))
        g = tuple(np.concatenate(parts[k]) if parts[k] else np.zeros(0, kinds[k]) for k in kinds)
        g_i64, g_i32, _, _, g_f64, g_u8 = g
        views: dict[str, tuple[np.ndarray, ...]] = {}
        for bus, c in columns.items():
            n_msg = int(g_i64[c[0]])
            out_i64 = g_i64[c[2]:c[3]]
            # What the Python store path reads of a segment's decode (FlatDecode fields).
            views[bus] = (out_i64[:n_msg], out_i64[2 * n_msg:3 * n_msg], g_f64[c[20]:c[21]], g_u8[c[22]:c[23]],
                          g_i32[c[10]:c[11]])
        tab = np.zeros((len(buses), 27), dtype=np.int64)
        for k, bus in enumerate(buses):
            tab[k, 2:26] = columns[bus]
        dmaps = {bus: dmap for bus, (_, dmap) in entries.items()}
        return _MultiPlan(tab, np.zeros((len(buses), 3), dtype=np.int64), np.zeros(len(buses)), views, dmaps, g,
                          [None])

    def _process_multi(
        self,
        plan: _MultiPlan,
        buses: tuple[str, ...],
        sizes: list[int],
        ids: npt.NDArray[np.uint32],
        data: npt.NDArray[np.uint8],
        lengths: npt.NDArray[np.uint8],
        timestamps: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.uint8]:
        n = ids.shape[0]
        reason = _ACCEPTS[:n].copy() if n <= _SMALL_N else np.full(n, ACCEPT, dtype=np.uint8)
        store = self.store
        tab, out, now = plan.tab, plan.out, plan.now
        segs = []  # (index, bus, lo, hi) of the non-empty segments, in order
        at = 0
        clock = self.clock
        for k, size in enumerate(sizes):
            if size:
                segs.append((k, buses[k], at, at + size))
                now[k] = clock()  # the per-bus path reads the clock once per non-empty batch
            at += size
        done = 0
        seen_before: list[int] = []
        with self._process_lock:
            try:
                with store.lock:
                    counter_rows = plan.counters[0]
                    pool = store._counter_pool
                    if counter_rows is None or pool is None or pool[1] is not counter_rows:
                        counter_rows = self._multi_counters(plan, buses, sizes)
                    tab[:, 1] = sizes
                    if store._msg_index_buf.shape[0] < _MULTI_MAX_ROWS:
                        store._msg_index_buf = np.zeros(_MULTI_MAX_ROWS, dtype=np.int64)
                        store._position_buf = np.zeros(_MULTI_MAX_ROWS, dtype=np.int64)
                        store._args_epoch += 1  # as ingest_decoded grows them: cached arguments renewed
                    seen_before = counter_rows[:, 0].tolist()
                    bank = store.e2e
                    done = self._kernels.receive_segments(
                        tab, ids, data, lengths, timestamps, reason, now, out, _CODEC_REASON, counter_rows,
                        *plan.pools, store._msg_index_buf, store._position_buf, store._pool_i64, store._pool_f64,
                        store._pool_u8, store.msg_rejected, _VERDICT, store._codes, CRC8_TABLE, bank.spec, bank.cfg,
                        bank.last_counter, bank.sm_state, bank.window, bank.top, bank.status_counts, bank.cycle_s,
                        bank.deadline_factor, bank.next_deadline_s,
                    )
                    results = out.tolist()
                    for k, bus, lo, hi in segs:
                        if k >= done:
                            break
                        accepted, went_stale, fallback = results[k]
                        if fallback:
                            self._multi_fallback(plan, bus, lo, hi, reason, timestamps, float(now[k]))
                        else:
                            store.stale_events += went_stale
                        store.generation += 1
            except Exception as err:  # noqa: BLE001 - a bug must not stop the receive path
                self._note_error("process", err)
                for k, bus, lo, hi in segs:
                    row = store.counters_for(bus)
                    if k >= done and (not seen_before or row[0] == seen_before[tab[k, 26]]):
                        store.count_failed(bus, reason[lo:hi])
                done = len(sizes)
            kept = [(bus, lo, hi) for k, bus, lo, hi in segs if k < done]
            if self.recorder is None:
                try:
                    self.blackbox.add_segments(kept, timestamps, ids, data, lengths)
                except Exception as err:  # noqa: BLE001
                    self._note_error("record/route", err)
            else:
                for bus, lo, hi in kept:
                    try:
                        self._after_receive(bus, ids[lo:hi], data[lo:hi], lengths[lo:hi], timestamps[lo:hi],
                                            reason[lo:hi], None, None, None, True)
                    except Exception as err:  # noqa: BLE001
                        self._note_error("record/route", err)
        for k, bus, lo, hi in segs:  # after a fallback: the per-bus path, in order
            if k >= done:
                reason[lo:hi] = self.process_frames(bus, ids[lo:hi], data[lo:hi], lengths[lo:hi], timestamps[lo:hi])
        return reason

    def _multi_counters(self, plan: _MultiPlan, buses: tuple[str, ...], sizes: list[int]) -> npt.NDArray[np.int64]:
        """The store's counter rows of ``buses`` as one array; the table's column 26 indexes it.

        A bus gets its row when it first has frames, as on the per-bus path (the store's
        counters list buses in that order); until then its column points at row 0, unused.
        """
        store = self.store
        known = store._bus_counters
        pooled = tuple(dict.fromkeys(bus for bus, size in zip(buses, sizes) if size or bus in known))
        rows = store.counter_rows(pooled)
        index = {bus: i for i, bus in enumerate(pooled)}
        plan.tab[:, 26] = [index.get(bus, 0) for bus in buses]
        # Cached only once every bus has its row (later calls add none).
        plan.counters[0] = rows if len(pooled) == len(set(buses)) else None
        return rows

    def _multi_fallback(self, plan: _MultiPlan, bus: str, lo: int, hi: int, reason: npt.NDArray[np.uint8],
                        timestamps: npt.NDArray[np.float64], now_s: float) -> None:
        """Store a segment the kernel left to the Python path, as ingest_decoded does (lock held)."""
        from vehicle_io.codec.decoder import FlatDecode

        store = self.store
        counts, base, values, status, row_msg = plan.views[bus]
        n = hi - lo
        flat = FlatDecode(status[:n], row_msg[:n], counts, counts, base, counts, values)
        store._store(store._last_row_buf, reason[lo:hi], store._msg_index_buf[:n], store._position_buf[:n],
                     timestamps[lo:hi], plan.dmaps[bus].decoded(flat))
        store._refresh(now_s)

    def _process(
        self,
        bus: str,
        ids: npt.NDArray[np.uint32],
        data: npt.NDArray[np.uint8],
        lengths: npt.NDArray[np.uint8],
        times: npt.NDArray[np.float64],
        reason: npt.NDArray[np.uint8],
        msgs: list[can.Message] | None,
        flags: npt.NDArray[np.uint8] | None,
        bus_ts: npt.NDArray[np.float64] | None,
        owned: bool = False,
    ) -> npt.NDArray[np.uint8]:
        n = ids.shape[0]
        if n == 0:
            return reason
        with self._process_lock:
            try:
                self._decode_and_store(bus, ids, data, lengths, times, reason)
            except Exception as err:  # noqa: BLE001 - a bug must not stop the receive path
                self._note_error("process", err)
                if self.store.counters_for(bus)[0] == self._seen_before:
                    self.store.count_failed(bus, reason)
                return reason
            for hook in self._commit_hooks:
                try:
                    hook(bus, reason)
                except Exception as err:  # noqa: BLE001
                    self._note_error("commit hook", err)
            try:
                self._after_receive(bus, ids, data, lengths, times, reason, msgs, flags, bus_ts, owned)
            except Exception as err:  # noqa: BLE001
                self._note_error("record/route", err)
        return reason

    def _note_error(self, where: str, err: BaseException) -> None:
        self._errors[where] = self._errors.get(where, 0) + 1
        self._last_error = f"{where}: {type(err).__name__}: {err}"

    def _decode_and_store(
        self,
        bus: str,
        ids: npt.NDArray[np.uint32],
        data: npt.NDArray[np.uint8],
        lengths: npt.NDArray[np.uint8],
        times: npt.NDArray[np.float64],
        reason: npt.NDArray[np.uint8],
    ) -> None:
        """Frame format checks, decode with the bus's decoder, then the store's validity."""
        n = ids.shape[0]
        self._seen_before = int(self.store.counters_for(bus)[0])
        if (max(ids.tolist()) if n <= _SMALL_N else int(ids.max())) > CAN_SFF_MASK:  # anything but plain 11-bit data frames
            is_err = (ids & np.uint32(CAN_ERR_FLAG)) != 0
            is_rtr = ((ids & np.uint32(CAN_RTR_FLAG)) != 0) & ~is_err
            is_ext = (ids & np.uint32(CAN_EFF_FLAG)) != 0
            open_rows = reason == ACCEPT
            reason[open_rows & is_err] = R_ERROR_FRAME
            reason[open_rows & is_rtr] = R_REMOTE_FRAME
            bad_std = ~is_ext & ((ids & np.uint32(CAN_EFF_MASK)) > CAN_SFF_MASK)
            reason[(reason == ACCEPT) & bad_std] = R_UNKNOWN_ID
        maps: dict[str, tuple[Any, Any]] | None = getattr(self, "_receive_maps", None)
        entry = maps.get(bus) if maps is not None else None
        decoder, dmap = entry if entry is not None else self._receive_map(bus)
        if dmap is not None:
            # Every row is decoded (rows already rejected are skipped by the store kernel):
            # one decode call and one store call, no per-message Python.
            flat = decoder.decode_flat(ids, data, lengths, reuse=True)  # under the process lock
            self.store.ingest_decoded(bus, ids, data, lengths, times, reason, flat, dmap, _CODEC_REASON, self.clock())
            return
        msg_index = np.full(n, -1, dtype=np.int64)
        position = np.full(n, -1, dtype=np.int64)
        decoded: dict[int, Mapping[str, npt.NDArray[np.float64]]] = {}
        ok = reason == ACCEPT
        if ok.any():
            decoder, index_map = self._decoder(bus)
            if ok.all():  # the usual case: no copies
                cand = _NO_ROWS
                result = decoder.decode(ids, data, lengths)
                reason[:] = _CODEC_REASON[result.status]
            else:
                cand = np.flatnonzero(ok)
                result = decoder.decode(ids[cand], data[cand], lengths[cand])
                reason[cand] = _CODEC_REASON[result.status]
            parts: list[npt.NDArray[np.int64]] = []
            owners: list[int] = []
            for name, cols in result.items():
                m = index_map[name]
                decoded[m] = cols
                parts.append(cols["_row"])
                owners.append(m)
            if parts:
                self._kernels.map_rows(
                    np.concatenate(parts), np.array([p.shape[0] for p in parts], dtype=np.int64),
                    np.array(owners, dtype=np.int64), cand, ids, self._msg_extended, msg_index, position,
                    reason, R_UNKNOWN_ID,
                )
        self.store.ingest(bus, data, lengths, times, reason, msg_index, position, decoded, self.clock())

    def _receive_map(self, bus: str) -> tuple[Any, Any]:
        """The bus's decoder and its store map (None: a layout only the general path handles)."""
        maps: dict[str, tuple[Any, Any]] | None = getattr(self, "_receive_maps", None)
        if maps is None:
            maps = self._receive_maps = {}
        entry = maps.get(bus)
        if entry is None:
            decoder, index_map = self._decoder(bus)
            names = decoder.message_names
            dmap = self.store.decoder_map([index_map[name] for name in names], [decoder.signal_names(name) for name in names])
            entry = maps[bus] = (decoder, dmap)
        return entry

    def _after_receive(
        self,
        bus: str,
        ids: npt.NDArray[np.uint32],
        data: npt.NDArray[np.uint8],
        lengths: npt.NDArray[np.uint8],
        times: npt.NDArray[np.float64],
        reason: npt.NDArray[np.uint8],
        msgs: list[can.Message] | None,
        flags: npt.NDArray[np.uint8] | None,
        bus_ts: npt.NDArray[np.float64] | None,
        owned: bool = False,
    ) -> None:
        """Black box, recording and routing: raw traffic, whatever the checks said."""
        # Arrays built from bus Messages (or handed over) are this batch's own; caller arrays are copied.
        self.blackbox.add_batch(bus, times, ids, data, lengths, flags, bus_ts, copy=msgs is None and not owned)
        routes: list[tuple[int, int]] = []
        if self.router.rules:  # bool(self.router) without the method call
            eligible = ((ids & np.uint32(CAN_ERR_FLAG)) == 0) & (reason != R_OWN_TX) & (reason != R_BAD_LENGTH)
            routes = self.router.select(bus, ids, times, eligible)
        if msgs is None and (self.recorder is not None or routes):
            msgs = [_message_from_row(bus, ids[i], data[i], lengths[i], times[i]) for i in range(ids.shape[0])]
        if self.recorder is not None and msgs is not None:
            self.recorder.record_many(msgs)
        for rule_index, row in routes:
            assert msgs is not None
            rule = self.router.rules[rule_index]
            try:
                self._transmit(rule.dst, msgs[row], fill_e2e=False)
            except TransmitBlocked:
                self.router.count(rule_index, "blocked")
            except can.CanError:
                self.router.count(rule_index, "send_error")
            else:
                self.router.count(rule_index, "forwarded")

    def check_deadlines(self, now_s: float | None = None) -> None:
        """Run the time-driven checks now (the worker does it every tick by itself)."""
        with self._process_lock:
            self.store.check_deadlines(now_s)

    def snapshot(self, now_s: float, out: Snapshot | None = None, *, deadlines_s: float | None = None) -> Snapshot:
        """The store's snapshot at ``now_s`` (into ``out``); with ``deadlines_s``, first
        :meth:`check_deadlines` at that time, in the same call (the control loop's tick)."""
        with self._process_lock:
            return self.store.snapshot(now_s, out, deadlines_s=deadlines_s)

    # ------------------------------------------------------------------ transmit path
    def send(self, bus_name: str, message: can.Message, *, timeout_s: float | None = None) -> can.Message:
        """Send ``message`` on ``bus_name`` through the transmit gate: the one path out.

        Refuses (TransmitBlocked, counted) unless the bus is armed and (id, bus, length) is
        allowlisted. For a safety-relevant message, the alive counter (per bus and id,
        0..14) and the CRC are filled in here, whatever the caller put in those bytes.
        Returns the frame as sent.
        """
        return self._transmit(bus_name, message, fill_e2e=True, timeout_s=timeout_s)

    def _tx_bus(self, bus_name: str) -> can.BusABC:
        """The bus to send on, or TransmitBlocked (counted): the gateway shut down, an unknown bus."""
        if self._shutdown_done:
            self.gate.count(bus_name, "blocked_not_armed")
            raise TransmitBlocked(f"transmit blocked on {bus_name!r}: expected a running gateway, but it is shut down")
        bus = self._buses.get(bus_name)
        if bus is None:
            self.gate.count(bus_name, "blocked_unknown_bus")
            raise TransmitBlocked(
                f"transmit blocked: expected a bus among {sorted(self._buses)}, but got {bus_name!r}"
            )
        return bus

    def _transmit(
        self, bus_name: str, message: can.Message, *, fill_e2e: bool, timeout_s: float | None = None
    ) -> can.Message:
        bus = self._tx_bus(bus_name)
        if message.is_error_frame:
            self.gate.count(bus_name, "blocked_not_allowed")
            raise TransmitBlocked(f"transmit blocked on {bus_name!r}: expected a data or remote frame, but got an error frame")
        length = message.dlc if message.is_remote_frame else len(message.data)
        self.gate.check(bus_name, message.arbitration_id, length, is_extended=message.is_extended_id)
        return self._emit(
            bus_name, bus, message.arbitration_id, message.is_extended_id, bytes(message.data),
            is_remote=message.is_remote_frame, is_fd=message.is_fd, bitrate_switch=message.bitrate_switch,
            error_state_indicator=message.error_state_indicator, dlc=message.dlc, fill_e2e=fill_e2e,
            timeout_s=timeout_s,
        )

    def send_payload(
        self,
        bus_name: str,
        frame_id: int,
        is_extended: bool,
        payload: bytes,
        is_fd: bool,
        *,
        timeout_s: float | None = None,
    ) -> can.Message:
        """:meth:`send` for an already-encoded data frame, without building a Message first.

        The control loop's path: the same refusals (shut down, unknown bus, gate: armed and
        allowlisted (id, bus, length)), the same E2E fill and accounting as :meth:`send` of
        ``can.Message(arbitration_id=frame_id, is_extended_id=is_extended, data=payload,
        is_fd=is_fd, bitrate_switch=is_fd)``; only the one Message sent is built.
        """
        bus = self._tx_bus(bus_name)
        self.gate.check(bus_name, frame_id, len(payload), is_extended=is_extended)
        return self._emit(bus_name, bus, frame_id, is_extended, payload, is_remote=False, is_fd=is_fd,
                          bitrate_switch=is_fd, error_state_indicator=False, dlc=len(payload), fill_e2e=True,
                          timeout_s=timeout_s)

    def send_data(
        self,
        bus_name: str,
        frame_id: int,
        is_extended: bool,
        payload: bytes,
        is_fd: bool,
        *,
        timeout_s: float | None = None,
    ) -> None:
        """:meth:`send_payload` without handing the frame back: the control loop's path.

        The same refusals, E2E fill, counters, black box and recording. A bus that offers
        ``send_data(arbitration_id, data, *, is_extended_id, is_fd, bitrate_switch, timeout)``
        (the rig's ``hilbus``) gets the frame as fields, so no python-can Message is built at
        all unless a recording needs one; any other bus gets the Message :meth:`send` would send.
        """
        bus = self._tx_bus(bus_name)
        self.gate.check(bus_name, frame_id, len(payload), is_extended=is_extended)
        direct = self._direct_senders.get(bus_name, _UNRESOLVED)
        if direct is _UNRESOLVED:
            direct = getattr(bus, "send_data", None)
            self._direct_senders[bus_name] = direct = direct if callable(direct) else None
        if direct is None or self.recorder is not None:
            self._emit(bus_name, bus, frame_id, is_extended, payload, is_remote=False, is_fd=is_fd,
                       bitrate_switch=is_fd, error_state_indicator=False, dlc=len(payload), fill_e2e=True,
                       timeout_s=timeout_s)
            return
        self._send_direct(bus_name, direct, frame_id, is_extended, payload, is_fd, timeout_s)

    def send_many(
        self, frames: Iterable[tuple[str, int, bool, bytes, bool]], *, timeout_s: float | None = None
    ) -> list[TransmitBlocked | can.CanError | None]:
        """:meth:`send_data` of each ``(bus_name, frame_id, is_extended, payload, is_fd)``, in order.

        Returns per frame None (sent) or the TransmitBlocked / can.CanError :meth:`send_data`
        raised for it; the frames after a refused one are still sent, as by separate calls.
        The control loop sends a tick's frames with it (one call per tick).
        """
        results: list[TransmitBlocked | can.CanError | None] = []
        append = results.append
        senders = self._direct_senders
        buses = self._buses
        gate = self.gate
        sent: dict[str, int] = {}
        try:
            for bus_name, frame_id, is_extended, payload, is_fd in frames:
                try:
                    direct = senders.get(bus_name)
                    if direct is None or self.recorder is not None or self._shutdown_done or bus_name not in buses:
                        self.send_data(bus_name, frame_id, is_extended, payload, is_fd, timeout_s=timeout_s)
                    else:  # what send_data does for a bus that takes frames as fields
                        # Every frame is checked: a disarm or allowlist change from another
                        # thread holds from the next frame on, as with one send_data each.
                        gate.check(bus_name, frame_id, len(payload), is_extended=is_extended)
                        self._send_direct(bus_name, direct, frame_id, is_extended, payload, is_fd, timeout_s, sent)
                except (TransmitBlocked, can.CanError) as err:
                    append(err)
                else:
                    append(None)
        finally:
            if sent:
                gate.count_sent(sent)
        return results

    def _send_direct(self, bus_name: str, direct: Callable[..., None], frame_id: int, is_extended: bool,
                     payload: bytes, is_fd: bool, timeout_s: float | None, sent: dict[str, int] | None = None) -> None:
        """The tail of :meth:`send_data` for a bus's ``send_data``: E2E fill, send, accounting.

        ``sent``: count the frame there (the caller adds it to the gate's counters) instead of
        in the gate at once."""
        with self._tx_lock:
            payload = self._with_e2e(bus_name, frame_id, is_extended, payload)
            bus_ts = time.time()  # what the Message of _emit would carry
            try:
                direct(frame_id, payload, is_extended_id=is_extended, is_fd=is_fd, bitrate_switch=is_fd,
                       timeout=timeout_s)
            except can.CanError:
                self.gate.count(bus_name, "send_error")
                raise
            if sent is None:
                self.gate.count(bus_name, "sent")
            else:
                sent[bus_name] = sent.get(bus_name, 0) + 1
        ident = frame_id | CAN_EFF_FLAG if is_extended else frame_id
        self.blackbox.add_frame(bus_name, self.clock(), ident, bytes(payload),
                                FLAG_TX | (FLAG_FD | FLAG_BRS if is_fd else 0), bus_ts)

    def _emit(
        self,
        bus_name: str,
        bus: can.BusABC,
        frame_id: int,
        is_extended: bool,
        payload: bytes,
        *,
        is_remote: bool,
        is_fd: bool,
        bitrate_switch: bool,
        error_state_indicator: bool,
        dlc: int,
        fill_e2e: bool,
        timeout_s: float | None,
    ) -> can.Message:
        """The tail of every transmission that passed the gate: E2E fill, send, accounting."""
        with self._tx_lock:
            if fill_e2e and not is_remote:
                payload = self._with_e2e(bus_name, frame_id, is_extended, payload)
            out = can.Message(
                timestamp=time.time(),
                arbitration_id=frame_id,
                is_extended_id=is_extended,
                is_remote_frame=is_remote,
                is_fd=is_fd,
                bitrate_switch=bitrate_switch,
                error_state_indicator=error_state_indicator,
                dlc=dlc,
                data=payload if not is_remote else None,
                channel=bus_name,
                is_rx=False,
                check=False,
            )
            try:
                bus.send(out, timeout=timeout_s)
            except can.CanError:
                self.gate.count(bus_name, "send_error")
                raise
            self.gate.count(bus_name, "sent")
        self.blackbox.add_message(bus_name, self.clock(), out)
        if self.recorder is not None:
            self.recorder.record(out)
        return out

    def _with_e2e(self, bus_name: str, frame_id: int, is_extended: bool, payload: bytes) -> bytes:
        """``payload`` with the next alive counter and CRC of its message on ``bus_name`` (as is
        when the message is not E2E protected); the tx lock is held."""
        spec = self._tx_specs.get((bus_name, frame_id, is_extended))
        if spec is None and bus_name not in self._db_buses:
            spec = self._tx_specs.get((None, frame_id, is_extended))
        if spec is None:
            return payload
        key = (bus_name, frame_id)
        counter = self._tx_counter.get(key, 0)
        payload = self._protected(spec, key, payload, counter)
        self._tx_counter[key] = (counter + 1) % COUNTER_MODULO
        return payload

    def _protected(self, spec: E2ESpec, key: tuple[str, int], payload: bytes, counter: int) -> bytes:
        """``protect(spec, payload, counter)`` as bytes, from a cache of the last payload per key.

        A command that holds still is sent with the same 15 counter values over and over: the
        same payload and counter give the same frame, so each is protected once (lock held).
        """
        caches: dict[tuple[str, int], tuple[bytes, E2ESpec, list[bytes | None]]] | None
        caches = self._tx_protected
        cache = caches.get(key)
        if cache is None or cache[1] is not spec or cache[0] != payload:
            cache = caches[key] = (payload, spec, [None] * COUNTER_MODULO)
        frame = cache[2][counter] if 0 <= counter < COUNTER_MODULO else None
        if frame is None:
            frame = bytes(protect(spec, payload, counter))
            cache[2][counter] = frame
        return frame

    def dump_blackbox(self, path: str | PathLike[str]) -> int:
        """Write the last ``blackbox_s`` seconds of every bus (rx and tx) to a log file.

        The interlocks call this on a trip. Format by suffix (.log/.asc/.blf); returns the
        number of frames written.
        """
        return self.blackbox.dump(path, channels=list(self._buses))

    # ------------------------------------------------------------------ reports
    def counters(self) -> dict[str, Any]:
        """Every counter of the gateway as plain data (JSON-ready)."""
        out = self.store.counters()
        out["listener_errors"] = {name: lst.errors for name, lst in self._listeners.items()}
        out["pending"] = sum(len(lst.buffer) for lst in self._listeners.values())
        out["internal_errors"] = dict(self._errors)
        out["last_internal_error"] = self._last_error
        out["transmit"] = {"armed": sorted(self.gate.armed), "buses": self.gate.counters()}
        out["routes"] = self.router.counters()
        if self.recorder is not None:
            out["recorder"] = {
                "path": str(self.recorder.path),
                "written": self.recorder.written,
                "errors": self.recorder.errors,
            }
        return out

    def summary(self) -> str:
        """The counters as a few human-readable lines."""
        c = self.counters()
        rejected_total = sum(c["rejected"].values())
        lines = [
            f"gateway: {len(c['buses'])} bus(es), {c['seen']} frames seen, {c['decoded']} decoded, "
            f"{rejected_total} rejected"
        ]
        for bus, row in sorted(c["buses"].items()):
            lines.append(f"  {bus}: seen {row['seen']}, decoded {row['decoded']}{_reasons_text(row['rejected'])}")
        lines.append(
            f"  messages: {self.layout.n_messages} known, {c['messages_received']} received, "
            f"{c['stale_now']} stale now, {c['stale_events']} stale events"
        )
        if "e2e_states" in c:
            states = ", ".join(f"{k} {v}" for k, v in c["e2e_states"].items())
            lines.append(f"  E2E: {states}")
        tx = c["transmit"]
        tx_text = ", ".join(
            f"{bus} " + " ".join(f"{k} {v}" for k, v in row.items() if v) for bus, row in sorted(tx["buses"].items())
        )
        lines.append(f"  transmit: armed {', '.join(tx['armed']) or 'none (listen-only)'}" + (f"; {tx_text}" if tx_text else ""))
        for label, row in c["routes"].items():
            lines.append(
                f"  route {label}: forwarded {row['forwarded']}, rate-limited {row['rate_limited']}, "
                f"blocked {row['blocked']}"
            )
        errors = {k: v for k, v in c["listener_errors"].items() if v}
        if errors:
            lines.append("  receive errors: " + ", ".join(f"{k} {v}" for k, v in errors.items()))
        if c["internal_errors"]:
            counts = ", ".join(f"{k} {v}" for k, v in c["internal_errors"].items())
            lines.append(f"  internal errors: {counts}; last: {c['last_internal_error']}")
        if "recorder" in c:
            r = c["recorder"]
            lines.append(f"  recording {r['path']}: {r['written']} written, {r['errors']} errors")
        return "\n".join(lines)


_Converted = tuple[
    npt.NDArray[np.uint32], npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.uint8],
    npt.NDArray[np.float64], npt.NDArray[np.uint8],
]


def _pack(payloads: list[bytes] | list[bytearray], sizes: list[int]) -> npt.NDArray[np.uint8]:
    width = max(max(sizes), 8)
    if min(sizes) == width:
        blob = bytearray().join(payloads)
    else:
        blob = bytearray().join(bytes(p).ljust(width, b"\0") for p in payloads)
    # A bytearray gives a writable array: the type the kernels were compiled for at warm-up.
    return np.frombuffer(blob, dtype=np.uint8).reshape(len(sizes), width)


def _convert_plain(msgs: list[can.Message]) -> _Converted | None:
    """Array batch of well-formed received data frames (the usual traffic); None otherwise.

    Plain Python over the few frames of a batch, then one numpy call per array: the worker
    makes as few numpy calls as it can (each may hand the GIL away).
    """
    try:
        if any(m.is_remote_frame or m.is_error_frame or not m.is_rx for m in msgs):
            return None
        payloads = [m.data for m in msgs]
        sizes = [len(p) for p in payloads]
        aids = [m.arbitration_id for m in msgs]
        if max(sizes) > MAX_DATA or min(aids) < 0 or max(aids) > CAN_EFF_MASK:
            return None
        if any(m.is_extended_id for m in msgs):
            aids = [a | CAN_EFF_FLAG if m.is_extended_id else a for a, m in zip(aids, msgs)]
        ids = np.array(aids, dtype=np.uint32)
        bus_ts = np.array([m.timestamp for m in msgs], dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    n = len(msgs)
    if any(m.is_fd for m in msgs):
        flags = np.array(
            [
                (FLAG_FD | (FLAG_BRS if m.bitrate_switch else 0) | (FLAG_ESI if m.error_state_indicator else 0))
                if m.is_fd else 0
                for m in msgs
            ],
            dtype=np.uint8,
        )
    else:
        flags = np.zeros(n, dtype=np.uint8)
    data = _pack(payloads, sizes)
    return ids, data, np.array(sizes, dtype=np.uint8), flags, bus_ts, np.full(n, ACCEPT, dtype=np.uint8)


def _convert_careful(msgs: list[can.Message]) -> _Converted:
    """Array batch of anything an interface may deliver: odd ids, remote, error, own frames."""
    n = len(msgs)
    ids = np.empty(n, dtype=np.uint32)
    lengths = np.empty(n, dtype=np.uint8)
    bus_ts = np.empty(n, dtype=np.float64)
    flags = np.zeros(n, dtype=np.uint8)
    reason = np.full(n, ACCEPT, dtype=np.uint8)
    payloads: list[bytes] = []
    sizes: list[int] = []
    for i, msg in enumerate(msgs):
        try:
            bus_ts[i] = float(msg.timestamp)
        except (TypeError, ValueError):
            bus_ts[i] = np.nan
        aid = msg.arbitration_id
        if not isinstance(aid, int) or not 0 <= aid <= CAN_EFF_MASK:
            aid = 0
            reason[i] = R_UNKNOWN_ID
        if msg.is_extended_id:
            aid |= CAN_EFF_FLAG
        if msg.is_remote_frame:
            aid |= CAN_RTR_FLAG
        if msg.is_error_frame:
            aid |= CAN_ERR_FLAG
        ids[i] = aid
        bits = 0
        if msg.is_fd:
            bits = FLAG_FD | (FLAG_BRS if msg.bitrate_switch else 0) | (FLAG_ESI if msg.error_state_indicator else 0)
        if not msg.is_rx:
            reason[i] = R_OWN_TX
            bits |= FLAG_TX
        flags[i] = bits
        try:
            payload = bytes(msg.data) if msg.data is not None else b""
        except (TypeError, ValueError):
            payload = b""
            reason[i] = R_BAD_LENGTH
        if len(payload) > MAX_DATA:
            reason[i] = R_BAD_LENGTH
            payload = b""
        dlc = msg.dlc if isinstance(msg.dlc, int) else 0
        lengths[i] = dlc if msg.is_remote_frame and 0 <= dlc <= MAX_DATA else len(payload)
        payloads.append(payload)
        sizes.append(len(payload))
    return ids, _pack(payloads, sizes), lengths, flags, bus_ts, reason


def _reasons_text(rejected: Mapping[str, int]) -> str:
    parts = [f"{k} {v}" for k, v in rejected.items() if v]
    return f", rejected {sum(rejected.values())} ({', '.join(parts)})" if parts else ""


def _message_from_row(bus: str, frame_id: int, row: npt.NDArray[np.uint8], length: int, t: float) -> can.Message:
    fid = int(frame_id)
    size = int(length)
    return can.Message(
        timestamp=float(t),
        arbitration_id=fid & CAN_EFF_MASK,
        is_extended_id=bool(fid & CAN_EFF_FLAG),
        is_remote_frame=bool(fid & CAN_RTR_FLAG) and not fid & CAN_ERR_FLAG,
        is_error_frame=bool(fid & CAN_ERR_FLAG),
        is_fd=size > 8,
        data=bytes(row[:size]) if not fid & (CAN_RTR_FLAG | CAN_ERR_FLAG) else None,
        dlc=size,
        channel=bus,
        check=False,
    )


__all__ = ["Gateway", "GatewayInputError", "REJECT_REASONS", "RouteRule", "TransmitGate"]


def _describe(arr: object) -> str:
    """dtype[shape] of an array for an error message (the type name of anything else)."""
    if isinstance(arr, np.ndarray):
        return f"{arr.dtype}{list(arr.shape)}"
    return type(arr).__name__


def _hot_path_rows(what: str, ids: Any, data: Any, lengths: Any, timestamps: Any) -> int:
    """N when the arrays are a batch in the hot-path layout, handed over as they are: ``ids``
    uint32[N], ``data`` uint8[N, 64] C-contiguous and writeable, ``lengths`` uint8[N],
    ``timestamps`` float64[N]; else GatewayInputError naming what came."""
    n = ids.shape[0] if isinstance(ids, np.ndarray) and ids.ndim == 1 else -1
    # dtype identity first (the usual case, cheap), equality for an equal non-canonical dtype.
    if not (
        n >= 0 and (ids.dtype is _DT_U32 or ids.dtype == np.uint32)
        and isinstance(data, np.ndarray) and (data.dtype is _DT_U8 or data.dtype == np.uint8)
        and data.shape == (n, MAX_DATA) and data.flags.num & _C_WRITEABLE == _C_WRITEABLE
        and isinstance(lengths, np.ndarray) and (lengths.dtype is _DT_U8 or lengths.dtype == np.uint8)
        and lengths.shape == (n,)
        and isinstance(timestamps, np.ndarray) and (timestamps.dtype is _DT_F64 or timestamps.dtype == np.float64)
        and timestamps.shape == (n,)
    ):
        raise GatewayInputError(
            f"{what}: expected ids uint32[N], data uint8[N, 64] (C order, writeable), lengths "
            f"uint8[N], timestamps float64[N], but got {_describe(ids)}, {_describe(data)}, "
            f"{_describe(lengths)}, {_describe(timestamps)}"
        )
    return n
