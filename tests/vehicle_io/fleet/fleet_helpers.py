"""A small synthetic fleet from the simulated van, and an independent reference decode.

The reference reads every file with python-can's own readers (not vehicle_io's) and
decodes every frame with cantools' ``decode_message``: nothing of the code under test.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path
from typing import Any

import can
from distributed.diagnostics.plugin import WorkerPlugin

SCENARIOS = Path(__file__).resolve().parents[3] / "hil" / "scenarios"
CHANNELS = ("pt", "body", "ads")
BUS_MAP = {"can0": "pt", "can1": "body", "can2": "ads"}


def record_scenario(name: str, seed: int, duration_s: float, event_at_s: float, speed_mps: float) -> list[Any]:
    """Frames of a shortened hil scenario (rig + gateway + control loop), GW frames included."""
    import hil.rig as rig_module
    from hil.scenario.model import load_scenario
    from hil.scenario.runner import run_scenario

    recorders: list[Any] = []
    original = rig_module.Rig

    class RecordingRig(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            recorders.append(self.record())

    sc = load_scenario(SCENARIOS / f"{name}.toml")
    adc = dict(sc.adc)
    adc["speed_mps"] = [[0, 0], [1.5, 0], [event_at_s - 1.0, speed_mps], [duration_s, speed_mps]]
    if "estop_at_s" in adc:
        adc["estop_at_s"] = event_at_s
    sc = dataclasses.replace(sc, duration_s=duration_s, adc=adc, expectations=[],
                             actions=[dataclasses.replace(a, t=event_at_s) for a in sc.actions])
    rig_module.Rig = RecordingRig
    try:
        run_scenario(sc, seed=seed)
    finally:
        rig_module.Rig = original
    return recorders[0].frames


def record_rig(seed: int, duration_s: float) -> list[Any]:
    """Frames of the bare rig (no gateway: the van stands, the ECUs talk)."""
    from hil.rig import Rig

    with Rig(seed=seed, clock="sim") as rig:
        rec = rig.record()
        rig.run_for(duration_s)
        rec.stop()
        return list(rec.frames)


def to_messages(frames: list[Any], t0_s: float) -> list[can.Message]:
    out = []
    for f in frames:
        if f.is_error_frame:
            continue
        out.append(can.Message(timestamp=t0_s + f.t_ps / 1e12, arbitration_id=f.arbitration_id,
                               is_extended_id=f.arbitration_id > 0x7FF, is_fd=f.is_fd, bitrate_switch=f.is_fd,
                               data=f.data, channel=f.bus, check=False))
    return out


def write_log(path: Path, messages: list[can.Message]) -> None:
    from vehicle_io.logfmt import open_writer

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = open_writer(path, channels=CHANNELS)
    try:
        for m in messages:
            writer.on_message_received(m)
    finally:
        writer.stop()


def reference_decode(path: Path, db: Any) -> tuple[dict[str, list[tuple[float, str, dict[str, float]]]], int]:
    """``{message: [(timestamp, bus, signals)]}`` of a file read with python-can's readers and
    decoded with cantools; and the number of records read before the reader stopped."""
    from vehicle_io.dbc import split_by_bus

    per_bus = split_by_bus(db)
    out: dict[str, list[tuple[float, str, dict[str, float]]]] = {}
    count = 0
    name = path.name.lower()
    if name.endswith(".log.gz"):
        import gzip

        reader: Any = can.io.CanutilsLogReader(gzip.open(path, "rt"))
    else:
        reader = can.LogReader(path)
    try:
        for msg in reader:
            count += 1
            channel = msg.channel if isinstance(msg.channel, str) else f"can{msg.channel}"
            bus = BUS_MAP.get(channel, channel)
            sub = per_bus[bus]
            try:
                message = sub.get_message_by_frame_id(msg.arbitration_id)
            except KeyError:
                continue
            if len(msg.data) < message.length:
                continue
            values = sub.decode_message(msg.arbitration_id, bytes(msg.data), decode_choices=False)
            out.setdefault(message.name, []).append((float(msg.timestamp), bus, {k: float(v) for k, v in values.items()}))
    except Exception:  # noqa: BLE001 - a truncated file: what came before is the reference
        pass
    return out, count


class KillOnce(WorkerPlugin):
    """Test-only: the first worker to write a part of chunk ``key`` kills itself right after,
    mid-chunk (its marker never written); ``flag`` records that it happened (and its pid)."""

    def __init__(self, flag: str, key: str) -> None:
        self.flag = flag
        self.key = key

    def setup(self, worker: Any) -> None:
        import vehicle_io.fleet.worker as w

        original = w._write_part
        flag, key = self.flag, self.key

        def write_part(path: Path, table: Any) -> None:
            original(path, table)
            if key in path.name:
                try:
                    fd = os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    return
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)

        w._write_part = write_part


def reference_by_van(fleet: dict[str, Any]) -> dict[str, dict[str, list[tuple[float, str, dict[str, float]]]]]:
    """The fixture's reference decoding per van (folder name) and message, in time order."""
    out: dict[str, dict[str, list[tuple[float, str, dict[str, float]]]]] = {}
    for path, (per_message, _records) in fleet["reference"].items():
        van = Path(path).parent.name
        for name, rows in per_message.items():
            out.setdefault(van, {}).setdefault(name, []).extend(rows)
    for messages in out.values():
        for rows in messages.values():
            rows.sort(key=lambda r: r[0])
    return out


def candump_reference(lines: list[str]) -> tuple[list[tuple[int, bytes, float, str, int]], list[int], int]:
    """What vehicle_io.candump.parse_line makes of each line: frames (id with CAN_EFF_FLAG, data,
    timestamp (NaN when none), channel, line number), bad line numbers, skipped remote and
    error frames. The line-by-line reference for the array parsers."""
    from vehicle_io.candump import CAN_EFF_FLAG, LogLineError, parse_line

    frames, bad, skipped = [], [], 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            f = parse_line(line)
        except LogLineError:
            bad.append(number)
            continue
        if f.is_remote_frame or f.is_error_frame:
            skipped += 1
            continue
        ts = f.timestamp if f.timestamp is not None else float("nan")
        frames.append((f.arbitration_id | (CAN_EFF_FLAG if f.is_extended_id else 0), f.data, ts, f.channel, number))
    return frames, bad, skipped
