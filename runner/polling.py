"""When to poll an asynchronous task: at about the time it should be done, then backing off.

Processing time grows with the text. We model it as `seconds = base + per_char × chars`, fitted
by least squares to the tasks finished so far (the latest 200), starting from a prior until a
few tasks are in. A finished task's processing time is only known to lie between its last
"still processing" poll and its "done" poll; we take the midpoint, so coarse polls early on
blur the fit but never bias it much.

The schedule: the first poll at the expected time; if the task is still processing, then
after a tenth of the expected time, growing by half each poll, capped; each with ±10 % jitter
so that tasks submitted together do not poll in lockstep. With a good fit, a task is polled
twice or so and its completion is noticed within a small fraction of its processing time.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Final

__all__ = ["ProcessingModel"]

MIN_INTERVAL: Final = 0.2
MAX_INTERVAL: Final = 30.0
JITTER: Final = 0.1


@dataclass
class ProcessingModel:
    base: float = 2.0  #: prior: seconds every task takes
    per_char: float = 0.01  #: prior: seconds per character
    history: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=200))
    rng: random.Random = field(default_factory=random.Random)

    def expected(self, chars: int) -> float:
        return max(MIN_INTERVAL, self.base + self.per_char * chars)

    def observe(self, chars: int, low: float, high: float) -> None:
        """A task of `chars` finished between `low` and `high` seconds after it was created."""
        self.learn([(chars, low, high)])

    def learn(self, finished: list[tuple[int, float, float]]) -> None:
        """Several `observe`s at once (e.g. what earlier runs recorded), oldest first."""
        for chars, low, high in finished:
            self.history.append((chars, max(0.0, (low + high) / 2)))
        if finished and len(self.history) >= 3:
            self._fit()

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

    def delay(self, chars: int, elapsed: float, polls: int) -> float:
        """Seconds to wait before the next poll of a task `elapsed` seconds old."""
        expected = self.expected(chars)
        if polls == 0:
            wait = expected - elapsed
        else:
            wait = min(MAX_INTERVAL, max(MIN_INTERVAL, expected * 0.1 * 1.5 ** (polls - 1)))
        return max(MIN_INTERVAL, wait) * self.rng.uniform(1 - JITTER, 1 + JITTER)
