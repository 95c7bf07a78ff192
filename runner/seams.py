"""Seams: where one segment's audio meets the next, a chapter sounds like one reading.

Each provider leaves its own silence before and after the speech (none, 50 ms, half a
second). That silence is trimmed at a threshold, keeping a few ms so that soft onsets and
decays survive, and the manifest's pauses are then inserted deliberately. A pause is measured
from the last audible sample of one segment to the first audible sample of the next, so the
silence written is the pause less the margins kept.

Edges that meet silence get a short raised-cosine fade, so that a segment cut off mid-wave
does not click. Two segments that meet with no pause overlap in a short equal-power crossfade
(cos/sin gains whose squares sum to one, so uncorrelated speech keeps its level through the
join).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np

from runner.audio import Samples

__all__ = ["SEAMS_VERSION", "Seams", "Trimmed", "join", "trim"]

#: Bump when the sound of a join changes: it is part of every chapter's fingerprint.
SEAMS_VERSION: Final = 1
THRESHOLD: Final = 10 ** (-50 / 20)  #: audible: |sample| above −50 dBFS
KEEP_MS: Final = 5  #: kept beyond the first and last audible samples
FADE_MS: Final = 3  #: fade where an edge meets silence
CROSSFADE_MS: Final = 10  #: overlap where two segments meet with no pause


@dataclass(frozen=True)
class Seams:
    rate: int
    pause_ms: int  #: between segments of one paragraph
    paragraph_pause_ms: int  #: between paragraphs
    chapter_pause_ms: int  #: before the first and after the last segment

    def samples(self, ms: int) -> int:
        return round(self.rate * ms / 1000)


@dataclass(frozen=True)
class Trimmed:
    samples: Samples
    head: int  #: samples kept before the first audible one
    tail: int  #: samples kept after the last audible one


def trim(samples: Samples, rate: int) -> Trimmed:
    """The audible part of `samples` plus up to KEEP_MS on each side; empty if none is."""
    audible = np.flatnonzero(np.abs(samples) > THRESHOLD)
    if len(audible) == 0:
        return Trimmed(np.zeros(0, np.float32), 0, 0)
    keep = round(rate * KEEP_MS / 1000)
    first, last = int(audible[0]), int(audible[-1])
    start, end = max(0, first - keep), min(len(samples), last + 1 + keep)
    return Trimmed(samples[start:end], first - start, end - 1 - last)


def join(pieces: Iterable[tuple[Samples, int]], seams: Seams) -> Iterator[Samples]:
    """The chapter's samples, chunk by chunk, from (segment samples, paragraph index) pairs
    already at `seams.rate`. Holds back at most one segment's last CROSSFADE_MS."""
    hold = seams.samples(max(CROSSFADE_MS, FADE_MS))
    fade = seams.samples(FADE_MS)
    yield _silence(seams.samples(seams.chapter_pause_ms))
    held: Samples | None = None  # the end of the previous segment, not yet written
    held_tail = 0
    previous_paragraph: int | None = None
    for samples, paragraph in pieces:
        piece = trim(samples, seams.rate)
        if len(piece.samples) == 0:
            continue  # nothing audible: the pause around it is the one pause
        body = piece.samples.astype(np.float32, copy=True)
        if held is None:
            body = _fade_in(body, fade)
        else:
            ms = seams.paragraph_pause_ms if paragraph != previous_paragraph else seams.pause_ms
            if ms == 0:
                overlap = min(seams.samples(CROSSFADE_MS), len(held), len(body))
                yield held[: len(held) - overlap]
                body[:overlap] = _crossfade(held[len(held) - overlap :], body[:overlap])
            else:
                yield _fade_out(held, fade)
                gap = seams.samples(ms) - held_tail - piece.head
                yield _silence(gap)
                body = _fade_in(body, fade)
        previous_paragraph = paragraph
        split = max(0, len(body) - hold)
        yield body[:split]
        held, held_tail = body[split:], piece.tail
    if held is not None:
        yield _fade_out(held, fade)
    yield _silence(seams.samples(seams.chapter_pause_ms))


def _silence(n: int) -> Samples:
    return np.zeros(max(0, n), np.float32)


def _ramp(n: int) -> Samples:
    """0 → 1 over n samples, raised cosine (no corner at either end)."""
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)


def _fade_in(body: Samples, n: int) -> Samples:
    n = min(n, len(body))
    body[:n] *= _ramp(n)
    return body


def _fade_out(body: Samples, n: int) -> Samples:
    body = body.copy()
    n = min(n, len(body))
    if n:
        body[len(body) - n :] *= _ramp(n)[::-1]
    return body


def _crossfade(out: Samples, into: Samples) -> Samples:
    theta = (np.pi / 2) * (np.arange(len(out)) + 0.5) / max(1, len(out))
    return (out * np.cos(theta) + into * np.sin(theta)).astype(np.float32)
