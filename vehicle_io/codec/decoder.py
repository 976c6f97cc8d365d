"""BatchDecoder: decode a whole frame batch in two numba kernel calls, no per-row Python."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import numpy.typing as npt

from vehicle_io.codec.plan import (
    STATUS_BAD_MUX,
    STATUS_OK,
    STATUS_TOO_SHORT,
    STATUS_UNKNOWN_ID,
    STATUS_UNSUPPORTED,
    MSG_FLAGS,
    MSG_LENGTH,
    MSG_NCOLS,
    MSGF_SHORT,
    DecodePlan,
    compile_decode_plan,
)
from vehicle_io.errors import CodecError

STATUS_NAMES: dict[int, str] = {
    STATUS_OK: "ok",
    STATUS_UNKNOWN_ID: "unknown_id",
    STATUS_TOO_SHORT: "too_short",
    STATUS_BAD_MUX: "bad_mux",
    STATUS_UNSUPPORTED: "unsupported",
}


class BatchResult(dict[str, dict[str, np.ndarray]]):
    """``{message_name: {"_row": int64[K], signal_name: float64[K], ...}}`` plus ``status``.

    ``status`` holds one code per input row (``STATUS_*``).  Rows with status OK, BAD_MUX
    (and UNSUPPORTED inside a multiplexed branch only) appear under their message; rows
    with UNKNOWN_ID, TOO_SHORT or an UNSUPPORTED message appear nowhere else.
    """

    status: np.ndarray

    def __init__(self, status: np.ndarray) -> None:
        super().__init__()
        self.status = status

    def status_counts(self) -> dict[str, int]:
        """Number of rows per status name (every status present, zeros included)."""
        found = np.bincount(self.status, minlength=len(STATUS_NAMES))
        return {name: int(found[code]) for code, name in STATUS_NAMES.items()}


def _kernel_ready(arr: np.ndarray) -> np.ndarray:
    """C-contiguous and writeable: numba compiles a separate kernel for every other layout
    (a read-only ``np.frombuffer`` array would cost a multi-second compile)."""
    if arr.flags.c_contiguous and arr.flags.writeable:
        return arr
    return np.array(arr, order="C")


def _as_ids(ids: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise CodecError(f"ids: expected a 1-D array, but got shape {arr.shape}")
    if arr.dtype == np.uint32:
        return _kernel_ready(arr)
    if arr.dtype.kind not in "iu" and arr.size:
        raise CodecError(f"ids: expected integer frame ids, but got dtype {arr.dtype}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 0xFFFFFFFF):
        raise CodecError(f"ids: expected values in 0..0xFFFFFFFF, but got "
                         f"{int(arr.min())}..{int(arr.max())}")
    return arr.astype(np.uint32)


def _as_data(data: npt.ArrayLike, n: int) -> np.ndarray:
    arr = np.asarray(data)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise CodecError(f"data: expected shape ({n}, W), but got {arr.shape}")
    if arr.shape[1] > 255:
        raise CodecError(f"data: expected at most 255 bytes per frame, but got {arr.shape[1]}")
    if arr.dtype == np.uint8:
        return _kernel_ready(arr)
    if arr.dtype.kind not in "iu" and arr.size:
        raise CodecError(f"data: expected bytes (uint8), but got dtype {arr.dtype}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 255):
        raise CodecError(f"data: expected byte values 0..255, but got "
                         f"{int(arr.min())}..{int(arr.max())}")
    return arr.astype(np.uint8)


def _as_lengths(lengths: npt.ArrayLike | None, n: int, width: int) -> np.ndarray:
    if lengths is None:
        return np.empty(0, dtype=np.uint8)  # the kernel reads "no lengths" as W everywhere
    arr = np.asarray(lengths)
    if arr.shape != (n,):
        raise CodecError(f"lengths: expected shape ({n},), but got {arr.shape}")
    if arr.dtype == np.uint8:
        return _kernel_ready(arr)
    if arr.dtype.kind not in "iu" and arr.size:
        raise CodecError(f"lengths: expected integer byte counts, but got dtype {arr.dtype}")
    if arr.size and int(arr.min()) < 0:
        raise CodecError(f"lengths: expected byte counts >= 0, but got {int(arr.min())}")
    # A length beyond the row width means "the whole row", as numpy slicing would.
    return np.minimum(arr, width).astype(np.uint8)


class BatchDecoder:
    """Decode frame batches exactly as ``db.decode_message(id, data, decode_choices=False)``.

    The decode plan is compiled once from cantools' codec tree; later changes to ``db``
    need a new decoder.  ``decode`` runs two numba kernels over the whole batch (index and
    count; group and decode), with the outputs allocated in between: no Python work per row.  See :mod:`vehicle_io.codec` for the exact semantics of every status.
    """

    def __init__(self, db: Any) -> None:
        self._plan: DecodePlan = compile_decode_plan(db)
        self._names = [m.name for m in self._plan.messages]
        self._columns = [m.columns for m in self._plan.messages]
        msg_i = self._plan.msg_i
        self._ncols = msg_i[:, MSG_NCOLS].copy()
        # Words per row of a frame longer than 8 bytes (one spare word for 2-word loads).
        self._long_words = np.where((msg_i[:, MSG_FLAGS] & MSGF_SHORT) == 0,
                                    (msg_i[:, MSG_LENGTH] + 7) // 8 + 1, 0)
        self._ncols_list: list[int] = self._ncols.tolist()
        self._long_list: list[int] = self._long_words.tolist()

    @property
    def message_names(self) -> list[str]:
        """Result keys of every message this decoder can report (reachable by frame id)."""
        return list(self._names)

    def signal_names(self, message_name: str) -> list[str]:
        """Signal columns reported for ``message_name`` (DBC order, no ``_row``)."""
        try:
            return list(self._columns[self._names.index(message_name)])
        except ValueError:
            raise CodecError(f"expected a message known to this decoder, but got "
                             f"{message_name!r}") from None

    def decode(self, ids: npt.ArrayLike, data: npt.ArrayLike,
               lengths: npt.ArrayLike | None = None) -> BatchResult:
        """Decode ``data[i, :lengths[i]]`` as the message with frame id ``ids[i]``.

        ``ids``: uint32[N] (bit 31, CAN_EFF_FLAG, is ignored); ``data``: uint8[N, W] zero
        padded; ``lengths``: bytes per row (default W; values above W mean W).
        """
        from vehicle_io.codec import _kernels

        ids_arr = _as_ids(ids)
        n = ids_arr.shape[0]
        data_arr = _as_data(data, n)
        width = data_arr.shape[1]
        lengths_arr = _as_lengths(lengths, n, width)
        p = self._plan
        status = np.zeros(n, dtype=np.uint8)
        row_msg = np.empty(n, dtype=np.int32)
        counts = np.zeros(p.msg_i.shape[0], dtype=np.int64)
        _kernels.index_batch(ids_arr, lengths_arr, width, p.std_table, p.ext_keys, p.ext_msg,
                             p.msg_i, status, row_msg, counts)
        # Outputs are allocated here, not in the kernel: numpy asks for huge pages.
        # Exclusive prefix sums in plain Python: a batch is small and a numpy call per step
        # costs more than the arithmetic (same offsets as cumsum(x) - x).
        count_list = counts.tolist()
        present = [m for m, k in enumerate(count_list) if k]
        row_start_l: list[int] = []
        out_base_l: list[int] = []
        long_base_l: list[int] = []
        total_rows = total_values = total_long = 0
        for k, ncol, nlong in zip(count_list, self._ncols_list, self._long_list):
            row_start_l.append(total_rows)
            out_base_l.append(total_values)
            long_base_l.append(total_long)
            total_rows += k
            total_values += k * ncol
            total_long += k * nlong
        row_start = np.array(row_start_l, dtype=np.int64)
        out_base = np.array(out_base_l, dtype=np.int64)
        long_base = np.array(long_base_l, dtype=np.int64)
        rows = np.empty(total_rows, dtype=np.int64)
        words = np.empty(total_rows, dtype=np.uint64)
        long_words = np.empty(total_long, dtype=np.uint64)
        values = np.empty(total_values, dtype=np.float64)
        if width % 8 == 0 and width and sys.byteorder == "little":
            data64 = data_arr.view(np.uint64)
        else:
            data64 = np.zeros((0, 1), dtype=np.uint64)
        _kernels.decode_rows(data_arr, data64, row_msg, counts, row_start, out_base, long_base,
                             rows, words, long_words, values, status, p.msg_i, p.node_i, p.slot_i,
                             p.slot_mask, p.slot_f, p.slot_int, p.mux_i, p.mux_keys,
                             p.mux_child, p.max_nodes, p.max_mux, p.max_keys)
        result = BatchResult(status)
        for m in present:
            k = count_list[m]
            start = row_start_l[m]
            columns = self._columns[m]
            base = out_base_l[m]
            entry: dict[str, np.ndarray] = {"_row": rows[start:start + k]}
            if columns:
                # Unpacking the 2-D block gives the column views in one step.
                entry.update(zip(columns, values[base:base + k * len(columns)].reshape(len(columns), k)))
            result[self._names[m]] = entry
        return result
