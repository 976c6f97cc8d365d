"""The SLCAN adapter engine (hil.slcan): commands, frames, and bad serial input.

Pure: no pty, no bus. The emulator and python-can's client over a real pty are tested in
test_slcan_emulator.py.
"""

from __future__ import annotations

import can
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.slcan import (
    BEL,
    MAX_LINE_BYTES,
    FLAG_BUS_ERROR,
    FLAG_DATA_OVERRUN,
    FLAG_ERROR_PASSIVE,
    FLAG_ERROR_WARNING,
    FLAG_RX_FULL,
    FLAG_TX_FULL,
    Reply,
    SlcanEngine,
    SlcanFrame,
    Transmit,
)


def replies(engine: SlcanEngine, data: bytes) -> list[bytes | SlcanFrame]:
    return [e.data if isinstance(e, Reply) else e.frame for e in engine.feed(data)]


def opened(bitrate_cmd: bytes = b"S6") -> SlcanEngine:
    engine = SlcanEngine()
    assert replies(engine, bitrate_cmd + b"\rO\r") == [b"\r", b"\r"]
    return engine


# -- commands ----------------------------------------------------------------------------------------


def test_version_serial_and_the_open_close_cycle() -> None:
    engine = SlcanEngine()
    assert replies(engine, b"V\rN\r") == [b"V1013\r", b"NZ10E\r"]
    assert replies(engine, b"O\r") == [BEL]  # no bit rate yet
    assert replies(engine, b"C\r") == [BEL]  # not open
    assert replies(engine, b"S6\rZ1\rO\r") == [b"\r", b"\r", b"\r"]
    assert engine.state.is_open and engine.state.bitrate == 500_000 and engine.state.timestamps
    assert replies(engine, b"S4\rZ0\rO\r") == [BEL, BEL, BEL]  # only while closed
    assert replies(engine, b"C\rS4\r") == [b"\r", b"\r"]
    assert engine.state.bitrate == 125_000 and not engine.state.is_open
    assert engine.counters.wrong_state == 5 and engine.counters.errors == 5


@pytest.mark.parametrize(("command", "bitrate"), [
    (b"S0", 10_000), (b"S1", 20_000), (b"S2", 50_000), (b"S3", 100_000), (b"S4", 125_000),
    (b"S5", 250_000), (b"S6", 500_000), (b"S7", 800_000), (b"S8", 1_000_000),
])
def test_standard_bitrates(command: bytes, bitrate: int) -> None:
    engine = SlcanEngine()
    assert replies(engine, command + b"\r") == [b"\r"]
    assert engine.state.bitrate == bitrate


@pytest.mark.parametrize("bitrate", [1_000_000, 500_000, 250_000, 125_000, 100_000, 50_000, 20_000])
def test_btr_registers_from_python_can_give_the_same_bitrate(bitrate: int) -> None:
    timing = can.BitTiming.from_sample_point(f_clock=8_000_000, bitrate=bitrate, sample_point=75.0)
    engine = SlcanEngine()
    assert replies(engine, f"s{timing.btr0:02X}{timing.btr1:02X}\r".encode()) == [b"\r"]
    assert engine.state.bitrate == bitrate


def test_bad_commands_each_get_one_bel() -> None:
    engine = SlcanEngine()
    bad = [b"S9", b"S", b"S66", b"s12", b"s12G4", b"Y3", b"Ox", b"Z2", b"V1", b"Q", b"\x00\xff", b"t12", b"T123"]
    assert replies(engine, b"\r".join(bad) + b"\r") == [BEL] * len(bad)
    c = engine.counters
    assert (c.lines, c.errors, c.unknown, c.bad_syntax) == (len(bad), len(bad), 2, len(bad) - 2)


def test_bitrate_must_match_the_bus_to_open() -> None:
    engine = SlcanEngine(bus_bitrate=500_000)
    assert replies(engine, b"S4\rO\rL\r") == [b"\r", BEL, BEL]
    assert engine.last_error == "L: expected the bus's 500000 bit/s, but the adapter is set to 125000 bit/s"
    assert replies(engine, b"S6\rO\r") == [b"\r", b"\r"]
    assert engine.state.is_open


# -- frames host -> bus ---------------------------------------------------------------------------------


def test_frames_are_parsed_and_acknowledged_like_lawicel() -> None:
    engine = opened()
    events = engine.feed(b"t1232ABCD\rT123456781FF\rr7FF8\rR1FFFFFFF0\rt0000\r")
    assert [e.ok_reply for e in events if isinstance(e, Transmit)] == [b"z\r", b"Z\r", b"z\r", b"Z\r", b"z\r"]
    assert [e.frame for e in events] == [
        SlcanFrame(0x123, False, False, False, False, 2, b"\xab\xcd"),
        SlcanFrame(0x12345678, True, False, False, False, 1, b"\xff"),
        SlcanFrame(0x7FF, False, True, False, False, 8, b""),
        SlcanFrame(0x1FFFFFFF, True, True, False, False, 0, b""),
        SlcanFrame(0x000, False, False, False, False, 0, b""),
    ]
    fd = engine.feed(b"d1239" + b"AA" * 12 + b"\rB000000010\r")
    assert [e.frame for e in fd] == [
        SlcanFrame(0x123, False, False, True, False, 12, b"\xaa" * 12),
        SlcanFrame(1, True, False, True, True, 0, b""),
    ]
    assert engine.counters.frames_to_bus == 7


@pytest.mark.parametrize("line", [
    b"t800", b"t1239" + b"00" * 9, b"t12320", b"t1232ABCDEF", b"T200000000", b"T1234567", b"r1239", b"r12321",
    b"t12X0", b"d123G", b"d1231AA00",
])
def test_malformed_frames_are_refused(line: bytes) -> None:
    engine = opened()
    assert replies(engine, line + b"\r") == [BEL]
    assert engine.counters.bad_syntax == 1 and engine.counters.frames_to_bus == 0


def test_no_transmit_while_closed_or_listen_only() -> None:
    engine = SlcanEngine(bitrate=500_000)
    assert replies(engine, b"t1230\r") == [BEL]
    assert replies(engine, b"L\rt1230\rF\rC\rO\r") == [b"\r", BEL, b"F00\r", b"\r", b"\r"]
    assert isinstance(engine.feed(b"t1230\r")[0], Transmit)
    assert engine.counters.wrong_state == 2


def test_python_can_encoded_frames_are_understood() -> None:
    # The exact strings python-can's slcan interface writes for these messages.
    cases = [
        (can.Message(arbitration_id=0x123, data=b"\x01\x02", is_extended_id=False), b"t12320102"),
        (can.Message(arbitration_id=0x1ABCDEF0, data=b"", is_extended_id=True), b"T1ABCDEF00"),
        (can.Message(arbitration_id=0x55, is_remote_frame=True, dlc=5, is_extended_id=False), b"r0555"),
        (can.Message(arbitration_id=0x55, is_remote_frame=True, dlc=3, is_extended_id=True), b"R000000553"),
        (can.Message(arbitration_id=0x10, data=bytes(range(16)), is_fd=True, bitrate_switch=True, is_extended_id=False),
         b"b010A" + bytes(range(16)).hex().upper().encode()),
    ]
    engine = opened()
    for msg, line in cases:
        (event,) = engine.feed(line + b"\r")
        assert isinstance(event, Transmit)
        assert event.frame == SlcanFrame.from_message(msg)


# -- frames bus -> host -----------------------------------------------------------------------------------


def test_received_frames_are_written_in_lawicel_format_with_timestamps() -> None:
    engine = opened()
    assert engine.encode_frame(SlcanFrame(0x123, data=b"\xab\xcd", dlc=2)) == b"t1232ABCD\r"
    assert engine.encode_frame(SlcanFrame(0x1234567, True, dlc=1, data=b"\x01")) == b"T01234567101\r"
    assert engine.encode_frame(SlcanFrame(0x7FF, is_remote_frame=True, dlc=4)) == b"r7FF4\r"
    assert engine.encode_frame(SlcanFrame(0x7FF, True, True, dlc=0)) == b"R000007FF0\r"
    assert engine.encode_frame(SlcanFrame(0x10, is_fd=True, bitrate_switch=True, dlc=9, data=b"\x11" * 9)) == (
        b"b0109" + b"11" * 9 + b"00" * 3 + b"\r")  # padded to the next FD length (12)
    engine.feed(b"C\rZ1\rO\r")
    msg = can.Message(timestamp=1234.5678, arbitration_id=0x100, data=b"\x01", is_extended_id=False)
    # 1234.5678 s -> 1234567 ms -> mod 60000 = 34567 = 0x8707
    assert engine.encode_frame(msg) == b"t100101" + b"8707" + b"\r"
    engine.feed(b"C\r")
    assert engine.encode_frame(msg) is None and engine.counters.frames_not_delivered == 1


def test_status_flags_latch_until_read() -> None:
    engine = opened()
    engine.note_rx_overflow(3)
    engine.note_bus_state(error_passive=True)
    assert engine.encode_frame(can.Message(is_error_frame=True, arbitration_id=0x80)) is None
    assert replies(engine, b"F\r") == [f"F{FLAG_RX_FULL | FLAG_DATA_OVERRUN | FLAG_ERROR_PASSIVE | FLAG_ERROR_WARNING | FLAG_BUS_ERROR:02X}\r".encode()]
    assert replies(engine, b"F\r") == [b"F00\r"]
    (event,) = engine.feed(b"t1230\r")
    assert isinstance(event, Transmit)
    assert engine.transmit_failed("queue full", queue_full=True) == BEL
    assert replies(engine, b"F\r") == [f"F{FLAG_TX_FULL:02X}\r".encode()]
    c = engine.counters
    assert (c.rx_overflow, c.tx_failed, c.frames_to_bus, c.errors) == (3, 1, 0, 1)


# -- bad serial input -----------------------------------------------------------------------------------


def outcome(chunks: list[bytes]) -> tuple[list[bytes | SlcanFrame], dict[str, int], bool, int | None]:
    engine = SlcanEngine(bitrate=500_000)
    out: list[bytes | SlcanFrame] = []
    for chunk in chunks:
        out += replies(engine, chunk)
    return out, engine.counters.as_dict(), engine.state.is_open, engine.state.bitrate


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    return [*pieces, data[last:]]


_TOKENS = st.sampled_from([b"\r", b"\n", b"O", b"C", b"L", b"S6", b"S4", b"Z1", b"F", b"V", b"t1232ABCD", b"T12345678",
                           b"r1238", b"d1239", b"AA", b"\x07", b"\x00", b"\xff", b"x" * 50, b"9"])
serial_stream = st.one_of(st.binary(max_size=600), st.lists(_TOKENS, max_size=60).map(b"".join))


@settings(max_examples=150, deadline=None)
@given(data=serial_stream, cuts=st.lists(st.integers(0, 700), max_size=15))
def test_result_does_not_depend_on_how_the_stream_is_chunked(data: bytes, cuts: list[int]) -> None:
    whole = outcome([data])
    assert outcome(split(data, cuts)) == whole
    assert outcome([data[i:i + 1] for i in range(len(data))]) == whole


@settings(max_examples=150, deadline=None)
@given(data=serial_stream)
def test_every_line_gets_exactly_one_answer_and_memory_stays_bounded(data: bytes) -> None:
    engine = SlcanEngine(bitrate=500_000)
    events = []
    for i in range(0, len(data), 13):
        events += engine.feed(data[i:i + 13])
        assert engine.pending_bytes <= MAX_LINE_BYTES + 1
    lines = [line.replace(b"\n", b"") for line in data.split(b"\r")[:-1]]
    nonempty = [line for line in lines if line]
    assert len(events) == len(nonempty) == engine.counters.lines
    bels = sum(1 for e in events if isinstance(e, Reply) and e.data == BEL)
    assert bels == engine.counters.errors
    assert engine.counters.overlong == sum(1 for line in nonempty if len(line) > MAX_LINE_BYTES)


def test_binary_noise_and_overlong_lines_resynchronise_at_cr() -> None:
    engine = SlcanEngine(bitrate=500_000)
    noise = bytes(range(256)).replace(b"\r", b"") * 4
    assert replies(engine, noise + b"\rV\r" + b"t123" + b"0" * 500 + b"\rO\r") == [BEL, b"V1013\r", BEL, b"\r"]
    assert engine.counters.overlong == 2
    # A truncated command followed by a new one on the same line is one bad line, then normal service.
    assert replies(engine, b"t1232AB") == []
    assert replies(engine, b"t1230\rt1230\r")[0] == BEL
    assert engine.counters.bad_syntax == 1
