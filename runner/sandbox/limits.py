"""Request limits as a server enforces them: a sliding window of starts and a concurrency cap.

# NOTE: the window is a true sliding log, not a fixed window or a token bucket. A request is
# admitted when fewer than `requests` admitted starts lie in (now - per_seconds, now]; refused
# requests are not logged as starts (they consumed nothing), but the ledger still records them.
# A client that keeps to "never more than N starts in any window of T seconds" is never refused;
# one that relies on fixed minute boundaries is. Reference: the "sliding log" algorithm in
# https://konghq.com/blog/engineering/how-to-design-a-scalable-rate-limiting-algorithm
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = ["Admission", "WindowLimiter"]


@dataclass(frozen=True)
class Admission:
    allowed: bool
    reason: str  #: "" when allowed, else "window" or "concurrency"
    limit: int | None  #: requests per window; None when unlimited
    remaining: int | None  #: starts left in the current window, after this one
    reset: int  #: whole seconds until the oldest start leaves the window (0 when empty)
    retry_after: int  #: whole seconds to wait before trying again (refusals only)


class WindowLimiter:
    """The limits of one account. Not thread-safe: lives on the sandbox's event loop."""

    def __init__(
        self,
        requests: int | None = None,
        per_seconds: float = 60.0,
        concurrent: int | None = None,
        *,
        concurrency_retry_after: int = 1,
    ) -> None:
        self.requests = requests
        self.per_seconds = per_seconds
        self.concurrent = concurrent
        self.in_flight = 0
        self._starts: deque[float] = deque()
        self._concurrency_retry_after = concurrency_retry_after

    def __repr__(self) -> str:
        return (
            f"<WindowLimiter {self.requests}/{self.per_seconds}s concurrent={self.concurrent} "
            f"in_flight={self.in_flight}>"
        )

    def _expire(self, now: float) -> None:
        while self._starts and self._starts[0] <= now - self.per_seconds:
            self._starts.popleft()

    def _reset(self, now: float) -> int:
        if not self._starts:
            return 0
        return max(0, math.ceil(self._starts[0] + self.per_seconds - now))

    def peek(self, now: float) -> Admission:
        """The headers' view of the account without starting a request."""
        self._expire(now)
        remaining = None if self.requests is None else max(0, self.requests - len(self._starts))
        return Admission(True, "", self.requests, remaining, self._reset(now), 0)

    def admit(self, now: float) -> Admission:
        """Start a request if the limits allow it; the caller must `release()` an admitted one."""
        self._expire(now)
        if self.requests is not None and len(self._starts) >= self.requests:
            wait = max(1, self._reset(now))
            return Admission(False, "window", self.requests, 0, wait, wait)
        if self.concurrent is not None and self.in_flight >= self.concurrent:
            # NOTE: a concurrency refusal does not know when a slot frees; 1 s is a fair hint.
            peek = self.peek(now)
            return Admission(
                False,
                "concurrency",
                self.requests,
                peek.remaining,
                peek.reset,
                self._concurrency_retry_after,
            )
        if self.requests is not None:
            self._starts.append(now)
        self.in_flight += 1
        remaining = None if self.requests is None else self.requests - len(self._starts)
        return Admission(True, "", self.requests, remaining, self._reset(now), 0)

    def release(self) -> None:
        self.in_flight -= 1
