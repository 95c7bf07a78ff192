"""The fishaudio.net adapter against the sandbox's emulator, over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from support import english_prose, tts_runner, wav_stats

from runner.errors import (
    CorruptResult,
    OutOfCredit,
    PermanentError,
    TransientError,
    Unauthorized,
    Unsupported,
)
from runner.events import Events
from runner.providers.base import Request, Stored
from runner.providers.fishaudio_net import FishAudioNetProvider
from runner.sandbox import (
    AccountConfig,
    FaultConfig,
    FishAudioNetConfig,
    RateLimit,
    Sandbox,
    SandboxConfig,
    SandboxThread,
)

from .conftest import ContextFactory, EventLog

pytestmark = pytest.mark.anyio

TOKEN = "tok-net-main"
OTHER = "tok-net-other"
TEXT = "The keeper remembers the long road home. A traveler carries a quiet song at dusk."
ACCOUNTS = (
    AccountConfig(label="main", credentials=(TOKEN,), voices=("voiceA", "voiceB"), balance=1e6),
    AccountConfig(label="other", credentials=(OTHER,), voices=("voiceC",)),
)
CONFIG = SandboxConfig(
    fishaudio_net=FishAudioNetConfig(accounts=ACCOUNTS, faults=FaultConfig(slow_seconds=3.0))
)


def ask(text: str = TEXT, **params: Any) -> Request:
    return Request(key="a7" * 32, text=text, params=params, request_id="req-1")


@pytest.fixture
async def net() -> AsyncIterator[Sandbox]:
    async with Sandbox(CONFIG) as box:
        yield box


@pytest.fixture
async def provider_for(make_context: ContextFactory) -> AsyncIterator[Any]:
    """`provider_for(base_url, token=..., log=..., **options)`: an adapter aimed at base_url."""
    made: list[FishAudioNetProvider] = []

    def make(base: str, token: str = TOKEN, log: EventLog | None = None, **options: Any) -> Any:
        events = Events([log or EventLog()])
        context = make_context("fishaudio_net", base, secret=token, options=options, events=events)
        made.append(FishAudioNetProvider(context))
        return made[-1]

    yield make
    for provider in made:
        await provider.aclose()


def synth_entries(box: Sandbox) -> list[Any]:
    return [e for e in box.ledger.entries("fishaudio_net") if e.endpoint == "/api/open/tts"]


# -- the request, exactly ------------------------------------------------------------------


async def test_body_is_what_the_voice_sets_plus_format_and_cache(
    net: Sandbox, provider_for: Any
) -> None:
    provider = provider_for(net.urls["fishaudio_net"])
    assert provider.body(ask(reference_id="voiceA")) == {
        "reference_id": "voiceA",
        "text": TEXT,
        "format": "mp3",
        "cache": False,
    }
    every = {"speed": 1.5, "volume": -6, "version": "v3-turbo", "emotion": "calm"}
    assert provider.body(ask(reference_id="voiceA", format="wav", cache=True, **every)) == {
        "reference_id": "voiceA",
        "text": TEXT,
        **every,
        "format": "wav",
        "cache": True,
    }


@pytest.mark.parametrize("packed", [False, True], ids=["json", "msgpack"])
@pytest.mark.parametrize(
    ("fmt", "magic"), [("mp3", b"ID3"), ("wav", b"RIFF"), ("pcm", b"")], ids=str
)
async def test_audio_bytes_in_json_and_msgpack_modes(
    net: Sandbox, provider_for: Any, packed: bool, fmt: str, magic: bytes
) -> None:
    provider = provider_for(net.urls["fishaudio_net"], msgpack=packed)
    audio = await provider.synthesize(
        ask(reference_id="voiceA", format=fmt, version="s1", speed=1.1, volume=2)
    )
    assert (audio.format, audio.cost) == (fmt, float(len(TEXT)))
    assert audio.data.startswith(magic)
    assert audio.sample_rate == (44_100 if fmt == "pcm" else None)
    (entry,) = synth_entries(net)
    assert (entry.status, entry.account, entry.voice) == (200, "main", "fishnet:voiceA:s1:auto")
    assert net.deviations.snapshot() == ()


@pytest.mark.parametrize("packed", [False, True], ids=["json", "msgpack"])
async def test_cache_true_downloads_the_url_and_learns_the_quota(
    net: Sandbox, provider_for: Any, packed: bool
) -> None:
    provider = provider_for(net.urls["fishaudio_net"], msgpack=packed)
    with pytest.raises(Unsupported, match="only in replies to cache=true"):
        await provider.quota()
    request = ask(reference_id="voiceA", format="wav", cache=True)
    stored = await provider.synthesize(request)
    assert isinstance(stored, Stored)
    assert stored.cost == len(TEXT)  # characters_used
    assert [e.operation.value for e in net.ledger.entries()] == ["synthesize"]
    audio = await provider.fetch(request, stored.url)
    assert audio.data[:4] == b"RIFF"
    assert audio.cost is None  # counted once, when it was stored
    assert [e.operation.value for e in net.ledger.entries()] == ["synthesize", "download"]
    quota = await provider.quota()
    assert (quota.remaining, quota.unit) == (1e6 - len(TEXT), "credits")
    assert net.deviations.snapshot() == ()


@pytest.mark.parametrize(
    "fault", ["http_500", "drop", "truncate_with_length", "truncate_no_length", "corrupt_header"]
)
async def test_a_failed_download_is_fetched_again_never_paid_again(
    net: Sandbox, provider_for: Any, fault: str
) -> None:
    net.faults["fishaudio_net"].enqueue(fault, endpoint="{name}", count=2)
    provider = provider_for(net.urls["fishaudio_net"])
    request = ask(reference_id="voiceA", format="wav", cache=True)
    stored = await provider.synthesize(request)
    assert isinstance(stored, Stored)
    audio = await provider.fetch(request, stored.url)
    assert audio.data[:4] == b"RIFF"
    entries = net.ledger.entries()
    assert [e.operation.value for e in entries] == ["synthesize", *["download"] * 3]
    assert [e.fault for e in entries[1:]] == [fault, fault, ""]
    assert net.ledger.paid() == 1
    assert net.ledger.paid_twice(include_lost=True) == []


async def test_v3_emotion(net: Sandbox, provider_for: Any) -> None:
    provider = provider_for(net.urls["fishaudio_net"])
    await provider.synthesize(ask(reference_id="voiceB", version="v3-hd", emotion="happy"))
    (entry,) = synth_entries(net)
    assert (entry.status, entry.voice) == (200, "fishnet:voiceB:v3-hd:happy")
    assert net.deviations.snapshot() == ()
    # The manifest refuses emotion without a v3 version; the API does too.
    with pytest.raises(PermanentError, match=r"HTTP 400 \(invalid_params\): Bad Request$"):
        await provider.synthesize(ask(reference_id="voiceB", version="v2", emotion="happy"))


# -- transient failures of the paid call ----------------------------------------------------


@pytest.mark.parametrize(
    "fault", ["http_500", "drop", "truncate_with_length", "truncate_no_length", "slow"]
)
async def test_transient_faults_are_retried(net: Sandbox, provider_for: Any, fault: str) -> None:
    net.faults["fishaudio_net"].enqueue(fault, endpoint="tts")
    log = EventLog()
    provider = provider_for(net.urls["fishaudio_net"], log=log, timeout=0.5)
    audio = await provider.synthesize(ask(reference_id="voiceA"))
    assert audio.data[:3] == b"ID3"
    assert [e.fault for e in synth_entries(net)] == [fault, ""]
    assert provider.context.stats.retries["TransientError"] == log.kinds().count("retry") == 1
    assert net.ledger.paid_twice() == []  # the first payment was lost on the way


@pytest.mark.parametrize(
    ("status", "content_type", "body", "error", "said", "retries"),
    [
        # A captive portal or a misrouted proxy answers 200 with a page, not audio.
        (200, "text/html", "<html>log in</html>", CorruptResult, "text/html where mp3", 3),
        # A 403 that names no voice: the token itself may not use the API.
        (
            403,
            "application/json",
            '{"error": "Forbidden", "details": "API access is disabled", "code": "forbidden"}',
            Unauthorized,
            "API access is disabled \\(the token may not use this API\\)",
            0,
        ),
    ],
)
async def test_replies_the_sandbox_never_sends(
    provider_for: Any,
    status: int,
    content_type: str,
    body: str,
    error: type[Exception],
    said: str,
    retries: int,
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=content_type)

    app = web.Application()
    app.router.add_post("/api/open/tts", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        host, port = runner.addresses[0][:2]
        provider = provider_for(f"http://{host}:{port}")
        with pytest.raises(error, match=said):
            await provider.synthesize(ask(reference_id="voiceA"))
        assert sum(provider.context.stats.retries.values()) == retries
    finally:
        await runner.cleanup()


# -- documented errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "params", "error", "said"),
    [
        (TOKEN, {"speed": 2.5}, PermanentError, "400 \\(invalid_params\\): Bad Request: speed"),
        ("tok-wrong", {}, Unauthorized, "401 \\(unauthorized\\): Unauthorized: API Token 无效"),
        (TOKEN, {"reference_id": "voiceC"}, PermanentError, "voiceC belongs to another account"),
        (TOKEN, {"reference_id": "nobody"}, PermanentError, "404.*voice model nobody"),
    ],
)
async def test_documented_errors_reach_the_right_class_with_the_message(
    net: Sandbox,
    provider_for: Any,
    token: str,
    params: dict[str, Any],
    error: type[Exception],
    said: str,
) -> None:
    provider = provider_for(net.urls["fishaudio_net"], token=token)
    with pytest.raises(error, match=said) as caught:
        await provider.synthesize(ask(**{"reference_id": "voiceA", **params}))
    assert type(caught.value) is error
    assert token not in str(caught.value)


async def test_payload_too_large_is_permanent(provider_for: Any) -> None:
    config = SandboxConfig(fishaudio_net=FishAudioNetConfig(accounts=ACCOUNTS, max_body_bytes=200))
    async with Sandbox(config) as box:
        with pytest.raises(PermanentError, match="413 \\(payload_too_large\\)"):
            await provider_for(box.urls["fishaudio_net"]).synthesize(
                ask(TEXT * 4, reference_id="voiceA")
            )


async def test_internal_errors_are_transient_until_retries_run_out(
    net: Sandbox, provider_for: Any
) -> None:
    net.faults["fishaudio_net"].enqueue("http_500", endpoint="tts", count=4)
    with pytest.raises(TransientError, match="500 \\(internal_error\\): internal server error"):
        await provider_for(net.urls["fishaudio_net"]).synthesize(ask(reference_id="voiceA"))
    assert len(synth_entries(net)) == 4


async def test_429_credits_is_out_of_credit_and_429_rate_is_waited_out(
    provider_for: Any,
) -> None:
    poor = replace(ACCOUNTS[0], balance=10.0)
    async with Sandbox(SandboxConfig(fishaudio_net=FishAudioNetConfig(accounts=(poor,)))) as box:
        url = box.urls["fishaudio_net"]
        with pytest.raises(OutOfCredit, match=r"429 \(insufficient_credits\).*积分不足"):
            await provider_for(url).synthesize(ask(reference_id="voiceA"))
        box.faults["fishaudio_net"].enqueue("rate_limit_429", endpoint="tts")
        log = EventLog()
        await provider_for(url, log=log).synthesize(ask("Short.", reference_id="voiceA"))
        assert [e.code for e in synth_entries(box)] == ["insufficient_credits", "rate_limited", ""]
        assert log.kinds() == ["rate_limited"]


def test_cost_estimate_is_characters() -> None:
    from runner.plans import PRESETS

    preset = PRESETS[("fishaudio_net", "default")]
    assert FishAudioNetProvider.estimate_cost(TEXT, {}, preset) == len(TEXT)


# -- end to end, through `tts-runner run` ----------------------------------------------------


def chapter_ok(path: Path, chars: int) -> None:
    """A chapter that exists, lasts about as long as its text takes to say, and is not silent."""
    _, seconds, rms = wav_stats(path)
    assert 0.03 * chars < seconds < 0.25 * chars, (path.name, seconds, chars)
    assert rms > -35, f"{path.name} is near-silent ({rms:.1f} dBFS)"


def run_against(box: SandboxThread, tmp_path: Path, body: str, env: dict[str, str]) -> Any:
    manifest = tmp_path / "book.yaml"
    manifest.write_text(body.replace("BASE_URL", box.urls["fishaudio_net"]), encoding="utf-8")
    return tts_runner("run", manifest, "--json-log", cwd=tmp_path, env=env)


def test_rehearsal_with_sandbox_flag(tmp_path: Path) -> None:
    text = english_prose(6)
    (tmp_path / "book.yaml").write_text(
        f"""version: 1
name: net-rehearsal
output: {{dir: out, format: wav, pause_ms: 200}}
providers:
  net: {{kind: fishaudio_net, msgpack: true}}
voices:
  plain: {{provider: net, reference_id: my-voice, version: s1}}
  hd: {{provider: net, reference_id: my-voice, version: v3-hd, emotion: calm, cache: true}}
texts:
  - {{id: ch01, voice: plain, text: "{text}"}}
  - {{id: ch02, voice: hd, text: "{TEXT}"}}
""",
        encoding="utf-8",
    )
    done = tts_runner("run", "book.yaml", "--sandbox", "--json-log", cwd=tmp_path)
    assert done.code == 0, done.stderr
    chapter_ok(tmp_path / "out" / "ch01.wav", len(text))
    chapter_ok(tmp_path / "out" / "ch02.wav", len(TEXT))


def test_run_with_faults_in_msgpack_mode(tmp_path: Path) -> None:
    with SandboxThread(CONFIG) as box:
        for fault in ("corrupt_samples", "http_500", "drop"):
            box.enqueue_fault("fishaudio_net", fault, endpoint="tts")
        text = english_prose(10)
        done = run_against(
            box,
            tmp_path,
            f"""version: 1
name: faults
output: {{dir: out, format: wav}}
providers:
  net: {{kind: fishaudio_net, base_url: BASE_URL, msgpack: true, limits: {{max_chars: 200}}}}
voices:
  narrator: {{provider: net, reference_id: voiceA, version: v3-turbo, emotion: fluent}}
texts:
  - {{id: ch01, voice: narrator, text: "{text}"}}
""",
            {"FISHAUDIO_NET_TOKEN": TOKEN},
        )
        assert done.code == 0, done.stderr
        assert box.deviations("fishaudio_net") == ()
        synths = [e for e in box.ledger("fishaudio_net") if e.endpoint == "/api/open/tts"]
    (summary,) = done.events("summary")
    assert summary["accounts"]["net"]["re_requests"] == 1  # type: ignore[index]
    assert sorted(e.fault for e in synths if e.fault) == ["corrupt_samples", "drop", "http_500"]
    assert len(synths) == summary["synthesized"] + 3  # type: ignore[operator]
    chapter_ok(tmp_path / "out" / "ch01.wav", len(text))


def test_rate_limits_are_waited_out_and_spent_credits_stop_only_their_account(
    tmp_path: Path,
) -> None:
    accounts = (
        replace(ACCOUNTS[0], label="busy", rate=RateLimit(requests=2, per_seconds=1.0)),
        AccountConfig(label="poor", credentials=(OTHER,), voices=("voiceC",), balance=150.0),
    )
    config = SandboxConfig(fishaudio_net=FishAudioNetConfig(accounts=accounts))
    sentences = english_prose(12).split(". ")
    with SandboxThread(config) as box:
        done = run_against(
            box,
            tmp_path,
            f"""version: 1
name: credits
output: {{dir: out, format: wav}}
providers:
  busy:
    kind: fishaudio_net
    base_url: BASE_URL
    token_env: NET_BUSY
    limits: {{requests: 100, per_seconds: 60, concurrent: 4, max_chars: 100}}
  poor:
    kind: fishaudio_net
    base_url: BASE_URL
    token_env: NET_POOR
    limits: {{concurrent: 1, max_chars: 100}}
voices:
  fast: {{provider: busy, reference_id: voiceA}}
  broke: {{provider: poor, reference_id: voiceC}}
texts:
  - {{id: ch01, voice: fast, text: "{". ".join(sentences[:6])}."}}
  - {{id: ch02, voice: broke, text: "{". ".join(sentences[6:])}"}}
""",
            {"NET_BUSY": TOKEN, "NET_POOR": OTHER},
        )
        assert box.deviations("fishaudio_net") == ()
        throttled = box.call(lambda: box.sandbox.ledger.count_429(account="busy"))
        codes = [e.code for e in box.ledger("fishaudio_net", "poor")]
    assert done.code == 3, done.stderr
    assert throttled >= 1  # the busy account was told to slow down, waited, and finished
    assert done.events("rate_limited")
    assert (tmp_path / "out" / "ch01.wav").is_file()
    assert not (tmp_path / "out" / "ch02.wav").exists()
    assert codes[-1] == "insufficient_credits"
    assert codes.count("insufficient_credits") == 1  # the account stopped at the first refusal
    assert "poor: " in done.stdout
    assert "insufficient_credits" in done.stdout
    assert "top up the fishaudio.net credits" in done.stdout


def test_the_token_appears_nowhere_after_a_refused_run(tmp_path: Path) -> None:
    fake = "fan-FAKE-TOKEN-3b8e0a91d27c"
    with SandboxThread(CONFIG) as box:
        done = run_against(
            box,
            tmp_path,
            f"""version: 1
name: refused
output: {{dir: out, format: wav}}
providers:
  net: {{kind: fishaudio_net, base_url: BASE_URL}}
voices:
  narrator: {{provider: net, reference_id: voiceA}}
texts:
  - {{id: ch01, voice: narrator, text: "{TEXT}"}}
""",
            {"FISHAUDIO_NET_TOKEN": fake},
        )
        assert [e.status for e in box.ledger("fishaudio_net")] == [401]
    assert done.code == 3, done.stderr
    assert "401 (unauthorized): Unauthorized: API Token 无效" in done.stdout
    assert fake not in done.stdout + done.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert fake.encode() not in path.read_bytes(), path
