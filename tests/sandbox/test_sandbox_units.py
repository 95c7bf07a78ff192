"""The sandbox's small parts on their own: limiter, ledger summaries, clock, audio, schema."""

from __future__ import annotations

import time
from dataclasses import replace

import anyio
import numpy as np
import pytest

from runner.sandbox import AudioFormat, Ledger, LedgerEntry, Operation, SandboxClock
from runner.sandbox.audio import AudioEngine, AudioRequest, corrupt
from runner.sandbox.faults import FaultKind, FaultPlan
from runner.sandbox.limits import WindowLimiter
from runner.sandbox.synth import speech_seconds, synthesize

pytestmark = pytest.mark.anyio

ENTRY = LedgerEntry(
    seq=1,
    started_at=0.0,
    finished_at=1.0,
    provider="ttsai",
    account="a",
    method="POST",
    endpoint="/v1/tts/",
    operation=Operation.SYNTHESIZE,
    status=200,
    code="",
    characters=5,
    cost=1.0,
    text_hash="t",
    voice="v",
    request_key="k",
    paid=True,
    delivered=True,
    retrievable=False,
    counted=True,
    throttled=False,
    fault="",
)


def test_window_limiter_slides() -> None:
    limiter = WindowLimiter(requests=3, per_seconds=10, concurrent=None)
    assert [limiter.admit(t).allowed for t in (0.0, 1.0, 2.0)] == [True] * 3
    refused = limiter.admit(9.5)
    assert (refused.allowed, refused.reason, refused.retry_after) == (False, "window", 1)
    assert limiter.admit(10.0).allowed  # the start at 0.0 left the window (now - 10, now]
    assert limiter.peek(10.0).remaining == 0
    assert limiter.peek(10.0).reset == 1


def test_window_limiter_concurrency() -> None:
    limiter = WindowLimiter(requests=None, concurrent=2)
    assert limiter.admit(0).allowed
    assert limiter.admit(0).allowed
    refused = limiter.admit(0)
    assert (refused.allowed, refused.reason, refused.retry_after) == (False, "concurrency", 1)
    limiter.release()
    assert limiter.admit(0).allowed
    assert limiter.in_flight == 2


def test_ledger_summaries() -> None:
    ledger = Ledger()
    spans = [(0.0, 1.0), (0.5, 2.0), (1.0, 1.5), (3.0, 4.0)]
    for i, (start, end) in enumerate(spans):
        ledger.record(replace(ENTRY, seq=i + 1, started_at=start, finished_at=end))
    assert ledger.max_in_flight() == 2  # back-to-back requests do not overlap
    assert ledger.max_starts_in_window(1.0) == 2
    assert ledger.max_starts_in_window(3.0) == 3
    assert ledger.max_starts_in_window(3.01) == 4
    [twice] = ledger.paid_twice()
    assert twice.count == 4
    assert twice.voice == "v"
    ledger.record(replace(ENTRY, request_key="lost", delivered=False))
    ledger.record(replace(ENTRY, request_key="lost"))
    assert len(ledger.paid_twice()) == 1
    assert len(ledger.paid_twice(include_lost=True)) == 2
    summary = ledger.summary(2.0, provider="ttsai", account="a")
    assert (summary.requests, summary.paid, summary.lost, summary.cost) == (6, 6, 1, 6.0)
    assert ledger.creates(account="a") == 6
    assert ledger.count_429() == 0
    assert ledger.entries(provider="other") == ()


async def test_clock_advance_wakes_sleepers() -> None:
    clock = SandboxClock()
    start = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.sleep, 3600)
        await anyio.sleep(0.01)
        clock.advance(3600)
    assert time.monotonic() - start < 1
    assert clock.advanced == 3600
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_speech_is_paced_like_speech() -> None:
    assert speech_seconds("a" * 140) == pytest.approx(10.0)
    assert speech_seconds("字" * 45) == pytest.approx(10.0)
    assert speech_seconds("hi") == 0.3  # the minimum
    assert speech_seconds("a" * 140, speed=2.0) == pytest.approx(5.0)
    samples = synthesize("hello world", "v", 16_000)
    assert not samples[:1000].any()
    assert not samples[-1000:].any()
    assert np.abs(samples).max() > 5000


async def test_audio_is_deterministic_and_text_dependent() -> None:
    engine = AudioEngine()
    request = AudioRequest("Hello there.", "voice", AudioFormat.MP3, 44_100)
    first = await engine.render(request)
    assert first == await AudioEngine().render(request)
    assert first != await engine.render(replace(request, text="Hello there!"))
    assert first != await engine.render(replace(request, voice="other"))
    assert engine.recognise(first) is not None
    assert engine.recognise(b"xyz") is None


async def test_speak_hook_is_cached_for_determinism() -> None:
    calls: list[str] = []

    def speak(text: str, language: str) -> tuple[bytes, int]:
        calls.append(text)
        noise = np.random.default_rng().integers(-1000, 1000, 8000, dtype=np.int16)
        return noise.tobytes(), 8000  # a different answer every call

    engine = AudioEngine(speak=speak)
    request = AudioRequest("spoken", "v", AudioFormat.WAV, 16_000)
    first = await engine.render(request)
    again = await engine.render(replace(request, sample_rate=24_000))
    assert calls == ["spoken"]
    assert len(first) == 44 + 16_000 * 2
    assert len(again) == 44 + 24_000 * 2


def test_corruption_kinds() -> None:
    data = bytes(range(256)) * 4
    header = corrupt(data, FaultKind.CORRUPT_HEADER, AudioFormat.WAV)
    assert header[:44] != data[:44]
    assert header[44:] == data[44:]
    samples = corrupt(data, FaultKind.CORRUPT_SAMPLES, AudioFormat.MP3)
    assert samples[:64] == data[:64]
    assert samples[64:] != data[64:]
    assert len(samples) == len(data)
    raw = corrupt(data, FaultKind.CORRUPT_HEADER, AudioFormat.PCM)
    assert raw != data
    assert len(raw) == len(data)


def test_fault_queue_matches_endpoints_and_kinds() -> None:
    plan = FaultPlan("indextts", seed=0)
    plan.enqueue("never_finish")
    plan.enqueue("drop", endpoint="tts/result", count=2)
    everything = frozenset(FaultKind)
    no_task = everything - {FaultKind.NEVER_FINISH, FaultKind.TASK_FAILED}
    assert plan.draw("/api/third/tts/list", no_task, hot=False) is None
    assert plan.draw("/api/third/tts/result", no_task, hot=True) is FaultKind.DROP
    assert plan.draw("/api/third/tts/create", everything, hot=True) is FaultKind.NEVER_FINISH
    assert plan.draw("/api/third/tts/result", no_task, hot=True) is FaultKind.DROP
    assert plan.queue == ()
    assert "queued=0" in repr(plan)
