"""Errors of the van model: bad parameters and bad inputs, each a one-line message."""

from __future__ import annotations

from vehicle_io.errors import VehicleIoError

__all__ = ["PlantError", "PlantInputError", "PlantParamError"]


class PlantError(VehicleIoError):
    """Root of the errors raised by :mod:`hil.plant`."""


class PlantParamError(PlantError, ValueError):
    """A van parameter is missing, unknown or out of its physical range."""


class PlantInputError(PlantError, ValueError):
    """An input handed to the van is unknown, not finite or out of range."""
