"""The candump kernel against the line-by-line parser, the gzip reader, chunk alignment."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_helpers import candump_reference

from vehicle_io.fleet.parse import parse_candump_bytes, read_candump_gz, read_candump_range
from vehicle_io.fleet.plan import aligned_ranges

SAMPLE = Path(__file__).resolve().parents[3] / "vehicle_io" / "data" / "z10_sample_drive.log.gz"


def _check(text: str) -> None:
    frames, report = parse_candump_bytes(text.encode())
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    want, bad, skipped = candump_reference(lines)
    assert len(frames) == len(want)
    for i, (ident, data, ts, channel, number) in enumerate(want):
        assert int(frames.ids[i]) == ident
        assert bytes(frames.data[i, : frames.lengths[i]]) == data
        assert not frames.data[i, frames.lengths[i]:].any()
        got_ts = float(frames.timestamps[i])
        assert got_ts == ts or (got_ts != got_ts and ts != ts)
        assert frames.channels[frames.channel_index[i]] == channel
        assert int(frames.lines[i]) == number
    assert [b.line for b in report.bad] == bad[: len(report.bad)] and report.bad_count == len(bad)
    assert report.skipped_frames == skipped
    assert report.lines == len(lines)


def test_sample_log_equals_line_parser():
    _check(gzip.decompress(SAMPLE.read_bytes()).decode())


_hex = st.text(alphabet="0123456789abcdefABCDEF", min_size=0, max_size=20)
_line = st.one_of(
    st.builds(lambda s, us, ch, i, sep, d, tail: f"({s}.{us}) {ch} {i}{sep}{d}{tail}",
              st.integers(0, 9_999_999_999).map(str), st.integers(0, 999_999).map(lambda v: f"{v:06d}"),
              st.sampled_from(["pt", "can0", "ads", "vcan12"]),
              st.one_of(st.from_regex(r"[0-9A-Fa-f]{3}", fullmatch=True), st.from_regex(r"[0-9A-F]{8}", fullmatch=True),
                        _hex),
              st.sampled_from(["#", "##", "#R", "##1"]), _hex, st.sampled_from(["", " R", " T", "  ", " X"])),
    st.text(max_size=40).filter(lambda s: "\n" not in s and "\r" not in s),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_line, max_size=12), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_kernel_equals_line_parser_on_random_lines(lines, newline, final_newline):
    # the kernel finds each line's end while parsing it: a line may end at a newline, at a
    # CR LF or at the end of the buffer
    _check(newline.join(lines) + (newline if final_newline else ""))


@pytest.mark.parametrize("text", [
    "(1.5) pt 123#11223",            # odd hex digit, last line without a newline
    "(1.5) pt 123#11223\n(2.0) pt 124#",
    "(1.5) pt\n(2.0) pt 124#00",      # line ends right after the channel
    "(1.5) pt 123#1122 T",
    "(1.5) pt 123#1122 T\n   \n\t\n(2) ads 12345678##1" + "ab" * 64,
    "(1.5) pt 123#1122\r\n(1.6) pt 123#11\r",
    "(1.5)",
    "\n\n",
])
def test_kernel_line_ends(text):
    _check(text)


def test_parse_arrays_and_bytes_alike():
    text = gzip.decompress(SAMPLE.read_bytes())[:50_000]
    want, _ = parse_candump_bytes(text)
    writeable = np.frombuffer(bytearray(text), np.uint8)
    readonly = np.frombuffer(text, np.uint8)
    for buf in (writeable, readonly, memoryview(text)):
        got, _ = parse_candump_bytes(buf)
        assert np.array_equal(got.ids, want.ids) and np.array_equal(got.data, want.data)
        assert np.array_equal(got.timestamps, want.timestamps) and np.array_equal(got.lines, want.lines)
    assert bytes(writeable) == text  # parsed in place, not changed


def test_range_of_a_file_that_shrank_is_reported(tmp_path):
    text = gzip.decompress(SAMPLE.read_bytes())[:20_000]
    path = tmp_path / "a.log"
    path.write_bytes(text)
    end = text.rindex(b"\n", 0, 10_000) + 1
    frames, report = read_candump_range(path, 0, len(text) + 100)
    assert report.error is not None and "shrank" in report.error and report.error_offset == len(text)
    assert len(frames) == len(parse_candump_bytes(text)[0])
    frames, report = read_candump_range(path, 0, end)
    assert report.error is None and len(frames) == len(parse_candump_bytes(text[:end])[0])


def test_gzip_truncated_keeps_what_came_before(tmp_path):
    data = SAMPLE.read_bytes()
    whole, _ = read_candump_gz(SAMPLE)
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(data[: len(data) // 2])
    frames, report = read_candump_gz(cut)
    assert report.error is not None and "truncated" in report.error
    assert 0 < len(frames) < len(whole)
    n = len(frames) - 1  # the last line may be cut in the middle (then it is a bad line)
    assert np.array_equal(frames.ids[:n], whole.ids[:n]) and np.array_equal(frames.data[:n], whole.data[:n])
    junk = tmp_path / "junk.log.gz"
    junk.write_bytes(data[:100] + bytes(range(256)) * 4)
    frames, report = read_candump_gz(junk)
    assert report.error is not None and "corrupt gzip" in report.error


@pytest.mark.parametrize("chunk", [1, 7, 100, 4096, 10**9])
def test_aligned_chunks_cover_every_line_once(tmp_path, chunk):
    text = gzip.decompress(SAMPLE.read_bytes())[:20_000]
    path = tmp_path / "a.log"
    path.write_bytes(text)
    ranges = aligned_ranges(path, len(text), chunk)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(text)
    assert all(a < b and b == c for (a, b), (c, _) in zip(ranges, ranges[1:]))
    assert all(s == 0 or text[s - 1] == 10 for s, _ in ranges)
    total = sum(len(read_candump_range(path, s, e)[0]) for s, e in ranges)
    assert total == len(parse_candump_bytes(text)[0])


def test_an_id_on_two_buses_is_told_apart_by_the_bus():
    from vehicle_io.fleet.plan import Settings, dbc_digest
    from vehicle_io.fleet.worker import _codec, decode_frames

    text = ("(1.000000) pt 7DF#0201000000000000\n(1.100000) body 7DF#0201000000000000\n"
            "(1.200000) pt 0C0#0000000000000000\n(1.300000) can1 7DF#0201000000000000\n")
    frames, _ = parse_candump_bytes(text.encode())
    codec = _codec(Settings(bus_map=(("can1", "body"),), dbc_digest=dbc_digest(None)))
    decoded, counts, buses = decode_frames(codec, frames)
    assert buses == ["pt", "body", "body"]
    assert decoded["DiagFuncReq_PT"][0].tolist() == [0]
    assert decoded["DiagFuncReq_Body"][0].tolist() == [1, 3]
    assert decoded["VCU_Status"][0].tolist() == [2]
    assert counts["ok"] == 4


def test_common_lines_take_the_kernel_path():
    """Every line of the common forms is parsed by the kernel itself (the slow path would give
    the same frames, so only its count shows that the fast path works)."""
    from vehicle_io.fleet import _parse_kernels as k

    text = (gzip.decompress(SAMPLE.read_bytes())[:30_000].rsplit(b"\n", 1)[0] + b"\n"
            + b"(2.000000) pt 123#1122 T\r\n(2.1) ads 12345678##1" + b"ab" * 64 + b"\n(2.2) body 7DF#")
    raw = np.frombuffer(bytearray(text), np.uint8)
    cap = text.count(b"\n") + 1
    assert k.count_lines(raw) == cap - 1
    out = [np.zeros(cap, np.uint32), np.zeros((cap, 64), np.uint8), np.zeros(cap, np.uint8), np.zeros(cap),
           np.zeros(cap, np.int32), np.zeros(cap, np.int64), np.zeros(cap, np.int64), np.zeros(cap, np.int64),
           np.zeros(cap, np.int64), np.zeros(k.MAX_CHANNELS, np.int64), np.zeros(k.MAX_CHANNELS, np.int64)]
    slow_lines = {i + 1 for i, line in enumerate(text.split(b"\n")) if b"NOT-HEX" in line or not line.startswith(b"(")}
    n_frames, n_slow, n_lines, _ = k.parse_candump(raw, *out)
    assert n_lines == cap and n_slow == len(slow_lines) and n_frames + n_slow == n_lines
    assert out[2][n_frames - 2] == 64 and out[2][n_frames - 1] == 0  # the FD frame, the empty frame
