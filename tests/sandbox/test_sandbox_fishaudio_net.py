"""Contract tests of the fishaudio.net emulator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import aiohttp
import msgpack
import pytest

from runner.sandbox import AccountConfig, FishAudioNetConfig, RateLimit, Sandbox

from .conftest import FAST, wav_info

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": "Bearer net-main"}
ACCOUNTS = (
    AccountConfig(
        label="main",
        credentials=("net-main",),
        voices=("voiceA",),
        balance=100,
        rate=RateLimit(requests=5, per_seconds=60),
    ),
    AccountConfig(label="other", credentials=("net-other",), voices=("voiceB",)),
)
CONFIG = replace(FAST, fishaudio_net=FishAudioNetConfig(accounts=ACCOUNTS, max_body_bytes=4096))


@pytest.fixture
async def net() -> Any:
    async with Sandbox(CONFIG) as sandbox:
        yield sandbox


async def post(
    http: aiohttp.ClientSession,
    sb: Sandbox,
    body: Mapping[str, object],
    headers: dict[str, str] = AUTH,
    *,
    packed: bool = False,
) -> tuple[int, str, bytes]:
    kw: dict[str, Any] = {"json": body}
    if packed:
        kw = {
            "data": msgpack.packb(body),
            "headers": {**headers, "Content-Type": "application/msgpack"},
        }
    else:
        kw["headers"] = headers
    async with http.post(f"{sb.urls['fishaudio_net']}/api/open/tts", **kw) as r:
        return r.status, r.content_type, await r.read()


async def test_audio_bytes_and_cached_url(net: Sandbox, http: aiohttp.ClientSession) -> None:
    body = {
        "reference_id": "voiceA",
        "text": "要转换的文本内容",
        "speed": 1.0,
        "volume": 0,
        "version": "s1",
        "format": "wav",
        "cache": False,
    }
    status, mime, audio = await post(http, net, body)
    assert (status, mime) == (200, "audio/wav")
    assert wav_info(audio)[0] == 44_100

    status, mime, raw = await post(http, net, {**body, "format": "mp3", "cache": True}, packed=True)
    assert (status, mime) == (200, "application/json")
    reply = msgpack.unpackb(raw) if raw[:1] != b"{" else __import__("json").loads(raw)
    assert reply["success"] is True
    assert reply["format"] == "mp3"
    assert reply["characters_used"] == 8
    assert reply["quota_remaining"] == 84
    async with http.get(reply["audio_url"]) as r:
        assert r.status == 200
        assert r.content_type == "audio/mpeg"
    assert len(net.deviations) == 0


async def test_v3_emotion(net: Sandbox, http: aiohttp.ClientSession) -> None:
    body = {"reference_id": "voiceA", "text": "hi", "version": "v3-hd", "emotion": "happy"}
    assert (await post(http, net, body))[0] == 200
    status, _, raw = await post(http, net, {**body, "version": "v1"})
    assert status == 400
    assert b'"code": "invalid_params"' in raw
    assert [d.field for d in net.deviations] == ["emotion"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "field"),
    [
        ({"reference_id": "voiceA", "text": "hi", "speed": 2.5}, AUTH, 400, "speed"),
        ({"reference_id": "voiceA", "text": "hi", "volume": -21}, AUTH, 400, "volume"),
        ({"reference_id": "voiceA", "text": "hi", "version": "v4"}, AUTH, 400, "version"),
        ({"reference_id": "voiceA", "text": "hi", "format": "opus"}, AUTH, 400, "format"),
        ({"reference_id": "voiceA"}, AUTH, 400, "text"),
        ({"text": "hi"}, AUTH, 400, "reference_id"),
        ({"reference_id": "voiceA", "text": "hi"}, {}, 401, "Authorization"),
        (
            {"reference_id": "voiceA", "text": "hi"},
            {"Authorization": "net-main"},
            401,
            "Authorization",
        ),
    ],
)
async def test_request_errors(
    net: Sandbox,
    http: aiohttp.ClientSession,
    body: dict[str, object],
    headers: dict[str, str],
    status: int,
    field: str,
) -> None:
    got, _, raw = await post(http, net, body, headers)
    reply = __import__("json").loads(raw)
    assert got == status
    assert set(reply) == {"error", "details", "code"}
    assert [d.field for d in net.deviations] == [field]


async def test_resource_and_limit_errors(net: Sandbox, http: aiohttp.ClientSession) -> None:
    json = __import__("json")
    cases = [
        ({"reference_id": "nope", "text": "hi"}, 404, "model_not_found"),
        ({"reference_id": "voiceB", "text": "hi"}, 403, "forbidden"),
        ({"reference_id": "voiceA", "text": "x" * 200}, 429, "insufficient_credits"),
    ]
    for body, status, code in cases:
        got, _, raw = await post(http, net, body)
        assert (got, json.loads(raw)["code"]) == (status, code)
    got, _, raw = await post(http, net, {"reference_id": "voiceA", "text": "x" * 5000})
    assert (got, json.loads(raw)["code"]) == (413, "payload_too_large")
    # The limit (5 per minute) is now reached: the same 429 status, told apart by the body.
    for _ in range(2):
        got, _, raw = await post(http, net, {"reference_id": "voiceA", "text": "hi"})
    assert (got, json.loads(raw)["code"]) == (429, "rate_limited")
    assert len(net.deviations) == 0
