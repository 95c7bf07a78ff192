"""`run --sandbox`: rehearse a manifest against in-process emulators of every provider API.

Each manifest account gets a sandbox account of the same name, with a made-up credential and
the account's own limits, so a rehearsal paces, polls and assembles exactly as a real run
would, without keys and without spending anything. When the embedded engine is available the
emulators speak the real text, so the rehearsal is listenable.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from runner.manifest.model import Account
from runner.plans import PRESETS
from runner.providers.espeak import EspeakError
from runner.providers.espeak_fork import forking_engine
from runner.providers.local import resolve_params
from runner.sandbox import AccountConfig, Plan, RateLimit, Sandbox, SandboxConfig
from runner.sandbox.config import (
    FishAudioNetConfig,
    FishYunTTSConfig,
    IndexTTSConfig,
    TTSAIConfig,
    VoxCPMConfig,
)

__all__ = ["Rehearsal", "rehearsal", "sandbox_config", "speak"]

_TAG = re.compile(r"<\|speaker:\d+\|>")


def speak(text: str, language: str) -> tuple[bytes, int]:
    """The sandbox's voice: espeak-ng, choosing English or Mandarin by script."""
    clean = _TAG.sub(" ", text)
    voice = str(resolve_params({"language": "auto"}, clean)["voice"])
    del language
    try:
        speech = forking_engine().speak(clean, voice)
    except EspeakError:
        speech = forking_engine().speak(clean, "en-us")
    return speech.pcm, speech.sample_rate


def credential(account: Account) -> str:
    return f"sandbox-{account.name}"


def _account_config(account: Account) -> AccountConfig:
    limits = account.limits
    rate = RateLimit(
        requests=limits.requests,
        per_seconds=limits.per_seconds or 60.0,
        concurrent=limits.concurrent,
    )
    plan = account.plan
    preset = PRESETS.get(("ttsai", plan))
    if account.kind == "ttsai" and (preset is None or preset.limits != limits):
        plan = account.name  # the account's own limits, as a custom plan (see sandbox_config)
    return AccountConfig(
        label=account.name,
        credentials=(credential(account),),
        rate=rate,
        plan=plan,
        adopt_unknown_voices=True,
        model_limit=None,
    )


def sandbox_config(accounts: Iterable[Account]) -> SandboxConfig:
    by_kind: dict[str, list[Account]] = {}
    for account in accounts:
        by_kind.setdefault(account.kind, []).append(account)

    def configs(kind: str) -> tuple[AccountConfig, ...]:
        return tuple(_account_config(a) for a in by_kind.get(kind, []))

    custom = {
        a.name: Plan(
            requests=a.limits.requests or 1_000_000,
            per_seconds=a.limits.per_seconds or 60.0,
            concurrent=a.limits.concurrent or 1_000,
            max_chars=a.limits.max_chars or 50_000,
        )
        for a in by_kind.get("ttsai", [])
    }
    servers = max((len(a.base_urls) for a in by_kind.get("voxcpm", [])), default=1)
    return SandboxConfig(
        indextts=IndexTTSConfig(accounts=configs("indextts"), accept_any_credential=False),
        voxcpm=VoxCPMConfig(servers=max(1, servers)),
        fish_yuntts=FishYunTTSConfig(accounts=configs("fish_yuntts"), accept_any_credential=False),
        fishaudio_net=FishAudioNetConfig(
            accounts=configs("fishaudio_net"), accept_any_credential=False
        ),
        ttsai=TTSAIConfig(accounts=configs("ttsai"), accept_any_credential=False, plans=custom),
    )


@dataclass(frozen=True)
class Rehearsal:
    sandbox: Sandbox
    base_urls: Mapping[str, tuple[str, ...]]  #: per account name
    environ: Mapping[str, str]  #: the made-up credentials, by environment variable name


def _urls(sandbox: Sandbox, account: Account) -> tuple[str, ...]:
    if account.kind == "voxcpm":
        return tuple(sandbox.voxcpm_urls[: max(1, len(account.base_urls))])
    if account.kind == "local":
        return ()
    return (sandbox.urls[account.kind],)


@asynccontextmanager
async def rehearsal(accounts: Iterable[Account]) -> AsyncIterator[Rehearsal]:
    accounts = list(accounts)
    async with Sandbox(sandbox_config(accounts), speak=speak) as sandbox:
        yield Rehearsal(
            sandbox=sandbox,
            base_urls={a.name: _urls(sandbox, a) for a in accounts},
            environ={var: credential(a) for a in accounts for var in a.credentials.values()},
        )
