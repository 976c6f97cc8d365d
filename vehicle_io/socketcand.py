"""A python-can client for socketcand's raw mode, with CAN FD both ways, on loopback only.

python-can's own ``socketcand`` interface knows neither ``fdframe`` nor ``fdsend``, so it
never sees the ``ads`` bus that ``z10 sim`` serves. This one speaks the raw mode as
socketcand writes it (``doc/protocol.md``, ``src/state_raw.c``):

* server -> client: ``< frame ID SECS.USECS HEXDATA >``, ``< fdframe ID FLAGS SECS.USECS
  HEXDATA >`` (FLAGS hex as the kernel reports them: 0x01 BRS, 0x02 ESI, 0x04 FDF),
  ``< rtr ID SECS.USECS DLC >`` and ``< error CLASS SECS.USECS >`` (an error frame);
* client -> server: ``< send ID DLC B0 ... >``, ``< sendrtr ID DLC >`` and
  ``< fdsend ID FLAGS LEN B0 ... >`` (FLAGS hex, LEN decimal, bytes hex);
* IDs are hex; exactly 8 digits make an extended (29-bit) id, fewer a standard one.

Choices (python-can's habits where it has one):

* ``< error REASON >`` -- the server refusing a command (a bad send, a full bus) -- is raised
  as :class:`can.CanOperationError` by the next :meth:`recv`, in stream order after the
  frames that came before it, as python-can's client does; it is also counted in
  :attr:`SocketcandBus.server_errors`. ``< error CLASS SECS.USECS >`` is an error *frame* and
  is returned as a message with ``is_error_frame`` set.
* A malformed element from the server is counted (:attr:`SocketcandBus.protocol_errors`,
  the last one in ``last_protocol_error``), logged and skipped; the reader resynchronises
  at the next ``<``.
* Timestamps are the server's (the bus's end-of-frame time for ``z10 sim``).
* socketcand never echoes a client's own frames; with ``receive_own_messages=True`` a sent
  frame is returned locally, stamped with the local send time.
* A CAN FD frame whose length is not a CAN FD length is padded with zeros to the next one,
  as the kernel does on the wire.

Register it with python-can through the ``can.interface`` entry point
``z10socketcand = "vehicle_io.socketcand:SocketcandBus"``.
"""

from __future__ import annotations

import logging
import re
import select
import socket
import threading
import time
from collections import deque
from typing import Any

import can

from vehicle_io.bench import _LOOPBACK_HOSTS, SIM_HOST, SIM_PORT
from vehicle_io.errors import BusConfigError

LOG = logging.getLogger(__name__)

#: Where ``z10 sim`` serves, and the hosts accepted (the simulator never leaves the machine):
#: the bench module's, one definition for the project.
DEFAULT_HOST = SIM_HOST
DEFAULT_PORT = SIM_PORT
LOOPBACK_HOSTS = frozenset(_LOOPBACK_HOSTS)
#: Longest element kept, '<' to '>' inclusive (a 64-byte fdframe is under 200 bytes; an
#: error reason may be longer). Longer ones are counted and dropped without being stored.
MAX_ELEMENT_BYTES = 8192

FLAG_BRS = 0x01
FLAG_ESI = 0x02
FLAG_FDF = 0x04

FD_LENGTHS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64)
_FD_LENGTH_SET = frozenset(FD_LENGTHS)

_RECV_BYTES = 65536
_HEX = re.compile(r"[0-9A-Fa-f]+")
_STAMP = re.compile(r"([0-9]{1,12})(?:\.([0-9]{1,9}))?")
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")
_SPACE = b" \t\r\n\v\f"


def _show(raw: bytes | str) -> str:
    """A one-line printable preview of what the server sent (for error messages)."""
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    preview = _NOT_PRINTABLE.sub("?", text[:48])
    return preview + ("..." if len(text) > 48 else "")


class ElementError(ValueError):
    """An element from the server that is not valid raw-mode socketcand."""


def _parse_id(token: str) -> tuple[int, bool]:
    if not 1 <= len(token) <= 8 or not _HEX.fullmatch(token):
        raise ElementError(f"expected a hex id of 1..8 digits, but got {token!r}")
    value = int(token, 16)
    if len(token) == 8:
        if value > 0x1FFFFFFF:
            raise ElementError(f"expected an extended id of at most 1FFFFFFF, but got {token}")
        return value, True
    if value > 0x7FF:
        raise ElementError(f"expected a standard id of at most 7FF (8 hex digits for an extended one), but got {token}")
    return value, False


def _parse_stamp(token: str) -> float:
    m = _STAMP.fullmatch(token)
    if m is None:
        raise ElementError(f"expected a timestamp SECS.USECS, but got {token!r}")
    frac = m.group(2) or "0"
    return int(m.group(1)) + int(frac) / 10 ** len(frac)


def _parse_data(tokens: list[str]) -> bytes:
    """Raw mode writes the data as one run of hex digits; BCM mode as separate bytes."""
    if len(tokens) > 1 and any(len(t) != 2 for t in tokens):
        raise ElementError(f"expected the data as one hex run or as 2-digit bytes, but got {' '.join(tokens)!r}")
    text = "".join(tokens)
    if len(text) % 2 or (text and not _HEX.fullmatch(text)):
        raise ElementError(f"expected the data as pairs of hex digits, but got {text!r}")
    return bytes.fromhex(text)


class RawModeParser:
    """Turns the server's byte stream into messages; any chunking gives the same result.

    :meth:`feed` takes bytes as they arrive from TCP (an element split over reads, several
    elements in one read) and returns, in stream order, each frame as a
    :class:`can.Message` and each ``< error REASON >`` as a :class:`can.CanOperationError`.
    It scans with ``bytes.find``, never byte by byte. What is not valid raw mode is counted
    in :attr:`protocol_errors` and skipped:

    * stray bytes between elements (whitespace is fine): one error per run up to the next ``<``;
    * an element cut short by a new ``<``: one error, the new ``<`` starts the next element;
    * an element longer than ``max_element_bytes``: one error; its bytes are not kept;
    * an element that does not parse (bad id, data, timestamp, unknown word): one error.

    Replies of the handshake (``< hi >``, ``< ok >``, ``< echo >``) are returned by
    :meth:`feed_elements` as text and ignored by :meth:`feed`.
    """

    def __init__(self, channel: Any = None, max_element_bytes: int = MAX_ELEMENT_BYTES) -> None:
        if max_element_bytes < 3:
            raise ValueError(f"expected max_element_bytes >= 3, but got {max_element_bytes}")
        self.channel = channel
        self.max_element_bytes = max_element_bytes
        self._buf = bytearray()  # the unfinished element, '<' first (empty when outside one)
        self._skipping = False  # inside an element too long to keep
        self._in_junk = False  # inside a run of stray bytes already counted
        #: Totals since creation.
        self.protocol_errors = 0
        self.elements = 0
        self.last_protocol_error: str | None = None

    # -- framing --------------------------------------------------------------------------------

    def feed_elements(self, data: bytes) -> list[str]:
        """Consume ``data``; return the complete elements (text, brackets included) in order."""
        out: list[str] = []
        pos = 0
        n = len(data)
        while pos < n:
            if self._skipping:
                # Discard up to the element's '>' (or a new '<', which starts the next one).
                gt = data.find(b">", pos)
                lt = data.find(b"<", pos)
                if gt == -1 and lt == -1:
                    return out
                if lt != -1 and (gt == -1 or lt < gt):
                    self._skipping = False
                    pos = lt
                    continue
                self._skipping = False
                pos = gt + 1
                continue
            if not self._buf:
                lt = data.find(b"<", pos)
                stray = data[pos:n if lt == -1 else lt]
                if stray and stray.translate(None, _SPACE):
                    if not self._in_junk:
                        self._in_junk = True
                        self._error(f"expected an element in brackets, but got stray bytes {_show(stray.strip())!r}")
                if lt == -1:
                    return out
                self._in_junk = False
                self._buf += b"<"
                pos = lt + 1
                continue
            # Inside an element: it ends at '>'; a '<' first means it was never closed.
            gt = data.find(b">", pos)
            lt = data.find(b"<", pos)
            if lt != -1 and (gt == -1 or lt < gt):
                head = (bytes(self._buf[:64]) + data[pos:min(lt, pos + 64)])
                self._error(f"expected '>' to close {_show(head)!r}, but a new element started")
                self._buf.clear()
                pos = lt
                continue
            end = n if gt == -1 else gt + 1
            if len(self._buf) + end - pos > self.max_element_bytes:
                head = bytes(self._buf[:64]) + data[pos:pos + 64]
                self._error(f"expected an element of at most {self.max_element_bytes} bytes, "
                            f"but got a longer one starting {_show(head)!r}")
                self._buf.clear()
                self._skipping = gt == -1
                pos = end
                continue
            self._buf += data[pos:end]
            pos = end
            if gt == -1:
                return out
            raw = bytes(self._buf)
            self._buf.clear()
            try:
                out.append(raw.decode("ascii"))
            except UnicodeDecodeError:
                self._error(f"expected ASCII text in an element, but got {_show(raw)!r}")
                continue
            self.elements += 1
        return out

    def close(self) -> int:
        """End of stream: count an unfinished element; returns the errors this added."""
        before = self.protocol_errors
        if self._buf or self._skipping:
            self._error(f"expected '>' to close {_show(bytes(self._buf[:48]))!r}, but the connection ended")
        self._buf.clear()
        self._skipping = False
        self._in_junk = False
        return self.protocol_errors - before

    # -- elements -> messages --------------------------------------------------------------------

    def feed(self, data: bytes) -> list[can.Message | can.CanOperationError]:
        """Consume ``data``; return its frames and server errors in stream order."""
        out: list[can.Message | can.CanOperationError] = []
        for element in self.feed_elements(data):
            item = self.parse_element(element)
            if item is not None:
                out.append(item)
        return out

    def parse_element(self, element: str) -> can.Message | can.CanOperationError | None:
        """One element -> a message, a server error, or None (a reply, or malformed: counted)."""
        tokens = element[1:-1].split()
        try:
            return self._parse_tokens(tokens)
        except ElementError as err:
            self._error(f"{_show(element)}: {err}")
            return None

    def _parse_tokens(self, tokens: list[str]) -> can.Message | can.CanOperationError | None:
        if not tokens:
            raise ElementError("expected a word in the element, but got an empty one")
        word = tokens[0]
        if word == "frame":
            if len(tokens) < 3:
                raise ElementError(f"expected 'frame ID SECS.USECS DATA', but got {len(tokens) - 1} fields")
            can_id, ext = _parse_id(tokens[1])
            stamp = _parse_stamp(tokens[2])
            data = _parse_data(tokens[3:])
            if len(data) > 8:
                raise ElementError(f"expected at most 8 data bytes in a classic frame, but got {len(data)}")
            return can.Message(timestamp=stamp, arbitration_id=can_id, is_extended_id=ext, dlc=len(data),
                               data=data, is_rx=True, channel=self.channel)
        if word == "fdframe":
            if len(tokens) < 4:
                raise ElementError(f"expected 'fdframe ID FLAGS SECS.USECS DATA', but got {len(tokens) - 1} fields")
            can_id, ext = _parse_id(tokens[1])
            if not 1 <= len(tokens[2]) <= 2 or not _HEX.fullmatch(tokens[2]):
                raise ElementError(f"expected FD flags as 1..2 hex digits, but got {tokens[2]!r}")
            flags = int(tokens[2], 16)
            stamp = _parse_stamp(tokens[3])
            data = _parse_data(tokens[4:])
            if len(data) not in _FD_LENGTH_SET:
                raise ElementError(f"expected a CAN FD length (0..8, 12, 16, 20, 24, 32, 48, 64), but got {len(data)}")
            return can.Message(timestamp=stamp, arbitration_id=can_id, is_extended_id=ext, is_fd=True,
                               bitrate_switch=bool(flags & FLAG_BRS), error_state_indicator=bool(flags & FLAG_ESI),
                               dlc=len(data), data=data, is_rx=True, channel=self.channel)
        if word == "rtr":
            if len(tokens) != 4:
                raise ElementError(f"expected 'rtr ID SECS.USECS DLC', but got {len(tokens) - 1} fields")
            can_id, ext = _parse_id(tokens[1])
            stamp = _parse_stamp(tokens[2])
            if not tokens[3].isdigit() or len(tokens[3]) > 2 or int(tokens[3]) > 8:
                raise ElementError(f"expected a remote frame DLC 0..8, but got {tokens[3]!r}")
            return can.Message(timestamp=stamp, arbitration_id=can_id, is_extended_id=ext, is_remote_frame=True,
                               dlc=int(tokens[3]), is_rx=True, channel=self.channel)
        if word == "error":
            if (len(tokens) == 3 and 1 <= len(tokens[1]) <= 8 and _HEX.fullmatch(tokens[1])
                    and _STAMP.fullmatch(tokens[2])):
                # An error frame; socketcand sends only its class, not the data bytes.
                return can.Message(timestamp=_parse_stamp(tokens[2]), arbitration_id=int(tokens[1], 16) & 0x1FFFFFFF,
                                   is_extended_id=True, is_error_frame=True, dlc=0, is_rx=True, channel=self.channel)
            reason = " ".join(tokens[1:]) or "(no reason given)"
            return can.CanOperationError(f"socketcand server on {self.channel}: {reason}")
        if word in ("ok", "hi", "echo") and len(tokens) == 1:
            return None
        raise ElementError(f"expected frame, fdframe, rtr or error, but got {word!r}")

    def _error(self, text: str) -> None:
        self.protocol_errors += 1
        self.last_protocol_error = text
        # The first one loudly; a server that keeps sending junk must not flood the log.
        LOG.log(logging.WARNING if self.protocol_errors == 1 else logging.DEBUG,
                "socketcand %s: %s (%d malformed so far)", self.channel, text, self.protocol_errors)


# -- frames -> text -------------------------------------------------------------------------------


def _next_fd_length(length: int) -> int:
    for fd_length in FD_LENGTHS:
        if fd_length >= length:
            return fd_length
    raise can.CanOperationError(f"expected at most 64 data bytes in a CAN FD frame, but got {length}")


def format_send(msg: can.Message, fd_allowed: bool) -> str:
    """The raw-mode command that transmits ``msg`` (send, sendrtr or fdsend)."""
    if msg.is_error_frame:
        raise can.CanOperationError("expected a data or remote frame, but got an error frame: socketcand cannot send one")
    can_id = msg.arbitration_id
    if msg.is_extended_id:
        if not 0 <= can_id <= 0x1FFFFFFF:
            raise can.CanOperationError(f"expected an extended id 0..1FFFFFFF, but got {can_id:X}")
        id_text = f"{can_id:08X}"
    else:
        if not 0 <= can_id <= 0x7FF:
            raise can.CanOperationError(f"expected a standard id 0..7FF, but got {can_id:X}")
        id_text = f"{can_id:03X}"
    if msg.is_remote_frame:
        if msg.is_fd:
            raise can.CanOperationError("expected a classic remote frame, but got is_fd=True: CAN FD has no remote frames")
        if not 0 <= msg.dlc <= 8:
            raise can.CanOperationError(f"expected a remote frame DLC 0..8, but got {msg.dlc}")
        return f"< sendrtr {id_text} {msg.dlc} >"
    payload = bytes(msg.data or b"")
    if 0 <= msg.dlc < len(payload):
        payload = payload[: msg.dlc]
    if msg.is_fd:
        if not fd_allowed:
            raise can.CanOperationError("expected a classic frame, but got a CAN FD frame on a bus opened without fd=True")
        length = _next_fd_length(len(payload))
        payload = payload.ljust(length, b"\0")
        flags = (FLAG_BRS if msg.bitrate_switch else 0) | (FLAG_ESI if msg.error_state_indicator else 0)
        data_text = f" {payload.hex(' ').upper()}" if payload else ""
        return f"< fdsend {id_text} {flags:02X} {length}{data_text} >"
    if len(payload) > 8:
        raise can.CanOperationError(f"expected at most 8 data bytes in a classic frame, but got {len(payload)}")
    data_text = f" {payload.hex(' ').upper()}" if payload else ""
    return f"< send {id_text} {len(payload)}{data_text} >"


# -- the bus --------------------------------------------------------------------------------------


class SocketcandBus(can.BusABC):
    """One socketcand bus (e.g. ``z10 sim``'s pt, body or ads) in raw mode, over loopback TCP.

    ``fd=True`` allows sending CAN FD frames (received ones are always understood).
    ``connect_timeout_s`` bounds the connection and the handshake. ``bitrate`` and
    ``data_bitrate`` are accepted and ignored: the server's bus settings are fixed.
    Thread use as python-can's: one thread may ``recv`` while others ``send``.
    """

    def __init__(
        self,
        channel: str,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        fd: bool = False,
        receive_own_messages: bool = False,
        connect_timeout_s: float = 5.0,
        **kwargs: Any,
    ) -> None:
        if host not in LOOPBACK_HOSTS:
            raise BusConfigError(f"socketcand bus {channel!r}: expected a loopback host (127.0.0.1, ::1 or localhost), "
                                 f"but got {host!r}")
        if not isinstance(channel, str) or not channel or any(c.isspace() or c in "<>" for c in channel):
            raise BusConfigError(f"expected a socketcand bus name without spaces or '<>', but got {channel!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise BusConfigError(f"socketcand bus {channel!r}: expected a TCP port 1..65535, but got {port!r}")
        if not connect_timeout_s > 0:
            raise BusConfigError(f"socketcand bus {channel!r}: expected connect_timeout_s > 0, but got {connect_timeout_s!r}")
        kwargs.pop("bitrate", None)
        kwargs.pop("data_bitrate", None)
        self.channel = channel
        self.host = host
        self.port = port
        self.fd = bool(fd)
        self.receive_own_messages = bool(receive_own_messages)
        self._can_protocol = can.CanProtocol.CAN_FD if self.fd else can.CanProtocol.CAN_20
        self.channel_info = f"socketcand {channel} on {host}:{port}{' (CAN FD)' if self.fd else ''}"
        #: ``< error REASON >`` replies received (each also raised by a ``recv``).
        self.server_errors = 0
        self._parser = RawModeParser(channel)
        self._rx: deque[can.Message | can.CanOperationError] = deque()
        self._send_lock = threading.Lock()
        self._tx_rest = b""  # the unsent end of an element whose send timed out
        self._eof = False
        self._closed = False
        self._sock = self._connect(connect_timeout_s)
        try:
            self._handshake(time.monotonic() + connect_timeout_s)
            super().__init__(channel=channel, **kwargs)
        except BaseException:
            self._closed = True
            self._sock.close()
            raise

    # -- counters --------------------------------------------------------------------------------

    @property
    def protocol_errors(self) -> int:
        """Malformed elements from the server, counted and skipped."""
        return self._parser.protocol_errors

    @property
    def last_protocol_error(self) -> str | None:
        return self._parser.last_protocol_error

    # -- connection ------------------------------------------------------------------------------

    def _connect(self, timeout_s: float) -> socket.socket:
        address = "127.0.0.1" if self.host == "localhost" else self.host
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout_s)
            sock.connect((address, self.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Non-blocking from here: recv waits in select (honouring its timeout) and
            # send waits for room the same way.
            sock.setblocking(False)
        except OSError as err:
            sock.close()
            raise can.CanInitializationError(
                f"socketcand bus {self.channel!r}: cannot connect to {self.host}:{self.port}: {err.strerror or err}"
            ) from err
        return sock

    def _handshake(self, deadline: float) -> None:
        pending: deque[str] = deque()

        def expect(what: str) -> None:
            while not pending:
                left = deadline - time.monotonic()
                if left <= 0 or not self._wait_readable(left):
                    raise can.CanInitializationError(
                        f"socketcand bus {self.channel!r} on {self.host}:{self.port}: expected {what!r}, "
                        f"but got nothing in time")
                data = self._read()
                if data is None:
                    continue
                if not data:
                    raise can.CanInitializationError(
                        f"socketcand bus {self.channel!r} on {self.host}:{self.port}: expected {what!r}, "
                        f"but the server closed the connection")
                pending.extend(self._parser.feed_elements(data))
            got = pending.popleft()
            if got.split() != what.split():
                raise can.CanInitializationError(
                    f"socketcand bus {self.channel!r} on {self.host}:{self.port}: expected {what!r}, but got {_show(got)!r}")

        def write(text: str) -> None:
            data = text.encode("ascii")
            if self._write_blocking(data, deadline) < len(data):
                raise can.CanInitializationError(
                    f"socketcand bus {self.channel!r} on {self.host}:{self.port}: the server did not take {text!r} in time")

        expect("< hi >")
        write(f"< open {self.channel} >")
        expect("< ok >")
        write("< rawmode >")
        expect("< ok >")
        # Frames that came in the same read as the last reply.
        for element in pending:
            item = self._parser.parse_element(element)
            if item is not None:
                self._queue(item)

    def _wait_readable(self, timeout_s: float | None) -> bool:
        try:
            readable, _, _ = select.select([self._sock], [], [], timeout_s)
        except (OSError, ValueError) as err:
            if self._closed:  # shut down by another thread while this one waited
                raise can.CanOperationError(f"socketcand bus {self.channel!r} is shut down") from err
            raise can.CanOperationError(f"socketcand bus {self.channel!r}: receive failed: {err}") from err
        return bool(readable)

    def _read(self) -> bytes | None:
        """What the socket has now: b"" at the end of the stream, None when nothing is there yet."""
        try:
            return self._sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return None
        except ConnectionResetError:
            return b""
        except OSError as err:
            if self._closed:
                raise can.CanOperationError(f"socketcand bus {self.channel!r} is shut down") from err
            raise can.CanOperationError(f"socketcand bus {self.channel!r}: receive failed: {err}") from err

    def _write_blocking(self, data: bytes, deadline: float | None) -> int:
        """Write ``data`` until done or ``deadline`` (monotonic); returns the bytes written."""
        view = memoryview(data)
        done = 0
        while done < len(data):
            try:
                done += self._sock.send(view[done:])
                continue
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as err:
                raise can.CanOperationError(f"socketcand bus {self.channel!r}: send failed: {err}") from err
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return done
            try:
                select.select([], [self._sock], [], left)
            except (OSError, ValueError) as err:
                raise can.CanOperationError(f"socketcand bus {self.channel!r}: send failed: {err}") from err
        return done

    # -- receive ---------------------------------------------------------------------------------

    def _queue(self, item: can.Message | can.CanOperationError) -> None:
        if isinstance(item, can.CanOperationError):
            self.server_errors += 1
            LOG.info("socketcand %s: %s", self.channel, item)
        self._rx.append(item)

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            if self._rx:
                item = self._rx.popleft()
                if isinstance(item, can.CanOperationError):
                    raise item
                return item, False
            if self._closed:
                raise can.CanOperationError(f"socketcand bus {self.channel!r} is shut down")
            if self._eof:
                raise can.CanOperationError(f"socketcand bus {self.channel!r}: the server closed the connection")
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._wait_readable(left):
                return None, False
            data = self._read()
            if data is None:
                continue
            if not data:
                self._eof = True
                self._parser.close()
                continue
            for item in self._parser.feed(data):
                self._queue(item)
            if deadline is not None and not self._rx and time.monotonic() >= deadline:
                return None, False

    # -- send ------------------------------------------------------------------------------------

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        """Transmit ``msg``; waits up to ``timeout`` s (None: as long as it takes) for the server.

        The server pushes back while its bus is busy, so a send can wait. A frame none of
        which was written by the timeout raises :class:`can.CanOperationError` (not sent); one
        partly written is completed before the next (it is on its way, like a frame in a
        kernel transmit queue).
        """
        if self._closed:
            raise can.CanOperationError(f"socketcand bus {self.channel!r} is shut down")
        data = format_send(msg, self.fd).encode("ascii")
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        with self._send_lock:
            if self._tx_rest:
                done = self._write_blocking(self._tx_rest, deadline)
                self._tx_rest = self._tx_rest[done:]
                if self._tx_rest:
                    raise can.CanOperationError(
                        f"socketcand bus {self.channel!r}: send timed out after {timeout} s (server not reading)")
            done = self._write_blocking(data, deadline)
            if done == 0 and data:
                raise can.CanOperationError(
                    f"socketcand bus {self.channel!r}: send timed out after {timeout} s (server not reading)")
            self._tx_rest = data[done:]
        if self.receive_own_messages:
            echo = can.Message(
                timestamp=time.time(), arbitration_id=msg.arbitration_id, is_extended_id=msg.is_extended_id,
                is_remote_frame=msg.is_remote_frame, is_fd=msg.is_fd, bitrate_switch=msg.bitrate_switch,
                error_state_indicator=msg.error_state_indicator, dlc=msg.dlc, data=bytes(msg.data or b""),
                is_rx=False, channel=self.channel)
            self._rx.append(echo)

    # -- lifetime --------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop periodic tasks and close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        super().shutdown()
        try:
            if self._tx_rest:
                # Last words: finish an element already half on its way, briefly.
                self._write_blocking(self._tx_rest, time.monotonic() + 0.5)
        except can.CanError:
            pass
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
