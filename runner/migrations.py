"""The state database's schema, as an ordered list of migrations.

`MIGRATIONS[i]` brings a database from schema version i to i + 1. A database at a version
newer than this list is refused (it was written by a newer tts-runner); never downgrade.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

MIGRATIONS: Final[tuple[str, ...]] = (
    # 0 → 1: segments and their state machine, assembled chapters, runs and their events.
    """
    CREATE TABLE segments (
        key            TEXT PRIMARY KEY,
        account        TEXT NOT NULL,
        kind           TEXT NOT NULL,
        state          TEXT NOT NULL,
        chars          INTEGER NOT NULL,
        text           TEXT NOT NULL,
        format         TEXT NOT NULL,
        request_id     TEXT,
        task_id        TEXT,
        submitted_at   REAL,
        url            TEXT,
        url_expires_at REAL,
        path           TEXT,
        sha256         TEXT,
        duration       REAL,
        sample_rate    INTEGER,
        attempts       INTEGER NOT NULL DEFAULT 0,
        cost           REAL,
        reason         TEXT,
        updated_at     REAL NOT NULL
    );
    CREATE INDEX segments_by_state ON segments (state, account);
    CREATE TABLE chapters (
        manifest     TEXT NOT NULL,
        text_id      TEXT NOT NULL,
        fingerprint  TEXT NOT NULL,
        path         TEXT NOT NULL,
        sha256       TEXT NOT NULL,
        duration     REAL NOT NULL,
        assembled_at REAL NOT NULL,
        PRIMARY KEY (manifest, text_id)
    );
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY,
        started_at  REAL NOT NULL,
        finished_at REAL,
        pid         INTEGER NOT NULL,
        command     TEXT NOT NULL,
        exit_code   INTEGER,
        summary     TEXT
    );
    CREATE TABLE events (
        id      INTEGER PRIMARY KEY,
        run     INTEGER NOT NULL,
        at      REAL NOT NULL,
        kind    TEXT NOT NULL,
        account TEXT,
        key     TEXT,
        detail  TEXT
    );
    """,
    # 1 → 2: things the runner created at a provider (voice models, emotion references), by
    # the content hash of the audio they were made from, so they are created once and reused.
    """
    CREATE TABLE assets (
        account      TEXT NOT NULL,
        kind         TEXT NOT NULL,
        sha256       TEXT NOT NULL,
        remote_id    TEXT NOT NULL,
        created_at   REAL NOT NULL,
        expires_at   REAL,
        last_used_at REAL NOT NULL,
        PRIMARY KEY (account, kind, sha256)
    );
    """,
    # 2 → 3: how long finished provider tasks took, by text length, so that the first poll of
    # a new run's tasks is timed from what earlier runs learned.
    """
    CREATE TABLE task_times (
        account     TEXT NOT NULL,
        chars       INTEGER NOT NULL,
        low         REAL NOT NULL,
        high        REAL NOT NULL,
        finished_at REAL NOT NULL
    );
    CREATE INDEX task_times_by_account ON task_times (account, finished_at);
    """,
    # 3 → 4: the size and modification time a chapter file had when it was written, so that a
    # resume knows it unchanged from a stat instead of hashing every output again.
    """
    ALTER TABLE chapters ADD COLUMN size INTEGER;
    ALTER TABLE chapters ADD COLUMN mtime_ns INTEGER;
    """,
)

SCHEMA_VERSION: Final = len(MIGRATIONS)
