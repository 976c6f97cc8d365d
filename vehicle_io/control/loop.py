"""The control loop wrapper: gateway snapshot -> input record -> kernel -> commands on the bus.

One :meth:`ControlLoop.tick`:

1. ``Gateway.store.snapshot(now)`` (arrays reused), then the input record is filled by
   fancy indexing with slot indices resolved once from the :class:`StoreLayout` by signal
   name, plus per-message validity (``ok_*`` = valid, ``to_*`` = stale or never received);
2. the numba step kernel (``_kernels.step``) mutates the state record and writes the output
   record; interlocks decide before any command is built;
3. interlock flag changes become events ``(t_s, code, action)`` in :attr:`ControlLoop.events`
   and bits / active fault codes in GW_Status;
4. due messages are encoded with :class:`~vehicle_io.codec.BatchEncoder` and sent in one
   :meth:`Gateway.send_many` call (per frame what :meth:`Gateway.send_data` does: the gate
   checks every frame: armed bus and allowlist; E2E counter and CRC) - only on buses the
   gateway's transmit gate has armed (default deny: nothing is even built for a listen-only
   bus). A message's values are rebuilt only when the output bytes they depend on changed,
   equal values reuse the last payload, and GW_Status is encoded once per change with its
   uptime patched in: the frames are those of :meth:`ControlLoop.frames` encoded anew
   (tests/vehicle_io/control/test_transmit_fast_path.py).

Nothing in a tick raises: encode and transmit refusals are counted in :attr:`counters`
with the last error text. :meth:`run` is the real-time runner at a fixed period with an
injected clock and sleep, reporting period jitter p50/p99/max.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
                             "eps_fault", "pt_timeout", "pt_e2e", "plausibility", "hv_open",
                             "actuator_response"})

ESTOP_SOURCES = ("remote", "physical")

#: Encode through the messages' straight-line encoders (False: encode_one, for the tests
#: that compare both).
_FAST_ENCODE = True

#: A tick more than this many periods after the previous one follows a stall of the loop.
STALL_PERIODS = 2.0

# Names and positions resolved once for frames(), which runs every tick.
_OUTPUT_NAMES: tuple[str, ...] = L.OUTPUT_DTYPE.names  # type: ignore[assignment]
_INPUT_NAMES: tuple[str, ...] = L.INPUT_DTYPE.names  # type: ignore[assignment]
_CARGO_KEYS = tuple((f"GW_CompartmentLockRequest{i}", f"lock_request{i}", f"GW_CompartmentDoorRelease{i}",
                     f"door_release{i}") for i in range(1, L.N_COMPARTMENTS + 1))
_STATUS_FLAGS = tuple((k, ilk.status_signal) for k, ilk in enumerate(L.INTERLOCKS) if ilk.status_signal is not None)
_FAULT_SIGNALS = tuple(f"GW_ActiveFault{j + 1}" for j in range(8))
_WATCHED_INDEX = {name: j for j, (name, _) in reversed(list(enumerate(L.WATCHED_MESSAGES)))}
_HV_NOT_READY = L.INTERLOCK_NAMES.index("hv_not_ready")
_Y = {name: i for i, name in enumerate(_OUTPUT_NAMES)}
_U = {name: i for i, name in enumerate(_INPUT_NAMES)}
_OK = {name: L.OK_OFFSET + j for name, j in _WATCHED_INDEX.items()}
_T_S, _DT_S = _U["t_s"], _U["dt_s"]
_ESTOP_REMOTE, _ESTOP_PHYSICAL, _RESET_REQUEST = _U["estop_remote"], _U["estop_physical"], _U["reset_request"]
_ADC_REMOTE_ESTOP, _VCU_PHYSICAL_ESTOP = _U["adc_remote_estop"], _U["vcu_physical_estop"]
_ADC_RESET_REQUEST = _U["adc_reset_request"]


def _output_bytes(*names: str) -> tuple[tuple[int, int], ...]:
    """Byte ranges of output fields in the record (adjacent fields merged): a message's cache key."""
    spans: list[list[int]] = []
    for name in sorted(names, key=lambda n: L.OUTPUT_DTYPE.fields[n][1]):
        dtype, offset = L.OUTPUT_DTYPE.fields[name][:2]
        if spans and spans[-1][1] == offset:
            spans[-1][1] = offset + dtype.itemsize
        else:
            spans.append([offset, offset + dtype.itemsize])
    return tuple((a, b) for a, b in spans)


_DRIVE_FIELDS = ("drive_enable", "torque_nm", "gear_request", "epb_request", "drive_mode_request",
                 "speed_limit_kph", "hv_open_request")
_BRAKE_FIELDS = ("brake_enable", "brake_emergency", "brake_hold", "brake_pressure_bar")
_STEER_FIELDS = ("steer_enable", "steer_angle_deg", "steer_rate_limit_degps")
_CARGO_FIELDS = ("cargo_enable", "cargo_moving") + tuple(k for keys in _CARGO_KEYS for k in keys[1::2])
_STATUS_FIELDS = ("control_allowed", "estop_active", "fault_latched", "gw_state") + tuple(
    f"ilk_{ilk.name}" for ilk in L.INTERLOCKS)
_DRIVE_Y = itemgetter(*(_Y[n] for n in _DRIVE_FIELDS))
_BRAKE_Y = itemgetter(*(_Y[n] for n in _BRAKE_FIELDS))
_STEER_Y = itemgetter(*(_Y[n] for n in _STEER_FIELDS))
_CARGO_Y = itemgetter(*(_Y[n] for n in _CARGO_FIELDS))
_STATUS_Y = itemgetter(*(_Y[n] for n in _STATUS_FIELDS[:4]))
_ILK0 = _Y[f"ilk_{L.INTERLOCKS[0].name}"]
# The interlock flags are the ilk_* fields in INTERLOCKS order (ilk_flags relies on it too).
assert _OUTPUT_NAMES[_ILK0 : _ILK0 + L.N_INTERLOCKS] == tuple(f"ilk_{ilk.name}" for ilk in L.INTERLOCKS)
#: message -> byte ranges of the output record its values depend on (GW_Status: besides the
#: uptime, the armed state and the gateway's buses); GW_VehicleState depends on inputs too.
_KEY_SPANS: dict[str, tuple[tuple[int, int], ...]] = {
    "GW_DriveCommand": _output_bytes(*_DRIVE_FIELDS),
    "GW_BrakeCommand": _output_bytes(*_BRAKE_FIELDS),
    "GW_SteerCommand": _output_bytes(*_STEER_FIELDS),
    "GW_CargoCommand": _output_bytes(*_CARGO_FIELDS),
    "GW_Status": _output_bytes(*_STATUS_FIELDS),
}


class _Tx:
    """One message the loop sends: where, how often, and its last values and encoded payload."""

    __slots__ = ("name", "bus", "frame_id", "extended", "is_fd", "cycle_s", "spans", "key", "values",
                 "encoded_values", "payload", "base", "uptime", "scalar")

    def __init__(self, name: str, bus: str, message: Any, cycle_s: float) -> None:
        self.name = name
        self.bus = bus
        self.frame_id = int(message.frame_id)
        self.extended = bool(message.is_extended_frame)
        self.is_fd = message.length > 8
        self.cycle_s = cycle_s
        self.spans = _KEY_SPANS.get(name)  # None: the values depend on inputs, built every time
        self.key: Any = None
        self.values: dict[str, float] | None = None
        self.encoded_values: dict[str, float] | None = None
        self.payload = b""
        self.base: bytes | None = None  # GW_Status: encoded with uptime 0
        self.uptime: float | None = None  # GW_Status: the uptime patched into payload
        # BatchEncoder.scalar_encoder of the message, resolved at the first encode.
        self.scalar: tuple[Callable[[Mapping[str, Any]], bytes | None] | None, int] | None = None


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
        from vehicle_io import _e2e_kernels

        self._gather = _e2e_kernels.gather_inputs
        self._fits: tuple[Any, ...] | None = None  # the arrays of the last call the kernel took

    def warm_up(self) -> None:
        """Compile or load the gather kernel now (the types fill() passes it)."""
        f8, u1, none = np.zeros(1), np.zeros(1, dtype=np.uint8), np.zeros(0, dtype=np.int64)
        self._gather(f8, u1, u1, f8, none, none, np.zeros(1), 0, 0)

    def fill(self, snap: Snapshot, flat: npt.NDArray[np.float64]) -> None:
        """Write signal values and message validity of ``snap`` into the input record's view."""
        arrays = (snap.value, snap.message_valid, snap.message_stale, snap.message_last_rx_s, flat)
        fits = self._fits
        if (fits is not None and all(a is b for a, b in zip(arrays, fits))) or self._kernel_fits(arrays):
            # One kernel call, the same values as the numpy gathers below.
            self._gather(snap.value, snap.message_valid, snap.message_stale, snap.message_last_rx_s,
                         self.signal_slots, self.message_index, flat, L.OK_OFFSET, L.TO_OFFSET)
            return
        self.fill_numpy(snap, flat)

    def _kernel_fits(self, arrays: tuple[Any, ...]) -> bool:
        """Arrays of the types the gather kernel is compiled for (a store snapshot, the input record)."""
        value, valid, stale, last_rx, flat = arrays
        want = ((value, np.float64), (valid, np.uint8), (stale, np.uint8), (last_rx, np.float64), (flat, np.float64))
        ok = all(type(a) is np.ndarray and a.ndim == 1 and a.dtype == dt and a.flags.c_contiguous for a, dt in want)
        ok = ok and flat.flags.writeable and flat.shape[0] >= L.TO_OFFSET + L.N_WATCHED
        ok = ok and valid.shape == stale.shape == last_rx.shape
        for index, size in ((self.message_index, valid.shape[0]), (self.signal_slots, value.shape[0])):
            ok = ok and bool(index.size == 0 or (0 <= int(index.min()) and int(index.max()) < size))
        if ok:
            self._fits = arrays
        return ok

    def fill_numpy(self, snap: Snapshot, flat: npt.NDArray[np.float64]) -> None:
        """:meth:`fill` with numpy (the general path: any array types)."""
        # Array methods, not np.take & co.: the wrappers cost as much as the gathers here.
        snap.value.take(self.signal_slots, out=flat[: L.N_SIGNAL_INPUTS])
        m = self.message_index
        flat[L.OK_OFFSET : L.OK_OFFSET + L.N_WATCHED] = snap.message_valid.take(m)
        last_rx_s = snap.message_last_rx_s.take(m)
        timed_out = (snap.message_stale.take(m) != 0) | (last_rx_s != last_rx_s)  # stale or NaN: never
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
        self._tx = [_Tx(name, bus, self._messages[name], self._cycle_s[name]) for name, bus in TX_MESSAGES.items()]
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
            "blackbox_dumps": 0, "stalls": 0,
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
        self.input_map.warm_up()

    def tick(self, now_s: float | None = None, *, check_deadlines: bool = False) -> npt.NDArray[np.void]:
        """One period: snapshot, kernel, events, transmit. Returns the output record.

        ``check_deadlines``: first the gateway's :meth:`~vehicle_io.gateway.Gateway.check_deadlines`
        at the tick's time, fused with the tick's snapshot (the same result as calling both).
        """
        now = self.clock() if now_s is None else float(now_s)
        if self._t0 is None:
            self._t0 = now
        stale_at = now
        if self._last_t is not None and now - self._last_t > STALL_PERIODS * self.period_s:
            # This loop was held up (a busy machine, a GC pause): so was the receive path in
            # the same process, and frames sent meanwhile may not be processed yet. Judge
            # staleness one period after the last tick, not now, or the stall reads as every
            # ECU falling silent at once; the next tick judges it at its own time again, so a
            # sender that really stopped is seen at most one stall later.
            stale_at = self._last_t + self.period_s
            self.counters["stalls"] += 1
        if check_deadlines:
            self._snap = self.gateway.snapshot(stale_at, self._snap, deadlines_s=now)
        else:
            self._snap = self.gateway.store.snapshot(stale_at, out=self._snap)
        self.input_map.fill(self._snap, self._flat)
        # Fields written through the float64 view of the input record: a record field access
        # costs several times a flat element's.
        flat = self._flat
        flat[_T_S] = now
        dt = now - self._last_t if self._last_t is not None else self.period_s
        flat[_DT_S] = dt if 0.0 < dt <= 0.1 else self.period_s
        self._last_t = now
        # The operator API and the DBC signals are OR-ed; a never-received signal is NaN.
        flat[_ESTOP_REMOTE] = 1.0 if self._estop["remote"] or flat[_ADC_REMOTE_ESTOP] >= 0.5 else 0.0
        flat[_ESTOP_PHYSICAL] = 1.0 if self._estop["physical"] or flat[_VCU_PHYSICAL_ESTOP] >= 0.5 else 0.0
        flat[_RESET_REQUEST] = 1.0 if self._reset_pending or flat[_ADC_RESET_REQUEST] >= 0.5 else 0.0
        self._reset_pending = False
        self._k.step(self.state, self.inputs, self.outputs, self.thr)
        self.counters["ticks"] += 1
        self._events(now)
        self._transmit(now)
        return self.outputs

    def _events(self, now: float) -> None:
        flags = self.outputs.tobytes()[L.ILK_OFFSET : L.ILK_OFFSET + L.N_INTERLOCKS]
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
        # Plain Python numbers: a numpy record field read costs as much as the rest.
        y = self.outputs[0].item()
        u = self._flat.tolist()
        armed = bool(self.gateway.gate.armed)
        return {name: self._values(name, y, u, armed) for name in TX_MESSAGES}

    def _values(self, name: str, y: tuple[Any, ...], u: list[float], armed: bool) -> dict[str, float]:
        """Signal values of ``name`` from the output record ``y`` and the input record ``u``."""
        if name == "GW_DriveCommand":
            enable, torque, gear, epb, mode, limit, hv_open = _DRIVE_Y(y)
            return {
                "GW_DriveCommand_CRC": 0, "GW_DriveCommand_Counter": 0,
                "GW_DriveEnable": int(enable),
                "GW_TorqueRequest": _fit(float(torque), -400.0, 400.0),
                "GW_GearRequest": int(gear),
                "GW_EpbRequest": int(epb),
                "GW_DriveModeRequest": int(mode),
                "GW_SpeedLimit": _fit(float(limit), 0.0, 120.0),
                "GW_HvContactorOpenRequest": int(hv_open),
            }
        if name == "GW_BrakeCommand":
            enable, emergency, hold, pressure = _BRAKE_Y(y)
            return {
                "GW_BrakeCommand_CRC": 0, "GW_BrakeCommand_Counter": 0,
                "GW_BrakeEnable": int(enable), "GW_BrakeEmergency": int(emergency),
                "GW_BrakeHoldRequest": int(hold),
                "GW_BrakePressureRequest": _fit(float(pressure), 0.0, 200.0),
            }
        if name == "GW_SteerCommand":
            enable, angle, rate = _STEER_Y(y)
            return {
                "GW_SteerCommand_CRC": 0, "GW_SteerCommand_Counter": 0,
                "GW_SteerEnable": int(enable),
                "GW_SteerAngleRequest": _fit(float(angle), -540.0, 540.0),
                "GW_SteerRateLimit": _fit(float(rate), 0.0, 1000.0),
            }
        if name == "GW_CargoCommand":
            cargo: dict[str, float] = {
                "GW_CargoCommand_CRC": 0, "GW_CargoCommand_Counter": 0,
                "GW_CargoCommandEnable": int(y[_Y["cargo_enable"]]),
                "GW_CargoVehicleMoving": int(y[_Y["cargo_moving"]]),
            }
            for lock_sig, lock_out, door_sig, door_out in _CARGO_KEYS:
                cargo[lock_sig] = int(y[_Y[lock_out]])
                cargo[door_sig] = int(y[_Y[door_out]])
            return cargo
        if name == "GW_Status":
            status = self._status_values(y, armed)
            status["GW_Uptime"] = self._uptime()
            return status
        if name == "GW_VehicleState":
            return self._vehicle_values(y, u)
        raise KeyError(name)

    def _uptime(self) -> float:
        """GW_Uptime: seconds since the first tick, at the last tick."""
        uptime = 0.0 if self._t0 is None or self._last_t is None else self._last_t - self._t0
        return _fit(round(uptime, 2), 0.0, 42949672.95)

    def _status_values(self, y: tuple[Any, ...], armed: bool) -> dict[str, float]:
        """GW_Status without its uptime (0.0 in its place): what a tick's outputs decide."""
        control_allowed, estop_active, fault_latched, gw_state = _STATUS_Y(y)
        if not armed:
            gw_state = L.GW_STATE_LISTEN_ONLY
        buses = self.gateway.bus_names
        status: dict[str, float] = {
            "GW_Status_CRC": 0, "GW_Status_Counter": 0,
            "GW_ControlAllowed": int(control_allowed), "GW_EStopActive": int(estop_active),
            "GW_FaultLatched": int(fault_latched), "GW_State": int(gw_state),
            "GW_ActiveFaultCount": min(len(self._active_codes), 255),
            "GW_Uptime": 0.0,
            "GW_PtBusState": 0 if "pt" in buses else 3,
            "GW_BodyBusState": 0 if "body" in buses else 3,
        }
        for k, signal in _STATUS_FLAGS:
            status[signal] = int(y[_ILK0 + k])
        codes = self._active_codes
        for j, signal in enumerate(_FAULT_SIGNALS):
            status[signal] = codes[j] if j < len(codes) else 0
        return status

    @staticmethod
    def _vehicle_values(y: tuple[Any, ...], u: list[float]) -> dict[str, float]:
        def val(name: str, lo: float, hi: float, msg: str) -> float:
            x = float(u[_U[name]])
            return _fit(x, lo, hi) if u[_OK[msg]] and x == x else 0.0

        doors_ok = u[_OK["cbc_doors"]]
        vcu_ok = u[_OK["vcu_status"]]
        speed = float(y[_Y["speed_mps"]])
        return {
            "GW_VehicleState_CRC": 0, "GW_VehicleState_Counter": 0,
            "GW_VehicleReady": 1 - int(y[_ILK0 + _HV_NOT_READY]),
            "GW_CargoDoorsClosed": int(doors_ok and u[_U["cbc_all_doors_closed"]] >= 0.5),
            "GW_CargoAllLocked": int(doors_ok and u[_U["cbc_all_locked"]] >= 0.5),
            "GW_VehicleDriveMode": _enum(u[_U["vcu_drive_mode"]], (0, 1, 2)) if vcu_ok else 7,
            "GW_VehicleGear": _enum(u[_U["vcu_gear"]], (0, 1, 2, 3)) if vcu_ok else 7,
            "GW_VehicleEpbState": _enum(u[_U["vcu_epb_state"]], (0, 1, 2, 3), 3) if vcu_ok else 3,
            "GW_VehicleSpeed": _fit(speed, -15.0, 35.0) if speed >= 0.0 else 0.0,
            "GW_VehicleAccel": val("brk_long_accel_mps2", -20.0, 20.0, "brk_status"),
            "GW_VehicleSteerAngle": val("eps_steer_angle_deg", -780.0, 780.0, "eps_status"),
            "GW_VehicleYawRate": val("brk_yaw_rate_degps", -200.0, 200.0, "brk_status"),
            "GW_VehicleSOC": val("bms_soc_pct", 0.0, 100.0, "bms_status"),
            "GW_VehiclePayload": val("cbc_payload_kg", 0.0, 2000.0, "cbc_payload"),
            "GW_VehicleDischargeLimit": val("bms_discharge_limit_kw", 0.0, 300.0, "bms_limits"),
            "GW_VehicleChargeLimit": val("bms_charge_limit_kw", 0.0, 300.0, "bms_limits"),
        }

    def _transmit(self, now: float) -> None:
        armed = self.gateway.gate.armed
        half_tick = 0.5 * self.period_s
        next_send = self._next_send
        due = []
        for tx in self._tx:
            name = tx.name
            # Half a tick of slack keeps a 10 ms message on every tick of a 10 ms loop.
            if now + half_tick >= next_send[name]:
                if tx.bus not in armed:
                    self.counters["not_armed"] += 1
                    next_send[name] = now + tx.cycle_s
                    continue
                due.append(tx)
        if not due:
            return
        raw = self.outputs.tobytes()
        armed_any = bool(armed)
        y: tuple[Any, ...] | None = None
        counters = self.counters
        frames = []
        sent_tx = []
        # Per due message in order: the error text of its encode or send, for last_error.
        errors: list[str | None] = []
        for tx in due:
            name = tx.name
            next_send[name] = max(next_send[name] + tx.cycle_s, now + 0.5 * tx.cycle_s)
            if tx.spans is None:  # depends on inputs too: built every time
                if y is None:
                    y = self.outputs[0].item()
                payload = self._payload(tx, self._vehicle_values(y, self._flat.tolist()))
            elif name == "GW_Status":
                payload = self._status_payload(tx, raw, armed_any)
            else:
                # Values are built only when what they depend on changed (the record's bytes
                # are the cheap test); most commands hold still for many ticks.
                key = b"".join([raw[i:j] for i, j in tx.spans])
                if key != tx.key:
                    if y is None:
                        y = self.outputs[0].item()
                    tx.key, tx.values = key, self._values(name, y, [], armed_any)
                payload = self._payload(tx, tx.values)  # type: ignore[arg-type]
            if payload is None:
                errors.append(self.last_error)
                continue
            errors.append(None)
            frames.append((tx.bus, tx.frame_id, tx.extended, payload, tx.is_fd))
            sent_tx.append((len(errors) - 1, name))
        if not frames:
            return
        # One call for the tick's frames; the same refusals and accounting as one send each.
        for (at, name), err in zip(sent_tx, self.gateway.send_many(frames)):
            if err is None:
                counters["sent"] += 1
                continue
            counters["blocked" if isinstance(err, TransmitBlocked) else "send_error"] += 1
            errors[at] = f"send {name}: {err}"
        for text in reversed(errors):  # the last error in message order, as one send at a time leaves it
            if text is not None:
                self.last_error = text
                break

    def _payload(self, tx: _Tx, values: dict[str, float]) -> bytes | None:
        """``values`` encoded (the last payload if they did not change); None: counted error."""
        if values is not tx.encoded_values and values != tx.encoded_values:
            try:
                payload = self._encode(tx, values)
            except VehicleIoError as err:
                self.counters["encode_error"] += 1
                self.last_error = f"encode {tx.name}: {err}"
                return None
            tx.encoded_values, tx.payload = values, payload
        return tx.payload

    def _encode(self, tx: _Tx, values: dict[str, float]) -> bytes:
        """``encoder.encode_one(tx.name, **values)``: the message's straight-line encoder
        called with ``values`` as they are (no keyword round trip), encode_one when it declines."""
        scalar = tx.scalar
        if scalar is None:
            scalar = tx.scalar = self.encoder.scalar_encoder(tx.name) if _FAST_ENCODE else (None, -1)
        fn, count = scalar
        if fn is not None and len(values) == count:
            payload = fn(values)
            if payload is not None:
                return payload
        return self.encoder.encode_one(tx.name, **values)

    def _status_payload(self, tx: _Tx, raw: bytes, armed: bool) -> bytes | None:
        """GW_Status: its uptime changes every time, the rest rarely; the rest is encoded once
        (``tx.base``, uptime 0) and the uptime patched in."""
        spans = tx.spans or ()
        key = (b"".join([raw[i:j] for i, j in spans]), armed, tuple(self.gateway.bus_names))
        uptime = self._uptime()
        if key != tx.key or tx.base is None:
            tx.key, tx.base, tx.uptime = key, None, None
            try:
                tx.base = self._encode(tx, self._status_values(self.outputs[0].item(), armed))
            except VehicleIoError as err:
                self.counters["encode_error"] += 1
                self.last_error = f"encode {tx.name}: {err}"
                return None
        if uptime != tx.uptime:
            try:
                tx.payload = self.encoder.patch_one(tx.name, tx.base, GW_Uptime=uptime)
            except VehicleIoError as err:
                self.counters["encode_error"] += 1
                self.last_error = f"encode {tx.name}: {err}"
                return None
            tx.uptime = uptime
        return tx.payload

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
