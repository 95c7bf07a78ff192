"""What an adapter is given: its account, the account's limiter, where to count and report,
how to retry, and the account's secrets (read from the environment, registered for redaction).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runner.errors import AccountUnusable
from runner.events import Events
from runner.limits import WORK, Limiter, Priority, Slot
from runner.manifest.model import Account
from runner.stats import AccountStats

if TYPE_CHECKING:
    from runner.store import Store

__all__ = ["ProviderContext", "RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of transient failures at the adapter boundary (exponential backoff, jitter)."""

    attempts: int = 4  #: tries of one call before giving up for this run
    base_delay: float = 0.5  #: seconds; the backoff window doubles on each retry
    max_delay: float = 20.0
    rate_limited_attempts: int = 8  #: 429s in a row on one call before leaving it for later


@dataclass
class ProviderContext:
    account: Account
    limiter: Limiter
    stats: AccountStats
    events: Events
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    base_urls: tuple[str, ...] = ()  #: overrides the account's (e.g. the sandbox's loopback URLs)
    #: Where adapters remember what they created at the provider (voice models, references);
    #: None where nothing is remembered (e.g. a one-off management command without state).
    store: Store | None = None
    #: Called when one of this manifest's requests leaves (the limiter may be shared).
    on_start: Callable[[], None] | None = None
    #: The manifest's priority: its new work goes before that of lower-priority manifests
    #: sharing the account (downloads and polls keep their own order).
    priority: int = 0
    #: Why this run takes no more work from the account ("" while it does; see
    #: `Outcomes.closed`): new work still waiting for a slot then is not sent (results already
    #: paid for are still fetched).
    closed: Callable[[], str] | None = None

    @asynccontextmanager
    async def slot(self, priority: Priority = WORK) -> AsyncIterator[Slot]:
        """One request slot of the account's limiter, on behalf of this manifest."""
        admit = None
        if priority[0] == WORK[0]:
            priority = (WORK[0], -float(self.priority))
            admit = self._admit
        async with self.limiter.slot(priority, self.on_start, admit) as slot:
            yield slot

    def _admit(self) -> None:
        reason = self.closed() if self.closed is not None else ""
        if reason:  # e.g. its credit ran out while this request waited for its turn
            raise AccountUnusable(
                f"not sent: the account was stopped while it waited ({reason})",
                account=self.account.name,
            )

    def secret(self, role: str) -> str:
        """The value of the environment variable named by the account for `role` ('' if unset)."""
        name = self.account.credentials.get(role, "")
        value = self.environ.get(name, "") if name else ""
        if value:
            self.events.redact.add(value)
        return value

    def urls(self, default: str) -> tuple[str, ...]:
        return self.base_urls or self.account.base_urls or (default,)
