"""Accounts of one emulated provider: credential → account, balances, limits.

Credentials are kept only as SHA-256 digests, so nothing in the sandbox's memory dumps, ledger
or logs can leak one; everything else names an account by its label.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace

from runner.sandbox.config import AccountConfig, ProviderConfig
from runner.sandbox.limits import WindowLimiter

__all__ = ["Account", "Accounts", "rate_limiter"]


class Account:
    """The live state of one account: balance, limiter, voices it owns."""

    def __init__(self, config: AccountConfig, limiter: WindowLimiter) -> None:
        self.config = config
        self.label = config.label
        self.balance = config.balance
        self.limiter = limiter

    def __repr__(self) -> str:
        return f"<Account {self.label} balance={self.balance:g}>"

    def can_pay(self, amount: float) -> bool:
        # A tolerance, so that float sums of per-character prices never refuse an exact balance.
        return self.balance + 1e-9 >= amount

    def pay(self, amount: float) -> None:
        self.balance -= amount


def _digest(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


class Accounts:
    """Resolves credentials to accounts, creating rehearsal accounts when the config allows."""

    def __init__(
        self,
        config: ProviderConfig,
        limiter_for: Callable[[AccountConfig], WindowLimiter],
    ) -> None:
        self._config = config
        self._limiter_for = limiter_for
        self._by_digest: dict[str, Account] = {}
        self._by_label: dict[str, Account] = {}
        for account_config in config.accounts:
            account = self._add(account_config)
            for credential in account_config.all_credentials():
                self._by_digest[_digest(credential)] = account

    def __repr__(self) -> str:
        return f"<Accounts {sorted(self._by_label)}>"

    def _add(self, config: AccountConfig) -> Account:
        if config.label in self._by_label:
            raise ValueError(f"two accounts are labelled {config.label!r}")
        account = Account(config, self._limiter_for(config))
        self._by_label[config.label] = account
        return account

    def resolve(self, credential: str) -> Account | None:
        """The account of `credential`, or None when it is empty or not accepted."""
        if not credential:
            return None
        digest = _digest(credential)
        if (account := self._by_digest.get(digest)) is not None:
            return account
        if not self._config.accepts_any:
            return None
        # Each distinct unknown credential gets its own account, so two rehearsal accounts of
        # one provider keep separate limits and balances, as two real keys would.
        template = self._config.default_account
        label, n = template.label, 1
        while label in self._by_label:
            n += 1
            label = f"{template.label}-{n}"
        account = self._add(_relabel(template, label))
        self._by_digest[digest] = account
        return account

    def get(self, label: str) -> Account | None:
        return self._by_label.get(label)

    def all(self) -> tuple[Account, ...]:
        return tuple(self._by_label.values())


def rate_limiter(config: AccountConfig) -> WindowLimiter:
    """The generic limiter of an account (IndexTTS, Fish, fishaudio.net)."""
    rate = config.rate
    return WindowLimiter(rate.requests, rate.per_seconds, rate.concurrent)


def _relabel(config: AccountConfig, label: str) -> AccountConfig:
    return replace(config, label=label, credentials=())
