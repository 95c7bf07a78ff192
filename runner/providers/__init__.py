"""Provider adapters, one module per API, behind the narrow interface of `base.Provider`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from runner.manifest.model import Account
from runner.providers.base import Provider
from runner.providers.context import ProviderContext
from runner.providers.local import LocalProvider

__all__ = ["ADAPTERS", "ProviderContext", "create_provider", "missing_credentials"]


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


ADAPTERS: dict[str, type[Provider]] = {"local": LocalProvider}


def create_provider(context: ProviderContext) -> Provider:
    """The adapter for the context's account."""
    return ADAPTERS[context.account.kind](context)
