"""The scheduler: drives every pending segment through its provider, one task group per run.

Each account gets as many workers as it may have requests in flight; each worker takes the
next segment of its account, waits for a slot from the account's limiter, and records every
state transition around the side effect it guards. When asked to stop (signal, deadline,
budget), workers take no new segment; the ones in flight finish and are recorded, so the state
is always resumable.

The scheduler never sees HTTP: it talks to `Provider`s and reacts to the error tree.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence

import anyio
import anyio.to_thread

from runner.cache import Cache
from runner.errors import (
    AccountUnusable,
    AudioError,
    CorruptResult,
    PermanentError,
    RateLimited,
    TransientError,
)
from runner.events import Events
from runner.plan import Segment
from runner.providers.base import Audio, Provider, Request
from runner.stats import RunStats
from runner.store import Store

__all__ = ["Scheduler", "StopFlag"]

#: Workers for an account whose plan sets no concurrency limit.
UNLIMITED_WORKERS = 16
#: Workers beyond an account's concurrency: while its slots are busy with requests, these
#: verify and store results already received, so the account's slots never wait on our disk.
SPARE_WORKERS = 1
#: A result that fails verification is requested again at most this many times in one run.
VERIFY_ATTEMPTS = 3
#: An account whose calls keep failing transiently (after the adapter's own retries) this many
#: times in a row is stopped for this run: the service is down, not one request unlucky.
BREAKER = 3


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
        events: Events,
        stats: RunStats,
        stop: StopFlag,
    ) -> None:
        self.store, self.cache, self.events, self.stats = store, cache, events, stats
        self.providers = providers
        self.stop = stop
        self._stopped_accounts: dict[str, str] = {}
        self._failing: dict[str, int] = {}

    async def run(self, segments: Sequence[Segment]) -> None:
        by_account: dict[str, deque[Segment]] = {}
        for segment in segments:
            by_account.setdefault(segment.account, deque()).append(segment)
        async with anyio.create_task_group() as tg:
            for account, queue in by_account.items():
                limits = self.providers[account].context.limiter.limits
                workers = (limits.concurrent or UNLIMITED_WORKERS) + SPARE_WORKERS
                for _ in range(min(workers, len(queue))):
                    tg.start_soon(self._worker, account, queue)

    async def _worker(self, account: str, queue: deque[Segment]) -> None:
        while queue and not self.stop and account not in self._stopped_accounts:
            await self._process(queue.popleft())

    async def _process(self, segment: Segment) -> None:
        stats = self.stats.account(segment.account)
        provider = self.providers[segment.account]
        for attempt in range(VERIFY_ATTEMPTS):
            try:
                audio = await provider.synthesize(self._request(segment))
                await self._keep(segment, audio)
                self._failing[segment.account] = 0
                return
            except (CorruptResult, AudioError) as exc:
                stats.re_requests += 1  # the bad result may have been paid for
                stats.retries["corrupt"] += 1
                self._event_retry(segment, "corrupt", str(exc), attempt)
            except RateLimited as exc:  # adapters without their own handling
                stats.rate_limited += 1
                wait = exc.retry_after if exc.retry_after is not None else 5.0
                provider.context.limiter.pause_until(time.monotonic() + wait)
                self._event_retry(segment, "rate_limited", str(exc), attempt)
            except TransientError as exc:
                self._give_up_for_now(segment, str(exc))
                return
            except AccountUnusable as exc:
                self._stop_account(segment.account, str(exc))
                self.store.mark_pending(segment.key, str(exc))
                return
            except PermanentError as exc:
                self._fail(segment, str(exc))
                return
        self._fail(segment, f"the result failed verification {VERIFY_ATTEMPTS} times")

    def _request(self, segment: Segment) -> Request:
        request_id = f"{segment.key[:24]}-{int(time.time() * 1000):x}"
        durable = self.providers[segment.account].paid

        def on_send() -> None:
            self.store.begin_submit(segment.key, request_id, durable)
            self.events.emit("request", key=segment.key, account=segment.account)

        return Request(segment.key, segment.text, segment.params, request_id, on_send)

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

    def _event_retry(self, segment: Segment, cause: str, message: str, attempt: int) -> None:
        self.events.emit(
            "retry",
            key=segment.key,
            account=segment.account,
            cause=cause,
            attempt=attempt + 1,
            message=message,
        )

    def _give_up_for_now(self, segment: Segment, reason: str) -> None:
        """Transient failures outlasted the retries: leave the segment for the next run."""
        self.store.mark_pending(segment.key, reason)
        self.stats.account(segment.account).deferred += 1
        self.events.emit(
            "segment_deferred", key=segment.key, account=segment.account, reason=reason
        )
        failing = self._failing.get(segment.account, 0) + 1
        self._failing[segment.account] = failing
        if failing >= BREAKER:
            self._stop_account(segment.account, f"{failing} calls in a row failed: {reason}")

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
