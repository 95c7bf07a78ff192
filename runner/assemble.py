"""Assembly: a chapter's verified segments, joined with deliberate pauses, normalised, and
encoded into one output file; and, with `output.book`, the whole book as one file.

A chapter is rebuilt only when its fingerprint changes: the hash of its segments' audio (by
content), their paragraph layout, every output setting and the gain normalisation chose. The
output is written atomically and streamed segment by segment (runner/levels.py renders,
runner/encode.py encodes), so memory does not grow with the chapter's or the book's length.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from runner.audio import Samples
from runner.encode import ACX_MP3_BIT_RATE, Encoder, Tags
from runner.fsutil import atomic_file, atomic_write
from runner.levels import chapter_gains, chapter_rate, content_fingerprint, render
from runner.loudness import Gain
from runner.manifest.model import Manifest
from runner.plan import Chapter, canonical_json
from runner.store import ChapterRow, SegmentAudio, SegmentRow

__all__ = [
    "AssembledChapter",
    "Built",
    "assemble_book",
    "assemble_chapter",
    "book_path",
    "chapter_fingerprint",
    "chapter_gains",
    "write_index",
]

#: Segment rows by key: whole rows, or the lean audio rows a run reads for assembly.
Rows = Mapping[str, SegmentRow | SegmentAudio]
Built = tuple[Path, float, str]  #: (path, duration in seconds, sha256)


@dataclass(frozen=True)
class AssembledChapter:
    chapter: Chapter
    path: Path
    duration: float
    sha256: str
    rebuilt: bool


def _settings(manifest: Manifest) -> dict[str, object]:
    """Every output setting that shapes a file's bytes (the directory only places it)."""
    out = manifest.output
    cover = hashlib.sha256(out.cover.read_bytes()).hexdigest() if out.cover else None
    return {
        "format": out.format,
        "pauses": [out.pause_ms, out.paragraph_pause_ms, out.chapter_pause_ms],
        "sample_rate": out.sample_rate,
        "loudness": [out.loudness, out.loudness_window, out.peak_dbfs, out.normalize, out.preset],
        "tags": [manifest.name, out.author, out.narrator, cover],
    }


def chapter_fingerprint(
    manifest: Manifest, chapter: Chapter, rows: Rows, gain: Gain | None = None
) -> str:
    rate = chapter_rate(manifest.output, chapter, rows)
    document = {
        "audio": content_fingerprint(manifest, chapter, rows, rate),
        "title": chapter.text.title,
        "settings": _settings(manifest),
        "gain_db": gain.db if gain else None,
    }
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def output_path(manifest: Manifest, chapter: Chapter) -> Path:
    return manifest.output.dir / f"{chapter.id}.{manifest.output.format}"


def book_path(manifest: Manifest) -> Path:
    return manifest.output.dir / f"{manifest.name}.{manifest.output.format}"


def is_current(previous: ChapterRow | None, fingerprint: str, path: Path) -> bool:
    """True when the chapter file on disk is the one built from this exact fingerprint.

    A file with the size and modification time (to the nanosecond) it had when it was written
    is taken as unchanged, as make and rsync do: hashing every output on every resume cost
    seconds per gigabyte. Anything else is hashed."""
    if previous is None or previous.fingerprint != fingerprint:
        return False
    return _unchanged(path, previous.sha256, previous.size, previous.mtime_ns)


def _unchanged(path: Path, sha256: str, size: int | None, mtime_ns: int | None) -> bool:
    """Whether `path` is still the file written with this digest, size and time."""
    try:
        found = path.stat()
    except OSError:
        return False
    if (found.st_size, found.st_mtime_ns) == (size, mtime_ns):
        return True
    return path.is_file() and _sha256_file(path) == sha256


def assemble_chapter(
    manifest: Manifest, chapter: Chapter, rows: Rows, state_dir: Path, gain: Gain | None = None
) -> Built:
    """Write the chapter file (blocking). `gain` comes from `chapter_gains` (measured here
    when not given)."""
    if gain is None:
        gain = chapter_gains(manifest, [(chapter, rows)], state_dir)[chapter.id]
    path = output_path(manifest, chapter)
    rate = chapter_rate(manifest.output, chapter, rows)
    title = chapter.text.title or chapter.id
    marks = (title,) if manifest.output.format == "m4b" else ()
    with atomic_file(path) as f:
        encoder = Encoder(
            f, manifest.output.format, rate, _tags(manifest, title, marks), **_opts(manifest)
        )
        with encoder:
            encoder.mark()
            for chunk in _gained(render(manifest, chapter, rows, state_dir, rate), gain):
                encoder.write(chunk)
    return path, encoder.frames / rate, _sha256_file(path)


def assemble_book(
    manifest: Manifest,
    complete: Sequence[tuple[Chapter, Rows]],
    state_dir: Path,
    gains: Mapping[str, Gain],
    fingerprints: Mapping[str, str] | None = None,
) -> tuple[Built, bool]:
    """Write `<name>.<format>`: every chapter in order, each with its gain, one chapter mark
    per text (blocking). Returns the file and whether it was rebuilt; an unchanged book is
    left alone. `fingerprints`: the chapters' `chapter_fingerprint`s when the caller has them
    (a book of 100,000 segments takes a tenth of a second to fingerprint once more)."""
    out = manifest.output
    rate = out.sample_rate or max(chapter_rate(out, c, rows) for c, rows in complete)
    if fingerprints is None:
        fingerprints = {c.id: chapter_fingerprint(manifest, c, r, gains[c.id]) for c, r in complete}
    document = {"rate": rate, "chapters": [fingerprints[c.id] for c, _ in complete]}
    fingerprint = hashlib.sha256(canonical_json(document).encode()).hexdigest()
    path = book_path(manifest)
    record = (
        state_dir / "books" / f"{hashlib.sha256(str(manifest.path).encode()).hexdigest()[:16]}.json"
    )
    try:
        known = json.loads(record.read_text(encoding="utf-8"))
        if known["fingerprint"] == fingerprint and _unchanged(
            path, known["sha256"], known.get("size"), known.get("mtime_ns")
        ):
            return (path, float(known["duration"]), str(known["sha256"])), False
    except (OSError, ValueError, KeyError, TypeError):
        pass
    titles = tuple(c.text.title or c.id for c, _ in complete)
    with atomic_file(path) as f:
        encoder = Encoder(
            f, out.format, rate, _tags(manifest, manifest.name, titles), **_opts(manifest)
        )
        with encoder:
            for chapter, rows in complete:
                encoder.mark()
                samples = render(manifest, chapter, rows, state_dir, rate)
                for chunk in _gained(samples, gains[chapter.id]):
                    encoder.write(chunk)
    built = (path, encoder.frames / rate, _sha256_file(path))
    written = path.stat()
    document = {
        "fingerprint": fingerprint,
        "duration": built[1],
        "sha256": built[2],
        "size": written.st_size,
        "mtime_ns": written.st_mtime_ns,
    }
    atomic_write(record, json.dumps(document).encode())
    return built, True


def _gained(chunks: Iterator[Samples], gain: Gain) -> Iterator[Samples]:
    factor = gain.factor
    for chunk in chunks:
        yield chunk if factor == 1.0 else (chunk * factor).astype(chunk.dtype)


def _tags(manifest: Manifest, title: str, marks: tuple[str, ...]) -> Tags:
    out = manifest.output
    return Tags(title, manifest.name, out.author, out.narrator, out.cover, marks)


def _opts(manifest: Manifest) -> dict[str, int]:
    acx_mp3 = manifest.output.preset == "acx" and manifest.output.format == "mp3"
    return {"bit_rate": ACX_MP3_BIT_RATE} if acx_mp3 else {}


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
    written = path.stat()
    return ChapterRow(
        str(manifest.path),
        chapter.id,
        fingerprint,
        str(path),
        sha256,
        duration,
        time.time(),
        written.st_size,
        written.st_mtime_ns,
    )


def write_index(
    manifest: Manifest,
    chapters: list[tuple[Chapter, ChapterRow | None]],
    gains: Mapping[str, Gain] | None = None,
    book: Built | None = None,
) -> Path:
    """`index.json` beside the chapters: what each file holds. Deterministic for equal input."""
    entries: list[dict[str, object]] = []
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
        gain = (gains or {}).get(chapter.id)
        if gain is not None:
            entries[-1]["loudness"] = _loudness_entry(gain)
    document: dict[str, object] = {
        "name": manifest.name,
        "manifest": str(manifest.path),
        "chapters": entries,
    }
    if book is not None:
        document["book"] = {
            "file": book[0].name,
            "duration": round(book[1], 3),
            "sha256": book[2],
        }
    path = manifest.output.dir / "index.json"
    atomic_write(path, (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode())
    return path


def _loudness_entry(gain: Gain) -> dict[str, object]:
    """Loudness figures for people (and the report): LUFS and dB to 0.01, None for silence."""

    def figure(x: float) -> float | None:
        return round(x, 2) if math.isfinite(x) else None

    return {
        "measured_lufs": figure(gain.measured),
        "lufs": figure(gain.result),
        "gain_db": figure(gain.db),
        "peak_dbfs": figure(gain.peak_dbfs),
        "peak_limited": gain.limited,
        "in_window": gain.in_window,
    }
