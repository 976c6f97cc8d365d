"""E2EBank: the batch E2E receivers of many messages, and their reception deadlines."""

from __future__ import annotations

import numpy as np
from gw_helpers import protected

from vehicle_io.e2e import CheckStatus, E2EConfig, E2EReceiver, E2ESpec, SMState
from vehicle_io.gateway.validity import E2EBank


def frames_array(payloads: list[bytes]) -> np.ndarray:
    return np.array([list(p) for p in payloads], dtype=np.uint8)


def test_bank_checks_messages_independently_and_matches_the_scalar_receiver(prot_spec: E2ESpec) -> None:
    other = E2ESpec(**{**{f: getattr(prot_spec, f) for f in prot_spec.__slots__}, "data_id": 77, "message_name": "B"})
    bank = E2EBank([prot_spec, other], E2EConfig(), [0.01, None])
    ref = [E2EReceiver(prot_spec), E2EReceiver(other)]
    plan = [(0, 0), (1, 5), (0, 1), (1, 6), (0, 1), (1, 9), (0, 2), (1, 10)]
    payloads = [protected(prot_spec if m == 0 else other, bytes(8), c) for m, c in plan]
    data = frames_array(payloads)
    rows = np.arange(len(plan), dtype=np.int64)
    slots = np.array([m for m, _ in plan], dtype=np.int64)
    times = np.arange(len(plan), dtype=np.float64) * 0.001
    status, state, crc_ok = bank.check(data, np.full(len(plan), 8, dtype=np.uint8), rows, slots, times)
    expected = [ref[m].check(p) for (m, _), p in zip(plan, payloads)]
    assert [(CheckStatus(int(a)), SMState(int(b))) for a, b in zip(status, state)] == expected
    assert crc_ok.all()
    assert bank.status_counts[0, CheckStatus.REPEATED] == 1 and bank.status_counts[1, CheckStatus.WRONG_SEQUENCE] == 1
    # A frame of one message under the other's data id fails its CRC.
    status, _, crc_ok = bank.check(frames_array([payloads[0]]), np.full(1, 8, dtype=np.uint8),
                                   np.zeros(1, dtype=np.int64), np.ones(1, dtype=np.int64), np.zeros(1))
    assert CheckStatus(int(status[0])) is CheckStatus.ERROR and crc_ok[0] == 0


def test_bank_deadlines_feed_no_new_data(prot_spec: E2ESpec) -> None:
    bank = E2EBank([prot_spec], E2EConfig(), [0.01], deadline_factor=1.5)
    assert bank.check_deadlines(100.0).size == 0  # never received: no deadline armed
    payloads = [protected(prot_spec, bytes(8), c) for c in range(4)]
    times = np.array([1.00, 1.01, 1.02, 1.03])
    bank.check(frames_array(payloads), np.full(4, 8, dtype=np.uint8), np.arange(4, dtype=np.int64),
               np.zeros(4, dtype=np.int64), times)
    assert bank.state(0) is SMState.VALID
    assert bank.check_deadlines(1.044).size == 0  # deadline 1.03 + 15 ms not yet reached
    assert list(bank.check_deadlines(1.066)) == [0]  # 1.045 and 1.055 and 1.065 missed
    assert bank.status_counts[0, CheckStatus.NO_NEW_DATA] == 3
    assert bank.state(0) is SMState.INVALID
    bank.reset(0)
    assert bank.state(0) is SMState.NODATA and bank.check_deadlines(1e9).size == 0
