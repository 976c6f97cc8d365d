"""The codec on the bundled Z10 DBCs: every message round-trips and matches cantools."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
from codec_strategies import assert_same_as_cantools, random_frames, random_row

from vehicle_io.codec import STATUS_OK, BatchDecoder, BatchEncoder

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(not (REPO / "dbc" / "z10_pt.dbc").exists(),
                                reason="the bundled Z10 DBCs are not written yet")


@pytest.fixture(scope="module")
def db():
    from vehicle_io import load_database

    return load_database()


@pytest.fixture(scope="module")
def bus_dbs(db):
    from vehicle_io.dbc import split_by_bus

    return split_by_bus(db)


def test_bundled_set_is_what_the_codec_must_cover(db) -> None:
    assert {m.bus_name for m in db.messages} >= {"pt", "body", "ads"}
    assert any(m.is_multiplexed() for m in db.messages)
    assert any(m.length == 64 for m in db.messages)
    decoder = BatchDecoder(db)
    reachable = {m.name for m in db.messages} - {"DiagFuncReq_PT", "DiagFuncReq_Body"}
    assert reachable <= set(decoder.message_names)


@pytest.mark.parametrize("bus", ["pt", "body", "ads"])
def test_every_message_round_trips_and_matches_cantools(bus_dbs, bus: str) -> None:
    db = bus_dbs[bus]
    encoder = BatchEncoder(db)
    decoder = BatchDecoder(db)
    rnd = random.Random(bus)
    for message in db.messages:
        rows = [random_row(message, rnd) for _ in range(12)]
        expected = [db.encode_message(message.name, dict(message.gather_signals(row)))
                    for row in rows]
        assert encoder.encode_one(message.name, **rows[0]) == expected[0]
        names = sorted({name for row in rows for name in row})
        if not names:
            assert bytes(encoder.encode(message.name, {})[0]) == expected[0]
            continue
        arrays = {name: np.array([float(row.get(name, 0)) for row in rows]) for name in names}
        same_values = [{n: arrays[n][k].item() for n in row} for k, row in enumerate(rows)]
        expected = [db.encode_message(message.name, dict(message.gather_signals(row)))
                    for row in same_values]
        frames = encoder.encode(message.name, arrays)
        assert [bytes(f) for f in frames] == expected
        result = decoder.decode(np.full(len(rows), message.frame_id, dtype=np.uint32), frames)
        assert (result.status == STATUS_OK).all()
        for k, frame in enumerate(expected):
            want = db.decode_message(message.frame_id, frame, decode_choices=False)
            got = result[message.name]
            for name in got:
                if name == "_row":
                    continue
                if name in want:
                    assert got[name][k] == want[name], (message.name, name)
                else:
                    assert math.isnan(got[name][k]), (message.name, name)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_frames_on_the_merged_and_per_bus_databases(db, bus_dbs, seed: int) -> None:
    for database in (db, *bus_dbs.values()):
        frames = random_frames(database, seed, 3000)
        result = BatchDecoder(database).decode(frames.ids, frames.data, frames.lengths)
        assert_same_as_cantools(database, frames, result)
