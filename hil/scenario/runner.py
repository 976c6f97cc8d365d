"""Run a scenario: rig (SimClock) + Gateway + ControlLoop at 100 Hz, all on simulated time.

The rig is stepped in 10 ms increments; between steps the frames the gateway's three buses
received are fed to the gateway (``Gateway.process_multi``: all buses in one call; receive
time = frame end on the bus clock), deadlines are checked and the control loop ticks once
(one call: ``ControlLoop.tick(check_deadlines=True)``). Nothing runs on a thread, so the same
scenario and seed give the same report.
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hil.bus.batch import drain_all
from hil.scenario.model import EPBS, GEARS, Action, Expectation, Scenario, ScenarioError, load_scenario
from vehicle_io.candump import pack_payloads

__all__ = ["ExpectationResult", "ScenarioResult", "run_scenario"]

PERIOD_S = 0.01
#: How long a scenario's close_door pushes the door shut.
DOOR_PUSH_S = 0.5
#: Sampled on every tick of every scenario, for the report's timeseries and the plot.
TIMESERIES = ("van.speed_mps", "gw.torque_nm", "gw.brake_pressure_bar", "van.soc", "van.gear", "van.epb_state",
              "doors_open", "van.pack_current_a")
#: The samplers' shortcuts (False: the general reads, for the tests that compare both).
_FAST_SAMPLERS = True
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne}


@dataclass
class ExpectationResult:
    index: int
    kind: str
    text: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "kind": self.kind, "text": self.text, "passed": self.passed, "detail": self.detail}


@dataclass
class ScenarioResult:
    name: str
    seed: int
    duration_s: float
    wall_time_s: float
    events: list[dict[str, Any]]
    expectations: list[ExpectationResult]
    samples: dict[str, list[float]] = field(default_factory=dict)
    times_s: list[float] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(e.passed for e in self.expectations)


def _feed(gw: Any, name: str, bus: Any) -> None:
    endpoint = getattr(bus, "endpoint", None)
    if endpoint is not None and hasattr(endpoint, "collect"):
        # A hilbus bus: its endpoint fills the frame-batch arrays directly (same frames, same
        # order and timestamps as recv would give), no python-can Message per frame.
        batch = endpoint.collect()
        if len(batch):
            gw.process_frames(name, *batch.drain())
        return
    msgs = []
    while (m := bus.recv(0)) is not None:
        msgs.append(m)
    if not msgs:
        return
    ids = np.array([m.arbitration_id | (0x80000000 if m.is_extended_id else 0)
                    | (0x40000000 if m.is_remote_frame else 0) | (0x20000000 if m.is_error_frame else 0)
                    for m in msgs], np.uint32)
    data, lengths = pack_payloads([bytes(m.data or b"") for m in msgs])
    times = np.array([m.timestamp for m in msgs], np.float64)
    gw.process_batch(name, ids, data, lengths, times)


class _Receiver:
    """Feeds the gateway every frame its buses received since the last tick.

    When every bus is a hilbus bus, the frames of all buses go in as one batch
    (:func:`hil.bus.batch.drain_all`, :meth:`Gateway.process_multi`): one call per tick
    instead of one per bus, the same result as :func:`_feed` of each bus in order (the
    general path, taken for any other bus).
    """

    def __init__(self, gw: Any, buses: dict[str, Any]) -> None:
        self.gw = gw
        self.buses = buses
        self.names = tuple(buses)
        endpoints = [getattr(bus, "endpoint", None) for bus in buses.values()]
        self.direct = bool(endpoints) and all(e is not None and hasattr(e, "collect") for e in endpoints)
        self._endpoints = endpoints
        self._sinks: list[Any] | None = None

    def feed(self) -> None:
        if not self.direct:
            for name, bus in self.buses.items():
                _feed(self.gw, name, bus)
            return
        sinks = self._sinks
        if sinks is None:  # switched at the first tick, where _feed switches them
            sinks = self._sinks = [e.collect() for e in self._endpoints]
        (ids, data, lengths, times), counts = drain_all(sinks)
        if ids.shape[0]:
            self.gw.process_multi(self.names, counts, ids, data, lengths, times)


def _apply(action: Action, rig: Any, loop: Any, pending: list[Action]) -> None:
    p = action.params
    model = rig.van.model
    if action.do == "open_door":
        model.force_door_open(int(p["compartment"]), True)
    elif action.do == "close_door":
        # A person pushes the door shut (and a forced-open latch is mended): in_door_close
        # for DOOR_PUSH_S, then let go so a later release can open it again.
        number = int(p["compartment"])
        model.force_door_open(number, False)
        model.set_compartment(number, door_close=1)
        pending.append(Action(action.t + DOOR_PUSH_S, "_let_go", {"compartment": number}))
        pending.sort(key=lambda a: a.t)
    elif action.do == "_let_go":
        model.set_compartment(int(p["compartment"]), door_close=0)
    elif action.do == "payload":
        model.set_payload(list(p["kg"]))
    elif action.do == "cell_temp_offset":
        model.set_cell_temp_offset(int(p["cell"]), float(p["offset_c"]))
    elif action.do == "isolation":
        model.set_isolation_resistance(float(p["ohm"]))
    elif action.do == "estop":
        loop.set_estop(str(p["source"]), bool(p["active"]))
    elif action.do == "reset":
        loop.request_reset()
    elif action.do == "bus_fault":
        rig.add_bus_fault(str(p["bus"]), dict(p["rule"]))
    elif action.do == "grade":
        model.set_inputs(grade_pct=float(p["pct"]))
    rig.van.refresh()


def _sampler(rig: Any, signal: str) -> Callable[[Any], float]:
    """A reader of ``signal`` (a name _check_signals accepted) from the rig or the loop outputs."""
    van = rig.van
    if signal == "doors_open":
        numbers = range(1, int(van.param("compartments")) + 1)
        columns = getattr(van, "compartment_columns", None)
        if _FAST_SAMPLERS and columns is not None and len(columns()["door_open"]) >= len(numbers):
            count = len(numbers)

            def doors_open_columns(out: Any) -> float:
                # The snapshot's door_open of every compartment as one tuple (shared with the
                # CBC's reads of the same snapshot), not a mapping per compartment.
                return float(sum(columns()["door_open"][:count]))

            return doors_open_columns
        if len(van.compartments()) >= len(numbers):
            def doors_open(out: Any) -> float:
                comps = van.compartments()  # one list per read: the mappings compartment(k) gives
                return float(sum([comps[k - 1]["door_open"] for k in numbers]))

            return doors_open
        return lambda out: float(sum(van.compartment(k)["door_open"] for k in numbers))
    if signal.startswith("van."):
        name = signal[4:]
        return lambda out: float(van.read(name))
    if signal.startswith("comp"):
        number, _, key = signal[4:].partition(".")
        index = int(number)
        return lambda out: float(van.compartment(index)[key])
    field = signal[3:]
    # The loop hands back the same output record every tick: keep a view of the field.
    held: list[Any] = [None, None]

    def read_output(out: Any) -> float:
        if held[0] is not out:
            held[0], held[1] = out, out[field]
        return float(held[1][0])

    return read_output


def _bus_event_recorder(rig: Any, out: list[dict[str, Any]]) -> Any:
    """Controller error-state changes as report events: BUS_<NODE>_<STATE>, e.g. BUS_BMS_BUS_OFF.

    A node that keeps failing cycles bus-off -> recovered every few ms; the report keeps the
    first of each code on each bus, with ``count`` the number of times it happened.
    """
    first: dict[tuple[str, str], dict[str, Any]] = {}

    def seen(event: Any) -> None:
        if event.code.startswith("node."):
            code = f"BUS_{event.node.upper()}_{event.code[5:].upper()}"
            ev = first.get((event.channel, code))
            if ev is None:
                ev = {"t": round((event.t_ps - rig.t0_ps) / 1e12, 6), "code": code, "bus": event.channel,
                      "node": event.node, "active": True, "count": 0}
                first[(event.channel, code)] = ev
                out.append(ev)
            ev["count"] += 1

    return seen


def _check_signals(sc: Scenario, signals: list[str], rig: Any) -> None:
    """Every sampled name exists before the run starts (one line naming the first unknown)."""
    from vehicle_io.control.layout import OUTPUT_DTYPE

    for name in signals:
        if name.startswith("gw."):
            if name[3:] not in OUTPUT_DTYPE.names:
                raise ScenarioError(f"{sc.source}: signal {name!r}: expected gw.<control output> "
                                    f"(one of {', '.join(OUTPUT_DTYPE.names[:6])}, ...), but got an unknown name")
        elif name.startswith("van."):
            try:
                rig.van.read(name[4:])
            except Exception as err:  # EcuConfigError: the plant has no such output
                raise ScenarioError(f"{sc.source}: signal {name!r}: {err}") from None


def _reference(e: Expectation, events: list[dict[str, Any]]) -> float | None:
    if not e.after_event:
        return e.after_s
    for ev in events:
        if ev["code"] == e.after_event and ev.get("active", True) and ev["t"] >= e.after_s:
            return float(ev["t"])
    return None


def _evaluate(e: Expectation, t: np.ndarray, s: dict[str, np.ndarray], events: list[dict[str, Any]],
              end_s: float) -> ExpectationResult:
    def res(ok: bool, detail: str) -> ExpectationResult:
        return ExpectationResult(e.index, e.kind, e.text, ok, detail)

    ref = _reference(e, events)
    if ref is None:
        return res(False, f"reference event {e.after_event} never occurred")
    if e.kind == "event":
        hits = [ev["t"] for ev in events if ev["code"] == e.code and ev.get("active", True)
                and ref <= ev["t"] <= ref + e.within_s + 1e-9]
        return res(bool(hits), f"first at t={hits[0]:.2f} s" if hits else f"not within {e.within_s:g} s of t={ref:.2f}")
    if e.kind == "never":
        mask = (t >= max(e.from_s, ref)) & (t <= min(e.until_s, end_s))
        bad = mask & _OPS[e.op](s[e.signal], e.value)
        if e.when_signal:
            bad &= _OPS[e.when_op](s[e.when_signal], e.when_value)
        idx = np.flatnonzero(bad)
        if idx.size:
            k = idx[0]
            return res(False, f"violated at t={t[k]:.2f} s ({e.signal}={s[e.signal][k]:.4g}), {idx.size} ticks")
        return res(True, f"held on {int(mask.sum())} ticks")
    x = s[e.signal]
    inside = (x >= e.lo) & (x <= e.hi)
    if e.kind == "reaches":
        win = (t >= ref) & (t <= ref + e.within_s + 1e-9)
        idx = np.flatnonzero(win & inside)
        if idx.size:
            return res(True, f"reached at t={t[idx[0]]:.2f} s ({t[idx[0]] - ref:.2f} s after t={ref:.2f})")
        last = x[win][-1] if win.any() else math.nan
        return res(False, f"not reached within {e.within_s:g} s of t={ref:.2f} (value {last:.4g} at window end)")
    win = (t >= ref) & (t <= min(e.until_s, end_s))
    idx = np.flatnonzero(win & ~inside)
    if idx.size:
        return res(False, f"left the range at t={t[idx[0]]:.2f} s ({e.signal}={x[idx[0]]:.4g})")
    return res(True, f"held on {int(win.sum())} ticks from t={ref:.2f}")


def run_scenario(scenario: str | Path | Scenario, seed: int = 0, *,
                 progress: Callable[[float, float], None] | None = None) -> ScenarioResult:
    """Run ``scenario`` (a file or a parsed :class:`Scenario`) in simulated time.

    ``progress(simulated_s, duration_s)`` is called every simulated second (for a progress bar).
    """
    from hil.ecus.adc import AdcPlan
    from hil.ecus.base import EcuConfigError
    from hil.plant.errors import PlantError
    from hil.rig import Rig
    from vehicle_io.control.loop import ControlLoop, control_allowlist
    from vehicle_io.gateway import Gateway, TransmitGate

    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    wall0 = time.perf_counter()
    try:
        plan = AdcPlan.from_dict({**sc.adc, "control_request": False})
    except (EcuConfigError, TypeError) as err:
        raise ScenarioError(f"{sc.source}: adc: {err}") from None
    rig = Rig(seed=seed, clock="sim", adc_plan=plan, start=False)
    buses: dict[str, Any] = {}
    gw = None
    try:
        try:
            for i, f in enumerate(sc.ecu_faults):
                fault = {k: v for k, v in f.items() if k != "node"}
                rig.add_ecu_fault(str(f["node"]), fault)
            model = rig.van.model
            if sc.gear is not None:
                model.set_inputs(gear_request=GEARS[sc.gear])
            if sc.epb is not None:
                model.set_inputs(epb_request=EPBS[sc.epb])
            if sc.payload_kg:
                model.set_payload(sc.payload_kg)
            rig.van.refresh()
        except (EcuConfigError, PlantError, TypeError, ValueError) as err:
            raise ScenarioError(f"{sc.source}: set-up: {err}") from None
        for b in ("pt", "body", "ads"):  # one at a time: the finally block closes what opened
            buses[b] = rig.open_bus(b, node="GW")
        bus_events: list[dict[str, Any]] = []
        for b in buses:
            rig.channel(b).add_event_observer(_bus_event_recorder(rig, bus_events))
        gate = TransmitGate(control_allowlist(rig.db), armed=buses)
        now = rig.clock.now
        gw = Gateway(buses, rig.db, clock=now, transmit_gate=gate, start=False)
        loop = ControlLoop(gw, period_s=PERIOD_S, clock=now)
        adc = rig.ecu("ADC")
        receiver = _Receiver(gw, buses)
        rig.start()
        signals = sorted({x for e in sc.expectations for x in (e.signal, e.when_signal) if x}
                         | set(TIMESERIES))
        _check_signals(sc, signals, rig)
        n = int(round(sc.duration_s / PERIOD_S))
        times = np.zeros(n)
        samples = {name: np.zeros(n) for name in signals}
        readers = [(samples[name], _sampler(rig, name)) for name in signals]
        actions = list(sc.actions)
        action_events: list[dict[str, Any]] = []
        engaged = False
        for k in range(n):
            t_s = (k + 1) * PERIOD_S
            if progress is not None and k % 100 == 0:
                progress(k * PERIOD_S, sc.duration_s)
            rig.run_until(t_s)
            if not engaged and t_s >= sc.engage_at_s:
                adc.plan.control_request = True
                engaged = True
                action_events.append({"t": round(t_s, 6), "code": "SCN_ENGAGE_REQUEST", "action": "ADC_ControlRequest 1"})
            while actions and actions[0].t <= t_s + 1e-9:
                a = actions.pop(0)
                try:
                    _apply(a, rig, loop, actions)
                except (EcuConfigError, PlantError, TypeError, ValueError, KeyError) as err:
                    raise ScenarioError(f"{sc.source}: action {a.do} at t={a.t:g}: {err}") from None
                if not a.do.startswith("_"):
                    action_events.append({"t": round(t_s, 6), "code": f"SCN_{a.do.upper()}", "action": a.do,
                                          **_plain(a.params)})
            receiver.feed()
            # The gateway's deadline checks, then the loop's tick, at the same time (one call).
            out = loop.tick(now(), check_deadlines=True)
            times[k] = t_s
            for column, read in readers:
                column[k] = read(out)
        loop_events = [{**ev, "t": round(ev["t"] - rig.t0_ps / 1e12, 6)} for ev in loop.event_dicts()]
        events = sorted(loop_events + action_events + bus_events, key=lambda ev: ev["t"])
        results = [_evaluate(e, times, samples, events, sc.duration_s) for e in sc.expectations]
        return ScenarioResult(sc.name, seed, sc.duration_s, time.perf_counter() - wall0, events, results,
                              {k: v.tolist() for k, v in samples.items()}, times.tolist())
    finally:
        if gw is not None:
            gw.shutdown()
        for bus in buses.values():
            bus.shutdown()
        rig.close()


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if isinstance(v, (int, float, str, bool, list, dict))}
