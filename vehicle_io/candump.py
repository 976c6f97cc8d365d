"""Read candump text: log lines ``(SECS.USECS) IFACE ID#DATA`` and the console format.

Two formats are recognised, as can-utils writes them:

* ``candump -L`` / ``.log`` files: ``(1700000000.123456) can0 123#DEADBEEF``, extended
  ids with 8 hex digits, remote frames ``123#R`` or ``123#R5``, CAN FD ``123##<flags><data>``,
  error frames with ``CAN_ERR_FLAG`` (0x20000000) set in the id. An optional trailing
  direction marker ``R``/``T`` (python-can's writer adds it) is accepted.
* the console output of ``candump can0``: ``  can0  123   [4]  DE AD BE EF`` (also with
  ``-ta`` timestamps in front and FD ``[64]`` lengths).

Every bad line raises :class:`LogLineError` naming what was wrong; callers count and report it
and go on with the next line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from vehicle_io.errors import VehicleIoError

CAN_EFF_FLAG = 0x80000000
CAN_RTR_FLAG = 0x40000000
CAN_ERR_FLAG = 0x20000000
CAN_EFF_MASK = 0x1FFFFFFF
CAN_SFF_MASK = 0x7FF

#: Valid CAN FD payload lengths (ISO 11898-1 DLC 9..15 map to 12..64 bytes).
FD_LENGTHS = frozenset((0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64))


class LogLineError(VehicleIoError, ValueError):
    """A line of candump text is not a frame."""


@dataclass(frozen=True, slots=True)
class LogFrame:
    """One frame read from candump text."""

    timestamp: float | None
    channel: str
    arbitration_id: int
    is_extended_id: bool
    data: bytes
    is_fd: bool = False
    bitrate_switch: bool = False
    error_state_indicator: bool = False
    is_remote_frame: bool = False
    is_error_frame: bool = False
    dlc: int = 0


_LOG_RE = re.compile(r"^\s*\((\d+(?:\.\d+)?)\)\s+(\S+)\s+([0-9A-Fa-f]+)(##?)(\S*)(?:\s+([RT]))?\s*$")
_CONSOLE_RE = re.compile(
    r"^\s*(?:\((\d+(?:\.\d+)?)\)\s+)?(\S+)\s+([0-9A-Fa-f]{3}|[0-9A-Fa-f]{8})\s+"
    r"\[(\d{1,2})\]\s*((?:[0-9A-Fa-f]{2}\s*)*|remote request)\s*$"
)
_HEX_RE = re.compile(r"^(?:[0-9A-Fa-f]{2})*$")


def _parse_id(text: str) -> tuple[int, bool]:
    if len(text) == 3:
        return int(text, 16), False
    if len(text) == 8:
        return int(text, 16), True
    raise LogLineError(f"expected a 3 or 8 hex digit CAN id, but got {text!r}")


def parse_line(line: str) -> LogFrame:
    """Parse one line of candump text into a :class:`LogFrame`."""
    m = _LOG_RE.match(line)
    if m:
        return _parse_log(m)
    m = _CONSOLE_RE.match(line)
    if m:
        return _parse_console(m)
    shown = line.strip()
    if len(shown) > 60:
        shown = shown[:57] + "..."
    raise LogLineError(f"expected '(SECS) IFACE ID#DATA' or candump console output, but got {shown!r}")


def _parse_log(m: re.Match[str]) -> LogFrame:
    ts_text, channel, id_text, sep, body, _direction = m.groups()
    raw_id, extended = _parse_id(id_text)
    timestamp = float(ts_text)
    if extended and raw_id & CAN_ERR_FLAG:
        if sep != "#" or not _HEX_RE.match(body) or len(body) > 16:
            raise LogLineError(f"malformed error frame {id_text}{sep}{body!r}")
        data = bytes.fromhex(body)
        return LogFrame(timestamp, channel, raw_id & ~CAN_ERR_FLAG & CAN_EFF_MASK, False, data,
                        is_error_frame=True, dlc=len(data))
    if extended and raw_id > CAN_EFF_MASK:
        raise LogLineError(f"expected an id of at most 29 bits, but got {id_text}")
    if sep == "##":
        if not body or body[0] not in "0123456789ABCDEFabcdef":
            raise LogLineError(f"expected a CAN FD flags digit after '##', but got {body[:1]!r}")
        flags = int(body[0], 16)
        payload = body[1:]
        if not _HEX_RE.match(payload):
            raise LogLineError(f"expected hex byte pairs, but got {payload!r}")
        data = bytes.fromhex(payload)
        if len(data) not in FD_LENGTHS:
            raise LogLineError(f"expected a CAN FD length (0-8, 12, 16, 20, 24, 32, 48, 64), but got {len(data)}")
        return LogFrame(timestamp, channel, raw_id, extended, data, is_fd=True,
                        bitrate_switch=bool(flags & 0x1), error_state_indicator=bool(flags & 0x2),
                        dlc=len(data))
    if body[:1] in ("R", "r"):
        dlc_text = body[1:]
        if dlc_text and not (len(dlc_text) == 1 and dlc_text.isdigit() and int(dlc_text) <= 8):
            raise LogLineError(f"expected a remote frame length digit 0-8, but got {dlc_text!r}")
        return LogFrame(timestamp, channel, raw_id, extended, b"", is_remote_frame=True,
                        dlc=int(dlc_text) if dlc_text else 0)
    if "_" in body:
        # can-utils writes a raw DLC 9..15 of an 8-byte classic frame as "DATA_D".
        body, _, _raw_dlc = body.partition("_")
    if not _HEX_RE.match(body):
        raise LogLineError(f"expected hex byte pairs after '#', but got {body!r}")
    data = bytes.fromhex(body)
    if len(data) > 8:
        raise LogLineError(f"expected at most 8 data bytes in a classic frame, but got {len(data)}")
    return LogFrame(timestamp, channel, raw_id, extended, data, dlc=len(data))


def _parse_console(m: re.Match[str]) -> LogFrame:
    ts_text, channel, id_text, length_text, body = m.groups()
    raw_id, extended = _parse_id(id_text)
    length = int(length_text)
    timestamp = float(ts_text) if ts_text else None
    if body == "remote request":
        return LogFrame(timestamp, channel, raw_id, extended, b"", is_remote_frame=True, dlc=length)
    data = bytes.fromhex(body.replace(" ", ""))
    if len(data) != length:
        raise LogLineError(f"expected {length} data bytes as the [{length}] says, but got {len(data)}")
    if length > 8 and length not in FD_LENGTHS:
        raise LogLineError(f"expected a CAN FD length, but got {length}")
    return LogFrame(timestamp, channel, raw_id, extended, data, is_fd=length > 8, dlc=length)


@dataclass
class FrameBatch:
    """Frames as the hot path wants them (DESIGN.md): arrays, zero-padded to 64 bytes."""

    ids: np.ndarray  # uint32[N], CAN_EFF_FLAG set for extended ids
    data: np.ndarray  # uint8[N, 64]
    lengths: np.ndarray  # uint8[N]
    timestamps: np.ndarray  # float64[N]
    channels: list[str]
    line_numbers: np.ndarray  # int64[N], 1-based line of each frame in its source

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class BadLine:
    line_number: int
    reason: str


def pack_payloads(payloads: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """``payloads`` in the hot-path layout: data uint8[N, 64] zero padded, lengths uint8[N]."""
    n = len(payloads)
    data = np.zeros((n, 64), dtype=np.uint8)
    lengths = np.zeros(n, dtype=np.uint8)
    for i, payload in enumerate(payloads):
        data[i, : len(payload)] = np.frombuffer(payload, dtype=np.uint8)
        lengths[i] = len(payload)
    return data, lengths


def iter_batches(
    lines: Iterable[str], batch_size: int = 4096, *, first_line: int = 1
) -> Iterator[tuple[FrameBatch, list[BadLine]]]:
    """Yield data frames of ``lines`` in batches, with the bad lines met on the way.

    Remote and error frames carry no signals: they are skipped here and reported as bad
    lines with a reason, so a caller's count of lines read always adds up.
    """
    buf_ids: list[int] = []
    buf_data: list[bytes] = []
    buf_ts: list[float] = []
    buf_ch: list[str] = []
    buf_ln: list[int] = []
    bad: list[BadLine] = []

    def flush() -> FrameBatch:
        data, lengths = pack_payloads(buf_data)
        batch = FrameBatch(
            np.array(buf_ids, dtype=np.uint32), data, lengths,
            np.array(buf_ts, dtype=np.float64), list(buf_ch), np.array(buf_ln, dtype=np.int64),
        )
        buf_ids.clear(), buf_data.clear(), buf_ts.clear(), buf_ch.clear(), buf_ln.clear()
        return batch

    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        try:
            frame = parse_line(line)
        except LogLineError as err:
            bad.append(BadLine(number, str(err)))
            continue
        if frame.is_remote_frame or frame.is_error_frame:
            kind = "remote" if frame.is_remote_frame else "error"
            bad.append(BadLine(number, f"{kind} frame carries no signals"))
            continue
        buf_ids.append(frame.arbitration_id | (CAN_EFF_FLAG if frame.is_extended_id else 0))
        buf_data.append(frame.data)
        buf_ts.append(frame.timestamp if frame.timestamp is not None else float("nan"))
        buf_ch.append(frame.channel)
        buf_ln.append(number)
        if len(buf_ids) >= batch_size:
            yield flush(), bad
            bad = []
    if buf_ids or bad:
        yield flush(), bad
