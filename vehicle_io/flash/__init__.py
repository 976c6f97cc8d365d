"""Flashing ECUs over UDS: images, signatures, pre-flight interlocks, the programming sequence.

* :mod:`vehicle_io.flash.image`: Intel HEX / S-record / raw binary -> one contiguous region.
* :mod:`vehicle_io.flash.signing`: the Ed25519 image signature scheme and key handling.
* :mod:`vehicle_io.flash.preflight`: interlocks read from the van's broadcast frames.
* :mod:`vehicle_io.flash.sequence`: :class:`Flasher`, the UDS sequence over a udsoncan client.

``z10 flash`` (vehicle_io/cli/flash_cmd.py) puts them together; docs/flashing.md explains.
Importing this package is cheap (bincopy, cryptography, udsoncan load on use).
"""

from __future__ import annotations

from vehicle_io.flash.image import FlashImage, ImageError, load_image
from vehicle_io.flash.preflight import PreflightError, PreflightResult, evaluate, read_van
from vehicle_io.flash.sequence import FlashError, Flasher, FlashReport
from vehicle_io.flash.signing import SignatureFile, SigningError, sign_image, verify_image

__all__ = [
    "FlashError", "FlashImage", "FlashReport", "Flasher", "ImageError", "PreflightError", "PreflightResult",
    "SignatureFile", "SigningError", "evaluate", "load_image", "read_van", "sign_image", "verify_image",
]
