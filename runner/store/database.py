"""The SQLite connection of the state directory: opening, integrity, migrations, transactions.

WAL mode; `synchronous=NORMAL` except for transitions that must survive a power cut (a paid
request about to leave, a task id, an asset created at a provider), which commit with FULL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

from runner.errors import DiskFull, StateCorrupt, StateError, StateTooNew
from runner.migrations import MIGRATIONS, SCHEMA_VERSION

__all__ = ["DB_NAME", "Database"]

DB_NAME = "state.db"


def _cannot_write(exc: sqlite3.Error) -> bool:
    """SQLITE_FULL, or SQLITE_IOERR (what a write refused for a file-size limit becomes)."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (13, 10) or "full" in str(exc) or "disk I/O error" in str(exc)


class Database:
    """The connection, its schema and its transactions; the tables add their methods."""

    def __init__(self, directory: Path, connection: sqlite3.Connection) -> None:
        self.directory = directory
        self.path = directory / DB_NAME
        self._db = connection

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {str(self.path)!r}>"

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: Path) -> Self:
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
            # Damaged or cut-short pages, malformed records: every page is read. (The full
            # integrity_check also cross-checks every index entry, four times the cost for a
            # book of 100,000 segments, and on every start.)
            result = self._db.execute("PRAGMA quick_check").fetchall()
            if result != [("ok",)]:
                detail = "; ".join(str(r[0]) for r in result[:3])
                raise StateCorrupt(self._corrupt_message(detail))
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            if _cannot_write(exc):
                raise DiskFull(
                    f"cannot write to open {self.path} ({exc}): the disk may be full or a "
                    "file-size limit reached; free some space and run again"
                ) from exc
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

    def __enter__(self) -> Self:
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
            if _cannot_write(exc):
                raise DiskFull(
                    f"cannot write {self.path} ({exc}): the disk may be full or a file-size "
                    "limit reached; the state database is unchanged — free some space and run "
                    "again"
                ) from exc
            raise
        finally:
            if durable:
                self._db.execute("PRAGMA synchronous=NORMAL")
