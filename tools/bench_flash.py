"""Benchmark: flash a 1 MiB image through the timed bus (hilbus on a SimClock), classic and CAN FD.

Tester (udsoncan + can-isotp logic) and ECU (hil.uds server) answer at the instant a frame
ends (hil/uds/clocked.py), so the bus time measured is the bus and the protocol. Prints the
transfer throughput in bytes per second of bus time (RequestDownload answer to
RequestTransferExit answer), the wall time, and the ratio to the ISO-TP maximum at that bit
rate derived in docs/flashing.md (no stuff bits: the strict bound; worst-case stuffing; and
the exact bit count of the ideal frame sequence of this very image).

    python tools/bench_flash.py [--size-kib 1024]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import time

from udsoncan.client import Client

from hil.bus.bits import bit_counts, fd_padded_length
from hil.bus.channel import open_channel
from hil.bus.clock import SimClock
from hil.uds.clocked import ClockedEcu, ClockedTesterConnection
from hil.uds.ecus import Z10_ECUS
from hil.uds.server import UdsServer
from vehicle_io import diag
from vehicle_io.flash.image import FlashImage
from vehicle_io.flash.sequence import Flasher
from vehicle_io.flash.signing import dev_private_key, sign_image


def frame_bits_bounds(payload: int, fd: bool, nominal: int, data_rate: int) -> tuple[float, float]:
    """Seconds of one frame carrying ``payload`` bytes: (no stuffing, worst-case stuffing)."""
    if not fd:
        bits = 47 + 8 * payload
        worst = bits + (34 + 8 * payload - 1) // 4
        return bits / nominal, worst / nominal
    # CAN FD, 11-bit id, BRS: arbitration phase SOF..BRS = 1+11+1(RRS)+1(IDE)+1(FDF)+1(res)+1(BRS) = 17,
    # then CRC delimiter, ACK slot, ACK delimiter, EOF 7, IFS 3 = 13 at the nominal rate;
    # data phase ESI + DLC 4 + data + stuff count 4 + CRC (17 / 21) + fixed stuff bits.
    crc = 17 if payload <= 16 else 21
    fixed = math.ceil((4 + crc) / 4)  # one fixed stuff bit every 4 bits of stuff count + CRC, plus the first
    data_bits = 1 + 4 + 8 * payload + 4 + crc + fixed
    arb_bits = 17 + 13
    best = arb_bits / nominal + data_bits / data_rate
    worst = (arb_bits + (17 - 1) // 4) / nominal + (data_bits + (5 + 8 * payload - 1) // 4) / data_rate
    return best, worst


def isotp_bounds(size: int, block_length: int, fd: bool, nominal: int, data_rate: int) -> tuple[float, float]:
    """Bus seconds to download ``size`` bytes in TransferData blocks of ``block_length``, back to back."""
    frame = 64 if fd else 8
    chunk = block_length - 2
    best = worst = 0.0
    for offset in range(0, size, chunk):
        message = 2 + min(chunk, size - offset)
        escape = message > 4095
        ff_payload = frame - (6 if escape else 2)
        cfs = math.ceil(max(0, message - ff_payload) / (frame - 1))
        for payload, count in ((frame, 1 + cfs), (8 if not fd else 8, 1), (8 if not fd else 8, 1)):
            # FF + CFs (padded to the full frame), one flow control, one 0x76 response (padded to 8)
            b, w = frame_bits_bounds(payload, fd, nominal, data_rate)
            best += b * count
            worst += w * count
    return best, worst


def exact_ideal_s(image: bytes, block_length: int, fd: bool, nominal: int, data_rate: int) -> float:
    """Bus seconds of the ideal frame sequence of this image, bits counted by hil.bus.bits (real stuffing)."""
    frame = 64 if fd else 8
    chunk = block_length - 2
    total = 0.0

    def add(can_id: int, data: bytes) -> float:
        if fd:
            data = data.ljust(fd_padded_length(len(data)), b"\xcc")
        nom, dat = bit_counts(can_id, False, False, fd, fd, False, min(len(data), 8), data)
        return nom / nominal + (dat / data_rate if fd else 0.0)

    for index, offset in enumerate(range(0, len(image), chunk)):
        message = bytes([0x36, (index + 1) & 0xFF]) + image[offset:offset + chunk]
        if len(message) <= frame - 2:  # a single frame (0x00, length escape on FD)
            total += add(0x7E0, (bytes([len(message)]) if not fd else bytes([0, len(message)])) + message)
            total += add(0x7E8, bytes([0x02, 0x76, (index + 1) & 0xFF]).ljust(8, b"\xcc"))
            continue
        if len(message) > 4095:
            first = b"\x10\x00" + len(message).to_bytes(4, "big")
        else:
            first = bytes([0x10 | (len(message) >> 8), len(message) & 0xFF])
        first += message[:frame - len(first)]
        rest = message[frame - (6 if len(message) > 4095 else 2):]
        total += add(0x7E0, first)
        for n, start in enumerate(range(0, len(rest), frame - 1)):
            part = bytes([0x20 | ((n + 1) & 0xF)]) + rest[start:start + frame - 1]
            total += add(0x7E0, part.ljust(frame, b"\xcc"))
        total += add(0x7E8, b"\x30\x00\x00".ljust(8, b"\xcc"))
        total += add(0x7E8, bytes([0x02, 0x76, (index + 1) & 0xFF]).ljust(8, b"\xcc"))
    return total


def run_case(name: str, size: int, fd: bool, nominal: int, data_rate: int, block_length: int) -> None:
    clock = SimClock()
    channel = open_channel(f"bench-flash-{name}", clock=clock, bitrate=nominal,
                           data_bitrate=data_rate if fd else None, fd=fd)
    address = diag.ECUS["vcu"]
    config = dataclasses.replace(Z10_ECUS["vcu"], max_block_length=block_length)
    server = UdsServer(config, clock=clock.now, rng=random.Random(1))
    ClockedEcu(channel, server, address, fd)
    image = random.Random(7).randbytes(size)  # one seeded stream: reproducible, realistic stuffing
    signature = sign_image(dev_private_key(), "vcu", 0, image).signature
    connection = ClockedTesterConnection(channel, address, fd)
    wall0 = time.perf_counter()
    with Client(connection, config=diag._client_config(2.0)) as client:  # type: ignore[arg-type]
        report = Flasher(client, "vcu", clock=clock.now, max_block_length=65535 if fd else 4095).flash(
            FlashImage(0, image), signature)
    wall_s = time.perf_counter() - wall0
    channel.close()
    assert bytes(server.nv.flash.banks[server.nv.flash.active].data[:size]) == image
    best_s, worst_s = isotp_bounds(size, report.block_length, fd, nominal, data_rate)
    exact_s = exact_ideal_s(image, report.block_length, fd, nominal, data_rate)
    rate = size / report.transfer_s
    print(f"{name}: {size} bytes, {report.blocks} blocks of {report.block_length} bytes")
    print(f"  transfer {report.transfer_s:.3f} s of bus time -> {rate:,.0f} B/s; whole flash {report.total_s:.3f} s "
          f"bus time (erase model {config.erase_base_s + config.erase_s_per_mib * size / (1 << 20):.2f} s); "
          f"wall {wall_s:.2f} s ({report.total_s / wall_s:.1f}x real time)")
    print(f"  ISO-TP maximum: {size / best_s:,.0f} B/s (no stuff bits), {size / exact_s:,.0f} B/s (this image's "
          f"real stuffing), {size / worst_s:,.0f} B/s (worst-case stuffing)")
    print(f"  ratio: {best_s / report.transfer_s:.1%} of the no-stuffing bound, {exact_s / report.transfer_s:.1%} "
          f"of the exact ideal, {worst_s / report.transfer_s:.1%} of the worst-case bound")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-kib", type=int, default=1024)
    args = parser.parse_args()
    size = args.size_kib * 1024
    run_case("classic 500k", size, False, 500_000, 500_000, 4095)
    run_case("CAN FD 500k/2M", size, True, 500_000, 2_000_000, 4095)
    run_case("CAN FD 500k/2M, block 16386", size, True, 500_000, 2_000_000, 16386)


if __name__ == "__main__":
    main()
