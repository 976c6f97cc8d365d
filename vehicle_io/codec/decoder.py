"""BatchDecoder: decode a whole frame batch in two numba kernel calls, no per-row Python."""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

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


class FlatDecode(NamedTuple):
    """A decode as flat kernel buffers (see :meth:`BatchDecoder.decode_flat`)."""

    status: np.ndarray  # uint8[N], STATUS_* per input row
    row_msg: np.ndarray  # int32[N], decoder message index per input row, -1 if not reported
    counts: np.ndarray  # int64[M], rows per message
    row_start: np.ndarray  # int64[M], first entry of each message in ``rows``
    out_base: np.ndarray  # int64[M], first value of each message in ``values``
    rows: np.ndarray  # int64[>= sum(counts)], input row numbers grouped by message
    values: np.ndarray  # float64, per message its columns one after the other


_LITTLE = sys.byteorder == "little"
_U8 = np.dtype(np.uint8)
_U32 = np.dtype(np.uint32)
_C_WRITEABLE = 0x1 | 0x400  # NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_WRITEABLE

_NO_WORDS = np.zeros((0, 1), dtype=np.uint64)


class DecodeWorkspace:
    """Output buffers that big decodes reuse (``decode``/``decode_flat`` ``workspace=``).

    A batch decoder allocates its outputs fresh for every big batch: for a bulk job that
    decodes chunk after chunk (the fleet's 32 MiB chunks: ~75 MB of float64 values each),
    that means fresh pages, zeroed by the OS, every time. A workspace keeps them: a
    result decoded into it is valid only until the next decode into the same workspace,
    and one workspace serves one thread at a time.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def take(self, name: str, size: int, dtype: npt.DTypeLike) -> np.ndarray:
        """A 1-D array of ``size`` elements named ``name``, grown (by at least a quarter,
        so slightly bigger batches do not reallocate every time) when too small."""
        dt = np.dtype(dtype)
        arr = self._arrays.get(name)
        if arr is None or arr.dtype != dt or arr.shape[0] < size:
            grown = 0 if arr is None or arr.dtype != dt else arr.shape[0] + arr.shape[0] // 4
            arr = self._arrays[name] = np.empty(max(size, grown), dtype=dt)
        return arr[:size]

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return sum(a.nbytes for a in self._arrays.values())


class _Buffers(NamedTuple):
    """decode_batch's pooled outputs (``kernel``, argument order) and views of them."""

    kernel: tuple[np.ndarray, ...]
    status: np.ndarray
    row_msg: np.ndarray
    counts: np.ndarray
    row_start: np.ndarray
    out_base: np.ndarray
    rows: np.ndarray
    values: np.ndarray


#: Up to this many rows a decode is one kernel call with worst-case sized outputs.
_SMALL_BATCH = 256


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
        self._long_words = self._long_words.astype(np.int64)
        self._max_ncols = int(self._ncols.max()) if self._ncols.size else 0
        self._max_long = int(self._long_words.max()) if self._long_words.size else 0
        p = self._plan
        # The int64 tables as one pool (layout: decode_batch), then the kernel arguments that
        # never change, in decode_batch's order.
        tables = [p.msg_i, self._ncols, self._long_words, p.node_i, p.slot_i, p.slot_int, p.mux_i,
                  p.mux_keys, p.mux_child]
        header = [p.msg_i.shape[0], p.msg_i.shape[1], p.node_i.shape[0], p.node_i.shape[1],
                  p.slot_i.shape[0], p.slot_i.shape[1], p.slot_int.shape[1], p.mux_i.shape[0],
                  p.mux_i.shape[1], p.mux_keys.shape[0], p.max_nodes, p.max_mux, p.max_keys]
        self._plan_pool = np.concatenate(
            [np.array(header, dtype=np.int64)] + [np.ascontiguousarray(t, dtype=np.int64).ravel() for t in tables]
        )
        self._static = (self._plan_pool, p.std_table, p.ext_keys, p.ext_msg, p.slot_mask, p.slot_f)
        self._scratch: _Buffers | None = None
        self._kernels: Any = None  # vehicle_io.codec._kernels, imported at the first decode
        self._scratch_rows = 0

    @property
    def message_names(self) -> list[str]:
        """Result keys of every message this decoder can report (reachable by frame id)."""
        return list(self._names)

    @property
    def unsupported(self) -> dict[str, str]:
        """Messages whose every row is ``STATUS_UNSUPPORTED``, with the reason in words.

        (Rows of a multiplexer branch cantools cannot unpack are UNSUPPORTED too, but their
        message is reported and not listed here.)
        """
        return {m.name: m.reason for m in self._plan.messages if not m.supported}

    def message(self, message_name: str) -> Any:
        """The cantools ``Message`` behind result key ``message_name``.

        Not always ``db.get_message_by_name(message_name)``: two reachable messages with one
        name (merged files, or one file that repeats a name) are reported as ``NAME`` and
        ``NAME@0xID``, and cantools' name lookup gives only the last of them.
        """
        try:
            return self._plan.messages[self._names.index(message_name)].message
        except ValueError:
            raise CodecError(f"expected a message known to this decoder, but got "
                             f"{message_name!r}") from None

    def signal_names(self, message_name: str) -> list[str]:
        """Signal columns reported for ``message_name`` (DBC order, no ``_row``)."""
        try:
            return list(self._columns[self._names.index(message_name)])
        except ValueError:
            raise CodecError(f"expected a message known to this decoder, but got "
                             f"{message_name!r}") from None

    def decode(self, ids: npt.ArrayLike, data: npt.ArrayLike,
               lengths: npt.ArrayLike | None = None, *, workspace: DecodeWorkspace | None = None) -> BatchResult:
        """Decode ``data[i, :lengths[i]]`` as the message with frame id ``ids[i]``.

        ``ids``: uint32[N] (bit 31, CAN_EFF_FLAG, selects the extended frames); ``data``: uint8[N, W] zero
        padded; ``lengths``: bytes per row (default W; values above W mean W). ``workspace``:
        see :meth:`decode_flat`.
        """
        flat = self.decode_flat(ids, data, lengths, workspace=workspace)
        result = BatchResult(flat.status)
        rows, values = flat.rows, flat.values
        counts = flat.counts.tolist()
        row_start = flat.row_start.tolist()
        out_base = flat.out_base.tolist()
        for m, k in enumerate(counts):
            if not k:
                continue
            start = row_start[m]
            columns = self._columns[m]
            base = out_base[m]
            entry: dict[str, np.ndarray] = {"_row": rows[start:start + k]}
            if columns:
                # Unpacking the 2-D block gives the column views in one step.
                entry.update(zip(columns, values[base:base + k * len(columns)].reshape(len(columns), k)))
            result[self._names[m]] = entry
        return result

    def decode_flat(self, ids: npt.ArrayLike, data: npt.ArrayLike,
                    lengths: npt.ArrayLike | None = None, *, reuse: bool = False,
                    workspace: DecodeWorkspace | None = None) -> FlatDecode:
        """The same decode as :meth:`decode`, as the kernels' flat buffers (no dict).

        For a consumer that indexes the values itself (the gateway): message ``m``
        (index into :attr:`message_names`) has ``counts[m]`` rows, input rows
        ``rows[row_start[m]:][:counts[m]]``, and signal column ``c`` (of
        :meth:`signal_names`) at ``values[out_base[m] + c * counts[m]:][:counts[m]]``.
        ``row_msg[i]`` is the message of input row i (-1 when not reported).

        ``reuse=True`` writes a small batch into buffers this decoder keeps: the result is
        valid until the next ``reuse`` call, and callers must not decode concurrently.
        ``workspace`` does the same for big batches (above 256 rows), in the caller's
        :class:`DecodeWorkspace`: the result is valid until the next decode into it.
        """
        _kernels = self._kernels
        if _kernels is None:
            from vehicle_io.codec import _kernels

            self._kernels = _kernels
        # Arrays that are already what the kernel takes pass with a few identity tests.
        if (type(ids) is np.ndarray and ids.dtype is _U32 and ids.ndim == 1
                and ids.flags.num & _C_WRITEABLE == _C_WRITEABLE):
            ids_arr = ids
        else:
            ids_arr = _as_ids(ids)
        n = ids_arr.shape[0]
        if (type(data) is np.ndarray and data.dtype is _U8 and data.ndim == 2 and data.shape[0] == n
                and data.shape[1] <= 255 and data.flags.num & _C_WRITEABLE == _C_WRITEABLE):
            data_arr = data
        else:
            data_arr = _as_data(data, n)
        width = data_arr.shape[1]
        if (type(lengths) is np.ndarray and lengths.dtype is _U8 and lengths.shape == (n,)
                and lengths.flags.num & _C_WRITEABLE == _C_WRITEABLE):
            lengths_arr = lengths
        else:
            lengths_arr = _as_lengths(lengths, n, width)
        p = self._plan
        if n <= _SMALL_BATCH:
            # One kernel call; the outputs are sized for the worst case (a few kB at most).
            if reuse:
                bufs = self._scratch
                if bufs is None or self._scratch_rows < n:
                    self._scratch_rows = max(n, 2 * self._scratch_rows, 16)
                    bufs = self._scratch = self._buffers(self._scratch_rows)
            else:
                bufs = self._buffers(n)
            # No uint64 view of the data: for a few rows the kernel reads the bytes as fast.
            _kernels.decode_batch(ids_arr, lengths_arr, data_arr, _NO_WORDS, *bufs.kernel, *self._static)
            status, row_msg = bufs.status, bufs.row_msg
            if status.shape[0] != n:
                status = status[:n]
                row_msg = row_msg[:n]
            return FlatDecode(status, row_msg, bufs.counts, bufs.row_start, bufs.out_base, bufs.rows, bufs.values)
        if width % 8 == 0 and width and _LITTLE:
            data64 = data_arr.view(np.uint64)
        else:
            data64 = _NO_WORDS
        if workspace is None:
            status = np.zeros(n, dtype=np.uint8)
            row_msg = np.empty(n, dtype=np.int32)
        else:
            status = workspace.take("status", n, np.uint8)
            status.fill(0)
            row_msg = workspace.take("row_msg", n, np.int32)
        counts = np.zeros(p.msg_i.shape[0], dtype=np.int64)
        _kernels.index_batch(ids_arr, lengths_arr, width, p.std_table, p.ext_keys, p.ext_msg,
                             p.msg_i, status, row_msg, counts)
        # Big batch: outputs sized exactly (numpy asks for huge pages), offsets by cumsum.
        row_start = np.cumsum(counts) - counts
        out_base = np.cumsum(counts * self._ncols) - counts * self._ncols
        long_base = np.cumsum(counts * self._long_words) - counts * self._long_words
        total_rows = int(counts.sum())
        n_long = int((counts * self._long_words).sum())
        n_values = int((counts * self._ncols).sum())
        if workspace is None:
            rows = np.empty(total_rows, dtype=np.int64)
            words = np.empty(total_rows, dtype=np.uint64)
            long_words = np.empty(n_long, dtype=np.uint64)
            values = np.empty(n_values, dtype=np.float64)
        else:
            rows = workspace.take("rows", total_rows, np.int64)
            words = workspace.take("words", total_rows, np.uint64)
            long_words = workspace.take("long_words", n_long, np.uint64)
            values = workspace.take("values", n_values, np.float64)
        _kernels.decode_rows(data_arr, data64, row_msg, counts, row_start, out_base, long_base,
                             rows, words, long_words, values, status, p.msg_i, p.node_i, p.slot_i,
                             p.slot_mask, p.slot_f, p.slot_int, p.mux_i, p.mux_keys,
                             p.mux_child, p.max_nodes, p.max_mux, p.max_keys)
        return FlatDecode(status, row_msg, counts, row_start, out_base, rows, values)

    def _buffers(self, n: int) -> _Buffers:
        """Outputs of decode_batch for up to ``n`` rows."""
        n_msg = self._ncols.shape[0]
        p = self._plan
        # Layout: see decode_batch (work entries as _kernels._scratch_size for n rows).
        work = n * p.max_mux + n + 2 * (p.max_keys + 1) + 3 * (p.max_nodes + 1)
        out_i64 = np.empty(5 * n_msg + n + work, dtype=np.int64)
        out_u64 = np.empty(2 * n + n * self._max_long, dtype=np.uint64)
        status = np.empty(n, dtype=np.uint8)
        row_msg = np.empty(n, dtype=np.int32)
        values = np.empty(n * self._max_ncols, dtype=np.float64)
        return _Buffers(
            (status, row_msg, out_i64, out_u64, values),
            status, row_msg, out_i64[:n_msg], out_i64[n_msg : 2 * n_msg], out_i64[2 * n_msg : 3 * n_msg],
            out_i64[5 * n_msg : 5 * n_msg + n], values,
        )
