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

import enum
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from runner.errors import DiskFull, StateCorrupt, StateError, StateTooNew
from runner.migrations import MIGRATIONS, SCHEMA_VERSION
from runner.plan import Segment

__all__ = ["AssetRow", "ChapterRow", "SegmentRow", "SegmentState", "Store"]

DB_NAME = "state.db"


class SegmentState(enum.StrEnum):
    PENDING = "pending"  #: known; nothing sent yet
    SUBMITTING = "submitting"  #: a request may have left; its outcome is unknown
    SUBMITTED = "submitted"  #: a provider task exists (task_id)
    READY = "ready"  #: the task finished; its result awaits download (url)
    DONE = "done"  #: verified audio is in the cache (path, sha256)
    FAILED = "failed"  #: given up (reason)


@dataclass(frozen=True)
class SegmentRow:
    key: str
    account: str
    kind: str
    state: SegmentState
    chars: int
    text: str
    format: str
    request_id: str | None
    task_id: str | None
    submitted_at: float | None
    url: str | None
    url_expires_at: float | None
    path: str | None
    sha256: str | None
    duration: float | None
    sample_rate: int | None
    attempts: int
    cost: float | None
    reason: str | None
    updated_at: float


@dataclass(frozen=True)
class AssetRow:
    """A voice model or reference the runner created at a provider."""

    account: str
    kind: str  #: e.g. "model", "emotion_ref"
    sha256: str  #: of the audio it was made from
    remote_id: str  #: the provider's id for it (audioId, emotionPath, ...)
    created_at: float
    expires_at: float | None
    last_used_at: float


@dataclass(frozen=True)
class ChapterRow:
    manifest: str
    text_id: str
    fingerprint: str
    path: str
    sha256: str
    duration: float
    assembled_at: float


_COLUMNS = ", ".join(f.name for f in SegmentRow.__dataclass_fields__.values())


def _row(values: tuple[object, ...]) -> SegmentRow:
    row = SegmentRow(*values)  # type: ignore[arg-type]
    object.__setattr__(row, "state", SegmentState(row.state))
    return row


class Store:
    """Open with `Store.open(directory)`; use as a context manager."""

    def __init__(self, directory: Path, connection: sqlite3.Connection) -> None:
        self.directory = directory
        self.path = directory / DB_NAME
        self._db = connection

    def __repr__(self) -> str:
        return f"<Store {str(self.path)!r}>"

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: Path) -> Store:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create state directory {directory}: {exc.strerror}") from exc
        path = directory / DB_NAME
        try:
            db = sqlite3.connect(path, isolation_level=None, timeout=10)
        except sqlite3.Error as exc:
            raise StateError(f"cannot open state database {path}: {exc}") from exc
        store = cls(directory, db)
        try:
            store._prepare()
        except BaseException:
            db.close()
            raise
        return store

    def _prepare(self) -> None:
        try:
            result = self._db.execute("PRAGMA integrity_check").fetchall()
            if result != [("ok",)]:
                detail = "; ".join(str(r[0]) for r in result[:3])
                raise StateCorrupt(self._corrupt_message(detail))
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            if "full" in str(exc):
                raise DiskFull(f"no space left to open {self.path}") from exc
            raise StateCorrupt(self._corrupt_message(str(exc))) from exc

    def _corrupt_message(self, detail: str) -> str:
        return (
            f"state database {self.path} is damaged ({detail}). It is never recreated silently. "
            f"Move it aside (mv {self.path} {self.path}.damaged) and run again: audio already "
            "in the cache is verified and reused, so finished segments are not paid for again."
        )

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StateTooNew(
                f"state database {self.path} has schema {version}; this tts-runner knows up to "
                f"{SCHEMA_VERSION}. Upgrade tts-runner, or use another --state directory."
            )
        for target in range(version, SCHEMA_VERSION):
            with self._transaction(durable=True):
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {target + 1}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- transactions ---------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction. `durable` fsyncs the WAL at commit (synchronous=FULL)."""
        if durable:
            self._db.execute("PRAGMA synchronous=FULL")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if "full" in str(exc) or getattr(exc, "sqlite_errorcode", 0) == 13:  # SQLITE_FULL
                raise DiskFull(
                    f"no space left on the device holding {self.path}; the state database is "
                    "unchanged — free some space and run again"
                ) from exc
            raise
        finally:
            if durable:
                self._db.execute("PRAGMA synchronous=NORMAL")

    # -- segments -------------------------------------------------------------------------------

    def add_segments(self, segments: Iterable[Segment]) -> int:
        """Record segments not seen before as pending. Returns how many were new."""
        now = time.time()
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO segments (key, account, kind, state, chars, text, format,"
                " updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)",
                ((s.key, s.account, s.kind, s.chars, s.text, s.format, now) for s in segments),
            )
            return db.total_changes - before

    def get(self, key: str) -> SegmentRow | None:
        found = self._db.execute(f"SELECT {_COLUMNS} FROM segments WHERE key = ?", (key,))
        values = found.fetchone()
        return None if values is None else _row(values)

    def rows(self, keys: Iterable[str]) -> dict[str, SegmentRow]:
        wanted = list(dict.fromkeys(keys))
        out: dict[str, SegmentRow] = {}
        for start in range(0, len(wanted), 500):
            batch = wanted[start : start + 500]
            marks = ",".join("?" * len(batch))
            query = f"SELECT {_COLUMNS} FROM segments WHERE key IN ({marks})"
            for values in self._db.execute(query, batch):
                row = _row(values)
                out[row.key] = row
        return out

    def in_state(self, *states: SegmentState) -> list[SegmentRow]:
        marks = ",".join("?" * len(states))
        query = f"SELECT {_COLUMNS} FROM segments WHERE state IN ({marks}) ORDER BY rowid"
        return [_row(v) for v in self._db.execute(query, [s.value for s in states])]

    def counts(self) -> dict[SegmentState, int]:
        found = self._db.execute("SELECT state, COUNT(*) FROM segments GROUP BY state")
        counts = dict.fromkeys(SegmentState, 0)
        counts.update({SegmentState(state): n for state, n in found})
        return counts

    def _set(self, key: str, durable: bool, **values: object) -> None:
        columns = ", ".join(f"{name} = ?" for name in values)
        with self._transaction(durable) as db:
            db.execute(
                f"UPDATE segments SET {columns}, updated_at = ? WHERE key = ?",
                (*values.values(), time.time(), key),
            )

    def begin_submit(self, key: str, request_id: str, durable: bool = True) -> None:
        """Record that a request for `key` is about to leave; durably when it will be paid."""
        with self._transaction(durable=durable) as db:
            db.execute(
                "UPDATE segments SET state = 'submitting', request_id = ?, attempts = attempts + 1,"
                " submitted_at = ?, reason = NULL, updated_at = ? WHERE key = ?",
                (request_id, time.time(), time.time(), key),
            )

    def mark_submitted(self, key: str, task_id: str) -> None:
        self._set(key, True, state=SegmentState.SUBMITTED.value, task_id=task_id)

    def mark_ready(self, key: str, url: str, url_expires_at: float | None) -> None:
        self._set(key, True, state=SegmentState.READY.value, url=url, url_expires_at=url_expires_at)

    def mark_done(
        self,
        key: str,
        *,
        path: str,
        sha256: str,
        duration: float,
        sample_rate: int,
        cost: float | None,
    ) -> None:
        self._set(
            key,
            False,
            state=SegmentState.DONE.value,
            path=path,
            sha256=sha256,
            duration=duration,
            sample_rate=sample_rate,
            cost=cost,
            reason=None,
        )

    def mark_failed(self, key: str, reason: str) -> None:
        self._set(key, False, state=SegmentState.FAILED.value, reason=reason)

    def mark_pending(self, key: str, reason: str | None = None) -> None:
        """Back to the start: the segment will be requested again (e.g. its result expired)."""
        self._set(
            key,
            False,
            state=SegmentState.PENDING.value,
            task_id=None,
            url=None,
            url_expires_at=None,
            reason=reason,
        )

    def retry_failed(self, keys: Iterable[str] | None = None) -> int:
        with self._transaction() as db:
            before = db.total_changes
            if keys is None:
                db.execute("UPDATE segments SET state = 'pending' WHERE state = 'failed'")
            else:
                db.executemany(
                    "UPDATE segments SET state = 'pending' WHERE key = ? AND state = 'failed'",
                    ((k,) for k in keys),
                )
            return db.total_changes - before

    # -- chapters -------------------------------------------------------------------------------

    def chapter(self, manifest: str, text_id: str) -> ChapterRow | None:
        found = self._db.execute(
            "SELECT manifest, text_id, fingerprint, path, sha256, duration, assembled_at"
            " FROM chapters WHERE manifest = ? AND text_id = ?",
            (manifest, text_id),
        ).fetchone()
        return None if found is None else ChapterRow(*found)

    def save_chapter(self, row: ChapterRow) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO chapters VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    row.manifest,
                    row.text_id,
                    row.fingerprint,
                    row.path,
                    row.sha256,
                    row.duration,
                    row.assembled_at,
                ),
            )

    # -- assets at providers ------------------------------------------------------------------

    def asset(self, account: str, kind: str, sha256: str) -> AssetRow | None:
        found = self._db.execute(
            "SELECT * FROM assets WHERE account = ? AND kind = ? AND sha256 = ?",
            (account, kind, sha256),
        ).fetchone()
        return None if found is None else AssetRow(*found)

    def assets(self, account: str, kind: str) -> list[AssetRow]:
        found = self._db.execute(
            "SELECT * FROM assets WHERE account = ? AND kind = ? ORDER BY last_used_at",
            (account, kind),
        )
        return [AssetRow(*row) for row in found]

    def save_asset(self, row: AssetRow) -> None:
        with self._transaction(durable=True) as db:  # it was paid for or counts against a cap
            db.execute(
                "INSERT OR REPLACE INTO assets VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    row.account,
                    row.kind,
                    row.sha256,
                    row.remote_id,
                    row.created_at,
                    row.expires_at,
                    row.last_used_at,
                ),
            )

    def touch_asset(self, account: str, kind: str, sha256: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE assets SET last_used_at = ? WHERE account = ? AND kind = ? AND sha256 = ?",
                (time.time(), account, kind, sha256),
            )

    def forget_asset(self, account: str, kind: str, remote_id: str) -> None:
        with self._transaction() as db:
            db.execute(
                "DELETE FROM assets WHERE account = ? AND kind = ? AND remote_id = ?",
                (account, kind, remote_id),
            )

    # -- runs and events ----------------------------------------------------------------------

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
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO events (run, at, kind, account, key, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (run, time.time(), kind, account, key, detail),
            )
