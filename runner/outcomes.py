"""How a segment's attempt ends, recorded the same way by every pipeline: done (verified and
cached), failed for good, deferred to the next run, or its account stopped.
"""

from __future__ import annotations

import time

import anyio.to_thread

from runner.cache import Cache, Levels
from runner.errors import AudioError, CorruptResult
from runner.events import Events
from runner.plan import Segment
from runner.providers.base import Audio, Request, Stored
from runner.stats import RunStats
from runner.store import Store
from runner.write_ahead import WriteAhead

__all__ = ["BREAKER", "Outcomes"]

#: An account whose calls keep failing transiently (after the adapter's own retries) this many
#: times in a row is stopped for this run: the service is down, not one request unlucky.
BREAKER = 3


class Outcomes:
    def __init__(
        self,
        store: Store,
        cache: Cache,
        events: Events,
        stats: RunStats,
        *,
        max_cost: float | None = None,
        deadline_at: float | None = None,
        unanswered: frozenset[str] = frozenset(),
    ) -> None:
        self.store, self.cache, self.events, self.stats = store, cache, events, stats
        self.write_ahead = WriteAhead(store)
        #: levels of the audio this run cached: the report takes them rather than decoding
        #: every file once more
        self.levels = Levels()
        self.stopped: dict[str, str] = {}  #: account → why it was stopped
        self._closed: dict[str, str] = {}  #: those of them that take no more work (see `closed`)
        self._failing: dict[str, int] = {}
        self.max_cost = max_cost  #: per account, in its price unit, for this run
        self.deadline_at = deadline_at  #: time.monotonic() after which nothing may be running
        self._committed: dict[str, float] = {}  #: estimated cost of requests started
        #: segments an earlier run sent without an answer (see `resume.sent_unanswered`)
        self._unanswered = set(unanswered)

    def affordable(self, segment: Segment, estimate: float) -> bool:
        """Whether a request of about `estimate` still fits the account's budget; if not, the
        account stops (the segment stays pending for a later run)."""
        if self.max_cost is None or estimate <= 0:
            return True
        committed = self._committed.get(segment.account, 0.0)
        if committed + estimate > self.max_cost:
            self.stop_account(
                segment.account,
                f"budget reached: {committed:g} of --max-cost {self.max_cost:g} committed; the "
                f"next segment would cost about {estimate:g} more",
                budget=True,
            )
            return False
        self._committed[segment.account] = committed + estimate
        return True

    def in_time(self, segment: Segment, expected: float) -> bool:
        """Whether work expected to take `expected` seconds ends before the deadline; if not,
        it is held back (left pending, counted and reported) rather than started."""
        if self.deadline_at is None or time.monotonic() + expected <= self.deadline_at:
            return True
        self.stats.account(segment.account).held_back += 1
        self.events.emit(
            "held_back",
            key=segment.key,
            account=segment.account,
            expected=round(expected, 3),
            reason="it would end after the deadline",
        )
        return False

    def request(self, segment: Segment, durable: bool) -> Request:
        """The adapter's view of a segment; its `on_send` writes ahead that it is being sent."""
        request_id = f"{segment.key[:24]}-{int(time.time() * 1000):x}"

        async def on_send() -> None:
            if segment.key in self._unanswered:
                # An earlier run sent it and its answer never arrived: it may have been paid
                # for, and is asked again now. Said when it really happens, once.
                self._unanswered.discard(segment.key)
                self.stats.account(segment.account).re_requests += 1
                self.events.emit("re_request", key=segment.key, account=segment.account)
            await self.write_ahead.begin(segment.key, request_id, durable)
            self.events.emit("request", key=segment.key, account=segment.account)

        return Request(segment.key, segment.text, segment.params, request_id, on_send)

    def stored(self, segment: Segment, result: Stored) -> None:
        """A paid result left at a URL: recorded durably before it is downloaded, so a run
        that stops in between fetches it next time instead of paying for it again."""
        self.store.mark_ready(segment.key, result.url, None, result.cost)
        self.stats.account(segment.account).cost += result.cost or 0.0
        self.events.emit("result_stored", key=segment.key, account=segment.account)

    def lost(self, segment: Segment, why: str, again: str) -> None:
        """A paid result that is gone: the segment goes back to pending, loudly, with what
        asking again costs."""
        self.stats.account(segment.account).re_requests += 1
        self.store.mark_pending(segment.key, why)
        self.warn(
            f"segment {segment.key[:12]} ({segment.text[:40]!r}…): {why}; {again} "
            f"costs about {segment.chars} characters",
            key=segment.key,
            account=segment.account,
        )

    async def keep(self, segment: Segment, audio: Audio, stored: Stored | None = None) -> None:
        """Verify and cache a result, then mark the segment done. Raises CorruptResult.

        The audio of a `stored` result carries no cost: it was counted when it was stored."""
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
            cost=audio.cost if stored is None else stored.cost,
        )
        if cached.level is not None:
            self.levels.add(cached.level)
        self._failing[segment.account] = 0
        account = self.stats.account(segment.account)
        account.synthesized += 1
        account.chars += segment.chars
        if stored is None:
            account.cost += audio.cost or 0.0
        self.events.emit(
            "segment_done",
            key=segment.key,
            account=segment.account,
            chars=segment.chars,
            seconds=round(cached.info.duration, 3),
        )

    def retrying(self, segment: Segment, cause: str, message: str, attempt: int) -> None:
        self.stats.account(segment.account).retries[cause] += 1
        self.events.emit(
            "retry",
            key=segment.key,
            account=segment.account,
            cause=cause,
            attempt=attempt,
            message=message,
        )

    def defer(self, segment: Segment, reason: str, *, keep_state: bool = False) -> None:
        """Transient failures outlasted the retries: leave the segment for the next run."""
        reason = self.events.redact(reason)
        if not keep_state:
            self.store.mark_pending(segment.key, reason)
        self.stats.account(segment.account).deferred += 1
        self.events.emit(
            "segment_deferred", key=segment.key, account=segment.account, reason=reason
        )
        failing = self._failing.get(segment.account, 0) + 1
        self._failing[segment.account] = failing
        if failing >= BREAKER:
            self.stop_account(segment.account, f"{failing} calls in a row failed: {reason}")

    def fail(self, segment: Segment, reason: str) -> None:
        reason = self.events.redact(reason)  # it is kept in the state and the report
        self.store.mark_failed(segment.key, reason)
        self.stats.account(segment.account).failed += 1
        self.stats.failures[segment.key] = reason
        self.events.emit("segment_failed", key=segment.key, account=segment.account, reason=reason)

    def closed(self, account: str) -> str:
        """Why `account` takes no more work in this run ("" while it does): the provider
        refused its credit or its key, or its calls kept failing. A budget stop is not one:
        requests already counted against the budget still go."""
        return self._closed.get(account, "")

    def stop_account(self, account: str, reason: str, *, budget: bool = False) -> None:
        reason = self.events.redact(reason)
        if not budget:
            self._closed.setdefault(account, reason)
        if account not in self.stopped:
            self.stopped[account] = reason
            self.stats.account(account).stopped = reason
            self.events.emit("account_stopped", account=account, reason=reason)

    def warn(self, message: str, **fields: object) -> None:
        message = self.events.redact(message)
        self.stats.warnings.append(message)
        self.events.emit("warning", message=message, **fields)
