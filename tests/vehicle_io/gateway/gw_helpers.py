"""Helpers of the gateway tests (importable: this directory is on sys.path under pytest)."""

from __future__ import annotations

import time
from collections.abc import Callable

from vehicle_io.e2e import E2ESpec, protect

# A small database that exercises what the gateway must handle on any DBC: E2E protection,
# cycle times, multiplexing, an extended id, a 64-byte FD frame, Motorola and signed signals.
TEST_DBC = """VERSION ""
NS_ :
BS_:
BU_: ECU GW
BO_ 256 Prot: 8 ECU
 SG_ Prot_CRC : 0|8@1+ (1,0) [0|255] "" GW
 SG_ Prot_Counter : 8|4@1+ (1,0) [0|14] "" GW
 SG_ Prot_Enable : 12|1@1+ (1,0) [0|1] "" GW
 SG_ Prot_Speed : 16|16@1+ (0.01,0) [0|655.35] "km/h" GW
 SG_ Prot_Torque : 32|16@1- (0.1,0) [-3276.8|3276.7] "Nm" GW
BO_ 257 Plain: 8 ECU
 SG_ Plain_Temp : 0|8@1- (1,-40) [-168|87] "degC" GW
 SG_ Plain_Big : 15|16@0+ (0.5,10) [10|32777.5] "" GW
 SG_ Plain_Flags : 32|3@1+ (1,0) [0|7] "" GW
BO_ 512 Mux: 8 ECU
 SG_ Mux_Sel M : 0|8@1+ (1,0) [0|255] "" GW
 SG_ Mux_A m0 : 8|16@1+ (1,0) [0|65535] "" GW
 SG_ Mux_B m1 : 8|16@1- (0.25,0) [-8192|8191.75] "" GW
 SG_ Mux_C m2 : 8|8@1+ (1,0) [0|255] "" GW
 SG_ Mux_Common : 56|8@1+ (1,0) [0|255] "" GW
BO_ 2566848513 Ext: 8 ECU
 SG_ Ext_Value : 0|32@1+ (1,0) [0|4294967295] "" GW
BO_ 768 Fd: 64 ECU
 SG_ Fd_First : 0|16@1+ (1,0) [0|65535] "" GW
 SG_ Fd_Float : 32|32@1- (1,0) [-1e+38|1e+38] "" GW
 SG_ Fd_Last : 496|16@1+ (1,0) [0|65535] "" GW
BA_DEF_ BO_ "SafetyRelevant" ENUM "No","Yes";
BA_DEF_ BO_ "E2E_DataID" INT 0 65535;
BA_DEF_ SG_ "E2E_Role" ENUM "None","Counter","CRC";
BA_DEF_ BO_ "GenMsgCycleTime" INT 0 65535;
BA_DEF_ BO_ "VFrameFormat" ENUM "StandardCAN","ExtendedCAN","reserved","J1939PG","reserved","reserved","reserved","reserved","reserved","reserved","reserved","reserved","reserved","reserved","StandardCAN_FD","ExtendedCAN_FD";
BA_DEF_DEF_ "SafetyRelevant" "No";
BA_DEF_DEF_ "E2E_DataID" 0;
BA_DEF_DEF_ "E2E_Role" "None";
BA_DEF_DEF_ "GenMsgCycleTime" 0;
BA_DEF_DEF_ "VFrameFormat" "StandardCAN";
BA_ "GenMsgCycleTime" BO_ 256 10;
BA_ "SafetyRelevant" BO_ 256 1;
BA_ "E2E_DataID" BO_ 256 4660;
BA_ "GenMsgCycleTime" BO_ 257 100;
BA_ "VFrameFormat" BO_ 2566848513 1;
BA_ "VFrameFormat" BO_ 768 14;
BA_ "E2E_Role" SG_ 256 Prot_CRC 2;
BA_ "E2E_Role" SG_ 256 Prot_Counter 1;
SIG_VALTYPE_ 768 Fd_Float : 1;
"""


class FakeClock:
    """Injected time: advances only when told."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, dt_s: float) -> float:
        self.now_s += dt_s
        return self.now_s


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll ``predicate`` until true or ``timeout_s`` passes (bounded wait, not a timing test)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def protected(spec: E2ESpec, payload: bytes, counter: int) -> bytes:
    return bytes(protect(spec, payload, counter))
