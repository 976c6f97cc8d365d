"""E2E protection "Z10-P1": CRC8 SAE J1850 + 4-bit alive counter, modelled on AUTOSAR Profile 1.

The convention (docs/ and the DBC comments describe it for the ECU side):

* a safety-relevant message (DBC attribute ``SafetyRelevant`` = "Yes") has a 16-bit
  ``E2E_DataID`` and two signals marked by ``E2E_Role``: an 8-bit CRC (byte 0 in Z10) and a
  4-bit alive counter (low nibble of byte 1 in Z10);
* CRC8 SAE J1850 (poly 0x1D, init 0xFF, xorout 0xFF, not reflected) over the data id low byte,
  the data id high byte, then every byte of the frame except the CRC byte, up to the
  message's DBC length;
* the sender counts 0..14 and wraps to 0; 15 is never valid.

Senders call :func:`protect`. Receivers run, per message, a per-frame check
(:class:`CheckStatus`) and a state machine over a window of those results
(:class:`SMState`), with AUTOSAR E2E_SM semantics: values are acted on only in ``VALID``.
:class:`E2EReceiver` is the readable scalar reference; the gateway runs the same logic over
arrays in :mod:`vehicle_io._e2e_kernels` (imported lazily: it needs numba).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vehicle_io.errors import VehicleIoError

if TYPE_CHECKING:
    from cantools.database.can import Message

CRC8_POLY = 0x1D
CRC8_INIT = 0xFF
CRC8_XOROUT = 0xFF
COUNTER_MAX = 14  # 15 is the invalid marker of Profile 1
COUNTER_MODULO = COUNTER_MAX + 1


def _build_table(poly: int) -> npt.NDArray[np.uint8]:
    table = np.zeros(256, dtype=np.uint8)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table[byte] = crc
    return table


#: CRC8 SAE J1850 lookup table (MSB first, poly 0x1D); shared with the batch kernels.
CRC8_TABLE: npt.NDArray[np.uint8] = _build_table(CRC8_POLY)
#: The same table as Python ints, for byte-by-byte loops in Python (a tuple index is far
#: cheaper than a numpy element read there).
CRC8_TABLE_INTS: tuple[int, ...] = tuple(int(v) for v in CRC8_TABLE)


class E2EError(VehicleIoError, ValueError):
    """An E2E specification or configuration is not usable as given."""


def crc8_sae_j1850(data: bytes | bytearray | memoryview | Iterable[int], crc: int = CRC8_INIT) -> int:
    """CRC8 SAE J1850 of ``data`` (init 0xFF, final xor 0xFF); check("123456789") = 0x4B."""
    table = CRC8_TABLE_INTS
    for byte in bytes(data):
        crc = table[crc ^ byte]
    return crc ^ CRC8_XOROUT


def e2e_crc(data_id: int, payload: bytes | bytearray | memoryview | Iterable[int]) -> int:
    """Z10-P1 CRC: CRC8 J1850 over data id (low byte, high byte) then ``payload``.

    ``payload`` is the frame without its CRC byte (bytes 1..length-1 in Z10).
    """
    if not 0 <= data_id <= 0xFFFF:
        raise E2EError(f"expected a 16-bit E2E data id, but got {data_id!r}")
    table = CRC8_TABLE_INTS
    crc = table[CRC8_INIT ^ (data_id & 0xFF)]
    crc = table[crc ^ (data_id >> 8)]
    for byte in bytes(payload):
        crc = table[crc ^ byte]
    return crc ^ CRC8_XOROUT


@dataclass(frozen=True, slots=True)
class E2ESpec:
    """Where the E2E fields of one message sit, read from the DBC.

    ``crc_byte`` is the byte holding the CRC; the counter is the 4 bits at
    ``counter_byte``/``counter_shift``. ``length`` is the DBC length the CRC covers.
    """

    message_name: str
    frame_id: int
    data_id: int
    length: int
    crc_signal: str
    counter_signal: str
    crc_byte: int
    counter_byte: int
    counter_shift: int

    def __post_init__(self) -> None:
        if not 0 <= self.data_id <= 0xFFFF:
            raise E2EError(f"{self.message_name}: expected E2E_DataID 0..65535, but got {self.data_id}")
        if not 0 <= self.crc_byte < self.length:
            raise E2EError(
                f"{self.message_name}: expected the CRC byte inside the {self.length}-byte frame, "
                f"but got byte {self.crc_byte}"
            )
        if not 0 <= self.counter_byte < self.length or self.counter_byte == self.crc_byte:
            raise E2EError(
                f"{self.message_name}: expected the counter in a byte of its own inside the frame, "
                f"but got byte {self.counter_byte} (CRC byte {self.crc_byte})"
            )
        if not 0 <= self.counter_shift <= 4:
            raise E2EError(f"{self.message_name}: expected a counter shift 0..4, but got {self.counter_shift}")

    @classmethod
    def from_message(cls, message: Message) -> E2ESpec | None:
        """The spec of a cantools message, or None when it is not safety relevant.

        Raises :class:`~vehicle_io.errors.DbcError` (from :func:`vehicle_io.dbc.e2e_spec`) or
        :class:`E2EError` naming the message when it is marked safety relevant but its
        counter/CRC signals are missing or not laid out as Z10-P1 needs.
        """
        names = _e2e_signal_names(message)
        if names is None:
            return None
        data_id, counter_name, crc_name = names
        signals = {s.name: s for s in message.signals}
        crc_sig = signals.get(crc_name)
        ctr_sig = signals.get(counter_name)
        if crc_sig is None or ctr_sig is None:
            raise E2EError(
                f"{message.name}: expected CRC signal {crc_name!r} and counter signal "
                f"{counter_name!r}, but the message has {sorted(signals)}"
            )
        if crc_sig.length != 8 or crc_sig.is_signed or crc_sig.multiplexer_ids:
            raise E2EError(f"{message.name}: expected an unsigned, unmultiplexed 8-bit CRC signal {crc_name!r}")
        crc_lsb = _lsb_position(crc_sig)
        if crc_lsb % 8 != 0:
            raise E2EError(
                f"{message.name}: expected CRC signal {crc_name!r} to fill one byte, but its low bit is {crc_lsb}"
            )
        if ctr_sig.length != 4 or ctr_sig.is_signed or ctr_sig.multiplexer_ids:
            raise E2EError(
                f"{message.name}: expected an unsigned, unmultiplexed 4-bit counter signal {counter_name!r}"
            )
        ctr_lsb = _lsb_position(ctr_sig)
        if ctr_lsb % 8 > 4:
            raise E2EError(
                f"{message.name}: expected counter signal {counter_name!r} inside one byte, "
                f"but its low bit is {ctr_lsb}"
            )
        return cls(
            message_name=message.name,
            frame_id=message.frame_id,
            data_id=int(data_id),
            length=int(message.length),
            crc_signal=crc_name,
            counter_signal=counter_name,
            crc_byte=crc_lsb // 8,
            counter_byte=ctr_lsb // 8,
            counter_shift=ctr_lsb % 8,
        )

    def counter_of(self, data: bytes | bytearray | Sequence[int]) -> int:
        """The alive counter carried by ``data``."""
        return (data[self.counter_byte] >> self.counter_shift) & 0x0F

    def crc_of(self, data: bytes | bytearray | Sequence[int]) -> int:
        """The CRC ``data`` should carry (computed, not read)."""
        frame = bytes(data[: self.length])
        if len(frame) < self.length:
            raise E2EError(
                f"{self.message_name}: expected at least {self.length} bytes, but got {len(frame)}"
            )
        return e2e_crc(self.data_id, frame[: self.crc_byte] + frame[self.crc_byte + 1 :])


def _lsb_position(signal: Any) -> int:
    """Bit number (byte * 8 + bit, LSB0 within a byte) of a little-endian signal's LSB."""
    if signal.byte_order != "little_endian":
        raise E2EError(f"signal {signal.name}: expected Intel (little-endian) byte order for an E2E field")
    return int(signal.start)


def _e2e_signal_names(message: Message) -> tuple[int, str, str] | None:
    """(data_id, counter_signal, crc_signal) of a safety-relevant message, else None.

    The DBC module owns the attribute convention (:func:`vehicle_io.dbc.e2e_spec`, which
    raises :class:`~vehicle_io.errors.DbcError` naming file and line for a broken one).
    """
    from vehicle_io.dbc import e2e_spec

    spec = e2e_spec(message)
    if spec is None:
        return None
    return int(spec.data_id), spec.counter_signal, spec.crc_signal


def e2e_specs(messages: Iterable[Message]) -> dict[str, E2ESpec]:
    """Specs of every safety-relevant message among ``messages``, by message name."""
    out: dict[str, E2ESpec] = {}
    for message in messages:
        spec = E2ESpec.from_message(message)
        if spec is not None:
            out[message.name] = spec
    return out


# -- sender ---------------------------------------------------------------------------------


def protect(spec: E2ESpec, data: bytes | bytearray | Sequence[int], counter: int) -> bytearray:
    """A copy of ``data`` with the alive counter and the CRC filled in (what a sender transmits)."""
    if not 0 <= counter <= COUNTER_MAX:
        raise E2EError(f"{spec.message_name}: expected an alive counter 0..{COUNTER_MAX}, but got {counter}")
    frame = bytearray(data)
    if len(frame) < spec.length:
        raise E2EError(f"{spec.message_name}: expected at least {spec.length} bytes, but got {len(frame)}")
    mask = 0x0F << spec.counter_shift
    frame[spec.counter_byte] = (frame[spec.counter_byte] & ~mask & 0xFF) | (counter << spec.counter_shift)
    frame[spec.crc_byte] = spec.crc_of(frame)
    return frame


def protect_batch(
    spec: E2ESpec, data: npt.NDArray[np.uint8], counters: npt.ArrayLike
) -> npt.NDArray[np.uint8]:
    """Fill counters and CRCs into the rows of ``data`` (uint8[K, >= length]) in place; returns it.

    Pure numpy (column-wise table lookups), so simulated ECUs can protect whole batches without
    numba.
    """
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] < spec.length:
        raise E2EError(
            f"{spec.message_name}: expected uint8[K, >= {spec.length}] frames, "
            f"but got {data.dtype}{list(data.shape)}"
        )
    ctr = np.asarray(counters, dtype=np.int64).reshape(-1)
    if ctr.shape[0] != data.shape[0]:
        raise E2EError(f"{spec.message_name}: expected {data.shape[0]} counters, but got {ctr.shape[0]}")
    if ctr.size and (ctr.min() < 0 or ctr.max() > COUNTER_MAX):
        raise E2EError(f"{spec.message_name}: expected alive counters 0..{COUNTER_MAX}, but got {ctr.min()}..{ctr.max()}")
    mask = np.uint8(~(0x0F << spec.counter_shift) & 0xFF)
    data[:, spec.counter_byte] = (data[:, spec.counter_byte] & mask) | (ctr << spec.counter_shift).astype(np.uint8)
    table = CRC8_TABLE
    crc = table[np.full(data.shape[0], CRC8_INIT ^ (spec.data_id & 0xFF), dtype=np.uint8)]
    crc = table[crc ^ np.uint8(spec.data_id >> 8)]
    for col in range(spec.length):
        if col != spec.crc_byte:
            crc = table[crc ^ data[:, col]]
    data[:, spec.crc_byte] = crc ^ np.uint8(CRC8_XOROUT)
    return data


def next_counter(counter: int) -> int:
    """The alive counter after ``counter`` (0..14, wrapping 14 -> 0)."""
    return (counter + 1) % COUNTER_MODULO


# -- receiver -------------------------------------------------------------------------------


class CheckStatus(enum.IntEnum):
    """Result of checking one received frame (or of a missed deadline)."""

    OK = 0
    REPEATED = 1
    OK_SOME_LOST = 2
    WRONG_SEQUENCE = 3
    ERROR = 4
    NO_NEW_DATA = 5


class SMState(enum.IntEnum):
    """E2E state machine state; data are usable only in VALID."""

    NODATA = 0
    INIT = 1
    VALID = 2
    INVALID = 3


@dataclass(frozen=True, slots=True)
class E2EConfig:
    """Receiver thresholds (AUTOSAR E2E_SMConfigType with one window size).

    ``max_delta``: largest counter step still accepted as OK_SOME_LOST (AUTOSAR
    MaxDeltaCounter). The window counts OK (OK and OK_SOME_LOST) and ERROR results of the
    last ``window_size`` checks; REPEATED, WRONG_SEQUENCE and NO_NEW_DATA count as neither,
    so they dilute the OK count. ``clear_to_invalid`` empties the window on VALID -> INVALID.
    """

    max_delta: int = 2
    window_size: int = 3
    min_ok_init: int = 2
    max_error_init: int = 0
    min_ok_valid: int = 1
    max_error_valid: int = 1
    min_ok_invalid: int = 2
    max_error_invalid: int = 0
    clear_to_invalid: bool = False

    def __post_init__(self) -> None:
        w = self.window_size
        problems = []
        if not 1 <= w <= 64:
            problems.append(f"window_size 1..64, but got {w}")
        if not 1 <= self.max_delta <= COUNTER_MAX - 1:
            problems.append(f"max_delta 1..{COUNTER_MAX - 1}, but got {self.max_delta}")
        if not 1 <= self.min_ok_valid <= self.min_ok_init <= self.min_ok_invalid:
            problems.append(
                "1 <= min_ok_valid <= min_ok_init <= min_ok_invalid, but got "
                f"{self.min_ok_valid}, {self.min_ok_init}, {self.min_ok_invalid}"
            )
        if not 0 <= self.max_error_invalid <= self.max_error_init <= self.max_error_valid:
            problems.append(
                "0 <= max_error_invalid <= max_error_init <= max_error_valid, but got "
                f"{self.max_error_invalid}, {self.max_error_init}, {self.max_error_valid}"
            )
        for state, ok, err in (
            ("init", self.min_ok_init, self.max_error_init),
            ("valid", self.min_ok_valid, self.max_error_valid),
            ("invalid", self.min_ok_invalid, self.max_error_invalid),
        ):
            if ok + err > w:
                problems.append(f"min_ok_{state} + max_error_{state} <= window_size {w}, but got {ok + err}")
        if problems:
            raise E2EError("E2EConfig: expected " + "; ".join(problems))


def classify(last_counter: int | None, counter: int, crc_ok: bool, max_delta: int) -> CheckStatus:
    """Per-frame check of Z10-P1 (``last_counter`` None: first frame since reset)."""
    if not crc_ok or counter > COUNTER_MAX:
        return CheckStatus.ERROR
    if last_counter is None:
        return CheckStatus.OK
    delta = (counter - last_counter) % COUNTER_MODULO
    if delta == 0:
        return CheckStatus.REPEATED
    if delta == 1:
        return CheckStatus.OK
    if delta <= max_delta:
        return CheckStatus.OK_SOME_LOST
    return CheckStatus.WRONG_SEQUENCE


class E2EStateMachine:
    """NODATA -> INIT -> VALID / INVALID over a sliding window of check results."""

    def __init__(self, config: E2EConfig | None = None) -> None:
        self.config = config or E2EConfig()
        self.state = SMState.NODATA
        self._window: list[CheckStatus | None] = [None] * self.config.window_size
        self._top = 0
        self.ok_count = 0
        self.error_count = 0

    def reset(self) -> None:
        """Back to NODATA with an empty window."""
        self.state = SMState.NODATA
        self._clear()

    def _clear(self) -> None:
        self._window = [None] * self.config.window_size
        self._top = 0
        self.ok_count = 0
        self.error_count = 0

    def _add(self, status: CheckStatus) -> None:
        # The counts follow the window entry that leaves and the one that enters: the same
        # numbers as counting the whole window, without a pass over it per frame.
        window = self._window
        top = self._top
        gone = window[top]
        if gone is CheckStatus.OK or gone is CheckStatus.OK_SOME_LOST:
            self.ok_count -= 1
        elif gone is CheckStatus.ERROR:
            self.error_count -= 1
        window[top] = status
        self._top = (top + 1) % self.config.window_size
        if status is CheckStatus.OK or status is CheckStatus.OK_SOME_LOST:
            self.ok_count += 1
        elif status is CheckStatus.ERROR:
            self.error_count += 1

    def update(self, status: CheckStatus) -> SMState:
        """Feed one check result; returns the new state."""
        cfg = self.config
        if self.state is SMState.NODATA:
            # The first usable frame only opens the window (AUTOSAR: it is not counted).
            if status not in (CheckStatus.ERROR, CheckStatus.NO_NEW_DATA):
                self._clear()
                self.state = SMState.INIT
        elif self.state is SMState.INIT:
            self._add(status)
            if self.error_count > cfg.max_error_init:
                if cfg.clear_to_invalid:
                    self._clear()
                self.state = SMState.INVALID
            elif self.ok_count >= cfg.min_ok_init:
                self.state = SMState.VALID
        elif self.state is SMState.VALID:
            self._add(status)
            if not (self.error_count <= cfg.max_error_valid and self.ok_count >= cfg.min_ok_valid):
                if cfg.clear_to_invalid:
                    self._clear()
                self.state = SMState.INVALID
        else:
            self._add(status)
            if self.error_count <= cfg.max_error_invalid and self.ok_count >= cfg.min_ok_invalid:
                self.state = SMState.VALID
        return self.state


#: E2EReceiver.check's short path for a VALID receiver given the next frame of its length
#: (counter in sequence, CRC holds: verdict cached or computed from the precomputed data-id
#: register); False runs the general path for every frame (tests compare both over random
#: frame sequences).
_FAST_PATHS = True
_SM_VALID = SMState.VALID
_OK = CheckStatus.OK


class E2EReceiver:
    """Scalar receiver of one message: per-frame check plus state machine.

    The readable reference for the batch kernels the gateway uses; also handy in tools.
    """

    def __init__(self, spec: E2ESpec, config: E2EConfig | None = None) -> None:
        self.spec = spec
        self.config = config or E2EConfig()
        self.sm = E2EStateMachine(self.config)
        self.last_counter: int | None = None
        # CRC verdicts of recent frames: a command that holds still repeats 15 frames (one
        # per counter value), so most checks are a lookup. Bounded; the CRC is a pure function.
        self._crc_ok: dict[bytes, bool] = {}
        self._length = spec.length  # the short path's frame length (see check())

    @property
    def state(self) -> SMState:
        return self.sm.state

    def _crc_holds(self, frame: bytes) -> bool:
        ok = self._crc_ok.get(frame)
        if ok is None:
            ok = frame[self.spec.crc_byte] == self.spec.crc_of(frame)
            if len(self._crc_ok) >= 4 * COUNTER_MODULO:
                self._crc_ok.clear()
            self._crc_ok[frame] = ok
        return ok

    def check(self, data: bytes | bytearray | Sequence[int]) -> tuple[CheckStatus, SMState]:
        """Check one received frame; returns (frame status, state after it)."""
        if _FAST_PATHS and self.sm.state is _SM_VALID and type(data) is bytes and len(data) == self._length:
            # The usual case of a running receiver: VALID, a frame of exactly its length with
            # the next counter value and a CRC that holds. The same steps as the general path:
            # the CRC verdict from _crc_holds (its cache), status OK, last_counter moves,
            # the state machine takes an OK. Anything else goes the general way.
            counter = self.spec.counter_of(data)
            last = self.last_counter
            if last is not None and counter == (last + 1) % COUNTER_MODULO and self._crc_holds(data):
                self.last_counter = counter
                return _OK, self.sm.update(_OK)
        return self._check_general(data)

    def _check_general(self, data: bytes | bytearray | Sequence[int]) -> tuple[CheckStatus, SMState]:
        """:meth:`check` without the short path: the readable reference."""
        frame = bytes(data)
        if len(frame) < self.spec.length:
            status = CheckStatus.ERROR
        else:
            counter = self.spec.counter_of(frame)
            crc_ok = self._crc_holds(frame[: self.spec.length])
            status = classify(self.last_counter, counter, crc_ok, self.config.max_delta)
            if status is not CheckStatus.ERROR:
                # Resynchronise on every frame whose CRC holds, as Profile 1 does after a jump.
                self.last_counter = counter
        return status, self.sm.update(status)

    def no_new_data(self) -> SMState:
        """A reception deadline passed with no frame: feeds NO_NEW_DATA."""
        return self.sm.update(CheckStatus.NO_NEW_DATA)

    def reset(self) -> None:
        self.sm.reset()
        self.last_counter = None
