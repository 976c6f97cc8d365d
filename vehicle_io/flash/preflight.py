"""Pre-flight interlocks of a flash: read the van's own broadcast frames before anything is sent.

The tester listens (nothing is transmitted) to the powertrain bus for ``listen_s`` through the
project gateway (decode with the DBC codec, E2E check, staleness) and then judges the latest
valid values. Every condition must hold; a signal that is missing, stale or not E2E-VALID fails
its condition (default deny).

===============  ==========================================================  ==================
condition        what the DBC lets the tester read (pt bus)                   passes when
===============  ==========================================================  ==================
standstill       VCU_Status.VCU_Standstill, VCU_Status.VCU_VehicleSpeed,       standstill flag 1,
                 BRK_WheelSpeeds.BRK_WheelSpeedsValid + 4 wheel speeds         every speed <= 0.5
                                                                               km/h, wheels valid
gear_p           VCU_Status.VCU_Gear                                           0 (P)
epb_applied      VCU_Status.VCU_EpbState                                       1 (Applied)
drive_not_ready  VCU_Status.VCU_Ready (VCU drive-ready: HV up and torque       both 0
                 path enabled), MCU_Status.MCU_TorqueEnabled (inverter)
soc              BMS_Status.BMS_SOC                                            >= min_soc_pct
===============  ==========================================================  ==================

"Drive system not ready" is judged from what the van broadcasts: the VCU's ready flag and the
inverter's torque-enable flag. The gateway's own GW_DriveEnable is a command the tester would
have to send, so it is not evidence; HV may stay up (the ECUs need it to program).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vehicle_io.errors import VehicleIoError

if TYPE_CHECKING:
    import can

__all__ = ["DEFAULT_LISTEN_S", "DEFAULT_MIN_SOC_PCT", "Condition", "PreflightError", "PreflightResult",
           "STANDSTILL_KPH", "evaluate", "read_van"]

DEFAULT_LISTEN_S = 0.5
DEFAULT_MIN_SOC_PCT = 30.0
#: the highest speed read as standstill (one LSB of the wheel speeds is 0.05 km/h)
STANDSTILL_KPH = 0.5
GEAR_P = 0
EPB_APPLIED = 1

#: every signal the interlocks read, by store name (message.signal)
SIGNALS: tuple[str, ...] = (
    "VCU_Status.VCU_Standstill", "VCU_Status.VCU_VehicleSpeed", "VCU_Status.VCU_Gear",
    "VCU_Status.VCU_EpbState", "VCU_Status.VCU_Ready", "MCU_Status.MCU_TorqueEnabled",
    "BRK_WheelSpeeds.BRK_WheelSpeedsValid", "BRK_WheelSpeeds.BRK_WheelSpeedFL",
    "BRK_WheelSpeeds.BRK_WheelSpeedFR", "BRK_WheelSpeeds.BRK_WheelSpeedRL",
    "BRK_WheelSpeeds.BRK_WheelSpeedRR", "BMS_Status.BMS_SOC",
)
_GEARS = {0: "P", 1: "R", 2: "N", 3: "D", 7: "Invalid"}
_EPB = {0: "Released", 1: "Applied", 2: "InTransition", 3: "Fault"}


class PreflightError(VehicleIoError):
    """A pre-flight interlock refused the flash (the message names the condition and value)."""


@dataclass(frozen=True)
class Condition:
    name: str
    ok: bool
    detail: str


@dataclass
class PreflightResult:
    conditions: list[Condition] = field(default_factory=list)
    readings: dict[str, float | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.conditions) and all(c.ok for c in self.conditions)

    @property
    def failed(self) -> list[Condition]:
        return [c for c in self.conditions if not c.ok]

    def refusal(self) -> str:
        """One line naming the failing conditions with the values read."""
        return "pre-flight refused: " + "; ".join(f"{c.name}: {c.detail}" for c in self.failed)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "conditions": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.conditions],
                "readings": self.readings}


def evaluate(readings: Mapping[str, float | None], *, min_soc_pct: float = DEFAULT_MIN_SOC_PCT) -> PreflightResult:
    """Judge the interlocks from valid readings (None = missing, stale or not E2E-valid)."""
    result = PreflightResult(readings=dict(readings))

    def get(name: str) -> float | None:
        value = readings.get(name)
        return None if value is None or not math.isfinite(value) else float(value)

    def missing(*names: str) -> str | None:
        gone = [n for n in names if get(n) is None]
        return f"no valid {', '.join(gone)} received (missing, stale or E2E-invalid)" if gone else None

    add = result.conditions.append
    wheel_names = [f"BRK_WheelSpeeds.BRK_WheelSpeed{w}" for w in ("FL", "FR", "RL", "RR")]
    names = ["VCU_Status.VCU_Standstill", "VCU_Status.VCU_VehicleSpeed", "BRK_WheelSpeeds.BRK_WheelSpeedsValid",
             *wheel_names]
    why = missing(*names)
    if why:
        add(Condition("standstill", False, why))
    else:
        speed = get("VCU_Status.VCU_VehicleSpeed") or 0.0
        wheels = max(get(n) or 0.0 for n in wheel_names)
        flag = get("VCU_Status.VCU_Standstill")
        valid = get("BRK_WheelSpeeds.BRK_WheelSpeedsValid")
        ok = flag == 1 and valid == 1 and speed <= STANDSTILL_KPH and wheels <= STANDSTILL_KPH
        add(Condition("standstill", ok,
                      f"expected the van at standstill (<= {STANDSTILL_KPH} km/h), but got vehicle speed "
                      f"{speed:.2f} km/h, fastest wheel {wheels:.2f} km/h, standstill flag {flag:.0f}, "
                      f"wheel speeds valid {valid:.0f}"))
    gear = get("VCU_Status.VCU_Gear")
    if gear is None:
        add(Condition("gear_p", False, missing("VCU_Status.VCU_Gear") or ""))
    else:
        add(Condition("gear_p", gear == GEAR_P, f"expected gear P, but got {_GEARS.get(int(gear), int(gear))}"))
    epb = get("VCU_Status.VCU_EpbState")
    if epb is None:
        add(Condition("epb_applied", False, missing("VCU_Status.VCU_EpbState") or ""))
    else:
        add(Condition("epb_applied", epb == EPB_APPLIED,
                      f"expected the parking brake Applied, but got {_EPB.get(int(epb), int(epb))}"))
    why = missing("VCU_Status.VCU_Ready", "MCU_Status.MCU_TorqueEnabled")
    if why:
        add(Condition("drive_not_ready", False, why))
    else:
        ready, torque = get("VCU_Status.VCU_Ready"), get("MCU_Status.MCU_TorqueEnabled")
        add(Condition("drive_not_ready", ready == 0 and torque == 0,
                      f"expected the drive system not ready, but got VCU_Ready {ready:.0f}, "
                      f"MCU_TorqueEnabled {torque:.0f}"))
    soc = get("BMS_Status.BMS_SOC")
    if soc is None:
        add(Condition("soc", False, missing("BMS_Status.BMS_SOC") or ""))
    else:
        add(Condition("soc", soc >= min_soc_pct, f"expected SOC >= {min_soc_pct:g} %, but got {soc:g} %"))
    return result


def read_van(bus: can.BusABC, *, listen_s: float = DEFAULT_LISTEN_S, db: Any = None,
             sleep: Callable[[float], None] = time.sleep) -> dict[str, float | None]:
    """Listen to the powertrain bus for ``listen_s`` (transmitting nothing); the valid readings.

    ``bus`` must carry the pt network. A signal whose message never arrived, went stale or is
    not E2E-VALID at the end of the window reads None.
    """
    from vehicle_io.gateway import Gateway

    if not listen_s > 0:
        raise ValueError(f"expected a listening time > 0 s, but got {listen_s!r}")
    with Gateway({"pt": bus}, db) as gateway:
        sleep(listen_s)
        gateway.check_deadlines()
        store = gateway.store
        readings: dict[str, float | None] = {}
        for name in SIGNALS:
            reading = store.get(name)
            readings[name] = reading.value if reading.valid and math.isfinite(reading.value) else None
    return readings
