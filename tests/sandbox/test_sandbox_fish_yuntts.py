"""Contract tests of the Fish (yuntts proxy) emulator."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import aiohttp
import msgpack
import pytest

from runner.sandbox import AccountConfig, FishYunTTSConfig, RateLimit, Sandbox

from .conftest import FAST, make_wav

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": "tok-main"}
ACCOUNTS = (
    AccountConfig(label="main", credentials=("tok-main",), voices=("modelA",), balance=1.0),
    AccountConfig(label="other", credentials=("tok-other",), voices=("modelB",)),
)
CONFIG = replace(FAST, fish_yuntts=FishYunTTSConfig(accounts=ACCOUNTS))
OFFICIAL = "7f92f8afb8ec43bf81429cc1c9199cb1"


@pytest.fixture
async def fish() -> Any:
    async with Sandbox(CONFIG) as sandbox:
        yield sandbox


def url(sb: Sandbox, path: str) -> str:
    return f"{sb.urls['fish_yuntts']}/api/v1/fish-audio{path}"


async def post_tts(
    http: aiohttp.ClientSession,
    sb: Sandbox,
    body: Mapping[str, object],
    *,
    headers: dict[str, str] | None = None,
    packed: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    headers = dict(AUTH if headers is None else headers)
    if packed:
        headers["Content-Type"] = "application/msgpack"
        kw: dict[str, Any] = {"data": msgpack.packb(body, use_bin_type=True)}
    else:
        kw = {"json": body}
    async with http.post(url(sb, "/tts"), headers=headers, **kw) as r:
        return r.status, dict(r.headers), await r.read()


async def test_stream_true_returns_audio_with_cost_headers(
    fish: Sandbox, http: aiohttp.ClientSession
) -> None:
    text = "你" * 150
    status, headers, audio = await post_tts(http, fish, {"text": text, "reference_id": "modelA"})
    assert status == 200
    assert headers["Content-Type"] == "audio/mpeg"
    assert headers["Content-Length"] == str(len(audio))
    assert audio[:3] == b"ID3"
    assert headers["X-Characters"] == "150"
    assert headers["X-Cost"] == "0.021"
    assert headers["X-Task-Id"].startswith("fishaudio_")
    assert len(fish.deviations) == 0
    assert fish.ledger.entries()[0].cost == pytest.approx(0.021)


@pytest.mark.parametrize(
    ("fmt", "mime", "magic"),
    [("wav", "audio/wav", b"RIFF"), ("pcm", "audio/pcm", b""), ("opus", "audio/opus", b"OggS")],
)
async def test_formats(
    fish: Sandbox, http: aiohttp.ClientSession, fmt: str, mime: str, magic: bytes
) -> None:
    body = {"text": "hello", "reference_id": OFFICIAL, "format": fmt}
    status, headers, audio = await post_tts(http, fish, body)
    assert status == 200
    assert headers["Content-Type"] == mime
    assert audio.startswith(magic)


async def test_stream_false_gives_a_url(fish: Sandbox, http: aiohttp.ClientSession) -> None:
    body = {"text": "hello there", "reference_id": "modelA", "stream": False, "format": "wav"}
    status, _, raw = await post_tts(http, fish, body)
    assert status == 200
    reply = json.loads(raw)
    assert set(reply) == {"url", "chars", "cost", "task_id"}
    assert reply["chars"] == 11
    async with http.get(reply["url"]) as r:
        assert r.status == 200
        assert r.content_type == "audio/wav"
        assert (await r.read())[:4] == b"RIFF"
    fish.clock.advance(86_400)
    async with http.get(reply["url"]) as r:
        assert r.status == 404


async def test_msgpack_reference_audio_binary_versus_string(
    fish: Sandbox, http: aiohttp.ClientSession
) -> None:
    audio = make_wav(1.0)
    binary = {"text": "克隆", "references": [{"audio": audio, "text": "参考"}]}
    status, _, _ = await post_tts(http, fish, binary, packed=True)
    assert status == 200
    assert len(fish.deviations) == 0

    as_text = {
        "text": "克隆",
        "references": [{"audio": base64.b64encode(audio).decode(), "text": "参考"}],
    }
    status, _, _ = await post_tts(http, fish, as_text, packed=True)
    assert status == 200
    [deviation] = fish.deviations
    assert deviation.field == "references[0].audio"
    assert deviation.problem == "base64 text where MessagePack binary is required"

    status, _, _ = await post_tts(http, fish, as_text)  # base64 in JSON is the documented way
    assert status == 200
    assert len(fish.deviations) == 1


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ({"reference_id": "modelA"}, AUTH, 400, "missing_text"),
        ({"text": "hi"}, AUTH, 400, "missing_reference"),
        ({"text": "hi", "reference_id": "modelA"}, {**AUTH, "model": "s3"}, 400, "invalid_model"),
        ({"text": "hi", "reference_id": "modelA", "format": "ogg"}, AUTH, 400, "invalid_format"),
        ({"text": "hi", "reference_id": "modelA", "chunk_length": 50}, AUTH, 400, "invalid_params"),
        ({"text": "hi", "reference_id": "modelA", "temperature": 1.5}, AUTH, 400, "invalid_params"),
        ({"text": "hi", "reference_id": "modelA", "mp3_bitrate": 96}, AUTH, 400, "invalid_params"),
        (
            {"text": "hi", "reference_id": "modelA", "prosody": {"speed": 3}},
            AUTH,
            400,
            "invalid_params",
        ),
        ({"text": "hi", "reference_id": "modelA", "normalize": 1}, AUTH, 400, "invalid_params"),
        (
            {"text": "hi", "reference_id": "modelA", "sample_rate": 12345},
            AUTH,
            400,
            "invalid_params",
        ),
        (
            {"text": "<|speaker:0|>a<|speaker:1|>b", "reference_id": ["modelA", OFFICIAL]},
            {**AUTH, "model": "s1"},
            400,
            "invalid_model",
        ),
        (
            {"text": "<|speaker:2|>a", "reference_id": ["modelA", OFFICIAL]},
            AUTH,
            400,
            "invalid_params",
        ),
        ({"text": "hi", "reference_id": "modelA", "references": []}, AUTH, 400, "invalid_params"),
        ({"text": "hi", "reference_id": "modelA"}, {}, 401, "unauthorized"),
    ],
)
async def test_request_errors_are_deviations(
    fish: Sandbox,
    http: aiohttp.ClientSession,
    body: dict[str, object],
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    got, _, raw = await post_tts(http, fish, body, headers=headers)
    reply = json.loads(raw)
    assert (got, reply["error"]) == (status, code)
    assert reply["message"]
    assert len(fish.deviations) == 1
    assert fish.ledger.paid() == 0


async def test_runtime_errors_are_not_deviations(
    fish: Sandbox, http: aiohttp.ClientSession
) -> None:
    cases = [
        ({"text": "hi", "reference_id": "nope"}, AUTH, 404, "model_not_found"),
        ({"text": "hi", "reference_id": "modelB"}, AUTH, 404, "model_not_found"),  # private
        ({"text": "hi", "reference_id": "modelA"}, {"Authorization": "wrong"}, 401, "unauthorized"),
        ({"text": "x" * 8000, "reference_id": "modelA"}, AUTH, 402, "insufficient_balance"),
    ]
    for body, headers, status, code in cases:
        got, _, raw = await post_tts(http, fish, body, headers=headers)
        assert (got, json.loads(raw)["error"]) == (status, code)
    multi = {"text": "<|speaker:0|>你好!<|speaker:1|>你好啊!", "reference_id": ["modelA", OFFICIAL]}
    assert (await post_tts(http, fish, multi))[0] == 200
    assert len(fish.deviations) == 0


async def test_bearer_prefix_and_content_type_are_deviations(
    fish: Sandbox, http: aiohttp.ClientSession
) -> None:
    body = {"text": "hi", "reference_id": "modelA"}
    status, _, _ = await post_tts(http, fish, body, headers={"Authorization": "Bearer tok-main"})
    assert status == 200
    async with http.post(url(fish, "/tts"), headers=AUTH, data="text=hi") as r:
        assert r.status == 400
        assert (await r.json())["error"] == "invalid_params"
    assert [d.field for d in fish.deviations] == ["Authorization", "Content-Type"]


async def test_rate_limit_429(http: aiohttp.ClientSession) -> None:
    account = replace(ACCOUNTS[0], rate=RateLimit(requests=2, per_seconds=5))
    async with Sandbox(replace(CONFIG, fish_yuntts=FishYunTTSConfig(accounts=(account,)))) as sb:
        body = {"text": "hi", "reference_id": "modelA"}
        results = [await post_tts(http, sb, body) for _ in range(3)]
        assert [r[0] for r in results] == [200, 200, 429]
        assert results[2][1]["Retry-After"] == "5"


def model_form(title: str | None = "my voice", voices: int = 1, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    if title is not None:
        form.add_field("title", title)
    for i in range(voices):
        form.add_field("voices", io.BytesIO(make_wav(0.5)), filename=f"v{i}.wav")
    for key, value in fields.items():
        form.add_field(key, value)
    return form


async def test_models_lifecycle(fish: Sandbox, http: aiohttp.ClientSession) -> None:
    async with http.post(url(fish, "/model"), headers=AUTH, data=model_form(tags="a,b")) as r:
        assert r.status == 200
        created = await r.json()
    assert created["state"] == "created"
    assert created["model_id"] == created["reference_id"]
    model_id = created["model_id"]

    async with http.get(url(fish, "/model/list"), headers=AUTH, params={"source": "upload"}) as r:
        listing = await r.json()
    assert listing["total"] == 2
    assert {i["_id"] for i in listing["items"]} == {"modelA", model_id}
    async with http.get(url(fish, "/model/list"), headers=AUTH, params={"page_size": 1}) as r:
        assert (await r.json())["has_more"] is True

    params = {"model_id": model_id}
    async with http.patch(
        url(fish, "/model/update"), headers=AUTH, params=params, json={"title": "renamed"}
    ) as r:
        assert r.status == 200
        assert (await r.json())["title"] == "renamed"
    async with http.post(url(fish, "/model/update"), headers=AUTH, params=params, json={}) as r:
        assert r.status == 400
        assert (await r.json())["error"] == "missing_params"
    other = {"Authorization": "tok-other"}
    async with http.delete(url(fish, "/model/delete"), headers=other, params=params) as r:
        assert r.status == 403
        assert (await r.json())["error"] == "permission_denied"
    async with http.delete(url(fish, "/model/delete"), headers=AUTH, params=params) as r:
        assert r.status == 200
        assert (await r.json())["model_id"] == model_id
    async with http.delete(url(fish, "/model/delete"), headers=AUTH, params=params) as r:
        assert r.status == 404
        assert (await r.json())["error"] == "model_not_found"
    async with http.get(url(fish, "/model/delete"), headers=AUTH, params=params) as r:
        assert r.status == 405
        assert (await r.json())["error"] == "method_not_allowed"
    assert [d.field for d in fish.deviations] == ["<body>", "<path>"]


@pytest.mark.parametrize(
    ("form", "code"),
    [
        (lambda: model_form(title=None), "missing_title"),
        (lambda: model_form(voices=0), "missing_audio"),
        (lambda: model_form(voices=11), "too_many_files"),
        (lambda: model_form(visibility="friends"), "invalid_visibility"),
        (lambda: model_form(visibility="public"), "missing_cover_image"),
    ],
)
async def test_model_create_errors(
    fish: Sandbox, http: aiohttp.ClientSession, form: Any, code: str
) -> None:
    async with http.post(url(fish, "/model"), headers=AUTH, data=form()) as r:
        assert r.status == 400
        assert (await r.json())["error"] == code


async def test_model_audio_type_and_limit(fish: Sandbox, http: aiohttp.ClientSession) -> None:
    bad = aiohttp.FormData()
    bad.add_field("title", "x")
    bad.add_field("voices", io.BytesIO(b"plain text"), filename="notes.txt")
    async with http.post(url(fish, "/model"), headers=AUTH, data=bad) as r:
        assert (await r.json())["error"] == "invalid_audio_type"
    async with http.post(url(fish, "/model"), headers=AUTH, data=model_form()) as r:
        assert r.status == 200  # the second model of a normal account (limit 2)
    async with http.post(url(fish, "/model"), headers=AUTH, data=model_form()) as r:
        assert r.status == 400
        assert (await r.json())["error"] == "model_limit_exceeded"


async def test_model_update_with_a_cover_image(fish: Sandbox, http: aiohttp.ClientSession) -> None:
    async with http.post(url(fish, "/model"), headers=AUTH, data=model_form()) as r:
        model_id = (await r.json())["model_id"]
    params = {"model_id": model_id}
    async with http.patch(
        url(fish, "/model/update"), headers=AUTH, params=params, json={"visibility": "public"}
    ) as r:
        assert r.status == 400
        assert (await r.json())["error"] == "missing_cover_image"
    form = aiohttp.FormData()
    form.add_field("visibility", "public")
    form.add_field("cover_image", io.BytesIO(b"\x89PNG\r\n\x1a\n" + bytes(64)), filename="c.png")
    async with http.post(url(fish, "/model/update"), headers=AUTH, params=params, data=form) as r:
        assert r.status == 200
        updated = await r.json()
    assert updated["visibility"] == "public"
    assert updated["cover_image"].startswith(fish.urls["fish_yuntts"])
    other = {"Authorization": "tok-other"}
    async with http.get(
        url(fish, "/model/list"), headers=other, params={"source": "community"}
    ) as r:
        assert [i["_id"] for i in (await r.json())["items"]] == [model_id]
    assert len(fish.deviations) == 1  # the update that lacked a cover


async def test_model_voice_too_large(http: aiohttp.ClientSession) -> None:
    config = replace(CONFIG, fish_yuntts=replace(CONFIG.fish_yuntts, max_voice_bytes=10_000))
    async with (
        Sandbox(config) as sb,
        http.post(url(sb, "/model"), headers=AUTH, data=model_form()) as r,
    ):
        assert r.status == 400
        assert (await r.json())["error"] == "audio_too_large"
