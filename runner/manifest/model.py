"""The validated manifest as frozen records. Everything here has passed its checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runner.manifest.params import ParamValue
from runner.plans import Limits

__all__ = ["Account", "Manifest", "Output", "Text", "Voice"]


@dataclass(frozen=True)
class Account:
    """A provider account: where to send requests, how fast, and which env vars hold secrets."""

    name: str
    kind: str
    plan: str
    limits: Limits  #: the effective limits: the plan's preset with the overrides applied
    base_urls: tuple[str, ...] = ()  #: empty: the provider's public URL
    credentials: Mapping[str, str] = field(default_factory=dict)  #: role → env var name
    options: Mapping[str, ParamValue] = field(default_factory=dict)
    defined_in: str = ""  #: file:line where the account is defined ("" for the implicit one)


@dataclass(frozen=True)
class Voice:
    name: str
    account: str  #: a key of Manifest.accounts
    kind: str  #: the account's provider kind
    params: Mapping[str, ParamValue]


@dataclass(frozen=True)
class Text:
    """One text of the manifest; it becomes one chapter."""

    id: str
    title: str
    body: str
    voice: str  #: a key of Manifest.voices
    params: Mapping[str, ParamValue]  #: the voice's parameters with defaults and overrides applied
    source: Path | None = None  #: the file it was read from, if any


@dataclass(frozen=True)
class Output:
    """Where chapters go and how they sound. Every field shapes the files, so every field is in
    a chapter's fingerprint (runner/assemble.py): changing one rebuilds the chapters."""

    dir: Path  #: absolute
    format: str  #: wav, flac, mp3 or m4b
    pause_ms: int  #: between segments of one paragraph (audible end to audible start)
    paragraph_pause_ms: int  #: between paragraphs
    chapter_pause_ms: int = 1000  #: silence at the start and at the end of every chapter
    sample_rate: int | None = None  #: None: the highest rate among a chapter's segments
    loudness: float | None = -18.0  #: integrated loudness target in LUFS; None: off
    loudness_window: tuple[float, float] | None = None  #: acceptable range (the acx preset)
    peak_dbfs: float = -1.0  #: sample-peak ceiling; gain is reduced rather than clip
    normalize: str = "chapter"  #: "chapter" or "book": where one gain applies
    preset: str = ""  #: "acx" when the acx preset chose loudness, peak and mp3 bitrate
    book: bool = False  #: also write one whole-book file `<name>.<format>`
    author: str | None = None
    narrator: str | None = None
    cover: Path | None = None  #: absolute; a JPEG or PNG image


@dataclass(frozen=True)
class Manifest:
    path: Path  #: absolute
    name: str
    output: Output
    accounts: Mapping[str, Account]
    voices: Mapping[str, Voice]
    texts: tuple[Text, ...]
    #: Among manifests run together, new work of a higher priority goes first on a shared account.
    priority: int = 0

    def account_of(self, text: Text) -> Account:
        return self.accounts[self.voices[text.voice].account]
