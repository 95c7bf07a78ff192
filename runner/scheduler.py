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
    ResultExpired,
    TransientError,
)
from runner.outcomes import Outcomes
from runner.plan import Segment
from runner.providers.base import Audio, Mode, Provider, Request, Stored
from runner.store import SegmentRow, SegmentState
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
                    queue = deque(items)
                    limits = provider.context.limiter.limits
                    workers = (limits.concurrent or UNLIMITED_WORKERS) + SPARE_WORKERS
                    for _ in range(min(workers, len(queue))):
                        tg.start_soon(self._worker, provider, queue)

    async def _worker(self, provider: Provider, queue: deque[Work]) -> None:
        while queue and not self.stop and provider.account not in self.outcomes.stopped:
            segment, row = queue.popleft()
            stored = _stored(row)
            if not self.outcomes.in_time(segment, 1.5 * self._latency.get(provider.account, 0.0)):
                continue  # left pending for the next run
            if stored is None and not self.outcomes.affordable(
                segment, provider.expected_cost(segment.text, segment.params)
            ):
                return
            started = time.monotonic()
            await self._process(provider, segment, stored)
            seconds = time.monotonic() - started
            previous = self._latency.get(provider.account, seconds)
            self._latency[provider.account] = 0.8 * previous + 0.2 * seconds

    async def _process(self, provider: Provider, segment: Segment, stored: Stored | None) -> None:
        """Request a segment (or download the result an earlier attempt paid for and left at a
        URL), verify it and keep it."""
        outcomes = self.outcomes
        stats = outcomes.stats.account(segment.account)
        corrupt = refused = 0
        while corrupt < VERIFY_ATTEMPTS:
            try:
                if stored is None:
                    if self.collect_only:
                        return  # nothing new is paid for; `run` requests it
                    result = await provider.synthesize(outcomes.request(segment, provider.paid))
                    if isinstance(result, Audio):
                        await outcomes.keep(segment, result)
                        return
                    outcomes.stored(segment, result)
                    stored = result
                request = Request(segment.key, segment.text, segment.params, "")
                audio = await provider.fetch(request, stored.url)
                await outcomes.keep(segment, audio, stored)
                return
            except (CorruptResult, AudioError) as exc:
                # The bad result may have been paid for; a stored one was downloaded several
                # times already (see `fetch_result`), so it is requested again as well.
                stats.re_requests += 1
                corrupt += 1
                outcomes.retrying(segment, "corrupt", str(exc), corrupt)
                if stored is not None:
                    why = outcomes.events.redact(f"its stored result is corrupt: {exc}")
                    outcomes.store.mark_pending(segment.key, why)
                    stored = None
            except ResultExpired as exc:
                again = (
                    "`tts-runner run` will request it again"
                    if self.collect_only
                    else "requesting it again"
                )
                outcomes.lost(segment, f"its stored result is gone ({exc})", again)
                stored = None
                corrupt += 1  # a provider that loses every result must not be paid forever
            except RateLimited as exc:  # adapters without their own handling
                stats.rate_limited += 1
                refused += 1
                provider.context.limiter.throttled(
                    exc.retry_after if exc.retry_after is not None else 5.0
                )
                if refused >= provider.context.retry.rate_limited_attempts:
                    outcomes.defer(
                        segment,
                        f"refused for its rate {refused} times: {exc}",
                        keep_state=stored is not None,
                    )
                    return
                outcomes.retrying(segment, "rate_limited", str(exc), refused)
            except TransientError as exc:
                # A stored result stays stored: the next run downloads it.
                outcomes.defer(segment, str(exc), keep_state=stored is not None)
                return
            except AccountUnusable as exc:
                outcomes.stop_account(segment.account, str(exc))
                if stored is None:
                    outcomes.store.mark_pending(segment.key, outcomes.events.redact(str(exc)))
                return
            except PermanentError as exc:
                outcomes.fail(segment, str(exc))
                return
        outcomes.fail(segment, f"the result failed verification {VERIFY_ATTEMPTS} times")


def _stored(row: SegmentRow) -> Stored | None:
    """The paid result an earlier run left at a URL and did not download, if any."""
    if row.state == SegmentState.READY and row.url:
        return Stored(row.url, row.cost)
    return None
