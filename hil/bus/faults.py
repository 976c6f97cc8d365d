"""Fault injection rules and ISO 11898-1 fault confinement for the timed virtual bus.

A :class:`FaultRule` says *what* happens (``action``) to *which* frames: matching identifier
(``id`` with an optional ``mask``), sending node (``node``), a time window ``[t0_s, t1_s)`` of
bus time, a probability drawn from a seeded random stream of its own (so adding a rule never
shifts another rule's draws) and an optional ``max_count``. Rules come from Python or from
plain dicts (:meth:`FaultRule.from_dict`, what a scenario file feeds in).

When a rule is looked at:

* at ``send`` (the frame enters the sender's controller): ``drop``, ``delay``, ``duplicate``,
  ``reorder``, ``corrupt_payload``, ``stuck_payload``, ``counter_freeze``, ``counter_jump``;
  ``drop`` with ``receiver`` set is looked at per receiving node at delivery instead;
* at each transmission attempt: ``corrupt_wire``;
* continuously over its window: ``cut_off`` (the node's frames never reach the bus, it
  receives nothing) and ``babble`` (the node floods ``id`` at the highest rate the bus allows,
  or every ``period_s``).

Actions in detail:

``drop``
    The frame never reaches the bus (or, with ``receiver``, reaches the bus but is lost at
    that receiving node only).
``delay``
    The frame enters the transmit queue ``delay_s`` later; later frames may overtake it.
``duplicate``
    The frame is transmitted ``copies`` more times (each a full frame on the bus).
``reorder``
    The frame is held back and queued right after the sender's next frame (a swap); if no
    next frame comes within ``max_hold_s`` it is released alone, never lost.
``corrupt_payload``
    A faulty sender: payload bytes XORed with ``xor`` and/or set from ``set_bytes``
    (index -> value); with neither, one bit chosen by the rule's random stream is flipped.
    The CRC on the wire is computed over the corrupted payload, so receivers accept it.
``corrupt_wire``
    A bit is disturbed on the wire at the end of the data field: the transmitter sees a bit
    error and flags it from the next bit, every receiver flags at the same bit (6-bit flag),
    then error delimiter (8) and intermission (3). TEC +8 for the sender, REC +1 for every
    receiver, and the controller retransmits the frame automatically.
``stuck_payload``
    The sender repeats the payload of its last frame with this id from before the fault
    (or of the first faulty frame when there was none), cut or zero-padded to the length of
    the frame it replaces.
``counter_freeze`` / ``counter_jump``
    The alive counter (``counter_bits`` bits at ``counter_byte``/``counter_shift``; Z10-P1:
    low nibble of byte 1) stays at its last value before the fault, or is offset by ``jump``
    (modulo ``counter_modulo``, 15 for Z10-P1) for every frame in the window. With
    ``data_id`` set, the E2E CRC (Z10-P1, byte ``crc_byte``) is recomputed so a receiver sees a
    sequence error, not a CRC error; ``e2e`` takes a :class:`vehicle_io.e2e.E2ESpec` instead.
``babble``
    ``node`` (a node on the channel or a phantom controller) transmits ``id`` with ``data``
    back to back (or every ``period_s``) from ``t0_s`` to ``t1_s``.
``cut_off``
    ``node`` is disconnected for the window: its queued and new frames are discarded
    (counted), it receives nothing, and it does not acknowledge.

Fault confinement (:class:`ErrorCounters`) follows ISO 11898-1: TEC +8 for a transmit
error (except an ACK error of an error-passive transmitter), REC +1 for a receive error,
-1 on each success (a REC above 127 drops to 127), error passive when either counter is
128 or more, bus-off when TEC exceeds 255, back to error active with both counters at zero
after recovery.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from hil.bus.errors import FaultConfigError

#: Every action a rule may name.
ACTIONS: tuple[str, ...] = (
    "drop",
    "delay",
    "duplicate",
    "reorder",
    "corrupt_payload",
    "corrupt_wire",
    "stuck_payload",
    "counter_freeze",
    "counter_jump",
    "babble",
    "cut_off",
)
#: Actions applied when the frame enters the sender's controller, in rule order.
SEND_ACTIONS = frozenset(
    {"drop", "delay", "duplicate", "reorder", "corrupt_payload", "stuck_payload", "counter_freeze", "counter_jump"}
)

ERROR_ACTIVE = "error_active"
ERROR_PASSIVE = "error_passive"
BUS_OFF = "bus_off"

#: Counter value from which a node is error passive.
PASSIVE_LIMIT = 128
#: TEC above this value means bus-off.
BUS_OFF_LIMIT = 255
#: Error warning level (reported in error frames, no change of behaviour).
WARNING_LIMIT = 96


class ErrorCounters:
    """TEC/REC of one node and the state they imply (ISO 11898-1 fault confinement).

    ``state`` is kept up to date by every change (read once per frame on the hot path).
    """

    __slots__ = ("tec", "rec", "bus_off", "state")

    def __init__(self) -> None:
        self.tec = 0
        self.rec = 0
        self.bus_off = False
        self.state = ERROR_ACTIVE

    def _update(self) -> None:
        if self.bus_off:
            self.state = BUS_OFF
        elif self.tec >= PASSIVE_LIMIT or self.rec >= PASSIVE_LIMIT:
            self.state = ERROR_PASSIVE
        else:
            self.state = ERROR_ACTIVE

    def transmit_error(self, ack_error: bool = False) -> None:
        """The node's own frame failed; an ACK error while error passive does not count."""
        if self.bus_off:
            return
        if ack_error and self.state == ERROR_PASSIVE:
            return
        self.tec += 8
        if self.tec > BUS_OFF_LIMIT:
            self.bus_off = True
        self._update()

    def receive_error(self) -> None:
        """The node saw an error while receiving."""
        if not self.bus_off:
            self.rec += 1
            self._update()

    def transmit_ok(self) -> None:
        """The node's own frame went through."""
        if self.tec:
            self.tec -= 1
            self._update()

    def receive_ok(self) -> None:
        """The node received a frame without error (a REC above 127 drops to 127)."""
        if self.rec > 127:
            self.rec = 127
        elif self.rec:
            self.rec -= 1
        self._update()

    def reset(self) -> None:
        """After bus-off recovery: error active, both counters zero."""
        self.tec = 0
        self.rec = 0
        self.bus_off = False
        self.state = ERROR_ACTIVE


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise FaultConfigError(f"fault rule field {name!r}: expected an integer, but got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            pass
    raise FaultConfigError(f"fault rule field {name!r}: expected an integer (or '0x..' text), but got {value!r}")


def _as_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultConfigError(f"fault rule field {name!r}: expected a number, but got {value!r}")
    out = float(value)
    if math.isnan(out):
        raise FaultConfigError(f"fault rule field {name!r}: expected a number, but got NaN")
    return out


def _as_bytes(value: Any, name: str) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return bytes.fromhex(value.replace(" ", ""))
        except ValueError:
            raise FaultConfigError(f"fault rule field {name!r}: expected hex bytes, but got {value!r}") from None
    if isinstance(value, (list, tuple)):
        out = [_as_int(v, name) for v in value]
        if any(not 0 <= v <= 255 for v in out):
            raise FaultConfigError(f"fault rule field {name!r}: expected byte values 0..255, but got {list(value)}")
        return bytes(out)
    raise FaultConfigError(f"fault rule field {name!r}: expected bytes, hex text or a list of ints, but got {value!r}")


@dataclass
class FaultRule:
    """One fault: which frames (``id``/``mask``, ``node``, window, probability) and what happens.

    Times are seconds of bus time. ``id=None`` matches every identifier. See the module
    docstring for each action and its parameters.
    """

    action: str
    id: int | None = None
    mask: int = 0x1FFFFFFF
    extended: bool | None = None
    node: str | None = None
    receiver: str | None = None
    t0_s: float = 0.0
    t1_s: float = math.inf
    probability: float = 1.0
    max_count: int | None = None
    name: str = ""
    # action parameters
    delay_s: float = 0.0
    copies: int = 1
    max_hold_s: float = 1.0
    xor: bytes | None = None
    set_bytes: dict[int, int] | None = None
    counter_byte: int = 1
    counter_shift: int = 0
    counter_bits: int = 4
    counter_modulo: int = 15
    jump: int = 1
    data_id: int | None = None
    crc_byte: int = 0
    e2e: Any = None
    data: bytes = bytes(8)
    period_s: float | None = None
    is_fd: bool = False
    # bookkeeping, not configuration
    applied: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        self._validate()
        if self.e2e is not None:
            spec = self.e2e
            try:
                self.counter_byte = int(spec.counter_byte)
                self.counter_shift = int(spec.counter_shift)
                self.data_id = int(spec.data_id)
                self.crc_byte = int(spec.crc_byte)
            except AttributeError as err:
                raise FaultConfigError(
                    f"fault rule field 'e2e': expected an E2ESpec (counter_byte, counter_shift, data_id, "
                    f"crc_byte), but got {spec!r}"
                ) from err
        if not self.name:
            target = "" if self.id is None else f"@0x{self.id:X}"
            self.name = f"{self.action}{target}"

    def _validate(self) -> None:
        if self.action not in ACTIONS:
            raise FaultConfigError(f"fault rule: expected an action in {', '.join(ACTIONS)}, but got {self.action!r}")
        if self.id is not None and not 0 <= self.id < (1 << 29):
            raise FaultConfigError(f"fault rule field 'id': expected 0..0x1FFFFFFF, but got {self.id!r}")
        if not self.t0_s <= self.t1_s:
            raise FaultConfigError(f"fault rule window: expected t0_s <= t1_s, but got [{self.t0_s}, {self.t1_s})")
        if self.t0_s < 0:
            raise FaultConfigError(f"fault rule field 't0_s': expected >= 0, but got {self.t0_s}")
        if not 0.0 <= self.probability <= 1.0:
            raise FaultConfigError(f"fault rule field 'probability': expected 0..1, but got {self.probability}")
        if self.max_count is not None and self.max_count < 0:
            raise FaultConfigError(f"fault rule field 'max_count': expected >= 0, but got {self.max_count}")
        if self.delay_s < 0:
            raise FaultConfigError(f"fault rule field 'delay_s': expected >= 0, but got {self.delay_s}")
        if self.copies < 1:
            raise FaultConfigError(f"fault rule field 'copies': expected >= 1, but got {self.copies}")
        if self.max_hold_s <= 0:
            raise FaultConfigError(f"fault rule field 'max_hold_s': expected > 0, but got {self.max_hold_s}")
        if not 1 <= self.counter_bits <= 8 or not 0 <= self.counter_shift <= 8 - self.counter_bits:
            raise FaultConfigError(
                f"fault rule counter: expected counter_bits 1..8 inside one byte, but got "
                f"{self.counter_bits} bits at shift {self.counter_shift}"
            )
        if not 2 <= self.counter_modulo <= (1 << self.counter_bits):
            raise FaultConfigError(
                f"fault rule field 'counter_modulo': expected 2..{1 << self.counter_bits}, but got {self.counter_modulo}"
            )
        if self.counter_byte < 0 or self.crc_byte < 0:
            raise FaultConfigError("fault rule: expected counter_byte and crc_byte >= 0")
        if self.data_id is not None and not 0 <= self.data_id <= 0xFFFF:
            raise FaultConfigError(f"fault rule field 'data_id': expected 0..65535, but got {self.data_id}")
        if self.period_s is not None and self.period_s <= 0:
            raise FaultConfigError(f"fault rule field 'period_s': expected > 0, but got {self.period_s}")
        if self.set_bytes is not None:
            for index, value in self.set_bytes.items():
                if not (isinstance(index, int) and index >= 0 and isinstance(value, int) and 0 <= value <= 255):
                    raise FaultConfigError(
                        f"fault rule field 'set_bytes': expected {{byte index: 0..255}}, but got {index!r}: {value!r}"
                    )
        if self.action in ("babble", "cut_off") and not self.node:
            raise FaultConfigError(f"fault rule {self.action!r}: expected a 'node', but got none")
        if self.action == "babble":
            if self.id is None:
                raise FaultConfigError("fault rule 'babble': expected the 'id' to flood, but got none")
            if self.t1_s == math.inf and self.max_count is None:
                raise FaultConfigError("fault rule 'babble': expected an end (t1_s or max_count), but got neither")
            limit = 64 if self.is_fd else 8
            if len(self.data) > limit:
                raise FaultConfigError(f"fault rule 'babble': expected at most {limit} data bytes, but got {len(self.data)}")
        if self.receiver is not None and self.action != "drop":
            raise FaultConfigError(f"fault rule field 'receiver': only 'drop' takes it, but got action {self.action!r}")

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> FaultRule:
        """A rule from plain data (e.g. a TOML table); ids may be ``"0x123"`` text.

        Raises :class:`FaultConfigError` naming the first bad key or value.
        """
        if not isinstance(spec, Mapping):
            raise FaultConfigError(f"fault rule: expected a table of fields, but got {type(spec).__name__}")
        known = {f.name for f in fields(cls)} - {"applied"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise FaultConfigError(f"fault rule: unknown field {unknown[0]!r} (expected one of {', '.join(sorted(known))})")
        if "action" not in spec:
            raise FaultConfigError("fault rule: expected an 'action', but got none")
        kwargs: dict[str, Any] = {}
        for key, value in spec.items():
            if key in ("id", "mask", "max_count", "copies", "counter_byte", "counter_shift", "counter_bits",
                       "counter_modulo", "jump", "data_id", "crc_byte"):
                kwargs[key] = None if value is None and key in ("id", "max_count", "data_id") else _as_int(value, key)
            elif key in ("t0_s", "t1_s", "probability", "delay_s", "max_hold_s", "period_s"):
                kwargs[key] = None if value is None and key == "period_s" else _as_float(value, key)
            elif key in ("xor", "data"):
                kwargs[key] = _as_bytes(value, key)
            elif key == "set_bytes":
                if not isinstance(value, Mapping):
                    raise FaultConfigError(f"fault rule field 'set_bytes': expected a table, but got {value!r}")
                kwargs[key] = {_as_int(k, key): _as_int(v, key) for k, v in value.items()}
            elif key in ("extended", "is_fd"):
                if value is not None and not isinstance(value, bool):
                    raise FaultConfigError(f"fault rule field {key!r}: expected true/false, but got {value!r}")
                kwargs[key] = value
            elif key in ("action", "node", "receiver", "name"):
                if value is not None and not isinstance(value, str):
                    raise FaultConfigError(f"fault rule field {key!r}: expected text, but got {value!r}")
                kwargs[key] = value
            else:  # e2e
                kwargs[key] = value
        return cls(**kwargs)

    # -- matching ------------------------------------------------------------------------------

    def in_window(self, t_s: float) -> bool:
        """True when ``t_s`` lies in ``[t0_s, t1_s)``."""
        return self.t0_s <= t_s < self.t1_s

    def matches_frame(self, arbitration_id: int, is_extended_id: bool, node: str, t_s: float) -> bool:
        """Static match: window, node, id/mask, format (no probability, no count)."""
        if not self.t0_s <= t_s < self.t1_s:
            return False
        if self.node is not None and self.node != node:
            return False
        if self.id is not None and (arbitration_id ^ self.id) & self.mask:
            return False
        if self.extended is not None and self.extended != is_extended_id:
            return False
        return not (self.max_count is not None and self.applied >= self.max_count)


class FaultSet:
    """The rules of one channel, each with its own random stream seeded from the channel seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._serial = 0
        self.rules: list[FaultRule] = []
        self._rng: dict[int, random.Random] = {}
        self.send_rules: list[FaultRule] = []
        self.wire_rules: list[FaultRule] = []
        self.rx_rules: list[FaultRule] = []
        self.cut_rules: list[FaultRule] = []
        self.babble_rules: list[FaultRule] = []
        # last payload sent per (node, id): what stuck_payload / counter_freeze go back to
        self.last_payload: dict[tuple[str, int], bytes] = {}
        self._stuck: dict[tuple[int, str, int], bytes] = {}
        self._frozen: dict[tuple[int, str, int], int] = {}
        self.track_payloads = False

    def add(self, rule: FaultRule | Mapping[str, Any]) -> FaultRule:
        """Add a rule (a FaultRule or a dict for :meth:`FaultRule.from_dict`); returns it."""
        if not isinstance(rule, FaultRule):
            rule = FaultRule.from_dict(rule)
        self._serial += 1
        self._rng[id(rule)] = random.Random(f"hilbus:{self.seed}:{self._serial}")
        self.rules.append(rule)
        self._regroup()
        return rule

    def remove(self, rule: FaultRule) -> None:
        """Remove a rule (no effect when it is not there)."""
        if rule in self.rules:
            self.rules.remove(rule)
            self._rng.pop(id(rule), None)
            self._regroup()

    def clear(self) -> None:
        """Remove every rule."""
        self.rules.clear()
        self._rng.clear()
        self._regroup()

    def _regroup(self) -> None:
        self.send_rules = [r for r in self.rules if r.action in SEND_ACTIONS and r.receiver is None]
        self.wire_rules = [r for r in self.rules if r.action == "corrupt_wire"]
        self.rx_rules = [r for r in self.rules if r.action == "drop" and r.receiver is not None]
        self.cut_rules = [r for r in self.rules if r.action == "cut_off"]
        self.babble_rules = [r for r in self.rules if r.action == "babble"]
        self.track_payloads = any(r.action in ("stuck_payload", "counter_freeze") for r in self.rules)

    def fires(self, rule: FaultRule) -> bool:
        """Draw the rule's probability (no draw when it is 1) and count the application."""
        if rule.probability < 1.0 and self._rng[id(rule)].random() >= rule.probability:
            return False
        rule.applied += 1
        return True

    def rng(self, rule: FaultRule) -> random.Random:
        """The rule's own random stream."""
        return self._rng[id(rule)]

    def is_cut_off(self, node: str, t_s: float) -> FaultRule | None:
        """The cut_off rule disconnecting ``node`` at ``t_s``, if any."""
        for rule in self.cut_rules:
            if rule.node == node and rule.t0_s <= t_s < rule.t1_s:
                return rule
        return None

    def rx_dropped(self, receiver: str, arbitration_id: int, is_extended_id: bool, sender: str, t_s: float) -> FaultRule | None:
        """The receiver-side drop rule losing this frame at ``receiver``, if one fires."""
        for rule in self.rx_rules:
            if rule.receiver == receiver and rule.matches_frame(arbitration_id, is_extended_id, sender, t_s) and self.fires(rule):
                return rule
        return None

    # -- payload transforms (sender side) -----------------------------------------------------

    def transform_payload(self, rule: FaultRule, node: str, arbitration_id: int, data: bytes) -> bytes:
        """The payload a faulty sender puts on the wire under ``rule`` (a payload action)."""
        if rule.action == "corrupt_payload":
            out = bytearray(data)
            if rule.xor is not None:
                for i, mask in enumerate(rule.xor[: len(out)]):
                    out[i] ^= mask
            if rule.set_bytes:
                for i, value in rule.set_bytes.items():
                    if i < len(out):
                        out[i] = value
            if rule.xor is None and not rule.set_bytes and out:
                bit = self._rng[id(rule)].randrange(8 * len(out))
                out[bit >> 3] ^= 1 << (bit & 7)
            return bytes(out)
        if rule.action == "stuck_payload":
            key = (id(rule), node, arbitration_id)
            stuck = self._stuck.get(key)
            if stuck is None:
                stuck = self.last_payload.get((node, arbitration_id), data)
                self._stuck[key] = stuck
            # The frame keeps its own length (DLC); only its content is stuck.
            return stuck[: len(data)] + bytes(max(0, len(data) - len(stuck)))
        if rule.action in ("counter_freeze", "counter_jump"):
            if rule.counter_byte >= len(data):
                return data
            mask = ((1 << rule.counter_bits) - 1) << rule.counter_shift
            counter = (data[rule.counter_byte] & mask) >> rule.counter_shift
            if rule.action == "counter_freeze":
                key = (id(rule), node, arbitration_id)
                frozen = self._frozen.get(key)
                if frozen is None:
                    before = self.last_payload.get((node, arbitration_id))
                    if before is not None and rule.counter_byte < len(before):
                        frozen = (before[rule.counter_byte] & mask) >> rule.counter_shift
                    else:
                        frozen = counter
                    self._frozen[key] = frozen
                new = frozen
            else:
                new = (counter + rule.jump) % rule.counter_modulo
            out = bytearray(data)
            out[rule.counter_byte] = (out[rule.counter_byte] & ~mask & 0xFF) | (new << rule.counter_shift)
            if rule.data_id is not None and rule.crc_byte < len(out):
                out[rule.crc_byte] = _e2e_crc(rule.data_id, bytes(out[: rule.crc_byte] + out[rule.crc_byte + 1 :]))
            return bytes(out)
        raise FaultConfigError(f"fault rule: {rule.action!r} does not change payloads")


def _e2e_crc(data_id: int, payload: bytes) -> int:
    # The Z10-P1 CRC lives in vehicle_io (the one definition of the convention).
    from vehicle_io.e2e import e2e_crc

    return e2e_crc(data_id, payload)
