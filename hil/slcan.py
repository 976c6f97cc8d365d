"""The SLCAN (Lawicel) adapter protocol as a pure engine: serial bytes in, replies and frames out.

An SLCAN adapter (Lawicel CANUSB/CAN232, CANable and their many clones) speaks ASCII lines
ended by CR over a serial port. This module is the adapter's side of that conversation,
with no I/O at all, so a pseudo-terminal emulator (``tools/slcan_emulator.py``) or a test
can drive it and every parsing path can be property-tested:

* :meth:`SlcanEngine.feed` takes bytes as they come from the serial port, in any chunks,
  and returns what the adapter does, in order: :class:`Reply` (bytes to write back) and
  :class:`Transmit` (a frame to put on the bus; its reply depends on whether the bus takes
  it, see :meth:`SlcanEngine.transmit_failed`).
* :meth:`SlcanEngine.encode_frame` turns a received frame into the line the adapter writes
  (``t``/``T``/``r``/``R``, CAN FD ``d``/``D``/``b``/``B``), with the 4-hex-digit millisecond
  timestamp (0..59999) when timestamps are on (``Z1``).

Commands (Lawicel CAN232/CANUSB manual; FD and ``Y`` as the CANable 2 firmware):

=========== ======================================================== ==================
command     meaning                                                  reply
=========== ======================================================== ==================
``Sn``      bit rate n = 0..8: 10k 20k 50k 100k 125k 250k 500k       CR (channel closed)
            800k 1M
``sxxyy``   bit rate from SJA1000 BTR0/BTR1 (8 MHz CAN clock)        CR (channel closed)
``Yn``      CAN FD data bit rate: Y2 = 2 Mbit/s, Y5 = 5 Mbit/s       CR (channel closed)
``O``/``L`` open the channel, normal / listen-only                   CR (closed, rate set)
``C``       close the channel                                        CR (open)
``tiiildd`` send a standard frame (``T``: 8-digit extended id)       ``z`` CR / ``Z`` CR
``riiil``   send a remote frame (``R``: extended)                    ``z`` CR / ``Z`` CR
``diiil..`` CAN FD frame, DLC as one hex digit (``b``: with BRS;     ``z`` CR / ``Z`` CR
            ``D``/``B``: extended)
``F``       status flags, two hex digits; reading clears them        ``Fxx`` CR (open)
``V``       hardware and software version                            ``V1013`` CR
``N``       serial number                                            ``Nxxxx`` CR
``Zn``      timestamps off (0) / on (1)                              CR (channel closed)
=========== ======================================================== ==================

Anything else, or a command in the wrong state, is answered with BEL (0x07) and counted. An
empty line is ignored (hosts send a few CRs to flush an adapter's buffer); a line feed is
ignored anywhere (terminals send CR LF). A line longer than :data:`MAX_LINE_BYTES` is
discarded up to its CR and answered with one BEL, so binary noise costs bounded memory and
the stream resynchronises at the next CR. The result is the same however the byte stream
is split into chunks.

Status flags (``F``), bit: 0 receive FIFO full, 1 transmit FIFO full, 2 error warning,
3 data overrun, 5 error passive, 7 bus error. The I/O side reports what it sees
(:meth:`SlcanEngine.note_rx_overflow`, :meth:`SlcanEngine.note_bus_state`); flags latch
until ``F`` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import can

CR = b"\r"
BEL = b"\x07"

#: Longest line kept: ``D`` + 8 id digits + DLC + 128 data digits + 4 timestamp digits, rounded up.
MAX_LINE_BYTES = 160

#: ``Sn`` -> bit rate (Lawicel; CANable firmware calls S7 750 kbit/s, python-can sends S7 for 750000).
BITRATES = {0: 10_000, 1: 20_000, 2: 50_000, 3: 100_000, 4: 125_000, 5: 250_000, 6: 500_000, 7: 800_000,
            8: 1_000_000}
#: ``Yn`` -> CAN FD data bit rate (CANable 2 firmware, as python-can sends it).
DATA_BITRATES = {2: 2_000_000, 5: 5_000_000}
#: SJA1000 CAN clock behind ``sxxyy`` (16 MHz crystal / 2).
BTR_CLOCK_HZ = 8_000_000

FD_DLC_TO_LEN = (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64)
_FD_LEN_TO_DLC = {length: dlc for dlc, length in enumerate(FD_DLC_TO_LEN)}

FLAG_RX_FULL = 0x01
FLAG_TX_FULL = 0x02
FLAG_ERROR_WARNING = 0x04
FLAG_DATA_OVERRUN = 0x08
FLAG_ERROR_PASSIVE = 0x20
FLAG_BUS_ERROR = 0x80

_HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")


@dataclass(frozen=True, slots=True)
class SlcanFrame:
    """A CAN frame as the adapter sees it (independent of python-can for pure tests)."""

    arbitration_id: int
    is_extended_id: bool = False
    is_remote_frame: bool = False
    is_fd: bool = False
    bitrate_switch: bool = False
    dlc: int = 0  # data length in bytes (remote frames: the requested length)
    data: bytes = b""

    def to_message(self) -> can.Message:
        return can.Message(
            arbitration_id=self.arbitration_id, is_extended_id=self.is_extended_id,
            is_remote_frame=self.is_remote_frame, is_fd=self.is_fd, bitrate_switch=self.bitrate_switch,
            dlc=self.dlc, data=None if self.is_remote_frame else self.data, check=False,
        )

    @classmethod
    def from_message(cls, msg: can.Message) -> SlcanFrame:
        data = b"" if msg.is_remote_frame else bytes(msg.data or b"")[: msg.dlc]
        return cls(int(msg.arbitration_id), bool(msg.is_extended_id), bool(msg.is_remote_frame), bool(msg.is_fd),
                   bool(msg.bitrate_switch), int(msg.dlc), data)


@dataclass(frozen=True, slots=True)
class Reply:
    """Bytes the adapter writes back to the host."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Transmit:
    """A frame to put on the bus; write ``ok_reply`` when the bus takes it, else
    :meth:`SlcanEngine.transmit_failed`'s BEL."""

    frame: SlcanFrame
    ok_reply: bytes


Event = Reply | Transmit


@dataclass
class SlcanCounters:
    """What the engine has seen; every error is also answered with one BEL."""

    lines: int = 0  # command lines (empty lines excluded)
    ok: int = 0  # commands answered positively
    errors: int = 0  # BELs sent (the sum of the error kinds below)
    unknown: int = 0  # unknown command letter
    bad_syntax: int = 0  # known command, malformed (length, digits, range)
    wrong_state: int = 0  # command not allowed now (e.g. S while open, t while closed)
    overlong: int = 0  # lines longer than MAX_LINE_BYTES, discarded
    tx_failed: int = 0  # frames the bus refused
    frames_to_bus: int = 0  # frames handed to the bus (Transmit events)
    frames_from_bus: int = 0  # frames encoded for the host
    frames_not_delivered: int = 0  # frames received while the channel was closed
    rx_overflow: int = 0  # frames the I/O side dropped (host not reading)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class SlcanState:
    """The adapter's settings."""

    is_open: bool = False
    listen_only: bool = False
    bitrate: int | None = None
    data_bitrate: int | None = None
    timestamps: bool = False
    flags: int = 0


class SlcanEngine:
    """One SLCAN adapter (see the module docstring). Not thread-safe: callers serialise.

    ``bitrate``: the bit rate the adapter powers up with (None: the host must send ``S`` or
    ``s`` before ``O``). ``bus_bitrate``: the bit rate of the bus it is wired to, when known;
    ``O``/``L`` at another rate is refused with BEL.
    """

    def __init__(self, *, bitrate: int | None = None, bus_bitrate: int | None = None, serial_number: str = "Z10E",
                 hw_version: int = 10, sw_version: int = 13) -> None:
        if len(serial_number) != 4 or not serial_number.isalnum() or not serial_number.isascii():
            raise ValueError(f"expected a serial number of 4 letters or digits, but got {serial_number!r}")
        if not (0 <= hw_version <= 99 and 0 <= sw_version <= 99):
            raise ValueError(f"expected versions 0..99, but got {hw_version}, {sw_version}")
        self.state = SlcanState(bitrate=bitrate)
        self.bus_bitrate = bus_bitrate
        self.counters = SlcanCounters()
        self.serial_number = serial_number
        self.version = f"{hw_version:02d}{sw_version:02d}"
        self.last_error = ""
        self._line = bytearray()
        self._line_len = 0

    # -- host -> adapter ----------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        """Consume serial bytes; return the adapter's reactions to every line they complete."""
        events: list[Event] = []
        pos = 0
        n = len(data)
        while pos < n:
            end = data.find(b"\r", pos)
            stop = n if end < 0 else end
            if stop > pos:
                room = MAX_LINE_BYTES + 1 - len(self._line)
                if room > 0:
                    self._line += data[pos:min(stop, pos + room)].replace(b"\n", b"")
                # Line feeds do not count towards the length (they are dropped anyway).
                self._line_len += (stop - pos) - data.count(b"\n", pos, stop)
            if end < 0:
                break
            pos = end + 1
            line_len = self._line_len
            line = bytes(self._line)
            self._line.clear()
            self._line_len = 0
            if line_len == 0:
                continue
            self.counters.lines += 1
            if line_len > MAX_LINE_BYTES:
                events.append(self._fail("overlong", f"expected a line of at most {MAX_LINE_BYTES} bytes, "
                                                     f"but got {line_len}"))
                continue
            events.append(self._command(line))
        return events

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished line held (bounded by MAX_LINE_BYTES + 1)."""
        return len(self._line)

    def transmit_failed(self, reason: str, queue_full: bool = False) -> bytes:
        """The bus refused a :class:`Transmit`: count it, latch a flag, return the BEL to write."""
        self.counters.frames_to_bus -= 1
        self.counters.ok -= 1
        self.counters.tx_failed += 1
        self.state.flags |= FLAG_TX_FULL if queue_full else FLAG_BUS_ERROR
        return self._fail(None, f"the bus refused the frame: {reason}").data

    def _fail(self, kind: str | None, reason: str) -> Reply:
        self.counters.errors += 1
        if kind is not None:
            setattr(self.counters, kind, getattr(self.counters, kind) + 1)
        self.last_error = reason
        return Reply(BEL)

    def _ok(self, reply: bytes = CR) -> Reply:
        self.counters.ok += 1
        return Reply(reply)

    def _command(self, line: bytes) -> Event:
        letter = chr(line[0])
        body = line[1:]
        handler = _HANDLERS.get(letter)
        if handler is None:
            return self._fail("unknown", f"expected a command letter (O C L S s Y t T r R d D b B F V N Z), "
                                         f"but got {letter!r}")
        return handler(self, body)

    def _closed_only(self, what: str) -> Reply | None:
        if self.state.is_open:
            return self._fail("wrong_state", f"{what}: expected the channel closed (C), but it is open")
        return None

    def _cmd_S(self, body: bytes) -> Event:
        if len(body) != 1 or body[0] - 0x30 not in BITRATES:
            return self._fail("bad_syntax", f"S: expected S0..S8, but got S{body.decode('latin-1')!r}")
        return self._closed_only("S") or self._set_bitrate(BITRATES[body[0] - 0x30])

    def _set_bitrate(self, bitrate: int) -> Reply:
        self.state.bitrate = bitrate
        return self._ok()

    def _cmd_s(self, body: bytes) -> Event:
        if len(body) != 4 or not set(body) <= _HEX_DIGITS:
            return self._fail("bad_syntax", f"s: expected 4 hex digits BTR0 BTR1, but got {body.decode('latin-1')!r}")
        btr0, btr1 = int(body[:2], 16), int(body[2:], 16)
        brp = (btr0 & 0x3F) + 1
        tseg1 = (btr1 & 0x0F) + 1
        tseg2 = ((btr1 >> 4) & 0x07) + 1
        return self._closed_only("s") or self._set_bitrate(round(BTR_CLOCK_HZ / (brp * (1 + tseg1 + tseg2))))

    def _cmd_Y(self, body: bytes) -> Event:
        if len(body) != 1 or body[0] - 0x30 not in DATA_BITRATES:
            return self._fail("bad_syntax", f"Y: expected Y2 or Y5, but got Y{body.decode('latin-1')!r}")
        refused = self._closed_only("Y")
        if refused:
            return refused
        self.state.data_bitrate = DATA_BITRATES[body[0] - 0x30]
        return self._ok()

    def _open(self, body: bytes, listen_only: bool) -> Event:
        name = "L" if listen_only else "O"
        if body:
            return self._fail("bad_syntax", f"{name}: expected no argument, but got {body.decode('latin-1')!r}")
        refused = self._closed_only(name)
        if refused:
            return refused
        if self.state.bitrate is None:
            return self._fail("wrong_state", f"{name}: expected a bit rate first (S or s), but none is set")
        if self.bus_bitrate is not None and self.state.bitrate != self.bus_bitrate:
            # A controller at the wrong bit rate cannot join the bus: refuse rather than
            # pretend (a real adapter would open and see only error frames).
            return self._fail("wrong_state", f"{name}: expected the bus's {self.bus_bitrate} bit/s, but the adapter "
                                             f"is set to {self.state.bitrate} bit/s")
        self.state.is_open = True
        self.state.listen_only = listen_only
        return self._ok()

    def _cmd_O(self, body: bytes) -> Event:
        return self._open(body, False)

    def _cmd_L(self, body: bytes) -> Event:
        return self._open(body, True)

    def _cmd_C(self, body: bytes) -> Event:
        if body:
            return self._fail("bad_syntax", f"C: expected no argument, but got {body.decode('latin-1')!r}")
        if not self.state.is_open:
            return self._fail("wrong_state", "C: expected an open channel, but it is closed")
        self.state.is_open = False
        self.state.listen_only = False
        return self._ok()

    def _cmd_F(self, body: bytes) -> Event:
        if body:
            return self._fail("bad_syntax", f"F: expected no argument, but got {body.decode('latin-1')!r}")
        if not self.state.is_open:
            return self._fail("wrong_state", "F: expected an open channel, but it is closed")
        flags, self.state.flags = self.state.flags, 0
        return self._ok(f"F{flags:02X}".encode() + CR)

    def _cmd_V(self, body: bytes) -> Event:
        if body:
            return self._fail("bad_syntax", f"V: expected no argument, but got {body.decode('latin-1')!r}")
        return self._ok(f"V{self.version}".encode() + CR)

    def _cmd_N(self, body: bytes) -> Event:
        if body:
            return self._fail("bad_syntax", f"N: expected no argument, but got {body.decode('latin-1')!r}")
        return self._ok(f"N{self.serial_number}".encode() + CR)

    def _cmd_Z(self, body: bytes) -> Event:
        if body not in (b"0", b"1"):
            return self._fail("bad_syntax", f"Z: expected Z0 or Z1, but got Z{body.decode('latin-1')!r}")
        refused = self._closed_only("Z")
        if refused:
            return refused
        self.state.timestamps = body == b"1"
        return self._ok()

    def _frame(self, letter: str, body: bytes) -> Event:
        extended = letter in "TRDB"
        remote = letter in "rR"
        fd = letter in "dDbB"
        id_len = 8 if extended else 3
        if len(body) < id_len + 1 or not set(body) <= _HEX_DIGITS:
            return self._fail("bad_syntax", f"{letter}: expected {id_len} id digits, a length digit and hex data, "
                                            f"but got {body.decode('latin-1')!r}")
        can_id = int(body[:id_len], 16)
        if can_id > (0x1FFFFFFF if extended else 0x7FF):
            return self._fail("bad_syntax", f"{letter}: expected an id <= {'1FFFFFFF' if extended else '7FF'}, "
                                            f"but got {body[:id_len].decode()}")
        dlc_digit = int(body[id_len:id_len + 1], 16)
        if fd:
            length = FD_DLC_TO_LEN[dlc_digit]
        else:
            if dlc_digit > 8:
                return self._fail("bad_syntax", f"{letter}: expected a length digit 0..8, but got {dlc_digit:X}")
            length = dlc_digit
        data_hex = body[id_len + 1:]
        expected_digits = 0 if remote else 2 * length
        if len(data_hex) != expected_digits:
            return self._fail("bad_syntax", f"{letter}: expected {expected_digits} data digits for length {length}, "
                                            f"but got {len(data_hex)}")
        if not self.state.is_open or self.state.listen_only:
            state = "listen-only" if self.state.is_open else "closed"
            return self._fail("wrong_state", f"{letter}: expected an open channel (O) to send, but it is {state}")
        frame = SlcanFrame(can_id, extended, remote, fd, letter in "bB", length,
                           b"" if remote else bytes.fromhex(data_hex.decode()))
        self.counters.ok += 1
        self.counters.frames_to_bus += 1
        return Transmit(frame, b"Z\r" if extended else b"z\r")

    # -- adapter -> host ----------------------------------------------------------------------

    def encode_frame(self, frame: SlcanFrame | can.Message, timestamp_s: float | None = None) -> bytes | None:
        """The line the adapter writes for a received frame; None when the channel is closed.

        Error frames are not written (SLCAN has no line for them): they set the bus error flag.
        """
        if isinstance(frame, can.Message):
            if frame.is_error_frame:
                self.state.flags |= FLAG_BUS_ERROR
                return None
            if timestamp_s is None:
                timestamp_s = frame.timestamp
            frame = SlcanFrame.from_message(frame)
        if not self.state.is_open:
            self.counters.frames_not_delivered += 1
            return None
        id_text = f"{frame.arbitration_id:08X}" if frame.is_extended_id else f"{frame.arbitration_id:03X}"
        if frame.is_remote_frame:
            letter = "R" if frame.is_extended_id else "r"
            line = f"{letter}{id_text}{min(frame.dlc, 8):X}"
        elif frame.is_fd:
            letter = ("B" if frame.is_extended_id else "b") if frame.bitrate_switch else ("D" if frame.is_extended_id else "d")
            length = len(frame.data)
            padded = next(x for x in FD_DLC_TO_LEN if x >= length)
            line = f"{letter}{id_text}{_FD_LEN_TO_DLC[padded]:X}{(frame.data + bytes(padded - length)).hex().upper()}"
        else:
            letter = "T" if frame.is_extended_id else "t"
            line = f"{letter}{id_text}{len(frame.data)}{frame.data.hex().upper()}"
        if self.state.timestamps:
            line += f"{int((timestamp_s or 0.0) * 1000) % 60000:04X}"
        self.counters.frames_from_bus += 1
        return line.encode() + CR

    def note_rx_overflow(self, frames: int = 1) -> None:
        """The I/O side dropped ``frames`` received frames (the host did not read in time)."""
        self.counters.rx_overflow += frames
        self.state.flags |= FLAG_RX_FULL | FLAG_DATA_OVERRUN

    def note_bus_state(self, *, error_warning: bool = False, error_passive: bool = False, bus_error: bool = False) -> None:
        """Latch the controller's error state as the I/O side sees it on the bus."""
        if error_warning:
            self.state.flags |= FLAG_ERROR_WARNING
        if error_passive:
            self.state.flags |= FLAG_ERROR_PASSIVE | FLAG_ERROR_WARNING
        if bus_error:
            self.state.flags |= FLAG_BUS_ERROR


def _frame_handler(letter: str) -> Any:
    def handler(engine: SlcanEngine, body: bytes) -> Event:
        return engine._frame(letter, body)

    return handler


_HANDLERS: dict[str, Any] = {
    "S": SlcanEngine._cmd_S,
    "s": SlcanEngine._cmd_s,
    "Y": SlcanEngine._cmd_Y,
    "O": SlcanEngine._cmd_O,
    "L": SlcanEngine._cmd_L,
    "C": SlcanEngine._cmd_C,
    "F": SlcanEngine._cmd_F,
    "V": SlcanEngine._cmd_V,
    "N": SlcanEngine._cmd_N,
    "Z": SlcanEngine._cmd_Z,
    **{letter: _frame_handler(letter) for letter in "tTrRdDbB"},
}
