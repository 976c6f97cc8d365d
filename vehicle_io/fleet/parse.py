"""Log bytes -> frame arrays: the candump kernel with an exact slow path, python-can for the rest.

Every reader returns :class:`Frames` (the DESIGN.md batch layout plus a channel index and
each frame's 1-based line, or record, number) and :class:`ReadReport` (bad lines, a
file-level error such as a truncated gzip or BLF, frames skipped because remote and error
frames carry no signals). A reader never raises for bad content: it keeps what it could
read and says where and why it stopped.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vehicle_io.candump import CAN_EFF_FLAG, LogLineError, pack_payloads, parse_line
from vehicle_io.codec.decoder import DecodeWorkspace

#: Bad lines kept verbatim per chunk (the rest are only counted).
MAX_BAD_SAMPLES = 20


@dataclass
class BadLine:
    """A line that is not a frame: ``line`` within its chunk (1-based), byte ``offset`` in the file."""

    line: int
    offset: int
    reason: str


@dataclass
class ReadReport:
    """What a reader met besides frames."""

    lines: int = 0
    bad_count: int = 0
    bad: list[BadLine] = field(default_factory=list)
    skipped_frames: int = 0  # remote and error frames: no signals
    error: str | None = None  # the file could not be read to its end
    error_offset: int | None = None

    def add_bad(self, line: int, offset: int, reason: str) -> None:
        self.bad_count += 1
        if len(self.bad) < MAX_BAD_SAMPLES:
            self.bad.append(BadLine(line, offset, reason))


@dataclass
class Frames:
    """Frames of one chunk: ``ids`` uint32 (CAN_EFF_FLAG for extended), ``data`` uint8[N, 64],
    ``lengths`` uint8, ``timestamps`` float64 s, ``channel_index`` int32 into ``channels``,
    ``lines`` int64 (1-based line or record number within the chunk)."""

    ids: np.ndarray
    data: np.ndarray
    lengths: np.ndarray
    timestamps: np.ndarray
    channel_index: np.ndarray
    channels: list[str]
    lines: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls) -> Frames:
        return cls(np.zeros(0, np.uint32), np.zeros((0, 64), np.uint8), np.zeros(0, np.uint8),
                   np.zeros(0, np.float64), np.zeros(0, np.int32), [], np.zeros(0, np.int64))


def _array(workspace: DecodeWorkspace | None, name: str, size: int, dtype: type) -> np.ndarray:
    """A 1-D output array: from ``workspace`` (reused) or fresh; its contents are undefined."""
    return np.empty(size, dtype) if workspace is None else workspace.take(name, size, dtype)


def parse_candump_bytes(buf: bytes | bytearray | memoryview | np.ndarray, base_offset: int = 0,
                        workspace: DecodeWorkspace | None = None) -> tuple[Frames, ReadReport]:
    """Parse candump ``-l`` text (whole lines) into arrays; ``base_offset``: file offset of ``buf``.

    ``buf`` may be a uint8 array: a writeable one is parsed in place, without a copy. With a
    ``workspace`` the frame arrays are views of its buffers (no fresh ~40 MB per 32 MiB of
    log): they stay valid until the workspace's next use.
    """
    from vehicle_io.fleet import _parse_kernels as k

    raw = buf if isinstance(buf, np.ndarray) else np.frombuffer(buf, dtype=np.uint8)
    if not raw.flags.writeable or raw.dtype != np.uint8 or raw.ndim != 1:
        # the kernel is compiled for writeable arrays only; a second signature would cost a compile
        raw = np.array(raw, dtype=np.uint8).reshape(-1)
    cap = int(k.count_lines(raw)) + 1
    # uninitialised (the kernel writes every row of a frame whole, zero padding included):
    # zeroing ~30 MB first was a second pass over memory the kernel touches anyway
    ids = _array(workspace, "parse.ids", cap, np.uint32)
    data = _array(workspace, "parse.data", cap * 64, np.uint8).reshape(cap, 64)
    lengths = _array(workspace, "parse.lengths", cap, np.uint8)
    stamps = _array(workspace, "parse.stamps", cap, np.float64)
    chans = _array(workspace, "parse.chans", cap, np.int32)
    lines = _array(workspace, "parse.lines", cap, np.int64)
    slow_starts = _array(workspace, "parse.slow_starts", cap, np.int64)
    slow_ends = _array(workspace, "parse.slow_ends", cap, np.int64)
    slow_lines = _array(workspace, "parse.slow_lines", cap, np.int64)
    chan_starts = np.zeros(k.MAX_CHANNELS, np.int64)
    chan_lens = np.zeros(k.MAX_CHANNELS, np.int64)
    n, n_slow, n_lines, n_chan = k.parse_candump(raw, ids, data, lengths, stamps, chans, lines, slow_starts,
                                                 slow_ends, slow_lines, chan_starts, chan_lens)
    channels = [bytes(raw[chan_starts[i]:chan_starts[i] + chan_lens[i]]).decode("utf-8", "replace")
                for i in range(n_chan)]
    report = ReadReport(lines=int(n_lines))
    frames = Frames(ids[:n], data[:n], lengths[:n], stamps[:n], chans[:n], channels, lines[:n])
    if n_slow:
        frames = _slow_path(raw, frames, report, slow_starts[:n_slow], slow_ends[:n_slow], slow_lines[:n_slow],
                            base_offset)
    return frames, report


def _slow_path(raw: np.ndarray, frames: Frames, report: ReadReport, starts: np.ndarray, ends: np.ndarray,
               lines: np.ndarray, base_offset: int) -> Frames:
    """Lines the kernel left: parsed exactly as :func:`vehicle_io.candump.parse_line` does."""
    channels = list(frames.channels)
    index = {name: i for i, name in enumerate(channels)}
    extra_ids: list[int] = []
    extra_data: list[bytes] = []
    extra_ts: list[float] = []
    extra_ch: list[int] = []
    extra_ln: list[int] = []
    for s, e, ln in zip(starts.tolist(), ends.tolist(), lines.tolist()):
        text = bytes(raw[s:e]).decode("utf-8", "replace")
        if not text.strip():
            continue  # blank by Python's idea of whitespace (\x1c-\x1f, NEL, ...), as iter_batches skips it
        try:
            f = parse_line(text)
        except LogLineError as err:
            report.add_bad(ln, base_offset + s, str(err))
            continue
        if f.is_remote_frame or f.is_error_frame:
            report.skipped_frames += 1
            continue
        if f.channel not in index:
            index[f.channel] = len(channels)
            channels.append(f.channel)
        extra_ids.append(f.arbitration_id | (CAN_EFF_FLAG if f.is_extended_id else 0))
        extra_data.append(f.data)
        extra_ts.append(f.timestamp if f.timestamp is not None else float("nan"))
        extra_ch.append(index[f.channel])
        extra_ln.append(ln)
    if not extra_ids:
        frames.channels = channels
        return frames
    data, lengths = pack_payloads(extra_data)
    line_all = np.concatenate([frames.lines, np.array(extra_ln, np.int64)])
    order = np.argsort(line_all, kind="stable")  # keep file order
    return Frames(
        np.concatenate([frames.ids, np.array(extra_ids, np.uint32)])[order],
        np.concatenate([frames.data, data])[order],
        np.concatenate([frames.lengths, lengths])[order],
        np.concatenate([frames.timestamps, np.array(extra_ts, np.float64)])[order],
        np.concatenate([frames.channel_index, np.array(extra_ch, np.int32)])[order],
        channels,
        line_all[order],
    )


def read_candump_range(path: str | Path, start: int, end: int,
                       workspace: DecodeWorkspace | None = None) -> tuple[Frames, ReadReport]:
    """Parse bytes ``[start, end)`` of a candump ``.log`` (the range begins and ends on line starts).

    ``workspace``: as :func:`parse_candump_bytes` (the file's bytes are read into it too).
    """
    # read straight into a writeable array: bytes would need a copy before the kernel
    # (16 MiB: 5.5 ms against 11 ms for read() plus 3.6 ms for the copy)
    buf = _array(workspace, "read.bytes", max(0, end - start), np.uint8)
    got = 0
    with open(path, "rb") as handle:
        handle.seek(start)
        view = memoryview(buf)
        while got < len(buf):
            n = handle.readinto(view[got:])
            if not n:
                break
            got += n
    frames, report = parse_candump_bytes(buf[:got], start, workspace)
    if got < end - start:
        report.error = f"file shrank while reading: expected {end - start} bytes from offset {start}, but got {got}"
        report.error_offset = start + got
    return frames, report


def read_candump_gz(path: str | Path) -> tuple[Frames, ReadReport]:
    """Parse a gzip-compressed candump log; a truncated or corrupt stream keeps what came before."""
    pieces: list[bytes] = []
    error: str | None = None
    error_offset: int | None = None
    with open(path, "rb") as handle:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        in_member = False
        pending = b""
        while True:
            block = pending or handle.read(1 << 20)
            pending = b""
            if not block:
                if in_member:
                    error = "truncated gzip stream: the compressed data ends before its end marker"
                    error_offset = handle.tell()
                break
            try:
                pieces.append(inflater.decompress(block))
            except zlib.error as err:
                error = f"corrupt gzip stream: {err}"
                error_offset = handle.tell()
                break
            in_member = True
            if inflater.eof:  # gzip members may be concatenated: start over on what is left
                pending = inflater.unused_data
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                in_member = False
    frames, report = parse_candump_bytes(b"".join(pieces), 0)
    report.error = error
    report.error_offset = error_offset
    return frames, report


def read_python_can(path: str | Path) -> tuple[Frames, ReadReport]:
    """Read .asc/.blf (any python-can format) through :class:`vehicle_io.logfmt.LogReader`.

    Line numbers are record numbers (1-based, every record python-can yields). An exception
    inside python-can's reader (a truncated BLF container, a malformed ASC line it cannot
    skip) ends the file: the frames before it are kept and the error is reported.
    """
    from vehicle_io.logfmt import LogReader

    report = ReadReport()
    ids: list[int] = []
    payloads: list[bytes] = []
    stamps: list[float] = []
    chans: list[int] = []
    lines: list[int] = []
    index: dict[str, int] = {}
    reader = LogReader(path)
    record = 0
    try:
        for msg in reader:
            record += 1
            if msg.is_remote_frame or msg.is_error_frame:
                report.skipped_frames += 1
                continue
            name = str(msg.channel) if msg.channel is not None else "can0"
            ch = index.get(name)
            if ch is None:
                ch = index[name] = len(index)
            ids.append((msg.arbitration_id & 0x1FFFFFFF) | (CAN_EFF_FLAG if msg.is_extended_id else 0))
            payloads.append(bytes(msg.data)[:64])
            stamps.append(float(msg.timestamp))
            chans.append(ch)
            lines.append(record)
    except Exception as err:  # noqa: BLE001 - any reader failure ends this file, never the job
        cause = err.__cause__ if err.__cause__ is not None else err
        report.error = f"unreadable after {record} records: {type(cause).__name__}: {cause}"
        report.error_offset = reader.bytes_read
    finally:
        reader.close()
    if report.error is None and Path(path).suffix.lower() == ".blf":
        _check_blf_size(Path(path), report, record)
    report.lines = record
    data, lengths = pack_payloads(payloads)
    frames = Frames(np.array(ids, np.uint32), data, lengths, np.array(stamps, np.float64),
                    np.array(chans, np.int32), list(index), np.array(lines, np.int64))
    return frames, report


def _check_blf_size(path: Path, report: ReadReport, records: int) -> None:
    """python-can's BLF reader stops silently at a cut container: the header's size tells."""
    from can.io.blf import BLFReader

    try:
        header = BLFReader(str(path))
        expected = int(header.file_size)
        header.stop()
        actual = path.stat().st_size
    except Exception as err:  # noqa: BLE001 - an unreadable header is itself the finding
        report.error = f"unreadable BLF header: {type(err).__name__}: {err}"
        report.error_offset = 0
        return
    if actual < expected:
        report.error = (f"truncated BLF: expected {expected} bytes as its header says, but the file has "
                        f"{actual} (kept the {records} records before the cut)")
        report.error_offset = actual
