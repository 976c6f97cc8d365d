"""Errors of the socketcand hub."""

from __future__ import annotations

from vehicle_io.errors import BusConfigError, VehicleIoError

__all__ = ["HubConfigError", "HubError", "ProtocolError"]


class HubError(VehicleIoError):
    """Root of the errors raised by :mod:`hil.hub`."""


class HubConfigError(HubError, BusConfigError):
    """The hub cannot be set up as asked (non-loopback address, bad channel list, port in use)."""


class ProtocolError(HubError, ValueError):
    """A client sent something that is not a valid socketcand element or command.

    The message is one line and is sent back to the client as ``< error MESSAGE >``.
    """
