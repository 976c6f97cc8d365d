"""CAN log files: a can-utils-exact candump writer, readers and writers by suffix, rotation.

python-can 4.6's ``CanutilsLogWriter`` appends `` R``/`` T`` to every line (the
``candump -L -x`` form) and does not zero-pad the seconds, so its files differ from what
``candump -l`` writes. :class:`CandumpWriter` writes exactly what can-utils' ``candump -l``
writes (lib.c ``sprint_canframe``, candump.c)::

    (1700000000.123456) can0 123#DEADBEEF          classic, 3 hex digit standard id
    (1700000000.123456) can0 12345678#00           extended id, 8 hex digits
    (1700000000.123456) can0 123#R  / 123#R4       remote frame, DLC digit when not 0
    (1700000000.123456) can0 123##1DEADBEEF        CAN FD, flags nibble (1 BRS, 2 ESI)
    (1700000000.123456) can0 20000080#0000...      error frame: CAN_ERR_FLAG | class

Seconds are printed ``%010u``, microseconds ``%06u``; the interface name is right-aligned
to the longest name of the recording (``%*s``, as candump pads to its longest interface).

Other formats (.asc, .blf, .csv, .trc) go through python-can's writers and readers; they
store channel numbers, so bus ``i`` of the recording is written as channel ``i + 1`` where
the format is 1-based (.asc, .blf, .trc), as the gateway's recorder does; ``canN`` names
keep their number N. Read back, numbered channels are named ``canN`` (0-based). TRC as
python-can writes it holds no remote, FD or error frames: those are skipped and counted
(:attr:`skipped`); CSV keeps no channel and no FD flag.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import can

from vehicle_io.candump import CAN_EFF_MASK, CAN_ERR_FLAG, LogLineError, parse_line
from vehicle_io.errors import VehicleIoError

#: Suffixes we read and write (a registry: .log is ours, the rest python-can's).
READ_SUFFIXES = (".log", ".log.gz", ".asc", ".blf", ".csv", ".trc")
WRITE_SUFFIXES = (".log", ".asc", ".blf", ".csv", ".trc")
_NUMBERED = (".asc", ".blf", ".trc")
_CAN_N = re.compile(r"^can(\d+)$")

CANFD_BRS = 0x01
CANFD_ESI = 0x02
#: python-can error frames carry no class; candump readers (python-can's too) need one.
CAN_ERR_BUSERROR = 0x00000080


class LogFormatError(VehicleIoError, ValueError):
    """A log file cannot be read or written as asked."""


def log_suffix(path: str | os.PathLike[str]) -> str:
    """The format suffix of ``path`` (``.log.gz`` counts as one)."""
    name = Path(path).name.lower()
    if name.endswith(".log.gz"):
        return ".log.gz"
    return Path(name).suffix


def format_frame(msg: can.Message) -> str:
    """The ``ID#DATA`` part of a candump line for ``msg`` (can-utils ``sprint_canframe``)."""
    if msg.is_error_frame:
        klass = msg.arbitration_id & CAN_EFF_MASK or CAN_ERR_BUSERROR
        data = bytes(msg.data or b"")[:8].ljust(8, b"\0")
        return f"{CAN_ERR_FLAG | klass:08X}#{data.hex().upper()}"
    ident = f"{msg.arbitration_id & CAN_EFF_MASK:08X}" if msg.is_extended_id else f"{msg.arbitration_id & 0x7FF:03X}"
    if msg.is_remote_frame and not msg.is_fd:
        dlc = msg.dlc if 0 < msg.dlc <= 8 else 0
        return f"{ident}#R{dlc if dlc else ''}"
    payload = bytes(msg.data or b"").hex().upper()
    if msg.is_fd:
        flags = (CANFD_BRS if msg.bitrate_switch else 0) | (CANFD_ESI if msg.error_state_indicator else 0)
        return f"{ident}##{flags:X}{payload}"
    return f"{ident}#{payload}"


def format_line(msg: can.Message, channel: str, width: int = 0, timestamp: float | None = None) -> str:
    """One ``candump -l`` line (with newline); ``width`` pads the channel name as ``%*s``."""
    ts = msg.timestamp if timestamp is None else timestamp
    if ts is None or ts != ts or ts < 0:
        raise LogFormatError(f"expected a timestamp >= 0 for a candump line, but got {ts!r}")
    micros = int(round(ts * 1_000_000))
    seconds, micros = divmod(micros, 1_000_000)
    return f"({seconds:010d}.{micros:06d}) {channel:>{width}} {format_frame(msg)}\n"


def _channel_name(channel: Any) -> str:
    if channel is None:
        return "can0"
    if isinstance(channel, int) or (isinstance(channel, str) and channel.isdigit()):
        return f"can{channel}"
    return str(channel)


class CandumpWriter(can.Listener):
    """Writes frames to a candump ``.log`` file exactly as ``candump -l`` does.

    ``channels``: the bus names of the recording, known up front, so the channel column is
    padded as candump pads to its longest interface name. Thread-safe; ``stop`` flushes
    and closes (idempotent).
    """

    def __init__(self, file: str | os.PathLike[str] | IO[str], *, channels: Sequence[str] = (),
                 append: bool = False) -> None:
        if isinstance(file, (str, os.PathLike)):
            self.path: Path | None = Path(file)
            try:
                self.file: IO[str] = open(file, "a" if append else "w", encoding="ascii", newline="\n")
            except OSError as err:
                raise LogFormatError(f"{file}: cannot open for writing: {err.strerror or err}") from err
            self._owns = True
        else:
            self.path = None
            self.file = file
            self._owns = False
        self.width = max((len(c) for c in channels), default=0)
        self.bytes_written = 0
        self.written = 0
        self.skipped = 0  # every frame fits a candump line
        self._lock = threading.Lock()
        self._last_ts = 0.0
        self._closed = False

    def on_message_received(self, msg: can.Message) -> None:
        ts = msg.timestamp
        if ts is None or ts != ts or ts < 0:
            ts = self._last_ts  # as python-can's writer: a frame without a time keeps the last one
        line = format_line(msg, _channel_name(msg.channel), self.width, ts)
        with self._lock:
            if self._closed:
                raise LogFormatError(f"{self.path or 'log'}: write after stop")
            self.file.write(line)
            self._last_ts = ts
            self.bytes_written += len(line)
            self.written += 1

    def file_size(self) -> int:
        return self.bytes_written

    def flush(self) -> None:
        with self._lock:
            if not self._closed:
                self.file.flush()

    def stop(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.file.flush()
            if self._owns:
                self.file.close()

    def __enter__(self) -> CandumpWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _NumberedWriter(can.Listener):
    """A python-can writer for a format that stores channel numbers: bus names -> numbers."""

    def __init__(self, path: Path, channels: Sequence[str]) -> None:
        self.path = path
        # python-can's ASC/BLF/TRC writers add 1 themselves (0-based in, 1-based on file).
        self.numbers: dict[str, int] = {name: i for i, name in enumerate(channels)}
        self._lossy = log_suffix(path) == ".trc"
        self.skipped = 0
        try:
            self._writer: Any = can.Logger(path)
        except (OSError, ValueError) as err:
            raise LogFormatError(f"{path}: cannot open for writing: {err}") from err
        self.written = 0

    def on_message_received(self, msg: can.Message) -> None:
        channel = msg.channel
        if isinstance(channel, str):
            number = self.numbers.get(channel)
            if number is None:
                match = _CAN_N.match(channel)
                number = int(match.group(1)) if match else len(self.numbers)
                self.numbers[channel] = number
            channel = number
        if self._lossy and (msg.is_remote_frame or msg.is_fd or msg.is_error_frame):
            self.skipped += 1
            return
        out = can.Message(
            timestamp=msg.timestamp, arbitration_id=msg.arbitration_id, is_extended_id=msg.is_extended_id,
            is_remote_frame=msg.is_remote_frame, is_error_frame=msg.is_error_frame, is_fd=msg.is_fd,
            bitrate_switch=msg.bitrate_switch, error_state_indicator=msg.error_state_indicator,
            is_rx=msg.is_rx, dlc=msg.dlc, data=msg.data, channel=channel, check=False,
        )
        self._writer.on_message_received(out)
        self.written += 1

    def flush(self) -> None:
        file = getattr(self._writer, "file", None)
        if file is not None and log_suffix(self.path) != ".blf":  # BLF writes whole containers
            file.flush()

    def file_size(self) -> int:
        try:
            return int(self._writer.file_size())
        except (AttributeError, OSError, ValueError):
            return self.path.stat().st_size if self.path.exists() else 0

    def flush(self) -> None:
        """Push what is written so far to the file (a live recording survives a crash)."""
        writer = self._writer
        if writer is None:
            return
        flush = getattr(writer, "flush", None)
        if flush is not None:
            flush()
        # python-can's BLFWriter has no flush: it writes whole (compressed) containers, and
        # stop() writes the last one, so Ctrl-C still loses nothing; only a hard kill can.

    def stop(self) -> None:
        """Close the current file (idempotent)."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.stop()


def open_writer(path: str | os.PathLike[str], *, channels: Sequence[str] = ()) -> Any:
    """A writer for ``path`` by suffix: our candump writer for .log, python-can's otherwise."""
    target = Path(path)
    suffix = log_suffix(target)
    if suffix not in WRITE_SUFFIXES:
        raise LogFormatError(f"{target}: expected a log file ending in {', '.join(WRITE_SUFFIXES)}, "
                             f"but got {suffix or 'no suffix'!r}")
    if suffix == ".log":
        return CandumpWriter(target, channels=channels)
    return _NumberedWriter(target, channels)


class _CountingRaw(io.RawIOBase):
    """A raw file that counts the bytes read through it (progress bars for any reader)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class LogReader:
    """Frames of a log file by suffix, as python-can Messages, with the bytes read so far.

    ``.log`` / ``.log.gz`` are read with :mod:`vehicle_io.candump` (console lines too, and
    bad lines are counted in :attr:`bad_lines`, the first few kept in :attr:`bad_samples`);
    the other formats with python-can's readers. :attr:`bytes_read` grows as the file is
    read (for progress bars); :attr:`size` is the file's size.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.suffix = log_suffix(self.path)
        if self.suffix not in READ_SUFFIXES:
            raise LogFormatError(f"{self.path}: expected a log file ending in {', '.join(READ_SUFFIXES)}, "
                                 f"but got {self.suffix or 'no suffix'!r}")
        try:
            self.size = self.path.stat().st_size
            self._raw = _CountingRaw(open(self.path, "rb"))
        except OSError as err:
            raise LogFormatError(f"{self.path}: cannot read: {err.strerror or err}") from err
        self.bad_lines = 0
        self.bad_samples: list[str] = []

    @property
    def bytes_read(self) -> int:
        return self._raw.count

    def __iter__(self) -> Iterator[can.Message]:
        try:
            if self.suffix in (".log", ".log.gz"):
                yield from self._candump()
            else:
                yield from self._python_can()
        finally:
            self.close()

    def _candump(self) -> Iterator[can.Message]:
        binary: IO[bytes] = io.BufferedReader(self._raw)
        if self.suffix == ".log.gz":
            binary = gzip.GzipFile(fileobj=binary)  # type: ignore[assignment]
        text = io.TextIOWrapper(binary, encoding="utf-8", errors="replace")
        try:
            for number, line in enumerate(text, start=1):
                if not line.strip():
                    continue
                try:
                    f = parse_line(line)
                except LogLineError as err:
                    self._bad(f"{self.path}:{number}: {err}")
                    continue
                yield can.Message(
                    timestamp=f.timestamp if f.timestamp is not None else 0.0,
                    arbitration_id=f.arbitration_id, is_extended_id=f.is_extended_id,
                    is_remote_frame=f.is_remote_frame, is_error_frame=f.is_error_frame, is_fd=f.is_fd,
                    bitrate_switch=f.bitrate_switch, error_state_indicator=f.error_state_indicator,
                    dlc=f.dlc, data=None if f.is_remote_frame else f.data, channel=f.channel, check=False,
                )
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            raise LogFormatError(f"{self.path}: {err}") from err

    def _python_can(self) -> Iterator[can.Message]:
        binary = io.BufferedReader(self._raw)
        source: Any = binary if self.suffix == ".blf" else io.TextIOWrapper(binary, encoding="utf-8", errors="replace")
        try:
            reader = _reader_for(self.suffix, source)
            for msg in reader:
                if isinstance(msg.channel, int):
                    # ASC/BLF come back 0-based, TRC 1-based: name them as candump does.
                    msg.channel = f"can{msg.channel - (1 if self.suffix == '.trc' else 0)}"
                yield msg
        except (ValueError, IndexError, KeyError, OSError, EOFError, can.CanError) as err:
            raise LogFormatError(f"{self.path}: not a valid {self.suffix} file: {type(err).__name__}: {err}") from err

    def _bad(self, reason: str) -> None:
        self.bad_lines += 1
        if len(self.bad_samples) < 5:
            self.bad_samples.append(reason)

    def close(self) -> None:
        if not self._raw.closed:
            self._raw.close()


def _reader_for(suffix: str, source: Any) -> Any:
    from can.io.asc import ASCReader
    from can.io.blf import BLFReader
    from can.io.csv import CSVReader
    from can.io.trc import TRCReader

    readers: dict[str, Callable[[Any], Any]] = {".asc": ASCReader, ".blf": BLFReader, ".csv": CSVReader,
                                                 ".trc": TRCReader}
    return readers[suffix](source)


class RotatingWriter:
    """Writes to ``stem.NNN.suffix`` files, starting a new one past a size or an age.

    ``max_bytes`` / ``max_s``: rotation limits (None: no limit of that kind). Without any
    limit the single file is ``path`` itself. :attr:`paths` lists every file started.
    """

    def __init__(self, path: str | os.PathLike[str], *, channels: Sequence[str] = (),
                 max_bytes: int | None = None, max_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_bytes is not None and max_bytes <= 0:
            raise LogFormatError(f"expected a rotation size > 0 bytes, but got {max_bytes}")
        if max_s is not None and not max_s > 0:
            raise LogFormatError(f"expected a rotation interval > 0 s, but got {max_s}")
        self.base = Path(path)
        self.suffix = log_suffix(self.base)
        if self.suffix not in WRITE_SUFFIXES:
            raise LogFormatError(f"{self.base}: expected a log file ending in {', '.join(WRITE_SUFFIXES)}, "
                                 f"but got {self.suffix or 'no suffix'!r}")
        self.channels = list(channels)
        self.max_bytes = max_bytes
        self.max_s = max_s
        self.clock = clock
        self.rotating = max_bytes is not None or max_s is not None
        self.paths: list[Path] = []
        self.written = 0
        self.skipped = 0
        self._writer: Any = None
        self._started = 0.0
        self._open_next()

    def _open_next(self) -> None:
        if self._writer is not None:
            self.skipped += self._writer.skipped
            self._writer.stop()
        if self.rotating:
            stem = self.base.name[: -len(self.suffix)]
            path = self.base.with_name(f"{stem}.{len(self.paths):03d}{self.suffix}")
        else:
            path = self.base
        self._writer = open_writer(path, channels=self.channels)
        self.paths.append(path)
        self._started = self.clock()

    def on_message_received(self, msg: can.Message) -> None:
        if self.rotating and self._due():
            self._open_next()
        self._writer.on_message_received(msg)
        self.written += 1

    def _due(self) -> bool:
        if self.max_s is not None and self.clock() - self._started >= self.max_s:
            return True
        return self.max_bytes is not None and self._writer.file_size() >= self.max_bytes

    def flush(self) -> None:
        """Push what is written so far to the current file (see the file writer's flush)."""
        if self._writer is not None:
            self._writer.flush()

    def stop(self) -> None:
        """Close the current file (idempotent)."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.stop()
            self.skipped += writer.skipped
