"""vehicle_io.socketcand: the raw-mode socketcand client with CAN FD, against the hub and a fake server.

The hub (hil.hub) runs in the test process on 127.0.0.1, port 0, serving the bare timed
hilbus buses pt, body and ads (no van). The hub's own formatter and parsers
(hil.hub.protocol) are the independent reference for what goes over the wire.
"""

from __future__ import annotations

import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import can
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.hub import Hub, default_channels
from hil.hub.protocol import FD_LENGTHS, Framer, format_raw, parse_fdsend, parse_send, parse_sendrtr, tokens_of
from vehicle_io.errors import BusConfigError
from vehicle_io.socketcand import RawModeParser, SocketcandBus, format_send

# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    """One hub for the module: hilbus pt, body, ads in real time, on a free loopback port."""
    with Hub(default_channels(prefix=f"sc{uuid.uuid4().hex[:8]}-"), port=0) as running:
        yield running


@pytest.fixture
def make_bus() -> Iterator[Callable[..., SocketcandBus]]:
    """``make_bus(port, channel, **kwargs)``: a SocketcandBus shut down after the test."""
    buses: list[SocketcandBus] = []

    def make(port: int, channel: str, **kwargs: object) -> SocketcandBus:
        bus = SocketcandBus(channel, port=port, **kwargs)  # type: ignore[arg-type]
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        bus.shutdown()


def _key(msg: can.Message) -> tuple:
    data = b"" if msg.is_remote_frame else bytes(msg.data)
    return (msg.arbitration_id, msg.is_extended_id, msg.is_remote_frame, msg.dlc, data,
            msg.is_fd, msg.is_fd and msg.bitrate_switch)


def _receive(bus: SocketcandBus, count: int, timeout_s: float = 5.0) -> list[can.Message]:
    got: list[can.Message] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        msg = bus.recv(0.5)
        if msg is not None:
            got.append(msg)
    return got


class FakeServer:
    """A socketcand server on a plain socket: handshake, then whatever bytes the test scripts."""

    def __init__(self, after_handshake: bytes = b"", open_reply: bytes = b"< ok >") -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.after_handshake = after_handshake
        self.open_reply = open_reply
        self.received = bytearray()
        self.conn: socket.socket | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _read_until(self, conn: socket.socket, marker: bytes) -> None:
        while marker not in self.received:
            data = conn.recv(4096)
            if not data:
                return
            self.received += data

    def _run(self) -> None:
        self.listener.settimeout(10.0)
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.conn = conn
        conn.settimeout(10.0)
        try:
            conn.sendall(b"< hi >")
            self._read_until(conn, b"< open ")
            conn.sendall(self.open_reply)
            if self.open_reply == b"< ok >":
                self._read_until(conn, b"< rawmode >")
                conn.sendall(b"< ok >" + self.after_handshake)
        except OSError:
            pass
        self.ready.set()

    def push(self, data: bytes) -> None:
        assert self.ready.wait(10.0) and self.conn is not None
        self.conn.sendall(data)

    def read_for(self, wait_s: float) -> bytes:
        """What the client sent after the handshake within ``wait_s``."""
        assert self.ready.wait(10.0) and self.conn is not None
        self.conn.settimeout(wait_s)
        try:
            while True:
                data = self.conn.recv(4096)
                if not data:
                    break
                self.received += data
        except (TimeoutError, OSError):
            pass
        return bytes(self.received).split(b"< rawmode >", 1)[1]

    def close(self) -> None:
        self.thread.join(10.0)
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


@pytest.fixture
def fake_server() -> Iterator[Callable[..., FakeServer]]:
    servers: list[FakeServer] = []

    def make(**kwargs: object) -> FakeServer:
        server = FakeServer(**kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


# -- against the hub -----------------------------------------------------------------------------


def test_fd_frames_of_every_length_round_trip_with_brs(hub: Hub, make_bus) -> None:
    a = make_bus(hub.port, "ads", fd=True)
    b = make_bus(hub.port, "ads", fd=True)
    assert a.protocol == can.CanProtocol.CAN_FD
    sent = []
    for i, length in enumerate(FD_LENGTHS):
        for brs, ext in ((True, False), (False, True)):
            can_id = 0x18DA00F1 + i if ext else 0x400 + i
            sent.append(can.Message(arbitration_id=can_id, is_extended_id=ext, is_fd=True, bitrate_switch=brs,
                                    data=bytes((i * 7 + k) & 0xFF for k in range(length))))
    for msg in sent:
        a.send(msg)
    got = _receive(b, len(sent))
    assert [_key(m) for m in got] == [_key(m) for m in sent]
    assert all(m.is_rx and m.channel == "ads" for m in got)
    # And back the other way.
    back = can.Message(arbitration_id=0x7FF, is_extended_id=False, is_fd=True, bitrate_switch=True, data=bytes(range(64)))
    b.send(back)
    assert [_key(m) for m in _receive(a, 1)] == [_key(back)]
    assert a.protocol_errors == b.protocol_errors == 0
    assert a.server_errors == b.server_errors == 0


@pytest.mark.parametrize("channel", ["pt", "ads"])
def test_classic_extended_and_remote_frames_round_trip(hub: Hub, make_bus, channel: str) -> None:
    fd = channel == "ads"
    a = make_bus(hub.port, channel, fd=fd)
    b = make_bus(hub.port, channel, fd=fd)
    sent = [can.Message(arbitration_id=0x100 + n, is_extended_id=False, data=bytes([n] * n)) for n in range(9)]
    sent += [
        can.Message(arbitration_id=0x1FFFFFFF, is_extended_id=True, data=b"\x02\x10\x03"),
        can.Message(arbitration_id=0x00000123, is_extended_id=True, data=b""),  # low value, still extended
        can.Message(arbitration_id=0x000, is_extended_id=False, data=b"\xff" * 8),
        can.Message(arbitration_id=0x7DF, is_extended_id=False, is_remote_frame=True, dlc=8),
        can.Message(arbitration_id=0x18DB33F1, is_extended_id=True, is_remote_frame=True, dlc=0),
    ]
    for msg in sent:
        a.send(msg)
    got = _receive(b, len(sent))
    assert [_key(m) for m in got] == [_key(m) for m in sent]
    assert not any(m.is_fd for m in got)
    # No frame comes back to its sender (socketcand's raw socket does not echo).
    assert a.recv(0.2) is None


def test_timestamps_are_the_buses_end_of_frame_times(hub: Hub, make_bus) -> None:
    a = make_bus(hub.port, "pt")
    b = make_bus(hub.port, "pt")
    sent = [can.Message(arbitration_id=0x200 + i, is_extended_id=False, data=bytes(8)) for i in range(10)]
    before_s = time.time()
    for msg in sent:
        a.send(msg)
    got = _receive(b, len(sent))
    assert len(got) == len(sent)
    # Back to back at 500 kbit/s each 8-byte frame takes at least 111 bit times; stamps taken
    # locally when a burst of elements is parsed would be microseconds apart.
    frame_s = (47 + 64) / 500_000
    for prev, msg in zip(got, got[1:], strict=False):
        assert msg.timestamp - prev.timestamp >= frame_s - 2e-6
    assert got[0].timestamp >= before_s - 1.0


def test_fd_frame_needs_fd_true_and_nothing_is_sent(hub: Hub, make_bus) -> None:
    a = make_bus(hub.port, "ads")  # fd=False
    b = make_bus(hub.port, "ads", fd=True)
    assert a.protocol == can.CanProtocol.CAN_20
    with pytest.raises(can.CanError, match="fd=True"):
        a.send(can.Message(arbitration_id=0x10, is_fd=True, data=bytes(12), is_extended_id=False))
    a.send(can.Message(arbitration_id=0x11, data=b"\x01", is_extended_id=False))
    assert [m.arbitration_id for m in _receive(b, 2, timeout_s=1.0)] == [0x11]


def test_fd_frame_of_odd_length_is_padded_as_on_the_wire(hub: Hub, make_bus) -> None:
    a = make_bus(hub.port, "ads", fd=True)
    b = make_bus(hub.port, "ads", fd=True)
    a.send(can.Message(arbitration_id=0x321, is_extended_id=False, is_fd=True, data=bytes(range(1, 10))))
    (got,) = _receive(b, 1)
    assert bytes(got.data) == bytes(range(1, 10)) + b"\0\0\0" and got.dlc == 12


def test_server_refusal_is_raised_on_the_next_recv(hub: Hub, make_bus) -> None:
    a = make_bus(hub.port, "pt")
    # pt is a classic bus: the hub refuses an FD frame with "< error send refused ... >".
    fd_on_pt = SocketcandBus("pt", port=hub.port, fd=True)
    try:
        fd_on_pt.send(can.Message(arbitration_id=0x55, is_fd=True, data=bytes(16), is_extended_id=False))
        with pytest.raises(can.CanOperationError, match="send refused"):
            for _ in range(20):
                fd_on_pt.recv(0.25)
        assert fd_on_pt.server_errors == 1
        assert fd_on_pt.recv(0.1) is None  # raised once, then the bus goes on
    finally:
        fd_on_pt.shutdown()
    assert a.recv(0.1) is None


def test_unknown_bus_is_a_clear_init_error(hub: Hub) -> None:
    with pytest.raises(can.CanInitializationError, match="could not open bus"):
        SocketcandBus("can9", port=hub.port)


def test_recv_timeout_returns_none_on_a_quiet_bus(hub: Hub, make_bus) -> None:
    bus = make_bus(hub.port, "body")
    assert bus.recv(0) is None
    assert bus.recv(0.2) is None


def test_receive_own_messages_returns_sent_frames_locally(hub: Hub, make_bus) -> None:
    a = make_bus(hub.port, "body", receive_own_messages=True)
    b = make_bus(hub.port, "body")
    msg = can.Message(arbitration_id=0x3A0, is_extended_id=False, data=b"\x01\x02")
    a.send(msg)
    own = a.recv(1.0)
    assert own is not None and _key(own) == _key(msg) and not own.is_rx
    assert [_key(m) for m in _receive(b, 1)] == [_key(msg)]


def test_shutdown_is_idempotent_and_final(hub: Hub) -> None:
    bus = SocketcandBus("pt", port=hub.port)
    assert "pt" in bus.channel_info and str(hub.port) in bus.channel_info
    bus.shutdown()
    bus.shutdown()
    with pytest.raises(can.CanOperationError, match="shut down"):
        bus.send(can.Message(arbitration_id=1, is_extended_id=False))
    with pytest.raises(can.CanOperationError, match="shut down"):
        bus.recv(0)


def test_shutdown_from_another_thread_ends_a_blocking_recv(hub: Hub) -> None:
    bus = SocketcandBus("body", port=hub.port)
    outcome: list[BaseException | None] = []

    def wait_forever() -> None:
        try:
            bus.recv()  # no timeout: only the shutdown ends it
            outcome.append(None)
        except BaseException as err:  # noqa: BLE001 - the test inspects it
            outcome.append(err)

    waiter = threading.Thread(target=wait_forever, daemon=True)
    waiter.start()
    time.sleep(0.2)
    bus.shutdown()
    waiter.join(5.0)
    assert not waiter.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], can.CanOperationError)


def test_works_as_a_context_manager_with_filters(hub: Hub, make_bus) -> None:
    a = make_bus(hub.port, "pt")
    with SocketcandBus("pt", port=hub.port, can_filters=[{"can_id": 0x123, "can_mask": 0x7FF}]) as b:
        a.send(can.Message(arbitration_id=0x100, is_extended_id=False, data=b"\x00"))
        a.send(can.Message(arbitration_id=0x123, is_extended_id=False, data=b"\x01"))
        got = b.recv(2.0)
        assert got is not None and got.arbitration_id == 0x123


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["10.0.0.1", "0.0.0.0", "192.168.1.20", "example.com", "", "::"])
def test_non_loopback_host_is_refused(host: str) -> None:
    with pytest.raises(BusConfigError, match="expected a loopback host") as info:
        SocketcandBus("pt", host=host, port=29536)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs", [{"port": 0}, {"port": 70000}, {"port": "29536"}, {"connect_timeout_s": 0}])
def test_bad_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(BusConfigError, match="expected"):
        SocketcandBus("pt", **kwargs)


def test_nobody_listening_is_an_init_error() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # a port nobody listens on
    with pytest.raises(can.CanInitializationError, match="cannot connect"):
        SocketcandBus("pt", port=port, connect_timeout_s=1.0)


# -- against a scripted server: malformed input, errors, end of stream ---------------------------


def test_malformed_elements_are_counted_and_skipped(fake_server) -> None:
    server = fake_server()
    bus = SocketcandBus("ads", port=server.port, fd=True)
    try:
        server.push(b"< frame 123 1.000000 0102 >"
                    b"junk"                                          # stray bytes
                    b"< frame XYZ 1.000001 01 >"                     # bad id
                    b"< fdframe 124 05 1.000002 010203040506070809 >"  # 9 bytes: not an FD length
                    b"< frame 125 1.000003 010 >"                    # odd number of hex digits
                    b"< frame 800 1.000004 01 >"                     # standard id above 7FF
                    b"< frame 126 1.0000"                            # cut short by the next element
                    b"< bogus 1 2 >"                                 # unknown word
                    b"< frame 127 notatime 01 >"                     # bad timestamp
                    b"< fdframe 18DAF110 05 2.500000 " + b"AB" * 64 + b" >"
                    b"< rtr 7DF 3.000000 8 >"
                    b"< error 20 3.000001 >")                        # an error frame, valid
        got = _receive(bus, 4, timeout_s=5.0)
        assert [(m.arbitration_id, m.is_extended_id, bytes(m.data), m.timestamp) for m in got[:2]] == [
            (0x123, False, b"\x01\x02", 1.0), (0x18DAF110, True, b"\xab" * 64, 2.5)]
        assert got[1].is_fd and got[1].bitrate_switch and not got[1].error_state_indicator
        assert got[2].is_remote_frame and got[2].dlc == 8 and got[2].arbitration_id == 0x7DF
        assert got[3].is_error_frame and got[3].arbitration_id == 0x20 and got[3].timestamp == 3.000001
        assert bus.protocol_errors == 8
        assert bus.last_protocol_error is not None and "\n" not in bus.last_protocol_error
        assert bus.recv(0.1) is None
    finally:
        bus.shutdown()


def test_server_error_reason_is_raised_after_the_frames_before_it(fake_server) -> None:
    server = fake_server(after_handshake=b"< frame 001 5.000000 AA >< error unknown command >< frame 002 5.000100 BB >")
    bus = SocketcandBus("pt", port=server.port)
    try:
        first = bus.recv(2.0)
        assert first is not None and first.arbitration_id == 0x001
        with pytest.raises(can.CanOperationError, match="unknown command"):
            bus.recv(2.0)
        second = bus.recv(2.0)
        assert second is not None and second.arbitration_id == 0x002
        assert (bus.server_errors, bus.protocol_errors) == (1, 0)
    finally:
        bus.shutdown()


def test_partial_element_does_not_block_recv_past_its_timeout(fake_server) -> None:
    server = fake_server(after_handshake=b"< fdframe 123 05 1.0")
    bus = SocketcandBus("ads", port=server.port, fd=True)
    try:
        assert bus.recv(0.2) is None
        server.push(b"00000 00112233 >")
        got = bus.recv(2.0)
        assert got is not None and bytes(got.data) == b"\x00\x11\x22\x33" and got.timestamp == 1.0
    finally:
        bus.shutdown()


def test_server_closing_the_connection_raises(fake_server) -> None:
    server = fake_server(after_handshake=b"< frame 010 1.000000 >< frame 011 1.0")
    bus = SocketcandBus("pt", port=server.port)
    try:
        first = bus.recv(2.0)
        assert first is not None and first.arbitration_id == 0x010 and first.dlc == 0
        server.ready.wait(10.0)
        assert server.conn is not None
        server.conn.shutdown(socket.SHUT_RDWR)
        with pytest.raises(can.CanOperationError, match="closed the connection"):
            bus.recv(2.0)
        assert bus.protocol_errors == 1  # the element cut short by the end of the stream
    finally:
        bus.shutdown()


def test_handshake_refusal_is_an_init_error(fake_server) -> None:
    server = fake_server(open_reply=b"< error could not open bus >")
    with pytest.raises(can.CanInitializationError, match="could not open bus"):
        SocketcandBus("pt", port=server.port)


def test_commands_sent_are_what_socketcand_expects(fake_server) -> None:
    server = fake_server()
    bus = SocketcandBus("ads", port=server.port, fd=True)
    try:
        bus.send(can.Message(arbitration_id=0x1A, is_extended_id=False, data=b"\x01\xab"))
        bus.send(can.Message(arbitration_id=0x1A, is_extended_id=True, is_remote_frame=True, dlc=2))
        bus.send(can.Message(arbitration_id=0x7E0, is_extended_id=False, is_fd=True, bitrate_switch=True,
                             error_state_indicator=True, data=bytes(range(12))))
        bus.send(can.Message(arbitration_id=0x7E1, is_extended_id=False, is_fd=True, bitrate_switch=False, data=b""))
        sent = server.read_for(0.3)
    finally:
        bus.shutdown()
    assert sent == (b"< send 01A 2 01 AB >< sendrtr 0000001A 2 >"
                    b"< fdsend 7E0 03 12 00 01 02 03 04 05 06 07 08 09 0A 0B >< fdsend 7E1 00 0 >")


def test_send_timeout_against_a_server_that_does_not_read_keeps_the_stream_whole(fake_server) -> None:
    server = fake_server()
    bus = SocketcandBus("ads", port=server.port, fd=True)
    msg = can.Message(arbitration_id=0x0A1, is_extended_id=False, is_fd=True, data=bytes(range(64)))
    sent = 0
    try:
        with pytest.raises(can.CanOperationError, match="send timed out"):
            while sent < 200_000:  # a few MB fill the loopback buffers
                bus.send(msg, timeout=0.05)
                sent += 1
        drained: list[bytes] = []
        reader = threading.Thread(target=lambda: drained.append(server.read_for(1.0)), daemon=True)
        reader.start()
        bus.send(msg, timeout=10.0)  # completes the frame cut by the timeout first
        reader.join(30.0)
    finally:
        bus.shutdown()
    framer = Framer(max_element_bytes=1024)
    elements = framer.feed(drained[0])
    assert framer.errors == 0 and framer.pending_bytes == 0
    assert len(elements) == sent + 1
    assert {tuple(tokens_of(e)[:4]) for e in elements} == {("fdsend", "0A1", "00", "64")}


# -- the parser alone -------------------------------------------------------------------------------


def _messages() -> st.SearchStrategy[can.Message]:
    @st.composite
    def build(draw: st.DrawFn) -> can.Message:
        ext = draw(st.booleans())
        can_id = draw(st.integers(0, 0x1FFFFFFF if ext else 0x7FF))
        stamp = draw(st.integers(0, 2_000_000_000_000_000)) / 1e6
        kind = draw(st.sampled_from(["classic", "fd", "rtr"]))
        if kind == "rtr":
            return can.Message(timestamp=stamp, arbitration_id=can_id, is_extended_id=ext, is_remote_frame=True,
                               dlc=draw(st.integers(0, 8)))
        if kind == "fd":
            data = draw(st.binary(min_size=0, max_size=64).filter(lambda b: len(b) in FD_LENGTHS))
            return can.Message(timestamp=stamp, arbitration_id=can_id, is_extended_id=ext, is_fd=True,
                               bitrate_switch=draw(st.booleans()), error_state_indicator=draw(st.booleans()),
                               data=data)
        return can.Message(timestamp=stamp, arbitration_id=can_id, is_extended_id=ext, data=draw(st.binary(max_size=8)))

    return build()


def _full_key(msg: can.Message) -> tuple:
    return _key(msg) + (msg.error_state_indicator if msg.is_fd else False, round(msg.timestamp, 6))


@settings(max_examples=80, deadline=None)
@given(st.lists(_messages(), min_size=1, max_size=20))
def test_parser_reads_what_the_hub_writes(msgs: list[can.Message]) -> None:
    parser = RawModeParser("x")
    stream = "".join(format_raw(m) for m in msgs).encode("ascii")
    got = parser.feed(stream)
    assert [_full_key(m) for m in got] == [_full_key(m) for m in msgs]
    assert parser.protocol_errors == 0


@settings(max_examples=80, deadline=None)
@given(_messages(), st.booleans())
def test_format_send_is_what_the_hub_parses(msg: can.Message, fd_allowed: bool) -> None:
    if msg.is_fd and not fd_allowed:
        with pytest.raises(can.CanError):
            format_send(msg, fd_allowed)
        return
    text = format_send(msg, fd_allowed)
    tokens = tokens_of(text)
    parse = {"send": parse_send, "sendrtr": parse_sendrtr, "fdsend": parse_fdsend}[tokens[0]]
    parsed = parse(tokens)
    assert _full_key(parsed)[:-1] == _full_key(msg)[:-1]


@pytest.fixture(scope="module")
def recorded_stream(hub: Hub) -> tuple[bytes, list[tuple]]:
    """Bytes exactly as the hub sent them to a raw-mode client on ads, and the frames behind them."""
    sock = socket.create_connection(("127.0.0.1", hub.port), timeout=5.0)
    buf = bytearray()

    def read_until(count: int) -> None:
        deadline = time.monotonic() + 10.0
        while buf.count(b">") < count and time.monotonic() < deadline:
            buf.extend(sock.recv(65536))

    try:
        read_until(1)
        sock.sendall(b"< open ads >")
        read_until(2)
        sock.sendall(b"< rawmode >")
        read_until(3)
        del buf[:]
        rng = random.Random(7)
        sent: list[can.Message] = []
        with SocketcandBus("ads", port=hub.port, fd=True) as sender:
            for i in range(60):
                ext = rng.random() < 0.5
                can_id = rng.randrange(0x20000000 if ext else 0x800)
                if i % 3 == 0:
                    msg = can.Message(arbitration_id=can_id, is_extended_id=ext, is_fd=True,
                                      bitrate_switch=rng.random() < 0.5,
                                      data=rng.randbytes(rng.choice(FD_LENGTHS)))
                elif i % 7 == 0:
                    msg = can.Message(arbitration_id=can_id, is_extended_id=ext, is_remote_frame=True,
                                      dlc=rng.randrange(9))
                else:
                    msg = can.Message(arbitration_id=can_id, is_extended_id=ext, data=rng.randbytes(rng.randrange(9)))
                sender.send(msg)
                sent.append(msg)
            read_until(len(sent))
    finally:
        sock.close()
    assert buf.count(b">") == len(sent)
    return bytes(buf), [_key(m) for m in sent]


# Malformed elements spliced into the recorded stream; each is one protocol error.
_BAD = [b"stray text", b"< frame 12G 1.0 00 >", b"< frame 123 1.0 0", b"< fdframe 123 05 1.0 AABBCCDDEEFF001122 >",
        b"< what >", b"< rtr 123 1.0 9 >", b"< frame 123 1.0 " + b"00" * 5000 + b" >", b"< frame \xff 1.0 >"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_chunking_of_a_recorded_stream_gives_the_same_frames(
        recorded_stream: tuple[bytes, list[tuple]], data: st.DataObject) -> None:
    stream, expected = recorded_stream
    elements = [e + b">" for e in stream.split(b">")[:-1]]
    bad = data.draw(st.lists(st.sampled_from(_BAD), max_size=4), label="bad")
    # Each bad item goes just before a different good element: two bad items side by side
    # could merge into one error (stray text inside an element cut short is one error).
    at = data.draw(st.lists(st.integers(0, len(elements) - 1), min_size=len(bad), max_size=len(bad), unique=True),
                   label="at")
    before = dict(zip(at, bad, strict=True))
    joined = b"".join(before.get(i, b"") + element for i, element in enumerate(elements))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(joined)), max_size=40), label="cuts"))
    parser = RawModeParser("ads", max_element_bytes=8192)
    got: list = []
    for start, end in zip([0, *cuts], [*cuts, len(joined)], strict=True):
        got.extend(parser.feed(joined[start:end]))
    assert all(isinstance(m, can.Message) for m in got)
    assert [_key(m) for m in got] == expected
    assert parser.protocol_errors == len(bad)
    assert parser.close() == 0
