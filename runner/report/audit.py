"""Listening for trouble without listening: segments whose audio is unlike the rest, and the
loudness of each delivered chapter.

Two tells, both cheap:
- *pace*: seconds of audio per character, against the median of the same voice speaking
  with the same parameters. Far slower (> 2.5×) suggests repeated or garbled speech, or a long
  silence; far faster (< 0.4×) suggests skipped text. Per voice and language, because Mandarin
  takes several times longer per character than English.
- *level*: RMS below −50 dBFS is all but silent, whatever was asked for.

(Integrated loudness per segment would catch volume jumps between sentences too, but the meter
runs at about 240× real time: minutes per run for a long book. Chapters are measured instead.)

Blocking (reads every cached segment and decodes every chapter): call from a worker thread.
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
from collections import defaultdict
from collections.abc import Iterable, MutableMapping, Sequence
from pathlib import Path
from typing import Final, NamedTuple

import av
import av.error
import numpy as np

from runner.audio import decode, rms_dbfs
from runner.cache import level_key
from runner.errors import AudioError
from runner.loudness import LoudnessMeter
from runner.store import SegmentAudio

__all__ = [
    "FAST",
    "SILENT_DBFS",
    "SLOW",
    "Take",
    "chapter_loudness",
    "suspicious",
]

SLOW: Final = 2.5  #: × the voice's median seconds per character
FAST: Final = 0.4
SILENT_DBFS: Final = -50.0


class Take(NamedTuple):
    """A finished segment as the audit sees it (a tuple: a book makes 100,000 of them)."""

    key: str
    chapter: str
    voice: str  #: the manifest's name for the voice
    manner: str  #: how it speaks this segment (resolved parameters): paces compare within one
    text: str
    chars: int
    audio: SegmentAudio  #: the row's own tuple: 100,000 are held, nothing is copied out of it
    root: str = ""  #: the directory the audio's path is relative to ("": it is not)

    @property
    def duration(self) -> float:
        return self.audio.duration

    @property
    def sha256(self) -> str:
        """Of the cached audio: its level is remembered under it."""
        return self.audio.sha256 or ""

    @property
    def file(self) -> str:
        path = self.audio.path
        return f"{self.root}/{path}" if self.root and not path.startswith("/") else path


def suspicious(
    takes: Sequence[Take], known: MutableMapping[int, float | None] | None = None
) -> list[dict[str, object]]:
    """Takes whose pace or level is off. `known` maps cached files (digest, size, time) to
    levels measured before (None: silent) and learns the new ones: a run that adds ten
    segments to a book of 100,000 decodes ten files, not 100,000."""
    paces = _medians((t.manner, t.duration / t.chars) for t in takes if t.chars)
    found: list[dict[str, object]] = []
    for take in takes:
        pace = take.duration / take.chars if take.chars else 0.0
        median = paces.get(take.manner, 0.0)
        ratio = pace / median if median else 1.0
        level = _remembered_level(take, known)
        if FAST <= ratio <= SLOW and level is not None and level >= SILENT_DBFS:
            continue  # the usual case, decided without building a list
        problems = _problems(ratio, level)
        if problems:
            found.append(
                {
                    "key": take.key,
                    "chapter": take.chapter,
                    "voice": take.voice,
                    "text": take.text,
                    "chars": take.chars,
                    "duration": round(take.duration, 3),
                    "seconds_per_char": round(pace, 4),
                    "voice_median": round(median, 4),
                    "ratio": round(ratio, 3),
                    "rms_dbfs": None if level is None else _figure(level),
                    "problems": problems,
                }
            )
    return found


def _problems(ratio: float, level: float | None) -> list[str]:
    problems: list[str] = []
    if ratio > SLOW:
        problems.append(f"slow: {ratio:.1f}× the voice's median seconds per character")
    elif ratio < FAST:
        problems.append(f"fast: {ratio:.2f}× the voice's median seconds per character")
    if level is None:
        problems.append("its cached audio is missing or unreadable")
    elif level < SILENT_DBFS:
        shown = "−∞" if math.isinf(level) else f"{level:.1f}"
        problems.append(f"near-silent: RMS {shown} dBFS")
    return problems


def _medians(pairs: Iterable[tuple[str, float]]) -> dict[str, float]:
    values: dict[str, list[float]] = defaultdict(list)
    for manner, value in pairs:
        values[manner].append(value)
    return {manner: statistics.median(found) for manner, found in values.items()}


def _remembered_level(take: Take, known: MutableMapping[int, float | None] | None) -> float | None:
    if known is None or not take.sha256:
        return _level(take.file)
    try:
        found = os.stat(take.file)
    except OSError:
        return None  # missing: reported as such
    # the file's size and time too: a file changed behind the state's back is measured again
    key = level_key(take.sha256, found.st_size, found.st_mtime_ns)
    if key in known:
        remembered = known[key]
        return -math.inf if remembered is None else remembered
    level = _level(take.file)
    if level is not None:  # an unreadable file is looked at again next time
        known[key] = level if math.isfinite(level) else None
    return level


def _level(path: str) -> float | None:
    """RMS in dBFS of a cached segment; None when it is missing or unreadable."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        samples, _ = decode(data, os.path.splitext(path)[1][1:])
    except (OSError, AudioError):
        return None
    return rms_dbfs(samples)


def _figure(value: float) -> float | None:
    return round(value, 1) if math.isfinite(value) else None


def chapter_loudness(path: Path) -> float | None:
    """Integrated loudness of a delivered chapter file (any format FFmpeg reads), in LUFS;
    None when it cannot be read or is silent. Decoded frame by frame into the meter, so a
    chapter of hours is measured in constant memory."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            meter = LoudnessMeter(stream.rate)
            mono = av.AudioResampler(format="flt", layout="mono", rate=stream.rate)
            for frame in itertools.chain(container.decode(stream), [None]):
                for piece in mono.resample(frame):  # None flushes the resampler
                    meter.feed(piece.to_ndarray().reshape(-1).astype(np.float32))
    except (OSError, av.error.FFmpegError, IndexError):
        return None
    value = meter.loudness()
    return value if math.isfinite(value) else None
