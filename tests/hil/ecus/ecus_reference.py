"""Independent checks for the rest-bus tests (nothing here comes from the code under test)."""

from __future__ import annotations
from tests.crc_reference import crc8_j1850_bitwise


def z10_crc(data_id: int, frame: bytes) -> int:
    """Z10-P1 CRC of ``frame`` (CRC in byte 0): data id low, high, then bytes 1..n-1."""
    return crc8_j1850_bitwise(bytes([data_id & 0xFF, data_id >> 8]) + frame[1:])


def attr(message: object, name: str) -> object:
    """A DBC attribute of a cantools message (None when absent)."""
    dbc = getattr(message, "dbc", None)
    attrs = getattr(dbc, "attributes", None) or {}
    a = attrs.get(name)
    return None if a is None else a.value


class StillVan:
    """A parked van test double (the ECUs' VanView): every output 0, inputs remembered.

    It has no ``step``, so a rig built on it costs nothing to run in real time, even with
    NUMBA_DISABLE_JIT=1 (where the plant model runs slower than real time).
    """

    n_compartments = 6

    def __init__(self) -> None:
        self.inputs: dict[str, float] = {}

    def read(self, name: str) -> float:
        return self.inputs.get(name[3:], 0.0) if name.startswith("in_") else 0.0

    def param(self, name: str) -> float:
        return 0.0

    def command(self, **inputs: float) -> None:
        self.inputs.update(inputs)

    def command_compartment(self, number: int, **inputs: float) -> None:
        self.inputs.update({f"{k}{number}": v for k, v in inputs.items()})

    def compartment(self, number: int) -> dict[str, float]:
        return {"door_open": 0, "lock_state": 1, "weight_kg": 0.0, "temp_c": 20.0}

    def cell_voltages_v(self):  # type: ignore[no-untyped-def]
        import numpy as np

        return np.full(96, 3.7)

    def sensor_temps_c(self):  # type: ignore[no-untyped-def]
        import numpy as np

        return np.full(32, 25.0)
