"""Receive validity per message: the E2E receivers of every protected message, as arrays.

:class:`E2EBank` holds the Z10-P1 receiver state of M protected messages (alive counter,
state machine window) and checks frames in batches through :mod:`vehicle_io._e2e_kernels`.
It also runs the reception deadline monitor that turns silence into NO_NEW_DATA results:
a message with a cycle time that has not been heard for ``deadline_factor`` cycles gets one
NO_NEW_DATA per further cycle, which drains the OK count of its window (AUTOSAR receivers do
the same by calling their check every cycle).

Staleness (N x cycle time without an accepted frame) is the store's business
(:class:`vehicle_io.gateway.store.SignalStore`); this module only knows E2E.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from vehicle_io import _e2e_kernels as kernels
from vehicle_io.e2e import CRC8_TABLE, E2EConfig, E2ESpec, SMState


_NONE_DUE = np.zeros(0, dtype=np.intp)


class E2EBank:
    """Z10-P1 receivers of many messages; index ``m`` follows the order of ``specs``."""

    def __init__(
        self,
        specs: Sequence[E2ESpec],
        configs: Sequence[E2EConfig] | E2EConfig | None = None,
        cycle_times_s: Sequence[float | None] | None = None,
        *,
        deadline_factor: float = 2.5,
    ) -> None:
        n = len(specs)
        if configs is None or isinstance(configs, E2EConfig):
            configs = [configs or E2EConfig()] * n
        if len(configs) != n:
            raise ValueError(f"E2EBank: expected {n} configs, but got {len(configs)}")
        if deadline_factor < 1.0:
            raise ValueError(f"E2EBank: expected deadline_factor >= 1, but got {deadline_factor}")
        self.specs = tuple(specs)
        self.configs = tuple(configs)
        self.spec = np.array(
            [[s.data_id, s.length, s.crc_byte, s.counter_byte, s.counter_shift, c.max_delta]
             for s, c in zip(specs, configs)],
            dtype=np.int64,
        ).reshape(n, 6)
        self.cfg = np.array(
            [[c.window_size, c.min_ok_init, c.max_error_init, c.min_ok_valid, c.max_error_valid,
              c.min_ok_invalid, c.max_error_invalid, int(c.clear_to_invalid)] for c in configs],
            dtype=np.int64,
        ).reshape(n, 8)
        self.last_counter, self.sm_state, self.window, self.top = kernels.new_state(n)
        cycles = list(cycle_times_s) if cycle_times_s is not None else [None] * n
        if len(cycles) != n:
            raise ValueError(f"E2EBank: expected {n} cycle times, but got {len(cycles)}")
        self.cycle_s = np.array(
            [c if c is not None and c > 0 and math.isfinite(c) else np.inf for c in cycles], dtype=np.float64
        )
        self.deadline_factor = float(deadline_factor)
        #: When the next NO_NEW_DATA is due (NaN: no frame yet; inf: no cycle time).
        self.next_deadline_s = np.full(n, np.nan)
        #: Results per message: counts of each CheckStatus (column = status code).
        self.status_counts = np.zeros((n, 6), dtype=np.int64)
        self._status_buf = np.zeros(0, dtype=np.uint8)
        self._state_buf = np.zeros(0, dtype=np.uint8)
        self._crc_buf = np.zeros(0, dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.specs)

    def check(
        self,
        data: npt.NDArray[np.uint8],
        lengths: npt.NDArray[np.uint8],
        rows: npt.NDArray[np.int64],
        slots: npt.NDArray[np.int64],
        times_s: npt.NDArray[np.float64],
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
        """Check frames data[rows[k]] (received at times_s[rows[k]]) of messages slots[k] in order.

        Returns views (valid until the next call) of: frame status (CheckStatus codes), state
        after each frame (SMState codes), and 1 where the CRC matched.
        """
        k = rows.shape[0]
        if self._status_buf.shape[0] < k:
            size = max(k, 2 * self._status_buf.shape[0], 64)
            self._status_buf = np.zeros(size, dtype=np.uint8)
            self._state_buf = np.zeros(size, dtype=np.uint8)
            self._crc_buf = np.zeros(size, dtype=np.uint8)
        status = self._status_buf[:k]
        state = self._state_buf[:k]
        crc_ok = self._crc_buf[:k]
        if k:
            kernels.check_rows(
                CRC8_TABLE, data, lengths, rows, slots, self.spec, self.cfg,
                self.last_counter, self.sm_state, self.window, self.top, status, state, crc_ok,
                self.status_counts, times_s, self.cycle_s, self.deadline_factor, self.next_deadline_s,
            )
        return status, state, crc_ok

    def check_deadlines(self, now_s: float) -> npt.NDArray[np.int64]:
        """Feed NO_NEW_DATA for every cycle missed up to ``now_s``; returns the slots fed."""
        if not kernels.any_due(self.next_deadline_s, now_s):  # the usual case: one kernel call
            return _NONE_DUE[:0]
        due = np.flatnonzero(self.next_deadline_s <= now_s)
        if due.size == 0:
            return due
        cycle = self.cycle_s[due]
        missed = np.floor((now_s - self.next_deadline_s[due]) / cycle).astype(np.int64) + 1
        self.next_deadline_s[due] += missed * cycle
        # Beyond a full window more NO_NEW_DATA change nothing: cap the work.
        fed = np.minimum(missed, self.cfg[due, 0] + 1)
        kernels.no_new_data(due, fed, self.cfg, self.sm_state, self.window, self.top)
        self.status_counts[due, 5] += missed
        return due

    def state(self, m: int) -> SMState:
        return SMState(int(self.sm_state[m]))

    def reset(self, m: int | None = None) -> None:
        """Back to NODATA (one message, or all): e.g. after the sender was power-cycled."""
        idx = slice(None) if m is None else m
        self.last_counter[idx] = -1
        self.sm_state[idx] = SMState.NODATA
        self.window[idx] = -1
        self.top[idx] = 0
        self.next_deadline_s[idx] = np.nan
