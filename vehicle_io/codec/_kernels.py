"""Numba kernels of the batch codec: bit extraction, conversion, multiplexer walk, packing.

Only numpy, numba and math are imported here.  All bit arithmetic stays in uint64 with
uint64 shift counts (numba would turn mixed signed/unsigned arithmetic into float64, and a
shift by 64 is undefined in LLVM), so the same code is exact under ``NUMBA_DISABLE_JIT=1``.
The table layouts (column indices, flags) are defined in :mod:`vehicle_io.codec.plan`; the
numbers are repeated here as module constants because a kernel module imports nothing else.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Must match vehicle_io.codec.plan.
_STATUS_OK = 0
_STATUS_UNKNOWN_ID = 1
_STATUS_TOO_SHORT = 2
_STATUS_BAD_MUX = 3
_STATUS_UNSUPPORTED = 4

_KIND_UNSIGNED = 0
_KIND_SIGNED = 1
_KIND_FLOAT16 = 2
_KIND_FLOAT32 = 3
_KIND_FLOAT64 = 4

_MODE_IDENT = 0
_MODE_INTLIN = 1
_MODE_FLOATLIN = 2

_FLAG_FAST = 1
_FLAG_OFFSET_INT = 2

_MSGF_UNSUPPORTED = 1
_MSGF_PREFILL = 2
_MSGF_SHORT = 4

_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U8 = np.uint64(8)
_U32 = np.uint64(32)
_U64 = np.uint64(64)
_BYTE = np.uint64(0xFF)
_LO32 = np.uint64(0xFFFFFFFF)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_I63 = np.uint64(0x7FFFFFFFFFFFFFFF)
_TWO63 = 9223372036854775808.0


@njit(cache=True)
def _gather(data, i, pos, nbits, be, mask):
    """Raw bits of one signal from row ``i`` of ``data`` (any frame length)."""
    fb = pos >> 3
    if be == 0:
        sh = np.uint64(pos & 7)
        nb = ((pos & 7) + nbits + 7) >> 3
        acc = _U0
        top = nb if nb < 8 else 8
        for k in range(top):
            acc |= np.uint64(data[i, fb + k]) << np.uint64(8 * k)
        raw = acc >> sh
        if nb > 8:
            raw |= np.uint64(data[i, fb + 8]) << (_U64 - sh)
        return raw & mask
    end = pos + nbits
    lb = (end - 1) >> 3
    nb = lb - fb + 1
    trailing = np.uint64(8 * (lb + 1) - end)
    acc = _U0
    if nb <= 8:
        for k in range(nb):
            acc = (acc << _U8) | np.uint64(data[i, fb + k])
        return (acc >> trailing) & mask
    for k in range(1, 9):
        acc = (acc << _U8) | np.uint64(data[i, fb + k])
    raw = (acc >> trailing) | (np.uint64(data[i, fb]) << (_U64 - trailing))
    return raw & mask


@njit(cache=True)
def _bit_length(x):
    n = 0
    while x != _U0:
        x >>= _U1
        n += 1
    return n


@njit(cache=True)
def _mul_wide(a, b):
    """Full 128-bit product of two uint64 as (hi, lo), overflow free in every step."""
    a_lo = a & _LO32
    a_hi = a >> _U32
    b_lo = b & _LO32
    b_hi = b >> _U32
    ll = a_lo * b_lo
    lh = a_lo * b_hi
    hl = a_hi * b_lo
    hh = a_hi * b_hi
    mid = (ll >> _U32) + (lh & _LO32) + (hl & _LO32)
    lo = (ll & _LO32) | ((mid & _LO32) << _U32)
    hi = hh + (lh >> _U32) + (hl >> _U32) + (mid >> _U32)
    return hi, lo


@njit(cache=True)
def _wide_to_float(neg, hi, lo):
    """Correctly rounded float64 of the sign-magnitude 128-bit integer (hi, lo)."""
    if hi == _U0:
        f = float(lo)
    else:
        n = _bit_length(hi)
        un = np.uint64(n)
        top = (hi << (_U64 - un)) | (lo >> un)
        if (lo & ((_U1 << un) - _U1)) != _U0:
            top |= _U1  # sticky bit: keeps round-half-even right
        f = math.ldexp(float(top), n)
    return -f if neg else f


@njit(cache=True)
def _wide_lin(neg, mag, scale_i, offset_i, use_offset):
    """Exact ``raw * scale (+ offset)`` in sign-magnitude 128-bit arithmetic.

    Returns (negative, hi, lo)."""
    s_neg = scale_i < 0
    s_mag = np.uint64(-scale_i) if s_neg else np.uint64(scale_i)
    hi, lo = _mul_wide(mag, s_mag)
    p_neg = (neg != s_neg) and (hi != _U0 or lo != _U0)
    if not use_offset or offset_i == 0:
        return p_neg, hi, lo
    o_neg = offset_i < 0
    o_mag = np.uint64(-offset_i) if o_neg else np.uint64(offset_i)
    if p_neg == o_neg:
        if lo > _ALL - o_mag:
            lo = lo - (_ALL - o_mag) - _U1
            hi += _U1
        else:
            lo += o_mag
        return p_neg, hi, lo
    # Opposite signs: subtract the smaller magnitude from the larger.
    if hi != _U0 or lo >= o_mag:
        if lo >= o_mag:
            lo -= o_mag
        else:
            lo = lo + (_ALL - o_mag) + _U1
            hi -= _U1
        return p_neg and (hi != _U0 or lo != _U0), hi, lo
    return o_neg, _U0, o_mag - lo


@njit(cache=True)
def _half_to_float(bits):
    sign = (bits >> np.uint64(15)) & _U1
    exp = int((bits >> np.uint64(10)) & np.uint64(0x1F))
    frac = int(bits & np.uint64(0x3FF))
    if exp == 0:
        f = math.ldexp(float(frac), -24)
    elif exp == 31:
        f = math.inf if frac == 0 else math.nan
    else:
        f = math.ldexp(float(frac + 1024), int(exp - 25))
    return -f if sign == _U1 else f


@njit(cache=True)
def _convert(raw, slot, slot_i, slot_f, slot_int, u32buf, f32buf, u64buf, f64buf):
    """Physical value of a raw bit field, and the integer cantools would select a mux by.

    Returns (value, key, key_ok)."""
    kind = slot_i[slot, 4]
    mode = slot_i[slot, 5]
    nbits = slot_i[slot, 2]
    if kind >= _KIND_FLOAT16:
        if kind == _KIND_FLOAT32:
            u32buf[0] = np.uint32(raw)
            rawf = float(f32buf[0])
        elif kind == _KIND_FLOAT64:
            u64buf[0] = raw
            rawf = float(f64buf[0])
        else:
            rawf = _half_to_float(raw)
        if mode == _MODE_IDENT:
            value = rawf
        else:
            value = rawf * float(slot_f[slot, 0]) + float(slot_f[slot, 1])
        return _float_key(value)

    neg = False
    mag = raw
    if kind == _KIND_SIGNED and ((raw >> np.uint64(nbits - 1)) & _U1) == _U1:
        neg = True
        # Magnitude of the two's complement value: 2^n - raw, at most 2^63.
        mag = ((~raw) + _U1) & (_ALL >> np.uint64(64 - nbits))
    if mode == _MODE_IDENT:
        f = float(mag)
        value = -f if neg else f
        if mag <= _I63:
            key = np.int64(mag)
            return value, -key if neg else key, True
        if neg and mag == _I63 + _U1:
            return value, np.int64(-9223372036854775807 - 1), True
        return value, np.int64(0), False
    if mode == _MODE_FLOATLIN:
        f = float(mag)
        rawf = -f if neg else f
        value = rawf * float(slot_f[slot, 0]) + float(slot_f[slot, 1])
        return _float_key(value)

    flags = slot_i[slot, 7]
    offset_int = (flags & _FLAG_OFFSET_INT) != 0
    if (flags & _FLAG_FAST) != 0:
        r = np.int64(mag)
        if neg:
            r = -r
        p = r * slot_int[slot, 0]
        if offset_int:
            v = p + slot_int[slot, 1]
            return float(v), v, True
        value = float(p) + float(slot_f[slot, 1])
        return _float_key(value)
    w_neg, hi, lo = _wide_lin(neg, mag, slot_int[slot, 0], slot_int[slot, 1], offset_int)
    f = _wide_to_float(w_neg, hi, lo)
    if not offset_int:
        return _float_key(f + float(slot_f[slot, 1]))
    if hi == _U0 and lo <= _I63:
        key = np.int64(lo)
        return f, -key if w_neg else key, True
    return f, np.int64(0), False


@njit(cache=True)
def _float_key(value):
    """``int(value)`` as cantools takes a multiplexer number, if it fits int64."""
    if math.isfinite(value) and -_TWO63 <= value < _TWO63:
        return value, np.int64(value), True
    return value, np.int64(0), False


@njit(cache=True)
def _find_key(keys, lo, hi, key):
    while lo < hi:
        mid = (lo + hi) >> 1
        k = keys[mid]
        if k == key:
            return mid
        if k < key:
            lo = mid + 1
        else:
            hi = mid
    return -1


@njit(cache=True)
def _lookup(ids, i, std_table, ext_keys, ext_msg):
    """Message index of row i as cantools finds it, or -1.

    As ``db.decode_message(id & 0x1FFFFFFF, data, force_extended_id=bool(id & CAN_EFF_FLAG))``:
    bit 31 (CAN_EFF_FLAG) or a value above 0x7FF selects the extended frames (an extended
    frame 0x00000003 is not the standard frame 0x003); bits 29 and 30 are ignored.
    """
    raw = np.uint32(ids[i])
    key = np.uint32(raw & np.uint32(0x1FFFFFFF))
    if key <= np.uint32(0x7FF) and (raw & np.uint32(0x80000000)) == np.uint32(0):
        return np.int64(std_table[key])
    key = key | np.uint32(0x80000000)
    lo = 0
    hi = ext_keys.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        k = ext_keys[mid]
        if k == key:
            return np.int64(ext_msg[mid])
        if k < key:
            lo = mid + 1
        else:
            hi = mid
    return np.int64(-1)


@njit(cache=True)
def _bswap(x):
    return (((x & np.uint64(0xFF)) << np.uint64(56))
            | ((x & np.uint64(0xFF00)) << np.uint64(40))
            | ((x & np.uint64(0xFF0000)) << np.uint64(24))
            | ((x & np.uint64(0xFF000000)) << np.uint64(8))
            | ((x >> np.uint64(8)) & np.uint64(0xFF000000))
            | ((x >> np.uint64(24)) & np.uint64(0xFF0000))
            | ((x >> np.uint64(40)) & np.uint64(0xFF00))
            | (x >> np.uint64(56)))


@njit(cache=True)
def index_batch(ids, lengths, width, std_table, ext_keys, ext_msg, msg_i, status, row_msg,
                counts):
    """Pass 1: find every row's message, set UNKNOWN_ID / TOO_SHORT / UNSUPPORTED, count.

    Fills the caller's ``status`` (zeros), ``row_msg`` (message index or -1) and
    ``counts`` (zeros); the caller sizes the output buffers from ``counts``."""
    n = ids.shape[0]
    has_lengths = lengths.shape[0] == n
    for i in range(n):
        m = _lookup(ids, i, std_table, ext_keys, ext_msg)
        row_msg[i] = -1
        if m < 0:
            status[i] = _STATUS_UNKNOWN_ID
            continue
        if (msg_i[m, 3] & _MSGF_UNSUPPORTED) != 0:
            status[i] = _STATUS_UNSUPPORTED
            continue
        length = width
        if has_lengths and lengths[i] < width:
            length = lengths[i]
        if length < msg_i[m, 0]:
            status[i] = _STATUS_TOO_SHORT
            continue
        row_msg[i] = m
        counts[m] += 1


@njit(cache=True)
def _fast_column(s, count, words, rbase, values, col, slot_i, slot_mask, slot_f):
    """Root-node slot of a frame up to 8 bytes with the most common conversions, fused
    (no raw buffer).  Returns False when the slot needs the general path."""
    kind = slot_i[s, 4]
    mode = slot_i[s, 5]
    nbits = slot_i[s, 2]
    if nbits >= 64 or kind > _KIND_SIGNED or mode == _MODE_INTLIN:
        return False
    mask = slot_mask[s]
    shift = np.uint64(slot_i[s, 6])
    be = slot_i[s, 3] != 0
    scale = float(slot_f[s, 0])
    offset = float(slot_f[s, 1])
    up = np.uint64(64 - nbits)
    down = np.int64(64 - nbits)
    if kind == _KIND_UNSIGNED:
        if mode == _MODE_IDENT:
            if be:
                for t in range(count):
                    values[col + t] = float(np.int64((_bswap(words[rbase + t]) >> shift) & mask))
            else:
                for t in range(count):
                    values[col + t] = float(np.int64((words[rbase + t] >> shift) & mask))
        elif be:
            for t in range(count):
                raw = (_bswap(words[rbase + t]) >> shift) & mask
                values[col + t] = float(np.int64(raw)) * scale + offset
        else:
            for t in range(count):
                raw = (words[rbase + t] >> shift) & mask
                values[col + t] = float(np.int64(raw)) * scale + offset
        return True
    # Signed: move the field to the top, then an arithmetic shift sign-extends it.
    if be:
        for t in range(count):
            raw = (_bswap(words[rbase + t]) >> shift) & mask
            signed = float(np.int64(raw << up) >> down)
            values[col + t] = signed if mode == _MODE_IDENT else signed * scale + offset
    else:
        for t in range(count):
            raw = (words[rbase + t] >> shift) & mask
            signed = float(np.int64(raw << up) >> down)
            values[col + t] = signed if mode == _MODE_IDENT else signed * scale + offset
    return True


@njit(cache=True)
def _extract(s, ks, ks_lo, n_rows, use_index, short, words, rbase, payload, slot_i, slot_mask,
             rawbuf):
    """Raw bit fields of slot ``s`` for the node's rows into ``rawbuf[:n_rows]``."""
    mask = slot_mask[s]
    shift = np.uint64(slot_i[s, 6])
    be = slot_i[s, 3]
    if short:
        if use_index:
            if be == 0:
                for t in range(n_rows):
                    rawbuf[t] = (words[rbase + ks[ks_lo + t]] >> shift) & mask
            else:
                for t in range(n_rows):
                    rawbuf[t] = (_bswap(words[rbase + ks[ks_lo + t]]) >> shift) & mask
        else:
            if be == 0:
                for t in range(n_rows):
                    rawbuf[t] = (words[rbase + t] >> shift) & mask
            else:
                for t in range(n_rows):
                    rawbuf[t] = (_bswap(words[rbase + t]) >> shift) & mask
        return
    pos = slot_i[s, 1]
    nbits = slot_i[s, 2]
    # Frames longer than 8 bytes: each row is nw words in ``payload`` (one spare word at
    # the end), so any field within 8 bytes from its first byte is two aligned loads.
    nw = payload.shape[1]
    first = pos >> 3
    wi = first >> 3
    sb = np.uint64(8 * (first & 7))
    back = np.uint64(64) - sb
    off = pos - 8 * first
    if off + nbits <= 64:
        ushift = np.uint64(off) if be == 0 else np.uint64(64 - off - nbits)
        for t in range(n_rows):
            k = ks[ks_lo + t] if use_index else t
            w = payload[k, wi]
            if sb != _U0:
                w = (w >> sb) | (payload[k, wi + 1] << back)
            if be != 0:
                w = _bswap(w)
            rawbuf[t] = (w >> ushift) & mask
        return
    as_bytes = payload.view(np.uint8)  # little-endian words: byte j of a row is byte j
    for t in range(n_rows):
        k = ks[ks_lo + t] if use_index else t
        rawbuf[t] = _gather(as_bytes, k, pos, nbits, be, mask)


@njit(cache=True)
def _store(s, ks, ks_lo, n_rows, use_index, rawbuf, values, col, slot_i, slot_f, slot_int,
           u32buf, f32buf, u64buf, f64buf):
    """Physical values of ``rawbuf[:n_rows]`` into the output column starting at ``col``.

    The common conversions get their own loop (no call, no tuple); every other case goes
    through :func:`_convert`, which handles all of them."""
    kind = slot_i[s, 4]
    mode = slot_i[s, 5]
    flags = slot_i[s, 7]
    nbits = slot_i[s, 2]
    scale = float(slot_f[s, 0])
    offset = float(slot_f[s, 1])
    scale_i = slot_int[s, 0]
    offset_i = slot_int[s, 1]
    exact_int = mode == _MODE_INTLIN and (flags & _FLAG_FAST) != 0 and \
        (flags & _FLAG_OFFSET_INT) != 0
    if kind == _KIND_UNSIGNED and nbits < 64:
        if mode == _MODE_IDENT:
            for t in range(n_rows):
                k = ks[ks_lo + t] if use_index else t
                values[col + k] = float(np.int64(rawbuf[t]))
            return
        if mode == _MODE_FLOATLIN:
            for t in range(n_rows):
                k = ks[ks_lo + t] if use_index else t
                values[col + k] = float(np.int64(rawbuf[t])) * scale + offset
            return
        if exact_int:
            for t in range(n_rows):
                k = ks[ks_lo + t] if use_index else t
                values[col + k] = float(np.int64(rawbuf[t]) * scale_i + offset_i)
            return
    if kind == _KIND_SIGNED:
        up = np.uint64(64 - nbits)
        down = np.int64(64 - nbits)
        if mode == _MODE_IDENT:
            for t in range(n_rows):
                k = ks[ks_lo + t] if use_index else t
                values[col + k] = float(np.int64(rawbuf[t] << up) >> down)
            return
        if mode == _MODE_FLOATLIN:
            for t in range(n_rows):
                k = ks[ks_lo + t] if use_index else t
                values[col + k] = float(np.int64(rawbuf[t] << up) >> down) * scale + offset
            return
        if exact_int:
            for t in range(n_rows):
                k = ks[ks_lo + t] if use_index else t
                values[col + k] = float((np.int64(rawbuf[t] << up) >> down) * scale_i
                                        + offset_i)
            return
    for t in range(n_rows):
        k = ks[ks_lo + t] if use_index else t
        value, _, _ = _convert(rawbuf[t], s, slot_i, slot_f, slot_int,
                               u32buf, f32buf, u64buf, f64buf)
        values[col + k] = value


@njit(cache=True)
def _scratch_size(max_count, max_nodes, max_mux, max_keys):
    """int64 work entries _decode_rows_into carves from ``scratch`` for ``max_count`` rows."""
    return max_count * max_mux + max_count + 2 * (max_keys + 1) + 3 * (max_nodes + 1)


@njit(cache=True)
def decode_rows(data, data64, row_msg, counts, row_start, out_base, long_base, rows, words,
                long_words, values, status, msg_i, node_i, slot_i, slot_mask, slot_f, slot_int,
                mux_i, mux_keys, mux_child, max_nodes, max_mux, max_keys):
    """Passes 2 and 3 (see :func:`_decode_rows_into`), with the work arrays allocated here."""
    max_count = 0
    for m in range(counts.shape[0]):
        if counts[m] > max_count:
            max_count = counts[m]
    fill = np.zeros(msg_i.shape[0], dtype=np.int64)
    scratch = np.zeros(_scratch_size(max_count, max_nodes, max_mux, max_keys), dtype=np.int64)
    rawbuf = np.empty(max_count, dtype=np.uint64)
    _decode_rows_into(data, data64, row_msg, counts, row_start, out_base, long_base, rows, words,
                      long_words, values, status, msg_i, node_i, slot_i, slot_mask, slot_f, slot_int,
                      mux_i, mux_keys, mux_child, max_nodes, max_mux, max_keys, fill, scratch,
                      rawbuf)


@njit(cache=True)
def _decode_rows_into(data, data64, row_msg, counts, row_start, out_base, long_base, rows, words,
                long_words, values, status, msg_i, node_i, slot_i, slot_mask, slot_f, slot_int,
                mux_i, mux_keys, mux_child, max_nodes, max_mux, max_keys, fill, scratch, rawbuf):
    """Passes 2 and 3: group the rows by message, then decode message by message.

    Pass 2 copies each row's payload into its message's contiguous buffer (one 64-bit word
    per row for frames up to 8 bytes in ``words``, ceil(L / 8) + 1 words per row in
    ``long_words`` otherwise) and fills ``rows``.  ``data64`` is ``data`` viewed as
    little-endian uint64 words when its width allows (else an empty array).  Pass 3
    decodes slot by slot over all rows of a message, walking the multiplexer tree on row
    subsets; every inner loop runs with the same branches for all its rows, and writes its
    output column sequentially.  The caller allocated every output (numpy's allocator
    uses huge pages for big arrays, which halves the cost of touching fresh memory).

    ``values``: signal column c of message m is
    ``values[out_base[m] + c * counts[m]:][:counts[m]]``, rows in input order.
    """
    n = row_msg.shape[0]
    width = data.shape[1]
    n_msg = msg_i.shape[0]
    have_words = data64.shape[0] == n and n > 0
    for m in range(n_msg):
        fill[m] = 0
    for i in range(n):
        m = row_msg[i]
        if m < 0:
            continue
        k = fill[m]
        fill[m] = k + 1
        rows[row_start[m] + k] = i
        length = msg_i[m, 0]
        if (msg_i[m, 3] & _MSGF_SHORT) != 0:
            if have_words:
                w = data64[i, 0]
            elif width >= 8:
                w = data[i, 0:8].view(np.uint64)[0]
            else:
                w = _U0
                for j in range(length):
                    w |= np.uint64(data[i, j]) << np.uint64(8 * j)
            if length < 8:
                w &= _ALL >> np.uint64(64 - 8 * length)
            words[row_start[m] + k] = w
        else:
            n_words = (length + 7) >> 3
            base = long_base[m] + k * (n_words + 1)
            if have_words:
                for j in range(n_words):
                    long_words[base + j] = data64[i, j]
            else:
                for j in range(n_words):
                    w = _U0
                    for b in range(8):
                        if 8 * j + b < length:
                            w |= np.uint64(data[i, 8 * j + b]) << np.uint64(8 * b)
                    long_words[base + j] = w
            long_words[base + n_words] = _U0

    max_count = 0
    for m in range(n_msg):
        if counts[m] > max_count:
            max_count = counts[m]
    u32buf = np.zeros(1, dtype=np.uint32)
    f32buf = u32buf.view(np.float32)
    u64buf = np.zeros(1, dtype=np.uint64)
    f64buf = u64buf.view(np.float64)
    # Work arrays carved from the caller's scratch (see _scratch_size).
    at = 0
    seg = scratch[at:at + max_count * max_mux]
    at += max_count * max_mux
    jbuf = scratch[at:at + max_count]
    at += max_count
    bucket_count = scratch[at:at + max_keys + 1]
    at += max_keys + 1
    bucket_pos = scratch[at:at + max_keys + 1]
    at += max_keys + 1
    stack_node = scratch[at:at + max_nodes + 1]
    at += max_nodes + 1
    stack_lo = scratch[at:at + max_nodes + 1]
    at += max_nodes + 1
    stack_n = scratch[at:at + max_nodes + 1]
    bucket_count[:] = 0
    bucket_pos[:] = 0
    empty_payload = rawbuf[:0].reshape((0, 1))

    for m in range(n_msg):
        count = counts[m]
        if count == 0:
            continue
        length = msg_i[m, 0]
        flags = msg_i[m, 3]
        short = (flags & _MSGF_SHORT) != 0
        col_base = out_base[m]
        rbase = row_start[m]
        if short:
            payload = empty_payload
        else:
            n_words = ((length + 7) >> 3) + 1
            payload = long_words[long_base[m]:long_base[m] + count * n_words].reshape(
                count, n_words)
        if (flags & _MSGF_PREFILL) != 0:
            values[col_base:col_base + count * msg_i[m, 1]] = math.nan
        seg_top = 0
        depth = 1
        stack_node[0] = msg_i[m, 2]
        stack_lo[0] = 0
        stack_n[0] = count
        use_index = False  # the root node covers every row: positions need no index
        while depth > 0:
            depth -= 1
            node = stack_node[depth]
            ks_lo = stack_lo[depth]
            n_rows = stack_n[depth]
            if node_i[node, 4] == 0:
                for t in range(n_rows):
                    r = rows[rbase + seg[ks_lo + t]]
                    if status[r] == _STATUS_OK:
                        status[r] = _STATUS_UNSUPPORTED
                use_index = True
                continue
            for s in range(node_i[node, 0], node_i[node, 1]):
                if short and not use_index and _fast_column(
                        s, count, words, rbase, values, col_base + slot_i[s, 0] * count,
                        slot_i, slot_mask, slot_f):
                    continue
                _extract(s, seg, ks_lo, n_rows, use_index, short, words, rbase, payload,
                         slot_i, slot_mask, rawbuf)
                _store(s, seg, ks_lo, n_rows, use_index, rawbuf, values,
                       col_base + slot_i[s, 0] * count, slot_i, slot_f, slot_int,
                       u32buf, f32buf, u64buf, f64buf)
            first_push = depth
            for x in range(node_i[node, 2], node_i[node, 3]):
                s = mux_i[x, 0]
                key_lo = mux_i[x, 1]
                key_hi = mux_i[x, 2]
                _extract(s, seg, ks_lo, n_rows, use_index, short, words, rbase, payload,
                         slot_i, slot_mask, rawbuf)
                for b in range(key_hi - key_lo + 1):
                    bucket_count[b] = 0
                for t in range(n_rows):
                    _, key, key_ok = _convert(rawbuf[t], s, slot_i, slot_f, slot_int,
                                              u32buf, f32buf, u64buf, f64buf)
                    found = -1
                    if key_ok:
                        found = _find_key(mux_keys, key_lo, key_hi, key)
                    if found < 0:
                        k = seg[ks_lo + t] if use_index else t
                        r = rows[rbase + k]
                        if status[r] == _STATUS_OK:
                            status[r] = _STATUS_BAD_MUX
                        jbuf[t] = -1
                        continue
                    jbuf[t] = found - key_lo
                    bucket_count[found - key_lo] += 1
                pos = seg_top
                for b in range(key_hi - key_lo):
                    bucket_pos[b] = pos
                    pos += bucket_count[b]
                for t in range(n_rows):
                    b = jbuf[t]
                    if b >= 0:
                        seg[bucket_pos[b]] = seg[ks_lo + t] if use_index else t
                        bucket_pos[b] += 1
                for b in range(key_hi - key_lo):
                    if bucket_count[b] > 0:
                        stack_node[depth] = mux_child[key_lo + b]
                        stack_lo[depth] = bucket_pos[b] - bucket_count[b]
                        stack_n[depth] = bucket_count[b]
                        depth += 1
                seg_top = pos
            use_index = True  # every node below the root has its rows listed in seg
            # Reverse what this node pushed: first multiplexer, first branch on top, so
            # the walk visits the tree in cantools' order (later duplicates win alike).
            lo_i = first_push
            hi_i = depth - 1
            while lo_i < hi_i:
                a_node = stack_node[lo_i]
                a_lo = stack_lo[lo_i]
                a_n = stack_n[lo_i]
                stack_node[lo_i] = stack_node[hi_i]
                stack_lo[lo_i] = stack_lo[hi_i]
                stack_n[lo_i] = stack_n[hi_i]
                stack_node[hi_i] = a_node
                stack_lo[hi_i] = a_lo
                stack_n[hi_i] = a_n
                lo_i += 1
                hi_i -= 1


@njit(cache=True)
def encode_place(raw, pos, nbits, be, length):
    """OR the raw bit fields ``raw[s, k]`` into ``length``-byte frames (one per column k)."""
    n_slots = raw.shape[0]
    k_rows = raw.shape[1]
    out = np.zeros((k_rows, length), dtype=np.uint8)
    for k in range(k_rows):
        for s in range(n_slots):
            v = raw[s, k]
            if v == _U0:
                continue
            p = pos[s]
            n = nbits[s]
            fb = p >> 3
            if be[s] == 0:
                sh = np.uint64(p & 7)
                nb = ((p & 7) + n + 7) >> 3
                shifted = v << sh
                top = nb if nb < 8 else 8
                for j in range(top):
                    out[k, fb + j] |= np.uint8((shifted >> np.uint64(8 * j)) & _BYTE)
                if nb > 8:
                    out[k, fb + 8] |= np.uint8(v >> (_U64 - sh))
            else:
                end = p + n
                lb = (end - 1) >> 3
                nb = lb - fb + 1
                trailing = np.uint64(8 * (lb + 1) - end)
                shifted = v << trailing
                top = nb if nb < 8 else 8
                for j in range(top):
                    out[k, lb - j] |= np.uint8((shifted >> np.uint64(8 * j)) & _BYTE)
                if nb > 8:
                    out[k, fb] |= np.uint8(v >> (_U64 - trailing))
    return out


@njit(cache=True)
def decode_batch(ids, lengths, data, data64, status, row_msg, out_i64, out_u64, values, plan_i64,
                 std_table, ext_keys, ext_msg, slot_mask, slot_f):
    """All three passes in one call: index, offsets (exclusive prefix sums), decode.

    For small batches, where a Python step per message costs more than the decode itself.
    Arguments are pooled (numba unboxes every array argument on every call):

    * ``plan_i64``: header [M, msg_i columns, nodes, node_i columns, slots, slot_i columns,
      slot_int columns, mux entries, mux_i columns, mux keys, max_nodes, max_mux, max_keys],
      then msg_i, ncols [M], long words [M], node_i, slot_i, slot_int, mux_i, mux_keys,
      mux_child (2-D tables row-major);
    * ``out_i64``: counts [M], row_start [M], out_base [M], long_base [M], work [M], rows [C],
      then the work entries of :func:`_decode_rows_into` (``_scratch_size(C, ...)``);
    * ``out_u64``: words [C], raw work [C], then long words.

    C = ``status.shape[0]`` >= N (N = ``ids.shape[0]``): the outputs may be longer than
    needed (reused scratch); ``values`` N * max(ncols), long words N * max(long words);
    ``status[:N]`` and counts are zeroed here. Returns the number of values.
    """
    n_msg = plan_i64[0]
    at = 13
    msg_i = plan_i64[at:at + n_msg * plan_i64[1]].reshape((n_msg, plan_i64[1]))
    at += n_msg * plan_i64[1]
    ncols = plan_i64[at:at + n_msg]
    at += n_msg
    nlong = plan_i64[at:at + n_msg]
    at += n_msg
    node_i = plan_i64[at:at + plan_i64[2] * plan_i64[3]].reshape((plan_i64[2], plan_i64[3]))
    at += plan_i64[2] * plan_i64[3]
    slot_i = plan_i64[at:at + plan_i64[4] * plan_i64[5]].reshape((plan_i64[4], plan_i64[5]))
    at += plan_i64[4] * plan_i64[5]
    slot_int = plan_i64[at:at + plan_i64[4] * plan_i64[6]].reshape((plan_i64[4], plan_i64[6]))
    at += plan_i64[4] * plan_i64[6]
    mux_i = plan_i64[at:at + plan_i64[7] * plan_i64[8]].reshape((plan_i64[7], plan_i64[8]))
    at += plan_i64[7] * plan_i64[8]
    mux_keys = plan_i64[at:at + plan_i64[9]]
    at += plan_i64[9]
    mux_child = plan_i64[at:at + plan_i64[9]]
    max_nodes = plan_i64[10]
    max_mux = plan_i64[11]
    max_keys = plan_i64[12]
    cap = status.shape[0]
    counts = out_i64[:n_msg]
    row_start = out_i64[n_msg:2 * n_msg]
    out_base = out_i64[2 * n_msg:3 * n_msg]
    long_base = out_i64[3 * n_msg:4 * n_msg]
    fill = out_i64[4 * n_msg:5 * n_msg]
    rows = out_i64[5 * n_msg:5 * n_msg + cap]
    scratch = out_i64[5 * n_msg + cap:]
    words = out_u64[:cap]
    rawbuf = out_u64[cap:2 * cap]
    long_words = out_u64[2 * cap:]
    n = ids.shape[0]
    for i in range(n):
        status[i] = 0
    for m in range(n_msg):
        counts[m] = 0
    row_msg_n = row_msg[:n]
    index_batch(ids, lengths, data.shape[1], std_table, ext_keys, ext_msg, msg_i, status,
                row_msg_n, counts)
    total_rows = 0
    total_values = 0
    total_long = 0
    for m in range(n_msg):
        k = counts[m]
        row_start[m] = total_rows
        out_base[m] = total_values
        long_base[m] = total_long
        total_rows += k
        total_values += k * ncols[m]
        total_long += k * nlong[m]
    _decode_rows_into(data, data64, row_msg_n, counts, row_start, out_base, long_base, rows,
                      words, long_words, values, status, msg_i, node_i, slot_i, slot_mask, slot_f,
                      slot_int, mux_i, mux_keys, mux_child, max_nodes, max_mux, max_keys, fill,
                      scratch, rawbuf)
    return total_values
