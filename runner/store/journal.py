"""What happened: runs, their events, and how long finished provider tasks took."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from runner.store.database import Database

__all__ = ["Journal"]


class Journal(Database):
    def start_run(self, command: str) -> int:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO runs (started_at, pid, command) VALUES (?, ?, ?)",
                (time.time(), os.getpid(), command),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def finish_run(self, run: int, exit_code: int, summary: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET finished_at = ?, exit_code = ?, summary = ? WHERE id = ?",
                (time.time(), exit_code, summary, run),
            )

    def record_event(
        self,
        run: int,
        kind: str,
        account: str | None = None,
        key: str | None = None,
        detail: str = "",
        at: float | None = None,
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO events (run, at, kind, account, key, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (run, time.time() if at is None else at, kind, account, key, detail),
            )

    def record_events(
        self, rows: Iterable[tuple[int, float, str, str | None, str | None, str]]
    ) -> None:
        """Several (run, at, kind, account, key, detail) rows in one transaction."""
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO events (run, at, kind, account, key, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    # -- task processing times ----------------------------------------------------------------

    def record_task_time(self, account: str, chars: int, low: float, high: float) -> None:
        """A task of `chars` characters finished between `low` and `high` seconds old."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO task_times VALUES (?, ?, ?, ?, ?)",
                (account, chars, low, high, time.time()),
            )
            db.execute(  # keep the latest thousand per account
                "DELETE FROM task_times WHERE account = ? AND finished_at < (SELECT finished_at"
                " FROM task_times WHERE account = ? ORDER BY finished_at DESC LIMIT 1 OFFSET 999)",
                (account, account),
            )

    def task_times(self, account: str, limit: int = 200) -> list[tuple[int, float, float]]:
        """The latest `limit` (chars, low, high) of `account`, oldest first."""
        found = self._db.execute(
            "SELECT chars, low, high FROM task_times WHERE account = ?"
            " ORDER BY finished_at DESC LIMIT ?",
            (account, limit),
        ).fetchall()
        return [(int(c), float(lo), float(hi)) for c, lo, hi in reversed(found)]
