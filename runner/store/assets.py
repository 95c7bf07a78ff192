"""Things the runner created at a provider (voice models, emotion references), by the content
hash of the audio they were made from, so each is created once and reused."""

from __future__ import annotations

import time

from runner.store.database import Database
from runner.store.rows import AssetRow

__all__ = ["AssetTable"]


class AssetTable(Database):
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
