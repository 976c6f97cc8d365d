"""The tests' own CRC8 SAE J1850, straight from its definition (never the code under test).

One copy for every test that checks Z10-P1 frames independently; pinned by the standard's
check values in tests/vehicle_io/test_e2e.py.
"""

from __future__ import annotations


def crc8_j1850_bitwise(data: bytes) -> int:
    """CRC8 SAE J1850 (poly 0x1D, init 0xFF, xorout 0xFF, MSB first), bit by bit."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1D) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ 0xFF
