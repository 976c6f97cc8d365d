"""The socketcand protocol without sockets: framing, parsing, formatting, BCM receive jobs.

Differential checks against python-can's socketcand client (its encoder and decoder are
the reference for what a real client sends and reads).
"""

from __future__ import annotations

import can
import pytest
from can.interfaces.socketcand import socketcand as pc_socketcand
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.hub import BcmReceiver, Framer, ProtocolError, format_bcm, format_raw
from hil.hub.protocol import (
    FD_LENGTHS,
    MAX_ELEMENT_BYTES,
    format_error,
    parse_add,
    parse_fdsend,
    parse_filter,
    parse_muxfilter,
    parse_send,
    parse_sendrtr,
    parse_subscribe,
    tokens_of,
)

# -- framing -----------------------------------------------------------------------------------


def run_framer(chunks: list[bytes], max_bytes: int = MAX_ELEMENT_BYTES) -> tuple[list[str], tuple[int, int, int]]:
    framer = Framer(max_element_bytes=max_bytes)
    out: list[str] = []
    for chunk in chunks:
        out += [x if isinstance(x, str) else f"ERROR {x}" for x in framer.feed(chunk)]
    out += [f"ERROR {x}" for x in framer.close()]
    return out, (framer.elements, framer.errors, framer.stray_bytes)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces


_ALPHABET = st.sampled_from([b"<", b">", b" ", b"\n", b"send", b"123", b"8", b"ff", b"echo", b"\x00", b"\xff", b"x"])
stream = st.one_of(
    st.binary(max_size=300),
    st.lists(_ALPHABET, max_size=80).map(b"".join),
)


@settings(max_examples=150, deadline=None)
@given(data=stream, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
       max_bytes=st.sampled_from([8, 16, MAX_ELEMENT_BYTES]))
def test_framer_result_does_not_depend_on_chunking(data: bytes, cuts: list[int], max_bytes: int) -> None:
    whole = run_framer([data], max_bytes)
    chunked = run_framer(split(data, cuts), max_bytes)
    bytewise = run_framer([data[i:i + 1] for i in range(len(data))], max_bytes)
    assert chunked == whole
    assert bytewise == whole


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=2000), max_bytes=st.sampled_from([8, 64]))
def test_framer_memory_is_bounded_and_every_element_is_bracketed(data: bytes, max_bytes: int) -> None:
    framer = Framer(max_element_bytes=max_bytes)
    for i in range(0, len(data), 7):
        for item in framer.feed(data[i:i + 7]):
            if isinstance(item, str):
                assert item.startswith("<") and item.endswith(">") and len(item) <= max_bytes
                assert "<" not in item[1:] and ">" not in item[:-1]
            else:
                assert "\n" not in str(item) and "<" not in str(item) and ">" not in str(item)
        assert framer.pending_bytes <= max_bytes + 1


def test_framer_reports_each_kind_of_bad_input_once_and_resynchronises() -> None:
    out, (elements, errors, stray) = run_framer([
        b"< echo >  \n junk here\n< send 123 <  echo >< " + b"x" * 40 + b" >\xff< hi\xe9 >< open pt >< trail"
    ], max_bytes=32)
    assert out[0] == "< echo >"
    assert out[1].startswith("ERROR expected an element in brackets, but got 8 stray bytes 'junkhere'")
    assert out[2].startswith("ERROR expected a closing bracket after '( send 123 '")
    assert out[3] == "<  echo >"
    assert out[4] == "ERROR expected an element of at most 32 bytes, but got 44"
    assert out[5].startswith("ERROR expected an element in brackets, but got 1 stray byte")
    assert out[6].startswith("ERROR expected ASCII text in an element")
    assert out[7] == "< open pt >"
    assert out[8].startswith("ERROR expected a closing bracket after '( trail', but the connection ended")
    assert (elements, errors, stray) == (3, 6, 9)


def test_tokens() -> None:
    assert tokens_of("< send 123  0 >") == ["send", "123", "0"]
    assert tokens_of("<echo>") == ["echo"]
    assert tokens_of("< >") == []


# -- parsing what clients send -------------------------------------------------------------------


def test_parse_send_follows_socketcands_id_rule() -> None:
    msg = parse_send(["send", "123", "2", "1", "F1"])
    assert (msg.arbitration_id, msg.is_extended_id, msg.dlc, bytes(msg.data)) == (0x123, False, 2, b"\x01\xf1")
    msg = parse_send(["send", "1AAAAAAA", "0"])
    assert (msg.arbitration_id, msg.is_extended_id, msg.dlc) == (0x1AAAAAAA, True, 0)
    msg = parse_send(["send", "00000123", "1", "ab"])  # 8 digits: extended even when small
    assert (msg.arbitration_id, msg.is_extended_id) == (0x123, True)
    msg = parse_send(["send", "7", "8", *["ff"] * 8])
    assert (msg.arbitration_id, msg.is_extended_id, bytes(msg.data)) == (7, False, b"\xff" * 8)


@pytest.mark.parametrize(
    ("tokens", "fragment"),
    [
        (["send"], "expected 'send ID DLC DATA...'"),
        (["send", "123"], "expected 'send ID DLC DATA...'"),
        (["send", "800", "0"], "expected a standard id of at most 7FF"),
        (["send", "123456789", "0"], "expected a hex id of 1..8 digits"),
        (["send", "3FFFFFFFF", "0"], "expected a hex id of 1..8 digits"),
        (["send", "20000000", "0"], "expected an extended id of at most 1FFFFFFF"),
        (["send", "12g", "0"], "expected a hex id"),
        (["send", "1_0", "0"], "expected a hex id"),
        (["send", "123", "9", *["0"] * 9], "expected the send DLC to be 0..8, but got 9"),
        (["send", "123", "x"], "expected the send DLC as a decimal number"),
        (["send", "123", "2", "1"], "expected 2 data bytes, but got 1"),
        (["send", "123", "1", "1", "2"], "expected 1 data byte, but got 2"),
        (["send", "123", "1", "100"], "expected a data byte of 1..2 hex digits"),
        (["send", "123", "1", "-1"], "expected a data byte of 1..2 hex digits"),
    ],
)
def test_parse_send_rejects_with_one_clear_line(tokens: list[str], fragment: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_send(tokens)
    assert fragment in str(info.value)
    assert not {"\n", "<", ">"} & set(str(info.value))


def test_parse_sendrtr_and_fdsend() -> None:
    rtr = parse_sendrtr(["sendrtr", "1AAAAAAA", "2"])
    assert (rtr.arbitration_id, rtr.is_extended_id, rtr.is_remote_frame, rtr.dlc) == (0x1AAAAAAA, True, True, 2)
    fd = parse_fdsend(["fdsend", "123", "1", "12", *[f"{i:02X}" for i in range(12)]])
    assert (fd.is_fd, fd.bitrate_switch, fd.error_state_indicator, fd.dlc, bytes(fd.data)) == (
        True, True, False, 12, bytes(range(12)))
    fd = parse_fdsend(["fdsend", "00000042", "3", "0"])
    assert (fd.is_extended_id, fd.bitrate_switch, fd.error_state_indicator, fd.dlc) == (True, True, True, 0)
    with pytest.raises(ProtocolError, match="expected a CAN FD length"):
        parse_fdsend(["fdsend", "123", "0", "9", *["0"] * 9])
    with pytest.raises(ProtocolError, match="expected the fdsend length to be 0..64, but got 65"):
        parse_fdsend(["fdsend", "123", "0", "65"])


def test_parse_bcm_commands() -> None:
    period, msg = parse_add(["add", "1", "500000", "123", "2", "11", "22"])
    assert period == 1.5 and (msg.arbitration_id, bytes(msg.data)) == (0x123, b"\x11\x22")
    with pytest.raises(ProtocolError, match="positive interval"):
        parse_add(["add", "0", "0", "123", "0"])
    assert parse_subscribe(["subscribe", "0", "20000", "1AAAAAAA"]) == (0.02, 0x1AAAAAAA, True)
    assert parse_filter(["filter", "0", "0", "123", "2", "FF", "0F"]) == (0.0, 0x123, False, b"\xff\x0f")
    throttle, can_id, ext, tuples = parse_muxfilter(
        ["muxfilter", "0", "0", "123", "2", "FF", *["00"] * 7, "33", *["FF"] * 7])
    assert (throttle, can_id, ext) == (0.0, 0x123, False)
    assert tuples == [b"\xff" + bytes(7), b"\x33" + b"\xff" * 7]
    with pytest.raises(ProtocolError, match="expected 16 data bytes"):
        parse_muxfilter(["muxfilter", "0", "0", "123", "2", "FF"])


# -- formatting what the hub writes ----------------------------------------------------------------


def test_formats_match_socketcand_output_byte_for_byte() -> None:
    # The strings state_raw.c / state_bcm.c print for these frames.
    std = can.Message(timestamp=23.424242, arbitration_id=0x123, data=b"\x11\x22\x33\x44", is_extended_id=False)
    assert format_raw(std) == "< frame 123 23.424242 11223344 >"
    assert format_bcm(std) == "< frame 123 23.424242 11 22 33 44  >"
    empty = can.Message(timestamp=1.5, arbitration_id=0x1AAAAAAA, data=b"", is_extended_id=True)
    assert format_raw(empty) == "< frame 1AAAAAAA 1.500000  >"
    fd = can.Message(timestamp=2.0000004, arbitration_id=0x3B, data=bytes(range(12)), is_fd=True, bitrate_switch=True,
                     is_extended_id=False)
    assert format_raw(fd) == "< fdframe 03B 05 2.000000 000102030405060708090A0B >"
    rtr = can.Message(timestamp=9.9999996, arbitration_id=0x7FF, is_remote_frame=True, dlc=4, is_extended_id=False)
    assert format_raw(rtr) == "< rtr 7FF 10.000000 4 >"
    err = can.Message(timestamp=3.0, arbitration_id=0x40, is_error_frame=True, data=bytes(8))
    assert format_raw(err) == "< error 040 3.000000 >"
    assert format_error("bad <thing>\n") == "< error bad (thing)? >"


classic_frames = st.builds(
    lambda ext, can_id, data, ts: can.Message(
        timestamp=ts, arbitration_id=can_id & (0x1FFFFFFF if ext else 0x7FF), is_extended_id=ext, data=data),
    st.booleans(), st.integers(0, 0x1FFFFFFF), st.binary(max_size=8),
    st.integers(0, 4_000_000_000_000_000).map(lambda us: us / 1e6),
)


@settings(max_examples=200, deadline=None)
@given(msg=classic_frames)
def test_python_can_client_reads_what_the_hub_writes(msg: can.Message) -> None:
    got = pc_socketcand.convert_ascii_message_to_can_message(format_raw(msg))
    assert got is not None
    assert (got.arbitration_id, got.is_extended_id, bytes(got.data), got.dlc) == (
        msg.arbitration_id, msg.is_extended_id, bytes(msg.data), len(msg.data))
    assert abs(got.timestamp - msg.timestamp) <= 1e-6  # microsecond resolution, as socketcand


@settings(max_examples=200, deadline=None)
@given(msg=classic_frames)
def test_hub_reads_what_python_can_client_writes(msg: can.Message) -> None:
    text = pc_socketcand.convert_can_message_to_ascii_message(msg)
    got = parse_send(tokens_of(text))
    assert (got.arbitration_id, got.is_extended_id, bytes(got.data), got.dlc) == (
        msg.arbitration_id, msg.is_extended_id, bytes(msg.data), len(msg.data))


@settings(max_examples=100, deadline=None)
@given(ext=st.booleans(), can_id=st.integers(0, 0x1FFFFFFF), length=st.sampled_from(FD_LENGTHS),
       brs=st.booleans(), esi=st.booleans(), seed=st.integers(0, 255))
def test_fdsend_and_fdframe_round_trip(ext: bool, can_id: int, length: int, brs: bool, esi: bool, seed: int) -> None:
    can_id &= 0x1FFFFFFF if ext else 0x7FF
    data = bytes((seed + i) & 0xFF for i in range(length))
    id_text = f"{can_id:08X}" if ext else f"{can_id:X}"
    flags = (1 if brs else 0) | (2 if esi else 0)
    msg = parse_fdsend(["fdsend", id_text, f"{flags:X}", str(length), *[f"{b:02X}" for b in data]])
    msg.timestamp = 12.5
    words = tokens_of(format_raw(msg))
    assert words[0] == "fdframe"
    assert int(words[1], 16) == can_id and (len(words[1]) == 8) == ext
    assert int(words[2], 16) == 0x04 | flags
    assert words[3] == "12.500000"
    assert bytes.fromhex(words[4] if len(words) > 4 else "") == data


# -- BCM receive jobs --------------------------------------------------------------------------------


def frame(can_id: int, data: bytes, ext: bool = False) -> can.Message:
    return can.Message(arbitration_id=can_id, data=data, is_extended_id=ext)


def test_bcm_subscribe_passes_every_frame_of_its_id_only() -> None:
    bcm = BcmReceiver()
    bcm.subscribe(0x123, False, 0.0)
    assert bcm.on_frame(frame(0x123, b"\x01"), 0.0) and bcm.on_frame(frame(0x123, b"\x01"), 0.0)
    assert bcm.on_frame(frame(0x124, b"\x01"), 0.0) == []
    assert bcm.on_frame(frame(0x123, b"\x01", ext=True), 0.0) == []
    assert bcm.unsubscribe(0x123, False) and not bcm.unsubscribe(0x123, False)
    assert bcm.on_frame(frame(0x123, b"\x01"), 0.0) == []


def test_bcm_filter_passes_first_frame_and_masked_changes() -> None:
    bcm = BcmReceiver()
    bcm.filter(0x100, False, 0.0, b"\xff\x0f")
    seq = [b"\x01\x00", b"\x01\xf0", b"\x01\x01", b"\x02\x01", b"\x02\x01\x99"]
    passed = [bool(bcm.on_frame(frame(0x100, d), 0.0)) for d in seq]
    assert passed == [True, False, True, True, False]


def test_bcm_throttle_holds_the_latest_frame_until_the_interval_ends() -> None:
    bcm = BcmReceiver()
    bcm.subscribe(0x200, False, 0.1)
    a, b, c = frame(0x200, b"a"), frame(0x200, b"b"), frame(0x200, b"c")
    assert bcm.on_frame(a, 1.00) == [a]
    assert bcm.on_frame(b, 1.02) == [] and bcm.on_frame(c, 1.05) == []
    assert bcm.next_due_s() == pytest.approx(1.1)
    assert bcm.due(1.09) == []
    assert bcm.due(1.10) == [c]
    assert bcm.due(1.5) == [] and bcm.next_due_s() is None


def test_bcm_muxfilter_compares_per_multiplexer_value() -> None:
    bcm = BcmReceiver()
    mask = b"\xff" + bytes(7)
    bcm.muxfilter(0x300, False, 0.0, [mask, b"\x01\xff" + bytes(6), b"\x02\x00\xff" + bytes(5)])
    steps = [
        (b"\x01\x10\x00", True),   # mux 1, first
        (b"\x02\x00\x20", True),   # mux 2, first
        (b"\x01\x10\x77", False),  # mux 1: byte 2 not in its mask
        (b"\x02\x55\x20", False),  # mux 2: byte 1 not in its mask
        (b"\x01\x11\x00", True),   # mux 1: byte 1 changed
        (b"\x03\x11\x00", False),  # mux 3 is not filtered for
    ]
    assert [bool(bcm.on_frame(frame(0x300, d), 0.0)) for d, _ in steps] == [want for _, want in steps]
