"""Every fault kind, as a plain HTTP client observes it, and how the ledger accounts for it."""

from __future__ import annotations

import io
import json
import wave
from dataclasses import replace

import aiohttp
import anyio
import pytest

from runner.sandbox import FaultConfig, FaultKind, FishYunTTSConfig, Sandbox, SandboxConfig
from runner.sandbox.ledger import LedgerEntry

from .conftest import FAST

pytestmark = pytest.mark.anyio

FISH = {"Authorization": "tok"}
FISH_BODY = {"text": "hello world", "reference_id": "voice", "format": "wav"}
TTSAI = {"Authorization": "Bearer sk-tts-x"}
TTSAI_BODY = {"model": "kokoro", "text": "Hello there.", "voice": "af_bella", "format": "wav"}


def fish_url(sb: Sandbox) -> str:
    return f"{sb.urls['fish_yuntts']}/api/v1/fish-audio/tts"


async def settled(sb: Sandbox, count: int) -> tuple[LedgerEntry, ...]:
    """The ledger once `count` requests are recorded (a cancelled handler records late)."""
    with anyio.fail_after(5):
        while len(sb.ledger) < count:
            await anyio.sleep(0.01)
    return sb.ledger.entries()


async def test_http_500_is_not_paid(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.faults["fish_yuntts"].enqueue(FaultKind.HTTP_500)
    async with http.post(fish_url(sb), json=FISH_BODY, headers=FISH) as r:
        assert r.status == 500
        assert (await r.json())["error"] == "internal_error"
    [entry] = sb.ledger.entries()
    assert entry.fault == "http_500"
    assert not entry.paid


async def test_indextts_faults_keep_the_envelope(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.faults["indextts"].enqueue("model_loading_503", endpoint="tts/create")
    url = f"{sb.urls['indextts']}/api/third/tts/create"
    async with http.post(url, json={"content": "hi", "audioId": "v"}, headers={"sign": "s"}) as r:
        assert r.status == 503
        assert (await r.json())["code"] == 7


async def test_rate_limit_429_has_retry_after(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.faults["fishaudio_net"].enqueue("rate_limit_429")
    url = f"{sb.urls['fishaudio_net']}/api/open/tts"
    body = {"reference_id": "v", "text": "hi"}
    async with http.post(url, json=body, headers={"Authorization": "Bearer t"}) as r:
        assert r.status == 429
        assert r.headers["Retry-After"] == "1"
        assert (await r.json())["code"] == "rate_limited"
    assert sb.ledger.count_429() == 1


async def test_slow_reply_outlasts_the_client_and_the_payment_is_lost(
    http: aiohttp.ClientSession,
) -> None:
    config = replace(FAST, ttsai=replace(FAST.ttsai, faults=FaultConfig(slow_seconds=2)))
    async with Sandbox(config) as sb:
        sb.faults["ttsai"].enqueue("slow", endpoint="tts/")
        url = sb.urls["ttsai"] + "tts/"
        with pytest.raises(TimeoutError):
            async with http.post(
                url, json=TTSAI_BODY, headers=TTSAI, timeout=aiohttp.ClientTimeout(total=0.2)
            ) as r:
                await r.read()
        async with http.post(url, json=TTSAI_BODY, headers=TTSAI) as r:
            assert r.status == 200
        first, _ = await settled(sb, 2)
        assert (first.status, first.paid, first.lost) == (499, True, True)
        assert sb.ledger.paid_twice() == []  # paying again for a lost result is right
        [twice] = sb.ledger.paid_twice(include_lost=True)
        assert twice.count == 2


async def test_drop_before_reply(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.faults["fish_yuntts"].enqueue("drop")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with http.post(fish_url(sb), json=FISH_BODY, headers=FISH) as r:
            await r.read()
    [entry] = await settled(sb, 1)
    assert (entry.status, entry.fault, entry.paid, entry.lost) == (0, "drop", True, True)


async def test_dropped_indextts_create_stays_retrievable(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    sb.faults["indextts"].enqueue("drop", endpoint="tts/create")
    base, sign = f"{sb.urls['indextts']}/api/third", {"sign": "s"}
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with http.post(
            f"{base}/tts/create", json={"content": "你好", "audioId": "v"}, headers=sign
        ) as r:
            await r.read()
    async with http.get(f"{base}/tts/list", headers=sign) as r:
        [task] = (await r.json())["data"]["list"]
    assert task["content"] == "你好"
    [entry, _] = await settled(sb, 2)
    assert entry.paid
    assert entry.retrievable
    assert not entry.lost


async def test_truncated_with_content_length(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.faults["ttsai"].enqueue("truncate_with_length")
    async with http.post(sb.urls["ttsai"] + "tts/", json=TTSAI_BODY, headers=TTSAI) as r:
        assert r.status == 200
        assert int(r.headers["Content-Length"]) > 1000
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    [entry] = await settled(sb, 1)
    assert entry.fault == "truncate_with_length"
    assert entry.lost


async def test_truncated_without_length_looks_like_success(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    async with http.post(fish_url(sb), json=FISH_BODY, headers=FISH) as r:
        whole = await r.read()
    sb.faults["fish_yuntts"].enqueue("truncate_no_length")
    async with http.post(fish_url(sb), json=FISH_BODY, headers=FISH) as r:
        assert r.status == 200
        assert "Content-Length" not in r.headers
        short = await r.read()
    assert 0 < len(short) < len(whole)
    assert whole.startswith(short)
    assert r.headers["X-Characters"] == "11"


async def test_corrupt_header_on_download_then_a_clean_download(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    base, sign = f"{sb.urls['indextts']}/api/third", {"sign": "s"}
    async with http.post(
        f"{base}/tts/create", json={"content": "你好", "audioId": "v"}, headers=sign
    ) as r:
        task_id = (await r.json())["data"]["taskId"]
    sb.clock.advance(1)
    async with http.get(f"{base}/tts/result", params={"taskId": task_id}, headers=sign) as r:
        voice_url = (await r.json())["data"]["voiceUrl"]
    sb.faults["indextts"].enqueue("corrupt_header", endpoint="download/{name}")
    async with http.get(voice_url, headers=sign) as r:
        broken = await r.read()
    async with http.get(voice_url, headers=sign) as r:
        clean = await r.read()
    assert len(broken) == len(clean)
    assert broken[:4] != b"RIFF"
    assert broken[44:] == clean[44:]
    with pytest.raises((wave.Error, EOFError)):
        wave.open(io.BytesIO(broken)).close()
    wave.open(io.BytesIO(clean)).close()


async def test_corrupt_samples_keep_a_valid_header(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    async with http.post(fish_url(sb), json=FISH_BODY, headers=FISH) as r:
        clean = await r.read()
    sb.faults["fish_yuntts"].enqueue("corrupt_samples")
    async with http.post(fish_url(sb), json=FISH_BODY, headers=FISH) as r:
        noisy = await r.read()
    assert noisy[:44] == clean[:44]
    assert noisy[44:] != clean[44:]
    assert len(noisy) == len(clean)
    assert sb.ledger.entries()[1].lost


@pytest.mark.parametrize(("kind", "status"), [("never_finish", 1), ("task_failed", 3)])
async def test_task_faults(
    sb: Sandbox, http: aiohttp.ClientSession, kind: str, status: int
) -> None:
    sb.faults["indextts"].enqueue(kind)
    base, sign = f"{sb.urls['indextts']}/api/third", {"sign": "s"}
    async with http.post(
        f"{base}/tts/create", json={"content": "你好", "audioId": "v"}, headers=sign
    ) as r:
        task_id = (await r.json())["data"]["taskId"]
    sb.clock.advance(86_400)
    async with http.get(f"{base}/tts/result", params={"taskId": task_id}, headers=sign) as r:
        data = (await r.json())["data"]
    assert data["status"] == status
    assert data["voiceUrl"] == ""
    assert sb.ledger.entries()[0].lost


async def test_random_rates_replay_with_the_seed(http: aiohttp.ClientSession) -> None:
    async def statuses(seed: int) -> list[int]:
        faults = FaultConfig(rates={"http_500": 0.3, "model_loading_503": 0.2})
        config = SandboxConfig(seed=seed, fish_yuntts=FishYunTTSConfig(faults=faults))
        async with Sandbox(config) as sb:
            seen = []
            for _ in range(30):
                async with http.post(fish_url(sb), json=FISH_BODY, headers=FISH) as r:
                    seen.append(r.status)
            return seen

    first, again, other = await statuses(7), await statuses(7), await statuses(8)
    assert first == again != other
    assert {200, 500, 503} == set(first)


async def test_faults_switch_at_runtime(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    plan = sb.faults["fish_yuntts"]
    plan.set_rates({"http_500": 1.0})
    async with http.post(fish_url(sb), json=FISH_BODY, headers=FISH) as r:
        assert r.status == 500
    plan.clear()
    async with http.post(fish_url(sb), json=FISH_BODY, headers=FISH) as r:
        assert r.status == 200
    with pytest.raises(ValueError, match="probabilities"):
        plan.set_rates({"http_500": 0.8, "drop": 0.4})
    summary = sb.ledger.summary(60, provider="fish_yuntts")
    assert summary.faults == {"http_500": 1}
    assert json.dumps(summary.faults)
