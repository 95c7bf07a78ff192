"""A chapter's sound before it is written: its segments decoded, resampled to one rate, trimmed
and joined (runner/seams.py), measured (runner/loudness.py), and the gain that normalises it.

Normalisation is per chapter or per book, never per sentence: a sentence keeps its level
relative to its neighbours, as the voice spoke it. Rendering is a generator that holds one
segment at a time; it runs twice per chapter (measure, then write), so memory stays flat
however long the chapter. Measurements are kept in the state directory under the hash of
everything that shapes the unnormalised sound, so an unchanged chapter is not decoded again
just to learn its loudness.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import struct
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runner.audio import Samples, decode, resample
from runner.fsutil import atomic_file
from runner.loudness import Floats, Gain, LoudnessMeter, gain_for, gated_loudness
from runner.manifest.model import Manifest, Output
from runner.plan import Chapter, canonical_json
from runner.seams import SEAMS_VERSION, Seams, join
from runner.store import SegmentAudio, SegmentRow

__all__ = ["Level", "chapter_gains", "chapter_rate", "content_fingerprint", "measure", "render"]

#: Segment rows by key: whole rows, or the lean audio rows a run reads for assembly.
Rows = Mapping[str, SegmentRow | SegmentAudio]
DEFAULT_RATE = 22050  #: for a chapter whose rows do not say (never the case for cached audio)
#: A chapter's level as the state directory keeps it (`<fingerprint>.level`): this header
#: (tag, rate, frames, peak, blake2b-64 of the blocks), then the blocks as little-endian
#: float64. Read back in microseconds: a resume of a 1,000-chapter book reads every one.
_HEADER = struct.Struct("<8sqqd8s")
_TAG = b"tts-lvl1"


@dataclass(frozen=True)
class Level:
    """A chapter's unnormalised loudness: 400 ms block powers and sample peak."""

    rate: int
    frames: int
    peak: float
    blocks: Floats

    @property
    def loudness(self) -> float:
        return gated_loudness(self.blocks)


def chapter_rate(output: Output, chapter: Chapter, rows: Rows) -> int:
    """`output.sample_rate`, else the highest rate among the segments: nothing is downsampled."""
    if output.sample_rate:
        return output.sample_rate
    return max(rows[s.key].sample_rate or 0 for s in chapter.segments) or DEFAULT_RATE


def render(
    manifest: Manifest, chapter: Chapter, rows: Rows, state_dir: Path, rate: int
) -> Iterator[Samples]:
    """The chapter at `rate`, before any gain, chunk by chunk."""
    out = manifest.output
    seams = Seams(rate, out.pause_ms, out.paragraph_pause_ms, out.chapter_pause_ms)
    return join(_pieces(chapter, rows, state_dir, rate), seams)


def _pieces(
    chapter: Chapter, rows: Rows, state_dir: Path, rate: int
) -> Iterator[tuple[Samples, int]]:
    for segment, paragraph in zip(chapter.segments, chapter.paragraphs, strict=True):
        row = rows[segment.key]
        assert row.path is not None
        path = state_dir / row.path
        samples, source_rate = decode(path.read_bytes(), path.suffix[1:])
        yield resample(samples, source_rate, rate), paragraph


def content_fingerprint(manifest: Manifest, chapter: Chapter, rows: Rows, rate: int) -> str:
    """The hash of everything that shapes the chapter's samples before normalisation."""
    out = manifest.output
    document = {
        "seams": SEAMS_VERSION,
        "rate": rate,
        "pauses": [out.pause_ms, out.paragraph_pause_ms, out.chapter_pause_ms],
        "segments": [
            [rows[s.key].sha256, paragraph]
            for s, paragraph in zip(chapter.segments, chapter.paragraphs, strict=True)
        ],
    }
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def measure(manifest: Manifest, chapter: Chapter, rows: Rows, state_dir: Path) -> Level:
    """The chapter's level at its own rate, from the state directory's record if it has one."""
    rate = chapter_rate(manifest.output, chapter, rows)
    key = content_fingerprint(manifest, chapter, rows, rate)
    path = state_dir / "levels" / key[:2] / f"{key}.level"
    known = _remembered(path)
    if known is not None:
        return known
    earlier = path.with_suffix(".npz")
    level = _remembered_npz(earlier)
    if level is None:
        meter = LoudnessMeter(rate)
        for chunk in render(manifest, chapter, rows, state_dir, rate):
            meter.feed(chunk)
        level = Level(rate, meter.frames, meter.peak, meter.blocks())
    blocks = np.ascontiguousarray(level.blocks, dtype="<f8").tobytes()
    digest = hashlib.blake2b(blocks, digest_size=8).digest()
    with atomic_file(path) as f:
        f.write(_HEADER.pack(_TAG, level.rate, level.frames, level.peak, digest) + blocks)
    with contextlib.suppress(OSError):  # a leftover of the old form costs nothing but space
        earlier.unlink(missing_ok=True)
    return level


def _remembered(path: Path) -> Level | None:
    """The level kept at `path`; None when it was not measured yet or its record is damaged
    (it is measured again)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) < _HEADER.size or (len(data) - _HEADER.size) % 8:
        return None
    tag, rate, frames, peak, digest = _HEADER.unpack_from(data)
    blocks = memoryview(data)[_HEADER.size :]
    if tag != _TAG or hashlib.blake2b(blocks, digest_size=8).digest() != digest:
        return None
    return Level(rate, frames, peak, np.frombuffer(blocks, dtype="<f8"))


def _remembered_npz(path: Path) -> Level | None:
    """A level kept by earlier versions (NumPy's .npz: twenty times slower to read); it is
    kept in the new form from then on."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            stats, blocks = saved["stats"], saved["blocks"]
        return Level(int(stats[0]), int(stats[1]), float(stats[2]), blocks)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def chapter_gains(
    manifest: Manifest, complete: Sequence[tuple[Chapter, Rows]], state_dir: Path
) -> dict[str, Gain]:
    """The gain of every complete chapter: each its own (`normalize: chapter`), or one for all
    (`normalize: book`, from the loudness of all their blocks together). Blocking."""
    out = manifest.output

    def gain(loudness: float, peak: float) -> Gain:
        return gain_for(loudness, peak, out.loudness, out.peak_dbfs, out.loudness_window)

    if out.normalize != "book":  # a chapter's blocks are let go once its gain is known
        gains: dict[str, Gain] = {}
        for chapter, rows in complete:
            level = measure(manifest, chapter, rows, state_dir)
            gains[chapter.id] = gain(level.loudness, level.peak)
        return gains
    levels = {chapter.id: measure(manifest, chapter, rows, state_dir) for chapter, rows in complete}
    if not levels:
        return {}
    blocks = np.concatenate([level.blocks for level in levels.values()])
    book = gain(gated_loudness(blocks), max(level.peak for level in levels.values()))
    return {key: _share(level, book) for key, level in levels.items()}


def _share(level: Level, book: Gain) -> Gain:
    """The book's gain, as it lands on one chapter."""
    peak_db = 20 * math.log10(level.peak) if level.peak > 0 else -math.inf
    loudness = level.loudness
    return Gain(
        book.db, loudness, loudness + book.db, peak_db + book.db, book.limited, book.in_window
    )
