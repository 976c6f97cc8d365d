"""The Parquet schema of one message: timestamp, bus, one float64 column per signal.

Signal columns are float64 and never null: a multiplexed signal that a frame does not
carry is NaN. Enum signals stay numeric (their raw value, as the codec decodes with
``decode_choices=False``); what the numbers mean travels in field-level metadata, so a
reader of the dataset needs no DBC: ``unit``, ``choices`` (JSON ``{"value": "name"}``),
``scale``, ``offset``, ``minimum``, ``maximum``, ``multiplexer`` (the selecting signal and
its values), ``comment``. Schema-level metadata names the message, its frame id and bus.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

#: Bumped when the layout of a part file changes (also part of the settings hash).
#: 2: signal columns are non-nullable, data pages are Parquet v2.
FORMAT_VERSION = "2"

TIMESTAMP = "timestamp"
BUS = "bus"
BUS_TYPE = pa.dictionary(pa.int32(), pa.string())


def _number(value: Any) -> str | None:
    return None if value is None else repr(float(value))


def signal_metadata(signal: Any) -> dict[str, str]:
    """Field metadata of one cantools signal (only keys with a value)."""
    meta: dict[str, str | None] = {
        "unit": signal.unit or None,
        "choices": json.dumps({str(int(k)): str(v) for k, v in signal.choices.items()}) if signal.choices else None,
        "scale": _number(signal.scale),
        "offset": _number(signal.offset),
        "minimum": _number(signal.minimum),
        "maximum": _number(signal.maximum),
        "comment": signal.comment or None,
        "is_multiplexer": "true" if signal.is_multiplexer else None,
    }
    if signal.multiplexer_ids:
        meta["multiplexer"] = json.dumps({"signal": signal.multiplexer_signal,
                                          "values": [int(v) for v in signal.multiplexer_ids]})
    return {k: v for k, v in meta.items() if v is not None}


def message_schema(message: Any, dbc_digest: str) -> pa.Schema:
    """The Arrow schema of ``message``'s part files."""
    fields = [
        pa.field(TIMESTAMP, pa.float64(), nullable=False, metadata={"unit": "s", "comment": "log time, Unix seconds"}),
        pa.field(BUS, BUS_TYPE, nullable=False, metadata={"comment": "bus (log channel, mapped)"}),
    ]
    for signal in message.signals:
        # never null (a signal a frame does not carry is NaN): without definition levels the
        # part files are written 1.3-1.9x faster
        fields.append(pa.field(signal.name, pa.float64(), nullable=False, metadata=signal_metadata(signal)))
    meta = {
        "z10.format": FORMAT_VERSION,
        "z10.message": message.name,
        "z10.frame_id": f"0x{message.frame_id:X}",
        "z10.extended": "true" if message.is_extended_frame else "false",
        "z10.bus": message.bus_name or "",
        "z10.dbc_sha256": dbc_digest,
    }
    return pa.schema(fields, metadata=meta)


def choices_of(field: pa.Field) -> dict[int, str]:
    """The enum choices stored on ``field`` ({} for a plain number)."""
    text = (field.metadata or {}).get(b"choices")
    return {int(k): v for k, v in json.loads(text).items()} if text else {}
