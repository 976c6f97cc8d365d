"""The gateway's control loop: numba step kernel with interlocks, and its real-time wrapper.

* ``layout.py``: input/output/state records, interlock table, :class:`Thresholds`.
* ``_kernels.py``: the numba step kernel (imported lazily, with numba).
* ``loop.py``: :class:`ControlLoop` (snapshot -> kernel -> BatchEncoder -> Gateway.send).

Importing this package imports neither numba nor python-can; the names below load lazily.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "ControlLoop": "vehicle_io.control.loop",
    "ControlEvent": "vehicle_io.control.loop",
    "ControlConfigError": "vehicle_io.control.loop",
    "RunStats": "vehicle_io.control.loop",
    "control_allowlist": "vehicle_io.control.loop",
    "TX_MESSAGES": "vehicle_io.control.loop",
    "Thresholds": "vehicle_io.control.layout",
    "INTERLOCKS": "vehicle_io.control.layout",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vehicle_io.control' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = sorted(_LAZY)
