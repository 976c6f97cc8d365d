"""Exception hierarchy of :mod:`vehicle_io`.

One root, :class:`VehicleIoError`; each specific error also inherits the builtin a caller
would naturally catch, so ``except ValueError`` still works for a malformed DBC.
"""

from __future__ import annotations

from pathlib import Path


class VehicleIoError(Exception):
    """Root of every error raised by :mod:`vehicle_io`."""


class DbcError(VehicleIoError, ValueError):
    """A DBC file could not be loaded: names the file and, where known, the line."""

    def __init__(self, path: str | Path | None, line: int | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = reason
        where = self.path or "<string>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {reason}")


class CodecError(VehicleIoError, ValueError):
    """A message or signal cannot be encoded or decoded as asked."""


class EncodeRangeError(CodecError):
    """A value to encode lies outside the signal's range."""


class BusConfigError(VehicleIoError, ValueError):
    """A bus could not be described or opened as configured."""


class TransmitBlocked(VehicleIoError, PermissionError):
    """A frame was refused by the transmit gate (bus not armed, or id not allowed)."""
