"""The UDS programming sequence of one ECU, over any udsoncan client.

::

    extended session (0x10 03)                          target, physical
    [functional, suppressed: extended session, DTC setting off (0x85 02),
     communication control disableRxAndTx normal messages (0x28 03 01)]
    programming session (0x10 02)
    security access level 0x11 (seed / key)
    erase the target region (0x31 01 FF00; 0x78 response pending, P2* 5000 ms)
    request download (0x34) -> maxNumberOfBlockLength
    transfer data (0x36), block sequence counter 0x01.. wrapping 0xFF -> 0x00
    request transfer exit (0x37) -> the ECU's CRC-32 of the region, compared
    check memory (0x31 01 0202 + CRC-32) -> 0x00
    check programming dependencies (0x31 01 FF01 + 64-byte Ed25519 signature) -> 0x00
    ECU reset (0x11 01): the ECU boots the new bank
    [functional, suppressed: default session: the other ECUs talk again]
    [read-back: extended session, security 0x01, ReadMemoryByAddress (0x23), compared]

The ECU writes to its inactive A/B bank, so whatever interrupts the sequence, the old image
keeps running; running the same sequence again restarts cleanly from the erase (the ECU
repeats nothing half-done: the erase invalidates the partial bank).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vehicle_io.diag import DiagError, DiagTimeout, NegativeResponseError
from vehicle_io.diag.security import dev_key

if TYPE_CHECKING:
    from udsoncan.client import Client

    from vehicle_io.flash.image import FlashImage

__all__ = ["FlashError", "FlashReport", "Flasher", "ROUTINE_CHECK_DEPENDENCIES", "ROUTINE_CHECK_MEMORY",
           "ROUTINE_ERASE", "SecurityKeyFn"]

ROUTINE_ERASE = 0xFF00
ROUTINE_CHECK_DEPENDENCIES = 0xFF01
ROUTINE_CHECK_MEMORY = 0x0202
LEVEL_PROGRAMMING = 0x11
LEVEL_EXTENDED = 0x01
NRC_BUSY = 0x21

#: (ecu name, requestSeed level, seed) -> key
SecurityKeyFn = Callable[[str, int, bytes], bytes]


class FlashError(DiagError):
    """The flash did not complete; ``step`` names where, the ECU keeps its old image."""

    def __init__(self, step: str, message: str, code: int | None = None) -> None:
        self.step, self.code = step, code
        super().__init__(f"{step}: {message}")


@dataclass
class FlashReport:
    ecu: str
    address: int
    length: int
    crc32: int
    signed: bool
    block_length: int = 0
    blocks: int = 0
    transfer_s: float = 0.0
    total_s: float = 0.0
    repeated_blocks: int = 0
    read_back: bool = False
    steps: list[tuple[str, float]] = field(default_factory=list)

    @property
    def transfer_bytes_per_s(self) -> float:
        return self.length / self.transfer_s if self.transfer_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ecu": self.ecu, "address": f"0x{self.address:08X}", "length": self.length,
            "crc32": f"0x{self.crc32:08X}", "signed": self.signed, "block_length": self.block_length,
            "blocks": self.blocks, "repeated_blocks": self.repeated_blocks, "transfer_s": round(self.transfer_s, 6),
            "transfer_bytes_per_s": round(self.transfer_bytes_per_s, 1), "total_s": round(self.total_s, 6),
            "read_back": self.read_back, "steps": [{"step": s, "t_s": round(t, 6)} for s, t in self.steps],
        }


class Flasher:
    """Flash one ECU through a connected udsoncan ``client``.

    ``functional``: sends one functionally addressed request (no answer awaited), used for
    the suppressed pre- and post-programming requests to every ECU; None skips them.
    ``progress(done_bytes, total_bytes)`` is called after every block. ``clock`` times the
    steps (inject the bus clock for simulated time); ``sleep`` waits before repeating a
    request the ECU answered busy (0x21).
    """

    def __init__(self, client: Client, ecu: str, *, key_fn: SecurityKeyFn = dev_key,
                 functional: Callable[[bytes], None] | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 max_block_length: int = 4095, busy_retry_s: float = 5.0, block_retries: int = 2) -> None:
        self.client = client
        self.ecu = ecu
        self.key_fn = key_fn
        self.functional = functional
        self.progress = progress
        self.clock = clock
        self.sleep = sleep
        #: the largest request the tester's ISO-TP can send (4095 classic, more with the FF escape)
        self.max_block_length = max_block_length
        self.busy_retry_s = busy_retry_s
        self.block_retries = block_retries
        self._t0 = 0.0
        self._report: FlashReport | None = None

    # ------------------------------------------------------------------ helpers
    @contextmanager
    def _step(self, name: str) -> Iterator[None]:
        from vehicle_io.diag import _translated

        try:
            with _translated(self.ecu, name):
                yield
        except NegativeResponseError as err:
            raise FlashError(name, str(err), err.code) from err
        except DiagError as err:
            raise FlashError(name, str(err)) from err
        if self._report is not None:
            self._report.steps.append((name, self.clock() - self._t0))

    def _call(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """One request; repeated while the ECU answers busyRepeatRequest (0x21)."""
        deadline = self.clock() + self.busy_retry_s
        while True:
            try:
                with self._step(name):
                    return fn(*args)
            except FlashError as err:
                if err.code != NRC_BUSY or self.clock() >= deadline:
                    raise
                self.sleep(0.05)

    def _send_functional(self, payload: bytes) -> None:
        if self.functional is None:
            return
        try:
            self.functional(payload)
        except Exception as err:  # noqa: BLE001 - the other ECUs' silence is a courtesy, not a condition
            if self._report is not None:
                self._report.steps.append((f"functional {payload.hex()} not sent: {err}", self.clock() - self._t0))

    def _unlock(self, level: int) -> None:
        seed = bytes(self._call(f"SecurityAccess requestSeed 0x{level:02X}", self.client.request_seed, level)
                     .service_data.seed)
        if any(seed):
            key = self.key_fn(self.ecu, level, seed)
            self._call(f"SecurityAccess sendKey 0x{level + 1:02X}", self.client.send_key, level + 1, key)

    # ------------------------------------------------------------------ the sequence
    def flash(self, image: FlashImage, signature: bytes | None, *, read_back: bool = False) -> FlashReport:
        """Program ``image``; ``signature`` is the 64-byte Ed25519 signature (None: unsigned)."""
        if image.length == 0:
            raise FlashError("image", "expected image data, but the image is empty")
        report = FlashReport(self.ecu, image.address, image.length, image.crc32, bool(signature))
        self._report = report
        self._t0 = self.clock()
        try:
            self._program(image, signature, report)
        except BaseException:
            # Whatever stopped the flash: every ECU back to default, so the van talks again at
            # once (without this the silenced ECUs wait for their S3 timeout).
            self._send_functional(b"\x10\x81")
            raise
        if read_back:
            self._read_back(image)
            report.read_back = True
        report.total_s = self.clock() - self._t0
        return report

    def _program(self, image: FlashImage, signature: bytes | None, report: FlashReport) -> None:
        from udsoncan import MemoryLocation

        client = self.client
        self._call("DiagnosticSessionControl extended", client.change_session, 0x03)
        self._send_functional(b"\x10\x83")      # every ECU: extended session, no answer
        self._send_functional(b"\x85\x82")      # DTC setting off: the silence below sets no U-codes
        self._send_functional(b"\x28\x83\x01")  # disableRxAndTx of normal messages: the bus is ours
        self._call("DiagnosticSessionControl programming", client.change_session, 0x02)
        self._unlock(LEVEL_PROGRAMMING)
        location_record = b"\x44" + image.address.to_bytes(4, "big") + image.length.to_bytes(4, "big")
        answer = self._call("erase (RoutineControl 0xFF00)", client.start_routine, ROUTINE_ERASE, location_record)
        self._expect_routine_ok("erase (RoutineControl 0xFF00)", answer)
        location = MemoryLocation(image.address, image.length, 32, 32)
        answer = self._call("RequestDownload", client.request_download, location)
        block_length = min(int(answer.service_data.max_length), self.max_block_length)
        if block_length < 3:
            raise FlashError("RequestDownload", f"expected maxNumberOfBlockLength >= 3, but got {block_length}")
        report.block_length = block_length
        chunk = block_length - 2  # SID and block sequence counter take two bytes of each block
        transfer_start = self.clock()
        data = image.data
        for index, offset in enumerate(range(0, len(data), chunk)):
            counter = (index + 1) & 0xFF
            self._transfer_block(counter, data[offset:offset + chunk], index)
            report.blocks += 1
            if self.progress is not None:
                self.progress(min(offset + chunk, len(data)), len(data))
        answer = self._call("RequestTransferExit", client.request_transfer_exit)
        report.transfer_s = self.clock() - transfer_start
        ecu_crc = bytes(answer.service_data.parameter_records or b"")
        if len(ecu_crc) == 4 and int.from_bytes(ecu_crc, "big") != image.crc32:
            raise FlashError("RequestTransferExit", f"expected the ECU's CRC-32 0x{image.crc32:08X}, "
                             f"but it reports 0x{int.from_bytes(ecu_crc, 'big'):08X}")
        answer = self._call("check memory (RoutineControl 0x0202)", client.start_routine, ROUTINE_CHECK_MEMORY,
                            image.crc32.to_bytes(4, "big"))
        self._expect_routine_ok("check memory (RoutineControl 0x0202)", answer)
        answer = self._call("check programming dependencies / signature (RoutineControl 0xFF01)",
                            client.start_routine, ROUTINE_CHECK_DEPENDENCIES, signature or None)
        self._expect_routine_ok("check programming dependencies / signature (RoutineControl 0xFF01)", answer)
        self._call("ECUReset hard", client.ecu_reset, 0x01)
        self._send_functional(b"\x10\x81")      # every ECU back to default: normal traffic again

    def _transfer_block(self, counter: int, block: bytes, index: int) -> None:
        """One TransferData; a lost answer repeats the same block (the ECU does not write twice)."""
        name = f"TransferData block {index + 1} (counter 0x{counter:02X})"
        for attempt in range(self.block_retries + 1):
            try:
                self._call(name, self.client.transfer_data, counter, block)
                if attempt and self._report is not None:
                    self._report.repeated_blocks += attempt
                return
            except FlashError as err:
                if not isinstance(err.__cause__, DiagTimeout) or attempt == self.block_retries:
                    raise

    @staticmethod
    def _expect_routine_ok(name: str, answer: Any) -> None:
        status = bytes(answer.service_data.routine_status_record or b"")
        if status[:1] != b"\x00":
            raise FlashError(name, f"expected routine status 0x00, but got {status.hex() or 'none'}")

    def _read_back(self, image: FlashImage) -> None:
        """Read the running image back (ReadMemoryByAddress) and compare it byte for byte."""
        from udsoncan import MemoryLocation

        self._call("DiagnosticSessionControl extended (read-back)", self.client.change_session, 0x03)
        self._unlock(LEVEL_EXTENDED)
        chunk = max(1, min(self.max_block_length, 4095) - 1)
        got = bytearray()
        for offset in range(0, image.length, chunk):
            size = min(chunk, image.length - offset)
            answer = self._call("ReadMemoryByAddress", self.client.read_memory_by_address,
                                MemoryLocation(image.address + offset, size, 32, 32))
            got += bytes(answer.service_data.memory_block)
        self._call("DiagnosticSessionControl default", self.client.change_session, 0x01)
        if bytes(got) != image.data:
            first = next(i for i, (a, b) in enumerate(zip(got, image.data, strict=False)) if a != b) \
                if len(got) == image.length else min(len(got), image.length)
            raise FlashError("read-back", f"expected the image back, but byte 0x{image.address + first:08X} differs "
                             f"(CRC-32 read 0x{zlib.crc32(bytes(got)) & 0xFFFFFFFF:08X})")
