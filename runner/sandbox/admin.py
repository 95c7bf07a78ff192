"""The admin app: a sandbox served in another process (`tts-runner sandbox`) is inspected and
driven over plain JSON, on its own port.

    GET    /urls                          the base URL of every emulator
    GET    /ledger?provider=&account=     every ledger entry
    GET    /ledger/summary?window=60&provider=&account=
    DELETE /ledger                        forget every entry
    GET    /deviations?provider=          every deviation
    DELETE /deviations                    forget every deviation
    GET    /clock                         {"now", "advanced"}
    POST   /clock/advance                 {"seconds": 86400}
    GET    /faults                        every provider's rates and queue
    POST   /faults                        {"provider", "rates"?, "enqueue"?: [{"kind", "endpoint"?,
                                          "count"?}], "clear"?, "slow_seconds"?}
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from runner.sandbox.server import Sandbox

__all__ = ["admin_app"]


def _json(payload: object, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status, dumps=lambda o: json.dumps(o, default=str))


def _error(message: str) -> web.Response:
    return _json({"error": message}, status=400)


def _selection(request: web.Request) -> tuple[str | None, str | None]:
    return request.query.get("provider"), request.query.get("account")


class Admin:
    """The admin endpoints of one sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/urls", self.urls)
        app.router.add_get("/ledger", self.ledger)
        app.router.add_get("/ledger/summary", self.summary)
        app.router.add_delete("/ledger", self.forget)
        app.router.add_get("/deviations", self.deviations)
        app.router.add_delete("/deviations", self.forget)
        app.router.add_get("/clock", self.clock)
        app.router.add_post("/clock/advance", self.advance)
        app.router.add_get("/faults", self.faults)
        app.router.add_post("/faults", self.set_faults)
        return app

    async def urls(self, request: web.Request) -> web.Response:
        return _json(self.sandbox.announcement())

    async def ledger(self, request: web.Request) -> web.Response:
        entries = self.sandbox.ledger.entries(*_selection(request))
        return _json({"entries": [dataclasses.asdict(e) for e in entries]})

    async def summary(self, request: web.Request) -> web.Response:
        provider, account = _selection(request)
        try:
            window = float(request.query.get("window", "60"))
        except ValueError:
            return _error("window must be a number of seconds")
        result = self.sandbox.ledger.summary(window, provider=provider, account=account)
        return _json(dataclasses.asdict(result))

    async def deviations(self, request: web.Request) -> web.Response:
        items = self.sandbox.deviations.snapshot(request.query.get("provider"))
        return _json({"count": len(items), "deviations": [dataclasses.asdict(d) for d in items]})

    async def forget(self, request: web.Request) -> web.Response:
        log = self.sandbox.ledger if request.path == "/ledger" else self.sandbox.deviations
        log.clear()
        return _json({"ok": True})

    async def clock(self, request: web.Request) -> web.Response:
        clock = self.sandbox.clock
        return _json({"now": clock.now(), "advanced": clock.advanced})

    async def advance(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            self.sandbox.clock.advance(float(body["seconds"]))
        except (ValueError, KeyError, TypeError) as exc:
            return _error(f"expected {{'seconds': number >= 0}}: {exc}")
        return await self.clock(request)

    async def faults(self, request: web.Request) -> web.Response:
        faults = self.sandbox.faults
        return _json(
            {
                name: {
                    "rates": {k.value: v for k, v in faults[name].rates.items()},
                    "queue": [dataclasses.asdict(q) for q in faults[name].queue],
                    "slow_seconds": faults[name].slow_seconds,
                }
                for name in faults.providers()
            }
        )

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            plan = self.sandbox.faults[body["provider"]]
            if body.get("clear"):
                plan.clear()
            if "rates" in body:
                plan.set_rates(body["rates"])
            for item in body.get("enqueue", []):
                plan.enqueue(
                    item["kind"], endpoint=item.get("endpoint"), count=item.get("count", 1)
                )
            if "slow_seconds" in body:
                plan.slow_seconds = float(body["slow_seconds"])
        except (ValueError, KeyError, TypeError) as exc:
            return _error(f"bad fault request: {exc!r}")
        return await self.faults(request)


def admin_app(sandbox: Sandbox) -> web.Application:
    """The admin application of `sandbox`."""
    return Admin(sandbox).app()
