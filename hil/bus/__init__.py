"""The rig's timed virtual CAN bus (python-can interface ``hilbus``).

Real frame timing (exact bit counts with stuffing, CAN FD data phase), real arbitration,
ISO 11898-1 fault confinement and scriptable faults, on an injected clock: wall-clock paced
(:class:`RealClock`) or simulated and deterministic (:class:`SimClock`).

For code that bridges the bus elsewhere (a socketcand hub, an SLCAN emulator)::

    from hil.bus import open_channel, SimClock

    ch = open_channel("pt", bitrate=500_000)            # get or create; holds a reference
    ep = ch.attach(node="hub-client-1", on_frame=push)   # a node: sends, receives, ACKs
    ep.send(can.Message(arbitration_id=0x123, data=b"\\x01"))
    stop = ch.add_frame_observer(print)                  # every WireFrame on the wire
    ...
    ep.close(); ch.close()

python-can users just open ``can.Bus(interface="hilbus", channel="pt", bitrate=500000)``.
"""

from hil.bus.bits import FrameBits, arbitration_key, bit_counts, frame_bits
from hil.bus.channel import (
    BusEvent,
    Channel,
    ChannelStats,
    Endpoint,
    NodeStats,
    WireFrame,
    channel_names,
    get_channel,
    open_channel,
)
from hil.bus.clock import PS_PER_S, Clock, RealClock, SimClock, TimerHandle
from hil.bus.errors import (
    BusConfigError,
    BusOffError,
    FaultConfigError,
    HilBusError,
    InvalidFrameError,
    TransmitQueueFull,
)
from hil.bus.faults import ACTIONS, ErrorCounters, FaultRule
from hil.bus.interface import ClockCyclicSendTask, HilBus

__all__ = [
    "ACTIONS",
    "PS_PER_S",
    "BusConfigError",
    "BusEvent",
    "BusOffError",
    "Channel",
    "ChannelStats",
    "Clock",
    "ClockCyclicSendTask",
    "Endpoint",
    "ErrorCounters",
    "FaultConfigError",
    "FaultRule",
    "FrameBits",
    "HilBus",
    "HilBusError",
    "InvalidFrameError",
    "NodeStats",
    "RealClock",
    "SimClock",
    "TimerHandle",
    "TransmitQueueFull",
    "WireFrame",
    "arbitration_key",
    "bit_counts",
    "channel_names",
    "frame_bits",
    "get_channel",
    "open_channel",
]
