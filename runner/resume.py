"""What is left to do, read from the state: every segment not done, with the row that says
where it stopped. Audio already in the cache counts as done even when the state lost track of
it (e.g. a database moved aside after damage), so it is never requested again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import anyio.to_thread

from runner.cache import Cache, Cached
from runner.events import Events
from runner.plan import Segment
from runner.providers import adapter_class
from runner.providers.base import Mode
from runner.stats import RunStats
from runner.store import SegmentRow, SegmentState, Store

__all__ = ["EXPIRY_WARNING", "TASK_STATES", "sent_unanswered", "warn_expiring", "work_left"]

#: States of segments whose request was (or may have been) paid for and whose audio is not in.
TASK_STATES: Final = frozenset(
    {SegmentState.SUBMITTING, SegmentState.SUBMITTED, SegmentState.READY}
)
#: A paid result this close to expiring is a warning (in `status` and the run's log).
EXPIRY_WARNING: Final = 6 * 3600.0


async def work_left(
    store: Store, cache: Cache, unique: Mapping[str, Segment], stats: RunStats
) -> list[tuple[Segment, SegmentRow]]:
    """Segments this run must work on, in plan order, with their state rows."""
    rows = store.rows(unique)
    candidates = [(s, rows[k]) for k, s in unique.items() if rows[k].state != SegmentState.FAILED]
    # the files are looked at in one worker thread, not one thread hop per segment
    found = await anyio.to_thread.run_sync(_look, store.directory, cache, candidates)
    todo: list[tuple[Segment, SegmentRow]] = []
    for (segment, row), hit in zip(candidates, found, strict=True):
        if hit is True:
            stats.cached += 1
        elif isinstance(hit, Cached):
            _recover(store, row, hit)
            stats.recovered += 1
        else:
            todo.append((segment, row))
    return todo


def _look(
    directory: Path, cache: Cache, candidates: Sequence[tuple[Segment, SegmentRow]]
) -> list[Cached | bool | None]:
    """For each candidate: True when it is done with its file in place, its verified audio
    when the cache holds it although the state does not say so, else None (blocking)."""
    out: list[Cached | bool | None] = []
    for segment, row in candidates:
        if row.state == SegmentState.DONE and row.path and (directory / row.path).is_file():
            out.append(True)
        else:
            out.append(cache.find(segment.key, segment.format, segment.chars))
    return out


def _recover(store: Store, row: SegmentRow, found: Cached) -> None:
    store.mark_done(
        row.key,
        path=str(found.path.relative_to(store.directory)),
        sha256=found.sha256,
        duration=found.info.duration,
        sample_rate=found.info.sample_rate,
        cost=row.cost,
    )


def sent_unanswered(todo: Sequence[tuple[Segment, SegmentRow]]) -> frozenset[str]:
    """Synchronous segments an earlier run sent and never heard back from: they may have been
    paid for, and asking again is a re-request (tasks are reconciled by their task list)."""
    return frozenset(
        segment.key
        for segment, row in todo
        if row.state == SegmentState.SUBMITTING and adapter_class(segment.kind).mode == Mode.SYNC
    )


def warn_expiring(
    todo: Sequence[tuple[Segment, SegmentRow]], stats: RunStats, events: Events
) -> None:
    """Say which paid results expire within EXPIRY_WARNING (they are collected first)."""
    now = time.time()
    for segment, row in todo:
        if row.state != SegmentState.READY or row.url_expires_at is None:
            continue
        left = row.url_expires_at - now
        if left < EXPIRY_WARNING:
            when = f"expires in {left / 3600:.1f} h" if left > 0 else "has expired"
            message = f"the paid result of segment {segment.key[:12]} ({row.account}) {when}"
            stats.warnings.append(message)
            events.emit("warning", message=message, key=segment.key, account=row.account)
