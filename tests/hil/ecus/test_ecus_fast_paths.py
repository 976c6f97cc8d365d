"""The simulated ECUs' shortcuts: cached command decoding and cached counter+CRC frames.

Each must give exactly what the plain computation gives (cantools decode, Z10-P1 protect).
"""

from __future__ import annotations

import random

import pytest

from hil.ecus.base import _DECODE_CACHE_SIZE, _Rx
from vehicle_io import load_database
from vehicle_io.e2e import E2ESpec, protect

DB = load_database()
COMMANDS = [m for m in DB.messages if m.name.startswith(("GW_", "ADC_"))]


@pytest.mark.parametrize("message", COMMANDS, ids=lambda m: m.name)
def test_cached_decode_equals_cantools(message) -> None:
    rx = _Rx(message, 0.1)
    rng = random.Random(message.frame_id)
    bases = [bytes(rng.randrange(256) for _ in range(message.length)) for _ in range(5)]
    for k in range(120):
        frame = bytearray(bases[k % len(bases)])  # the same values again and again ...
        frame[0] = rng.randrange(256)  # ... with other counter / CRC bytes
        frame[1] = rng.randrange(256)
        data = bytes(frame) + bytes(rng.randrange(3))  # longer than the DBC length at times
        try:
            want = message.decode(data[: message.length], decode_choices=False, scaling=True)
        except Exception as err:  # noqa: BLE001 - compare the failure too
            with pytest.raises(type(err)):
                rx.decode(data)
            continue
        got = rx.decode(data)
        assert got == want
        assert list(got) == list(want)
        assert all(type(got[n]) is type(want[n]) for n in want)
    assert len(rx.decoded) <= _DECODE_CACHE_SIZE


def test_decoded_values_are_the_callers_own() -> None:
    message = DB.get_message_by_name("GW_DriveCommand")
    rx = _Rx(message, 0.1)
    data = bytes(message.length)
    first = rx.decode(data)
    first[next(iter(first))] = 12345  # a hook that scribbles on its values
    assert rx.decode(data) == message.decode(data, decode_choices=False, scaling=True)


def test_ecu_frames_carry_counter_and_crc_like_protect(make_rig) -> None:
    """Every protected frame on the wire is protect(payload, counter) of its own payload."""
    rig = make_rig(seed=3, clock="sim")
    rec = rig.record()
    rig.run_for(1.0)
    rec.stop()
    specs = {m.frame_id: (m, E2ESpec.from_message(m)) for m in DB.messages if E2ESpec.from_message(m) is not None}
    checked = 0
    last: dict[int, int] = {}
    for frame in rec.frames:
        entry = specs.get(frame.arbitration_id)
        if entry is None or frame.is_error_frame:
            continue
        message, spec = entry
        data = frame.data[: message.length]
        counter = (data[spec.counter_byte] >> spec.counter_shift) & 0x0F
        assert bytes(protect(spec, data, counter)) == data
        if frame.arbitration_id in last:
            assert counter == (last[frame.arbitration_id] + 1) % 15
        last[frame.arbitration_id] = counter
        checked += 1
    assert checked > 100
