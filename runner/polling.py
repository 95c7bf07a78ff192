"""When to poll an asynchronous task: at about the time it should be done, then backing off.

Processing time grows with the text. We model it as `seconds = base + per_char × chars`, fitted
by least squares to the tasks finished so far (the latest 200), starting from a prior until a
few tasks are in. A finished task's processing time is only known to lie between its last
"still processing" poll and its "done" poll; we take the midpoint. A task found done at its
first poll only bounds its time from above, so the fit leans low and some tasks need a second
poll.

The schedule: the first poll at the expected time, up to a tenth later and never earlier (a
poll that finds the task still processing spends a request of the account's budget); if the
task is still processing, then after a tenth of the expected time, growing by half each poll,
capped, with ±10 % jitter; the jitter keeps tasks submitted together from polling in lockstep.
No wait after a "still processing" poll is longer than 15 % of the task's age: an expected
time that is far off (the prior's guess, a fit from three tasks) does not delay by as much the
moment a finished task is noticed.
With a good fit, a task is polled once or twice and its completion is noticed within a small
fraction of its processing time.
Until a few tasks have finished, the expected time is only the prior's guess: first polls then
come at a quarter of it, so the model learns from the first tasks instead of waiting on them.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import anyio

__all__ = ["ProcessingModel"]

MIN_INTERVAL: Final = 0.2
MAX_INTERVAL: Final = 30.0
JITTER: Final = 0.1
FITTED_AFTER: Final = 3  #: finished tasks before the fit replaces the prior
UNFITTED_FIRST_POLL: Final = 0.25  #: of the prior's expected time
REFERENCE_CHARS: Final = 200  #: a typical segment, to tell how much a new fit moves
#: A poll after one that found the task still processing comes within this share of the
#: task's age: however wrong the expected time, completion is noticed that soon after it.
CATCH_UP: Final = 0.15


@dataclass
class ProcessingModel:
    base: float = 2.0  #: prior: seconds every task takes
    per_char: float = 0.01  #: prior: seconds per character
    history: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=200))
    rng: random.Random = field(default_factory=random.Random)
    _learned: anyio.Event | None = field(default=None, repr=False, compare=False)

    def expected(self, chars: int) -> float:
        return max(MIN_INTERVAL, self.base + self.per_char * chars)

    def observe(self, chars: int, low: float, high: float) -> None:
        """A task of `chars` finished between `low` and `high` seconds after it was created."""
        self.learn([(chars, low, high)])

    def learn(self, finished: list[tuple[int, float, float]]) -> None:
        """Several `observe`s at once (e.g. what earlier runs recorded), oldest first."""
        was_fitted, before = self.fitted, self.expected(REFERENCE_CHARS)
        for chars, low, high in finished:
            self.history.append((chars, max(0.0, (low + high) / 2)))
        if finished and self.fitted:
            self._fit()
        after = self.expected(REFERENCE_CHARS)
        if self._learned is not None and (
            self.fitted != was_fitted or abs(after - before) > 0.1 * before
        ):
            self._learned.set()  # tasks waiting for their first poll look again
            self._learned = None

    async def until_first_poll(
        self, chars: int, created: float, clock: Callable[[], float] = time.time
    ) -> None:
        """Sleep until a task created at `created` should be done. When the model learns
        something new meanwhile (a task submitted on the prior's guess, say), the time moves."""
        while True:
            if self._learned is None:
                self._learned = anyio.Event()
            learned = self._learned
            with anyio.move_on_after(self.delay(chars, clock() - created, 0)):
                await learned.wait()
                continue
            return

    def _fit(self) -> None:
        xs = [float(c) for c, _ in self.history]
        ys = [s for _, s in self.history]
        n = len(xs)
        mean_x, mean_y = sum(xs) / n, sum(ys) / n
        var = sum((x - mean_x) ** 2 for x in xs)
        if var <= 1e-9:  # all the same length: the slope is unknown, keep it
            self.base = max(0.0, mean_y - self.per_char * mean_x)
            return
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var
        base = mean_y - slope * mean_x
        if base < 0:  # a negative intercept is noise: fit through the origin instead
            base, slope = (
                0.0,
                sum(x * y for x, y in zip(xs, ys, strict=True)) / sum(x * x for x in xs),
            )
        elif slope < 0:  # longer texts are not faster: a constant time
            base, slope = mean_y, 0.0
        self.per_char, self.base = slope, base

    @property
    def fitted(self) -> bool:
        """Whether the expected times come from finished tasks rather than the prior."""
        return len(self.history) >= FITTED_AFTER

    def delay(self, chars: int, elapsed: float, polls: int) -> float:
        """Seconds to wait before the next poll of a task `elapsed` seconds old."""
        expected = self.expected(chars)
        if polls == 0 and self.fitted:
            # Never before the expected time: a poll that finds the task still processing
            # spends a request of the account's budget for nothing.
            return max(MIN_INTERVAL, expected * self.rng.uniform(1, 1 + JITTER) - elapsed)
        if polls == 0:
            wait = expected * UNFITTED_FIRST_POLL - elapsed
        else:
            step = min(expected * 0.1 * 1.5 ** (polls - 1), CATCH_UP * elapsed)
            wait = min(MAX_INTERVAL, max(MIN_INTERVAL, step))
        return max(MIN_INTERVAL, wait) * self.rng.uniform(1 - JITTER, 1 + JITTER)
