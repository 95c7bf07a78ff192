"""Results a synchronous API keeps at a URL (Fish `stream: false`, fishaudio.net `cache: true`):
recorded as `ready` before they are downloaded, so a run that stops in between, or whose
downloads keep failing, leaves them to the next run to download instead of paying again.

Each test runs against both providers' emulators, over loopback HTTP.
"""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import json_events, start_runner, tts_runner, wait_for_events, wav_stats

from runner.sandbox import (
    AccountConfig,
    FaultConfig,
    FishAudioNetConfig,
    FishYunTTSConfig,
    LedgerEntry,
    Sandbox,
    SandboxConfig,
    SandboxThread,
)
from runner.store import SegmentRow, SegmentState, Store

from .runs import InProcessRun, run_in_process

FISH_TOKEN = "yt-stored-0123456789"
NET_TOKEN = "net-stored-0123456789"
ENV = {"YUNTTS_TOKEN": FISH_TOKEN, "FISHAUDIO_NET_TOKEN": NET_TOKEN}
DAY = 24 * 3600.0
#: The download is slowed this long, so a run can be killed while it waits for it.
SLOW = 20.0
CONFIG = SandboxConfig(
    fish_yuntts=FishYunTTSConfig(
        accounts=(AccountConfig(label="main", credentials=(FISH_TOKEN,), voices=("alice",)),),
        faults=FaultConfig(slow_seconds=SLOW),
    ),
    fishaudio_net=FishAudioNetConfig(
        accounts=(
            AccountConfig(label="main", credentials=(NET_TOKEN,), voices=("voiceA",), balance=1e6),
        ),
        faults=FaultConfig(slow_seconds=SLOW),
    ),
)
#: kind → the voice that asks the API to keep its result at a URL
VOICES = {
    "fish_yuntts": "{provider: acct, reference_id: alice, stream: false, format: wav}",
    "fishaudio_net": "{provider: acct, reference_id: voiceA, cache: true, format: wav}",
}
KINDS = pytest.mark.parametrize("kind", sorted(VOICES))
DOWNLOAD = "{name}"  #: the route of a stored result's audio, in both emulators
TEXTS = [
    "The lighthouse keeper climbed the stairs at dusk.",
    "A small boat found its way home by the light.",
    "The old man only smiled and said the lamp should shine.",
]


def manifest(url: str, kind: str, texts: list[str] = TEXTS) -> str:
    lines = [
        "output: {dir: out, format: wav}",
        "providers:",
        f"  acct: {{kind: {kind}, base_url: '{url}'}}",
        "voices:",
        f"  n: {VOICES[kind]}",
        "texts:",
        *(f"  - {{id: t{i}, text: {text!r}}}" for i, text in enumerate(texts)),
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
async def box() -> AsyncIterator[Sandbox]:
    async with Sandbox(CONFIG) as sandbox:
        yield sandbox


def synths(box: Sandbox, kind: str) -> list[LedgerEntry]:
    return [e for e in box.ledger.entries(kind) if e.operation.value == "synthesize"]


def rows_in(run: InProcessRun, state: SegmentState) -> list[SegmentRow]:
    with Store.open(run.state) as store:
        return list(store.in_state(state))


async def stored_but_not_downloaded(box: Sandbox, kind: str, tmp_path: Path) -> InProcessRun:
    """A first run whose every download fails: each result is paid for and left at its URL."""
    box.faults[kind].enqueue("http_500", endpoint=DOWNLOAD, count=1000)
    first = await run_in_process(tmp_path, manifest(box.urls[kind], kind), ENV)
    box.faults[kind].clear()
    assert first.result.exit_code == 3
    assert box.ledger.paid(provider=kind) == len(TEXTS)
    ready = rows_in(first, SegmentState.READY)
    assert len(ready) == len(TEXTS)
    paid = {e.text_hash: e.cost for e in synths(box, kind)}
    assert sorted(row.cost for row in ready) == sorted(paid.values())
    assert len(first.events("result_stored")) == len(TEXTS)
    return first


def chapters_ok(directory: Path) -> None:
    for i in range(len(TEXTS)):
        _, seconds, rms = wav_stats(directory / "out" / f"t{i}.wav")
        assert seconds > 1.0, (i, seconds)
        assert rms > -35, (i, rms)


@pytest.mark.anyio
@KINDS
async def test_a_stored_result_whose_download_failed_is_downloaded_next_run_not_paid_again(
    box: Sandbox, kind: str, tmp_path: Path
) -> None:
    first = await stored_but_not_downloaded(box, kind, tmp_path)
    spent = sum(e.cost for e in synths(box, kind))
    assert first.result.stats.accounts["acct"].cost == pytest.approx(spent)  # counted when paid
    second = await run_in_process(tmp_path, manifest(box.urls[kind], kind), ENV)
    assert second.result.exit_code == 0
    assert len(synths(box, kind)) == len(TEXTS)  # nothing requested again
    assert box.ledger.paid_twice(provider=kind, include_lost=True) == []
    account = second.result.stats.accounts["acct"]
    assert (account.synthesized, account.re_requests, account.cost) == (len(TEXTS), 0, 0.0)
    done = rows_in(second, SegmentState.DONE)
    assert sum(row.cost for row in done) == pytest.approx(spent)
    chapters_ok(tmp_path)


@pytest.mark.anyio
@KINDS
async def test_a_stored_result_that_expired_is_requested_again_with_a_warning(
    box: Sandbox, kind: str, tmp_path: Path
) -> None:
    first = await stored_but_not_downloaded(box, kind, tmp_path)
    keys = {row.key for row in rows_in(first, SegmentState.READY)}
    box.clock.advance(DAY + 60)  # the emulators keep a stored result for a day
    second = await run_in_process(tmp_path, manifest(box.urls[kind], kind), ENV)
    assert second.result.exit_code == 0
    assert len(synths(box, kind)) == 2 * len(TEXTS)
    assert len(box.ledger.paid_twice(provider=kind, include_lost=True)) == len(TEXTS)
    assert second.result.stats.accounts["acct"].re_requests == len(TEXTS)
    warned = [str(w["message"]) for w in second.events("warning")]
    for key in keys:
        (said,) = [w for w in warned if key[:12] in w]
        assert "its stored result is gone" in said
        assert "requesting it again costs" in said
    chapters_ok(tmp_path)


@pytest.mark.anyio
@KINDS
async def test_collect_downloads_stored_results_and_requests_nothing(
    box: Sandbox, kind: str, tmp_path: Path
) -> None:
    await stored_but_not_downloaded(box, kind, tmp_path)
    more = manifest(box.urls[kind], kind, [*TEXTS, "A fourth line that nobody asked for yet."])
    collected = await run_in_process(tmp_path, more, ENV, collect_only=True)
    assert collected.result.exit_code == 0
    assert len(synths(box, kind)) == len(TEXTS)
    assert box.ledger.paid_twice(provider=kind, include_lost=True) == []
    with Store.open(collected.state) as store:
        counts = store.counts()
    assert (counts[SegmentState.DONE], counts[SegmentState.PENDING]) == (len(TEXTS), 1)


@pytest.mark.anyio
@KINDS
async def test_a_stored_result_still_corrupt_after_every_download_is_requested_again(
    box: Sandbox, kind: str, tmp_path: Path
) -> None:
    attempts = 4  # the in-process runs' retry policy (FAST_RETRY)
    box.faults[kind].enqueue("corrupt_header", endpoint=DOWNLOAD, count=attempts)
    run = await run_in_process(tmp_path, manifest(box.urls[kind], kind, TEXTS[:1]), ENV)
    assert run.result.exit_code == 0
    downloads = [e for e in box.ledger.entries(kind) if e.operation.value == "download"]
    assert [e.fault for e in downloads] == ["corrupt_header"] * attempts + [""]
    assert len(synths(box, kind)) == 2
    assert run.result.stats.accounts["acct"].re_requests == 1
    assert [e["cause"] for e in run.events("retry") if "key" in e] == ["corrupt"]
    _, seconds, _ = wav_stats(tmp_path / "out" / "t0.wav")
    assert seconds > 1.0


# -- kill -9 between the paid reply and its download -----------------------------------------


def _killed_when(directory: Path, event: str) -> list[dict[str, object]]:
    """Start `tts-runner run`, kill -9 it once it logs `event`; its events up to then."""
    log = directory / "killed.log"
    child = start_runner("run", "book.yaml", "--json-log", cwd=directory, log=log, env=ENV)
    wait_for_events(log, event, 1, child)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    return json_events(log.read_text(errors="replace"))


@KINDS
def test_kill_9_after_the_paid_reply_then_collect_downloads_it_without_paying(
    kind: str, tmp_path: Path
) -> None:
    with SandboxThread(CONFIG) as box:
        (tmp_path / "book.yaml").write_text(manifest(box.urls[kind], kind, TEXTS[:1]))
        box.enqueue_fault(kind, "slow", endpoint=DOWNLOAD)  # the download hangs
        events = _killed_when(tmp_path, "result_stored")
        assert [e["event"] for e in events].count("request") == 1
        status = tts_runner("status", "book.yaml", "--json", cwd=tmp_path)
        (waiting,) = json.loads(status.stdout)["pending_tasks"]
        assert (waiting["state"], waiting["task_id"]) == ("ready", None)
        collected = tts_runner("collect", "book.yaml", "--json-log", cwd=tmp_path, env=ENV)
        assert collected.code == 0, collected.stderr
        assert collected.events("request") == []
        entries = box.ledger(kind)
    assert len([e for e in entries if e.operation.value == "synthesize"]) == 1
    assert sum(e.paid for e in entries) == 1
    _, seconds, _ = wav_stats(tmp_path / "out" / "t0.wav")
    assert seconds > 1.0


@KINDS
def test_collect_never_resends_a_request_left_unanswered_run_does_and_counts_it(
    kind: str, tmp_path: Path
) -> None:
    with SandboxThread(CONFIG) as box:
        (tmp_path / "book.yaml").write_text(manifest(box.urls[kind], kind, TEXTS[:1]))
        box.enqueue_fault(kind, "slow", endpoint="tts")  # the synthesis request hangs
        _killed_when(tmp_path, "request")
        collected = tts_runner("collect", "book.yaml", "--json-log", cwd=tmp_path, env=ENV)
        assert collected.code == 3, collected.stderr  # the segment is left for `run`
        assert collected.events("request") == []
        sent = len([e for e in box.ledger(kind) if e.operation.value == "synthesize"])
        assert sent <= 1  # the killed run's request (the emulator may not have logged it yet)
        done = tts_runner("run", "book.yaml", "--json-log", cwd=tmp_path, env=ENV)
        assert done.code == 0, done.stderr
        assert len(done.events("re_request")) == 1
    (summary,) = done.events("summary")
    assert summary["accounts"]["acct"]["re_requests"] == 1  # type: ignore[index]
