"""Errors of the simulated ECUs' UDS servers (configuration and flash model)."""

from __future__ import annotations

from vehicle_io.errors import VehicleIoError

__all__ = ["FlashWriteError", "UdsConfigError", "UdsError"]


class UdsError(VehicleIoError):
    """Root of the errors raised by :mod:`hil.uds`."""


class UdsConfigError(UdsError, ValueError):
    """An ECU description is not usable (VIN, block length...)."""


class FlashWriteError(UdsError):
    """A write the flash cannot do (outside the bank, bytes not erased, injected fault)."""
