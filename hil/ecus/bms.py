"""Simulated battery management system (BMS): pack values, limits, contactors, cell pages.

Everything comes from the van's battery model; the BMS adds its own judgement: a fault
level and code from the cell, temperature and isolation limits of the van parameters, and it
opens the contactors when the gateway asks (GW_HvContactorOpenRequest in GW_DriveCommand).
BMS_CellVoltages (24 pages of 4 cells) and BMS_CellTemps (8 pages of 4 sensors) go out as
all pages back to back every cycle, as the DBC describes.
"""

from __future__ import annotations

from collections.abc import Mapping

from hil.ecus import base
from hil.ecus.base import SimEcu

__all__ = ["BmsEcu", "FAULT_CODES"]

#: The simulated BMS's fault codes (DTC low 16 bits), most severe first.
FAULT_CODES: dict[str, int] = {
    "isolation": 0x1A04,
    "cell_overvoltage": 0x1A01,
    "cell_undervoltage": 0x1A02,
    "cell_overtemperature": 0x1A03,
}
ISO_WARNING, ISO_FAULT = 1, 2
CELLS_PER_PAGE = 4
SOH_PCT = 97.0
#: Beyond the cell window: fault (level 2) and critical (level 3) margins. They put the BMS's
#: own levels at the gateway's thresholds (vehicle_io.control.layout: 4.25/4.35 V, 2.9/2.5 V,
#: 60/70 degC with the bundled window of 3.0..4.15 V and 60 degC).
FAULT_MARGIN_V = 0.10
CRIT_MARGIN_OV_V = 0.20
CRIT_MARGIN_UV_V = 0.50
CRIT_MARGIN_T_C = 10.0


class BmsEcu(SimEcu):
    NODE = "BMS"
    COMMANDS = ("GW_DriveCommand",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.opened_on_request = False  # contactors opened by GW_HvContactorOpenRequest
        self._page_layouts: dict[tuple[str, int], list[tuple[float, tuple[str, ...]]]] = {}

    def _fault(self) -> tuple[int, int]:
        """(fault level, fault code) of the present battery state, most severe first.

        The window is the van parameters' (cell_v_min/max, bms_temp_discharge_max_c):
        leaving it by ``FAULT_MARGIN_*`` is a fault (2: stop, open at standstill), by
        ``CRIT_MARGIN_*`` critical (3: open now); inside the margin a warning (1: derate).
        """
        van = self.van
        v_max, v_min, t_max = van.read("cell_v_max"), van.read("cell_v_min"), van.read("cell_t_max_c")
        v_hi, v_lo = van.param("cell_v_max"), van.param("cell_v_min")
        t_hi = van.param("bms_temp_discharge_max_c")
        if v_max >= v_hi + CRIT_MARGIN_OV_V:
            return 3, FAULT_CODES["cell_overvoltage"]
        if v_min <= v_lo - CRIT_MARGIN_UV_V:
            return 3, FAULT_CODES["cell_undervoltage"]
        if t_max >= t_hi + CRIT_MARGIN_T_C:
            return 3, FAULT_CODES["cell_overtemperature"]
        if van.read("isolation_state") == ISO_FAULT:
            return 2, FAULT_CODES["isolation"]
        if v_max >= v_hi + FAULT_MARGIN_V:
            return 2, FAULT_CODES["cell_overvoltage"]
        if v_min <= v_lo - FAULT_MARGIN_V:
            return 2, FAULT_CODES["cell_undervoltage"]
        if t_max >= t_hi:
            return 2, FAULT_CODES["cell_overtemperature"]
        if (van.read("isolation_state") == ISO_WARNING or v_max >= v_hi or v_min <= v_lo
                or t_max >= van.param("bms_temp_discharge_full_high_c")):
            return 1, 0
        return 0, 0

    def on_command(self, message: str, values: Mapping[str, float], t_s: float) -> None:
        """GW_HvContactorOpenRequest: open the contactors; precharge again once withdrawn."""
        if values["GW_HvContactorOpenRequest"] == 1:
            if not self.opened_on_request:
                self.opened_on_request = True
                self.van.command(hv_request=0)
        elif self.opened_on_request:
            self.opened_on_request = False
            self.van.command(hv_request=1)

    def signals(self, message: str, t_s: float) -> dict[str, float]:
        van = self.van
        if message == "BMS_Status":
            return {
                "BMS_ChargerConnected": 0.0,
                "BMS_BalancingActive": 0.0,
                "BMS_PackVoltage": van.read("pack_voltage_v"),
                "BMS_PackCurrent": van.read("pack_current_a"),
                "BMS_SOC": van.read("soc") * 100.0,
                "BMS_SOH": SOH_PCT,
            }
        if message == "BMS_Limits":
            return {
                "BMS_DischargePowerLimit": van.read("discharge_power_limit_w") / 1000.0,
                "BMS_ChargePowerLimit": van.read("charge_power_limit_w") / 1000.0,
                "BMS_DischargeCurrentLimit": van.read("discharge_current_limit_a"),
                "BMS_ChargeCurrentLimit": van.read("charge_current_limit_a"),
            }
        if message == "BMS_Contactors":
            level, code = self._fault()
            return {
                "BMS_FaultLevel": float(level),
                "BMS_HvilClosed": 1.0,
                "BMS_MainPosState": float(van.read("main_pos_state")),
                "BMS_MainNegState": float(van.read("main_neg_state")),
                "BMS_PrechargeRelayState": float(van.read("precharge_relay_state")),
                "BMS_PrechargeState": float(van.read("precharge_state")),
                "BMS_IsolationState": float(van.read("isolation_state")),
                "BMS_IsolationResistance": van.read("isolation_resistance_ohm") / 1000.0,
                "BMS_FaultCode": float(code),
            }
        if message == "BMS_CellVoltageStats":
            return {
                "BMS_CellVoltageMax": van.read("cell_v_max"),
                "BMS_CellVoltageMaxIndex": float(van.read("cell_v_max_index")),
                "BMS_CellVoltageMin": van.read("cell_v_min"),
                "BMS_CellVoltageMinIndex": float(van.read("cell_v_min_index")),
            }
        return {  # BMS_CellTempStats
            "BMS_CellTempMax": van.read("cell_t_max_c"),
            "BMS_CellTempMaxIndex": float(van.read("cell_t_max_index")),
            "BMS_CellTempMin": van.read("cell_t_min_c"),
            "BMS_CellTempMinIndex": float(van.read("cell_t_min_index")),
            "BMS_CellTempAvg": van.read("cell_t_avg_c"),
        }

    def pages(self, message: str, t_s: float) -> list[dict[str, float]]:
        if message == "BMS_CellVoltages":
            values = self.van.cell_voltages_v().tolist()
            mux, fmt = "BMS_CellVoltagePage", "BMS_CellVoltage{:03d}"
        else:
            values = self.van.sensor_temps_c().tolist()
            mux, fmt = "BMS_CellTempPage", "BMS_CellTemp{:02d}"
        if not base._FAST_PATHS:
            out = []
            for page in range(len(values) // CELLS_PER_PAGE):
                row: dict[str, float] = {mux: float(page)}
                for j in range(CELLS_PER_PAGE):
                    number = CELLS_PER_PAGE * page + j + 1
                    row[fmt.format(number)] = values[number - 1]
                out.append(row)
            return out
        key = (message, len(values))
        layout = self._page_layouts.get(key)
        if layout is None:
            # Per page: its multiplexer value and the names of the multiplexer and its cells,
            # made once (every cycle sends every page).
            layout = self._page_layouts[key] = [
                (float(page), (mux, *(fmt.format(CELLS_PER_PAGE * page + j + 1) for j in range(CELLS_PER_PAGE))))
                for page in range(len(values) // CELLS_PER_PAGE)
            ]
        out = []
        start = 0
        for page_value, names in layout:
            end = start + CELLS_PER_PAGE
            out.append(dict(zip(names, [page_value, *values[start:end]])))
            start = end
        return out
