"""The scheduler: drives every pending segment through its provider, one task group per run.

Each account gets as many workers as it may have requests in flight; each worker takes the
next segment of its account, waits for a slot from the account's limiter, and records every
state transition around the side effect it guards. When asked to stop (signal, deadline,
budget), workers take no new segment; the ones in flight finish and are recorded, so the state
is always resumable.

The scheduler never sees HTTP: it talks to `Provider`s and reacts to the error tree.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import anyio
import anyio.to_thread

from runner.cache import Cache
from runner.errors import (
    AudioError,
    CorruptResult,
    OutOfCredit,
    PermanentError,
    ProviderError,
    RateLimited,
    TransientError,
)
from runner.events import Events
from runner.limits import Limiter
from runner.plan import Segment
from runner.providers.base import Audio, Provider, Request
from runner.stats import RunStats
from runner.store import Store

__all__ = ["RetryPolicy", "Scheduler", "StopFlag"]

#: Workers for an account whose plan sets no concurrency limit.
UNLIMITED_WORKERS = 16


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  #: tries per segment before it fails
    base_delay: float = 1.0  #: first backoff, doubled each time, with full jitter
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


class StopFlag:
    """Set once to stop taking new work; remembers the first reason."""

    def __init__(self) -> None:
        self.reason = ""
        self.event = anyio.Event()

    def set(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason
            self.event.set()

    def __bool__(self) -> bool:
        return bool(self.reason)


class Scheduler:
    def __init__(
        self,
        *,
        store: Store,
        cache: Cache,
        providers: Mapping[str, Provider],
        limiters: Mapping[str, Limiter],
        events: Events,
        stats: RunStats,
        stop: StopFlag,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.store, self.cache, self.events, self.stats = store, cache, events, stats
        self.providers, self.limiters = providers, limiters
        self.stop = stop
        self.retry = retry or RetryPolicy()
        self._stopped_accounts: dict[str, str] = {}

    async def run(self, segments: Sequence[Segment]) -> None:
        by_account: dict[str, deque[Segment]] = {}
        for segment in segments:
            by_account.setdefault(segment.account, deque()).append(segment)
        async with anyio.create_task_group() as tg:
            for account, queue in by_account.items():
                concurrent = self.limiters[account].limits.concurrent or UNLIMITED_WORKERS
                for _ in range(min(concurrent, len(queue))):
                    tg.start_soon(self._worker, account, queue)

    async def _worker(self, account: str, queue: deque[Segment]) -> None:
        while queue and not self.stop and account not in self._stopped_accounts:
            await self._process(queue.popleft())

    async def _process(self, segment: Segment) -> None:
        account = self.stats.account(segment.account)
        for attempt in range(self.retry.attempts):
            try:
                await self._attempt(segment)
                return
            except RateLimited as exc:
                account.rate_limited += 1
                wait = exc.retry_after if exc.retry_after is not None else self.retry.delay(attempt)
                self.limiters[segment.account].pause_until(time.monotonic() + wait)
                self._retrying(segment, "rate_limited", exc, attempt)
            except (TransientError, AudioError) as exc:
                cause = "corrupt" if isinstance(exc, (CorruptResult, AudioError)) else "transient"
                if cause == "corrupt":
                    account.re_requests += 1  # the bad result may have been paid for
                self._retrying(segment, cause, exc, attempt)
                if attempt + 1 < self.retry.attempts:
                    await anyio.sleep(self.retry.delay(attempt))
            except OutOfCredit as exc:
                self._stop_account(segment.account, f"out of credit: {exc}")
                self.store.mark_pending(segment.key, "account out of credit")
                return
            except PermanentError as exc:
                self._fail(segment, str(exc))
                return
        self._fail(segment, f"gave up after {self.retry.attempts} attempts")

    async def _attempt(self, segment: Segment) -> None:
        provider = self.providers[segment.account]
        request = Request(segment.key, segment.text, segment.params, _request_id(segment))
        async with self.limiters[segment.account].slot():
            self.store.begin_submit(segment.key, request.request_id)
            self.stats.account(segment.account).requests += 1
            self.events.emit("request", key=segment.key, account=segment.account)
            audio = await provider.synthesize(request)
        await self._keep(segment, audio)

    async def _keep(self, segment: Segment, audio: Audio) -> None:
        """Verify and cache a result, then mark the segment done."""
        try:
            cached = await anyio.to_thread.run_sync(
                self.cache.put, segment.key, audio, segment.chars
            )
        except AudioError as exc:
            raise CorruptResult(f"{exc}", account=segment.account) from exc
        self.store.mark_done(  # no await between the file and its record: not cancellable
            segment.key,
            path=str(cached.path.relative_to(self.store.directory)),
            sha256=cached.sha256,
            duration=cached.info.duration,
            sample_rate=cached.info.sample_rate,
            cost=audio.cost,
        )
        account = self.stats.account(segment.account)
        account.synthesized += 1
        account.chars += segment.chars
        account.cost += audio.cost or 0.0
        self.events.emit(
            "segment_done",
            key=segment.key,
            account=segment.account,
            chars=segment.chars,
            seconds=round(cached.info.duration, 3),
        )

    def _retrying(
        self, segment: Segment, cause: str, exc: ProviderError | AudioError, n: int
    ) -> None:
        self.stats.account(segment.account).retries[cause] += 1
        self.events.emit(
            "retry",
            key=segment.key,
            account=segment.account,
            cause=cause,
            attempt=n + 1,
            message=str(exc),
        )

    def _fail(self, segment: Segment, reason: str) -> None:
        self.store.mark_failed(segment.key, reason)
        self.stats.account(segment.account).failed += 1
        self.stats.failures[segment.key] = reason
        self.events.emit("segment_failed", key=segment.key, account=segment.account, reason=reason)

    def _stop_account(self, account: str, reason: str) -> None:
        if account not in self._stopped_accounts:
            self._stopped_accounts[account] = reason
            self.stats.account(account).stopped = reason
            self.events.emit("account_stopped", account=account, reason=reason)


def _request_id(segment: Segment) -> str:
    return f"{segment.key[:24]}-{int(time.time() * 1000):x}"
