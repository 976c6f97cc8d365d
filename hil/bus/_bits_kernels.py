"""Numba kernel of :func:`hil.bus.bits.bit_counts`: a frame's nominal and data bits, compiled.

Imported lazily (:func:`hil.bus.bits.counting_function`), so importing :mod:`hil.bus` does not
import numba. The rules are those of :func:`hil.bus.bits.frame_bits` (ISO 11898-1:2015, see
:mod:`hil.bus.bits`), walked bit by bit: the stream SOF .. data field (classic: .. CRC), the
dynamic stuff bits counted as they would be inserted, then the fixed parts. No tables and no
cache: every frame costs about the same, a few hundred nanoseconds with the call.
"""

from __future__ import annotations

from numba import njit

CRC15_POLY = 0x4599
#: Recessive bits after the CRC sequence: CRC delimiter, ACK slot, ACK delimiter, EOF 7, IFS 3.
TRAILER_BITS = 13


@njit(cache=True)
def _feed(value: int, width: int, state: int, brs_set: bool) -> int:
    """Feed ``width`` bits of ``value`` (MSB first) through the stuffer; returns the new state.

    ``state`` packs: bit 0 last bit, bits 1-3 run length, bits 4-13 stuff bits counted in the
    nominal phase, bits 14-23 those in the data phase (``brs_set``: bits fed now are in the
    data phase, so their stuff bits count there), bit 24 "the last bit fed was stuffed".
    """
    last = state & 1
    run = (state >> 1) & 7
    nominal = (state >> 4) & 0x3FF
    fast = (state >> 14) & 0x3FF
    stuffed = 0
    for i in range(width - 1, -1, -1):
        bit = (value >> i) & 1
        if bit == last:
            run += 1
        else:
            run = 1
        last = bit
        stuffed = 0
        if run == 5:
            last = 1 - bit
            run = 1
            stuffed = 1
            if brs_set:
                fast += 1
            else:
                nominal += 1
    return last | (run << 1) | (nominal << 4) | (fast << 14) | (stuffed << 24)


@njit(cache=True)
def _crc15(crc: int, value: int, width: int) -> int:
    for i in range(width - 1, -1, -1):
        feedback = ((value >> i) & 1) ^ ((crc >> 14) & 1)
        crc = (crc << 1) & 0x7FFF
        if feedback:
            crc ^= CRC15_POLY
    return crc


@njit(cache=True)
def _fd_dlc(n: int) -> int:
    if n <= 8:
        return n
    if n <= 12:
        return 9
    if n <= 16:
        return 10
    if n <= 20:
        return 11
    if n <= 24:
        return 12
    if n <= 32:
        return 13
    if n <= 48:
        return 14
    return 15


@njit(cache=True)
def bit_counts_kernel(arbitration_id: int, flags: int, dlc: int, data: bytes) -> tuple[int, int]:
    """``(nominal_bits, data_bits)`` of a valid frame, as :func:`hil.bus.bits.bit_counts`.

    ``flags``: bit 0 extended id, 1 remote frame, 2 CAN FD, 3 bit-rate switch, 4 ESI.
    """
    is_extended_id = flags & 1
    is_remote_frame = (flags >> 1) & 1
    is_fd = (flags >> 2) & 1
    brs = ((flags >> 3) & 1) and is_fd
    esi = (flags >> 4) & 1
    # The header SOF .. DLC as one number: at most 1 + 11 + 2 + 18 + 7 + 4 = 43 bits.
    if is_extended_id:
        if is_fd:  # SOF, base 11, SRR, IDE, ext 18, RRS, FDF, res, BRS
            head = ((arbitration_id >> 18) << 24) | (3 << 22) | ((arbitration_id & 0x3FFFF) << 4) | (1 << 2) | brs
            head_bits = 36
        else:  # SOF, base 11, SRR, IDE, ext 18, RTR, r1, r0, DLC 4
            head = ((arbitration_id >> 18) << 27) | (3 << 25) | ((arbitration_id & 0x3FFFF) << 7) \
                | (is_remote_frame << 6) | dlc
            head_bits = 39
    elif is_fd:  # SOF, id 11, RRS, IDE, FDF, res, BRS
        head = (arbitration_id << 5) | (1 << 2) | brs
        head_bits = 17
    else:  # SOF, id 11, RTR, IDE, r0, DLC 4
        head = (arbitration_id << 7) | (is_remote_frame << 6) | dlc
        head_bits = 19
    size = 0 if is_remote_frame else len(data)
    state = _feed(head, head_bits, 1 | (1 << 1), False)  # idle recessive: SOF starts a run of one
    if not is_fd:
        crc = _crc15(0, head, head_bits)
        for i in range(size):
            crc = _crc15(crc, data[i], 8)
            state = _feed(data[i], 8, state, False)
        state = _feed(crc, 15, state, False)
        return head_bits + 8 * size + 15 + ((state >> 4) & 0x3FF) + TRAILER_BITS, 0
    # FD: a stuff bit right after BRS (set) already belongs to the data phase.
    if brs and (state >> 24) & 1:
        state = (state - (1 << 4) + (1 << 14)) & 0xFFFFFF
    state = _feed((esi << 4) | _fd_dlc(size), 5, state & 0xFFFFFF, bool(brs))
    for i in range(size):
        state = _feed(data[i], 8, state & 0xFFFFFF, bool(brs))
    if (state >> 24) & 1:
        # No dynamic stuff bit after the last data (or DLC) bit: the first fixed one replaces it.
        if brs:
            state -= 1 << 14
        else:
            state -= 1 << 4
    nominal_stuff = (state >> 4) & 0x3FF
    data_stuff = (state >> 14) & 0x3FF
    crc_field = 4 + (17 + 6 if size <= 16 else 21 + 7)  # stuff count, parity, CRC, fixed stuff bits
    rest = 5 + 8 * size + crc_field
    if brs:
        return head_bits + nominal_stuff + TRAILER_BITS, rest + data_stuff
    return head_bits + nominal_stuff + rest + TRAILER_BITS, 0
