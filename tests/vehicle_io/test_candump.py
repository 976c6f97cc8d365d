"""candump text parsing: can-utils formats, python-can's writer output, and garbage."""

from __future__ import annotations

import can
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vehicle_io.candump import CAN_EFF_FLAG, LogLineError, iter_batches, parse_line


def test_classic_log_line() -> None:
    f = parse_line("(1700000000.123456) can0 123#DEADBEEF")
    assert f.timestamp == pytest.approx(1700000000.123456)
    assert (f.channel, f.arbitration_id, f.is_extended_id, f.data) == ("can0", 0x123, False, b"\xde\xad\xbe\xef")


def test_extended_fd_remote_error_lines() -> None:
    ext = parse_line("(1.0) pt 1ABCDEF0#01")
    assert ext.is_extended_id and ext.arbitration_id == 0x1ABCDEF0
    fd = parse_line("(2.0) ads 200##3" + "11" * 12)
    assert fd.is_fd and fd.bitrate_switch and fd.error_state_indicator and fd.data == b"\x11" * 12
    rtr = parse_line("(3.0) pt 321#R4")
    assert rtr.is_remote_frame and rtr.dlc == 4
    err = parse_line("(4.0) pt 20000080#0000000000000000")
    assert err.is_error_frame and err.arbitration_id == 0x80


def test_console_format() -> None:
    f = parse_line("  vcan0  1F0   [8]  80 4A 0F 00 00 00 00 00")
    assert f.timestamp is None and f.arbitration_id == 0x1F0 and f.data == bytes.fromhex("804A0F0000000000")
    with pytest.raises(LogLineError, match="expected 8 data bytes"):
        parse_line("  vcan0  1F0   [8]  80 4A")


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("(1.0) can0 12#00", "3 or 8 hex digit"),
        ("(1.0) can0 123#0", "hex byte pairs"),
        ("(1.0) can0 123#" + "00" * 9, "at most 8 data bytes"),
        ("(1.0) can0 123##1" + "00" * 9, "CAN FD length"),
        ("(1.0) can0 40000000#00", "29 bits"),
        ("hello world", "expected '(SECS) IFACE ID#DATA'"),
    ],
)
def test_bad_lines_name_the_problem(line: str, fragment: str) -> None:
    with pytest.raises(LogLineError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_line(line)


def test_reads_what_python_can_writes(tmp_path) -> None:
    path = tmp_path / "x.log"
    sent = [
        can.Message(timestamp=1.0 + i, arbitration_id=i * 7 % 0x800, data=bytes([i]) * (i % 9),
                    is_extended_id=False, channel="pt")
        for i in range(20)
    ] + [can.Message(timestamp=30.0, arbitration_id=0x1234567, is_extended_id=True, is_fd=True,
                     bitrate_switch=True, data=bytes(range(64)), channel="ads")]
    with can.Logger(str(path)) as writer:
        for msg in sent:
            writer.on_message_received(msg)
    frames = [parse_line(line) for line in path.read_text().splitlines() if line.strip()]
    assert [(f.arbitration_id, f.data, f.is_fd) for f in frames] == [
        (m.arbitration_id, bytes(m.data), m.is_fd) for m in sent
    ]


def test_batches_keep_line_numbers_and_report_bad_lines() -> None:
    lines = ["(1.0) pt 100#01", "garbage", "", "(2.0) pt 1ABCDEF0#0203", "(3.0) pt 100#R"]
    batches = list(iter_batches(lines, batch_size=1))
    frames = [b for b, _ in batches if len(b)]
    bad = [item for _, items in batches for item in items]
    assert [int(x) for b in frames for x in b.line_numbers] == [1, 4]
    assert [int(x) for b in frames for x in b.ids] == [0x100, 0x1ABCDEF0 | CAN_EFF_FLAG]
    assert [item.line_number for item in bad] == [2, 5]
    assert frames[-1].data[0, :2].tolist() == [2, 3] and int(frames[-1].lengths[0]) == 2
    assert not frames[-1].data[0, 2:].any()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_is_a_frame_or_a_clear_error(text: str) -> None:
    try:
        frame = parse_line(text)
    except LogLineError as err:
        assert "\n" not in str(err)
        return
    assert len(frame.data) <= 64


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 0x7FF), st.binary(max_size=8), st.floats(0, 2e9, allow_nan=False)
)
def test_formatted_classic_frames_round_trip(can_id: int, data: bytes, ts: float) -> None:
    frame = parse_line(f"({ts:.6f}) can0 {can_id:03X}#{data.hex().upper()}")
    assert frame.arbitration_id == can_id and frame.data == data
    batch, bad = next(iter_batches([f"({ts:.6f}) can0 {can_id:03X}#{data.hex()}"]))
    assert not bad and np.array_equal(batch.data[0, : len(data)], np.frombuffer(data, np.uint8))
