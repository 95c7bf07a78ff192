"""Fish Audio S1 / S2-Pro through the yuntts proxy (seed 002): synchronous synthesis.

    POST /api/v1/fish-audio/tts       headers `model: s1 | s2-pro`, `Authorization: <token>`
        stream true  → the audio, with X-Characters, X-Cost (yuan) and X-Task-Id headers
        stream false → {url, chars, cost, task_id}: a `Stored` result, fetched from `url`
    POST /model (multipart) · GET /model/list (paged) · DELETE /model/delete?model_id=

The body uses the official Fish `TTSRequest` names. It carries the text and exactly what the
voice sets, plus `format` and `stream`, which decide what the reply is, so they are always
sent rather than left to the proxy's defaults. Zero-shot references travel as MessagePack with
the audio as binary (the proxy's only way to take raw bytes); other bodies are JSON unless the
account sets `msgpack: true`. Errors are `{"error": code, "message": ...}` (an assumption of
providers.md: the seed lists codes, not a body).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

import aiohttp
import anyio.to_thread

from runner.errors import (
    CorruptResult,
    OutOfCredit,
    PermanentError,
    ProviderError,
    TransientError,
    Unauthorized,
)
from runner.manifest.params import FileRef, ParamValue
from runner.manifest.voice_params import PARAMS
from runner.plans import PRESETS, PlanPreset
from runner.providers.base import Audio, Mode, Provider, Request, Stored, VoiceModel
from runner.providers.context import ProviderContext
from runner.providers.files import read_reference
from runner.providers.fish_voice_files import VOICE_TYPES, voice_files
from runner.providers.fish_wire import (
    audio_body,
    by_status,
    decode_object,
    encode_body,
    fetch_result,
    redacted,
    said,
)
from runner.providers.http import Http, Reply

__all__ = ["FishYunTTSProvider"]

DEFAULT_BASE: Final = "https://www.yuntts.com"
API: Final = "/api/v1/fish-audio"
PROVIDER: Final = "Fish (yuntts)"
DEFAULT_MODEL: Final = "s2-pro"
#: NOTE: the seed names no timeout; a 2000-character synthesis can take a minute or more.
DEFAULT_TIMEOUT: Final = 120.0
#: Parameters that choose the voice or the reply's shape; every other voice parameter the
#: manifest accepts is a `TTSRequest` field of the same name, sent as given (already checked).
_NOT_TUNING: Final = {"model", "reference_id", "references", "speakers", "format", "stream"}
TUNING: Final = tuple(name for name in PARAMS["fish_yuntts"] if name not in _NOT_TUNING)
SPEAKER_TAG: Final = re.compile(r"<\|speaker:\d+\|>")
PAGE_SIZE: Final = 100  #: the largest page the list accepts
MAX_PAGES: Final = 10_000  #: a server that always says has_more must not keep us forever


class FishYunTTSProvider(Provider):
    mode: ClassVar[Mode] = Mode.SYNC
    kind: ClassVar[str] = "fish_yuntts"

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(context)
        self.base = context.urls(DEFAULT_BASE)[0].rstrip("/")
        self.token = context.secret("token_env")
        options = context.account.options
        timeout = options.get("timeout", DEFAULT_TIMEOUT)
        assert isinstance(timeout, int | float)
        # No session-wide Authorization: result URLs are fetched without the token.
        self.http = Http(context, timeout=float(timeout))
        self.packed = options.get("msgpack") is True
        self._recordings: dict[str, bytes] = {}  #: reference audio by sha256

    async def aclose(self) -> None:
        await self.http.aclose()

    def _auth(self) -> dict[str, str]:
        if not self.token:
            variable = self.context.account.credentials.get("token_env", "")
            raise Unauthorized(f"no yuntts token: set {variable}", account=self.account)
        return {"Authorization": self.token}  # the bare token, as the seed shows

    # -- synthesis ---------------------------------------------------------------------------

    async def synthesize(self, request: Request) -> Audio | Stored:
        params = request.params
        fmt = str(params.get("format", "mp3"))
        body = await self.body(request)
        data, content_type = encode_body(body, packed=self.packed or "references" in body)
        headers = {
            **self._auth(),
            "model": str(params.get("model", DEFAULT_MODEL)),
            "Content-Type": content_type,
        }
        what = f"segment {request.key[:12]}"
        voice = _voice_name(params)

        async def paid() -> Audio | Stored:
            reply = await self.http.send(
                "POST", f"{self.base}{API}/tts", data=data, headers=headers, on_send=request.on_send
            )
            if reply.status != 200:
                raise self.error(reply, what, voice)
            if body["stream"]:
                audio = audio_body(self.http, reply, fmt, what=what, provider=PROVIDER)
                cost = reply.headers.get("x-cost", "")
                return Audio(audio, fmt, _pcm_rate(params), _number(cost))
            return self._stored(reply, what)

        return await self.http.retrying(paid, what)

    async def fetch(self, request: Request, url: str) -> Audio:
        """The audio of a stream=false result (its cost was counted when it was stored)."""
        params = request.params
        fmt = str(params.get("format", "mp3"))
        audio = await fetch_result(
            self.http,
            url,
            fmt,
            base=self.base,
            sample_rate=_sample_rate(params),
            what=f"segment {request.key[:12]} (download)",
            provider=PROVIDER,
        )
        return Audio(audio, fmt, _pcm_rate(params))

    async def body(self, request: Request) -> dict[str, object]:
        """The TTS body: the text, the voice, what the voice sets, and the reply's shape."""
        params = request.params
        body: dict[str, object] = {"text": request.text}
        speakers = params.get("speakers")
        if isinstance(speakers, list):
            # Multi-speaker (s2-pro): `<|speaker:N|>` in the text picks element N.
            body["reference_id"] = [str(s) for s in speakers]
        elif "reference_id" in params:
            body["reference_id"] = str(params["reference_id"])
        else:
            body["references"] = await self._references(params.get("references"))
        body.update({name: params[name] for name in TUNING if name in params})
        body["format"] = str(params.get("format", "mp3"))
        body["stream"] = params.get("stream", True) is not False
        return body

    async def _references(self, value: ParamValue | None) -> list[dict[str, object]]:
        if not isinstance(value, list) or not value:
            raise PermanentError(
                "the voice sets neither reference_id, speakers nor references",
                account=self.account,
            )
        references: list[dict[str, object]] = []
        for item in value:
            assert isinstance(item, dict)
            audio = item["audio"]
            assert isinstance(audio, FileRef)
            reference: dict[str, object] = {"audio": await self._recording(audio)}
            if "text" in item:
                reference["text"] = str(item["text"])
            references.append(reference)
        return references

    async def _recording(self, ref: FileRef) -> bytes:
        """A reference recording's bytes, read once, and only if unchanged since loading: its
        hash is part of the segment key."""
        known = self._recordings.get(ref.sha256)
        if known is None:
            known = await anyio.to_thread.run_sync(read_reference, ref, self.account)
            self._recordings[ref.sha256] = known
        return known

    def _stored(self, reply: Reply, what: str) -> Stored:
        reply_object = decode_object(reply)
        url = reply_object.get("url") if reply_object else None
        if not reply_object or not isinstance(url, str) or not url:
            raise CorruptResult(
                redacted(
                    self.http,
                    f"{what}: {PROVIDER} answered stream=false without a result URL: "
                    f"{reply.text(80)!r}",
                ),
                account=self.account,
            )
        cost = reply_object.get("cost")
        return Stored(url, float(cost) if isinstance(cost, int | float) else None)

    # -- errors ------------------------------------------------------------------------------

    def error(self, reply: Reply, what: str, voice: str = "") -> ProviderError:
        """The error tree's reading of a non-200 reply."""
        found = decode_object(reply) or {}
        code, message = str(found.get("error") or ""), str(found.get("message") or "")
        told = said(self.http, reply, what, PROVIDER, code, message)
        status, account = reply.status, self.account
        if status == 401:
            variable = self.context.account.credentials.get("token_env", "")
            return Unauthorized(f"{told} (check the token in {variable})", account=account)
        if status == 402:
            return OutOfCredit(f"{told} (top up the yuntts balance)", account=account)
        if status in (403, 404) and voice:
            # A model that does not exist, or another account's private one: this voice only.
            return PermanentError(f"{told} (voice model {voice})", account=account, status=status)
        return by_status(self.http, reply, told)

    # -- voice models ------------------------------------------------------------------------

    async def _json(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, object]:
        """One management call (retried): its JSON object reply."""

        async def call() -> dict[str, object]:
            reply = await self.http.send(
                method, f"{self.base}{API}{path}", headers=self._auth(), **kwargs
            )
            if reply.status != 200:
                raise self.error(reply, what)
            found = decode_object(reply)
            if found is None:
                raise TransientError(
                    f"{what}: {PROVIDER} answered 200 with {reply.content_type or 'no type'}, "
                    "not JSON",
                    account=self.account,
                )
            return found

        return await self.http.retrying(call, what)

    async def _models(self, **query: str) -> AsyncIterator[dict[str, object]]:
        for page in range(1, MAX_PAGES + 1):
            listing = await self._json(
                "GET",
                "/model/list",
                "list voice models",
                params={**query, "page": str(page), "page_size": str(PAGE_SIZE)},
            )
            items = listing.get("items")
            if not isinstance(items, list) or not items:
                return
            for item in items:
                if isinstance(item, dict):
                    yield item
            if listing.get("has_more") is not True:
                return

    async def list_voices(self) -> list[VoiceModel]:
        return [_voice_model(item) async for item in self._models()]

    async def _own_titled(self, title: str) -> list[VoiceModel]:
        return [
            _voice_model(item)
            async for item in self._models(search=title, source="upload")
            if item.get("is_own") is True and item.get("title") == title
        ]

    async def create_voice(
        self, name: str, audio: Sequence[Path], *, describe: str = "", texts: Sequence[str] = ()
    ) -> VoiceModel:
        files = await anyio.to_thread.run_sync(voice_files, list(audio), self.account)
        what = f"create voice model {name!r}"
        before = {v.id for v in await self._own_titled(name)}

        async def attempt() -> VoiceModel:
            try:
                return await self._create(name, files, describe, texts, what)
            except TransientError:
                # The model may exist although its reply was lost: adopt it, make no second one.
                for voice in await self._own_titled(name):
                    if voice.id not in before:
                        return voice
                raise

        return await self.http.retrying(attempt, what)

    async def _create(
        self,
        name: str,
        files: list[tuple[str, bytes]],
        describe: str,
        texts: Sequence[str],
        what: str,
    ) -> VoiceModel:
        form = aiohttp.FormData()
        form.add_field("title", name)
        for filename, data in files:
            mime = VOICE_TYPES[Path(filename).suffix.lower()]
            form.add_field("voices", data, filename=filename, content_type=mime)
        form.add_field("visibility", "private")
        if describe:
            form.add_field("description", describe)
        form.add_field("train_mode", "fast")
        for text in texts:  # one per recording, in order, as Fish's own API takes them
            form.add_field("texts", text)
        reply = await self.http.send(
            "POST", f"{self.base}{API}/model", data=form, headers=self._auth()
        )
        found = decode_object(reply) or {}
        if reply.status != 200:
            error = self.error(reply, what)
            if found.get("error") == "model_limit_exceeded":
                raise PermanentError(self._cap_note(str(error)), account=self.account, status=400)
            raise error
        model_id = found.get("model_id") or found.get("reference_id")
        if not isinstance(model_id, str) or not model_id:
            raise TransientError(
                f"{what}: {PROVIDER} answered without a model_id", account=self.account
            )
        return VoiceModel(model_id, str(found.get("title", name)), details=found)

    def _cap_note(self, said: str) -> str:
        plan = self.context.account.plan
        cap = PRESETS[(self.kind, plan)].model_cap
        return (
            f"{said} (the `{plan}` plan allows {cap} voice models; delete one with "
            "`tts-runner voices delete`, or move the account to a plan that allows more)"
        )

    async def delete_voice(self, voice_id: str) -> None:
        what = f"delete voice model {voice_id}"
        attempts = 0

        async def delete() -> None:
            nonlocal attempts
            attempts += 1
            reply = await self.http.send(
                "DELETE",
                f"{self.base}{API}/model/delete",
                params={"model_id": voice_id},
                headers=self._auth(),
            )
            if reply.status == 404 and attempts > 1:
                return  # a retry after a lost reply finds the model already gone
            if reply.status != 200:
                raise self.error(reply, what)

        await self.http.retrying(delete, what)

    @classmethod
    def estimate_cost(
        cls, text: str, params: Mapping[str, ParamValue], preset: PlanPreset
    ) -> float:
        """yuan: speaker tags are not billed."""
        return len(SPEAKER_TAG.sub("", text)) / 1000 * preset.price_per_1k_chars


def _voice_name(params: Mapping[str, ParamValue]) -> str:
    speakers = params.get("speakers")
    if isinstance(speakers, list):
        return ", ".join(map(str, speakers))
    return str(params.get("reference_id", ""))


def _sample_rate(params: Mapping[str, ParamValue]) -> int:
    """The rate asked for, else the seed's default: 48 kHz for opus, 44.1 kHz otherwise."""
    rate = params.get("sample_rate")
    if isinstance(rate, int):
        return rate
    return 48_000 if params.get("format") == "opus" else 44_100


def _pcm_rate(params: Mapping[str, ParamValue]) -> int | None:
    return _sample_rate(params) if params.get("format") == "pcm" else None


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _voice_model(item: Mapping[str, object]) -> VoiceModel:
    model_id = item.get("_id") or item.get("model_id") or ""
    return VoiceModel(str(model_id), str(item.get("title", "")), details=dict(item))
