"""What the state database remembers of a run: its time span and its request starts.

The Store writes the `runs` and `events` tables but has no reader for them, so they are read
here, through a read-only connection of our own (WAL lets it read beside the Store's).

Request start times, best source first:
1. `start` rows of the `events` table for this run (`at` is wall-clock time): every request
   start of the account's limiter, polls and downloads included;
2. otherwise `segments.submitted_at` of the segments submitted since the run began. That is the
   *last* start of each segment only: retries, polls and downloads are missing, so the plot
   undercounts; the report says so.
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunSpan", "Starts", "request_starts", "run_span"]


@dataclass(frozen=True)
class RunSpan:
    id: int | None
    started_at: float
    finished_at: float


@dataclass(frozen=True)
class Starts:
    source: str  #: "events" or "submitted_at" (see the module docstring)
    by_account: dict[str, list[float]]


@contextmanager
def _read_only(db_path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True, timeout=10)) as db:
        yield db


def run_span(db_path: Path, run_id: int | None) -> RunSpan:
    """The run's wall-clock span; the latest run when `run_id` is None. Unfinished: until now."""
    now = time.time()
    with _read_only(db_path) as db:
        if run_id is None:
            found = db.execute(
                "SELECT id, started_at, finished_at FROM runs ORDER BY id DESC LIMIT 1"
            ).fetchone()
        else:
            found = db.execute(
                "SELECT id, started_at, finished_at FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
    if found is None:
        return RunSpan(run_id, now, now)
    return RunSpan(int(found[0]), float(found[1]), float(found[2] or now))


def request_starts(db_path: Path, span: RunSpan) -> Starts:
    with _read_only(db_path) as db:
        rows = db.execute(
            "SELECT account, at FROM events WHERE run = ? AND kind = 'start' ORDER BY at",
            (span.id,),
        ).fetchall()
        source = "events"
        if not rows:
            rows = db.execute(
                "SELECT account, submitted_at FROM segments"
                " WHERE submitted_at >= ? AND submitted_at <= ? ORDER BY submitted_at",
                (span.started_at, span.finished_at),
            ).fetchall()
            source = "submitted_at"
    by_account: dict[str, list[float]] = defaultdict(list)
    for account, at in rows:
        by_account[str(account)].append(float(at))
    return Starts(source, dict(by_account))
