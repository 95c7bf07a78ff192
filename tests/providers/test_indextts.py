"""IndexTTS end to end against its emulator: tasks, polling, downloads, models, emotion
references, errors, faults, expiry and reconciliation — and never paying twice."""

from __future__ import annotations

import dataclasses
import math
import sqlite3
import statistics
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runner.errors import OutOfCredit, PermanentError, RateLimited, TransientError, Unauthorized
from runner.providers.indextts import IndexTTSProvider, NotFoundPage
from runner.sandbox import AccountConfig, Sandbox, SandboxConfig
from runner.sandbox.config import IndexTTSConfig, RateLimit
from runner.store import SegmentState, Store
from runner.task_lane import TaskPolicy

from .conftest import ContextFactory
from .runs import InProcessRun, run_in_process

SIGN = "index-sign-7f3a9c2e11"
ENV = {"INDEX_API_SIGN": SIGN}
VOICE = "VoiceAbc123"
# Behaviour, not pacing, is under test here: a fast plan keeps each run under a second.
LIMITS = "limits: {requests: 400, per_seconds: 1, concurrent: 8}"


def _config(**overrides: object) -> SandboxConfig:
    settings: dict[str, object] = {
        "accounts": (AccountConfig(label="acct", credentials=(SIGN,), voices=(VOICE,)),),
        "processing_base": 0.05,
        "processing_per_char": 0.0005,
    }
    settings.update(overrides)
    return SandboxConfig(indextts=IndexTTSConfig(**settings))  # type: ignore[arg-type]


@pytest.fixture
async def box() -> AsyncIterator[Sandbox]:
    async with Sandbox(_config()) as sandbox:
        yield sandbox


# The emulator takes 0.05 s + 0.5 ms per character; the runner is told so, instead of the
# product's prior of seconds, so runs take a fraction of a second.
PRIOR = (0.05, 0.0005)


async def _run(
    directory: Path, manifest: str, environ: dict[str, str], **options: Any
) -> InProcessRun:
    policy = options.pop("task_policy", TaskPolicy())
    policy = dataclasses.replace(policy, prior=PRIOR)
    return await run_in_process(directory, manifest, environ, task_policy=policy, **options)


def _manifest(url: str, texts: list[str], voice: str = "") -> str:
    voice = voice or f"{{provider: index, audio_id: {VOICE}, style: 2, speed: 1.1}}"
    lines = [
        "providers:",
        f"  index: {{kind: indextts, base_url: '{url}', {LIMITS}}}",
        "voices:",
        f"  n: {voice}",
        "texts:",
    ]
    lines += [f"  - {{id: t{i}, text: {text!r}}}" for i, text in enumerate(texts)]
    return "\n".join(lines) + "\n"


TEXTS = [
    "The lighthouse keeper climbed the stairs at dusk.",
    "灯塔守望人每天傍晚都会走上塔顶。",
    "A small boat found its way home by the light.",
    "第二天早上，渔夫们提着鲜鱼来到灯塔下。",
    "The old man only smiled and said the lamp should shine.",
    "从那以后，村里的孩子们都说，海上最亮的星星住在灯塔里。",
]


def _wav(path: Path, seconds: float, freq: float = 220.0) -> Path:
    rate = 16000
    t = np.arange(int(seconds * rate)) / rate
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.sin(2 * math.pi * freq * t) * 8000).astype("<i2").tobytes())
    return path


def _creates(box: Sandbox) -> int:
    return box.ledger.creates(provider="indextts")


def _count(box: Sandbox, endpoint: str) -> int:
    return sum(1 for e in box.ledger.entries("indextts") if e.endpoint.endswith(endpoint))


@pytest.mark.anyio
async def test_a_book_of_tasks_is_submitted_polled_downloaded_and_assembled(
    box: Sandbox, tmp_path: Path
) -> None:
    run = await _run(tmp_path, _manifest(box.urls["indextts"], TEXTS), ENV)
    assert run.result.exit_code == 0, run.log.records
    assert box.deviations.snapshot("indextts") == ()
    assert _creates(box) == len(TEXTS)
    assert box.ledger.paid_twice(include_lost=True) == []
    polls = [int(e["polls"]) for e in run.events("task_done")]  # type: ignore[call-overload]
    assert len(polls) == len(TEXTS)
    assert statistics.median(polls) <= 4
    for i in range(len(TEXTS)):
        with wave.open(str(tmp_path / "out" / f"t{i}.wav")) as chapter:
            assert chapter.getframerate() == 24000
            assert chapter.getnframes() > 24000 * 0.5


@pytest.mark.anyio
async def test_processing_times_learned_by_one_run_time_the_first_polls_of_the_next(
    box: Sandbox, tmp_path: Path
) -> None:
    url = box.urls["indextts"]
    prior = TaskPolicy(prior=(8.0, 0.0))  # far slower than the emulator's 0.08 s
    first = await run_in_process(tmp_path, _manifest(url, TEXTS[:3]), ENV, task_policy=prior)
    assert first.result.exit_code == 0
    unlearned = [float(e["seconds"]) for e in first.events("task_done")]  # type: ignore[arg-type]
    assert min(unlearned) > 1.75  # polled first at a quarter of the prior's 8 s, ± 10 %
    second = await run_in_process(tmp_path, _manifest(url, TEXTS), ENV, task_policy=prior)
    assert second.result.exit_code == 0
    noticed = [float(e["seconds"]) for e in second.events("task_done")]  # type: ignore[arg-type]
    # Done at the first poll, the first run only learned "under ~2 s" (midpoint ~1 s): the
    # next run starts from that, not from the prior, and keeps narrowing it. A first poll
    # timed by the prior would come no earlier than 1.8 s; the bound leaves room for a busy
    # machine to stall the loop (a durable commit) between submit and poll.
    assert len(noticed) == 3
    assert statistics.median(noticed) < 1.6, (unlearned, noticed)
    with Store.open(second.state) as store:
        assert len(store.task_times("index")) == 6


@pytest.mark.anyio
async def test_a_create_answered_done_at_once_is_downloaded_without_polling(tmp_path: Path) -> None:
    async with Sandbox(_config(instant=True)) as box:
        run = await _run(tmp_path, _manifest(box.urls["indextts"], TEXTS[:2]), ENV)
        assert run.result.exit_code == 0
        assert run.result.stats.accounts["index"].polls == 0
        assert _count(box, "/tts/result") == 0
        assert _count(box, "/file/download/{name}") == 2


@pytest.mark.anyio
async def test_a_clone_voice_creates_its_model_once_and_reuses_it_across_runs(
    box: Sandbox, tmp_path: Path
) -> None:
    _wav(tmp_path / "narrator.wav", 3.0)
    voice = "{provider: index, clone: {audio: narrator.wav, name: Narrator}, style: 2}"
    first = await _run(tmp_path, _manifest(box.urls["indextts"], TEXTS[:2], voice), ENV)
    assert first.result.exit_code == 0
    assert _count(box, "/reference/upload") == 1
    second = await _run(tmp_path, _manifest(box.urls["indextts"], TEXTS[:4], voice), ENV)
    assert second.result.exit_code == 0
    assert _count(box, "/reference/upload") == 1  # reused from the state
    assert _creates(box) == 4
    with Store.open(first.state) as store:
        (model,) = store.assets("index", "model")
    assert model.remote_id in box.indextts.models


@pytest.mark.anyio
async def test_emotion_references_are_uploaded_once_reused_and_renewed_when_expired(
    box: Sandbox, tmp_path: Path
) -> None:
    _wav(tmp_path / "joy.wav", 2.0)
    voice = f"{{provider: index, audio_id: {VOICE}, genre: 2, emotion_ref: joy.wav}}"
    url = box.urls["indextts"]
    assert (await _run(tmp_path, _manifest(url, TEXTS[:2], voice), ENV)).result.exit_code == 0
    assert _count(box, "/tts/uploadCustom") == 1
    assert (await _run(tmp_path, _manifest(url, TEXTS[:3], voice), ENV)).result.exit_code == 0
    assert _count(box, "/tts/uploadCustom") == 1

    # The service dropped it (24 h passed there) while our record still looks fresh: the
    # create is refused, the adapter uploads it again and the task goes through.
    box.clock.advance(25 * 3600)
    run = await _run(tmp_path, _manifest(url, TEXTS[:4], voice), ENV)
    assert run.result.exit_code == 0
    assert _count(box, "/tts/uploadCustom") == 2

    # Our own record says it expired: renewed before any create is refused.
    with sqlite3.connect(run.state / "state.db") as db:
        db.execute("UPDATE assets SET expires_at = 0 WHERE kind = 'emotion_ref'")
    refused = sum(1 for e in box.ledger.entries("indextts") if e.code == "7")
    run = await _run(tmp_path, _manifest(url, TEXTS[:5], voice), ENV)
    assert run.result.exit_code == 0
    assert _count(box, "/tts/uploadCustom") == 3
    assert sum(1 for e in box.ledger.entries("indextts") if e.code == "7") == refused
    assert box.deviations.snapshot("indextts") == ()


@pytest.mark.anyio
async def test_at_most_thirty_references_live_the_least_recently_used_makes_room(
    box: Sandbox, tmp_path: Path
) -> None:
    texts = [f"Sentence number {i} with its own mood." for i in range(33)]
    lines = [
        "providers:",
        f"  index: {{kind: indextts, base_url: '{box.urls['indextts']}', {LIMITS}}}",
        "voices:",
        f"  n: {{provider: index, audio_id: {VOICE}, genre: 2, emotion_ref: mood0.wav}}",
        "texts:",
    ]
    for i, text in enumerate(texts):
        _wav(tmp_path / f"mood{i}.wav", 1.0, freq=200 + 10 * i)
        lines.append(f"  - {{id: t{i}, text: {text!r}, emotion_ref: mood{i}.wav}}")
    run = await _run(tmp_path, "\n".join(lines) + "\n", ENV)
    assert run.result.exit_code == 0, run.result.stats.failures
    assert _count(box, "/tts/uploadCustom") == 33
    assert _count(box, "/tts/deleteCustom") == 3
    assert len(box.indextts.references) <= 30
    assert box.deviations.snapshot("indextts") == ()


@pytest.mark.anyio
async def test_a_dropped_create_is_found_in_the_task_list_not_paid_again(
    box: Sandbox, tmp_path: Path
) -> None:
    box.faults["indextts"].enqueue("drop", endpoint="tts/create", count=2)
    run = await _run(tmp_path, _manifest(box.urls["indextts"], TEXTS[:4]), ENV)
    assert run.result.exit_code == 0
    assert _creates(box) == 4  # the two dropped creates made tasks; they were found, not redone
    assert _count(box, "/tts/list") >= 2
    assert box.ledger.paid_twice(include_lost=True) == []


@pytest.mark.anyio
async def test_a_create_left_unsure_by_a_crash_is_reconciled_before_sending_again(
    box: Sandbox, tmp_path: Path
) -> None:
    url = box.urls["indextts"]
    first = await _run(tmp_path, _manifest(url, TEXTS[:3]), ENV)
    assert first.result.exit_code == 0
    # As if the runner died right after sending two creates: rows say `submitting`, one of the
    # tasks exists at the provider (it finished), the other never arrived.
    with sqlite3.connect(first.state / "state.db") as db:
        keys = [k for (k,) in db.execute("SELECT key FROM segments ORDER BY rowid")]
        db.execute(
            "UPDATE segments SET state = 'submitting', task_id = NULL, path = NULL, "
            "submitted_at = ? WHERE key = ?",
            (0.0, keys[0]),
        )
    for path in (first.state / "cache").rglob(f"{keys[0]}.*"):
        path.unlink()
    creates = _creates(box)
    run = await _run(tmp_path, _manifest(url, TEXTS[:3]), ENV)
    assert run.result.exit_code == 0
    assert _creates(box) == creates  # found by text and voice; nothing sent again
    assert [e["found"] for e in run.events("reconciled")] == [True]


@pytest.mark.anyio
async def test_failed_tasks_are_submitted_again_and_reported(box: Sandbox, tmp_path: Path) -> None:
    box.faults["indextts"].enqueue("task_failed", endpoint="tts/create", count=1)
    run = await _run(tmp_path, _manifest(box.urls["indextts"], TEXTS[:2]), ENV)
    assert run.result.exit_code == 0
    assert _creates(box) == 3
    assert run.result.stats.accounts["index"].re_requests == 1
    assert any("failed at the provider" in w for w in run.result.stats.warnings)


@pytest.mark.anyio
async def test_a_task_that_never_finishes_is_left_for_a_later_run(
    box: Sandbox, tmp_path: Path
) -> None:
    box.faults["indextts"].enqueue("never_finish", endpoint="tts/create", count=1)
    policy = TaskPolicy(stuck_factor=0.0, stuck_minimum=1.0)
    run = await _run(tmp_path, _manifest(box.urls["indextts"], TEXTS[:2]), ENV, task_policy=policy)
    assert run.result.exit_code == 3
    assert run.result.stats.accounts["index"].deferred == 1
    with Store.open(run.state) as store:
        states = sorted(r.state for r in store.in_state(*SegmentState))
    assert states == [SegmentState.DONE, SegmentState.SUBMITTED]  # kept: paid, not lost
    assert _creates(box) == 2


@pytest.mark.anyio
async def test_transient_faults_on_polls_and_downloads_are_retried_without_paying_again(
    box: Sandbox, tmp_path: Path
) -> None:
    faults = box.faults["indextts"]
    faults.enqueue("http_500", endpoint="tts/result", count=2)
    for kind in ("drop", "truncate_with_length", "truncate_no_length", "corrupt_header"):
        faults.enqueue(kind, endpoint="download/{name}", count=1)
    run = await _run(tmp_path, _manifest(box.urls["indextts"], TEXTS), ENV)
    assert run.result.exit_code == 0, run.result.stats.as_dict()
    assert _creates(box) == len(TEXTS)
    assert box.ledger.paid_twice(include_lost=True) == []
    stats = run.result.stats.accounts["index"]
    assert sum(stats.retries.values()) >= 5


@pytest.mark.anyio
async def test_a_result_that_expired_while_the_runner_was_away_is_paid_again_with_a_warning(
    box: Sandbox, tmp_path: Path
) -> None:
    url = box.urls["indextts"]
    # The first run gives up on the task before it finishes (as a run stopped early would).
    slow = _config(processing_base=5.0)
    box.indextts.config = slow.indextts  # type: ignore[misc]
    first = await _run(
        tmp_path,
        _manifest(url, TEXTS[:1]),
        ENV,
        task_policy=TaskPolicy(stuck_factor=0, stuck_minimum=0.3),
    )
    assert first.result.exit_code == 3
    box.indextts.config = _config().indextts  # type: ignore[misc]
    box.clock.advance(26 * 3600)  # finished long ago; its voiceUrl is gone
    second = await _run(tmp_path, _manifest(url, TEXTS[:1]), ENV)
    assert second.result.exit_code == 0
    assert _creates(box) == 2
    assert second.result.stats.accounts["index"].re_requests == 1
    (warning,) = second.result.stats.warnings
    assert "no longer serves the audio" in warning
    assert "characters" in warning


@pytest.mark.anyio
async def test_a_ready_result_past_its_expiry_is_submitted_again_without_a_download(
    box: Sandbox, tmp_path: Path
) -> None:
    url = box.urls["indextts"]
    box.faults["indextts"].enqueue("drop", endpoint="download/{name}", count=8)
    first = await _run(tmp_path, _manifest(url, TEXTS[:1]), ENV)
    assert first.result.exit_code == 3  # the download kept failing: left `ready`
    with sqlite3.connect(first.state / "state.db") as db:
        assert db.execute("SELECT state FROM segments").fetchone() == ("ready",)
        db.execute("UPDATE segments SET url_expires_at = 1.0")
    downloads = _count(box, "/file/download/{name}")
    second = await _run(tmp_path, _manifest(url, TEXTS[:1]), ENV)
    assert second.result.exit_code == 0
    assert _count(box, "/file/download/{name}") == downloads + 1  # only the new task's result
    assert any("expired before it was downloaded" in w for w in second.result.stats.warnings)
    assert any("has expired" in w for w in second.result.stats.warnings)  # said at the start


@pytest.mark.anyio
async def test_errors_reach_the_right_class_with_the_providers_message(
    box: Sandbox, make_context: ContextFactory
) -> None:
    url = box.urls["indextts"]
    bad = IndexTTSProvider(make_context("indextts", url, secret="not-the-sign"))
    with pytest.raises(Unauthorized, match="sign"):
        await bad.call("GET", "/tts/list", "list tasks")
    good = IndexTTSProvider(make_context("indextts", url, secret=SIGN))
    with pytest.raises(PermanentError, match="模型不存在"):
        await good.call(
            "POST", "/tts/create", "create task", json={"content": "x", "audioId": "nope"}
        )
    with pytest.raises(NotFoundPage):
        await good.call("GET", "/no/such/endpoint", "nothing")
    await bad.aclose()
    await good.aclose()


@pytest.mark.anyio
async def test_quota_rate_limit_and_malformed_replies(
    tmp_path: Path, make_context: ContextFactory
) -> None:
    account = AccountConfig(
        label="acct", credentials=(SIGN,), voices=(VOICE,), balance=30, rate=RateLimit(2, 60.0)
    )
    async with Sandbox(_config(accounts=(account,))) as box:
        provider = IndexTTSProvider(make_context("indextts", box.urls["indextts"], secret=SIGN))
        body = {"content": "x" * 40, "audioId": VOICE}
        with pytest.raises(OutOfCredit, match="额度"):
            await provider.call("POST", "/tts/create", "create task", json=body)
        await provider.call("GET", "/tts/list", "list tasks")
        with pytest.raises(RateLimited):
            await provider.call("GET", "/tts/list", "list tasks")
        await provider.aclose()
    async with Sandbox(SandboxConfig()) as box:
        provider = IndexTTSProvider(make_context("indextts", box.urls["ttsai"], secret=SIGN))
        with pytest.raises((TransientError, PermanentError)):
            await provider.call("GET", "/tts/list", "list tasks")
        await provider.aclose()


@pytest.mark.anyio
async def test_collect_downloads_finished_tasks_leaves_processing_ones_and_submits_nothing(
    box: Sandbox, tmp_path: Path
) -> None:
    url = box.urls["indextts"]
    box.indextts.config = _config(processing_base=3.0).indextts  # type: ignore[misc]
    # A run stopped early leaves its tasks processing at the provider.
    first = await _run(
        tmp_path,
        _manifest(url, TEXTS[:3]),
        ENV,
        task_policy=TaskPolicy(stuck_factor=0, stuck_minimum=0.2),
    )
    assert first.result.exit_code == 3
    creates = _creates(box)
    assert creates == 3
    early = await _run(tmp_path, _manifest(url, TEXTS[:4]), ENV, collect_only=True)
    assert early.result.exit_code == 3  # still processing: nothing to download yet
    assert _creates(box) == creates  # and the fourth text was not submitted
    assert _count(box, "/file/download/{name}") == 0
    box.clock.advance(60)
    later = await _run(tmp_path, _manifest(url, TEXTS[:4]), ENV, collect_only=True)
    assert later.result.exit_code == 0  # every submitted task is in
    assert _count(box, "/file/download/{name}") == 3
    assert _creates(box) == creates
    with Store.open(later.state) as store:
        counts = store.counts()
    assert (counts[SegmentState.DONE], counts[SegmentState.PENDING]) == (3, 1)


@pytest.mark.anyio
async def test_with_a_deadline_tasks_that_would_finish_after_it_are_not_submitted(
    box: Sandbox, tmp_path: Path
) -> None:
    url = box.urls["indextts"]
    box.indextts.config = _config(processing_per_char=0.05).indextts  # type: ignore[misc]
    short, long = "A short line.", "A much longer line of text. " * 8
    policy = TaskPolicy(prior=(0.05, 0.05))  # what the runner learned: 50 ms per character
    run = await run_in_process(
        tmp_path,
        _manifest(url, [short, long]),
        ENV,
        task_policy=policy,
        deadline=8.0,
    )
    assert run.result.exit_code == 3
    # The short one is expected in ~6 s (processing, slack, a download), the long one in ~19 s.
    assert _creates(box) == 1
    assert run.result.stats.accounts["index"].held_back == 1
    (held,) = run.events("held_back")
    assert float(held["expected"]) > 8.0  # type: ignore[arg-type]
    assert any("held back" in w for w in run.result.stats.warnings)
    assert (tmp_path / "out" / "t0.wav").is_file()  # what was submitted was downloaded
    with Store.open(run.state) as store:
        assert store.in_state(SegmentState.SUBMITTED, SegmentState.READY) == []
