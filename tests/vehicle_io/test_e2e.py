"""Z10-P1 E2E protection: CRC8 SAE J1850, protect, per-frame check, state machine, kernels."""

from __future__ import annotations

import cantools
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vehicle_io import _e2e_kernels as kernels
from vehicle_io.e2e import (
    CRC8_TABLE,
    CheckStatus,
    E2EConfig,
    E2EError,
    E2EReceiver,
    E2ESpec,
    E2EStateMachine,
    SMState,
    classify,
    crc8_sae_j1850,
    e2e_crc,
    next_counter,
    protect,
    protect_batch,
)
from vehicle_io.errors import VehicleIoError
from tests.crc_reference import crc8_j1850_bitwise as bitwise_crc8


DBC = """VERSION ""
NS_ :
BS_:
BU_: ECU GW
BO_ 256 Prot: 8 ECU
 SG_ Prot_CRC : 0|8@1+ (1,0) [0|255] "" GW
 SG_ Prot_Counter : 8|4@1+ (1,0) [0|14] "" GW
 SG_ Prot_Flag : 12|1@1+ (1,0) [0|1] "" GW
 SG_ Prot_Speed : 16|16@1+ (0.01,0) [0|655.35] "km/h" GW
BO_ 257 Plain: 8 ECU
 SG_ Plain_A : 0|8@1+ (1,0) [0|255] "" GW
BO_ 258 NoCrc: 8 ECU
 SG_ NoCrc_Counter : 8|4@1+ (1,0) [0|14] "" GW
BO_ 259 WideCtr: 8 ECU
 SG_ WideCtr_CRC : 0|8@1+ (1,0) [0|255] "" GW
 SG_ WideCtr_Counter : 8|8@1+ (1,0) [0|255] "" GW
BA_DEF_ BO_ "SafetyRelevant" ENUM "No","Yes";
BA_DEF_ BO_ "E2E_DataID" INT 0 65535;
BA_DEF_ SG_ "E2E_Role" ENUM "None","Counter","CRC";
BA_DEF_DEF_ "SafetyRelevant" "No";
BA_DEF_DEF_ "E2E_DataID" 0;
BA_DEF_DEF_ "E2E_Role" "None";
BA_ "SafetyRelevant" BO_ 256 1;
BA_ "E2E_DataID" BO_ 256 4660;
BA_ "E2E_Role" SG_ 256 Prot_CRC 2;
BA_ "E2E_Role" SG_ 256 Prot_Counter 1;
BA_ "SafetyRelevant" BO_ 258 1;
BA_ "E2E_DataID" BO_ 258 7;
BA_ "E2E_Role" SG_ 258 NoCrc_Counter 1;
BA_ "SafetyRelevant" BO_ 259 1;
BA_ "E2E_DataID" BO_ 259 8;
BA_ "E2E_Role" SG_ 259 WideCtr_CRC 2;
BA_ "E2E_Role" SG_ 259 WideCtr_Counter 1;
"""


@pytest.fixture(scope="module")
def db() -> cantools.database.can.Database:
    return cantools.database.load_string(DBC, "dbc")


@pytest.fixture(scope="module")
def spec(db) -> E2ESpec:
    s = E2ESpec.from_message(db.get_message_by_name("Prot"))
    assert s is not None
    return s


# -- CRC --------------------------------------------------------------------------------------

# Published check values of CRC8 SAE J1850 (AUTOSAR CRC library specification, and the
# catalogue "check" for "123456789").
@pytest.mark.parametrize(
    "hex_data, expected",
    [
        ("313233343536373839", 0x4B),
        ("00000000", 0x59),
        ("F20183", 0x37),
        ("0FAA0055", 0x79),
        ("00FF5511", 0xB8),
        ("332255AABBCCDDEEFF", 0xCB),
        ("926B55", 0x8C),
        ("FFFFFFFF", 0x74),
    ],
)
def test_crc8_published_vectors(hex_data: str, expected: int) -> None:
    data = bytes.fromhex(hex_data)
    assert crc8_sae_j1850(data) == expected
    assert bitwise_crc8(data) == expected  # the reference agrees with the standard too


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=70))
def test_crc8_equals_bitwise_reference(data: bytes) -> None:
    assert crc8_sae_j1850(data) == bitwise_crc8(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 0xFFFF), st.binary(max_size=63))
def test_e2e_crc_covers_data_id_low_then_high(data_id: int, payload: bytes) -> None:
    assert e2e_crc(data_id, payload) == bitwise_crc8(bytes([data_id & 0xFF, data_id >> 8]) + payload)


def test_e2e_crc_rejects_wide_data_id() -> None:
    with pytest.raises(E2EError, match="16-bit"):
        e2e_crc(0x10000, b"")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(min_size=4, max_size=64), min_size=1, max_size=20))
def test_batch_crc_kernel_equals_reference(frames: list[bytes]) -> None:
    data = np.zeros((len(frames), 64), dtype=np.uint8)
    for i, f in enumerate(frames):
        data[i, : len(f)] = np.frombuffer(f, dtype=np.uint8)
    length = np.array([len(f) for f in frames], dtype=np.int64)
    data_id = np.array([(i * 7919) & 0xFFFF for i in range(len(frames))], dtype=np.int64)
    crc_byte = np.array([i % 3 for i in range(len(frames))], dtype=np.int64)
    out = np.zeros(len(frames), dtype=np.int64)
    kernels.crc_rows(CRC8_TABLE, data, np.arange(len(frames), dtype=np.int64), data_id, length, crc_byte, out)
    for i, f in enumerate(frames):
        c = int(crc_byte[i])
        expected = bitwise_crc8(bytes([data_id[i] & 0xFF, data_id[i] >> 8]) + f[:c] + f[c + 1 :])
        assert out[i] == expected


# -- spec from the DBC -------------------------------------------------------------------------

def test_spec_from_dbc_attributes(spec: E2ESpec, db) -> None:
    assert (spec.data_id, spec.length, spec.crc_byte, spec.counter_byte, spec.counter_shift) == (4660, 8, 0, 1, 0)
    assert (spec.crc_signal, spec.counter_signal) == ("Prot_CRC", "Prot_Counter")
    assert E2ESpec.from_message(db.get_message_by_name("Plain")) is None


@pytest.mark.parametrize("name, fragment", [("NoCrc", "CRC"), ("WideCtr", "Counter")])
def test_broken_spec_names_the_message(db, name: str, fragment: str) -> None:
    with pytest.raises(VehicleIoError) as info:
        E2ESpec.from_message(db.get_message_by_name(name))
    text = str(info.value)
    assert name in text and fragment in text and "expected" in text


def test_spec_checks_its_own_fields() -> None:
    with pytest.raises(E2EError, match="inside the 8-byte frame"):
        E2ESpec("M", 1, 1, 8, "c", "n", crc_byte=8, counter_byte=1, counter_shift=0)
    with pytest.raises(E2EError, match="byte of its own"):
        E2ESpec("M", 1, 1, 8, "c", "n", crc_byte=1, counter_byte=1, counter_shift=0)


# -- protect (sender) --------------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=8, max_size=8), st.integers(0, 14))
def test_protect_fills_counter_and_crc(spec: E2ESpec, data: bytes, counter: int) -> None:
    frame = protect(spec, data, counter)
    assert len(frame) == 8
    assert frame[1] & 0x0F == counter
    assert frame[1] & 0xF0 == data[1] & 0xF0  # the other nibble is the sender's data
    assert frame[2:] == data[2:]
    assert frame[0] == bitwise_crc8(bytes([4660 & 0xFF, 4660 >> 8]) + bytes(frame[1:8]))


def test_protect_decodes_with_cantools(spec: E2ESpec, db) -> None:
    msg = db.get_message_by_name("Prot")
    frame = protect(spec, msg.encode({"Prot_CRC": 0, "Prot_Counter": 0, "Prot_Flag": 1, "Prot_Speed": 12.34}), 9)
    decoded = msg.decode(bytes(frame))
    assert decoded["Prot_Counter"] == 9 and decoded["Prot_Flag"] == 1 and decoded["Prot_Speed"] == pytest.approx(12.34)


def test_protect_rejects_bad_counter_and_short_data(spec: E2ESpec) -> None:
    with pytest.raises(E2EError, match="0..14"):
        protect(spec, bytes(8), 15)
    with pytest.raises(E2EError, match="at least 8 bytes"):
        protect(spec, bytes(5), 1)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=8, max_size=8), st.integers(0, 14)), min_size=1, max_size=30))
def test_protect_batch_equals_protect(spec: E2ESpec, rows: list[tuple[bytes, int]]) -> None:
    data = np.array([list(d) for d, _ in rows], dtype=np.uint8)
    out = protect_batch(spec, data.copy(), [c for _, c in rows])
    for i, (d, c) in enumerate(rows):
        assert bytes(out[i]) == bytes(protect(spec, d, c))


def test_next_counter_wraps_at_14() -> None:
    assert [next_counter(c) for c in (0, 13, 14)] == [1, 14, 0]


# -- receiver: per-frame classification -------------------------------------------------------

def frames(spec: E2ESpec, counters: list[int], payload: bytes = bytes(8)) -> list[bytes]:
    return [bytes(protect(spec, payload, c)) for c in counters]


def test_good_sequence_goes_valid_and_wraps(spec: E2ESpec) -> None:
    rx = E2EReceiver(spec)
    results = [rx.check(f) for f in frames(spec, [12, 13, 14, 0, 1])]
    assert [s for s, _ in results] == [CheckStatus.OK] * 5
    # NODATA -> INIT on the first frame (not counted), VALID once min_ok_init (2) OKs are in.
    assert [st for _, st in results] == [SMState.INIT, SMState.INIT, SMState.VALID, SMState.VALID, SMState.VALID]


def test_repeated_lost_jump_crc_and_counter15_classified(spec: E2ESpec) -> None:
    rx = E2EReceiver(spec, E2EConfig(max_delta=3))
    good = frames(spec, [0, 1, 1, 3, 6, 13])
    statuses = [rx.check(f)[0] for f in good]
    assert statuses == [
        CheckStatus.OK,
        CheckStatus.OK,
        CheckStatus.REPEATED,
        CheckStatus.OK_SOME_LOST,  # delta 2
        CheckStatus.OK_SOME_LOST,  # delta 3 = max_delta
        CheckStatus.WRONG_SEQUENCE,  # delta 7
    ]
    # After a jump the receiver resynchronises on the new counter.
    assert rx.check(frames(spec, [14])[0])[0] is CheckStatus.OK
    corrupted = bytearray(frames(spec, [0])[0])
    corrupted[5] ^= 0x01
    assert rx.check(corrupted)[0] is CheckStatus.ERROR
    # Counter 15 with a CRC that matches it is still an error (15 is never valid).
    raw = bytearray(8)
    raw[1] = 0x0F
    raw[0] = spec.crc_of(raw)
    assert rx.check(raw)[0] is CheckStatus.ERROR
    # A frame with the right layout but another data id fails the CRC.
    other = E2ESpec(**{**{f: getattr(spec, f) for f in spec.__slots__}, "data_id": 4661})
    assert rx.check(bytes(protect(other, bytes(8), 0)))[0] is CheckStatus.ERROR
    assert rx.check(bytes(3))[0] is CheckStatus.ERROR  # shorter than the DBC length


@pytest.mark.parametrize(
    "last, counter, crc_ok, expected",
    [
        (None, 7, True, CheckStatus.OK),
        (14, 0, True, CheckStatus.OK),
        (14, 1, True, CheckStatus.OK_SOME_LOST),
        (5, 5, True, CheckStatus.REPEATED),
        (5, 8, True, CheckStatus.WRONG_SEQUENCE),
        (5, 4, True, CheckStatus.WRONG_SEQUENCE),  # backwards = delta 14
        (5, 6, False, CheckStatus.ERROR),
        (None, 15, True, CheckStatus.ERROR),
    ],
)
def test_classify_table(last: int | None, counter: int, crc_ok: bool, expected: CheckStatus) -> None:
    assert classify(last, counter, crc_ok, max_delta=2) is expected


# -- receiver: state machine -------------------------------------------------------------------

def feed(sm: E2EStateMachine, statuses: list[CheckStatus]) -> list[SMState]:
    return [sm.update(s) for s in statuses]


OK, ERR, NND, REP = CheckStatus.OK, CheckStatus.ERROR, CheckStatus.NO_NEW_DATA, CheckStatus.REPEATED


def test_sm_stays_nodata_on_errors_and_silence() -> None:
    sm = E2EStateMachine()
    assert feed(sm, [ERR, NND, ERR]) == [SMState.NODATA] * 3


def test_sm_init_to_invalid_on_error() -> None:
    sm = E2EStateMachine()  # max_error_init = 0
    assert feed(sm, [OK, OK, ERR]) == [SMState.INIT, SMState.INIT, SMState.INVALID]


def test_sm_valid_tolerates_max_error_valid_then_invalid() -> None:
    sm = E2EStateMachine()  # window 3, min_ok_valid 1, max_error_valid 1
    feed(sm, [OK, OK, OK])
    assert sm.state is SMState.VALID
    # window [OK OK OK] -> [ERR OK OK] (1 error: stays) -> [ERR ERR OK] (2 errors: invalid)
    assert feed(sm, [ERR, ERR]) == [SMState.VALID, SMState.INVALID]


def test_sm_invalid_recovers_after_min_ok_invalid_clean_window() -> None:
    sm = E2EStateMachine()
    feed(sm, [OK, OK, OK, ERR, ERR])
    assert sm.state is SMState.INVALID
    # Needs >= 2 OK and 0 errors in the window of 3: the two errors must slide out first.
    assert feed(sm, [OK, OK, OK]) == [SMState.INVALID, SMState.INVALID, SMState.VALID]


def test_sm_silence_drains_valid_to_invalid() -> None:
    sm = E2EStateMachine()
    feed(sm, [OK, OK, OK])
    # window [OK OK OK]: each NO_NEW_DATA replaces an OK; below min_ok_valid (1) -> INVALID.
    assert feed(sm, [NND, NND, NND]) == [SMState.VALID, SMState.VALID, SMState.INVALID]


def test_sm_repeats_dilute_but_are_not_errors() -> None:
    sm = E2EStateMachine(E2EConfig(window_size=4, min_ok_init=2, min_ok_valid=2, min_ok_invalid=3,
                                   max_error_init=0, max_error_valid=1, max_error_invalid=0))
    feed(sm, [OK, OK, OK])
    assert feed(sm, [REP, REP]) == [SMState.VALID, SMState.VALID]  # [OK OK REP REP]: 2 OK
    assert feed(sm, [REP]) == [SMState.INVALID]  # [REP OK REP REP]: 1 OK


def test_clear_to_invalid_empties_the_window() -> None:
    cfg = E2EConfig(clear_to_invalid=True)
    sm = E2EStateMachine(cfg)
    feed(sm, [OK, OK, OK, ERR, ERR])
    assert sm.state is SMState.INVALID and sm.ok_count == 0 and sm.error_count == 0
    assert feed(sm, [OK, OK]) == [SMState.INVALID, SMState.VALID]


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"window_size": 0}, "window_size"),
        ({"max_delta": 14}, "max_delta"),
        ({"min_ok_valid": 3}, "min_ok_valid <= min_ok_init"),
        ({"max_error_init": 2}, "max_error_init <= max_error_valid"),
        ({"window_size": 2, "min_ok_invalid": 3, "min_ok_init": 2}, "min_ok_invalid + max_error_invalid"),
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, int], fragment: str) -> None:
    with pytest.raises(E2EError, match="expected") as info:
        E2EConfig(**kwargs)
    assert fragment in str(info.value)


# -- kernels versus the scalar reference -------------------------------------------------------

event = st.one_of(
    st.tuples(st.just("next"), st.integers(1, 5) | st.integers(1, 14)),  # advance by k, small steps likelier
    st.tuples(st.just("crc"), st.integers(0, 7)),  # flip a bit
    st.tuples(st.just("ctr15"), st.just(0)),
    st.tuples(st.just("short"), st.just(0)),
    st.tuples(st.just("nnd"), st.integers(1, 5)),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(event, max_size=60),
    st.sampled_from([E2EConfig(), E2EConfig(max_delta=4, window_size=5, min_ok_init=3, min_ok_valid=2,
                                             min_ok_invalid=4, max_error_init=1, max_error_valid=2,
                                             max_error_invalid=1, clear_to_invalid=True)]),
)
def test_kernel_matches_scalar_receiver(spec: E2ESpec, events: list[tuple[str, int]], cfg: E2EConfig) -> None:
    ref = E2EReceiver(spec, cfg)
    spec_arr = np.array([[spec.data_id, spec.length, spec.crc_byte, spec.counter_byte, spec.counter_shift,
                          cfg.max_delta]], dtype=np.int64)
    cfg_arr = np.array([[cfg.window_size, cfg.min_ok_init, cfg.max_error_init, cfg.min_ok_valid,
                         cfg.max_error_valid, cfg.min_ok_invalid, cfg.max_error_invalid,
                         int(cfg.clear_to_invalid)]], dtype=np.int64)
    last, sm_state, window, top = kernels.new_state(1)
    counter = 0
    status = np.zeros(1, dtype=np.uint8)
    state = np.zeros(1, dtype=np.uint8)
    crc_ok = np.zeros(1, dtype=np.uint8)
    counts = np.zeros((1, 6), dtype=np.int64)
    deadline = np.full(1, np.nan)
    seen_status: dict[CheckStatus, int] = {}
    for kind, arg in events:
        if kind == "nnd":
            expected = [ref.no_new_data() for _ in range(arg)][-1]
            kernels.no_new_data(np.zeros(1, dtype=np.int64), np.array([arg], dtype=np.int64),
                                cfg_arr, sm_state, window, top)
            assert sm_state[0] == expected
            continue
        frame = bytearray(protect(spec, bytes(range(8)), counter))
        length = 8
        if kind == "next":
            counter = (counter + arg) % 15
        elif kind == "crc":
            frame[2 + arg % 6] ^= 1 << arg
        elif kind == "ctr15":
            frame[1] |= 0x0F
            frame[0] = spec.crc_of(frame)
        else:
            length = 5
        exp_status, exp_state = ref.check(bytes(frame[:length]))
        data = np.frombuffer(bytes(frame), dtype=np.uint8).reshape(1, 8).copy()
        kernels.check_rows(CRC8_TABLE, data, np.array([length], dtype=np.uint8), np.zeros(1, dtype=np.int64),
                           np.zeros(1, dtype=np.int64), spec_arr, cfg_arr, last, sm_state, window, top,
                           status, state, crc_ok, counts, np.zeros(1), np.full(1, np.inf), 1.5, deadline)
        assert counts[0, exp_status] == seen_status.get(exp_status, 0) + 1
        seen_status[exp_status] = seen_status.get(exp_status, 0) + 1
        assert (CheckStatus(int(status[0])), SMState(int(state[0]))) == (exp_status, exp_state)


def _kernel_arrays(spec: E2ESpec, cfg: E2EConfig) -> tuple[np.ndarray, np.ndarray]:
    spec_arr = np.array([[spec.data_id, spec.length, spec.crc_byte, spec.counter_byte, spec.counter_shift,
                          cfg.max_delta]], dtype=np.int64)
    cfg_arr = np.array([[cfg.window_size, cfg.min_ok_init, cfg.max_error_init, cfg.min_ok_valid,
                         cfg.max_error_valid, cfg.min_ok_invalid, cfg.max_error_invalid,
                         int(cfg.clear_to_invalid)]], dtype=np.int64)
    return spec_arr, cfg_arr


@pytest.mark.parametrize("max_delta", [1, 2, 5, 13])
def test_kernel_counter_steps_exhaustive(spec: E2ESpec, max_delta: int) -> None:
    """Every (previous, next) counter pair, through the kernel, against classify()."""
    cfg = E2EConfig(max_delta=max_delta)
    spec_arr, cfg_arr = _kernel_arrays(spec, cfg)
    prev_next = [(a, b) for a in range(15) for b in range(16)]
    data = np.zeros((2 * len(prev_next), 8), dtype=np.uint8)
    for i, (a, b) in enumerate(prev_next):
        data[2 * i] = np.frombuffer(protect(spec, bytes(8), a), dtype=np.uint8)
        second = bytearray(8)
        second[1] = b
        second[0] = spec.crc_of(second)  # a matching CRC even for counter 15
        data[2 * i + 1] = np.frombuffer(bytes(second), dtype=np.uint8)
    out = np.zeros(2, dtype=np.uint8)
    state, crc_ok = np.zeros(2, dtype=np.uint8), np.zeros(2, dtype=np.uint8)
    for i, (a, b) in enumerate(prev_next):
        last, sm_state, window, top = kernels.new_state(1)
        rows = np.array([2 * i, 2 * i + 1], dtype=np.int64)
        kernels.check_rows(CRC8_TABLE, data, np.full(data.shape[0], 8, dtype=np.uint8), rows,
                           np.zeros(2, dtype=np.int64), spec_arr, cfg_arr, last, sm_state, window, top,
                           out, state, crc_ok, np.zeros((1, 6), dtype=np.int64), np.zeros(data.shape[0]),
                           np.full(1, np.inf), 1.5, np.full(1, np.nan))
        assert CheckStatus(int(out[1])) is classify(a, b, True, max_delta), (a, b)
