"""Hypothesis strategies for random cantools databases and frame batches, plus oracles.

``databases()`` builds cantools ``Database`` objects directly (so float16 and layouts the
DBC text format cannot say are covered too): random messages of 1..64 bytes, random
non-overlapping layouts in both byte orders, integer signals of 1..64 bits (signed and
unsigned), float16/32/64 signals at any bit position, identity / integer / float
scale-offset conversions (also integer scales large enough to need 128-bit arithmetic),
choices, and multiplexers with several values per branch, nested (extended) multiplexers,
two multiplexers in one node, and choice-only multiplexer values.  cantools itself checks
every layout (``strict=True``), so a generator bug shows up as a cantools error.

``databases(overlapping=True)`` adds what reverse-engineered real-world files have and
only ``strict=False`` loads: extra signals placed anywhere at the message's top level,
overlapping others (of the same or the other byte order) or running past the frame end.
"""

from __future__ import annotations

import math
import random
import os
from dataclasses import dataclass, field
from typing import Any

import cantools
import numpy as np
from cantools.database.can import Database, Message, Signal
from cantools.database.conversion import BaseConversion
from cantools.database.errors import DecodeError
from cantools.database.utils import decode_data
from hypothesis import strategies as st

from vehicle_io.codec import (
    STATUS_BAD_MUX,
    STATUS_OK,
    STATUS_TOO_SHORT,
    STATUS_UNKNOWN_ID,
    STATUS_UNSUPPORTED,
)

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")


def examples(jit: int, no_jit: int) -> int:
    """Hypothesis example count: pure-Python kernels are ~1000x slower, so run fewer."""
    return no_jit if NO_JIT else jit


_REVERSED_BITS = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _swap_numbering(mask: int, length: int) -> int:
    """LE bit index mask <-> network bit number mask (bit order reversed in each byte)."""
    return int.from_bytes(mask.to_bytes(length, "little").translate(_REVERSED_BITS), "little")


@dataclass
class _Layout:
    """Occupied bits of one multiplexer context, in both numberings."""

    length: int
    le: int = 0
    net: int = 0

    def copy(self) -> _Layout:
        return _Layout(self.length, self.le, self.net)

    def candidates(self, n: int, big_endian: bool) -> list[int]:
        limit = 8 * self.length - n
        field_mask = (1 << n) - 1
        occ = self.net if big_endian else self.le
        return [p for p in range(limit + 1) if not (occ >> p) & field_mask]

    def take(self, pos: int, n: int, big_endian: bool) -> None:
        mask = ((1 << n) - 1) << pos
        if big_endian:
            self.net |= mask
            self.le |= _swap_numbering(mask, self.length)
        else:
            self.le |= mask
            self.net |= _swap_numbering(mask, self.length)

    def union(self, other: _Layout) -> None:
        self.le |= other.le
        self.net |= other.net


@dataclass
class _Ctx:
    draw: Any
    message_index: int
    allow_float16: bool
    with_ranges: bool
    dbc_text: bool = False
    signals: list[Signal] = field(default_factory=list)

    def name(self) -> str:
        return f"S{self.message_index}_{len(self.signals)}"


def _conversion(draw: Any, kind: str, choices: dict[int, str] | None) -> BaseConversion:
    is_float = kind == "float"
    style = draw(st.sampled_from(["identity", "int", "int", "float", "int_float", "wide"]))
    if style == "identity":
        scale, offset = 1, 0
    elif style == "int":
        scale = draw(st.integers(-1000, 1000))
        offset = draw(st.integers(-10**6, 10**6))
    elif style == "wide":
        scale = draw(st.integers(-(2**40), 2**40))
        offset = draw(st.integers(-(2**62), 2**62))
    elif style == "int_float":
        scale = draw(st.integers(-50, 50))
        offset = draw(st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False))
    else:
        scale = draw(st.one_of(
            st.sampled_from([0.1, 0.01, 0.5, 0.25, 0.001, 0.05, 2.5, -0.1, 1 / 3, 1e-6]),
            st.floats(1e-7, 1e4, allow_nan=False, allow_infinity=False),
            st.floats(-1e4, -1e-7, allow_nan=False, allow_infinity=False)))
        offset = draw(st.one_of(st.integers(-1000, 1000),
                                st.floats(-1e5, 1e5, allow_nan=False, allow_infinity=False)))
    return BaseConversion.factory(scale=scale, offset=offset, choices=choices,
                                  is_float=is_float)


def _place(ctx: _Ctx, layout: _Layout, n: int, big_endian: bool | None = None
           ) -> tuple[int, int, bool] | None:
    draw = ctx.draw
    if big_endian is None:
        big_endian = draw(st.booleans())
    for order in (big_endian, not big_endian):
        spots = layout.candidates(n, order)
        if spots:
            pos = spots[draw(st.integers(0, len(spots) - 1))]
            layout.take(pos, n, order)
            start = 8 * (pos // 8) + 7 - pos % 8 if order else pos
            return pos, start, order
    return None


def _plain_signal(ctx: _Ctx, layout: _Layout, mux_ids: list[int] | None,
                  mux_signal: str | None) -> None:
    draw = ctx.draw
    kind = draw(st.sampled_from(["uint", "uint", "sint", "sint", "float"]))
    if kind == "float":
        sizes = [32, 64, 16] if ctx.allow_float16 else [32, 64]
        n = draw(st.sampled_from(sizes))
    else:
        n = draw(st.one_of(st.integers(1, 16), st.integers(1, 64), st.sampled_from([63, 64])))
    placed = _place(ctx, layout, n)
    if placed is None:
        return
    _, start, big_endian = placed
    choices = None
    if kind != "float" and draw(st.integers(0, 5)) == 0:
        choices = {v: f"C{v}" for v in draw(st.sets(st.integers(0, 3), min_size=1))}
    conversion = _conversion(draw, kind, choices)
    minimum = maximum = None
    if ctx.with_ranges and kind != "float" and draw(st.booleans()):
        # A DBC range inside the raw range, as a real DBC gives it.
        lo_raw = 0 if kind == "uint" else -(1 << (n - 1))
        hi_raw = (1 << n) - 1 if kind == "uint" else (1 << (n - 1)) - 1
        a = draw(st.integers(lo_raw, hi_raw))
        b = draw(st.integers(lo_raw, hi_raw))
        pa = conversion.raw_to_scaled(min(a, b), decode_choices=False)
        pb = conversion.raw_to_scaled(max(a, b), decode_choices=False)
        minimum, maximum = min(pa, pb), max(pa, pb)
    ctx.signals.append(Signal(
        name=ctx.name(), start=start, length=n, byte_order="big_endian" if big_endian
        else "little_endian", is_signed=kind == "sint", conversion=conversion,
        minimum=minimum, maximum=maximum, multiplexer_ids=mux_ids,
        multiplexer_signal=mux_signal))


def _mux_numbers(conversion: BaseConversion, n: int) -> list[int]:
    """Every value ``int(physical)`` a muxer of ``n`` bits can take (cantools' mux number)."""
    found = {int(conversion.raw_to_scaled(raw, decode_choices=False)) for raw in range(1 << n)}
    return sorted(found)


def _node(ctx: _Ctx, layout: _Layout, depth: int, mux_ids: list[int] | None,
          mux_signal: str | None) -> None:
    """Signals of one multiplexer context; ``layout`` is updated with what they occupy."""
    draw = ctx.draw
    for _ in range(draw(st.integers(0 if depth else 1, 5 if depth == 0 else 3))):
        _plain_signal(ctx, layout, mux_ids, mux_signal)
    n_mux = draw(st.sampled_from([0, 0, 1, 1, 1, 2])) if depth < 2 else 0
    for _ in range(n_mux):
        n = draw(st.integers(1, 4))
        placed = _place(ctx, layout, n)
        if placed is None:
            return
        _, start, big_endian = placed
        style = draw(st.sampled_from(["identity", "identity", "offset", "half"]))
        if style == "identity":
            scale, offset = 1, 0
        elif style == "offset":
            scale, offset = draw(st.sampled_from([1, 2, -1])), draw(st.integers(-3, 3))
        else:
            scale, offset = 0.5, draw(st.sampled_from([0, 0.25]))
        numbers = _mux_numbers(BaseConversion.factory(scale, offset), n)
        if ctx.dbc_text:
            numbers = [v for v in numbers if v >= 0] or [0]  # DBC mux ids are >= 0
        keys = draw(st.lists(st.sampled_from(numbers), min_size=1, max_size=len(numbers),
                             unique=True))
        choices = None
        if draw(st.integers(0, 3)) == 0:
            # A value named only in the choices selects an empty branch.
            extra = draw(st.sampled_from(numbers))
            choices = {int(extra): "EMPTY"}
        conversion = BaseConversion.factory(scale=scale, offset=offset, choices=choices)
        mux_name = ctx.name()
        ctx.signals.append(Signal(
            name=mux_name, start=start, length=n,
            byte_order="big_endian" if big_endian else "little_endian",
            conversion=conversion, is_multiplexer=True, multiplexer_ids=mux_ids,
            multiplexer_signal=mux_signal))
        # Several mux values per branch: split the keys into consecutive groups.
        groups: list[list[int]] = []
        rest = list(keys)
        while rest:
            size = draw(st.integers(1, 3))
            groups.append(rest[:size])
            rest = rest[size:]
        union = layout.copy()
        for group in groups:
            branch = layout.copy()
            _node(ctx, branch, depth + 1, group, mux_name)
            union.union(branch)
        layout.le, layout.net = union.le, union.net


def _loose_signal(ctx: _Ctx, length: int) -> None:
    """A top-level integer signal at any position: it may overlap or leave the frame."""
    draw = ctx.draw
    n = draw(st.sampled_from([1, 3, 8, 12, 16, 33, 64]))
    start = draw(st.integers(0, max(8 * length - 1, 0)))
    big_endian = draw(st.booleans())
    signed = draw(st.booleans())
    ctx.signals.append(Signal(
        name=ctx.name(), start=start, length=n,
        byte_order="big_endian" if big_endian else "little_endian", is_signed=signed,
        conversion=_conversion(draw, "sint" if signed else "uint", None)))


@st.composite
def databases(draw: Any, max_messages: int = 4, allow_float16: bool = True,
              with_ranges: bool = False, dbc_text: bool = False,
              overlapping: bool = False) -> Database:
    """A random cantools Database (see module docstring).

    ``dbc_text``: only what the DBC format can express (no float16, mux ids >= 0).
    ``overlapping``: some messages get top-level signals anywhere (``strict=False``)."""
    allow_float16 = allow_float16 and not dbc_text
    messages: list[Message] = []
    used_keys: set[int] = set()
    for index in range(draw(st.integers(1, max_messages))):
        extended = draw(st.integers(0, 3)) == 0
        frame_id = draw(st.integers(0, 0x1FFFFFFF if extended else 0x7FF))
        key = frame_id | (0x80000000 if extended else 0)
        if key in used_keys:
            continue
        used_keys.add(key)
        length = draw(st.one_of(st.integers(1, 8), st.integers(1, 64)))
        ctx = _Ctx(draw, index, allow_float16, with_ranges, dbc_text)
        _node(ctx, _Layout(length), 0, None, None)
        if overlapping:
            for _ in range(draw(st.sampled_from([0, 1, 1, 2]))):
                _loose_signal(ctx, length)
        messages.append(Message(frame_id=frame_id, name=f"M{index}", length=length,
                                signals=ctx.signals, is_extended_frame=extended,
                                is_fd=length > 8, strict=not overlapping))
    return Database(messages=messages, strict=not overlapping)


@dataclass
class Frames:
    ids: np.ndarray
    data: np.ndarray
    lengths: np.ndarray


def random_frames(db: Database, seed: int, n: int, width: int = 64) -> Frames:
    """Mostly well-formed frames of the database's messages, some unknown ids, some short."""
    rng = np.random.default_rng(seed)
    messages = db.messages
    ids = np.empty(n, dtype=np.uint32)
    lengths = np.empty(n, dtype=np.uint8)
    for i in range(n):
        choice = rng.integers(0, 10)
        if choice == 0 or not messages:
            ids[i] = rng.integers(0, 2**32, dtype=np.uint64)
            lengths[i] = rng.integers(0, 256)
            continue
        message = messages[int(rng.integers(0, len(messages)))]
        frame_id = message.frame_id
        if message.is_extended_frame and rng.integers(0, 2):
            frame_id |= 0x80000000  # CAN_EFF_FLAG as python-can/SocketCAN set it
        ids[i] = frame_id
        if choice == 1:
            lengths[i] = rng.integers(0, message.length + 1)
        elif choice == 2:
            lengths[i] = rng.integers(message.length, 256)
        else:
            lengths[i] = message.length
    data = rng.integers(0, 256, size=(n, width), dtype=np.uint8)
    if rng.integers(0, 2):
        data[:, :] &= rng.integers(0, 256, size=(n, width), dtype=np.uint8)  # more zeros
    return Frames(ids, data, lengths)


def tree_oracle(message: Message, payload: bytes) -> dict[str, Any]:
    """Every signal on a path of defined multiplexer values, decoded node by node by cantools.

    cantools' own ``decode`` stops at the first undefined multiplexer value; this walks on
    past it, which is what the batch decoder reports for a BAD_MUX row."""
    out: dict[str, Any] = {}

    def walk(node: dict[str, Any]) -> None:
        values = decode_data(payload, message.length, node["signals"], node["formats"],
                             False, True, False, True)
        out.update(values)
        for mux_name, children in node["multiplexers"].items():
            child = children.get(int(values[mux_name]))
            if child is not None:
                walk(child)

    walk(message._codecs)
    return out


@dataclass
class Expected:
    status: np.ndarray
    rows: dict[str, list[int]]
    values: dict[str, dict[str, list[float]]]


def cantools_expected(db: Database, frames: Frames) -> Expected:
    """What the batch decoder must return, computed with cantools frame by frame."""
    n = frames.ids.shape[0]
    width = frames.data.shape[1]
    status = np.zeros(n, dtype=np.uint8)
    rows: dict[str, list[int]] = {}
    values: dict[str, dict[str, list[float]]] = {}
    for i in range(n):
        frame_id = int(frames.ids[i]) & 0x1FFFFFFF
        extended = bool(int(frames.ids[i]) & 0x80000000)  # CAN_EFF_FLAG
        payload = bytes(frames.data[i, :min(int(frames.lengths[i]), width)])
        try:
            decoded = db.decode_message(frame_id, payload, decode_choices=False, force_extended_id=extended)
            code = STATUS_OK
        except KeyError:
            status[i] = STATUS_UNKNOWN_ID
            continue
        except DecodeError as err:
            if "Wrong data size" in str(err):
                # A message that cannot be unpacked at all is UNSUPPORTED before too short.
                status[i] = STATUS_UNSUPPORTED if _unpackable(db, frame_id, extended) \
                    else STATUS_TOO_SHORT
                continue
            if "unpacking failed" in str(err):
                # strict=False layouts only (loose signals are top level): cantools cannot
                # unpack the message at all, the decoder does not report the row.
                status[i] = STATUS_UNSUPPORTED
                continue
            assert "multiplexer id" in str(err), str(err)
            code = STATUS_BAD_MUX
        message = db.get_message_by_frame_id(frame_id, force_extended_id=extended)
        if code == STATUS_BAD_MUX:
            decoded = tree_oracle(message, payload)
        else:
            oracle = tree_oracle(message, payload)
            assert oracle.keys() == decoded.keys()
            assert all(_same(oracle[k], decoded[k]) for k in oracle), (oracle, decoded)
        status[i] = code
        rows.setdefault(message.name, []).append(i)
        columns = values.setdefault(message.name, {s.name: [] for s in message.signals})
        for name, column in columns.items():
            value = decoded.get(name)
            column.append(math.nan if value is None else float(value))
    return Expected(status, rows, values)


def _unpackable(db: Database, frame_id: int, extended: bool) -> bool:
    """Whether cantools fails to unpack even a full-length frame of this message."""
    message = db.get_message_by_frame_id(frame_id, force_extended_id=extended)
    try:
        message.decode(bytes(message.length), decode_choices=False)
    except DecodeError as err:
        return "unpacking failed" in str(err)
    return False


def _same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)


def assert_same_as_cantools(db: Database, frames: Frames, result: Any) -> None:
    """Statuses, rows and every value bit for bit (NaN where cantools has no value)."""
    expected = cantools_expected(db, frames)
    np.testing.assert_array_equal(result.status, expected.status)
    assert set(result) == set(expected.rows)
    for name, rows in expected.rows.items():
        got = result[name]
        np.testing.assert_array_equal(got["_row"], np.array(rows, dtype=np.int64))
        assert set(got) == {"_row", *expected.values[name]}
        for signal, column in expected.values[name].items():
            want = np.array(column, dtype=np.float64)
            have = got[signal]
            assert have.dtype == np.float64
            assert np.array_equal(have, want, equal_nan=True), (name, signal, have, want)
            # Bit patterns too: -0.0 against 0.0, and NaN payloads of float signals.
            assert np.array_equal(have.view(np.uint64), want.view(np.uint64)), \
                (name, signal, have.view(np.uint64), want.view(np.uint64))


def dbc_round_trip(db: Database) -> Database:
    """The database written by cantools' DBC dumper and loaded back."""
    return cantools.database.load_string(db.as_dbc_string(), database_format="dbc")


def _float_raw(rnd: random.Random, nbits: int) -> float:
    pick = rnd.random()
    if pick < 0.05:
        return -0.0
    if pick < 0.08:
        return math.nan
    limit = 6e4 if nbits == 16 else 1e30
    value = rnd.uniform(-limit, limit) * 10.0 ** -rnd.randint(0, 20)
    if nbits == 32:
        value = float(np.float32(value))
    elif nbits == 16:
        value = float(np.float16(value))
    return value


def _int_raw(rnd: random.Random, signal: Signal) -> int:
    n = signal.length
    lo, hi = (-(1 << (n - 1)), (1 << (n - 1)) - 1) if signal.is_signed else (0, (1 << n) - 1)
    conversion = signal.conversion
    if signal.minimum is not None and signal.maximum is not None and conversion.scale != 0:
        # Keep to raws whose physical value lies inside the DBC range.
        inside = [r for r in (lo, hi) if signal.minimum <= conversion.raw_to_scaled(
            r, decode_choices=False) <= signal.maximum]
        span = [r for r in range(max(lo, -64), min(hi, 64) + 1)
                if signal.minimum <= conversion.raw_to_scaled(r, decode_choices=False)
                <= signal.maximum]
        candidates = inside + span
        if candidates and rnd.random() < 0.5:
            return rnd.choice(candidates)
        low = conversion.numeric_scaled_to_raw(min(signal.minimum, signal.maximum))
        high = conversion.numeric_scaled_to_raw(max(signal.minimum, signal.maximum))
        low, high = max(lo, min(low, high)), min(hi, max(low, high))
        if low <= high:
            return rnd.randint(low, high)
    pick = rnd.random()
    if pick < 0.2:
        return rnd.choice([lo, hi, 0, min(hi, 1), max(lo, -1)])
    return rnd.randint(lo, hi)


def random_row(message: Message, rnd: random.Random) -> dict[str, Any]:
    """Physical values for one frame: a random branch of every multiplexer, every signal
    it needs, raw values inside the raw (and DBC) range, physical = cantools' raw_to_scaled."""
    values: dict[str, Any] = {}

    def walk(node: dict[str, Any]) -> None:
        for signal in node["signals"]:
            if signal.name in node["multiplexers"]:
                continue
            if signal.conversion.is_float:
                raw: Any = _float_raw(rnd, signal.length)
            else:
                raw = _int_raw(rnd, signal)
            values[signal.name] = signal.conversion.raw_to_scaled(raw, decode_choices=False)
        for mux_name, children in node["multiplexers"].items():
            signal = message.get_signal_by_name(mux_name)
            key = rnd.choice(sorted(children))
            raws = [r for r in range(1 << signal.length)
                    if int(signal.conversion.raw_to_scaled(r, decode_choices=False)) == key]
            values[mux_name] = signal.conversion.raw_to_scaled(rnd.choice(raws),
                                                               decode_choices=False)
            walk(children[key])

    walk(message._codecs)
    return values
