"""The control loop wrapper: gateway snapshot -> input record -> kernel -> commands on the bus.

One :meth:`ControlLoop.tick`:

1. ``Gateway.store.snapshot(now)`` (arrays reused), then the input record is filled by
   fancy indexing with slot indices resolved once from the :class:`StoreLayout` by signal
   name, plus per-message validity (``ok_*`` = valid, ``to_*`` = stale or never received);
2. the numba step kernel (``_kernels.step``) mutates the state record and writes the output
   record; interlocks decide before any command is built;
3. interlock flag changes become events ``(t_s, code, action)`` in :attr:`ControlLoop.events`
   and bits / active fault codes in GW_Status;
4. due messages are encoded with :class:`~vehicle_io.codec.BatchEncoder` and sent through
   :meth:`Gateway.send` (allowlist, E2E counter and CRC) - only on buses the gateway's
   transmit gate has armed (default deny: nothing is even built for a listen-only bus).

Nothing in a tick raises: encode and transmit refusals are counted in :attr:`counters`
with the last error text. :meth:`run` is the real-time runner at a fixed period with an
injected clock and sleep, reporting period jitter p50/p99/max.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import can
import numpy as np
import numpy.typing as npt

from vehicle_io.control import layout as L
from vehicle_io.errors import TransmitBlocked, VehicleIoError

if TYPE_CHECKING:
    from cantools.database.can import Database

    from vehicle_io.gateway import Gateway, Snapshot, StoreLayout
    from vehicle_io.gateway.transmit import AllowedFrame

#: Messages the loop sends: name -> bus. Their DBC (id, length) is the transmit allowlist.
TX_MESSAGES: dict[str, str] = {
    "GW_DriveCommand": "pt",
    "GW_BrakeCommand": "pt",
    "GW_SteerCommand": "pt",
    "GW_CargoCommand": "body",
    "GW_Status": "ads",
    "GW_VehicleState": "ads",
}

#: Interlocks whose rising edge is a trip (black box dump, if configured).
TRIP_INTERLOCKS = frozenset({"adc_timeout", "adc_e2e", "estop", "bms_fault", "mcu_fault", "brk_fault",
                             "eps_fault", "pt_timeout", "pt_e2e", "plausibility", "hv_open"})

ESTOP_SOURCES = ("remote", "physical")

# Names and positions resolved once for frames(), which runs every tick.
_OUTPUT_NAMES: tuple[str, ...] = L.OUTPUT_DTYPE.names  # type: ignore[assignment]
_INPUT_NAMES: tuple[str, ...] = L.INPUT_DTYPE.names  # type: ignore[assignment]
_CARGO_KEYS = tuple((f"GW_CompartmentLockRequest{i}", f"lock_request{i}", f"GW_CompartmentDoorRelease{i}",
                     f"door_release{i}") for i in range(1, L.N_COMPARTMENTS + 1))
_STATUS_FLAGS = tuple((k, ilk.status_signal) for k, ilk in enumerate(L.INTERLOCKS) if ilk.status_signal is not None)
_FAULT_SIGNALS = tuple(f"GW_ActiveFault{j + 1}" for j in range(8))
_WATCHED_INDEX = {name: j for j, (name, _) in reversed(list(enumerate(L.WATCHED_MESSAGES)))}
_HV_NOT_READY = L.INTERLOCK_NAMES.index("hv_not_ready")


class ControlConfigError(VehicleIoError, ValueError):
    """The control loop cannot be built on this gateway (missing signal, bad period)."""


@dataclass(frozen=True)
class ControlEvent:
    """An interlock became active (``active``) or cleared at ``t_s`` (the loop's clock)."""

    t_s: float
    code: str
    action: str
    active: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"t": self.t_s, "code": self.code, "action": self.action if self.active else "cleared",
                "active": self.active}


@dataclass
class RunStats:
    """What the real-time runner measured: ticks, overruns and period jitter in µs."""

    ticks: int = 0
    overruns: int = 0
    jitter_us: list[float] = field(default_factory=list)

    def percentiles(self) -> dict[str, float]:
        if not self.jitter_us:
            return {"p50_us": math.nan, "p99_us": math.nan, "max_us": math.nan}
        arr = np.asarray(self.jitter_us)
        return {"p50_us": float(np.percentile(arr, 50)), "p99_us": float(np.percentile(arr, 99)),
                "max_us": float(arr.max())}

    def summary(self) -> str:
        p = self.percentiles()
        return (f"{self.ticks} ticks, {self.overruns} overruns, period jitter p50 {p['p50_us']:.1f} us, "
                f"p99 {p['p99_us']:.1f} us, max {p['max_us']:.1f} us")


def control_allowlist(db: Database) -> list[AllowedFrame]:
    """The transmit allowlist of the control loop: each command message on its bus, DBC length."""
    from vehicle_io.gateway.transmit import AllowedFrame

    out = []
    for name, bus in TX_MESSAGES.items():
        m = db.get_message_by_name(name)
        out.append(AllowedFrame(int(m.frame_id), bus, int(m.length), bool(m.is_extended_frame)))
    return out


class InputMap:
    """Slot indices of every input signal and watched message, resolved once by name."""

    def __init__(self, layout: StoreLayout) -> None:
        from vehicle_io.gateway.store import LayoutError

        try:
            self.signal_slots = layout.slots_of([sig for _, sig in L.INPUT_SIGNALS])
            self.message_index = np.array(
                [layout.message(name).index for _, name in L.WATCHED_MESSAGES], dtype=np.int64
            )
        except LayoutError as err:
            raise ControlConfigError(f"control loop: the gateway's database lacks an input: {err}") from err

    def fill(self, snap: Snapshot, flat: npt.NDArray[np.float64]) -> None:
        """Write signal values and message validity of ``snap`` into the input record's view."""
        np.take(snap.value, self.signal_slots, out=flat[: L.N_SIGNAL_INPUTS])
        m = self.message_index
        flat[L.OK_OFFSET : L.OK_OFFSET + L.N_WATCHED] = snap.message_valid[m]
        timed_out = (snap.message_stale[m] != 0) | np.isnan(snap.message_last_rx_s[m])
        flat[L.TO_OFFSET : L.TO_OFFSET + L.N_WATCHED] = timed_out


class ControlLoop:
    """The gateway's control loop at a fixed period (``period_s``, 10 ms default, 1 ms possible).

    ``clock``: the time base (default: the gateway's clock). ``thresholds``: the limits
    table. ``blackbox_dir``: where to dump the gateway's black box on a trip (None: no dump).
    Commands go out only through ``gateway.send`` and only on buses its gate has armed.
    """

    def __init__(
        self,
        gateway: Gateway,
        *,
        period_s: float = 0.01,
        clock: Callable[[], float] | None = None,
        thresholds: L.Thresholds | None = None,
        blackbox_dir: str | PathLike[str] | None = None,
    ) -> None:
        if not 0.0005 <= period_s <= 0.1:
            raise ControlConfigError(f"control loop: expected period_s in 0.0005..0.1, but got {period_s!r}")
        from vehicle_io.codec import BatchEncoder
        from vehicle_io.control import _kernels

        self._k = _kernels
        self.gateway = gateway
        self.period_s = float(period_s)
        self.clock = clock if clock is not None else gateway.clock
        self.thresholds = thresholds if thresholds is not None else L.Thresholds()
        self.thr = self.thresholds.to_record()
        self.state = L.new_state()
        self.inputs = L.new_inputs()
        self.outputs = L.new_outputs()
        self._flat = self.inputs.view(np.float64)
        self.input_map = InputMap(gateway.layout)
        self.encoder = BatchEncoder(gateway.db)
        self._messages = {name: gateway.db.get_message_by_name(name) for name in TX_MESSAGES}
        self._cycle_s = {name: (m.cycle_time or 10) / 1000.0 for name, m in self._messages.items()}
        self._next_send = dict.fromkeys(TX_MESSAGES, -math.inf)
        self._encoded: dict[str, tuple[dict[str, float], bytes]] = {}
        self._snap: Snapshot | None = None
        self._prev_flags = bytes(L.N_INTERLOCKS)
        self._active_codes: list[int] = []
        self._estop = dict.fromkeys(ESTOP_SOURCES, False)
        self._reset_pending = False
        self._last_t: float | None = None
        self._t0: float | None = None
        self.blackbox_dir = Path(blackbox_dir) if blackbox_dir is not None else None
        self.events: list[ControlEvent] = []
        self.counters: dict[str, int] = {
            "ticks": 0, "sent": 0, "blocked": 0, "send_error": 0, "encode_error": 0, "not_armed": 0,
            "blackbox_dumps": 0,
        }
        self.last_error: str | None = None
        self.warm_up()

    # ------------------------------------------------------------------ operator inputs
    def set_estop(self, source: str, active: bool) -> None:
        """Remote or physical e-stop from the bench operator, OR-ed with the DBC e-stop signals."""
        if source not in self._estop:
            raise ValueError(f"set_estop: expected a source in {ESTOP_SOURCES}, but got {source!r}")
        self._estop[source] = bool(active)

    def request_reset(self) -> None:
        """Explicit reset request (one tick): clears latched faults only at standstill."""
        self._reset_pending = True

    # ------------------------------------------------------------------ the tick
    def warm_up(self) -> None:
        """Compile or load the kernels now, so the first tick has no compile pause."""
        self._k.warm_up(self.state, self.inputs, self.outputs, self.thr)

    def tick(self, now_s: float | None = None) -> npt.NDArray[np.void]:
        """One period: snapshot, kernel, events, transmit. Returns the output record."""
        now = self.clock() if now_s is None else float(now_s)
        if self._t0 is None:
            self._t0 = now
        self._snap = self.gateway.store.snapshot(now, out=self._snap)
        self.input_map.fill(self._snap, self._flat)
        inp = self.inputs
        inp["t_s"] = now
        dt = now - self._last_t if self._last_t is not None else self.period_s
        inp["dt_s"] = dt if 0.0 < dt <= 0.1 else self.period_s
        self._last_t = now
        # The operator API and the DBC signals are OR-ed; a never-received signal is NaN.
        inp["estop_remote"] = 1.0 if self._estop["remote"] or inp["adc_remote_estop"] >= 0.5 else 0.0
        inp["estop_physical"] = 1.0 if self._estop["physical"] or inp["vcu_physical_estop"] >= 0.5 else 0.0
        inp["reset_request"] = 1.0 if self._reset_pending or inp["adc_reset_request"] >= 0.5 else 0.0
        self._reset_pending = False
        self._k.step(self.state, inp, self.outputs, self.thr)
        self.counters["ticks"] += 1
        self._events(now)
        self._transmit(now)
        return self.outputs

    def _events(self, now: float) -> None:
        flags = L.ilk_flags(self.outputs).tobytes()
        if flags == self._prev_flags:
            return
        tripped = False
        for k, (old, new) in enumerate(zip(self._prev_flags, flags)):
            if old == new:
                continue
            ilk = L.INTERLOCKS[k]
            self.events.append(ControlEvent(now, ilk.code, ilk.action, bool(new)))
            if new and ilk.name in TRIP_INTERLOCKS:
                tripped = True
        self._prev_flags = flags
        self._active_codes = [L.INTERLOCKS[k].dtc for k, f in enumerate(flags) if f]
        if tripped and self.blackbox_dir is not None:
            self._dump_blackbox(now)

    def _dump_blackbox(self, now: float) -> None:
        try:
            self.blackbox_dir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
            path = self.blackbox_dir / f"trip_{now:.3f}.log"  # type: ignore[operator]
            self.gateway.dump_blackbox(path)
            self.counters["blackbox_dumps"] += 1
        except (OSError, VehicleIoError) as err:
            self.last_error = f"black box dump: {err}"

    # ------------------------------------------------------------------ frames
    def frames(self) -> dict[str, dict[str, float]]:
        """Signal values of every loop message for the current outputs (what would be sent)."""
        # Plain dicts of Python numbers: a numpy record field read costs as much as the rest.
        y = dict(zip(_OUTPUT_NAMES, self.outputs[0].item()))
        u = dict(zip(_INPUT_NAMES, self.inputs[0].item()))
        flags = L.ilk_flags(self.outputs).tolist()
        drive = {
            "GW_DriveCommand_CRC": 0, "GW_DriveCommand_Counter": 0,
            "GW_DriveEnable": int(y["drive_enable"]),
            "GW_TorqueRequest": _fit(float(y["torque_nm"]), -400.0, 400.0),
            "GW_GearRequest": int(y["gear_request"]),
            "GW_EpbRequest": int(y["epb_request"]),
            "GW_DriveModeRequest": int(y["drive_mode_request"]),
            "GW_SpeedLimit": _fit(float(y["speed_limit_kph"]), 0.0, 120.0),
            "GW_HvContactorOpenRequest": int(y["hv_open_request"]),
        }
        brake = {
            "GW_BrakeCommand_CRC": 0, "GW_BrakeCommand_Counter": 0,
            "GW_BrakeEnable": int(y["brake_enable"]), "GW_BrakeEmergency": int(y["brake_emergency"]),
            "GW_BrakeHoldRequest": int(y["brake_hold"]),
            "GW_BrakePressureRequest": _fit(float(y["brake_pressure_bar"]), 0.0, 200.0),
        }
        steer = {
            "GW_SteerCommand_CRC": 0, "GW_SteerCommand_Counter": 0,
            "GW_SteerEnable": int(y["steer_enable"]),
            "GW_SteerAngleRequest": _fit(float(y["steer_angle_deg"]), -540.0, 540.0),
            "GW_SteerRateLimit": _fit(float(y["steer_rate_limit_degps"]), 0.0, 1000.0),
        }
        cargo: dict[str, float] = {
            "GW_CargoCommand_CRC": 0, "GW_CargoCommand_Counter": 0,
            "GW_CargoCommandEnable": int(y["cargo_enable"]), "GW_CargoVehicleMoving": int(y["cargo_moving"]),
        }
        for lock_sig, lock_out, door_sig, door_out in _CARGO_KEYS:
            cargo[lock_sig] = int(y[lock_out])
            cargo[door_sig] = int(y[door_out])
        gw_state = int(y["gw_state"])
        if not self.gateway.gate.armed:
            gw_state = L.GW_STATE_LISTEN_ONLY
        uptime = 0.0 if self._t0 is None or self._last_t is None else self._last_t - self._t0
        status: dict[str, float] = {
            "GW_Status_CRC": 0, "GW_Status_Counter": 0,
            "GW_ControlAllowed": int(y["control_allowed"]), "GW_EStopActive": int(y["estop_active"]),
            "GW_FaultLatched": int(y["fault_latched"]), "GW_State": gw_state,
            "GW_ActiveFaultCount": min(len(self._active_codes), 255),
            "GW_Uptime": _fit(round(uptime, 2), 0.0, 42949672.95),
            "GW_PtBusState": 0 if "pt" in self.gateway.bus_names else 3,
            "GW_BodyBusState": 0 if "body" in self.gateway.bus_names else 3,
        }
        for k, signal in _STATUS_FLAGS:
            status[signal] = int(flags[k])
        codes = self._active_codes
        for j, signal in enumerate(_FAULT_SIGNALS):
            status[signal] = codes[j] if j < len(codes) else 0
        ok_list = self._flat[L.OK_OFFSET : L.OK_OFFSET + L.N_WATCHED].tolist()
        ok = {name: ok_list[j] for name, j in _WATCHED_INDEX.items()}

        def val(name: str, lo: float, hi: float, msg: str, scale: float = 1.0) -> float:
            x = float(u[name]) * scale
            return _fit(x, lo, hi) if ok[msg] and x == x else 0.0

        speed = float(y["speed_mps"])
        vehicle = {
            "GW_VehicleState_CRC": 0, "GW_VehicleState_Counter": 0,
            "GW_VehicleReady": 1 - int(flags[_HV_NOT_READY]),
            "GW_CargoDoorsClosed": int(ok["cbc_doors"] and u["cbc_all_doors_closed"] >= 0.5),
            "GW_CargoAllLocked": int(ok["cbc_doors"] and u["cbc_all_locked"] >= 0.5),
            "GW_VehicleDriveMode": _enum(u["vcu_drive_mode"], (0, 1, 2)) if ok["vcu_status"] else 7,
            "GW_VehicleGear": _enum(u["vcu_gear"], (0, 1, 2, 3)) if ok["vcu_status"] else 7,
            "GW_VehicleEpbState": _enum(u["vcu_epb_state"], (0, 1, 2, 3), 3) if ok["vcu_status"] else 3,
            "GW_VehicleSpeed": _fit(speed, -15.0, 35.0) if speed >= 0.0 else 0.0,
            "GW_VehicleAccel": val("brk_long_accel_mps2", -20.0, 20.0, "brk_status"),
            "GW_VehicleSteerAngle": val("eps_steer_angle_deg", -780.0, 780.0, "eps_status"),
            "GW_VehicleYawRate": val("brk_yaw_rate_degps", -200.0, 200.0, "brk_status"),
            "GW_VehicleSOC": val("bms_soc_pct", 0.0, 100.0, "bms_status"),
            "GW_VehiclePayload": val("cbc_payload_kg", 0.0, 2000.0, "cbc_payload"),
            "GW_VehicleDischargeLimit": val("bms_discharge_limit_kw", 0.0, 300.0, "bms_limits"),
            "GW_VehicleChargeLimit": val("bms_charge_limit_kw", 0.0, 300.0, "bms_limits"),
        }
        return {"GW_DriveCommand": drive, "GW_BrakeCommand": brake, "GW_SteerCommand": steer,
                "GW_CargoCommand": cargo, "GW_Status": status, "GW_VehicleState": vehicle}

    def _transmit(self, now: float) -> None:
        armed = self.gateway.gate.armed
        due = []
        for name, bus in TX_MESSAGES.items():
            # Half a tick of slack keeps a 10 ms message on every tick of a 10 ms loop.
            if now + 0.5 * self.period_s >= self._next_send[name]:
                if bus not in armed:
                    self.counters["not_armed"] += 1
                    self._next_send[name] = now + self._cycle_s[name]
                    continue
                due.append(name)
        if not due:
            return
        frames = self.frames()
        for name in due:
            self._next_send[name] = max(self._next_send[name] + self._cycle_s[name], now + 0.5 * self._cycle_s[name])
            message = self._messages[name]
            values = frames[name]
            cached = self._encoded.get(name)
            if cached is not None and cached[0] == values:
                # Most command values hold still between ticks: the same values, the same bytes.
                payload = cached[1]
            else:
                try:
                    payload = self.encoder.encode_one(name, **values)
                except VehicleIoError as err:
                    self.counters["encode_error"] += 1
                    self.last_error = f"encode {name}: {err}"
                    continue
                self._encoded[name] = (values, payload)
            is_fd = message.length > 8
            msg = can.Message(arbitration_id=int(message.frame_id), is_extended_id=bool(message.is_extended_frame),
                              data=payload, is_fd=is_fd, bitrate_switch=is_fd, check=False)
            try:
                self.gateway.send(TX_MESSAGES[name], msg)
            except TransmitBlocked as err:
                self.counters["blocked"] += 1
                self.last_error = f"send {name}: {err}"
            except can.CanError as err:
                self.counters["send_error"] += 1
                self.last_error = f"send {name}: {err}"
            else:
                self.counters["sent"] += 1

    # ------------------------------------------------------------------ real-time runner
    def run(
        self,
        duration_s: float | None = None,
        *,
        ticks: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        should_stop: Callable[[], bool] | None = None,
    ) -> RunStats:
        """Tick at the fixed period until ``duration_s`` / ``ticks`` / ``should_stop()``.

        Deadlines are absolute (no drift); a tick later than one period is an overrun and
        the schedule restarts from it. Jitter = actual tick start - scheduled start.
        """
        stats = RunStats()
        clock = self.clock
        start = clock()
        deadline = start
        end = start + duration_s if duration_s is not None else math.inf
        while True:
            if ticks is not None and stats.ticks >= ticks:
                break
            if should_stop is not None and should_stop():
                break
            now = clock()
            if now < deadline:
                sleep(deadline - now)
                now = clock()
            if now >= end:
                break
            late_s = now - deadline
            stats.jitter_us.append(late_s * 1e6)
            self.tick(now)
            stats.ticks += 1
            if late_s > self.period_s:
                stats.overruns += 1
                deadline = now + self.period_s
            else:
                deadline += self.period_s
        return stats

    # ------------------------------------------------------------------ reports
    def event_dicts(self) -> list[dict[str, Any]]:
        return [e.as_dict() for e in self.events]

    def active_interlocks(self) -> list[str]:
        flags = L.ilk_flags(self.outputs)
        return [L.INTERLOCKS[k].code for k in range(L.N_INTERLOCKS) if flags[k]]


def _fit(x: float, lo: float, hi: float) -> float:
    if not x == x:
        return 0.0
    return lo if x < lo else hi if x > hi else x


def _enum(x: float, allowed: Iterable[int], default: int = 7) -> int:
    v = int(x) if x == x and 0 <= x < 256 else -1
    return v if v in tuple(allowed) else default


__all__ = ["ControlConfigError", "ControlEvent", "ControlLoop", "InputMap", "RunStats", "TX_MESSAGES",
           "control_allowlist"]
