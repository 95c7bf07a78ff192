"""A book made of synthetic segments, for assembly tests: real WAV files in a state directory,
a real manifest loaded from YAML, and the chapter and store records assembly reads."""

from __future__ import annotations

import hashlib
import math
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runner.manifest.load import load_manifest
from runner.manifest.model import Manifest
from runner.plan import Chapter, Segment
from runner.store import SegmentRow, SegmentState


@dataclass(frozen=True)
class Piece:
    samples: np.ndarray
    rate: int
    paragraph: int = 0
    channels: int = 1


@dataclass
class Book:
    manifest: Manifest
    chapters: list[tuple[Chapter, dict[str, SegmentRow]]]
    state_dir: Path


def tone(
    seconds: float,
    rate: int,
    freq: float = 220.0,
    amplitude: float = 0.3,
    lead: float = 0.0,
    tail: float = 0.0,
) -> np.ndarray:
    """A vowel-like tone (a fundamental and two harmonics) with silence before and after."""
    t = np.arange(int(seconds * rate)) / rate
    wave_ = (
        np.sin(2 * math.pi * freq * t)
        + 0.5 * np.sin(2 * math.pi * 2 * freq * t)
        + 0.25 * np.sin(2 * math.pi * 3 * freq * t)
    )
    body = (amplitude / 1.75 * wave_).astype(np.float32)
    return np.concatenate(
        [np.zeros(int(lead * rate), np.float32), body, np.zeros(int(tail * rate), np.float32)]
    )


def write_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> None:
    pcm = (np.clip(samples, -1, 1) * 32767).round().astype("<i2")
    if channels > 1:
        pcm = np.repeat(pcm, channels)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def make_book(
    tmp_path: Path,
    chapters: Sequence[Sequence[Piece]],
    output: str = "",
    titles: Sequence[str] = (),
) -> Book:
    """Chapters of the given pieces; `output` is the YAML body of the manifest's `output:`."""
    titles = list(titles) or [f"Chapter {i + 1}" for i in range(len(chapters))]
    texts = "".join(
        f"  - {{id: ch{i + 1:02d}, title: '{title}', text: 'Chapter {i + 1}.'}}\n"
        for i, title in enumerate(titles)
    )
    yaml = "name: synthetic\noutput:\n  dir: out\n" + output + "texts:\n" + texts
    (tmp_path / "book.yaml").write_text(yaml, encoding="utf-8")
    manifest = load_manifest(tmp_path / "book.yaml")
    state_dir = tmp_path / ".tts-runner"
    (state_dir / "cache").mkdir(parents=True, exist_ok=True)
    built = []
    for number, (text, pieces) in enumerate(zip(manifest.texts, chapters, strict=True)):
        segments, rows = [], {}
        for i, piece in enumerate(pieces):
            relative = f"cache/c{number}-s{i}.wav"
            write_wav(state_dir / relative, piece.samples, piece.rate, piece.channels)
            data = (state_dir / relative).read_bytes()
            key = hashlib.sha256(data).hexdigest()
            segment = Segment(key, "local", "local", f"segment {i}", {}, "wav")
            segments.append(segment)
            rows[key] = SegmentRow(
                key, "local", "local", SegmentState.DONE, 10, segment.text, "wav",
                None, None, None, None, None, relative, key,
                len(piece.samples) / piece.rate, piece.rate, 1, None, None, 0.0,
            )  # fmt: skip
        chapter = Chapter(text, tuple(segments), tuple(p.paragraph for p in pieces))
        built.append((chapter, rows))
    return Book(manifest, built, state_dir)


def audible_runs(
    samples: np.ndarray, rate: int, threshold: float = 10 ** (-50 / 20)
) -> list[tuple[int, int]]:
    """[start, end) of each stretch of audible samples; a wave's zero crossings (quiet for a
    few samples) are not gaps, so stretches closer than 20 ms are merged."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if len(loud) == 0:
        return []
    breaks = np.flatnonzero(np.diff(loud) > 1)
    starts = [int(loud[0]), *(int(loud[b + 1]) for b in breaks)]
    ends = [*(int(loud[b]) + 1 for b in breaks), int(loud[-1]) + 1]
    merged = [(starts[0], ends[0])]
    for s, e in zip(starts[1:], ends[1:], strict=True):
        if s - merged[-1][1] < 0.02 * rate:
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged
