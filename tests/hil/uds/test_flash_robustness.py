"""Flash robustness on the engine: interrupted anywhere, the ECU keeps a bootable image; signatures."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import random
import zlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.uds.ecus import Z10_ECUS
from hil.uds.server import EcuNvState, UdsServer
from uds_helpers import StepClock, Van
from vehicle_io.diag.security import dev_key

OLD = random.Random(1).randbytes(320)
NEW = random.Random(2).randbytes(320)
BLOCK_DATA = 6  # max_block_length 8


class Ecu:
    """One ECU whose server object can be replaced by a power cycle (the NV state stays)."""

    def __init__(self, **config: object) -> None:
        self.clock = StepClock(follow_real_time=False)
        # unsigned images unless the test gives a verifier (the Ed25519 path: tests/vehicle_io/flash)
        config.setdefault("image_verifier", None)
        self.config = dataclasses.replace(Z10_ECUS["vcu"], max_block_length=8, **config)
        self.nv = EcuNvState.for_config(self.config)
        bank_a = self.nv.flash.banks["A"]
        bank_a.data[:len(OLD)] = OLD  # the image running at the start
        self.server = self._boot()

    def _boot(self) -> UdsServer:
        return UdsServer(self.config, self.nv, clock=self.clock, conditions=Van(), rng=random.Random(4))

    def power_cycle(self) -> None:
        self.server = self._boot()
        self.server.reset()

    def request(self, data: bytes) -> bytes | None:
        out = self.server.handle(data)
        while self.server.busy:
            self.clock.offset_s = max(self.clock.offset_s, self.server.next_deadline_s() or 0.0)
            out += self.server.poll()
        return out[-1] if out else None

    def running_image(self) -> bytes:
        bank = self.nv.flash.banks[self.nv.flash.active]
        assert bank.valid, "the active bank is not bootable"
        return bytes(bank.data[:len(OLD)])


def flash_steps(ecu: Ecu, image: bytes, signature: bytes = b"") -> list[Callable[[], bytes | None]]:
    size = len(image).to_bytes(4, "big")
    seed: list[bytes] = []

    def send_key() -> bytes | None:
        return ecu.request(b"\x27\x12" + dev_key("vcu", 0x11, seed[0]))

    def request_seed() -> bytes | None:
        answer = ecu.request(b"\x27\x11")
        seed[:] = [answer[2:] if answer and answer[0] == 0x67 else b"\x00" * 4]
        return answer

    steps: list[Callable[[], bytes | None]] = [
        lambda: ecu.request(b"\x10\x03"), lambda: ecu.request(b"\x10\x02"), request_seed, send_key,
        lambda: ecu.request(b"\x31\x01\xff\x00\x44\x00\x00\x00\x00" + size),
        lambda: ecu.request(b"\x34\x00\x44\x00\x00\x00\x00" + size),
    ]
    for block, offset in enumerate(range(0, len(image), BLOCK_DATA)):
        chunk = image[offset:offset + BLOCK_DATA]
        steps.append(lambda c=chunk, n=(block + 1) & 0xFF: ecu.request(bytes([0x36, n]) + c))
    steps += [
        lambda: ecu.request(b"\x37"),
        lambda: ecu.request(b"\x31\x01\x02\x02" + zlib.crc32(image).to_bytes(4, "big")),
        lambda: ecu.request(b"\x31\x01\xff\x01" + signature),
        lambda: ecu.request(b"\x11\x01"),
    ]
    return steps


def run_flash(ecu: Ecu, image: bytes, signature: bytes = b"") -> list[bytes | None]:
    return [step() for step in flash_steps(ecu, image, signature)]


def test_a_complete_flash_switches_to_the_new_image():
    ecu = Ecu()
    answers = run_flash(ecu, NEW)
    assert all(a is not None and a[0] != 0x7F for a in answers), answers
    assert ecu.running_image() == NEW and ecu.nv.flash.active == "B"


INTERRUPTIONS = ("ecu_reset", "power_cycle", "tool_killed", "bus_cut_then_garbage")


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(0, 70), how=st.sampled_from(INTERRUPTIONS), noise=st.binary(max_size=10))
def test_an_interrupted_flash_never_bricks_and_a_retry_succeeds(cut, how, noise):
    ecu = Ecu()
    steps = flash_steps(ecu, NEW)
    for step in steps[:min(cut, len(steps))]:
        step()
    if how == "ecu_reset":
        ecu.server.reset()
    elif how == "power_cycle":
        ecu.power_cycle()
    elif how == "tool_killed":
        ecu.clock.advance(6.0)  # the tester is gone: S3 runs out
        ecu.server.poll()
    else:
        ecu.request(noise)
        ecu.power_cycle()
    assert ecu.running_image() in (OLD, NEW)
    assert ecu.server.session == 0x01
    ecu.clock.advance(11.0)  # past any security delay
    answers = run_flash(ecu, NEW)
    assert answers[-1] == b"\x51\x01", answers
    assert ecu.running_image() == NEW


SECRET = b"test-signing-secret"


def verifier(address: int, image: bytes, signature: bytes) -> bool:
    """A stand-in for the Ed25519 check: the engine only sees (address, image, signature) -> bool."""
    assert address == 0
    return hmac.compare_digest(hmac.new(SECRET, image, hashlib.sha256).digest(), signature)


@pytest.mark.parametrize("signature, accepted", [
    (hmac.new(SECRET, NEW, hashlib.sha256).digest(), True),
    (b"", False),                                                   # unsigned
    (hmac.new(SECRET, OLD, hashlib.sha256).digest(), False),        # signature of another image
    (b"\x00" * 32, False),                                          # tampered
])
def test_signed_images_only(signature, accepted):
    ecu = Ecu(image_verifier=verifier)
    answers = run_flash(ecu, NEW, signature)
    if accepted:
        assert answers[-2] == b"\x71\x01\xff\x01\x00" and ecu.running_image() == NEW
    else:
        assert answers[-2] == b"\x7f\x31\x72"
        assert ecu.running_image() == OLD and not ecu.nv.flash.banks["B"].valid
        assert "image rejected" in ecu.server.last_error


def test_a_verifier_that_raises_rejects_the_image():
    def broken(address: int, image: bytes, signature: bytes) -> bool:
        raise ValueError("not a valid Ed25519 signature length")

    ecu = Ecu(image_verifier=broken)
    assert run_flash(ecu, NEW, b"\x01")[-2] == b"\x7f\x31\x72"
    assert ecu.running_image() == OLD and "could not be checked" in ecu.server.last_error


def test_an_ecu_without_verifier_refuses_an_option_record():
    ecu = Ecu()
    assert run_flash(ecu, NEW, b"\x01\x02")[-2] == b"\x7f\x31\x13"
