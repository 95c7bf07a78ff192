"""What the two Fish Audio APIs (the yuntts proxy and fishaudio.net) share on the wire: request
bodies as JSON or MessagePack, audio replies that must be whole and of the format asked for,
and results fetched from a URL the service hands out.

A paid result behind a URL is fetched with its own retries: once the synthesis is paid, a
failed download is tried again, never the synthesis. Such a download is verified here (it
parses as its format), because a bad one found later would make the scheduler ask, and pay,
for the synthesis again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Final
from urllib.parse import urljoin, urlsplit

import anyio.to_thread
import msgpack

from runner.audio import probe
from runner.errors import (
    AudioError,
    CorruptResult,
    PermanentError,
    ProviderError,
    RateLimited,
    ResultExpired,
    TransientError,
    Unauthorized,
)
from runner.limits import download_priority
from runner.providers.http import Http, Reply, retry_after_seconds

__all__ = [
    "JSON",
    "MSGPACK",
    "audio_body",
    "by_status",
    "decode_object",
    "encode_body",
    "fetch_result",
    "redacted",
    "said",
]

#: NOTE: neither seed says how long a result URL lives; a day is assumed (as the sandbox
#: does). It only ranks a download among others; any download goes before new work.
RESULT_TTL: Final = 24 * 3600.0
#: Statuses of a result URL whose audio is gone, once retrying has not brought it back.
GONE: Final = frozenset({404, 410})
JSON: Final = "application/json"
MSGPACK: Final = "application/msgpack"

#: Content types that may carry each format. The vendors document the first of each; the
#: others are the common spellings of the same thing.
AUDIO_TYPES: Final[Mapping[str, frozenset[str]]] = {
    "mp3": frozenset({"audio/mpeg", "audio/mp3", "audio/mpeg3"}),
    "wav": frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"}),
    "pcm": frozenset({"audio/pcm", "audio/l16", "application/octet-stream"}),
    "opus": frozenset({"audio/opus", "audio/ogg"}),
}


def encode_body(body: Mapping[str, object], *, packed: bool) -> tuple[bytes, str]:
    """The body's bytes and Content-Type. In MessagePack, `bytes` values travel as the binary
    type and `str` as text (use_bin_type), which is what raw reference audio needs."""
    if packed:
        return msgpack.packb(dict(body), use_bin_type=True), MSGPACK
    return json.dumps(body, ensure_ascii=False).encode(), JSON


def decode_object(reply: Reply) -> dict[str, object] | None:
    """A JSON (or MessagePack) object reply, or None when the body is not one."""
    try:
        if reply.content_type in (MSGPACK, "application/x-msgpack"):
            value = msgpack.unpackb(reply.body, raw=False)
        else:
            value = json.loads(reply.body)
    except (ValueError, msgpack.UnpackException):
        return None
    return value if isinstance(value, dict) else None


def redacted(http: Http, message: str) -> str:
    """`message` with every secret of the run blanked: provider messages may echo a token."""
    return http.context.events.redact(message)


def said(http: Http, reply: Reply, what: str, provider: str, code: str, message: str) -> str:
    """A provider's error as the user reads it: the item, the status, the provider's code and
    its own words (any secret blanked)."""
    tag = f" ({code})" if code else ""
    words = message or reply.text(160) or "no message"
    return redacted(http, f"{what}: {provider} answered HTTP {reply.status}{tag}: {words}")


def by_status(http: Http, reply: Reply, said: str) -> ProviderError:
    """What an error status means when the body says nothing more specific: 401 refused
    credentials, 429 slow down, 5xx and 408 try again, any other status fails the item."""
    status, account = reply.status, http.context.account.name
    if status == 401:
        return Unauthorized(said, account=account, status=status)
    if status == 429:
        wait = retry_after_seconds(reply.headers.get("retry-after"))
        return RateLimited(said, account=account, status=status, retry_after=wait)
    if status >= 500 or status == 408:
        return TransientError(said, account=account, status=status)
    return PermanentError(said, account=account, status=status)


def audio_body(http: Http, reply: Reply, fmt: str, *, what: str, provider: str) -> bytes:
    """The audio of a 200 reply, after checking it is audio of `fmt` and arrived whole.

    aiohttp raises for a body shorter than its Content-Length or a chunked body missing its
    end; a body delimited only by the connection closing cannot be told from one cut short,
    and both vendors document a Content-Length, so such a body is not trusted.
    """
    account = http.context.account.name
    if reply.content_type not in AUDIO_TYPES[fmt]:
        kind = reply.content_type or "no content type"
        raise CorruptResult(
            redacted(
                http,
                f"{what}: {provider} answered 200 with {kind} where {fmt} audio was expected: "
                f"{reply.text(80)!r}",
            ),
            account=account,
        )
    chunked = "chunked" in reply.headers.get("transfer-encoding", "").lower()
    if "content-length" not in reply.headers and not chunked:
        raise TransientError(
            f"{what}: {provider} sent {len(reply.body)} bytes of audio without a "
            "Content-Length, so they may be cut short",
            account=account,
        )
    if not reply.body:
        raise CorruptResult(f"{what}: {provider} sent an empty audio body", account=account)
    return reply.body


async def fetch_result(
    http: Http,
    url: str,
    fmt: str,
    *,
    base: str,
    sample_rate: int | None,
    what: str,
    provider: str,
) -> bytes:
    """Download a paid result from `url` (resolved against `base`), verified, with retries.

    No credential goes with it: the URL is the capability, and it may point at another host.
    A paid result goes ahead of new work in the account's limiter. A URL that still answers
    404 or 410 after the retries raises ResultExpired: the audio must be requested again.
    """
    target = urljoin(base + "/", url)
    if urlsplit(target).scheme not in ("http", "https"):
        raise CorruptResult(f"{what}: {provider} gave an unusable result URL", account=_of(http))

    priority = download_priority(time.time() + RESULT_TTL)

    async def fetch() -> bytes:
        reply = await http.send("GET", target, priority=priority)
        if reply.status == 429:
            raise RateLimited(
                f"{what}: {provider} answered 429 to the download",
                account=_of(http),
                status=429,
                retry_after=retry_after_seconds(reply.headers.get("retry-after")),
            )
        if reply.status != 200:
            # Just handed out, the file may not be in place yet: worth another try or two.
            raise TransientError(
                f"{what}: {provider} answered HTTP {reply.status} to the download",
                account=_of(http),
                status=reply.status,
            )
        data = audio_body(http, reply, fmt, what=what, provider=provider)
        try:
            await anyio.to_thread.run_sync(probe, data, fmt, sample_rate)
        except AudioError as exc:
            raise CorruptResult(f"{what}: {exc}", account=_of(http)) from exc
        return data

    try:
        return await http.retrying(fetch, what)
    except TransientError as exc:
        if exc.status in GONE:
            raise ResultExpired(
                f"{what}: {provider} no longer has the result (HTTP {exc.status})",
                account=_of(http),
                status=exc.status,
            ) from exc
        raise


def _of(http: Http) -> str:
    return http.context.account.name
