"""When to poll an asynchronous task: at about the time it should be done, then backing off.

Processing time grows with the text. We model it as `seconds = base + per_char × chars`, fitted
by least squares to the tasks finished so far (the latest 200), starting from a prior until a
few tasks are in. A finished task's processing time is only known to lie between its last
"still processing" poll and its "done" poll: such a bracketed task counts at the midpoint. A
task found done at its first poll only bounds its time from above. Once a few tasks are
bracketed, such a bound counts at the task's expected time given the bound (censored
regression, fitted by EM, with a normal spread around the line learned from the bracketed
tasks): a bound above the line says little, one below it pulls the line down. Before that,
bounds count at their midpoints, which leans low on purpose: the next first polls come
earlier, and the tasks they find still processing get bracketed. A bracketed time far off
the line (a task held up in the provider's queue) is left out of the fit.

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

import math
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
MIN_SPREAD: Final = 0.05  #: of the expected time: the least spread the fit assumes
EM_ROUNDS: Final = 20
#: times the expected time: a bound on a task's time that is this loose says nothing
LOOSE: Final = 3.0
OUTLIER: Final = 5.0  #: spreads off the line: a bracketed time this far is left out of the fit


@dataclass
class ProcessingModel:
    base: float = 2.0  #: prior: seconds every task takes
    per_char: float = 0.01  #: prior: seconds per character
    #: (chars, low, high) of the latest finished tasks; low 0: done at the first poll
    history: deque[tuple[int, float, float]] = field(default_factory=lambda: deque(maxlen=200))
    rng: random.Random = field(default_factory=random.Random)
    _learned: anyio.Event | None = field(default=None, repr=False, compare=False)
    _fitted: bool = field(default=False, repr=False, compare=False)

    def expected(self, chars: int) -> float:
        return max(MIN_INTERVAL, self.base + self.per_char * chars)

    def observe(self, chars: int, low: float, high: float) -> None:
        """A task of `chars` finished between `low` and `high` seconds after it was created."""
        self.learn([(chars, low, high)])

    def learn(self, finished: list[tuple[int, float, float]]) -> None:
        """Several `observe`s at once (e.g. what earlier runs recorded), oldest first."""
        was_fitted, before = self.fitted, self.expected(REFERENCE_CHARS)
        for chars, low, high in finished:
            self.history.append((chars, max(0.0, low), max(0.0, high)))
        if finished and len(self.history) >= FITTED_AFTER:
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
        bracketed = [(c, (lo + hi) / 2) for c, lo, hi in self.history if lo > 0]
        bounded = [(c, lo, hi) for c, lo, hi in self.history if lo <= 0]
        if len(bracketed) < FITTED_AFTER:
            # Mostly upper bounds: take each at its midpoint. That leans low, on purpose: the
            # next first polls come earlier, and the tasks they find still processing bracket
            # their times from both sides. A bound far above the expected time (the first
            # poll of a resumed run, or one the account's budget held back) is left out: at
            # its midpoint it would delay the next first polls by as much.
            points = [
                (c, (lo + hi) / 2)
                for c, lo, hi in self.history
                if lo > 0 or hi <= LOOSE * self.expected(c)
            ]
            if len(points) >= FITTED_AFTER:
                self.base, self.per_char = _line(points, self.per_char)
                self._fitted = True
            return
        # A line through the bracketed times, leaving out any far off it (a task held up for
        # half an hour in the provider's queue would move every expected time by its share).
        # Then a task found done at its first poll counts at the mean of its time given that
        # bound (censored regression, by EM, with the spread of the bracketed times), not at
        # its midpoint, which takes it at half its time however close to the bound it was.
        base, per_char = _line(bracketed, self.per_char)
        for _ in range(3):
            typical = _typical_distance(bracketed, base, per_char)
            kept = [(c, y) for c, y in bracketed if _near(y, base + per_char * c, typical)]
            if len(kept) == len(bracketed) or len(kept) < FITTED_AFTER:
                break
            bracketed = kept
            base, per_char = _line(bracketed, per_char)
        spread = _spread(bracketed, base, per_char)
        for _ in range(EM_ROUNDS):
            points = [(c, _mean_below(base + per_char * c, spread, hi)) for c, _, hi in bounded]
            points += bracketed
            before = base + per_char * REFERENCE_CHARS
            base, per_char = _line(points, per_char)
            if abs(base + per_char * REFERENCE_CHARS - before) <= 0.001 * before:
                break
        self.base, self.per_char, self._fitted = base, per_char, True

    @property
    def fitted(self) -> bool:
        """Whether the expected times come from finished tasks rather than the prior (three
        that say something: a bound far above the expected time does not)."""
        return self._fitted

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


def _line(points: list[tuple[int, float]], per_char: float) -> tuple[float, float]:
    """(base, per_char) of a least-squares line through (chars, seconds); `per_char` stands
    when every point has the same length, which says nothing of the slope."""
    xs = [float(c) for c, _ in points]
    ys = [y for _, y in points]
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    var = sum((x - mean_x) ** 2 for x in xs)
    if var <= 1e-9:
        return max(0.0, mean_y - per_char * mean_x), per_char
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var
    base = mean_y - slope * mean_x
    if base < 0:  # a negative intercept is noise: fit through the origin instead
        return 0.0, sum(x * y for x, y in zip(xs, ys, strict=True)) / sum(x * x for x in xs)
    if slope < 0:  # longer texts are not faster: a constant time
        return mean_y, 0.0
    return base, slope


def _spread(points: list[tuple[int, float]], base: float, per_char: float) -> float:
    """How far bracketed times stray from the line, as a share of it (root mean square, at
    least MIN_SPREAD)."""
    shares = _shares(points, base, per_char)
    if not shares:
        return MIN_SPREAD
    return max(MIN_SPREAD, math.sqrt(sum(s * s for s in shares) / len(shares)))


def _typical_distance(points: list[tuple[int, float]], base: float, per_char: float) -> float:
    """The standard deviation a normal spread around the line with the same median distance
    would have (as a share of the line, at least MIN_SPREAD): one time far off does not
    inflate it, as it does the root mean square."""
    shares = sorted(abs(s) for s in _shares(points, base, per_char))
    if not shares:
        return MIN_SPREAD
    return max(MIN_SPREAD, 1.4826 * shares[len(shares) // 2])


def _shares(points: list[tuple[int, float]], base: float, per_char: float) -> list[float]:
    """Each time's distance from the line, as a share of the line (where it is above 0)."""
    return [(y - e) / e for c, y in points if (e := base + per_char * c) > 0]


def _near(seconds: float, expected: float, spread: float) -> bool:
    """Whether a bracketed time is within OUTLIER spreads of the line."""
    return expected <= 0 or abs(seconds - expected) <= OUTLIER * spread * expected


def _mean_below(mu: float, spread: float, bound: float) -> float:
    """E[T | T <= bound] for T ~ Normal(mu, (spread * mu)^2), T > 0: the expected time of a
    task that was already done when polled at `bound` seconds."""
    if mu <= 0:
        return bound / 2
    sigma = spread * mu
    b, a = (bound - mu) / sigma, -mu / sigma
    mass = _cdf(b) - _cdf(a)
    if mass <= 0:  # the line is so far above the bound that the bound is all we know
        return bound
    return min(bound, max(0.0, mu + sigma * (_pdf(a) - _pdf(b)) / mass))


def _pdf(z: float) -> float:
    return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def _cdf(z: float) -> float:
    return math.erfc(-z / math.sqrt(2)) / 2  # accurate far into the lower tail
