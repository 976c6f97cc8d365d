#!/usr/bin/env python3
"""Benchmark the socketcand hub of ``z10 sim``: frames/s between two processes, and latency.

    python tools/bench_hub.py [--frames 100000] [--paced-rate 1000] [--paced-frames 3000]

Three processes, as on a rig: the hub (``z10 sim --port 0``), client A (a subprocess of
this script) and client B (this process), both python-can's ``socketcand`` interface. A
sends 8-byte frames carrying a sequence number and its send time (CLOCK_MONOTONIC, shared
by all processes); B receives them, checks that every frame arrives once and in order
(lossless) and measures the latency from A's ``send`` to B's ``recv``.

Two backings of the hub's ``pt`` channel:

* ``virtual`` (python-can's untimed bus): the hub's own throughput, nothing else limits it;
* ``hilbus`` 500 kbit/s real time: the timed bus, which carries at most ~4,500 8-byte
  frames/s (ISO 11898-1: 111..135 bits a frame); the hub stops reading A while the bus is
  busy, so once the TCP buffers between A and the hub are full (about a megabyte on
  loopback) A's ``send`` is slowed to what the bus carries: the bus limits the rate.

For each: a flood (A sends as fast as it can) gives frames/s and the latency under full
load (dominated by queueing: frames wait in socket buffers or the untimed bus's queue for
their turn), and a paced run (``--paced-rate`` frames/s) gives the latency of
the path when it is not saturated. The hub's summary (frames per channel, overflows) is
printed at the end of each run. Numbers depend on the machine; the target is >= 20,000
frames/s lossless through the hub.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import can

_PAYLOAD = struct.Struct("<II")  # sequence number, send time in µs (mod 2**32)
_US_WRAP = 1 << 32


def _now_us() -> int:
    return (time.monotonic_ns() // 1000) % _US_WRAP


def _connect(port: int, channel: str) -> can.BusABC:
    return can.Bus(interface="socketcand", host="127.0.0.1", port=port, channel=channel)


def sender(port: int, channel: str, frames: int, rate: float) -> int:
    """Client A: send ``frames`` frames, as fast as possible (rate 0) or paced."""
    bus = _connect(port, channel)
    try:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.readline()  # go
        start = time.perf_counter()
        for seq in range(frames):
            if rate:
                due = start + seq / rate
                while (left := due - time.perf_counter()) > 0:
                    time.sleep(min(left, 0.001))
            bus.send(can.Message(arbitration_id=0x123, data=_PAYLOAD.pack(seq, _now_us()), is_extended_id=False))
        elapsed = time.perf_counter() - start
        sys.stdout.write(f"sent {frames} {elapsed:.6f}\n")
        sys.stdout.flush()
    finally:
        bus.shutdown()
    return 0


class Sim:
    """``z10 sim --port 0`` in a subprocess."""

    def __init__(self, interface: str) -> None:
        z10 = shutil.which("z10", path=str(Path(sys.executable).parent)) or "z10"
        self.proc = subprocess.Popen([z10, "sim", "--no-van", "--port", "0", "--interface", interface], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        assert self.proc.stdout is not None
        banner = ""
        while "stop with" not in banner:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit(f"z10 sim did not start: {banner}{self.proc.stderr.read() if self.proc.stderr else ''}")
            banner += line
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", banner)
        assert match is not None, banner
        self.port = int(match.group(1))

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=30)
        return out


def run(port: int, frames: int, rate: float) -> dict[str, float]:
    """One measurement: A in a subprocess sends, B here receives. Returns the numbers."""
    receiver = _connect(port, "pt")
    proc = subprocess.Popen([sys.executable, __file__, "--role", "sender", "--port", str(port), "--frames", str(frames),
                             "--rate", str(rate)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.2)  # both past the hub's raw-mode settle time
        proc.stdin.write("go\n")
        proc.stdin.flush()
        latencies_us: list[int] = []
        expected = 0
        out_of_order = 0
        first_t = last_t = 0.0
        idle_deadline = time.monotonic() + 30.0
        while expected < frames and time.monotonic() < idle_deadline:
            msg = receiver.recv(1.0)
            if msg is None:
                continue
            now = _now_us()
            last_t = time.perf_counter()
            if expected == 0:
                first_t = last_t
            seq, sent_us = _PAYLOAD.unpack(bytes(msg.data))
            if seq != expected:
                out_of_order += 1
            expected = seq + 1
            latencies_us.append((now - sent_us) % _US_WRAP)
            idle_deadline = time.monotonic() + 5.0
        sent_line = proc.stdout.readline().split()
        send_s = float(sent_line[2]) if len(sent_line) == 3 else float("nan")
    finally:
        proc.wait(timeout=30)
        receiver.shutdown()
    received = len(latencies_us)
    latencies_us.sort()
    span = last_t - first_t
    return {
        "sent": frames,
        "received": received,
        "lost": frames - received,
        "out_of_order": out_of_order,
        "send_rate": frames / send_s if send_s > 0 else float("nan"),
        "rate": (received - 1) / span if span > 0 else float("nan"),
        "p50_ms": latencies_us[received // 2] / 1000 if received else float("nan"),
        "p99_ms": latencies_us[min(received - 1, int(received * 0.99))] / 1000 if received else float("nan"),
        "max_ms": latencies_us[-1] / 1000 if received else float("nan"),
        "mean_ms": statistics.fmean(latencies_us) / 1000 if received else float("nan"),
    }


def report(label: str, r: dict[str, float]) -> None:
    verdict = "lossless" if r["lost"] == 0 and r["out_of_order"] == 0 else (
        f"LOST {r['lost']:.0f}, out of order {r['out_of_order']:.0f}")
    print(f"  {label}: {r['received']:.0f}/{r['sent']:.0f} frames, {verdict}; {r['rate']:,.0f} frames/s end to end "
          f"(A sent at {r['send_rate']:,.0f}/s); latency p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
          f"max {r['max_ms']:.2f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100_000, help="frames of the flood on the untimed channel")
    parser.add_argument("--bus-frames", type=int, default=20_000, help="frames of the flood on the 500k timed channel")
    parser.add_argument("--paced-rate", type=float, default=1000.0, help="frames/s of the paced runs")
    parser.add_argument("--paced-frames", type=int, default=3000)
    parser.add_argument("--role", choices=("bench", "sender"), default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "sender":
        return sender(args.port, "pt", args.frames, args.rate)

    print(f"hub benchmark: 3 processes (z10 sim, sender A, receiver B), python-can {can.__version__} socketcand "
          f"clients, 8-byte frames, {os.cpu_count()} CPUs")
    results = {}
    for interface, flood in (("virtual", args.frames), ("hilbus", args.bus_frames)):
        what = ("python-can virtual bus behind pt: no bit timing, the hub is the limit" if interface == "virtual"
                else "hilbus pt, 500 kbit/s real time: the bus is the limit (at most ~4,500 8-byte frames/s)")
        print(f"\n{what}")
        sim = Sim(interface)
        try:
            results[interface] = run(sim.port, flood, 0.0)
            report(f"flood ({flood} frames, A as fast as it can)", results[interface])
            paced = run(sim.port, args.paced_frames, args.paced_rate)
            report(f"paced ({args.paced_frames} frames at {args.paced_rate:,.0f}/s)", paced)
        finally:
            summary = sim.stop()
        for line in summary.splitlines():
            if line.strip().startswith(("pt:", "protocol errors")):
                print(f"  hub: {line.strip()}")
    virtual, timed = results["virtual"], results["hilbus"]
    ok = virtual["lost"] == 0 and virtual["rate"] >= 20_000
    print(f"\nhub throughput {virtual['rate']:,.0f} frames/s lossless={virtual['lost'] == 0} "
          f"(target >= 20,000: {'met' if ok else 'NOT met'}); on the 500 kbit/s timed bus "
          f"{timed['rate']:,.0f} frames/s lossless={timed['lost'] == 0}, limited by the bus's bit rate, not the hub")
    return 0


if __name__ == "__main__":
    sys.exit(main())
