"""Flash images: Intel HEX, Motorola S-record and raw binary, read with bincopy.

An image becomes ONE contiguous region (lowest to highest address, gaps filled with 0xFF,
the erased value of flash): the ECU erases and downloads one region, and the signature
(:mod:`vehicle_io.flash.signing`) covers exactly the bytes downloaded. The format comes from
the file extension (``.hex .ihex .ihx`` Intel HEX, ``.s19 .s28 .s37 .srec .mot`` S-record,
``.bin`` raw) or is given explicitly; a raw binary has no addresses, so it needs a base
address.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

from vehicle_io.errors import VehicleIoError

__all__ = ["FORMATS", "FlashImage", "ImageError", "format_of", "load_image"]

#: extension -> format
_EXTENSIONS: dict[str, str] = {
    ".hex": "ihex", ".ihex": "ihex", ".ihx": "ihex",
    ".s19": "srec", ".s28": "srec", ".s37": "srec", ".srec": "srec", ".mot": "srec", ".sx": "srec",
    ".bin": "binary", ".img": "binary",
}
FORMATS = ("ihex", "srec", "binary")
#: the erased value of flash: what fills the gaps between segments
FILL_BYTE = 0xFF


class ImageError(VehicleIoError, ValueError):
    """An image file cannot be read or does not fit what was asked."""


@dataclass(frozen=True)
class FlashImage:
    """One contiguous region to download: ``data`` at ``address``."""

    address: int
    data: bytes
    source: str = ""
    format: str = "binary"
    #: (address, length) of each segment of the file before the gaps were filled
    segments: tuple[tuple[int, int], ...] = ()

    @property
    def length(self) -> int:
        return len(self.data)

    @property
    def end(self) -> int:
        return self.address + len(self.data)

    @property
    def crc32(self) -> int:
        """CRC-32 (zlib / IEEE 802.3) of the data: what the ECU's check-memory routine compares."""
        return zlib.crc32(self.data) & 0xFFFFFFFF


def format_of(path: str | Path, explicit: str | None = None) -> str:
    """The image format: ``explicit`` if given, else from the file extension."""
    if explicit:
        if explicit not in FORMATS:
            raise ImageError(f"expected an image format among {', '.join(FORMATS)}, but got {explicit!r}")
        return explicit
    suffix = Path(path).suffix.lower()
    try:
        return _EXTENSIONS[suffix]
    except KeyError:
        raise ImageError(f"{path}: expected an extension among {', '.join(sorted(_EXTENSIONS))} "
                         f"(or --format), but got {suffix or 'none'!r}") from None


def load_image(path: str | Path, *, fmt: str | None = None, base_address: int | None = None) -> FlashImage:
    """Read an image file into one contiguous :class:`FlashImage`."""
    import bincopy

    kind = format_of(path, fmt)
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise ImageError(f"{path}: cannot read the image: {err.strerror or err}") from err
    if kind == "binary":
        if base_address is None:
            raise ImageError(f"{path}: a raw binary has no addresses: expected --base-address, but got none")
        if base_address < 0:
            raise ImageError(f"{path}: expected a base address >= 0, but got {base_address}")
        if not raw:
            raise ImageError(f"{path}: expected image data, but the file is empty")
        return FlashImage(base_address, raw, str(path), kind, ((base_address, len(raw)),))
    if base_address is not None:
        raise ImageError(f"{path}: --base-address is for raw binaries; a {kind} file carries its own addresses")
    binfile = bincopy.BinFile()
    try:
        text = raw.decode("ascii")
        if kind == "ihex":
            binfile.add_ihex(text)
        else:
            binfile.add_srec(text)
    except UnicodeDecodeError as err:
        raise ImageError(f"{path}: expected a text {kind} file, but byte {err.start} is not ASCII") from err
    except (bincopy.Error, ValueError, IndexError) as err:
        raise ImageError(f"{path}: not a valid {kind} file: {err}") from err
    if binfile.minimum_address is None or not len(binfile.segments):
        raise ImageError(f"{path}: expected data records, but the {kind} file has none")
    segments = tuple((s.minimum_address, len(s.data)) for s in binfile.segments)
    data = bytes(binfile.as_binary(padding=bytes([FILL_BYTE])))
    return FlashImage(binfile.minimum_address, data, str(path), kind, segments)
