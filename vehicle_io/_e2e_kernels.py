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


@njit(cache=True)
def _mux_present(s, k, base, count, values, slot_col, slot_parent, slot_is_mux, slot_has_ids, ids_lo,
                 ids_hi, ids_keys, n_signals):
    """Whether a multiplexed frame (row ``k`` of its message) carries slot ``s``.

    Walks up the chain of multiplexers as SignalStore._present does: a slot without a
    multiplexer (or without mux ids) is present; otherwise its multiplexer's value (-1 when
    NaN or not a multiplexer) must be one of its ids, and so on up the chain.
    """
    j = s
    depth = 0
    while True:
        p = slot_parent[j]
        if p < 0 or slot_has_ids[j] == 0:
            return True
        if depth > n_signals:
            return False
        key = -1
        if slot_is_mux[p] != 0:
            v = values[base + slot_col[p] * count + k]
            if v == v:
                key = np.int64(v)
        found = False
        for x in range(ids_lo[j], ids_hi[j]):
            if ids_keys[x] == key:
                found = True
                break
        if not found:
            return False
        j = p
        depth += 1


@njit(cache=True)
def ingest_decoded(  # type: ignore[no-untyped-def]
    reason, ids, data, lengths, times, status, row_msg, counts, out_base, values, now, bus_counts,
    codec_reason, msg_index, position, pool_i64, pool_f64, pool_u8, msg_rejected, map_pool,
    verdict, codes, table, spec, cfg, last_counter, sm_state, window, top, status_counts, cycle_s,
    deadline_factor, next_deadline,
):
    """The store's whole receive step of a decoded batch in one call.

    Arrays come in pools (one argument each; numba unboxes every argument on every call), M
    messages, S slots, D decoder messages (``counts.shape[0]``):

    * ``pool_i64``: e2e slot [M], frames [M], decoded [M], last accepted row [M],
      slot -> message [S];
    * ``pool_f64``: stale after [M], last rx [M], value [S], timestamp [S];
    * ``pool_u8``: received [M], stale [M], message valid [M], has value [S], valid [S];
    * ``map_pool`` (the decoder's map): decoder -> layout message [D], scratch [D],
      layout -> decoder message [M], store mode [M], first slot [M], end slot [M],
      extended [M], slot -> column [S], is multiplexer [S], multiplexer slot [S],
      has mux ids [S], mux ids from [S], to [S], then the sorted mux ids.

    1. Map the decoder's rows to layout messages as the gateway's map_rows does (codec
       status -> reject code for rows still acceptable; a frame format that differs from
       the message's is ``codes[2]``), filling ``msg_index`` / ``position`` (row within its
       decoder message).
    2. :func:`validate_rows` (E2E, staleness, every counter, the last accepted row).
    3. Store the last accepted row of each message (store mode 0), or for a multiplexed
       message (mode 1) every accepted row's present signals in row order; then
       :func:`refresh_validity`.

    Returns (accepted rows, messages gone stale, fallback). ``fallback`` 1: step 3 was not
    done because a row needs the Python path (mode 2, or a multiplexer value that is not a
    finite number below 2**62); the caller stores and refreshes.
    """
    n_msg = msg_rejected.shape[0]
    n_sig = pool_f64.shape[0] // 2 - n_msg
    n_dec = counts.shape[0]
    e2e_slot = pool_i64[:n_msg]
    msg_frames = pool_i64[n_msg:2 * n_msg]
    msg_decoded = pool_i64[2 * n_msg:3 * n_msg]
    last_row = pool_i64[3 * n_msg:4 * n_msg]
    slot_message = pool_i64[4 * n_msg:]
    stale_after = pool_f64[:n_msg]
    last_rx = pool_f64[n_msg:2 * n_msg]
    value = pool_f64[2 * n_msg:2 * n_msg + n_sig]
    stamp = pool_f64[2 * n_msg + n_sig:]
    received = pool_u8[:n_msg]
    stale = pool_u8[n_msg:2 * n_msg]
    message_valid = pool_u8[2 * n_msg:3 * n_msg]
    has_value = pool_u8[3 * n_msg:3 * n_msg + n_sig]
    valid = pool_u8[3 * n_msg + n_sig:]
    at = 0
    dec_to_lay = map_pool[at:at + n_dec]
    at += n_dec
    fill = map_pool[at:at + n_dec]
    at += n_dec
    lay_to_dec = map_pool[at:at + n_msg]
    at += n_msg
    lay_mode = map_pool[at:at + n_msg]
    at += n_msg
    msg_start = map_pool[at:at + n_msg]
    at += n_msg
    msg_stop = map_pool[at:at + n_msg]
    at += n_msg
    msg_extended = map_pool[at:at + n_msg]
    at += n_msg
    slot_col = map_pool[at:at + n_sig]
    at += n_sig
    slot_is_mux = map_pool[at:at + n_sig]
    at += n_sig
    slot_parent = map_pool[at:at + n_sig]
    at += n_sig
    slot_has_ids = map_pool[at:at + n_sig]
    at += n_sig
    ids_lo = map_pool[at:at + n_sig]
    at += n_sig
    ids_hi = map_pool[at:at + n_sig]
    at += n_sig
    ids_keys = map_pool[at:]
    n = reason.shape[0]
    for d in range(fill.shape[0]):
        fill[d] = 0
    for r in range(n):
        msg_index[r] = -1
        d = row_msg[r]
        p = -1
        if d >= 0:  # every row the decoder reports counts for the position, rejected or not
            p = fill[d]
            fill[d] = p + 1
        if reason[r] != 255:
            continue
        reason[r] = codec_reason[status[r]]
        if d < 0:
            continue
        m = dec_to_lay[d]
        if ((ids[r] >> 31) != 0) != (msg_extended[m] != 0):
            reason[r] = codes[2]
        else:
            msg_index[r] = m
            position[r] = p
    for m in range(last_row.shape[0]):
        last_row[m] = -1
    accepted = validate_rows(
        reason, msg_index, times, now, stale_after, e2e_slot, verdict, codes,
        table, data, lengths, spec, cfg, last_counter, sm_state, window, top, status_counts, cycle_s,
        deadline_factor, next_deadline,
        bus_counts, msg_frames, msg_decoded, msg_rejected, last_row, last_rx, received,
    )
    if accepted:
        for r in range(n):
            if reason[r] != 255:
                continue
            m = msg_index[r]
            mode = lay_mode[m]
            if mode == 0:
                continue
            if mode != 1:
                return accepted, 0, 1
            d = lay_to_dec[m]
            base = out_base[d]
            count = counts[d]
            for s in range(msg_start[m], msg_stop[m]):
                if slot_is_mux[s] != 0:
                    v = values[base + slot_col[s] * count + position[r]]
                    if v == v and not (-4.611686018427388e18 < v < 4.611686018427388e18):
                        return accepted, 0, 1
        for m in range(last_row.shape[0]):
            r = last_row[m]
            if r < 0 or lay_mode[m] != 0:
                continue
            d = lay_to_dec[m]
            src = out_base[d] + position[r]
            count = counts[d]
            t = times[r]
            for s in range(msg_start[m], msg_stop[m]):
                value[s] = values[src + slot_col[s] * count]
                stamp[s] = t
                has_value[s] = 1
        for r in range(n):
            if reason[r] != 255:
                continue
            m = msg_index[r]
            if lay_mode[m] != 1:
                continue
            d = lay_to_dec[m]
            base = out_base[d]
            count = counts[d]
            k = position[r]
            t = times[r]
            lo = msg_start[m]
            hi = msg_stop[m]
            for s in range(lo, hi):
                if _mux_present(s, k, base, count, values, slot_col, slot_parent, slot_is_mux,
                                slot_has_ids, ids_lo, ids_hi, ids_keys, hi - lo):
                    value[s] = values[base + slot_col[s] * count + k]
                    stamp[s] = t
                    has_value[s] = 1
    went_stale = refresh_validity(
        now, last_rx, stale_after, received, stale, e2e_slot, sm_state, message_valid, has_value,
        slot_message, valid,
    )
    return accepted, went_stale, 0


@njit(cache=True)
def any_due(next_deadline, now):  # type: ignore[no-untyped-def]
    """Whether any ``next_deadline[m] <= now`` (NaN: never), without a temporary array."""
    for m in range(next_deadline.shape[0]):
        if next_deadline[m] <= now:
            return True
    return False


@njit(cache=True)
def snapshot_into(  # type: ignore[no-untyped-def]
    now, pool_i64, pool_f64, pool_u8, sm_state, e2e_msg_index, n_msg,
    value, timestamp, valid, last_rx_out, stale_out, message_valid_out, e2e_state,
):
    """The store's snapshot step in one call: :func:`refresh_validity` at ``now``, then copies.

    The pools are the store's (layout: :func:`ingest_decoded`); the outputs a Snapshot's
    arrays. ``e2e_state[m]`` is ``sm_state`` of protected message m (at ``e2e_msg_index``),
    0 for the others. Returns the number of messages that went stale.
    """
    n_sig = pool_f64.shape[0] // 2 - n_msg
    e2e_slot = pool_i64[:n_msg]
    slot_message = pool_i64[4 * n_msg:]
    stale_after = pool_f64[:n_msg]
    last_rx = pool_f64[n_msg:2 * n_msg]
    received = pool_u8[:n_msg]
    stale = pool_u8[n_msg:2 * n_msg]
    message_valid = pool_u8[2 * n_msg:3 * n_msg]
    has_value = pool_u8[3 * n_msg:3 * n_msg + n_sig]
    valid_in = pool_u8[3 * n_msg + n_sig:]
    went_stale = refresh_validity(
        now, last_rx, stale_after, received, stale, e2e_slot, sm_state, message_valid, has_value,
        slot_message, valid_in,
    )
    for s in range(n_sig):
        value[s] = pool_f64[2 * n_msg + s]
        timestamp[s] = pool_f64[2 * n_msg + n_sig + s]
        valid[s] = valid_in[s]
    for m in range(n_msg):
        last_rx_out[m] = last_rx[m]
        stale_out[m] = stale[m]
        message_valid_out[m] = message_valid[m]
        e2e_state[m] = 0
    for k in range(e2e_msg_index.shape[0]):
        e2e_state[e2e_msg_index[k]] = sm_state[k]
    return went_stale


@njit(cache=True)
def gather_inputs(  # type: ignore[no-untyped-def]
    value, message_valid, stale, last_rx, slots, messages, flat, ok_offset, to_offset,
):
    """A control input vector from a snapshot's arrays, in one call.

    ``flat[i] = value[slots[i]]``; for watched message j (layout index ``messages[j]``):
    ``flat[ok_offset + j]`` its validity (0/1), ``flat[to_offset + j]`` 1.0 when it is stale
    or was never received (NaN receive time), else 0.0.
    """
    for i in range(slots.shape[0]):
        flat[i] = value[slots[i]]
    for j in range(messages.shape[0]):
        m = messages[j]
        flat[ok_offset + j] = message_valid[m]
        t = last_rx[m]
        flat[to_offset + j] = 1.0 if stale[m] != 0 or t != t else 0.0
