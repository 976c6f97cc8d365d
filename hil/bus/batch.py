"""Receive straight into the gateway's frame-batch arrays, without a python-can Message per frame.

:meth:`hil.bus.Endpoint.collect` switches an endpoint from its message queue to a
:class:`FrameBatch`: each delivered frame is appended as plain fields, and :meth:`FrameBatch.drain`
returns the hot-path layout of DESIGN.md (``ids`` uint32[N] with the SocketCAN flags,
``data`` uint8[N, 64] zero padded, ``lengths`` uint8[N], ``timestamps`` float64[N]). The rig
talks to the gateway under test this way in simulated scenarios: the same frames, in the same
order and with the same end-of-frame timestamps as ``recv`` would give, at a fraction of the
cost.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["CAN_EFF_FLAG", "CAN_ERR_FLAG", "CAN_RTR_FLAG", "FrameBatch", "FrameArrays", "drain_all"]

CAN_EFF_FLAG = 0x80000000
CAN_RTR_FLAG = 0x40000000
CAN_ERR_FLAG = 0x20000000
#: Row width of ``data``: the longest CAN FD payload.
WIDTH = 64

FrameArrays = tuple[
    npt.NDArray[np.uint32], npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.float64]
]


class FrameBatch:
    """Frames received since the last :meth:`drain`, kept as plain lists (see the module docstring)."""

    __slots__ = ("_ids", "_lock", "_payloads", "_times")

    def __init__(self, lock: Any = None) -> None:
        # The lock the adding side holds (the bus clock's): drain swaps the lists under it,
        # so a real-time clock thread never adds half a frame to a batch being drained.
        self._lock = lock if lock is not None else threading.RLock()
        self._ids: list[int] = []
        self._payloads: list[bytes] = []
        self._times: list[float] = []

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, ts: float, ident: int, payload: bytes) -> None:
        """One frame: ``ident`` = id | flags (SocketCAN), ``payload`` its data bytes (<= 64)."""
        self._ids.append(ident)
        self._payloads.append(payload)
        self._times.append(ts)

    def add_message(self, msg: Any) -> None:
        """One python-can message (error frames, the rare paths): same fields as :meth:`add`."""
        ident = (msg.arbitration_id | (CAN_EFF_FLAG if msg.is_extended_id else 0)
                 | (CAN_RTR_FLAG if msg.is_remote_frame else 0) | (CAN_ERR_FLAG if msg.is_error_frame else 0))
        self.add(msg.timestamp, ident, bytes(msg.data or b""))

    def discard(self) -> int:
        """Drop the frames received since the last drain (a receiver that reads none); how many."""
        with self._lock:
            n = len(self._ids)
            self._ids, self._payloads, self._times = [], [], []
        return n

    def drain(self) -> FrameArrays:
        """The frames as fresh arrays (the caller owns them) and an empty batch."""
        with self._lock:
            ids, payloads, times = self._ids, self._payloads, self._times
            self._ids, self._payloads, self._times = [], [], []
        n = len(ids)
        lengths = np.fromiter(map(len, payloads), dtype=np.uint8, count=n)
        # One join instead of a row assignment per frame; bytearray keeps the array writeable.
        flat = bytearray(b"".join([p.ljust(WIDTH, b"\0") for p in payloads]))
        data = np.frombuffer(flat, dtype=np.uint8).reshape(n, WIDTH) if n else np.zeros((0, WIDTH), np.uint8)
        return (np.array(ids, dtype=np.uint32), data, lengths, np.array(times, dtype=np.float64))


def drain_all(batches: Sequence[FrameBatch]) -> tuple[FrameArrays, list[int]]:
    """:meth:`FrameBatch.drain` of several batches as one set of arrays, and the rows of each.

    Rows of ``batches[i]`` follow those of ``batches[i - 1]``: the arrays equal the
    concatenation of each batch's drain, built in one go (one conversion per array, not one
    per batch).
    """
    ids: list[int] = []
    payloads: list[bytes] = []
    times: list[float] = []
    counts: list[int] = []
    for batch in batches:
        with batch._lock:
            ids += batch._ids
            payloads += batch._payloads
            times += batch._times
            counts.append(len(batch._ids))
            batch._ids, batch._payloads, batch._times = [], [], []
    n = len(ids)
    lengths = np.fromiter(map(len, payloads), dtype=np.uint8, count=n)
    flat = bytearray(b"".join([p.ljust(WIDTH, b"\0") for p in payloads]))
    data = np.frombuffer(flat, dtype=np.uint8).reshape(n, WIDTH) if n else np.zeros((0, WIDTH), np.uint8)
    return (np.array(ids, dtype=np.uint32), data, lengths, np.array(times, dtype=np.float64)), counts
