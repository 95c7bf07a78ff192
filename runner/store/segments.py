"""The segments table (the state machine of design.md) and the chapters built from it."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from runner.plan import Segment
from runner.store.database import Database
from runner.store.rows import ChapterRow, SegmentAudio, SegmentRow, SegmentState

__all__ = ["SegmentTable"]

_COLUMNS = ", ".join(f.name for f in SegmentRow.__dataclass_fields__.values())
#: The columns of a segment that has never been sent: all NULL.
_UNSET_WHEN_PENDING = (
    "request_id",
    "task_id",
    "submitted_at",
    "url",
    "url_expires_at",
    "path",
    "sha256",
    "duration",
    "sample_rate",
    "cost",
    "reason",
)
#: Reads of more keys than this, and of half the table or more, scan it (see `_of_keys`).
_SCAN_ABOVE = 2000


def _row(values: tuple[object, ...]) -> SegmentRow:
    row = SegmentRow(*values)  # type: ignore[arg-type]
    object.__setattr__(row, "state", SegmentState(row.state))
    return row


class SegmentTable(Database):
    # -- segments -------------------------------------------------------------------------------

    def add_segments(self, segments: Iterable[Segment], now: float | None = None) -> int:
        """Record segments not seen before as pending. Returns how many were new."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO segments (key, account, kind, state, chars, text, format,"
                " updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)",
                ((s.key, s.account, s.kind, s.chars, s.text, s.format, now) for s in segments),
            )
            return db.total_changes - before

    def add_pending(self, segments: Sequence[Segment]) -> dict[str, SegmentRow]:
        """Record segments the state has never seen as pending; their rows, by key, as written
        (not read back: a first run of a book records 100,000, sharing the plan's strings)."""
        now = time.time()
        if self.add_segments(segments, now) != len(segments):  # some were known after all
            return self.rows(s.key for s in segments)
        unset = dict.fromkeys(_UNSET_WHEN_PENDING)
        return {
            s.key: SegmentRow(
                key=s.key,
                account=s.account,
                kind=s.kind,
                state=SegmentState.PENDING,
                chars=s.chars,
                text=s.text,
                format=s.format,
                attempts=0,
                updated_at=now,
                **unset,
            )
            for s in segments
        }

    def get(self, key: str) -> SegmentRow | None:
        found = self._db.execute(f"SELECT {_COLUMNS} FROM segments WHERE key = ?", (key,))
        values = found.fetchone()
        return None if values is None else _row(values)

    def rows(self, keys: Iterable[str]) -> dict[str, SegmentRow]:
        """The rows of `keys` (those the state knows), by key.

        A book's rows are read at once (100,000 of them on resume), so they are kept lean:
        each row holds the caller's own key string, and one string per distinct account, kind
        and format, rather than fresh copies from SQLite."""
        wanted = {key: key for key in keys}
        shared: dict[str, str] = {}
        out: dict[str, SegmentRow] = {}
        for values in self._of_keys(_COLUMNS, wanted):
            key, account, kind, state, chars, text, fmt, *rest = values
            key = wanted[key]
            out[key] = SegmentRow(
                key,
                shared.setdefault(account, account),
                shared.setdefault(kind, kind),
                SegmentState(state),
                chars,
                text,
                shared.setdefault(fmt, fmt),
                *rest,
            )
        return out

    def states(self, keys: Iterable[str]) -> dict[str, SegmentState]:
        """The state of each of `keys` the state knows (without reading their rows)."""
        wanted = {key: key for key in keys}
        return {wanted[k]: SegmentState(v) for k, v in self._of_keys("key, state", wanted)}

    def audio(self, keys: Iterable[str]) -> dict[str, SegmentAudio]:
        """The audio of those of `keys` that are done, by key (the caller's key strings)."""
        wanted = {key: key for key in keys}
        rates: dict[int, int] = {}  # one int object per rate, not one per row
        suffixes: dict[str, str] = {}
        columns = "key, state, path, sha256, sample_rate, duration"
        return {
            wanted[k]: SegmentAudio.of(wanted[k], p, h, rates.setdefault(r, r), d, suffixes)
            for k, state, p, h, r, d in self._of_keys(columns, wanted)
            if state == "done"
        }

    def costs(self, keys: Iterable[str]) -> dict[str, float]:
        """What `keys` cost, summed per account (segments without a known cost add nothing)."""
        totals: defaultdict[str, float] = defaultdict(float)
        for _, account, cost in self._of_keys("key, account, cost", dict.fromkeys(keys)):
            if cost is not None:
                totals[account] += cost
        return dict(totals)

    def state_counts(self, keys: Iterable[str]) -> Counter[SegmentState]:
        """How many of `keys` are in each state (without reading their rows)."""
        found = Counter(state for _, state in self._of_keys("key, state", dict.fromkeys(keys)))
        return Counter({SegmentState(state): n for state, n in found.items()})

    def _of_keys(self, columns: str, wanted: Mapping[str, object]) -> Iterator[Any]:
        """SELECT `columns` (the key first) of the rows of the keys in `wanted`.

        Most of the table (a resume reads a whole book) is read in one scan and filtered
        here: 200 lookups of 500 keys by index cost several times more. A few keys are looked
        up by index, in batches under SQLite's parameter limit. The state may hold other
        manifests' segments too (jobs/*.yaml share one), hence the share, not a count."""
        select = f"SELECT {columns} FROM segments"
        size = self._db.execute("SELECT MAX(rowid) FROM segments").fetchone()[0] or 0
        if len(wanted) > _SCAN_ABOVE and 2 * len(wanted) >= size:
            yield from (row for row in self._db.execute(select) if row[0] in wanted)
            return
        keys = list(wanted)
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            marks = ",".join("?" * len(batch))
            yield from self._db.execute(f"{select} WHERE key IN ({marks})", batch)

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
        self.begin_submits([(key, request_id)], durable)

    def begin_submits(self, requests: Iterable[tuple[str, str]], durable: bool = True) -> None:
        """`begin_submit` for several (key, request id) in one transaction: one fsync for all."""
        now = time.time()
        with self._transaction(durable=durable) as db:
            db.executemany(
                "UPDATE segments SET state = 'submitting', request_id = ?, attempts = attempts + 1,"
                " submitted_at = ?, reason = NULL, updated_at = ? WHERE key = ?",
                ((request_id, now, now, key) for key, request_id in requests),
            )

    def mark_submitted(self, key: str, task_id: str) -> None:
        self._set(key, True, state=SegmentState.SUBMITTED.value, task_id=task_id)

    def mark_ready(
        self,
        key: str,
        url: str,
        url_expires_at: float | None,
        cost: float | None = None,
        *,
        durable: bool = True,
    ) -> None:
        """A paid result waits at `url`: durably, before anything else happens to it, unless
        the row's task id (already durable) leads to the result again."""
        paid = {} if cost is None else {"cost": cost}
        self._set(
            key,
            durable,
            state=SegmentState.READY.value,
            url=url,
            url_expires_at=url_expires_at,
            **paid,
        )

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
            "SELECT manifest, text_id, fingerprint, path, sha256, duration, assembled_at, size,"
            " mtime_ns FROM chapters WHERE manifest = ? AND text_id = ?",
            (manifest, text_id),
        ).fetchone()
        return None if found is None else ChapterRow(*found)

    def save_chapter(self, row: ChapterRow) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO chapters (manifest, text_id, fingerprint, path, sha256,"
                " duration, assembled_at, size, mtime_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.manifest,
                    row.text_id,
                    row.fingerprint,
                    row.path,
                    row.sha256,
                    row.duration,
                    row.assembled_at,
                    row.size,
                    row.mtime_ns,
                ),
            )
