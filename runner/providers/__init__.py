"""Provider adapters, one module per API, behind the narrow interface of `base.Provider`."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence

from runner.manifest.model import Account
from runner.providers.base import Provider
from runner.providers.context import ProviderContext

__all__ = [
    "ADAPTERS",
    "ProviderContext",
    "adapter_class",
    "create_provider",
    "missing_credentials",
]


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


#: Provider kind → "module:class" of its adapter (imported when first used).
ADAPTERS: dict[str, str] = {
    "local": "runner.providers.local:LocalProvider",
    "indextts": "runner.providers.indextts:IndexTTSProvider",
    "voxcpm": "runner.providers.voxcpm:VoxCPMProvider",
    "fish_yuntts": "runner.providers.fish_yuntts:FishYunTTSProvider",
    "fishaudio_net": "runner.providers.fishaudio_net:FishAudioNetProvider",
    "ttsai": "runner.providers.ttsai:TTSAIProvider",
}


def adapter_class(kind: str) -> type[Provider]:
    module, _, name = ADAPTERS[kind].partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise TypeError(f"{ADAPTERS[kind]} is not a Provider")
    return cls


def create_provider(context: ProviderContext) -> Provider:
    """The adapter for the context's account."""
    return adapter_class(context.account.kind)(context)
