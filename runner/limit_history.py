"""Recent request starts per provider account, kept across runs and manifests.

A cron job started right after another one must not burst past the plan: a server counting
in a sliding window still remembers the previous run's requests. So every start of a
rate-limited account is written here, and a new limiter is seeded with the starts of the last
window. The file belongs to the user, not to a manifest (`$TTS_RUNNER_HOME/accounts.db`, by
default `$XDG_STATE_HOME/tts-runner/accounts.db`, i.e. `~/.local/state/tts-runner/`), so
every manifest using the same account shares one history.

An account is known by a digest of its kind, its base URLs and its credential's value: two
manifests naming the same key differently share a history, and the key itself is not stored.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from runner.errors import StateError

__all__ = ["LimitHistory", "account_identity", "history_path"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS starts (account TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS starts_by_account ON starts (account, at);
"""


def history_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("TTS_RUNNER_HOME"):
        return Path(env["TTS_RUNNER_HOME"]).expanduser() / "accounts.db"
    state = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state).expanduser() / "tts-runner" / "accounts.db"


def account_identity(kind: str, base_urls: Sequence[str], secret: str) -> str:
    material = "\n".join([kind, *sorted(base_urls), hashlib.sha256(secret.encode()).hexdigest()])
    return hashlib.sha256(material.encode()).hexdigest()[:32]


class LimitHistory:
    """Open with `LimitHistory.open(path)`; use as a context manager."""

    def __init__(self, path: Path, db: sqlite3.Connection) -> None:
        self.path, self._db = path, db
        self.failures = 0  #: writes that failed (the run goes on; reported at its end)

    @classmethod
    def open(cls, path: Path) -> Self:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None, timeout=10)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(
                f"cannot open the account history {path}: {exc}. Set TTS_RUNNER_HOME to a "
                "writable directory, or move the damaged file aside (pacing then starts afresh)."
            ) from exc
        return cls(path, db)

    def recent(self, account: str, window: float) -> list[float]:
        """Wall-clock times of `account`'s starts within the last `window` seconds."""
        since = time.time() - window
        found = self._db.execute(
            "SELECT at FROM starts WHERE account = ? AND at >= ? ORDER BY at", (account, since)
        )
        return [float(at) for (at,) in found]

    def started(self, account: str, at: float, keep: float) -> int:
        """A start at wall-clock `at`; forgets this account's starts older than `keep` s."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                cursor = self._db.execute("INSERT INTO starts VALUES (?, ?)", (account, at))
                self._db.execute(
                    "DELETE FROM starts WHERE account = ? AND at < ?", (account, at - keep)
                )
        except sqlite3.Error:
            self.failures += 1  # pacing within this run still holds; the next starts afresh
            return 0
        return cursor.lastrowid or 0

    def finished(self, handle: int, at: float) -> None:
        """The request of `handle` got its reply at wall-clock `at`."""
        if not handle:
            return
        try:
            with self._db:
                self._db.execute("UPDATE starts SET at = ? WHERE rowid = ?", (at, handle))
        except sqlite3.Error:
            self.failures += 1

    def log_for(self, account: str, window: float, offset: float) -> AccountLog:
        """The `StartLog` of one account for a limiter whose clock is wall clock − `offset`."""
        return AccountLog(self, account, window, offset)

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


class AccountLog:
    """One account's `limits.StartLog`, converting the limiter's clock to wall-clock time."""

    def __init__(self, history: LimitHistory, account: str, window: float, offset: float) -> None:
        self.history, self.account, self.window, self.offset = history, account, window, offset

    def started(self, at: float) -> int:
        return self.history.started(self.account, at + self.offset, keep=2 * self.window)

    def finished(self, handle: int, at: float) -> None:
        self.history.finished(handle, at + self.offset)
