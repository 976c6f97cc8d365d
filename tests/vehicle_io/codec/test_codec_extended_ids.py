"""Bit 31 of an id (CAN_EFF_FLAG) selects the extended-frame table, as cantools' lookup does.

An extended frame with a small id (J1939-style 0x00000003, cantools' fd_test.dbc) is its own
frame, not the standard frame with the same number: ``BatchDecoder`` gives what
``db.decode_message(id & 0x1FFFFFFF, data, force_extended_id=bool(id & CAN_EFF_FLAG))`` gives.
"""

from __future__ import annotations

import numpy as np
import pytest
from cantools.database.can import Database, Message, Signal

from vehicle_io.codec import STATUS_OK, STATUS_UNKNOWN_ID, BatchDecoder

EFF = 0x8000_0000


def _db(*messages: tuple[int, bool, str]) -> Database:
    return Database(messages=[
        Message(frame_id=fid, name=name, length=8, is_extended_frame=ext,
                signals=[Signal(name=f"{name}_V", start=0, length=16)])
        for fid, ext, name in messages
    ])


@pytest.mark.parametrize("messages", [
    [(3, False, "Std3"), (3, True, "Ext3")],  # both, one number
    [(3, True, "Ext3")],                      # extended only
    [(3, False, "Std3")],                     # standard only
    [(0x7FF, True, "Ext7FF"), (0x800, True, "Ext800"), (0x7FF, False, "Std7FF")],
])
def test_eff_flag_selects_the_table_like_cantools(messages: list[tuple[int, bool, str]]) -> None:
    db = _db(*messages)
    ids = sorted({fid for fid, _, _ in messages} | {0x7FF, 0x800, 3, 4})
    raw = np.array([i | flag for i in ids for flag in (0, EFF)], dtype=np.uint32)
    data = np.zeros((raw.shape[0], 8), dtype=np.uint8)
    data[:, 0] = np.arange(raw.shape[0])
    result = BatchDecoder(db).decode(raw, data)
    found = {int(r): name for name, cols in result.items() for r in cols["_row"]}
    for row, ident in enumerate(raw.tolist()):
        try:
            expected = db.decode_message(ident & 0x1FFF_FFFF, bytes(data[row]), decode_choices=False,
                                         force_extended_id=bool(ident & EFF))
        except KeyError:
            assert result.status[row] == STATUS_UNKNOWN_ID, hex(ident)
            continue
        assert result.status[row] == STATUS_OK, hex(ident)
        name = found[row]
        message = db.get_message_by_name(name)
        assert message.is_extended_frame == bool(ident & EFF or ident & 0x1FFF_FFFF > 0x7FF), hex(ident)
        k = int(np.flatnonzero(result[name]["_row"] == row)[0])
        assert result[name][f"{name}_V"][k] == expected[f"{name}_V"]
