"""BatchEncoder.patch_one: a frame with some signals re-encoded equals encoding all values anew."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vehicle_io import load_database
from vehicle_io.codec import BatchEncoder
from vehicle_io.errors import CodecError, EncodeRangeError

DB = load_database()
ENC = BatchEncoder(DB)
PLAIN = [m.name for m in DB.messages
         if m.signals and not m.is_multiplexed() and ENC._plan(m.name).root is not None]
MUXED = [m.name for m in DB.messages if m.is_multiplexed() and ENC._plan(m.name).root is not None]


def _in_range(signal, frac: float) -> float | int:
    lo = -1e4 if signal.minimum is None else float(signal.minimum)
    hi = 1e4 if signal.maximum is None else float(signal.maximum)
    x = lo + (hi - lo) * frac
    if signal.is_float:
        return x
    return round((x - signal.offset) / signal.scale) * signal.scale + signal.offset if frac < 0.5 else x


def _values(msg, fracs: list[float]) -> dict[str, float | int]:
    return {s.name: _in_range(s, f) for s, f in zip(msg.signals, fracs)}


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(PLAIN), st.data())
def test_patch_equals_encoding_the_merged_values(name: str, data) -> None:
    msg = DB.get_message_by_name(name)
    n = len(msg.signals)
    old = _values(msg, data.draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))
    new_all = _values(msg, data.draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))
    chosen = data.draw(st.sets(st.sampled_from([s.name for s in msg.signals]), min_size=1))
    new = {k: new_all[k] for k in chosen}
    try:
        base = ENC.encode_one(name, **old)
        want: object = ENC.encode_one(name, **{**old, **new})
    except EncodeRangeError:
        return  # a value rounding just outside its range: not what this test is about
    got = ENC.patch_one(name, base, **new)
    assert got == want
    assert got == msg.encode({**old, **new}, strict=True)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(PLAIN), st.data())
def test_patch_raises_what_encoding_raises(name: str, data) -> None:
    msg = DB.get_message_by_name(name)
    signal = data.draw(st.sampled_from(msg.signals))
    base = ENC.encode_one(name, **{s.name: _in_range(s, 0.5) for s in msg.signals})
    hi = 1e4 if signal.maximum is None else float(signal.maximum)
    bad = data.draw(st.sampled_from([math.nan, hi + abs(signal.scale) * 3, "no such choice", None]))
    if signal.is_float and isinstance(bad, float):
        return  # floats: NaN and beyond-range handling belong to the general encoder tests
    values = {s.name: _in_range(s, 0.5) for s in msg.signals}
    values[signal.name] = bad
    with pytest.raises(CodecError) as want:
        ENC._encode_scalar(ENC._plan(name), values, True)
    with pytest.raises(CodecError) as got:
        ENC.patch_one(name, base, **{signal.name: bad})
    if bad is not None:  # None: encode_one says "missing", patch_one "expected a number"
        assert (type(got.value), str(got.value)) == (type(want.value), str(want.value))


def test_patch_refuses_wrong_lengths_unknown_and_multiplexed_signals() -> None:
    name = PLAIN[0]
    msg = DB.get_message_by_name(name)
    base = ENC.encode_one(name, **{s.name: _in_range(s, 0.5) for s in msg.signals})
    with pytest.raises(CodecError, match=f"expected a frame of {msg.length} bytes, but got {msg.length + 1}"):
        ENC.patch_one(name, base + b"\0", **{msg.signals[0].name: 0})
    with pytest.raises(CodecError, match="expected one of its signals, but got 'Bogus_X'"):
        ENC.patch_one(name, base, Bogus_X=1)
    assert ENC.patch_one(name, base) == base
    if MUXED:
        mux = DB.get_message_by_name(MUXED[0])
        branch = next(s for s in mux.signals if s.multiplexer_ids)
        with pytest.raises(CodecError, match="expected a signal outside multiplexer branches"):
            ENC.patch_one(mux.name, bytes(mux.length), **{branch.name: 0})


MIXED_DBC = """VERSION ""
NS_ :
BS_:
BU_: ECU
BO_ 16 Mixed: 8 ECU
 SG_ Mix_Le : 0|12@1+ (0.5,-10) [-10|2037.5] "" ECU
 SG_ Mix_Be : 23|16@0- (0.1,0) [-3276.8|3276.7] "" ECU
 SG_ Mix_Be2 : 39|5@0+ (1,0) [0|31] "" ECU
 SG_ Mix_Le2 : 40|24@1- (1,0) [-8388608|8388607] "" ECU
"""


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_patch_mixes_motorola_and_intel_signals(data) -> None:
    import cantools

    db = cantools.database.load_string(MIXED_DBC, database_format="dbc")
    enc = BatchEncoder(db)
    msg = db.get_message_by_name("Mixed")
    old = _values(msg, data.draw(st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4)))
    new_all = _values(msg, data.draw(st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4)))
    order = data.draw(st.permutations([s.name for s in msg.signals]))
    new = {k: new_all[k] for k in order[: data.draw(st.integers(1, 4))]}
    got = enc.patch_one("Mixed", enc.encode_one("Mixed", **old), **new)
    assert got == msg.encode({**old, **new}, strict=True)
