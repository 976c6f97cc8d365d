"""The Flasher (the engine of `z10 flash`) against the simulated ECUs: counter wrap, CAN FD, interruptions."""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Iterator

import can
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.uds.ecus import Z10_ECUS, attach
from hil.uds.server import EcuNvState, UdsServer
from hil.uds.transport import UdsEcuTransport
from vehicle_io import diag
from vehicle_io.flash.image import FlashImage
from vehicle_io.flash.sequence import FlashError, Flasher
from vehicle_io.flash.signing import dev_private_key, sign_image

OLD = random.Random(10).randbytes(2000)
NEW = random.Random(11).randbytes(2000)


class Bench:
    """One VCU server on a python-can virtual bus, with a tester bus; the server can be power-cycled."""

    def __init__(self, **config: object) -> None:
        self.channel = f"fl-{uuid.uuid4().hex}"
        self.config = dataclasses.replace(Z10_ECUS["vcu"], **config)
        self.nv = EcuNvState.for_config(self.config)
        self.nv.flash.banks["A"].data[:len(OLD)] = OLD
        self.ecu_bus = can.Bus(interface="virtual", channel=self.channel)
        self.tester_bus = can.Bus(interface="virtual", channel=self.channel)
        self.server = UdsServer(self.config, self.nv, rng=random.Random(1))
        self.transports = attach({"pt": self.ecu_bus}, {"vcu": self.server})

    def cut(self) -> None:
        """The ECU falls silent (bus cut / ECU unpowered)."""
        for t in self.transports:
            t.shutdown()
        self.transports = []

    def power_cycle(self) -> None:
        self.cut()
        self.server = UdsServer(self.config, self.nv, rng=random.Random(2))
        self.server.reset()
        self.transports = attach({"pt": self.ecu_bus}, {"vcu": self.server})

    def running(self) -> bytes:
        bank = self.nv.flash.banks[self.nv.flash.active]
        assert bank.valid, "the ECU has no bootable image"
        return bytes(bank.data[:len(OLD)])

    def flash(self, data: bytes, *, progress=None, p2_s: float = 1.0):
        signature = sign_image(dev_private_key(), "vcu", 0, data).signature
        with diag.open_client(self.tester_bus, diag.ECUS["vcu"], timeout_s=p2_s) as client:
            return Flasher(client, "vcu", progress=progress, block_retries=0).flash(FlashImage(0, data), signature)

    def close(self) -> None:
        self.cut()
        self.ecu_bus.shutdown()
        self.tester_bus.shutdown()


@pytest.fixture
def bench() -> Iterator[Bench]:
    b = Bench(max_block_length=8)
    try:
        yield b
    finally:
        b.close()


def test_block_sequence_counter_wraps_past_255_blocks(bench):
    counters: list[int] = []
    original = bench.server._transfer_data

    def spy(req: bytes) -> bytes:
        counters.append(req[1])
        return original(req)

    bench.server._HANDLERS = {**UdsServer._HANDLERS, 0x36: lambda server, req: spy(req)}
    report = bench.flash(NEW)
    assert report.blocks == 334 and report.block_length == 8  # 2000 bytes / 6 per block
    assert counters[:3] == [1, 2, 3] and counters[254:257] == [0xFF, 0x00, 0x01] and counters[-1] == 334 & 0xFF
    assert bench.running() == NEW and bench.nv.flash.active == "B"


class Stop(Exception):
    """The tester process dies (Ctrl-C, crash) in the middle of the flash."""


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at_block=st.integers(0, 30), how=st.sampled_from(("tool_killed", "ecu_reset", "bus_cut")))
def test_an_interrupted_flash_keeps_the_old_image_and_the_same_command_then_succeeds(at_block, how):
    bench = Bench(max_block_length=130)  # 16 blocks of 128 bytes
    try:
        def interrupt(done: int, total: int) -> None:
            if done >= min(at_block, 15) * 128:
                if how == "tool_killed":
                    raise Stop()
                if how == "ecu_reset":
                    bench.power_cycle()
                else:
                    bench.cut()

        with pytest.raises((Stop, FlashError)):
            bench.flash(NEW, progress=interrupt, p2_s=0.2)
        assert bench.running() == OLD  # the old image ran in between
        if how == "bus_cut":
            bench.power_cycle()  # the harness is plugged back in (the ECU lost power with it)
        report = bench.flash(NEW)
        assert report.blocks == 16
        assert bench.running() == NEW
    finally:
        bench.close()


def test_can_fd_block_length_above_4095_uses_the_first_frame_escape():
    """ISO-TP on CAN FD: an 8 KiB TransferData (FF_DL > 4095: escape sequence) on an FD hilbus channel."""
    channel = f"fd-{uuid.uuid4().hex}"
    config = dataclasses.replace(Z10_ECUS["vcu"], max_block_length=8194)
    server = UdsServer(config, rng=random.Random(3))
    ecu_bus = can.Bus(interface="hilbus", channel=channel, bitrate=500_000, data_bitrate=2_000_000, fd=True, node="VCU")
    tester_bus = can.Bus(interface="hilbus", channel=channel, fd=True, node="TESTER")
    first_frames: list[bytes] = []
    ecu_bus._hil_channel.add_frame_observer(
        lambda f: first_frames.append(bytes(f.data)) if f.arbitration_id == 0x7E0 and f.data[0] & 0xF0 == 0x10 else None)
    transport = UdsEcuTransport(ecu_bus, server, diag.ECUS["vcu"], fd=True).start()
    data = random.Random(4).randbytes(20000)
    try:
        signature = sign_image(dev_private_key(), "vcu", 0, data).signature
        with diag.open_client(tester_bus, diag.ECUS["vcu"], timeout_s=2.0, fd=True) as client:
            report = Flasher(client, "vcu", max_block_length=65535).flash(FlashImage(0, data), signature)
    finally:
        transport.shutdown()
        ecu_bus.shutdown()
        tester_bus.shutdown()
    assert report.block_length == 8194 and report.blocks == 3
    escaped = [f for f in first_frames if f[:2] == b"\x10\x00"]
    assert len(escaped) == 2 and int.from_bytes(escaped[0][2:6], "big") == 8194  # the short last block: a plain FF
    assert bytes(server.nv.flash.banks[server.nv.flash.active].data[:len(data)]) == data


def test_one_mib_on_the_clocked_bus_finishes_in_bus_time():
    """1 MiB over CAN FD on a SimClock (what tools/bench_flash.py runs): the 1.05 s erase ends
    on a deadline that is not a whole number of picoseconds; the ECU's poll timer must land
    at or after it (it used to re-arm at the same instant forever)."""
    from hil.bus.channel import open_channel
    from hil.bus.clock import SimClock
    from hil.uds.clocked import ClockedEcu, ClockedTesterConnection
    from udsoncan.client import Client

    clock = SimClock()
    channel = open_channel(f"clk-{uuid.uuid4().hex}", clock=clock, bitrate=500_000, data_bitrate=2_000_000, fd=True)
    config = dataclasses.replace(Z10_ECUS["vcu"], max_block_length=16386)
    server = UdsServer(config, clock=clock.now, rng=random.Random(1))
    ClockedEcu(channel, server, diag.ECUS["vcu"], True)
    image = random.Random(5).randbytes(1 << 20)
    signature = sign_image(dev_private_key(), "vcu", 0, image).signature
    connection = ClockedTesterConnection(channel, diag.ECUS["vcu"], True)
    try:
        with Client(connection, config=diag._client_config(2.0)) as client:
            report = Flasher(client, "vcu", clock=clock.now, max_block_length=65535).flash(FlashImage(0, image), signature)
    finally:
        channel.close()
    assert report.blocks == 64 and bytes(server.nv.flash.banks[server.nv.flash.active].data[: 1 << 20]) == image
    assert 5.0 < report.total_s < 10.0  # bus time: ~1 s erase + ~5.8 s at ~180 kB/s
