"""Faults on demand: seeded random rates per kind, plus a queue of faults scheduled exactly.

Where each kind applies (an endpoint only draws the kinds that make sense for it):

- `http_500`, `model_loading_503`, `rate_limit_429` answer *instead of* doing the work (nothing
  is charged), in the provider's error shape; `slow`, `drop` and both truncations act on the
  reply after the work is done (so a paid result can be lost on the way): all of these apply
  to every endpoint of the API.
- `corrupt_header` and `corrupt_samples` apply to replies that carry audio (sync synthesis and
  result downloads); the stored result is not damaged, so downloading again heals it.
- `never_finish` and `task_failed` apply to IndexTTS task creation only.

Random rates are drawn only on the hot path (synthesis, task polls, downloads) so that model and
reference management stays predictable; queued faults apply to whatever endpoint they name.
Faults are drawn after authentication and the rate limiter, for requests that would be served.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["FaultKind", "FaultPlan", "Faults", "QueuedFault"]


class FaultKind(StrEnum):
    HTTP_500 = "http_500"  #: an internal server error in the provider's shape
    MODEL_LOADING_503 = "model_loading_503"  #: 503, the model is still loading; retry soon
    RATE_LIMIT_429 = "rate_limit_429"  #: 429 with Retry-After although no limit was reached
    SLOW = "slow"  #: the reply waits `slow_seconds` of real time (past a client's timeout)
    DROP = "drop"  #: the connection closes before any byte of the reply
    TRUNCATE_WITH_LENGTH = "truncate_with_length"  #: Content-Length promises more than is sent
    TRUNCATE_NO_LENGTH = "truncate_no_length"  #: close-delimited body cut short: a short 200
    CORRUPT_HEADER = "corrupt_header"  #: audio whose container header is garbage
    CORRUPT_SAMPLES = "corrupt_samples"  #: a valid header followed by noise
    NEVER_FINISH = "never_finish"  #: an IndexTTS task that stays in status 1 forever
    TASK_FAILED = "task_failed"  #: an IndexTTS task that ends in status 3


REFUSALS = frozenset({FaultKind.HTTP_500, FaultKind.MODEL_LOADING_503, FaultKind.RATE_LIMIT_429})
TRANSPORT = frozenset(
    {
        FaultKind.SLOW,
        FaultKind.DROP,
        FaultKind.TRUNCATE_WITH_LENGTH,
        FaultKind.TRUNCATE_NO_LENGTH,
    }
)
AUDIO = frozenset({FaultKind.CORRUPT_HEADER, FaultKind.CORRUPT_SAMPLES})
TASK = frozenset({FaultKind.NEVER_FINISH, FaultKind.TASK_FAILED})


@dataclass(frozen=True)
class QueuedFault:
    kind: FaultKind
    endpoint: str | None  #: a suffix of the route ("tts/create"); None: the next that fits
    remaining: int


class FaultPlan:
    """The faults of one provider (for VoxCPM, of the whole pool). Switchable at runtime."""

    def __init__(
        self,
        provider: str,
        seed: int,
        rates: Mapping[str, float] | None = None,
        *,
        slow_seconds: float = 30.0,
        retry_after: float = 1.0,
    ) -> None:
        self.provider = provider
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self._rng = random.Random(f"{seed}:{provider}")
        self._rates: dict[FaultKind, float] = {}
        self._queue: list[QueuedFault] = []
        self.set_rates(rates or {})

    def __repr__(self) -> str:
        rates = {k.value: v for k, v in self._rates.items()}
        return f"<FaultPlan {self.provider} rates={rates} queued={len(self._queue)}>"

    @property
    def rates(self) -> dict[FaultKind, float]:
        return dict(self._rates)

    @property
    def queue(self) -> tuple[QueuedFault, ...]:
        return tuple(self._queue)

    def set_rates(self, rates: Mapping[str, float]) -> None:
        """Replace the random rates: probability per kind for each hot-path request."""
        parsed = {FaultKind(k): float(v) for k, v in rates.items()}
        if any(not 0 <= v <= 1 for v in parsed.values()) or sum(parsed.values()) > 1:
            raise ValueError(f"fault rates must be probabilities summing to at most 1: {rates}")
        self._rates = parsed

    def enqueue(
        self, kind: FaultKind | str, *, endpoint: str | None = None, count: int = 1
    ) -> None:
        """The next `count` requests to `endpoint` (that the kind applies to) get `kind`."""
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        self._queue.append(QueuedFault(FaultKind(kind), endpoint, count))

    def clear(self) -> None:
        self._rates = {}
        self._queue.clear()

    def draw(
        self, endpoint: str, applicable: frozenset[FaultKind], *, hot: bool
    ) -> FaultKind | None:
        for i, queued in enumerate(self._queue):
            if queued.kind in applicable and (
                queued.endpoint is None or endpoint.endswith(queued.endpoint)
            ):
                if queued.remaining > 1:
                    self._queue[i] = QueuedFault(queued.kind, queued.endpoint, queued.remaining - 1)
                else:
                    del self._queue[i]
                return queued.kind
        if not hot or not self._rates:
            return None
        # One draw per hot request, whatever applies, so that a seed replays the same sequence.
        u = self._rng.random()
        for kind, rate in self._rates.items():
            if u < rate:
                return kind if kind in applicable else None
            u -= rate
        return None


class Faults:
    """Every provider's `FaultPlan`, by provider name."""

    def __init__(self, plans: Mapping[str, FaultPlan]) -> None:
        self._plans = dict(plans)

    def __getitem__(self, provider: str) -> FaultPlan:
        return self._plans[provider]

    def __repr__(self) -> str:
        return f"<Faults {', '.join(self._plans)}>"

    def providers(self) -> tuple[str, ...]:
        return tuple(self._plans)

    def clear(self) -> None:
        for plan in self._plans.values():
            plan.clear()
