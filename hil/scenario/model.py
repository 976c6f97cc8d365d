"""Scenario files (TOML) -> checked dataclasses.

Schema (every time in seconds of simulated bus time since the rig started)::

    [scenario]
    name = "door_open_at_speed"       # required
    duration_s = 20.0                 # required, 0 < duration_s <= 600
    engage_at_s = 1.0                 # rising edge of ADC_ControlRequest (default 1.0)
    description = "..."               # optional

    [initial]                         # plant state before the rig starts (optional)
    gear = "D"                        # P/R/N/D: the van is already in that gear
    epb = "Release"                   # Apply/Release
    payload_kg = [0, 0, 0, 0, 0, 0]   # per compartment

    [adc]                             # hil.ecus.adc.AdcPlan fields except control_request
    speed_mps = [[0, 0], [2, 0], [8, 11.1]]

    [[ecu_fault]]                     # hil.ecus.base.EcuFault dicts, node = simulated ECU
    node = "ADC"
    action = "silence"
    t0_s = 10.0

    [[action]]                        # timed actions; t = when, do = what
    t = 8.0
    do = "open_door"                  # open_door(compartment): latch broken, door open;
                                      # close_door(compartment): pushed shut (0.5 s), latch mended;
    compartment = 2                   # payload(kg list), cell_temp_offset(cell, offset_c),
                                      # isolation(ohm), estop(source, active),
                                      # reset, bus_fault(bus, rule = FaultRule dict),
                                      # grade(pct: road grade, + = uphill ahead)

    [[expect]]                        # kind = "reaches" | "stays" | "never" | "event"
    kind = "reaches"                  # signal in [lo, hi] within within_s of the reference
    signal = "van.speed_mps"          # van.<plant output> | gw.<control output> | doors_open
                                      # | comp<N>.<door_open|lock_state|weight_kg|temp_c>
    lo = 0.0
    hi = 0.1
    after_event = "ILK_DOOR_OPEN"     # reference: first activation of that event code,
    within_s = 5.0                    # or after_s = time (default 0)

"stays": signal within [lo, hi] on every tick from the reference to ``until_s`` (default
end). "never": ``signal op value`` (op one of > >= < <= == !=) never holds while the
optional guard ``when_signal when_op when_value`` holds, on every tick in [from_s, until_s]
that is at or after the reference (``after_s`` or the first ``after_event``, as below).
"event": event ``code`` becomes active within ``within_s`` of ``after_s`` (or of the first
``after_event``). Every error is one line naming the file and the key.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vehicle_io.errors import VehicleIoError

__all__ = ["ACTIONS", "Action", "Expectation", "Scenario", "ScenarioError", "load_scenario", "parse_scenario"]

ACTIONS = ("open_door", "close_door", "payload", "cell_temp_offset", "isolation", "estop", "reset", "bus_fault",
           "grade")
KINDS = ("reaches", "stays", "never", "event")
OPS = (">", ">=", "<", "<=", "==", "!=")
GEARS = {"P": 0, "R": 1, "N": 2, "D": 3}
EPBS = {"Apply": 1, "Release": 2}
MAX_DURATION_S = 600.0


class ScenarioError(VehicleIoError, ValueError):
    """A scenario file is malformed (one line: file, key, what was expected)."""


@dataclass(frozen=True)
class Action:
    t: float
    do: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Expectation:
    index: int
    kind: str
    text: str
    signal: str = ""
    lo: float = -math.inf
    hi: float = math.inf
    op: str = ">"
    value: float = 0.0
    when_signal: str = ""
    when_op: str = ">"
    when_value: float = 0.0
    code: str = ""
    after_s: float = 0.0
    after_event: str = ""
    within_s: float = math.inf
    from_s: float = 0.0
    until_s: float = math.inf


@dataclass
class Scenario:
    name: str
    source: str
    duration_s: float
    engage_at_s: float = 1.0
    description: str = ""
    gear: str | None = None
    epb: str | None = None
    payload_kg: list[float] = field(default_factory=list)
    adc: dict[str, Any] = field(default_factory=dict)
    ecu_faults: list[dict[str, Any]] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    expectations: list[Expectation] = field(default_factory=list)


class _Ctx:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, expected: str, got: Any) -> ScenarioError:
        return ScenarioError(f"{self.source}: {key}: expected {expected}, but got {got!r}")

    def num(self, table: dict[str, Any], key: str, where: str, default: float | None = None, *, lo: float = -math.inf,
            hi: float = math.inf) -> float:
        if key not in table:
            if default is None:
                raise self.fail(f"{where}.{key}", "a number (required)", None)
            return default
        v = table[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            raise self.fail(f"{where}.{key}", f"a finite number in [{lo}, {hi}]", v)
        return float(v)

    def text(self, table: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
        if key not in table:
            if default is None:
                raise self.fail(f"{where}.{key}", "a string (required)", None)
            return default
        v = table[key]
        if not isinstance(v, str) or not v:
            raise self.fail(f"{where}.{key}", "a non-empty string", v)
        return v

    def table(self, doc: dict[str, Any], key: str) -> dict[str, Any]:
        v = doc.get(key, {})
        if not isinstance(v, dict):
            raise self.fail(key, "a table", v)
        return v

    def tables(self, doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
        v = doc.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
            raise self.fail(key, "an array of tables ([[" + key + "]])", v)
        return v

    def unknown(self, table: dict[str, Any], allowed: set[str], where: str) -> None:
        extra = sorted(set(table) - allowed)
        if extra:
            raise self.fail(f"{where}.{extra[0]}", "one of " + ", ".join(sorted(allowed)), extra[0])


_EXPECT_KEYS = {"kind", "text", "signal", "lo", "hi", "op", "value", "when_signal", "when_op", "when_value", "code",
                "after_s", "after_event", "within_s", "from_s", "until_s"}


_COMPARTMENT_SIGNAL = re.compile(r"comp[1-6]\.(door_open|lock_state|weight_kg|temp_c)")


def _signal(ctx: _Ctx, table: dict[str, Any], key: str, where: str) -> str:
    name = ctx.text(table, key, where)
    if not (name == "doors_open" or (name.startswith(("van.", "gw.")) and len(name) > 4)
            or _COMPARTMENT_SIGNAL.fullmatch(name)):
        raise ctx.fail(f"{where}.{key}", "van.<plant output>, gw.<control output>, comp<1-6>.<door_open|lock_state|"
                       "weight_kg|temp_c> or doors_open", name)
    return name


def _expectation(ctx: _Ctx, i: int, e: dict[str, Any], duration_s: float) -> Expectation:
    where = f"expect[{i}]"
    ctx.unknown(e, _EXPECT_KEYS, where)
    kind = ctx.text(e, "kind", where)
    if kind not in KINDS:
        raise ctx.fail(f"{where}.kind", "one of " + ", ".join(KINDS), kind)
    kw: dict[str, Any] = {"index": i, "kind": kind}
    kw["after_s"] = ctx.num(e, "after_s", where, 0.0, lo=0.0, hi=duration_s)
    kw["after_event"] = ctx.text(e, "after_event", where, "")
    kw["within_s"] = ctx.num(e, "within_s", where, math.inf, lo=0.0)
    kw["from_s"] = ctx.num(e, "from_s", where, 0.0, lo=0.0, hi=duration_s)
    kw["until_s"] = ctx.num(e, "until_s", where, math.inf, lo=0.0)
    if kind in ("reaches", "stays"):
        kw["signal"] = _signal(ctx, e, "signal", where)
        kw["lo"] = ctx.num(e, "lo", where, -math.inf)
        kw["hi"] = ctx.num(e, "hi", where, math.inf)
        if "lo" not in e and "hi" not in e:
            raise ctx.fail(f"{where}.lo", "lo and/or hi", None)
        if kw["lo"] > kw["hi"]:
            raise ctx.fail(f"{where}.lo", f"lo <= hi ({kw['hi']})", kw["lo"])
        if kind == "reaches" and kw["within_s"] == math.inf:
            raise ctx.fail(f"{where}.within_s", "a number (required for reaches)", None)
        ref = f"{kw['after_event'] or 't=' + format(kw['after_s'], 'g')}"
        bounds = f"[{kw['lo']:g}, {kw['hi']:g}]"
        default = (f"{kw['signal']} in {bounds} within {kw['within_s']:g} s of {ref}" if kind == "reaches"
                   else f"{kw['signal']} stays in {bounds} from {ref}")
    elif kind == "never":
        kw["signal"] = _signal(ctx, e, "signal", where)
        kw["op"] = ctx.text(e, "op", where)
        if kw["op"] not in OPS:
            raise ctx.fail(f"{where}.op", "one of " + " ".join(OPS), kw["op"])
        kw["value"] = ctx.num(e, "value", where)
        default = f"never {kw['signal']} {kw['op']} {kw['value']:g}"
        if "when_signal" in e:
            kw["when_signal"] = _signal(ctx, e, "when_signal", where)
            kw["when_op"] = ctx.text(e, "when_op", where)
            if kw["when_op"] not in OPS:
                raise ctx.fail(f"{where}.when_op", "one of " + " ".join(OPS), kw["when_op"])
            kw["when_value"] = ctx.num(e, "when_value", where)
            default += f" while {kw['when_signal']} {kw['when_op']} {kw['when_value']:g}"
    else:
        kw["code"] = ctx.text(e, "code", where)
        ref = kw["after_event"] or f"t={kw['after_s']:g}"
        default = f"event {kw['code']} within {kw['within_s']:g} s of {ref}"
    kw["text"] = ctx.text(e, "text", where, default)
    return Expectation(**kw)


def _action(ctx: _Ctx, i: int, a: dict[str, Any], duration_s: float) -> Action:
    where = f"action[{i}]"
    t = ctx.num(a, "t", where, lo=0.0, hi=duration_s)
    do = ctx.text(a, "do", where)
    if do not in ACTIONS:
        raise ctx.fail(f"{where}.do", "one of " + ", ".join(ACTIONS), do)
    params = {k: v for k, v in a.items() if k not in ("t", "do")}
    need = {"open_door": {"compartment"}, "close_door": {"compartment"}, "payload": {"kg"},
            "cell_temp_offset": {"cell", "offset_c"}, "isolation": {"ohm"}, "estop": {"source", "active"},
            "reset": set(), "bus_fault": {"bus", "rule"}, "grade": {"pct"}}[do]
    ctx.unknown(params, need, where)
    missing = sorted(need - set(params))
    if missing:
        raise ctx.fail(f"{where}.{missing[0]}", f"a value (required for {do})", None)
    return Action(t, do, params)


def parse_scenario(doc: dict[str, Any], source: str = "<scenario>") -> Scenario:
    """A :class:`Scenario` from parsed TOML; raises :class:`ScenarioError` (one line)."""
    ctx = _Ctx(source)
    ctx.unknown(doc, {"scenario", "initial", "adc", "ecu_fault", "action", "expect"}, "top level")
    head = ctx.table(doc, "scenario")
    ctx.unknown(head, {"name", "duration_s", "engage_at_s", "description"}, "scenario")
    duration = ctx.num(head, "duration_s", "scenario", lo=0.01, hi=MAX_DURATION_S)
    sc = Scenario(name=ctx.text(head, "name", "scenario"), source=source, duration_s=duration,
                  engage_at_s=ctx.num(head, "engage_at_s", "scenario", 1.0, lo=0.0, hi=duration),
                  description=ctx.text(head, "description", "scenario", ""))
    init = ctx.table(doc, "initial")
    ctx.unknown(init, {"gear", "epb", "payload_kg"}, "initial")
    if "gear" in init:
        sc.gear = ctx.text(init, "gear", "initial")
        if sc.gear not in GEARS:
            raise ctx.fail("initial.gear", "one of " + ", ".join(GEARS), sc.gear)
    if "epb" in init:
        sc.epb = ctx.text(init, "epb", "initial")
        if sc.epb not in EPBS:
            raise ctx.fail("initial.epb", "one of " + ", ".join(EPBS), sc.epb)
    if "payload_kg" in init:
        loads = init["payload_kg"]
        if not isinstance(loads, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                  and 0 <= x <= 5000 for x in loads):
            raise ctx.fail("initial.payload_kg", "a list of loads 0..5000 kg per compartment", loads)
        sc.payload_kg = [float(x) for x in loads]
    sc.adc = dict(ctx.table(doc, "adc"))
    if "control_request" in sc.adc:
        raise ctx.fail("adc.control_request", "no such key (the runner engages at scenario.engage_at_s)",
                       sc.adc["control_request"])
    for i, f in enumerate(ctx.tables(doc, "ecu_fault")):
        ctx.text(f, "node", f"ecu_fault[{i}]")
        sc.ecu_faults.append(dict(f))
    sc.actions = sorted((_action(ctx, i, a, duration) for i, a in enumerate(ctx.tables(doc, "action"))),
                        key=lambda a: a.t)
    expects = ctx.tables(doc, "expect")
    if not expects:
        raise ctx.fail("expect", "at least one [[expect]] table", None)
    sc.expectations = [_expectation(ctx, i, e, duration) for i, e in enumerate(expects)]
    return sc


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario TOML file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as err:
        raise ScenarioError(f"{p}: cannot read: {err.strerror or err}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ScenarioError(f"{p}: expected UTF-8 text, but got {err.reason}") from None
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"{p}: malformed TOML: {err}") from None
    return parse_scenario(doc, str(p))
