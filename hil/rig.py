"""The rig: the simulated Z10 (van model + rest-bus ECUs) on the three timed buses.

::

    from hil.rig import Rig

    with Rig(seed=1, clock="sim") as rig:          # pt, body, ads on one SimClock
        gw = rig.attach("pt", node="GW")            # the gateway under test (or a stand-in)
        rig.run_for(10.0)                           # 10 s of bus time, as fast as the CPU goes
        rig.van.read("speed_mps"); rig.ecu("CBC").add_fault({"action": "silence", "t0_s": 5})

Every registered ECU (:mod:`hil.ecus.registry`) is a node named after its DBC sender; the
rig does not simulate GW (the gateway under test sends those frames) nor TESTER. The van
model is stepped every ``step_s`` on the bus clock, so ECU reads, bus timing and physics share
one time line: with ``clock="sim"`` and a seed, a run is byte-for-byte reproducible. With
``clock="real"`` the same rig runs paced by the wall clock (what ``z10 sim`` serves).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import can

from hil.bus.channel import Channel, Endpoint, WireFrame, open_channel
from hil.bus.clock import PRIO_EVENT, PS_PER_S, Clock, TimerHandle, make_clock, seconds_to_ps
from hil.bus.faults import FaultRule
from hil.ecus.base import EcuConfigError, EcuFault, SimEcu, VanView
from hil.ecus.registry import ecu_class, node_names
from vehicle_io.codec import BatchEncoder

__all__ = ["BUSES", "FrameRecord", "Recorder", "Rig"]

#: The Z10 buses and their bit timing (DESIGN.md): name -> open_channel settings.
BUSES: dict[str, dict[str, Any]] = {
    "pt": {"bitrate": 500_000},
    "body": {"bitrate": 500_000},
    "ads": {"bitrate": 500_000, "data_bitrate": 2_000_000, "fd": True},
}

#: Default van model step on the bus clock (the model integrates at its own finer step inside).
DEFAULT_STEP_S = 0.01


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """One frame seen on a rig bus."""

    t_ps: int  # end of frame, bus time
    bus: str
    sender: str
    arbitration_id: int
    is_fd: bool
    data: bytes
    is_error_frame: bool

    @property
    def t_s(self) -> float:
        return self.t_ps / PS_PER_S


class Recorder:
    """Every frame of the rig's buses in wire order (see :meth:`Rig.record`)."""

    def __init__(self, channels: Mapping[str, Channel]) -> None:
        self.frames: list[FrameRecord] = []
        self._stops: list[Callable[[], None]] = []
        for bus, channel in channels.items():
            self._stops.append(channel.add_frame_observer(self._observer(bus)))

    def _observer(self, bus: str) -> Callable[[WireFrame], None]:
        append = self.frames.append

        def seen(frame: WireFrame) -> None:
            append(FrameRecord(frame.t_end_ps, bus, frame.sender, frame.arbitration_id, frame.is_fd,
                               frame.data, frame.is_error_frame))

        return seen

    def stop(self) -> None:
        """Stop recording (the frames stay)."""
        for stop in self._stops:
            stop()
        self._stops.clear()

    def __len__(self) -> int:
        return len(self.frames)


class Rig:
    """The simulated Z10 on its three buses (see the module docstring).

    ``nodes``: the ECUs to simulate (default every registered one); ``van``: a ready
    :class:`~hil.ecus.base.VanView` instead of the plant model (it needs a ``step(dt_s)``
    method to move); ``params``: :class:`hil.plant.VanParams` for the plant; ``adc_plan``: the
    ADC stand-in's :class:`~hil.ecus.adc.AdcPlan` (or a dict for ``AdcPlan.from_dict``);
    ``channel_prefix``: put in front of the channel names (pt, body, ads) so several rigs can
    live in one process; ``require_ack``: frames need an acknowledging receiver (default no:
    in the van the gateway always acknowledges, but the rig runs before a gateway attaches;
    True models an unplugged gateway: the ECUs then sit in ACK errors); ``start=False`` leaves starting (ECU schedules, model stepping) to
    :meth:`start`, e.g. to attach the gateway first.
    """

    def __init__(
        self,
        seed: int = 0,
        clock: Clock | str = "sim",
        *,
        nodes: Iterable[str] | None = None,
        van: VanView | None = None,
        params: Any = None,
        adc_plan: Any = None,
        step_s: float = DEFAULT_STEP_S,
        channel_prefix: str = "",
        require_ack: bool = False,
        db: Any = None,
        start: bool = True,
    ) -> None:
        if not step_s > 0:
            raise EcuConfigError(f"rig step_s: expected > 0 s, but got {step_s!r}")
        self.seed = int(seed)
        self.step_s = float(step_s)
        self._step_ps = seconds_to_ps(step_s)
        self.clock: Clock = make_clock(clock)
        self.channels: dict[str, Channel] = {}
        self.ecus: dict[str, SimEcu] = {}
        self._closed = False
        self._started = False
        self._step_handle: TimerHandle | None = None
        self._endpoints: list[Endpoint] = []
        self.t0_ps = 0
        self.steps = 0
        try:
            if db is None:
                from vehicle_io import load_database

                db = load_database()
            self.db = db
            for bus, settings in BUSES.items():
                self.channels[bus] = open_channel(
                    f"{channel_prefix}{bus}", clock=self.clock, seed=self.seed, require_ack=require_ack, **settings
                )
            if van is None:
                from hil.bus.bits import use_kernel
                from hil.ecus.van import PlantVan
                from hil.plant.model import Van  # imports numba: only when a rig is built

                van = PlantVan(Van(params, seed=self.seed))
                use_kernel()  # numba is in anyway: frame bit counts compiled (same numbers)
            self.van: VanView = van
            encoder = BatchEncoder(db)
            for node in node_names() if nodes is None else list(nodes):
                cls = ecu_class(node)
                kwargs: dict[str, Any] = {"seed": self.seed, "encoder": encoder}
                if node == "ADC" and adc_plan is not None:
                    from hil.ecus.adc import AdcPlan

                    kwargs["plan"] = adc_plan if isinstance(adc_plan, AdcPlan) else AdcPlan.from_dict(adc_plan)
                self.ecus[node] = cls(db, van, self.channels, self.clock, **kwargs)
        except BaseException:
            self.close()
            raise
        if start:
            self.start()

    # -- life cycle ----------------------------------------------------------------------------

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start every ECU's schedule and the model stepping, now on the bus clock."""
        with self.clock.lock:
            if self._started:
                return
            self._started = True
            self.t0_ps = self.clock.now_ps()
            for ecu in self.ecus.values():
                ecu.start()
            if hasattr(self.van, "step"):
                self._step_handle = self.clock.call_at_ps(self.t0_ps + self._step_ps, self._step)

    def close(self) -> None:
        """Stop the ECUs and the model, release the buses; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        with self.clock.lock:
            if self._step_handle is not None:
                self._step_handle.cancel()
                self._step_handle = None
        for ecu in self.ecus.values():
            ecu.close()
        for endpoint in self._endpoints:
            endpoint.close()
        for channel in self.channels.values():
            channel.close()

    def _step(self) -> None:
        self._step_handle = None
        if self._closed:
            return
        self.van.step(self.step_s)  # type: ignore[attr-defined]
        self.steps += 1
        # A clock event (lock held) scheduling the next step in the future: call_at_ps's entry.
        self._step_handle = self.clock._push(self.t0_ps + (self.steps + 1) * self._step_ps, PRIO_EVENT, self._step, ())

    # -- running -------------------------------------------------------------------------------

    @property
    def t_s(self) -> float:
        """Seconds since the rig started (bus time)."""
        return (self.clock.now_ps() - self.t0_ps) / PS_PER_S

    def run_for(self, seconds: float) -> None:
        """Run ``seconds`` of bus time: as fast as possible on a SimClock, paced on a real one."""
        if not seconds >= 0:
            raise EcuConfigError(f"run_for: expected seconds >= 0, but got {seconds!r}")
        self.start()
        if self.clock.is_simulated:
            self.clock.run_until_ps(self.clock.now_ps() + seconds_to_ps(seconds))  # type: ignore[attr-defined]
        else:
            self.clock.wait_until(lambda: self._closed, seconds)

    def run_until(self, t_s: float) -> None:
        """Run until ``t_s`` seconds after the rig started (no effect when already past)."""
        remaining = t_s - self.t_s
        if remaining > 0:
            self.run_for(remaining)

    # -- access --------------------------------------------------------------------------------

    def ecu(self, node: str) -> SimEcu:
        """The simulated ECU ``node``."""
        try:
            return self.ecus[node]
        except KeyError:
            raise EcuConfigError(f"rig ECU {node!r}: expected one of {', '.join(self.ecus)}, but got an unknown node") from None

    def channel(self, bus: str) -> Channel:
        """The channel of ``bus`` (pt, body, ads)."""
        try:
            return self.channels[bus]
        except KeyError:
            raise EcuConfigError(f"rig bus {bus!r}: expected one of {', '.join(self.channels)}, but got an unknown bus") from None

    def attach(self, bus: str, node: str | None = None, **kwargs: Any) -> Endpoint:
        """A node of its own on ``bus`` (the gateway under test, a tester); closed with the rig.

        Keyword arguments go to :meth:`hil.bus.Channel.attach` (``on_frame``, ``fd``, ...).
        """
        endpoint = self.channel(bus).attach(node=node, **kwargs)
        self._endpoints.append(endpoint)
        return endpoint

    def bus_config(self, bus: str) -> dict[str, Any]:
        """``can.Bus`` keyword arguments that attach a python-can user to ``bus`` of this rig."""
        channel = self.channel(bus)
        config: dict[str, Any] = {"interface": "hilbus", "channel": channel.name, "bitrate": channel.bitrate,
                                  "clock": self.clock}
        if channel.fd:
            config.update(fd=True, data_bitrate=channel.data_bitrate)
        return config

    def open_bus(self, bus: str, node: str | None = None, **kwargs: Any) -> can.BusABC:
        """A python-can ``hilbus`` bus on ``bus`` of this rig (the caller shuts it down)."""
        config = self.bus_config(bus)
        config.update(kwargs)
        if node is not None:
            config["node"] = node
        return can.Bus(**config)

    def record(self) -> Recorder:
        """Start recording every frame on every bus (until ``Recorder.stop``)."""
        return Recorder(self.channels)

    def add_bus_fault(self, bus: str, rule: FaultRule | Mapping[str, Any]) -> FaultRule:
        """A wire/controller fault on ``bus`` (:class:`hil.bus.FaultRule` or its dict)."""
        return self.channel(bus).add_fault(rule)

    def add_ecu_fault(self, node: str, fault: EcuFault | Mapping[str, Any]) -> EcuFault:
        """An ECU fault (:class:`hil.ecus.EcuFault` or its dict) on ECU ``node``."""
        return self.ecu(node).add_fault(fault)

    def senders(self) -> dict[str, str]:
        """Message name -> simulating node, for every message the rig sends."""
        return {name: ecu.node for ecu in self.ecus.values() for name in ecu.messages}

    def frames_of(self, recorder: Recorder, names: Sequence[str] | None = None) -> dict[str, list[FrameRecord]]:
        """``recorder``'s frames grouped by message name (only ``names`` when given)."""
        by_id: dict[tuple[str, int], str] = {(m.bus_name, m.frame_id): m.name for m in self.db.messages}
        out: dict[str, list[FrameRecord]] = {}
        for frame in recorder.frames:
            name = by_id.get((frame.bus, frame.arbitration_id))
            if name is not None and (names is None or name in names):
                out.setdefault(name, []).append(frame)
        return out
