"""The socketcand hub: the rig's buses served to other processes over loopback TCP.

``z10 sim`` runs one. Any socketcand client attaches, python-can's among them::

    bus = can.Bus(interface="socketcand", host="127.0.0.1", port=29536, channel="pt")

In a test or a script::

    from hil.hub import Hub, default_channels

    with Hub(default_channels(), port=0) as hub:      # hilbus pt, body, ads in real time
        print(hub.port)

Loss policy (see :mod:`hil.hub.server`): back-pressure from the bus to a sending client, a
bounded and counted output buffer towards a receiving client.
"""

from hil.hub.errors import HubConfigError, HubError, ProtocolError
from hil.hub.protocol import DEFAULT_PORT, BcmReceiver, Framer, format_bcm, format_raw
from hil.hub.server import (
    DEFAULT_HOST,
    ChannelStats,
    Hub,
    HubChannel,
    HubStats,
    check_loopback,
    default_channels,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "BcmReceiver",
    "ChannelStats",
    "Framer",
    "Hub",
    "HubChannel",
    "HubConfigError",
    "HubError",
    "HubStats",
    "ProtocolError",
    "check_loopback",
    "default_channels",
    "format_bcm",
    "format_raw",
]
