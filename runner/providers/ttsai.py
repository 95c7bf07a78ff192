"""TTS.ai (specs/providers.md §5, seed 004): OpenAI-style REST under /v1/, a Bearer key,
per-plan rate limits with X-RateLimit-* headers, credits per started 1000 characters.

```
synthesize ─▶ POST tts/        JSON {model, text, voice, format[, speed, language]}  ─┐
          └▶ POST tts/clone/  multipart reference_audio, text, model, format[, language] ┴▶
           audio bytes (Content-Type audio/...) + X-Credits-Used, X-Credits-Remaining
```

Errors come as `{"error": {"code", "message", ...}}` and map onto the runner's tree:
400 / 404 / 413 (and other refusals) → PermanentError; 401, 403 → Unauthorized; 402 →
OutOfCredit; 429 → RateLimited; 500 and other 5xx → TransientError; 503 model_loading →
TransientError after waiting what the server asks.

# NOTE: choices where the vendor page is silent (they live here, to change in one place):
# - `format` is always sent (mp3 by default, as the API's own default), so the reply's format
#   is known; `speed` and `language` only when the voice sets them; `stream` never.
# - A clone's model defaults to chatterbox (the API's default), sent explicitly.
# - A clone has no `speed` field: a clone voice with `speed` fails rather than sounds different.
# - An audio body with neither Content-Length nor chunked framing cannot be told from one cut
#   short (the documented replies carry Content-Length), so it is retried.
# - There is no balance endpoint: `quota()` reports X-Credits-Remaining of the last reply.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import aiohttp
import anyio
import anyio.to_thread

from runner.errors import (
    CorruptResult,
    OutOfCredit,
    PermanentError,
    ProviderError,
    RateLimited,
    TransientError,
    Unauthorized,
    Unsupported,
)
from runner.manifest.params import FileRef, ParamValue
from runner.plan import DEFAULT_FORMAT
from runner.plans import PlanPreset
from runner.providers.base import Audio, Mode, Provider, Quota, Request, VoiceModel
from runner.providers.context import ProviderContext
from runner.providers.files import read_reference
from runner.providers.http import Http, Reply, retry_after_seconds

__all__ = ["MODEL_TIERS", "TIER_CREDITS", "TTSAIProvider"]

DEFAULT_URL: Final = "https://api.tts.ai/v1/"
#: The vendor names no limit; a 50,000-character Enterprise request can take minutes.
DEFAULT_TIMEOUT: Final = 300.0
CLONE_MODEL: Final = "chatterbox"

#: Credits per started 1000 characters (seed 004, "Costs de crèdit").
TIER_CREDITS: Final = {"basic": 1, "standard": 2, "premium": 4}
CLONE_CREDITS: Final = 4
#: The models the price table names, by id with case and punctuation dropped ("CosyVoice 2").
MODEL_TIERS: Final = {
    "piper": "basic",
    "vits": "basic",
    "melotts": "basic",
    "kokoro": "standard",
    "cosyvoice2": "standard",
    "tortoise": "premium",
    "chatterbox": "premium",
}

#: What each requested format may come back labelled as.
CONTENT_TYPES: Final = {
    "mp3": frozenset({"audio/mpeg", "audio/mp3", "audio/mpeg3"}),
    "wav": frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"}),
    "flac": frozenset({"audio/flac", "audio/x-flac"}),
}
AUDIO_TYPES: Final = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".flac": "audio/flac"}
#: "The model is loading. Retry in a few seconds": wait this long when no Retry-After says.
MODEL_LOADING_WAIT: Final = 5.0
MODEL_LOADING_MAX_WAIT: Final = 30.0
#: A reset value above this is an epoch timestamp, not seconds from now.
EPOCH_SECONDS: Final = 1e9
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def _model_key(model: str) -> str:
    return _NOT_ALNUM.sub("", model.lower())


class TTSAIProvider(Provider):
    mode: ClassVar[Mode] = Mode.SYNC
    kind: ClassVar[str] = "ttsai"

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(context)
        self.base = context.urls(DEFAULT_URL)[0].rstrip("/") + "/"
        timeout = context.account.options.get("timeout", DEFAULT_TIMEOUT)
        self.timeout = float(timeout) if isinstance(timeout, int | float) else DEFAULT_TIMEOUT
        key = context.secret("api_key_env")
        self._key_env = context.account.credentials.get("api_key_env", "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = Http(context, timeout=self.timeout, headers=headers)
        self._references: dict[str, bytes] = {}  # sha256 → bytes, read once per file
        self._reading = anyio.Lock()
        self._credits_remaining: float | None = None

    def __repr__(self) -> str:
        return f"<TTSAIProvider account={self.account!r} base={self.base!r}>"

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- synthesis ---------------------------------------------------------------------------

    async def synthesize(self, request: Request) -> Audio:
        fmt = str(request.params.get("format", DEFAULT_FORMAT[self.kind]))
        clone = request.params.get("clone")
        if isinstance(clone, dict):
            reply = await self._clone(request, clone, fmt)
        else:
            reply = await self._tts(request, fmt)
        return await self._audio(reply, fmt)

    async def _tts(self, request: Request, fmt: str) -> Reply:
        params = request.params
        body: dict[str, ParamValue] = {
            "model": params.get("model", ""),
            "text": request.text,
            "voice": params.get("voice", ""),
            "format": fmt,
        }
        body.update({k: params[k] for k in ("speed", "language") if k in params})
        return await self._http.retrying(
            lambda: self._send("POST", "tts/", json=body, on_send=request.on_send), "POST /tts/"
        )

    async def _clone(self, request: Request, clone: Mapping[str, ParamValue], fmt: str) -> Reply:
        params = request.params
        if "speed" in params:
            raise PermanentError(
                "TTS.ai voice cloning (/tts/clone/) takes no `speed`; remove it from the voice",
                account=self.account,
            )
        reference = clone["reference_audio"]
        assert isinstance(reference, FileRef)
        data = await self._reference(reference)
        model = str(clone.get("model", params.get("model", CLONE_MODEL)))
        language = params.get("language")
        content_type = AUDIO_TYPES.get(reference.path.suffix.lower(), "application/octet-stream")

        def form() -> aiohttp.FormData:  # a form is consumed by sending it: one per attempt
            fields = aiohttp.FormData()
            fields.add_field(
                "reference_audio", data, filename=reference.path.name, content_type=content_type
            )
            fields.add_field("text", request.text)
            fields.add_field("model", model)
            fields.add_field("format", fmt)
            if language is not None:
                fields.add_field("language", str(language))
            return fields

        return await self._http.retrying(
            lambda: self._send("POST", "tts/clone/", data=form(), on_send=request.on_send),
            "POST /tts/clone/",
        )

    async def _reference(self, ref: FileRef) -> bytes:
        async with self._reading:  # one read per file, however many workers need it at once
            if ref.sha256 not in self._references:
                data = await anyio.to_thread.run_sync(read_reference, ref, self.account)
                self._references[ref.sha256] = data
            return self._references[ref.sha256]

    async def _audio(self, reply: Reply, fmt: str) -> Audio:
        """The audio of a 200 reply; CorruptResult (the scheduler asks again) when it is not."""
        ctype = reply.content_type
        problem = ""
        if not reply.body:
            problem = "an empty body"
        elif not ctype.startswith("audio/"):
            problem = f"{ctype or 'no Content-Type'} instead of audio: {self._excerpt(reply)!r}"
        elif fmt in CONTENT_TYPES and ctype not in CONTENT_TYPES[fmt]:
            problem = f"{ctype} although {fmt} was asked for"
        if problem:
            raise CorruptResult(f"TTS.ai answered 200 with {problem}", account=self.account)
        return Audio(reply.body, fmt, cost=_number(reply.headers.get("x-credits-used")))

    # -- one request -------------------------------------------------------------------------

    async def _send(self, method: str, path: str, **kwargs: Any) -> Reply:
        """One request; raises the error a non-200 reply means."""
        reply = await self._http.send(method, self.base + path, **kwargs)
        remaining = _number(reply.headers.get("x-credits-remaining"))
        if remaining is not None:
            self._credits_remaining = remaining
        if reply.status != 200:
            error = self._error(reply, f"{method} /{path}")
            if reply.status == 503:
                await anyio.sleep(_model_loading_wait(reply))
            raise error
        framing = reply.headers.get("transfer-encoding", "").lower()
        if "content-length" not in reply.headers and "chunked" not in framing:
            raise TransientError(
                f"{method} /{path}: the reply had neither Content-Length nor chunked framing, "
                "so it may have been cut short",
                account=self.account,
                status=reply.status,
            )
        return reply

    def _error(self, reply: Reply, what: str) -> ProviderError:
        status, account = reply.status, self.account
        code, message, details = self._error_body(reply)
        text = f"TTS.ai {what}: HTTP {status}{f' {code}' if code else ''}: {message}"
        if status == 401:
            return Unauthorized(
                f"{text} (the key in ${self._key_env} was refused)", account=account, status=status
            )
        if status == 403:
            return Unauthorized(text, account=account, status=status)
        if status == 402:
            needed = ", ".join(
                f"{k.removeprefix('credits_')} {details[k]}"
                for k in ("credits_required", "credits_available")
                if k in details
            )
            return OutOfCredit(f"{text}{f' ({needed})' if needed else ''}", account=account)
        if status == 429:
            wait = _retry_after(reply.headers)
            return RateLimited(text, account=account, status=status, retry_after=wait)
        if status >= 500 or status == 408:
            return TransientError(text, account=account, status=status)
        return PermanentError(text, account=account, status=status)

    def _error_body(self, reply: Reply) -> tuple[str, str, Mapping[str, object]]:
        """(code, message, the error object) of a documented error body; else a description."""
        try:
            data = json.loads(reply.body)
        except ValueError:
            data = None
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error.get("code", "")), self._redact(error["message"]), error
        kind = reply.content_type or "no Content-Type"
        return "", f"a {kind} body that is not the API's error JSON: {self._excerpt(reply)!r}", {}

    def _excerpt(self, reply: Reply) -> str:
        return self._redact(reply.text(200))

    def _redact(self, text: str) -> str:
        return self.context.events.redact(text)

    # -- account operations ------------------------------------------------------------------

    async def list_voices(self, model: str = "", language: str = "") -> list[VoiceModel]:
        """Voices of the catalogue (`GET voices/`), optionally of one model or language."""
        query = {k: v for k, v in (("model", model), ("language", language)) if v}
        reply = await self._http.retrying(
            lambda: self._send("GET", "voices/", params=query), "GET /voices/"
        )
        try:
            voices = json.loads(reply.body)["voices"]
            return [
                VoiceModel(str(v["id"]), str(v.get("name", v["id"])), details=v) for v in voices
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise TransientError(
                f"TTS.ai GET /voices/ answered with an unexpected body: {self._excerpt(reply)!r}",
                account=self.account,
            ) from exc

    async def quota(self) -> Quota:
        if self._credits_remaining is None:
            raise Unsupported(
                "TTS.ai has no balance endpoint; its replies report the credits left "
                "(X-Credits-Remaining), so the balance is known after a synthesis"
            )
        return Quota(
            remaining=self._credits_remaining,
            used=None,
            unit="credits",
            details={"source": "X-Credits-Remaining of the last reply"},
        )

    @classmethod
    def estimate_cost(
        cls, text: str, params: Mapping[str, ParamValue], preset: PlanPreset
    ) -> float:
        """Credits: the model's tier price (a clone's own price) per started 1000 characters;
        a model the price table does not name costs the plan's default price."""
        started = math.ceil(len(text) / 1000)
        if "clone" in params:
            return float(started * CLONE_CREDITS)
        tier = MODEL_TIERS.get(_model_key(str(params.get("model", ""))))
        return float(started * (TIER_CREDITS[tier] if tier else preset.price_per_1k_chars))


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a 429 asks us to wait: Retry-After, else until the window resets."""
    wait = retry_after_seconds(headers.get("retry-after"))
    if wait is None and (reset := _number(headers.get("x-ratelimit-reset"))) is not None:
        wait = max(0.0, reset - time.time()) if reset > EPOCH_SECONDS else reset
    return wait


def _model_loading_wait(reply: Reply) -> float:
    wait = retry_after_seconds(reply.headers.get("retry-after"))
    return min(MODEL_LOADING_MAX_WAIT, MODEL_LOADING_WAIT if wait is None else wait)
