"""Provider adapters, one module per API, behind the narrow interface of `base.Provider`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from runner.events import Redactor
from runner.manifest.model import Account
from runner.providers.base import Provider
from runner.providers.local import LocalProvider

__all__ = ["create_provider", "missing_credentials"]


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def missing_credentials(
    accounts: Sequence[Account], environ: Mapping[str, str] | None = None
) -> list[str]:
    """One message per credential an account needs whose environment variable is unset."""
    env = _environ(environ)
    return [
        f"account `{a.name}` ({a.defined_in or 'implicit'}) needs the environment variable "
        f"{var} (its `{role}`); export it, or rehearse with --sandbox"
        for a in sorted(accounts, key=lambda a: a.name)
        for role, var in sorted(a.credentials.items())
        if not env.get(var)
    ]


def create_provider(
    account: Account, environ: Mapping[str, str] | None, redactor: Redactor
) -> Provider:
    """The adapter for `account`; every secret it loads is registered with `redactor`."""
    env = _environ(environ)
    for var in account.credentials.values():
        if env.get(var):
            redactor.add(env[var])
    if account.kind == "local":
        return LocalProvider(account.name)
    raise NotImplementedError(f"no adapter for provider kind {account.kind!r}")
