"""Stopping a run in every way it can be stopped, then resuming: kill -9, SIGTERM, --deadline,
and a second run on the same state directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from support import english_prose, json_events, start_runner, tts_runner, wait_for_events

TEXTS = 20


@pytest.fixture
def book(tmp_path: Path) -> Path:
    """A book long enough (~50k characters, a few seconds of synthesis) to interrupt."""
    chapters = tmp_path / "chapters"
    chapters.mkdir()
    for i in range(TEXTS):
        (chapters / f"{i:02d}.txt").write_text(english_prose(55, seed=i * 55))
    (tmp_path / "book.yaml").write_text("name: long-book\ntexts:\n  - glob: chapters/*.txt\n")
    return tmp_path / "book.yaml"


def _start(manifest: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return start_runner("run", manifest.name, "--json-log", *extra, cwd=manifest.parent, log=log)


def _events(log: Path, kind: str) -> list[dict[str, object]]:
    return json_events(log.read_text(errors="replace"), kind)


def _outputs(manifest: Path) -> dict[str, str]:
    out = manifest.parent / "out"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.wav"))}


def test_kill_9_then_resume_completes_without_synthesising_anything_twice(
    book: Path, tmp_path: Path
) -> None:
    logs = []
    for kill_after in (8, 30):
        log = tmp_path / f"killed-{kill_after}.log"
        proc = _start(book, log)
        wait_for_events(log, "segment_done", kill_after, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        logs.append(log)
    final = tts_runner("run", book.name, "--json-log", cwd=book.parent)
    assert final.code == 0, final.stderr

    plan = json.loads(tts_runner("plan", book.name, "--json", cwd=book.parent).stdout)
    assert plan["cached"] == plan["unique_segments"]
    per_run = [[e["key"] for e in _events(log, "request")] for log in logs]
    per_run.append([e["key"] for e in final.events("request")])
    requests = Counter(key for run in per_run for key in run)
    index = json.loads((book.parent / "out" / "index.json").read_text())
    assert set(requests) == {key for c in index["chapters"] for key in c["segments"]}
    twice = {key for key, n in requests.items() if n > 1}
    # A segment may be requested again only if a kill hit it in flight: requested by a killed
    # run that never logged it done.
    in_flight_at_kill = set()
    for log, run in zip(logs, per_run, strict=False):
        done = {e["key"] for e in _events(log, "segment_done")}
        in_flight_at_kill |= set(run) - done
    assert len(in_flight_at_kill) <= 2 * len(logs)  # one worker and its spare per account
    assert twice <= in_flight_at_kill
    assert all(requests[key] <= 2 for key in requests)
    assert len(requests) == plan["unique_segments"]
    assert len(index["chapters"]) == TEXTS
    assert all(c["complete"] for c in index["chapters"])


def test_sigterm_stops_cleanly_and_resumes(book: Path, tmp_path: Path) -> None:
    log = tmp_path / "term.log"
    proc = _start(book, log)
    wait_for_events(log, "segment_done", 5, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 3
    (summary,) = _events(log, "summary")
    assert summary["stopped"] == "stopped by SIGTERM"
    assert summary["remaining"] > 0
    status = json.loads(tts_runner("status", book.name, "--json", cwd=book.parent).stdout)
    assert status["counts"]["submitting"] == 0  # in-flight work finished and was recorded
    assert status["counts"]["done"] == len(_events(log, "segment_done"))
    again = tts_runner("run", book.name, "--json-log", cwd=book.parent)
    assert again.code == 0
    assert len(again.events("request")) == summary["remaining"]


def test_deadline_stops_with_exit_3_and_the_next_run_finishes(book: Path) -> None:
    first = tts_runner("run", book.name, "--json-log", "--deadline", "1s", cwd=book.parent)
    assert first.code == 3, first.stderr
    assert "deadline" in first.stdout
    (summary,) = first.events("summary")
    assert 0 < summary["remaining"] < first.events("plan")[0]["segments"]
    second = tts_runner("run", book.name, "--json-log", cwd=book.parent)
    assert second.code == 0
    assert len(second.events("request")) == summary["remaining"]


def test_second_run_on_the_same_state_exits_4_at_once(book: Path, tmp_path: Path) -> None:
    log = tmp_path / "first.log"
    first = _start(book, log)
    try:
        wait_for_events(log, "segment_done", 1, first)
        before = _outputs(book)
        second = tts_runner("run", book.name, "--json-log", cwd=book.parent)
        assert second.code == 4
        assert f"pid {first.pid}" in second.stderr
        assert first.poll() is None  # it did not wait for the first run to end
        assert _outputs(book) == before
        assert second.events("request") == []
    finally:
        first.kill()


def test_lock_of_a_killed_run_is_taken_over(book: Path, tmp_path: Path) -> None:
    log = tmp_path / "killed.log"
    proc = _start(book, log)
    wait_for_events(log, "segment_done", 1, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    again = tts_runner("run", book.name, "--json-log", "--deadline", "0.5s", cwd=book.parent)
    assert again.code in (0, 3), again.stderr
    assert again.events("plan")
