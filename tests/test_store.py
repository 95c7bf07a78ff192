"""The state database: transitions, migrations, integrity, and the run lock."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from support import tts_runner

from runner.errors import StateCorrupt, StateLocked, StateTooNew
from runner.lock import RunLock
from runner.migrations import SCHEMA_VERSION
from runner.plan import Segment
from runner.store import ChapterRow, SegmentState, Store


def _segment(i: int, account: str = "acct") -> Segment:
    return Segment(f"{i:064x}", account, "local", f"text {i}", {}, "wav")


def test_segments_walk_the_state_machine(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        assert store.add_segments([_segment(1), _segment(2)]) == 2
        assert store.add_segments([_segment(1), _segment(3)]) == 1  # known ones are kept as is
        key = _segment(1).key
        store.begin_submit(key, "req-1")
        row = store.get(key)
        assert row is not None
        assert (row.state, row.request_id, row.attempts) == (SegmentState.SUBMITTING, "req-1", 1)
        store.mark_submitted(key, "task-9")
        store.mark_ready(key, "http://x/a.wav", 123.0)
        store.mark_done(
            key, path="cache/a.wav", sha256="ab", duration=1.5, sample_rate=22050, cost=2.0
        )
        row = store.get(key)
        assert row is not None
        assert (row.state, row.task_id, row.url, row.path, row.cost) == (
            SegmentState.DONE,
            "task-9",
            "http://x/a.wav",
            "cache/a.wav",
            2.0,
        )
        store.mark_failed(_segment(2).key, "bad voice")
        counts = store.counts()
        assert counts[SegmentState.DONE] == 1
        assert counts[SegmentState.FAILED] == 1
        assert counts[SegmentState.PENDING] == 1
        assert store.retry_failed() == 1
        assert store.counts()[SegmentState.PENDING] == 2


def test_pending_rows_as_written_are_the_rows_read_back(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.add_segments([_segment(2)])
        fresh = store.add_pending([_segment(i) for i in range(5)])  # 2 was known already
        assert fresh == store.rows(_segment(i).key for i in range(5))
        written = store.add_pending([_segment(i) for i in range(5, 9)])
        assert written == store.rows(_segment(i).key for i in range(5, 9))
        assert {r.state for r in written.values()} == {SegmentState.PENDING}


def test_rows_reads_any_number_of_keys(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.add_segments(_segment(i) for i in range(1234))
        rows = store.rows(_segment(i).key for i in range(1300))
        assert len(rows) == 1234
        assert rows[_segment(1000).key].text == "text 1000"


@pytest.mark.parametrize("wanted", [range(30), range(2600), range(500, 3700)])
def test_reads_of_few_keys_and_of_most_of_the_table_agree(tmp_path: Path, wanted: range) -> None:
    """A read of a large share of the table scans it, a small one looks keys up: the same
    rows either way, only those asked for (the state may hold other manifests' segments too,
    and keys it has never seen are left out)."""
    with Store.open(tmp_path) as store:
        store.add_segments(_segment(i, "paid" if i % 2 else "free") for i in range(3000))

        def path(i: int) -> str:  # the cache's usual place, or another (an older layout)
            key = _segment(i).key
            return f"cache/{key[:2]}/{key}.wav" if i % 2 else f"cache/{i}.wav"

        for i in range(0, 3000, 3):
            store.mark_done(
                _segment(i).key,
                path=path(i),
                sha256=f"{i:x}",
                duration=i / 10,
                sample_rate=24000,
                cost=1.5 if i % 2 else None,
            )
        store.mark_failed(_segment(7).key, "bad voice")
        keys = [_segment(i).key for i in wanted]
        known = [i for i in wanted if i < 3000]
        rows = store.rows(keys)
        assert sorted(rows) == sorted(_segment(i).key for i in known)
        assert all(rows[_segment(i).key].text == f"text {i}" for i in known)
        states = store.states(keys)
        assert states == {k: row.state for k, row in rows.items()}
        assert store.state_counts(keys) == Counter(states.values())
        audio = store.audio(keys)
        assert sorted(audio) == sorted(_segment(i).key for i in known if i % 3 == 0)
        for i in (i for i in known if i % 3 == 0):
            found = audio[_segment(i).key]
            assert (found.path, found.sha256, found.sample_rate, found.duration) == (
                path(i),
                f"{i:x}",
                24000,
                i / 10,
            )
            assert (found.folder, found.name) == tuple(path(i).rsplit("/", 1))
            # the usual place is held as the key and one shared suffix, not a path of its own
            assert found.stored == (".wav" if i % 2 else path(i))
        suffixes = {id(a.stored) for a in audio.values() if a.stored == ".wav"}
        assert len(suffixes) == (1 if any(i % 3 == 0 and i % 2 for i in known) else 0)
        paid = sum(1.5 for i in known if i % 3 == 0 and i % 2)
        assert store.costs(keys) == ({"paid": paid} if paid else {})


def test_state_survives_reopening_and_migrations_run_once(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.add_segments([_segment(7)])
        store.save_chapter(ChapterRow("m.yaml", "ch1", "fp", "/o/ch1.wav", "sha", 3.0, 1.0))
    with Store.open(tmp_path) as store:
        assert store.get(_segment(7).key) is not None
        chapter = store.chapter("m.yaml", "ch1")
        assert chapter is not None
        assert chapter.fingerprint == "fp"
    db = sqlite3.connect(tmp_path / "state.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_a_damaged_database_is_refused_never_recreated(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not an SQLite database at all" * 100)
    before = path.read_bytes()
    with pytest.raises(StateCorrupt) as caught:
        Store.open(tmp_path)
    assert str(path) in str(caught.value)
    assert "mv " in str(caught.value)
    assert path.read_bytes() == before


def test_the_cli_refuses_a_damaged_database_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("texts: [Hello.]\n")
    state = tmp_path / ".tts-runner"
    state.mkdir()
    (state / "state.db").write_bytes(b"\x00garbage" * 512)
    done = tts_runner("run", "m.yaml", "--json-log", cwd=tmp_path)
    assert done.code == 2
    assert "state.db is damaged" in done.stderr
    assert not (tmp_path / "out").exists()
    assert (state / "state.db").read_bytes() == b"\x00garbage" * 512


def test_a_database_from_a_newer_runner_is_refused(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StateTooNew, match=r"Upgrade tts-runner"):
        Store.open(tmp_path)


def test_the_run_lock_names_its_holder_and_is_released(tmp_path: Path) -> None:
    with RunLock(tmp_path) as held:
        assert "held=True" in repr(held)
        with pytest.raises(StateLocked) as caught:
            RunLock(tmp_path).acquire()
        assert "pid " in str(caught.value)
        assert "another --state" in str(caught.value)
    with RunLock(tmp_path):
        pass
