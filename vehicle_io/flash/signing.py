"""Ed25519 signatures of flash images (scheme ``z10-ed25519-v1``).

What is signed (the same bytes on the tester and in the ECU)::

    message = b"Z10-FLASH-IMAGE-v1\\x00"
              + ecu name, ASCII, padded with NUL to 8 bytes      (vcu / bms / cbc)
              + load address, 4 bytes big-endian
              + image length, 4 bytes big-endian
              + SHA-512(image bytes), 64 bytes
    signature = Ed25519(private key, message)                    (64 bytes)

The image is the one contiguous region the tester downloads (gaps of a HEX / S-record file
filled with 0xFF, see :mod:`vehicle_io.flash.image`). Binding the ECU name and the address
means a signed BMS image cannot be activated on the VCU, nor moved to another address.
The ECU receives the 64-byte signature as the option record of the check-programming-
dependencies routine (0x31 01 FF01) and activates the bank only when it verifies.

Keys: PEM files (PKCS#8 private, SubjectPublicKeyInfo public) or 32 raw bytes. The
development key pair in ``vehicle_io/data/z10_flash_dev_ed25519.pem`` is PUBLIC (it ships in
this repository): the simulator trusts it, no production ECU may. The real signing key of
the vans lives outside the repository; give it with ``--key FILE`` or :data:`KEY_ENV`.

The signature file (``IMAGE.sig``) is JSON: scheme, ecu, address, length, sha512, signature
and the public key (hex), so a mismatch is reported before anything is sent.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vehicle_io.errors import VehicleIoError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "DEV_KEY_RESOURCE", "KEY_ENV", "SCHEME", "SIGNATURE_LENGTH", "SignatureFile", "SigningError", "dev_private_key",
    "dev_public_key", "key_from_environment", "load_private_key", "load_public_key", "public_key_hex", "sign_image",
    "signed_message", "verify_image",
]

SCHEME = "z10-ed25519-v1"
#: environment variable naming the signing key file when ``--key`` is not given
KEY_ENV = "Z10_FLASH_SIGNING_KEY"
#: the development key pair (simulator only; public, see the module docstring)
DEV_KEY_RESOURCE = "z10_flash_dev_ed25519.pem"
_DOMAIN = b"Z10-FLASH-IMAGE-v1\x00"
SIGNATURE_LENGTH = 64


class SigningError(VehicleIoError, ValueError):
    """A key or signature file is unusable, or a signature does not belong to the image."""


def signed_message(ecu: str, address: int, image: bytes) -> bytes:
    """The bytes the Ed25519 signature covers (see the module docstring)."""
    name = ecu.lower().encode("ascii")
    if not 1 <= len(name) <= 8:
        raise SigningError(f"expected an ECU name of 1..8 ASCII characters, but got {ecu!r}")
    if not 0 <= address <= 0xFFFFFFFF or len(image) > 0xFFFFFFFF:
        raise SigningError(f"expected a 32-bit address and length, but got 0x{address:X} + {len(image)} bytes")
    return (_DOMAIN + name.ljust(8, b"\x00") + address.to_bytes(4, "big") + len(image).to_bytes(4, "big")
            + hashlib.sha512(image).digest())


def _read_key_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise SigningError(f"{path}: cannot read the key file: {err.strerror or err}") from err


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM (PKCS#8) file or a file of 32 raw bytes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = _read_key_bytes(path)
    if len(data) == 32:
        return Ed25519PrivateKey.from_private_bytes(data)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise SigningError(f"{path}: expected an unencrypted Ed25519 private key (PEM or 32 raw bytes), "
                           f"but it could not be read: {err}") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path}: expected an Ed25519 private key, but got {type(key).__name__}")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (public or private key) or 32 raw bytes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = _read_key_bytes(path)
    if len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as err:
        raise SigningError(f"{path}: expected an Ed25519 public key (PEM or 32 raw bytes), "
                           f"but it could not be read: {err}") from err
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"{path}: expected an Ed25519 public key, but got {type(key).__name__}")
    return key


def _dev_key_path() -> Path:
    return Path(str(resources.files("vehicle_io") / "data" / DEV_KEY_RESOURCE))


def dev_private_key() -> Ed25519PrivateKey:
    """The DEVELOPMENT signing key (simulator only: it is public)."""
    return load_private_key(_dev_key_path())


def dev_public_key() -> Ed25519PublicKey:
    """The public half of the development key: what the simulated ECUs trust."""
    return dev_private_key().public_key()


def public_key_hex(key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def key_from_environment() -> Path | None:
    """The key file named by :data:`KEY_ENV`, if set."""
    value = os.environ.get(KEY_ENV, "").strip()
    return Path(value) if value else None


@dataclass(frozen=True)
class SignatureFile:
    """The content of an ``IMAGE.sig`` file."""

    ecu: str
    address: int
    length: int
    sha512: str
    signature: bytes
    public_key: str

    def to_json(self) -> str:
        return json.dumps({
            "scheme": SCHEME, "ecu": self.ecu, "address": f"0x{self.address:08X}", "length": self.length,
            "sha512": self.sha512, "signature": self.signature.hex(), "public_key": self.public_key,
        }, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "<signature>") -> SignatureFile:
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as err:
            raise SigningError(f"{source}: expected a JSON signature file, but it is not JSON: {err}") from err
        if not isinstance(data, dict) or data.get("scheme") != SCHEME:
            got = data.get("scheme") if isinstance(data, dict) else type(data).__name__
            raise SigningError(f"{source}: expected signature scheme {SCHEME!r}, but got {got!r}")
        try:
            signature = bytes.fromhex(str(data["signature"]))
            result = cls(ecu=str(data["ecu"]), address=int(str(data["address"]), 0), length=int(data["length"]),
                         sha512=str(data["sha512"]).lower(), signature=signature,
                         public_key=str(data.get("public_key", "")))
        except (KeyError, ValueError, TypeError) as err:
            raise SigningError(f"{source}: expected fields ecu, address, length, sha512, signature, "
                               f"but one is missing or malformed: {err}") from err
        if len(signature) != SIGNATURE_LENGTH:
            raise SigningError(f"{source}: expected a {SIGNATURE_LENGTH}-byte signature, but got {len(signature)} bytes")
        return result

    @classmethod
    def read(cls, path: str | Path) -> SignatureFile:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise SigningError(f"{path}: cannot read the signature file: {err}") from err
        return cls.from_json(text, str(path))

    def check_matches(self, ecu: str, address: int, image: bytes, source: str = "signature") -> None:
        """Refuse a signature made for another ECU, address or image (before anything is sent)."""
        if self.ecu.lower() != ecu.lower():
            raise SigningError(f"{source}: expected a signature for ECU {ecu!r}, but it was made for {self.ecu!r}")
        if self.address != address or self.length != len(image):
            raise SigningError(f"{source}: expected a signature for 0x{address:08X} + {len(image)} bytes, "
                               f"but it was made for 0x{self.address:08X} + {self.length} bytes")
        digest = hashlib.sha512(image).hexdigest()
        if self.sha512 != digest:
            raise SigningError(f"{source}: expected the SHA-512 of this image ({digest[:16]}...), "
                               f"but the signature is for {self.sha512[:16]}... (image changed after signing?)")


def sign_image(key: Ed25519PrivateKey, ecu: str, address: int, image: bytes) -> SignatureFile:
    """Sign ``image`` for ``ecu`` at ``address``."""
    signature = key.sign(signed_message(ecu, address, image))
    return SignatureFile(ecu.lower(), address, len(image), hashlib.sha512(image).hexdigest(), signature,
                         public_key_hex(key.public_key()))


def verify_image(key: Ed25519PublicKey, ecu: str, address: int, image: bytes, signature: bytes) -> bool:
    """True when ``signature`` is the Ed25519 signature of this image for this ECU and address."""
    from cryptography.exceptions import InvalidSignature

    if len(signature) != SIGNATURE_LENGTH:
        return False
    try:
        key.verify(signature, signed_message(ecu, address, image))
    except InvalidSignature:
        return False
    return True
