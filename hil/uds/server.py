"""UdsServer: the ISO 14229-1 (UDS) application layer of a simulated ECU, free of I/O.

Request bytes in, response bytes out; time comes from an injected clock, so a test steps
through S3 timeouts, lockout delays and long erases without waiting. A transport (see
:mod:`hil.uds.transport`) moves the bytes over ISO-TP.

Use::

    server = UdsServer(config, clock=clock, live=plant_values, conditions=van_conditions)
    replies = server.handle(request_bytes, functional=False)   # 0, 1 or more responses now
    replies += server.poll()      # later: 0x78 repeats, then the final answer of a long job

Behaviour (ISO 14229-1 where it decides, the Z10 vehicle-maker choices otherwise):

- Sessions 0x01 default, 0x03 extended, 0x02 programming (only from extended: from default
  -> 0x7E; refused with 0x22 while the van moves). The positive response carries P2 = 50 ms
  and P2* = 5000 ms (in 10 ms units). S3 = 5000 ms without a request returns to default.
  Every session change re-locks security and aborts a download.
- SecurityAccess levels 0x01/0x02 (extended or programming session: DID writes) and
  0x11/0x12 (programming session only: erase and download). Key algorithm:
  :func:`vehicle_io.diag.security.dev_key`. 3 wrong keys -> 0x36 and a 10 s delay (0x37
  meanwhile); the exhausted counter is kept in :class:`EcuNvState`, so a reset restarts the
  delay instead of clearing it. After the delay one attempt is allowed; a wrong key locks
  out again.
- Functional requests (0x7DF) suppress NRC 0x11, 0x12, 0x31, 0x7E and 0x7F (ISO 14229-1
  response behaviour to functionally addressed requests), and the suppressPosRspMsgIndicationBit suppresses positive responses of
  0x10, 0x11, 0x27, 0x28, 0x31, 0x3E and 0x85; a response-pending job always ends with its
  final response.
- Programming: erase (routine 0xFF00) -> RequestDownload (0x34) -> TransferData (0x36,
  block sequence counter 0x01.., wrapping 0xFF -> 0x00; the last block repeated is accepted
  without writing twice) -> RequestTransferExit (0x37, answers the CRC32 of the region) ->
  check memory (routine 0x0202, CRC32) -> check programming dependencies (routine 0xFF01,
  option record = the image signature when ``EcuConfig.image_verifier`` is set; an unsigned
  or tampered image -> 0x72 and the bank stays unbootable; else marks the bank bootable) ->
  ECUReset activates it. Downloads always go to the inactive
  A/B bank (:mod:`hil.uds.memory`).
- A request that arrives while a long job runs gets 0x21 busyRepeatRequest, except a
  functional TesterPresent with the suppress bit (3E 80): it keeps the session alive silently.
- NRC order (ISO 14229-1 figures 5 and 6): service supported (0x11), in the active session
  (0x7F), service security (0x33: RequestDownload, TransferData, RequestTransferExit need
  level 0x11), minimum length (0x13); for sub-function services then sub-function supported
  (0x12), in the session (0x7E), request sequence (0x24); then the service's own checks
  (total length 0x13, out of range 0x31, security of a DID / routine 0x33, conditions 0x22).
- ReadDataByIdentifier leaves unsupported DIDs out (0x31 only when none is supported), at most
  16 DIDs a request (0x13), 0x14 when the answer would exceed ``EcuConfig.max_read_length``.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from hil.uds.dtc import (
    EXT_CYCLES_SINCE_FAILED,
    EXT_OCCURRENCE,
    SNAPSHOT_FIRST,
    SNAPSHOT_LATEST,
    STATUS_AVAILABILITY_MASK,
    DtcDefinition,
    DtcStore,
)
from hil.uds.errors import FlashWriteError, UdsConfigError
from hil.uds.memory import FlashMemory
from vehicle_io.diag.security import dev_key

__all__ = [
    "Conditions", "EcuConfig", "EcuNvState", "LiveDid", "Nrc", "Session", "UdsServer",
    "ROUTINE_CHECK_MEMORY", "ROUTINE_CHECK_PROGRAMMING_DEPENDENCIES", "ROUTINE_ERASE_MEMORY",
]


class Session:
    DEFAULT = 0x01
    PROGRAMMING = 0x02
    EXTENDED = 0x03


class Nrc:
    """Negative response codes used by the server (ISO 14229-1 Annex A)."""

    GENERAL_REJECT = 0x10
    SERVICE_NOT_SUPPORTED = 0x11
    SUBFUNCTION_NOT_SUPPORTED = 0x12
    INCORRECT_LENGTH = 0x13
    RESPONSE_TOO_LONG = 0x14
    BUSY_REPEAT_REQUEST = 0x21
    CONDITIONS_NOT_CORRECT = 0x22
    REQUEST_SEQUENCE_ERROR = 0x24
    REQUEST_OUT_OF_RANGE = 0x31
    SECURITY_ACCESS_DENIED = 0x33
    INVALID_KEY = 0x35
    EXCEEDED_NUMBER_OF_ATTEMPTS = 0x36
    REQUIRED_TIME_DELAY_NOT_EXPIRED = 0x37
    UPLOAD_DOWNLOAD_NOT_ACCEPTED = 0x70
    TRANSFER_DATA_SUSPENDED = 0x71
    GENERAL_PROGRAMMING_FAILURE = 0x72
    WRONG_BLOCK_SEQUENCE_COUNTER = 0x73
    RESPONSE_PENDING = 0x78
    SUBFUNCTION_NOT_SUPPORTED_IN_SESSION = 0x7E
    SERVICE_NOT_SUPPORTED_IN_SESSION = 0x7F


#: NRCs a server does not send in answer to a functionally addressed request
_FUNCTIONAL_SUPPRESSED = frozenset({0x11, 0x12, 0x31, 0x7E, 0x7F})

ROUTINE_ERASE_MEMORY = 0xFF00
ROUTINE_CHECK_PROGRAMMING_DEPENDENCIES = 0xFF01
ROUTINE_CHECK_MEMORY = 0x0202

_ALL = frozenset({Session.DEFAULT, Session.EXTENDED, Session.PROGRAMMING})
_NON_DEFAULT = frozenset({Session.EXTENDED, Session.PROGRAMMING})
_NOT_PROGRAMMING = frozenset({Session.DEFAULT, Session.EXTENDED})
_PROGRAMMING = frozenset({Session.PROGRAMMING})

#: service id -> sessions it is available in
_SERVICE_SESSIONS: dict[int, frozenset[int]] = {
    0x10: _ALL, 0x11: _ALL, 0x14: _NOT_PROGRAMMING, 0x19: _NOT_PROGRAMMING, 0x22: _ALL, 0x23: _NON_DEFAULT,
    0x27: _NON_DEFAULT, 0x28: _NON_DEFAULT, 0x2E: _NON_DEFAULT, 0x31: _NON_DEFAULT,
    0x34: _PROGRAMMING, 0x36: _PROGRAMMING, 0x37: _PROGRAMMING, 0x3E: _ALL, 0x85: _NON_DEFAULT,
}

#: security level (odd requestSeed value) -> sessions it may be requested in
_SECURITY_LEVELS: dict[int, frozenset[int]] = {0x01: _NON_DEFAULT, 0x11: _PROGRAMMING}
LEVEL_EXTENDED = 0x01
LEVEL_PROGRAMMING = 0x11

#: services locked as a whole (not per DID / routine / memory range): checked right after
#: the session, before length or sequence (ISO 14229-1 figure 5, "SID security check")
_SERVICE_SECURITY: dict[int, int] = {0x34: LEVEL_PROGRAMMING, 0x36: LEVEL_PROGRAMMING, 0x37: LEVEL_PROGRAMMING}

_SEED_LENGTH = 4
_DID_PER_REQUEST_MAX = 16
_DATA_FORMAT_PLAIN = 0x00


class _NegativeResponse(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Conditions:
    """What the server needs to know about the van before risky services (from a callback)."""

    speed_mps: float = 0.0
    #: supply voltage inside the programming window; a drop suspends a transfer
    supply_ok: bool = True

    @property
    def standstill(self) -> bool:
        return math.isfinite(self.speed_mps) and abs(self.speed_mps) < 0.05


@dataclass(frozen=True)
class LiveDid:
    """A DID that reads a live value: raw = round((value - offset) / scale), big-endian."""

    did: int
    name: str
    key: str
    scale: float
    size: int = 2
    offset: float = 0.0
    signed: bool = False

    def encode(self, value: float | None) -> bytes:
        """The DID bytes; all 0xFF when the value is missing or not finite (not available)."""
        if value is None or not math.isfinite(value):
            return b"\xff" * self.size
        raw = round((value - self.offset) / self.scale)
        bits = 8 * self.size
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if self.signed else (0, (1 << bits) - 2)
        raw = min(max(raw, lo), hi)
        return int(raw).to_bytes(self.size, "big", signed=self.signed)


@dataclass(frozen=True)
class EcuConfig:
    """What one simulated ECU is: its identity, DIDs, DTCs, memory and timing parameters."""

    name: str
    vin: str = "WZ10DEV0000000001"
    serial: str = "Z10-000000"
    software_version: str = "Z10 1.0.0"
    live_dids: tuple[LiveDid, ...] = ()
    dtcs: tuple[DtcDefinition, ...] = ()
    bank_size: int = 1 << 20
    #: maxNumberOfBlockLength announced by RequestDownload (SID + counter + data)
    max_block_length: int = 4095
    p2_ms: int = 50
    p2_star_ms: int = 5000
    s3_ms: int = 5000
    max_attempts: int = 3
    lockout_s: float = 10.0
    erase_base_s: float = 0.05
    erase_s_per_mib: float = 1.0
    #: interval of repeated 0x78 while a job runs (well inside P2*)
    pending_interval_s: float = 2.0
    #: authenticity check of a downloaded image: ``(address, image, signature) -> bool``, the
    #: signature being the option record of check-programming-dependencies (0xFF01). None: the
    #: ECU accepts unsigned images (a bare development ECU). The Z10 ECUs set it (Ed25519,
    #: :mod:`vehicle_io.flash.signing`).
    image_verifier: Callable[[int, bytes, bytes], bool] | None = None
    #: largest response the ISO-TP link can carry (ReadMemoryByAddress 0x63 + data,
    #: ReadDataByIdentifier 0x62 + records: longer is NRC 0x14 responseTooLong)
    max_read_length: int = 4095

    def __post_init__(self) -> None:
        if len(self.vin) != 17 or not self.vin.isascii():
            raise UdsConfigError(f"ECU {self.name}: expected a 17-character ASCII VIN, but got {self.vin!r}")
        if not 8 <= self.max_block_length <= 0xFFFF:
            raise UdsConfigError(f"ECU {self.name}: expected max_block_length 8..65535, but got {self.max_block_length}")


@dataclass
class EcuNvState:
    """What survives an ECU reset: stored DIDs, DTCs, flash, the security attempt counter."""

    did_values: dict[int, bytes] = field(default_factory=dict)
    dtcs: DtcStore = field(default_factory=DtcStore)
    flash: FlashMemory = field(default_factory=FlashMemory)
    failed_attempts: int = 0
    #: the attempt counter was exhausted and the delay has not yet run out
    lockout_active: bool = False
    boot_count: int = 0

    @classmethod
    def for_config(cls, config: EcuConfig) -> EcuNvState:
        return cls(
            did_values={
                0xF190: config.vin.encode("ascii"),
                0xF18C: config.serial.encode("ascii"),
                0xF195: config.software_version.encode("ascii"),
            },
            dtcs=DtcStore(config.dtcs),
            flash=FlashMemory(config.bank_size),
        )


@dataclass
class _Download:
    address: int
    length: int
    received: int = 0
    expected_counter: int = 0x01
    last_counter: int | None = None
    last_block: bytes = b""


@dataclass
class _Job:
    sid: int
    done_at_s: float
    next_pending_s: float
    finish: Callable[[], bytes]


_WRITABLE_DIDS: dict[int, int] = {0xF190: 17}  # DID -> exact length
_SESSION_DID = 0xF186


class UdsServer:
    """The UDS server of one simulated ECU (see the module docstring)."""

    def __init__(
        self,
        config: EcuConfig,
        nv: EcuNvState | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        live: Callable[[], Mapping[str, float]] | None = None,
        conditions: Callable[[], Conditions] | None = None,
        key_fn: Callable[[int, bytes], bytes] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.nv = nv if nv is not None else EcuNvState.for_config(config)
        self._clock = clock
        self._live = live
        self._conditions = conditions
        self._key_fn = key_fn if key_fn is not None else (lambda level, seed: dev_key(config.name, level, seed))
        self._rng = rng if rng is not None else random.SystemRandom()
        self._live_dids = {d.did: d for d in config.live_dids}
        #: requests, negative responses by code, bad inputs (callbacks that failed), resets
        self.counters: Counter[str] = Counter()
        #: the last bad input or failed callback, one line
        self.last_error = ""
        self._job: _Job | None = None
        self._power_up()

    # ----------------------------------------------------------------- state
    def _power_up(self) -> None:
        now = self._clock()
        self.session = Session.DEFAULT
        self.security_level = 0  # unlocked requestSeed level, 0 = locked
        self._seed: tuple[int, bytes] | None = None
        self._last_activity_s = now
        self._download: _Download | None = None
        self._routine_results: dict[int, bytes] = {}
        #: CommunicationControl (0x28): the ECU's normal (non-diagnostic) traffic
        self.normal_rx_enabled = True
        self.normal_tx_enabled = True
        self.nv.dtcs.setting_enabled = True
        # The delay starts again at every power-up while the counter is exhausted
        # (ISO 14229-1 SecurityAccess: the delay survives a reset).
        self._lockout_until_s = now + self.config.lockout_s if self.nv.lockout_active else None

    def reset(self) -> None:
        """An ECU reset / power cycle: volatile state lost, NV kept, a new operation cycle."""
        self._job = None
        self.nv.boot_count += 1
        self.nv.flash.activate_pending()
        self.nv.dtcs.new_operation_cycle()
        self.counters["resets"] += 1
        self._power_up()

    @property
    def busy(self) -> bool:
        return self._job is not None

    @property
    def download_active(self) -> bool:
        return self._download is not None

    def conditions(self) -> Conditions:
        """The van's conditions now; without a callback a van at standstill (a bench ECU)."""
        if self._conditions is None:
            return Conditions()
        try:
            return self._conditions()
        except Exception as err:  # noqa: BLE001 - a broken callback must not crash the ECU
            self.counters["bad_conditions"] += 1
            self.last_error = f"conditions callback failed: {err}"
            # Unknown conditions: behave as if the van were moving (default deny).
            return Conditions(speed_mps=math.inf, supply_ok=False)

    def _enter_session(self, session: int) -> None:
        if session != self.session or session != Session.DEFAULT:
            self.security_level = 0
            self._seed = None
        if session == Session.DEFAULT:
            self.normal_rx_enabled = self.normal_tx_enabled = True
            self.nv.dtcs.setting_enabled = True
        self._download = None
        self.session = session

    def _expire(self, now: float) -> None:
        if (self.session != Session.DEFAULT and self._job is None
                and now - self._last_activity_s > self.config.s3_ms / 1000.0):
            self.counters["s3_timeouts"] += 1
            self._enter_session(Session.DEFAULT)
        if self._lockout_until_s is not None and now >= self._lockout_until_s:
            self._lockout_until_s = None
            self.nv.lockout_active = False
            self.nv.failed_attempts = self.config.max_attempts - 1

    def next_deadline_s(self) -> float | None:
        """When :meth:`poll` next has something to do (clock time), or None."""
        times = []
        if self._job is not None:
            times.append(min(self._job.done_at_s, self._job.next_pending_s))
        elif self.session != Session.DEFAULT:
            times.append(self._last_activity_s + self.config.s3_ms / 1000.0)
        if self._lockout_until_s is not None:
            times.append(self._lockout_until_s)
        return min(times) if times else None

    # ----------------------------------------------------------------- entry points
    def handle(self, request: bytes, *, functional: bool = False) -> list[bytes]:
        """Serve one request; the responses to send now (none, one, or a 0x78 when a job began)."""
        request = bytes(request)
        now = self._clock()
        self._expire(now)
        self.counters["requests"] += 1
        if not request:
            self.counters["empty_requests"] += 1
            return []
        sid = request[0]
        if self._job is not None:
            if functional and request == b"\x3e\x80":
                # The tester's periodic functional TesterPresent keeps the session alive while a
                # job runs; it has no response, and a 0x21 would reach a tester waiting for
                # the job's final answer (ISO 14229-2: TesterPresent handled by the session layer).
                self._last_activity_s = now
                return []
            return self._negative(sid, Nrc.BUSY_REPEAT_REQUEST, functional)
        self._last_activity_s = now
        try:
            result = self._dispatch(sid, request)
        except _NegativeResponse as nrc:
            return self._negative(sid, nrc.code, functional)
        if isinstance(result, _Job):
            self._job = result
            return [bytes([0x7F, sid, Nrc.RESPONSE_PENDING])]
        return [] if result is None else [result]

    def poll(self) -> list[bytes]:
        """Advance the timers: 0x78 repeats and the final response of a job, S3, lockout."""
        now = self._clock()
        out: list[bytes] = []
        job = self._job
        if job is not None:
            if now >= job.done_at_s:
                self._job = None
                try:
                    out.append(job.finish())
                except _NegativeResponse as nrc:
                    out.append(bytes([0x7F, job.sid, nrc.code]))
                self._last_activity_s = now
            elif now >= job.next_pending_s:
                out.append(bytes([0x7F, job.sid, Nrc.RESPONSE_PENDING]))
                job.next_pending_s = now + self.config.pending_interval_s
        self._expire(now)
        return out

    def _negative(self, sid: int, code: int, functional: bool) -> list[bytes]:
        self.counters[f"nrc_{code:02x}"] += 1
        if functional and code in _FUNCTIONAL_SUPPRESSED:
            return []
        return [bytes([0x7F, sid, code])]

    def _dispatch(self, sid: int, req: bytes) -> bytes | None | _Job:
        handler = self._HANDLERS.get(sid)
        if handler is None:
            raise _NegativeResponse(Nrc.SERVICE_NOT_SUPPORTED)
        if self.session not in _SERVICE_SESSIONS[sid]:
            raise _NegativeResponse(Nrc.SERVICE_NOT_SUPPORTED_IN_SESSION)
        level = _SERVICE_SECURITY.get(sid)
        if level is not None:
            self._require_level(level)
        return handler(self, req)

    # ----------------------------------------------------------------- helpers
    @staticmethod
    def _need_length(req: bytes, minimum: int, exact: bool = False) -> None:
        if len(req) < minimum or (exact and len(req) != minimum):
            raise _NegativeResponse(Nrc.INCORRECT_LENGTH)

    def _require_level(self, level: int) -> None:
        if self.security_level != level:
            raise _NegativeResponse(Nrc.SECURITY_ACCESS_DENIED)

    def _require_standstill(self) -> None:
        if not self.conditions().standstill:
            raise _NegativeResponse(Nrc.CONDITIONS_NOT_CORRECT)

    @staticmethod
    def _suppressed(req: bytes) -> bool:
        return bool(req[1] & 0x80)

    def read_did(self, did: int) -> bytes | None:
        """The value of one DID, or None if the ECU has no such DID."""
        if did in self.nv.did_values:
            return self.nv.did_values[did]
        if did == _SESSION_DID:
            return bytes([self.session])
        live_did = self._live_dids.get(did)
        if live_did is None:
            return None
        values: Mapping[str, float] = {}
        if self._live is not None:
            try:
                values = self._live()
            except Exception as err:  # noqa: BLE001 - a broken plant must not crash the ECU
                self.counters["bad_live_data"] += 1
                self.last_error = f"live data callback failed: {err}"
        value = values.get(live_did.key)
        try:
            return live_did.encode(None if value is None else float(value))
        except (TypeError, ValueError, OverflowError):
            self.counters["bad_live_data"] += 1
            return live_did.encode(None)

    def snapshot(self) -> dict[int, bytes]:
        """The live DIDs at this instant: the snapshot record stored with a DTC."""
        return {did: self.read_did(did) or b"" for did in self._live_dids}

    def report_fault(self, name: str, failed: bool) -> bool:
        """A fault monitor's test result (over-temperature, isolation, lost communication...)."""
        return self.nv.dtcs.report(name, failed, self.snapshot)

    # ----------------------------------------------------------------- services
    def _session_control(self, req: bytes) -> bytes | None:
        # ISO 14229-1 figure 6: minimum length, sub-function (0x12, 0x7E), then the
        # service's own checks (total length 0x13, conditions 0x22).
        self._need_length(req, 2)
        session = req[1] & 0x7F
        if session not in (Session.DEFAULT, Session.EXTENDED, Session.PROGRAMMING):
            raise _NegativeResponse(Nrc.SUBFUNCTION_NOT_SUPPORTED)
        if session == Session.PROGRAMMING and self.session == Session.DEFAULT:
            raise _NegativeResponse(Nrc.SUBFUNCTION_NOT_SUPPORTED_IN_SESSION)
        self._need_length(req, 2, exact=True)
        if session == Session.PROGRAMMING:
            self._require_standstill()
        self._enter_session(session)
        if self._suppressed(req):
            return None
        p2 = self.config.p2_ms
        p2_star = self.config.p2_star_ms // 10
        return bytes([0x50, session, p2 >> 8, p2 & 0xFF, p2_star >> 8, p2_star & 0xFF])

    def _ecu_reset(self, req: bytes) -> bytes | None:
        self._need_length(req, 2)
        kind = req[1] & 0x7F
        if kind not in (0x01, 0x02, 0x03):
            raise _NegativeResponse(Nrc.SUBFUNCTION_NOT_SUPPORTED)
        self._need_length(req, 2, exact=True)
        self._require_standstill()
        response = None if self._suppressed(req) else bytes([0x51, kind])
        # The response leaves first on a real ECU; here it is built before the state goes.
        self.reset()
        return response

    def _clear_dtc(self, req: bytes) -> bytes:
        self._need_length(req, 4, exact=True)
        group = int.from_bytes(req[1:4], "big")
        if not self.nv.dtcs.clear(group):
            raise _NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE)
        return b"\x54"

    def _read_dtc(self, req: bytes) -> bytes:
        self._need_length(req, 2)
        sub = req[1]
        store = self.nv.dtcs
        if sub in (0x01, 0x02):
            self._need_length(req, 3, exact=True)
            records = store.matching(req[2])
            if sub == 0x01:
                count = len(records)
                return bytes([0x59, 0x01, STATUS_AVAILABILITY_MASK, 0x01, count >> 8, count & 0xFF])
            body = b"".join(r.definition.dtc.to_bytes(3, "big") + bytes([r.status]) for r in records)
            return bytes([0x59, 0x02, STATUS_AVAILABILITY_MASK]) + body
        if sub == 0x0A:
            self._need_length(req, 2, exact=True)
            body = b"".join(r.definition.dtc.to_bytes(3, "big") + bytes([r.status])
                            for r in store.records.values())
            return bytes([0x59, 0x0A, STATUS_AVAILABILITY_MASK]) + body
        if sub in (0x04, 0x06):
            self._need_length(req, 6, exact=True)
            dtc = int.from_bytes(req[2:5], "big")
            number = req[5]
            record = store.records.get(dtc)
            if record is None:
                raise _NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE)
            head = bytes([0x59, sub]) + req[2:5] + bytes([record.status])
            if sub == 0x04:
                if number not in (SNAPSHOT_FIRST, SNAPSHOT_LATEST, 0xFF):
                    raise _NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE)
                numbers = (SNAPSHOT_FIRST, SNAPSHOT_LATEST) if number == 0xFF else (number,)
                body = b""
                for n in numbers:
                    snap = record.snapshots.get(n)
                    if snap is None:
                        continue
                    body += bytes([n, len(snap)])
                    body += b"".join(did.to_bytes(2, "big") + value for did, value in sorted(snap.items()))
                return head + body
            if number not in (EXT_OCCURRENCE, EXT_CYCLES_SINCE_FAILED, 0xFF):
                raise _NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE)
            numbers = (EXT_OCCURRENCE, EXT_CYCLES_SINCE_FAILED) if number == 0xFF else (number,)
            body = b""
            for n in numbers:
                data = store.extended_data(record, n)
                if data is not None:
                    body += bytes([n]) + data
            return head + body
        raise _NegativeResponse(Nrc.SUBFUNCTION_NOT_SUPPORTED)

    def _read_data(self, req: bytes) -> bytes:
        if len(req) < 3 or (len(req) - 1) % 2:
            raise _NegativeResponse(Nrc.INCORRECT_LENGTH)
        dids = [int.from_bytes(req[i:i + 2], "big") for i in range(1, len(req), 2)]
        if len(dids) > _DID_PER_REQUEST_MAX:
            raise _NegativeResponse(Nrc.INCORRECT_LENGTH)
        body = b""
        for did in dids:
            value = self.read_did(did)
            if value is not None:  # unsupported DIDs are left out; 0x31 only if none is supported
                body += did.to_bytes(2, "big") + value
        if not body:
            raise _NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE)
        if 1 + len(body) > self.config.max_read_length:
            raise _NegativeResponse(Nrc.RESPONSE_TOO_LONG)  # more than the transport can carry
        return b"\x62" + body

    def _read_memory(self, req: bytes) -> bytes:
        """ReadMemoryByAddress (0x23) of the running bank: the tester's read-back after a flash."""
        address, length = self._parse_address_length(req[1:])
        if length == 0 or address + length > self.nv.flash.bank_size or length + 1 > self.config.max_read_length:
            raise _NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE)
        if not self.security_level:
            raise _NegativeResponse(Nrc.SECURITY_ACCESS_DENIED)  # program memory is the maker's IP
        flash = self.nv.flash
        return b"\x63" + bytes(flash.banks[flash.active].data[address:address + length])

    def _write_data(self, req: bytes) -> bytes:
        self._need_length(req, 4)
        did = int.from_bytes(req[1:3], "big")
        length = _WRITABLE_DIDS.get(did)
        if length is None:
            raise _NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE)
        value = req[3:]
        if len(value) != length:
            raise _NegativeResponse(Nrc.INCORRECT_LENGTH)
        self._require_level(LEVEL_EXTENDED)
        if did == 0xF190 and not all(0x30 <= b <= 0x5A and b not in b"IOQ:;<=>?@" for b in value):
            raise _NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE)  # not a VIN (ISO 3779 characters)
        self.nv.did_values[did] = value
        return b"\x6e" + req[1:3]

    def _security_access(self, req: bytes) -> bytes | None:
        self._need_length(req, 2)
        sub = req[1] & 0x7F
        level = sub if sub % 2 else sub - 1
        sessions = _SECURITY_LEVELS.get(level)
        if sessions is None:
            raise _NegativeResponse(Nrc.SUBFUNCTION_NOT_SUPPORTED)
        if self.session not in sessions:
            raise _NegativeResponse(Nrc.SUBFUNCTION_NOT_SUPPORTED_IN_SESSION)
        if self._lockout_until_s is not None:
            raise _NegativeResponse(Nrc.REQUIRED_TIME_DELAY_NOT_EXPIRED)
        if sub == level:  # requestSeed
            if self.security_level == level:
                seed = bytes(_SEED_LENGTH)  # already unlocked: all-zero seed
                self._seed = None
            else:
                seed = bytes(self._rng.randrange(256) for _ in range(_SEED_LENGTH))
                if not any(seed):
                    seed = b"\x00\x00\x00\x01"
                self._seed = (level, seed)
            return None if self._suppressed(req) else bytes([0x67, sub]) + seed
        # sendKey
        if self._seed is None or self._seed[0] != level:
            raise _NegativeResponse(Nrc.REQUEST_SEQUENCE_ERROR)
        key = req[2:]
        if len(key) != _SEED_LENGTH:
            raise _NegativeResponse(Nrc.INCORRECT_LENGTH)
        seed = self._seed[1]
        self._seed = None
        if key != self._key_fn(level, seed):
            self.nv.failed_attempts += 1
            if self.nv.failed_attempts >= self.config.max_attempts:
                self.nv.lockout_active = True
                self._lockout_until_s = self._clock() + self.config.lockout_s
                raise _NegativeResponse(Nrc.EXCEEDED_NUMBER_OF_ATTEMPTS)
            raise _NegativeResponse(Nrc.INVALID_KEY)
        self.nv.failed_attempts = 0
        self.security_level = level
        return None if self._suppressed(req) else bytes([0x67, sub])

    def _communication_control(self, req: bytes) -> bytes | None:
        self._need_length(req, 2)
        control = req[1] & 0x7F
        if control not in (0x00, 0x01, 0x02, 0x03):
            raise _NegativeResponse(Nrc.SUBFUNCTION_NOT_SUPPORTED)
        self._need_length(req, 3, exact=True)
        comm_type = req[2]
        if comm_type & 0x03 == 0 or comm_type & 0xFC:
            raise _NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE)
        if comm_type & 0x01:  # normal communication messages
            self.normal_rx_enabled = control in (0x00, 0x01)
            self.normal_tx_enabled = control in (0x00, 0x02)
        return None if self._suppressed(req) else bytes([0x68, control])

    def _routine_control(self, req: bytes) -> bytes | None | _Job:
        self._need_length(req, 2)
        sub = req[1] & 0x7F
        # stopRoutine (0x02): the flash routines run to completion, no routine can be stopped
        if sub not in (0x01, 0x03):
            raise _NegativeResponse(Nrc.SUBFUNCTION_NOT_SUPPORTED)
        self._need_length(req, 4)
        rid = int.from_bytes(req[2:4], "big")
        if rid not in (ROUTINE_ERASE_MEMORY, ROUTINE_CHECK_MEMORY, ROUTINE_CHECK_PROGRAMMING_DEPENDENCIES):
            raise _NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE)
        if self.session != Session.PROGRAMMING:
            # the flash routines exist only in the programming session (the bootloader)
            raise _NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE)
        head = bytes([0x71, sub]) + req[2:4]
        if sub == 0x03:
            self._need_length(req, 4, exact=True)
            result = self._routine_results.get(rid)
            if result is None:
                raise _NegativeResponse(Nrc.REQUEST_SEQUENCE_ERROR)
            return None if self._suppressed(req) else head + result
        self._require_level(LEVEL_PROGRAMMING)
        if rid == ROUTINE_ERASE_MEMORY:
            return self._start_erase(req, head)
        if rid == ROUTINE_CHECK_MEMORY:
            result = self._check_memory(req)
        else:
            result = self._check_dependencies(req)
        self._routine_results[rid] = result
        return None if self._suppressed(req) else head + result

    @staticmethod
    def _parse_address_length(record: bytes) -> tuple[int, int]:
        """addressAndLengthFormatIdentifier + memoryAddress + memorySize."""
        if not record:
            raise _NegativeResponse(Nrc.INCORRECT_LENGTH)
        alfid = record[0]
        size_len, addr_len = alfid >> 4, alfid & 0x0F
        if not (1 <= size_len <= 4 and 1 <= addr_len <= 4):
            raise _NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE)
        if len(record) != 1 + addr_len + size_len:
            raise _NegativeResponse(Nrc.INCORRECT_LENGTH)
        address = int.from_bytes(record[1:1 + addr_len], "big")
        length = int.from_bytes(record[1 + addr_len:], "big")
        return address, length

    def _check_range(self, address: int, length: int) -> None:
        if length == 0 or address + length > self.nv.flash.bank_size:
            raise _NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE)

    def _start_erase(self, req: bytes, head: bytes) -> _Job:
        address, length = self._parse_address_length(req[4:])
        self._check_range(address, length)
        self._require_standstill()
        if self._download is not None:
            raise _NegativeResponse(Nrc.CONDITIONS_NOT_CORRECT)
        flash = self.nv.flash
        # The target stops being bootable the moment erasing starts.
        flash.target.valid = False
        if flash.pending_activation == flash.inactive:
            flash.pending_activation = None
        flash.checked_crc32 = None
        duration_s = self.config.erase_base_s + self.config.erase_s_per_mib * length / (1 << 20)
        now = self._clock()

        def finish() -> bytes:
            flash.target.erase(address, length)
            self._routine_results[ROUTINE_ERASE_MEMORY] = b"\x00"
            # a job's final response is sent even when the request suppressed the positive one
            return head + b"\x00"

        return _Job(0x31, now + duration_s, now + self.config.pending_interval_s, finish)

    def _check_memory(self, req: bytes) -> bytes:
        flash = self.nv.flash
        if len(req) != 8:
            raise _NegativeResponse(Nrc.INCORRECT_LENGTH)
        if not flash.download_length:
            raise _NegativeResponse(Nrc.REQUEST_SEQUENCE_ERROR)
        expected = int.from_bytes(req[4:8], "big")
        actual = flash.target.crc32(flash.download_address, flash.download_length)
        if actual == expected and flash.target.is_programmed(flash.download_address, flash.download_length):
            flash.checked_crc32 = actual
            return b"\x00"
        flash.checked_crc32 = None
        return b"\x01"

    def _check_dependencies(self, req: bytes) -> bytes:
        flash = self.nv.flash
        signature = req[4:]
        verifier = self.config.image_verifier
        if verifier is None and signature:
            raise _NegativeResponse(Nrc.INCORRECT_LENGTH)  # this ECU takes no option record
        if flash.checked_crc32 is None:
            return b"\x01"  # no verified image in the target bank
        if verifier is not None:
            image = bytes(flash.target.data[flash.download_address:flash.download_address + flash.download_length])
            reason = "" if signature else "the image is not signed"
            if signature:
                try:
                    if not verifier(flash.download_address, image, signature):
                        reason = "the image signature does not match the image"
                except Exception as err:  # noqa: BLE001 - a malformed signature is a rejected image
                    reason = f"the image signature could not be checked: {err}"
            if reason:
                # Unsigned or tampered: never bootable; the running bank stays active.
                self.counters["rejected_images"] += 1
                self.last_error = f"{self.config.name}: image rejected: {reason}"
                flash.checked_crc32 = None
                raise _NegativeResponse(Nrc.GENERAL_PROGRAMMING_FAILURE)
        flash.target.valid = True
        flash.pending_activation = flash.inactive
        return b"\x00"

    def _request_download(self, req: bytes) -> bytes:
        self._need_length(req, 5)
        if req[1] != _DATA_FORMAT_PLAIN:
            raise _NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE)
        address, length = self._parse_address_length(req[2:])
        self._check_range(address, length)  # security (level 0x11) was checked for the whole SID
        self._require_standstill()
        if self._download is not None:
            raise _NegativeResponse(Nrc.CONDITIONS_NOT_CORRECT)
        flash = self.nv.flash
        if not flash.target.is_erased(address, length):
            raise _NegativeResponse(Nrc.UPLOAD_DOWNLOAD_NOT_ACCEPTED)
        self._download = _Download(address, length)
        flash.download_address, flash.download_length = address, length
        flash.checked_crc32 = None
        block = self.config.max_block_length
        return bytes([0x74, 0x20, block >> 8, block & 0xFF])

    def _transfer_data(self, req: bytes) -> bytes:
        self._need_length(req, 2)
        download = self._download
        if download is None:
            raise _NegativeResponse(Nrc.REQUEST_SEQUENCE_ERROR)
        if len(req) > self.config.max_block_length:
            raise _NegativeResponse(Nrc.INCORRECT_LENGTH)
        counter, data = req[1], req[2:]
        if download.last_counter is not None and counter == download.last_counter:
            if data != download.last_block:
                raise _NegativeResponse(Nrc.WRONG_BLOCK_SEQUENCE_COUNTER)
            return bytes([0x76, counter])  # the tester repeated the block: do not write again
        if counter != download.expected_counter:
            raise _NegativeResponse(Nrc.WRONG_BLOCK_SEQUENCE_COUNTER)
        if not data:
            raise _NegativeResponse(Nrc.INCORRECT_LENGTH)
        if download.received + len(data) > download.length:
            # ISO 14229-1 TransferData: 0x71 when the data would not fit the memorySize announced
            # by RequestDownload (the download stays open for a correct block)
            raise _NegativeResponse(Nrc.TRANSFER_DATA_SUSPENDED)
        conditions = self.conditions()
        if not (conditions.standstill and conditions.supply_ok):
            self._download = None
            raise _NegativeResponse(Nrc.TRANSFER_DATA_SUSPENDED)
        try:
            self.nv.flash.target.write(download.address + download.received, data)
        except FlashWriteError as err:
            self.last_error = str(err)
            self._download = None
            raise _NegativeResponse(Nrc.GENERAL_PROGRAMMING_FAILURE) from err
        download.received += len(data)
        download.last_counter = counter
        download.last_block = data
        download.expected_counter = (counter + 1) & 0xFF
        return bytes([0x76, counter])

    def _transfer_exit(self, req: bytes) -> bytes:
        download = self._download
        if download is None:
            raise _NegativeResponse(Nrc.REQUEST_SEQUENCE_ERROR)
        if download.received != download.length:
            raise _NegativeResponse(Nrc.REQUEST_SEQUENCE_ERROR)
        self._download = None
        crc = self.nv.flash.target.crc32(download.address, download.length)
        return b"\x77" + crc.to_bytes(4, "big")

    def _tester_present(self, req: bytes) -> bytes | None:
        self._need_length(req, 2)
        if req[1] & 0x7F:
            raise _NegativeResponse(Nrc.SUBFUNCTION_NOT_SUPPORTED)
        self._need_length(req, 2, exact=True)
        return None if self._suppressed(req) else b"\x7e\x00"

    def _control_dtc_setting(self, req: bytes) -> bytes | None:
        self._need_length(req, 2)
        setting = req[1] & 0x7F
        if setting not in (0x01, 0x02):
            raise _NegativeResponse(Nrc.SUBFUNCTION_NOT_SUPPORTED)
        self.nv.dtcs.setting_enabled = setting == 0x01
        return None if self._suppressed(req) else bytes([0xC5, setting])

    _HANDLERS: dict[int, Callable[[UdsServer, bytes], bytes | None | _Job]] = {
        0x10: _session_control,
        0x11: _ecu_reset,
        0x14: _clear_dtc,
        0x19: _read_dtc,
        0x22: _read_data,
        0x23: _read_memory,
        0x27: _security_access,
        0x28: _communication_control,
        0x2E: _write_data,
        0x31: _routine_control,
        0x34: _request_download,
        0x36: _transfer_data,
        0x37: _transfer_exit,
        0x3E: _tester_present,
        0x85: _control_dtc_setting,
    }
