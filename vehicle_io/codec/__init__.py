"""Batch CAN codec compiled from a cantools database: numba decode, vectorised encode.

``BatchDecoder(db).decode(ids, data, lengths=None)`` returns a :class:`BatchResult`
``{message_name: {"_row": int64[K], signal_name: float64[K], ...}}`` with ``.status``
(uint8[N], one code per input row).  Values equal
``db.decode_message(id, bytes(data[i, :lengths[i]]), decode_choices=False)`` as float64 for
every frame cantools decodes, on any database cantools loads:

* frame ids are looked up in cantools' own frame-id table as
  ``decode_message(id & 0x1FFFFFFF, ..., force_extended_id=bool(id & CAN_EFF_FLAG))`` does:
  the 29 low bits (bits 29-30 are ignored), as an extended frame when bit 31 (CAN_EFF_FLAG)
  is set or the id is above 0x7FF. An extended frame with a small id (0x00000003) is found
  among the extended messages only, never taken for the standard frame 0x003 (and a plain
  id up to 0x7FF only among the standard ones, as cantools without ``force_extended_id``);
  a ``frame_id_mask`` behaves as in cantools;
* little and big endian (sawtooth start bits), signed of any length 1..64, IEEE float16/
  32/64, raw values up to 64 bits unsigned, payloads up to 255 bytes (CAN FD: 64);
* physical value: ``raw`` (identity), ``raw * scale + offset`` exactly as Python computes it
  (see :mod:`vehicle_io.codec.plan`): integer scale and offset give the exact integer
  rounded once to float64, for every raw value (not only up to 2**53); float scale
  gives ``float(raw) * scale + offset`` rounded per operation;
* multiplexing as cantools' codec tree: several values per branch, extended (nested)
  multiplexers, several multiplexers in one node, multiplexer values taken as
  ``int(physical value)``, values named only in the multiplexer's choices selecting an
  empty branch.  A signal outside the selected branches is NaN;
* a payload longer than the message is decoded, the excess ignored; ``lengths`` above the
  row width mean the whole row, as ``data[i, :lengths[i]]`` would.

Status per row (a cantools ``decode_message`` exception in brackets):

* ``STATUS_OK`` (0): decoded.
* ``STATUS_UNKNOWN_ID`` (1): no message with that id [KeyError]; not reported.
* ``STATUS_TOO_SHORT`` (2): fewer bytes than the message length ["Wrong data size"];
  not reported.  (A short row of a message that is UNSUPPORTED as a whole gets that status:
  it could not be decoded at any length.)
* ``STATUS_BAD_MUX`` (3): some multiplexer has a value with no branch in the database
  ["expected multiplexer id ..."].  Reported under its message: every signal whose whole
  chain of multiplexers has defined values is decoded (always the non-multiplexed signals
  and the top multiplexers; more than cantools, which stops at the first bad value); the
  signals below an undefined value are NaN.
* ``STATUS_UNSUPPORTED`` (4): a container message (cantools needs ``decode_containers``),
  or a layout cantools itself cannot unpack (only from ``strict=False`` loading: two
  overlapping signals of one byte order or a signal past the frame end make its bitstruct
  format longer than the frame ["unpacking failed"]; also signals longer than 64 bits),
  or a message with a signal named ``_row`` (the result key is reserved).  Not reported
  when it concerns the whole message (``BatchDecoder.unsupported`` lists those messages
  with the reason); reported like BAD_MUX when only the selected multiplexer branch is
  affected.

Limits: multiplexer values must fit int64 to be matched; duplicate message names among
the reachable messages are reported as ``"NAME@0xID"`` for the later ones
(``BatchDecoder.message(name)`` gives the cantools message behind a result key).

``BatchEncoder(db).encode(name, {signal: values}, strict=True)`` -> uint8[K, L] and
``encode_one(name, **signals)`` -> bytes: see :class:`BatchEncoder`.

How it is fast: one pass looks every id up (an 11-bit table, a binary search for extended
ids) and counts rows per message; a second copies each row's payload into its message's
contiguous buffer; a third decodes message by message and slot by slot over all rows, so
the inner loops take the same branches for every row and write each output column
sequentially.  The plan is data (arrays), never types: one compiled kernel serves every
database and every input layout.  Little-endian hosts only (x86-64, arm64).

Importing this package does not import numba; the kernels compile (or load from the numba
cache) at the first decode or vectorised encode, or when :func:`warm_up` is called.
"""

from __future__ import annotations

from vehicle_io.codec.decoder import STATUS_NAMES, BatchDecoder, BatchResult, DecodeWorkspace
from vehicle_io.codec.encoder import BatchEncoder
from vehicle_io.codec.plan import (
    STATUS_BAD_MUX,
    STATUS_OK,
    STATUS_TOO_SHORT,
    STATUS_UNKNOWN_ID,
    STATUS_UNSUPPORTED,
)

__all__ = [
    "STATUS_BAD_MUX",
    "STATUS_NAMES",
    "STATUS_OK",
    "STATUS_TOO_SHORT",
    "STATUS_UNKNOWN_ID",
    "STATUS_UNSUPPORTED",
    "BatchDecoder",
    "BatchEncoder",
    "BatchResult",
    "DecodeWorkspace",
    "warm_up",
]


def warm_up() -> None:
    """Compile (or load from the numba cache) every codec kernel now, not at first use."""
    import numpy as np
    from cantools.database.can import Database, Message, Signal

    from vehicle_io.codec import _kernels

    # A tiny multiplexed message exercises both kernels' code paths once.
    mux = Signal("M", 0, 1, is_multiplexer=True)
    child = Signal("C", 8, 8, multiplexer_ids=[0], multiplexer_signal="M")
    db = Database(messages=[Message(frame_id=1, name="W", length=2, signals=[mux, child])])
    decoder = BatchDecoder(db)
    decoder.decode(np.ones(1, dtype=np.uint32), np.zeros((1, 8), dtype=np.uint8))
    # a batch above the small-batch limit takes the two-kernel path: load that one as well
    from vehicle_io.codec.decoder import _SMALL_BATCH

    big = _SMALL_BATCH + 1
    decoder.decode(np.ones(big, dtype=np.uint32), np.zeros((big, 8), dtype=np.uint8))
    _kernels.encode_place(np.zeros((1, 1), dtype=np.uint64), np.zeros(1, dtype=np.int64),
                          np.ones(1, dtype=np.int64), np.zeros(1, dtype=np.int64), 1)
