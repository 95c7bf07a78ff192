"""One run of one manifest: lock the state, sync the plan into it, schedule what is left,
assemble the chapters that are complete, and say how it went (an exit code of design.md).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import anyio
import anyio.to_thread

from runner.assemble import (
    assemble_book,
    assemble_chapter,
    chapter_fingerprint,
    chapter_gains,
    chapter_row,
    is_current,
    output_path,
    write_index,
)
from runner.cache import Cache
from runner.errors import RunnerError, UsageError
from runner.events import Events
from runner.limit_history import LimitHistory, account_identity, history_path
from runner.limits import Limiter
from runner.lock import RunLock
from runner.manifest.model import Account, Manifest
from runner.outcomes import Outcomes
from runner.plan import Chapter, Plan, expand
from runner.providers import ProviderContext, create_provider, missing_credentials
from runner.providers.base import Provider
from runner.providers.context import RetryPolicy
from runner.rehearsal import Rehearsal, rehearsal
from runner.report import write_report
from runner.resume import work_left
from runner.run_journal import RequestStarts, StoreSink
from runner.scheduler import Scheduler, StopFlag, Work
from runner.stats import RunStats
from runner.store import ChapterRow, SegmentState, Store
from runner.task_lane import TaskPolicy

__all__ = ["EXIT", "RunOptions", "RunResult", "run_manifest", "state_dir_for"]

EXIT = {"done": 0, "failed": 1, "usage": 2, "stopped": 3, "locked": 4}


@dataclass(frozen=True)
class RunOptions:
    state_dir: Path | None = None
    deadline: float | None = None  #: seconds from the start of the run
    sandbox: bool = False
    retry_failed: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    task_policy: TaskPolicy = field(default_factory=TaskPolicy)
    environ: Mapping[str, str] | None = None  #: where credentials are read; os.environ if None


@dataclass
class RunResult:
    exit_code: int
    stats: RunStats
    stopped: str = ""
    remaining: int = 0  #: segments not done when the run ended
    chapters_written: list[Path] = field(default_factory=list)
    chapters_complete: int = 0
    index: Path | None = None
    elapsed: float = 0.0
    report: Path | None = None  #: report.html, when it could be written


def state_dir_for(manifest: Manifest, options: RunOptions) -> Path:
    if options.state_dir is not None:
        return options.state_dir.expanduser().resolve()
    name = ".tts-runner-sandbox" if options.sandbox else ".tts-runner"
    return manifest.path.parent / name


async def run_manifest(manifest: Manifest, options: RunOptions, events: Events) -> RunResult:
    started = time.monotonic()
    directory = state_dir_for(manifest, options)
    directory.mkdir(parents=True, exist_ok=True)
    with RunLock(directory), Store.open(directory) as store:
        run_id = store.start_run(f"run {manifest.path}")
        journal = StoreSink(store, run_id)
        events.sinks.append(journal)
        try:
            result = await _run_locked(manifest, options, events, store, directory, started, run_id)
        finally:
            events.sinks.remove(journal)
        store.finish_run(run_id, result.exit_code, json.dumps(result.stats.as_dict(), default=str))
        try:
            result.report = (
                await write_report(manifest, store, result, run_id=run_id, environ=options.environ)
            ).html
        except (OSError, RunnerError) as exc:  # the audio is safe; only the summary is missing
            events.emit("warning", message=f"could not write the run report: {exc}")
        return result


async def _run_locked(
    manifest: Manifest,
    options: RunOptions,
    events: Events,
    store: Store,
    directory: Path,
    started: float,
    run_id: int,
) -> RunResult:
    plan = expand(manifest)
    unique = plan.unique_segments()
    store.add_segments(unique.values())
    cache = Cache(directory / "cache")
    stats = RunStats()
    if options.retry_failed:
        store.retry_failed(unique)
    todo = await work_left(store, cache, unique, stats, events)
    accounts = {segment.account for segment, _ in todo}
    if not options.sandbox:
        missing = missing_credentials([manifest.accounts[a] for a in accounts], options.environ)
        if missing:
            raise UsageError("; ".join(missing))
    events.emit(
        "plan",
        manifest=str(manifest.path),
        segments=len(unique),
        todo=len(todo),
        todo_chars=sum(segment.chars for segment, _ in todo),
        cached=stats.cached,
        recovered=stats.recovered,
    )
    stop = StopFlag()
    await _schedule(manifest, todo, options, events, store, cache, stats, stop, run_id)
    result = RunResult(exit_code=0, stats=stats, stopped=stop.reason)
    await _assemble(manifest, plan, store, directory, events, result)
    rows = store.rows(unique)
    result.remaining = sum(1 for r in rows.values() if r.state != SegmentState.DONE)
    failed = sum(1 for r in rows.values() if r.state == SegmentState.FAILED)
    if result.remaining > failed:
        result.exit_code = EXIT["stopped"]
        result.stopped = result.stopped or "; ".join(
            f"{name}: {a.stopped}" for name, a in stats.accounts.items() if a.stopped
        )
    elif failed:
        result.exit_code = EXIT["failed"]
    result.elapsed = time.monotonic() - started
    return result


async def _schedule(
    manifest: Manifest,
    todo: list[Work],
    options: RunOptions,
    events: Events,
    store: Store,
    cache: Cache,
    stats: RunStats,
    stop: StopFlag,
    run_id: int,
) -> None:
    """Drive `todo` through the accounts' adapters until done or stopped."""
    accounts = [manifest.accounts[name] for name in sorted({s.account for s, _ in todo})]
    environ: Mapping[str, str] = os.environ if options.environ is None else options.environ
    async with AsyncExitStack() as stack:
        base_urls: Mapping[str, tuple[str, ...]] = {}
        history: LimitHistory | None = None
        if options.sandbox:
            rehearsed = await stack.enter_async_context(rehearsal(accounts))
            base_urls, environ = rehearsed.base_urls, rehearsed.environ
        elif any(a.limits.requests is not None for a in accounts):
            history = stack.enter_context(LimitHistory.open(history_path(options.environ)))
        providers: dict[str, Provider] = {}
        for account in accounts:
            context = ProviderContext(
                account=account,
                limiter=_limiter(account, history, environ, RunJournal(store, run_id)),
                stats=stats.account(account.name),
                events=events,
                retry=options.retry,
                environ=environ,
                base_urls=base_urls.get(account.name, ()),
                store=store,
            )
            provider = create_provider(context)
            stack.push_async_callback(_shielded, provider.aclose)
            providers[account.name] = provider
        outcomes = Outcomes(store, cache, events, stats)
        scheduler = Scheduler(
            outcomes=outcomes, providers=providers, stop=stop, task_policy=options.task_policy
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, stop, tg.cancel_scope)
            if options.deadline is not None:
                tg.start_soon(_deadline, stop, options.deadline)
            await scheduler.run(todo)
            tg.cancel_scope.cancel()
        if options.sandbox:
            _report_deviations(rehearsed, outcomes)
        if history is not None and history.failures:
            outcomes.warn(
                f"{history.failures} request starts could not be written to {history.path}; "
                "the next run may start faster than the plan allows at first"
            )


def _report_deviations(rehearsed: Rehearsal, outcomes: Outcomes) -> None:
    """A rehearsal's point: anything the emulators found wrong in what we sent, said aloud."""
    found = rehearsed.sandbox.deviations.snapshot()
    for d in found:
        outcomes.events.emit(
            "sandbox_deviation",
            provider=d.provider,
            endpoint=d.endpoint,
            field=d.field,
            problem=d.problem,
            expected=d.expected,
        )
    if found:
        first = found[0]
        outcomes.warn(
            f"the sandbox found {len(found)} deviation(s) from the documented APIs, e.g. "
            f"{first.provider} {first.endpoint} `{first.field}`: {first.problem} "
            f"(expected {first.expected})"
        )


class RunJournal(NamedTuple):
    store: Store
    run: int


def _limiter(
    account: Account,
    history: LimitHistory | None,
    environ: Mapping[str, str],
    journal: RunJournal,
) -> Limiter:
    """The account's limiter, seeded with the starts earlier runs made in the current window;
    its starts are journaled in the state (and the account history when it is rate-limited)."""
    offset = time.time() - time.monotonic()  # wall clock − the limiter's clock
    window = account.limits.per_seconds
    if history is None or account.limits.requests is None or not window:
        return Limiter(account.limits, log=RequestStarts(*journal, account.name, offset, None))
    secret = "\n".join(environ.get(var, "") for _, var in sorted(account.credentials.items()))
    identity = account_identity(account.kind, account.base_urls, secret)
    shared = history.log_for(identity, window, offset)
    limiter = Limiter(account.limits, log=RequestStarts(*journal, account.name, offset, shared))
    limiter.remember([at - offset for at in history.recent(identity, window)])
    return limiter


async def _assemble(
    manifest: Manifest, plan: Plan, store: Store, directory: Path, events: Events, result: RunResult
) -> None:
    index: list[tuple[Chapter, ChapterRow | None]] = []
    complete = []  # chapters whose segments are all done, with their rows
    for chapter in plan.chapters:
        rows = store.rows(s.key for s in chapter.segments)
        if all(rows[s.key].state == SegmentState.DONE for s in chapter.segments):
            complete.append((chapter, rows))
    # loudness is normalised per chapter or per book, so gains are known before any is written
    gains = await anyio.to_thread.run_sync(chapter_gains, manifest, complete, directory)
    done = {chapter.id: rows for chapter, rows in complete}
    for chapter in plan.chapters:
        if chapter.id not in done:
            index.append((chapter, None))
            continue
        rows, gain = done[chapter.id], gains[chapter.id]
        fingerprint = chapter_fingerprint(manifest, chapter, rows, gain)
        previous = store.chapter(str(manifest.path), chapter.id)
        path = output_path(manifest, chapter)
        if not await anyio.to_thread.run_sync(is_current, previous, fingerprint, path):
            built = await anyio.to_thread.run_sync(
                assemble_chapter, manifest, chapter, rows, directory, gain
            )
            previous = chapter_row(manifest, chapter, fingerprint, built)
            store.save_chapter(previous)
            result.chapters_written.append(path)
            events.emit(
                "chapter_written", id=chapter.id, path=str(path), seconds=round(built[1], 3)
            )
        result.chapters_complete += 1
        index.append((chapter, previous))
    book = None
    if manifest.output.book and complete and len(complete) == len(plan.chapters):
        book, rebuilt = await anyio.to_thread.run_sync(
            assemble_book, manifest, complete, directory, gains
        )
        if rebuilt:
            events.emit("book_written", path=str(book[0]), seconds=round(book[1], 3))
    result.index = await anyio.to_thread.run_sync(write_index, manifest, index, gains, book)


async def _shielded(close: Callable[[], Awaitable[None]]) -> None:
    with anyio.CancelScope(shield=True):
        await close()


async def _watch_signals(stop: StopFlag, scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if stop:
                scope.cancel()  # a second signal: stop now; in-flight work is resumed next run
                return
            stop.set(f"stopped by {signal.Signals(signum).name}")


async def _deadline(stop: StopFlag, seconds: float) -> None:
    await anyio.sleep(seconds)
    stop.set(f"deadline of {seconds:g} s reached")
