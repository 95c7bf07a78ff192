"""kill -9 at random moments, Jepsen-style (design.md invariants 1–4; issue 6, item 5).

The runner runs as a real subprocess against a sandbox served by another process (`tts-runner
sandbox`), so killing the runner loses nothing on the provider's side: the sandbox's ledger
records every request and payment across all the runs. The runner is SIGKILLed at moments drawn
from a seeded RNG, resumed after each kill, and finally left to finish. The checker then
demands:

- every segment done, and every chapter byte-identical to an undisturbed run of the same book
  against a fresh sandbox (so both the runner and the sandbox's audio must be deterministic);
- every cached segment's audio identical to the undisturbed run's, and intact on disk;
- no IndexTTS task paid twice (a created task can always be found again), and no synchronous
  segment paid more often than once plus the re-requests the runs' JSON logs list (`re_request`
  events, and `request`s of segments in flight when a run was killed);
- every paid result either delivered intact and kept, or listed as re-requested;
- not one request that deviates from the documented APIs.

Seeds: TORTURE_SEED overrides the default of each test; the seed is printed (`-s` shows it)
and named in every failure message.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import (
    Book,
    Children,
    KillPlan,
    SandboxProcess,
    check_history,
    done_segments,
    outputs,
    read_events,
    run_with_kills,
    sandbox_config,
    sentence,
    start_run,
    undisturbed,
)


@pytest.fixture
def children() -> Iterator[Children]:
    reaper = Children()
    yield reaper
    reaper.reap()


def _seed(default: int) -> int:
    return int(os.environ.get("TORTURE_SEED", default))


def torture(
    tmp_path: Path,
    children: Children,
    *,
    seed: int,
    kills: int,
    chapters: int,
    per_chapter: int,
    run_timeout: float,
) -> None:
    started = time.monotonic()
    config = sandbox_config(seed=seed)
    reference, reference_segments, _ = undisturbed(
        tmp_path / "reference", chapters, per_chapter, config, timeout=run_timeout
    )
    reference_seconds = time.monotonic() - started
    with SandboxProcess(tmp_path / "torture" / "sandbox", config) as box:
        book = Book(tmp_path / "torture" / "book", box.urls, chapters, per_chapter)
        book.write()
        segments = book.segments()
        runs = run_with_kills(
            book,
            KillPlan(seed, kills),
            children,
            segments=len(segments),
            max_runs=3 * kills + 10,
            run_timeout=run_timeout,
        )
        ledger = box.ledger()
        deviations = box.deviations()
    verdict = check_history(runs, ledger, segments)
    where = f"seed={seed}: {verdict.line()}"
    print(f"\n[torture] {where}")
    print(f"[torture] kills at: {[r.kill_trigger for r in runs if r.killed]}")
    print(
        f"[torture] {len(segments)} segments, reference run {reference_seconds:.1f} s, "
        f"whole test {time.monotonic() - started:.1f} s"
    )

    assert verdict.kills == kills, where
    assert deviations == [], f"{where}\n{deviations[:5]}"
    assert verdict.unmatched == [], f"{where}: paid texts of no segment {verdict.unmatched[:3]}"

    state = book.directory / ".tts-runner"
    done = done_segments(state)
    assert set(done) == set(segments), f"{where}: {len(set(segments) - set(done))} not done"
    for sha, path in done.values():  # the cache holds exactly what the state says, intact
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha, f"{where}: {path}"
    different = sorted(k for k in segments if done[k][0] != reference_segments.get(k))
    assert different == [], (
        f"{where}: {len(different)} segments' audio differs from the undisturbed run's, e.g. "
        f"{[(k[:12], segments[k].kind) for k in different[:5]]}"
    )
    assert outputs(book.directory) == reference, where
    assert len(reference) == chapters
    index = json.loads((book.directory / "out" / "index.json").read_text())
    assert all(c["complete"] for c in index["chapters"]), where

    assert verdict.problems == [], f"{where}\n" + "\n".join(verdict.problems)


@pytest.mark.timeout(150)
def test_five_kills_over_forty_segments_lose_nothing_and_pay_nothing_twice(
    tmp_path: Path, children: Children
) -> None:
    torture(
        tmp_path,
        children,
        seed=_seed(20240601),
        kills=5,
        chapters=5,
        per_chapter=8,
        run_timeout=60,
    )


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_forty_kills_over_two_hundred_segments_lose_nothing_and_pay_nothing_twice(
    tmp_path: Path, children: Children
) -> None:
    torture(
        tmp_path,
        children,
        seed=_seed(6),
        kills=40,
        chapters=20,
        per_chapter=10,
        run_timeout=300,
    )


def _local_book(directory: Path) -> Path:
    directory.mkdir(parents=True)
    texts = [f"  - {{id: c{i}, text: {json.dumps(sentence(i))}}}" for i in range(8)]
    (directory / "book.yaml").write_text("name: local\ntexts:\n" + "\n".join(texts) + "\n")
    return directory / "book.yaml"


@pytest.mark.timeout(120)
def test_the_embedded_engine_resumed_after_kill_9_gives_the_undisturbed_bytes(
    tmp_path: Path, children: Children
) -> None:
    """Invariant 3 for the engine that needs no provider: kill -9 after two segments, resume,
    and the chapters must be the bytes an undisturbed run writes."""
    reference = _local_book(tmp_path / "reference")
    run = children.add(start_run(reference, reference.parent, 1))
    assert run.wait(60) == 0, run.log.read_text()[-2000:]

    book = _local_book(tmp_path / "killed")
    killed = children.add(start_run(book, book.parent, 1))
    deadline = time.monotonic() + 60
    while len(read_events(killed.log, "segment_done")) < 2:
        assert killed.proc.poll() is None, killed.log.read_text()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    killed.proc.send_signal(signal.SIGKILL)
    assert killed.wait(10) == -signal.SIGKILL
    resumed = children.add(start_run(book, book.parent, 2))
    assert resumed.wait(60) == 0, resumed.log.read_text()[-2000:]

    expected, got = outputs(reference.parent), outputs(book.parent)
    assert len(expected) == 8
    differ = sorted(name for name in expected if got.get(name) != expected[name])
    assert differ == [], f"chapters differ from the undisturbed run's: {differ}"
