"""What every emulated API shares: routing, the ledger middleware, the front door, bodies.

An emulator is one aiohttp application. Its middleware opens a `Call` for every request
(matched or not), hands it to the route's handler, delivers the reply with any fault, and
records the ledger entry however the request ends: answered, refused, dropped, or abandoned
by a client that went away (status 499).
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import msgpack
from aiohttp import web
from multidict import MultiDictProxy

from runner.sandbox.accounts import Account
from runner.sandbox.audio import AudioEngine
from runner.sandbox.clock import SandboxClock
from runner.sandbox.exchange import Call, Refusal, Reply, deliver
from runner.sandbox.faults import AUDIO, REFUSALS, TASK, TRANSPORT, FaultKind, FaultPlan
from runner.sandbox.ledger import Ledger, Operation
from runner.sandbox.limits import Admission
from runner.sandbox.strict import DeviationLog

__all__ = ["Context", "Emulator", "Route"]

CALL = web.RequestKey("sandbox_call", Call)
Handler = Callable[[Call], Awaitable[Reply]]


@dataclass(frozen=True)
class Context:
    """The sandbox-wide objects every emulator shares."""

    clock: SandboxClock
    ledger: Ledger
    deviations: DeviationLog
    audio: AudioEngine
    seed: int


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    operation: Operation
    hot: bool = False  #: random faults apply (synthesis, polls, downloads)
    audio: bool = False  #: replies may carry audio (corrupt faults apply)
    task: bool = False  #: creates an async task (never_finish / task_failed apply)

    @property
    def applicable(self) -> frozenset[FaultKind]:
        kinds = REFUSALS | TRANSPORT
        if self.audio:
            kinds |= AUDIO
        if self.task:
            kinds |= TASK
        return kinds


class Emulator(ABC):
    """Base of the five emulators. Subclasses declare routes and their error shapes."""

    name: str
    client_max_size = 1024 * 1024

    def __init__(self, ctx: Context, faults: FaultPlan) -> None:
        self.ctx = ctx
        self.faults = faults
        self._routes = {(r.method, r.path): r for r in self.routes()}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {len(self._routes)} routes>"

    # -- what a subclass provides ------------------------------------------------------------

    @abstractmethod
    def routes(self) -> Sequence[Route]: ...

    @abstractmethod
    def error_reply(
        self, call: Call, status: int, code: str, message: str, extra: Mapping[str, object]
    ) -> Reply:
        """An error in the vendor's shape."""

    @abstractmethod
    def throttled(self, call: Call, admission: Admission) -> Refusal:
        """The reply to a request over the account's rate or concurrency limit."""

    def unrouted(self, call: Call, status: int) -> Reply:
        """The reply to a path or method the API does not have."""
        call.deviate("<path>", f"{call.route} is not an endpoint of this API", "a documented path")
        call.code = "not_found" if status == 404 else "method_not_allowed"
        return self.error_reply(call, status, call.code, f"{call.route} not found", {})

    def fault_reply(self, call: Call, kind: FaultKind) -> Reply:
        retry = {"Retry-After": str(max(1, round(self.faults.retry_after)))}
        if kind is FaultKind.HTTP_500:
            call.code = "internal_error"
            return self.error_reply(call, 500, call.code, "internal server error", {})
        if kind is FaultKind.MODEL_LOADING_503:
            call.code = "model_loading"
            reply = self.error_reply(call, 503, call.code, "model is loading, retry shortly", {})
        else:
            call.code = "rate_limited"
            reply = self.error_reply(call, 429, call.code, "too many requests", {})
        reply.headers.update(retry)
        return reply

    def bad_body(self, call: Call, field: str, problem: str, expected: str) -> Refusal:
        """A body that cannot be decoded at all."""
        return call.reject(field, problem, expected, status=400, code="bad_request")

    def too_large(self, call: Call) -> Refusal:
        return call.refuse(413, "payload_too_large", "request body too large")

    def decorate(self, call: Call, reply: Reply) -> None:  # noqa: B027 - optional hook
        """Add headers every reply of this API carries (TTS.ai's rate-limit headers)."""

    # -- the machinery ----------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=self.client_max_size)
        for route in self._routes.values():
            app.router.add_route(route.method, route.path, self._handler_for(route))
        return app

    def _handler_for(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            call = request[CALL]
            call.operation = route.operation
            try:
                reply = await route.handler(call)
            except Refusal as refusal:
                reply = refusal.reply
            return await self._send(call, reply)

        return handle

    async def _send(self, call: Call, reply: Reply) -> web.StreamResponse:
        self.decorate(call, reply)
        return await deliver(call, reply, slow_seconds=self.faults.slow_seconds)

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        route = request.match_info.route.resource
        endpoint = route.canonical if route is not None else request.path
        call = Call(
            self,
            request,
            endpoint=endpoint,
            operation=Operation.OTHER,
            clock=self.ctx.clock,
            deviations=self.ctx.deviations,
        )
        request[CALL] = call
        try:
            with call.stack:
                error = request.match_info.http_exception
                if error is not None:
                    return await self._send(call, self.unrouted(call, error.status))
                return await handler(request)
        except asyncio.CancelledError:
            # The client went away (or the sandbox is shutting down) before the reply.
            if call.status is None:
                call.status, call.delivered = 499, False
            raise
        except Exception:
            call.status, call.delivered = 500, False
            raise
        finally:
            self.ctx.ledger.record(call.entry(self.ctx.ledger.next_seq()))

    def front_door(self, call: Call, account: Account | None) -> None:
        """Rate limits, then faults: every served request passes here once authenticated."""
        call.account = account
        if account is not None:
            admission = call.admission = account.limiter.admit(self.ctx.clock.now())
            if not admission.allowed:
                call.throttled = True
                raise self.throttled(call, admission)
            call.counted = True
            call.stack.callback(account.limiter.release)
        route = self._routes[(call.request.method, call.endpoint)]
        kind = self.faults.draw(call.endpoint, route.applicable, hot=route.hot)
        call.fault = kind
        if kind in REFUSALS:
            raise Refusal(self.fault_reply(call, kind))

    # -- bodies ----------------------------------------------------------------------------

    async def raw_body(self, call: Call) -> bytes:
        try:
            return await call.request.read()
        except web.HTTPRequestEntityTooLarge:
            raise self.too_large(call) from None

    async def json_body(self, call: Call) -> dict[str, object]:
        raw = await self.raw_body(call)
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            raise self.bad_body(call, "<body>", "not valid JSON", "a JSON object") from None
        if not isinstance(data, dict):
            raise self.bad_body(call, "<body>", "not a JSON object", "a JSON object")
        return data

    async def msgpack_body(self, call: Call) -> dict[str, object]:
        raw = await self.raw_body(call)
        try:
            data = msgpack.unpackb(raw, raw=False, strict_map_key=True)
        except (ValueError, msgpack.UnpackException):
            raise self.bad_body(call, "<body>", "not valid MessagePack", "a map") from None
        if not isinstance(data, dict):
            raise self.bad_body(call, "<body>", "not a MessagePack map", "a map")
        return data

    async def form(self, call: Call) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
        try:
            return await call.request.post()
        except web.HTTPRequestEntityTooLarge:
            raise self.too_large(call) from None
        except ValueError:
            raise self.bad_body(call, "<body>", "not a valid form", "multipart/form-data") from None

    def media_type(self, call: Call) -> str:
        return call.request.content_type.lower()
