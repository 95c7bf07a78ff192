"""The scheduler: drives every unfinished segment through its account's adapter.

One task group per run; each account runs its own pipeline. A synchronous account gets as
many workers as it may have requests in flight (plus a spare that verifies results while the
others wait on the provider); an asynchronous (task) account gets a `TaskLane`. When asked to
stop (signal, deadline, budget), no new work is taken; what is in flight finishes and is
recorded, so the state is always resumable.

The scheduler never sees HTTP: it talks to `Provider`s and reacts to the error tree.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence

import anyio

from runner.errors import (
    AccountUnusable,
    AudioError,
    CorruptResult,
    PermanentError,
    RateLimited,
    TransientError,
)
from runner.outcomes import Outcomes
from runner.plan import Segment
from runner.providers.base import Mode, Provider
from runner.store import SegmentRow
from runner.task_lane import TaskLane, TaskPolicy

__all__ = ["Scheduler", "StopFlag", "Work"]

#: Workers for an account whose plan sets no concurrency limit.
UNLIMITED_WORKERS = 16
#: Workers beyond an account's concurrency: while its slots are busy with requests, these
#: verify and store results already received, so the account's slots never wait on our disk.
SPARE_WORKERS = 1
#: A result that fails verification is requested again at most this many times in one run.
VERIFY_ATTEMPTS = 3

Work = tuple[Segment, SegmentRow]


class StopFlag:
    """Set once to stop taking new work; remembers the first reason."""

    def __init__(self) -> None:
        self.reason = ""
        self.event = anyio.Event()
        self._scopes: list[anyio.CancelScope] = []

    def set(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason
            self.event.set()

    def guard(self, scope: anyio.CancelScope) -> None:
        """`scope` (in-flight work) is cancelled by `cancel_now`."""
        self._scopes.append(scope)

    def cancel_now(self) -> None:
        for scope in self._scopes:
            scope.cancel()

    def __bool__(self) -> bool:
        return bool(self.reason)


class Scheduler:
    def __init__(
        self,
        *,
        outcomes: Outcomes,
        providers: Mapping[str, Provider],
        stop: StopFlag,
        task_policy: TaskPolicy | None = None,
        collect_only: bool = False,
    ) -> None:
        self.collect_only = collect_only
        self.outcomes = outcomes
        self.providers = providers
        self.stop = stop
        self.task_policy = task_policy
        self._latency: dict[str, float] = {}  #: account → moving average of one segment's time

    async def run(self, work: Sequence[Work]) -> None:
        by_account: dict[str, list[Work]] = {}
        for item in work:
            by_account.setdefault(item[0].account, []).append(item)
        async with anyio.create_task_group() as tg:
            for account, items in by_account.items():
                provider = self.providers[account]
                if provider.mode == Mode.TASK:
                    lane = TaskLane(
                        provider,
                        self.outcomes,
                        self.stop,
                        self.task_policy,
                        collect_only=self.collect_only,
                    )
                    tg.start_soon(lane.run, items)
                else:
                    queue = deque(segment for segment, _ in items)
                    limits = provider.context.limiter.limits
                    workers = (limits.concurrent or UNLIMITED_WORKERS) + SPARE_WORKERS
                    for _ in range(min(workers, len(queue))):
                        tg.start_soon(self._worker, provider, queue)

    async def _worker(self, provider: Provider, queue: deque[Segment]) -> None:
        while queue and not self.stop and provider.account not in self.outcomes.stopped:
            segment = queue.popleft()
            if not self.outcomes.in_time(segment, 1.5 * self._latency.get(provider.account, 0.0)):
                continue  # left pending for the next run
            if not self.outcomes.affordable(
                segment, provider.expected_cost(segment.text, segment.params)
            ):
                return
            started = time.monotonic()
            await self._process(provider, segment)
            seconds = time.monotonic() - started
            previous = self._latency.get(provider.account, seconds)
            self._latency[provider.account] = 0.8 * previous + 0.2 * seconds

    async def _process(self, provider: Provider, segment: Segment) -> None:
        outcomes = self.outcomes
        stats = outcomes.stats.account(segment.account)
        corrupt = refused = 0
        while corrupt < VERIFY_ATTEMPTS:
            try:
                audio = await provider.synthesize(outcomes.request(segment, provider.paid))
                await outcomes.keep(segment, audio)
                return
            except (CorruptResult, AudioError) as exc:
                stats.re_requests += 1  # the bad result may have been paid for
                corrupt += 1
                outcomes.retrying(segment, "corrupt", str(exc), corrupt)
            except RateLimited as exc:  # adapters without their own handling
                stats.rate_limited += 1
                refused += 1
                provider.context.limiter.throttled(
                    exc.retry_after if exc.retry_after is not None else 5.0
                )
                if refused >= provider.context.retry.rate_limited_attempts:
                    outcomes.defer(segment, f"refused for its rate {refused} times: {exc}")
                    return
                outcomes.retrying(segment, "rate_limited", str(exc), refused)
            except TransientError as exc:
                outcomes.defer(segment, str(exc))
                return
            except AccountUnusable as exc:
                outcomes.stop_account(segment.account, str(exc))
                outcomes.store.mark_pending(segment.key, outcomes.events.redact(str(exc)))
                return
            except PermanentError as exc:
                outcomes.fail(segment, str(exc))
                return
        outcomes.fail(segment, f"the result failed verification {VERIFY_ATTEMPTS} times")
