"""Compile cantools' signal layout into the flat arrays the codec kernels run on.

The layout is taken from cantools' own codec tree (``Message._codecs``: one node per
multiplexer branch, each holding the signals cantools decodes together) and from the bit
positions cantools' bitstruct formats give each signal in that node.  Replaying the format
construction also tells which nodes cantools cannot unpack at all: with a DBC loaded with
``strict=False``, two overlapping signals of one byte order (or a signal past the frame
end) make the format longer than the frame; such nodes are marked not decodable.  A big-
and a little-endian signal sharing bits are fine (two separate formats), as in cantools.

Bit positions:

* little endian ("Intel"): ``pos`` is the index of the least significant bit, counting
  bit ``i`` as bit ``i % 8`` (LSB = 0) of byte ``i // 8``; the signal occupies
  ``pos .. pos + nbits - 1``.
* big endian ("Motorola"): ``pos`` is the network bit number of the most significant
  bit, counting bit ``q`` as bit ``7 - q % 8`` of byte ``q // 8``; the signal occupies
  network bits ``pos .. pos + nbits - 1`` (cantools' sawtooth start bit converted).

Value conversion mirrors cantools' ``raw_to_scaled`` in Python semantics:

* ``MODE_IDENT``: the raw value itself (Python int or float) as float64.
* ``MODE_INTLIN``: integer scale; ``raw * scale`` is an exact integer; with an integer
  offset the exact sum is rounded once to float64 (LinearIntegerConversion), with a float
  offset ``float(raw * scale) + offset``.  Exact for every raw value: int64 arithmetic where
  the plan proves it cannot overflow, 128-bit arithmetic otherwise.
* ``MODE_FLOATLIN``: float scale: ``float(raw) * scale + offset`` in float64, rounded after
  each operation exactly as Python does (numba does not contract to FMA without fastmath).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Status codes reported per input row by the decoder.
STATUS_OK = 0
STATUS_UNKNOWN_ID = 1
STATUS_TOO_SHORT = 2
STATUS_BAD_MUX = 3
STATUS_UNSUPPORTED = 4

# Kinds of raw value.
KIND_UNSIGNED = 0
KIND_SIGNED = 1
KIND_FLOAT16 = 2
KIND_FLOAT32 = 3
KIND_FLOAT64 = 4

# Value conversions (see module docstring).
MODE_IDENT = 0
MODE_INTLIN = 1
MODE_FLOATLIN = 2

# Columns of the packed per-slot integer table.
SLOT_COL = 0
SLOT_POS = 1
SLOT_NBITS = 2
SLOT_BE = 3
SLOT_KIND = 4
SLOT_MODE = 5
SLOT_SHIFT = 6
SLOT_FLAGS = 7
SLOT_FIELDS = 8

# SLOT_FLAGS bits.
FLAG_FAST = 1  # MODE_INTLIN: raw * scale + offset provably fits int64
FLAG_OFFSET_INT = 2  # MODE_INTLIN: the offset is an integer (exact sum)

# Columns of the packed per-message table.
MSG_LENGTH = 0
MSG_NCOLS = 1
MSG_ROOT = 2
MSG_FLAGS = 3
MSG_FIELDS = 4

MSGF_UNSUPPORTED = 1  # container message or a root layout cantools cannot decode either
MSGF_PREFILL = 2  # some column is not written by every row: prefill with NaN
MSGF_SHORT = 4  # length <= 8: the kernel reads the payload as one 64-bit word

# Columns of the packed per-node table.
NODE_SLOT_LO = 0
NODE_SLOT_HI = 1
NODE_MUX_LO = 2
NODE_MUX_HI = 3
NODE_OK = 4
NODE_FIELDS = 5

# Columns of the packed per-multiplexer table.
MUX_SLOT = 0
MUX_KEY_LO = 1
MUX_KEY_HI = 2
MUX_FIELDS = 3

_INT64_LIMIT = 1 << 63


def sawtooth_to_network(start: int) -> int:
    """Network bit number of a big-endian signal's MSB from its DBC (sawtooth) start bit."""
    return 8 * (start // 8) + (7 - start % 8)


@dataclass(frozen=True)
class SlotLayout:
    """One signal as placed by cantools' bitstruct format of one codec node."""

    signal: Any
    big_endian: bool
    pos: int


def node_layout(signals: Sequence[Any], length: int) -> tuple[list[SlotLayout], bool]:
    """Bit positions cantools' formats give ``signals`` in a ``length``-byte frame.

    Replays ``cantools.database.utils.create_encode_decode_formats``: big-endian items sorted
    by network start bit, little-endian items from the last signal backwards, padding only
    where the gap is positive.  Returns the slots in bitstruct item order (big-endian
    first, then little-endian), which is also the order in which cantools' result dict lets a
    later duplicate name win, and whether the formats fit the frame exactly (bitstruct
    refuses to unpack otherwise, so cantools cannot decode such a node).
    """
    format_bits = 8 * length
    slots: list[SlotLayout] = []

    big = sorted((s for s in signals if s.byte_order == "big_endian"),
                 key=lambda s: sawtooth_to_network(s.start))
    nominal_end = 0  # where the previous signal should end: padding is measured from here
    item_pos = 0  # where the next item really starts in the format
    for signal in big:
        start = sawtooth_to_network(signal.start)
        if start > nominal_end:
            item_pos += start - nominal_end
        slots.append(SlotLayout(signal, True, item_pos))
        item_pos += signal.length
        nominal_end = start + signal.length
    if nominal_end < format_bits:
        item_pos += format_bits - nominal_end
    big_ok = item_pos <= format_bits

    end = format_bits
    item_pos = 0  # position in the format over the reversed payload, MSB first
    for signal in reversed(list(signals)):
        if signal.byte_order == "big_endian":
            continue
        gap = end - (signal.start + signal.length)
        if gap > 0:
            item_pos += gap
        lsb = format_bits - item_pos - signal.length
        slots.append(SlotLayout(signal, False, lsb))
        item_pos += signal.length
        end = signal.start
    if end > 0:
        item_pos += end
    little_ok = item_pos <= format_bits
    return slots, big_ok and little_ok


def layout_problem(signals: Sequence[Any], length: int) -> str:
    """Why cantools cannot pack or unpack ``signals`` in a ``length``-byte frame, in words.

    For the error message of a node :func:`node_layout` found unusable: the first signal
    longer than 64 bits or a float of another size, past the frame end, or overlapping an
    earlier signal of the same byte order (a big- and a little-endian signal may share bits).
    """
    owners: dict[tuple[bool, int], str] = {}
    for signal in signals:
        if signal.length < 1 or signal.length > 64:
            return f'signal "{signal.name}" is {signal.length} bits long (expected 1..64)'
        if signal_kind(signal) < 0:
            return f'signal "{signal.name}" is a {signal.length}-bit float (expected 16, 32 or 64 bits)'
        big = signal.byte_order == "big_endian"
        first = sawtooth_to_network(signal.start) if big else signal.start
        for bit in range(first, first + signal.length):
            if bit < 0 or bit >= 8 * length:
                return f'signal "{signal.name}" ends past the {length}-byte frame'
            key = (big, bit)
            if key in owners:
                return f'signals "{owners[key]}" and "{signal.name}" overlap'
            owners[key] = signal.name
    return "its signals do not fit the frame as cantools lays them out"


def signal_kind(signal: Any) -> int:
    """Raw value kind of a cantools signal."""
    if signal.conversion.is_float:
        return {16: KIND_FLOAT16, 32: KIND_FLOAT32, 64: KIND_FLOAT64}.get(signal.length, -1)
    return KIND_SIGNED if signal.is_signed else KIND_UNSIGNED


def plain_conversion(signal: Any) -> Any:
    """The numeric conversion cantools applies with ``decode_choices=False``."""
    from cantools.database.conversion import BaseConversion, NamedSignalConversion

    conversion = signal.conversion
    if isinstance(conversion, NamedSignalConversion):
        return BaseConversion.factory(scale=conversion.scale, offset=conversion.offset,
                                      choices=None, is_float=conversion.is_float)
    return conversion


def raw_magnitude_max(signal: Any) -> int:
    """Largest |raw value| an integer signal can carry."""
    if signal.is_signed:
        return 1 << (signal.length - 1)
    return (1 << signal.length) - 1


@dataclass(frozen=True)
class SlotConversion:
    """How one signal's raw value becomes its physical value."""

    mode: int
    flags: int
    scale_f: float
    offset_f: float
    scale_i: int
    offset_i: int


def slot_conversion(signal: Any, kind: int) -> SlotConversion:
    """Classify a signal's conversion into the kernel's modes (Python semantics kept)."""
    conv = plain_conversion(signal)
    scale, offset = conv.scale, conv.offset
    if kind >= KIND_FLOAT16:
        if _is_identity(conv):
            return SlotConversion(MODE_IDENT, 0, 1.0, 0.0, 1, 0)
        return SlotConversion(MODE_FLOATLIN, 0, float(scale), float(offset), 0, 0)
    if _is_identity(conv):
        return SlotConversion(MODE_IDENT, 0, 1.0, 0.0, 1, 0)
    if isinstance(scale, int) and not isinstance(scale, bool) and abs(scale) < _INT64_LIMIT:
        offset_int = isinstance(offset, int) and not isinstance(offset, bool)
        if offset_int and abs(offset) >= _INT64_LIMIT:
            return SlotConversion(MODE_FLOATLIN, 0, float(scale), float(offset), 0, 0)
        flags = FLAG_OFFSET_INT if offset_int else 0
        worst = raw_magnitude_max(signal) * abs(scale) + (abs(offset) if offset_int else 0)
        if worst < _INT64_LIMIT and raw_magnitude_max(signal) < _INT64_LIMIT:
            flags |= FLAG_FAST
        return SlotConversion(MODE_INTLIN, flags, float(scale),
                              0.0 if offset_int else float(offset),
                              int(scale), int(offset) if offset_int else 0)
    return SlotConversion(MODE_FLOATLIN, 0, float(scale), float(offset), 0, 0)


def _is_identity(conv: Any) -> bool:
    from cantools.database.conversion import IdentityConversion

    return isinstance(conv, IdentityConversion)


@dataclass
class MessagePlan:
    """Where one message lives in the decode plan."""

    name: str
    message: Any
    columns: list[str]
    supported: bool
    reason: str = ""  # why not supported (whole message), "" when it is


@dataclass
class DecodePlan:
    """Every array the decode kernel needs, plus the names to build the result with."""

    std_table: np.ndarray  # int32[2048]: message index of each 11-bit key, -1 if none
    ext_keys: np.ndarray  # uint32[E] sorted lookup keys above 0x7FF
    ext_msg: np.ndarray  # int32[E]
    msg_i: np.ndarray  # int64[M, MSG_FIELDS]
    node_i: np.ndarray  # int64[Nn, NODE_FIELDS]
    slot_i: np.ndarray  # int64[S, SLOT_FIELDS]
    slot_mask: np.ndarray  # uint64[S]
    slot_f: np.ndarray  # float64[S, 2]: scale, offset
    slot_int: np.ndarray  # int64[S, 2]: integer scale, integer offset
    mux_i: np.ndarray  # int64[X, MUX_FIELDS]
    mux_keys: np.ndarray  # int64[Y] sorted per multiplexer
    mux_child: np.ndarray  # int64[Y]
    max_nodes: int
    max_mux: int  # most multiplexer entries in one message's tree
    max_keys: int  # most values of one multiplexer
    messages: list[MessagePlan] = field(default_factory=list)


class _Builder:
    def __init__(self) -> None:
        self.node_rows: list[list[int]] = []
        self.slot_rows: list[list[int]] = []
        self.slot_masks: list[int] = []
        self.slot_f: list[tuple[float, float]] = []
        self.slot_int: list[tuple[int, int]] = []
        self.mux_rows: list[list[int]] = []
        self.mux_keys: list[int] = []
        self.mux_child: list[int] = []
        self.max_keys = 0

    def node(self, codec: Any, length: int, col_of: dict[str, int]) -> tuple[int, int, int]:
        """Append one codec node and its subtree.

        Returns (node index, nodes in the subtree, multiplexer entries in the subtree)."""
        index = len(self.node_rows)
        self.node_rows.append([0] * NODE_FIELDS)
        layout, fits = node_layout(codec["signals"], length)
        ok = fits
        slot_lo = len(self.slot_rows)
        last_slot_of: dict[str, int] = {}
        for slot in layout:
            signal = slot.signal
            kind = signal_kind(signal)
            nbits = signal.length
            if kind < 0 or nbits < 1 or nbits > 64:
                ok = False  # cantools itself falls back to a layout we do not decode
                kind = KIND_UNSIGNED
                nbits = max(1, min(nbits, 64))
            conv = slot_conversion(signal, kind)
            if slot.big_endian:
                shift = 64 - slot.pos - nbits
            else:
                shift = slot.pos
            last_slot_of[signal.name] = len(self.slot_rows)
            self.slot_rows.append([col_of[signal.name], slot.pos, nbits, int(slot.big_endian),
                                   kind, conv.mode, shift, conv.flags])
            self.slot_masks.append((1 << nbits) - 1)
            self.slot_f.append((conv.scale_f, conv.offset_f))
            self.slot_int.append((conv.scale_i, conv.offset_i))
        slot_hi = len(self.slot_rows)

        subtree = 1
        mux_entries = 0
        entries: list[tuple[int, list[tuple[int, int]]]] = []
        for mux_name, children in codec["multiplexers"].items():
            branches: list[tuple[int, int]] = []
            mux_entries += 1
            for key, child_codec in children.items():
                child, child_nodes, child_mux = self.node(child_codec, length, col_of)
                subtree += child_nodes
                mux_entries += child_mux
                if -_INT64_LIMIT <= int(key) < _INT64_LIMIT:
                    branches.append((int(key), child))
            branches.sort()
            self.max_keys = max(self.max_keys, len(branches))
            entries.append((last_slot_of[mux_name], branches))
        mux_lo = len(self.mux_rows)
        for mux_slot, branches in entries:
            key_lo = len(self.mux_keys)
            for key, child in branches:
                self.mux_keys.append(key)
                self.mux_child.append(child)
            self.mux_rows.append([mux_slot, key_lo, len(self.mux_keys)])
        self.node_rows[index] = [slot_lo, slot_hi, mux_lo, len(self.mux_rows), int(ok)]
        return index, subtree, mux_entries


def _columns(message: Any) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    for signal in message.signals:
        if signal.name not in seen:
            seen.add(signal.name)
            names.append(signal.name)
    return names


def _root_writes_all(codec: Any, columns: list[str]) -> bool:
    if codec["multiplexers"]:
        return False
    return {s.name for s in codec["signals"]} >= set(columns)


def frame_id_table(db: Any) -> dict[int, Any]:
    """cantools' own frame-id lookup table (masked ids, bit 31 for extended frames)."""
    table = getattr(db, "_frame_id_to_message", None)
    if isinstance(table, dict):
        return dict(table)
    rebuilt: dict[int, Any] = {}
    mask = getattr(db, "_frame_id_mask", 0xFFFFFFFF) or 0xFFFFFFFF
    for message in db.messages:
        key = message.frame_id & mask
        if message.is_extended_frame:
            key |= 0x80000000
        rebuilt[key] = message
    return rebuilt


def lookup_key(frame_id: int) -> int:
    """The key cantools' ``decode_message`` looks an integer frame id up with."""
    key = frame_id & 0x1FFFFFFF
    if key > 0x7FF:
        key |= 0x80000000
    return key


def compile_decode_plan(db: Any) -> DecodePlan:
    """Compile every message reachable through ``db.decode_message(frame_id, ...)``."""
    table = frame_id_table(db)
    builder = _Builder()
    messages: list[MessagePlan] = []
    msg_rows: list[list[int]] = []
    index_of: dict[int, int] = {}
    used_names: set[str] = set()
    max_nodes = 1
    max_mux = 0
    std_table = np.full(2048, -1, dtype=np.int32)
    ext: list[tuple[int, int]] = []

    for key in sorted(table):
        message = table[key]
        if id(message) not in index_of:
            index_of[id(message)] = len(messages)
            name = message.name
            if name in used_names:
                # Two reachable messages share a name (merged files): keep both apart.
                name = f"{message.name}@0x{message.frame_id:X}"
            used_names.add(name)
            columns = _columns(message)
            codec = getattr(message, "_codecs", None)
            # One message the decoder cannot report is a per-row status, never a refusal of
            # the whole database (a foreign DBC may hold anything cantools loads).
            reason = ""
            if message.is_container:
                reason = "a container message (cantools decodes it only with decode_containers)"
            elif codec is None:
                reason = "cantools built no codec for it"
            elif "_row" in columns:
                reason = 'it has a signal named "_row" (the result key reserved for row indices)'
            if reason:
                columns = []
            col_of = {c: i for i, c in enumerate(columns)}
            supported = not reason
            flags = 0
            root = -1
            if supported:
                root, nodes, mux_entries = builder.node(codec, message.length, col_of)
                max_nodes = max(max_nodes, nodes)
                max_mux = max(max_mux, mux_entries)
                if not builder.node_rows[root][NODE_OK]:
                    supported = False
                    reason = layout_problem(codec["signals"], message.length)
                elif not _root_writes_all(codec, columns):
                    flags |= MSGF_PREFILL
            if not supported:
                flags |= MSGF_UNSUPPORTED
            if message.length <= 8:
                flags |= MSGF_SHORT
            msg_rows.append([message.length, len(columns), root, flags])
            messages.append(MessagePlan(name, message, columns, supported, reason))
        m = index_of[id(message)]
        if key <= 0x7FF:
            std_table[key] = m
        elif key >= 0x800:
            ext.append((key, m))

    ext.sort()
    return DecodePlan(
        std_table=std_table,
        ext_keys=np.array([k for k, _ in ext], dtype=np.uint32),
        ext_msg=np.array([m for _, m in ext], dtype=np.int32),
        msg_i=np.array(msg_rows, dtype=np.int64).reshape(-1, MSG_FIELDS),
        node_i=np.array(builder.node_rows, dtype=np.int64).reshape(-1, NODE_FIELDS),
        slot_i=np.array(builder.slot_rows, dtype=np.int64).reshape(-1, SLOT_FIELDS),
        slot_mask=np.array(builder.slot_masks, dtype=np.uint64),
        slot_f=np.array(builder.slot_f, dtype=np.float64).reshape(-1, 2),
        slot_int=np.array(builder.slot_int, dtype=np.int64).reshape(-1, 2),
        mux_i=np.array(builder.mux_rows, dtype=np.int64).reshape(-1, MUX_FIELDS),
        mux_keys=np.array(builder.mux_keys, dtype=np.int64),
        mux_child=np.array(builder.mux_child, dtype=np.int64),
        max_nodes=max_nodes,
        max_mux=max_mux,
        max_keys=builder.max_keys,
        messages=messages,
    )
