"""Simulated Z10 ECUs (rest-bus simulation) on the timed virtual bus.

One module per ECU (vcu, mcu, bms, eps, brk, cbc, adc), all built on
:class:`hil.ecus.base.SimEcu` and listed by node name in :mod:`hil.ecus.registry`.
:class:`hil.rig.Rig` puts them, the van model and the three buses together.
Importing this package does not import numba (the van model does, in :mod:`hil.rig`).
"""

from hil.ecus.base import ECU_FAULT_ACTIONS, EcuConfigError, EcuFault, EcuStats, SimEcu, VanView
from hil.ecus.registry import ECUS, ecu_class, node_names

__all__ = [
    "ECUS",
    "ECU_FAULT_ACTIONS",
    "EcuConfigError",
    "EcuFault",
    "EcuStats",
    "SimEcu",
    "VanView",
    "ecu_class",
    "node_names",
]
