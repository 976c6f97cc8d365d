"""A simulated ECU restarts a bus-off controller the way an AUTOSAR CAN state manager does.

Not at once (the controller's own ISO 11898-1 recovery, ~3 ms at 500 kbit/s), but after
CanSM's back-off: time L1 for the first bus-offs in a row, time L2 after that, and the row
ends once a recovery holds for "tx ensured".
"""

from __future__ import annotations

import pytest

from hil.bus import BusConfigError
from hil.ecus.base import BusOffRecovery, EcuConfigError

#: ISO 11898-1 recovery: 128 x 11 recessive bits at 500 kbit/s, plus the frames that end it.
RECOVERY_S = 128 * 11 / 500_000


def _bus_offs(rig, bus: str, node: str) -> tuple[list[float], list[float]]:
    offs: list[float] = []
    recovered: list[float] = []

    def note(event) -> None:
        if event.node == node and event.code == "node.bus_off":
            offs.append(event.t)
        elif event.node == node and event.code == "node.recovered":
            recovered.append(event.t)

    rig.channel(bus).add_event_observer(note)
    return offs, recovered


def test_broken_transceiver_backs_off_l1_then_l2(make_rig) -> None:
    rig = make_rig(seed=5)
    policy = rig.ecu("BMS").BUS_OFF_RECOVERY
    assert policy is not None
    offs, recovered = _bus_offs(rig, "pt", "BMS")
    rig.run_for(0.2)
    rig.add_bus_fault("pt", {"action": "corrupt_wire", "node": "BMS", "t0_s": rig.t_s})
    rig.run_for(6.0)
    gaps = [b - a for a, b in zip(offs, offs[1:])]
    n_l1 = policy.counter_l1_to_l2
    assert len(offs) >= n_l1 + 3, offs
    # every restart waits its back-off, then the 128 x 11 bits, then 32 destroyed frames
    for k, gap in enumerate(gaps, start=1):
        wait = policy.time_l1_s if k <= n_l1 else policy.time_l2_s
        assert wait + RECOVERY_S <= gap <= wait + 0.06, (k, gap)
    # every bus-off but the last was followed by exactly one recovery
    assert len(recovered) in (len(offs) - 1, len(offs))
    stats = rig.ecu("BMS").stats
    assert stats.bus_offs == len(offs)
    assert stats.bus_off_restarts == len(recovered)


def test_a_recovery_that_holds_ends_the_row(make_rig) -> None:
    rig = make_rig(seed=6)
    policy = rig.ecu("BMS").BUS_OFF_RECOVERY
    assert policy is not None
    offs, recovered = _bus_offs(rig, "pt", "BMS")
    rig.run_for(0.2)
    n_l1 = policy.counter_l1_to_l2
    # long enough for the whole L1 row and one L2 wait, then the transceiver heals
    t0 = rig.t_s
    t1 = t0 + n_l1 * policy.time_l1_s + 0.5 * policy.time_l2_s
    rig.add_bus_fault("pt", {"action": "corrupt_wire", "node": "BMS", "t0_s": t0, "t1_s": t1})
    rig.run_for(t1 - t0 + policy.time_l2_s + policy.time_tx_ensured_s + 0.2)
    first_row = len(offs)
    assert first_row == n_l1 + 1
    assert recovered and recovered[-1] > t1  # the restart after the L2 wait held
    # a second fault after "tx ensured": the row starts again at L1
    t2 = rig.t_s
    rig.add_bus_fault("pt", {"action": "corrupt_wire", "node": "BMS", "t0_s": t2})
    rig.run_for(1.0)
    second = offs[first_row:]
    assert len(second) >= 2
    assert second[1] - second[0] <= policy.time_l1_s + 0.06


def test_without_a_state_manager_the_controller_recovers_by_itself(make_rig, monkeypatch) -> None:
    from hil.ecus.bms import BmsEcu

    monkeypatch.setattr(BmsEcu, "BUS_OFF_RECOVERY", None)
    rig = make_rig(seed=5)
    offs, _ = _bus_offs(rig, "pt", "BMS")
    rig.run_for(0.2)
    rig.add_bus_fault("pt", {"action": "corrupt_wire", "node": "BMS", "t0_s": rig.t_s})
    rig.run_for(0.5)
    gaps = [b - a for a, b in zip(offs, offs[1:])]
    # ISO recovery alone: bus-off again as soon as the BMS's next frames have been destroyed
    assert len(offs) > 10
    assert max(gaps) < BusOffRecovery().time_l1_s


@pytest.mark.parametrize("kwargs", [{"time_l1_s": -0.1}, {"time_l2_s": float("nan")}, {"counter_l1_to_l2": 2.5},
                                    {"time_tx_ensured_s": "1"}])
def test_bad_recovery_settings_are_refused(kwargs) -> None:
    with pytest.raises(EcuConfigError, match="BusOffRecovery"):
        BusOffRecovery(**kwargs)


def test_set_auto_recovery_refuses_non_bool(make_rig) -> None:
    rig = make_rig(seed=1)
    endpoint = rig.ecu("BMS").endpoints["pt"]
    with pytest.raises(BusConfigError, match="set_auto_recovery"):
        endpoint.set_auto_recovery("yes")  # type: ignore[arg-type]
