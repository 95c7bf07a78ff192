"""The Fish (yuntts proxy) adapter against the sandbox's emulator, over loopback HTTP."""

from __future__ import annotations

import io
import math
import re
import struct
import wave
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest
from aiohttp import web
from support import english_prose, tts_runner, wav_stats

from runner.errors import (
    CorruptResult,
    OutOfCredit,
    PermanentError,
    TransientError,
    Unauthorized,
)
from runner.events import Events
from runner.manifest import load_manifests
from runner.manifest.params import FileRef, hash_file
from runner.plan import expand, iter_segments
from runner.plans import PRESETS
from runner.providers.base import Request, Stored
from runner.providers.fish_yuntts import FishYunTTSProvider
from runner.sandbox import (
    AccountConfig,
    FaultConfig,
    FishYunTTSConfig,
    Sandbox,
    SandboxConfig,
    SandboxThread,
)

from .conftest import ContextFactory, EventLog

pytestmark = pytest.mark.anyio

TOKEN = "tok-fish-main"
OTHER = "tok-fish-other"
OFFICIAL = "7f92f8afb8ec43bf81429cc1c9199cb1"
TEXT = "The keeper remembers the long road home. A traveler carries a quiet song at dusk."
ACCOUNTS = (
    AccountConfig(label="main", credentials=(TOKEN,), voices=("alice", "bob"), model_limit=2),
    AccountConfig(label="other", credentials=(OTHER,), voices=("carol",)),
)
CONFIG = SandboxConfig(
    fish_yuntts=FishYunTTSConfig(accounts=ACCOUNTS, faults=FaultConfig(slow_seconds=3.0))
)
TAG = re.compile(r"<\|speaker:\d+\|>")


def make_wav(seconds: float, rate: int = 16_000) -> bytes:
    frames = int(seconds * rate)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(2 * math.pi * 220 * i / rate)))
                for i in range(frames)
            )
        )
    return buffer.getvalue()


def ask(text: str = TEXT, **params: Any) -> Request:
    return Request(key="f1" * 32, text=text, params=params, request_id="req-1")


@pytest.fixture
async def fish() -> AsyncIterator[Sandbox]:
    async with Sandbox(CONFIG) as box:
        yield box


@pytest.fixture
async def provider_for(make_context: ContextFactory) -> AsyncIterator[Any]:
    """`provider_for(sandbox or base URL, token=..., log=..., **options)`: an adapter."""
    made: list[FishYunTTSProvider] = []

    def make(
        box: Sandbox | str, token: str = TOKEN, log: EventLog | None = None, **options: Any
    ) -> Any:
        url = box if isinstance(box, str) else box.urls["fish_yuntts"]
        events = Events([log or EventLog()])
        context = make_context("fish_yuntts", url, secret=token, options=options, events=events)
        made.append(FishYunTTSProvider(context))
        return made[-1]

    yield make
    for provider in made:
        await provider.aclose()


def synth_entries(box: Sandbox) -> list[Any]:
    return [e for e in box.ledger.entries("fish_yuntts") if e.endpoint.endswith("/tts")]


# -- the request, exactly ------------------------------------------------------------------


async def test_body_is_the_text_the_voice_and_the_reply_shape(
    fish: Sandbox, provider_for: Any
) -> None:
    provider = provider_for(fish)
    assert await provider.body(ask(reference_id="alice", model="s1")) == {
        "text": TEXT,
        "reference_id": "alice",
        "format": "mp3",
        "stream": True,
    }
    audio = await provider.synthesize(ask(reference_id="alice", model="s1"))
    (entry,) = synth_entries(fish)
    assert (entry.status, entry.account, entry.voice) == (200, "main", "fish:alice")
    assert audio.format == "mp3"
    assert audio.data[:3] == b"ID3"
    assert audio.cost == pytest.approx(entry.cost)  # X-Cost, in yuan
    assert fish.deviations.snapshot() == ()


@pytest.mark.parametrize(
    ("fmt", "extra", "magic"),
    [
        ("mp3", {"mp3_bitrate": 192, "sample_rate": 48000}, b"ID3"),
        ("opus", {"opus_bitrate": 32000, "sample_rate": 24000}, b"OggS"),
        ("wav", {"sample_rate": 22050}, b"RIFF"),
        ("pcm", {"sample_rate": 16000}, b""),
    ],
)
async def test_every_documented_parameter_passes_the_range_checks(
    fish: Sandbox, provider_for: Any, fmt: str, extra: dict[str, Any], magic: bytes
) -> None:
    params = {
        "model": "s2-pro",
        "reference_id": "alice",
        "temperature": 0.9,
        "top_p": 0.5,
        "chunk_length": 200,
        "normalize": False,
        "format": fmt,
        "latency": "balanced",
        "prosody": {"speed": 1.2, "volume": -3, "normalize_loudness": True},
        "max_new_tokens": 2048,
        "repetition_penalty": 1.3,
        "min_chunk_length": 20,
        "condition_on_previous_chunks": False,
        "early_stop_threshold": 0.8,
        "stream": True,
        **extra,
    }
    provider = provider_for(fish, msgpack=fmt == "opus")
    body = await provider.body(ask(**params))
    assert set(body) == {"text", *params} - {"model"}  # model travels as a header
    audio = await provider.synthesize(ask(**params))
    assert audio.format == fmt
    assert audio.data.startswith(magic)
    assert audio.sample_rate == (16000 if fmt == "pcm" else None)
    assert fish.deviations.snapshot() == ()
    assert [e.status for e in synth_entries(fish)] == [200]


async def test_stream_false_pays_once_and_downloads_the_url(
    fish: Sandbox, provider_for: Any
) -> None:
    provider = provider_for(fish)
    request = ask(reference_id="alice", stream=False, format="wav")
    stored = await provider.synthesize(request)
    assert isinstance(stored, Stored)
    assert [e.operation.value for e in fish.ledger.entries("fish_yuntts")] == ["synthesize"]
    audio = await provider.fetch(request, stored.url)
    assert audio.data[:4] == b"RIFF"
    entries = fish.ledger.entries("fish_yuntts")
    assert [(e.operation.value, e.status) for e in entries] == [
        ("synthesize", 200),
        ("download", 200),
    ]
    assert stored.cost == pytest.approx(entries[0].cost)
    assert audio.cost is None  # counted once, when it was stored
    assert fish.deviations.snapshot() == ()


@pytest.mark.parametrize(
    "fault", ["http_500", "drop", "truncate_with_length", "truncate_no_length", "corrupt_header"]
)
async def test_a_failed_download_is_fetched_again_never_paid_again(
    fish: Sandbox, provider_for: Any, fault: str
) -> None:
    fish.faults["fish_yuntts"].enqueue(fault, endpoint="{name}", count=2)
    log = EventLog()
    provider = provider_for(fish, log=log)
    request = ask(reference_id="alice", stream=False, format="wav")
    stored = await provider.synthesize(request)
    assert isinstance(stored, Stored)
    audio = await provider.fetch(request, stored.url)
    assert audio.data[:4] == b"RIFF"
    entries = fish.ledger.entries("fish_yuntts")
    assert [e.operation.value for e in entries] == ["synthesize", *["download"] * 3]
    assert [e.fault for e in entries[1:]] == [fault, fault, ""]
    assert fish.ledger.paid() == 1
    assert fish.ledger.paid_twice(include_lost=True) == []
    # Every retry was of the download (aiohttp itself may resend a GET whose kept-alive
    # connection was dropped, so there may be fewer retry events than dropped replies).
    retried = {f["what"] for k, f in log.records if k == "retry"}
    assert retried == {"segment f1f1f1f1f1f1 (download)"}


# -- transient failures of the paid call ----------------------------------------------------


@pytest.mark.parametrize(
    "fault", ["http_500", "drop", "truncate_with_length", "truncate_no_length"]
)
async def test_transient_faults_are_retried(fish: Sandbox, provider_for: Any, fault: str) -> None:
    fish.faults["fish_yuntts"].enqueue(fault, endpoint="tts")
    log = EventLog()
    provider = provider_for(fish, log=log)
    audio = await provider.synthesize(ask(reference_id="alice"))
    assert audio.data[:3] == b"ID3"
    assert [e.fault for e in synth_entries(fish)] == [fault, ""]
    assert log.kinds().count("retry") == 1
    assert provider.context.stats.retries["TransientError"] == 1
    assert fish.ledger.paid_twice() == []  # the first payment was lost on the way


async def test_a_reply_slower_than_the_timeout_is_retried(fish: Sandbox, provider_for: Any) -> None:
    fish.faults["fish_yuntts"].enqueue("slow", endpoint="tts")
    provider = provider_for(fish, timeout=0.4)
    audio = await provider.synthesize(ask(reference_id="alice"))
    assert audio.data[:3] == b"ID3"
    assert [e.fault for e in synth_entries(fish)] == ["slow", ""]
    assert provider.context.stats.retries["TransientError"] == 1


async def test_throttling_waits_for_retry_after_then_succeeds(
    fish: Sandbox, provider_for: Any
) -> None:
    fish.faults["fish_yuntts"].enqueue("rate_limit_429", endpoint="tts")
    log = EventLog()
    provider = provider_for(fish, log=log)
    await provider.synthesize(ask(reference_id="alice"))
    assert fish.ledger.count_429(provider="fish_yuntts") == 1
    (event,) = [f for k, f in log.records if k == "rate_limited"]
    assert event["wait"] == 1.0  # the Retry-After the sandbox sent
    assert "too many requests" in str(event["message"])


# -- documented errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "params", "text", "error", "said"),
    [
        (TOKEN, {"reference_id": "alice"}, "", PermanentError, r"400 \(missing_text\)"),
        (TOKEN, {"reference_id": "alice", "model": "s3"}, TEXT, PermanentError, "invalid_model"),
        (
            TOKEN,
            {"reference_id": "alice", "format": "flac"},
            TEXT,
            PermanentError,
            "invalid_format",
        ),
        (TOKEN, {"reference_id": "alice", "top_p": 3}, TEXT, PermanentError, "invalid_params"),
        (
            "tok-wrong",
            {"reference_id": "alice"},
            TEXT,
            Unauthorized,
            r"401 \(unauthorized\): invalid token",
        ),
        (TOKEN, {"reference_id": "nobody"}, TEXT, PermanentError, "model nobody not found"),
        (
            TOKEN,
            {"reference_id": "carol"},
            TEXT,
            PermanentError,
            r"404 \(model_not_found\): model carol not found",
        ),
    ],
)
async def test_documented_errors_reach_the_right_class_with_the_message(
    fish: Sandbox,
    provider_for: Any,
    token: str,
    params: dict[str, Any],
    text: str,
    error: type[Exception],
    said: str,
) -> None:
    with pytest.raises(error, match=said) as caught:
        await provider_for(fish, token=token).synthesize(ask(text, **params))
    assert type(caught.value) is error
    assert token not in str(caught.value)


async def test_no_balance_is_out_of_credit(provider_for: Any) -> None:
    poor = replace(ACCOUNTS[0], balance=0.0001)
    config = SandboxConfig(fish_yuntts=FishYunTTSConfig(accounts=(poor,)))
    async with Sandbox(config) as box:
        with pytest.raises(OutOfCredit, match=r"402 \(insufficient_balance\): balance too low"):
            await provider_for(box).synthesize(ask(reference_id="alice"))


async def test_internal_errors_are_transient_until_retries_run_out(
    fish: Sandbox, provider_for: Any
) -> None:
    fish.faults["fish_yuntts"].enqueue("http_500", endpoint="tts", count=4)
    with pytest.raises(TransientError, match=r"500 \(internal_error\): internal server error"):
        await provider_for(fish).synthesize(ask(reference_id="alice"))
    assert len(synth_entries(fish)) == 4


async def test_forbidden_and_not_allowed_are_permanent(fish: Sandbox, provider_for: Any) -> None:
    provider = provider_for(fish)
    with pytest.raises(
        PermanentError, match=r"403 \(permission_denied\): you may only change your own"
    ):
        await provider.delete_voice("carol")  # another account's model
    with pytest.raises(PermanentError, match="HTTP 405"):
        await provider._json("GET", "/tts", "read the synthesis endpoint")


async def test_a_200_that_is_not_the_audio_asked_for_is_corrupt(provider_for: Any) -> None:
    """A proxy that ignores `stream: true` (or a login page) answers 200 with JSON or HTML."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"url": "http://example.invalid/a.mp3", "cost": 0.01})

    app = web.Application()
    app.router.add_post("/api/v1/fish-audio/tts", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        host, port = runner.addresses[0][:2]
        provider = provider_for(f"http://{host}:{port}")
        with pytest.raises(CorruptResult, match="application/json where mp3 audio was expected"):
            await provider.synthesize(ask(reference_id="alice"))
        assert provider.context.stats.retries["CorruptResult"] == 3
    finally:
        await runner.cleanup()


# -- MessagePack and zero-shot references --------------------------------------------------


async def test_references_travel_as_msgpack_binary(
    fish: Sandbox, provider_for: Any, tmp_path: Path
) -> None:
    refs = []
    for i, seconds in enumerate((2.0, 3.0)):
        path = tmp_path / f"ref{i}.wav"
        path.write_bytes(make_wav(seconds))
        digest, size = hash_file(path)
        refs.append({"audio": FileRef(path, digest, size), "text": f"reference number {i}"})
    provider = provider_for(fish)
    body = await provider.body(ask(references=refs))
    assert body["references"] == [
        {"audio": (tmp_path / f"ref{i}.wav").read_bytes(), "text": f"reference number {i}"}
        for i in range(2)
    ]
    await provider.synthesize(ask(references=refs))
    (entry,) = synth_entries(fish)
    assert entry.status == 200
    assert entry.voice.startswith("fish:clone:")
    assert fish.deviations.snapshot() == ()

    # The negative control: the sandbox does notice base64 text where bytes belong.
    body = {"text": TEXT, "references": [{"audio": "UklGRg==", "text": "x"}]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{fish.urls['fish_yuntts']}/api/v1/fish-audio/tts",
            data=msgpack.packb(body, use_bin_type=True),
            headers={"Authorization": TOKEN, "Content-Type": "application/msgpack"},
        ) as reply,
    ):
        assert reply.status == 200
    (deviation,) = fish.deviations.snapshot("fish_yuntts")
    assert deviation.problem == "base64 text where MessagePack binary is required"


async def test_a_changed_reference_recording_is_refused(
    fish: Sandbox, provider_for: Any, tmp_path: Path
) -> None:
    path = tmp_path / "ref.wav"
    path.write_bytes(make_wav(1.0))
    ref = FileRef(path, *hash_file(path))
    path.write_bytes(make_wav(1.5))
    with pytest.raises(PermanentError, match="changed after the manifest was loaded"):
        await provider_for(fish).synthesize(ask(references=[{"audio": ref}]))
    assert fish.ledger.entries() == ()


async def test_msgpack_option_packs_every_body(fish: Sandbox, provider_for: Any) -> None:
    await provider_for(fish, msgpack=True).synthesize(ask(reference_id="alice", format="wav"))
    assert [e.status for e in synth_entries(fish)] == [200]
    assert fish.deviations.snapshot() == ()


# -- voice models ---------------------------------------------------------------------------


async def test_voice_model_life_cycle_and_the_cap(
    fish: Sandbox, provider_for: Any, tmp_path: Path
) -> None:
    provider = provider_for(fish)
    recording = tmp_path / "me.wav"
    recording.write_bytes(make_wav(3.0))
    # `main` owns alice and bob already: the normal plan's two models.
    with pytest.raises(PermanentError, match="`normal` plan allows 2 voice models") as caught:
        await provider.create_voice("mine", [recording], describe="my voice", texts=["hello"])
    assert "model limit of 2 reached" in str(caught.value)
    await provider.delete_voice("bob")
    created = await provider.create_voice("mine", [recording], describe="my voice")
    listed = {v.id: v.name for v in await provider.list_voices()}
    assert listed[created.id] == "mine"
    assert {"alice", OFFICIAL} <= set(listed)
    assert "bob" not in listed
    assert "carol" not in listed  # another account's private model
    await provider.delete_voice(created.id)
    assert created.id not in {v.id for v in await provider.list_voices()}
    assert fish.deviations.snapshot() == ()


async def test_a_lost_create_reply_adopts_the_model_instead_of_making_two(
    fish: Sandbox, provider_for: Any, tmp_path: Path
) -> None:
    provider = provider_for(fish)
    await provider.delete_voice("bob")
    recording = tmp_path / "me.opus"
    recording.write_bytes(make_wav(3.0))  # sniffed as audio, named as the seed allows
    fish.faults["fish_yuntts"].enqueue("drop", endpoint="fish-audio/model")
    created = await provider.create_voice("mine", [recording])
    creates = [
        e for e in fish.ledger.entries() if e.method == "POST" and e.endpoint.endswith("/model")
    ]
    assert [e.fault for e in creates] == ["drop"]  # made once, its reply lost, then adopted
    owned = [m for m in fish.fish_yuntts.models.values() if m.owner == "main"]
    assert [m.model_id for m in owned if m.title == "mine"] == [created.id]


async def test_listing_pages_through_every_model(provider_for: Any) -> None:
    many = replace(ACCOUNTS[0], voices=tuple(f"v{i:03}" for i in range(230)))
    async with Sandbox(SandboxConfig(fish_yuntts=FishYunTTSConfig(accounts=(many,)))) as box:
        voices = await provider_for(box).list_voices()
        assert len({v.id for v in voices}) == 232  # plus the two official voices
        pages = [e for e in box.ledger.entries() if e.endpoint.endswith("model/list")]
        assert len(pages) == 3


def test_cost_estimate_leaves_speaker_tags_out() -> None:
    preset = PRESETS[("fish_yuntts", "normal")]
    text = "<|speaker:0|>" + "你" * 150
    assert FishYunTTSProvider.estimate_cost(text, {}, preset) == pytest.approx(0.021)


# -- end to end, through `tts-runner run` ----------------------------------------------------

DIALOGUE = " ".join(
    f"<|speaker:{i % 2}|>{line}"
    for i, line in enumerate(
        [
            "Good morning! Did you sleep well in the lighthouse last night?",
            "Not really, the wind kept rattling the shutters until dawn.",
            "Then have some tea. The kettle is already singing on the stove.",
            "Thank you. Did the supply boat come in before the storm?",
            "It did, with flour, lamp oil and a letter from your sister.",
            "A letter? Read it to me while I warm my hands, please.",
        ]
    )
)


def chapter_ok(path: Path, chars: int) -> None:
    """A chapter that exists, lasts about as long as its text takes to say, and is not silent."""
    _, seconds, rms = wav_stats(path)
    assert 0.03 * chars < seconds < 0.25 * chars, (path.name, seconds, chars)
    assert rms > -35, f"{path.name} is near-silent ({rms:.1f} dBFS)"


def run_against(box: SandboxThread, tmp_path: Path, body: str, token: str = TOKEN) -> Any:
    manifest = tmp_path / "book.yaml"
    manifest.write_text(body.replace("BASE_URL", box.urls["fish_yuntts"]), encoding="utf-8")
    return tts_runner("run", manifest, "--json-log", cwd=tmp_path, env={"YUNTTS_TOKEN": token})


def test_rehearsal_with_sandbox_flag(tmp_path: Path) -> None:
    (tmp_path / "ref.wav").write_bytes(make_wav(3.0))
    text = english_prose(6)
    (tmp_path / "book.yaml").write_text(
        f"""version: 1
name: fish-rehearsal
output: {{dir: out, format: wav, pause_ms: 200}}
providers:
  fish: {{kind: fish_yuntts, plan: vip}}
voices:
  narrator: {{provider: fish, reference_id: {OFFICIAL}, model: s1}}
  clone:
    provider: fish
    references: [{{audio: ref.wav, text: a steady sine tone}}]
    format: wav
texts:
  - {{id: ch01, voice: narrator, text: "{text}"}}
  - {{id: ch02, voice: clone, text: "{TEXT}"}}
""",
        encoding="utf-8",
    )
    done = tts_runner("run", "book.yaml", "--sandbox", "--json-log", cwd=tmp_path)
    assert done.code == 0, done.stderr
    chapter_ok(tmp_path / "out" / "ch01.wav", len(text))
    chapter_ok(tmp_path / "out" / "ch02.wav", len(TEXT))


def test_multi_speaker_dialogue_with_downloads_that_fail(tmp_path: Path) -> None:
    with SandboxThread(CONFIG) as box:
        for fault in ("http_500", "corrupt_header", "truncate_no_length"):
            box.enqueue_fault("fish_yuntts", fault, endpoint="{name}")
        done = run_against(
            box,
            tmp_path,
            f"""version: 1
name: dialogue
output: {{dir: out, format: wav}}
providers:
  fish: {{kind: fish_yuntts, base_url: BASE_URL, limits: {{max_chars: 90}}}}
voices:
  pair: {{provider: fish, model: s2-pro, speakers: [alice, bob], stream: false, format: wav}}
texts:
  - {{id: talk, voice: pair, text: "{DIALOGUE}"}}
""",
        )
        assert done.code == 0, done.stderr
        assert box.deviations("fish_yuntts") == ()
        entries = box.ledger("fish_yuntts")
        synths = [e for e in entries if e.operation.value == "synthesize"]
        downloads = [e for e in entries if e.operation.value == "download"]
    (manifest,) = load_manifests([tmp_path / "book.yaml"])
    chunks = [s.text for s in iter_segments(expand(manifest))]
    assert len(chunks) >= 5
    assert all(TAG.match(chunk) for chunk in chunks)  # each chunk says who speaks
    assert len(synths) == len(chunks) == len(done.events("request"))  # paid once per chunk
    assert {(e.status, e.voice) for e in synths} == {(200, "fish:alice+bob")}
    # Billed without the tags, as the adapter estimates.
    assert sum(e.characters for e in synths) == sum(len(TAG.sub("", c)) for c in chunks)
    assert sorted(e.fault for e in downloads if e.fault) == [
        "corrupt_header",
        "http_500",
        "truncate_no_length",
    ]
    assert len(downloads) == len(synths) + 3
    chapter_ok(tmp_path / "out" / "talk.wav", len(TAG.sub("", DIALOGUE)))


def test_corrupt_audio_is_requested_again_by_the_scheduler(tmp_path: Path) -> None:
    with SandboxThread(CONFIG) as box:
        for fault in ("corrupt_header", "corrupt_samples", "http_500"):
            box.enqueue_fault("fish_yuntts", fault, endpoint="tts")
        text = english_prose(10)
        done = run_against(
            box,
            tmp_path,
            f"""version: 1
name: faults
output: {{dir: out, format: wav}}
providers:
  fish: {{kind: fish_yuntts, base_url: BASE_URL, msgpack: true, limits: {{max_chars: 200}}}}
voices:
  narrator: {{provider: fish, reference_id: alice, format: opus, sample_rate: 24000}}
texts:
  - {{id: ch01, voice: narrator, text: "{text}"}}
""",
        )
        assert done.code == 0, done.stderr
        assert box.deviations("fish_yuntts") == ()
        synths = [e for e in box.ledger("fish_yuntts") if e.operation.value == "synthesize"]
    (summary,) = done.events("summary")
    assert summary["accounts"]["fish"]["re_requests"] == 2  # type: ignore[index]
    assert sorted(e.fault for e in synths if e.fault) == [
        "corrupt_header",
        "corrupt_samples",
        "http_500",
    ]
    assert len(synths) == summary["synthesized"] + 3  # type: ignore[operator]
    assert {e["cause"] for e in done.events("retry")} >= {"corrupt", "TransientError"}
    chapter_ok(tmp_path / "out" / "ch01.wav", len(text))


def test_the_token_appears_nowhere_after_a_refused_run(tmp_path: Path) -> None:
    fake = "yt-FAKE-TOKEN-7c1d9e52b4a8"
    with SandboxThread(CONFIG) as box:
        done = run_against(
            box,
            tmp_path,
            f"""version: 1
name: refused
output: {{dir: out, format: wav}}
providers:
  fish: {{kind: fish_yuntts, base_url: BASE_URL}}
voices:
  narrator: {{provider: fish, reference_id: alice}}
texts:
  - {{id: ch01, text: "{TEXT}"}}
""",
            token=fake,
        )
        assert [e.status for e in box.ledger("fish_yuntts")] == [401]
    assert done.code == 3, done.stderr
    assert "HTTP 401 (unauthorized): invalid token" in done.stdout
    assert "check the token in YUNTTS_TOKEN" in done.stdout
    assert fake not in done.stdout + done.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert fake.encode() not in path.read_bytes(), path
