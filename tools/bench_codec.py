#!/usr/bin/env python3
"""Benchmark the batch codec against cantools on realistic Z10 traffic.

    python tools/bench_codec.py [--frames 1000000] [--subset 20000] [--runs 5] [--seed 1]

Traffic: every cyclic message of the bundled Z10 DBCs in proportion to 1 / cycle time,
interleaved at random, payloads made by BatchEncoder from random values inside each
signal's DBC range (multiplexers cycle through their branches).  Measures, single thread:

* BatchDecoder.decode on all frames (best of --runs, after one warm-up call);
* cantools ``decode_message(id, data, decode_choices=False)`` on the first --subset frames
  (best of 2), extrapolated per frame; the ratio of the two rates;
* warm start in a fresh interpreter with the numba cache hot: import, load the DBCs, build
  the decoder, first decode (the interpreter's own start-up is printed separately);
* BatchEncoder cost for K=1 (encode_one and encode) and K=10000, next to cantools.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _node_values(node: dict[str, Any], n: int, rng: np.random.Generator,
                 message: Any) -> dict[str, np.ndarray]:
    """Physical values for n rows of one codec node and the branches its muxers select."""
    values: dict[str, np.ndarray] = {}
    for signal in node["signals"]:
        if signal.name in node["multiplexers"]:
            continue
        values[signal.name] = _random_physical(signal, n, rng)
    for mux_name, children in node["multiplexers"].items():
        mux = message.get_signal_by_name(mux_name)
        keys = np.array(sorted(children), dtype=np.int64)
        chosen = keys[np.arange(n) % len(keys)]  # cycle through the branches, as BMS pages do
        rng.shuffle(chosen)
        values[mux_name] = chosen.astype(np.float64) * 1.0
        if mux.conversion.scale != 1 or mux.conversion.offset != 0:
            raws = [mux.conversion.numeric_scaled_to_raw(float(k)) for k in keys]
            phys = {int(k): mux.conversion.raw_to_scaled(r, decode_choices=False)
                    for k, r in zip(keys.tolist(), raws, strict=True)}
            values[mux_name] = np.array([phys[int(k)] for k in chosen], dtype=np.float64)
        for key in keys.tolist():
            rows = np.flatnonzero(chosen == key)
            if rows.size == 0:
                continue
            child = _node_values(children[key], rows.size, rng, message)
            for name, column in child.items():
                target = values.setdefault(name, np.zeros(n, dtype=np.float64))
                target[rows] = column
    return values


def _random_physical(signal: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    conv = signal.conversion
    if conv.is_float:
        lo = signal.minimum if signal.minimum is not None else -1e6
        hi = signal.maximum if signal.maximum is not None else 1e6
        return rng.uniform(lo, hi, n)
    bits = signal.length
    raw_lo, raw_hi = ((-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signal.is_signed
                      else (0, (1 << bits) - 1))
    raw = rng.integers(raw_lo, raw_hi, n, endpoint=True, dtype=np.int64) if bits < 63 else \
        rng.integers(0, 1 << 62, n, dtype=np.int64)
    physical = raw * float(conv.scale) + float(conv.offset)
    if signal.minimum is not None and signal.maximum is not None:
        physical = np.clip(physical, signal.minimum, signal.maximum)
    return physical


def make_traffic(db: Any, n_frames: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                              dict[str, int]]:
    """ids uint32[N], data uint8[N, 64], lengths uint8[N] and frames per message."""
    from vehicle_io.codec import BatchEncoder

    rng = np.random.default_rng(seed)
    cyclic = [m for m in db.messages if m.cycle_time and m.signals]
    rates = np.array([1000.0 / m.cycle_time for m in cyclic])
    counts = np.floor(rates / rates.sum() * n_frames).astype(np.int64)
    counts[np.argmax(rates)] += n_frames - counts.sum()
    encoder = BatchEncoder(db)
    ids = np.empty(n_frames, dtype=np.uint32)
    data = np.zeros((n_frames, 64), dtype=np.uint8)
    lengths = np.empty(n_frames, dtype=np.uint8)
    order = rng.permutation(n_frames)
    start = 0
    mix: dict[str, int] = {}
    for message, count in zip(cyclic, counts.tolist(), strict=True):
        if count == 0:
            continue
        values = _node_values(message._codecs, count, rng, message)
        frames = encoder.encode(message.name, values, strict=False)
        rows = order[start:start + count]
        ids[rows] = message.frame_id | (0x80000000 if message.is_extended_frame else 0)
        data[rows, :message.length] = frames
        lengths[rows] = message.length
        mix[message.name] = count
        start += count
    return ids, data, lengths, mix


def _best(fn: Callable[[], Any], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


_WARM_START = """
import time
t0 = time.perf_counter()
import numpy as np
from vehicle_io import load_database
from vehicle_io.codec import BatchDecoder
db = load_database()
t1 = time.perf_counter()
decoder = BatchDecoder(db)
t2 = time.perf_counter()
ids = np.array([m.frame_id for m in db.messages], dtype=np.uint32)
result = decoder.decode(ids, np.zeros((ids.size, 64), dtype=np.uint8))
t3 = time.perf_counter()
assert len(result) > 0
print(f"{t3 - t0:.3f} {t1 - t0:.3f} {t2 - t1:.3f} {t3 - t2:.3f}")
"""


def warm_start(runs: int = 3) -> tuple[float, float, list[float]]:
    """(best in-process seconds, interpreter start-up, [import+load, build, first decode])."""
    best = None
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _WARM_START], check=True,
                             capture_output=True, text=True).stdout.split()
        parts = [float(x) for x in out]
        if best is None or parts[0] < best[0]:
            best = parts
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    interpreter = time.perf_counter() - t0
    assert best is not None
    return best[0], interpreter, best[1:]


def bench_encoder(db: Any, seed: int) -> None:
    from vehicle_io.codec import BatchEncoder

    rng = np.random.default_rng(seed)
    encoder = BatchEncoder(db)
    message = max((m for m in db.messages if m.cycle_time and not m.is_multiplexed()
                   and m.length <= 8), key=lambda m: len(m.signals))
    values = {k: v[0].item() for k, v in _node_values(message._codecs, 1, rng, message).items()}
    needed = dict(message.gather_signals(values))
    same = encoder.encode_one(message.name, **values) == db.encode_message(message.name, needed)
    assert same, "BatchEncoder and cantools disagree"
    n = 5000
    t_one = _best(lambda: [encoder.encode_one(message.name, **values) for _ in range(n)], 3) / n
    t_map = _best(lambda: [encoder.encode(message.name, values) for _ in range(n)], 3) / n
    t_cantools = _best(lambda: [db.encode_message(message.name, needed) for _ in range(n)],
                       3) / n
    t_loose = _best(lambda: [db.encode_message(message.name, needed, strict=False)
                             for _ in range(n)], 3) / n
    print(f"encoder K=1 ({message.name}, {len(message.signals)} signals, range checks on): "
          f"encode_one {t_one * 1e6:.2f} us, encode {t_map * 1e6:.2f} us per frame; "
          f"cantools encode_message {t_cantools * 1e6:.2f} us (strict=False "
          f"{t_loose * 1e6:.2f} us)")
    k_rows = 10_000
    arrays = _node_values(message._codecs, k_rows, rng, message)
    encoder.encode(message.name, arrays)  # compile / load the kernel
    t_k = _best(lambda: encoder.encode(message.name, arrays), 5)
    print(f"encoder K={k_rows}: {t_k * 1e3:.2f} ms ({t_k / k_rows * 1e9:.0f} ns per frame, "
          f"{k_rows / t_k / 1e6:.2f} M frames/s); cantools {t_cantools * k_rows * 1e3:.0f} ms "
          f"extrapolated; ratio {t_cantools * k_rows / t_k:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--subset", type=int, default=20_000,
                        help="frames decoded by cantools (its rate is extrapolated)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from vehicle_io import load_database
    from vehicle_io.codec import STATUS_OK, BatchDecoder

    db = load_database()
    t0 = time.perf_counter()
    ids, data, lengths, mix = make_traffic(db, args.frames, args.seed)
    t_make = time.perf_counter() - t0
    total_signals = sum(len(db.get_message_by_name(n).signals) * c for n, c in mix.items())
    print(f"traffic: {args.frames} frames of {len(mix)} cyclic Z10 messages "
          f"(~{total_signals / args.frames:.1f} signals per frame), made in {t_make:.1f} s")

    decoder = BatchDecoder(db)
    result = decoder.decode(ids, data, lengths)
    assert (result.status == STATUS_OK).all(), result.status_counts()
    t_batch = _best(lambda: decoder.decode(ids, data, lengths), args.runs)
    rate_batch = args.frames / t_batch
    print(f"BatchDecoder: {t_batch * 1e3:.1f} ms for {args.frames} frames (best of {args.runs})"
          f" = {rate_batch / 1e6:.2f} M frames/s, {t_batch / args.frames * 1e9:.0f} ns/frame")

    subset = min(args.subset, args.frames)
    payloads = [(int(ids[i]) & 0x1FFFFFFF, bytes(data[i, :lengths[i]])) for i in range(subset)]

    def run_cantools() -> list[Any]:
        return [db.decode_message(fid, payload, decode_choices=False)
                for fid, payload in payloads]

    t_cantools = _best(run_cantools, 2)
    rate_cantools = subset / t_cantools
    print(f"cantools decode_message: {t_cantools * 1e3:.0f} ms for the first {subset} frames "
          f"(best of 2) = {rate_cantools / 1e3:.1f} k frames/s, "
          f"{t_cantools / subset * 1e6:.2f} us/frame")
    expected = run_cantools()
    small = decoder.decode(ids[:subset], data[:subset], lengths[:subset])
    mismatches = 0
    for name, columns in small.items():
        for k, row in enumerate(columns["_row"].tolist()):
            for signal, value in expected[row].items():
                if columns[signal][k] != float(value):
                    mismatches += 1
    print(f"same values as cantools on the subset: {'yes' if mismatches == 0 else 'NO'} "
          f"({mismatches} mismatches)")
    print(f"ratio BatchDecoder / cantools: {rate_batch / rate_cantools:.0f}x")

    total, interpreter, parts = warm_start()
    print(f"warm start (numba cache hot, fresh interpreter): {total:.3f} s from first import to "
          f"first decode result (import + load DBCs {parts[0]:.3f} s, build decoder "
          f"{parts[1]:.3f} s, first decode {parts[2]:.3f} s); interpreter start-up itself "
          f"{interpreter:.3f} s")
    bench_encoder(db, args.seed)


if __name__ == "__main__":
    main()
