"""SecurityAccess (0x27) key algorithm of the Z10 development ECUs.

Development algorithm (the simulator and development vans only; production ECUs carry the
vehicle maker's secret algorithm, which never lives in this repository)::

    key = HMAC-SHA256(secret, bytes([level]) + seed)[:len(seed)]

where ``level`` is the odd requestSeed sub-function (0x01 extended unlock, 0x11 programming
unlock) and ``secret`` is ``b"z10-dev-key:" + ecu_name`` (for example ``b"z10-dev-key:bms"``).
A keyed hash rather than an XOR: a recorded seed/key pair tells nothing about the next key.
Both the simulated ECU (server) and the tester (client) use this module, so the tester does not
need hil.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["DEV_SECRET_PREFIX", "dev_key", "dev_secret"]

DEV_SECRET_PREFIX = b"z10-dev-key:"


def dev_secret(ecu_name: str) -> bytes:
    """The development secret of one ECU (lower-case name: vcu, bms, cbc)."""
    return DEV_SECRET_PREFIX + ecu_name.lower().encode("ascii")


def dev_key(ecu_name: str, level: int, seed: bytes) -> bytes:
    """The key the development ECU ``ecu_name`` expects for ``seed`` at requestSeed ``level``.

    ``level`` may be given odd (requestSeed) or even (sendKey); both name the same level.
    """
    if not 1 <= level <= 0x7E:
        raise ValueError(f"expected a security level 0x01..0x7E, but got 0x{level:02X}")
    request_seed = level if level % 2 == 1 else level - 1
    digest = hmac.new(dev_secret(ecu_name), bytes([request_seed]) + bytes(seed), hashlib.sha256).digest()
    return digest[: max(1, len(seed))]
