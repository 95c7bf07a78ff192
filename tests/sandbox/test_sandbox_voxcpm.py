"""Contract tests of the VoxCPM2 server emulator (and its pool)."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import aiohttp
import anyio
import pytest

from runner.sandbox import Sandbox, VoxCPMConfig

from .conftest import FAST, make_wav, wav_info

pytestmark = pytest.mark.anyio

REFERENCE = base64.b64encode(make_wav(1.0)).decode()


def body(**over: str) -> dict[str, str]:
    return {
        "text": "欢迎使用 VoxCPM2 语音合成服务。",
        "prompt": "",
        "audio": "",
        "reference_text": "",
        **over,
    }


async def tts(http: aiohttp.ClientSession, url: str, payload: object) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{url}/api/tts", json=payload) as r:
        return r.status, await r.json()


@pytest.mark.parametrize(
    "payload",
    [
        body(),
        body(prompt="年轻女性,声音温柔甜美,语速适中"),
        body(audio=REFERENCE),
        body(audio="data:audio/wav;base64," + REFERENCE, reference_text="大家好"),
    ],
    ids=["text", "voice-design", "clone", "ultimate-clone"],
)
async def test_modes_succeed(
    sb: Sandbox, http: aiohttp.ClientSession, payload: dict[str, str]
) -> None:
    status, reply = await tts(http, sb.urls["voxcpm"], payload)
    assert status == 200
    assert reply["status"] == "success"
    assert reply["sample_rate"] == 48_000
    rate, channels, seconds = wav_info(base64.b64decode(reply["audio"]))
    assert (rate, channels) == (48_000, 1)
    assert seconds > 1
    assert len(sb.deviations) == 0


async def test_same_request_same_audio_other_text_other_audio(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    replies = [(await tts(http, sb.urls["voxcpm"], body(text=t)))[1]["audio"] for t in "AAB"]
    assert replies[0] == replies[1] != replies[2]


@pytest.mark.parametrize(
    ("payload", "message", "field"),
    [
        (body(text=""), "text cannot be empty", None),
        (body(audio="not base64!"), "audio is not valid base64", "audio"),
        (
            body(audio=REFERENCE, reference_text="hi", prompt="calm"),
            "prompt must be empty",
            "prompt",
        ),
        ({**body(), "prompt": 3}, "prompt must be a string", "prompt"),
    ],
)
async def test_errors(
    sb: Sandbox, http: aiohttp.ClientSession, payload: object, message: str, field: str | None
) -> None:
    status, reply = await tts(http, sb.urls["voxcpm"], payload)
    assert status == 400
    assert reply == {"status": "error", "message": reply["message"]}
    assert message in reply["message"]
    assert [d.field for d in sb.deviations] == ([field] if field else [])


async def test_missing_fields_are_deviations_but_accepted(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    status, reply = await tts(http, sb.urls["voxcpm"], {"text": "hello", "speed": 2})
    assert status == 200
    assert reply["status"] == "success"
    assert sorted(d.field for d in sb.deviations) == ["audio", "prompt", "reference_text", "speed"]


async def test_each_server_serves_one_request_at_a_time(http: aiohttp.ClientSession) -> None:
    config = replace(FAST, voxcpm=VoxCPMConfig(servers=2, latency_base=0.2, latency_per_char=0))
    async with Sandbox(config) as sb:
        assert len(sb.voxcpm_urls) == 2
        assert sb.urls["voxcpm"] == sb.voxcpm_urls[0]
        assert len(set(sb.voxcpm_urls)) == 2
        async with anyio.create_task_group() as tg:
            for url in (*sb.voxcpm_urls, sb.voxcpm_urls[0]):
                tg.start_soon(tts, http, url, body())
        assert sb.voxcpm_pool[0].max_queue_depth == 1
        assert sb.voxcpm_pool[1].max_queue_depth == 0
        assert sb.ledger.max_in_flight(account="server1") == 1
        entries = sb.ledger.entries(account="server0")
        first, second = sorted(entries, key=lambda e: e.finished_at)
        assert second.finished_at - first.finished_at >= 0.19  # served one after the other
        assert [d.field for d in sb.deviations] == ["<concurrency>"]


async def test_inference_failed_fault(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.faults["voxcpm"].enqueue("http_500")
    status, reply = await tts(http, sb.urls["voxcpm"], body())
    assert (status, reply) == (500, {"status": "error", "message": "inference failed"})
    status, reply = await tts(http, sb.urls["voxcpm"], body())
    assert status == 200
