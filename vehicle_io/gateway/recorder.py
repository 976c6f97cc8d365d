"""Raw traffic recording and the black-box ring buffer.

:class:`TrafficRecorder` writes every frame to a candump ``.log``, Vector ``.asc`` or
``.blf`` file through python-can's writers (chosen by suffix, as ``can.Logger`` does). The
receive path only enqueues; a writer thread does the I/O, and :meth:`TrafficRecorder.stop`
drains the queue before closing the file, so a clean stop or a Ctrl-C that unwinds through
the gateway's context manager loses nothing.

Channel names are the gateway's bus names. candump logs carry them as they are; ASC and BLF
store channel numbers, so bus ``i`` of ``channels`` is written as channel ``i + 1``
(:attr:`TrafficRecorder.channel_numbers`; python-can's readers give back ``i``).

:class:`BlackBox` keeps the last ``seconds`` of raw traffic per bus in memory; an interlock
trip calls :meth:`BlackBox.dump` so every trip can be replayed.
"""

from __future__ import annotations

import copy
import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import can
import numpy as np
import numpy.typing as npt

from vehicle_io.errors import VehicleIoError

#: Suffixes this recorder writes (a registry: python-can's writers by suffix).
RECORD_SUFFIXES = (".log", ".asc", ".blf")
_NUMBERED_CHANNELS = (".asc", ".blf")

_STOP = object()


class RecorderError(VehicleIoError, ValueError):
    """A recording could not be set up as asked."""


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in RECORD_SUFFIXES:
        raise RecorderError(
            f"{path}: expected a recording file ending in {', '.join(RECORD_SUFFIXES)}, but got {suffix or 'no suffix'!r}"
        )
    return suffix


def _writer(path: Path) -> can.io.generic.MessageWriter:
    try:
        return can.Logger(path)  # type: ignore[return-value]
    except (OSError, ValueError) as err:
        raise RecorderError(f"{path}: cannot open for recording: {err}") from err


class _ChannelMapper:
    """Turns bus names into what a writer format can carry."""

    def __init__(self, suffix: str, channels: Sequence[str]) -> None:
        self.numbered = suffix in _NUMBERED_CHANNELS
        self.channel_numbers: dict[str, int] = {name: i for i, name in enumerate(channels)}

    def __call__(self, msg: can.Message) -> can.Message:
        if not self.numbered:
            return msg
        out = copy.copy(msg)
        name = msg.channel
        if isinstance(name, str):
            number = self.channel_numbers.get(name)
            if number is None:
                number = self.channel_numbers[name] = len(self.channel_numbers)
            out.channel = number
        return out


class TrafficRecorder:
    """Writes raw frames to a log file from its own thread; :meth:`stop` loses nothing."""

    def __init__(self, path: str | os.PathLike[str], *, channels: Sequence[str] = ()) -> None:
        self.path = Path(path)
        suffix = _suffix(self.path)
        self._map = _ChannelMapper(suffix, channels)
        self._writer = _writer(self.path)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._stopped = False
        self._stop_lock = threading.Lock()
        self.written = 0
        self.errors = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"z10-recorder {self.path.name}", daemon=True)
        self._thread.start()

    @property
    def channel_numbers(self) -> dict[str, int]:
        """Bus name -> channel number as python-can's readers return it (ASC/BLF only)."""
        return dict(self._map.channel_numbers)

    def record(self, msg: can.Message) -> None:
        """Queue one frame (``msg.channel`` = bus name); never blocks, never raises."""
        if not self._stopped:
            self._queue.put(msg)

    def record_many(self, msgs: Iterable[can.Message]) -> None:
        if not self._stopped:
            put = self._queue.put
            for msg in msgs:
                put(msg)

    def _run(self) -> None:
        get = self._queue.get
        while True:
            item = get()
            if item is _STOP:
                return
            try:
                self._writer.on_message_received(self._map(item))  # type: ignore[arg-type]
                self.written += 1
            except Exception as err:  # noqa: BLE001 - a bad frame must not stop the recording
                self.errors += 1
                self.last_error = f"{type(err).__name__}: {err}"

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write everything queued, then close the file. Idempotent."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        try:
            self._writer.stop()
        except Exception as err:  # noqa: BLE001 - report, do not mask the caller's shutdown
            self.errors += 1
            self.last_error = f"closing {self.path}: {type(err).__name__}: {err}"

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


FLAG_FD = 1
FLAG_BRS = 2
FLAG_ESI = 4
FLAG_TX = 8

CAN_EFF_FLAG = 0x80000000
CAN_RTR_FLAG = 0x40000000
CAN_ERR_FLAG = 0x20000000
CAN_EFF_MASK = 0x1FFFFFFF


#: Single frames a bus may hold back before they join its ring as one chunk.
_MAX_SINGLES = 256


class _Chunk(NamedTuple):
    times: npt.NDArray[np.float64]  # receive time on the gateway clock
    ids: npt.NDArray[np.uint32]  # with the SocketCAN EFF/RTR/ERR flags
    data: npt.NDArray[np.uint8]
    lengths: npt.NDArray[np.uint8]
    flags: npt.NDArray[np.uint8]  # FLAG_* bits
    bus_ts: npt.NDArray[np.float64]  # the interface's own timestamp, written to the log


class BlackBox:
    """The last ``seconds`` of raw traffic per bus (by receive time on ``clock``).

    Kept as the array batches the gateway already has (no Message object per frame), so ten
    seconds of two loaded buses cost a few MB; Messages are built only when dumping.
    """

    def __init__(self, seconds: float = 10.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not seconds > 0:
            raise ValueError(f"BlackBox: expected a positive duration, but got {seconds!r}")
        self.seconds = float(seconds)
        self.clock = clock
        self._lock = threading.Lock()
        self._buses: dict[str, deque[_Chunk]] = {}
        # Single frames (the gateway's own transmissions) wait here and join the ring as one
        # chunk before the bus's next batch or any read: one chunk per burst, not per frame.
        self._singles: dict[str, list[tuple[float, int, bytes, int, int, float]]] = {}

    def add_batch(
        self,
        bus: str,
        times: npt.NDArray[np.float64],
        ids: npt.NDArray[np.uint32],
        data: npt.NDArray[np.uint8],
        lengths: npt.NDArray[np.uint8],
        flags: npt.NDArray[np.uint8] | None = None,
        bus_ts: npt.NDArray[np.float64] | None = None,
        *,
        copy: bool = True,
    ) -> None:
        """Keep a batch of ``bus`` and drop what fell out of the window.

        ``copy=False`` keeps the arrays themselves: for a caller that never reuses them.
        """
        n = ids.shape[0]
        if n == 0:
            return
        if copy:
            chunk = _Chunk(
                np.array(times, dtype=np.float64),
                np.array(ids, dtype=np.uint32),
                np.array(data, dtype=np.uint8),
                np.array(lengths, dtype=np.uint8),
                np.zeros(n, dtype=np.uint8) if flags is None else np.array(flags, dtype=np.uint8),
                np.array(times if bus_ts is None else bus_ts, dtype=np.float64),
            )
        elif (flags is None and bus_ts is None and type(times) is np.ndarray and times.dtype is _F64
              and type(ids) is np.ndarray and ids.dtype is _U32 and type(data) is np.ndarray
              and data.dtype is _U8 and type(lengths) is np.ndarray and lengths.dtype is _U8):
            # The gateway's own batch arrays (np.array(copy=False) costs more per call than
            # the rest of this method).
            chunk = _Chunk(times, ids, data, lengths, _zeros_u8(n), times)
        else:
            times_kept = _kept(times, np.float64)
            chunk = _Chunk(
                times_kept,
                _kept(ids, np.uint32),
                _kept(data, np.uint8),
                _kept(lengths, np.uint8),
                _zeros_u8(n) if flags is None else _kept(flags, np.uint8),
                times_kept if bus_ts is None else _kept(bus_ts, np.float64),
            )
        held = _Held(chunk, _t_max(chunk.times))
        with self._lock:
            if bus in self._singles:
                self._flush_singles(bus)
            self._append(bus, held)

    def add_segments(
        self,
        segments: Iterable[tuple[str, int, int]],
        times: npt.NDArray[np.float64],
        ids: npt.NDArray[np.uint32],
        data: npt.NDArray[np.uint8],
        lengths: npt.NDArray[np.uint8],
    ) -> None:
        """:meth:`add_batch` ``(bus, times[lo:hi], ids[lo:hi], data[lo:hi], lengths[lo:hi],
        copy=False)`` for each ``(bus, lo, hi)`` of ``segments``, in order.

        The gateway's one batch of a tick's buses: each ring keeps the tick's arrays with its
        row range and slices them only when the window is read, so a tick costs one pass
        over the times instead of a chunk of four slices per bus.
        """
        if not (type(times) is np.ndarray and times.dtype is _F64 and times.ndim == 1
                and type(ids) is np.ndarray and ids.dtype is _U32 and type(data) is np.ndarray
                and data.dtype is _U8 and type(lengths) is np.ndarray and lengths.dtype is _U8):
            for bus, lo, hi in segments:
                if hi > lo:
                    self.add_batch(bus, times[lo:hi], ids[lo:hi], data[lo:hi], lengths[lo:hi], copy=False)
            return
        values = times.tolist()
        arrays = (times, ids, data, lengths)
        singles = self._singles
        seconds = self.seconds
        with self._lock:
            for bus, lo, hi in segments:
                if hi <= lo:
                    continue
                seg = values[lo:hi]
                top = max(seg)
                total = sum(seg)
                if total != total and any(v != v for v in seg):  # sum is NaN when any value is
                    top = math.nan
                held = _Held.span(arrays, lo, hi, top)
                if bus in singles:
                    self._flush_singles(bus)
                ring = self._buses.get(bus)
                if ring is None or len(ring) == 0:
                    self._append(bus, held)
                    continue
                # _append inlined (the common case: a ring with entries)
                ring.append(held)
                horizon = top - seconds
                while len(ring) > 1 and _held_max(ring[0]) <= horizon:
                    ring.popleft()

    def _append(self, bus: str, chunk: _Chunk | list[_SingleRow] | _Held) -> None:
        """Add a chunk (or single-frame rows) to ``bus``'s ring and drop what fell out of the
        window (lock held)."""
        ring: deque[_Held | _Chunk] | None = self._buses.get(bus)  # type: ignore[assignment]
        if ring is None:
            ring = self._buses[bus] = deque()  # type: ignore[assignment]
        held = chunk if type(chunk) is _Held else _Held(chunk)  # type: ignore[arg-type]
        ring.append(held)
        if len(ring) > 1:
            horizon = held.t_max - self.seconds
            while len(ring) > 1 and _held_max(ring[0]) <= horizon:
                ring.popleft()

    def add_message(self, bus: str, time_s: float, msg: can.Message) -> None:
        """Keep one frame (the gateway's own transmissions)."""
        ident = msg.arbitration_id | (CAN_EFF_FLAG if msg.is_extended_id else 0)
        ident |= CAN_RTR_FLAG if msg.is_remote_frame else 0
        ident |= CAN_ERR_FLAG if msg.is_error_frame else 0
        payload = bytes(msg.data or b"")
        flags = (FLAG_FD if msg.is_fd else 0) | (FLAG_BRS if msg.bitrate_switch else 0)
        flags |= (FLAG_ESI if msg.error_state_indicator else 0) | (0 if msg.is_rx else FLAG_TX)
        length = msg.dlc if msg.is_remote_frame else len(payload)
        self._add_single(bus, (time_s, ident, payload, length, flags, msg.timestamp))

    def add_frame(self, bus: str, time_s: float, ident: int, payload: bytes, flags: int, bus_ts: float) -> None:
        """Keep one data frame given as fields: :meth:`add_message` of the Message they describe.

        ``ident`` = id | SocketCAN flags, ``flags`` the FLAG_* bits (FLAG_TX for the gateway's
        own transmissions), ``bus_ts`` the frame's bus timestamp.
        """
        self._add_single(bus, (time_s, ident, payload, len(payload), flags, bus_ts))

    def _add_single(self, bus: str, row: _SingleRow) -> None:
        """One frame's row, gathered with ``bus``'s other single frames into a chunk later."""
        with self._lock:
            if bus not in self._buses:
                self._buses[bus] = deque()
            singles = self._singles.get(bus)
            if singles is None:
                singles = self._singles[bus] = []
            singles.append(row)
            if len(singles) >= _MAX_SINGLES:
                self._flush_singles(bus)

    def _flush_singles(self, bus: str) -> None:
        """Turn ``bus``'s waiting single frames into one chunk (lock held)."""
        rows = self._singles.pop(bus, None)
        if not rows:
            return
        # Kept as the rows: they become arrays only if the window is read (frames()).
        self._append(bus, rows)

    def frames(self, now_s: float | None = None) -> list[can.Message]:
        """Frames of the last ``seconds`` before ``now_s`` from every bus, in receive order."""
        now = self.clock() if now_s is None else now_s
        horizon = now - self.seconds
        with self._lock:
            for bus in list(self._singles):
                self._flush_singles(bus)
            held = [(bus, c) for bus, ring in self._buses.items() for c in ring]
            chunks = [(bus, c.chunk() if isinstance(c, _Held) else c) for bus, c in held]
        rows: list[tuple[float, can.Message]] = []
        for bus, c in chunks:
            for i in np.flatnonzero((c.times > horizon) & (c.times <= now)).tolist():
                rows.append((float(c.times[i]), _row_message(bus, c, i)))
        rows.sort(key=lambda item: item[0])
        return [msg for _, msg in rows]

    def dump(self, path: str | os.PathLike[str], *, channels: Sequence[str] = (), now_s: float | None = None) -> int:
        """Write the window to ``path`` (.log/.asc/.blf); returns the number of frames written."""
        target = Path(path)
        mapper = _ChannelMapper(_suffix(target), channels or sorted(self._buses))
        frames = self.frames(now_s)
        writer = _writer(target)
        try:
            for msg in frames:
                writer.on_message_received(mapper(msg))
        finally:
            writer.stop()
        return len(frames)

    def clear(self) -> None:
        with self._lock:
            self._buses.clear()
            self._singles.clear()


_F64 = np.dtype(np.float64)
_U32 = np.dtype(np.uint32)
_U8 = np.dtype(np.uint8)
_SingleRow = tuple[float, int, bytes, int, int, float]  # as add_message queues them


def _rows_chunk(rows: list[_SingleRow]) -> _Chunk:
    """The arrays of single-frame rows (time, ident, payload, length, flags, bus time)."""
    n = len(rows)
    times, ids, payloads, lengths, flags, bus_ts = zip(*rows)
    width = max(1, max(map(len, payloads)))
    # One join, one array: a bytearray keeps it writeable.
    blob = bytearray(b"".join([bytes(p).ljust(width, b"\0") for p in payloads]))
    return _Chunk(
        np.array(times, dtype=np.float64),
        np.array(ids, dtype=np.uint32),
        np.frombuffer(blob, dtype=np.uint8).reshape(n, width),
        np.array(lengths, dtype=np.uint8),
        np.array(flags, dtype=np.uint8),
        np.array(bus_ts, dtype=np.float64),
    )


class _Held:
    """A ring entry: a chunk, or single-frame rows turned into one on first read, with the
    latest receive time (the window test reads it on every append)."""

    __slots__ = ("t_max", "_chunk", "_rows", "_span")

    def __init__(self, item: _Chunk | list[_SingleRow], t_max: float | None = None) -> None:
        self._chunk: _Chunk | None = None
        self._rows: list[_SingleRow] | None = None
        self._span: tuple[tuple[np.ndarray, ...], int, int] | None = None
        if isinstance(item, _Chunk):
            self._chunk = item
            self.t_max = _t_max(item.times) if t_max is None else t_max
            return
        try:
            self.t_max = _list_max([r[0] for r in item])
            self._rows = item
        except (TypeError, ValueError):  # a time numpy reads as NaN (None), or refuses: convert now
            self._chunk = _rows_chunk(item)
            self.t_max = _t_max(self._chunk.times)

    @classmethod
    def span(cls, arrays: tuple[np.ndarray, ...], lo: int, hi: int, t_max: float) -> _Held:
        """Rows ``lo:hi`` of a batch's (times, ids, data, lengths), sliced on first read."""
        held = cls.__new__(cls)
        held._chunk = held._rows = None
        held._span = (arrays, lo, hi)
        held.t_max = t_max
        return held

    def chunk(self) -> _Chunk:
        if self._chunk is None and self._span is not None:
            (times, ids, data, lengths), lo, hi = self._span
            t = times[lo:hi]
            self._chunk = _Chunk(t, ids[lo:hi], data[lo:hi], lengths[lo:hi], _zeros_u8(hi - lo), t)
            self._span = None
        if self._chunk is None:
            assert self._rows is not None
            self._chunk = _rows_chunk(self._rows)
            self._rows = None
        return self._chunk


def _held_max(entry: _Held | _Chunk) -> float:
    return entry.t_max if isinstance(entry, _Held) else _t_max(entry.times)


def _list_max(values: list[float]) -> float:
    """``float(np.array(values, dtype=float64).max())`` for plain numbers."""
    top = max(values)
    total = sum(values)
    if total != total and any(v != v for v in values):  # sum is NaN when any value is
        return float("nan")
    return float(top)


def _kept(arr: npt.ArrayLike, dtype: type) -> np.ndarray:
    """``arr`` itself when it is an array of ``dtype`` (as ``np.array(copy=False)``)."""
    if type(arr) is np.ndarray and arr.dtype == dtype:
        return arr
    return np.asarray(arr, dtype=dtype)  # numpy 2: np.array(copy=False) refuses a list


_ZEROS_U8: dict[int, np.ndarray] = {}


def _zeros_u8(n: int) -> np.ndarray:
    """A read-only uint8[n] of zeros, shared (the black box never writes its chunks)."""
    arr = _ZEROS_U8.get(n)
    if arr is None:
        arr = np.zeros(n, dtype=np.uint8)
        arr.flags.writeable = False
        if len(_ZEROS_U8) < 1024:
            _ZEROS_U8[n] = arr
    return arr


def _t_max(times: np.ndarray) -> float:
    """``float(times.max())`` (NaN if any is NaN), in Python for a small batch."""
    if times.shape[0] > 32:
        return float(times.max())
    values = times.tolist()
    total = sum(values)
    if total != total and any(v != v for v in values):  # sum is NaN when any value is
        return float("nan")
    return max(values)  # type: ignore[no-any-return]


def _row_message(bus: str, c: _Chunk, i: int) -> can.Message:
    ident = int(c.ids[i])
    size = int(c.lengths[i])
    flags = int(c.flags[i])
    error = bool(ident & CAN_ERR_FLAG)
    remote = bool(ident & CAN_RTR_FLAG) and not error
    return can.Message(
        timestamp=float(c.bus_ts[i]),
        arbitration_id=ident & CAN_EFF_MASK,
        is_extended_id=bool(ident & CAN_EFF_FLAG),
        is_remote_frame=remote,
        is_error_frame=error,
        is_fd=bool(flags & FLAG_FD) or size > 8,
        bitrate_switch=bool(flags & FLAG_BRS),
        error_state_indicator=bool(flags & FLAG_ESI),
        is_rx=not flags & FLAG_TX,
        dlc=size,
        data=None if remote or error else bytes(c.data[i, :size]),
        channel=bus,
        check=False,
    )
