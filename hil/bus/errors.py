"""Errors of the timed virtual bus.

Each inherits :class:`vehicle_io.errors.VehicleIoError` (the project root) and the error a
python-can user already catches: a frame the bus refuses is a ``can.CanOperationError``, as a
hardware interface would raise it.
"""

from __future__ import annotations

import can

from vehicle_io.errors import BusConfigError, VehicleIoError

__all__ = [
    "BusConfigError",
    "BusOffError",
    "FaultConfigError",
    "HilBusError",
    "InvalidFrameError",
    "TransmitQueueFull",
]


class HilBusError(VehicleIoError):
    """Root of the errors raised by :mod:`hil.bus`."""


class InvalidFrameError(HilBusError, can.CanOperationError, ValueError):
    """A frame handed to ``send`` cannot exist on this channel (id range, length, FD flags)."""


class BusOffError(HilBusError, can.CanOperationError):
    """The node is bus-off (TEC above 255): it may not transmit until it has recovered."""


class TransmitQueueFull(HilBusError, can.CanOperationError):
    """The endpoint's transmit queue stayed full for the whole send timeout."""


class FaultConfigError(HilBusError, ValueError):
    """A fault rule is not usable as given (unknown action, bad field, bad value)."""
