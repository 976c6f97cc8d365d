"""The socketcand hub: named python-can channels served to other processes over loopback TCP.

Like socketcand, each client connection gets a bus of its own: ``< open pt >`` opens a
python-can bus on the channel behind ``pt`` (by default a ``hilbus`` channel in real time),
so the client is one more node on that bus. Several clients on a channel therefore see each
other's frames exactly as nodes on the bus do (with hilbus: arbitration, frame timing,
timestamps at the end of each frame on the wire), and a client does not get its own frames
back (socketcand's raw socket does not enable ``CAN_RAW_RECV_OWN_MSGS``). For a hilbus
channel the hub also keeps one node of its own on the bus (``hub``), so a single client's
frames are acknowledged as they would be by the van's ECUs, and it counts every frame on the
wire.

Threads per client: a reader (socket -> commands -> ``bus.send``) and a pump
(``bus.recv`` -> text -> socket). Loss policy, chosen per direction:

* client -> bus: **back-pressure, never loss**. ``send`` blocks while the bus's transmit
  queue is full (hilbus: the node's queue, drained at the bus's bit rate); the reader then
  stops reading the socket, the kernel buffers fill and TCP flow control stalls the
  client's ``send``. A client sending as fast as it can is slowed to what the bus carries.
* bus -> client: a bus does not wait for a slow receiver, so neither does the hub. Each
  client has a bounded output buffer (``max_pending_bytes``, plus the socket's kernel send
  buffer ``socket_buffer_bytes``); frames that do not fit are
  dropped, **counted per client and channel** (``overflow``), logged once per client and
  reported in :meth:`Hub.stats` and ``z10 sim``'s summary. A client that reads keeps up:
  the pump drains its bus into the buffer without waiting for the socket, and one slow
  client never slows the bus or another client.

Everything binds to loopback only: a non-loopback address is refused.
"""

from __future__ import annotations

import ipaddress
import logging
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import can

from hil.hub.errors import HubConfigError, ProtocolError
from hil.hub.protocol import (
    DEFAULT_PORT,
    BcmReceiver,
    Framer,
    format_bcm,
    format_error,
    format_raw,
    parse_add,
    parse_fdsend,
    parse_filter,
    parse_id_only,
    parse_muxfilter,
    parse_send,
    parse_sendrtr,
    parse_subscribe,
    parse_update,
    tokens_of,
)

LOG = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
#: Output buffered for one client before frames are dropped (about 80,000 classic frames).
DEFAULT_MAX_PENDING_BYTES = 4 * 1024 * 1024
#: Pause between ``< ok >`` of ``< rawmode >`` and the first frame: python-can's client reads
#: that ``< ok >`` with one ``recv`` and fails when a frame arrives in the same read.
DEFAULT_RAWMODE_SETTLE_S = 0.05
DEFAULT_MAX_CLIENTS = 64
#: Kernel send buffer of each client socket (set, not autotuned, so that how far a client
#: may fall behind before frames are dropped is known: this plus ``max_pending_bytes``).
DEFAULT_SOCKET_BUFFER_BYTES = 256 * 1024

_NO_BUS, _BCM, _RAW = "no_bus", "bcm", "raw"
_SEND_CHUNK = 256 * 1024
_PUMP_BATCH = 512
_IDLE_WAIT_S = 0.05


@dataclass(frozen=True)
class HubChannel:
    """One bus the hub serves: the socketcand name clients open and the python-can bus behind it.

    ``channel`` is the backing python-can channel (default: the same as ``name``);
    ``options`` go to ``can.Bus`` as they are (for hilbus e.g. ``clock``, ``seed``).
    """

    name: str
    interface: str = "hilbus"
    channel: str | None = None
    bitrate: int | None = 500_000
    data_bitrate: int | None = None
    fd: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 16 or any(c.isspace() or c in "<>" for c in self.name):
            raise HubConfigError(
                f"expected a socketcand bus name of 1..16 characters without spaces or '<>', but got {self.name!r}"
            )
        if self.data_bitrate is not None and not self.fd:
            raise HubConfigError(f"channel {self.name!r}: expected fd=True with a data_bitrate, but got fd=False")

    @property
    def backing(self) -> str:
        """The python-can channel behind this bus."""
        return self.channel or self.name

    def describe(self) -> str:
        """One line for people: interface, channel and bit rates."""
        if self.bitrate is None:
            rates = "bit rate of the interface"
        elif self.fd:
            rates = f"CAN FD {self.bitrate // 1000} kbit/s / {(self.data_bitrate or self.bitrate) // 1000} kbit/s"
        else:
            rates = f"{self.bitrate // 1000} kbit/s"
        if self.interface == "hilbus":
            clock = self.options.get("clock", "real")
            kind = "simulated time" if (clock == "sim" or getattr(clock, "is_simulated", False)) else "real time"
            rates += f", {kind}"
        backing = "" if self.backing == self.name else f" {self.backing}"
        return f"{self.interface}{backing}, {rates}"

    def bus_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``can.Bus`` for one node on this channel."""
        kwargs: dict[str, Any] = {"interface": self.interface, "channel": self.backing}
        if self.bitrate is not None:
            kwargs["bitrate"] = self.bitrate
        if self.fd:
            kwargs["fd"] = True
            if self.data_bitrate is not None:
                kwargs["data_bitrate"] = self.data_bitrate
        kwargs.update(self.options)
        return kwargs


def default_channels(interface: str = "hilbus", prefix: str = "", **options: Any) -> tuple[HubChannel, ...]:
    """The Z10's three buses: pt and body (500 kbit/s), ads (CAN FD 500 kbit/s / 2 Mbit/s).

    ``prefix`` is put in front of the backing channel names (tests use it to keep their
    channels apart); ``options`` go to every bus (e.g. ``clock="real"``).
    """
    return (
        HubChannel("pt", interface, f"{prefix}pt", 500_000, options=dict(options)),
        HubChannel("body", interface, f"{prefix}body", 500_000, options=dict(options)),
        HubChannel("ads", interface, f"{prefix}ads", 500_000, 2_000_000, fd=True, options=dict(options)),
    )


def check_loopback(host: str) -> str:
    """The numeric loopback address to bind for ``host``; anything else is refused."""
    text = "127.0.0.1" if host == "localhost" else host
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise HubConfigError(f"expected a loopback address (127.0.0.1 or ::1), but got {host!r}") from None
    if not address.is_loopback:
        raise HubConfigError(f"expected a loopback address (127.0.0.1 or ::1), but got {host!r}: the hub never leaves the host")
    return str(address)


@dataclass
class ChannelStats:
    """Counters of one served channel."""

    name: str
    on_bus: int | None = None  # frames on the wire (hilbus channels), None when not observable
    from_clients: int = 0  # frames clients handed to the bus
    to_clients: int = 0  # frames written to clients
    overflow: int = 0  # frames dropped because a client did not read
    send_refused: int = 0  # client frames the bus refused (invalid for it, bus-off, closed)
    unsent_at_close: int = 0  # client frames still queued for the bus when its connection ended
    clients_now: int = 0


@dataclass
class HubStats:
    """Counters of the hub; plain data (see :meth:`as_dict`)."""

    host: str
    port: int
    uptime_s: float
    clients_served: int
    clients_now: int
    clients_max: int
    clients_refused: int
    clients_cut_at_shutdown: int
    protocol_errors: int
    channels: dict[str, ChannelStats]

    @property
    def overflow(self) -> int:
        return sum(c.overflow for c in self.channels.values())

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "channels"}
        out["overflow"] = self.overflow
        out["channels"] = {name: dict(c.__dict__) for name, c in self.channels.items()}
        return out

    def summary(self) -> str:
        """A few lines for people."""
        lines = [
            f"clients: {self.clients_served} served, {self.clients_max} at most at once, "
            f"{self.clients_now} connected now, {self.clients_cut_at_shutdown} disconnected at shutdown, "
            f"{self.clients_refused} refused",
        ]
        for c in self.channels.values():
            wire = "" if c.on_bus is None else f"{c.on_bus} frames on the bus, "
            lines.append(
                f"{c.name}: {wire}{c.from_clients} from clients, {c.to_clients} to clients, "
                f"{c.overflow} dropped for slow clients, {c.send_refused} sends refused"
                + (f", {c.unsent_at_close} unsent when their client left" if c.unsent_at_close else "")
            )
        lines.append(f"protocol errors: {self.protocol_errors}; overflows: {self.overflow}")
        return "\n".join(lines)


class Hub:
    """A socketcand server on loopback serving named python-can channels (module docstring).

    ``port=0`` picks a free port (read it from :attr:`port` after :meth:`start`).
    ``max_pending_bytes`` and ``socket_buffer_bytes`` bound how far a client may fall behind
    before frames for it are dropped (counted); ``rawmode_settle_s`` delays the first frame
    after ``< rawmode >``'s ``< ok >`` (python-can's client reads that reply alone). Use as a
    context manager, or call :meth:`shutdown` (idempotent).
    """

    def __init__(
        self,
        channels: Iterable[HubChannel] | None = None,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        rawmode_settle_s: float = DEFAULT_RAWMODE_SETTLE_S,
        socket_buffer_bytes: int | None = DEFAULT_SOCKET_BUFFER_BYTES,
    ) -> None:
        specs = tuple(default_channels() if channels is None else channels)
        if not specs:
            raise HubConfigError("expected at least one channel to serve, but got none")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise HubConfigError(f"expected unique channel names, but got {names}")
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise HubConfigError(f"expected a TCP port 0..65535, but got {port!r}")
        if max_clients < 1 or max_pending_bytes < 1024 or rawmode_settle_s < 0:
            raise HubConfigError(
                f"expected max_clients >= 1, max_pending_bytes >= 1024 and rawmode_settle_s >= 0, but got "
                f"{max_clients}, {max_pending_bytes}, {rawmode_settle_s}"
            )
        self.host = check_loopback(host)
        self.channels: dict[str, HubChannel] = {s.name: s for s in specs}
        self.max_clients = max_clients
        self.max_pending_bytes = max_pending_bytes
        self.rawmode_settle_s = rawmode_settle_s
        self.socket_buffer_bytes = socket_buffer_bytes
        self._requested_port = port
        self.port = port
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._sessions: set[_Session] = set()
        self._serial = 0
        self._clients_max = 0
        self._clients_refused = 0
        self._closed_errors = 0
        self._cut_at_shutdown = 0
        self._channel_stats = {name: ChannelStats(name) for name in self.channels}
        self._held: list[Any] = []  # hilbus channels and the hub's own endpoints
        self._wire: dict[str, list[int]] = {}
        self._started_at: float | None = None
        self._shutdown_done = False

    # -- lifetime -----------------------------------------------------------------------------

    def start(self) -> Hub:
        """Open the backing channels, bind and start accepting clients."""
        if self._listener is not None:
            return self
        if self._shutdown_done:
            raise HubConfigError("the hub was shut down; expected a new Hub to start again")
        try:
            self._hold_channels()
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            listener = socket.socket(family, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind((self.host, self._requested_port))
            except OSError as err:
                listener.close()
                raise HubConfigError(f"cannot listen on {self.host}:{self._requested_port}: {err.strerror or err}") from err
            listener.listen(16)
            self._listener = listener
            self.port = listener.getsockname()[1]
        except BaseException:
            self._release_channels()
            raise
        self._started_at = time.monotonic()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="z10-hub-accept", daemon=True)
        self._accept_thread.start()
        LOG.info("socketcand hub on %s:%d serving %s", self.host, self.port, ", ".join(self.channels))
        return self

    def __enter__(self) -> Hub:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.shutdown()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Disconnect every client, stop every thread, release the channels. Idempotent."""
        if self._shutdown_done:
            return
        self._shutdown_done = True
        self._stopping.set()
        listener = self._listener
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._accept_thread is not None:
            self._accept_thread.join(timeout_s)
        if listener is not None:
            listener.close()
        with self._lock:
            sessions = list(self._sessions)
            self._cut_at_shutdown = len(sessions)
        for session in sessions:
            session.close()
        for session in sessions:
            session.join(timeout_s)
        self._release_channels()

    @property
    def running(self) -> bool:
        return self._accept_thread is not None and self._accept_thread.is_alive()

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def serve_until(self, stop: threading.Event) -> None:
        """Block until ``stop`` is set (the CLI waits here for SIGINT/SIGTERM)."""
        while not stop.wait(0.2):
            if not self.running and self._listener is not None:
                break

    # -- statistics ---------------------------------------------------------------------------

    def stats(self) -> HubStats:
        """A snapshot of every counter."""
        with self._lock:
            channels = {name: ChannelStats(**c.__dict__) for name, c in self._channel_stats.items()}
            sessions = list(self._sessions)
            served = self._serial
            errors = self._closed_errors
        for session in sessions:
            errors += session.protocol_errors
            spec = session.spec
            if spec is not None:
                c = channels[spec.name]
                c.from_clients += session.frames_in
                c.to_clients += session.frames_out
                c.overflow += session.overflow
                c.send_refused += session.send_refused
                c.unsent_at_close += session.unsent_at_close
                c.clients_now += 1
        for name, count in self._wire.items():
            channels[name].on_bus = count[0]
        uptime = 0.0 if self._started_at is None else time.monotonic() - self._started_at
        return HubStats(
            host=self.host, port=self.port, uptime_s=uptime, clients_served=served,
            clients_now=len(sessions), clients_max=self._clients_max, clients_refused=self._clients_refused,
            clients_cut_at_shutdown=self._cut_at_shutdown, protocol_errors=errors, channels=channels,
        )

    # -- internals ----------------------------------------------------------------------------

    def _hold_channels(self) -> None:
        """Open every hilbus channel for the hub's lifetime and attach the hub's own node."""
        for spec in self.channels.values():
            if spec.interface != "hilbus":
                continue
            from hil.bus import open_channel

            options = dict(spec.options)
            try:
                channel = open_channel(
                    spec.backing, bitrate=spec.bitrate, data_bitrate=spec.data_bitrate, fd=spec.fd or None,
                    clock=options.get("clock", "real"), seed=options.get("seed"),
                )
            except ValueError as err:
                raise HubConfigError(f"channel {spec.name!r}: {err}") from err
            self._held.append(channel)
            counter = [0]
            self._wire[spec.name] = counter

            def count(msg: can.Message, counter: list[int] = counter) -> None:
                counter[0] += 1

            endpoint = channel.attach(node="hub", error_frames=False, on_frame=count)
            self._held.append(endpoint)

    def _release_channels(self) -> None:
        # Endpoints were appended after their channel: close in reverse order.
        while self._held:
            item = self._held.pop()
            try:
                item.close()
            except Exception as err:  # a channel that fails to close must not keep the others open
                LOG.warning("hub: closing %r failed: %s", item, err)

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopping.is_set():
            try:
                conn, peer = listener.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.05)
                continue
            if self._stopping.is_set():
                conn.close()
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.socket_buffer_bytes:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.socket_buffer_bytes)
            with self._lock:
                if len(self._sessions) >= self.max_clients:
                    self._clients_refused += 1
                    refuse = True
                else:
                    refuse = False
                    self._serial += 1
                    session = _Session(self, conn, peer, self._serial)
                    self._sessions.add(session)
                    self._clients_max = max(self._clients_max, len(self._sessions))
            if refuse:
                LOG.warning("hub: refused %s: %d clients already connected", peer, self.max_clients)
                try:
                    conn.sendall(format_error(f"expected at most {self.max_clients} clients, but that many are connected").encode())
                except OSError:
                    pass
                conn.close()
                continue
            session.start()

    def _session_done(self, session: _Session) -> None:
        """Fold a finished client's counters into the channel totals."""
        with self._lock:
            if session not in self._sessions:
                return
            self._sessions.discard(session)
            self._closed_errors += session.protocol_errors
            spec = session.spec
            if spec is not None:
                c = self._channel_stats[spec.name]
                c.from_clients += session.frames_in
                c.to_clients += session.frames_out
                c.overflow += session.overflow
                c.send_refused += session.send_refused
                c.unsent_at_close += session.unsent_at_close


class _Session:
    """One client connection: its mode, its bus, its two threads and its output buffer."""

    def __init__(self, hub: Hub, sock: socket.socket, peer: Any, serial: int) -> None:
        self.hub = hub
        self.sock = sock
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.serial = serial
        self.label = f"client {serial} ({self.peer})"
        self.mode = _NO_BUS
        self.spec: HubChannel | None = None
        self.bus: can.BusABC | None = None
        self.framer = Framer()
        self.bcm = BcmReceiver()
        self._bcm_lock = threading.Lock()  # the reader changes jobs while the pump matches frames
        self.cyclic: dict[tuple[int, bool], can.broadcastmanager.CyclicSendTaskABC] = {}
        self._out: deque[bytes] = deque()
        self._out_bytes = 0
        self._out_lock = threading.Lock()
        self._room = threading.Condition(self._out_lock)
        self._wake = threading.Event()
        self._hold_until = 0.0
        self._closing = False
        self._close_lock = threading.Lock()
        self._bus_lock = threading.Lock()
        self._overflow_logged = False
        # Counters: each written by one thread only (reader or pump).
        self.frames_in = 0
        self.frames_out = 0
        self.overflow = 0
        self.send_refused = 0
        self.unsent_at_close = 0
        self.protocol_errors = 0
        self._reader = threading.Thread(target=self._read_loop, name=f"z10-hub-rx-{serial}", daemon=True)
        self._pump = threading.Thread(target=self._pump_loop, name=f"z10-hub-tx-{serial}", daemon=True)

    def start(self) -> None:
        self._queue_text("< hi >")
        self._reader.start()
        self._pump.start()

    def join(self, timeout_s: float) -> None:
        for thread in (self._reader, self._pump):
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout_s)

    def close(self) -> None:
        """End the session from any thread: wake both threads, release the bus."""
        with self._close_lock:
            if self._closing:
                return
            self._closing = True
        self._wake.set()
        with self._room:
            self._room.notify_all()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._close_bus()

    def _let_tx_drain(self, patience_s: float = 2.0) -> None:
        """The client has left: let the frames it queued reach the bus first.

        A kernel CAN socket closed by socketcand still sends what is queued in the device;
        the same here, for a bus that says what it holds (hilbus: ``endpoint.tx_pending``).
        Waits while the queue keeps moving (``patience_s`` without progress at most); what
        is still queued then is counted as ``unsent_at_close``.
        """
        endpoint = getattr(self.bus, "endpoint", None)
        if endpoint is None or not hasattr(endpoint, "tx_pending"):
            return
        with self._bus_lock:
            tasks = list(self.cyclic.values())
            self.cyclic.clear()
        for task in tasks:  # cyclic jobs end with the connection (socketcand's BCM socket closes)
            task.stop()
        last = endpoint.tx_pending
        stalled_since = time.monotonic()
        while last and not self.hub._stopping.is_set():
            time.sleep(0.005)
            pending = endpoint.tx_pending
            if pending < last:
                last = pending
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > patience_s:
                break
        self.unsent_at_close = int(endpoint.tx_pending)
        if self.unsent_at_close:
            LOG.warning("hub: %s left with %d frames not yet on %s; they are discarded (counted)",
                        self.label, self.unsent_at_close, self.spec.name if self.spec else "?")

    def _close_bus(self) -> None:
        with self._bus_lock:
            bus, self.bus = self.bus, None
            tasks = list(self.cyclic.values())
            self.cyclic.clear()
        for task in tasks:
            try:
                task.stop()
            except Exception as err:
                LOG.debug("%s: stopping a cyclic job failed: %s", self.label, err)
        if bus is not None:
            try:
                bus.shutdown()
            except Exception as err:
                LOG.warning("%s: closing its bus failed: %s", self.label, err)

    def _finish(self, client_left: bool) -> None:
        """Last step of the reader: everything closed, counters folded into the hub."""
        if client_left:
            self._let_tx_drain()
        self.close()
        if self._pump.is_alive() and self._pump is not threading.current_thread():
            self._pump.join(5.0)
        self.sock.close()
        self.hub._session_done(self)

    # -- output ---------------------------------------------------------------------------

    def _queue_text(self, text: str, frame: bool = False) -> bool:
        """Append one element to the output; a frame that does not fit is dropped (counted)."""
        data = text.encode("ascii")
        with self._out_lock:
            if frame and self._out_bytes + len(data) > self.hub.max_pending_bytes:
                self.overflow += 1
                if not self._overflow_logged:
                    self._overflow_logged = True
                    LOG.warning("hub: %s on %s does not read fast enough: output buffer full (%d bytes), "
                                "dropping frames (counted as overflow)", self.label,
                                self.spec.name if self.spec else "?", self._out_bytes)
                return False
            self._out.append(data)
            self._out_bytes += len(data)
        if not frame:
            self._wake.set()
        return True

    def _reply(self, text: str) -> None:
        """A reply to a command: never dropped; waits (back-pressure) while the output is very full."""
        with self._room:
            while not self._closing and self._out_bytes > 2 * self.hub.max_pending_bytes:
                self._room.wait(0.1)
        self._queue_text(text)
        self._flush(0.0)

    def _error(self, err: ProtocolError | str) -> None:
        self.protocol_errors += 1
        text = str(err)
        LOG.info("hub: %s: %s", self.label, text)
        self._reply(format_error(text))

    def _flush(self, wait_s: float) -> bool:
        """Send what the socket takes now (waiting up to ``wait_s`` for room); False when broken."""
        sent = 0
        with self._out_lock:
            out = self._out
            if not out:
                return True
            if len(out) > 1:
                parts: list[bytes] = []
                size = 0
                while out and size < _SEND_CHUNK:
                    part = out.popleft()
                    parts.append(part)
                    size += len(part)
                out.appendleft(b"".join(parts))
            chunk = out[0]
            try:
                sent = self.sock.send(chunk, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                return False
            if sent:
                if sent == len(chunk):
                    out.popleft()
                else:
                    out[0] = chunk[sent:]
                self._out_bytes -= sent
                self._room.notify_all()
            pending = bool(out)
        if pending and not sent and wait_s > 0:
            try:
                select.select([], [self.sock], [], wait_s)
            except (OSError, ValueError):
                return False
        return True

    def _flush_all(self, timeout_s: float) -> None:
        """Send everything queued (up to ``timeout_s``): last words before closing."""
        deadline = time.monotonic() + timeout_s
        while self._out and time.monotonic() < deadline:
            if not self._flush(0.05):
                return

    # -- reader thread: socket -> commands ----------------------------------------------------

    def _read_loop(self) -> None:
        client_left = False
        try:
            while not self._closing:
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    client_left = not self._closing
                    break
                if not data:
                    client_left = not self._closing
                    break
                for item in self.framer.feed(data):
                    if self._closing:
                        break
                    if isinstance(item, ProtocolError):
                        self._error(item)
                    else:
                        self._handle(item)
            # Input cut short by the client going away cannot be answered, only counted.
            self.protocol_errors += len(self.framer.close())
        except Exception as err:  # never let one client's surprise take the hub down
            self.protocol_errors += 1
            LOG.exception("hub: %s: internal error, closing the connection: %s", self.label, err)
        finally:
            self._finish(client_left)

    def _handle(self, element: str) -> None:
        tokens = tokens_of(element)
        if not tokens:
            self._error("expected a command in the element, but got an empty one")
            return
        command = tokens[0]
        try:
            if command == "echo" and len(tokens) == 1:
                self._reply("< echo >")
            elif self.mode == _NO_BUS:
                self._handle_no_bus(tokens)
            elif command in ("rawmode", "bcmmode", "controlmode", "isotpmode") and len(tokens) == 1:
                self._change_mode(command)
            elif command == "send":
                self._transmit(parse_send(tokens))
            elif command == "fdsend":
                self._transmit(parse_fdsend(tokens))
            elif command == "sendrtr":
                self._transmit(parse_sendrtr(tokens))
            elif self.mode == _BCM and command in _BCM_COMMANDS:
                getattr(self, f"_bcm_{command}")(tokens)
            elif command == "open":
                self._error(f"expected one open per connection, but {self.spec.name if self.spec else '?'} is already open")
            else:
                self._error("unknown command")
        except ProtocolError as err:
            self._error(err)

    def _handle_no_bus(self, tokens: Sequence[str]) -> None:
        command = tokens[0]
        if command == "open":
            if len(tokens) != 2:
                self._error(f"open: expected 'open BUS', but got {len(tokens) - 1} arguments")
                return
            self._open(tokens[1])
        elif len(tokens) >= 2 and len(tokens[1]) == 1 and tokens[1] in "BC" and command in self.hub.channels:
            # socketcand's bit timing / control mode set-up: the hub's buses are fixed, and
            # socketcand ends the connection when such a set-up fails.
            self._error(f"configuring interface {command}: the hub's bus settings are fixed "
                        f"({self.hub.channels[command].describe()})")
            self._flush_all(1.0)
            self.close()
        else:
            self._error("unknown command")

    def _open(self, name: str) -> None:
        spec = self.hub.channels.get(name)
        if spec is None:
            LOG.info("hub: %s asked for unknown bus %r (serving %s)", self.label, name, ", ".join(self.hub.channels))
            self.protocol_errors += 1
            self._reply("< error could not open bus >")
            self._flush_all(1.0)
            self.close()
            return
        kwargs = spec.bus_kwargs()
        if spec.interface == "hilbus":
            kwargs.setdefault("node", f"client{self.serial}")
            kwargs.pop("seed", None)  # set when the hub opened the channel
            kwargs.pop("clock", None)
        try:
            bus = can.Bus(**kwargs)
        except Exception as err:
            LOG.warning("hub: %s: cannot open %s (%s): %s", self.label, name, spec.describe(), err)
            self.protocol_errors += 1
            self._reply(format_error(f"could not start interface {name}: {err}"))
            self._flush_all(1.0)
            self.close()
            return
        with self._bus_lock:
            if self._closing:
                bus.shutdown()
                return
            self.bus = bus
            self.spec = spec
            self.mode = _BCM
        self._reply("< ok >")
        self._wake.set()

    def _change_mode(self, command: str) -> None:
        if command in ("controlmode", "isotpmode"):
            self._error(f"{command} is not served by this hub; expected rawmode or bcmmode")
            return
        # socketcand closes its BCM socket on a mode change: cyclic jobs and receive jobs go.
        self._stop_cyclic()
        with self._bcm_lock:
            self.bcm.clear()
        if command == "rawmode":
            self._hold_until = time.monotonic() + self.hub.rawmode_settle_s
            self.mode = _RAW
        else:
            self.mode = _BCM
        self._reply("< ok >")
        self._wake.set()

    def _transmit(self, msg: can.Message) -> None:
        bus = self.bus
        if bus is None:
            raise ProtocolError("expected an open bus to send on, but it is closed")
        try:
            # Blocks while the bus's transmit queue is full: back-pressure to the client.
            bus.send(msg)
        except (can.CanError, ValueError, TypeError) as err:
            if self._closing:
                return
            self.send_refused += 1
            self._error(f"send refused by {self.spec.name if self.spec else '?'}: {err}")
            return
        self.frames_in += 1

    # -- BCM commands ---------------------------------------------------------------------------

    def _stop_cyclic(self) -> None:
        with self._bus_lock:
            tasks = list(self.cyclic.values())
            self.cyclic.clear()
        for task in tasks:
            task.stop()

    def _bcm_add(self, tokens: Sequence[str]) -> None:
        period_s, msg = parse_add(tokens)
        key = (msg.arbitration_id, bool(msg.is_extended_id))
        bus = self.bus
        if bus is None:
            raise ProtocolError("expected an open bus for a cyclic job, but it is closed")
        with self._bus_lock:
            old = self.cyclic.pop(key, None)
        if old is not None:
            old.stop()
        try:
            task = bus.send_periodic(msg, period_s)
        except (can.CanError, ValueError) as err:
            raise ProtocolError(f"add: the bus refused the cyclic job: {err}") from err
        with self._bus_lock:
            self.cyclic[key] = task

    def _bcm_update(self, tokens: Sequence[str]) -> None:
        msg = parse_update(tokens)
        key = (msg.arbitration_id, bool(msg.is_extended_id))
        task = self.cyclic.get(key)
        if task is None:
            raise ProtocolError(f"update: expected a cyclic job for id {_key_text(key)} (see add), but there is none")
        if not isinstance(task, can.broadcastmanager.ModifiableCyclicTaskABC):
            raise ProtocolError("update: this bus's cyclic jobs cannot be modified")
        task.modify_data(msg)

    def _bcm_delete(self, tokens: Sequence[str]) -> None:
        key = parse_id_only(tokens, "delete")
        with self._bus_lock:
            task = self.cyclic.pop(key, None)
        if task is None:
            raise ProtocolError(f"delete: expected a cyclic job for id {_key_text(key)}, but there is none")
        task.stop()

    def _bcm_subscribe(self, tokens: Sequence[str]) -> None:
        throttle_s, can_id, ext = parse_subscribe(tokens)
        with self._bcm_lock:
            self.bcm.subscribe(can_id, ext, throttle_s)
        self._wake.set()

    def _bcm_unsubscribe(self, tokens: Sequence[str]) -> None:
        key = parse_id_only(tokens, "unsubscribe")
        with self._bcm_lock:
            found = self.bcm.unsubscribe(*key)
        if not found:
            raise ProtocolError(f"unsubscribe: expected a subscription or filter for id {_key_text(key)}, but there is none")

    def _bcm_filter(self, tokens: Sequence[str]) -> None:
        throttle_s, can_id, ext, mask = parse_filter(tokens)
        with self._bcm_lock:
            self.bcm.filter(can_id, ext, throttle_s, mask)
        self._wake.set()

    def _bcm_muxfilter(self, tokens: Sequence[str]) -> None:
        throttle_s, can_id, ext, tuples = parse_muxfilter(tokens)
        with self._bcm_lock:
            self.bcm.muxfilter(can_id, ext, throttle_s, tuples)
        self._wake.set()

    # -- pump thread: bus -> socket ------------------------------------------------------------

    def _pump_loop(self) -> None:
        try:
            if not self._pump_run():
                # The client is gone (a write failed): the reader sees the end of input and
                # finishes the session, after the frames the client queued reach the bus.
                try:
                    self.sock.shutdown(socket.SHUT_RD)
                except OSError:
                    pass
        except Exception as err:
            if not self._closing:
                self.protocol_errors += 1
                LOG.warning("hub: %s: receive side failed, closing the connection: %s", self.label, err)
            self.close()

    def _pump_run(self) -> bool:
        """Bus -> socket until the session closes (True) or the socket breaks (False)."""
        while not self._closing:
            if self._out:
                if not self._flush(0.005):
                    return False
                self._drain(0.0)
                continue
            bus = self.bus
            mode = self.mode
            now = time.monotonic()
            if bus is None or (mode == _RAW and now < self._hold_until):
                wait = _IDLE_WAIT_S if bus is None else self._hold_until - now
                self._wake.wait(wait)
                self._wake.clear()
                continue
            timeout = _IDLE_WAIT_S
            if mode == _BCM:
                with self._bcm_lock:
                    due = self.bcm.next_due_s()
                if due is not None:
                    timeout = max(0.0, min(timeout, due - now))
            self._drain(timeout)
            if mode == _BCM and self.mode == _BCM:
                with self._bcm_lock:
                    held = self.bcm.due(time.monotonic())
                for msg in held:
                    self._emit(format_bcm(msg))
            if self._out and not self._flush(0.0):
                return False
        return True

    def _drain(self, timeout_s: float) -> None:
        """Move what the bus has received into the output (first wait up to ``timeout_s``)."""
        bus = self.bus
        if bus is None or (self.mode == _RAW and time.monotonic() < self._hold_until):
            return
        try:
            msg = bus.recv(timeout_s)
        except can.CanError:
            if self._closing or self.bus is None:
                return
            raise
        count = 0
        while msg is not None:
            mode = self.mode
            if mode == _RAW:
                self._emit(format_raw(msg))
            elif mode == _BCM:
                with self._bcm_lock:
                    passed = self.bcm.on_frame(msg, time.monotonic())
                for out in passed:
                    self._emit(format_bcm(out))
            count += 1
            if count >= _PUMP_BATCH or self.bus is None:
                break
            try:
                msg = bus.recv(0.0)
            except can.CanError:
                if self._closing or self.bus is None:
                    return
                raise

    def _emit(self, text: str) -> None:
        if self._queue_text(text, frame=True):
            self.frames_out += 1


_BCM_COMMANDS = frozenset(("add", "update", "delete", "subscribe", "unsubscribe", "filter", "muxfilter"))


def _key_text(key: tuple[int, bool]) -> str:
    can_id, ext = key
    return f"{can_id:08X}" if ext else f"{can_id:03X}"
