"""What is left to do, read from the state: every segment not done, with the row that says
where it stopped. Audio already in the cache counts as done even when the state lost track of
it (e.g. a database moved aside after damage), so it is never requested again.
"""

from __future__ import annotations

from collections.abc import Mapping

import anyio.to_thread

from runner.cache import Cache, Cached
from runner.events import Events
from runner.plan import Segment
from runner.providers import adapter_class
from runner.providers.base import Mode
from runner.stats import RunStats
from runner.store import SegmentRow, SegmentState, Store

__all__ = ["work_left"]


async def work_left(
    store: Store, cache: Cache, unique: Mapping[str, Segment], stats: RunStats, events: Events
) -> list[tuple[Segment, SegmentRow]]:
    """Segments this run must work on, in plan order, with their state rows."""
    rows = store.rows(unique)
    todo: list[tuple[Segment, SegmentRow]] = []
    for key, segment in unique.items():
        row = rows[key]
        if row.state == SegmentState.DONE and row.path and (store.directory / row.path).is_file():
            stats.cached += 1
            continue
        if row.state == SegmentState.FAILED:
            continue
        found = await anyio.to_thread.run_sync(cache.find, key, segment.format, segment.chars)
        if found is not None:
            _recover(store, row, found)
            stats.recovered += 1
            continue
        if row.state == SegmentState.SUBMITTING and adapter_class(segment.kind).mode == Mode.SYNC:
            # A synchronous request left and its answer never arrived: it may have been paid
            # for, and there is no way to fetch it again. Say so.
            stats.account(segment.account).re_requests += 1
            events.emit("re_request", key=segment.key, account=segment.account)
        todo.append((segment, row))
    return todo


def _recover(store: Store, row: SegmentRow, found: Cached) -> None:
    store.mark_done(
        row.key,
        path=str(found.path.relative_to(store.directory)),
        sha256=found.sha256,
        duration=found.info.duration,
        sample_rate=found.info.sample_rate,
        cost=row.cost,
    )
