"""The Sandbox as a whole: URLs, SandboxThread, the admin app, serve(), determinism, secrecy."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

import runner.sandbox
from runner.sandbox import (
    AccountConfig,
    ConfigError,
    FaultConfig,
    Sandbox,
    SandboxConfig,
    SandboxThread,
    TTSAIConfig,
    serve,
)

from .conftest import FAST

pytestmark = pytest.mark.anyio

TTSAI_BODY = {"model": "kokoro", "text": "Hello.", "voice": "af_bella", "format": "wav"}


def test_public_surface() -> None:
    assert runner.sandbox.__all__ == sorted(
        runner.sandbox.__all__, key=lambda n: (not n.isupper(), n)
    )
    for name in runner.sandbox.__all__:
        assert getattr(runner.sandbox, name) is not None


async def test_urls(sb: Sandbox) -> None:
    assert set(sb.urls) == {"indextts", "voxcpm", "fish_yuntts", "fishaudio_net", "ttsai", "admin"}
    ports = {url.split(":")[2].split("/")[0] for url in sb.urls.values()}
    assert len(ports) == 6
    assert all(u.startswith("http://127.0.0.1:") for u in sb.urls.values())
    assert sb.urls["ttsai"].endswith("/v1/")
    announced = json.loads(json.dumps(sb.announcement()))
    assert announced["voxcpm_pool"] == [sb.urls["voxcpm"]]
    assert "serving" in repr(sb)


def test_sandbox_thread_serves_a_synchronous_client() -> None:
    config = replace(FAST, ttsai=TTSAIConfig(faults=FaultConfig()))
    with SandboxThread(config) as thread:
        request = urllib.request.Request(
            thread.urls["ttsai"] + "tts/",
            data=json.dumps(TTSAI_BODY).encode(),
            headers={"Authorization": "Bearer sk-tts-x", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as reply:
            assert reply.status == 200
            assert reply.read(4) == b"RIFF"
        thread.enqueue_fault("ttsai", "http_500")
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(request)
        failed.value.close()
        thread.advance(60)
        entries = thread.ledger("ttsai")
        assert [e.status for e in entries] == [200, 500]
        assert thread.summary(60, provider="ttsai").requests == 2
        assert thread.deviations() == ()
        assert thread.call(lambda: thread.sandbox.clock.advanced) == 60
        thread.set_fault_rates("ttsai", {"http_500": 1.0})
        assert thread.call(lambda: thread.sandbox.faults["ttsai"].rates)
    with pytest.raises(RuntimeError):
        thread.advance(1)


async def test_admin_app(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    admin = sb.urls["admin"]

    async def get(path: str, **params: str) -> Any:
        async with http.get(admin + path, params=params) as r:
            assert r.status == 200
            return await r.json()

    assert (await get("/urls"))["ttsai"] == sb.urls["ttsai"]
    async with http.post(admin + "/clock/advance", json={"seconds": 3600}) as r:
        assert (await r.json())["advanced"] == 3600
    async with http.post(admin + "/clock/advance", json={"seconds": -1}) as r:
        assert r.status == 400
    fault = {"provider": "ttsai", "enqueue": [{"kind": "http_500", "endpoint": "tts/"}]}
    async with http.post(admin + "/faults", json=fault) as r:
        assert (await r.json())["ttsai"]["queue"][0]["kind"] == "http_500"
    async with http.post(admin + "/faults", json={"provider": "nope"}) as r:
        assert r.status == 400
    async with http.post(sb.urls["ttsai"] + "tts", json=TTSAI_BODY) as r:
        assert r.status == 404  # no trailing slash, no key: a deviation
    async with http.post(
        sb.urls["ttsai"] + "tts/", json=TTSAI_BODY, headers={"Authorization": "Bearer k"}
    ) as r:
        assert r.status == 500

    ledger = await get("/ledger", provider="ttsai")
    assert [e["status"] for e in ledger["entries"]] == [404, 500]
    summary = await get("/ledger/summary", window="60", provider="ttsai")
    assert summary["requests"] == 2
    assert summary["faults"] == {"http_500": 1}
    deviations = await get("/deviations")
    assert deviations["count"] == 1
    assert deviations["deviations"][0]["field"] == "<path>"
    async with http.delete(admin + "/deviations") as r:
        assert r.status == 200
    assert (await get("/deviations"))["count"] == 0
    assert "rates" in (await get("/faults"))["indextts"]


async def test_serve_announces_then_serves_until_cancelled(http: aiohttp.ClientSession) -> None:
    announced: list[dict[str, object]] = []
    ready = anyio.Event()

    def announce(urls: dict[str, object]) -> None:
        announced.append(urls)
        ready.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve, FAST, announce)
        await ready.wait()
        urls = announced[0]
        async with http.get(f"{urls['admin']}/clock") as r:
            assert r.status == 200
        tg.cancel_scope.cancel()
    assert isinstance(urls["voxcpm_pool"], list)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(f"{urls['admin']}/clock") as r:
            pass


async def test_shutdown_does_not_wait_for_a_slow_reply(http: aiohttp.ClientSession) -> None:
    config = replace(FAST, ttsai=TTSAIConfig(faults=FaultConfig(slow_seconds=30)))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg, Sandbox(config) as sb:
            sb.faults["ttsai"].enqueue("slow")

            async def doomed() -> None:
                with pytest.raises(aiohttp.ClientConnectionError):
                    async with http.post(
                        sb.urls["ttsai"] + "tts/",
                        json=TTSAI_BODY,
                        headers={"Authorization": "Bearer k"},
                    ) as r:
                        await r.read()

            tg.start_soon(doomed)
            await anyio.sleep(0.2)


async def test_identical_requests_give_identical_bytes_across_sandboxes(
    http: aiohttp.ClientSession,
) -> None:
    async def render(sb: Sandbox) -> list[bytes]:
        out = []
        for fmt in ("mp3", "opus", "flac", "aac", "wav"):
            body = {**TTSAI_BODY, "format": fmt}
            async with http.post(
                sb.urls["ttsai"] + "tts/", json=body, headers={"Authorization": "Bearer k"}
            ) as r:
                out.append(await r.read())
        fish = {"text": "你好世界", "reference_id": "v", "format": "mp3"}
        async with http.post(
            f"{sb.urls['fish_yuntts']}/api/v1/fish-audio/tts",
            json=fish,
            headers={"Authorization": "t"},
        ) as r:
            out.append(await r.read())
        return out

    async with Sandbox(FAST) as one:
        first = await render(one)
    async with Sandbox(FAST) as two:
        second = await render(two)
    assert first == second
    assert len(set(first)) == len(first)


async def test_credentials_never_appear(http: aiohttp.ClientSession) -> None:
    secret = "sk-tts-SECRET-value-123"
    account = AccountConfig(label="acct", credentials=(secret,))
    config = replace(FAST, ttsai=TTSAIConfig(accounts=(account,)))
    async with Sandbox(config) as sb:
        for key in (secret, secret + "-wrong"):
            async with http.post(
                sb.urls["ttsai"] + "tts/",
                json={**TTSAI_BODY, "x": 1},
                headers={"Authorization": f"Bearer {key}"},
            ) as r:
                await r.read()
        everything = repr(config) + repr(sb.ledger.entries()) + repr(tuple(sb.deviations))
        everything += repr(sb.ttsai.accounts.all())
    assert "SECRET" not in everything
    assert "acct" in everything


def test_config_from_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_TEST_KEY", "sk-tts-from-env")
    path = tmp_path / "sandbox.yaml"
    path.write_text(
        """
seed: 11
indextts: {url_ttl: 5, processing_base: 0.01, processing_per_char: 0}
voxcpm: {servers: 3}
ttsai:
  plans: {tiny: {requests: 10, per_seconds: 2, concurrent: 2, max_chars: 100}}
  accounts:
    - {label: a, credential_envs: [SANDBOX_TEST_KEY], plan: tiny, balance: 50}
""",
        encoding="utf-8",
    )
    config = SandboxConfig.from_yaml(path)
    assert config.seed == 11
    assert config.indextts.url_ttl == 5.0
    assert config.voxcpm.servers == 3
    assert config.ttsai.accounts[0].all_credentials() == ("sk-tts-from-env",)
    assert not config.ttsai.accepts_any
    assert config.indextts.accepts_any

    for bad, message in [
        ("indextts: {url_tl: 5}", "unknown key"),
        ("voxcpm: {servers: many}", "expected int"),
        ("ttsai: {accounts: [{plan: gold}]}", "unknown plan"),
        ("[1, 2]", "mapping"),
    ]:
        path.write_text(bad, encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            SandboxConfig.from_yaml(path)
