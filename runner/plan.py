"""Expansion: a validated manifest becomes chapters of content-addressed segments.

A segment's key is the sha256 of canonical JSON of everything that determines its audio: the
provider kind, the resolved voice parameters (files by content hash), the normalised chunk
text, the audio format the provider returns and the chunker's version. Same key → same audio →
synthesised once, whichever chapter, manifest or run asks for it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from runner.chunk_memory import ChunkMemory, cut
from runner.manifest.model import Manifest, Text
from runner.manifest.params import FileRef, ParamValue
from runner.providers.local import resolve_params as resolve_local
from runner.text import CHUNKER_VERSION

__all__ = ["Chapter", "Plan", "Segment", "canonical_json", "expand"]

KEY_VERSION: Final = 1
#: Formats providers answer in when the voice does not choose one.
DEFAULT_FORMAT: Final = {
    "local": "wav",
    "indextts": "wav",
    "voxcpm": "wav",
    "fish_yuntts": "mp3",
    "fishaudio_net": "mp3",
    "ttsai": "mp3",
}


@dataclass(frozen=True, slots=True)
class Segment:
    key: str
    account: str
    kind: str
    text: str
    params: Mapping[str, ParamValue]
    format: str  #: the audio format the provider returns

    @property
    def chars(self) -> int:
        return len(self.text)


@dataclass(frozen=True)
class Chapter:
    text: Text
    segments: tuple[Segment, ...]
    paragraphs: tuple[int, ...]  #: paragraph index of each segment

    @property
    def id(self) -> str:
        return self.text.id


@dataclass(frozen=True)
class Plan:
    manifest: Manifest
    chapters: tuple[Chapter, ...]

    def unique_segments(self) -> dict[str, Segment]:
        """Each segment once, in first-use order."""
        out: dict[str, Segment] = {}
        for chapter in self.chapters:
            for segment in chapter.segments:
                out.setdefault(segment.key, segment)
        return out


def _jsonable(value: object) -> object:
    """What JSON cannot take as it is: a file (by its content's hash), any other mapping."""
    if isinstance(value, FileRef):
        return {"sha256": value.sha256}
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    raise TypeError(f"{type(value).__name__} has no canonical JSON")


#: Keys sorted, no spaces, UTF-8 as is. One reused encoder (C-accelerated): chapter
#: fingerprints of 100,000 segments go through it on every resume.
_canonical = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable
).encode


def canonical_json(value: object) -> str:
    return _canonical(value)


def segment_key(kind: str, params: Mapping[str, ParamValue], text: str, fmt: str) -> str:
    return _key(kind, canonical_json(params), text, fmt)


#: JSON of one value as `canonical_json` writes it (a reused encoder: `json.dumps` with
#: options builds a new one per call).
_encode = json.JSONEncoder(ensure_ascii=False).encode


def _key(kind: str, params_json: str, text: str, fmt: str) -> str:
    """`segment_key` with the parameters' canonical JSON given."""
    return _keyed(_key_prefix(kind, params_json, fmt), text)


def _key_prefix(kind: str, params_json: str, fmt: str) -> str:
    """The key document up to its text. The document is written out in canonical form (keys
    sorted, no spaces) directly: byte for byte what `canonical_json` makes of
    {v, kind, params, text, format, chunker}, at a fraction of the cost for 100,000 segments
    (the part before the text is shared by a text's segments)."""
    return (
        f'{{"chunker":{_encode(CHUNKER_VERSION)},"format":{_encode(fmt)},'
        f'"kind":{_encode(kind)},"params":{params_json},"text":'
    )


def _keyed(prefix: str, text: str) -> str:
    document = f'{prefix}{_encode(text)},"v":{_encode(KEY_VERSION)}}}'
    return hashlib.sha256(document.encode()).hexdigest()


class _SharedParams:
    """One dict (and its canonical JSON) per distinct set of resolved parameters: a book's
    segments mostly share a few, and 100,000 copies would be most of a plan's memory."""

    def __init__(self) -> None:
        self._seen: dict[object, tuple[dict[str, ParamValue], str]] = {}

    def __call__(self, params: dict[str, ParamValue]) -> tuple[dict[str, ParamValue], str]:
        try:
            identity: object = tuple(sorted(params.items()))
            hash(identity)
        except TypeError:  # nested values (files, lists): their canonical JSON tells them apart
            identity = canonical_json(params)
        found = self._seen.get(identity)
        if found is None:
            found = self._seen[identity] = (params, canonical_json(params))
        return found


def resolve_params(kind: str, params: Mapping[str, ParamValue], text: str) -> dict[str, ParamValue]:
    """The parameters as they affect this chunk's audio."""
    if _per_chunk(kind):
        return resolve_local(params, text)
    return dict(params)


def _per_chunk(kind: str) -> bool:
    """Whether a chunk's text changes its parameters (the embedded engine picks a voice per
    language); for the others a text's parameters are resolved once."""
    return kind == "local"


def _min_chars(max_chars: int) -> int:
    return max(0, min(40, max_chars // 8))


def expand(manifest: Manifest, memory: ChunkMemory | None = None) -> Plan:
    """The manifest's chapters of segments; `memory` remembers texts already cut."""
    split = cut if memory is None else memory.pairs
    chapters: list[Chapter] = []
    shared = _SharedParams()
    prefixes: dict[tuple[str, str, str], str] = {}
    for text in manifest.texts:
        voice = manifest.voices[text.voice]
        account = manifest.accounts[voice.account]
        max_chars = account.limits.max_chars or 1000
        segments: list[Segment] = []
        paragraphs: list[int] = []
        once = (
            None if _per_chunk(voice.kind) else shared(resolve_params(voice.kind, text.params, ""))
        )
        for chunk, paragraph in split(text.body, max_chars, _min_chars(max_chars)):
            params, params_json = once or shared(resolve_params(voice.kind, text.params, chunk))
            fmt = str(params.get("format", DEFAULT_FORMAT[voice.kind]))
            found = (voice.kind, params_json, fmt)
            prefix = prefixes.get(found) or prefixes.setdefault(found, _key_prefix(*found))
            key = _keyed(prefix, chunk)
            segments.append(Segment(key, account.name, voice.kind, chunk, params, fmt))
            paragraphs.append(paragraph)
        chapters.append(Chapter(text, tuple(segments), tuple(paragraphs)))
    return Plan(manifest, tuple(chapters))


def iter_segments(plan: Plan) -> Iterator[Segment]:
    for chapter in plan.chapters:
        yield from chapter.segments
