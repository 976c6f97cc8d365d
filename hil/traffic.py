"""Synthetic Z10 rest-bus traffic: every cyclic DBC message at its cycle time, E2E filled in.

A kinematic drive (stop, pull away, cruise at 30 km/h, brake to a stop) sets the physical
values that matter (speeds, torque, pack current and voltage, cell voltages with a seeded
spread); every other signal sits at a plausible resting value inside its DBC range. The
result is arrays in the hot-path layout, so benchmarks, tests and the bundled sample log
share one source of realistic frames. Deterministic for a given seed.

This is not the plant model (that is hil's van simulation): nothing here reacts to commands.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vehicle_io.codec import BatchEncoder
from vehicle_io.dbc import cycle_time_s
from vehicle_io.e2e import E2ESpec, protect_batch

WHEEL_RADIUS_M = 0.36
GEAR_RATIO = 9.7
CURB_MASS_KG = 2_200.0
N_CELLS = 96

#: Signals that follow the drive, by DBC name; each maps the drive state to a value.
_DRIVE_SIGNALS: dict[str, str] = {
    "VCU_VehicleSpeed": "speed_kph",
    "GW_VehicleSpeed": "speed_mps",
    "ADC_TargetSpeed": "target_mps",
    "ADC_TargetAccel": "accel_mps2",
    "GW_VehicleAccel": "accel_mps2",
    "BRK_LongAccel": "accel_mps2",
    "BRK_WheelSpeedFL": "speed_kph",
    "BRK_WheelSpeedFR": "speed_kph",
    "BRK_WheelSpeedRL": "speed_kph",
    "BRK_WheelSpeedRR": "speed_kph",
    "MCU_MotorSpeed": "motor_rpm",
    "MCU_TorqueActual": "torque_nm",
    "GW_TorqueRequest": "torque_nm",
    "BRK_Pressure": "brake_bar",
    "GW_BrakePressureRequest": "brake_bar",
    "VCU_Standstill": "standstill",
    "BMS_PackCurrent": "pack_current_a",
    "MCU_DcCurrent": "pack_current_a",
    "BMS_PackVoltage": "pack_voltage_v",
    "MCU_DcVoltage": "pack_voltage_v",
    "BMS_SOC": "soc_pct",
    "GW_VehicleSOC": "soc_pct",
    "ADC_Uptime": "uptime_s",
    "GW_Uptime": "uptime_s",
}

#: Resting values of state signals (choice values or physical values), by DBC name.
_RESTING: dict[str, float] = {
    "VCU_Ready": 1, "VCU_DriveMode": 1, "VCU_Gear": 3, "VCU_EpbState": 0, "VCU_DriverPresent": 0,
    "GW_VehicleReady": 1, "GW_VehicleDriveMode": 1, "GW_VehicleGear": 3, "GW_CargoDoorsClosed": 1,
    "GW_CargoAllLocked": 1, "GW_VehiclePayload": 800, "GW_VehicleDischargeLimit": 150,
    "GW_VehicleChargeLimit": 60, "GW_State": 3, "GW_ControlAllowed": 1,
    "ADC_ControlRequest": 1, "ADC_ModeRequest": 1, "ADC_GearRequest": 3, "ADC_EpbRequest": 2,
    "ADC_State": 2, "ADC_LocalizationValid": 1, "ADC_PerceptionValid": 1, "ADC_CpuLoad": 41,
    "ADC_Temperature": 52, "ADC_SteerRateLimit": 200, "GW_SteerRateLimit": 200,
    "GW_DriveEnable": 1, "GW_BrakeEnable": 1, "GW_SteerEnable": 1, "GW_GearRequest": 3,
    "GW_DriveModeRequest": 1, "GW_SpeedLimit": 50, "MCU_TorqueEnabled": 1,
    "MCU_InverterTemp": 45, "MCU_MotorTemp": 58, "MCU_TorqueLimitMotoring": 320,
    "MCU_TorqueLimitRegen": 150, "BMS_SOH": 97, "BMS_DischargePowerLimit": 150,
    "BMS_ChargePowerLimit": 60, "BMS_DischargeCurrentLimit": 420, "BMS_ChargeCurrentLimit": 170,
    "BMS_HvilClosed": 1, "BMS_MainPosState": 1, "BMS_MainNegState": 1, "BMS_PrechargeState": 3,
    "BMS_IsolationResistance": 2500, "BRK_WheelSpeedsValid": 1, "BRK_ControlActive": 1,
    "EPS_ControlActive": 1, "CBC_AllDoorsClosed": 1, "CBC_AllLocked": 1,
    "CBC_TotalPayload": 800, "CBC_AmbientTemp": 14,
}
for _i in range(1, 7):
    _RESTING[f"CBC_LockState{_i}"] = 1
    _RESTING[f"CBC_Occupancy{_i}"] = 1 if _i <= 4 else 0
    _RESTING[f"CBC_Weight{_i}"] = 200 if _i <= 4 else 0
    _RESTING[f"CBC_Temp{_i}"] = 16


@dataclass
class Traffic:
    """Frames in the hot-path layout, sorted by time; ``bus`` indexes ``bus_names``."""

    ids: npt.NDArray[np.uint32]
    data: npt.NDArray[np.uint8]
    lengths: npt.NDArray[np.uint8]
    timestamps: npt.NDArray[np.float64]
    bus: npt.NDArray[np.uint8]
    bus_names: list[str]
    fd: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.ids)

    def candump_lines(self) -> list[str]:
        """The frames as candump ``-L`` log lines (CAN FD frames with BRS)."""
        lines = []
        for i in range(len(self)):
            payload = self.data[i, : self.lengths[i]].tobytes().hex().upper()
            can_id = int(self.ids[i])
            id_text = f"{can_id & 0x1FFFFFFF:08X}" if can_id & 0x80000000 else f"{can_id:03X}"
            sep = "##1" if self.fd[i] else "#"
            lines.append(f"({self.timestamps[i]:.6f}) {self.bus_names[self.bus[i]]} {id_text}{sep}{payload}")
        return lines


def drive_state(t_s: npt.NDArray[np.float64], payload_kg: float = 800.0) -> dict[str, np.ndarray]:
    """The drive at times ``t_s``: a 60 s loop of stop, accelerate, cruise, brake."""
    phase = np.mod(t_s, 60.0)
    accel_mps2 = np.select(
        [phase < 4.0, phase < 11.0, phase < 40.0, phase < 48.0],
        [0.0, 8.33 / 7.0, 0.0, -8.33 / 8.0],
        0.0,
    )
    speed_mps = np.select(
        [phase < 4.0, phase < 11.0, phase < 40.0, phase < 48.0],
        [0.0, (phase - 4.0) * 8.33 / 7.0, 8.33, 8.33 - (phase - 40.0) * 8.33 / 8.0],
        0.0,
    )
    target_mps = np.where((phase >= 4.0) & (phase < 40.0), 8.33, 0.0)
    mass_kg = CURB_MASS_KG + payload_kg
    resist_n = mass_kg * 9.81 * 0.012 * (speed_mps > 0.05) + 0.5 * 1.2 * 0.9 * 4.2 * speed_mps**2
    force_n = mass_kg * accel_mps2 + resist_n
    drive_force_n = np.where(force_n > 0, force_n, np.maximum(force_n, -2500.0))
    torque_nm = drive_force_n * WHEEL_RADIUS_M / GEAR_RATIO
    brake_bar = np.where(force_n < -2500.0, (-2500.0 - force_n) / 300.0, 0.0)
    brake_bar = np.where(speed_mps < 0.05, 12.0, brake_bar)  # held at standstill
    motor_rpm = speed_mps / WHEEL_RADIUS_M * GEAR_RATIO * 60.0 / (2.0 * math.pi)
    power_w = torque_nm * motor_rpm * 2.0 * math.pi / 60.0
    power_w = np.where(power_w > 0, power_w / 0.92, power_w * 0.92) + 900.0  # losses + 12 V load
    soc_pct = 78.0 - t_s * 0.0004
    ocv_v = N_CELLS * (3.45 + 0.0075 * soc_pct)
    pack_current_a = power_w / ocv_v
    pack_voltage_v = ocv_v - pack_current_a * 0.085
    return {
        "speed_mps": speed_mps, "speed_kph": speed_mps * 3.6, "target_mps": target_mps,
        "accel_mps2": accel_mps2, "torque_nm": torque_nm, "brake_bar": brake_bar,
        "motor_rpm": motor_rpm, "standstill": (speed_mps < 0.05).astype(float),
        "pack_current_a": pack_current_a, "pack_voltage_v": pack_voltage_v, "soc_pct": soc_pct,
        "uptime_s": 3600.0 + t_s,
    }


def _resting_value(signal: Any) -> float:
    if signal.name in _RESTING:
        return float(_RESTING[signal.name])
    lo = signal.minimum if signal.minimum is not None else -math.inf
    hi = signal.maximum if signal.maximum is not None else math.inf
    value = 0.0
    if signal.choices and 0 not in signal.choices:
        value = float(min(signal.choices))
    return float(min(max(value, lo), hi))


def _clip_to_range(signal: Any, values: np.ndarray) -> np.ndarray:
    lo = signal.minimum if signal.minimum is not None else -np.inf
    hi = signal.maximum if signal.maximum is not None else np.inf
    return np.clip(values, lo, hi)


def _mux_pages(message: Any) -> dict[int, list[Any]]:
    pages: dict[int, list[Any]] = {}
    for signal in message.signals:
        for mux_id in signal.multiplexer_ids or ():
            pages.setdefault(int(mux_id), []).append(signal)
    return pages


def generate(
    db: Any,
    duration_s: float,
    *,
    seed: int = 0,
    start_s: float = 0.0,
    payload_kg: float = 800.0,
    buses: Mapping[str, str] | None = None,
) -> Traffic:
    """Every cyclic message of ``db`` over ``[start_s, start_s + duration_s)``.

    ``buses`` renames bus names (e.g. ``{"pt": "can0"}``) in the output's channel list.
    """
    rng = np.random.default_rng(seed)
    encoder = BatchEncoder(db)
    cell_offsets_v = rng.normal(0.0, 0.004, size=N_CELLS)
    sensor_offsets_c = rng.normal(0.0, 0.8, size=64)
    bus_names: list[str] = []
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, int, bool, int]] = []

    for message in sorted(db.messages, key=lambda m: (m.frame_id, m.name)):
        period_s = cycle_time_s(message)
        if not period_s:
            continue
        bus = (buses or {}).get(message.bus_name, message.bus_name) or "can0"
        if bus not in bus_names:
            bus_names.append(bus)
        phase_s = float(rng.uniform(0.0, period_s))
        first = math.ceil((start_s - phase_s) / period_s)
        times = phase_s + period_s * np.arange(first, first + int(duration_s / period_s) + 1)
        times = times[(times >= start_s) & (times < start_s + duration_s)]
        if times.size == 0:
            continue
        times = np.maximum(times + rng.normal(0.0, 20e-6, size=times.size), start_s)  # sender jitter
        state = drive_state(times - start_s, payload_kg)
        spec = E2ESpec.from_message(message)
        pages = _mux_pages(message) if message.is_multiplexed() else {None: message.signals}
        for page_index, (page, page_signals) in enumerate(sorted(pages.items(), key=lambda kv: (kv[0] is None, kv[0]))):
            values: dict[str, np.ndarray] = {}
            for signal in message.signals:
                if signal.is_multiplexer:
                    values[signal.name] = np.full(times.size, float(page))
                    continue
                if page is not None and signal not in page_signals:
                    continue
                if spec is not None and signal.name in (spec.counter_signal, spec.crc_signal):
                    values[signal.name] = np.zeros(times.size)
                    continue
                values[signal.name] = _clip_to_range(signal, _signal_values(signal, state, times,
                                                                           cell_offsets_v, sensor_offsets_c))
            data = encoder.encode(message.name, values)
            if spec is not None:
                counters = (np.arange(times.size) + int(rng.integers(0, 15))) % 15
                protect_batch(spec, data, counters)
            page_times = times + page_index * 250e-6  # a burst of pages, back to back
            parts.append((page_times, data, np.full(times.size, message.frame_id), bus_names.index(bus),
                          bool(message.is_fd), message.length))

    n = sum(p[0].size for p in parts)
    ids = np.empty(n, np.uint32)
    data = np.zeros((n, 64), np.uint8)
    lengths = np.empty(n, np.uint8)
    stamps = np.empty(n, np.float64)
    bus_idx = np.empty(n, np.uint8)
    fd = np.empty(n, np.bool_)
    pos = 0
    for times, frames, frame_ids, b, is_fd, length in parts:
        k = times.size
        ids[pos:pos + k] = frame_ids
        data[pos:pos + k, :length] = frames
        lengths[pos:pos + k] = length
        stamps[pos:pos + k] = times
        bus_idx[pos:pos + k] = b
        fd[pos:pos + k] = is_fd
        pos += k
    order = np.argsort(stamps, kind="stable")
    return Traffic(ids[order], data[order], lengths[order], stamps[order], bus_idx[order], bus_names, fd[order])


def _signal_values(signal: Any, state: Mapping[str, np.ndarray], times: np.ndarray,
                   cell_offsets_v: np.ndarray, sensor_offsets_c: np.ndarray) -> np.ndarray:
    name = signal.name
    if name in _DRIVE_SIGNALS:
        return np.asarray(state[_DRIVE_SIGNALS[name]], dtype=float)
    mean_cell_v = state["pack_voltage_v"] / N_CELLS
    if name.startswith("BMS_CellVoltage") and name[len("BMS_CellVoltage"):].isdigit():
        index = int(name[len("BMS_CellVoltage"):]) - 1
        return mean_cell_v + cell_offsets_v[index % N_CELLS]
    if name.startswith("BMS_CellTemp") and name[len("BMS_CellTemp"):].isdigit():
        index = int(name[len("BMS_CellTemp"):]) - 1
        return 27.0 + 0.002 * (times - times[0]) + sensor_offsets_c[index % sensor_offsets_c.size]
    stats = {
        "BMS_CellVoltageMax": mean_cell_v + cell_offsets_v.max(),
        "BMS_CellVoltageMin": mean_cell_v + cell_offsets_v.min(),
        "BMS_CellVoltageMaxIndex": np.full(times.size, float(np.argmax(cell_offsets_v) + 1)),
        "BMS_CellVoltageMinIndex": np.full(times.size, float(np.argmin(cell_offsets_v) + 1)),
        "BMS_CellTempMax": 27.0 + 0.002 * (times - times[0]) + sensor_offsets_c[:32].max(),
        "BMS_CellTempMin": 27.0 + 0.002 * (times - times[0]) + sensor_offsets_c[:32].min(),
        "BMS_CellTempAvg": 27.0 + 0.002 * (times - times[0]) + sensor_offsets_c[:32].mean(),
        "BMS_CellTempMaxIndex": np.full(times.size, float(np.argmax(sensor_offsets_c[:32]) + 1)),
        "BMS_CellTempMinIndex": np.full(times.size, float(np.argmin(sensor_offsets_c[:32]) + 1)),
    }
    if name in stats:
        return np.asarray(stats[name], dtype=float)
    return np.full(times.size, _resting_value(signal))
