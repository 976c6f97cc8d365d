"""The runner's per-tick shortcuts leave every observable exactly as the general paths do.

Shortcuts: all buses' frames in one Gateway.process_multi call (one kernel call per tick)
instead of one process_frames per bus; the gateway's transmissions handed to the hilbus bus as
fields (HilBus.send_data, no python-can Message) through Gateway.send_many; the deadline
checks fused with the control loop's snapshot; the doors_open sampler reading the van's
compartment columns. The general run takes the per-bus feed (runner._feed), a hilbus without
send_data (Gateway._emit builds the Message), Gateway.check_deadlines before each tick and
the sampler reading each compartment's mapping. The scenario result, the frames on every
wire, the gateway's counters, store, E2E state, transmit counters, black box and the loop's
counters and events must be identical.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import hil.rig as rig_mod
from hil.bus.interface import HilBus
from hil.scenario import runner
from vehicle_io.control.loop import ControlLoop
from vehicle_io.gateway import Gateway

SCENARIOS = Path(__file__).resolve().parents[3] / "hil" / "scenarios"


def _run(name: str, general: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    wires: list[tuple] = []
    state: dict[str, Any] = {}
    orig_init = rig_mod.Rig.__init__
    orig_shutdown = Gateway.shutdown
    orig_loop_init = ControlLoop.__init__

    def rig_init(self: Any, *a: Any, **k: Any) -> None:
        orig_init(self, *a, **k)
        for bus, ch in self.channels.items():
            ch.add_frame_observer(lambda w, bus=bus: wires.append(
                (bus, w.t_end_ps, w.sender, w.arbitration_id, w.is_fd, w.dlc, bytes(w.data), w.error)))

    def loop_init(self: Any, *a: Any, **k: Any) -> None:
        orig_loop_init(self, *a, **k)
        state["loop"] = self

    def gw_shutdown(self: Gateway, *a: Any, **k: Any) -> None:
        if "gw" not in state:
            st = self.store
            bank = st.e2e
            state["gw"] = (
                self.counters(), st.generation, st.stale_events,
                [x.tobytes() for x in (st.value, st.timestamp, st.valid, st.msg_frames, st.msg_rejected,
                                       bank.sm_state, bank.status_counts, bank.next_deadline_s)],
                dict(self._tx_counter),
                # The gateway's own frames carry wall-clock bus timestamps: compared without them.
                [(m.channel, m.timestamp if m.is_rx else None, m.arbitration_id, m.is_rx, bytes(m.data or b""))
                 for m in self.blackbox.frames()],
            )
        orig_shutdown(self, *a, **k)

    monkeypatch.setattr(rig_mod.Rig, "__init__", rig_init)
    monkeypatch.setattr(ControlLoop, "__init__", loop_init)
    monkeypatch.setattr(Gateway, "shutdown", gw_shutdown)
    if general:
        monkeypatch.setattr(runner._Receiver, "__init__", _general_receiver(runner._Receiver.__init__))
        monkeypatch.setattr(runner, "_FAST_SAMPLERS", False)
        monkeypatch.delattr(HilBus, "send_data")
        orig_tick = ControlLoop.tick

        def tick(self: ControlLoop, now_s: float | None = None, *, check_deadlines: bool = False) -> Any:
            if check_deadlines:
                self.gateway.check_deadlines(now_s)
            return orig_tick(self, now_s)

        monkeypatch.setattr(ControlLoop, "tick", tick)
    result = runner.run_scenario(SCENARIOS / f"{name}.toml", seed=0)
    loop = state["loop"]
    return {"events": result.events, "samples": result.samples, "expectations": [e.as_dict() for e in result.expectations],
            "wires": wires, "gw": state["gw"], "loop": (dict(loop.counters), loop.last_error, loop.event_dicts())}


def _general_receiver(init: Any) -> Any:
    def general(self: Any, gw: Any, buses: dict[str, Any]) -> None:
        init(self, gw, buses)
        self.direct = False

    return general


@pytest.mark.parametrize("name", ["overload_1700kg", "corrupted_command_crc", "bms_bus_off"])
def test_fast_paths_equal_general_paths(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        fast = _run(name, False, m)
    with monkeypatch.context() as m:
        general = _run(name, True, m)
    assert len(fast["wires"]) > 1000
    assert fast["loop"][0]["sent"] > 100
    for key in ("events", "samples", "expectations", "loop", "wires", "gw"):
        assert fast[key] == general[key], key
