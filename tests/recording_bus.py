"""A python-can bus for tests that keeps what is sent and can be made to refuse."""

from __future__ import annotations

import can


class RecordingBus(can.BusABC):
    """Keeps what is sent in ``sent``; raises CanOperationError while ``failing``."""

    def __init__(self, name: str) -> None:
        self.channel_info = f"recording {name}"
        self._periodic_tasks = []
        self._filters = None
        self.sent: list[can.Message] = []
        self.failing = False

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        if self.failing:
            raise can.CanOperationError("recording bus: refused on purpose")
        self.sent.append(msg)

    def _recv_internal(self, timeout: float | None) -> tuple[None, bool]:
        return None, False
