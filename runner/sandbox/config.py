"""Sandbox configuration: accounts, plans, lifetimes, processing times, faults.

`SandboxConfig()` works as is: every emulator accepts any non-empty credential (each distinct
unknown credential becomes its own account, labelled "default", "default-2", ...), adopts any
voice id it is asked for, and uses short processing times, so `run --sandbox` needs no keys.
A config that lists accounts accepts exactly their credentials (others get 401 / code 7) unless
`accept_any_credential` says otherwise.

Every lifetime, processing time and rate is data here, so tests compress a day into a second.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import yaml

from runner.sandbox.configload import ConfigError, build

__all__ = [
    "PLANS",
    "REHEARSAL_ACCOUNT",
    "AccountConfig",
    "ConfigError",
    "FaultConfig",
    "FishAudioNetConfig",
    "FishYunTTSConfig",
    "IndexTTSConfig",
    "Plan",
    "ProviderConfig",
    "RateLimit",
    "SandboxConfig",
    "TTSAIConfig",
    "VoxCPMConfig",
]

DAY = 86_400.0
MB = 1024 * 1024


@dataclass(frozen=True)
class RateLimit:
    """Generic limits of an account. None means unlimited (the vendor publishes none)."""

    requests: int | None = None  #: request starts allowed in any window of `per_seconds`
    per_seconds: float = 60.0
    concurrent: int | None = None  #: requests in flight at once


@dataclass(frozen=True)
class Plan:
    """A TTS.ai plan: the limits of one API key."""

    requests: int
    per_seconds: float
    concurrent: int
    max_chars: int  #: characters per request
    api_access: bool = True  #: keys of plans without API access get 403 forbidden


#: TTS.ai's published plans (seed 004). Custom plans go in `TTSAIConfig.plans`.
PLANS: Mapping[str, Plan] = MappingProxyType(
    {
        "pro": Plan(requests=60, per_seconds=60.0, concurrent=5, max_chars=5_000),
        "enterprise": Plan(requests=300, per_seconds=60.0, concurrent=20, max_chars=50_000),
        # API keys come with Pro and Enterprise only (seed 004).
        "free": Plan(requests=0, per_seconds=60.0, concurrent=0, max_chars=0, api_access=False),
    }
)


@dataclass(frozen=True)
class AccountConfig:
    """One account of one provider. Fields that a provider has no use for are ignored."""

    label: str = "default"  #: the only name the ledger and logs ever use for the account
    credentials: tuple[str, ...] = field(default=(), repr=False)  #: exact sign / token / key values
    credential_envs: tuple[str, ...] = ()  #: environment variables holding more credentials
    #: IndexTTS characters, Fish yuan, fishaudio.net credits, TTS.ai credits
    balance: float = 10_000_000.0
    rate: RateLimit = RateLimit()  #: IndexTTS, Fish, fishaudio.net (TTS.ai uses `plan`)
    plan: str = "pro"  #: TTS.ai plan name: "pro", "enterprise" or one of `TTSAIConfig.plans`
    voices: tuple[str, ...] = ()  #: voice model ids that exist for this account from the start
    adopt_unknown_voices: bool = False  #: unknown voice ids are created on first use
    model_limit: int | None = 2  #: Fish voice models: 2 normal, 10 VIP, None unlimited
    detail_available: bool = True  #: IndexTTS /reference/detail answers (else HTTP 404)
    quota_available: bool = True  #: IndexTTS /user/quota answers (else HTTP 404)

    def all_credentials(self) -> tuple[str, ...]:
        from_env = (os.environ.get(name, "") for name in self.credential_envs)
        return tuple(c for c in (*self.credentials, *from_env) if c)


#: The template for accounts of credentials no config lists: generous, adopts any voice.
REHEARSAL_ACCOUNT = AccountConfig(label="default", adopt_unknown_voices=True, model_limit=None)


@dataclass(frozen=True)
class FaultConfig:
    rates: dict[str, float] = field(default_factory=dict)  #: e.g. {"http_500": 0.1}
    slow_seconds: float = 30.0  #: real seconds a `slow` reply waits
    retry_after: float = 1.0  #: Retry-After of injected 429 / 503 replies


@dataclass(frozen=True)
class ProviderConfig:
    accounts: tuple[AccountConfig, ...] = ()
    accept_any_credential: bool | None = None  #: None: only when no accounts are listed
    default_account: AccountConfig = REHEARSAL_ACCOUNT
    faults: FaultConfig = FaultConfig()
    sample_rate: int = 44_100

    @property
    def accepts_any(self) -> bool:
        if self.accept_any_credential is None:
            return not self.accounts
        return self.accept_any_credential


@dataclass(frozen=True)
class IndexTTSConfig(ProviderConfig):
    sample_rate: int = 24_000  #: the vendor names no rate; its WAVs are taken as 24 kHz
    url_ttl: float = DAY  #: a finished task's voiceUrl lives this long after completion
    reference_ttl: float = DAY  #: an emotion reference lives this long after upload
    reference_cap: int = 30  #: live emotion references per account
    processing_base: float = 1.0  #: seconds a task takes, plus...
    processing_per_char: float = 0.002  #: ...seconds per character of content
    instant: bool = False  #: create answers status 2 at once (the "cached result" behaviour)
    reuse_identical: bool = True  #: an identical request whose result is live answers status 2
    max_upload_bytes: int = 50 * MB  #: uploads must be smaller than this
    max_content_chars: int = 5_000
    upload_level: str = "professional"  #: level of models created by /reference/upload


@dataclass(frozen=True)
class VoxCPMConfig:
    servers: int = 1  #: a pool of separate servers, each on its own port
    latency_base: float = 0.02  #: sandbox seconds per request, plus...
    latency_per_char: float = 0.0005  #: ...seconds per character
    sample_rate: int = 48_000
    faults: FaultConfig = FaultConfig()


@dataclass(frozen=True)
class FishYunTTSConfig(ProviderConfig):
    sample_rate: int = 44_100  #: default for wav/pcm/mp3 (opus defaults to 48 kHz)
    price_per_char: float = 0.021 / 150  #: yuan; the seed's example: 150 characters = 0.021
    url_ttl: float = DAY  #: the seed names no lifetime for stream=false URLs; assume a day
    max_voice_bytes: int = 20 * MB
    max_cover_bytes: int = 5 * MB


@dataclass(frozen=True)
class FishAudioNetConfig(ProviderConfig):
    sample_rate: int = 44_100  #: the seed names no rate; assume 44.1 kHz like Fish
    credits_per_char: float = 1.0  #: the seed says "API credits"; one per character
    url_ttl: float = DAY  #: lifetime of cache=true audio URLs
    max_body_bytes: int = 10 * MB  #: larger bodies get 413


@dataclass(frozen=True)
class TTSAIConfig(ProviderConfig):
    sample_rate: int = 24_000  #: the seed names no rate; assume 24 kHz
    plans: dict[str, Plan] = field(default_factory=dict)  #: custom plans, by name
    max_upload_bytes: int = 20 * MB  #: clone reference audio
    max_stt_bytes: int = 100 * MB

    def plan(self, name: str) -> Plan:
        try:
            return self.plans.get(name) or PLANS[name]
        except KeyError:
            raise ConfigError(f"ttsai: unknown plan {name!r}") from None


@dataclass(frozen=True)
class SandboxConfig:
    seed: int = 0  #: seeds every random fault draw
    host: str = "127.0.0.1"
    audio_cache_entries: int = 512  #: encoded audio kept per request key
    indextts: IndexTTSConfig = IndexTTSConfig()
    voxcpm: VoxCPMConfig = VoxCPMConfig()
    fish_yuntts: FishYunTTSConfig = FishYunTTSConfig()
    fishaudio_net: FishAudioNetConfig = FishAudioNetConfig()
    ttsai: TTSAIConfig = TTSAIConfig()

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> SandboxConfig:
        config = build(cls, data)
        for account in (*config.ttsai.accounts, config.ttsai.default_account):
            config.ttsai.plan(account.plan)
        return config

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> SandboxConfig:
        text = Path(path).read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        return cls.from_mapping(data)
