"""The TTS.ai adapter against the sandbox's emulator over loopback HTTP: the documented requests,
every error code, retries, plan pacing, credits, cloning and whole runs."""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import anyio
import numpy as np
import pytest
from aiohttp import web
from support import english_prose, tts_runner, wav_stats

from runner.errors import (
    CorruptResult,
    OutOfCredit,
    PermanentError,
    ProviderError,
    TransientError,
    Unauthorized,
    Unsupported,
)
from runner.events import Events
from runner.manifest import load_manifests
from runner.manifest.params import FileRef, ParamValue
from runner.plans import PRESETS, Limits
from runner.providers.base import Request
from runner.providers.ttsai import TTSAIProvider
from runner.run import RunOptions, RunResult, run_manifest
from runner.sandbox import (
    AccountConfig,
    FaultConfig,
    Plan,
    Sandbox,
    SandboxConfig,
    SandboxThread,
    TTSAIConfig,
)
from runner.sandbox.ids import digest

from .conftest import FAST_RETRY, ContextFactory, EventLog

pytestmark = pytest.mark.anyio

KEY = "sk-tts-good-0123456789abcdef"
TEXT = "The keeper remembers the long road home, and a traveler carries a quiet song."
BELLA: dict[str, ParamValue] = {"model": "kokoro", "voice": "af_bella"}
PRO = PRESETS[("ttsai", "pro")]
#: A plan compressed in time: 10 requests per 2 s, 3 at once.
TINY = Plan(requests=10, per_seconds=2.0, concurrent=3, max_chars=5_000)


def config(
    *accounts: AccountConfig, faults: FaultConfig | None = None, **extra: object
) -> SandboxConfig:
    ttsai = TTSAIConfig(
        accounts=accounts,
        plans={"tiny": TINY, "short": Plan(60, 60.0, 5, max_chars=50), **extra.pop("plans", {})},  # type: ignore[dict-item]
        faults=faults or FaultConfig(),
        **extra,  # type: ignore[arg-type]
    )
    return SandboxConfig(ttsai=ttsai)


def request(text: str = TEXT, **params: ParamValue) -> Request:
    return Request(hashlib.sha256(text.encode()).hexdigest(), text, params, "req-1")


def make_wav(seconds: float, rate: int = 16_000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    samples = (8000 * np.sin(2 * math.pi * 220 * t)).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buffer.getvalue()


def file_ref(path: Path, data: bytes) -> FileRef:
    path.write_bytes(data)
    return FileRef(path, hashlib.sha256(data).hexdigest(), len(data))


# -- the documented requests ------------------------------------------------------------------


async def test_tts_clone_voices_and_quota_send_exactly_the_documented_requests(
    sandbox: Sandbox, make_context: ContextFactory, tmp_path: Path
) -> None:
    reference = make_wav(12.0)
    ref = file_ref(tmp_path / "me.wav", reference)
    async with TTSAIProvider(make_context("ttsai", sandbox.urls["ttsai"], secret=KEY)) as tts:
        with pytest.raises(Unsupported, match="no balance endpoint"):
            await tts.quota()
        mp3 = await tts.synthesize(request(**BELLA))
        wav = await tts.synthesize(request(**BELLA, format="wav", speed=1.25, language="en"))
        cloned = await tts.synthesize(request(clone={"reference_audio": ref}, language="en"))
        voices = await tts.list_voices(model="kokoro")
        quota = await tts.quota()
    assert (mp3.format, mp3.cost, mp3.data[:3]) == ("mp3", 2.0, b"ID3")
    assert (wav.format, wav.data[:4]) == ("wav", b"RIFF")
    assert (cloned.format, cloned.cost) == ("mp3", 4.0)
    assert "af_bella" in [v.id for v in voices]
    assert {v.details["model"] for v in voices} == {"kokoro"}
    balance = sandbox.ttsai.accounts.all()[0].balance
    assert (quota.remaining, quota.unit) == (balance, "credits")
    assert sandbox.deviations.snapshot() == ()
    entries = sandbox.ledger.entries("ttsai")
    assert [e.endpoint for e in entries] == [
        "/v1/tts/",
        "/v1/tts/",
        "/v1/tts/clone/",
        "/v1/voices/",
    ]
    # The reference arrived byte for byte, with the API's default clone model.
    assert entries[2].voice == f"ttsai-clone:chatterbox:{digest(reference.hex())}"


@pytest.mark.parametrize("clone", [False, True], ids=["tts", "clone"])
async def test_the_write_ahead_hook_runs_inside_a_limiter_slot_before_each_attempt(
    sandbox: Sandbox, make_context: ContextFactory, tmp_path: Path, clone: bool
) -> None:
    sandbox.faults["ttsai"].enqueue("http_500")
    context = make_context("ttsai", sandbox.urls["ttsai"])
    seen: list[tuple[int, int]] = []
    params = {"clone": {"reference_audio": file_ref(tmp_path / "me.wav", make_wav(10.0))}}

    async def on_send() -> None:
        seen.append((context.limiter.in_flight, len(sandbox.ledger)))

    hooked = replace(request(**(params if clone else BELLA)), on_send=on_send)
    async with TTSAIProvider(context) as tts:
        await tts.synthesize(hooked)
        await tts.list_voices()  # not a paid request: no hook
    assert seen == [(1, 0), (1, 1)]  # each time: a slot held, and before the request arrived


async def test_a_clone_voice_with_speed_fails_before_sending(
    sandbox: Sandbox, make_context: ContextFactory, tmp_path: Path
) -> None:
    ref = file_ref(tmp_path / "me.wav", make_wav(10.0))
    async with TTSAIProvider(make_context("ttsai", sandbox.urls["ttsai"])) as tts:
        with pytest.raises(PermanentError, match="takes no `speed`"):
            await tts.synthesize(request(clone={"reference_audio": ref}, speed=1.2))
    assert len(sandbox.ledger) == 0


CHARGES: list[tuple[int, dict[str, ParamValue]]] = [
    (1, {"model": "piper", "voice": "en_US-amy-medium"}),
    (1000, BELLA),
    (1001, BELLA),
    (2001, BELLA),
    (999, {"model": "chatterbox", "voice": "default"}),
    (1001, {"model": "melotts", "voice": "EN-US"}),
    (1500, {"clone": "reference"}),
]


async def test_estimate_cost_matches_what_the_service_charges(
    sandbox: Sandbox, make_context: ContextFactory, tmp_path: Path
) -> None:
    ref = file_ref(tmp_path / "me.wav", make_wav(10.0))
    async with TTSAIProvider(make_context("ttsai", sandbox.urls["ttsai"])) as tts:
        for chars, voice in CHARGES:
            params = {**voice, "format": "wav"}
            if "clone" in params:
                params["clone"] = {"reference_audio": ref}
            text = ("Speech " * chars)[:chars]
            audio = await tts.synthesize(request(text, **params))
            assert audio.cost == TTSAIProvider.estimate_cost(text, params, PRO), (chars, voice)
    assert [e.cost for e in sandbox.ledger.entries("ttsai")] == [1, 2, 4, 6, 4, 2, 8]


def test_estimate_cost_reads_model_names_as_the_price_table_spells_them() -> None:
    text = "x" * 1001
    assert TTSAIProvider.estimate_cost(text, {"model": "CosyVoice 2"}, PRO) == 4.0
    assert TTSAIProvider.estimate_cost(text, {"model": "Tortoise"}, PRO) == 8.0
    # A model the price table does not name costs the plan's default price.
    assert TTSAIProvider.estimate_cost(text, {"model": "gpt-sovits"}, PRO) == 4.0
    assert TTSAIProvider.estimate_cost("", BELLA, PRO) == 0.0


# -- every documented error --------------------------------------------------------------------

GOOD, BROKE, FREE = KEY, "sk-tts-broke-0123456789", "sk-tts-free-0123456789"
ERRORS: list[tuple[str, str, dict[str, object], int, type[ProviderError], list[str]]] = [
    (
        "400-too-long",
        GOOD,
        {"text": "y" * 80},
        400,
        PermanentError,
        ["bad_request: Invalid request: text: 80 characters."],
    ),
    (
        "400-language",
        GOOD,
        {"language": "de"},
        400,
        PermanentError,
        ["bad_request", "does not support language 'de'"],
    ),
    (
        "401",
        "sk-tts-wrong-0123456789",
        {},
        401,
        Unauthorized,
        ["unauthorized: Missing or invalid API key.", "$TTSAI_API_KEY"],
    ),
    (
        "402",
        BROKE,
        {},
        402,
        OutOfCredit,
        ["insufficient_credits: You do not have enough credits", "required 2, available 1"],
    ),
    (
        "403",
        FREE,
        {},
        403,
        Unauthorized,
        ["forbidden: API access is not available on your plan."],
    ),
    ("404-model", GOOD, {"model": "nope"}, 404, PermanentError, ["Model 'nope' not found."]),
    (
        "404-voice",
        GOOD,
        {"voice": "zz_nobody"},
        404,
        PermanentError,
        ["Voice 'zz_nobody' not found for kokoro."],
    ),
    ("413", GOOD, {"clone": "big"}, 413, PermanentError, ["file_too_large", "size limit"]),
]


@pytest.mark.parametrize(
    ("key", "change", "status", "error", "words"),
    [case[1:] for case in ERRORS],
    ids=[case[0] for case in ERRORS],
)
async def test_each_error_code_reaches_its_class_with_the_providers_message(
    make_context: ContextFactory,
    tmp_path: Path,
    key: str,
    change: dict[str, object],
    status: int,
    error: type[ProviderError],
    words: list[str],
) -> None:
    accounts = (
        AccountConfig(label="good", credentials=(GOOD,), plan="short"),
        AccountConfig(label="broke", credentials=(BROKE,), balance=1),
        AccountConfig(label="free", credentials=(FREE,), plan="free"),
    )
    change = dict(change)  # shared with the other runs of this test
    params: dict[str, ParamValue] = dict(BELLA)
    text = str(change.pop("text", "Hello there."))
    if change.pop("clone", None):
        params = {"clone": {"reference_audio": file_ref(tmp_path / "big.wav", make_wav(1.0))}}
    params.update(change)  # type: ignore[arg-type]
    async with Sandbox(config(*accounts, max_upload_bytes=20_000)) as box:
        context = make_context("ttsai", box.urls["ttsai"], secret=key)
        async with TTSAIProvider(context) as tts:
            with pytest.raises(ProviderError) as caught:
                await tts.synthesize(request(text, **params))
        assert [e.status for e in box.ledger.entries("ttsai")] == [status]  # no retry
    assert type(caught.value) is error
    message = str(caught.value)
    for word in words:
        assert word in message
    assert key not in message


RATE_LIMITED: Callable[[], web.Response] = lambda: web.json_response(  # noqa: E731
    {"error": {"code": "rate_limited", "message": "Too many requests."}},
    status=429,
    headers={"X-RateLimit-Reset": "0.3"},
)


def audio_reply(data: bytes, content_type: str = "audio/wav") -> web.Response:
    return web.Response(body=data, content_type=content_type, headers={"X-Credits-Used": "2"})


MALFORMED: list[tuple[str, Callable[[], web.Response], str, type[ProviderError], str]] = [
    (
        "html-200",
        lambda: web.Response(text="<html>Welcome</html>", content_type="text/html"),
        "mp3",
        CorruptResult,
        "200 with text/html instead of audio: '<html>Welcome</html>'",
    ),
    (
        "json-200",
        lambda: web.json_response({"ok": True}),
        "mp3",
        CorruptResult,
        "application/json instead of audio",
    ),
    ("empty-200", lambda: audio_reply(b"", "audio/mpeg"), "mp3", CorruptResult, "empty body"),
    (
        "other-format",
        lambda: audio_reply(make_wav(1.0)),
        "mp3",
        CorruptResult,
        "audio/wav although mp3 was asked for",
    ),
    (
        "html-502",
        lambda: web.Response(status=502, text="<h1>Bad Gateway</h1>", content_type="text/html"),
        "mp3",
        TransientError,
        "HTTP 502: a text/html body that is not the API's error JSON",
    ),
    (
        "json-500",
        lambda: web.json_response(
            {"error": {"code": "internal_error", "message": "Server error."}}, status=500
        ),
        "mp3",
        TransientError,
        "HTTP 500 internal_error: Server error.",
    ),
    (
        "text-401",
        lambda: web.Response(status=401, text="Unauthorized"),
        "mp3",
        Unauthorized,
        "HTTP 401: a text/plain body",
    ),
    (
        "text-418",
        lambda: web.Response(status=418, text="I'm a teapot"),
        "mp3",
        PermanentError,
        "HTTP 418",
    ),
]


@asynccontextmanager
async def vendor_stub(*replies: web.Response) -> AsyncIterator[str]:
    """A server answering POST /v1/tts/ with the given replies in turn (the last one repeats):
    for replies the sandbox never gives."""
    served: list[int] = []

    async def tts(request: web.Request) -> web.Response:
        await request.read()
        served.append(1)
        return replies[min(len(served), len(replies)) - 1]

    app = web.Application()
    app.router.add_post("/v1/tts/", tts)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/v1"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("reply", "fmt", "error", "message"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
async def test_replies_outside_the_contract_become_clear_errors(
    make_context: ContextFactory,
    reply: Callable[[], web.Response],
    fmt: str,
    error: type[ProviderError],
    message: str,
) -> None:
    replies = [reply() for _ in range(FAST_RETRY.attempts)]
    async with vendor_stub(*replies) as url, TTSAIProvider(make_context("ttsai", url)) as tts:
        with pytest.raises(ProviderError) as caught:
            await tts.synthesize(request(**BELLA, format=fmt))
    assert type(caught.value) is error
    assert message in str(caught.value)


async def test_a_429_without_retry_after_waits_out_the_rate_limit_reset(
    make_context: ContextFactory,
) -> None:
    log = EventLog()
    wav = make_wav(3.0)
    async with vendor_stub(RATE_LIMITED(), audio_reply(wav)) as url:
        context = make_context("ttsai", url, events=Events([log]))
        async with TTSAIProvider(context) as tts:
            started = time.monotonic()
            audio = await tts.synthesize(request(**BELLA, format="wav"))
            waited = time.monotonic() - started
    assert (audio.data, audio.cost) == (wav, 2.0)
    assert waited >= 0.3
    ((_, event),) = [r for r in log.records if r[0] == "rate_limited"]
    assert event["wait"] == 0.3
    assert "rate_limited: Too many requests." in str(event["message"])


# -- whole runs --------------------------------------------------------------------------------


async def run_book(
    tmp_path: Path, manifest: str, environ: dict[str, str]
) -> tuple[RunResult, EventLog]:
    (tmp_path / "book.yaml").write_text(manifest)
    (loaded,) = load_manifests([tmp_path / "book.yaml"])
    log = EventLog()
    options = RunOptions(state_dir=tmp_path / "state", retry=FAST_RETRY, environ=environ)
    return await run_manifest(loaded, options, Events([log])), log


def one_chapter(url: str, voice: str = "{model: kokoro, voice: af_bella}", **account: str) -> str:
    extra = "".join(f", {k}: {v}" for k, v in account.items())
    return f"""
version: 1
output: {{dir: out, format: wav}}
providers:
  t: {{kind: ttsai, base_url: "{url}"{extra}}}
voices:
  v: {{provider: t, {voice[1:-1]}}}
defaults: {{voice: v}}
texts:
  - {{id: ch01, text: "{TEXT}"}}
"""


def assert_chapters(out: Path, ids: list[str], *, min_seconds: float) -> None:
    index = json.loads((out / "index.json").read_text())
    assert [c["id"] for c in index["chapters"]] == ids
    for chapter in index["chapters"]:
        rate, seconds, rms = wav_stats(out / chapter["file"])
        assert rate > 0
        assert seconds > min_seconds, (chapter["id"], seconds)
        assert rms > -40, f"{chapter['id']} is near-silent ({rms:.1f} dBFS)"


FAULTS = [
    ("http_500", "mp3"),
    ("model_loading_503", "mp3"),
    ("drop", "mp3"),
    ("truncate_with_length", "mp3"),
    ("truncate_no_length", "mp3"),
    ("slow", "mp3"),
    ("corrupt_samples", "mp3"),
    ("corrupt_header", "wav"),
    ("corrupt_samples", "wav"),
]


@pytest.mark.parametrize(("kind", "fmt"), FAULTS)
async def test_a_run_survives_each_fault(tmp_path: Path, kind: str, fmt: str) -> None:
    async with Sandbox(config(faults=FaultConfig(slow_seconds=1.5))) as box:
        box.faults["ttsai"].enqueue(kind)
        voice = f"{{model: kokoro, voice: af_bella, format: {fmt}}}"
        manifest = one_chapter(box.urls["ttsai"], voice, timeout="1")
        result, log = await run_book(tmp_path, manifest, {"TTSAI_API_KEY": KEY})
        entries = box.ledger.entries("ttsai")
    assert result.exit_code == 0, result.stats
    assert [e.fault for e in entries] == [kind, ""]
    stats = result.stats.accounts["t"]
    if kind.startswith("corrupt"):
        assert (stats.re_requests, stats.retries) == (
            1,
            {"corrupt": 1},
        )  # the scheduler asked again
    else:
        assert sum(stats.retries.values()) == 1  # the adapter tried again
    if kind == "model_loading_503":  # "retry in a few seconds": the Retry-After is honoured
        assert entries[1].started_at - entries[0].finished_at >= 0.9
    assert "retry" in log.kinds()
    assert_chapters(tmp_path / "out", ["ch01"], min_seconds=2.0)


async def test_an_injected_429_pauses_the_account_and_the_run_completes(tmp_path: Path) -> None:
    async with Sandbox(config()) as box:
        box.faults["ttsai"].enqueue("rate_limit_429")
        result, log = await run_book(
            tmp_path, one_chapter(box.urls["ttsai"]), {"TTSAI_API_KEY": KEY}
        )
        refused, served = box.ledger.entries("ttsai")
    assert result.exit_code == 0
    assert (refused.status, served.status) == (429, 200)
    assert served.started_at - refused.finished_at >= 0.95  # Retry-After: 1
    assert result.stats.accounts["t"].rate_limited == 1
    assert "rate_limited" in log.kinds()


async def test_running_out_of_credit_stops_the_account_with_exit_3(tmp_path: Path) -> None:
    account = AccountConfig(label="low", credentials=(KEY,), balance=3)
    async with Sandbox(config(account)) as box:
        manifest = one_chapter(box.urls["ttsai"], limits="{max_chars: 30}")
        result, log = await run_book(tmp_path, manifest, {"TTSAI_API_KEY": KEY})
        statuses = sorted(e.status for e in box.ledger.entries("ttsai"))
    assert result.exit_code == 3
    assert statuses[0] == 200
    assert 402 in statuses
    assert "insufficient_credits: You do not have enough credits" in result.stopped
    assert "required 2, available 1" in result.stopped
    assert "account_stopped" in log.kinds()
    assert not (tmp_path / "out" / "ch01.wav").exists()


def write_book(directory: Path, url: str, **account: str) -> bytes:
    """Two chapters of many short segments (two voices) and a cloned one."""
    chapters = directory / "chapters"
    chapters.mkdir()
    (chapters / "01.txt").write_text(english_prose(10))
    (chapters / "02.txt").write_text(english_prose(6, seed=50))
    reference = make_wav(12.0)
    (directory / "me.wav").write_bytes(reference)
    base = f', base_url: "{url}"' if url else ""
    extra = "".join(f", {k}: {v}" for k, v in account.items())
    (directory / "book.yaml").write_text(f"""
version: 1
output: {{dir: out, format: wav}}
providers:
  t: {{kind: ttsai{base}{extra}}}
voices:
  bella: {{provider: t, model: kokoro, voice: af_bella}}
  amy: {{provider: t, model: piper, voice: en_US-amy-medium, format: wav, speed: 1.1}}
  me: {{provider: t, clone: {{reference_audio: me.wav}}, language: en}}
defaults: {{voice: bella}}
texts:
  - {{id: ch01, file: chapters/01.txt}}
  - {{id: ch02, voice: amy, file: chapters/02.txt}}
  - {{id: ch03, voice: me, text: "This speech uses a cloned voice."}}
""")
    return reference


VOICE_PARAMS: dict[str, dict[str, ParamValue]] = {
    "ttsai:kokoro:af_bella": BELLA,
    "ttsai:piper:en_US-amy-medium": {"model": "piper"},
}


def test_a_compressed_plan_end_to_end_keeps_to_the_plan(tmp_path: Path) -> None:
    account = AccountConfig(label="tiny", credentials=(KEY,), plan="tiny")
    with SandboxThread(config(account)) as box:
        reference = write_book(
            tmp_path,
            box.urls["ttsai"],
            api_key_env="MY_TTSAI_KEY",
            limits="{requests: 10, per_seconds: 2, concurrent: 3, max_chars: 60}",
        )
        done = tts_runner("run", "book.yaml", "--json-log", cwd=tmp_path, env={"MY_TTSAI_KEY": KEY})
        assert done.code == 0, done.stderr
        summary = box.summary(TINY.per_seconds, provider="ttsai", account="tiny")
        entries = box.ledger("ttsai", "tiny")
        assert box.deviations("ttsai") == ()
    assert summary.requests > TINY.requests  # enough to breach the window if not paced
    assert summary.max_starts_in_window <= TINY.requests
    assert summary.throttled == 0
    assert summary.max_in_flight <= TINY.concurrent
    clones = [e for e in entries if e.endpoint == "/v1/tts/clone/"]
    assert [e.voice for e in clones] == [f"ttsai-clone:chatterbox:{digest(reference.hex())}"]
    for e in entries:  # what the runner would have estimated is what was charged
        params = VOICE_PARAMS.get(e.voice, {"clone": "me.wav"})
        assert TTSAIProvider.estimate_cost("x" * e.characters, params, PRO) == e.cost
    (event,) = done.events("summary")
    assert event["accounts"]["t"]["cost"] == summary.cost  # type: ignore[index]
    assert KEY not in done.stdout + done.stderr
    assert_chapters(tmp_path / "out", ["ch01", "ch02", "ch03"], min_seconds=1.0)


def test_rehearsal_with_sandbox_flag(tmp_path: Path) -> None:
    write_book(tmp_path, "", plan="enterprise")
    done = tts_runner("run", "book.yaml", "--sandbox", "--json-log", cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert done.events("retry") == []
    assert_chapters(tmp_path / "out", ["ch01", "ch02", "ch03"], min_seconds=1.0)


def test_a_refused_key_never_appears_in_output_state_or_files(tmp_path: Path) -> None:
    canary = "sk-tts-CANARY-4f1c9e27d0b3a85e"
    account = AccountConfig(label="real", credentials=(KEY,))
    with SandboxThread(config(account)) as box:
        write_book(tmp_path, box.urls["ttsai"], api_key_env="MY_TTSAI_KEY")
        done = tts_runner(
            "run", "book.yaml", "--json-log", cwd=tmp_path, env={"MY_TTSAI_KEY": canary}
        )
        statuses = {e.status for e in box.ledger("ttsai")}
    assert done.code == 3, done.stderr
    assert statuses == {401}
    assert "Missing or invalid API key." in done.stdout
    assert "$MY_TTSAI_KEY" in done.stdout
    assert canary not in done.stdout + done.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.startswith("state.db") for p in files)
    for path in files:
        assert canary.encode() not in path.read_bytes(), path


def _short_book(directory: Path, url: str, prose: str) -> None:
    texts = [s.strip() + "." for s in prose.split(".") if s.strip()]
    assert len(texts) == 8
    directory.mkdir()
    lines = [
        "output: {dir: out}",
        "providers:",
        f'  t: {{kind: ttsai, base_url: "{url}", api_key_env: MY_TTSAI_KEY,'
        " limits: {requests: 8, per_seconds: 6, concurrent: 4}}",
        "voices:",
        "  bella: {provider: t, model: kokoro, voice: af_bella}",
        "texts:",
        *(f"  - {{id: t{i}, text: {text!r}}}" for i, text in enumerate(texts)),
    ]
    (directory / "book.yaml").write_text("\n".join(lines) + "\n")


def test_back_to_back_runs_share_the_accounts_window_and_are_never_refused(
    tmp_path: Path,
) -> None:
    """Two cron jobs on one account, one right after the other: the second starts with the
    first one's window, so the server never refuses it. A run that forgot the history (an
    empty TTS_RUNNER_HOME) bursts into the same window and is refused: the control."""
    window = Plan(requests=8, per_seconds=6.0, concurrent=4, max_chars=5_000)
    account = AccountConfig(label="cron", credentials=(KEY,), plan="cron")
    env = {"MY_TTSAI_KEY": KEY}
    with SandboxThread(config(account, plans={"cron": window})) as box:
        for name, seed in (("first", 1), ("second", 2)):
            _short_book(tmp_path / name, box.urls["ttsai"], english_prose(8, seed=seed))
            done = tts_runner("run", "book.yaml", cwd=tmp_path / name, env=env)
            assert done.code == 0, done.stderr
        shared = box.summary(window.per_seconds, provider="ttsai", account="cron")
        box_entries = [(round(e.started_at, 2), e.status) for e in box.ledger("ttsai", "cron")]
        _short_book(tmp_path / "forgetful", box.urls["ttsai"], english_prose(8, seed=3))
        fresh = {**env, "TTS_RUNNER_HOME": str(tmp_path / "empty-home")}
        done = tts_runner("run", "book.yaml", cwd=tmp_path / "forgetful", env=fresh)
        assert done.code == 0, done.stderr
        control = box.summary(window.per_seconds, provider="ttsai", account="cron")
        assert box.deviations("ttsai") == ()
    assert shared.requests == 16, str(box_entries)
    assert shared.throttled == 0
    assert shared.max_starts_in_window <= window.requests
    assert control.throttled > 0  # without the shared history the plan is breached


def test_an_account_command_right_after_a_run_waits_for_the_runs_window(tmp_path: Path) -> None:
    """`voices list` run just after a book used the whole window (8 starts per 6 s) waits
    for the window like a run would, and its starts count for the next run: the server never
    refuses either. The same command with a forgotten history (an empty TTS_RUNNER_HOME) is
    sent at once and refused: the control."""
    window = Plan(requests=8, per_seconds=6.0, concurrent=4, max_chars=5_000)
    account = AccountConfig(label="cron", credentials=(KEY,), plan="cron")
    env = {"MY_TTSAI_KEY": KEY}
    book = tmp_path / "book"
    with SandboxThread(config(account, plans={"cron": window})) as box:
        _short_book(book, box.urls["ttsai"], english_prose(8, seed=4))
        done = tts_runner("run", "book.yaml", cwd=book, env=env)
        assert done.code == 0, done.stderr
        listed = tts_runner("voices", "list", "--provider", "t", "book.yaml", cwd=book, env=env)
        assert listed.code == 0, listed.stderr
        _short_book(tmp_path / "next", box.urls["ttsai"], english_prose(8, seed=5))
        again = tts_runner("run", "book.yaml", cwd=tmp_path / "next", env=env)
        assert again.code == 0, again.stderr
        shared = box.summary(window.per_seconds, provider="ttsai", account="cron")
        kept = [(round(e.started_at, 2), e.endpoint, e.status) for e in box.ledger("ttsai", "cron")]
    with SandboxThread(config(account, plans={"cron": window})) as box:
        _short_book(tmp_path / "control", box.urls["ttsai"], english_prose(8, seed=6))
        done = tts_runner("run", "book.yaml", cwd=tmp_path / "control", env=env)
        assert done.code == 0, done.stderr
        forgetful = {**env, "TTS_RUNNER_HOME": str(tmp_path / "empty-home")}
        control = tts_runner("voices", "list", "--provider", "t", "book.yaml",
                             cwd=tmp_path / "control", env=forgetful)  # fmt: skip
        refused = box.summary(window.per_seconds, provider="ttsai", account="cron")
    assert "voice" in listed.stdout
    assert shared.requests == 17, str(kept)
    assert shared.throttled == 0, str(kept)
    assert shared.max_starts_in_window <= window.requests, str(kept)
    assert refused.throttled > 0, control.stdout + control.stderr


def test_max_cost_stops_the_account_before_its_budget_is_passed(tmp_path: Path) -> None:
    account = AccountConfig(label="budget", credentials=(KEY,))
    with SandboxThread(config(account)) as box:
        _short_book(tmp_path / "book", box.urls["ttsai"], english_prose(8, seed=9))
        env = {"MY_TTSAI_KEY": KEY}
        # kokoro costs 2 credits per started 1000 characters: 5 credits buy two segments.
        done = tts_runner(
            "run", "book.yaml", "--max-cost", "5", "--json-log", cwd=tmp_path / "book", env=env
        )
        spent = box.summary(60.0, provider="ttsai", account="budget").cost
    assert done.code == 3, done.stderr
    assert spent == 4
    (stopped,) = done.events("account_stopped")
    assert "budget reached" in str(stopped["reason"])
    (summary,) = done.events("summary")
    assert summary["remaining"] == 6


async def test_a_used_up_window_pauses_until_the_server_says_and_no_longer(
    make_context: ContextFactory,
) -> None:
    """A plan of 3 per 2 s. The third reply, 0.6 s in, says `X-RateLimit-Remaining: 0` and
    `X-RateLimit-Reset: 2` (1.4 s, rounded up). The fourth request waits for the first start to
    leave the window (about 2.0 s in), not for the rounded-up second to end (2.6 s), and is
    not refused."""
    plan = Plan(3, 2.0, 3, max_chars=5000)
    account = AccountConfig(label="small", credentials=(KEY,), plan="small")
    async with Sandbox(config(account, plans={"small": plan})) as box:
        limits = Limits(requests=3, per_seconds=2.0, concurrent=3)
        async with TTSAIProvider(
            make_context("ttsai", box.urls["ttsai"], secret=KEY, limits=limits)
        ) as tts:
            await tts.synthesize(request("First line.", **BELLA))
            await anyio.sleep(0.6)
            await tts.synthesize(request("Second line.", **BELLA))
            await tts.synthesize(request("Third line.", **BELLA))
            await tts.synthesize(request("Fourth line.", **BELLA))
        entries = box.ledger.entries("ttsai")
    assert [e.status for e in entries] == [200, 200, 200, 200]
    assert 2.0 < entries[3].started_at - entries[0].started_at < 2.3
