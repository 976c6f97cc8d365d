#!/usr/bin/env python3
"""Benchmark the timed virtual bus (python-can interface ``hilbus``) in simulated time.

    python tools/bench_hilbus.py [--full-load-s 5] [--realistic-s 60] [--seed 1]

Prints, single thread, wall time measured with time.perf_counter:

* full load: one node keeps a 500 kbit/s channel 100 % busy with 8-byte classic frames
  (``send`` blocks on a full transmit queue, which drives the simulated clock), one
  python-can receiver reads every frame; the same with 64-byte CAN FD frames at 500k/2M;
* realistic load: the Z10 rest-bus traffic of hil.traffic (every cyclic message of the
  bundled DBCs, E2E counters and CRCs, so payloads change every frame) replayed from the
  sending ECUs' own nodes on three channels (pt, body: 500 kbit/s; ads: CAN FD 500k/2M) on
  one SimClock, a gateway endpoint per channel reading every frame through python-can's
  ``recv``; frames/s of wall time and the simulated-to-real speed ratio of the run.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import can


def full_load(sim_s: float, fd: bool) -> None:
    from hil.bus import SimClock

    clock = SimClock()
    kwargs = {"data_bitrate": 2_000_000, "fd": True} if fd else {}
    sender = can.Bus(interface="hilbus", channel="bench-full", clock=clock, bitrate=500_000, node="TX",
                     tx_queue_size=32, **kwargs)
    receiver = can.Bus(interface="hilbus", channel="bench-full", node="RX", fd=fd)
    payloads = [bytes([i, 1, 2, 3, 4, 5, 6, i ^ 0x5A]) * (8 if fd else 1) for i in range(256)]
    frames = [can.Message(arbitration_id=0x100 + (i & 0xF), data=p, is_extended_id=False, is_fd=fd, bitrate_switch=fd)
              for i, p in enumerate(payloads)]
    received = 0
    start = time.perf_counter()
    i = 0
    while clock.now() < sim_s:
        sender.send(frames[i & 255])
        i += 1
        if i & 15 == 0:
            while receiver.recv(0) is not None:
                received += 1
    while receiver.recv(0.01) is not None:
        received += 1
    wall = time.perf_counter() - start
    stats = sender.stats()
    kind = "64-byte CAN FD 500k/2M" if fd else "8-byte classic 500k"
    print(f"full load, {kind}: {received} frames in {clock.now():.3f} s simulated, {wall:.3f} s wall")
    print(f"  {received / wall:,.0f} frames/s wall, {received / clock.now():,.0f} frames/s simulated, "
          f"bus load {stats.load_pct:.2f} %, simulated/real {clock.now() / wall:,.1f}x")
    sender.shutdown()
    receiver.shutdown()


def realistic(sim_s: float, seed: int) -> None:
    from hil.bus import SimClock
    from hil.traffic import generate
    from vehicle_io import load_database

    db = load_database()
    t0 = time.perf_counter()
    traffic = generate(db, sim_s, seed=seed)
    gen_s = time.perf_counter() - t0
    sender_of = {(m.bus_name, m.frame_id): (m.senders or ["GW"])[0] for m in db.messages}
    clock = SimClock()
    channel_kwargs = {"pt": {}, "body": {}, "ads": {"data_bitrate": 2_000_000, "fd": True}}
    senders: dict[tuple[str, str], can.BusABC] = {}
    gateways: dict[str, can.BusABC] = {}
    for bus_name in traffic.bus_names:
        kw = channel_kwargs.get(bus_name, {})
        gateways[bus_name] = can.Bus(interface="hilbus", channel=f"bench-{bus_name}", clock=clock, bitrate=500_000,
                                     node="GATEWAY", **kw)
    # Messages as python-can objects up front: the benchmark is the bus, not Message creation.
    plan: dict[str, list[tuple[float, can.BusABC, can.Message]]] = defaultdict(list)
    for k in range(len(traffic)):
        bus_name = traffic.bus_names[traffic.bus[k]]
        can_id = int(traffic.ids[k]) & 0x1FFFFFFF
        node = sender_of.get((bus_name, can_id), "GW")
        if (bus_name, node) not in senders:
            # an ECU listens to few ids (here: functional diagnostic requests), filtered on arrival
            senders[(bus_name, node)] = can.Bus(interface="hilbus", channel=f"bench-{bus_name}", node=node,
                                                can_filters=[{"can_id": 0x7DF, "can_mask": 0x7FF, "extended": False}])
        fd = bool(traffic.fd[k])
        msg = can.Message(arbitration_id=can_id, is_extended_id=bool(traffic.ids[k] & 0x80000000) or can_id > 0x7FF,
                          data=traffic.data[k, : traffic.lengths[k]].tobytes(), is_fd=fd, bitrate_switch=fd)
        plan[bus_name].append((float(traffic.timestamps[k]), senders[(bus_name, node)], msg))

    def replay(items: list[tuple[float, can.BusABC, can.Message]], index: int) -> None:
        _, bus, msg = items[index]
        bus.send(msg, timeout=0)
        if index + 1 < len(items):
            clock.call_at(items[index + 1][0], replay, items, index + 1)

    for items in plan.values():
        clock.call_at(items[0][0], replay, items, 0)
    received = dict.fromkeys(gateways, 0)
    before = {name: bus.stats() for name, bus in gateways.items()}
    start = time.perf_counter()
    step_s = 0.01  # a gateway loop: read everything every 10 ms of bus time
    t = 0.0
    while t < sim_s:
        t = min(sim_s, t + step_s)
        clock.run_until(t)
        for name, bus in gateways.items():
            while bus.recv(0) is not None:
                received[name] += 1
    wall = time.perf_counter() - start
    total = sum(received.values())
    print(f"realistic Z10 load: {len(traffic)} frames generated for {sim_s:.0f} s ({gen_s:.1f} s to generate), "
          f"{len(senders)} sending nodes")
    for name, bus in gateways.items():
        stats = bus.stats()
        print(f"  {name:5s} {received[name]:7d} frames received, load {stats.load_since(before[name]):5.2f} %, "
              f"{stats.frames / sim_s:,.0f} frames/s simulated")
    print(f"  {total:,} frames in {wall:.2f} s wall: {total / wall:,.0f} frames/s wall, "
          f"{total / sim_s:,.0f} frames/s simulated, simulated/real {sim_s / wall:,.1f}x")
    for bus in [*senders.values(), *gateways.values()]:
        bus.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-load-s", type=float, default=5.0, help="simulated seconds at 100 %% load")
    parser.add_argument("--realistic-s", type=float, default=60.0, help="simulated seconds of Z10 traffic")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    full_load(args.full_load_s, fd=False)
    full_load(args.full_load_s, fd=True)
    realistic(args.realistic_s, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
