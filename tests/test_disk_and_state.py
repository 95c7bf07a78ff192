"""A full disk and a damaged state database (issue 6, item 3).

- A disk that fills up mid-run (a tiny tmpfs in a private mount namespace, so the test needs no
  cleanup and runs without root where user namespaces are allowed): the run stops with exit 3
  and a clear message, the state database is intact and keeps every segment finished before,
  and after space is freed the same command finishes without synthesising those again.
- A file-size limit (RLIMIT_FSIZE: `ulimit -f`, systemd's LimitFSIZE) makes writes fail with
  EFBIG: it must be reported as clearly as a full disk, with the state intact.
- A state database damaged in its pages, or cut short, is refused (exit 2) with a message that
  names the file and how to recover; the file is left exactly as it was; following the advice
  (moving it aside) recovers every finished segment from the cache without paying again.

The runs use the embedded engine: no provider, no network.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO, Completed, english_prose, tts_runner

CHAPTERS = 12


def _book(directory: Path) -> Path:
    """Twelve one-segment chapters of the embedded engine, short ones (one sentence, ~150 KB of
    audio) and long ones (seven sentences, ~1 MB) in turn."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["name: disk", "texts:"]
    for i in range(CHAPTERS):
        text = english_prose(1 if i % 2 == 0 else 7, seed=i * 7).strip()
        lines.append(f"  - {{id: c{i:02d}, text: {json.dumps(text)}}}")
    (directory / "book.yaml").write_text("\n".join(lines) + "\n")
    return directory / "book.yaml"


def _env(directory: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TTS_RUNNER_HOME": str(directory / "home"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }


def _events(stderr: str, kind: str) -> list[dict[str, object]]:
    return Completed(0, "", stderr).events(kind)


def _integrity(state: Path) -> str:
    db = sqlite3.connect(f"file:{state / 'state.db'}?mode=ro", uri=True)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def _done(state: Path) -> dict[str, tuple[str, str]]:
    db = sqlite3.connect(f"file:{state / 'state.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT key, sha256, path FROM segments WHERE state = 'done'")
        return {str(k): (str(sha), str(path)) for k, sha, path in rows.fetchall()}
    finally:
        db.close()


def _assert_intact(state: Path) -> dict[str, tuple[str, str]]:
    """The state database passes its integrity check, and every segment it calls done has its
    audio in the cache, byte for byte."""
    assert _integrity(state) == "ok"
    done = _done(state)
    for sha, path in done.values():
        assert hashlib.sha256((state / path).read_bytes()).hexdigest() == sha, path
    return done


def _assert_clear_disk_message(done: subprocess.CompletedProcess[str], state: Path) -> None:
    assert done.returncode == 3, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("tts-runner: "), last
    assert str(state) in last, last
    assert "run again" in last, last


# -- a full disk --------------------------------------------------------------------------


def _namespace_prefix() -> list[str] | None:
    """How to get a private mount namespace here: as root, or as a mapped root in a user
    namespace; None when neither is allowed."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare", "--mount"], ["unshare", "--user", "--map-root-user", "--mount"]):
        probe = subprocess.run(
            [*prefix, "sh", "-c", "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return prefix
    return None


def _run_on_tiny_disk(
    book: Path, state: Path, copy: Path, size: str
) -> subprocess.CompletedProcess[str]:
    """`run` with its state directory on a `size` tmpfs that only this process sees; the
    state directory is copied to `copy` when the run has ended."""
    prefix = _namespace_prefix()
    if prefix is None:
        pytest.skip("no mount namespace (unshare) allowed here: a full disk cannot be simulated")
    state.mkdir()
    copy.mkdir()
    script = (
        'mount -t tmpfs -o size="$1" tmpfs "$2" || exit 99; '
        '"$3" -m runner run "$4" --state "$2" --json-log; code=$?; '
        'cp -a "$2"/. "$5"/; exit $code'
    )
    return subprocess.run(
        [*prefix, "sh", "-c", script, "sh", size, state, sys.executable, book.name, copy],
        cwd=book.parent,
        env=_env(book.parent),
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


@pytest.mark.timeout(150)
def test_a_full_disk_stops_the_run_clearly_with_exit_3_and_the_state_intact(
    tmp_path: Path,
) -> None:
    book = _book(tmp_path / "book")
    state, copy = tmp_path / "tiny", tmp_path / "state-after"
    full = _run_on_tiny_disk(book, state, copy, size="1m")
    assert full.returncode != 99, full.stderr
    assert "no space left" in full.stderr, full.stderr[-3000:]
    _assert_clear_disk_message(full, state)

    finished = _assert_intact(copy)
    assert 0 < len(finished) < CHAPTERS, len(finished)  # the disk filled up part of the way
    # Space freed (the state moved to a roomy disk): the same run finishes and synthesises
    # only what was not finished before.
    resumed = tts_runner("run", book.name, "--state", copy, "--json-log", cwd=book.parent)
    assert resumed.code == 0, resumed.stderr[-3000:]
    requested = {e["key"] for e in resumed.events("request")}
    assert requested.isdisjoint(finished)
    assert len(_assert_intact(copy)) == CHAPTERS
    assert len(list((book.parent / "out").glob("*.wav"))) == CHAPTERS


def _limit_file_size(limit: int) -> None:
    # Ignored, SIGXFSZ no longer kills the writer: its write fails with EFBIG instead.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.timeout(120)
def test_a_file_size_limit_is_reported_like_a_full_disk_with_the_state_intact(
    tmp_path: Path,
) -> None:
    book = _book(tmp_path / "book")
    state = tmp_path / "state"
    # Large enough for the state database and the short segments' audio, not the long ones'.
    limit = 400_000
    done = subprocess.run(
        [sys.executable, "-m", "runner", "run", book.name, "--state", str(state), "--json-log"],
        cwd=book.parent,
        env=_env(book.parent),
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
        preexec_fn=lambda: _limit_file_size(limit),
    )
    assert _events(done.stderr, "segment_done"), done.stderr[-3000:]  # short ones fitted
    _assert_clear_disk_message(done, state)
    finished = _assert_intact(state)
    assert 0 < len(finished) < CHAPTERS
    resumed = tts_runner("run", book.name, "--state", state, "--json-log", cwd=book.parent)
    assert resumed.code == 0, resumed.stderr[-3000:]
    assert {e["key"] for e in resumed.events("request")}.isdisjoint(finished)


# -- a damaged state database ---------------------------------------------------------------


@pytest.fixture
def finished_book(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A book run to the end: its manifest and the sha256 of its chapters."""
    book = _book(tmp_path / "book")
    done = tts_runner("run", book.name, "--json-log", cwd=book.parent)
    assert done.code == 0, done.stderr[-3000:]
    return book, _chapters(book)


def _chapters(book: Path) -> dict[str, str]:
    out = book.parent / "out"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.wav"))}


def _damage_pages(path: Path) -> None:
    """Bit rot: garbage over the pages after the first (the header page stays valid)."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    assert len(data) >= 4 * page, len(data)
    for start in range(page, len(data), 2 * page):
        data[start + 8 : start + page // 2] = bytes(
            (i * 37 + 11) % 256 for i in range(page // 2 - 8)
        )
    path.write_bytes(bytes(data))


def _refused(book: Path, db: Path, before: bytes, chapters: dict[str, str]) -> str:
    """Run `run` and `status` on the damaged state: both refuse it the same clear way."""
    for args in (("run", book.name, "--json-log"), ("status", book.name)):
        done = tts_runner(*args, cwd=book.parent)
        assert done.code == 2, (args, done.stderr[-3000:])
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        assert str(db) in done.stderr, done.stderr
        assert "damaged" in done.stderr, done.stderr
        assert f"mv {db} {db}.damaged" in done.stderr, done.stderr
        assert "run again" in done.stderr, done.stderr
        assert done.events("request") == []
    assert db.read_bytes() == before  # never "repaired" or recreated behind the user's back
    assert _chapters(book) == chapters  # nothing was written
    return done.stderr


def _follow_the_advice(book: Path, message: str, chapters: dict[str, str]) -> None:
    """Do what the message says (mv), run again: every segment comes back from the cache."""
    match = re.search(r"\(mv (\S+) (\S+)\)", message)
    assert match, message
    Path(match.group(1)).rename(match.group(2))
    again = tts_runner("run", book.name, "--json-log", cwd=book.parent)
    assert again.code == 0, again.stderr[-3000:]
    assert again.events("request") == []  # nothing paid for again
    (plan,) = again.events("plan")
    assert plan["recovered"] == CHAPTERS, plan
    assert _chapters(book) == chapters


@pytest.mark.timeout(120)
def test_a_state_database_damaged_in_its_pages_is_refused_with_the_way_out(
    finished_book: tuple[Path, dict[str, str]],
) -> None:
    book, chapters = finished_book
    db = book.parent / ".tts-runner" / "state.db"
    assert not db.with_name("state.db-wal").exists()  # checkpointed at the end of the run
    _damage_pages(db)
    message = _refused(book, db, db.read_bytes(), chapters)
    _follow_the_advice(book, message, chapters)


@pytest.mark.timeout(120)
def test_a_state_database_cut_short_is_refused_with_the_way_out(
    finished_book: tuple[Path, dict[str, str]],
) -> None:
    book, chapters = finished_book
    db = book.parent / ".tts-runner" / "state.db"
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2 + 100])
    message = _refused(book, db, db.read_bytes(), chapters)
    _follow_the_advice(book, message, chapters)
