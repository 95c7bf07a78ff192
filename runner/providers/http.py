"""Shared HTTP plumbing for the adapters: one aiohttp session per account, every request paced by
the account's limiter, foreign exceptions mapped onto our error tree, and retries with backoff.

There are three ways a reply can go wrong below the level of a provider's own errors, and each
becomes a `TransientError`: the connection fails or drops (aiohttp client errors), the server
is too slow (timeouts), or the body ends early. aiohttp raises for a body shorter than its
Content-Length, but a body delimited by the connection closing simply ends; adapters verify
every audio body for that reason.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, TypeVar

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from runner.errors import RateLimited, TransientError
from runner.limits import WORK, Priority, Slot
from runner.providers.context import ProviderContext

__all__ = ["Http", "Reply", "retry_after_seconds"]

T = TypeVar("T")


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  #: lower-case names
    body: bytes
    url: str

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def text(self, limit: int = 300) -> str:
        """The body as text for a message, shortened."""
        text = self.body[:limit].decode("utf-8", "replace").strip()
        return text + ("…" if len(self.body) > limit else "")


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class Http:
    """An account's HTTP client. Use as an async context manager or call `aclose()`."""

    def __init__(
        self,
        context: ProviderContext,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.context = context
        self.timeout = timeout
        self._headers = dict(headers or {})
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"<Http account={self.context.account.name!r} timeout={self.timeout}>"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            limit = (self.context.limiter.limits.concurrent or 16) * 2
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(_headers_sent)
            self._session = aiohttp.ClientSession(
                trace_configs=[trace],
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout, connect=min(30.0, self.timeout)),
                connector=aiohttp.TCPConnector(limit=limit),
                raise_for_status=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        method: str,
        url: str,
        *,
        on_send: Callable[[], Awaitable[None]] | None = None,
        priority: Priority = WORK,
        **kwargs: Any,
    ) -> Reply:
        """One request through the account's limiter. Raises TransientError for failures below
        the HTTP level; any HTTP status is returned for the adapter to interpret."""
        account = self.context.account.name
        async with self.context.slot(priority) as slot:
            if on_send is not None:
                await on_send()
            self.context.stats.requests += 1
            try:
                async with self._client().request(
                    method, url, trace_request_ctx=slot, **kwargs
                ) as response:
                    slot.answered()
                    body = await response.read()
                    headers = {k.lower(): v for k, v in response.headers.items()}
                    status = response.status
            except TimeoutError as exc:
                raise TransientError(
                    f"{method} {_path(url)}: no reply within {self.timeout:g} s", account=account
                ) from exc
            except aiohttp.ClientPayloadError as exc:
                raise TransientError(
                    f"{method} {_path(url)}: the reply body was cut short ({exc})", account=account
                ) from exc
            except aiohttp.ClientError as exc:
                raise TransientError(
                    f"{method} {_path(url)}: connection failed ({type(exc).__name__})",
                    account=account,
                ) from exc
        self._feedback(status, headers)
        return Reply(status, headers, body, url)

    def _feedback(self, status: int, headers: Mapping[str, str]) -> None:
        """A server that says its window is used up pauses the whole account until it resets."""
        remaining, reset = headers.get("x-ratelimit-remaining"), headers.get("x-ratelimit-reset")
        if status != 429 and remaining is not None and reset is not None:
            try:
                left, seconds = int(float(remaining)), float(reset)
            except ValueError:
                return
            if left <= 0:
                if seconds > 1e9:  # an epoch timestamp rather than seconds from now
                    seconds -= time.time()
                if seconds == int(seconds):
                    # Whole seconds, rounded up: the window frees within the last of them.
                    # Until then nothing starts; within it, the account's own log decides.
                    seconds -= 1.0
                self.context.limiter.pause_until(time.monotonic() + max(0.0, seconds))

    async def retrying(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        """Run `operation`, retrying transient failures with backoff and waiting out 429s.

        A 429 (RateLimited) pauses the whole account for the time the server asked (and slows
        it when repeated), then the operation is tried again; it does not use up a transient
        attempt. Refused that way `rate_limited_attempts` times in a row, it gives up with a
        TransientError: the segment is left for later instead of spinning.
        """
        policy = self.context.retry
        stats = self.context.stats
        in_a_row = 0
        while True:
            try:
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(policy.attempts),
                    wait=wait_random_exponential(
                        multiplier=policy.base_delay, max=policy.max_delay
                    ),
                    retry=retry_if_exception_type(TransientError),
                    reraise=True,
                    before_sleep=lambda state: self._retrying(state.outcome, what),
                ):
                    with attempt:
                        return await operation()
            except RateLimited as exc:
                stats.rate_limited += 1
                in_a_row += 1
                wait = exc.retry_after if exc.retry_after is not None else policy.max_delay
                self.context.limiter.throttled(wait)
                self.context.events.emit(
                    "rate_limited",
                    account=self.context.account.name,
                    wait=round(wait, 3),
                    message=str(exc),
                )
                if in_a_row >= policy.rate_limited_attempts:
                    raise TransientError(
                        f"{what}: refused for its rate {in_a_row} times in a row ({exc})",
                        account=self.context.account.name,
                    ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _retrying(self, outcome: Any, what: str) -> None:
        exc = outcome.exception() if outcome is not None else None
        cause = type(exc).__name__ if exc is not None else "unknown"
        self.context.stats.retries[cause] += 1
        self.context.events.emit(
            "retry", account=self.context.account.name, cause=cause, what=what, message=str(exc)
        )


async def _headers_sent(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    """aiohttp trace hook: the request really left; its limiter slot counts from now."""
    slot = context.trace_request_ctx
    if isinstance(slot, Slot):
        slot.sent()


def _path(url: str) -> str:
    """The path of a URL, for messages: no host, no query (which may carry a credential)."""
    without_query = url.split("?", 1)[0]
    return "/" + without_query.split("://", 1)[-1].split("/", 1)[-1]
