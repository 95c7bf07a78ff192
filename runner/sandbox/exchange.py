"""One request's passage through an emulator: the `Call` record, replies, and delivery.

A handler receives a `Call`, returns a `Reply` (or raises `Refusal` carrying one), and
`deliver` turns the reply into bytes on the wire, applying the transport faults on the way.
The `Call` collects what the ledger needs while the handler works: the account, what was
synthesized, whether it was paid, and what fault was applied.
"""

from __future__ import annotations

import contextlib
import http
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import anyio
from aiohttp import web

from runner.sandbox.audio import corrupt
from runner.sandbox.encode import AudioFormat
from runner.sandbox.faults import AUDIO, FaultKind
from runner.sandbox.ids import digest
from runner.sandbox.ledger import LedgerEntry, Operation

if TYPE_CHECKING:
    from runner.sandbox.accounts import Account
    from runner.sandbox.clock import SandboxClock
    from runner.sandbox.limits import Admission
    from runner.sandbox.strict import DeviationLog

__all__ = ["Call", "Refusal", "Reply", "Shapes", "deliver"]

CHUNK = 16 * 1024


@dataclass
class Reply:
    """A reply before delivery. Mutable on purpose: headers are added on the way out (rate-limit
    headers, Retry-After) after the handler has built it."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    audio: AudioFormat | None = None  #: the body is audio in this format (corrupt faults apply)
    chunked: bool = False  #: send with chunked transfer encoding (no Content-Length)

    @classmethod
    def json(
        cls, payload: object, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Reply:
        body = json.dumps(payload, ensure_ascii=False).encode()
        return cls(status, body, "application/json; charset=utf-8", dict(headers or {}))

    @classmethod
    def text(cls, text: str, status: int) -> Reply:
        return cls(status, text.encode(), "text/plain; charset=utf-8")


class Refusal(Exception):
    """Raised inside a handler to answer at once with `reply`."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


class Shapes(Protocol):
    """How one emulator words its errors."""

    name: str

    def error_reply(
        self, call: Call, status: int, code: str, message: str, extra: Mapping[str, object]
    ) -> Reply: ...


class Call:
    """What the sandbox learns about one request while serving it."""

    def __init__(
        self,
        shapes: Shapes,
        request: web.Request,
        *,
        endpoint: str,
        operation: Operation,
        clock: SandboxClock,
        deviations: DeviationLog,
    ) -> None:
        self.shapes = shapes
        self.request = request
        self.endpoint = endpoint
        self.operation = operation
        self.clock = clock
        self._deviations = deviations
        self.started_at = clock.now()
        self.account: Account | None = None
        self.anonymous_label = ""  #: the ledger's name for requests without accounts (VoxCPM)
        self.fault: FaultKind | None = None
        self.admission: Admission | None = None  #: the rate limiter's verdict on this request
        self.status: int | None = None
        self.code = ""
        self.characters = 0
        self.cost = 0.0
        self.text_hash = ""
        self.voice = ""
        self.request_key = ""
        self.paid = False
        self.retrievable = False
        self.delivered = True
        self.counted = False
        self.throttled = False
        self.stack = contextlib.ExitStack()

    def __repr__(self) -> str:
        return f"<Call {self.shapes.name} {self.request.method} {self.endpoint} [{self.label}]>"

    @property
    def label(self) -> str:
        return self.account.label if self.account else self.anonymous_label

    @property
    def route(self) -> str:
        return f"{self.request.method} {self.endpoint}"

    def deviate(self, field: str, problem: str, expected: str) -> None:
        self._deviations.record(
            at=self.clock.now(),
            provider=self.shapes.name,
            endpoint=self.route,
            account=self.label,
            field=field,
            problem=problem,
            expected=expected,
        )

    def refuse(self, status: int, code: str, message: str, **extra: object) -> Refusal:
        """A refusal in the provider's error shape (raise it)."""
        self.code = code
        return Refusal(self.shapes.error_reply(self, status, code, message, extra))

    def reject(
        self, field: str, problem: str, expected: str, *, status: int, code: str, message: str = ""
    ) -> Refusal:
        """A deviation that the vendor also refuses: record it, then refuse (raise it)."""
        self.deviate(field, problem, expected)
        return self.refuse(status, code, message or f"{field}: {problem}")

    def describe(self, *, text: str, voice: str, params: Mapping[str, object]) -> None:
        """Name what this request synthesizes, for double-payment accounting."""
        self.characters = len(text)
        self.text_hash = digest(text)
        self.voice = voice
        self.request_key = digest(text, voice, dict(params))

    def charge(self, cost: float, *, retrievable: bool = False) -> None:
        self.paid = True
        self.cost = cost
        self.retrievable = retrievable

    def entry(self, seq: int) -> LedgerEntry:
        return LedgerEntry(
            seq=seq,
            started_at=self.started_at,
            finished_at=self.clock.now(),
            provider=self.shapes.name,
            account=self.label,
            method=self.request.method,
            endpoint=self.endpoint,
            operation=self.operation,
            status=self.status if self.status is not None else 500,
            code=self.code,
            characters=self.characters,
            cost=self.cost,
            text_hash=self.text_hash,
            voice=self.voice,
            request_key=self.request_key,
            paid=self.paid,
            delivered=self.delivered,
            retrievable=self.retrievable,
            counted=self.counted,
            throttled=self.throttled,
            fault=self.fault.value if self.fault else "",
        )


async def deliver(call: Call, reply: Reply, *, slow_seconds: float) -> web.StreamResponse:
    """Send `reply`, damaged as `call.fault` says."""
    kind = call.fault
    body = reply.body
    if reply.audio is not None and kind in AUDIO:
        body = corrupt(body, kind, reply.audio)
        call.delivered = False
    headers = {**reply.headers, "Content-Type": reply.content_type}
    if kind is FaultKind.SLOW:
        # Real time on purpose: the point is to outlast a client's (real) timeout.
        await anyio.sleep(slow_seconds)
    transport = call.request.transport
    if kind is FaultKind.DROP:
        call.status, call.delivered = 0, False
        if transport is not None:
            transport.close()
        return web.Response()
    if kind in (FaultKind.TRUNCATE_WITH_LENGTH, FaultKind.TRUNCATE_NO_LENGTH):
        call.status, call.delivered = reply.status, False
        if kind is FaultKind.TRUNCATE_WITH_LENGTH:
            headers["Content-Length"] = str(len(body))
        # Written by hand: aiohttp would never send a body shorter than its Content-Length,
        # nor an HTTP/1.1 body delimited only by closing the connection.
        headers["Connection"] = "close"
        head = f"HTTP/1.1 {reply.status} {http.HTTPStatus(reply.status).phrase}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        if transport is not None:
            transport.write(head.encode("latin-1") + body[: len(body) // 2])
            transport.close()
        return web.Response()
    call.status = reply.status
    if not reply.chunked:
        return web.Response(status=reply.status, body=body, headers=headers)
    response = web.StreamResponse(status=reply.status, headers=headers)
    response.enable_chunked_encoding()
    await response.prepare(call.request)
    for start in range(0, len(body), CHUNK):
        await response.write(body[start : start + CHUNK])
    await response.write_eof()
    return response
