"""Program flash of a simulated ECU: two banks (A/B), flash write rules, activation on reset.

The tester always downloads to logical addresses ``0 .. bank_size``; the ECU maps them onto
the *inactive* bank, so the running image is never touched by a download. A bank becomes
bootable only after the check-programming-dependencies routine accepted it, and becomes the
active bank at the next ECU reset. Whatever interrupts a flash (bus cut, reset, tool killed),
the active bank is still the old, valid image.

Flash rules modelled: erase sets bytes to 0xFF; a byte can be programmed once per erase (the
ECU refuses to program a byte twice without an erase: generalProgrammingFailure).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from hil.uds.errors import FlashWriteError

__all__ = ["Bank", "FlashMemory", "FlashWriteError"]


@dataclass
class Bank:
    """One flash bank: its bytes, which bytes were programmed since the last erase, its state."""

    name: str
    size: int
    data: bytearray = field(init=False)
    programmed: bytearray = field(init=False)
    #: the bank holds a complete image accepted by check-programming-dependencies
    valid: bool = False
    #: bytes written since the last erase (counts each byte once)
    bytes_written: int = 0
    #: number of program operations performed (a repeated block must not add one)
    write_operations: int = 0
    #: fault injection: a programming failure (worn cells, programming voltage lost)
    write_fault: bool = False

    def __post_init__(self) -> None:
        self.data = bytearray(b"\xff" * self.size)
        self.programmed = bytearray(self.size)

    def erase(self, address: int, length: int) -> None:
        self._check_range(address, length)
        self.data[address:address + length] = b"\xff" * length
        self.programmed[address:address + length] = bytes(length)
        self.valid = False
        self.bytes_written = self.size - self.programmed.count(0)

    def write(self, address: int, payload: bytes) -> None:
        self._check_range(address, len(payload))
        end = address + len(payload)
        if self.write_fault:
            raise FlashWriteError(f"bank {self.name}: programming failed at 0x{address:06X} (injected fault)")
        if any(self.programmed[address:end]):
            raise FlashWriteError(f"bank {self.name}: bytes 0x{address:06X}..0x{end - 1:06X} are not erased")
        self.data[address:end] = payload
        self.programmed[address:end] = b"\x01" * len(payload)
        self.bytes_written += len(payload)
        self.write_operations += 1
        self.valid = False

    def crc32(self, address: int, length: int) -> int:
        self._check_range(address, length)
        return zlib.crc32(bytes(self.data[address:address + length])) & 0xFFFFFFFF

    def is_programmed(self, address: int, length: int) -> bool:
        self._check_range(address, length)
        return all(self.programmed[address:address + length])

    def is_erased(self, address: int, length: int) -> bool:
        self._check_range(address, length)
        return not any(self.programmed[address:address + length])

    def _check_range(self, address: int, length: int) -> None:
        if address < 0 or length < 0 or address + length > self.size:
            raise FlashWriteError(
                f"bank {self.name}: expected a range inside 0x000000..0x{self.size - 1:06X}, "
                f"but got 0x{address:X} + {length} bytes")


@dataclass
class FlashMemory:
    """The A/B program flash of one ECU (part of its non-volatile state)."""

    bank_size: int = 1 << 20
    banks: dict[str, Bank] = field(default_factory=dict)
    active: str = "A"
    #: the bank to boot from at the next reset (set when a bank was accepted)
    pending_activation: str | None = None
    #: the region the last download announced, for the CRC / dependency routines
    download_address: int = 0
    download_length: int = 0
    #: the CRC32 the check-memory routine confirmed for that region (None: not checked)
    checked_crc32: int | None = None

    def __post_init__(self) -> None:
        if not self.banks:
            self.banks = {"A": Bank("A", self.bank_size), "B": Bank("B", self.bank_size)}
            # The factory image: bank A is bootable from the start.
            self.banks["A"].valid = True

    @property
    def inactive(self) -> str:
        return "B" if self.active == "A" else "A"

    @property
    def target(self) -> Bank:
        """The bank a download writes to: always the one not running."""
        return self.banks[self.inactive]

    def activate_pending(self) -> bool:
        """At reset: boot the accepted bank if there is one; True when the active bank changed."""
        name = self.pending_activation
        self.pending_activation = None
        if name is None or name == self.active or not self.banks[name].valid:
            return False
        self.active = name
        return True
