"""The pipeline of an asynchronous (task) account: submit → poll → download.

Submitters take new segments; each submitted task gets a follower that polls it on the
schedule of `polling.ProcessingModel` and downloads its result the moment it is done, through
the account's limiter at download priority (earliest expiry first). The number of tasks
outstanding at once is bounded, so a crash never leaves more paid results than a day's window
can hold.

Resumed work enters where it stopped: `submitted` tasks are polled, `ready` results are
downloaded (or, if their URL expired while the runner was away, submitted again with a
warning), and `submitting` segments — whose create request may or may not have reached the
provider — are reconciled with the provider's task list before anything is sent again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio

from runner.errors import (
    AccountUnusable,
    AudioError,
    CorruptResult,
    PermanentError,
    ProviderError,
    ResultExpired,
    SubmitAmbiguous,
    TransientError,
)
from runner.outcomes import Outcomes
from runner.plan import Segment
from runner.plans import PRESETS
from runner.polling import ProcessingModel
from runner.providers.base import Provider, Request, Submission, TaskState
from runner.stats import AccountStats
from runner.store import SegmentRow, SegmentState

if TYPE_CHECKING:
    from runner.scheduler import StopFlag

__all__ = ["TaskLane", "TaskPolicy"]

DAY: Final = 86_400.0


@dataclass(frozen=True)
class TaskPolicy:
    outstanding_per_slot: int = 20  #: tasks submitted and not yet downloaded, per request slot
    stuck_factor: float = 20.0  #: a task processing this many times its expected time...
    stuck_minimum: float = 1800.0  #: ...and at least this long is left for a later run
    task_failures: int = 3  #: tasks of one segment the provider may fail before we give up
    poll_failures: int = 5  #: consecutive failed polls before a task is left for a later run
    verify_attempts: int = 3  #: downloads of one result that may fail verification
    #: processing time assumed (seconds = base + per_char × chars) until tasks have finished
    prior: tuple[float, float] = (2.0, 0.01)


class TaskLane:
    def __init__(
        self,
        provider: Provider,
        outcomes: Outcomes,
        stop: StopFlag,
        policy: TaskPolicy | None = None,
        model: ProcessingModel | None = None,
        *,
        collect_only: bool = False,
    ) -> None:
        self.provider, self.outcomes, self.stop = provider, outcomes, stop
        #: `tts-runner collect`: poll and download what exists, never submit (nor pay) anything
        self.collect_only = collect_only
        self.policy = policy or TaskPolicy()
        self.account = provider.account
        if model is None:  # start from what earlier runs learned about this account
            model = ProcessingModel(*self.policy.prior)
            model.learn(outcomes.store.task_times(self.account))
        self.model = model
        context = provider.context
        preset = PRESETS[(context.account.kind, context.account.plan)]
        self.result_ttl = preset.result_ttl or DAY
        self.concurrency = context.limiter.limits.concurrent or 16
        self.queue: deque[Segment] = deque()
        self._failures: dict[str, int] = {}
        self._outstanding = anyio.CapacityLimiter(
            self.policy.outstanding_per_slot * self.concurrency
        )

    @property
    def stats(self) -> AccountStats:
        return self.outcomes.stats.account(self.account)

    async def run(self, work: Sequence[tuple[Segment, SegmentRow]]) -> None:
        resumed = sum(
            1 for _, row in work if row.state in (SegmentState.SUBMITTED, SegmentState.READY)
        )
        self._outstanding.total_tokens += resumed  # resumed tasks must not wait for new ones
        async with anyio.create_task_group() as tg:
            self._tg = tg
            unsure: list[tuple[Segment, SegmentRow]] = []
            for segment, row in work:
                if row.state == SegmentState.SUBMITTED and row.task_id:
                    tg.start_soon(self._follow_new, segment, row.task_id, row.submitted_at)
                elif row.state == SegmentState.READY and row.url:
                    tg.start_soon(self._collect_new, segment, row.url, row.url_expires_at)
                elif row.state == SegmentState.SUBMITTING:
                    unsure.append((segment, row))
                else:
                    self.queue.append(segment)
            await self._reconcile(unsure)
            for _ in range(min(self.concurrency + 1, len(self.queue))):
                tg.start_soon(self._submitter)

    # -- submitting ---------------------------------------------------------------------------

    def _open(self) -> bool:
        """Whether new tasks may be submitted."""
        return not self.collect_only and not self.stop and self.account not in self.outcomes.stopped

    async def _submitter(self) -> None:
        while self.queue and self._open():
            segment = self.queue.popleft()
            # Everything submitted must be downloaded before the run ends: a task that would
            # finish after the deadline waits for a later run instead of expiring unpaid-for.
            if not self.outcomes.in_time(segment, self._expected_total(segment)):
                continue
            if not self.outcomes.affordable(
                segment, self.provider.expected_cost(segment.text, segment.params)
            ):
                return
            token = object()
            await self._outstanding.acquire_on_behalf_of(token)
            created = await self._create(segment)
            if created is None:
                self._outstanding.release_on_behalf_of(token)
                continue
            # Follow it in a task of its own: the next submit does not wait for this result.
            self._tg.start_soon(self._follow_created, segment, *created, token)

    async def _follow_created(
        self, segment: Segment, submission: Submission, created: float, token: object
    ) -> None:
        try:
            await self._after_create(segment, submission, created)
        finally:
            self._outstanding.release_on_behalf_of(token)

    def _expected_total(self, segment: Segment) -> float:
        """Seconds from submitting `segment` to having its audio: processing, with some slack
        for polling, and a download."""
        return 1.25 * self.model.expected(segment.chars) + 5.0

    async def _submit(self, segment: Segment) -> None:
        """Create a task for `segment`, then follow it to its download (holds a token)."""
        created = await self._create(segment)
        if created is not None:
            await self._after_create(segment, *created)

    async def _create(self, segment: Segment) -> tuple[Submission, float] | None:
        """The create call; its task id is committed the moment it is known. None: no task."""
        request = self.outcomes.request(segment, durable=True)
        try:
            submission = await self.provider.submit(request)
        except SubmitAmbiguous as exc:
            self.outcomes.defer(segment, str(exc), keep_state=True)  # reconciled next run
            return None
        except TransientError as exc:
            self.outcomes.defer(segment, str(exc))
            return None
        except AccountUnusable as exc:
            self.outcomes.stop_account(self.account, str(exc))
            self.outcomes.store.mark_pending(segment.key, self.outcomes.events.redact(str(exc)))
            return None
        except PermanentError as exc:
            self.outcomes.fail(segment, str(exc))
            return None
        self.stats.cost += submission.cost or 0.0
        self._record(segment, submission)
        return submission, time.time()

    def _record(self, segment: Segment, submission: Submission) -> None:
        self.outcomes.store.mark_submitted(segment.key, submission.task_id)
        self.outcomes.events.emit(
            "task_submitted", key=segment.key, account=self.account, task=submission.task_id
        )

    async def _track(self, segment: Segment, submission: Submission, created: float) -> None:
        """A task found at the provider: record it, then follow it."""
        self._record(segment, submission)
        await self._after_create(segment, submission, created)

    async def _after_create(self, segment: Segment, submission: Submission, created: float) -> None:
        if submission.url:
            expires = created + self.result_ttl
            self.outcomes.store.mark_ready(segment.key, submission.url, expires, durable=False)
            await self._collect(segment, submission.url, expires)
        else:
            await self._follow(segment, submission.task_id, created)

    async def _reconcile(self, unsure: list[tuple[Segment, SegmentRow]]) -> None:
        """Segments whose create request may have reached the provider: find their tasks."""
        for segment, row in unsure:
            request = Request(segment.key, segment.text, segment.params, row.request_id or "")
            try:
                found = await self.provider.find_task(request, since=row.submitted_at or 0.0)
            except ProviderError as exc:
                self.outcomes.defer(
                    segment, f"could not check for its task: {exc}", keep_state=True
                )
                continue
            self.outcomes.events.emit(
                "reconciled", key=segment.key, account=self.account, found=found is not None
            )
            if found is None:
                self.outcomes.store.mark_pending(segment.key, "its create request never arrived")
                self.queue.appendleft(segment)
            else:
                self._tg.start_soon(self._track_found, segment, found, row.submitted_at)

    async def _track_found(
        self, segment: Segment, found: Submission, created: float | None
    ) -> None:
        await self._holding(self._track(segment, found, created or time.time()))

    async def _holding(self, work: Awaitable[None]) -> None:
        """Run `work` (resumed or found tasks) holding one of the outstanding-task tokens."""
        token = object()
        await self._outstanding.acquire_on_behalf_of(token)
        try:
            await work
        finally:
            self._outstanding.release_on_behalf_of(token)

    async def _follow_new(self, segment: Segment, task_id: str, created: float | None) -> None:
        await self._holding(self._follow(segment, task_id, created or time.time()))

    async def _collect_new(self, segment: Segment, url: str, expires: float | None) -> None:
        await self._holding(self._collect(segment, url, expires or 0.0))

    # -- polling ------------------------------------------------------------------------------

    async def _follow(self, segment: Segment, task_id: str, created: float) -> None:
        """Poll a task until it is done, then collect it."""
        polls, failures, last_busy = 0, 0, 0.0
        expected = self.model.expected(segment.chars)
        give_up = max(self.policy.stuck_factor * expected, self.policy.stuck_minimum)
        while True:
            elapsed = time.time() - created
            if elapsed > give_up:
                self.outcomes.defer(
                    segment,
                    f"task {task_id} still processing after {elapsed / 60:.0f} min; "
                    "a later run (or `tts-runner collect`) will pick it up",
                    keep_state=True,
                )
                return
            if polls == 0 and not self.collect_only:  # collecting: ask at once
                await self.model.until_first_poll(segment.chars, created)
            elif polls:
                await anyio.sleep(self.model.delay(segment.chars, elapsed, polls))
            try:
                status = await self.provider.poll(task_id)
            except TransientError as exc:
                failures += 1
                if failures >= self.policy.poll_failures:
                    self.outcomes.defer(segment, f"polling failed: {exc}", keep_state=True)
                    return
                continue
            except (AccountUnusable, PermanentError) as exc:
                self.outcomes.defer(segment, f"polling failed: {exc}", keep_state=True)
                return
            polls, failures = polls + 1, 0
            self.stats.polls += 1
            now = time.time() - created
            if status.state == TaskState.PROCESSING:
                last_busy = now
                if self.collect_only:
                    self.outcomes.defer(
                        segment, f"task {task_id} is still processing", keep_state=True
                    )
                    return
            elif status.state == TaskState.DONE and status.url:
                self.model.observe(segment.chars, last_busy, now)
                self.outcomes.store.record_task_time(self.account, segment.chars, last_busy, now)
                self.outcomes.events.emit(
                    "task_done",
                    key=segment.key,
                    account=self.account,
                    polls=polls,
                    seconds=round(now, 3),
                )
                expires = time.time() + self.result_ttl
                # Not fsynced: lost in a power cut, the row is back to its (durable) task id,
                # and the next run's poll finds the same result. One fsync less per task,
                # taken on the event loop every request waits on.
                self.outcomes.store.mark_ready(segment.key, status.url, expires, durable=False)
                await self._collect(segment, status.url, expires)
                return
            else:
                await self._task_failed(segment, task_id, status.message)
                return

    async def _task_failed(self, segment: Segment, task_id: str, message: str) -> None:
        failures = self._failures[segment.key] = self._failures.get(segment.key, 0) + 1
        if failures >= self.policy.task_failures:
            self.outcomes.fail(
                segment, f"the provider failed its task {failures} times ({message})"
            )
            return
        self.outcomes.retrying(
            segment, "task_failed", f"task {task_id} failed: {message}", failures
        )
        await self._resubmit(segment, f"task {task_id} failed at the provider")

    # -- downloading --------------------------------------------------------------------------

    async def _collect(self, segment: Segment, url: str, expires: float) -> None:
        """Download a finished result and keep it; a corrupt download is fetched again."""
        for attempt in range(1, self.policy.verify_attempts + 1):
            if time.time() >= expires:
                await self._resubmit(segment, "its result expired before it was downloaded")
                return
            try:
                audio = await self.provider.download(url, expires)
                await self.outcomes.keep(segment, audio)
                return
            except (CorruptResult, AudioError) as exc:
                self.outcomes.retrying(segment, "corrupt", str(exc), attempt)
            except ResultExpired:
                await self._resubmit(segment, "its result URL no longer serves the audio")
                return
            except TransientError as exc:
                self.outcomes.defer(segment, f"download failed: {exc}", keep_state=True)
                return
            except AccountUnusable as exc:
                self.outcomes.stop_account(self.account, str(exc))
                return
            except PermanentError as exc:
                self.outcomes.fail(segment, str(exc))
                return
        self.outcomes.fail(
            segment, f"its result failed verification {self.policy.verify_attempts} times"
        )

    async def _resubmit(self, segment: Segment, why: str) -> None:
        """Pay again for a result that was lost: loudly, with what it costs."""
        again = (
            "`tts-runner run` will submit it again" if self.collect_only else "submitting it again"
        )
        self.outcomes.lost(segment, why, again)
        if self._open():
            await self._submit(segment)
