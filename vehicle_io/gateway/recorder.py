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
        chunk = _Chunk(
            np.array(times, dtype=np.float64, copy=copy),
            np.array(ids, dtype=np.uint32, copy=copy),
            np.array(data, dtype=np.uint8, copy=copy),
            np.array(lengths, dtype=np.uint8, copy=copy),
            np.zeros(n, dtype=np.uint8) if flags is None else np.array(flags, dtype=np.uint8, copy=copy),
            np.array(times if bus_ts is None else bus_ts, dtype=np.float64, copy=copy),
        )
        with self._lock:
            if bus in self._singles:
                self._flush_singles(bus)
            self._append(bus, chunk)

    def _append(self, bus: str, chunk: _Chunk) -> None:
        """Add a chunk to ``bus``'s ring and drop what fell out of the window (lock held)."""
        ring = self._buses.get(bus)
        if ring is None:
            ring = self._buses[bus] = deque()
        ring.append(chunk)
        horizon = float(chunk.times.max()) - self.seconds
        while len(ring) > 1 and float(ring[0].times.max()) <= horizon:
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
        with self._lock:
            if bus not in self._buses:
                self._buses[bus] = deque()
            singles = self._singles.get(bus)
            if singles is None:
                singles = self._singles[bus] = []
            singles.append((time_s, ident, payload, length, flags, msg.timestamp))
            if len(singles) >= _MAX_SINGLES:
                self._flush_singles(bus)

    def _flush_singles(self, bus: str) -> None:
        """Turn ``bus``'s waiting single frames into one chunk (lock held)."""
        rows = self._singles.pop(bus, None)
        if not rows:
            return
        n = len(rows)
        width = max(1, max(len(r[2]) for r in rows))
        data = np.zeros((n, width), dtype=np.uint8)
        for i, r in enumerate(rows):
            if r[2]:
                data[i, : len(r[2])] = np.frombuffer(r[2], dtype=np.uint8)
        self._append(bus, _Chunk(
            np.array([r[0] for r in rows], dtype=np.float64),
            np.array([r[1] for r in rows], dtype=np.uint32),
            data,
            np.array([r[3] for r in rows], dtype=np.uint8),
            np.array([r[4] for r in rows], dtype=np.uint8),
            np.array([r[5] for r in rows], dtype=np.float64),
        ))

    def frames(self, now_s: float | None = None) -> list[can.Message]:
        """Frames of the last ``seconds`` before ``now_s`` from every bus, in receive order."""
        now = self.clock() if now_s is None else now_s
        horizon = now - self.seconds
        with self._lock:
            for bus in list(self._singles):
                self._flush_singles(bus)
            chunks = [(bus, c) for bus, ring in self._buses.items() for c in ring]
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
