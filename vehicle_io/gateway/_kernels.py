"""Numba kernels of the gateway's receive path (imports only numpy and numba).

Few calls, no numpy temporaries: every numpy call in the worker may hand the GIL to another
thread and wait up to a switch interval to get it back, so the per-batch bookkeeping runs
here in one call.
"""

from __future__ import annotations

from numba import njit

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
