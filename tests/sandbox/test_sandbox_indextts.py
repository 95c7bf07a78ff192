"""Contract tests of the IndexTTS emulator, with plain HTTP calls."""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from runner.sandbox import AccountConfig, IndexTTSConfig, RateLimit, Sandbox

from .conftest import FAST, make_wav, wav_info

pytestmark = pytest.mark.anyio

SIGN = {"sign": "sign-main"}
BASE = IndexTTSConfig(processing_base=0.05, processing_per_char=0.0005)
ACCOUNTS = (
    AccountConfig(label="main", credentials=("sign-main",), voices=("VOICE1",), balance=1000),
    AccountConfig(label="other", credentials=("sign-other",), voices=("VOICE2",)),
)
STRICT = replace(FAST, indextts=replace(BASE, accounts=ACCOUNTS))


def api(sb: Sandbox, path: str) -> str:
    return f"{sb.urls['indextts']}/api/third{path}"


async def call(
    http: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str] = SIGN, **kw: Any
) -> dict[str, Any]:
    async with http.request(method, url, headers=headers, **kw) as r:
        assert r.status == 200, await r.text()
        body: dict[str, Any] = await r.json()
        return body


def create_body(**over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "content": "你好，世界。",
        "audioId": "VOICE1",
        "style": "1",
        "genre": 0,
        "speed": 1.0,
    }
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
async def strict() -> Any:
    async with Sandbox(STRICT) as sandbox:
        yield sandbox


async def test_create_poll_download_happy_path(
    strict: Sandbox, http: aiohttp.ClientSession
) -> None:
    created = await call(http, "POST", api(strict, "/tts/create"), json=create_body())
    assert created["code"] == 0
    assert created["msg"]
    assert created["data"]["status"] == 1
    assert created["data"]["voiceUrl"] == ""
    task_id = created["data"]["taskId"]

    strict.clock.advance(1)
    result = await call(http, "GET", api(strict, "/tts/result"), params={"taskId": task_id})
    assert result["data"]["status"] == 2
    url = result["data"]["voiceUrl"]
    assert url.startswith(strict.urls["indextts"] + "/file/download/")
    assert url.endswith(".wav")

    async with http.get(url, headers=SIGN) as r:
        assert r.status == 200
        assert r.content_type == "audio/wav"
        audio = await r.read()
    rate, channels, seconds = wav_info(audio)
    assert (rate, channels) == (24_000, 1)
    assert seconds > 0.3
    assert len(strict.deviations) == 0
    entry = strict.ledger.entries(account="main")[0]
    assert entry.paid
    assert entry.characters == 6
    assert entry.retrievable


async def test_processing_time_grows_with_text(
    strict: Sandbox, http: aiohttp.ClientSession
) -> None:
    short = await call(http, "POST", api(strict, "/tts/create"), json=create_body(content="短"))
    long = await call(
        http, "POST", api(strict, "/tts/create"), json=create_body(content="长" * 400)
    )
    strict.clock.advance(0.1)  # past 0.05 + 0.0005, short of 0.05 + 0.2
    statuses = []
    for created in (short, long):
        params = {"taskId": created["data"]["taskId"]}
        statuses.append(
            (await call(http, "GET", api(strict, "/tts/result"), params=params))["data"]["status"]
        )
    assert statuses == [2, 1]


async def test_sign_as_query_parameter(strict: Sandbox, http: aiohttp.ClientSession) -> None:
    url = api(strict, "/reference/list")
    body = await call(http, "GET", url, headers={}, params={"sign": "sign-main"})
    assert body["code"] == 0
    assert [m["audioId"] for m in body["data"]["list"]] == ["VOICE1"]


async def test_missing_and_bad_sign(strict: Sandbox, http: aiohttp.ClientSession) -> None:
    missing = await call(http, "GET", api(strict, "/tts/list"), headers={})
    bad = await call(http, "GET", api(strict, "/tts/list"), headers={"sign": "nope"})
    assert missing["code"] == bad["code"] == 7
    assert [d.field for d in strict.deviations] == ["sign"]  # only the missing one deviates
    assert all(e.account == "" for e in strict.ledger.entries())


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (create_body(style=2), "style", "cannot unmarshal number"),
        (create_body(content=None, text="hello"), "text", "content"),
        (create_body(content="x" * 5001), "content", "content"),
        (create_body(speed=1.6), "speed", "speed"),
        (create_body(genre=3), "genre", "genre"),
        (create_body(genre=1, style="1"), "style", "style"),
        (create_body(style="2", genre=1, ext={"happy": 1.5}), "ext.happy", "happy"),
        (create_body(genre=2, style="2"), "emotionPath", "emotionPath"),
    ],
)
async def test_create_validation(
    strict: Sandbox, http: aiohttp.ClientSession, body: dict[str, object], field: str, message: str
) -> None:
    reply = await call(http, "POST", api(strict, "/tts/create"), json=body)
    assert reply["code"] == 7
    assert message in reply["msg"]
    assert field in [d.field for d in strict.deviations]
    assert strict.ledger.paid() == 0


async def test_unknown_emotion_weight_is_ignored(
    strict: Sandbox, http: aiohttp.ClientSession
) -> None:
    body = create_body(style="2", genre=1, ext={"happy": 0.5, "joy": "lots"})
    reply = await call(http, "POST", api(strict, "/tts/create"), json=body)
    assert reply["code"] == 0
    assert [d.field for d in strict.deviations] == ["ext.joy"]


async def test_unknown_field_is_a_deviation_but_ignored(
    strict: Sandbox, http: aiohttp.ClientSession
) -> None:
    reply = await call(http, "POST", api(strict, "/tts/create"), json=create_body(text="extra"))
    assert reply["code"] == 0
    assert [(d.field, d.problem) for d in strict.deviations] == [("text", "not a documented field")]


async def test_unknown_or_foreign_voice_and_quota(
    strict: Sandbox, http: aiohttp.ClientSession
) -> None:
    for audio_id in ("NOPE", "VOICE2"):
        reply = await call(
            http, "POST", api(strict, "/tts/create"), json=create_body(audioId=audio_id)
        )
        assert reply["code"] == 7
        assert "not found" in reply["msg"]
    spend = await call(
        http, "POST", api(strict, "/tts/create"), json=create_body(content="x" * 990)
    )
    assert spend["code"] == 0
    short = await call(http, "POST", api(strict, "/tts/create"), json=create_body(content="y" * 20))
    assert short["code"] == 7
    assert "quota" in short["msg"]
    assert "额度不足" in short["msg"]
    quota = await call(http, "GET", api(strict, "/user/quota"))
    assert quota["data"] == {"remaining": 10, "used": 990, "total": 1000}
    assert len(strict.deviations) == 0


async def test_genre_modes_need_a_professional_model(http: aiohttp.ClientSession) -> None:
    config = replace(STRICT, indextts=replace(STRICT.indextts, upload_level="basic"))
    async with Sandbox(config) as sb:
        data = aiohttp.FormData()
        data.add_field("file", make_wav(3), filename="voice.wav", content_type="audio/wav")
        data.add_field("name", "narrator")
        model = await call(http, "POST", api(sb, "/reference/upload"), data=data)
        audio_id = model["data"]["audioId"]
        body = create_body(audioId=audio_id, style="2", genre=1, ext={"happy": 0.8})
        reply = await call(http, "POST", api(sb, "/tts/create"), json=body)
        assert reply["code"] == 7
        assert "professional" in reply["msg"]
        ok = await call(http, "POST", api(sb, "/tts/create"), json=create_body(audioId=audio_id))
        assert ok["code"] == 0
        assert len(sb.deviations) == 0


async def test_identical_request_answers_cached_result_and_is_paid_again(
    strict: Sandbox, http: aiohttp.ClientSession
) -> None:
    first = await call(http, "POST", api(strict, "/tts/create"), json=create_body())
    strict.clock.advance(1)
    second = await call(http, "POST", api(strict, "/tts/create"), json=create_body())
    assert second["data"]["status"] == 2
    assert second["data"]["voiceUrl"]
    assert second["data"]["taskId"] != first["data"]["taskId"]
    [twice] = strict.ledger.paid_twice()
    assert twice.count == 2
    assert twice.accounts == ("main",)


async def test_task_list_reconciles_by_text_voice_and_time(
    strict: Sandbox, http: aiohttp.ClientSession
) -> None:
    for i in range(25):
        await call(http, "POST", api(strict, "/tts/create"), json=create_body(content=f"第{i}句"))
    page = await call(http, "GET", api(strict, "/tts/list"), params={"page": 1, "pageSize": 20})
    assert page["data"]["total"] == 25
    assert len(page["data"]["list"]) == 20
    newest = page["data"]["list"][0]
    assert newest["content"] == "第24句"
    assert newest["audioId"] == "VOICE1"
    assert {"taskId", "status", "createdAt", "voiceUrl"} <= set(newest)
    assert len(strict.deviations) == 0
    await call(http, "GET", api(strict, "/tts/list"), params={"pageSize": 50})
    assert [d.field for d in strict.deviations] == ["pageSize"]


async def test_voice_url_lives_for_its_ttl(http: aiohttp.ClientSession) -> None:
    config = replace(STRICT, indextts=replace(STRICT.indextts, url_ttl=86_400))
    async with Sandbox(config) as sb:
        created = await call(http, "POST", api(sb, "/tts/create"), json=create_body())
        task_id = created["data"]["taskId"]
        sb.clock.advance(1)
        url = (await call(http, "GET", api(sb, "/tts/result"), params={"taskId": task_id}))["data"][
            "voiceUrl"
        ]
        sb.clock.advance(86_398)  # 1 s before the end of its day
        async with http.get(url, headers=SIGN) as r:
            assert r.status == 200
        sb.clock.advance(2)
        async with http.get(url, headers=SIGN) as r:
            assert r.status == 404
        async with http.get(url, headers={"sign": "sign-other"}) as r:
            assert r.status == 404


async def test_download_needs_the_sign(strict: Sandbox, http: aiohttp.ClientSession) -> None:
    created = await call(http, "POST", api(strict, "/tts/create"), json=create_body())
    strict.clock.advance(1)
    params = {"taskId": created["data"]["taskId"]}
    url = (await call(http, "GET", api(strict, "/tts/result"), params=params))["data"]["voiceUrl"]
    body = await call(http, "GET", url, headers={})
    assert body["code"] == 7
    foreign = await call(http, "GET", url, headers={"sign": "sign-other"})
    assert foreign["code"] == 7
    assert [d.field for d in strict.deviations] == ["sign"]


async def test_voice_models(strict: Sandbox, http: aiohttp.ClientSession) -> None:
    def form(
        seconds: float | None, name: str | None = "narrator", data: bytes | None = None
    ) -> aiohttp.FormData:
        f = aiohttp.FormData()
        if seconds is not None or data is not None:
            # A stream, not bytes: aiohttp warns about large raw byte bodies.
            f.add_field("file", io.BytesIO(data or make_wav(seconds or 0)), filename="v.wav")
        if name is not None:
            f.add_field("name", name)
        f.add_field("describe", "warm")
        return f

    created = await call(http, "POST", api(strict, "/reference/upload"), data=form(3))
    assert created["code"] == 0
    audio_id = created["data"]["audioId"]
    assert created["data"] == {"audioId": audio_id, "name": "narrator", "describe": "warm"}
    for bad in (form(1.0), form(61.0), form(3, name=None), form(None, data=b"not audio at all")):
        reply = await call(http, "POST", api(strict, "/reference/upload"), data=bad)
        assert reply["code"] == 7
    assert len(strict.deviations) == 4

    detail = await call(http, "GET", api(strict, "/reference/detail"), params={"audioId": audio_id})
    assert detail["data"]["name"] == "narrator"
    listed = await call(http, "GET", api(strict, "/reference/list"))
    assert listed["data"]["total"] == 2
    deleted = await call(
        http, "DELETE", api(strict, "/reference/delete"), params={"audioId": audio_id}
    )
    assert deleted["code"] == 0
    again = await call(
        http, "DELETE", api(strict, "/reference/delete"), params={"audioId": audio_id}
    )
    assert again["code"] == 7
    async with http.post(
        api(strict, "/reference/delete"), headers=SIGN, params={"audioId": "VOICE1"}
    ) as r:
        assert r.status == 404
        assert await r.text() == "404 page not found"


async def test_detail_and_quota_may_404(http: aiohttp.ClientSession) -> None:
    account = replace(ACCOUNTS[0], detail_available=False, quota_available=False)
    config = replace(STRICT, indextts=replace(BASE, accounts=(account,)))
    async with Sandbox(config) as sb:
        for path in ("/reference/detail?audioId=VOICE1", "/user/quota"):
            async with http.get(api(sb, path), headers=SIGN) as r:
                assert r.status == 404


async def test_emotion_references_expire_and_are_capped(http: aiohttp.ClientSession) -> None:
    config = replace(
        STRICT, indextts=replace(STRICT.indextts, reference_ttl=86_400, reference_cap=30)
    )
    async with Sandbox(config) as sb:

        async def upload() -> dict[str, Any]:
            data = aiohttp.FormData()
            data.add_field("file", make_wav(0.5), filename="calm.wav")
            return await call(http, "POST", api(sb, "/tts/uploadCustom"), data=data)

        paths = []
        for _ in range(30):
            reply = await upload()
            assert reply["code"] == 0
            paths.append(reply["data"]["file"]["emotionPath"])
        assert paths[0].endswith(".wav")
        assert "_" in paths[0]
        full = await upload()
        assert full["code"] == 7
        assert "30" in full["msg"]

        listed = await call(http, "GET", api(sb, "/tts/listCustom"), params={"pageSize": 30})
        assert listed["data"]["total"] == 30
        assert listed["data"]["list"][0]["name"] == "calm.wav"
        deleted = await call(
            http, "POST", api(sb, "/tts/deleteCustom"), json={"emotionPath": paths[0]}
        )
        assert deleted["code"] == 0
        assert (await upload())["code"] == 0

        body = create_body(style="2", genre=2, emotionPath=paths[1])
        assert (await call(http, "POST", api(sb, "/tts/create"), json=body))["data"]["status"] == 1
        sb.clock.advance(86_400)
        expired = await call(http, "POST", api(sb, "/tts/create"), json=body)
        assert expired["code"] == 7
        assert "expired" in expired["msg"]
        listed = await call(http, "GET", api(sb, "/tts/listCustom"))
        assert listed["data"]["total"] == 0
        assert len(sb.deviations) == 0


async def test_configured_rate_limit_answers_too_frequent(http: aiohttp.ClientSession) -> None:
    account = replace(ACCOUNTS[0], rate=RateLimit(requests=3, per_seconds=10))
    async with Sandbox(replace(STRICT, indextts=replace(BASE, accounts=(account,)))) as sb:
        codes = [(await call(http, "GET", api(sb, "/tts/list")))["code"] for _ in range(4)]
        assert codes == [0, 0, 0, 7]
        assert sb.ledger.count_429(account="main") == 1
        sb.clock.advance(10)
        assert (await call(http, "GET", api(sb, "/tts/list")))["code"] == 0


async def test_default_config_accepts_any_sign_and_voice(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    headers = {"sign": "whatever"}
    body = create_body(audioId="ABuVg22s3ydwS7RtkVyVN86Egq", style="2", genre=1, ext={"calm": 0.5})
    reply = await call(http, "POST", api(sb, "/tts/create"), headers=headers, json=body)
    assert reply["code"] == 0
    assert sb.ledger.entries()[0].account == "default"


async def test_emotion_reference_uploads_are_checked(http: aiohttp.ClientSession) -> None:
    config = replace(STRICT, indextts=replace(STRICT.indextts, max_upload_bytes=20_000))
    async with Sandbox(config) as sb:
        for data in (b"%PDF-1.4 not audio", make_wav(1.0)):
            form = aiohttp.FormData()
            form.add_field("file", io.BytesIO(data), filename="x.wav")
            reply = await call(http, "POST", api(sb, "/tts/uploadCustom"), data=form)
            assert reply["code"] == 7
        problems = [(d.field, d.problem) for d in sb.deviations]
        assert problems == [("file", "unknown content"), ("file", "not smaller than 0.0190735 MB")]
        form = aiohttp.FormData()
        form.add_field("file", io.BytesIO(make_wav(0.2)), filename="ok.wav")
        path = (await call(http, "POST", api(sb, "/tts/uploadCustom"), data=form))["data"]
        form = aiohttp.FormData({"emotionPath": path["file"]["emotionPath"]})
        assert (await call(http, "POST", api(sb, "/tts/deleteCustom"), data=form))["code"] == 0
        assert (await call(http, "POST", api(sb, "/tts/deleteCustom"), data=form))["code"] == 7
