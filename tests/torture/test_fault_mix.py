"""Faults on every provider at once, no kills (issue 6, item 5, second bullet).

10 % 500s, 5 % 429s with Retry-After, 2 % dropped connections, 2 % truncated bodies (half with a
Content-Length that promises more, half close-delimited: a short 200), 1 % corrupt audio (a
garbage header, or a valid header over noise), 1 % replies slower than the client's timeout,
and for TTS.ai 2 % 503 model_loading; on top of the random draws, every kind is queued once
per provider so that each is certainly met. The runner, a real subprocess, must finish the book
(resuming if a segment outlasted its retries), and then:

- the chapters are byte-identical to a run of the same book against a sandbox without faults
  (so no damaged audio reached a chapter), and every cached file matches its checksum;
- nothing was paid twice, apart from results a fault kept from the runner (those are lost by
  the provider's doing and must be requested again); IndexTTS never twice;
- retries are bounded (per segment) and reported in the JSON log;
- no request deviated from the documented APIs.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import (
    Book,
    Children,
    RunLog,
    SandboxProcess,
    check_history,
    done_segments,
    outputs,
    sandbox_config,
    start_run,
    undisturbed,
)

RATES = {
    "http_500": 0.10,
    "rate_limit_429": 0.05,
    "drop": 0.02,
    "truncate_with_length": 0.01,
    "truncate_no_length": 0.01,
    "corrupt_header": 0.005,
    "corrupt_samples": 0.005,
    "slow": 0.01,
}
#: Every kind once per provider, whatever the random draws do.
QUEUED = (
    "drop",
    "http_500",
    "truncate_no_length",
    "rate_limit_429",
    "corrupt_samples",
    "truncate_with_length",
    "corrupt_header",
    "slow",
)
#: The client's timeout (manifest `timeout:`) and the sandbox's slow replies, which outlast it.
TIMEOUT, SLOW_SECONDS = 2, 3.0
#: Tries of one segment in one run: transient attempts (RetryPolicy) × results verified.
ATTEMPTS_PER_RUN = 4 * 3
MAX_RUNS = 3


@pytest.fixture
def children() -> Iterator[Children]:
    reaper = Children()
    yield reaper
    reaper.reap()


@pytest.mark.timeout(170)
def test_every_fault_on_every_provider_at_once_completes_with_intact_audio_paid_once(
    tmp_path: Path, children: Children
) -> None:
    seed = int(os.environ.get("TORTURE_SEED", 77))
    chapters, per_chapter = 5, 8
    started = time.monotonic()
    reference, reference_segments, _ = undisturbed(
        tmp_path / "reference", chapters, per_chapter, sandbox_config(seed=seed), timeout=60
    )
    config = sandbox_config(seed=seed, faults=RATES, slow_seconds=SLOW_SECONDS)
    with SandboxProcess(tmp_path / "faulty" / "sandbox", config) as box:
        box.set_faults("ttsai", rates={**RATES, "model_loading_503": 0.02})
        for provider in ("ttsai", "voxcpm", "fish_yuntts", "fishaudio_net", "indextts"):
            box.set_faults(provider, enqueue=[{"kind": kind} for kind in QUEUED])
        box.set_faults("ttsai", enqueue=[{"kind": "model_loading_503"}])
        book = Book(
            tmp_path / "faulty" / "book",
            box.urls,
            chapters,
            per_chapter,
            account_options=f"timeout: {TIMEOUT}",
        )
        book.write()
        segments = book.segments()
        runs: list[RunLog] = []
        while len(runs) < MAX_RUNS:
            run = children.add(start_run(book.manifest, book.directory, len(runs) + 1))
            runs.append(run)
            code = run.wait(timeout=120)
            assert code in (0, 3), f"run {run.number} exited {code}: {run.log.read_text()[-3000:]}"
            if code == 0:
                break
        ledger = box.ledger()
        deviations = box.deviations()
    verdict = check_history(runs, ledger, segments)
    where = f"seed={seed}: {verdict.line()}"
    summaries = [e for run in runs for e in run.events("summary")]
    print(f"\n[faults] {where}")
    print(f"[faults] runs: {[r.exit_code for r in runs]}, {time.monotonic() - started:.1f} s")
    for summary in summaries:
        accounts = summary.get("accounts", {})
        print(f"[faults] retries by account: { ({a: s['retries'] for a, s in accounts.items()}) }")

    assert runs[-1].exit_code == 0, f"{where}: not done after {MAX_RUNS} runs"
    assert deviations == [], f"{where}\n{deviations[:5]}"
    assert verdict.unmatched == [], f"{where}: paid texts of no segment {verdict.unmatched[:3]}"

    # Every kind was injected on every provider (corrupt audio only where audio is served).
    injected = Counter((e["provider"], e["fault"]) for e in ledger if e["fault"])
    missing = [
        (p, k)
        for p in ("ttsai", "voxcpm", "fish_yuntts", "fishaudio_net", "indextts")
        for k in QUEUED
        if injected[(p, k)] == 0
    ]
    assert missing == [], f"{where}: never injected {missing}"
    assert injected[("ttsai", "model_loading_503")] > 0, where

    # No damaged audio anywhere: the cache is intact, the chapters are the fault-free ones.
    state = book.directory / ".tts-runner"
    done = done_segments(state)
    assert set(done) == set(segments), f"{where}: {len(set(segments) - set(done))} not done"
    for sha, path in done.values():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha, f"{where}: {path}"
    assert {k: sha for k, (sha, _) in done.items()} == reference_segments, where
    assert outputs(book.directory) == reference, where

    # Paid once (results lost to a fault aside), retries bounded per segment and reported.
    assert verdict.problems == [], f"{where}\n" + "\n".join(verdict.problems)
    # Each try of a synthesis request is logged as a `request` as it leaves.
    tries = Counter(key for run in runs for key in run.keys("request"))
    assert set(tries) == set(segments), where
    assert max(tries.values()) <= ATTEMPTS_PER_RUN * len(runs), (where, tries.most_common(3))
    everything = [e for e in ledger if e["operation"] == "synthesize"]
    assert sum(verdict.retries.values()) > 0, where
    reported = sum(
        sum(s["retries"].values())
        for summary in summaries
        for s in summary.get("accounts", {}).values()
    )
    assert reported > 0, f"{where}: the summaries report no retries"
    assert len(everything) > len(segments), where
