"""Plan presets: what each provider account may do, as one table of data.

Numbers the vendors publish are marked as such; the others are assumptions (the vendor is
silent) chosen to be safe, and any of them can be overridden per account with `limits:` in a
manifest or providers file.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Final

__all__ = [
    "DEFAULT_PLAN",
    "KINDS",
    "PRESETS",
    "Limits",
    "PlanPreset",
    "effective_limits",
    "plans_for",
]

HOUR: Final = 3600.0


@dataclass(frozen=True)
class Limits:
    """Per-account pacing. None means "no limit of this kind"."""

    requests: int | None = None  #: request starts allowed in any window of `per_seconds`
    per_seconds: float | None = None  #: the window length
    concurrent: int | None = None  #: requests in flight at once
    max_chars: int | None = None  #: characters of text per request

    def merged(self, override: Limits) -> Limits:
        """These limits with every field `override` sets replacing ours."""
        changes = {f.name: getattr(override, f.name) for f in fields(self)}
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class PlanPreset:
    kind: str
    plan: str
    limits: Limits
    result_ttl: float | None = None  #: seconds a finished result stays downloadable
    reference_ttl: float | None = None  #: seconds an uploaded reference is kept
    reference_cap: int | None = None  #: references alive at once
    model_cap: int | None = None  #: voice models per account
    price_unit: str = ""  #: what `price_per_1k_chars` is counted in
    price_per_1k_chars: float = 0.0  #: estimate when the model's tier is unknown
    published: bool = False  #: True when the numbers come from the vendor's documentation


_ALL: Final = (
    # The embedded engine: one synthesis at a time (espeak-ng is not thread-safe).
    PlanPreset("local", "default", Limits(concurrent=1, max_chars=1000), published=True),
    # IndexTTS publishes no request rate: a conservative assumption; 5000 characters is published.
    PlanPreset(
        "indextts",
        "default",
        Limits(requests=60, per_seconds=60.0, concurrent=5, max_chars=5000),
        result_ttl=24 * HOUR,
        reference_ttl=24 * HOUR,
        reference_cap=30,
        price_unit="characters",
        price_per_1k_chars=1000.0,
    ),
    # A self-hosted server processes one request at a time; the text limit is an assumption.
    PlanPreset("voxcpm", "default", Limits(concurrent=1, max_chars=500)),
    # yuntts publishes model counts per membership and a price per character (0.021 yuan / 150).
    *(
        PlanPreset(
            "fish_yuntts",
            plan,
            Limits(requests=60, per_seconds=60.0, concurrent=5, max_chars=2000),
            model_cap=cap,
            price_unit="yuan",
            price_per_1k_chars=0.14,
        )
        for plan, cap in (("normal", 2), ("vip", 10), ("boss_vip", None))
    ),
    PlanPreset(
        "fishaudio_net",
        "default",
        Limits(requests=60, per_seconds=60.0, concurrent=5, max_chars=2000),
        price_unit="characters",
        price_per_1k_chars=1000.0,
    ),
    # TTS.ai publishes both plans; credits per 1000 characters depend on the model's tier.
    PlanPreset(
        "ttsai",
        "pro",
        Limits(requests=60, per_seconds=60.0, concurrent=5, max_chars=5000),
        result_ttl=24 * HOUR,
        price_unit="credits",
        price_per_1k_chars=2.0,
        published=True,
    ),
    PlanPreset(
        "ttsai",
        "enterprise",
        Limits(requests=300, per_seconds=60.0, concurrent=20, max_chars=50_000),
        result_ttl=24 * HOUR,
        price_unit="credits",
        price_per_1k_chars=2.0,
        published=True,
    ),
)
PRESETS: Final[dict[tuple[str, str], PlanPreset]] = {(p.kind, p.plan): p for p in _ALL}

KINDS: Final = ("local", "indextts", "voxcpm", "fish_yuntts", "fishaudio_net", "ttsai")

DEFAULT_PLAN: Final = {
    "local": "default",
    "indextts": "default",
    "voxcpm": "default",
    "fish_yuntts": "normal",
    "fishaudio_net": "default",
    "ttsai": "pro",
}


def plans_for(kind: str) -> list[str]:
    return sorted(plan for k, plan in PRESETS if k == kind)


def effective_limits(kind: str, plan: str, override: Limits) -> Limits:
    return PRESETS[(kind, plan)].limits.merged(override)
