"""The state database: the only source of truth for resume.

SQLite in WAL mode in the state directory. Every segment moves through this state machine,
and each transition is committed before (or, for results, right after) its side effect:

```
pending ─▶ submitting ─▶ submitted(task_id) ─▶ ready(url, url_expires_at) ─▶ done(path, sha256)
   │            │                 │                         │
   └────────────┴─────────────────┴────── failed(reason) ◀──┘
```
Sync providers go pending → submitting → done. `submitting` is written durably
(synchronous=FULL) before a request leaves; a segment found `submitting` on resume may have
been paid for and is reconciled before anything is sent again.

Calls are short and synchronous; the scheduler calls them from its event loop.
"""

from __future__ import annotations

from runner.store.assets import AssetTable
from runner.store.database import DB_NAME
from runner.store.journal import Journal
from runner.store.rows import CACHE, AssetRow, ChapterRow, SegmentAudio, SegmentRow, SegmentState
from runner.store.segments import SegmentTable

__all__ = [
    "CACHE",
    "DB_NAME",
    "AssetRow",
    "ChapterRow",
    "SegmentAudio",
    "SegmentRow",
    "SegmentState",
    "Store",
]


class Store(SegmentTable, AssetTable, Journal):
    """Open with `Store.open(directory)`; use as a context manager."""
