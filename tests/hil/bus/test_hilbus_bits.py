"""Frame bit counts and bit sequences against an independent construction and hand counts."""

from __future__ import annotations

import random

import pytest
from hilbus_reference import FD_LENGTHS, G15, classic_frame, crc_remainder, fd_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.bus.bits import arbitration_key, bit_counts, fd_dlc, fd_padded_length, frame_bits


def counts(can_id: int, data: bytes = b"", *, ext: bool = False, remote: bool = False, dlc: int | None = None,
           fd: bool = False, brs: bool = False, esi: bool = False) -> tuple[int, int]:
    if dlc is None:
        dlc = len(data)
    return bit_counts(can_id, ext, remote, fd, brs, esi, dlc, b"" if remote else data)


# -- literal totals, counted by hand ------------------------------------------------------------


def test_hand_counted_classic_id0_no_data() -> None:
    # SOF..DLC is 19 dominant bits and the CRC of an all-zero message is zero: 34 zeros in a row
    # get a stuff bit after every 5 -> 6 stuff bits; 47 + 6 = 53.
    assert counts(0x000, b"") == (53, 0)


def test_hand_counted_fd_id0_eight_zero_bytes_brs() -> None:
    # SOF + 11 id + RRS + IDE = 14 zeros: stuff after zero 5 and zero 10 (2, nominal phase).
    # FDF 1, res 0, BRS 1 | ESI 0, DLC 1000, then 3 + 64 = 67 zeros: 13 stuff bits (data phase).
    # Nominal: 17 + 2 + CRC delimiter/ACK/ACK delimiter/EOF/IFS 13 = 32.
    # Data: ESI 1 + DLC 4 + 64 + 13 + CRC field (stuff count 4 + CRC-17 + 6 fixed stuff) 27 = 109.
    assert counts(0x000, bytes(8), fd=True, brs=True) == (32, 109)


def test_hand_counted_fd_64_bytes_without_any_stuff_bit() -> None:
    # id 0x2AA alternates, 0x55 alternates, DLC 1111 sits between ESI 0 and a data 0: no run of 5.
    # Nominal 17 + 13 = 30; data 1 + 4 + 512 + (4 + 21 + 7) = 549.
    assert counts(0x2AA, b"\x55" * 64, fd=True, brs=True) == (30, 549)
    # Without BRS every bit is nominal.
    assert counts(0x2AA, b"\x55" * 64, fd=True, brs=False) == (579, 0)


def test_literal_classic_id0_eight_zero_bytes() -> None:
    # Heavily stuffed; 127 bits, cross-checked with the independent construction.
    assert counts(0x000, bytes(8)) == (127, 0)
    assert len(classic_frame(0x000, bytes(8))) == 127


# -- against the independent construction ------------------------------------------------------

classic_frames = st.builds(
    lambda ext, can_id, data, remote: (ext, can_id % (1 << (29 if ext else 11)), data, remote),
    st.booleans(),
    st.integers(0, (1 << 29) - 1) | st.sampled_from([0, 0x7FF, 0x555, 0x2AA, 0x1FFFFFFF]),
    st.binary(max_size=8) | st.lists(st.sampled_from([0x00, 0xFF, 0x0F, 0xF0, 0x55]), max_size=8).map(bytes),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(classic_frames)
def test_classic_counts_and_bits_match_reference(frame: tuple[bool, int, bytes, bool]) -> None:
    ext, can_id, data, remote = frame
    expected = classic_frame(can_id, data, extended=ext, remote=remote, dlc=len(data))
    assert counts(can_id, data, ext=ext, remote=remote, dlc=len(data)) == (len(expected), 0)
    built = frame_bits(can_id, is_extended_id=ext, is_remote_frame=remote, dlc=len(data), data=b"" if remote else data)
    assert built.as_string() == expected


fd_frames = st.builds(
    lambda ext, can_id, data, brs, esi: (ext, can_id % (1 << (29 if ext else 11)), data, brs, esi),
    st.booleans(),
    st.integers(0, (1 << 29) - 1) | st.sampled_from([0, 0x7FF, 0x2AA]),
    st.sampled_from(FD_LENGTHS).flatmap(
        lambda n: st.binary(min_size=n, max_size=n) | st.lists(st.sampled_from([0, 0xFF, 0x55]), min_size=n, max_size=n).map(bytes)
    ),
    st.booleans(),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(fd_frames)
def test_fd_counts_and_bits_match_reference(frame: tuple[bool, int, bytes, bool, bool]) -> None:
    ext, can_id, data, brs, esi = frame
    nominal, data_phase = fd_frame(can_id, data, extended=ext, brs=brs, esi=esi)
    assert counts(can_id, data, ext=ext, fd=True, brs=brs, esi=esi) == (len(nominal), len(data_phase))
    built = frame_bits(can_id, is_extended_id=ext, is_fd=True, bitrate_switch=brs, error_state_indicator=esi, data=data)
    assert (built.nominal_bits, built.data_bits) == (len(nominal), len(data_phase))
    if brs:
        # Data-phase bits sit between the nominal head and the 13-bit nominal trailer.
        assert built.as_string() == nominal[:-13] + data_phase + nominal[-13:]
    else:
        assert built.as_string() == nominal


def test_crc15_of_reference_check_value() -> None:
    # CRC-15/CAN check value (catalogue of parametrised CRCs): "123456789" -> 0x059E.
    message = "".join(format(c, "08b") for c in b"123456789")
    assert int(crc_remainder(message, 15, G15), 2) == 0x059E


def test_frame_bits_marks_fields_and_phases() -> None:
    built = frame_bits(0x123, is_fd=True, bitrate_switch=True, data=bytes(range(12)))
    fields = built.fields
    assert fields[0] == "SOF"
    assert fields[-3:] == ("IFS", "IFS", "IFS")
    brs = fields.index("BRS")
    assert not any(built.data_phase[: brs + 1])
    assert all(built.data_phase[brs + 1 : fields.index("CRC_DEL")])
    assert built.crc_width == 17
    assert built.fixed_stuff_bits == 6
    assert frame_bits(0x123, is_fd=True, data=bytes(20)).crc_width == 21
    assert frame_bits(0x123, is_fd=True, data=bytes(20)).fixed_stuff_bits == 7


# -- the figures in REFERENCES.md -------------------------------------------------------------


def test_eight_byte_classic_frames_stay_within_111_to_135_bits() -> None:
    rng = random.Random(7)
    seen = []
    patterns = [0x00, 0xFF, 0x0F, 0xF0, 0x55, 0xAA, 0x3C, 0x07, 0xF8, 0x1F, 0xE0]
    for _ in range(3000):
        can_id = rng.randrange(0x800)
        data = bytes(rng.choice(patterns) if rng.random() < 0.6 else rng.randrange(256) for _ in range(8))
        total, _ = counts(can_id, data)
        seen.append(total)
    assert 111 <= min(seen) and max(seen) <= 135
    # the unstuffed minimum really occurs: 47 + 64 bits, no stuff bit at all
    assert 111 in seen
    # worst case formula: 111 + floor((34 + 64 - 1) / 4) = 135
    assert 111 + (34 + 8 * 8 - 1) // 4 == 135


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 0x7FF), st.integers(0, 0x3FFFF), st.binary(max_size=8), st.booleans())
def test_extended_id_adds_twenty_bits_before_stuffing(base: int, extension: int, data: bytes, remote: bool) -> None:
    payload = b"" if remote else data
    std = frame_bits(base, is_remote_frame=remote, dlc=len(data), data=payload)
    ext = frame_bits((base << 18) | extension, is_extended_id=True, is_remote_frame=remote, dlc=len(data), data=payload)
    unstuffed_std = len(std) - std.dynamic_stuff_bits
    assert unstuffed_std == 47 + 8 * len(payload)
    assert len(ext) - ext.dynamic_stuff_bits == unstuffed_std + 20


def test_sixty_four_byte_fd_frame_rates_match_references() -> None:
    # REFERENCES: 64-byte FD at 500k/2M, 2,466..3,003 frames/s at full load. This model (phase
    # split at the BRS and CRC-delimiter bit boundaries) gives 2,472..2,990: within 0.5 %.
    rng = random.Random(11)
    patterns = [b"\x0f", b"\xf0", b"\x78", b"\x87", b"\x55", b"\x00", b"\xff", b"\x3c"]
    rates = []
    for _ in range(400):
        can_id = rng.choice([0x000, 0x078, 0x2AA, 0x7FF, rng.randrange(0x800)])
        if rng.random() < 0.5:
            data = rng.choice(patterns) * 64
        else:
            data = bytes(rng.randrange(256) for _ in range(64))
        nominal, data_phase = counts(can_id, data, fd=True, brs=True, esi=rng.random() < 0.5)
        rates.append(1 / (nominal / 500_000 + data_phase / 2_000_000))
    nominal, data_phase = counts(0x2AA, b"\x55" * 64, fd=True, brs=True)  # no stuff bit at all
    rates.append(1 / (nominal / 500_000 + data_phase / 2_000_000))
    assert 2466 * 0.995 <= min(rates) and max(rates) <= 3003 * 1.005
    assert max(rates) == pytest.approx(1 / (30 / 500_000 + 549 / 2_000_000))  # the stuff-free frame


def test_arbitration_key_orders_like_the_bus() -> None:
    # lower id wins
    assert arbitration_key(0x100, False, False) < arbitration_key(0x101, False, False)
    # standard before extended with the same base id (IDE dominant)
    assert arbitration_key(0x123, False, False) < arbitration_key(0x123 << 18, True, False)
    # even a standard remote frame beats the extended frame of the same base id
    assert arbitration_key(0x123, False, True) < arbitration_key((0x123 << 18) | 0x3FFFF, True, False)
    # data before remote
    assert arbitration_key(0x123, False, False) < arbitration_key(0x123, False, True)
    assert arbitration_key(0x1ABCDE, True, False) < arbitration_key(0x1ABCDE, True, True)
    # an extended frame with a lower base id beats a standard one
    assert arbitration_key(0x122 << 18, True, True) < arbitration_key(0x123, False, False)


def test_fd_length_helpers() -> None:
    assert fd_dlc(12) == 9 and fd_dlc(64) == 15
    assert fd_padded_length(9) == 12 and fd_padded_length(33) == 48 and fd_padded_length(0) == 0
    with pytest.raises(ValueError, match="expected a CAN FD payload length"):
        fd_dlc(10)
    with pytest.raises(ValueError, match="expected at most 64"):
        fd_padded_length(65)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arbitration_id": 0x800}, "11-bit identifier"),
        ({"arbitration_id": 1 << 29, "is_extended_id": True}, "29-bit identifier"),
        ({"arbitration_id": 1, "data": bytes(9)}, "at most 8 data bytes"),
        ({"arbitration_id": 1, "is_fd": True, "data": bytes(9)}, "CAN FD payload length"),
        ({"arbitration_id": 1, "is_fd": True, "is_remote_frame": True}, "remote frame"),
        ({"arbitration_id": 1, "bitrate_switch": True}, "bitrate_switch only on CAN FD"),
        ({"arbitration_id": 1, "dlc": 3, "data": b"\x01"}, "expected DLC 1"),
    ],
)
def test_frame_bits_rejects_impossible_frames(kwargs: dict, message: str) -> None:
    can_id = kwargs.pop("arbitration_id")
    with pytest.raises(ValueError, match=message):
        frame_bits(can_id, **kwargs)
