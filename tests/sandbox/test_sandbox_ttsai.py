"""Contract tests of the TTS.ai emulator, its plans and credits."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any

import aiohttp
import anyio
import pytest

from runner.sandbox import AccountConfig, FaultConfig, Plan, Sandbox, TTSAIConfig

from .conftest import FAST, make_wav

pytestmark = pytest.mark.anyio

KEY = {"Authorization": "Bearer sk-tts-main"}
TINY = Plan(requests=10, per_seconds=2.0, concurrent=3, max_chars=100)
ACCOUNTS = (
    AccountConfig(label="pro1", credentials=("sk-tts-main",), plan="pro", balance=10),
    AccountConfig(label="tiny", credentials=("sk-tts-tiny",), plan="tiny", balance=1000),
    AccountConfig(label="free", credentials=("sk-tts-free",), plan="free"),
)
CONFIG = replace(
    FAST, ttsai=TTSAIConfig(accounts=ACCOUNTS, plans={"tiny": TINY}, max_upload_bytes=100_000)
)
HELLO = {
    "model": "kokoro",
    "text": "Hello from TTS.ai! This is a test.",
    "voice": "af_bella",
    "format": "mp3",
}


@pytest.fixture
async def tts_ai() -> Any:
    async with Sandbox(CONFIG) as sandbox:
        yield sandbox


async def post(
    http: aiohttp.ClientSession,
    sb: Sandbox,
    body: object,
    headers: dict[str, str] = KEY,
    path: str = "tts/",
) -> tuple[int, dict[str, str], bytes]:
    async with http.post(sb.urls["ttsai"] + path, json=body, headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


async def test_tts_happy_path_headers_and_credits(
    tts_ai: Sandbox, http: aiohttp.ClientSession
) -> None:
    assert tts_ai.urls["ttsai"].endswith("/v1/")
    status, headers, audio = await post(http, tts_ai, HELLO)
    assert status == 200
    assert headers["Content-Type"] == "audio/mpeg"
    assert audio[:3] == b"ID3"
    # The seed's own example: 34 characters of kokoro cost 2 credits.
    assert (headers["X-Credits-Used"], headers["X-Credits-Remaining"]) == ("2", "8")
    assert headers["X-RateLimit-Limit"] == "60"
    assert headers["X-RateLimit-Remaining"] == "59"
    assert headers["X-RateLimit-Reset"] == "60"
    assert len(tts_ai.deviations) == 0


@pytest.mark.parametrize("fmt", ["wav", "flac", "opus", "aac"])
async def test_formats(tts_ai: Sandbox, http: aiohttp.ClientSession, fmt: str) -> None:
    status, headers, audio = await post(
        http, tts_ai, {**HELLO, "format": fmt, "model": "piper", "voice": "en_US-amy-medium"}
    )
    assert status == 200
    assert len(audio) > 100
    assert headers["X-Credits-Used"] == "1"


async def test_stream_is_chunked(tts_ai: Sandbox, http: aiohttp.ClientSession) -> None:
    status, headers, audio = await post(http, tts_ai, {**HELLO, "stream": True})
    assert status == 200
    assert headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in headers
    assert audio[:3] == b"ID3"


@pytest.mark.parametrize(
    ("body", "headers", "status", "code", "deviates"),
    [
        ({**HELLO, "model": "nope"}, KEY, 404, "not_found", False),
        ({**HELLO, "voice": "nope"}, KEY, 404, "not_found", False),
        ({**HELLO, "speed": 2.5}, KEY, 400, "bad_request", True),
        ({**HELLO, "format": "wma"}, KEY, 400, "bad_request", True),
        ({**HELLO, "voice": None}, KEY, 400, "bad_request", True),
        ({**HELLO, "input": "x"}, KEY, 200, None, True),
        ({**HELLO, "text": "x" * 5001}, KEY, 400, "bad_request", True),
        (
            {**HELLO, "model": "tortoise", "voice": "tom", "text": "y" * 3000},
            KEY,
            402,
            "insufficient_credits",
            False,
        ),
        (HELLO, {}, 401, "unauthorized", True),
        (HELLO, {"Authorization": "Bearer sk-tts-unknown"}, 401, "unauthorized", False),
        (HELLO, {"Authorization": "Bearer sk-tts-free"}, 403, "forbidden", False),
    ],
)
async def test_errors(
    tts_ai: Sandbox,
    http: aiohttp.ClientSession,
    body: dict[str, object],
    headers: dict[str, str],
    status: int,
    code: str | None,
    deviates: bool,
) -> None:
    body = {k: v for k, v in body.items() if v is not None}
    got, reply_headers, raw = await post(http, tts_ai, body, headers)
    assert got == status
    if code is not None:
        assert json.loads(raw)["error"]["code"] == code
    if code == "insufficient_credits":
        assert json.loads(raw)["error"]["credits_required"] == 12
        assert json.loads(raw)["error"]["credits_available"] == 10
    assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(reply_headers)
    assert (len(tts_ai.deviations) > 0) is deviates


async def test_missing_trailing_slash(tts_ai: Sandbox, http: aiohttp.ClientSession) -> None:
    status, headers, raw = await post(http, tts_ai, HELLO, path="tts")
    assert status == 404
    assert "tts/" in json.loads(raw)["error"]["message"]
    assert headers["X-RateLimit-Remaining"] == "60"  # not counted as a start
    assert [d.field for d in tts_ai.deviations] == ["<path>"]


async def test_sliding_window_under_a_compressed_plan(
    tts_ai: Sandbox, http: aiohttp.ClientSession
) -> None:
    """10 per 2 s: the 11th start inside any 2 s window is refused, whatever the boundaries."""
    key = {"Authorization": "Bearer sk-tts-tiny"}
    models = f"{tts_ai.urls['ttsai']}models/"

    async def get() -> tuple[int, dict[str, str]]:
        async with http.get(models, headers=key) as r:
            return r.status, dict(r.headers)

    assert [(await get())[0] for _ in range(5)] == [200] * 5
    tts_ai.clock.advance(1.5)
    statuses = [(await get())[0] for _ in range(5)]
    assert statuses == [200] * 5
    status, headers = await get()  # the 11th start within 2 s
    assert status == 429
    assert headers["Retry-After"] == "1"
    assert headers["X-RateLimit-Remaining"] == "0"
    tts_ai.clock.advance(0.6)  # now 2.1 s after the first five: five slots are free
    assert [(await get())[0] for _ in range(6)] == [200] * 5 + [429]

    assert tts_ai.ledger.max_starts_in_window(2.0, account="tiny", include_refused=False) == 10
    # What the client sent, refusals included: 5 + 1 + 5 + 1 between 1.5 s and 2.1 s.
    assert tts_ai.ledger.max_starts_in_window(2.0, account="tiny") == 12
    assert tts_ai.ledger.count_429(account="tiny") == 2


async def test_concurrency_limit(http: aiohttp.ClientSession) -> None:
    faults = FaultConfig(slow_seconds=0.3)
    config = replace(CONFIG, ttsai=replace(CONFIG.ttsai, faults=faults))
    async with Sandbox(config) as sb:
        sb.faults["ttsai"].enqueue("slow", endpoint="tts/", count=3)
        key = {"Authorization": "Bearer sk-tts-tiny"}
        body = {**HELLO, "text": "short"}
        statuses: list[int] = []

        async def one(delay: float) -> None:
            await anyio.sleep(delay)
            statuses.append((await post(http, sb, body, key))[0])

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(one, 0.0)
            tg.start_soon(one, 0.15)
        assert sorted(statuses) == [200, 200, 200, 429]
        assert sb.ledger.max_in_flight(account="tiny") == 4
        refused = [e for e in sb.ledger.entries() if e.status == 429]
        assert refused[0].throttled
        assert not refused[0].counted


async def test_catalog(tts_ai: Sandbox, http: aiohttp.ClientSession) -> None:
    async with http.get(tts_ai.urls["ttsai"] + "models/", headers=KEY) as r:
        models = (await r.json())["models"]
    kokoro = next(m for m in models if m["id"] == "kokoro")
    assert kokoro["tier"] == "standard"
    assert kokoro["credits_per_1k_chars"] == 2
    params = {"model": "kokoro", "language": "en", "gender": "female"}
    async with http.get(tts_ai.urls["ttsai"] + "voices/", headers=KEY, params=params) as r:
        voices = await r.json()
    assert voices["total"] == len(voices["voices"]) >= 2
    assert all(v["model"] == "kokoro" and v["gender"] == "female" for v in voices["voices"])


async def test_clone_and_stt_round_trip(tts_ai: Sandbox, http: aiohttp.ClientSession) -> None:
    form = aiohttp.FormData()
    form.add_field("reference_audio", io.BytesIO(make_wav(1.0)), filename="ref.wav")
    form.add_field("text", "This speech uses a cloned voice.")
    form.add_field("format", "wav")
    async with http.post(tts_ai.urls["ttsai"] + "tts/clone/", data=form, headers=KEY) as r:
        assert r.status == 200
        assert r.headers["X-Credits-Used"] == "4"
        audio = await r.read()
    stt = aiohttp.FormData()
    stt.add_field("file", io.BytesIO(audio), filename="out.wav")
    stt.add_field("timestamps", "true")
    async with http.post(tts_ai.urls["ttsai"] + "stt/", data=stt, headers=KEY) as r:
        assert r.status == 200
        heard = await r.json()
    assert heard["text"] == "This speech uses a cloned voice."
    assert heard["duration"] > 2
    assert heard["segments"][0]["end"] == heard["duration"]
    assert r.headers["X-Credits-Used"] == "2"
    assert r.headers["X-Credits-Remaining"] == "4"
    assert len(tts_ai.deviations) == 0


async def test_model_loading_fault(tts_ai: Sandbox, http: aiohttp.ClientSession) -> None:
    tts_ai.faults["ttsai"].enqueue("model_loading_503")
    status, headers, raw = await post(http, tts_ai, HELLO)
    assert status == 503
    assert json.loads(raw)["error"]["code"] == "model_loading"
    assert headers["Retry-After"] == "1"
    assert "X-RateLimit-Remaining" in headers
    assert (await post(http, tts_ai, HELLO))[0] == 200


async def test_clone_reference_too_large(tts_ai: Sandbox, http: aiohttp.ClientSession) -> None:
    form = aiohttp.FormData()
    form.add_field("reference_audio", io.BytesIO(make_wav(4.0)), filename="ref.wav")
    form.add_field("text", "Too long a reference.")
    async with http.post(tts_ai.urls["ttsai"] + "tts/clone/", data=form, headers=KEY) as r:
        assert r.status == 413
        assert (await r.json())["error"]["code"] == "file_too_large"
