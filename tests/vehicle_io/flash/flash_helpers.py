"""Helpers of the flash tests: a live simulated van in this process, and `z10 flash` runs."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import uuid
from collections.abc import Sequence
from typing import Any

from hil.rig import Rig
from hil.uds.ecus import attach, make_servers
from hil.uds.live import LiveDiagnostics
from hil.uds.server import Conditions, UdsServer
from vehicle_io.cli import flash_cmd
from vehicle_io.errors import VehicleIoError


class LiveVan:
    """The simulated Z10 on real-time hilbus channels with UDS servers, like `z10 sim` without the hub."""

    def __init__(self, **server_kwargs: Any) -> None:
        self.prefix = f"fl{uuid.uuid4().hex[:8]}-"
        self.rig = Rig(seed=3, clock="real", channel_prefix=self.prefix)
        rig = self.rig
        self.servers: dict[str, UdsServer] = make_servers(
            conditions=lambda: Conditions(speed_mps=float(rig.van.read("speed_mps"))),
            clock=lambda: rig.t_s, **server_kwargs)
        self.uds_buses = {name: rig.open_bus(name, node=f"UDS-{name}") for name in ("pt", "body")}
        self.transports = attach(self.uds_buses, self.servers)
        self.diagnostics = LiveDiagnostics(rig, self.servers, self.uds_buses, lambda: rig.van.model.outputs.snapshot(),
                                           locks={t.address.name: t.lock for t in self.transports}).start()

    def channel(self, bus: str = "pt") -> str:
        return f"{self.prefix}{bus}"

    def bus_args(self, bus: str = "pt") -> list[str]:
        return ["-i", "hilbus", "-c", self.channel(bus), "-b", "500000", "--bus-name", bus]

    def close(self) -> None:
        self.diagnostics.shutdown()
        for transport in self.transports:
            transport.shutdown()
        for bus in self.uds_buses.values():
            bus.shutdown()
        self.rig.close()


def run_flash(argv: Sequence[str]) -> tuple[int, str, str]:
    """`z10 flash ARGV` in this process: (exit code, stdout, stderr), errors mapped as `z10` does."""
    parser = argparse.ArgumentParser(prog="z10 flash")
    flash_cmd.add_arguments(parser)
    args = parser.parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = flash_cmd.run(args)
        except (VehicleIoError, ValueError, OSError) as error:  # what vehicle_io.cli.main maps to exit 2
            print(f"error: {error}", file=err)
            code = 2
    return code, out.getvalue(), err.getvalue()


def summary(stdout: str) -> dict[str, Any]:
    return json.loads(stdout)
