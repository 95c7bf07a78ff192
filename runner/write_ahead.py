"""The write-ahead of paid requests, committed in groups.

Before a paid request leaves, its segment is recorded as `submitting` with an fsync (design.md:
a crash must never leave a paid request unrecorded). One fsync per request cost about 2 ms of
the event loop each, most of the runner's own time against a fast provider. Requests that are
ready to leave at the same moment now share one transaction: the first opens a group, lets
every task that is ready run once (so they join it), then commits the group; each request
leaves only after the commit that holds it (group commit, as databases do for their own logs;
see e.g. PostgreSQL's commit_delay). Nothing is sent before it is durable, and a request
waits for at most its own group's commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import anyio.lowlevel

from runner.store import Store

__all__ = ["WriteAhead"]


@dataclass
class _Group:
    requests: list[tuple[str, str]]  #: (segment key, request id)
    committed: anyio.Event = field(default_factory=anyio.Event)
    error: BaseException | None = None


class WriteAhead:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._open: _Group | None = None  #: the group being gathered, if any
        self.commits = 0  #: transactions written (durable ones)
        self.requests = 0  #: requests they recorded

    async def begin(self, key: str, request_id: str, durable: bool) -> None:
        """Record that `key`'s request is about to leave; return once that is on disk (when
        `durable`: a paid request), else once it is written."""
        if not durable:
            self.store.begin_submit(key, request_id, durable=False)
            return
        group = self._open
        if group is not None:  # a group is gathering: join it, wait for its commit
            group.requests.append((key, request_id))
            await group.committed.wait()
            if group.error is not None:
                raise group.error
            return
        group = self._open = _Group([(key, request_id)])
        try:
            await anyio.lowlevel.checkpoint()  # every task ready now runs once, and may join
        finally:
            # committed even when this task was cancelled meanwhile: the others wait for it
            self._open = None
            try:
                self.store.begin_submits(group.requests, durable=True)
                self.commits += 1
                self.requests += len(group.requests)
            except BaseException as exc:
                group.error = exc
                raise
            finally:
                group.committed.set()
