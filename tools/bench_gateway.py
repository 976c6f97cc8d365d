#!/usr/bin/env python3
"""Gateway throughput and latency: two fully loaded buses through python-can virtual buses.

What runs: the Z10 database; two virtual buses named ``pt`` and ``body``, each fed by its own
sender thread with realistic Z10 frames of that bus (every cyclic message with signals,
mixed in proportion to 1/cycle time, random in-range values, multiplexed messages cycling
through their mux values, E2E counter and CRC valid on every safety-relevant message).
A :class:`~vehicle_io.gateway.Gateway` attached to both receives, decodes, checks and stores.

Modes:

* paced (default): each sender paces to ``--rate`` frames/s (default 9,000 per bus: a
  1 Mbit/s classic bus at full load, 8-byte frames, is 7,407-9,009 frames/s), so both
  together are >= 18 k frames/s, for ``--seconds``.
* ``--max-rate``: no pacing; the senders push as fast as they can and the gateway works
  through the backlog. The ceiling printed is frames made visible per second.
* ``--direct``: no buses; pre-built array batches go straight into
  ``Gateway.process_batch`` (256 frames each): the ceiling of the decode -> check -> store
  path alone.

Latency, measured fairly:

* the sender reads ``time.perf_counter()`` immediately before ``bus.send(frame)`` and keeps
  it per frame, in send order;
* a commit hook of the gateway runs in the worker thread right after a batch has been
  committed to the store (the store lock released: any ``snapshot()`` from that instant on
  sees the frames); it reads ``time.perf_counter()`` once for the batch;
* each bus delivers its frames in order (one sender, a FIFO virtual bus, one Notifier
  thread, a FIFO listener queue, batches drained in order), so the i-th frame committed on a
  bus is the i-th frame sent on it. Latency of frame i = commit time - send time. Every frame
  is measured, none sampled; the hook costs one slice assignment per batch.

The senders run in the same process as the gateway (python-can's virtual bus is
in-process), so they compete with it for the GIL: the numbers are conservative for a
gateway fed by kernel SocketCAN or an adapter thread. Drops: sent must equal seen.

Garbage collection: the pre-built traffic (tens of thousands of Message objects) is frozen
(``gc.freeze()``) before the run, as a long-running gateway process would freeze its start-up
state; otherwise a full collection over those objects stalls every thread for tens of ms.

Run: ``python tools/bench_gateway.py [--seconds 5] [--rate 9000] [--max-rate] [--direct]
[--batch-period 0.001] [--switch-interval 0.0005]``
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections.abc import Sequence

import numpy as np

BUSES = ("pt", "body")


def _physical(signal, rng: random.Random) -> float:  # type: ignore[no-untyped-def]
    lo = signal.minimum if signal.minimum is not None else 0.0
    hi = signal.maximum if signal.maximum is not None else lo
    if signal.is_float:
        return rng.uniform(lo, hi)
    raw_lo = int(np.ceil((lo - signal.offset) / signal.scale))
    raw_hi = int(np.floor((hi - signal.offset) / signal.scale))
    raw = rng.randint(min(raw_lo, raw_hi), max(raw_lo, raw_hi))
    return raw * signal.scale + signal.offset


def message_variants(message, rng: random.Random, count: int) -> list[bytes]:  # type: ignore[no-untyped-def]
    """``count`` encoded payloads of a message with random in-range values (E2E bytes zero)."""
    out = []
    muxes = [s for s in message.signals if s.is_multiplexer]
    mux_values: list[int] = []
    if muxes:
        mux_values = sorted({v for s in message.signals for v in (s.multiplexer_ids or ())})
    for i in range(count):
        selected = mux_values[i % len(mux_values)] if mux_values else None
        values = {}
        for s in message.signals:
            if s.multiplexer_ids and selected not in s.multiplexer_ids:
                continue
            values[s.name] = selected if s.is_multiplexer else _physical(s, rng)
        out.append(bytes(message.encode(values, strict=False)))
    return out


def schedule(messages: Sequence, length: int) -> list[int]:  # type: ignore[type-arg]
    """Smooth weighted round robin of message indices, weights 1/cycle time."""
    from vehicle_io.dbc import cycle_time_s

    weights = [1.0 / (cycle_time_s(m) or 0.1) for m in messages]
    total = sum(weights)
    current = [0.0] * len(messages)
    order = []
    for _ in range(length):
        for i, w in enumerate(weights):
            current[i] += w
        best = max(range(len(messages)), key=current.__getitem__)
        current[best] -= total
        order.append(best)
    return order


def build_traffic(db, bus: str, n_frames: int, seed: int) -> list:  # type: ignore[no-untyped-def]
    """n_frames python-can Messages of ``bus``, in send order, E2E-protected where required."""
    import can

    from vehicle_io.dbc import cycle_time_s
    from vehicle_io.e2e import E2ESpec, protect

    rng = random.Random(seed)
    messages = [m for m in db.messages if m.bus_name == bus and m.signals and cycle_time_s(m)]
    variants = {m.name: message_variants(m, rng, 32 if not m.is_multiplexed() else 96) for m in messages}
    specs = {m.name: E2ESpec.from_message(m) for m in messages}
    counters = dict.fromkeys(variants, 0)
    order = schedule(messages, 997)
    frames = []
    for i in range(n_frames):
        m = messages[order[i % len(order)]]
        payload = variants[m.name][(i // len(order)) % len(variants[m.name])]
        spec = specs[m.name]
        if spec is not None:
            payload = bytes(protect(spec, payload, counters[m.name]))
            counters[m.name] = (counters[m.name] + 1) % 15
        frames.append(can.Message(arbitration_id=m.frame_id, data=payload, is_extended_id=m.is_extended_frame,
                                  is_fd=m.length > 8))
    return frames


class Sender(threading.Thread):
    def __init__(self, bus, frames: list, rate_hz: float | None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(name=f"bench sender {bus.channel_info}", daemon=True)
        self.bus = bus
        self.frames = frames
        self.rate_hz = rate_hz
        self.t_send = np.zeros(len(frames))
        self.sent = 0
        self.start_gate = threading.Event()

    def run(self) -> None:
        self.start_gate.wait()
        send = self.bus.send
        clock = time.perf_counter
        t_send = self.t_send
        t0 = clock()
        period = 1.0 / self.rate_hz if self.rate_hz else 0.0
        for i, frame in enumerate(self.frames):
            if period:
                due = t0 + i * period
                ahead = due - clock()
                if ahead > 0.0002:  # sleep only when clearly early: sleep() has ~60 us slack
                    time.sleep(ahead)
            t_send[i] = clock()
            send(frame)
            self.sent = i + 1


def percentile_ms(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q) * 1e3) if values.size else float("nan")


def run_buses(db, seconds: float, rate_hz: float | None, n_max: int, batch_period_s: float = 0.001) -> int:  # type: ignore[no-untyped-def]
    import can

    from vehicle_io.gateway import Gateway

    n = int(seconds * rate_hz) if rate_hz else n_max
    print(f"building {n} frames per bus ...", flush=True)
    traffic = {bus: build_traffic(db, bus, n, seed=i) for i, bus in enumerate(BUSES)}
    tag = f"bench-{os.getpid()}"
    rx = {bus: can.Bus(interface="virtual", channel=f"{tag}-{bus}") for bus in BUSES}
    tx = {bus: can.Bus(interface="virtual", channel=f"{tag}-{bus}") for bus in BUSES}
    visible = {bus: np.full(n, np.nan) for bus in BUSES}
    cursor = dict.fromkeys(BUSES, 0)

    def on_commit(bus: str, reasons: np.ndarray) -> None:
        t = time.perf_counter()
        k = cursor[bus]
        visible[bus][k : k + reasons.shape[0]] = t
        cursor[bus] = k + reasons.shape[0]

    senders = {bus: Sender(tx[bus], traffic[bus], rate_hz) for bus in BUSES}
    import gc
    gc.collect()
    gc.freeze()  # the pre-built traffic is not the gateway's: keep it out of GC passes
    try:
        with Gateway(rx, db, batch_period_s=batch_period_s) as gw:
            gw.add_commit_hook(on_commit)
            for s in senders.values():
                s.start()
            t_start = time.perf_counter()
            cpu_start = time.process_time()
            for s in senders.values():
                s.start_gate.set()
            for s in senders.values():
                s.join()
            t_sent = time.perf_counter()
            deadline = t_sent + 30.0
            while sum(cursor.values()) < 2 * n and time.perf_counter() < deadline:
                time.sleep(0.01)
            cpu_used = time.process_time() - cpu_start
            t_done = time.perf_counter()
            counters = gw.counters()
            summary = gw.summary()
    finally:
        for bus in (*rx.values(), *tx.values()):
            bus.shutdown()
    sent = {bus: senders[bus].sent for bus in BUSES}
    seen = {bus: counters["buses"].get(bus, {}).get("seen", 0) for bus in BUSES}
    t_last = max(float(np.nanmax(v)) for v in visible.values())
    lat = np.concatenate([visible[b] - senders[b].t_send for b in BUSES])
    lat = lat[np.isfinite(lat)]
    total = sum(seen.values())
    mode = f"paced at {rate_hz:.0f} frames/s per bus" if rate_hz else "max rate (no pacing)"
    print(f"mode: {mode}, {len(BUSES)} buses, {n} frames per bus")
    print(f"send rate: {sum(sent.values()) / (t_sent - t_start):,.0f} frames/s over {t_sent - t_start:.2f} s")
    print(f"sustained through the gateway: {total / (t_last - t_start):,.0f} frames/s "
          f"(first send to last visible, {t_last - t_start:.2f} s)")
    for bus in BUSES:
        print(f"  {bus}: sent {sent[bus]}, seen {seen[bus]}, drops {sent[bus] - seen[bus]}")
    print(f"drops: {sum(sent.values()) - total} (sent {sum(sent.values())}, seen {total})")
    print(f"cpu of this process (senders + gateway): {cpu_used:.2f} s over {t_done - t_start:.2f} s "
          f"= {cpu_used / (t_done - t_start):.2f} cores")
    print(f"latency send -> visible in store ({lat.size} frames): p50 {percentile_ms(lat, 50):.3f} ms, "
          f"p99 {percentile_ms(lat, 99):.3f} ms, p99.9 {percentile_ms(lat, 99.9):.3f} ms, max {lat.max() * 1e3:.3f} ms")
    print(summary)
    if not rate_hz:
        print("note: without pacing the backlog, not the gateway, sets the latency; frames that waited "
              "longer than 3 cycle times are rejected as stale, as they should be")
    return 0 if sum(sent.values()) == total else 1


def run_direct(db, n_batches: int, batch: int) -> int:  # type: ignore[no-untyped-def]
    from vehicle_io.gateway import Gateway

    print(f"building {n_batches * batch} frames ...", flush=True)
    frames = build_traffic(db, "pt", n_batches * batch, seed=3)
    ids = np.array([f.arbitration_id for f in frames], dtype=np.uint32)
    data = np.zeros((len(frames), 64), dtype=np.uint8)
    for i, f in enumerate(frames):
        data[i, : len(f.data)] = np.frombuffer(bytes(f.data), dtype=np.uint8)
    lengths = np.array([len(f.data) for f in frames], dtype=np.uint8)
    with Gateway({}, db, start=False, blackbox_s=10.0) as gw:
        gw.process_batch("pt", ids[:batch], data[:batch], lengths[:batch])  # warm
        t0 = time.perf_counter()
        for b in range(1, n_batches):
            s = slice(b * batch, (b + 1) * batch)
            gw.process_batch("pt", ids[s], data[s], lengths[s])
        dt = time.perf_counter() - t0
        c = gw.counters()
    n = (n_batches - 1) * batch
    print(f"mode: direct process_batch, {batch} frames per batch, {n} frames")
    print(f"ceiling of decode -> check -> store: {n / dt:,.0f} frames/s ({dt * 1e6 / (n_batches - 1):.0f} us per batch)")
    print(f"seen {c['seen']}, decoded {c['decoded']}, rejected "
          f"{ {k: v for k, v in c['rejected'].items() if v} }")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="paced run length (default 5)")
    parser.add_argument("--rate", type=float, default=9000.0, help="frames/s per bus when paced (default 9000)")
    parser.add_argument("--max-rate", action="store_true", help="no pacing: print the ceiling through the buses")
    parser.add_argument("--frames", type=int, default=60000, help="frames per bus in --max-rate mode")
    parser.add_argument("--direct", action="store_true", help="process_batch ceiling without buses")
    parser.add_argument("--batch-period", type=float, default=0.001, help="Gateway batch_period_s (default 0.001)")
    parser.add_argument(
        "--switch-interval", type=float, default=None,
        help="sys.setswitchinterval for the run (default: Python's 0.005 s); 0.0005 shortens GIL hand-offs",
    )
    args = parser.parse_args(argv)

    from vehicle_io import load_database

    db = load_database()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    load1, load5, _ = os.getloadavg()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average {load1:.2f} / {load5:.2f} "
          f"(other processes share the cpus), GIL switch interval {sys.getswitchinterval() * 1e3:.1f} ms, "
          f"batch_period_s {args.batch_period}")
    if args.direct:
        return run_direct(db, 400, 256)
    if args.max_rate:
        return run_buses(db, 0.0, None, args.frames, args.batch_period)
    return run_buses(db, args.seconds, args.rate, 0, args.batch_period)


if __name__ == "__main__":
    sys.exit(main())
