"""ISO 15765-2:2016 receive rules can-isotp 2.x does not apply, enforced before its state machine.

can-isotp is the simulated ECUs' ISO-TP layer; a few receive cases it handles differently
from the standard are corrected here, frame by frame, before the frame reaches it:

- a SingleFrame with SF_DL = 0 in a CAN frame of CAN_DL <= 8 (reserved: the escape sequence
  exists only for CAN_DL > 8) is ignored; can-isotp would read byte 1 as a length (9.6.2.2);
- a FirstFrame with FF_DL below FF_DLmin (8 for CAN_DL = 8, CAN_DL - 1 above) or an escaped
  FF_DL <= 4095 is ignored, no FlowControl sent; can-isotp would accept it (9.6.3.2);
- a FlowControl with a reserved STmin (0x80..0xF0, 0xFA..0xFF) is used as STmin = 0x7F
  (127 ms); can-isotp drops such a FlowControl, so the transfer would die at N_Bs (9.6.5.4);
- a FlowControl with a reserved FlowStatus (3..F) aborts the transmission (N_INVALID_FS,
  9.6.5.2); can-isotp ignores it and waits for N_Bs. It is handed on as an overflow, which
  makes can-isotp abort at once;
- on a functional address only SingleFrames are accepted: segmented transfers are not
  defined for functional addressing (ISO 15765-2:2016 9.4, 9.6.1).

The rules apply to frames carrying the stack's receive id; anything else passes unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import can

__all__ = ["STMIN_RESERVED_AS", "conform_rx_frame"]

#: the STmin a sender uses when the receiver announced a reserved value (ISO 15765-2 9.6.5.4)
STMIN_RESERVED_AS = 0x7F

_SF, _FF, _CF, _FC = 0, 1, 2, 3
_FS_OVERFLOW = 2


def _stmin_reserved(stmin: int) -> bool:
    return not (stmin <= 0x7F or 0xF1 <= stmin <= 0xF9)


def conform_rx_frame(msg: can.Message, *, functional: bool = False) -> can.Message | None:
    """The frame as can-isotp should see it, or None when ISO 15765-2 says to ignore it."""
    data = bytes(msg.data)
    if not data:
        return None
    kind = data[0] >> 4
    can_dl = len(data)
    if functional and kind != _SF:
        return None
    if kind == _SF:
        if data[0] & 0x0F == 0 and can_dl <= 8:
            return None
        return msg
    if kind == _FF:
        if can_dl < 2:
            return None
        ff_dl = ((data[0] & 0x0F) << 8) | data[1]
        if ff_dl == 0:  # escape sequence: 32-bit FF_DL, only for lengths above 4095
            if can_dl < 6 or int.from_bytes(data[2:6], "big") <= 0xFFF:
                return None
            return msg
        ff_dl_min = 8 if can_dl <= 8 else can_dl - 1
        return None if ff_dl < ff_dl_min else msg
    if kind == _FC and can_dl >= 3:
        status, stmin = data[0] & 0x0F, data[2]
        if status > _FS_OVERFLOW:
            return _replaced(msg, bytes([0x30 | _FS_OVERFLOW]) + data[1:])
        if _stmin_reserved(stmin):
            return _replaced(msg, data[:2] + bytes([STMIN_RESERVED_AS]) + data[3:])
    return msg


def _replaced(msg: can.Message, data: bytes) -> can.Message:
    import can

    return can.Message(timestamp=msg.timestamp, arbitration_id=msg.arbitration_id, is_extended_id=msg.is_extended_id,
                       is_fd=msg.is_fd, bitrate_switch=msg.bitrate_switch, dlc=msg.dlc, data=data,
                       channel=msg.channel, is_rx=msg.is_rx)
