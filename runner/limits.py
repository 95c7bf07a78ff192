"""Per-account pacing: at most N request starts in ANY window of T seconds, at most C in flight.

NOTE: the rate rule is a sliding-window log (the exact form of a sliding-window rate limiter;
see e.g. "Rate limiting" in Kleppmann's and Cloudflare's write-ups, or the GCRA equivalence in
aiometer's docs). We remember the times of the last N starts; a new start may happen at `t`
only when `t >= starts[-N] + T + margin`. By induction no window of length T ever holds more
than N starts, whatever the arrival pattern — unlike a fixed-window or token-bucket limiter
(aiolimiter), which lets 2N through around a window edge. Under saturation it starts N every
T + margin, so it reaches N / (T + margin) of the plan; `margin` absorbs the jitter between
our clock and the server's.

Concurrency is a FIFO semaphore taken before the window check, so a start recorded here is a
request that really leaves now. Waiters are served strictly in arrival order.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

from runner.plans import Limits

__all__ = ["Limiter"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Limiter:
    def __init__(
        self,
        limits: Limits,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        margin: float | None = None,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        self._n = limits.requests
        self._t = limits.per_seconds or 0.0
        # Default margin: 0.2 % of the window (at least 1 ms), within the 0.5 % efficiency budget.
        self.margin = margin if margin is not None else max(0.001, self._t * 0.002)
        self._starts: deque[float] = deque(maxlen=self._n or 1)
        self._order = anyio.Lock()
        capacity = limits.concurrent or math.inf
        self._slots = anyio.CapacityLimiter(capacity) if capacity != math.inf else None
        self._paused_until = 0.0
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

    def remember(self, starts: list[float]) -> None:
        """Seed the window with starts made earlier (e.g. by a previous run), oldest first."""
        for t in sorted(starts)[-(self._n or 0) :]:
            self._starts.append(t)

    def recent_starts(self) -> list[float]:
        return list(self._starts)

    def next_start(self) -> float:
        """The earliest time the next request may start, ignoring concurrency."""
        ready = self._paused_until
        if self._n is not None and len(self._starts) >= self._n:
            ready = max(ready, self._starts[0] + self._t + self.margin)
        return ready

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one request slot: waits for its turn, concurrency and the window."""
        token = object()
        async with self._order:
            if self._slots is not None:
                await self._slots.acquire_on_behalf_of(token)
            try:
                while (wait := self.next_start() - self._clock()) > 0:
                    await self._sleep(wait)
            except BaseException:
                if self._slots is not None:
                    self._slots.release_on_behalf_of(token)
                raise
            if self._n is not None:
                self._starts.append(self._clock())
            self.started += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1
            if self._slots is not None:
                self._slots.release_on_behalf_of(token)
