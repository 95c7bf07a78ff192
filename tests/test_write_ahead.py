"""Paid requests are written ahead durably, in groups: requests ready to leave together share
one commit, none returns before the commit that holds it, and a failed or cancelled group
never lets a member through unrecorded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from runner.plan import Segment
from runner.store import DB_NAME, SegmentState, Store
from runner.write_ahead import WriteAhead

pytestmark = pytest.mark.anyio


def _keys(store: Store, n: int) -> list[str]:
    segments = [Segment(f"{i:064x}", "paid", "ttsai", f"text {i}", {}, "mp3") for i in range(n)]
    store.add_segments(segments)
    return [s.key for s in segments]


def _state_seen_by_another_connection(directory: Path, key: str) -> str:
    with sqlite3.connect(directory / DB_NAME) as other:
        row = other.execute("SELECT state FROM segments WHERE key = ?", (key,)).fetchone()
    return str(row[0])


async def test_requests_ready_together_share_one_commit_and_wait_for_it(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        keys = _keys(store, 40)
        ahead = WriteAhead(store)
        seen: dict[str, str] = {}

        async def send(key: str) -> None:
            await ahead.begin(key, f"req-{key[-4:]}", durable=True)
            # the moment the request may leave: its record is committed (another connection
            # sees it), never before
            seen[key] = _state_seen_by_another_connection(tmp_path, key)

        async with anyio.create_task_group() as tg:
            for key in keys[:20]:
                tg.start_soon(send, key)
        assert (ahead.commits, ahead.requests) == (1, 20)
        for key in keys[20:]:  # one at a time: one commit each
            await send(key)
        assert (ahead.commits, ahead.requests) == (21, 40)
        assert set(seen.values()) == {"submitting"}
        rows = store.rows(keys)
        assert {(r.state, r.attempts) for r in rows.values()} == {(SegmentState.SUBMITTING, 1)}
        assert rows[keys[7]].request_id == f"req-{keys[7][-4:]}"


async def test_a_cancelled_leader_still_commits_its_group(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        keys = _keys(store, 5)
        ahead = WriteAhead(store)
        through: list[str] = []

        async def send(key: str) -> None:
            await ahead.begin(key, "r", durable=True)
            through.append(key)

        async def first() -> None:
            with anyio.CancelScope() as scope:
                scope.cancel()  # delivered at its first checkpoint: in the group it opens
                await send(keys[0])

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            for key in keys[1:]:
                tg.start_soon(send, key)
        assert through == keys[1:]  # the others went on, after the commit
        assert ahead.commits == 1
        states = store.states(keys)
        assert set(states.values()) == {SegmentState.SUBMITTING}


async def test_a_failed_commit_stops_every_member_of_its_group(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        keys = _keys(store, 6)
        ahead = WriteAhead(store)
        store._db.execute("PRAGMA busy_timeout = 50")  # give up quickly on a locked database
        through: list[str] = []
        refused: list[str] = []

        async def send(key: str) -> None:
            try:
                await ahead.begin(key, "r", durable=True)
            except sqlite3.OperationalError:
                refused.append(key)
                return
            through.append(key)

        with sqlite3.connect(tmp_path / DB_NAME, isolation_level=None) as other:
            other.execute("BEGIN IMMEDIATE")  # another writer holds the database
            async with anyio.create_task_group() as tg:
                for key in keys:
                    tg.start_soon(send, key)
            other.execute("ROLLBACK")
        assert through == []
        assert sorted(refused) == sorted(keys)
        assert set(store.states(keys).values()) == {SegmentState.PENDING}
