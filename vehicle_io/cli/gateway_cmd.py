"""``z10 gateway``: run the live gateway on buses (or a replayed log) and report what it saw.

Two sources:

* ``--replay [LOG]``: a candump log (default: the bundled 10 s sample drive of the simulated
  van). With ``--speed 0`` (default) the frames go through the gateway's checks, decoder and
  store in batches on the log's own clock: deterministic, as fast as the CPU allows, and
  timeouts judged in log time. With ``--speed X > 0`` they are played onto in-process
  python-can virtual buses, one per channel of the log, at X times real time, and the
  gateway receives them exactly as from a live bus (Notifier, wall clock).
* live buses (``--bench``, ``-i/-c``, default the simulated van of ``z10 sim``): listen-only
  unless ``--arm``; runs for ``--duration`` seconds or until Ctrl-C. With ``--control`` the
  control loop runs too (``--period-ms``, 10 ms default), at a fixed period in real time: it
  turns the autonomy computer's requests into the gateway's commands through the interlocks
  and sends them on the armed buses (the simulator's buses are armed; a van's only with
  ``--arm NAME``; a control loop on unarmed buses sends nothing and says so). The report then
  adds the interlocks active at the end, every interlock event and the period jitter.

Either way it ends with the signal table, the per-message validity and every counter.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from vehicle_io.cli.busopts import add_bus_arguments, add_dbc_argument, bus_specs

HELP = "run the live gateway on buses or a replayed log and report signals, validity and counters"

SAMPLE_LOG = Path(__file__).resolve().parents[1] / "data" / "z10_sample_drive.log.gz"

#: What the report shows by default: the signals a person checks first on a Z10.
DEFAULT_SIGNALS = (
    "VCU_VehicleSpeed", "VCU_Gear", "VCU_DriveMode", "VCU_Ready", "VCU_EpbState",
    "MCU_MotorSpeed", "MCU_TorqueActual", "BMS_SOC", "BMS_PackVoltage", "BMS_PackCurrent",
    "BMS_CellVoltageMin", "BMS_CellVoltageMax", "BMS_CellTempMax", "BMS_IsolationResistance",
    "BMS_DischargePowerLimit", "BMS_ChargePowerLimit", "CBC_AllDoorsClosed", "CBC_AllLocked",
    "CBC_TotalPayload", "ADC_TargetSpeed", "ADC_EStop", "BMS_CellVoltage001", "BMS_CellVoltage096",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--replay", nargs="?", const=str(SAMPLE_LOG), metavar="LOG",
                        help="replay a candump log (.log, .log.gz) through the gateway "
                             "(no LOG: the bundled sample drive)")
    parser.add_argument("--speed", type=float, default=0.0,
                        help="replay speed factor: 1 real time, 0 as fast as possible (default)")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds to run on live buses (default: until Ctrl-C)")
    add_dbc_argument(parser)
    parser.add_argument("--signal", action="append", dest="signals", metavar="NAME",
                        help="signal to show (repeatable; default: a Z10 overview; 'all' for every signal)")
    parser.add_argument("--record", metavar="FILE", help="record raw traffic (.log, .asc or .blf)")
    parser.add_argument("--route", action="append", default=[], metavar="SRC:DST:ID[/MASK][@HZ]",
                        help="forward frames between buses as cangw does (hex id and mask)")
    parser.add_argument("--control", action="store_true",
                        help="also run the control loop (interlocks, commands on the armed buses)")
    parser.add_argument("--period-ms", type=float, default=10.0,
                        help="control loop period in ms (0.5..100, default 10)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_bus_arguments(parser)


def parse_route(text: str) -> Any:
    """``pt:body:0C0/7FF@10`` -> RouteRule(src="pt", dst="body", can_id=0x0C0, mask=0x7FF, 10 Hz)."""
    from vehicle_io.gateway import RouteRule

    try:
        src, dst, rest = text.split(":", 2)
        rate = None
        if "@" in rest:
            rest, rate_text = rest.split("@", 1)
            rate = float(rate_text)
        can_id_text, _, mask_text = rest.partition("/")
        can_id = int(can_id_text, 16)
        mask = int(mask_text, 16) if mask_text else 0x1FFFFFFF
    except ValueError as err:
        raise ValueError(f"--route: expected SRC:DST:ID[/MASK][@HZ] (hex id), but got {text!r}") from err
    return RouteRule(src=src, dst=dst, can_id=can_id, mask=mask, rate_limit_hz=rate, name=text)


def _read_log(path: str) -> tuple[list[Any], int, list[str]]:
    """(frames, bad line count, first few bad-line reasons) of a candump log, .gz allowed."""
    import gzip

    from vehicle_io.candump import LogLineError, parse_line

    opener = gzip.open if path.endswith(".gz") else open
    frames: list[Any] = []
    bad: list[str] = []
    n_bad = 0
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                frames.append(parse_line(line))
            except (LogLineError, OSError) as err:
                n_bad += 1
                if len(bad) < 5:
                    bad.append(f"{path}:{number}: {err}")
    return frames, n_bad, bad


def _replay_batched(args: argparse.Namespace, db: Any, frames: list[Any]) -> Any:
    """Feed the log through the gateway in slices of at most 5 ms of log time, on log time."""
    import numpy as np

    from vehicle_io.candump import CAN_EFF_FLAG, CAN_ERR_FLAG, CAN_RTR_FLAG
    from vehicle_io.gateway import Gateway

    if args.route or args.record:
        raise ValueError("--route and --record need a paced replay (--speed > 0) or a live bus")
    stamped = sorted((f for f in frames if f.timestamp is not None), key=lambda f: f.timestamp)
    now = [stamped[0].timestamp if stamped else 0.0]
    gateway = Gateway({}, db, clock=lambda: now[0], start=False)
    n = len(stamped)
    ids = np.empty(n, np.uint32)
    data = np.zeros((n, 64), np.uint8)
    lengths = np.empty(n, np.int64)
    times = np.empty(n, np.float64)
    for i, f in enumerate(stamped):
        flags = ((CAN_EFF_FLAG if f.is_extended_id else 0) | (CAN_RTR_FLAG if f.is_remote_frame else 0)
                 | (CAN_ERR_FLAG if f.is_error_frame else 0))
        ids[i] = f.arbitration_id | flags
        data[i, : len(f.data)] = np.frombuffer(f.data, np.uint8)
        lengths[i] = len(f.data)
        times[i] = f.timestamp
    channels = np.array([f.channel for f in stamped], dtype=object)
    start = 0
    while start < n:
        stop = int(np.searchsorted(times, times[start] + 0.005, side="left"))
        stop = max(stop, start + 1)
        for channel in dict.fromkeys(channels[start:stop]):
            rows = np.flatnonzero(channels[start:stop] == channel) + start
            gateway.process_batch(channel, ids[rows], data[rows], lengths[rows], times[rows])
        now[0] = float(times[stop - 1])
        gateway.check_deadlines(now[0])
        start = stop
    gateway.shutdown()
    return gateway


def _replay(args: argparse.Namespace, db: Any, routes: list[Any]) -> tuple[Any, dict[str, Any]]:
    import can

    from vehicle_io.gateway import Gateway, TransmitGate

    frames, n_bad, bad = _read_log(args.replay)
    for reason in bad:
        print(f"warning: {reason}", file=sys.stderr)
    if args.speed <= 0:
        start_wall = time.monotonic()
        gateway = _replay_batched(args, db, frames)
        return _report(gateway, args, _last_rx(gateway)), {"replay": args.replay, "mode": "batched on log time",
                         "frames_played": len(frames), "unreadable_lines": n_bad,
                         "channels": sorted({f.channel for f in frames}),
                         "wall_s": round(time.monotonic() - start_wall, 3)}
    channels = sorted({f.channel for f in frames})
    tag = f"z10-replay-{time.monotonic_ns()}"
    # Two endpoints per channel of an in-process virtual bus: one plays, the gateway listens.
    players = {ch: can.Bus(interface="virtual", channel=f"{tag}-{ch}", receive_own_messages=False) for ch in channels}
    taps = {ch: can.Bus(interface="virtual", channel=f"{tag}-{ch}", receive_own_messages=False) for ch in channels}
    gate = TransmitGate()
    for bus in args.arm:
        gate.arm(bus)
    gateway = Gateway(taps, db, transmit_gate=gate, routes=routes, record_path=args.record)
    start_wall = time.monotonic()
    first_ts = next((f.timestamp for f in frames if f.timestamp is not None), 0.0)
    sent = 0
    try:
        for frame in frames:
            if frame.timestamp is not None:
                due = start_wall + (frame.timestamp - first_ts) / args.speed
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            players[frame.channel].send(can.Message(
                timestamp=frame.timestamp or 0.0, arbitration_id=frame.arbitration_id,
                is_extended_id=frame.is_extended_id, data=frame.data, is_fd=frame.is_fd,
                bitrate_switch=frame.bitrate_switch, is_remote_frame=frame.is_remote_frame,
                is_error_frame=frame.is_error_frame, dlc=frame.dlc, channel=frame.channel,
            ))
            sent += 1
        _wait_until_seen(gateway, sent)
        report = _report(gateway, args, _last_rx(gateway))
    finally:
        gateway.shutdown()
        for bus in (*players.values(), *taps.values()):
            bus.shutdown()
    report["counters"], report["summary"] = gateway.counters(), gateway.summary()
    source = {"replay": args.replay, "mode": f"paced x{args.speed:g} on virtual buses", "frames_played": sent, "unreadable_lines": n_bad,
              "channels": channels, "wall_s": round(time.monotonic() - start_wall, 3)}
    return report, source


def _wait_until_seen(gateway: Any, sent: int, timeout_s: float = 30.0) -> None:
    """Let the gateway take in every frame played (virtual buses are lossless, but async)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        c = gateway.counters()
        if c["seen"] + sum(c["listener_errors"].values()) >= sent and c["pending"] == 0:
            return
        time.sleep(0.01)


def _live(args: argparse.Namespace, db: Any, routes: list[Any]) -> tuple[Any, dict[str, Any]]:
    from vehicle_io.bench import close_buses, open_buses
    from vehicle_io.gateway import Gateway, TransmitGate

    specs = bus_specs(args)
    unknown = sorted(set(args.arm) - set(specs))
    if unknown:
        raise ValueError(f"--arm: expected bus names among {sorted(specs)}, but got {unknown}")
    armed = sorted(set(args.arm) | {n for n, s in specs.items() if s.is_simulated and args.control})
    buses = open_buses(specs)
    if args.control:
        import can

        for name in armed:
            if not specs[name].is_simulated:
                buses[name].state = can.BusState.ACTIVE  # armed by name: leave listen-only
    gate = TransmitGate()
    for bus in args.arm:
        gate.arm(bus)
    start = time.monotonic()
    control: dict[str, Any] | None = None
    try:
        if args.control:
            from vehicle_io.control.loop import control_allowlist

            gate = TransmitGate(control_allowlist(db), armed=armed)
        gateway = Gateway(buses, db, transmit_gate=gate, routes=routes, record_path=args.record)
        try:
            if args.control:
                control = _run_control(gateway, args, armed)
            else:
                _watch(gateway, args.duration)
            # Judged while the buses still run: after the stop every message would time out.
            report = _report(gateway, args, gateway.clock())
        finally:
            gateway.shutdown()
    finally:
        close_buses(buses.values())
    if control is not None:
        report["control"] = control
    # The final count, frames drained at the stop included.
    report["counters"], report["summary"] = gateway.counters(), gateway.summary()
    source = {"buses": {n: f"{s.interface}:{s.channel}" for n, s in specs.items()},
              "wall_s": round(time.monotonic() - start, 3)}
    return report, source


def _run_control(gateway: Any, args: argparse.Namespace, armed: list[str]) -> dict[str, Any]:
    """The control loop in real time on the gateway until --duration / Ctrl-C; its summary."""
    from vehicle_io.control.loop import ControlLoop

    loop = ControlLoop(gateway, period_s=args.period_ms / 1000.0)
    t0 = gateway.clock()
    if not armed:
        print("z10 gateway: --control on unarmed buses: the loop runs, nothing is sent (arm with --arm NAME)",
              file=sys.stderr)
    started = time.monotonic()
    last = [started]

    def should_stop() -> bool:
        now = time.monotonic()
        if now - last[0] >= 1.0:
            last[0] = now
            active = ", ".join(loop.active_interlocks()) or "none"
            print(f"\r{now - started:7.1f} s  {loop.counters['ticks']} ticks, {loop.counters['sent']} sent, "
                  f"interlocks: {active}", end="", file=sys.stderr, flush=True)
        return False

    try:
        stats = loop.run(args.duration, should_stop=should_stop)
    except KeyboardInterrupt:
        stats = None
    print(file=sys.stderr)
    out: dict[str, Any] = {
        "period_ms": args.period_ms, "armed": armed, "counters": dict(loop.counters),
        "active_interlocks": loop.active_interlocks(),
        "events": [{**ev, "t": round(ev["t"] - t0, 4)} for ev in loop.event_dicts()],  # s since start
        "last_error": loop.last_error,
    }
    if stats is not None:
        out["jitter"] = {k: round(v, 1) for k, v in stats.percentiles().items()}
        out["overruns"] = stats.overruns
        out["runner"] = stats.summary()
    return out


def _watch(gateway: Any, duration_s: float | None) -> None:
    start = time.monotonic()
    last_seen = 0
    try:
        while duration_s is None or time.monotonic() - start < duration_s:
            time.sleep(1.0 if duration_s is None else min(1.0, max(0.0, duration_s - (time.monotonic() - start))))
            c = gateway.counters()
            rate = c["seen"] - last_seen
            last_seen = c["seen"]
            print(f"\r{time.monotonic() - start:7.1f} s  {c['seen']} frames ({rate}/s), "
                  f"{c['decoded']} decoded, {sum(c['rejected'].values())} rejected, "
                  f"{c['stale_now']} stale", end="", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    print(file=sys.stderr)


def _signal_rows(gateway: Any, names: list[str], now_s: float) -> list[dict[str, Any]]:
    rows = []
    layout = gateway.layout
    for name in names:
        if name not in layout:
            continue
        reading = gateway.store.get(name, now_s)
        signal, unit = _signal_of(gateway.db, name)
        value: Any = reading.value
        if value == value and signal is not None and signal.choices:
            value = str(signal.choices.get(int(value), value))
        rows.append({
            "signal": name, "value": None if value != value else value, "unit": unit,
            "age_s": None if reading.timestamp_s != reading.timestamp_s else round(now_s - reading.timestamp_s, 4),
            "valid": reading.valid,
        })
    return rows


def _signal_of(db: Any, name: str) -> tuple[Any, str]:
    short = name.split(".")[-1].split(":")[-1]
    for message in db.messages:
        for signal in message.signals:
            if signal.name == short:
                return signal, signal.unit or ""
    return None, ""


def run(args: argparse.Namespace) -> int:
    import gc

    from vehicle_io import load_database

    db = load_database(args.dbc)
    routes = [parse_route(text) for text in args.route]
    gc.collect()
    gc.freeze()  # start-up objects never need collecting; keeps GC pauses out of the receive path
    if args.replay is not None:
        report, source = _replay(args, db, routes)
    else:
        report, source = _live(args, db, routes)
    rows, messages = report["signals"], report["messages"]
    if args.json:
        print(json.dumps({"source": source, **report}, indent=2))
        return 0
    print(f"source: {json.dumps(source)}")
    print()
    print(f"{'signal':<28} {'value':>14} {'unit':<8} {'age_s':>8}  valid")
    for row in rows:
        value = row["value"]
        text = "-" if value is None else (value if isinstance(value, str) else f"{value:.6g}")
        age = "-" if row["age_s"] is None else f"{row['age_s']:.3f}"
        print(f"{row['signal']:<28} {text:>14} {row['unit']:<8} {age:>8}  {'yes' if row['valid'] else 'NO'}")
    print()
    troubled = [m for m in messages if m["rejected"] or not m["valid"]]
    for m in troubled:
        reasons = ", ".join(f"{k} {v}" for k, v in m["rejected"].items())
        print(f"message {m['message']} ({m['bus']}): {m['frames']} frames, {m['decoded']} decoded"
              f"{'; rejected: ' + reasons if reasons else ''}; e2e {m['e2e']}; "
              f"{'valid' if m['valid'] else 'NOT valid'}{', stale' if m['stale'] else ''}")
    print(report["summary"])
    control = report.get("control")
    if control is not None:
        print()
        print(f"control loop ({control['period_ms']:g} ms, armed: {', '.join(control['armed']) or 'none'}): "
              f"{control['counters']['ticks']} ticks, {control['counters']['sent']} frames sent, "
              f"{control['counters']['blocked']} blocked; {control.get('runner', 'interrupted')}")
        print(f"interlocks active at the end: {', '.join(control['active_interlocks']) or 'none'}")
        for ev in control["events"]:
            state = "set" if ev.get("active", True) else "cleared"
            print(f"  {ev['t']:9.3f} s  {ev['code']:<24} {state:<8} {ev.get('action', '')}")
    return 0


def _last_rx(gateway: Any) -> float:
    last_rx = [float(t) for t in gateway.store.last_rx_s if t == t]
    return max(last_rx) if last_rx else gateway.clock()


def _report(gateway: Any, args: argparse.Namespace, now_s: float) -> dict[str, Any]:
    """Signals, per-message validity and counters as they stand at ``now_s``."""
    names = args.signals or list(DEFAULT_SIGNALS)
    if names == ["all"]:
        names = [f"{m.key}.{s}" for m in gateway.layout.messages for s in m.signals]
    rows = _signal_rows(gateway, names, now_s)
    messages = []
    for info in gateway.layout.messages:
        status = gateway.store.message_status(info.key, now_s)
        if status.frames:
            messages.append({"message": status.name, "bus": status.bus, "frames": status.frames,
                             "decoded": status.decoded, "valid": status.valid, "stale": status.stale,
                             "e2e": status.e2e_state.name if status.e2e_state is not None else None,
                             "rejected": status.rejected})
    return {"signals": rows, "messages": messages, "counters": gateway.counters(), "summary": gateway.summary()}
