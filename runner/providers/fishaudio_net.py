"""fishaudio.net open API (seed 003): synchronous synthesis with an existing voice model.

    POST /api/open/tts    Authorization: Bearer <token>; JSON, or MessagePack when the
                          account sets `msgpack: true`
        cache false → the audio bytes (audio/mpeg for mp3)
        cache true  → {success, audio_url, format, characters_used, quota_remaining}: a
                      `Stored` result, fetched from audio_url

The body carries `reference_id` and `text`, exactly what the voice sets, and always `format` and
`cache`, which decide what the reply is. Errors are `{"error", "details", "code"}`; 429 means
either "too many requests" or "credits exhausted", told apart by the body.

# NOTE: decisions where the seed is silent:
# - 403 on a synthesis whose message names the voice model fails that segment (another
#   account's voice); any other 403 stops the account (the token may not use the API).
# - Raw PCM is taken as 44.1 kHz mono 16-bit: the seed names no rate.
"""

from __future__ import annotations

from typing import ClassVar, Final

from runner.errors import (
    CorruptResult,
    OutOfCredit,
    PermanentError,
    ProviderError,
    Unauthorized,
    Unsupported,
)
from runner.providers.base import Audio, Mode, Provider, Quota, Request, Stored
from runner.providers.context import ProviderContext
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

__all__ = ["FishAudioNetProvider"]

DEFAULT_BASE: Final = "https://fishaudio.net"
PATH: Final = "/api/open/tts"
PROVIDER: Final = "fishaudio.net"
#: NOTE: the seed names no timeout; a long text takes a while to synthesise.
DEFAULT_TIMEOUT: Final = 120.0
#: Optional body fields, sent only when the voice sets them.
OPTIONAL: Final = ("speed", "volume", "version", "emotion")
PCM_RATE: Final = 44_100
#: Words of a 429 body that mean the credits are gone rather than the rate exceeded.
CREDIT_WORDS: Final = ("credit", "积分", "quota", "balance", "余额")


class FishAudioNetProvider(Provider):
    mode: ClassVar[Mode] = Mode.SYNC
    kind: ClassVar[str] = "fishaudio_net"

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
        self._quota: Quota | None = None  #: from the last cache=true reply

    async def aclose(self) -> None:
        await self.http.aclose()

    def _auth(self) -> dict[str, str]:
        if not self.token:
            variable = self.context.account.credentials.get("token_env", "")
            raise Unauthorized(f"no fishaudio.net token: set {variable}", account=self.account)
        return {"Authorization": f"Bearer {self.token}"}

    def body(self, request: Request) -> dict[str, object]:
        params = request.params
        body: dict[str, object] = {
            "reference_id": str(params.get("reference_id", "")),
            "text": request.text,
        }
        body.update({name: params[name] for name in OPTIONAL if name in params})
        body["format"] = str(params.get("format", "mp3"))
        body["cache"] = params.get("cache", False) is True
        return body

    async def synthesize(self, request: Request) -> Audio | Stored:
        body = self.body(request)
        fmt, voice = str(body["format"]), str(body["reference_id"])
        data, content_type = encode_body(body, packed=self.packed)
        headers = {**self._auth(), "Content-Type": content_type}
        what = f"segment {request.key[:12]}"
        rate = PCM_RATE if fmt == "pcm" else None

        async def paid() -> Audio | Stored:
            reply = await self.http.send(
                "POST", f"{self.base}{PATH}", data=data, headers=headers, on_send=request.on_send
            )
            if reply.status != 200:
                raise self.error(reply, what, voice)
            if not body["cache"]:
                audio = audio_body(self.http, reply, fmt, what=what, provider=PROVIDER)
                return Audio(audio, fmt, rate, cost=float(len(request.text)))
            return self._cached(reply, fmt, what, len(request.text))

        return await self.http.retrying(paid, what)

    async def fetch(self, request: Request, url: str) -> Audio:
        """The audio of a cache=true result (its cost was counted when it was stored)."""
        fmt = str(request.params.get("format", "mp3"))
        rate = PCM_RATE if fmt == "pcm" else None
        audio = await fetch_result(
            self.http,
            url,
            fmt,
            base=self.base,
            sample_rate=rate,
            what=f"segment {request.key[:12]} (download)",
            provider=PROVIDER,
        )
        return Audio(audio, fmt, rate)

    def _cached(self, reply: Reply, fmt: str, what: str, chars: int) -> Stored:
        """The URL and cost of a cache=true reply; remembers the quota it reports."""
        found = decode_object(reply) or {}
        url = found.get("audio_url")
        if found.get("success") is not True or not isinstance(url, str) or not url:
            raise CorruptResult(
                redacted(
                    self.http,
                    f"{what}: {PROVIDER} answered cache=true without a successful audio_url: "
                    f"{reply.text(120)!r}",
                ),
                account=self.account,
            )
        if found.get("format", fmt) != fmt:
            raise CorruptResult(
                f"{what}: {PROVIDER} cached {found.get('format')!r} audio, not {fmt}",
                account=self.account,
            )
        remaining = found.get("quota_remaining")
        if isinstance(remaining, int | float) and not isinstance(remaining, bool):
            self._quota = Quota(
                float(remaining), None, "credits", {"source": "the last cache=true reply"}
            )
        used = found.get("characters_used")
        return Stored(url, float(used) if isinstance(used, int | float) else float(chars))

    def error(self, reply: Reply, what: str, voice: str) -> ProviderError:
        """The error tree's reading of a non-200 reply."""
        found = decode_object(reply) or {}
        error, details = str(found.get("error") or ""), str(found.get("details") or "")
        code = str(found.get("code") or "")
        message = error if not details or details == error else f"{error}: {details}"
        told = said(self.http, reply, what, PROVIDER, code, message)
        status, account = reply.status, self.account
        if status == 429 and _out_of_credit(code, message):
            return OutOfCredit(f"{told} (top up the fishaudio.net credits)", account=account)
        if status == 404:
            return PermanentError(f"{told} (voice model {voice})", account=account, status=404)
        if status == 403 and voice not in message:
            return Unauthorized(f"{told} (the token may not use this API)", account=account)
        return by_status(self.http, reply, told)

    async def quota(self) -> Quota:
        """The API reports remaining credits only in cache=true replies: the last one seen."""
        if self._quota is None:
            raise Unsupported(
                "fishaudio.net reports remaining credits only in replies to cache=true "
                "syntheses, and none has been seen in this process"
            )
        return self._quota


def _out_of_credit(code: str, message: str) -> bool:
    if code == "rate_limited":
        return False
    text = f"{code} {message}".lower()
    return any(word in text for word in CREDIT_WORDS)
