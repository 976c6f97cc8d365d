"""Numba kernels of the gateway's receive path (imports only numpy, numba and the kernels of
the codec and the store it calls).

Few calls, no numpy temporaries: every numpy call in the worker may hand the GIL to another
thread and wait up to a switch interval to get it back, so the per-batch bookkeeping runs
here in one call.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from vehicle_io._e2e_kernels import ingest_decoded
from vehicle_io.codec._kernels import decode_batch

ACCEPT = 255


@njit(cache=True)
def map_rows(  # type: ignore[no-untyped-def]
    local_rows, counts, owners, cand, ids, msg_extended, msg_index, position, reason, unknown_id
):
    """Spread a decode result over the batch rows.

    The decoder reported ``counts[j]`` rows for message ``owners[j]``, their batch-local row
    numbers concatenated in ``local_rows``; ``cand`` maps them to batch rows (empty: identity).
    Fills ``msg_index`` and ``position`` (row within that message's columns). A row whose
    frame format (bit 31 of ``ids``: extended) differs from its message's is not that
    message: it gets ``unknown_id`` and no message.
    """
    k = 0
    for j in range(counts.shape[0]):
        m = owners[j]
        for p in range(counts[j]):
            local = local_rows[k]
            r = cand[local] if cand.shape[0] > 0 else local
            k += 1
            extended = (ids[r] >> 31) != 0
            if extended != msg_extended[m]:
                msg_index[r] = -1
                reason[r] = unknown_id
            else:
                msg_index[r] = m
                position[r] = p


@njit(cache=True)
def receive_segments(  # type: ignore[no-untyped-def]
    tab, ids, data, lengths, times, reason, now, out, codec_reason, bus_counts,
    g_i64, g_i32, g_u32, g_u64, g_f64, g_u8,
    msg_index, position, pool_i64, pool_f64, pool_u8, msg_rejected, verdict, codes, table,
    spec, cfg, last_counter, sm_state, window, top, status_counts, cycle_s, deadline_factor, next_deadline,
):
    """Decode and store the frames of several buses in one call (one numba dispatch per tick).

    Segment ``b`` (row ``b`` of ``tab``) is the next ``tab[b, 1]`` rows of the batch (segments
    follow each other), from a bus with its own decoder and decoder map; for each segment in
    order this is exactly ``decode_batch`` (the codec's small-batch kernel) then the store's
    ``ingest_decoded``, as the gateway calls them per bus. The per-bus tables and scratch come
    in pools by dtype (``g_*``), located by ``tab`` columns 2..25 (see Gateway._multi_plan);
    ``bus_counts[tab[b, 26]]`` is the bus's counter row, ``now[b]`` its clock reading. The
    store and E2E arguments are those of ``ingest_decoded``.

    ``out[b]`` = (accepted, went stale, fallback). A segment whose store step needs the
    Python path (fallback 1) ends the call: the caller stores it and handles the segments
    after it. Returns the number of segments done (that one included).
    """
    no_words = np.zeros((0, 1), dtype=np.uint64)
    n_seg = tab.shape[0]
    hi = 0
    for b in range(n_seg):
        lo = hi
        hi = lo + tab[b, 1]
        out[b, 0] = 0
        out[b, 1] = 0
        out[b, 2] = 0
        if hi <= lo:
            continue
        n = hi - lo
        plan = g_i64[tab[b, 2]:tab[b, 3]]
        out_i64 = g_i64[tab[b, 4]:tab[b, 5]]
        map_pool = g_i64[tab[b, 6]:tab[b, 7]]
        std_table = g_i32[tab[b, 8]:tab[b, 9]]
        ext_msg = g_i32[tab[b, 10]:tab[b, 11]]
        row_msg = g_i32[tab[b, 12]:tab[b, 13]]
        ext_keys = g_u32[tab[b, 14]:tab[b, 15]]
        slot_mask = g_u64[tab[b, 16]:tab[b, 17]]
        out_u64 = g_u64[tab[b, 18]:tab[b, 19]]
        slot_f = g_f64[tab[b, 20]:tab[b, 21]].reshape(((tab[b, 21] - tab[b, 20]) // 2, 2))
        values = g_f64[tab[b, 22]:tab[b, 23]]
        status = g_u8[tab[b, 24]:tab[b, 25]]
        ids_b = ids[lo:hi]
        data_b = data[lo:hi]
        lengths_b = lengths[lo:hi]
        decode_batch(ids_b, lengths_b, data_b, no_words, status, row_msg, out_i64, out_u64, values, plan,
                     std_table, ext_keys, ext_msg, slot_mask, slot_f)
        n_msg = plan[0]
        accepted, went_stale, fallback = ingest_decoded(
            reason[lo:hi], ids_b, data_b, lengths_b, times[lo:hi], status[:n], row_msg[:n], out_i64[:n_msg],
            out_i64[2 * n_msg:3 * n_msg], values, now[b], bus_counts[tab[b, 26]], codec_reason, msg_index,
            position, pool_i64, pool_f64, pool_u8, msg_rejected, map_pool, verdict, codes, table, spec, cfg,
            last_counter, sm_state, window, top, status_counts, cycle_s, deadline_factor, next_deadline,
        )
        out[b, 0] = accepted
        out[b, 1] = went_stale
        out[b, 2] = fallback
        if fallback:
            return b + 1
    return n_seg
