"""BatchEncoder: physical signal values to frame bytes, equal to cantools ``encode_message``.

Two paths share one per-message plan: a scalar path in plain Python ints for one frame
(the simulated ECUs and the transmit path call it at every cycle, so it avoids numpy
entirely) and a vectorised path (numpy conversion, one numba kernel placing the bits) for
K frames at once.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from vehicle_io.codec.plan import (
    KIND_FLOAT16,
    KIND_FLOAT32,
    KIND_FLOAT64,
    KIND_SIGNED,
    layout_problem,
    node_layout,
    signal_kind,
)
from vehicle_io.errors import CodecError, EncodeRangeError

_FLOAT_LIMIT = {KIND_FLOAT16: 65504.0, KIND_FLOAT32: 3.4028234663852886e38,
                KIND_FLOAT64: math.inf}
_FLOAT_STRUCT = {KIND_FLOAT16: struct.Struct("<e"), KIND_FLOAT32: struct.Struct("<f"),
                 KIND_FLOAT64: struct.Struct("<d")}
_FLOAT_UINT = {KIND_FLOAT16: struct.Struct("<H"), KIND_FLOAT32: struct.Struct("<I"),
               KIND_FLOAT64: struct.Struct("<Q")}
_NP_FLOAT = {KIND_FLOAT16: (np.float16, np.uint16), KIND_FLOAT32: (np.float32, np.uint32),
             KIND_FLOAT64: (np.float64, np.uint64)}
_EXACT_FLOAT_INT = float(1 << 52)
_PY_SCALARS = (int, float, str, bool)


@dataclass
class _Slot:
    index: int
    name: str
    signal: Any
    big_endian: bool
    pos: int
    nbits: int
    kind: int
    shift: int  # scalar path: left shift into the LE (F) or BE (G) frame integer
    raw_lo: int
    raw_hi: int
    min_bound: float | None
    max_bound: float | None
    choices: frozenset[Any]
    to_raw: Any  # cantools' numeric_scaled_to_raw of this signal


@dataclass
class _Node:
    slots: list[_Slot]
    muxes: list[tuple[str, dict[int, _Node]]]
    ok: bool  # this node's own layout is encodable (its branches are checked on their own)
    # Per slot, what the scalar fast path needs, unpacked in one go:
    # (name, code, big_endian, shift, raw_lo, raw_hi, mask, scale, offset, min_bound,
    #  max_bound, slot).
    fast: list[tuple[Any, ...]] = field(default_factory=list)
    label: str = ""  # "MUX=3" for a multiplexer branch, "" for the root
    problem: str = ""  # why the node is not encodable (layout_problem), "" when it is


def _branch_error(plan_name: str, node: _Node) -> CodecError:
    """A row selects a multiplexer branch cantools cannot encode either (strict=False DBC)."""
    return CodecError(f'message "{plan_name}": multiplexer branch {node.label} cannot be '
                      f'encoded: {node.problem}')


# Scalar fast-path conversions (cantools' numeric_scaled_to_raw, spelled out).
_CODE_IDENT_INT = 0  # round(value)
_CODE_LIN_FLOAT = 1  # round((value - offset) / scale)
_CODE_LIN_INT = 2  # LinearIntegerConversion: its own divmod arithmetic
_CODE_FLOAT_IDENT = 3  # value
_CODE_FLOAT_LIN = 4  # (value - offset) / scale


def _float_bits(kind: int, raw: float) -> int:
    """IEEE bits of ``raw`` in the signal's float format; -1 if it overflows it."""
    try:
        return int(_FLOAT_UINT[kind].unpack(_FLOAT_STRUCT[kind].pack(raw))[0])
    except OverflowError:
        return -1


@dataclass
class _MessagePlan:
    name: str
    message: Any
    length: int
    root: _Node | None
    reason: str
    signal_names: frozenset[str]
    slots: list[_Slot] = field(default_factory=list)
    pos: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    nbits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    be: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # A per-message scalar encoder generated from the fast-path entries (see _generate_scalar):
    # ``fn(values) -> bytes`` or None to take the general path; only for plans it covers.
    scalar_fn: Any = None
    scalar_count: int = -1
    # Fast-path entries of the slots outside multiplexer branches by name (patch_one), built
    # on first use.
    root_slots: dict[str, tuple[Any, ...]] | None = None


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _physical(slot: _Slot, raw: int) -> float:
    conv = slot.signal.conversion
    return raw * conv.scale + conv.offset


def _range_error(message: str, slot: _Slot, value: Any, lo: Any, hi: Any,
                 what: str = "value", row: int | None = None) -> EncodeRangeError:
    where = "" if row is None else f" (row {row})"
    return EncodeRangeError(f'signal "{slot.name}" of message "{message}"{where}: expected '
                            f'a {what} in [{_fmt(lo)}, {_fmt(hi)}], but got {_fmt(value)}')


def _nan_error(message: str, slot: _Slot, row: int | None = None) -> EncodeRangeError:
    where = "" if row is None else f" (row {row})"
    return EncodeRangeError(f'signal "{slot.name}" of message "{message}"{where}: expected '
                            f'a number (integer signal), but got nan')


def _raw_range_error(message: str, slot: _Slot, value: Any, raw: Any,
                     row: int | None = None) -> EncodeRangeError:
    if slot.kind >= KIND_FLOAT16:
        return _range_error(message, slot, value, -_FLOAT_LIMIT[slot.kind],
                            _FLOAT_LIMIT[slot.kind], f"float{slot.nbits} raw value", row)
    lo, hi = _physical(slot, slot.raw_lo), _physical(slot, slot.raw_hi)
    where = "" if row is None else f" (row {row})"
    return EncodeRangeError(
        f'signal "{slot.name}" of message "{message}"{where}: expected a value in '
        f'[{_fmt(min(lo, hi))}, {_fmt(max(lo, hi))}] (raw {slot.raw_lo}..{slot.raw_hi}, '
        f'{slot.nbits} bits), but got {_fmt(value)} (raw {_fmt(raw)})')


class BatchEncoder:
    """Encode signal values into frames, equal to cantools ``db.encode_message(name, ...)``.

    Semantics (both paths):

    * every signal of every multiplexer branch a row selects must be given, else
      :class:`CodecError` naming it; names that are not signals of the message raise
      :class:`CodecError`; signals of branches a row does not select are ignored (cantools'
      strict mode would reject them, but a batch needs them for its other rows);
    * a multiplexer selects its branch by ``int(value)`` of the physical value (a choice
      name in the scalar path), as cantools does; an undefined branch raises CodecError;
    * raw = cantools' ``numeric_scaled_to_raw`` (Python ``round``: half to even);
    * ``strict=True``: outside the DBC minimum/maximum (with cantools' tolerance of
      ``|scale| * 1e-6``, skipped for raw values named in the choices) or outside the raw
      bit range (or beyond the float format's finite range) raises
      :class:`EncodeRangeError` naming signal, value and allowed range;
    * ``strict=False``: DBC minimum/maximum are not checked and the raw value is clamped
      to the raw bit range (floats to the format's largest finite value);
    * NaN for an integer signal always raises EncodeRangeError.
    """

    def __init__(self, db: Any) -> None:
        self._db = db
        self._plans: dict[str, _MessagePlan] = {}

    # -- plan -------------------------------------------------------------------------
    def _plan(self, message_name: str) -> _MessagePlan:
        plan = self._plans.get(message_name)
        if plan is None:
            try:
                message = self._db.get_message_by_name(message_name)
            except KeyError:
                raise CodecError(f"expected a message name of the database, but got "
                                 f"{message_name!r}") from None
            plan = self._compile(message)
            if plan.root is not None:
                plan.scalar_fn, plan.scalar_count = _generate_scalar(plan)
            self._plans[message_name] = plan
        if plan.root is None:
            raise CodecError(f'message "{message_name}" cannot be encoded: {plan.reason}')
        return plan

    def _compile(self, message: Any) -> _MessagePlan:
        names = frozenset(s.name for s in message.signals)
        codec = getattr(message, "_codecs", None)
        if message.is_container:
            return _MessagePlan(message.name, message, message.length, None,
                                "it is a container message", names)
        if codec is None:
            return _MessagePlan(message.name, message, message.length, None,
                                "cantools built no codec for it", names)
        plan = _MessagePlan(message.name, message, message.length, None, "", names)
        root = self._node(plan, codec)
        if not root.ok:
            plan.reason = root.problem
            return plan
        plan.root = root
        plan.pos = np.array([s.pos for s in plan.slots], dtype=np.int64)
        plan.nbits = np.array([s.nbits for s in plan.slots], dtype=np.int64)
        plan.be = np.array([int(s.big_endian) for s in plan.slots], dtype=np.int64)
        return plan

    def _node(self, plan: _MessagePlan, codec: Any, label: str = "") -> _Node:
        layout, ok = node_layout(codec["signals"], plan.length)
        slots: list[_Slot] = []
        for item in layout:
            signal = item.signal
            kind = signal_kind(signal)
            n = signal.length
            if kind < 0 or n < 1 or n > 64:
                ok = False
                continue
            if kind == KIND_SIGNED:
                raw_lo, raw_hi = -(1 << (n - 1)), (1 << (n - 1)) - 1
            else:
                raw_lo, raw_hi = 0, (1 << n) - 1
            tolerance = abs(signal.conversion.scale) * 1e-6
            shift = (8 * plan.length - item.pos - n) if item.big_endian else item.pos
            slot = _Slot(
                index=len(plan.slots), name=signal.name, signal=signal,
                big_endian=item.big_endian, pos=item.pos, nbits=n, kind=kind, shift=shift,
                raw_lo=raw_lo, raw_hi=raw_hi,
                min_bound=None if signal.minimum is None else signal.minimum - tolerance,
                max_bound=None if signal.maximum is None else signal.maximum + tolerance,
                choices=frozenset(signal.conversion.choices or ()),
                to_raw=signal.conversion.numeric_scaled_to_raw,
            )
            plan.slots.append(slot)
            slots.append(slot)
        muxes: list[tuple[str, dict[int, _Node]]] = []
        for mux_name, children in codec["multiplexers"].items():
            # A branch cantools cannot encode (overlapping signals of a strict=False DBC) is
            # refused only for the rows that select it, as the decoder reports only its rows.
            nodes = {int(key): self._node(plan, child, f"{mux_name}={int(key)}")
                     for key, child in children.items()}
            muxes.append((mux_name, nodes))
        problem = "" if ok else layout_problem(codec["signals"], plan.length)
        return _Node(slots, muxes, ok, [_fast_entry(slot) for slot in slots], label, problem)

    # -- scalar path ------------------------------------------------------------------
    def scalar_encoder(self, message_name: str) -> tuple[Callable[[Mapping[str, Any]], bytes | None] | None, int]:
        """``(fn, n)``: the straight-line encoder behind :meth:`encode_one` for this message.

        ``fn(values)`` takes a mapping of exactly ``n`` signal values (every signal of the
        message, plain numbers) and returns the frame ``encode_one(name, **values)`` gives, or
        None when it does not take them (a value out of range, NaN, a choice name, a missing
        signal): the caller then uses :meth:`encode_one`, which raises or encodes the general
        way. For a sender that makes the same message every cycle and wants no keyword
        round trip. ``(None, -1)`` when the message has no such encoder (multiplexed).
        Raises CodecError for a name the database does not have or a message it cannot encode.
        """
        plan = self._plan(message_name)
        return plan.scalar_fn, plan.scalar_count

    def encode_one(self, message_name: str, /, strict: bool = True, **signals: Any) -> bytes:
        """One frame of ``message_name`` from keyword signal values (numbers or choice names)."""
        plan = self._plan(message_name)
        if strict and len(signals) == plan.scalar_count:
            # Every signal given as a plain number inside its ranges: the generated encoder.
            # Anything else (or any doubt) returns None and takes the general path below.
            payload = plan.scalar_fn(signals)
            if payload is not None:
                return payload
        return self._encode_scalar(plan, signals, strict)

    def patch_one(self, message_name: str, frame: bytes, /, strict: bool = True, **signals: Any) -> bytes:
        """``frame`` with the given signals encoded over their bits, every other bit kept.

        For a frame ``encode_one`` made, ``patch_one(name, encode_one(name, **values), **new)``
        equals ``encode_one(name, **{**values, **new})``: a message of which one signal changes
        every cycle (an uptime) is re-encoded in one signal's time. Values are converted and
        checked as ``encode_one`` does (same errors); signals inside multiplexer branches
        cannot be patched (CodecError), nor can a frame of the wrong length.
        """
        plan = self._plan(message_name)
        if len(frame) != plan.length:
            raise CodecError(f'message "{plan.name}": expected a frame of {plan.length} bytes, '
                             f'but got {len(frame)}')
        assert plan.root is not None
        by_name = plan.root_slots
        if by_name is None:
            by_name = plan.root_slots = {entry[0]: entry for entry in plan.root.fast}
        length = plan.length
        little = int.from_bytes(frame, "little")
        big = None
        for name, value in signals.items():
            entry = by_name.get(name)
            if entry is None:
                where = "a signal outside multiplexer branches" if name in plan.signal_names else "one of its signals"
                raise CodecError(f'message "{plan.name}": expected {where}, but got {name!r}')
            slot = entry[-1]
            bits = _fast_bits(entry, value, strict)
            if bits < 0:  # anything but a plain number in range: the general path raises or fits
                bits = self._scalar_bits(plan, slot, value, strict)
            mask = ((1 << slot.nbits) - 1) << slot.shift
            if slot.big_endian:
                if big is None:
                    big = int.from_bytes(little.to_bytes(length, "little"), "big")
                    little = None
                big = (big & ~mask) | (bits << slot.shift)
            else:
                if little is None:
                    little = int.from_bytes(big.to_bytes(length, "big"), "little")  # type: ignore[union-attr]
                    big = None
                little = (little & ~mask) | (bits << slot.shift)
        if big is not None:
            return big.to_bytes(length, "big")
        return little.to_bytes(length, "little")  # type: ignore[union-attr]

    def _encode_scalar(self, plan: _MessagePlan, values: Mapping[str, Any],
                       strict: bool) -> bytes:
        if not plan.signal_names.issuperset(values):
            unknown = next(name for name in values if name not in plan.signal_names)
            raise CodecError(f'message "{plan.name}": expected one of its signals, but '
                             f'got {unknown!r}')
        little = 0
        big = 0
        assert plan.root is not None
        stack = [plan.root]
        while stack:
            node = stack.pop()
            if not node.ok:
                raise _branch_error(plan.name, node)
            for name, code, big_endian, shift, raw_lo, raw_hi, mask, scale, offset, \
                    min_bound, max_bound, slot in node.fast:
                value = values.get(name)
                kind = type(value)
                bits = -1
                # Fast path: plain int/float values inside every range, the arithmetic
                # of cantools' numeric_scaled_to_raw spelled out; anything else (and any
                # error) takes the general path, which raises or clamps as documented.
                if (kind is float or kind is int) and not (
                        strict and (value < min_bound or value > max_bound)):
                    try:
                        if code == _CODE_IDENT_INT:
                            raw = value if kind is int else round(value)
                        elif code == _CODE_LIN_FLOAT:
                            raw = round((value - offset) / scale)
                        elif code == _CODE_LIN_INT:
                            raw = slot.to_raw(value)
                        elif code == _CODE_FLOAT_IDENT:
                            raw = None
                            bits = _float_bits(slot.kind, value)
                        else:
                            raw = None
                            bits = _float_bits(slot.kind, (value - offset) / scale)
                        if raw is not None and raw_lo <= raw <= raw_hi:
                            bits = raw & mask
                    except (ValueError, OverflowError, ZeroDivisionError):
                        bits = -1
                if bits < 0:
                    if value is None:
                        raise CodecError(f'message "{plan.name}": signal "{name}" is '
                                         f'required for encoding, but it is missing')
                    bits = self._scalar_bits(plan, slot, value, strict)
                if big_endian:
                    big |= bits << shift
                else:
                    little |= bits << shift
            for mux_name, children in node.muxes:
                number = self._mux_number(plan, mux_name, values[mux_name])
                child = children.get(number)
                if child is None:
                    raise CodecError(
                        f'message "{plan.name}": expected multiplexer "{mux_name}" to be one '
                        f'of {_key_list(children)}, but got {values[mux_name]!r}')
                stack.append(child)
        length = plan.length
        if little:
            big |= int.from_bytes(little.to_bytes(length, "little"), "big")
        return big.to_bytes(length, "big")

    def _mux_number(self, plan: _MessagePlan, mux_name: str, value: Any) -> int:
        signal = plan.message.get_signal_by_name(mux_name)
        if isinstance(value, str):
            try:
                return int(signal.conversion.choice_to_number(value))
            except KeyError:
                raise CodecError(f'message "{plan.name}": expected a choice of multiplexer '
                                 f'"{mux_name}", but got {value!r}') from None
        try:
            return int(value)
        except (ValueError, OverflowError, TypeError):
            raise CodecError(f'message "{plan.name}": expected a finite number for '
                             f'multiplexer "{mux_name}", but got {value!r}') from None

    def _scalar_bits(self, plan: _MessagePlan, slot: _Slot, value: Any, strict: bool) -> int:
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, str):
            try:
                raw = slot.signal.conversion.choice_to_number(value)
            except KeyError:
                raise CodecError(f'signal "{slot.name}" of message "{plan.name}": expected '
                                 f'one of its choices, but got {value!r}') from None
            return self._fit_raw(plan, slot, value, raw, strict)
        if isinstance(value, bool):
            value = int(value)
        elif not isinstance(value, (int, float)):
            raise CodecError(f'signal "{slot.name}" of message "{plan.name}": expected a '
                             f'number or choice name, but got {type(value).__name__}')
        if slot.kind < KIND_FLOAT16 and value != value:
            raise _nan_error(plan.name, slot)
        try:
            raw = slot.to_raw(value)
        except ZeroDivisionError:
            raise CodecError(f'signal "{slot.name}" of message "{plan.name}": scale 0 '
                             f'cannot be encoded') from None
        except OverflowError:
            # round(inf): beyond every raw range.
            raw = math.inf if (value - slot.signal.conversion.offset) * \
                (slot.signal.conversion.scale or 1) > 0 else -math.inf
        if strict and not (slot.choices and raw in slot.choices):
            if slot.min_bound is not None and value < slot.min_bound:
                raise _range_error(plan.name, slot, value, slot.signal.minimum,
                                   slot.signal.maximum)
            if slot.max_bound is not None and value > slot.max_bound:
                raise _range_error(plan.name, slot, value, slot.signal.minimum,
                                   slot.signal.maximum)
        return self._fit_raw(plan, slot, value, raw, strict)

    def _fit_raw(self, plan: _MessagePlan, slot: _Slot, value: Any, raw: Any,
                 strict: bool) -> int:
        if slot.kind >= KIND_FLOAT16:
            raw_f = float(raw)
            try:
                packed = _FLOAT_STRUCT[slot.kind].pack(raw_f)
            except OverflowError:
                if strict:
                    raise _raw_range_error(plan.name, slot, value, raw_f) from None
                packed = _FLOAT_STRUCT[slot.kind].pack(
                    math.copysign(_FLOAT_LIMIT[slot.kind], raw_f))
            return int(_FLOAT_UINT[slot.kind].unpack(packed)[0])
        if raw < slot.raw_lo or raw > slot.raw_hi:
            if strict:
                raise _raw_range_error(plan.name, slot, value, raw)
            raw = slot.raw_lo if raw < slot.raw_lo else slot.raw_hi
        return int(raw) & ((1 << slot.nbits) - 1)

    # -- vector path ------------------------------------------------------------------
    def encode(self, message_name: str, signals: Mapping[str, npt.ArrayLike], *,
               strict: bool = True) -> np.ndarray:
        """K frames of ``message_name`` as uint8[K, L]; values are scalars or 1-D arrays."""
        plan = self._plan(message_name)
        if all(type(v) in _PY_SCALARS for v in signals.values()):
            frame = self._encode_scalar(plan, signals, strict)
            return np.frombuffer(frame, dtype=np.uint8).reshape(1, plan.length).copy()
        arrays: dict[str, np.ndarray] = {}
        k_rows = -1
        for name, value in signals.items():
            if name not in plan.signal_names:
                raise CodecError(f'message "{plan.name}": expected one of its signals, but '
                                 f'got {name!r}')
            arr = np.asarray(value)
            if arr.ndim > 1:
                raise CodecError(f'signal "{name}" of message "{plan.name}": expected a '
                                 f'scalar or 1-D array, but got shape {arr.shape}')
            if arr.ndim == 1:
                if k_rows >= 0 and arr.shape[0] != k_rows:
                    raise CodecError(f'signal "{name}" of message "{plan.name}": expected '
                                     f'{k_rows} values like the other signals, but got '
                                     f'{arr.shape[0]}')
                k_rows = arr.shape[0]
            arrays[name] = arr
        if k_rows < 0 or k_rows == 1:
            # One frame: the scalar path is faster and accepts choice names.
            scalars = {name: (arr.item() if arr.ndim == 0 else arr[0].item())
                       for name, arr in arrays.items()}
            frame = self._encode_scalar(plan, scalars, strict)
            return np.frombuffer(frame, dtype=np.uint8).reshape(1, plan.length).copy()
        for name, arr in arrays.items():
            if arr.dtype == object:
                arr = arrays[name] = _numeric_objects(plan.name, name, arr)
            if arr.dtype.kind not in "biufO":
                raise CodecError(f'signal "{name}" of message "{plan.name}": expected '
                                 f'numbers, but got dtype {arr.dtype}')
            if arr.ndim == 0:
                arrays[name] = np.broadcast_to(arr, (k_rows,))
        return self._encode_vector(plan, arrays, k_rows, strict)

    def _encode_vector(self, plan: _MessagePlan, arrays: dict[str, np.ndarray], k_rows: int,
                       strict: bool) -> np.ndarray:
        from vehicle_io.codec import _kernels

        raw = np.zeros((len(plan.slots), k_rows), dtype=np.uint64)
        assert plan.root is not None
        stack: list[tuple[_Node, np.ndarray]] = [(plan.root, np.ones(k_rows, dtype=bool))]
        with np.errstate(all="ignore"):
            while stack:
                node, active = stack.pop()
                if not node.ok:
                    row = int(np.flatnonzero(active)[0])
                    raise CodecError(f"{_branch_error(plan.name, node)} (row {row})")
                for slot in node.slots:
                    values = arrays.get(slot.name)
                    if values is None:
                        raise CodecError(f'message "{plan.name}": signal "{slot.name}" is '
                                         f'required for encoding, but it is missing')
                    bits = self._vector_bits(plan, slot, values, active, strict)
                    raw[slot.index] = np.where(active, bits, np.uint64(0))
                for mux_name, children in node.muxes:
                    numbers = self._mux_numbers(plan, mux_name, arrays[mux_name], active)
                    keys = np.array(sorted(children), dtype=np.int64)
                    known = np.isin(numbers, keys)
                    bad = active & ~known
                    if bad.any():
                        row = int(np.flatnonzero(bad)[0])
                        raise CodecError(
                            f'message "{plan.name}" (row {row}): expected multiplexer '
                            f'"{mux_name}" to be one of {_key_list(children)}, but got '
                            f'{arrays[mux_name][row].item()!r}')
                    for key in np.unique(numbers[active]).tolist():
                        stack.append((children[key], active & (numbers == key)))
        return _kernels.encode_place(raw, plan.pos, plan.nbits, plan.be, plan.length)

    def _mux_numbers(self, plan: _MessagePlan, mux_name: str, values: np.ndarray,
                     active: np.ndarray) -> np.ndarray:
        if values.dtype == object:
            # Only numbers beyond int64/uint64 stay object: they can match no key.
            numbers = np.full(values.shape[0], np.iinfo(np.int64).min, dtype=np.int64)
            for row in np.flatnonzero(active).tolist():
                number = self._mux_number(plan, mux_name, values[row])
                if -(1 << 63) <= number < (1 << 63):
                    numbers[row] = number
            return numbers
        if values.dtype.kind == "f":
            bad = active & ~np.isfinite(values)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise CodecError(f'message "{plan.name}" (row {row}): expected a finite '
                                 f'number for multiplexer "{mux_name}", but got '
                                 f'{values[row].item()!r}')
            safe = np.where(np.abs(values) < 2.0**62, values, 0.0)
            numbers = np.trunc(safe).astype(np.int64)
            # Out-of-range numbers can match no key: mark them with a key-free sentinel.
            return np.where(np.abs(values) < 2.0**62, numbers, np.iinfo(np.int64).min)
        if values.dtype == np.uint64:
            big = values > np.uint64(2**62)
            return np.where(big, np.iinfo(np.int64).min,
                            np.where(big, 0, values).astype(np.int64))
        return values.astype(np.int64)

    def _vector_bits(self, plan: _MessagePlan, slot: _Slot, values: np.ndarray,
                     active: np.ndarray, strict: bool) -> np.ndarray:
        if values.dtype == object:
            # Python ints beyond 64 bits (a wide signal with a scale): exact, row by row.
            return self._python_bits(plan, slot, values, active, strict)
        conv = slot.signal.conversion
        scale, offset = conv.scale, conv.offset
        if slot.kind >= KIND_FLOAT16:
            v = values.astype(np.float64)
            if scale == 1 and offset == 0:
                raw_f = v
            else:
                if scale == 0:
                    raise CodecError(f'signal "{slot.name}" of message "{plan.name}": '
                                     f'scale 0 cannot be encoded')
                raw_f = (v - float(offset)) / float(scale)
            if strict:
                self._check_dbc_range(plan, slot, v, raw_f, active)
            ftype, utype = _NP_FLOAT[slot.kind]
            f = raw_f.astype(ftype)
            overflow = active & np.isinf(f) & np.isfinite(raw_f)
            if overflow.any():
                if strict:
                    row = int(np.flatnonzero(overflow)[0])
                    raise _raw_range_error(plan.name, slot, values[row].item(),
                                           raw_f[row].item(), row)
                limit = ftype(_FLOAT_LIMIT[slot.kind])
                f = np.where(overflow, np.copysign(limit, raw_f).astype(ftype), f)
            return f.view(utype).astype(np.uint64)

        exact_int = values.dtype.kind in "biu" and _is_identity(conv)
        if exact_int:
            return self._exact_int_bits(plan, slot, values, active, strict)
        if values.dtype.kind in "biu":
            big = active & (np.abs(values.astype(np.float64)) > _EXACT_FLOAT_INT)
            if big.any() or abs(offset) > _EXACT_FLOAT_INT:
                return self._python_bits(plan, slot, values, active, strict)
        v = values.astype(np.float64)
        nan = active & np.isnan(v)
        if nan.any():
            row = int(np.flatnonzero(nan)[0])
            raise _nan_error(plan.name, slot, row)
        raw_f = self._to_raw_float(plan, slot, v)
        if strict:
            self._check_dbc_range(plan, slot, v, raw_f, active)
        lo_f = float(slot.raw_lo)
        top_f = float(slot.raw_hi + 1)  # 2^n or 2^(n-1): exact, unlike raw_hi itself
        under = active & (raw_f < lo_f)
        over = active & (raw_f >= top_f)
        if strict and (under.any() or over.any()):
            row = int(np.flatnonzero(under | over)[0])
            raise _raw_range_error(plan.name, slot, values[row].item(), raw_f[row].item(), row)
        safe = np.where(under | over | ~active, 0.0, raw_f)
        if slot.kind == KIND_SIGNED:
            bits = safe.astype(np.int64).view(np.uint64)
        else:
            bits = safe.astype(np.uint64)
        mask = np.uint64((1 << slot.nbits) - 1)
        bits = bits & mask
        if over.any():
            bits[over] = np.uint64(slot.raw_hi & ((1 << slot.nbits) - 1))
        if under.any():
            bits[under] = np.uint64(slot.raw_lo & ((1 << slot.nbits) - 1))
        return bits

    def _to_raw_float(self, plan: _MessagePlan, slot: _Slot, v: np.ndarray) -> np.ndarray:
        """cantools' numeric_scaled_to_raw on float64 values (then Python round)."""
        conv = slot.signal.conversion
        inner = _plain(conv)
        scale, offset = inner.scale, inner.offset
        if _is_identity(inner):
            return np.rint(v)
        if scale == 0:
            raise CodecError(f'signal "{slot.name}" of message "{plan.name}": scale 0 '
                             f'cannot be encoded')
        if _is_linear_integer(inner):
            shifted = v - float(offset)
            quotient, remainder = np.divmod(shifted, float(scale))
            return np.rint(np.where(remainder == 0, quotient, shifted / float(scale)))
        return np.rint((v - float(offset)) / float(scale))

    def _exact_int_bits(self, plan: _MessagePlan, slot: _Slot, values: np.ndarray,
                        active: np.ndarray, strict: bool) -> np.ndarray:
        """Identity conversion of integer input: raw = value, compared exactly."""
        if values.dtype == np.uint64:
            lo_ok = np.ones(values.shape, dtype=bool)
            hi_ok = values <= np.uint64(max(slot.raw_hi, 0))
            as_i = None
        else:
            as_i = values.astype(np.int64)
            lo_ok = as_i >= slot.raw_lo
            hi_ok = as_i <= min(slot.raw_hi, (1 << 63) - 1)
        if strict:
            v = values.astype(np.float64)
            self._check_dbc_range(plan, slot, v, v, active)
        under = active & ~lo_ok
        over = active & ~hi_ok
        if strict and (under.any() or over.any()):
            row = int(np.flatnonzero(under | over)[0])
            raise _raw_range_error(plan.name, slot, values[row].item(), values[row].item(), row)
        if as_i is None:
            bits = np.where(over | ~active, np.uint64(0), values).astype(np.uint64)
        else:
            bits = np.where(under | over | ~active, 0, as_i).view(np.uint64)
        bits = bits & np.uint64((1 << slot.nbits) - 1)
        if over.any():
            bits[over] = np.uint64(slot.raw_hi & ((1 << slot.nbits) - 1))
        if under.any():
            bits[under] = np.uint64(slot.raw_lo & ((1 << slot.nbits) - 1))
        return bits

    def _python_bits(self, plan: _MessagePlan, slot: _Slot, values: np.ndarray,
                     active: np.ndarray, strict: bool) -> np.ndarray:
        """Huge integer inputs: cantools' arithmetic on Python numbers, row by row."""
        bits = np.zeros(values.shape[0], dtype=np.uint64)
        for row in np.flatnonzero(active).tolist():
            value = values[row]
            value = value if values.dtype == object else int(value)
            try:
                bits[row] = self._scalar_bits(plan, slot, value, strict)
            except EncodeRangeError as err:
                raise EncodeRangeError(f"{err} (row {row})") from None
        return bits

    def _check_dbc_range(self, plan: _MessagePlan, slot: _Slot, v: np.ndarray,
                         raw_f: np.ndarray, active: np.ndarray) -> None:
        if slot.min_bound is None and slot.max_bound is None:
            return
        bad = np.zeros(v.shape, dtype=bool)
        if slot.min_bound is not None:
            bad |= v < slot.min_bound
        if slot.max_bound is not None:
            bad |= v > slot.max_bound
        bad &= active
        if slot.choices and bad.any():
            bad &= ~np.isin(raw_f, np.array(sorted(slot.choices), dtype=np.float64))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise _range_error(plan.name, slot, v[row].item(), slot.signal.minimum,
                               slot.signal.maximum, row=row)


def _numeric_objects(message: str, name: str, arr: np.ndarray) -> np.ndarray:
    """An object array of Python numbers as the narrowest exact numpy array (int64, uint64 or
    float64), or still object when only Python ints hold its values exactly (beyond 64 bits)."""
    items = arr.tolist() if arr.ndim else [arr.item()]
    bad = next((v for v in items if not isinstance(v, (int, float, np.number))), None)
    if bad is not None:
        raise CodecError(f'signal "{name}" of message "{message}": expected numbers, but got '
                         f'{type(bad).__name__} {bad!r}')
    ints = [int(v) for v in items if isinstance(v, (int, np.integer))]
    if len(ints) == len(items):
        if all(-(1 << 63) <= v < (1 << 63) for v in ints):
            return arr.astype(np.int64)
        if all(0 <= v < (1 << 64) for v in ints):
            return arr.astype(np.uint64)
        return arr
    if all(abs(v) <= _EXACT_FLOAT_INT for v in ints):
        return arr.astype(np.float64)
    return arr


def _fast_bits(entry: tuple[Any, ...], value: Any, strict: bool) -> int:
    """The raw bits of a plain int/float ``value`` inside every range, by the arithmetic of
    ``_encode_scalar``'s fast path; -1 for anything else (the caller takes the general path)."""
    _, code, _, _, raw_lo, raw_hi, mask, scale, offset, min_bound, max_bound, slot = entry
    kind = type(value)
    if not (kind is float or kind is int) or (strict and (value < min_bound or value > max_bound)):
        return -1
    try:
        if code == _CODE_IDENT_INT:
            raw = value if kind is int else round(value)
        elif code == _CODE_LIN_FLOAT:
            raw = round((value - offset) / scale)
        elif code == _CODE_LIN_INT:
            raw = slot.to_raw(value)
        else:
            return -1  # float signals
    except (ValueError, OverflowError, ZeroDivisionError):
        return -1
    return raw & mask if raw_lo <= raw <= raw_hi else -1


def _fast_entry(slot: _Slot) -> tuple[Any, ...]:
    inner = _plain(slot.signal.conversion)
    if slot.kind >= KIND_FLOAT16:
        code = _CODE_FLOAT_IDENT if _is_identity(inner) else _CODE_FLOAT_LIN
    elif _is_identity(inner):
        code = _CODE_IDENT_INT
    elif _is_linear_integer(inner):
        code = _CODE_LIN_INT
    else:
        code = _CODE_LIN_FLOAT
    return (slot.name, code, slot.big_endian, slot.shift, slot.raw_lo, slot.raw_hi,
            (1 << slot.nbits) - 1, inner.scale, inner.offset,
            -math.inf if slot.min_bound is None else slot.min_bound,
            math.inf if slot.max_bound is None else slot.max_bound, slot)


def _generate_scalar(plan: _MessagePlan) -> tuple[Any, int]:
    """``(fn, n)``: a straight-line encoder for a message without multiplexers, or (None, -1).

    ``fn(values)`` is the scalar fast path of :meth:`BatchEncoder._encode_scalar` unrolled for
    this message (strict mode): the same arithmetic per signal, with its constants bound, and
    no loop, tuple unpacking or dispatch on the conversion kind. It returns None as soon as a
    value is not a plain int/float inside its DBC and raw ranges (or the arithmetic fails), and
    the caller then takes the general path, which raises or encodes exactly as before. ``n``
    is the number of signals ``values`` must hold (all of them, no others).
    """
    root = plan.root
    if root is None or root.muxes:
        return None, -1
    names = [entry[0] for entry in root.fast]
    if len(set(names)) != len(names) or set(names) != set(plan.signal_names):
        return None, -1
    env: dict[str, Any] = {"round": round, "type": type, "int": int, "float": float}
    lines = ["def encode(values):", "    little = 0", "    big = 0", "    try:", "        pass"]
    for i, (name, code, big_endian, shift, raw_lo, raw_hi, mask, scale, offset, min_bound, max_bound,
            slot) in enumerate(root.fast):
        if code == _CODE_IDENT_INT:
            convert = ("raw = v", "raw = round(v)")
        elif code == _CODE_LIN_FLOAT:
            convert = (f"raw = round((v - off{i}) / scale{i})",) * 2
        elif code == _CODE_LIN_INT:
            convert = (f"raw = to_raw{i}(v)",) * 2
        else:
            return None, -1  # float signals: the general path
        env[f"name{i}"] = name
        env[f"lo{i}"] = min_bound
        env[f"hi{i}"] = max_bound
        env[f"off{i}"] = offset
        env[f"scale{i}"] = scale
        env[f"to_raw{i}"] = slot.to_raw
        target = "big" if big_endian else "little"
        lines += [
            f"        v = values.get(name{i})",
            "        t = type(v)",
            "        if t is int:",
            f"            if v < lo{i} or v > hi{i}:",
            "                return None",
            f"            {convert[0]}",
            "        elif t is float:",
            f"            if v < lo{i} or v > hi{i}:",
            "                return None",
            f"            {convert[1]}",
            "        else:",
            "            return None",
            f"        if raw < {int(raw_lo)} or raw > {int(raw_hi)}:",
            "            return None",
            f"        {target} |= (raw & {int(mask)}) << {int(shift)}",
        ]
    length = int(plan.length)
    lines += [
        "    except (ValueError, OverflowError, ZeroDivisionError, TypeError):",
        "        return None",
        "    if little:",
        f"        big |= int.from_bytes(little.to_bytes({length}, 'little'), 'big')",
        f"    return big.to_bytes({length}, 'big')",
    ]
    exec(compile("\n".join(lines), f"<encoder {plan.name}>", "exec"), env)  # noqa: S102 - our own text
    return env["encode"], len(names)


def _key_list(children: Mapping[int, Any]) -> str:
    keys = sorted(children)
    text = ", ".join(str(k) for k in keys[:16])
    if len(keys) > 16:
        text += f", ... ({len(keys)} values)"
    return "{" + text + "}"


def _plain(conv: Any) -> Any:
    from cantools.database.conversion import BaseConversion, NamedSignalConversion

    if isinstance(conv, NamedSignalConversion):
        return BaseConversion.factory(scale=conv.scale, offset=conv.offset, choices=None,
                                      is_float=conv.is_float)
    return conv


def _is_identity(conv: Any) -> bool:
    from cantools.database.conversion import IdentityConversion

    return isinstance(_plain(conv), IdentityConversion)


def _is_linear_integer(conv: Any) -> bool:
    from cantools.database.conversion import LinearIntegerConversion

    return isinstance(conv, LinearIntegerConversion)
