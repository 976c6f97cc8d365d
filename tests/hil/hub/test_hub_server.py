"""The hub as a server: sessions, modes, several clients, bad input, loss policy, limits.

The hubs here run in the test process (port 0 on 127.0.0.1); clients are python-can's
socketcand interface and a plain-socket client (hub_helpers.RawClient).
"""

from __future__ import annotations

import random
import socket
import threading
import time

import can
import pytest
from hub_helpers import RawClient, frame_fields, wait_until

from hil.hub import Hub, HubChannel, HubConfigError, check_loopback, default_channels

# -- set-up and limits ---------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "192.168.0.1", "example.com", "::", ""])
def test_non_loopback_addresses_are_refused(host: str, prefix: str) -> None:
    with pytest.raises(HubConfigError, match="expected a loopback address"):
        Hub(default_channels(prefix=prefix), host=host, port=0)


def test_loopback_names() -> None:
    assert check_loopback("localhost") == "127.0.0.1"
    assert check_loopback("127.0.0.1") == "127.0.0.1"
    assert check_loopback("::1") == "::1"


def test_bad_channel_lists_are_refused(prefix: str) -> None:
    with pytest.raises(HubConfigError, match="unique channel names"):
        Hub([HubChannel("pt", "virtual", f"{prefix}a"), HubChannel("pt", "virtual", f"{prefix}b")])
    with pytest.raises(HubConfigError, match="at least one channel"):
        Hub([])
    with pytest.raises(HubConfigError, match="bus name"):
        HubChannel("a name with spaces")


def test_port_in_use_is_a_clear_error(make_hub, prefix: str) -> None:
    first = make_hub()
    with pytest.raises(HubConfigError, match=f"cannot listen on 127.0.0.1:{first.port}"):
        make_hub(default_channels("virtual", prefix=prefix + "x"), port=first.port)


def test_greeting_open_rawmode_echo(hub: Hub, raw_client) -> None:
    client = raw_client(hub.port)  # asserts the greeting
    assert client.request("< echo >") == "< echo >"
    assert client.request("< rawmode >") == "< error unknown command >"  # no bus open yet (as socketcand)
    assert client.request("< open pt >") == "< ok >"
    assert client.request("< rawmode >") == "< ok >"
    assert client.request("< echo >") == "< echo >"
    assert client.request("< bcmmode >") == "< ok >"
    assert client.request("< open body >").startswith("< error expected one open per connection")


def test_unknown_bus_is_refused_and_the_connection_closed(hub: Hub, raw_client) -> None:
    client = raw_client(hub.port)
    assert client.request("< open can0 >") == "< error could not open bus >"
    assert client.next(5.0) is None and client.closed_by_peer
    assert wait_until(lambda: hub.stats().protocol_errors == 1)


def test_bus_configuration_commands_are_refused_as_socketcand_does(hub: Hub, raw_client) -> None:
    client = raw_client(hub.port)
    reply = client.request("< pt B 500000 875 0 0 0 0 0 0 >")
    assert reply is not None and reply.startswith("< error configuring interface pt")
    assert client.next(5.0) is None and client.closed_by_peer


def test_clients_beyond_the_limit_are_refused(make_hub, raw_client) -> None:
    hub = make_hub(max_clients=1)
    first = raw_client(hub.port)
    second = RawClient(hub.port, expect_hi=False)
    try:
        reply = second.next(5.0)
        assert reply is not None and reply.startswith("< error expected at most 1 clients")
        assert second.next(2.0) is None and second.closed_by_peer
    finally:
        second.close()
    assert first.request("< echo >") == "< echo >"
    assert hub.stats().clients_refused == 1


# -- frames between clients ---------------------------------------------------------------------------


def test_two_python_can_clients_exchange_frames_with_bus_timing(hub: Hub, sc_bus) -> None:
    a = sc_bus(hub.port, "pt")
    b = sc_bus(hub.port, "pt")
    time.sleep(hub.rawmode_settle_s * 2)
    sent = [can.Message(arbitration_id=0x100 + i, data=bytes([i] * (i % 9)), is_extended_id=False) for i in range(20)]
    sent.append(can.Message(arbitration_id=0x18DAF110, data=b"\x02\x10\x03", is_extended_id=True))
    for msg in sent:
        a.send(msg)
    got = [b.recv(5.0) for _ in sent]
    assert [(m.arbitration_id, m.is_extended_id, bytes(m.data)) for m in got if m is not None] == [
        (m.arbitration_id, m.is_extended_id, bytes(m.data)) for m in sent]
    # Back to back on a 500 kbit/s bus: each frame ends at least its own length after the
    # previous one (timestamps are bus end-of-frame times, microsecond resolution).
    for prev, msg, sent_msg in zip(got, got[1:], sent[1:], strict=False):
        # ISO 11898-1: 47 + 8n bits without stuffing (+20 for a 29-bit id); stuffing only adds.
        frame_s = (47 + 8 * len(sent_msg.data) + (20 if sent_msg.is_extended_id else 0)) / 500_000
        assert msg.timestamp - prev.timestamp >= frame_s - 2e-6
    # The other direction, and no frame comes back to its sender.
    b.send(can.Message(arbitration_id=0x7E8, data=b"\x03\x7f\x22\x31", is_extended_id=False))
    back = a.recv(5.0)
    assert back is not None and (back.arbitration_id, bytes(back.data)) == (0x7E8, b"\x03\x7f\x22\x31")
    assert a.recv(0.3) is None and b.recv(0.3) is None
    stats = hub.stats().channels["pt"]
    assert (stats.from_clients, stats.to_clients, stats.on_bus, stats.clients_now) == (22, 22, 22, 2)


def test_each_of_three_clients_sees_the_others_frames_only(hub: Hub, raw_client) -> None:
    clients = [raw_client(hub.port, "body", "raw") for _ in range(3)]
    time.sleep(hub.rawmode_settle_s * 2)
    per_client = 30
    for k, client in enumerate(clients):
        client.send("".join(f"< send {0x200 + k:X} 2 {k:X} {i:X} >" for i in range(per_client)))
    for k, client in enumerate(clients):
        got = client.collect(lambda g: len(g) >= 2 * per_client, 10.0)
        senders = [int(frame_fields(e)[1], 16) - 0x200 for e in got]
        assert sorted(set(senders)) == [j for j in range(3) if j != k]
        for j in set(senders):  # each sender's frames arrive complete and in order
            payloads = [frame_fields(e)[3] for e in got if int(frame_fields(e)[1], 16) == 0x200 + j]
            assert payloads == [f"{j:02X}{i:02X}" for i in range(per_client)]
        assert client.quiet(0.2) == []


def test_fd_remote_and_extended_frames_in_raw_mode(hub: Hub, raw_client) -> None:
    tx = raw_client(hub.port, "ads", "raw")
    rx = raw_client(hub.port, "ads", "raw")
    time.sleep(hub.rawmode_settle_s * 2)
    data = [f"{i:02X}" for i in range(64)]
    tx.send(f"< fdsend 123 1 64 {' '.join(data)} >< fdsend 00000456 2 12 {' '.join(data[:12])} >"
            "< sendrtr 7DF 8 >< send 1FFFFFFF 1 EE >")
    got = rx.collect(lambda g: len(g) >= 4)
    assert got[0].startswith("< fdframe 123 05 ") and got[0].endswith(f" {''.join(data)} >")
    assert got[1].startswith("< fdframe 00000456 06 ") and got[1].endswith(f" {''.join(data[:12])} >")
    assert got[2].startswith("< rtr 7DF ") and got[2].endswith(" 8 >")
    assert got[3].startswith("< frame 1FFFFFFF ") and got[3].endswith(" EE >")


def test_fd_frame_on_a_classic_bus_is_refused_and_counted(hub: Hub, raw_client) -> None:
    client = raw_client(hub.port, "pt", "raw")
    reply = client.request("< fdsend 123 0 12 0 1 2 3 4 5 6 7 8 9 A B >")
    assert reply is not None and reply.startswith("< error send refused by pt:")
    assert client.request("< echo >") == "< echo >"
    assert hub.stats().channels["pt"].send_refused == 1


# -- BCM mode -------------------------------------------------------------------------------------------


def test_bcm_mode_subscribe_filter_and_cyclic_jobs(make_hub, prefix: str, raw_client) -> None:
    hub = make_hub(default_channels("virtual", prefix=prefix))
    listener = raw_client(hub.port, "pt")  # stays in BCM mode
    talker = raw_client(hub.port, "pt", "raw")
    listener.send("< subscribe 0 0 321 >< filter 0 0 1AAAAAAA 1 F0 >")
    assert listener.request("< echo >") == "< echo >"  # both jobs are set up before traffic starts
    talker.send("< send 100 1 1 >< send 321 2 AA BB >< send 1AAAAAAA 1 01 >< send 1AAAAAAA 1 02 >"
                "< send 1AAAAAAA 1 12 >< send 321 0 >")
    got = listener.collect(lambda g: len(g) >= 4)
    assert [e.split()[2] for e in got] == ["321", "1AAAAAAA", "1AAAAAAA", "321"]
    assert got[0].endswith(" AA BB  >")  # BCM mode separates the bytes, as socketcand
    assert got[2].endswith(" 12  >")  # 02 -> 12 changes the masked nibble; 01 -> 02 does not
    assert listener.quiet(0.2) == []
    # Cyclic transmit: add, update, delete.
    listener.send("< add 0 20000 555 1 01 >")
    first = talker.collect(lambda g: len(g) >= 3)
    assert [frame_fields(e)[1:4:2] for e in first] == [("555", "01")] * 3
    listener.send("< update 555 1 02 >")
    assert wait_until(lambda: (talker.next(1.0) or "").endswith(" 02 >"), 5.0)
    listener.send("< delete 555 >")
    assert listener.request("< echo >") == "< echo >"
    talker.quiet(0.1)  # a frame may have been on its way when the job was deleted
    assert talker.quiet(0.2) == []
    assert listener.request("< delete 555 >").startswith("< error delete: expected a cyclic job for id 555")
    assert listener.request("< unsubscribe 499 >").startswith("< error unsubscribe: expected a subscription")


# -- bad input ------------------------------------------------------------------------------------------


BAD_COMMANDS = [
    ("< send 123 9 0 0 0 0 0 0 0 0 0 >", "expected the send DLC to be 0..8"),
    ("< send 800 0 >", "expected a standard id of at most 7FF"),
    ("< send 123 2 1 >", "expected 2 data bytes, but got 1"),
    ("< send zz 0 >", "expected a hex id"),
    ("< fdsend 123 0 9 0 0 0 0 0 0 0 0 0 >", "expected a CAN FD length"),
    ("< sendrtr 123 >", "expected 'sendrtr ID DLC'"),
    ("< frobnicate >", "unknown command"),
    ("< subscribe 0 0 123 >", "unknown command"),  # BCM-only command in raw mode, as socketcand
    ("< >", "expected a command in the element"),
    ("garbage\n", "expected an element in brackets, but got 7 stray bytes 'garbage'"),
    ("< send 123 1 <", "expected a closing bracket after"),
    ("< send \xe9 >", "expected ASCII text"),
    ("< controlmode >", "controlmode is not served by this hub"),
]


def test_each_bad_command_gets_one_error_and_the_connection_stays(hub: Hub, raw_client) -> None:
    client = raw_client(hub.port, "pt", "raw")
    for text, fragment in BAD_COMMANDS:
        client.send(text.encode("latin-1"))
        if text.endswith("<"):
            client.send(" echo >")  # the new '<' started this element
            replies = client.collect(lambda g: len(g) >= 2)
            assert replies[1] == "< echo >"
        else:
            replies = [client.next(5.0)]
        assert replies[0] is not None and replies[0].startswith("< error ") and fragment in replies[0], (text, replies)
        assert client.request("< echo >") == "< echo >"
    assert client.quiet(0.1) == []
    assert hub.stats().protocol_errors == len(BAD_COMMANDS)


def test_random_garbage_never_takes_the_hub_down(hub: Hub, raw_client, sc_bus) -> None:
    rng = random.Random(7)
    for _ in range(5):
        client = raw_client(hub.port, "pt", "raw")
        for _ in range(20):
            client.send(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 400))))
        client.send("\n< echo >")
        assert "< echo >" in client.collect(lambda g: "< echo >" in g or client.closed_by_peer, 10.0)
        client.close()
    assert wait_until(lambda: hub.stats().clients_now == 0)
    # Still serving normally.
    a, b = sc_bus(hub.port, "pt"), sc_bus(hub.port, "pt")
    time.sleep(hub.rawmode_settle_s * 2)
    a.send(can.Message(arbitration_id=0x42, data=b"ok", is_extended_id=False))
    got = b.recv(5.0)
    assert got is not None and bytes(got.data) == b"ok"
    assert hub.stats().protocol_errors > 0


def test_a_client_that_vanishes_mid_command_is_counted(hub: Hub) -> None:
    client = RawClient(hub.port)
    client.open("pt")
    client.send("< send 123 2 AA")
    client.close()
    assert wait_until(lambda: hub.stats().clients_now == 0 and hub.stats().protocol_errors == 1)


# -- loss policy ---------------------------------------------------------------------------------------


def test_flood_through_the_timed_bus_arrives_complete_and_in_order(hub: Hub, raw_client) -> None:
    """Back-pressure: the sender is slowed to what 500 kbit/s carries, nothing is lost."""
    sender = raw_client(hub.port, "pt", "raw")
    receiver = raw_client(hub.port, "pt", "raw")
    time.sleep(hub.rawmode_settle_s * 2)
    n = 2500
    blob = "".join(f"< send 123 8 {i & 0xFF:X} {(i >> 8) & 0xFF:X} 0 0 0 0 0 0 >" for i in range(n))
    sender.send(blob)  # all at once: far faster than the bus
    got = receiver.collect(lambda g: len(g) >= n, 20.0)
    assert [int(frame_fields(e)[3][:4][2:] + frame_fields(e)[3][:2], 16) for e in got] == list(range(n))
    stats = hub.stats().channels["pt"]
    assert (stats.from_clients, stats.to_clients, stats.on_bus, stats.overflow) == (n, n, n, 0)


def test_frames_still_queued_when_their_sender_leaves_reach_the_bus(hub: Hub, raw_client) -> None:
    """A client that sends and disconnects at once (python-can's usual exit) loses nothing."""
    receiver = raw_client(hub.port, "pt", "raw")
    sender = raw_client(hub.port, "pt", "raw")
    time.sleep(hub.rawmode_settle_s * 2)
    n = 1000
    # Traffic for the sender too, so the hub is writing to it when it goes away.
    receiver.send("".join(f"< send 0BB 1 {i & 0xFF:X} >" for i in range(300)))
    sender.send("".join(f"< send 0AA 2 {i & 0xFF:X} {i >> 8:X} >" for i in range(n)))
    sender.close()
    got = receiver.collect(lambda g: len(g) >= n, 20.0)
    assert [int(frame_fields(e)[3][2:] + frame_fields(e)[3][:2], 16) for e in got] == list(range(n))
    assert wait_until(lambda: hub.stats().clients_now == 1 and hub.stats().channels["pt"].on_bus == n + 300)
    stats = hub.stats().channels["pt"]
    assert (stats.from_clients, stats.on_bus, stats.unsent_at_close) == (n + 300, n + 300, 0)


def test_a_client_that_does_not_read_loses_only_its_own_frames_and_they_are_counted(make_hub, raw_client) -> None:
    """Towards receivers: a bounded buffer per client; what does not fit is dropped and counted."""
    hub = make_hub(max_pending_bytes=4096, socket_buffer_bytes=4096)
    sender = raw_client(hub.port, "pt", "raw")
    # The reader keeps up: its kernel buffer holds the whole flood, so a reader thread held up
    # by a loaded machine (the hub runs in this process) does not read as a slow client.
    reader = raw_client(hub.port, "pt", "raw", rcvbuf=1 << 20)
    sleeper = raw_client(hub.port, "pt", "raw", rcvbuf=4096)  # connected, never reads until the end
    time.sleep(hub.rawmode_settle_s * 2)
    n = 4000
    got: list[str] = []
    collector = threading.Thread(target=lambda: got.extend(reader.collect(lambda g: len(g) >= n, 30.0)))
    collector.start()
    sender.send("".join(f"< send 321 4 {i & 0xFF:X} {(i >> 8) & 0xFF:X} 0 0 >" for i in range(n)))
    collector.join()
    assert [int(frame_fields(e)[3][2:4] + frame_fields(e)[3][:2], 16) for e in got] == list(range(n))
    # The sleeper wakes up and reads what was kept for it: with the overflow count, that is all.
    # (until all of it is in, or 10 s: a loaded machine may take a while to deliver it)
    late = sleeper.collect(lambda g: len(g) + hub.stats().channels["pt"].overflow >= n, 10.0)
    late += sleeper.collect(lambda g: False, 0.2)  # nothing more may come
    assert all(e.startswith("< frame 321 ") for e in late)
    stats = hub.stats().channels["pt"]
    assert stats.overflow > 0
    assert len(late) + stats.overflow == n
    assert (stats.from_clients, stats.to_clients, stats.on_bus) == (n, n + len(late), n)


def test_shutdown_disconnects_clients_and_stops_every_thread(make_hub, raw_client) -> None:
    hub = make_hub()
    clients = [raw_client(hub.port, name, "raw") for name in ("pt", "body", "ads")]
    hub.shutdown()
    for client in clients:
        assert client.next(5.0) is None and client.closed_by_peer
    hub.shutdown()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", hub.port), timeout=1.0).close()
