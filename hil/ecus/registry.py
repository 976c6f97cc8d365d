"""The simulated ECUs by DBC node name: adding an ECU is one module and one line here.

Values are ``"module:Class"`` paths, imported on first use, so listing the nodes is free.
"""

from __future__ import annotations

import importlib

from hil.ecus.base import EcuConfigError, SimEcu

__all__ = ["ECUS", "ecu_class", "node_names"]

ECUS: dict[str, str] = {
    "VCU": "hil.ecus.vcu:VcuEcu",
    "MCU": "hil.ecus.mcu:McuEcu",
    "BMS": "hil.ecus.bms:BmsEcu",
    "EPS": "hil.ecus.eps:EpsEcu",
    "BRK": "hil.ecus.brk:BrkEcu",
    "CBC": "hil.ecus.cbc:CbcEcu",
    "ADC": "hil.ecus.adc:AdcEcu",
}


def node_names() -> list[str]:
    """Every registered node, in registry order."""
    return list(ECUS)


def ecu_class(node: str) -> type[SimEcu]:
    """The :class:`SimEcu` subclass simulating ``node``."""
    try:
        path = ECUS[node]
    except KeyError:
        raise EcuConfigError(f"ECU {node!r}: expected one of {', '.join(ECUS)}, but got an unknown node") from None
    module_name, _, class_name = path.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, SimEcu) and cls.NODE == node):
        raise EcuConfigError(f"ECU registry entry {node!r}: expected a SimEcu subclass with NODE {node!r}, but got {path}")
    return cls
