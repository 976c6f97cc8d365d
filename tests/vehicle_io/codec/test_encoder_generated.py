"""The generated per-message scalar encoders agree with the general scalar path and cantools."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vehicle_io import load_database
from vehicle_io.codec import BatchEncoder
from vehicle_io.errors import CodecError

DB = load_database()
ENC = BatchEncoder(DB)
GENERATED = [m.name for m in DB.messages if ENC._plan(m.name).scalar_fn is not None]


def test_most_bundled_messages_get_a_generated_encoder() -> None:
    assert len(GENERATED) >= len(DB.messages) // 2
    for name in GENERATED:
        assert ENC._plan(name).scalar_count == len(DB.get_message_by_name(name).signals)


def _value(signal, draw_frac: float, mode: int) -> float | int:
    lo = -1e4 if signal.minimum is None else float(signal.minimum)
    hi = 1e4 if signal.maximum is None else float(signal.maximum)
    if mode == 0:
        return int(math.floor(lo + (hi - lo) * draw_frac))
    if mode == 1:
        return lo + (hi - lo) * draw_frac
    if mode == 2:
        return hi + abs(signal.scale) * (1 + draw_frac)  # above the range
    if mode == 3:
        return float("nan")
    return lo - abs(signal.scale) * (1 + draw_frac)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(GENERATED), st.data())
def test_generated_equals_general_path_and_cantools(name: str, data) -> None:
    msg = DB.get_message_by_name(name)
    values = {}
    for s in msg.signals:
        mode = data.draw(st.sampled_from([0, 1, 1, 1, 2, 3, 4]) if data.draw(st.booleans()) else st.just(1))
        values[s.name] = _value(s, data.draw(st.floats(0.0, 1.0)), mode)
    plan = ENC._plan(name)
    try:
        want: object = ENC._encode_scalar(plan, dict(values), True)
    except CodecError as err:
        want = (type(err), str(err))
    try:
        got: object = ENC.encode_one(name, **values)
    except CodecError as err:
        got = (type(err), str(err))
    assert got == want
    if isinstance(got, bytes):
        assert got == msg.encode(values, strict=True)


def test_missing_and_unknown_signals_still_raise() -> None:
    name = GENERATED[0]
    msg = DB.get_message_by_name(name)
    values = {s.name: 0 for s in msg.signals}
    values.pop(msg.signals[0].name)
    with pytest.raises(CodecError, match="required for encoding"):
        ENC.encode_one(name, **values)
    values[msg.signals[0].name] = 0
    with pytest.raises(CodecError, match="expected one of its signals"):
        ENC.encode_one(name, **values, Bogus_Signal_X=1)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(GENERATED), st.data())
def test_public_scalar_encoder_gives_encode_ones_frame_or_declines(name: str, data) -> None:
    fn, count = ENC.scalar_encoder(name)
    msg = DB.get_message_by_name(name)
    assert fn is not None and count == len(msg.signals)
    inside = data.draw(st.booleans())
    values = {}
    for s in msg.signals:  # every value inside its range, or one or more outside / NaN
        mode = data.draw(st.sampled_from([0, 1])) if inside else data.draw(st.sampled_from([0, 1, 2, 3, 4]))
        values[s.name] = _value(s, data.draw(st.floats(0.0, 1.0)), mode)
    got = fn(dict(values))
    try:
        want: bytes | None = ENC.encode_one(name, **values)
    except CodecError:
        want = None
    if inside:  # plain numbers inside every range: the generated encoder takes them
        assert got is not None and got == want
    elif got is not None:  # whatever it takes, it encodes as encode_one does
        assert got == want
    if want is None:  # what encode_one refuses, it never encodes
        assert got is None


def test_scalar_encoder_of_a_multiplexed_or_unknown_message() -> None:
    muxed = next(m.name for m in DB.messages if any(s.is_multiplexer for s in m.signals))
    assert ENC.scalar_encoder(muxed) == (None, -1)
    with pytest.raises(CodecError, match="NoSuchMessage"):
        ENC.scalar_encoder("NoSuchMessage")
