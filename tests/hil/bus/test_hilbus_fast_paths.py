"""The bus's shortcuts against the general paths they stand next to.

* the numba bit-count kernel (hil.bus._bits_kernels) against the table walk of
  :func:`hil.bus.bits.bit_counts` and the bit-by-bit reference :func:`frame_bits`;
* :meth:`SimClock._jump_to` (a frame ends inside its start) only where the heap would have run
  that end next anyway;
* :meth:`Endpoint._submit_data` takes exactly the frames send_data would queue unchanged and
  leaves every other case (errors, waits) to send_data.

Whole-rig equality of the traffic with and without every shortcut:
tests/hil/ecus/test_rig_fast_paths.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hil.bus.bits as bits
from hil.bus import SimClock, open_channel
from hil.bus._bits_kernels import bit_counts_kernel
from hil.bus.bits import FD_LENGTHS, bit_counts, frame_bits
from hil.bus.clock import PRIO_EVENT
from hil.bus.errors import BusOffError, InvalidFrameError

payload_bytes = st.sampled_from([0x00, 0xFF, 0x0F, 0xF0, 0x55, 0xAA, 0x1F, 0x83])

frames = st.one_of(
    st.builds(  # classic data frames
        lambda ext, can_id, data: (can_id % (1 << (29 if ext else 11)), ext, False, False, False, False, len(data), data),
        st.booleans(), st.integers(0, (1 << 29) - 1),
        st.binary(max_size=8) | st.lists(payload_bytes, max_size=8).map(bytes),
    ),
    st.builds(  # classic remote frames: a DLC, no data
        lambda ext, can_id, dlc: (can_id % (1 << (29 if ext else 11)), ext, True, False, False, False, dlc, b""),
        st.booleans(), st.integers(0, (1 << 29) - 1), st.integers(0, 8),
    ),
    st.builds(  # CAN FD, with and without bit-rate switch and ESI
        lambda ext, can_id, data, brs, esi: (can_id % (1 << (29 if ext else 11)), ext, False, True, brs, esi, len(data),
                                             data),
        st.booleans(), st.integers(0, (1 << 29) - 1),
        st.sampled_from(FD_LENGTHS).flatmap(
            lambda n: st.binary(min_size=n, max_size=n) | st.lists(payload_bytes, min_size=n, max_size=n).map(bytes)),
        st.booleans(), st.booleans(),
    ),
)


@settings(max_examples=400, deadline=None)
@given(frames)
def test_kernel_counts_equal_tables_and_reference(frame: tuple) -> None:
    can_id, ext, remote, fd, brs, esi, dlc, data = frame
    flags = ext | (remote << 1) | (fd << 2) | (brs << 3) | (esi << 4)
    kernel = tuple(bit_counts_kernel(can_id, flags, dlc, data))
    built = frame_bits(can_id, is_extended_id=ext, is_remote_frame=remote, is_fd=fd, bitrate_switch=brs,
                       error_state_indicator=esi, dlc=None if fd else dlc, data=data)
    assert kernel == (built.nominal_bits, built.data_bits)
    saved = bits._KERNEL, bits._COUNT_CACHE
    try:
        bits._KERNEL, bits._COUNT_CACHE = None, {}
        assert bit_counts(can_id, ext, remote, fd, brs, esi, dlc, data) == kernel
        bits._KERNEL, bits._COUNT_CACHE = bit_counts_kernel, {}
        assert bit_counts(can_id, ext, remote, fd, brs, esi, dlc, data) == kernel
    finally:
        bits._KERNEL, bits._COUNT_CACHE = saved


# -- SimClock._jump_to ------------------------------------------------------------------------


def _jump_from_event(clock: SimClock, at_ps: int, target_ps: int, deadline_ps: int) -> list[object]:
    """Run the clock to ``deadline_ps``; an event at ``at_ps`` tries to jump to ``target_ps``."""
    seen: list[object] = []

    def event() -> None:
        ok = clock._jump_to(target_ps)
        seen.append((ok, clock.now_ps()))

    clock.call_at_ps(at_ps, event)
    clock.run_until_ps(deadline_ps)
    return seen


def test_jump_when_nothing_else_is_due() -> None:
    clock = SimClock()
    assert _jump_from_event(clock, 100, 500, 1000) == [(True, 500)]
    assert clock.now_ps() == 1000


def test_no_jump_over_a_due_event_or_one_at_the_target() -> None:
    for other_ps in (300, 500):
        clock = SimClock()
        order: list[str] = []
        clock.call_at_ps(other_ps, lambda: order.append("other"))
        assert _jump_from_event(clock, 100, 500, 1000) == [(False, 100)]


def test_a_cancelled_event_does_not_block_the_jump() -> None:
    clock = SimClock()
    clock.call_at_ps(300, lambda: None).cancel()
    assert _jump_from_event(clock, 100, 500, 1000) == [(True, 500)]


def test_no_jump_past_the_deadline() -> None:
    clock = SimClock()
    assert _jump_from_event(clock, 100, 1500, 1000) == [(False, 100)]
    assert clock.now_ps() == 1000


def test_no_jump_while_a_deferred_call_waits() -> None:
    clock = SimClock()
    seen: list[object] = []

    def event() -> None:
        clock.defer(lambda: seen.append("deferred"))
        seen.append(clock._jump_to(500))

    clock.call_at_ps(100, event)
    clock.run_until_ps(1000)
    assert seen == [False, "deferred"]


def test_no_jump_when_the_driver_waits_for_a_condition() -> None:
    clock = SimClock()
    seen: list[bool] = []
    clock.call_at_ps(100, lambda: seen.append(clock._jump_to(500)))
    clock.wait_until(lambda: bool(seen), 1e-6)  # drives with a predicate: every event's aftermath matters
    assert seen == [False]


def test_no_jump_outside_the_driver() -> None:
    clock = SimClock()
    assert clock._jump_to(500) is False
    assert clock.now_ps() == 0


def test_a_jump_keeps_later_events_in_order() -> None:
    clock = SimClock()
    order: list[tuple[str, int]] = []

    def first() -> None:
        assert clock._jump_to(400)
        order.append(("jumped", clock.now_ps()))
        clock._push(400, PRIO_EVENT, lambda: order.append(("same instant", clock.now_ps())), ())

    clock.call_at_ps(100, first)
    clock.call_at_ps(600, lambda: order.append(("later", clock.now_ps())))
    clock.run_until_ps(1000)
    assert order == [("jumped", 400), ("same instant", 400), ("later", 600)]


# -- Endpoint._submit_data --------------------------------------------------------------------


@pytest.fixture
def channel():
    ch = open_channel("fastpath-t", clock=SimClock(), fd=True, data_bitrate=2_000_000, require_ack=False)
    yield ch
    for endpoint in ch.endpoints():
        endpoint.close()
    ch.close()


def test_submit_data_queues_what_send_data_queues(channel) -> None:
    a = channel.attach(node="A")
    b = channel.attach(node="B")
    seen: list[tuple] = []
    channel.add_frame_observer(lambda f: seen.append((f.sender, f.arbitration_id, f.is_fd, f.bitrate_switch, f.dlc,
                                                      f.data, f.nominal_bits, f.data_bits, f.t_end_ps - f.t_start_ps)))
    with channel.clock.lock:
        assert a._submit_data(0x123, b"\x01\x02\x03", False, False, False)
        assert a._submit_data(0x1ABCDEF, b"\x01" * 9, True, True, True)  # FD: padded to 12 bytes
    b.send_data(0x123, b"\x01\x02\x03")
    b.send_data(0x1ABCDEF, b"\x01" * 9, is_extended_id=True, is_fd=True, bitrate_switch=True)
    channel.clock.run_until(0.01)
    assert len(seen) == 4
    assert [s[1:] for s in seen if s[0] == "A"] == [s[1:] for s in seen if s[0] == "B"]
    assert a.tx_pending == b.tx_pending == 0


@pytest.mark.parametrize("case", ["bad id", "long classic", "brs classic", "long fd", "closed", "bus-off", "listen-only",
                                  "queue full"])
def test_submit_data_leaves_every_refusal_to_send_data(channel, case: str) -> None:
    ep = channel.attach(node="A", tx_queue_size=1)
    args = {"arbitration_id": 0x10, "data": b"\x00", "is_extended_id": False, "is_fd": False, "bitrate_switch": False}
    expected: type[Exception] | None = InvalidFrameError
    if case == "bad id":
        args["arbitration_id"] = 0x800
    elif case == "long classic":
        args["data"] = bytes(9)
    elif case == "brs classic":
        args["bitrate_switch"] = True
    elif case == "long fd":
        args.update(is_fd=True, data=bytes(65))
    elif case == "closed":
        ep.close()
        expected = Exception
    elif case == "bus-off":
        ep._node.counters.bus_off = True
        expected = BusOffError
    elif case == "listen-only":
        ep.set_listen_only(True)
        expected = Exception
    else:
        ep.send_data(0x11, b"\x00")  # fills the one-frame queue
        expected = Exception
    with channel.clock.lock:
        assert ep._submit_data(args["arbitration_id"], args["data"], args["is_extended_id"], args["is_fd"],
                               args["bitrate_switch"]) is False
    with pytest.raises(expected):
        ep.send_data(args["arbitration_id"], args["data"], is_extended_id=args["is_extended_id"], is_fd=args["is_fd"],
                     bitrate_switch=args["bitrate_switch"], timeout=0)
