"""BatchEncoder against cantools encode_message, and encoder -> decoder round trips."""

from __future__ import annotations

import math
import re
import random
import struct
from typing import Any

import cantools
import numpy as np
import pytest
from cantools.database.can import Database, Message, Signal
from cantools.database.conversion import BaseConversion
from codec_strategies import databases, examples, random_row
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vehicle_io import CodecError, EncodeRangeError
from vehicle_io.codec import STATUS_OK, BatchDecoder, BatchEncoder

SLOW_DATA = [HealthCheck.too_slow, HealthCheck.data_too_large]


def _cantools_bytes(message: Message, values: dict[str, Any]) -> bytes | None:
    """cantools' frame for exactly the signals its multiplexers select (None if it refuses)."""
    try:
        needed = message.gather_signals(values)
        return message.encode(dict(needed), strict=True)
    except Exception:  # EncodeError, bitstruct's OverflowError, round(nan)'s ValueError
        return None


def _column(values: list[Any]) -> np.ndarray:
    if all(isinstance(v, int) for v in values):
        arr = np.array(values, dtype=object)
        if all(-(2**63) <= v < 2**63 for v in values):
            return arr.astype(np.int64)
    return np.array([float(v) for v in values], dtype=np.float64)


@settings(max_examples=examples(120, 20), deadline=None, suppress_health_check=SLOW_DATA)
@given(db=databases(with_ranges=True), seed=st.integers(0, 2**32 - 1),
       k_rows=st.integers(2, 12))
def test_vector_encode_equals_cantools_row_by_row(db: Database, seed: int, k_rows: int) -> None:
    rnd = random.Random(seed)
    encoder = BatchEncoder(db)
    decoder = BatchDecoder(db)
    for message in db.messages:
        rows = [random_row(message, rnd) for _ in range(k_rows)]
        names = sorted({name for row in rows for name in row})
        if not names:
            continue  # nothing to give K by: encode() returns one frame (tested below)
        # Rows that do not select a signal get junk for it: it must be ignored.
        arrays = {name: _column([row[name] if name in row
                                 else next(r[name] for r in rows if name in r)
                                 for row in rows]) for name in names}
        as_seen = [{name: arrays[name][k].item() for name in row} for k, row in enumerate(rows)]
        expected = [_cantools_bytes(message, row) for row in as_seen]
        if any(frame is None for frame in expected):
            with pytest.raises((EncodeRangeError, CodecError)):
                encoder.encode(message.name, arrays)
            continue
        frames = encoder.encode(message.name, arrays)
        assert frames.dtype == np.uint8 and frames.shape == (k_rows, message.length)
        assert [bytes(f) for f in frames] == expected
        if message.is_extended_frame and message.frame_id <= 0x7FF:
            continue  # decode_message(id) cannot reach it: nothing to read back by id
        # Round trip: the decoder reads back what cantools reads from the same bytes.
        result = decoder.decode(np.full(k_rows, message.frame_id, dtype=np.uint32), frames)
        assert (result.status == STATUS_OK).all()
        for k, frame in enumerate(expected):
            want = db.decode_message(message.frame_id, frame, decode_choices=False)
            for name, value in want.items():
                got = result[message.name][name][k]
                assert got == value or (math.isnan(got) and math.isnan(value)), (name, got, value)


@settings(max_examples=examples(120, 20), deadline=None, suppress_health_check=SLOW_DATA)
@given(db=databases(with_ranges=True), seed=st.integers(0, 2**32 - 1))
def test_single_frame_encode_equals_cantools(db: Database, seed: int) -> None:
    rnd = random.Random(seed)
    encoder = BatchEncoder(db)
    for message in db.messages:
        row = random_row(message, rnd)
        expected = _cantools_bytes(message, row)
        if expected is None:
            with pytest.raises((EncodeRangeError, CodecError)):
                encoder.encode_one(message.name, **row)
            with pytest.raises((EncodeRangeError, CodecError)):
                encoder.encode(message.name, row)
            continue
        assert encoder.encode_one(message.name, **row) == expected
        frames = encoder.encode(message.name, row)
        assert frames.shape == (1, message.length) and bytes(frames[0]) == expected


def _db() -> Database:
    text = """VERSION ""

BU_: A

BO_ 16 Cmd: 8 A
 SG_ Mode M : 0|2@1+ (1,0) [0|3] "" A
 SG_ Speed : 15|16@0- (0.01,0) [-100|100] "m/s" A
 SG_ Gear m0 : 32|3@1+ (1,0) [0|0] "" A
 SG_ Angle m1 : 32|12@1- (0.1,0) [-90|90] "deg" A
 SG_ Torque m1 : 44|10@1+ (2,-500) [0|0] "Nm" A
 SG_ Ratio : 56|8@1+ (0.5,0) [0|0] "" A

BO_ 17 Flt: 8 A
 SG_ F32 : 0|32@1- (1,0) [0|0] "" A
 SG_ F16 : 32|16@1+ (1,0) [0|0] "" A

SIG_VALTYPE_ 17 F32 : 1;

VAL_ 16 Gear 0 "P" 1 "R" 2 "N" 3 "D" ;
"""
    db = cantools.database.load_string(text, database_format="dbc")
    flt = db.get_message_by_name("Flt")
    # DBC text cannot say float16; build it directly as any cantools Signal.
    flt.signals[1].conversion = BaseConversion.factory(is_float=True)
    flt.refresh()
    return db


def test_encode_one_matches_cantools_with_choice_names_and_half_even_rounding() -> None:
    db = _db()
    encoder = BatchEncoder(db)
    for values in (
        {"Mode": 0, "Speed": 12.345, "Gear": "D", "Ratio": 2.5},
        {"Mode": 0, "Speed": -0.005, "Gear": 2, "Ratio": 0.25},  # 0.25 / 0.5 = 0.5 -> 0
        {"Mode": 0, "Speed": 0.015, "Gear": 1, "Ratio": 0.75},  # 1.5 -> 2
        {"Mode": 1, "Speed": 99.99, "Angle": -12.35, "Torque": 0, "Ratio": 1},
    ):
        assert encoder.encode_one("Cmd", **values) == db.encode_message("Cmd", values)


def test_vector_encode_selects_branches_per_row_and_round_trips() -> None:
    db = _db()
    encoder = BatchEncoder(db)
    modes = np.array([0, 1, 1, 0, 1])
    frames = encoder.encode("Cmd", {
        "Mode": modes,
        "Speed": np.array([1.0, -2.5, 3.25, 0.0, 100.0]),
        "Gear": np.array([3, 0, 0, 1, 0]),  # ignored where Mode is 1
        "Angle": np.array([math.nan, 10.0, -90.0, math.nan, 0.1]),  # ignored where Mode is 0
        "Torque": np.array([0, 100, -500, 0, 1546]),
        "Ratio": 1.5,  # a scalar is broadcast to every row
    })
    for k in range(5):
        values = {"Mode": int(modes[k]), "Speed": [1.0, -2.5, 3.25, 0.0, 100.0][k],
                  "Ratio": 1.5}
        if modes[k] == 0:
            values["Gear"] = [3, 0, 0, 1, 0][k]
        else:
            values["Angle"] = [math.nan, 10.0, -90.0, math.nan, 0.1][k]
            values["Torque"] = [0, 100, -500, 0, 1546][k]
        assert bytes(frames[k]) == db.encode_message("Cmd", values)
    decoded = BatchDecoder(db).decode(np.full(5, 16, dtype=np.uint32), frames)["Cmd"]
    assert decoded["Mode"].tolist() == modes.tolist()
    assert decoded["Torque"][modes == 1].tolist() == [100.0, -500.0, 1546.0]
    assert np.isnan(decoded["Torque"][modes == 0]).all()


def test_missing_unknown_and_bad_multiplexer_signals_raise_codec_error() -> None:
    encoder = BatchEncoder(_db())
    with pytest.raises(CodecError, match='signal "Gear" is required'):
        encoder.encode_one("Cmd", Mode=0, Speed=1.0, Ratio=1)
    with pytest.raises(CodecError, match='signal "Torque" is required'):
        encoder.encode("Cmd", {"Mode": [0, 1], "Speed": [1.0, 2.0], "Gear": [1, 1],
                               "Angle": [0.0, 0.0], "Ratio": [1, 1]})
    with pytest.raises(CodecError, match="expected one of its signals, but got 'Sped'"):
        encoder.encode_one("Cmd", Mode=0, Sped=1.0, Gear=1, Ratio=1)
    with pytest.raises(CodecError, match=r'multiplexer "Mode" to be one of \{0, 1\}, but got 3'):
        encoder.encode_one("Cmd", Mode=3, Speed=1.0, Ratio=1)
    with pytest.raises(CodecError, match=r'row 1.*multiplexer "Mode"'):
        encoder.encode("Cmd", {"Mode": [0, 2], "Speed": [1.0, 2.0], "Gear": [1, 1],
                               "Ratio": [1, 1]})
    with pytest.raises(CodecError, match="expected a message name"):
        encoder.encode_one("NoSuchMessage")
    with pytest.raises(CodecError, match="expected 2 values like the other signals"):
        encoder.encode("Cmd", {"Mode": [0, 0], "Speed": [1.0, 2.0, 3.0], "Gear": 1,
                               "Ratio": 1})


@pytest.mark.parametrize("vector", [False, True])
def test_out_of_range_values_raise_or_clamp(vector: bool) -> None:
    db = _db()
    encoder = BatchEncoder(db)
    decoder = BatchDecoder(db)

    def encode(strict: bool = True, **values: Any) -> bytes:
        if vector:
            arrays = {k: np.array([v, v]) for k, v in values.items()}
            frames = encoder.encode("Cmd", arrays, strict=strict)
            assert bytes(frames[0]) == bytes(frames[1])
            return bytes(frames[0])
        return encoder.encode_one("Cmd", strict=strict, **values)

    base = {"Mode": 1, "Angle": 0.0, "Torque": 0, "Ratio": 1}
    # DBC range [-100, 100]: refused in strict mode, encoded as is otherwise.
    with pytest.raises(EncodeRangeError, match=r'"Speed".*\[-100, 100\], but got 150\.0'):
        encode(Speed=150.0, **base)
    loose = encode(strict=False, Speed=150.0, **base)
    assert loose == db.encode_message("Cmd", {**base, "Speed": 150.0}, strict=False)
    # Raw range of a 12-bit signed Angle (no DBC range problem: -90..90 allows 100 only
    # within tolerance, so use Torque: 10 bits unsigned, (2, -500) -> -500 .. 1546).
    with pytest.raises(EncodeRangeError, match=r'"Torque".*\[-500, 1546\].*but got 1548'):
        encode(Speed=0.0, **{**base, "Torque": 1548})
    clamped = encode(strict=False, Speed=0.0, **{**base, "Torque": 1548})
    low = encode(strict=False, Speed=0.0, **{**base, "Torque": -10**6})
    data = np.frombuffer(clamped + low, dtype=np.uint8).reshape(2, 8)
    torque = decoder.decode(np.array([16, 16], dtype=np.uint32), data)["Cmd"]["Torque"]
    assert torque.tolist() == [1546.0, -500.0]
    for strict in (True, False):
        with pytest.raises(EncodeRangeError, match='"Ratio".*expected a number'):
            encode(strict=strict, Speed=0.0, **{**base, "Ratio": math.nan})


@pytest.mark.parametrize("vector", [False, True])
def test_float_signals_overflow_is_refused_or_clamped_to_the_largest_finite(
        vector: bool) -> None:
    db = _db()
    encoder = BatchEncoder(db)

    def encode(strict: bool, **values: float) -> bytes:
        if vector:
            return bytes(encoder.encode("Flt", {k: np.array([v] * 3) for k, v in values.items()},
                                        strict=strict)[2])
        return encoder.encode_one("Flt", strict=strict, **values)

    with pytest.raises(EncodeRangeError, match='"F32"'):
        encode(True, F32=1e39, F16=0.0)
    with pytest.raises(EncodeRangeError, match='"F16"'):
        encode(True, F32=0.0, F16=-70000.0)
    frame = encode(False, F32=-1e39, F16=1e10)
    assert struct.unpack("<f", frame[:4])[0] == -3.4028234663852886e38
    assert struct.unpack("<e", frame[4:6])[0] == 65504.0
    # Values that round to the largest finite value are in range, as in struct/bitstruct.
    frame = encode(True, F32=3.4028235e38, F16=65519.0)
    assert frame == db.encode_message("Flt", {"F32": 3.4028235e38, "F16": 65519.0})
    frame = encode(True, F32=-0.0, F16=math.inf)
    assert frame == db.encode_message("Flt", {"F32": -0.0, "F16": math.inf})


def test_integer_inputs_beyond_2_pow_53_are_exact() -> None:
    signal = Signal("Big", 0, 64, conversion=BaseConversion.factory())
    signed = Signal("SBig", 0, 64, is_signed=True, conversion=BaseConversion.factory(3, 1))
    db = Database(messages=[Message(frame_id=1, name="U", length=8, signals=[signal]),
                            Message(frame_id=2, name="S", length=8, signals=[signed])])
    encoder = BatchEncoder(db)
    values = np.array([2**64 - 1, 2**53 + 1, 0, 2**63 + 12345], dtype=np.uint64)
    frames = encoder.encode("U", {"Big": values})
    assert [int.from_bytes(bytes(f), "little") for f in frames] == [int(v) for v in values]
    raws = [-(2**61) + 7, 2**60 + 1, -1]
    physical = [3 * r + 1 for r in raws]
    frames = encoder.encode("S", {"SBig": np.array(physical, dtype=np.int64)})
    assert [bytes(f) for f in frames] == [db.encode_message("S", {"SBig": p}) for p in physical]
    with pytest.raises(EncodeRangeError, match='"Big"'):
        encoder.encode("U", {"Big": np.array([-1, 2])})


def test_empty_batch_gives_no_frames() -> None:
    frames = BatchEncoder(_db()).encode("Flt", {"F32": np.zeros(0), "F16": np.zeros(0)})
    assert frames.shape == (0, 8) and frames.dtype == np.uint8


@settings(max_examples=examples(60, 10), deadline=None, suppress_health_check=SLOW_DATA)
@given(db=databases(with_ranges=True, overlapping=True), seed=st.integers(0, 2**32 - 1))
def test_loosely_loaded_databases_encode_like_cantools(db: Database, seed: int) -> None:
    # strict=False layouts: where cantools' formats fit the frame (a big- and a little-endian
    # signal may share bits) the bytes equal cantools'; where they do not, cantools packs
    # shifted garbage (or fails) and the encoder refuses the message, saying why.
    rnd = random.Random(seed)
    encoder = BatchEncoder(db)
    unsupported = BatchDecoder(db).unsupported
    for message in db.messages:
        row = random_row(message, rnd)
        if message.name in unsupported:
            with pytest.raises(CodecError, match=f'"{message.name}" cannot be encoded: '
                                                 f'{re.escape(unsupported[message.name])}'):
                encoder.encode_one(message.name, **row)
            continue
        expected = _cantools_bytes(message, row)
        if expected is None:
            with pytest.raises((EncodeRangeError, CodecError)):
                encoder.encode_one(message.name, **row)
            continue
        assert encoder.encode_one(message.name, **row) == expected
