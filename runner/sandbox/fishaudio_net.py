"""The fishaudio.net open API (seed 003): `POST /api/open/tts`, Bearer token, JSON or
MessagePack, audio bytes or (cache=true) a URL; errors `{"error", "details", "code"}`.

# NOTE: decisions where the seed is silent:
# - 429 means either "rate limited" or "credits exhausted"; the body's `code` tells them apart:
#   "rate_limited" (with Retry-After) versus "insufficient_credits" (no Retry-After).
# - `emotion` with a non-v3 version is refused with 400 (and is a deviation): the seed says
#   emotion is supported by V3 versions only.
# - One credit per character (configurable); a voice of another account is 403, an unknown one
#   404 "model_not_found"; other request problems are 400 "invalid_params".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runner.sandbox.accounts import Account, Accounts, rate_limiter
from runner.sandbox.audio import AudioRequest
from runner.sandbox.config import FishAudioNetConfig
from runner.sandbox.emulator import Context, Emulator, Route
from runner.sandbox.encode import AudioFormat
from runner.sandbox.exchange import Call, Refusal, Reply
from runner.sandbox.faults import FaultPlan
from runner.sandbox.ids import IdMaker
from runner.sandbox.ledger import Operation
from runner.sandbox.limits import Admission
from runner.sandbox.schema import Field, Invalid, Kind, check, number

__all__ = ["FishAudioNet"]

VERSIONS = ("v1", "v2", "s1", "v3-turbo", "v3-hd")
EMOTIONS = ("happy", "sad", "angry", "fearful", "disgusted", "surprised", "calm", "fluent", "auto")
S = (Kind.STR,)
FIELDS = (
    Field("reference_id", S),
    Field("text", S),
    Field("speed", (Kind.NUMBER,), lo=0.5, hi=2.0),
    Field("volume", (Kind.NUMBER,), lo=-20, hi=20),
    Field("version", S, choices=VERSIONS),
    Field("format", S, choices=("mp3", "wav", "pcm")),
    Field("emotion", S, choices=EMOTIONS),
    Field("cache", (Kind.BOOL,)),
)
MIME = {"mp3": "audio/mpeg", "wav": "audio/wav", "pcm": "audio/pcm"}
CACHE = "/cache"


@dataclass(frozen=True)
class CachedAudio:
    audio_id: str
    account: str
    audio: AudioRequest
    expires_at: float


class FishAudioNet(Emulator):
    name = "fishaudio_net"

    def __init__(self, ctx: Context, config: FishAudioNetConfig, faults: FaultPlan) -> None:
        self.config = config
        self.client_max_size = config.max_body_bytes
        self.accounts = Accounts(config, rate_limiter)
        #: voice model id → owning account label
        self.models: dict[str, str] = {v: a.label for a in config.accounts for v in a.voices}
        self.cached: dict[str, CachedAudio] = {}
        self.ids = IdMaker(ctx.seed, self.name)
        super().__init__(ctx, faults)

    def routes(self) -> Sequence[Route]:
        return [
            Route("POST", "/api/open/tts", self.tts, Operation.SYNTHESIZE, hot=True, audio=True),
            Route(
                "GET", f"{CACHE}/{{name}}", self.download, Operation.DOWNLOAD, hot=True, audio=True
            ),
        ]

    def error_reply(
        self, call: Call, status: int, code: str, message: str, extra: Mapping[str, object]
    ) -> Reply:
        details = str(extra.get("details", message))
        return Reply.json({"error": message, "details": details, "code": code}, status=status)

    def bad_body(self, call: Call, field: str, problem: str, expected: str) -> Refusal:
        return call.reject(field, problem, expected, status=400, code="invalid_params")

    def too_large(self, call: Call) -> Refusal:
        return call.refuse(413, "payload_too_large", "Payload Too Large")

    def throttled(self, call: Call, admission: Admission) -> Refusal:
        refusal = call.refuse(
            429, "rate_limited", "Too Many Requests", details="request rate limit exceeded"
        )
        refusal.reply.headers["Retry-After"] = str(admission.retry_after)
        return refusal

    def admit(self, call: Call) -> Account:
        header = call.request.headers.get("Authorization", "").strip()
        if not header.lower().startswith("bearer "):
            problem = "missing" if not header else "no Bearer prefix"
            call.deviate("Authorization", problem, "Authorization: Bearer <token>")
            raise call.refuse(401, "unauthorized", "Unauthorized", details="API Token 无效")
        account = self.accounts.resolve(header[7:].strip())
        if account is None:
            raise call.refuse(401, "unauthorized", "Unauthorized", details="API Token 无效")
        self.front_door(call, account)
        return account

    async def _body(self, call: Call) -> dict[str, object]:
        media = self.media_type(call)
        if media == "application/json":
            return await self.json_body(call)
        if media == "application/msgpack":
            return await self.msgpack_body(call)
        raise call.reject(
            "Content-Type",
            media or "missing",
            "application/json or msgpack",
            status=400,
            code="invalid_params",
        )

    def _bad(self, call: Call, field: str, problem: str, expected: str) -> Refusal:
        return call.reject(
            field, problem, expected, status=400, code="invalid_params", message="Bad Request"
        )

    async def _audio_request(self, call: Call, account: Account) -> tuple[AudioRequest, bool]:
        """The checked request: what to render, and whether to cache it behind a URL."""
        body = await self._body(call)
        try:
            check(call, body, FIELDS)
        except Invalid as error:
            raise call.refuse(400, "invalid_params", "Bad Request", details=str(error)) from None
        text, ref = body.get("text"), body.get("reference_id")
        if not isinstance(ref, str) or not ref.strip():
            raise self._bad(call, "reference_id", "missing or empty", "reference_id (required)")
        if not isinstance(text, str) or not text.strip():
            raise self._bad(call, "text", "missing or empty", "text (required)")
        version = str(body.get("version", "v1"))
        emotion = body.get("emotion")
        if emotion is not None and not version.startswith("v3"):
            raise self._bad(call, "emotion", f"sent with version {version}", "only with v3-*")
        self._voice(call, account, ref)
        audio = AudioRequest(
            text=text,
            voice=f"fishnet:{ref}:{version}:{emotion or 'auto'}",
            fmt=AudioFormat(str(body.get("format", "mp3"))),
            sample_rate=self.config.sample_rate,
            speed=number(body, "speed", 1.0),
            gain_db=number(body, "volume", 0.0),
        )
        params = {k: v for k, v in body.items() if k not in ("text", "cache")}
        call.describe(text=text, voice=audio.voice, params=params)
        return audio, bool(body.get("cache", False))

    async def tts(self, call: Call) -> Reply:
        account = self.admit(call)
        audio, cache = await self._audio_request(call, account)
        cost = len(audio.text) * self.config.credits_per_char
        if not account.can_pay(cost):
            raise call.refuse(
                429,
                "insufficient_credits",
                "Insufficient credits",
                details="API 积分不足 (credits exhausted)",
            )
        account.pay(cost)
        call.charge(cost)
        fmt = audio.fmt
        if not cache:
            data = await self.ctx.audio.render(audio)
            return Reply(200, data, MIME[fmt.value], audio=fmt)
        audio_id = self.ids.hex()
        expires = call.clock.now() + self.config.url_ttl
        self.cached[audio_id] = CachedAudio(audio_id, account.label, audio, expires)
        return Reply.json(
            {
                "success": True,
                "audio_url": f"{call.request.url.origin()}{CACHE}/{audio_id}.{fmt.value}",
                "format": fmt.value,
                "characters_used": len(audio.text),
                "quota_remaining": _number(account.balance),
            }
        )

    def _voice(self, call: Call, account: Account, reference_id: str) -> None:
        owner = self.models.get(reference_id)
        if owner is None and account.config.adopt_unknown_voices:
            owner = self.models[reference_id] = account.label
        if owner is None:
            raise call.refuse(
                404,
                "model_not_found",
                "Not Found",
                details=f"voice model {reference_id} does not exist",
            )
        if owner != account.label:
            raise call.refuse(
                403,
                "forbidden",
                "Forbidden",
                details=f"voice model {reference_id} belongs to another account",
            )

    async def download(self, call: Call) -> Reply:
        name = call.request.match_info["name"]
        cached = self.cached.get(name.rsplit(".", 1)[0])
        if cached is not None:
            call.anonymous_label = cached.account
        self.front_door(call, None)
        if cached is None or cached.expires_at <= call.clock.now():
            raise call.refuse(404, "not_found", "Not Found", details="audio expired or unknown")
        data = await self.ctx.audio.render(cached.audio)
        return Reply(200, data, MIME[cached.audio.fmt.value], audio=cached.audio.fmt)


def _number(value: float) -> float | int:
    return int(value) if value == int(value) else round(value, 6)
