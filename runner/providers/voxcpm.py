"""VoxCPM2 self-hosted servers (specs/providers.md §2, seed 001): one synchronous JSON call per
segment, a base64 WAV back, no auth. Several servers (one per GPU) form one pool.

```
synthesize ─▶ a free server of the pool ─▶ POST {server}/api/tts
              {"text", "prompt", "audio": <base64 reference>, "reference_text"}
           ─▶ {"status": "success", "sample_rate", "audio": <base64 WAV>} ─▶ Audio(wav)
```

# NOTE: choices where the vendor page is silent (they live here, to change in one place):
# - No default host is documented: an account without `base_url(s)` talks to 127.0.0.1:5022.
# - Error statuses are not documented, so the body decides: "inference failed" is transient;
#   the other documented messages are the request's own fault (permanent); an undocumented
#   message is transient on HTTP 5xx and permanent otherwise.
# - A server processes one request at a time (one GPU), so the pool lets PER_SERVER requests
#   reach each server at once, whatever the account's `concurrent` allows in total.
# - `sample_rate` is part of the documented success reply: a reply without it is malformed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import ClassVar, Final

import anyio
import anyio.to_thread

from runner.errors import CorruptResult, PermanentError, RateLimited, TransientError
from runner.manifest.params import FileRef
from runner.providers.base import Audio, Mode, Provider, Request
from runner.providers.context import ProviderContext
from runner.providers.files import read_reference
from runner.providers.http import Http, Reply, retry_after_seconds

__all__ = ["PER_SERVER", "ServerPool", "VoxCPMProvider"]

DEFAULT_URL: Final = "http://127.0.0.1:5022"
#: The vendor's own clients wait this long for one synthesis.
DEFAULT_TIMEOUT: Final = 300.0
#: Requests one server takes at once: it synthesizes one at a time and queues the rest.
PER_SERVER: Final = 1
#: Documented failures that are worth another try (on another server, when one is free).
RETRYABLE: Final = frozenset({"inference failed"})
#: Documented failures caused by the request itself.
REQUEST_FAULTS: Final = frozenset({"text cannot be empty", "audio is not valid base64"})
_DATA_URL = re.compile(r"^data:audio/[\w.+-]+;base64,", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
#: Client-error statuses that still mean "try again" (a proxy's timeout or throttling).
_RETRY_STATUSES: Final = frozenset({408, 429})


@dataclass(eq=False)
class Server:
    url: str
    slots: anyio.CapacityLimiter
    failures: int = 0  #: failed requests in a row
    turn: int = 0  #: when it was last picked, so that idle servers take turns

    def __repr__(self) -> str:
        return f"<Server {self.url} busy={self.slots.borrowed_tokens} failures={self.failures}>"


class ServerPool:
    """An account's servers, each taking at most `per_server` requests at once.

    A request first takes a token of the whole pool (there are as many as free places on all
    servers), then the best free server: one this request has not failed on, with the fewest
    recent failures, the least busy, the longest idle. Holding a pool token guarantees a free
    server exists, since every other holder occupies at most one place.
    """

    def __init__(self, urls: Sequence[str], per_server: int = PER_SERVER) -> None:
        if not urls:
            raise ValueError("a server pool needs at least one URL")
        self.servers = tuple(Server(url, anyio.CapacityLimiter(per_server)) for url in urls)
        self._places = anyio.CapacityLimiter(len(self.servers) * per_server)
        self._turns = 0

    def __repr__(self) -> str:
        return f"<ServerPool {list(self.servers)}>"

    @asynccontextmanager
    async def server(self, avoid: Collection[str] = ()) -> AsyncIterator[Server]:
        async with self._places:
            chosen = min(
                (s for s in self.servers if s.slots.available_tokens > 0),
                key=lambda s: (s.url in avoid, s.failures, s.slots.borrowed_tokens, s.turn),
            )
            chosen.slots.acquire_nowait()  # no await since the choice: it is still free
            self._turns += 1
            chosen.turn = self._turns
            try:
                yield chosen
            finally:
                chosen.slots.release()

    @staticmethod
    def succeeded(server: Server) -> None:
        server.failures = 0

    @staticmethod
    def failed(server: Server) -> None:
        server.failures += 1


@dataclass(frozen=True)
class _Success:
    server: Server
    audio: str  #: base64, as received
    sample_rate: int


class VoxCPMProvider(Provider):
    mode: ClassVar[Mode] = Mode.SYNC
    kind: ClassVar[str] = "voxcpm"
    #: Self-hosted: a request costs GPU time, not money.
    paid: ClassVar[bool] = False

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(context)
        timeout = context.account.options.get("timeout", DEFAULT_TIMEOUT)
        self.timeout = float(timeout) if isinstance(timeout, int | float) else DEFAULT_TIMEOUT
        self.pool = ServerPool([url.rstrip("/") for url in context.urls(DEFAULT_URL)])
        self._http = Http(context, timeout=self.timeout)
        self._references: dict[str, str] = {}  # sha256 → base64; files can be large
        self._reading = anyio.Lock()

    def __repr__(self) -> str:
        return (
            f"<VoxCPMProvider account={self.account!r} servers={len(self.pool.servers)} "
            f"timeout={self.timeout:g}>"
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def synthesize(self, request: Request) -> Audio:
        body = await self._body(request)
        failed_on: set[str] = set()

        async def attempt() -> _Success:
            async with self.pool.server(avoid=failed_on) as server:
                try:
                    reply = await self._http.send(
                        "POST", f"{server.url}/api/tts", json=body, on_send=request.on_send
                    )
                    success = _parse_reply(reply, server, self.account)
                except TransientError:
                    failed_on.add(server.url)
                    self.pool.failed(server)
                    raise
                self.pool.succeeded(server)
                return success

        success = await self._http.retrying(attempt, f"POST /api/tts ({request.key[:12]})")
        try:
            wav = await self._verified(success)
        except CorruptResult:
            self.pool.failed(success.server)  # the scheduler's new request goes elsewhere
            raise
        return Audio(wav, "wav", success.sample_rate)

    async def _verified(self, success: _Success) -> bytes:
        """The WAV of a success reply; CorruptResult when it is not plausible audio."""
        where = f"VoxCPM server {success.server.url}"
        try:
            wav = _decode_base64(success.audio)
        except binascii.Error as exc:
            raise CorruptResult(
                f"{where} returned audio that is not valid base64 ({exc})", account=self.account
            ) from exc
        return wav

    async def _body(self, request: Request) -> dict[str, str]:
        """The documented body: every field present, "" when unused (as the vendor's clients)."""
        params = request.params
        reference = params.get("reference_audio")
        audio = ""
        if isinstance(reference, FileRef):
            audio = await self._reference(reference)
        return {
            "text": request.text,
            "prompt": str(params.get("prompt", "")),
            "audio": audio,
            "reference_text": str(params.get("reference_text", "")),
        }

    async def _reference(self, ref: FileRef) -> str:
        async with self._reading:  # one read per file, however many workers need it at once
            if ref.sha256 not in self._references:
                data = await anyio.to_thread.run_sync(read_reference, ref, self.account)
                self._references[ref.sha256] = base64.b64encode(data).decode("ascii")
            return self._references[ref.sha256]


def _parse_reply(reply: Reply, server: Server, account: str) -> _Success:
    """The success of one reply, or the error it means (TransientError or PermanentError)."""
    where = f"VoxCPM server {server.url}"
    try:
        data = json.loads(reply.body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        refused = 400 <= reply.status < 500 and reply.status not in _RETRY_STATUSES
        raise (PermanentError if refused else TransientError)(
            f"{where} answered HTTP {reply.status} with a body that is not the API's JSON: "
            f"{reply.text(200)!r}",
            account=account,
            status=reply.status,
        )
    if reply.status == 429:  # throttled, whatever the body says: wait and ask again
        raise RateLimited(
            f"{where} answered HTTP 429: {reply.text(200)!r}",
            account=account,
            status=429,
            retry_after=retry_after_seconds(reply.headers.get("retry-after")),
        )
    status = data.get("status")
    if status == "error":
        message = str(data.get("message") or "an error without a message")
        transient = message in RETRYABLE or (message not in REQUEST_FAULTS and reply.status >= 500)
        error = TransientError if transient else PermanentError
        raise error(f"{where}: {message}", account=account, status=reply.status)
    audio, rate = data.get("audio"), data.get("sample_rate")
    if status != "success" or not isinstance(audio, str) or not audio:
        raise TransientError(
            f"{where} answered HTTP {reply.status} without status success and audio: "
            f"{reply.text(200)!r}",
            account=account,
            status=reply.status,
        )
    if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
        raise TransientError(
            f"{where} answered success without a valid sample_rate ({rate!r})", account=account
        )
    return _Success(server, audio, rate)


def _decode_base64(text: str) -> bytes:
    """Plain base64 or a data: URL; line breaks are tolerated, anything else is not."""
    return base64.b64decode(_SPACE.sub("", _DATA_URL.sub("", text, count=1)), validate=True)
