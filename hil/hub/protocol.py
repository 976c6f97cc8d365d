"""The socketcand protocol, without I/O: framing, command parsing, frame formatting, BCM receive.

socketcand (linux-can/socketcand, ``doc/protocol.md``) speaks ASCII over TCP in elements
``< ... >``. What this module accepts and writes is what the real daemon does
(``src/state_*.c``), so any socketcand client works against the hub:

* greeting ``< hi >``; ``< open BUS >`` -> ``< ok >`` (BCM mode); ``< rawmode >`` /
  ``< bcmmode >`` -> ``< ok >``; ``< echo >`` is answered with itself.
* ``< send ID DLC B0 B1 ... >``: a classic frame. ID is hex; exactly 8 hex digits make it
  extended (29-bit), fewer standard; DLC is decimal 0..8; bytes are hex.
  ``< sendrtr ID DLC >``: a remote frame. ``< fdsend ID FLAGS LEN B0 ... >``: a CAN FD frame,
  FLAGS hex (``0x01`` BRS, ``0x02`` ESI), LEN decimal and a valid FD length.
* raw mode out: ``< frame ID SECS.USECS HEXDATA >`` (data as one run of hex digits),
  ``< fdframe ID FLAGS SECS.USECS HEXDATA >`` for CAN FD (FLAGS as the kernel reports them:
  BRS 0x01, ESI 0x02, FDF 0x04), ``< rtr ID SECS.USECS DLC >`` for a remote frame
  (protocol.md) and ``< error CLASS SECS.USECS >`` for an error frame.
* BCM mode: ``add``/``update``/``delete`` (cyclic transmit), ``subscribe``/``unsubscribe``,
  ``filter`` and ``muxfilter`` (content filtering with throttling, see :class:`BcmReceiver`);
  received frames as ``< frame ID SECS.USECS B0 B1 ... >`` (bytes separated, as
  ``state_bcm.c`` writes them).

Where socketcand only logs a malformed command, the hub answers ``< error REASON >`` (and
socketcand's own ``< error unknown command >`` for an unknown one), so a client learns what
was wrong; python-can's socketcand client turns any ``< error ... >`` into a ``CanError`` on
its next ``recv``, as it does with the real daemon.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import can

from hil.hub.errors import ProtocolError

# socketcand's well-known port (``z10 sim`` serves here by default), the longest element
# accepted ('<' to '>' inclusive: a muxfilter with 257 8-byte tuples fits), the CAN FD flags
# and lengths: one definition, shared with the tester's client.
from vehicle_io.socketcand import (
    _FD_LENGTH_SET,
    DEFAULT_PORT,
    FD_LENGTHS,
    FLAG_BRS,
    FLAG_ESI,
    FLAG_FDF,
    MAX_ELEMENT_BYTES,
)

_WHITESPACE = b" \t\r\n\v\f"
_ANGLE = re.compile(rb"[<>]")
_LINE_END = re.compile(rb"[<\n]")
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")
_HEX = re.compile(r"[0-9A-Fa-f]+")


# -- framing --------------------------------------------------------------------------------


class Framer:
    """Splits a client's byte stream into elements ``< ... >``; what is not an element is reported.

    :meth:`feed` returns, in stream order, each complete element (``str``, brackets
    included) and each :class:`ProtocolError` for input that is not one:

    * stray bytes outside an element (whitespace between elements is fine): one error per run,
      the run ending at the next ``<`` or line feed;
    * an element cut short by a new ``<`` (``< send 123 <``): one error, the new ``<`` starts
      the next element, so the stream resynchronises at once;
    * an element longer than ``max_element_bytes``: one error when its ``>`` arrives; its
      bytes are not kept, so memory stays bounded whatever the client sends;
    * non-ASCII bytes inside an element: one error for that element.

    The result is the same however the stream is split into chunks.
    """

    def __init__(self, max_element_bytes: int = MAX_ELEMENT_BYTES) -> None:
        if max_element_bytes < 3:
            raise ValueError(f"expected max_element_bytes >= 3, but got {max_element_bytes}")
        self.max_element_bytes = max_element_bytes
        self._element = bytearray()
        self._element_len = 0  # bytes of the current element so far (may exceed what is kept)
        self._inside = False
        self._junk = bytearray()  # first bytes of the current stray run, for the message
        self._junk_count = 0
        #: Totals since creation.
        self.elements = 0
        self.errors = 0
        self.stray_bytes = 0

    def feed(self, data: bytes) -> list[str | ProtocolError]:
        """Consume ``data``; return the elements and errors it completes, in order."""
        out: list[str | ProtocolError] = []
        pos = 0
        n = len(data)
        while pos < n:
            if not self._inside:
                m = _LINE_END.search(data, pos)
                end = n if m is None else m.start()
                if end > pos:
                    self._note_junk(data[pos:end])
                if m is None:
                    break
                if data[end] == 0x0A:  # a line feed ends a stray run (a typed line of junk)
                    self._flush_junk(out)
                    pos = end + 1
                    continue
                self._flush_junk(out)
                self._inside = True
                self._element = bytearray(b"<")
                self._element_len = 1
                pos = end + 1
                continue
            m = _ANGLE.search(data, pos)
            end = n if m is None else m.start()
            self._grow(data, pos, end)
            if m is None:
                break
            if data[end] == 0x3C:  # '<' inside an element: it was never closed
                self._error(out, f"expected a closing bracket after {self._preview()!r}, but a new element started")
                self._element = bytearray(b"<")
                self._element_len = 1
                pos = end + 1
                continue
            self._grow(data, end, end + 1)
            self._inside = False
            pos = end + 1
            if self._element_len > self.max_element_bytes:
                self._error(out, f"expected an element of at most {self.max_element_bytes} bytes, "
                                 f"but got {self._element_len}")
                continue
            raw = bytes(self._element)
            try:
                text = raw.decode("ascii")
            except UnicodeDecodeError:
                self._error(out, f"expected ASCII text in an element, but got {_show(raw)!r}")
                continue
            self.elements += 1
            out.append(text)
        return out

    def close(self) -> list[ProtocolError]:
        """End of stream: report an unfinished element or stray run."""
        out: list[str | ProtocolError] = []
        if self._inside:
            self._error(out, f"expected a closing bracket after {self._preview()!r}, but the connection ended")
            self._inside = False
        self._flush_junk(out)
        return [e for e in out if isinstance(e, ProtocolError)]

    @property
    def pending_bytes(self) -> int:
        """Bytes held for an element not yet complete (bounded by ``max_element_bytes``)."""
        return len(self._element) if self._inside else 0

    def _grow(self, data: bytes, start: int, end: int) -> None:
        if end <= start:
            return
        room = self.max_element_bytes + 1 - len(self._element)
        if room > 0:
            self._element += data[start:min(end, start + room)]
        self._element_len += end - start

    def _note_junk(self, chunk: bytes) -> None:
        stray = chunk.translate(None, _WHITESPACE)
        if stray:
            self._junk_count += len(stray)
            if len(self._junk) < 24:
                self._junk += stray[: 24 - len(self._junk)]

    def _flush_junk(self, out: list[str | ProtocolError]) -> None:
        if self._junk_count:
            count = self._junk_count
            self.stray_bytes += count
            self._error(out, f"expected an element in brackets, but got {count} stray byte{'s' if count != 1 else ''} {_show(bytes(self._junk))!r}")
            self._junk_count = 0
            self._junk = bytearray()

    def _preview(self) -> str:
        return _show(bytes(self._element[:24]))

    def _error(self, out: list[str | ProtocolError], text: str) -> None:
        self.errors += 1
        out.append(ProtocolError(text))


def _show(raw: bytes) -> str:
    """Printable ASCII preview of raw bytes (for one-line error messages, no '<' or '>')."""
    text = raw[:24].decode("ascii", "replace")
    text = _NOT_PRINTABLE.sub("?", text).replace("<", "(").replace(">", ")")
    return text + ("..." if len(raw) > 24 else "")


def tokens_of(element: str) -> list[str]:
    """The words of an element: ``"< send 123 0 >"`` -> ``["send", "123", "0"]``."""
    return element[1:-1].split()


# -- commands -> frames -------------------------------------------------------------------------


def _hex_id(token: str, what: str = "id") -> tuple[int, bool]:
    """socketcand's rule: an id of exactly 8 hex digits is extended, a shorter one standard."""
    if not 1 <= len(token) <= 8 or not _HEX.fullmatch(token):
        raise ProtocolError(f"expected a hex {what} of 1..8 digits, but got {token!r}")
    value = int(token, 16)
    extended = len(token) == 8
    if extended:
        if value > 0x1FFFFFFF:
            raise ProtocolError(f"expected an extended {what} of at most 1FFFFFFF, but got {token}")
    elif value > 0x7FF:
        raise ProtocolError(f"expected a standard {what} of at most 7FF (or 8 hex digits for an extended one), but got {token}")
    return value, extended


def _decimal(token: str, what: str, low: int, high: int) -> int:
    if not token.isascii() or not token.isdigit() or len(token) > 10:
        raise ProtocolError(f"expected the {what} as a decimal number {low}..{high}, but got {token!r}")
    value = int(token)
    if not low <= value <= high:
        raise ProtocolError(f"expected the {what} to be {low}..{high}, but got {value}")
    return value


def _hex_byte(token: str) -> int:
    if not 1 <= len(token) <= 2 or not _HEX.fullmatch(token):
        raise ProtocolError(f"expected a data byte of 1..2 hex digits, but got {token!r}")
    return int(token, 16)


def _data(tokens: Sequence[str], count: int, command: str) -> bytes:
    if len(tokens) != count:
        raise ProtocolError(f"{command}: expected {count} data byte{'s' if count != 1 else ''}, but got {len(tokens)}")
    return bytes(_hex_byte(t) for t in tokens)


def _interval_s(sec_token: str, usec_token: str, command: str) -> float:
    secs = _decimal(sec_token, f"{command} interval seconds", 0, 4_294_967_295)
    usecs = _decimal(usec_token, f"{command} interval microseconds", 0, 4_294_967_295)
    return secs + usecs / 1e6


def _args(tokens: Sequence[str], low: int, command: str, usage: str) -> Sequence[str]:
    args = tokens[1:]
    if len(args) < low:
        raise ProtocolError(f"{command}: expected '{usage}', but got {len(args)} argument{'s' if len(args) != 1 else ''}")
    return args


def parse_send(tokens: Sequence[str]) -> can.Message:
    """``send ID DLC B...`` -> a classic data frame."""
    args = _args(tokens, 2, "send", "send ID DLC DATA...")
    can_id, ext = _hex_id(args[0])
    dlc = _decimal(args[1], "send DLC", 0, 8)
    data = _data(args[2:], dlc, "send")
    return can.Message(arbitration_id=can_id, is_extended_id=ext, dlc=dlc, data=data, check=False)


def parse_sendrtr(tokens: Sequence[str]) -> can.Message:
    """``sendrtr ID DLC`` -> a remote frame."""
    args = _args(tokens, 2, "sendrtr", "sendrtr ID DLC")
    if len(args) != 2:
        raise ProtocolError(f"sendrtr: expected 'sendrtr ID DLC', but got {len(args)} arguments")
    can_id, ext = _hex_id(args[0])
    dlc = _decimal(args[1], "sendrtr DLC", 0, 8)
    return can.Message(arbitration_id=can_id, is_extended_id=ext, is_remote_frame=True, dlc=dlc, check=False)


def parse_fdsend(tokens: Sequence[str]) -> can.Message:
    """``fdsend ID FLAGS LEN B...`` -> a CAN FD frame (FLAGS: 0x01 BRS, 0x02 ESI)."""
    args = _args(tokens, 3, "fdsend", "fdsend ID FLAGS LEN DATA...")
    can_id, ext = _hex_id(args[0])
    flags = _hex_byte(args[1])
    length = _decimal(args[2], "fdsend length", 0, 64)
    if length not in _FD_LENGTH_SET:
        raise ProtocolError(f"fdsend: expected a CAN FD length (0..8, 12, 16, 20, 24, 32, 48, 64), but got {length}")
    data = _data(args[3:], length, "fdsend")
    return can.Message(arbitration_id=can_id, is_extended_id=ext, is_fd=True, bitrate_switch=bool(flags & FLAG_BRS),
                       error_state_indicator=bool(flags & FLAG_ESI), dlc=length, data=data, check=False)


def parse_add(tokens: Sequence[str]) -> tuple[float, can.Message]:
    """``add SECS USECS ID DLC B...`` -> (period in s, frame) of a cyclic transmit job."""
    args = _args(tokens, 4, "add", "add SECS USECS ID DLC DATA...")
    period_s = _interval_s(args[0], args[1], "add")
    if period_s <= 0:
        raise ProtocolError("add: expected a positive interval, but got 0 s")
    msg = parse_send(["add", *args[2:]])
    return period_s, msg


def parse_update(tokens: Sequence[str]) -> can.Message:
    """``update ID DLC B...`` -> the new content of a cyclic job."""
    _args(tokens, 2, "update", "update ID DLC DATA...")
    return parse_send(tokens)


def parse_id_only(tokens: Sequence[str], command: str) -> tuple[int, bool]:
    """``delete ID`` / ``unsubscribe ID`` -> (id, extended)."""
    args = tokens[1:]
    if len(args) != 1:
        raise ProtocolError(f"{command}: expected '{command} ID', but got {len(args)} arguments")
    return _hex_id(args[0])


def parse_subscribe(tokens: Sequence[str]) -> tuple[float, int, bool]:
    """``subscribe SECS USECS ID`` -> (throttle s, id, extended)."""
    args = tokens[1:]
    if len(args) != 3:
        raise ProtocolError(f"subscribe: expected 'subscribe SECS USECS ID', but got {len(args)} arguments")
    can_id, ext = _hex_id(args[2])
    return _interval_s(args[0], args[1], "subscribe"), can_id, ext


def parse_filter(tokens: Sequence[str]) -> tuple[float, int, bool, bytes]:
    """``filter SECS USECS ID DLC MASK...`` -> (throttle s, id, extended, content mask)."""
    args = _args(tokens, 4, "filter", "filter SECS USECS ID DLC MASK...")
    throttle_s = _interval_s(args[0], args[1], "filter")
    can_id, ext = _hex_id(args[2])
    dlc = _decimal(args[3], "filter DLC", 0, 8)
    return throttle_s, can_id, ext, _data(args[4:], dlc, "filter")


def parse_muxfilter(tokens: Sequence[str]) -> tuple[float, int, bool, list[bytes]]:
    """``muxfilter SECS USECS ID NFRAMES B...`` -> (throttle s, id, extended, 8-byte tuples).

    The first tuple is the multiplexer mask; each further one holds a multiplexer value (in
    the mask's bits) and the content mask for that value.
    """
    args = _args(tokens, 4, "muxfilter", "muxfilter SECS USECS ID NFRAMES DATA...")
    throttle_s = _interval_s(args[0], args[1], "muxfilter")
    can_id, ext = _hex_id(args[2])
    nframes = _decimal(args[3], "muxfilter frame count", 2, 257)
    data = _data(args[4:], nframes * 8, "muxfilter")
    return throttle_s, can_id, ext, [data[i:i + 8] for i in range(0, len(data), 8)]


# -- frames -> text ---------------------------------------------------------------------------


def _stamp(timestamp: float) -> str:
    secs = int(timestamp)
    usecs = round((timestamp - secs) * 1e6)
    if usecs >= 1_000_000:
        secs += 1
        usecs -= 1_000_000
    elif usecs < 0:
        usecs = 0
    return f"{secs}.{usecs:06d}"


def _id_text(msg: can.Message) -> str:
    if msg.is_extended_id:
        return f"{msg.arbitration_id & 0x1FFFFFFF:08X}"
    return f"{msg.arbitration_id & 0x7FF:03X}"


def format_raw(msg: can.Message) -> str:
    """One received frame as raw mode writes it (``state_raw.c``)."""
    ts = _stamp(msg.timestamp or 0.0)
    if msg.is_error_frame:
        return f"< error {msg.arbitration_id & 0x1FFFFFFF:03X} {ts} >"
    if msg.is_remote_frame:
        return f"< rtr {_id_text(msg)} {ts} {msg.dlc} >"
    data = bytes(msg.data[: msg.dlc] if msg.data is not None else b"").hex().upper()
    if msg.is_fd:
        flags = FLAG_FDF | (FLAG_BRS if msg.bitrate_switch else 0) | (FLAG_ESI if msg.error_state_indicator else 0)
        return f"< fdframe {_id_text(msg)} {flags:02X} {ts} {data} >"
    return f"< frame {_id_text(msg)} {ts} {data} >"


def format_bcm(msg: can.Message) -> str:
    """One received frame as BCM mode writes it (``state_bcm.c``: bytes separated by spaces)."""
    data = "".join(f"{b:02X} " for b in bytes(msg.data[: msg.dlc] if msg.data is not None else b""))
    return f"< frame {_id_text(msg)} {_stamp(msg.timestamp or 0.0)} {data} >"


def format_error(text: str) -> str:
    """An error reply; the text is made one printable line without brackets."""
    clean = _NOT_PRINTABLE.sub("?", text).replace("<", "(").replace(">", ")")
    return f"< error {clean} >"


# -- BCM receive side ---------------------------------------------------------------------------


@dataclass
class _RxOp:
    """One receive job of the broadcast manager (per id)."""

    throttle_s: float
    kind: str  # "subscribe", "filter" or "muxfilter"
    masks: list[bytes] = field(default_factory=list)
    last: dict[int, bytes] = field(default_factory=dict)  # per tuple index: last data seen
    sent_at: float | None = None  # when the throttle window started
    held: dict[int, can.Message] = field(default_factory=dict)  # throttled, per tuple index


def _masked(data: bytes, mask: bytes) -> bytes:
    data = bytes(data[:8]).ljust(8, b"\0")
    return bytes(a & b for a, b in zip(data, mask.ljust(8, b"\0"), strict=True))


class BcmReceiver:
    """The receive jobs of one BCM-mode client, as the Linux broadcast manager runs them.

    ``subscribe``: every frame of the id. ``filter``: a frame whose data, under the mask,
    differs from the last frame of that id (the first one always passes). ``muxfilter``: the
    same per multiplexer value. A throttle interval > 0 sends at most one frame per interval
    and id (per multiplexer value): a frame inside the interval is held and the latest held one
    goes out when the interval ends. Time is passed in (``now_s``), so this is pure.
    """

    def __init__(self) -> None:
        self._ops: dict[tuple[int, bool], _RxOp] = {}

    def __len__(self) -> int:
        return len(self._ops)

    def subscribe(self, can_id: int, extended: bool, throttle_s: float) -> None:
        self._ops[(can_id, extended)] = _RxOp(throttle_s, "subscribe")

    def filter(self, can_id: int, extended: bool, throttle_s: float, mask: bytes) -> None:
        self._ops[(can_id, extended)] = _RxOp(throttle_s, "filter", [bytes(mask).ljust(8, b"\0")])

    def muxfilter(self, can_id: int, extended: bool, throttle_s: float, tuples: Sequence[bytes]) -> None:
        if len(tuples) < 2:
            raise ProtocolError(f"muxfilter: expected a mask and at least one filter tuple, but got {len(tuples)} tuples")
        self._ops[(can_id, extended)] = _RxOp(throttle_s, "muxfilter", [bytes(t).ljust(8, b"\0") for t in tuples])

    def unsubscribe(self, can_id: int, extended: bool) -> bool:
        """Drop the job of the id; False when there was none."""
        return self._ops.pop((can_id, extended), None) is not None

    def clear(self) -> None:
        self._ops.clear()

    def on_frame(self, msg: can.Message, now_s: float) -> list[can.Message]:
        """The frames to forward now for one received frame (none, it, or held for later)."""
        if msg.is_error_frame or msg.is_remote_frame:
            return []
        op = self._ops.get((msg.arbitration_id, bool(msg.is_extended_id)))
        if op is None:
            return []
        data = bytes(msg.data or b"")
        index = 0
        if op.kind == "filter":
            masked = _masked(data, op.masks[0])
            if op.last.get(0) == masked:
                return []
            op.last[0] = masked
        elif op.kind == "muxfilter":
            mux_mask = op.masks[0]
            mux_value = _masked(data, mux_mask)
            for i in range(1, len(op.masks)):
                if _masked(op.masks[i], mux_mask) == mux_value:
                    index = i
                    break
            else:
                return []
            masked = _masked(data, op.masks[index])
            if op.last.get(index) == masked:
                return []
            op.last[index] = masked
        if op.throttle_s <= 0:
            return [msg]
        if op.sent_at is None or now_s - op.sent_at >= op.throttle_s:
            op.sent_at = now_s
            op.held.clear()
            return [msg]
        op.held[index] = msg
        return []

    def due(self, now_s: float) -> list[can.Message]:
        """Held frames whose throttle interval has ended (each restarts its interval)."""
        out: list[can.Message] = []
        for op in self._ops.values():
            if op.held and op.sent_at is not None and now_s - op.sent_at >= op.throttle_s:
                out.extend(op.held[i] for i in sorted(op.held))
                op.held.clear()
                op.sent_at = now_s
        return out

    def next_due_s(self) -> float | None:
        """When the earliest held frame is due, or None when nothing is held."""
        times = [op.sent_at + op.throttle_s for op in self._ops.values() if op.held and op.sent_at is not None]
        return min(times) if times else None
