"""vehicle_io.logfmt: candump lines exactly as can-utils writes them; every format read back."""

from __future__ import annotations

import can
import pytest

from vehicle_io.candump import parse_line
from vehicle_io.logfmt import CandumpWriter, LogReader, RotatingWriter, format_line, open_writer


def _frames() -> list[can.Message]:
    return [
        can.Message(timestamp=1700000000.123456, arbitration_id=0x123, is_extended_id=False,
                    data=bytes.fromhex("DEADBEEF"), channel="can0"),
        can.Message(timestamp=1.5, arbitration_id=0x12345, is_extended_id=True, data=b"\x00", channel="pt"),
        can.Message(timestamp=2.0, arbitration_id=0x012, is_extended_id=False, is_remote_frame=True, dlc=4,
                    channel="body"),
        can.Message(timestamp=2.25, arbitration_id=0x7FF, is_extended_id=False, is_remote_frame=True, dlc=0,
                    channel="body"),
        can.Message(timestamp=3.0, arbitration_id=0x050, is_extended_id=False, is_fd=True, bitrate_switch=True,
                    data=bytes(range(12)), channel="ads"),
        can.Message(timestamp=3.5, arbitration_id=0x051, is_extended_id=False, is_fd=True,
                    error_state_indicator=True, data=b"\x01\x02", channel="ads"),
        can.Message(timestamp=4.0, arbitration_id=0x000, is_error_frame=True, dlc=8, data=bytes(8), channel="pt"),
        can.Message(timestamp=5.0, arbitration_id=0x001, is_extended_id=False, data=b"", channel="pt"),
    ]


# Written by hand from can-utils lib.c sprint_canframe and candump.c "(%010lu.%06lu) %*s ".
CANUTILS_LINES = [
    "(1700000000.123456) can0 123#DEADBEEF",
    "(0000000001.500000)   pt 00012345#00",
    "(0000000002.000000) body 012#R4",
    "(0000000002.250000) body 7FF#R",
    "(0000000003.000000)  ads 050##1000102030405060708090A0B",
    "(0000000003.500000)  ads 051##20102",
    "(0000000004.000000)   pt 20000080#0000000000000000",
    "(0000000005.000000)   pt 001#",
]


def test_lines_equal_what_candump_writes(tmp_path) -> None:
    path = tmp_path / "x.log"
    with CandumpWriter(path, channels=["pt", "body", "ads"]) as writer:
        for msg in _frames():
            writer.on_message_received(msg)
    assert path.read_text() == "".join(line + "\n" for line in CANUTILS_LINES)


def test_python_can_and_our_parser_read_it_back(tmp_path) -> None:
    path = tmp_path / "x.log"
    with CandumpWriter(path, channels=["pt", "body", "ads"]) as writer:
        for msg in _frames():
            writer.on_message_received(msg)
    back = list(can.LogReader(path))
    for sent, got in zip(_frames(), back):
        assert got.is_error_frame == sent.is_error_frame
        if sent.is_error_frame:
            continue
        assert (got.arbitration_id, got.is_extended_id, got.is_remote_frame, got.is_fd, got.bitrate_switch,
                got.error_state_indicator, got.channel) == (
            sent.arbitration_id, sent.is_extended_id, sent.is_remote_frame, sent.is_fd, sent.bitrate_switch,
            sent.error_state_indicator, sent.channel)
        assert got.timestamp == pytest.approx(sent.timestamp)
        assert (got.dlc if sent.is_remote_frame else bytes(got.data)) == (
            sent.dlc if sent.is_remote_frame else bytes(sent.data))
    for line in CANUTILS_LINES:
        parse_line(line)  # our own parser takes every line too


@pytest.mark.parametrize("suffix", [".asc", ".blf", ".csv"])
def test_python_can_reads_every_format_written(tmp_path, suffix) -> None:
    frames = [m for m in _frames() if not m.is_error_frame]
    path = tmp_path / f"x{suffix}"
    writer = open_writer(path, channels=["pt", "body", "ads"])
    for i, msg in enumerate(frames):
        writer.on_message_received(msg)
        writer.flush()  # z10 log flushes every second, whatever the format
    writer.stop()
    back = list(LogReader(path))
    assert [(m.arbitration_id, m.is_remote_frame) for m in back] == [(m.arbitration_id, m.is_remote_frame)
                                                                       for m in frames]
    if suffix != ".csv":  # CSV keeps no channel
        assert [m.channel for m in back] == ["can0", "can0", "can1", "can1", "can2", "can2", "can0"]  # canN keeps N


def test_trc_skips_and_counts_what_it_cannot_hold(tmp_path) -> None:
    writer = open_writer(tmp_path / "x.trc", channels=["pt", "body", "ads"])
    for msg in _frames():
        writer.on_message_received(msg)
    writer.stop()
    assert writer.skipped == 5  # two remote, two FD, one error frame
    assert [m.arbitration_id for m in LogReader(tmp_path / "x.trc")] == [0x123, 0x12345, 0x001]


@pytest.mark.parametrize("suffix", [".log", ".blf"])
def test_rotation_by_size_keeps_every_frame(tmp_path, suffix) -> None:
    writer = RotatingWriter(tmp_path / f"r{suffix}", channels=["pt"], max_bytes=200)
    sent = [can.Message(timestamp=i, arbitration_id=0x100, is_extended_id=False, data=i.to_bytes(2, "big"),
                        channel="pt") for i in range(40)]
    for msg in sent:
        writer.on_message_received(msg)
        writer.flush()
    writer.stop()
    back = [m for p in writer.paths for m in can.LogReader(p)]
    assert [bytes(m.data) for m in back] == [bytes(m.data) for m in sent]
    if suffix == ".log":
        assert len(writer.paths) > 1 and writer.paths[0].name == "r.000.log"
        assert all(p.stat().st_size <= 200 + 40 for p in writer.paths)


def test_bad_timestamp_is_a_clear_error() -> None:
    msg = can.Message(timestamp=-1.0, arbitration_id=1, is_extended_id=False)
    with pytest.raises(ValueError, match="expected a timestamp >= 0"):
        format_line(msg, "pt")


def test_unknown_suffix_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="expected a log file ending in"):
        open_writer(tmp_path / "x.txt")
