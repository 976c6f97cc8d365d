"""E2EReceiver.check's short path (VALID, cached CRC verdict, next counter) against the general path.

Two receivers see the same frame sequence, one through ``check`` (short path on), one through
``_check_general`` (the reference): every result and every piece of receiver state (last
counter, state, window, counts, CRC cache) must agree after every frame.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vehicle_io.e2e as e2e
from vehicle_io.e2e import CheckStatus, E2EConfig, E2EReceiver, E2ESpec, SMState, protect

SPEC = E2ESpec("Cmd", 0x80, data_id=0x1234, length=8, crc_signal="Cmd_CRC", counter_signal="Cmd_Counter",
               crc_byte=0, counter_byte=1, counter_shift=0)
CONFIGS = [
    E2EConfig(),
    E2EConfig(max_delta=4, window_size=5, min_ok_init=3, min_ok_valid=2, min_ok_invalid=4, max_error_init=1,
              max_error_valid=2, max_error_invalid=1, clear_to_invalid=True),
    E2EConfig(window_size=1, min_ok_init=1, min_ok_valid=1, min_ok_invalid=1, max_error_valid=0),
]

# (kind, argument): a run of n frames in sequence (a steady sender), the next frame advances the
# counter by k, repeats it, carries a flipped bit, counter 15, is short or long, comes as a
# bytearray, a new payload; deadlines pass (no new data) or the receiver is reset.
event = st.one_of(
    st.tuples(st.just("run"), st.integers(1, 20)),
    st.tuples(st.just("next"), st.integers(1, 14)),
    st.tuples(st.just("repeat"), st.just(0)),
    st.tuples(st.just("crc"), st.integers(0, 47)),
    st.tuples(st.just("ctr15"), st.just(0)),
    st.tuples(st.just("short"), st.integers(0, 7)),
    st.tuples(st.just("long"), st.integers(9, 12)),
    st.tuples(st.just("bytearray"), st.just(1)),
    st.tuples(st.just("payload"), st.integers(0, 4)),
    st.tuples(st.just("nnd"), st.integers(1, 4)),
    st.tuples(st.just("reset"), st.just(0)),
)


def _payload(n: int) -> bytes:
    return bytes([0, 0, n, 7 * n, 0, 1, 2, n])


def _state(rx: E2EReceiver) -> tuple[object, ...]:
    sm = rx.sm
    return (rx.last_counter, sm.state, list(sm._window), sm._top, sm.ok_count, sm.error_count, dict(rx._crc_ok))


@settings(max_examples=150, deadline=None)
@given(st.lists(event, min_size=10, max_size=60), st.sampled_from(CONFIGS))
def test_short_path_equals_general_path(events: list[tuple[str, int]], cfg: E2EConfig) -> None:
    fast = E2EReceiver(SPEC, cfg)
    ref = E2EReceiver(SPEC, cfg)
    # CRC verdicts of three payloads' frames known up front (as after a few cycles of a steady
    # sender): the short path meets verdicts it has cached and ones it computes, and the cache
    # reaches its bound and is cleared.
    for known in (_payload(0), _payload(1), _payload(2)):
        for c in range(15):
            frame = bytes(protect(SPEC, known, c))
            fast._crc_holds(frame)
            ref._crc_holds(frame)
    counter = 0
    payload = _payload(0)
    for kind, arg in events:
        if kind == "nnd":
            for _ in range(arg):
                assert fast.no_new_data() == ref.no_new_data()
            continue
        if kind == "reset":
            fast.reset()
            ref.reset()
            continue
        if kind == "run":
            for _ in range(arg):
                counter = (counter + 1) % 15
                frame = bytes(protect(SPEC, payload, counter))
                assert fast.check(frame) == ref._check_general(frame)
                assert _state(fast) == _state(ref)
            continue
        if kind == "payload":
            payload = _payload(arg)
        if kind in ("next", "bytearray"):
            counter = (counter + arg) % 15
        elif kind == "crc" and arg % 2:
            counter = (counter + 1) % 15  # the next frame, corrupted
        frame: bytes | bytearray = bytes(protect(SPEC, payload, counter))
        if kind == "crc":
            buf = bytearray(frame)
            buf[2 + (arg // 8) % 6] ^= 1 << (arg % 8)
            frame = bytes(buf)
        elif kind == "ctr15":
            buf = bytearray(frame)
            buf[1] |= 0x0F
            buf[0] = SPEC.crc_of(buf)
            frame = bytes(buf)
        elif kind == "short":
            frame = frame[:arg]
        elif kind == "long":
            frame = frame + bytes(arg - 8)
        elif kind == "bytearray":
            frame = bytearray(frame)
        got = fast.check(frame)
        want = ref._check_general(frame)
        assert got == want, (kind, arg)
        assert _state(fast) == _state(ref)


def test_short_path_is_taken_and_agrees_over_a_long_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A steady sender (the rig's usual traffic): the short path answers, the same as without it."""
    calls = {"general": 0}
    fast = E2EReceiver(SPEC)
    general = fast._check_general

    def counted(data: bytes) -> tuple[CheckStatus, SMState]:
        calls["general"] += 1
        return general(data)

    monkeypatch.setattr(fast, "_check_general", counted)
    ref = E2EReceiver(SPEC)
    frames = [bytes(protect(SPEC, bytes([0, 0, 5, 6, 7, 8, 9, 10]), c % 15)) for c in range(200)]
    for frame in frames:
        assert fast.check(frame) == ref._check_general(frame)
        assert _state(fast) == _state(ref)
    # The first three frames bring the state to VALID (NODATA, INIT, 2 OKs): the rest are short.
    assert calls["general"] == 3
    assert fast.state is SMState.VALID


def test_switch_off_runs_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(e2e, "_FAST_PATHS", False)
    rx = E2EReceiver(SPEC)
    seen = []
    monkeypatch.setattr(rx, "_check_general", lambda data: seen.append(data) or (CheckStatus.OK, SMState.VALID))
    frames = [bytes(protect(SPEC, bytes(8), c)) for c in range(5)]
    for frame in frames:
        rx.check(frame)
    assert seen == frames
