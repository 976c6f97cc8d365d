"""CAN and CAN FD frames as bits on the wire (ISO 11898-1:2015): layout, CRCs, bit stuffing.

Two ways to the same numbers:

* :func:`frame_bits` builds the actual bit sequence bit by bit (every field named, stuff bits
  marked, data-phase bits marked). It is the readable reference and what a fault that needs
  the bits (or a curious user) looks at.
* :func:`bit_counts` returns only ``(nominal_bits, data_bits)``, the two numbers the bus
  timing needs, through byte-wise lookup tables and a bounded cache: a few microseconds per
  frame instead of a few hundred, because every frame on the simulated bus needs it.

Conventions (the ones the rest of :mod:`hil.bus` relies on):

* a frame runs from SOF through the 3-bit intermission (IFS), as in the reference figures:
  an 8-byte classic frame with an 11-bit id is 111..135 bits;
* bits are 0 = dominant, 1 = recessive; the ACK slot is shown as the bus sees it
  (dominant, some receiver acknowledged);
* classic frames: dynamic stuffing from SOF through the last CRC bit (a stuff bit after the
  last CRC bit when it completes a run of five);
* CAN FD (ISO, not the non-ISO Bosch 1.0 variant): dynamic stuffing from SOF through the data
  field, except that no dynamic stuff bit follows the last bit of the data field (or of the
  DLC when there is no data): the first fixed stuff bit takes its place; the dynamic stuff bits
  are part of the CRC; the CRC field is the 3-bit Gray-coded stuff count modulo 8 plus an even
  parity bit, then the CRC-17 (up to 16 data bytes) or CRC-21 sequence, with a fixed stuff bit
  (complement of the previous bit) before the stuff count and after every 4 bits;
  CRC-17/21 registers start at 1 followed by zeros;
* bit-rate switching is simplified to bit boundaries: with BRS set, every bit after the BRS bit
  up to the last CRC bit (ESI, DLC, data, stuff count, CRC, their stuff bits) is at the data
  rate, SOF..BRS and CRC delimiter..IFS at the nominal rate. A real controller switches at the
  sample point of BRS and back at the sample point of the CRC delimiter; with equal sample
  points in both phases the two partial bits differ from this by less than one data bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: CAN FD payload lengths by DLC code 0..15.
FD_LENGTHS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64)
_LEN_TO_DLC: dict[int, int] = {n: code for code, n in enumerate(FD_LENGTHS)}

CRC15_POLY = 0x4599  # x^15 + x^14 + x^10 + x^8 + x^7 + x^4 + x^3 + 1
CRC17_POLY = 0x1685B  # x^17 + x^16 + x^14 + x^13 + x^11 + x^6 + x^4 + x^3 + x + 1
CRC21_POLY = 0x102899  # x^21 + x^20 + x^13 + x^11 + x^7 + x^4 + x^3 + 1

#: Stuff count modulo 8 -> 3 Gray-coded bits followed by the even parity bit.
_GRAY_PARITY: tuple[int, ...] = tuple(
    ((g := n ^ (n >> 1)) << 1) | (bin(g).count("1") & 1) for n in range(8)
)

#: Recessive bits after the CRC sequence: CRC delimiter, ACK slot, ACK delimiter, EOF 7, IFS 3.
TRAILER_BITS = 13
#: Recessive bits that end every frame (ACK delimiter, EOF, IFS) and every error frame
#: (error delimiter 8, IFS 3): one "11 recessive bits" occurrence for bus-off recovery.
RECESSIVE_TAIL_BITS = 11
#: An error frame as modelled: 6-bit error flag (all nodes flag at the same bit, so the flags
#: superpose fully), 8-bit error delimiter, 3-bit intermission.
ERROR_FRAME_BITS = 17
#: Bits of a frame after the ACK delimiter (EOF 7 + IFS 3): a CRC error is flagged from the bit
#: after the ACK delimiter on, so a CRC-error attempt occupies the frame minus these.
AFTER_ACK_DELIMITER_BITS = 10
#: Bits of a frame after the ACK slot: an ACK error is flagged from the ACK delimiter on.
AFTER_ACK_SLOT_BITS = 11


def fd_dlc(length: int) -> int:
    """The CAN FD DLC code of a payload of ``length`` bytes (a valid FD length)."""
    try:
        return _LEN_TO_DLC[length]
    except KeyError:
        raise ValueError(f"expected a CAN FD payload length in {FD_LENGTHS}, but got {length}") from None


def fd_padded_length(length: int) -> int:
    """The smallest valid CAN FD payload length that holds ``length`` bytes."""
    for n in FD_LENGTHS:
        if n >= length:
            return n
    raise ValueError(f"expected at most 64 bytes for a CAN FD frame, but got {length}")


def arbitration_key(arbitration_id: int, is_extended_id: bool, is_remote_frame: bool) -> int:
    """The arbitration field as one 32-bit number: on the bus the lower number wins.

    Base id (11 bits), RTR/SRR, IDE, then for extended frames the 18-bit extension and RTR.
    Comparing these numbers is comparing the bit streams MSB first, so standard frames beat
    extended frames with the same base id and data frames beat remote frames. CAN FD frames
    carry a dominant RRS where classic frames have RTR, so they compare as data frames.
    """
    rtr = 1 if is_remote_frame else 0
    if is_extended_id:
        return ((arbitration_id >> 18) << 21) | (3 << 19) | ((arbitration_id & 0x3FFFF) << 1) | rtr
    return (arbitration_id << 21) | (rtr << 20)


# -- reference: the bit sequence, one bit at a time -----------------------------------------


@dataclass(frozen=True)
class FrameBits:
    """One frame as transmitted: ``bits[i]`` (0 dominant), ``fields[i]`` its field name,
    ``data_phase[i]`` True for bits sent at the data rate."""

    bits: tuple[int, ...]
    fields: tuple[str, ...]
    data_phase: tuple[bool, ...]
    crc: int
    crc_width: int
    dynamic_stuff_bits: int
    fixed_stuff_bits: int

    @property
    def nominal_bits(self) -> int:
        """Bits sent at the nominal (arbitration) bit rate."""
        return len(self.bits) - sum(self.data_phase)

    @property
    def data_bits(self) -> int:
        """Bits sent at the data bit rate (0 unless CAN FD with BRS)."""
        return sum(self.data_phase)

    def __len__(self) -> int:
        return len(self.bits)

    def as_string(self) -> str:
        """The bits as a string of '0'/'1' (handy in failure messages)."""
        return "".join(map(str, self.bits))


def _crc_bits(poly: int, width: int, init: int, bits: list[int]) -> int:
    top = 1 << (width - 1)
    mask = (1 << width) - 1
    crc = init
    for bit in bits:
        feedback = bit ^ (1 if crc & top else 0)
        crc = (crc << 1) & mask
        if feedback:
            crc ^= poly
    return crc


def _int_bits(value: int, width: int) -> list[int]:
    return [(value >> i) & 1 for i in range(width - 1, -1, -1)]


def frame_bits(
    arbitration_id: int,
    *,
    is_extended_id: bool = False,
    is_remote_frame: bool = False,
    is_fd: bool = False,
    bitrate_switch: bool = False,
    error_state_indicator: bool = False,
    dlc: int | None = None,
    data: bytes | bytearray = b"",
) -> FrameBits:
    """Build the complete bit sequence of a data or remote frame, SOF through IFS.

    ``dlc`` is the DLC field value: for classic frames 0..15 (data frames default to
    ``len(data)``, remote frames carry it without data); for CAN FD it is derived from
    ``len(data)``, which must be a valid FD length.
    """
    data = bytes(data)
    _check_frame(arbitration_id, is_extended_id, is_remote_frame, is_fd, bitrate_switch, dlc, data)
    if is_fd:
        dlc_code = fd_dlc(len(data))
    elif dlc is None:
        dlc_code = len(data)
    else:
        dlc_code = dlc
    payload = b"" if is_remote_frame else data

    # (bit, field) before stuffing, SOF through the end of the data field.
    raw: list[tuple[int, str]] = [(0, "SOF")]
    if is_extended_id:
        raw += [(b, "ID") for b in _int_bits(arbitration_id >> 18, 11)]
        raw += [(1, "SRR"), (1, "IDE")]
        raw += [(b, "ID") for b in _int_bits(arbitration_id & 0x3FFFF, 18)]
        if is_fd:
            raw += [(0, "RRS")]
        else:
            raw += [(1 if is_remote_frame else 0, "RTR"), (0, "R1"), (0, "R0")]
    else:
        raw += [(b, "ID") for b in _int_bits(arbitration_id, 11)]
        if is_fd:
            raw += [(0, "RRS"), (0, "IDE")]
        else:
            raw += [(1 if is_remote_frame else 0, "RTR"), (0, "IDE"), (0, "R0")]
    if is_fd:
        raw += [(1, "FDF"), (0, "RES"), (1 if bitrate_switch else 0, "BRS"), (1 if error_state_indicator else 0, "ESI")]
    raw += [(b, "DLC") for b in _int_bits(dlc_code, 4)]
    for byte in payload:
        raw += [(b, "DATA") for b in _int_bits(byte, 8)]

    bits: list[int] = []
    fields: list[str] = []
    phase: list[bool] = []
    in_data_phase = False

    def emit(bit: int, field: str) -> None:
        bits.append(bit)
        fields.append(field)
        phase.append(in_data_phase)

    # Dynamic stuffing. The idle bus before SOF is recessive, so SOF starts a run of one.
    last, run, n_dynamic = 1, 1, 0
    fd_crc_input: list[int] = []  # FD: the CRC covers the stuffed stream (dynamic stuff bits in)
    stuff_region: list[tuple[int, str]]
    if is_fd:
        stuff_region = raw
    else:
        crc = _crc_bits(CRC15_POLY, 15, 0, [b for b, _ in raw])
        stuff_region = raw + [(b, "CRC") for b in _int_bits(crc, 15)]
    for index, (bit, field) in enumerate(stuff_region):
        emit(bit, field)
        fd_crc_input.append(bit)
        if field == "BRS" and bitrate_switch:
            in_data_phase = True  # the switch happens after BRS (see the module docstring)
        run = run + 1 if bit == last else 1
        last = bit
        is_last = index == len(stuff_region) - 1
        if run == 5 and not (is_fd and is_last):
            last, run = 1 - bit, 1
            n_dynamic += 1
            emit(last, "STUFF")
            fd_crc_input.append(last)

    n_fixed = 0
    if is_fd:
        crc_width = 17 if len(payload) <= 16 else 21
        poly = CRC17_POLY if crc_width == 17 else CRC21_POLY
        code = _GRAY_PARITY[n_dynamic % 8]
        count_bits = _int_bits(code, 4)
        crc = _crc_bits(poly, crc_width, 1 << (crc_width - 1), fd_crc_input + count_bits)
        crc_field = [(b, "SBC") for b in count_bits[:3]] + [(count_bits[3], "PARITY")]
        crc_field += [(b, "CRC") for b in _int_bits(crc, crc_width)]
        for index, (bit, field) in enumerate(crc_field):
            if index % 4 == 0:
                emit(1 - bits[-1], "FSB")
                n_fixed += 1
            emit(bit, field)
    else:
        crc_width = 15
    in_data_phase = False
    emit(1, "CRC_DEL")
    emit(0, "ACK")
    emit(1, "ACK_DEL")
    for _ in range(7):
        emit(1, "EOF")
    for _ in range(3):
        emit(1, "IFS")
    return FrameBits(tuple(bits), tuple(fields), tuple(phase), crc, crc_width, n_dynamic, n_fixed)


def _check_frame(
    arbitration_id: int,
    is_extended_id: bool,
    is_remote_frame: bool,
    is_fd: bool,
    bitrate_switch: bool,
    dlc: int | None,
    data: bytes,
) -> None:
    limit = 1 << (29 if is_extended_id else 11)
    if not 0 <= arbitration_id < limit:
        kind = "29-bit" if is_extended_id else "11-bit"
        raise ValueError(f"expected a {kind} identifier, but got 0x{arbitration_id:X}")
    if is_fd:
        if is_remote_frame:
            raise ValueError("expected a data frame for CAN FD, but got a remote frame (FD has none)")
        if len(data) not in _LEN_TO_DLC:
            raise ValueError(f"expected a CAN FD payload length in {FD_LENGTHS}, but got {len(data)}")
        return
    if bitrate_switch:
        raise ValueError("expected bitrate_switch only on CAN FD frames, but got it on a classic frame")
    if len(data) > 8:
        raise ValueError(f"expected at most 8 data bytes in a classic frame, but got {len(data)}")
    if dlc is not None and not 0 <= dlc <= 15:
        raise ValueError(f"expected a DLC 0..15, but got {dlc}")
    if dlc is not None and not is_remote_frame and dlc != len(data) and not (dlc > 8 and len(data) == 8):
        raise ValueError(f"expected DLC {len(data)} for {len(data)} data bytes, but got {dlc}")


# -- fast path: counts only, table driven ------------------------------------------------------
#
# The stuffing state is (last bit, run length 1..4): a run reaching five is stuffed at once, so
# it never persists. State index = last * 4 + run - 1. _STUFF_TABLES[k][state << k | chunk]
# holds the outcome of feeding k bits (MSB first): new state (bits 0-2), stuff bits inserted
# (bits 3-6), and whether a stuff bit followed the chunk's last bit (bit 7).

_IDLE_STATE = 1 * 4 + 0  # recessive idle, run 1: SOF (dominant) always starts a new run


def _build_stuff_table(k: int) -> tuple[int, ...]:
    table = []
    for state in range(8):
        for chunk in range(1 << k):
            last, run = state >> 2, (state & 3) + 1
            n = 0
            ends = 0
            for i in range(k - 1, -1, -1):
                bit = (chunk >> i) & 1
                run = run + 1 if bit == last else 1
                last = bit
                ends = 0
                if run == 5:
                    last, run = 1 - bit, 1
                    n += 1
                    ends = 1
            table.append((last * 4 + run - 1) | (n << 3) | (ends << 7))
    return tuple(table)


_STUFF_TABLES: tuple[tuple[int, ...], ...] = tuple(_build_stuff_table(k) for k in range(9))


def _build_crc15_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 7
        for _ in range(8):
            crc = ((crc << 1) ^ CRC15_POLY) if crc & 0x4000 else (crc << 1)
            crc &= 0x7FFF
        table.append(crc)
    return tuple(table)


_CRC15_TABLE = _build_crc15_table()


def _stuff_scan(value: int, nbits: int, state: int) -> tuple[int, int, int]:
    """Feed ``nbits`` bits of ``value`` (MSB first) through the stuffer from ``state``.

    Returns (new state, stuff bits inserted, 1 if a stuff bit followed the last bit).
    """
    if nbits <= 0:
        return state, 0, 0
    head = nbits & 7
    n = 0
    entry = 0
    if head:
        entry = _STUFF_TABLES[head][(state << head) | (value >> (nbits - head))]
        state = entry & 7
        n = (entry >> 3) & 15
    body = nbits - head
    if body:
        table = _STUFF_TABLES[8]
        for byte in (value & ((1 << body) - 1)).to_bytes(body >> 3, "big"):
            entry = table[(state << 8) | byte]
            state = entry & 7
            n += (entry >> 3) & 15
    return state, n, entry >> 7


def _crc15(value: int, nbits: int) -> int:
    # The register starts at zero, so leading zero bits do not change it: left-pad to whole bytes.
    nbytes = (nbits + 7) >> 3
    crc = 0
    table = _CRC15_TABLE
    for byte in value.to_bytes(nbytes, "big"):
        crc = ((crc << 8) & 0x7FFF) ^ table[((crc >> 7) ^ byte) & 0xFF]
    return crc


_FD_PREFIX: dict[tuple[int, bool, bool], tuple[int, int, int, int]] = {}
_CLASSIC_HEADER: dict[tuple[int, int, int], tuple[int, int, int, int]] = {}
_COUNT_CACHE: dict[tuple[int, int, int, bytes], tuple[int, int]] = {}
_COUNT_CACHE_LIMIT = 1 << 16


def _classic_header(arbitration_id: int, is_extended_id: bool, is_remote_frame: bool, dlc: int) -> tuple[int, int, int, int]:
    """(CRC register, stuffing state, stuff bits, header bits) after SOF..DLC of a classic frame."""
    key = (arbitration_id, is_extended_id | (is_remote_frame << 1), dlc)
    hit = _CLASSIC_HEADER.get(key)
    if hit is not None:
        return hit
    if is_extended_id:
        # SOF, base 11, SRR, IDE, ext 18, RTR, r1, r0, DLC 4
        header = (
            ((arbitration_id >> 18) << 27) | (3 << 25) | ((arbitration_id & 0x3FFFF) << 7)
            | (is_remote_frame << 6) | dlc
        )
        nbits = 39
    else:
        # SOF, id 11, RTR, IDE, r0, DLC 4
        header = (arbitration_id << 7) | (is_remote_frame << 6) | dlc
        nbits = 19
    state, n_stuff, _ = _stuff_scan(header, nbits, _IDLE_STATE)
    result = (_crc15(header, nbits), state, n_stuff, nbits)
    if len(_CLASSIC_HEADER) >= _COUNT_CACHE_LIMIT:
        _CLASSIC_HEADER.clear()
    _CLASSIC_HEADER[key] = result
    return result


def bit_counts(
    arbitration_id: int,
    is_extended_id: bool,
    is_remote_frame: bool,
    is_fd: bool,
    bitrate_switch: bool,
    error_state_indicator: bool,
    dlc: int,
    data: bytes,
) -> tuple[int, int]:
    """``(nominal_bits, data_bits)`` of a frame, SOF through IFS, stuffing included.

    Same numbers as ``frame_bits(...).nominal_bits`` / ``.data_bits`` for a valid frame (the
    caller validates: this is the per-frame hot path). ``dlc`` is the classic DLC field
    (ignored for FD, where it follows from ``len(data)``); ``data`` is empty for remote frames.
    """
    flags = is_extended_id | (is_remote_frame << 1) | (is_fd << 2) | (bitrate_switch << 3) | (error_state_indicator << 4)
    key = (arbitration_id, flags, dlc, data)
    hit = _COUNT_CACHE.get(key)
    if hit is not None:
        return hit
    if _KERNEL is not None:
        result = _KERNEL(arbitration_id, flags, dlc, data)
    elif is_fd:
        result = _fd_counts(arbitration_id, is_extended_id, bitrate_switch, error_state_indicator, data)
    else:
        # One pass over the payload: CRC-15 (byte table) and stuffing (state table) together,
        # starting from the cached state after the header; then the 15 CRC bits.
        crc, state, n_stuff, nbits = _classic_header(arbitration_id, is_extended_id, is_remote_frame, dlc)
        crc_table = _CRC15_TABLE
        stuff_table = _STUFF_TABLES[8]
        for byte in data:
            crc = ((crc << 8) & 0x7FFF) ^ crc_table[((crc >> 7) ^ byte) & 0xFF]
            entry = stuff_table[(state << 8) | byte]
            state = entry & 7
            n_stuff += (entry >> 3) & 15
        entry = _STUFF_TABLES[7][(state << 7) | (crc >> 8)]
        n_stuff += (entry >> 3) & 15
        entry = stuff_table[((entry & 7) << 8) | (crc & 0xFF)]
        n_stuff += (entry >> 3) & 15
        result = (nbits + 8 * len(data) + 15 + n_stuff + TRAILER_BITS, 0)
    if len(_COUNT_CACHE) >= _COUNT_CACHE_LIMIT:
        _COUNT_CACHE.clear()
    _COUNT_CACHE[key] = result
    return result


def _fd_counts(arbitration_id: int, is_extended_id: bool, brs: bool, esi: bool, data: bytes) -> tuple[int, int]:
    prefix_key = (arbitration_id, is_extended_id, brs)
    prefix = _FD_PREFIX.get(prefix_key)
    if prefix is None:
        if is_extended_id:
            # SOF, base 11, SRR, IDE, ext 18, RRS, FDF, res, BRS
            value = ((arbitration_id >> 18) << 24) | (3 << 22) | ((arbitration_id & 0x3FFFF) << 4) | (1 << 2) | brs
            nbits = 36
        else:
            # SOF, id 11, RRS, IDE, FDF, res, BRS
            value = (arbitration_id << 5) | (1 << 2) | brs
            nbits = 17
        state, n_stuff, ends = _stuff_scan(value, nbits, _IDLE_STATE)
        prefix = (state, n_stuff, ends, nbits)
        if len(_FD_PREFIX) >= _COUNT_CACHE_LIMIT:
            _FD_PREFIX.clear()
        _FD_PREFIX[prefix_key] = prefix
    state, n_prefix_stuff, prefix_ends, prefix_bits = prefix
    n = len(data)
    # ESI + DLC (5 bits), then the payload byte by byte
    entry = _STUFF_TABLES[5][(state << 5) | (esi << 4) | _LEN_TO_DLC[n]]
    state = entry & 7
    n_rest_stuff = (entry >> 3) & 15
    stuff_table = _STUFF_TABLES[8]
    for byte in data:
        entry = stuff_table[(state << 8) | byte]
        state = entry & 7
        n_rest_stuff += (entry >> 3) & 15
    ends = entry >> 7
    rest_bits = 5 + 8 * n
    # No dynamic stuff bit after the last data bit: the first fixed stuff bit replaces it.
    n_rest_stuff -= ends
    crc_field = 4 + (17 + 6 if n <= 16 else 21 + 7)
    # A stuff bit right after BRS already belongs to the data phase.
    nominal_head = prefix_bits + n_prefix_stuff - prefix_ends
    data_part = prefix_ends + rest_bits + n_rest_stuff + crc_field
    if brs:
        return nominal_head + TRAILER_BITS, data_part
    return nominal_head + data_part + TRAILER_BITS, 0


def use_kernel() -> bool:
    """Count the frames :func:`bit_counts` has not cached with the numba kernel from now on.

    The kernel (:mod:`hil.bus._bits_kernels`, imported here, not with the package, so that
    importing :mod:`hil.bus` does not import numba) gives the same numbers in a few hundred
    nanoseconds, where the table walk takes microseconds; the cache stays in front of it. With
    numba's JIT disabled (``NUMBA_DISABLE_JIT=1``) or numba missing, the kernel would run as
    plain Python, far slower than the tables: then nothing changes. True when it is in use.
    The rig (which imports numba for the van model anyway) switches it on.
    """
    global _KERNEL
    if _KERNEL is None:
        try:
            from numba import config

            if config.DISABLE_JIT:
                return False
            from hil.bus._bits_kernels import bit_counts_kernel
        except ImportError:
            return False
        _KERNEL = bit_counts_kernel
    return True


#: The numba kernel once :func:`use_kernel` loaded it: (id, flags, dlc, data) -> counts.
_KERNEL: Callable[[int, int, int, bytes], tuple[int, int]] | None = None
