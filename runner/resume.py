"""What is left to do, read from the state: every segment not done, with the row that says
where it stopped. Audio already in the cache counts as done even when the state lost track of
it (e.g. a database moved aside after damage), so it is never requested again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio.to_thread

from runner.cache import Cache, Cached, files_in
from runner.events import Events
from runner.plan import Segment
from runner.providers import adapter_class
from runner.providers.base import Mode
from runner.stats import RunStats
from runner.store import SegmentAudio, SegmentRow, SegmentState, Store

__all__ = [
    "EXPIRY_WARNING",
    "TASK_STATES",
    "Left",
    "collectable",
    "sent_unanswered",
    "warn_expiring",
    "work_left",
]

#: States of segments whose request was (or may have been) paid for and whose audio is not in.
TASK_STATES: Final = frozenset(
    {SegmentState.SUBMITTING, SegmentState.SUBMITTED, SegmentState.READY}
)
#: A paid result this close to expiring is a warning (in `status` and the run's log).
EXPIRY_WARNING: Final = 6 * 3600.0


@dataclass
class Left:
    """What a run finds on starting: the work left, and the audio already done."""

    todo: list[tuple[Segment, SegmentRow]]  #: in plan order, with their state rows
    done: dict[str, SegmentAudio]  #: done segments whose file is in place, by key


async def work_left(
    store: Store, cache: Cache, unique: Mapping[str, Segment], stats: RunStats
) -> Left:
    """Segments this run must work on, and those it need not (segments the state has not seen
    are recorded as pending here).

    Only the audio columns of done segments are read (all a resume of a finished book needs:
    is each file in place?); whole rows only for the others."""
    done = store.audio(unique)
    # the files are looked at in one worker thread, not one thread hop per segment
    missing = await anyio.to_thread.run_sync(_not_in_place, store.directory, done)
    for key in missing:
        del done[key]
    stats.cached += len(done)
    rest = [k for k in unique if k not in done]
    rows = store.rows(rest)
    new = [unique[k] for k in rest if k not in rows]
    if new:
        rows.update(store.add_pending(new))
    candidates = [(unique[k], rows[k]) for k in rest if rows[k].state != SegmentState.FAILED]
    found = await anyio.to_thread.run_sync(_look, cache, candidates)
    todo: list[tuple[Segment, SegmentRow]] = []
    recovered: list[str] = []
    for (segment, row), hit in zip(candidates, found, strict=True):
        if hit is None:
            todo.append((segment, row))
        else:
            _recover(store, row, hit)
            recovered.append(segment.key)
    stats.recovered += len(recovered)
    done.update(store.audio(recovered))
    return Left(todo, done)


def _not_in_place(directory: Path, done: Mapping[str, SegmentAudio]) -> list[str]:
    """The done segments whose audio file is not where the state says (blocking). Each folder
    is listed once (the cache has 256): a look per file costs several times more."""
    missing: list[str] = []  # first those with no file recorded at all
    by_folder: dict[str, list[str]] = {}  # keys only: no string is made per file to hold
    for key, audio in done.items():
        if audio.stored:
            by_folder.setdefault(audio.folder, []).append(key)
        else:
            missing.append(key)
    for folder, keys in by_folder.items():  # one listing is held at a time
        files = files_in(directory / folder)
        missing += [key for key in keys if done[key].name not in files]
    return missing


def _look(cache: Cache, candidates: Sequence[tuple[Segment, SegmentRow]]) -> list[Cached | None]:
    """For each candidate: its verified audio when the cache holds it although the state does
    not say so, else None (blocking)."""
    return cache.find_all(
        [(segment.key, segment.format, segment.chars) for segment, _ in candidates]
    )


def _recover(store: Store, row: SegmentRow, found: Cached) -> None:
    store.mark_done(
        row.key,
        path=str(found.path.relative_to(store.directory)),
        sha256=found.sha256,
        duration=found.info.duration,
        sample_rate=found.info.sample_rate,
        cost=row.cost,
    )


def collectable(segment: Segment, row: SegmentRow) -> bool:
    """Whether `collect` can finish a segment without paying for anything new: a result
    waiting at its URL, or a task already submitted. A synchronous request that was sent and
    never answered can only be asked again, which is `run`'s to do."""
    if row.state == SegmentState.READY:
        return True
    return row.state in TASK_STATES and adapter_class(segment.kind).mode == Mode.TASK


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
