"""Per-account pacing: at most N request starts in ANY window of T seconds, at most C in flight.

NOTE: the rate rule is a sliding-window log, the exact form of a sliding-window rate limiter
(see Cloudflare's "How we built rate limiting capable of scaling to millions of domains", and
the GCRA discussion in aiometer's documentation). We remember the times of the last N starts;
a new start may happen at `t` only when `t >= starts[-N] + T + margin`. By induction no window
of length T ever holds more than N starts, whatever the arrival pattern — unlike a
fixed-window or token-bucket limiter (aiolimiter), which lets up to 2N through around a window
edge. `margin` absorbs timer and clock jitter.

What counts is when the server counted a request, which we never see. It lies between the
moment the request's headers left (`Slot.sent`) and the moment its reply's headers arrived
(`Slot.answered`). A quick reply bounds it: the start moves to the reply, so a server that
queued a burst before counting it is never ahead of us. A reply slower than `lag` was busy
synthesizing, not queueing; the start stays `lag` after sending (a server counts at its front
door). Under saturation this starts N every T + margin + lag at worst: 0.35 % below the plan.

Server feedback: a 429 pauses the whole account until the server's Retry-After (`throttled`).
Repeated 429s (within two windows of each other) also slow the account: each one stretches the
window by a quarter, up to four times its length; after a quiet window the stretch shrinks by a
tenth per window, so the rate recovers slowly. Someone else sharing the key, or a server whose
clock runs fast, then costs a few refused requests instead of a stream of them.

Every request may be reported to a `StartLog` (the account history of `limit_history`), so the
next run of a cron job starts with the window this one left. What is kept is when the reply
came back (when the request left, until then): the latest the server can have counted it, so
a run seeded with these times is never early, whatever the latency of the previous one was.

A start counts from when the request's headers are written to the socket (the adapters' HTTP
layer reports it), not from when its slot was granted: opening a connection can take longer
than the margin.

Who goes next: waiters are ordered by priority, then arrival. Only the first in that order
waits for the window and for a free slot; a better waiter arriving meanwhile takes its place at
once: downloads first, the earliest expiry first; then new work; then polls. A poll can wait
(its task goes nowhere, and the number of tasks outstanding is bounded), whereas every submit
made early shortens a book whose plan is the bottleneck. A start is recorded when the request
really leaves, after its concurrency slot is taken.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from runner.plans import Limits

__all__ = ["POLL", "WORK", "Limiter", "Priority", "download_priority"]

#: (class, key): lower is served first. Downloads by their URL's expiry, then work, then polls.
Priority = tuple[int, float]
WORK: Priority = (1, 0.0)
POLL: Priority = (2, 0.0)

MARGIN_SHARE = 0.001  #: of the window: clock and timer jitter
LAG_SHARE = 0.0025  #: of the window: how late after arriving a server counts a request
MIN_LAG = 0.1  #: seconds: a busy server's queue before it counts a request
MAX_STRETCH = 4.0
STRETCH_STEP = 1.25
RECOVERY = 0.9  #: the stretch shrinks by this factor per quiet window

Clock = Callable[[], float]


class StartLog(Protocol):
    def started(self, at: float) -> int:
        """A request left at `at` (limiter clock); returns a handle for `finished`."""
        ...

    def finished(self, handle: int, at: float) -> None:
        """Its reply came back (or it failed) at `at`."""
        ...


Sleep = Callable[[float], Awaitable[None]]


def download_priority(expires_at: float) -> Priority:
    return (0, expires_at)


@dataclass(order=True)
class _Waiter:
    priority: Priority
    seq: int
    event: anyio.Event = field(default_factory=anyio.Event, compare=False)


class Slot:
    """One request's place in the window."""

    def __init__(self, limiter: Limiter, stamp: float) -> None:
        self._limiter, self._stamp = limiter, stamp
        self._sent: float | None = None

    def sent(self) -> None:
        """The request's headers left now. Counting it from now rather than from when its
        slot was granted covers a connection set up meanwhile: the server counts arrivals."""
        now = self._limiter._clock()
        self._sent = now
        self._move(now)

    def answered(self) -> None:
        """The reply's headers arrived now: the server counted the request by then. The start
        moves to the reply (a bound on the server's own stamp, however long its queue) when
        that came within `lag` of sending; a slower reply was working, not queueing, and the
        server counted it within `lag` of its arrival."""
        now = self._limiter._clock()
        sent = self._sent if self._sent is not None else self._stamp
        self._move(min(now, sent + self._limiter.lag))

    def _move(self, when: float) -> None:
        if when > self._stamp:
            self._limiter._restamp(self._stamp, when)
            self._stamp = when


class Limiter:
    def __init__(
        self,
        limits: Limits,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        margin: float | None = None,
        log: StartLog | None = None,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        self._n = limits.requests
        self._t = limits.per_seconds or 0.0
        # Margin and lag together cost at most 0.35 % of the plan, within the 0.5 % budget.
        self.margin = margin if margin is not None else max(0.001, self._t * MARGIN_SHARE)
        self.lag = max(MIN_LAG, self._t * LAG_SHARE)  #: see `Slot.answered`
        #: the latest N start times, ascending (a start is re-stamped when its request really
        #: leaves: see `Slot.sent`)
        self._starts: list[float] = []
        self._capacity = limits.concurrent or math.inf
        self._waiting: list[_Waiter] = []
        self._seq = itertools.count()
        self._paused_until = 0.0
        self._log = log
        self._stretch = 1.0  #: the window is stretched by this after repeated 429s
        self._stretched_at = -math.inf  #: when the last 429 came
        self.throttles = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.started = 0

    def __repr__(self) -> str:
        return (
            f"<Limiter requests={self._n} per={self._t}s concurrent={self.limits.concurrent} "
            f"in_flight={self.in_flight}>"
        )

    def pause_until(self, when: float) -> None:
        """No start before `when` (on this limiter's clock): the server asked us to wait."""
        self._paused_until = max(self._paused_until, when)
        self._wake_first()

    def throttled(self, wait: float) -> None:
        """The server refused a request for its rate (429): pause, and slow down if repeated."""
        now = self._clock()
        self.throttles += 1
        if self._t and now - self._stretched_at < 2 * self._t:
            self._stretch = min(MAX_STRETCH, self.stretch() * STRETCH_STEP)
        else:
            self._stretch = self.stretch()
        self._stretched_at = now
        self.pause_until(now + max(0.0, wait))

    def stretch(self) -> float:
        """How much longer than the plan's the window is now (1.0: the plan's own rate)."""
        if self._stretch <= 1.0 or not self._t:
            return 1.0
        quiet = (self._clock() - self._stretched_at) / self._t - 1.0
        if quiet <= 0:
            return self._stretch
        return max(1.0, self._stretch * RECOVERY ** math.floor(quiet))

    def remember(self, starts: list[float]) -> None:
        """Seed the window with starts made earlier (e.g. by a previous run), oldest first."""
        for t in starts:
            self._stamp(t)

    def recent_starts(self) -> list[float]:
        return list(self._starts)

    def _stamp(self, t: float) -> None:
        if self._n is None:
            return
        bisect.insort(self._starts, t)
        if len(self._starts) > self._n:
            del self._starts[0]

    def _restamp(self, old: float, new: float) -> None:
        """A start recorded at `old` really left at `new` (later: e.g. after connecting)."""
        i = bisect.bisect_left(self._starts, old)
        if i < len(self._starts) and self._starts[i] == old:
            del self._starts[i]
            self._stamp(new)
            self._wake_first()

    def next_start(self) -> float:
        """The earliest time the next request may start, ignoring concurrency."""
        ready = self._paused_until
        if self._n is not None and len(self._starts) >= self._n:
            ready = max(ready, self._starts[0] + self._t * self.stretch() + self.margin)
        return ready

    @asynccontextmanager
    async def slot(
        self,
        priority: Priority = WORK,
        on_start: Callable[[], None] | None = None,
        admit: Callable[[], None] | None = None,
    ) -> AsyncIterator[Slot]:
        """Hold one request slot: waits for its turn, a free slot and the window. `admit` is
        called when the turn comes, before the start is counted, and may raise to give the
        turn up (e.g. the account was stopped while this waited). `on_start` is called the
        moment the request may leave (e.g. to journal it for one manifest). Call the slot's
        `sent()` when the request's first bytes really leave."""
        me = _Waiter(priority, next(self._seq))
        previous = self._waiting[0] if self._waiting else None
        heapq.heappush(self._waiting, me)
        if previous is not None and self._waiting[0] is me:
            previous.event.set()  # displaced: it must stop waiting for the window
        try:
            await self._await_turn(me)
        except BaseException:
            self._waiting.remove(me)
            heapq.heapify(self._waiting)
            self._wake_first()
            raise
        heapq.heappop(self._waiting)
        if admit is not None:
            try:
                admit()
            except BaseException:
                self._wake_first()  # the turn passes to the next in line
                raise
        handle = None
        now = self._clock()
        self._stamp(now)
        if self._log is not None:
            handle = self._log.started(now)
        if on_start is not None:
            on_start()
        self.started += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self._wake_first()
        try:
            yield Slot(self, now)
        finally:
            if handle is not None and self._log is not None:
                self._log.finished(handle, self._clock())
            self.in_flight -= 1
            self._wake_first()  # a slot is free

    async def _await_turn(self, me: _Waiter) -> None:
        while True:
            if self._waiting[0] is me and self.in_flight < self._capacity:
                wait = self.next_start() - self._clock()
                if wait <= 0:
                    return
                await self._wait(me, wait)
            else:
                await me.event.wait()
            me.event = anyio.Event()

    async def _wait(self, me: _Waiter, seconds: float) -> None:
        """Sleep `seconds` on our clock, or less if woken (displaced, or the window moved)."""
        async with anyio.create_task_group() as tg:

            async def timer() -> None:
                await self._sleep(seconds)
                tg.cancel_scope.cancel()

            async def woken() -> None:
                await me.event.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(timer)
            tg.start_soon(woken)

    def _wake_first(self) -> None:
        if self._waiting:
            self._waiting[0].event.set()
