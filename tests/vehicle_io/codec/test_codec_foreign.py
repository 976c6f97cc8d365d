"""The codec on layouts real-world DBC files have and the random databases do not.

The hypothesis databases are strict (cantools checks them): no overlapping signals, and
values handed over as numpy numbers. Files from the field load only with ``strict=False``
(reverse-engineered layouts overlap) and have signals whose physical values are Python ints
beyond 64 bits. Every expectation here comes from cantools on the same database.
"""

from __future__ import annotations

import random

import cantools
import numpy as np
import pytest
from cantools.database.can import Database

from vehicle_io import CodecError
from vehicle_io.codec import STATUS_OK, STATUS_UNSUPPORTED, BatchDecoder, BatchEncoder

# Branch 1 of Ov has two overlapping little-endian signals: cantools (strict=False) cannot
# unpack it, and what it packs for it is wrong (the bits land shifted, the multiplexer is
# lost); branch 2 is an ordinary layout.
_OVERLAPPING_BRANCH = """VERSION ""

BU_: A

BO_ 106 Ov: 8 A
 SG_ M M : 0|8@1+ (1,0) [0|0] "" A
 SG_ x m1 : 8|16@1+ (1,0) [0|0] "" A
 SG_ y m1 : 16|16@1+ (1,0) [0|0] "" A
 SG_ z m2 : 8|8@1+ (1,0) [0|0] "" A
 SG_ k : 56|8@1- (0.5,3) [0|0] "" A
"""

# A 64-bit signal with an integer scale: physical values reach beyond int64 and uint64.
_WIDE = """VERSION ""

BU_: A

BO_ 202 Wide: 9 A
 SG_ W M : 71|8@0- (1,0) [0|0] "" A
 SG_ s64be m0 : 7|64@0- (3,7) [0|0] "" A
 SG_ u64 m1 : 0|64@1+ (5,-2) [0|0] "" A
"""


def _load(text: str) -> Database:
    return cantools.database.load_string(text, database_format="dbc", strict=False)


def test_overlapping_branch_is_refused_only_for_its_rows() -> None:
    db = _load(_OVERLAPPING_BRANCH)
    with pytest.raises(Exception):
        cantools.database.load_string(_OVERLAPPING_BRANCH, database_format="dbc")
    encoder = BatchEncoder(db)
    good = {"M": 2, "z": 117, "k": -4.5}
    assert encoder.encode_one("Ov", **good) == db.encode_message("Ov", good)
    with pytest.raises(CodecError, match='multiplexer branch M=1 cannot be encoded: signals "x" '
                                         'and "y" overlap'):
        encoder.encode_one("Ov", M=1, x=5, y=6, k=0)
    rows = {"M": np.array([2, 2, 2]), "z": np.array([1, 2, 3]), "x": 0, "y": 0,
            "k": np.array([3.0, 0.5, 10.0])}
    frames = encoder.encode("Ov", rows)
    for i in range(3):
        values = {"M": 2, "z": i + 1, "k": float(rows["k"][i])}
        assert bytes(frames[i]) == db.encode_message("Ov", values)
    rows["M"] = np.array([2, 1, 2])
    with pytest.raises(CodecError, match=r"branch M=1 cannot be encoded.*\(row 1\)"):
        encoder.encode("Ov", rows)

    # Decoding: the good branch equals cantools, the other is UNSUPPORTED where cantools raises.
    rnd = random.Random(3)
    payloads = [bytes([m] + [rnd.randrange(256) for _ in range(7)]) for m in (1, 2, 2, 1, 2)]
    result = BatchDecoder(db).decode(np.full(5, 106, dtype=np.uint32),
                                     np.frombuffer(b"".join(payloads), np.uint8).reshape(5, 8))
    for i, payload in enumerate(payloads):
        if payload[0] == 1:
            with pytest.raises(Exception):
                db.decode_message(106, payload, decode_choices=False)
            assert result.status[i] == STATUS_UNSUPPORTED
            continue
        assert result.status[i] == STATUS_OK
        expected = db.decode_message(106, payload, decode_choices=False)
        entry = result["Ov"]
        pos = entry["_row"].tolist().index(i)
        for name in ("M", "z", "k"):
            assert entry[name][pos] == float(expected[name])
        assert np.isnan(entry["x"][pos]) and np.isnan(entry["y"][pos])


def test_python_ints_beyond_64_bits_encode_exactly_in_a_batch() -> None:
    db = _load(_WIDE)
    encoder = BatchEncoder(db)
    rnd = random.Random(5)
    rows = []
    for _ in range(12):
        mux = rnd.randrange(2)
        payload = bytearray(rnd.randrange(256) for _ in range(9))
        payload[8] = mux
        rows.append(db.decode_message(202, bytes(payload), decode_choices=False))
    for mux, name in ((0, "s64be"), (1, "u64")):
        picked = [r for r in rows if r["W"] == mux]
        values = [r[name] for r in picked]
        assert any(abs(v) >= 1 << 64 for v in values) or mux == 1
        # numpy would make these float64 (inexact): an object array keeps the Python ints.
        frames = encoder.encode("Wide", {"W": np.array([mux] * len(picked), dtype=object),
                                         name: np.array(values, dtype=object)})
        for frame, r in zip(frames, picked):
            assert bytes(frame) == db.encode_message("Wide", {"W": mux, name: r[name]})
    with pytest.raises(CodecError, match='signal "u64" of message "Wide": expected numbers, '
                                         "but got str 'x'"):
        encoder.encode("Wide", {"W": [1, 1], "u64": np.array([1, "x"], dtype=object)})


def test_object_arrays_of_small_numbers_take_the_numpy_path() -> None:
    db = _load(_OVERLAPPING_BRANCH)
    encoder = BatchEncoder(db)
    frames = encoder.encode("Ov", {"M": np.array([2, 2], dtype=object),
                                   "z": np.array([7, 8.0], dtype=object),
                                   "k": np.array([1.5, 2], dtype=object)})
    assert bytes(frames[0]) == db.encode_message("Ov", {"M": 2, "z": 7, "k": 1.5})
    assert bytes(frames[1]) == db.encode_message("Ov", {"M": 2, "z": 8.0, "k": 2})


@pytest.mark.parametrize(("layout", "reason"), [
    (' SG_ a : 0|16@1+ (1,0) [0|0] "" A\n SG_ b : 8|16@1+ (1,0) [0|0] "" A\n',
     'signals "a" and "b" overlap'),
    (' SG_ a : 7|16@0+ (1,0) [0|0] "" A\n SG_ b : 15|8@0- (1,0) [0|0] "" A\n',
     'signals "a" and "b" overlap'),
    (' SG_ a : 24|16@1+ (1,0) [0|0] "" A\n', 'signal "a" ends past the 4-byte frame'),
    (' SG_ a : 31|16@0+ (1,0) [0|0] "" A\n', 'signal "a" ends past the 4-byte frame'),
])
def test_a_message_cantools_cannot_pack_names_the_signals(layout: str, reason: str) -> None:
    db = _load(f'VERSION ""\n\nBU_: A\n\nBO_ 5 Bad: 4 A\n{layout}')
    with pytest.raises(CodecError, match=f'message "Bad" cannot be encoded: {reason}'):
        BatchEncoder(db).encode_one("Bad", a=1, **({"b": 1} if " b " in layout else {}))
    # ... and cantools cannot decode it either: the decoder reports the row as unsupported.
    with pytest.raises(Exception):
        db.decode_message(5, bytes(4))
    assert BatchDecoder(db).decode(np.array([5], np.uint32), np.zeros((1, 4), np.uint8)).status[0] \
        == STATUS_UNSUPPORTED


def test_a_signal_named_like_the_row_key_costs_only_its_message() -> None:
    db = _load('VERSION ""\n\nBU_: A\n\nBO_ 1 Odd: 1 A\n SG_ _row : 0|8@1+ (1,0) [0|0] "" A\n\n'
               'BO_ 2 Fine: 1 A\n SG_ v : 0|8@1+ (1,0) [0|0] "" A\n')
    decoder = BatchDecoder(db)  # the whole database is not refused
    result = decoder.decode(np.array([1, 2], np.uint32), np.array([[7], [9]], np.uint8))
    assert result.status.tolist() == [STATUS_UNSUPPORTED, STATUS_OK]
    assert list(result) == ["Fine"] and result["Fine"]["v"].tolist() == [9.0]
    assert db.decode_message(2, b"\x09") == {"v": 9}
    assert decoder.unsupported == {
        "Odd": 'it has a signal named "_row" (the result key reserved for row indices)'}
