"""One run of one manifest: lock the state, sync the plan into it, schedule what is left,
assemble the chapters that are complete, and say how it went (an exit code of design.md).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from runner.cache import Cache, Levels
from runner.chunk_memory import ChunkMemory
from runner.errors import RunnerError, UsageError, runner_error_in
from runner.events import Events
from runner.lock import RunLock
from runner.manifest.model import Manifest
from runner.outcomes import Outcomes
from runner.outputs import write_outputs
from runner.plan import Plan, Segment, expand
from runner.providers import ProviderContext, create_provider, missing_credentials
from runner.providers.base import Provider
from runner.providers.context import RetryPolicy
from runner.report import write_report
from runner.resume import TASK_STATES, collectable, sent_unanswered, warn_expiring, work_left
from runner.run_journal import StoreSink
from runner.scheduler import Scheduler, Work
from runner.stats import RunStats
from runner.store import CACHE, SegmentAudio, SegmentState, Store
from runner.task_lane import TaskPolicy
from runner.together import Together, together

if TYPE_CHECKING:
    from runner.rehearsal import Rehearsal

__all__ = ["EXIT", "RunOptions", "RunResult", "run_manifest", "run_manifests", "state_dir_for"]

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
    max_cost: float | None = None  #: per account and run, in the account's price unit
    only: frozenset[str] | None = None  #: text ids: work on these chapters only
    collect_only: bool = False  #: poll and download existing tasks; submit nothing


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
    #: The audio of the plan's done segments, read once for assembly and the report (and let
    #: go once both are written: a book's 100,000 are not kept after its run).
    done: dict[str, SegmentAudio] = field(default_factory=dict, repr=False)
    #: The levels of the audio this run cached (see `Outcomes.levels`), for the report.
    levels: Levels = field(default_factory=Levels, repr=False)


def state_dir_for(manifest: Manifest, options: RunOptions) -> Path:
    if options.state_dir is not None:
        return options.state_dir.expanduser().resolve()
    name = ".tts-runner-sandbox" if options.sandbox else ".tts-runner"
    return manifest.path.parent / name


async def run_manifest(
    manifest: Manifest, options: RunOptions, events: Events, shared: Together | None = None
) -> RunResult:
    """Run one manifest; with `shared`, beside others of the same process (see `together`)."""
    if shared is None:
        async with together(options.deadline, options.environ, options.sandbox) as alone:
            return await run_manifest(manifest, options, events, alone)
    started = time.monotonic()
    directory = state_dir_for(manifest, options)
    directory.mkdir(parents=True, exist_ok=True)
    with RunLock(directory), Store.open(directory) as store:
        run_id = store.start_run(f"run {manifest.path}")
        journal = StoreSink(store, run_id)
        events.sinks.append(journal)
        plan = _expand(manifest, directory)
        try:
            result = await _run_locked(
                manifest, plan, options, events, store, directory, started, run_id, shared
            )
        except BaseExceptionGroup as group:
            error = runner_error_in(group)
            if error is None:
                raise
            raise error from group
        finally:
            events.sinks.remove(journal)
        store.finish_run(run_id, result.exit_code, json.dumps(result.stats.as_dict(), default=str))
        try:
            result.report = (
                await write_report(
                    manifest, store, result, run_id=run_id, environ=options.environ, plan=plan
                )
            ).html
        except (OSError, RunnerError) as exc:  # the audio is safe; only the summary is missing
            events.emit("warning", message=f"could not write the run report: {exc}")
        finally:
            result.done = {}
        return result


def _expand(manifest: Manifest, directory: Path) -> Plan:
    """The plan, with the state directory's memory of texts already cut (let go after)."""
    memory = ChunkMemory(directory, manifest.path)
    plan = expand(manifest, memory)
    memory.save()
    return plan


async def run_manifests(
    manifests: Sequence[Manifest], options: RunOptions, events: Events
) -> list[RunResult | RunnerError]:
    """Run several manifests at once under shared account limits. Manifests that share a state
    directory (e.g. jobs/*.yaml) run one after the other in it, so a segment two of them need
    is never requested twice at once. One that cannot run (its state is locked, a credential is
    missing...) does not stop the others: its error is returned in its place."""
    results: list[RunResult | RunnerError] = [RunnerError("not run") for _ in manifests]
    groups: dict[Path, list[int]] = {}
    for index, manifest in enumerate(manifests):
        groups.setdefault(state_dir_for(manifest, options), []).append(index)

    async def in_turn(indices: list[int]) -> None:
        for index in indices:
            try:
                results[index] = await run_manifest(manifests[index], options, events, shared)
            except RunnerError as exc:
                results[index] = exc

    async with (
        together(options.deadline, options.environ, options.sandbox) as shared,
        anyio.create_task_group() as tg,
    ):
        for indices in groups.values():
            tg.start_soon(in_turn, indices)
    return results


async def _run_locked(
    manifest: Manifest,
    plan: Plan,
    options: RunOptions,
    events: Events,
    store: Store,
    directory: Path,
    started: float,
    run_id: int,
    shared: Together,
) -> RunResult:
    unique = plan.unique_segments()
    if options.only is not None:  # the other chapters' segments are known to `status` too
        store.add_segments(unique.values())
        unique = _only(plan, options.only)
    cache = Cache(directory / CACHE)
    stats = RunStats()
    if options.retry_failed:
        store.retry_failed(unique)
    left = await work_left(store, cache, unique, stats)
    todo, done = left.todo, left.done
    del left  # its work list is let go after scheduling (a first run's is a whole book of rows)
    warn_expiring(todo, stats, events)
    if options.collect_only:  # only what was already submitted: nothing new is paid for
        todo = [(s, row) for s, row in todo if collectable(s, row)]
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
    levels = await _schedule(manifest, todo, options, events, store, cache, stats, shared, run_id)
    result = RunResult(exit_code=0, stats=stats, stopped=shared.stop.reason, levels=levels)
    worked = [segment.key for segment, _ in todo]
    del todo
    done.update(store.audio(worked))  # those done by this run
    result.done = done
    await write_outputs(manifest, plan, store, directory, events, result)
    states = store.state_counts(k for k in unique if k not in done)
    unfinished = (
        TASK_STATES if options.collect_only else frozenset(SegmentState) - {SegmentState.DONE}
    )
    result.remaining = sum(n for state, n in states.items() if state in unfinished)
    failed = states[SegmentState.FAILED]
    held = sum(a.held_back for a in stats.accounts.values())
    if held:
        stats.warnings.append(
            f"{held} segment(s) held back: they would have ended after the deadline; the next "
            "run does them"
        )
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
    shared: Together,
    run_id: int,
) -> Levels:
    """Drive `todo` through the accounts' adapters until done or stopped; the levels of the
    audio cached (see `Outcomes.levels`)."""
    accounts = [manifest.accounts[name] for name in sorted({s.account for s, _ in todo})]
    environ: Mapping[str, str] = os.environ if options.environ is None else options.environ
    starts = _Starts(store, run_id)
    async with AsyncExitStack() as stack:
        stack.callback(starts.flush)
        base_urls: Mapping[str, tuple[str, ...]] = {}
        if options.sandbox:
            from runner.rehearsal import rehearsal  # the emulators: imported only to rehearse

            rehearsed = await stack.enter_async_context(rehearsal(accounts))
            base_urls, environ = rehearsed.base_urls, rehearsed.environ
        outcomes = Outcomes(
            store,
            cache,
            events,
            stats,
            max_cost=options.max_cost,
            deadline_at=shared.deadline_at,
            unanswered=sent_unanswered(todo),
        )
        providers: dict[str, Provider] = {}
        for account in accounts:
            urls = base_urls.get(account.name, ())
            context = ProviderContext(
                account=account,
                limiter=shared.pacing.limiter(account, urls, environ),
                stats=stats.account(account.name),
                events=events,
                retry=options.retry,
                environ=environ,
                base_urls=urls,
                store=store,
                on_start=partial(starts.add, account.name),
                priority=manifest.priority,
                closed=partial(outcomes.closed, account.name),
            )
            provider = create_provider(context)
            stack.push_async_callback(_shielded, provider.aclose)
            providers[account.name] = provider
        for conflict in shared.pacing.conflicts:
            outcomes.warn(conflict)
        scheduler = Scheduler(
            outcomes=outcomes,
            providers=providers,
            stop=shared.stop,
            task_policy=options.task_policy,
            collect_only=options.collect_only,
        )
        with anyio.CancelScope() as in_flight:
            shared.stop.guard(in_flight)
            await scheduler.run(todo)
        if options.sandbox:
            _report_deviations(rehearsed, outcomes)
        if shared.pacing.history_failures:
            outcomes.warn(
                f"{shared.pacing.history_failures} request starts could not be written to "
                f"{shared.pacing.history_file}; the next run may start faster than the plan "
                "allows at first"
            )
    return outcomes.levels


class _Starts:
    """Request starts for the `events` table, written a batch at a time: one transaction per
    request would cost the event loop more than the request itself against a fast provider.
    Only the report reads them (after the run); a run killed mid-batch loses the plot's last
    points, never a state change (pacing keeps its own history)."""

    BATCH = 256

    def __init__(self, store: Store, run_id: int) -> None:
        self.store, self.run_id = store, run_id
        self.pending: list[tuple[int, float, str, str | None, str | None, str]] = []

    def add(self, account: str) -> None:
        self.pending.append((self.run_id, time.time(), "start", account, None, ""))
        if len(self.pending) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            rows, self.pending = self.pending, []
            self.store.record_events(rows)


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


def _only(plan: Plan, ids: frozenset[str]) -> dict[str, Segment]:
    """The unique segments of the chapters named by `ids` (`run --only`)."""
    known = {c.id for c in plan.chapters}
    unknown = sorted(ids - known)
    if unknown:
        raise UsageError(
            f"--only names text(s) the manifest does not have: {', '.join(unknown)}; its texts: "
            f"{', '.join(sorted(known))}"
        )
    return {s.key: s for c in plan.chapters if c.id in ids for s in c.segments}


async def _shielded(close: Callable[[], Awaitable[None]]) -> None:
    with anyio.CancelScope(shield=True):
        await close()
