"""Counters of one run, per account: what was asked, paid, retried, refused and failed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["AccountStats", "RunStats"]


@dataclass
class AccountStats:
    requests: int = 0  #: requests that left for the provider (all kinds: synthesis, polls...)
    synthesized: int = 0  #: segments whose audio arrived and verified
    chars: int = 0  #: characters of text synthesised
    retries: Counter[str] = field(default_factory=Counter)  #: retries by cause
    rate_limited: int = 0  #: 429s and "too frequent" answers
    polls: int = 0  #: status checks of asynchronous tasks
    re_requests: int = 0  #: segments requested again although possibly paid already
    cost: float = 0.0  #: as the provider reported it, in its own unit
    failed: int = 0
    deferred: int = 0  #: segments left for the next run after transient failures
    stopped: str = ""  #: why the account was stopped early (out of credit...)
    held_back: int = 0  #: segments not started: they could not finish before the deadline

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "synthesized": self.synthesized,
            "chars": self.chars,
            "retries": dict(self.retries),
            "rate_limited": self.rate_limited,
            "polls": self.polls,
            "re_requests": self.re_requests,
            "cost": round(self.cost, 6),
            "failed": self.failed,
            "deferred": self.deferred,
            "stopped": self.stopped,
            "held_back": self.held_back,
        }


@dataclass
class RunStats:
    accounts: dict[str, AccountStats] = field(default_factory=dict)
    cached: int = 0  #: segments already done before this run
    recovered: int = 0  #: segments found verified in the cache although the state lost them
    failures: dict[str, str] = field(default_factory=dict)  #: segment key → reason
    warnings: list[str] = field(default_factory=list)  #: things a person should know

    def account(self, name: str) -> AccountStats:
        return self.accounts.setdefault(name, AccountStats())

    @property
    def synthesized(self) -> int:
        return sum(a.synthesized for a in self.accounts.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "synthesized": self.synthesized,
            "cached": self.cached,
            "recovered": self.recovered,
            "failed": len(self.failures),
            "accounts": {name: a.as_dict() for name, a in sorted(self.accounts.items())},
            "failures": dict(self.failures),
            "warnings": list(self.warnings),
        }
