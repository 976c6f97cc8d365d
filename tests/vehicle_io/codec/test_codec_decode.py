"""BatchDecoder against cantools: random databases, random frames, statuses, bad input."""

from __future__ import annotations

import math
import struct

import cantools
import numpy as np
import pytest
from cantools.database.can import Database, Message, Signal
from cantools.database.conversion import BaseConversion
from codec_strategies import (
    NO_JIT,
    Frames,
    assert_same_as_cantools,
    databases,
    dbc_round_trip,
    examples,
    random_frames,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vehicle_io import CodecError
from vehicle_io.codec import (
    STATUS_BAD_MUX,
    STATUS_OK,
    STATUS_TOO_SHORT,
    STATUS_UNKNOWN_ID,
    STATUS_UNSUPPORTED,
    BatchDecoder,
)

SLOW_DATA = [HealthCheck.too_slow, HealthCheck.data_too_large]


@settings(max_examples=examples(150, 25), deadline=None, suppress_health_check=SLOW_DATA)
@given(db=databases(), seed=st.integers(0, 2**32 - 1), n=st.integers(0, 60))
def test_random_databases_decode_like_cantools(db: Database, seed: int, n: int) -> None:
    frames = random_frames(db, seed, n)
    result = BatchDecoder(db).decode(frames.ids, frames.data, frames.lengths)
    assert_same_as_cantools(db, frames, result)


@settings(max_examples=examples(40, 8), deadline=None, suppress_health_check=SLOW_DATA)
@given(db=databases(dbc_text=True), seed=st.integers(0, 2**32 - 1))
def test_databases_read_back_from_dbc_text_decode_like_cantools(db: Database, seed: int) -> None:
    reloaded = dbc_round_trip(db)
    frames = random_frames(reloaded, seed, 30)
    result = BatchDecoder(reloaded).decode(frames.ids, frames.data, frames.lengths)
    assert_same_as_cantools(reloaded, frames, result)


@settings(max_examples=examples(60, 10), deadline=None, suppress_health_check=SLOW_DATA)
@given(db=databases(max_messages=2), seed=st.integers(0, 2**32 - 1),
       width=st.integers(0, 64))
def test_narrow_rows_and_default_lengths(db: Database, seed: int, width: int) -> None:
    frames = random_frames(db, seed, 25, width=width)
    result = BatchDecoder(db).decode(frames.ids, frames.data)
    full = Frames(frames.ids, frames.data, np.full(25, width, dtype=np.uint8))
    assert_same_as_cantools(db, full, result)


@settings(max_examples=examples(100, 20), deadline=None)
@given(ids=st.lists(st.integers(0, 2**32 - 1), max_size=40),
       width=st.integers(0, 64), seed=st.integers(0, 2**32 - 1))
def test_random_ids_bytes_and_lengths_never_raise(ids: list[int], width: int,
                                                   seed: int) -> None:
    db = _mux_db()
    rng = np.random.default_rng(seed)
    n = len(ids)
    id_arr = np.array(ids, dtype=np.uint32)
    # Half of the ids hit a known message so the kernel's decode path runs too.
    id_arr[: n // 2] = rng.choice([0x10, 0x80000010, 0x1ABCDEF | 0x80000000], n // 2)
    data = rng.integers(0, 256, size=(n, width), dtype=np.uint8)
    lengths = rng.integers(0, 256, size=n).astype(np.uint8)
    result = BatchDecoder(db).decode(id_arr, data, lengths)
    assert result.status.shape == (n,)
    assert set(result.status.tolist()) <= {STATUS_OK, STATUS_UNKNOWN_ID, STATUS_TOO_SHORT,
                                           STATUS_BAD_MUX}
    reported = sorted(r for cols in result.values() for r in cols["_row"].tolist())
    assert reported == [i for i in range(n)
                        if result.status[i] in (STATUS_OK, STATUS_BAD_MUX)]
    assert_same_as_cantools(db, Frames(id_arr, data, lengths), result)


def _mux_db() -> Database:
    """Hand-written extended multiplexing: Mux selects Sub (nested) or plain signals."""
    text = """VERSION ""

BU_: A

BO_ 16 Std: 8 A
 SG_ Mux M : 0|2@1+ (1,0) [0|0] "" A
 SG_ Plain : 15|8@0- (0.5,-3) [0|0] "" A
 SG_ Sub m0M : 16|2@1+ (1,0) [0|0] "" A
 SG_ SubA m0 : 24|8@1+ (1,0) [0|0] "" A
 SG_ SubB m1 : 24|16@1- (1,0) [0|0] "" A
 SG_ Other m1 : 23|8@0+ (2,1) [0|0] "" A
 SG_ Other2 m2 : 16|32@1+ (1,0) [0|0] "" A

BO_ 2175520239 Ext: 12 A
 SG_ Big : 7|64@0+ (1,0) [0|0] "" A
 SG_ F : 64|32@1- (1,0) [0|0] "" A

SIG_VALTYPE_ 2175520239 F : 1;

SG_MUL_VAL_ 16 Sub Mux 0-0;
SG_MUL_VAL_ 16 SubA Sub 0-0;
SG_MUL_VAL_ 16 SubB Sub 1-1;
SG_MUL_VAL_ 16 Other Mux 1-1, 3-3;
SG_MUL_VAL_ 16 Other2 Mux 2-2;
"""
    return cantools.database.load_string(text, database_format="dbc")


def _decode_one(db: Database, frame_id: int, payload: bytes, width: int = 64):
    data = np.zeros((1, width), dtype=np.uint8)
    data[0, :len(payload)] = np.frombuffer(payload, dtype=np.uint8)
    return BatchDecoder(db).decode(np.array([frame_id], dtype=np.uint32), data,
                                   np.array([len(payload)], dtype=np.uint8))


def test_hand_written_extended_multiplexing_matches_cantools_for_every_branch() -> None:
    db = _mux_db()
    message = db.get_message_by_name("Std")
    assert message.signal_tree == [{"Mux": {0: [{"Sub": {0: ["SubA"], 1: ["SubB"]}}],
                                            1: ["Other"], 2: ["Other2"], 3: ["Other"]}},
                                   "Plain"]
    rng = np.random.default_rng(7)
    ids, rows = [], []
    for mux in range(4):
        for sub in range(4):
            payload = bytearray(rng.integers(0, 256, 8, dtype=np.uint8).tobytes())
            payload[0] = (payload[0] & ~3) | mux
            payload[2] = (payload[2] & ~3) | sub
            ids.append(16)
            rows.append(bytes(payload))
    frames = Frames(np.array(ids, dtype=np.uint32),
                    np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(-1, 8).copy(),
                    np.full(len(rows), 8, dtype=np.uint8))
    result = BatchDecoder(db).decode(frames.ids, frames.data, frames.lengths)
    assert_same_as_cantools(db, frames, result)
    # Mux=0 with Sub 2 or 3 is undefined: BAD_MUX, yet Plain, Mux and Sub are reported.
    bad = [4 * 0 + 2, 4 * 0 + 3]
    assert result.status[bad].tolist() == [STATUS_BAD_MUX] * 2
    cols = result["Std"]
    for row in bad:
        k = cols["_row"].tolist().index(row)
        assert cols["Sub"][k] == rows[row][2] & 3
        assert not math.isnan(cols["Plain"][k])
        assert math.isnan(cols["SubA"][k]) and math.isnan(cols["SubB"][k])
    assert (result.status[[1 + 4 * m for m in (1, 2, 3)]] == STATUS_OK).all()


def test_statuses_unknown_too_short_bad_mux_and_eff_flag() -> None:
    db = _mux_db()
    ids = np.array([0x10, 0x11, 0x10, 0x81AB_CDEF, 0x01AB_CDEF, 0x10 | 0x8000_0000, 0x10],
                   dtype=np.uint32)
    data = np.zeros((7, 12), dtype=np.uint8)
    data[6, 0] = 0  # Mux 0 ...
    data[6, 2] = 2  # ... Sub 2: not defined
    lengths = np.array([8, 8, 7, 12, 11, 8, 8], dtype=np.uint8)
    result = BatchDecoder(db).decode(ids, data, lengths)
    # row 5: the extended frame 0x00000010 is not the standard frame 0x010 (cantools with
    # force_extended_id=True: KeyError)
    assert result.status.tolist() == [STATUS_OK, STATUS_UNKNOWN_ID, STATUS_TOO_SHORT,
                                      STATUS_OK, STATUS_TOO_SHORT, STATUS_UNKNOWN_ID, STATUS_BAD_MUX]
    assert result["Std"]["_row"].tolist() == [0, 6]
    assert result["Ext"]["_row"].tolist() == [3]
    assert result.status_counts() == {"ok": 2, "unknown_id": 2, "too_short": 2,
                                      "bad_mux": 1, "unsupported": 0}


def _single(signal: Signal, length: int = 8, frame_id: int = 1) -> Database:
    return Database(messages=[Message(frame_id=frame_id, name="M", length=length,
                                      signals=[signal])])


@pytest.mark.parametrize("kind,length,payload,expected", [
    ("f32", 32, struct.pack("<f", -0.0), -0.0),
    ("f32", 32, struct.pack("<I", 0x7FC00001), math.nan),
    ("f32", 32, struct.pack("<I", 0xFF800000), -math.inf),
    ("f64", 64, struct.pack("<d", -0.0), -0.0),
    ("f64", 64, struct.pack("<Q", 0x7FF0000000000123), math.nan),
    ("f16", 16, struct.pack("<e", -65504.0), -65504.0),
    ("f16", 16, struct.pack("<H", 0x0001), 2.0**-24),
])
def test_float_signals_keep_sign_of_zero_and_nan(kind: str, length: int, payload: bytes,
                                                  expected: float) -> None:
    signal = Signal("F", 0, length, conversion=BaseConversion.factory(is_float=True))
    db = _single(signal, length // 8)
    result = _decode_one(db, 1, payload)
    want = db.decode_message(1, payload, decode_choices=False)["F"]
    got = result["M"]["F"][0]
    if math.isnan(expected):
        assert math.isnan(got) and math.isnan(want)
    else:
        assert got == want == expected
        assert math.copysign(1, got) == math.copysign(1, expected)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("scale,offset", [(1, 0), (3, -7), (2**40 + 1, 5), (-(2**39), 2**62),
                                          (0.1, 0), (7, 0.25)])
def test_64_bit_raw_values_are_exact_beyond_2_pow_53(signed: bool, scale: float,
                                                      offset: float) -> None:
    signal = Signal("Big", 0, 64, is_signed=signed,
                    conversion=BaseConversion.factory(scale=scale, offset=offset))
    db = _single(signal)
    raws = [0, 1, 2**53 + 1, 2**63 - 1, 2**63, 2**63 + 1, 2**64 - 1, 2**64 - 3,
            0x8000_0000_0000_0001, 12345678901234567891]
    payloads = [r.to_bytes(8, "little") for r in raws]
    data = np.frombuffer(b"".join(payloads), dtype=np.uint8).reshape(-1, 8).copy()
    result = BatchDecoder(db).decode(np.ones(len(raws), dtype=np.uint32), data)
    want = np.array([float(db.decode_message(1, p, decode_choices=False)["Big"])
                     for p in payloads])
    assert np.array_equal(result["M"]["Big"].view(np.uint64), want.view(np.uint64))


def test_container_messages_are_reported_unsupported() -> None:
    inner = Message(frame_id=0x5, name="Inner", length=2, header_id=0x123,
                    signals=[Signal("A", 0, 8)])
    container = Message(frame_id=0x100, name="Box", length=16, signals=[],
                        contained_messages=[inner])
    db = Database(messages=[container])
    assert container.is_container
    result = _decode_one(db, 0x100, bytes(16))
    assert result.status.tolist() == [STATUS_UNSUPPORTED]
    assert dict(result) == {}


def test_overlapping_signals_of_a_non_strict_dbc_follow_cantools() -> None:
    # cantools (strict=False) decodes a big- and a little-endian signal sharing bits, but
    # not two overlapping signals of one byte order: its bitstruct format then runs past
    # the frame and every decode raises.
    text = """VERSION ""

BU_: A

BO_ 1 Cross: 2 A
 SG_ A : 7|8@0+ (1,0) [0|0] "" A
 SG_ L1 : 0|8@1+ (1,0) [0|0] "" A
 SG_ B : 15|8@0- (1,0) [0|0] "" A

BO_ 2 LeOverlap: 1 A
 SG_ X : 0|8@1+ (1,0) [0|0] "" A
 SG_ Y : 4|8@1+ (1,0) [0|0] "" A

BO_ 3 BeOverlap: 3 A
 SG_ A3 : 7|8@0+ (1,0) [0|0] "" A
 SG_ B3 : 3|8@0+ (1,0) [0|0] "" A
 SG_ C3 : 19|4@0+ (1,0) [0|0] "" A
"""
    db = cantools.database.load_string(text, database_format="dbc", strict=False)
    rng = np.random.default_rng(3)
    ids = np.array([1] * 20 + [2] * 3 + [3] * 3, dtype=np.uint32)
    data = rng.integers(0, 256, size=(26, 8), dtype=np.uint8)
    lengths = np.array([2] * 20 + [1] * 3 + [3] * 3, dtype=np.uint8)
    result = BatchDecoder(db).decode(ids, data, lengths)
    assert result.status[20:].tolist() == [STATUS_UNSUPPORTED] * 6
    for row in range(20, 26):
        with pytest.raises(cantools.database.errors.DecodeError, match="unpacking failed"):
            db.decode_message(int(ids[row]), bytes(data[row, :lengths[row]]),
                              decode_choices=False)
    assert list(result) == ["Cross"]
    assert (result["Cross"]["A"] == result["Cross"]["L1"]).all()
    kept = Frames(ids[:20], data[:20], lengths[:20])
    assert_same_as_cantools(db, kept, BatchDecoder(db).decode(kept.ids, kept.data,
                                                              kept.lengths))


def test_extended_ids_below_0x800_follow_cantools_lookup() -> None:
    low_ext = Message(frame_id=0x12, name="LowExt", length=1, is_extended_frame=True,
                      signals=[Signal("A", 0, 8)])
    std = Message(frame_id=0x12, name="Std", length=1, signals=[Signal("B", 0, 8)])
    db = Database(messages=[low_ext, std])
    frames = Frames(np.array([0x12, 0x80000012], dtype=np.uint32),
                    np.array([[5], [6]], dtype=np.uint8), np.array([1, 1], dtype=np.uint8))
    result = BatchDecoder(db).decode(frames.ids, frames.data, frames.lengths)
    # the plain id finds the standard frame, CAN_EFF_FLAG the extended one (cantools'
    # force_extended_id); before, the flag was masked off and the extended one never found
    assert result["Std"]["_row"].tolist() == [0] and result["LowExt"]["_row"].tolist() == [1]
    assert_same_as_cantools(db, frames, result)


def test_bad_input_shapes_raise_codec_error_naming_the_argument() -> None:
    decoder = BatchDecoder(_mux_db())
    with pytest.raises(CodecError, match="ids: expected a 1-D array"):
        decoder.decode(np.zeros((2, 2), dtype=np.uint32), np.zeros((2, 8), dtype=np.uint8))
    with pytest.raises(CodecError, match=r"data: expected shape \(2, W\)"):
        decoder.decode(np.zeros(2, dtype=np.uint32), np.zeros((3, 8), dtype=np.uint8))
    with pytest.raises(CodecError, match=r"lengths: expected shape \(2,\)"):
        decoder.decode(np.zeros(2, dtype=np.uint32), np.zeros((2, 8), dtype=np.uint8),
                       np.zeros(3, dtype=np.uint8))
    with pytest.raises(CodecError, match="ids: expected values in 0..0xFFFFFFFF"):
        decoder.decode(np.array([-1, 2]), np.zeros((2, 8), dtype=np.uint8))
    with pytest.raises(CodecError, match="data: expected byte values 0..255"):
        decoder.decode(np.array([1, 2]), np.full((2, 8), 300))


def test_plain_python_inputs_are_accepted() -> None:
    db = _mux_db()
    result = BatchDecoder(db).decode([0x10], [[1, 0, 0, 0, 0, 0, 0, 0]], [300])
    assert result.status.tolist() == [STATUS_OK]
    assert result["Std"]["Mux"].tolist() == [1.0]


@pytest.mark.skipif(NO_JIT, reason="needs the numba dispatchers (NUMBA_DISABLE_JIT is set)")
def test_every_input_layout_runs_the_same_compiled_kernels() -> None:
    from vehicle_io.codec import _kernels

    db = _mux_db()
    decoder = BatchDecoder(db)
    # A few rows take the one-call small-batch kernel, many rows the index + decode pair:
    # every layout of either size must reach one compiled signature of its kernels.
    for reps in (1, 100):  # 4 rows, 400 rows (> the small-batch limit)
        wide = np.zeros((4 * reps, 64), dtype=np.uint8)
        payloads = np.frombuffer(bytes(48 * reps), dtype=np.uint8).reshape(4 * reps, 12)  # read-only
        ids = np.tile(np.array([0x10, 0x10, 0x81ABCDEF, 7], dtype=np.uint32), reps)
        decoder.decode(ids, wide)
        decoder.decode(ids, payloads, np.tile(np.array([8, 8, 12, 0], dtype=np.uint8), reps))
        decoder.decode(ids[::-1], wide[:, ::2])  # non-contiguous, width 32
        decoder.decode(ids.astype(np.int64), wide[:, :5], [5] * (4 * reps))
        BatchDecoder(_single(Signal("A", 0, 8))).decode(ids, wide)  # another database
    assert len(_kernels.decode_batch.signatures) == 1
    assert len(_kernels.index_batch.signatures) == 1
    assert len(_kernels.decode_rows.signatures) == 1


def test_read_only_and_strided_inputs_decode_like_cantools() -> None:
    db = _mux_db()
    rng = np.random.default_rng(11)
    big = rng.integers(0, 256, size=(10, 24), dtype=np.uint8)
    ids = np.array([0x10] * 5 + [0x81ABCDEF] * 5, dtype=np.uint32)
    data = big[:, ::2]  # 12 bytes per row, not contiguous
    frozen = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8).reshape(10, 12)
    lengths = np.array([8] * 5 + [12] * 5, dtype=np.uint8)
    for view in (data, frozen):
        result = BatchDecoder(db).decode(ids, view, lengths)
        assert_same_as_cantools(db, Frames(ids, np.ascontiguousarray(view), lengths), result)


def test_kernel_constants_match_the_plan_layout() -> None:
    from vehicle_io.codec import _kernels, plan

    shared = [name for name in dir(_kernels) if name.startswith(("_STATUS_", "_KIND_", "_MODE_",
                                                                  "_FLAG_", "_MSGF_"))]
    assert len(shared) == 18
    for name in shared:
        assert getattr(_kernels, name) == getattr(plan, name[1:]), name


@settings(max_examples=examples(80, 12), deadline=None, suppress_health_check=SLOW_DATA)
@given(db=databases(overlapping=True), seed=st.integers(0, 2**32 - 1), n=st.integers(0, 40))
def test_loosely_loaded_databases_decode_like_cantools(db: Database, seed: int, n: int) -> None:
    # Real-world files that load only with strict=False: overlapping signals, signals past
    # the frame end. cantools decodes what its formats can unpack; the rest is UNSUPPORTED.
    frames = random_frames(db, seed, n)
    result = BatchDecoder(db).decode(frames.ids, frames.data, frames.lengths)
    assert_same_as_cantools(db, frames, result)
