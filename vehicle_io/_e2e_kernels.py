"""Numba kernels of receive validity: Z10-P1 E2E (batch CRC, per-frame check, state
machine) and the gateway store's per-batch checks, counters and staleness.

Imports only numpy and numba. The E2E logic mirrors :class:`vehicle_io.e2e.E2EReceiver`
(the scalar reference, tested against these kernels); the wrappers that own the arrays are
:class:`vehicle_io.gateway.validity.E2EBank` and :class:`vehicle_io.gateway.store.SignalStore`.

Array conventions (one row per protected message, index ``m``):

* ``spec[m]`` int64[6]: data id, length, CRC byte, counter byte, counter shift, max delta;
* ``cfg[m]`` int64[8]: window size, min OK init, max error init, min OK valid,
  max error valid, min OK invalid, max error invalid, clear-to-invalid (0/1);
* state: ``last_counter`` int64[M] (-1: none yet), ``sm_state`` uint8[M],
  ``window`` int8[M, 64] (-1: empty), ``top`` int64[M].

Status codes are those of ``CheckStatus``; states those of ``SMState``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

OK = 0
REPEATED = 1
OK_SOME_LOST = 2
WRONG_SEQUENCE = 3
ERROR = 4
NO_NEW_DATA = 5

NODATA = 0
INIT = 1
VALID = 2
INVALID = 3

WINDOW_MAX = 64


@njit(cache=True)
def crc_rows(table, data, rows, data_id, length, crc_byte, out):  # type: ignore[no-untyped-def]
    """out[k] = Z10-P1 CRC of data[rows[k]] (data id, then bytes 0..length-1 except crc_byte)."""
    for k in range(rows.shape[0]):
        r = rows[k]
        did = data_id[k]
        crc = int(table[0xFF ^ (did & 0xFF)])
        crc = int(table[crc ^ ((did >> 8) & 0xFF)])
        for b in range(length[k]):
            if b != crc_byte[k]:
                crc = int(table[crc ^ int(data[r, b])])
        out[k] = crc ^ 0xFF


@njit(cache=True)
def _clear(m, window, top):  # type: ignore[no-untyped-def]
    for i in range(window.shape[1]):
        window[m, i] = -1
    top[m] = 0


@njit(cache=True)
def _add(m, status, size, window, top):  # type: ignore[no-untyped-def]
    window[m, top[m]] = status
    top[m] = (top[m] + 1) % size
    ok = 0
    err = 0
    for i in range(size):
        s = window[m, i]
        if s == OK or s == OK_SOME_LOST:
            ok += 1
        elif s == ERROR:
            err += 1
    return ok, err


@njit(cache=True)
def sm_update(m, status, cfg, sm_state, window, top):  # type: ignore[no-untyped-def]
    """Feed one check result to the state machine of message m; returns the new state."""
    state = sm_state[m]
    size = cfg[m, 0]
    if state == NODATA:
        if status != ERROR and status != NO_NEW_DATA:
            _clear(m, window, top)
            state = INIT
    elif state == INIT:
        ok, err = _add(m, status, size, window, top)
        if err > cfg[m, 2]:
            if cfg[m, 7] != 0:
                _clear(m, window, top)
            state = INVALID
        elif ok >= cfg[m, 1]:
            state = VALID
    elif state == VALID:
        ok, err = _add(m, status, size, window, top)
        if not (err <= cfg[m, 4] and ok >= cfg[m, 3]):
            if cfg[m, 7] != 0:
                _clear(m, window, top)
            state = INVALID
    else:
        ok, err = _add(m, status, size, window, top)
        if err <= cfg[m, 6] and ok >= cfg[m, 5]:
            state = VALID
    sm_state[m] = state
    return state


@njit(cache=True)
def check_frame(  # type: ignore[no-untyped-def]
    r, m, table, data, lengths, spec, cfg, last_counter, sm_state, window, top, status_counts, times, cycle_s,
    deadline_factor, next_deadline
):
    """Check frame data[r] of protected message m; returns (status, state after, CRC matched).

    Updates the receiver state in place, counts the status in ``status_counts[m, status]``
    and re-arms the reception deadline ``next_deadline[m]`` to ``times[r] + deadline_factor
    * cycle_s[m]`` (a NaN deadline, never armed, takes the new value).
    """
    length = spec[m, 1]
    crc_ok = 0
    if lengths[r] < length:
        status = ERROR
    else:
        did = spec[m, 0]
        crc_byte = spec[m, 2]
        crc = int(table[0xFF ^ (did & 0xFF)])
        crc = int(table[crc ^ ((did >> 8) & 0xFF)])
        for b in range(length):
            if b != crc_byte:
                crc = int(table[crc ^ int(data[r, b])])
        crc ^= 0xFF
        counter = (int(data[r, spec[m, 3]]) >> spec[m, 4]) & 0x0F
        if crc == int(data[r, crc_byte]):
            crc_ok = 1
        if crc_ok == 0 or counter > 14:
            status = ERROR
        else:
            last = last_counter[m]
            if last < 0:
                status = OK
            else:
                delta = (counter - last) % 15
                if delta == 0:
                    status = REPEATED
                elif delta == 1:
                    status = OK
                elif delta <= spec[m, 5]:
                    status = OK_SOME_LOST
                else:
                    status = WRONG_SEQUENCE
            last_counter[m] = counter
    state = sm_update(m, status, cfg, sm_state, window, top)
    status_counts[m, status] += 1
    # Any frame, good or bad, re-arms the deadline: silence is what NO_NEW_DATA means.
    deadline = times[r] + deadline_factor * cycle_s[m]
    current = next_deadline[m]
    if current != current or deadline > current:
        next_deadline[m] = deadline
    return status, state, crc_ok


@njit(cache=True)
def check_rows(  # type: ignore[no-untyped-def]
    table, data, lengths, rows, slots, spec, cfg, last_counter, sm_state, window, top, status_out, state_out,
    crc_ok_out, status_counts, times, cycle_s, deadline_factor, next_deadline
):
    """Check frames data[rows[k]] of protected messages slots[k], in order (see check_frame)."""
    for k in range(rows.shape[0]):
        status, state, crc_ok = check_frame(
            rows[k], slots[k], table, data, lengths, spec, cfg, last_counter, sm_state, window, top,
            status_counts, times, cycle_s, deadline_factor, next_deadline,
        )
        status_out[k] = status
        state_out[k] = state
        crc_ok_out[k] = crc_ok


@njit(cache=True)
def validate_rows(  # type: ignore[no-untyped-def]
    reason, msg_index, times, now, stale_after, e2e_slot, verdict, codes,
    table, data, lengths, spec, cfg, last_counter, sm_state, window, top, status_counts, cycle_s,
    deadline_factor, next_deadline,
    bus_counts, msg_frames, msg_decoded, msg_rejected, last_row, last_rx, received,
):
    """Receive validity of a decoded batch, in row order, and every counter it moves.

    ``reason[r]``: 255 (still acceptable) or a reject code; updated in place with the E2E
    verdict (``verdict[status, crc_ok]``, then ``codes[0]`` when the state machine is not
    VALID) and staleness (``codes[1]`` when the frame is older than ``stale_after[m]``).
    ``codes[2]`` marks an acceptable row without a message (cannot happen after a decode;
    kept so nothing is ever stored unaccounted). Counts: ``bus_counts`` [seen, decoded,
    rejected by code...], per message frames / decoded / rejected by code. For each message,
    ``last_row[m]`` / ``last_rx[m]`` / ``received[m]`` record its last accepted row.
    Returns the number of accepted rows.
    """
    accepted = 0
    for r in range(reason.shape[0]):
        m = msg_index[r]
        code = reason[r]
        if code == 255:
            if m < 0:
                code = codes[2]
            else:
                e = e2e_slot[m]
                if e >= 0:
                    status, state, crc_ok = check_frame(
                        r, e, table, data, lengths, spec, cfg, last_counter, sm_state, window, top,
                        status_counts, times, cycle_s, deadline_factor, next_deadline,
                    )
                    code = verdict[status, crc_ok]
                    if code == 255 and state != VALID:
                        code = codes[0]
                if code == 255 and now - times[r] > stale_after[m]:
                    code = codes[1]
            reason[r] = code
        bus_counts[0] += 1
        if m >= 0:
            msg_frames[m] += 1
        if code == 255:
            accepted += 1
            bus_counts[1] += 1
            msg_decoded[m] += 1
            last_row[m] = r
            last_rx[m] = times[r]
            received[m] = 1
        else:
            bus_counts[2 + code] += 1
            if m >= 0:
                msg_rejected[m, code] += 1
    return accepted


@njit(cache=True)
def refresh_validity(  # type: ignore[no-untyped-def]
    now, last_rx, stale_after, received, stale, e2e_slot, sm_state, message_valid, has_value, slot_message, valid
):
    """Stale flags, message and signal validity at ``now``; returns how many went stale."""
    went_stale = 0
    for m in range(last_rx.shape[0]):
        is_stale = received[m] != 0 and now - last_rx[m] > stale_after[m]
        if is_stale and stale[m] == 0:
            went_stale += 1
        stale[m] = 1 if is_stale else 0
        ok = received[m] != 0 and not is_stale
        e = e2e_slot[m]
        if ok and e >= 0 and sm_state[e] != VALID:
            ok = False
        message_valid[m] = 1 if ok else 0
    for s in range(valid.shape[0]):
        valid[s] = 1 if has_value[s] != 0 and message_valid[slot_message[s]] != 0 else 0
    return went_stale


@njit(cache=True)
def no_new_data(slots, counts, cfg, sm_state, window, top):  # type: ignore[no-untyped-def]
    """Feed counts[k] NO_NEW_DATA results to message slots[k] (missed reception deadlines)."""
    for k in range(slots.shape[0]):
        m = slots[k]
        for _ in range(counts[k]):
            sm_update(m, NO_NEW_DATA, cfg, sm_state, window, top)


def new_state(n_messages: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fresh receiver state for n messages: (last_counter, sm_state, window, top)."""
    return (
        np.full(n_messages, -1, dtype=np.int64),
        np.zeros(n_messages, dtype=np.uint8),
        np.full((n_messages, WINDOW_MAX), -1, dtype=np.int8),
        np.zeros(n_messages, dtype=np.int64),
    )
