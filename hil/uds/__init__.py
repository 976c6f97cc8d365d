"""UDS (ISO 14229) servers of the simulated Z10 ECUs and their ISO-TP transport.

:mod:`hil.uds.server` is the I/O-free engine (request bytes in, responses out, injected
clock); :mod:`hil.uds.transport` binds it to a python-can bus with can-isotp (with the ISO 15765-2
receive rules of :mod:`hil.uds.isotp_rules`);
:mod:`hil.uds.ecus` defines the Z10 ECUs (VCU, BMS, cargo-bay controller).
"""

from hil.uds.dtc import DtcDefinition, DtcStore
from hil.uds.errors import FlashWriteError, UdsConfigError, UdsError
from hil.uds.memory import FlashMemory
from hil.uds.server import Conditions, EcuConfig, EcuNvState, LiveDid, Nrc, Session, UdsServer

__all__ = [
    "Conditions", "DtcDefinition", "DtcStore", "EcuConfig", "EcuNvState", "FlashMemory", "FlashWriteError",
    "LiveDid", "Nrc", "Session", "UdsConfigError", "UdsError", "UdsServer",
]
