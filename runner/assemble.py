"""Assembly: a chapter's verified segments, joined with deliberate pauses, into one output file.

A chapter is rebuilt only when its fingerprint changes: the hash of its segments' audio (by
content), their paragraph layout, and the output settings. The output is written atomically
and streamed segment by segment, so memory does not grow with the chapter's length.
"""

from __future__ import annotations

import hashlib
import json
import time
import wave
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from runner.audio import Samples, decode
from runner.fsutil import atomic_file, atomic_write
from runner.manifest.model import Manifest
from runner.plan import Chapter, canonical_json
from runner.store import ChapterRow, SegmentRow

__all__ = ["AssembledChapter", "assemble_chapter", "chapter_fingerprint", "write_index"]


@dataclass(frozen=True)
class AssembledChapter:
    chapter: Chapter
    path: Path
    duration: float
    sha256: str
    rebuilt: bool


def chapter_fingerprint(
    manifest: Manifest, chapter: Chapter, rows: Mapping[str, SegmentRow]
) -> str:
    document = {
        "format": manifest.output.format,
        "pause_ms": manifest.output.pause_ms,
        "paragraph_pause_ms": manifest.output.paragraph_pause_ms,
        "segments": [
            [rows[s.key].sha256, paragraph]
            for s, paragraph in zip(chapter.segments, chapter.paragraphs, strict=True)
        ],
    }
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def output_path(manifest: Manifest, chapter: Chapter) -> Path:
    return manifest.output.dir / f"{chapter.id}.{manifest.output.format}"


def is_current(previous: ChapterRow | None, fingerprint: str, path: Path) -> bool:
    """True when the chapter file on disk is the one built from this exact fingerprint."""
    if previous is None or previous.fingerprint != fingerprint or not path.is_file():
        return False
    return _sha256_file(path) == previous.sha256


def assemble_chapter(
    manifest: Manifest, chapter: Chapter, rows: Mapping[str, SegmentRow], state_dir: Path
) -> tuple[Path, float, str]:
    """Write the chapter file (blocking). Returns (path, duration in seconds, sha256)."""
    path = output_path(manifest, chapter)
    rate = _chapter_rate(chapter, rows)
    frames = 0
    with atomic_file(path) as f, wave.open(f, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        previous_paragraph: int | None = None
        for segment, paragraph in zip(chapter.segments, chapter.paragraphs, strict=True):
            if previous_paragraph is not None:
                pause = manifest.output.pause_ms
                if paragraph != previous_paragraph:
                    pause = manifest.output.paragraph_pause_ms
                silence = int(rate * pause / 1000)
                out.writeframes(bytes(2 * silence))
                frames += silence
            previous_paragraph = paragraph
            row = rows[segment.key]
            assert row.path is not None
            samples = _load(state_dir / row.path, rate)
            out.writeframes(_to_pcm16(samples))
            frames += len(samples)
    return path, frames / rate, _sha256_file(path)


def _chapter_rate(chapter: Chapter, rows: Mapping[str, SegmentRow]) -> int:
    """The highest sample rate among the chapter's segments: nothing is downsampled."""
    return max(rows[s.key].sample_rate or 0 for s in chapter.segments) or 22050


def _load(path: Path, rate: int) -> Samples:
    samples, source_rate = decode(path.read_bytes(), path.suffix[1:])
    return samples if source_rate == rate else resample(samples, source_rate, rate)


def resample(samples: Samples, source_rate: int, rate: int) -> Samples:
    """Band-limited resampling through FFmpeg's swresample."""
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = source_rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    parts = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def _to_pcm16(samples: Samples) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767).round().astype("<i2").tobytes()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def chapter_row(
    manifest: Manifest, chapter: Chapter, fingerprint: str, built: tuple[Path, float, str]
) -> ChapterRow:
    path, duration, sha256 = built
    return ChapterRow(
        str(manifest.path), chapter.id, fingerprint, str(path), sha256, duration, time.time()
    )


def write_index(manifest: Manifest, chapters: list[tuple[Chapter, ChapterRow | None]]) -> Path:
    """`index.json` beside the chapters: what each file holds. Deterministic for equal input."""
    entries = []
    for chapter, row in chapters:
        voices = sorted({chapter.text.voice})
        accounts = sorted({s.account for s in chapter.segments})
        entries.append(
            {
                "id": chapter.id,
                "title": chapter.text.title,
                "file": Path(row.path).name if row else None,
                "complete": row is not None,
                "duration": round(row.duration, 3) if row else None,
                "sha256": row.sha256 if row else None,
                "voices": voices,
                "providers": [{"account": a, "kind": manifest.accounts[a].kind} for a in accounts],
                "segments": [s.key for s in chapter.segments],
            }
        )
    document = {"name": manifest.name, "manifest": str(manifest.path), "chapters": entries}
    path = manifest.output.dir / "index.json"
    atomic_write(path, (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode())
    return path
