"""A bench described once: which python-can bus serves each Z10 network.

A bench file is TOML::

    # bench.toml: a van on the bench through two USB adapters and the PC's SocketCAN
    [bus.pt]
    interface = "socketcan"
    channel = "can0"
    bitrate = 500000

    [bus.body]
    interface = "slcan"
    channel = "/dev/ttyACM0"
    bitrate = 500000

    [bus.ads]
    interface = "socketcan"
    channel = "can1"
    fd = true
    bitrate = 500000
    data_bitrate = 2000000

Any other key of a bus table is passed to ``can.Bus`` as it is (``tty_baudrate``, ``host``,
``port``...). Without a bench file, commands attach to the simulated van served by
``z10 sim`` on loopback.

Safety: buses open listen-only. python-can's passive state is requested where the interface
has it; the gateway's transmit gate (default deny) holds everywhere else. A bus is only
transmitted on after an explicit ``--arm NAME``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vehicle_io.errors import BusConfigError

if TYPE_CHECKING:
    import can

#: Where ``z10 sim`` serves the simulated van (DESIGN.md).
SIM_HOST = "127.0.0.1"
SIM_PORT = 29536
SIM_BUSES = ("pt", "body", "ads")

_KNOWN_KEYS = {"interface", "channel", "bitrate", "data_bitrate", "fd", "receive_own_messages"}
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class BusSpec:
    """How to open one named bus."""

    name: str
    interface: str
    channel: str
    bitrate: int | None = None
    data_bitrate: int | None = None
    fd: bool = False
    receive_own_messages: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_simulated(self) -> bool:
        """True for the simulator's own buses, the only ones armed without being asked."""
        if self.interface in ("virtual", "hilbus"):
            return True
        return self.interface in ("socketcand", "z10socketcand") and str(self.options.get("host")) in _LOOPBACK_HOSTS

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"interface": self.interface, "channel": self.channel}
        if self.bitrate is not None:
            kw["bitrate"] = self.bitrate
        if self.fd:
            kw["fd"] = True
            if self.data_bitrate is not None:
                kw["data_bitrate"] = self.data_bitrate
        if self.receive_own_messages:
            kw["receive_own_messages"] = True
        kw.update(self.options)
        return kw


def simulated_bench(host: str = SIM_HOST, port: int = SIM_PORT) -> dict[str, BusSpec]:
    """The simulated van's buses as ``z10 sim`` serves them over socketcand."""
    if host not in _LOOPBACK_HOSTS:
        raise BusConfigError(f"expected a loopback address for the simulator, but got {host!r}")
    return {
        name: BusSpec(name, "z10socketcand", name, fd=(name == "ads"),
                      options={"host": host, "port": port})
        for name in SIM_BUSES
    }


def check_stays_on_host(interface: str, options: Mapping[str, Any]) -> None:
    """House rule: no bus traffic beyond loopback. python-can's UDP interfaces (``udp_*``) send
    to a network group address; the socketcand clients only to a loopback ``host``."""
    if interface.startswith("udp_"):
        raise BusConfigError(f"interface {interface!r} sends onto the network; use socketcand on loopback")
    if interface in ("socketcand", "z10socketcand") and "host" in options \
            and str(options["host"]) not in _LOOPBACK_HOSTS:
        raise BusConfigError(f"interface {interface!r}: expected a loopback host (127.0.0.1, ::1, localhost), "
                             f"but got {options['host']!r}")


def _spec_from_table(name: str, table: Mapping[str, Any], source: str) -> BusSpec:
    if not isinstance(table, Mapping):
        raise BusConfigError(f"{source}: bus {name!r}: expected a table, but got {type(table).__name__}")
    for key in ("interface", "channel"):
        if not isinstance(table.get(key), str) or not table.get(key):
            raise BusConfigError(f"{source}: bus {name!r}: expected a string {key!r}, but got {table.get(key)!r}")
    for key in ("bitrate", "data_bitrate"):
        value = table.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise BusConfigError(f"{source}: bus {name!r}: expected a positive integer {key!r}, but got {value!r}")
    for key in ("fd", "receive_own_messages"):
        if key in table and not isinstance(table[key], bool):
            raise BusConfigError(f"{source}: bus {name!r}: expected true/false for {key!r}, but got {table[key]!r}")
    options = {k: v for k, v in table.items() if k not in _KNOWN_KEYS}
    try:
        check_stays_on_host(table["interface"], options)
    except BusConfigError as err:
        raise BusConfigError(f"{source}: bus {name!r}: {err}") from None
    return BusSpec(
        name=name,
        interface=table["interface"],
        channel=table["channel"],
        bitrate=table.get("bitrate"),
        data_bitrate=table.get("data_bitrate"),
        fd=bool(table.get("fd", False)),
        receive_own_messages=bool(table.get("receive_own_messages", False)),
        options=options,
    )


def load_bench(path: str | Path) -> dict[str, BusSpec]:
    """Read a bench TOML file into ``{bus name: BusSpec}``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise BusConfigError(f"{path}: no such bench file") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise BusConfigError(f"{path}: not valid TOML: {err}") from err
    buses = data.get("bus")
    if not isinstance(buses, dict) or not buses:
        raise BusConfigError(f"{path}: expected at least one [bus.NAME] table, but got none")
    return {name: _spec_from_table(name, table, str(path)) for name, table in buses.items()}


def single_bus(name: str, interface: str, channel: str, bitrate: int | None = None,
               data_bitrate: int | None = None, fd: bool = False) -> dict[str, BusSpec]:
    """The ``-i/-c/-b`` form: one bus, named as the caller says (default "pt")."""
    check_stays_on_host(interface, {})
    return {name: BusSpec(name, interface, channel, bitrate, data_bitrate, fd)}


def open_bus(spec: BusSpec) -> can.BusABC:
    """Open one bus; listen-only (passive) where the interface supports it and it isn't ours."""
    import can

    try:
        bus = can.Bus(**spec.kwargs())
    except (can.CanError, OSError, ValueError, ImportError, TypeError) as err:
        raise BusConfigError(f"bus {spec.name!r} ({spec.interface}:{spec.channel}): {err}") from err
    if not spec.is_simulated:
        try:
            bus.state = can.BusState.PASSIVE
        except (NotImplementedError, can.CanError, AttributeError):
            pass  # the gateway's transmit gate still blocks every frame until armed
    return bus


def open_buses(specs: Mapping[str, BusSpec]) -> dict[str, can.BusABC]:
    """Open every bus of a bench; on failure close the ones already opened."""
    opened: dict[str, can.BusABC] = {}
    try:
        for name, spec in specs.items():
            opened[name] = open_bus(spec)
    except BaseException:
        close_buses(opened.values())
        raise
    return opened


def close_buses(buses: Iterable[can.BusABC]) -> None:
    for bus in buses:
        try:
            bus.shutdown()
        except Exception:  # noqa: BLE001 - closing must reach every bus
            pass
