"""Bus clocks: one discrete-event scheduler, two ways of letting time pass.

Time is an integer number of picoseconds (``*_ps``): one bit at any usual CAN bit rate is a
whole number of picoseconds (500 kbit/s = 2,000,000 ps, 2 Mbit/s = 500,000 ps), so frame
times add up exactly and a timestamp is ``t_ps / 1e12``, the float nearest the exact time.

Everything that happens on a bus is an event on its clock's heap, ordered by
``(time, priority, sequence)``. Priority 0 is for ordinary events (deliveries, timers,
cyclic sends); priority 1 is for bus arbitration, so arbitration at time t sees every frame
queued by anything else that happens at t, as frames "pending when the bus becomes idle".

* :class:`SimClock`: time jumps from event to event. It advances only while something drives
  it: :meth:`SimClock.run_until` / :meth:`SimClock.advance` (the rig), or a blocking call on a
  bus of this clock (``recv(timeout)``, ``send`` with a full transmit queue), which runs events
  up to its own deadline and stops as soon as it has what it waits for. One thread drives at a
  time; the driver holds the clock lock, so other threads wait for it. Runs are deterministic
  when driven from one thread (plus clock callbacks): same inputs, same seed, same traffic and
  timestamps. With ``auto_advance=False`` blocking calls never drive; they wait (wall time)
  for another thread to advance the clock past their deadline.
* :class:`RealClock`: time is the wall clock (``time.time()`` at start, then
  ``time.monotonic_ns``); a scheduler thread runs each event when its time comes. The thread
  starts with the first channel attached and stops when the last one leaves.

All state of every channel on a clock is guarded by the clock's one re-entrant lock
(``clock.lock``): a single lock domain, so channels sharing a clock (a van's pt, body and ads
buses) never deadlock against each other.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import Any

LOG = logging.getLogger(__name__)
_get_ident = threading.get_ident

PS_PER_S = 1_000_000_000_000

#: Heap priority of ordinary events.
PRIO_EVENT = 0
#: Heap priority of bus arbitration: after every other event at the same time.
PRIO_ARBITRATION = 1


#: SimClock's loop for a plain run to a deadline (no predicate to check between events);
#: False runs the general loop (the rig tests run both and require the same traffic).
_FAST_PATHS = True


def seconds_to_ps(t_s: float) -> int:
    """Seconds (float) to integer picoseconds, rounded to the nearest."""
    return round(t_s * PS_PER_S)


class TimerHandle:
    """A scheduled callback; :meth:`cancel` keeps it from running."""

    __slots__ = ("t_ps", "fn", "args", "cancelled")

    def __init__(self, t_ps: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.t_ps = t_ps
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run this callback (no effect once it has run)."""
        self.cancelled = True

    @property
    def t_s(self) -> float:
        """When the callback is due, in seconds."""
        return self.t_ps / PS_PER_S


class Clock(ABC):
    """A bus clock: current time, a scheduler for callbacks, a way to wait for a condition."""

    #: True when time is simulated (jumps from event to event).
    is_simulated: bool = False

    def __init__(self) -> None:
        self.lock = threading.RLock()
        # Threads blocked in wait_until sleep here; notify_waiters wakes them.
        self._waiters_cv = threading.Condition(self.lock)
        self._n_waiters = 0
        self._heap: list[tuple[int, int, int, TimerHandle]] = []
        self._seq = 0
        self._users = 0

    # -- time ---------------------------------------------------------------------------------

    @abstractmethod
    def now_ps(self) -> int:
        """Current time in picoseconds."""

    def now(self) -> float:
        """Current time in seconds (the timestamp of a frame ending now)."""
        return self.now_ps() / PS_PER_S

    # -- scheduling ---------------------------------------------------------------------------

    def call_at_ps(self, t_ps: int, fn: Callable[..., Any], *args: Any, prio: int = PRIO_EVENT) -> TimerHandle:
        """Run ``fn(*args)`` at ``t_ps`` (not before now) on the clock's thread/driver.

        Callbacks run with the clock lock held and must not block; they may send frames and
        schedule further callbacks.
        """
        with self.lock:
            now = self.now_ps()
            return self._push(now if t_ps < now else t_ps, prio, fn, args)

    def _push(self, t_ps: int, prio: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> TimerHandle:
        """Schedule without checks (lock held, ``t_ps`` not in the past): the bus's own events."""
        handle = TimerHandle(t_ps, fn, args)
        self._seq += 1
        heapq.heappush(self._heap, (t_ps, prio, self._seq, handle))
        if self._n_waiters:
            self.notify_waiters()
        return handle

    def defer(self, fn: Callable[[], Any]) -> TimerHandle | None:
        """Run ``fn()`` now, but after every other event due now (lock held).

        Returns None when the clock took it without an event (the simulated driver runs
        deferred calls between events: cheaper than a heap entry), else the event's handle.
        """
        return self._push(self.now_ps(), PRIO_ARBITRATION, fn, ())

    def call_at(self, t_s: float, fn: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``fn(*args)`` at time ``t_s`` (seconds on this clock)."""
        return self.call_at_ps(seconds_to_ps(t_s), fn, *args)

    def call_later(self, delay_s: float, fn: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``fn(*args)`` ``delay_s`` seconds from now."""
        if delay_s < 0:
            raise ValueError(f"expected a delay >= 0 s, but got {delay_s}")
        with self.lock:
            return self.call_at_ps(self.now_ps() + seconds_to_ps(delay_s), fn, *args)

    def pending_events(self) -> int:
        """Number of scheduled, not cancelled events."""
        with self.lock:
            return sum(1 for entry in self._heap if not entry[3].cancelled)

    def _other_event_due(self, t_ps: int) -> bool:
        """True when an event at or before ``t_ps`` is waiting (lock held)."""
        heap = self._heap
        while heap and heap[0][3].cancelled:
            heapq.heappop(heap)
        return bool(heap) and heap[0][0] <= t_ps

    def _jump_to(self, t_ps: int) -> bool:
        """Let the running event move time on to ``t_ps`` itself (lock held, from an event).

        True (time is now ``t_ps``) only where that is what the scheduler would do next anyway:
        see :meth:`SimClock._jump_to`. Here never: events run through the heap.
        """
        return False

    def _run_one(self) -> None:
        """Pop and run the first event (lock held, heap not empty, event due)."""
        _, _, _, handle = heapq.heappop(self._heap)
        if not handle.cancelled:
            handle.cancelled = True  # a handle runs once; cancel() after that is a no-op
            handle.fn(*handle.args)

    # -- waiting ------------------------------------------------------------------------------

    @abstractmethod
    def wait_until(self, predicate: Callable[[], bool], timeout_s: float | None) -> bool:
        """Block until ``predicate()`` is true or ``timeout_s`` of this clock's time passed.

        ``None`` waits without limit. Returns the last value of the predicate. Called without
        the lock held or with it held once by the caller.
        """

    def notify_waiters(self) -> None:
        """Wake threads blocked in :meth:`wait_until` so they re-check (lock held)."""
        if self._n_waiters:
            self._waiters_cv.notify_all()

    # -- users (channels) -----------------------------------------------------------------------

    def attach(self) -> None:
        """A channel starts using this clock."""
        with self.lock:
            self._users += 1

    def detach(self) -> None:
        """A channel stops using this clock."""
        with self.lock:
            self._users = max(0, self._users - 1)

    @property
    def in_callback(self) -> bool:
        """True when the calling thread is running this clock's events (a callback)."""
        return False


class SimClock(Clock):
    """Deterministic simulated time, advanced by whoever drives it (see the module docstring)."""

    is_simulated = True

    def __init__(self, start_s: float = 0.0, *, auto_advance: bool = True) -> None:
        super().__init__()
        if start_s < 0:
            raise ValueError(f"expected a start time >= 0 s, but got {start_s}")
        self._now_ps = seconds_to_ps(start_s)
        self.auto_advance = auto_advance
        self._driver: int | None = None
        self._deferred: deque[Callable[[], Any]] = deque()
        # Latest time an event may move the clock to by itself (_jump_to); -1: not now.
        self._jump_limit_ps = -1

    def __repr__(self) -> str:
        return f"SimClock(t={self.now():.9f}s, pending={len(self._heap)})"

    def now_ps(self) -> int:
        return self._now_ps

    @property
    def in_callback(self) -> bool:
        return self._driver == _get_ident()

    def run_until_ps(self, t_ps: int) -> None:
        """Run every event up to and including ``t_ps``, then set the time to ``t_ps``."""
        with self.lock:
            self._drive(t_ps, None)

    def run_until(self, t_s: float) -> None:
        """Run every event up to and including time ``t_s`` (seconds); time ends at ``t_s``."""
        self.run_until_ps(seconds_to_ps(t_s))

    def advance(self, dt_s: float) -> None:
        """Run the next ``dt_s`` seconds of simulated time."""
        if dt_s < 0:
            raise ValueError(f"expected a time step >= 0 s, but got {dt_s}")
        with self.lock:
            self._drive(self._now_ps + seconds_to_ps(dt_s), None)

    def run_until_idle(self, limit_s: float) -> bool:
        """Run events until none is left or time reaches ``limit_s``; True when none is left.

        A limit is required: cyclic senders never leave the heap empty.
        """
        limit_ps = seconds_to_ps(limit_s)
        with self.lock:
            self._drive(
                limit_ps, lambda: not self._deferred and not self._other_event_due(limit_ps), stop_at_deadline=False
            )
            return not self._other_event_due(limit_ps)

    def _drive(
        self,
        deadline_ps: int | None,
        done: Callable[[], bool] | None,
        stop_at_deadline: bool = True,
    ) -> bool:
        """Run events in order until ``done()`` or the deadline; lock held by the caller."""
        me = _get_ident()
        if self._driver == me:
            raise RuntimeError(
                "expected clock callbacks not to wait on simulated time, but one tried to "
                "drive the clock it is running on"
            )
        while self._driver is not None:  # another thread drives: let it finish
            self._n_waiters += 1
            try:
                self._waiters_cv.wait()
            finally:
                self._n_waiters -= 1
            if done is not None and done():
                return True
        self._driver = me
        # Only a drive to a deadline with nothing to watch between events lets an event jump
        # ahead (_jump_to): a done() predicate must see every event's aftermath.
        self._jump_limit_ps = deadline_ps if done is None and deadline_ps is not None else -1
        heap = self._heap
        pop = heapq.heappop
        deferred = self._deferred
        try:
            if done is None and deadline_ps is not None and _FAST_PATHS:
                # A plain run to a deadline (the rig's): the loop below without the predicate,
                # in the same order: cancelled entries go, deferred calls run before anything
                # later than now, then due events up to the deadline.
                while True:
                    if heap:
                        entry = heap[0]
                        handle = entry[3]
                        if handle.cancelled:
                            pop(heap)
                            continue
                        t_ps = entry[0]
                        if deferred and t_ps > self._now_ps:
                            deferred.popleft()()
                            continue
                        if t_ps <= deadline_ps:
                            pop(heap)
                            self._now_ps = t_ps
                            handle.cancelled = True
                            handle.fn(*handle.args)
                            continue
                    elif deferred:
                        deferred.popleft()()
                        continue
                    if stop_at_deadline and deadline_ps > self._now_ps:
                        self._now_ps = deadline_ps
                    return True
            while True:
                if done is not None and done():
                    return True
                while heap and heap[0][3].cancelled:
                    pop(heap)
                if deferred and not (heap and heap[0][0] <= self._now_ps):
                    deferred.popleft()()
                    continue
                if heap and (deadline_ps is None or heap[0][0] <= deadline_ps):
                    t_ps, _, _, handle = pop(heap)
                    self._now_ps = t_ps
                    handle.cancelled = True
                    handle.fn(*handle.args)
                    continue
                if deadline_ps is not None:
                    if stop_at_deadline and deadline_ps > self._now_ps:
                        self._now_ps = deadline_ps
                    return done() if done is not None else True
                # Nothing scheduled and no deadline: only another thread can change that.
                self._driver = None
                self._jump_limit_ps = -1
                self.notify_waiters()
                self._n_waiters += 1
                try:
                    self._waiters_cv.wait()
                finally:
                    self._n_waiters -= 1
                while self._driver is not None:
                    self._n_waiters += 1
                    try:
                        self._waiters_cv.wait()
                    finally:
                        self._n_waiters -= 1
                self._driver = me
                self._jump_limit_ps = -1
        finally:
            if self._driver == me:
                self._driver = None
                self._jump_limit_ps = -1
            self.notify_waiters()

    def _jump_to(self, t_ps: int) -> bool:
        """Move time to ``t_ps`` from inside the running event, when the driver would run that
        event's follow-up at ``t_ps`` next anyway.

        That holds when the caller is the driver of a plain run to a deadline (no done()
        predicate), ``t_ps`` is not past that deadline, no deferred call is waiting and no
        event is due at or before ``t_ps``. The caller then does at once, with time ``t_ps``,
        what its heap event would have done: the same order, without the heap round trip (the
        bus's end of frame). Sequence numbers of later events only shift, never reorder.
        """
        if t_ps > self._jump_limit_ps or self._deferred or self._driver != _get_ident():
            return False
        heap = self._heap
        while heap and heap[0][3].cancelled:
            heapq.heappop(heap)
        if heap and heap[0][0] <= t_ps:
            return False
        if t_ps > self._now_ps:
            self._now_ps = t_ps
        return True

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float | None) -> bool:
        if predicate():
            return True
        if timeout_s is not None and timeout_s <= 0:
            return False
        with self.lock:
            deadline = None if timeout_s is None else self._now_ps + seconds_to_ps(timeout_s)
            if self._driver == _get_ident():
                return predicate()  # a callback cannot block on the time it is producing
            if self.auto_advance:
                return self._drive(deadline, predicate)
            # Manual mode: someone else advances the clock; wake up when time passes the
            # deadline (an event that only notifies) or when a delivery notifies.
            wake = None
            if deadline is not None:
                wake = self.call_at_ps(deadline, self.notify_waiters)
            try:
                while not predicate():
                    if deadline is not None and self._now_ps >= deadline:
                        return False
                    self._n_waiters += 1
                    try:
                        self._waiters_cv.wait()
                    finally:
                        self._n_waiters -= 1
                return True
            finally:
                if wake is not None:
                    wake.cancel()

    def defer(self, fn: Callable[[], Any]) -> TimerHandle | None:
        if self._driver == _get_ident():
            self._deferred.append(fn)
            return None
        return super().defer(fn)


#: Longest stretch the real-time scheduler runs late events without letting go of the lock.
_YIELD_EVERY_NS = 2_000_000


class RealClock(Clock):
    """Wall-clock time: events run by a scheduler thread when their time comes."""

    is_simulated = False

    def __init__(self) -> None:
        super().__init__()
        self._epoch_ps = round(time.time() * PS_PER_S)
        self._mono0_ns = time.monotonic_ns()
        self._sched_cv = threading.Condition(self.lock)
        self._thread: threading.Thread | None = None
        self._thread_ident: int | None = None
        self._event_ps: int | None = None
        self._stopping = False
        self.callback_errors = 0

    def __repr__(self) -> str:
        return f"RealClock(pending={len(self._heap)}, running={self._thread is not None})"

    def now_ps(self) -> int:
        # Inside an event, "now" is the event's own time: when the scheduler runs late, bus
        # timing stays exact (frames start at the end of the previous one, not when the thread
        # woke up); only the delivery is late.
        event_ps = self._event_ps
        if event_ps is not None and self._thread_ident == _get_ident():
            return event_ps
        return self._epoch_ps + (time.monotonic_ns() - self._mono0_ns) * 1000

    @property
    def in_callback(self) -> bool:
        return self._thread_ident == _get_ident()

    def _push(self, t_ps: int, prio: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> TimerHandle:
        handle = super()._push(t_ps, prio, fn, args)
        if self._heap[0][3] is handle:  # a new earliest event: the scheduler must wake sooner
            self._sched_cv.notify()
        return handle

    def attach(self) -> None:
        with self.lock:
            self._users += 1
            if self._thread is None:
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name="hilbus-realclock", daemon=True)
                self._thread.start()

    def detach(self) -> None:
        thread = None
        with self.lock:
            self._users = max(0, self._users - 1)
            if self._users == 0 and self._thread is not None:
                self._stopping = True
                self._sched_cv.notify()
                thread = self._thread
                self._thread = None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def close(self) -> None:
        """Stop the scheduler thread now, whatever still uses the clock."""
        with self.lock:
            self._users = 1
        self.detach()

    def _run(self) -> None:
        heap = self._heap
        last_yield_ns = time.monotonic_ns()
        with self.lock:
            self._thread_ident = _get_ident()
            try:
                while not self._stopping:
                    while heap and heap[0][3].cancelled:
                        heapq.heappop(heap)
                    if not heap:
                        self._sched_cv.wait()
                        continue
                    t_ps = heap[0][0]
                    due_in_ps = t_ps - self._wall_ps()
                    if due_in_ps > 0:
                        self._sched_cv.wait(due_in_ps / PS_PER_S)
                        continue
                    self._event_ps = t_ps
                    try:
                        self._run_one()
                    except Exception:  # the scheduler thread must outlive a broken callback
                        self.callback_errors += 1
                        LOG.exception("hilbus real-time clock: a scheduled callback failed")
                    finally:
                        self._event_ps = None
                    self.notify_waiters()
                    if time.monotonic_ns() - last_yield_ns > _YIELD_EVERY_NS:
                        # Behind schedule the loop never waits: let other threads (senders,
                        # shutdown) take the lock now and then instead of starving them.
                        self.lock.release()
                        time.sleep(0)
                        self.lock.acquire()
                        last_yield_ns = time.monotonic_ns()
            finally:
                self._thread_ident = None

    def _wall_ps(self) -> int:
        return self._epoch_ps + (time.monotonic_ns() - self._mono0_ns) * 1000

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float | None) -> bool:
        if predicate():
            return True
        if timeout_s is not None and timeout_s <= 0:
            return False
        with self.lock:
            if self.in_callback:
                return predicate()
            end = None if timeout_s is None else time.monotonic() + timeout_s
            while not predicate():
                remaining = None if end is None else end - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._n_waiters += 1
                try:
                    self._waiters_cv.wait(remaining)
                finally:
                    self._n_waiters -= 1
            return True


def make_clock(spec: Clock | str | None) -> Clock:
    """A clock from a Clock, ``"sim"``/``"simulated"``, ``"real"`` or None (real)."""
    if isinstance(spec, Clock):
        return spec
    if spec is None or (isinstance(spec, str) and spec.lower() in ("real", "realtime", "wall")):
        return RealClock()
    if isinstance(spec, str) and spec.lower() in ("sim", "simulated"):
        return SimClock()
    raise ValueError(f"expected a Clock, 'sim' or 'real', but got {spec!r}")
