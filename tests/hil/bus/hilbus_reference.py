"""An independent, deliberately plain construction of CAN / CAN FD frames as bit strings.

Written from ISO 11898-1 for the tests, sharing no code with hil.bus.bits: fields are
concatenated as '0'/'1' text, CRCs are computed as polynomial remainders over GF(2) (not with
a shift register), stuffing walks the text.
"""

from __future__ import annotations

FD_LENGTHS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64]


def _gf2_mod(value: int, generator: int) -> int:
    """Remainder of polynomial ``value`` divided by ``generator`` over GF(2)."""
    g_degree = generator.bit_length() - 1
    while value.bit_length() - 1 >= g_degree:
        value ^= generator << (value.bit_length() - 1 - g_degree)
    return value


def crc_remainder(bits: str, width: int, generator: int, init: int = 0) -> str:
    """CRC of a bit string: (init * x^n + M(x) * x^width) mod G(x), as ``width`` bits."""
    n = len(bits)
    message = int(bits, 2) if bits else 0
    value = (init << n) ^ (message << width)
    return format(_gf2_mod(value, generator), f"0{width}b")


G15 = (1 << 15) | (1 << 14) | (1 << 10) | (1 << 8) | (1 << 7) | (1 << 4) | (1 << 3) | 1
G17 = (1 << 17) | (1 << 16) | (1 << 14) | (1 << 13) | (1 << 11) | (1 << 6) | (1 << 4) | (1 << 3) | (1 << 1) | 1
G21 = (1 << 21) | (1 << 20) | (1 << 13) | (1 << 11) | (1 << 7) | (1 << 4) | (1 << 3) | 1


def _b(value: int, width: int) -> str:
    return format(value, f"0{width}b")


def stuff(bits: str, skip_after_last: bool = False) -> tuple[str, int]:
    """Insert a complementary bit after every five equal bits (stuff bits count toward runs).

    The idle bus before SOF is recessive. With ``skip_after_last`` no stuff bit follows the
    final input bit (CAN FD: the fixed stuff bit takes its place).
    """
    out = []
    previous = "1"
    run = 1
    inserted = 0
    for i, bit in enumerate(bits):
        out.append(bit)
        if bit == previous:
            run += 1
        else:
            previous = bit
            run = 1
        if run == 5:
            if skip_after_last and i == len(bits) - 1:
                break
            complement = "0" if bit == "1" else "1"
            out.append(complement)
            inserted += 1
            previous = complement
            run = 1
    return "".join(out), inserted


def classic_frame(can_id: int, data: bytes, extended: bool = False, remote: bool = False, dlc: int | None = None) -> str:
    """The complete classic frame (SOF..IFS) as a bit string."""
    if dlc is None:
        dlc = len(data)
    rtr = "1" if remote else "0"
    if extended:
        head = "0" + _b(can_id >> 18, 11) + "1" + "1" + _b(can_id & 0x3FFFF, 18) + rtr + "0" + "0"
    else:
        head = "0" + _b(can_id, 11) + rtr + "0" + "0"
    head += _b(dlc, 4)
    payload = "" if remote else "".join(_b(byte, 8) for byte in data)
    message = head + payload
    crc = crc_remainder(message, 15, G15)
    stuffed, _ = stuff(message + crc)
    return stuffed + "1" + "0" + "1" + "1" * 7 + "1" * 3


def fd_frame(can_id: int, data: bytes, extended: bool = False, brs: bool = True, esi: bool = False) -> tuple[str, str]:
    """A CAN FD frame as (nominal-rate bits, data-rate bits); without BRS all are nominal."""
    dlc = FD_LENGTHS.index(len(data))
    if extended:
        arbitration = "0" + _b(can_id >> 18, 11) + "1" + "1" + _b(can_id & 0x3FFFF, 18) + "0"
    else:
        arbitration = "0" + _b(can_id, 11) + "0" + "0"
    head = arbitration + "1" + "0" + ("1" if brs else "0")  # FDF, res, BRS
    tail = ("1" if esi else "0") + _b(dlc, 4) + "".join(_b(byte, 8) for byte in data)
    whole, count = stuff(head + tail, skip_after_last=True)
    # Stuffing decides left to right, so the stuffed head is a prefix of the whole; a stuff
    # bit right after BRS is not part of it (it is sent after the switch, at the data rate).
    nominal_head, _ = stuff(head, skip_after_last=True)
    assert whole.startswith(nominal_head)
    data_part_stuffed = whole[len(nominal_head):]
    gray = (count % 8) ^ ((count % 8) >> 1)
    sbc = _b(gray, 3) + str(bin(gray).count("1") % 2)
    width, generator = (17, G17) if len(data) <= 16 else (21, G21)
    crc = crc_remainder(whole + sbc, width, generator, init=1 << (width - 1))
    field = sbc + crc
    crc_field = ""
    previous = whole[-1]
    for i, bit in enumerate(field):
        if i % 4 == 0:
            fsb = "0" if previous == "1" else "1"
            crc_field += fsb
            previous = fsb
        crc_field += bit
        previous = bit
    trailer = "1" + "0" + "1" + "1" * 7 + "1" * 3  # CRC delimiter, ACK, ACK delimiter, EOF, IFS
    if brs:
        return nominal_head + trailer, data_part_stuffed + crc_field
    return whole + crc_field + trailer, ""
