"""vehicle_io: the bench gateway that talks to a Z10 van over CAN, CAN FD and serial.

Light at import: numba kernels, cantools databases and python-can buses load only when a
caller asks for them, so ``z10 --help`` and other quick commands start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vehicle_io.errors import (
    BusConfigError,
    CodecError,
    DbcError,
    EncodeRangeError,
    TransmitBlocked,
    VehicleIoError,
)

__version__ = "0.1.0"

__all__ = [
    "BusConfigError",
    "CodecError",
    "DbcError",
    "EncodeRangeError",
    "TransmitBlocked",
    "VehicleIoError",
    "bundled_dbc_paths",
    "load_database",
    "__version__",
]

if TYPE_CHECKING:
    from vehicle_io.dbc import bundled_dbc_paths, load_database


def __getattr__(name: str) -> Any:
    if name in ("load_database", "bundled_dbc_paths"):
        from vehicle_io import dbc

        return getattr(dbc, name)
    raise AttributeError(f"module 'vehicle_io' has no attribute {name!r}")
