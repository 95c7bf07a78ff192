"""Fixtures for adapter tests: a sandbox on loopback and a ProviderContext aimed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

import pytest

from runner.events import Events, JsonLines
from runner.limits import Limiter
from runner.manifest.accounts import CREDENTIALS
from runner.manifest.model import Account
from runner.plans import DEFAULT_PLAN, Limits, effective_limits
from runner.providers.context import ProviderContext, RetryPolicy
from runner.sandbox import Sandbox, SandboxConfig
from runner.stats import AccountStats

#: Retries that do not make a test wait: the backoff is real time.
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """Every emulator with its default (rehearsal) configuration: any credential is accepted."""
    async with Sandbox(SandboxConfig()) as box:
        yield box


class EventLog:
    """An Events sink that keeps everything emitted, for assertions."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, object]]] = []

    def emit(self, kind: str, fields: Mapping[str, object]) -> None:
        self.records.append((kind, dict(fields)))

    def close(self) -> None:
        pass

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.records]


ContextFactory = Callable[..., ProviderContext]


@pytest.fixture
def make_context() -> ContextFactory:
    """`make_context(kind, base_url, secret="...", limits=Limits(...), name="acct")`."""

    def make(
        kind: str,
        base_url: str | tuple[str, ...],
        *,
        secret: str = "test-secret-0123456789",
        limits: Limits | None = None,
        name: str = "acct",
        options: Mapping[str, object] | None = None,
        retry: RetryPolicy = FAST_RETRY,
        events: Events | None = None,
    ) -> ProviderContext:
        urls = (base_url,) if isinstance(base_url, str) else base_url
        credentials = dict(CREDENTIALS[kind])
        account = Account(
            name=name,
            kind=kind,
            plan=DEFAULT_PLAN[kind],
            limits=effective_limits(kind, DEFAULT_PLAN[kind], limits or Limits()),
            base_urls=urls,
            credentials=credentials,
            options=dict(options or {}),  # type: ignore[arg-type]
        )
        return ProviderContext(
            account=account,
            limiter=Limiter(account.limits),
            stats=AccountStats(),
            events=events or Events([EventLog()]),
            retry=retry,
            environ=dict.fromkeys(credentials.values(), secret),
        )

    return make


__all__ = ["FAST_RETRY", "ContextFactory", "EventLog", "JsonLines"]
